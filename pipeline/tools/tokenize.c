/* tokenize.c — pi0rt-tokenize: text -> SentencePiece ids (raw, π0 or π0.5 prompt
 * format) and ids -> text. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_cli.h"
#include "pipeline/checkpoint/npy.h"
#include "pipeline/pi0_tokenizer.h"

static void usage(FILE *f) {
    fputs(
        "usage: pi0rt-tokenize --model FILE [options] TEXT...\n"
        "       pi0rt-tokenize --model FILE --decode ID...\n"
        "       pi0rt-tokenize --model FILE --batch [options] < lines\n"
        "\n"
        "Tokenizes TEXT (the arguments joined with single spaces) with a SentencePiece\n"
        ".model file (BPE or unigram), giving the same ids as sentencepiece's EncodeAsIds.\n"
        "\n"
        "  --model FILE        SentencePiece model (e.g. the PaliGemma tokenizer.model)\n"
        "  --format FMT        raw (default): the ids of TEXT, space-separated;\n"
        "                      pi0: BOS + clean(TEXT) + \"\\n\", padded with 0 to --max-len;\n"
        "                      pi05: BOS + \"Task: {clean}, State: {bins};\\nAction: \", "
        "padded;\n"
        "                      pi0/pi05 print the ids on one line and the mask (1 = real\n"
        "                      token) on the next\n"
        "  --max-len N         prompt length for pi0/pi05 (default 48 for pi0, 200 for pi05)\n"
        "  --state FILE.npy    normalized state for pi05 (float32/float64 .npy, flattened)\n"
        "  --pieces            print pieces instead of ids (raw format)\n"
        "  --decode            the arguments are ids; print the decoded text\n"
        "  --batch             read lines from stdin, one output line (or two) per line\n"
        "  --bench N           encode TEXT in the chosen format N times; print one JSON line\n"
        "  --help              this text\n",
        f);
}

static int usage_error(const char *what, const char *arg) {
    fprintf(stderr, "pi0rt-tokenize: %s%s (see pi0rt-tokenize --help)\n", what, arg);
    return 2;
}

static int takes_value(const char *a) {
    static const char *const v[] = {"--model", "--format", "--max-len", "--state", "--bench",
                                    "-m",      "-f",       "-l",        "-s",      "-B"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (!strcmp(a, v[i])) return 1;
    return 0;
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "pi0rt-tokenize: %s: %s\n", what, rc ? pi0_last_error_for(rc) : "error");
    return 1;
}

/* Reads a float32 or float64 .npy of any shape (flattened) as float32 values. */
static int read_state(const char *path, pi0_npy *a) {
    int rc = pi0_npy_read(path, a);
    if (!rc) rc = pi0_npy_to_f32(a, path);
    if (!rc && a->numel > 4096)
        rc = pi0_errorf(PI0_ESHAPE, "%s: %lld values, at most 4096", path, (long long)a->numel);
    if (rc) pi0_npy_free(a);
    return rc;
}

typedef struct opts {
    const pi0_tokenizer *tok;
    int format; // 0 raw, 1 pi0, 2 pi05
    int max_len;
    const float *state;
    int state_dim;
    bool pieces;
} opts;

/* Encodes one text per the options; prints ids (and mask). */
static int run_one(const opts *o, const char *text, size_t len, int32_t **ids, int *cap,
                   uint8_t *mask, bool print) {
    int n = 0, rc;
    if (o->format == 0) {
        while ((rc = pi0_tokenizer_encode(o->tok, text, len, *ids, *cap, &n)) == PI0_ERANGE &&
               n > *cap) {
            int32_t *p = realloc(*ids, sizeof *p * (size_t)n);
            if (!p) return pi0_errorf(PI0_ENOMEM, "out of memory");
            *ids = p;
            *cap = n;
        }
        if (rc) return rc;
    } else {
        rc = o->format == 1 ? pi0_prompt_pi0(o->tok, text, o->max_len, *ids, mask, &n)
                            : pi0_prompt_pi05(o->tok, text, o->state, o->state_dim, o->max_len,
                                              *ids, mask, &n);
        if (rc) return rc;
        n = o->max_len;
    }
    if (!print) return 0;
    for (int i = 0; i < n; i++) {
        if (o->pieces && o->format == 0)
            printf(i ? " %s" : "%s", pi0_tokenizer_id_to_piece(o->tok, (*ids)[i]));
        else
            printf(i ? " %d" : "%d", (int)(*ids)[i]);
    }
    putchar('\n');
    if (o->format != 0) {
        for (int i = 0; i < n; i++)
            printf(i ? " %d" : "%d", mask[i]);
        putchar('\n');
    }
    return 0;
}

/* Parses ids (separated by spaces, commas or newlines) from s, decodes, prints a line. */
static int decode_line(const pi0_tokenizer *tok, const char *s, int32_t **ids, int *cap) {
    int n = 0;
    for (const char *p = s; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
            p++;
        if (!*p) break;
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) {
            fprintf(stderr, "pi0rt-tokenize: --decode: \"%s\" is not a list of ids\n", s);
            return 2;
        }
        if (n == *cap) {
            int32_t *q = realloc(*ids, sizeof *q * (size_t)*cap * 2);
            if (!q) return fail("decode", pi0_errorf(PI0_ENOMEM, "out of memory"));
            *ids = q;
            *cap *= 2;
        }
        (*ids)[n++] = v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v;
        p = e;
    }
    size_t len = 0;
    int rc = pi0_tokenizer_decode(tok, *ids, n, NULL, 0, &len);
    if (rc && rc != PI0_ERANGE) return fail("decode", rc);
    char *text = malloc(len + 1);
    if (!text) return fail("decode", pi0_errorf(PI0_ENOMEM, "out of memory"));
    rc = pi0_tokenizer_decode(tok, *ids, n, text, len + 1, &len);
    if (!rc) {
        fwrite(text, 1, len, stdout);
        putchar('\n');
    }
    free(text);
    return rc ? fail("decode", rc) : 0;
}

int main(int argc, char **argv) {
    static const struct option lo[] = {
        {"model", required_argument, 0, 'm'},   {"format", required_argument, 0, 'f'},
        {"max-len", required_argument, 0, 'l'}, {"state", required_argument, 0, 's'},
        {"decode", no_argument, 0, 'd'},        {"batch", no_argument, 0, 'b'},
        {"bench", required_argument, 0, 'B'},   {"pieces", no_argument, 0, 'p'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *model = NULL, *state_path = NULL;
    opts o = {0};
    bool decode = false, batch = false;
    long bench = 0;
    int c;
    /* A negative number ("--decode -1", "turn -5 degrees") is an operand, not options
     * "-1": getopt sees it behind a leading NUL byte (an empty non-option), and the text
     * joined below starts one byte further. */
    char **neg = calloc((size_t)argc + 1, sizeof *neg);
    if (!neg) return fail("alloc", pi0_errorf(PI0_ENOMEM, "out of memory"));
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(argv[i - 1], "--")) break;
        if (a[0] == '-' && a[1] >= '0' && a[1] <= '9' && !takes_value(argv[i - 1])) {
            size_t k = strlen(a);
            if (!(neg[i] = malloc(k + 2)))
                return fail("alloc", pi0_errorf(PI0_ENOMEM, "out of memory"));
            neg[i][0] = 0;
            memcpy(neg[i] + 1, a, k + 1);
            argv[i] = neg[i];
        }
    }
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":m:f:l:s:dbB:ph", lo, NULL)) != -1) {
        switch (c) {
        case 'm':
            model = optarg;
            break;
        case 'f':
            if (!strcmp(optarg, "raw"))
                o.format = 0;
            else if (!strcmp(optarg, "pi0"))
                o.format = 1;
            else if (!strcmp(optarg, "pi05"))
                o.format = 2;
            else {
                fprintf(stderr, "pi0rt-tokenize: --format %s: expected raw, pi0 or pi05\n",
                        optarg);
                return 2;
            }
            break;
        case 'l': {
            char *e;
            long v = strtol(optarg, &e, 10);
            if (*e || v <= 0 || v > 1 << 20) {
                fprintf(stderr, "pi0rt-tokenize: --max-len %s: expected a positive integer\n",
                        optarg);
                return 2;
            }
            o.max_len = (int)v;
            break;
        }
        case 's':
            state_path = optarg;
            break;
        case 'd':
            decode = true;
            break;
        case 'b':
            batch = true;
            break;
        case 'B': {
            char *e;
            bench = strtol(optarg, &e, 10);
            if (*e || bench <= 0) {
                fprintf(stderr, "pi0rt-tokenize: --bench %s: expected a positive count\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'p':
            o.pieces = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
        default:
            return pi0__opt_error("pi0rt-tokenize", argv, c);
        }
    }
    for (int i = optind; i < argc; i++) /* the negative numbers marked above */
        for (int j = 1; j < argc; j++)
            if (neg[j] && argv[i] == neg[j]) argv[i] = neg[j] + 1;
    if (optind == argc && !batch)
        return usage_error(decode ? "--decode needs ID..." : "no TEXT to tokenize", "");
    if (!model) {
        fprintf(stderr, "pi0rt-tokenize: --model FILE is required (see --help)\n");
        return 2;
    }
    if (!o.max_len) o.max_len = o.format == 2 ? 200 : 48;
    if (o.format == 2 && !state_path) {
        fprintf(stderr, "pi0rt-tokenize: --format pi05 needs --state FILE.npy\n");
        return 2;
    }
    pi0_tokenizer *tok = NULL;
    int rc = pi0_tokenizer_load(model, &tok);
    if (rc) return fail("load", rc);
    o.tok = tok;
    pi0_npy state = {0};
    if (state_path) {
        rc = read_state(state_path, &state);
        if (rc) {
            pi0_tokenizer_destroy(tok);
            return fail("--state", rc);
        }
        o.state = state.data;
        o.state_dim = (int)state.numel;
    }
    int status = 0;
    int cap = o.max_len > 256 ? o.max_len : 256;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    uint8_t *mask = malloc((size_t)cap);
    char *text = NULL;
    if (!ids || !mask) {
        status = fail("alloc", pi0_errorf(PI0_ENOMEM, "out of memory"));
        goto out;
    }
    if (decode && batch) {
        size_t lcap = 0;
        while (getline(&text, &lcap, stdin) >= 0)
            if ((status = decode_line(tok, text, &ids, &cap))) goto out;
        goto out;
    }
    if (batch) {
        size_t lcap = 0;
        ssize_t got;
        while ((got = getline(&text, &lcap, stdin)) >= 0) {
            size_t len = (size_t)got;
            if (len && text[len - 1] == '\n') text[--len] = 0;
            if ((rc = run_one(&o, text, len, &ids, &cap, mask, true))) {
                status = fail("encode", rc);
                goto out;
            }
        }
        goto out;
    }
    // The arguments joined with single spaces.
    size_t tl = 0;
    for (int i = optind; i < argc; i++)
        tl += strlen(argv[i]) + 1;
    text = malloc(tl + 1);
    if (!text) {
        status = fail("alloc", pi0_errorf(PI0_ENOMEM, "out of memory"));
        goto out;
    }
    text[0] = 0;
    size_t len = 0;
    for (int i = optind; i < argc; i++) {
        if (i > optind) text[len++] = ' ';
        size_t k = strlen(argv[i]);
        memcpy(text + len, argv[i], k);
        len += k;
    }
    text[len] = 0;
    if (decode) { // the arguments joined: one list of ids
        status = decode_line(tok, text, &ids, &cap);
        goto out;
    }
    if (bench) {
        struct timespec t0, t1;
        int n_ids = 0;
        if ((rc = run_one(&o, text, len, &ids, &cap, mask, false))) {
            status = fail("encode", rc);
            goto out;
        }
        // Best of 5 rounds of bench/5 calls, in wall time and in this thread's CPU time
        // (the machine is shared; the minimum is the least disturbed measurement).
        double wall = 1e30, cpu = 1e30;
        long per = bench / 5 > 0 ? bench / 5 : 1;
        for (int round = 0; round < 5; round++) {
            struct timespec c0, c1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
            for (long i = 0; i < per; i++)
                run_one(&o, text, len, &ids, &cap, mask, false);
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            double el =
                (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
            double ec =
                (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
            if (el < wall) wall = el;
            if (ec < cpu) cpu = ec;
        }
        if (o.format == 0)
            pi0_tokenizer_encode(tok, text, len, ids, cap, &n_ids);
        else
            n_ids = o.max_len;
        printf("{\"bench\":\"tokenize_%s\",\"model\":\"%s\",\"text_bytes\":%zu,\"ids\":%d,"
               "\"calls\":%ld,\"us_per_call\":%.3f,\"cpu_us_per_call\":%.3f}\n",
               o.format == 0   ? "raw"
               : o.format == 1 ? "pi0"
                               : "pi05",
               model, len, n_ids, per * 5, wall * 1e6 / (double)per, cpu * 1e6 / (double)per);
        goto out;
    }
    if ((rc = run_one(&o, text, len, &ids, &cap, mask, true))) status = fail("encode", rc);
out:
    free(text);
    free(ids);
    free(mask);
    pi0_npy_free(&state);
    pi0_tokenizer_destroy(tok);
    for (int i = 0; i < argc; i++)
        free(neg[i]);
    free(neg);
    return status;
}
