/* test_calib.c — robot files and transforms: the ready files against an independent numpy
 * reference of openpi's transforms (tests/calib/calib_ref.py), a table of broken files and
 * their `file:line: key: reason` messages, random mutations of the ready files (also run
 * under AddressSanitizer by tests/calib/asan-suite), allocation-free transforms (a counting
 * malloc), in-place and overlapping buffers, NaN handling, the safety clamp, threads, and
 * the pi0rt-calib tool. Run from the repository root (make test does). */
#include <pthread.h>

#include "harness.h"
#include "calib/pi0_calib.h"

static const char *const READY[] = {"aloha", "droid", "libero", "sim"};
#define N_READY 4

static char g_tool[4096]; /* pi0rt-calib next to this binary's build dir */

static pi0_calib *load_ready(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "calib/robots/%s.ini", name);
    pi0_calib *c = NULL;
    int rc = pi0_calib_load(path, &c);
    if (rc) fprintf(stderr, "  %s: %s\n", path, pi0_last_error());
    CHECK_EQ_INT(rc, 0);
    return c;
}

// ---- counting allocator ------------------------------------------------------------------

/* The transforms must not allocate: malloc and friends are replaced here (glibc allows it)
 * and count calls while g_count_allocs is set. Sanitizers bring their own allocator, so
 * the check is compiled only into plain builds. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNTING_MALLOC 0
#else
#define COUNTING_MALLOC 1
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static volatile int g_count_allocs;
static volatile long g_allocs;
void *malloc(size_t n) {
    if (g_count_allocs) g_allocs++;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    if (g_count_allocs) g_allocs++;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    if (g_count_allocs) g_allocs++;
    return __libc_realloc(p, n);
}
void free(void *p) {
    __libc_free(p);
}
#endif

// ---- ready files -------------------------------------------------------------------------

static void test_ready_files(void) {
    pi0_calib *c = load_ready("aloha");
    if (c) {
        CHECK_EQ_INT(pi0_calib_state_dim(c), 14);
        CHECK_EQ_INT(pi0_calib_raw_dim(c), 14);
        CHECK_EQ_INT(pi0_calib_action_dim(c), 14);
        CHECK_EQ_INT(pi0_calib_out_dim(c), 14);
        CHECK_NEAR(pi0_calib_control_hz(c), 50, 0);
        CHECK(pi0_calib_prompt(c) == NULL);
        CHECK_EQ_STR(pi0_calib_camera_get(c, PI0_CALIB_BASE)->topic, "cam_high");
        CHECK_EQ_STR(pi0_calib_camera_get(c, PI0_CALIB_LEFT_WRIST)->topic, "cam_left_wrist");
        CHECK_EQ_STR(pi0_calib_camera_get(c, PI0_CALIB_RIGHT_WRIST)->topic, "cam_right_wrist");
        CHECK_EQ_INT(pi0_calib_camera_get(c, PI0_CALIB_BASE)->rotate180, 0);
        CHECK(pi0_calib_camera_get(c, 3) == NULL && pi0_calib_camera_get(c, -1) == NULL);
        CHECK(isnan(pi0_calib_limits(c)[0].lo) && isnan(pi0_calib_limits(c)[13].max_step));
        pi0_calib_destroy(c);
    }
    if ((c = load_ready("droid"))) {
        CHECK_EQ_INT(pi0_calib_state_dim(c), 8);
        CHECK_EQ_INT(pi0_calib_out_dim(c), 8);
        CHECK_NEAR(pi0_calib_control_hz(c), 15, 0);
        CHECK_EQ_STR(pi0_calib_camera_get(c, PI0_CALIB_RIGHT_WRIST)->topic, "");
        pi0_calib_destroy(c);
    }
    if ((c = load_ready("libero"))) {
        CHECK_EQ_INT(pi0_calib_state_dim(c), 8);
        CHECK_EQ_INT(pi0_calib_out_dim(c), 7);
        CHECK_EQ_INT(pi0_calib_action_dim(c), 7);
        CHECK_EQ_INT(pi0_calib_camera_get(c, PI0_CALIB_BASE)->rotate180, 1);
        CHECK_EQ_INT(pi0_calib_camera_get(c, PI0_CALIB_LEFT_WRIST)->rotate180, 1);
        CHECK_EQ_STR(pi0_calib_camera_get(c, PI0_CALIB_RIGHT_WRIST)->topic, "");
        pi0_calib_destroy(c);
    }
    if ((c = load_ready("sim"))) {
        CHECK_EQ_INT(pi0_calib_out_dim(c), 14);
        CHECK_EQ_STR(pi0_calib_prompt(c), "pick up the cube");
        const pi0_calib_limit *l = pi0_calib_limits(c);
        CHECK_NEAR(l[0].lo, -3.14, 0);
        CHECK_NEAR(l[6].hi, 1, 0);
        CHECK_NEAR(l[13].max_step, 0.1, 0);
        pi0_calib_destroy(c);
    }
}

/* Every key line of a ready file is documented: a comment right above it or after it. */
static void test_ready_files_documented(void) {
    for (int r = 0; r < N_READY; r++) {
        char path[256];
        snprintf(path, sizeof path, "calib/robots/%s.ini", READY[r]);
        char *text = pi0_test_slurp(path, NULL);
        CHECK(text != NULL);
        if (!text) continue;
        int line = 0, prev_comment = 0, keys = 0;
        for (char *l = strtok(text, "\n"); l; l = strtok(NULL, "\n")) {
            line++;
            int comment = l[0] == ';' || l[0] == '#';
            if (!comment && l[0] != '[' && strchr(l, '=')) {
                keys++;
                CHECK_MSG(prev_comment || strstr(l, " ;"), "%s: '%s' has no comment", path, l);
            }
            prev_comment = comment;
        }
        CHECK(keys >= 8);
        free(text);
    }
}

/* The ready files against tests/calib/calib_ref.py (openpi's formulas in numpy). */
static void test_numpy_reference(void) {
    if (access("/usr/bin/python3", X_OK) != 0) SKIP("no /usr/bin/python3");
    if (pi0_test_sh_quiet("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
        SKIP("no numpy for /usr/bin/python3");
    char *tmp = pi0_test_tmpdir("calib_ref");
    CHECK_EQ_INT(pi0_test_sh("/usr/bin/python3 tests/calib/calib_ref.py %s %s", g_tool, tmp),
                 0);
    pi0_test_rmrf(tmp);
}

/* The reference notices a file one constant off (so the comparison above can fail). */
static void test_numpy_reference_catches_a_wrong_file(void) {
    if (access("/usr/bin/python3", X_OK) != 0) SKIP("no /usr/bin/python3");
    if (pi0_test_sh_quiet("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0)
        SKIP("no numpy for /usr/bin/python3");
    char *tmp = pi0_test_tmpdir("calib_ref_bad");
    CHECK_EQ_INT(
        pi0_test_sh("mkdir -p %s/robots && cp calib/robots/*.ini %s/robots/ && "
                    "sed -i 's/^angle_hi = 1.6296/angle_hi = 1.6297/' %s/robots/aloha.ini",
                    tmp, tmp, tmp),
        0);
    CHECK_EQ_INT(pi0_test_sh_quiet("/usr/bin/python3 tests/calib/calib_ref.py %s %s %s/robots "
                                   ">%s/log 2>&1",
                                   g_tool, tmp, tmp, tmp),
                 1);
    CHECK_EQ_INT(pi0_test_sh("grep -q 'FAIL aloha:' %s/log", tmp), 0);
    pi0_test_rmrf(tmp);
}

// ---- broken files ------------------------------------------------------------------------

/* A valid file using every feature; the table below breaks it one line at a time. */
static const char *const BASE[] = {
    "[robot]",                         //  1
    "name = t",                        //  2
    "control_hz = 50",                 //  3
    "[state]",                         //  4
    "dim = 3",                         //  5
    "index = 0, 1, 2",                 //  6
    "sign = 1, -1, 1",                 //  7
    "map.2 = g",                       //  8
    "[actions]",                       //  9
    "out_dims = 3",                    // 10
    "delta = 2, -1",                   // 11
    "sign = 1, 1, -1",                 // 12
    "map.2 = h",                       // 13
    "clip = -1, 1",                    // 14
    "binarize.2 = 0.5",                // 15
    "[limits]",                        // 16
    "lo = -1, -, -2",                  // 17
    "hi = 1, -, 2",                    // 18
    "max_step = 0.1, 0.1, -",          // 19
    "[cameras]",                       // 20
    "base_0_rgb = cam0",               // 21
    "left_wrist_0_rgb = none",         // 22
    "right_wrist_0_rgb = cam2",        // 23
    "base_0_rgb.rotate180 = yes",      // 24
    "[map.g]",                         // 25
    "type = aloha_gripper_to_angular", // 26
    "linear_closed = 0.01844",         // 27
    "linear_open = 0.058",             // 28
    "horn_radius = 0.022",             // 29
    "arm_length = 0.036",              // 30
    "angle_lo = 0.5476",               // 31
    "angle_hi = 1.6296",               // 32
    "[map.h]",                         // 33
    "type = linear",                   // 34
    "scale = 2",                       // 35
    "offset = 0.5",                    // 36
};
#define BASE_LINES ((int)(sizeof BASE / sizeof BASE[0]))

/* BASE with line `line` replaced by `text` (NULL: deleted; may hold several lines), and
 * line `line2` by `text2` when line2 > 0. */
static size_t edit_base2(char *buf, size_t cap, int line, const char *text, int line2,
                         const char *text2) {
    size_t o = 0;
    for (int i = 1; i <= BASE_LINES; i++) {
        const char *l = i == line ? text : i == line2 ? text2 : BASE[i - 1];
        if (l) o += (size_t)snprintf(buf + o, cap - o, "%s\n", l);
    }
    return o;
}

static size_t edit_base(char *buf, size_t cap, int line, const char *text) {
    return edit_base2(buf, cap, line, text, 0, NULL);
}

typedef struct broken {
    int line;         /* line of BASE replaced */
    const char *text; /* its replacement (NULL: deleted) */
    const char *want; /* the message starts with this ... */
    const char *why;  /* ... and contains this */
    int line2;        /* optional second edit */
    const char *text2;
} broken;

#define B(line, text, want, why)                                                               \
    { line, text, want, why, 0, NULL }
#define B2(line, text, want, why, line2, text2)                                                \
    { line, text, want, why, line2, text2 }
#define LONG_TOPIC "c123456789012345678901234567890123456789012345678901234567890123"

static const broken BROKEN[] = {
    /* structure */
    B(1, "name = t", "t.ini:1: name: ", "outside any section"),
    B(16, "[limitz]", "t.ini:16: [limitz]: ", "unknown section"),
    B(16, "[robot]", "t.ini:16: [robot]: ", "given twice (first at line 1)"),
    B(5, "dim 3", "t.ini:5: 'dim 3': ", "syntax error"),
    B(4, "[state", "t.ini:4: '[state': ", "syntax error"),
    B(3, "control_hz = 50\nname = u", "t.ini:4: robot.name: ", "given twice (first at line 2)"),
    B(3, "control_hz = 50\n  60", "t.ini:3: robot.control_hz: ", "'50 60' is not a rate"),
    B(6, "index = 0, 1\n  2", "t.ini:6: state.index: ", "item 2 is not a number"),
    B(6, "index =", "t.ini:6: state.index: ", "empty value"),
    B(25, "[map.]", "t.ini:25: [map.]: ", "map name empty"),
    B(25, "[map.g23456789012345678901234567890123]", "t.ini:25: [map.g2345", "longer than 31"),
    /* [robot] */
    B(2, "nmae = t", "t.ini:2: robot.nmae: ", "unknown key"),
    B(3, "control_hz = 0", "t.ini:3: robot.control_hz: ", "not a rate"),
    B(3, "control_hz = -50", "t.ini:3: robot.control_hz: ", "not a rate"),
    B(3, "control_hz = 50Hz", "t.ini:3: robot.control_hz: ", "not a rate"),
    B(3, "control_hz = inf", "t.ini:3: robot.control_hz: ", "not a rate"),
    B(3, "control_hz = nan", "t.ini:3: robot.control_hz: ", "not a rate"),
    B(3, "control_hz = 1e6", "t.ini:3: robot.control_hz: ", "not a rate"),
    B(2, "name = n234567890123456789012345678901234567890123456789012345678901234",
      "t.ini:2: robot.name: ", "too long"),
    B(3, "prompt = ", "t.ini:3: robot.prompt: ", "empty value"),
    /* [state] */
    B(5, NULL, "t.ini:4: state.dim: ", "missing"),
    B(5, "dim = 0", "t.ini:5: state.dim: ", "not a dim count"),
    B(5, "dim = 65", "t.ini:5: state.dim: ", "not a dim count"),
    B(5, "dim = 3.5", "t.ini:5: state.dim: ", "not a dim count"),
    B(5, "dim = x", "t.ini:5: state.dim: ", "not a dim count"),
    B(5, "dim = 2", "t.ini:6: state.index: ", "3 items, more than state.dim (2)"),
    B(6, NULL, "t.ini:4: state.index: ", "missing"),
    B(6, "index = 0, x, 2", "t.ini:6: state.index: ", "item 2 is not a number"),
    B(6, "index = 0,, 2", "t.ini:6: state.index: ", "item 2 is not a number"),
    B(6, "index = 0, 64, 2", "t.ini:6: state.index: ", "item 2 (64) is not a joint index"),
    B(6, "index = 0, -1, 2", "t.ini:6: state.index: ", "item 2 (-1) is not a joint index"),
    B(6, "index = 0, 1.5, 2", "t.ini:6: state.index: ", "item 2 (1.5) is not a joint index"),
    B(7, NULL, "t.ini:4: state.sign: ", "missing"),
    B(7, "sign = 1, 2, 1", "t.ini:7: state.sign: ", "item 2 (2) is not 1 or -1"),
    B(7, "sign = 1, -1", "t.ini:7: state.sign: ", "2 items, state.index has 3"),
    B(7, "sign = 1, -1, 1, 1", "t.ini:7: state.sign: ", "4 items, state.index has 3"),
    B(8, "map.3 = g", "t.ini:8: state.map.3: ", "dim 3 out of range"),
    B(8, "map.99 = g", "t.ini:8: state.map.99: ", "below 64"),
    B(8, "map.x = g", "t.ini:8: state.map.x: ", "expected map.DIM"),
    B(8, "map. = g", "t.ini:8: state.map.: ", "expected map.DIM"),
    B(8, "map.2 = nosuch", "t.ini:8: state.map.2: ", "no section [map.nosuch]"),
    B(8, "mapp.2 = g", "t.ini:8: state.mapp.2: ", "unknown key"),
    /* [actions] */
    B(10, NULL, "t.ini:9: actions.out_dims: ", "missing"),
    B(10, "out_dims = 0", "t.ini:10: actions.out_dims: ", "not a dim count"),
    B(10, "out_dims = 65", "t.ini:10: actions.out_dims: ", "not a dim count"),
    B(10, "out_dims = 2",
      "t.ini:11: actions.delta: ", "mask covers 3 dims, actions.out_dims is 2"),
    B(11, NULL, "t.ini:9: actions.delta: ", "missing"),
    B(11, "delta = 2, -2", "t.ini:11: actions.delta: ", "mask covers 4 dims"),
    B(11, "delta = 2", "t.ini:11: actions.delta: ", "mask covers 2 dims"),
    B(11, "delta = 2, 0, -1", "t.ini:11: actions.delta: ", "item 2 (0) is not a nonzero"),
    B(11, "delta = 2, x", "t.ini:11: actions.delta: ", "item 2 is not a number"),
    B(11, "delta = 1.5, 1.5", "t.ini:11: actions.delta: ", "item 1 (1.5) is not a nonzero"),
    B(11, "delta = 65", "t.ini:11: actions.delta: ", "not a nonzero dim count"),
    B(11, "delta = 40, 40", "t.ini:11: actions.delta: ", "longer than 64"),
    B2(10, "out_dims = 4", "t.ini:11: actions.delta: ", "mask covers 4 dims, state.dim is 3",
       11, "delta = 2, -1, 1"),
    B2(11, "delta = none", "t.ini:12: actions.sign: ", "2 items", 12, "sign = 1, 1"),
    B(12, NULL, "t.ini:9: actions.sign: ", "missing"),
    B(12, "sign = 1, 1", "t.ini:12: actions.sign: ", "2 items, actions.out_dims is 3"),
    B(12, "sign = 1, 0, 1", "t.ini:12: actions.sign: ", "item 2 (0) is not 1 or -1"),
    B(13, "map.3 = h", "t.ini:13: actions.map.3: ", "dim 3 out of range"),
    B(13, "map.2 = hh", "t.ini:13: actions.map.2: ", "no section [map.hh]"),
    B(14, "clip = 1, -1", "t.ini:14: actions.clip: ", "lo < hi"),
    B(14, "clip = 1, 1", "t.ini:14: actions.clip: ", "lo < hi"),
    B(14, "clip = -1", "t.ini:14: actions.clip: ", "lo < hi"),
    B(14, "clip = -1, inf", "t.ini:14: actions.clip: ", "finite"),
    B(14, "clip = -1, 1, 2", "t.ini:14: actions.clip: ", "expected 'lo, hi'"),
    B(14, "clip.3 = -1, 1", "t.ini:14: actions.clip.3: ", "dim 3 out of range"),
    B(14, "clip.1 = 2, 1", "t.ini:14: actions.clip.1: ", "lo < hi"),
    B(14, "clip.x = -1, 1", "t.ini:14: actions.clip.x: ", "expected clip.DIM"),
    B(15, "binarize.3 = 0.5", "t.ini:15: actions.binarize.3: ", "dim 3 out of range"),
    B(15, "binarize.2 = nan", "t.ini:15: actions.binarize.2: ", "not a finite threshold"),
    B(15, "binarize.2 = half", "t.ini:15: actions.binarize.2: ", "not a finite threshold"),
    B(15, "scale = 2", "t.ini:15: actions.scale: ", "unknown key"),
    /* [limits] */
    B(17, "lo = -1, -", "t.ini:17: limits.lo: ", "2 items, actions.out_dims is 3"),
    B(17, "lo = -1, x, -2", "t.ini:17: limits.lo: ", "item 2 is not a number or -"),
    B(17, "lo = -1, inf, -2", "t.ini:17: limits.lo: ", "item 2 is not a number or -"),
    B(18, "hi = -2, -, 2", "t.ini:18: limits.hi: ", "item 1 (-2) is below limits.lo (-1)"),
    B(19, "max_step = 0, 1, 1", "t.ini:19: limits.max_step: ", "item 1 (0) is not > 0"),
    B(19, "max_step = 1, -1, 1", "t.ini:19: limits.max_step: ", "item 2 (-1) is not > 0"),
    B(19, "max_step = 1, 1, 1, 1", "t.ini:19: limits.max_step: ", "4 items"),
    B(19, "mid = 0, 0, 0", "t.ini:19: limits.mid: ", "unknown key"),
    /* [cameras] */
    B(21, "base_0_rgb = cam 0", "t.ini:21: cameras.base_0_rgb: ", "not a topic name"),
    B(21, "base_0_rgb = cam/0", "t.ini:21: cameras.base_0_rgb: ", "not a topic name"),
    B(21, "base_0_rgb = " LONG_TOPIC, "t.ini:21: cameras.base_0_rgb: ", "not a topic name"),
    B(23, NULL, "t.ini:20: cameras.right_wrist_0_rgb: ", "missing"),
    B(21, "wrist = cam0", "t.ini:21: cameras.wrist: ", "unknown key"),
    B(24, "base_0_rgb.rotate180 = maybe",
      "t.ini:24: cameras.base_0_rgb.rotate180: ", "yes or no"),
    B(24, "base_0_rgb.flip = yes", "t.ini:24: cameras.base_0_rgb.flip: ", "unknown key"),
    /* [map.NAME] */
    B(26, NULL, "t.ini:25: map.g.type: ", "missing"),
    B(26, "type = cubic", "t.ini:26: map.g.type: ", "not a map type"),
    B(32, NULL,
      "t.ini:25: map.g.angle_hi: ", "missing (type aloha_gripper_to_angular needs it)"),
    B(32, "angle_hi = 1.6296\nscale = 1", "t.ini:33: map.g.scale: ", "not a constant of type"),
    B(29, "horn_radius = nan", "t.ini:29: map.g.horn_radius: ", "not a finite number"),
    B(29, "horn_radius = 1e999", "t.ini:29: map.g.horn_radius: ", "not a finite number"),
    B(29, "horn_radius = 0", "t.ini:29: map.g.horn_radius: ", "must be > 0"),
    B(30, "arm_length = -0.036", "t.ini:30: map.g.arm_length: ", "must be > 0"),
    B(28, "linear_open = 0.01844", "t.ini:28: map.g.linear_open: ", "equals linear_closed"),
    B(32, "angle_hi = 0.5476", "t.ini:32: map.g.angle_hi: ", "equals angle_lo"),
    B(35, "scale = 0", "t.ini:35: map.h.scale: ", "must not be 0"),
    B(36, "foo = 1", "t.ini:36: map.h.foo: ", "unknown key"),
    B(36, NULL, "t.ini:33: map.h.offset: ", "missing"),
};

static void test_broken_files(void) {
    char buf[8192];
    size_t n = edit_base(buf, sizeof buf, 0, NULL);
    pi0_calib *c = NULL;
    CHECK_EQ_INT(pi0_calib_parse("t.ini", buf, n, &c), 0);
    if (!c) {
        fprintf(stderr, "  the base file does not load: %s\n", pi0_last_error());
        return;
    }
    pi0_calib_destroy(c);
    for (size_t i = 0; i < sizeof BROKEN / sizeof BROKEN[0]; i++) {
        const broken *b = &BROKEN[i];
        n = edit_base2(buf, sizeof buf, b->line, b->text, b->line2, b->text2);
        c = (pi0_calib *)&c; /* must stay untouched on failure */
        pi0_calib *before = c;
        int rc = pi0_calib_parse("t.ini", buf, n, &c);
        const char *msg = pi0_last_error();
        int ok = rc == PI0_ECONFIG && c == before &&
                 strncmp(msg, b->want, strlen(b->want)) == 0 && strstr(msg, b->why) != NULL;
        CHECK_MSG(ok, "line %d -> '%s': rc %d, message '%s', want '%s...%s'", b->line,
                  b->text ? b->text : "(deleted)", rc, msg, b->want, b->why);
        if (rc == 0) pi0_calib_destroy(c);
    }
    printf("  %zu broken files, each with its file:line: key: reason\n",
           sizeof BROKEN / sizeof BROKEN[0]);
}

/* Whole-file cases the table cannot express. */
static void test_broken_bytes(void) {
    pi0_calib *c = NULL;
    CHECK_EQ_INT(pi0_calib_parse("e.ini", "", 0, &c), PI0_ECONFIG);
    CHECK_EQ_STR(pi0_last_error(), "e.ini:1: state.dim: missing");
    static const char nul[] = "[robot]\nname = a\0b\n";
    CHECK_EQ_INT(pi0_calib_parse("n.ini", nul, sizeof nul - 1, &c), PI0_ECONFIG);
    CHECK_EQ_STR(pi0_last_error(), "n.ini:2: file: NUL byte");
    char longl[400];
    snprintf(longl, sizeof longl, "[robot]\n\n; %0250d\n", 0);
    CHECK_EQ_INT(pi0_calib_parse("l.ini", longl, strlen(longl), &c), PI0_ECONFIG);
    CHECK_EQ_STR(pi0_last_error(), "l.ini:3: file: line longer than 190 bytes (continue the "
                                   "value on indented lines)");
    /* Not NUL-terminated: only len bytes are read. */
    char buf[8192];
    size_t n = edit_base(buf, sizeof buf, 0, NULL);
    buf[n] = 'x';
    CHECK_EQ_INT(pi0_calib_parse("t.ini", buf, n, &c), 0);
    pi0_calib_destroy(c);
    CHECK_EQ_INT(pi0_calib_load("/nonexistent/robot.ini", &c), PI0_ENOENT);
    CHECK(strstr(pi0_last_error(), "/nonexistent/robot.ini") != NULL);
    CHECK_EQ_INT(pi0_calib_load(NULL, &c), PI0_EINVAL);
    pi0_calib_destroy(NULL);
}

// ---- fuzz --------------------------------------------------------------------------------

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One random edit: flip/replace/insert/delete bytes, duplicate/delete/swap lines, or splice
 * in a token that the parser treats specially. */
static size_t mutate(char *b, size_t n, size_t cap, uint64_t *s) {
    static const char *const tok[] = {"[",
                                      "]",
                                      "=",
                                      ",",
                                      ";",
                                      "#",
                                      "\n",
                                      " ",
                                      "\t",
                                      "-",
                                      "nan",
                                      "inf",
                                      "1e999",
                                      "-1",
                                      "0",
                                      "64",
                                      "65",
                                      "none",
                                      ".",
                                      "map.",
                                      "[map.x]",
                                      "\r\n",
                                      "99999999999999999999",
                                      "0x10",
                                      "1e-320",
                                      ",,",
                                      "yes",
                                      "\xc3\xa9",
                                      "\xef\xbb\xbf"};
    size_t pos = n ? rng_next(s) % (n + 1) : 0;
    switch (rng_next(s) % 7) {
    case 0: /* flip a byte */
        if (n) b[pos % n] ^= (char)(1u << (rng_next(s) % 8));
        break;
    case 1: /* random byte */
        if (n) b[pos % n] = (char)(rng_next(s) % 256);
        break;
    case 2: { /* insert a token */
        const char *t = tok[rng_next(s) % (sizeof tok / sizeof tok[0])];
        size_t k = strlen(t);
        if (n + k < cap) {
            memmove(b + pos + k, b + pos, n - pos);
            memcpy(b + pos, t, k);
            n += k;
        }
        break;
    }
    case 3: { /* delete a span */
        size_t k = rng_next(s) % 16;
        if (pos + k > n) k = n - pos;
        memmove(b + pos, b + pos + k, n - pos - k);
        n -= k;
        break;
    }
    case 4: { /* duplicate a span (often a whole line) */
        size_t k = 1 + rng_next(s) % 48;
        if (pos + k > n) k = n - pos;
        if (n + k < cap) {
            memmove(b + pos + k, b + pos, n - pos);
            n += k;
        }
        break;
    }
    case 5: /* truncate */
        n = pos;
        break;
    default: { /* replace a digit by another */
        for (size_t i = 0; i < n; i++) {
            size_t j = (pos + i) % n;
            if (b[j] >= '0' && b[j] <= '9') {
                b[j] = (char)('0' + rng_next(s) % 10);
                break;
            }
        }
    }
    }
    return n;
}

static void test_fuzz_mutations(void) {
    const char *e = getenv("PI0_CALIB_FUZZ_ITERS");
    long iters = e ? atol(e) : 30000;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    long loaded = 0, rejected = 0;
    /* The ready files, and BASE (which uses every key kind). */
    char *src[N_READY + 1];
    size_t len[N_READY + 1];
    for (int r = 0; r < N_READY; r++) {
        char path[256];
        snprintf(path, sizeof path, "calib/robots/%s.ini", READY[r]);
        src[r] = pi0_test_slurp(path, &len[r]);
        CHECK(src[r] != NULL);
        if (!src[r]) return;
    }
    src[N_READY] = malloc(8192);
    len[N_READY] = edit_base(src[N_READY], 8192, 0, NULL);
    enum { CAP = 16384 };
    char *buf = malloc(CAP);
    for (long it = 0; it < iters; it++) {
        int r = (int)(rng_next(&seed) % (N_READY + 1));
        size_t n = len[r];
        memcpy(buf, src[r], n);
        int edits = 1 + (int)(rng_next(&seed) % 6);
        for (int k = 0; k < edits; k++)
            n = mutate(buf, n, CAP, &seed);
        /* Exactly n bytes: ASan sees any read past the mutated text. */
        char *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        pi0_calib *c = NULL;
        int rc = pi0_calib_parse("f.ini", exact, n, &c);
        if (rc == 0) {
            loaded++;
            /* A mutated file that loads still gives usable transforms. */
            double raw[PI0_CALIB_DIM_MAX] = {0}, st[PI0_CALIB_DIM_MAX];
            float chunk[4 * 64] = {0}, out[4 * 64];
            CHECK_EQ_INT(pi0_calib_state_in(c, raw, PI0_CALIB_DIM_MAX, st), 0);
            CHECK_EQ_INT(pi0_calib_actions_out(c, chunk, 4, 64, st, out), 0);
            char d[8192];
            pi0_calib_describe(c, d, sizeof d);
            pi0_calib_destroy(c);
        } else {
            rejected++;
            const char *m = pi0_last_error();
            int line = -1;
            CHECK_MSG(rc == PI0_ECONFIG && sscanf(m, "f.ini:%d: ", &line) == 1 && line >= 0,
                      "iteration %ld: rc %d, message '%s'", it, rc, m);
        }
        free(exact);
    }
    free(buf);
    for (int r = 0; r < N_READY; r++)
        free(src[r]);
    printf("  %ld mutated files: %ld loaded, %ld rejected with file:line\n", iters, loaded,
           rejected);
    CHECK(rejected > iters / 4 && loaded > 0);
}

// ---- transforms --------------------------------------------------------------------------

static void fill(float *a, int n, uint64_t *s) {
    for (int i = 0; i < n; i++)
        a[i] = (float)((double)(rng_next(s) % 20001) / 5000.0 - 2.0);
}

static void test_no_allocation(void) {
#if !COUNTING_MALLOC
    SKIP("sanitizer build: the counting malloc is compiled out");
#else
    pi0_calib *cs[N_READY];
    for (int r = 0; r < N_READY; r++)
        if (!(cs[r] = load_ready(READY[r]))) return;
    static float chunk[50 * 32], out[50 * 32];
    double raw[14] = {0.1, -0.5, 0.7, 0, 0.2, 0.3, 0.9, 0.1, -0.5, 0.7, 0, 0.2, 0.3, 1.0};
    double st[PI0_CALIB_DIM_MAX];
    uint64_t s = 7;
    fill(chunk, 50 * 32, &s);
    /* The allocator really counts: one malloc while counting is seen. */
    g_allocs = 0;
    g_count_allocs = 1;
    void *volatile probe = malloc(16);
    g_count_allocs = 0;
    free(probe);
    CHECK_EQ_INT(g_allocs, 1);
    g_allocs = 0;
    g_count_allocs = 1;
    int bad = 0;
    for (int k = 0; k < 1000; k++)
        for (int r = 0; r < N_READY; r++) {
            bad |= pi0_calib_state_in(cs[r], raw, 14, st);
            bad |= pi0_calib_actions_out(cs[r], chunk, 50, 32, st, out);
            pi0_calib_clamp(cs[r], out, out + 32);
            (void)pi0_calib_limits(cs[r]);
            (void)pi0_calib_camera_get(cs[r], 0);
        }
    g_count_allocs = 0;
    CHECK_EQ_INT(bad, 0);
    CHECK_EQ_INT(g_allocs, 0);
    for (int r = 0; r < N_READY; r++)
        pi0_calib_destroy(cs[r]);
#endif
}

/* In place gives what a separate buffer gives, for dim > out_dim too; partial overlap,
 * short chunks and short joint vectors are refused and leave the output alone. */
static void test_buffers(void) {
    pi0_calib *c = load_ready("aloha");
    if (!c) return;
    float chunk[10 * 32], work[10 * 32], out[10 * 14];
    uint64_t s = 11;
    fill(chunk, 10 * 32, &s);
    double raw[16], st[14];
    for (int i = 0; i < 16; i++)
        raw[i] = 0.1 * i - 0.4;
    CHECK_EQ_INT(pi0_calib_state_in(c, raw, 16, st), 0);
    CHECK_EQ_INT(pi0_calib_actions_out(c, chunk, 10, 32, st, out), 0);
    memcpy(work, chunk, sizeof work);
    CHECK_EQ_INT(pi0_calib_actions_out(c, work, 10, 32, st, work), 0);
    CHECK(memcmp(work, out, sizeof out) == 0);
    /* dim == out_dim in place */
    float c14[10 * 14];
    for (int t = 0; t < 10; t++)
        memcpy(c14 + t * 14, chunk + t * 32, 14 * sizeof(float));
    CHECK_EQ_INT(pi0_calib_actions_out(c, c14, 10, 14, st, c14), 0);
    CHECK(memcmp(c14, out, sizeof out) == 0);
    memcpy(work, chunk, sizeof work);
    float keep[10 * 32];
    memcpy(keep, work, sizeof keep);
    CHECK_EQ_INT(pi0_calib_actions_out(c, work, 10, 32, st, work + 1), PI0_EINVAL);
    CHECK_EQ_INT(pi0_calib_actions_out(c, work + 16, 9, 16, st, work), PI0_EINVAL);
    CHECK(memcmp(keep, work, sizeof keep) == 0);
    CHECK_EQ_INT(pi0_calib_actions_out(c, chunk, 10, 13, st, out), PI0_EINVAL);
    CHECK(strstr(pi0_last_error(), ">= 14") != NULL);
    CHECK_EQ_INT(pi0_calib_actions_out(c, chunk, 0, 32, st, out), PI0_EINVAL);
    double st2[14];
    memcpy(st2, st, sizeof st);
    CHECK_EQ_INT(pi0_calib_state_in(c, raw, 13, st2), PI0_EINVAL);
    CHECK(strstr(pi0_last_error(), "13 joints") != NULL);
    raw[9] = NAN;
    CHECK_EQ_INT(pi0_calib_state_in(c, raw, 16, st2), PI0_EINVAL);
    CHECK(strstr(pi0_last_error(), "joint 9") != NULL);
    raw[9] = INFINITY;
    CHECK_EQ_INT(pi0_calib_state_in(c, raw, 16, st2), PI0_EINVAL);
    CHECK(memcmp(st, st2, sizeof st) == 0);
    pi0_calib_destroy(c);
}

/* A NaN in the chunk comes out as NaN through delta, sign, maps, clip and binarize, so the
 * node's finiteness check sees it. */
static void test_nan_passes_through(void) {
    for (int r = 0; r < N_READY; r++) {
        pi0_calib *c = load_ready(READY[r]);
        if (!c) return;
        float chunk[2 * 32], out[2 * 32];
        for (int i = 0; i < 64; i++)
            chunk[i] = NAN;
        double st[PI0_CALIB_DIM_MAX] = {0};
        CHECK_EQ_INT(pi0_calib_actions_out(c, chunk, 2, 32, st, out), 0);
        int od = pi0_calib_out_dim(c), nans = 0;
        for (int i = 0; i < 2 * od; i++)
            nans += isnan(out[i]);
        CHECK_MSG(nans == 2 * od, "%s: %d of %d NaN", READY[r], nans, 2 * od);
        pi0_calib_destroy(c);
    }
}

/* Zero-padding of the state, a linear map, per-dim clip over the global one. */
static void test_padding_and_maps(void) {
    static const char f[] = "[state]\ndim = 5\nindex = 3, 0\nsign = -1, 1\nmap.1 = lin\n"
                            "[actions]\nout_dims = 2\ndelta = -1, 1\nsign = 1, -1\n"
                            "clip = -1, 1\nclip.1 = -10, 10\n"
                            "[cameras]\nbase_0_rgb = a\nleft_wrist_0_rgb = none\n"
                            "right_wrist_0_rgb = none\n"
                            "[map.lin]\ntype = linear\nscale = 2\noffset = 0.25\n";
    pi0_calib *c = NULL;
    CHECK_EQ_INT(pi0_calib_parse("p.ini", f, sizeof f - 1, &c), 0);
    if (!c) {
        fprintf(stderr, "  %s\n", pi0_last_error());
        return;
    }
    CHECK_EQ_INT(pi0_calib_raw_dim(c), 4);
    double raw[4] = {1.5, 9, 9, 0.5}, st[5] = {7, 7, 7, 7, 7};
    CHECK_EQ_INT(pi0_calib_state_in(c, raw, 4, st), 0);
    CHECK_NEAR(st[0], -0.5, 0);
    CHECK_NEAR(st[1], 2 * 1.5 + 0.25, 0);
    CHECK(st[2] == 0 && st[3] == 0 && st[4] == 0);
    float chunk[2] = {3.0f, 1.0f}, out[2];
    CHECK_EQ_INT(pi0_calib_actions_out(c, chunk, 1, 2, st, out), 0);
    CHECK_NEAR(out[0], 1.0, 0);              /* 3 clipped to 1, no delta */
    CHECK_NEAR(out[1], -(1.0 + 3.25), 1e-6); /* delta, sign, clip.1 */
    char d[4096];
    size_t need = pi0_calib_describe(c, d, sizeof d);
    CHECK(need == strlen(d));
    CHECK(strstr(d, "state  0 = -joint[3]") != NULL);
    CHECK(strstr(d, "state  4 = 0 (padding)") != NULL);
    CHECK(strstr(d, "out  1 = -(chunk[1] + state[1])") != NULL);
    char small[8];
    CHECK_EQ_INT(pi0_calib_describe(c, small, sizeof small), need);
    CHECK_EQ_INT(strlen(small), 7);
    pi0_calib_destroy(c);
}

/* The largest file: 64 dims in and out, each through a map; all of it is described. */
static void test_largest_file(void) {
    static char f[32768];
    size_t o = 0;
    /* Lists of 64 do not fit on one line: they continue on indented lines. */
#define SEP(i) ((i) == 0 ? "" : (i) % 16 == 0 ? ",\n    " : ",")
    o += (size_t)snprintf(f + o, sizeof f - o, "[state]\ndim = 64\nindex = ");
    for (int i = 0; i < 64; i++)
        o += (size_t)snprintf(f + o, sizeof f - o, "%s%d", SEP(i), 63 - i);
    o += (size_t)snprintf(f + o, sizeof f - o, "\nsign = ");
    for (int i = 0; i < 64; i++)
        o += (size_t)snprintf(f + o, sizeof f - o, "%s-1", SEP(i));
    for (int i = 0; i < 64; i++)
        o += (size_t)snprintf(f + o, sizeof f - o, "\nmap.%d = g", i);
    o += (size_t)snprintf(f + o, sizeof f - o,
                          "\n[actions]\nout_dims = 64\ndelta = 32, -32\nsign = ");
    for (int i = 0; i < 64; i++)
        o += (size_t)snprintf(f + o, sizeof f - o, "%s1", SEP(i));
    for (int i = 0; i < 64; i++)
        o += (size_t)snprintf(f + o, sizeof f - o, "\nmap.%d = h", i);
    o += (size_t)snprintf(f + o, sizeof f - o,
                          "\n[cameras]\nbase_0_rgb = a\nleft_wrist_0_rgb = none\n"
                          "right_wrist_0_rgb = none\n[map.g]\ntype = linear\nscale = 0.5\n"
                          "offset = 1\n[map.h]\ntype = aloha_gripper_from_angular\n"
                          "offset = 0.5476\njoint_closed = -0.6213\njoint_open = 1.4910\n");
    pi0_calib *c = NULL;
    CHECK_EQ_INT(pi0_calib_parse("big.ini", f, o, &c), 0);
    if (!c) {
        fprintf(stderr, "  %s\n", pi0_last_error());
        return;
    }
    CHECK_EQ_INT(pi0_calib_raw_dim(c), 64);
    double raw[64], st[64];
    for (int i = 0; i < 64; i++)
        raw[i] = i;
    CHECK_EQ_INT(pi0_calib_state_in(c, raw, 64, st), 0);
    CHECK_NEAR(st[0], 0.5 * -63 + 1, 0);
    CHECK_NEAR(st[63], 1, 0);
    size_t need = pi0_calib_describe(c, NULL, 0);
    char *d = malloc(need + 1);
    CHECK_EQ_INT(pi0_calib_describe(c, d, need + 1), need);
    CHECK_EQ_INT(strlen(d), need);
    int lines = 0;
    for (const char *q = d; *q; q++)
        lines += *q == '\n';
    CHECK_EQ_INT(lines, 1 + 64 + 1 + 64);
    CHECK(strstr(d, "out 63 = chunk[63], then aloha_gripper_from_angular") != NULL);
    free(d);
    pi0_calib_destroy(c);
#undef SEP
}

static void test_clamp(void) {
    pi0_calib *c = load_ready("sim");
    if (!c) return;
    float a[14], prev[14];
    for (int j = 0; j < 14; j++)
        a[j] = prev[j] = 0.5f;
    a[0] = 5.0f;  /* above hi 3.14 */
    a[1] = -5.0f; /* below lo */
    a[6] = 1.5f;  /* gripper above 1 */
    a[2] = 0.55f; /* within the step */
    a[3] = 0.75f; /* a step of 0.25 > 0.1 */
    float b[14];
    memcpy(b, a, sizeof b);
    CHECK_EQ_INT(pi0_calib_clamp(c, NULL, b), 3);
    CHECK_NEAR(b[0], 3.14, 1e-6);
    CHECK_NEAR(b[1], -3.14, 1e-6);
    CHECK_NEAR(b[6], 1.0, 0);
    CHECK_NEAR(b[3], 0.75, 0);
    CHECK_EQ_INT(pi0_calib_clamp(c, prev, a), 4);
    CHECK_NEAR(a[0], 0.6, 1e-6);
    CHECK_NEAR(a[1], 0.4, 1e-6);
    CHECK_NEAR(a[6], 0.6, 1e-6);
    CHECK_NEAR(a[2], 0.55, 1e-6);
    CHECK_NEAR(a[3], 0.6, 1e-6);
    a[4] = NAN;
    CHECK_EQ_INT(pi0_calib_clamp(c, prev, a), 0 + 0);
    CHECK(isnan(a[4]));
    pi0_calib_destroy(c);
    /* No limits: nothing changes. */
    if (!(c = load_ready("aloha"))) return;
    float x[14];
    for (int j = 0; j < 14; j++)
        x[j] = 100.0f * (float)j;
    CHECK_EQ_INT(pi0_calib_clamp(c, prev, x), 0);
    pi0_calib_destroy(c);
}

typedef struct thr_arg {
    const pi0_calib *c;
    const float *chunk;
    const double *st;
    const float *want;
    int mismatches;
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    float out[50 * 14];
    for (int k = 0; k < 2000; k++) {
        pi0_calib_actions_out(a->c, a->chunk, 50, 32, a->st, out);
        a->mismatches += memcmp(out, a->want, sizeof out) != 0;
    }
    return NULL;
}

/* One loaded file used by four threads at once gives the same chunk in each. */
static void test_threads(void) {
    pi0_calib *c = load_ready("aloha");
    if (!c) return;
    static float chunk[50 * 32], want[50 * 14];
    uint64_t s = 3;
    fill(chunk, 50 * 32, &s);
    double raw[14] = {0}, st[14];
    raw[6] = 0.5;
    raw[13] = 0.9;
    CHECK_EQ_INT(pi0_calib_state_in(c, raw, 14, st), 0);
    CHECK_EQ_INT(pi0_calib_actions_out(c, chunk, 50, 32, st, want), 0);
    pthread_t th[4];
    thr_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (thr_arg){c, chunk, st, want, 0};
        pthread_create(&th[i], NULL, thr_main, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(args[i].mismatches, 0);
    }
    pi0_calib_destroy(c);
}

// ---- the tool ----------------------------------------------------------------------------

static void test_tool(void) {
    char *tmp = pi0_test_tmpdir("calib_tool");
    const char *T = g_tool;
    CHECK_EQ_INT(pi0_test_sh("%s --help >%s/help", T, tmp), 0);
    CHECK_EQ_INT(pi0_test_sh("grep -q 'usage: pi0rt-calib' %s/help", tmp), 0);
    CHECK_EQ_INT(pi0_test_sh("%s show --help >/dev/null", T), 0);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s 2>/dev/null", T), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s frobnicate calib/robots/sim.ini 2>/dev/null", T), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s check 2>/dev/null", T), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s check a.ini b.ini 2>/dev/null", T), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s --bogus check calib/robots/sim.ini 2>/dev/null", T), 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s state calib/robots/sim.ini --in x.npy 2>/dev/null", T),
                 2);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s actions calib/robots/sim.ini --in x.npy --out y.npy "
                                   "2>/dev/null",
                                   T),
                 2);
    for (int r = 0; r < N_READY; r++) {
        CHECK_EQ_INT(pi0_test_sh("%s check calib/robots/%s.ini >/dev/null", T, READY[r]), 0);
        CHECK_EQ_INT(pi0_test_sh("%s show calib/robots/%s.ini >%s/show", T, READY[r], tmp), 0);
    }
    CHECK_EQ_INT(pi0_test_sh("grep -q 'out  6 = 0.1 .*max_step 0.1' %s/show || "
                             "grep -q 'max_step 0.1' %s/show",
                             tmp, tmp),
                 0);
    CHECK_EQ_INT(pi0_test_sh("grep -q 'base_0_rgb *cam0' %s/show", tmp), 0);
    /* A broken file: exit 1, one line naming file, line and key. */
    CHECK_EQ_INT(
        pi0_test_sh("sed 's/^sign = 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1$/sign = 1/' "
                    "calib/robots/sim.ini >%s/bad.ini",
                    tmp),
        0);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s check %s/bad.ini 2>%s/err", T, tmp, tmp), 1);
    CHECK_EQ_INT(pi0_test_sh("grep -q '^pi0rt-calib: %s/bad.ini:[0-9]*: state.sign: 1 items, "
                             "state.index has 14$' %s/err && [ $(wc -l <%s/err) = 1 ]",
                             tmp, tmp, tmp),
                 0);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s show %s/missing.ini 2>/dev/null", T, tmp), 1);
    /* Bad arrays: not .npy, wrong dtype, wrong shape. */
    CHECK_EQ_INT(pi0_test_sh("echo hello >%s/x.npy", tmp), 0);
    CHECK_EQ_INT(pi0_test_sh_quiet("%s state calib/robots/sim.ini --in %s/x.npy --out %s/y.npy "
                                   "2>%s/err",
                                   T, tmp, tmp, tmp),
                 1);
    CHECK_EQ_INT(pi0_test_sh("grep -q 'x.npy: not an .npy file' %s/err", tmp), 0);
    if (pi0_test_sh_quiet("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0) {
        CHECK_EQ_INT(pi0_test_sh("cd %s && /usr/bin/python3 -c \"import numpy as np; "
                                 "np.save('i.npy', np.zeros(14, np.int32)); "
                                 "np.save('s.npy', np.zeros(13)); "
                                 "np.save('c.npy', np.zeros((5, 13), np.float32)); "
                                 "np.save('r.npy', np.zeros(14))\"",
                                 tmp),
                     0);
        CHECK_EQ_INT(pi0_test_sh_quiet("%s state calib/robots/sim.ini --in %s/i.npy --out "
                                       "%s/o.npy 2>%s/err",
                                       T, tmp, tmp, tmp),
                     1);
        CHECK_EQ_INT(pi0_test_sh("grep -q 'not float32 or float64' %s/err", tmp), 0);
        CHECK_EQ_INT(pi0_test_sh_quiet("%s state calib/robots/sim.ini --in %s/s.npy --out "
                                       "%s/o.npy 2>%s/err",
                                       T, tmp, tmp, tmp),
                     1);
        CHECK_EQ_INT(pi0_test_sh("grep -q '13 joints, the robot file needs 14' %s/err", tmp),
                     0);
        CHECK_EQ_INT(pi0_test_sh_quiet("%s actions calib/robots/sim.ini --in %s/c.npy --state "
                                       "%s/r.npy --out %s/o.npy 2>%s/err",
                                       T, tmp, tmp, tmp, tmp),
                     1);
        CHECK_EQ_INT(pi0_test_sh("grep -q 'needs \\[H, >= 14\\]' %s/err", tmp), 0);
        CHECK_EQ_INT(pi0_test_sh("cd %s && /usr/bin/python3 -c \"import numpy as np; "
                                 "np.save('c3.npy', np.zeros((3, 5, 14), np.float32)); "
                                 "np.save('r2.npy', np.zeros((2, 14)))\"",
                                 tmp),
                     0);
        CHECK_EQ_INT(pi0_test_sh_quiet("%s actions calib/robots/sim.ini --in %s/c3.npy --state "
                                       "%s/r2.npy --out %s/o.npy 2>%s/err",
                                       T, tmp, tmp, tmp, tmp),
                     1);
        CHECK_EQ_INT(pi0_test_sh("grep -q '3 chunks but .*r2.npy has 2 states' %s/err", tmp),
                     0);
        CHECK(access("/nonexistent", F_OK) != 0);
    }
    pi0_test_rmrf(tmp);
}

int main(int argc, char **argv) {
    /* pi0rt-calib of the same build: <build>/tests/test_calib -> <build>/pi0rt-calib. */
    snprintf(g_tool, sizeof g_tool, "%s/../pi0rt-calib", pi0_test_exe_dir());
    static const pi0_test tests[] = {
        TEST(test_ready_files),
        TEST(test_ready_files_documented),
        TEST(test_numpy_reference),
        TEST(test_numpy_reference_catches_a_wrong_file),
        TEST(test_broken_files),
        TEST(test_broken_bytes),
        TEST(test_fuzz_mutations),
        TEST(test_no_allocation),
        TEST(test_buffers),
        TEST(test_nan_passes_through),
        TEST(test_padding_and_maps),
        TEST(test_largest_file),
        TEST(test_clamp),
        TEST(test_threads),
        TEST(test_tool),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
