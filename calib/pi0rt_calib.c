/* pi0rt-calib — inspect, validate and apply a robot file (show, check, state, actions).
 * Arrays come and go as .npy files; the small reader/writer below keeps calib free of the
 * pipeline module (it takes little-endian float32/float64 C-order arrays of up to 3 dims). */
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pi0_calib.h"
#include "common/pi0_cli.h"
#include "common/pi0_file.h"

static const char USAGE[] =
    "usage: pi0rt-calib COMMAND ROBOT.ini [options]\n"
    "\n"
    "  show ROBOT.ini       the resolved transform, per dim\n"
    "  check ROBOT.ini      validate only (exit 0: valid)\n"
    "  state ROBOT.ini --in RAW.npy --out MODEL.npy\n"
    "                       raw robot state [n] or [T, n] -> model-space state\n"
    "                       [state_dim] or [T, state_dim] (float64)\n"
    "  actions ROBOT.ini --in CHUNK.npy --state RAW.npy --out ROBOT.npy\n"
    "                       model-space chunk [H, D] (D >= the file's action dims, float32\n"
    "                       or float64; float64 is rounded to float32 first) and the raw\n"
    "                       robot state [n] of its observation -> robot actions\n"
    "                       [H, out_dims] float32. A batch [T, H, D] with states [T, n]\n"
    "                       gives [T, H, out_dims].\n"
    "\n"
    "  -h, --help           this text\n"
    "Exit status: 0 ok, 1 failure (the message names the file, line and key), 2 usage.\n";

// ---- .npy ------------------------------------------------------------------------------

typedef struct arr {
    int ndim;
    int64_t shape[3];
    int64_t n;
    double *v; /* [n] */
} arr;

#define NPY_MAX_BYTES (1ull << 31)

/* The value of `'key':` in a numpy header dict, or NULL. */
static const char *hdr_field(const char *h, const char *key) {
    char k[32];
    snprintf(k, sizeof k, "'%s':", key);
    const char *p = strstr(h, k);
    if (!p) return NULL;
    p += strlen(k);
    while (*p == ' ')
        p++;
    return p;
}

static int npy_read(const char *path, arr *a) {
    char *buf;
    size_t len;
    int rc = pi0__read_file(path, NPY_MAX_BYTES, &buf, &len);
    if (rc) return rc;
    rc = PI0_EFORMAT;
    const char *why = "not an .npy file";
    if (len < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) goto bad;
    size_t hl, off;
    if (buf[6] == 1) {
        hl = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8;
        off = 10;
    } else if ((buf[6] == 2 || buf[6] == 3) && len >= 12) {
        hl = (unsigned char)buf[8] | (size_t)(unsigned char)buf[9] << 8 |
             (size_t)(unsigned char)buf[10] << 16 | (size_t)(unsigned char)buf[11] << 24;
        off = 12;
    } else {
        why = "unsupported .npy version";
        goto bad;
    }
    if (hl > len - off || hl > 65536) {
        why = "truncated header";
        goto bad;
    }
    char hdr[65537];
    memcpy(hdr, buf + off, hl);
    hdr[hl] = 0;
    off += hl;
    const char *d = hdr_field(hdr, "descr"), *f = hdr_field(hdr, "fortran_order"),
               *s = hdr_field(hdr, "shape");
    if (!d || !f || !s || *s != '(') {
        why = "bad header";
        goto bad;
    }
    int f8;
    if (!strncmp(d, "'<f8'", 5))
        f8 = 1;
    else if (!strncmp(d, "'<f4'", 5))
        f8 = 0;
    else {
        why = "dtype is not float32 or float64 (<f4, <f8)";
        rc = PI0_ETYPE;
        goto bad;
    }
    if (strncmp(f, "False", 5) != 0) {
        why = "fortran order";
        rc = PI0_ETYPE;
        goto bad;
    }
    a->ndim = 0;
    a->n = 1;
    s++;
    for (;;) {
        while (*s == ' ' || *s == ',')
            s++;
        if (*s == ')') break;
        char *e;
        long long x = strtoll(s, &e, 10);
        if (e == s || x < 0 || x > (1ll << 31) || a->ndim == 3 ||
            (x && a->n > (1ll << 40) / x)) {
            why = "bad shape (at most 3 dims)";
            rc = PI0_ESHAPE;
            goto bad;
        }
        a->shape[a->ndim++] = x;
        a->n *= x;
        s = e;
    }
    size_t es = f8 ? 8 : 4;
    if ((size_t)a->n * es != len - off) {
        why = "data size does not match the shape";
        goto bad;
    }
    a->v = malloc((size_t)(a->n ? a->n : 1) * sizeof *a->v);
    if (!a->v) {
        free(buf);
        return pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
    }
    for (int64_t i = 0; i < a->n; i++) {
        if (f8) {
            memcpy(&a->v[i], buf + off + (size_t)i * 8, 8);
        } else {
            float x;
            memcpy(&x, buf + off + (size_t)i * 4, 4);
            a->v[i] = x;
        }
    }
    free(buf);
    return PI0_OK;
bad:
    free(buf);
    return pi0_errorf(rc, "%s: %s", path, why);
}

/* Writes float32 (f8 = 0) or float64 data as .npy 1.0; the header is padded to 64 bytes. */
static int npy_write(const char *path, int f8, int ndim, const int64_t *shape,
                     const void *data) {
    char hdr[256], sh[96] = "";
    size_t n = 1, o = 0;
    for (int i = 0; i < ndim; i++) {
        o += (size_t)snprintf(sh + o, sizeof sh - o, "%lld,%s", (long long)shape[i],
                              i + 1 < ndim ? " " : "");
        n *= (size_t)shape[i];
    }
    if (ndim > 1) sh[o - 1] = 0; /* (2, 3) but (2,) */
    int hl = snprintf(hdr + 10, sizeof hdr - 10,
                      "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                      f8 ? "<f8" : "<f4", sh);
    int total = 10 + hl + 1;
    int pad = (64 - total % 64) % 64;
    memset(hdr + 10 + hl, ' ', (size_t)pad);
    hdr[10 + hl + pad] = '\n';
    total += pad;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    hdr[8] = (char)((total - 10) & 0xff);
    hdr[9] = (char)((total - 10) >> 8);
    FILE *fp = fopen(path, "wb");
    if (!fp) return pi0_errorf(PI0_EIO, "%s: cannot create", path);
    size_t es = f8 ? 8 : 4;
    int ok = fwrite(hdr, 1, (size_t)total, fp) == (size_t)total &&
             (n == 0 || fwrite(data, es, n, fp) == n);
    ok &= fclose(fp) == 0;
    return ok ? PI0_OK : pi0_errorf(PI0_EIO, "%s: write failed", path);
}

// ---- commands --------------------------------------------------------------------------

static void show_limits(const pi0_calib *c) {
    const pi0_calib_limit *l = pi0_calib_limits(c);
    int any = 0;
    for (int j = 0; j < pi0_calib_out_dim(c); j++)
        any |= !isnan(l[j].lo) || !isnan(l[j].hi) || !isnan(l[j].max_step);
    if (!any) {
        printf("limits: none\n");
        return;
    }
    printf("limits (robot units; - = not set):\n");
    for (int j = 0; j < pi0_calib_out_dim(c); j++) {
        printf("  out %2d:", j);
        if (isnan(l[j].lo))
            printf("  lo -");
        else
            printf("  lo %g", l[j].lo);
        if (isnan(l[j].hi))
            printf("  hi -");
        else
            printf("  hi %g", l[j].hi);
        if (isnan(l[j].max_step))
            printf("  max_step -\n");
        else
            printf("  max_step %g\n", l[j].max_step);
    }
}

static int cmd_show(const pi0_calib *c, const char *path) {
    printf("robot file: %s\n", path);
    printf("name: %s\n", pi0_calib_name(c)[0] ? pi0_calib_name(c) : "-");
    if (pi0_calib_control_hz(c) > 0)
        printf("control_hz: %g\n", pi0_calib_control_hz(c));
    else
        printf("control_hz: - (not set)\n");
    printf("prompt: %s\n", pi0_calib_prompt(c) ? pi0_calib_prompt(c) : "- (not set)");
    printf("cameras:\n");
    for (int s = 0; s < PI0_CALIB_CAMERAS; s++) {
        const pi0_calib_camera *cam = pi0_calib_camera_get(c, s);
        printf("  %-18s %s%s\n", pi0_calib_slot_name(s),
               cam->topic[0] ? cam->topic : "(masked)", cam->rotate180 ? ", rotated 180°" : "");
    }
    size_t need = pi0_calib_describe(c, NULL, 0) + 1;
    char *buf = malloc(need);
    if (!buf) return pi0_errorf(PI0_ENOMEM, "out of memory");
    pi0_calib_describe(c, buf, need);
    fputs(buf, stdout);
    free(buf);
    show_limits(c);
    return 0;
}

/* Prefixes the last error with the file and row it came from. */
static int row_error(int rc, const char *path, int64_t row) {
    char detail[512];
    snprintf(detail, sizeof detail, "%s", pi0_last_error_for(rc)); /* errorf rewrites it */
    return pi0_errorf(rc, "%s: row %lld: %s", path, (long long)row, detail);
}

/* The raw state rows of --state / --in: [n] (one row) or [T, n]. */
static int rows_of(const arr *a, const char *what, int64_t *rows, int64_t *n) {
    if (a->ndim == 1)
        *rows = 1, *n = a->shape[0];
    else if (a->ndim == 2)
        *rows = a->shape[0], *n = a->shape[1];
    else
        return pi0_errorf(PI0_ESHAPE, "%s: expected [n] or [T, n], got %d dims", what, a->ndim);
    if (*n > PI0_CALIB_DIM_MAX)
        return pi0_errorf(PI0_ESHAPE, "%s: %lld joints, at most %d", what, (long long)*n,
                          PI0_CALIB_DIM_MAX);
    return PI0_OK;
}

static int cmd_state(const pi0_calib *c, const char *in, const char *outp) {
    arr a = {0};
    int rc = npy_read(in, &a);
    int64_t rows = 0, n = 0;
    if (!rc) rc = rows_of(&a, in, &rows, &n);
    const int sd = pi0_calib_state_dim(c);
    double *out = rc ? NULL : malloc((size_t)(rows ? rows : 1) * (size_t)sd * sizeof *out);
    if (!rc && !out) rc = pi0_errorf(PI0_ENOMEM, "out of memory");
    for (int64_t r = 0; !rc && r < rows; r++) {
        rc = pi0_calib_state_in(c, a.v + r * n, (int)n, out + r * sd);
        if (rc) rc = row_error(rc, in, r);
    }
    if (!rc) {
        int64_t shape[2] = {rows, sd};
        rc = a.ndim == 1 ? npy_write(outp, 1, 1, shape + 1, out)
                         : npy_write(outp, 1, 2, shape, out);
    }
    free(out);
    free(a.v);
    return rc;
}

static int cmd_actions(const pi0_calib *c, const char *in, const char *statep,
                       const char *outp) {
    arr ch = {0}, st = {0};
    float *chunk = NULL, *out = NULL;
    int rc = npy_read(in, &ch);
    if (!rc) rc = npy_read(statep, &st);
    int64_t rows = 0, n = 0, T = 1, H = 0, D = 0;
    if (!rc) rc = rows_of(&st, statep, &rows, &n);
    if (!rc) {
        if (ch.ndim == 2 && st.ndim == 1)
            H = ch.shape[0], D = ch.shape[1];
        else if (ch.ndim == 3 && st.ndim == 2)
            T = ch.shape[0], H = ch.shape[1], D = ch.shape[2];
        else
            rc = pi0_errorf(PI0_ESHAPE,
                            "%s: expected a chunk [H, D] with a state [n], or [T, H, D] with "
                            "[T, n] (got %d and %d dims)",
                            in, ch.ndim, st.ndim);
    }
    if (!rc && T != rows)
        rc = pi0_errorf(PI0_ESHAPE, "%s: %lld chunks but %s has %lld states", in, (long long)T,
                        statep, (long long)rows);
    if (!rc && (H < 1 || H > 1 << 20 || D < pi0_calib_action_dim(c) || D > 1 << 16))
        rc = pi0_errorf(PI0_ESHAPE, "%s: chunk [%lld, %lld]: the robot file needs [H, >= %d]",
                        in, (long long)H, (long long)D, pi0_calib_action_dim(c));
    const int od = pi0_calib_out_dim(c);
    if (!rc) {
        chunk = malloc((size_t)(T * H * D) * sizeof *chunk);
        out = malloc((size_t)(T * H * od) * sizeof *out);
        if (!chunk || !out) rc = pi0_errorf(PI0_ENOMEM, "out of memory");
    }
    if (!rc)
        for (int64_t i = 0; i < T * H * D; i++)
            chunk[i] = (float)ch.v[i];
    double state[PI0_CALIB_DIM_MAX];
    for (int64_t t = 0; !rc && t < T; t++) {
        rc = pi0_calib_state_in(c, st.v + t * n, (int)n, state);
        if (rc) {
            rc = row_error(rc, statep, t);
            break;
        }
        rc = pi0_calib_actions_out(c, chunk + t * H * D, (int)H, (int)D, state,
                                   out + t * H * od);
    }
    if (!rc) {
        int64_t shape[3] = {T, H, od};
        rc = ch.ndim == 2 ? npy_write(outp, 0, 2, shape + 1, out)
                          : npy_write(outp, 0, 3, shape, out);
    }
    free(chunk);
    free(out);
    free(ch.v);
    free(st.v);
    return rc;
}

int main(int argc, char **argv) {
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"in", required_argument, 0, 'i'},
                                         {"out", required_argument, 0, 'o'},
                                         {"state", required_argument, 0, 's'},
                                         {0, 0, 0, 0}};
    const char *in = NULL, *outp = NULL, *statep = NULL;
    int o;
    /* GNU getopt_long permutes: options may come before or after COMMAND ROBOT.ini. */
    opterr = 0;
    while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (o) {
        case 'h':
            fputs(USAGE, stdout);
            return 0;
        case 'i':
            in = optarg;
            break;
        case 'o':
            outp = optarg;
            break;
        case 's':
            statep = optarg;
            break;
        default:
            return pi0__opt_error("pi0rt-calib", argv, o);
        }
    }
    if (optind >= argc) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[optind++];
    int is_show = !strcmp(cmd, "show"), is_check = !strcmp(cmd, "check"),
        is_state = !strcmp(cmd, "state"), is_actions = !strcmp(cmd, "actions");
    if (!is_show && !is_check && !is_state && !is_actions) {
        fprintf(stderr, "pi0rt-calib: unknown command '%s' (show, check, state, actions)\n",
                cmd);
        return 2;
    }
    if (optind + 1 != argc) {
        fprintf(stderr, "pi0rt-calib %s: expected one ROBOT.ini (see --help)\n", cmd);
        return 2;
    }
    const char *path = argv[optind];
    if ((is_state || is_actions) && (!in || !outp || (is_actions && !statep))) {
        fprintf(stderr, "pi0rt-calib %s: missing %s (see --help)\n", cmd,
                !in     ? "--in"
                : !outp ? "--out"
                        : "--state");
        return 2;
    }
    if ((is_show || is_check) && (in || outp || statep)) {
        fprintf(stderr, "pi0rt-calib %s: takes no --in/--out/--state\n", cmd);
        return 2;
    }
    if (is_state && statep) {
        fprintf(stderr, "pi0rt-calib state: takes no --state (the raw state is --in)\n");
        return 2;
    }
    pi0_calib *c;
    int rc = pi0_calib_load(path, &c);
    if (rc) {
        fprintf(stderr, "pi0rt-calib: %s\n", pi0_last_error_for(rc));
        return 1;
    }
    if (is_show)
        rc = cmd_show(c, path);
    else if (is_check)
        printf("%s: ok\n", path);
    else if (is_state)
        rc = cmd_state(c, in, outp);
    else
        rc = cmd_actions(c, in, statep, outp);
    if (rc) fprintf(stderr, "pi0rt-calib: %s\n", pi0_last_error_for(rc));
    pi0_calib_destroy(c);
    return rc ? 1 : 0;
}
