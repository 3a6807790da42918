/* expert.c — the action expert (Gemma 300M) over the cached prefix (PI0-SPEC.md §5).
 *
 * One velocity evaluation: the H action tokens → depth expert layers, each attending to
 * [valid prefix K/V of VLM layer l, the suffix K/V of expert layer l] → final norm →
 * action_out_proj. The suffix K/V are written into the slot's tail rows [n, n + S): the
 * cache never grows.
 *
 * Masks without a mask: π0's suffix is [state, a_1 … a_H] with ar_mask [1, 1, 0 …], so
 * the state token sees the prefix and itself (keys [0, n + 1)) and every action token
 * sees everything (keys [0, n + S)) — two unmasked attention calls. π0.5's suffix is the
 * H action tokens with ar_mask [1, 0 …]: all see everything.
 *
 * The π0 state token attends to nothing that changes between steps and has no time
 * conditioning, so its hidden states and its K/V (cache row n of every layer) are the same
 * for all num_steps steps: pi0__expert_begin computes them once per denoise, and each
 * step runs only the H action rows.
 *
 * Time conditioning depends only on the step index, so it was computed at load
 * (m->cond, see model_internal.h). */
#include <math.h>

#include "model_internal.h"

/* π0.5: the [scale | shift | gate] block `blk` of step `step` → three [1, E] views. */
static void ada(const pi0_model *m, int blk, int step, pi0_mat *scale, pi0_mat *shift,
                pi0_mat *gate) {
    int E = m->cfg.expert.width;
    size_t row = ((size_t)blk * (size_t)m->num_steps + (size_t)step) * 3 * (size_t)E * 4;
    *scale = pi0_mat_f32(m->cond, row, 1, E);
    *shift = pi0_mat_f32(m->cond, row + (size_t)E * 4, 1, E);
    *gate = pi0_mat_f32(m->cond, row + 2 * (size_t)E * 4, 1, E);
}

/* π0: the state token through every expert layer, its hidden state in m->st_tok and row 0
 * of the expert scratch, its K/V into cache row n. The last layer stops after K/V: its
 * output reaches no action. */
int pi0__expert_begin(pi0_model *m, pi0_prefix *p) {
    const pi0_config *c = &m->cfg;
    if (c->pi05) return PI0_OK;
    pi0_stream *s = m->sb;
    int E = c->expert.width, mlp = c->expert.mlp, n = p->n_valid;
    int qd = c->expert.n_heads * c->expert.head_dim;
    pi0__gemma_rows r = {pi0_mat_f32(m->st_tok, 0, 1, E), pi0__rows(m->ex, E, 0, 1),
                         pi0__rows(m->eq, qd, 0, 1),      pi0__rows(m->ea, qd, 0, 1),
                         pi0__rows(m->eg, mlp, 0, 1),     pi0__rows(m->eu, mlp, 0, 1)};
    PI0__TRY(pi0__linear_run(s, r.h, pi0_mat_f32(m->state, 0, 1, c->state_dim), &m->state_proj,
                             PI0_ACT_NONE, 0));
    return pi0__gemma_kv_stack(m, s, p, m->exp, &c->expert, n, &r, pi0__positions(m, n, 1));
}

int pi0__expert_velocity(pi0_model *m, pi0_prefix *p, int step) {
    const pi0_config *c = &m->cfg;
    pi0_stream *s = m->sb;
    int E = c->expert.width, mlp = c->expert.mlp, H = c->action_horizon, A = c->action_dim;
    int heads = c->expert.n_heads, kvh = c->expert.n_kv_heads, hd = c->expert.head_dim;
    int qd = heads * hd, S = m->suffix, n = p->n_valid;
    int pi05 = c->pi05;
    int r = pi05 ? 0 : 1; /* first action-token row of the suffix (π0: after the state) */
    float scale = 1.0f / sqrtf((float)hd);
    pi0_mat sc, sh, gt;

    /* the action rows [r, r + H) of the suffix scratch */
    pi0_mat h = pi0__rows(m->eh, E, r, H), x = pi0__rows(m->ex, E, r, H);
    pi0_mat q = pi0__rows(m->eq, qd, r, H), a = pi0__rows(m->ea, qd, r, H);
    pi0_mat o = pi0__rows(m->eo, E, r, H);
    pi0_mat g = pi0__rows(m->eg, mlp, r, H), u = pi0__rows(m->eu, mlp, r, H);
    pi0_mat pos = pi0__positions(m, n + r, H);

    /* ---- action tokens ---- */
    pi0_mat xt = pi0_mat_f32(m->xt, 0, H, A);
    if (pi05) {
        PI0__TRY(pi0__linear_run(s, h, xt, &m->action_in, PI0_ACT_NONE, 0));
    } else {
        pi0_mat ai = pi0_mat_f32(m->ai, 0, H, E), et = pi0_mat_f32(m->et, 0, H, E);
        pi0_mat tb = pi0_mat_f32(m->cond, (size_t)step * (size_t)E * 4, 1, E);
        PI0__TRY(pi0__linear_run(s, ai, xt, &m->action_in, PI0_ACT_NONE, 0));
        /* silu(action_time_mlp_in(concat(a, temb))) = silu(a·W_aᵀ + (temb·W_tᵀ + b)) */
        PI0__TRY(pi0_dev_gemm(s, et, ai, m->time_a.w, &tb, PI0_ACT_SILU, 0));
        PI0__TRY(pi0__linear_run(s, h, et, &m->time_out, PI0_ACT_NONE, 0));
    }

    for (int l = 0; l < c->expert.depth; l++) {
        const pi0__gemma_layer *L = &m->exp[l];
        pi0_mat k = pi0__kv(m, p, l, 0, n + r, H), v = pi0__kv(m, p, l, 1, n + r, H);

        if (pi05) {
            ada(m, 2 * l, step, &sc, &sh, &gt);
            PI0__TRY(pi0_dev_rmsnorm_ada(s, x, h, sc, sh, c->rms_eps));
        } else {
            PI0__TRY(pi0_dev_rmsnorm(s, x, h, L->in_norm, c->rms_eps));
        }
        PI0__TRY(pi0_dev_gemm(s, q, x, L->q, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gemm(s, k, x, L->k, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gemm(s, v, x, L->v, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_rope(s, q, pos, heads, hd, c->rope_theta));
        PI0__TRY(pi0_dev_rope(s, k, pos, kvh, hd, c->rope_theta));
        PI0__TRY(pi0_dev_attention(s, a, q, pi0__kv(m, p, l, 0, 0, n + S),
                                   pi0__kv(m, p, l, 1, 0, n + S), NULL, heads, kvh, hd, scale));
        if (pi05) {
            PI0__TRY(pi0_dev_gemm(s, o, a, L->o, NULL, PI0_ACT_NONE, 0));
            PI0__TRY(pi0_dev_gated_add(s, h, gt, o));
            ada(m, 2 * l + 1, step, &sc, &sh, &gt);
            PI0__TRY(pi0_dev_rmsnorm_ada(s, x, h, sc, sh, c->rms_eps));
        } else {
            PI0__TRY(pi0_dev_gemm(s, h, a, L->o, NULL, PI0_ACT_NONE, 1));
            PI0__TRY(pi0_dev_rmsnorm(s, x, h, L->post_norm, c->rms_eps));
        }
        PI0__TRY(pi0_dev_gemm(s, g, x, L->gate, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gemm(s, u, x, L->up, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_geglu(s, g, g, u));
        if (pi05) {
            PI0__TRY(pi0_dev_gemm(s, o, g, L->down, NULL, PI0_ACT_NONE, 0));
            PI0__TRY(pi0_dev_gated_add(s, h, gt, o));
        } else {
            PI0__TRY(pi0_dev_gemm(s, h, g, L->down, NULL, PI0_ACT_NONE, 1));
        }
    }

    /* ---- output: final norm on the action rows → action_out_proj ---- */
    if (pi05) {
        ada(m, 2 * c->expert.depth, step, &sc, &sh, &gt);
        PI0__TRY(pi0_dev_rmsnorm_ada(s, x, h, sc, sh, c->rms_eps));
    } else {
        PI0__TRY(pi0_dev_rmsnorm(s, x, h, m->exp_norm, c->rms_eps));
    }
    return pi0__linear_run(s, pi0_mat_f32(m->vt, 0, H, A), x, &m->action_out, PI0_ACT_NONE, 0);
}
