/* bench_peak.c — the machine's arithmetic peaks, the yardstick every kernel line of
 * pi0rt-bench is reported against: register-resident loops (no memory traffic) of
 *   - f32 FMA: vfmadd on 512-bit vectors where the CPU has AVX-512F, else 256-bit AVX2+FMA,
 *     else a scalar loop (portable);
 *   - bf16 dot product: vdpbf16ps (2 products and their sum per f32 lane), only where the
 *     CPU has AVX512_BF16 (checked at run time; compiled with target attributes, so the
 *     binary runs on any x86-64);
 * on one thread per allowed CPU (the first `threads` of sched_getaffinity), each pinned to
 * its CPU, started together; the time is from the first start to the last finish, best of
 * 15 rounds. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "common/pi0_time.h"
#include "bench_peak.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PEAK_X86 1
#endif

#define NACC 12 /* independent chains: > FMA latency x FMA ports on current cores */

static volatile float sink; /* keeps the loops' results alive */

/* Each loop returns the flops it did: acc = acc * a + b on NACC chains (the fixed point
 * b / (1 - a) = 1 keeps values normal). */
static double loop_portable(long it) {
    float acc[NACC];
#pragma GCC unroll 16
    for (int j = 0; j < NACC; j++)
        acc[j] = 1.0f + (float)j * 1e-3f;
    float a = 0.999999f, b = 1e-6f;
    for (long i = 0; i < it; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < NACC; j++)
            acc[j] = acc[j] * a + b;
    }
    float s = 0;
#pragma GCC unroll 16
    for (int j = 0; j < NACC; j++)
        s += acc[j];
    sink = s;
    return 2.0 * NACC * (double)it;
}

#ifdef PEAK_X86
__attribute__((target("avx2,fma"))) static double loop_avx2(long it) {
    __m256 acc[NACC], a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-6f);
#pragma GCC unroll 16
    for (int j = 0; j < NACC; j++)
        acc[j] = _mm256_set1_ps(1.0f + (float)j * 1e-3f);
    for (long i = 0; i < it; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < NACC; j++)
            acc[j] = _mm256_fmadd_ps(acc[j], a, b);
    }
    __m256 s = acc[0];
#pragma GCC unroll 16
    for (int j = 1; j < NACC; j++)
        s = _mm256_add_ps(s, acc[j]);
    sink = _mm256_cvtss_f32(s);
    return 2.0 * 8 * NACC * (double)it;
}

__attribute__((target("avx512f"))) static double loop_avx512(long it) {
    __m512 acc[NACC], a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-6f);
#pragma GCC unroll 16
    for (int j = 0; j < NACC; j++)
        acc[j] = _mm512_set1_ps(1.0f + (float)j * 1e-3f);
    for (long i = 0; i < it; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < NACC; j++)
            acc[j] = _mm512_fmadd_ps(acc[j], a, b);
    }
    __m512 s = acc[0];
#pragma GCC unroll 16
    for (int j = 1; j < NACC; j++)
        s = _mm512_add_ps(s, acc[j]);
    sink = _mm512_reduce_add_ps(s);
    return 2.0 * 16 * NACC * (double)it;
}

/* vdpbf16ps: acc += a[2i]*b[2i] + a[2i+1]*b[2i+1] per f32 lane: 64 flops per instruction
 * (small inputs keep the accumulators far from overflow) */
__attribute__((target("avx512f,avx512bf16"))) static double loop_bf16(long it) {
    __m512 acc[NACC];
    __m512bh a = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(-1e-3f)),
             b = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
#pragma GCC unroll 16
    for (int j = 0; j < NACC; j++)
        acc[j] = _mm512_set1_ps((float)j);
    for (long i = 0; i < it; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < NACC; j++)
            acc[j] = _mm512_dpbf16_ps(acc[j], a, b);
    }
    __m512 s = acc[0];
#pragma GCC unroll 16
    for (int j = 1; j < NACC; j++)
        s = _mm512_add_ps(s, acc[j]);
    sink = _mm512_reduce_add_ps(s);
    return 4.0 * 16 * NACC * (double)it;
}
#endif

typedef double (*loop_fn)(long it);

typedef struct peak_thread {
    loop_fn fn;
    long it;
    int cpu;
    pthread_barrier_t *bar;
    double t0, t1, flops;
} peak_thread;

static void *peak_main(void *arg) {
    peak_thread *t = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(t->cpu, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    pthread_barrier_wait(t->bar);
    t->t0 = pi0__now_s();
    t->flops = t->fn(t->it);
    t->t1 = pi0__now_s();
    return NULL;
}

/* GFLOP/s of fn on the first `threads` allowed CPUs (0 when they cannot be started) */
static double run_peak(loop_fn fn, int threads, int rounds, int *used) {
    cpu_set_t set;
    int cpus[256], n = 0;
    if (sched_getaffinity(0, sizeof set, &set) != 0) CPU_ZERO(&set);
    for (int c = 0; c < CPU_SETSIZE && n < threads && n < 256; c++)
        if (CPU_ISSET(c, &set)) cpus[n++] = c;
    if (n == 0) return 0;
    *used = n;
    /* calibrate: about 20 ms per round on one thread; many short rounds, so that on a
     * shared machine the best one likely ran undisturbed */
    double t0 = pi0__now_s();
    double fl = fn(1 << 16);
    double per_it = (pi0__now_s() - t0) / (1 << 16);
    long it = per_it > 0 ? (long)(0.02 / per_it) : (1L << 22);
    if (it < (1 << 16)) it = 1 << 16;
    (void)fl;
    double best = 0;
    peak_thread th[256];
    pthread_t id[256];
    for (int round = 0; round < rounds; round++) {
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)n);
        int started = 0;
        for (int i = 0; i < n; i++) {
            th[i] = (peak_thread){.fn = fn, .it = it, .cpu = cpus[i], .bar = &bar};
            if (pthread_create(&id[i], NULL, peak_main, &th[i])) break;
            started++;
        }
        if (started < n) { /* cannot happen short of resource exhaustion: no result */
            for (int i = started; i < n; i++)
                pthread_barrier_wait(&bar);
            for (int i = 0; i < started; i++)
                pthread_join(id[i], NULL);
            pthread_barrier_destroy(&bar);
            return 0;
        }
        double first = 1e300, last = 0, total = 0;
        for (int i = 0; i < n; i++) {
            pthread_join(id[i], NULL);
            if (th[i].t0 < first) first = th[i].t0;
            if (th[i].t1 > last) last = th[i].t1;
            total += th[i].flops;
        }
        pthread_barrier_destroy(&bar);
        double g = total / (last - first) * 1e-9;
        if (g > best) best = g;
    }
    return best;
}

static loop_fn f32_loop(const char **isa) {
    *isa = "portable";
#ifdef PEAK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        *isa = "avx512";
        return loop_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *isa = "avx2";
        return loop_avx2;
    }
#endif
    return loop_portable;
}

double pi0__bench_f32_peak_round(int threads) {
    const char *isa;
    int used = 0;
    return run_peak(f32_loop(&isa), threads, 1, &used);
}

double pi0__bench_peaks(int threads, double *bf16_gflops) {
    loop_fn bf16 = NULL;
    const char *isa;
    loop_fn f32 = f32_loop(&isa);
#ifdef PEAK_X86
    if (__builtin_cpu_supports("avx512bf16")) bf16 = loop_bf16;
#endif
    int used = 0;
    double g = run_peak(f32, threads, 15, &used);
    printf("{\"bench\":\"peak\",\"kind\":\"f32_fma\",\"isa\":\"%s\",\"threads\":%d,"
           "\"gflops\":%.1f,\"gflops_per_thread\":%.1f}\n",
           isa, used, g, used ? g / used : 0.0);
    *bf16_gflops = 0;
    if (bf16) {
        *bf16_gflops = run_peak(bf16, threads, 15, &used);
        printf(
            "{\"bench\":\"peak\",\"kind\":\"bf16_dot\",\"isa\":\"avx512_bf16\",\"threads\":%d,"
            "\"gflops\":%.1f,\"of_f32_peak\":%.3f}\n",
            used, *bf16_gflops, g > 0 ? *bf16_gflops / g : 0.0);
    } else {
        printf("{\"bench\":\"peak\",\"kind\":\"bf16_dot\",\"present\":false,"
               "\"why\":\"the CPU has no AVX512_BF16\"}\n");
    }
    fflush(stdout);
    return g;
}
