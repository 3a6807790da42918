/* motorsim.c — `pi0rt-motorsim`: a simulated arm that publishes pi0.JointState and
 * follows pi0.Action.
 *
 * Each joint is a first-order system toward its commanded position: v = (target - q) /
 * tau, clipped to ±vmax, integrated with explicit Euler steps of 1/rate (one per period
 * elapsed, so a late tick catches up) and clipped to the position limits. It holds (v = 0,
 * position kept) on a PI0_ACTION_HOLD action, when the newest action is older than --stale,
 * before the first action, and when the action topic's publisher dies; the next non-hold action
 * from a live publisher resumes motion.
 *
 * It counts every action (read in order, so none is missed unless the ring overran:
 * `lost`), late ones (committed more than --late-ms after they were due), missing ones
 * (gaps in due times longer than the action period, which is learnt as the smallest gap
 * seen), hold actions and hold episodes, and the tracking error (largest |target - q| over
 * the joints, while following). A line per --report seconds and a summary at exit. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_cli.h"
#include "common/pi0_time.h"
#include "shm/pi0_shm.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static const char *const USAGE =
    "usage: pi0rt-motorsim [--joints N] [--rate HZ] [--state-topic T] [--action-topic T]\n"
    "                      [--tau S] [--vmax V] [--limit L] [--init Q] [--stale S]\n"
    "                      [--late-ms MS] [--duration S] [--report S]\n"
    "\n"
    "Simulated arm: publishes pi0.JointState on --state-topic (default joints) and\n"
    "follows pi0.Action from --action-topic (default action) with first-order joint\n"
    "dynamics; holds on PI0_ACTION_HOLD, on stale actions and when the action publisher\n"
    "dies.\n"
    "\n"
    "  --joints N       joints (1-64, default 7)\n"
    "  --rate HZ        simulation and joint-state rate (default 100)\n"
    "  --tau S          time constant of each joint (default 0.05 s)\n"
    "  --vmax V         velocity limit (default 2.0 rad/s)\n"
    "  --limit L        position limits -L..L (default 3.14 rad)\n"
    "  --init Q         initial position of every joint (default 0)\n"
    "  --stale S        hold when the newest action is older than S (default 0.25 s)\n"
    "  --late-ms MS     an action committed more than MS after it was due is late (10)\n"
    "  --duration S     stop after S seconds (default: until SIGINT/SIGTERM)\n"
    "  --report S       a status line every S seconds (default 1, 0 = none)\n"
    "\n"
    "Prints `motorsim summary: ...` at exit. Exit status: 0 ok, 1 error, 2 bad usage.\n";

static int usage_error(const char *what, const char *arg) {
    fprintf(stderr, "pi0rt-motorsim: %s \"%s\" (see pi0rt-motorsim --help)\n", what, arg);
    return 2;
}

typedef struct stats {
    uint64_t actions, late, missing, lost, hold_actions, holds, holds_dead, holds_stale;
    uint64_t hold_ticks, ticks;
    double err_sq, err_max;
    uint64_t err_n;
} stats;

enum hold_why { FOLLOWING = 0, HOLD_START, HOLD_ACTION, HOLD_STALE, HOLD_DEAD };
static const char *const HOLD_WORDS[] = {"following", "no action yet", "hold action",
                                         "stale actions", "action publisher dead"};

int main(int argc, char **argv) {
    int n = 7, bad = 0;
    double rate = 100, tau = 0.05, vmax = 2.0, limit = 3.14, init = 0, stale = 0.25;
    double late_ms = 10, duration = 0, report = 1;
    const char *state_topic = "joints", *action_topic = "action";
    static const struct option opts[] = {{"joints", required_argument, 0, 'n'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"state-topic", required_argument, 0, 's'},
                                         {"action-topic", required_argument, 0, 'a'},
                                         {"tau", required_argument, 0, 't'},
                                         {"vmax", required_argument, 0, 'v'},
                                         {"limit", required_argument, 0, 'l'},
                                         {"init", required_argument, 0, 'i'},
                                         {"stale", required_argument, 0, 'S'},
                                         {"late-ms", required_argument, 0, 'L'},
                                         {"duration", required_argument, 0, 'd'},
                                         {"report", required_argument, 0, 'R'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        const char *o = NULL;
        switch (c) {
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        case 'n':
            n = (int)pi0__parse_num(optarg, 1, PI0_JOINTS_MAX, &bad), o = "--joints: want 1-64";
            break;
        case 'r':
            rate = pi0__parse_num(optarg, 1, 10000, &bad), o = "--rate: want 1-10000 Hz";
            break;
        case 's':
            state_topic = optarg;
            break;
        case 'a':
            action_topic = optarg;
            break;
        case 't':
            tau = pi0__parse_num(optarg, 1e-4, 100, &bad), o = "--tau: want 1e-4..100 s";
            break;
        case 'v':
            vmax = pi0__parse_num(optarg, 1e-6, 1e6, &bad), o = "--vmax: want > 0";
            break;
        case 'l':
            limit = pi0__parse_num(optarg, 1e-6, 1e6, &bad), o = "--limit: want > 0";
            break;
        case 'i':
            init = pi0__parse_num(optarg, -1e6, 1e6, &bad), o = "--init: want a number";
            break;
        case 'S':
            stale = pi0__parse_num(optarg, 1e-3, 3600, &bad), o = "--stale: want > 0 s";
            break;
        case 'L':
            late_ms = pi0__parse_num(optarg, 0, 1e6, &bad), o = "--late-ms: want >= 0";
            break;
        case 'd':
            duration = pi0__parse_num(optarg, 0, 1e7, &bad), o = "--duration: want >= 0";
            break;
        case 'R':
            report = pi0__parse_num(optarg, 0, 3600, &bad), o = "--report: want >= 0";
            break;
        default:
            return pi0__opt_error("pi0rt-motorsim", argv, c);
        }
        if (bad) return usage_error(o, optarg);
    }
    if (optind != argc) return usage_error("unexpected argument", argv[optind]);
    if (pi0_topic_name_check(state_topic) != 0)
        return usage_error("bad topic name", state_topic);
    if (pi0_topic_name_check(action_topic) != 0)
        return usage_error("bad topic name", action_topic);
    if (fabs(init) > limit) return usage_error("--init outside the limits", "");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    pi0_pub *pub;
    pi0_pub_opts po = {PI0_TYPE_JOINT_STATE, sizeof(pi0_joint_state), 64, 0};
    if (pi0_pub_create(state_topic, &po, &pub) != 0) {
        fprintf(stderr, "pi0rt-motorsim: %s: %s\n", state_topic, pi0_last_error());
        return 1;
    }
    printf("motorsim: %d joints at %.0f Hz on %s, following %s (tau %.3f s, vmax %.2f, "
           "limits ±%.2f)\n",
           n, rate, state_topic, action_topic, tau, vmax, limit);
    fflush(stdout);

    double q[PI0_JOINTS_MAX], v[PI0_JOINTS_MAX] = {0}, target[PI0_JOINTS_MAX];
    for (int j = 0; j < n; j++)
        q[j] = target[j] = init;
    pi0_sub *sub = NULL;
    stats S = {0}, R = {0}; /* whole run, current report interval */
    int hold = HOLD_START;
    uint64_t period = (uint64_t)(1e9 / rate), t0 = (uint64_t)pi0__now_ns(), steps_done = 0;
    uint64_t last_check = 0, last_report = t0, last_action_stamp = 0, prev_due = 0;
    uint64_t action_period = 0, first_action = 0, last_action = 0;
    int pub_dead = 0;
    double dt = 1.0 / rate;

    while (!g_stop) {
        uint64_t t = (uint64_t)pi0__now_ns();
        if (duration > 0 && (double)(t - t0) >= duration * 1e9) break;
        if (!sub && t - last_check >= 100000000ull) {
            last_check = t;
            pi0_sub_opts so = {PI0_TYPE_ACTION, -1};
            if (pi0_sub_open(action_topic, &so, &sub) != 0) sub = NULL;
        }
        int new_hold = hold;
        if (sub) {
            pi0_action a;
            pi0_sample s;
            while (pi0_sub_next_copy(sub, &a, sizeof a, &s) == 0) {
                if (pi0_action_check(&a, s.size) != 0) continue;
                S.actions++, R.actions++;
                S.lost += s.lost, R.lost += s.lost;
                if (!first_action) first_action = t;
                last_action = t;
                if (s.stamp_ns > a.due_ns + (uint64_t)(late_ms * 1e6)) S.late++, R.late++;
                if (prev_due && a.due_ns > prev_due) {
                    uint64_t gap = a.due_ns - prev_due;
                    if (!action_period || gap < action_period) action_period = gap;
                    uint64_t k = (gap + action_period / 2) / action_period;
                    if (k > 1) S.missing += k - 1, R.missing += k - 1;
                }
                prev_due = a.due_ns;
                last_action_stamp = s.stamp_ns;
                if (a.flags & PI0_ACTION_HOLD) {
                    S.hold_actions++, R.hold_actions++;
                    new_hold = HOLD_ACTION;
                } else if (!pub_dead) {
                    int m = (int)a.dim < n ? (int)a.dim : n;
                    for (int j = 0; j < m; j++)
                        if (isfinite(a.values[j])) target[j] = a.values[j];
                    new_hold = FOLLOWING;
                }
            }
            pi0_clear_error();
            if (t - last_check >= 100000000ull) { /* liveness at 10 Hz */
                last_check = t;
                pi0_pub_info info;
                if (pi0_sub_publisher(sub, &info) == 0) {
                    int dead = info.state == PI0_PUB_DEAD;
                    if (dead && !pub_dead) new_hold = HOLD_DEAD;
                    pub_dead = dead;
                }
            }
            if (new_hold == FOLLOWING && t > last_action_stamp + (uint64_t)(stale * 1e9))
                new_hold = HOLD_STALE;
        }
        if (new_hold != hold) {
            if (new_hold != FOLLOWING && hold == FOLLOWING) {
                S.holds++, R.holds++;
                if (new_hold == HOLD_DEAD) S.holds_dead++;
                if (new_hold == HOLD_STALE) S.holds_stale++;
            }
            printf("motorsim: %s%s\n",
                   new_hold == FOLLOWING ? "" : "holding: ", HOLD_WORDS[new_hold]);
            fflush(stdout);
            hold = new_hold;
        }
        /* dynamics: one step of dt per period elapsed since the last tick, so simulated
         * time keeps up with the clock when a tick was late (at most 1000 at once) */
        uint64_t due = (t - t0) / period;
        uint64_t steps = due > steps_done ? due - steps_done : 1;
        if (steps > 1000) steps = 1000;
        steps_done = steps_done + steps > due ? steps_done + steps : due;
        double err = 0;
        for (int j = 0; j < n; j++) {
            if (hold != FOLLOWING) {
                v[j] = 0;
                continue;
            }
            double e0 = fabs(target[j] - q[j]);
            if (e0 > err) err = e0;
            for (uint64_t k = 0; k < steps; k++) {
                double vj = (target[j] - q[j]) / tau;
                if (vj > vmax) vj = vmax;
                if (vj < -vmax) vj = -vmax;
                double qn = q[j] + vj * dt;
                if (qn > limit) qn = limit, vj = 0;
                if (qn < -limit) qn = -limit, vj = 0;
                q[j] = qn;
                v[j] = vj;
            }
        }
        S.ticks++, R.ticks++;
        if (hold != FOLLOWING)
            S.hold_ticks++, R.hold_ticks++;
        else {
            S.err_sq += err * err, R.err_sq += err * err;
            S.err_n++, R.err_n++;
            if (err > S.err_max) S.err_max = err;
            if (err > R.err_max) R.err_max = err;
        }
        pi0_joint_state *js = pi0_pub_loan(pub);
        memset(js, 0, sizeof *js);
        js->stamp_ns = (uint64_t)pi0__now_ns();
        js->n = (uint32_t)n;
        memcpy(js->position, q, sizeof(double) * (size_t)n);
        memcpy(js->velocity, v, sizeof(double) * (size_t)n);
        pi0_pub_commit(pub, sizeof *js);

        if (report > 0 && (double)(t - last_report) >= report * 1e9) {
            double secs = (double)(t - last_report) / 1e9;
            printf("motorsim: actions %.1f/s, late %llu, missing %llu, lost %llu, hold ticks "
                   "%llu (%s), track err rms %.4f max %.4f rad\n",
                   (double)R.actions / secs, (unsigned long long)R.late,
                   (unsigned long long)R.missing, (unsigned long long)R.lost,
                   (unsigned long long)R.hold_ticks, HOLD_WORDS[hold],
                   R.err_n ? sqrt(R.err_sq / (double)R.err_n) : 0.0, R.err_max);
            fflush(stdout);
            memset(&R, 0, sizeof R);
            last_report = t;
        }
        uint64_t next = t0 + (steps_done + 1) * period;
        struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
        while (!g_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
    }
    double secs = (double)((uint64_t)pi0__now_ns() - t0) / 1e9;
    double ahz = S.actions > 1 && last_action > first_action
                     ? (double)(S.actions - 1) * 1e9 / (double)(last_action - first_action)
                     : 0.0;
    printf("motorsim summary: ticks %llu in %.1f s, actions %llu (%.1f Hz), late %llu, missing "
           "%llu, lost %llu, hold actions %llu, holds %llu (publisher dead %llu, stale %llu), "
           "hold ticks %llu, track err rms %.4f max %.4f rad\n",
           (unsigned long long)S.ticks, secs, (unsigned long long)S.actions, ahz,
           (unsigned long long)S.late, (unsigned long long)S.missing,
           (unsigned long long)S.lost, (unsigned long long)S.hold_actions,
           (unsigned long long)S.holds, (unsigned long long)S.holds_dead,
           (unsigned long long)S.holds_stale, (unsigned long long)S.hold_ticks,
           S.err_n ? sqrt(S.err_sq / (double)S.err_n) : 0.0, S.err_max);
    printf("motorsim final position:");
    for (int j = 0; j < n; j++)
        printf(" %.4f", q[j]);
    printf("\n");
    fflush(stdout);
    pi0_sub_close(sub);
    pi0_pub_destroy(pub);
    return 0;
}
