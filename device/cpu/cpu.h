/* cpu.h — internals of the cpu backend (device/cpu/), shared by its files only.
 *
 * Threads and cores (the policy; see also README.md "## device"):
 *   - The device owns n_threads compute threads: each stream's worker thread acts as
 *     compute thread 0 while it runs a kernel, and a persistent pool of n_threads-1 helper
 *     threads (pinned to opts.cpus[1..], the stream workers to opts.cpus[0]) joins in.
 *     The mask is set when a thread is created, so no compute thread ever runs elsewhere
 *     (tests/test_pipeline_api.c test_compute_threads_confined watches every thread).
 *   - One device-wide compute lock: a kernel (or copy) runs only while its stream worker
 *     holds it, so kernels of two streams interleave instead of running two parallel
 *     kernels at once on the same cores. Helpers sleep on a condition variable between
 *     kernels.
 *   - OpenBLAS is used single-threaded (openblas_set_num_threads(1) at open): every
 *     cblas_sgemm runs inside one of our threads on a slice of the output, so OpenBLAS never
 *     starts its own parallel region and never competes with the pool. */
#ifndef PI0_DEVICE_CPU_H
#define PI0_DEVICE_CPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "device/device_impl.h"

// ---- thread pool ----

/* task `task` of a parallel region, run by compute thread `thread` (0 = the caller) */
typedef void (*pi0__task_fn)(void *ctx, int task, int thread);

/* The region's fields (fn, ctx, n_tasks, next, running, gen) are written together by the
 * caller and read together by the helpers, so they share cache lines on purpose: giving
 * gen, next and running a line each (64-byte aligned) measured slower with 2 threads
 * (pi0rt-bench small, 64x1024 add, 20 alternating runs: median 7.5 -> 10.7 us/op). */
typedef struct pi0__pool {
    int n_threads;      /* including the calling thread */
    pthread_t *helpers; /* n_threads - 1 */
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    atomic_uint_fast64_t gen; /* bumped for every parallel region */
    atomic_int quit;
    atomic_int running; /* helpers still inside the current region */
    pi0__task_fn fn;
    void *ctx;
    int n_tasks;
    atomic_int next; /* next task index to take */
    const int *cpus; /* helper i is pinned to cpus[i % n_cpus] (NULL: not pinned) */
    int n_cpus;
    /* work announced but not started (the device's queued kernels, or NULL: never when
     * threads share CPUs): while it is positive, helpers keep spinning for the next region
     * instead of sleeping, so the kernels of a stage run back to back as in one parallel
     * region */
    const atomic_int *queued;
} pi0__pool;

int pi0__pool_init(pi0__pool *p, int n_threads, const int *cpus, int n_cpus,
                   const atomic_int *queued);
void pi0__pool_deinit(pi0__pool *p);
/* Runs fn(ctx, t, thread) for t in [0, n_tasks) on all pool threads plus the caller and
 * returns when all are done. Only one caller at a time (the compute lock holder). */
void pi0__pool_run(pi0__pool *p, pi0__task_fn fn, void *ctx, int n_tasks);
/* pthread_create(t, fn, arg) on a thread that runs only on `cpu` from its first
 * instruction (cpu < 0: the creator's mask). 0 or the pthread error: EINVAL when `cpu` is
 * not one this process may use (never a silently unpinned thread). */
int pi0__thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int cpu);

// ---- device ----

/* The instruction sets the backend's own kernels are built for, best last. The best one
 * the CPU has is used unless PI0_CPU_ISA=avx512|avx2|portable forces one (open fails if
 * the CPU lacks it); PI0_CPU_NO_AVX512=1 is PI0_CPU_ISA=avx2 where the CPU has AVX2. The
 * row loops of cpu_vec.h follow the CPU, not this setting (GCC picks their clone at load). */
enum { CPU_ISA_PORTABLE, CPU_ISA_AVX2, CPU_ISA_AVX512 };

typedef struct cpu_dev {
    int n_threads;
    int *cpus; /* n_cpus entries, or NULL */
    int n_cpus;
    pthread_mutex_t compute_mu; /* held by the stream worker running a kernel or copy */
    atomic_int hi_pending;      /* ops queued on high-priority streams (compute_lock) */
    atomic_int queued;          /* kernels and copies enqueued and not yet finished */
    pthread_cond_t prio_cv;     /* with compute_mu: hi_pending fell to 0 */
    pi0__pool pool;
    /* kernel scratch, split in n_threads equal slices (64-byte aligned). Both change only
     * in cpu_reserve, under compute_mu (so never under a running kernel), and the slice
     * size only grows: a size read without the lock (attention's enqueue-side check) is
     * still a lower bound when the kernel runs. Read the size with cpu_scratch_bytes. */
    char *scratch;
    atomic_size_t scratch_per_thread;
    int isa; /* CPU_ISA_*: the kernels' instruction set (cpu_backend.c: pick_isa) */
    /* RoPE cos/sin table (cpu_kernels.c: pi0__cpu_rope_table), [rope_npos][rope_hd]: cos in the
     * first half of a row, sin in the second; touched only by kernels (compute lock) */
    float *rope_tab;
    float rope_theta;
    int rope_hd, rope_npos;
    int direct_large; /* also for GEMMs with many rows: OpenBLAS's own kernels are not
                         AVX-512 ones (e.g. its core is pinned to Haswell, or unknown) */
    pi0_precision precision;
    int pack;    /* GEMM weights are repacked at creation for cpu_gemm_packed.c (x86-64 CPUs
                    with AVX2 or AVX-512) */
    int pk_kern; /* its micro-kernel: PI0__PK_AVX2 / _AVX512 / _AVX512_EMU */
    int pk_dp;   /* bf16 precision with the bf16 dot product (AVX512_BF16, or emulated
                    under PI0_CPU_ISA=avx512emu): weights packed as PI0__PK_BF16X2 */
    /* packed x of one row block (cpu_gemm_packed.c), shared by the compute threads: grown
     * at weight creation (under compute_mu) to PI0__PK_MC rows of the deepest weight */
    float *pk_x;
    size_t pk_x_floats;
} cpu_dev;

static inline cpu_dev *cpu_of(const pi0_dev *d) {
    return (cpu_dev *)d->impl;
}

/* Address of element (r, c) of m. */
static inline void *cpu_at(pi0_mat m, int r, int c) {
    return (char *)m.buf->impl + m.off +
           ((size_t)r * (size_t)m.ld + (size_t)c) * pi0_dtype_size(m.dtype);
}

/* Scratch bytes per thread. Relaxed: the value is all the caller needs; the memory behind
 * it is ordered by compute_mu. */
static inline size_t cpu_scratch_bytes(cpu_dev *d) {
    return atomic_load_explicit(&d->scratch_per_thread, memory_order_relaxed);
}

static inline float *cpu_scratch(cpu_dev *d, int thread) {
    return (float *)(d->scratch + (size_t)thread * cpu_scratch_bytes(d));
}

/* Element i of an I32 vector stored as [1, n] or [n, 1] (rope positions, gather ids). */
static inline int32_t cpu_i32_at(pi0_mat m, int i) {
    return *(const int32_t *)cpu_at(m, m.rows == 1 ? 0 : i, m.rows == 1 ? i : 0);
}

// ---- kernel arguments (copied into the stream's queue) ----

typedef struct cpu_args {
    pi0_mat m[6];
    const pi0_weight *w;
    const pi0_weight *wm[PI0_GEMM_MULTI_MAX]; /* gemm_multi's weights */
    int has_opt; /* bias (gemm) / mask (attention) present in m[...] */
    int i[4];
    float f[2];
} cpu_args;

typedef int (*cpu_kernel_fn)(cpu_dev *d, const cpu_args *a);

/* kernels (device/cpu/cpu_kernels.c, cpu_gemm.c); run with the compute lock held */
int pi0__cpu_gemm(cpu_dev *d, const cpu_args *a);        /* y x [bias] w act acc */
int pi0__cpu_gemm_multi(cpu_dev *d, const cpu_args *a);  /* y0..y(n-1) x, wm, n */
int pi0__cpu_layernorm(cpu_dev *d, const cpu_args *a);   /* y x weight bias eps */
int pi0__cpu_rmsnorm(cpu_dev *d, const cpu_args *a);     /* y x weight eps */
int pi0__cpu_rmsnorm_ada(cpu_dev *d, const cpu_args *a); /* y x scale shift eps */
int pi0__cpu_gated_add(cpu_dev *d, const cpu_args *a);   /* h gate x */
int pi0__cpu_unary(cpu_dev *d, const cpu_args *a);       /* y x op alpha */
int pi0__cpu_binary(cpu_dev *d, const cpu_args *a);      /* y a b op */
int pi0__cpu_geglu(cpu_dev *d, const cpu_args *a);       /* y gate up */
int pi0__cpu_rope(cpu_dev *d, const cpu_args *a);        /* q pos [k] nh hd nkv theta */
/* Makes rope_tab cover (theta, hd) for positions [0, need) (at most the table's limit);
 * with compute_mu held. 1 when it does, 0 when it cannot be allocated. */
int pi0__cpu_rope_table(cpu_dev *d, float theta, int hd, int need);
int pi0__cpu_attention(cpu_dev *d, const cpu_args *a); /* out q k v [mask] nh nkv hd scale */
int pi0__cpu_gather(cpu_dev *d, const cpu_args *a);    /* y ids table scale */
int pi0__cpu_copy_mat(cpu_dev *d, const cpu_args *a);  /* dst src */

/* The f32 product every kernel uses, one dispatch rule for all (cpu_gemm.c):
 * t[m, n] (= when beta1 == 0, += when 1) x[m, k] · w[n, k]ᵀ, rows of w contiguous along k.
 * direct: CPU_ISA_AVX512 / CPU_ISA_AVX2 run cpu_gemm_avx512.c's / cpu_gemm_avx2.c's kernel
 * instead of cblas_sgemm (0: cblas_sgemm); pass what pi0__cpu_gemm_direct says for the
 * operation's row count. */
int pi0__cpu_gemm_direct(const cpu_dev *d, int m);
void pi0__cpu_sgemm_nt(int direct, int m, int n, int k, const float *x, int ldx, const float *w,
                       int ldw, float *t, int ldt, int beta1);

/* cpu_gemm_avx512.c (x86-64 builds; call only when cpu_dev.avx512):
 * t[m, nn] (= or += when beta1) x[m, k] · W[nn, k]ᵀ with W rows f32 or bf16 */
void pi0__gemm_bf16_smallm_avx512(int m, int nn, int k, const float *x, int ldx,
                                  const uint16_t *w, int ldw, float *t, int ldt, int beta1);
void pi0__gemm_f32_smallm_avx512(int m, int nn, int k, const float *x, int ldx, const float *w,
                                 int ldw, float *t, int ldt, int beta1);

/* cpu_gemm_avx2.c (x86-64 builds; call only when cpu_dev.isa >= CPU_ISA_AVX2): the same */
void pi0__gemm_bf16_smallm_avx2(int m, int nn, int k, const float *x, int ldx,
                                const uint16_t *w, int ldw, float *t, int ldt, int beta1);
void pi0__gemm_f32_smallm_avx2(int m, int nn, int k, const float *x, int ldx, const float *w,
                               int ldw, float *t, int ldt, int beta1);

/* cpu_gemm_packed.c (x86-64 builds; call only when cpu_dev.pack). Weights are packed in
 * panels of PI0__PK_NR rows, x in groups of PI0__PK_MR rows, PI0__PK_MC rows at a time.
 * The micro-kernel (cpu_pk_tile.h) covers one panel per tile with AVX2 and two with
 * AVX-512 (the same layout: only the register width differs). */
#define PI0__PK_MR  6
#define PI0__PK_NR  16
#define PI0__PK_MC  192 /* most rows per block: 192 KiB of packed x per 256-deep slice */
#define PI0__PK_TMP (PI0__PK_MR * 2 * PI0__PK_NR) /* floats of a tile's spill buffer */
/* which micro-kernel (cpu_dev.pk_kern): AVX2; AVX-512F; or the AVX-512 kernel's loops on
 * AVX2 with each 512-bit vector emulated by two ymm (PI0_CPU_ISA=avx512emu: tests it on
 * CPUs without AVX-512; slower, as its 24 emulated accumulators spill) */
enum { PI0__PK_AVX2, PI0__PK_AVX512, PI0__PK_AVX512_EMU };
/* How a weight is packed: f32; bf16 (16 columns per k step, widened to f32 in registers);
 * or bf16 pairs for the bf16 dot product (16 columns x 2 consecutive k per 4-byte word;
 * cpu_dev.pk_dp), with x packed as pairs of bf16 too. */
enum { PI0__PK_F32, PI0__PK_BF16, PI0__PK_BF16X2 };
/* floats of pk_x a weight of depth k needs (a block of rows) */
static inline size_t pi0__pk_x_floats(int k) {
    return (size_t)PI0__PK_MC * (size_t)k;
}
size_t pi0__pk_weight_bytes(int fmt, int n, int k);
/* dst (pi0__pk_weight_bytes(fmt, n, k), 32-byte aligned) = W [n, k] (row stride ld,
 * src_dtype f32/bf16/f16) packed as fmt (bf16 ones rounded to nearest even) */
void pi0__pk_weight(void *dst, int fmt, const void *src, pi0_dtype src_dtype, int n, int k,
                    int ld);
/* ap = rows [0, rows) of x packed in groups of 6, rows past `rows` zero: as f32
 * [group][k][6] (fmt PI0__PK_F32 / _BF16; each value rounded to bf16 when `round`), or for
 * PI0__PK_BF16X2 as words of two bf16 [group][(k+1)/2][6] (k 2j in the low half, 2j+1 in
 * the high half, zero past k), rounded to nearest even */
void pi0__pk_x(float *ap, const float *x, int ldx, int rows, int k, int fmt, int round);
typedef struct pi0__pk_job {
    const float *xp; /* the row block's packed x (pi0__pk_x) */
    int rows;        /* rows in the block (<= PI0__PK_MC) */
    int n, k;
    const void *w; /* the packed weight */
    int fmt;       /* its PI0__PK_F32 / _BF16 / _BF16X2 (and xp's format) */
    int kern;      /* PI0__PK_AVX2 / _AVX512 / _AVX512_EMU */
} pi0__pk_job;
/* Output columns of panels [p0, p1) for the block's rows into d (column 0 of d is column
 * 16·p0, row stride ldd): d = x·Wᵀ, or d += x·Wᵀ when first_add. tmp: PI0__PK_TMP floats.
 * After a panel's last k slice, done(j, p, done_ctx) (may be NULL). */
void pi0__pk_run_chunk(const pi0__pk_job *j, int p0, int p1, float *d, int ldd, int first_add,
                       float *tmp, void (*done)(const pi0__pk_job *, int p, void *),
                       void *done_ctx);
/* One tile of the micro-kernel, as cpu_pk_tile.h describes it. */
typedef void pi0__pk_tile_fn(int mr, int kc, const float *a, const void *b, size_t pstride,
                             float *c, int ldc, int add, const void *pf, int pfn);
/* cpu_gemm_packed512.c (call only on AVX-512F CPUs; the dp ones only with AVX512_BF16):
 * tiles of 1 and 2 panels, on f32, bf16 and bf16-pair (vdpbf16ps) weights */
pi0__pk_tile_fn pi0__pk_tile1_f32_avx512, pi0__pk_tile2_f32_avx512, pi0__pk_tile1_bf16_avx512,
    pi0__pk_tile2_bf16_avx512, pi0__pk_tile1_dp_avx512, pi0__pk_tile2_dp_avx512;

/* Attention scratch (cpu_kernels.c): a thread works on tiles of query tokens and needs
 * pi0__cpu_attention_scratch floats per token of its tile; pi0__cpu_attention_tile is the
 * most tokens per tile the kernel uses (it takes fewer when the scratch holds fewer). */
size_t pi0__cpu_attention_scratch(int n_k, int head_dim, int group);
int pi0__cpu_attention_tile(int group);

#endif /* PI0_DEVICE_CPU_H */
