/* test_device.c — the device interface, run on every built backend (pi0_dev_backends())
 * against plain C references written from pi0_device.h / PI0-SPEC.md (double precision),
 * in the spirit of ggml's test-backend-ops.
 *
 * Tolerances (per op, |got - ref| <= bound):
 *   gemm        1e-5 * (1 + sum_l |x_l * w_l|) (+ the same on the bias/activation)
 *   norms, elementwise, rope, gather            1e-5 * (1 + |ref|)
 *   attention   2e-5 * (1 + max |v|)
 *   bf16/f16 conversions                        exact */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "device/pi0_device.h"
#include "device/cpu/cpu.h"     /* test_reserve_rope looks at the cpu backend's table */
#include "device/device_impl.h" /* only for test_optional_fallbacks */

// ---- helpers ----

static _Thread_local uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static void rng_seed(uint64_t s) {
    rng_state = s * 0x9e3779b97f4a7c15ull + 1;
}
static uint32_t rng_u32(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}
static float rnd(void) {
    return (float)((double)rng_u32() / 4294967296.0 * 2.0 - 1.0);
}
static void fill(float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++)
        x[i] = rnd() * scale;
}
static float *fnew(size_t n) {
    float *p = calloc(n ? n : 1, sizeof(float));
    if (!p) abort();
    return p;
}

typedef struct env {
    pi0_dev *d;
    pi0_stream *s;
    const char *name;
} env;

static int env_open(env *e, const char *name, const pi0_dev_opts *opts) {
    memset(e, 0, sizeof *e);
    e->name = name;
    int st = pi0_dev_open(name, opts, &e->d);
    CHECK_MSG(st == PI0_OK, "open %s: %s", name, pi0_last_error());
    if (st) return st;
    st = pi0_stream_create(e->d, &e->s);
    CHECK_STATUS(st, PI0_OK);
    return st;
}

static void env_close(env *e) {
    pi0_stream_destroy(e->s);
    CHECK_STATUS(pi0_dev_close(e->d), PI0_OK);
}

#define FOR_EACH_BACKEND(e)                                                                    \
    for (const char *const *bn_ = pi0_dev_backends(); *bn_; bn_++)                             \
        for (env e, *once_ = &e; once_ && env_open(&e, *bn_, NULL) == PI0_OK;                  \
             env_close(&e), once_ = NULL)

/* A device matrix in its own buffer, at a 64-byte offset, with row stride ld >= cols. */
typedef struct dmat {
    pi0_buf *b;
    pi0_mat m;
} dmat;

static dmat dm_new(env *e, int rows, int cols, int ld, pi0_dtype t) {
    dmat d;
    size_t es = pi0_dtype_size(t), off = 64;
    if (ld < cols) ld = cols;
    CHECK_STATUS(pi0_buf_alloc(e->d, off + (size_t)rows * ld * es, &d.b), PI0_OK);
    d.m = (pi0_mat){d.b, off, rows, cols, ld, t};
    return d;
}

static void dm_put(env *e, dmat *d, const void *host) {
    size_t es = pi0_dtype_size(d->m.dtype);
    for (int r = 0; r < d->m.rows; r++)
        CHECK_STATUS(pi0_dev_upload(e->s, d->b, d->m.off + (size_t)r * d->m.ld * es,
                                    (const char *)host + (size_t)r * d->m.cols * es,
                                    (size_t)d->m.cols * es),
                     PI0_OK);
}

static void dm_get(env *e, dmat *d, void *host) {
    size_t es = pi0_dtype_size(d->m.dtype);
    for (int r = 0; r < d->m.rows; r++)
        CHECK_STATUS(pi0_dev_download(e->s, (char *)host + (size_t)r * d->m.cols * es, d->b,
                                      d->m.off + (size_t)r * d->m.ld * es,
                                      (size_t)d->m.cols * es),
                     PI0_OK);
    CHECK_STATUS(pi0_stream_sync(e->s), PI0_OK);
}

static dmat dm_from(env *e, int rows, int cols, int ld, const float *host) {
    dmat d = dm_new(e, rows, cols, ld, PI0_F32);
    dm_put(e, &d, host);
    return d;
}

static void dm_free(dmat *d) {
    pi0_buf_free(d->b);
}

/* Compares got with ref: |got-ref| <= tol[i] (tol NULL: atol + rtol*|ref|). Reports the
 * first mismatch and the count; returns the number of mismatches. */
static int compare(const char *what, const float *got, const double *ref, const double *tol,
                   size_t n, double atol, double rtol) {
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double t = tol ? tol[i] : atol + rtol * fabs(ref[i]);
        if (!(fabs((double)got[i] - ref[i]) <= t)) {
            if (!bad)
                fprintf(stderr, "  %s: first mismatch at %zu: got %.9g, want %.9g (tol %g)\n",
                        what, i, (double)got[i], ref[i], t);
            bad++;
        }
    }
    if (bad) fprintf(stderr, "  %s: %d of %zu elements off\n", what, bad, n);
    CHECK_MSG(bad == 0, "%s", what);
    return bad;
}

static double ref_gelu(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double ref_silu(double x) {
    return x / (1.0 + exp(-x));
}

// ---- backends and conversions ----

static void test_backends_and_open(void) {
    const char *const *names = pi0_dev_backends();
    int has_cpu = 0;
    for (const char *const *p = names; *p; p++)
        has_cpu |= strcmp(*p, "cpu") == 0;
    CHECK(has_cpu);
    pi0_dev *d = (pi0_dev *)1;
    CHECK_STATUS(pi0_dev_open("tpu9000", NULL, &d), PI0_ENOTSUP);
    CHECK(d == NULL);
    CHECK(strstr(pi0_last_error(), "tpu9000") != NULL);
    CHECK(strstr(pi0_last_error(), "cpu") != NULL);
    CHECK_STATUS(pi0_dev_open(NULL, NULL, &d), PI0_EINVAL);
    CHECK_STATUS(pi0_dev_open("cpu", NULL, NULL), PI0_EINVAL);
    int bad_cpu = -1;
    pi0_dev_opts o = {.n_threads = 2, .cpus = &bad_cpu, .n_cpus = 1};
    CHECK_STATUS(pi0_dev_open("cpu", &o, &d), PI0_EINVAL);
    /* a CPU this process may not use: an error naming it, never an unpinned thread */
    cpu_set_t allowed;
    CHECK(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
    int off_cpu = CPU_SETSIZE - 1;
    while (off_cpu > 0 && CPU_ISSET(off_cpu, &allowed))
        off_cpu--;
    if (!CPU_ISSET(off_cpu, &allowed)) {
        char want[64];
        snprintf(want, sizeof want, "CPU %d", off_cpu);
        o.cpus = &off_cpu; /* 2 threads: the pool helper starts at open */
        CHECK_STATUS(pi0_dev_open("cpu", &o, &d), PI0_EINVAL);
        CHECK_MSG(strstr(pi0_last_error(), want) != NULL, "%s", pi0_last_error());
        o.n_threads = 1; /* no helper: the stream worker is the first thread */
        CHECK_STATUS(pi0_dev_open("cpu", &o, &d), PI0_OK);
        pi0_stream *s = NULL;
        CHECK_STATUS(pi0_stream_create(d, &s), PI0_EINVAL);
        CHECK_MSG(strstr(pi0_last_error(), want) != NULL, "%s", pi0_last_error());
        CHECK_STATUS(pi0_dev_close(d), PI0_OK);
    }
    CHECK_STATUS(pi0_dev_close(NULL), PI0_OK);
    CHECK_EQ_INT(pi0_dtype_size(PI0_F32), 4);
    CHECK_EQ_INT(pi0_dtype_size(PI0_BF16), 2);
    CHECK_EQ_INT(pi0_dtype_size(PI0_U8), 1);
    CHECK_EQ_STR(pi0_dtype_name(PI0_BF16), "bf16");
    FOR_EACH_BACKEND(e) {
        CHECK_EQ_STR(pi0_dev_name(e.d), e.name);
    }
}

/* Every pthread_create of the process (OpenBLAS's too: the executable's definition comes
 * first) passes here; while `counting`, a thread that starts with more than one allowed CPU
 * (the mask in its attributes, else its creator's) is counted. */
static atomic_int counting, unpinned;
__attribute__((visibility("default"))) int pthread_create(pthread_t *t, const pthread_attr_t *a,
                                                          void *(*fn)(void *), void *arg) {
    static int (*real)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
    if (!real) *(void **)&real = dlsym(RTLD_NEXT, "pthread_create");
    if (atomic_load(&counting)) {
        cpu_set_t set;
        CPU_ZERO(&set);
        int st = a ? pthread_attr_getaffinity_np(a, sizeof set, &set)
                   : sched_getaffinity(0, sizeof set, &set);
        if (st || CPU_COUNT(&set) != 1) atomic_fetch_add(&unpinned, 1);
    }
    return real(t, a, fn, arg);
}

/* Opening the device on given CPUs starts no thread that may run elsewhere, the first open
 * of the process or a later one (OpenBLAS's thread server, stopped by the first, must not
 * be restarted by the next). */
static void test_open_starts_pinned_threads(void) {
    cpu_set_t allowed;
    CHECK(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
    int cpu = 0;
    while (!CPU_ISSET(cpu, &allowed))
        cpu++;
    pi0_dev_opts o = {.n_threads = 2, .cpus = &cpu, .n_cpus = 1};
    for (int i = 0; i < 3; i++) {
        pi0_dev *d = NULL;
        atomic_store(&unpinned, 0);
        atomic_store(&counting, 1);
        CHECK_STATUS(pi0_dev_open("cpu", &o, &d), PI0_OK);
        pi0_stream *s = NULL;
        CHECK_STATUS(pi0_stream_create(d, &s), PI0_OK);
        atomic_store(&counting, 0);
        CHECK_MSG(atomic_load(&unpinned) == 0,
                  "open %d started %d threads not pinned to CPU %d", i + 1,
                  atomic_load(&unpinned), cpu);
        pi0_stream_destroy(s);
        CHECK_STATUS(pi0_dev_close(d), PI0_OK);
    }
}

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static void test_bf16_conversion(void) {
    CHECK_EQ_INT(pi0_f32_to_bf16(1.0f), 0x3f80);
    CHECK_EQ_INT(pi0_f32_to_bf16(-2.0f), 0xc000);
    CHECK_EQ_INT(pi0_f32_to_bf16(from_bits(0x3f808000)), 0x3f80); /* tie -> even (down) */
    CHECK_EQ_INT(pi0_f32_to_bf16(from_bits(0x3f818000)), 0x3f82); /* tie -> even (up) */
    CHECK_EQ_INT(pi0_f32_to_bf16(from_bits(0x3f808001)), 0x3f81); /* above the tie */
    CHECK_EQ_INT(pi0_f32_to_bf16(from_bits(0x3f807fff)), 0x3f80); /* below the tie */
    CHECK_EQ_INT(pi0_f32_to_bf16(from_bits(0xbf818000)), 0xbf82); /* negative tie */
    CHECK_EQ_INT(pi0_f32_to_bf16(INFINITY), 0x7f80);
    CHECK_EQ_INT(pi0_f32_to_bf16(-INFINITY), 0xff80);
    CHECK_EQ_INT(pi0_f32_to_bf16(from_bits(0x7f7fffff)), 0x7f80); /* FLT_MAX rounds to Inf */
    CHECK_EQ_INT(pi0_f32_to_bf16(0.0f), 0);
    CHECK_EQ_INT(pi0_f32_to_bf16(-0.0f), 0x8000);
    CHECK_EQ_INT(pi0_f32_to_bf16(from_bits(0x00008000)), 0x0000); /* subnormal tie -> even */
    uint32_t nans[] = {0x7fc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0x7f80ffff};
    for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++) {
        uint16_t h = pi0_f32_to_bf16(from_bits(nans[i]));
        CHECK_MSG((h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0 && (h & 0x40),
                  "NaN %08x -> %04x is not a quiet NaN", nans[i], h);
        CHECK_EQ_INT(h >> 15, nans[i] >> 31);
    }
    CHECK(isnan(pi0_bf16_to_f32(0x7fc0)));
    CHECK(pi0_bf16_to_f32(0xff80) == -INFINITY);
    /* every finite bf16 round-trips exactly; random f32 round to the nearest bf16 */
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = pi0_bf16_to_f32((uint16_t)h);
        if (isnan(f)) continue;
        if (pi0_f32_to_bf16(f) != h) {
            CHECK_MSG(0, "bf16 %04x does not round-trip", h);
            break;
        }
    }
    rng_seed(1);
    for (int i = 0; i < 100000; i++) {
        float f = from_bits(rng_u32() ^ (rng_u32() << 16));
        if (!isfinite(f)) continue;
        uint16_t h = pi0_f32_to_bf16(f);
        double got = pi0_bf16_to_f32(h);
        double lo = pi0_bf16_to_f32((uint16_t)(h - 1)), hi = pi0_bf16_to_f32((uint16_t)(h + 1));
        /* no neighbour is strictly closer */
        if (isfinite(got) && (fabs(lo - f) < fabs(got - f) || fabs(hi - f) < fabs(got - f))) {
            CHECK_MSG(0, "f32 %.9g -> bf16 %04x is not the nearest", (double)f, h);
            break;
        }
    }
    /* f16 */
    CHECK(pi0_f16_to_f32(0x3c00) == 1.0f);
    CHECK(pi0_f16_to_f32(0xc000) == -2.0f);
    CHECK(pi0_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(pi0_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    CHECK(pi0_f16_to_f32(0x03ff) == ldexpf(1023.0f, -24));
    CHECK(pi0_f16_to_f32(0x7c00) == INFINITY);
    CHECK(pi0_f16_to_f32(0xfc00) == -INFINITY);
    CHECK(isnan(pi0_f16_to_f32(0x7e00)));
    CHECK(isnan(pi0_f16_to_f32(0x7c01)));
    CHECK(signbit(pi0_f16_to_f32(0x8000)) && pi0_f16_to_f32(0x8000) == 0.0f);
}

// ---- GEMM ----

static void ref_gemm(double *out, const float *y0, const float *x, const float *w,
                     const float *bias, int act, int acc, int m, int n, int k, double *tol) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0, mag = 0;
            for (int l = 0; l < k; l++) {
                double p = (double)x[(size_t)i * k + l] * w[(size_t)j * k + l];
                s += p;
                mag += fabs(p);
            }
            if (bias) {
                s += bias[j];
                mag += fabs(bias[j]);
            }
            double t = 1e-5 * (1 + mag);
            if (act == PI0_ACT_GELU_TANH) s = ref_gelu(s);
            if (act == PI0_ACT_SILU) s = ref_silu(s);
            if (acc) {
                s += y0[(size_t)i * n + j];
                t += 1e-6 * fabs(y0[(size_t)i * n + j]);
            }
            out[(size_t)i * n + j] = s;
            tol[(size_t)i * n + j] = t;
        }
}

static void gemm_case(env *e, int m, int n, int k, pi0_dtype wt, int use_bias, int act, int acc,
                      int pad) {
    char what[160];
    snprintf(what, sizeof what, "%s gemm m=%d n=%d k=%d w=%s bias=%d act=%d acc=%d pad=%d",
             e->name, m, n, k, pi0_dtype_name(wt), use_bias, act, acc, pad);
    int ldw = k + pad;
    float *x = fnew((size_t)m * k), *w = fnew((size_t)n * k), *b = fnew(n),
          *y0 = fnew((size_t)m * n), *y = fnew((size_t)m * n);
    double *ref = malloc((size_t)m * n * sizeof(double)),
           *tol = malloc((size_t)m * n * sizeof(double));
    fill(x, (size_t)m * k, 1.0f);
    fill(w, (size_t)n * k, 0.5f);
    fill(b, n, 1.0f);
    fill(y0, (size_t)m * n, 1.0f);
    /* host weight in its dtype, with row stride ldw; w holds the exact values it stands for */
    void *wh = calloc((size_t)n * ldw, wt == PI0_F32 ? 4 : 2);
    for (int j = 0; j < n; j++)
        for (int l = 0; l < k; l++) {
            size_t i = (size_t)j * k + l, ih = (size_t)j * ldw + l;
            if (wt == PI0_F32) {
                ((float *)wh)[ih] = w[i];
            } else if (wt == PI0_BF16) {
                uint16_t h = pi0_f32_to_bf16(w[i]);
                ((uint16_t *)wh)[ih] = h;
                w[i] = pi0_bf16_to_f32(h);
            } else { /* f16: w in [-0.5, 0.5] on a 2^-12 grid is exact in f16 */
                int q = (int)lrintf(w[i] * 4096.0f);
                w[i] = (float)q / 4096.0f;
                uint16_t h = 0;
                if (q) { /* |q| * 2^-12 = 1.man * 2^(e2-12) */
                    int sg = q < 0, a = abs(q), e2 = 31 - __builtin_clz((unsigned)a);
                    uint32_t man =
                        (e2 <= 10 ? (uint32_t)a << (10 - e2) : (uint32_t)a >> (e2 - 10)) &
                        0x3ff;
                    h = (uint16_t)((sg << 15) | ((e2 + 3) << 10) | (int)man);
                }
                ((uint16_t *)wh)[ih] = h;
            }
        }
    pi0_weight *W;
    CHECK_STATUS(pi0_weight_create(e->d, wh, wt, n, k, ldw, &W), PI0_OK);
    dmat dx = dm_from(e, m, k, k + pad, x), dy = dm_from(e, m, n, n + pad, y0),
         db = dm_from(e, 1, n, n, b);
    int st = pi0_dev_gemm(e->s, dy.m, dx.m, W, use_bias ? &db.m : NULL, (pi0_act)act, acc);
    CHECK_MSG(st == PI0_OK, "%s: %s", what, pi0_last_error());
    dm_get(e, &dy, y);
    ref_gemm(ref, y0, x, w, use_bias ? b : NULL, act, acc, m, n, k, tol);
    compare(what, y, ref, tol, (size_t)m * n, 0, 0);
    pi0_weight_destroy(W);
    dm_free(&dx);
    dm_free(&dy);
    dm_free(&db);
    free(wh);
    free(x), free(w), free(b), free(y0), free(y), free(ref), free(tol);
}

static void test_gemm(void) {
    FOR_EACH_BACKEND(e) {
        rng_seed(2);
        static const int shapes[][3] = {{1, 1, 1},      {1, 37, 19},    {7, 33, 65},
                                        {3, 64, 1},     {51, 300, 257}, {64, 1030, 129},
                                        {130, 17, 2050}};
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int wt = 0; wt < 3; wt++) {
                int m = shapes[i][0], n = shapes[i][1], k = shapes[i][2];
                gemm_case(&e, m, n, k, (pi0_dtype)wt, 0, 0, 0, 0);
                gemm_case(&e, m, n, k, (pi0_dtype)wt, 1, (int)(i % 3), (int)(i & 1), 3);
            }
        for (int act = 0; act < 3; act++)
            for (int acc = 0; acc < 2; acc++) {
                gemm_case(&e, 19, 77, 45, PI0_F32, 1, act, acc, 5);
                gemm_case(&e, 19, 77, 45, PI0_BF16, act == 1, act, acc, 0);
            }
        /* small m (the direct bf16 kernel on AVX-512) across its k chunk, and just above */
        gemm_case(&e, 51, 67, 2100, PI0_BF16, 1, PI0_ACT_NONE, 1, 5);
        gemm_case(&e, 64, 30, 1030, PI0_BF16, 0, PI0_ACT_NONE, 0, 1);
        gemm_case(&e, 65, 30, 1030, PI0_BF16, 0, PI0_ACT_NONE, 0, 1);
        /* larger than one column block and one bf16 k panel */
        gemm_case(&e, 70, 2100, 1200, PI0_BF16, 1, PI0_ACT_GELU_TANH, 0, 0);
        gemm_case(&e, 70, 2100, 1200, PI0_BF16, 1, PI0_ACT_SILU, 1, 0);
        gemm_case(&e, 70, 2100, 300, PI0_F32, 1, PI0_ACT_GELU_TANH, 1, 7);
    }
}

static int cpu_has(const char *isa);
static void precision_bf16_cases(const char *isa);

/* opts.precision = bf16: weights and GEMM inputs rounded to bf16 (to nearest even), sums in
 * f32. Reference: the same rounding (pi0_f32_to_bf16, checked bit by bit above), products
 * summed in double; tolerance that of the f32 GEMM. Also required: the result is far from
 * the unrounded product (the rounding happens), and a CPU without AVX2 refuses the mode. */
static void test_precision_bf16(void) {
    pi0_dev_opts o = {.precision = PI0_PRECISION_BF16};
    setenv("PI0_CPU_ISA", "portable", 1); /* read at open; this test runs in its own process */
    pi0_dev *d = NULL;
    CHECK_STATUS(pi0_dev_open("cpu", &o, &d), PI0_ENOTSUP);
    CHECK(strstr(pi0_last_error(), "bf16") != NULL);
    pi0_dev_close(d);
    unsetenv("PI0_CPU_ISA");
    o.precision = (pi0_precision)7;
    CHECK_STATUS(pi0_dev_open("cpu", &o, &d), PI0_EINVAL);
    if (!cpu_has("avx2")) SKIP("the CPU lacks AVX2+FMA, which the bf16 mode needs");
    precision_bf16_cases(NULL);
}

/* the same with the AVX-512 kernel's bf16 dot product (vdpbf16ps: weights and x packed as
 * pairs of k) emulated on AVX2 */
static void test_precision_bf16_avx512emu(void) {
    if (!cpu_has("avx2")) SKIP("the CPU lacks AVX2+FMA");
    setenv("PI0_CPU_ISA", "avx512emu", 1); /* read at open; this test runs in its own process */
    precision_bf16_cases("avx512emu");
    unsetenv("PI0_CPU_ISA");
}

static void precision_bf16_cases(const char *isa) {
    pi0_dev_opts o = {.precision = PI0_PRECISION_BF16};
    /* with the bf16 dot product, weights are packed in pairs of k (k rounded up to even) */
    int pairs = isa ? !strcmp(isa, "avx512emu") : cpu_has("avx512bf16");
    env e;
    if (env_open(&e, "cpu", &o)) return;
    rng_seed(5);
    static const int shapes[][3] = {{1, 37, 19}, {51, 300, 257}, {200, 70, 1030}};
    for (size_t c = 0; c < 3; c++) {
        int m = shapes[c][0], n = shapes[c][1], k = shapes[c][2];
        float *x = fnew((size_t)m * k), *w = fnew((size_t)n * k), *y = fnew((size_t)m * n);
        float *xr = fnew((size_t)m * k), *wr = fnew((size_t)n * k), *b = fnew(n);
        double *ref = malloc((size_t)m * n * sizeof(double)),
               *tol = malloc((size_t)m * n * sizeof(double)),
               *raw = malloc((size_t)m * n * sizeof(double));
        fill(x, (size_t)m * k, 1.0f);
        fill(w, (size_t)n * k, 0.5f);
        fill(b, n, 1.0f);
        for (size_t i = 0; i < (size_t)m * k; i++)
            xr[i] = pi0_bf16_to_f32(pi0_f32_to_bf16(x[i]));
        for (size_t i = 0; i < (size_t)n * k; i++)
            wr[i] = pi0_bf16_to_f32(pi0_f32_to_bf16(w[i]));
        pi0_weight *W;
        CHECK_STATUS(pi0_weight_create(e.d, w, PI0_F32, n, k, k, &W), PI0_OK);
        CHECK_EQ_INT(pi0_weight_device_bytes(W),
                     (size_t)(n + 15) / 16 * 16 *
                         (pairs ? (size_t)(k + 1) / 2 * 4 : (size_t)k * 2));
        dmat dx = dm_from(&e, m, k, k, x), dy = dm_new(&e, m, n, n, PI0_F32),
             db = dm_from(&e, 1, n, n, b);
        CHECK_STATUS(pi0_dev_gemm(e.s, dy.m, dx.m, W, &db.m, PI0_ACT_NONE, 0), PI0_OK);
        dm_get(&e, &dy, y);
        ref_gemm(ref, NULL, xr, wr, b, PI0_ACT_NONE, 0, m, n, k, tol);
        compare("bf16 gemm", y, ref, tol, (size_t)m * n, 0, 0);
        ref_gemm(raw, NULL, x, w, b, PI0_ACT_NONE, 0, m, n, k, tol);
        double far = 0;
        for (size_t i = 0; i < (size_t)m * n; i++)
            far = fmax(far, fabs(y[i] - raw[i]) / tol[i]);
        CHECK_MSG(far > 10, "bf16 gemm %dx%dx%d is within %.1f tolerances of the f32 product",
                  m, n, k, far);
        pi0_weight_destroy(W);
        dm_free(&dx), dm_free(&dy), dm_free(&db);
        free(x), free(w), free(y), free(xr), free(wr), free(b), free(ref), free(tol), free(raw);
    }
    /* a NaN in x stays NaN through the rounding, whatever its payload (an all-ones payload
     * must not carry into the sign, a low one must not round to inf): full groups of 6 rows
     * and k >= 8 take the vector packing */
    {
        enum { M = 6, N = 16, K = 16 };
        static const uint32_t nans[] = {0x7fffffffu, 0x7f800001u, 0xffffffffu, 0xff800001u};
        float x[M * K], w[N * K], y[M * N];
        fill(x, M * K, 1.0f);
        fill(w, N * K, 0.5f);
        for (int i = 0; i < 4; i++)
            memcpy(&x[i * K + 3 * i], &nans[i], 4);
        pi0_weight *W;
        CHECK_STATUS(pi0_weight_create(e.d, w, PI0_F32, N, K, K, &W), PI0_OK);
        dmat dx = dm_from(&e, M, K, K, x), dy = dm_new(&e, M, N, N, PI0_F32);
        CHECK_STATUS(pi0_dev_gemm(e.s, dy.m, dx.m, W, NULL, PI0_ACT_NONE, 0), PI0_OK);
        dm_get(&e, &dy, y);
        for (int r = 0; r < M; r++)
            for (int c = 0; c < N; c++)
                CHECK_MSG(r < 4 ? isnan(y[r * N + c]) : isfinite(y[r * N + c]),
                          "bf16 gemm, NaN 0x%08x in row %d: y[%d][%d] = %g",
                          r < 4 ? nans[r] : 0, r, r, c, y[r * N + c]);
        pi0_weight_destroy(W);
        dm_free(&dx), dm_free(&dy);
    }
    env_close(&e);
}

/* pi0_dev_gemm_multi against the double reference of each product: 1 to 3 weights of mixed
 * dtypes and widths (not multiples of 16), row counts across the packed kernel's row
 * blocks, and a table weight mixed in (the one-product-at-a-time path) */
static void gemm_multi_case(env *e, int m, int k, int count, const int *ns, const pi0_dtype *wt,
                            int table_last) {
    char what[128];
    snprintf(what, sizeof what, "%s gemm_multi m=%d k=%d count=%d n0=%d table=%d", e->name, m,
             k, count, ns[0], table_last);
    float *x = fnew((size_t)m * k);
    fill(x, (size_t)m * k, 1.0f);
    dmat dx = dm_from(e, m, k, k + 3, x), dy[PI0_GEMM_MULTI_MAX];
    pi0_weight *W[PI0_GEMM_MULTI_MAX];
    float *w[PI0_GEMM_MULTI_MAX];
    void *wh[PI0_GEMM_MULTI_MAX];
    pi0_mat ys[PI0_GEMM_MULTI_MAX];
    for (int i = 0; i < count; i++) {
        w[i] = fnew((size_t)ns[i] * k);
        fill(w[i], (size_t)ns[i] * k, 0.5f);
        wh[i] = calloc((size_t)ns[i] * k, wt[i] == PI0_F32 ? 4 : 2);
        for (size_t j = 0; j < (size_t)ns[i] * k; j++)
            if (wt[i] == PI0_F32) {
                ((float *)wh[i])[j] = w[i][j];
            } else {
                ((uint16_t *)wh[i])[j] = pi0_f32_to_bf16(w[i][j]);
                w[i][j] = pi0_bf16_to_f32(((uint16_t *)wh[i])[j]);
            }
        int table = table_last && i == count - 1;
        CHECK_STATUS((table ? pi0_weight_create_table : pi0_weight_create)(e->d, wh[i], wt[i],
                                                                           ns[i], k, k, &W[i]),
                     PI0_OK);
        dy[i] = dm_new(e, m, ns[i], ns[i] + 1, PI0_F32);
        ys[i] = dy[i].m;
    }
    int st = pi0_dev_gemm_multi(e->s, count, ys, dx.m, (const pi0_weight *const *)W);
    CHECK_MSG(st == PI0_OK, "%s: %s", what, pi0_last_error());
    for (int i = 0; i < count; i++) {
        float *y = fnew((size_t)m * ns[i]);
        double *ref = malloc((size_t)m * ns[i] * sizeof(double)),
               *tol = malloc((size_t)m * ns[i] * sizeof(double));
        dm_get(e, &dy[i], y);
        ref_gemm(ref, NULL, x, w[i], NULL, PI0_ACT_NONE, 0, m, ns[i], k, tol);
        compare(what, y, ref, tol, (size_t)m * ns[i], 0, 0);
        free(y), free(ref), free(tol);
        pi0_weight_destroy(W[i]);
        dm_free(&dy[i]);
        free(w[i]), free(wh[i]);
    }
    dm_free(&dx);
    free(x);
}

static void test_gemm_multi(void) {
    FOR_EACH_BACKEND(e) {
        rng_seed(9);
        const int n3[] = {64, 16, 48}, odd[] = {37, 5, 70}, wide[] = {300, 300};
        const pi0_dtype f3[] = {PI0_F32, PI0_F32, PI0_F32},
                        mix[] = {PI0_BF16, PI0_F32, PI0_BF16};
        gemm_multi_case(&e, 51, 96, 3, n3, f3, 0);
        gemm_multi_case(&e, 7, 33, 3, odd, mix, 0);
        gemm_multi_case(&e, 1, 19, 1, odd, mix, 0);
        gemm_multi_case(&e, 400, 70, 2, wide, mix, 0); /* three row blocks */
        gemm_multi_case(&e, 20, 40, 3, odd, f3, 1);
        /* bad arguments: nothing enqueued, an error naming what is wrong */
        float wv[4] = {1, 2, 3, 4};
        pi0_weight *a, *b;
        CHECK_STATUS(pi0_weight_create(e.d, wv, PI0_F32, 2, 2, 2, &a), PI0_OK);
        CHECK_STATUS(pi0_weight_create(e.d, wv, PI0_F32, 1, 4, 4, &b), PI0_OK);
        dmat dx = dm_new(&e, 3, 2, 2, PI0_F32), y0 = dm_new(&e, 3, 2, 2, PI0_F32),
             y1 = dm_new(&e, 3, 2, 2, PI0_F32);
        pi0_mat ys[4] = {y0.m, y1.m, y0.m, y1.m};
        const pi0_weight *ws[4] = {a, a, a, a};
        CHECK_STATUS(pi0_dev_gemm_multi(e.s, 0, ys, dx.m, ws), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_gemm_multi(e.s, 4, ys, dx.m, ws), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_gemm_multi(e.s, 3, ys, dx.m, ws), PI0_EINVAL);
        CHECK(strstr(pi0_last_error(), "ys[2] overlaps ys[0]") != NULL);
        ws[1] = b;
        CHECK_STATUS(pi0_dev_gemm_multi(e.s, 2, ys, dx.m, ws), PI0_ESHAPE);
        CHECK(strstr(pi0_last_error(), "ws[1]") != NULL);
        ws[1] = a;
        CHECK_STATUS(pi0_dev_gemm_multi(e.s, 2, ys, dx.m, ws), PI0_OK);
        CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK);
        /* the outputs may be column blocks of one matrix (a fused projection's) */
        const float xv[6] = {1, 0, 0, 1, 1, 1};
        dmat dx2 = dm_from(&e, 3, 2, 2, xv), yy = dm_new(&e, 3, 4, 4, PI0_F32);
        pi0_mat halves[2] = {yy.m, yy.m};
        halves[0].cols = halves[1].cols = 2;
        halves[1].off += 2 * sizeof(float);
        CHECK_STATUS(pi0_dev_gemm_multi(e.s, 2, halves, dx2.m, ws), PI0_OK);
        float got[12];
        dm_get(&e, &yy, got);
        /* x · aᵀ with a = [[1, 2], [3, 4]]: rows [1, 3], [2, 4], [3, 7], in both halves */
        const float want[12] = {1, 3, 1, 3, 2, 4, 2, 4, 3, 7, 3, 7};
        for (int i = 0; i < 12; i++)
            CHECK_MSG(got[i] == want[i], "column blocks: y[%d] = %g, want %g", i, got[i],
                      want[i]);
        dm_free(&dx2), dm_free(&yy);
        dm_free(&dx), dm_free(&y0), dm_free(&y1);
        pi0_weight_destroy(a);
        pi0_weight_destroy(b);
    }
}

static void test_weight_memory(void) {
    FOR_EACH_BACKEND(e) {
        float w[6] = {1, 2, 3, 4, 5, 6};
        uint16_t wb[6], wh[6] = {0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600};
        for (int i = 0; i < 6; i++)
            wb[i] = pi0_f32_to_bf16(w[i]);
        pi0_weight *a, *b, *c, *t;
        CHECK_STATUS(pi0_weight_create(e.d, w, PI0_F32, 2, 3, 3, &a), PI0_OK);
        CHECK_STATUS(pi0_weight_create(e.d, wb, PI0_BF16, 2, 3, 3, &b), PI0_OK);
        CHECK_STATUS(pi0_weight_create(e.d, wh, PI0_F16, 2, 3, 3, &c), PI0_OK);
        CHECK_STATUS(pi0_weight_create_table(e.d, w, PI0_F32, 2, 3, 3, &t), PI0_OK);
        if (strcmp(e.name, "cpu") == 0) {
            /* a GEMM weight is either borrowed in place or repacked whole (on x86-64 with
             * AVX2: panels of 16 rows, f32 stays f32 and bf16 stays bf16); a table is borrowed
             */
            size_t pa = pi0_weight_device_bytes(a), pb = pi0_weight_device_bytes(b);
            CHECK_MSG(pa == 0 || pa == 16 * 3 * 4, "f32 weight: %zu device bytes", pa);
            CHECK_MSG(pb == (pa ? 16 * 3 * 2 : 0), "bf16 weight: %zu device bytes", pb);
            CHECK_EQ_INT(pi0_weight_device_bytes(c), pa ? 16 * 3 * 4 : 6 * 4);
            CHECK_EQ_INT(pi0_weight_device_bytes(t), 0);
        }
        float x[3] = {1, 1, 1}, y[2];
        dmat dx = dm_from(&e, 1, 3, 3, x), dy = dm_new(&e, 1, 2, 2, PI0_F32);
        pi0_weight *ws[4] = {a, b, c, t};
        for (int i = 0; i < 4; i++) {
            CHECK_STATUS(pi0_dev_gemm(e.s, dy.m, dx.m, ws[i], NULL, PI0_ACT_NONE, 0), PI0_OK);
            dm_get(&e, &dy, y);
            CHECK_NEAR(y[0], 6, 0);
            CHECK_NEAR(y[1], 15, 0);
        }
        if (strcmp(e.name, "cpu") == 0) { /* a table is read in place: no copy was taken */
            w[0] = 101;
            CHECK_STATUS(pi0_dev_gemm(e.s, dy.m, dx.m, t, NULL, PI0_ACT_NONE, 0), PI0_OK);
            dm_get(&e, &dy, y);
            CHECK_NEAR(y[0], 106, 0);
        }
        pi0_weight_destroy(t);
        pi0_weight_destroy(a);
        pi0_weight_destroy(b);
        pi0_weight_destroy(c);
        pi0_weight_destroy(NULL);
        dm_free(&dx);
        dm_free(&dy);
    }
}

// ---- norms and elementwise ----

typedef enum { K_LN, K_RMS, K_ADA, K_ADA_ROWS, K_GATED, K_GATED_ROWS } norm_kind;

static void norm_case(env *e, norm_kind kind, int rows, int cols, int pad) {
    char what[128];
    snprintf(what, sizeof what, "%s norm kind=%d rows=%d cols=%d", e->name, kind, rows, cols);
    size_t n = (size_t)rows * cols;
    int prow = (kind == K_ADA_ROWS || kind == K_GATED_ROWS) ? rows : 1;
    float *x = fnew(n), *p1 = fnew((size_t)prow * cols), *p2 = fnew((size_t)prow * cols),
          *h = fnew(n), *y = fnew(n);
    double *ref = malloc(n * sizeof(double));
    fill(x, n, 3.0f);
    for (size_t i = 0; i < n; i += 7)
        x[i] += 2.0f; /* a non-zero mean */
    fill(p1, (size_t)prow * cols, 1.0f);
    fill(p2, (size_t)prow * cols, 1.0f);
    fill(h, n, 1.0f);
    const double eps = 1e-6;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * cols;
        double mean = 0, ms = 0, var = 0;
        for (int c = 0; c < cols; c++)
            mean += xr[c], ms += (double)xr[c] * xr[c];
        mean /= cols;
        ms /= cols;
        for (int c = 0; c < cols; c++)
            var += (xr[c] - mean) * (xr[c] - mean);
        var /= cols;
        int pr = prow == 1 ? 0 : r;
        for (int c = 0; c < cols; c++) {
            double v = 0, a = p1[(size_t)pr * cols + c], b = p2[(size_t)pr * cols + c];
            switch (kind) {
            case K_LN:
                v = (xr[c] - mean) / sqrt(var + eps) * a + b;
                break;
            case K_RMS:
                v = xr[c] / sqrt(ms + eps) * (1 + a);
                break;
            case K_ADA:
            case K_ADA_ROWS:
                v = xr[c] / sqrt(ms + eps) * (1 + a) + b;
                break;
            case K_GATED:
            case K_GATED_ROWS:
                v = h[(size_t)r * cols + c] + a * xr[c];
                break;
            }
            ref[(size_t)r * cols + c] = v;
        }
    }
    dmat dx = dm_from(e, rows, cols, cols + pad, x), dp1 = dm_from(e, prow, cols, cols, p1),
         dp2 = dm_from(e, prow, cols, cols, p2), dy = dm_from(e, rows, cols, cols + pad, h);
    int st = 0;
    switch (kind) {
    case K_LN:
        st = pi0_dev_layernorm(e->s, dy.m, dx.m, dp1.m, dp2.m, (float)eps);
        break;
    case K_RMS:
        st = pi0_dev_rmsnorm(e->s, dy.m, dx.m, dp1.m, (float)eps);
        break;
    case K_ADA:
    case K_ADA_ROWS:
        st = pi0_dev_rmsnorm_ada(e->s, dy.m, dx.m, dp1.m, dp2.m, (float)eps);
        break;
    case K_GATED:
    case K_GATED_ROWS:
        st = pi0_dev_gated_add(e->s, dy.m, dp1.m, dx.m);
        break;
    }
    CHECK_MSG(st == PI0_OK, "%s: %s", what, pi0_last_error());
    dm_get(e, &dy, y);
    compare(what, y, ref, NULL, n, 1e-5, 1e-5);
    if (kind == K_RMS || kind == K_LN) { /* in place: y aliases x */
        st = kind == K_RMS ? pi0_dev_rmsnorm(e->s, dx.m, dx.m, dp1.m, (float)eps)
                           : pi0_dev_layernorm(e->s, dx.m, dx.m, dp1.m, dp2.m, (float)eps);
        CHECK_STATUS(st, PI0_OK);
        dm_get(e, &dx, y);
        compare(what, y, ref, NULL, n, 1e-5, 1e-5);
    }
    dm_free(&dx), dm_free(&dp1), dm_free(&dp2), dm_free(&dy);
    free(x), free(p1), free(p2), free(h), free(y), free(ref);
}

static void test_norms(void) {
    FOR_EACH_BACKEND(e) {
        rng_seed(3);
        static const int shapes[][2] = {{1, 1},     {1, 2048},  {5, 17},
                                        {51, 1024}, {33, 1152}, {300, 96}};
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int k = K_LN; k <= K_GATED_ROWS; k++)
                norm_case(&e, (norm_kind)k, shapes[i][0], shapes[i][1], (int)i % 3);
    }
}

typedef enum { E_GELU, E_SILU, E_SCALE, E_ADD, E_MUL, E_ADD_B, E_MUL_B, E_GEGLU } ew_kind;

static void ew_case(env *e, ew_kind kind, int rows, int cols, int in_place) {
    char what[128];
    snprintf(what, sizeof what, "%s elementwise kind=%d rows=%d cols=%d in_place=%d", e->name,
             kind, rows, cols, in_place);
    size_t n = (size_t)rows * cols;
    int brows = (kind == E_ADD_B || kind == E_MUL_B) ? 1 : rows;
    float *a = fnew(n), *b = fnew((size_t)brows * cols), *y = fnew(n);
    double *ref = malloc(n * sizeof(double));
    fill(a, n, 6.0f);
    fill(b, (size_t)brows * cols, 2.0f);
    a[0] = 0;
    if (n > 2) a[1] = -20, a[2] = 20;
    const float alpha = 0.37f;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            double av = a[i], bv = b[(size_t)(brows == 1 ? 0 : r) * cols + c], v = 0;
            switch (kind) {
            case E_GELU:
                v = ref_gelu(av);
                break;
            case E_SILU:
                v = ref_silu(av);
                break;
            case E_SCALE:
                v = av * alpha;
                break;
            case E_ADD:
            case E_ADD_B:
                v = av + bv;
                break;
            case E_MUL:
            case E_MUL_B:
                v = av * bv;
                break;
            case E_GEGLU:
                v = ref_gelu(av) * bv;
                break;
            }
            ref[i] = v;
        }
    dmat da = dm_from(e, rows, cols, cols + 1, a), db = dm_from(e, brows, cols, cols, b),
         dy = dm_new(e, rows, cols, cols, PI0_F32);
    pi0_mat out = in_place ? da.m : dy.m;
    int st = 0;
    switch (kind) {
    case E_GELU:
        st = pi0_dev_unary(e->s, PI0_UN_GELU_TANH, out, da.m, 0);
        break;
    case E_SILU:
        st = pi0_dev_unary(e->s, PI0_UN_SILU, out, da.m, 0);
        break;
    case E_SCALE:
        st = pi0_dev_unary(e->s, PI0_UN_SCALE, out, da.m, alpha);
        break;
    case E_ADD:
    case E_ADD_B:
        st = pi0_dev_binary(e->s, PI0_BIN_ADD, out, da.m, db.m);
        break;
    case E_MUL:
    case E_MUL_B:
        st = pi0_dev_binary(e->s, PI0_BIN_MUL, out, da.m, db.m);
        break;
    case E_GEGLU:
        st = pi0_dev_geglu(e->s, out, da.m, db.m);
        break;
    }
    CHECK_MSG(st == PI0_OK, "%s: %s", what, pi0_last_error());
    dm_get(e, in_place ? &da : &dy, y);
    compare(what, y, ref, NULL, n, 1e-5, 1e-5);
    dm_free(&da), dm_free(&db), dm_free(&dy);
    free(a), free(b), free(y), free(ref);
}

static void test_elementwise(void) {
    FOR_EACH_BACKEND(e) {
        rng_seed(4);
        static const int shapes[][2] = {{1, 1}, {1, 31}, {3, 1000}, {51, 4096}, {128, 257}};
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int k = E_GELU; k <= E_GEGLU; k++)
                for (int ip = 0; ip < 2; ip++)
                    ew_case(&e, (ew_kind)k, shapes[i][0], shapes[i][1], ip);
    }
}

// ---- RoPE ----

/* ref = x [tokens, n_heads * hd] rotated at pos, the formula of pi0_device.h in double */
static void ref_rope(double *ref, const float *x, const int32_t *pos, int tokens, int n_heads,
                     int hd, double theta) {
    int cols = n_heads * hd;
    for (int t = 0; t < tokens; t++)
        for (int h = 0; h < n_heads; h++)
            for (int j = 0; j < hd / 2; j++) {
                double ang = pos[t] * pow(theta, -2.0 * j / hd);
                size_t i0 = (size_t)t * cols + (size_t)h * hd + j, i1 = i0 + hd / 2;
                ref[i0] = x[i0] * cos(ang) - x[i1] * sin(ang);
                ref[i1] = x[i1] * cos(ang) + x[i0] * sin(ang);
            }
}

/* positions: 0 first, then below max_pos */
static int32_t *rope_positions(int tokens, int max_pos) {
    int32_t *pos = malloc((size_t)tokens * sizeof *pos);
    if (!pos) abort();
    for (int t = 0; t < tokens; t++)
        pos[t] = t == 0 ? 0 : (int32_t)(rng_u32() % (uint32_t)max_pos);
    return pos;
}

static void rope_case(env *e, int tokens, int n_heads, int hd, int pos_col, int pad) {
    char what[128];
    snprintf(what, sizeof what, "%s rope tokens=%d heads=%d hd=%d", e->name, tokens, n_heads,
             hd);
    int cols = n_heads * hd;
    size_t n = (size_t)tokens * cols;
    float *x = fnew(n), *y = fnew(n);
    double *ref = malloc(n * sizeof(double));
    fill(x, n, 2.0f);
    int32_t *pos = rope_positions(tokens, 1100);
    const double theta = 10000.0;
    ref_rope(ref, x, pos, tokens, n_heads, hd, theta);
    dmat dx = dm_from(e, tokens, cols, cols + pad, x);
    dmat dp =
        pos_col ? dm_new(e, tokens, 1, 1, PI0_I32) : dm_new(e, 1, tokens, tokens, PI0_I32);
    dm_put(e, &dp, pos);
    int st = pi0_dev_rope(e->s, dx.m, dp.m, n_heads, hd, (float)theta);
    CHECK_MSG(st == PI0_OK, "%s: %s", what, pi0_last_error());
    dm_get(e, &dx, y);
    compare(what, y, ref, NULL, n, 1e-5, 1e-5);
    dm_free(&dx), dm_free(&dp);
    free(x), free(y), free(ref), free(pos);
}

/* pi0_dev_rope_qk: q [tokens, nh * hd] and k [tokens, nkv * hd] side by side in the rows of
 * one buffer (as a fused projection's output), each checked against the double reference;
 * positions below max_pos (beyond the backend's table when large) */
static void rope_qk_case(env *e, int tokens, int nh, int nkv, int hd, int max_pos,
                         double theta) {
    char what[160];
    snprintf(what, sizeof what, "%s rope_qk tokens=%d heads=%d kv_heads=%d hd=%d pos<%d",
             e->name, tokens, nh, nkv, hd, max_pos);
    int qc = nh * hd, kc = nkv * hd, ld = qc + kc + 3;
    size_t nq = (size_t)tokens * qc, nk = (size_t)tokens * kc;
    float *q = fnew(nq), *k = fnew(nk), *all = fnew((size_t)tokens * ld), *got = fnew(nq + nk);
    double *ref = malloc((nq + nk) * sizeof(double));
    fill(q, nq, 2.0f);
    fill(k, nk, 2.0f);
    int32_t *pos = rope_positions(tokens, max_pos);
    ref_rope(ref, q, pos, tokens, nh, hd, theta);
    ref_rope(ref + nq, k, pos, tokens, nkv, hd, theta);
    for (int t = 0; t < tokens; t++) {
        memcpy(all + (size_t)t * ld, q + (size_t)t * qc, (size_t)qc * sizeof(float));
        memcpy(all + (size_t)t * ld + qc, k + (size_t)t * kc, (size_t)kc * sizeof(float));
    }
    dmat d = dm_new(e, tokens, ld, ld, PI0_F32);
    dm_put(e, &d, all);
    dmat dp = dm_new(e, 1, tokens, tokens, PI0_I32);
    dm_put(e, &dp, pos);
    pi0_mat mq = pi0_mat_sub(d.m, 0, tokens, 0, qc), mk = pi0_mat_sub(d.m, 0, tokens, qc, kc);
    int st = pi0_dev_rope_qk(e->s, mq, mk, dp.m, nh, nkv, hd, (float)theta);
    CHECK_MSG(st == PI0_OK, "%s: %s", what, pi0_last_error());
    dm_get(e, &d, all);
    for (int t = 0; t < tokens; t++) {
        memcpy(got + (size_t)t * qc, all + (size_t)t * ld, (size_t)qc * sizeof(float));
        memcpy(got + nq + (size_t)t * kc, all + (size_t)t * ld + qc,
               (size_t)kc * sizeof(float));
        for (int c = qc + kc; c < ld; c++) /* the columns past k are untouched */
            CHECK(all[(size_t)t * ld + c] == 0.0f);
    }
    compare(what, got, ref, NULL, nq + nk, 1e-5, 1e-5);
    dm_free(&d), dm_free(&dp);
    free(q), free(k), free(all), free(got), free(ref), free(pos);
}

static void test_rope(void) {
    FOR_EACH_BACKEND(e) {
        rng_seed(5);
        rope_case(&e, 1, 1, 2, 0, 0);
        rope_case(&e, 7, 3, 6, 1, 2);
        rope_case(&e, 51, 8, 256, 0, 0);
        rope_case(&e, 40, 1, 256, 1, 4);
        rope_case(&e, 100, 2, 64, 0, 0);
        /* Gemma's layouts (8 query heads, 1 KV head), grouped heads, one token, and
         * positions past any table (the direct path) */
        rope_qk_case(&e, 51, 8, 1, 256, 1100, 10000.0);
        rope_qk_case(&e, 300, 8, 1, 256, 1100, 10000.0);
        rope_qk_case(&e, 9, 4, 2, 6, 50, 500.0);
        rope_qk_case(&e, 1, 2, 2, 2, 1, 10000.0);
        rope_qk_case(&e, 33, 8, 1, 64, 40000, 10000.0);
    }
}

/* pi0_dev_reserve_rope: the arguments are checked; on cpu the table covers the positions
 * right after it and RoPE then runs from that table (no rebuild), with the same results */
static void test_reserve_rope(void) {
    CHECK_STATUS(pi0_dev_reserve_rope(NULL, 10, 4, 1e4f), PI0_EINVAL);
    FOR_EACH_BACKEND(e) {
        CHECK_STATUS(pi0_dev_reserve_rope(e.d, 0, 64, 1e4f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_reserve_rope(e.d, 10, 63, 1e4f), PI0_EINVAL);
        CHECK(strstr(pi0_last_error(), "head_dim 63") != NULL);
        CHECK_STATUS(pi0_dev_reserve_rope(e.d, 10, 64, 0.f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_reserve_rope(e.d, 5000, 64, 500.f), PI0_OK);
        const float *tab = NULL;
        if (!strcmp(e.name, "cpu")) {
            cpu_dev *c = cpu_of(e.d);
            CHECK(c->rope_tab != NULL && c->rope_npos >= 5000 && c->rope_hd == 64 &&
                  c->rope_theta == 500.f);
            tab = c->rope_tab;
        }
        rng_seed(9);
        rope_qk_case(&e, 40, 4, 1, 64, 5000, 500.0);
        if (tab) CHECK(cpu_of(e.d)->rope_tab == tab);
    }
}

// ---- attention ----

typedef enum { M_NONE, M_U8, M_F32 } mask_kind;

/* reference: the literal formula, per head, in double */
static void ref_attention(double *out, const float *q, const float *k, const float *v,
                          const uint8_t *mu8, const float *mf, int nq, int nk, int nh, int nkv,
                          int hd, float scale) {
    double *s = malloc((size_t)nk * sizeof(double));
    int g = nh / nkv;
    for (int t = 0; t < nq; t++)
        for (int h = 0; h < nh; h++) {
            int j = h / g;
            double mx = -INFINITY, sum = 0;
            for (int u = 0; u < nk; u++) {
                double d = 0;
                for (int c = 0; c < hd; c++)
                    d += (double)q[(size_t)t * nh * hd + (size_t)h * hd + c] *
                         k[(size_t)u * nkv * hd + (size_t)j * hd + c];
                d *= scale;
                if (mu8 && !mu8[(size_t)t * nk + u]) d = -2.3819763e38;
                if (mf) {
                    d += mf[(size_t)t * nk + u];
                    if (d < -2.3819763e38) d = -2.3819763e38;
                }
                s[u] = d;
                if (d > mx) mx = d;
            }
            for (int u = 0; u < nk; u++)
                sum += (s[u] = exp(s[u] - mx));
            for (int c = 0; c < hd; c++) {
                double o = 0;
                for (int u = 0; u < nk; u++)
                    o += s[u] / sum * v[(size_t)u * nkv * hd + (size_t)j * hd + c];
                out[(size_t)t * nh * hd + (size_t)h * hd + c] = o;
            }
        }
    free(s);
}

/* mask patterns: 0 random (~30% masked, some rows fully masked), 1 causal with the keys'
 * first `off` always visible (suffix over prefix), 2 block (prefix | suffix, pi0 style),
 * 3 padding (the last keys invalid, the last query rows fully masked) */
static int mask_bit(int pattern, int t, int u, int nq, int nk) {
    int off = nk - nq;
    switch (pattern) {
    case 0:
        return (t % 5 == 3) ? 0 : (rng_u32() % 10) >= 3;
    case 1:
        return u < off || u - off <= t;
    case 2:
        return u < off || t >= 1; /* query 0 (state token) sees only the prefix + itself */
    case 3:
        return t < nq - 2 && u < nk - 3;
    }
    return 1;
}

static void att_case(env *e, int nq, int nk, int nh, int nkv, int hd, mask_kind mk,
                     int pattern) {
    char what[160];
    snprintf(what, sizeof what, "%s attention nq=%d nk=%d heads=%d kv=%d hd=%d mask=%d/%d",
             e->name, nq, nk, nh, nkv, hd, mk, pattern);
    size_t nqe = (size_t)nq * nh * hd, nke = (size_t)nk * nkv * hd, nm = (size_t)nq * nk;
    float *q = fnew(nqe), *k = fnew(nke), *v = fnew(nke), *o = fnew(nqe), *mf = fnew(nm);
    uint8_t *mu = calloc(nm, 1);
    double *ref = malloc(nqe * sizeof(double));
    fill(q, nqe, 1.0f);
    fill(k, nke, 1.0f);
    fill(v, nke, 1.0f);
    for (int t = 0; t < nq; t++)
        for (int u = 0; u < nk; u++) {
            int vis = mask_bit(pattern, t, u, nq, nk);
            if (pattern == 2 && t == 0) vis = u <= nk - nq;
            mu[(size_t)t * nk + u] = (uint8_t)(vis ? 1 + rng_u32() % 200 : 0);
            /* f32: additive, with -inf and the finite masked value among the blocked ones */
            mf[(size_t)t * nk + u] = vis ? rnd() : (u % 2 ? -INFINITY : -2.3819763e38f);
        }
    float scale = 1.0f / sqrtf((float)hd);
    ref_attention(ref, q, k, v, mk == M_U8 ? mu : NULL, mk == M_F32 ? mf : NULL, nq, nk, nh,
                  nkv, hd, scale);
    dmat dq = dm_from(e, nq, nh * hd, nh * hd + 3, q),
         dk = dm_from(e, nk, nkv * hd, nkv * hd, k),
         dv = dm_from(e, nk, nkv * hd, nkv * hd + 8, v),
         dout = dm_new(e, nq, nh * hd, nh * hd + 1, PI0_F32);
    dmat dm = dm_new(e, nq, nk, nk + 5, mk == M_U8 ? PI0_U8 : PI0_F32);
    if (mk == M_U8) dm_put(e, &dm, mu);
    if (mk == M_F32) dm_put(e, &dm, mf);
    int st = pi0_dev_attention(e->s, dout.m, dq.m, dk.m, dv.m, mk == M_NONE ? NULL : &dm.m, nh,
                               nkv, hd, scale);
    CHECK_MSG(st == PI0_OK, "%s: %s", what, pi0_last_error());
    dm_get(e, &dout, o);
    int finite = 1;
    for (size_t i = 0; i < nqe; i++)
        finite &= isfinite(o[i]);
    CHECK_MSG(finite, "%s: non-finite output", what);
    compare(what, o, ref, NULL, nqe, 2e-5, 0);
    /* a fully masked row is the mean of v over all keys */
    if (mk == M_U8)
        for (int t = 0; t < nq; t++) {
            int any = 0;
            for (int u = 0; u < nk; u++)
                any |= mu[(size_t)t * nk + u];
            if (any) continue;
            for (int h = 0; h < nh; h++)
                for (int c = 0; c < hd; c++) {
                    double mean = 0;
                    for (int u = 0; u < nk; u++)
                        mean += v[(size_t)u * nkv * hd + (size_t)(h / (nh / nkv)) * hd + c];
                    mean /= nk;
                    if (fabs(o[(size_t)t * nh * hd + (size_t)h * hd + c] - mean) > 2e-5) {
                        CHECK_MSG(0, "%s: fully masked row %d head %d is not the mean of v",
                                  what, t, h);
                        t = nq, h = nh, c = hd;
                    }
                }
        }
    dm_free(&dq), dm_free(&dk), dm_free(&dv), dm_free(&dout), dm_free(&dm);
    free(q), free(k), free(v), free(o), free(mf), free(mu), free(ref);
}

static void test_attention(void) {
    FOR_EACH_BACKEND(e) {
        rng_seed(6);
        att_case(&e, 1, 1, 1, 1, 4, M_NONE, 0);
        att_case(&e, 1, 9, 2, 1, 8, M_U8, 1);
        att_case(&e, 5, 9, 4, 4, 8, M_U8, 0);    /* MHA, random mask, fully masked rows */
        att_case(&e, 5, 9, 4, 4, 8, M_F32, 0);   /* additive mask with -inf */
        att_case(&e, 17, 23, 8, 1, 16, M_U8, 1); /* MQA, causal suffix over prefix */
        att_case(&e, 17, 23, 8, 1, 16, M_F32, 1);
        att_case(&e, 6, 10, 4, 2, 8, M_U8, 2);     /* GQA, block mask */
        att_case(&e, 40, 40, 8, 1, 32, M_U8, 3);   /* prefix with padding */
        att_case(&e, 13, 53, 8, 1, 32, M_U8, 2);   /* suffix over prefix + suffix */
        att_case(&e, 11, 7, 3, 1, 5, M_NONE, 0);   /* n_q > n_k, odd sizes */
        att_case(&e, 300, 301, 8, 1, 64, M_U8, 1); /* several tiles */
        att_case(&e, 51, 867, 8, 1, 256, M_U8, 2); /* pi0 suffix shape */
    }
}

/* the portable GEMM and attention paths (OpenBLAS only), as on a CPU without AVX-512 */
static void test_gemm_portable(void) {
    setenv("PI0_CPU_NO_AVX512", "1", 1); /* read at open; this test runs in its own process */
    FOR_EACH_BACKEND(e) {
        rng_seed(11);
        gemm_case(&e, 1, 37, 19, PI0_BF16, 1, PI0_ACT_GELU_TANH, 0, 0);
        gemm_case(&e, 51, 300, 257, PI0_BF16, 1, PI0_ACT_NONE, 1, 3);
        gemm_case(&e, 51, 67, 2100, PI0_BF16, 0, PI0_ACT_SILU, 1, 0);
        gemm_case(&e, 19, 77, 45, PI0_F32, 1, PI0_ACT_GELU_TANH, 1, 5);
        gemm_case(&e, 64, 1030, 129, PI0_F32, 0, PI0_ACT_NONE, 0, 0);
        gemm_case(&e, 130, 17, 2050, PI0_BF16, 1, PI0_ACT_SILU, 1, 2);
        gemm_case(&e, 70, 2100, 1200, PI0_BF16, 1, PI0_ACT_GELU_TANH, 0, 0);
        gemm_case(&e, 70, 2100, 300, PI0_F32, 1, PI0_ACT_GELU_TANH, 1, 7);
        att_case(&e, 51, 300, 8, 1, 64, M_U8, 2);
        att_case(&e, 6, 10, 4, 2, 8, M_F32, 0);
    }
    unsetenv("PI0_CPU_NO_AVX512");
}

/* Every kernel test again with the cpu backend's kernels forced to one instruction set
 * (PI0_CPU_ISA, read at open; each test runs in its own process). Where the CPU lacks the
 * set, opening must fail with a message naming the variable, and the test is skipped. */
static void test_gather(void);

static void isa_kernels(const char *isa, int cpu_has) {
    setenv("PI0_CPU_ISA", isa, 1);
    pi0_dev *d;
    int st = pi0_dev_open("cpu", NULL, &d);
    if (!cpu_has) {
        CHECK_STATUS(st, PI0_EINVAL);
        CHECK(strstr(pi0_last_error(), "PI0_CPU_ISA") != NULL);
        if (st == PI0_OK) pi0_dev_close(d);
        unsetenv("PI0_CPU_ISA");
        SKIP("the CPU lacks %s", isa);
    }
    CHECK_MSG(st == PI0_OK, "PI0_CPU_ISA=%s: %s", isa, pi0_last_error());
    if (st) return;
    CHECK_STATUS(pi0_dev_close(d), PI0_OK);
    test_gemm();
    test_gemm_multi();
    test_norms();
    test_elementwise();
    test_rope();
    test_attention();
    test_gather();
    unsetenv("PI0_CPU_ISA");
}

static int cpu_has(const char *isa) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (!strcmp(isa, "avx2")) return avx2;
    int avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                 __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    if (!strcmp(isa, "avx512")) return avx512;
    if (!strcmp(isa, "avx512bf16")) return avx512 && __builtin_cpu_supports("avx512bf16");
#endif
    return !strcmp(isa, "portable");
}

static void test_isa_avx512(void) {
    isa_kernels("avx512", cpu_has("avx512"));
}

static void test_isa_avx2(void) {
    isa_kernels("avx2", cpu_has("avx2"));
}

/* the AVX-512 packed GEMM's loops (tiles of two panels, their tails and prefetches) with
 * emulated 512-bit vectors: runs wherever AVX2 does, the CPU's AVX-512 or not */
static void test_isa_avx512emu(void) {
    isa_kernels("avx512emu", cpu_has("avx2"));
}

static void test_isa_portable(void) {
    isa_kernels("portable", 1);
}

static void test_isa_bad_value(void) {
    setenv("PI0_CPU_ISA", "sse9", 1);
    pi0_dev *d;
    int st = pi0_dev_open("cpu", NULL, &d);
    CHECK_STATUS(st, PI0_EINVAL);
    CHECK(strstr(pi0_last_error(), "PI0_CPU_ISA=sse9") != NULL);
    if (st == PI0_OK) pi0_dev_close(d);
    unsetenv("PI0_CPU_ISA");
}

// ---- gather ----

static void test_gather(void) {
    FOR_EACH_BACKEND(e) {
        rng_seed(7);
        const int vocab = 1000, width = 300, n = 70;
        float *tab = fnew((size_t)vocab * width), *y = fnew((size_t)n * width);
        uint16_t *tb = malloc((size_t)vocab * width * 2);
        fill(tab, (size_t)vocab * width, 1.0f);
        for (size_t i = 0; i < (size_t)vocab * width; i++) {
            tb[i] = pi0_f32_to_bf16(tab[i]);
        }
        int32_t ids[70];
        for (int i = 0; i < n; i++)
            ids[i] = (int32_t)(rng_u32() % vocab);
        ids[0] = 0, ids[1] = vocab - 1, ids[2] = ids[3];
        double *ref = malloc((size_t)n * width * sizeof(double));
        const float scale = 45.254833f; /* sqrt(2048), Gemma's embedding scale */
        for (int t = 0; t < 2; t++) {
            pi0_weight *W;
            CHECK_STATUS(pi0_weight_create(e.d, t ? (void *)tb : (void *)tab,
                                           t ? PI0_BF16 : PI0_F32, vocab, width, width, &W),
                         PI0_OK);
            for (int i = 0; i < n; i++)
                for (int c = 0; c < width; c++) {
                    size_t s = (size_t)ids[i] * width + c;
                    ref[(size_t)i * width + c] =
                        (t ? (double)pi0_bf16_to_f32(tb[s]) : (double)tab[s]) * scale;
                }
            dmat dy = dm_new(&e, n, width, width + 2, PI0_F32),
                 di = dm_new(&e, 1, n, n, PI0_I32);
            dm_put(&e, &di, ids);
            CHECK_STATUS(pi0_dev_gather(e.s, dy.m, W, di.m, scale), PI0_OK);
            dm_get(&e, &dy, y);
            compare(t ? "gather bf16" : "gather f32", y, ref, NULL, (size_t)n * width, 1e-5,
                    1e-6);
            /* an id out of range: PI0_ERANGE at the next sync, that row zero, others done */
            int32_t bad[2] = {5, vocab};
            dmat dy2 = dm_new(&e, 2, width, width, PI0_F32), db = dm_new(&e, 2, 1, 1, PI0_I32);
            dm_put(&e, &db, bad);
            CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK);
            CHECK_STATUS(pi0_dev_gather(e.s, dy2.m, W, db.m, 1.0f), PI0_OK);
            CHECK_STATUS(pi0_stream_sync(e.s), PI0_ERANGE);
            CHECK(strstr(pi0_last_error(), "1000") != NULL);
            CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK); /* cleared */
            float y2[600];
            dm_get(&e, &dy2, y2);
            int zero = 1;
            for (int c = 0; c < width; c++)
                zero &= y2[width + c] == 0.0f;
            CHECK(zero);
            CHECK_NEAR(y2[0], t ? pi0_bf16_to_f32(tb[5 * width]) : tab[5 * width], 0);
            pi0_weight_destroy(W);
            dm_free(&dy), dm_free(&di), dm_free(&dy2), dm_free(&db);
        }
        /* several bad ids: the error names the first. Rows go to tasks of 64: row 63 ends
         * the first task and row 64 starts the second, and long rows make the first task
         * reach its bad id last. */
        {
            enum { V = 4, W_ = 16384, N = 256 };
            float *wide = fnew((size_t)V * W_);
            int32_t bids[N];
            for (int i = 0; i < N; i++)
                bids[i] = i < 63 ? i % V : V + i;
            pi0_weight *W;
            CHECK_STATUS(pi0_weight_create(e.d, wide, PI0_F32, V, W_, W_, &W), PI0_OK);
            dmat dy = dm_new(&e, N, W_, W_, PI0_F32), di = dm_new(&e, 1, N, N, PI0_I32);
            dm_put(&e, &di, bids);
            for (int r = 0; r < 5; r++) {
                CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK);
                CHECK_STATUS(pi0_dev_gather(e.s, dy.m, W, di.m, 1.0f), PI0_OK);
                CHECK_STATUS(pi0_stream_sync(e.s), PI0_ERANGE);
                CHECK_MSG(strstr(pi0_last_error(), "ids[63] = 67") != NULL, "run %d: %s", r,
                          pi0_last_error());
            }
            pi0_weight_destroy(W);
            dm_free(&dy), dm_free(&di);
            free(wide);
        }
        free(tab), free(tb), free(y), free(ref);
    }
}

// ---- streams and events ----

/* upload -> kernel -> download, double-buffered host staging and device buffers, with
 * no sync inside the loop: host slots are reused only after the event of their copy. */
static void test_stream_order_double_buffer(void) {
    FOR_EACH_BACKEND(e) {
        enum { N = 64, W = 4096, ITERS = 40 };
        float *stage[2] = {fnew(N * W), fnew(N * W)}, *out = fnew((size_t)ITERS * N * W);
        dmat dev[2] = {dm_new(&e, N, W, W, PI0_F32), dm_new(&e, N, W, W, PI0_F32)};
        pi0_event *ev[2];
        CHECK_STATUS(pi0_event_create(e.d, &ev[0]), PI0_OK);
        CHECK_STATUS(pi0_event_create(e.d, &ev[1]), PI0_OK);
        CHECK_STATUS(pi0_event_sync(ev[0]), PI0_OK); /* never recorded: immediate */
        CHECK_EQ_INT(pi0_event_done(ev[0]), 1);
        for (int it = 0; it < ITERS; it++) {
            int s = it % 2;
            CHECK_STATUS(pi0_event_sync(ev[s]), PI0_OK); /* slot s free again */
            for (int i = 0; i < N * W; i++)
                stage[s][i] = (float)(it * 1000 + i % 997);
            CHECK_STATUS(
                pi0_dev_upload(e.s, dev[s].b, dev[s].m.off, stage[s], (size_t)N * W * 4),
                PI0_OK);
            CHECK_STATUS(pi0_dev_unary(e.s, PI0_UN_SCALE, dev[s].m, dev[s].m, 2.0f), PI0_OK);
            CHECK_STATUS(pi0_dev_download(e.s, out + (size_t)it * N * W, dev[s].b, dev[s].m.off,
                                          (size_t)N * W * 4),
                         PI0_OK);
            CHECK_STATUS(pi0_event_record(ev[s], e.s), PI0_OK);
        }
        CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK);
        CHECK_EQ_INT(pi0_event_done(ev[0]), 1);
        int bad = 0;
        for (int it = 0; it < ITERS && !bad; it++)
            for (int i = 0; i < N * W; i++)
                if (out[(size_t)it * N * W + i] != 2.0f * (float)(it * 1000 + i % 997)) {
                    CHECK_MSG(0, "iteration %d element %d: %g", it, i,
                              (double)out[(size_t)it * N * W + i]);
                    bad = 1;
                    break;
                }
        pi0_event_destroy(ev[0]);
        pi0_event_destroy(ev[1]);
        pi0_event_destroy(NULL);
        dm_free(&dev[0]), dm_free(&dev[1]);
        free(stage[0]), free(stage[1]), free(out);
    }
}

/* stream A: a long chain of adds, then an event; stream B waits on it, then reads. */
static void test_events_two_streams(void) {
    FOR_EACH_BACKEND(e) {
        enum { R = 256, C = 1024, STEPS = 30 };
        pi0_stream *b;
        pi0_event *ev;
        CHECK_STATUS(pi0_stream_create(e.d, &b), PI0_OK);
        CHECK_STATUS(pi0_event_create(e.d, &ev), PI0_OK);
        float *zeros = fnew(R * C), *ones = fnew(R * C), *res = fnew(R * C);
        for (int i = 0; i < R * C; i++)
            ones[i] = 1.0f;
        dmat x = dm_new(&e, R, C, C, PI0_F32), one = dm_new(&e, R, C, C, PI0_F32),
             y = dm_new(&e, R, C, C, PI0_F32);
        dm_put(&e, &x, zeros);
        dm_put(&e, &one, ones);
        for (int i = 0; i < STEPS; i++)
            CHECK_STATUS(pi0_dev_binary(e.s, PI0_BIN_ADD, x.m, x.m, one.m), PI0_OK);
        CHECK_STATUS(pi0_event_record(ev, e.s), PI0_OK);
        CHECK_STATUS(pi0_stream_wait_event(b, ev), PI0_OK);
        CHECK_STATUS(pi0_dev_unary(b, PI0_UN_SCALE, y.m, x.m, 2.0f), PI0_OK);
        CHECK_STATUS(pi0_dev_download(b, res, y.b, y.m.off, (size_t)R * C * 4), PI0_OK);
        CHECK_STATUS(pi0_stream_sync(b), PI0_OK);
        CHECK_EQ_INT(pi0_event_done(ev), 1);
        int ok = 1;
        for (int i = 0; i < R * C; i++)
            ok &= res[i] == 2.0f * STEPS;
        CHECK_MSG(ok, "stream B ran before the event: res[0] = %g", (double)res[0]);
        /* event_sync blocks until the record executed */
        for (int i = 0; i < STEPS; i++)
            CHECK_STATUS(pi0_dev_binary(e.s, PI0_BIN_ADD, x.m, x.m, one.m), PI0_OK);
        CHECK_STATUS(pi0_event_record(ev, e.s), PI0_OK);
        CHECK_STATUS(pi0_dev_download(e.s, res, x.b, x.m.off, (size_t)R * C * 4), PI0_OK);
        CHECK_STATUS(pi0_event_sync(ev), PI0_OK);
        CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK);
        CHECK_NEAR(res[R * C - 1], 2.0 * STEPS, 0);
        pi0_event_destroy(ev);
        pi0_stream_destroy(b);
        dm_free(&x), dm_free(&one), dm_free(&y);
        free(zeros), free(ones), free(res);
    }
}

/* far more operations than the queue holds, without a sync: enqueue waits for space */
static void test_queue_full(void) {
    FOR_EACH_BACKEND(e) {
        float v = 0, one = 1;
        dmat x = dm_new(&e, 1, 1, 1, PI0_F32), o = dm_new(&e, 1, 1, 1, PI0_F32);
        dm_put(&e, &x, &v);
        dm_put(&e, &o, &one);
        for (int i = 0; i < 5000; i++)
            CHECK_STATUS(pi0_dev_binary(e.s, PI0_BIN_ADD, x.m, x.m, o.m), PI0_OK);
        dm_get(&e, &x, &v);
        CHECK_NEAR(v, 5000, 0);
        dm_free(&x), dm_free(&o);
    }
}

static void test_copy_and_views(void) {
    FOR_EACH_BACKEND(e) {
        pi0_buf *a, *b;
        CHECK_STATUS(pi0_buf_alloc(e.d, 1000, &a), PI0_OK);
        CHECK_STATUS(pi0_buf_alloc(e.d, 1000, &b), PI0_OK);
        CHECK_EQ_INT(pi0_buf_size(a), 1000);
        unsigned char in[1000], out[1000];
        for (int i = 0; i < 1000; i++)
            in[i] = (unsigned char)(i * 7);
        CHECK_STATUS(pi0_dev_upload(e.s, a, 0, in, 1000), PI0_OK);
        CHECK_STATUS(pi0_dev_copy(e.s, b, 100, a, 3, 897), PI0_OK);
        CHECK_STATUS(pi0_dev_download(e.s, out, b, 100, 897), PI0_OK);
        CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK);
        CHECK(memcmp(out, in + 3, 897) == 0);
        /* a sub-view: scale rows 1..2, cols 2..4 of a 4x6 matrix in place */
        float m[24], r[24];
        for (int i = 0; i < 24; i++)
            m[i] = (float)i;
        CHECK_STATUS(pi0_dev_upload(e.s, a, 0, m, sizeof m), PI0_OK);
        pi0_mat full = pi0_mat_f32(a, 0, 4, 6), sub = pi0_mat_sub(full, 1, 2, 2, 3);
        CHECK_STATUS(pi0_dev_unary(e.s, PI0_UN_SCALE, sub, sub, -1.0f), PI0_OK);
        CHECK_STATUS(pi0_dev_download(e.s, r, a, 0, sizeof r), PI0_OK);
        CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK);
        for (int i = 0; i < 24; i++) {
            int row = i / 6, col = i % 6, in_sub = row >= 1 && row <= 2 && col >= 2 && col <= 4;
            CHECK_NEAR(r[i], in_sub ? -m[i] : m[i], 0);
        }
        pi0_buf_free(a);
        pi0_buf_free(b);
        pi0_buf_free(NULL);
    }
}

/* 2-D copies between strided views: concatenate two f32 blocks along columns, and a u8
 * view */
static void copy_mat_checks(env *e) {
    enum { R = 37, A = 50, B = 29 };
    float *a = fnew(R * A), *b = fnew(R * B), *y = fnew(R * (A + B));
    double *ref = malloc(sizeof(double) * R * (A + B));
    fill(a, R * A, 1), fill(b, R * B, 1);
    for (int r = 0; r < R; r++)
        for (int c = 0; c < A + B; c++)
            ref[r * (A + B) + c] = c < A ? a[r * A + c] : b[r * B + c - A];
    dmat da = dm_from(e, R, A, A + 3, a), db = dm_from(e, R, B, B, b),
         dy = dm_new(e, R, A + B, A + B + 1, PI0_F32);
    CHECK_STATUS(pi0_dev_copy_mat(e->s, pi0_mat_sub(dy.m, 0, R, 0, A), da.m), PI0_OK);
    CHECK_STATUS(pi0_dev_copy_mat(e->s, pi0_mat_sub(dy.m, 0, R, A, B), db.m), PI0_OK);
    dm_get(e, &dy, y);
    compare("copy_mat concat", y, ref, NULL, R * (A + B), 0, 0);
    uint8_t u[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, v[4];
    dmat du = dm_new(e, 3, 4, 4, PI0_U8), dv = dm_new(e, 2, 2, 2, PI0_U8);
    dm_put(e, &du, u);
    CHECK_STATUS(pi0_dev_copy_mat(e->s, dv.m, pi0_mat_sub(du.m, 1, 2, 1, 2)), PI0_OK);
    dm_get(e, &dv, v);
    CHECK(v[0] == 6 && v[1] == 7 && v[2] == 10 && v[3] == 11);
    CHECK_STATUS(pi0_dev_copy_mat(e->s, dv.m, pi0_mat_sub(da.m, 0, 2, 0, 2)), PI0_ETYPE);
    CHECK_STATUS(pi0_dev_copy_mat(e->s, dv.m, pi0_mat_sub(du.m, 0, 3, 0, 2)), PI0_ESHAPE);
    CHECK_STATUS(
        pi0_dev_copy_mat(e->s, pi0_mat_sub(da.m, 0, 2, 0, 4), pi0_mat_sub(da.m, 1, 2, 0, 4)),
        PI0_EINVAL);
    dm_free(&da), dm_free(&db), dm_free(&dy), dm_free(&du), dm_free(&dv);
    free(a), free(b), free(y), free(ref);
}

static void test_copy_mat(void) {
    FOR_EACH_BACKEND(e) {
        rng_seed(9);
        copy_mat_checks(&e);
    }
}

/* The public wrappers supply OPTIONAL entries a backend leaves NULL: run them on a copy
 * of each backend's table with those entries removed. */
static void test_optional_fallbacks(void) {
    FOR_EACH_BACKEND(e) {
        pi0_dev_iface stripped = *e.d->iface;
        const pi0_dev_iface *orig = e.d->iface;
        stripped.geglu = NULL;
        stripped.copy_mat = NULL;
        stripped.reserve = NULL;
        stripped.reserve_attention = NULL;
        e.d->iface = &stripped;
        rng_seed(10);
        ew_case(&e, E_GEGLU, 9, 300, 0);
        ew_case(&e, E_GEGLU, 9, 300, 1);
        copy_mat_checks(&e);
        CHECK_STATUS(pi0_dev_reserve(e.d, 1 << 20), PI0_OK);
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 8, 100, 2, 1, 16), PI0_OK);
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 0, 100, 2, 1, 16), PI0_EINVAL);
        e.d->iface = orig;
    }
}

/* two host threads drive two streams of one device at the same time (as the pipeline's
 * encode and denoise stages do): kernels share the cores and the scratch, results stay
 * right */
typedef struct stream_job {
    env e;
    int which;
} stream_job;

static void *stream_job_main(void *arg) {
    stream_job *j = arg;
    rng_seed(20 + (uint64_t)j->which);
    for (int i = 0; i < 3; i++) {
        if (j->which == 0) {
            gemm_case(&j->e, 70, 1100, 300, PI0_F32, 1, PI0_ACT_GELU_TANH, 0, 0);
            att_case(&j->e, 40, 90, 8, 1, 64, M_U8, 2);
            norm_case(&j->e, K_RMS, 51, 1024, 0);
        } else {
            gemm_case(&j->e, 51, 700, 520, PI0_BF16, 1, PI0_ACT_NONE, 1, 0);
            att_case(&j->e, 30, 60, 4, 2, 32, M_F32, 1);
            ew_case(&j->e, E_GEGLU, 51, 4096, 1);
        }
    }
    return NULL;
}

static void test_two_streams_concurrent(void) {
    FOR_EACH_BACKEND(e) {
        stream_job jobs[2] = {{e, 0}, {e, 1}};
        CHECK_STATUS(pi0_stream_create(e.d, &jobs[1].e.s), PI0_OK);
        pthread_t th;
        CHECK(pthread_create(&th, NULL, stream_job_main, &jobs[1]) == 0);
        stream_job_main(&jobs[0]);
        pthread_join(th, NULL);
        pi0_stream_destroy(jobs[1].e.s);
    }
}

// ---- bad arguments, lifetimes, options ----

static void test_bad_arguments(void) {
    FOR_EACH_BACKEND(e) {
        pi0_buf *b;
        CHECK_STATUS(pi0_buf_alloc(e.d, 4096, &b), PI0_OK);
        static const char zeros[4096];
        CHECK_STATUS(pi0_dev_upload(e.s, b, 0, zeros, sizeof zeros), PI0_OK);
        pi0_buf *nb = (pi0_buf *)1;
        CHECK_STATUS(pi0_buf_alloc(e.d, 0, &nb), PI0_EINVAL);
        CHECK(nb == NULL);
        float w[12] = {0};
        pi0_weight *W, *nw = NULL;
        CHECK_STATUS(pi0_weight_create(e.d, w, PI0_F32, 3, 4, 4, &W), PI0_OK);
        CHECK_STATUS(pi0_weight_create(e.d, w, PI0_I32, 3, 4, 4, &nw), PI0_ETYPE);
        CHECK_STATUS(pi0_weight_create(e.d, w, PI0_F32, 3, 4, 3, &nw), PI0_ESHAPE);
        CHECK_STATUS(pi0_weight_create(e.d, NULL, PI0_F32, 3, 4, 4, &nw), PI0_EINVAL);
        CHECK_STATUS(pi0_weight_create(e.d, w, PI0_F32, 0, 4, 4, &nw), PI0_ESHAPE);
        pi0_mat x = pi0_mat_f32(b, 0, 2, 4), y = pi0_mat_f32(b, 1024, 2, 3);
        /* gemm */
        CHECK_STATUS(pi0_dev_gemm(e.s, y, x, W, NULL, PI0_ACT_NONE, 0), PI0_OK);
        CHECK_STATUS(pi0_dev_gemm(NULL, y, x, W, NULL, PI0_ACT_NONE, 0), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_gemm(e.s, y, x, NULL, NULL, PI0_ACT_NONE, 0), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_gemm(e.s, y, pi0_mat_f32(b, 0, 2, 5), W, NULL, 0, 0), PI0_ESHAPE);
        CHECK(strstr(pi0_last_error(), "k=4") != NULL);
        CHECK_STATUS(pi0_dev_gemm(e.s, pi0_mat_f32(b, 1024, 2, 4), x, W, NULL, 0, 0),
                     PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_gemm(e.s, pi0_mat_f32(b, 1024, 3, 3), x, W, NULL, 0, 0),
                     PI0_ESHAPE);
        pi0_mat xu8 = x;
        xu8.dtype = PI0_U8;
        CHECK_STATUS(pi0_dev_gemm(e.s, y, xu8, W, NULL, 0, 0), PI0_ETYPE);
        CHECK_STATUS(pi0_dev_gemm(e.s, pi0_mat_f32(b, 4088, 2, 3), x, W, NULL, 0, 0),
                     PI0_ERANGE);
        CHECK_STATUS(pi0_dev_gemm(e.s, pi0_mat_f32(b, 1026, 2, 3), x, W, NULL, 0, 0),
                     PI0_EINVAL);
        CHECK_STATUS(pi0_dev_gemm(e.s, pi0_mat_f32(b, 16, 2, 3), x, W, NULL, 0, 0), PI0_EINVAL);
        pi0_mat bias = pi0_mat_f32(b, 2048, 1, 4);
        CHECK_STATUS(pi0_dev_gemm(e.s, y, x, W, &bias, 0, 0), PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_gemm(e.s, y, x, W, NULL, (pi0_act)9, 0), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_gemm(e.s, y, x, W, NULL, 0, 2), PI0_EINVAL);
        pi0_mat nobuf = x;
        nobuf.buf = NULL;
        CHECK_STATUS(pi0_dev_gemm(e.s, y, nobuf, W, NULL, 0, 0), PI0_EINVAL);
        pi0_mat badld = x;
        badld.ld = 3;
        CHECK_STATUS(pi0_dev_gemm(e.s, y, badld, W, NULL, 0, 0), PI0_ESHAPE);
        /* norms / elementwise */
        pi0_mat r1 = pi0_mat_f32(b, 2048, 1, 4), r5 = pi0_mat_f32(b, 2048, 1, 5);
        CHECK_STATUS(pi0_dev_rmsnorm(e.s, x, x, r5, 1e-6f), PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_rmsnorm(e.s, x, x, r1, -1.0f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_layernorm(e.s, y, x, r1, r1, 1e-6f), PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_rmsnorm_ada(e.s, x, x, pi0_mat_f32(b, 2048, 3, 4), r1, 1e-6f),
                     PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_gated_add(e.s, x, r5, x), PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_gated_add(e.s, x, r1, x), PI0_EINVAL); /* h aliases x */
        CHECK_STATUS(pi0_dev_unary(e.s, (pi0_unop)0, x, x, 1), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_unary(e.s, PI0_UN_SCALE, pi0_mat_f32(b, 4, 2, 4), x, 1),
                     PI0_EINVAL);
        CHECK_STATUS(pi0_dev_binary(e.s, (pi0_binop)7, x, x, x), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_binary(e.s, PI0_BIN_ADD, x, x, pi0_mat_f32(b, 2048, 2, 3)),
                     PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_geglu(e.s, x, x, x), PI0_EINVAL);
        pi0_mat x24 = pi0_mat_f32(b, 2048, 2, 4), x24b = pi0_mat_f32(b, 2560, 2, 4);
        pi0_mat r1b = pi0_mat_f32(b, 2560, 1, 4);
        CHECK_STATUS(pi0_dev_layernorm(e.s, x24, x, r1, r1b, 1e-6f), PI0_EINVAL); /* y/weight */
        CHECK_STATUS(pi0_dev_layernorm(e.s, x24b, x, r1, r1b, 1e-6f), PI0_EINVAL); /* y/bias */
        CHECK_STATUS(pi0_dev_rmsnorm(e.s, x24, x, r1, 1e-6f), PI0_EINVAL); /* y/weight */
        /* rope */
        pi0_mat pos = {b, 3072, 1, 2, 2, PI0_I32};
        CHECK_STATUS(pi0_dev_rope(e.s, x, pos, 1, 4, 10000.f), PI0_OK);
        CHECK_STATUS(pi0_dev_rope(e.s, x, pos, 1, 3, 10000.f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_rope(e.s, x, pos, 2, 4, 10000.f), PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_rope(e.s, x, pi0_mat_f32(b, 3072, 1, 2), 1, 4, 10000.f),
                     PI0_ETYPE);
        pi0_mat pos3 = pos;
        pos3.cols = pos3.ld = 3;
        CHECK_STATUS(pi0_dev_rope(e.s, x, pos3, 1, 4, 10000.f), PI0_ESHAPE);
        /* n_heads * head_dim beyond int: an error, not an overflow */
        CHECK_STATUS(pi0_dev_rope(e.s, x, pos, 1 << 16, 1 << 16, 10000.f), PI0_ESHAPE);
        /* rope_qk: q x [2, 4] (1 head of 4), k [2, 2] or [2, 4] elsewhere in b */
        pi0_mat k22 = pi0_mat_f32(b, 2560, 2, 2), k24 = pi0_mat_f32(b, 2560, 2, 4);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, x, k24, pos, 1, 1, 4, 10000.f), PI0_OK);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, x, k22, pos, 1, 1, 4, 10000.f), PI0_ESHAPE);
        CHECK(strstr(pi0_last_error(), "k has 2 cols") != NULL);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, x, pi0_mat_f32(b, 2560, 3, 4), pos, 1, 1, 4, 10000.f),
                     PI0_ESHAPE); /* a row per token */
        CHECK_STATUS(pi0_dev_rope_qk(e.s, x, k24, pos, 1, 0, 4, 10000.f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, x, pi0_mat_f32(b, 16, 2, 4), pos, 1, 1, 4, 10000.f),
                     PI0_EINVAL); /* overlaps q */
        CHECK(strstr(pi0_last_error(), "q overlaps k") != NULL);
        /* column blocks of one [2, 8] matrix: disjoint ones are fine, overlapping ones
         * (also through a row's wrap into the next) are not */
        pi0_mat qk = pi0_mat_f32(b, 0, 2, 8), kw = pi0_mat_f32(b, 6 * 4, 2, 4);
        kw.ld = 8;
        pi0_mat qb = pi0_mat_sub(qk, 0, 2, 0, 4);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, qb, pi0_mat_sub(qk, 0, 2, 4, 4), pos, 1, 1, 4, 1e4f),
                     PI0_OK);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, pi0_mat_sub(qk, 0, 2, 4, 4), qb, pos, 1, 1, 4, 1e4f),
                     PI0_OK);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, qb, pi0_mat_sub(qk, 0, 2, 3, 4), pos, 1, 1, 4, 1e4f),
                     PI0_EINVAL);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, qb, kw, pos, 1, 1, 4, 1e4f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, kw, qb, pos, 1, 1, 4, 1e4f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, x, k24, pos3, 1, 1, 4, 10000.f), PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_rope_qk(e.s, x, k24, pos, 1, 1, 4, 0.f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_rope_qk(NULL, x, k24, pos, 1, 1, 4, 10000.f), PI0_EINVAL);
        /* attention: q [2, 2*2], k/v [3, 1*2] */
        pi0_mat q = pi0_mat_f32(b, 0, 2, 4), k = pi0_mat_f32(b, 512, 3, 2),
                v = pi0_mat_f32(b, 768, 3, 2), o = pi0_mat_f32(b, 1024, 2, 4);
        pi0_mat m8 = {b, 3200, 2, 3, 3, PI0_U8}, m8bad = {b, 3200, 3, 2, 2, PI0_U8};
        pi0_mat mi32 = {b, 3200, 2, 3, 3, PI0_I32};
        CHECK_STATUS(pi0_dev_attention(e.s, o, q, k, v, &m8, 2, 1, 2, 0.7f), PI0_OK);
        CHECK_STATUS(pi0_dev_attention(e.s, o, q, k, v, NULL, 2, 1, 2, 0.7f), PI0_OK);
        CHECK_STATUS(pi0_dev_attention(e.s, o, q, k, v, &m8bad, 2, 1, 2, 0.7f), PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_attention(e.s, o, q, k, v, &mi32, 2, 1, 2, 0.7f), PI0_ETYPE);
        CHECK_STATUS(pi0_dev_attention(e.s, o, q, k, v, NULL, 3, 2, 2, 0.7f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_attention(e.s, o, q, k, v, NULL, 2, 1, 3, 0.7f), PI0_ESHAPE);
        CHECK_STATUS(
            pi0_dev_attention(e.s, o, q, pi0_mat_f32(b, 512, 2, 2), v, NULL, 2, 1, 2, 0.7f),
            PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_attention(e.s, q, q, k, v, NULL, 2, 1, 2, 0.7f), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_attention(e.s, o, q, k, v, NULL, 2, 1, 2, NAN), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_attention(e.s, o, q, k, v, NULL, 1 << 16, 1, 1 << 16, 0.7f),
                     PI0_EINVAL);
        /* gather */
        pi0_mat ids = {b, 3072, 1, 2, 2, PI0_I32};
        CHECK_STATUS(pi0_dev_gather(e.s, x, W, ids, 1.0f), PI0_OK);
        CHECK_STATUS(pi0_dev_gather(e.s, y, W, ids, 1.0f), PI0_ESHAPE);
        CHECK_STATUS(pi0_dev_gather(e.s, x, W, x, 1.0f), PI0_ETYPE);
        CHECK_STATUS(pi0_dev_gather(e.s, x, NULL, ids, 1.0f), PI0_EINVAL);
        pi0_mat ids_col = {b, 3072, 2, 1, 1, PI0_I32}, ids3 = {b, 3072, 1, 3, 3, PI0_I32};
        CHECK_STATUS(pi0_dev_gather(e.s, x, W, ids_col, 1.0f), PI0_OK);
        CHECK_STATUS(pi0_dev_gather(e.s, x, W, ids3, 1.0f), PI0_ESHAPE);
        CHECK(strstr(pi0_last_error(), "[1, 2] or [2, 1]") != NULL);
        /* copies */
        char host[64];
        CHECK_STATUS(pi0_dev_upload(e.s, b, 4090, host, 7), PI0_ERANGE);
        CHECK_STATUS(pi0_dev_upload(e.s, b, SIZE_MAX, host, 2), PI0_ERANGE);
        CHECK_STATUS(pi0_dev_download(e.s, host, b, 4000, 97), PI0_ERANGE);
        CHECK_STATUS(pi0_dev_download(e.s, NULL, b, 0, 8), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_copy(e.s, b, 0, NULL, 0, 8), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_upload(NULL, b, 0, host, 8), PI0_EINVAL);
        /* events and streams */
        CHECK_STATUS(pi0_event_record(NULL, e.s), PI0_EINVAL);
        CHECK_STATUS(pi0_stream_sync(NULL), PI0_EINVAL);
        /* objects of another device */
        pi0_dev *d2;
        pi0_buf *b2;
        CHECK_STATUS(pi0_dev_open(e.name, NULL, &d2), PI0_OK);
        CHECK_STATUS(pi0_buf_alloc(d2, 64, &b2), PI0_OK);
        CHECK_STATUS(pi0_dev_upload(e.s, b2, 0, host, 8), PI0_EINVAL);
        pi0_buf_free(b2);
        CHECK_STATUS(pi0_dev_close(d2), PI0_OK);
        /* nothing bad was enqueued: the stream has no error */
        CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK);
        pi0_weight_destroy(W);
        pi0_buf_free(b);
    }
}

static void test_close_busy(void) {
    for (const char *const *bn = pi0_dev_backends(); *bn; bn++) {
        pi0_dev *d;
        CHECK_STATUS(pi0_dev_open(*bn, NULL, &d), PI0_OK);
        pi0_buf *b;
        pi0_stream *s;
        pi0_event *ev;
        pi0_weight *w;
        float wh[4] = {0};
        CHECK_STATUS(pi0_buf_alloc(d, 64, &b), PI0_OK);
        CHECK_STATUS(pi0_dev_close(d), PI0_EBUSY);
        CHECK(strstr(pi0_last_error(), "1 buffers") != NULL);
        pi0_buf_free(b);
        CHECK_STATUS(pi0_stream_create(d, &s), PI0_OK);
        CHECK_STATUS(pi0_dev_close(d), PI0_EBUSY);
        pi0_stream_destroy(s);
        CHECK_STATUS(pi0_event_create(d, &ev), PI0_OK);
        CHECK_STATUS(pi0_dev_close(d), PI0_EBUSY);
        pi0_event_destroy(ev);
        CHECK_STATUS(pi0_weight_create(d, wh, PI0_F32, 2, 2, 2, &w), PI0_OK);
        CHECK_STATUS(pi0_dev_close(d), PI0_EBUSY);
        pi0_weight_destroy(w);
        CHECK_STATUS(pi0_dev_close(d), PI0_OK);
    }
}

/* thread options and scratch: one thread, pinned threads, a tiny scratch + reserve */
static void test_options_and_reserve(void) {
    for (const char *const *bn = pi0_dev_backends(); *bn; bn++) {
        int cpu0 = 0;
        pi0_dev_opts opts[] = {
            {.n_threads = 1}, {.n_threads = 2, .cpus = &cpu0, .n_cpus = 1}, {.n_threads = 3}};
        for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
            env e;
            if (env_open(&e, *bn, &opts[i])) continue;
            rng_seed(8);
            gemm_case(&e, 33, 200, 100, PI0_BF16, 1, PI0_ACT_GELU_TANH, 0, 0);
            gemm_case(&e, 33, 200, 100, PI0_F32, 1, PI0_ACT_SILU, 1, 0);
            att_case(&e, 9, 20, 4, 1, 16, M_U8, 1);
            env_close(&e);
        }
        /* a small scratch: attention over many keys needs pi0_dev_reserve first */
        pi0_dev_opts small = {.n_threads = 2, .scratch_bytes = 64 << 10};
        env e;
        if (env_open(&e, *bn, &small)) continue;
        /* an activation over an accumulated output goes through a per-thread tile of the
         * block's rows x the chunk's columns: few rows leave room for wide chunks */
        gemm_case(&e, 2, 20500, 16, PI0_F32, 1, PI0_ACT_SILU, 1, 0);
        dmat q = dm_new(&e, 4, 64, 64, PI0_F32), k = dm_new(&e, 20000, 64, 64, PI0_F32),
             o = dm_new(&e, 4, 64, 64, PI0_F32);
        int st = pi0_dev_attention(e.s, o.m, q.m, k.m, k.m, NULL, 1, 1, 64, 0.125f);
        if (strcmp(*bn, "cpu") == 0) {
            CHECK_STATUS(st, PI0_ENOMEM);
            CHECK(strstr(pi0_last_error(), "pi0_dev_reserve") != NULL);
        }
        CHECK_STATUS(pi0_dev_reserve(e.d, 8u << 20), PI0_OK);
        gemm_case(&e, 40, 300, 700, PI0_BF16, 1, PI0_ACT_GELU_TANH, 1, 0); /* still fits */
        att_case(&e, 3, 2000, 2, 1, 64, M_NONE, 0);
        dm_free(&q), dm_free(&k), dm_free(&o);
        env_close(&e);
    }
}

/* pi0_dev_reserve_attention: the backend sizes its own attention scratch from the largest
 * shapes; before it, many keys do not fit a small scratch (cpu: PI0_ENOMEM, nothing
 * enqueued), after it they do, at the reserved sizes and below */
static void test_reserve_attention(void) {
    for (const char *const *bn = pi0_dev_backends(); *bn; bn++) {
        pi0_dev_opts small = {.n_threads = 2, .scratch_bytes = 64 << 10};
        env e;
        if (env_open(&e, *bn, &small)) continue;
        /* bad arguments */
        CHECK_STATUS(pi0_dev_reserve_attention(NULL, 4, 16, 1, 1, 8), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 0, 16, 1, 1, 8), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 4, -1, 1, 1, 8), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 4, 16, 3, 2, 8), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 4, 16, 1, 1, 0), PI0_EINVAL);
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 4, 16, 1 << 16, 1, 1 << 16), PI0_EINVAL);
        /* 20000 keys, 4 heads over 2 kv heads: beyond 32 KiB per thread */
        int nq = 5, nk = 20000, nh = 4, nkv = 2, hd = 32;
        dmat q = dm_new(&e, nq, nh * hd, nh * hd, PI0_F32),
             k = dm_new(&e, nk, nkv * hd, nkv * hd, PI0_F32),
             o = dm_new(&e, nq, nh * hd, nh * hd, PI0_F32);
        int st = pi0_dev_attention(e.s, o.m, q.m, k.m, k.m, NULL, nh, nkv, hd, 0.125f);
        if (strcmp(*bn, "cpu") == 0) {
            CHECK_STATUS(st, PI0_ENOMEM);
            CHECK(strstr(pi0_last_error(), "pi0_dev_reserve_attention") != NULL);
            CHECK_STATUS(pi0_stream_sync(e.s), PI0_OK); /* nothing was enqueued */
        }
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, nq, nk, nh, nkv, hd), PI0_OK);
        rng_seed(31);
        att_case(&e, nq, nk, nh, nkv, hd, M_U8, 1);
        att_case(&e, 2, 9000, nh, nkv, hd, M_NONE, 0); /* smaller fits too */
        /* another head layout (multi-query, as Gemma): more query rows than one tile */
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 70, 3000, 8, 1, 16), PI0_OK);
        att_case(&e, 70, 3000, 8, 1, 16, M_F32, 1);
        att_case(&e, nq, nk, nh, nkv, hd, M_NONE, 0); /* the first layout still fits */
        dm_free(&q), dm_free(&k), dm_free(&o);
        env_close(&e);

        /* the wrapper's fallback when the entry is NULL: a whole score matrix through
         * `reserve` (6 x 2 x (40000 + 32) floats, 2 heads' worth per query token) */
        if (env_open(&e, *bn, &small)) continue;
        pi0_dev_iface stripped = *e.d->iface;
        const pi0_dev_iface *orig = e.d->iface;
        stripped.reserve_attention = NULL;
        e.d->iface = &stripped;
        CHECK_STATUS(pi0_dev_reserve_attention(e.d, 6, 40000, 2, 1, 16), PI0_OK);
        e.d->iface = orig;
        rng_seed(32);
        att_case(&e, 6, 40000, 2, 1, 16, M_NONE, 0);
        env_close(&e);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: %s [FILTER]\n"
               "Runs the device tests on every built backend against C references;\n"
               "FILTER runs only the tests whose name contains it.\n",
               argv[0]);
        return 0;
    }
    static const pi0_test tests[] = {
        TEST(test_backends_and_open),
        TEST(test_open_starts_pinned_threads),
        TEST(test_bf16_conversion),
        TEST(test_gemm),
        TEST(test_gemm_portable),
        TEST(test_weight_memory),
        TEST(test_precision_bf16),
        TEST(test_precision_bf16_avx512emu),
        TEST(test_gemm_multi),
        TEST(test_norms),
        TEST(test_elementwise),
        TEST(test_rope),
        TEST(test_reserve_rope),
        TEST(test_attention),
        TEST(test_gather),
        TEST(test_isa_avx512),
        TEST(test_isa_avx2),
        TEST(test_isa_avx512emu),
        TEST(test_isa_portable),
        TEST(test_isa_bad_value),
        TEST(test_stream_order_double_buffer),
        TEST(test_events_two_streams),
        TEST(test_two_streams_concurrent),
        TEST(test_queue_full),
        TEST(test_copy_and_views),
        TEST(test_copy_mat),
        TEST(test_optional_fallbacks),
        TEST(test_bad_arguments),
        TEST(test_close_busy),
        TEST(test_options_and_reserve),
        TEST(test_reserve_attention),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
