/* control.c — the fixed-rate control loop, safety holds, and the monitor thread (publisher
 * liveness, the trigger's latency estimate, the status topic, the hold log) and the exit
 * summary.
 *
 * The control thread sleeps with clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME) on a
 * fixed grid (tick k due at t_start + k·period). A tick that wakes k ≥ 1 periods late
 * skips those periods and stays on the grid, counting them as missed (ros2_control,
 * cyclictest). Each tick reads the newest joint state (a copy) and the newest camera
 * stamps, takes the row of the active chunk due at this tick (merged with the previous
 * chunk on their overlap), clamps it with the calib limits and the step limit from the
 * last command, and publishes pi0.Action. It allocates nothing and makes no system call
 * besides the sleep, the clock and the publish (whose futex wake happens only when a
 * subscriber sleeps); new chunks arrive by the hand-over's atomic exchange. Only while an
 * input is stale does the tick also let its subscriber check (an fstat, at most every
 * 100 ms) whether the topic moved to a new segment (a publisher restarted after its
 * segment was removed) and re-attach: a hold tick may then take longer.
 *
 * Hold (PI0_ACTION_HOLD): a camera or the joint state older than its limit, a publisher
 * dead, the newest chunk dropped as non-finite, or no chunk covering this tick. A hold
 * publishes the last commanded values; before any command (or with [safety] hold =
 * measured) it publishes the measured joint positions, robot action dim j taking joint j
 * (position-controlled robots command in joint space); with no joint state ever it
 * publishes dim 0. After a hold on an input, only a chunk whose observation was taken
 * after the inputs were good again is used (the node resumes by itself). */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "node.h"

#define MONITOR_PERIOD_NS 20000000ull /* liveness checks and the hold log: 50 Hz */
#define JOINTS_BIT        8           /* dead_mask bit of the joint-state publisher */

uint64_t node_tick_at(const node *n, uint64_t t_ns) {
    if (t_ns <= n->t_start_ns) return 0;
    return (t_ns - n->t_start_ns + n->period_ns - 1) / n->period_ns;
}

static void sleep_until(uint64_t t_ns) {
    struct timespec ts = {(time_t)(t_ns / 1000000000ull), (long)(t_ns % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

static void count_hold_bits(node *n, uint32_t reason) {
    for (int b = 0; b < 8; b++)
        if (reason & (1u << b))
            atomic_store_explicit(
                &n->hold_ticks_by[b],
                atomic_load_explicit(&n->hold_ticks_by[b], memory_order_relaxed) + 1,
                memory_order_relaxed);
}

static void rt_setup(node *n) {
    if (n->cfg.control_cpu >= 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(n->cfg.control_cpu, &set);
        int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
        if (e)
            fprintf(stderr, "pi0rt-node: warning: control thread not pinned to CPU %d: %s\n",
                    n->cfg.control_cpu, strerror(e));
    }
    if (n->cfg.rt_priority > 0) {
        struct sched_param sp = {.sched_priority = n->cfg.rt_priority};
        int e = pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
        if (e)
            fprintf(stderr,
                    "pi0rt-node: warning: no SCHED_FIFO priority %d for the control thread "
                    "(%s); running at normal priority\n",
                    n->cfg.rt_priority, strerror(e));
    }
}

void *node_control_main(void *arg) {
    node *n = arg;
    pthread_setname_np(pthread_self(), "pi0-control"); /* perf sched, top -H */
    rt_setup(n);
    const uint64_t P = n->period_ns;
    const int D = n->out_dim, H = n->info.action_horizon;
    float prev[PI0_ACTION_DIM_MAX] = {0}, vals[PI0_ACTION_DIM_MAX];
    int have_prev = 0, have_js = 0;
    uint64_t js_stamp = 0, land = 0, last_trigger = UINT64_MAX;
    int64_t last_bad = -1; /* last tick an input was bad; chunks must be taken after it */
    pi0_joint_state js, tmp;
    memset(&js, 0, sizeof js);
    node_handover *hv = &n->hand;
    uint64_t k = node_tick_at(n, node_now_ns());
    while (!atomic_load_explicit(&n->stop, memory_order_relaxed)) {
        uint64_t due = n->t_start_ns + k * P;
        sleep_until(due);
        uint64_t now = node_now_ns(), late = now > due ? now - due : 0;
        /* the real wake-up lateness, before the skip hides all but a period of it */
        node_hist_add(&n->tick_late, late);
        PI0_PROBE2(tick, k, late);
        if (late >= P) { /* skip the periods we overslept, stay on the grid */
            uint64_t skip = late / P;
            atomic_fetch_add_explicit(&n->missed, skip, memory_order_relaxed);
            k += skip;
            due += skip * P;
        }

        if (node_handover_take(hv)) {
            const node_chunk *c = &hv->buf[hv->cur];
            land = k;
            node_hist_add(&n->delay_ticks, (k > c->k0 ? k - c->k0 : 0) * 1000);
        }
        /* inputs: joint state (copied; kept when nothing new) and camera stamps */
        uint32_t reason = 0, stale = 0;
        pi0_sample s;
        if (!pi0_sub_latest_copy(n->joint_sub_c, &tmp, sizeof tmp, &s) &&
            !pi0_joint_state_check(&tmp, s.size)) {
            js = tmp;
            js_stamp = s.stamp_ns;
            have_js = 1;
        }
        if (!have_js ||
            (double)(now > js_stamp ? now - js_stamp : 0) > n->cfg.joints_max_age_ms * 1e6) {
            reason |= PI0_HOLD_JOINTS_STALE;
            pi0_sub_wait(n->joint_sub_c, 0); /* re-attaches to a replaced segment */
        }
        for (int c = 0; c < n->n_cams; c++) {
            if (pi0_sub_latest_view(n->cam_sub_c[c], &s) ||
                (double)(now > s.stamp_ns ? now - s.stamp_ns : 0) >
                    n->cfg.camera_max_age_ms * 1e6) {
                stale |= 1u << c;
                pi0_sub_wait(n->cam_sub_c[c], 0);
            }
        }
        if (stale) reason |= PI0_HOLD_CAMERA_STALE;
        if (atomic_load_explicit(&n->dead_mask, memory_order_relaxed))
            reason |= PI0_HOLD_PUBLISHER_DEAD;
        if (reason) last_bad = (int64_t)k; /* an input fault: older observations are out */
        if (atomic_load_explicit(&n->nonfinite_flag, memory_order_relaxed))
            reason |= PI0_HOLD_NONFINITE; /* until stage B publishes a finite chunk */

        const node_chunk *c = &hv->buf[hv->cur], *o = &hv->buf[hv->prev];
        int row =
            c->seq && (int64_t)c->k_taken > last_bad ? node_row_due(c->k0, c->horizon, k) : -1;
        if (row < 0) reason |= PI0_HOLD_NO_CHUNK;

        pi0_action *a = pi0_pub_loan(n->action_pub);
        memset(a, 0, offsetof(pi0_action, values));
        a->due_ns = due;
        if (!reason) {
            int orow = o->seq && (int64_t)o->k_taken > last_bad
                           ? node_row_due(o->k0, o->horizon, k)
                           : -1;
            int bt = orow >= 0 ? node_blend_ticks(n->cfg.blend_ticks, land,
                                                  o->k0 + (uint64_t)o->horizon)
                               : n->cfg.blend_ticks;
            node_merge(n->cfg.merge, bt, n->cfg.weight_old,
                       orow >= 0 ? &o->a[(size_t)orow * (size_t)D] : NULL, orow >= 0,
                       &c->a[(size_t)row * (size_t)D], D, k - land, vals);
            pi0_calib_clamp(n->calib, have_prev ? prev : NULL, vals);
            a->chunk_seq = c->seq;
            a->index = (uint32_t)row;
            a->dim = (uint32_t)D;
            memcpy(a->values, vals, (size_t)D * sizeof(float));
            memcpy(prev, vals, (size_t)D * sizeof(float));
            have_prev = 1;
        } else {
            a->flags = PI0_ACTION_HOLD;
            a->chunk_seq = c->seq;
            if (have_prev && n->cfg.hold_value == NODE_HOLD_LAST) {
                a->dim = (uint32_t)D;
                memcpy(a->values, prev, (size_t)D * sizeof(float));
            } else if (have_js) {
                int m = (int)js.n < D ? (int)js.n : D;
                a->dim = (uint32_t)m;
                for (int j = 0; j < m; j++)
                    a->values[j] = (float)js.position[j];
                if (m == D) {
                    memcpy(prev, a->values, (size_t)D * sizeof(float));
                    have_prev = 1;
                }
            }
            atomic_store_explicit(&n->holds,
                                  atomic_load_explicit(&n->holds, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            count_hold_bits(n, reason);
            PI0_PROBE2(hold, k, reason);
        }
        pi0_pub_commit(n->action_pub, sizeof *a);

        uint32_t was = atomic_load_explicit(&n->hold_reason, memory_order_relaxed);
        if (reason && !was) atomic_store_explicit(&n->hold_since_ns, now, memory_order_relaxed);
        atomic_store_explicit(&n->stale_cams, stale, memory_order_relaxed);
        atomic_store_explicit(&n->hold_reason, reason, memory_order_release);
        uint32_t st = reason ? (atomic_load_explicit(&n->chunks, memory_order_relaxed) ||
                                        (reason & ~(uint32_t)PI0_HOLD_NO_CHUNK)
                                    ? PI0_NODE_HOLDING
                                    : PI0_NODE_STARTING)
                             : PI0_NODE_RUNNING;
        atomic_store_explicit(&n->state, st, memory_order_relaxed);

        /* trigger the next observation */
        int inflight = atomic_load_explicit(&n->inflight, memory_order_acquire);
        int free = !(reason & ~(uint32_t)(PI0_HOLD_NO_CHUNK | PI0_HOLD_NONFINITE)) &&
                   (n->cfg.pipelined ? !atomic_load_explicit(&n->a_busy, memory_order_acquire)
                                     : inflight == 0);
        uint64_t covered = row >= 0 ? c->k0 + (uint64_t)c->horizon : k;
        if (inflight > 0 && last_trigger != UINT64_MAX && last_trigger + (uint64_t)H > covered)
            covered = last_trigger + (uint64_t)H;
        if (node_should_trigger(n->cfg.trigger, k, covered,
                                atomic_load_explicit(&n->need_ticks, memory_order_relaxed),
                                last_trigger, n->cfg.every_ticks, free)) {
            atomic_fetch_add_explicit(&n->inflight, 1, memory_order_relaxed);
            atomic_store_explicit(&n->a_busy, 1, memory_order_relaxed);
            /* release: stage A sees inflight and a_busy with the flag */
            atomic_store_explicit(&n->trigger_pending, 1, memory_order_release);
            node_event_post(&n->trigger_ev);
            last_trigger = k;
            atomic_fetch_add_explicit(&n->triggers, 1, memory_order_relaxed);
        }
        atomic_store_explicit(&n->ticks,
                              atomic_load_explicit(&n->ticks, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        k++;
    }
    return NULL;
}

// ---- monitor: liveness, latency estimate, status, hold log ----

static const char *const reason_names[5] = {"camera stale", "joints stale", "publisher dead",
                                            "no chunk", "non-finite chunk dropped"};

void node_hold_text(const node *n, uint32_t reason, uint32_t dead, uint32_t stale, char *buf,
                    size_t cap) {
    size_t o = 0;
    buf[0] = 0;
    for (int b = 0; b < 5 && o < cap; b++) {
        if (!(reason & (1u << b))) continue;
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? "; " : "", reason_names[b]);
        if ((1u << b) == PI0_HOLD_CAMERA_STALE || (1u << b) == PI0_HOLD_PUBLISHER_DEAD) {
            uint32_t m = (1u << b) == PI0_HOLD_CAMERA_STALE ? stale : dead;
            for (int c = 0; c < n->n_cams && o < cap; c++)
                if (m & (1u << c))
                    o +=
                        (size_t)snprintf(buf + o, cap - o, " %s",
                                         pi0_calib_camera_get(n->calib, n->cam_slot[c])->topic);
            if ((1u << b) == PI0_HOLD_PUBLISHER_DEAD && (m & (1u << JOINTS_BIT)) && o < cap)
                o += (size_t)snprintf(buf + o, cap - o, " %s", n->cfg.joints_topic);
        }
    }
}

static uint32_t us(uint64_t ns) {
    return ns / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(ns / 1000);
}

static void publish_status(node *n, uint64_t now) {
    pi0_node_status *s = pi0_pub_loan(n->status_pub);
    memset(s, 0, sizeof *s);
    s->stamp_ns = now;
    s->state = atomic_load(&n->state);
    /* holding because the stages fail (not because inputs are stale): error */
    if (s->state == PI0_NODE_HOLDING && atomic_load(&n->recent_error))
        s->state = PI0_NODE_ERROR;
    s->last_error = atomic_load(&n->last_error);
    s->ticks = atomic_load(&n->ticks);
    s->missed_ticks = atomic_load(&n->missed);
    s->chunks = atomic_load(&n->chunks);
    s->dropped_chunks = atomic_load(&n->dropped);
    s->holds = atomic_load(&n->holds);
    s->hold_reason = atomic_load(&n->hold_reason);
    s->tick_late_p50_us = us(node_hist_quantile(&n->tick_late, 0.5));
    s->tick_late_p99_us = us(node_hist_quantile(&n->tick_late, 0.99));
    s->tick_late_max_us = us(atomic_load(&n->tick_late.max_ns));
    s->infer_p50_us = us(node_hist_quantile(&n->infer_lat, 0.5));
    s->infer_p99_us = us(node_hist_quantile(&n->infer_lat, 0.99));
    s->infer_max_us = us(atomic_load(&n->infer_lat.max_ns));
    if (s->hold_reason) {
        char txt[160];
        node_hold_text(n, s->hold_reason, atomic_load(&n->dead_mask),
                       atomic_load(&n->stale_cams), txt, sizeof txt);
        uint64_t since = atomic_load(&n->hold_since_ns);
        snprintf(s->message, sizeof s->message, "hold: %.100s (%.1f s)", txt,
                 since && now > since ? (double)(now - since) * 1e-9 : 0.0);
    } else {
        snprintf(s->message, sizeof s->message, "running");
    }
    pi0_pub_commit(n->status_pub, sizeof *s);
}

void *node_monitor_main(void *arg) {
    node *n = arg;
    pthread_setname_np(pthread_self(), "pi0-monitor"); /* perf sched, top -H */
    uint64_t status_every = (uint64_t)(1e9 / n->cfg.status_hz), next_status = node_now_ns();
    uint32_t logged = 0, logged_dead = 0, logged_stale = 0;
    uint64_t logged_since = 0;
    while (!atomic_load(&n->stop)) {
        uint64_t now = node_now_ns();
        /* liveness: a few system calls per topic, so here and not in the tick */
        uint32_t dead = 0;
        pi0_pub_info pi;
        for (int c = 0; c < n->n_cams; c++)
            if (!pi0_sub_publisher(n->cam_sub_m[c], &pi) && pi.state == PI0_PUB_DEAD)
                dead |= 1u << c;
        if (!pi0_sub_publisher(n->joint_sub_m, &pi) && pi.state == PI0_PUB_DEAD)
            dead |= 1u << JOINTS_BIT;
        atomic_store(&n->dead_mask, dead);
        /* what a chunk needs to arrive in time: measured p99 (a guess before any) */
        uint64_t lat = atomic_load(&n->sched_lat.count)
                           ? node_hist_quantile(&n->sched_lat, 0.99)
                           : (uint64_t)(n->cfg.latency_guess_ms * 1e6);
        atomic_store(&n->need_ticks, node_ticks_needed(lat, n->period_ns, n->cfg.margin_ticks));
        /* the log says which input caused a hold and for how long */
        uint32_t r = atomic_load(&n->hold_reason), st = atomic_load(&n->stale_cams);
        if (r != logged || (r && (dead != logged_dead || st != logged_stale))) {
            char txt[256];
            if (r) {
                node_hold_text(n, r, dead, st, txt, sizeof txt);
                fprintf(stderr, "pi0rt-node: hold: %s\n", txt);
                if (!logged) logged_since = now;
            } else if (logged) {
                fprintf(stderr, "pi0rt-node: running again after %.2f s of hold\n",
                        (double)(now - logged_since) * 1e-9);
            }
            logged = r;
            logged_dead = dead;
            logged_stale = st;
        }
        if (now >= next_status) {
            publish_status(n, now);
            next_status += status_every;
            if (next_status < now) next_status = now + status_every;
        }
        uint64_t wake = now + MONITOR_PERIOD_NS;
        if (next_status < wake) wake = next_status;
        sleep_until(wake);
    }
    publish_status(n, node_now_ns());
    return NULL;
}

// ---- exit summary ----

static void hist_line(FILE *f, const char *name, const node_hist *h) {
    uint64_t c = atomic_load(&h->count);
    if (!c) {
        fprintf(f, "  %-18s n=0\n", name);
        return;
    }
    fprintf(f, "  %-18s n=%llu min %.0f avg %.0f p50 %.0f p99 %.0f max %.0f us\n", name,
            (unsigned long long)c, (double)atomic_load(&h->min_ns) / 1e3,
            (double)atomic_load(&h->sum_ns) / 1e3 / (double)c,
            (double)node_hist_quantile(h, 0.5) / 1e3, (double)node_hist_quantile(h, 0.99) / 1e3,
            (double)atomic_load(&h->max_ns) / 1e3);
}

void node_print_summary(node *n, FILE *f) {
    fprintf(f,
            "pi0rt-node summary: %.1f Hz, ticks %llu, missed %llu, triggers %llu, chunks "
            "%llu, dropped %llu, skipped observations %llu, hold ticks %llu\n",
            n->cfg.control_hz, (unsigned long long)atomic_load(&n->ticks),
            (unsigned long long)atomic_load(&n->missed),
            (unsigned long long)atomic_load(&n->triggers),
            (unsigned long long)atomic_load(&n->chunks),
            (unsigned long long)atomic_load(&n->dropped),
            (unsigned long long)atomic_load(&n->skipped_obs),
            (unsigned long long)atomic_load(&n->holds));
    hist_line(f, "tick lateness", &n->tick_late);
    hist_line(f, "encode (stage A)", &n->encode_lat);
    hist_line(f, "denoise (stage B)", &n->denoise_lat);
    hist_line(f, "obs -> chunk", &n->infer_lat);
    hist_line(f, "camera age at obs", &n->cam_age);
    hist_line(f, "joint age at obs", &n->joint_age);
    uint64_t dc = atomic_load(&n->delay_ticks.count);
    if (dc)
        fprintf(f, "  %-18s n=%llu p50 %.0f p99 %.0f max %.0f ticks\n", "chunk delay d",
                (unsigned long long)dc, (double)node_hist_quantile(&n->delay_ticks, 0.5) / 1e3,
                (double)node_hist_quantile(&n->delay_ticks, 0.99) / 1e3,
                (double)atomic_load(&n->delay_ticks.max_ns) / 1e3);
    fprintf(f, "  holds by reason:");
    for (int b = 0; b < 5; b++)
        fprintf(f, " %s %llu%s", reason_names[b],
                (unsigned long long)atomic_load(&n->hold_ticks_by[b]), b < 4 ? "," : "\n");
    if (n->stage_err[0]) fprintf(f, "  first stage error: %s\n", n->stage_err);
}
