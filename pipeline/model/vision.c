/* vision.c — SigLIP So400m/14 and the PaliGemma projector on the device (PI0-SPEC.md §4.1).
 *
 * All valid cameras are batched into the GEMMs (rows = n_cams · np); attention runs per
 * image. The projector writes straight into the prefix activations (ph rows
 * [0, n_cams · np)), so the image tokens are never copied. */
#include <math.h>

#include "model_internal.h"

int pi0__vision_forward(pi0_model *m, int n_cams) {
    const pi0_config *c = &m->cfg;
    pi0_stream *s = m->sa;
    int np_ = c->n_patches, vw = c->vision.width, mlp = c->vision.mlp;
    int rows = n_cams * np_;
    int pp = 3 * c->patch * c->patch;
    int heads = c->vision.n_heads, hd = c->vision.head_dim;
    float scale = 1.0f / sqrtf((float)hd);
    float eps = c->ln_eps;

    pi0_mat patches = pi0__rows(m->patches, pp, 0, rows);
    pi0_mat h = pi0__rows(m->vh, vw, 0, rows);
    pi0_mat x = pi0__rows(m->vx, vw, 0, rows);
    pi0_mat q = pi0__rows(m->vq, vw, 0, rows);
    pi0_mat k = pi0__rows(m->vk, vw, 0, rows);
    pi0_mat v = pi0__rows(m->vv, vw, 0, rows);
    pi0_mat a = pi0__rows(m->va, vw, 0, rows);
    pi0_mat f = pi0__rows(m->vm, mlp, 0, rows);

    /* patch embedding (conv p×p stride p as a GEMM over (c, kh, kw) patches) + positions */
    PI0__TRY(pi0__linear_run(s, h, patches, &m->patch, PI0_ACT_NONE, 0));
    for (int i = 0; i < n_cams; i++) {
        pi0_mat hi = pi0__rows(m->vh, vw, i * np_, np_);
        PI0__TRY(pi0_dev_binary(s, PI0_BIN_ADD, hi, hi, m->pos_emb));
    }

    for (int l = 0; l < c->vision.depth; l++) {
        const pi0__vision_layer *L = &m->vis[l];
        PI0__TRY(pi0_dev_layernorm(s, x, h, L->ln1_w, L->ln1_b, eps));
        PI0__TRY(pi0__linear_run(s, q, x, &L->q, PI0_ACT_NONE, 0));
        PI0__TRY(pi0__linear_run(s, k, x, &L->k, PI0_ACT_NONE, 0));
        PI0__TRY(pi0__linear_run(s, v, x, &L->v, PI0_ACT_NONE, 0));
        for (int i = 0; i < n_cams; i++) {
            PI0__TRY(pi0_dev_attention(
                s, pi0__rows(m->va, vw, i * np_, np_), pi0__rows(m->vq, vw, i * np_, np_),
                pi0__rows(m->vk, vw, i * np_, np_), pi0__rows(m->vv, vw, i * np_, np_), NULL,
                heads, heads, hd, scale));
        }
        PI0__TRY(pi0__linear_run(s, h, a, &L->o, PI0_ACT_NONE, 1));
        PI0__TRY(pi0_dev_layernorm(s, x, h, L->ln2_w, L->ln2_b, eps));
        PI0__TRY(pi0__linear_run(s, f, x, &L->fc1, PI0_ACT_GELU_TANH, 0));
        PI0__TRY(pi0__linear_run(s, h, f, &L->fc2, PI0_ACT_NONE, 1));
    }
    PI0__TRY(pi0_dev_layernorm(s, x, h, m->post_ln_w, m->post_ln_b, eps));
    PI0__TRY(pi0__linear_run(s, pi0__rows(m->ph, c->vlm.width, 0, rows), x, &m->proj,
                             PI0_ACT_NONE, 0));
    return PI0_OK;
}
