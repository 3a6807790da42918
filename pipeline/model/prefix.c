/* prefix.c — the Gemma 2B prefix on the device (PI0-SPEC.md §4.2–4.6).
 *
 * Only valid tokens are computed: image tokens of valid cameras, then real prompt tokens,
 * compacted. With every computed token valid and ar_mask all 0, the attention needs no
 * mask, and position ids cumsum(pad_mask) − 1 are simply 0 … n − 1. The keys (after
 * RoPE) and values of every layer go straight into the slot's cache; the last layer stops
 * there (its o_proj and MLP feed nothing the actions depend on). */
#include <math.h>

#include "model_internal.h"

int pi0__gemma_kv_stack(pi0_model *m, pi0_stream *s, pi0_prefix *p,
                        const pi0__gemma_layer *layers, const pi0_tower_config *tc, int k0,
                        const pi0__gemma_rows *r, pi0_mat pos) {
    const pi0_config *c = &m->cfg;
    int heads = tc->n_heads, kvh = tc->n_kv_heads, hd = tc->head_dim, t = r->h.rows;
    float scale = 1.0f / sqrtf((float)hd);
    for (int l = 0; l < tc->depth; l++) {
        const pi0__gemma_layer *L = &layers[l];
        pi0_mat k = pi0__kv(m, p, l, 0, k0, t), v = pi0__kv(m, p, l, 1, k0, t);
        PI0__TRY(pi0_dev_rmsnorm(s, r->x, r->h, L->in_norm, c->rms_eps));
        PI0__TRY(pi0_dev_gemm(s, k, r->x, L->k, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gemm(s, v, r->x, L->v, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_rope(s, k, pos, kvh, hd, c->rope_theta));
        if (l == tc->depth - 1) break; /* only this layer's K/V are used */
        PI0__TRY(pi0_dev_gemm(s, r->q, r->x, L->q, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_rope(s, r->q, pos, heads, hd, c->rope_theta));
        PI0__TRY(pi0_dev_attention(s, r->a, r->q, pi0__kv(m, p, l, 0, 0, k0 + t),
                                   pi0__kv(m, p, l, 1, 0, k0 + t), NULL, heads, kvh, hd,
                                   scale));
        PI0__TRY(pi0_dev_gemm(s, r->h, r->a, L->o, NULL, PI0_ACT_NONE, 1));
        PI0__TRY(pi0_dev_rmsnorm(s, r->x, r->h, L->post_norm, c->rms_eps));
        PI0__TRY(pi0_dev_gemm(s, r->g, r->x, L->gate, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gemm(s, r->u, r->x, L->up, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_geglu(s, r->g, r->g, r->u));
        PI0__TRY(pi0_dev_gemm(s, r->h, r->g, L->down, NULL, PI0_ACT_NONE, 1));
    }
    return PI0_OK;
}

int pi0__prefix_forward(pi0_model *m, pi0_prefix *p, int n_img, int n_tok) {
    const pi0_config *c = &m->cfg;
    pi0_stream *s = m->sa;
    int n = n_img + n_tok;
    int W = c->vlm.width, mlp = c->vlm.mlp, qd = c->vlm.n_heads * c->vlm.head_dim;

    if (n_tok > 0) {
        pi0_mat ids = {m->ids, 0, 1, n_tok, n_tok, PI0_I32};
        PI0__TRY(pi0_dev_gather(s, pi0__rows(m->ph, W, n_img, n_tok), m->embed, ids,
                                sqrtf((float)W)));
    }
    pi0__gemma_rows r = {pi0__rows(m->ph, W, 0, n),   pi0__rows(m->px, W, 0, n),
                         pi0__rows(m->pq, qd, 0, n),  pi0__rows(m->pa, qd, 0, n),
                         pi0__rows(m->pg, mlp, 0, n), pi0__rows(m->pu, mlp, 0, n)};
    PI0__TRY(pi0__gemma_kv_stack(m, s, p, m->vlm, &c->vlm, 0, &r, pi0__positions(m, 0, n)));
    p->n_valid = n;
    return PI0_OK;
}
