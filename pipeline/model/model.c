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

/* ---- load ------------------------------------------------------------------------- */

/* What the model itself owns besides the stages: the slots' caches, the positions, the
 * image-token copy and the host staging. */
static int alloc_model(pi0_model *m) {
    const pi0_config *c = &m->cfg;
    size_t C = PI0_MAX_CAMERAS, np_ = (size_t)c->n_patches;
    size_t pp = 3 * (size_t)c->patch * (size_t)c->patch;
    size_t N = (size_t)m->n_max, S = (size_t)m->suffix;
    size_t kd = (size_t)(c->vlm.n_kv_heads * c->vlm.head_dim);

    if (m->keep_vision)
        PI0__TRY(pi0__buf_f32(m->dev, &m->vis_copy, C * np_, (size_t)c->vlm.width));

    /* positions 0 … N + S − 1 */
    PI0__TRY(pi0_buf_alloc(m->dev, (N + S) * 4, &m->pos));
    int32_t *iota = malloc((N + S) * 4);
    if (!iota) return pi0_errorf(PI0_ENOMEM, "positions: out of memory");
    for (size_t i = 0; i < N + S; i++)
        iota[i] = (int32_t)i;
    int rc = pi0_dev_upload(m->sa, m->pos, 0, iota, (N + S) * 4);
    int src = pi0_stream_sync(m->sa);
    free(iota);
    PI0__TRY(rc);
    PI0__TRY(src);
    /* RoPE's cos/sin table for every position now, not in the first inference (both
     * towers share head_dim, checked at load, and theta) */
    PI0__TRY(pi0_dev_reserve_rope(m->dev, (int)(N + S), c->vlm.head_dim, c->rope_theta));

    for (int i = 0; i < PI0_PREFIX_SLOTS; i++) {
        pi0_prefix *p = &m->slots[i];
        p->index = i;
        p->kv.pos = m->pos;
        p->kv.rows = (int)(N + S);
        p->kv.kd = (int)kd;
        PI0__TRY(
            pi0_buf_alloc(m->dev, (size_t)c->vlm.depth * 2 * (N + S) * kd * 4, &p->kv.buf));
    }

    m->h_patches = malloc(C * np_ * pp * sizeof(float));
    m->h_ids = malloc((size_t)c->max_token_len * sizeof(int32_t));
    m->h_noise = malloc((size_t)c->action_horizon * (size_t)c->action_dim * sizeof(float));
    if (!m->h_patches || !m->h_ids || !m->h_noise)
        return pi0_errorf(PI0_ENOMEM, "host staging: out of memory");

    /* attention scratch, sized by the backend for the largest calls: the VLM prefix and
     * the expert suffix (at most N + S queries over N + S keys; the expert's heads are the
     * VLM's, checked at load), SigLIP within one camera */
    PI0__TRY(pi0_dev_reserve_attention(m->dev, (int)(N + S), (int)(N + S), c->vlm.n_heads,
                                       c->vlm.n_kv_heads, c->vlm.head_dim));
    return pi0_dev_reserve_attention(m->dev, (int)np_, (int)np_, c->vision.n_heads,
                                     c->vision.n_heads, c->vision.head_dim);
}

/* Frees a partly loaded model, keeping the first error's detail across the cleanup. */
static int load_failed(pi0_model *m, int rc) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", pi0_last_error_for(rc));
    pi0_model_destroy(m);
    return pi0_errorf(rc, "%s", msg);
}

int pi0_model_load(const char *dir, const pi0_model_opts *opts, pi0_model **out) {
    pi0_model_opts o = {0};
    if (opts) o = *opts;
    if (!dir || !out) return pi0_errorf(PI0_EINVAL, "pi0_model_load: NULL argument");
    pi0_model *m = calloc(1, sizeof *m);
    if (!m) return pi0_errorf(PI0_ENOMEM, "pi0_model_load: out of memory");
    pthread_mutex_init(&m->lock, NULL);
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

    pi0_dev_opts dopts = {o.n_threads, o.cpus, o.n_cpus, 0, (pi0_precision)o.precision};
    if ((rc = pi0_dev_open(o.backend ? o.backend : "cpu", &dopts, &m->dev))) goto fail;
    if ((rc = pi0_stream_create(m->dev, &m->sa))) goto fail;
    if ((rc = pi0_stream_create(m->dev, &m->sb))) goto fail;
    /* the robot waits for denoise: its stream goes first when encode runs alongside */
    if ((rc = pi0_stream_set_priority(m->sb, 1)) && rc != PI0_ENOTSUP) goto fail;
    rc = PI0_OK;
    if ((rc = pi0__vision_load(&m->vis, m->dev, m->sa, m->w, PI0_MAX_CAMERAS))) goto fail;
    if ((rc = pi0__vlm_load(&m->vlm, m->dev, m->sa, m->w, m->n_max))) goto fail;
    if ((rc = pi0__expert_load(&m->exp, m->dev, m->sa, m->w, m->num_steps))) goto fail;
    if ((rc = alloc_model(m))) goto fail;
    m->prep_w = o.max_image_w > 0 ? o.max_image_w : 1920;
    m->prep_h = o.max_image_h > 0 ? o.max_image_h : 1200;
    if ((rc = pi0_preproc_create(m->prep_w, m->prep_h, &m->prep))) goto fail;
    *out = m;
    return PI0_OK;
fail:
    return load_failed(m, rc);
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
    pi0__vision_free(&m->vis);
    pi0__vlm_free(&m->vlm);
    pi0__expert_free(&m->exp);
    pi0_buf_free(m->vis_copy);
    pi0_buf_free(m->pos);
    for (int i = 0; i < PI0_PREFIX_SLOTS; i++)
        pi0_buf_free(m->slots[i].kv.buf);
    pi0_stream_destroy(m->sa);
    pi0_stream_destroy(m->sb);
    pi0_dev_close(m->dev);
    free(m->h_patches);
    pi0_preproc_destroy(m->prep);
    free(m->h_conv);
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

static int is_slot(const pi0_model *m, const pi0_prefix *p) {
    return p >= m->slots && p < m->slots + PI0_PREFIX_SLOTS;
}

int pi0_prefix_release(pi0_model *m, pi0_prefix *p) {
    if (!m || !p) return PI0_OK;
    if (!is_slot(m, p))
        return pi0_errorf(PI0_EINVAL, "pi0_prefix_release: not a prefix slot of this model");
    int rc = PI0_OK;
    pthread_mutex_lock(&m->lock);
    if (p->busy)
        rc = pi0_errorf(PI0_EBUSY, "pi0_prefix_release: a denoise is running on slot %d",
                        p->index);
    else
        p->held = 0;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

/* Marks held slot p busy for one stage-B call (denoise, velocity, read_kv): release waits
 * for nothing and answers PI0_EBUSY meanwhile. Pair with slot_done. */
static int slot_use(pi0_model *m, pi0_prefix *p) {
    if (!p || !is_slot(m, p)) return pi0_errorf(PI0_EINVAL, "not a prefix slot of this model");
    int rc = PI0_OK;
    pthread_mutex_lock(&m->lock);
    if (!p->held)
        rc = pi0_errorf(PI0_EINVAL, "prefix slot %d is not held (released?)", p->index);
    else if (p->busy)
        rc = pi0_errorf(PI0_EBUSY, "prefix slot %d: another stage-B call is running on it",
                        p->index);
    else
        p->busy = 1;
    pthread_mutex_unlock(&m->lock);
    return rc;
}

static void slot_done(pi0_model *m, pi0_prefix *p) {
    pthread_mutex_lock(&m->lock);
    p->busy = 0;
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
        int bpp = im->format == PI0_IMAGE_GRAY ? 1 : 3;
        if (!im->rgb || im->width <= 0 || im->height <= 0 || im->width > 16384 ||
            im->height > 16384 || (im->stride && im->stride < bpp * im->width) ||
            im->format < PI0_IMAGE_RGB || im->format > PI0_IMAGE_GRAY)
            return pi0_errorf(PI0_EINVAL, "camera %d: bad image %dx%d (stride %d, format %d)",
                              i, im->width, im->height, im->stride, im->format);
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
    free(m->h_conv); /* regrown by ensure_conv when needed */
    m->h_conv = NULL;
    m->prep = pp;
    m->prep_w = nw;
    m->prep_h = nh;
    return PI0_OK;
}

/* RGB scratch for frames in another layout or rotated, allocated on the first such frame
 * for the preprocessor's maximum size (a one-time growth, like ensure_preproc). */
static int ensure_conv(pi0_model *m) {
    if (m->h_conv) return PI0_OK;
    m->h_conv = malloc((size_t)m->prep_w * (size_t)m->prep_h * 3);
    if (!m->h_conv) return pi0_errorf(PI0_ENOMEM, "encode: out of memory (RGB scratch)");
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
        const uint8_t *src = im->rgb;
        size_t stride = im->stride ? (size_t)im->stride
                                   : (im->format == PI0_IMAGE_GRAY ? 1 : 3) * (size_t)im->width;
        if (!rc && (im->format != PI0_IMAGE_RGB || im->rotate180)) rc = ensure_conv(m);
        if (!rc && (im->format != PI0_IMAGE_RGB || im->rotate180)) {
            /* other layouts: one pass into RGB scratch (sized with the preprocessor) */
            pi0_image_to_rgb(src, im->width, im->height, stride, im->format, im->rotate180,
                             m->h_conv);
            src = m->h_conv;
            stride = 3 * (size_t)im->width;
        }
        if (!rc)
            rc = pi0_preproc_patches(m->prep, src, im->width, im->height, stride, c->patch,
                                     m->h_patches + (size_t)ci * per_cam);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", pi0_last_error_for(rc));
            rc = pi0_errorf(rc, "camera %d: %s", i, msg);
        }
        ci++;
    }
    if (!rc && obs->images_done) rc = obs->images_done(obs->images_ctx);
    int nt = 0;
    for (int i = 0; i < obs->n_tokens; i++)
        if (!obs->token_mask || obs->token_mask[i]) m->h_ids[nt++] = obs->tokens[i];
    if (!rc && n_cams)
        rc = pi0_dev_upload(m->sa, m->vis.patches, 0, m->h_patches,
                            (size_t)n_cams * per_cam * 4);
    if (!rc && n_tok) rc = pi0_dev_upload(m->sa, m->vlm.ids, 0, m->h_ids, (size_t)n_tok * 4);
    double t1 = (double)pi0__now_ns() * 1e-6;
    int n_img = n_cams * c->n_patches;
    if (!rc && n_cams)
        rc = pi0__vision_forward(&m->vis, m->sa, n_cams, pi0__vlm_rows(&m->vlm, n_img));
    if (!rc && m->keep_vision && n_cams)
        rc = pi0_dev_copy(m->sa, m->vis_copy, 0, m->vlm.h, 0,
                          (size_t)n_cams * (size_t)c->n_patches * (size_t)c->vlm.width * 4);
    /* a sync between the stages makes the vision/prefix split exact; on the cpu backend it
     * costs nothing (the host would only wait later), on a GPU one queue drain */
    int src = pi0_stream_sync(m->sa);
    if (!rc) rc = src;
    double t2 = (double)pi0__now_ns() * 1e-6;
    if (!rc) rc = pi0__vlm_forward(&m->vlm, m->sa, &p->kv, n_img, n_tok);
    src = pi0_stream_sync(m->sa);
    if (!rc) rc = src;
    double t3 = (double)pi0__now_ns() * 1e-6;
    if (rc) {
        pi0_prefix_release(m, p);
        return rc;
    }
    p->n_valid = n_img + n_tok;
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

/* π0: uploads the caller's state (read before the caller's sync: the API functions sync
 * before returning) and enqueues the state token's per-denoise work on slot p. */
/* PI0_EINVAL naming `what` and the first index of v[0..n) that is NaN or ±Inf: a single
 * one would spread through attention into an all-NaN chunk. */
static int check_finite(const char *what, const float *v, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(v[i]))
            return pi0_errorf(PI0_EINVAL, "%s[%zu] is %g: inputs must be finite", what, i,
                              (double)v[i]);
    return PI0_OK;
}

/* The π0 state (π0.5 takes none) and the [horizon, action_dim] x_t / noise, if given. */
static int check_inputs(const pi0_model *m, const float *state, const float *x,
                        const char *xn) {
    const pi0_config *c = &m->cfg;
    if (!c->pi05 && state) PI0__TRY(check_finite("state", state, (size_t)c->state_dim));
    if (x) PI0__TRY(check_finite(xn, x, (size_t)c->action_horizon * (size_t)c->action_dim));
    return PI0_OK;
}

static int begin_state(pi0_model *m, pi0_prefix *p, const float *state) {
    const pi0_config *c = &m->cfg;
    if (c->pi05) return PI0_OK;
    if (!state) return pi0_errorf(PI0_EINVAL, "π0 needs a state vector (got NULL)");
    PI0__TRY(pi0_dev_upload(m->sb, m->exp.state, 0, state, (size_t)c->state_dim * 4));
    return pi0__expert_begin(&m->exp, m->sb, &p->kv, p->n_valid);
}

static int denoise(pi0_model *m, pi0_prefix *p, const float *state, const float *noise,
                   float *chunk, pi0_timing *timing) {
    const pi0_config *c = &m->cfg;
    size_t HA = (size_t)c->action_horizon * (size_t)c->action_dim;
    double t0 = (double)pi0__now_ns() * 1e-6;
    if (!noise) {
        draw_noise(m, m->h_noise, HA);
        noise = m->h_noise;
    }
    int rc = begin_state(m, p, state);
    if (!rc) rc = pi0_dev_upload(m->sb, m->exp.xt, 0, noise, HA * 4);
    pi0_mat xt = pi0_mat_f32(m->exp.xt, 0, c->action_horizon, c->action_dim);
    pi0_mat vt = pi0_mat_f32(m->exp.vt, 0, c->action_horizon, c->action_dim);
    float dt = pi0__step_dt(m->num_steps); /* x += dt · v, as openpi */
    for (int i = 0; i < m->num_steps && !rc; i++) {
        rc = pi0__expert_velocity(&m->exp, m->sb, &p->kv, p->n_valid, i);
        if (!rc) rc = pi0_dev_unary(m->sb, PI0_UN_SCALE, vt, vt, dt);
        if (!rc) rc = pi0_dev_binary(m->sb, PI0_BIN_ADD, xt, xt, vt);
    }
    if (!rc) rc = pi0_dev_download(m->sb, chunk, m->exp.xt, 0, HA * 4);
    int src = pi0_stream_sync(m->sb);
    if (!rc) rc = src;
    double t1 = (double)pi0__now_ns() * 1e-6;
    if (!rc && timing) {
        timing->denoise_ms = t1 - t0;
        timing->total_ms = t1 - t0;
    }
    return rc;
}

int pi0_model_denoise(pi0_model *m, pi0_prefix *p, const float *state, const float *noise,
                      float *chunk, pi0_timing *timing) {
    if (!m || !chunk) return pi0_errorf(PI0_EINVAL, "pi0_model_denoise: NULL argument");
    PI0__TRY(check_inputs(m, state, noise, "noise"));
    PI0__TRY(slot_use(m, p));
    int rc = denoise(m, p, state, noise, chunk, timing);
    slot_done(m, p);
    return rc;
}

int pi0_model_velocity(pi0_model *m, pi0_prefix *p, const float *state, const float *x_t,
                       int step, float *v) {
    if (!m || !x_t || !v) return pi0_errorf(PI0_EINVAL, "pi0_model_velocity: NULL argument");
    if (step < 0 || step >= m->num_steps)
        return pi0_errorf(PI0_ERANGE, "step %d outside [0, %d)", step, m->num_steps);
    PI0__TRY(check_inputs(m, state, x_t, "x_t"));
    PI0__TRY(slot_use(m, p));
    const pi0_config *c = &m->cfg;
    size_t HA = (size_t)c->action_horizon * (size_t)c->action_dim;
    int rc = begin_state(m, p, state);
    if (!rc) rc = pi0_dev_upload(m->sb, m->exp.xt, 0, x_t, HA * 4);
    if (!rc) rc = pi0__expert_velocity(&m->exp, m->sb, &p->kv, p->n_valid, step);
    if (!rc) rc = pi0_dev_download(m->sb, v, m->exp.vt, 0, HA * 4);
    int src = pi0_stream_sync(m->sb);
    slot_done(m, p);
    return rc ? rc : src;
}

int pi0_prefix_read_kv(pi0_model *m, pi0_prefix *p, int layer, float *k, float *v) {
    if (!m) return pi0_errorf(PI0_EINVAL, "pi0_prefix_read_kv: NULL model");
    if (layer < 0 || layer >= m->cfg.vlm.depth)
        return pi0_errorf(PI0_ERANGE, "layer %d outside [0, %d)", layer, m->cfg.vlm.depth);
    PI0__TRY(slot_use(m, p));
    size_t bytes =
        (size_t)p->n_valid * (size_t)(m->cfg.vlm.n_kv_heads * m->cfg.vlm.head_dim) * 4;
    int rc = PI0_OK;
    if (k)
        rc = pi0_dev_download(m->sb, k, p->kv.buf, pi0__kv_rows(&p->kv, layer, 0, 0, 1).off,
                              bytes);
    if (!rc && v)
        rc = pi0_dev_download(m->sb, v, p->kv.buf, pi0__kv_rows(&p->kv, layer, 1, 0, 1).off,
                              bytes);
    int src = pi0_stream_sync(m->sb);
    slot_done(m, p);
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
    if (n > 0) PI0__TRY(check_finite("state", state, (size_t)n));
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
