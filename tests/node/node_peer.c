/* node_peer.c — test publishers for the node's tests, through the public shm API:
 *
 *   node_peer cam TOPIC WIDTH HEIGHT rgb|bgr|gray HZ SEED
 *       frames with a fixed pattern (node_peer_pixel(), the same every frame) at HZ
 *   node_peer joints TOPIC HZ V0,V1,... [realtime]
 *       joint state with those positions at HZ (stamped with CLOCK_REALTIME when asked, as
 *       drivers that stamp wall time do; else CLOCK_MONOTONIC)
 *
 * Runs until SIGTERM/SIGINT/SIGKILL (exits 0 on the first two). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_time.h"
#include "node_peer.h"
#include "shm/pi0_shm.h"

static volatile sig_atomic_t g_stop;
static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static uint64_t now_ns(void) {
    return (uint64_t)pi0__now_ns();
}

static void sleep_until(uint64_t t) {
    struct timespec ts = {(time_t)(t / 1000000000ull), (long)(t % 1000000000ull)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

static int usage(void) {
    fprintf(stderr, "usage: node_peer cam TOPIC W H rgb|bgr|gray HZ SEED\n"
                    "       node_peer joints TOPIC HZ V0,V1,... [realtime]\n");
    return 2;
}

int main(int argc, char **argv) {
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (argc < 2) return usage();
    pi0_pub *pub = NULL;
    int rc;
    if (!strcmp(argv[1], "cam") && argc == 8) {
        uint32_t w = (uint32_t)atoi(argv[3]), h = (uint32_t)atoi(argv[4]);
        uint32_t fmt = !strcmp(argv[5], "bgr")    ? PI0_PIX_BGR8
                       : !strcmp(argv[5], "gray") ? PI0_PIX_GRAY8
                                                  : PI0_PIX_RGB8;
        double hz = atof(argv[6]);
        int seed = atoi(argv[7]);
        size_t bytes = pi0_image_bytes(w, h, fmt);
        pi0_pub_opts o = {PI0_TYPE_IMAGE, (uint32_t)bytes, 4, 0};
        if (!bytes || hz <= 0 || (rc = pi0_pub_create(argv[2], &o, &pub))) {
            fprintf(stderr, "node_peer: %s: %s\n", argv[2], pi0_last_error());
            return 1;
        }
        uint32_t bpp = pi0_pixel_bytes(fmt);
        uint64_t period = (uint64_t)(1e9 / hz), t = now_ns();
        for (uint64_t id = 0; !g_stop; id++) {
            pi0_image *im = pi0_pub_loan(pub);
            memset(im, 0, sizeof *im);
            im->width = w;
            im->height = h;
            im->stride = w * bpp;
            im->format = fmt;
            im->capture_ns = now_ns();
            im->frame_id = id;
            im->data_bytes = im->stride * h;
            for (uint32_t y = 0; y < h; y++)
                for (uint32_t x = 0; x < w; x++)
                    for (uint32_t c = 0; c < bpp; c++) {
                        /* stored channel c of a BGR frame is RGB channel 2 - c */
                        uint32_t rgb_c = fmt == PI0_PIX_BGR8 ? 2 - c : c;
                        im->data[(size_t)y * im->stride + x * bpp + c] =
                            node_peer_pixel(x, y, rgb_c, seed);
                    }
            pi0_pub_commit(pub, sizeof *im + im->data_bytes);
            t += period;
            sleep_until(t);
        }
    } else if (!strcmp(argv[1], "joints") && (argc == 5 || argc == 6)) {
        int realtime = argc == 6 && !strcmp(argv[5], "realtime");
        double hz = atof(argv[3]), v[PI0_JOINTS_MAX];
        int n = 0;
        for (char *s = argv[4]; *s && n < PI0_JOINTS_MAX;) {
            char *end;
            v[n++] = strtod(s, &end);
            s = *end == ',' ? end + 1 : end;
            if (end == s && *s) return usage();
        }
        pi0_pub_opts o = {PI0_TYPE_JOINT_STATE, sizeof(pi0_joint_state), 16, 0};
        if (hz <= 0 || (rc = pi0_pub_create(argv[2], &o, &pub))) {
            fprintf(stderr, "node_peer: %s: %s\n", argv[2], pi0_last_error());
            return 1;
        }
        uint64_t period = (uint64_t)(1e9 / hz), t = now_ns();
        while (!g_stop) {
            pi0_joint_state *js = pi0_pub_loan(pub);
            memset(js, 0, sizeof *js);
            struct timespec rt;
            clock_gettime(CLOCK_REALTIME, &rt);
            js->stamp_ns = realtime ? (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec
                                    : now_ns();
            js->n = (uint32_t)n;
            memcpy(js->position, v, (size_t)n * sizeof(double));
            pi0_pub_commit(pub, sizeof *js);
            t += period;
            sleep_until(t);
        }
    } else {
        return usage();
    }
    pi0_pub_destroy(pub);
    return 0;
}
