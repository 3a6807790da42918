/* test_pipeline_api.c — the encode/denoise API of pipeline/pi0_pipeline.h on tiny models:
 * prefix slots (EAGAIN, EBUSY, release), the two-thread pipelined use (stage A encodes
 * observation n+1 while stage B denoises n) against serial results, Euler against the
 * velocity introspection, the seeded noise generator, norm-stats helpers (against the numpy
 * reference), bad observations, compute threads confined to the CPUs they are given.
 * Numerics against the independent reference are in tests/test_pipeline.py. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_watch.h"
#include "harness.h"
#include "pipeline/checkpoint/npy.h"
#include "pipeline/pi0_pipeline.h"

static char g_dir[256];

/* A tiny checkpoint written by pi0rt-mkmodel (BUILD env, default build). */
static const char *tiny_model(const char *variant) {
    const char *build = getenv("BUILD");
    if (!build) build = "build";
    snprintf(g_dir, sizeof g_dir, "/tmp/pi0rt-test-api-%d-%s", (int)getpid(), variant);
    if (pi0_test_sh("rm -rf %s && %s/pi0rt-mkmodel --size tiny --variant %s --seed 5 --out %s "
                    ">/dev/null",
                    g_dir, build, variant, g_dir) != 0)
        return NULL;
    return g_dir;
}

static void remove_model(void) {
    pi0_test_rmrf(g_dir);
}

/* 2 compute threads, pinned to cpus (NULL: the process's mask) */
static pi0_model *load_on(const char *variant, int steps, uint64_t seed, const int *cpus,
                          int n_cpus) {
    const char *dir = tiny_model(variant);
    if (!dir) return NULL;
    pi0_model_opts o = {0};
    o.num_steps = steps;
    o.seed = seed;
    o.n_threads = 2;
    o.cpus = cpus;
    o.n_cpus = n_cpus;
    pi0_model *m = NULL;
    int rc = pi0_model_load(dir, &o, &m);
    if (rc) fprintf(stderr, "  load %s: %s\n", dir, pi0_last_error());
    return m;
}

static pi0_model *load(const char *variant, int steps, uint64_t seed) {
    return load_on(variant, steps, seed, NULL, 0);
}

/* Observation number k: 1–2 cameras of varying size and 3 + k prompt tokens. */
typedef struct obs_data {
    uint8_t *img[2];
    int32_t tokens[16];
    float state[64];
    float noise[64 * 64];
    pi0_observation obs;
} obs_data;

static void make_obs(obs_data *d, int k, const pi0_model_info *in) {
    memset(d, 0, sizeof *d);
    uint32_t x = 12345u + 977u * (uint32_t)k;
    for (int c = 0; c < 2; c++) {
        int w = 100 + 37 * k + 50 * c, h = 90 + 11 * k;
        d->img[c] = malloc((size_t)w * h * 3);
        for (int i = 0; i < w * h * 3; i++) {
            x = x * 1664525u + 1013904223u;
            d->img[c][i] = (uint8_t)(x >> 24);
        }
        d->obs.images[c == 0 ? 0 : 2] =
            (pi0_image_view){d->img[c], w, h, 0, c == 0 || k % 2, 0, 0};
    }
    for (int i = 0; i < 3 + k; i++)
        d->tokens[i] = 1 + (int32_t)((k * 31 + i * 7) % 1000);
    d->obs.tokens = d->tokens;
    d->obs.n_tokens = 3 + k;
    for (int i = 0; i < in->state_dim && i < 64; i++)
        d->state[i] = 0.1f * (float)((i + k) % 7) - 0.3f;
    for (int i = 0; i < in->action_horizon * in->action_dim; i++) {
        x = x * 1664525u + 1013904223u;
        d->noise[i] = ((float)(x >> 8) / 16777216.0f - 0.5f) * 3.0f;
    }
}

static void free_obs(obs_data *d) {
    free(d->img[0]);
    free(d->img[1]);
}

static float max_diff(const float *a, const float *b, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) {
        float d = fabsf(a[i] - b[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static void test_slots(void) {
    pi0_model *m = load("pi0", 0, 0);
    CHECK(m != NULL);
    if (!m) return;
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    obs_data d;
    make_obs(&d, 0, &in);
    pi0_prefix *a = NULL, *b = NULL, *c = NULL;
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &a, NULL), PI0_OK);
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &b, NULL), PI0_OK);
    CHECK(a && b && a != b);
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &c, NULL), PI0_EAGAIN);
    CHECK_STATUS(pi0_model_destroy(m), PI0_EBUSY);
    CHECK_EQ_INT(pi0_prefix_len(a), in.n_patches + 3);
    pi0_prefix_release(m, a);
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &c, NULL), PI0_OK);
    pi0_prefix_release(m, b);
    pi0_prefix_release(m, c);
    /* a released slot is no longer a valid handle for denoise */
    float chunk[64 * 64];
    CHECK_STATUS(pi0_model_denoise(m, c, d.state, d.noise, chunk, NULL), PI0_EINVAL);
    free_obs(&d);
    CHECK_STATUS(pi0_model_destroy(m), PI0_OK);
    remove_model();
}

typedef struct denoise_job {
    pi0_model *m;
    pi0_prefix *p;
    obs_data *d;
    float chunk[64 * 64];
    atomic_int started;
    int rc;
} denoise_job;

static void *denoise_main(void *x) {
    denoise_job *j = x;
    atomic_store(&j->started, 1);
    j->rc = pi0_model_denoise(j->m, j->p, j->d->state, j->d->noise, j->chunk, NULL);
    return NULL;
}

/* Releasing a slot while a denoise runs on it answers PI0_EBUSY and changes nothing: the
 * denoise finishes with the chunk of an undisturbed run, and the slot is released after. */
static void test_release_while_denoising(void) {
    pi0_model *m = load("pi0", 200, 0); /* a denoise of ~0.1–1 s on the tiny model */
    CHECK(m != NULL);
    if (!m) return;
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    obs_data d;
    make_obs(&d, 0, &in);
    int n = in.action_horizon * in.action_dim;
    static float ref[64 * 64];
    pi0_prefix *p = NULL;
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &p, NULL), PI0_OK);
    CHECK_STATUS(pi0_model_denoise(m, p, d.state, d.noise, ref, NULL), PI0_OK);
    static denoise_job j;
    int busy_seen = 0;
    /* The release races the thread's start: if it wins (the thread was not scheduled
     * within 20 ms), the denoise must refuse the released slot; encode again and retry. */
    for (int attempt = 0; attempt < 5 && !busy_seen; attempt++) {
        j.m = m;
        j.p = p;
        j.d = &d;
        atomic_store(&j.started, 0);
        pthread_t t;
        CHECK(pthread_create(&t, NULL, denoise_main, &j) == 0);
        while (!atomic_load(&j.started))
            usleep(100);
        usleep(20000);
        int rc = pi0_prefix_release(m, p);
        if (rc == PI0_EBUSY) {
            busy_seen = 1;
            CHECK(strstr(pi0_last_error_for(rc), "a denoise is running on slot") != NULL);
            float v[64 * 64];
            int vr = pi0_model_velocity(m, p, d.state, d.noise, 0, v);
            CHECK(vr == PI0_EBUSY || vr == PI0_OK); /* EBUSY unless the denoise just ended */
        }
        pthread_join(t, NULL);
        if (busy_seen) {
            CHECK_STATUS(j.rc, PI0_OK);
            CHECK(max_diff(j.chunk, ref, n) == 0.0f);
        } else {
            CHECK_STATUS(rc, PI0_OK);
            CHECK_STATUS(j.rc, PI0_EINVAL);
            CHECK_STATUS(pi0_model_encode(m, &d.obs, &p, NULL), PI0_OK);
        }
    }
    CHECK(busy_seen);
    CHECK_STATUS(pi0_prefix_release(m, p), PI0_OK);
    CHECK_STATUS(pi0_prefix_release(m, (pi0_prefix *)&d), PI0_EINVAL);
    CHECK_STATUS(pi0_prefix_release(m, NULL), PI0_OK);
    free_obs(&d);
    CHECK_STATUS(pi0_model_destroy(m), PI0_OK);
    remove_model();
}

static void test_bad_observations(void) {
    pi0_model *m = load("pi0", 0, 0);
    CHECK(m != NULL);
    if (!m) return;
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    obs_data d;
    make_obs(&d, 1, &in);
    pi0_prefix *p = NULL;
    pi0_observation o = d.obs;
    o.images[0].valid = o.images[2].valid = 0;
    o.n_tokens = 0;
    CHECK_STATUS(pi0_model_encode(m, &o, &p, NULL), PI0_EINVAL);
    o = d.obs;
    int32_t bad[3] = {1, in.vocab, 2};
    o.tokens = bad;
    o.n_tokens = 3;
    CHECK_STATUS(pi0_model_encode(m, &o, &p, NULL), PI0_ERANGE);
    CHECK(strstr(pi0_last_error(), "token 1") != NULL);
    uint8_t mask[3] = {1, 0, 1}; /* the bad id is padding: fine */
    o.token_mask = mask;
    CHECK_STATUS(pi0_model_encode(m, &o, &p, NULL), PI0_OK);
    if (p) CHECK_EQ_INT(pi0_prefix_len(p), 2 * in.n_patches + 2);
    pi0_prefix_release(m, p);
    o = d.obs;
    o.n_tokens = in.max_token_len + 1;
    CHECK_STATUS(pi0_model_encode(m, &o, &p, NULL), PI0_ERANGE);
    o = d.obs;
    o.images[0].width = 0;
    CHECK_STATUS(pi0_model_encode(m, &o, &p, NULL), PI0_EINVAL);
    /* failed encodes must not leak slots: two encodes still succeed */
    pi0_prefix *a = NULL, *b = NULL;
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &a, NULL), PI0_OK);
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &b, NULL), PI0_OK);
    pi0_prefix_release(m, a);
    pi0_prefix_release(m, b);
    free_obs(&d);
    CHECK_STATUS(pi0_model_destroy(m), PI0_OK);
    remove_model();
}

/* ---- two-stage pipeline ------------------------------------------------------------ */

#define N_OBS 6

typedef struct pipe_ctx {
    pi0_model *m;
    obs_data *d;
    float *chunks; /* [N_OBS][H·A] */
    int hA;
    pi0_prefix *queue[N_OBS]; /* encoded slots handed from A to B */
    int n_encoded, n_done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int err;
} pipe_ctx;

static void *stage_a(void *arg) {
    pipe_ctx *c = arg;
    for (int k = 0; k < N_OBS; k++) {
        pi0_prefix *p = NULL;
        int rc;
        while ((rc = pi0_model_encode(c->m, &c->d[k].obs, &p, NULL)) == PI0_EAGAIN) {
            pthread_mutex_lock(&c->mu); /* both slots busy: wait for stage B */
            int done = c->n_done;
            /* (if B already released everything encoded, retry at once) */
            while (c->n_done == done && c->n_done < c->n_encoded)
                pthread_cond_wait(&c->cv, &c->mu);
            pthread_mutex_unlock(&c->mu);
        }
        pthread_mutex_lock(&c->mu);
        if (rc) c->err = rc;
        c->queue[k] = p;
        c->n_encoded = k + 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        if (rc) break;
    }
    return NULL;
}

static void *stage_b(void *arg) {
    pipe_ctx *c = arg;
    for (int k = 0; k < N_OBS; k++) {
        pthread_mutex_lock(&c->mu);
        while (c->n_encoded <= k && !c->err)
            pthread_cond_wait(&c->cv, &c->mu);
        pi0_prefix *p = c->err ? NULL : c->queue[k];
        pthread_mutex_unlock(&c->mu);
        if (!p) break;
        int rc = pi0_model_denoise(c->m, p, c->d[k].state, c->d[k].noise,
                                   c->chunks + (size_t)k * c->hA, NULL);
        pi0_prefix_release(c->m, p);
        pthread_mutex_lock(&c->mu);
        if (rc) c->err = rc;
        c->n_done = k + 1;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        if (rc) break;
    }
    return NULL;
}

static void pipelined_vs_serial(const char *variant) {
    pi0_model *m = load(variant, 0, 0);
    CHECK(m != NULL);
    if (!m) return;
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    int hA = in.action_horizon * in.action_dim;
    obs_data *d = calloc(N_OBS, sizeof *d);
    float *serial = calloc((size_t)N_OBS * hA, sizeof(float));
    float *piped = calloc((size_t)N_OBS * hA, sizeof(float));
    for (int k = 0; k < N_OBS; k++) {
        make_obs(&d[k], k, &in);
        pi0_prefix *p = NULL;
        CHECK_STATUS(pi0_model_encode(m, &d[k].obs, &p, NULL), PI0_OK);
        CHECK_STATUS(
            pi0_model_denoise(m, p, d[k].state, d[k].noise, serial + (size_t)k * hA, NULL),
            PI0_OK);
        pi0_prefix_release(m, p);
    }
    pipe_ctx c = {.m = m, .d = d, .chunks = piped, .hA = hA};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, stage_a, &c);
    pthread_create(&tb, NULL, stage_b, &c);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_STATUS(c.err, PI0_OK);
    CHECK_EQ_INT(c.n_done, N_OBS);
    for (int k = 0; k < N_OBS; k++) {
        float e = max_diff(serial + (size_t)k * hA, piped + (size_t)k * hA, hA);
        /* the same kernels on the same inputs in another thread: bit-identical */
        CHECK_MSG(e == 0.0f, "observation %d: pipelined differs from serial by %g", k,
                  (double)e);
    }
    /* different observations give different chunks (the test can tell them apart) */
    CHECK(max_diff(serial, serial + hA, hA) > 1e-3f);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    for (int k = 0; k < N_OBS; k++)
        free_obs(&d[k]);
    free(d);
    free(serial);
    free(piped);
    CHECK_STATUS(pi0_model_destroy(m), PI0_OK);
    remove_model();
}

static void test_pipelined_pi0(void) {
    pipelined_vs_serial("pi0");
}
static void test_pipelined_pi05(void) {
    pipelined_vs_serial("pi05");
}

/* With one step, Euler gives x = noise − v(noise, t = 1). */
static void euler_one_step(const char *variant) {
    pi0_model *m = load(variant, 1, 0);
    CHECK(m != NULL);
    if (!m) return;
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    CHECK_EQ_INT(in.num_steps, 1);
    int hA = in.action_horizon * in.action_dim;
    obs_data d;
    make_obs(&d, 2, &in);
    float *chunk = calloc((size_t)hA, sizeof(float)), *v = calloc((size_t)hA, sizeof(float));
    pi0_prefix *p = NULL;
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &p, NULL), PI0_OK);
    CHECK_STATUS(pi0_model_denoise(m, p, d.state, d.noise, chunk, NULL), PI0_OK);
    CHECK_STATUS(pi0_model_velocity(m, p, d.state, d.noise, 0, v), PI0_OK);
    CHECK_STATUS(pi0_model_velocity(m, p, d.state, d.noise, 1, v + 0), PI0_ERANGE);
    float e = 0, vmax = 0;
    for (int i = 0; i < hA; i++) {
        float want = d.noise[i] - v[i];
        if (fabsf(chunk[i] - want) > e) e = fabsf(chunk[i] - want);
        if (fabsf(v[i]) > vmax) vmax = fabsf(v[i]);
    }
    /* dt = -1 exactly: x + (-1)·v rounds like x − v */
    CHECK_MSG(e == 0.0f, "chunk vs noise - v: %g", (double)e);
    CHECK(vmax > 1e-2f);
    pi0_prefix_release(m, p);
    free(chunk);
    free(v);
    free_obs(&d);
    CHECK_STATUS(pi0_model_destroy(m), PI0_OK);
    remove_model();
}

static void test_euler_pi0(void) {
    euler_one_step("pi0");
}
static void test_euler_pi05(void) {
    euler_one_step("pi05");
}

static void test_default_noise(void) {
    int hA = 0;
    float *c[3] = {0};
    for (int run = 0; run < 2; run++) {
        pi0_model *m = load("pi0", 2, 42);
        CHECK(m != NULL);
        if (!m) return;
        pi0_model_info in;
        pi0_model_get_info(m, &in);
        hA = in.action_horizon * in.action_dim;
        obs_data d;
        make_obs(&d, 3, &in);
        pi0_prefix *p = NULL;
        CHECK_STATUS(pi0_model_encode(m, &d.obs, &p, NULL), PI0_OK);
        for (int i = 0; i < (run ? 1 : 2); i++) {
            float *x = calloc((size_t)hA, sizeof(float));
            CHECK_STATUS(pi0_model_denoise(m, p, d.state, NULL, x, NULL), PI0_OK);
            if (run == 0)
                c[i] = x;
            else
                c[2] = x;
        }
        pi0_prefix_release(m, p);
        free_obs(&d);
        pi0_model_destroy(m);
        remove_model();
    }
    /* the generator advances between calls, and restarts with the same seed */
    CHECK(max_diff(c[0], c[1], hA) > 1e-3f);
    CHECK(max_diff(c[0], c[2], hA) == 0.0f);
    for (int i = 0; i < 3; i++)
        free(c[i]);
}

/* Runs the numpy reference's normalization (tests/ref/pi0_ref.py --MODE IN) on the f32
 * array `in` [ndim: shape] and reads its float64 result into `out` [n]. */
static int ref_norm(const char *tmp, const char *mode, const float *in, int ndim,
                    const int64_t *shape, double *out, int64_t n) {
    char fin[512], fout[512];
    snprintf(fin, sizeof fin, "%s/in.npy", tmp);
    snprintf(fout, sizeof fout, "%s/out.npy", tmp);
    if (pi0_npy_write(fin, PI0_F32, ndim, shape, in)) return -1;
    if (pi0_test_sh("/usr/bin/python3 tests/ref/pi0_ref.py --model %s --%s %s --out %s", g_dir,
                    mode, fin, fout))
        return -1;
    pi0_npy a;
    if (pi0_npy_read(fout, &a)) return -1;
    int rc = a.dtype == PI0_F64 && a.numel == n ? 0 : -1;
    if (!rc) memcpy(out, a.data, (size_t)n * sizeof(double));
    pi0_npy_free(&a);
    return rc;
}

/* normalize_state / unnormalize_actions against the numpy reference (z-score for π0,
 * quantiles for π0.5; measured error ≤ 1e-7 relative, f32 arithmetic). */
static void test_norm_stats(void) {
    char *tmp = pi0_test_tmpdir("pi0rt-test-norm");
    CHECK(tmp != NULL);
    if (!tmp) return;
    for (int variant = 0; variant < 2; variant++) {
        pi0_model *m = load(variant ? "pi05" : "pi0", 0, 0);
        CHECK(m != NULL);
        if (!m) break;
        pi0_model_info in;
        pi0_model_get_info(m, &in);
        CHECK(in.has_norm_stats);
        float raw[8], norm[64];
        double want[64];
        for (int i = 0; i < 8; i++)
            raw[i] = 0.25f * (float)i - 1.0f;
        CHECK_STATUS(pi0_model_normalize_state(m, raw, 8, norm), PI0_OK);
        int64_t n8 = 8;
        CHECK_EQ_INT(ref_norm(tmp, "normalize-state", raw, 1, &n8, want, in.state_dim), 0);
        for (int i = 0; i < in.state_dim; i++)
            CHECK_NEAR(norm[i], want[i], 1e-6 * (1 + fabs(want[i])));
        for (int i = 8; i < in.state_dim; i++)
            CHECK_EQ_INT(norm[i] == 0.0f, 1);
        CHECK_STATUS(pi0_model_normalize_state(m, raw, in.state_dim + 1, norm), PI0_ESHAPE);
        int hA = in.action_horizon * in.action_dim;
        float *ch = calloc((size_t)hA, sizeof(float));
        double *wa = calloc((size_t)hA, sizeof(double));
        for (int i = 0; i < hA; i++)
            ch[i] = 0.01f * (float)(i % 100) - 0.5f;
        int64_t shape[2] = {in.action_horizon, in.action_dim};
        CHECK_EQ_INT(ref_norm(tmp, "unnormalize-actions", ch, 2, shape, wa, hA), 0);
        CHECK_STATUS(pi0_model_unnormalize_actions(m, ch), PI0_OK);
        int bad = 0;
        for (int i = 0; i < hA; i++)
            bad += !(fabs(ch[i] - wa[i]) <= 1e-6 * (1 + fabs(wa[i])));
        CHECK_MSG(bad == 0, "%d of %d unnormalized values differ from the reference", bad, hA);
        CHECK(fabs(wa[in.action_dim + 3] - (0.01 * 3 - 0.5)) > 1e-3); /* stats not identity */
        free(ch);
        free(wa);
        pi0_model_destroy(m);
        remove_model();
    }
    pi0_test_rmrf(tmp);
    free(tmp);
}

/* NaN or ±Inf in the inputs that feed the model is PI0_EINVAL naming the input and the
 * first bad index, before anything is computed (the chunk is left untouched). */
static void test_nonfinite_inputs(void) {
    pi0_model *m = load("pi0", 2, 1);
    CHECK(m != NULL);
    if (!m) return;
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    obs_data d;
    make_obs(&d, 1, &in);
    pi0_prefix *p = NULL;
    CHECK_STATUS(pi0_model_encode(m, &d.obs, &p, NULL), PI0_OK);
    int hA = in.action_horizon * in.action_dim;
    float *chunk = malloc((size_t)hA * sizeof(float));
    for (int i = 0; i < hA; i++)
        chunk[i] = 7.0f;
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (int b = 0; b < 3; b++) {
        float state[64], noise[64 * 64];
        memcpy(state, d.state, sizeof state);
        memcpy(noise, d.noise, sizeof noise);
        state[3] = bad[b];
        CHECK_STATUS(pi0_model_denoise(m, p, state, d.noise, chunk, NULL), PI0_EINVAL);
        CHECK_MSG(strstr(pi0_last_error(), "state[3]"), "error: %s", pi0_last_error());
        CHECK_STATUS(pi0_model_denoise(m, p, state, NULL, chunk, NULL), PI0_EINVAL);
        noise[17] = bad[b];
        CHECK_STATUS(pi0_model_denoise(m, p, d.state, noise, chunk, NULL), PI0_EINVAL);
        CHECK_MSG(strstr(pi0_last_error(), "noise[17]"), "error: %s", pi0_last_error());
        CHECK_STATUS(pi0_model_velocity(m, p, d.state, noise, 0, chunk), PI0_EINVAL);
        CHECK_STATUS(pi0_model_velocity(m, p, state, d.noise, 0, chunk), PI0_EINVAL);
        float raw[8] = {0}, norm[64];
        raw[2] = bad[b];
        CHECK_STATUS(pi0_model_normalize_state(m, raw, 8, norm), PI0_EINVAL);
        CHECK_MSG(strstr(pi0_last_error(), "state[2]"), "error: %s", pi0_last_error());
    }
    int untouched = 1;
    for (int i = 0; i < hA; i++)
        untouched &= chunk[i] == 7.0f;
    CHECK(untouched);
    /* finite inputs still work */
    CHECK_STATUS(pi0_model_denoise(m, p, d.state, d.noise, chunk, NULL), PI0_OK);
    pi0_prefix_release(m, p);
    free(chunk);
    free_obs(&d);
    pi0_model_destroy(m);
    remove_model();
}

/* Encodes and denoises back to back until stop is set (on a thread the caller pins). */
typedef struct confine_job {
    pi0_model *m;
    obs_data *d;
    atomic_int stop;
    int n, rc;
} confine_job;

static void *confine_main(void *x) {
    confine_job *j = x;
    static float chunk[64 * 64];
    while (!atomic_load(&j->stop) && !j->rc) {
        pi0_prefix *p = NULL;
        j->rc = pi0_model_encode(j->m, &j->d->obs, &p, NULL);
        if (!j->rc) j->rc = pi0_model_denoise(j->m, p, j->d->state, j->d->noise, chunk, NULL);
        pi0_prefix_release(j->m, p);
        j->n++;
    }
    return NULL;
}

/* The compute threads run on the CPUs they are given and nowhere else (the node's control
 * thread keeps its core). The model gets 2 compute threads on CPU c0 of two allowed CPUs;
 * the thread calling the API (it preprocesses the images) is pinned to c0 too, as the
 * node pins its stage threads. This thread only watches, from c1, every thread of the
 * process for ~1 s of back-to-back inferences: each one that ran (stream workers, pool
 * helpers, OpenBLAS's own threads if it runs any, anything the loader started) must have
 * the mask {c0} and never be seen on c1. */
static void test_compute_threads_confined(void) {
    int c0, c1;
    if (!cw_two_cpus(&c0, &c1)) SKIP("needs 2 allowed CPUs");
    if (CW_TSAN) SKIP("ThreadSanitizer's own thread runs on any CPU");
    pi0_model *m = load_on("pi0", 10, 0, &c0, 1);
    CHECK(m != NULL);
    if (!m) return;
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    obs_data d;
    make_obs(&d, 1, &in);
    static confine_job j;
    j.m = m;
    j.d = &d;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(c0, &set);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setaffinity_np(&attr, sizeof set, &set);
    pthread_t t;
    CHECK(pthread_create(&t, &attr, confine_main, &j) == 0);
    pthread_attr_destroy(&attr);
    CPU_ZERO(&set);
    CPU_SET(c1, &set);
    CHECK(pthread_setaffinity_np(pthread_self(), sizeof set, &set) == 0);
    static cpu_watch w;
    cw_init(&w, (int)getpid());
    double end = pi0_test_now() + 1.0;
    while (pi0_test_now() < end) {
        cw_sample(&w);
        usleep(1000);
    }
    atomic_store(&j.stop, 1);
    pthread_join(t, NULL);
    cw_sample(&w);
    CHECK_STATUS(j.rc, PI0_OK);
    CHECK_MSG(j.n >= 2, "%d inferences in 1 s", j.n);
    int self = (int)gettid(), streams = 0, helpers = 0;
    for (int i = 0; i < w.n; i++) {
        const cw_thread *x = &w.t[i];
        if (x->tid == self || !cw_ran(x)) continue;
        streams += !strcmp(x->name, "pi0-cpu-stream");
        helpers += !strcmp(x->name, "pi0-cpu-pool");
        CHECK_MSG(cw_pinned_to(x, c0) && !CPU_ISSET(c1, &x->ran_on),
                  "thread %d (%s) ran %.2f ms with %d allowed CPUs (CPU %d: %s), %s on CPU %d",
                  x->tid, x->name, (double)cw_ran(x) * 1e-6, CPU_COUNT(&x->mask), c0,
                  CPU_ISSET(c0, &x->mask) ? "in" : "not in",
                  CPU_ISSET(c1, &x->ran_on) ? "seen" : "not seen", c1);
    }
    CHECK_MSG(streams >= 1 && helpers == 1, "%d stream workers and %d pool helpers ran",
              streams, helpers);
    free_obs(&d);
    CHECK_STATUS(pi0_model_destroy(m), PI0_OK);
    remove_model();
}

int main(int argc, char **argv) {
    static const pi0_test tests[] = {
        TEST(test_slots),
        TEST(test_release_while_denoising),
        TEST(test_bad_observations),
        TEST(test_pipelined_pi0),
        TEST(test_pipelined_pi05),
        TEST(test_euler_pi0),
        TEST(test_euler_pi05),
        TEST(test_default_noise),
        TEST(test_norm_stats),
        TEST(test_nonfinite_inputs),
        TEST(test_compute_threads_confined),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
