/* device.c — the public device API: backend selection, argument checks, fallbacks.
 *
 * Every public entry checks its arguments here (NULLs, dtypes, shapes, that a view lies
 * inside its buffer, that objects belong to the same device) and only then calls the
 * backend's table entry, so a bad call returns PI0_EINVAL / PI0_ESHAPE / PI0_ETYPE with a
 * detail and enqueues nothing. */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "device_impl.h"

// ---- backends and devices ----

static const pi0_dev_iface *const backends[] = {&pi0__cpu_iface};
#define N_BACKENDS (sizeof backends / sizeof backends[0])

/* backends[i]->name, NULL-terminated (filled once: an iface's name is no constant
 * expression a static initializer could use) */
static const char *backend_names[N_BACKENDS + 1];
static pthread_once_t backend_names_once = PTHREAD_ONCE_INIT;

static void backend_names_init(void) {
    for (size_t i = 0; i < N_BACKENDS; i++)
        backend_names[i] = backends[i]->name;
}

const char *const *pi0_dev_backends(void) {
    pthread_once(&backend_names_once, backend_names_init);
    return backend_names;
}

int pi0_dev_open(const char *name, const pi0_dev_opts *opts, pi0_dev **out) {
    if (!out) return pi0_errorf(PI0_EINVAL, "pi0_dev_open: out is NULL");
    *out = NULL;
    if (!name) return pi0_errorf(PI0_EINVAL, "pi0_dev_open: backend name is NULL");
    const pi0_dev_iface *iface = NULL;
    for (size_t i = 0; i < N_BACKENDS; i++)
        if (strcmp(backends[i]->name, name) == 0) iface = backends[i];
    if (!iface) {
        char built[128] = "";
        for (size_t i = 0; i < N_BACKENDS; i++) {
            if (i) strncat(built, ", ", sizeof built - strlen(built) - 1);
            strncat(built, backends[i]->name, sizeof built - strlen(built) - 1);
        }
        return pi0_errorf(PI0_ENOTSUP,
                          "pi0_dev_open: backend \"%s\" is unknown or was not built "
                          "(built: %s)",
                          name, built);
    }
    if (iface->version != PI0_DEV_IFACE_VERSION)
        return pi0_errorf(PI0_EVERSION,
                          "pi0_dev_open: backend \"%s\" has interface version %d, "
                          "want %d",
                          name, iface->version, PI0_DEV_IFACE_VERSION);
    if (opts && (opts->n_threads < 0 || opts->n_cpus < 0 || (opts->n_cpus > 0 && !opts->cpus)))
        return pi0_errorf(PI0_EINVAL,
                          "pi0_dev_open(%s): bad opts (n_threads %d, n_cpus %d, "
                          "cpus %s)",
                          name, opts->n_threads, opts->n_cpus, opts->cpus ? "set" : "NULL");
    if (opts && opts->precision != PI0_PRECISION_F32 && opts->precision != PI0_PRECISION_BF16)
        return pi0_errorf(PI0_EINVAL, "pi0_dev_open(%s): opts.precision %d (want f32 or bf16)",
                          name, (int)opts->precision);
    pi0_dev *dev = calloc(1, sizeof *dev);
    if (!dev) return pi0_errorf(PI0_ENOMEM, "pi0_dev_open(%s): out of memory", name);
    dev->iface = iface;
    int st = iface->open(dev, opts);
    if (st) {
        free(dev);
        return st;
    }
    *out = dev;
    return PI0_OK;
}

int pi0_dev_close(pi0_dev *dev) {
    if (!dev) return PI0_OK;
    int b = atomic_load(&dev->n_bufs), w = atomic_load(&dev->n_weights),
        s = atomic_load(&dev->n_streams), e = atomic_load(&dev->n_events);
    if (b || w || s || e)
        return pi0_errorf(PI0_EBUSY,
                          "pi0_dev_close(%s): still %d buffers, %d weights, "
                          "%d streams, %d events alive",
                          dev->iface->name, b, w, s, e);
    dev->iface->close(dev);
    free(dev);
    return PI0_OK;
}

const char *pi0_dev_name(const pi0_dev *dev) {
    return dev ? dev->iface->name : "(null)";
}

int pi0_dev_reserve(pi0_dev *dev, size_t scratch_bytes) {
    if (!dev) return pi0_errorf(PI0_EINVAL, "pi0_dev_reserve: dev is NULL");
    if (!dev->iface->reserve) return PI0_OK;
    return dev->iface->reserve(dev, scratch_bytes);
}

int pi0_dev_reserve_rope(pi0_dev *dev, int max_pos, int head_dim, float theta) {
    const char *op = "pi0_dev_reserve_rope";
    if (!dev) return pi0_errorf(PI0_EINVAL, "%s: dev is NULL", op);
    if (max_pos <= 0 || head_dim <= 0 || head_dim % 2 || !(theta > 0))
        return pi0_errorf(PI0_EINVAL,
                          "%s: max_pos %d, head_dim %d, theta %g (want max_pos > 0, head_dim "
                          "even and > 0, theta > 0)",
                          op, max_pos, head_dim, (double)theta);
    if (!dev->iface->reserve_rope) return PI0_OK;
    return dev->iface->reserve_rope(dev, max_pos, head_dim, theta);
}

int pi0_dev_reserve_attention(pi0_dev *dev, int max_q, int max_k, int n_heads, int n_kv_heads,
                              int head_dim) {
    const char *op = "pi0_dev_reserve_attention";
    if (!dev) return pi0_errorf(PI0_EINVAL, "%s: dev is NULL", op);
    if (max_q <= 0 || max_k <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 ||
        n_heads % n_kv_heads || (long long)n_heads * head_dim > INT_MAX)
        return pi0_errorf(PI0_EINVAL,
                          "%s: max_q %d, max_k %d, n_heads %d, n_kv_heads %d, head_dim %d "
                          "(want sizes > 0, n_heads a multiple of n_kv_heads, "
                          "n_heads*head_dim <= INT_MAX)",
                          op, max_q, max_k, n_heads, n_kv_heads, head_dim);
    if (dev->iface->reserve_attention)
        return dev->iface->reserve_attention(dev, max_q, max_k, n_heads, n_kv_heads, head_dim);
    if (!dev->iface->reserve) return PI0_OK;
    /* generic: one whole score matrix plus a query and an output row per score row */
    double floats = (double)max_q * n_heads * ((double)max_k + 2.0 * head_dim);
    if (floats * sizeof(float) > (double)(SIZE_MAX / 2))
        return pi0_errorf(PI0_ENOMEM, "%s: %d x %d attention needs too much scratch", op, max_q,
                          max_k);
    return dev->iface->reserve(dev, (size_t)floats * sizeof(float));
}

// ---- memory ----

int pi0_buf_alloc(pi0_dev *dev, size_t bytes, pi0_buf **out) {
    if (!out) return pi0_errorf(PI0_EINVAL, "pi0_buf_alloc: out is NULL");
    *out = NULL;
    if (!dev) return pi0_errorf(PI0_EINVAL, "pi0_buf_alloc: dev is NULL");
    if (bytes == 0) return pi0_errorf(PI0_EINVAL, "pi0_buf_alloc: size 0");
    pi0_buf *b = calloc(1, sizeof *b);
    if (!b) return pi0_errorf(PI0_ENOMEM, "pi0_buf_alloc: out of memory");
    b->dev = dev;
    b->size = bytes;
    int st = dev->iface->buf_alloc(dev, b);
    if (st) {
        free(b);
        return st;
    }
    atomic_fetch_add(&dev->n_bufs, 1);
    *out = b;
    return PI0_OK;
}

void pi0_buf_free(pi0_buf *buf) {
    if (!buf) return;
    buf->dev->iface->buf_free(buf);
    atomic_fetch_sub(&buf->dev->n_bufs, 1);
    free(buf);
}

size_t pi0_buf_size(const pi0_buf *buf) {
    return buf ? buf->size : 0;
}

static int weight_create(pi0_dev *dev, const void *host, pi0_dtype dtype, int n, int k, int ld,
                         int table, pi0_weight **out) {
    if (!out) return pi0_errorf(PI0_EINVAL, "pi0_weight_create: out is NULL");
    *out = NULL;
    if (!dev || !host)
        return pi0_errorf(PI0_EINVAL, "pi0_weight_create: %s is NULL", dev ? "host" : "dev");
    if (dtype != PI0_F32 && dtype != PI0_BF16 && dtype != PI0_F16)
        return pi0_errorf(PI0_ETYPE, "pi0_weight_create: dtype %s (want f32, bf16 or f16)",
                          pi0_dtype_name(dtype));
    if (n <= 0 || k <= 0 || ld < k)
        return pi0_errorf(PI0_ESHAPE, "pi0_weight_create: bad shape [%d, %d] ld %d", n, k, ld);
    pi0_weight *w = calloc(1, sizeof *w);
    if (!w) return pi0_errorf(PI0_ENOMEM, "pi0_weight_create: out of memory");
    w->dev = dev;
    w->host = host;
    w->n = n;
    w->k = k;
    w->ld = ld;
    w->dtype = dtype;
    w->host_dtype = dtype;
    w->table = table;
    int st = dev->iface->weight_create(dev, w);
    if (st) {
        free(w);
        return st;
    }
    atomic_fetch_add(&dev->n_weights, 1);
    *out = w;
    return PI0_OK;
}

int pi0_weight_create(pi0_dev *dev, const void *host, pi0_dtype dtype, int n, int k, int ld,
                      pi0_weight **out) {
    return weight_create(dev, host, dtype, n, k, ld, 0, out);
}

int pi0_weight_create_table(pi0_dev *dev, const void *host, pi0_dtype dtype, int n, int k,
                            int ld, pi0_weight **out) {
    return weight_create(dev, host, dtype, n, k, ld, 1, out);
}

void pi0_weight_destroy(pi0_weight *w) {
    if (!w) return;
    w->dev->iface->weight_destroy(w);
    atomic_fetch_sub(&w->dev->n_weights, 1);
    free(w);
}

size_t pi0_weight_device_bytes(const pi0_weight *w) {
    return w ? w->dev_bytes : 0;
}

// ---- streams and events ----

int pi0_stream_create(pi0_dev *dev, pi0_stream **out) {
    if (!out) return pi0_errorf(PI0_EINVAL, "pi0_stream_create: out is NULL");
    *out = NULL;
    if (!dev) return pi0_errorf(PI0_EINVAL, "pi0_stream_create: dev is NULL");
    pi0_stream *s = calloc(1, sizeof *s);
    if (!s) return pi0_errorf(PI0_ENOMEM, "pi0_stream_create: out of memory");
    s->dev = dev;
    int st = dev->iface->stream_create(dev, s);
    if (st) {
        free(s);
        return st;
    }
    atomic_fetch_add(&dev->n_streams, 1);
    *out = s;
    return PI0_OK;
}

void pi0_stream_destroy(pi0_stream *s) {
    if (!s) return;
    s->dev->iface->stream_destroy(s);
    atomic_fetch_sub(&s->dev->n_streams, 1);
    free(s);
}

int pi0_stream_sync(pi0_stream *s) {
    if (!s) return pi0_errorf(PI0_EINVAL, "pi0_stream_sync: stream is NULL");
    return s->dev->iface->stream_sync(s);
}

int pi0_stream_set_priority(pi0_stream *s, int high) {
    if (!s) return pi0_errorf(PI0_EINVAL, "pi0_stream_set_priority: stream is NULL");
    if (!s->dev->iface->stream_set_priority)
        return pi0_errorf(PI0_ENOTSUP, "this backend has no stream priorities");
    return s->dev->iface->stream_set_priority(s, high != 0);
}

int pi0_event_create(pi0_dev *dev, pi0_event **out) {
    if (!out) return pi0_errorf(PI0_EINVAL, "pi0_event_create: out is NULL");
    *out = NULL;
    if (!dev) return pi0_errorf(PI0_EINVAL, "pi0_event_create: dev is NULL");
    pi0_event *e = calloc(1, sizeof *e);
    if (!e) return pi0_errorf(PI0_ENOMEM, "pi0_event_create: out of memory");
    e->dev = dev;
    int st = dev->iface->event_create(dev, e);
    if (st) {
        free(e);
        return st;
    }
    atomic_fetch_add(&dev->n_events, 1);
    *out = e;
    return PI0_OK;
}

void pi0_event_destroy(pi0_event *e) {
    if (!e) return;
    e->dev->iface->event_destroy(e);
    atomic_fetch_sub(&e->dev->n_events, 1);
    free(e);
}

int pi0_event_record(pi0_event *e, pi0_stream *s) {
    if (!e || !s)
        return pi0_errorf(PI0_EINVAL, "pi0_event_record: %s is NULL", e ? "stream" : "event");
    if (e->dev != s->dev)
        return pi0_errorf(PI0_EINVAL,
                          "pi0_event_record: event and stream on different devices");
    return s->dev->iface->event_record(e, s);
}

int pi0_stream_wait_event(pi0_stream *s, pi0_event *e) {
    if (!e || !s)
        return pi0_errorf(PI0_EINVAL, "pi0_stream_wait_event: %s is NULL",
                          e ? "stream" : "event");
    if (e->dev != s->dev)
        return pi0_errorf(PI0_EINVAL,
                          "pi0_stream_wait_event: event and stream on different devices");
    return s->dev->iface->stream_wait_event(s, e);
}

int pi0_event_sync(pi0_event *e) {
    if (!e) return pi0_errorf(PI0_EINVAL, "pi0_event_sync: event is NULL");
    return e->dev->iface->event_sync(e);
}

int pi0_event_done(pi0_event *e) {
    if (!e) return 1;
    return e->dev->iface->event_done(e);
}

// ---- argument checks ----

/* A byte range [off, off+bytes) inside a buffer of the stream's device. */
static int check_range(const char *op, const char *what, const pi0_stream *s, const pi0_buf *b,
                       size_t off, size_t bytes) {
    if (!b) return pi0_errorf(PI0_EINVAL, "%s: %s buffer is NULL", op, what);
    if (b->dev != s->dev)
        return pi0_errorf(PI0_EINVAL, "%s: %s buffer belongs to another device", op, what);
    if (off > b->size || bytes > b->size - off)
        return pi0_errorf(PI0_ERANGE, "%s: %s range [%zu, +%zu) outside its %zu-byte buffer",
                          op, what, off, bytes, b->size);
    return PI0_OK;
}

static size_t mat_bytes(pi0_mat m) {
    return ((size_t)(m.rows - 1) * (size_t)m.ld + (size_t)m.cols) * pi0_dtype_size(m.dtype);
}

/* m is a valid view of dtype `want` (any dtype when want < 0) inside its buffer. */
static int check_mat(const char *op, const char *what, const pi0_stream *s, pi0_mat m,
                     int want) {
    if (!m.buf) return pi0_errorf(PI0_EINVAL, "%s: %s has no buffer", op, what);
    if (want >= 0 && m.dtype != (pi0_dtype)want)
        return pi0_errorf(PI0_ETYPE, "%s: %s is %s, want %s", op, what, pi0_dtype_name(m.dtype),
                          pi0_dtype_name((pi0_dtype)want));
    size_t es = pi0_dtype_size(m.dtype);
    if (!es)
        return pi0_errorf(PI0_ETYPE, "%s: %s has unknown dtype %d", op, what, (int)m.dtype);
    if (m.rows <= 0 || m.cols <= 0 || m.ld < m.cols)
        return pi0_errorf(PI0_ESHAPE, "%s: %s has bad shape [%d, %d] ld %d", op, what, m.rows,
                          m.cols, m.ld);
    if (m.off % es)
        return pi0_errorf(PI0_EINVAL, "%s: %s offset %zu not aligned to its %zu-byte elements",
                          op, what, m.off, es);
    return check_range(op, what, s, m.buf, m.off, mat_bytes(m));
}

static int mats_overlap(pi0_mat a, pi0_mat b) {
    if (a.buf != b.buf) return 0;
    size_t a1 = a.off + mat_bytes(a), b1 = b.off + mat_bytes(b);
    return a.off < b1 && b.off < a1;
}

/* Exact for two views with one row stride (e.g. column blocks of one matrix, as q and k
 * of a fused projection); otherwise mats_overlap. */
static int views_overlap(pi0_mat a, pi0_mat b) {
    if (!mats_overlap(a, b)) return 0;
    size_t es = pi0_dtype_size(a.dtype);
    if (a.ld != b.ld || es != pi0_dtype_size(b.dtype) || a.off % es || b.off % es) return 1;
    if (b.off < a.off) {
        pi0_mat t = a;
        a = b;
        b = t;
    }
    /* b's origin is row dr, column dc of a's grid; b's rows may wrap into the next row */
    size_t ld = (size_t)a.ld, d = (b.off - a.off) / es, dr = d / ld, dc = d % ld;
    size_t ar = (size_t)a.rows;
    if (dc < (size_t)a.cols && dr < ar) return 1;
    return dc + (size_t)b.cols > ld && dr + 1 < ar;
}

static int same_view(pi0_mat a, pi0_mat b) {
    return a.buf == b.buf && a.off == b.off && a.ld == b.ld && a.rows == b.rows &&
           a.cols == b.cols;
}

#define CHECK_ST(call)                                                                         \
    do {                                                                                       \
        int st_ = (call);                                                                      \
        if (st_) return st_;                                                                   \
    } while (0)

static int check_stream(const char *op, const pi0_stream *s) {
    if (!s) return pi0_errorf(PI0_EINVAL, "%s: stream is NULL", op);
    return PI0_OK;
}

static int check_shape(const char *op, const char *what, pi0_mat m, int rows, int cols) {
    if (m.rows != rows || m.cols != cols)
        return pi0_errorf(PI0_ESHAPE, "%s: %s is [%d, %d], want [%d, %d]", op, what, m.rows,
                          m.cols, rows, cols);
    return PI0_OK;
}

/* [1, cols] or [rows, cols] */
static int check_bcast(const char *op, const char *what, pi0_mat m, int rows, int cols) {
    if ((m.rows != 1 && m.rows != rows) || m.cols != cols)
        return pi0_errorf(PI0_ESHAPE, "%s: %s is [%d, %d], want [1, %d] or [%d, %d]", op, what,
                          m.rows, m.cols, cols, rows, cols);
    return PI0_OK;
}

/* y is x itself or does not overlap it */
static int check_alias_ok(const char *op, const char *yn, pi0_mat y, const char *xn,
                          pi0_mat x) {
    if (mats_overlap(y, x) && !same_view(y, x))
        return pi0_errorf(PI0_EINVAL, "%s: %s partially overlaps %s", op, yn, xn);
    return PI0_OK;
}

// ---- copies ----

int pi0_dev_upload(pi0_stream *s, pi0_buf *dst, size_t dst_off, const void *host,
                   size_t bytes) {
    const char *op = "pi0_dev_upload";
    CHECK_ST(check_stream(op, s));
    if (!host && bytes) return pi0_errorf(PI0_EINVAL, "%s: host is NULL", op);
    CHECK_ST(check_range(op, "dst", s, dst, dst_off, bytes));
    if (!bytes) return PI0_OK;
    return s->dev->iface->upload(s, dst, dst_off, host, bytes);
}

int pi0_dev_download(pi0_stream *s, void *host, const pi0_buf *src, size_t src_off,
                     size_t bytes) {
    const char *op = "pi0_dev_download";
    CHECK_ST(check_stream(op, s));
    if (!host && bytes) return pi0_errorf(PI0_EINVAL, "%s: host is NULL", op);
    CHECK_ST(check_range(op, "src", s, src, src_off, bytes));
    if (!bytes) return PI0_OK;
    return s->dev->iface->download(s, host, src, src_off, bytes);
}

int pi0_dev_copy(pi0_stream *s, pi0_buf *dst, size_t dst_off, const pi0_buf *src,
                 size_t src_off, size_t bytes) {
    const char *op = "pi0_dev_copy";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_range(op, "dst", s, dst, dst_off, bytes));
    CHECK_ST(check_range(op, "src", s, src, src_off, bytes));
    if (!bytes) return PI0_OK;
    return s->dev->iface->copy(s, dst, dst_off, src, src_off, bytes);
}

int pi0_dev_copy_mat(pi0_stream *s, pi0_mat dst, pi0_mat src) {
    const char *op = "pi0_dev_copy_mat";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_mat(op, "dst", s, dst, -1));
    CHECK_ST(check_mat(op, "src", s, src, (int)dst.dtype));
    CHECK_ST(check_shape(op, "src", src, dst.rows, dst.cols));
    if (mats_overlap(dst, src)) return pi0_errorf(PI0_EINVAL, "%s: dst overlaps src", op);
    if (s->dev->iface->copy_mat) return s->dev->iface->copy_mat(s, dst, src);
    size_t es = pi0_dtype_size(dst.dtype);
    for (int r = 0; r < dst.rows; r++)
        CHECK_ST(s->dev->iface->copy(s, dst.buf, dst.off + (size_t)r * dst.ld * es, src.buf,
                                     src.off + (size_t)r * src.ld * es, (size_t)dst.cols * es));
    return PI0_OK;
}

// ---- kernels ----

int pi0_dev_gemm(pi0_stream *s, pi0_mat y, pi0_mat x, const pi0_weight *w, const pi0_mat *bias,
                 pi0_act act, int accumulate) {
    const char *op = "pi0_dev_gemm";
    CHECK_ST(check_stream(op, s));
    if (!w) return pi0_errorf(PI0_EINVAL, "%s: weight is NULL", op);
    if (w->dev != s->dev) return pi0_errorf(PI0_EINVAL, "%s: weight on another device", op);
    CHECK_ST(check_mat(op, "y", s, y, PI0_F32));
    CHECK_ST(check_mat(op, "x", s, x, PI0_F32));
    if (x.cols != w->k)
        return pi0_errorf(PI0_ESHAPE, "%s: x is [%d, %d] but the weight is [%d, %d] (k=%d)", op,
                          x.rows, x.cols, w->n, w->k, w->k);
    CHECK_ST(check_shape(op, "y", y, x.rows, w->n));
    if (bias) {
        CHECK_ST(check_mat(op, "bias", s, *bias, PI0_F32));
        CHECK_ST(check_shape(op, "bias", *bias, 1, w->n));
        if (mats_overlap(y, *bias)) return pi0_errorf(PI0_EINVAL, "%s: y overlaps bias", op);
    }
    if (mats_overlap(y, x)) return pi0_errorf(PI0_EINVAL, "%s: y overlaps x", op);
    if (act != PI0_ACT_NONE && act != PI0_ACT_GELU_TANH && act != PI0_ACT_SILU)
        return pi0_errorf(PI0_EINVAL, "%s: unknown activation %d", op, (int)act);
    if (accumulate != 0 && accumulate != 1)
        return pi0_errorf(PI0_EINVAL, "%s: accumulate is %d (want 0 or 1)", op, accumulate);
    return s->dev->iface->gemm(s, y, x, w, bias, act, accumulate);
}

int pi0_dev_gemm_multi(pi0_stream *s, int count, const pi0_mat *ys, pi0_mat x,
                       const pi0_weight *const *ws) {
    const char *op = "pi0_dev_gemm_multi";
    CHECK_ST(check_stream(op, s));
    if (count < 1 || count > PI0_GEMM_MULTI_MAX)
        return pi0_errorf(PI0_EINVAL, "%s: count %d (want 1..%d)", op, count,
                          PI0_GEMM_MULTI_MAX);
    if (!ys || !ws) return pi0_errorf(PI0_EINVAL, "%s: %s is NULL", op, ys ? "ws" : "ys");
    CHECK_ST(check_mat(op, "x", s, x, PI0_F32));
    for (int i = 0; i < count; i++) {
        const pi0_weight *w = ws[i];
        if (!w) return pi0_errorf(PI0_EINVAL, "%s: ws[%d] is NULL", op, i);
        if (w->dev != s->dev)
            return pi0_errorf(PI0_EINVAL, "%s: ws[%d] on another device", op, i);
        CHECK_ST(check_mat(op, "ys[i]", s, ys[i], PI0_F32));
        if (x.cols != w->k)
            return pi0_errorf(PI0_ESHAPE, "%s: x is [%d, %d] but ws[%d] is [%d, %d]", op,
                              x.rows, x.cols, i, w->n, w->k);
        CHECK_ST(check_shape(op, "ys[i]", ys[i], x.rows, w->n));
        if (views_overlap(ys[i], x))
            return pi0_errorf(PI0_EINVAL, "%s: ys[%d] overlaps x", op, i);
        for (int j = 0; j < i; j++)
            if (views_overlap(ys[i], ys[j]))
                return pi0_errorf(PI0_EINVAL, "%s: ys[%d] overlaps ys[%d]", op, i, j);
    }
    if (s->dev->iface->gemm_multi) return s->dev->iface->gemm_multi(s, count, ys, x, ws);
    for (int i = 0; i < count; i++)
        CHECK_ST(s->dev->iface->gemm(s, ys[i], x, ws[i], NULL, PI0_ACT_NONE, 0));
    return PI0_OK;
}

int pi0_dev_layernorm(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat weight, pi0_mat bias,
                      float eps) {
    const char *op = "pi0_dev_layernorm";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_mat(op, "y", s, y, PI0_F32));
    CHECK_ST(check_mat(op, "x", s, x, PI0_F32));
    CHECK_ST(check_mat(op, "weight", s, weight, PI0_F32));
    CHECK_ST(check_mat(op, "bias", s, bias, PI0_F32));
    CHECK_ST(check_shape(op, "y", y, x.rows, x.cols));
    CHECK_ST(check_shape(op, "weight", weight, 1, x.cols));
    CHECK_ST(check_shape(op, "bias", bias, 1, x.cols));
    CHECK_ST(check_alias_ok(op, "y", y, "x", x));
    if (mats_overlap(y, weight) || mats_overlap(y, bias))
        return pi0_errorf(PI0_EINVAL, "%s: y overlaps weight or bias", op);
    if (!(eps >= 0)) return pi0_errorf(PI0_EINVAL, "%s: eps %g", op, (double)eps);
    return s->dev->iface->layernorm(s, y, x, weight, bias, eps);
}

int pi0_dev_rmsnorm(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat weight, float eps) {
    const char *op = "pi0_dev_rmsnorm";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_mat(op, "y", s, y, PI0_F32));
    CHECK_ST(check_mat(op, "x", s, x, PI0_F32));
    CHECK_ST(check_mat(op, "weight", s, weight, PI0_F32));
    CHECK_ST(check_shape(op, "y", y, x.rows, x.cols));
    CHECK_ST(check_shape(op, "weight", weight, 1, x.cols));
    CHECK_ST(check_alias_ok(op, "y", y, "x", x));
    if (mats_overlap(y, weight)) return pi0_errorf(PI0_EINVAL, "%s: y overlaps weight", op);
    if (!(eps >= 0)) return pi0_errorf(PI0_EINVAL, "%s: eps %g", op, (double)eps);
    return s->dev->iface->rmsnorm(s, y, x, weight, eps);
}

int pi0_dev_rmsnorm_ada(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat scale, pi0_mat shift,
                        float eps) {
    const char *op = "pi0_dev_rmsnorm_ada";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_mat(op, "y", s, y, PI0_F32));
    CHECK_ST(check_mat(op, "x", s, x, PI0_F32));
    CHECK_ST(check_mat(op, "scale", s, scale, PI0_F32));
    CHECK_ST(check_mat(op, "shift", s, shift, PI0_F32));
    CHECK_ST(check_shape(op, "y", y, x.rows, x.cols));
    CHECK_ST(check_bcast(op, "scale", scale, x.rows, x.cols));
    CHECK_ST(check_bcast(op, "shift", shift, x.rows, x.cols));
    CHECK_ST(check_alias_ok(op, "y", y, "x", x));
    if (mats_overlap(y, scale) || mats_overlap(y, shift))
        return pi0_errorf(PI0_EINVAL, "%s: y overlaps scale or shift", op);
    if (!(eps >= 0)) return pi0_errorf(PI0_EINVAL, "%s: eps %g", op, (double)eps);
    return s->dev->iface->rmsnorm_ada(s, y, x, scale, shift, eps);
}

int pi0_dev_gated_add(pi0_stream *s, pi0_mat h, pi0_mat gate, pi0_mat x) {
    const char *op = "pi0_dev_gated_add";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_mat(op, "h", s, h, PI0_F32));
    CHECK_ST(check_mat(op, "gate", s, gate, PI0_F32));
    CHECK_ST(check_mat(op, "x", s, x, PI0_F32));
    CHECK_ST(check_shape(op, "x", x, h.rows, h.cols));
    CHECK_ST(check_bcast(op, "gate", gate, h.rows, h.cols));
    if (mats_overlap(h, gate) || mats_overlap(h, x))
        return pi0_errorf(PI0_EINVAL, "%s: h overlaps gate or x", op);
    return s->dev->iface->gated_add(s, h, gate, x);
}

int pi0_dev_unary(pi0_stream *s, pi0_unop uop, pi0_mat y, pi0_mat x, float alpha) {
    const char *op = "pi0_dev_unary";
    CHECK_ST(check_stream(op, s));
    if (uop != PI0_UN_GELU_TANH && uop != PI0_UN_SILU && uop != PI0_UN_SCALE)
        return pi0_errorf(PI0_EINVAL, "%s: unknown op %d", op, (int)uop);
    CHECK_ST(check_mat(op, "y", s, y, PI0_F32));
    CHECK_ST(check_mat(op, "x", s, x, PI0_F32));
    CHECK_ST(check_shape(op, "y", y, x.rows, x.cols));
    CHECK_ST(check_alias_ok(op, "y", y, "x", x));
    return s->dev->iface->unary(s, uop, y, x, alpha);
}

int pi0_dev_binary(pi0_stream *s, pi0_binop bop, pi0_mat y, pi0_mat a, pi0_mat b) {
    const char *op = "pi0_dev_binary";
    CHECK_ST(check_stream(op, s));
    if (bop != PI0_BIN_ADD && bop != PI0_BIN_MUL)
        return pi0_errorf(PI0_EINVAL, "%s: unknown op %d", op, (int)bop);
    CHECK_ST(check_mat(op, "y", s, y, PI0_F32));
    CHECK_ST(check_mat(op, "a", s, a, PI0_F32));
    CHECK_ST(check_mat(op, "b", s, b, PI0_F32));
    CHECK_ST(check_shape(op, "y", y, a.rows, a.cols));
    CHECK_ST(check_bcast(op, "b", b, a.rows, a.cols));
    CHECK_ST(check_alias_ok(op, "y", y, "a", a));
    if (b.rows == a.rows) {
        CHECK_ST(check_alias_ok(op, "y", y, "b", b));
    } else if (mats_overlap(y, b)) {
        return pi0_errorf(PI0_EINVAL, "%s: y overlaps the broadcast row b", op);
    }
    return s->dev->iface->binary(s, bop, y, a, b);
}

int pi0_dev_geglu(pi0_stream *s, pi0_mat y, pi0_mat gate, pi0_mat up) {
    const char *op = "pi0_dev_geglu";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_mat(op, "y", s, y, PI0_F32));
    CHECK_ST(check_mat(op, "gate", s, gate, PI0_F32));
    CHECK_ST(check_mat(op, "up", s, up, PI0_F32));
    CHECK_ST(check_shape(op, "y", y, gate.rows, gate.cols));
    CHECK_ST(check_shape(op, "up", up, gate.rows, gate.cols));
    CHECK_ST(check_alias_ok(op, "y", y, "gate", gate));
    if (mats_overlap(y, up)) return pi0_errorf(PI0_EINVAL, "%s: y overlaps up", op);
    if (s->dev->iface->geglu) return s->dev->iface->geglu(s, y, gate, up);
    CHECK_ST(s->dev->iface->unary(s, PI0_UN_GELU_TANH, y, gate, 0.f));
    return s->dev->iface->binary(s, PI0_BIN_MUL, y, y, up);
}

/* x [rows, n_heads * head_dim] f32 (rows: the token count, -1 = x's own) */
static int check_rope_x(const char *op, const char *what, const pi0_stream *s, pi0_mat x,
                        int rows, int n_heads, int head_dim) {
    CHECK_ST(check_mat(op, what, s, x, PI0_F32));
    if (n_heads <= 0 || head_dim <= 0 || head_dim % 2)
        return pi0_errorf(PI0_EINVAL,
                          "%s: %s: n_heads %d, head_dim %d (want > 0, head_dim even)", op, what,
                          n_heads, head_dim);
    if (x.cols != (long long)n_heads * head_dim)
        return pi0_errorf(PI0_ESHAPE, "%s: %s has %d cols, want heads*head_dim = %lld", op,
                          what, x.cols, (long long)n_heads * head_dim);
    if (rows >= 0 && x.rows != rows)
        return pi0_errorf(PI0_ESHAPE, "%s: %s has %d rows, want %d (one per token)", op, what,
                          x.rows, rows);
    return PI0_OK;
}

static int check_rope_pos(const char *op, const pi0_stream *s, pi0_mat pos, int tokens,
                          float theta) {
    CHECK_ST(check_mat(op, "pos", s, pos, PI0_I32));
    if (!((pos.rows == 1 && pos.cols == tokens) || (pos.cols == 1 && pos.rows == tokens)))
        return pi0_errorf(PI0_ESHAPE, "%s: pos is [%d, %d], want [1, %d] or [%d, 1]", op,
                          pos.rows, pos.cols, tokens, tokens);
    if (!(theta > 0)) return pi0_errorf(PI0_EINVAL, "%s: theta %g", op, (double)theta);
    return PI0_OK;
}

int pi0_dev_rope(pi0_stream *s, pi0_mat x, pi0_mat pos, int n_heads, int head_dim,
                 float theta) {
    const char *op = "pi0_dev_rope";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_rope_x(op, "x", s, x, -1, n_heads, head_dim));
    CHECK_ST(check_rope_pos(op, s, pos, x.rows, theta));
    return s->dev->iface->rope(s, x, NULL, pos, n_heads, 0, head_dim, theta);
}

int pi0_dev_rope_qk(pi0_stream *s, pi0_mat q, pi0_mat k, pi0_mat pos, int n_heads,
                    int n_kv_heads, int head_dim, float theta) {
    const char *op = "pi0_dev_rope_qk";
    CHECK_ST(check_stream(op, s));
    CHECK_ST(check_rope_x(op, "q", s, q, -1, n_heads, head_dim));
    CHECK_ST(check_rope_x(op, "k", s, k, q.rows, n_kv_heads, head_dim));
    if (views_overlap(q, k)) return pi0_errorf(PI0_EINVAL, "%s: q overlaps k", op);
    CHECK_ST(check_rope_pos(op, s, pos, q.rows, theta));
    return s->dev->iface->rope(s, q, &k, pos, n_heads, n_kv_heads, head_dim, theta);
}

int pi0_dev_attention(pi0_stream *s, pi0_mat out, pi0_mat q, pi0_mat k, pi0_mat v,
                      const pi0_mat *mask, int n_heads, int n_kv_heads, int head_dim,
                      float scale) {
    const char *op = "pi0_dev_attention";
    CHECK_ST(check_stream(op, s));
    if (n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || n_heads % n_kv_heads ||
        (long long)n_heads * head_dim > INT_MAX)
        return pi0_errorf(PI0_EINVAL, "%s: n_heads %d, n_kv_heads %d, head_dim %d", op, n_heads,
                          n_kv_heads, head_dim);
    CHECK_ST(check_mat(op, "out", s, out, PI0_F32));
    CHECK_ST(check_mat(op, "q", s, q, PI0_F32));
    CHECK_ST(check_mat(op, "k", s, k, PI0_F32));
    CHECK_ST(check_mat(op, "v", s, v, PI0_F32));
    int nq = q.rows, nk = k.rows;
    CHECK_ST(check_shape(op, "q", q, nq, n_heads * head_dim));
    CHECK_ST(check_shape(op, "out", out, nq, n_heads * head_dim));
    CHECK_ST(check_shape(op, "k", k, nk, n_kv_heads * head_dim));
    CHECK_ST(check_shape(op, "v", v, nk, n_kv_heads * head_dim));
    if (mask) {
        if (mask->dtype != PI0_U8 && mask->dtype != PI0_F32)
            return pi0_errorf(PI0_ETYPE, "%s: mask is %s, want u8 or f32", op,
                              pi0_dtype_name(mask->dtype));
        CHECK_ST(check_mat(op, "mask", s, *mask, -1));
        CHECK_ST(check_shape(op, "mask", *mask, nq, nk));
        if (mats_overlap(out, *mask))
            return pi0_errorf(PI0_EINVAL, "%s: out overlaps mask", op);
    }
    if (mats_overlap(out, q) || mats_overlap(out, k) || mats_overlap(out, v))
        return pi0_errorf(PI0_EINVAL, "%s: out overlaps q, k or v", op);
    if (!isfinite(scale)) return pi0_errorf(PI0_EINVAL, "%s: scale %g", op, (double)scale);
    return s->dev->iface->attention(s, out, q, k, v, mask, n_heads, n_kv_heads, head_dim,
                                    scale);
}

int pi0_dev_gather(pi0_stream *s, pi0_mat y, const pi0_weight *table, pi0_mat ids,
                   float scale) {
    const char *op = "pi0_dev_gather";
    CHECK_ST(check_stream(op, s));
    if (!table) return pi0_errorf(PI0_EINVAL, "%s: table is NULL", op);
    if (table->dev != s->dev) return pi0_errorf(PI0_EINVAL, "%s: table on another device", op);
    CHECK_ST(check_mat(op, "y", s, y, PI0_F32));
    CHECK_ST(check_mat(op, "ids", s, ids, PI0_I32));
    if (!((ids.rows == 1 && ids.cols == y.rows) || (ids.cols == 1 && ids.rows == y.rows)))
        return pi0_errorf(PI0_ESHAPE, "%s: ids is [%d, %d], want [1, %d] or [%d, 1]", op,
                          ids.rows, ids.cols, y.rows, y.rows);
    if (y.cols != table->k)
        return pi0_errorf(PI0_ESHAPE, "%s: y has %d cols, table width is %d", op, y.cols,
                          table->k);
    if (mats_overlap(y, ids)) return pi0_errorf(PI0_EINVAL, "%s: y overlaps ids", op);
    return s->dev->iface->gather(s, y, table, ids, scale);
}
