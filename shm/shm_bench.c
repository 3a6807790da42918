/* shm_bench.c — `pi0rt-shm bench`: one-way publish→receive latency of shm topics, with a
 * sleeping (futex) and a polling subscriber, against a Unix-domain socket baseline, in
 * the same run. Publisher and subscriber are separate processes (fork), pinned to
 * different CPUs when two are available.
 *
 * Latency = subscriber's CLOCK_MONOTONIC when the sample is in hand minus the publisher's
 * CLOCK_MONOTONIC at commit (shm: the slot's commit stamp; socket: taken right before the
 * write). What is touched is reported in "touch":
 *   "8B"   shm: the publisher writes an 8-byte sequence number into the loaned slot (the
 *          rest of the payload is whatever the slot held: zero copy, as a camera writing
 *          its frame in place before commit); the subscriber reads those 8 bytes through
 *          its zero-copy view and validates the seqlock. The payload is never copied.
 *   "full" shm: the publisher writes every byte of the slot before commit (not timed), and
 *          the subscriber reads every byte of the view before taking its timestamp.
 *          socket: always "full" — the bytes must cross the kernel, twice copied. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_time.h"
#include "pi0_shm.h"
#include "shm_internal.h"

#define MAX_SAMPLES 8192

typedef struct shared_area {
    _Atomic int stop;
    _Atomic int ready;
    uint64_t count, lost, bad, torn;
    int64_t lat_ns[MAX_SAMPLES];
} shared_area;

typedef struct result {
    double p50, p99, p999, max;
    uint64_t count, lost, bad, torn;
} result;

static int g_cpu[2] = {-1, -1};
static int g_fifo; /* run publisher and sleeping subscribers SCHED_FIFO (if permitted) */

/* SCHED_FIFO priority 50 when asked and permitted (a robot runs these threads RT); a
 * polling subscriber always stays SCHED_OTHER: spinning at RT priority starves the CPU. */
static const char *set_sched(int want_fifo) {
    struct sched_param sp = {.sched_priority = want_fifo ? 50 : 0};
    if (want_fifo && sched_setscheduler(0, SCHED_FIFO, &sp) == 0) return "fifo";
    sp.sched_priority = 0;
    sched_setscheduler(0, SCHED_OTHER, &sp);
    return "other";
}
static const char *g_sched_name[2] = {"other", "other"}; /* publisher, subscriber */

static void pick_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set)) return;
    int k = 0;
    for (int c = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &set)) g_cpu[k++] = c;
    if (k < 2) g_cpu[0] = g_cpu[1] = -1;
}

static void pin(int which) {
    if (g_cpu[which] < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(g_cpu[which], &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void unpin(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < 2; c++)
        if (g_cpu[c] >= 0) CPU_SET(g_cpu[c], &set);
    if (g_cpu[0] >= 0) sched_setaffinity(0, sizeof set, &set);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static result summarize(shared_area *ar) {
    result r = {0};
    r.count = ar->count;
    r.lost = ar->lost;
    r.bad = ar->bad;
    r.torn = ar->torn;
    if (!r.count) return r;
    qsort(ar->lat_ns, r.count, sizeof ar->lat_ns[0], cmp_i64);
    size_t n = r.count;
#define PCT(q) ((double)ar->lat_ns[(size_t)((q) * (double)(n - 1) + 0.5)] / 1e3)
    r.p50 = PCT(0.5);
    r.p99 = PCT(0.99);
    r.p999 = PCT(0.999);
    r.max = (double)ar->lat_ns[n - 1] / 1e3;
#undef PCT
    return r;
}

static void print_result(const char *bench, const char *mode, size_t payload, const char *touch,
                         const result *r) {
    printf("{\"bench\":\"%s\",\"mode\":\"%s\",\"payload_bytes\":%zu,\"touch\":\"%s\","
           "\"samples\":%llu,\"lost\":%llu,\"torn_discarded\":%llu,\"bad\":%llu,"
           "\"p50_us\":%.3f,\"p99_us\":%.3f,\"p999_us\":%.3f,\"max_us\":%.3f,"
           "\"pub_cpu\":%d,\"sub_cpu\":%d,\"pub_sched\":\"%s\",\"sub_sched\":\"%s\"}\n",
           bench, mode, payload, touch, (unsigned long long)r->count,
           (unsigned long long)r->lost, (unsigned long long)r->torn, (unsigned long long)r->bad,
           r->p50, r->p99, r->p999, r->max, g_cpu[0], g_cpu[1], g_sched_name[0],
           g_sched_name[1]);
    fflush(stdout);
}

static int wait_child(pid_t pid, shared_area *ar, int64_t grace_ns) {
    int64_t until = pi0__now_ns() + grace_ns;
    int st = 0;
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (pi0__now_ns() > until) {
            atomic_store(&ar->stop, 1);
            if (pi0__now_ns() > until + 2000000000ll) kill(pid, SIGKILL);
        }
        usleep(2000);
    }
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

// ---- shm ----

/* Subscriber process: receive n samples, record latencies. */
static void shm_subscriber(const char *topic, int polling, int full, size_t payload, int n,
                           shared_area *ar) {
    pin(1);
    set_sched(g_fifo);
    pi0_sub *sub;
    pi0_sub_opts o = {PI0_TYPE_RAW, -1};
    int st = pi0_sub_open(topic, &o, &sub);
    if (st) {
        fprintf(stderr, "bench subscriber: %s\n", pi0_last_error_for(st));
        _exit(1);
    }
    atomic_store(&ar->ready, 1);
    while (ar->count < (uint64_t)n && !atomic_load(&ar->stop)) {
        st = polling ? pi0_sub_spin(sub, 100000000) : pi0_sub_wait(sub, 100000000);
        if (st) continue;
        pi0_sample s;
        while (ar->count < (uint64_t)n && pi0_sub_next_view(sub, &s) == 0) {
            const uint8_t *p = s.data;
            uint64_t seq, acc = 0;
            memcpy(&seq, p, 8);
            if (full) {
                /* read every byte of the view (8 bytes at a time) */
                for (size_t i = 0; i + 8 <= payload; i += 8) {
                    uint64_t v;
                    memcpy(&v, p + i, 8);
                    acc += v;
                }
            }
            int64_t t = pi0__now_ns();
            if (pi0_sub_view_valid(sub, &s)) { /* lapped while reading: detected, dropped */
                ar->torn++;
                continue;
            }
            if (seq != s.seq || s.size != payload) { /* a validated sample must be intact */
                ar->bad++;
                continue;
            }
            __asm__ __volatile__("" ::"r"(acc));
            ar->lat_ns[ar->count++] = t - (int64_t)s.stamp_ns;
            ar->lost += s.lost;
        }
    }
    pi0_sub_close(sub);
    _exit(0);
}

static int run_shm(int polling, int full, size_t payload, int n, int64_t interval_ns,
                   result *out) {
    char topic[64];
    snprintf(topic, sizeof topic, "bench.%d.%zu", (int)getpid(), payload);
    pi0_pub_opts o = {PI0_TYPE_RAW, (uint32_t)payload, 8, 0};
    pi0_pub *pub;
    int st = pi0_pub_create(topic, &o, &pub);
    if (st) {
        fprintf(stderr, "pi0rt-shm: bench: %s\n", pi0_last_error_for(st));
        return -1;
    }
    shared_area *ar =
        mmap(NULL, sizeof *ar, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ar == MAP_FAILED) {
        pi0_pub_destroy(pub);
        pi0_topic_remove(topic);
        fprintf(stderr, "pi0rt-shm: bench: mmap: %s\n", strerror(errno));
        return -1;
    }
    /* pre-fault every slot so the first loans do not pay for page faults */
    for (int i = 0; i < 8; i++) {
        memset(pi0_pub_loan(pub), 0, payload);
        pi0_pub_commit(pub, payload);
    }
    fflush(stdout);
    pid_t pid = fork();
    g_sched_name[1] = g_fifo ? "fifo" : "other";
    if (pid == 0) shm_subscriber(topic, polling, full, payload, n, ar);
    pin(0);
    g_sched_name[0] = set_sched(g_fifo);
    int64_t t_ready = pi0__now_ns() + 5000000000ll;
    while (!atomic_load(&ar->ready) && pi0__now_ns() < t_ready)
        usleep(1000);
    usleep(20000);
    int64_t next = pi0__now_ns();
    for (int i = 0; i < n && pid > 0; i++) {
        uint8_t *p = pi0_pub_loan(pub);
        uint64_t seq = pi0_pub_seq(pub);
        if (full) memset(p, (int)(seq & 0xff), payload);
        memcpy(p, &seq, 8);
        pi0_pub_commit(pub, payload);
        next += interval_ns;
        shm__sleep_until(next, NULL);
    }
    unpin();
    set_sched(0);
    int rc = pid > 0 ? wait_child(pid, ar, 1000000000ll) : -1;
    pi0_pub_destroy(pub);
    pi0_topic_remove(topic);
    *out = summarize(ar);
    munmap(ar, sizeof *ar);
    return rc;
}

// ---- Unix-domain socket baseline ----

typedef struct uds_hdr {
    int64_t stamp_ns;
    uint64_t seq;
    uint64_t size;
} uds_hdr;

static int read_full(int fd, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

static int write_full(int fd, struct iovec *iov, int cnt) {
    while (cnt > 0) {
        ssize_t w = writev(fd, iov, cnt);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    return 0;
}

static void big_buffers(int fd) {
    int sz = 8 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof sz))
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof sz))
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz);
}

static int run_uds(size_t payload, int n, int64_t interval_ns, result *out) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        fprintf(stderr, "pi0rt-shm: bench: socketpair: %s\n", strerror(errno));
        return -1;
    }
    big_buffers(sv[0]);
    big_buffers(sv[1]);
    shared_area *ar =
        mmap(NULL, sizeof *ar, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    uint8_t *buf = malloc(payload);
    if (ar == MAP_FAILED || !buf) {
        fprintf(stderr, "pi0rt-shm: bench: out of memory\n");
        close(sv[0]);
        close(sv[1]);
        free(buf);
        if (ar != MAP_FAILED) munmap(ar, sizeof *ar);
        return -1;
    }
    memset(buf, 0x5a, payload);
    fflush(stdout);
    pid_t pid = fork();
    g_sched_name[1] = g_fifo ? "fifo" : "other";
    if (pid == 0) {
        pin(1);
        set_sched(g_fifo);
        close(sv[0]);
        atomic_store(&ar->ready, 1);
        while (ar->count < (uint64_t)n) {
            uds_hdr h;
            if (read_full(sv[1], &h, sizeof h) || h.size != payload ||
                read_full(sv[1], buf, payload))
                _exit(1);
            int64_t t = pi0__now_ns();
            ar->lat_ns[ar->count++] = t - h.stamp_ns;
        }
        _exit(0);
    }
    close(sv[1]);
    pin(0);
    g_sched_name[0] = set_sched(g_fifo);
    int64_t t_ready = pi0__now_ns() + 5000000000ll;
    while (!atomic_load(&ar->ready) && pi0__now_ns() < t_ready)
        usleep(1000);
    usleep(20000);
    int64_t next = pi0__now_ns();
    for (int i = 0; i < n && pid > 0; i++) {
        uds_hdr h = {0, (uint64_t)i, payload};
        struct iovec iov[2] = {{&h, sizeof h}, {buf, payload}};
        h.stamp_ns = pi0__now_ns();
        if (write_full(sv[0], iov, 2)) break;
        next += interval_ns;
        shm__sleep_until(next, NULL);
    }
    unpin();
    set_sched(0);
    close(sv[0]);
    int rc = pid > 0 ? wait_child(pid, ar, 3000000000ll) : -1;
    *out = summarize(ar);
    munmap(ar, sizeof *ar);
    free(buf);
    return rc;
}

// ---- driver ----

static void target(const char *what, double value, const char *unit, double limit, int pass) {
    printf("{\"bench\":\"shm_target\",\"target\":\"%s\",\"value\":%.3f,\"unit\":\"%s\","
           "\"limit\":%.3f,\"pass\":%s}\n",
           what, value, unit, limit, pass ? "true" : "false");
}

// ---- cost of a poll ----

/* Nanoseconds per call of fn, best of 5 rounds of n calls (the machine is shared; the
 * minimum is the least disturbed measurement). Returns -1 if a call returned != want. */
static double per_call_ns(int (*fn)(pi0_sub *, pi0_sample *), pi0_sub *sub, int want, int n) {
    double best = 1e30;
    pi0_sample smp;
    for (int round = 0; round < 5; round++) {
        int64_t t0 = pi0__now_ns();
        for (int i = 0; i < n; i++)
            if (fn(sub, &smp) != want) return -1;
        double ns = (double)(pi0__now_ns() - t0) / n;
        if (ns < best) best = ns;
    }
    return best;
}

/* One subscriber call that finds a sample (latest_view) against one that finds nothing
 * new (next_view → PI0_EAGAIN): the routine empty poll should cost no more than a hit. */
static int bench_poll_cost(int quick) {
    char topic[64];
    snprintf(topic, sizeof topic, "pi0bench_poll_%d", (int)getpid());
    pi0_pub *pub = NULL;
    pi0_sub *sub = NULL;
    pi0_pub_opts po = {NULL, 64, 8, 0};
    pi0_sub_opts so = {NULL, -1};
    uint64_t x = 42;
    int rc = pi0_pub_create(topic, &po, &pub);
    if (!rc) rc = pi0_sub_open(topic, &so, &sub);
    if (!rc) rc = pi0_pub_publish(pub, &x, sizeof x);
    if (rc) {
        fprintf(stderr, "pi0rt-shm: bench: topic %s: %s\n", topic, pi0_last_error_for(rc));
        pi0_sub_close(sub);
        pi0_pub_destroy(pub);
        pi0_topic_remove(topic);
        return -1;
    }
    int n = quick ? 20000 : 200000;
    double hit = per_call_ns(pi0_sub_latest_view, sub, 0, n);
    double empty = per_call_ns(pi0_sub_next_view, sub, PI0_EAGAIN, n);
    pi0_sub_close(sub);
    pi0_pub_destroy(pub);
    pi0_topic_remove(topic);
    if (hit < 0 || empty < 0) {
        fprintf(stderr, "pi0rt-shm: bench: poll: a call returned an unexpected status\n");
        return -1;
    }
    printf("{\"bench\":\"shm_poll\",\"call\":\"latest_view\",\"result\":\"sample\","
           "\"ns\":%.1f}\n",
           hit);
    printf("{\"bench\":\"shm_poll\",\"call\":\"next_view\",\"result\":\"PI0_EAGAIN\","
           "\"ns\":%.1f}\n",
           empty);
    double r = hit > 0 ? empty / hit : 0;
    target("empty poll / successful poll", r, "ratio", 2.0, r <= 2.0);
    return 0;
}

int shm__bench(int quick, int fifo) {
    static const size_t payloads[3] = {64, 65536, 2764800};
    pick_cpus();
    /* probe: use SCHED_FIFO only if this process may */
    g_fifo = fifo && strcmp(set_sched(1), "fifo") == 0;
    set_sched(0);
    int div = quick ? 10 : 1;
    result futex[3], poll[3], uds[3], full;
    int rc = 0;
    for (int k = 0; k < 3; k++) {
        int big = payloads[k] > 1000000;
        int n = (big ? 1000 : 5000) / div;
        int64_t iv = big ? 1000000 : 300000;
        rc |= run_shm(0, 0, payloads[k], n, iv, &futex[k]);
        print_result("shm_latency", "futex", payloads[k], "8B", &futex[k]);
        /* A polling run is kept under 0.8 s: a subscriber spinning at SCHED_FIFO for longer
         * would hit the kernel's RT throttling (95% of each second), which is a property
         * of the test machine, not of the topic. */
        rc |= run_shm(1, 0, payloads[k], (big ? 1000 : 2500) / div, big ? 700000 : 300000,
                      &poll[k]);
        print_result("shm_latency", "polling", payloads[k], "8B", &poll[k]);
    }
    rc |= run_shm(0, 1, payloads[2], 500 / div, 4000000, &full);
    print_result("shm_latency", "futex", payloads[2], "full", &full);
    for (int k = 0; k < 3; k++) {
        int big = payloads[k] > 1000000;
        rc |= run_uds(payloads[k], (big ? 500 : 5000) / div, big ? 4000000 : 300000, &uds[k]);
        print_result("uds_latency", "blocking_read", payloads[k], "full", &uds[k]);
    }
    double poll_p50 = 0, futex_p99 = 0;
    for (int k = 0; k < 3; k++) {
        if (poll[k].p50 > poll_p50) poll_p50 = poll[k].p50;
        if (futex[k].p99 > futex_p99) futex_p99 = futex[k].p99;
    }
    target("polling p50 (worst payload)", poll_p50, "us", 1.0, poll_p50 <= 1.0);
    target("futex p99 (worst payload)", futex_p99, "us", 50.0, futex_p99 <= 50.0);
    double r_f = futex[0].p50 > 0 ? futex[2].p50 / futex[0].p50 : 0;
    double r_p = poll[0].p50 > 0 ? poll[2].p50 / poll[0].p50 : 0;
    target("futex p50 2764800B / 64B (zero copy, 8B touched)", r_f, "ratio", 2.0, r_f <= 2.0);
    target("polling p50 2764800B / 64B (zero copy, 8B touched)", r_p, "ratio", 2.0, r_p <= 2.0);
    double s8 = futex[2].p50 > 0 ? uds[2].p50 / futex[2].p50 : 0;
    double sf = full.p50 > 0 ? uds[2].p50 / full.p50 : 0;
    target("uds p50 / shm futex p50 at 2764800B (8B touched)", s8, "speedup", 50.0, s8 >= 50.0);
    target("uds p50 / shm futex p50 at 2764800B (all bytes read)", sf, "speedup", 50.0,
           sf >= 50.0);
    double sp = poll[2].p50 > 0 ? uds[2].p50 / poll[2].p50 : 0;
    target("uds p50 / shm polling p50 at 2764800B (8B touched)", sp, "speedup", 50.0,
           sp >= 50.0);
    rc |= bench_poll_cost(quick);
    for (int k = 0; k < 3; k++)
        if (futex[k].bad || poll[k].bad || full.bad) rc = -1;
    if (rc) fprintf(stderr, "pi0rt-shm: bench: a run failed or delivered a corrupt sample\n");
    return rc ? 1 : 0;
}
