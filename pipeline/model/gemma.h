/* gemma.h — the Gemma decoder layer both the VLM prefix (Gemma 2B) and the action expert
 * (Gemma 300M) run (PI0-SPEC.md §4.3–4.5, §5), and the K/V cache they share: the prefix
 * writes its rows, the expert appends its suffix rows behind them and attends over both.
 * Internal to pipeline/model/. */
#ifndef PI0_MODEL_GEMMA_H
#define PI0_MODEL_GEMMA_H

#include "layers.h"

typedef struct pi0__gemma_layer {
    pi0_mat in_norm, post_norm; /* [1, w] (1 + w) RMSNorm weights; unused with adaptive norms */
    pi0_weight *q;              /* [Hd, w] */
    pi0_weight *k, *v;          /* [Kd, w] */
    pi0_weight *o;              /* [w, Hd] */
    pi0_weight *gate, *up;      /* [mlp, w] */
    pi0_weight *down;           /* [w, mlp] */
} pi0__gemma_layer;

/* One Gemma tower's weights. */
typedef struct pi0__gemma {
    pi0_tower_config tc;
    float rms_eps, rope_theta;
    pi0__gemma_layer *layers; /* [tc.depth] */
} pi0__gemma;

/* One slot's K/V cache: for layer l, K then V, each [rows, kd] f32 (keys after RoPE).
 * Tokens are stored compacted, so the token in cache row r has position r. */
typedef struct pi0__kv {
    pi0_buf *buf;
    pi0_buf *pos; /* I32 [rows]: 0, 1, …, rows − 1 (shared by every slot) */
    int rows;     /* N + S: prefix tokens, then the suffix */
    int kd;       /* n_kv_heads · head_dim */
} pi0__kv;

/* Rows [r0, r0 + n) of layer l's K (which = 0) or V (which = 1). */
static inline pi0_mat pi0__kv_rows(const pi0__kv *kv, int l, int which, int r0, int n) {
    size_t per = (size_t)kv->rows * (size_t)kv->kd * 4;
    return pi0_mat_f32(kv->buf, ((size_t)l * 2 + (size_t)which) * per + (size_t)r0 * kv->kd * 4,
                       n, kv->kd);
}

/* The positions of cache rows [r0, r0 + n) (I32 [1, n]). */
static inline pi0_mat pi0__kv_pos(const pi0__kv *kv, int r0, int n) {
    pi0_mat x = {kv->pos, (size_t)r0 * 4, 1, n, n, PI0_I32};
    return x;
}

/* Scratch views of the t rows a layer runs over: h (residual, [t, w]), x (normed, [t, w]),
 * q and a ([t, Hd]), g and u ([t, mlp]), o ([t, w], adaptive norms only). */
typedef struct pi0__gemma_rows {
    pi0_mat h, x, q, a, g, u, o;
} pi0__gemma_rows;

/* π0.5 adaptive norms of one layer at one step: [1, w] scale, shift and gate of the input
 * norm and of the post-attention norm. */
typedef struct pi0__gemma_ada {
    pi0_mat in_scale, in_shift, in_gate;
    pi0_mat post_scale, post_shift, post_gate;
} pi0__gemma_ada;

/* Layer l of g over the rows r: their K/V go to cache rows
 * [k0, k0 + t) and they attend, unmasked, over cache rows [0, n_keys) (n_keys ≥ k0 + t).
 * ada == NULL: (1 + w) RMSNorms and plain residual adds; else adaptive norms and gated
 * residuals. kv_only: stop after the K/V (when nothing reads the layer's output).
 * Enqueued on s. */
int pi0__gemma_layer_run(pi0_stream *s, const pi0__gemma *g, int l, const pi0__kv *kv, int k0,
                         int n_keys, const pi0__gemma_rows *r, const pi0__gemma_ada *ada,
                         int kv_only);

/* Every layer of g with plain norms over rows r whose K/V go to cache rows [k0, k0 + t),
 * each attending over rows [0, k0 + t); the last layer stops after its K/V. The prefix
 * (k0 = 0) and the π0 state token (k0 = prefix length) are this. Enqueued on s. */
int pi0__gemma_kv_stack(pi0_stream *s, const pi0__gemma *g, const pi0__kv *kv, int k0,
                        const pi0__gemma_rows *r);

/* Loads tower tc's layers from src [tc->depth]. norms: load the (1 + w) RMSNorm weights
 * (0 for adaptive norms); last_kv_only: the last layer gets only K and V. */
int pi0__gemma_load(pi0__gemma *g, pi0_dev *dev, pi0__params *pb, const pi0_gemma_layer *src,
                    const pi0_tower_config *tc, float rms_eps, float rope_theta, int norms,
                    int last_kv_only);
/* Frees the weights; a zeroed or partly loaded g is fine. */
void pi0__gemma_free(pi0__gemma *g);

#endif /* PI0_MODEL_GEMMA_H */
