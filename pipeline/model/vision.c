/* vision.c — SigLIP So400m/14 and the PaliGemma projector on the device (PI0-SPEC.md §4.1).
 *
 * All valid cameras are batched into the GEMMs (rows = n_cams · np); attention runs per
 * image. The projector writes straight into the caller's view (the prefix activations),
 * so the image tokens are never copied. */
#include "vision.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int pi0__vision_load(pi0__vision *v, pi0_dev *dev, pi0_stream *s, const pi0_weights *w,
                     int max_cams) {
    const pi0_config *c = &w->cfg;
    int vw = c->vision.width;
    pi0__params pb = {0};
    v->tc = c->vision;
    v->n_patches = c->n_patches;
    v->patch = c->patch;
    v->out_width = c->vlm.width;
    v->ln_eps = c->ln_eps;

    int rc = pi0__linear_make(dev, &pb, &w->patch_w, &w->patch_b, &v->patch_emb);
    pi0__params_tensor(&pb, &w->pos_emb, c->n_patches, vw, &v->pos_emb);
    v->vis = calloc((size_t)c->vision.depth, sizeof *v->vis);
    if (!rc && !v->vis) rc = pi0_errorf(PI0_ENOMEM, "vision: out of memory");
    for (int l = 0; l < c->vision.depth && !rc; l++) {
        const pi0_vision_layer *src = &w->vision[l];
        pi0__vision_layer *d = &v->vis[l];
        pi0__params_tensor(&pb, &src->ln1_w, 1, vw, &d->ln1_w);
        pi0__params_tensor(&pb, &src->ln1_b, 1, vw, &d->ln1_b);
        pi0__params_tensor(&pb, &src->ln2_w, 1, vw, &d->ln2_w);
        pi0__params_tensor(&pb, &src->ln2_b, 1, vw, &d->ln2_b);
        if (!rc) rc = pi0__linear_make(dev, &pb, &src->q_w, &src->q_b, &d->q);
        if (!rc) rc = pi0__linear_make(dev, &pb, &src->k_w, &src->k_b, &d->k);
        if (!rc) rc = pi0__linear_make(dev, &pb, &src->v_w, &src->v_b, &d->v);
        if (!rc) rc = pi0__linear_make(dev, &pb, &src->o_w, &src->o_b, &d->o);
        if (!rc) rc = pi0__linear_make(dev, &pb, &src->fc1_w, &src->fc1_b, &d->fc1);
        if (!rc) rc = pi0__linear_make(dev, &pb, &src->fc2_w, &src->fc2_b, &d->fc2);
    }
    pi0__params_tensor(&pb, &w->post_ln_w, 1, vw, &v->post_ln_w);
    pi0__params_tensor(&pb, &w->post_ln_b, 1, vw, &v->post_ln_b);
    if (!rc) rc = pi0__linear_make(dev, &pb, &w->proj_w, &w->proj_b, &v->proj);
    if (rc) {
        pi0__params_free(&pb);
        return rc;
    }
    PI0__TRY(pi0__params_upload(&pb, dev, s, &v->params));

    size_t rows = (size_t)max_cams * (size_t)c->n_patches;
    PI0__TRY(pi0__buf_f32(dev, &v->patches, rows, 3 * (size_t)c->patch * (size_t)c->patch));
    pi0_buf **bufs[] = {&v->h, &v->x, &v->q, &v->k, &v->v, &v->attn};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        PI0__TRY(pi0__buf_f32(dev, bufs[i], rows, (size_t)vw));
    return pi0__buf_f32(dev, &v->mlp, rows, (size_t)c->vision.mlp);
}

void pi0__vision_free(pi0__vision *v) {
    pi0_buf *bufs[] = {v->params, v->patches, v->h, v->x, v->q, v->k, v->v, v->attn, v->mlp};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pi0_buf_free(bufs[i]);
    pi0_weight_destroy(v->patch_emb.w);
    if (v->vis) {
        for (int l = 0; l < v->tc.depth; l++) {
            pi0__vision_layer *d = &v->vis[l];
            pi0_weight *ws[] = {d->q.w, d->k.w, d->v.w, d->o.w, d->fc1.w, d->fc2.w};
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
                pi0_weight_destroy(ws[i]);
        }
    }
    pi0_weight_destroy(v->proj.w);
    free(v->vis);
    memset(v, 0, sizeof *v);
}

int pi0__vision_forward(pi0__vision *v, pi0_stream *s, int n_cams, pi0_mat out) {
    int np_ = v->n_patches, vw = v->tc.width, mlp = v->tc.mlp;
    int rows = n_cams * np_;
    int pp = 3 * v->patch * v->patch;
    int heads = v->tc.n_heads, hd = v->tc.head_dim;
    float scale = 1.0f / sqrtf((float)hd);
    float eps = v->ln_eps;

    pi0_mat patches = pi0__rows(v->patches, pp, 0, rows);
    pi0_mat h = pi0__rows(v->h, vw, 0, rows);
    pi0_mat x = pi0__rows(v->x, vw, 0, rows);
    pi0_mat q = pi0__rows(v->q, vw, 0, rows);
    pi0_mat k = pi0__rows(v->k, vw, 0, rows);
    pi0_mat vv = pi0__rows(v->v, vw, 0, rows);
    pi0_mat a = pi0__rows(v->attn, vw, 0, rows);
    pi0_mat f = pi0__rows(v->mlp, mlp, 0, rows);

    /* patch embedding (conv p×p stride p as a GEMM over (c, kh, kw) patches) + positions */
    PI0__TRY(pi0__linear_run(s, h, patches, &v->patch_emb, PI0_ACT_NONE, 0));
    for (int i = 0; i < n_cams; i++) {
        pi0_mat hi = pi0__rows(v->h, vw, i * np_, np_);
        PI0__TRY(pi0_dev_binary(s, PI0_BIN_ADD, hi, hi, v->pos_emb));
    }

    for (int l = 0; l < v->tc.depth; l++) {
        const pi0__vision_layer *L = &v->vis[l];
        PI0__TRY(pi0_dev_layernorm(s, x, h, L->ln1_w, L->ln1_b, eps));
        PI0__TRY(pi0__linear_run(s, q, x, &L->q, PI0_ACT_NONE, 0));
        PI0__TRY(pi0__linear_run(s, k, x, &L->k, PI0_ACT_NONE, 0));
        PI0__TRY(pi0__linear_run(s, vv, x, &L->v, PI0_ACT_NONE, 0));
        for (int i = 0; i < n_cams; i++) {
            PI0__TRY(pi0_dev_attention(
                s, pi0__rows(v->attn, vw, i * np_, np_), pi0__rows(v->q, vw, i * np_, np_),
                pi0__rows(v->k, vw, i * np_, np_), pi0__rows(v->v, vw, i * np_, np_), NULL,
                heads, heads, hd, scale));
        }
        PI0__TRY(pi0__linear_run(s, h, a, &L->o, PI0_ACT_NONE, 1));
        PI0__TRY(pi0_dev_layernorm(s, x, h, L->ln2_w, L->ln2_b, eps));
        PI0__TRY(pi0__linear_run(s, f, x, &L->fc1, PI0_ACT_GELU_TANH, 0));
        PI0__TRY(pi0__linear_run(s, h, f, &L->fc2, PI0_ACT_NONE, 1));
    }
    PI0__TRY(pi0_dev_layernorm(s, x, h, v->post_ln_w, v->post_ln_b, eps));
    return pi0__linear_run(s, out, x, &v->proj, PI0_ACT_NONE, 0);
}
