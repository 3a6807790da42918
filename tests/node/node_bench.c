/* node_bench.c — measurements for tests/node/bench.sh (each prints one JSON object):
 *
 *   node_bench bare HZ SECONDS PRIO
 *       a bare clock_nanosleep(TIMER_ABSTIME) loop at HZ under SCHED_FIFO PRIO (when
 *       permitted): wake-up lateness p50/p99/max (µs, the node's histogram) and missed ticks
 *   node_bench watch STATUS_TOPIC CHUNK_TOPIC SECONDS
 *       a running node: chunks per second and stage-B (denoise_us) p50 from its chunks,
 *       and its last status (tick lateness, missed ticks, observation -> chunk p50)
 *   node_bench alone MODEL_DIR REPEAT
 *       pi0_model_encode + pi0_model_denoise alone on node_peer's 640x480 frame and tokens
 *       1,2,3: p50 of their sum (ms) */
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node/node.h"
#include "node_peer.h"

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}
static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int bare(double hz, double secs, int prio) {
    static node_hist h;
    node_hist_init(&h);
    struct sched_param sp = {.sched_priority = prio};
    int rt = prio > 0 && !sched_setscheduler(0, SCHED_FIFO, &sp);
    uint64_t P = (uint64_t)(1e9 / hz + 0.5), t0 = node_now_ns() + P, missed = 0, ticks = 0;
    uint64_t n = (uint64_t)(secs * hz);
    for (uint64_t k = 0; k < n; k++) {
        uint64_t due = t0 + k * P;
        struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        uint64_t now = node_now_ns(), late = now > due ? now - due : 0;
        if (late >= P) {
            missed += late / P;
            k += late / P;
            late %= P;
        }
        node_hist_add(&h, late);
        ticks++;
    }
    printf("{\"hz\":%g,\"seconds\":%g,\"sched_fifo\":%d,\"ticks\":%llu,\"missed\":%llu,"
           "\"late_p50_us\":%.1f,\"late_p99_us\":%.1f,\"late_max_us\":%.1f}\n",
           hz, secs, rt, (unsigned long long)ticks, (unsigned long long)missed,
           (double)node_hist_quantile(&h, 0.5) / 1e3,
           (double)node_hist_quantile(&h, 0.99) / 1e3, (double)atomic_load(&h.max_ns) / 1e3);
    return 0;
}

static int watch(const char *status, const char *chunk_topic, double secs) {
    pi0_sub_opts so = {PI0_TYPE_NODE_STATUS, -1}, co = {PI0_TYPE_ACTION_CHUNK, -1};
    pi0_sub *ss = NULL, *sc = NULL;
    uint64_t end = node_now_ns() + 60000000000ull;
    while (pi0_sub_open(status, &so, &ss) || pi0_sub_open(chunk_topic, &co, &sc)) {
        if (node_now_ns() > end) {
            fprintf(stderr, "node_bench: no node topics %s / %s\n", status, chunk_topic);
            return 1;
        }
        struct timespec ts = {0, 50000000};
        nanosleep(&ts, NULL);
    }
    static pi0_action_chunk c;
    static uint32_t den[100000];
    size_t nd = 0;
    pi0_node_status st = {0};
    pi0_sample s;
    uint64_t t0 = node_now_ns(), t_end = t0 + (uint64_t)(secs * 1e9), first = 0, last = 0;
    while (node_now_ns() < t_end) {
        pi0_sub_wait(sc, 10000000);
        while (!pi0_sub_next_copy(sc, &c, sizeof c, &s)) {
            if (!first) first = s.stamp_ns;
            last = s.stamp_ns;
            if (nd < sizeof den / sizeof den[0]) den[nd++] = c.denoise_us;
        }
        while (!pi0_sub_next_copy(ss, &st, sizeof st, &s)) {
        }
    }
    qsort(den, nd, sizeof den[0], cmp_u32);
    double span = nd > 1 ? (double)(last - first) * 1e-9 : 0;
    printf("{\"chunks\":%zu,\"chunks_per_s\":%.2f,\"denoise_p50_us\":%u,\"ticks\":%llu,"
           "\"missed\":%llu,\"late_p50_us\":%u,\"late_p99_us\":%u,\"late_max_us\":%u,"
           "\"infer_p50_us\":%u,\"infer_p99_us\":%u}\n",
           nd, span > 0 ? (double)(nd - 1) / span : 0.0, nd ? den[nd / 2] : 0,
           (unsigned long long)st.ticks, (unsigned long long)st.missed_ticks,
           st.tick_late_p50_us, st.tick_late_p99_us, st.tick_late_max_us, st.infer_p50_us,
           st.infer_p99_us);
    pi0_sub_close(ss);
    pi0_sub_close(sc);
    return 0;
}

static int alone(const char *dir, int repeat) {
    pi0_model *m = NULL;
    if (pi0_model_load(dir, NULL, &m)) {
        fprintf(stderr, "node_bench: %s: %s\n", dir, pi0_last_error());
        return 1;
    }
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    static uint8_t img[480][640][3];
    for (uint32_t y = 0; y < 480; y++)
        for (uint32_t x = 0; x < 640; x++)
            for (uint32_t c = 0; c < 3; c++)
                img[y][x][c] = node_peer_pixel(x, y, c, 7);
    int32_t ids[3] = {1, 2, 3};
    pi0_observation obs;
    memset(&obs, 0, sizeof obs);
    obs.images[0] = (pi0_image_view){&img[0][0][0], 640, 480, 0, 1, 0, 0};
    obs.tokens = ids;
    obs.n_tokens = 3;
    float *state = calloc((size_t)in.state_dim, sizeof(float));
    float *chunk = malloc((size_t)in.action_horizon * (size_t)in.action_dim * sizeof(float));
    double *ms = malloc((size_t)repeat * sizeof(double));
    for (int r = -1; r < repeat; r++) { /* r = -1: warm-up (the node warms up too) */
        pi0_prefix *p = NULL;
        uint64_t t0 = node_now_ns();
        if (pi0_model_encode(m, &obs, &p, NULL) ||
            pi0_model_denoise(m, p, state, NULL, chunk, NULL)) {
            fprintf(stderr, "node_bench: inference: %s\n", pi0_last_error());
            return 1;
        }
        pi0_prefix_release(m, p);
        if (r >= 0) ms[r] = (double)(node_now_ns() - t0) * 1e-6;
    }
    qsort(ms, (size_t)repeat, sizeof ms[0], cmp_d);
    printf("{\"model\":\"%s\",\"repeat\":%d,\"encode_denoise_p50_ms\":%.3f}\n", dir, repeat,
           ms[repeat / 2]);
    free(state);
    free(chunk);
    free(ms);
    pi0_model_destroy(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && !strcmp(argv[1], "bare"))
        return bare(atof(argv[2]), atof(argv[3]), atoi(argv[4]));
    if (argc == 5 && !strcmp(argv[1], "watch")) return watch(argv[2], argv[3], atof(argv[4]));
    if (argc == 4 && !strcmp(argv[1], "alone")) return alone(argv[2], atoi(argv[3]));
    fprintf(stderr, "usage: node_bench bare HZ SECONDS PRIO | watch STATUS CHUNK SECONDS | "
                    "alone MODEL_DIR REPEAT\n");
    return 2;
}
