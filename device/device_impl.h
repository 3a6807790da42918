/* device_impl.h — what a backend implements (internal to device/).
 *
 * A backend is a pi0_dev_iface: a versioned table of function pointers (in the spirit of
 * ggml's ggml_backend_i). The public wrappers in device/device.c check every argument
 * (shapes, dtypes, views inside their buffers, NULLs) before calling an entry, so an entry
 * may assume valid input. Entries marked OPTIONAL may be NULL; the wrapper then supplies a
 * fallback built from the required entries (noted at each one).
 *
 * The generic object structs below are shared by every backend: the wrapper owns the
 * bookkeeping (device, sizes, live-object counts); `impl` is the backend's own state. */
#ifndef PI0_DEVICE_IMPL_H
#define PI0_DEVICE_IMPL_H

#include <stdatomic.h>

#include "pi0_device.h"

#define PI0_DEV_IFACE_VERSION                                                                  \
    5 /* 2: reserve_attention, weight_create(dev, w); 3: stream_set_priority;                  \
         4: pi0_weight.table, pi0_dev_opts.precision, gemm_multi; 5: rope of q and k in one    \
         operation (pi0_dev_rope_qk), reserve_rope */

typedef struct pi0_dev_iface pi0_dev_iface;

struct pi0_dev {
    const pi0_dev_iface *iface;
    void *impl;        /* backend state */
    atomic_int n_bufs; /* live objects, for PI0_EBUSY at close */
    atomic_int n_weights;
    atomic_int n_streams;
    atomic_int n_events;
};

struct pi0_buf {
    pi0_dev *dev;
    void *impl;  /* cpu: the 64-byte aligned host memory; cuda: a device pointer */
    size_t size; /* bytes */
};

struct pi0_weight {
    pi0_dev *dev;
    void *impl;       /* backend's view of the data */
    const void *host; /* the caller's memory it was created from */
    pi0_dtype dtype;  /* dtype the backend stores (f16 becomes f32 on cpu) */
    int n, k, ld;     /* [n, k], row stride ld elements of `dtype` (as stored) */
    int table;        /* created by pi0_weight_create_table: keep the row layout */
    int packed;       /* backend-specific GEMM layout in impl (ld then means nothing);
                         host still holds the rows, as host_dtype */
    pi0_dtype host_dtype;
    size_t dev_bytes; /* memory the weight added */
};

struct pi0_stream {
    pi0_dev *dev;
    void *impl;
};

struct pi0_event {
    pi0_dev *dev;
    void *impl;
};

struct pi0_dev_iface {
    int version; /* PI0_DEV_IFACE_VERSION */
    const char *name;

    /* device: open fills dev->impl */
    int (*open)(pi0_dev *dev, const pi0_dev_opts *opts);
    void (*close)(pi0_dev *dev);                        /* only called with no live objects */
    int (*reserve)(pi0_dev *dev, size_t scratch_bytes); /* OPTIONAL: NULL = nothing to do */
    /* OPTIONAL (arguments checked): NULL = nothing to prepare */
    int (*reserve_rope)(pi0_dev *dev, int max_pos, int head_dim, float theta);
    /* OPTIONAL (arguments checked): NULL = `reserve` with a whole score matrix,
     * max_q * n_heads * (max_k + 2 * head_dim) floats (nothing when `reserve` is NULL) */
    int (*reserve_attention)(pi0_dev *dev, int max_q, int max_k, int n_heads, int n_kv_heads,
                             int head_dim);

    /* memory. buf_alloc fills buf->impl (buf->size is set). weight_create is given w with
     * host, dtype, n, k and ld of the caller's memory set; it fills w->impl and
     * w->dev_bytes, and sets w->dtype / w->ld to what it stores when that differs. */
    int (*buf_alloc)(pi0_dev *dev, pi0_buf *buf);
    void (*buf_free)(pi0_buf *buf);
    int (*weight_create)(pi0_dev *dev, pi0_weight *w);
    void (*weight_destroy)(pi0_weight *w);

    /* streams and events */
    int (*stream_create)(pi0_dev *dev, pi0_stream *s);
    void (*stream_destroy)(pi0_stream *s); /* waits for pending work */
    int (*stream_sync)(pi0_stream *s);
    /* OPTIONAL: NULL = PI0_ENOTSUP */
    int (*stream_set_priority)(pi0_stream *s, int high);
    int (*event_create)(pi0_dev *dev, pi0_event *e);
    void (*event_destroy)(pi0_event *e);
    int (*event_record)(pi0_event *e, pi0_stream *s);
    int (*stream_wait_event)(pi0_stream *s, pi0_event *e);
    int (*event_sync)(pi0_event *e);
    int (*event_done)(pi0_event *e);

    /* copies (offsets already checked against the buffer sizes) */
    int (*upload)(pi0_stream *s, pi0_buf *dst, size_t dst_off, const void *host, size_t bytes);
    int (*download)(pi0_stream *s, void *host, const pi0_buf *src, size_t src_off,
                    size_t bytes);
    int (*copy)(pi0_stream *s, pi0_buf *dst, size_t dst_off, const pi0_buf *src, size_t src_off,
                size_t bytes);
    /* OPTIONAL: NULL = one `copy` per row */
    int (*copy_mat)(pi0_stream *s, pi0_mat dst, pi0_mat src);

    /* kernels (arguments already checked) */
    int (*gemm)(pi0_stream *s, pi0_mat y, pi0_mat x, const pi0_weight *w, const pi0_mat *bias,
                pi0_act act, int accumulate);
    /* OPTIONAL: NULL = one `gemm` per weight */
    int (*gemm_multi)(pi0_stream *s, int count, const pi0_mat *ys, pi0_mat x,
                      const pi0_weight *const *ws);
    int (*layernorm)(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat weight, pi0_mat bias,
                     float eps);
    int (*rmsnorm)(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat weight, float eps);
    int (*rmsnorm_ada)(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat scale, pi0_mat shift,
                       float eps);
    int (*gated_add)(pi0_stream *s, pi0_mat h, pi0_mat gate, pi0_mat x);
    int (*unary)(pi0_stream *s, pi0_unop op, pi0_mat y, pi0_mat x, float alpha);
    int (*binary)(pi0_stream *s, pi0_binop op, pi0_mat y, pi0_mat a, pi0_mat b);
    /* OPTIONAL: NULL = unary(GELU_TANH, y, gate) then binary(MUL, y, y, up) */
    int (*geglu)(pi0_stream *s, pi0_mat y, pi0_mat gate, pi0_mat up);
    /* pi0_dev_rope_qk on q and *k, or pi0_dev_rope on q alone when k is NULL (n_kv_heads
     * is then 0) */
    int (*rope)(pi0_stream *s, pi0_mat q, const pi0_mat *k, pi0_mat pos, int n_heads,
                int n_kv_heads, int head_dim, float theta);
    int (*attention)(pi0_stream *s, pi0_mat out, pi0_mat q, pi0_mat k, pi0_mat v,
                     const pi0_mat *mask, int n_heads, int n_kv_heads, int head_dim,
                     float scale);
    int (*gather)(pi0_stream *s, pi0_mat y, const pi0_weight *table, pi0_mat ids, float scale);
};

/* The built backends (device/device.c lists them). */
extern const pi0_dev_iface pi0__cpu_iface;

/* A masked attention score: finite, so a fully masked row gives the mean of v. */
#define PI0__MASKED_SCORE (-2.3819763e38f)

#endif /* PI0_DEVICE_IMPL_H */
