/* stages.c — the two inference stages.
 *
 * Stage A (encode), on a trigger from the control thread: the newest frame of every camera
 * is read in place (the subscriber's zero-copy view of the shared slot) and preprocessed
 * straight into the model's staging buffer by pi0_model_encode; right after preprocessing
 * (encode's images_done callback) every view is validated, and a frame the camera
 * overwrote meanwhile makes encode start again with the newer frame (a torn image is
 * never used). Then the newest joint state (copied),
 * calib state_in, normalization, the prompt (π0.5: with the digitized state) and the
 * encode into a free prefix slot. The observation's time is the joint state's stamp (its
 * commit stamp when the driver's own is not on CLOCK_MONOTONIC): the
 * chunk's row 0 is due at the control tick at or before it (both ages are recorded).
 *
 * Stage B (denoise): denoise the prefix with the next draw of the model's generator,
 * unnormalize, calib actions_out with the observation's state, check every value is
 * finite (else drop the chunk and say so), publish pi0.ActionChunk and hand the chunk to
 * the control thread. Two prefix slots and a two-entry queue between the stages: with
 * pipelined = on, stage A of observation n+1 runs while stage B denoises observation n. */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "node.h"
#include "pipeline/pi0_tokenizer.h"

#define STAGE_WAIT_NS 100000000LL /* every wait re-checks the stop flag this often */
#define VIEW_RETRIES  8

static int pix_format(uint32_t f) {
    return f == PI0_PIX_BGR8    ? PI0_IMAGE_BGR
           : f == PI0_PIX_GRAY8 ? PI0_IMAGE_GRAY
                                : PI0_IMAGE_RGB;
}

/* Takes the joint state and builds state / normalized state / tokens into o. */
static int take_state(node *n, node_obs *o, int32_t *ids, uint8_t *mask, int *n_ids) {
    pi0_joint_state js;
    pi0_sample s;
    pi0_sub_wait(n->joint_sub_a, 0); /* re-attaches to a replaced segment (fstat per 100 ms) */
    int rc = pi0_sub_latest_copy(n->joint_sub_a, &js, sizeof js, &s);
    if (rc) return rc;
    if ((rc = pi0_joint_state_check(&js, s.size))) return rc;
    uint64_t now = node_now_ns();
    /* the driver's measurement stamp when it is on this clock (CLOCK_MONOTONIC: not after
     * the commit, not older than the age limit); else (0, wall-clock or another machine's
     * time) the commit stamp: row 0 would otherwise be due far off the control grid */
    o->obs_ns = js.stamp_ns && js.stamp_ns <= s.stamp_ns &&
                        (double)(s.stamp_ns - js.stamp_ns) <= n->cfg.joints_max_age_ms * 1e6
                    ? js.stamp_ns
                    : s.stamp_ns;
    o->joint_age_ns = now > s.stamp_ns ? now - s.stamp_ns : 0;
    if ((double)o->joint_age_ns > n->cfg.joints_max_age_ms * 1e6)
        return pi0_errorf(PI0_ESTALE, "%s: joint state %.1f ms old", n->cfg.joints_topic,
                          (double)o->joint_age_ns * 1e-6);
    if ((rc = pi0_calib_state_in(n->calib, js.position, (int)js.n, o->state))) return rc;
    float st[PI0_CALIB_DIM_MAX];
    for (int i = 0; i < n->state_dim; i++)
        st[i] = (float)o->state[i];
    memset(o->nstate, 0, sizeof o->nstate);
    if (n->info.has_norm_stats) {
        if ((rc = pi0_model_normalize_state(n->model, st, n->state_dim, o->nstate))) return rc;
    } else {
        memcpy(o->nstate, st, (size_t)n->state_dim * sizeof(float));
    }
    int L = n->info.max_token_len;
    if (n->cfg.n_tokens >= 0) {
        memset(mask, 0, (size_t)L);
        for (int i = 0; i < n->cfg.n_tokens; i++) {
            ids[i] = n->cfg.tokens[i];
            mask[i] = 1;
        }
        *n_ids = n->cfg.n_tokens;
        return 0;
    }
    int nv = 0;
    *n_ids = L;
    /* openpi digitizes the robot's normalized state before padding */
    return n->info.prompt_state
               ? pi0_prompt_pi05(n->tokenizer, n->cfg.prompt, o->nstate, n->state_dim, L, ids,
                                 mask, &nv)
               : pi0_prompt_pi0(n->tokenizer, n->cfg.prompt, L, ids, mask, &nv);
}

/* Views of the frames being preprocessed; checked by encode right after preprocessing. */
typedef struct view_set {
    node *n;
    pi0_sample v[PI0_MAX_CAMERAS];
} view_set;

static int views_valid(void *ctx) {
    view_set *vs = ctx;
    for (int c = 0; c < vs->n->n_cams; c++)
        if (pi0_sub_view_valid(vs->n->cam_sub_a[c], &vs->v[c]))
            return pi0_errorf(PI0_EOVERRUN, "camera %d: frame overwritten while preprocessed",
                              c);
    return 0;
}

/* One observation: cameras zero copy, joint state, encode. 0, or an error (the
 * observation is skipped; the control thread holds on stale inputs by itself). */
static int take_and_encode(node *n, node_obs *o) {
    int32_t ids[NODE_TOKENS_MAX + 1024];
    uint8_t mask[NODE_TOKENS_MAX + 1024];
    PI0_ASSERT(n->info.max_token_len <= (int)sizeof mask);
    view_set vs = {.n = n};
    for (int attempt = 0; attempt < VIEW_RETRIES; attempt++) {
        pi0_observation obs;
        memset(&obs, 0, sizeof obs);
        uint64_t now = node_now_ns(), oldest = 0;
        PI0_PROBE1(observation, attempt);
        for (int c = 0; c < n->n_cams; c++) {
            pi0_sub_wait(n->cam_sub_a[c], 0); /* re-attaches to a replaced segment */
            int rc = pi0_sub_latest_view(n->cam_sub_a[c], &vs.v[c]);
            if (rc) return rc;
            if ((rc = pi0_image_check(vs.v[c].data, vs.v[c].size))) return rc;
            uint64_t age = now > vs.v[c].stamp_ns ? now - vs.v[c].stamp_ns : 0;
            if ((double)age > n->cfg.camera_max_age_ms * 1e6)
                return pi0_errorf(PI0_ESTALE, "camera %d: frame %.1f ms old", c,
                                  (double)age * 1e-6);
            if (age > oldest) oldest = age;
            const pi0_image *im = vs.v[c].data;
            pi0_image_view *v = &obs.images[n->cam_slot[c]];
            v->rgb = im->data;
            v->width = (int)im->width;
            v->height = (int)im->height;
            v->stride = (int)im->stride;
            v->format = pix_format(im->format);
            v->rotate180 = pi0_calib_camera_get(n->calib, n->cam_slot[c])->rotate180;
            v->valid = 1;
        }
        o->camera_age_ns = oldest;
        int n_ids = 0, rc = take_state(n, o, ids, mask, &n_ids);
        if (rc) return rc;
        obs.tokens = ids;
        obs.token_mask = mask;
        obs.n_tokens = n_ids;
        obs.images_done = views_valid; /* a torn frame is never encoded */
        obs.images_ctx = &vs;
        pi0_timing t = {0};
        PI0_PROBE1(encode_begin, attempt);
        rc = pi0_model_encode(n->model, &obs, &o->prefix, &t);
        PI0_PROBE1(encode_end, attempt);
        if (rc == PI0_EOVERRUN) continue; /* retry with the newer frame */
        if (rc) return rc;
        o->preprocess_us = (uint32_t)(t.preprocess_ms * 1000.0);
        o->encode_us = (uint32_t)(t.total_ms * 1000.0);
        return 0;
    }
    return pi0_errorf(PI0_EOVERRUN, "camera frames overwritten during %d encodes in a row",
                      VIEW_RETRIES);
}

static void stage_error(node *n, int rc) {
    atomic_store(&n->last_error, rc);
    atomic_store(&n->recent_error, rc);
    /* the message of the first error (of either stage) is kept for the summary */
    if (!atomic_exchange(&n->err_claimed, 1))
        snprintf(n->stage_err, sizeof n->stage_err, "%s", pi0_last_error());
}

static void *stage_a_main(void *arg) {
    node *n = arg;
    pthread_setname_np(pthread_self(), "pi0-encode"); /* perf sched, top -H */
    /* pipelined: stage A's own host work (preprocessing, prompt) yields to stage B's, nice
     * 10 for this thread (the device serves the denoise stream's kernels first, see
     * pi0_stream_set_priority) */
    if (n->cfg.pipelined && setpriority(PRIO_PROCESS, (id_t)gettid(), 10))
        fprintf(stderr, "pi0rt-node: warning: encode thread not niced: %s\n", strerror(errno));
    uint32_t seen = atomic_load(&n->trigger_ev.seq);
    while (!atomic_load(&n->stop)) {
        seen = node_event_wait(&n->trigger_ev, seen, STAGE_WAIT_NS);
        if (!atomic_load_explicit(&n->trigger_pending, memory_order_acquire)) continue;
        node_obs o;
        memset(&o, 0, sizeof o);
        atomic_store(&n->trigger_pending, 0);
        /* a free queue entry (= a free prefix slot) first: stage B may still hold both */
        uint32_t fseen = atomic_load(&n->b_free_ev.seq);
        while (!atomic_load(&n->stop) && atomic_load(&n->q_head) - atomic_load(&n->q_tail) >= 2)
            fseen = node_event_wait(&n->b_free_ev, fseen, STAGE_WAIT_NS);
        o.trigger_ns = node_now_ns();
        o.k_taken = node_tick_at(n, o.trigger_ns);
        int rc = atomic_load(&n->stop) ? PI0_EAGAIN : take_and_encode(n, &o);
        if (rc) {
            atomic_fetch_add(&n->skipped_obs, 1);
            if (rc != PI0_ESTALE && rc != PI0_EAGAIN) stage_error(n, rc);
            atomic_fetch_sub(&n->inflight, 1);
            atomic_store(&n->a_busy, 0);
            continue;
        }
        o.encode_end_ns = node_now_ns();
        o.k0 = o.obs_ns >= n->t_start_ns ? (o.obs_ns - n->t_start_ns) / n->period_ns : 0;
        node_hist_add(&n->encode_lat, o.encode_end_ns - o.trigger_ns);
        node_hist_add(&n->cam_age, o.camera_age_ns);
        node_hist_add(&n->joint_age, o.joint_age_ns);
        uint32_t h = atomic_load(&n->q_head);
        n->q[h & 1] = o;
        atomic_store_explicit(&n->q_head, h + 1, memory_order_release);
        atomic_store(&n->a_busy, 0);
        node_event_post(&n->b_ev);
    }
    return NULL;
}

/* Stage B's postprocessing and publication of one denoised observation. */
static void finish_chunk(node *n, const node_obs *o, float *chunk, uint32_t denoise_us,
                         float *robot) {
    const int H = n->info.action_horizon, A = n->info.action_dim, D = n->out_dim;
    uint64_t t0 = node_now_ns();
    int rc = n->info.has_norm_stats ? pi0_model_unnormalize_actions(n->model, chunk) : 0;
    if (!rc) rc = pi0_calib_actions_out(n->calib, chunk, H, A, o->state, robot);
    if (rc) {
        stage_error(n, rc);
        atomic_fetch_add(&n->dropped, 1);
        return;
    }
    for (int i = 0; i < H * D; i++) {
        if (!isfinite(robot[i])) {
            atomic_fetch_add(&n->dropped, 1);
            atomic_store(&n->nonfinite_flag, 1);
            PI0_PROBE1(chunk_dropped, o->k0);
            return;
        }
    }
    atomic_store(&n->nonfinite_flag, 0);
    atomic_store(&n->recent_error, 0);
    uint64_t seq = atomic_fetch_add(&n->chunks, 1) + 1;
    pi0_action_chunk *m = pi0_pub_loan(n->chunk_pub);
    memset(m, 0, offsetof(pi0_action_chunk, actions));
    m->seq = seq;
    m->t0_ns = n->t_start_ns + o->k0 * n->period_ns;
    m->obs_stamp_ns = o->obs_ns;
    m->period_ns = n->period_ns;
    m->horizon = (uint32_t)H;
    m->dim = (uint32_t)D;
    m->preprocess_us = o->preprocess_us;
    m->encode_us = o->encode_us;
    m->denoise_us = denoise_us;
    memcpy(m->actions, robot, (size_t)H * (size_t)D * sizeof(float));
    uint64_t pub_ns = node_now_ns();
    m->postprocess_us = (uint32_t)((pub_ns - t0) / 1000);
    m->total_us = (uint32_t)((pub_ns - (o->obs_ns < pub_ns ? o->obs_ns : pub_ns)) / 1000);
    pi0_pub_commit(n->chunk_pub,
                   offsetof(pi0_action_chunk, actions) + (size_t)H * (size_t)D * sizeof(float));
    node_chunk *c = node_handover_begin(&n->hand);
    c->seq = seq;
    c->k0 = o->k0;
    c->k_taken = o->k_taken;
    c->horizon = H;
    c->dim = D;
    memcpy(c->a, robot, (size_t)H * (size_t)D * sizeof(float));
    node_handover_publish(&n->hand);
    PI0_PROBE2(chunk_published, seq, o->k0);
    node_hist_add(&n->infer_lat, pub_ns - o->trigger_ns);
    uint64_t due0 = n->t_start_ns + o->k0 * n->period_ns;
    node_hist_add(&n->sched_lat, pub_ns > due0 ? pub_ns - due0 : 0);
}

static void *stage_b_main(void *arg) {
    node *n = arg;
    pthread_setname_np(pthread_self(), "pi0-denoise"); /* perf sched, top -H */
    const size_t HA = (size_t)n->info.action_horizon * (size_t)n->info.action_dim;
    float chunk[PI0_CHUNK_HORIZON_MAX * 1024];
    float robot[PI0_CHUNK_HORIZON_MAX * PI0_CHUNK_DIM_MAX];
    PI0_ASSERT(HA <= sizeof chunk / sizeof chunk[0]);
    uint32_t seen = atomic_load(&n->b_ev.seq);
    while (!atomic_load(&n->stop)) {
        uint32_t t = atomic_load_explicit(&n->q_tail, memory_order_relaxed);
        if (atomic_load_explicit(&n->q_head, memory_order_acquire) == t) {
            seen = node_event_wait(&n->b_ev, seen, STAGE_WAIT_NS);
            continue;
        }
        node_obs o = n->q[t & 1];
        pi0_timing tm = {0};
        PI0_PROBE1(denoise_begin, o.k0);
        /* noise NULL: the next draw of the generator seeded with [model] seed */
        int rc = pi0_model_denoise(n->model, o.prefix, o.nstate, NULL, chunk, &tm);
        PI0_PROBE1(denoise_end, o.k0);
        pi0_prefix_release(n->model, o.prefix);
        atomic_store_explicit(&n->q_tail, t + 1, memory_order_release);
        node_event_post(&n->b_free_ev);
        if (rc) {
            stage_error(n, rc);
            atomic_fetch_add(&n->dropped, 1);
        } else {
            node_hist_add(&n->denoise_lat, (uint64_t)(tm.denoise_ms * 1e6));
            finish_chunk(n, &o, chunk, (uint32_t)(tm.denoise_ms * 1000.0), robot);
        }
        atomic_fetch_sub(&n->inflight, 1);
    }
    return NULL;
}

/* The stage threads do inference work of their own (image preprocessing, prompt, calib,
 * unnormalize): with infer_cpus set they run only there, from their first instruction,
 * so the control CPU stays the control thread's. */
int node_stages_start(node *n, pthread_t th[2]) {
    pthread_attr_t attr;
    if (pthread_attr_init(&attr)) return pi0_errorf(PI0_EIO, "cannot start the stage threads");
    if (n->cfg.n_infer_cpus > 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int i = 0; i < n->cfg.n_infer_cpus; i++)
            CPU_SET(n->cfg.infer_cpus[i], &set);
        pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    }
    int e = pthread_create(&th[0], &attr, stage_a_main, n);
    if (e) {
        pthread_attr_destroy(&attr);
        return pi0_errorf(PI0_EIO, "%s: node.infer_cpus: cannot start the encode thread: %s",
                          n->cfg.path, strerror(e));
    }
    e = pthread_create(&th[1], &attr, stage_b_main, n);
    pthread_attr_destroy(&attr);
    if (e) {
        atomic_store(&n->stop, 1);
        pthread_join(th[0], NULL);
        return pi0_errorf(PI0_EIO, "%s: node.infer_cpus: cannot start the denoise thread: %s",
                          n->cfg.path, strerror(e));
    }
    return 0;
}

void node_stages_join(node *n, pthread_t th[2]) {
    node_event_post(&n->trigger_ev);
    node_event_post(&n->b_ev);
    node_event_post(&n->b_free_ev);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    /* an observation encoded but never denoised still holds its slot */
    while (atomic_load(&n->q_head) != atomic_load(&n->q_tail)) {
        uint32_t t = atomic_load(&n->q_tail);
        pi0_prefix_release(n->model, n->q[t & 1].prefix);
        atomic_store(&n->q_tail, t + 1);
    }
}

int node_warmup(node *n) {
    /* a gray frame per camera, the configured tokens, zero noise: touches every buffer
     * and page once without drawing from the generator */
    static uint8_t gray[64 * 64 * 3];
    memset(gray, 128, sizeof gray);
    int32_t ids[1] = {0};
    uint8_t mask[1] = {1};
    pi0_observation obs;
    memset(&obs, 0, sizeof obs);
    for (int c = 0; c < n->n_cams; c++)
        obs.images[n->cam_slot[c]] = (pi0_image_view){gray, 64, 64, 0, 1, 0, 0};
    obs.tokens = ids;
    obs.token_mask = mask;
    obs.n_tokens = 1;
    size_t HA = (size_t)n->info.action_horizon * (size_t)n->info.action_dim;
    float noise[PI0_CHUNK_HORIZON_MAX * 1024], out[PI0_CHUNK_HORIZON_MAX * 1024];
    float state[PI0_CALIB_DIM_MAX * 16];
    PI0_ASSERT(HA <= sizeof noise / sizeof noise[0]);
    PI0_ASSERT((size_t)n->info.state_dim <= sizeof state / sizeof state[0]);
    memset(noise, 0, HA * sizeof(float));
    memset(state, 0, sizeof state);
    pi0_prefix *p = NULL;
    int rc = pi0_model_encode(n->model, &obs, &p, NULL);
    if (!rc) rc = pi0_model_denoise(n->model, p, state, noise, out, NULL);
    pi0_prefix_release(n->model, p);
    return rc;
}
