/* pi0rt-mkmodel — writes a random-initialized π0 / π0.5 checkpoint directory
 * (model.safetensors with the released key names, config.json, norm_stats.json).
 *
 * Values are deterministic from --seed and the tensor's key (not its position or dtype):
 * the bf16 (f16) file holds the round-to-nearest-even bf16 (f16) of the f32 file's values. Each
 * tensor is uniform with the std its kind calls for (linear weights 1/sqrt(fan_in), Gemma
 * RMSNorm weights near 0 since they are used as 1 + w, LayerNorm weights near 1, small biases
 * and position/token embeddings of std ~1 after the model's sqrt(width) scaling), so
 * activations stay O(1) through the layers. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/pi0_status.h"
#include "pipeline/pi0_weights.h"
#include "pipeline/checkpoint/safetensors.h"
#include "common/pi0_cli.h"
#include "common/pi0_hash.h"
#include "pipeline/model/rng.h"

// ---- sizes ------------------------------------------------------------------------

typedef struct sizes {
    const char *name;
    int vw, vdepth, vmlp, vheads, patch;     /* SigLIP */
    int W, depth, mlp, heads, kv, hd, vocab; /* Gemma VLM (expert shares depth/heads) */
    int Ew, Emlp;                            /* expert width / mlp */
    int A;                                   /* action_dim */
} sizes;

/* tiny mirrors the released shape relations at toy size: VLM heads·head_dim == width,
 * expert heads·head_dim (64) != expert width (32), MQA with one kv head. */
static const sizes SIZES[] = {
    {"tiny", 32, 2, 64, 2, 14, 64, 2, 128, 4, 1, 16, 1024, 32, 64, 32},
    {"small", 256, 4, 1024, 4, 14, 512, 4, 2048, 8, 1, 64, 32768, 256, 1024, 32},
    {"full", 1152, 27, 4304, 16, 14, 2048, 18, 16384, 8, 1, 256, 257152, 1024, 4096, 32},
};

// ---- tensor list ------------------------------------------------------------------

enum kind { K_LINEAR, K_BIAS, K_NEAR1, K_NEAR0, K_EMBED, K_DENSE };

typedef struct spec {
    char name[200];  /* key as written */
    char vname[200]; /* key the values are seeded from: the released spelling */
    int ndim;
    int64_t shape[4];
    enum kind kind;
    pi0_dtype dtype;
    uint64_t begin, end; /* data offsets */
} spec;

typedef struct list {
    spec *v;
    int n, cap;
    pi0_dtype big; /* dtype of tensors with ndim >= 2 */
    int key_style; /* 0 released, 1 embed_tokens, 2 legacy (lerobot / old transformers) */
} list;

static void add(list *l, enum kind k, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                const char *fmt, ...) PI0_PRINTF(8, 9);
static void add(list *l, enum kind k, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                const char *fmt, ...) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = realloc(l->v, (size_t)l->cap * sizeof *l->v);
        PI0_ASSERT(l->v);
    }
    spec *s = &l->v[l->n++];
    memset(s, 0, sizeof *s);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->name, sizeof s->name, fmt, ap);
    va_end(ap);
    memcpy(s->vname, s->name, sizeof s->name);
    s->ndim = ndim;
    int64_t d[4] = {d0, d1, d2, d3};
    for (int i = 0; i < 4; i++)
        s->shape[i] = i < ndim ? d[i] : 1;
    s->kind = k;
    s->dtype = ndim >= 2 ? l->big : PI0_F32;
}

#define PG "paligemma_with_expert.paligemma."
#define V  PG "model.vision_tower.vision_model."
#define L  PG "model.language_model."
#define E  "paligemma_with_expert.gemma_expert.model."

static void gemma_layers(list *l, const char *pfx, int depth, int w, int mlp, int heads, int kv,
                         int hd, int ada, int cond) {
    for (int i = 0; i < depth; i++) {
        if (ada) {
            add(l, K_DENSE, 2, 3 * w, cond, 0, 0, "%slayers.%d.input_layernorm.dense.weight",
                pfx, i);
            add(l, K_BIAS, 1, 3 * w, 0, 0, 0, "%slayers.%d.input_layernorm.dense.bias", pfx, i);
        } else {
            add(l, K_NEAR0, 1, w, 0, 0, 0, "%slayers.%d.input_layernorm.weight", pfx, i);
        }
        add(l, K_LINEAR, 2, heads * hd, w, 0, 0, "%slayers.%d.self_attn.q_proj.weight", pfx, i);
        add(l, K_LINEAR, 2, kv * hd, w, 0, 0, "%slayers.%d.self_attn.k_proj.weight", pfx, i);
        add(l, K_LINEAR, 2, kv * hd, w, 0, 0, "%slayers.%d.self_attn.v_proj.weight", pfx, i);
        add(l, K_LINEAR, 2, w, heads * hd, 0, 0, "%slayers.%d.self_attn.o_proj.weight", pfx, i);
        if (ada) {
            add(l, K_DENSE, 2, 3 * w, cond, 0, 0,
                "%slayers.%d.post_attention_layernorm.dense.weight", pfx, i);
            add(l, K_BIAS, 1, 3 * w, 0, 0, 0, "%slayers.%d.post_attention_layernorm.dense.bias",
                pfx, i);
        } else {
            add(l, K_NEAR0, 1, w, 0, 0, 0, "%slayers.%d.post_attention_layernorm.weight", pfx,
                i);
        }
        add(l, K_LINEAR, 2, mlp, w, 0, 0, "%slayers.%d.mlp.gate_proj.weight", pfx, i);
        add(l, K_LINEAR, 2, mlp, w, 0, 0, "%slayers.%d.mlp.up_proj.weight", pfx, i);
        add(l, K_LINEAR, 2, w, mlp, 0, 0, "%slayers.%d.mlp.down_proj.weight", pfx, i);
    }
}

static void build_list(list *l, const sizes *z, int pi05) {
    int vw = z->vw, p = z->patch, np = (224 / p) * (224 / p);
    add(l, K_LINEAR, 4, vw, 3, p, p, V "embeddings.patch_embedding.weight");
    add(l, K_BIAS, 1, vw, 0, 0, 0, V "embeddings.patch_embedding.bias");
    add(l, K_EMBED, 2, np, vw, 0, 0, V "embeddings.position_embedding.weight");
    for (int i = 0; i < z->vdepth; i++) {
#define VL V "encoder.layers.%d."
        add(l, K_NEAR1, 1, vw, 0, 0, 0, VL "layer_norm1.weight", i);
        add(l, K_BIAS, 1, vw, 0, 0, 0, VL "layer_norm1.bias", i);
        static const char *const qkv[] = {"q_proj", "k_proj", "v_proj", "out_proj"};
        for (int j = 0; j < 4; j++) {
            add(l, K_LINEAR, 2, vw, vw, 0, 0, VL "self_attn.%s.weight", i, qkv[j]);
            add(l, K_BIAS, 1, vw, 0, 0, 0, VL "self_attn.%s.bias", i, qkv[j]);
        }
        add(l, K_NEAR1, 1, vw, 0, 0, 0, VL "layer_norm2.weight", i);
        add(l, K_BIAS, 1, vw, 0, 0, 0, VL "layer_norm2.bias", i);
        add(l, K_LINEAR, 2, z->vmlp, vw, 0, 0, VL "mlp.fc1.weight", i);
        add(l, K_BIAS, 1, z->vmlp, 0, 0, 0, VL "mlp.fc1.bias", i);
        add(l, K_LINEAR, 2, vw, z->vmlp, 0, 0, VL "mlp.fc2.weight", i);
        add(l, K_BIAS, 1, vw, 0, 0, 0, VL "mlp.fc2.bias", i);
#undef VL
    }
    add(l, K_NEAR1, 1, vw, 0, 0, 0, V "post_layernorm.weight");
    add(l, K_BIAS, 1, vw, 0, 0, 0, V "post_layernorm.bias");
    add(l, K_LINEAR, 2, z->W, vw, 0, 0, PG "model.multi_modal_projector.linear.weight");
    add(l, K_BIAS, 1, z->W, 0, 0, 0, PG "model.multi_modal_projector.linear.bias");
    add(l, K_EMBED, 2, z->vocab, z->W, 0, 0, PG "lm_head.weight");
    if (l->key_style == 1)
        snprintf(l->v[l->n - 1].name, sizeof l->v[0].name, L "embed_tokens.weight");
    gemma_layers(l, L, z->depth, z->W, z->mlp, z->heads, z->kv, z->hd, 0, 0);
    add(l, K_NEAR0, 1, z->W, 0, 0, 0, L "norm.weight");
    gemma_layers(l, E, z->depth, z->Ew, z->Emlp, z->heads, z->kv, z->hd, pi05, z->Ew);
    if (pi05) {
        add(l, K_DENSE, 2, 3 * z->Ew, z->Ew, 0, 0, E "norm.dense.weight");
        add(l, K_BIAS, 1, 3 * z->Ew, 0, 0, 0, E "norm.dense.bias");
    } else {
        add(l, K_NEAR0, 1, z->Ew, 0, 0, 0, E "norm.weight");
    }
    add(l, K_EMBED, 2, z->vocab, z->Ew, 0, 0,
        "paligemma_with_expert.gemma_expert.lm_head.weight");
    int Ew = z->Ew, A = z->A;
    if (!pi05) {
        add(l, K_LINEAR, 2, Ew, A, 0, 0, "state_proj.weight");
        add(l, K_BIAS, 1, Ew, 0, 0, 0, "state_proj.bias");
    }
    add(l, K_LINEAR, 2, Ew, A, 0, 0, "action_in_proj.weight");
    add(l, K_BIAS, 1, Ew, 0, 0, 0, "action_in_proj.bias");
    add(l, K_LINEAR, 2, A, Ew, 0, 0, "action_out_proj.weight");
    add(l, K_BIAS, 1, A, 0, 0, 0, "action_out_proj.bias");
    const char *ti = pi05 ? "time_mlp_in" : "action_time_mlp_in";
    const char *to = pi05 ? "time_mlp_out" : "action_time_mlp_out";
    add(l, K_LINEAR, 2, Ew, pi05 ? Ew : 2 * Ew, 0, 0, "%s.weight", ti);
    add(l, K_BIAS, 1, Ew, 0, 0, 0, "%s.bias", ti);
    add(l, K_LINEAR, 2, Ew, Ew, 0, 0, "%s.weight", to);
    add(l, K_BIAS, 1, Ew, 0, 0, 0, "%s.bias", to);

    /* legacy spelling: lerobot's "model." prefix + the pre-4.52 transformers PaliGemma
     * layout (paligemma.language_model.model.*, paligemma.vision_tower.*, ...). */
    if (l->key_style == 2) {
        static const char *const rw[][2] = {
            {PG "model.language_model.", PG "language_model.model."},
            {PG "model.vision_tower.", PG "vision_tower."},
            {PG "model.multi_modal_projector.", PG "multi_modal_projector."},
            {PG "lm_head.", PG "language_model.lm_head."},
        };
        for (int i = 0; i < l->n; i++) {
            char tmp[sizeof l->v[i].name + 16];
            const char *nm = l->v[i].name, *head = "", *rest = nm;
            for (size_t r = 0; r < sizeof rw / sizeof rw[0]; r++)
                if (!strncmp(nm, rw[r][0], strlen(rw[r][0]))) {
                    head = rw[r][1];
                    rest = nm + strlen(rw[r][0]);
                    break;
                }
            snprintf(tmp, sizeof tmp, "model.%s%s", head, rest);
            PI0_ASSERT(strlen(tmp) < sizeof l->v[i].name);
            memcpy(l->v[i].name, tmp, strlen(tmp) + 1);
        }
    }
}

// ---- values -----------------------------------------------------------------------

typedef pi0__rng rng;

/* Each tensor's values come from (seed, released key name) alone, so every key spelling,
 * dtype and shard layout of a checkpoint holds the same numbers. */
static void rng_seed(rng *r, uint64_t seed, const char *name) {
    pi0__rng_seed(r, seed * 0x9e3779b97f4a7c15ull ^ pi0__fnv1a_str(name));
}

/* n values uniform in [center - a, center + a], two per 64-bit draw (24 bits each). */
static void fill_uniform(rng *r, float *out, size_t n, float center, float a) {
    const float k = a * (2.0f / 16777216.0f);
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        uint64_t x = pi0__rng_next(r);
        out[i] = center - a + (float)(x >> 40) * k;
        out[i + 1] = center - a + (float)((x >> 8) & 0xffffff) * k;
    }
    if (i < n) out[i] = center - a + (float)(pi0__rng_next(r) >> 40) * k;
}

static void kind_params(const spec *s, float *center, float *a) {
    const float sq3 = 1.7320508f;
    int64_t fan_in = 1;
    for (int d = 1; d < s->ndim; d++)
        fan_in *= s->shape[d];
    switch (s->kind) {
    case K_LINEAR:
        *center = 0;
        *a = sq3 / sqrtf((float)fan_in);
        break;
    case K_DENSE:
        *center = 0;
        *a = 0.5f * sq3 / sqrtf((float)fan_in);
        break;
    case K_EMBED:
        *center = 0;
        *a = sq3 / sqrtf((float)s->shape[1]);
        break;
    case K_BIAS:
        *center = 0;
        *a = 0.02f;
        break;
    case K_NEAR1:
        *center = 1;
        *a = 0.05f;
        break;
    case K_NEAR0:
        *center = 0;
        *a = 0.05f;
        break;
    }
}

// ---- writing ----------------------------------------------------------------------

static int64_t numel(const spec *s) {
    int64_t n = 1;
    for (int d = 0; d < s->ndim; d++)
        n *= s->shape[d];
    return n;
}

/* Header JSON for specs [lo, hi), offsets relative to their own data section, padded with
 * spaces to a multiple of 8 (as the reference writer does). Caller frees. */
static char *make_header(spec *v, int lo, int hi, size_t *len) {
    size_t cap = 4096 + (size_t)(hi - lo) * 320, o = 0;
    char *h = malloc(cap);
    PI0_ASSERT(h);
    uint64_t off = 0;
    o += (size_t)snprintf(h + o, cap - o,
                          "{\"__metadata__\":{\"format\":\"pt\",\"writer\":\"pi0rt-mkmodel\"}");
    for (int i = lo; i < hi; i++) {
        spec *s = &v[i];
        s->begin = off;
        s->end = off + (uint64_t)numel(s) * pi0_dtype_size(s->dtype);
        off = s->end;
        o += (size_t)snprintf(h + o, cap - o, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", s->name,
                              pi0__st_dtype_name(s->dtype));
        for (int d = 0; d < s->ndim; d++)
            o += (size_t)snprintf(h + o, cap - o, "%s%lld", d ? "," : "",
                                  (long long)s->shape[d]);
        o += (size_t)snprintf(h + o, cap - o, "],\"data_offsets\":[%llu,%llu]}",
                              (unsigned long long)s->begin, (unsigned long long)s->end);
        PI0_ASSERT(o < cap - 8);
    }
    h[o++] = '}';
    while (o % 8)
        h[o++] = ' ';
    *len = o;
    return h;
}

static int write_all(FILE *fp, const void *p, size_t n, const char *path) {
    if (fwrite(p, 1, n, fp) != n)
        return pi0_errorf(PI0_EIO, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

/* --nan-head: the action head's bias is NaN, so every chunk is NaN (tests of the node's
 * non-finite check). */
static int g_nan_head;

static int write_file(const char *path, spec *v, int lo, int hi, uint64_t seed) {
    size_t hlen;
    char *hdr = make_header(v, lo, hi, &hlen);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) {
        free(hdr);
        return pi0_errorf(PI0_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    }
    enum { CHUNK = 1 << 20 };
    float *buf = malloc(CHUNK * sizeof *buf);
    uint16_t *hb = malloc(CHUNK * sizeof *hb);
    PI0_ASSERT(buf && hb);
    setvbuf(fp, NULL, _IOFBF, 1 << 22);
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    int rc = write_all(fp, le, 8, tmp);
    if (!rc) rc = write_all(fp, hdr, hlen, tmp);
    for (int i = lo; i < hi && !rc; i++) {
        spec *s = &v[i];
        rng r;
        rng_seed(&r, seed, s->vname);
        float center = 0, a = 0;
        kind_params(s, &center, &a);
        for (int64_t left = numel(s); left > 0 && !rc;) {
            size_t n = left < CHUNK ? (size_t)left : CHUNK;
            fill_uniform(&r, buf, n, center, a);
            if (g_nan_head && strstr(s->vname, "action_out_proj.bias"))
                for (size_t j = 0; j < n; j++)
                    buf[j] = NAN;
            if (s->dtype == PI0_F32) {
                rc = write_all(fp, buf, n * 4, tmp);
            } else {
                if (s->dtype == PI0_BF16)
                    for (size_t j = 0; j < n; j++)
                        hb[j] = pi0_f32_to_bf16(buf[j]);
                else
                    for (size_t j = 0; j < n; j++)
                        hb[j] = pi0_f32_to_f16(buf[j]);
                rc = write_all(fp, hb, n * 2, tmp);
            }
            left -= (int64_t)n;
        }
    }
    if (fclose(fp) != 0 && !rc)
        rc = pi0_errorf(PI0_EIO, "%s: close failed: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = pi0_errorf(PI0_EIO, "%s: rename failed: %s", path, strerror(errno));
    if (rc) unlink(tmp);
    free(buf);
    free(hb);
    free(hdr);
    return rc;
}

static int write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "w");
    if (!fp) return pi0_errorf(PI0_EIO, "%s: cannot create: %s", path, strerror(errno));
    int ok = fputs(text, fp) >= 0;
    if (fclose(fp) != 0) ok = 0;
    return ok ? 0 : pi0_errorf(PI0_EIO, "%s: write failed", path);
}

static void json_floats(char *out, size_t cap, const float *v, int n) {
    size_t o = 0;
    o += (size_t)snprintf(out + o, cap - o, "[");
    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%.7g", i ? ", " : "", (double)v[i]);
    snprintf(out + o, cap - o, "]");
}

static int write_norm_stats(const char *path, int dim, uint64_t seed) {
    char *txt = malloc(65536), arr[4][4096];
    PI0_ASSERT(txt);
    size_t o = 0;
    o += (size_t)snprintf(txt + o, 65536 - o, "{\n  \"norm_stats\": {");
    const char *names[2] = {"state", "actions"};
    for (int q = 0; q < 2; q++) {
        rng r;
        rng_seed(&r, seed, names[q]);
        float mean[64], sd[64], q01[64], q99[64];
        fill_uniform(&r, mean, (size_t)dim, 0.0f, 0.5f);
        fill_uniform(&r, sd, (size_t)dim, 0.55f, 0.45f); /* (0.1, 1.0] */
        for (int i = 0; i < dim; i++) {
            q01[i] = mean[i] - 2 * sd[i];
            q99[i] = mean[i] + 2 * sd[i];
        }
        json_floats(arr[0], sizeof arr[0], mean, dim);
        json_floats(arr[1], sizeof arr[1], sd, dim);
        json_floats(arr[2], sizeof arr[2], q01, dim);
        json_floats(arr[3], sizeof arr[3], q99, dim);
        o += (size_t)snprintf(txt + o, 65536 - o,
                              "%s\n    \"%s\": {\n      \"mean\": %s,\n      \"std\": %s,\n"
                              "      \"q01\": %s,\n      \"q99\": %s\n    }",
                              q ? "," : "", names[q], arr[0], arr[1], arr[2], arr[3]);
    }
    snprintf(txt + o, 65536 - o, "\n  }\n}\n");
    int rc = write_text(path, txt);
    free(txt);
    return rc;
}

// ---- main -------------------------------------------------------------------------

static void usage(FILE *fp) {
    fprintf(
        fp,
        "usage: pi0rt-mkmodel --size tiny|small|full --variant pi0|pi05 [--dtype "
        "f32|bf16|f16]\n"
        "                     [--seed N] [--shards N] [--keys released|embed|legacy]\n"
        "                     [--nan-head] (--out DIR | --list)\n"
        "Writes a random-initialized checkpoint directory: model.safetensors (or N shards +\n"
        "model.safetensors.index.json) with the released key names, config.json and\n"
        "norm_stats.json. Deterministic from --seed (default 0).\n"
        "  --size     tiny: vision 32w x2, VLM 64w x2 (4 heads, 1 kv, head_dim 16, vocab "
        "1024),\n"
        "             expert 32w; small: ~%s; full: the released sizes (777 / 812 tensors)\n"
        "  --dtype    f32 (default), bf16 or f16 (matrices in that dtype; norms and biases\n"
        "             stay F32, as in the released files)\n"
        "  --keys     released (default: tied paligemma.lm_head, no embed_tokens),\n"
        "             embed (language_model.embed_tokens.weight instead), legacy (lerobot\n"
        "             'model.' prefix + old transformers PaliGemma layout)\n"
        "  --list     print every tensor (name dtype shape bytes) and totals; write nothing\n"
        "  --nan-head the action head's bias is NaN (every chunk is NaN; for fault tests)\n",
        "48M params, 190 MB in f32");
}

int main(int argc, char **argv) {
    const char *size = NULL, *variant = NULL, *dtype = "f32", *out = NULL, *keys = "released";
    uint64_t seed = 0, shards = 1;
    int list_only = 0, bad = 0;
    enum {
        O_SIZE = 256,
        O_VARIANT,
        O_DTYPE,
        O_OUT,
        O_KEYS,
        O_SEED,
        O_SHARDS,
        O_LIST,
        O_NAN_HEAD
    };
    static const struct option opts_long[] = {{"size", required_argument, NULL, O_SIZE},
                                              {"variant", required_argument, NULL, O_VARIANT},
                                              {"dtype", required_argument, NULL, O_DTYPE},
                                              {"out", required_argument, NULL, O_OUT},
                                              {"keys", required_argument, NULL, O_KEYS},
                                              {"seed", required_argument, NULL, O_SEED},
                                              {"shards", required_argument, NULL, O_SHARDS},
                                              {"list", no_argument, NULL, O_LIST},
                                              {"nan-head", no_argument, NULL, O_NAN_HEAD},
                                              {"help", no_argument, NULL, 'h'},
                                              {NULL, 0, NULL, 0}};
    opterr = 0;
    for (int c; (c = getopt_long(argc, argv, ":h", opts_long, NULL)) != -1;) {
        const char *val = optarg;
        switch (c) {
        case 'h':
            usage(stdout);
            return 0;
        case O_SIZE:
            size = val;
            break;
        case O_VARIANT:
            variant = val;
            break;
        case O_DTYPE:
            dtype = val;
            break;
        case O_OUT:
            out = val;
            break;
        case O_KEYS:
            keys = val;
            break;
        case O_LIST:
            list_only = 1;
            break;
        case O_NAN_HEAD:
            g_nan_head = 1;
            break;
        case O_SEED:
            seed = pi0__parse_u64(val, 0, UINT64_MAX, &bad);
            if (bad) {
                fprintf(stderr, "pi0rt-mkmodel: bad --seed %s\n", val);
                return PI0_EXIT_USAGE;
            }
            break;
        case O_SHARDS:
            shards = pi0__parse_u64(val, 1, 999, &bad);
            if (bad) {
                fprintf(stderr, "pi0rt-mkmodel: bad --shards %s (1..999)\n", val);
                return PI0_EXIT_USAGE;
            }
            break;
        default:
            return pi0__opt_error("pi0rt-mkmodel", argv, c);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pi0rt-mkmodel: unexpected argument %s (see --help)\n", argv[optind]);
        return PI0_EXIT_USAGE;
    }
    const sizes *z = NULL;
    for (size_t i = 0; size && i < sizeof SIZES / sizeof SIZES[0]; i++)
        if (!strcmp(SIZES[i].name, size)) z = &SIZES[i];
    if (!z) {
        fprintf(stderr, "pi0rt-mkmodel: --size must be tiny, small or full\n");
        return PI0_EXIT_USAGE;
    }
    if (!variant || (strcmp(variant, "pi0") && strcmp(variant, "pi05"))) {
        fprintf(stderr, "pi0rt-mkmodel: --variant must be pi0 or pi05\n");
        return PI0_EXIT_USAGE;
    }
    int pi05 = !strcmp(variant, "pi05");
    list l = {0};
    if (!strcmp(dtype, "f32"))
        l.big = PI0_F32;
    else if (!strcmp(dtype, "bf16"))
        l.big = PI0_BF16;
    else if (!strcmp(dtype, "f16"))
        l.big = PI0_F16;
    else {
        fprintf(stderr, "pi0rt-mkmodel: --dtype must be f32, bf16 or f16\n");
        return PI0_EXIT_USAGE;
    }
    if (!strcmp(keys, "released"))
        l.key_style = 0;
    else if (!strcmp(keys, "embed"))
        l.key_style = 1;
    else if (!strcmp(keys, "legacy"))
        l.key_style = 2;
    else {
        fprintf(stderr, "pi0rt-mkmodel: --keys must be released, embed or legacy\n");
        return PI0_EXIT_USAGE;
    }
    if (!out && !list_only) {
        fprintf(stderr, "pi0rt-mkmodel: --out DIR is required (or --list)\n");
        return PI0_EXIT_USAGE;
    }
    if ((int)shards > 1 && list_only) shards = 1;
    build_list(&l, z, pi05);
    if ((int64_t)shards > l.n) {
        fprintf(stderr, "pi0rt-mkmodel: more shards than tensors\n");
        return PI0_EXIT_USAGE;
    }

    uint64_t params = 0, bytes = 0;
    for (int i = 0; i < l.n; i++) {
        params += (uint64_t)numel(&l.v[i]);
        bytes += (uint64_t)numel(&l.v[i]) * pi0_dtype_size(l.v[i].dtype);
    }
    if (list_only) {
        for (int i = 0; i < l.n; i++) {
            const spec *s = &l.v[i];
            printf("%s %s [", s->name, pi0__st_dtype_name(s->dtype));
            for (int d = 0; d < s->ndim; d++)
                printf("%s%lld", d ? ", " : "", (long long)s->shape[d]);
            printf("] %llu\n",
                   (unsigned long long)((uint64_t)numel(s) * pi0_dtype_size(s->dtype)));
        }
        printf("total: %d tensors, %llu params, %llu bytes\n", l.n, (unsigned long long)params,
               (unsigned long long)bytes);
        free(l.v);
        return 0;
    }

    if (mkdir(out, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "pi0rt-mkmodel: %s: cannot create directory: %s\n", out,
                strerror(errno));
        return 1;
    }
    char path[4096];
    int rc = 0;
    /* a stale single file would shadow a new sharded index and vice versa */
    snprintf(path, sizeof path, "%s/%s", out,
             shards == 1 ? "model.safetensors.index.json" : "model.safetensors");
    if (unlink(path) != 0 && errno != ENOENT) {
        fprintf(stderr, "pi0rt-mkmodel: %s: cannot remove stale file: %s\n", path,
                strerror(errno));
        return 1;
    }
    if (shards == 1) {
        snprintf(path, sizeof path, "%s/model.safetensors", out);
        rc = write_file(path, l.v, 0, l.n, seed);
    } else {
        /* contiguous groups of roughly equal bytes */
        uint64_t per = bytes / shards + 1, acc = 0;
        int lo = 0, k = 0;
        size_t cap = 256 + (size_t)l.n * 300, o = 0;
        char *idx = malloc(cap);
        PI0_ASSERT(idx);
        o += (size_t)snprintf(idx + o, cap - o,
                              "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {",
                              (unsigned long long)bytes);
        for (int i = 0; i < l.n && !rc; i++) {
            acc += (uint64_t)numel(&l.v[i]) * pi0_dtype_size(l.v[i].dtype);
            int last = i == l.n - 1;
            int remaining_tensors = l.n - 1 - i, remaining_shards = (int)shards - 1 - k;
            if (last || (acc >= per * (uint64_t)(k + 1) && remaining_shards > 0) ||
                remaining_tensors <= remaining_shards) {
                char name[64];
                snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k + 1,
                         (int)shards);
                snprintf(path, sizeof path, "%s/%s", out, name);
                rc = write_file(path, l.v, lo, i + 1, seed);
                for (int j = lo; j <= i; j++)
                    o += (size_t)snprintf(idx + o, cap - o, "%s\n    \"%s\": \"%s\"",
                                          o && idx[o - 1] == '{' ? "" : ",", l.v[j].name, name);
                lo = i + 1;
                k++;
            }
        }
        snprintf(idx + o, cap - o, "\n  }\n}\n");
        if (!rc && k != (int)shards)
            rc = pi0_errorf(PI0_EINVAL, "internal: wrote %d shards", k);
        snprintf(path, sizeof path, "%s/model.safetensors.index.json", out);
        if (!rc) rc = write_text(path, idx);
        free(idx);
    }
    if (!rc) {
        int tok = pi05 ? 200 : 48;
        char cfg[2048];
        snprintf(
            cfg, sizeof cfg,
            "{\n  \"action_dim\": %d,\n  \"action_horizon\": 50,\n%s"
            "  \"precision\": \"%s\",\n  \"pi05\": %s,\n  \"max_token_len\": %d,\n"
            "  \"num_steps\": 10,\n  \"vision_num_heads\": %d,\n"
            "  \"vlm_num_heads\": %d,\n  \"vlm_num_kv_heads\": %d,\n  \"vlm_head_dim\": %d,\n"
            "  \"expert_num_heads\": %d,\n  \"expert_num_kv_heads\": %d,\n"
            "  \"expert_head_dim\": %d,\n"
            "  \"pi0rt_mkmodel\": {\"size\": \"%s\", \"seed\": %llu, \"keys\": \"%s\"}\n}\n",
            z->A,
            !strcmp(z->name, "full") ? "  \"paligemma_variant\": \"gemma_2b\",\n  "
                                       "\"action_expert_variant\": \"gemma_300m\",\n"
                                     : "",
            l.big == PI0_F32    ? "float32"
            : l.big == PI0_BF16 ? "bfloat16"
                                : "float16",
            pi05 ? "true" : "false", tok, z->vheads, z->heads, z->kv, z->hd, z->heads, z->kv,
            z->hd, z->name, (unsigned long long)seed, keys);
        snprintf(path, sizeof path, "%s/config.json", out);
        rc = write_text(path, cfg);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/norm_stats.json", out);
        rc = write_norm_stats(path, z->A, seed);
    }
    free(l.v);
    if (rc) {
        fprintf(stderr, "pi0rt-mkmodel: %s\n", pi0_last_error_for(rc));
        return 1;
    }
    return 0;
}
