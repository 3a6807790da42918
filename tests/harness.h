/* harness.h — the pi0rt test harness (header only, in the spirit of libuv's task.h).
 *
 *   static void test_roundtrip(void) { CHECK_EQ_INT(f(2), 4); CHECK_NEAR(g(), 1.0, 1e-6); }
 *   int main(int argc, char **argv) {
 *       static const pi0_test tests[] = { TEST(test_roundtrip), };
 *       return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
 *   }
 *
 * Each test runs in a forked child (a crash or a hang fails that test, not the suite),
 * with a time limit of PI0_TEST_TIMEOUT seconds (default 300). PI0_TEST_NOFORK=1 runs
 * them in-process (for gdb). An argument selects the tests whose name contains it. The
 * last line is `N passed, N failed, N skipped`. Checks print both sides and keep going.
 * SKIP("reason") ends a test as skipped (a precondition the machine lacks, such as root
 * or a mount namespace); a test that already failed a check still counts as failed. */
#ifndef PI0_TEST_HARNESS_H
#define PI0_TEST_HARNESS_H

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_time.h"

typedef struct pi0_test {
    const char *name;
    void (*fn)(void);
} pi0_test;

#define TEST(fn)                                                                               \
    { #fn, fn }

static int pi0__test_failures;

/* Exit status of a forked test that skipped itself (automake's convention). */
#define PI0__TEST_SKIP_RC 77
static int pi0__test_skipped;

#define PI0__FAIL(...)                                                                         \
    do {                                                                                       \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                      \
        fprintf(stderr, __VA_ARGS__);                                                          \
        fputc('\n', stderr);                                                                   \
        pi0__test_failures++;                                                                  \
    } while (0)

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) PI0__FAIL("CHECK failed: %s", #cond);                                     \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                   \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            PI0__FAIL("CHECK failed: %s", #cond);                                              \
            fprintf(stderr, "    ");                                                           \
            fprintf(stderr, __VA_ARGS__);                                                      \
            fputc('\n', stderr);                                                               \
        }                                                                                      \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                     \
    do {                                                                                       \
        long long pi0__a = (long long)(a), pi0__b = (long long)(b);                            \
        if (pi0__a != pi0__b)                                                                  \
            PI0__FAIL("CHECK_EQ_INT failed: %s == %s (%lld vs %lld)", #a, #b, pi0__a, pi0__b); \
    } while (0)

#define CHECK_EQ_STR(a, b)                                                                     \
    do {                                                                                       \
        const char *pi0__a = (a), *pi0__b = (b);                                               \
        if (!pi0__a || !pi0__b || strcmp(pi0__a, pi0__b) != 0)                                 \
            PI0__FAIL("CHECK_EQ_STR failed: %s == %s (\"%s\" vs \"%s\")", #a, #b,              \
                      pi0__a ? pi0__a : "(null)", pi0__b ? pi0__b : "(null)");                 \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                  \
    do {                                                                                       \
        double pi0__a = (double)(a), pi0__b = (double)(b);                                     \
        if (!(fabs(pi0__a - pi0__b) <= (double)(tol)))                                         \
            PI0__FAIL("CHECK_NEAR failed: %s ~ %s (%.9g vs %.9g, tol %g)", #a, #b, pi0__a,     \
                      pi0__b, (double)(tol));                                                  \
    } while (0)

/* Ends the current test as skipped, with a reason, unless a check already failed. */
#define SKIP(...)                                                                              \
    do {                                                                                       \
        printf("  skipped: ");                                                                 \
        printf(__VA_ARGS__);                                                                   \
        putchar('\n');                                                                         \
        fflush(stdout);                                                                        \
        pi0__test_skip();                                                                      \
        return;                                                                                \
    } while (0)

/* Status-returning call expected to give `want` (PI0_OK or a PI0_E* code). */
#define CHECK_STATUS(call, want)                                                               \
    do {                                                                                       \
        int pi0__s = (call), pi0__w = (want);                                                  \
        if (pi0__s != pi0__w)                                                                  \
            PI0__FAIL("CHECK_STATUS failed: %s -> %d, want %d", #call, pi0__s, pi0__w);        \
    } while (0)

static inline double pi0_test_now(void) {
    return pi0__now_s();
}

// ---- scratch directories, files and shell commands --------------------------------

#if defined(__GNUC__)
#define PI0__TEST_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define PI0__TEST_PRINTF(f, a)
#endif

/* A fresh directory /tmp/<prefix>.XXXXXX; returns its path (malloc'ed: tests are
 * short-lived, freeing is optional). Aborts if it cannot be made. */
static inline char *pi0_test_tmpdir(const char *prefix) {
    char d[256];
    snprintf(d, sizeof d, "/tmp/%s.XXXXXX", prefix);
    char *r = mkdtemp(d) ? strdup(d) : NULL;
    if (!r) {
        perror("pi0_test_tmpdir");
        abort();
    }
    return r;
}

/* The folder of the running test binary (<build>/tests, or <build>/tests/<module>), so a
 * suite finds the tools of its own build: pi0_test_exe_dir() + "/../pi0rt-x". */
static inline const char *pi0_test_exe_dir(void) {
    static char dir[2048];
    if (!dir[0]) {
        ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
        dir[n > 0 ? n : 0] = 0;
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
    }
    return dir;
}

/* rm -rf `dir`; anything not under /tmp/ is left alone. Says so when it fails. */
static inline void pi0_test_rmrf(const char *dir) {
    if (strncmp(dir, "/tmp/", 5) != 0 || strchr(dir, '\'') || strstr(dir, "..")) {
        fprintf(stderr, "  pi0_test_rmrf: refusing to remove %s\n", dir);
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
}

/* The whole file, NUL-terminated after its *len bytes (malloc'ed, caller frees), or NULL
 * (and *len = 0) when it cannot be read. len may be NULL. */
static inline void *pi0_test_slurp(const char *path, size_t *len) {
    if (len) *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    long n = fseek(fp, 0, SEEK_END) == 0 ? ftell(fp) : -1;
    char *b = n >= 0 ? malloc((size_t)n + 1) : NULL;
    rewind(fp);
    if (b && fread(b, 1, (size_t)n, fp) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(fp);
    if (!b) return NULL;
    b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}

/* Runs a printf-formatted command with system(); returns its exit status (-1 when it did
 * not exit normally). pi0_test_sh prints a failing command, pi0_test_sh_quiet (for
 * commands expected to fail) does not. */
static inline int pi0__test_vsh(int quiet, const char *fmt, va_list ap) {
    char cmd[8192];
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    int st = system(cmd);
    int rc = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (rc != 0 && !quiet) fprintf(stderr, "  command failed (%d): %s\n", rc, cmd);
    return rc;
}

static inline int pi0_test_sh(const char *fmt, ...) PI0__TEST_PRINTF(1, 2);
static inline int pi0_test_sh(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = pi0__test_vsh(0, fmt, ap);
    va_end(ap);
    return rc;
}

static inline int pi0_test_sh_quiet(const char *fmt, ...) PI0__TEST_PRINTF(1, 2);
static inline int pi0_test_sh_quiet(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int rc = pi0__test_vsh(1, fmt, ap);
    va_end(ap);
    return rc;
}

// ---- running -----------------------------------------------------------------------

static int pi0__test_forked;

static inline void pi0__test_skip(void) {
    if (pi0__test_failures) return;
    if (pi0__test_forked) {
        fflush(stdout);
        _exit(PI0__TEST_SKIP_RC);
    }
    pi0__test_skipped = 1;
}

/* Result of one test: 1 passed, 0 failed, -1 skipped. */
static inline int pi0__run_one(const pi0_test *t, int nofork, int timeout_s) {
    if (nofork) {
        pi0__test_failures = 0;
        pi0__test_skipped = 0;
        t->fn();
        return pi0__test_failures ? 0 : pi0__test_skipped ? -1 : 1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 0;
    }
    if (pid == 0) {
        alarm((unsigned)timeout_s);
        pi0__test_forked = 1;
        pi0__test_failures = 0;
        t->fn();
        fflush(stdout);
        _exit(pi0__test_failures == 0 ? 0 : 1);
    }
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {
    }
    if (WIFSIGNALED(st)) {
        int sig = WTERMSIG(st);
        fprintf(stderr, "  %s: killed by signal %d (%s)%s\n", t->name, sig, strsignal(sig),
                sig == SIGALRM ? " — time limit" : "");
        return 0;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == PI0__TEST_SKIP_RC) return -1;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static inline int pi0_test_main(int argc, char **argv, const pi0_test *tests, size_t n) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    const char *nf = getenv("PI0_TEST_NOFORK");
    const char *to = getenv("PI0_TEST_TIMEOUT");
    int nofork = nf && *nf && *nf != '0';
    int timeout_s = to ? atoi(to) : 300;
    if (timeout_s <= 0) timeout_s = 300;
    int passed = 0, failed = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        double t0 = pi0_test_now();
        int r = pi0__run_one(&tests[i], nofork, timeout_s);
        printf("%s %s (%.2f s)\n",
               r > 0   ? "ok  "
               : r < 0 ? "SKIP"
                       : "FAIL",
               tests[i].name, pi0_test_now() - t0);
        fflush(stdout);
        r > 0 ? passed++ : r < 0 ? skipped++ : failed++;
    }
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed == 0 && passed + skipped > 0 ? 0 : 1;
}

#endif /* PI0_TEST_HARNESS_H */
