/* cpu_pool.c — the cpu backend's persistent compute threads (no per-call thread creation). */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_time.h"
#include "cpu.h"

int pi0__thread_start(pthread_t *t, void *(*fn)(void *), void *arg, int cpu) {
    pthread_attr_t attr;
    int rc = pthread_attr_init(&attr);
    if (rc) return rc;
    if (cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        /* glibc sets the mask before the thread's first instruction and fails the create
         * (EINVAL) when the CPU is not one this process may use */
        rc = pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    }
    if (!rc) rc = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc;
}

static void run_tasks(pi0__pool *p, int thread) {
    for (;;) {
        int t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->n_tasks) break;
        p->fn(p->ctx, t, thread);
    }
}

typedef struct helper_arg {
    pi0__pool *p;
    int index; /* 1 .. n_threads-1 */
} helper_arg;

/* After a region, helpers (and the caller, waiting for the helpers) spin this long before
 * sleeping on a condition variable. Kept short on purpose: on a 2-core machine shared with
 * the control loop and other processes, long spinning steals the core the next kernel's
 * producer needs (measured: 100 us of spinning made 51x1024 kernels 7x slower). */
#define POOL_SPIN_NS 5000
/* ...but while kernels are queued the next region is microseconds away (the stream worker
 * is between two kernels of a stage): spin up to this long, bounded so that a queue
 * stuck behind an event wait does not burn the cores */
#define POOL_BUSY_SPIN_NS 200000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *helper_main(void *arg) {
    helper_arg ha = *(helper_arg *)arg;
    free(arg);
    pi0__pool *p = ha.p;
    pthread_setname_np(pthread_self(), "pi0-cpu-pool"); /* top -H, perf sched, tests */
    uint64_t seen = 0;
    for (;;) {
        /* spin briefly for the next region (longer while kernels are queued), then sleep */
        int64_t t0 = pi0__now_ns();
        for (int i = 0; atomic_load_explicit(&p->gen, memory_order_acquire) == seen &&
                        !atomic_load_explicit(&p->quit, memory_order_relaxed);
             i++) {
            cpu_relax();
            if ((i & 63) == 63) {
                int64_t spun = pi0__now_ns() - t0;
                if (spun > POOL_SPIN_NS &&
                    (spun > POOL_BUSY_SPIN_NS || !p->queued ||
                     atomic_load_explicit(p->queued, memory_order_relaxed) <= 0))
                    break;
            }
        }
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->gen, memory_order_relaxed) == seen &&
               !atomic_load_explicit(&p->quit, memory_order_relaxed))
            pthread_cond_wait(&p->cv_work, &p->mu);
        pthread_mutex_unlock(&p->mu);
        if (atomic_load_explicit(&p->quit, memory_order_relaxed)) break;
        /* acquire: pairs with the release store of gen in pi0__pool_run, so fn, ctx and
         * n_tasks of this region are visible */
        seen = atomic_load_explicit(&p->gen, memory_order_acquire);
        run_tasks(p, ha.index);
        /* release: our task results are visible to the caller that sees running reach 0 */
        if (atomic_fetch_sub_explicit(&p->running, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
    return NULL;
}

int pi0__pool_init(pi0__pool *p, int n_threads, const int *cpus, int n_cpus,
                   const atomic_int *queued) {
    p->n_threads = n_threads;
    atomic_init(&p->gen, 0);
    atomic_init(&p->quit, 0);
    atomic_init(&p->running, 0);
    p->cpus = cpus;
    p->n_cpus = n_cpus;
    atomic_init(&p->next, 0);
    p->queued = queued;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->helpers = NULL;
    if (n_threads > 1) {
        p->helpers = calloc((size_t)n_threads - 1, sizeof *p->helpers);
        if (!p->helpers)
            return pi0_errorf(PI0_ENOMEM, "cpu: out of memory for %d compute threads",
                              n_threads);
    }
    for (int i = 1; i < n_threads; i++) {
        helper_arg *ha = malloc(sizeof *ha);
        int rc = ha ? 0 : -1;
        if (ha) {
            ha->p = p;
            ha->index = i;
            rc = pi0__thread_start(&p->helpers[i - 1], helper_main, ha,
                                   cpus ? cpus[i % n_cpus] : -1);
            if (rc) free(ha);
        }
        if (rc) {
            p->n_threads = i; /* join the ones started */
            pi0__pool_deinit(p);
            if (rc == EINVAL && cpus)
                return pi0_errorf(PI0_EINVAL,
                                  "cpu: cannot run compute thread %d on CPU %d "
                                  "(not one this process may use)",
                                  i, cpus[i % n_cpus]);
            return pi0_errorf(PI0_ENOMEM, "cpu: cannot start compute thread %d: %s", i,
                              strerror(rc));
        }
    }
    return PI0_OK;
}

void pi0__pool_deinit(pi0__pool *p) {
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->quit, 1);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n_threads; i++)
        pthread_join(p->helpers[i - 1], NULL);
    free(p->helpers);
    p->helpers = NULL;
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    pthread_mutex_destroy(&p->mu);
}

void pi0__pool_run(pi0__pool *p, pi0__task_fn fn, void *ctx, int n_tasks) {
    if (n_tasks <= 0) return;
    if (p->n_threads <= 1 || n_tasks == 1) {
        for (int t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    p->fn = fn; /* helpers read these only after seeing the new gen */
    p->ctx = ctx;
    p->n_tasks = n_tasks;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->running, p->n_threads - 1, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    /* release: publishes fn/ctx/n_tasks/next/running to helpers that acquire gen */
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    run_tasks(p, 0);
    int64_t t0 = pi0__now_ns();
    for (int i = 0; atomic_load_explicit(&p->running, memory_order_acquire) > 0; i++) {
        cpu_relax();
        if ((i & 63) == 63 && pi0__now_ns() - t0 > POOL_SPIN_NS) break;
    }
    if (atomic_load_explicit(&p->running, memory_order_acquire) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->running, memory_order_acquire) > 0)
            pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}
