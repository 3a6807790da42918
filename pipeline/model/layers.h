/* layers.h — building blocks every model stage uses: linear layers, row views of f32
 * buffers, and the load-time helpers that turn checkpoint tensors into device weights and
 * small f32 vectors (norms, biases, position embeddings). Internal to pipeline/model/. */
#ifndef PI0_MODEL_LAYERS_H
#define PI0_MODEL_LAYERS_H

#include "device/pi0_device.h"
#include "pipeline/pi0_weights.h"

#define PI0__TRY(expr)                                                                         \
    do {                                                                                       \
        int pi0__rc = (expr);                                                                  \
        if (pi0__rc != 0) return pi0__rc;                                                      \
    } while (0)

/* A linear layer: weight borrowed from the checkpoint, bias (optional) in a params buffer. */
typedef struct pi0__linear {
    pi0_weight *w; /* [out, in] */
    pi0_mat b;     /* f32 [1, out]; b.buf == NULL when there is no bias */
} pi0__linear;

/* Rows [r0, r0 + n) of a contiguous f32 buffer with `cols` columns. */
static inline pi0_mat pi0__rows(pi0_buf *b, int cols, int r0, int n) {
    return pi0_mat_f32(b, (size_t)r0 * (size_t)cols * 4, n, cols);
}

/* y = act(x · Wᵀ + b) (accumulate 0) or y += … (accumulate 1). */
static inline int pi0__linear_run(pi0_stream *s, pi0_mat y, pi0_mat x, const pi0__linear *l,
                                  pi0_act act, int accumulate) {
    return pi0_dev_gemm(s, y, x, l->w, l->b.buf ? &l->b : NULL, act, accumulate);
}

/* ---- loading ------------------------------------------------------------------------ */

/* A stage's small f32 vectors, gathered on the host while its weights are loaded and
 * uploaded into one device buffer at the end (pi0__params_upload), which then fills in
 * every pi0_mat handed out by pi0__params_tensor. */
typedef struct pi0__params {
    float *data;
    size_t n, cap; /* floats */
    pi0_mat **fix; /* views to point into the buffer once it exists */
    size_t n_fix, cap_fix;
    int err; /* first error (its detail recorded), then every call does nothing */
} pi0__params;

/* *out = tensor t ([rows, cols] elements of it, converted to f32) in the params buffer;
 * usable after pi0__params_upload. */
void pi0__params_tensor(pi0__params *pb, const pi0_tensor *t, int rows, int cols, pi0_mat *out);
/* Allocates *buf, uploads the vectors (synchronously on s), fixes the views and frees the
 * host copy. Returns pb's first error if there was one. */
int pi0__params_upload(pi0__params *pb, pi0_dev *dev, pi0_stream *s, pi0_buf **buf);
/* Frees the host copy (after an error). */
void pi0__params_free(pi0__params *pb);

/* A device weight over tensor t (2-D view: shape[0] rows, the rest as columns). */
int pi0__weight_make(pi0_dev *dev, const pi0_tensor *t, pi0_weight **out);
/* the same for a table only gathered from (pi0_weight_create_table) */
int pi0__table_make(pi0_dev *dev, const pi0_tensor *t, pi0_weight **out);
/* Weight w plus, when b is present, its bias in the params. */
int pi0__linear_make(pi0_dev *dev, pi0__params *pb, const pi0_tensor *w, const pi0_tensor *b,
                     pi0__linear *out);
/* A device f32 buffer of rows × cols (+ 64 bytes of slack). */
int pi0__buf_f32(pi0_dev *dev, pi0_buf **b, size_t rows, size_t cols);

#endif /* PI0_MODEL_LAYERS_H */
