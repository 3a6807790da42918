/* test_mcap.c — pi0rt-shm record / play / info / --recover and the MCAP reader.
 *
 * The files the tool writes are read by the reference implementations (npm's @mcap/core
 * indexed and stream readers with CRC checks, @mcap/support's LZ4, @foxglove's CDR
 * decoder: tests/mcap/check.mjs), which compare every decoded field with the samples
 * this test published; the expected values are written here from the test's own inputs.
 * `fuzz` mutates a valid file thousands of times and runs the reader, the CDR decoders
 * and the recovery on each (tests/mcap/asan-suite reruns it under AddressSanitizer). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_time.h"
#include "harness.h"
#include "shm/mcap.h"
#include "shm/pi0_shm.h"
#include "shm/ros2msg.h"

static char g_tool[4200];

static int64_t test_clock_offset(void) {
    struct timespec m, r;
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_REALTIME, &r);
    return ((int64_t)r.tv_sec - m.tv_sec) * 1000000000ll + (r.tv_nsec - m.tv_nsec);
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) && errno == EINTR) {
    }
}

/* The reference peers are installed by `make deps` (npm); without them the peer checks
 * cannot run. */
static int have_peers(void) {
    return access("tests/mcap/node_modules/@mcap/core/package.json", R_OK) == 0 &&
           system("node --version >/dev/null 2>&1") == 0;
}
#define NEED_PEERS()                                                                           \
    do {                                                                                       \
        if (!have_peers()) SKIP("node or tests/mcap/node_modules missing (run make deps)");    \
    } while (0)

/* fork + exec the tool with argv (NULL-terminated), stderr to `log` (may be NULL). */
static pid_t spawn_tool(const char *const *args, const char *log) {
    pid_t pid = fork();
    if (pid == 0) {
        if (log) {
            int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) dup2(fd, 2), dup2(fd, 1);
        }
        char *argv[32];
        int n = 0;
        argv[n++] = g_tool;
        for (; args[n - 1] && n < 31; n++)
            argv[n] = (char *)args[n - 1];
        argv[n] = NULL;
        execv(g_tool, argv);
        _exit(127);
    }
    return pid;
}

static int wait_rc(pid_t pid) {
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int wait_file(const char *path, int ms) {
    for (int i = 0; i < ms / 5; i++) {
        struct stat sb;
        if (!stat(path, &sb) && sb.st_size > 0) return 0;
        sleep_ms(5);
    }
    return -1;
}

// ---- the published samples and their expected JSON ----

enum { T_CAM, T_GRAY, T_JOINTS, T_CHUNK, T_ACTION, T_STATUS, N_TOPICS };

typedef struct pubset {
    char name[N_TOPICS][64];
    pi0_pub *pub[N_TOPICS];
    /* expected messages per MCAP channel (the chunk topic has two channels) */
    char *json[N_TOPICS + 1];
    size_t json_len[N_TOPICS + 1];
    FILE *js[N_TOPICS + 1];
    int count[N_TOPICS + 1];
    uint64_t round;
} pubset;

#define CAM_W      32
#define CAM_H      24
#define CAM_STRIDE 100 /* > 3 * 32: rows carry padding */
#define GRAY_W     16
#define GRAY_H     8

static void pubset_open(pubset *ps, const char *tag) {
    memset(ps, 0, sizeof *ps);
    static const char *const sfx[N_TOPICS] = {"cam",   "gray",   "joints",
                                              "chunk", "action", "status"};
    static const char *const types[N_TOPICS] = {PI0_TYPE_IMAGE,       PI0_TYPE_IMAGE,
                                                PI0_TYPE_JOINT_STATE, PI0_TYPE_ACTION_CHUNK,
                                                PI0_TYPE_ACTION,      PI0_TYPE_NODE_STATUS};
    uint32_t sizes[N_TOPICS] = {64 + CAM_STRIDE * CAM_H, 64 + GRAY_W * GRAY_H,
                                sizeof(pi0_joint_state), sizeof(pi0_action_chunk),
                                sizeof(pi0_action),      sizeof(pi0_node_status)};
    for (int t = 0; t < N_TOPICS; t++) {
        snprintf(ps->name[t], sizeof ps->name[t], "mc%d%s.%s", (int)getpid(), tag, sfx[t]);
        pi0_topic_remove(ps->name[t]);
        pi0_pub_opts po = {types[t], sizes[t], 256, 0};
        CHECK_EQ_INT(pi0_pub_create(ps->name[t], &po, &ps->pub[t]), 0);
    }
    for (int c = 0; c <= N_TOPICS; c++)
        ps->js[c] = open_memstream(&ps->json[c], &ps->json_len[c]);
}

static void pubset_close(pubset *ps) {
    for (int t = 0; t < N_TOPICS; t++) {
        pi0_pub_destroy(ps->pub[t]);
        pi0_topic_remove(ps->name[t]);
    }
    for (int c = 0; c <= N_TOPICS; c++) {
        if (ps->js[c]) fclose(ps->js[c]);
        free(ps->json[c]);
    }
}

static void b64(FILE *f, const uint8_t *p, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v =
            (uint32_t)p[i] << 16 | (i + 1 < n ? p[i + 1] : 0) << 8 | (i + 2 < n ? p[i + 2] : 0);
        fputc(A[v >> 18], f);
        fputc(A[(v >> 12) & 63], f);
        fputc(i + 1 < n ? A[(v >> 6) & 63] : '=', f);
        fputc(i + 2 < n ? A[v & 63] : '=', f);
    }
}

static FILE *entry(pubset *ps, int c, int64_t lo, int64_t hi) {
    FILE *f = ps->js[c];
    fprintf(f, "%s{\"commit_lo\":\"%" PRId64 "\",\"commit_hi\":\"%" PRId64 "\"",
            ps->count[c]++ ? "," : "", lo, hi);
    return f;
}

static void json_doubles(FILE *f, const char *k, const double *v, uint32_t n) {
    fprintf(f, ",\"%s\":[", k);
    for (uint32_t i = 0; i < n; i++)
        fprintf(f, "%s%.17g", i ? "," : "", v[i]);
    fputc(']', f);
}
static void json_floats(FILE *f, const char *k, const float *v, uint32_t n) {
    fprintf(f, ",\"%s\":[", k);
    for (uint32_t i = 0; i < n; i++)
        fprintf(f, "%s%.9g", i ? "," : "", (double)v[i]);
    fputc(']', f);
}

/* Publishes one sample on topic t (content a function of the round) and appends what
 * was published to the expected JSON. */
static void publish_one(pubset *ps, int t) {
    uint64_t i = ps->round;
    pi0_pub *pub = ps->pub[t];
    void *p = pi0_pub_loan(pub);
    int64_t now = pi0__now_ns();
    size_t size = 0;
    switch (t) {
    case T_CAM:
    case T_GRAY: {
        pi0_image *im = p;
        int gray = t == T_GRAY;
        memset(im, 0, sizeof *im);
        im->width = gray ? GRAY_W : CAM_W;
        im->height = gray ? GRAY_H : CAM_H;
        im->stride = gray ? GRAY_W : CAM_STRIDE;
        im->format = gray ? PI0_PIX_GRAY8 : (i & 1 ? PI0_PIX_BGR8 : PI0_PIX_RGB8);
        im->capture_ns = (uint64_t)(now - 3000000);
        im->frame_id = 1000 + i;
        im->data_bytes = im->stride * im->height;
        for (uint32_t k = 0; k < im->data_bytes; k++)
            im->data[k] = (uint8_t)(k * 7 + i * 13 + (k >> 5));
        size = 64 + im->data_bytes;
        break;
    }
    case T_JOINTS: {
        pi0_joint_state *js = p;
        memset(js, 0, sizeof *js);
        js->stamp_ns = (uint64_t)(now - 100000);
        js->n = 7;
        for (int j = 0; j < 7; j++) {
            js->position[j] = sin((double)i * 0.1 + j);
            js->velocity[j] = cos((double)i * 0.3 - j) * 1e-3;
            js->effort[j] = (double)j * 1e7 + (double)i / 3.0;
        }
        size = sizeof *js;
        break;
    }
    case T_CHUNK: {
        pi0_action_chunk *c = p;
        memset(c, 0, 64);
        c->seq = i;
        c->t0_ns = (uint64_t)(now + 1000000);
        c->obs_stamp_ns = (uint64_t)(now - 5000000);
        c->period_ns = 20000000;
        c->horizon = 5;
        c->dim = 3;
        c->preprocess_us = (uint32_t)i + 1;
        c->encode_us = 200;
        c->denoise_us = 300;
        c->postprocess_us = 4;
        c->total_us = 505 + (uint32_t)i;
        for (uint32_t k = 0; k < 15; k++)
            c->actions[k] = (float)i * 0.5f + (float)k * 0.1f - 1.0f / 3.0f;
        size = sizeof *c;
        break;
    }
    case T_ACTION: {
        pi0_action *a = p;
        memset(a, 0, sizeof *a);
        a->due_ns = (uint64_t)now;
        a->chunk_seq = i / 2;
        a->index = (uint32_t)(i % 5);
        a->flags = (uint32_t)(i & 1);
        a->dim = 4;
        for (int k = 0; k < 4; k++)
            a->values[k] = (float)(i * 4 + (uint64_t)k) * 0.25f - 7.125f;
        size = sizeof *a;
        break;
    }
    case T_STATUS: {
        pi0_node_status *s = p;
        memset(s, 0, sizeof *s);
        s->stamp_ns = (uint64_t)now;
        s->state = PI0_NODE_RUNNING;
        s->last_error = -3;
        s->ticks = i * 10;
        s->missed_ticks = i;
        s->chunks = i * 2;
        s->dropped_chunks = 1;
        s->holds = 5;
        s->hold_reason = 9;
        s->tick_late_p50_us = 11;
        s->tick_late_p99_us = 22;
        s->tick_late_max_us = 33;
        s->infer_p50_us = 44;
        s->infer_p99_us = 55;
        s->infer_max_us = 66;
        snprintf(s->message, sizeof s->message, "tick %" PRIu64 " \"ok\" é", i);
        size = sizeof *s;
        break;
    }
    }
    int64_t lo = pi0__now_ns();
    CHECK_EQ_INT(pi0_pub_commit(pub, size), 0);
    int64_t hi = pi0__now_ns();
    const char *topic = ps->name[t];
    if (t == T_CAM || t == T_GRAY) {
        const pi0_image *im = p;
        FILE *f = entry(ps, t, lo, hi);
        fprintf(f,
                ",\"topic\":\"%s\",\"capture_ns\":\"%" PRIu64 "\",\"frame_id\":%" PRIu64
                ",\"height\":%u,\"width\":%u,\"step\":%u,\"encoding\":\"%s\",\"data_b64\":\"",
                topic, im->capture_ns, im->frame_id, im->height, im->width, im->stride,
                im->format == PI0_PIX_GRAY8  ? "mono8"
                : im->format == PI0_PIX_BGR8 ? "bgr8"
                                             : "rgb8");
        b64(f, im->data, im->data_bytes);
        fputs("\"}", f);
    } else if (t == T_JOINTS) {
        const pi0_joint_state *js = p;
        FILE *f = entry(ps, t, lo, hi);
        fprintf(f, ",\"stamp_ns\":\"%" PRIu64 "\"", js->stamp_ns);
        json_doubles(f, "position", js->position, js->n);
        json_doubles(f, "velocity", js->velocity, js->n);
        json_doubles(f, "effort", js->effort, js->n);
        fputc('}', f);
    } else if (t == T_CHUNK) {
        const pi0_action_chunk *c = p;
        static const int chans[2] = {T_CHUNK, N_TOPICS}; /* trajectory, lossless copy */
        for (int k = 0; k < 2; k++) {
            FILE *f = entry(ps, chans[k], lo, hi);
            fprintf(f,
                    ",\"seq\":\"%" PRIu64 "\",\"t0_ns\":\"%" PRIu64
                    "\",\"obs_stamp_ns\":\"%" PRIu64 "\",\"period_ns\":\"%" PRIu64
                    "\",\"horizon\":%u,\"dim\":%u,\"preprocess_us\":%u"
                    ",\"encode_us\":%u,\"denoise_us\":%u,\"postprocess_us\":%u,\"total_us\":%u",
                    c->seq, c->t0_ns, c->obs_stamp_ns, c->period_ns, c->horizon, c->dim,
                    c->preprocess_us, c->encode_us, c->denoise_us, c->postprocess_us,
                    c->total_us);
            json_floats(f, "actions", c->actions, c->horizon * c->dim);
            fputc('}', f);
        }
    } else if (t == T_ACTION) {
        const pi0_action *a = p;
        FILE *f = entry(ps, t, lo, hi);
        fprintf(f,
                ",\"due_ns\":\"%" PRIu64 "\",\"chunk_seq\":\"%" PRIu64
                "\",\"index\":%u,\"flags\":%u",
                a->due_ns, a->chunk_seq, a->index, a->flags);
        json_floats(f, "values", a->values, a->dim);
        fputc('}', f);
    } else {
        const pi0_node_status *s = p;
        FILE *f = entry(ps, t, lo, hi);
        fprintf(f,
                ",\"stamp_ns\":\"%" PRIu64
                "\",\"state\":%u,\"last_error\":%d,\"ticks\":\"%" PRIu64
                "\",\"missed_ticks\":\"%" PRIu64 "\",\"chunks\":\"%" PRIu64
                "\",\"dropped_chunks\":\"%" PRIu64 "\",\"holds\":\"%" PRIu64
                "\",\"hold_reason\":%u,\"tick_late_p50_us\":%u,\"tick_late_p99_us\":%u,"
                "\"tick_late_max_us\":%u,\"infer_p50_us\":%u,\"infer_p99_us\":%u,"
                "\"infer_max_us\":%u,\"message\":\"",
                s->stamp_ns, s->state, s->last_error, s->ticks, s->missed_ticks, s->chunks,
                s->dropped_chunks, s->holds, s->hold_reason, s->tick_late_p50_us,
                s->tick_late_p99_us, s->tick_late_max_us, s->infer_p50_us, s->infer_p99_us,
                s->infer_max_us);
        for (const char *m = s->message; *m; m++)
            fprintf(f, *m == '"' || *m == '\\' ? "\\%c" : "%c", *m);
        fputs("\"}", f);
    }
}

/* One round: an image on each camera, 5 joint states, and one of each other message. */
static void publish_round(pubset *ps) {
    publish_one(ps, T_CAM);
    publish_one(ps, T_GRAY);
    for (int k = 0; k < 5; k++)
        publish_one(ps, T_JOINTS);
    publish_one(ps, T_CHUNK);
    publish_one(ps, T_ACTION);
    publish_one(ps, T_STATUS);
    ps->round++;
}

static void write_expected(pubset *ps, const char *path, int64_t offset) {
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f) return;
    fprintf(f, "{\"clock_offset_ns\":\"%" PRId64 "\",\"channels\":{", offset);
    for (int c = 0; c <= N_TOPICS; c++) {
        fflush(ps->js[c]);
        const char *topic = ps->name[c == N_TOPICS ? T_CHUNK : c];
        fprintf(f, "%s\"/%s%s\":[%.*s]", c ? "," : "", topic, c == N_TOPICS ? "/pi0rt" : "",
                (int)ps->json_len[c], ps->json[c] ? ps->json[c] : "");
    }
    fputs("}}\n", f);
    fclose(f);
}

/* Starts `record -o out` on the set's topics (plus extra options), waits until it has
 * subscribed (its file exists). */
static pid_t start_recorder(pubset *ps, const char *out, const char *log, const char *opt1,
                            const char *opt2) {
    const char *args[16] = {"record", "-o", out};
    int n = 3;
    for (int t = 0; t < N_TOPICS; t++)
        args[n++] = ps->name[t];
    if (opt1) args[n++] = opt1;
    if (opt2) args[n++] = opt2;
    args[n] = NULL;
    unlink(out);
    pid_t pid = spawn_tool(args, log);
    CHECK(pid > 0);
    CHECK_MSG(wait_file(out, 10000) == 0, "recorder did not create %s", out);
    /* subscribed, and schemas, channels and the clock metadata are in the file */
    int ready = 0;
    for (int i = 0; i < 2000 && !ready; i++) {
        char *s = pi0_test_slurp(log, NULL);
        ready = s && strstr(s, "Ctrl-C stops");
        free(s);
        if (!ready) sleep_ms(5);
    }
    CHECK_MSG(ready, "recorder did not start (%s)", log);
    return pid;
}

static int stop_recorder(pid_t pid) {
    sleep_ms(100);
    kill(pid, SIGINT);
    return wait_rc(pid);
}

static void show_log(const char *log) {
    char *s = pi0_test_slurp(log, NULL);
    if (s) fprintf(stderr, "    --- %s ---\n%s", log, s);
    free(s);
}

// ---- tests ----

static void test_crc32_known(void) {
    CHECK_EQ_INT(pi0__crc32(0, "123456789", 9), 0xCBF43926u);
    CHECK_EQ_INT(pi0__crc32(pi0__crc32(0, "1234", 4), "56789", 5), 0xCBF43926u);
    uint8_t z[100] = {0};
    CHECK_EQ_INT(pi0__crc32(0, z, 0), 0);
    CHECK_EQ_INT(pi0__crc32(0, z, 32), 0x190A55ADu); /* 32 zero bytes (zlib's crc32) */
}

/* CDR bytes of a JointState worked out by hand from the CDR rules. */
static void test_cdr_bytes(void) {
    pi0_joint_state js;
    memset(&js, 0, sizeof js);
    js.stamp_ns = 1500000000; /* + offset 0 -> sec 1, nanosec 500000000 */
    js.n = 1;
    js.position[0] = 1.5;
    js.velocity[0] = -2.0;
    js.effort[0] = 0.0;
    pi0__buf b = {0};
    CHECK_EQ_INT(pi0__ros2_encode(PI0__ROS2_JOINT_STATE, &js, sizeof js, 0, "ab", &b), 0);
    static const uint8_t want[] = {
        0x00, 0x01, 0x00, 0x00,                         /* encapsulation CDR_LE */
        0x01, 0x00, 0x00, 0x00, 0x00, 0x65, 0xcd, 0x1d, /* stamp: sec 1, nanosec 5e8 */
        0x03, 0x00, 0x00, 0x00, 'a',  'b',  0x00, 0x00, /* frame_id "ab" + NUL, pad */
        0x00, 0x00, 0x00, 0x00,                         /* name: 0 strings */
        0x01, 0x00, 0x00, 0x00,                         /* position: 1 (offset 24: aligned) */
        0,    0,    0,    0,    0,    0,    0xf8, 0x3f, /* 1.5 */
        0x01, 0x00, 0x00, 0x00, 0,    0,    0,    0,    /* velocity: 1, pad to 8 */
        0,    0,    0,    0,    0,    0,    0x00, 0xc0, /* -2.0 */
        0x01, 0x00, 0x00, 0x00, 0,    0,    0,    0,    /* effort: 1, pad */
        0,    0,    0,    0,    0,    0,    0,    0,    /* 0.0 */
    };
    CHECK_EQ_INT(b.len, sizeof want);
    if (b.len == sizeof want)
        for (size_t i = 0; i < sizeof want; i++)
            CHECK_MSG(b.p[i] == want[i], "byte %zu: 0x%02x, want 0x%02x", i, b.p[i], want[i]);
    /* and back */
    pi0__buf out = {0};
    CHECK_EQ_INT(pi0__ros2_decode(PI0__ROS2_JOINT_STATE, b.p, b.len, 0, &out), 0);
    CHECK_EQ_INT(out.len, sizeof js);
    if (out.len == sizeof js) CHECK(memcmp(out.p, &js, sizeof js) == 0);
    /* every truncation is an error naming a field, never a read past the end */
    for (size_t n = 0; n < b.len; n++)
        CHECK_EQ_INT(pi0__ros2_decode(PI0__ROS2_JOINT_STATE, b.p, n, 0, &out) != 0, 1);
    pi0__buf_free(&b);
    pi0__buf_free(&out);
}

/* Records the topics, then the reference readers compare every message. */
static void record_and_check(const char *tag, const char *opt1, const char *opt2, int rounds) {
    char *dir = pi0_test_tmpdir("pi0mcap");
    char out[512], log[512], exp[512];
    snprintf(out, sizeof out, "%s/rec.mcap", dir);
    snprintf(log, sizeof log, "%s/rec.log", dir);
    snprintf(exp, sizeof exp, "%s/expected.json", dir);
    pubset ps;
    pubset_open(&ps, tag);
    int64_t off = test_clock_offset();
    pid_t pid = start_recorder(&ps, out, log, opt1, opt2);
    for (int r = 0; r < rounds; r++) {
        publish_round(&ps);
        sleep_ms(2);
    }
    int rc = stop_recorder(pid);
    CHECK_EQ_INT(rc, 0);
    if (rc) show_log(log);
    write_expected(&ps, exp, off);
    CHECK_EQ_INT(pi0_test_sh("%s info %s >/dev/null", g_tool, out), 0);
    CHECK_EQ_INT(pi0_test_sh("node tests/mcap/check.mjs verify %s %s", out, exp), 0);
    pubset_close(&ps);
    pi0_test_rmrf(dir);
}

static void test_record_peers_lz4(void) {
    NEED_PEERS();
    record_and_check("a", NULL, NULL, 60);
}

static void test_record_peers_small_chunks(void) {
    NEED_PEERS(); /* many chunks: compressed ones and ones stored because < 1 KiB */
    record_and_check("b", "--chunk-size", "2000", 40);
}

static void test_record_peers_uncompressed(void) {
    NEED_PEERS();
    record_and_check("c", "--compression", "none", 30);
}

/* record -> play -> record: the second file holds the same messages, stamps shifted. */
static void test_roundtrip(void) {
    NEED_PEERS();
    char *dir = pi0_test_tmpdir("pi0mcap");
    char a[512], b[512], log[512], plog[512], exp[512], prefix[64];
    snprintf(a, sizeof a, "%s/a.mcap", dir);
    snprintf(b, sizeof b, "%s/b.mcap", dir);
    snprintf(log, sizeof log, "%s/rec.log", dir);
    snprintf(plog, sizeof plog, "%s/play.log", dir);
    snprintf(exp, sizeof exp, "%s/expected.json", dir);
    snprintf(prefix, sizeof prefix, "rt%d.", (int)getpid());
    pubset ps;
    pubset_open(&ps, "r");
    pid_t pid = start_recorder(&ps, a, log, "--chunk-size", "20000");
    for (int r = 0; r < 30; r++) {
        publish_round(&ps);
        sleep_ms(3);
    }
    CHECK_EQ_INT(stop_recorder(pid), 0);
    /* play into prefixed topics; the publishers exist before the delay ends */
    const char *pargs[] = {"play", a, "--prefix", prefix, "--delay", "2", NULL};
    pid_t player = spawn_tool(pargs, plog);
    pubset pb;
    memset(&pb, 0, sizeof pb);
    for (int t = 0; t < N_TOPICS; t++) {
        snprintf(pb.name[t], sizeof pb.name[t], "%s%s", prefix, ps.name[t]);
        pi0_sub *s = NULL;
        pi0_sub_opts so = {NULL, -1};
        for (int i = 0; i < 400 && pi0_sub_open(pb.name[t], &so, &s); i++)
            sleep_ms(5);
        CHECK_MSG(s != NULL, "play did not create %s", pb.name[t]);
        pi0_sub_close(s);
    }
    pid_t rec2 = start_recorder(&pb, b, log, NULL, NULL);
    int prc = wait_rc(player);
    CHECK_EQ_INT(prc, 0);
    if (prc) show_log(plog);
    CHECK_EQ_INT(stop_recorder(rec2), 0);
    /* file B's channels carry the prefixed names: the checker compares under the originals */
    CHECK_EQ_INT(pi0_test_sh("node tests/mcap/check.mjs roundtrip %s %s %s", a, b, prefix), 0);
    for (int t = 0; t < N_TOPICS; t++)
        pi0_topic_remove(pb.name[t]);
    pubset_close(&ps);
    pi0_test_rmrf(dir);
}

/* A file written by another MCAP writer (@mcap/core) with the ROS 2 types plays into
 * topics: every image and joint state arrives with its values, stamps re-timed. */
static void test_play_foreign(void) {
    NEED_PEERS();
    char *dir = pi0_test_tmpdir("pi0mcap");
    char file[512], log[512], prefix[64], cam[128], joints[128];
    snprintf(file, sizeof file, "%s/foreign.mcap", dir);
    snprintf(log, sizeof log, "%s/play.log", dir);
    snprintf(prefix, sizeof prefix, "fp%d.", (int)getpid());
    snprintf(cam, sizeof cam, "%sforeign.cam", prefix);
    snprintf(joints, sizeof joints, "%sforeign.joints", prefix);
    CHECK_EQ_INT(pi0_test_sh("node tests/mcap/check.mjs write-foreign %s", file), 0);
    const char *args[] = {"play", file, "--prefix", prefix, "--delay", "1", NULL};
    pid_t pid = spawn_tool(args, log);
    pi0_sub *sc = NULL, *sj = NULL;
    pi0_sub_opts oc = {PI0_TYPE_IMAGE, -1}, oj = {PI0_TYPE_JOINT_STATE, -1};
    for (int i = 0; i < 400 && (!sc || !sj); i++) {
        if (!sc) pi0_sub_open(cam, &oc, &sc);
        if (!sj) pi0_sub_open(joints, &oj, &sj);
        if (!sc || !sj) sleep_ms(5);
    }
    CHECK(sc && sj);
    int rc = wait_rc(pid);
    CHECK_EQ_INT(rc, 0);
    if (rc) show_log(log);
    if (!sc || !sj) return;
    static uint8_t buf[64 + 24];
    pi0_sample s;
    int64_t first = 0;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ_INT(pi0_sub_next_copy(sc, buf, sizeof buf, &s), 0);
        const pi0_image *im = (const pi0_image *)buf;
        CHECK_EQ_INT(im->width, 4);
        CHECK_EQ_INT(im->height, 2);
        CHECK_EQ_INT(im->stride, 12);
        CHECK_EQ_INT(im->format, PI0_PIX_RGB8);
        CHECK_EQ_INT(im->frame_id, i);
        if (i == 0) first = (int64_t)im->capture_ns;
        CHECK_EQ_INT((int64_t)im->capture_ns - first, (int64_t)i * 1000000000);
        for (int k = 0; k < 24; k++)
            CHECK_EQ_INT(im->data[k], (3 * i + k) & 255);
        pi0_joint_state js;
        CHECK_EQ_INT(pi0_sub_next_copy(sj, &js, sizeof js, &s), 0);
        CHECK_EQ_INT(js.n, 2);
        CHECK(js.position[0] == i && js.position[1] == i + 0.5);
        CHECK(js.velocity[0] == -i && js.velocity[1] == 2);
        CHECK(js.effort[0] == 0);
        CHECK_EQ_INT((int64_t)js.stamp_ns - first, (int64_t)i * 1000000000 - 6);
    }
    CHECK_EQ_INT(pi0_sub_next_copy(sc, buf, sizeof buf, &s), PI0_EAGAIN);
    pi0_sub_close(sc);
    pi0_sub_close(sj);
    pi0_topic_remove(cam);
    pi0_topic_remove(joints);
    pi0_test_rmrf(dir);
}

/* SIGKILL the recorder at random points; --recover always gives a file the reference
 * readers accept, holding exactly the messages of every intact chunk. */
static void test_kill_recover(void) {
    NEED_PEERS();
    const char *env = getenv("PI0_MCAP_KILLS");
    int kills = env ? atoi(env) : 30;
    char *dir = pi0_test_tmpdir("pi0mcap");
    char list[8192] = "";
    size_t used = 0;
    uint64_t rng = 0x2545F4914F6CDD1Dull;
    int recovered_some = 0;
    for (int k = 0; k < kills; k++) {
        char broken[512], fixed[512], log[512], exp[512], tag[16];
        snprintf(broken, sizeof broken, "%s/broken%d.mcap", dir, k);
        snprintf(fixed, sizeof fixed, "%s/fixed%d.mcap", dir, k);
        snprintf(log, sizeof log, "%s/rec%d.log", dir, k);
        snprintf(exp, sizeof exp, "%s/exp%d.json", dir, k);
        snprintf(tag, sizeof tag, "k%d", k);
        pubset ps;
        pubset_open(&ps, tag);
        int64_t off = test_clock_offset();
        pid_t pid = start_recorder(&ps, broken, log, "--chunk-size", k % 3 ? "4096" : "30000");
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int64_t kill_at = pi0__now_ns() + 2000000 + (int64_t)(rng % 300000000u); /* 2..302 ms */
        while (pi0__now_ns() < kill_at) {
            publish_round(&ps);
            sleep_ms(1);
        }
        kill(pid, SIGKILL);
        CHECK_EQ_INT(wait_rc(pid), 128 + SIGKILL);
        write_expected(&ps, exp, off);
        pubset_close(&ps);
        /* info says it is damaged (exit 1); recover succeeds */
        CHECK_EQ_INT(pi0_test_sh_quiet("%s info %s >/dev/null 2>&1", g_tool, broken), 1);
        CHECK_EQ_INT(
            pi0_test_sh("%s record --recover %s -o %s 2>/dev/null", g_tool, broken, fixed), 0);
        pi0__mcap_reader *r;
        pi0__mcap_scan_info info;
        if (pi0__mcap_open(fixed, &r) == 0) {
            CHECK_EQ_INT(pi0__mcap_scan(r, NULL, NULL, &info), 0);
            recovered_some += info.messages > 0;
            pi0__mcap_close(r);
        } else {
            CHECK_MSG(0, "%s: %s", fixed, pi0_last_error());
        }
        used +=
            (size_t)snprintf(list + used, sizeof list - used, " %s %s %s", broken, fixed, exp);
        CHECK(used < sizeof list);
    }
    CHECK_MSG(recovered_some >= kills / 2, "only %d of %d kills left intact chunks",
              recovered_some, kills);
    CHECK_EQ_INT(pi0_test_sh("node tests/mcap/check.mjs recovered%s", list), 0);
    pi0_test_rmrf(dir);
}

// ---- the reader against damaged and hostile files ----

/* A valid file built in-process: every kind, several chunks (compressed and stored). */
static void write_seed(const char *path) {
    pi0__mcap_writer_opts wo = {3000, 1, "test", 0};
    pi0__mcap_writer *w;
    CHECK_EQ_INT(pi0__mcap_writer_create(path, &wo, &w), 0);
    if (!w) return;
    uint16_t sid[PI0__ROS2_KINDS], cid[PI0__ROS2_KINDS];
    const char *meta[] = {"offered_qos_profiles", "", "pi0rt.topic", "seed"};
    const char *clk[] = {"monotonic_to_unix_offset_ns", "1000000000000"};
    CHECK_EQ_INT(pi0__mcap_add_metadata(w, "pi0rt.clock", clk, 1), 0);
    for (int k = 1; k < PI0__ROS2_KINDS; k++) {
        char topic[32];
        snprintf(topic, sizeof topic, "/seed%d", k);
        CHECK_EQ_INT(pi0__mcap_add_schema(w, pi0__ros2_name(k), "ros2msg", pi0__ros2_schema(k),
                                          (uint32_t)strlen(pi0__ros2_schema(k)), &sid[k]),
                     0);
        CHECK_EQ_INT(pi0__mcap_add_channel(w, sid[k], topic, "cdr", meta, 1, &cid[k]), 0);
    }
    static uint8_t payload[64 + 3 * 20 * 10];
    pi0__buf cdr = {0};
    for (int i = 0; i < 40; i++) {
        pi0_image *im = (pi0_image *)payload;
        memset(payload, 0, sizeof payload);
        *im = (pi0_image){20, 10, 60, PI0_PIX_RGB8, 5000, (uint64_t)i, 600, {0}};
        for (int k = 0; k < 600; k++)
            im->data[k] = (uint8_t)(i * k);
        pi0_joint_state js = {7000, 3, 0, {1, 2, 3}, {4, 5, 6}, {7, 8, 9}};
        static pi0_action_chunk ch;
        ch = (pi0_action_chunk){.seq = (uint64_t)i,
                                .t0_ns = 9,
                                .period_ns = 10,
                                .horizon = 2,
                                .dim = 2,
                                .actions = {1, 2, 3, 4}};
        pi0_action a = {.due_ns = 3, .dim = 2, .values = {5, 6}};
        pi0_node_status s = {.stamp_ns = 4, .state = 2, .message = "hi"};
        const void *src[PI0__ROS2_KINDS] = {NULL, payload, &js, &ch, &ch, &a, &s};
        size_t n[PI0__ROS2_KINDS] = {0,         sizeof payload, sizeof js, sizeof ch,
                                     sizeof ch, sizeof a,       sizeof s};
        for (int k = 1; k < PI0__ROS2_KINDS; k++) {
            CHECK_EQ_INT(pi0__ros2_encode(k, src[k], n[k], 100, "f", &cdr), 0);
            CHECK_EQ_INT(pi0__mcap_write(w, cid[k], (uint32_t)i, 1000 + (uint64_t)i * 10,
                                         1000 + (uint64_t)i * 10, cdr.p, cdr.len),
                         0);
        }
    }
    pi0__buf_free(&cdr);
    pi0__mcap_stats st;
    CHECK_EQ_INT(pi0__mcap_writer_close(w, 1, &st), 0);
    CHECK(st.chunks >= 4);
}

static int decode_all(const pi0__mcap_message *m, void *ctx) {
    pi0__buf *out = ctx;
    int kind = m->schema ? pi0__ros2_kind_of(m->schema->name) : 0;
    if (kind) pi0__ros2_decode(kind, m->data, m->len, m->sequence, out);
    return 0;
}

static void test_reader_valid(void) {
    char *dir = pi0_test_tmpdir("pi0mcap");
    char seed[512];
    snprintf(seed, sizeof seed, "%s/seed.mcap", dir);
    write_seed(seed);
    pi0__mcap_reader *r;
    CHECK_EQ_INT(pi0__mcap_open(seed, &r), 0);
    pi0__mcap_scan_info info;
    pi0__buf out = {0};
    CHECK_EQ_INT(pi0__mcap_scan(r, decode_all, &out, &info), 0);
    CHECK_EQ_INT(info.footer_ok, 1);
    CHECK_EQ_INT(info.messages, 40 * 6);
    CHECK_EQ_INT(info.n_channels, 6);
    CHECK_EQ_INT(info.clock_offset_ns, 1000000000000ll);
    pi0__buf_free(&out);
    pi0__mcap_close(r);
    if (have_peers()) { /* the peers read it too (no expected values: just readable) */
        CHECK_EQ_INT(pi0_test_sh("node -e 'process.exit(0)' && cd tests/mcap && node "
                                 "--input-type=module -e \"import {McapStreamReader} from "
                                 "'@mcap/core'; import {loadDecompressHandlers} from "
                                 "'@mcap/support'; import fs from 'fs'; const r=new "
                                 "McapStreamReader({decompressHandlers: await "
                                 "loadDecompressHandlers()}); r.append(fs.readFileSync('%s')); "
                                 "while (r.nextRecord()); if (!r.done()) process.exit(1);\"",
                                 seed),
                     0);
    }
    /* truncated at every record boundary and inside records: errors naming the offset */
    size_t len;
    uint8_t *data = pi0_test_slurp(seed, &len);
    char cut[512];
    snprintf(cut, sizeof cut, "%s/cut.mcap", dir);
    for (size_t n = 0; n < len; n += 97) {
        FILE *f = fopen(cut, "wb");
        fwrite(data, 1, n, f);
        fclose(f);
        if (pi0__mcap_open(cut, &r)) continue;
        int st = pi0__mcap_scan(r, NULL, NULL, &info);
        CHECK_EQ_INT(st, PI0_EFORMAT);
        CHECK_MSG(strstr(pi0_last_error(), "offset ") != NULL, "%s", pi0_last_error());
        pi0__mcap_close(r);
    }
    /* a first record that is not a Header (a use-after-free libFuzzer once found here) */
    FILE *f = fopen(cut, "wb");
    uint8_t save = data[8];
    data[8] = PI0__MCAP_OP_FOOTER;
    fwrite(data, 1, len, f);
    fclose(f);
    data[8] = save;
    CHECK_EQ_INT(pi0__mcap_open(cut, &r), PI0_EFORMAT);
    CHECK_MSG(strstr(pi0_last_error(), "offset 8: first record is 0x02") != NULL, "%s",
              pi0_last_error());
    CHECK_EQ_INT(pi0_test_sh_quiet("%s info %s >/dev/null 2>&1", g_tool, cut), 1);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s play %s --rate 1000 2>/dev/null", g_tool, cut), 1);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s play /nonexistent.mcap 2>/dev/null", g_tool), 1);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s record 2>/dev/null", g_tool), 2);
    CHECK_EQ_INT(
        pi0_test_sh_quiet("%s record -o x.mcap --compression zstd a 2>/dev/null", g_tool), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s record -o %s/x.mcap nosuchtopic%d 2>/dev/null", g_tool,
                                   dir, (int)getpid()),
                 1);
    free(data);
    pi0_test_rmrf(dir);
}

/* Mutates the CDR of a valid message of a random kind and decodes it: the chunk CRCs stop
 * most file mutations before the decoders, so they get their own. */
static void fuzz_cdr(uint64_t *x, pi0__buf *out) {
    static uint8_t img[64 + 12];
    pi0_image *im = (pi0_image *)img;
    *im = (pi0_image){2, 2, 3, PI0_PIX_GRAY8, 5, 6, 6, {0}};
    pi0_joint_state js = {7000, 2, 0, {1, 2}, {4, 5}, {7, 8}};
    static pi0_action_chunk ch;
    ch = (pi0_action_chunk){.seq = 1, .period_ns = 10, .horizon = 2, .dim = 2};
    pi0_action a = {.due_ns = 3, .dim = 2, .values = {5, 6}};
    pi0_node_status s = {.stamp_ns = 4, .state = 2, .message = "hi"};
    const void *src[PI0__ROS2_KINDS] = {NULL, img, &js, &ch, &ch, &a, &s};
    size_t n[PI0__ROS2_KINDS] = {0,         sizeof img, sizeof js, sizeof ch,
                                 sizeof ch, sizeof a,   sizeof s};
    *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
    int kind = 1 + (int)(*x % (PI0__ROS2_KINDS - 1));
    pi0__buf b = {0};
    CHECK_EQ_INT(pi0__ros2_encode(kind, src[kind], n[kind], 0, "f", &b), 0);
    size_t len = b.len;
    for (int k = 0; k < 3 && len; k++) {
        *x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
        size_t at = (size_t)(*x >> 20) % len;
        if (*x % 3 == 0)
            len = at;
        else if (*x % 3 == 1 && at + 4 <= len) {
            uint32_t v = (uint32_t)(*x >> 32) % 300;
            memcpy(b.p + at, &v, 4);
        } else
            b.p[at] ^= (uint8_t)(*x >> 8);
    }
    /* decode exactly len bytes from their own allocation so ASan sees any overread */
    uint8_t *exact = malloc(len ? len : 1);
    memcpy(exact, b.p, len);
    pi0__ros2_decode(kind, exact, len, 0, out);
    free(exact);
    pi0__buf_free(&b);
}

/* Deterministic mutation loop: bit flips, byte overwrites, hostile lengths, truncation
 * and spliced copies of a valid file, each run through scan + every CDR decoder (what
 * play and info do) and --recover's rebuild, whose output must always be intact. */
static void test_reader_fuzz(void) {
    const char *env = getenv("PI0_MCAP_FUZZ");
    int iters = env ? atoi(env) : 3000;
    char *dir = pi0_test_tmpdir("pi0mcap");
    char seed[512], mut[512], rec[512];
    snprintf(seed, sizeof seed, "%s/seed.mcap", dir);
    snprintf(mut, sizeof mut, "%s/mut.mcap", dir);
    snprintf(rec, sizeof rec, "%s/rec.mcap", dir);
    write_seed(seed);
    size_t len;
    uint8_t *data = pi0_test_slurp(seed, &len);
    CHECK(data != NULL);
    if (!data) return;
    uint8_t *m = malloc(len * 2 + 64);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    int intact = 0, damaged = 0, rebuilt = 0;
    pi0__buf out = {0};
    for (int it = 0; it < iters; it++) {
        memcpy(m, data, len);
        size_t n = len;
        int muts = 1 + (int)(x % 4);
        for (int k = 0; k < muts; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x >> 16) % n;
            if (x >> 60 == 0) at %= 32 < n ? 32 : n; /* 1 in 16 hits magic and Header */
            switch ((x >> 8) % 6) {
            case 0:
                m[at] ^= (uint8_t)(1u << (x % 8));
                break;
            case 1:
                m[at] = (uint8_t)(x >> 40);
                break;
            case 2: { /* a hostile 64-bit length or count */
                uint64_t v = (x >> 3) % 3 == 0   ? UINT64_MAX - (x & 0xff)
                             : (x >> 3) % 3 == 1 ? (x >> 20) & 0xffffffffu
                                                 : (x >> 30) % 64;
                if (at + 8 <= n) memcpy(m + at, &v, 8);
                break;
            }
            case 3:
                n = at + 1;
                break;
            case 4: { /* splice a copy of another region here */
                size_t from = (size_t)(x >> 24) % len, k2 = 1 + (size_t)(x >> 50) % 64;
                if (from + k2 <= len && at + k2 <= n) memcpy(m + at, data + from, k2);
                break;
            }
            default: { /* a 32-bit length inside a record */
                uint32_t v = (uint32_t)(x >> 32);
                if (at + 4 <= n) memcpy(m + at, &v, 4);
                break;
            }
            }
        }
        FILE *f = fopen(mut, "wb");
        fwrite(m, 1, n, f);
        fclose(f);
        pi0__mcap_reader *r;
        if (pi0__mcap_open(mut, &r)) continue;
        pi0__mcap_scan_info info;
        int st = pi0__mcap_scan(r, decode_all, &out, &info);
        if (st == 0)
            intact++;
        else
            damaged++;
        pi0__mcap_close(r);
        fuzz_cdr(&x, &out);
        if (it % 20 == 0) { /* recover: the rebuilt file is always complete and intact */
            int rc =
                pi0_test_sh_quiet("%s record --recover %s -o %s 2>/dev/null", g_tool, mut, rec);
            CHECK_MSG(rc == 0 || rc == 1, "recover exited %d on mutation %d", rc, it);
            if (rc == 0 && pi0__mcap_open(rec, &r) == 0) {
                CHECK_MSG(pi0__mcap_scan(r, NULL, NULL, &info) == 0, "mutation %d: %s", it,
                          pi0_last_error());
                rebuilt++;
                pi0__mcap_close(r);
            }
        }
    }
    fprintf(stderr, "  fuzz: %d mutations: %d still intact, %d damaged, %d rebuilt\n", iters,
            intact, damaged, rebuilt);
    CHECK(damaged > iters / 2);
    CHECK(rebuilt > 0);
    pi0__buf_free(&out);
    free(m);
    free(data);
    pi0_test_rmrf(dir);
}

int main(int argc, char **argv) {
    snprintf(g_tool, sizeof g_tool, "%s/../pi0rt-shm", pi0_test_exe_dir());
    static const pi0_test tests[] = {
        TEST(test_crc32_known),
        TEST(test_cdr_bytes),
        TEST(test_reader_valid),
        TEST(test_reader_fuzz),
        TEST(test_record_peers_lz4),
        TEST(test_record_peers_small_chunks),
        TEST(test_record_peers_uncompressed),
        TEST(test_roundtrip),
        TEST(test_play_foreign),
        TEST(test_kill_recover),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
