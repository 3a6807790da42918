/* bench_kernels.c — pi0rt-bench: kernel benchmarks of the device backends.
 *
 *   pi0rt-bench kernels [--backend NAME] [--threads N] [--reps N] [--quick]
 *       GEMM on the model's real shapes, f32 and bf16 weights, against a raw cblas_sgemm
 *       (OpenBLAS with N threads) on the same shape measured in the same run, and
 *       attention at the pi0 prefix and suffix shapes. One JSON object per line.
 *   pi0rt-bench gemm M N K [--backend NAME] [--threads N] [--reps N]
 *       the `kernels` GEMM lines for one shape.
 *   pi0rt-bench blas M N K [--threads N] [--reps N]
 *       raw cblas_sgemm y[M,N] = x[M,K] · W[N,K]ᵀ (the baseline other benchmarks use).
 *   pi0rt-bench peak [--threads N]
 *   pi0rt-bench small [--backend NAME] [--threads N] [--reps N]
 *       the small-kernel lines of `kernels`: RoPE, GeGLU against an add, and the pool's
 *       overhead (64x1024 add).
 *       the machine's f32 FMA and bf16 dot-product peaks (bench_peak.c). `kernels` and
 *       `gemm` measure them first and report every line as a fraction of the f32 peak.
 *
 * Timings are the best of --reps runs (default: as many as fit in ~2 s per shape, 5 to
 * 200), runs of ours and of raw BLAS interleaved so both see the same machine load. */
#include <cblas.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_cli.h"
#include "common/pi0_time.h"
#include "device/pi0_device.h"
#include "bench_peak.h"

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: pi0rt-bench kernels [--backend NAME] [--threads N] [--reps N] [--quick]\n"
        "       pi0rt-bench gemm M N K [--backend NAME] [--threads N] [--reps N]\n"
        "       pi0rt-bench blas M N K [--threads N] [--reps N]\n"
        "       pi0rt-bench peak [--threads N]\n"
        "       pi0rt-bench small [--backend NAME] [--threads N] [--reps N]\n"
        "Kernel benchmarks: one JSON object per line. `kernels` times GEMM (f32 and bf16\n"
        "weights) on pi0's shapes against raw cblas_sgemm in the same run, and attention;\n"
        "`gemm` prints those lines for one shape; `blas` times raw cblas_sgemm\n"
        "x[M,K]·W[N,K]^T (OpenBLAS with --threads threads). --threads defaults to all allowed\n"
        "CPUs; --reps N: best of N runs (default: as many as fit in ~2 s, 5..200);\n"
        "--quick runs the smallest shapes only. `peak` measures the f32 FMA and bf16 dot\n"
        "product peaks (register-resident loops, one pinned thread per CPU); `kernels` and\n"
        "`gemm` measure them first and add each line's fraction of the f32 peak. `small`\n"
        "prints the lines of `kernels` for small kernels only: RoPE, GeGLU against an add of\n"
        "the same size, and a 64x1024 add "
        "through the pool against one thread.\n");
}

static float *frand(size_t n, float scale) {
    float *p = aligned_alloc(64, (n * 4 + 63) & ~(size_t)63);
    if (!p) {
        fprintf(stderr, "pi0rt-bench: out of memory (%zu floats)\n", n);
        exit(1);
    }
    uint32_t s = 12345;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * scale;
    }
    return p;
}

static double f32_peak; /* GFLOP/s on the benchmark's threads, measured first (0: unknown) */

static double of_peak(double gflops) {
    return f32_peak > 0 ? gflops / f32_peak : 0.0;
}

static int allowed_cpus(void) {
    cpu_set_t set;
    return sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
}

/* --reps not given: as many runs as fit in ~2 s of measuring (5..200), so that on a
 * shared machine the best run of each side is likely one without interference */
static int reps_given;
static int auto_reps(int reps, double one_round_s) {
    if (reps_given) return reps;
    int r = one_round_s > 0 ? (int)(2.0 / one_round_s) : 200;
    return r < reps ? reps : r > 200 ? 200 : r;
}

static double raw_sgemm_s(int m, int n, int k, const float *x, const float *w, float *y,
                          int threads) {
    openblas_set_num_threads(threads);
    double t0 = pi0__now_s();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, k, w, k, 0.0f, y, n);
    double t = pi0__now_s() - t0;
    openblas_set_num_threads(1); /* the cpu backend runs OpenBLAS single-threaded */
    return t;
}

#define DIE(st, what)                                                                          \
    do {                                                                                       \
        if (st) {                                                                              \
            fprintf(stderr, "pi0rt-bench: %s: %s\n", what, pi0_last_error());                  \
            exit(1);                                                                           \
        }                                                                                      \
    } while (0)

static int cmd_blas(int m, int n, int k, int threads, int reps) {
    float *x = frand((size_t)m * k, 1), *w = frand((size_t)n * k, 1),
          *y = frand((size_t)m * n, 1);
    double t_warm = pi0__now_s();
    raw_sgemm_s(m, n, k, x, w, y, threads); /* warm-up */
    reps = auto_reps(reps, pi0__now_s() - t_warm);
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t = raw_sgemm_s(m, n, k, x, w, y, threads);
        if (t < best) best = t;
    }
    printf("{\"bench\":\"blas\",\"m\":%d,\"n\":%d,\"k\":%d,\"threads\":%d,\"gflops\":%.1f,"
           "\"ms\":%.3f}\n",
           m, n, k, threads, 2.0 * m * n * k / best * 1e-9, best * 1e3);
    free(x), free(w), free(y);
    return 0;
}

/* One GEMM shape: ours with f32 and with bf16 weights, and raw cblas_sgemm, interleaved.
 * parts (n_parts > 0): the weight is n_parts matrices of parts[i] rows (sum n) applied to
 * the same x with pi0_dev_gemm_multi (Q/K/V, gate/up); the raw sgemm is the one fused
 * product. epi: also time the f32 GEMM with its fused bias + gelu_tanh epilogue. A round of
 * the f32 peak loop runs between repetitions (the first ten), and every fraction of the
 * peak uses the best peak seen so far: peak and runs see the same machine load. */
static void bench_gemm(pi0_dev *d, pi0_stream *s, int m, int n, int k, int threads, int reps,
                       const char *group, int epi, const int *parts, int n_parts) {
    float *x = frand((size_t)m * k, 1), *w = frand((size_t)n * k, 0.1f),
          *y = frand((size_t)m * n, 1);
    uint16_t *wb = malloc((size_t)n * k * 2);
    if (!wb) exit(1);
    for (size_t i = 0; i < (size_t)n * k; i++)
        wb[i] = pi0_f32_to_bf16(w[i]);
    pi0_buf *bx, *by, *bb;
    DIE(pi0_buf_alloc(d, (size_t)n * 4, &bb), "alloc");
    DIE(pi0_dev_upload(s, bb, 0, y, (size_t)n * 4), "upload");
    pi0_mat mb = pi0_mat_f32(bb, 0, 1, n);
    DIE(pi0_buf_alloc(d, (size_t)m * k * 4, &bx), "alloc");
    DIE(pi0_buf_alloc(d, (size_t)m * n * 4, &by), "alloc");
    DIE(pi0_dev_upload(s, bx, 0, x, (size_t)m * k * 4), "upload");
    pi0_mat mx = pi0_mat_f32(bx, 0, m, k), my = pi0_mat_f32(by, 0, m, n);
    double ours[3] = {1e30, 1e30, 1e30}, raw = 1e30;
    int np = n_parts > 0 ? n_parts : 1, whole[1] = {n};
    if (n_parts <= 0) parts = whole;
    /* W[t][i]: part i of the f32 (t 0) / bf16 (t 1) weight; ys[i]: its columns of y */
    pi0_weight *W[2][PI0_GEMM_MULTI_MAX];
    pi0_mat ys[PI0_GEMM_MULTI_MAX];
    for (int i = 0, r0 = 0; i < np; r0 += parts[i], i++) {
        DIE(pi0_weight_create(d, w + (size_t)r0 * k, PI0_F32, parts[i], k, k, &W[0][i]),
            "weight");
        DIE(pi0_weight_create(d, wb + (size_t)r0 * k, PI0_BF16, parts[i], k, k, &W[1][i]),
            "weight");
        ys[i] = pi0_mat_f32(by, (size_t)m * r0 * 4, m, parts[i]); /* [m, parts[i]] blocks */
    }
#define RUN(t)                                                                                 \
    (n_parts > 0 ? pi0_dev_gemm_multi(s, np, ys, mx, (const pi0_weight *const *)W[t])          \
                 : pi0_dev_gemm(s, my, mx, W[t][0], NULL, PI0_ACT_NONE, 0))
    double t_warm = pi0__now_s();
    for (int t = 0; t < 2; t++) { /* warm-up */
        DIE(RUN(t), "gemm");
        DIE(pi0_stream_sync(s), "sync");
    }
    raw_sgemm_s(m, n, k, x, w, y, threads);
    reps = auto_reps(reps, pi0__now_s() - t_warm);
    for (int r = 0; r < reps; r++) {
        for (int t = 0; t < (epi ? 3 : 2); t++) {
            double t0 = pi0__now_s();
            if (t == 2)
                DIE(pi0_dev_gemm(s, my, mx, W[0][0], &mb, PI0_ACT_GELU_TANH, 0), "gemm");
            else
                DIE(RUN(t), "gemm");
            DIE(pi0_stream_sync(s), "sync");
            double dt = pi0__now_s() - t0;
            if (dt < ours[t]) ours[t] = dt;
        }
        double dt = raw_sgemm_s(m, n, k, x, w, y, threads);
        if (dt < raw) raw = dt;
        if (r < 10) {
            double p = pi0__bench_f32_peak_round(threads);
            if (p > f32_peak) f32_peak = p;
        }
    }
    /* sanity: ours (f32 and bf16 weights) matches raw sgemm, up to the weights' rounding */
    float *yo = malloc((size_t)m * n * 4);
    if (!yo) exit(1);
    double maxd[2] = {0, 0}, maxy = 0;
    for (int t = 0; t < 2; t++) {
        DIE(RUN(t), "gemm");
        DIE(pi0_dev_download(s, yo, by, 0, (size_t)m * n * 4), "download");
        DIE(pi0_stream_sync(s), "sync");
        for (int i = 0, c0 = 0; i < np; c0 += parts[i], i++) /* part i: [m, parts[i]] */
            for (int r = 0; r < m; r++)
                for (int c = 0; c < parts[i]; c++) {
                    double want = y[(size_t)r * n + c0 + c];
                    double dd =
                        fabs((double)yo[(size_t)m * c0 + (size_t)r * parts[i] + c] - want);
                    if (dd > maxd[t]) maxd[t] = dd;
                    if (fabs(want) > maxy) maxy = fabs(want);
                }
    }
#undef RUN
    free(yo);
    if (!(maxd[0] <= 1e-4 * maxy)) {
        fprintf(stderr, "pi0rt-bench: gemm %dx%dx%d: f32 result off by %.3g (of %.3g)\n", m, n,
                k, maxd[0], maxy);
        exit(1);
    }
    char shape[96] = "";
    if (n_parts > 0) {
        int len = snprintf(shape, sizeof shape, ",\"parts\":[");
        for (int i = 0; i < np; i++)
            len += snprintf(shape + len, sizeof shape - (size_t)len, "%s%d", i ? "," : "",
                            parts[i]);
        snprintf(shape + len, sizeof shape - (size_t)len, "]");
    }
    double fl = 2.0 * m * n * k * 1e-9, raw_g = fl / raw;
    for (int t = 0; t < 2; t++) {
        printf("{\"bench\":\"gemm\",\"group\":\"%s\",\"m\":%d,\"n\":%d,\"k\":%d%s,\"wdtype\":"
               "\"%s\","
               "\"gflops\":%.1f,\"blas_gflops\":%.1f,\"ratio\":%.3f,\"ms\":%.3f,"
               "\"weight_mib\":%.1f,\"threads\":%d,\"f32_peak\":%.1f,\"of_f32_peak\":%.3f,"
               "\"blas_of_f32_peak\":%.3f",
               group, m, n, k, shape, t ? "bf16" : "f32", fl / ours[t], raw_g, raw / ours[t],
               ours[t] * 1e3, (double)n * k * (t ? 2 : 4) / 1048576.0, threads, f32_peak,
               of_peak(fl / ours[t]), of_peak(raw_g));
        if (t)
            printf(",\"of_f32\":%.3f,\"rel_diff_vs_f32\":%.1e", ours[0] / ours[1],
                   maxd[1] / maxy);
        else if (epi)
            printf(",\"gflops_bias_gelu\":%.1f", fl / ours[2]);
        printf("}\n");
    }
    fflush(stdout);
    for (int i = 0; i < np; i++) {
        pi0_weight_destroy(W[0][i]);
        pi0_weight_destroy(W[1][i]);
    }
    pi0_buf_free(bx);
    pi0_buf_free(by);
    pi0_buf_free(bb);
    free(x), free(w), free(y), free(wb);
}

static void bench_attention(pi0_dev *d, pi0_stream *s, int nq, int nk, int nh, int nkv, int hd,
                            int reps, const char *group) {
    float *q = frand((size_t)nq * nh * hd, 1), *k = frand((size_t)nk * nkv * hd, 1);
    uint8_t *mask = malloc((size_t)nq * nk);
    if (!mask) exit(1);
    for (int t = 0; t < nq; t++) /* pi0 suffix style: prefix visible, then causal-ish */
        for (int u = 0; u < nk; u++)
            mask[(size_t)t * nk + u] = u < nk - nq || u - (nk - nq) <= t;
    pi0_buf *bq, *bk, *bo, *bm;
    DIE(pi0_buf_alloc(d, (size_t)nq * nh * hd * 4, &bq), "alloc");
    DIE(pi0_buf_alloc(d, (size_t)nk * nkv * hd * 4, &bk), "alloc");
    DIE(pi0_buf_alloc(d, (size_t)nq * nh * hd * 4, &bo), "alloc");
    DIE(pi0_buf_alloc(d, (size_t)nq * nk, &bm), "alloc");
    DIE(pi0_dev_upload(s, bq, 0, q, (size_t)nq * nh * hd * 4), "upload");
    DIE(pi0_dev_upload(s, bk, 0, k, (size_t)nk * nkv * hd * 4), "upload");
    DIE(pi0_dev_upload(s, bm, 0, mask, (size_t)nq * nk), "upload");
    pi0_mat mq = pi0_mat_f32(bq, 0, nq, nh * hd), mk = pi0_mat_f32(bk, 0, nk, nkv * hd),
            mo = pi0_mat_f32(bo, 0, nq, nh * hd);
    pi0_mat mm = {bm, 0, nq, nk, nk, PI0_U8};
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = pi0__now_s();
        DIE(pi0_dev_attention(s, mo, mq, mk, mk, &mm, nh, nkv, hd, 0.0625f), "attention");
        DIE(pi0_stream_sync(s), "sync");
        double dt = pi0__now_s() - t0;
        if (r == 0) reps = auto_reps(reps, dt); /* run 0 is the warm-up */
        if (r && dt < best) best = dt;
    }
    double fl = 4.0 * nq * nk * nh * hd * 1e-9;
    printf(
        "{\"bench\":\"attention\",\"group\":\"%s\",\"n_q\":%d,\"n_k\":%d,\"heads\":%d,"
        "\"kv_heads\":%d,\"head_dim\":%d,\"gflops\":%.1f,\"ms\":%.3f,\"of_f32_peak\":%.3f}\n",
        group, nq, nk, nh, nkv, hd, fl / best, best * 1e3, of_peak(fl / best));
    fflush(stdout);
    pi0_buf_free(bq), pi0_buf_free(bk), pi0_buf_free(bo), pi0_buf_free(bm);
    free(q), free(k), free(mask);
}

/* best seconds of one kernel call (enqueue + sync), after a warm-up call */
#define TIME_BEST(best, reps, call)                                                            \
    do {                                                                                       \
        for (int r_ = 0; r_ <= (reps); r_++) {                                                 \
            double t0_ = pi0__now_s();                                                         \
            DIE(call, #call);                                                                  \
            DIE(pi0_stream_sync(s), "sync");                                                   \
            double dt_ = pi0__now_s() - t0_;                                                   \
            if (r_ && dt_ < (best)) (best) = dt_;                                              \
        }                                                                                      \
    } while (0)

/* RoPE on n tokens of nh heads x hd at positions p0.. (the prefix's q, the suffix's) */
static void bench_rope(pi0_dev *d, pi0_stream *s, int n, int nh, int hd, int p0, int reps,
                       const char *group) {
    float *x = frand((size_t)n * nh * hd, 1);
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) exit(1);
    for (int i = 0; i < n; i++)
        pos[i] = p0 + i;
    pi0_buf *bx, *bp;
    DIE(pi0_buf_alloc(d, (size_t)n * nh * hd * 4, &bx), "alloc");
    DIE(pi0_buf_alloc(d, (size_t)n * 4, &bp), "alloc");
    DIE(pi0_dev_upload(s, bx, 0, x, (size_t)n * nh * hd * 4), "upload");
    DIE(pi0_dev_upload(s, bp, 0, pos, (size_t)n * 4), "upload");
    pi0_mat mx = pi0_mat_f32(bx, 0, n, nh * hd), mp = {bp, 0, 1, n, n, PI0_I32};
    double best = 1e30;
    TIME_BEST(best, reps * 20, pi0_dev_rope(s, mx, mp, nh, hd, 10000.0f));
    printf("{\"bench\":\"rope\",\"group\":\"%s\",\"tokens\":%d,\"heads\":%d,\"head_dim\":%d,"
           "\"us\":%.2f}\n",
           group, n, nh, hd, best * 1e6);
    fflush(stdout);
    pi0_buf_free(bx), pi0_buf_free(bp);
    free(x), free(pos);
}

/* RoPE of q (nh heads) and k (nkv heads) of n tokens at positions p0..: one
 * pi0_dev_rope_qk ("us") against pi0_dev_rope on k then on q ("us_separate", what the
 * model ran before), alternating in the same run */
static void bench_rope_qk(pi0_dev *d, pi0_stream *s, int n, int nh, int nkv, int hd, int p0,
                          int reps, const char *group) {
    size_t qn = (size_t)n * nh * hd, kn = (size_t)n * nkv * hd;
    float *x = frand(qn + kn, 1);
    int32_t *pos = malloc((size_t)n * sizeof *pos);
    if (!pos) exit(1);
    for (int i = 0; i < n; i++)
        pos[i] = p0 + i;
    pi0_buf *bx, *bp;
    DIE(pi0_buf_alloc(d, (qn + kn) * 4, &bx), "alloc");
    DIE(pi0_buf_alloc(d, (size_t)n * 4, &bp), "alloc");
    DIE(pi0_dev_upload(s, bx, 0, x, (qn + kn) * 4), "upload");
    DIE(pi0_dev_upload(s, bp, 0, pos, (size_t)n * 4), "upload");
    pi0_mat mq = pi0_mat_f32(bx, 0, n, nh * hd), mk = pi0_mat_f32(bx, qn * 4, n, nkv * hd);
    pi0_mat mp = {bp, 0, 1, n, n, PI0_I32};
    double one = 1e30, two = 1e30;
    for (int r = 0; r < 5; r++) {
        TIME_BEST(one, reps * 4, pi0_dev_rope_qk(s, mq, mk, mp, nh, nkv, hd, 10000.0f));
        TIME_BEST(two, reps * 4,
                  pi0_dev_rope(s, mk, mp, nkv, hd, 10000.0f) ||
                      pi0_dev_rope(s, mq, mp, nh, hd, 10000.0f));
    }
    printf("{\"bench\":\"rope_qk\",\"group\":\"%s\",\"tokens\":%d,\"heads\":%d,"
           "\"kv_heads\":%d,\"head_dim\":%d,\"us\":%.2f,\"us_separate\":%.2f,"
           "\"speedup\":%.3f}\n",
           group, n, nh, nkv, hd, one * 1e6, two * 1e6, two / one);
    fflush(stdout);
    pi0_buf_free(bx), pi0_buf_free(bp);
    free(x), free(pos);
}

/* y = a + b on rows x cols floats, per op of 64 enqueued back to back: through the pool
 * on `threads` threads and on a device with one thread (no pool), in the same run */
static void bench_pool(const char *backend, int threads, int rows, int cols, int reps) {
    double best[2] = {1e30, 1e30};
    for (int v = 0; v < 2; v++) {
        pi0_dev_opts o = {.n_threads = v ? threads : 1};
        pi0_dev *d;
        pi0_stream *s;
        DIE(pi0_dev_open(backend, &o, &d), "open");
        DIE(pi0_stream_create(d, &s), "stream");
        float *x = frand((size_t)rows * cols, 1);
        pi0_buf *b;
        DIE(pi0_buf_alloc(d, (size_t)rows * cols * 4 * 2, &b), "alloc");
        DIE(pi0_dev_upload(s, b, 0, x, (size_t)rows * cols * 4), "upload");
        DIE(pi0_dev_upload(s, b, (size_t)rows * cols * 4, x, (size_t)rows * cols * 4),
            "upload");
        pi0_mat ma = pi0_mat_f32(b, 0, rows, cols),
                mb = pi0_mat_f32(b, (size_t)rows * cols * 4, rows, cols);
        for (int r = 0; r <= reps * 20; r++) { /* 64 ops per sync: no stream wake-up */
            double t0 = pi0__now_s();
            for (int i = 0; i < 64; i++)
                DIE(pi0_dev_binary(s, PI0_BIN_ADD, ma, ma, mb), "binary");
            DIE(pi0_stream_sync(s), "sync");
            double dt = (pi0__now_s() - t0) / 64;
            if (r && dt < best[v]) best[v] = dt;
        }
        pi0_buf_free(b);
        free(x);
        pi0_stream_destroy(s);
        DIE(pi0_dev_close(d), "close");
    }
    printf("{\"bench\":\"pool\",\"op\":\"add\",\"rows\":%d,\"cols\":%d,\"threads\":%d,"
           "\"us\":%.2f,\"us_one_thread\":%.2f}\n",
           rows, cols, threads, best[1] * 1e6, best[0] * 1e6);
    fflush(stdout);
}

/* GeGLU y = gelu_tanh(g) * u (the expert's MLP: 51 x 4096) against an add of the same
 * size in the same run: the ratio shows whether the exp polynomial runs in vector code
 * (~3x an add) or scalar (~10x and more) */
static void bench_geglu(pi0_dev *d, pi0_stream *s, int rows, int cols, int reps) {
    size_t n = (size_t)rows * cols;
    float *x = frand(2 * n, 1);
    pi0_buf *b;
    DIE(pi0_buf_alloc(d, 3 * n * 4, &b), "alloc");
    DIE(pi0_dev_upload(s, b, 0, x, 2 * n * 4), "upload");
    pi0_mat g = pi0_mat_f32(b, 0, rows, cols), u = pi0_mat_f32(b, n * 4, rows, cols),
            y = pi0_mat_f32(b, 2 * n * 4, rows, cols);
    double geglu = 1e30, add = 1e30;
    for (int r = 0; r < 5; r++) {
        TIME_BEST(geglu, reps * 4, pi0_dev_geglu(s, y, g, u));
        TIME_BEST(add, reps * 4, pi0_dev_binary(s, PI0_BIN_ADD, y, g, u));
    }
    printf("{\"bench\":\"geglu\",\"rows\":%d,\"cols\":%d,\"us\":%.2f,\"us_add\":%.2f,"
           "\"ratio_to_add\":%.2f}\n",
           rows, cols, geglu * 1e6, add * 1e6, geglu / add);
    fflush(stdout);
    pi0_buf_free(b);
    free(x);
}

static int cmd_small(const char *backend, int threads, int reps) {
    pi0_dev_opts o = {.n_threads = threads};
    pi0_dev *d;
    pi0_stream *s;
    DIE(pi0_dev_open(backend, &o, &d), "open");
    DIE(pi0_stream_create(d, &s), "stream");
    bench_rope(d, s, 51, 8, 256, 816, reps, "suffix");
    bench_rope(d, s, 816, 8, 256, 0, reps, "prefix");
    bench_rope_qk(d, s, 51, 8, 1, 256, 816, reps, "suffix");
    bench_rope_qk(d, s, 816, 8, 1, 256, 0, reps, "prefix");
    bench_geglu(d, s, 51, 4096, reps);
    pi0_stream_destroy(s);
    DIE(pi0_dev_close(d), "close");
    bench_pool(backend, threads, 64, 1024, reps);
    return 0;
}

static int cmd_kernels(const char *backend, int threads, int reps, int quick) {
    double bf16_peak;
    f32_peak = pi0__bench_peaks(threads, &bf16_peak);
    pi0_dev_opts o = {.n_threads = threads};
    pi0_dev *d;
    pi0_stream *s;
    DIE(pi0_dev_open(backend, &o, &d), "open");
    DIE(pi0_stream_create(d, &s), "stream");
    /* the model's GEMMs (1 camera, 48 tokens: 816 prefix rows; 51 action rows; 3 cameras
     * of SigLIP patches: 768 rows), Q/K/V and gate/up as the products the model issues */
    static const struct {
        int m, k;
        const char *group;
        int parts[3];
    } shapes[] = {
        {51, 1024, "expert", {2048, 256, 256}}, {51, 1024, "expert", {4096, 4096}},
        {51, 4096, "expert", {1024}},           {51, 2048, "expert", {1024}},
        {768, 1152, "siglip", {4304}},          {768, 4304, "siglip", {1152}},
        {768, 1152, "siglip", {1152}},          {816, 2048, "gemma", {2048, 256, 256}},
        {816, 2048, "gemma", {16384, 16384}},   {816, 16384, "gemma", {2048}},
        {816, 2048, "gemma", {2048}},
    };
    int n_shapes = quick ? 4 : (int)(sizeof shapes / sizeof shapes[0]);
    for (int i = 0; i < n_shapes; i++) {
        int np = 0, n = 0;
        while (np < 3 && shapes[i].parts[np])
            n += shapes[i].parts[np++];
        bench_gemm(d, s, shapes[i].m, n, shapes[i].k, threads, reps, shapes[i].group,
                   shapes[i].m == 768 && n == 4304, /* SigLIP fc1: + bias, gelu */
                   shapes[i].parts, np > 1 ? np : 0);
    }
    bench_attention(d, s, 51, 867, 8, 1, 256, reps, "suffix");
    if (!quick) bench_attention(d, s, 816, 816, 8, 1, 256, reps, "prefix");
    pi0_stream_destroy(s);
    DIE(pi0_dev_close(d), "close");
    return cmd_small(backend, threads, reps);
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    int threads = allowed_cpus(), reps = 5, quick = 0, pos[3], npos = 0;
    const char *backend = "cpu";
    enum { O_THREADS = 256, O_REPS, O_BACKEND, O_QUICK };
    static const struct option opts[] = {{"threads", required_argument, NULL, O_THREADS},
                                         {"reps", required_argument, NULL, O_REPS},
                                         {"backend", required_argument, NULL, O_BACKEND},
                                         {"quick", no_argument, NULL, O_QUICK},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    opterr = 0;
    optind = 2; /* after the command */
    for (int c; (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1;) {
        switch (c) {
        case O_THREADS:
            threads = atoi(optarg);
            break;
        case O_REPS:
            reps = atoi(optarg);
            reps_given = 1;
            break;
        case O_BACKEND:
            backend = optarg;
            break;
        case O_QUICK:
            quick = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            return pi0__opt_error("pi0rt-bench", argv, c);
        }
    }
    for (int i = optind; i < argc; i++) {
        const char *a = argv[i];
        if (npos < 3 && a[0] >= '0' && a[0] <= '9') {
            pos[npos++] = atoi(a);
        } else {
            fprintf(stderr, "pi0rt-bench: unexpected argument \"%s\" (see --help)\n", a);
            return PI0_EXIT_USAGE;
        }
    }
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "pi0rt-bench: --threads and --reps must be >= 1\n");
        return 2;
    }
    if (!strcmp(argv[1], "blas")) {
        if (npos != 3 || pos[0] < 1 || pos[1] < 1 || pos[2] < 1) {
            fprintf(stderr, "pi0rt-bench blas: want three positive sizes M N K\n");
            return 2;
        }
        return cmd_blas(pos[0], pos[1], pos[2], threads, reps);
    }
    if (!strcmp(argv[1], "gemm")) {
        if (npos != 3 || pos[0] < 1 || pos[1] < 1 || pos[2] < 1) {
            fprintf(stderr, "pi0rt-bench gemm: want three positive sizes M N K\n");
            return 2;
        }
        double bf16_peak;
        f32_peak = pi0__bench_peaks(threads, &bf16_peak);
        pi0_dev_opts o = {.n_threads = threads};
        pi0_dev *d;
        pi0_stream *s;
        DIE(pi0_dev_open(backend, &o, &d), "open");
        DIE(pi0_stream_create(d, &s), "stream");
        bench_gemm(d, s, pos[0], pos[1], pos[2], threads, reps, "custom", 1, NULL, 0);
        pi0_stream_destroy(s);
        DIE(pi0_dev_close(d), "close");
        return 0;
    }
    if (!strcmp(argv[1], "peak")) {
        if (npos) {
            fprintf(stderr, "pi0rt-bench peak: unexpected size arguments\n");
            return 2;
        }
        double bf16_peak;
        return pi0__bench_peaks(threads, &bf16_peak) > 0 ? 0 : 1;
    }
    if (!strcmp(argv[1], "small")) {
        if (npos) {
            fprintf(stderr, "pi0rt-bench small: unexpected size arguments\n");
            return 2;
        }
        return cmd_small(backend, threads, reps);
    }
    if (!strcmp(argv[1], "kernels")) {
        if (npos) {
            fprintf(stderr, "pi0rt-bench kernels: unexpected size arguments\n");
            return 2;
        }
        return cmd_kernels(backend, threads, reps, quick);
    }
    fprintf(stderr,
            "pi0rt-bench: unknown command \"%s\" (want kernels, gemm, blas, peak or small; see "
            "--help)\n",
            argv[1]);
    return 2;
}
