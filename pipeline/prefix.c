/* prefix.c — the Gemma 2B prefix on the device (PI0-SPEC.md §4.2–4.6).
 *
 * Only valid tokens are computed: image tokens of valid cameras, then real prompt tokens,
 * compacted. With every computed token valid and ar_mask all 0, the attention needs no
 * mask, and position ids cumsum(pad_mask) − 1 are simply 0 … n − 1. The keys (after
 * RoPE) and values of every layer go straight into the slot's cache; the last layer stops
 * there (its o_proj and MLP feed nothing the actions depend on). */
#include <math.h>

#include "model_internal.h"

int pi0__prefix_forward(pi0_model *m, pi0_prefix *p, int n_img, int n_tok) {
    const pi0_config *c = &m->cfg;
    pi0_stream *s = m->sa;
    int n = n_img + n_tok;
    int W = c->vlm.width, mlp = c->vlm.mlp;
    int heads = c->vlm.n_heads, kvh = c->vlm.n_kv_heads, hd = c->vlm.head_dim;
    int qd = heads * hd;
    float scale = 1.0f / sqrtf((float)hd);

    if (n_tok > 0) {
        pi0_mat ids = {m->ids, 0, 1, n_tok, n_tok, PI0_I32};
        PI0__TRY(pi0_dev_gather(s, pi0__rows(m->ph, W, n_img, n_tok), m->embed, ids,
                                sqrtf((float)W)));
    }
    pi0_mat h = pi0__rows(m->ph, W, 0, n);
    pi0_mat x = pi0__rows(m->px, W, 0, n);
    pi0_mat q = pi0__rows(m->pq, qd, 0, n);
    pi0_mat a = pi0__rows(m->pa, qd, 0, n);
    pi0_mat g = pi0__rows(m->pg, mlp, 0, n);
    pi0_mat u = pi0__rows(m->pu, mlp, 0, n);
    pi0_mat pos = pi0__positions(m, 0, n);

    for (int l = 0; l < c->vlm.depth; l++) {
        const pi0__gemma_layer *L = &m->vlm[l];
        pi0_mat k = pi0__kv(m, p, l, 0, 0, n);
        pi0_mat v = pi0__kv(m, p, l, 1, 0, n);
        PI0__TRY(pi0_dev_rmsnorm(s, x, h, L->in_norm, c->rms_eps));
        PI0__TRY(pi0_dev_gemm(s, k, x, L->k, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gemm(s, v, x, L->v, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_rope(s, k, pos, kvh, hd, c->rope_theta));
        if (l == c->vlm.depth - 1) break; /* only this layer's K/V are used */
        PI0__TRY(pi0_dev_gemm(s, q, x, L->q, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_rope(s, q, pos, heads, hd, c->rope_theta));
        PI0__TRY(pi0_dev_attention(s, a, q, k, v, NULL, heads, kvh, hd, scale));
        PI0__TRY(pi0_dev_gemm(s, h, a, L->o, NULL, PI0_ACT_NONE, 1));
        PI0__TRY(pi0_dev_rmsnorm(s, x, h, L->post_norm, c->rms_eps));
        PI0__TRY(pi0_dev_gemm(s, g, x, L->gate, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gemm(s, u, x, L->up, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_geglu(s, g, g, u));
        PI0__TRY(pi0_dev_gemm(s, h, g, L->down, NULL, PI0_ACT_NONE, 1));
    }
    p->n_valid = n;
    return PI0_OK;
}
