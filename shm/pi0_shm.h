/* pi0_shm.h — lock-free shared-memory topics: one publisher, any number of subscribers.
 *
 * A topic is one POSIX shared-memory segment, `/dev/shm/pi0rt.<uid>.<topic>`, created by
 * its single publisher. The publisher loans the next slot, writes the sample in place
 * (zero copy: a camera can capture straight into it) and commits it. Subscribers read the
 * newest sample (`latest`) or every sample in order (`next`, with an overrun count when
 * they fell behind), by copy or through a zero-copy view validated afterwards, and may
 * sleep until the next commit.
 *
 *   // publisher (robot driver)
 *   pi0_pub *pub;
 *   pi0_pub_opts po = {PI0_TYPE_JOINT_STATE, sizeof(pi0_joint_state)};
 *   pi0_pub_create("arm", &po, &pub);
 *   pi0_joint_state *js = pi0_pub_loan(pub);   // write in place
 *   js->n = 7; ...
 *   pi0_pub_commit(pub, sizeof *js);
 *
 *   // subscriber (node)
 *   pi0_sub *sub;
 *   pi0_sub_opts so = {PI0_TYPE_JOINT_STATE, -1};
 *   pi0_sub_open("arm", &so, &sub);
 *   pi0_joint_state st;
 *   pi0_sample s;
 *   pi0_sub_wait(sub, 100000000);              // sleep up to 100 ms
 *   pi0_sub_latest_copy(sub, &st, sizeof st, &s);
 *
 * ---- segment layout (format version PI0_SHM_ABI_VERSION; all integers little-endian) ----
 *
 *   [0, 4096)          header page: identity (magic, ABI version, sizes, type, layout),
 *                      publisher identity (pid, process start time, epoch) and the
 *                      producer line (head, futex word, heartbeat). See pi0_shm.c.
 *   [4096, W)          slot_count slots of slot_size bytes (slot_count a power of two,
 *                      slot_size a multiple of 64). Each slot = a 64-byte slot header
 *                      (seqlock word, commit time, payload size, epoch) + the payload,
 *                      which therefore starts 64-byte aligned.
 *   [W, W + 4096)      the waiter page (W page-aligned): the only bytes subscribers write.
 *
 * Offsets and indices only, never pointers. Sequence numbers are free-running 64-bit
 * counters; sample s lives in slot s & (slot_count - 1); a slot's seqlock word is 2s+1
 * while sample s is being written and 2s+2 once it is committed.
 *
 * ---- who may write what ----
 *
 * The publisher maps the segment read-write. Subscribers map everything up to the waiter
 * page PROT_READ, so a stray write through a view faults instead of corrupting the topic;
 * futex waits work on a read-only mapping. Subscribers need one writable word — the count
 * of sleeping subscribers, which lets the publisher skip the futex-wake system call when
 * nobody sleeps — and it lives alone on the waiter page, mapped read-write. The worst a
 * buggy subscriber can do there is spoil that count: a too-high count costs the publisher
 * a needless wake syscall per commit, a too-low one delays other sleepers until their
 * wait re-checks (waits re-check at least every 100 ms). The publisher never reads
 * anything else a subscriber can write, so no subscriber can stall or corrupt it. A
 * subscriber that may only read the file (another user's group-readable topic) maps no
 * waiter page and its waits poll the futex word with 1 ms sleeps.
 *
 * ---- liveness ----
 *
 * The publisher holds an open-file-description write lock (F_OFD_SETLK) on its segment;
 * the kernel drops it when the process dies, however it dies. A subscriber tests it with
 * F_OFD_GETLK (which acquires nothing, so it can never block a restarting publisher) and
 * cross-checks the pid and process start time (/proc/<pid>/stat field 22) the publisher
 * recorded, because a child forked without exec keeps the lock. pid checks assume the
 * subscriber shares the publisher's pid namespace. The publisher also refreshes a
 * heartbeat on every commit and on pi0_pub_heartbeat(); subscribers see its age and the
 * age of the newest sample.
 *
 * A restarted publisher (same topic, type and layout) takes the lock of the SAME segment
 * and re-initializes it in place: it bumps the epoch, records its pid, and continues the
 * sequence from the old head, so subscribers keep their mapping, their futex waits and
 * their `next` cursor, and see `restarted` once in pi0_sub_publisher(). The slot the dead
 * publisher was writing is never delivered (its seqlock word is odd or its sample number
 * is at or past head). If the layout differs, the new publisher unlinks the old segment
 * and creates a fresh one; subscribers see the old one dead, then re-attach by name on
 * their next pi0_sub_publisher()/wait call (pi0_pub_info.reattached).
 *
 * ---- trust ----
 *
 * Everything read from the segment is untrusted: at open the header is validated against
 * the mapped size (magic, ABI version, type, power-of-two slot count, slot and payload
 * sizes, offsets, no overflow); the layout is then cached and never re-read; head is used
 * only modulo slot_count; each sample's size is checked against payload_max; message
 * contents have pi0_*_check() helpers. A segment that is truncated, foreign or garbage
 * gives an error, never a crash. Residual risk: a hostile process of the same user that
 * shrinks a segment after a subscriber mapped it can make that subscriber take SIGBUS;
 * publishers never shrink a segment (segments are 0600, i.e. only that user can).
 *
 * Threads: one pi0_pub and one pi0_sub are each used by one thread at a time; different
 * handles may be used concurrently (also to the same topic, also in one process). */
#ifndef PI0_SHM_H
#define PI0_SHM_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PI0_SHM_ABI_VERSION 1u /* segment format version (header + slot layout) */
#define PI0_MSG_VERSION     2u /* layout version of the message structs below */
#define PI0_TOPIC_NAME_MAX  63 /* topic names: [A-Za-z0-9_.-]{1,63}, not starting with . */
#define PI0_TYPE_NAME_MAX   31 /* type names: [A-Za-z0-9_.]{1,31} */
#define PI0_SHM_SLOTS_MAX   65536u
#define PI0_SHM_PAYLOAD_MAX (1u << 30)

/* ---- message types (fixed layouts, little-endian, IEEE-754 floats) ---- */

#define PI0_TYPE_RAW          "raw"
#define PI0_TYPE_IMAGE        "pi0.Image"
#define PI0_TYPE_JOINT_STATE  "pi0.JointState"
#define PI0_TYPE_ACTION_CHUNK "pi0.ActionChunk"
#define PI0_TYPE_ACTION       "pi0.Action"
#define PI0_TYPE_NODE_STATUS  "pi0.NodeStatus"

/* All *_ns timestamps are CLOCK_MONOTONIC nanoseconds (same clock in every process). */

enum pi0_pixel_format { PI0_PIX_RGB8 = 1, PI0_PIX_BGR8 = 2, PI0_PIX_GRAY8 = 3 };

/* pi0.Image: a 64-byte header followed by `height` rows of `stride` bytes. The topic's
 * payload_max is 64 + the largest stride * height; use pi0_image_bytes(). */
typedef struct pi0_image {
    uint32_t width;       /*  0 pixels */
    uint32_t height;      /*  4 pixels */
    uint32_t stride;      /*  8 bytes per row, >= width * bytes per pixel */
    uint32_t format;      /* 12 enum pi0_pixel_format */
    uint64_t capture_ns;  /* 16 when the camera captured the frame */
    uint64_t frame_id;    /* 24 camera frame counter */
    uint32_t data_bytes;  /* 32 stride * height */
    uint32_t reserved[7]; /* 36 zero */
    uint8_t data[];       /* 64 pixels, row-major, 64-byte aligned inside the slot */
} pi0_image;

#define PI0_JOINTS_MAX 64
/* pi0.JointState: robot joint state; only the first n entries of each array are valid. */
typedef struct pi0_joint_state {
    uint64_t stamp_ns;               /*    0 when the state was measured */
    uint32_t n;                      /*    8 joints, <= PI0_JOINTS_MAX */
    uint32_t reserved;               /*   12 zero */
    double position[PI0_JOINTS_MAX]; /*   16 rad or m */
    double velocity[PI0_JOINTS_MAX]; /*  528 rad/s or m/s */
    double effort[PI0_JOINTS_MAX];   /* 1040 N·m or N */
} pi0_joint_state;                   /* 1552 bytes */

#define PI0_CHUNK_HORIZON_MAX 64
#define PI0_CHUNK_DIM_MAX     64
/* pi0.ActionChunk: `horizon` actions of `dim` values, action i due at t0_ns + i*period_ns.
 * The latency breakdown is in microseconds (0 = not measured). A sample may end right
 * after its actions: 64 + 4 * horizon * dim bytes (the topic's payload_max is the whole
 * struct). */
typedef struct pi0_action_chunk {
    uint64_t seq;            /*  0 chunk counter of the producing node */
    uint64_t t0_ns;          /*  8 when action 0 is due */
    uint64_t obs_stamp_ns;   /* 16 timestamp of the observation it was computed from */
    uint64_t period_ns;      /* 24 control period */
    uint32_t horizon;        /* 32 <= PI0_CHUNK_HORIZON_MAX */
    uint32_t dim;            /* 36 <= PI0_CHUNK_DIM_MAX */
    uint32_t preprocess_us;  /* 40 image/state preprocessing */
    uint32_t encode_us;      /* 44 stage A: vision + prefix */
    uint32_t denoise_us;     /* 48 stage B: expert denoising */
    uint32_t postprocess_us; /* 52 unnormalize, calib */
    uint32_t total_us;       /* 56 observation stamp -> publish */
    uint32_t reserved;       /* 60 zero */
    float actions[PI0_CHUNK_HORIZON_MAX * PI0_CHUNK_DIM_MAX]; /* 64 [horizon][dim] */
} pi0_action_chunk;                                           /* 16448 bytes */

#define PI0_ACTION_DIM_MAX 64
enum pi0_action_flags { PI0_ACTION_HOLD = 1u }; /* hold position (stale input, no chunk) */
/* pi0.Action: the one action due now. */
typedef struct pi0_action {
    uint64_t due_ns;                  /*   0 when it is due */
    uint64_t chunk_seq;               /*   8 chunk it came from */
    uint32_t index;                   /*  16 index inside that chunk */
    uint32_t dim;                     /*  20 <= PI0_ACTION_DIM_MAX */
    uint32_t flags;                   /*  24 enum pi0_action_flags */
    uint32_t reserved;                /*  28 zero */
    float values[PI0_ACTION_DIM_MAX]; /*  32 */
} pi0_action;                         /* 288 bytes */

enum pi0_node_state {
    PI0_NODE_STARTING = 1,
    PI0_NODE_RUNNING = 2,
    PI0_NODE_HOLDING = 3,
    PI0_NODE_ERROR = 4
};
/* Why a node holds (bits of pi0_node_status.hold_reason; 0 = not holding). */
enum pi0_hold_reason {
    PI0_HOLD_CAMERA_STALE = 1u,   /* a camera frame is older than its limit */
    PI0_HOLD_JOINTS_STALE = 2u,   /* the joint state is older than its limit */
    PI0_HOLD_PUBLISHER_DEAD = 4u, /* a camera or joint-state publisher died */
    PI0_HOLD_NO_CHUNK = 8u,       /* no chunk covers this tick */
    PI0_HOLD_NONFINITE = 16u      /* the last chunk had a non-finite value and was dropped */
};
/* pi0.NodeStatus: periodic health of a node. Latencies in microseconds. */
typedef struct pi0_node_status {
    uint64_t stamp_ns;         /*   0 */
    uint32_t state;            /*   8 enum pi0_node_state */
    int32_t last_error;        /*  12 a PI0_E* code, 0 = none */
    uint64_t ticks;            /*  16 control ticks so far */
    uint64_t missed_ticks;     /*  24 periods skipped because a tick was late */
    uint64_t chunks;           /*  32 chunks published */
    uint64_t dropped_chunks;   /*  40 chunks dropped (non-finite values) */
    uint64_t holds;            /*  48 ticks that published a hold */
    uint32_t hold_reason;      /*  56 enum pi0_hold_reason bits, 0 = not holding */
    uint32_t reserved;         /*  60 zero */
    uint32_t tick_late_p50_us; /*  64 wake-up lateness of the control tick */
    uint32_t tick_late_p99_us; /*  68 */
    uint32_t tick_late_max_us; /*  72 */
    uint32_t infer_p50_us;     /*  76 observation -> chunk published */
    uint32_t infer_p99_us;     /*  80 */
    uint32_t infer_max_us;     /*  84 */
    uint32_t reserved2[2];     /*  88 zero */
    char message[128];         /*  96 NUL-terminated text (the hold reason in words) */
} pi0_node_status;             /* 224 bytes */

#if !defined(__cplusplus)
_Static_assert(sizeof(pi0_image) == 64, "pi0_image header is 64 bytes");
_Static_assert(offsetof(pi0_image, capture_ns) == 16, "pi0_image layout");
_Static_assert(offsetof(pi0_image, data_bytes) == 32, "pi0_image layout");
_Static_assert(offsetof(pi0_image, data) == 64, "pi0_image layout");
_Static_assert(sizeof(pi0_joint_state) == 1552, "pi0_joint_state layout");
_Static_assert(offsetof(pi0_joint_state, velocity) == 528, "pi0_joint_state layout");
_Static_assert(offsetof(pi0_joint_state, effort) == 1040, "pi0_joint_state layout");
_Static_assert(sizeof(pi0_action_chunk) == 64 + 4 * 64 * 64, "pi0_action_chunk layout");
_Static_assert(offsetof(pi0_action_chunk, horizon) == 32, "pi0_action_chunk layout");
_Static_assert(offsetof(pi0_action_chunk, total_us) == 56, "pi0_action_chunk layout");
_Static_assert(offsetof(pi0_action_chunk, actions) == 64, "pi0_action_chunk layout");
_Static_assert(sizeof(pi0_action) == 288, "pi0_action layout");
_Static_assert(offsetof(pi0_action, values) == 32, "pi0_action layout");
_Static_assert(sizeof(pi0_node_status) == 224, "pi0_node_status layout");
_Static_assert(offsetof(pi0_node_status, tick_late_p50_us) == 64, "pi0_node_status layout");
_Static_assert(offsetof(pi0_node_status, message) == 96, "pi0_node_status layout");
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "pi0rt topics are little-endian");
#endif

/* Bytes per pixel of a pixel format, 0 for an unknown one. */
PI0_API uint32_t pi0_pixel_bytes(uint32_t format);
/* Payload bytes of an image of that size (64 + stride * height, stride = width * bpp);
 * 0 if the format is unknown or the size overflows PI0_SHM_PAYLOAD_MAX. */
PI0_API size_t pi0_image_bytes(uint32_t width, uint32_t height, uint32_t format);

/* Validate a received sample of `size` bytes as that message type (sizes, counts, format,
 * stride * height within size). Return 0 or PI0_EFORMAT with a detail naming the field.
 * Never read past `size`. */
PI0_API int pi0_image_check(const void *payload, size_t size);
PI0_API int pi0_joint_state_check(const void *payload, size_t size);
PI0_API int pi0_action_chunk_check(const void *payload, size_t size);
PI0_API int pi0_action_check(const void *payload, size_t size);
PI0_API int pi0_node_status_check(const void *payload, size_t size);

/* ---- topic names ---- */

/* 0 if `topic` is a valid topic name, else PI0_EINVAL with a detail. */
PI0_API int pi0_topic_name_check(const char *topic);

/* Writes the segment name ("/pi0rt.<uid>.<topic>") of `topic` owned by `uid` (-1: the
 * effective uid) into buf. PI0_EINVAL for a bad name, PI0_ERANGE if cap is too small. */
PI0_API int pi0_topic_segment_name(const char *topic, int64_t uid, char *buf, size_t cap);

/* Calls fn(topic, ctx) for each topic segment of the effective uid in /dev/shm (in
 * directory order); stops early and returns fn's value when fn returns non-zero. */
PI0_API int pi0_topic_foreach(int (*fn)(const char *topic, void *ctx), void *ctx);

/* Removes the segment of `topic` if no live publisher holds it (dead publisher, or a
 * garbage/foreign-format segment of ours). PI0_EBUSY if its publisher is alive (the
 * segment stays), PI0_ENOENT if there is none. Subscribers still attached keep their
 * mapping. */
PI0_API int pi0_topic_remove(const char *topic);

/* ---- publisher ---- */

typedef struct pi0_pub pi0_pub;

enum pi0_topic_flags {
    PI0_TOPIC_GROUP_READ = 1u, /* mode 0640 instead of 0600 (group may subscribe) */
};

typedef struct pi0_pub_opts {
    const char *type_name; /* message type (PI0_TYPE_* or [A-Za-z0-9_.]{1,31}); NULL=raw */
    uint32_t payload_max;  /* largest sample in bytes, 1..PI0_SHM_PAYLOAD_MAX; for the
                              pi0.* types at least the fixed struct size (Image: 64) */
    uint32_t slot_count;   /* power of two in [2, PI0_SHM_SLOTS_MAX]; 0 = 8 */
    uint32_t flags;        /* enum pi0_topic_flags */
} pi0_pub_opts;

/* Creates the topic (O_EXCL, then fchmod to 0600/0640) or, if its segment exists and its
 * publisher is dead, takes it over: same type and layout → re-initialized in place with
 * the epoch bumped (subscribers continue); different → unlinked and created anew.
 * Allocates and maps everything here; nothing after: every page of the segment is
 * reserved now (fallocate), so a full /dev/shm is an error here, never a SIGBUS later.
 * Errors: PI0_EINVAL (name, options), PI0_EBUSY (a live publisher holds the topic),
 * PI0_EPERM (the name is taken by another user's file, a non-regular file or a link),
 * PI0_EIO (system call failed), PI0_ENOMEM (out of memory, or /dev/shm cannot hold the
 * segment: the message names the size asked for and the space left; nothing is left
 * behind). A topic takes 4096 + slot_count * round_up(64 + payload_max, 64) bytes,
 * rounded up to a page, + 4096 (pi0rt-shm info prints it). */
PI0_API int pi0_pub_create(const char *topic, const pi0_pub_opts *opts, pi0_pub **out);

/* Unmaps and releases the lock; the segment stays (subscribers then see the publisher
 * dead, and a restart continues it); remove it with pi0_topic_remove(). NULL is fine. */
PI0_API void pi0_pub_destroy(pi0_pub *pub);

/* Zero-copy write, wait-free: returns the payload area (payload_max bytes, 64-byte
 * aligned) of the next slot and marks it being written, so readers of that slot reject
 * it from now on. Calling it again before commit returns the same area. Never fails,
 * never blocks, never allocates. */
PI0_API void *pi0_pub_loan(pi0_pub *pub);

/* Publishes the loaned slot holding `size` bytes: stamps the commit time, makes it
 * visible (seqlock even, head+1) and wakes sleeping subscribers if any sleep. Wait-free
 * except for that one futex-wake syscall when someone sleeps. PI0_EINVAL without a loan
 * (nothing changes), PI0_ERANGE if size > payload_max (the loan stays open). */
PI0_API int pi0_pub_commit(pi0_pub *pub, size_t size);

/* loan + memcpy + commit. PI0_ERANGE if size > payload_max (nothing published). */
PI0_API int pi0_pub_publish(pi0_pub *pub, const void *data, size_t size);

/* Refreshes the heartbeat without publishing (call it from idle loops). */
PI0_API void pi0_pub_heartbeat(pi0_pub *pub);

/* Sequence number the next commit will get (= samples published on this topic so far,
 * across restarts). */
PI0_API uint64_t pi0_pub_seq(const pi0_pub *pub);
/* Epoch of this publisher (1 for the first publisher of a segment, +1 per restart). */
PI0_API uint32_t pi0_pub_epoch(const pi0_pub *pub);
PI0_API uint32_t pi0_pub_payload_max(const pi0_pub *pub);

/* ---- subscriber ---- */

typedef struct pi0_sub pi0_sub;

typedef struct pi0_sub_opts {
    const char *type_name; /* required message type; NULL accepts any */
    int64_t uid;           /* owner of the topic; -1 = our effective uid */
} pi0_sub_opts;

/* Opens and validates an existing topic. The segment must be a regular file (opened
 * without blocking or following links) owned by `uid` and not be writable by group or
 * others. Errors: PI0_EINVAL (bad name), PI0_ENOENT (no such topic), PI0_EPERM (not a
 * regular file, a symbolic link, owner or mode wrong), PI0_EFORMAT (truncated, bad magic, bad
 * layout), PI0_EVERSION (other ABI or message-layout version), PI0_ETYPE (other type),
 * PI0_EAGAIN (the publisher is still creating it), PI0_EIO, PI0_ENOMEM. The subscriber starts
 * at the newest committed sample: next() returns samples committed after the open. */
PI0_API int pi0_sub_open(const char *topic, const pi0_sub_opts *opts, pi0_sub **out);
PI0_API void pi0_sub_close(pi0_sub *sub); /* NULL is fine */

/* One received sample. For views, `data` points into the read-only mapping and stays
 * meaningful only until pi0_sub_view_valid() says otherwise and at most until the next
 * call on this subscriber. */
typedef struct pi0_sample {
    const void *data;  /* payload (view into the mapping, or the caller's buffer) */
    uint32_t size;     /* payload bytes */
    uint32_t epoch;    /* publisher epoch that wrote it */
    uint64_t seq;      /* sequence number */
    uint64_t stamp_ns; /* publisher's CLOCK_MONOTONIC at commit */
    uint64_t lost;     /* next(): samples skipped (overrun) since the previous one */
} pi0_sample;

/* Newest committed sample, copied into buf (cap bytes), torn copies retried. Sets the
 * `next` cursor past it. PI0_EAGAIN if nothing was published yet (or the publisher
 * overwrote it faster than it could be copied, repeatedly), PI0_ERANGE if cap < size. */
PI0_API int pi0_sub_latest_copy(pi0_sub *sub, void *buf, size_t cap, pi0_sample *out);
/* Same, zero copy: out->data points into the slot. Use the data, then call
 * pi0_sub_view_valid(); only if it returns 0 was what you read a complete sample. */
PI0_API int pi0_sub_latest_view(pi0_sub *sub, pi0_sample *out);

/* Oldest sample not yet returned (in order). If the publisher lapped us, skips to the
 * oldest one still intact and reports the skipped count in out->lost. PI0_EAGAIN if
 * there is no new sample, PI0_ERANGE if cap < size (the sample is not consumed).
 * The routine PI0_EAGAIN of an empty poll (and PI0_ETIMEDOUT of a wait) records only
 * the code, no detail (pi0_errorc): a poll that finds nothing costs no more than one that
 * finds a sample. */
PI0_API int pi0_sub_next_copy(pi0_sub *sub, void *buf, size_t cap, pi0_sample *out);
PI0_API int pi0_sub_next_view(pi0_sub *sub, pi0_sample *out);

/* 0 if the viewed sample was not overwritten since it was returned (so everything read
 * from it before this call is a complete sample), PI0_EOVERRUN if it was. */
PI0_API int pi0_sub_view_valid(const pi0_sub *sub, const pi0_sample *view);

/* Sleeps (futex) until a sample newer than the cursor is committed or timeout_ns passes
 * (< 0: forever). 0 when one is available, PI0_ETIMEDOUT otherwise. Re-attaches a topic
 * whose segment was replaced: checked every 100 ms across calls, so also by waits shorter
 * than that (0 included); the re-attach never blocks, so the timeout holds through it.
 * Restarts after signals. */
PI0_API int pi0_sub_wait(pi0_sub *sub, int64_t timeout_ns);
/* Same, busy-polling (burns a CPU; lowest latency). */
PI0_API int pi0_sub_spin(pi0_sub *sub, int64_t timeout_ns);

enum pi0_pub_state { PI0_PUB_ALIVE = 1, PI0_PUB_DEAD = 2 };

typedef struct pi0_pub_info {
    int state;           /* PI0_PUB_ALIVE or PI0_PUB_DEAD */
    int restarted;       /* epoch changed since this subscriber last looked */
    int reattached;      /* the segment was replaced and this call re-attached it */
    int32_t pid;         /* publisher pid (current or last) */
    uint64_t start_time; /* its start time, clock ticks since boot (/proc stat 22) */
    uint32_t epoch;
    uint64_t head;            /* samples published so far */
    int64_t heartbeat_age_ns; /* now - last heartbeat, -1 if never */
    int64_t sample_age_ns;    /* now - commit time of the newest sample, -1 if none */
} pi0_pub_info;

/* Liveness of the topic's publisher. If it is dead and the segment name now refers to a
 * new segment (the restarted publisher changed the layout), re-attaches to it when the
 * type still matches. Never blocks, but costs a few system calls (lock query, reading
 * /proc/<pid>/stat): call it at a few Hz, not per sample. For a per-tick staleness check
 * use the sample's stamp_ns. */
PI0_API int pi0_sub_publisher(pi0_sub *sub, pi0_pub_info *info);

typedef struct pi0_topic_info {
    char topic[PI0_TOPIC_NAME_MAX + 1];
    char type_name[PI0_TYPE_NAME_MAX + 1];
    uint32_t abi_version, msg_version;
    uint32_t slot_count, slot_size, payload_max;
    uint64_t segment_size;
    uint32_t mode;    /* file mode bits */
    uint32_t waiters; /* subscribers sleeping right now (advisory) */
    int waiter_page;  /* this subscriber could map the waiter page writable */
} pi0_topic_info;
PI0_API void pi0_sub_topic_info(const pi0_sub *sub, pi0_topic_info *info);

/* Publish rate estimated from the commit times of the samples still in the ring
 * (0 if fewer than two). Does not consume anything. */
PI0_API double pi0_sub_rate_hz(const pi0_sub *sub);

#ifdef __cplusplus
}
#endif
#endif /* PI0_SHM_H */
