/* pi0_calib.c — robot files (INI, read with libinih) and the transforms between a robot's
 * units and a π0 checkpoint's unnormalized state/action space. The format is described in
 * pi0_calib.h and README.md. */
#include "pi0_calib.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "common/pi0_file.h"

// ---- the loaded file ---------------------------------------------------------------

#define MAP_CONSTS 6 /* most constants of one named map */

enum map_kind { MAP_IDENTITY = 0, MAP_LINEAR, MAP_ALOHA_TO_ANGULAR, MAP_ALOHA_FROM_ANGULAR };

/* One map kind: its name in a [map.NAME] section's `type` and its constants in order. */
typedef struct map_def {
    const char *name;
    int n;
    const char *consts[MAP_CONSTS];
} map_def;

static const map_def MAP_DEFS[] = {
    [MAP_IDENTITY] = {"identity", 0, {0}},
    [MAP_LINEAR] = {"linear", 2, {"scale", "offset"}},
    [MAP_ALOHA_TO_ANGULAR] = {"aloha_gripper_to_angular",
                              6,
                              {"linear_closed", "linear_open", "horn_radius", "arm_length",
                               "angle_lo", "angle_hi"}},
    [MAP_ALOHA_FROM_ANGULAR] = {"aloha_gripper_from_angular",
                                3,
                                {"offset", "joint_closed", "joint_open"}},
};
#define N_MAP_KINDS ((int)(sizeof MAP_DEFS / sizeof MAP_DEFS[0]))

/* Every constant name any map kind uses. */
static const char *const CONST_NAMES[] = {
    "scale",      "offset",   "linear_closed", "linear_open",  "horn_radius",
    "arm_length", "angle_lo", "angle_hi",      "joint_closed", "joint_open"};
#define N_CONST_NAMES 10

/* A resolved per-dim map: kind + its constants in MAP_DEFS order. */
typedef struct pi0__calib_map {
    int kind;
    char name[32]; /* the [map.NAME] it came from ("" for identity) */
    double k[MAP_CONSTS];
} pi0__calib_map;

static const char *const SLOT_NAMES[PI0_CALIB_CAMERAS] = {"base_0_rgb", "left_wrist_0_rgb",
                                                          "right_wrist_0_rgb"};

struct pi0_calib {
    char name[64];                             /* [robot] name */
    char prompt[256];                          /* [robot] prompt ("" = not set) */
    double control_hz;                         /* [robot] control_hz (0 = not set) */
    int state_dim;                             /* [state] dim */
    int n_in;                                  /* mapped state dims (length of [state] index) */
    int raw_dim;                               /* largest index + 1 */
    int index[PI0_CALIB_DIM_MAX];              /* (n_in) robot joint of each model dim */
    double in_sign[PI0_CALIB_DIM_MAX];         /* (n_in) */
    pi0__calib_map in_map[PI0_CALIB_DIM_MAX];  /* (n_in) */
    int out_dim;                               /* [actions] out_dims */
    int mask_len;                              /* length of the delta mask (0: none) */
    unsigned char mask[PI0_CALIB_DIM_MAX];     /* (mask_len) 1: add the state */
    double out_sign[PI0_CALIB_DIM_MAX];        /* (out_dim) */
    pi0__calib_map out_map[PI0_CALIB_DIM_MAX]; /* (out_dim) */
    double clip_lo[PI0_CALIB_DIM_MAX], clip_hi[PI0_CALIB_DIM_MAX]; /* (out_dim) NAN = none */
    double bin_thr[PI0_CALIB_DIM_MAX];                             /* (out_dim) NAN = none */
    pi0_calib_limit limits[PI0_CALIB_DIM_MAX];                     /* (out_dim) */
    pi0_calib_camera cams[PI0_CALIB_CAMERAS];
};

// ---- parser state --------------------------------------------------------------------

#define MAX_KEYS     512
#define MAX_SECTIONS 32
#define MAX_MAPS     16
#define LINE_MAX_LEN 190        /* libinih reads lines of up to INI_MAX_LINE (200) bytes */
#define POOL_BYTES   (1u << 16) /* every value of one file */

/* A key as read, parsed once the whole file is read (so a value may continue on indented
 * lines). */
typedef struct key_seen {
    char section[40];
    char key[40];
    int line;       /* of the key */
    size_t val_off; /* its value in parser.pool (continuation lines appended) */
} key_seen;

typedef struct map_sec {
    char name[32];
    int line;      /* of the section header */
    int kind;      /* -1 until `type` is read */
    int type_line; /* 0: no `type` key */
    double val[N_CONST_NAMES];
    int val_line[N_CONST_NAMES]; /* 0: not given */
} map_sec;

/* A per-dim reference to a named map (`map.J = NAME`), resolved after the whole file. */
typedef struct map_ref {
    char name[32];
    int line; /* 0: none */
} map_ref;

typedef struct parser {
    const char *path;
    const char *text; /* the file, [len] bytes */
    size_t len, pos;
    int line;        /* of the line the reader handed out last ... */
    size_t line_off; /* ... and where it starts in text */
    int lines;       /* in the file */
    int err;         /* first error (status), 0 while none */
    int err_line;
    char err_msg[400];

    key_seen keys[MAX_KEYS];
    int n_keys;
    char pool[POOL_BYTES]; /* the values of keys[], NUL-terminated, in file order */
    size_t pool_used;
    struct {
        char name[64];
        int line;
    } sections[MAX_SECTIONS];
    int n_sections;
    map_sec maps[MAX_MAPS];
    int n_maps;

    map_ref in_ref[PI0_CALIB_DIM_MAX], out_ref[PI0_CALIB_DIM_MAX];
    int n_sign_in, n_sign_out, n_lo, n_hi, n_step;
    int has_clip_all;
    double clip_all_lo, clip_all_hi;
    int clip_line[PI0_CALIB_DIM_MAX], bin_line[PI0_CALIB_DIM_MAX];

    pi0_calib *c;
} parser;

/* Records an error as `path:line: key: reason`; of several, the one on the earliest line is
 * kept (the file is read, then its keys are parsed, then checked as a whole). */
static int perr(parser *p, int line, const char *key, const char *fmt, ...) PI0_PRINTF(4, 5);
static int perr(parser *p, int line, const char *key, const char *fmt, ...) {
    if (p->err && line >= p->err_line) return 0;
    char reason[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    p->err = PI0_ECONFIG;
    p->err_line = line;
    snprintf(p->err_msg, sizeof p->err_msg, "%s:%d: %s: %s", p->path, line, key, reason);
    return 0;
}

/* Line of the header of `section` (for "missing key" errors), or of the file's last line. */
static int section_line(const parser *p, const char *section) {
    for (int i = 0; i < p->n_sections; i++)
        if (strcmp(p->sections[i].name, section) == 0) return p->sections[i].line;
    return p->lines > 0 ? p->lines : 1;
}

static int key_line(const parser *p, const char *section, const char *key) {
    for (int i = 0; i < p->n_keys; i++)
        if (strcmp(p->keys[i].section, section) == 0 && strcmp(p->keys[i].key, key) == 0)
            return p->keys[i].line;
    return 0;
}

/* Line `line` of the file (1-based) into buf, at most cap-1 bytes, without its newline. */
static const char *line_text(const parser *p, int line, char *buf, size_t cap) {
    size_t i = 0;
    for (int l = 1; l < line && i < p->len; i++)
        if (p->text[i] == '\n') l++;
    size_t n = 0;
    while (i + n < p->len && p->text[i + n] != '\n' && p->text[i + n] != '\r' && n + 1 < cap)
        n++;
    memcpy(buf, p->text + i, n);
    buf[n] = 0;
    return buf;
}

// ---- values --------------------------------------------------------------------------

static const char *skip_ws(const char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* A finite double filling the whole string. */
static int parse_double(const char *s, double *out) {
    s = skip_ws(s);
    if (!*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *skip_ws(end) || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* A decimal integer filling the whole string. */
static int parse_int(const char *s, long lo, long hi, int *out) {
    s = skip_ws(s);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *skip_ws(end) || errno || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

/* Comma-separated list into items[PI0_CALIB_DIM_MAX]. Each item is a finite
 * number, or "-" when allow_unset (stored as NAN). Returns the count, or -1 with *bad set
 * to the 1-based position of the first bad item (0: too many items). */
static int parse_list(const char *s, double *items, int allow_unset, int *bad) {
    int n = 0;
    s = skip_ws(s);
    if (!*s) {
        *bad = 1;
        return -1;
    }
    for (;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        char tok[64];
        if (n == PI0_CALIB_DIM_MAX) {
            *bad = 0;
            return -1;
        }
        if (len >= sizeof tok) {
            *bad = n + 1;
            return -1;
        }
        memcpy(tok, s, len);
        tok[len] = 0;
        const char *t = skip_ws(tok);
        char *e = tok + len;
        while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = 0;
        if (allow_unset && strcmp(t, "-") == 0) {
            items[n] = NAN;
        } else if (parse_double(t, &items[n]) != 0) {
            *bad = n + 1;
            return -1;
        }
        n++;
        if (!comma) break;
        s = comma + 1;
    }
    return n;
}

/* `prefix.J` with J a dim number: returns J, -1 when key is not of that form, -2 when the
 * suffix is not a number. */
static int dim_key(const char *key, const char *prefix) {
    size_t n = strlen(prefix);
    if (strncmp(key, prefix, n) != 0 || key[n] != '.') return -1;
    const char *d = key + n + 1;
    if (!*d) return -2;
    for (const char *q = d; *q; q++)
        if (!isdigit((unsigned char)*q)) return -2;
    if (strlen(d) > 3) return -2;
    return atoi(d);
}

static int valid_topic(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > PI0_CALIB_TOPIC_MAX) return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
            return 0;
    return 1;
}

static int parse_bool(const char *s, int *out) {
    if (!strcmp(s, "yes") || !strcmp(s, "true") || !strcmp(s, "1")) return *out = 1, 0;
    if (!strcmp(s, "no") || !strcmp(s, "false") || !strcmp(s, "0")) return *out = 0, 0;
    return -1;
}

// ---- sections ------------------------------------------------------------------------

/* Every handler returns 1 (go on) or 0 (error recorded). kq is "section.key" for messages. */

static int on_robot(parser *p, const char *key, const char *v, const char *kq) {
    pi0_calib *c = p->c;
    if (!strcmp(key, "name")) {
        if (!*v || strlen(v) >= sizeof c->name)
            return perr(p, p->line, kq, "empty or too long");
        snprintf(c->name, sizeof c->name, "%s", v);
    } else if (!strcmp(key, "control_hz")) {
        if (parse_double(v, &c->control_hz) != 0 || c->control_hz <= 0 || c->control_hz > 10000)
            return perr(p, p->line, kq, "'%s' is not a rate in (0, 10000] Hz", v);
    } else if (!strcmp(key, "prompt")) {
        if (!*v || strlen(v) >= sizeof c->prompt)
            return perr(p, p->line, kq, "empty or too long");
        snprintf(c->prompt, sizeof c->prompt, "%s", v);
    } else {
        return perr(p, p->line, kq, "unknown key (name, control_hz, prompt)");
    }
    return 1;
}

static int parse_map_ref(parser *p, map_ref *ref, int dim, const char *v, const char *kq) {
    if (dim < 0 || dim >= PI0_CALIB_DIM_MAX)
        return perr(p, p->line, kq, "dim must be a number below %d", PI0_CALIB_DIM_MAX);
    if (!*v || strlen(v) >= sizeof ref[dim].name)
        return perr(p, p->line, kq, "expected the NAME of a [map.NAME] section");
    snprintf(ref[dim].name, sizeof ref[dim].name, "%s", v);
    ref[dim].line = p->line;
    return 1;
}

static int on_state(parser *p, const char *key, const char *v, const char *kq) {
    pi0_calib *c = p->c;
    double items[PI0_CALIB_DIM_MAX];
    int bad = 0, n, d;
    if (!strcmp(key, "dim")) {
        if (parse_int(v, 1, PI0_CALIB_DIM_MAX, &c->state_dim) != 0)
            return perr(p, p->line, kq, "'%s' is not a dim count in 1..%d", v,
                        PI0_CALIB_DIM_MAX);
    } else if (!strcmp(key, "index")) {
        if ((n = parse_list(v, items, 0, &bad)) < 0)
            return bad ? perr(p, p->line, kq, "item %d is not a number", bad)
                       : perr(p, p->line, kq, "more than %d items", PI0_CALIB_DIM_MAX);
        for (int i = 0; i < n; i++) {
            if (items[i] != floor(items[i]) || items[i] < 0 || items[i] >= PI0_CALIB_DIM_MAX)
                return perr(p, p->line, kq, "item %d (%g) is not a joint index in 0..%d", i + 1,
                            items[i], PI0_CALIB_DIM_MAX - 1);
            c->index[i] = (int)items[i];
        }
        c->n_in = n;
    } else if (!strcmp(key, "sign")) {
        if ((n = parse_list(v, items, 0, &bad)) < 0)
            return bad ? perr(p, p->line, kq, "item %d is not a number", bad)
                       : perr(p, p->line, kq, "more than %d items", PI0_CALIB_DIM_MAX);
        for (int i = 0; i < n; i++) {
            if (items[i] != 1 && items[i] != -1)
                return perr(p, p->line, kq, "item %d (%g) is not 1 or -1", i + 1, items[i]);
            c->in_sign[i] = items[i];
        }
        p->n_sign_in = n;
    } else if ((d = dim_key(key, "map")) != -1) {
        if (d == -2) return perr(p, p->line, kq, "expected map.DIM with DIM a number");
        return parse_map_ref(p, p->in_ref, d, v, kq);
    } else {
        return perr(p, p->line, kq, "unknown key (dim, index, sign, map.DIM)");
    }
    return 1;
}

/* `delta`: "none" or make_bool_mask's syntax: nonzero integers, N > 0 adds N dims, N < 0
 * skips -N dims. */
static int parse_mask(parser *p, const char *v, const char *kq) {
    pi0_calib *c = p->c;
    if (!strcmp(skip_ws(v), "none")) {
        c->mask_len = 0;
        return 1;
    }
    double items[PI0_CALIB_DIM_MAX];
    int bad = 0, n = parse_list(v, items, 0, &bad), len = 0;
    if (n < 0)
        return bad ? perr(p, p->line, kq, "item %d is not a number (or write none)", bad)
                   : perr(p, p->line, kq, "more than %d items", PI0_CALIB_DIM_MAX);
    for (int i = 0; i < n; i++) {
        double x = items[i];
        if (x != floor(x) || x == 0 || fabs(x) > PI0_CALIB_DIM_MAX)
            return perr(p, p->line, kq, "item %d (%g) is not a nonzero dim count", i + 1, x);
        int k = (int)fabs(x);
        if (len + k > PI0_CALIB_DIM_MAX)
            return perr(p, p->line, kq, "mask longer than %d dims", PI0_CALIB_DIM_MAX);
        for (int j = 0; j < k; j++)
            c->mask[len++] = x > 0;
    }
    c->mask_len = len;
    return 1;
}

static int parse_range(const char *v, double *lo, double *hi) {
    double items[PI0_CALIB_DIM_MAX];
    int bad;
    if (parse_list(v, items, 0, &bad) != 2 || !(items[0] < items[1])) return -1;
    *lo = items[0];
    *hi = items[1];
    return 0;
}

static int on_actions(parser *p, const char *key, const char *v, const char *kq) {
    pi0_calib *c = p->c;
    double items[PI0_CALIB_DIM_MAX];
    int bad = 0, n, d;
    if (!strcmp(key, "out_dims")) {
        if (parse_int(v, 1, PI0_CALIB_DIM_MAX, &c->out_dim) != 0)
            return perr(p, p->line, kq, "'%s' is not a dim count in 1..%d", v,
                        PI0_CALIB_DIM_MAX);
    } else if (!strcmp(key, "delta")) {
        return parse_mask(p, v, kq);
    } else if (!strcmp(key, "sign")) {
        if ((n = parse_list(v, items, 0, &bad)) < 0)
            return bad ? perr(p, p->line, kq, "item %d is not a number", bad)
                       : perr(p, p->line, kq, "more than %d items", PI0_CALIB_DIM_MAX);
        for (int i = 0; i < n; i++) {
            if (items[i] != 1 && items[i] != -1)
                return perr(p, p->line, kq, "item %d (%g) is not 1 or -1", i + 1, items[i]);
            c->out_sign[i] = items[i];
        }
        p->n_sign_out = n;
    } else if (!strcmp(key, "clip")) {
        if (parse_range(v, &p->clip_all_lo, &p->clip_all_hi) != 0)
            return perr(p, p->line, kq, "expected 'lo, hi' with finite lo < hi");
        p->has_clip_all = p->line;
    } else if ((d = dim_key(key, "map")) != -1) {
        if (d == -2) return perr(p, p->line, kq, "expected map.DIM with DIM a number");
        return parse_map_ref(p, p->out_ref, d, v, kq);
    } else if ((d = dim_key(key, "clip")) != -1) {
        if (d < 0 || d >= PI0_CALIB_DIM_MAX)
            return perr(p, p->line, kq, "expected clip.DIM with DIM a number below %d",
                        PI0_CALIB_DIM_MAX);
        if (parse_range(v, &c->clip_lo[d], &c->clip_hi[d]) != 0)
            return perr(p, p->line, kq, "expected 'lo, hi' with finite lo < hi");
        p->clip_line[d] = p->line;
    } else if ((d = dim_key(key, "binarize")) != -1) {
        if (d < 0 || d >= PI0_CALIB_DIM_MAX)
            return perr(p, p->line, kq, "expected binarize.DIM with DIM a number below %d",
                        PI0_CALIB_DIM_MAX);
        if (parse_double(v, &c->bin_thr[d]) != 0)
            return perr(p, p->line, kq, "'%s' is not a finite threshold", v);
        p->bin_line[d] = p->line;
    } else {
        return perr(p, p->line, kq,
                    "unknown key (out_dims, delta, sign, map.DIM, clip, clip.DIM, "
                    "binarize.DIM)");
    }
    return 1;
}

static int on_limits(parser *p, const char *key, const char *v, const char *kq) {
    pi0_calib *c = p->c;
    double items[PI0_CALIB_DIM_MAX];
    int bad = 0, n, which;
    if (!strcmp(key, "lo"))
        which = 0;
    else if (!strcmp(key, "hi"))
        which = 1;
    else if (!strcmp(key, "max_step"))
        which = 2;
    else
        return perr(p, p->line, kq, "unknown key (lo, hi, max_step)");
    if ((n = parse_list(v, items, 1, &bad)) < 0)
        return bad ? perr(p, p->line, kq, "item %d is not a number or -", bad)
                   : perr(p, p->line, kq, "more than %d items", PI0_CALIB_DIM_MAX);
    for (int i = 0; i < n; i++) {
        if (which == 2 && !isnan(items[i]) && !(items[i] > 0))
            return perr(p, p->line, kq, "item %d (%g) is not > 0", i + 1, items[i]);
        if (which == 0)
            c->limits[i].lo = items[i];
        else if (which == 1)
            c->limits[i].hi = items[i];
        else
            c->limits[i].max_step = items[i];
    }
    if (which == 0)
        p->n_lo = n;
    else if (which == 1)
        p->n_hi = n;
    else
        p->n_step = n;
    return 1;
}

static int on_cameras(parser *p, const char *key, const char *v, const char *kq) {
    for (int s = 0; s < PI0_CALIB_CAMERAS; s++) {
        size_t n = strlen(SLOT_NAMES[s]);
        if (strncmp(key, SLOT_NAMES[s], n) != 0) continue;
        pi0_calib_camera *cam = &p->c->cams[s];
        if (key[n] == 0) {
            if (!strcmp(v, "none")) {
                cam->topic[0] = 0;
            } else if (!valid_topic(v)) {
                return perr(p, p->line, kq,
                            "'%s' is not a topic name ([A-Za-z0-9_.-], 1..%d chars) or none", v,
                            PI0_CALIB_TOPIC_MAX);
            } else {
                snprintf(cam->topic, sizeof cam->topic, "%s", v);
            }
            return 1;
        }
        if (!strcmp(key + n, ".rotate180")) {
            if (parse_bool(v, &cam->rotate180) != 0)
                return perr(p, p->line, kq, "'%s' is not yes or no", v);
            return 1;
        }
    }
    return perr(p, p->line, kq,
                "unknown key (base_0_rgb, left_wrist_0_rgb, right_wrist_0_rgb, "
                "SLOT.rotate180)");
}

static int on_map(parser *p, const char *section, const char *key, const char *v,
                  const char *kq) {
    map_sec *m = NULL;
    for (int i = 0; i < p->n_maps; i++)
        if (!strcmp(p->maps[i].name, section + 4)) m = &p->maps[i];
    /* Created by note_section() when the reader met the header; should the two ever read a
     * header differently, the file is refused rather than misread. */
    if (!m) return perr(p, p->line, kq, "section header not understood");
    if (!strcmp(key, "type")) {
        for (int k = 1; k < N_MAP_KINDS; k++)
            if (!strcmp(v, MAP_DEFS[k].name)) m->kind = k;
        if (m->kind < 0)
            return perr(p, p->line, kq,
                        "'%s' is not a map type (linear, aloha_gripper_to_angular, "
                        "aloha_gripper_from_angular)",
                        v);
        m->type_line = p->line;
        return 1;
    }
    /* Constants are checked against the type once the whole file is read. */
    for (int i = 0; i < N_CONST_NAMES; i++) {
        if (strcmp(key, CONST_NAMES[i]) != 0) continue;
        if (parse_double(v, &m->val[i]) != 0)
            return perr(p, p->line, kq, "'%s' is not a finite number", v);
        m->val_line[i] = p->line;
        return 1;
    }
    return perr(p, p->line, kq, "unknown key (type or a constant of the map's type)");
}

/* Parses one key of the file once all of it is read; p->line is the key's line. */
static int parse_key(parser *p, const key_seen *k) {
    const char *section = k->section, *key = k->key, *value = p->pool + k->val_off;
    char kq[96];
    snprintf(kq, sizeof kq, "%s.%s", section, key);
    if (!*skip_ws(value)) return perr(p, p->line, kq, "empty value");
    if (!strcmp(section, "robot")) return on_robot(p, key, value, kq);
    if (!strcmp(section, "state")) return on_state(p, key, value, kq);
    if (!strcmp(section, "actions")) return on_actions(p, key, value, kq);
    if (!strcmp(section, "limits")) return on_limits(p, key, value, kq);
    if (!strcmp(section, "cameras")) return on_cameras(p, key, value, kq);
    if (!strncmp(section, "map.", 4)) return on_map(p, section, key, value, kq);
    return perr(p, p->line, kq,
                "unknown section (robot, state, actions, limits, cameras, map.NAME)");
}

/* inih's callback: records the key and its value. An indented line after a key is inih's
 * continuation of that key: its text is appended to the value, after a space. */
static int handler(void *user, const char *section, const char *key, const char *value) {
    parser *p = user;
    if (p->err) return 0;
    char kq[96];
    if (!*section) return perr(p, p->line, key, "key outside any section");
    snprintf(kq, sizeof kq, "%s.%s", section, key);
    size_t vl = strlen(value);
    char first = p->text[p->line_off];
    key_seen *last = p->n_keys ? &p->keys[p->n_keys - 1] : NULL;
    if ((first == ' ' || first == '\t') && last && !strcmp(last->section, section) &&
        !strcmp(last->key, key)) {
        if (p->pool_used + vl + 1 > POOL_BYTES)
            return perr(p, p->line, kq, "values longer than %u bytes in all", POOL_BYTES);
        p->pool[p->pool_used - 1] = ' '; /* the value is the pool's last string */
        memcpy(p->pool + p->pool_used, value, vl + 1);
        p->pool_used += vl + 1;
        return 1;
    }
    for (int i = 0; i < p->n_keys; i++)
        if (!strcmp(p->keys[i].section, section) && !strcmp(p->keys[i].key, key))
            return perr(p, p->line, kq, "given twice (first at line %d)", p->keys[i].line);
    if (strlen(section) >= sizeof p->keys[0].section || strlen(key) >= sizeof p->keys[0].key)
        return perr(p, p->line, kq, "unknown key (name too long)");
    if (p->n_keys == MAX_KEYS) return perr(p, p->line, kq, "more than %d keys", MAX_KEYS);
    if (p->pool_used + vl + 1 > POOL_BYTES)
        return perr(p, p->line, kq, "values longer than %u bytes in all", POOL_BYTES);
    key_seen *ks = &p->keys[p->n_keys++];
    snprintf(ks->section, sizeof ks->section, "%s", section);
    snprintf(ks->key, sizeof ks->key, "%s", key);
    ks->line = p->line;
    ks->val_off = p->pool_used;
    memcpy(p->pool + p->pool_used, value, vl + 1);
    p->pool_used += vl + 1;
    return 1;
}

// ---- reading the file ------------------------------------------------------------------

static const char *section_names_known(const char *name) {
    static const char *const known[] = {"robot", "state", "actions", "limits", "cameras"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(name, known[i])) return known[i];
    return NULL;
}

/* Notes a `[name]` header (the text inih will take as the section name) at line p->line. */
static void note_section(parser *p, const char *s, size_t len) {
    const char *t = s;
    /* As inih: a UTF-8 byte order mark on the first line, then any white space. */
    if (p->line == 1 && len >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) t += 3;
    while (t < s + len && isspace((unsigned char)*t))
        t++;
    if (t == s + len || *t != '[') return;
    const char *close = memchr(t, ']', (size_t)(s + len - t));
    if (!close) return; /* inih reports the syntax error */
    char name[64];
    size_t n = (size_t)(close - t - 1);
    if (n >= sizeof name) n = sizeof name - 1;
    memcpy(name, t + 1, n);
    name[n] = 0;
    char kq[96];
    snprintf(kq, sizeof kq, "[%s]", name);
    if (!section_names_known(name) && strncmp(name, "map.", 4) != 0) {
        perr(p, p->line, kq,
             "unknown section (robot, state, actions, limits, cameras, map.NAME)");
        return;
    }
    for (int i = 0; i < p->n_sections; i++)
        if (!strcmp(p->sections[i].name, name)) {
            perr(p, p->line, kq, "section given twice (first at line %d)", p->sections[i].line);
            return;
        }
    if (p->n_sections == MAX_SECTIONS) {
        perr(p, p->line, kq, "more than %d sections", MAX_SECTIONS);
        return;
    }
    snprintf(p->sections[p->n_sections].name, sizeof p->sections[0].name, "%s", name);
    p->sections[p->n_sections++].line = p->line;
    if (!strncmp(name, "map.", 4)) {
        if (!name[4] || strlen(name + 4) >= sizeof p->maps[0].name) {
            perr(p, p->line, kq, "map name empty or longer than 31 chars");
            return;
        }
        if (p->n_maps == MAX_MAPS) {
            perr(p, p->line, kq, "more than %d maps", MAX_MAPS);
            return;
        }
        map_sec *m = &p->maps[p->n_maps++];
        memset(m, 0, sizeof *m);
        memcpy(m->name, name + 4, strlen(name + 4) + 1); /* fits: checked above */
        m->kind = -1;
        m->line = p->line;
    }
}

/* ini_reader over the in-memory file: one line per call (lines were checked to fit). */
static char *reader(char *str, int num, void *stream) {
    parser *p = stream;
    if (p->pos >= p->len || num < 2) return NULL;
    const char *s = p->text + p->pos;
    const char *nl = memchr(s, '\n', p->len - p->pos);
    size_t n = nl ? (size_t)(nl - s) + 1 : p->len - p->pos;
    if (n > (size_t)num - 1) n = (size_t)num - 1;
    memcpy(str, s, n);
    str[n] = 0;
    p->line_off = p->pos;
    p->pos += n;
    p->line++;
    p->lines = p->line;
    note_section(p, s, n);
    return str;
}

/* Bytes inih cannot take: NUL, and lines longer than it reads in one piece. */
static int prescan(parser *p) {
    int line = 1;
    size_t start = 0;
    for (size_t i = 0; i <= p->len; i++) {
        if (i < p->len && p->text[i] == 0) return perr(p, line, "file", "NUL byte");
        if (i == p->len || p->text[i] == '\n') {
            if (i - start > LINE_MAX_LEN)
                return perr(p, line, "file",
                            "line longer than %d bytes (continue the value on indented lines)",
                            LINE_MAX_LEN);
            line++;
            start = i + 1;
        }
    }
    return 1;
}

// ---- checks once the whole file is read ----------------------------------------------

static int need(parser *p, const char *section, const char *key) {
    int line = key_line(p, section, key);
    if (!line) {
        char kq[96];
        snprintf(kq, sizeof kq, "%s.%s", section, key);
        return perr(p, section_line(p, section), kq, "missing");
    }
    return line;
}

static int check_map(parser *p, map_sec *m) {
    char kq[96];
    snprintf(kq, sizeof kq, "map.%s.type", m->name);
    if (!m->type_line) return perr(p, m->line, kq, "missing");
    const map_def *d = &MAP_DEFS[m->kind];
    for (int i = 0; i < N_CONST_NAMES; i++) {
        int used = 0;
        for (int k = 0; k < d->n; k++)
            used |= !strcmp(d->consts[k], CONST_NAMES[i]);
        snprintf(kq, sizeof kq, "map.%s.%s", m->name, CONST_NAMES[i]);
        if (m->val_line[i] && !used)
            return perr(p, m->val_line[i], kq, "not a constant of type %s", d->name);
        if (!m->val_line[i] && used)
            return perr(p, m->line, kq, "missing (type %s needs it)", d->name);
    }
    return 1;
}

static double map_val(const map_sec *m, const char *name) {
    for (int i = 0; i < N_CONST_NAMES; i++)
        if (!strcmp(CONST_NAMES[i], name)) return m->val[i];
    PI0_ASSERT(0);
}

static int map_line(const map_sec *m, const char *name) {
    for (int i = 0; i < N_CONST_NAMES; i++)
        if (!strcmp(CONST_NAMES[i], name)) return m->val_line[i];
    PI0_ASSERT(0);
}

/* Constants that would divide by zero or leave the map's domain. */
static int check_map_values(parser *p, const map_sec *m) {
    char kq[96];
#define BAD(cname, ...)                                                                        \
    (snprintf(kq, sizeof kq, "map.%s.%s", m->name, cname),                                     \
     perr(p, map_line(m, cname), kq, __VA_ARGS__))
    switch (m->kind) {
    case MAP_LINEAR:
        if (map_val(m, "scale") == 0) return BAD("scale", "must not be 0");
        break;
    case MAP_ALOHA_TO_ANGULAR:
        if (map_val(m, "linear_open") == map_val(m, "linear_closed"))
            return BAD("linear_open", "equals linear_closed");
        if (!(map_val(m, "horn_radius") > 0)) return BAD("horn_radius", "must be > 0");
        if (!(map_val(m, "arm_length") > 0)) return BAD("arm_length", "must be > 0");
        if (map_val(m, "angle_hi") == map_val(m, "angle_lo"))
            return BAD("angle_hi", "equals angle_lo");
        break;
    case MAP_ALOHA_FROM_ANGULAR:
        if (map_val(m, "joint_open") == map_val(m, "joint_closed"))
            return BAD("joint_open", "equals joint_closed");
        break;
    }
#undef BAD
    return 1;
}

static int resolve_ref(parser *p, const map_ref *ref, const char *side, int dim,
                       pi0__calib_map *out) {
    if (!ref->line) return 1;
    for (int i = 0; i < p->n_maps; i++) {
        const map_sec *m = &p->maps[i];
        if (strcmp(m->name, ref->name) != 0) continue;
        out->kind = m->kind;
        snprintf(out->name, sizeof out->name, "%s", m->name);
        const map_def *d = &MAP_DEFS[m->kind];
        for (int k = 0; k < d->n; k++)
            out->k[k] = map_val(m, d->consts[k]);
        return 1;
    }
    char kq[96];
    snprintf(kq, sizeof kq, "%s.map.%d", side, dim);
    return perr(p, ref->line, kq, "no section [map.%s]", ref->name);
}

static int validate(parser *p) {
    pi0_calib *c = p->c;
    char kq[96];
    int l;
    for (int i = 0; i < p->n_maps; i++)
        if (!check_map(p, &p->maps[i]) || !check_map_values(p, &p->maps[i])) return 0;

    /* [state] */
    if (!need(p, "state", "dim") || !(l = need(p, "state", "index"))) return 0;
    if (c->n_in > c->state_dim)
        return perr(p, l, "state.index", "%d items, more than state.dim (%d)", c->n_in,
                    c->state_dim);
    if (!(l = need(p, "state", "sign"))) return 0;
    if (p->n_sign_in != c->n_in)
        return perr(p, l, "state.sign", "%d items, state.index has %d", p->n_sign_in, c->n_in);
    c->raw_dim = 0;
    for (int i = 0; i < c->n_in; i++)
        if (c->index[i] + 1 > c->raw_dim) c->raw_dim = c->index[i] + 1;
    for (int d = 0; d < PI0_CALIB_DIM_MAX; d++) {
        if (!p->in_ref[d].line) continue;
        if (d >= c->n_in) {
            snprintf(kq, sizeof kq, "state.map.%d", d);
            return perr(p, p->in_ref[d].line, kq, "dim %d out of range (state.index has %d)", d,
                        c->n_in);
        }
        if (!resolve_ref(p, &p->in_ref[d], "state", d, &c->in_map[d])) return 0;
    }

    /* [actions] */
    if (!need(p, "actions", "out_dims") || !(l = need(p, "actions", "delta"))) return 0;
    if (c->mask_len && c->mask_len != c->out_dim)
        return perr(p, l, "actions.delta", "mask covers %d dims, actions.out_dims is %d",
                    c->mask_len, c->out_dim);
    if (c->mask_len > c->state_dim)
        return perr(p, l, "actions.delta", "mask covers %d dims, state.dim is %d", c->mask_len,
                    c->state_dim);
    if (!(l = need(p, "actions", "sign"))) return 0;
    if (p->n_sign_out != c->out_dim)
        return perr(p, l, "actions.sign", "%d items, actions.out_dims is %d", p->n_sign_out,
                    c->out_dim);
    for (int d = 0; d < PI0_CALIB_DIM_MAX; d++) {
        if (p->out_ref[d].line) {
            if (d >= c->out_dim) {
                snprintf(kq, sizeof kq, "actions.map.%d", d);
                return perr(p, p->out_ref[d].line, kq,
                            "dim %d out of range (actions.out_dims is %d)", d, c->out_dim);
            }
            if (!resolve_ref(p, &p->out_ref[d], "actions", d, &c->out_map[d])) return 0;
        }
        if (p->clip_line[d] && d >= c->out_dim) {
            snprintf(kq, sizeof kq, "actions.clip.%d", d);
            return perr(p, p->clip_line[d], kq, "dim %d out of range (actions.out_dims is %d)",
                        d, c->out_dim);
        }
        if (p->bin_line[d] && d >= c->out_dim) {
            snprintf(kq, sizeof kq, "actions.binarize.%d", d);
            return perr(p, p->bin_line[d], kq, "dim %d out of range (actions.out_dims is %d)",
                        d, c->out_dim);
        }
        /* `clip` applies to every dim without its own clip.DIM. */
        if (p->has_clip_all && !p->clip_line[d] && d < c->out_dim) {
            c->clip_lo[d] = p->clip_all_lo;
            c->clip_hi[d] = p->clip_all_hi;
        }
    }

    /* [limits]: each list given has one item per output dim. */
    static const char *const lim_keys[] = {"lo", "hi", "max_step"};
    const int lim_n[] = {p->n_lo, p->n_hi, p->n_step};
    for (int k = 0; k < 3; k++) {
        l = key_line(p, "limits", lim_keys[k]);
        snprintf(kq, sizeof kq, "limits.%s", lim_keys[k]);
        if (l && lim_n[k] != c->out_dim)
            return perr(p, l, kq, "%d items, actions.out_dims is %d", lim_n[k], c->out_dim);
    }
    for (int d = 0; d < c->out_dim; d++)
        if (c->limits[d].lo > c->limits[d].hi)
            return perr(p, key_line(p, "limits", "hi"), "limits.hi",
                        "item %d (%g) is below limits.lo (%g)", d + 1, c->limits[d].hi,
                        c->limits[d].lo);

    /* [cameras]: every slot is named (a topic or none). */
    for (int s = 0; s < PI0_CALIB_CAMERAS; s++)
        if (!need(p, "cameras", SLOT_NAMES[s])) return 0;
    return 1;
}

// ---- load / destroy / queries ----------------------------------------------------------

PI0_API int pi0_calib_parse(const char *name, const char *text, size_t len, pi0_calib **out) {
    if (!name || !text || !out) return pi0_errorf(PI0_EINVAL, "pi0_calib_parse: NULL argument");
    parser *p = calloc(1, sizeof *p);
    pi0_calib *c = calloc(1, sizeof *c);
    if (!p || !c) {
        free(p);
        free(c);
        return pi0_errorf(PI0_ENOMEM, "%s: out of memory", name);
    }
    p->path = name;
    p->text = text;
    p->len = len;
    p->c = c;
    for (int d = 0; d < PI0_CALIB_DIM_MAX; d++) {
        c->clip_lo[d] = c->clip_hi[d] = c->bin_thr[d] = NAN;
        c->limits[d] = (pi0_calib_limit){NAN, NAN, NAN};
    }
    int rc = PI0_OK;
    if (prescan(p)) {
        int bad = ini_parse_stream(reader, p, handler, p);
        /* inih's first error line is the earlier of a syntax error and a handler error. */
        if (bad > 0 && (!p->err || bad < p->err_line)) {
            char lt[48];
            char q[64];
            snprintf(q, sizeof q, "'%s'", line_text(p, bad, lt, sizeof lt));
            perr(p, bad, q, "syntax error (expected [section], key = value or a comment)");
        } else if (!p->err && bad < 0)
            perr(p, 0, "file", "libinih failed (%d)", bad);
        /* Keys in file order; an earlier error from reading still wins (perr). */
        for (int i = 0; i < p->n_keys; i++) {
            p->line = p->keys[i].line;
            if (!parse_key(p, &p->keys[i])) break;
        }
        if (!p->err) validate(p);
    }
    if (p->err) {
        rc = pi0_errorf(p->err, "%s", p->err_msg);
        free(c);
    } else {
        *out = c;
    }
    free(p);
    return rc;
}

/* Robot files are small: anything larger is not one. */
#define CALIB_FILE_MAX (1u << 20)

PI0_API int pi0_calib_load(const char *path, pi0_calib **out) {
    if (!path || !out) return pi0_errorf(PI0_EINVAL, "pi0_calib_load: NULL argument");
    char *buf;
    size_t len;
    int rc = pi0__read_file(path, CALIB_FILE_MAX, &buf, &len);
    if (rc) return rc;
    rc = pi0_calib_parse(path, buf, len, out);
    free(buf);
    return rc;
}

PI0_API void pi0_calib_destroy(pi0_calib *c) {
    free(c);
}

PI0_API int pi0_calib_state_dim(const pi0_calib *c) {
    return c->state_dim;
}
PI0_API int pi0_calib_raw_dim(const pi0_calib *c) {
    return c->raw_dim;
}
PI0_API int pi0_calib_action_dim(const pi0_calib *c) {
    return c->mask_len > c->out_dim ? c->mask_len : c->out_dim;
}
PI0_API int pi0_calib_out_dim(const pi0_calib *c) {
    return c->out_dim;
}
PI0_API const pi0_calib_camera *pi0_calib_camera_get(const pi0_calib *c, int slot) {
    return slot >= 0 && slot < PI0_CALIB_CAMERAS ? &c->cams[slot] : NULL;
}
PI0_API const char *pi0_calib_slot_name(int slot) {
    return slot >= 0 && slot < PI0_CALIB_CAMERAS ? SLOT_NAMES[slot] : NULL;
}
PI0_API const pi0_calib_limit *pi0_calib_limits(const pi0_calib *c) {
    return c->limits;
}
PI0_API double pi0_calib_control_hz(const pi0_calib *c) {
    return c->control_hz;
}
PI0_API const char *pi0_calib_prompt(const pi0_calib *c) {
    return c->prompt[0] ? c->prompt : NULL;
}
PI0_API const char *pi0_calib_name(const pi0_calib *c) {
    return c->name;
}

// ---- transforms ----------------------------------------------------------------------

/* Comparisons (not fmin/fmax) so a NaN stays NaN, as numpy's clip does. */
static inline double clampd(double x, double lo, double hi) {
    return x < lo ? lo : x > hi ? hi : x;
}

static inline double apply_map(const pi0__calib_map *m, double x) {
    const double *k = m->k;
    switch (m->kind) {
    case MAP_LINEAR:
        return k[0] * x + k[1];
    case MAP_ALOHA_TO_ANGULAR: {
        /* Normalized linear gripper position → the Interbotix horn angle → normalized angle
         * (k: linear_closed, linear_open, horn_radius, arm_length, angle_lo, angle_hi). */
        double v = x * (k[1] - k[0]) + k[0];
        double s = (k[2] * k[2] + v * v - k[3] * k[3]) / (2 * k[2] * v);
        double a = asin(clampd(s, -1.0, 1.0));
        return (a - k[4]) / (k[5] - k[4]);
    }
    case MAP_ALOHA_FROM_ANGULAR:
        /* k: offset, joint_closed, joint_open. */
        return (x + k[0] - k[1]) / (k[2] - k[1]);
    default:
        return x;
    }
}

PI0_API int pi0_calib_state_in(const pi0_calib *c, const double *raw, int n_raw,
                               double *state) {
    if (!c || !raw || !state)
        return pi0_errorf(PI0_EINVAL, "pi0_calib_state_in: NULL argument");
    if (n_raw < c->raw_dim)
        return pi0_errorf(PI0_EINVAL, "joint state has %d joints, the robot file needs %d",
                          n_raw, c->raw_dim);
    for (int i = 0; i < c->n_in; i++)
        if (!isfinite(raw[c->index[i]]))
            return pi0_errorf(PI0_EINVAL, "joint %d (model state dim %d) is not finite: %g",
                              c->index[i], i, raw[c->index[i]]);
    for (int i = 0; i < c->n_in; i++)
        state[i] = apply_map(&c->in_map[i], c->in_sign[i] * raw[c->index[i]]);
    for (int i = c->n_in; i < c->state_dim; i++)
        state[i] = 0;
    return PI0_OK;
}

PI0_API int pi0_calib_actions_out(const pi0_calib *c, const float *chunk, int horizon, int dim,
                                  const double *state, float *out) {
    if (!c || !chunk || !state || !out)
        return pi0_errorf(PI0_EINVAL, "pi0_calib_actions_out: NULL argument");
    const int od = c->out_dim;
    if (horizon < 1 || dim < pi0_calib_action_dim(c))
        return pi0_errorf(PI0_EINVAL, "chunk [%d, %d]: the robot file needs [>= 1, >= %d]",
                          horizon, dim, pi0_calib_action_dim(c));
    /* In place (out == chunk) works for any dim: row t is written at t*od <= t*dim, below
     * every value not yet read. Any other overlap is refused. */
    const char *cb = (const char *)chunk,
               *ce = cb + (size_t)horizon * (size_t)dim * sizeof *chunk;
    const char *ob = (const char *)out, *oe = ob + (size_t)horizon * (size_t)od * sizeof *out;
    if (out != chunk && ob < ce && cb < oe)
        return pi0_errorf(PI0_EINVAL, "pi0_calib_actions_out: out overlaps chunk");
    for (int t = 0; t < horizon; t++) {
        const float *a = chunk + (size_t)t * (size_t)dim;
        float *o = out + (size_t)t * (size_t)od;
        for (int j = 0; j < od; j++) {
            double v = a[j];
            if (j < c->mask_len && c->mask[j]) v += state[j];
            v = apply_map(&c->out_map[j], c->out_sign[j] * v);
            if (!isnan(c->clip_lo[j])) v = clampd(v, c->clip_lo[j], c->clip_hi[j]);
            if (!isnan(c->bin_thr[j]) && !isnan(v)) v = v > c->bin_thr[j] ? 1.0 : 0.0;
            o[j] = (float)v;
        }
    }
    return PI0_OK;
}

PI0_API int pi0_calib_clamp(const pi0_calib *c, const float *prev, float *action) {
    int changed = 0;
    for (int j = 0; j < c->out_dim; j++) {
        const pi0_calib_limit *l = &c->limits[j];
        float v = action[j];
        if (isnan(v)) continue;
        if (!isnan(l->lo) && v < l->lo) v = (float)l->lo;
        if (!isnan(l->hi) && v > l->hi) v = (float)l->hi;
        if (prev && !isnan(l->max_step)) {
            double lo = prev[j] - l->max_step, hi = prev[j] + l->max_step;
            if (v < lo) v = (float)lo;
            if (v > hi) v = (float)hi;
        }
        if (v != action[j]) {
            action[j] = v;
            changed++;
        }
    }
    return changed;
}

// ---- description -----------------------------------------------------------------------

static size_t put(char *buf, size_t cap, size_t o, const char *fmt, ...) PI0_PRINTF(4, 5);
static size_t put(char *buf, size_t cap, size_t o, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o < cap ? buf + o : NULL, o < cap ? cap - o : 0, fmt, ap);
    va_end(ap);
    return o + (n > 0 ? (size_t)n : 0);
}

static size_t put_map(char *buf, size_t cap, size_t o, const pi0__calib_map *m) {
    if (m->kind == MAP_IDENTITY) return o;
    const map_def *d = &MAP_DEFS[m->kind];
    o = put(buf, cap, o, ", then %s [map.%s](", d->name, m->name);
    for (int k = 0; k < d->n; k++)
        o = put(buf, cap, o, "%s%s=%.10g", k ? ", " : "", d->consts[k], m->k[k]);
    return put(buf, cap, o, ")");
}

PI0_API size_t pi0_calib_describe(const pi0_calib *c, char *buf, size_t cap) {
    size_t o = 0;
    if (cap) buf[0] = 0;
    o = put(buf, cap, o, "state_in: robot joints [>= %d] -> model state [%d]\n", c->raw_dim,
            c->state_dim);
    for (int i = 0; i < c->state_dim; i++) {
        if (i >= c->n_in) {
            o = put(buf, cap, o, "  state %2d = 0 (padding)\n", i);
            continue;
        }
        o = put(buf, cap, o, "  state %2d = %sjoint[%d]", i, c->in_sign[i] < 0 ? "-" : "",
                c->index[i]);
        o = put_map(buf, cap, o, &c->in_map[i]);
        o = put(buf, cap, o, "\n");
    }
    o = put(buf, cap, o, "actions_out: model chunk [H, >= %d] -> robot actions [H, %d]\n",
            pi0_calib_action_dim(c), c->out_dim);
    for (int j = 0; j < c->out_dim; j++) {
        int delta = j < c->mask_len && c->mask[j];
        const char *sg = c->out_sign[j] < 0 ? "-" : "";
        if (delta)
            o = put(buf, cap, o, "  out %2d = %s(chunk[%d] + state[%d])", j, sg, j, j);
        else
            o = put(buf, cap, o, "  out %2d = %schunk[%d]", j, sg, j);
        o = put_map(buf, cap, o, &c->out_map[j]);
        if (!isnan(c->clip_lo[j]))
            o = put(buf, cap, o, ", clip [%g, %g]", c->clip_lo[j], c->clip_hi[j]);
        if (!isnan(c->bin_thr[j])) o = put(buf, cap, o, ", binarize > %g", c->bin_thr[j]);
        o = put(buf, cap, o, "\n");
    }
    return o;
}
