/* pi0_weights.h — a π0 / π0.5 checkpoint directory, loaded as a table of tensor views.
 *
 * pi0_weights_load(dir) reads DIR/config.json, DIR/model.safetensors (or
 * DIR/model.safetensors.index.json + its shards) and, when present, DIR/norm_stats.json.
 * The safetensors files are mmapped read-only and never copied: every pi0_tensor below is
 * a borrowed view into a mapping that lives until pi0_weights_destroy. Loading touches
 * only the JSON headers (the 257152-row embedding is paged in row by row when used).
 *
 * Every size comes from the checkpoint (see PI0-SPEC.md §1–2): widths, depths, mlp sizes,
 * vocab, patch size, number of patches and action_dim from tensor shapes; head counts and
 * head_dim from config.json (override keys, or the paligemma/action-expert variant tables);
 * π0 vs π0.5 from the tensors present (a contradicting `pi05` in config.json is an error).
 * The VLM and the expert must agree on depth, n_heads, n_kv_heads and head_dim (they
 * attend jointly layer by layer; openpi concatenates their per-head q/k/v) — checked.
 * Key spellings accepted and config.json fields read: see README.md "pipeline: checkpoints
 * and preprocessing".
 * After a successful load every field documented as present has exactly the shape written
 * in its comment (the loader checks them all), so the model code may trust the shapes.
 *
 * Layouts (PyTorch): linear weights are [out_features, in_features] row-major; biases
 * [out]. The patch embedding [vw, 3, p, p] is, read as a matrix, [vw, 3·p·p] with columns
 * in (c, kh, kw) order — the order preprocess.h's pi0_patchify_u8 produces.
 *
 * Notation in shape comments: vw = cfg.vision.width, p = cfg.vision.patch,
 * np = cfg.vision.n_patches, W = cfg.vlm.width, E = cfg.expert.width,
 * A = cfg.action_dim, S = cfg.state_dim; "H·d" = n_heads·head_dim, "K·d" = n_kv_heads·head_dim.
 *
 * Threads: a loaded pi0_weights is immutable; any number of threads may read it. */
#ifndef PI0_WEIGHTS_H
#define PI0_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_dtype.h"
#include "common/pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PI0_TENSOR_MAX_DIMS 4

/* A view into a mapped checkpoint. An absent optional tensor has data == NULL, ndim == 0
 * and name == NULL (test with pi0_tensor_present). */
typedef struct pi0_tensor {
    const char *name; /* safetensors key as found in the file (owned by pi0_weights) */
    const void *data; /* first element, read-only mapping; not necessarily aligned beyond
                         the dtype size (safetensors gives no alignment guarantee) */
    pi0_dtype dtype;  /* PI0_F32, PI0_BF16 or PI0_F16 */
    int ndim;         /* 1..4 */
    int64_t shape[PI0_TENSOR_MAX_DIMS]; /* unused dims are 1 */
} pi0_tensor;

static inline int pi0_tensor_present(const pi0_tensor *t) {
    return t->data != NULL;
}

/* Sizes of one transformer. For the vision tower n_kv_heads == n_heads and vocab == 0;
 * for the expert vocab == 0. */
typedef struct pi0_tower_config {
    int width; /* hidden size */
    int depth; /* number of layers */
    int mlp;   /* MLP hidden size */
    int n_heads;
    int n_kv_heads;
    int head_dim;
    int vocab; /* VLM only: rows of the embedding table */
} pi0_tower_config;

typedef struct pi0_config {
    int pi05;           /* 1 = π0.5 (detected from the tensors), 0 = π0 */
    int action_dim;     /* A: action width (rows of action_out_w) */
    int state_dim;      /* S: π0: columns of state_proj_w; π0.5: max_state_dim from
                           config.json if given, else action_dim */
    int action_horizon; /* chunk length (config.json; default 50) */
    int num_steps;      /* denoising steps (config.json; default 10) */
    int max_token_len;  /* prompt length (config.json; default 48 for π0, 200 for π0.5) */
    int discrete_state_input; /* the prompt carries the digitized state ("Task: …, State:
                                 …;\nAction: "): openpi's discrete_state_input, default
                                 = pi05; false e.g. for pi05_libero (π0 prompt format) */
    pi0_tower_config vision;  /* SigLIP; n_kv_heads == n_heads */
    int patch;                /* p: patch size (from patch_w) */
    int image;                /* input image side: PI0_IMAGE_SIZE (preprocess.h) */
    int n_patches;            /* np = (image/p)^2, checked against pos_emb rows */
    pi0_tower_config vlm;     /* Gemma (PaliGemma language model) */
    pi0_tower_config expert;  /* Gemma action expert; same depth and head_dim as vlm */
    float ln_eps;             /* vision LayerNorm eps, 1e-6 */
    float rms_eps;            /* Gemma RMSNorm eps, 1e-6 */
    float rope_theta;         /* 10000 */
} pi0_config;

/* One SigLIP encoder block (all present). */
typedef struct pi0_vision_layer {
    pi0_tensor ln1_w, ln1_b; /* [vw] layer_norm1 */
    pi0_tensor q_w, q_b;     /* [vw, vw], [vw]  (H·d == vw) */
    pi0_tensor k_w, k_b;     /* [vw, vw], [vw] */
    pi0_tensor v_w, v_b;     /* [vw, vw], [vw] */
    pi0_tensor o_w, o_b;     /* [vw, vw], [vw]  self_attn.out_proj */
    pi0_tensor ln2_w, ln2_b; /* [vw] layer_norm2 */
    pi0_tensor fc1_w, fc1_b; /* [mlp, vw], [mlp] */
    pi0_tensor fc2_w, fc2_b; /* [vw, mlp], [vw] */
} pi0_vision_layer;

/* One Gemma block, VLM (width W) or expert (width E; written w below). No biases on the
 * projections.
 *   π0 and the VLM:  in_norm, post_norm = RMSNorm weight [w] (used as 1 + weight);
 *                    in_norm_b, post_norm_b absent.
 *   π0.5 expert:     in_norm, post_norm = adaptive-norm dense.weight [3w, E] (maps the
 *                    time conditioning of width E to [scale | shift | gate], each w wide);
 *                    in_norm_b, post_norm_b = dense.bias [3w]. */
typedef struct pi0_gemma_layer {
    pi0_tensor in_norm, in_norm_b;     /* input_layernorm */
    pi0_tensor q;                      /* [H·d, w] */
    pi0_tensor k;                      /* [K·d, w] */
    pi0_tensor v;                      /* [K·d, w] */
    pi0_tensor o;                      /* [w, H·d] */
    pi0_tensor post_norm, post_norm_b; /* post_attention_layernorm */
    pi0_tensor gate;                   /* [mlp, w] */
    pi0_tensor up;                     /* [mlp, w] */
    pi0_tensor down;                   /* [w, mlp] */
} pi0_gemma_layer;

/* openpi norm stats for one quantity (state or actions): arrays of `dim` floats, owned by
 * pi0_weights. dim == 0 and all NULL when the quantity is absent; q01/q99 may be NULL when
 * the file does not give them (z-score only). Validated: finite, std >= 0, q01 <= q99. */
typedef struct pi0_norm_stats {
    int dim;
    float *mean; /* [dim] */
    float *std;  /* [dim] */
    float *q01;  /* [dim] or NULL */
    float *q99;  /* [dim] or NULL */
} pi0_norm_stats;

typedef struct pi0_weights {
    pi0_config cfg;

    /* ---- vision (SigLIP) ---- */
    pi0_tensor patch_w;              /* [vw, 3, p, p] */
    pi0_tensor patch_b;              /* [vw] */
    pi0_tensor pos_emb;              /* [np, vw] */
    pi0_vision_layer *vision;        /* [cfg.vision.depth] */
    pi0_tensor post_ln_w, post_ln_b; /* [vw] post_layernorm */

    /* ---- projector ---- */
    pi0_tensor proj_w; /* [W, vw] multi_modal_projector.linear */
    pi0_tensor proj_b; /* [W] */

    /* ---- language model (Gemma 2B) ---- */
    pi0_tensor embed;     /* [vocab, W]: language_model.embed_tokens.weight, or the tied
                             paligemma.lm_head.weight when embed_tokens is absent */
    pi0_gemma_layer *vlm; /* [cfg.vlm.depth] */
    pi0_tensor vlm_norm;  /* [W] final norm; optional (not needed for actions) */

    /* ---- action expert (Gemma 300M) ---- */
    pi0_gemma_layer *expert;  /* [cfg.expert.depth] */
    pi0_tensor expert_norm;   /* π0: [E] norm.weight; π0.5: [3E, E] norm.dense.weight */
    pi0_tensor expert_norm_b; /* π0: absent;        π0.5: [3E] norm.dense.bias */

    /* ---- heads ---- */
    pi0_tensor state_proj_w, state_proj_b; /* π0 only: [E, S], [E]; absent for π0.5 */
    pi0_tensor action_in_w, action_in_b;   /* [E, A], [E] action_in_proj */
    pi0_tensor action_out_w, action_out_b; /* [A, E], [A] action_out_proj */
    pi0_tensor time_in_w, time_in_b;       /* π0: action_time_mlp_in [E, 2E], [E];
                                              π0.5: time_mlp_in [E, E], [E] */
    pi0_tensor time_out_w, time_out_b;     /* π0: action_time_mlp_out [E, E], [E];
                                              π0.5: time_mlp_out [E, E], [E] */

    /* ---- norm_stats.json (optional) ---- */
    int has_norm_stats;          /* 1 when DIR/norm_stats.json was found and loaded */
    pi0_norm_stats state_stats;  /* "state" */
    pi0_norm_stats action_stats; /* "actions" */
} pi0_weights;

/* Loads checkpoint directory `dir` (see the top of this file). Allocates the table and
 * maps the files; touches only headers. On success *out owns everything; on failure *out
 * is untouched, nothing leaks, and pi0_last_error_for(status) names the file and the key/value
 * that was wrong. Codes: PI0_ENOENT (missing file or tensor key), PI0_EFORMAT (corrupt
 * safetensors/JSON), PI0_ESHAPE (mis-shaped tensor), PI0_ETYPE (unsupported dtype),
 * PI0_ECONFIG (bad or contradicting config.json / norm_stats.json), PI0_EIO, PI0_ENOMEM.
 * Not thread-affine; may be called from any thread. */
PI0_API int pi0_weights_load(const char *dir, pi0_weights **out);

/* Unmaps and frees everything; all pi0_tensor views become invalid. NULL is ok. */
PI0_API void pi0_weights_destroy(pi0_weights *w);

/* Looks a tensor up by its key as stored in the file(s) (any tensor, including ones the
 * table does not use, e.g. gemma_expert.lm_head.weight). NULL when absent. */
PI0_API const pi0_tensor *pi0_weights_find(const pi0_weights *w, const char *key);

/* Number of tensors in the checkpoint (all shards). */
PI0_API int pi0_weights_count(const pi0_weights *w);

/* Elements and bytes of a tensor view. */
PI0_API int64_t pi0_tensor_numel(const pi0_tensor *t);
PI0_API size_t pi0_tensor_nbytes(const pi0_tensor *t);

/* Drops the mapped pages that lie wholly inside t from this process's memory, for a tensor
 * whose contents were copied elsewhere (e.g. a device weight the backend repacked). Safe:
 * the mapping is read-only and private, so a later read faults the page in from the file
 * again. No-op for an absent tensor. */
PI0_API void pi0_tensor_evict(const pi0_tensor *t);

/* Converts elements [first, first + n) of `t` (flattened, C order) to f32 into `out`
 * (F32 copied, BF16/F16 widened exactly). No allocation; touches only those elements.
 * PI0_ERANGE if the range is outside the tensor. Useful for biases, norms and embedding
 * rows. */
PI0_API int pi0_tensor_to_f32(const pi0_tensor *t, int64_t first, int64_t n, float *out);

#ifdef __cplusplus
}
#endif
#endif /* PI0_WEIGHTS_H */
