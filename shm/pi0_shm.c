/* pi0_shm.c — shared-memory topics: segment format, publisher, subscriber, liveness.
 *
 * Memory-ordering summary (details at every fence):
 *   writer  loan:   slot.seq = 2s+1; fence(release); payload stores...
 *           commit: slot fields; slot.seq = 2s+2 (release); head = s+1 (release);
 *                   futex = s+1; fence(seq_cst); if (waiters) futex_wake
 *   reader  w1 = slot.seq (acquire) == 2s+2?; payload loads...; fence(acquire);
 *           w2 = slot.seq (relaxed); the sample is complete iff w1 == w2
 *   sleeper waiters++ (seq_cst); f = futex; if (head moved) stop; futex_wait(f)
 * The payload itself is copied with plain memcpy (as every practical seqlock does): a
 * racing copy may read a mix of two samples, and the re-check of slot.seq rejects it.
 * Under ThreadSanitizer (which models neither fences nor intentional races) payload
 * copies become per-word release/acquire atomics, which give the same guarantees without
 * fences, and the fences compile away. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_time.h"
#include "pi0_shm.h"

#if defined(__SANITIZE_THREAD__)
#define PI0__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PI0__TSAN 1
#endif
#endif

#ifdef PI0__TSAN
#define PI0__FENCE(order) ((void)0)
#define PI0__ORD_FIELD    memory_order_acquire
#define PI0__ORD_DEKKER   memory_order_seq_cst
#else
#define PI0__FENCE(order) atomic_thread_fence(order)
#define PI0__ORD_FIELD    memory_order_relaxed
#define PI0__ORD_DEKKER   memory_order_relaxed
#endif

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free (shared memory)");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free (shared memory)");

// ---- segment format ----

#define PI0__MAGIC         0x4d48535452304950ull /* "PI0RTSHM" little-endian */
#define PI0__PAGE          4096u
#define PI0__SLOT_HDR      64u
#define PI0__SEG_MAX       (64ull << 30) /* refuse to map anything larger */
#define PI0__DIR           "/dev/shm"
#define PI0__WAIT_SLICE_NS 100000000ll /* re-check period of a sleeping waiter */
/* Every open of a segment: never block (a FIFO planted under the name would block an
 * O_RDONLY open until a writer comes), never follow a symbolic link, never leak into a
 * child. What was opened is then checked with fstat (seg_check). */
#define PI0__OPEN_FLAGS (O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC)

/* The header page. Line 0-2 are written once, before magic is published; line 3 (the
 * publisher identity) is written by each new publisher under its own small seqlock;
 * line 4 is the producer line, written on every commit. Subscribers write nothing here. */
struct pi0__hdr {
    _Atomic uint64_t magic;  /*   0 PI0__MAGIC, stored last at creation (release) */
    uint32_t abi_version;    /*   8 PI0_SHM_ABI_VERSION */
    uint32_t header_size;    /*  12 bytes of header = slots_offset = 4096 */
    uint64_t segment_size;   /*  16 total bytes, = file size */
    uint32_t slot_count;     /*  24 power of two */
    uint32_t slot_size;      /*  28 round_up(64 + payload_max, 64) */
    uint32_t payload_max;    /*  32 */
    uint32_t msg_version;    /*  36 PI0_MSG_VERSION of the message type */
    uint64_t slots_offset;   /*  40 */
    uint64_t waiters_offset; /*  48 page-aligned, one page */
    uint32_t flags;          /*  56 enum pi0_topic_flags of the creator (informational) */
    uint32_t reserved0;      /*  60 */
    char type_name[32];      /*  64 NUL-terminated */
    char topic[64];          /*  96 NUL-terminated */
    /* publisher identity (a new publisher rewrites it; ident_seq odd while it does) */
    alignas(64) _Atomic uint64_t ident_seq; /* 192 */
    _Atomic int32_t pid;                    /* 200 */
    _Atomic uint32_t epoch;                 /* 204 1, 2, ... one per publisher start */
    _Atomic uint64_t start_time;            /* 208 /proc/<pid>/stat field 22 */
    uint64_t reserved2;                     /* 216 (was a start timestamp; never read) */
    /* producer line: only the publisher writes it */
    alignas(64) _Atomic uint64_t head; /* 256 samples committed = next sequence */
    _Atomic uint32_t futex;            /* 264 low 32 bits of head, the futex word */
    uint32_t reserved1;                /* 268 */
    _Atomic uint64_t heartbeat_ns;     /* 272 CLOCK_MONOTONIC of the last sign of life */
    char pad[40];                      /* 280 */
};
_Static_assert(offsetof(struct pi0__hdr, type_name) == 64, "header layout");
_Static_assert(offsetof(struct pi0__hdr, ident_seq) == 192, "header layout");
_Static_assert(offsetof(struct pi0__hdr, head) == 256, "header layout");
_Static_assert(offsetof(struct pi0__hdr, heartbeat_ns) == 272, "header layout");
_Static_assert(sizeof(struct pi0__hdr) == 320, "header layout");

/* Slot header; the payload follows at +64. */
struct pi0__slot {
    _Atomic uint64_t seq;      /*  0 seqlock: 0 never written, 2s+1 writing s, 2s+2 holds s */
    _Atomic uint64_t stamp_ns; /*  8 commit time */
    _Atomic uint32_t size;     /* 16 payload bytes */
    _Atomic uint32_t epoch;    /* 20 publisher epoch that wrote it */
    char pad[40];
};
_Static_assert(sizeof(struct pi0__slot) == PI0__SLOT_HDR, "slot header is one cache line");

/* The waiter page: the one place subscribers write. */
struct pi0__waiters {
    _Atomic uint32_t sleeping; /* subscribers inside futex_wait (or about to be) */
};

static uint64_t round_up(uint64_t x, uint64_t a) {
    return (x + a - 1) / a * a;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

static long futex_call(_Atomic uint32_t *word, int op, uint32_t val, const struct timespec *ts,
                       uint32_t bitset) {
    return syscall(SYS_futex, (uint32_t *)word, op, val, ts, NULL, bitset);
}

/* Copies `n` payload bytes between a slot and private memory. */
static void payload_copy(void *dst, const void *src, size_t n, int into_slot) {
#ifdef PI0__TSAN
    /* Word-wise atomics so that TSAN sees the seqlock protocol, not a plain race: stores
     * into a slot are releases (ordering the slot's odd marker before them), loads from a
     * slot are acquires (so the reader's re-check of seq comes after them). */
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (into_slot) {
            uint64_t v;
            memcpy(&v, (const char *)src + i, 8);
            atomic_store_explicit((_Atomic uint64_t *)((char *)dst + i), v,
                                  memory_order_release);
        } else {
            uint64_t v = atomic_load_explicit((_Atomic uint64_t *)((char *)src + i),
                                              memory_order_acquire);
            memcpy((char *)dst + i, &v, 8);
        }
    }
    for (; i < n; i++) {
        if (into_slot)
            atomic_store_explicit((_Atomic unsigned char *)((char *)dst + i),
                                  ((const unsigned char *)src)[i], memory_order_release);
        else
            ((unsigned char *)dst)[i] = atomic_load_explicit(
                (_Atomic unsigned char *)((char *)src + i), memory_order_acquire);
    }
#else
    (void)into_slot;
    memcpy(dst, src, n);
#endif
}

// ---- names ----

/* Checks a NUL-terminated name: 1..max characters of [A-Za-z0-9_.] (plus '-' when
 * allow_dash). `what` names it in the message ("type name", "topic"). */
static int name_check(const char *what, const char *s, size_t max, int allow_dash) {
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || (allow_dash && c == '-')))
            return pi0_errorf(PI0_EINVAL, "%s \"%.70s\": character 0x%02x not in %s", what, s,
                              (unsigned char)c,
                              allow_dash ? "[A-Za-z0-9_.-]" : "[A-Za-z0-9_.]");
        if (n >= max)
            return pi0_errorf(PI0_EINVAL, "%s \"%.70s...\": longer than %zu characters", what,
                              s, max);
    }
    if (n == 0) return pi0_errorf(PI0_EINVAL, "%s is empty", what);
    return 0;
}

static int type_name_check(const char *t) {
    return name_check("type name", t, PI0_TYPE_NAME_MAX, 0);
}

int pi0_topic_name_check(const char *topic) {
    if (!topic) return pi0_errorf(PI0_EINVAL, "topic name is NULL");
    int st = name_check("topic", topic, PI0_TOPIC_NAME_MAX, 1);
    if (st) return st;
    if (topic[0] == '.') return pi0_errorf(PI0_EINVAL, "topic \"%s\": starts with '.'", topic);
    return 0;
}

int pi0_topic_segment_name(const char *topic, int64_t uid, char *buf, size_t cap) {
    int st = pi0_topic_name_check(topic);
    if (st) return st;
    if (uid < 0) uid = (int64_t)geteuid();
    if (uid > UINT32_MAX)
        return pi0_errorf(PI0_EINVAL, "topic %s: bad uid %lld", topic, (long long)uid);
    int n = snprintf(buf, cap, "/pi0rt.%lld.%s", (long long)uid, topic);
    if (n < 0 || (size_t)n >= cap)
        return pi0_errorf(PI0_ERANGE, "topic %s: segment name needs %d bytes", topic, n + 1);
    return 0;
}

// ---- process identity and the publisher lock ----

/* Start time (clock ticks since boot, /proc/<pid>/stat field 22) of a running process;
 * 0 if it does not exist or is a zombie. */
static uint64_t proc_start_time(pid_t pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    /* Field 2 (comm) is in parentheses and may hold spaces or ')': skip to the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p || p[1] != ' ') return 0;
    p += 2; /* field 3: state */
    if (*p == 'Z' || *p == 'X' || *p == 'x') return 0;
    for (int field = 3; field < 22; field++) {
        p = strchr(p, ' ');
        if (!p) return 0;
        p++;
    }
    return strtoull(p, NULL, 10);
}

/* Whether some open file description holds a write lock on the segment (the publisher's
 * OFD lock). F_OFD_GETLK only asks; it takes nothing. 1 = held, 0 = free, <0 = error. */
static int publisher_lock_held(int fd) {
    struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_OFD_GETLK, &fl) < 0) return -1;
    return fl.l_type != F_UNLCK;
}

static int publisher_lock_take(int fd) {
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    return fcntl(fd, F_OFD_SETLK, &fl);
}

/* Takes the publisher lock of `topic`'s segment fd: 0, or PI0_EBUSY naming the pid of the
 * live publisher that holds it, or PI0_EIO. */
static int lock_or_busy(int fd, const char *topic) {
    if (publisher_lock_take(fd) == 0) return 0;
    int e = errno;
    if (e != EAGAIN && e != EACCES)
        return pi0_errorf(PI0_EIO, "topic %s: lock: %s", topic, strerror(e));
    struct pi0__hdr tmp;
    int32_t pid = 0;
    if (pread(fd, &tmp, sizeof tmp, 0) == (ssize_t)sizeof tmp)
        pid = atomic_load_explicit(&tmp.pid, memory_order_relaxed);
    return pi0_errorf(PI0_EBUSY, "topic %s: a live publisher (pid %d) holds it", topic,
                      (int)pid);
}

/* PI0_EPERM or PI0_EIO for a failed shm_open of segment `name` (errno still set). */
static int open_error(const char *topic, const char *name) {
    int e = errno;
    if (e == ELOOP)
        return pi0_errorf(PI0_EPERM, "topic %s: %s%s is a symbolic link", topic, PI0__DIR,
                          name);
    return pi0_errorf(e == EACCES ? PI0_EPERM : PI0_EIO, "topic %s: shm_open %s%s: %s", topic,
                      PI0__DIR, name, strerror(e));
}

/* Checks what an open of segment `name` gave: a regular file owned by `uid`, and, when
 * `check_mode`, writable by nobody else. Fills *sb. 0 or PI0_EPERM / PI0_EIO naming why. */
static int seg_check(int fd, const char *topic, const char *name, int64_t uid, int check_mode,
                     struct stat *sb) {
    if (fstat(fd, sb) < 0)
        return pi0_errorf(PI0_EIO, "topic %s: fstat %s%s: %s", topic, PI0__DIR, name,
                          strerror(errno));
    if (!S_ISREG(sb->st_mode))
        return pi0_errorf(PI0_EPERM, "topic %s: %s%s is not a regular file (mode %06o)", topic,
                          PI0__DIR, name, (unsigned)sb->st_mode);
    if ((int64_t)sb->st_uid != uid)
        return pi0_errorf(PI0_EPERM, "topic %s: %s%s is owned by uid %u, expected %lld", topic,
                          PI0__DIR, name, (unsigned)sb->st_uid, (long long)uid);
    if (check_mode && (sb->st_mode & 022))
        return pi0_errorf(PI0_EPERM, "topic %s: %s%s has mode %03o (writable by others)", topic,
                          PI0__DIR, name, (unsigned)(sb->st_mode & 0777));
    return 0;
}

typedef struct ident {
    int32_t pid;
    uint32_t epoch;
    uint64_t start_time;
} ident;

static ident ident_read(const struct pi0__hdr *h) {
    ident id = {0, 0, 0};
    for (int tries = 0; tries < 100; tries++) {
        /* acquire: pairs with the writer's final release store of ident_seq, so the fields
         * read below are at least as new as that store */
        uint64_t s1 = atomic_load_explicit(&h->ident_seq, memory_order_acquire);
        id.pid = atomic_load_explicit(&h->pid, PI0__ORD_FIELD);
        id.epoch = atomic_load_explicit(&h->epoch, PI0__ORD_FIELD);
        id.start_time = atomic_load_explicit(&h->start_time, PI0__ORD_FIELD);
        /* acquire fence: orders the field loads above before the re-check below, so a
         * concurrent rewrite (which first makes ident_seq odd) is detected */
        PI0__FENCE(memory_order_acquire);
        uint64_t s2 = atomic_load_explicit(&h->ident_seq, memory_order_relaxed);
        if (s1 == s2 && !(s1 & 1)) break;
        cpu_relax();
    }
    return id;
}

// ---- header validation (subscriber side: everything is untrusted) ----

typedef struct layout {
    uint32_t slot_count, slot_size, payload_max, msg_version;
    uint64_t slots_offset, waiters_offset, segment_size;
    char type_name[PI0_TYPE_NAME_MAX + 1];
} layout;

static size_t known_type_min(const char *type) {
    if (!strcmp(type, PI0_TYPE_IMAGE)) return sizeof(pi0_image);
    if (!strcmp(type, PI0_TYPE_JOINT_STATE)) return sizeof(pi0_joint_state);
    if (!strcmp(type, PI0_TYPE_ACTION_CHUNK)) return sizeof(pi0_action_chunk);
    if (!strcmp(type, PI0_TYPE_ACTION)) return sizeof(pi0_action);
    if (!strcmp(type, PI0_TYPE_NODE_STATUS)) return sizeof(pi0_node_status);
    return 0;
}

/* Computes the layout of a topic created with options *o, or returns `err` (PI0_EINVAL for
 * a publisher's options, PI0_EFORMAT for a segment header's fields) naming what is wrong.
 * The one place the layout rules live: publishers create with it, subscribers and
 * restarting publishers check headers against it. */
static int layout_compute(const char *topic, const pi0_pub_opts *o, int err, layout *l) {
    memset(l, 0, sizeof *l);
    const char *type = o->type_name ? o->type_name : PI0_TYPE_RAW;
    int st = type_name_check(type);
    if (st && err != PI0_EINVAL) st = pi0_errorf(err, "topic %s: garbage type name", topic);
    if (st) return st;
    uint32_t count = o->slot_count ? o->slot_count : 8;
    if (count < 2 || count > PI0_SHM_SLOTS_MAX || (count & (count - 1)))
        return pi0_errorf(err, "topic %s: slot_count %u is not a power of two in 2..%u", topic,
                          count, PI0_SHM_SLOTS_MAX);
    if (o->payload_max == 0 || o->payload_max > PI0_SHM_PAYLOAD_MAX)
        return pi0_errorf(err, "topic %s: payload_max %u not in 1..%u", topic, o->payload_max,
                          PI0_SHM_PAYLOAD_MAX);
    size_t min = known_type_min(type);
    if (o->payload_max < min)
        return pi0_errorf(err, "topic %s: payload_max %u < %zu bytes of a %s", topic,
                          o->payload_max, min, type);
    if (o->flags & ~(uint32_t)PI0_TOPIC_GROUP_READ)
        return pi0_errorf(err, "topic %s: unknown flags 0x%x", topic, o->flags);
    l->slot_count = count;
    l->payload_max = o->payload_max;
    l->slot_size = (uint32_t)round_up(PI0__SLOT_HDR + (uint64_t)o->payload_max, 64);
    l->msg_version = PI0_MSG_VERSION;
    l->slots_offset = PI0__PAGE;
    /* all factors are bounded above, so this cannot overflow 64 bits */
    l->waiters_offset = round_up(l->slots_offset + (uint64_t)count * l->slot_size, PI0__PAGE);
    l->segment_size = l->waiters_offset + PI0__PAGE;
    if (l->segment_size > PI0__SEG_MAX)
        return pi0_errorf(err, "topic %s: %u slots of %u bytes exceed %llu GiB", topic, count,
                          l->slot_size, PI0__SEG_MAX >> 30);
    snprintf(l->type_name, sizeof l->type_name, "%s", type);
    return 0;
}

static int layout_matches(const layout *a, const layout *b) {
    return a->slot_count == b->slot_count && a->slot_size == b->slot_size &&
           a->payload_max == b->payload_max && a->msg_version == b->msg_version &&
           a->segment_size == b->segment_size && !strcmp(a->type_name, b->type_name);
}

/* Validates a mapped header of `size` bytes; fills *l. `topic` is the expected name. */
static int header_validate(const char *topic, const struct pi0__hdr *h, uint64_t size,
                           layout *l) {
    if (size < PI0__PAGE)
        return pi0_errorf(PI0_EFORMAT, "topic %s: segment truncated (%llu bytes)", topic,
                          (unsigned long long)size);
    /* acquire: pairs with the creator's release store of magic, so every layout field
     * read below was written before it (they are never written again) */
    uint64_t magic = atomic_load_explicit(&h->magic, memory_order_acquire);
    if (magic != PI0__MAGIC)
        return pi0_errorf(PI0_EFORMAT, "topic %s: bad magic 0x%016llx (not a pi0rt topic)",
                          topic, (unsigned long long)magic);
    if (h->abi_version != PI0_SHM_ABI_VERSION)
        return pi0_errorf(PI0_EVERSION,
                          "topic %s: segment ABI version %u, this library speaks %u", topic,
                          h->abi_version, PI0_SHM_ABI_VERSION);
    if (!memchr(h->type_name, 0, sizeof h->type_name) || !memchr(h->topic, 0, sizeof h->topic))
        return pi0_errorf(PI0_EFORMAT, "topic %s: type or topic name not terminated", topic);
    if (strcmp(h->topic, topic))
        return pi0_errorf(PI0_EFORMAT, "topic %s: segment names topic \"%.63s\"", topic,
                          h->topic);
    if (h->slot_count == 0) /* layout_compute would read 0 as "the default" */
        return pi0_errorf(PI0_EFORMAT, "topic %s: slot count 0", topic);
    /* a private, terminated copy: the shared bytes may change under us */
    char type[sizeof h->type_name];
    memcpy(type, h->type_name, sizeof type);
    type[sizeof type - 1] = 0;
    /* The header must be exactly what a publisher with these options creates. */
    pi0_pub_opts o = {type, h->payload_max, h->slot_count, 0};
    int st = layout_compute(topic, &o, PI0_EFORMAT, l);
    if (st) return st;
    if (known_type_min(l->type_name) && h->msg_version != PI0_MSG_VERSION)
        return pi0_errorf(PI0_EVERSION,
                          "topic %s: %s message version %u, this library speaks %u", topic,
                          l->type_name, h->msg_version, PI0_MSG_VERSION);
    l->msg_version = h->msg_version; /* any version of a type we do not decode */
    layout have = *l;
    have.slot_size = h->slot_size;
    have.segment_size = h->segment_size;
    if (!layout_matches(&have, l) || h->header_size != PI0__PAGE ||
        h->slots_offset != l->slots_offset || h->waiters_offset != l->waiters_offset)
        return pi0_errorf(PI0_EFORMAT,
                          "topic %s: header (header size %u, slot size %u, slots at %llu, "
                          "waiter page at %llu, %llu bytes) inconsistent with %u slots of "
                          "payload_max %u",
                          topic, h->header_size, h->slot_size,
                          (unsigned long long)h->slots_offset,
                          (unsigned long long)h->waiters_offset,
                          (unsigned long long)h->segment_size, l->slot_count, l->payload_max);
    if (l->segment_size != size)
        return pi0_errorf(PI0_EFORMAT,
                          "topic %s: header says %llu bytes, segment has %llu (truncated?)",
                          topic, (unsigned long long)l->segment_size, (unsigned long long)size);
    return 0;
}

// ---- publisher ----

struct pi0_pub {
    int fd;
    uint8_t *base; /* read-write mapping of the whole segment */
    size_t size;
    struct pi0__hdr *hdr;
    struct pi0__waiters *waiters;
    uint64_t slots_offset;
    uint32_t mask, slot_size, payload_max, epoch;
    uint64_t head; /* next sequence (private copy; the publisher is single) */
    int loaned;
    char topic[PI0_TOPIC_NAME_MAX + 1];
};

static struct pi0__slot *pub_slot(const pi0_pub *p, uint64_t s) {
    return (struct pi0__slot *)(p->base + p->slots_offset + (s & p->mask) * p->slot_size);
}

static uint64_t self_start_time(void) {
    return proc_start_time(getpid());
}

/* Writes the publisher identity under its seqlock (only the lock holder does this). */
static void ident_write(struct pi0__hdr *h, uint32_t epoch) {
    uint64_t s = atomic_load_explicit(&h->ident_seq, memory_order_relaxed);
    if (s & 1) s++; /* a publisher died inside this function: start a fresh even value */
    atomic_store_explicit(&h->ident_seq, s + 1, memory_order_relaxed);
    /* release fence: orders the odd ident_seq above before the field stores below, so a
     * reader that sees any new field also sees ident_seq odd at its re-check */
    PI0__FENCE(memory_order_release);
    atomic_store_explicit(&h->pid, (int32_t)getpid(), PI0__ORD_DEKKER);
    atomic_store_explicit(&h->start_time, self_start_time(), PI0__ORD_DEKKER);
    atomic_store_explicit(&h->epoch, epoch, PI0__ORD_DEKKER);
    /* release: the fields above are visible to whoever acquires the even value */
    atomic_store_explicit(&h->ident_seq, s + 2, memory_order_release);
}

/* Reserves every page of the segment (and sets its size) so that no later store into it
 * can fault: on a full tmpfs a sparse segment maps fine, then SIGBUSes at the first write
 * into a page that cannot be allocated. PI0_ENOMEM names the sizes when /dev/shm is full. */
static int pub_reserve(pi0_pub *p, const layout *l) {
    if (fallocate(p->fd, 0, 0, (off_t)l->segment_size) == 0) return 0;
    int e = errno;
    if (e == EOPNOTSUPP && ftruncate(p->fd, (off_t)l->segment_size) == 0)
        return 0; /* a file system without fallocate: sparse, as good as it gets */
    if (e != ENOSPC)
        return pi0_errorf(PI0_EIO, "topic %s: reserving %llu bytes in %s: %s", p->topic,
                          (unsigned long long)l->segment_size, PI0__DIR, strerror(e));
    struct statvfs vfs;
    unsigned long long total = 0, avail = 0;
    if (fstatvfs(p->fd, &vfs) == 0) {
        total = (unsigned long long)vfs.f_blocks * vfs.f_frsize;
        avail = (unsigned long long)vfs.f_bavail * vfs.f_frsize;
    }
    return pi0_errorf(PI0_ENOMEM,
                      "topic %s: %s is full: the topic needs %llu bytes, %llu bytes free of "
                      "%llu (make %s larger, e.g. docker run --shm-size=1g, or use fewer or "
                      "smaller slots)",
                      p->topic, PI0__DIR, (unsigned long long)l->segment_size, avail, total,
                      PI0__DIR);
}

static int pub_map(pi0_pub *p, const layout *l) {
    int st = pub_reserve(p, l);
    if (st) return st;
    void *m = mmap(NULL, l->segment_size, PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
    if (m == MAP_FAILED)
        return pi0_errorf(PI0_EIO, "topic %s: mmap %llu bytes: %s", p->topic,
                          (unsigned long long)l->segment_size, strerror(errno));
    p->base = m;
    p->size = l->segment_size;
    p->hdr = m;
    p->waiters = (struct pi0__waiters *)(p->base + l->waiters_offset);
    p->slots_offset = l->slots_offset;
    p->mask = l->slot_count - 1;
    p->slot_size = l->slot_size;
    p->payload_max = l->payload_max;
    return 0;
}

/* Fresh segment: we created it (O_EXCL) and hold its lock. */
static int pub_init_fresh(pi0_pub *p, const layout *l, uint32_t flags) {
    int st = pub_map(p, l);
    if (st) return st;
    struct pi0__hdr *h = p->hdr; /* tmpfs pages start zeroed: every slot seq is 0 */
    h->abi_version = PI0_SHM_ABI_VERSION;
    h->header_size = PI0__PAGE;
    h->segment_size = l->segment_size;
    h->slot_count = l->slot_count;
    h->slot_size = l->slot_size;
    h->payload_max = l->payload_max;
    h->msg_version = l->msg_version;
    h->slots_offset = l->slots_offset;
    h->waiters_offset = l->waiters_offset;
    h->flags = flags;
    snprintf(h->type_name, sizeof h->type_name, "%s", l->type_name);
    snprintf(h->topic, sizeof h->topic, "%s", p->topic);
    p->epoch = 1;
    p->head = 0;
    ident_write(h, p->epoch);
    atomic_store_explicit(&h->heartbeat_ns, (uint64_t)pi0__now_ns(), memory_order_relaxed);
    /* release: publishes every header field above to subscribers that acquire magic */
    atomic_store_explicit(&h->magic, PI0__MAGIC, memory_order_release);
    return 0;
}

/* Existing segment of a dead publisher whose header matches our layout: continue it. */
static int pub_init_restart(pi0_pub *p, const layout *l) {
    int st = pub_map(p, l);
    if (st) return st;
    struct pi0__hdr *h = p->hdr;
    /* The dead publisher's last loan (slot head & mask) may be half written: its seq is
     * odd, or 2*head+2 if it died between the slot commit and the head store. Readers
     * only accept slots whose seq is exactly 2s+2 for an s < head, so neither is ever
     * delivered, and our first loan overwrites that slot. */
    p->head = atomic_load_explicit(&h->head, memory_order_relaxed);
    p->epoch = atomic_load_explicit(&h->epoch, memory_order_relaxed) + 1;
    if (p->epoch == 0) p->epoch = 1;
    ident_write(h, p->epoch);
    atomic_store_explicit(&h->heartbeat_ns, (uint64_t)pi0__now_ns(), memory_order_relaxed);
    return 0;
}

int pi0_pub_create(const char *topic, const pi0_pub_opts *opts, pi0_pub **out) {
    if (!out || !opts) return pi0_errorf(PI0_EINVAL, "pi0_pub_create: NULL argument");
    *out = NULL;
    char name[128];
    int st = pi0_topic_segment_name(topic, -1, name, sizeof name);
    if (st) return st;
    layout want;
    if ((st = layout_compute(topic, opts, PI0_EINVAL, &want))) return st;
    mode_t mode = (opts->flags & PI0_TOPIC_GROUP_READ) ? 0640 : 0600;

    pi0_pub *p = calloc(1, sizeof *p);
    if (!p) return pi0_errorf(PI0_ENOMEM, "topic %s: out of memory", topic);
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->fd = -1;
    for (int attempt = 0; attempt < 8; attempt++) {
        if (p->fd >= 0) close(p->fd);
        int created = 1;
        p->fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL | PI0__OPEN_FLAGS, 0600);
        if (p->fd < 0 && errno == EEXIST) {
            created = 0;
            p->fd = shm_open(name, O_RDWR | PI0__OPEN_FLAGS, 0);
            if (p->fd < 0 && errno == ENOENT) continue; /* removed meanwhile: create */
        }
        if (p->fd < 0) {
            st = open_error(topic, name);
            goto fail;
        }
        struct stat sb;
        if ((st = seg_check(p->fd, topic, name, (int64_t)geteuid(), 0, &sb))) goto fail;
        if ((st = lock_or_busy(p->fd, topic))) goto fail;
        /* gc (or a racing publisher) may have unlinked the name between our open and our
         * lock; then this file is orphaned and we start over. */
        if (fstat(p->fd, &sb) < 0 || sb.st_nlink == 0) continue;
        if (fchmod(p->fd, mode) < 0) {
            st = pi0_errorf(PI0_EIO, "topic %s: fchmod %o: %s", topic, (unsigned)mode,
                            strerror(errno));
            goto fail;
        }
        if (created) {
            if ((st = pub_init_fresh(p, &want, opts->flags))) goto fail_unlink;
            break;
        }
        /* Existing segment, dead publisher (we hold its lock). Reuse it in place when its
         * header is valid and has our layout; otherwise replace it. */
        layout have;
        int reuse = 0;
        if ((uint64_t)sb.st_size == want.segment_size) {
            void *m = mmap(NULL, PI0__PAGE, PROT_READ, MAP_SHARED, p->fd, 0);
            if (m != MAP_FAILED) {
                /* a head near 2^63 would wrap the 2s+2 seqlock encoding: start afresh */
                reuse = header_validate(topic, m, (uint64_t)sb.st_size, &have) == 0 &&
                        layout_matches(&have, &want) &&
                        atomic_load_explicit(&((struct pi0__hdr *)m)->head,
                                             memory_order_relaxed) < (1ull << 62);
                munmap(m, PI0__PAGE);
            }
        }
        pi0_clear_error();
        if (reuse) {
            if ((st = pub_init_restart(p, &want))) goto fail;
            break;
        }
        /* Other layout or garbage: unlink it (attached subscribers keep their mapping and
         * see it dead, then re-attach by name) and create a fresh one. */
        shm_unlink(name);
    }
    if (!p->base) {
        st = pi0_errorf(PI0_EBUSY, "topic %s: segment kept changing under us", topic);
        goto fail;
    }
    *out = p;
    return 0;
fail_unlink:
    shm_unlink(name);
fail:
    if (p->base) munmap(p->base, p->size);
    if (p->fd >= 0) close(p->fd);
    free(p);
    return st;
}

void pi0_pub_destroy(pi0_pub *pub) {
    if (!pub) return;
    munmap(pub->base, pub->size);
    close(pub->fd); /* drops the OFD lock: subscribers now see the publisher dead */
    free(pub);
}

void *pi0_pub_loan(pi0_pub *pub) {
    struct pi0__slot *slot = pub_slot(pub, pub->head);
    if (!pub->loaned) {
        atomic_store_explicit(&slot->seq, 2 * pub->head + 1, PI0__ORD_DEKKER);
        /* release fence: orders the odd marker above before every payload store the
         * caller makes through the returned pointer; pairs with the reader's acquire fence
         * before its re-check, so a reader that saw any of those stores sees the marker */
        PI0__FENCE(memory_order_release);
        pub->loaned = 1;
    }
    return (uint8_t *)slot + PI0__SLOT_HDR;
}

int pi0_pub_commit(pi0_pub *pub, size_t size) {
    if (!pub->loaned)
        return pi0_errorf(PI0_EINVAL, "topic %s: commit without a loan", pub->topic);
    if (size > pub->payload_max)
        return pi0_errorf(PI0_ERANGE, "topic %s: sample of %zu bytes > payload_max %u",
                          pub->topic, size, pub->payload_max);
    uint64_t s = pub->head;
    struct pi0__slot *slot = pub_slot(pub, s);
    uint64_t now = (uint64_t)pi0__now_ns();
    atomic_store_explicit(&slot->stamp_ns, now, memory_order_relaxed);
    atomic_store_explicit(&slot->size, (uint32_t)size, memory_order_relaxed);
    atomic_store_explicit(&slot->epoch, pub->epoch, memory_order_relaxed);
    /* release: the payload and slot fields written above happen-before any reader that
     * acquires 2s+2 from this word */
    atomic_store_explicit(&slot->seq, 2 * s + 2, memory_order_release);
    pub->head = s + 1;
    pub->loaned = 0;
    /* release: a reader that acquires head > s finds slot s committed (the store above) */
    atomic_store_explicit(&pub->hdr->head, s + 1, memory_order_release);
    atomic_store_explicit(&pub->hdr->futex, (uint32_t)(s + 1), PI0__ORD_DEKKER);
    atomic_store_explicit(&pub->hdr->heartbeat_ns, now, memory_order_relaxed);
    /* seq_cst fence (Dekker with pi0_sub_wait): orders the head/futex stores above before
     * the load of the sleeper count below. A sleeper increments the count (seq_cst RMW)
     * before it re-reads head and the futex word, so either we see its increment and wake
     * it, or it sees our new head (or futex value) and does not sleep. */
    PI0__FENCE(memory_order_seq_cst);
    if (atomic_load_explicit(&pub->waiters->sleeping, PI0__ORD_DEKKER) != 0)
        futex_call(&pub->hdr->futex, FUTEX_WAKE, INT_MAX, NULL, 0);
    return 0;
}

int pi0_pub_publish(pi0_pub *pub, const void *data, size_t size) {
    if (size > pub->payload_max)
        return pi0_errorf(PI0_ERANGE, "topic %s: sample of %zu bytes > payload_max %u",
                          pub->topic, size, pub->payload_max);
    void *dst = pi0_pub_loan(pub);
    payload_copy(dst, data, size, 1);
    return pi0_pub_commit(pub, size);
}

void pi0_pub_heartbeat(pi0_pub *pub) {
    atomic_store_explicit(&pub->hdr->heartbeat_ns, (uint64_t)pi0__now_ns(),
                          memory_order_relaxed);
}

uint64_t pi0_pub_seq(const pi0_pub *pub) {
    return pub->head;
}

uint32_t pi0_pub_epoch(const pi0_pub *pub) {
    return pub->epoch;
}

uint32_t pi0_pub_payload_max(const pi0_pub *pub) {
    return pub->payload_max;
}

// ---- subscriber ----

struct pi0_sub {
    int fd;
    const uint8_t *base; /* mapping: read-only except the waiter page */
    size_t size;
    const struct pi0__hdr *hdr;
    struct pi0__waiters *waiters; /* NULL when we could not open the file for writing */
    layout l;                     /* validated at open; never re-read from shm */
    uint32_t mask;
    uint64_t next_seq; /* cursor: next sample next() returns */
    uint64_t lost;     /* skipped samples not yet reported */
    uint32_t epoch_seen;
    uint32_t mode;
    int64_t next_check; /* when a wait next checks for a replaced segment (pi0__now_ns) */
    int64_t uid;
    char topic[PI0_TOPIC_NAME_MAX + 1];
    char type_req[PI0_TYPE_NAME_MAX + 1]; /* empty: any */
};

static const struct pi0__slot *sub_slot(const pi0_sub *s, uint64_t seq) {
    return (const struct pi0__slot *)(s->base + s->l.slots_offset +
                                      (seq & s->mask) * s->l.slot_size);
}

/* Opens and validates the segment into *s (fd, mapping, layout). */
static int sub_attach(pi0_sub *s) {
    char name[128];
    int st = pi0_topic_segment_name(s->topic, s->uid, name, sizeof name);
    if (st) return st;
    int writable = 1;
    int fd = shm_open(name, O_RDWR | PI0__OPEN_FLAGS, 0);
    if (fd < 0 && errno == EACCES) {
        writable = 0;
        fd = shm_open(name, O_RDONLY | PI0__OPEN_FLAGS, 0);
    }
    if (fd < 0) {
        if (errno == ENOENT)
            return pi0_errorf(PI0_ENOENT, "topic %s: no such topic (%s%s)", s->topic, PI0__DIR,
                              name);
        return open_error(s->topic, name);
    }
    struct stat sb;
    if ((st = seg_check(fd, s->topic, name, s->uid, 1, &sb))) goto fail;
    if (sb.st_size < (off_t)PI0__PAGE || (uint64_t)sb.st_size > PI0__SEG_MAX) {
        if (sb.st_size < (off_t)PI0__PAGE && publisher_lock_held(fd) == 1)
            st = pi0_errorf(PI0_EAGAIN, "topic %s: its publisher is still creating it",
                            s->topic);
        else
            st = pi0_errorf(PI0_EFORMAT, "topic %s: segment size %lld bytes is not a topic",
                            s->topic, (long long)sb.st_size);
        goto fail;
    }
    size_t size = (size_t)sb.st_size;
    void *m = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        st = pi0_errorf(PI0_EIO, "topic %s: mmap: %s", s->topic, strerror(errno));
        goto fail;
    }
    layout l;
    st = header_validate(s->topic, m, size, &l);
    if (st == PI0_EFORMAT &&
        atomic_load_explicit(&((const struct pi0__hdr *)m)->magic, memory_order_acquire) == 0 &&
        publisher_lock_held(fd) == 1)
        st = pi0_errorf(PI0_EAGAIN, "topic %s: its publisher is still creating it", s->topic);
    if (!st && s->type_req[0] && strcmp(s->type_req, l.type_name))
        st = pi0_errorf(PI0_ETYPE, "topic %s: has type %s, expected %s", s->topic, l.type_name,
                        s->type_req);
    if (st) {
        munmap(m, size);
        goto fail;
    }
    /* The waiter page is the one we write: make sure it is allocated (a segment of an older
     * publisher may be sparse, and a store into a page a full tmpfs cannot allocate is a
     * SIGBUS). Without it our waits poll. */
    struct pi0__waiters *w = NULL;
    if (writable &&
        (fallocate(fd, 0, (off_t)l.waiters_offset, PI0__PAGE) == 0 || errno == EOPNOTSUPP) &&
        mprotect((uint8_t *)m + l.waiters_offset, PI0__PAGE, PROT_READ | PROT_WRITE) == 0)
        w = (struct pi0__waiters *)((uint8_t *)m + l.waiters_offset);
    s->fd = fd;
    s->base = m;
    s->size = size;
    s->hdr = m;
    s->waiters = w;
    s->l = l;
    s->mask = l.slot_count - 1;
    s->mode = (uint32_t)(sb.st_mode & 0777);
    s->epoch_seen = ident_read(s->hdr).epoch;
    /* acquire: pairs with commit's release of head (see sub_head) */
    s->next_seq = atomic_load_explicit(&s->hdr->head, memory_order_acquire);
    s->lost = 0;
    s->next_check = pi0__now_ns() + PI0__WAIT_SLICE_NS;
    return 0;
fail:
    close(fd);
    return st;
}

static void sub_detach(pi0_sub *s) {
    if (s->base) munmap((void *)s->base, s->size);
    if (s->fd >= 0) close(s->fd);
    s->base = NULL;
    s->fd = -1;
}

int pi0_sub_open(const char *topic, const pi0_sub_opts *opts, pi0_sub **out) {
    if (!out) return pi0_errorf(PI0_EINVAL, "pi0_sub_open: NULL out");
    *out = NULL;
    int st = pi0_topic_name_check(topic);
    if (st) return st;
    pi0_sub *s = calloc(1, sizeof *s);
    if (!s) return pi0_errorf(PI0_ENOMEM, "topic %s: out of memory", topic);
    s->fd = -1;
    snprintf(s->topic, sizeof s->topic, "%s", topic);
    s->uid = (opts && opts->uid >= 0) ? opts->uid : (int64_t)geteuid();
    if (opts && opts->type_name) {
        if ((st = type_name_check(opts->type_name))) goto fail;
        snprintf(s->type_req, sizeof s->type_req, "%s", opts->type_name);
    }
    if ((st = sub_attach(s))) goto fail;
    *out = s;
    return 0;
fail:
    free(s);
    return st;
}

void pi0_sub_close(pi0_sub *sub) {
    if (!sub) return;
    sub_detach(sub);
    free(sub);
}

static uint64_t sub_head(const pi0_sub *s) {
    /* acquire: pairs with commit's release store of head, so slot s < head has its
     * committed seq (and payload) visible to the slot read that follows */
    return atomic_load_explicit(&s->hdr->head, memory_order_acquire);
}

enum { READ_OK = 0, READ_NOT_THERE = 1, READ_TORN = 2 };

/* Reads sample `seq` from its slot: copies it into buf (cap bytes) or, with buf NULL,
 * just checks it is there and fills the view. READ_NOT_THERE when the slot does not hold
 * sample seq, READ_TORN when it changed while we read; <0 (an error) for a corrupt slot or
 * a sample larger than cap. */
static int read_slot(const pi0_sub *s, uint64_t seq, void *buf, size_t cap, pi0_sample *out) {
    const struct pi0__slot *slot = sub_slot(s, seq);
    /* acquire: pairs with commit's release store of 2s+2, so the payload and the slot
     * fields of that commit are visible to the loads below */
    uint64_t w1 = atomic_load_explicit(&slot->seq, memory_order_acquire);
    if (w1 != 2 * seq + 2) return READ_NOT_THERE;
    uint32_t size = atomic_load_explicit(&slot->size, PI0__ORD_FIELD);
    uint64_t stamp = atomic_load_explicit(&slot->stamp_ns, PI0__ORD_FIELD);
    uint32_t epoch = atomic_load_explicit(&slot->epoch, PI0__ORD_FIELD);
    const uint8_t *payload = (const uint8_t *)slot + PI0__SLOT_HDR;
    if (size > s->l.payload_max) {
        /* only a torn read or a corrupt segment can get here; re-check which */
        PI0__FENCE(memory_order_acquire); /* as below: loads above before the re-check */
        if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != w1) return READ_TORN;
        return pi0_errorf(PI0_EFORMAT, "topic %s: sample %llu claims %u bytes > payload_max %u",
                          s->topic, (unsigned long long)seq, size, s->l.payload_max);
    }
    if (buf) {
        if (size > cap) {
            PI0__FENCE(memory_order_acquire); /* as below */
            if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != w1) return READ_TORN;
            return pi0_errorf(PI0_ERANGE, "topic %s: sample of %u bytes, buffer holds %zu",
                              s->topic, size, cap);
        }
        payload_copy(buf, payload, size, 0);
    }
    /* acquire fence: orders the size/stamp/payload loads above before the re-check load
     * below. If any of them read a store of a later loan, that loan's odd marker (stored
     * before its release fence) is visible to the re-check, and we reject the sample. */
    PI0__FENCE(memory_order_acquire);
    uint64_t w2 = atomic_load_explicit(&slot->seq, memory_order_relaxed);
    if (w2 != w1) return READ_TORN;
    out->data = buf ? buf : payload;
    out->size = size;
    out->epoch = epoch;
    out->seq = seq;
    out->stamp_ns = stamp;
    out->lost = 0;
    return READ_OK;
}

static int sub_latest(pi0_sub *s, void *buf, size_t cap, pi0_sample *out) {
    for (int attempt = 0; attempt < 64; attempt++) {
        uint64_t head = sub_head(s);
        if (head == 0) return pi0_errorc(PI0_EAGAIN); /* routine: no message formatted */
        int r = read_slot(s, head - 1, buf, cap, out);
        if (r < 0) return r;
        if (r == READ_OK) {
            if (head > s->next_seq) s->next_seq = head;
            s->lost = 0;
            return 0;
        }
        cpu_relax(); /* overwritten meanwhile: a newer sample exists, take that one */
    }
    return pi0_errorf(PI0_EAGAIN,
                      "topic %s: publisher overwrote the newest sample 64 times "
                      "while we copied it",
                      s->topic);
}

int pi0_sub_latest_copy(pi0_sub *sub, void *buf, size_t cap, pi0_sample *out) {
    if (!buf) return pi0_errorf(PI0_EINVAL, "topic %s: NULL buffer", sub->topic);
    return sub_latest(sub, buf, cap, out);
}

int pi0_sub_latest_view(pi0_sub *sub, pi0_sample *out) {
    return sub_latest(sub, NULL, 0, out);
}

static int sub_next(pi0_sub *s, void *buf, size_t cap, pi0_sample *out) {
    for (int attempt = 0; attempt < 64; attempt++) {
        uint64_t head = sub_head(s);
        if (s->next_seq >= head)
            return pi0_errorc(PI0_EAGAIN); /* routine: no message formatted */
        uint64_t n = s->l.slot_count;
        if (head - s->next_seq > n) { /* lapped: skip to the oldest sample still in the ring */
            s->lost += head - n - s->next_seq;
            s->next_seq = head - n;
        }
        int r = read_slot(s, s->next_seq, buf, cap, out);
        if (r < 0) return r;
        if (r == READ_OK) {
            out->lost = s->lost;
            s->lost = 0;
            s->next_seq++;
            return 0;
        }
        /* The slot no longer (or never, after a garbage restart) holds our sample: it was
         * overwritten. Skip to the oldest sample that is not about to be overwritten. */
        uint64_t h2 = sub_head(s), skip_to = s->next_seq + 1;
        if (h2 > n - 1 && h2 - (n - 1) > skip_to) skip_to = h2 - (n - 1);
        s->lost += skip_to - s->next_seq;
        s->next_seq = skip_to;
    }
    return pi0_errorf(PI0_EAGAIN, "topic %s: publisher lapped us 64 times in a row", s->topic);
}

int pi0_sub_next_copy(pi0_sub *sub, void *buf, size_t cap, pi0_sample *out) {
    if (!buf) return pi0_errorf(PI0_EINVAL, "topic %s: NULL buffer", sub->topic);
    return sub_next(sub, buf, cap, out);
}

int pi0_sub_next_view(pi0_sub *sub, pi0_sample *out) {
    return sub_next(sub, NULL, 0, out);
}

int pi0_sub_view_valid(const pi0_sub *sub, const pi0_sample *view) {
    const struct pi0__slot *slot = sub_slot(sub, view->seq);
    /* acquire fence: orders the caller's loads from the view before the re-check below
     * (pairs with the release fence after the next loan's odd marker) */
    PI0__FENCE(memory_order_acquire);
    uint64_t w = atomic_load_explicit(&slot->seq, PI0__ORD_FIELD);
    if (w != 2 * view->seq + 2)
        return pi0_errorf(PI0_EOVERRUN, "topic %s: sample %llu was overwritten while in use",
                          sub->topic, (unsigned long long)view->seq);
    return 0;
}

/* If our segment was unlinked (a restarted publisher replaced it), attaches the new one.
 * 1 when it did, 0 when nothing changed. */
static int sub_maybe_reattach(pi0_sub *s) {
    struct stat sb;
    if (fstat(s->fd, &sb) < 0 || sb.st_nlink > 0) return 0;
    pi0_sub fresh = *s;
    fresh.fd = -1;
    fresh.base = NULL;
    if (sub_attach(&fresh) != 0) {
        pi0_clear_error();
        return 0;
    }
    sub_detach(s);
    *s = fresh;
    s->next_seq = 0; /* every sample of the new segment is new to us */
    return 1;
}

static int sub_wait(pi0_sub *s, int64_t timeout_ns, int spin) {
    int64_t now = pi0__now_ns();
    int64_t deadline =
        timeout_ns < 0 || timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    for (;;) {
        if (sub_head(s) > s->next_seq) return 0;
        now = pi0__now_ns();
        /* The re-check period runs across calls (s->next_check), so waits of any length,
         * 0 included, re-attach to a replaced segment within one period. */
        if (now >= s->next_check) {
            s->next_check = now + PI0__WAIT_SLICE_NS;
            if (sub_maybe_reattach(s)) continue;
        }
        if (now >= deadline) break;
        if (spin) {
            for (int i = 0; i < 256; i++) {
                if (sub_head(s) > s->next_seq) return 0;
                cpu_relax();
            }
            continue;
        }
        int64_t until = deadline < s->next_check ? deadline : s->next_check;
        if (!s->waiters && until > now + 1000000) until = now + 1000000;
        struct timespec ts = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
        _Atomic uint32_t *word = (_Atomic uint32_t *)&s->hdr->futex;
        if (s->waiters)
            /* seq_cst RMW (Dekker with commit): our count is visible before we re-read
             * the futex word and head below, pairing with the publisher's seq_cst fence */
            atomic_fetch_add_explicit(&s->waiters->sleeping, 1, memory_order_seq_cst);
        uint32_t f = atomic_load_explicit(word, memory_order_seq_cst);
        if (atomic_load_explicit(&s->hdr->head, memory_order_seq_cst) > s->next_seq) {
            if (s->waiters)
                atomic_fetch_sub_explicit(&s->waiters->sleeping, 1, memory_order_relaxed);
            return 0;
        }
        /* Sleeps only if the word still equals f: a commit after our load of f changes
         * it, so no wakeup is lost. Read-only mappings are fine for FUTEX_WAIT. */
        futex_call(word, FUTEX_WAIT_BITSET, f, &ts, FUTEX_BITSET_MATCH_ANY);
        if (s->waiters)
            atomic_fetch_sub_explicit(&s->waiters->sleeping, 1, memory_order_relaxed);
    }
    if (sub_head(s) > s->next_seq) return 0;
    return pi0_errorc(PI0_ETIMEDOUT); /* routine: no message formatted */
}

int pi0_sub_wait(pi0_sub *sub, int64_t timeout_ns) {
    return sub_wait(sub, timeout_ns, 0);
}

int pi0_sub_spin(pi0_sub *sub, int64_t timeout_ns) {
    return sub_wait(sub, timeout_ns, 1);
}

int pi0_sub_publisher(pi0_sub *sub, pi0_pub_info *info) {
    memset(info, 0, sizeof *info);
    int held = publisher_lock_held(sub->fd);
    if (held == 0 && sub_maybe_reattach(sub)) {
        info->reattached = 1;
        held = publisher_lock_held(sub->fd);
    }
    ident id = ident_read(sub->hdr);
    int alive = held == 1;
    if (alive && id.pid > 0) {
        uint64_t st = proc_start_time(id.pid);
        /* the lock may live on in a forked child of a dead publisher: check the process */
        if (st == 0 || st != id.start_time) alive = 0;
    }
    info->state = alive ? PI0_PUB_ALIVE : PI0_PUB_DEAD;
    info->pid = id.pid;
    info->start_time = id.start_time;
    info->epoch = id.epoch;
    info->restarted = id.epoch != sub->epoch_seen;
    sub->epoch_seen = id.epoch;
    int64_t now = pi0__now_ns();
    uint64_t hb = atomic_load_explicit(&sub->hdr->heartbeat_ns, memory_order_relaxed);
    info->heartbeat_age_ns = hb ? now - (int64_t)hb : -1;
    info->head = sub_head(sub);
    info->sample_age_ns = -1;
    for (int attempt = 0; attempt < 8 && info->head > 0; attempt++) {
        pi0_sample smp;
        uint64_t h = sub_head(sub);
        if (read_slot(sub, h - 1, NULL, 0, &smp) == READ_OK) {
            info->sample_age_ns = now - (int64_t)smp.stamp_ns;
            break;
        }
    }
    pi0_clear_error();
    return 0;
}

void pi0_sub_topic_info(const pi0_sub *sub, pi0_topic_info *info) {
    memset(info, 0, sizeof *info);
    snprintf(info->topic, sizeof info->topic, "%s", sub->topic);
    snprintf(info->type_name, sizeof info->type_name, "%s", sub->l.type_name);
    info->abi_version = PI0_SHM_ABI_VERSION;
    info->msg_version = sub->l.msg_version;
    info->slot_count = sub->l.slot_count;
    info->slot_size = sub->l.slot_size;
    info->payload_max = sub->l.payload_max;
    info->segment_size = sub->l.segment_size;
    info->mode = sub->mode;
    const struct pi0__waiters *w =
        (const struct pi0__waiters *)(sub->base + sub->l.waiters_offset);
    info->waiters = atomic_load_explicit(&w->sleeping, memory_order_relaxed);
    info->waiter_page = sub->waiters != NULL;
}

double pi0_sub_rate_hz(const pi0_sub *sub) {
    uint64_t head = sub_head(sub);
    uint64_t n = head < sub->l.slot_count ? head : sub->l.slot_count;
    uint64_t lo = UINT64_MAX, hi = 0, count = 0;
    for (uint64_t seq = head - n; seq < head; seq++) {
        pi0_sample smp;
        if (read_slot(sub, seq, NULL, 0, &smp) != READ_OK) continue; /* overwritten, torn */
        uint64_t t = smp.stamp_ns;
        if (t < lo) lo = t;
        if (t > hi) hi = t;
        count++;
    }
    if (count < 2 || hi <= lo) return 0;
    return (double)(count - 1) * 1e9 / (double)(hi - lo);
}

// ---- topic directory ----

int pi0_topic_foreach(int (*fn)(const char *topic, void *ctx), void *ctx) {
    char prefix[64];
    int plen = snprintf(prefix, sizeof prefix, "pi0rt.%u.", (unsigned)geteuid());
    DIR *d = opendir(PI0__DIR);
    if (!d) return pi0_errorf(PI0_EIO, "%s: %s", PI0__DIR, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, prefix, (size_t)plen)) continue;
        const char *topic = e->d_name + plen;
        if (pi0_topic_name_check(topic)) {
            pi0_clear_error();
            continue;
        }
        if ((rc = fn(topic, ctx))) break;
    }
    closedir(d);
    return rc;
}

int pi0_topic_remove(const char *topic) {
    char name[128];
    int st = pi0_topic_segment_name(topic, -1, name, sizeof name);
    if (st) return st;
    int fd = shm_open(name, O_RDWR | PI0__OPEN_FLAGS, 0);
    if (fd < 0) {
        if (errno == ENOENT) return pi0_errorf(PI0_ENOENT, "topic %s: no such topic", topic);
        return open_error(topic, name);
    }
    struct stat sb;
    if ((st = seg_check(fd, topic, name, (int64_t)geteuid(), 0, &sb))) {
        close(fd);
        return st;
    }
    /* Take the publisher lock ourselves while unlinking: a live publisher makes this fail,
     * and a publisher starting meanwhile fails to lock, or locks after us and finds the
     * name unlinked (st_nlink == 0) and creates a fresh segment. */
    if ((st = lock_or_busy(fd, topic))) {
        close(fd);
        return st;
    }
    int rc = shm_unlink(name) < 0 && errno != ENOENT
                 ? pi0_errorf(PI0_EIO, "topic %s: unlink: %s", topic, strerror(errno))
                 : 0;
    close(fd);
    return rc;
}
