/* vision.h — SigLIP So400m/14 and the PaliGemma projector: its weights, its activations
 * and its forward pass (PI0-SPEC.md §4.1). Internal to pipeline/model/. */
#ifndef PI0_MODEL_VISION_H
#define PI0_MODEL_VISION_H

#include "layers.h"

typedef struct pi0__vision_layer {
    pi0_mat ln1_w, ln1_b, ln2_w, ln2_b; /* [1, vw] */
    pi0__linear q, k, v, o;             /* [vw, vw] */
    pi0__linear fc1;                    /* [mlp, vw] */
    pi0__linear fc2;                    /* [vw, mlp] */
} pi0__vision_layer;

/* Notation: vw vision width, np patches per camera, C = PI0_MAX_CAMERAS, p patch side,
 * W the VLM width the projector maps to. */
typedef struct pi0__vision {
    pi0_tower_config tc; /* width vw, depth, mlp, heads, head_dim */
    int n_patches;       /* np */
    int patch;           /* p */
    int out_width;       /* W */
    float ln_eps;

    /* weights */
    pi0_buf *params;        /* the f32 vectors below (norms, biases, pos_emb) */
    pi0__linear patch_emb;  /* [vw, 3·p·p] */
    pi0_mat pos_emb;        /* [np, vw] */
    pi0__vision_layer *vis; /* [depth] */
    pi0_mat post_ln_w, post_ln_b;
    pi0__linear proj; /* [W, vw] */

    /* activations */
    pi0_buf *patches;                  /* [C·np, 3·p·p] input, uploaded by the caller */
    pi0_buf *h, *x, *q, *k, *v, *attn; /* [C·np, vw] */
    pi0_buf *mlp;                      /* [C·np, mlp] */
} pi0__vision;

/* Loads the vision weights of w and allocates the activations for `max_cams` cameras;
 * synchronous on s. On failure the caller frees v with pi0__vision_free. */
int pi0__vision_load(pi0__vision *v, pi0_dev *dev, pi0_stream *s, const pi0_weights *w,
                     int max_cams);
void pi0__vision_free(pi0__vision *v);

/* SigLIP + projector over the first n_cams · np rows of v->patches; the image tokens go to
 * `out` ([n_cams · np, W], e.g. the prefix's first rows). Enqueued on s. */
int pi0__vision_forward(pi0__vision *v, pi0_stream *s, int n_cams, pi0_mat out);

#endif /* PI0_MODEL_VISION_H */
