/* test_launch.c — pi0rt-launch: start order, `after` waits (started, notify, topic) and
 * their timeout, restart policies with back-off, reverse-order stop with processes that
 * ignore SIGINT (and SIGTERM), a SIGKILLed launcher, prefixed output, env and cpus,
 * topic clean-up (only dead publishers that were ours), exit status and summary, and
 * every launch-file error. The launched processes are tests/launch/launch_peer, which
 * logs its start, the signals it gets and its exit with CLOCK_MONOTONIC times. */
#include <errno.h>
#include <sched.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "shm/pi0_shm.h"

static char g_build[PATH_MAX];

static void init_build(void) {
    const char *b = getenv("BUILD");
    if (!realpath(b && *b ? b : "build", g_build)) snprintf(g_build, sizeof g_build, "build");
}

typedef struct ev {
    char name[32], what[32];
    int pid;
    double t;
} ev;

typedef struct evlog {
    ev e[256];
    int n;
} evlog;

static void read_log(const char *dir, evlog *L) {
    char path[512];
    snprintf(path, sizeof path, "%s/log", dir);
    L->n = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    while (L->n < 256 && fscanf(f, "%31s %31s %d %lf", L->e[L->n].name, L->e[L->n].what,
                                &L->e[L->n].pid, &L->e[L->n].t) == 4)
        L->n++;
    fclose(f);
}

/* Index of the k-th (0-based) event `what` of `name`, -1 if none. */
static int find_ev(const evlog *L, const char *name, const char *what, int k) {
    for (int i = 0; i < L->n; i++)
        if (!strcmp(L->e[i].name, name) && !strcmp(L->e[i].what, what) && k-- == 0) return i;
    return -1;
}

static int count_ev(const evlog *L, const char *name, const char *what) {
    int c = 0;
    while (find_ev(L, name, what, c) >= 0)
        c++;
    return c;
}

static double ev_t(const evlog *L, const char *name, const char *what) {
    int i = find_ev(L, name, what, 0);
    return i < 0 ? -1 : L->e[i].t;
}

static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) fputs(text, f), fclose(f);
}

/* A [process NAME] section running launch_peer with `args` (its --name and --log are
 * added) and further `keys` lines. */
static int proc_section(char *buf, size_t cap, const char *dir, const char *name,
                        const char *args, const char *keys) {
    return snprintf(buf, cap,
                    "[process %s]\ncmd = %s/tests/launch/launch_peer\n"
                    "args = --name %s --log %s/log %s\n%s\n",
                    name, g_build, name, dir, args, keys);
}

/* Runs the launcher on dir/l.ini (stdout to dir/out, stderr to dir/err); its exit code. */
static int run_launch(const char *dir, const char *opts) {
    return pi0_test_sh_quiet("cd %s && timeout 30 %s/pi0rt-launch %s l.ini > out 2> err", dir,
                             g_build, opts);
}

/* Starts the launcher on dir/l.ini in the background (stdout to dir/out, stderr to
 * dir/err); its pid. */
static pid_t spawn_launch(const char *dir) {
    pid_t pid = fork();
    if (pid == 0) {
        if (chdir(dir) != 0) _exit(99);
        if (!freopen("out", "w", stdout) || !freopen("err", "w", stderr)) _exit(99);
        char exe[PATH_MAX + 32];
        snprintf(exe, sizeof exe, "%s/pi0rt-launch", g_build);
        execl(exe, exe, "l.ini", (char *)NULL);
        _exit(98);
    }
    return pid;
}

/* Re-reads dir/log into *L until `name` has logged `what`, at most 5 s. */
static void wait_ev(const char *dir, evlog *L, const char *name, const char *what) {
    double t0 = pi0_test_now();
    do {
        usleep(20000);
        read_log(dir, L);
    } while (count_ev(L, name, what) == 0 && pi0_test_now() - t0 < 5);
}

static char *slurp_in(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *s = pi0_test_slurp(path, NULL);
    return s ? s : strdup("");
}

#define CHECK_CONTAINS(hay, needle)                                                            \
    do {                                                                                       \
        if (!strstr((hay), (needle))) PI0__FAIL("missing \"%s\" in:\n%s", (needle), (hay));    \
    } while (0)

static char *make_ini(const char *dir, const char *launch_keys, int n, const char **names,
                      const char **args, const char **keys) {
    static char ini[16384];
    int k = snprintf(ini, sizeof ini, "[launch]\n%s\n", launch_keys);
    for (int i = 0; i < n; i++)
        k += proc_section(ini + k, sizeof ini - (size_t)k, dir, names[i], args[i], keys[i]);
    write_file(dir, "l.ini", ini);
    return ini;
}

// ---- start order and `after` -----------------------------------------------------------

static void test_start_order_and_after(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    char topic[64], after_topic[96];
    snprintf(topic, sizeof topic, "tl.%d.ready", (int)getpid());
    snprintf(after_topic, sizeof after_topic, "--publish %s --publish-after 0.3", topic);
    char rt[96];
    snprintf(rt, sizeof rt, "ready = topic %s", topic);
    /* listed out of order: d waits for c (topic), c for b (notify), b for a (started) */
    const char *names[] = {"d", "c", "b", "a"};
    const char *args[] = {"", after_topic, "--notify-after 0.3", ""};
    char ck[160];
    snprintf(ck, sizeof ck, "after = b\n%s", rt);
    const char *keys[] = {"after = c", ck, "ready = notify\nafter = a", ""};
    make_ini(dir, "duration = 1.5\ngrace = 0.5", 4, names, args, keys);
    int rc = run_launch(dir, "");
    CHECK_EQ_INT(rc, 0);
    evlog L;
    read_log(dir, &L);
    double ta = ev_t(&L, "a", "start"), tb = ev_t(&L, "b", "start");
    double tbr = ev_t(&L, "b", "ready"), tc = ev_t(&L, "c", "start");
    double tcp = ev_t(&L, "c", "published"), td = ev_t(&L, "d", "start");
    CHECK(ta > 0 && tb > 0 && tbr > 0 && tc > 0 && tcp > 0 && td > 0);
    CHECK(tb >= ta);
    CHECK(tc >= tbr);        /* c waited for b's notify (0.3 s after b started) */
    CHECK(tbr - tb >= 0.29); /* ... which came 0.3 s after b started */
    CHECK(td >= tcp);        /* d waited for c's topic */
    CHECK(tcp - tc >= 0.29);
    /* stopped in reverse start order: d, c, b, a */
    double sd = ev_t(&L, "d", "SIGINT"), sc = ev_t(&L, "c", "SIGINT");
    double sb = ev_t(&L, "b", "SIGINT"), sa = ev_t(&L, "a", "SIGINT");
    CHECK(sd > 0 && sc > sd && sb > sc && sa > sb);
    char *out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "summary: a ");
    CHECK_CONTAINS(out, "stopped by SIGINT");
    CHECK(pi0_sub_open(topic, &(pi0_sub_opts){NULL, -1}, &(pi0_sub *){0}) == PI0_ENOENT);
    pi0_test_rmrf(dir);
}

static void test_after_timeout(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    char rt[128];
    snprintf(rt, sizeof rt, "ready = topic tl.%d.never\nready_timeout = 0.4", (int)getpid());
    const char *names[] = {"a", "b"};
    const char *args[] = {"", ""};
    const char *keys[] = {rt, "after = a"};
    make_ini(dir, "grace = 0.5", 2, names, args, keys);
    double t0 = pi0_test_now();
    int rc = run_launch(dir, "");
    double dt = pi0_test_now() - t0;
    CHECK_EQ_INT(rc, 1);
    CHECK(dt < 5.0);
    evlog L;
    read_log(dir, &L);
    CHECK_EQ_INT(count_ev(&L, "a", "start"), 1);
    CHECK_EQ_INT(count_ev(&L, "b", "start"), 0);
    char *out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "a: not ready after 0.4 s (its topic did not appear");
    CHECK_CONTAINS(out, "b not started");
    CHECK_CONTAINS(out, "summary: b            not started");
    /* a dependency that ends before it is ready fails the launch too */
    const char *keys2[] = {"ready = notify", "after = a"};
    const char *args2[] = {"--run 0.1", ""};
    make_ini(dir, "grace = 0.5", 2, names, args2, keys2);
    CHECK_EQ_INT(run_launch(dir, ""), 1);
    free(out);
    out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "b: cannot start: a ended before it was ready");
    pi0_test_rmrf(dir);
}

// ---- restart policies ------------------------------------------------------------------

static void test_restart_on_failure(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    const char *names[] = {"bad", "ok"};
    const char *args[] = {"--run 0.1 --code 3", "--run 0.1"};
    const char *keys[] = {"restart = on-failure\nmax_restarts = 2", "restart = on-failure"};
    make_ini(dir, "backoff = 0.1\nbackoff_max = 0.15", 2, names, args, keys);
    int rc = run_launch(dir, "");
    CHECK_EQ_INT(rc, 3); /* the first failure's exit code */
    evlog L;
    read_log(dir, &L);
    CHECK_EQ_INT(count_ev(&L, "bad", "start"), 3);
    CHECK_EQ_INT(count_ev(&L, "ok", "start"), 1); /* exit 0: on-failure does not restart */
    /* back-off: 0.1 s, then doubled but capped at 0.15 s */
    int s1 = find_ev(&L, "bad", "start", 1), s2 = find_ev(&L, "bad", "start", 2);
    int e0 = find_ev(&L, "bad", "exit", 0), e1 = find_ev(&L, "bad", "exit", 1);
    CHECK(s1 >= 0 && s2 >= 0 && e0 >= 0 && e1 >= 0);
    if (s1 >= 0 && e0 >= 0) CHECK(L.e[s1].t - L.e[e0].t >= 0.09);
    if (s2 >= 0 && e1 >= 0) CHECK(L.e[s2].t - L.e[e1].t >= 0.14);
    char *out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "bad: exited 3 after ");
    CHECK_CONTAINS(out, " s; restart 1 in 0.1 s (restart = on-failure)");
    CHECK_CONTAINS(out, "restart 2 in 0.1 s"); /* 0.15 printed with one decimal */
    CHECK_CONTAINS(out, "no restart left (max_restarts reached)");
    CHECK_CONTAINS(out, "summary: bad          exited 3               restarts 2");
    CHECK_CONTAINS(out, "summary: ok           exited 0               restarts 0");
    CHECK_CONTAINS(out, "exit 3: bad exited 3");
    pi0_test_rmrf(dir);
}

static void test_restart_always_and_no(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    const char *names[] = {"loop", "crash"};
    const char *args[] = {"--run 0.05", "--run 0.05 --crash"};
    const char *keys[] = {"restart = always\nmax_restarts = 3", "restart = no"};
    make_ini(dir, "backoff = 0.05", 2, names, args, keys);
    int rc = run_launch(dir, "");
    CHECK_EQ_INT(rc, 128 + SIGABRT);
    evlog L;
    read_log(dir, &L);
    CHECK_EQ_INT(count_ev(&L, "loop", "start"), 4); /* exit 0 restarted too, 3 times */
    CHECK_EQ_INT(count_ev(&L, "crash", "start"), 1);
    char *out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "crash: killed by SIGABRT");
    CHECK_CONTAINS(out, "loop: exited 0 after");
    CHECK_CONTAINS(out, "(restart = always)");
    pi0_test_rmrf(dir);
}

/* A required process that ends stops the others. */
static void test_required(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    const char *names[] = {"long", "req"};
    const char *args[] = {"", "--run 0.2 --code 5"};
    const char *keys[] = {"", "required = yes"};
    make_ini(dir, "grace = 0.5", 2, names, args, keys);
    double t0 = pi0_test_now();
    CHECK_EQ_INT(run_launch(dir, ""), 5);
    CHECK(pi0_test_now() - t0 < 5.0);
    char *out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "stopping (required process req ended)");
    CHECK_CONTAINS(out, "summary: long         stopped by SIGINT");
    pi0_test_rmrf(dir);
}

// ---- stopping --------------------------------------------------------------------------

static void test_stop_escalation(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    /* started a, b, c (in that order through `after`); c ignores SIGINT, b ignores both */
    const char *names[] = {"a", "b", "c"};
    const char *args[] = {"", "--ignore INT,TERM", "--ignore INT"};
    const char *keys[] = {"", "after = a", "after = b"};
    make_ini(dir, "grace = 0.3\nduration = 0.5", 3, names, args, keys);
    int rc = run_launch(dir, "");
    CHECK_EQ_INT(rc, 128 + SIGKILL); /* b needed SIGKILL: not a clean stop */
    evlog L;
    read_log(dir, &L);
    double ci = ev_t(&L, "c", "SIGINT"), ct = ev_t(&L, "c", "SIGTERM");
    double bi = ev_t(&L, "b", "SIGINT"), bt = ev_t(&L, "b", "SIGTERM");
    double ai = ev_t(&L, "a", "SIGINT");
    CHECK(ci > 0 && ct > 0 && bi > 0 && bt > 0 && ai > 0);
    CHECK(ct - ci >= 0.28); /* grace time between the signals */
    CHECK(bi >= ct);        /* b only after c ended */
    CHECK(bt - bi >= 0.28);
    CHECK(ai - bt >= 0.28); /* b got SIGKILL a grace time after SIGTERM, then a */
    CHECK_EQ_INT(count_ev(&L, "c", "exit"), 0);
    char *out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "c: still running 0.3 s after SIGINT; sending SIGTERM");
    CHECK_CONTAINS(out, "b: still running 0.3 s after SIGTERM; sending SIGKILL");
    CHECK_CONTAINS(out, "summary: c            stopped by SIGTERM");
    CHECK_CONTAINS(out, "summary: b            killed by SIGKILL");
    CHECK_CONTAINS(out, "summary: a            stopped by SIGINT");
    pi0_test_rmrf(dir);
}

/* SIGINT / SIGTERM to the launcher stops everything cleanly (exit 0). */
static void test_signal_to_launcher(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    const char *names[] = {"a", "b"};
    const char *args[] = {"", "--ignore INT"};
    const char *keys[] = {"", "after = a"};
    make_ini(dir, "grace = 0.2", 2, names, args, keys);
    int sigs[] = {SIGINT, SIGTERM};
    for (int k = 0; k < 2; k++) {
        char lpath[512];
        snprintf(lpath, sizeof lpath, "%s/log", dir);
        unlink(lpath);
        pid_t pid = spawn_launch(dir);
        evlog L;
        wait_ev(dir, &L, "b", "start");
        kill(pid, sigs[k]);
        int st;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        read_log(dir, &L);
        CHECK(ev_t(&L, "a", "SIGINT") > ev_t(&L, "b", "SIGTERM"));
        char *out = slurp_in(dir, "out");
        CHECK_CONTAINS(out, k == 0 ? "stopping (SIGINT)" : "stopping (SIGTERM)");
        free(out);
    }
    pi0_test_rmrf(dir);
}

/* A second Ctrl-C while stopping sends SIGKILL to everything at once. */
static void test_second_sigint_kills(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    const char *names[] = {"a", "b"};
    const char *args[] = {"--ignore INT,TERM", "--ignore INT,TERM"};
    const char *keys[] = {"", "after = a"};
    make_ini(dir, "grace = 20", 2, names, args, keys);
    pid_t pid = spawn_launch(dir);
    evlog L;
    wait_ev(dir, &L, "b", "start");
    kill(pid, SIGINT);
    wait_ev(dir, &L, "b", "SIGINT");
    double t0 = pi0_test_now();
    kill(pid, SIGINT);
    int st;
    waitpid(pid, &st, 0);
    CHECK(pi0_test_now() - t0 < 5.0); /* not the 20 s grace times */
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGKILL);
    char *out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "second SIGINT: sending SIGKILL to everything");
    CHECK_CONTAINS(out, "summary: a            killed by SIGKILL");
    CHECK_CONTAINS(out, "summary: b            killed by SIGKILL");
    pi0_test_rmrf(dir);
}

static int pid_gone(int pid) {
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *rp = strrchr(buf, ')');
    return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'); /* zombie: dead */
}

/* A SIGKILLed launcher leaves no child behind (PR_SET_PDEATHSIG). */
static void test_sigkill_launcher(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    const char *names[] = {"a", "b"};
    const char *args[] = {"--ignore INT,TERM", ""};
    const char *keys[] = {"", ""};
    make_ini(dir, "", 2, names, args, keys);
    pid_t pid = spawn_launch(dir);
    evlog L;
    wait_ev(dir, &L, "a", "start");
    wait_ev(dir, &L, "b", "start");
    int pa = L.e[find_ev(&L, "a", "start", 0) < 0 ? 0 : find_ev(&L, "a", "start", 0)].pid;
    int pb = L.e[find_ev(&L, "b", "start", 0) < 0 ? 0 : find_ev(&L, "b", "start", 0)].pid;
    CHECK(pa > 0 && pb > 0 && !pid_gone(pa) && !pid_gone(pb));
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    double t0 = pi0_test_now();
    while (!(pid_gone(pa) && pid_gone(pb)) && pi0_test_now() - t0 < 3)
        usleep(10000);
    CHECK(pid_gone(pa));
    CHECK(pid_gone(pb));
    if (!pid_gone(pa)) kill(pa, SIGKILL);
    if (!pid_gone(pb)) kill(pb, SIGKILL);
    pi0_test_rmrf(dir);
}

// ---- output, env, cpus, topics ------------------------------------------------------

static void test_output_env_cpus(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    const char *names[] = {"talker"};
    const char *args[] = {"--run 0 --say 'two words' --say-err \"an error\""};
    /* pin to the last CPU this process may use */
    cpu_set_t set;
    int cpu = 0;
    CHECK_EQ_INT(sched_getaffinity(0, sizeof set, &set), 0);
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set)) cpu = c;
    char k0[160], want[64];
    /* a second args line, and an indented continuation line, append */
    snprintf(
        k0, sizeof k0,
        "env = GREETING=hi OTHER=1\ncpus = %d\nargs = --print-env GREETING\n  --print-cpus",
        cpu);
    snprintf(want, sizeof want, "[talker] cpus %d\n", cpu);
    const char *keys[] = {k0};
    make_ini(dir, "", 1, names, args, keys);
    CHECK_EQ_INT(run_launch(dir, ""), 0);
    char *out = slurp_in(dir, "out"), *err = slurp_in(dir, "err");
    CHECK_CONTAINS(out, "[talker] two words\n");
    CHECK_CONTAINS(out, "[talker] stdin /dev/null\n");
    CHECK_CONTAINS(out, "[talker] GREETING=hi\n");
    CHECK_CONTAINS(out, want);
    CHECK_CONTAINS(err, "[talker:err] an error\n");
    CHECK(!strstr(out, "an error"));
    CHECK_CONTAINS(out, "stopping (every process ended)");
    pi0_test_rmrf(dir);
}

/* At the end the launcher removes the topics of its dead publishers, and no other. */
static void test_topic_cleanup(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    int me = (int)getpid();
    char ours[64], live[64], foreign_dead[64];
    snprintf(ours, sizeof ours, "tl.%d.ours", me);
    snprintf(live, sizeof live, "tl.%d.live", me);
    snprintf(foreign_dead, sizeof foreign_dead, "tl.%d.dead", me);
    /* a dead publisher that was not ours, and a live one that is not ours */
    pi0_pub *p;
    pi0_pub_opts po = {PI0_TYPE_RAW, 64, 0, 0};
    pid_t child = fork();
    if (child == 0) {
        pi0_pub *q;
        _exit(pi0_pub_create(foreign_dead, &po, &q) == 0 ? 0 : 1);
    }
    int st;
    waitpid(child, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_STATUS(pi0_pub_create(live, &po, &p), 0);
    char a0[128];
    snprintf(a0, sizeof a0, "--publish %s", ours);
    const char *names[] = {"pub"};
    const char *args[] = {a0};
    const char *keys[] = {""};
    make_ini(dir, "duration = 0.5\ngrace = 0.5", 1, names, args, keys);
    CHECK_EQ_INT(run_launch(dir, ""), 0);
    pi0_sub *s = NULL;
    pi0_sub_opts so = {NULL, -1};
    CHECK_STATUS(pi0_sub_open(ours, &so, &s), PI0_ENOENT);
    CHECK_STATUS(pi0_sub_open(live, &so, &s), 0);
    pi0_sub_close(s);
    CHECK_STATUS(pi0_sub_open(foreign_dead, &so, &s), 0);
    pi0_sub_close(s);
    char *out = slurp_in(dir, "out");
    CHECK_CONTAINS(out, "removed topic ");
    CHECK_CONTAINS(out, ours);
    CHECK(!strstr(out, live) && !strstr(out, foreign_dead));
    pi0_pub_destroy(p);
    pi0_topic_remove(live);
    pi0_topic_remove(foreign_dead);
    pi0_test_rmrf(dir);
}

// ---- launch-file errors ----------------------------------------------------------------

/* Each bad file gives exit 1, one line on stderr naming file:line and the key, and
 * nothing started (the `marker` process would have logged its start). */
static void test_config_errors(void) {
    char *dir = pi0_test_tmpdir("pi0launch");
    char peer[PATH_MAX + 64], marker[PATH_MAX + 160];
    snprintf(peer, sizeof peer, "%s/tests/launch/launch_peer", g_build);
    snprintf(marker, sizeof marker,
             "[process marker]\ncmd = %s\nargs = --name m --log %s/log\n", peer, dir);
    static const struct {
        const char *body; /* %1$s = peer path; lines counted from 1 after the marker */
        int line;
        const char *want;
    } cases[] = {
        {"[process a]\ncmd = %s\ncolour = red\n", 3, "[process a] colour: unknown key"},
        {"[launch]\nspeed = 3\n", 2, "[launch] speed: unknown key"},
        {"[processes]\ncmd = x\n", 1, "[processes]: unknown section"},
        {"[process a]\ncmd = %s\nrestart = sometimes\n", 3, "restart: \"sometimes\": want no"},
        {"[process a]\ncmd = %s\nafter = b\n[process b]\ncmd = %s\nafter = a\n", 6,
         "[process b] after: a: cycle in `after`"},
        {"[process a]\ncmd = %s\nafter = a b\n[process b]\ncmd = %s\n", 3,
         "after: itself: \"a\""},
        {"[process a]\ncmd = %s\nafter = nobody\n", 3, "after: no process named \"nobody\""},
        {"[process a]\ncmd = /nonexistent/prog\n", 2,
         "cmd: \"/nonexistent/prog\": no such executable"},
        {"[process a]\ncmd = no-such-program-pi0rt\n", 2, "no such executable"},
        {"[process a]\nargs = x\n", 1, "[process a]: no cmd"},
        {"[process a]\ncmd = %s\n[process a]\ncmd = %s\n", 3, "defined twice (first at line"},
        {"[process a]\ncmd = %s\ncpus = 9999\n", 3, "[process a] cpus: CPU 9999"},
        {"[process a]\ncmd = %s\ncpus = 3-1\n", 3, "[process a] cpus: \"3-1\": bad range"},
        {"[process a]\ncmd = %s\nstop_signal = STOP\n", 3, "stop_signal: \"STOP\""},
        {"[process a]\ncmd = %s\nargs = 'open\n", 3, "args: unbalanced quote"},
        {"[process a]\ncmd = %s\nenv = NOEQUALS\n", 3, "env: \"NOEQUALS\": want NAME=VALUE"},
        {"[process a]\ncmd = %s\nready = maybe\n", 3, "ready: \"maybe\""},
        {"[process a]\ncmd = %s\nready = topic bad/name\n", 3, "ready: bad topic name"},
        {"[process a]\ncmd = %s\nmax_restarts = lots\n", 3, "max_restarts: \"lots\""},
        {"[launch]\ngrace = -1\n", 2, "[launch] grace: \"-1\""},
        {"[process a]\ncmd = %s\nthis line has no equals sign\n", 3, "syntax error"},
        {"[process a]\ncmd = %s\nrequired = maybe\n", 3, "required: \"maybe\""},
        {"[process bad/name]\ncmd = %s\n", 1, "process name must be"},
        {"[process a]\ncmd = %s\nargs = "
         "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"
         "5678901234567890123456789012345678901234567890123456789012345678901234567890123456789"
         "0123456789012345678901234567890123456789\nargs = x\n",
         3, "line longer than"},
    };
    int base = 3; /* the marker section's lines come first */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[1024], ini[8192];
        snprintf(body, sizeof body, cases[i].body, peer, peer);
        snprintf(ini, sizeof ini, "%s%s", marker, body);
        write_file(dir, "l.ini", ini);
        char lpath[512];
        snprintf(lpath, sizeof lpath, "%s/log", dir);
        unlink(lpath);
        int rc = run_launch(dir, "");
        char *err = slurp_in(dir, "err");
        char want[256];
        snprintf(want, sizeof want, "pi0rt-launch: l.ini:%d: ", base + cases[i].line);
        if (rc != 1 || strncmp(err, want, strlen(want)) != 0 || !strstr(err, cases[i].want) ||
            strchr(err, '\n') != err + strlen(err) - 1)
            PI0__FAIL("case %zu: rc %d, want 1 and one line \"%s...%s\", got: %s", i, rc, want,
                      cases[i].want, err);
        evlog L;
        read_log(dir, &L);
        CHECK_EQ_INT(L.n, 0); /* nothing started */
        free(err);
    }
    /* --check accepts a good file and starts nothing */
    write_file(dir, "l.ini", marker);
    CHECK_EQ_INT(run_launch(dir, "--check"), 0);
    evlog L;
    read_log(dir, &L);
    CHECK_EQ_INT(L.n, 0);
    /* usage errors exit 2; --help exits 0 */
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-launch >/dev/null 2>&1", g_build), 2);
    CHECK_EQ_INT(
        pi0_test_sh_quiet("%s/pi0rt-launch --duration x l.ini >/dev/null 2>&1", g_build), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-launch --help | grep -q restart", g_build), 0);
    CHECK_EQ_INT(run_launch(dir, "/nonexistent.ini"), 2); /* two files */
    pi0_test_rmrf(dir);
}

int main(int argc, char **argv) {
    init_build();
    static const pi0_test tests[] = {
        TEST(test_start_order_and_after),
        TEST(test_after_timeout),
        TEST(test_restart_on_failure),
        TEST(test_restart_always_and_no),
        TEST(test_required),
        TEST(test_stop_escalation),
        TEST(test_signal_to_launcher),
        TEST(test_second_sigint_kills),
        TEST(test_sigkill_launcher),
        TEST(test_output_env_cpus),
        TEST(test_topic_cleanup),
        TEST(test_config_errors),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
