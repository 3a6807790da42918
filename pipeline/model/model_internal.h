/* model_internal.h — the π0 model's device-side state, shared by model.c (load, slots,
 * API), vision.c (SigLIP + projector), prefix.c (Gemma prefix → KV cache) and expert.c
 * (denoising). Internal to pipeline/: symbols use the pi0__ prefix.
 *
 * Notation in shape comments: vw vision width, np patches per camera, C = 3 cameras,
 * W VLM width, E expert width, Hd = n_heads·head_dim, Kd = n_kv_heads·head_dim,
 * N = C·np + max_token_len (most prefix tokens), S = suffix tokens (π0: 1 + horizon,
 * π0.5: horizon), T = num_steps, A = action_dim, H = horizon. */
#ifndef PI0_MODEL_INTERNAL_H
#define PI0_MODEL_INTERNAL_H

#include <pthread.h>

#include "device/pi0_device.h"
#include "pipeline/pi0_pipeline.h"
#include "pipeline/pi0_weights.h"
#include "pipeline/preprocess/preprocess.h"
#include "rng.h"

#define PI0__TRY(expr)                                                                         \
    do {                                                                                       \
        int pi0__rc = (expr);                                                                  \
        if (pi0__rc != 0) return pi0__rc;                                                      \
    } while (0)

/* A linear layer: weight borrowed from the checkpoint, bias (optional) in m->params. */
typedef struct pi0__linear {
    pi0_weight *w; /* [out, in] */
    pi0_mat b;     /* f32 [1, out]; b.buf == NULL when there is no bias */
} pi0__linear;

typedef struct pi0__vision_layer {
    pi0_mat ln1_w, ln1_b, ln2_w, ln2_b; /* [1, vw] */
    pi0__linear q, k, v, o;             /* [vw, vw] */
    pi0__linear fc1;                    /* [mlp, vw] */
    pi0__linear fc2;                    /* [vw, mlp] */
} pi0__vision_layer;

typedef struct pi0__gemma_layer {
    pi0_mat in_norm, post_norm; /* [1, w] (1 + w) RMSNorm weights; unused for the π0.5 expert */
    pi0_weight *q;              /* [Hd, w] */
    pi0_weight *k, *v;          /* [Kd, w] */
    pi0_weight *o;              /* [w, Hd] */
    pi0_weight *gate, *up;      /* [mlp, w] */
    pi0_weight *down;           /* [w, mlp] */
} pi0__gemma_layer;

struct pi0_prefix {
    int index;   /* slot number */
    int held;    /* under pi0_model.lock */
    int n_valid; /* valid prefix tokens in the cache */
    int n_cams;  /* valid cameras */
    pi0_buf *kv; /* per layer l: K at kv_off(l, 0), V at kv_off(l, 1), each [N + S, Kd] */
};

struct pi0_model {
    pi0_weights *w;
    pi0_config cfg;
    int num_steps; /* T */
    int n_max;     /* N */
    int suffix;    /* S */
    int keep_vision;

    pi0_dev *dev;
    pi0_stream *sa, *sb; /* stage A (encode) and stage B (denoise) streams */
    pi0_buf *params;     /* every small f32 vector (norms, biases, pos_emb) */

    /* ---- vision ---- */
    pi0__linear patch;      /* [vw, 3·p·p] */
    pi0_mat pos_emb;        /* [np, vw] */
    pi0__vision_layer *vis; /* [vision.depth] */
    pi0_mat post_ln_w, post_ln_b;
    pi0__linear proj; /* [W, vw] */

    /* ---- prefix ---- */
    pi0_weight *embed;     /* [vocab, W], mmapped */
    pi0__gemma_layer *vlm; /* [depth] */
    pi0_buf *pos;          /* I32 [N + S]: 0, 1, 2, … (positions of compact tokens) */

    /* ---- expert ---- */
    pi0__gemma_layer *exp;  /* [depth] */
    pi0_mat exp_norm;       /* π0: [1, E] */
    pi0__linear state_proj; /* π0: [E, state_dim] */
    pi0__linear action_in;  /* [E, A] */
    pi0__linear action_out; /* [A, E] */
    pi0__linear time_a;     /* π0: action half of action_time_mlp_in [E, E] (ld 2E), no bias */
    pi0__linear time_out;   /* π0: action_time_mlp_out [E, E] */
    /* Per-step conditioning, computed at load:
     *   π0:   cond = [T, E]: time half of action_time_mlp_in applied to time_emb(t_s) + bias
     *   π0.5: cond = [(2·depth + 1), T, 3E]: adaptive-norm [scale|shift|gate] of layer l's
     *         input (block 2l) and post-attention (2l + 1) norm, final norm (block 2·depth) */
    pi0_buf *cond;

    /* ---- stage A activations ---- */
    pi0_buf *patches;                     /* [C·np, 3·p·p] */
    pi0_buf *vh, *vx, *vq, *vk, *vv, *va; /* [C·np, vw] */
    pi0_buf *vm;                          /* [C·np, vision mlp] */
    pi0_buf *ph, *px;                     /* [N, W] */
    pi0_buf *pq, *pa;                     /* [N, Hd] */
    pi0_buf *pg, *pu;                     /* [N, mlp] */
    pi0_buf *ids;                         /* I32 [max_token_len] */
    pi0_buf *vis_copy;                    /* [C·np, W] when keep_vision */
    int vis_rows;
    float *h_patches;  /* host staging [C·np, 3·p·p] */
    pi0_preproc *prep; /* resize/pad/patchify scratch for prep_w × prep_h sources */
    int prep_w, prep_h;
    int32_t *h_ids; /* host staging [max_token_len] */

    /* ---- stage B activations ---- */
    pi0_buf *xt, *vt;      /* [H, A] */
    pi0_buf *state;        /* [1, state_dim] (π0) */
    pi0_buf *st_tok;       /* [1, E] (π0): the state token's hidden state */
    pi0_buf *ai, *et;      /* [H, E] */
    pi0_buf *eh, *ex, *eo; /* [S, E] */
    pi0_buf *eq, *ea;      /* [S, Hd] */
    pi0_buf *eg, *eu;      /* [S, expert mlp] */
    float *h_noise;        /* default noise [H, A] (draw_noise) */

    /* ---- slots and noise ---- */
    pthread_mutex_t lock;
    pi0_prefix slots[PI0_PREFIX_SLOTS];
    pi0__rng rng; /* default noise, xoshiro256** (stage B only) */
};

/* Byte offset of layer l's K (which = 0) or V (which = 1) in a slot's kv buffer. */
static inline size_t pi0__kv_off(const pi0_model *m, int l, int which) {
    size_t per = (size_t)(m->n_max + m->suffix) *
                 (size_t)(m->cfg.vlm.n_kv_heads * m->cfg.vlm.head_dim) * 4;
    return ((size_t)l * 2 + (size_t)which) * per;
}

/* Rows [r0, r0 + n) of a contiguous f32 buffer with `cols` columns. */
static inline pi0_mat pi0__rows(pi0_buf *b, int cols, int r0, int n) {
    return pi0_mat_f32(b, (size_t)r0 * (size_t)cols * 4, n, cols);
}

/* The K (which = 0) or V (which = 1) cache rows [r0, r0 + n) of layer l in slot p. */
static inline pi0_mat pi0__kv(const pi0_model *m, const pi0_prefix *p, int l, int which, int r0,
                              int n) {
    int kd = m->cfg.vlm.n_kv_heads * m->cfg.vlm.head_dim;
    pi0_mat x = pi0_mat_f32(p->kv, pi0__kv_off(m, l, which), n, kd);
    x.off += (size_t)r0 * (size_t)kd * 4;
    return x;
}

/* Positions r0, r0 + 1, …, r0 + n − 1 (I32 [1, n]). */
static inline pi0_mat pi0__positions(const pi0_model *m, int r0, int n) {
    pi0_mat x = {m->pos, (size_t)r0 * 4, 1, n, n, PI0_I32};
    return x;
}

/* y = act(x · Wᵀ + b) (accumulate 0) or y += … (accumulate 1). */
static inline int pi0__linear_run(pi0_stream *s, pi0_mat y, pi0_mat x, const pi0__linear *l,
                                  pi0_act act, int accumulate) {
    return pi0_dev_gemm(s, y, x, l->w, l->b.buf ? &l->b : NULL, act, accumulate);
}

/* vision.c: SigLIP + projector over m->patches (n_cams · np rows already uploaded) into
 * ph rows [0, n_cams · np). Enqueued on m->sa. */
int pi0__vision_forward(pi0_model *m, int n_cams);
/* Scratch views of t rows for a Gemma stack: h (residual, width), x (normed, width),
 * q and a (t, heads·head_dim), g and u (t, mlp). */
typedef struct pi0__gemma_rows {
    pi0_mat h, x, q, a, g, u;
} pi0__gemma_rows;
/* prefix.c: t tokens (hidden states in r->h, positions pos) through the Gemma layers
 * `layers` of tower `tc` with plain RMSNorm: each layer's K/V go to slot p's cache rows
 * [k0, k0 + t) and the tokens attend over cache rows [0, k0 + t) with no mask; the last
 * layer stops after its K/V (nothing downstream reads its output). Enqueued on s. */
int pi0__gemma_kv_stack(pi0_model *m, pi0_stream *s, pi0_prefix *p,
                        const pi0__gemma_layer *layers, const pi0_tower_config *tc, int k0,
                        const pi0__gemma_rows *r, pi0_mat pos);
/* prefix.c: embeds the n_tok ids already uploaded to m->ids into ph rows
 * [n_img, n_img + n_tok), then runs the Gemma prefix over the n = n_img + n_tok compact
 * tokens, leaving K/V in slot p. Enqueued on m->sa. */
int pi0__prefix_forward(pi0_model *m, pi0_prefix *p, int n_img, int n_tok);
/* expert.c: one velocity evaluation v(m->xt, t_step) into m->vt over the H action rows
 * (π0: needs pi0__expert_begin on the same slot first). Enqueued on m->sb. */
int pi0__expert_velocity(pi0_model *m, pi0_prefix *p, int step);
/* expert.c: per-denoise setup. π0: the state token (from m->state) through every expert
 * layer once, its K/V into slot p's cache row n_valid; π0.5: nothing. Enqueued on m->sb. */
int pi0__expert_begin(pi0_model *m, pi0_prefix *p);

#endif /* PI0_MODEL_INTERNAL_H */
