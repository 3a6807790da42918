/* pi0_tokenizer.h — SentencePiece tokenizer (BPE and unigram .model files) and the π0 /
 * π0.5 text prompt formats, in C with no run-time dependencies.
 *
 * Encoding gives the same ids as sentencepiece's EncodeAsIds (checked against spm_encode
 * 0.1.97): the model's normalizer (precompiled charsmap, add_dummy_prefix,
 * remove_extra_whitespaces, escape_whitespaces), user-defined symbols, byte fallback
 * (<0xNN> pieces) and unknown pieces are honoured.
 *
 * Ownership and threads: a loaded tokenizer is immutable; any number of threads may call
 * the encode/decode/prompt functions on it concurrently. pi0_tokenizer_load allocates.
 * Encode and decode keep per-thread working memory that grows to the largest input seen
 * and is freed at thread exit, so repeated calls of a similar size allocate nothing; the
 * prompt functions format prompts up to 2 KiB on the stack. On error nothing is written
 * that the caller may rely on, and pi0_last_error_for(status) says what was wrong. */
#ifndef PI0_TOKENIZER_H
#define PI0_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pi0_tokenizer pi0_tokenizer;

/* Loads a SentencePiece .model file (serialized ModelProto). Returns PI0_ENOENT/PI0_EIO
 * when the file cannot be read, PI0_EFORMAT for a corrupt or truncated file, PI0_ENOTSUP
 * for model types other than BPE and unigram. *out is set only on success. */
PI0_API int pi0_tokenizer_load(const char *path, pi0_tokenizer **out);

/* Same, from a serialized ModelProto in memory (copied; `what` names it in errors). */
PI0_API int pi0_tokenizer_load_buffer(const void *data, size_t size, const char *what,
                                      pi0_tokenizer **out);

/* Frees a tokenizer; NULL is ok. */
PI0_API void pi0_tokenizer_destroy(pi0_tokenizer *tok);

/* EncodeAsIds of text[0..len) (UTF-8; invalid bytes are handled like sentencepiece does).
 * Writes up to max_ids ids to ids (may be NULL when max_ids is 0) and sets *n_ids to the
 * total count; returns PI0_ERANGE when that exceeds max_ids (the first max_ids ids are
 * still written). No BOS/EOS is added. */
PI0_API int pi0_tokenizer_encode(const pi0_tokenizer *tok, const char *text, size_t len,
                                 int32_t *ids, int max_ids, int *n_ids);

/* DecodeIds, as spm_decode: concatenates the pieces (control pieces give nothing, the
 * unknown piece gives the model's unk_surface, default " ⁇ ", runs of byte pieces are
 * reassembled into UTF-8 with U+FFFD for invalid bytes), turns U+2581 back into spaces
 * and drops the leading space of the first piece(s) when the model adds a dummy prefix or
 * removes extra whitespace. Writes a NUL-terminated string when cap > 0; *out_len is the
 * full length without NUL; PI0_ERANGE when it does not fit in cap. PI0_EINVAL (naming the
 * id) for an id outside [0, vocab size). */
PI0_API int pi0_tokenizer_decode(const pi0_tokenizer *tok, const int32_t *ids, int n, char *out,
                                 size_t cap, size_t *out_len);

/* Vocabulary size (number of pieces). */
PI0_API int pi0_tokenizer_vocab_size(const pi0_tokenizer *tok);
/* Special ids from the model's trainer spec; -1 when the model has none. */
PI0_API int pi0_tokenizer_bos_id(const pi0_tokenizer *tok);
PI0_API int pi0_tokenizer_eos_id(const pi0_tokenizer *tok);
PI0_API int pi0_tokenizer_pad_id(const pi0_tokenizer *tok);
PI0_API int pi0_tokenizer_unk_id(const pi0_tokenizer *tok);
/* Piece text of an id (NUL-terminated, owned by tok), or NULL when out of range. */
PI0_API const char *pi0_tokenizer_id_to_piece(const pi0_tokenizer *tok, int id);
/* Id of a piece (exact match), or -1. */
PI0_API int pi0_tokenizer_piece_to_id(const pi0_tokenizer *tok, const char *piece);

/* π0 prompt (openpi PaligemmaTokenizer, non-π0.5 branch):
 *   encode(clean(prompt)) with BOS in front, then encode("\n"),
 * where clean = strip surrounding whitespace, '_' -> ' ', '\n' -> ' '. The ids are padded
 * with 0 (not pad_id) up to max_len, or truncated to max_len when longer; mask[i] = 1 for
 * real tokens, 0 for padding. *n_valid = number of real tokens (<= max_len). ids and mask
 * must hold max_len entries. PI0_EINVAL for max_len <= 0 or a NULL argument. */
PI0_API int pi0_prompt_pi0(const pi0_tokenizer *tok, const char *prompt, int max_len,
                           int32_t *ids, uint8_t *mask, int *n_valid);

/* π0.5 prompt (openpi PaligemmaTokenizer, discrete-state branch):
 *   BOS + encode("Task: {clean}, State: {d0 d1 ...};\nAction: ")
 * where each d_i = digitize(state[i], linspace(-1, 1, 257)[:-1]) - 1, an integer in
 * [0, 255] (state is already normalized; NaN is rejected with PI0_EINVAL), written in
 * decimal and joined with single spaces. Padding/truncation/mask as pi0_prompt_pi0. */
PI0_API int pi0_prompt_pi05(const pi0_tokenizer *tok, const char *prompt, const float *state,
                            int state_dim, int max_len, int32_t *ids, uint8_t *mask,
                            int *n_valid);

/* Formats the π0.5 prompt text (without BOS) into out (NUL-terminated when cap > 0);
 * *out_len = full length; PI0_ERANGE when it does not fit. Exposed for tests and tools. */
PI0_API int pi0_prompt_pi05_text(const char *prompt, const float *state, int state_dim,
                                 char *out, size_t cap, size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif /* PI0_TOKENIZER_H */
