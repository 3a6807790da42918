/* safetensors.c — mmap + validate one .safetensors file (see safetensors.h). */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/pi0_hash.h"

#define ST_MAX_HEADER (100u << 20)       /* same cap as the reference implementation */
#define ST_MAX_INT    9007199254740992.0 /* 2^53: exact in a JSON double */

struct pi0__st_file {
    char *path;
    void *map;
    size_t map_size;
    int n;
    pi0_tensor *t; /* [n] */
    int *slots;    /* open-addressing hash of names -> index, -1 empty; [n_slots] */
    int n_slots;
};

// ---- dtypes -----------------------------------------------------------------------

size_t pi0__st_dtype_parse(const char *name, pi0_dtype *dtype) {
    if (!strcmp(name, "F32")) {
        *dtype = PI0_F32;
        return 4;
    }
    if (!strcmp(name, "BF16")) {
        *dtype = PI0_BF16;
        return 2;
    }
    if (!strcmp(name, "F16")) {
        *dtype = PI0_F16;
        return 2;
    }
    return 0;
}

const char *pi0__st_dtype_name(pi0_dtype dtype) {
    switch (dtype) {
    case PI0_F32:
        return "F32";
    case PI0_BF16:
        return "BF16";
    case PI0_F16:
        return "F16";
    default:
        return "?";
    }
}

/* Returns the slot holding `key`, or the empty slot where it would go. */
static int slot_of(const pi0__st_file *f, const char *key) {
    unsigned mask = (unsigned)f->n_slots - 1;
    unsigned i = (unsigned)pi0__fnv1a_str(key) & mask;
    while (f->slots[i] >= 0 && strcmp(f->t[f->slots[i]].name, key) != 0)
        i = (i + 1) & mask;
    return (int)i;
}

// ---- parsing ----------------------------------------------------------------------

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_uint(const cJSON *j, uint64_t *out) {
    if (!cJSON_IsNumber(j)) return 0;
    double v = j->valuedouble;
    if (!(v >= 0.0 && v <= ST_MAX_INT) || v != (double)(uint64_t)v) return 0;
    *out = (uint64_t)v;
    return 1;
}

typedef struct span {
    uint64_t begin, end;
    int idx;
} span;

static int span_cmp(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int parse_entry(pi0__st_file *f, const cJSON *e, const uint8_t *data, uint64_t data_size,
                       uint64_t data_file_off, pi0_tensor *t, span *sp) {
    const char *path = f->path, *key = e->string;
    if (!cJSON_IsObject(e))
        return pi0_errorf(PI0_EFORMAT, "%s: tensor %.200s: header entry is not a JSON object",
                          path, key);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(jd) || !cJSON_IsArray(js) || !cJSON_IsArray(jo))
        return pi0_errorf(
            PI0_EFORMAT,
            "%s: tensor %.200s: entry needs string \"dtype\", array \"shape\" and "
            "array \"data_offsets\"",
            path, key);
    size_t esize = pi0__st_dtype_parse(jd->valuestring, &t->dtype);
    if (!esize)
        return pi0_errorf(PI0_ETYPE,
                          "%s: tensor %.200s: dtype %.40s is not supported (F32, BF16, F16)",
                          path, key, jd->valuestring);
    int nd = cJSON_GetArraySize(js);
    if (nd > PI0_TENSOR_MAX_DIMS)
        return pi0_errorf(PI0_ENOTSUP, "%s: tensor %.200s: %d dims (at most %d supported)",
                          path, key, nd, PI0_TENSOR_MAX_DIMS);
    t->ndim = nd;
    for (int d = 0; d < PI0_TENSOR_MAX_DIMS; d++)
        t->shape[d] = 1;
    uint64_t numel = 1;
    int d = 0;
    for (const cJSON *x = js->child; x; x = x->next, d++) {
        uint64_t v;
        if (!json_uint(x, &v))
            return pi0_errorf(PI0_EFORMAT,
                              "%s: tensor %.200s: shape[%d] is not a non-negative integer",
                              path, key, d);
        if (v && numel > (UINT64_MAX / 8) / v)
            return pi0_errorf(PI0_EFORMAT, "%s: tensor %.200s: shape is absurdly large", path,
                              key);
        numel *= v;
        t->shape[d] = (int64_t)v;
    }
    uint64_t b, en;
    if (cJSON_GetArraySize(jo) != 2 || !json_uint(jo->child, &b) ||
        !json_uint(jo->child->next, &en))
        return pi0_errorf(PI0_EFORMAT,
                          "%s: tensor %.200s: data_offsets must be two non-negative integers",
                          path, key);
    if (b > en || en > data_size)
        return pi0_errorf(
            PI0_EFORMAT,
            "%s: tensor %.200s: data_offsets [%llu, %llu] outside the data section "
            "of %llu bytes",
            path, key, (unsigned long long)b, (unsigned long long)en,
            (unsigned long long)data_size);
    if (en - b != numel * esize)
        return pi0_errorf(PI0_EFORMAT,
                          "%s: tensor %.200s: shape x dtype is %llu bytes but data_offsets "
                          "[%llu, %llu] span %llu",
                          path, key, (unsigned long long)(numel * esize), (unsigned long long)b,
                          (unsigned long long)en, (unsigned long long)(en - b));
    if ((data_file_off + b) % esize)
        return pi0_errorf(PI0_EFORMAT,
                          "%s: tensor %.200s: data at file offset %llu is not aligned to its "
                          "%zu-byte dtype",
                          path, key, (unsigned long long)(data_file_off + b), esize);
    t->data = data + b;
    sp->begin = b;
    sp->end = en;
    return 0;
}

static int parse_header(pi0__st_file *f) {
    const uint8_t *base = f->map;
    const char *path = f->path;
    if (f->map_size < 8)
        return pi0_errorf(PI0_EFORMAT,
                          "%s: file is %zu bytes, too short for the 8-byte header length", path,
                          f->map_size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | base[i];
    if (hlen > f->map_size - 8)
        return pi0_errorf(PI0_EFORMAT,
                          "%s: header length %llu exceeds the file (%zu bytes): truncated or "
                          "not a safetensors file",
                          path, (unsigned long long)hlen, f->map_size);
    if (hlen > ST_MAX_HEADER || hlen < 2)
        return pi0_errorf(PI0_EFORMAT, "%s: implausible header length %llu", path,
                          (unsigned long long)hlen);
    const char *hdr = (const char *)base + 8;
    if (hdr[0] != '{')
        return pi0_errorf(PI0_EFORMAT, "%s: header does not start with '{'", path);
    /* cJSON gets a NUL-terminated copy: in the file the header runs straight into the
     * data, and cJSON <= 1.7.17 reads one byte past an unterminated buffer. */
    char *txt = malloc((size_t)hlen + 1);
    if (!txt)
        return pi0_errorf(PI0_ENOMEM, "%s: out of memory for a %llu-byte header", path,
                          (unsigned long long)hlen);
    memcpy(txt, hdr, (size_t)hlen);
    txt[hlen] = 0;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(txt, (size_t)hlen, &end, 0);
    long at = end ? (long)(end - txt) : -1;
    int trailing = 0;
    for (const char *p = end; root && p < txt + hlen; p++)
        trailing |= *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r' && *p != '\0';
    free(txt);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return pi0_errorf(PI0_EFORMAT, "%s: header is not a valid JSON object (near byte %ld)",
                          path, at);
    }
    if (trailing) {
        cJSON_Delete(root);
        return pi0_errorf(PI0_EFORMAT, "%s: trailing bytes after the JSON header", path);
    }
    const uint8_t *data = base + 8 + hlen;
    uint64_t data_size = f->map_size - 8 - hlen;

    int n = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!e->string) {
            cJSON_Delete(root);
            return pi0_errorf(PI0_EFORMAT, "%s: bad header", path);
        }
        if (strcmp(e->string, "__metadata__") != 0) n++;
    }
    int rc = 0;
    span *sp = NULL;
    f->t = calloc((size_t)n + 1, sizeof *f->t);
    f->n_slots = 16;
    while (f->n_slots < 2 * n)
        f->n_slots *= 2;
    f->slots = malloc((size_t)f->n_slots * sizeof *f->slots);
    sp = calloc((size_t)n + 1, sizeof *sp);
    if (!f->t || !f->slots || !sp) {
        rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    for (int i = 0; i < f->n_slots; i++)
        f->slots[i] = -1;

    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                rc = pi0_errorf(PI0_EFORMAT, "%s: __metadata__ is not a JSON object", path);
                goto out;
            }
            continue;
        }
        int i = f->n;
        pi0_tensor *t = &f->t[i];
        rc = parse_entry(f, e, data, data_size, 8 + hlen, t, &sp[i]);
        if (rc) goto out;
        t->name = strdup(e->string);
        if (!t->name) {
            rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
            goto out;
        }
        f->n++;
        int s = slot_of(f, t->name);
        if (f->slots[s] >= 0) {
            rc = pi0_errorf(PI0_EFORMAT, "%s: tensor %.200s: listed twice in the header", path,
                            t->name);
            goto out;
        }
        f->slots[s] = i;
        sp[i].idx = i;
    }
    /* Overlap check, in offset order (the header may list tensors in any order). */
    qsort(sp, (size_t)f->n, sizeof *sp, span_cmp);
    uint64_t prev_end = 0;
    int prev = -1;
    for (int i = 0; i < f->n; i++) {
        if (sp[i].begin == sp[i].end) continue; /* empty tensors occupy nothing */
        if (prev >= 0 && sp[i].begin < prev_end) {
            rc = pi0_errorf(PI0_EFORMAT, "%s: tensor %.200s: data overlaps tensor %.200s", path,
                            f->t[sp[i].idx].name, f->t[prev].name);
            goto out;
        }
        prev_end = sp[i].end;
        prev = sp[i].idx;
    }
out:
    free(sp);
    cJSON_Delete(root);
    return rc;
}

// ---- public -----------------------------------------------------------------------

void pi0__st_close(pi0__st_file *f) {
    if (!f) return;
    if (f->t)
        for (int i = 0; i < f->n; i++)
            free((char *)f->t[i].name);
    free(f->t);
    free(f->slots);
    if (f->map) munmap(f->map, f->map_size);
    free(f->path);
    free(f);
}

int pi0__st_open(const char *path, pi0__st_file **out) {
    pi0__st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        return pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        pi0__st_close(f);
        return pi0_errorf(e == ENOENT ? PI0_ENOENT : PI0_EIO, "%s: cannot open: %s", path,
                          strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        pi0__st_close(f);
        return pi0_errorf(PI0_EIO, "%s: not a regular file", path);
    }
    f->map_size = (size_t)st.st_size;
    if (f->map_size > 0) {
        void *m = mmap(NULL, f->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            pi0__st_close(f);
            return pi0_errorf(PI0_EIO, "%s: mmap failed: %s", path, strerror(e));
        }
        f->map = m;
    }
    close(fd);
    int rc = parse_header(f);
    if (rc) {
        pi0__st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

const char *pi0__st_path(const pi0__st_file *f) {
    return f->path;
}
int pi0__st_count(const pi0__st_file *f) {
    return f->n;
}

const pi0_tensor *pi0__st_tensor(const pi0__st_file *f, int i) {
    PI0_ASSERT(i >= 0 && i < f->n);
    return &f->t[i];
}

const pi0_tensor *pi0__st_find(const pi0__st_file *f, const char *key) {
    int s = slot_of(f, key);
    return f->slots[s] >= 0 ? &f->t[f->slots[s]] : NULL;
}
