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

#include "pi0_tokenizer.h"

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

/* clean() into a new NUL-terminated string; *len is its length. */
static char *clean_prompt(const char *prompt, size_t *len) {
    const unsigned char *s = (const unsigned char *)prompt;
    size_t a = 0, b = strlen(prompt), k;
    while (a < b && (k = py_space_len(s + a, b - a)) > 0)
        a += k;
    while (b > a) {
        size_t st = last_char_start(s + a, b - a) + a;
        if (py_space_len(s + st, b - st) != b - st) break;
        b = st;
    }
    char *out = malloc(b - a + 1);
    if (!out) return NULL;
    for (size_t i = a; i < b; i++)
        out[i - a] = (s[i] == '_' || s[i] == '\n') ? ' ' : (char)s[i];
    out[b - a] = 0;
    *len = b - a;
    return out;
}

/* np.digitize(x, linspace(-1, 1, 257)[:-1]) - 1: the number of bin edges -1 + i/128
 * (i = 0..255, exact in double) that are <= x, minus one; -1 below -1, 255 from 127/128. */
static int digitize(float xf) {
    double x = (double)xf;
    int k = (int)floor((x + 1.0) * 128.0);
    if (k < -1) k = -1;
    if (k > 255) k = 255;
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
    size_t cl;
    char *clean = clean_prompt(prompt, &cl);
    if (!clean) return pi0_errorf(PI0_ENOMEM, "prompt_pi05: out of memory");
    size_t need = cl + 32 + (size_t)state_dim * 5;
    char *s = malloc(need);
    if (!s) {
        free(clean);
        return pi0_errorf(PI0_ENOMEM, "prompt_pi05: out of memory");
    }
    size_t n = (size_t)snprintf(s, need, "Task: %s, State: ", clean);
    for (int i = 0; i < state_dim; i++)
        n += (size_t)snprintf(s + n, need - n, i ? " %d" : "%d", digitize(state[i]));
    n += (size_t)snprintf(s + n, need - n, ";\nAction: ");
    free(clean);
    *out_len = n;
    int rc = 0;
    if (cap > 0) {
        size_t k = n < cap ? n : cap - 1;
        memcpy(out, s, k);
        out[k] = 0;
    }
    if (n >= cap)
        rc = pi0_errorf(PI0_ERANGE, "prompt_pi05: %zu bytes do not fit in %zu", n, cap);
    free(s);
    return rc;
}

/* Appends encode(text) at ids[*n..] growing the array; *n grows by the count. */
static int append_encoded(const pi0_tokenizer *tok, const char *text, size_t len, int32_t **ids,
                          int *n, int *cap) {
    int got = 0;
    for (;;) {
        int rc = pi0_tokenizer_encode(tok, text, len, *ids + *n, *cap - *n, &got);
        if (rc == 0) break;
        if (rc != PI0_ERANGE || got <= *cap - *n) return rc;
        int ncap = *n + got + 16;
        int32_t *p = realloc(*ids, sizeof *p * (size_t)ncap);
        if (!p) return pi0_errorf(PI0_ENOMEM, "prompt: out of memory");
        *ids = p;
        *cap = ncap;
    }
    *n += got;
    return 0;
}

/* Copies toks to ids/mask padded with 0 or cut to max_len. */
static void pad_out(const int32_t *toks, int n, int max_len, int32_t *ids, uint8_t *mask,
                    int *n_valid) {
    int k = n < max_len ? n : max_len;
    for (int i = 0; i < max_len; i++) {
        ids[i] = i < k ? toks[i] : 0;
        mask[i] = i < k;
    }
    *n_valid = k;
}

static int start_with_bos(const pi0_tokenizer *tok, int32_t **toks, int *n, int *cap) {
    int bos = pi0_tokenizer_bos_id(tok);
    if (bos < 0) return pi0_errorf(PI0_ENOTSUP, "prompt: tokenizer model has no BOS piece");
    *cap = 128;
    *toks = malloc(sizeof **toks * (size_t)*cap);
    if (!*toks) return pi0_errorf(PI0_ENOMEM, "prompt: out of memory");
    (*toks)[0] = bos;
    *n = 1;
    return 0;
}

int pi0_prompt_pi0(const pi0_tokenizer *tok, const char *prompt, int max_len, int32_t *ids,
                   uint8_t *mask, int *n_valid) {
    if (!tok || !prompt || max_len <= 0 || !ids || !mask || !n_valid)
        return pi0_errorf(PI0_EINVAL, "prompt_pi0: bad argument (max_len %d)", max_len);
    size_t cl;
    char *clean = clean_prompt(prompt, &cl);
    if (!clean) return pi0_errorf(PI0_ENOMEM, "prompt_pi0: out of memory");
    int32_t *toks = NULL;
    int n = 0, cap = 0;
    int rc = start_with_bos(tok, &toks, &n, &cap);
    if (!rc) rc = append_encoded(tok, clean, cl, &toks, &n, &cap);
    if (!rc) rc = append_encoded(tok, "\n", 1, &toks, &n, &cap);
    if (!rc) pad_out(toks, n, max_len, ids, mask, n_valid);
    free(clean);
    free(toks);
    return rc;
}

int pi0_prompt_pi05(const pi0_tokenizer *tok, const char *prompt, const float *state,
                    int state_dim, int max_len, int32_t *ids, uint8_t *mask, int *n_valid) {
    if (!tok || !prompt || max_len <= 0 || !ids || !mask || !n_valid)
        return pi0_errorf(PI0_EINVAL, "prompt_pi05: bad argument (max_len %d)", max_len);
    size_t len;
    int rc = pi0_prompt_pi05_text(prompt, state, state_dim, NULL, 0, &len);
    if (rc != PI0_ERANGE) return rc ? rc : pi0_errorf(PI0_EINVAL, "prompt_pi05: empty text");
    char *text = malloc(len + 1);
    if (!text) return pi0_errorf(PI0_ENOMEM, "prompt_pi05: out of memory");
    rc = pi0_prompt_pi05_text(prompt, state, state_dim, text, len + 1, &len);
    int32_t *toks = NULL;
    int n = 0, cap = 0;
    if (!rc) rc = start_with_bos(tok, &toks, &n, &cap);
    if (!rc) rc = append_encoded(tok, text, len, &toks, &n, &cap);
    if (!rc) pad_out(toks, n, max_len, ids, mask, n_valid);
    free(text);
    free(toks);
    return rc;
}
