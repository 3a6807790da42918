/* npy.c — NumPy .npy reader / writer (see npy.h). */
#include "npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* numpy's descr of a dtype .npy files may hold, NULL for the others. */
static const char *npy_descr(pi0_dtype dtype) {
    switch (dtype) {
    case PI0_U8:
        return "|u1";
    case PI0_I32:
        return "<i4";
    case PI0_F32:
        return "<f4";
    case PI0_F64:
        return "<f8";
    default:
        return NULL;
    }
}

/* numpy's name of a dtype, for messages. */
static const char *numpy_name(pi0_dtype dtype) {
    switch (dtype) {
    case PI0_U8:
        return "uint8";
    case PI0_I32:
        return "int32";
    case PI0_F32:
        return "float32";
    case PI0_F64:
        return "float64";
    default:
        return pi0_dtype_name(dtype);
    }
}

// ---- header parsing ---------------------------------------------------------------

/* A tiny parser for the header's Python dict literal:
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } */
typedef struct cur {
    const char *p, *end;
} cur;

static void skip_ws(cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static int eat(cur *c, char ch) {
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

/* Quoted string ('x' or "x") into buf. */
static int str_lit(cur *c, char *buf, size_t cap) {
    skip_ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return 0;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap) return 0;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end) return 0;
    c->p++;
    buf[n] = 0;
    return 1;
}

static int word(cur *c, const char *w) {
    skip_ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && !memcmp(c->p, w, n)) {
        c->p += n;
        return 1;
    }
    return 0;
}

static int parse_dict(const char *hdr, size_t len, const char *what, pi0_npy *out) {
    cur c = {hdr, hdr + len};
    char key[32], descr[32] = "";
    int have_descr = 0, have_fo = 0, have_shape = 0, fortran = 0;
    if (!eat(&c, '{')) return pi0_errorf(PI0_EFORMAT, "%s: .npy header is not a dict", what);
    for (;;) {
        if (eat(&c, '}')) break;
        if (!str_lit(&c, key, sizeof key) || !eat(&c, ':'))
            return pi0_errorf(PI0_EFORMAT, "%s: malformed .npy header", what);
        if (!strcmp(key, "descr")) {
            if (!str_lit(&c, descr, sizeof descr))
                return pi0_errorf(PI0_ETYPE, "%s: unsupported .npy descr (not a simple dtype)",
                                  what);
            have_descr = 1;
        } else if (!strcmp(key, "fortran_order")) {
            if (word(&c, "True"))
                fortran = 1;
            else if (word(&c, "False"))
                fortran = 0;
            else
                return pi0_errorf(PI0_EFORMAT, "%s: bad fortran_order in .npy header", what);
            have_fo = 1;
        } else if (!strcmp(key, "shape")) {
            if (!eat(&c, '('))
                return pi0_errorf(PI0_EFORMAT, "%s: bad shape in .npy header", what);
            int nd = 0;
            int64_t numel = 1;
            for (;;) {
                if (eat(&c, ')')) break;
                skip_ws(&c);
                if (c.p >= c.end || *c.p < '0' || *c.p > '9')
                    return pi0_errorf(PI0_EFORMAT, "%s: bad shape in .npy header", what);
                int64_t v = 0;
                while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                    if (v > (INT64_MAX - 9) / 10)
                        return pi0_errorf(PI0_EFORMAT, "%s: shape dimension too large", what);
                    v = v * 10 + (*c.p++ - '0');
                }
                if (c.p < c.end && *c.p == 'L') c.p++; /* Python 2 longs */
                if (nd >= PI0_NPY_MAX_DIMS)
                    return pi0_errorf(PI0_ENOTSUP, "%s: more than %d dims", what,
                                      PI0_NPY_MAX_DIMS);
                if (v && numel > (INT64_MAX / 8) / v)
                    return pi0_errorf(PI0_EFORMAT, "%s: shape is absurdly large", what);
                numel *= v;
                out->shape[nd++] = v;
                if (!eat(&c, ',')) {
                    if (!eat(&c, ')'))
                        return pi0_errorf(PI0_EFORMAT, "%s: bad shape in .npy header", what);
                    break;
                }
            }
            out->ndim = nd;
            out->numel = numel;
            have_shape = 1;
        } else {
            return pi0_errorf(PI0_EFORMAT, "%s: unexpected key '%s' in .npy header", what, key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                return pi0_errorf(PI0_EFORMAT, "%s: malformed .npy header", what);
            break;
        }
    }
    if (!have_descr || !have_fo || !have_shape)
        return pi0_errorf(PI0_EFORMAT, "%s: .npy header lacks descr, fortran_order or shape",
                          what);
    if (!strcmp(descr, "|u1") || !strcmp(descr, "<u1") || !strcmp(descr, "u1"))
        out->dtype = PI0_U8;
    else if (!strcmp(descr, "<i4"))
        out->dtype = PI0_I32;
    else if (!strcmp(descr, "<f4"))
        out->dtype = PI0_F32;
    else if (!strcmp(descr, "<f8"))
        out->dtype = PI0_F64;
    else
        return pi0_errorf(PI0_ETYPE,
                          "%s: dtype '%s' is not supported (uint8 '|u1', int32 '<i4', "
                          "float32 '<f4', float64 '<f8')",
                          what, descr);
    if (fortran)
        return pi0_errorf(PI0_ETYPE,
                          "%s: fortran_order arrays are not supported (save C order)", what);
    return 0;
}

/* Parses magic + header from the first `avail` bytes; *hdr_end = offset of the data. */
static int parse_header(const uint8_t *b, size_t avail, const char *what, pi0_npy *out,
                        size_t *hdr_end) {
    memset(out, 0, sizeof *out);
    for (int i = 0; i < PI0_NPY_MAX_DIMS; i++)
        out->shape[i] = 1;
    if (avail < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return pi0_errorf(PI0_EFORMAT, "%s: not a .npy file (bad magic)", what);
    int major = b[6];
    size_t hl, off;
    if (major == 1) {
        hl = (size_t)b[8] | (size_t)b[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (avail < 12) return pi0_errorf(PI0_EFORMAT, "%s: truncated .npy header", what);
        hl = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        off = 12;
    } else {
        return pi0_errorf(PI0_EVERSION, "%s: .npy format version %d.%d is not supported", what,
                          major, b[7]);
    }
    if (hl > avail - off) return pi0_errorf(PI0_EFORMAT, "%s: truncated .npy header", what);
    int rc = parse_dict((const char *)b + off, hl, what, out);
    if (rc) {
        memset(out, 0, sizeof *out);
        return rc;
    }
    *hdr_end = off + hl;
    return 0;
}

static int check_size(pi0_npy *a, size_t size, size_t off, const char *what) {
    uint64_t need = (uint64_t)a->numel * pi0_dtype_size(a->dtype);
    if ((uint64_t)(size - off) == need) return 0;
    int64_t numel = a->numel;
    memset(a, 0, sizeof *a);
    return pi0_errorf(PI0_EFORMAT,
                      "%s: data is %zu bytes but the shape needs %llu (%lld "
                      "elements): %s",
                      what, size - off, (unsigned long long)need, (long long)numel,
                      (uint64_t)(size - off) < need ? "truncated" : "trailing bytes");
}

int pi0_npy_parse(const void *buf, size_t size, const char *what, pi0_npy *out,
                  size_t *data_off) {
    size_t off = 0;
    int rc = parse_header(buf, size, what, out, &off);
    if (!rc) rc = check_size(out, size, off, what);
    if (!rc) *data_off = off;
    return rc;
}

// ---- files ------------------------------------------------------------------------

void pi0_npy_free(pi0_npy *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

int pi0_npy_read(const char *path, pi0_npy *out) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return pi0_errorf(errno == ENOENT ? PI0_ENOENT : PI0_EIO, "%s: cannot open: %s", path,
                          strerror(errno));
    struct stat st = {0};
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return pi0_errorf(PI0_EIO, "%s: %s", path,
                          S_ISDIR(st.st_mode) ? "is a directory, not a file"
                                              : "not a regular file");
    }
    size_t size = (size_t)st.st_size;
    /* The header (numpy keeps it far below 64 KiB), then the data into an aligned buffer. */
    static const size_t HEAD = 65536 + 16;
    uint8_t *head = malloc(HEAD);
    if (!head) {
        fclose(fp);
        return pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
    }
    size_t want = size < HEAD ? size : HEAD;
    size_t got = fread(head, 1, want, fp);
    pi0_npy a;
    size_t off = 0;
    int rc = got != want ? pi0_errorf(PI0_EIO, "%s: read error", path)
                         : parse_header(head, got, path, &a, &off);
    if (!rc) rc = check_size(&a, size, off, path);
    void *data = NULL;
    size_t nbytes = rc ? 0 : (size_t)a.numel * pi0_dtype_size(a.dtype);
    if (!rc && posix_memalign(&data, 64, nbytes ? nbytes : 64) != 0) {
        data = NULL;
        rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory for %zu bytes", path, nbytes);
    }
    if (!rc) {
        size_t from_head = got - off < nbytes ? got - off : nbytes;
        memcpy(data, head + off, from_head);
        if (nbytes > from_head &&
            fread((uint8_t *)data + from_head, 1, nbytes - from_head, fp) != nbytes - from_head)
            rc = pi0_errorf(PI0_EIO, "%s: read error (file changed while reading?)", path);
    }
    free(head);
    fclose(fp);
    if (rc) {
        free(data);
        return rc;
    }
    a.data = data;
    *out = a;
    return 0;
}

const char *pi0__shape_format(char *buf, size_t cap, const int64_t *shape, int ndim,
                              const char *brackets) {
    size_t o = 0;
    int n = snprintf(buf, cap, "%c", brackets[0]);
    for (int i = 0; i < ndim && n >= 0 && (o += (size_t)n) < cap; i++)
        n = shape[i] < 0
                ? snprintf(buf + o, cap - o, "%s*", i ? ", " : "")
                : snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n >= 0 && (o += (size_t)n) < cap) snprintf(buf + o, cap - o, "%c", brackets[1]);
    return buf;
}

int pi0__shape_matches(const int64_t *shape, int ndim, const int64_t *want, int want_ndim) {
    if (ndim != want_ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (want[i] >= 0 && shape[i] != want[i]) return 0;
    return 1;
}

int pi0_npy_to_f32(pi0_npy *a, const char *what) {
    if (a->dtype == PI0_F32) return 0;
    if (a->dtype != PI0_F64)
        return pi0_errorf(PI0_ETYPE, "%s: dtype is %s, expected float32 or float64", what,
                          npy_descr(a->dtype));
    const double *d = a->data;
    float *f = a->data; /* f[i] is written after d[i] was read, and i*4 <= i*8 */
    for (int64_t i = 0; i < a->numel; i++) {
        double x = d[i];
        f[i] = (float)x;
    }
    a->dtype = PI0_F32;
    return 0;
}

int pi0_npy_expect(const pi0_npy *a, const char *what, pi0_dtype dtype, int ndim,
                   const int64_t *want) {
    if (a->dtype != dtype)
        return pi0_errorf(PI0_ETYPE, "%s: dtype is %s, expected %s", what, numpy_name(a->dtype),
                          numpy_name(dtype));
    if (!pi0__shape_matches(a->shape, a->ndim, want, ndim)) {
        char got[192], exp[192];
        return pi0_errorf(PI0_ESHAPE, "%s: shape is %s, expected %s", what,
                          pi0__shape_format(got, sizeof got, a->shape, a->ndim, "()"),
                          pi0__shape_format(exp, sizeof exp, want, ndim, "()"));
    }
    return 0;
}

int pi0_npy_write(const char *path, pi0_dtype dtype, int ndim, const int64_t *shape,
                  const void *data) {
    if (ndim < 0 || ndim > PI0_NPY_MAX_DIMS || !npy_descr(dtype))
        return pi0_errorf(PI0_EINVAL, "%s: bad dtype or ndim %d", path, ndim);
    char dict[512];
    size_t o = 0;
    int64_t numel = 1;
    o += (size_t)snprintf(dict + o, sizeof dict - o,
                          "{'descr': '%s', 'fortran_order': False, 'shape': (",
                          npy_descr(dtype));
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return pi0_errorf(PI0_EINVAL, "%s: negative shape", path);
        numel *= shape[i];
        o += (size_t)snprintf(dict + o, sizeof dict - o, "%s%lld", i ? ", " : "",
                              (long long)shape[i]);
    }
    o += (size_t)snprintf(dict + o, sizeof dict - o, "%s), }", ndim == 1 ? "," : "");
    size_t total = 10 + o + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hl = o + pad + 1;
    uint8_t pre[10] = {
        0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hl & 0xff), (uint8_t)(hl >> 8)};
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *fp = fopen(tmp, "wb");
    if (!fp) return pi0_errorf(PI0_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    size_t nbytes = (size_t)numel * pi0_dtype_size(dtype);
    int ok = fwrite(pre, 1, 10, fp) == 10 && fwrite(dict, 1, o, fp) == o;
    for (size_t i = 0; ok && i < pad; i++)
        ok = fputc(' ', fp) != EOF;
    ok = ok && fputc('\n', fp) != EOF && (nbytes == 0 || fwrite(data, 1, nbytes, fp) == nbytes);
    if (fclose(fp) != 0) ok = 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return pi0_errorf(PI0_EIO, "%s: write failed: %s", path, strerror(errno));
    }
    return 0;
}
