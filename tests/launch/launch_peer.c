/* launch_peer.c — a process for the launcher tests to start. It logs what happens to it
 * (start, signals received, exit) with CLOCK_MONOTONIC times into a file, so a test can
 * check the order of starts and stops, and can ignore signals, crash, exit with a code,
 * report ready, publish a topic and print to stdout/stderr.
 *
 *   launch_peer --name N --log FILE [--run S] [--code C] [--crash] [--ignore INT,TERM]
 *               [--notify-after S] [--publish TOPIC] [--publish-after S]
 *               [--say TEXT] [--say-err TEXT] [--print-env VAR] [--print-cpus]
 *               [--pidfile FILE] */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_time.h"
#include "shm/pi0_shm.h"

static const char *g_name = "peer", *g_log;
static volatile sig_atomic_t g_sig;

static void logf_(const char *what) {
    if (!g_log) return;
    FILE *f = fopen(g_log, "a");
    if (!f) return;
    fprintf(f, "%s %s %d %.6f\n", g_name, what, (int)getpid(), pi0__now_s());
    fclose(f);
}

static void on_signal(int sig) {
    g_sig = sig;
}

int main(int argc, char **argv) {
    double run = -1, notify_after = -1, publish_after = 0;
    int code = 0, crash = 0, ignore_int = 0, ignore_term = 0, print_cpus = 0;
    const char *topic = NULL, *say = NULL, *say_err = NULL, *env = NULL, *pidfile = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
        if (!strcmp(a, "--name"))
            g_name = v, i++;
        else if (!strcmp(a, "--log"))
            g_log = v, i++;
        else if (!strcmp(a, "--run"))
            run = atof(v), i++;
        else if (!strcmp(a, "--code"))
            code = atoi(v), i++;
        else if (!strcmp(a, "--crash"))
            crash = 1;
        else if (!strcmp(a, "--ignore")) {
            ignore_int = strstr(v, "INT") != NULL;
            ignore_term = strstr(v, "TERM") != NULL;
            i++;
        } else if (!strcmp(a, "--notify-after"))
            notify_after = atof(v), i++;
        else if (!strcmp(a, "--publish"))
            topic = v, i++;
        else if (!strcmp(a, "--publish-after"))
            publish_after = atof(v), i++;
        else if (!strcmp(a, "--say"))
            say = v, i++;
        else if (!strcmp(a, "--say-err"))
            say_err = v, i++;
        else if (!strcmp(a, "--print-env"))
            env = v, i++;
        else if (!strcmp(a, "--print-cpus"))
            print_cpus = 1;
        else if (!strcmp(a, "--pidfile"))
            pidfile = v, i++;
        else {
            fprintf(stderr, "launch_peer: unknown argument %s\n", a);
            return 2;
        }
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    logf_("start");
    if (pidfile) {
        FILE *f = fopen(pidfile, "w");
        if (f) fprintf(f, "%d\n", (int)getpid()), fclose(f);
    }
    if (say) printf("%s\n", say), fflush(stdout);
    if (say) {
        char in[256] = "";
        ssize_t k = readlink("/proc/self/fd/0", in, sizeof in - 1);
        printf("stdin %s\n", k > 0 ? in : "(none)");
        fflush(stdout);
    }
    if (say_err) fprintf(stderr, "%s\n", say_err);
    if (env) printf("%s=%s\n", env, getenv(env) ? getenv(env) : "(unset)"), fflush(stdout);
    if (print_cpus) {
        cpu_set_t set;
        sched_getaffinity(0, sizeof set, &set);
        printf("cpus");
        for (int c = 0; c < CPU_SETSIZE; c++)
            if (CPU_ISSET(c, &set)) printf(" %d", c);
        printf("\n");
        fflush(stdout);
    }
    double t0 = pi0__now_s();
    pi0_pub *pub = NULL;
    int notified = 0;
    for (;;) {
        double t = pi0__now_s() - t0;
        if (g_sig) {
            int sig = g_sig;
            g_sig = 0;
            logf_(sig == SIGINT ? "SIGINT" : "SIGTERM");
            if (!((sig == SIGINT && ignore_int) || (sig == SIGTERM && ignore_term))) {
                pi0_pub_destroy(pub);
                signal(sig, SIG_DFL);
                raise(sig);
            }
        }
        if (notify_after >= 0 && !notified && t >= notify_after) {
            const char *fd = getenv("PI0RT_READY_FD");
            if (fd && write(atoi(fd), "r", 1) == 1) logf_("ready");
            notified = 1;
        }
        if (topic && !pub && t >= publish_after) {
            pi0_pub_opts po = {PI0_TYPE_RAW, 64, 0, 0};
            if (pi0_pub_create(topic, &po, &pub) != 0) {
                fprintf(stderr, "launch_peer: %s: %s\n", topic, pi0_last_error());
                return 1;
            }
            pi0_pub_publish(pub, "x", 1);
            logf_("published");
        }
        if (pub) pi0_pub_heartbeat(pub);
        if (run >= 0 && t >= run) break;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    pi0_pub_destroy(pub);
    if (crash) {
        logf_("crash");
        abort();
    }
    logf_("exit");
    return code;
}
