/* py_peer.c — the C side of the Python client's round-trip tests (tests/test_shm_python.py).
 *
 *   py_peer pub TYPE TOPIC [SECONDS]   publish the reference sample of TYPE every 10 ms
 *                                      (actions: index and due_ns count up) until killed
 *                                      or SECONDS (default 10) pass
 *   py_peer check TYPE TOPIC           wait <= 5 s for the topic and a sample, validate it
 *                                      with pi0_*_check and compare every field with the
 *                                      reference sample; exit 0 if equal, else 1 with the
 *                                      first differing field on stderr
 *
 * TYPE: image, joints, chunk, action, status. The reference samples are written out field
 * by field here and, independently, in the Python test. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shm/pi0_shm.h"

#define IMG_W 40
#define IMG_H 30

static union {
    uint8_t bytes[64 + IMG_W * IMG_H * 3];
    pi0_image image;
    pi0_joint_state joints;
    pi0_action_chunk chunk;
    pi0_action action;
    pi0_node_status status;
} g_ref, g_got;

/* Fills g_ref with the reference sample; returns its size and sets *type_name. */
static size_t reference(const char *type, const char **type_name) {
    memset(&g_ref, 0, sizeof g_ref);
    if (!strcmp(type, "image")) {
        pi0_image *im = &g_ref.image;
        im->width = IMG_W, im->height = IMG_H, im->stride = IMG_W * 3;
        im->format = PI0_PIX_RGB8, im->capture_ns = 123456789, im->frame_id = 42;
        im->data_bytes = IMG_W * IMG_H * 3;
        for (int y = 0; y < IMG_H; y++)
            for (int x = 0; x < IMG_W; x++)
                for (int c = 0; c < 3; c++)
                    im->data[(y * IMG_W + x) * 3 + c] =
                        (uint8_t)((x * 7 + y * 13 + c * 5) & 255);
        *type_name = PI0_TYPE_IMAGE;
        return 64 + im->data_bytes;
    }
    if (!strcmp(type, "joints")) {
        pi0_joint_state *j = &g_ref.joints;
        j->stamp_ns = 1000, j->n = 5;
        for (int i = 0; i < 5; i++)
            j->position[i] = 0.5 * i - 1, j->velocity[i] = 0.25 * i, j->effort[i] = -i;
        *type_name = PI0_TYPE_JOINT_STATE;
        return sizeof *j;
    }
    if (!strcmp(type, "chunk")) {
        pi0_action_chunk *c = &g_ref.chunk;
        c->seq = 7, c->t0_ns = 2000, c->obs_stamp_ns = 1500, c->period_ns = 20000000;
        c->horizon = 10, c->dim = 6;
        c->preprocess_us = 1, c->encode_us = 2, c->denoise_us = 3, c->postprocess_us = 4;
        c->total_us = 5;
        for (int h = 0; h < 10; h++)
            for (int d = 0; d < 6; d++)
                c->actions[h * 6 + d] = (float)h + (float)d * 0.125f;
        *type_name = PI0_TYPE_ACTION_CHUNK;
        return sizeof *c;
    }
    if (!strcmp(type, "action")) {
        pi0_action *a = &g_ref.action;
        a->due_ns = 3000, a->chunk_seq = 7, a->index = 3, a->dim = 6;
        a->flags = PI0_ACTION_HOLD;
        for (int d = 0; d < 6; d++)
            a->values[d] = 0.5f - (float)d;
        *type_name = PI0_TYPE_ACTION;
        return sizeof *a;
    }
    if (!strcmp(type, "status")) {
        pi0_node_status *s = &g_ref.status;
        s->stamp_ns = 4000, s->state = PI0_NODE_HOLDING, s->last_error = PI0_ETIMEDOUT;
        s->ticks = 100, s->missed_ticks = 2, s->chunks = 9, s->dropped_chunks = 1;
        s->holds = 3, s->hold_reason = PI0_HOLD_CAMERA_STALE | PI0_HOLD_PUBLISHER_DEAD;
        s->tick_late_p50_us = 11, s->tick_late_p99_us = 22, s->tick_late_max_us = 33;
        s->infer_p50_us = 44, s->infer_p99_us = 55, s->infer_max_us = 66;
        snprintf(s->message, sizeof s->message, "camera cam1 stale");
        *type_name = PI0_TYPE_NODE_STATUS;
        return sizeof *s;
    }
    return 0;
}

static int check_sample(const char *type, size_t size, size_t got) {
    int (*chk)(const void *, size_t) = !strcmp(type, "image")    ? pi0_image_check
                                       : !strcmp(type, "joints") ? pi0_joint_state_check
                                       : !strcmp(type, "chunk")  ? pi0_action_chunk_check
                                       : !strcmp(type, "action") ? pi0_action_check
                                                                 : pi0_node_status_check;
    if (chk(&g_got, got) != 0) {
        fprintf(stderr, "py_peer: %s: invalid: %s\n", type, pi0_last_error());
        return 1;
    }
    if (got != size) {
        fprintf(stderr, "py_peer: %s: size %zu, want %zu\n", type, got, size);
        return 1;
    }
#define FIELD(s, f)                                                                            \
    do {                                                                                       \
        if (g_got.s.f != g_ref.s.f) {                                                          \
            fprintf(stderr, "py_peer: %s." #f ": %.17g, want %.17g\n", type,                   \
                    (double)g_got.s.f, (double)g_ref.s.f);                                     \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)
    if (!strcmp(type, "image")) {
        FIELD(image, width);
        FIELD(image, height);
        FIELD(image, stride);
        FIELD(image, format);
        FIELD(image, capture_ns);
        FIELD(image, frame_id);
        FIELD(image, data_bytes);
        for (uint32_t i = 0; i < g_ref.image.data_bytes; i++)
            FIELD(image, data[i]);
    } else if (!strcmp(type, "joints")) {
        FIELD(joints, stamp_ns);
        FIELD(joints, n);
        for (int i = 0; i < PI0_JOINTS_MAX; i++) {
            FIELD(joints, position[i]);
            FIELD(joints, velocity[i]);
            FIELD(joints, effort[i]);
        }
    } else if (!strcmp(type, "chunk")) {
        FIELD(chunk, seq);
        FIELD(chunk, t0_ns);
        FIELD(chunk, obs_stamp_ns);
        FIELD(chunk, period_ns);
        FIELD(chunk, horizon);
        FIELD(chunk, dim);
        FIELD(chunk, preprocess_us);
        FIELD(chunk, encode_us);
        FIELD(chunk, denoise_us);
        FIELD(chunk, postprocess_us);
        FIELD(chunk, total_us);
        for (int i = 0; i < PI0_CHUNK_HORIZON_MAX * PI0_CHUNK_DIM_MAX; i++)
            FIELD(chunk, actions[i]);
    } else if (!strcmp(type, "action")) {
        FIELD(action, due_ns);
        FIELD(action, chunk_seq);
        FIELD(action, index);
        FIELD(action, dim);
        FIELD(action, flags);
        for (int i = 0; i < PI0_ACTION_DIM_MAX; i++)
            FIELD(action, values[i]);
    } else {
        FIELD(status, stamp_ns);
        FIELD(status, state);
        FIELD(status, last_error);
        FIELD(status, ticks);
        FIELD(status, missed_ticks);
        FIELD(status, chunks);
        FIELD(status, dropped_chunks);
        FIELD(status, holds);
        FIELD(status, hold_reason);
        FIELD(status, tick_late_p50_us);
        FIELD(status, tick_late_p99_us);
        FIELD(status, tick_late_max_us);
        FIELD(status, infer_p50_us);
        FIELD(status, infer_p99_us);
        FIELD(status, infer_max_us);
        if (strcmp(g_got.status.message, g_ref.status.message) != 0) {
            fprintf(stderr, "py_peer: status.message: \"%.128s\"\n", g_got.status.message);
            return 1;
        }
    }
#undef FIELD
    if (memcmp(&g_got, &g_ref, size) != 0) { /* reserved fields and padding too */
        fprintf(stderr, "py_peer: %s: reserved bytes differ\n", type);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: py_peer pub|check TYPE TOPIC [SECONDS]\n");
        return 2;
    }
    const char *type_name;
    size_t size = reference(argv[2], &type_name);
    if (!size) {
        fprintf(stderr, "py_peer: unknown type %s\n", argv[2]);
        return 2;
    }
    if (!strcmp(argv[1], "pub")) {
        double secs = argc > 4 ? atof(argv[4]) : 10;
        pi0_pub *pub;
        pi0_pub_opts po = {type_name, (uint32_t)size, 16, 0};
        if (pi0_pub_create(argv[3], &po, &pub) != 0) {
            fprintf(stderr, "py_peer: %s: %s\n", argv[3], pi0_last_error());
            return 1;
        }
        for (int k = 0; k < secs * 100; k++) {
            if (!strcmp(argv[2], "action") && k > 0)
                g_ref.action.index++, g_ref.action.due_ns += 10;
            pi0_pub_publish(pub, &g_ref, size);
            usleep(10000);
        }
        pi0_pub_destroy(pub);
        return 0;
    }
    pi0_sub *sub = NULL;
    pi0_sub_opts so = {type_name, -1};
    for (int i = 0; i < 500 && pi0_sub_open(argv[3], &so, &sub) != 0; i++)
        usleep(10000);
    if (!sub) {
        fprintf(stderr, "py_peer: %s: %s\n", argv[3], pi0_last_error());
        return 1;
    }
    pi0_sample s;
    for (int i = 0; i < 50; i++) {
        if (pi0_sub_latest_copy(sub, &g_got, sizeof g_got, &s) == 0)
            return check_sample(argv[2], size, s.size);
        pi0_sub_wait(sub, 100000000);
    }
    fprintf(stderr, "py_peer: %s: no sample within 5 s\n", argv[3]);
    return 1;
}
