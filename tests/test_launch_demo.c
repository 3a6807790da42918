/* test_launch_demo.c — the whole system through pi0rt-launch, as `make run` runs it
 * (launch/demo.ini), with topic names of its own (the test's pid) and a tiny random π0
 * model of its own:
 *   - end to end: motorsim received the node's actions at the control rate, the node
 *     published chunks, the status line showed them, every process ended and no topic was
 *     left behind;
 *   - a fault through the launcher: camsim SIGKILLed mid-run → the node holds and names
 *     the camera, the restart policy brings camsim back → the node runs again; motorsim's
 *     summary shows the hold actions, the launcher's the restart.
 * SKIPs when pi0rt-node is not built. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "shm/pi0_shm.h"

static char g_build[PATH_MAX], g_root[PATH_MAX];

typedef struct demo {
    char *dir;
    char cam[3][64], joints[64], action[64], chunk[64], status[64];
    pid_t launcher;
} demo;

#define CHECK_CONTAINS(hay, needle)                                                            \
    do {                                                                                       \
        if (!strstr((hay), (needle))) PI0__FAIL("missing \"%s\" in:\n%s", (needle), (hay));    \
    } while (0)

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* Writes the robot file (calib/robots/sim.ini with our camera topics), a tiny model and
 * the launch file into a fresh directory, and starts the launcher on it. */
static int start_demo(demo *d, const char *tag, double duration) {
    memset(d, 0, sizeof *d);
    d->dir = pi0_test_tmpdir("pi0demo");
    int me = (int)getpid();
    for (int i = 0; i < 3; i++)
        snprintf(d->cam[i], sizeof d->cam[i], "td.%d.%s.cam%d", me, tag, i);
    snprintf(d->joints, sizeof d->joints, "td.%d.%s.joints", me, tag);
    snprintf(d->action, sizeof d->action, "td.%d.%s.action", me, tag);
    snprintf(d->chunk, sizeof d->chunk, "td.%d.%s.chunk", me, tag);
    snprintf(d->status, sizeof d->status, "td.%d.%s.status", me, tag);

    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/calib/robots/sim.ini", g_root);
    char *sim = pi0_test_slurp(path, NULL);
    if (!sim) {
        PI0__FAIL("cannot read %s", path);
        return -1;
    }
    char *cams = strstr(sim, "[cameras]");
    if (!cams) {
        PI0__FAIL("no [cameras] in %s", path);
        return -1;
    }
    *cams = 0;
    snprintf(path, sizeof path, "%s/sim.ini", d->dir);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f, "%s[cameras]\nbase_0_rgb = %s\nleft_wrist_0_rgb = %s\nright_wrist_0_rgb = %s\n",
            sim, d->cam[0], d->cam[1], d->cam[2]);
    fclose(f);
    free(sim);
    if (pi0_test_sh("%s/pi0rt-mkmodel --size tiny --variant pi0 --seed 1 --out %s/model "
                    ">/dev/null",
                    g_build, d->dir) != 0)
        return -1;

    snprintf(path, sizeof path, "%s/l.ini", d->dir);
    f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "[launch]\ngrace = 3\nready_timeout = 20\nbackoff = 0.3\n\n"
            "[process camsim]\ncmd = %s/pi0rt-camsim\n"
            "args = --topic %s --topic %s --topic %s\n"
            "args = --size 224x224 --rate 30 --slots 16 --report 0\n"
            "ready = topic %s\nrestart = on-failure\n\n"
            "[process motorsim]\ncmd = %s/pi0rt-motorsim\n"
            "args = --joints 14 --rate 100 --report 0 --state-topic %s --action-topic %s\n"
            "ready = topic %s\n\n"
            "[process node]\ncmd = %s/pi0rt-node\n"
            "args = --config %s/node/examples/demo.ini\nargs = --set robot.calib=%s/sim.ini\n"
            "args = --set model.dir=%s/model\nargs = --set robot.joints_topic=%s\n"
            "args = --set robot.action_topic=%s\nargs = --set robot.chunk_topic=%s\n"
            "args = --set node.status_topic=%s\n"
            "after = camsim motorsim\nready = topic %s\nrequired = yes\n\n"
            "[process status]\ncmd = %s/pi0rt-status\n"
            "args = --status %s --chunks %s --actions %s --joints %s\nafter = node\n",
            g_build, d->cam[0], d->cam[1], d->cam[2], d->cam[2], g_build, d->joints, d->action,
            d->joints, g_build, g_root, d->dir, d->dir, d->joints, d->action, d->chunk,
            d->status, d->status, g_build, d->status, d->chunk, d->action, d->joints);
    fclose(f);

    char dur[32];
    snprintf(dur, sizeof dur, "%g", duration);
    d->launcher = fork();
    if (d->launcher == 0) {
        if (chdir(d->dir) != 0) _exit(99);
        if (!freopen("out", "w", stdout) || !freopen("err", "w", stderr)) _exit(99);
        char exe[PATH_MAX + 32];
        snprintf(exe, sizeof exe, "%s/pi0rt-launch", g_build);
        execl(exe, exe, "--duration", dur, "l.ini", (char *)NULL);
        _exit(98);
    }
    return 0;
}

/* Waits for the launcher's exit (SIGKILL after timeout_s); its exit code or -1. */
static int wait_launcher(demo *d, double timeout_s) {
    double t0 = pi0_test_now();
    int st;
    while (waitpid(d->launcher, &st, WNOHANG) == 0) {
        if (pi0_test_now() - t0 > timeout_s) {
            kill(d->launcher, SIGKILL);
            waitpid(d->launcher, &st, 0);
            PI0__FAIL("launcher still running after %.0f s", timeout_s);
            return -1;
        }
        usleep(20000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *output(const demo *d, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", d->dir, name);
    char *s = pi0_test_slurp(path, NULL);
    return s ? s : strdup("");
}

/* No process the launcher started is alive, and none of the demo's topics is left. */
static void check_nothing_left(const demo *d, const char *out) {
    for (const char *p = out; (p = strstr(p, "started (pid ")) != NULL; p++) {
        int pid = atoi(p + 13);
        char path[64];
        snprintf(path, sizeof path, "/proc/%d", pid);
        if (pid > 0 && exists(path)) {
            char stat_path[64], buf[256] = "";
            snprintf(stat_path, sizeof stat_path, "/proc/%d/stat", pid);
            FILE *f = fopen(stat_path, "r");
            if (f) {
                if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
                fclose(f);
            }
            char *rp = strrchr(buf, ')');
            if (!(rp && (rp[2] == 'Z' || rp[2] == 'X'))) PI0__FAIL("pid %d still running", pid);
        }
    }
    const char *topics[] = {d->cam[0], d->cam[1], d->cam[2], d->joints,
                            d->action, d->chunk,  d->status};
    for (int i = 0; i < 7; i++) {
        pi0_sub *s = NULL;
        pi0_sub_opts so = {NULL, -1};
        int r = pi0_sub_open(topics[i], &so, &s);
        if (r != PI0_ENOENT) PI0__FAIL("topic %s left behind (%d)", topics[i], r);
        pi0_sub_close(s);
    }
}

static int need_node(void) {
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/pi0rt-node", g_build);
    return exists(path);
}

static void test_demo_end_to_end(void) {
    if (!need_node()) SKIP("pi0rt-node is not built");
    demo d;
    if (start_demo(&d, "e2e", 7) != 0) return;
    int rc = wait_launcher(&d, 60);
    char *out = output(&d, "out"), *err = output(&d, "err");
    CHECK_EQ_INT(rc, 0);
    /* motorsim: actions at the node's control rate (50 Hz), none lost; missing ones only
     * where the node itself missed ticks */
    const char *ms = strstr(out, "motorsim summary:");
    const char *ns = strstr(err, "pi0rt-node summary:");
    CHECK(ms != NULL && ns != NULL);
    if (ms && ns) {
        unsigned long long ticks, actions, late, missing, lost, node_ticks, missed, chunks;
        double secs, hz, node_hz;
        CHECK_EQ_INT(sscanf(ms,
                            "motorsim summary: ticks %llu in %lf s, actions %llu (%lf Hz), "
                            "late %llu, missing %llu, lost %llu",
                            &ticks, &secs, &actions, &hz, &late, &missing, &lost),
                     7);
        CHECK_EQ_INT(sscanf(ns, "pi0rt-node summary: %lf Hz, ticks %llu, missed %llu", &node_hz,
                            &node_ticks, &missed),
                     3);
        const char *c = strstr(ns, "chunks ");
        CHECK(c && sscanf(c, "chunks %llu", &chunks) == 1 && chunks >= 1);
        CHECK_NEAR(node_hz, 50.0, 1e-9);
        CHECK(actions >= 100);
        /* the node's missed ticks (a loaded machine) are missing actions, nothing else */
        CHECK(hz > 45.0 * (1.0 - (double)missed / (double)(node_ticks + 1)) && hz < 55.0);
        CHECK_EQ_INT(lost, 0);
        CHECK(missing <= missed);
        CHECK(actions <= node_ticks);
    }
    /* the status line: node running, chunks published, a latency and a tracking error */
    CHECK_CONTAINS(out, "[status] status ");
    CHECK_CONTAINS(out, "| node RUNNING |");
    CHECK(strstr(out, "chunk latency ") &&
          !strstr(strstr(out, "| node RUNNING |"), "latency -"));
    CHECK_CONTAINS(out, " rad");
    CHECK_CONTAINS(out, "launch: summary: node         exited 0");
    check_nothing_left(&d, out);
    if (pi0__test_failures) fprintf(stderr, "--- stdout\n%s\n--- stderr\n%s\n", out, err);
    pi0_test_rmrf(d.dir);
}

/* Latest node status (0 when there is none yet). */
static int read_status(pi0_sub **sub, const char *topic, pi0_node_status *ns) {
    if (!*sub) {
        pi0_sub_opts so = {PI0_TYPE_NODE_STATUS, -1};
        if (pi0_sub_open(topic, &so, sub) != 0) return 0;
    }
    pi0_sample s;
    return pi0_sub_latest_copy(*sub, ns, sizeof *ns, &s) == 0;
}

static void test_demo_camera_fault(void) {
    if (!need_node()) SKIP("pi0rt-node is not built");
    demo d;
    if (start_demo(&d, "fault", 60) != 0) return;
    pi0_sub *st = NULL;
    pi0_node_status ns;
    double t0 = pi0_test_now();
    int running = 0;
    while (!running && pi0_test_now() - t0 < 30) {
        running = read_status(&st, d.status, &ns) && ns.state == PI0_NODE_RUNNING;
        usleep(20000);
    }
    CHECK(running);
    /* SIGKILL camsim (the publisher of the first camera) */
    pi0_sub *cam = NULL;
    pi0_sub_opts so = {PI0_TYPE_IMAGE, -1};
    pi0_pub_info info = {0};
    CHECK_STATUS(pi0_sub_open(d.cam[0], &so, &cam), 0);
    if (cam) CHECK_STATUS(pi0_sub_publisher(cam, &info), 0);
    CHECK(info.pid > 0);
    if (running && info.pid > 0) {
        kill(info.pid, SIGKILL);
        /* the node holds and names the camera */
        int held = 0;
        t0 = pi0_test_now();
        while (!held && pi0_test_now() - t0 < 5) {
            held = read_status(&st, d.status, &ns) && ns.state == PI0_NODE_HOLDING &&
                   strstr(ns.message, d.cam[0]) != NULL &&
                   (ns.hold_reason & (PI0_HOLD_PUBLISHER_DEAD | PI0_HOLD_CAMERA_STALE));
            usleep(10000);
        }
        CHECK(held);
        if (!held) fprintf(stderr, "  last status: state %u, \"%s\"\n", ns.state, ns.message);
        /* the launcher restarts camsim; the node runs again */
        int again = 0;
        t0 = pi0_test_now();
        while (!again && pi0_test_now() - t0 < 20) {
            again = read_status(&st, d.status, &ns) && ns.state == PI0_NODE_RUNNING;
            usleep(20000);
        }
        CHECK(again);
        pi0_pub_info now = {0};
        CHECK(cam && pi0_sub_publisher(cam, &now) == 0 && now.state == PI0_PUB_ALIVE &&
              now.pid != info.pid);
    }
    pi0_sub_close(cam);
    pi0_sub_close(st);
    kill(d.launcher, SIGINT);
    int rc = wait_launcher(&d, 30);
    char *out = output(&d, "out"), *err = output(&d, "err");
    CHECK_EQ_INT(rc, 0); /* camsim's last run ended cleanly */
    CHECK_CONTAINS(out, "camsim: killed by SIGKILL after");
    CHECK_CONTAINS(out, "restart 1 in 0.3 s (restart = on-failure)");
    CHECK_CONTAINS(out, "launch: summary: camsim       exited 0               restarts 1");
    CHECK_CONTAINS(out, "motorsim: holding: hold action");
    const char *ms = strstr(out, "motorsim summary:");
    const char *ha = ms ? strstr(ms, "hold actions ") : NULL;
    unsigned long long holds = 0;
    CHECK(ha && sscanf(ha, "hold actions %llu", &holds) == 1 && holds > 0);
    CHECK_CONTAINS(err, "pi0rt-node: hold: ");
    check_nothing_left(&d, out);
    if (pi0__test_failures) fprintf(stderr, "--- stdout\n%s\n--- stderr\n%s\n", out, err);
    pi0_test_rmrf(d.dir);
}

int main(int argc, char **argv) {
    const char *b = getenv("BUILD");
    if (!realpath(b && *b ? b : "build", g_build)) snprintf(g_build, sizeof g_build, "build");
    if (!getcwd(g_root, sizeof g_root)) snprintf(g_root, sizeof g_root, ".");
    static const pi0_test tests[] = {
        TEST(test_demo_end_to_end),
        TEST(test_demo_camera_fault),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
