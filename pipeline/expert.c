/* expert.c — the action expert (Gemma 300M) over the cached prefix (PI0-SPEC.md §5).
 *
 * One velocity evaluation: suffix tokens → depth expert layers, each attending to
 * [valid prefix K/V of VLM layer l, its own suffix K/V] → final norm → action_out_proj.
 * The suffix K/V are written into the slot's tail rows [n, n + S): the cache never grows.
 *
 * Masks without a mask: π0's suffix is [state, a_1 … a_H] with ar_mask [1, 1, 0 …], so
 * the state token sees the prefix and itself (keys [0, n + 1)) and every action token
 * sees everything (keys [0, n + S)) — two unmasked attention calls. π0.5's suffix is the
 * H action tokens with ar_mask [1, 0 …]: all see everything.
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

int pi0__expert_begin(pi0_model *m) {
    if (m->cfg.pi05) return PI0_OK;
    pi0_mat st = pi0_mat_f32(m->state, 0, 1, m->cfg.state_dim);
    return pi0__linear_run(m->sb, pi0_mat_f32(m->st_tok, 0, 1, m->cfg.expert.width), st,
                           &m->state_proj, PI0_ACT_NONE, 0);
}

int pi0__expert_velocity(pi0_model *m, pi0_prefix *p, int step) {
    const pi0_config *c = &m->cfg;
    pi0_stream *s = m->sb;
    int E = c->expert.width, mlp = c->expert.mlp, H = c->action_horizon, A = c->action_dim;
    int heads = c->expert.n_heads, kvh = c->expert.n_kv_heads, hd = c->expert.head_dim;
    int qd = heads * hd, S = m->suffix, n = p->n_valid;
    int pi05 = c->pi05;
    int r_act = pi05 ? 0 : 1; /* first action-token row of the suffix */
    float scale = 1.0f / sqrtf((float)hd);
    pi0_mat sc, sh, gt;

    /* ---- suffix tokens ---- */
    pi0_mat xt = pi0_mat_f32(m->xt, 0, H, A);
    pi0_mat act_rows = pi0__rows(m->eh, E, r_act, H);
    if (pi05) {
        PI0__TRY(pi0__linear_run(s, act_rows, xt, &m->action_in, PI0_ACT_NONE, 0));
    } else {
        pi0_mat ai = pi0_mat_f32(m->ai, 0, H, E), et = pi0_mat_f32(m->et, 0, H, E);
        pi0_mat tb = pi0_mat_f32(m->cond, (size_t)step * (size_t)E * 4, 1, E);
        PI0__TRY(pi0__linear_run(s, ai, xt, &m->action_in, PI0_ACT_NONE, 0));
        /* silu(action_time_mlp_in(concat(a, temb))) = silu(a·W_aᵀ + (temb·W_tᵀ + b)) */
        PI0__TRY(pi0_dev_gemm(s, et, ai, m->time_a.w, &tb, PI0_ACT_SILU, 0));
        PI0__TRY(pi0__linear_run(s, act_rows, et, &m->time_out, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_copy(s, m->eh, 0, m->st_tok, 0, (size_t)E * 4));
    }

    pi0_mat pos = pi0__positions(m, n, S);
    for (int l = 0; l < c->expert.depth; l++) {
        const pi0__gemma_layer *L = &m->exp[l];
        /* the last layer only needs the rows that reach the output */
        int r0 = (l == c->expert.depth - 1) ? r_act : 0;
        int nr = S - r0;
        pi0_mat h = pi0__rows(m->eh, E, 0, S), x = pi0__rows(m->ex, E, 0, S);
        pi0_mat q = pi0__rows(m->eq, qd, 0, S);
        pi0_mat k = pi0__kv(m, p, l, 0, n, S), v = pi0__kv(m, p, l, 1, n, S);

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
        if (!pi05) { /* the state token: prefix + itself */
            PI0__TRY(
                pi0_dev_attention(s, pi0__rows(m->ea, qd, 0, 1), pi0__rows(m->eq, qd, 0, 1),
                                  pi0__kv(m, p, l, 0, 0, n + 1), pi0__kv(m, p, l, 1, 0, n + 1),
                                  NULL, heads, kvh, hd, scale));
        }
        PI0__TRY(pi0_dev_attention(s, pi0__rows(m->ea, qd, r_act, H),
                                   pi0__rows(m->eq, qd, r_act, H),
                                   pi0__kv(m, p, l, 0, 0, n + S), pi0__kv(m, p, l, 1, 0, n + S),
                                   NULL, heads, kvh, hd, scale));

        pi0_mat hr = pi0__rows(m->eh, E, r0, nr), xr = pi0__rows(m->ex, E, r0, nr);
        pi0_mat ar = pi0__rows(m->ea, qd, r0, nr), orr = pi0__rows(m->eo, E, r0, nr);
        pi0_mat g = pi0__rows(m->eg, mlp, r0, nr), u = pi0__rows(m->eu, mlp, r0, nr);
        if (pi05) {
            PI0__TRY(pi0_dev_gemm(s, orr, ar, L->o, NULL, PI0_ACT_NONE, 0));
            PI0__TRY(pi0_dev_gated_add(s, hr, gt, orr));
            ada(m, 2 * l + 1, step, &sc, &sh, &gt);
            PI0__TRY(pi0_dev_rmsnorm_ada(s, xr, hr, sc, sh, c->rms_eps));
        } else {
            PI0__TRY(pi0_dev_gemm(s, hr, ar, L->o, NULL, PI0_ACT_NONE, 1));
            PI0__TRY(pi0_dev_rmsnorm(s, xr, hr, L->post_norm, c->rms_eps));
        }
        PI0__TRY(pi0_dev_gemm(s, g, xr, L->gate, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_gemm(s, u, xr, L->up, NULL, PI0_ACT_NONE, 0));
        PI0__TRY(pi0_dev_geglu(s, g, g, u));
        if (pi05) {
            PI0__TRY(pi0_dev_gemm(s, orr, g, L->down, NULL, PI0_ACT_NONE, 0));
            PI0__TRY(pi0_dev_gated_add(s, hr, gt, orr));
        } else {
            PI0__TRY(pi0_dev_gemm(s, hr, g, L->down, NULL, PI0_ACT_NONE, 1));
        }
    }

    /* ---- output: final norm on the action rows → action_out_proj ---- */
    pi0_mat ha = pi0__rows(m->eh, E, r_act, H), xa = pi0__rows(m->ex, E, r_act, H);
    if (pi05) {
        ada(m, 2 * c->expert.depth, step, &sc, &sh, &gt);
        PI0__TRY(pi0_dev_rmsnorm_ada(s, xa, ha, sc, sh, c->rms_eps));
    } else {
        PI0__TRY(pi0_dev_rmsnorm(s, xa, ha, m->exp_norm, c->rms_eps));
    }
    return pi0__linear_run(s, pi0_mat_f32(m->vt, 0, H, A), xa, &m->action_out, PI0_ACT_NONE, 0);
}
