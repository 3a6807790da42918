/* status.c — `pi0rt-status`: one line per second about a running robot, read only from
 * its topics: the node's state (pi0.NodeStatus, with the hold reason in words), the
 * latency of the newest chunk (observation -> chunk published, from pi0.ActionChunk), the
 * control tick's lateness (p99 and max, from the status), actions per second, and the
 * tracking error (largest |commanded - measured| over the joints, from the newest
 * pi0.Action and pi0.JointState; not while the action is a hold). Topics that do not
 * exist yet are looked for again every second; a dead publisher is shown as such. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stddef.h>
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
    "usage: pi0rt-status [--status T] [--chunks T] [--actions T] [--joints T]\n"
    "                    [--interval S] [--duration S]\n"
    "\n"
    "Prints one line per interval about a running node and robot, from their topics:\n"
    "node state (and why it holds), chunk latency (observation -> chunk published),\n"
    "control tick lateness (p99/max), actions per second and the tracking error\n"
    "max_j |action_j - joint position_j| of the newest action and joint state.\n"
    "\n"
    "  --status T     pi0.NodeStatus topic (default pi0.status)\n"
    "  --chunks T     pi0.ActionChunk topic (default chunk)\n"
    "  --actions T    pi0.Action topic (default action)\n"
    "  --joints T     pi0.JointState topic (default joints)\n"
    "  --interval S   seconds between lines (default 1)\n"
    "  --duration S   stop after S seconds (default: until SIGINT/SIGTERM)\n"
    "\n"
    "Exit status: 0 ok, 2 bad usage.\n";

typedef struct topic {
    const char *name, *type;
    pi0_sub *sub;
} topic;

static int ensure(topic *t) {
    if (t->sub) return 1;
    pi0_sub_opts so = {t->type, -1};
    if (pi0_sub_open(t->name, &so, &t->sub) != 0) t->sub = NULL;
    pi0_clear_error();
    return t->sub != NULL;
}

static int alive(topic *t) {
    pi0_pub_info info;
    return t->sub && pi0_sub_publisher(t->sub, &info) == 0 && info.state == PI0_PUB_ALIVE;
}

static const char *state_name(uint32_t s) {
    switch (s) {
    case PI0_NODE_STARTING:
        return "STARTING";
    case PI0_NODE_RUNNING:
        return "RUNNING";
    case PI0_NODE_HOLDING:
        return "HOLDING";
    case PI0_NODE_ERROR:
        return "ERROR";
    default:
        return "?";
    }
}

int main(int argc, char **argv) {
    topic st = {"pi0.status", PI0_TYPE_NODE_STATUS, NULL};
    topic ch = {"chunk", PI0_TYPE_ACTION_CHUNK, NULL};
    topic ac = {"action", PI0_TYPE_ACTION, NULL};
    topic js = {"joints", PI0_TYPE_JOINT_STATE, NULL};
    double interval = 1, duration = 0;
    static const struct option opts[] = {
        {"status", required_argument, 0, 's'},   {"chunks", required_argument, 0, 'c'},
        {"actions", required_argument, 0, 'a'},  {"joints", required_argument, 0, 'j'},
        {"interval", required_argument, 0, 'i'}, {"duration", required_argument, 0, 'd'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        case 's':
            st.name = optarg;
            break;
        case 'c':
            ch.name = optarg;
            break;
        case 'a':
            ac.name = optarg;
            break;
        case 'j':
            js.name = optarg;
            break;
        case 'i':
            interval = pi0__parse_num(optarg, 0.05, 3600, &bad);
            if (bad) {
                fprintf(stderr, "pi0rt-status: --interval \"%s\": want 0.05..3600 s\n", optarg);
                return 2;
            }
            break;
        case 'd':
            duration = pi0__parse_num(optarg, 0, 1e7, &bad);
            if (bad) {
                fprintf(stderr, "pi0rt-status: --duration \"%s\": want seconds >= 0\n", optarg);
                return 2;
            }
            break;
        default:
            return pi0__opt_error("pi0rt-status", argv, c);
        }
    }
    topic *all[] = {&st, &ch, &ac, &js};
    for (int i = 0; i < 4; i++)
        if (pi0_topic_name_check(all[i]->name) != 0) {
            fprintf(stderr, "pi0rt-status: bad topic name \"%s\"\n", all[i]->name);
            return 2;
        }
    if (optind != argc) {
        fprintf(stderr, "pi0rt-status: unexpected argument \"%s\"\n", argv[optind]);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    uint64_t t0 = (uint64_t)pi0__now_ns(), next = t0, period = (uint64_t)(interval * 1e9);
    uint64_t actions_prev = 0;
    int have_actions_prev = 0;
    static pi0_action_chunk chunk;
    while (!g_stop &&
           (duration <= 0 || (double)((uint64_t)pi0__now_ns() - t0) < duration * 1e9)) {
        next += period;
        struct timespec ts = {(time_t)(next / 1000000000ull), (long)(next % 1000000000ull)};
        while (!g_stop && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        if (g_stop) break;
        char line[512];
        int k = snprintf(line, sizeof line, "status %5.1fs",
                         (double)((uint64_t)pi0__now_ns() - t0) / 1e9);
        pi0_sample s;
        pi0_node_status ns;
        memset(&ns, 0, sizeof ns);
        int have_s = ensure(&st) && pi0_sub_latest_copy(st.sub, &ns, sizeof ns, &s) == 0 &&
                     pi0_node_status_check(&ns, s.size) == 0;
        if (have_s) {
            ns.message[sizeof ns.message - 1] = 0;
            k += snprintf(line + k, sizeof line - (size_t)k, " | node %s%s",
                          state_name(ns.state), alive(&st) ? "" : " (dead)");
            k += snprintf(line + k, sizeof line - (size_t)k,
                          " | ticks %llu, chunks %llu | tick late p99 %.1f max %.1f ms",
                          (unsigned long long)ns.ticks, (unsigned long long)ns.chunks,
                          ns.tick_late_p99_us / 1e3, ns.tick_late_max_us / 1e3);
        } else {
            k += snprintf(line + k, sizeof line - (size_t)k, " | node -");
        }
        /* a node may publish only horizon * dim actions: check the header, not the size */
        if (ensure(&ch) && pi0_sub_latest_copy(ch.sub, &chunk, sizeof chunk, &s) == 0 &&
            s.size >= offsetof(pi0_action_chunk, actions))
            k += snprintf(line + k, sizeof line - (size_t)k, " | chunk latency %.0f ms",
                          chunk.total_us / 1e3);
        else
            k += snprintf(line + k, sizeof line - (size_t)k, " | chunk latency -");
        pi0_action a;
        pi0_joint_state j;
        int have_a = ensure(&ac) && pi0_sub_latest_copy(ac.sub, &a, sizeof a, &s) == 0 &&
                     pi0_action_check(&a, s.size) == 0;
        if (have_a) {
            uint64_t head = s.seq + 1;
            if (have_actions_prev)
                k += snprintf(line + k, sizeof line - (size_t)k, " | actions %.0f/s",
                              (double)(head - actions_prev) / interval);
            actions_prev = head;
            have_actions_prev = 1;
        }
        int have_j = ensure(&js) && pi0_sub_latest_copy(js.sub, &j, sizeof j, &s) == 0 &&
                     pi0_joint_state_check(&j, s.size) == 0;
        if (have_a && have_j && !(a.flags & PI0_ACTION_HOLD)) {
            uint32_t n = a.dim < j.n ? a.dim : j.n;
            double err = 0;
            for (uint32_t i = 0; i < n; i++)
                err = fmax(err, fabs((double)a.values[i] - j.position[i]));
            k += snprintf(line + k, sizeof line - (size_t)k, " | track err %.3f rad", err);
        } else {
            k += snprintf(line + k, sizeof line - (size_t)k, " | track err -");
        }
        if (have_s && ns.hold_reason && k < (int)sizeof line)
            snprintf(line + k, sizeof line - (size_t)k, " | %s", ns.message);
        puts(line);
        fflush(stdout);
    }
    for (int i = 0; i < 4; i++)
        pi0_sub_close(all[i]->sub);
    return 0;
}
