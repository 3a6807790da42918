/* model_internal.h — struct pi0_model and struct pi0_prefix (see pi0_pipeline.h): the
 * three stages (vision.h, prefix.h, expert.h), each owning its weights and activations,
 * the streams they run on, the prefix slots with their K/V caches and the host staging.
 * Only model.c sees these; a stage sees its own struct and the cache (gemma.h).
 *
 * Notation in shape comments: C = PI0_MAX_CAMERAS, np patches per camera, p patch side,
 * N = C·np + max_token_len (most prefix tokens), S = suffix tokens (π0: 1 + horizon,
 * π0.5: horizon), H = horizon, A = action_dim. */
#ifndef PI0_MODEL_INTERNAL_H
#define PI0_MODEL_INTERNAL_H

#include <pthread.h>

#include "expert.h"
#include "pipeline/pi0_pipeline.h"
#include "pipeline/preprocess/preprocess.h"
#include "prefix.h"
#include "rng.h"
#include "vision.h"

struct pi0_prefix {
    int index;   /* slot number */
    int held;    /* encoded and not released (under pi0_model.lock) */
    int busy;    /* a denoise / velocity / read_kv runs on it (under pi0_model.lock) */
    int n_valid; /* valid prefix tokens in the cache */
    int n_cams;  /* valid cameras */
    pi0__kv kv;  /* [depth] × K, V [N + S, Kd]: prefix rows, then the suffix rows */
};

struct pi0_model {
    pi0_weights *w;
    pi0_config cfg;
    int num_steps;
    int n_max;  /* N */
    int suffix; /* S */
    int keep_vision;

    pi0_dev *dev;
    pi0_stream *sa, *sb; /* stage A (encode) and stage B (denoise) streams */
    pi0_buf *pos;        /* I32 [N + S]: 0, 1, 2, … (every slot's cache positions) */

    pi0__vision vis; /* SigLIP + projector (stage A) */
    pi0__vlm vlm;    /* Gemma prefix (stage A) */
    pi0__expert exp; /* action expert (stage B) */

    /* ---- stage A host side ---- */
    pi0_buf *vis_copy; /* [C·np, W] image tokens when keep_vision */
    int vis_rows;
    float *h_patches;  /* host staging [C·np, 3·p·p] */
    uint8_t *h_conv;   /* RGB scratch [prep_h, prep_w, 3] for BGR / gray / rotated frames */
    pi0_preproc *prep; /* resize/pad/patchify scratch for prep_w × prep_h sources */
    int prep_w, prep_h;
    int32_t *h_ids; /* host staging [max_token_len] */

    /* ---- stage B host side ---- */
    float *h_noise; /* default noise [H, A] (draw_noise) */
    pi0__rng rng;   /* default noise, xoshiro256** (stage B only) */

    /* ---- slots ---- */
    pthread_mutex_t lock;
    pi0_prefix slots[PI0_PREFIX_SLOTS];
};

#endif /* PI0_MODEL_INTERNAL_H */
