/* model.c — pi0_model: load (weights → device), worst-case allocation, prefix slots, the
 * encode / denoise API, noise generator and norm-stats helpers (see pi0_pipeline.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_time.h"
#include "model_internal.h"
#include "pipeline/preprocess/preprocess.h"

/* ---- small vectors: converted to f32 on the host, uploaded once ------------------- */

typedef struct params_builder {
    float *data;
    size_t n, cap; /* floats */
    int err;
} params_builder;

/* Reserves `n` floats in the params buffer (64-byte aligned), returns their offset. */
static size_t pb_reserve(params_builder *pb, size_t n) {
    size_t off = (pb->n + 15) & ~(size_t)15;
    if (off + n > pb->cap) {
        size_t cap = pb->cap ? pb->cap : 4096;
        while (cap < off + n)
            cap *= 2;
        float *d = realloc(pb->data, cap * sizeof(float));
        if (!d) {
            pb->err = PI0_ENOMEM;
            return 0;
        }
        pb->data = d;
        pb->cap = cap;
    }
    memset(pb->data + pb->n, 0, (off + n - pb->n) * sizeof(float));
    pb->n = off + n;
    return off;
}

/* Matrices are recorded with buf == NULL and the float offset in .off; fixed up to real
 * byte offsets in m->params once it exists (fix_mat). */
static pi0_mat pb_tensor(params_builder *pb, const pi0_tensor *t, int rows, int cols) {
    pi0_mat x = {NULL, 0, rows, cols, cols, PI0_F32};
    size_t off = pb_reserve(pb, (size_t)rows * (size_t)cols);
    if (pb->err) return x;
    int rc = pi0_tensor_to_f32(t, 0, (int64_t)rows * cols, pb->data + off);
    if (rc) pb->err = rc;
    x.off = off;
    x.buf = (pi0_buf *)1; /* marks "in params" until fixed up */
    return x;
}

static void fix_mat(pi0_model *m, pi0_mat *x) {
    if (x->buf != (pi0_buf *)1) return;
    x->buf = m->params;
    x->off *= sizeof(float);
}

static int mk_weight(pi0_model *m, const pi0_tensor *t, pi0_weight **out) {
    int64_t n = t->shape[0];
    int64_t k = pi0_tensor_numel(t) / (n ? n : 1);
    int rc = pi0_weight_create(m->dev, t->data, t->dtype, (int)n, (int)k, (int)k, out);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pi0_last_error());
        return pi0_errorf(rc, "tensor %s: %s", t->name ? t->name : "?", msg);
    }
    return PI0_OK;
}

static int mk_linear(pi0_model *m, params_builder *pb, const pi0_tensor *w, const pi0_tensor *b,
                     pi0__linear *out) {
    PI0__TRY(mk_weight(m, w, &out->w));
    if (b && pi0_tensor_present(b)) out->b = pb_tensor(pb, b, 1, (int)b->shape[0]);
    return PI0_OK;
}

/* ---- time conditioning (PI0-SPEC.md §5), computed once per step at load ---------- */

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
static int load_linear_make(pi0_model *m, const pi0_tensor *w, int col, int k,
                            const pi0_tensor *b, load_linear *out) {
    int n = (int)w->shape[0], ld = (int)(pi0_tensor_numel(w) / w->shape[0]);
    const char *data = (const char *)w->data + (size_t)col * pi0_dtype_size(w->dtype);
    memset(out, 0, sizeof *out);
    PI0__TRY(pi0_weight_create(m->dev, data, w->dtype, n, k, ld, &out->l.w));
    if (!b) return PI0_OK;
    float *hb = malloc((size_t)n * sizeof(float));
    int rc = hb ? pi0_tensor_to_f32(b, 0, n, hb) : PI0_ENOMEM;
    if (!rc) rc = pi0_buf_alloc(m->dev, (size_t)n * 4, &out->bias);
    if (!rc) rc = pi0_dev_upload(m->sa, out->bias, 0, hb, (size_t)n * 4);
    if (!rc) rc = pi0_stream_sync(m->sa);
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
 * action half (columns [0, E)) becomes m->time_a. */
static int precompute_pi0(pi0_model *m, pi0_mat temb) {
    const pi0_weights *w = m->w;
    int E = m->cfg.expert.width, T = m->num_steps;
    load_linear tl;
    PI0__TRY(pi0_buf_alloc(m->dev, (size_t)T * E * 4, &m->cond));
    PI0__TRY(load_linear_make(m, &w->time_in_w, E, E, &w->time_in_b, &tl));
    int rc =
        pi0__linear_run(m->sa, pi0_mat_f32(m->cond, 0, T, E), temb, &tl.l, PI0_ACT_NONE, 0);
    int src = pi0_stream_sync(m->sa);
    load_linear_free(&tl);
    PI0__TRY(rc ? rc : src);
    const pi0_tensor *ti = &w->time_in_w;
    return pi0_weight_create(m->dev, ti->data, ti->dtype, E, E, 2 * E, &m->time_a.w);
}

/* π0.5: cond_s = silu(time_mlp_out(silu(time_mlp_in(temb(t_s))))), then every adaptive
 * norm's dense layer → [scale | shift | gate] per step: cond [(2·depth + 1), T, 3E]. */
static int precompute_pi05(pi0_model *m, pi0_mat temb, pi0_mat tmp) {
    const pi0_weights *w = m->w;
    int E = m->cfg.expert.width, T = m->num_steps, depth = m->cfg.expert.depth;
    int nblk = 2 * depth + 1;
    load_linear tin, tout;
    PI0__TRY(pi0_buf_alloc(m->dev, (size_t)nblk * T * 3 * E * 4, &m->cond));
    PI0__TRY(load_linear_make(m, &w->time_in_w, 0, E, &w->time_in_b, &tin));
    int rc = load_linear_make(m, &w->time_out_w, 0, E, &w->time_out_b, &tout);
    if (rc) {
        load_linear_free(&tin);
        return rc;
    }
    rc = pi0__linear_run(m->sa, tmp, temb, &tin.l, PI0_ACT_SILU, 0);
    if (!rc) rc = pi0__linear_run(m->sa, temb, tmp, &tout.l, PI0_ACT_SILU, 0); /* temb = cond */
    for (int i = 0; i < nblk && !rc; i++) {
        const pi0_tensor *dw = i == nblk - 1 ? &w->expert_norm
                               : i % 2 == 0  ? &w->expert[i / 2].in_norm
                                             : &w->expert[i / 2].post_norm;
        const pi0_tensor *db = i == nblk - 1 ? &w->expert_norm_b
                               : i % 2 == 0  ? &w->expert[i / 2].in_norm_b
                                             : &w->expert[i / 2].post_norm_b;
        load_linear d;
        rc = load_linear_make(m, dw, 0, E, db, &d);
        if (rc) break;
        pi0_mat out = pi0_mat_f32(m->cond, (size_t)i * T * 3 * E * 4, T, 3 * E);
        rc = pi0__linear_run(m->sa, out, temb, &d.l, PI0_ACT_NONE, 0);
        int src = pi0_stream_sync(m->sa); /* before the weight goes away */
        if (!rc) rc = src;
        load_linear_free(&d);
    }
    int src = pi0_stream_sync(m->sa);
    load_linear_free(&tin);
    load_linear_free(&tout);
    return rc ? rc : src;
}

/* openpi's schedule (sample_actions), in float32: dt = −1/T rounded to float, t_0 = 1 and
 * t_{s+1} = t_s + dt accumulated in float (0.9f, 0.79999995f, … for T = 10, not 1 − s/T).
 * The Euler step uses the same float dt. */
static float step_dt(int num_steps) {
    return (float)(-1.0 / num_steps);
}

/* The time conditioning depends only on the step index (t_s above): computed here once. */
static int precompute_cond(pi0_model *m) {
    int E = m->cfg.expert.width, T = m->num_steps;
    pi0_buf *temb = NULL, *tmp = NULL;
    float *h = calloc((size_t)T * (size_t)E, sizeof(float));
    if (!h) return PI0_ENOMEM;
    float t = 1.0f, dt = step_dt(T);
    for (int i = 0; i < T; i++, t += dt)
        time_embedding((double)t, E, h + (size_t)i * E);
    int rc = pi0_buf_alloc(m->dev, (size_t)T * E * 4, &temb);
    if (!rc) rc = pi0_buf_alloc(m->dev, (size_t)T * E * 4, &tmp);
    if (!rc) rc = pi0_dev_upload(m->sa, temb, 0, h, (size_t)T * E * 4);
    if (!rc) rc = pi0_stream_sync(m->sa);
    if (!rc) {
        pi0_mat te = pi0_mat_f32(temb, 0, T, E);
        rc = m->cfg.pi05 ? precompute_pi05(m, te, pi0_mat_f32(tmp, 0, T, E))
                         : precompute_pi0(m, te);
    }
    pi0_stream_sync(m->sa);
    pi0_buf_free(temb);
    pi0_buf_free(tmp);
    free(h);
    return rc;
}

/* ---- load -------------------------------------------------------------------------- */

static int alloc_f32(pi0_model *m, pi0_buf **b, size_t rows, size_t cols) {
    return pi0_buf_alloc(m->dev, rows * cols * 4 + 64, b);
}

static int load_weights(pi0_model *m, params_builder *pb) {
    const pi0_weights *w = m->w;
    const pi0_config *c = &m->cfg;
    int vw = c->vision.width, W = c->vlm.width, E = c->expert.width;

    PI0__TRY(mk_linear(m, pb, &w->patch_w, &w->patch_b, &m->patch));
    m->pos_emb = pb_tensor(pb, &w->pos_emb, c->n_patches, vw);
    m->vis = calloc((size_t)c->vision.depth, sizeof *m->vis);
    if (!m->vis) return PI0_ENOMEM;
    for (int l = 0; l < c->vision.depth; l++) {
        const pi0_vision_layer *s = &w->vision[l];
        pi0__vision_layer *d = &m->vis[l];
        d->ln1_w = pb_tensor(pb, &s->ln1_w, 1, vw);
        d->ln1_b = pb_tensor(pb, &s->ln1_b, 1, vw);
        d->ln2_w = pb_tensor(pb, &s->ln2_w, 1, vw);
        d->ln2_b = pb_tensor(pb, &s->ln2_b, 1, vw);
        PI0__TRY(mk_linear(m, pb, &s->q_w, &s->q_b, &d->q));
        PI0__TRY(mk_linear(m, pb, &s->k_w, &s->k_b, &d->k));
        PI0__TRY(mk_linear(m, pb, &s->v_w, &s->v_b, &d->v));
        PI0__TRY(mk_linear(m, pb, &s->o_w, &s->o_b, &d->o));
        PI0__TRY(mk_linear(m, pb, &s->fc1_w, &s->fc1_b, &d->fc1));
        PI0__TRY(mk_linear(m, pb, &s->fc2_w, &s->fc2_b, &d->fc2));
    }
    m->post_ln_w = pb_tensor(pb, &w->post_ln_w, 1, vw);
    m->post_ln_b = pb_tensor(pb, &w->post_ln_b, 1, vw);
    PI0__TRY(mk_linear(m, pb, &w->proj_w, &w->proj_b, &m->proj));
    PI0__TRY(mk_weight(m, &w->embed, &m->embed));

    m->vlm = calloc((size_t)c->vlm.depth, sizeof *m->vlm);
    m->exp = calloc((size_t)c->expert.depth, sizeof *m->exp);
    if (!m->vlm || !m->exp) return PI0_ENOMEM;
    for (int e = 0; e < 2; e++) {
        int depth = e ? c->expert.depth : c->vlm.depth, width = e ? E : W;
        for (int l = 0; l < depth; l++) {
            const pi0_gemma_layer *s = e ? &w->expert[l] : &w->vlm[l];
            pi0__gemma_layer *d = e ? &m->exp[l] : &m->vlm[l];
            if (!(e && c->pi05)) {
                d->in_norm = pb_tensor(pb, &s->in_norm, 1, width);
                d->post_norm = pb_tensor(pb, &s->post_norm, 1, width);
            }
            /* the last VLM layer needs only K and V */
            int kv_only = !e && l == depth - 1;
            PI0__TRY(mk_weight(m, &s->k, &d->k));
            PI0__TRY(mk_weight(m, &s->v, &d->v));
            if (kv_only) continue;
            PI0__TRY(mk_weight(m, &s->q, &d->q));
            PI0__TRY(mk_weight(m, &s->o, &d->o));
            PI0__TRY(mk_weight(m, &s->gate, &d->gate));
            PI0__TRY(mk_weight(m, &s->up, &d->up));
            PI0__TRY(mk_weight(m, &s->down, &d->down));
        }
    }
    if (!c->pi05) {
        m->exp_norm = pb_tensor(pb, &w->expert_norm, 1, E);
        PI0__TRY(mk_linear(m, pb, &w->state_proj_w, &w->state_proj_b, &m->state_proj));
        PI0__TRY(mk_linear(m, pb, &w->time_out_w, &w->time_out_b, &m->time_out));
    }
    PI0__TRY(mk_linear(m, pb, &w->action_in_w, &w->action_in_b, &m->action_in));
    PI0__TRY(mk_linear(m, pb, &w->action_out_w, &w->action_out_b, &m->action_out));
    return pb->err;
}

static void fix_all(pi0_model *m) {
    const pi0_config *c = &m->cfg;
    fix_mat(m, &m->patch.b);
    fix_mat(m, &m->pos_emb);
    for (int l = 0; l < c->vision.depth; l++) {
        pi0__vision_layer *d = &m->vis[l];
        pi0_mat *ms[] = {&d->ln1_w, &d->ln1_b, &d->ln2_w, &d->ln2_b, &d->q.b,
                         &d->k.b,   &d->v.b,   &d->o.b,   &d->fc1.b, &d->fc2.b};
        for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
            fix_mat(m, ms[i]);
    }
    fix_mat(m, &m->post_ln_w);
    fix_mat(m, &m->post_ln_b);
    fix_mat(m, &m->proj.b);
    for (int l = 0; l < c->vlm.depth; l++) {
        fix_mat(m, &m->vlm[l].in_norm);
        fix_mat(m, &m->vlm[l].post_norm);
    }
    for (int l = 0; l < c->expert.depth; l++) {
        fix_mat(m, &m->exp[l].in_norm);
        fix_mat(m, &m->exp[l].post_norm);
    }
    fix_mat(m, &m->exp_norm);
    pi0__linear *ls[] = {&m->state_proj, &m->action_in, &m->action_out, &m->time_out};
    for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
        fix_mat(m, &ls[i]->b);
}

static int alloc_activations(pi0_model *m) {
    const pi0_config *c = &m->cfg;
    size_t C = PI0_MAX_CAMERAS, np_ = (size_t)c->n_patches, vw = (size_t)c->vision.width;
    size_t pp = 3 * (size_t)c->patch * (size_t)c->patch;
    size_t N = (size_t)m->n_max, S = (size_t)m->suffix, H = (size_t)c->action_horizon;
    size_t A = (size_t)c->action_dim, W = (size_t)c->vlm.width, E = (size_t)c->expert.width;
    size_t qd = (size_t)(c->vlm.n_heads * c->vlm.head_dim);
    size_t eqd = (size_t)(c->expert.n_heads * c->expert.head_dim);
    size_t kd = (size_t)(c->vlm.n_kv_heads * c->vlm.head_dim);

    PI0__TRY(alloc_f32(m, &m->patches, C * np_, pp));
    pi0_buf **vb[] = {&m->vh, &m->vx, &m->vq, &m->vk, &m->vv, &m->va};
    for (size_t i = 0; i < 6; i++)
        PI0__TRY(alloc_f32(m, vb[i], C * np_, vw));
    PI0__TRY(alloc_f32(m, &m->vm, C * np_, (size_t)c->vision.mlp));
    PI0__TRY(alloc_f32(m, &m->ph, N, W));
    PI0__TRY(alloc_f32(m, &m->px, N, W));
    PI0__TRY(alloc_f32(m, &m->pq, N, qd));
    PI0__TRY(alloc_f32(m, &m->pa, N, qd));
    PI0__TRY(alloc_f32(m, &m->pg, N, (size_t)c->vlm.mlp));
    PI0__TRY(alloc_f32(m, &m->pu, N, (size_t)c->vlm.mlp));
    PI0__TRY(alloc_f32(m, &m->ids, 1, (size_t)c->max_token_len));
    if (m->keep_vision) PI0__TRY(alloc_f32(m, &m->vis_copy, C * np_, W));

    PI0__TRY(alloc_f32(m, &m->xt, H, A));
    PI0__TRY(alloc_f32(m, &m->vt, H, A));
    PI0__TRY(alloc_f32(m, &m->state, 1, (size_t)c->state_dim + 1));
    PI0__TRY(alloc_f32(m, &m->st_tok, 1, E));
    PI0__TRY(alloc_f32(m, &m->ai, H, E));
    PI0__TRY(alloc_f32(m, &m->et, H, E));
    PI0__TRY(alloc_f32(m, &m->eh, S, E));
    PI0__TRY(alloc_f32(m, &m->ex, S, E));
    PI0__TRY(alloc_f32(m, &m->eo, S, E));
    PI0__TRY(alloc_f32(m, &m->eq, S, eqd));
    PI0__TRY(alloc_f32(m, &m->ea, S, eqd));
    PI0__TRY(alloc_f32(m, &m->eg, S, (size_t)c->expert.mlp));
    PI0__TRY(alloc_f32(m, &m->eu, S, (size_t)c->expert.mlp));

    for (int i = 0; i < PI0_PREFIX_SLOTS; i++) {
        m->slots[i].index = i;
        PI0__TRY(pi0_buf_alloc(m->dev, (size_t)c->vlm.depth * 2 * (N + S) * kd * 4,
                               &m->slots[i].kv));
    }

    /* positions 0 … N + S − 1 */
    PI0__TRY(pi0_buf_alloc(m->dev, (N + S) * 4, &m->pos));
    int32_t *iota = malloc((N + S) * 4);
    if (!iota) return PI0_ENOMEM;
    for (size_t i = 0; i < N + S; i++)
        iota[i] = (int32_t)i;
    int rc = pi0_dev_upload(m->sa, m->pos, 0, iota, (N + S) * 4);
    int src = pi0_stream_sync(m->sa);
    free(iota);
    PI0__TRY(rc);
    PI0__TRY(src);

    m->h_patches = malloc(C * np_ * pp * sizeof(float));
    m->h_ids = malloc((size_t)c->max_token_len * sizeof(int32_t));
    m->h_noise = malloc(H * A * sizeof(float));
    if (!m->h_patches || !m->h_ids || !m->h_noise) return PI0_ENOMEM;

    /* attention scratch, sized by the backend for the largest calls: the VLM prefix and
     * the expert suffix (at most N + S queries over N + S keys; the expert's heads are the
     * VLM's, checked at load), SigLIP within one camera */
    PI0__TRY(pi0_dev_reserve_attention(m->dev, (int)(N + S), (int)(N + S), c->vlm.n_heads,
                                       c->vlm.n_kv_heads, c->vlm.head_dim));
    return pi0_dev_reserve_attention(m->dev, (int)np_, (int)np_, c->vision.n_heads,
                                     c->vision.n_heads, c->vision.head_dim);
}

int pi0_model_load(const char *dir, const pi0_model_opts *opts, pi0_model **out) {
    pi0_model_opts o = {0};
    if (opts) o = *opts;
    if (!dir || !out) return pi0_errorf(PI0_EINVAL, "pi0_model_load: NULL argument");
    pi0_model *m = calloc(1, sizeof *m);
    if (!m) return PI0_ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    params_builder pb = {0};
    int rc = pi0_weights_load(dir, &m->w);
    if (rc) goto fail;
    m->cfg = m->w->cfg;
    const pi0_config *c = &m->cfg;
    if (o.num_steps < 0 || o.num_steps > 1000) {
        rc = pi0_errorf(PI0_EINVAL, "num_steps %d out of range [1, 1000]", o.num_steps);
        goto fail;
    }
    m->num_steps = o.num_steps ? o.num_steps : c->num_steps;
    if (m->num_steps <= 0) {
        rc = pi0_errorf(PI0_ECONFIG, "%s: num_steps %d must be positive", dir, m->num_steps);
        goto fail;
    }
    if (c->vlm.head_dim != c->expert.head_dim || c->vlm.n_kv_heads != c->expert.n_kv_heads ||
        c->vlm.depth != c->expert.depth) {
        rc = pi0_errorf(PI0_ECONFIG,
                        "%s: VLM and expert must share depth, head_dim and kv heads", dir);
        goto fail;
    }
    m->n_max = PI0_MAX_CAMERAS * c->n_patches + c->max_token_len;
    m->suffix = c->action_horizon + (c->pi05 ? 0 : 1);
    m->keep_vision = o.keep_vision;
    pi0__rng_seed(&m->rng, o.seed);

    pi0_dev_opts dopts = {o.n_threads, o.cpus, o.n_cpus, 0};
    if ((rc = pi0_dev_open(o.backend ? o.backend : "cpu", &dopts, &m->dev))) goto fail;
    if ((rc = pi0_stream_create(m->dev, &m->sa))) goto fail;
    if ((rc = pi0_stream_create(m->dev, &m->sb))) goto fail;
    if ((rc = load_weights(m, &pb))) goto fail;
    if ((rc = precompute_cond(m))) goto fail;
    if (pb.err) {
        rc = pb.err;
        goto fail;
    }
    if ((rc = pi0_buf_alloc(m->dev, pb.n * sizeof(float) + 64, &m->params))) goto fail;
    if ((rc = pi0_dev_upload(m->sa, m->params, 0, pb.data, pb.n * sizeof(float)))) goto fail;
    if ((rc = pi0_stream_sync(m->sa))) goto fail;
    free(pb.data);
    pb.data = NULL;
    fix_all(m);
    if ((rc = alloc_activations(m))) goto fail;
    m->prep_w = o.max_image_w > 0 ? o.max_image_w : 1920;
    m->prep_h = o.max_image_h > 0 ? o.max_image_h : 1200;
    if ((rc = pi0_preproc_create(m->prep_w, m->prep_h, &m->prep))) goto fail;
    *out = m;
    return PI0_OK;
fail:
    free(pb.data);
    {
        /* keep the first error's detail across the cleanup */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pi0_last_error());
        pi0_model_destroy(m);
        pi0_errorf(rc, "%s", msg);
    }
    return rc;
}

int pi0_model_destroy(pi0_model *m) {
    if (!m) return PI0_OK;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < PI0_PREFIX_SLOTS; i++) {
        if (m->slots[i].held) {
            pthread_mutex_unlock(&m->lock);
            return pi0_errorf(PI0_EBUSY, "pi0_model_destroy: prefix slot %d still held", i);
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (m->sa) pi0_stream_sync(m->sa);
    if (m->sb) pi0_stream_sync(m->sb);
    const pi0_config *c = &m->cfg;
    pi0_buf *bufs[] = {m->params, m->cond,   m->pos, m->patches, m->vh,       m->vx, m->vq,
                       m->vk,     m->vv,     m->va,  m->vm,      m->ph,       m->px, m->pq,
                       m->pa,     m->pg,     m->pu,  m->ids,     m->vis_copy, m->xt, m->vt,
                       m->state,  m->st_tok, m->ai,  m->et,      m->eh,       m->ex, m->eo,
                       m->eq,     m->ea,     m->eg,  m->eu};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pi0_buf_free(bufs[i]);
    for (int i = 0; i < PI0_PREFIX_SLOTS; i++)
        pi0_buf_free(m->slots[i].kv);
    pi0_weight_destroy(m->patch.w);
    if (m->vis) {
        for (int l = 0; l < c->vision.depth; l++) {
            pi0__vision_layer *d = &m->vis[l];
            pi0_weight *ws[] = {d->q.w, d->k.w, d->v.w, d->o.w, d->fc1.w, d->fc2.w};
            for (size_t i = 0; i < 6; i++)
                pi0_weight_destroy(ws[i]);
        }
    }
    pi0_weight_destroy(m->proj.w);
    pi0_weight_destroy(m->embed);
    for (int e = 0; e < 2; e++) {
        pi0__gemma_layer *g = e ? m->exp : m->vlm;
        int depth = e ? c->expert.depth : c->vlm.depth;
        if (!g) continue;
        for (int l = 0; l < depth; l++) {
            pi0_weight *ws[] = {g[l].q, g[l].k, g[l].v, g[l].o, g[l].gate, g[l].up, g[l].down};
            for (size_t i = 0; i < 7; i++)
                pi0_weight_destroy(ws[i]);
        }
    }
    pi0_weight *hs[] = {m->state_proj.w, m->action_in.w, m->action_out.w, m->time_a.w,
                        m->time_out.w};
    for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++)
        pi0_weight_destroy(hs[i]);
    pi0_stream_destroy(m->sa);
    pi0_stream_destroy(m->sb);
    pi0_dev_close(m->dev);
    free(m->vis);
    free(m->vlm);
    free(m->exp);
    free(m->h_patches);
    pi0_preproc_destroy(m->prep);
    free(m->h_ids);
    free(m->h_noise);
    pi0_weights_destroy(m->w);
    pthread_mutex_destroy(&m->lock);
    free(m);
    return PI0_OK;
}

void pi0_model_get_info(const pi0_model *m, pi0_model_info *info) {
    const pi0_config *c = &m->cfg;
    memset(info, 0, sizeof *info);
    info->pi05 = c->pi05;
    info->prompt_state = c->discrete_state_input;
    info->action_dim = c->action_dim;
    info->action_horizon = c->action_horizon;
    info->state_dim = c->state_dim;
    info->num_steps = m->num_steps;
    info->max_token_len = c->max_token_len;
    info->vocab = c->vlm.vocab;
    info->image_size = c->image;
    info->n_patches = c->n_patches;
    info->vlm_depth = c->vlm.depth;
    info->vlm_width = c->vlm.width;
    info->kv_dim = c->vlm.n_kv_heads * c->vlm.head_dim;
    info->has_norm_stats = m->w->has_norm_stats;
}

/* ---- slots ------------------------------------------------------------------------- */

static pi0_prefix *slot_acquire(pi0_model *m) {
    pi0_prefix *p = NULL;
    pthread_mutex_lock(&m->lock);
    for (int i = 0; i < PI0_PREFIX_SLOTS && !p; i++) {
        if (!m->slots[i].held) {
            p = &m->slots[i];
            p->held = 1;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return p;
}

void pi0_prefix_release(pi0_model *m, pi0_prefix *p) {
    if (!m || !p) return;
    pthread_mutex_lock(&m->lock);
    p->held = 0;
    pthread_mutex_unlock(&m->lock);
}

int pi0_prefix_len(const pi0_prefix *p) {
    return p ? p->n_valid : 0;
}

/* ---- encode ------------------------------------------------------------------------ */

static int check_obs(const pi0_model *m, const pi0_observation *obs, int *n_cams, int *n_tok) {
    const pi0_config *c = &m->cfg;
    *n_cams = 0;
    *n_tok = 0;
    for (int i = 0; i < PI0_MAX_CAMERAS; i++) {
        const pi0_image_view *im = &obs->images[i];
        if (!im->valid) continue;
        if (!im->rgb || im->width <= 0 || im->height <= 0 || im->width > 16384 ||
            im->height > 16384 || (im->stride && im->stride < 3 * im->width))
            return pi0_errorf(PI0_EINVAL, "camera %d: bad image %dx%d (stride %d)", i,
                              im->width, im->height, im->stride);
        (*n_cams)++;
    }
    if (obs->n_tokens < 0 || obs->n_tokens > c->max_token_len)
        return pi0_errorf(PI0_ERANGE, "%d prompt tokens, the model takes at most %d",
                          obs->n_tokens, c->max_token_len);
    if (obs->n_tokens && !obs->tokens)
        return pi0_errorf(PI0_EINVAL, "pi0_model_encode: tokens is NULL");
    for (int i = 0; i < obs->n_tokens; i++) {
        if (obs->token_mask && !obs->token_mask[i]) continue;
        if (obs->tokens[i] < 0 || obs->tokens[i] >= c->vlm.vocab)
            return pi0_errorf(PI0_ERANGE, "token %d: id %d outside the vocabulary [0, %d)", i,
                              (int)obs->tokens[i], c->vlm.vocab);
        (*n_tok)++;
    }
    if (*n_cams + *n_tok == 0)
        return pi0_errorf(PI0_EINVAL, "observation has no valid camera and no prompt token");
    return PI0_OK;
}

/* The preprocessor's scratch is sized at load for opts.max_image_w × max_image_h; a
 * larger image grows it here (the only allocation encode may do, once per new maximum). */
static int ensure_preproc(pi0_model *m, int w, int h) {
    if (m->prep && w <= m->prep_w && h <= m->prep_h) return PI0_OK;
    int nw = w > m->prep_w ? w : m->prep_w, nh = h > m->prep_h ? h : m->prep_h;
    pi0_preproc *pp = NULL;
    PI0__TRY(pi0_preproc_create(nw, nh, &pp));
    pi0_preproc_destroy(m->prep);
    m->prep = pp;
    m->prep_w = nw;
    m->prep_h = nh;
    return PI0_OK;
}

int pi0_model_encode(pi0_model *m, const pi0_observation *obs, pi0_prefix **out,
                     pi0_timing *timing) {
    if (!m || !obs || !out) return pi0_errorf(PI0_EINVAL, "pi0_model_encode: NULL argument");
    const pi0_config *c = &m->cfg;
    int n_cams, n_tok;
    double t0 = (double)pi0__now_ns() * 1e-6;
    PI0__TRY(check_obs(m, obs, &n_cams, &n_tok));
    pi0_prefix *p = slot_acquire(m);
    if (!p) return pi0_errorf(PI0_EAGAIN, "pi0_model_encode: both prefix slots are held");

    int rc = PI0_OK;
    size_t pp = 3 * (size_t)c->patch * (size_t)c->patch;
    size_t per_cam = (size_t)c->n_patches * pp;
    int ci = 0;
    for (int i = 0; i < PI0_MAX_CAMERAS && !rc; i++) {
        const pi0_image_view *im = &obs->images[i];
        if (!im->valid) continue;
        rc = ensure_preproc(m, im->width, im->height);
        if (!rc)
            rc = pi0_preproc_patches(m->prep, im->rgb, im->width, im->height,
                                     im->stride ? (size_t)im->stride : 3 * (size_t)im->width,
                                     c->patch, m->h_patches + (size_t)ci * per_cam);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", pi0_last_error());
            rc = pi0_errorf(rc, "camera %d: %s", i, msg);
        }
        ci++;
    }
    int nt = 0;
    for (int i = 0; i < obs->n_tokens; i++)
        if (!obs->token_mask || obs->token_mask[i]) m->h_ids[nt++] = obs->tokens[i];
    if (!rc && n_cams)
        rc = pi0_dev_upload(m->sa, m->patches, 0, m->h_patches, (size_t)n_cams * per_cam * 4);
    if (!rc && n_tok) rc = pi0_dev_upload(m->sa, m->ids, 0, m->h_ids, (size_t)n_tok * 4);
    double t1 = (double)pi0__now_ns() * 1e-6;
    if (!rc && n_cams) rc = pi0__vision_forward(m, n_cams);
    if (!rc && m->keep_vision && n_cams)
        rc = pi0_dev_copy(m->sa, m->vis_copy, 0, m->ph, 0,
                          (size_t)n_cams * (size_t)c->n_patches * (size_t)c->vlm.width * 4);
    /* a sync between the stages makes the vision/prefix split exact; on the cpu backend it
     * costs nothing (the host would only wait later), on a GPU one queue drain */
    int src = pi0_stream_sync(m->sa);
    if (!rc) rc = src;
    double t2 = (double)pi0__now_ns() * 1e-6;
    if (!rc) rc = pi0__prefix_forward(m, p, n_cams * c->n_patches, n_tok);
    src = pi0_stream_sync(m->sa);
    if (!rc) rc = src;
    double t3 = (double)pi0__now_ns() * 1e-6;
    if (rc) {
        pi0_prefix_release(m, p);
        return rc;
    }
    p->n_cams = n_cams;
    m->vis_rows = n_cams * c->n_patches;
    if (timing) {
        timing->preprocess_ms = t1 - t0;
        timing->vision_ms = t2 - t1;
        timing->prefix_ms = t3 - t2;
        timing->total_ms = t3 - t0;
    }
    *out = p;
    return PI0_OK;
}

/* ---- denoise ----------------------------------------------------------------------- */

/* Standard normal pairs by Box–Muller from 53-bit uniforms (u1 in (0, 1]). */
static void draw_noise(pi0_model *m, float *x, size_t n) {
    for (size_t i = 0; i < n; i += 2) {
        double u1 = ((double)(pi0__rng_next(&m->rng) >> 11) + 1.0) * 0x1.0p-53;
        double u2 = (double)(pi0__rng_next(&m->rng) >> 11) * 0x1.0p-53;
        double r = sqrt(-2.0 * log(u1));
        x[i] = (float)(r * cos(2.0 * M_PI * u2));
        if (i + 1 < n) x[i + 1] = (float)(r * sin(2.0 * M_PI * u2));
    }
}

static int check_slot(const pi0_model *m, const pi0_prefix *p) {
    if (!p || p < m->slots || p >= m->slots + PI0_PREFIX_SLOTS || !p->held)
        return pi0_errorf(PI0_EINVAL, "not a held prefix slot of this model");
    return PI0_OK;
}

/* π0: uploads the caller's state (read before the caller's sync: the API functions sync
 * before returning) and enqueues the state token's per-denoise work on slot p. */
static int begin_state(pi0_model *m, pi0_prefix *p, const float *state) {
    const pi0_config *c = &m->cfg;
    if (c->pi05) return PI0_OK;
    if (!state) return pi0_errorf(PI0_EINVAL, "π0 needs a state vector (got NULL)");
    PI0__TRY(pi0_dev_upload(m->sb, m->state, 0, state, (size_t)c->state_dim * 4));
    return pi0__expert_begin(m, p);
}

int pi0_model_denoise(pi0_model *m, const pi0_prefix *pc, const float *state,
                      const float *noise, float *chunk, pi0_timing *timing) {
    if (!m || !chunk) return pi0_errorf(PI0_EINVAL, "pi0_model_denoise: NULL argument");
    PI0__TRY(check_slot(m, pc));
    pi0_prefix *p = (pi0_prefix *)pc; /* only its suffix tail rows are written */
    const pi0_config *c = &m->cfg;
    size_t HA = (size_t)c->action_horizon * (size_t)c->action_dim;
    double t0 = (double)pi0__now_ns() * 1e-6;
    if (!noise) {
        draw_noise(m, m->h_noise, HA);
        noise = m->h_noise;
    }
    int rc = begin_state(m, p, state);
    if (!rc) rc = pi0_dev_upload(m->sb, m->xt, 0, noise, HA * 4);
    pi0_mat xt = pi0_mat_f32(m->xt, 0, c->action_horizon, c->action_dim);
    pi0_mat vt = pi0_mat_f32(m->vt, 0, c->action_horizon, c->action_dim);
    float dt = step_dt(m->num_steps); /* x += dt · v, as openpi */
    for (int i = 0; i < m->num_steps && !rc; i++) {
        rc = pi0__expert_velocity(m, p, i);
        if (!rc) rc = pi0_dev_unary(m->sb, PI0_UN_SCALE, vt, vt, dt);
        if (!rc) rc = pi0_dev_binary(m->sb, PI0_BIN_ADD, xt, xt, vt);
    }
    if (!rc) rc = pi0_dev_download(m->sb, chunk, m->xt, 0, HA * 4);
    int src = pi0_stream_sync(m->sb);
    if (!rc) rc = src;
    double t1 = (double)pi0__now_ns() * 1e-6;
    if (!rc && timing) {
        timing->denoise_ms = t1 - t0;
        timing->total_ms = t1 - t0;
    }
    return rc;
}

int pi0_model_velocity(pi0_model *m, const pi0_prefix *pc, const float *state, const float *x_t,
                       int step, float *v) {
    if (!m || !x_t || !v) return pi0_errorf(PI0_EINVAL, "pi0_model_velocity: NULL argument");
    PI0__TRY(check_slot(m, pc));
    if (step < 0 || step >= m->num_steps)
        return pi0_errorf(PI0_ERANGE, "step %d outside [0, %d)", step, m->num_steps);
    const pi0_config *c = &m->cfg;
    size_t HA = (size_t)c->action_horizon * (size_t)c->action_dim;
    pi0_prefix *p = (pi0_prefix *)pc; /* only its suffix tail rows are written */
    int rc = begin_state(m, p, state);
    if (!rc) rc = pi0_dev_upload(m->sb, m->xt, 0, x_t, HA * 4);
    if (!rc) rc = pi0__expert_velocity(m, p, step);
    if (!rc) rc = pi0_dev_download(m->sb, v, m->vt, 0, HA * 4);
    int src = pi0_stream_sync(m->sb);
    return rc ? rc : src;
}

int pi0_prefix_read_kv(pi0_model *m, const pi0_prefix *p, int layer, float *k, float *v) {
    if (!m) return pi0_errorf(PI0_EINVAL, "pi0_prefix_read_kv: NULL model");
    PI0__TRY(check_slot(m, p));
    if (layer < 0 || layer >= m->cfg.vlm.depth)
        return pi0_errorf(PI0_ERANGE, "layer %d outside [0, %d)", layer, m->cfg.vlm.depth);
    size_t bytes =
        (size_t)p->n_valid * (size_t)(m->cfg.vlm.n_kv_heads * m->cfg.vlm.head_dim) * 4;
    int rc = PI0_OK;
    if (k) rc = pi0_dev_download(m->sb, k, p->kv, pi0__kv_off(m, layer, 0), bytes);
    if (!rc && v) rc = pi0_dev_download(m->sb, v, p->kv, pi0__kv_off(m, layer, 1), bytes);
    int src = pi0_stream_sync(m->sb);
    return rc ? rc : src;
}

int pi0_model_read_vision(pi0_model *m, float *out, size_t cap_floats, int *n_rows) {
    if (!m || !n_rows) return pi0_errorf(PI0_EINVAL, "pi0_model_read_vision: NULL argument");
    if (!m->keep_vision)
        return pi0_errorf(PI0_ENOTSUP, "image tokens not kept (load with opts.keep_vision)");
    size_t n = (size_t)m->vis_rows * (size_t)m->cfg.vlm.width;
    *n_rows = m->vis_rows;
    if (n > cap_floats)
        return pi0_errorf(PI0_ERANGE, "need %zu floats, have %zu", n, cap_floats);
    if (!n) return PI0_OK;
    int rc = pi0_dev_download(m->sa, out, m->vis_copy, 0, n * 4);
    int src = pi0_stream_sync(m->sa);
    return rc ? rc : src;
}

/* ---- norm stats -------------------------------------------------------------------- */

int pi0_model_normalize_state(const pi0_model *m, const float *state, int n, float *out) {
    const pi0_norm_stats *st = &m->w->state_stats;
    if (!m->w->has_norm_stats || st->dim == 0)
        return pi0_errorf(PI0_ENOENT, "model has no state norm stats (norm_stats.json)");
    if (n > st->dim || n > m->cfg.state_dim)
        return pi0_errorf(PI0_ESHAPE, "state has %d values; norm stats %d, model %d", n,
                          st->dim, m->cfg.state_dim);
    if (m->cfg.pi05 && (!st->q01 || !st->q99))
        return pi0_errorf(PI0_ENOENT, "π0.5 needs q01/q99 state norm stats");
    for (int i = 0; i < m->cfg.state_dim; i++) {
        if (i >= n) {
            out[i] = 0.0f;
        } else if (m->cfg.pi05) {
            out[i] = (state[i] - st->q01[i]) / (st->q99[i] - st->q01[i] + 1e-6f) * 2.0f - 1.0f;
        } else {
            out[i] = (state[i] - st->mean[i]) / (st->std[i] + 1e-6f);
        }
    }
    return PI0_OK;
}

int pi0_model_unnormalize_actions(const pi0_model *m, float *chunk) {
    const pi0_norm_stats *st = &m->w->action_stats;
    if (!m->w->has_norm_stats || st->dim == 0)
        return pi0_errorf(PI0_ENOENT, "model has no action norm stats (norm_stats.json)");
    if (m->cfg.pi05 && (!st->q01 || !st->q99))
        return pi0_errorf(PI0_ENOENT, "π0.5 needs q01/q99 action norm stats");
    int A = m->cfg.action_dim, d = st->dim < A ? st->dim : A;
    for (int r = 0; r < m->cfg.action_horizon; r++) {
        float *x = chunk + (size_t)r * (size_t)A;
        for (int i = 0; i < d; i++) {
            if (m->cfg.pi05)
                x[i] = (x[i] + 1.0f) / 2.0f * (st->q99[i] - st->q01[i] + 1e-6f) + st->q01[i];
            else
                x[i] = x[i] * (st->std[i] + 1e-6f) + st->mean[i];
        }
    }
    return PI0_OK;
}
