/* infer.c — pi0rt-infer: one π0 / π0.5 inference from .npy inputs (see usage()). */
#include <errno.h>
#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "common/pi0_cli.h"
#include "pipeline/checkpoint/npy.h"
#include "pipeline/pi0_pipeline.h"
#ifdef PI0_HAVE_TOKENIZER
#include "pipeline/pi0_tokenizer.h"
#endif

static void usage(FILE *f) {
    fprintf(
        f,
        "usage: pi0rt-infer --model DIR --image CAM=FILE.npy [--image CAM=FILE.npy ...]\n"
        "                   --state FILE.npy (--tokens FILE.npy | --prompt TEXT --tokenizer "
        "FILE)\n"
        "                   [--noise FILE.npy] [--steps N] [--threads N] [--seed N]\n"
        "                   [--backend NAME] [--precision f32|bf16] [--repeat N]\n"
        "                   [--unnormalize] [--json]\n"
        "                   [--dump DIR] --out FILE.npy\n"
        "Runs one inference (encode + denoise) and writes the action chunk.\n"
        "  --image CAM=F  uint8 [H, W, 3] RGB, any size; CAM is base, left_wrist or\n"
        "                 right_wrist (or base_0_rgb, ...); cameras not given are masked\n"
        "  --state F      float32 or float64 [n], n <= state_dim, already normalized;\n"
        "                 zero-padded\n"
        "  --tokens F     int32 [n], n <= max_token_len: the real prompt ids only (padding to\n"
        "                 max_token_len, with mask 0, is added here)\n"
        "  --prompt T     text prompt, tokenized with --tokenizer (a SentencePiece .model) in\n"
        "                 the π0 / π0.5 format (π0.5 digitizes the --state values, before\n"
        "                 padding, into the prompt unless config.json has\n"
        "                 discrete_state_input: false)\n"
        "  --noise F      float32 or float64 [horizon, action_dim] initial noise; default:\n"
        "                 drawn from the seeded generator (xoshiro256** + Box-Muller, --seed, "
        "default 0)\n"
        "  --steps N      denoising steps (default: config.json num_steps)\n"
        "  --threads N    compute threads (default: all allowed CPUs)\n"
        "  --precision P  GEMM arithmetic: f32 (default) or bf16 (weights and GEMM inputs\n"
        "                 rounded to bf16, sums in f32; everything else stays f32)\n"
        "  --repeat N     run the inference N times (timings of the fastest run are printed)\n"
        "  --unnormalize  write the chunk in robot units (norm_stats.json actions stats)\n"
        "  --json         print one JSON line with the timing breakdown (ms) and peak RSS\n"
        "  --dump DIR     also write per-stage intermediates: vision.npy (image tokens after\n"
        "                 the projector), prefix_k_L.npy / prefix_v_L.npy (valid prefix K/V\n"
        "                 of layer L), velocity0.npy (v(noise, t=1)); needs --noise\n"
        "  --out F        float32 [horizon, action_dim] chunk (normalized unless "
        "--unnormalize)\n");
}

/* A wrong command line: one line, exit status 2. */
static int usage_error(const char *fmt, ...) PI0_PRINTF(1, 2);
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("pi0rt-infer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see --help)\n", stderr);
    va_end(ap);
    return PI0_EXIT_USAGE;
}

static int fail(const char *what) {
    fprintf(stderr, "pi0rt-infer: %s\n", what);
    return 1;
}

static int fail_status(const char *what, int rc) {
    fprintf(stderr, "pi0rt-infer: %s: %s (%s)\n", what, pi0_last_error_for(rc),
            pi0_errname(rc));
    return 1;
}

static int camera_slot(const char *name, size_t len) {
    static const char *const names[PI0_MAX_CAMERAS][2] = {{"base", "base_0_rgb"},
                                                          {"left_wrist", "left_wrist_0_rgb"},
                                                          {"right_wrist", "right_wrist_0_rgb"}};
    for (int i = 0; i < PI0_MAX_CAMERAS; i++)
        for (int j = 0; j < 2; j++)
            if (strlen(names[i][j]) == len && !strncmp(names[i][j], name, len)) return i;
    return -1;
}

static int parse_int(const char *s, const char *flag, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "pi0rt-infer: %s: '%s' is not an integer in [%ld, %ld]\n", flag, s, lo,
                hi);
        return -1;
    }
    *out = v;
    return 0;
}

static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* npy errors already name the file */
static int fail_npy(int rc) {
    fprintf(stderr, "pi0rt-infer: %s (%s)\n", pi0_last_error_for(rc), pi0_errname(rc));
    return 1;
}

static int save_f32(const char *dir, const char *name, const float *x, int64_t rows,
                    int64_t cols) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int64_t shape[2] = {rows, cols};
    int rc = pi0_npy_write(path, PI0_F32, 2, shape, x);
    if (rc) return fail_npy(rc);
    return 0;
}

static int dump_stages(pi0_model *m, pi0_prefix *p, const char *dir, const float *state,
                       const float *noise) {
    pi0_model_info in;
    pi0_model_get_info(m, &in);
    if (mkdir(dir, 0755) && errno != EEXIST) {
        fprintf(stderr, "pi0rt-infer: --dump %s: %s\n", dir, strerror(errno));
        return 1;
    }
    int n = pi0_prefix_len(p), rows = 0, rc;
    size_t cap = (size_t)PI0_MAX_CAMERAS * (size_t)in.n_patches * (size_t)in.vlm_width;
    float *buf = malloc(cap * sizeof(float) + 1);
    if (!buf) return fail("out of memory");
    if ((rc = pi0_model_read_vision(m, buf, cap, &rows))) {
        free(buf);
        return fail_status("--dump: vision tokens", rc);
    }
    int err = save_f32(dir, "vision.npy", buf, rows, in.vlm_width);
    free(buf);
    if (err) return 1;
    float *k = malloc((size_t)n * (size_t)in.kv_dim * sizeof(float));
    float *v = malloc((size_t)n * (size_t)in.kv_dim * sizeof(float));
    float *vel = malloc((size_t)in.action_horizon * (size_t)in.action_dim * sizeof(float));
    err = !k || !v || !vel;
    for (int l = 0; l < in.vlm_depth && !err; l++) {
        char name[64];
        if ((rc = pi0_prefix_read_kv(m, p, l, k, v))) {
            err = fail_status("--dump: prefix K/V", rc);
            break;
        }
        snprintf(name, sizeof name, "prefix_k_%d.npy", l);
        err = save_f32(dir, name, k, n, in.kv_dim);
        snprintf(name, sizeof name, "prefix_v_%d.npy", l);
        if (!err) err = save_f32(dir, name, v, n, in.kv_dim);
    }
    if (!err && (rc = pi0_model_velocity(m, p, state, noise, 0, vel)))
        err = fail_status("--dump: velocity", rc);
    if (!err) err = save_f32(dir, "velocity0.npy", vel, in.action_horizon, in.action_dim);
    free(k);
    free(v);
    free(vel);
    return err;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *state_path = NULL, *tokens_path = NULL, *noise_path = NULL;
    const char *out_path = NULL, *dump_dir = NULL, *backend = NULL, *prompt = NULL;
    const char *tok_path = NULL;
    const char *img_path[PI0_MAX_CAMERAS] = {0};
    long steps = 0, threads = 0, repeat = 1;
    uint64_t seed = 0;
    int bad = 0;
    int json = 0, unnorm = 0, precision = 0;

    enum {
        O_MODEL = 256,
        O_STATE,
        O_TOKENS,
        O_PROMPT,
        O_TOKENIZER,
        O_NOISE,
        O_OUT,
        O_DUMP,
        O_BACKEND,
        O_STEPS,
        O_THREADS,
        O_REPEAT,
        O_SEED,
        O_IMAGE,
        O_JSON,
        O_UNNORM,
        O_PRECISION
    };
    static const struct option opts_long[] = {
        {"model", required_argument, NULL, O_MODEL},
        {"state", required_argument, NULL, O_STATE},
        {"tokens", required_argument, NULL, O_TOKENS},
        {"prompt", required_argument, NULL, O_PROMPT},
        {"tokenizer", required_argument, NULL, O_TOKENIZER},
        {"noise", required_argument, NULL, O_NOISE},
        {"out", required_argument, NULL, O_OUT},
        {"dump", required_argument, NULL, O_DUMP},
        {"backend", required_argument, NULL, O_BACKEND},
        {"steps", required_argument, NULL, O_STEPS},
        {"threads", required_argument, NULL, O_THREADS},
        {"precision", required_argument, NULL, O_PRECISION},
        {"repeat", required_argument, NULL, O_REPEAT},
        {"seed", required_argument, NULL, O_SEED},
        {"image", required_argument, NULL, O_IMAGE},
        {"json", no_argument, NULL, O_JSON},
        {"unnormalize", no_argument, NULL, O_UNNORM},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", opts_long, NULL)) != -1;) {
        const char *v = optarg;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case O_MODEL:
            model_dir = v;
            break;
        case O_STATE:
            state_path = v;
            break;
        case O_TOKENS:
            tokens_path = v;
            break;
        case O_PROMPT:
            prompt = v;
            break;
        case O_TOKENIZER:
            tok_path = v;
            break;
        case O_NOISE:
            noise_path = v;
            break;
        case O_OUT:
            out_path = v;
            break;
        case O_DUMP:
            dump_dir = v;
            break;
        case O_BACKEND:
            backend = v;
            break;
        case O_STEPS:
            if (parse_int(v, "--steps", 1, 1000, &steps)) return PI0_EXIT_USAGE;
            break;
        case O_THREADS:
            if (parse_int(v, "--threads", 1, 1024, &threads)) return PI0_EXIT_USAGE;
            break;
        case O_PRECISION:
            if (strcmp(v, "f32") && strcmp(v, "bf16"))
                return usage_error("--precision: '%s' (want f32 or bf16)", v);
            precision = strcmp(v, "bf16") == 0;
            break;
        case O_REPEAT:
            if (parse_int(v, "--repeat", 1, 1000000, &repeat)) return PI0_EXIT_USAGE;
            break;
        case O_SEED:
            seed = pi0__parse_u64(v, 0, UINT64_MAX, &bad);
            if (bad) {
                fprintf(stderr, "pi0rt-infer: --seed: '%s' is not an integer in [0, %llu]\n", v,
                        (unsigned long long)UINT64_MAX);
                return PI0_EXIT_USAGE;
            }
            break;
        case O_JSON:
            json = 1;
            break;
        case O_UNNORM:
            unnorm = 1;
            break;
        case O_IMAGE: {
            const char *eq = strchr(v, '=');
            int cam = eq ? camera_slot(v, (size_t)(eq - v)) : -1;
            if (cam < 0) {
                fprintf(stderr,
                        "pi0rt-infer: --image %s: want CAM=FILE with CAM one of base, "
                        "left_wrist, right_wrist\n",
                        v);
                return PI0_EXIT_USAGE;
            }
            if (img_path[cam]) {
                fprintf(stderr, "pi0rt-infer: --image: camera %.*s given twice\n",
                        (int)(eq - v), v);
                return PI0_EXIT_USAGE;
            }
            img_path[cam] = eq + 1;
            break;
        }
        default:
            return pi0__opt_error("pi0rt-infer", argv, c);
        }
    }
    if (optind < argc) return usage_error("unexpected argument %s", argv[optind]);
    if (!model_dir || !state_path || !out_path)
        return usage_error("%s", "--model, --state and --out are required");
    if (!tokens_path == !prompt)
        return usage_error("%s", "give exactly one of --tokens and --prompt");
#ifndef PI0_HAVE_TOKENIZER
    if (prompt)
        return usage_error("%s", "--prompt: this build has no tokenizer (pass --tokens)");
#endif
    if (prompt && !tok_path) return usage_error("%s", "--prompt needs --tokenizer FILE.model");
    if (dump_dir && !noise_path) return usage_error("%s", "--dump needs --noise");

    pi0_model_opts opts = {0};
    opts.backend = backend;
    opts.n_threads = (int)threads;
    opts.precision = precision;
    opts.num_steps = (int)steps;
    opts.seed = seed;
    opts.keep_vision = dump_dir != NULL;
    pi0_model *m = NULL;
    int rc = pi0_model_load(model_dir, &opts, &m);
    if (rc) return fail_status(model_dir, rc);
    pi0_model_info in;
    pi0_model_get_info(m, &in);

    int ret = 1;
    pi0_npy imgs[PI0_MAX_CAMERAS] = {{0}}, st = {0}, tk = {0}, nz = {0};
    float *state = calloc((size_t)in.state_dim + 1, sizeof(float));
    float *chunk = malloc((size_t)in.action_horizon * (size_t)in.action_dim * sizeof(float));
    int32_t *ids = calloc((size_t)in.max_token_len, sizeof(int32_t));
    uint8_t *mask = calloc((size_t)in.max_token_len, 1);
    pi0_observation obs;
    memset(&obs, 0, sizeof obs);
    if (!state || !chunk || !ids || !mask) {
        fail("out of memory");
        goto out;
    }

    static const int64_t hw3[3] = {-1, -1, 3}, any1[1] = {-1};
    for (int c = 0; c < PI0_MAX_CAMERAS; c++) {
        if (!img_path[c]) continue;
        if ((rc = pi0_npy_read(img_path[c], &imgs[c]))) {
            fail_npy(rc);
            goto out;
        }
        if ((rc = pi0_npy_expect(&imgs[c], img_path[c], PI0_U8, 3, hw3))) {
            fail_npy(rc);
            goto out;
        }
        obs.images[c].rgb = imgs[c].data;
        obs.images[c].height = (int)imgs[c].shape[0];
        obs.images[c].width = (int)imgs[c].shape[1];
        obs.images[c].valid = 1;
    }

    if ((rc = pi0_npy_read(state_path, &st)) || (rc = pi0_npy_to_f32(&st, state_path)) ||
        (rc = pi0_npy_expect(&st, state_path, PI0_F32, 1, any1))) {
        fail_npy(rc);
        goto out;
    }
    if (st.shape[0] > in.state_dim) {
        fprintf(stderr, "pi0rt-infer: %s: %lld state values, the model takes at most %d\n",
                state_path, (long long)st.shape[0], in.state_dim);
        goto out;
    }
    int n_state = (int)st.shape[0]; /* the robot's dims; the rest stays zero (padding) */
    memcpy(state, st.data, (size_t)n_state * sizeof(float));

    if (tokens_path) {
        if ((rc = pi0_npy_read(tokens_path, &tk)) ||
            (rc = pi0_npy_expect(&tk, tokens_path, PI0_I32, 1, any1))) {
            fail_npy(rc);
            goto out;
        }
        if (tk.shape[0] > in.max_token_len) {
            fprintf(
                stderr,
                "pi0rt-infer: %s: %lld tokens, the model takes at most %d (max_token_len)\n",
                tokens_path, (long long)tk.shape[0], in.max_token_len);
            goto out;
        }
        int n = (int)tk.shape[0];
        memcpy(ids, tk.data, (size_t)n * sizeof(int32_t));
        for (int i = 0; i < n; i++)
            mask[i] = 1;
    }
#ifdef PI0_HAVE_TOKENIZER
    else {
        pi0_tokenizer *tok = NULL;
        int nv = 0;
        if ((rc = pi0_tokenizer_load(tok_path, &tok))) {
            fail_status(tok_path, rc);
            goto out;
        }
        /* openpi tokenizes the robot's state before padding it to the model's width. */
        rc = in.prompt_state ? pi0_prompt_pi05(tok, prompt, state, n_state, in.max_token_len,
                                               ids, mask, &nv)
                             : pi0_prompt_pi0(tok, prompt, in.max_token_len, ids, mask, &nv);
        pi0_tokenizer_destroy(tok);
        if (rc) {
            fail_status("--prompt", rc);
            goto out;
        }
    }
#endif
    obs.tokens = ids;
    obs.token_mask = mask;
    obs.n_tokens = in.max_token_len;

    if (noise_path) {
        int64_t ha[2] = {in.action_horizon, in.action_dim};
        if ((rc = pi0_npy_read(noise_path, &nz)) || (rc = pi0_npy_to_f32(&nz, noise_path)) ||
            (rc = pi0_npy_expect(&nz, noise_path, PI0_F32, 2, ha))) {
            fail_npy(rc);
            goto out;
        }
    }

    pi0_timing best = {0};
    best.total_ms = DBL_MAX;
    for (long r = 0; r < repeat; r++) {
        pi0_timing te = {0}, td = {0};
        pi0_prefix *p = NULL;
        if ((rc = pi0_model_encode(m, &obs, &p, &te))) {
            fail_status("encode", rc);
            goto out;
        }
        rc = pi0_model_denoise(m, p, state, nz.data, chunk, &td);
        if (!rc && dump_dir && r == 0 && dump_stages(m, p, dump_dir, state, nz.data)) rc = -1;
        pi0_prefix_release(m, p);
        if (rc) {
            if (rc != -1) fail_status("denoise", rc);
            goto out;
        }
        double total = te.total_ms + td.denoise_ms;
        if (total < best.total_ms) {
            best = te;
            best.denoise_ms = td.denoise_ms;
            best.total_ms = total;
        }
    }
    if (unnorm && (rc = pi0_model_unnormalize_actions(m, chunk))) {
        fail_status("--unnormalize", rc);
        goto out;
    }
    int64_t shape[2] = {in.action_horizon, in.action_dim};
    if ((rc = pi0_npy_write(out_path, PI0_F32, 2, shape, chunk))) {
        fail_npy(rc);
        goto out;
    }
    if (json) {
        int nc = 0;
        for (int c = 0; c < PI0_MAX_CAMERAS; c++)
            nc += obs.images[c].valid;
        int nt = 0;
        for (int i = 0; i < in.max_token_len; i++)
            nt += mask[i] != 0;
        printf("{\"model\":\"%s\",\"variant\":\"%s\",\"cameras\":%d,\"tokens\":%d,\"steps\":%d,"
               "\"runs\":%ld,\"preprocess_ms\":%.3f,\"vision_ms\":%.3f,\"prefix_ms\":%.3f,"
               "\"denoise_ms\":%.3f,\"total_ms\":%.3f,\"peak_rss_mb\":%.1f}\n",
               model_dir, in.pi05 ? "pi05" : "pi0", nc, nt, in.num_steps, repeat,
               best.preprocess_ms, best.vision_ms, best.prefix_ms, best.denoise_ms,
               best.total_ms, peak_rss_mb());
    }
    ret = 0;
out:
    for (int c = 0; c < PI0_MAX_CAMERAS; c++)
        pi0_npy_free(&imgs[c]);
    pi0_npy_free(&st);
    pi0_npy_free(&tk);
    pi0_npy_free(&nz);
    free(state);
    free(chunk);
    free(ids);
    free(mask);
    pi0_model_destroy(m);
    return ret;
}
