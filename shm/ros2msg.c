/* ros2msg.c — ros2msg schema texts and CDR encoders/decoders of the pi0rt messages. */
#include "ros2msg.h"

#include <stdio.h>
#include <string.h>

#include "pi0_shm.h"

// ---- schema texts ----

#define SEP          "================================================================================\n"
#define TIME_DEF     "MSG: builtin_interfaces/Time\nint32 sec\nuint32 nanosec\n"
#define DURATION_DEF "MSG: builtin_interfaces/Duration\nint32 sec\nuint32 nanosec\n"
#define HEADER_DEF                                                                             \
    "MSG: std_msgs/Header\nbuiltin_interfaces/Time stamp\nstring frame_id\n" SEP TIME_DEF

static const struct {
    const char *name, *pi0_type, *schema;
} KINDS[PI0__ROS2_KINDS] = {
    [PI0__ROS2_IMAGE] =
        {"sensor_msgs/msg/Image", PI0_TYPE_IMAGE,
         "std_msgs/Header header\nuint32 height\nuint32 width\nstring "
         "encoding\nuint8 is_bigendian\nuint32 step\nuint8[] data\n" SEP HEADER_DEF},
    [PI0__ROS2_JOINT_STATE] =
        {"sensor_msgs/msg/JointState", PI0_TYPE_JOINT_STATE,
         "std_msgs/Header header\nstring[] name\nfloat64[] "
         "position\nfloat64[] velocity\nfloat64[] effort\n" SEP HEADER_DEF},
    [PI0__ROS2_TRAJECTORY] =
        {"trajectory_msgs/msg/JointTrajectory", NULL,
         "std_msgs/Header header\nstring[] joint_names\ntrajectory_msgs/JointTrajectoryPoint[] "
         "points\n" SEP HEADER_DEF SEP
         "MSG: trajectory_msgs/JointTrajectoryPoint\nfloat64[] positions\nfloat64[] "
         "velocities\nfloat64[] accelerations\nfloat64[] effort\nbuiltin_interfaces/Duration "
         "time_from_start\n" SEP DURATION_DEF},
    [PI0__ROS2_CHUNK] = {"pi0rt_msgs/msg/ActionChunk", PI0_TYPE_ACTION_CHUNK,
                         "# pi0rt action chunk (the shm message pi0.ActionChunk, lossless).\n"
                         "# Times are Unix nanoseconds; action i is due at t0_ns + i * "
                         "period_ns.\n"
                         "uint64 seq\nuint64 t0_ns\nuint64 obs_stamp_ns\nuint64 period_ns\n"
                         "uint32 horizon\nuint32 dim\n"
                         "# latency breakdown in microseconds (0 = not measured)\n"
                         "uint32 preprocess_us\nuint32 encode_us\nuint32 denoise_us\n"
                         "uint32 postprocess_us\nuint32 total_us\n"
                         "# horizon * dim values, row-major [horizon][dim]\n"
                         "float32[] actions\n"},
    [PI0__ROS2_ACTION] = {"pi0rt_msgs/msg/Action", PI0_TYPE_ACTION,
                          "# pi0rt action due now (the shm message pi0.Action).\n"
                          "# due_ns: Unix nanoseconds. flags bit 0: hold position.\n"
                          "uint64 due_ns\nuint64 chunk_seq\nuint32 index\nuint32 flags\n"
                          "float32[] values\n"},
    [PI0__ROS2_STATUS] = {"pi0rt_msgs/msg/NodeStatus", PI0_TYPE_NODE_STATUS,
                          "# pi0rt node health (the shm message pi0.NodeStatus v2).\n"
                          "# state: 1 starting, 2 running, 3 holding, 4 error.\n"
                          "# hold_reason bits: 1 camera stale, 2 joints stale, 4 publisher "
                          "dead, 8 no chunk, 16 non-finite chunk dropped.\n"
                          "uint64 stamp_ns\nuint32 state\nint32 last_error\nuint64 ticks\n"
                          "uint64 missed_ticks\nuint64 chunks\nuint64 dropped_chunks\n"
                          "uint64 holds\nuint32 hold_reason\nuint32 tick_late_p50_us\n"
                          "uint32 tick_late_p99_us\nuint32 tick_late_max_us\n"
                          "uint32 infer_p50_us\nuint32 infer_p99_us\nuint32 infer_max_us\n"
                          "string message\n"},
};

const char *pi0__ros2_name(int kind) {
    return kind > 0 && kind < PI0__ROS2_KINDS ? KINDS[kind].name : "";
}
const char *pi0__ros2_schema(int kind) {
    return kind > 0 && kind < PI0__ROS2_KINDS ? KINDS[kind].schema : "";
}
const char *pi0__ros2_pi0_type(int kind) {
    return kind > 0 && kind < PI0__ROS2_KINDS ? KINDS[kind].pi0_type : NULL;
}

int pi0__ros2_kind_of(const char *name) {
    for (int k = 1; k < PI0__ROS2_KINDS; k++) {
        const char *full = KINDS[k].name, *msg = strstr(full, "/msg/");
        size_t pkg = (size_t)(msg - full);
        if (!strcmp(name, full)) return k;
        /* "pkg/Type" (ROS 1 style and some ROS 2 writers) */
        if (!strncmp(name, full, pkg + 1) && !strcmp(name + pkg + 1, msg + 5)) return k;
    }
    return PI0__ROS2_NONE;
}

int pi0__ros2_kinds_of_pi0(const char *t, int kinds[2]) {
    if (!strcmp(t, PI0_TYPE_ACTION_CHUNK)) {
        kinds[0] = PI0__ROS2_TRAJECTORY;
        kinds[1] = PI0__ROS2_CHUNK;
        return 2;
    }
    for (int k = 1; k < PI0__ROS2_KINDS; k++)
        if (KINDS[k].pi0_type && !strcmp(t, KINDS[k].pi0_type)) {
            kinds[0] = k;
            return 1;
        }
    return 0;
}

// ---- CDR writer (alignment counted from after the 4-byte encapsulation header) ----

static void align(pi0__buf *b, size_t a) {
    static const uint8_t z[8];
    size_t pad = (a - (b->len - 4) % a) % a;
    pi0__buf_put(b, z, pad);
}
static void w_u32(pi0__buf *b, uint32_t v) {
    align(b, 4);
    pi0__buf_u32(b, v);
}
static void w_u64(pi0__buf *b, uint64_t v) {
    align(b, 8);
    pi0__buf_u64(b, v);
}
static void w_str(pi0__buf *b, const char *s) {
    size_t n = strlen(s);
    w_u32(b, (uint32_t)n + 1);
    pi0__buf_put(b, s, n + 1);
}
/* A sequence of n elements of esize (4 or 8) bytes, aligned to esize. */
static void w_seq(pi0__buf *b, const void *v, uint32_t n, size_t esize) {
    w_u32(b, n);
    if (n) align(b, esize);
    pi0__buf_put(b, v, (size_t)n * esize);
}
static uint64_t unix_of(uint64_t mono, int64_t offset) {
    return mono ? (uint64_t)((int64_t)mono + offset) : 0;
}
/* std_msgs/Header from a Unix time in ns. */
static void w_header(pi0__buf *b, uint64_t t, const char *frame_id) {
    w_u32(b, (uint32_t)(int32_t)(t / 1000000000u));
    w_u32(b, (uint32_t)(t % 1000000000u));
    w_str(b, frame_id ? frame_id : "");
}

int pi0__ros2_encode(int kind, const void *payload, size_t size, int64_t off,
                     const char *frame_id, pi0__buf *b) {
    static const uint8_t encap[4] = {0x00, 0x01, 0x00, 0x00};
    b->len = 0; /* align() counts from after the 4-byte header at the buffer start */
    pi0__buf_put(b, encap, 4);
    switch (kind) {
    case PI0__ROS2_IMAGE: {
        const pi0_image *im = payload;
        uint32_t f = im->format;
        w_header(b, unix_of(im->capture_ns, off), frame_id);
        w_u32(b, im->height);
        w_u32(b, im->width);
        w_str(b, f == PI0_PIX_RGB8 ? "rgb8" : f == PI0_PIX_BGR8 ? "bgr8" : "mono8");
        pi0__buf_u8(b, 0);
        w_u32(b, im->stride);
        w_u32(b, im->data_bytes);
        pi0__buf_put(b, im->data, im->data_bytes);
        break;
    }
    case PI0__ROS2_JOINT_STATE: {
        const pi0_joint_state *js = payload;
        w_header(b, unix_of(js->stamp_ns, off), frame_id);
        w_u32(b, 0); /* name[] */
        w_seq(b, js->position, js->n, 8);
        w_seq(b, js->velocity, js->n, 8);
        w_seq(b, js->effort, js->n, 8);
        break;
    }
    case PI0__ROS2_TRAJECTORY: {
        const pi0_action_chunk *c = payload;
        w_header(b, unix_of(c->t0_ns, off), frame_id);
        w_u32(b, 0); /* joint_names[] */
        w_u32(b, c->horizon);
        for (uint32_t k = 0; k < c->horizon; k++) {
            double pos[PI0_CHUNK_DIM_MAX];
            for (uint32_t j = 0; j < c->dim; j++)
                pos[j] = c->actions[k * c->dim + j];
            w_seq(b, pos, c->dim, 8);
            w_u32(b, 0); /* velocities[] */
            w_u32(b, 0); /* accelerations[] */
            w_u32(b, 0); /* effort[] */
            uint64_t t = (uint64_t)k * c->period_ns;
            w_u32(b, (uint32_t)(t / 1000000000u));
            w_u32(b, (uint32_t)(t % 1000000000u));
        }
        break;
    }
    case PI0__ROS2_CHUNK: {
        const pi0_action_chunk *c = payload;
        w_u64(b, c->seq);
        w_u64(b, unix_of(c->t0_ns, off));
        w_u64(b, unix_of(c->obs_stamp_ns, off));
        w_u64(b, c->period_ns);
        w_u32(b, c->horizon);
        w_u32(b, c->dim);
        w_u32(b, c->preprocess_us);
        w_u32(b, c->encode_us);
        w_u32(b, c->denoise_us);
        w_u32(b, c->postprocess_us);
        w_u32(b, c->total_us);
        w_seq(b, c->actions, c->horizon * c->dim, 4);
        break;
    }
    case PI0__ROS2_ACTION: {
        const pi0_action *a = payload;
        w_u64(b, unix_of(a->due_ns, off));
        w_u64(b, a->chunk_seq);
        w_u32(b, a->index);
        w_u32(b, a->flags);
        w_seq(b, a->values, a->dim, 4);
        break;
    }
    case PI0__ROS2_STATUS: {
        const pi0_node_status *s = payload;
        char msg[sizeof s->message + 1];
        memcpy(msg, s->message, sizeof s->message);
        msg[sizeof s->message] = 0;
        w_u64(b, unix_of(s->stamp_ns, off));
        w_u32(b, s->state);
        w_u32(b, (uint32_t)s->last_error);
        w_u64(b, s->ticks);
        w_u64(b, s->missed_ticks);
        w_u64(b, s->chunks);
        w_u64(b, s->dropped_chunks);
        w_u64(b, s->holds);
        w_u32(b, s->hold_reason);
        w_u32(b, s->tick_late_p50_us);
        w_u32(b, s->tick_late_p99_us);
        w_u32(b, s->tick_late_max_us);
        w_u32(b, s->infer_p50_us);
        w_u32(b, s->infer_p99_us);
        w_u32(b, s->infer_max_us);
        w_str(b, msg);
        break;
    }
    default:
        return pi0_errorf(PI0_EINVAL, "ros2: no encoder for kind %d", kind);
    }
    (void)size;
    return b->oom ? pi0_errorf(PI0_ENOMEM, "ros2: encode") : 0;
}

// ---- CDR reader (bounded; any overrun marks the cursor bad) ----

typedef struct rd {
    const uint8_t *p; /* first byte after the encapsulation header */
    size_t n, pos;
    const char *bad; /* the field that did not fit, NULL while fine */
} rd;

static int r_need(rd *r, size_t a, size_t k, const char *field) {
    if (r->bad) return -1;
    size_t pad = (a - r->pos % a) % a;
    if (pad > r->n - r->pos || k > r->n - r->pos - pad) {
        r->bad = field;
        return -1;
    }
    r->pos += pad;
    return 0;
}
static uint32_t r_u32(rd *r, const char *field) {
    uint32_t v = 0;
    if (!r_need(r, 4, 4, field)) memcpy(&v, r->p + r->pos, 4), r->pos += 4;
    return v;
}
static uint64_t r_u64(rd *r, const char *field) {
    uint64_t v = 0;
    if (!r_need(r, 8, 8, field)) memcpy(&v, r->p + r->pos, 8), r->pos += 8;
    return v;
}
static uint8_t r_u8(rd *r, const char *field) {
    uint8_t v = 0;
    if (!r_need(r, 1, 1, field)) v = r->p[r->pos++];
    return v;
}
/* A CDR string into buf (cap bytes, truncated); the count includes the NUL. */
static void r_str(rd *r, char *buf, size_t cap, const char *field) {
    uint32_t n = r_u32(r, field);
    if (buf && cap) buf[0] = 0;
    if (r->bad) return;
    if (n > r->n - r->pos) {
        r->bad = field;
        return;
    }
    if (buf && cap) {
        size_t k = n ? n - 1 : 0;
        if (k >= cap) k = cap - 1;
        memcpy(buf, r->p + r->pos, k);
        buf[k] = 0;
    }
    r->pos += n;
}
/* A sequence of at most max elements of esize (4 or 8) bytes into v; returns the count. */
static uint32_t r_seq(rd *r, void *v, size_t esize, uint32_t max, const char *field,
                      int *too_many) {
    uint32_t n = r_u32(r, field);
    if (r->bad) return 0;
    if (n > max) {
        *too_many = 1;
        return 0;
    }
    if (n && r_need(r, esize, (size_t)n * esize, field)) return 0;
    memcpy(v, r->p + r->pos, (size_t)n * esize);
    r->pos += (size_t)n * esize;
    return n;
}
static uint64_t r_time(rd *r, const char *field) {
    int32_t sec = (int32_t)r_u32(r, field);
    uint32_t ns = r_u32(r, field);
    if (sec < 0 || ns >= 1000000000u) return 0;
    return (uint64_t)sec * 1000000000u + ns;
}

int pi0__ros2_decode(int kind, const uint8_t *cdr, size_t len, uint32_t sequence,
                     pi0__buf *out) {
    const char *name = pi0__ros2_name(kind);
    if (len < 4 || cdr[0] != 0x00 || cdr[1] != 0x01)
        return pi0_errorf(PI0_EFORMAT, "%s: not little-endian CDR (encapsulation %02x %02x)",
                          name, len > 0 ? cdr[0] : 0, len > 1 ? cdr[1] : 0);
    rd r = {cdr + 4, len - 4, 0, NULL};
    int too_many = 0;
    out->len = 0;
    switch (kind) {
    case PI0__ROS2_IMAGE: {
        pi0_image im;
        memset(&im, 0, sizeof im);
        char enc[32];
        im.capture_ns = r_time(&r, "header.stamp");
        r_str(&r, NULL, 0, "header.frame_id");
        im.height = r_u32(&r, "height");
        im.width = r_u32(&r, "width");
        r_str(&r, enc, sizeof enc, "encoding");
        uint8_t big = r_u8(&r, "is_bigendian");
        im.stride = r_u32(&r, "step");
        uint32_t n = r_u32(&r, "data");
        if (!r.bad && n > r.n - r.pos) r.bad = "data";
        if (r.bad) break;
        (void)big; /* 8-bit encodings: byte order does not matter */
        im.format = !strcmp(enc, "rgb8")                            ? PI0_PIX_RGB8
                    : !strcmp(enc, "bgr8")                          ? PI0_PIX_BGR8
                    : !strcmp(enc, "mono8") || !strcmp(enc, "8UC1") ? PI0_PIX_GRAY8
                                                                    : 0;
        if (!im.format)
            return pi0_errorf(PI0_ENOTSUP,
                              "%s: encoding \"%s\" (pi0rt plays rgb8, bgr8, mono8)", name, enc);
        im.frame_id = sequence;
        im.data_bytes = n;
        int rr = pi0__buf_reserve(out, sizeof im + n);
        if (rr) return rr;
        pi0__buf_put(out, &im, sizeof im);
        pi0__buf_put(out, r.p + r.pos, n);
        int st = pi0_image_check(out->p, out->len);
        if (st) return pi0_errorf(st, "%s: %s", name, pi0_last_error());
        return 0;
    }
    case PI0__ROS2_JOINT_STATE: {
        pi0_joint_state js;
        memset(&js, 0, sizeof js);
        js.stamp_ns = r_time(&r, "header.stamp");
        r_str(&r, NULL, 0, "header.frame_id");
        uint32_t names = r_u32(&r, "name");
        for (uint32_t i = 0; i < names && !r.bad; i++)
            r_str(&r, NULL, 0, "name");
        js.n = r_seq(&r, js.position, 8, PI0_JOINTS_MAX, "position", &too_many);
        uint32_t nv = r_seq(&r, js.velocity, 8, PI0_JOINTS_MAX, "velocity", &too_many);
        uint32_t ne = r_seq(&r, js.effort, 8, PI0_JOINTS_MAX, "effort", &too_many);
        if (!r.bad && !too_many && ((nv && nv != js.n) || (ne && ne != js.n)))
            return pi0_errorf(PI0_EFORMAT, "%s: %u positions but %u velocities, %u efforts",
                              name, js.n, nv, ne);
        pi0__buf_put(out, &js, sizeof js);
        break;
    }
    case PI0__ROS2_CHUNK: {
        pi0_action_chunk c;
        memset(&c, 0, sizeof c);
        c.seq = r_u64(&r, "seq");
        c.t0_ns = r_u64(&r, "t0_ns");
        c.obs_stamp_ns = r_u64(&r, "obs_stamp_ns");
        c.period_ns = r_u64(&r, "period_ns");
        c.horizon = r_u32(&r, "horizon");
        c.dim = r_u32(&r, "dim");
        c.preprocess_us = r_u32(&r, "preprocess_us");
        c.encode_us = r_u32(&r, "encode_us");
        c.denoise_us = r_u32(&r, "denoise_us");
        c.postprocess_us = r_u32(&r, "postprocess_us");
        c.total_us = r_u32(&r, "total_us");
        uint32_t n = r_seq(&r, c.actions, 4, PI0_CHUNK_HORIZON_MAX * PI0_CHUNK_DIM_MAX,
                           "actions", &too_many);
        if (!r.bad && !too_many &&
            (c.horizon > PI0_CHUNK_HORIZON_MAX || c.dim > PI0_CHUNK_DIM_MAX ||
             n != c.horizon * c.dim))
            return pi0_errorf(PI0_EFORMAT, "%s: horizon %u x dim %u but %u actions", name,
                              c.horizon, c.dim, n);
        pi0__buf_put(out, &c, sizeof c);
        break;
    }
    case PI0__ROS2_ACTION: {
        pi0_action a;
        memset(&a, 0, sizeof a);
        a.due_ns = r_u64(&r, "due_ns");
        a.chunk_seq = r_u64(&r, "chunk_seq");
        a.index = r_u32(&r, "index");
        a.flags = r_u32(&r, "flags");
        a.dim = r_seq(&r, a.values, 4, PI0_ACTION_DIM_MAX, "values", &too_many);
        pi0__buf_put(out, &a, sizeof a);
        break;
    }
    case PI0__ROS2_STATUS: {
        pi0_node_status s;
        memset(&s, 0, sizeof s);
        s.stamp_ns = r_u64(&r, "stamp_ns");
        s.state = r_u32(&r, "state");
        s.last_error = (int32_t)r_u32(&r, "last_error");
        s.ticks = r_u64(&r, "ticks");
        s.missed_ticks = r_u64(&r, "missed_ticks");
        s.chunks = r_u64(&r, "chunks");
        s.dropped_chunks = r_u64(&r, "dropped_chunks");
        s.holds = r_u64(&r, "holds");
        s.hold_reason = r_u32(&r, "hold_reason");
        s.tick_late_p50_us = r_u32(&r, "tick_late_p50_us");
        s.tick_late_p99_us = r_u32(&r, "tick_late_p99_us");
        s.tick_late_max_us = r_u32(&r, "tick_late_max_us");
        s.infer_p50_us = r_u32(&r, "infer_p50_us");
        s.infer_p99_us = r_u32(&r, "infer_p99_us");
        s.infer_max_us = r_u32(&r, "infer_max_us");
        r_str(&r, s.message, sizeof s.message, "message");
        pi0__buf_put(out, &s, sizeof s);
        break;
    }
    default:
        return pi0_errorf(PI0_ENOTSUP, "%s: not replayable", name[0] ? name : "schema");
    }
    if (r.bad)
        return pi0_errorf(PI0_EFORMAT, "%s: field %s runs past the message end (%zu bytes)",
                          name, r.bad, len);
    if (too_many) return pi0_errorf(PI0_ERANGE, "%s: array longer than pi0rt holds", name);
    return out->oom ? pi0_errorf(PI0_ENOMEM, "%s: decode", name) : 0;
}
