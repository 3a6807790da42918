/* prefix.c — the Gemma 2B prefix on the device (PI0-SPEC.md §4.2–4.6).
 *
 * Only valid tokens are computed: image tokens of valid cameras, then real prompt tokens,
 * compacted. With every computed token valid and ar_mask all 0, the attention needs no
 * mask, and position ids cumsum(pad_mask) − 1 are simply 0 … n − 1. The keys (after
 * RoPE) and values of every layer go straight into the slot's cache; the last layer stops
 * there (its o_proj and MLP feed nothing the actions depend on). */
#include "prefix.h"

#include <math.h>
#include <string.h>

int pi0__vlm_load(pi0__vlm *p, pi0_dev *dev, pi0_stream *s, const pi0_weights *w,
                  int max_tokens) {
    const pi0_config *c = &w->cfg;
    size_t N = (size_t)max_tokens, W = (size_t)c->vlm.width, mlp = (size_t)c->vlm.mlp;
    size_t qd = (size_t)(c->vlm.n_heads * c->vlm.head_dim);
    pi0__params pb = {0};
    p->max_tokens = max_tokens;
    p->max_ids = c->max_token_len;
    int rc = pi0__table_make(dev, &w->embed, &p->embed);
    if (!rc)
        rc = pi0__gemma_load(&p->gemma, dev, &pb, w->vlm, &c->vlm, c->rms_eps, c->rope_theta, 1,
                             1);
    if (rc) {
        pi0__params_free(&pb);
        return rc;
    }
    PI0__TRY(pi0__params_upload(&pb, dev, s, &p->params));
    PI0__TRY(pi0__buf_f32(dev, &p->h, N, W));
    PI0__TRY(pi0__buf_f32(dev, &p->x, N, W));
    PI0__TRY(pi0__buf_f32(dev, &p->q, N, qd));
    PI0__TRY(pi0__buf_f32(dev, &p->a, N, qd));
    PI0__TRY(pi0__buf_f32(dev, &p->g, N, mlp));
    PI0__TRY(pi0__buf_f32(dev, &p->u, N, mlp));
    return pi0__buf_f32(dev, &p->ids, 1, (size_t)c->max_token_len);
}

void pi0__vlm_free(pi0__vlm *p) {
    pi0_buf *bufs[] = {p->params, p->h, p->x, p->q, p->a, p->g, p->u, p->ids};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pi0_buf_free(bufs[i]);
    pi0_weight_destroy(p->embed);
    pi0__gemma_free(&p->gemma);
    memset(p, 0, sizeof *p);
}

pi0_mat pi0__vlm_rows(const pi0__vlm *p, int n) {
    return pi0__rows(p->h, p->gemma.tc.width, 0, n);
}

int pi0__vlm_forward(pi0__vlm *p, pi0_stream *s, const pi0__kv *kv, int n_img, int n_tok) {
    const pi0_tower_config *tc = &p->gemma.tc;
    int n = n_img + n_tok;
    int W = tc->width, mlp = tc->mlp, qd = tc->n_heads * tc->head_dim;

    if (n_tok > 0) {
        pi0_mat ids = {p->ids, 0, 1, n_tok, n_tok, PI0_I32};
        PI0__TRY(pi0_dev_gather(s, pi0__rows(p->h, W, n_img, n_tok), p->embed, ids,
                                sqrtf((float)W)));
    }
    pi0__gemma_rows r = {pi0__rows(p->h, W, 0, n),
                         pi0__rows(p->x, W, 0, n),
                         pi0__rows(p->q, qd, 0, n),
                         pi0__rows(p->a, qd, 0, n),
                         pi0__rows(p->g, mlp, 0, n),
                         pi0__rows(p->u, mlp, 0, n),
                         {0}};
    return pi0__gemma_kv_stack(s, &p->gemma, kv, 0, &r);
}
