/* cpu_backend.c — the cpu backend: host memory as device memory, worker-thread streams,
 * events, and the table of entries (kernels are in cpu_kernels.c and cpu_gemm.c). */
#include <cblas.h> /* OpenBLAS's: the Makefile puts `pkg-config --cflags openblas` first */
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "cpu.h"

/* The reference BLAS's cblas.h (Debian's libblas-dev) declares no openblas_* functions;
 * compiled against it, the calls below would be implicit declarations that truncate the
 * returned pointer. */
#ifndef OPENBLAS_VERSION
#error "device/cpu needs OpenBLAS's cblas.h (libopenblas-dev), not the reference one"
#endif

/* OpenBLAS's threaded builds export this (its fork handler); the serial build does not
 * (weak: NULL there). Stops and joins its threads; it starts them again on demand. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

#define CPU_DEFAULT_SCRATCH_PER_THREAD (8u << 20) /* bytes */
#define CPU_QUEUE_CAP                  512        /* operations per stream (power of two) */

// ---- device ----

static int count_allowed_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    return 1;
}

/* Sets the scratch to `total` bytes split over the threads; at open, or in cpu_reserve
 * under compute_mu with a larger total (so the slice size never shrinks). */
static int scratch_alloc(cpu_dev *d, size_t total) {
    size_t per = total / (size_t)d->n_threads;
    per = (per + 63) & ~(size_t)63;
    if (per < 4096) per = 4096;
    char *p = aligned_alloc(64, per * (size_t)d->n_threads);
    if (!p)
        return pi0_errorf(PI0_ENOMEM, "cpu: cannot reserve %zu bytes of scratch",
                          per * (size_t)d->n_threads);
    free(d->scratch);
    d->scratch = p;
    atomic_store_explicit(&d->scratch_per_thread, per, memory_order_relaxed);
    return PI0_OK;
}

/* The best instruction set the CPU has (CPU_ISA_*), or the one PI0_CPU_ISA names (for
 * testing and measuring each path; an error when the CPU lacks it). `avx512emu` is AVX2
 * everywhere but in the packed GEMM, which runs its AVX-512 loops on emulated 512-bit
 * vectors (*emu set): the AVX-512 kernel's logic, tested on CPUs without AVX-512. */
static int pick_isa(int *isa, int *emu) {
    int best = CPU_ISA_PORTABLE;
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = CPU_ISA_AVX2;
    if (best == CPU_ISA_AVX2 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        best = CPU_ISA_AVX512;
#endif
    static const char *const names[] = {"portable", "avx2", "avx512", "avx512emu"};
    const char *want = getenv("PI0_CPU_ISA"), *no = getenv("PI0_CPU_NO_AVX512");
    *isa = best;
    *emu = 0;
    if (!want || !*want) {
        if (no && *no && *no != '0' && best == CPU_ISA_AVX512) *isa = CPU_ISA_AVX2;
        return PI0_OK;
    }
    for (int i = 0; i < 4; i++)
        if (!strcmp(want, names[i])) {
            int need = i == 3 ? CPU_ISA_AVX2 : i;
            if (need > best)
                return pi0_errorf(PI0_EINVAL, "cpu: PI0_CPU_ISA=%s: this CPU has at most %s",
                                  want, names[best]);
            *isa = need;
            *emu = i == 3;
            return PI0_OK;
        }
    return pi0_errorf(PI0_EINVAL,
                      "cpu: PI0_CPU_ISA=%s: want avx512, avx2, avx512emu or portable", want);
}

/* Every sgemm runs inside one of our threads on its own slice: OpenBLAS stays
 * single-threaded (process-wide setting), and its own idle threads are stopped. They are
 * not ours to pin: started at load with their creator's mask, each busy-waits ~0.1 s on
 * any CPU, the control thread's too (measured: 90 ms on the other CPU in
 * test_compute_threads_confined). OpenBLAS restarts them itself if someone asks it for
 * more threads later, and when the count is set in a forked child (its thread server is
 * down there): setting it only when it is not 1 already, with the caller held on the
 * device's CPUs meanwhile, starts no thread anywhere else. */
static void blas_single_threaded(const cpu_dev *d) {
    if (openblas_get_num_threads() != 1) {
        cpu_set_t old, set;
        int pin = d->n_cpus > 0 && !pthread_getaffinity_np(pthread_self(), sizeof old, &old);
        if (pin) {
            CPU_ZERO(&set);
            for (int i = 0; i < d->n_cpus; i++)
                CPU_SET(d->cpus[i], &set);
            pin = !pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        }
        openblas_set_num_threads(1); /* restarted threads keep the mask they got */
        if (pin) pthread_setaffinity_np(pthread_self(), sizeof old, &old);
    }
    if (blas_thread_shutdown_) blas_thread_shutdown_();
}

static int cpu_open(pi0_dev *dev, const pi0_dev_opts *opts) {
    pi0_dev_opts o = {0};
    if (opts) o = *opts;
    cpu_dev *d = calloc(1, sizeof *d);
    if (!d) return pi0_errorf(PI0_ENOMEM, "cpu: out of memory");
    if (o.n_cpus > 0) {
        d->cpus = malloc((size_t)o.n_cpus * sizeof *d->cpus);
        if (!d->cpus) {
            free(d);
            return pi0_errorf(PI0_ENOMEM, "cpu: out of memory");
        }
        memcpy(d->cpus, o.cpus, (size_t)o.n_cpus * sizeof *d->cpus);
        d->n_cpus = o.n_cpus;
        for (int i = 0; i < o.n_cpus; i++)
            if (o.cpus[i] < 0 || o.cpus[i] >= CPU_SETSIZE) {
                int bad = o.cpus[i];
                free(d->cpus);
                free(d);
                return pi0_errorf(PI0_EINVAL, "cpu: opts.cpus[%d] = %d is not a CPU number", i,
                                  bad);
            }
    }
    int emu, st = pick_isa(&d->isa, &emu);
    if (!st && o.precision == PI0_PRECISION_BF16 && d->isa < CPU_ISA_AVX2)
        st = pi0_errorf(PI0_ENOTSUP, "cpu: precision bf16 needs a CPU with AVX2 and FMA%s",
                        getenv("PI0_CPU_ISA") ? " (PI0_CPU_ISA forces portable)" : "");
    if (st) {
        free(d->cpus);
        free(d);
        return st;
    }
    d->precision = o.precision;
#ifdef PI0_HAVE_AVX512_GEMM
    d->pack = d->isa >= CPU_ISA_AVX2;
    d->pk_kern = d->isa == CPU_ISA_AVX512 ? PI0__PK_AVX512
                 : emu                    ? PI0__PK_AVX512_EMU
                                          : PI0__PK_AVX2;
    /* bf16 arithmetic with vdpbf16ps where the CPU has it (or emulated, for tests) */
    d->pk_dp = d->precision == PI0_PRECISION_BF16 &&
               (emu || (d->isa == CPU_ISA_AVX512 && __builtin_cpu_supports("avx512bf16")));
#else
    (void)emu;
#endif
#if defined(__x86_64__)
    {
        /* our direct kernel (~1.4x OpenBLAS's AVX2 kernels at the model's shapes) loses to
         * OpenBLAS's AVX-512 kernels for many rows: use it there only when OpenBLAS has
         * none selected */
        const char *core = openblas_get_corename();
        d->direct_large = d->isa == CPU_ISA_AVX512 && core && strcmp(core, "SkylakeX") != 0 &&
                          strcmp(core, "Cooperlake") != 0 &&
                          strcmp(core, "SapphireRapids") != 0;
    }
#endif
    d->n_threads =
        o.n_threads > 0 ? o.n_threads : (d->n_cpus > 0 ? d->n_cpus : count_allowed_cpus());
    size_t scratch = o.scratch_bytes
                         ? o.scratch_bytes
                         : (size_t)CPU_DEFAULT_SCRATCH_PER_THREAD * (size_t)d->n_threads;
    st = scratch_alloc(d, scratch);
    if (st) {
        free(d->cpus);
        free(d);
        return st;
    }
    pthread_mutex_init(&d->compute_mu, NULL);
    pthread_cond_init(&d->prio_cv, NULL);
    atomic_init(&d->queued, 0);
    /* helpers spin for queued kernels only when each compute thread has a CPU of its own:
     * sharing one, a spinning helper would take the time of the thread with the work */
    int own_cpus = d->n_threads <= (d->n_cpus > 0 ? d->n_cpus : count_allowed_cpus());
    st = pi0__pool_init(&d->pool, d->n_threads, d->cpus, d->n_cpus,
                        own_cpus ? &d->queued : NULL);
    if (st) {
        pthread_cond_destroy(&d->prio_cv);
        pthread_mutex_destroy(&d->compute_mu);
        free(d->scratch);
        free(d->cpus);
        free(d);
        return st;
    }
    blas_single_threaded(d);
    dev->impl = d;
    return PI0_OK;
}

static void cpu_close(pi0_dev *dev) {
    cpu_dev *d = cpu_of(dev);
    pi0__pool_deinit(&d->pool);
    pthread_cond_destroy(&d->prio_cv);
    pthread_mutex_destroy(&d->compute_mu);
    free(d->rope_tab);
    free(d->pk_x);
    free(d->scratch);
    free(d->cpus);
    free(d);
}

static int cpu_reserve(pi0_dev *dev, size_t bytes) {
    cpu_dev *d = cpu_of(dev);
    int st = PI0_OK;
    pthread_mutex_lock(&d->compute_mu); /* no kernel is using the scratch meanwhile */
    if (bytes > cpu_scratch_bytes(d) * (size_t)d->n_threads) st = scratch_alloc(d, bytes);
    pthread_mutex_unlock(&d->compute_mu);
    return st;
}

static int cpu_reserve_rope(pi0_dev *dev, int max_pos, int head_dim, float theta) {
    cpu_dev *d = cpu_of(dev);
    pthread_mutex_lock(&d->compute_mu); /* the table is the kernels' (see cpu_dev) */
    int ok = pi0__cpu_rope_table(d, theta, head_dim, max_pos);
    pthread_mutex_unlock(&d->compute_mu);
    if (!ok)
        return pi0_errorf(PI0_ENOMEM, "pi0_dev_reserve_rope: no memory for %d positions x %d",
                          max_pos, head_dim);
    return PI0_OK;
}

/* Whole tiles (pi0__cpu_attention_tile tokens, fewer when max_q is smaller) on every
 * thread at max_k keys: the kernel then never shrinks its tiles for lack of scratch. */
static int cpu_reserve_attention(pi0_dev *dev, int max_q, int max_k, int n_heads,
                                 int n_kv_heads, int head_dim) {
    cpu_dev *d = cpu_of(dev);
    int g = n_heads / n_kv_heads, tile = pi0__cpu_attention_tile(g);
    if (tile > max_q) tile = max_q;
    size_t per_tok = pi0__cpu_attention_scratch(max_k, head_dim, g) * sizeof(float);
    if (per_tok > SIZE_MAX / 2 / (size_t)tile / (size_t)d->n_threads)
        return pi0_errorf(PI0_ENOMEM,
                          "pi0_dev_reserve_attention: %d keys x %d heads x head_dim %d need "
                          "too much scratch",
                          max_k, n_heads, head_dim);
    return cpu_reserve(dev, per_tok * (size_t)tile * (size_t)d->n_threads);
}

// ---- memory ----

static int cpu_buf_alloc(pi0_dev *dev, pi0_buf *b) {
    size_t sz = (b->size + 63) & ~(size_t)63;
    b->impl = aligned_alloc(64, sz);
    if (!b->impl)
        return pi0_errorf(PI0_ENOMEM, "cpu: cannot allocate a %zu-byte buffer", b->size);
    return PI0_OK;
}

static void cpu_buf_free(pi0_buf *b) {
    free(b->impl);
}

/* Memory the kernels stream through (packed weights): 64-byte aligned, and from 2 MiB up
 * aligned to 2 MiB with its whole 2 MiB pages advised to use transparent huge pages (where
 * THP is `madvise` only, as on Debian), so that streaming gigabytes of weights does not
 * also walk the page tables every 4 KiB. The size is not rounded up: the tail stays on
 * small pages and adds nothing to RSS. Freed with free(). */
static void *stream_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    void *p = NULL;
    if (posix_memalign(&p, bytes < huge ? 64 : huge, bytes ? bytes : 1)) return NULL;
    if (bytes >= huge) (void)madvise(p, bytes & ~(huge - 1), MADV_HUGEPAGE); /* advice only */
    return p;
}

/* Repacks w for cpu_gemm_packed.c and grows the shared packed-x block to its depth. */
static int weight_pack(cpu_dev *d, pi0_weight *w) {
    pi0_dtype dt =
        d->precision == PI0_PRECISION_BF16 || w->dtype == PI0_BF16 ? PI0_BF16 : PI0_F32;
    int fmt = dt == PI0_F32 ? PI0__PK_F32 : d->pk_dp ? PI0__PK_BF16X2 : PI0__PK_BF16;
    size_t bytes = pi0__pk_weight_bytes(fmt, w->n, w->k), need = pi0__pk_x_floats(w->k);
    void *p = stream_alloc(bytes);
    if (!p)
        return pi0_errorf(PI0_ENOMEM, "cpu: cannot allocate %zu bytes for a [%d, %d] weight",
                          bytes, w->n, w->k);
    int st = PI0_OK;
    pthread_mutex_lock(&d->compute_mu); /* no kernel is reading pk_x meanwhile */
    if (need > d->pk_x_floats) {
        float *x = aligned_alloc(64, (need * sizeof(float) + 63) & ~(size_t)63);
        if (x) {
            free(d->pk_x);
            d->pk_x = x;
            d->pk_x_floats = need;
        } else {
            st = pi0_errorf(PI0_ENOMEM, "cpu: cannot allocate %zu bytes of GEMM scratch",
                            need * sizeof(float));
        }
    }
    pthread_mutex_unlock(&d->compute_mu);
    if (st) {
        free(p);
        return st;
    }
    pi0__pk_weight(p, fmt, w->host, w->dtype, w->n, w->k, w->ld);
    w->impl = p;
    w->dtype = dt;
    w->packed = 1;
    w->dev_bytes = bytes;
    return PI0_OK;
}

static int cpu_weight_create(pi0_dev *dev, pi0_weight *w) {
    cpu_dev *d = cpu_of(dev);
    if (d->pack && !w->table) return weight_pack(d, w);
    if (w->dtype == PI0_F32 || w->dtype == PI0_BF16) { /* borrowed in place (e.g. mmapped) */
        w->impl = (void *)w->host;
        w->dev_bytes = 0;
        return PI0_OK;
    }
    /* f16: converted once to f32 */
    size_t n = (size_t)w->n * (size_t)w->k;
    float *f = aligned_alloc(64, (n * 4 + 63) & ~(size_t)63);
    if (!f)
        return pi0_errorf(PI0_ENOMEM, "cpu: cannot allocate %zu bytes for an f16 weight",
                          n * 4);
    const uint16_t *h = w->host;
    for (int r = 0; r < w->n; r++)
        for (int c = 0; c < w->k; c++)
            f[(size_t)r * (size_t)w->k + (size_t)c] =
                pi0_f16_to_f32(h[(size_t)r * (size_t)w->ld + (size_t)c]);
    w->impl = f;
    w->dtype = PI0_F32;
    w->ld = w->k;
    w->dev_bytes = n * 4;
    return PI0_OK;
}

static void cpu_weight_destroy(pi0_weight *w) {
    if (w->dev_bytes) free(w->impl);
}

// ---- events ----

typedef struct cpu_event {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t recorded; /* generation of the latest record */
    uint64_t done;     /* highest generation whose record has executed */
} cpu_event;

static int cpu_event_create(pi0_dev *dev, pi0_event *e) {
    cpu_event *ce = calloc(1, sizeof *ce);
    if (!ce) return pi0_errorf(PI0_ENOMEM, "cpu: out of memory");
    pthread_mutex_init(&ce->mu, NULL);
    pthread_cond_init(&ce->cv, NULL);
    e->impl = ce;
    return PI0_OK;
}

static void cpu_event_destroy(pi0_event *e) {
    cpu_event *ce = e->impl;
    pthread_cond_destroy(&ce->cv);
    pthread_mutex_destroy(&ce->mu);
    free(ce);
}

static void event_signal(cpu_event *ce, uint64_t gen) {
    pthread_mutex_lock(&ce->mu);
    if (gen > ce->done) ce->done = gen;
    pthread_cond_broadcast(&ce->cv);
    pthread_mutex_unlock(&ce->mu);
}

static void event_wait_gen(cpu_event *ce, uint64_t gen) {
    pthread_mutex_lock(&ce->mu);
    while (ce->done < gen)
        pthread_cond_wait(&ce->cv, &ce->mu);
    pthread_mutex_unlock(&ce->mu);
}

static int cpu_event_sync(pi0_event *e) {
    cpu_event *ce = e->impl;
    pthread_mutex_lock(&ce->mu);
    uint64_t gen = ce->recorded;
    while (ce->done < gen)
        pthread_cond_wait(&ce->cv, &ce->mu);
    pthread_mutex_unlock(&ce->mu);
    return PI0_OK;
}

static int cpu_event_done(pi0_event *e) {
    cpu_event *ce = e->impl;
    pthread_mutex_lock(&ce->mu);
    int done = ce->done >= ce->recorded;
    pthread_mutex_unlock(&ce->mu);
    return done;
}

// ---- streams ----

enum { OP_COPY, OP_RECORD, OP_WAIT, OP_KERNEL };

typedef struct cpu_op {
    int kind;
    union {
        struct {
            void *dst;
            const void *src;
            size_t bytes;
        } copy;
        struct {
            cpu_event *e;
            uint64_t gen;
        } ev;
        struct {
            cpu_kernel_fn fn;
            cpu_args args;
        } k;
    } u;
} cpu_op;

typedef struct cpu_stream {
    cpu_dev *dev;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;     /* worker: an op was enqueued (or quit) */
    pthread_cond_t cv_space;    /* producer: an op completed (space, or idle for sync) */
    cpu_op ring[CPU_QUEUE_CAP]; /* fixed capacity, allocated with the stream */
    uint64_t head;              /* ops enqueued */
    uint64_t tail;              /* ops completed */
    int quit;
    atomic_int prio; /* 1: high priority (compute_lock); changed only while idle */
    int in_wait;     /* a high-priority worker waits for an event (under mu) */
    int err;         /* first error since the last sync */
    char errmsg[256];
} cpu_stream;

/* compute_mu with priorities: d->hi_pending counts the operations queued on high-priority
 * streams (not counting a stream while it waits for an event, so a high-priority stream
 * waiting on a normal one cannot block it). A normal stream's worker takes the lock only
 * while none is pending, so at every kernel boundary the high-priority kernels go first;
 * a running kernel is never interrupted. The timed wait bounds a missed broadcast. */
static void compute_lock(cpu_stream *s) {
    cpu_dev *d = s->dev;
    pthread_mutex_lock(&d->compute_mu);
    if (atomic_load_explicit(&s->prio, memory_order_relaxed)) return;
    while (atomic_load(&d->hi_pending) > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&d->prio_cv, &d->compute_mu, &ts);
    }
}

/* hi_pending -= n for a high-priority stream (under s->mu); wakes normal streams at 0. */
static void hi_pending_sub(cpu_stream *s, int n) {
    if (n && atomic_fetch_sub(&s->dev->hi_pending, n) == n)
        pthread_cond_broadcast(&s->dev->prio_cv);
}

static void run_op(cpu_stream *s, const cpu_op *op) {
    int st = PI0_OK;
    switch (op->kind) {
    case OP_COPY:
        /* a copy is CPU work too: it takes the compute lock like a kernel */
        compute_lock(s);
        memmove(op->u.copy.dst, op->u.copy.src, op->u.copy.bytes);
        pthread_mutex_unlock(&s->dev->compute_mu);
        break;
    case OP_RECORD:
        event_signal(op->u.ev.e, op->u.ev.gen);
        break;
    case OP_WAIT:
        if (atomic_load(&s->prio)) { /* not pending while it waits (see compute_lock) */
            pthread_mutex_lock(&s->mu);
            s->in_wait = 1;
            hi_pending_sub(s, (int)(s->head - s->tail));
            pthread_mutex_unlock(&s->mu);
        }
        event_wait_gen(op->u.ev.e, op->u.ev.gen);
        if (atomic_load(&s->prio)) {
            pthread_mutex_lock(&s->mu);
            s->in_wait = 0;
            atomic_fetch_add(&s->dev->hi_pending, (int)(s->head - s->tail));
            pthread_mutex_unlock(&s->mu);
        }
        break;
    case OP_KERNEL:
        compute_lock(s);
        st = op->u.k.fn(s->dev, &op->u.k.args); /* an error comes with its own message */
        pthread_mutex_unlock(&s->dev->compute_mu);
        break;
    }
    if (st) {
        pthread_mutex_lock(&s->mu);
        if (!s->err) {
            s->err = st;
            snprintf(s->errmsg, sizeof s->errmsg, "%s", pi0_last_error_for(st));
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static void *stream_main(void *arg) {
    cpu_stream *s = arg;
    pthread_setname_np(pthread_self(), "pi0-cpu-stream"); /* top -H, perf sched, tests */
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->tail == s->head && !s->quit)
            pthread_cond_wait(&s->cv_work, &s->mu);
        if (s->tail == s->head) break; /* quit with an empty queue */
        const cpu_op *op = &s->ring[s->tail % CPU_QUEUE_CAP];
        pthread_mutex_unlock(&s->mu);
        run_op(s, op); /* the slot stays ours until tail moves past it */
        if (op->kind == OP_KERNEL || op->kind == OP_COPY)
            atomic_fetch_sub_explicit(&s->dev->queued, 1, memory_order_relaxed);
        pthread_mutex_lock(&s->mu);
        s->tail++;
        if (atomic_load(&s->prio) && !s->in_wait) hi_pending_sub(s, 1);
        pthread_cond_broadcast(&s->cv_space);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int cpu_stream_create(pi0_dev *dev, pi0_stream *ps) {
    cpu_stream *s = calloc(1, sizeof *s);
    if (!s) return pi0_errorf(PI0_ENOMEM, "cpu: out of memory");
    s->dev = cpu_of(dev);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    pthread_cond_init(&s->cv_space, NULL);
    int cpu = s->dev->cpus ? s->dev->cpus[0] : -1;
    int rc = pi0__thread_start(&s->thread, stream_main, s, cpu);
    if (rc) {
        pthread_cond_destroy(&s->cv_space);
        pthread_cond_destroy(&s->cv_work);
        pthread_mutex_destroy(&s->mu);
        free(s);
        if (rc == EINVAL && cpu >= 0)
            return pi0_errorf(PI0_EINVAL,
                              "cpu: cannot run a stream thread on CPU %d (not "
                              "one this process may use)",
                              cpu);
        return pi0_errorf(PI0_ENOMEM, "cpu: cannot start a stream thread: %s", strerror(rc));
    }
    ps->impl = s;
    return PI0_OK;
}

/* Appends op; waits for space when the ring is full (never allocates). */
static int enqueue(pi0_stream *ps, const cpu_op *op) {
    cpu_stream *s = ps->impl;
    pthread_mutex_lock(&s->mu);
    while (s->head - s->tail >= CPU_QUEUE_CAP)
        pthread_cond_wait(&s->cv_space, &s->mu);
    s->ring[s->head % CPU_QUEUE_CAP] = *op;
    s->head++;
    if (op->kind == OP_KERNEL || op->kind == OP_COPY)
        atomic_fetch_add_explicit(&s->dev->queued, 1, memory_order_relaxed);
    if (atomic_load(&s->prio) && !s->in_wait) atomic_fetch_add(&s->dev->hi_pending, 1);
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    return PI0_OK;
}

static int cpu_stream_sync(pi0_stream *ps) {
    cpu_stream *s = ps->impl;
    pthread_mutex_lock(&s->mu);
    while (s->tail != s->head)
        pthread_cond_wait(&s->cv_space, &s->mu);
    int err = s->err;
    char msg[sizeof s->errmsg];
    memcpy(msg, s->errmsg, sizeof msg);
    s->err = 0;
    s->errmsg[0] = 0;
    pthread_mutex_unlock(&s->mu);
    if (err) return pi0_errorf(err, "%s", msg);
    return PI0_OK;
}

static int cpu_stream_set_priority(pi0_stream *ps, int high) {
    cpu_stream *s = ps->impl;
    pthread_mutex_lock(&s->mu);
    int idle = s->head == s->tail;
    if (idle) atomic_store(&s->prio, high);
    pthread_mutex_unlock(&s->mu);
    return idle ? PI0_OK : pi0_errorf(PI0_EBUSY, "stream priority changed while it has work");
}

static void cpu_stream_destroy(pi0_stream *ps) {
    cpu_stream *s = ps->impl;
    pthread_mutex_lock(&s->mu);
    s->quit = 1; /* the worker drains the queue first */
    pthread_cond_signal(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv_space);
    pthread_cond_destroy(&s->cv_work);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static int cpu_event_record(pi0_event *e, pi0_stream *s) {
    cpu_event *ce = e->impl;
    pthread_mutex_lock(&ce->mu);
    uint64_t gen = ++ce->recorded;
    pthread_mutex_unlock(&ce->mu);
    cpu_op op = {.kind = OP_RECORD};
    op.u.ev.e = ce;
    op.u.ev.gen = gen;
    return enqueue(s, &op);
}

static int cpu_stream_wait_event(pi0_stream *s, pi0_event *e) {
    cpu_event *ce = e->impl;
    pthread_mutex_lock(&ce->mu);
    uint64_t gen = ce->recorded, done = ce->done;
    pthread_mutex_unlock(&ce->mu);
    if (done >= gen) return PI0_OK; /* never recorded, or already complete */
    cpu_op op = {.kind = OP_WAIT};
    op.u.ev.e = ce;
    op.u.ev.gen = gen;
    return enqueue(s, &op);
}

// ---- copies ----

static int enqueue_copy(pi0_stream *s, void *dst, const void *src, size_t bytes) {
    cpu_op op = {.kind = OP_COPY};
    op.u.copy.dst = dst;
    op.u.copy.src = src;
    op.u.copy.bytes = bytes;
    return enqueue(s, &op);
}

static int cpu_upload(pi0_stream *s, pi0_buf *dst, size_t dst_off, const void *host,
                      size_t bytes) {
    return enqueue_copy(s, (char *)dst->impl + dst_off, host, bytes);
}

static int cpu_download(pi0_stream *s, void *host, const pi0_buf *src, size_t src_off,
                        size_t bytes) {
    return enqueue_copy(s, host, (const char *)src->impl + src_off, bytes);
}

static int cpu_copy(pi0_stream *s, pi0_buf *dst, size_t dst_off, const pi0_buf *src,
                    size_t src_off, size_t bytes) {
    return enqueue_copy(s, (char *)dst->impl + dst_off, (const char *)src->impl + src_off,
                        bytes);
}

// ---- kernels: pack the arguments and enqueue ----

static int enqueue_kernel(pi0_stream *s, cpu_kernel_fn fn, const cpu_args *a) {
    cpu_op op = {.kind = OP_KERNEL};
    op.u.k.fn = fn;
    op.u.k.args = *a;
    return enqueue(s, &op);
}

static int cpu_copy_mat_enq(pi0_stream *s, pi0_mat dst, pi0_mat src) {
    cpu_args a = {.m = {dst, src}};
    return enqueue_kernel(s, pi0__cpu_copy_mat, &a);
}

static int cpu_gemm_enq(pi0_stream *s, pi0_mat y, pi0_mat x, const pi0_weight *w,
                        const pi0_mat *bias, pi0_act act, int accumulate) {
    cpu_args a = {.m = {y, x}, .w = w, .i = {(int)act, accumulate}};
    if (bias) {
        a.m[2] = *bias;
        a.has_opt = 1;
    }
    return enqueue_kernel(s, pi0__cpu_gemm, &a);
}

static int cpu_gemm_multi_enq(pi0_stream *s, int count, const pi0_mat *ys, pi0_mat x,
                              const pi0_weight *const *ws) {
    cpu_args a = {.i = {count}};
    for (int i = 0; i < count; i++) {
        a.m[i] = ys[i];
        a.wm[i] = ws[i];
    }
    a.m[count] = x;
    return enqueue_kernel(s, pi0__cpu_gemm_multi, &a);
}

static int cpu_layernorm_enq(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat weight, pi0_mat bias,
                             float eps) {
    cpu_args a = {.m = {y, x, weight, bias}, .f = {eps}};
    return enqueue_kernel(s, pi0__cpu_layernorm, &a);
}

static int cpu_rmsnorm_enq(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat weight, float eps) {
    cpu_args a = {.m = {y, x, weight}, .f = {eps}};
    return enqueue_kernel(s, pi0__cpu_rmsnorm, &a);
}

static int cpu_rmsnorm_ada_enq(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat scale,
                               pi0_mat shift, float eps) {
    cpu_args a = {.m = {y, x, scale, shift}, .f = {eps}};
    return enqueue_kernel(s, pi0__cpu_rmsnorm_ada, &a);
}

static int cpu_gated_add_enq(pi0_stream *s, pi0_mat h, pi0_mat gate, pi0_mat x) {
    cpu_args a = {.m = {h, gate, x}};
    return enqueue_kernel(s, pi0__cpu_gated_add, &a);
}

static int cpu_unary_enq(pi0_stream *s, pi0_unop uop, pi0_mat y, pi0_mat x, float alpha) {
    cpu_args a = {.m = {y, x}, .i = {(int)uop}, .f = {alpha}};
    return enqueue_kernel(s, pi0__cpu_unary, &a);
}

static int cpu_binary_enq(pi0_stream *s, pi0_binop bop, pi0_mat y, pi0_mat am, pi0_mat bm) {
    cpu_args a = {.m = {y, am, bm}, .i = {(int)bop}};
    return enqueue_kernel(s, pi0__cpu_binary, &a);
}

static int cpu_geglu_enq(pi0_stream *s, pi0_mat y, pi0_mat gate, pi0_mat up) {
    cpu_args a = {.m = {y, gate, up}};
    return enqueue_kernel(s, pi0__cpu_geglu, &a);
}

static int cpu_rope_enq(pi0_stream *s, pi0_mat q, const pi0_mat *k, pi0_mat pos, int n_heads,
                        int n_kv_heads, int head_dim, float theta) {
    cpu_args a = {.m = {q, pos}, .i = {n_heads, head_dim, n_kv_heads}, .f = {theta}};
    if (k) {
        a.m[2] = *k;
        a.has_opt = 1;
    }
    return enqueue_kernel(s, pi0__cpu_rope, &a);
}

static int cpu_attention_enq(pi0_stream *s, pi0_mat out, pi0_mat q, pi0_mat k, pi0_mat v,
                             const pi0_mat *mask, int n_heads, int n_kv_heads, int head_dim,
                             float scale) {
    /* The only scratch check: done here, so a call that cannot run fails now and enqueues
     * nothing. Without the lock: the size only grows, so what fits now still fits when the
     * kernel runs (it asserts so). */
    cpu_dev *d = cpu_of(s->dev);
    size_t need = pi0__cpu_attention_scratch(k.rows, head_dim, n_heads / n_kv_heads) *
                  sizeof(float),
           have = cpu_scratch_bytes(d);
    if (need > have)
        return pi0_errorf(PI0_ENOMEM,
                          "pi0_dev_attention: %d keys need %zu bytes of scratch per thread, "
                          "have %zu (size it at start-up with pi0_dev_reserve_attention, or "
                          "pi0_dev_reserve with at least %zu)",
                          k.rows, need, have, need * (size_t)d->n_threads);
    cpu_args a = {.m = {out, q, k, v}, .i = {n_heads, n_kv_heads, head_dim}, .f = {scale}};
    if (mask) {
        a.m[4] = *mask;
        a.has_opt = 1;
    }
    return enqueue_kernel(s, pi0__cpu_attention, &a);
}

static int cpu_gather_enq(pi0_stream *s, pi0_mat y, const pi0_weight *table, pi0_mat ids,
                          float scale) {
    cpu_args a = {.m = {y, ids}, .w = table, .f = {scale}};
    return enqueue_kernel(s, pi0__cpu_gather, &a);
}

const pi0_dev_iface pi0__cpu_iface = {
    .version = PI0_DEV_IFACE_VERSION,
    .name = "cpu",
    .open = cpu_open,
    .close = cpu_close,
    .reserve = cpu_reserve,
    .reserve_rope = cpu_reserve_rope,
    .reserve_attention = cpu_reserve_attention,
    .buf_alloc = cpu_buf_alloc,
    .buf_free = cpu_buf_free,
    .weight_create = cpu_weight_create,
    .weight_destroy = cpu_weight_destroy,
    .stream_create = cpu_stream_create,
    .stream_destroy = cpu_stream_destroy,
    .stream_sync = cpu_stream_sync,
    .stream_set_priority = cpu_stream_set_priority,
    .event_create = cpu_event_create,
    .event_destroy = cpu_event_destroy,
    .event_record = cpu_event_record,
    .stream_wait_event = cpu_stream_wait_event,
    .event_sync = cpu_event_sync,
    .event_done = cpu_event_done,
    .upload = cpu_upload,
    .download = cpu_download,
    .copy = cpu_copy,
    .copy_mat = cpu_copy_mat_enq,
    .gemm = cpu_gemm_enq,
    .gemm_multi = cpu_gemm_multi_enq,
    .layernorm = cpu_layernorm_enq,
    .rmsnorm = cpu_rmsnorm_enq,
    .rmsnorm_ada = cpu_rmsnorm_ada_enq,
    .gated_add = cpu_gated_add_enq,
    .unary = cpu_unary_enq,
    .binary = cpu_binary_enq,
    .geglu = cpu_geglu_enq,
    .rope = cpu_rope_enq,
    .attention = cpu_attention_enq,
    .gather = cpu_gather_enq,
};
