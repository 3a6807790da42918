/* test_node.c — pi0rt-node: table tests of the pure scheduling and merge functions, the
 * histogram, the chunk hand-over and the config parser; then closed-loop and fault tests
 * where the node, test publishers (node_peer) and this process talk only through topics.
 *
 * The numerics check: the first chunk of a run for a constant observation equals
 * pi0rt-infer on the same image, state (normalized here with numpy from norm_stats.json),
 * tokens and seed, unnormalized (--unnormalize) and passed through the test robot's calib
 * (identity on the first 4 dims). Every topic is named t<pid>.*; the children die with the
 * test (PR_SET_PDEATHSIG) and every wait has a deadline. */
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "cpu_watch.h"
#include "harness.h"
#include "node/node.h"
#include "pipeline/checkpoint/npy.h"
#include "pipeline/preprocess/preprocess.h"
#include "shm/pi0_shm.h"
#include "tests/node/node_peer.h"

static char g_build[4096]; /* build/ */
static char *g_dir;        /* scratch dir shared by the tests (models) */
static char g_model[4200], g_nanmodel[4200], g_model05[4200];

#define CAM_W 64
#define CAM_H 48
#define SEED  7
#define N_J   4
static const double joint_pos[N_J] = {0.1, -0.2, 0.3, 0.05};
static const double lim_lo = -1.5, lim_hi = 1.5, lim_step = 0.25;

// ---- table tests ----

static void test_rows_due(void) {
    static const struct {
        uint64_t k0;
        int h;
        uint64_t k;
        int want;
    } t[] = {{10, 5, 9, -1}, {10, 5, 10, 0},  {10, 5, 14, 4},  {10, 5, 15, -1},
             {0, 1, 0, 0},   {0, 50, 49, 49}, {100, 50, 3, -1}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        CHECK_EQ_INT(node_row_due(t[i].k0, t[i].h, t[i].k), t[i].want);
}

static void test_ticks_needed(void) {
    CHECK_EQ_INT(node_ticks_needed(0, 10000000, 2), 2);
    CHECK_EQ_INT(node_ticks_needed(10000000, 10000000, 0), 1);
    CHECK_EQ_INT(node_ticks_needed(10000001, 10000000, 0), 2);
    CHECK_EQ_INT(node_ticks_needed(25000000, 10000000, 3), 6);
}

static void test_trigger_table(void) {
    const uint64_t NONE = UINT64_MAX;
    static const struct {
        int mode;
        uint64_t k, covered;
        int need;
        uint64_t last;
        int every, free, want;
    } t[] = {
        /* latency mode: rows left = covered - k against need */
        {NODE_TRIGGER_LATENCY, 100, 150, 5, 90, 0, 1, 0},
        {NODE_TRIGGER_LATENCY, 100, 105, 5, 90, 0, 1, 1},
        {NODE_TRIGGER_LATENCY, 100, 106, 5, 90, 0, 1, 0},
        {NODE_TRIGGER_LATENCY, 100, 100, 5, 90, 0, 1, 1}, /* nothing left */
        {NODE_TRIGGER_LATENCY, 100, 50, 5, 90, 0, 1, 1},  /* chunk over */
        {NODE_TRIGGER_LATENCY, 100, 100, 5, 90, 0, 0, 0}, /* pipeline busy */
        {NODE_TRIGGER_LATENCY, 0, 0, 5, NONE, 0, 1, 1},   /* start */
        /* every mode */
        {NODE_TRIGGER_EVERY, 0, 0, 0, NONE, 10, 1, 1},
        {NODE_TRIGGER_EVERY, 105, 200, 0, 100, 10, 1, 0},
        {NODE_TRIGGER_EVERY, 110, 200, 0, 100, 10, 1, 1},
        {NODE_TRIGGER_EVERY, 113, 200, 0, 100, 10, 1, 1}, /* late: first free tick */
        {NODE_TRIGGER_EVERY, 110, 200, 0, 100, 10, 0, 0},
        {NODE_TRIGGER_EVERY, 101, 200, 0, 100, 1, 1, 1},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int got = node_should_trigger(t[i].mode, t[i].k, t[i].covered, t[i].need, t[i].last,
                                      t[i].every, t[i].free);
        CHECK_MSG(got == t[i].want, "row %zu: got %d want %d", i, got, t[i].want);
    }
}

static void test_merge_table(void) {
    const float old[2] = {1.0f, -2.0f}, nw[2] = {3.0f, 2.0f};
    static const struct {
        int policy, blend, has_old;
        uint64_t j;
        float want0, want1;
    } t[] = {
        {NODE_MERGE_REPLACE, 4, 1, 0, 3.0f, 2.0f},
        {NODE_MERGE_BLEND, 4, 1, 0, 1.5f, -1.0f}, /* w = 1/4 */
        {NODE_MERGE_BLEND, 4, 1, 1, 2.0f, 0.0f},  /* w = 2/4 */
        {NODE_MERGE_BLEND, 4, 1, 2, 2.5f, 1.0f},  /* w = 3/4 */
        {NODE_MERGE_BLEND, 4, 1, 3, 3.0f, 2.0f},  /* w = 1 */
        {NODE_MERGE_BLEND, 4, 1, 99, 3.0f, 2.0f},
        {NODE_MERGE_BLEND, 1, 1, 0, 3.0f, 2.0f},
        {NODE_MERGE_BLEND, 4, 0, 0, 3.0f, 2.0f}, /* nothing to blend with */
        {NODE_MERGE_WEIGHTED, 0, 1, 0, 2.4f, 0.8f},
        {NODE_MERGE_WEIGHTED, 0, 1, 30, 2.4f, 0.8f},
        {NODE_MERGE_WEIGHTED, 0, 0, 0, 3.0f, 2.0f},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        float out[2];
        node_merge(t[i].policy, t[i].blend, 0.3, t[i].has_old ? old : NULL, t[i].has_old, nw, 2,
                   t[i].j, out);
        CHECK_MSG(fabsf(out[0] - t[i].want0) < 1e-6f && fabsf(out[1] - t[i].want1) < 1e-6f,
                  "row %zu: got %g %g want %g %g", i, (double)out[0], (double)out[1],
                  (double)t[i].want0, (double)t[i].want1);
    }
}

/* Blend over more ticks than the chunks overlap: the fade is shortened to the overlap, so
 * the value never jumps when the old chunk runs out. */
static void test_blend_longer_than_overlap(void) {
    CHECK_EQ_INT(node_blend_ticks(10, 100, 103), 3);
    CHECK_EQ_INT(node_blend_ticks(10, 100, 150), 10);
    CHECK_EQ_INT(node_blend_ticks(10, 100, 110), 10);
    CHECK_EQ_INT(node_blend_ticks(10, 100, 100), 10); /* no overlap */
    CHECK_EQ_INT(node_blend_ticks(1, 100, 101), 1);
    /* old chunk 0 until tick 103 (exclusive), new chunk 1 from tick 100: steps of 1/3 */
    const float old = 0.0f, nw = 1.0f;
    float last = 0.0f, max_step = 0.0f;
    for (uint64_t k = 100; k < 110; k++) {
        int has_old = k < 103;
        float out;
        node_merge(NODE_MERGE_BLEND, has_old ? node_blend_ticks(10, 100, 103) : 10, 0.3,
                   has_old ? &old : NULL, has_old, &nw, 1, k - 100, &out);
        if (fabsf(out - last) > max_step) max_step = fabsf(out - last);
        last = out;
    }
    CHECK_MSG(max_step < 1.0f / 3.0f + 1e-6f, "largest step %g", (double)max_step);
    CHECK(last == 1.0f);
}

static void test_hist_quantiles(void) {
    static node_hist h;
    node_hist_init(&h);
    CHECK_EQ_INT(node_hist_quantile(&h, 0.5), 0);
    for (int i = 1; i <= 100; i++)
        node_hist_add(&h, (uint64_t)i * 1000 + 500); /* 1.5 us .. 100.5 us */
    CHECK_EQ_INT(atomic_load(&h.count), 100);
    CHECK_EQ_INT(node_hist_quantile(&h, 0.5), 51000); /* 50th value's 1 us bucket top */
    CHECK_EQ_INT(node_hist_quantile(&h, 0.99), 100000);
    CHECK_EQ_INT(node_hist_quantile(&h, 1.0), 100500); /* capped at the maximum */
    node_hist_add(&h, 5000000000ull);                  /* 5 s: log buckets */
    uint64_t top = node_hist_quantile(&h, 1.0);
    CHECK_EQ_INT(top, 5000000000ull);
    node_hist_init(&h);
    node_hist_add(&h, 3000000); /* 3 ms: log bucket, edge within 1/64 octave */
    node_hist_add(&h, 9000000);
    uint64_t q = node_hist_quantile(&h, 0.5);
    CHECK_MSG(q >= 3000000 && q <= 3000000 * 1.011, "3 ms -> %llu", (unsigned long long)q);
}

/* Writer thread publishes chunks whose every value is its seq; the reader checks each one
 * it takes is whole (never torn) and newer than the one before. */
static node_handover g_hv;
static _Atomic int g_hv_done;
static void *hv_writer(void *arg) {
    (void)arg;
    for (uint64_t s = 1; s <= 200000; s++) {
        node_chunk *c = node_handover_begin(&g_hv);
        c->seq = s;
        c->horizon = 8;
        c->dim = 8;
        for (int i = 0; i < 64; i++)
            c->a[i] = (float)s;
        node_handover_publish(&g_hv);
    }
    atomic_store(&g_hv_done, 1);
    return NULL;
}

static void test_handover_threads(void) {
    node_handover_init(&g_hv);
    atomic_store(&g_hv_done, 0);
    pthread_t th;
    CHECK_EQ_INT(pthread_create(&th, NULL, hv_writer, NULL), 0);
    uint64_t last = 0, taken = 0;
    int bad = 0;
    for (;;) {
        int done = atomic_load(&g_hv_done);
        if (node_handover_take(&g_hv)) {
            const node_chunk *c = &g_hv.buf[g_hv.cur];
            for (int i = 0; i < 64; i++)
                bad += c->a[i] != (float)c->seq;
            bad += c->seq <= last;
            bad += g_hv.cur == g_hv.prev;
            last = c->seq;
            taken++;
        } else if (done) {
            break;
        }
    }
    pthread_join(th, NULL);
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(last, 200000); /* the last one is never lost */
    CHECK(taken > 0);
}

static void test_image_to_rgb(void) {
    /* 3x2 image: RGB, BGR, gray, each also rotated */
    uint8_t rgb[2][9], bgr[2][9], gray[2][3], out[18], want[18];
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 3; x++) {
            for (int c = 0; c < 3; c++) {
                rgb[y][x * 3 + c] = node_peer_pixel((uint32_t)x, (uint32_t)y, (uint32_t)c, 1);
                bgr[y][x * 3 + 2 - c] = rgb[y][x * 3 + c];
            }
            gray[y][x] = (uint8_t)(10 * y + x);
        }
    for (int rot = 0; rot < 2; rot++) {
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++)
                for (int c = 0; c < 3; c++)
                    want[(y * 3 + x) * 3 + c] =
                        rot ? rgb[1 - y][(2 - x) * 3 + c] : rgb[y][x * 3 + c];
        pi0_image_to_rgb(&rgb[0][0], 3, 2, 9, PI0_IMAGE_RGB, rot, out);
        CHECK(!memcmp(out, want, 18));
        pi0_image_to_rgb(&bgr[0][0], 3, 2, 9, PI0_IMAGE_BGR, rot, out);
        CHECK(!memcmp(out, want, 18));
        pi0_image_to_rgb(&gray[0][0], 3, 2, 3, PI0_IMAGE_GRAY, rot, out);
        for (int y = 0; y < 2; y++)
            for (int x = 0; x < 3; x++)
                for (int c = 0; c < 3; c++)
                    CHECK_EQ_INT(out[(y * 3 + x) * 3 + c],
                                 rot ? gray[1 - y][2 - x] : gray[y][x]);
    }
}

// ---- processes ----

typedef struct names {
    char cam[64], joints[64], action[64], chunk[64], status[64];
} names;

static void make_names(names *t) {
    int p = (int)getpid();
    snprintf(t->cam, sizeof t->cam, "t%d.cam", p);
    snprintf(t->joints, sizeof t->joints, "t%d.joints", p);
    snprintf(t->action, sizeof t->action, "t%d.action", p);
    snprintf(t->chunk, sizeof t->chunk, "t%d.chunk", p);
    snprintf(t->status, sizeof t->status, "t%d.status", p);
}

static void remove_topics(const names *t) {
    pi0_topic_remove(t->cam);
    pi0_topic_remove(t->joints);
    pi0_topic_remove(t->action);
    pi0_topic_remove(t->chunk);
    pi0_topic_remove(t->status);
}

/* fork + exec argv with stdout and stderr appended to `log`; dies with this process. */
static pid_t spawn(const char *log, char *const argv[]) {
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Sends sig (0: none) and waits up to timeout_s; SIGKILL after that. Exit status, or
 * 128 + signal, or -1 when it had to be killed. */
static int reap(pid_t pid, int sig, double timeout_s) {
    if (pid <= 0) return -1;
    if (sig) kill(pid, sig);
    double end = pi0_test_now() + timeout_s;
    int st;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        if (pi0_test_now() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(10000);
    }
}

static pid_t start_cam(const names *t, const char *log) {
    char path[4200];
    snprintf(path, sizeof path, "%s/tests/node/node_peer", g_build);
    char w[16], h[16], seed[16];
    snprintf(w, sizeof w, "%d", CAM_W);
    snprintf(h, sizeof h, "%d", CAM_H);
    snprintf(seed, sizeof seed, "%d", SEED);
    char *argv[] = {path, "cam", (char *)t->cam, w, h, "rgb", "30", seed, NULL};
    return spawn(log, argv);
}

static pid_t start_joints_stamped(const names *t, const char *log, const char *clock) {
    char path[4200], vals[256];
    snprintf(path, sizeof path, "%s/tests/node/node_peer", g_build);
    snprintf(vals, sizeof vals, "%g,%g,%g,%g", joint_pos[0], joint_pos[1], joint_pos[2],
             joint_pos[3]);
    char *argv[] = {path, "joints", (char *)t->joints, "200", vals, (char *)clock, NULL};
    return spawn(log, argv);
}

/* A robot file (1 camera, 4 joints, identity transforms, limits) and a node file. */
static void write_configs(const char *dir, const names *t, const char *model,
                          const char *extra) {
    char p[4300];
    snprintf(p, sizeof p, "%s/robot.ini", dir);
    FILE *f = fopen(p, "w");
    PI0_ASSERT(f);
    fprintf(f,
            "[robot]\nname = test\n[state]\ndim = 4\nindex = 0, 1, 2, 3\nsign = 1, 1, 1, 1\n"
            "[actions]\nout_dims = 4\ndelta = none\nsign = 1, 1, 1, 1\n"
            "[limits]\nlo = %g, %g, %g, %g\nhi = %g, %g, %g, %g\n"
            "max_step = %g, %g, %g, %g\n"
            "[cameras]\nbase_0_rgb = %s\nleft_wrist_0_rgb = none\nright_wrist_0_rgb = none\n",
            lim_lo, lim_lo, lim_lo, lim_lo, lim_hi, lim_hi, lim_hi, lim_hi, lim_step, lim_step,
            lim_step, lim_step, t->cam);
    fclose(f);
    snprintf(p, sizeof p, "%s/node.ini", dir);
    f = fopen(p, "w");
    PI0_ASSERT(f);
    fprintf(f,
            "[node]\ncontrol_hz = 100\nstatus_hz = 20\nstatus_topic = %s\nstart_timeout = 20\n"
            "[model]\ndir = %s\nseed = %d\ntokens = 1, 2, 3\n"
            "[robot]\ncalib = robot.ini\njoints_topic = %s\naction_topic = %s\n"
            "chunk_topic = %s\n"
            "[safety]\ncamera_max_age_ms = 300\njoints_max_age_ms = 100\n%s",
            t->status, model, SEED, t->joints, t->action, t->chunk, extra ? extra : "");
    fclose(f);
}

static pid_t start_node(const char *dir, const char *log, const char *duration) {
    char path[4200], cfg[4300];
    snprintf(path, sizeof path, "%s/pi0rt-node", g_build);
    snprintf(cfg, sizeof cfg, "%s/node.ini", dir);
    char *argv[] = {path, "--config", cfg, "--duration", (char *)duration, NULL};
    return spawn(log, argv);
}

static pi0_sub *wait_sub(const char *topic, const char *type, double timeout_s) {
    pi0_sub_opts o = {type, -1};
    double end = pi0_test_now() + timeout_s;
    pi0_sub *s = NULL;
    while (pi0_sub_open(topic, &o, &s)) {
        if (pi0_test_now() > end) return NULL;
        usleep(20000);
    }
    return s;
}

/* What the test saw on the node's topics. */
typedef struct seen {
    pi0_action *act;
    size_t n_act, cap_act;
    pi0_action_chunk *chunk;
    size_t n_chunk, cap_chunk;
    pi0_node_status last_status;
    uint32_t status_reasons; /* every hold_reason bit a status showed */
    int n_status;
    char status_msg[8][128]; /* messages of statuses with a hold reason (first 8 distinct) */
    int n_msg;
    uint64_t lost;
    pi0_sub *sa, *sc, *ss;
} seen;

static int seen_open(seen *v, const names *t) {
    memset(v, 0, sizeof *v);
    v->sa = wait_sub(t->action, PI0_TYPE_ACTION, 60);
    v->sc = wait_sub(t->chunk, PI0_TYPE_ACTION_CHUNK, 5);
    v->ss = wait_sub(t->status, PI0_TYPE_NODE_STATUS, 5);
    return v->sa && v->sc && v->ss;
}

static void seen_close(seen *v) {
    pi0_sub_close(v->sa);
    pi0_sub_close(v->sc);
    pi0_sub_close(v->ss);
    free(v->act);
    free(v->chunk);
}

/* Drains the three topics for `secs` seconds (or until pred(v) when given). */
static int seen_collect(seen *v, double secs, int (*pred)(const seen *, void *), void *ctx) {
    double end = pi0_test_now() + secs;
    pi0_sample s;
    while (pi0_test_now() < end) {
        pi0_sub_wait(v->sa, 5000000);
        for (;;) {
            if (v->n_act == v->cap_act) {
                v->cap_act = v->cap_act ? 2 * v->cap_act : 1024;
                v->act = realloc(v->act, v->cap_act * sizeof *v->act);
            }
            if (pi0_sub_next_copy(v->sa, &v->act[v->n_act], sizeof *v->act, &s)) break;
            v->lost += s.lost;
            v->n_act++;
        }
        for (;;) {
            if (v->n_chunk == v->cap_chunk) {
                v->cap_chunk = v->cap_chunk ? 2 * v->cap_chunk : 64;
                v->chunk = realloc(v->chunk, v->cap_chunk * sizeof *v->chunk);
            }
            if (pi0_sub_next_copy(v->sc, &v->chunk[v->n_chunk], sizeof *v->chunk, &s)) break;
            v->n_chunk++;
        }
        pi0_node_status st;
        while (!pi0_sub_next_copy(v->ss, &st, sizeof st, &s)) {
            v->last_status = st;
            v->n_status++;
            v->status_reasons |= st.hold_reason;
            if (st.hold_reason && v->n_msg < 8 &&
                (!v->n_msg || strncmp(v->status_msg[v->n_msg - 1], st.message, 40)))
                snprintf(v->status_msg[v->n_msg++], 128, "%s", st.message);
        }
        if (pred && pred(v, ctx)) return 1;
    }
    return 0;
}

static void dump_log(const char *log) {
    char *txt = pi0_test_slurp(log, NULL);
    if (txt) fprintf(stderr, "---- %s ----\n%s----\n", log, txt);
    free(txt);
}

/* One closed-loop run: the topic names, a temp dir with the node's and the peers' logs,
 * the camera and joint peers, the node, and what the test saw on its topics. */
typedef struct rig {
    names t;
    char *dir, log[4200], plog[4200];
    pid_t cam, js, nd;
    seen v;
    int ok; /* the node's topics were opened */
} rig;

static void rig_init(rig *r) {
    make_names(&r->t);
    r->dir = pi0_test_tmpdir("pi0node");
    snprintf(r->log, sizeof r->log, "%s/node.log", r->dir);
    snprintf(r->plog, sizeof r->plog, "%s/peers.log", r->dir);
}

/* Starts the peers (joint stamps on `clock`, NULL: the monotonic clock) and the node for
 * `duration` seconds, and opens its topics. */
static void rig_start(rig *r, const char *duration, const char *clock) {
    r->cam = start_cam(&r->t, r->plog);
    r->js = start_joints_stamped(&r->t, r->plog, clock);
    r->nd = start_node(r->dir, r->log, duration);
    r->ok = seen_open(&r->v, &r->t);
    CHECK(r->ok);
}

/* The processes are reaped by the test; this shows the node's log on a failure and
 * removes the topics and the temp dir. */
static void rig_end(rig *r) {
    if (pi0__test_failures) dump_log(r->log);
    seen_close(&r->v);
    remove_topics(&r->t);
    pi0_test_rmrf(r->dir);
}

static int pred_running(const seen *v, void *ctx) {
    size_t *from = ctx;
    for (size_t i = *from; i < v->n_act; i++)
        if (!(v->act[i].flags & PI0_ACTION_HOLD)) return 1;
    return 0;
}

static int pred_hold(const seen *v, void *ctx) {
    size_t *from = ctx;
    for (size_t i = *from; i < v->n_act; i++)
        if (v->act[i].flags & PI0_ACTION_HOLD) return 1;
    return 0;
}

static const pi0_action_chunk *find_chunk(const seen *v, uint64_t seq) {
    for (size_t i = 0; i < v->n_chunk; i++)
        if (v->chunk[i].seq == seq) return &v->chunk[i];
    return NULL;
}

// ---- closed loop ----

/* Checks every action the test saw against the chunks: due at t0 + row·period of the chunk
 * it names, and equal to that row merged with the previous chunk's row at the same tick
 * (policy as configured; the merge starts at the first action naming the new chunk),
 * clamped to the test robot's limits and step from the previous action. After a hold
 * while the previous chunk was active, the node may have dropped it (an input fault makes
 * older observations unusable; holds do not say why), so both are accepted there.
 * Returns the number of mismatches; *running gets the actions checked. */
static size_t check_actions(const seen *v, int policy, int blend, double w_old,
                            size_t *running) {
    size_t bad = 0;
    float prev[4];
    int have_prev = 0;
    uint64_t cur_seq = 0, old_seq = 0, land_due = 0, old_land = 0, last_hold = 0;
    *running = 0;
    for (size_t i = 0; i < v->n_act; i++) {
        const pi0_action *x = &v->act[i];
        if (x->chunk_seq != cur_seq) { /* a new chunk took over at this tick */
            old_seq = cur_seq;
            old_land = land_due;
            cur_seq = x->chunk_seq;
            land_due = x->due_ns;
        }
        if (x->flags & PI0_ACTION_HOLD) {
            if (x->dim == 4) memcpy(prev, x->values, sizeof prev), have_prev = 1;
            last_hold = x->due_ns;
            continue;
        }
        int either = last_hold && last_hold >= old_land; /* the old chunk may be gone */
        const pi0_action_chunk *c = find_chunk(v, x->chunk_seq), *o = find_chunk(v, old_seq);
        if (!c || (old_seq && !o)) { /* published before we subscribed */
            memcpy(prev, x->values, sizeof prev);
            have_prev = 1;
            continue;
        }
        (*running)++;
        bad += x->dim != 4 || x->index >= c->horizon ||
               x->due_ns != c->t0_ns + x->index * c->period_ns;
        uint64_t j = (x->due_ns - land_due) / c->period_ns;
        int64_t orow =
            o && x->due_ns >= o->t0_ns ? (int64_t)((x->due_ns - o->t0_ns) / o->period_ns) : -1;
        int has_old = o && orow >= 0 && orow < (int64_t)o->horizon;
        for (int d = 0; d < 4 && x->dim == 4; d++) {
            double nw = c->actions[x->index * c->dim + (uint32_t)d], want = nw;
            if (has_old && policy != NODE_MERGE_REPLACE) {
                double od = o->actions[(uint64_t)orow * o->dim + (uint32_t)d];
                if (policy == NODE_MERGE_WEIGHTED) {
                    want = w_old * od + (1 - w_old) * nw;
                } else {
                    /* the fade ends with the overlap when that is shorter */
                    uint64_t ov =
                        (o->t0_ns + o->horizon * o->period_ns - land_due) / c->period_ns;
                    int bt = ov < (uint64_t)blend ? (int)ov : blend;
                    double w = j + 1 >= (uint64_t)bt ? 1.0 : (double)(j + 1) / bt;
                    want = od + (nw - od) * w;
                }
            }
            want = want < lim_lo ? lim_lo : want > lim_hi ? lim_hi : want;
            if (have_prev) {
                double p = prev[d];
                want = want < p - lim_step   ? p - lim_step
                       : want > p + lim_step ? p + lim_step
                                             : want;
            }
            double alt = nw; /* without the old chunk */
            alt = alt < lim_lo ? lim_lo : alt > lim_hi ? lim_hi : alt;
            if (have_prev) {
                double p = prev[d];
                alt = alt < p - lim_step   ? p - lim_step
                      : alt > p + lim_step ? p + lim_step
                                           : alt;
            }
            if (fabs(x->values[d] - want) > 1e-5 * (1 + fabs(want)) &&
                !(either && fabs(x->values[d] - alt) <= 1e-5 * (1 + fabs(alt)))) {
                if (bad < 5)
                    fprintf(
                        stderr,
                        "  action %zu (chunk %llu row %u, j %llu) dim %d: %.7g, want %.7g\n", i,
                        (unsigned long long)x->chunk_seq, x->index, (unsigned long long)j, d,
                        (double)x->values[d], want);
                bad++;
            }
        }
        memcpy(prev, x->values, sizeof prev);
        have_prev = 1;
    }
    return bad;
}

/* The blend and weighted merges in the running node, checked action by action. */
static void closed_loop_merge(const char *policy, int id) {
    char extra[256];
    rig r;
    rig_init(&r);
    /* trigger every 10 ticks: chunks overlap for ~40 ticks, so the merge is exercised */
    snprintf(extra, sizeof extra,
             "[schedule]\ntrigger = every\nevery = 10\nmerge = %s\nblend_ticks = 6\n"
             "weight_old = 0.25\n",
             policy);
    write_configs(r.dir, &r.t, g_model, extra);
    rig_start(&r, "30", NULL);
    if (r.ok) seen_collect(&r.v, 4, NULL, NULL);
    CHECK_EQ_INT(reap(r.nd, SIGINT, 20), 0);
    if (r.ok) seen_collect(&r.v, 0.2, NULL, NULL);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    CHECK(r.v.n_chunk >= 3);
    size_t running = 0, bad = check_actions(&r.v, id, 6, 0.25, &running);
    CHECK(running > 100);
    CHECK_EQ_INT(bad, 0);
    rig_end(&r);
}

static void test_closed_loop_blend(void) {
    closed_loop_merge("blend", NODE_MERGE_BLEND);
}

static void test_closed_loop_weighted(void) {
    closed_loop_merge("weighted", NODE_MERGE_WEIGHTED);
}

/* pi0rt-infer on the test camera image, the normalized test state, tokens 1 2 3, SEED. */
static float *reference_chunk(const char *dir, const char *model, int *h, int *a) {
    char p[4300];
    snprintf(p, sizeof p, "%s/img.npy", dir);
    static uint8_t img[CAM_H][CAM_W][3];
    for (int y = 0; y < CAM_H; y++)
        for (int x = 0; x < CAM_W; x++)
            for (int c = 0; c < 3; c++)
                img[y][x][c] = node_peer_pixel((uint32_t)x, (uint32_t)y, (uint32_t)c, SEED);
    int64_t shape[3] = {CAM_H, CAM_W, 3};
    if (pi0_npy_write(p, PI0_U8, 3, shape, img)) return NULL;
    snprintf(p, sizeof p, "%s/tokens.npy", dir);
    int32_t tok[3] = {1, 2, 3};
    int64_t tshape[1] = {3};
    if (pi0_npy_write(p, PI0_I32, 1, tshape, tok)) return NULL;
    /* the independent normalization: numpy, z-score (π0) with the checkpoint's stats */
    if (pi0_test_sh("/usr/bin/python3 -c \"import json,numpy as np; "
                    "s=json.load(open('%s/norm_stats.json'))['norm_stats']['state']; "
                    "x=np.array([%g,%g,%g,%g]); m=np.array(s['mean'][:4]); "
                    "d=np.array(s['std'][:4]); "
                    "np.save('%s/state.npy',((x-m)/(d+1e-6)).astype(np.float32))\"",
                    model, joint_pos[0], joint_pos[1], joint_pos[2], joint_pos[3], dir))
        return NULL;
    if (pi0_test_sh("%s/pi0rt-infer --model %s --image base=%s/img.npy --state %s/state.npy "
                    "--tokens %s/tokens.npy --seed %d --unnormalize --out %s/ref.npy",
                    g_build, model, dir, dir, dir, SEED, dir))
        return NULL;
    snprintf(p, sizeof p, "%s/ref.npy", dir);
    pi0_npy r = {0};
    if (pi0_npy_read(p, &r) || r.ndim != 2) return NULL;
    *h = (int)r.shape[0];
    *a = (int)r.shape[1];
    float *out = malloc((size_t)*h * (size_t)*a * sizeof(float));
    memcpy(out, r.data, (size_t)*h * (size_t)*a * sizeof(float));
    pi0_npy_free(&r);
    return out;
}

/* The first chunk of the run equals pi0rt-infer (same image, state, tokens, seed). */
static void check_first_chunk(const seen *v, const char *dir, const char *model) {
    int H = 0, A = 0;
    float *ref = reference_chunk(dir, model, &H, &A);
    const pi0_action_chunk *c1 = find_chunk(v, 1);
    CHECK(ref && c1);
    if (ref && c1) {
        CHECK_EQ_INT(c1->horizon, H);
        CHECK_EQ_INT(c1->dim, 4);
        double maxd = 0;
        for (int r = 0; r < H && r < (int)c1->horizon; r++)
            for (int j = 0; j < 4; j++) {
                double d = fabs(c1->actions[r * 4 + j] - ref[r * A + j]);
                maxd = d > maxd ? d : maxd;
            }
        CHECK_MSG(maxd <= 1e-5, "first chunk vs pi0rt-infer: max |diff| %.3g", maxd);
        CHECK(c1->total_us > 0 && c1->denoise_us > 0 && c1->encode_us > 0);
    }
    free(ref);
}

static void test_closed_loop(void) {
    rig r;
    rig_init(&r);
    write_configs(r.dir, &r.t, g_model, NULL);
    rig_start(&r, "8", NULL);
    if (r.ok) seen_collect(&r.v, 6, NULL, NULL);
    int rc = reap(r.nd, SIGINT, 20);
    CHECK_EQ_INT(rc, 0);
    if (r.ok) seen_collect(&r.v, 0.2, NULL, NULL);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    char *txt = pi0_test_slurp(r.log, NULL);
    CHECK(txt && strstr(txt, "pi0rt-node summary:"));
    free(txt);

    /* rate: count actions by their due stamps over a window well inside the run */
    CHECK(r.v.n_act > 300);
    CHECK_EQ_INT(r.v.lost, 0);
    if (r.v.n_act > 300) {
        uint64_t a = r.v.act[50].due_ns, b = r.v.act[r.v.n_act - 50].due_ns, n_in = 0;
        for (size_t i = 0; i < r.v.n_act; i++)
            n_in += r.v.act[i].due_ns >= a && r.v.act[i].due_ns < b;
        double want = (double)(b - a) / 1e7;
        CHECK_MSG(fabs((double)n_in - want) <= 0.01 * want, "%llu actions due in %.3f s",
                  (unsigned long long)n_in, (double)(b - a) * 1e-9);
        for (size_t i = 1; i < r.v.n_act; i++)
            CHECK((r.v.act[i].due_ns - r.v.act[i - 1].due_ns) % 10000000 == 0);
    }
    /* every action equals the clamped row of the chunk it names, due at t0 + row·period */
    CHECK(r.v.n_chunk >= 2);
    size_t running = 0, bad = check_actions(&r.v, NODE_MERGE_REPLACE, 0, 0, &running);
    CHECK(running > 200);
    CHECK_EQ_INT(bad, 0);
    check_first_chunk(&r.v, r.dir, g_model);
    const pi0_action_chunk *c1 = find_chunk(&r.v, 1), *c2 = find_chunk(&r.v, 2);
    if (c1 && c2) CHECK(memcmp(c1->actions, c2->actions, 4 * sizeof(float)) != 0);
    /* status */
    CHECK(r.v.n_status > 20);
    CHECK(r.v.last_status.ticks > 300);
    CHECK(r.v.last_status.chunks >= 2);
    CHECK(r.v.last_status.infer_p50_us > 0);
    CHECK(r.v.last_status.tick_late_max_us >= r.v.last_status.tick_late_p50_us);
    rig_end(&r);
}

/* π0.5 (the state enters only through the prompt; fixed tokens here): the node's first
 * chunk equals pi0rt-infer on the same inputs. */
static void test_first_chunk_pi05(void) {
    rig r;
    rig_init(&r);
    write_configs(r.dir, &r.t, g_model05, NULL);
    rig_start(&r, "30", NULL);
    size_t from = 0;
    if (r.ok) CHECK(seen_collect(&r.v, 20, pred_running, &from));
    CHECK_EQ_INT(reap(r.nd, SIGINT, 20), 0);
    if (r.ok) seen_collect(&r.v, 0.2, NULL, NULL);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    check_first_chunk(&r.v, r.dir, g_model05);
    rig_end(&r);
}

/* π0.5 with a text prompt: the node builds "Task: …, State: <digitized state>;\nAction: "
 * with the tokenizer each observation; the first chunk equals pi0rt-infer --prompt on the
 * same state (quantile-normalized here with numpy) and tokenizer (a small SentencePiece
 * model trained with spm_train). */
static void test_pi05_prompt_with_state(void) {
    if (pi0_test_sh_quiet("command -v spm_train > /dev/null")) SKIP("spm_train not installed");
    char extra[4400];
    rig r;
    rig_init(&r);
    CHECK_EQ_INT(
        pi0_test_sh("/usr/bin/python3 -c \"import random; r=random.Random(5); "
                    "w=['pick','up','the','red','cube','task','state','action','place',"
                    "'it','on','table','Task:','State:','Action:']; "
                    "open('%s/corpus.txt','w').write(''.join(' '.join(r.choice(w) for _ "
                    "in range(8))+' '+' '.join(str(r.randrange(256)) for _ in range(6))"
                    "+'\\n' for _ in range(400)))\" && spm_train --input=%s/corpus.txt "
                    "--model_prefix=%s/tok --vocab_size=300 --hard_vocab_limit=false "
                    "--byte_fallback=true --minloglevel=2 --num_threads=1 > /dev/null 2>&1",
                    r.dir, r.dir, r.dir),
        0);
    snprintf(extra, sizeof extra,
             "[model]\nprompt = pick up the red cube\ntokenizer = %s/tok.model\n", r.dir);
    write_configs(r.dir, &r.t, g_model05, extra);
    /* the prompt replaces the tokens line */
    CHECK_EQ_INT(pi0_test_sh("sed -i '/^tokens = /d' %s/node.ini", r.dir), 0);
    rig_start(&r, "30", NULL);
    size_t from = 0;
    if (r.ok) CHECK(seen_collect(&r.v, 20, pred_running, &from));
    CHECK_EQ_INT(reap(r.nd, SIGINT, 20), 0);
    if (r.ok) seen_collect(&r.v, 0.2, NULL, NULL);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    /* the reference: numpy quantile normalization, pi0rt-infer's own prompt building */
    char p[4300];
    snprintf(p, sizeof p, "%s/img.npy", r.dir);
    static uint8_t img[CAM_H][CAM_W][3];
    for (int y = 0; y < CAM_H; y++)
        for (int x = 0; x < CAM_W; x++)
            for (int c = 0; c < 3; c++)
                img[y][x][c] = node_peer_pixel((uint32_t)x, (uint32_t)y, (uint32_t)c, SEED);
    int64_t shape[3] = {CAM_H, CAM_W, 3};
    CHECK_EQ_INT(pi0_npy_write(p, PI0_U8, 3, shape, img), 0);
    CHECK_EQ_INT(
        pi0_test_sh("/usr/bin/python3 -c \"import json,numpy as np; "
                    "s=json.load(open('%s/norm_stats.json'))['norm_stats']['state']; "
                    "x=np.array([%g,%g,%g,%g]); lo=np.array(s['q01'][:4]); "
                    "hi=np.array(s['q99'][:4]); "
                    "np.save('%s/state.npy',((x-lo)/(hi-lo+1e-6)*2-1).astype(np.float32))\"",
                    g_model05, joint_pos[0], joint_pos[1], joint_pos[2], joint_pos[3], r.dir),
        0);
    CHECK_EQ_INT(
        pi0_test_sh("%s/pi0rt-infer --model %s --image base=%s/img.npy --state "
                    "%s/state.npy --prompt 'pick up the red cube' --tokenizer %s/tok.model "
                    "--seed %d --unnormalize --out %s/ref.npy",
                    g_build, g_model05, r.dir, r.dir, r.dir, SEED, r.dir),
        0);
    snprintf(p, sizeof p, "%s/ref.npy", r.dir);
    pi0_npy rn = {0};
    const pi0_action_chunk *c1 = find_chunk(&r.v, 1);
    int rd = pi0_npy_read(p, &rn);
    CHECK(!rd && c1 && rn.ndim == 2);
    if (!rd && c1 && rn.ndim == 2) {
        const float *ref = rn.data;
        double maxd = 0;
        for (int64_t i = 0; i < rn.shape[0] && i < (int64_t)c1->horizon; i++)
            for (int j = 0; j < 4; j++) {
                double d = fabs(c1->actions[i * 4 + j] - ref[i * rn.shape[1] + j]);
                maxd = d > maxd ? d : maxd;
            }
        CHECK_MSG(maxd <= 1e-5, "π0.5 prompt chunk vs pi0rt-infer: max |diff| %.3g", maxd);
    }
    pi0_npy_free(&rn);
    rig_end(&r);
}

// ---- faults ----

static void test_fault_camera_killed_and_restarted(void) {
    rig r;
    rig_init(&r);
    write_configs(r.dir, &r.t, g_model, NULL);
    rig_start(&r, "30", NULL);
    size_t from = 0;
    if (r.ok) CHECK(seen_collect(&r.v, 15, pred_running, &from));
    /* kill the camera: hold within the age limit (300 ms) plus one tick */
    uint64_t t_kill = node_now_ns();
    reap(r.cam, SIGKILL, 5);
    from = r.v.n_act;
    if (r.ok) CHECK(seen_collect(&r.v, 5, pred_hold, &from));
    for (size_t i = from; i < r.v.n_act; i++)
        if (r.v.act[i].flags & PI0_ACTION_HOLD) {
            CHECK_MSG(r.v.act[i].due_ns <= t_kill + 300000000ull + 10000000ull,
                      "first hold %.1f ms after the kill",
                      ((double)r.v.act[i].due_ns - (double)t_kill) * 1e-6);
            break;
        }
    if (r.ok) seen_collect(&r.v, 0.5, NULL, NULL);
    CHECK(r.v.status_reasons & (PI0_HOLD_CAMERA_STALE | PI0_HOLD_PUBLISHER_DEAD));
    int named = 0;
    for (int i = 0; i < r.v.n_msg; i++)
        named |= strstr(r.v.status_msg[i], r.t.cam) != NULL;
    CHECK_MSG(named, "no status message names %s (first: '%s')", r.t.cam,
              r.v.n_msg ? r.v.status_msg[0] : "");
    CHECK(r.v.last_status.state == PI0_NODE_HOLDING);
    /* restart: running again by itself */
    r.cam = start_cam(&r.t, r.plog);
    from = r.v.n_act;
    if (r.ok) CHECK(seen_collect(&r.v, 10, pred_running, &from));
    reap(r.nd, SIGINT, 20);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    rig_end(&r);
}

/* The camera dies, its segment is removed (pi0rt-shm gc, a launcher's clean-up) and it
 * comes back in a new segment: the node re-attaches and runs again by itself. */
static void test_fault_camera_restarted_in_new_segment(void) {
    rig r;
    rig_init(&r);
    write_configs(r.dir, &r.t, g_model, NULL);
    rig_start(&r, "40", NULL);
    size_t from = 0;
    if (r.ok) CHECK(seen_collect(&r.v, 15, pred_running, &from));
    reap(r.cam, SIGKILL, 5);
    CHECK_EQ_INT(pi0_topic_remove(r.t.cam), 0);
    from = r.v.n_act;
    if (r.ok) CHECK(seen_collect(&r.v, 5, pred_hold, &from));
    if (r.ok) seen_collect(&r.v, 1, NULL, NULL); /* the dead camera's last frame is stale */
    r.cam = start_cam(&r.t, r.plog);
    from = r.v.n_act;
    if (r.ok) CHECK(seen_collect(&r.v, 10, pred_running, &from));
    if (r.ok) seen_collect(&r.v, 1, NULL, NULL); /* and it stays running */
    CHECK(r.v.n_act > 0 && !(r.v.act[r.v.n_act - 1].flags & PI0_ACTION_HOLD));
    reap(r.nd, SIGINT, 20);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    rig_end(&r);
}

static void test_fault_joints_killed_then_node_killed(void) {
    rig r;
    rig_init(&r);
    write_configs(r.dir, &r.t, g_model, NULL);
    rig_start(&r, "30", NULL);
    size_t from = 0;
    if (r.ok) CHECK(seen_collect(&r.v, 15, pred_running, &from));
    reap(r.js, SIGKILL, 5);
    from = r.v.n_act;
    if (r.ok) CHECK(seen_collect(&r.v, 5, pred_hold, &from));
    if (r.ok) seen_collect(&r.v, 0.3, NULL, NULL);
    CHECK(r.v.status_reasons & (PI0_HOLD_JOINTS_STALE | PI0_HOLD_PUBLISHER_DEAD));
    /* hold values: the last command (4 dims) */
    for (size_t i = from; i < r.v.n_act; i++)
        if (r.v.act[i].flags & PI0_ACTION_HOLD) {
            CHECK_EQ_INT(r.v.act[i].dim, 4);
            break;
        }
    /* the node SIGKILLed: its action topic's publisher is dead */
    CHECK_EQ_INT(reap(r.nd, SIGKILL, 5), 128 + SIGKILL);
    pi0_pub_info pi;
    int st = r.v.sa ? pi0_sub_publisher(r.v.sa, &pi) : -1;
    CHECK_EQ_INT(st, 0);
    if (!st) CHECK_EQ_INT(pi.state, PI0_PUB_DEAD);
    reap(r.cam, SIGTERM, 5);
    rig_end(&r);
}

static int pred_dropped(const seen *v, void *ctx) {
    (void)ctx;
    return v->last_status.dropped_chunks >= 2 && (v->status_reasons & PI0_HOLD_NONFINITE);
}

static void test_fault_nan_model_drops_chunks(void) {
    rig r;
    rig_init(&r);
    write_configs(r.dir, &r.t, g_nanmodel, NULL);
    rig_start(&r, "30", NULL);
    if (r.ok) CHECK(seen_collect(&r.v, 10, pred_dropped, NULL));
    CHECK_EQ_INT(r.v.n_chunk, 0);
    size_t holds = 0;
    for (size_t i = 0; i < r.v.n_act; i++)
        holds += (r.v.act[i].flags & PI0_ACTION_HOLD) != 0;
    CHECK(r.v.n_act > 0 && holds == r.v.n_act);
    int named = 0;
    for (int i = 0; i < r.v.n_msg; i++)
        named |= strstr(r.v.status_msg[i], "non-finite") != NULL;
    CHECK(named);
    CHECK_EQ_INT(reap(r.nd, SIGTERM, 20), 0);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    rig_end(&r);
}

/* A short run at 20 Hz with generous age limits (so it also works when everything runs
 * many times slower, as under ThreadSanitizer): chunks flow, SIGINT exits 0. */
static void test_short_run_clean_exit(void) {
    rig r;
    rig_init(&r);
    write_configs(
        r.dir, &r.t, g_model,
        "camera_max_age_ms = 5000\njoints_max_age_ms = 5000\n[node]\ncontrol_hz = 20\n");
    rig_start(&r, "60", NULL);
    size_t from = 0;
    if (r.ok) CHECK(seen_collect(&r.v, 40, pred_running, &from));
    if (r.ok) seen_collect(&r.v, 1, NULL, NULL);
    CHECK(r.v.n_chunk >= 1);
    CHECK_EQ_INT(reap(r.nd, SIGINT, 30), 0);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    rig_end(&r);
}

static int pred_status(const seen *v, void *ctx) {
    return v->n_status >= *(int *)ctx;
}

/* The node stopped for 300 ms (SIGSTOP) wakes that late: the ticks it skipped count as
 * missed and the lateness it reports is the real one, not what is left after skipping. */
static void test_missed_ticks_report_real_lateness(void) {
    rig r;
    rig_init(&r);
    write_configs(r.dir, &r.t, g_model, "[node]\ncontrol_hz = 100\n");
    rig_start(&r, "60", NULL);
    int want = 2;
    if (r.ok) CHECK(seen_collect(&r.v, 30, pred_status, &want));
    kill(r.nd, SIGSTOP);
    usleep(300000);
    kill(r.nd, SIGCONT);
    want = r.v.n_status + 4;
    if (r.ok) CHECK(seen_collect(&r.v, 20, pred_status, &want));
    CHECK_MSG(r.v.last_status.missed_ticks >= 20, "missed %llu",
              (unsigned long long)r.v.last_status.missed_ticks);
    CHECK_MSG(r.v.last_status.tick_late_max_us >= 200000, "max lateness %u us",
              r.v.last_status.tick_late_max_us);
    CHECK_EQ_INT(reap(r.nd, SIGINT, 30), 0);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    rig_end(&r);
}

/* A driver that stamps its joint state with wall-clock time (CLOCK_REALTIME): the node
 * cannot place that stamp on its control grid, so it uses the sample's commit time and
 * runs instead of holding forever. */
static void test_joint_stamp_on_another_clock(void) {
    rig r;
    rig_init(&r);
    write_configs(
        r.dir, &r.t, g_model,
        "camera_max_age_ms = 5000\njoints_max_age_ms = 5000\n[node]\ncontrol_hz = 20\n");
    rig_start(&r, "60", "realtime");
    size_t from = 0;
    if (r.ok) CHECK(seen_collect(&r.v, 40, pred_running, &from));
    CHECK_EQ_INT(reap(r.nd, SIGINT, 30), 0);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    rig_end(&r);
}

static void test_missing_topic_times_out(void) {
    names t;
    make_names(&t);
    char *dir = pi0_test_tmpdir("pi0node"), log[4200];
    snprintf(log, sizeof log, "%s/node.log", dir);
    write_configs(dir, &t, g_model, "");
    double t0 = pi0_test_now();
    int rc =
        pi0_test_sh_quiet("%s/pi0rt-node --config %s/node.ini --set node.start_timeout=0.5 "
                          "> %s 2>&1",
                          g_build, dir, log);
    CHECK_EQ_INT(rc, 1);
    CHECK(pi0_test_now() - t0 < 20);
    char *txt = pi0_test_slurp(log, NULL);
    CHECK_MSG(txt && strstr(txt, t.cam) && strstr(txt, "no publisher"), "%s", txt ? txt : "");
    free(txt);
    remove_topics(&t);
    pi0_test_rmrf(dir);
}

/* SIGINT while the node waits for its input topics stops it at once (exit 0), not after
 * start_timeout. */
static void test_sigint_while_waiting_for_topics(void) {
    names t;
    make_names(&t);
    char *dir = pi0_test_tmpdir("pi0node"), log[4200];
    snprintf(log, sizeof log, "%s/node.log", dir);
    write_configs(dir, &t, g_model, "");
    char path[4200], cfg[4300];
    snprintf(path, sizeof path, "%s/pi0rt-node", g_build);
    snprintf(cfg, sizeof cfg, "%s/node.ini", dir);
    char *argv[] = {path, "--config", cfg, "--set", "node.start_timeout=60", NULL};
    pid_t nd = spawn(log, argv);
    /* wait until it says it waits, then interrupt it */
    double end = pi0_test_now() + 30;
    char *txt = NULL;
    while (pi0_test_now() < end) {
        free(txt);
        txt = pi0_test_slurp(log, NULL);
        if (txt && strstr(txt, "waiting for topic")) break;
        usleep(20000);
    }
    CHECK_MSG(txt && strstr(txt, "waiting for topic"), "%s", txt ? txt : "");
    free(txt);
    double t0 = pi0_test_now();
    CHECK_EQ_INT(reap(nd, SIGINT, 10), 0);
    CHECK(pi0_test_now() - t0 < 5);
    remove_topics(&t);
    pi0_test_rmrf(dir);
}

// ---- configuration ----

static void test_check_and_bad_config(void) {
    names t;
    make_names(&t);
    char *dir = pi0_test_tmpdir("pi0node"), out[4200];
    snprintf(out, sizeof out, "%s/out.txt", dir);
    write_configs(dir, &t, g_model, "[schedule]\nmerge = blend\n");
    CHECK_EQ_INT(pi0_test_sh("%s/pi0rt-node --check --config %s/node.ini --set "
                             "model.seed=42 > %s 2>&1",
                             g_build, dir, out),
                 0);
    char *txt = pi0_test_slurp(out, NULL);
    CHECK(txt && strstr(txt, "seed = 42") && strstr(txt, "merge = blend") &&
          strstr(txt, "control_hz = 100") && strstr(txt, t.cam));
    free(txt);
    /* --check opens nothing for writing: no topic appeared */
    pi0_sub_opts so = {NULL, -1};
    pi0_sub *s = NULL;
    CHECK_EQ_INT(pi0_sub_open(t.action, &so, &s), PI0_ENOENT);

    static const struct {
        const char *extra, *want;
    } bad[] = {
        {"bogus = 1\n", ":18: safety.bogus: unknown key"},
        {"[node]\ncontrol_hz = 0\n", ":19: node.control_hz: '0' is not a number in [1, 5000]"},
        {"[schedule]\nmerge = average\n", ":19: schedule.merge: 'average' is not one of"},
        {"[model]\ntokens = 1,x\n", ":19: model.tokens:"},
        {"[robot]\naction_topic = a/b\n", ":19: robot.action_topic:"},
        {"[frobnicate]\nx = 1\n", ":19: frobnicate.x: unknown key"},
        {"not an ini line\n", ":18: syntax error"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_configs(dir, &t, g_model, bad[i].extra);
        int rc = pi0_test_sh_quiet("%s/pi0rt-node --check --config %s/node.ini > %s 2>&1",
                                   g_build, dir, out);
        CHECK_EQ_INT(rc, 1);
        txt = pi0_test_slurp(out, NULL);
        char want[4400];
        snprintf(want, sizeof want, "%s/node.ini%s", dir, bad[i].want);
        CHECK_MSG(txt && strstr(txt, want), "case %zu: want '%s', got '%s'", i, want,
                  txt ? txt : "");
        free(txt);
    }
    /* a missing required key, --set errors, usage errors */
    write_configs(dir, &t, g_model, NULL);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-node --check --config %s/node.ini --set "
                                   "model.dir= > %s 2>&1",
                                   g_build, dir, out),
                 1);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-node --check --config %s/node.ini --set "
                                   "node.status_hz=1000 > %s 2>&1",
                                   g_build, dir, out),
                 1);
    txt = pi0_test_slurp(out, NULL);
    CHECK(txt && strstr(txt, "--set node.status_hz: '1000'"));
    free(txt);
    /* an inference CPU this process may not use */
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-node --check --config %s/node.ini --set "
                                   "node.infer_cpus=0,1023 > %s 2>&1",
                                   g_build, dir, out),
                 1);
    txt = pi0_test_slurp(out, NULL);
    CHECK_MSG(txt && strstr(txt, "node.ini: node.infer_cpus: CPU 1023 is not one this process"),
              "got '%s'", txt ? txt : "");
    free(txt);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-node --check > /dev/null 2>&1", g_build), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-node --frob > /dev/null 2>&1", g_build), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s/pi0rt-node --help > /dev/null 2>&1", g_build), 0);
    CHECK_EQ_INT(
        pi0_test_sh_quiet("%s/pi0rt-node --config %s/nope.ini > %s 2>&1", g_build, dir, out),
        1);
    pi0_test_rmrf(dir);
}

/* The shipped examples pass --check (run from the repository root, as make test does);
 * aloha.ini's infer_cpus (1, 2, 3: a 4-core robot computer) is emptied where CPUs 1-3 are
 * not all allowed. */
static void test_examples_check(void) {
    cpu_set_t allowed;
    int four = sched_getaffinity(0, sizeof allowed, &allowed) == 0 && CPU_ISSET(1, &allowed) &&
               CPU_ISSET(2, &allowed) && CPU_ISSET(3, &allowed);
    if (access("node/examples/demo.ini", R_OK)) SKIP("not run from the repository root");
    CHECK_EQ_INT(pi0_test_sh("%s/pi0rt-node --check --config node/examples/demo.ini --set "
                             "model.dir=%s > /dev/null",
                             g_build, g_model),
                 0);
    CHECK_EQ_INT(
        pi0_test_sh("%s/pi0rt-node --check --config node/examples/aloha.ini --set "
                    "model.dir=%s --set model.prompt= --set model.tokens=1,2 %s > /dev/null",
                    g_build, g_model, four ? "" : "--set node.infer_cpus="),
        0);
}

/* The control thread keeps its core: with control_cpu = c1 and infer_cpus = c0 (2 compute
 * threads), every thread of the node that runs while it infers back to back is pinned to
 * c0 and never seen on c1 (the stage threads, which preprocess images and unnormalize, the
 * device's stream workers and pool helper, OpenBLAS's threads if any ran), except the
 * control thread (pinned to c1), the status monitor and the main thread (waits for
 * signals), which are not inference work. */
static void test_compute_threads_confined(void) {
    int c0, c1;
    if (!cw_two_cpus(&c0, &c1)) SKIP("needs 2 allowed CPUs");
    if (CW_TSAN) SKIP("ThreadSanitizer's own thread runs on any CPU");
    rig r;
    rig_init(&r);
    char extra[256];
    snprintf(extra, sizeof extra,
             "[node]\ncontrol_cpu = %d\ninfer_cpus = %d\n[model]\nthreads = 2\n", c1, c0);
    write_configs(r.dir, &r.t, g_model, extra);
    rig_start(&r, "6", NULL);
    static cpu_watch w;
    cw_init(&w, (int)r.nd);
    size_t chunks0 = 0;
    if (r.ok) {
        size_t from = 0;
        seen_collect(&r.v, 10, pred_running, &from); /* the first chunk is applied */
        chunks0 = r.v.n_chunk;
        double end = pi0_test_now() + 1.5;
        while (pi0_test_now() < end) {
            cw_sample(&w);
            seen_collect(&r.v, 0.002, NULL, NULL);
        }
        cw_sample(&w);
    }
    CHECK_EQ_INT(reap(r.nd, SIGINT, 20), 0);
    reap(r.cam, SIGTERM, 5);
    reap(r.js, SIGTERM, 5);
    CHECK_MSG(r.v.n_chunk >= chunks0 + 3, "%zu chunks while watching", r.v.n_chunk - chunks0);
    int ran[4] = {0}; /* pi0-encode, pi0-denoise, pi0-cpu-stream, pi0-cpu-pool */
    static const char *const compute[4] = {"pi0-encode", "pi0-denoise", "pi0-cpu-stream",
                                           "pi0-cpu-pool"};
    for (int i = 0; i < w.n; i++) {
        const cw_thread *x = &w.t[i];
        if (!cw_ran(x)) continue;
        if (!strcmp(x->name, "pi0-control")) {
            CHECK_MSG(cw_pinned_to(x, c1), "the control thread has %d allowed CPUs",
                      CPU_COUNT(&x->mask));
            continue;
        }
        if (x->tid == (int)r.nd || !strcmp(x->name, "pi0-monitor")) continue;
        for (int k = 0; k < 4; k++)
            ran[k] += !strcmp(x->name, compute[k]);
        CHECK_MSG(cw_pinned_to(x, c0) && !CPU_ISSET(c1, &x->ran_on),
                  "thread %d (%s) ran %.2f ms with %d allowed CPUs (CPU %d: %s), %s on CPU %d",
                  x->tid, x->name, (double)cw_ran(x) * 1e-6, CPU_COUNT(&x->mask), c0,
                  CPU_ISSET(c0, &x->mask) ? "in" : "not in",
                  CPU_ISSET(c1, &x->ran_on) ? "seen" : "not seen", c1);
    }
    for (int k = 0; k < 4; k++)
        CHECK_MSG(ran[k] >= 1, "no %s thread ran while watching", compute[k]);
    rig_end(&r);
}

int main(int argc, char **argv) {
    snprintf(g_build, sizeof g_build, "%s/..", pi0_test_exe_dir());
    g_dir = pi0_test_tmpdir("pi0node.models");
    snprintf(g_model, sizeof g_model, "%s/tiny", g_dir);
    snprintf(g_nanmodel, sizeof g_nanmodel, "%s/nan", g_dir);
    snprintf(g_model05, sizeof g_model05, "%s/tiny05", g_dir);
    if (pi0_test_sh("%s/pi0rt-mkmodel --size tiny --variant pi0 --out %s > /dev/null", g_build,
                    g_model) ||
        pi0_test_sh("%s/pi0rt-mkmodel --size tiny --variant pi05 --out %s > /dev/null", g_build,
                    g_model05) ||
        pi0_test_sh(
            "%s/pi0rt-mkmodel --size tiny --variant pi0 --nan-head --out %s > /dev/null",
            g_build, g_nanmodel))
        return 1;
    static const pi0_test tests[] = {
        TEST(test_rows_due),
        TEST(test_ticks_needed),
        TEST(test_trigger_table),
        TEST(test_merge_table),
        TEST(test_blend_longer_than_overlap),
        TEST(test_hist_quantiles),
        TEST(test_handover_threads),
        TEST(test_image_to_rgb),
        TEST(test_check_and_bad_config),
        TEST(test_examples_check),
        TEST(test_missing_topic_times_out),
        TEST(test_joint_stamp_on_another_clock),
        TEST(test_missed_ticks_report_real_lateness),
        TEST(test_sigint_while_waiting_for_topics),
        TEST(test_short_run_clean_exit),
        TEST(test_closed_loop),
        TEST(test_closed_loop_blend),
        TEST(test_closed_loop_weighted),
        TEST(test_first_chunk_pi05),
        TEST(test_pi05_prompt_with_state),
        TEST(test_fault_camera_killed_and_restarted),
        TEST(test_fault_camera_restarted_in_new_segment),
        TEST(test_fault_joints_killed_then_node_killed),
        TEST(test_fault_nan_model_drops_chunks),
        TEST(test_compute_threads_confined),
    };
    int rc = pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
    pi0_test_rmrf(g_dir);
    return rc;
}
