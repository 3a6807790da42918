/* tokenizer_prompt.c — the π0 and π0.5 text prompt formats.
 *
 * Semantics follow openpi's PaligemmaTokenizer.tokenize (src/openpi/models/tokenizer.py,
 * Physical-Intelligence/openpi):
 *   cleaned = prompt.strip().replace("_", " ").replace("\n", " ")
 *   π0.5:  state_str = " ".join(map(str, np.digitize(state, np.linspace(-1, 1, 257)[:-1]) - 1))
 *          tokens = encode(f"Task: {cleaned}, State: {state_str};\nAction: ", add_bos=True)
 *   π0:    tokens = encode(cleaned, add_bos=True) + encode("\n")
 *   then pad with 0 (mask False) to max_len, or cut to max_len (mask all True). */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pipeline/pi0_tokenizer.h"

/* Length of the Python-whitespace character (str.isspace) at s, or 0. */
static size_t py_space_len(const unsigned char *s, size_t n) {
    if (n == 0) return 0;
    unsigned c = s[0];
    if ((c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20)) return 1;
    if (n >= 2 && c == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0)) return 2; // U+0085, U+00A0
    if (n >= 3 && c == 0xE1 && s[1] == 0x9A && s[2] == 0x80) return 3;   // U+1680
    if (n >= 3 && c == 0xE2 && s[1] == 0x80 &&
        ((s[2] >= 0x80 && s[2] <= 0x8A) || s[2] == 0xA8 || s[2] == 0xA9 || s[2] == 0xAF))
        return 3; // U+2000..U+200A, U+2028, U+2029, U+202F
    if (n >= 3 && c == 0xE2 && s[1] == 0x81 && s[2] == 0x9F) return 3; // U+205F
    if (n >= 3 && c == 0xE3 && s[1] == 0x80 && s[2] == 0x80) return 3; // U+3000
    return 0;
}

/* Start of the UTF-8 character that ends at s[n-1] (for stripping from the right). */
static size_t last_char_start(const unsigned char *s, size_t n) {
    size_t i = n - 1;
    while (i > 0 && n - i < 4 && (s[i] & 0xC0) == 0x80)
        i--;
    return i;
}

/* The bounds [*a, *b) of prompt.strip() (Python whitespace). */
static void strip_bounds(const char *prompt, size_t *a_out, size_t *b_out) {
    const unsigned char *s = (const unsigned char *)prompt;
    size_t a = 0, b = strlen(prompt), k;
    while (a < b && (k = py_space_len(s + a, b - a)) > 0)
        a += k;
    while (b > a) {
        size_t st = last_char_start(s + a, b - a) + a;
        if (py_space_len(s + st, b - st) != b - st) break;
        b = st;
    }
    *a_out = a;
    *b_out = b;
}

/* Bounded string writer: keeps writing past cap only in the count. */
typedef struct writer {
    char *out;
    size_t cap, n;
} writer;

static void put(writer *w, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++, w->n++)
        if (w->n + 1 < w->cap) w->out[w->n] = s[i];
}

/* clean(prompt) = prompt.strip().replace("_", " ").replace("\n", " ") */
static void put_clean(writer *w, const char *prompt) {
    size_t a, b;
    strip_bounds(prompt, &a, &b);
    for (size_t i = a; i < b; i++)
        put(w, prompt[i] == '_' || prompt[i] == '\n' ? " " : prompt + i, 1);
}

static int finish(writer *w, size_t *out_len, const char *what) {
    if (w->cap > 0) w->out[w->n < w->cap ? w->n : w->cap - 1] = 0;
    *out_len = w->n;
    if (w->n >= w->cap)
        return pi0_errorf(PI0_ERANGE, "%s: %zu bytes do not fit in %zu", what, w->n, w->cap);
    return 0;
}

/* np.digitize(x, linspace(-1, 1, 257)[:-1]) - 1: the number of bin edges -1 + i/128
 * (i = 0..255, exact in double) that are <= x, minus one; -1 below -1, 255 from 127/128. */
static int digitize(float xf) {
    double x = (double)xf;
    /* clamped before the cast: converting an out-of-range double (±Inf, |x| > ~1.7e7) to
     * int is undefined behaviour */
    double f = floor((x + 1.0) * 128.0);
    int k = f < -1.0 ? -1 : f > 255.0 ? 255 : (int)f;
    while (k < 255 && -1.0 + (double)(k + 1) / 128.0 <= x)
        k++;
    while (k >= 0 && -1.0 + (double)k / 128.0 > x)
        k--;
    return k;
}

int pi0_prompt_pi05_text(const char *prompt, const float *state, int state_dim, char *out,
                         size_t cap, size_t *out_len) {
    if (!prompt || state_dim < 0 || (state_dim > 0 && !state) || (cap > 0 && !out) || !out_len)
        return pi0_errorf(PI0_EINVAL, "prompt_pi05: bad argument");
    for (int i = 0; i < state_dim; i++)
        if (isnan(state[i])) return pi0_errorf(PI0_EINVAL, "prompt_pi05: state[%d] is NaN", i);
    writer w = {out, cap, 0};
    put(&w, "Task: ", 6);
    put_clean(&w, prompt);
    put(&w, ", State: ", 9);
    for (int i = 0; i < state_dim; i++) {
        char num[16];
        int k = snprintf(num, sizeof num, i ? " %d" : "%d", digitize(state[i]));
        put(&w, num, (size_t)k);
    }
    put(&w, ";\nAction: ", 10);
    return finish(&w, out_len, "prompt_pi05");
}

/* Encodes text into ids[*n .. max_len), the rest cut off; *n grows by what fits. Returns
 * 1 when the ids were cut (nothing more fits), 0 otherwise, or a PI0_E* code. */
static int append_encoded(const pi0_tokenizer *tok, const char *text, size_t len, int32_t *ids,
                          int *n, int max_len) {
    int got = 0;
    int rc = pi0_tokenizer_encode(tok, text, len, ids + *n, max_len - *n, &got);
    if (rc == PI0_ERANGE) {
        *n = max_len;
        return 1;
    }
    if (rc) return rc;
    *n += got;
    return 0;
}

/* Zero ids and mask after the n real tokens. */
static void pad_out(int n, int max_len, int32_t *ids, uint8_t *mask, int *n_valid) {
    for (int i = 0; i < max_len; i++) {
        if (i >= n) ids[i] = 0;
        mask[i] = i < n;
    }
    *n_valid = n;
}

static int bos_of(const pi0_tokenizer *tok) {
    int bos = pi0_tokenizer_bos_id(tok);
    if (bos < 0) return pi0_errorf(PI0_ENOTSUP, "prompt: tokenizer model has no BOS piece");
    return bos;
}

/* Prompts up to this size are formatted on the stack (no allocation). */
enum { STACK_TEXT = 2048 };

int pi0_prompt_pi0(const pi0_tokenizer *tok, const char *prompt, int max_len, int32_t *ids,
                   uint8_t *mask, int *n_valid) {
    if (!tok || !prompt || max_len <= 0 || !ids || !mask || !n_valid)
        return pi0_errorf(PI0_EINVAL, "prompt_pi0: bad argument (max_len %d)", max_len);
    int bos = bos_of(tok);
    if (bos < 0) return bos;
    char small[STACK_TEXT];
    size_t need = strlen(prompt) + 1;
    char *clean = need <= sizeof small ? small : malloc(need);
    if (!clean) return pi0_errorf(PI0_ENOMEM, "prompt_pi0: out of memory");
    writer w = {clean, need, 0};
    size_t len;
    put_clean(&w, prompt);
    (void)finish(&w, &len, "prompt_pi0"); // fits by construction
    int n = 0;
    ids[n++] = bos;
    int rc = append_encoded(tok, clean, len, ids, &n, max_len);
    if (rc == 0) rc = append_encoded(tok, "\n", 1, ids, &n, max_len);
    if (clean != small) free(clean);
    if (rc < 0) return rc;
    pad_out(n, max_len, ids, mask, n_valid);
    return 0;
}

int pi0_prompt_pi05(const pi0_tokenizer *tok, const char *prompt, const float *state,
                    int state_dim, int max_len, int32_t *ids, uint8_t *mask, int *n_valid) {
    if (!tok || !prompt || max_len <= 0 || !ids || !mask || !n_valid)
        return pi0_errorf(PI0_EINVAL, "prompt_pi05: bad argument (max_len %d)", max_len);
    int bos = bos_of(tok);
    if (bos < 0) return bos;
    char small[STACK_TEXT];
    size_t len;
    int rc = pi0_prompt_pi05_text(prompt, state, state_dim, small, sizeof small, &len);
    char *text = small;
    if (rc == PI0_ERANGE) {
        text = malloc(len + 1);
        if (!text) return pi0_errorf(PI0_ENOMEM, "prompt_pi05: out of memory");
        rc = pi0_prompt_pi05_text(prompt, state, state_dim, text, len + 1, &len);
    }
    int n = 0;
    ids[n++] = bos;
    if (!rc) rc = append_encoded(tok, text, len, ids, &n, max_len);
    if (text != small) free(text);
    if (rc < 0) return rc;
    pad_out(n, max_len, ids, mask, n_valid);
    return 0;
}
