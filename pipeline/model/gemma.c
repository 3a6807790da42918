/* gemma.c — the Gemma decoder layer shared by the prefix and the expert (see gemma.h). */
#include "gemma.h"

#include <math.h>
#include <stdlib.h>

int pi0__gemma_layer_run(pi0_stream *s, const pi0__gemma *g, int l, const pi0__kv *kv, int k0,
                         int n_keys, const pi0__gemma_rows *r, const pi0__gemma_ada *ada,
                         int kv_only) {
    const pi0__gemma_layer *L = &g->layers[l];
    int heads = g->tc.n_heads, kvh = g->tc.n_kv_heads, hd = g->tc.head_dim, t = r->h.rows;
    float eps = g->rms_eps, theta = g->rope_theta, scale = 1.0f / sqrtf((float)hd);
    pi0_mat k = pi0__kv_rows(kv, l, 0, k0, t), v = pi0__kv_rows(kv, l, 1, k0, t);
    pi0_mat pos = pi0__kv_pos(kv, k0, t);

    if (ada)
        PI0__TRY(pi0_dev_rmsnorm_ada(s, r->x, r->h, ada->in_scale, ada->in_shift, eps));
    else
        PI0__TRY(pi0_dev_rmsnorm(s, r->x, r->h, L->in_norm, eps));
    /* K, V (and Q) of one input: one operation; then RoPE of q and k: one operation */
    pi0_mat kvq[3] = {k, v, r->q};
    const pi0_weight *w_kvq[3] = {L->k, L->v, L->q};
    PI0__TRY(pi0_dev_gemm_multi(s, kv_only ? 2 : 3, kvq, r->x, w_kvq));
    if (kv_only) return pi0_dev_rope(s, k, pos, kvh, hd, theta);
    PI0__TRY(pi0_dev_rope_qk(s, r->q, k, pos, heads, kvh, hd, theta));
    PI0__TRY(pi0_dev_attention(s, r->a, r->q, pi0__kv_rows(kv, l, 0, 0, n_keys),
                               pi0__kv_rows(kv, l, 1, 0, n_keys), NULL, heads, kvh, hd, scale));
    if (ada) {
        PI0__TRY(pi0_dev_gemm(s, r->o, r->a, L->o, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gated_add(s, r->h, ada->in_gate, r->o));
        PI0__TRY(pi0_dev_rmsnorm_ada(s, r->x, r->h, ada->post_scale, ada->post_shift, eps));
    } else {
        PI0__TRY(pi0_dev_gemm(s, r->h, r->a, L->o, NULL, PI0_ACT_NONE, 1));
        PI0__TRY(pi0_dev_rmsnorm(s, r->x, r->h, L->post_norm, eps));
    }
    pi0_mat gu[2] = {r->g, r->u};
    const pi0_weight *w_gu[2] = {L->gate, L->up};
    PI0__TRY(pi0_dev_gemm_multi(s, 2, gu, r->x, w_gu));
    PI0__TRY(pi0_dev_geglu(s, r->g, r->g, r->u));
    if (ada) {
        PI0__TRY(pi0_dev_gemm(s, r->o, r->g, L->down, NULL, PI0_ACT_NONE, 0));
        return pi0_dev_gated_add(s, r->h, ada->post_gate, r->o);
    }
    return pi0_dev_gemm(s, r->h, r->g, L->down, NULL, PI0_ACT_NONE, 1);
}

int pi0__gemma_kv_stack(pi0_stream *s, const pi0__gemma *g, const pi0__kv *kv, int k0,
                        const pi0__gemma_rows *r) {
    int n_keys = k0 + r->h.rows, last = g->tc.depth - 1;
    for (int l = 0; l <= last; l++)
        PI0__TRY(pi0__gemma_layer_run(s, g, l, kv, k0, n_keys, r, NULL, l == last));
    return PI0_OK;
}

int pi0__gemma_load(pi0__gemma *g, pi0_dev *dev, pi0__params *pb, const pi0_gemma_layer *src,
                    const pi0_tower_config *tc, float rms_eps, float rope_theta, int norms,
                    int last_kv_only) {
    g->tc = *tc;
    g->rms_eps = rms_eps;
    g->rope_theta = rope_theta;
    g->layers = calloc((size_t)tc->depth, sizeof *g->layers);
    if (!g->layers)
        return pi0_errorf(PI0_ENOMEM, "Gemma tower: out of memory for %d layers", tc->depth);
    for (int l = 0; l < tc->depth; l++) {
        const pi0_gemma_layer *s = &src[l];
        pi0__gemma_layer *d = &g->layers[l];
        if (norms) {
            pi0__params_tensor(pb, &s->in_norm, 1, tc->width, &d->in_norm);
            pi0__params_tensor(pb, &s->post_norm, 1, tc->width, &d->post_norm);
        }
        PI0__TRY(pi0__weight_make(dev, &s->k, &d->k));
        PI0__TRY(pi0__weight_make(dev, &s->v, &d->v));
        if (last_kv_only && l == tc->depth - 1) continue;
        PI0__TRY(pi0__weight_make(dev, &s->q, &d->q));
        PI0__TRY(pi0__weight_make(dev, &s->o, &d->o));
        PI0__TRY(pi0__weight_make(dev, &s->gate, &d->gate));
        PI0__TRY(pi0__weight_make(dev, &s->up, &d->up));
        PI0__TRY(pi0__weight_make(dev, &s->down, &d->down));
    }
    return PI0_OK;
}

void pi0__gemma_free(pi0__gemma *g) {
    if (g->layers) {
        for (int l = 0; l < g->tc.depth; l++) {
            pi0__gemma_layer *L = &g->layers[l];
            pi0_weight *ws[] = {L->q, L->k, L->v, L->o, L->gate, L->up, L->down};
            for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
                pi0_weight_destroy(ws[i]);
        }
    }
    free(g->layers);
    g->layers = NULL;
}
