/* test_loader.c — safetensors reader, weights loader (key mapping, config.json,
 * norm_stats.json), .npy I/O, preprocessing helpers, pi0rt-mkmodel.
 *
 * Uses ../pi0rt-mkmodel (next to this binary's directory) to make tiny checkpoints in a
 * temp dir under /tmp; the full-size key set is checked with `--list` (nothing written). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <sys/stat.h>

#include "harness.h"
#include "pipeline/checkpoint/npy.h"
#include "common/pi0_file.h"
#include "pipeline/pi0_weights.h"
#include "pipeline/preprocess/preprocess.h"
#include "pipeline/checkpoint/safetensors.h"

static char MKMODEL[4096];

// ---- helpers ----------------------------------------------------------------------

static char *fmt(const char *f, ...) PI0_PRINTF(1, 2);
static char *fmt(const char *f, ...) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ & 7];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, 4096, f, ap);
    va_end(ap);
    return b;
}

/* fmt() returns one of a few rotating buffers: keep() a result that must live longer. */
static char *keep(const char *s) {
    char *r = strdup(s);
    PI0_ASSERT(r);
    return r;
}

static int mkmodel(const char *args, const char *out) {
    return pi0_test_sh_quiet("'%s' %s --out '%s' >/dev/null", MKMODEL, args, out);
}

static void spit(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    PI0_ASSERT(fp && fwrite(data, 1, len, fp) == len);
    fclose(fp);
}

/* Writes a safetensors file: 8-byte length, `header` (padded with spaces to `hpad`
 * multiple, 0 = no padding), then `data_len` bytes of a ramp. */
static void write_st(const char *path, const char *header, size_t hpad, size_t data_len) {
    size_t hl = strlen(header), padded = hpad ? (hl + hpad - 1) / hpad * hpad : hl;
    size_t total = 8 + padded + data_len;
    uint8_t *b = malloc(total);
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(b + 8, header, hl);
    memset(b + 8 + hl, ' ', padded - hl);
    for (size_t i = 0; i < data_len; i++)
        b[8 + padded + i] = (uint8_t)(i * 7 + 1);
    spit(path, b, total);
    free(b);
}

/* Rewrites the header of safetensors file `path` through `edit` (on the parsed JSON),
 * keeping the data section as is. */
static void edit_st(const char *path, void (*edit)(cJSON *root, const void *arg),
                    const void *arg) {
    size_t len;
    uint8_t *b = pi0_test_slurp(path, &len);
    PI0_ASSERT(b);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | b[i];
    cJSON *root = cJSON_ParseWithLength((const char *)b + 8, (size_t)hl);
    PI0_ASSERT(root);
    edit(root, arg);
    char *h = cJSON_PrintUnformatted(root);
    size_t nl = strlen(h), padded = (nl + 7) / 8 * 8, dl = len - 8 - (size_t)hl;
    uint8_t *o = malloc(8 + padded + dl);
    for (int i = 0; i < 8; i++)
        o[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(o + 8, h, nl);
    memset(o + 8 + nl, ' ', padded - nl);
    memcpy(o + 8 + padded, b + 8 + hl, dl);
    spit(path, o, 8 + padded + dl);
    free(o);
    free(h);
    cJSON_Delete(root);
    free(b);
}

static void ed_delete(cJSON *root, const void *key) {
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
}

/* Adds an empty F32 tensor [0] named `key` (occupies no data). */
static void ed_add_empty(cJSON *root, const void *key) {
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON *s = cJSON_AddArrayToObject(e, "shape");
    cJSON_AddItemToArray(s, cJSON_CreateNumber(0));
    cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber(0));
    cJSON_AddItemToArray(o, cJSON_CreateNumber(0));
    cJSON_AddItemToObject(root, key, e);
}

static void ed_transpose(cJSON *root, const void *key) {
    cJSON *e = cJSON_GetObjectItemCaseSensitive(root, key);
    PI0_ASSERT(e);
    cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "shape");
    int a = cJSON_GetArrayItem(s, 0)->valueint, b = cJSON_GetArrayItem(s, 1)->valueint;
    cJSON_ReplaceItemInArray(s, 0, cJSON_CreateNumber(b));
    cJSON_ReplaceItemInArray(s, 1, cJSON_CreateNumber(a));
}

/* Sets config key to a JSON value text (NULL = delete). */
static void edit_config(const char *dir, const char *key, const char *json) {
    char *p = fmt("%s/config.json", dir);
    size_t len;
    char *t = pi0_test_slurp(p, &len);
    cJSON *root = cJSON_Parse(t);
    PI0_ASSERT(root);
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    if (json) cJSON_AddItemToObject(root, key, cJSON_Parse(json));
    char *o = cJSON_Print(root);
    spit(p, o, strlen(o));
    free(o);
    cJSON_Delete(root);
    free(t);
}

#define CHECK_ERR_HAS(s)                                                                       \
    CHECK_MSG(strstr(pi0_last_error(), (s)) != NULL, "error \"%s\" lacks \"%s\"",              \
              pi0_last_error(), (s))

static int64_t numel(const pi0_tensor *t) {
    return pi0_tensor_numel(t);
}

// ---- safetensors reader -----------------------------------------------------------

/* The reader must hand cJSON NUL-terminated text: cJSON <= 1.7.17 reads one byte past a
 * buffer that is not (CVE-2023-53154). This definition, which the linker prefers to
 * libcjson's for the reader linked into this binary, counts calls whose text has no NUL
 * as its last byte or right after it, then forwards to the library. */
static int g_json_calls, g_json_unterminated;
__attribute__((visibility("default"))) cJSON *
cJSON_ParseWithLengthOpts(const char *value, size_t len, const char **end,
                          cJSON_bool require_null_terminated) {
    typedef cJSON *(*parse_fn)(const char *, size_t, const char **, cJSON_bool);
    static parse_fn real;
    if (!real) real = (parse_fn)dlsym(RTLD_NEXT, "cJSON_ParseWithLengthOpts");
    PI0_ASSERT(real);
    g_json_calls++;
    if (value && !(len > 0 && value[len - 1] == '\0') && value[len] != '\0')
        g_json_unterminated++;
    return real(value, len, end, require_null_terminated);
}

static void test_st_valid(void) {
    char *d = pi0_test_tmpdir("pi0ldr"), *p = keep(fmt("%s/a.safetensors", d));
    /* listed out of order, a gap-free layout: b [0,8) f16[4]; a [8,32) f32[2,3]; c empty */
    write_st(p,
             "{\"__metadata__\":{\"format\":\"pt\"},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
             "\"b\":{\"dtype\":\"BF16\",\"shape\":[4],\"data_offsets\":[0,8]},"
             "\"c\":{\"dtype\":\"F16\",\"shape\":[0,5],\"data_offsets\":[32,32]}}",
             8, 32);
    pi0__st_file *f = NULL;
    CHECK_STATUS(pi0__st_open(p, &f), PI0_OK);
    if (!f) {
        fprintf(stderr, "  %s\n", pi0_last_error());
        pi0_test_rmrf(d);
        return;
    }
    CHECK_EQ_INT(pi0__st_count(f), 3);
    const pi0_tensor *a = pi0__st_find(f, "a"), *b = pi0__st_find(f, "b"),
                     *c = pi0__st_find(f, "c");
    CHECK(a && b && c && !pi0__st_find(f, "__metadata__") && !pi0__st_find(f, "z"));
    CHECK_EQ_INT(a->dtype, PI0_F32);
    CHECK_EQ_INT(a->ndim, 2);
    CHECK_EQ_INT(a->shape[0], 2);
    CHECK_EQ_INT(a->shape[1], 3);
    CHECK_EQ_INT(b->dtype, PI0_BF16);
    CHECK_EQ_INT(numel(c), 0);
    CHECK((const uint8_t *)a->data - (const uint8_t *)b->data == 8);
    CHECK_EQ_INT(((const uint8_t *)b->data)[0], 1); /* ramp byte 0 */
    CHECK_EQ_INT(((const uint8_t *)a->data)[0], (uint8_t)(8 * 7 + 1));
    pi0__st_close(f);
    pi0_test_rmrf(d);
}

/* Headers, valid and cut inside a string, followed by data: cJSON sees a terminated copy. */
static void test_st_header_parsed_nul_terminated(void) {
    char *d = pi0_test_tmpdir("pi0ldr");
    const char *headers[] = {
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
        "{\"a\":{\"dtype\":\"F32",
    };
    for (int i = 0; i < 2; i++) {
        char *p = fmt("%s/h%d.safetensors", d, i);
        write_st(p, headers[i], 8, 8); /* data right after the header: ramp bytes 1, 2, ... */
        g_json_calls = g_json_unterminated = 0;
        pi0__st_file *f = NULL;
        CHECK_STATUS(pi0__st_open(p, &f), i == 0 ? PI0_OK : PI0_EFORMAT);
        pi0__st_close(f);
        CHECK_EQ_INT(g_json_calls, 1);
        CHECK_EQ_INT(g_json_unterminated, 0);
    }
    pi0_test_rmrf(d);
}

typedef struct bad_case {
    const char *what, *header;
    size_t hpad, data_len;
    long truncate; /* >= 0: cut the file to this many bytes */
    int code;
    const char *msg; /* substring the error must contain */
} bad_case;

static void test_st_bad_inputs(void) {
    static const bad_case cases[] = {
        {"empty file", "", 0, 0, 0, PI0_EFORMAT, "too short"},
        {"5 bytes", "{}", 0, 0, 5, PI0_EFORMAT, "too short"},
        {"header length beyond the file",
         "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, 4, 30,
         PI0_EFORMAT, "exceeds the file"},
        {"not JSON", "{\"a\": nope}", 8, 0, -1, PI0_EFORMAT, "not a valid JSON"},
        {"JSON array", "[1,2,3]  ", 0, 0, -1, PI0_EFORMAT, "start with"},
        {"trailing bytes", "{} xx", 0, 0, -1, PI0_EFORMAT, "trailing"},
        {"unknown dtype", "{\"w.x\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
         8, 8, -1, PI0_ETYPE, "w.x: dtype I64"},
        {"offsets outside data",
         "{\"big\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8, 8, -1,
         PI0_EFORMAT, "big: data_offsets [0, 16] outside"},
        {"begin > end", "{\"r\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8,
         8, -1, PI0_EFORMAT, "r: data_offsets"},
        {"shape x dtype != range",
         "{\"s\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8, 8, -1,
         PI0_EFORMAT, "s: shape x dtype is 12 bytes"},
        {"overlap",
         "{\"p\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"q\":{\"dtype\":"
         "\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
         8, 12, -1, PI0_EFORMAT, "overlaps"},
        {"overlap unsorted",
         "{\"q\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},\"p\":{\"dtype\":"
         "\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
         8, 12, -1, PI0_EFORMAT, "overlaps"},
        {"negative dim", "{\"n\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 8,
         4, -1, PI0_EFORMAT, "n: shape[0]"},
        {"fractional dim", "{\"n\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}",
         8, 4, -1, PI0_EFORMAT, "n: shape[0]"},
        {"huge dims",
         "{\"h\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}",
         8, 4, -1, PI0_EFORMAT, "h:"},
        {"5 dims", "{\"d5\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}",
         8, 4, -1, PI0_ENOTSUP, "d5: 5 dims"},
        {"missing dtype", "{\"m\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 8, 4, -1,
         PI0_EFORMAT, "m: entry needs"},
        {"3 offsets", "{\"o\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
         8, -1, PI0_EFORMAT, "o: data_offsets must"},
        {"entry not object", "{\"e\":5}", 8, 0, -1, PI0_EFORMAT, "e: header entry"},
        {"duplicate key",
         "{\"k\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"k\":{\"dtype\":"
         "\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
         8, 8, -1, PI0_EFORMAT, "k: listed twice"},
        {"metadata not object", "{\"__metadata__\":3}", 8, 0, -1, PI0_EFORMAT, "__metadata__"},
        {"misaligned f32", "{\"u\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[1,5]}}",
         8, 8, -1, PI0_EFORMAT, "u: data at file offset"},
        {"truncated data",
         "{\"t\":{\"dtype\":\"F32\",\"shape\":[64],\"data_offsets\":[0,256]}}", 8, 256, 200,
         PI0_EFORMAT, "t: data_offsets [0, 256] outside"},
    };
    char *d = pi0_test_tmpdir("pi0ldr");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bad_case *c = &cases[i];
        char *p = fmt("%s/bad%zu.safetensors", d, i);
        write_st(p, c->header, c->hpad, c->data_len);
        if (c->truncate >= 0) PI0_ASSERT(truncate(p, c->truncate) == 0);
        pi0__st_file *f = NULL;
        int rc = pi0__st_open(p, &f);
        CHECK_MSG(rc == c->code, "case '%s': got %d (%s), want %d", c->what, rc,
                  pi0_last_error(), c->code);
        CHECK_MSG(f == NULL, "case '%s': handle set on failure", c->what);
        CHECK_MSG(strstr(pi0_last_error(), c->msg) && strstr(pi0_last_error(), p),
                  "case '%s': error \"%s\" should name the file and contain \"%s\"", c->what,
                  pi0_last_error(), c->msg);
        pi0__st_close(f);
    }
    pi0__st_file *f = NULL;
    CHECK_STATUS(pi0__st_open(fmt("%s/none.safetensors", d), &f), PI0_ENOENT);
    CHECK_STATUS(pi0__st_open(d, &f), PI0_EIO); /* a directory */
    pi0_test_rmrf(d);
}

// ---- weights: tiny checkpoints ----------------------------------------------------

static void check_tiny_cfg(const pi0_weights *w, int pi05) {
    const pi0_config *c = &w->cfg;
    CHECK_EQ_INT(c->pi05, pi05);
    CHECK_EQ_INT(c->action_dim, 32);
    CHECK_EQ_INT(c->state_dim, 32);
    CHECK_EQ_INT(c->action_horizon, 50);
    CHECK_EQ_INT(c->num_steps, 10);
    CHECK_EQ_INT(c->max_token_len, pi05 ? 200 : 48);
    CHECK_EQ_INT(c->vision.width, 32);
    CHECK_EQ_INT(c->vision.depth, 2);
    CHECK_EQ_INT(c->vision.mlp, 64);
    CHECK_EQ_INT(c->vision.n_heads, 2);
    CHECK_EQ_INT(c->vision.head_dim, 16);
    CHECK_EQ_INT(c->patch, 14);
    CHECK_EQ_INT(c->image, 224);
    CHECK_EQ_INT(c->n_patches, 256);
    CHECK_EQ_INT(c->vlm.width, 64);
    CHECK_EQ_INT(c->vlm.depth, 2);
    CHECK_EQ_INT(c->vlm.mlp, 128);
    CHECK_EQ_INT(c->vlm.n_heads, 4);
    CHECK_EQ_INT(c->vlm.n_kv_heads, 1);
    CHECK_EQ_INT(c->vlm.head_dim, 16);
    CHECK_EQ_INT(c->vlm.vocab, 1024);
    CHECK_EQ_INT(c->expert.width, 32);
    CHECK_EQ_INT(c->expert.depth, 2);
    CHECK_EQ_INT(c->expert.mlp, 64);
    CHECK_EQ_INT(c->expert.n_heads, 4);
    CHECK_EQ_INT(c->expert.n_kv_heads, 1);
    CHECK_EQ_INT(c->expert.head_dim, 16);
    CHECK_NEAR(c->rms_eps, 1e-6, 1e-12);
    CHECK_NEAR(c->ln_eps, 1e-6, 1e-12);
    CHECK_NEAR(c->rope_theta, 10000, 0);
    CHECK_EQ_INT(pi0_weights_count(w), pi05 ? 92 : 89);
    /* a sample of the table, shapes as pi0_weights.h promises */
    CHECK_EQ_INT(w->patch_w.ndim, 4);
    CHECK_EQ_INT(w->patch_w.shape[1], 3);
    CHECK_EQ_INT(w->pos_emb.shape[0], 256);
    CHECK_EQ_INT(w->vision[1].fc2_w.shape[0], 32);
    CHECK_EQ_INT(w->vision[1].fc2_w.shape[1], 64);
    CHECK_EQ_INT(w->proj_w.shape[0], 64);
    CHECK_EQ_INT(w->proj_w.shape[1], 32);
    CHECK_EQ_STR(w->embed.name, "paligemma_with_expert.paligemma.lm_head.weight");
    CHECK_EQ_INT(w->vlm[1].q.shape[0], 64);
    CHECK_EQ_INT(w->vlm[1].k.shape[0], 16);
    CHECK(!pi0_tensor_present(&w->vlm[0].in_norm_b));
    CHECK(pi0_tensor_present(&w->vlm_norm));
    CHECK_EQ_INT(w->expert[1].q.shape[0], 64); /* heads·head_dim != expert width */
    CHECK_EQ_INT(w->expert[1].q.shape[1], 32);
    CHECK_EQ_INT(w->expert[1].o.shape[0], 32);
    CHECK_EQ_INT(w->expert[1].o.shape[1], 64);
    CHECK_EQ_INT(w->action_in_w.shape[0], 32);
    CHECK_EQ_INT(w->action_out_w.shape[0], 32);
    if (pi05) {
        CHECK_EQ_INT(w->expert[0].in_norm.shape[0], 96);
        CHECK_EQ_INT(w->expert[0].in_norm.shape[1], 32);
        CHECK_EQ_INT(w->expert[0].post_norm_b.shape[0], 96);
        CHECK_EQ_INT(w->expert_norm.shape[0], 96);
        CHECK(pi0_tensor_present(&w->expert_norm_b));
        CHECK(!pi0_tensor_present(&w->state_proj_w));
        CHECK_EQ_INT(w->time_in_w.shape[1], 32);
        CHECK_EQ_STR(w->time_in_w.name, "time_mlp_in.weight");
    } else {
        CHECK_EQ_INT(w->expert[0].in_norm.ndim, 1);
        CHECK_EQ_INT(w->expert[0].in_norm.shape[0], 32);
        CHECK(!pi0_tensor_present(&w->expert_norm_b));
        CHECK_EQ_INT(w->state_proj_w.shape[1], 32);
        CHECK_EQ_INT(w->time_in_w.shape[1], 64);
        CHECK_EQ_STR(w->time_in_w.name, "action_time_mlp_in.weight");
    }
    CHECK(w->has_norm_stats);
    CHECK_EQ_INT(w->state_stats.dim, 32);
    CHECK_EQ_INT(w->action_stats.dim, 32);
    for (int i = 0; i < 32; i++) {
        CHECK(w->action_stats.std[i] > 0);
        CHECK(w->action_stats.q01[i] < w->action_stats.q99[i]);
    }
}

static void test_weights_tiny(void) {
    char *d = pi0_test_tmpdir("pi0ldr");
    const char *variants[] = {"pi0", "pi05"};
    for (int v = 0; v < 2; v++)
        for (int bf = 0; bf < 2; bf++) {
            char *m = keep(fmt("%s/%s%d", d, variants[v], bf));
            CHECK_EQ_INT(mkmodel(fmt("--size tiny --variant %s --dtype %s --seed 3",
                                     variants[v], bf ? "bf16" : "f32"),
                                 m),
                         0);
            pi0_weights *w = NULL;
            int rc = pi0_weights_load(m, &w);
            CHECK_MSG(rc == 0, "%s: %s", m, pi0_last_error());
            if (!w) continue;
            check_tiny_cfg(w, v);
            CHECK_EQ_INT(w->vlm[0].gate.dtype, bf ? PI0_BF16 : PI0_F32);
            CHECK_EQ_INT(w->vlm[0].in_norm.dtype, PI0_F32); /* small tensors stay F32 */
            CHECK_EQ_INT(w->proj_b.dtype, PI0_F32);
            pi0_weights_destroy(w);
        }
    /* same seed: bf16 values are the bf16 rounding of the f32 values */
    pi0_weights *a = NULL, *b = NULL;
    CHECK_STATUS(pi0_weights_load(fmt("%s/pi00", d), &a), 0);
    CHECK_STATUS(pi0_weights_load(fmt("%s/pi01", d), &b), 0);
    if (a && b) {
        const pi0_tensor *ta = &a->vlm[1].down, *tb = &b->vlm[1].down;
        int64_t n = numel(ta);
        float *fa = malloc((size_t)n * 4), *fb = malloc((size_t)n * 4);
        CHECK_STATUS(pi0_tensor_to_f32(ta, 0, n, fa), 0);
        CHECK_STATUS(pi0_tensor_to_f32(tb, 0, n, fb), 0);
        double maxrel = 0, sum2 = 0;
        for (int64_t i = 0; i < n; i++) {
            double r = fabs(fa[i] - fb[i]) / (fabs(fa[i]) + 1e-30);
            if (r > maxrel) maxrel = r;
            sum2 += (double)fa[i] * fa[i];
        }
        CHECK(maxrel <= 1.0 / 256);
        /* init scale: uniform with std 1/sqrt(fan_in = mlp 128) */
        CHECK_NEAR(sqrt(sum2 / (double)n), 1.0 / sqrt(128.0), 0.1 / sqrt(128.0));
        CHECK_STATUS(pi0_tensor_to_f32(ta, n - 1, 2, fa), PI0_ERANGE);
        free(fa);
        free(fb);
    }
    /* f16 matrices load too and widen exactly to the f16 rounding of the f32 values */
    pi0_weights *c = NULL;
    CHECK_EQ_INT(mkmodel("--size tiny --variant pi0 --dtype f16 --seed 3", fmt("%s/f16", d)),
                 0);
    CHECK_STATUS(pi0_weights_load(fmt("%s/f16", d), &c), 0);
    if (a && c) {
        CHECK_EQ_INT(c->expert[0].up.dtype, PI0_F16);
        CHECK_EQ_INT(c->expert[0].in_norm.dtype, PI0_F32);
        const pi0_tensor *ta = &a->expert[0].up, *tc = &c->expert[0].up;
        int64_t n = numel(ta);
        float *fa = malloc((size_t)n * 4), *fc = malloc((size_t)n * 4);
        CHECK_STATUS(pi0_tensor_to_f32(ta, 0, n, fa), 0);
        CHECK_STATUS(pi0_tensor_to_f32(tc, 0, n, fc), 0);
        int bad = 0;
        for (int64_t i = 0; i < n; i++)
            if (fabs(fa[i] - fc[i]) > fabs(fa[i]) * (1.0 / 2048) + 3e-8) bad++;
        CHECK_EQ_INT(bad, 0);
        free(fa);
        free(fc);
    }
    pi0_weights_destroy(c);
    pi0_weights_destroy(a);
    pi0_weights_destroy(b);
    pi0_test_rmrf(d);
}

/* The table's tensors of two loads must hold the same bytes. */
static int same_table(const pi0_weights *a, const pi0_weights *b) {
    const pi0_tensor *pa[] = {&a->patch_w,        &a->pos_emb,        &a->vision[1].q_b,
                              &a->proj_w,         &a->embed,          &a->vlm[1].q,
                              &a->vlm[0].in_norm, &a->expert[1].down, &a->expert_norm,
                              &a->action_out_b,   &a->time_in_w};
    const pi0_tensor *pb[] = {&b->patch_w,        &b->pos_emb,        &b->vision[1].q_b,
                              &b->proj_w,         &b->embed,          &b->vlm[1].q,
                              &b->vlm[0].in_norm, &b->expert[1].down, &b->expert_norm,
                              &b->action_out_b,   &b->time_in_w};
    for (size_t i = 0; i < sizeof pa / sizeof pa[0]; i++) {
        size_t n = pi0_tensor_nbytes(pa[i]);
        if (!n || n != pi0_tensor_nbytes(pb[i]) || memcmp(pa[i]->data, pb[i]->data, n)) {
            fprintf(stderr, "  tensor %s differs\n", pa[i]->name);
            return 0;
        }
    }
    return 1;
}

static void test_weights_key_variants_and_shards(void) {
    char *d = pi0_test_tmpdir("pi0ldr");
    const char *variants[] = {"pi0", "pi05"};
    for (int v = 0; v < 2; v++) {
        char *base = keep(fmt("%s/%s_rel", d, variants[v]));
        CHECK_EQ_INT(mkmodel(fmt("--size tiny --variant %s --seed 5", variants[v]), base), 0);
        pi0_weights *w0 = NULL;
        CHECK_STATUS(pi0_weights_load(base, &w0), 0);
        if (!w0) break;
        const char *styles[] = {"--keys embed", "--keys legacy", "--shards 3",
                                "--keys legacy --shards 2"};
        for (int s = 0; s < 4; s++) {
            char *m = keep(fmt("%s/%s_%d", d, variants[v], s));
            CHECK_EQ_INT(
                mkmodel(fmt("--size tiny --variant %s --seed 5 %s", variants[v], styles[s]), m),
                0);
            pi0_weights *w = NULL;
            int rc = pi0_weights_load(m, &w);
            CHECK_MSG(rc == 0, "%s (%s): %s", m, styles[s], pi0_last_error());
            if (!w) continue;
            CHECK_MSG(same_table(w0, w), "%s differs from the released spelling", styles[s]);
            CHECK_EQ_INT(pi0_weights_count(w), pi0_weights_count(w0));
            if (s == 0)
                CHECK_EQ_STR(
                    w->embed.name,
                    "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight");
            if (s == 1) {
                CHECK_EQ_STR(w->vlm[0].q.name, "model.paligemma_with_expert.paligemma.language_"
                                               "model.model.layers.0.self_attn.q_proj.weight");
                CHECK_EQ_STR(
                    w->embed.name,
                    "model.paligemma_with_expert.paligemma.language_model.lm_head.weight");
                /* find: exact file key, and the spec spelling of it */
                CHECK(pi0_weights_find(w, "model.state_proj.weight") ==
                      pi0_weights_find(w, "state_proj.weight"));
                CHECK(pi0_weights_find(w, "paligemma_with_expert.paligemma.model.vision_tower."
                                          "vision_model.post_layernorm.bias") != NULL);
            }
            CHECK(pi0_weights_find(w, "paligemma_with_expert.gemma_expert.lm_head.weight") !=
                  NULL);
            CHECK(pi0_weights_find(w, "no.such.key") == NULL);
            pi0_weights_destroy(w);
        }
        pi0_weights_destroy(w0);
    }
    pi0_test_rmrf(d);
}

/* Other spellings seen in the wild, on a hand-renamed tiny file: vision_tower without
 * vision_model, model.language_model.model.*, expert without the inner model. */
static void ed_rename_variants(cJSON *root, const void *arg) {
    (void)arg;
    static const char *const rw[][2] = {
        {"paligemma_with_expert.paligemma.model.vision_tower.vision_model.",
         "paligemma_with_expert.paligemma.model.vision_tower."},
        {"paligemma_with_expert.paligemma.model.language_model.",
         "paligemma_with_expert.paligemma.model.language_model.model."},
        {"paligemma_with_expert.gemma_expert.model.", "paligemma_with_expert.gemma_expert."},
    };
    for (cJSON *e = root->child; e; e = e->next)
        for (size_t r = 0; r < 3; r++)
            if (!strncmp(e->string, rw[r][0], strlen(rw[r][0]))) {
                char *n = malloc(strlen(e->string) + 64);
                sprintf(n, "%s%s", rw[r][1], e->string + strlen(rw[r][0]));
                free(e->string);
                e->string = n;
                break;
            }
}

static void test_weights_more_key_variants(void) {
    char *d = pi0_test_tmpdir("pi0ldr"), *a = keep(fmt("%s/a", d)), *b = keep(fmt("%s/b", d));
    CHECK_EQ_INT(mkmodel("--size tiny --variant pi0 --seed 2", a), 0);
    CHECK_EQ_INT(mkmodel("--size tiny --variant pi0 --seed 2", b), 0);
    edit_st(fmt("%s/model.safetensors", b), ed_rename_variants, NULL);
    pi0_weights *wa = NULL, *wb = NULL;
    CHECK_STATUS(pi0_weights_load(a, &wa), 0);
    int rc = pi0_weights_load(b, &wb);
    CHECK_MSG(rc == 0, "%s", pi0_last_error());
    if (wa && wb) {
        CHECK(same_table(wa, wb));
        CHECK_EQ_STR(wb->expert[0].q.name,
                     "paligemma_with_expert.gemma_expert.layers.0.self_attn.q_proj.weight");
    }
    pi0_weights_destroy(wa);
    pi0_weights_destroy(wb);
    pi0_test_rmrf(d);
}

typedef struct key_case {
    const char *what;
    void (*edit)(cJSON *, const void *);
    const char *key;
    int code;
    const char *msg;
    int pi05;
} key_case;

/* Loading checkpoint m fails with `code` and an error containing `msg`. */
static void check_load_fails(const char *m, const char *what, int code, const char *msg) {
    pi0_weights *w = NULL;
    int rc = pi0_weights_load(m, &w);
    CHECK_MSG(rc == code && !w, "case '%s': got %d (%s), want %d", what, rc, pi0_last_error(),
              code);
    CHECK_MSG(strstr(pi0_last_error(), msg) != NULL, "case '%s': error \"%s\" lacks \"%s\"",
              what, pi0_last_error(), msg);
    pi0_weights_destroy(w);
}

/* For each case: a fresh tiny checkpoint in d/mN, edited; loading it gives c->code and an
 * error containing c->msg. */
static void check_key_cases(const char *d, const key_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const key_case *c = &cases[i];
        char *m = keep(fmt("%s/m%zu", d, i));
        PI0_ASSERT(mkmodel(c->pi05 ? "--size tiny --variant pi05" : "--size tiny --variant pi0",
                           m) == 0);
        edit_st(fmt("%s/model.safetensors", m), c->edit, c->key);
        check_load_fails(m, c->what, c->code, c->msg);
        free(m);
    }
}

static void test_weights_bad_keys(void) {
    static const key_case cases[] = {
        {"missing mlp weight", ed_delete,
         "paligemma_with_expert.paligemma.model.language_model.layers.1.mlp.up_proj.weight",
         PI0_ENOENT,
         "missing tensor "
         "paligemma_with_expert.paligemma.model.language_model.layers.1.mlp.up_proj.weight",
         0},
        {"missing vision bias", ed_delete,
         "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.0."
         "self_attn.k_proj.bias",
         PI0_ENOENT, "encoder.layers.0.self_attn.k_proj.bias", 0},
        {"missing embedding", ed_delete, "paligemma_with_expert.paligemma.lm_head.weight",
         PI0_ENOENT, "language_model.embed_tokens.weight", 0},
        {"missing expert norm", ed_delete,
         "paligemma_with_expert.gemma_expert.model.norm.weight", PI0_ENOENT,
         "gemma_expert.model.norm.weight", 0},
        {"missing pi05 dense norm", ed_delete,
         "paligemma_with_expert.gemma_expert.model.layers.1.post_attention_layernorm.dense."
         "bias",
         PI0_ENOENT, "layers.1.post_attention_layernorm.dense.bias", 1},
        {"missing head", ed_delete, "action_out_proj.bias", PI0_ENOENT, "action_out_proj.bias",
         0},
        {"missing state_proj bias", ed_delete, "state_proj.bias", PI0_ENOENT, "state_proj.bias",
         0},
        {"mis-shaped o_proj", ed_transpose,
         "paligemma_with_expert.gemma_expert.model.layers.1.self_attn.o_proj.weight",
         PI0_ESHAPE, "layers.1.self_attn.o_proj.weight has shape [64, 32], expected [32, 64]",
         0},
        {"mis-shaped fc1", ed_transpose,
         "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers.1.mlp."
         "fc1.weight",
         PI0_ESHAPE, "layers.1.mlp.fc1.weight has shape [32, 64], expected [64, 32]", 0},
        {"mis-shaped pi05 dense norm", ed_transpose,
         "paligemma_with_expert.gemma_expert.model.layers.0.input_layernorm.dense.weight",
         PI0_ESHAPE,
         "layers.0.input_layernorm.dense.weight has shape [32, 96], expected [96, 32]", 1},
        {"mis-shaped projector", ed_transpose,
         "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight",
         PI0_ESHAPE, "multi_modal_projector.linear.weight", 0},
    };
    char *d = pi0_test_tmpdir("pi0ldr");
    check_key_cases(d, cases, sizeof cases / sizeof cases[0]);
    /* sharded: a shard is missing / a key is not in its shard */
    char *m = keep(fmt("%s/sh", d));
    PI0_ASSERT(mkmodel("--size tiny --variant pi0 --shards 2", m) == 0);
    PI0_ASSERT(unlink(fmt("%s/model-00002-of-00002.safetensors", m)) == 0);
    pi0_weights *w = NULL;
    CHECK_STATUS(pi0_weights_load(m, &w), PI0_ENOENT);
    CHECK_ERR_HAS("model-00002-of-00002.safetensors");
    CHECK_ERR_HAS("missing");
    m = keep(fmt("%s/sh2", d));
    PI0_ASSERT(mkmodel("--size tiny --variant pi0 --shards 2", m) == 0);
    edit_st(fmt("%s/model-00002-of-00002.safetensors", m), ed_delete, "action_in_proj.bias");
    CHECK_STATUS(pi0_weights_load(m, &w), PI0_ENOENT);
    CHECK_ERR_HAS("action_in_proj.bias is not in shard model-00002-of-00002.safetensors");
    /* neither file */
    m = keep(fmt("%s/empty", d));
    PI0_ASSERT(mkdir(m, 0755) == 0);
    spit(fmt("%s/config.json", m), "{}", 2);
    CHECK_STATUS(pi0_weights_load(m, &w), PI0_ENOENT);
    CHECK_ERR_HAS("neither model.safetensors");
    /* both π0 and π0.5 heads */
    m = keep(fmt("%s/both", d));
    PI0_ASSERT(mkmodel("--size tiny --variant pi0", m) == 0);
    edit_st(fmt("%s/model.safetensors", m), ed_add_empty, "time_mlp_in.weight");
    CHECK_STATUS(pi0_weights_load(m, &w), PI0_EFORMAT);
    CHECK_ERR_HAS("both π0");
    /* two spellings of one key */
    m = keep(fmt("%s/twice", d));
    PI0_ASSERT(mkmodel("--size tiny --variant pi0", m) == 0);
    edit_st(fmt("%s/model.safetensors", m), ed_add_empty, "model.state_proj.bias");
    CHECK_STATUS(pi0_weights_load(m, &w), PI0_EFORMAT);
    CHECK_ERR_HAS("are the same key state_proj.bias");
    pi0_test_rmrf(d);
}

typedef struct cfg_case {
    const char *what, *key, *json;
    int code;
    const char *msg;
} cfg_case;

/* Replaces 2-D tensor `key` [r, c] by an empty F32 [0, c] (a legal empty tensor). */
static void ed_empty_rows(cJSON *root, const void *key) {
    cJSON *old = cJSON_GetObjectItemCaseSensitive(root, key);
    PI0_ASSERT(old);
    int cols = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(old, "shape"), 1)->valueint;
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "dtype", "F32");
    cJSON *s = cJSON_AddArrayToObject(e, "shape");
    cJSON_AddItemToArray(s, cJSON_CreateNumber(0));
    cJSON_AddItemToArray(s, cJSON_CreateNumber(cols));
    cJSON *o = cJSON_AddArrayToObject(e, "data_offsets");
    cJSON_AddItemToArray(o, cJSON_CreateNumber(0));
    cJSON_AddItemToArray(o, cJSON_CreateNumber(0));
    cJSON_AddItemToObject(root, key, e);
}

/* Deletes the tensors "A|B". */
static void ed_delete_two(cJSON *root, const void *keys) {
    char *a = keep(keys), *b = strchr(a, '|');
    PI0_ASSERT(b);
    *b++ = 0;
    cJSON_DeleteItemFromObjectCaseSensitive(root, a);
    cJSON_DeleteItemFromObjectCaseSensitive(root, b);
    free(a);
}

/* Loads `m` with stderr captured into *err (malloc'ed). */
static int load_capturing_stderr(const char *m, pi0_weights **w, char **err) {
    char *path = fmt("%s/stderr.txt", m);
    fflush(stderr);
    int saved = dup(2), fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    PI0_ASSERT(saved >= 0 && fd >= 0 && dup2(fd, 2) == 2);
    int rc = pi0_weights_load(m, w);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fd);
    *err = pi0_test_slurp(path, NULL);
    PI0_ASSERT(*err);
    return rc;
}

#define VLAYER "paligemma_with_expert.paligemma.model.vision_tower.vision_model.encoder.layers."
#define LLAYER "paligemma_with_expert.paligemma.model.language_model.layers."
#define ELAYER "paligemma_with_expert.gemma_expert.model.layers."

/* Layer counts come from every key: a layer missing one tensor, the last layer missing in
 * both towers, or a stray key of a deeper layer is an error naming the first missing key,
 * never a shallower network; an unknown extra tensor loads with a warning. */
static void test_weights_layers_counted_from_every_key(void) {
    char *d = pi0_test_tmpdir("pi0ldr");
    static const key_case cases[] = {
        {"vision layer 1 without layer_norm1", ed_delete, VLAYER "1.layer_norm1.weight",
         PI0_ENOENT, "missing tensor " VLAYER "1.layer_norm1.weight", 0},
        {"last q_proj of both towers", ed_delete_two,
         LLAYER "1.self_attn.q_proj.weight|" ELAYER "1.self_attn.q_proj.weight", PI0_ENOENT,
         "missing tensor " LLAYER "1.self_attn.q_proj.weight", 0},
        {"stray key of a deeper VLM layer", ed_add_empty, LLAYER "3.mlp.extra", PI0_ENOENT,
         "missing tensor " LLAYER "2.", 0},
        {"absurd layer index", ed_add_empty, ELAYER "99999999999.x", PI0_EFORMAT,
         ELAYER "99999999999.x", 0},
    };
    check_key_cases(d, cases, sizeof cases / sizeof cases[0]);
    /* an unknown extra tensor: loads, and says so on stderr (the released extras do not) */
    char *m = keep(fmt("%s/extra", d));
    PI0_ASSERT(mkmodel("--size tiny --variant pi05", m) == 0);
    pi0_weights *w = NULL;
    char *err = NULL;
    CHECK_STATUS(load_capturing_stderr(m, &w, &err), 0);
    CHECK_MSG(err[0] == 0, "stderr of a clean load: %s", err);
    CHECK_EQ_INT(w ? w->cfg.vlm.depth : -1, 2);
    pi0_weights_destroy(w);
    free(err);
    edit_st(fmt("%s/model.safetensors", m), ed_add_empty, "my_adapter.weight");
    w = NULL;
    CHECK_STATUS(load_capturing_stderr(m, &w, &err), 0);
    CHECK_MSG(strstr(err, "warning") && strstr(err, "my_adapter.weight") && strstr(err, m) &&
                  strchr(err, '\n') == err + strlen(err) - 1,
              "stderr: %s", err);
    pi0_weights_destroy(w);
    free(err);
    pi0_test_rmrf(d);
}

/* Sizes derived from the checkpoint are validated before use: an empty q_proj never
 * divides by zero, an odd Gemma head_dim is refused at load naming config.json. */
static void test_weights_derived_sizes_validated(void) {
    char *d = pi0_test_tmpdir("pi0ldr");
    typedef struct {
        const char *what, *tensor, *cfg_key, *cfg_val;
        int code;
        const char *msg;
    } size_case;
    static const size_case cases[] = {
        {"empty VLM q_proj, no head_dim", LLAYER "0.self_attn.q_proj.weight", "vlm", NULL,
         PI0_ESHAPE, LLAYER "0.self_attn.q_proj.weight has shape [0, 64]"},
        {"empty expert q_proj, no head_dim", ELAYER "0.self_attn.q_proj.weight", "expert", NULL,
         PI0_ESHAPE, ELAYER "0.self_attn.q_proj.weight has shape [0, 32]"},
        {"odd VLM head_dim", NULL, "vlm_num_heads", "64", PI0_ECONFIG, "VLM head_dim 1 ("},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const size_case *c = &cases[i];
        char *m = keep(fmt("%s/m%zu", d, i));
        PI0_ASSERT(mkmodel("--size tiny --variant pi0", m) == 0);
        if (c->tensor) { /* the head count stays; head_dim and kv heads are inferred */
            edit_st(fmt("%s/model.safetensors", m), ed_empty_rows, c->tensor);
            edit_config(m, fmt("%s_head_dim", c->cfg_key), NULL);
            edit_config(m, fmt("%s_num_kv_heads", c->cfg_key), NULL);
        } else { /* 64 heads x head_dim 1 = q rows; 16 kv heads x 1 = k rows */
            edit_config(m, c->cfg_key, c->cfg_val);
            edit_config(m, "vlm_head_dim", NULL);
            edit_config(m, "vlm_num_kv_heads", NULL);
            edit_config(m, "expert_num_heads", "64");
            edit_config(m, "expert_head_dim", NULL);
            edit_config(m, "expert_num_kv_heads", NULL);
        }
        check_load_fails(m, c->what, c->code, c->msg);
        if (c->code == PI0_ECONFIG) CHECK_ERR_HAS("config.json");
    }
    pi0_test_rmrf(d);
}

static void test_weights_bad_config(void) {
    static const cfg_case cases[] = {
        {"pi05 true on a pi0 file", "pi05", "true", PI0_ECONFIG,
         "pi05 says pi05 but the tensors are π0"},
        {"lerobot type pi05 on a pi0 file", "type", "\"pi05\"", PI0_ECONFIG, "type says pi05"},
        {"action_dim mismatch", "action_dim", "16", PI0_ECONFIG, "action_dim 16"},
        {"max_state_dim mismatch", "max_state_dim", "8", PI0_ECONFIG, "max_state_dim 8"},
        {"heads do not divide", "vlm_num_heads", "3", PI0_ECONFIG, "VLM has 3 heads"},
        {"expert heads vs q_proj", "expert_num_heads", "2", PI0_ECONFIG,
         "action expert has 2 heads"},
        {"kv heads vs k_proj", "vlm_num_kv_heads", "2", PI0_ECONFIG, "kv heads"},
        {"vision heads", "vision_num_heads", "5", PI0_ECONFIG, "vision_num_heads 5"},
        {"variant contradicts shapes", "paligemma_variant", "\"gemma_2b\"", PI0_ECONFIG,
         "paligemma_variant \"gemma_2b\" means width 2048"},
        {"unknown variant", "action_expert_variant", "\"gemma_7b\"", PI0_ECONFIG,
         "\"gemma_7b\" is unknown"},
        {"num_steps 0", "num_steps", "0", PI0_ECONFIG, "num_steps must be"},
        {"horizon not integer", "action_horizon", "2.5", PI0_ECONFIG, "action_horizon must be"},
        {"token len string", "max_token_len", "\"48\"", PI0_ECONFIG, "max_token_len must be"},
        {"no head count", "vlm_num_heads", NULL, PI0_ECONFIG, "cannot tell the VLM head count"},
        {"pi05 not bool", "pi05", "\"yes\"", PI0_ECONFIG, "pi05 must be"},
        {"discrete_state_input not bool", "discrete_state_input", "1", PI0_ECONFIG,
         "discrete_state_input must be true or false"},
    };
    char *d = pi0_test_tmpdir("pi0ldr"), *m = keep(fmt("%s/m", d));
    PI0_ASSERT(mkmodel("--size tiny --variant pi0", m) == 0);
    size_t len;
    char *orig = pi0_test_slurp(fmt("%s/config.json", m), &len);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const cfg_case *c = &cases[i];
        spit(fmt("%s/config.json", m), orig, len);
        edit_config(m, c->key, c->json);
        pi0_weights *w = NULL;
        int rc = pi0_weights_load(m, &w);
        CHECK_MSG(rc == c->code && !w, "case '%s': got %d (%s)", c->what, rc, pi0_last_error());
        CHECK_MSG(strstr(pi0_last_error(), c->msg) && strstr(pi0_last_error(), "config.json"),
                  "case '%s': error \"%s\" lacks \"%s\" or the file", c->what, pi0_last_error(),
                  c->msg);
        pi0_weights_destroy(w);
    }
    /* lerobot spellings are honoured */
    spit(fmt("%s/config.json", m), orig, len);
    edit_config(m, "action_horizon", NULL);
    edit_config(m, "num_steps", NULL);
    edit_config(m, "max_token_len", NULL);
    edit_config(m, "chunk_size", "20");
    edit_config(m, "num_inference_steps", "4");
    edit_config(m, "tokenizer_max_length", "30");
    edit_config(m, "type", "\"pi0\"");
    pi0_weights *w = NULL;
    CHECK_STATUS(pi0_weights_load(m, &w), 0);
    if (w) {
        CHECK_EQ_INT(w->cfg.action_horizon, 20);
        CHECK_EQ_INT(w->cfg.num_steps, 4);
        CHECK_EQ_INT(w->cfg.max_token_len, 30);
    }
    pi0_weights_destroy(w);
    /* config.json missing / not JSON */
    spit(fmt("%s/config.json", m), "{\"action_dim\": ", 15);
    CHECK_STATUS(pi0_weights_load(m, &w), PI0_EFORMAT);
    CHECK_ERR_HAS("config.json: not a valid JSON");
    PI0_ASSERT(unlink(fmt("%s/config.json", m)) == 0);
    CHECK_STATUS(pi0_weights_load(m, &w), PI0_ENOENT);
    CHECK_ERR_HAS("config.json");
    free(orig);
    pi0_test_rmrf(d);
}

static void test_weights_norm_stats(void) {
    static const struct {
        const char *what, *text, *msg;
    } cases[] = {
        {"negative std", "{\"norm_stats\":{\"state\":{\"mean\":[0,0],\"std\":[1,-1]}}}",
         "state.std[1] = -1 is negative"},
        {"q01 > q99",
         "{\"norm_stats\":{\"actions\":{\"mean\":[0],\"std\":[1],\"q01\":[2],\"q99\":[1]}}}",
         "actions.q01[0] = 2 > q99"},
        {"length mismatch", "{\"norm_stats\":{\"actions\":{\"mean\":[0,1],\"std\":[1]}}}",
         "actions.std has 1 values, mean has 2"},
        {"not a number", "{\"norm_stats\":{\"state\":{\"mean\":[0,\"x\"],\"std\":[1,1]}}}",
         "state.mean[1] is not a finite number"},
        {"only q01", "{\"norm_stats\":{\"state\":{\"mean\":[0],\"std\":[1],\"q01\":[0]}}}",
         "only one of q01"},
        {"missing std", "{\"norm_stats\":{\"state\":{\"mean\":[0]}}}", "state.std is missing"},
        {"empty", "{\"norm_stats\":{}}", "neither"},
        {"not json", "{\"norm_stats\":", "not a valid JSON"},
    };
    char *d = pi0_test_tmpdir("pi0ldr"), *m = keep(fmt("%s/m", d));
    PI0_ASSERT(mkmodel("--size tiny --variant pi05", m) == 0);
    pi0_weights *w = NULL;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        spit(fmt("%s/norm_stats.json", m), cases[i].text, strlen(cases[i].text));
        int rc = pi0_weights_load(m, &w);
        CHECK_MSG(rc != 0 && !w, "case '%s' loaded", cases[i].what);
        CHECK_MSG(strstr(pi0_last_error(), cases[i].msg) &&
                      strstr(pi0_last_error(), "norm_stats.json"),
                  "case '%s': error \"%s\" lacks \"%s\"", cases[i].what, pi0_last_error(),
                  cases[i].msg);
    }
    const char *ok = "{\"norm_stats\":{\"state\":{\"mean\":[0.5,1],\"std\":[2,3]}}}";
    spit(fmt("%s/norm_stats.json", m), ok, strlen(ok));
    CHECK_STATUS(pi0_weights_load(m, &w), 0);
    if (w) {
        CHECK(w->has_norm_stats);
        CHECK_EQ_INT(w->state_stats.dim, 2);
        CHECK_NEAR(w->state_stats.std[1], 3, 0);
        CHECK(w->state_stats.q01 == NULL);
        CHECK_EQ_INT(w->action_stats.dim, 0);
    }
    pi0_weights_destroy(w);
    w = NULL;
    PI0_ASSERT(unlink(fmt("%s/norm_stats.json", m)) == 0);
    CHECK_STATUS(pi0_weights_load(m, &w), 0);
    if (w) CHECK(!w->has_norm_stats && !w->action_stats.mean);
    pi0_weights_destroy(w);
    pi0_test_rmrf(d);
}

// ---- fuzz -------------------------------------------------------------------------

static uint64_t rng_state = 0x1234567;
static uint64_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random byte flips inside the header and random truncations of a tiny checkpoint: every
 * outcome must be a clean status (OK or an error with a message), never a crash. Runs in
 * /dev/shm when present to spare the disk. */
static void test_fuzz_checkpoint(void) {
    char *d = pi0_test_tmpdir("pi0ldr"), *src = keep(fmt("%s/src", d));
    PI0_ASSERT(mkmodel("--size tiny --variant pi05", src) == 0);
    size_t len;
    uint8_t *orig = pi0_test_slurp(fmt("%s/model.safetensors", src), &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = (hl << 8) | orig[i];
    char fz[64];
    snprintf(fz, sizeof fz, "%s",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm/pi0ldr.fuzz.XXXXXX"
                                           : "/tmp/pi0ldr.fuzz.XXXXXX");
    PI0_ASSERT(mkdtemp(fz));
    pi0_test_sh_quiet("cp '%s/config.json' '%s/norm_stats.json' '%s/'", src, src, fz);
    char *path = keep(fmt("%s/model.safetensors", fz));
    uint8_t *buf = malloc(len);
    int n_ok = 0, n_err = 0;
    const char *ops[] = {"flip", "digit", "truncate", "header len", "struct char"};
    for (int it = 0; it < 400; it++) {
        memcpy(buf, orig, len);
        size_t n = len;
        int op = (int)(rnd() % 5);
        int k = 1 + (int)(rnd() % 4);
        for (int j = 0; j < k; j++) {
            size_t at = 8 + rnd() % hl;
            switch (op) {
            case 0:
                buf[at] ^= (uint8_t)(1u << (rnd() % 8));
                break;
            case 1:
                if (buf[at] >= '0' && buf[at] <= '9')
                    buf[at] = (uint8_t)('0' + rnd() % 10);
                else
                    buf[at] = (uint8_t) "0123456789"[rnd() % 10];
                break;
            case 2:
                n = rnd() % (len + 1);
                break;
            case 3:
                buf[rnd() % 8] = (uint8_t)rnd();
                break;
            case 4:
                buf[at] = (uint8_t) "{}[],:\"-.e"[rnd() % 10];
                break;
            }
        }
        spit(path, buf, n);
        pi0_weights *w = NULL;
        int rc = pi0_weights_load(fz, &w);
        if (rc == 0) {
            n_ok++;
            pi0_weights_destroy(w);
        } else {
            n_err++;
            CHECK_MSG(rc < 0 && strlen(pi0_last_error()) > 10 && !w, "op %s: rc %d, \"%s\"",
                      ops[op], rc, pi0_last_error());
        }
    }
    printf("  fuzz: %d loaded, %d rejected\n", n_ok, n_err);
    CHECK(n_err > 200);
    /* the same for config.json and norm_stats.json (byte changes and truncations) */
    spit(path, orig, len);
    const char *jsons[] = {"config.json", "norm_stats.json"};
    for (int f = 0; f < 2; f++) {
        size_t jl;
        char *jo = pi0_test_slurp(fmt("%s/%s", src, jsons[f]), &jl);
        char *jb = malloc(jl + 1);
        char *jp = keep(fmt("%s/%s", fz, jsons[f]));
        int ok = 0, err = 0;
        for (int it = 0; it < 300; it++) {
            memcpy(jb, jo, jl);
            size_t n = jl;
            if (rnd() % 4 == 0) n = rnd() % jl;
            for (int j = (int)(rnd() % 3); j >= 0; j--)
                jb[rnd() % jl] = "{}[],:\"-.e0123456789tfn \n"[rnd() % 24];
            spit(jp, jb, n);
            pi0_weights *w = NULL;
            int rc = pi0_weights_load(fz, &w);
            if (rc == 0)
                ok++, pi0_weights_destroy(w);
            else {
                err++;
                CHECK_MSG(rc < 0 && strstr(pi0_last_error(), jsons[f]) && !w,
                          "%s fuzz: rc %d, \"%s\"", jsons[f], rc, pi0_last_error());
            }
        }
        printf("  fuzz %s: %d loaded, %d rejected\n", jsons[f], ok, err);
        CHECK(err > 50);
        spit(jp, jo, jl);
        free(jb);
        free(jo);
    }
    free(buf);
    free(orig);
    pi0_test_rmrf(d);
    pi0_test_sh_quiet("rm -rf '%s'", fz);
}

// ---- npy --------------------------------------------------------------------------

static void test_npy_roundtrip(void) {
    char *d = pi0_test_tmpdir("pi0ldr");
    uint8_t u8[2 * 3 * 3];
    int32_t i32[5] = {-7, 0, 1, 2147483647, -2147483647 - 1};
    float f32[50 * 32];
    for (int i = 0; i < 18; i++)
        u8[i] = (uint8_t)(i * 13);
    for (int i = 0; i < 50 * 32; i++)
        f32[i] = (float)i * 0.25f - 3.0f;
    double f64[3] = {0.1, -1e300, 3.0};
    int64_t s_u8[3] = {2, 3, 3}, s_i32[1] = {5}, s_f32[2] = {50, 32}, s_f64[1] = {3};
    struct {
        pi0_dtype t;
        int nd;
        int64_t *s;
        void *p;
        size_t bytes;
    } cases[] = {
        {PI0_U8, 3, s_u8, u8, sizeof u8},     {PI0_I32, 1, s_i32, i32, sizeof i32},
        {PI0_F32, 2, s_f32, f32, sizeof f32}, {PI0_F32, 0, NULL, f32, 4},
        {PI0_F64, 1, s_f64, f64, sizeof f64},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char *p = fmt("%s/a%zu.npy", d, c);
        CHECK_STATUS(pi0_npy_write(p, cases[c].t, cases[c].nd, cases[c].s, cases[c].p), 0);
        size_t len;
        char *raw = pi0_test_slurp(p, &len);
        CHECK_EQ_INT((len - cases[c].bytes) % 64, 0); /* header padded like numpy */
        CHECK(raw[len - cases[c].bytes - 1] == '\n');
        free(raw);
        pi0_npy a;
        CHECK_STATUS(pi0_npy_read(p, &a), 0);
        CHECK_EQ_INT(a.dtype, cases[c].t);
        CHECK_EQ_INT(a.ndim, cases[c].nd);
        for (int i = 0; i < cases[c].nd; i++)
            CHECK_EQ_INT(a.shape[i], cases[c].s[i]);
        CHECK(a.data && memcmp(a.data, cases[c].p, cases[c].bytes) == 0);
        CHECK_EQ_INT((uintptr_t)a.data % 64, 0);
        int64_t want[3] = {-1, 3, 3};
        if (c == 0) {
            CHECK_STATUS(pi0_npy_expect(&a, "img", PI0_U8, 3, want), 0);
            CHECK_STATUS(pi0_npy_expect(&a, "img", PI0_F32, 3, want), PI0_ETYPE);
            CHECK_ERR_HAS("img: dtype is uint8, expected float32");
            want[1] = 4;
            CHECK_STATUS(pi0_npy_expect(&a, "img", PI0_U8, 3, want), PI0_ESHAPE);
            CHECK_ERR_HAS("img: shape is (2, 3, 3), expected (*, 4, 3)");
            CHECK_STATUS(pi0_npy_expect(&a, "img", PI0_U8, 2, want), PI0_ESHAPE);
            CHECK_STATUS(pi0_npy_to_f32(&a, "img"), PI0_ETYPE);
        }
        if (cases[c].t == PI0_F64) { /* float64 -> float32 rounds to nearest */
            CHECK_STATUS(pi0_npy_to_f32(&a, "state"), 0);
            CHECK_EQ_INT(a.dtype, PI0_F32);
            const float *v = a.data;
            CHECK(v[0] == 0.1f && isinf(v[1]) && v[1] < 0 && v[2] == 3.0f);
        }
        pi0_npy_free(&a);
        pi0_npy_free(&a); /* idempotent */
    }
    /* the exact bytes numpy 1.24 writes for np.save(p, np.arange(6, dtype='<i4').reshape(2,3))
     */
    char hdr[128] =
        "\x93NUMPY\x01\x00\x76\x00{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }";
    size_t hl = strlen(hdr + 10) + 10;
    memset(hdr + hl, ' ', 127 - hl);
    hdr[127] = '\n';
    uint8_t file[128 + 24];
    memcpy(file, hdr, 128);
    for (int i = 0; i < 6; i++) {
        int32_t v = i;
        memcpy(file + 128 + 4 * i, &v, 4);
    }
    pi0_npy a;
    size_t off;
    CHECK_STATUS(pi0_npy_parse(file, sizeof file, "np", &a, &off), 0);
    CHECK_EQ_INT(off, 128);
    CHECK_EQ_INT(a.ndim, 2);
    CHECK_EQ_INT(a.shape[1], 3);
    CHECK_EQ_INT(a.numel, 6);
    pi0_test_rmrf(d);
}

static void test_npy_bad(void) {
    static const struct {
        const char *what, *dict;
        size_t data;
        int code;
        const char *msg;
    } cases[] = {
        {"fortran order", "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16,
         PI0_ETYPE, "fortran_order"},
        {"float16", "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4, PI0_ETYPE,
         "dtype '<f2'"},
        {"big endian", "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
         PI0_ETYPE, "dtype '>f4'"},
        {"int64", "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", 16, PI0_ETYPE,
         "'<i8'"},
        {"structured", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8,
         PI0_ETYPE, "descr"},
        {"truncated data", "{'descr': '<f4', 'fortran_order': False, 'shape': (50, 32), }",
         6396, PI0_EFORMAT, "truncated"},
        {"trailing data", "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", 4,
         PI0_EFORMAT, "trailing"},
        {"no shape", "{'descr': '|u1', 'fortran_order': False, }", 0, PI0_EFORMAT, "lacks"},
        {"bad shape", "{'descr': '|u1', 'fortran_order': False, 'shape': (2, x), }", 0,
         PI0_EFORMAT, "bad shape"},
        {"negative shape", "{'descr': '|u1', 'fortran_order': False, 'shape': (-2,), }", 0,
         PI0_EFORMAT, "bad shape"},
        {"not a dict", "['descr']", 0, PI0_EFORMAT, "not a dict"},
        {"huge shape",
         "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }", 0,
         PI0_EFORMAT, "absurdly"},
    };
    char *d = pi0_test_tmpdir("pi0ldr");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = fmt("%s/b%zu.npy", d, i);
        size_t dl = strlen(cases[i].dict), total = 10 + dl + 1 + cases[i].data;
        uint8_t *b = calloc(1, total);
        memcpy(b, "\x93NUMPY\x01\x00", 8);
        b[8] = (uint8_t)((dl + 1) & 0xff);
        b[9] = (uint8_t)((dl + 1) >> 8);
        memcpy(b + 10, cases[i].dict, dl);
        b[10 + dl] = '\n';
        spit(p, b, total);
        free(b);
        pi0_npy a;
        int rc = pi0_npy_read(p, &a);
        CHECK_MSG(rc == cases[i].code && a.data == NULL, "case '%s': got %d (%s)",
                  cases[i].what, rc, pi0_last_error());
        CHECK_MSG(strstr(pi0_last_error(), cases[i].msg) && strstr(pi0_last_error(), p),
                  "case '%s': \"%s\" lacks \"%s\"", cases[i].what, pi0_last_error(),
                  cases[i].msg);
    }
    pi0_npy a;
    char *p = fmt("%s/magic.npy", d);
    spit(p, "NUMPY123456789", 14);
    CHECK_STATUS(pi0_npy_read(p, &a), PI0_EFORMAT);
    CHECK_ERR_HAS("bad magic");
    spit(p, "\x93NUMPY\x09\x00\x10\x00", 10);
    CHECK_STATUS(pi0_npy_read(p, &a), PI0_EVERSION);
    spit(p, "\x93NUMPY\x01\x00\x40\x00{'descr'", 18);
    CHECK_STATUS(pi0_npy_read(p, &a), PI0_EFORMAT);
    CHECK_ERR_HAS("truncated .npy header");
    CHECK_STATUS(pi0_npy_read(fmt("%s/none.npy", d), &a), PI0_ENOENT);
    /* version 2.0 header */
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n";
    uint8_t b2[12 + 64 + 4] = "\x93NUMPY\x02\x00";
    size_t dl = strlen(dict);
    b2[8] = (uint8_t)dl;
    memcpy(b2 + 12, dict, dl);
    float one = 1.0f;
    memcpy(b2 + 12 + dl, &one, 4);
    spit(p, b2, 12 + dl + 4);
    CHECK_STATUS(pi0_npy_read(p, &a), 0);
    CHECK(a.data && ((float *)a.data)[0] == 1.0f && a.ndim == 1);
    pi0_npy_free(&a);
    /* fuzz the header parser in memory */
    uint8_t buf[256];
    int64_t shape[2] = {3, 4};
    float z[12] = {0};
    PI0_ASSERT(pi0_npy_write(p, PI0_F32, 2, shape, z) == 0);
    size_t len;
    uint8_t *orig = pi0_test_slurp(p, &len);
    PI0_ASSERT(len <= sizeof buf);
    for (int it = 0; it < 20000; it++) {
        memcpy(buf, orig, len);
        for (int k = 0; k < 3; k++)
            buf[rnd() % 80] = (uint8_t)rnd();
        size_t off;
        int rc = pi0_npy_parse(buf, len - rnd() % 3, "fuzz", &a, &off);
        if (rc == 0) CHECK(off <= len && (uint64_t)a.numel * 4 == len - off);
    }
    free(orig);
    pi0_test_rmrf(d);
}

// ---- tensor conversion, preprocessing helpers -------------------------------------

static void test_tensor_to_f32(void) {
    uint16_t h[] = {0x3c00, 0xc000, 0x0001, 0x7c00, 0x7bff, 0x8000, 0x3555};
    float want[] = {1.0f, -2.0f, 5.9604645e-8f, INFINITY, 65504.0f, -0.0f, 0.33325195f};
    pi0_tensor t = {"h", h, PI0_F16, 1, {7, 1, 1, 1}};
    float out[7];
    CHECK_STATUS(pi0_tensor_to_f32(&t, 0, 7, out), 0);
    for (int i = 0; i < 7; i++)
        CHECK_MSG(out[i] == want[i], "f16 %#x -> %g, want %g", h[i], (double)out[i],
                  (double)want[i]);
    CHECK(signbit(out[5]));
    uint16_t nan16 = 0x7e00;
    t.data = &nan16;
    t.shape[0] = 1;
    CHECK_STATUS(pi0_tensor_to_f32(&t, 0, 1, out), 0);
    CHECK(isnan(out[0]));
    uint16_t b[] = {0x3f80, 0xc040, 0x0000};
    pi0_tensor tb = {"b", b, PI0_BF16, 2, {1, 3, 1, 1}};
    CHECK_STATUS(pi0_tensor_to_f32(&tb, 1, 2, out), 0);
    CHECK_NEAR(out[0], -3.0, 0);
    CHECK_NEAR(out[1], 0.0, 0);
    CHECK_STATUS(pi0_tensor_to_f32(&tb, 2, 2, out), PI0_ERANGE);
    CHECK_STATUS(pi0_tensor_to_f32(&tb, -1, 1, out), PI0_ERANGE);
    CHECK_EQ_INT(pi0_tensor_nbytes(&tb), 6);
}

/* Oracle for pi0_patchify_u8, the long way round: x/255·2−1 into channels-first
 * [3, size, size], then the conv-weight order (c, kh, kw) of each patch. */
static void image_to_chw(const uint8_t *hwc, int size, float *chw) {
    size_t n = (size_t)size * (size_t)size;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            chw[(size_t)c * n + i] = pi0_pixel_to_float(hwc[i * 3 + (size_t)c]);
}

static void patchify(const float *chw, int size, int patch, float *out) {
    int g = size / patch, pp = patch * patch;
    size_t plane = (size_t)size * (size_t)size;
    for (int py = 0; py < g; py++)
        for (int px = 0; px < g; px++) {
            float *o = out + (size_t)(py * g + px) * 3 * (size_t)pp;
            for (int c = 0; c < 3; c++)
                for (int kh = 0; kh < patch; kh++) {
                    const float *src = chw + (size_t)c * plane +
                                       (size_t)(py * patch + kh) * (size_t)size +
                                       (size_t)px * (size_t)patch;
                    memcpy(o + c * pp + kh * patch, src, (size_t)patch * sizeof *o);
                }
        }
}

static void test_preprocess_helpers(void) {
    int w, h;
    pi0_resize_dims(1280, 720, 224, &w, &h);
    CHECK(w == 224 && h == 126);
    pi0_resize_dims(640, 480, 224, &w, &h);
    CHECK(w == 224 && h == 168);
    pi0_resize_dims(50, 100, 224, &w, &h);
    CHECK(w == 112 && h == 224);
    pi0_resize_dims(1, 1000, 224, &w, &h); /* openpi would give width 0: clamped to 1 */
    CHECK(w == 1 && h == 224);
    CHECK_NEAR(pi0_pixel_to_float(0), -1.0, 0);
    CHECK_NEAR(pi0_pixel_to_float(255), 1.0, 0);
    CHECK_NEAR(pi0_pixel_to_float(128), 128.0f / 255.0f * 2.0f - 1.0f, 0);

    /* identity size: no resampling; patchify layout (c, kh, kw), patches row-major */
    static uint8_t img[224 * 224 * 3], out[224 * 224 * 3];
    for (int y = 0; y < 224; y++)
        for (int x = 0; x < 224; x++)
            for (int c = 0; c < 3; c++)
                img[(y * 224 + x) * 3 + c] = (uint8_t)((y * 7 + x * 3 + c * 85) & 0xff);
    pi0_preproc *pp = NULL;
    CHECK_STATUS(pi0_preproc_create(224, 224, &pp), 0);
    CHECK_STATUS(pi0_preproc_resize_pad(pp, img, 224, 224, 224 * 3, out), 0);
    CHECK(memcmp(img, out, sizeof img) == 0);
    static float patches[256 * 588], chw[3 * 224 * 224], patches2[256 * 588];
    CHECK_STATUS(pi0_preproc_patches(pp, img, 224, 224, 224 * 3, 14, patches), 0);
    int bad = 0;
    for (int py = 0; py < 16; py++)
        for (int px = 0; px < 16; px++)
            for (int c = 0; c < 3; c++)
                for (int kh = 0; kh < 14; kh++)
                    for (int kw = 0; kw < 14; kw++) {
                        uint8_t v = img[((py * 14 + kh) * 224 + px * 14 + kw) * 3 + c];
                        if (patches[(py * 16 + px) * 588 + c * 196 + kh * 14 + kw] !=
                            pi0_pixel_to_float(v))
                            bad++;
                    }
    CHECK_EQ_INT(bad, 0);
    image_to_chw(img, 224, chw);
    patchify(chw, 224, 14, patches2);
    CHECK(memcmp(patches, patches2, sizeof patches) == 0);
    /* errors: too large for the scratch, bad arguments, bad patch */
    static uint8_t big[300 * 100 * 3];
    CHECK_STATUS(pi0_preproc_resize_pad(pp, big, 300, 10, 900, out), PI0_ERANGE);
    CHECK_STATUS(pi0_preproc_resize_pad(pp, big, 10, 10, 20, out), PI0_EINVAL);
    CHECK_STATUS(pi0_preproc_patches(pp, img, 224, 224, 672, 15, patches), PI0_EINVAL);
    /* padding: a white 100x50 image sits centered on black */
    memset(big, 255, 100 * 50 * 3);
    CHECK_STATUS(pi0_preproc_resize_pad(pp, big, 100, 50, 300, out), 0);
    CHECK_EQ_INT(out[(55 * 224 + 0) * 3], 0);
    CHECK_EQ_INT(out[(56 * 224 + 0) * 3], 255);
    CHECK_EQ_INT(out[(167 * 224 + 223) * 3 + 2], 255);
    CHECK_EQ_INT(out[(168 * 224 + 10) * 3], 0);
    pi0_preproc_destroy(pp);
    CHECK_STATUS(pi0_preproc_create(0, 5, &pp), PI0_EINVAL);
}

// ---- pi0rt-mkmodel ----------------------------------------------------------------

/* The released key set, written here from PI0-SPEC.md §1–2 independently of mkmodel. */
typedef struct expect {
    char name[200];
    int64_t shape[4];
    int ndim;
    int seen;
} expect;

static int n_exp;
static expect EXP[900];

static void ex(int ndim, int64_t a, int64_t b, int64_t c, int64_t d, const char *f, ...)
    PI0_PRINTF(6, 7);
static void ex(int ndim, int64_t a, int64_t b, int64_t c, int64_t d, const char *f, ...) {
    expect *e = &EXP[n_exp++];
    va_list ap;
    va_start(ap, f);
    vsnprintf(e->name, sizeof e->name, f, ap);
    va_end(ap);
    e->ndim = ndim;
    e->shape[0] = a, e->shape[1] = b, e->shape[2] = c, e->shape[3] = d;
    e->seen = 0;
}

static void released_keys(int pi05) {
    const char *V = "paligemma_with_expert.paligemma.model.vision_tower.vision_model.";
    const char *L = "paligemma_with_expert.paligemma.model.language_model.";
    const char *E = "paligemma_with_expert.gemma_expert.model.";
    n_exp = 0;
    ex(4, 1152, 3, 14, 14, "%sembeddings.patch_embedding.weight", V);
    ex(1, 1152, 0, 0, 0, "%sembeddings.patch_embedding.bias", V);
    ex(2, 256, 1152, 0, 0, "%sembeddings.position_embedding.weight", V);
    for (int i = 0; i < 27; i++) {
        const char *n[] = {"layer_norm1", "layer_norm2"};
        for (int j = 0; j < 2; j++) {
            ex(1, 1152, 0, 0, 0, "%sencoder.layers.%d.%s.weight", V, i, n[j]);
            ex(1, 1152, 0, 0, 0, "%sencoder.layers.%d.%s.bias", V, i, n[j]);
        }
        const char *p[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int j = 0; j < 4; j++) {
            ex(2, 1152, 1152, 0, 0, "%sencoder.layers.%d.self_attn.%s.weight", V, i, p[j]);
            ex(1, 1152, 0, 0, 0, "%sencoder.layers.%d.self_attn.%s.bias", V, i, p[j]);
        }
        ex(2, 4304, 1152, 0, 0, "%sencoder.layers.%d.mlp.fc1.weight", V, i);
        ex(1, 4304, 0, 0, 0, "%sencoder.layers.%d.mlp.fc1.bias", V, i);
        ex(2, 1152, 4304, 0, 0, "%sencoder.layers.%d.mlp.fc2.weight", V, i);
        ex(1, 1152, 0, 0, 0, "%sencoder.layers.%d.mlp.fc2.bias", V, i);
    }
    ex(1, 1152, 0, 0, 0, "%spost_layernorm.weight", V);
    ex(1, 1152, 0, 0, 0, "%spost_layernorm.bias", V);
    CHECK_EQ_INT(n_exp, 437);
    ex(2, 2048, 1152, 0, 0,
       "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.weight");
    ex(1, 2048, 0, 0, 0,
       "paligemma_with_expert.paligemma.model.multi_modal_projector.linear.bias");
    int before = n_exp;
    ex(2, 257152, 2048, 0, 0, "paligemma_with_expert.paligemma.lm_head.weight");
    for (int t = 0; t < 2; t++) {
        const char *P = t ? E : L;
        int w = t ? 1024 : 2048, mlp = t ? 4096 : 16384, ada = t && pi05;
        for (int i = 0; i < 18; i++) {
            const char *norms[] = {"input_layernorm", "post_attention_layernorm"};
            for (int j = 0; j < 2; j++) {
                if (ada) {
                    ex(2, 3 * w, w, 0, 0, "%slayers.%d.%s.dense.weight", P, i, norms[j]);
                    ex(1, 3 * w, 0, 0, 0, "%slayers.%d.%s.dense.bias", P, i, norms[j]);
                } else {
                    ex(1, w, 0, 0, 0, "%slayers.%d.%s.weight", P, i, norms[j]);
                }
            }
            ex(2, 2048, w, 0, 0, "%slayers.%d.self_attn.q_proj.weight", P,
               i); /* 8 heads x 256 */
            ex(2, 256, w, 0, 0, "%slayers.%d.self_attn.k_proj.weight", P, i);
            ex(2, 256, w, 0, 0, "%slayers.%d.self_attn.v_proj.weight", P, i);
            ex(2, w, 2048, 0, 0, "%slayers.%d.self_attn.o_proj.weight", P, i);
            ex(2, mlp, w, 0, 0, "%slayers.%d.mlp.gate_proj.weight", P, i);
            ex(2, mlp, w, 0, 0, "%slayers.%d.mlp.up_proj.weight", P, i);
            ex(2, w, mlp, 0, 0, "%slayers.%d.mlp.down_proj.weight", P, i);
        }
        if (ada) {
            ex(2, 3 * w, w, 0, 0, "%snorm.dense.weight", P);
            ex(1, 3 * w, 0, 0, 0, "%snorm.dense.bias", P);
        } else {
            ex(1, w, 0, 0, 0, "%snorm.weight", P);
        }
        if (!t) CHECK_EQ_INT(n_exp - before, 164);
    }
    ex(2, 257152, 1024, 0, 0, "paligemma_with_expert.gemma_expert.lm_head.weight");
    const char *heads0[] = {"state_proj", "action_in_proj", "action_out_proj",
                            "action_time_mlp_in", "action_time_mlp_out"};
    const char *heads5[] = {"action_in_proj", "action_out_proj", "time_mlp_in", "time_mlp_out"};
    int64_t s0[][2] = {{1024, 32}, {1024, 32}, {32, 1024}, {1024, 2048}, {1024, 1024}};
    int64_t s5[][2] = {{1024, 32}, {32, 1024}, {1024, 1024}, {1024, 1024}};
    for (int i = 0; i < (pi05 ? 4 : 5); i++) {
        const char *n = pi05 ? heads5[i] : heads0[i];
        int64_t *s = pi05 ? s5[i] : s0[i];
        ex(2, s[0], s[1], 0, 0, "%s.weight", n);
        ex(1, s[0], 0, 0, 0, "%s.bias", n);
    }
}

static void check_full_list(int pi05) {
    released_keys(pi05);
    CHECK_EQ_INT(n_exp, pi05 ? 812 : 777);
    FILE *fp = popen(fmt("'%s' --size full --variant %s --dtype bf16 --list", MKMODEL,
                         pi05 ? "pi05" : "pi0"),
                     "r");
    PI0_ASSERT(fp);
    char line[512];
    int n_lines = 0, n_bad = 0, n_bf16 = 0;
    unsigned long long total_params = 0, total_bytes = 0, sum_bytes = 0;
    int total_tensors = 0;
    while (fgets(line, sizeof line, fp)) {
        if (!strncmp(line, "total: ", 7)) {
            CHECK_EQ_INT(sscanf(line, "total: %d tensors, %llu params, %llu bytes",
                                &total_tensors, &total_params, &total_bytes),
                         3);
            continue;
        }
        char name[256], dt[16], shape[128];
        unsigned long long bytes;
        if (sscanf(line, "%255s %15s [%127[^]]] %llu", name, dt, shape, &bytes) != 4) {
            n_bad++;
            continue;
        }
        n_lines++;
        int64_t s[4] = {0};
        int nd = sscanf(shape, "%" SCNd64 ", %" SCNd64 ", %" SCNd64 ", %" SCNd64, &s[0], &s[1],
                        &s[2], &s[3]);
        expect *e = NULL;
        for (int i = 0; i < n_exp && !e; i++)
            if (!strcmp(EXP[i].name, name)) e = &EXP[i];
        if (!e) {
            n_bad++;
            fprintf(stderr, "  unexpected key %s\n", name);
            continue;
        }
        e->seen++;
        int ok = nd == e->ndim;
        int64_t n = 1;
        for (int d = 0; ok && d < nd; d++) {
            ok = s[d] == e->shape[d];
            n *= s[d];
        }
        if (!ok) {
            n_bad++;
            fprintf(stderr, "  %s: shape [%s]\n", name, shape);
        }
        int bf = !strcmp(dt, "BF16");
        n_bf16 += bf;
        if (bf != (nd >= 2)) {
            n_bad++;
            fprintf(stderr, "  %s: dtype %s\n", name, dt);
        }
        if (bytes != (unsigned long long)n * (bf ? 2 : 4)) n_bad++;
        sum_bytes += bytes;
    }
    CHECK_EQ_INT(pclose(fp), 0);
    CHECK_EQ_INT(n_bad, 0);
    CHECK_EQ_INT(n_lines, n_exp);
    CHECK_EQ_INT(total_tensors, n_exp);
    for (int i = 0; i < n_exp; i++)
        CHECK_MSG(EXP[i].seen == 1, "%s listed %d times", EXP[i].name, EXP[i].seen);
    CHECK_EQ_INT(sum_bytes, total_bytes);
    if (!pi05)
        CHECK_MSG(total_params > 3495000000ull && total_params < 3505000000ull,
                  "params %llu (spec: 3.50 B)", total_params);
    CHECK(n_bf16 > 300);
}

static void test_mkmodel_full_key_set(void) {
    check_full_list(0);
    check_full_list(1);
}

static void test_mkmodel_cli(void) {
    char *d = pi0_test_tmpdir("pi0ldr");
    CHECK_EQ_INT(pi0_test_sh_quiet("'%s' --help >/dev/null", MKMODEL), 0);
    CHECK(pi0_test_sh_quiet("'%s' --size huge --variant pi0 --out %s/x 2>/dev/null", MKMODEL,
                            d) != 0);
    CHECK(pi0_test_sh_quiet("'%s' --size tiny --variant pi1 --out %s/x 2>/dev/null", MKMODEL,
                            d) != 0);
    CHECK(pi0_test_sh_quiet("'%s' --size tiny --variant pi0 --dtype f64 --out %s/x 2>/dev/null",
                            MKMODEL, d) != 0);
    CHECK(pi0_test_sh_quiet("'%s' --size tiny --variant pi0 2>/dev/null", MKMODEL) != 0);
    CHECK(pi0_test_sh_quiet("'%s' --size tiny --variant pi0 --seed -3 --out %s/x 2>/dev/null",
                            MKMODEL, d) != 0);
    CHECK(pi0_test_sh_quiet(
              "'%s' --size tiny --variant pi0 --out /proc/nonexistent/x 2>/dev/null",
              MKMODEL) != 0);
    /* deterministic: same seed same bytes, other seed other bytes */
    CHECK_EQ_INT(mkmodel("--size tiny --variant pi0 --seed 9", fmt("%s/a", d)), 0);
    CHECK_EQ_INT(mkmodel("--size tiny --variant pi0 --seed 9", fmt("%s/b", d)), 0);
    CHECK_EQ_INT(mkmodel("--size tiny --variant pi0 --seed 10", fmt("%s/c", d)), 0);
    CHECK_EQ_INT(
        pi0_test_sh_quiet("cmp -s %s/a/model.safetensors %s/b/model.safetensors", d, d), 0);
    CHECK_EQ_INT(pi0_test_sh_quiet("cmp -s %s/a/norm_stats.json %s/b/norm_stats.json", d, d),
                 0);
    CHECK(pi0_test_sh_quiet("cmp -s %s/a/model.safetensors %s/c/model.safetensors", d, d) != 0);
    /* rewriting a directory as shards (and back) leaves no stale file that would win */
    CHECK_EQ_INT(mkmodel("--size tiny --variant pi05 --seed 9 --shards 2", fmt("%s/a", d)), 0);
    CHECK(access(fmt("%s/a/model.safetensors", d), F_OK) != 0);
    pi0_weights *w = NULL;
    CHECK_STATUS(pi0_weights_load(fmt("%s/a", d), &w), 0);
    if (w) CHECK(w->cfg.pi05 && w->cfg.discrete_state_input); /* openpi's default = pi05 */
    pi0_weights_destroy(w);
    CHECK_EQ_INT(mkmodel("--size tiny --variant pi0 --seed 9", fmt("%s/a", d)), 0);
    CHECK(access(fmt("%s/a/model.safetensors.index.json", d), F_OK) != 0);
    w = NULL;
    CHECK_STATUS(pi0_weights_load(fmt("%s/a", d), &w), 0);
    if (w) CHECK(!w->cfg.pi05 && !w->cfg.discrete_state_input);
    pi0_weights_destroy(w);
    /* small loads and has the documented sizes */
    CHECK_EQ_INT(mkmodel("--size small --variant pi05 --dtype bf16", fmt("%s/s", d)), 0);
    w = NULL;
    CHECK_STATUS(pi0_weights_load(fmt("%s/s", d), &w), 0);
    if (w) {
        CHECK_EQ_INT(w->cfg.vlm.width, 512);
        CHECK_EQ_INT(w->cfg.expert.width, 256);
        CHECK_EQ_INT(w->cfg.vlm.vocab, 32768);
        CHECK_EQ_INT(w->cfg.vision.depth, 4);
        CHECK(w->cfg.pi05);
    }
    pi0_weights_destroy(w);
    pi0_test_rmrf(d);
}

// ---- whole-file reads (common/pi0_file.h) -----------------------------------------

static void test_read_file(void) {
    char *d = pi0_test_tmpdir("pi0ldr");
    char *path = keep(fmt("%s/f.txt", d));
    /* sizes around the doubling steps of the non-regular-file path, and empty */
    size_t sizes[] = {0, 1, 4095, 65535, 65536, 65537, 200000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i];
        char *want = malloc(n + 1);
        for (size_t j = 0; j < n; j++)
            want[j] = (char)('a' + j % 26);
        spit(path, want, n);
        char *got = NULL;
        size_t len = 12345;
        CHECK_STATUS(pi0__read_file(path, 1 << 20, &got, &len), PI0_OK);
        CHECK_EQ_INT(len, n);
        CHECK(got && got[len] == 0 && memcmp(got, want, n) == 0);
        free(got);
        if (n <= 65537) {
            /* exactly max is fine, one more byte is not */
            got = NULL;
            CHECK_STATUS(pi0__read_file(path, n, &got, &len), PI0_OK);
            CHECK_EQ_INT(len, n);
            free(got);
            if (n > 0) {
                got = (char *)1;
                CHECK_STATUS(pi0__read_file(path, n - 1, &got, NULL), PI0_EFORMAT);
                CHECK(got == (char *)1);
                CHECK(strstr(pi0_last_error(), path) != NULL);
            }
        }
        free(want);
    }
    /* a pipe: the growing path */
    char *fifo = keep(fmt("%s/pipe", d));
    PI0_ASSERT(mkfifo(fifo, 0600) == 0);
    pid_t pid = fork();
    PI0_ASSERT(pid >= 0);
    if (pid == 0) {
        FILE *fp = fopen(fifo, "wb");
        for (int j = 0; j < 100000; j++)
            fputc('0' + j % 10, fp);
        fclose(fp);
        _exit(0);
    }
    char *got = NULL;
    size_t len = 0;
    CHECK_STATUS(pi0__read_file(fifo, 1 << 20, &got, &len), PI0_OK);
    CHECK_EQ_INT(len, 100000);
    CHECK(got && got[99999] == '9' && got[100000] == 0);
    free(got);
    waitpid(pid, NULL, 0);
    char *missing = keep(fmt("%s/missing", d));
    CHECK_STATUS(pi0__read_file(missing, 100, &got, &len), PI0_ENOENT);
    CHECK(strstr(pi0_last_error(), "cannot open") != NULL);
    CHECK(strstr(pi0_last_error(), missing) != NULL);
    pi0_test_rmrf(d);
}

int main(int argc, char **argv) {
    char self[4096];
    snprintf(self, sizeof self, "%s", argv[0]);
    snprintf(MKMODEL, sizeof MKMODEL, "%s/../pi0rt-mkmodel", dirname(self));
    if (access(MKMODEL, X_OK) != 0) {
        fprintf(stderr, "test_loader: %s not found (make build/pi0rt-mkmodel)\n", MKMODEL);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    static const pi0_test tests[] = {
        TEST(test_st_valid),
        TEST(test_st_bad_inputs),
        TEST(test_st_header_parsed_nul_terminated),
        TEST(test_weights_tiny),
        TEST(test_weights_key_variants_and_shards),
        TEST(test_weights_more_key_variants),
        TEST(test_weights_bad_keys),
        TEST(test_weights_layers_counted_from_every_key),
        TEST(test_weights_derived_sizes_validated),
        TEST(test_weights_bad_config),
        TEST(test_weights_norm_stats),
        TEST(test_fuzz_checkpoint),
        TEST(test_npy_roundtrip),
        TEST(test_npy_bad),
        TEST(test_read_file),
        TEST(test_tensor_to_f32),
        TEST(test_preprocess_helpers),
        TEST(test_mkmodel_full_key_set),
        TEST(test_mkmodel_cli),
    };
    return pi0_test_main(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
