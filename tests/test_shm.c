/* test_shm.c — shared-memory topics: slot protocol, threads, processes (fork/exec), fault
 * injection (SIGKILLed publishers), hostile segments, restart, gc and the tool.
 *
 * tests/shm/tsan-suite runs them all again under ThreadSanitizer ("proto" selects the
 * slot-protocol tests alone). Every test uses topics named t<pid>.* and removes them. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "harness.h"
#include "shm/pi0_shm.h"
#include "tests/shm/shm_sample.h"

// ---- helpers ----

static char g_exe_dir[4096];

static void topic_name(char *buf, size_t cap, const char *what) {
    snprintf(buf, cap, "t%d.%s", (int)getpid(), what);
}

static void seg_path(char *buf, size_t cap, const char *topic) {
    snprintf(buf, cap, "/dev/shm/pi0rt.%u.%s", (unsigned)geteuid(), topic);
}

static pi0_pub *make_pub(const char *topic, const char *type, uint32_t max, uint32_t slots) {
    pi0_pub_opts o = {type, max, slots, 0};
    pi0_pub *p = NULL;
    int st = pi0_pub_create(topic, &o, &p);
    if (st) fprintf(stderr, "  pi0_pub_create(%s): %s\n", topic, pi0_last_error());
    CHECK_EQ_INT(st, 0);
    return p;
}

static pi0_sub *make_sub(const char *topic, const char *type) {
    pi0_sub_opts o = {type, -1};
    pi0_sub *s = NULL;
    int st = pi0_sub_open(topic, &o, &s);
    if (st) fprintf(stderr, "  pi0_sub_open(%s): %s\n", topic, pi0_last_error());
    CHECK_EQ_INT(st, 0);
    return s;
}

static int sub_open_status(const char *topic, const char *type) {
    pi0_sub_opts o = {type, -1};
    pi0_sub *s = NULL;
    int st = pi0_sub_open(topic, &o, &s);
    pi0_sub_close(s);
    if (st == 0) CHECK(s != NULL);
    return st;
}

static void publish_sample(pi0_pub *p, uint32_t max) {
    uint64_t seq = pi0_pub_seq(p);
    uint32_t len = shm_sample_len(seq, max);
    shm_sample_fill(pi0_pub_loan(p), seq, 7, len);
    CHECK_EQ_INT(pi0_pub_commit(p, len), 0);
}

static void peer_path(char *buf, size_t cap) {
    snprintf(buf, cap, "%s/shm/shm_peer", g_exe_dir);
}

/* fork + exec shm_peer with args; stdout to *out_fd if non-NULL. */
static pid_t spawn_peer(char *const args[], int *out_fd) {
    char path[4200];
    peer_path(path, sizeof path);
    int fds[2] = {-1, -1};
    if (out_fd && pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        if (out_fd) {
            dup2(fds[1], 1);
            close(fds[0]);
            close(fds[1]);
        }
        char *argv[10] = {path};
        for (int i = 0; args[i] && i < 8; i++)
            argv[i + 1] = args[i];
        execv(path, argv);
        _exit(127);
    }
    if (out_fd) {
        close(fds[1]);
        *out_fd = fds[0];
    }
    return pid;
}

static void read_all(int fd, char *buf, size_t cap) {
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd, buf + n, cap - 1 - n)) > 0)
        n += (size_t)r;
    buf[n] = 0;
    close(fd);
}

static int wait_exit(pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static unsigned long long stat_field(const char *line, const char *key) {
    const char *p = strstr(line, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : ~0ull;
}

// ---- names, creation ----

static void test_proto_topic_names(void) {
    CHECK_STATUS(pi0_topic_name_check("cam.front_0-rgb"), 0);
    CHECK_STATUS(pi0_topic_name_check(""), PI0_EINVAL);
    CHECK_STATUS(pi0_topic_name_check("../etc"), PI0_EINVAL);
    CHECK_STATUS(pi0_topic_name_check(".hidden"), PI0_EINVAL);
    CHECK_STATUS(pi0_topic_name_check("a/b"), PI0_EINVAL);
    CHECK_STATUS(pi0_topic_name_check("sp ace"), PI0_EINVAL);
    char longname[80];
    memset(longname, 'x', 64);
    longname[64] = 0;
    CHECK_STATUS(pi0_topic_name_check(longname), PI0_EINVAL);
    longname[63] = 0;
    CHECK_STATUS(pi0_topic_name_check(longname), 0);
    char seg[128];
    CHECK_STATUS(pi0_topic_segment_name("cam", 1234, seg, sizeof seg), 0);
    CHECK_EQ_STR(seg, "/pi0rt.1234.cam");
    CHECK_STATUS(pi0_topic_segment_name("cam", 1234, seg, 8), PI0_ERANGE);
    pi0_pub *p = NULL;
    pi0_pub_opts o = {NULL, 64, 8, 0};
    CHECK_STATUS(pi0_pub_create("bad/name", &o, &p), PI0_EINVAL);
    CHECK(strstr(pi0_last_error(), "bad/name") != NULL);
    CHECK(p == NULL);
}

static void test_proto_create_options_mode_and_size(void) {
    char t[96], path[256];
    topic_name(t, sizeof t, "mode");
    pi0_pub *p = NULL;
    pi0_pub_opts o = {NULL, 100, 6, 0};
    CHECK_STATUS(pi0_pub_create(t, &o, &p), PI0_EINVAL); /* not a power of two */
    o.slot_count = 4;
    o.payload_max = 0;
    CHECK_STATUS(pi0_pub_create(t, &o, &p), PI0_EINVAL);
    pi0_pub_opts small = {PI0_TYPE_JOINT_STATE, 100, 4, 0};
    CHECK_STATUS(pi0_pub_create(t, &small, &p), PI0_EINVAL); /* < sizeof(pi0_joint_state) */
    pi0_pub_opts badtype = {"no spaces", 100, 4, 0};
    CHECK_STATUS(pi0_pub_create(t, &badtype, &p), PI0_EINVAL);

    mode_t old = umask(0); /* the segment mode must not depend on the umask */
    o.payload_max = 100;
    p = make_pub(t, NULL, 100, 4);
    umask(old);
    seg_path(path, sizeof path, t);
    struct stat sb;
    CHECK_EQ_INT(stat(path, &sb), 0);
    CHECK_EQ_INT(sb.st_mode & 0777, 0600);
    CHECK_EQ_INT(sb.st_uid, geteuid());
    /* header page + 4 slots of round_up(64 + 100, 64) = 192 bytes, page-rounded, + waiter page
     */
    CHECK_EQ_INT(sb.st_size, 4096 + 4096 + 4096);
    CHECK_EQ_INT(pi0_pub_payload_max(p), 100);
    pi0_sub *s = make_sub(t, PI0_TYPE_RAW);
    pi0_topic_info ti;
    pi0_sub_topic_info(s, &ti);
    CHECK_EQ_INT(ti.slot_count, 4);
    CHECK_EQ_INT(ti.slot_size, 192);
    CHECK_EQ_INT(ti.slot_size % 64, 0);
    CHECK_EQ_STR(ti.type_name, "raw");
    CHECK_EQ_INT(ti.waiter_page, 1);
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    CHECK_STATUS(pi0_topic_remove(t), 0);

    pi0_pub_opts g = {NULL, 64, 2, PI0_TOPIC_GROUP_READ};
    CHECK_STATUS(pi0_pub_create(t, &g, &p), 0);
    CHECK_EQ_INT(stat(path, &sb), 0);
    CHECK_EQ_INT(sb.st_mode & 0777, 0640);
    pi0_pub_destroy(p);
    CHECK_STATUS(pi0_topic_remove(t), 0);
    CHECK_STATUS(pi0_topic_remove(t), PI0_ENOENT);
}

// ---- slot protocol, single thread ----

static void test_proto_roundtrip_copy_view_latest(void) {
    char t[96];
    topic_name(t, sizeof t, "rt");
    enum { MAX = 1000 };
    pi0_pub *p = make_pub(t, NULL, MAX, 8);
    pi0_sub *s = make_sub(t, NULL);
    uint8_t buf[MAX];
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), PI0_EAGAIN);
    CHECK_STATUS(pi0_sub_latest_copy(s, buf, sizeof buf, &smp), PI0_EAGAIN);
    for (int i = 0; i < 5; i++)
        publish_sample(p, MAX);
    for (uint64_t i = 0; i < 5; i++) {
        CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
        CHECK_EQ_INT(smp.seq, i);
        CHECK_EQ_INT(smp.lost, 0);
        CHECK_EQ_INT(smp.epoch, 1);
        CHECK(smp.data == buf);
        CHECK(shm_sample_ok(buf, smp.size, i));
    }
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), PI0_EAGAIN);
    /* latest: newest sample; view is zero copy, inside the mapping, 64-byte aligned */
    CHECK_STATUS(pi0_sub_latest_view(s, &smp), 0);
    CHECK_EQ_INT(smp.seq, 4);
    CHECK(smp.data != buf);
    CHECK_EQ_INT((uintptr_t)smp.data % 64, 0);
    CHECK(shm_sample_ok(smp.data, smp.size, 4));
    CHECK_STATUS(pi0_sub_view_valid(s, &smp), 0);
    /* too-small buffer: ERANGE and the sample is not consumed */
    publish_sample(p, MAX);
    uint32_t len5 = shm_sample_len(5, MAX);
    CHECK_STATUS(pi0_sub_next_copy(s, buf, len5 - 1, &smp), PI0_ERANGE);
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.seq, 5);
    CHECK_EQ_INT(smp.size, len5);
    /* commit without loan, oversize commit, oversize publish */
    CHECK_STATUS(pi0_pub_commit(p, 10), PI0_EINVAL);
    void *a = pi0_pub_loan(p);
    CHECK(pi0_pub_loan(p) == a); /* loan is idempotent until commit */
    CHECK_EQ_INT((uintptr_t)a % 64, 0);
    CHECK_STATUS(pi0_pub_commit(p, MAX + 1), PI0_ERANGE);
    CHECK_EQ_INT(pi0_pub_seq(p), 6);
    CHECK_STATUS(pi0_pub_publish(p, buf, MAX + 1), PI0_ERANGE);
    shm_sample_fill(buf, 6, 7, 40);
    CHECK_STATUS(pi0_pub_publish(p, buf, 40), 0);
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.seq, 6);
    CHECK(shm_sample_ok(buf, smp.size, 6));
    /* a subscriber opened now starts after the newest sample */
    pi0_sub *s2 = make_sub(t, NULL);
    CHECK_STATUS(pi0_sub_next_copy(s2, buf, sizeof buf, &smp), PI0_EAGAIN);
    CHECK_STATUS(pi0_sub_latest_copy(s2, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.seq, 6);
    pi0_sub_close(s2);
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

static void test_proto_overrun_reports_lost(void) {
    char t[96];
    topic_name(t, sizeof t, "ovr");
    pi0_pub *p = make_pub(t, NULL, 64, 4);
    pi0_sub *s = make_sub(t, NULL);
    for (int i = 0; i < 10; i++)
        publish_sample(p, 64);
    uint8_t buf[64];
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.seq, 6); /* samples 0..5 were overwritten in a 4-slot ring */
    CHECK_EQ_INT(smp.lost, 6);
    for (uint64_t i = 7; i < 10; i++) {
        CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
        CHECK_EQ_INT(smp.seq, i);
        CHECK_EQ_INT(smp.lost, 0);
        CHECK(shm_sample_ok(buf, smp.size, i));
    }
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), PI0_EAGAIN);
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

static void test_proto_view_invalidated_by_loan_and_overwrite(void) {
    char t[96];
    topic_name(t, sizeof t, "view");
    pi0_pub *p = make_pub(t, NULL, 128, 2);
    pi0_sub *s = make_sub(t, NULL);
    publish_sample(p, 128); /* seq 0 in slot 0 */
    pi0_sample v;
    CHECK_STATUS(pi0_sub_next_view(s, &v), 0);
    CHECK_EQ_INT(v.seq, 0);
    CHECK_STATUS(pi0_sub_view_valid(s, &v), 0);
    publish_sample(p, 128); /* seq 1 in slot 1: view of 0 still intact */
    CHECK_STATUS(pi0_sub_view_valid(s, &v), 0);
    (void)pi0_pub_loan(p); /* loan of seq 2 takes slot 0: the view is dead at once */
    CHECK_STATUS(pi0_sub_view_valid(s, &v), PI0_EOVERRUN);
    /* the slot being written is never returned: latest gives seq 1, next gives 1 then waits */
    pi0_sample l;
    CHECK_STATUS(pi0_sub_latest_view(s, &l), 0);
    CHECK_EQ_INT(l.seq, 1);
    CHECK_STATUS(pi0_sub_next_view(s, &l), PI0_EAGAIN);
    CHECK_EQ_INT(pi0_pub_commit(p, 64), 0);
    CHECK_STATUS(pi0_sub_view_valid(s, &v), PI0_EOVERRUN);
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

// ---- threads ----

typedef struct wake_ctx {
    pi0_pub *pub;
    int delay_ms;
} wake_ctx;

static void *publish_later(void *arg) {
    wake_ctx *c = arg;
    usleep((useconds_t)c->delay_ms * 1000);
    publish_sample(c->pub, 64);
    return NULL;
}

/* Publishes once the subscriber `sub_topic` shows one registered sleeper. */
typedef struct sleeper_ctx {
    pi0_pub *pub;
    const char *topic;
    int saw_sleeper;
} sleeper_ctx;

static void *publish_when_asleep(void *arg) {
    sleeper_ctx *c = arg;
    pi0_sub *s = NULL;
    if (pi0_sub_open(c->topic, NULL, &s) == 0) {
        pi0_topic_info ti;
        double end = pi0_test_now() + 5;
        do {
            usleep(1000);
            pi0_sub_topic_info(s, &ti);
        } while (ti.waiters == 0 && pi0_test_now() < end);
        c->saw_sleeper = ti.waiters == 1;
        pi0_sub_close(s);
    }
    publish_sample(c->pub, 64);
    return NULL;
}

static void test_proto_wait_timeout_and_futex_wake(void) {
    char t[96];
    topic_name(t, sizeof t, "wait");
    pi0_pub *p = make_pub(t, NULL, 64, 8);
    pi0_sub *s = make_sub(t, NULL);
    double t0 = pi0_test_now();
    CHECK_STATUS(pi0_sub_wait(s, 30000000), PI0_ETIMEDOUT);
    CHECK(pi0_test_now() - t0 >= 0.029);
    CHECK_STATUS(pi0_sub_spin(s, 5000000), PI0_ETIMEDOUT);
    wake_ctx c = {p, 30};
    pthread_t th;
    sleeper_ctx sc = {p, t, 0};
    pthread_create(&th, NULL, publish_when_asleep, &sc);
    t0 = pi0_test_now();
    CHECK_STATUS(pi0_sub_wait(s, 5000000000ll), 0);
    CHECK(pi0_test_now() - t0 < 4.0); /* woken by the commit, not by the timeout */
    pthread_join(th, NULL);
    CHECK_EQ_INT(sc.saw_sleeper, 1); /* the waiter registered itself before sleeping */
    pi0_topic_info ti;
    pi0_sub_topic_info(s, &ti);
    CHECK_EQ_INT(ti.waiters, 0);
    uint8_t buf[64];
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_STATUS(pi0_sub_wait(s, 0), PI0_ETIMEDOUT);
    /* already available: returns at once */
    publish_sample(p, 64);
    CHECK_STATUS(pi0_sub_wait(s, 0), 0);
    CHECK_STATUS(pi0_sub_spin(s, 0), 0);
    pthread_create(&th, NULL, publish_later, &c);
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_STATUS(pi0_sub_spin(s, 5000000000ll), 0);
    pthread_join(th, NULL);
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

typedef struct thr_ctx {
    const char *topic;
    int mode; /* 0 next_copy+wait, 1 next_view, 2 latest_view, 3 latest_copy */
    _Atomic int *stop;
    uint64_t delivered, bad, torn, lost;
} thr_ctx;

static void *reader_thread(void *arg) {
    thr_ctx *c = arg;
    pi0_sub *s = NULL;
    if (pi0_sub_open(c->topic, NULL, &s)) {
        c->bad++;
        return NULL;
    }
    static _Thread_local uint8_t buf[4096];
    uint64_t last = 0;
    int have_last = 0;
    while (!atomic_load(c->stop)) {
        pi0_sample smp;
        int st;
        switch (c->mode) {
        case 0:
            if (pi0_sub_wait(s, 10000000)) continue;
            st = pi0_sub_next_copy(s, buf, sizeof buf, &smp);
            break;
        case 1:
            st = pi0_sub_next_view(s, &smp);
            break;
        case 2:
            st = pi0_sub_latest_view(s, &smp);
            break;
        default:
            st = pi0_sub_latest_copy(s, buf, sizeof buf, &smp);
            break;
        }
        if (st == PI0_EAGAIN) continue;
        if (st) {
            c->bad++;
            continue;
        }
        int ok = shm_sample_ok(smp.data, smp.size, smp.seq);
        /* next() is in order: each sample follows the previous one returned (torn views
         * included: they were consumed too) after `lost` skipped ones */
        if (c->mode <= 1 && have_last && smp.seq != last + 1 + smp.lost) c->bad++;
        if (c->mode >= 2 && have_last && smp.seq < last) c->bad++; /* latest goes forward */
        last = smp.seq;
        have_last = 1;
        if ((c->mode == 1 || c->mode == 2) && pi0_sub_view_valid(s, &smp)) {
            c->torn++;
            continue;
        }
        if (!ok) c->bad++;
        c->delivered++;
        c->lost += smp.lost;
    }
    pi0_sub_close(s);
    return NULL;
}

static void test_proto_threads_checksums(void) {
    char t[96];
    topic_name(t, sizeof t, "thr");
    enum { MAX = 2048 };
    pi0_pub *p = make_pub(t, NULL, MAX, 4);
    _Atomic int stop = 0;
    thr_ctx ctx[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        ctx[i] = (thr_ctx){t, i, &stop, 0, 0, 0, 0};
        pthread_create(&th[i], NULL, reader_thread, &ctx[i]);
    }
    double end = pi0_test_now() + 0.6;
    uint64_t n = 0;
    static uint8_t staged[MAX];
    while (pi0_test_now() < end) {
        if (n % 2) { /* half zero-copy in place, half through pi0_pub_publish's copy */
            publish_sample(p, MAX);
        } else {
            uint64_t seq = pi0_pub_seq(p);
            uint32_t len = shm_sample_len(seq, MAX);
            shm_sample_fill(staged, seq, 7, len);
            CHECK_STATUS(pi0_pub_publish(p, staged, len), 0);
        }
        if (++n % 64 == 0) usleep(50); /* let the sleeping reader catch some in order */
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        CHECK_MSG(ctx[i].bad == 0, "reader mode %d: %llu bad of %llu", i,
                  (unsigned long long)ctx[i].bad, (unsigned long long)ctx[i].delivered);
        CHECK_MSG(ctx[i].delivered > 0, "reader mode %d delivered nothing", i);
    }
    printf("  published %llu; delivered %llu/%llu/%llu/%llu, lost %llu/%llu, torn views "
           "%llu/%llu\n",
           (unsigned long long)n, (unsigned long long)ctx[0].delivered,
           (unsigned long long)ctx[1].delivered, (unsigned long long)ctx[2].delivered,
           (unsigned long long)ctx[3].delivered, (unsigned long long)ctx[0].lost,
           (unsigned long long)ctx[1].lost, (unsigned long long)ctx[1].torn,
           (unsigned long long)ctx[2].torn);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

// ---- types and hostile segments ----

static void test_type_mismatch_and_messages(void) {
    char t[96];
    topic_name(t, sizeof t, "type");
    pi0_pub *p = make_pub(t, PI0_TYPE_JOINT_STATE, sizeof(pi0_joint_state), 4);
    CHECK_STATUS(sub_open_status(t, PI0_TYPE_IMAGE), PI0_ETYPE);
    CHECK(strstr(pi0_last_error(), "pi0.JointState") != NULL);
    CHECK_STATUS(sub_open_status(t, PI0_TYPE_JOINT_STATE), 0);
    CHECK_STATUS(sub_open_status(t, NULL), 0);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);

    /* message checks */
    uint8_t img[64 + 4 * 3 * 2];
    memset(img, 0, sizeof img);
    pi0_image *im = (pi0_image *)img;
    im->width = 4, im->height = 2, im->stride = 12, im->format = PI0_PIX_RGB8,
    im->data_bytes = 24;
    CHECK_STATUS(pi0_image_check(img, sizeof img), 0);
    CHECK_EQ_INT(pi0_image_bytes(4, 2, PI0_PIX_RGB8), sizeof img);
    CHECK_EQ_INT(pi0_image_bytes(1280, 720, PI0_PIX_RGB8), 64 + 2764800);
    CHECK_EQ_INT(pi0_image_bytes(4, 2, 99), 0);
    CHECK_STATUS(pi0_image_check(img, sizeof img - 1), PI0_EFORMAT);
    im->stride = 11;
    CHECK_STATUS(pi0_image_check(img, sizeof img), PI0_EFORMAT);
    im->stride = 12, im->height = 0xffffffffu;
    CHECK_STATUS(pi0_image_check(img, sizeof img), PI0_EFORMAT);
    im->height = 2, im->format = 9;
    CHECK_STATUS(pi0_image_check(img, sizeof img), PI0_EFORMAT);
    CHECK_STATUS(pi0_image_check(img, 10), PI0_EFORMAT);
    pi0_joint_state js;
    memset(&js, 0, sizeof js);
    js.n = 64;
    CHECK_STATUS(pi0_joint_state_check(&js, sizeof js), 0);
    js.n = 65;
    CHECK_STATUS(pi0_joint_state_check(&js, sizeof js), PI0_EFORMAT);
    static pi0_action_chunk ch;
    ch.horizon = 50, ch.dim = 32;
    CHECK_STATUS(pi0_action_chunk_check(&ch, sizeof ch), 0);
    ch.horizon = 65;
    CHECK_STATUS(pi0_action_chunk_check(&ch, sizeof ch), PI0_EFORMAT);
    ch.horizon = 64, ch.dim = 0;
    CHECK_STATUS(pi0_action_chunk_check(&ch, sizeof ch), PI0_EFORMAT);
    CHECK_STATUS(pi0_action_chunk_check(&ch, 100), PI0_EFORMAT);
    /* a sample may end after its horizon·dim actions (what a node publishes) */
    size_t head = offsetof(pi0_action_chunk, actions);
    ch.horizon = 50, ch.dim = 14;
    CHECK_STATUS(pi0_action_chunk_check(&ch, head + 50 * 14 * 4), 0);
    CHECK_STATUS(pi0_action_chunk_check(&ch, head + 50 * 14 * 4 - 1), PI0_EFORMAT);
    CHECK_STATUS(pi0_action_chunk_check(&ch, head - 1), PI0_EFORMAT);
    pi0_action a;
    memset(&a, 0, sizeof a);
    a.dim = 7;
    CHECK_STATUS(pi0_action_check(&a, sizeof a), 0);
    a.dim = 65;
    CHECK_STATUS(pi0_action_check(&a, sizeof a), PI0_EFORMAT);
    pi0_node_status ns;
    memset(&ns, 'x', sizeof ns);
    ns.state = PI0_NODE_RUNNING;
    CHECK_STATUS(pi0_node_status_check(&ns, sizeof ns), PI0_EFORMAT); /* unterminated */
    ns.message[0] = 0;
    CHECK_STATUS(pi0_node_status_check(&ns, sizeof ns), 0);
    ns.state = 77;
    CHECK_STATUS(pi0_node_status_check(&ns, sizeof ns), PI0_EFORMAT);
}

/* Header offsets of segment format version 1 (documented in shm/pi0_shm.c). */
enum {
    H_MAGIC = 0,
    H_ABI = 8,
    H_HDRSIZE = 12,
    H_SEGSIZE = 16,
    H_SLOTS = 24,
    H_SLOTSIZE = 28,
    H_PAYMAX = 32,
    H_MSGVER = 36,
    H_WAITOFF = 48,
    H_TYPE = 64,
    H_TOPIC = 96,
    H_HEAD = 256,
    SLOT0 = 4096
};

typedef struct bad_case {
    const char *what;
    uint32_t off;
    uint64_t value;
    int width; /* 4 or 8 bytes; 0: special */
    int want;
} bad_case;

static int mutate_open(const char *t, const bad_case *c) {
    char path[256];
    seg_path(path, sizeof path, t);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    if (c->width == 4) {
        uint32_t v = (uint32_t)c->value;
        CHECK_EQ_INT(pwrite(fd, &v, 4, c->off), 4);
    } else if (c->width == 8) {
        CHECK_EQ_INT(pwrite(fd, &c->value, 8, c->off), 8);
    } else if (c->width == -1) {
        CHECK_EQ_INT(ftruncate(fd, (off_t)c->value), 0);
    } else if (c->width == -2) { /* fill a string field without a NUL */
        char junk[32];
        memset(junk, 'A', sizeof junk);
        CHECK_EQ_INT(pwrite(fd, junk, sizeof junk, c->off), 32);
    } else if (c->width == -3) { /* random garbage over the header */
        uint8_t junk[4096];
        uint64_t x = 88172645463325252ull;
        for (size_t i = 0; i < sizeof junk; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            junk[i] = (uint8_t)x;
        }
        CHECK_EQ_INT(pwrite(fd, junk, sizeof junk, 0), 4096);
    } else if (c->width == -4) {
        CHECK_EQ_INT(fchmod(fd, (mode_t)c->value), 0);
    } else if (c->width == -5) {
        CHECK_EQ_INT(fchown(fd, (uid_t)c->value, (gid_t)-1), 0);
    }
    close(fd);
    int st = sub_open_status(t, NULL);
    CHECK_MSG(st == c->want, "%s: got %s (%s), want %s", c->what, pi0_errname(st),
              pi0_last_error(), pi0_errname(c->want));
    return st;
}

static void test_bad_segments_give_errors(void) {
    char t[96];
    topic_name(t, sizeof t, "bad");
    const bad_case cases[] = {
        {"bad magic", H_MAGIC, 0x1122334455667788ull, 8, PI0_EFORMAT},
        {"other ABI version", H_ABI, 99, 4, PI0_EVERSION},
        {"header size", H_HDRSIZE, 64, 4, PI0_EFORMAT},
        {"segment size field", H_SEGSIZE, 1ull << 40, 8, PI0_EFORMAT},
        {"slot count 3", H_SLOTS, 3, 4, PI0_EFORMAT},
        {"slot count 0", H_SLOTS, 0, 4, PI0_EFORMAT},
        {"slot count 2^31", H_SLOTS, 1u << 31, 4, PI0_EFORMAT},
        {"slot count 64 (more than mapped)", H_SLOTS, 64, 4, PI0_EFORMAT},
        {"slot size too small", H_SLOTSIZE, 64, 4, PI0_EFORMAT},
        {"slot size huge", H_SLOTSIZE, 0xffffffc0u, 4, PI0_EFORMAT},
        {"payload_max huge", H_PAYMAX, 0xffffffffu, 4, PI0_EFORMAT},
        {"payload_max 0", H_PAYMAX, 0, 4, PI0_EFORMAT},
        {"waiter page offset", H_WAITOFF, 1ull << 62, 8, PI0_EFORMAT},
        {"unterminated type", H_TYPE, 0, -2, PI0_EFORMAT},
        {"foreign topic name", H_TOPIC, 0x41414141, 4, PI0_EFORMAT},
        {"garbage header", 0, 0, -3, PI0_EFORMAT},
        {"truncated to 100 bytes", 0, 100, -1, PI0_EFORMAT},
        {"truncated to 0 bytes", 0, 0, -1, PI0_EFORMAT},
        {"truncated by a page", 0, 8192, -1, PI0_EFORMAT},
        {"world-writable", 0, 0666, -4, PI0_EPERM},
        {"another user's segment", 0, 4242, -5, PI0_EPERM},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].width == -5 && geteuid() != 0) {
            printf("  (skipping \"%s\": needs root to chown)\n", cases[i].what);
            continue;
        }
        pi0_pub *p = make_pub(t, NULL, 256, 4);
        publish_sample(p, 256);
        pi0_pub_destroy(p);
        mutate_open(t, &cases[i]);
        /* a new publisher replaces a broken segment of ours, but not another user's */
        pi0_pub_opts o = {NULL, 256, 4, 0};
        int st = pi0_pub_create(t, &o, &p);
        if (cases[i].width == -5) {
            CHECK_MSG(st == PI0_EPERM, "pub over another user's segment: %s", pi0_errname(st));
            char path[256];
            seg_path(path, sizeof path, t);
            unlink(path);
        } else {
            CHECK_MSG(st == 0, "%s: new publisher: %s", cases[i].what, pi0_last_error());
            pi0_pub_destroy(p);
            CHECK_STATUS(pi0_topic_remove(t), 0);
        }
    }
    /* message version of a pi0.* type */
    pi0_pub *p = make_pub(t, PI0_TYPE_ACTION, sizeof(pi0_action), 4);
    pi0_pub_destroy(p);
    bad_case mv = {"message version", H_MSGVER, 7, 4, PI0_EVERSION};
    mutate_open(t, &mv);
    pi0_topic_remove(t);
    /* another user's topic name: looked up under their uid, not ours */
    pi0_sub_opts o = {NULL, 4242};
    pi0_sub *s = NULL;
    CHECK_STATUS(pi0_sub_open(t, &o, &s), PI0_ENOENT);
    CHECK(strstr(pi0_last_error(), "pi0rt.4242.") != NULL);
    CHECK_STATUS(sub_open_status("no.such.topic.here", NULL), PI0_ENOENT);
}

static void test_hostile_fields_after_open(void) {
    char t[96], path[256];
    topic_name(t, sizeof t, "host");
    pi0_pub *p = make_pub(t, NULL, 256, 4);
    pi0_sub *s = make_sub(t, NULL);
    publish_sample(p, 256);
    publish_sample(p, 256);
    seg_path(path, sizeof path, t);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    /* slot 1 (seq 1) claims more than payload_max: an error, no read past the slot */
    uint32_t big = 100000;
    CHECK_EQ_INT(pwrite(fd, &big, 4, SLOT0 + 1 * 320 + 16), 4);
    uint8_t buf[256];
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_latest_copy(s, buf, sizeof buf, &smp), PI0_EFORMAT);
    CHECK_STATUS(pi0_sub_latest_view(s, &smp), PI0_EFORMAT);
    /* layout fields rewritten after open are not re-read: still the validated layout */
    uint32_t slots = 1u << 20;
    CHECK_EQ_INT(pwrite(fd, &slots, 4, H_SLOTS), 4);
    /* a head far in the future: only used modulo the slot count; no crash, no sample */
    uint64_t head = 1ull << 62;
    CHECK_EQ_INT(pwrite(fd, &head, 8, H_HEAD), 8);
    int st = pi0_sub_next_copy(s, buf, sizeof buf, &smp);
    CHECK_MSG(st == PI0_EAGAIN, "next with hostile head: %s", pi0_errname(st));
    CHECK_STATUS(pi0_sub_latest_copy(s, buf, sizeof buf, &smp), PI0_EAGAIN);
    pi0_pub_info pi;
    CHECK_STATUS(pi0_sub_publisher(s, &pi), 0);
    CHECK_EQ_INT(pi.state, PI0_PUB_ALIVE);
    close(fd);
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

/* Random byte changes in the header and first slot: open and every read either succeed
 * or return an error; never a crash (the harness turns a crash into a failure). */
static void test_header_fuzz_never_crashes(void) {
    char t[96], path[256];
    topic_name(t, sizeof t, "fuzz");
    pi0_pub *p = make_pub(t, PI0_TYPE_JOINT_STATE, sizeof(pi0_joint_state), 4);
    for (int i = 0; i < 3; i++) {
        pi0_joint_state *js = pi0_pub_loan(p);
        memset(js, 0, sizeof *js);
        js->n = 3;
        pi0_pub_commit(p, sizeof *js);
    }
    pi0_pub_destroy(p);
    seg_path(path, sizeof path, t);
    int fd = open(path, O_RDWR);
    CHECK(fd >= 0);
    static uint8_t orig[4096 + 1664];
    CHECK_EQ_INT(pread(fd, orig, sizeof orig, 0), (ssize_t)sizeof orig);
    uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
    int opened = 0, rejected = 0;
    for (int it = 0; it < 3000; it++) {
        CHECK_EQ_INT(pwrite(fd, orig, sizeof orig, 0), (ssize_t)sizeof orig);
        int flips = 1 + it % 4;
        for (int k = 0; k < flips; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            /* mostly the 320 header bytes, sometimes the first slot header */
            uint32_t off = (x >> 32) % 4 ? (uint32_t)(x % 320) : 4096 + (uint32_t)(x % 64);
            uint8_t b = (uint8_t)(x >> 24);
            CHECK_EQ_INT(pwrite(fd, &b, 1, off), 1);
        }
        pi0_sub *s = NULL;
        if (pi0_sub_open(t, NULL, &s)) {
            rejected++;
            continue;
        }
        opened++;
        static uint8_t buf[1 << 16];
        pi0_sample smp;
        pi0_pub_info pi;
        pi0_topic_info ti;
        (void)pi0_sub_latest_copy(s, buf, sizeof buf, &smp);
        if (pi0_sub_latest_view(s, &smp) == 0) (void)pi0_sub_view_valid(s, &smp);
        (void)pi0_sub_next_copy(s, buf, sizeof buf, &smp);
        (void)pi0_sub_publisher(s, &pi);
        (void)pi0_sub_rate_hz(s);
        pi0_sub_topic_info(s, &ti);
        (void)pi0_sub_wait(s, 0);
        pi0_sub_close(s);
    }
    printf("  3000 mutated segments: %d rejected, %d opened and read without harm\n", rejected,
           opened);
    CHECK(rejected > 0 && opened > 0);
    close(fd);
    pi0_topic_remove(t);
}

static void test_subscriber_mapping_is_read_only(void) {
    char t[96];
    topic_name(t, sizeof t, "ro");
    pi0_pub *p = make_pub(t, NULL, 256, 4);
    publish_sample(p, 256);
    pid_t pid = fork();
    if (pid == 0) {
        pi0_sub *s = NULL;
        pi0_sample v;
        if (pi0_sub_open(t, NULL, &s) || pi0_sub_latest_view(s, &v)) _exit(1);
        signal(SIGSEGV, SIG_DFL);               /* (sanitizers catch it otherwise) */
        ((volatile uint8_t *)v.data)[0] = 0xff; /* a buggy subscriber: must fault */
        _exit(0);
    }
    CHECK_EQ_INT(wait_exit(pid), 128 + SIGSEGV);
    pi0_sub *s = make_sub(t, NULL);
    uint8_t buf[256];
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_latest_copy(s, buf, sizeof buf, &smp), 0);
    CHECK(shm_sample_ok(buf, smp.size, 0));
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

/* As root: a group member who may only read (0640) subscribes without the waiter page
 * (its waits poll); a stranger gets PI0_EPERM on a 0600 topic. */
static void test_other_user_group_read_and_denied(void) {
    if (geteuid() != 0) SKIP("needs root to switch users");
    char tg[96], tp[96];
    topic_name(tg, sizeof tg, "grp");
    topic_name(tp, sizeof tp, "priv");
    pi0_pub_opts og = {NULL, 256, 4, PI0_TOPIC_GROUP_READ};
    pi0_pub *pg = NULL, *pp = make_pub(tp, NULL, 256, 4);
    CHECK_STATUS(pi0_pub_create(tg, &og, &pg), 0);
    gid_t gid = getegid();
    uid_t owner = geteuid();
    int fds[2];
    CHECK_EQ_INT(pipe(fds), 0);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[1]);
        if (setgroups(0, NULL) || setgid(gid) || setuid(4242)) _exit(10);
        pi0_sub_opts so = {NULL, (int64_t)owner};
        pi0_sub *s = NULL;
        if (pi0_sub_open(tp, &so, &s) != PI0_EPERM) _exit(11);
        if (pi0_sub_open(tg, &so, &s) != 0) _exit(12);
        pi0_topic_info ti;
        pi0_sub_topic_info(s, &ti);
        if (ti.waiter_page != 0 || ti.mode != 0640) _exit(13);
        char go;
        if (read(fds[0], &go, 1) != 1) _exit(14); /* parent publishes now */
        if (pi0_sub_wait(s, 5000000000ll) != 0) _exit(15);
        uint8_t buf[256];
        pi0_sample smp;
        if (pi0_sub_next_copy(s, buf, sizeof buf, &smp) || !shm_sample_ok(buf, smp.size, 0))
            _exit(16);
        pi0_pub_info pi;
        pi0_sub_publisher(s, &pi);
        _exit(pi.state == PI0_PUB_ALIVE ? 0 : 17);
    }
    close(fds[0]);
    usleep(50000);
    CHECK_EQ_INT(write(fds[1], "g", 1), 1);
    usleep(20000);
    publish_sample(pg, 256);
    close(fds[1]);
    CHECK_EQ_INT(wait_exit(pid), 0);
    pi0_pub_destroy(pg);
    pi0_pub_destroy(pp);
    pi0_topic_remove(tg);
    pi0_topic_remove(tp);
}

// ---- liveness, restart, busy, gc ----

static void test_second_publisher_is_busy(void) {
    char t[96];
    topic_name(t, sizeof t, "busy");
    pi0_pub *p = make_pub(t, NULL, 64, 4);
    pi0_pub_opts o = {NULL, 64, 4, 0};
    pi0_pub *q = NULL;
    CHECK_STATUS(pi0_pub_create(t, &o, &q), PI0_EBUSY);
    CHECK(strstr(pi0_last_error(), "live publisher") != NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(pi0_pub_create(t, &o, &q) == PI0_EBUSY ? 0 : 1);
    CHECK_EQ_INT(wait_exit(pid), 0);
    CHECK_STATUS(pi0_topic_remove(t), PI0_EBUSY); /* gc never removes a live topic */
    pi0_pub_destroy(p);
    CHECK_STATUS(pi0_topic_remove(t), 0);
}

static void test_restart_in_place_continues(void) {
    char t[96];
    topic_name(t, sizeof t, "rst");
    pi0_pub *p = make_pub(t, NULL, 256, 8);
    pi0_sub *s = make_sub(t, NULL);
    pi0_pub_info pi;
    CHECK_STATUS(pi0_sub_publisher(s, &pi), 0);
    CHECK_EQ_INT(pi.state, PI0_PUB_ALIVE);
    CHECK_EQ_INT(pi.pid, getpid());
    CHECK_EQ_INT(pi.epoch, 1);
    CHECK_EQ_INT(pi.restarted, 0);
    CHECK_EQ_INT(pi.sample_age_ns, -1);
    for (int i = 0; i < 3; i++)
        publish_sample(p, 256);
    CHECK_STATUS(pi0_sub_publisher(s, &pi), 0);
    CHECK(pi.sample_age_ns >= 0 && pi.sample_age_ns < 5000000000ll);
    CHECK(pi.heartbeat_age_ns >= 0);
    CHECK_EQ_INT(pi.head, 3);
    /* a publisher in a child, SIGKILLed in the middle of a loan */
    pi0_pub_destroy(p);
    CHECK_STATUS(pi0_sub_publisher(s, &pi), 0);
    CHECK_EQ_INT(pi.state, PI0_PUB_DEAD);
    pid_t pid = fork();
    if (pid == 0) {
        pi0_pub *c = NULL;
        pi0_pub_opts o = {NULL, 256, 8, 0};
        if (pi0_pub_create(t, &o, &c)) _exit(1);
        publish_sample(c, 256);             /* seq 3 */
        memset(pi0_pub_loan(c), 0xee, 256); /* seq 4, half-written forever */
        pause();
        _exit(0);
    }
    double end = pi0_test_now() + 5;
    int restarted = 0;
    do {
        pi0_sub_publisher(s, &pi);
        restarted += pi.restarted;
        usleep(1000);
    } while (pi.head < 4 && pi0_test_now() < end);
    CHECK_EQ_INT(pi.state, PI0_PUB_ALIVE);
    CHECK_EQ_INT(restarted, 1);
    CHECK_EQ_INT(pi.epoch, 2);
    CHECK_EQ_INT(pi.pid, pid);
    usleep(20000); /* the child is now in pause() with the loan open */
    kill(pid, SIGKILL);
    wait_exit(pid);
    CHECK_STATUS(pi0_sub_publisher(s, &pi), 0);
    CHECK_EQ_INT(pi.state, PI0_PUB_DEAD);
    CHECK_EQ_INT(pi.restarted, 0);
    uint8_t buf[256];
    pi0_sample smp;
    uint64_t want = 0;
    while (pi0_sub_next_copy(s, buf, sizeof buf, &smp) == 0) {
        CHECK_EQ_INT(smp.seq, want);
        CHECK(shm_sample_ok(buf, smp.size, smp.seq));
        want++;
    }
    CHECK_EQ_INT(want, 4); /* 0..3; the half-written 4 is never delivered */
    CHECK_STATUS(pi0_sub_latest_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.seq, 3);
    CHECK_EQ_INT(smp.epoch, 2);
    /* third publisher recovers; the same subscriber continues without reopening */
    p = make_pub(t, NULL, 256, 8);
    CHECK_EQ_INT(pi0_pub_epoch(p), 3);
    CHECK_EQ_INT(pi0_pub_seq(p), 4);
    publish_sample(p, 256);
    CHECK_STATUS(pi0_sub_wait(s, 1000000000), 0);
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.seq, 4);
    CHECK_EQ_INT(smp.epoch, 3);
    CHECK(shm_sample_ok(buf, smp.size, 4));
    CHECK_STATUS(pi0_sub_publisher(s, &pi), 0);
    CHECK_EQ_INT(pi.state, PI0_PUB_ALIVE);
    CHECK_EQ_INT(pi.restarted, 1);
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

static void test_restart_with_other_layout_reattaches(void) {
    char t[96];
    topic_name(t, sizeof t, "lay");
    pi0_pub *p = make_pub(t, NULL, 64, 4);
    pi0_sub *s = make_sub(t, NULL);
    publish_sample(p, 64);
    pi0_pub_destroy(p);
    p = make_pub(t, NULL, 512, 8); /* other layout: replaces the segment */
    publish_sample(p, 512);
    publish_sample(p, 512);
    pi0_pub_info pi;
    CHECK_STATUS(pi0_sub_publisher(s, &pi), 0);
    CHECK_EQ_INT(pi.reattached, 1);
    CHECK_EQ_INT(pi.state, PI0_PUB_ALIVE);
    pi0_topic_info ti;
    pi0_sub_topic_info(s, &ti);
    CHECK_EQ_INT(ti.payload_max, 512);
    uint8_t buf[512];
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.seq, 0);
    CHECK(shm_sample_ok(buf, smp.size, 0));
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), PI0_EAGAIN);
    /* a waiter re-attaches by itself too */
    pi0_pub_destroy(p);
    p = make_pub(t, NULL, 128, 2);
    publish_sample(p, 128);
    CHECK_STATUS(pi0_sub_wait(s, 2000000000), 0);
    CHECK_STATUS(pi0_sub_latest_copy(s, buf, sizeof buf, &smp), 0);
    CHECK(shm_sample_ok(buf, smp.size, 0));
    pi0_sub_topic_info(s, &ti);
    CHECK_EQ_INT(ti.payload_max, 128);
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

// ---- processes ----

static void test_multiprocess_exec_checksums(void) {
    char t[96];
    topic_name(t, sizeof t, "mp");
    int fds[3];
    pid_t subs[3];
    const char *modes[3] = {"copy", "view", "wait"};
    for (int i = 0; i < 3; i++) {
        char *args[] = {"sub", t, (char *)modes[i], "1.5", NULL};
        subs[i] = spawn_peer(args, &fds[i]);
    }
    usleep(100000);
    char *pargs[] = {"pub", t, "65536", "8", "1.0", NULL};
    int pfd;
    pid_t pub = spawn_peer(pargs, &pfd);
    char out[256];
    read_all(pfd, out, sizeof out);
    CHECK_EQ_INT(wait_exit(pub), 0);
    unsigned long long published = stat_field(out, "published=");
    CHECK(published > 0 && published != ~0ull);
    for (int i = 0; i < 3; i++) {
        read_all(fds[i], out, sizeof out);
        CHECK_EQ_INT(wait_exit(subs[i]), 0);
        printf("  %s subscriber: %s", modes[i], out);
        CHECK_EQ_INT(stat_field(out, "bad="), 0);
        unsigned long long d = stat_field(out, "delivered=");
        CHECK(d > 0 && d != ~0ull && d <= published);
    }
    printf("  published=%llu\n", published);
    pi0_topic_remove(t);
}

static void test_fault_injection_sigkill_publisher(void) {
    char t[96];
    topic_name(t, sizeof t, "fi");
    enum { ITER = 300, MAX = 4096 };
    int sfd[2];
    char *sargs0[] = {"sub", t, "view", "0", NULL};
    char *sargs1[] = {"sub", t, "wait", "0", NULL};
    pid_t sp0 = spawn_peer(sargs0, &sfd[0]);
    pid_t sp1 = spawn_peer(sargs1, &sfd[1]);
    pi0_sub *chk = NULL;
    uint64_t seed = (uint64_t)getpid() * 2654435761u;
    int dead_ok = 0, torn_latest = 0, checked = 0;
    uint32_t last_epoch = 0;
    static uint8_t buf[MAX];
    for (int i = 0; i <= ITER; i++) {
        char *pargs[] = {"pub", t, "4096", "4", "0", NULL};
        pid_t pub = spawn_peer(pargs, NULL);
        if (!chk) {
            double end = pi0_test_now() + 5;
            while (pi0_sub_open(t, NULL, &chk) && pi0_test_now() < end)
                usleep(500);
            CHECK(chk != NULL);
            if (!chk) break;
        }
        /* Three of four publishers: wait until this one has published, then kill it at a
         * random point of publishing. Every fourth: kill it 0-3 ms after the fork, so
         * some die while exec'ing, creating or re-initializing the topic. */
        pi0_pub_info pi;
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
        if (i % 4 == 3 && i < ITER) {
            usleep((useconds_t)(seed % 3000));
        } else {
            double end = pi0_test_now() + 5;
            do {
                pi0_sub_publisher(chk, &pi);
            } while ((pi.epoch <= last_epoch || pi.state != PI0_PUB_ALIVE ||
                      pi0_sub_latest_view(chk, &(pi0_sample){0}) != 0) &&
                     pi0_test_now() < end && (usleep(100), 1));
            CHECK_MSG(pi.epoch > last_epoch, "iteration %d: publisher epoch %u, previous %u", i,
                      pi.epoch, last_epoch);
            last_epoch = pi.epoch;
            usleep((useconds_t)(seed % 1500));
        }
        kill(pub, SIGKILL);
        wait_exit(pub);
        pi0_sub_publisher(chk, &pi);
        dead_ok += pi.state == PI0_PUB_DEAD;
        if (pi.epoch > last_epoch) last_epoch = pi.epoch;
        pi0_sample smp;
        if (pi0_sub_latest_copy(chk, buf, sizeof buf, &smp) == 0) {
            checked++;
            torn_latest += !shm_sample_ok(buf, smp.size, smp.seq);
        }
    }
    CHECK_EQ_INT(dead_ok, ITER + 1);
    CHECK_EQ_INT(torn_latest, 0);
    CHECK(checked > 0);
    /* recovery: a last publisher, and the long-running subscribers still receive */
    char *pargs[] = {"pub", t, "4096", "4", "0.3", NULL};
    pid_t pub = spawn_peer(pargs, NULL);
    CHECK_EQ_INT(wait_exit(pub), 0);
    pi0_pub_info pi;
    pi0_sub_publisher(chk, &pi);
    CHECK_MSG(pi.epoch > last_epoch, "final epoch %u, previous %u", pi.epoch, last_epoch);
    CHECK_EQ_INT(pi.state, PI0_PUB_DEAD);
    printf("  %d publishers killed, last epoch %u\n", ITER + 1, pi.epoch);
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_latest_copy(chk, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.epoch, pi.epoch);
    CHECK(shm_sample_ok(buf, smp.size, smp.seq));
    kill(sp0, SIGTERM);
    kill(sp1, SIGTERM);
    for (int k = 0; k < 2; k++) {
        char out[256];
        read_all(sfd[k], out, sizeof out);
        CHECK_EQ_INT(wait_exit(k ? sp1 : sp0), 0);
        printf("  subscriber %s over %d kills: %s", k ? "wait" : "view", ITER + 1, out);
        CHECK_EQ_INT(stat_field(out, "bad="), 0);
        unsigned long long epochs = stat_field(out, "epochs=");
        CHECK_MSG(epochs >= ITER / 10 && epochs != ~0ull, "saw samples of %llu epochs", epochs);
    }
    pi0_sub_close(chk);
    pi0_topic_remove(t);
}

static void test_killed_subscriber_never_affects_publisher(void) {
    char t[96];
    topic_name(t, sizeof t, "ksub");
    pi0_pub *p = make_pub(t, NULL, 256, 4);
    pid_t pid = fork();
    if (pid == 0) {
        pi0_sub *s = NULL;
        if (pi0_sub_open(t, NULL, &s)) _exit(1);
        pi0_sub_wait(s, -1); /* asleep in the futex, counted as a sleeper */
        _exit(0);
    }
    pi0_sub *s = make_sub(t, NULL);
    pi0_topic_info ti;
    double end = pi0_test_now() + 5;
    do {
        usleep(1000);
        pi0_sub_topic_info(s, &ti);
    } while (ti.waiters == 0 && pi0_test_now() < end);
    CHECK_EQ_INT(ti.waiters, 1);
    kill(pid, SIGKILL);
    CHECK_EQ_INT(wait_exit(pid), 128 + SIGKILL);
    /* the publisher goes on: every commit succeeds (a stale sleeper count only costs a
     * needless wake syscall), and subscribers still get intact samples */
    for (int i = 0; i < 2000; i++)
        publish_sample(p, 256);
    uint8_t buf[256];
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_latest_copy(s, buf, sizeof buf, &smp), 0);
    CHECK_EQ_INT(smp.seq, 1999);
    CHECK(shm_sample_ok(buf, smp.size, 1999));
    pi0_sub_close(s);
    pi0_pub_destroy(p);
    pi0_topic_remove(t);
}

// ---- the tool ----

static int run_tool(const char *args, char *out, size_t cap) {
    char cmd[8192];
    /* bounded: a tool that hangs fails the test instead of blocking it */
    snprintf(cmd, sizeof cmd, "timeout -s KILL 60 %s/../pi0rt-shm %s 2>&1", g_exe_dir, args);
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_tool_ls_info_echo_gc(void) {
    char tl[96], td[96], out[16384], args[512];
    topic_name(tl, sizeof tl, "live");
    topic_name(td, sizeof td, "dead");
    pi0_pub *live = make_pub(tl, PI0_TYPE_JOINT_STATE, sizeof(pi0_joint_state), 8);
    pi0_pub *dead = make_pub(td, NULL, 64, 4);
    publish_sample(dead, 64);
    pi0_pub_destroy(dead);
    pi0_joint_state *js = pi0_pub_loan(live);
    memset(js, 0, sizeof *js);
    js->n = 2;
    js->position[0] = 1.5;
    js->position[1] = -0.25;
    pi0_pub_commit(live, sizeof *js);

    CHECK_EQ_INT(run_tool("--help", out, sizeof out), 0);
    CHECK(strstr(out, "usage: pi0rt-shm") != NULL);
    CHECK_EQ_INT(run_tool("ls", out, sizeof out), 0);
    CHECK(strstr(out, tl) && strstr(out, td));
    CHECK(strstr(out, "pi0.JointState") != NULL);
    snprintf(args, sizeof args, "info %s", tl);
    CHECK_EQ_INT(run_tool(args, out, sizeof out), 0);
    CHECK(strstr(out, "alive") && strstr(out, "8 x 1664"));
    /* 4096 + 8 x 1664 = 17408, page-rounded 20480, + the waiter page */
    CHECK_MSG(strstr(out, "size:          24576 bytes") && strstr(out, "free of"), "info: %s",
              out);
    snprintf(args, sizeof args, "info %s", td);
    CHECK_EQ_INT(run_tool(args, out, sizeof out), 0);
    CHECK(strstr(out, "dead") != NULL);
    CHECK_EQ_INT(run_tool("info t0.no-such-topic", out, sizeof out), 1);
    CHECK(strstr(out, "no such topic") && strchr(out, '\n') == out + strlen(out) - 1);
    CHECK_EQ_INT(run_tool("info bad/name", out, sizeof out), 2);
    CHECK_EQ_INT(run_tool("frobnicate", out, sizeof out), 2);
    /* echo: start it, then publish; it prints the decoded sample */
    snprintf(args, sizeof args, "echo %s --count 1 --duration 5", tl);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/../pi0rt-shm %s", g_exe_dir, args);
    FILE *f = popen(cmd, "r");
    pid_t pid = fork();
    if (pid == 0) { /* keep publishing until echo has started and printed one */
        for (int i = 0; i < 100; i++) {
            usleep(50000);
            js = pi0_pub_loan(live);
            memset(js, 0, sizeof *js);
            js->n = 2;
            js->position[0] = 1.5;
            js->position[1] = -0.25;
            pi0_pub_commit(live, sizeof *js);
        }
        _exit(0);
    }
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = 0;
    CHECK_EQ_INT(pclose(f), 0);
    kill(pid, SIGKILL);
    wait_exit(pid);
    CHECK_MSG(strstr(out, "joints n=2") && strstr(out, "pos=[1.5 -0.25]"), "echo said: %s",
              out);
    /* gc's optional PREFIX goes through the normal argument parsing */
    CHECK_EQ_INT(run_tool("gc --help", out, sizeof out), 0);
    CHECK(strstr(out, "usage: pi0rt-shm") != NULL);
    CHECK_EQ_INT(run_tool("gc a b", out, sizeof out), 2);
    CHECK(strstr(out, "unexpected argument") != NULL);
    CHECK_EQ_INT(run_tool("gc bad/prefix", out, sizeof out), 2);
    CHECK_EQ_INT(run_tool("gc --frob", out, sizeof out), 2);
    /* gc removes the dead topic and keeps the live one */
    snprintf(args, sizeof args, "gc t%d.", (int)getpid());
    CHECK_EQ_INT(run_tool(args, out, sizeof out), 0);
    CHECK(strstr(out, "removed") && strstr(out, td));
    char path[256];
    struct stat sb;
    seg_path(path, sizeof path, td);
    CHECK(stat(path, &sb) != 0);
    seg_path(path, sizeof path, tl);
    CHECK(stat(path, &sb) == 0);
    pi0_pub_destroy(live);
    pi0_topic_remove(tl);
}

// ---- faults in a private /dev/shm: planted files, a full tmpfs ----

enum { VICTIM_UID = 4343, ATTACKER_UID = 4242 };

/* Runs fn() in a child with its own mount namespace and a fresh tmpfs of `size` (mount
 * option, e.g. "1m") on /dev/shm, so that these faults never touch the machine's
 * /dev/shm. Returns 0 when fn passed, 1 when it failed or crashed, 77 when the namespace
 * or the mount is not permitted here (the caller skips). */
static int in_private_shm(const char *size, void (*fn)(void)) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        char opts[64];
        snprintf(opts, sizeof opts, "size=%s,mode=1777", size);
        if (unshare(CLONE_NEWNS) || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
            mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, opts))
            _exit(77);
        pi0__test_failures = 0;
        fn();
        fflush(stdout);
        _exit(pi0__test_failures ? 1 : 0);
    }
    int rc = wait_exit(pid);
    if (rc != 0 && rc != 1 && rc != 77) fprintf(stderr, "  namespace child: status %d\n", rc);
    return rc == 0 || rc == 77 ? rc : 1;
}

/* Runs fn(arg) in a child as `uid` (groups dropped). Returns its exit status, or -1 when
 * it was still running after limit_s seconds (it is then killed: a hang). */
static int run_as(uid_t uid, double limit_s, int (*fn)(void *), void *arg) {
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) || setgid(uid) || setuid(uid)) _exit(100);
        _exit(fn(arg));
    }
    double end = pi0_test_now() + limit_s;
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (pi0_test_now() > end) {
            kill(pid, SIGKILL);
            wait_exit(pid);
            return -1;
        }
        usleep(2000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* As root: puts a FIFO of mode 0444 owned by ATTACKER_UID under VICTIM_UID's topic name. */
static void plant_fifo(const char *topic) {
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/pi0rt.%u.%s", (unsigned)VICTIM_UID, topic);
    CHECK_EQ_INT(mkfifo(path, 0444), 0);
    CHECK_EQ_INT(chown(path, ATTACKER_UID, ATTACKER_UID), 0);
    CHECK_EQ_INT(chmod(path, 0444), 0);
}

static char g_fifo_topic[96], g_link_topic[96], g_dead_topic[96], g_moved_topic[96];

/* The victim opens the planted name: a prompt PI0_EPERM saying why, for subscribers and
 * publishers alike. */
static int victim_opens_fifo(void *arg) {
    (void)arg;
    pi0_sub *s = NULL;
    int st = pi0_sub_open(g_fifo_topic, NULL, &s);
    if (st != PI0_EPERM || !strstr(pi0_last_error(), "not a regular file")) {
        fprintf(stderr, "  victim sub_open: %s (%s)\n", pi0_errname(st), pi0_last_error());
        return 10;
    }
    pi0_pub_opts o = {NULL, 64, 4, 0};
    pi0_pub *p = NULL;
    st = pi0_pub_create(g_fifo_topic, &o, &p);
    if (st != PI0_EPERM) {
        fprintf(stderr, "  victim pub_create: %s (%s)\n", pi0_errname(st), pi0_last_error());
        return 11;
    }
    st = pi0_sub_open(g_link_topic, NULL, &s); /* a link is never followed */
    if (st != PI0_EPERM || !strstr(pi0_last_error(), "symbolic link")) {
        fprintf(stderr, "  victim sub_open of a link: %s (%s)\n", pi0_errname(st),
                pi0_last_error());
        return 12;
    }
    return 0;
}

/* The victim's tools: ls and gc skip the planted entry with a warning and go on (gc still
 * removes the victim's own dead topic); info fails at once naming the reason. */
static int victim_tools(void *arg) {
    (void)arg;
    pi0_pub *p = NULL;
    pi0_pub_opts o = {NULL, 64, 4, 0};
    if (pi0_pub_create(g_dead_topic, &o, &p)) return 20;
    pi0_pub_destroy(p); /* a dead topic for gc */
    char out[16384], args[512];
    if (run_tool("ls", out, sizeof out) != 0 || !strstr(out, g_dead_topic) ||
        !strstr(out, "not a regular file")) {
        fprintf(stderr, "  victim ls said: %s\n", out);
        return 21;
    }
    snprintf(args, sizeof args, "info %s", g_fifo_topic);
    if (run_tool(args, out, sizeof out) != 1 || !strstr(out, "not a regular file")) {
        fprintf(stderr, "  victim info said: %s\n", out);
        return 22;
    }
    if (run_tool("gc", out, sizeof out) != 0 || !strstr(out, "removed") ||
        !strstr(out, g_dead_topic)) {
        fprintf(stderr, "  victim gc said: %s\n", out);
        return 23;
    }
    char path[256];
    struct stat sb;
    seg_path(path, sizeof path, g_dead_topic);
    if (stat(path, &sb) == 0) return 24;
    return 0;
}

/* A subscriber whose topic was removed, then replaced by a FIFO, waits 1 s: the wait and
 * the re-attach inside it return within their timeout. fds: [0] to tell the parent the
 * topic is gone, [1] to learn the FIFO is in place. */
static int victim_waits_through_reattach(void *arg) {
    int *fds = arg;
    pi0_pub *p = NULL;
    pi0_pub_opts o = {NULL, 64, 4, 0};
    if (pi0_pub_create(g_moved_topic, &o, &p)) return 30;
    pi0_sub *s = NULL;
    if (pi0_sub_open(g_moved_topic, NULL, &s)) return 31;
    pi0_pub_destroy(p);
    if (pi0_topic_remove(g_moved_topic)) return 32;
    char c = 'r';
    if (write(fds[0], &c, 1) != 1 || read(fds[1], &c, 1) != 1) return 33;
    double t0 = pi0_test_now();
    int st = pi0_sub_wait(s, 1000000000);
    double dt = pi0_test_now() - t0;
    if (st != PI0_ETIMEDOUT || dt > 2.5) {
        fprintf(stderr, "  victim wait: %s after %.2f s\n", pi0_errname(st), dt);
        return 34;
    }
    pi0_pub_info pi;
    pi0_sub_publisher(s, &pi);
    if (pi.state != PI0_PUB_DEAD) return 35;
    pi0_sub_close(s);
    return 0;
}

static void fifo_scenario(void) {
    CHECK_EQ_INT(chmod("/dev/shm", 01777), 0);
    topic_name(g_fifo_topic, sizeof g_fifo_topic, "fifo");
    topic_name(g_link_topic, sizeof g_link_topic, "link");
    char path[256], target[256];
    snprintf(path, sizeof path, "/dev/shm/pi0rt.%u.%s", (unsigned)VICTIM_UID, g_link_topic);
    snprintf(target, sizeof target, "/dev/shm/pi0rt.%u.%s", (unsigned)VICTIM_UID, g_fifo_topic);
    CHECK_EQ_INT(symlink(target, path), 0);
    CHECK_EQ_INT(lchown(path, ATTACKER_UID, ATTACKER_UID), 0);
    topic_name(g_dead_topic, sizeof g_dead_topic, "mine");
    topic_name(g_moved_topic, sizeof g_moved_topic, "moved");
    plant_fifo(g_fifo_topic);
    int rc = run_as(VICTIM_UID, 10, victim_opens_fifo, NULL);
    CHECK_MSG(rc == 0, "victim opening the FIFO: %s (%d)", rc < 0 ? "hung" : "failed", rc);
    rc = run_as(VICTIM_UID, 30, victim_tools, NULL);
    CHECK_MSG(rc == 0, "victim's ls/info/gc: %s (%d)", rc < 0 ? "hung" : "failed", rc);
    int to_parent[2], to_child[2];
    CHECK_EQ_INT(pipe(to_parent), 0);
    CHECK_EQ_INT(pipe(to_child), 0);
    pid_t pid = fork();
    if (pid == 0) {
        int fds[2] = {to_parent[1], to_child[0]};
        _exit(run_as(VICTIM_UID, 10, victim_waits_through_reattach, fds) & 0xff);
    }
    char c;
    CHECK_EQ_INT(read(to_parent[0], &c, 1), 1);
    plant_fifo(g_moved_topic);
    CHECK_EQ_INT(write(to_child[1], "g", 1), 1);
    rc = wait_exit(pid);
    CHECK_MSG(rc == 0, "victim waiting through a re-attach: %s (%d)",
              rc == 255 ? "hung" : "failed", rc);
}

static void test_fault_fifo_planted_under_topic_name(void) {
    if (geteuid() != 0) SKIP("needs root to act as two other users");
    int rc = in_private_shm("4m", fifo_scenario);
    if (rc == 77) SKIP("no private mount namespace with a tmpfs on /dev/shm here");
    CHECK_EQ_INT(rc, 0);
}

/* Fills the tmpfs: a file grown until the file system is full. Returns its fd. */
static int fill_shm(void) {
    int fd = open("/dev/shm/filler", O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    static char block[65536];
    while (write(fd, block, sizeof block) > 0) {
    }
    while (write(fd, block, 1) > 0) {
    }
    return fd;
}

static void full_shm_scenario(void) {
    char big[96], small[96], late[96], path[256];
    topic_name(big, sizeof big, "big");
    topic_name(small, sizeof small, "small");
    topic_name(late, sizeof late, "late");
    /* 8 slots of ~200 KB do not fit in 1 MiB: an error naming topic and sizes, no segment
     * left behind, and (above all) no SIGBUS at the first write */
    pi0_pub_opts o = {NULL, 200000, 8, 0};
    pi0_pub *p = NULL;
    int st = pi0_pub_create(big, &o, &p);
    CHECK_MSG(st == PI0_ENOMEM, "oversized topic: %s (%s)", pi0_errname(st), pi0_last_error());
    if (st == 0) {
        publish_sample(p, 200000); /* today's SIGBUS */
        pi0_pub_destroy(p);
    }
    CHECK(strstr(pi0_last_error(), big) && strstr(pi0_last_error(), "1609728 bytes") &&
          strstr(pi0_last_error(), "free"));
    seg_path(path, sizeof path, big);
    struct stat sb;
    CHECK(stat(path, &sb) != 0);
    /* a topic that fits, then /dev/shm fills up: the subscriber's first wait and every
     * publish still work (their pages were reserved at creation) */
    pi0_pub *q = make_pub(small, NULL, 4000, 8);
    int filler = fill_shm();
    pi0_sub *s = make_sub(small, NULL);
    if (!q || !s) return;
    CHECK_STATUS(pi0_sub_wait(s, 10000000), PI0_ETIMEDOUT);
    for (int i = 0; i < 16; i++)
        publish_sample(q, 4000);
    uint8_t buf[4000];
    pi0_sample smp;
    CHECK_STATUS(pi0_sub_latest_copy(s, buf, sizeof buf, &smp), 0);
    CHECK(shm_sample_ok(buf, smp.size, 15));
    /* the tool says so in one line */
    char out[4096], args[256];
    snprintf(args, sizeof args, "pub %s --type raw --bytes 100000 --count 1", late);
    CHECK_EQ_INT(run_tool(args, out, sizeof out), 1);
    CHECK_MSG(strstr(out, "--shm-size") && strchr(out, '\n') == out + strlen(out) - 1,
              "pi0rt-shm pub said: %s", out);
    close(filler);
    unlink("/dev/shm/filler");
    pi0_sub_close(s);
    pi0_pub_destroy(q);
    pi0_topic_remove(small);
}

static void test_fault_full_shm_is_an_error_not_sigbus(void) {
    int rc = in_private_shm("1m", full_shm_scenario);
    if (rc == 77) SKIP("no private mount namespace with a tmpfs on /dev/shm here");
    CHECK_EQ_INT(rc, 0);
}

/* Waits shorter than the re-check period still re-attach to a publisher restarted with
 * another layout. */
static void test_restart_other_layout_short_waits(void) {
    char t[96];
    topic_name(t, sizeof t, "short");
    const int64_t waits[] = {100000000, 20000000, 0};
    for (int k = 0; k < 3; k++) {
        pi0_pub *p = make_pub(t, NULL, 64, 4);
        pi0_sub *s = make_sub(t, NULL);
        publish_sample(p, 64);
        uint8_t buf[1024];
        pi0_sample smp;
        CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
        pi0_pub_destroy(p);
        p = make_pub(t, NULL, 256 << k, 8); /* other layout: a new segment */
        publish_sample(p, 256 << k);
        double end = pi0_test_now() + 3, longest = 0;
        int st;
        do {
            double t0 = pi0_test_now();
            st = k == 2 ? pi0_sub_spin(s, waits[k]) : pi0_sub_wait(s, waits[k]);
            if (pi0_test_now() - t0 > longest) longest = pi0_test_now() - t0;
        } while (st == PI0_ETIMEDOUT && pi0_test_now() < end);
        CHECK_MSG(st == 0, "waits of %lld ns: %s", (long long)waits[k], pi0_errname(st));
        /* each call kept its timeout, the one that re-attached included (generous slack:
         * the machine is shared) */
        CHECK_MSG(longest < (double)waits[k] * 1e-9 + 0.5, "a wait of %lld ns took %.3f s",
                  (long long)waits[k], longest);
        pi0_topic_info ti;
        pi0_sub_topic_info(s, &ti);
        CHECK_EQ_INT(ti.payload_max, 256 << k);
        CHECK_STATUS(pi0_sub_next_copy(s, buf, sizeof buf, &smp), 0);
        CHECK(shm_sample_ok(buf, smp.size, 0));
        pi0_sub_close(s);
        pi0_pub_destroy(p);
        pi0_topic_remove(t);
    }
}

int main(int argc, char **argv) {
    snprintf(g_exe_dir, sizeof g_exe_dir, "%s", pi0_test_exe_dir());
    static const pi0_test tests[] = {
        TEST(test_proto_topic_names),
        TEST(test_proto_create_options_mode_and_size),
        TEST(test_proto_roundtrip_copy_view_latest),
        TEST(test_proto_overrun_reports_lost),
        TEST(test_proto_view_invalidated_by_loan_and_overwrite),
        TEST(test_proto_wait_timeout_and_futex_wake),
        TEST(test_proto_threads_checksums),
        TEST(test_type_mismatch_and_messages),
        TEST(test_bad_segments_give_errors),
        TEST(test_hostile_fields_after_open),
        TEST(test_header_fuzz_never_crashes),
        TEST(test_subscriber_mapping_is_read_only),
        TEST(test_other_user_group_read_and_denied),
        TEST(test_second_publisher_is_busy),
        TEST(test_restart_in_place_continues),
        TEST(test_restart_with_other_layout_reattaches),
        TEST(test_multiprocess_exec_checksums),
        TEST(test_fault_injection_sigkill_publisher),
        TEST(test_killed_subscriber_never_affects_publisher),
        TEST(test_tool_ls_info_echo_gc),
        TEST(test_fault_fifo_planted_under_topic_name),
        TEST(test_fault_full_shm_is_an_error_not_sigbus),
        TEST(test_restart_other_layout_short_waits),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
