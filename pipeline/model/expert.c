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
 * Time conditioning depends only on the step index, so it is computed at load (e->cond). */
#include "expert.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---- time conditioning (PI0-SPEC.md §5), computed once per step at load -------------

static void time_embedding(double t, int width, float *out) {
    int half = width / 2;
    for (int j = 0; j < half; j++) {
        double frac = half > 1 ? (double)j / (double)(half - 1) : 0.0;
        double period = 4e-3 * pow(4.0 / 4e-3, frac);
        double a = t * 2.0 * M_PI / period;
        out[j] = (float)sin(a);
        out[half + j] = (float)cos(a);
    }
}

/* A linear used only at load (time conditioning): a weight view plus its bias in a
 * temporary device buffer. */
typedef struct load_linear {
    pi0__linear l;
    pi0_buf *bias;
} load_linear;

static void load_linear_free(load_linear *t) {
    pi0_weight_destroy(t->l.w);
    pi0_buf_free(t->bias);
    memset(t, 0, sizeof *t);
}

/* W = rows [n] × columns [k] of `w` starting at column `col` (row stride = w's columns);
 * bias `b` (may be NULL). Synchronous (the bias upload completes before returning). */
static int load_linear_make(pi0_dev *dev, pi0_stream *s, const pi0_tensor *w, int col, int k,
                            const pi0_tensor *b, load_linear *out) {
    int n = (int)w->shape[0], ld = (int)(pi0_tensor_numel(w) / w->shape[0]);
    const char *data = (const char *)w->data + (size_t)col * pi0_dtype_size(w->dtype);
    memset(out, 0, sizeof *out);
    PI0__TRY(pi0_weight_create(dev, data, w->dtype, n, k, ld, &out->l.w));
    if (!b) return PI0_OK;
    float *hb = malloc((size_t)n * sizeof(float));
    int rc = hb ? pi0_tensor_to_f32(b, 0, n, hb)
                : pi0_errorf(PI0_ENOMEM, "tensor %s: out of memory", b->name ? b->name : "?");
    if (!rc) rc = pi0_buf_alloc(dev, (size_t)n * 4, &out->bias);
    if (!rc) rc = pi0_dev_upload(s, out->bias, 0, hb, (size_t)n * 4);
    if (!rc) rc = pi0_stream_sync(s);
    free(hb);
    if (rc) {
        load_linear_free(out);
        return rc;
    }
    out->l.b = pi0_mat_f32(out->bias, 0, 1, n);
    return PI0_OK;
}

/* π0: action_time_mlp_in [E, 2E] acts on concat(action, temb); its columns [E, 2E) times
 * temb(t_s) plus the bias is a per-step bias of the action half (cond [T, E]), and the
 * action half (columns [0, E)) becomes e->time_a. */
static int precompute_pi0(pi0__expert *e, pi0_dev *dev, pi0_stream *s, const pi0_weights *w,
                          pi0_mat temb) {
    int E = e->gemma.tc.width, T = e->num_steps;
    load_linear tl;
    PI0__TRY(pi0_buf_alloc(dev, (size_t)T * E * 4, &e->cond));
    PI0__TRY(load_linear_make(dev, s, &w->time_in_w, E, E, &w->time_in_b, &tl));
    int rc = pi0__linear_run(s, pi0_mat_f32(e->cond, 0, T, E), temb, &tl.l, PI0_ACT_NONE, 0);
    int src = pi0_stream_sync(s);
    load_linear_free(&tl);
    PI0__TRY(rc ? rc : src);
    const pi0_tensor *ti = &w->time_in_w;
    return pi0_weight_create(dev, ti->data, ti->dtype, E, E, 2 * E, &e->time_a.w);
}

/* π0.5: cond_s = silu(time_mlp_out(silu(time_mlp_in(temb(t_s))))), then every adaptive
 * norm's dense layer → [scale | shift | gate] per step: cond [(2·depth + 1), T, 3E]. */
static int precompute_pi05(pi0__expert *e, pi0_dev *dev, pi0_stream *s, const pi0_weights *w,
                           pi0_mat temb, pi0_mat tmp) {
    int E = e->gemma.tc.width, T = e->num_steps, depth = e->gemma.tc.depth;
    int nblk = 2 * depth + 1;
    load_linear tin, tout;
    PI0__TRY(pi0_buf_alloc(dev, (size_t)nblk * T * 3 * E * 4, &e->cond));
    PI0__TRY(load_linear_make(dev, s, &w->time_in_w, 0, E, &w->time_in_b, &tin));
    int rc = load_linear_make(dev, s, &w->time_out_w, 0, E, &w->time_out_b, &tout);
    if (rc) {
        load_linear_free(&tin);
        return rc;
    }
    rc = pi0__linear_run(s, tmp, temb, &tin.l, PI0_ACT_SILU, 0);
    if (!rc) rc = pi0__linear_run(s, temb, tmp, &tout.l, PI0_ACT_SILU, 0); /* temb = cond */
    for (int i = 0; i < nblk && !rc; i++) {
        const pi0_tensor *dw = i == nblk - 1 ? &w->expert_norm
                               : i % 2 == 0  ? &w->expert[i / 2].in_norm
                                             : &w->expert[i / 2].post_norm;
        const pi0_tensor *db = i == nblk - 1 ? &w->expert_norm_b
                               : i % 2 == 0  ? &w->expert[i / 2].in_norm_b
                                             : &w->expert[i / 2].post_norm_b;
        load_linear d;
        rc = load_linear_make(dev, s, dw, 0, E, db, &d);
        if (rc) break;
        pi0_mat out = pi0_mat_f32(e->cond, (size_t)i * T * 3 * E * 4, T, 3 * E);
        rc = pi0__linear_run(s, out, temb, &d.l, PI0_ACT_NONE, 0);
        int src = pi0_stream_sync(s); /* before the weight goes away */
        if (!rc) rc = src;
        load_linear_free(&d);
    }
    int src = pi0_stream_sync(s);
    load_linear_free(&tin);
    load_linear_free(&tout);
    return rc ? rc : src;
}

/* The time conditioning depends only on the step index (t_s of pi0__step_dt's schedule):
 * computed here once. */
static int precompute_cond(pi0__expert *e, pi0_dev *dev, pi0_stream *s, const pi0_weights *w) {
    int E = e->gemma.tc.width, T = e->num_steps;
    pi0_buf *temb = NULL, *tmp = NULL;
    float *h = calloc((size_t)T * (size_t)E, sizeof(float));
    if (!h) return pi0_errorf(PI0_ENOMEM, "time conditioning: out of memory");
    float t = 1.0f, dt = pi0__step_dt(T);
    for (int i = 0; i < T; i++, t += dt)
        time_embedding((double)t, E, h + (size_t)i * E);
    int rc = pi0_buf_alloc(dev, (size_t)T * E * 4, &temb);
    if (!rc) rc = pi0_buf_alloc(dev, (size_t)T * E * 4, &tmp);
    if (!rc) rc = pi0_dev_upload(s, temb, 0, h, (size_t)T * E * 4);
    if (!rc) rc = pi0_stream_sync(s);
    if (!rc) {
        pi0_mat te = pi0_mat_f32(temb, 0, T, E);
        rc = e->pi05 ? precompute_pi05(e, dev, s, w, te, pi0_mat_f32(tmp, 0, T, E))
                     : precompute_pi0(e, dev, s, w, te);
    }
    pi0_stream_sync(s);
    pi0_buf_free(temb);
    pi0_buf_free(tmp);
    free(h);
    return rc;
}

// ---- load -------------------------------------------------------------------------------

int pi0__expert_load(pi0__expert *e, pi0_dev *dev, pi0_stream *s, const pi0_weights *w,
                     int num_steps) {
    const pi0_config *c = &w->cfg;
    int pi05 = c->pi05;
    pi0__params pb = {0};
    e->pi05 = pi05;
    e->horizon = c->action_horizon;
    e->action_dim = c->action_dim;
    e->state_dim = c->state_dim;
    e->suffix = c->action_horizon + (pi05 ? 0 : 1);
    e->num_steps = num_steps;

    int rc = pi0__gemma_load(&e->gemma, dev, &pb, w->expert, &c->expert, c->rms_eps,
                             c->rope_theta, !pi05, 0);
    if (!rc && !pi05) {
        pi0__params_tensor(&pb, &w->expert_norm, 1, c->expert.width, &e->final_norm);
        rc = pi0__linear_make(dev, &pb, &w->state_proj_w, &w->state_proj_b, &e->state_proj);
        if (!rc) rc = pi0__linear_make(dev, &pb, &w->time_out_w, &w->time_out_b, &e->time_out);
    }
    if (!rc) rc = pi0__linear_make(dev, &pb, &w->action_in_w, &w->action_in_b, &e->action_in);
    if (!rc)
        rc = pi0__linear_make(dev, &pb, &w->action_out_w, &w->action_out_b, &e->action_out);
    if (!rc) rc = precompute_cond(e, dev, s, w);
    if (rc) {
        pi0__params_free(&pb);
        return rc;
    }
    PI0__TRY(pi0__params_upload(&pb, dev, s, &e->params));

    size_t H = (size_t)e->horizon, A = (size_t)e->action_dim, S = (size_t)e->suffix;
    size_t E = (size_t)c->expert.width, mlp = (size_t)c->expert.mlp;
    size_t qd = (size_t)(c->expert.n_heads * c->expert.head_dim);
    PI0__TRY(pi0__buf_f32(dev, &e->xt, H, A));
    PI0__TRY(pi0__buf_f32(dev, &e->vt, H, A));
    PI0__TRY(pi0__buf_f32(dev, &e->state, 1, (size_t)c->state_dim + 1));
    PI0__TRY(pi0__buf_f32(dev, &e->st_tok, 1, E));
    PI0__TRY(pi0__buf_f32(dev, &e->ai, H, E));
    PI0__TRY(pi0__buf_f32(dev, &e->et, H, E));
    PI0__TRY(pi0__buf_f32(dev, &e->h, S, E));
    PI0__TRY(pi0__buf_f32(dev, &e->x, S, E));
    PI0__TRY(pi0__buf_f32(dev, &e->o, S, E));
    PI0__TRY(pi0__buf_f32(dev, &e->q, S, qd));
    PI0__TRY(pi0__buf_f32(dev, &e->a, S, qd));
    PI0__TRY(pi0__buf_f32(dev, &e->g, S, mlp));
    return pi0__buf_f32(dev, &e->u, S, mlp);
}

void pi0__expert_free(pi0__expert *e) {
    pi0_buf *bufs[] = {e->params, e->cond, e->xt, e->vt, e->state, e->st_tok, e->ai, e->et,
                       e->h,      e->x,    e->o,  e->q,  e->a,     e->g,      e->u};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pi0_buf_free(bufs[i]);
    pi0_weight *ws[] = {e->state_proj.w, e->action_in.w, e->action_out.w, e->time_a.w,
                        e->time_out.w};
    for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++)
        pi0_weight_destroy(ws[i]);
    pi0__gemma_free(&e->gemma);
    memset(e, 0, sizeof *e);
}

// ---- forward ------------------------------------------------------------------------------

/* π0.5: the [scale | shift | gate] block `blk` of step `step` → three [1, E] views. */
static void ada(const pi0__expert *e, int blk, int step, pi0_mat *scale, pi0_mat *shift,
                pi0_mat *gate) {
    int E = e->gemma.tc.width;
    size_t row = ((size_t)blk * (size_t)e->num_steps + (size_t)step) * 3 * (size_t)E * 4;
    *scale = pi0_mat_f32(e->cond, row, 1, E);
    *shift = pi0_mat_f32(e->cond, row + (size_t)E * 4, 1, E);
    *gate = pi0_mat_f32(e->cond, row + 2 * (size_t)E * 4, 1, E);
}

/* The scratch rows [r0, r0 + t) of the suffix. */
static pi0__gemma_rows suffix_rows(const pi0__expert *e, int r0, int t) {
    const pi0_tower_config *tc = &e->gemma.tc;
    int E = tc->width, mlp = tc->mlp, qd = tc->n_heads * tc->head_dim;
    pi0__gemma_rows r = {pi0__rows(e->h, E, r0, t),   pi0__rows(e->x, E, r0, t),
                         pi0__rows(e->q, qd, r0, t),  pi0__rows(e->a, qd, r0, t),
                         pi0__rows(e->g, mlp, r0, t), pi0__rows(e->u, mlp, r0, t),
                         pi0__rows(e->o, E, r0, t)};
    return r;
}

/* π0: the state token through every expert layer, its hidden state in e->st_tok, its K/V
 * into cache row n. The last layer stops after K/V: its output reaches no action. */
int pi0__expert_begin(pi0__expert *e, pi0_stream *s, const pi0__kv *kv, int n) {
    if (e->pi05) return PI0_OK;
    pi0__gemma_rows r = suffix_rows(e, 0, 1);
    r.h = pi0_mat_f32(e->st_tok, 0, 1, e->gemma.tc.width);
    PI0__TRY(pi0__linear_run(s, r.h, pi0_mat_f32(e->state, 0, 1, e->state_dim), &e->state_proj,
                             PI0_ACT_NONE, 0));
    return pi0__gemma_kv_stack(s, &e->gemma, kv, n, &r);
}

int pi0__expert_velocity(pi0__expert *e, pi0_stream *s, const pi0__kv *kv, int n, int step) {
    int E = e->gemma.tc.width, H = e->horizon, A = e->action_dim, S = e->suffix;
    int pi05 = e->pi05;
    int r0 = pi05 ? 0 : 1; /* first action-token row of the suffix (π0: after the state) */
    float eps = e->gemma.rms_eps;
    pi0__gemma_rows r = suffix_rows(e, r0, H);

    /* ---- action tokens ---- */
    pi0_mat xt = pi0_mat_f32(e->xt, 0, H, A);
    if (pi05) {
        PI0__TRY(pi0__linear_run(s, r.h, xt, &e->action_in, PI0_ACT_NONE, 0));
    } else {
        pi0_mat ai = pi0_mat_f32(e->ai, 0, H, E), et = pi0_mat_f32(e->et, 0, H, E);
        pi0_mat tb = pi0_mat_f32(e->cond, (size_t)step * (size_t)E * 4, 1, E);
        PI0__TRY(pi0__linear_run(s, ai, xt, &e->action_in, PI0_ACT_NONE, 0));
        /* silu(action_time_mlp_in(concat(a, temb))) = silu(a·W_aᵀ + (temb·W_tᵀ + b)) */
        PI0__TRY(pi0_dev_gemm(s, et, ai, e->time_a.w, &tb, PI0_ACT_SILU, 0));
        PI0__TRY(pi0__linear_run(s, r.h, et, &e->time_out, PI0_ACT_NONE, 0));
    }

    for (int l = 0; l < e->gemma.tc.depth; l++) {
        pi0__gemma_ada ad, *adp = NULL;
        if (pi05) {
            ada(e, 2 * l, step, &ad.in_scale, &ad.in_shift, &ad.in_gate);
            ada(e, 2 * l + 1, step, &ad.post_scale, &ad.post_shift, &ad.post_gate);
            adp = &ad;
        }
        PI0__TRY(pi0__gemma_layer_run(s, &e->gemma, l, kv, n + r0, n + S, &r, adp, 0));
    }

    /* ---- output: final norm on the action rows → action_out_proj ---- */
    if (pi05) {
        pi0_mat sc, sh, gt;
        ada(e, 2 * e->gemma.tc.depth, step, &sc, &sh, &gt);
        PI0__TRY(pi0_dev_rmsnorm_ada(s, r.x, r.h, sc, sh, eps));
    } else {
        PI0__TRY(pi0_dev_rmsnorm(s, r.x, r.h, e->final_norm, eps));
    }
    return pi0__linear_run(s, pi0_mat_f32(e->vt, 0, H, A), r.x, &e->action_out, PI0_ACT_NONE,
                           0);
}
