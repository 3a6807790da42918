/* pi0_pipeline.h — π0 / π0.5 inference on a pi0rt device: load once, then per
 * observation encode (stage A: preprocess, SigLIP, projector, Gemma prefix → KV cache
 * slot) and denoise (stage B: num_steps expert passes with Euler steps → action chunk).
 *
 * Numerics follow PI0-SPEC.md (fp32 activations, weights f32/bf16/f16 as stored).
 * Dead compute is skipped: masked cameras and padded prompt tokens are never computed
 * (the valid prefix tokens are compacted, positions = their index), the last VLM layer
 * stops after its K/V, the time conditioning (π0.5 adaptive-norm modulations, π0 time
 * half of action_time_mlp_in) is precomputed at load for every step.
 *
 * Memory: everything (device activations for 3 cameras + max_token_len tokens + the
 * suffix, two KV-cache slots, host staging) is allocated by pi0_model_load; encode and
 * denoise allocate nothing. Weights stay memory-mapped and are borrowed by the device
 * where it can (cpu backend with f32/bf16).
 *
 * Threads (the node's two-stage pipeline): encode runs on the model's stage-A stream,
 * denoise / velocity on its stage-B stream. One thread may call pi0_model_encode while
 * another calls pi0_model_denoise on a DIFFERENT slot; at most one encode and one denoise
 * at a time (each stage is single-threaded). pi0_prefix_release and the info /
 * normalization helpers may be called from any thread. Load and destroy are not
 * concurrent with anything. */
#ifndef PI0_PIPELINE_H
#define PI0_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PI0_MAX_CAMERAS                                                                        \
    3 /* model slots: 0 base_0_rgb, 1 left_wrist_0_rgb, 2 right_wrist_0_rgb */
#define PI0_PREFIX_SLOTS 2 /* KV-cache slots: one being encoded, one being denoised */

typedef struct pi0_model pi0_model;   /* loaded weights + device + buffers */
typedef struct pi0_prefix pi0_prefix; /* one encoded observation (a KV-cache slot) */

typedef struct pi0_model_opts {
    const char *backend; /* device backend name; NULL = "cpu" */
    int n_threads;       /* compute threads; 0 = backend default (one per allowed CPU) */
    const int *cpus;     /* pin compute threads to these CPUs; NULL = current affinity */
    int n_cpus;
    int num_steps;   /* denoising steps; 0 = config.json's num_steps */
    uint64_t seed;   /* seed of the default noise generator */
    int keep_vision; /* 1 = keep a copy of the image tokens for pi0_model_read_vision */
    int max_image_w, max_image_h; /* largest camera image expected (preprocessing scratch
                                     is sized for it at load; 0 = 1920 × 1200); a larger
                                     image makes encode grow it once */
    int precision; /* GEMM arithmetic, a pi0_precision of device/pi0_device.h: 0 = f32 (the
                      default), 1 = bf16 weights and GEMM inputs with f32 sums */
} pi0_model_opts;

/* Sizes of a loaded model (all from the checkpoint). */
typedef struct pi0_model_info {
    int pi05;           /* 1 = π0.5 */
    int action_dim;     /* A: columns of the chunk and of the noise */
    int action_horizon; /* rows of the chunk */
    int state_dim;      /* floats denoise reads from `state` (π0: state_proj input; π0.5:
                           the state enters through the prompt, denoise ignores it) */
    int prompt_state;   /* 1: prompts carry the digitized state (pi0_prompt_pi05 with the
                           robot's normalized state before padding); 0: pi0_prompt_pi0
                           (config.json discrete_state_input, default = pi05) */
    int num_steps;      /* in use (opts override or config) */
    int max_token_len;  /* most prompt tokens per observation */
    int vocab;          /* valid token ids are [0, vocab) */
    int image_size;     /* model input side (224); encode resizes any size to it */
    int n_patches;      /* image tokens per camera */
    int vlm_depth;      /* layers (= KV-cache layers) */
    int vlm_width;      /* columns of the image tokens (pi0_model_read_vision) */
    int kv_dim;         /* n_kv_heads · head_dim of the cache */
    int has_norm_stats; /* norm_stats.json was loaded */
} pi0_model_info;

/* Pixel layouts encode reads (the model sees RGB; BGR and gray are converted on the fly,
 * so a camera's shared-memory frame can be passed in place). */
enum pi0_image_format { PI0_IMAGE_RGB = 0, PI0_IMAGE_BGR = 1, PI0_IMAGE_GRAY = 2 };

/* One camera image: uint8 HWC, any size. Not used when valid == 0. */
typedef struct pi0_image_view {
    const uint8_t *rgb; /* height rows of `stride` bytes (3 bytes per pixel, 1 for gray) */
    int width, height;
    int stride;    /* bytes per row; 0 = packed */
    int valid;     /* 0 = masked camera (skipped entirely) */
    int format;    /* enum pi0_image_format; 0 = RGB */
    int rotate180; /* 1: the model sees the image rotated by 180° */
} pi0_image_view;

typedef struct pi0_observation {
    pi0_image_view images[PI0_MAX_CAMERAS];
    const int32_t *tokens;     /* [n_tokens] prompt ids (e.g. from pi0_prompt_pi0) */
    const uint8_t *token_mask; /* [n_tokens] 1 = real token, 0 = padding; NULL = all real */
    int n_tokens;              /* <= max_token_len */
    /* Optional: called by encode once the images are preprocessed into the staging
     * buffer (they are not read after it). A non-zero return aborts encode with that
     * status and frees the slot (e.g. PI0_EOVERRUN: a zero-copy frame was overwritten
     * while it was read). */
    int (*images_done)(void *ctx);
    void *images_ctx;
} pi0_observation;

/* Wall-clock milliseconds of each stage (each measured up to its stream's completion). */
typedef struct pi0_timing {
    double preprocess_ms; /* resize + pad + patchify on the host (the async upload
                             is counted in vision_ms) */
    double vision_ms;     /* SigLIP + projector over the valid cameras */
    double prefix_ms;     /* embedding + Gemma prefix → KV cache */
    double denoise_ms;    /* num_steps expert passes + Euler + chunk download */
    double total_ms;      /* wall time of this call (encode: preprocess + vision +
                             prefix; denoise: denoise) */
} pi0_timing;

/* Loads checkpoint directory `dir` (see pi0_weights.h), opens the device and allocates
 * everything for the worst case. opts may be NULL. On failure nothing leaks, *out is
 * untouched and pi0_last_error_for(status) says what was wrong. */
PI0_API int pi0_model_load(const char *dir, const pi0_model_opts *opts, pi0_model **out);
/* PI0_EBUSY (nothing freed) while a prefix slot is still held. NULL ok. */
PI0_API int pi0_model_destroy(pi0_model *m);
PI0_API void pi0_model_get_info(const pi0_model *m, pi0_model_info *info);

/* Stage A. Preprocesses the valid images, runs SigLIP + projector + the Gemma prefix and
 * leaves the K/V cache in a free slot, returned in *out (blocks until it is complete).
 * PI0_EAGAIN when both slots are held; PI0_EINVAL / PI0_ERANGE for a bad observation (no
 * valid camera and no token, too many tokens, an id outside the vocabulary, a bad image
 * size). `timing` may be NULL; encode fills preprocess/vision/prefix/total. */
PI0_API int pi0_model_encode(pi0_model *m, const pi0_observation *obs, pi0_prefix **out,
                             pi0_timing *timing);

/* Stage B. Denoises from `noise` ([horizon, action_dim] f32, standard normal; NULL = draw
 * it from the model's generator: xoshiro256** seeded with splitmix64(opts.seed),
 * Box–Muller, row-major) and writes the normalized chunk [horizon, action_dim] to `chunk`.
 * state: [state_dim] normalized, zero-padded (π0; ignored and may be NULL for π0.5).
 * Blocks until the chunk is written; state and noise are read (uploaded from these
 * pointers, no copy kept) before it returns. `timing` may be NULL; fills denoise/total.
 * Writes the slot's suffix rows (behind the prefix's cached K/V, which it only reads):
 * a second stage-B call on the same slot meanwhile gets PI0_EBUSY. The slot stays held
 * (denoise may be repeated on it) until pi0_prefix_release.
 * PI0_EINVAL (nothing computed, chunk untouched) when state or noise holds a NaN or ±Inf,
 * naming the input and its first bad index. */
PI0_API int pi0_model_denoise(pi0_model *m, pi0_prefix *p, const float *state,
                              const float *noise, float *chunk, pi0_timing *timing);

/* Gives the slot back for a later encode. Does not wait: PI0_EBUSY (slot still held,
 * nothing changed) while a denoise, velocity or read_kv runs on it — release after it
 * returns. PI0_EINVAL for a pointer that is not one of m's slots. NULL ok. Any thread. */
PI0_API int pi0_prefix_release(pi0_model *m, pi0_prefix *p);

/* ---- normalization (openpi norm_stats.json, PI0-SPEC.md §6) ------------------------ */

/* state: raw robot state [n] → normalized, zero-padded to [state_dim] in out.
 * π0: z-score (x − mean)/(std + 1e-6); π0.5: quantile (x − q01)/(q99 − q01 + 1e-6)·2 − 1.
 * PI0_ENOENT when the model has no norm stats, PI0_ESHAPE when n exceeds their length,
 * PI0_EINVAL naming the first NaN or ±Inf value. */
PI0_API int pi0_model_normalize_state(const pi0_model *m, const float *state, int n,
                                      float *out);
/* Inverse for the action chunk, in place on the first min(action_dim, stats dim) columns
 * of chunk [horizon, action_dim]. */
PI0_API int pi0_model_unnormalize_actions(const pi0_model *m, float *chunk);

/* ---- introspection (tests, pi0rt-infer --dump) ------------------------------------- */

/* Number of valid prefix tokens (valid cameras · n_patches + real tokens) of a slot. */
PI0_API int pi0_prefix_len(const pi0_prefix *p);
/* Copies layer `layer`'s cached K and V rows of the valid prefix tokens
 * ([pi0_prefix_len, kv_dim] each, f32) to k and v (either may be NULL). Stage-B thread. */
PI0_API int pi0_prefix_read_kv(pi0_model *m, pi0_prefix *p, int layer, float *k, float *v);
/* Image tokens after the projector of the last encode, valid cameras only
 * ([n_valid_cameras · n_patches, vlm width] f32); *n_rows gets the row count. Only
 * available when the model was loaded with opts.keep_vision (it costs one device copy per
 * encode); else PI0_ENOTSUP. Stage-A thread. */
PI0_API int pi0_model_read_vision(pi0_model *m, float *out, size_t cap_floats, int *n_rows);
/* One velocity evaluation v(x_t, t) with t = t_step of openpi's float32 schedule (t_0 = 1,
 * t_{s+1} = t_s + dt with dt = (float)(−1/num_steps)), x_t [horizon,
 * action_dim] → v [horizon, action_dim]. Blocks; state and x_t are read before it
 * returns. Stage-B thread. */
PI0_API int pi0_model_velocity(pi0_model *m, pi0_prefix *p, const float *state,
                               const float *x_t, int step, float *v);

#ifdef __cplusplus
}
#endif
#endif /* PI0_PIPELINE_H */
