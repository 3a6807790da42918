/* test_tokenizer.c — the SentencePiece tokenizer against Debian's sentencepiece 0.1.97
 * (spm_train / spm_encode / spm_decode as the reference peer), the π0 / π0.5 prompt
 * formats, pi0rt-tokenize, and the model reader on corrupt input.
 *
 * Each comparison test trains a small model on a generated corpus (deterministic: accents,
 * CJK, emoji, digits, NFKC-sensitive characters, runs of spaces, tabs), encodes a few
 * thousand generated lines (plus empty lines, characters unseen in training, malformed
 * UTF-8) with spm_encode --output_format=id and with the library, and requires identical
 * ids on every line; decoding is compared with spm_decode the same way. */
#include <errno.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "harness.h"
#include "pipeline/pi0_tokenizer.h"

static char g_tool[4096]; // build/pi0rt-tokenize, next to build/tests/

// ---- helpers ----

static uint64_t rng_state;
static uint32_t rnd(void) { // xorshift64*
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ull) >> 32);
}
static uint32_t rnd_n(uint32_t n) {
    return rnd() % n;
}

static void put_utf8(FILE *f, uint32_t cp) {
    if (cp < 0x80)
        fputc((int)cp, f);
    else if (cp < 0x800)
        fprintf(f, "%c%c", 0xC0 | (cp >> 6), 0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
        fprintf(f, "%c%c%c", 0xE0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F));
    else
        fprintf(f, "%c%c%c%c", 0xF0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3F),
                0x80 | ((cp >> 6) & 0x3F), 0x80 | (cp & 0x3F));
}

static const char *const k_syl[] = {
    "ka", "ki", "ku", "ke", "ko", "ta", "to", "ra", "ri", "ro", "ma", "mi", "mo", "na", "ne",
    "no", "pa", "pe", "pi", "la", "le", "lo", "sa", "se", "so", "th", "er", "in", "on", "an",
    "re", "de", "ch", "sh", "é",  "è",  "ü",  "ö",  "ñ",  "ç",  "Ä",  "St", "Qu"};
static const char *const k_special[] = {
    "東京",     "日本語", "中文", "漢字",      "😀",        "🤖",
    "👍🏽", "ß",      "ﬁ",    "Ⅻ",         "①",        "ｶﾀｶﾅ",
    "ＡＢＣ",   "１２３", "½",    "e\xCC\x81", "\xC2\xA0", "\xE3\x80\x80",
    "pick",     "<sep>",  "cup",  "The"};
static const char *const k_sep[] = {" ",  " ",  " ",  " ",  " ",    " ",
                                    " ",  " ",  "  ", "\t", " \t ", "   ",
                                    ", ", ". ", "-",  "_",  "!? ",  "\xE2\x80\x83"};

/* One generated line. unseen adds characters that training never saw. */
static void gen_line(FILE *f, bool unseen) {
    int n = (int)rnd_n(15);
    if (rnd_n(5) == 0) fputs(k_sep[rnd_n(sizeof k_sep / sizeof *k_sep)], f);
    for (int j = 0; j < n; j++) {
        uint32_t x = rnd_n(100);
        if (x < 10)
            fprintf(f, "%u", rnd_n(x < 5 ? 100 : 1000000));
        else if (x < 18)
            fputs(k_special[rnd_n(sizeof k_special / sizeof *k_special)], f);
        else if (x < 20) {
            put_utf8(f, 0x4E00 + rnd_n(64));
            put_utf8(f, 0x4E00 + rnd_n(64));
        } else if (x < 22 && unseen) {
            put_utf8(f, 0x0400 + rnd_n(0x100));  // Cyrillic
            put_utf8(f, 0x1F300 + rnd_n(0x200)); // emoji
            put_utf8(f, 0xAC00 + rnd_n(0x2000)); // Hangul
        } else {
            int k = 1 + (int)rnd_n(4);
            for (int i = 0; i < k; i++)
                fputs(k_syl[rnd_n(sizeof k_syl / sizeof *k_syl)], f);
        }
        fputs(k_sep[rnd_n(sizeof k_sep / sizeof *k_sep)], f);
    }
    fputc('\n', f);
}

static char *g_dir; /* each test's scratch directory (pi0_test_tmpdir) */

static void make_dir(void) {
    g_dir = pi0_test_tmpdir("pi0tok");
}

static void remove_dir(void) {
    pi0_test_rmrf(g_dir);
    free(g_dir);
    g_dir = NULL;
}

static void write_corpora(uint64_t seed) {
    char path[256];
    rng_state = seed;
    snprintf(path, sizeof path, "%s/corpus.txt", g_dir);
    FILE *f = fopen(path, "w");
    PI0_ASSERT(f);
    for (int i = 0; i < 4000; i++)
        gen_line(f, false);
    fclose(f);
    snprintf(path, sizeof path, "%s/test.txt", g_dir);
    f = fopen(path, "w");
    PI0_ASSERT(f);
    for (int i = 0; i < 3000; i++)
        gen_line(f, i % 7 == 3);
    // Edge cases: empty and blank lines, lone separators, malformed UTF-8, U+FFFD itself,
    // characters never seen, user-defined symbols glued to text, long runs.
    fputs("\n \n\t\n   \n  a   b  \n_\n\xE2\x96\x81\n\xE2\x96\x81x \xE2\x96\x81\xE2\x96\x81\n",
          f);
    fputs("ab\xFF\xFE cd \xC3\x28 \xE2\x82 x\xED\xA0\x80y \xEF\xBF\xBD z\n\xF0\x9F\x98\n", f);
    fputs("\xC0\xAF \xF8\x88\x80\x80\x80 \xF4\x90\x80\x80\n", f);
    fputs("Ωмир☃ 👩‍👩‍👧 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ̈a\n", f);
    fputs("x<sep>y<sep><sep>pickpick 東京東京 <sep> pick\n", f);
    fputs("0123456789 00000000000000000000 3.14159 1,000,000\n", f);
    for (int i = 0; i < 200; i++) { // arbitrary bytes (no newline, no NUL)
        int n = (int)rnd_n(40);
        for (int k = 0; k < n; k++) {
            int c = 1 + (int)rnd_n(255);
            fputc(c == '\n' ? ' ' : c, f);
        }
        fputc('\n', f);
    }
    for (int i = 0; i < 400; i++)
        fputs(i % 50 == 0 ? "  " : "kara", f);
    fputc('\n', f);
    fclose(f);
}

/* Next line of a buffer (modifies it); NULL at the end. */
static char *next_line(char **cur, size_t *len) {
    if (!*cur || !**cur) return NULL;
    char *s = *cur, *e = strchr(s, '\n');
    if (e) {
        *e = 0;
        *cur = e + 1;
    } else
        *cur = s + strlen(s);
    *len = strlen(s);
    return s;
}

static int parse_ids(const char *s, int32_t *ids, int cap) {
    int n = 0;
    for (char *e; *s; s = e) {
        while (*s == ' ' || *s == '\n')
            s++;
        if (!*s) break;
        long v = strtol(s, &e, 10);
        if (e == s) return -1;
        if (n < cap) ids[n] = (int32_t)v;
        n++;
    }
    return n;
}

static void print_ids(const char *label, const int32_t *ids, int n) {
    fprintf(stderr, "    %s (%d):", label, n);
    for (int i = 0; i < n && i < 80; i++)
        fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 80 ? " ..." : "");
}

/* Trains <dir>/<name>.model with the given spm_train flags. */
static int train(const char *name, const char *flags) {
    return pi0_test_sh("spm_train --input=%s/corpus.txt --model_prefix=%s/%s --vocab_size=600 "
                       "--character_coverage=0.99 --hard_vocab_limit=false --num_threads=1 "
                       "--minloglevel=2 %s > %s/%s.log 2>&1",
                       g_dir, g_dir, name, flags, g_dir, name);
}

/* Encodes test.txt with spm_encode and with the library; every line must match. Then
 * decodes the reference ids with spm_decode and the library; every line must match. */
static void compare_model(const char *name, const char *flags) {
    make_dir();
    write_corpora(0x5eed0001);
    if (train(name, flags) != 0) {
        CHECK_MSG(0, "spm_train failed for %s (%s)", name, flags);
        remove_dir();
        return;
    }
    CHECK_EQ_INT(
        pi0_test_sh("spm_encode --model=%s/%s.model --output_format=id < %s/test.txt > "
                    "%s/ref.txt && spm_decode --model=%s/%s.model --input_format=id < "
                    "%s/ref.txt > %s/dec.txt",
                    g_dir, name, g_dir, g_dir, g_dir, name, g_dir, g_dir),
        0);
    char path[256];
    snprintf(path, sizeof path, "%s/%s.model", g_dir, name);
    pi0_tokenizer *tok = NULL;
    CHECK_STATUS(pi0_tokenizer_load(path, &tok), PI0_OK);
    char p1[256], p2[256], p3[256];
    snprintf(p1, sizeof p1, "%s/test.txt", g_dir);
    snprintf(p2, sizeof p2, "%s/ref.txt", g_dir);
    snprintf(p3, sizeof p3, "%s/dec.txt", g_dir);
    char *text = pi0_test_slurp(p1, NULL), *ref = pi0_test_slurp(p2, NULL),
         *dec = pi0_test_slurp(p3, NULL);
    CHECK(text && ref && dec);
    if (!tok || !text || !ref || !dec) goto out;
    enum { CAP = 8192 };
    static int32_t want[CAP], got[CAP];
    static char out[1 << 16];
    char *ct = text, *cr = ref, *cd = dec, *line, *rline, *dline;
    size_t len, rlen, dlen;
    int lines = 0, bad = 0, bad_dec = 0;
    while ((line = next_line(&ct, &len)) != NULL) {
        rline = next_line(&cr, &rlen);
        dline = next_line(&cd, &dlen);
        if (!rline || !dline) {
            CHECK_MSG(0, "%s: reference output ends early at line %d", name, lines + 1);
            break;
        }
        lines++;
        int nw = parse_ids(rline, want, CAP), ng = 0;
        int rc = pi0_tokenizer_encode(tok, line, len, got, CAP, &ng);
        if (rc != 0 || nw != ng || memcmp(want, got, sizeof *got * (size_t)ng) != 0) {
            if (bad++ == 0) {
                CHECK_MSG(0, "%s: line %d differs from spm_encode (rc %d): \"%s\"", name, lines,
                          rc, line);
                print_ids("spm_encode", want, nw);
                print_ids("pi0 tokenizer", got, ng);
            }
            continue;
        }
        size_t olen = 0;
        rc = pi0_tokenizer_decode(tok, want, nw, out, sizeof out, &olen);
        if (rc != 0 || olen != dlen || memcmp(out, dline, dlen) != 0) {
            if (bad_dec++ == 0)
                CHECK_MSG(0,
                          "%s: decode of line %d differs from spm_decode (rc %d):\n"
                          "    spm_decode: \"%s\"\n    pi0 decode: \"%.*s\"",
                          name, lines, rc, dline, (int)olen, out);
        }
    }
    CHECK_MSG(lines > 3000, "%s: only %d lines compared", name, lines);
    CHECK_MSG(bad == 0, "%s: %d of %d lines differ from spm_encode", name, bad, lines);
    CHECK_MSG(bad_dec == 0, "%s: %d of %d lines decode differently from spm_decode", name,
              bad_dec, lines);
    printf("  %s: %d lines identical to spm_encode and spm_decode\n", name, lines - bad);
out:
    free(text);
    free(ref);
    free(dec);
    pi0_tokenizer_destroy(tok);
    remove_dir();
}

// ---- encoding against spm_encode ----

static void test_bpe_nmt_nfkc(void) {
    compare_model("bpe", "--model_type=bpe");
}

static void test_unigram_nmt_nfkc(void) {
    compare_model("uni", "--model_type=unigram");
}

static void test_bpe_byte_fallback_split_digits(void) {
    compare_model("bpe_bf", "--model_type=bpe --byte_fallback --split_digits");
}

static void test_unigram_byte_fallback(void) {
    compare_model("uni_bf", "--model_type=unigram --byte_fallback");
}

static void test_unigram_identity_no_dummy_prefix(void) {
    compare_model("uni_id", "--model_type=unigram --normalization_rule_name=identity "
                            "--add_dummy_prefix=false --split_digits");
}

static void test_bpe_user_symbols_keep_whitespace(void) {
    compare_model("bpe_user", "--model_type=bpe '--user_defined_symbols=<sep>,pick,東京' "
                              "--remove_extra_whitespaces=false");
}

static void test_unigram_user_symbols_nfkc_cf(void) {
    compare_model("uni_user", "--model_type=unigram '--user_defined_symbols=<sep>,pick,東京' "
                              "--normalization_rule_name=nfkc_cf");
}

static void test_unigram_whitespace_suffix(void) {
    compare_model("uni_sfx", "--model_type=unigram --treat_whitespace_as_suffix "
                             "--byte_fallback");
}

/* The settings of the PaliGemma / Gemma tokenizer: BPE, byte fallback, identity
 * normalizer, no dummy prefix, whitespace kept, split digits, whitespace-only pieces,
 * pad/eos/bos/unk = 0/1/2/3, user-defined symbols including tab and a double space. */
static void test_bpe_paligemma_settings(void) {
    compare_model("pg",
                  "--model_type=bpe --byte_fallback --normalization_rule_name=identity "
                  "--add_dummy_prefix=false --remove_extra_whitespaces=false "
                  "--split_digits --allow_whitespace_only_pieces=true --pad_id=0 "
                  "--eos_id=1 --bos_id=2 --unk_id=3 '--bos_piece=<bos>' '--eos_piece=<eos>' "
                  "--user_defined_symbols='<start_of_turn>,<end_of_turn>,\t,  ' "
                  "'--control_symbols=<ctl>'");
}

/* pi0rt-tokenize --batch (encode) and --decode --batch against the reference. */
static void test_tool_batch_matches_spm(void) {
    make_dir();
    write_corpora(0x5eed0002);
    CHECK_EQ_INT(train("m", "--model_type=bpe --byte_fallback"), 0);
    CHECK_EQ_INT(pi0_test_sh("spm_encode --model=%s/m.model --output_format=id < %s/test.txt > "
                             "%s/ref.txt",
                             g_dir, g_dir, g_dir),
                 0);
    CHECK_EQ_INT(pi0_test_sh("'%s' --model %s/m.model --batch < %s/test.txt > %s/got.txt",
                             g_tool, g_dir, g_dir, g_dir),
                 0);
    CHECK_EQ_INT(pi0_test_sh("cmp %s/ref.txt %s/got.txt", g_dir, g_dir), 0);
    CHECK_EQ_INT(
        pi0_test_sh("spm_decode --model=%s/m.model --input_format=id < %s/ref.txt > "
                    "%s/dref.txt && '%s' "
                    "--model %s/m.model --decode --batch < %s/ref.txt > %s/dgot.txt && "
                    "cmp %s/dref.txt %s/dgot.txt",
                    g_dir, g_dir, g_dir, g_tool, g_dir, g_dir, g_dir, g_dir, g_dir),
        0);
    // Text -> ids -> text through the tool's argument forms (words joined with spaces);
    // the default normalizer collapses the double space.
    CHECK_EQ_INT(
        pi0_test_sh("test \"$('%s' --model %s/m.model --decode $('%s' --model %s/m.model "
                    "h\xC3\xA9llo w\xC3\xB6rld '\xE6\x9D\xB1  x'))\" = "
                    "'h\xC3\xA9llo w\xC3\xB6rld \xE6\x9D\xB1 x'", // extra spaces removed
                    g_tool, g_dir, g_tool, g_dir),
        0);
    remove_dir();
}

/* Random id sequences (bytes pieces, control, unknown, normal) decode like spm_decode. */
static void test_decode_random_ids(void) {
    make_dir();
    write_corpora(0x5eed0003);
    CHECK_EQ_INT(
        train("m", "--model_type=bpe --byte_fallback --remove_extra_whitespaces=false"), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/m.model", g_dir);
    pi0_tokenizer *tok = NULL;
    CHECK_STATUS(pi0_tokenizer_load(path, &tok), PI0_OK);
    if (!tok) goto out;
    int vocab = pi0_tokenizer_vocab_size(tok);
    snprintf(path, sizeof path, "%s/ids.txt", g_dir);
    FILE *f = fopen(path, "w");
    PI0_ASSERT(f);
    rng_state = 42;
    for (int i = 0; i < 2000; i++) {
        int n = (int)rnd_n(12);
        for (int k = 0; k < n; k++)
            fprintf(f, k ? " %d" : "%d",
                    rnd_n(3) ? (int)rnd_n(260) : (int)rnd_n((uint32_t)vocab));
        fputc('\n', f);
    }
    fclose(f);
    CHECK_EQ_INT(
        pi0_test_sh("spm_decode --model=%s/m.model --input_format=id < %s/ids.txt > "
                    "%s/dref.txt && '%s' --model %s/m.model --decode --batch < %s/ids.txt > "
                    "%s/dgot.txt && cmp %s/dref.txt %s/dgot.txt",
                    g_dir, g_dir, g_dir, g_tool, g_dir, g_dir, g_dir, g_dir, g_dir),
        0);
    // Out-of-range ids are an error naming the id.
    int32_t badid[2] = {5, vocab};
    size_t ol;
    char o[64];
    CHECK_STATUS(pi0_tokenizer_decode(tok, badid, 2, o, sizeof o, &ol), PI0_EINVAL);
    CHECK(strstr(pi0_last_error(), "invalid id") != NULL);
    // A too-small buffer: PI0_ERANGE with the full length, NUL-terminated prefix.
    int32_t ids[64];
    int n = 0;
    CHECK_STATUS(pi0_tokenizer_encode(tok, "hello world", 11, ids, 64, &n), PI0_OK);
    CHECK_STATUS(pi0_tokenizer_decode(tok, ids, n, o, 4, &ol), PI0_ERANGE);
    CHECK_EQ_INT(ol, 11);
    CHECK_EQ_INT(strlen(o), 3);
    CHECK_STATUS(pi0_tokenizer_decode(tok, ids, n, o, sizeof o, &ol), PI0_OK);
    CHECK_EQ_STR(o, "hello world");
out:
    pi0_tokenizer_destroy(tok);
    remove_dir();
}

// ---- hand-built models (protobuf written here, checked with spm_encode too) ----

typedef struct pbw {
    uint8_t b[1 << 16];
    size_t n;
} pbw;

static void w_varint(pbw *w, uint64_t v) {
    do {
        w->b[w->n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
}
static void w_bytes(pbw *w, int field, const void *p, size_t n) {
    w_varint(w, (uint64_t)field << 3 | 2);
    w_varint(w, n);
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void w_piece(pbw *w, const char *piece, float score, int type) {
    pbw s = {.n = 0};
    w_bytes(&s, 1, piece, strlen(piece));
    w_varint(&s, 2 << 3 | 5);
    memcpy(s.b + s.n, &score, 4);
    s.n += 4;
    w_varint(&s, 3 << 3 | 0);
    w_varint(&s, (uint64_t)type);
    w_bytes(w, 1, s.b, s.n);
}

/* A BPE model with an UNUSED merge ("ab") that must be re-split, a user-defined symbol and
 * a control symbol. */
static void build_small_bpe(pbw *w, int model_type) {
    w->n = 0;
    w_piece(w, "<unk>", 0, 2);
    w_piece(w, "<s>", 0, 3);
    w_piece(w, "</s>", 0, 3);
    w_piece(w, "<U>", 0, 4);
    static const char *const p[] = {"\xE2\x96\x81",
                                    "a",
                                    "b",
                                    "c",
                                    "\xE2\x96\x81"
                                    "a",
                                    "bc",
                                    "ab",
                                    "abc",
                                    "\xE2\x96\x81"
                                    "abc",
                                    "ca"};
    for (int i = 0; i < 10; i++)
        w_piece(w, p[i], -(float)i, i == 6 ? 5 : 1);
    pbw ts = {.n = 0};
    w_varint(&ts, 3 << 3);
    w_varint(&ts, (uint64_t)model_type);
    w_bytes(w, 2, ts.b, ts.n);
}

static void test_hand_built_bpe_matches_spm(void) {
    make_dir();
    static pbw w;
    build_small_bpe(&w, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/small.model", g_dir);
    FILE *f = fopen(path, "wb");
    PI0_ASSERT(f && fwrite(w.b, 1, w.n, f) == w.n);
    fclose(f);
    snprintf(path, sizeof path, "%s/test.txt", g_dir);
    f = fopen(path, "w");
    PI0_ASSERT(f);
    rng_state = 7;
    static const char *const parts[] = {"a", "b", "c", " ", "<U>", "x", "ab", "<s>"};
    for (int i = 0; i < 3000; i++) {
        int n = (int)rnd_n(14);
        for (int k = 0; k < n; k++)
            fputs(parts[rnd_n(8)], f);
        fputc('\n', f);
    }
    fclose(f);
    CHECK_EQ_INT(
        pi0_test_sh("spm_encode --model=%s/small.model --output_format=id < %s/test.txt > "
                    "%s/ref.txt && '%s' --model %s/small.model --batch < %s/test.txt > "
                    "%s/got.txt && cmp %s/ref.txt %s/got.txt",
                    g_dir, g_dir, g_dir, g_tool, g_dir, g_dir, g_dir, g_dir, g_dir),
        0);
    // And the same pieces as a unigram model.
    build_small_bpe(&w, 1);
    snprintf(path, sizeof path, "%s/small.model", g_dir);
    f = fopen(path, "wb");
    PI0_ASSERT(f && fwrite(w.b, 1, w.n, f) == w.n);
    fclose(f);
    CHECK_EQ_INT(
        pi0_test_sh("spm_encode --model=%s/small.model --output_format=id < %s/test.txt > "
                    "%s/ref.txt && '%s' --model %s/small.model --batch < %s/test.txt > "
                    "%s/got.txt && cmp %s/ref.txt %s/got.txt",
                    g_dir, g_dir, g_dir, g_tool, g_dir, g_dir, g_dir, g_dir, g_dir),
        0);
    remove_dir();
}

/* π0 prompt on the hand-built model, ids worked out by hand:
 * clean(" a_bc\n") = "a bc" -> "▁a▁bc" -> merges ▁a (score -4), then bc (-5): 8 4 9;
 * "\n" -> "▁\n" -> ▁ (4) and an unknown character (0); BOS is <s> (1). */
static void test_pi0_prompt_hand_checked(void) {
    static pbw w;
    build_small_bpe(&w, 2);
    pi0_tokenizer *tok = NULL;
    CHECK_STATUS(pi0_tokenizer_load_buffer(w.b, w.n, "small", &tok), PI0_OK);
    if (!tok) return;
    int32_t ids[8];
    uint8_t mask[8];
    int nv = 0;
    CHECK_STATUS(pi0_prompt_pi0(tok, " a_bc\n", 8, ids, mask, &nv), PI0_OK);
    static const int32_t want[8] = {1, 8, 4, 9, 4, 0, 0, 0};
    static const uint8_t want_mask[8] = {1, 1, 1, 1, 1, 1, 0, 0};
    CHECK_EQ_INT(nv, 6);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ_INT(ids[i], want[i]);
        CHECK_EQ_INT(mask[i], want_mask[i]);
    }
    // "▁abc": ▁a (-4), then bc (-5), then ▁abc (-8) -> 12.
    int n = 0;
    CHECK_STATUS(pi0_tokenizer_encode(tok, "abc", 3, ids, 8, &n), PI0_OK);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ids[0], 12);
    // "▁cab": ab (-6) beats ca (-9) but is UNUSED, so it is split back: ▁ c a b.
    CHECK_STATUS(pi0_tokenizer_encode(tok, "cab", 3, ids, 8, &n), PI0_OK);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(ids[0], 4);
    CHECK_EQ_INT(ids[1], 7);
    CHECK_EQ_INT(ids[2], 5);
    CHECK_EQ_INT(ids[3], 6);
    pi0_tokenizer_destroy(tok);
}

/* A model of PaliGemma's shape: 257152 pieces (pad/eos/bos/unk = 0..3, 256 byte pieces,
 * 1024 <locNNNN> user-defined symbols, random BPE pieces), BPE, byte fallback, identity
 * normalizer, no dummy prefix, whitespace kept. Written here, compared with spm_encode. */
static void test_bpe_paligemma_sized_vocab(void) {
    make_dir();
    write_corpora(0x5eed0006);
    size_t cap = 16u << 20;
    uint8_t *m = malloc(cap);
    static pbw w;
    size_t n = 0;
    PI0_ASSERT(m);
#define FLUSH()                                                                                \
    do {                                                                                       \
        memcpy(m + n, w.b, w.n);                                                               \
        n += w.n;                                                                              \
        w.n = 0;                                                                               \
    } while (0)
    w.n = 0;
    w_piece(&w, "<pad>", 0, 3);
    w_piece(&w, "<eos>", 0, 3);
    w_piece(&w, "<bos>", 0, 3);
    w_piece(&w, "<unk>", 0, 2);
    char s[64];
    for (int i = 0; i < 256; i++) {
        snprintf(s, sizeof s, "<0x%02X>", i);
        w_piece(&w, s, 0, 6);
    }
    for (int i = 0; i < 1024; i++) {
        snprintf(s, sizeof s, "<loc%04d>", i);
        w_piece(&w, s, 0, 4);
    }
    FLUSH();
    // Random pieces over syllables and the space mark; duplicates are skipped by keeping
    // a temporary tokenizer-free set: a simple open-addressing table of hashes.
    static const char *const al[] = {"a",
                                     "e",
                                     "i",
                                     "o",
                                     "k",
                                     "r",
                                     "t",
                                     "n",
                                     "s",
                                     "m",
                                     "\xE2\x96\x81",
                                     "\xC3\xA9",
                                     "\xE6\x9D\xB1",
                                     "1",
                                     " "};
    uint32_t tcap = 1u << 20;
    uint64_t *seen = calloc(tcap, sizeof *seen);
    PI0_ASSERT(seen);
    rng_state = 77;
    int count = 4 + 256 + 1024;
    while (count < 257152) {
        s[0] = 0;
        int len = 1 + (int)rnd_n(8);
        for (int k = 0; k < len; k++)
            strcat(s, al[rnd_n(15)]);
        uint64_t h = 1469598103934665603ull;
        for (const char *p = s; *p; p++)
            h = (h ^ (uint8_t)*p) * 1099511628211ull;
        h |= 1;
        uint32_t i = (uint32_t)h & (tcap - 1);
        while (seen[i] && seen[i] != h)
            i = (i + 1) & (tcap - 1);
        if (seen[i]) continue;
        seen[i] = h;
        w_piece(&w, s, -(float)count, 1);
        FLUSH();
        count++;
    }
    free(seen);
    pbw ts = {.n = 0}, ns = {.n = 0};
    w_varint(&ts, 3 << 3);
    w_varint(&ts, 2);
    w_varint(&ts, 35 << 3);
    w_varint(&ts, 1);
    w_bytes(&ts, 46, "<bos>", 5);
    w_bytes(&ts, 47, "<eos>", 5);
    w_bytes(&ts, 48, "<pad>", 5);
    w_bytes(&ns, 1, "identity", 8);
    w_varint(&ns, 3 << 3);
    w_varint(&ns, 0);
    w_varint(&ns, 4 << 3);
    w_varint(&ns, 0);
    w_bytes(&w, 2, ts.b, ts.n);
    w_bytes(&w, 3, ns.b, ns.n);
    FLUSH();
#undef FLUSH
    char path[256];
    snprintf(path, sizeof path, "%s/big.model", g_dir);
    FILE *f = fopen(path, "wb");
    PI0_ASSERT(f && fwrite(m, 1, n, f) == n);
    fclose(f);
    free(m);
    pi0_tokenizer *tok = NULL;
    CHECK_STATUS(pi0_tokenizer_load(path, &tok), PI0_OK);
    CHECK_EQ_INT(pi0_tokenizer_vocab_size(tok), 257152);
    CHECK_EQ_INT(pi0_tokenizer_bos_id(tok), 2);
    pi0_tokenizer_destroy(tok);
    CHECK_EQ_INT(
        pi0_test_sh("spm_encode --model=%s/big.model --output_format=id < %s/test.txt > "
                    "%s/ref.txt && '%s' --model %s/big.model --batch < %s/test.txt > "
                    "%s/got.txt && cmp %s/ref.txt %s/got.txt",
                    g_dir, g_dir, g_dir, g_tool, g_dir, g_dir, g_dir, g_dir, g_dir),
        0);
    CHECK_EQ_INT(
        pi0_test_sh(
            "printf 'x<loc0012><loc1023>y <loc99>\\n' > %s/loc.txt && "
            "spm_encode --model=%s/big.model --output_format=id < %s/loc.txt > "
            "%s/ref.txt && '%s' --model %s/big.model --batch < %s/loc.txt > "
            "%s/got.txt && cmp %s/ref.txt %s/got.txt && grep -q '^124 272 1283 ' %s/got.txt",
            g_dir, g_dir, g_dir, g_dir, g_tool, g_dir, g_dir, g_dir, g_dir, g_dir, g_dir),
        0);
    remove_dir();
}

typedef struct thread_arg {
    const pi0_tokenizer *tok;
    const char *const *lines;
    int n;
    const int32_t *want; // (n, 64)
    const int *nwant;
    int bad;
} thread_arg;

static void *encode_thread(void *p) {
    thread_arg *a = p;
    for (int rep = 0; rep < 20; rep++)
        for (int i = 0; i < a->n; i++) {
            int32_t ids[64];
            int n = 0;
            int rc =
                pi0_tokenizer_encode(a->tok, a->lines[i], strlen(a->lines[i]), ids, 64, &n);
            if (rc || n != a->nwant[i] ||
                memcmp(ids, a->want + 64 * i, sizeof *ids * (size_t)n))
                a->bad++;
        }
    return NULL;
}

/* Concurrent encodes on one tokenizer (per-thread scratch) give the serial results. */
static void test_threads_share_one_tokenizer(void) {
    static pbw w;
    build_small_bpe(&w, 2);
    pi0_tokenizer *tok = NULL;
    CHECK_STATUS(pi0_tokenizer_load_buffer(w.b, w.n, "small", &tok), PI0_OK);
    if (!tok) return;
    enum { L = 200 };
    static char buf[L][48];
    static const char *lines[L];
    static int32_t want[L * 64];
    static int nwant[L];
    rng_state = 5;
    static const char *const parts[] = {"a", "b", "c", " ", "<U>", "x", "ab", "  "};
    for (int i = 0; i < L; i++) {
        buf[i][0] = 0;
        int n = (int)rnd_n(8);
        for (int k = 0; k < n; k++)
            strcat(buf[i], parts[rnd_n(8)]);
        lines[i] = buf[i];
        CHECK_STATUS(
            pi0_tokenizer_encode(tok, lines[i], strlen(lines[i]), want + 64 * i, 64, &nwant[i]),
            PI0_OK);
    }
    pthread_t th[4];
    thread_arg args[4];
    for (int t = 0; t < 4; t++) {
        args[t] = (thread_arg){tok, lines, L, want, nwant, 0};
        PI0_ASSERT(pthread_create(&th[t], NULL, encode_thread, &args[t]) == 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        CHECK_EQ_INT(args[t].bad, 0);
    }
    pi0_tokenizer_destroy(tok);
}

static void test_rejects_bad_models(void) {
    pi0_tokenizer *tok = NULL;
    CHECK_STATUS(pi0_tokenizer_load("/nonexistent/tokenizer.model", &tok), PI0_ENOENT);
    CHECK(strstr(pi0_last_error(), "/nonexistent/tokenizer.model") != NULL);
    CHECK_STATUS(pi0_tokenizer_load_buffer("", 0, "empty.model", &tok), PI0_EFORMAT);
    CHECK(strstr(pi0_last_error(), "empty.model") != NULL);
    CHECK_STATUS(pi0_tokenizer_load_buffer("hello, world\n", 13, "text.model", &tok),
                 PI0_EFORMAT);
    static pbw w;
    build_small_bpe(&w, 3); // WORD model
    CHECK_STATUS(pi0_tokenizer_load_buffer(w.b, w.n, "word.model", &tok), PI0_ENOTSUP);
    CHECK(strstr(pi0_last_error(), "model_type 3") != NULL);
    w.n = 0; // no unknown piece
    w_piece(&w, "a", 0, 1);
    CHECK_STATUS(pi0_tokenizer_load_buffer(w.b, w.n, "nounk.model", &tok), PI0_EFORMAT);
    w_piece(&w, "<unk>", 0, 2);
    w_piece(&w, "a", 0, 1); // duplicate
    CHECK_STATUS(pi0_tokenizer_load_buffer(w.b, w.n, "dup.model", &tok), PI0_EFORMAT);
    CHECK(strstr(pi0_last_error(), "already defined") != NULL);
    w.n = 0;
    w_piece(&w, "<unk>", 0, 2);
    w_piece(&w, "<0x41>", 0, 6); // byte piece without byte_fallback
    CHECK_STATUS(pi0_tokenizer_load_buffer(w.b, w.n, "byte.model", &tok), PI0_EFORMAT);
    CHECK(tok == NULL);
}

/* Truncations and random byte flips of a real model: load gives a clean error or a
 * model that encodes without crashing and yields ids inside the vocabulary. */
static void test_fuzz_model_reader(void) {
    make_dir();
    write_corpora(0x5eed0004);
    CHECK_EQ_INT(train("m", "--model_type=unigram --byte_fallback"), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/m.model", g_dir);
    size_t n = 0;
    uint8_t *orig = (uint8_t *)pi0_test_slurp(path, &n);
    CHECK(orig && n > 1000);
    if (!orig) goto out;
    uint8_t *buf = malloc(n);
    static const char *const texts[] = {"hello world 123", "東京 😀 ｶﾀｶﾅ  \t x", "", "\xFF\xC3"};
    int ok_loads = 0, errors = 0;
    int32_t ids[512];
    for (size_t cut = 0; cut < n; cut += (cut < 4096 ? 1 : 97)) {
        pi0_tokenizer *tok = NULL;
        int rc = pi0_tokenizer_load_buffer(orig, cut, "truncated", &tok);
        CHECK(rc <= 0);
        if (rc == 0) {
            ok_loads++;
            pi0_tokenizer_destroy(tok);
        } else
            errors++;
    }
    rng_state = 1234;
    for (int iter = 0; iter < 4000; iter++) {
        memcpy(buf, orig, n);
        int flips = 1 + (int)rnd_n(4);
        for (int k = 0; k < flips; k++) {
            size_t at =
                iter % 2 ? n - 1 - rnd_n((uint32_t)(n < 3000 ? n : 3000)) : rnd_n((uint32_t)n);
            buf[at] = rnd_n(3) ? (uint8_t)(buf[at] ^ (1u << rnd_n(8))) : (uint8_t)rnd();
        }
        pi0_tokenizer *tok = NULL;
        int rc = pi0_tokenizer_load_buffer(buf, n, "flipped", &tok);
        CHECK(rc <= 0);
        if (rc != 0) {
            errors++;
            continue;
        }
        ok_loads++;
        int vocab = pi0_tokenizer_vocab_size(tok);
        for (int t = 0; t < 4; t++) {
            int got = 0;
            rc = pi0_tokenizer_encode(tok, texts[t], strlen(texts[t]), ids, 512, &got);
            CHECK(rc == 0 || rc == PI0_ERANGE);
            for (int i = 0; i < got && i < 512; i++)
                CHECK(ids[i] >= 0 && ids[i] < vocab);
            size_t ol;
            char o[256];
            if (rc == 0) CHECK(pi0_tokenizer_decode(tok, ids, got, o, sizeof o, &ol) <= 0);
        }
        pi0_tokenizer_destroy(tok);
    }
    printf("  fuzz: %d loads ok, %d clean errors\n", ok_loads, errors);
    CHECK(errors > 0 && ok_loads > 0);
    free(buf);
out:
    free(orig);
    remove_dir();
}

// ---- prompts ----

static pi0_tokenizer *g_pg; // PaliGemma-like model in g_dir

static void load_pg(void) {
    make_dir();
    write_corpora(0x5eed0005);
    PI0_ASSERT(train("pg",
                     "--model_type=bpe --byte_fallback --normalization_rule_name=identity "
                     "--add_dummy_prefix=false --remove_extra_whitespaces=false "
                     "--split_digits --pad_id=0 --eos_id=1 --bos_id=2 --unk_id=3 "
                     "'--bos_piece=<bos>' '--eos_piece=<eos>'") == 0);
    char path[256];
    snprintf(path, sizeof path, "%s/pg.model", g_dir);
    PI0_ASSERT(pi0_tokenizer_load(path, &g_pg) == 0);
}

/* Ids from spm_encode for one line of text (no newline in it). */
static int spm_ids(const char *text, const char *extra, int32_t *ids, int cap) {
    char p[256];
    snprintf(p, sizeof p, "%s/one.txt", g_dir);
    FILE *f = fopen(p, "w");
    PI0_ASSERT(f);
    fprintf(f, "%s\n", text);
    fclose(f);
    if (pi0_test_sh(
            "spm_encode --model=%s/pg.model --output_format=id %s < %s/one.txt > %s/one.ids",
            g_dir, extra, g_dir, g_dir))
        return -1;
    snprintf(p, sizeof p, "%s/one.ids", g_dir);
    char *s = pi0_test_slurp(p, NULL);
    if (!s) return -1;
    int n = parse_ids(s, ids, cap);
    free(s);
    return n;
}

static void test_pi0_prompt_format(void) {
    load_pg();
    CHECK_EQ_INT(pi0_tokenizer_bos_id(g_pg), 2);
    CHECK_EQ_INT(pi0_tokenizer_eos_id(g_pg), 1);
    CHECK_EQ_INT(pi0_tokenizer_pad_id(g_pg), 0);
    CHECK_EQ_INT(pi0_tokenizer_unk_id(g_pg), 3);
    // clean(): strip (Python whitespace incl. U+3000), '_' and '\n' -> ' '.
    const char *prompt = " \t\xE3\x80\x80pick_up the\nred cup \n ";
    int32_t want[64], nl[8];
    int nw = spm_ids("pick up the red cup", "--extra_options=bos", want, 64);
    int32_t lf[4];
    int nlf = 0;
    CHECK_STATUS(pi0_tokenizer_encode(g_pg, "\n", 1, lf, 4, &nlf), PI0_OK);
    CHECK(nlf >= 1);
    // "\n" with byte fallback and no training newline is the byte piece <0x0A>.
    CHECK_EQ_INT(lf[0], pi0_tokenizer_piece_to_id(g_pg, "<0x0A>"));
    (void)nl;
    CHECK(nw > 3 && want[0] == 2);
    int32_t ids[48];
    uint8_t mask[48];
    int nv = -1;
    CHECK_STATUS(pi0_prompt_pi0(g_pg, prompt, 48, ids, mask, &nv), PI0_OK);
    CHECK_EQ_INT(nv, nw + nlf);
    for (int i = 0; i < nw; i++)
        CHECK_EQ_INT(ids[i], want[i]);
    for (int i = 0; i < nlf; i++)
        CHECK_EQ_INT(ids[nw + i], lf[i]);
    for (int i = 0; i < 48; i++) {
        CHECK_EQ_INT(mask[i], i < nv);
        if (i >= nv) CHECK_EQ_INT(ids[i], 0);
    }
    // Truncation: max_len shorter than the prompt keeps the first max_len ids, all real.
    int32_t ids4[4];
    uint8_t mask4[4];
    CHECK_STATUS(pi0_prompt_pi0(g_pg, prompt, 4, ids4, mask4, &nv), PI0_OK);
    CHECK_EQ_INT(nv, 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(ids4[i], ids[i]);
        CHECK_EQ_INT(mask4[i], 1);
    }
    // Cut exactly after the text: the "\n" ids are dropped.
    int32_t idsx[48];
    uint8_t maskx[48];
    CHECK_STATUS(pi0_prompt_pi0(g_pg, prompt, nw, idsx, maskx, &nv), PI0_OK);
    CHECK_EQ_INT(nv, nw);
    for (int i = 0; i < nw; i++)
        CHECK_EQ_INT(idsx[i], want[i]);
    // A prompt longer than the on-stack buffer (heap path) gives the same ids as encode().
    size_t big = 5000;
    char *longp = malloc(big + 1);
    for (size_t i = 0; i < big; i++)
        longp[i] = "pick up the cup "[i % 16];
    longp[big] = 0;
    int32_t *lids = malloc(sizeof *lids * 4096), *lref = malloc(sizeof *lref * 4096);
    uint8_t *lmask = malloc(4096);
    int nref = 0;
    lref[0] = 2;
    CHECK_STATUS(pi0_tokenizer_encode(g_pg, longp, big - 1, lref + 1, 4000, &nref), PI0_OK);
    CHECK_STATUS(pi0_prompt_pi0(g_pg, longp, 4096, lids, lmask, &nv), PI0_OK);
    CHECK_EQ_INT(nv, nref + 1 + nlf);
    for (int i = 0; i <= nref; i++)
        CHECK_EQ_INT(lids[i], lref[i]);
    free(longp);
    free(lids);
    free(lref);
    free(lmask);
    // Empty prompt: BOS + "\n".
    CHECK_STATUS(pi0_prompt_pi0(g_pg, "   ", 8, ids, mask, &nv), PI0_OK);
    CHECK_EQ_INT(nv, 1 + nlf);
    CHECK_EQ_INT(ids[0], 2);
    CHECK_EQ_INT(ids[1], lf[0]);
    CHECK_STATUS(pi0_prompt_pi0(g_pg, "x", 0, ids, mask, &nv), PI0_EINVAL);
    pi0_tokenizer_destroy(g_pg);
    remove_dir();
}

static void test_pi05_prompt_text(void) {
    const float st[] = {-1.0f,      0.0f,  1.0f, -1.5f,  -0.001f,
                        0.9921875f, 0.99f, 2.0f, 1e-30f, -1e-30f};
    char out[256];
    size_t n = 0;
    CHECK_STATUS(pi0_prompt_pi05_text(" pick_up\nthe cup ", st, 10, out, sizeof out, &n),
                 PI0_OK);
    CHECK_EQ_STR(out, "Task: pick up the cup, State: 0 128 255 -1 127 255 254 255 128 127;"
                      "\nAction: ");
    CHECK_EQ_INT(n, strlen(out));
    CHECK_STATUS(pi0_prompt_pi05_text("x", NULL, 0, out, sizeof out, &n), PI0_OK);
    CHECK_EQ_STR(out, "Task: x, State: ;\nAction: ");
    float bad = NAN;
    CHECK_STATUS(pi0_prompt_pi05_text("x", &bad, 1, out, sizeof out, &n), PI0_EINVAL);
    /* far outside [-1, 1] and infinite: the end bins, as np.digitize gives (tests/tokenizer/
     * ubsan-suite runs this under -fsanitize=float-cast-overflow) */
    const float far[] = {1e10f, -1e10f, 3e38f, -3e38f, INFINITY, -INFINITY, 2e7f, -2e7f};
    CHECK_STATUS(pi0_prompt_pi05_text("x", far, 8, out, sizeof out, &n), PI0_OK);
    CHECK_EQ_STR(out, "Task: x, State: 255 -1 255 -1 255 -1 255 -1;\nAction: ");
    CHECK_STATUS(pi0_prompt_pi05_text("x", st, 10, out, 8, &n), PI0_ERANGE);
    CHECK_EQ_INT(strlen(out), 7);
}

/* The 256-bin digitization agrees with numpy's np.digitize on float32 values, bin edges
 * and their float neighbours included. */
static void test_pi05_digitize_matches_numpy(void) {
    make_dir();
    enum { N = 3000 };
    static float v[N];
    rng_state = 99;
    for (int i = 0; i < N; i++) {
        if (i < 257 * 3) {
            float e = (float)(-1.0 + (double)(i / 3) / 128.0);
            v[i] = i % 3 == 0 ? e : i % 3 == 1 ? nextafterf(e, -2.0f) : nextafterf(e, 2.0f);
        } else
            v[i] = ((float)rnd() / 4294967296.0f) * 2.6f - 1.3f;
    }
    char p[256];
    snprintf(p, sizeof p, "%s/v.txt", g_dir);
    FILE *f = fopen(p, "w");
    PI0_ASSERT(f);
    for (int i = 0; i < N; i++)
        fprintf(f, "%.9g\n", (double)v[i]);
    fclose(f);
    CHECK_EQ_INT(pi0_test_sh("/usr/bin/python3 -c 'import numpy as np,sys; "
                             "x=np.loadtxt(sys.argv[1],dtype=np.float32); "
                             "d=np.digitize(x,bins=np.linspace(-1,1,256+1)[:-1])-1; "
                             "print(\" \".join(map(str,d)))' %s > %s/np.txt",
                             p, g_dir),
                 0);
    snprintf(p, sizeof p, "%s/np.txt", g_dir);
    char *ref = pi0_test_slurp(p, NULL);
    CHECK(ref != NULL);
    size_t len = 0;
    char *text = malloc(N * 6 + 64);
    CHECK_STATUS(pi0_prompt_pi05_text("", v, N, text, N * 6 + 64, &len), PI0_OK);
    if (ref) {
        char *e = strchr(ref, '\n');
        if (e) *e = 0;
        const char *s = text + strlen("Task: , State: ");
        size_t sl = strlen(s) - strlen(";\nAction: ");
        CHECK_MSG(strlen(ref) == sl && memcmp(ref, s, sl) == 0,
                  "digitized state differs from numpy:\n    numpy: %.200s\n    pi0:   %.200s",
                  ref, s);
    }
    free(text);
    free(ref);
    remove_dir();
}

static void write_npy_f32(const char *path, const float *v, int n) {
    char hdr[128];
    int hl = snprintf(hdr, sizeof hdr,
                      "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }", n);
    while ((10 + hl + 1) % 64)
        hdr[hl++] = ' ';
    hdr[hl++] = '\n';
    FILE *f = fopen(path, "wb");
    PI0_ASSERT(f);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc(hl & 0xff, f);
    fputc(hl >> 8, f);
    fwrite(hdr, 1, (size_t)hl, f);
    fwrite(v, 4, (size_t)n, f);
    fclose(f);
}

static void test_pi05_prompt_tokens_and_tool(void) {
    load_pg();
    const float st[] = {-1.0f, 0.0f, 0.5f, 1.0f};
    int32_t ids[200], want[256];
    uint8_t mask[200];
    int nv = 0, nw = 0;
    CHECK_STATUS(pi0_prompt_pi05(g_pg, "pick_up the cup", st, 4, 200, ids, mask, &nv), PI0_OK);
    const char *text = "Task: pick up the cup, State: 0 128 192 255;\nAction: ";
    want[0] = 2;
    CHECK_STATUS(pi0_tokenizer_encode(g_pg, text, strlen(text), want + 1, 255, &nw), PI0_OK);
    nw += 1;
    CHECK_EQ_INT(nv, nw);
    for (int i = 0; i < 200; i++) {
        CHECK_EQ_INT(ids[i], i < nw ? want[i] : 0);
        CHECK_EQ_INT(mask[i], i < nw);
    }
    // The two halves around "\n" agree with spm_encode (which cannot see a newline).
    int32_t a[128];
    int na = spm_ids("Task: pick up the cup, State: 0 128 192 255;", "", a, 128);
    CHECK(na > 0);
    for (int i = 0; i < na; i++)
        CHECK_EQ_INT(want[1 + i], a[i]);
    // pi0rt-tokenize --format pi05 --state x.npy prints the same ids and mask.
    char npy[256], outp[256];
    snprintf(npy, sizeof npy, "%s/state.npy", g_dir);
    snprintf(outp, sizeof outp, "%s/tool.txt", g_dir);
    write_npy_f32(npy, st, 4);
    CHECK_EQ_INT(
        pi0_test_sh("'%s' --model %s/pg.model --format pi05 --state %s pick_up the cup > %s",
                    g_tool, g_dir, npy, outp),
        0);
    char *s = pi0_test_slurp(outp, NULL);
    CHECK(s != NULL);
    if (s) {
        char *cur = s, *l1, *l2;
        size_t len;
        l1 = next_line(&cur, &len);
        l2 = next_line(&cur, &len);
        int32_t got[256];
        CHECK(l1 && l2);
        if (l1 && l2) {
            CHECK_EQ_INT(parse_ids(l1, got, 256), 200);
            for (int i = 0; i < 200; i++)
                CHECK_EQ_INT(got[i], ids[i]);
            CHECK_EQ_INT(parse_ids(l2, got, 256), 200);
            for (int i = 0; i < 200; i++)
                CHECK_EQ_INT(got[i], mask[i]);
        }
        free(s);
    }
    // Errors: name the bad value and exit non-zero.
    CHECK(pi0_test_sh_quiet("'%s' --model %s/pg.model --format pi5 x 2>/dev/null", g_tool,
                            g_dir) != 0);
    CHECK(pi0_test_sh_quiet("'%s' --model %s/missing.model x 2>/dev/null", g_tool, g_dir) != 0);
    CHECK(pi0_test_sh_quiet(
              "'%s' --model %s/pg.model --format pi05 --state %s/pg.model x 2>/dev/null",
              g_tool, g_dir, g_dir) != 0);
    CHECK_EQ_INT(pi0_test_sh("'%s' --help > /dev/null", g_tool), 0);
    pi0_tokenizer_destroy(g_pg);
    remove_dir();
}

/* Runs pi0rt-tokenize ARGS (printf-formatted) with stdout and stderr into out; returns its
 * exit status. */
static int tool_out(char *out, size_t cap, const char *fmt, ...) PI0_PRINTF(3, 4);
static int tool_out(char *out, size_t cap, const char *fmt, ...) {
    char args[2048], cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1 </dev/null", g_tool, args);
    FILE *f = popen(cmd, "r");
    PI0_ASSERT(f);
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int one_line(const char *s) {
    return s[0] && strchr(s, '\n') == s + strlen(s) - 1;
}

/* Usage errors: one line and a --help hint, exit 2; negative ids reach the decoder (which
 * names them); no TEXT is an error; a directory where a file belongs is named as one. */
static void test_tool_usage_errors(void) {
    load_pg();
    char out[8192];
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model --frob x", g_dir), 2);
    CHECK_MSG(one_line(out) && strstr(out, "--frob") && strstr(out, "--help"), "said: %s", out);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model -q x", g_dir), 2);
    CHECK_MSG(one_line(out) && strstr(out, "-q") && strstr(out, "--help"), "said: %s", out);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model"), 2);
    CHECK_MSG(one_line(out) && strstr(out, "--model") && strstr(out, "--help"), "said: %s",
              out);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model", g_dir), 2);
    CHECK_MSG(one_line(out) && strstr(out, "TEXT"), "said: %s", out);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model --decode", g_dir), 2);
    CHECK_MSG(one_line(out) && strstr(out, "ID"), "said: %s", out);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model --decode 5 -1 7", g_dir), 1);
    CHECK_MSG(one_line(out) && strstr(out, "invalid id -1 at position 1"), "said: %s", out);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--decode -12 --model %s/pg.model", g_dir), 1);
    CHECK_MSG(one_line(out) && strstr(out, "invalid id -12"), "said: %s", out);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model --decode 5 7", g_dir), 0);
    /* negative numbers in TEXT are text; an explicit empty TEXT is allowed */
    char ref[8192];
    CHECK_EQ_INT(tool_out(ref, sizeof ref, "--model %s/pg.model 'turn -5 x'", g_dir), 0);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model turn -5 x", g_dir), 0);
    CHECK_EQ_STR(out, ref);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model -- turn -5 x", g_dir), 0);
    CHECK_EQ_STR(out, ref);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model ''", g_dir), 0);
    CHECK_EQ_STR(out, "\n");
    /* a directory where a file belongs */
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s x", g_dir), 1);
    CHECK_MSG(one_line(out) && strstr(out, g_dir) && strstr(out, "is a directory"), "said: %s",
              out);
    CHECK_EQ_INT(tool_out(out, sizeof out, "--model %s/pg.model --format pi05 --state %s x",
                          g_dir, g_dir),
                 1);
    CHECK_MSG(one_line(out) && strstr(out, g_dir) && strstr(out, "is a directory"), "said: %s",
              out);
    pi0_tokenizer_destroy(g_pg);
    remove_dir();
}

int main(int argc, char **argv) {
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(g_tool, sizeof g_tool, "%s/../pi0rt-tokenize", dirname(self));
    static const pi0_test tests[] = {
        TEST(test_bpe_nmt_nfkc),
        TEST(test_unigram_nmt_nfkc),
        TEST(test_bpe_byte_fallback_split_digits),
        TEST(test_unigram_byte_fallback),
        TEST(test_unigram_identity_no_dummy_prefix),
        TEST(test_bpe_user_symbols_keep_whitespace),
        TEST(test_unigram_user_symbols_nfkc_cf),
        TEST(test_unigram_whitespace_suffix),
        TEST(test_bpe_paligemma_settings),
        TEST(test_bpe_paligemma_sized_vocab),
        TEST(test_tool_batch_matches_spm),
        TEST(test_decode_random_ids),
        TEST(test_hand_built_bpe_matches_spm),
        TEST(test_pi0_prompt_hand_checked),
        TEST(test_tool_usage_errors),
        TEST(test_threads_share_one_tokenizer),
        TEST(test_rejects_bad_models),
        TEST(test_fuzz_model_reader),
        TEST(test_pi0_prompt_format),
        TEST(test_pi05_prompt_text),
        TEST(test_pi05_digitize_matches_numpy),
        TEST(test_pi05_prompt_tokens_and_tool),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
