/* expert.h — the action expert (Gemma 300M, PI0-SPEC.md §5): its weights (with the time
 * conditioning precomputed for every step), its activations, and one velocity
 * evaluation over a slot's cached prefix. Internal to pipeline/model/. */
#ifndef PI0_MODEL_EXPERT_H
#define PI0_MODEL_EXPERT_H

#include "gemma.h"

/* Notation: E expert width, Hd = n_heads·head_dim, H horizon, A action_dim,
 * S suffix tokens (π0: 1 + H, π0.5: H), T num_steps. */
typedef struct pi0__expert {
    int pi05;
    int horizon;    /* H */
    int action_dim; /* A */
    int state_dim;
    int suffix;    /* S */
    int num_steps; /* T */

    /* weights */
    pi0_buf *params;        /* the f32 vectors below (norms, biases) */
    pi0__gemma gemma;       /* π0: (1 + w) RMSNorms; π0.5: adaptive norms from cond */
    pi0_mat final_norm;     /* π0: [1, E] */
    pi0__linear state_proj; /* π0: [E, state_dim] */
    pi0__linear action_in;  /* [E, A] */
    pi0__linear action_out; /* [A, E] */
    pi0__linear time_a;     /* π0: action half of action_time_mlp_in [E, E] (ld 2E), no bias */
    pi0__linear time_out;   /* π0: action_time_mlp_out [E, E] */
    /* Per-step conditioning, computed at load:
     *   π0:   cond = [T, E]: time half of action_time_mlp_in applied to time_emb(t_s) + bias
     *   π0.5: cond = [(2·depth + 1), T, 3E]: adaptive-norm [scale|shift|gate] of layer l's
     *         input (block 2l) and post-attention (2l + 1) norm, final norm (block 2·depth) */
    pi0_buf *cond;

    /* activations */
    pi0_buf *xt, *vt;   /* [H, A]: x_t (uploaded by the caller) and the velocity */
    pi0_buf *state;     /* [1, state_dim] (π0), uploaded by the caller */
    pi0_buf *st_tok;    /* [1, E] (π0): the state token's hidden state */
    pi0_buf *ai, *et;   /* [H, E] */
    pi0_buf *h, *x, *o; /* [S, E] */
    pi0_buf *q, *a;     /* [S, Hd] */
    pi0_buf *g, *u;     /* [S, mlp] */
} pi0__expert;

/* openpi's denoising schedule (sample_actions), in float32: dt = −1/T rounded to float,
 * t_0 = 1 and t_{s+1} = t_s + dt accumulated in float (0.9f, 0.79999995f, … for T = 10,
 * not 1 − s/T); the Euler step is x += dt · v with the same float dt. */
static inline float pi0__step_dt(int num_steps) {
    return (float)(-1.0 / num_steps);
}

/* Loads the expert weights of w, computes the time conditioning of num_steps steps and
 * allocates the activations; synchronous on s. On failure the caller frees e with
 * pi0__expert_free. */
int pi0__expert_load(pi0__expert *e, pi0_dev *dev, pi0_stream *s, const pi0_weights *w,
                     int num_steps);
void pi0__expert_free(pi0__expert *e);

/* Per-denoise setup over a slot whose prefix fills cache rows [0, n). π0: the state token
 * (from e->state) through every expert layer once, its K/V into cache row n; π0.5:
 * nothing. Enqueued on s. */
int pi0__expert_begin(pi0__expert *e, pi0_stream *s, const pi0__kv *kv, int n);

/* One velocity evaluation v(e->xt, t_step) into e->vt over the H action rows, their K/V in
 * cache rows [n + S − H, n + S) (π0: needs pi0__expert_begin on the same slot first).
 * Enqueued on s. */
int pi0__expert_velocity(pi0__expert *e, pi0_stream *s, const pi0__kv *kv, int n, int step);

#endif /* PI0_MODEL_EXPERT_H */
