/* sched.c — the node's pure scheduling functions (rows due, trigger, merge), the latency
 * histogram, the chunk hand-over and the futex event. Nothing here allocates or locks. */
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "node.h"

// ---- rows, triggers, merging ----

int node_row_due(uint64_t k0, int horizon, uint64_t k) {
    if (k < k0 || k - k0 >= (uint64_t)horizon) return -1;
    return (int)(k - k0);
}

int node_ticks_needed(uint64_t latency_ns, uint64_t period_ns, int margin) {
    uint64_t t = (latency_ns + period_ns - 1) / period_ns;
    if (t > INT_MAX / 2) t = INT_MAX / 2;
    return (int)t + margin;
}

int node_should_trigger(int mode, uint64_t k, uint64_t covered_until, int need_ticks,
                        uint64_t last_trigger, int every, int free) {
    if (!free) return 0;
    if (mode == NODE_TRIGGER_EVERY)
        return last_trigger == UINT64_MAX || k - last_trigger >= (uint64_t)every;
    /* latency: rows left (from this tick on) no more than the latency needs */
    if (covered_until <= k) return 1;
    return covered_until - k <= (uint64_t)need_ticks;
}

void node_merge(int policy, int blend_ticks, double weight_old, const float *old, int has_old,
                const float *new_row, int dim, uint64_t j, float *out) {
    if (!has_old || policy == NODE_MERGE_REPLACE) {
        memcpy(out, new_row, (size_t)dim * sizeof(float));
        return;
    }
    if (policy == NODE_MERGE_BLEND) {
        double w = blend_ticks <= 1 || j + 1 >= (uint64_t)blend_ticks
                       ? 1.0
                       : (double)(j + 1) / (double)blend_ticks;
        for (int i = 0; i < dim; i++)
            out[i] = (float)((double)old[i] + ((double)new_row[i] - (double)old[i]) * w);
        return;
    }
    for (int i = 0; i < dim; i++)
        out[i] = (float)(weight_old * (double)old[i] + (1.0 - weight_old) * (double)new_row[i]);
}

// ---- histogram ----

static int bucket_of(uint64_t ns) {
    uint64_t us = ns / 1000;
    if (us < NODE_HIST_LINEAR) return (int)us;
    /* log part: 64 sub-buckets per octave above 1 ms */
    double x = log2((double)us / (double)NODE_HIST_LINEAR) * 64.0;
    int b = NODE_HIST_LINEAR + (int)x;
    return b >= NODE_HIST_BUCKETS ? NODE_HIST_BUCKETS - 1 : b;
}

/* Upper edge of bucket b in ns. */
static uint64_t bucket_top(int b) {
    if (b < NODE_HIST_LINEAR) return (uint64_t)(b + 1) * 1000;
    double us = (double)NODE_HIST_LINEAR * exp2((double)(b - NODE_HIST_LINEAR + 1) / 64.0);
    return (uint64_t)(us * 1000.0);
}

void node_hist_init(node_hist *h) {
    atomic_store(&h->count, 0);
    atomic_store(&h->sum_ns, 0);
    atomic_store(&h->min_ns, UINT64_MAX);
    atomic_store(&h->max_ns, 0);
    for (int i = 0; i < NODE_HIST_BUCKETS; i++)
        atomic_store(&h->bucket[i], 0);
}

void node_hist_add(node_hist *h, uint64_t ns) {
    /* single writer: relaxed load + store instead of read-modify-write (no lock prefix) */
    int b = bucket_of(ns);
    atomic_store_explicit(&h->bucket[b],
                          atomic_load_explicit(&h->bucket[b], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum_ns,
                          atomic_load_explicit(&h->sum_ns, memory_order_relaxed) + ns,
                          memory_order_relaxed);
    if (ns < atomic_load_explicit(&h->min_ns, memory_order_relaxed))
        atomic_store_explicit(&h->min_ns, ns, memory_order_relaxed);
    if (ns > atomic_load_explicit(&h->max_ns, memory_order_relaxed))
        atomic_store_explicit(&h->max_ns, ns, memory_order_relaxed);
    atomic_store_explicit(&h->count, atomic_load_explicit(&h->count, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

uint64_t node_hist_quantile(const node_hist *h, double q) {
    uint64_t total = 0;
    for (int i = 0; i < NODE_HIST_BUCKETS; i++)
        total += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
    if (!total) return 0;
    uint64_t want = (uint64_t)ceil(q * (double)total);
    if (want < 1) want = 1;
    uint64_t seen = 0, mx = atomic_load_explicit(&h->max_ns, memory_order_relaxed);
    for (int i = 0; i < NODE_HIST_BUCKETS; i++) {
        seen += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        if (seen >= want) {
            uint64_t top = bucket_top(i);
            return top < mx ? top : mx;
        }
    }
    return mx;
}

// ---- hand-over ----

void node_handover_init(node_handover *h) {
    memset(h->buf, 0, sizeof h->buf);
    h->cur = 0;
    h->prev = 1;
    h->w = 3;
    atomic_store(&h->mailbox, 2u);
}

// ---- futex event ----

static long futex(_Atomic uint32_t *w, int op, uint32_t val, const struct timespec *ts) {
    return syscall(SYS_futex, (uint32_t *)w, op, val, ts, NULL, 0);
}

void node_event_post(node_event *e) {
    atomic_fetch_add_explicit(&e->seq, 1, memory_order_seq_cst);
    /* seq_cst on both sides: the waiter registers as a sleeper before re-reading seq, the
     * poster bumps seq before reading sleepers, so one of them sees the other */
    if (atomic_load_explicit(&e->sleepers, memory_order_seq_cst))
        futex(&e->seq, FUTEX_WAKE_PRIVATE, INT_MAX, NULL);
}

uint32_t node_event_wait(node_event *e, uint32_t seen, int64_t timeout_ns) {
    uint32_t cur = atomic_load_explicit(&e->seq, memory_order_acquire);
    if (cur != seen) return cur;
    atomic_fetch_add_explicit(&e->sleepers, 1, memory_order_seq_cst);
    cur = atomic_load_explicit(&e->seq, memory_order_seq_cst);
    if (cur == seen) {
        struct timespec ts = {(time_t)(timeout_ns / 1000000000),
                              (long)(timeout_ns % 1000000000)};
        futex(&e->seq, FUTEX_WAIT_PRIVATE, seen, &ts);
        cur = atomic_load_explicit(&e->seq, memory_order_acquire);
    }
    atomic_fetch_sub_explicit(&e->sleepers, 1, memory_order_relaxed);
    return cur;
}
