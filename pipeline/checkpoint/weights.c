/* weights.c — checkpoint directory → pi0_weights: files, key mapping, config.json,
 * shape checks, norm_stats.json (see pi0_weights.h). */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "pipeline/pi0_weights.h"
#include "npy.h"
#include "common/pi0_file.h"
#include "pipeline/preprocess/preprocess.h" /* PI0_IMAGE_SIZE */
#include "common/pi0_hash.h"
#include "safetensors.h"

#define PG      "paligemma_with_expert.paligemma."
#define V       PG "model.vision_tower.vision_model."
#define L       PG "model.language_model."
#define E       "paligemma_with_expert.gemma_expert.model."
#define KEY_MAX 512

struct wfiles {
    int n_files;
    pi0__st_file **files;    /* [n_files] */
    int n;                   /* tensors over all files */
    char **canon;            /* [n] canonical key of tensor i */
    const pi0_tensor **tens; /* [n] */
    int *slots;              /* hash canonical -> i, -1 empty */
    int n_slots;
    unsigned char *used; /* [n] 1 once the model took tensor i */
};

/* A pi0_weights as allocated: the public table first, then the files only this file sees. */
typedef struct weights_alloc {
    pi0_weights pub;
    struct wfiles x;
} weights_alloc;

static struct wfiles *files_of(const pi0_weights *w) {
    return &((weights_alloc *)w)->x;
}

// ---- small helpers ----------------------------------------------------------------

static int starts(const char *s, const char *p) {
    return strncmp(s, p, strlen(p)) == 0;
}

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static int parse_json_file(const char *path, cJSON **out) {
    char *txt = NULL;
    size_t len = 0;
    int rc = pi0__read_file(path, 64u << 20, &txt, &len);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(txt, len, &end, 0);
    long at = end ? (long)(end - txt) : -1;
    free(txt);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return pi0_errorf(PI0_EFORMAT, "%s: not a valid JSON object (near byte %ld)", path, at);
    }
    *out = j;
    return 0;
}

// ---- tensors ----------------------------------------------------------------------

int64_t pi0_tensor_numel(const pi0_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++)
        n *= t->shape[d];
    return t->data ? n : 0;
}

size_t pi0_tensor_nbytes(const pi0_tensor *t) {
    return (size_t)pi0_tensor_numel(t) * pi0_dtype_size(t->dtype);
}

void pi0_tensor_evict(const pi0_tensor *t) {
    if (!pi0_tensor_present(t)) return;
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), a = (uintptr_t)t->data;
    uintptr_t lo = (a + page - 1) & ~(page - 1), hi = (a + pi0_tensor_nbytes(t)) & ~(page - 1);
    if (hi > lo) (void)madvise((void *)lo, hi - lo, MADV_DONTNEED); /* advice only */
}

int pi0_tensor_to_f32(const pi0_tensor *t, int64_t first, int64_t n, float *out) {
    int64_t total = pi0_tensor_numel(t);
    if (first < 0 || n < 0 || first > total || n > total - first)
        return pi0_errorf(PI0_ERANGE, "tensor %s: elements [%lld, %lld) outside its %lld",
                          t->name ? t->name : "(absent)", (long long)first,
                          (long long)(first + n), (long long)total);
    const uint8_t *p = t->data;
    switch (t->dtype) {
    case PI0_F32:
        memcpy(out, p + first * 4, (size_t)n * 4);
        break;
    case PI0_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + (first + i) * 2, 2);
            out[i] = pi0_bf16_to_f32(h);
        }
        break;
    case PI0_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + (first + i) * 2, 2);
            out[i] = pi0_f16_to_f32(h);
        }
        break;
    default:
        return pi0_errorf(PI0_ETYPE, "tensor %s: unsupported dtype", t->name);
    }
    return 0;
}

// ---- key mapping ------------------------------------------------------------------

/* Rewrites a key of a known variant into the spec's spelling (PI0-SPEC.md §2):
 *   model.<anything above>                      (lerobot: policy.model.*)
 *   PG language_model.model.X / PG model.language_model.model.X / PG language_model.X
 *                                               -> PG model.language_model.X
 *   PG language_model.lm_head.weight            -> PG lm_head.weight
 *   PG vision_tower.X, PG multi_modal_projector.X -> PG model.…
 *   PG model.vision_tower.X without vision_model. -> PG model.vision_tower.vision_model.X
 *   gemma_expert.{layers,norm,embed_tokens}.X   -> gemma_expert.model.…
 * Returns 0, or -1 when the result would not fit. */
static int canonical_key(const char *key, char *buf, size_t cap) {
    static const char *const roots[] = {
        "paligemma_with_expert.", "state_proj.",          "action_in_proj.", "action_out_proj.",
        "action_time_mlp_in.",    "action_time_mlp_out.", "time_mlp_in.",    "time_mlp_out."};
    const char *s = key;
    if (starts(s, "model."))
        for (size_t i = 0; i < sizeof roots / sizeof roots[0]; i++)
            if (starts(s + 6, roots[i])) {
                s += 6;
                break;
            }
    char tmp[KEY_MAX];
    if (starts(s, PG)) {
        static const char *const rw[][2] = {
            {"model.language_model.model.", "model.language_model."},
            {"language_model.model.", "model.language_model."},
            {"language_model.lm_head.", "lm_head."},
            {"language_model.", "model.language_model."},
            {"vision_tower.", "model.vision_tower."},
            {"multi_modal_projector.", "model.multi_modal_projector."},
        };
        const char *r = s + strlen(PG);
        const char *head = "", *rest = r;
        for (size_t i = 0; i < sizeof rw / sizeof rw[0]; i++)
            if (starts(r, rw[i][0])) {
                head = rw[i][1];
                rest = r + strlen(rw[i][0]);
                break;
            }
        int n = snprintf(tmp, sizeof tmp, "%s%s", head, rest);
        if (n < 0 || (size_t)n >= sizeof tmp) return -1;
        const char *vt = "model.vision_tower.";
        if (starts(tmp, vt) && !starts(tmp + strlen(vt), "vision_model.")) {
            n = snprintf(buf, cap, PG "%svision_model.%s", vt, tmp + strlen(vt));
        } else {
            n = snprintf(buf, cap, PG "%s", tmp);
        }
        return (n < 0 || (size_t)n >= cap) ? -1 : 0;
    }
    const char *ex = "paligemma_with_expert.gemma_expert.";
    if (starts(s, ex)) {
        const char *r = s + strlen(ex);
        int n;
        if (starts(r, "layers.") || starts(r, "norm.") || starts(r, "embed_tokens."))
            n = snprintf(buf, cap, "%smodel.%s", ex, r);
        else
            n = snprintf(buf, cap, "%s", s);
        return (n < 0 || (size_t)n >= cap) ? -1 : 0;
    }
    int n = snprintf(buf, cap, "%s", s);
    return (n < 0 || (size_t)n >= cap) ? -1 : 0;
}

static int idx_slot(const struct wfiles *x, const char *canon) {
    unsigned mask = (unsigned)x->n_slots - 1, i = (unsigned)pi0__fnv1a_str(canon) & mask;
    while (x->slots[i] >= 0 && strcmp(x->canon[x->slots[i]], canon) != 0)
        i = (i + 1) & mask;
    return (int)i;
}

static const pi0_tensor *lookup(const struct wfiles *x, const char *canon) {
    int s = idx_slot(x, canon);
    return x->slots[s] >= 0 ? x->tens[x->slots[s]] : NULL;
}

static int build_index(struct wfiles *x, const char *dir) {
    int n = 0;
    for (int f = 0; f < x->n_files; f++)
        n += pi0__st_count(x->files[f]);
    x->canon = calloc((size_t)n + 1, sizeof *x->canon);
    x->tens = calloc((size_t)n + 1, sizeof *x->tens);
    x->n_slots = 16;
    while (x->n_slots < 2 * n)
        x->n_slots *= 2;
    x->slots = malloc((size_t)x->n_slots * sizeof *x->slots);
    x->used = calloc((size_t)n + 1, 1);
    if (!x->canon || !x->tens || !x->slots || !x->used)
        return pi0_errorf(PI0_ENOMEM, "%s: out of memory", dir);
    for (int i = 0; i < x->n_slots; i++)
        x->slots[i] = -1;
    char buf[KEY_MAX];
    for (int f = 0; f < x->n_files; f++) {
        for (int i = 0; i < pi0__st_count(x->files[f]); i++) {
            const pi0_tensor *t = pi0__st_tensor(x->files[f], i);
            if (canonical_key(t->name, buf, sizeof buf) != 0) continue; /* too long: not ours */
            int s = idx_slot(x, buf);
            if (x->slots[s] >= 0)
                return pi0_errorf(PI0_EFORMAT,
                                  "%s: tensors %.200s and %.200s are the same key %.200s", dir,
                                  x->tens[x->slots[s]]->name, t->name, buf);
            if (!(x->canon[x->n] = strdup(buf)))
                return pi0_errorf(PI0_ENOMEM, "%s: out of memory", dir);
            x->tens[x->n] = t;
            x->slots[s] = x->n++;
        }
    }
    return 0;
}

// ---- files ------------------------------------------------------------------------

static int open_files(struct wfiles *x, const char *dir) {
    int rc = 0;
    char *single = path_join(dir, "model.safetensors");
    char *index = path_join(dir, "model.safetensors.index.json");
    cJSON *j = NULL;
    if (!single || !index) {
        rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    if (file_exists(single)) {
        x->files = calloc(1, sizeof *x->files);
        if (!x->files) {
            rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", dir);
            goto out;
        }
        rc = pi0__st_open(single, &x->files[0]);
        if (!rc) x->n_files = 1;
        goto out;
    }
    if (!file_exists(index)) {
        rc = pi0_errorf(PI0_ENOENT,
                        "%s: neither model.safetensors nor model.safetensors.index.json", dir);
        goto out;
    }
    if ((rc = parse_json_file(index, &j))) goto out;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        rc = pi0_errorf(PI0_EFORMAT, "%s: no \"weight_map\" object", index);
        goto out;
    }
    int n_keys = cJSON_GetArraySize(wm);
    x->files = calloc((size_t)n_keys, sizeof *x->files);
    const char **names = calloc((size_t)n_keys, sizeof *names);
    if (!x->files || !names) {
        free(names);
        rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    /* Open each distinct shard once, then check every weight_map entry is in its shard. */
    for (const cJSON *e = wm->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/')) {
            rc =
                pi0_errorf(PI0_EFORMAT, "%s: weight_map[%.200s] is not a shard file name in %s",
                           index, e->string, dir);
            break;
        }
        int f = 0;
        while (f < x->n_files && strcmp(names[f], e->valuestring) != 0)
            f++;
        if (f == x->n_files) {
            char *sp = path_join(dir, e->valuestring);
            if (!sp) {
                rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", dir);
                break;
            }
            rc = pi0__st_open(sp, &x->files[f]);
            free(sp);
            if (rc) {
                if (rc == PI0_ENOENT)
                    rc = pi0_errorf(PI0_ENOENT,
                                    "%s: shard %.200s (for tensor %.200s) is missing", index,
                                    e->valuestring, e->string);
                break;
            }
            names[f] = e->valuestring;
            x->n_files++;
        }
        if (!pi0__st_find(x->files[f], e->string)) {
            rc = pi0_errorf(PI0_ENOENT, "%s: tensor %.200s is not in shard %.200s", index,
                            e->string, e->valuestring);
            break;
        }
    }
    free(names);
out:
    cJSON_Delete(j);
    free(single);
    free(index);
    return rc;
}

// ---- table ------------------------------------------------------------------------

typedef struct ctx {
    const char *dir;
    struct wfiles *x;
} ctx;

/* Key formatting. */
static const char *K(char *buf, const char *fmt, ...) PI0_PRINTF(2, 3);
static const char *K(char *buf, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, KEY_MAX, fmt, ap);
    va_end(ap);
    return buf;
}

#define DIM_MAX (1 << 20) /* largest size of one tensor dimension (vocab 257152) */

/* Looks up canonical `key`; checks ndim and the dims given (-1 = any). Absent: PI0_ENOENT
 * naming the key (or 0 with *dst zeroed when optional). Every dimension must be in
 * [1, DIM_MAX]: the model has no empty tensor, and sizes derived from these dims (widths,
 * head counts, head_dim) are then positive and small enough for int arithmetic. */
static int get(ctx *c, pi0_tensor *dst, const char *key, int optional, int ndim, int64_t d0,
               int64_t d1, int64_t d2, int64_t d3) {
    int s = idx_slot(c->x, key), i = c->x->slots[s];
    const pi0_tensor *t = i >= 0 ? c->x->tens[i] : NULL;
    memset(dst, 0, sizeof *dst);
    if (!t) {
        if (optional) return 0;
        return pi0_errorf(PI0_ENOENT, "%s: missing tensor %s", c->dir, key);
    }
    int64_t want[4] = {d0, d1, d2, d3};
    char got[96], exp[96];
    if (!pi0__shape_matches(t->shape, t->ndim, want, ndim))
        return pi0_errorf(PI0_ESHAPE, "%s: tensor %s has shape %s, expected %s", c->dir,
                          t->name, pi0__shape_format(got, sizeof got, t->shape, t->ndim, "[]"),
                          pi0__shape_format(exp, sizeof exp, want, ndim, "[]"));
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] < 1 || t->shape[d] > DIM_MAX)
            return pi0_errorf(PI0_ESHAPE,
                              "%s: tensor %s has shape %s: every size must be in "
                              "[1, %d]",
                              c->dir, t->name,
                              pi0__shape_format(got, sizeof got, t->shape, t->ndim, "[]"),
                              DIM_MAX);
    c->x->used[i] = 1;
    *dst = *t;
    return 0;
}

#define GET1(dst, key, a)    get(c, dst, key, 0, 1, a, -1, -1, -1)
#define GET2(dst, key, a, b) get(c, dst, key, 0, 2, a, b, -1, -1)

#define LAYERS_MAX 1000

/* Depth of a tower: 1 + the largest N of any tensor named `prefix`N.*, so that a layer
 * lacking some tensor (the last one included) is an error naming that tensor when the
 * layers are mapped, never a shallower network. 0 when there is none; PI0_EFORMAT for an
 * index beyond LAYERS_MAX. */
static int count_layers(ctx *c, const char *prefix) {
    size_t pl = strlen(prefix);
    long depth = 0;
    for (int i = 0; i < c->x->n; i++) {
        const char *k = c->x->canon[i], *p = k + pl;
        if (strncmp(k, prefix, pl) || *p < '0' || *p > '9') continue;
        long n = 0;
        for (; *p >= '0' && *p <= '9' && n < LAYERS_MAX; p++)
            n = n * 10 + (*p - '0');
        if (n >= LAYERS_MAX)
            return pi0_errorf(PI0_EFORMAT, "%s: tensor %s: layer index beyond %d", c->dir,
                              c->x->tens[i]->name, LAYERS_MAX - 1);
        if (*p == '.' && n + 1 > depth) depth = n + 1;
    }
    return (int)depth;
}

typedef struct variant {
    const char *name;
    int width, depth, mlp, heads, kv, head_dim;
} variant;

static const variant VARIANTS[] = {
    {"gemma_2b", 2048, 18, 16384, 8, 1, 256},  {"gemma_2b_lora", 2048, 18, 16384, 8, 1, 256},
    {"gemma_300m", 1024, 18, 4096, 8, 1, 256}, {"gemma_300m_lora", 1024, 18, 4096, 8, 1, 256},
    {"dummy", 64, 4, 128, 8, 1, 16},
};

/* Integer config value: first of the names present. 0 = absent, 1 = found, <0 = error. */
static int cfg_int(const char *path, const cJSON *root, const char *const *names, int *out,
                   int lo, int hi) {
    for (; *names; names++) {
        const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, *names);
        if (!j || cJSON_IsNull(j)) continue;
        double v = cJSON_IsNumber(j) ? j->valuedouble : NAN;
        if (!(v >= lo && v <= hi) || v != (double)(int)v)
            return pi0_errorf(PI0_ECONFIG, "%s: %s must be an integer in [%d, %d]", path,
                              *names, lo, hi);
        *out = (int)v;
        return 1;
    }
    return 0;
}

static int cfg_variant(const char *path, const cJSON *root, const char *key,
                       const variant **out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = NULL;
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsString(j))
        return pi0_errorf(PI0_ECONFIG, "%s: %s must be a string", path, key);
    for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++)
        if (!strcmp(VARIANTS[i].name, j->valuestring)) {
            *out = &VARIANTS[i];
            return 0;
        }
    return pi0_errorf(PI0_ECONFIG,
                      "%s: %s \"%.60s\" is unknown (gemma_2b, gemma_300m, dummy, *_lora)", path,
                      key, j->valuestring);
}

/* Heads of a Gemma tower from overrides / variant / width; checks against q/k rows. */
static int gemma_heads(const char *path, const cJSON *root, const char *what, const char *pfx,
                       const char *vkey, pi0_tower_config *tc, int64_t q_rows, int64_t k_rows) {
    const variant *var;
    int rc = cfg_variant(path, root, vkey, &var);
    if (rc) return rc;
    if (var && (var->width != tc->width || var->depth != tc->depth || var->mlp != tc->mlp))
        return pi0_errorf(
            PI0_ECONFIG,
            "%s: %s \"%s\" means width %d, depth %d, mlp %d but the checkpoint's %s "
            "has width %d, depth %d, mlp %d",
            path, vkey, var->name, var->width, var->depth, var->mlp, what, tc->width, tc->depth,
            tc->mlp);
    if (!var)
        for (size_t i = 0; i < sizeof VARIANTS / sizeof VARIANTS[0]; i++)
            if (VARIANTS[i].width == tc->width && VARIANTS[i].depth == tc->depth &&
                VARIANTS[i].mlp == tc->mlp) {
                var = &VARIANTS[i];
                break;
            }
    char k1[64], k2[64], k3[64];
    snprintf(k1, sizeof k1, "%s_num_heads", pfx);
    snprintf(k2, sizeof k2, "%s_num_kv_heads", pfx);
    snprintf(k3, sizeof k3, "%s_head_dim", pfx);
    const char *n1[] = {k1, NULL}, *n2[] = {k2, NULL}, *n3[] = {k3, NULL};
    int heads = 0, kv = 0, hd = 0, g1, g2, g3;
    if ((g1 = cfg_int(path, root, n1, &heads, 1, 4096)) < 0) return g1;
    if ((g2 = cfg_int(path, root, n2, &kv, 1, 4096)) < 0) return g2;
    if ((g3 = cfg_int(path, root, n3, &hd, 1, 65536)) < 0) return g3;
    if (!g1) {
        if (!var)
            return pi0_errorf(PI0_ECONFIG,
                              "%s: cannot tell the %s head count: give %s or a known %s", path,
                              what, k1, vkey);
        heads = var->heads;
    }
    if (!g3) hd = (var && !g1) ? var->head_dim : (int)(q_rows / heads);
    if ((int64_t)heads * hd != q_rows)
        return pi0_errorf(PI0_ECONFIG,
                          "%s: %s has %d heads x head_dim %d but q_proj has %lld rows", path,
                          what, heads, hd, (long long)q_rows);
    if (hd % 2)
        return pi0_errorf(PI0_ECONFIG,
                          "%s: %s head_dim %d (%s) is odd: rotary embeddings need it even",
                          path, what, hd, g3 ? k3 : "q_proj rows / heads");
    if (!g2) kv = (int)(k_rows / hd);
    if (kv <= 0 || (int64_t)kv * hd != k_rows || heads % kv != 0)
        return pi0_errorf(
            PI0_ECONFIG, "%s: %s: %d kv heads x head_dim %d vs k_proj %lld rows (and %d heads)",
            path, what, kv, hd, (long long)k_rows, heads);
    tc->n_heads = heads;
    tc->n_kv_heads = kv;
    tc->head_dim = hd;
    return 0;
}

static int map_gemma_layer(ctx *c, pi0_gemma_layer *ly, const char *pfx, int i,
                           const pi0_tower_config *tc, int ada, int cond_width) {
    char k[KEY_MAX];
    int w = tc->width, hd = tc->head_dim, rc;
    if (ada) {
        if ((rc = GET2(&ly->in_norm, K(k, "%slayers.%d.input_layernorm.dense.weight", pfx, i),
                       3 * w, cond_width)) ||
            (rc = GET1(&ly->in_norm_b, K(k, "%slayers.%d.input_layernorm.dense.bias", pfx, i),
                       3 * w)) ||
            (rc = GET2(&ly->post_norm,
                       K(k, "%slayers.%d.post_attention_layernorm.dense.weight", pfx, i), 3 * w,
                       cond_width)) ||
            (rc = GET1(&ly->post_norm_b,
                       K(k, "%slayers.%d.post_attention_layernorm.dense.bias", pfx, i), 3 * w)))
            return rc;
    } else {
        if ((rc = GET1(&ly->in_norm, K(k, "%slayers.%d.input_layernorm.weight", pfx, i), w)) ||
            (rc = GET1(&ly->post_norm,
                       K(k, "%slayers.%d.post_attention_layernorm.weight", pfx, i), w)))
            return rc;
    }
    if ((rc = GET2(&ly->q, K(k, "%slayers.%d.self_attn.q_proj.weight", pfx, i),
                   tc->n_heads * hd, w)) ||
        (rc = GET2(&ly->k, K(k, "%slayers.%d.self_attn.k_proj.weight", pfx, i),
                   tc->n_kv_heads * hd, w)) ||
        (rc = GET2(&ly->v, K(k, "%slayers.%d.self_attn.v_proj.weight", pfx, i),
                   tc->n_kv_heads * hd, w)) ||
        (rc = GET2(&ly->o, K(k, "%slayers.%d.self_attn.o_proj.weight", pfx, i), w,
                   tc->n_heads * hd)) ||
        (rc = GET2(&ly->gate, K(k, "%slayers.%d.mlp.gate_proj.weight", pfx, i), tc->mlp, w)) ||
        (rc = GET2(&ly->up, K(k, "%slayers.%d.mlp.up_proj.weight", pfx, i), tc->mlp, w)) ||
        (rc = GET2(&ly->down, K(k, "%slayers.%d.mlp.down_proj.weight", pfx, i), w, tc->mlp)))
        return rc;
    return 0;
}

static int map_tensors(ctx *c, pi0_weights *w, const cJSON *cfgj, const char *cfg_path) {
    pi0_config *cf = &w->cfg;
    char k[KEY_MAX];
    pi0_tensor t0;
    int rc;

    // vision sizes
    if ((rc = get(c, &w->patch_w, V "embeddings.patch_embedding.weight", 0, 4, -1, 3, -1, -1)))
        return rc;
    int vw = (int)w->patch_w.shape[0], p = (int)w->patch_w.shape[2];
    if (w->patch_w.shape[3] != p || p <= 0)
        return pi0_errorf(PI0_ESHAPE, "%s: tensor %s: patch is not square", c->dir,
                          w->patch_w.name);
    cf->image = PI0_IMAGE_SIZE; /* fixed by preprocessing */
    if (cf->image % p)
        return pi0_errorf(PI0_ESHAPE,
                          "%s: tensor %s: patch %d does not divide the image side %d", c->dir,
                          w->patch_w.name, p, cf->image);
    cf->patch = p;
    cf->n_patches = (cf->image / p) * (cf->image / p);
    cf->vision.width = vw;
    if ((cf->vision.depth = count_layers(c, V "encoder.layers.")) < 0) return cf->vision.depth;
    if (!cf->vision.depth)
        return pi0_errorf(
            PI0_ENOENT, "%s: missing tensor " V "encoder.layers.0.layer_norm1.weight", c->dir);
    if ((rc = get(c, &t0, K(k, V "encoder.layers.0.mlp.fc1.weight"), 0, 2, -1, vw, -1, -1)))
        return rc;
    cf->vision.mlp = (int)t0.shape[0];
    {
        const char *n[] = {"vision_num_heads", NULL};
        int h = 0, g = cfg_int(cfg_path, cfgj, n, &h, 1, 4096);
        if (g < 0) return g;
        if (!g) {
            if (vw != 1152)
                return pi0_errorf(PI0_ECONFIG,
                                  "%s: cannot tell the vision head count for width %d: give "
                                  "vision_num_heads",
                                  cfg_path, vw);
            h = 16;
        }
        if (vw % h)
            return pi0_errorf(PI0_ECONFIG, "%s: vision_num_heads %d does not divide width %d",
                              cfg_path, h, vw);
        cf->vision.n_heads = cf->vision.n_kv_heads = h;
        cf->vision.head_dim = vw / h;
    }
    // vision tensors
    if ((rc = GET1(&w->patch_b, V "embeddings.patch_embedding.bias", vw)) ||
        (rc = GET2(&w->pos_emb, V "embeddings.position_embedding.weight", cf->n_patches, vw)))
        return rc;
    w->vision = calloc((size_t)cf->vision.depth, sizeof *w->vision);
    if (!w->vision) return pi0_errorf(PI0_ENOMEM, "%s: out of memory", c->dir);
    for (int i = 0; i < cf->vision.depth; i++) {
        pi0_vision_layer *ly = &w->vision[i];
        int m = cf->vision.mlp;
#define VL V "encoder.layers.%d."
        if ((rc = GET1(&ly->ln1_w, K(k, VL "layer_norm1.weight", i), vw)) ||
            (rc = GET1(&ly->ln1_b, K(k, VL "layer_norm1.bias", i), vw)) ||
            (rc = GET2(&ly->q_w, K(k, VL "self_attn.q_proj.weight", i), vw, vw)) ||
            (rc = GET1(&ly->q_b, K(k, VL "self_attn.q_proj.bias", i), vw)) ||
            (rc = GET2(&ly->k_w, K(k, VL "self_attn.k_proj.weight", i), vw, vw)) ||
            (rc = GET1(&ly->k_b, K(k, VL "self_attn.k_proj.bias", i), vw)) ||
            (rc = GET2(&ly->v_w, K(k, VL "self_attn.v_proj.weight", i), vw, vw)) ||
            (rc = GET1(&ly->v_b, K(k, VL "self_attn.v_proj.bias", i), vw)) ||
            (rc = GET2(&ly->o_w, K(k, VL "self_attn.out_proj.weight", i), vw, vw)) ||
            (rc = GET1(&ly->o_b, K(k, VL "self_attn.out_proj.bias", i), vw)) ||
            (rc = GET1(&ly->ln2_w, K(k, VL "layer_norm2.weight", i), vw)) ||
            (rc = GET1(&ly->ln2_b, K(k, VL "layer_norm2.bias", i), vw)) ||
            (rc = GET2(&ly->fc1_w, K(k, VL "mlp.fc1.weight", i), m, vw)) ||
            (rc = GET1(&ly->fc1_b, K(k, VL "mlp.fc1.bias", i), m)) ||
            (rc = GET2(&ly->fc2_w, K(k, VL "mlp.fc2.weight", i), vw, m)) ||
            (rc = GET1(&ly->fc2_b, K(k, VL "mlp.fc2.bias", i), vw)))
            return rc;
#undef VL
    }
    if ((rc = GET1(&w->post_ln_w, V "post_layernorm.weight", vw)) ||
        (rc = GET1(&w->post_ln_b, V "post_layernorm.bias", vw)))
        return rc;

    // language model sizes
    if (!lookup(c->x, L "embed_tokens.weight") && !lookup(c->x, PG "lm_head.weight"))
        return pi0_errorf(PI0_ENOENT,
                          "%s: missing tensor " L "embed_tokens.weight (nor the tied " PG
                          "lm_head.weight)",
                          c->dir);
    if ((rc = get(c, &w->embed,
                  lookup(c->x, L "embed_tokens.weight") ? L "embed_tokens.weight"
                                                        : PG "lm_head.weight",
                  0, 2, -1, -1, -1, -1)))
        return rc;
    pi0_tower_config *lm = &cf->vlm, *ex = &cf->expert;
    lm->vocab = (int)w->embed.shape[0];
    lm->width = (int)w->embed.shape[1];
    if (lm->vocab <= 0 || lm->width <= 0)
        return pi0_errorf(PI0_ESHAPE, "%s: tensor %s is empty", c->dir, w->embed.name);
    if ((rc =
             GET2(&w->proj_w, PG "model.multi_modal_projector.linear.weight", lm->width, vw)) ||
        (rc = GET1(&w->proj_b, PG "model.multi_modal_projector.linear.bias", lm->width)))
        return rc;
    if ((lm->depth = count_layers(c, L "layers.")) < 0) return lm->depth;
    if (!lm->depth)
        return pi0_errorf(PI0_ENOENT,
                          "%s: missing tensor " L "layers.0.self_attn.q_proj.weight", c->dir);
    pi0_tensor q0, k0;
    if ((rc = get(c, &q0, L "layers.0.self_attn.q_proj.weight", 0, 2, -1, lm->width, -1, -1)) ||
        (rc = get(c, &k0, L "layers.0.self_attn.k_proj.weight", 0, 2, -1, lm->width, -1, -1)) ||
        (rc = get(c, &t0, L "layers.0.mlp.gate_proj.weight", 0, 2, -1, lm->width, -1, -1)))
        return rc;
    lm->mlp = (int)t0.shape[0];
    if ((rc = gemma_heads(cfg_path, cfgj, "VLM", "vlm", "paligemma_variant", lm, q0.shape[0],
                          k0.shape[0])))
        return rc;

    // expert sizes
    ex->vocab = 0;
    if ((ex->depth = count_layers(c, E "layers.")) < 0) return ex->depth;
    if (!ex->depth)
        return pi0_errorf(PI0_ENOENT,
                          "%s: missing tensor " E "layers.0.self_attn.q_proj.weight", c->dir);
    if ((rc = get(c, &q0, E "layers.0.self_attn.q_proj.weight", 0, 2, -1, -1, -1, -1)))
        return rc;
    ex->width = (int)q0.shape[1];
    if ((rc = get(c, &k0, E "layers.0.self_attn.k_proj.weight", 0, 2, -1, ex->width, -1, -1)) ||
        (rc = get(c, &t0, E "layers.0.mlp.gate_proj.weight", 0, 2, -1, ex->width, -1, -1)))
        return rc;
    ex->mlp = (int)t0.shape[0];
    if ((rc = gemma_heads(cfg_path, cfgj, "action expert", "expert", "action_expert_variant",
                          ex, q0.shape[0], k0.shape[0])))
        return rc;

    // π0 or π0.5
    int has05 = lookup(c->x, "time_mlp_in.weight") != NULL;
    int has0 = lookup(c->x, "action_time_mlp_in.weight") || lookup(c->x, "state_proj.weight");
    if (has05 && has0)
        return pi0_errorf(PI0_EFORMAT,
                          "%s: has both π0 (state_proj / action_time_mlp_in) and π0.5 "
                          "(time_mlp_in) tensors",
                          c->dir);
    cf->pi05 = has05;
    int E_ = ex->width;

    // layers
    w->vlm = calloc((size_t)lm->depth, sizeof *w->vlm);
    w->expert = calloc((size_t)ex->depth, sizeof *w->expert);
    if (!w->vlm || !w->expert) return pi0_errorf(PI0_ENOMEM, "%s: out of memory", c->dir);
    for (int i = 0; i < lm->depth; i++)
        if ((rc = map_gemma_layer(c, &w->vlm[i], L, i, lm, 0, 0))) return rc;
    if ((rc = get(c, &w->vlm_norm, L "norm.weight", 1, 1, lm->width, -1, -1, -1))) return rc;
    for (int i = 0; i < ex->depth; i++)
        if ((rc = map_gemma_layer(c, &w->expert[i], E, i, ex, cf->pi05, E_))) return rc;
    if (cf->pi05) {
        if ((rc = GET2(&w->expert_norm, E "norm.dense.weight", 3 * E_, E_)) ||
            (rc = GET1(&w->expert_norm_b, E "norm.dense.bias", 3 * E_)))
            return rc;
    } else if ((rc = GET1(&w->expert_norm, E "norm.weight", E_))) {
        return rc;
    }

    /* They attend jointly layer by layer (openpi concatenates their q/k/v per head).
     * Checked after mapping both, so a missing layer tensor is named first. */
    if (lm->depth != ex->depth || lm->head_dim != ex->head_dim || lm->n_heads != ex->n_heads ||
        lm->n_kv_heads != ex->n_kv_heads)
        return pi0_errorf(
            PI0_ECONFIG,
            "%s: VLM (depth %d, %d heads, %d kv heads, head_dim %d) and action expert "
            "(depth %d, %d heads, %d kv heads, head_dim %d) must agree",
            c->dir, lm->depth, lm->n_heads, lm->n_kv_heads, lm->head_dim, ex->depth,
            ex->n_heads, ex->n_kv_heads, ex->head_dim);

    // heads
    if ((rc = get(c, &w->action_in_w, "action_in_proj.weight", 0, 2, E_, -1, -1, -1)))
        return rc;
    int A = (int)w->action_in_w.shape[1];
    cf->action_dim = A;
    if ((rc = GET1(&w->action_in_b, "action_in_proj.bias", E_)) ||
        (rc = GET2(&w->action_out_w, "action_out_proj.weight", A, E_)) ||
        (rc = GET1(&w->action_out_b, "action_out_proj.bias", A)))
        return rc;
    if (cf->pi05) {
        cf->state_dim = A;
        if ((rc = GET2(&w->time_in_w, "time_mlp_in.weight", E_, E_)) ||
            (rc = GET1(&w->time_in_b, "time_mlp_in.bias", E_)) ||
            (rc = GET2(&w->time_out_w, "time_mlp_out.weight", E_, E_)) ||
            (rc = GET1(&w->time_out_b, "time_mlp_out.bias", E_)))
            return rc;
    } else {
        if ((rc = get(c, &w->state_proj_w, "state_proj.weight", 0, 2, E_, -1, -1, -1)))
            return rc;
        cf->state_dim = (int)w->state_proj_w.shape[1];
        if ((rc = GET1(&w->state_proj_b, "state_proj.bias", E_)) ||
            (rc = GET2(&w->time_in_w, "action_time_mlp_in.weight", E_, 2 * E_)) ||
            (rc = GET1(&w->time_in_b, "action_time_mlp_in.bias", E_)) ||
            (rc = GET2(&w->time_out_w, "action_time_mlp_out.weight", E_, E_)) ||
            (rc = GET1(&w->time_out_b, "action_time_mlp_out.bias", E_)))
            return rc;
    }
    return 0;
}

/* Prints one warning line naming the checkpoint's tensors the model did not take (a
 * fine-tune's extra adapter, a misspelt key): loading goes on, but not silently. Tensors
 * released checkpoints carry and the model does not need are not reported. */
static void warn_unused(const ctx *c) {
    static const char *const known[] = {
        PG "lm_head.weight",                                 /* tied to embed_tokens */
        "paligemma_with_expert.gemma_expert.lm_head.weight", /* the expert has no head */
        E "embed_tokens.weight",
        "normalize_inputs.",
        "normalize_targets.",
        "unnormalize_outputs.", /* lerobot's normalization buffers */
    };
    const struct wfiles *x = c->x;
    int n = 0, first = -1;
    for (int i = 0; i < x->n; i++) {
        if (x->used[i]) continue;
        int k = 0;
        for (; k < (int)(sizeof known / sizeof known[0]); k++)
            if (starts(x->canon[i], known[k])) break;
        if (k < (int)(sizeof known / sizeof known[0])) continue;
        if (first < 0) first = i;
        n++;
    }
    if (n)
        fprintf(stderr, "pi0rt: warning: %s: %d tensor%s the model does not use, e.g. %s\n",
                c->dir, n, n == 1 ? "" : "s", x->tens[first]->name);
}

// ---- config.json ------------------------------------------------------------------

static int apply_config(pi0_weights *w, const cJSON *j, const char *path) {
    pi0_config *cf = &w->cfg;
    int rc, v;
    /* π0 / π0.5 as said by the config must agree with the tensors. */
    const cJSON *jp = cJSON_GetObjectItemCaseSensitive(j, "pi05");
    const cJSON *jt = cJSON_GetObjectItemCaseSensitive(j, "type"); /* lerobot: "pi0" / "pi05" */
    int said[2] = {-1, -1};
    if (jp && !cJSON_IsNull(jp)) {
        if (!cJSON_IsBool(jp) && !cJSON_IsNumber(jp))
            return pi0_errorf(PI0_ECONFIG, "%s: pi05 must be true or false", path);
        said[0] = cJSON_IsBool(jp) ? cJSON_IsTrue(jp) : jp->valuedouble != 0;
    }
    if (cJSON_IsString(jt) &&
        (!strcmp(jt->valuestring, "pi0") || !strcmp(jt->valuestring, "pi05")))
        said[1] = !strcmp(jt->valuestring, "pi05");
    for (int i = 0; i < 2; i++)
        if (said[i] >= 0 && said[i] != cf->pi05)
            return pi0_errorf(PI0_ECONFIG, "%s: %s says %s but the tensors are %s (%s)", path,
                              i ? "type" : "pi05", said[i] ? "pi05" : "pi0",
                              cf->pi05 ? "π0.5" : "π0",
                              cf->pi05 ? "time_mlp_in.weight present"
                                       : "state_proj / action_time_mlp present");

    const char *n_ad[] = {"action_dim", "max_action_dim", NULL};
    if ((rc = cfg_int(path, j, n_ad, &v, 1, 1 << 20)) < 0) return rc;
    if (rc && v != cf->action_dim)
        return pi0_errorf(PI0_ECONFIG,
                          "%s: action_dim %d but action_in_proj.weight has %d columns", path, v,
                          cf->action_dim);
    const char *n_sd[] = {"max_state_dim", NULL};
    if ((rc = cfg_int(path, j, n_sd, &v, 1, 1 << 20)) < 0) return rc;
    if (rc && !cf->pi05 && v != cf->state_dim)
        return pi0_errorf(PI0_ECONFIG,
                          "%s: max_state_dim %d but state_proj.weight has %d columns", path, v,
                          cf->state_dim);
    if (rc && cf->pi05) cf->state_dim = v;

    const char *n_h[] = {"action_horizon", "chunk_size", NULL};
    cf->action_horizon = 50;
    if ((rc = cfg_int(path, j, n_h, &cf->action_horizon, 1, 4096)) < 0) return rc;
    const char *n_s[] = {"num_steps", "num_inference_steps", NULL};
    cf->num_steps = 10;
    if ((rc = cfg_int(path, j, n_s, &cf->num_steps, 1, 10000)) < 0) return rc;
    const char *n_t[] = {"max_token_len", "tokenizer_max_length", NULL};
    cf->max_token_len = cf->pi05 ? 200 : 48;
    if ((rc = cfg_int(path, j, n_t, &cf->max_token_len, 1, 65536)) < 0) return rc;
    cf->discrete_state_input = cf->pi05;
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(j, "discrete_state_input");
    if (jd && !cJSON_IsNull(jd)) {
        if (!cJSON_IsBool(jd))
            return pi0_errorf(PI0_ECONFIG, "%s: discrete_state_input must be true or false",
                              path);
        cf->discrete_state_input = cJSON_IsTrue(jd);
    }
    cf->ln_eps = 1e-6f;
    cf->rms_eps = 1e-6f;
    cf->rope_theta = 10000.0f;
    return 0;
}

// ---- norm_stats.json --------------------------------------------------------------

static int stats_array(const char *path, const char *what, const cJSON *o, const char *name,
                       int optional, float **out, int *dim) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = NULL;
    if (!a || cJSON_IsNull(a)) {
        if (optional) return 0;
        return pi0_errorf(PI0_ECONFIG, "%s: %s.%s is missing", path, what, name);
    }
    int n = cJSON_GetArraySize(a);
    if (!cJSON_IsArray(a) || n <= 0 || n > (1 << 20))
        return pi0_errorf(PI0_ECONFIG, "%s: %s.%s must be a non-empty array of numbers", path,
                          what, name);
    if (*dim && n != *dim)
        return pi0_errorf(PI0_ECONFIG, "%s: %s.%s has %d values, mean has %d", path, what, name,
                          n, *dim);
    float *v = malloc((size_t)n * sizeof *v);
    if (!v) return pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble) || fabs(x->valuedouble) > 3e38) {
            free(v);
            return pi0_errorf(PI0_ECONFIG, "%s: %s.%s[%d] is not a finite number", path, what,
                              name, i);
        }
        v[i] = (float)x->valuedouble;
    }
    *out = v;
    *dim = n;
    return 0;
}

static int load_stats_one(const char *path, const cJSON *ns, const char *what,
                          pi0_norm_stats *s) {
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(ns, what);
    if (!o || cJSON_IsNull(o)) return 0;
    if (!cJSON_IsObject(o))
        return pi0_errorf(PI0_ECONFIG, "%s: %s is not an object", path, what);
    int rc, dim = 0;
    if ((rc = stats_array(path, what, o, "mean", 0, &s->mean, &dim)) ||
        (rc = stats_array(path, what, o, "std", 0, &s->std, &dim)) ||
        (rc = stats_array(path, what, o, "q01", 1, &s->q01, &dim)) ||
        (rc = stats_array(path, what, o, "q99", 1, &s->q99, &dim)))
        return rc;
    s->dim = dim;
    if (!s->q01 != !s->q99)
        return pi0_errorf(PI0_ECONFIG, "%s: %s has only one of q01 / q99", path, what);
    for (int i = 0; i < dim; i++) {
        if (s->std[i] < 0)
            return pi0_errorf(PI0_ECONFIG, "%s: %s.std[%d] = %g is negative", path, what, i,
                              (double)s->std[i]);
        if (s->q01 && s->q01[i] > s->q99[i])
            return pi0_errorf(PI0_ECONFIG, "%s: %s.q01[%d] = %g > q99 = %g", path, what, i,
                              (double)s->q01[i], (double)s->q99[i]);
    }
    return 0;
}

static int load_norm_stats(pi0_weights *w, const char *dir) {
    char *path = path_join(dir, "norm_stats.json");
    if (!path) return pi0_errorf(PI0_ENOMEM, "%s: out of memory", dir);
    int rc = 0;
    cJSON *j = NULL;
    if (!file_exists(path)) goto out;
    if ((rc = parse_json_file(path, &j))) goto out;
    const cJSON *ns = cJSON_GetObjectItemCaseSensitive(j, "norm_stats");
    if (!ns) ns = j;
    if (!cJSON_IsObject(ns)) {
        rc = pi0_errorf(PI0_ECONFIG, "%s: norm_stats is not an object", path);
        goto out;
    }
    if ((rc = load_stats_one(path, ns, "state", &w->state_stats)) ||
        (rc = load_stats_one(path, ns, "actions", &w->action_stats)))
        goto out;
    if (!w->state_stats.dim && !w->action_stats.dim) {
        rc = pi0_errorf(PI0_ECONFIG, "%s: neither \"state\" nor \"actions\" stats", path);
        goto out;
    }
    w->has_norm_stats = 1;
out:
    cJSON_Delete(j);
    free(path);
    return rc;
}

// ---- public -----------------------------------------------------------------------

static void free_stats(pi0_norm_stats *s) {
    free(s->mean);
    free(s->std);
    free(s->q01);
    free(s->q99);
}

void pi0_weights_destroy(pi0_weights *w) {
    if (!w) return;
    struct wfiles *x = files_of(w);
    for (int i = 0; i < x->n; i++)
        free(x->canon[i]);
    free(x->canon);
    free(x->tens);
    free(x->slots);
    free(x->used);
    for (int f = 0; f < x->n_files; f++)
        pi0__st_close(x->files[f]);
    free(x->files);
    free(w->vision);
    free(w->vlm);
    free(w->expert);
    free_stats(&w->state_stats);
    free_stats(&w->action_stats);
    free(w);
}

int pi0_weights_load(const char *dir, pi0_weights **out) {
    if (!dir || !out) return pi0_errorf(PI0_EINVAL, "pi0_weights_load: NULL argument");
    weights_alloc *wa = calloc(1, sizeof *wa);
    pi0_weights *w = wa ? &wa->pub : NULL;
    char *cfg_path = path_join(dir, "config.json");
    cJSON *cfgj = NULL;
    int rc = 0;
    if (!w || !cfg_path) {
        rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", dir);
        goto out;
    }
    if ((rc = parse_json_file(cfg_path, &cfgj))) goto out;
    if ((rc = open_files(&wa->x, dir))) goto out;
    if ((rc = build_index(&wa->x, dir))) goto out;
    ctx c = {dir, &wa->x};
    if ((rc = map_tensors(&c, w, cfgj, cfg_path))) goto out;
    warn_unused(&c);
    if ((rc = apply_config(w, cfgj, cfg_path))) goto out;
    if ((rc = load_norm_stats(w, dir))) goto out;
out:
    cJSON_Delete(cfgj);
    free(cfg_path);
    if (rc) {
        pi0_weights_destroy(w);
        return rc;
    }
    *out = w;
    return 0;
}

const pi0_tensor *pi0_weights_find(const pi0_weights *w, const char *key) {
    const struct wfiles *x = files_of(w);
    for (int f = 0; f < x->n_files; f++) {
        const pi0_tensor *t = pi0__st_find(x->files[f], key);
        if (t) return t;
    }
    char buf[KEY_MAX];
    if (canonical_key(key, buf, sizeof buf) != 0) return NULL;
    return lookup(x, buf);
}

int pi0_weights_count(const pi0_weights *w) {
    int n = 0;
    const struct wfiles *x = files_of(w);
    for (int f = 0; f < x->n_files; f++)
        n += pi0__st_count(x->files[f]);
    return n;
}
