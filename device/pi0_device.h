/* pi0_device.h — the accelerator interface of pi0rt.
 *
 * A device is a backend (a versioned table of function pointers, see
 * device/device_impl.h) opened by name: "cpu" (OpenBLAS + worker threads, the
 * embedded default and the reference for every other backend) and later "cuda".
 *
 * Model of use, as on a GPU:
 *   - Buffers (pi0_buf) are device memory; the host never dereferences them. Data moves
 *     with pi0_dev_upload / pi0_dev_download, which are asynchronous on a stream.
 *   - Weights (pi0_weight) are read-only matrices created once from host memory (e.g. an
 *     mmapped checkpoint). A backend may borrow the host memory in place (cpu with f32
 *     or bf16 does), repack it, or copy it to the device; the caller keeps the host memory
 *     alive and unchanged until pi0_weight_destroy.
 *   - Every kernel is enqueued on a stream and runs in stream order after everything
 *     enqueued before it on that stream; across streams, order with events. A call returns
 *     once the work is enqueued: its arguments are checked synchronously (bad shapes,
 *     dtypes, out-of-range views give PI0_EINVAL / PI0_ESHAPE and enqueue nothing).
 *     Host memory passed to an async copy must stay valid until the copy completed
 *     (pi0_stream_sync or an event).
 *   - Activations are f32. Weights are f32 or bf16 (f16 is converted at weight creation);
 *     opts.precision selects bf16 GEMM arithmetic (pi0_precision).
 *   - Nothing allocates per call: scratch is reserved when the device is opened
 *     (opts.scratch_bytes) and grown only by pi0_dev_reserve, never inside a kernel.
 *
 * Threads: a pi0_dev and its objects may be used from several threads, but each stream
 * must be driven (enqueue / sync) by one thread at a time. Two streams may have work in
 * flight at once; the backend shares its configured cores between them and never
 * oversubscribes the cores given in pi0_dev_opts. The cpu backend runs one kernel (or
 * copy) at a time on all its cores, interleaving the streams kernel by kernel; a stream
 * marked high priority (pi0_stream_set_priority) is served first at every kernel
 * boundary, so its ready kernel waits at most for the one kernel of another stream that
 * is already running (the node's denoise stream is not slowed by more than that by a
 * concurrent encode).
 *
 * Matrices are row-major with a leading dimension (row stride in elements). A pi0_mat
 * names a region of a buffer; helpers below build them. */
#ifndef PI0_DEVICE_H
#define PI0_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_dtype.h" /* pi0_dtype, bf16/f16 conversions */
#include "common/pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pi0_dev pi0_dev;       /* an opened backend */
typedef struct pi0_buf pi0_buf;       /* device memory */
typedef struct pi0_weight pi0_weight; /* read-only weight matrix [n, k] (out, in) */
typedef struct pi0_stream pi0_stream; /* in-order queue of copies and kernels */
typedef struct pi0_event pi0_event;   /* a point in a stream's order */

/* ---- devices ---------------------------------------------------------------------- */

/* The arithmetic of pi0_dev_gemm. F32: weights as given (f32, or bf16 widened exactly), f32
 * inputs and sums. BF16: weights stored bf16 (f32 / f16 ones rounded to nearest even at
 * weight creation), GEMM inputs rounded to bf16, products summed in f32 — what openpi runs
 * on GPUs; every other kernel stays f32. A backend without it fails pi0_dev_open with
 * PI0_ENOTSUP. */
typedef enum pi0_precision { PI0_PRECISION_F32 = 0, PI0_PRECISION_BF16 = 1 } pi0_precision;

typedef struct pi0_dev_opts {
    int n_threads;   /* compute threads; 0 = one per allowed CPU */
    const int *cpus; /* pin compute threads to these CPUs (n_cpus entries); NULL = the
                        process's current affinity mask */
    int n_cpus;
    size_t scratch_bytes;    /* kernel scratch reserved at open; 0 = backend default */
    pi0_precision precision; /* GEMM arithmetic; PI0_PRECISION_F32 (0) is the default */
} pi0_dev_opts;

/* Opens backend `name` ("cpu", "cuda", ...). opts may be NULL for defaults.
 * PI0_ENOTSUP with a detail naming the backend when it is unknown or was not built. */
PI0_API int pi0_dev_open(const char *name, const pi0_dev_opts *opts, pi0_dev **out);
/* PI0_EBUSY (and nothing closed) while buffers, weights, streams or events still exist.
 * NULL is accepted. */
PI0_API int pi0_dev_close(pi0_dev *dev);
PI0_API const char *pi0_dev_name(const pi0_dev *dev);
/* Names of the backends built into this binary, NULL-terminated. */
PI0_API const char *const *pi0_dev_backends(void);
/* Makes sure kernels can run on inputs up to these sizes without allocating: grows the
 * kernel scratch to at least scratch_bytes in all (never shrinks it). May allocate; call
 * at start-up, not while kernels run. PI0_ENOMEM (scratch unchanged) when it cannot. */
PI0_API int pi0_dev_reserve(pi0_dev *dev, size_t scratch_bytes);
/* Grows the scratch so that pi0_dev_attention runs at full speed, without allocating, on
 * every call with at most max_q query rows, at most max_k keys and this head layout
 * (n_heads % n_kv_heads == 0): the backend sizes its own scratch (tiles, per-thread
 * splits), so callers need not know how. Call once per head layout used; the scratch
 * only grows. May allocate; call at start-up. PI0_EINVAL for sizes <= 0 or a bad head
 * layout, PI0_ENOMEM when it cannot reserve. A backend without its own rule reserves a
 * whole score matrix, max_q * n_heads * (max_k + 2 * head_dim) floats, through
 * pi0_dev_reserve (nothing when it has no scratch either). Without this call (or a large
 * enough pi0_dev_reserve) pi0_dev_attention may refuse big inputs with PI0_ENOMEM. */
PI0_API int pi0_dev_reserve_attention(pi0_dev *dev, int max_q, int max_k, int n_heads,
                                      int n_kv_heads, int head_dim);
/* Prepares pi0_dev_rope / pi0_dev_rope_qk for positions [0, max_pos) at this head_dim and
 * theta: the cpu backend builds its cos/sin table for them now (it keeps one, for the last
 * head_dim and theta, up to 16384 positions; without this call it builds it on the first
 * RoPE kernel). May allocate; call at start-up. PI0_EINVAL for max_pos <= 0, a head_dim
 * that is not even and > 0, or theta <= 0; PI0_ENOMEM when the table cannot be allocated.
 * A backend without such a table does nothing. */
PI0_API int pi0_dev_reserve_rope(pi0_dev *dev, int max_pos, int head_dim, float theta);

/* ---- memory ----------------------------------------------------------------------- */

/* Device memory, 64-byte aligned, contents undefined. */
PI0_API int pi0_buf_alloc(pi0_dev *dev, size_t bytes, pi0_buf **out);
PI0_API void pi0_buf_free(pi0_buf *buf); /* NULL ok; the caller ensures no pending use */
PI0_API size_t pi0_buf_size(const pi0_buf *buf);

/* A weight matrix W [n, k] (row i = output feature i), from host memory of dtype
 * F32, BF16 or F16 with row stride `ld` elements (ld >= k). The host memory must stay
 * valid and unchanged until the weight is destroyed (the backend may use it in place). */
PI0_API int pi0_weight_create(pi0_dev *dev, const void *host, pi0_dtype dtype, int n, int k,
                              int ld, pi0_weight **out);
/* The same for a table read by rows only (pi0_dev_gather), e.g. a 257k-token embedding:
 * the backend keeps it in place and touches only the rows gathered, where
 * pi0_weight_create may copy every element into a layout for its GEMM (the cpu backend
 * does on x86-64 CPUs with AVX2 or AVX-512). A table still works in pi0_dev_gemm, more slowly.
 */
PI0_API int pi0_weight_create_table(pi0_dev *dev, const void *host, pi0_dtype dtype, int n,
                                    int k, int ld, pi0_weight **out);
PI0_API void pi0_weight_destroy(pi0_weight *w);              /* NULL ok */
PI0_API size_t pi0_weight_device_bytes(const pi0_weight *w); /* memory it added */

/* ---- streams and events ----------------------------------------------------------- */

PI0_API int pi0_stream_create(pi0_dev *dev, pi0_stream **out);
/* Waits for the stream's pending work, then frees it. NULL ok. */
PI0_API void pi0_stream_destroy(pi0_stream *s);
/* Blocks until everything enqueued so far has completed. Returns the first error a
 * queued operation hit since the last sync (then clears it), else PI0_OK. */
PI0_API int pi0_stream_sync(pi0_stream *s);
/* high = 1: this stream's kernels go before other streams' at every kernel boundary (see
 * Threads above); 0: normal (the default). Call it while the stream is idle.
 * PI0_ENOTSUP on a backend without priorities (the stream still works). */
PI0_API int pi0_stream_set_priority(pi0_stream *s, int high);

PI0_API int pi0_event_create(pi0_dev *dev, pi0_event **out);
/* NULL ok. The caller ensures no record or wait of it is still pending (as for buffers). */
PI0_API void pi0_event_destroy(pi0_event *e);
/* Marks the current end of `s`; the event completes when all work before it has.
 * An event marks one point at a time: recording it again moves the mark (waits and syncs
 * called afterwards refer to the new one). Record it on one stream at a time: re-recording
 * it on another stream while an earlier record is still pending may let waits on either
 * record complete early (use one event per stream). */
PI0_API int pi0_event_record(pi0_event *e, pi0_stream *s);
/* Work enqueued on `s` after this call starts only after `e` completed. */
PI0_API int pi0_stream_wait_event(pi0_stream *s, pi0_event *e);
/* Blocks the calling thread until `e` completed (immediately if never recorded). */
PI0_API int pi0_event_sync(pi0_event *e);
/* Non-blocking: 1 if complete, 0 if not. */
PI0_API int pi0_event_done(pi0_event *e);

/* Asynchronous copies; `host` must stay valid until the copy completed. */
PI0_API int pi0_dev_upload(pi0_stream *s, pi0_buf *dst, size_t dst_off, const void *host,
                           size_t bytes);
PI0_API int pi0_dev_download(pi0_stream *s, void *host, const pi0_buf *src, size_t src_off,
                             size_t bytes);
PI0_API int pi0_dev_copy(pi0_stream *s, pi0_buf *dst, size_t dst_off, const pi0_buf *src,
                         size_t src_off, size_t bytes);

/* ---- tensors ---------------------------------------------------------------------- */

/* A 2-D f32 (unless said otherwise) row-major region of a buffer:
 * element (r, c) is at byte buf + off + (r * ld + c) * dtype_size. */
typedef struct pi0_mat {
    pi0_buf *buf;
    size_t off; /* bytes */
    int rows, cols, ld;
    pi0_dtype dtype;
} pi0_mat;

/* Copies the view src into the view dst (same dtype and shape, any row strides; they
 * must not overlap), in stream order: e.g. concatenation along columns into sub-views
 * (a 2-D pi0_dev_copy). */
PI0_API int pi0_dev_copy_mat(pi0_stream *s, pi0_mat dst, pi0_mat src);

/* Contiguous f32 [rows, cols] at byte offset `off`. */
static inline pi0_mat pi0_mat_f32(pi0_buf *b, size_t off, int rows, int cols) {
    pi0_mat m = {b, off, rows, cols, cols, PI0_F32};
    return m;
}
/* Rows [r0, r0+n) and columns [c0, c0+nc) of m. */
static inline pi0_mat pi0_mat_sub(pi0_mat m, int r0, int n, int c0, int nc) {
    m.off += ((size_t)r0 * (size_t)m.ld + (size_t)c0) * pi0_dtype_size(m.dtype);
    m.rows = n;
    m.cols = nc;
    return m;
}

/* ---- kernels (all enqueued on a stream; f32 unless said otherwise) ----------------- */

typedef enum pi0_act {
    PI0_ACT_NONE = 0,
    PI0_ACT_GELU_TANH = 1, /* 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))) */
    PI0_ACT_SILU = 2,      /* x * sigmoid(x) */
} pi0_act;

/* y[m, n] = act(x[m, k] · Wᵀ + bias)          when accumulate == 0
 * y[m, n] += act(x[m, k] · Wᵀ + bias)         when accumulate == 1 (fused residual add)
 * bias: NULL or f32 [1, n]. y must not overlap x. */
PI0_API int pi0_dev_gemm(pi0_stream *s, pi0_mat y, pi0_mat x, const pi0_weight *w,
                         const pi0_mat *bias, pi0_act act, int accumulate);

/* ys[i] = x · ws[i]ᵀ for i < count (1..PI0_GEMM_MULTI_MAX): several weights applied to
 * one input as one operation (Q, K and V; gate and up), so that the backend prepares x
 * once and shares its cores over all the products. No bias, activation or accumulation;
 * each ys[i] is [x.rows, ws[i].n] and overlaps neither x nor another output. */
#define PI0_GEMM_MULTI_MAX 3
PI0_API int pi0_dev_gemm_multi(pi0_stream *s, int count, const pi0_mat *ys, pi0_mat x,
                               const pi0_weight *const *ws);

/* y = (x - mean) / sqrt(var + eps) * weight + bias, per row; weight, bias [1, cols]. */
PI0_API int pi0_dev_layernorm(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat weight, pi0_mat bias,
                              float eps);

/* Gemma RMSNorm: y = x * rsqrt(mean(x²) + eps) * (1 + weight), per row; weight [1, cols]. */
PI0_API int pi0_dev_rmsnorm(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat weight, float eps);

/* Adaptive RMSNorm (π0.5): y = x * rsqrt(mean(x²) + eps) * (1 + scale) + shift, per row;
 * scale and shift are [1, cols] (one conditioning vector for all rows) or [rows, cols]. */
PI0_API int pi0_dev_rmsnorm_ada(pi0_stream *s, pi0_mat y, pi0_mat x, pi0_mat scale,
                                pi0_mat shift, float eps);

/* Gated residual (π0.5): h += gate ⊙ x; gate is [1, cols] (broadcast) or [rows, cols]. */
PI0_API int pi0_dev_gated_add(pi0_stream *s, pi0_mat h, pi0_mat gate, pi0_mat x);

typedef enum pi0_unop { PI0_UN_GELU_TANH = 1, PI0_UN_SILU = 2, PI0_UN_SCALE = 3 } pi0_unop;
/* y = op(x) (y may alias x). PI0_UN_SCALE multiplies by `alpha`. */
PI0_API int pi0_dev_unary(pi0_stream *s, pi0_unop op, pi0_mat y, pi0_mat x, float alpha);

typedef enum pi0_binop { PI0_BIN_ADD = 1, PI0_BIN_MUL = 2 } pi0_binop;
/* y = a op b; b is [rows, cols] or [1, cols] (broadcast over rows). y may alias a. */
PI0_API int pi0_dev_binary(pi0_stream *s, pi0_binop op, pi0_mat y, pi0_mat a, pi0_mat b);

/* Gemma MLP gate: y = gelu_tanh(gate) ⊙ up. y may alias gate. */
PI0_API int pi0_dev_geglu(pi0_stream *s, pi0_mat y, pi0_mat gate, pi0_mat up);

/* RoPE in place on x [tokens, n_heads * head_dim] (columns of head h are
 * [h*head_dim, (h+1)*head_dim)), HF rotate_half layout: for j < d/2,
 * angle = pos[t] * theta^(-2j/d); (a, b) = (x[j], x[j + d/2]);
 * x[j] = a cos - b sin; x[j + d/2] = b cos + a sin.  pos: I32 [1, tokens] or
 * [tokens, 1] on the device. */
PI0_API int pi0_dev_rope(pi0_stream *s, pi0_mat x, pi0_mat pos, int n_heads, int head_dim,
                         float theta);

/* RoPE of a layer's queries and keys in one operation: the rotation of pi0_dev_rope on
 * q [tokens, n_heads * head_dim] and on k [tokens, n_kv_heads * head_dim], both at the
 * positions pos (a token's angles are looked up once for both). q and k must not
 * overlap. */
PI0_API int pi0_dev_rope_qk(pi0_stream *s, pi0_mat q, pi0_mat k, pi0_mat pos, int n_heads,
                            int n_kv_heads, int head_dim, float theta);

/* Multi-head attention with grouped / multi-query heads. Needs backend scratch that
 * grows with n_k: size it at start-up with pi0_dev_reserve_attention; a call that does
 * not fit may fail with PI0_ENOMEM and then enqueues nothing.
 *   q   [n_q, n_heads * head_dim]
 *   k,v [n_k, n_kv_heads * head_dim]      (n_heads % n_kv_heads == 0; query head h uses
 *                                          kv head h / (n_heads / n_kv_heads))
 *   out [n_q, n_heads * head_dim]
 *   mask: NULL (all keys visible), U8 [n_q, n_k] (nonzero = may attend), or F32
 *         [n_q, n_k] added to the scores.
 * scores = q·kᵀ · scale (+ mask), softmax over keys in f32, out = p·v. A masked score is
 * the finite -2.3819763e38, so a fully masked row yields finite output (the mean of v),
 * never NaN. */
PI0_API int pi0_dev_attention(pi0_stream *s, pi0_mat out, pi0_mat q, pi0_mat k, pi0_mat v,
                              const pi0_mat *mask, int n_heads, int n_kv_heads, int head_dim,
                              float scale);

/* Embedding lookup: y[i, :] = table[ids[i], :] * scale, table a weight [vocab, width]
 * (f32/bf16, typically still memory-mapped: only the used rows are touched). ids: I32
 * [1, n] on the device; an id outside [0, vocab) is an error reported by the next
 * pi0_stream_sync (PI0_ERANGE, naming the first such row) and leaves that row zero. */
PI0_API int pi0_dev_gather(pi0_stream *s, pi0_mat y, const pi0_weight *table, pi0_mat ids,
                           float scale);

#ifdef __cplusplus
}
#endif
#endif /* PI0_DEVICE_H */
