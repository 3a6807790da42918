/* test_sims.c — pi0rt-camsim and pi0rt-motorsim as real processes, checked from the
 * topics they publish: camsim's frames (valid pi0.Image, frame counter read back from
 * the pixels equal to frame_id, capture stamps monotonic and not after the commit, moving
 * content, every camera); motorsim's joint dynamics against the first-order recurrence,
 * velocity and position limits, hold on PI0_ACTION_HOLD and when the action publisher is
 * SIGKILLed, and the counts in its summary (actions, late, missing, hold actions). */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "common/pi0_time.h"
#include "shm/pi0_shm.h"

static char g_build[PATH_MAX];

/* Starts a build/ tool with its stdout in `out`; returns its pid. */
static pid_t spawn(const char *out, const char *tool, char *const args[]) {
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(out, "w", stdout)) _exit(99);
        char exe[PATH_MAX + 64];
        snprintf(exe, sizeof exe, "%s/%s", g_build, tool);
        char *argv[32] = {exe};
        for (int i = 0; args[i] && i < 30; i++)
            argv[i + 1] = args[i];
        execv(exe, argv);
        _exit(98);
    }
    return pid;
}

static int wait_exit(pid_t pid, double timeout_s) {
    double t0 = pi0_test_now();
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (pi0_test_now() - t0 > timeout_s) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(5000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static pi0_sub *open_retry(const char *topic, const char *type, double timeout_s) {
    pi0_sub *s = NULL;
    pi0_sub_opts so = {type, -1};
    double t0 = pi0_test_now();
    while (pi0_sub_open(topic, &so, &s) != 0 && pi0_test_now() - t0 < timeout_s)
        usleep(5000);
    return s;
}

/* The counter camsim draws: bit i in the cell of columns [i*w/32, (i+1)*w/32), row 0. */
static uint32_t read_counter(const pi0_image *im) {
    uint32_t cw = im->width / 32, bpp = pi0_pixel_bytes(im->format), id = 0;
    for (uint32_t b = 0; b < 32; b++) {
        const uint8_t *px = im->data + (size_t)(b * cw + cw / 2) * bpp;
        if (px[0] > 127) id |= 1u << b;
    }
    return id;
}

static void test_camsim_frames(void) {
    char dir_out[256], t0n[64], t1n[64];
    char *dir = pi0_test_tmpdir("pi0sims");
    snprintf(dir_out, sizeof dir_out, "%s/out", dir);
    snprintf(t0n, sizeof t0n, "ts.%d.c0", (int)getpid());
    snprintf(t1n, sizeof t1n, "ts.%d.c1", (int)getpid());
    char *args[] = {"--topic", t0n,          "--topic", t1n,        "--size", "96x20", "--rate",
                    "100",     "--duration", "1.5",     "--format", "bgr",    NULL};
    pid_t pid = spawn(dir_out, "pi0rt-camsim", args);
    pi0_sub *s0 = open_retry(t0n, PI0_TYPE_IMAGE, 3), *s1 = open_retry(t1n, PI0_TYPE_IMAGE, 3);
    CHECK(s0 && s1);
    if (!s0 || !s1) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return;
    }
    static uint8_t buf[2][64 + 96 * 20 * 3];
    int frames = 0, moved = 0, prev_ok = 0;
    uint64_t prev_id = 0, prev_cap = 0;
    double t0 = pi0_test_now();
    while (frames < 40 && pi0_test_now() - t0 < 3) {
        if (pi0_sub_wait(s0, 200000000) != 0) continue;
        pi0_sample s;
        uint8_t *b = buf[frames & 1];
        if (pi0_sub_next_copy(s0, b, sizeof buf[0], &s) != 0) continue;
        const pi0_image *im = (const pi0_image *)b;
        CHECK_STATUS(pi0_image_check(b, s.size), 0);
        CHECK_EQ_INT(im->width, 96);
        CHECK_EQ_INT(im->height, 20);
        CHECK_EQ_INT(im->format, PI0_PIX_BGR8);
        CHECK_EQ_INT(read_counter(im), (uint32_t)im->frame_id);
        CHECK(im->capture_ns <= s.stamp_ns && s.stamp_ns <= (uint64_t)pi0__now_ns());
        if (prev_ok && s.lost == 0) {
            CHECK_EQ_INT(im->frame_id, prev_id + 1);
            CHECK(im->capture_ns > prev_cap);
            /* rows below the counter differ: the square moved */
            const pi0_image *pv = (const pi0_image *)buf[(frames + 1) & 1];
            if (memcmp(im->data + 8 * im->stride, pv->data + 8 * pv->stride, 12 * im->stride))
                moved++;
        }
        prev_ok = 1;
        prev_id = im->frame_id;
        prev_cap = im->capture_ns;
        frames++;
    }
    CHECK(frames >= 40);
    CHECK(moved >= frames / 2);
    pi0_sample s;
    CHECK_STATUS(pi0_sub_latest_copy(s1, buf[0], sizeof buf[0], &s), 0);
    const pi0_image *im1 = (const pi0_image *)buf[0];
    CHECK_EQ_INT(read_counter(im1), (uint32_t)im1->frame_id);
    CHECK_EQ_INT(wait_exit(pid, 5), 0);
    char *out = pi0_test_slurp(dir_out, NULL);
    CHECK(out && strstr(out, "camsim summary: 2 cameras"));
    pi0_sub_close(s0);
    pi0_sub_close(s1);
    pi0_topic_remove(t0n);
    pi0_topic_remove(t1n);
    /* usage errors */
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-camsim --size 8x8 2>/dev/null", g_build), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-camsim --rate 0 2>/dev/null", g_build), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-camsim --help | grep -q frame", g_build), 0);
    pi0_test_rmrf(dir);
}

// ---- motorsim ----------------------------------------------------------------------

#define RATE    200.0
#define TAU     0.1
#define VMAX    1.0
#define LIMIT   0.5
#define TARGET2 0.02 /* small enough that joint 2 never reaches vmax: pure first order */

/* Publishes 100 actions at 100 Hz: 0-39 follow, 40-59 HOLD, 60-99 follow; action 70 is
 * never sent (missing), action 80 is committed 60 ms after it was due (late; the
 * numbers of surely and possibly late commits go to `counts`). Then waits to be
 * killed. */
static void action_publisher(const char *topic, const char *counts) {
    pi0_pub *pub;
    pi0_pub_opts po = {PI0_TYPE_ACTION, sizeof(pi0_action), 64, 0};
    if (pi0_pub_create(topic, &po, &pub) != 0) _exit(1);
    usleep(300000); /* motorsim looks for the topic every 100 ms */
    uint64_t base = (uint64_t)pi0__now_ns();
    int late_lo = 0, late_hi = 0; /* commits surely late / possibly late (> 25 ms) */
    for (int k = 0; k < 100; k++) {
        uint64_t due = base + (uint64_t)k * 10000000ull;
        struct timespec ts = {(time_t)(due / 1000000000ull), (long)(due % 1000000000ull)};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        if (k == 70) continue;
        pi0_action *a = pi0_pub_loan(pub);
        memset(a, 0, sizeof *a);
        a->due_ns = due;
        a->dim = 3;
        a->index = (uint32_t)k;
        a->flags = k >= 40 && k < 60 ? PI0_ACTION_HOLD : 0;
        a->values[0] = 0.3f;
        a->values[1] = 2.0f; /* beyond the limit */
        a->values[2] = (float)TARGET2;
        if (k == 80) usleep(60000); /* committed 60 ms after it was due: late */
        late_lo += (uint64_t)pi0__now_ns() > due + 25000000ull;
        pi0_pub_commit(pub, sizeof *a);
        late_hi += (uint64_t)pi0__now_ns() > due + 25000000ull;
    }
    FILE *f = fopen(counts, "w");
    if (f) fprintf(f, "%d %d\n", late_lo, late_hi), fclose(f);
    for (;;)
        pause();
}

static void test_motorsim(void) {
    char *dir = pi0_test_tmpdir("pi0sims");
    char out[256], jt[64], at[64];
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(jt, sizeof jt, "ts.%d.joints", (int)getpid());
    snprintf(at, sizeof at, "ts.%d.action", (int)getpid());
    char *args[] = {"--joints",       "3",   "--rate",  "200", "--tau",         "0.1",
                    "--vmax",         "1.0", "--limit", "0.5", "--state-topic", jt,
                    "--action-topic", at,    "--stale", "5",   "--report",      "0",
                    "--late-ms",      "25",  NULL};
    pid_t sim = spawn(out, "pi0rt-motorsim", args);
    pi0_sub *js = open_retry(jt, PI0_TYPE_JOINT_STATE, 3);
    CHECK(js != NULL);
    if (!js) {
        kill(sim, SIGKILL);
        waitpid(sim, NULL, 0);
        return;
    }
    usleep(300000); /* motorsim opens the action topic within 100 ms of its creation */
    pid_t ap = fork();
    char counts[300];
    snprintf(counts, sizeof counts, "%s/counts", dir);
    if (ap == 0) action_publisher(at, counts);
    /* record every joint state for 1.0 s of actions + 0.4 s after the publisher dies */
    static pi0_joint_state st[1000];
    int n = 0, lost = 0;
    double t0 = pi0_test_now();
    int killed = 0, n_at_kill = 0;
    while (pi0_test_now() - t0 < 1.9 && n < 1000) {
        if (!killed && pi0_test_now() - t0 > 1.45) {
            kill(ap, SIGKILL);
            waitpid(ap, NULL, 0);
            killed = 1;
            n_at_kill = n;
        }
        if (pi0_sub_wait(js, 50000000) != 0) continue;
        pi0_sample s;
        while (n < 1000 && pi0_sub_next_copy(js, &st[n], sizeof st[n], &s) == 0) {
            lost += (int)s.lost;
            n++;
        }
    }
    CHECK(killed);
    CHECK_EQ_INT(lost, 0);
    int recur = 0, moving1 = 0, bad_recur = 0;
    for (int i = 0; i < n; i++) {
        CHECK_EQ_INT(st[i].n, 3);
        for (int j = 0; j < 3; j++) {
            CHECK(fabs(st[i].velocity[j]) <= VMAX + 1e-12);
            CHECK(fabs(st[i].position[j]) <= LIMIT + 1e-12);
        }
        if (i == 0) continue;
        const pi0_joint_state *a = &st[i - 1], *b = &st[i];
        /* joint 1 moves at most vmax per period elapsed (a late tick takes several steps) */
        double periods = floor((double)(b->stamp_ns - a->stamp_ns) * 1e-9 * RATE) + 1;
        CHECK(fabs(b->position[1] - a->position[1]) <= VMAX / RATE * periods + 1e-12);
        if (b->velocity[1] != 0) moving1++;
        /* joint 2 follows q' = q + (T - q) dt / tau exactly while following: k >= 1 steps
         * of it lead from one published state to the next */
        if (b->velocity[2] != 0) {
            double target = (double)(float)TARGET2; /* sent as a float */
            double q = a->position[2];
            int ok = 0;
            for (int k = 0; k < 64 && !ok; k++) {
                q = q + (target - q) * (1.0 / RATE) / TAU;
                ok = fabs(b->position[2] - q) <= 1e-15;
            }
            if (!ok && bad_recur++ == 0)
                PI0__FAIL("joint 2: %.17g -> %.17g is no number of steps toward %.17g",
                          a->position[2], b->position[2], target);
            recur++;
        }
    }
    CHECK(recur > 50);
    CHECK_EQ_INT(bad_recur, 0);
    CHECK(moving1 > 50);
    /* joint 0 reached its target, joint 1 stopped at the limit */
    const pi0_joint_state *last = &st[n - 1];
    CHECK_NEAR(last->position[0], 0.3, 1e-3);
    CHECK_NEAR(last->position[1], LIMIT, 1e-12);
    /* after the publisher died (motorsim notices within 0.1 s): still, velocity 0 */
    int still = 0;
    for (int i = n_at_kill + 30; i < n; i++) {
        CHECK_EQ_INT(st[i].velocity[0] == 0 && st[i].velocity[2] == 0, 1);
        CHECK(st[i].position[2] == st[n_at_kill + 30].position[2]);
        still++;
    }
    CHECK(still > 20);
    kill(sim, SIGINT);
    CHECK_EQ_INT(wait_exit(sim, 5), 0);
    char *o = pi0_test_slurp(out, NULL);
    CHECK(o != NULL);
    if (o) {
        const char *sum = strstr(o, "motorsim summary:");
        CHECK(sum != NULL);
        if (sum) {
            unsigned long long ticks, actions, late, missing, lostc, hold_actions, holds, dead;
            double secs, hz;
            int k = sscanf(sum,
                           "motorsim summary: ticks %llu in %lf s, actions %llu (%lf Hz), late "
                           "%llu, missing %llu, lost %llu, hold actions %llu, holds %llu "
                           "(publisher dead %llu",
                           &ticks, &secs, &actions, &hz, &late, &missing, &lostc, &hold_actions,
                           &holds, &dead);
            CHECK_EQ_INT(k, 10);
            CHECK_EQ_INT(actions, 99);
            int lo = -1, hi = -1;
            FILE *f = fopen(counts, "r");
            if (f) {
                if (fscanf(f, "%d %d", &lo, &hi) != 2) lo = hi = -1;
                fclose(f);
            }
            if (!(lo >= 1 && (int)late >= lo && (int)late <= hi))
                PI0__FAIL("late %llu, want %d..%d", late, lo, hi);
            CHECK_EQ_INT(missing, 1);
            CHECK_EQ_INT(lostc, 0);
            CHECK_EQ_INT(hold_actions, 20);
            CHECK_EQ_INT(holds, 2); /* the hold actions, then the dead publisher */
            CHECK_EQ_INT(dead, 1);
        }
        CHECK(strstr(o, "motorsim: holding: action publisher dead") != NULL);
        CHECK(strstr(o, "motorsim: holding: hold action") != NULL);
    }
    pi0_sub_close(js);
    pi0_topic_remove(jt);
    pi0_topic_remove(at);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-motorsim --joints 99 2>/dev/null", g_build), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-motorsim --help | grep -q tau", g_build), 0);
    pi0_test_rmrf(dir);
}

// ---- status ------------------------------------------------------------------------

/* pi0rt-status rejects option values that are not whole numbers in range (an empty
 * --duration must not mean "run forever"). */
static void test_status_usage(void) {
    const char *bad[] = {"--duration ''", "--duration x",     "--duration -1",
                         "--interval ''", "--interval 1e999", "--interval 0.01"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_EQ_INT(
            pi0_test_sh_quiet("timeout 5 %s/pi0rt-status %s 2>/dev/null", g_build, bad[i]), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-status --help | grep -q latency", g_build), 0);
}

int main(int argc, char **argv) {
    const char *b = getenv("BUILD");
    if (!realpath(b && *b ? b : "build", g_build)) snprintf(g_build, sizeof g_build, "build");
    static const pi0_test tests[] = {
        TEST(test_camsim_frames),
        TEST(test_motorsim),
        TEST(test_status_usage),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
