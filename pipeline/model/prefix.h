/* prefix.h — the Gemma 2B prefix (PaliGemma's language model, PI0-SPEC.md §4.2–4.6): its
 * weights, activations and forward pass over image + prompt tokens into a K/V cache.
 * Internal to pipeline/model/. */
#ifndef PI0_MODEL_PREFIX_H
#define PI0_MODEL_PREFIX_H

#include "gemma.h"

/* Notation: W VLM width, Hd = n_heads·head_dim, N most prefix tokens. */
typedef struct pi0__vlm {
    int max_tokens; /* N */
    int max_ids;    /* max_token_len */

    /* weights */
    pi0_buf *params;   /* the RMSNorm weights */
    pi0_weight *embed; /* [vocab, W], mmapped */
    pi0__gemma gemma;  /* the last layer has only K and V */

    /* activations */
    pi0_buf *h, *x; /* [N, W]: rows [0, n_img) are the image tokens (vision's output) */
    pi0_buf *q, *a; /* [N, Hd] */
    pi0_buf *g, *u; /* [N, mlp] */
    pi0_buf *ids;   /* I32 [max_token_len] prompt ids, uploaded by the caller */
} pi0__vlm;

/* Loads the VLM weights of w, allocates activations for max_tokens rows; synchronous on
 * s. On failure the caller frees p with pi0__vlm_free. */
int pi0__vlm_load(pi0__vlm *p, pi0_dev *dev, pi0_stream *s, const pi0_weights *w,
                  int max_tokens);
void pi0__vlm_free(pi0__vlm *p);

/* The first n rows of p->h (the image tokens' destination: [n, W]). */
pi0_mat pi0__vlm_rows(const pi0__vlm *p, int n);

/* Embeds the n_tok ids in p->ids into h rows [n_img, n_img + n_tok), then runs the Gemma
 * prefix over the n = n_img + n_tok compact tokens, leaving their K/V in cache rows
 * [0, n). Enqueued on s. */
int pi0__vlm_forward(pi0__vlm *p, pi0_stream *s, const pi0__kv *kv, int n_img, int n_tok);

#endif /* PI0_MODEL_PREFIX_H */
