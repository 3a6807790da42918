/* calib_bench.c — cost of pi0_calib_actions_out on a 50×32 chunk (the node runs it once
 * per chunk) for each ready file, and of state_in, against a baseline measured in the same
 * run: copying the same chunk's first out_dims columns (the slice alone). One JSON object
 * per line. Run from the repository root (make bench does). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "calib/pi0_calib.h"
#include "common/pi0_time.h"

#define H      50
#define D      32
#define REPS   200
#define ROUNDS 201

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile float g_sink;

/* Median and minimum over ROUNDS of the mean time of one call (µs); on a shared machine the
 * minimum is the cost, the median what a busy machine makes of it. */
#define MEASURE(med, min, body)                                                                \
    do {                                                                                       \
        double r_[ROUNDS];                                                                     \
        for (int k_ = 0; k_ < ROUNDS; k_++) {                                                  \
            double t0_ = (double)pi0__now_ns() * 1e-3;                                         \
            for (int i_ = 0; i_ < REPS; i_++) {                                                \
                body;                                                                          \
            }                                                                                  \
            r_[k_] = ((double)pi0__now_ns() * 1e-3 - t0_) / REPS;                              \
        }                                                                                      \
        qsort(r_, ROUNDS, sizeof r_[0], cmp_d);                                                \
        med = r_[ROUNDS / 2];                                                                  \
        min = r_[0];                                                                           \
    } while (0)

int main(int argc, char **argv) {
    if (argc > 1) {
        printf("usage: calib_bench   (from the repository root; JSON lines on stdout)\n");
        return strcmp(argv[1], "--help") == 0 ? 0 : 2;
    }
    static const char *const robots[] = {"aloha", "droid", "libero", "sim"};
    static float chunk[H * D], out[H * D];
    uint64_t s = 0x1234567;
    for (int i = 0; i < H * D; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        chunk[i] = (float)((double)(s >> 11) / 9007199254740992.0 * 4.0 - 2.0);
    }
    double raw[PI0_CALIB_DIM_MAX], st[PI0_CALIB_DIM_MAX];
    for (int i = 0; i < PI0_CALIB_DIM_MAX; i++)
        raw[i] = 0.01 * i;
    for (size_t r = 0; r < sizeof robots / sizeof robots[0]; r++) {
        char path[128];
        snprintf(path, sizeof path, "calib/robots/%s.ini", robots[r]);
        pi0_calib *c;
        if (pi0_calib_load(path, &c)) {
            fprintf(stderr, "calib_bench: %s\n", pi0_last_error());
            return 1;
        }
        const int od = pi0_calib_out_dim(c);
        double t_out, t_in, t_base, m_out, m_in, m_base;
        MEASURE(t_in, m_in, pi0_calib_state_in(c, raw, PI0_CALIB_DIM_MAX, st);
                g_sink = (float)st[0]);
        MEASURE(t_out, m_out, pi0_calib_actions_out(c, chunk, H, D, st, out); g_sink = out[7]);
        MEASURE(t_base, m_base,
                for (int t = 0; t < H; t++)
                    memcpy(out + t * od, chunk + t * D, (size_t)od * sizeof(float));
                g_sink = out[7]);
        printf("{\"bench\":\"calib_actions_out\",\"robot\":\"%s\",\"horizon\":%d,\"dim\":%d,"
               "\"out_dims\":%d,\"us_min\":%.3f,\"us_median\":%.3f,\"state_in_us_min\":%.3f,"
               "\"state_in_us_median\":%.3f,\"baseline_slice_copy_us_min\":%.3f,"
               "\"baseline_slice_copy_us_median\":%.3f,\"ratio_to_baseline_min\":%.1f}\n",
               robots[r], H, D, od, m_out, t_out, m_in, t_in, m_base, t_base,
               m_base > 0 ? m_out / m_base : 0.0);
        pi0_calib_destroy(c);
    }
    return 0;
}
