/* config.c — the node's INI file: defaults, parsing (libinih), --set overrides, checks.
 * One table of keys; every value is range-checked where it is parsed, so an error names
 * `file:line: section.key: reason`. */
#include <errno.h>
#include <ini.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pi0_cli.h"
#include "node.h"

enum kind { K_DOUBLE, K_INT, K_U64, K_BOOL, K_STR, K_PATH, K_TOPIC, K_CPUS, K_TOKENS, K_ENUM };

typedef struct key {
    const char *section, *name;
    int kind;
    size_t off, size;  /* field offset, and capacity for strings */
    double lo, hi;     /* numeric range */
    const char *enums; /* K_ENUM: "a|b|c" -> 0, 1, 2 */
} key;

#define F(field) offsetof(node_config, field), sizeof(((node_config *)0)->field)
static const key keys[] = {
    {"node", "control_hz", K_DOUBLE, F(control_hz), 1, 5000, NULL},
    {"node", "control_cpu", K_INT, F(control_cpu), -1, 1023, NULL},
    {"node", "infer_cpus", K_CPUS, F(infer_cpus), 0, 1023, NULL},
    {"node", "rt_priority", K_INT, F(rt_priority), 0, 99, NULL},
    {"node", "lock_memory", K_BOOL, F(lock_memory), 0, 1, NULL},
    {"node", "status_hz", K_DOUBLE, F(status_hz), 0.1, 100, NULL},
    {"node", "status_topic", K_TOPIC, F(status_topic), 0, 0, NULL},
    {"node", "start_timeout", K_DOUBLE, F(start_timeout_s), 0, 3600, NULL},
    {"model", "dir", K_PATH, F(model_dir), 0, 0, NULL},
    {"model", "backend", K_STR, F(backend), 0, 0, NULL},
    {"model", "threads", K_INT, F(threads), 0, 1024, NULL},
    {"model", "precision", K_ENUM, F(precision), 0, 0, "f32|bf16"},
    {"model", "num_steps", K_INT, F(num_steps), 0, 1000, NULL},
    {"model", "seed", K_U64, F(seed), 0, 0, NULL},
    {"model", "prompt", K_STR, F(prompt), 0, 0, NULL},
    {"model", "tokenizer", K_PATH, F(tokenizer), 0, 0, NULL},
    {"model", "tokens", K_TOKENS, F(tokens), 0, 0, NULL},
    {"model", "pipelined", K_BOOL, F(pipelined), 0, 1, NULL},
    {"model", "warmup", K_BOOL, F(warmup), 0, 1, NULL},
    {"robot", "calib", K_PATH, F(calib), 0, 0, NULL},
    {"robot", "joints_topic", K_TOPIC, F(joints_topic), 0, 0, NULL},
    {"robot", "action_topic", K_TOPIC, F(action_topic), 0, 0, NULL},
    {"robot", "chunk_topic", K_TOPIC, F(chunk_topic), 0, 0, NULL},
    {"schedule", "trigger", K_ENUM, F(trigger), 0, 0, "latency|every"},
    {"schedule", "every", K_INT, F(every_ticks), 1, 100000, NULL},
    {"schedule", "margin", K_INT, F(margin_ticks), 0, 10000, NULL},
    {"schedule", "latency_guess_ms", K_DOUBLE, F(latency_guess_ms), 0, 60000, NULL},
    {"schedule", "merge", K_ENUM, F(merge), 0, 0, "replace|blend|weighted"},
    {"schedule", "blend_ticks", K_INT, F(blend_ticks), 1, 10000, NULL},
    {"schedule", "weight_old", K_DOUBLE, F(weight_old), 0, 1, NULL},
    {"safety", "camera_max_age_ms", K_DOUBLE, F(camera_max_age_ms), 0.1, 60000, NULL},
    {"safety", "joints_max_age_ms", K_DOUBLE, F(joints_max_age_ms), 0.1, 60000, NULL},
    {"safety", "hold", K_ENUM, F(hold_value), 0, 0, "last|measured"},
};
#undef F
#define N_KEYS (sizeof keys / sizeof keys[0])

static void defaults(node_config *c) {
    memset(c, 0, sizeof *c);
    c->control_hz = 50;
    c->control_cpu = -1;
    c->rt_priority = 80;
    c->lock_memory = 1;
    c->status_hz = 10;
    snprintf(c->status_topic, sizeof c->status_topic, "pi0.status");
    c->start_timeout_s = 10;
    snprintf(c->backend, sizeof c->backend, "cpu");
    c->n_tokens = -1;
    c->pipelined = 1;
    c->warmup = 1;
    snprintf(c->joints_topic, sizeof c->joints_topic, "joints");
    snprintf(c->action_topic, sizeof c->action_topic, "action");
    snprintf(c->chunk_topic, sizeof c->chunk_topic, "chunk");
    c->trigger = NODE_TRIGGER_LATENCY;
    c->every_ticks = 10;
    c->margin_ticks = 2;
    c->latency_guess_ms = 500;
    c->merge = NODE_MERGE_REPLACE;
    c->blend_ticks = 5;
    c->weight_old = 0.3;
    c->camera_max_age_ms = 200;
    c->joints_max_age_ms = 50;
    c->hold_value = NODE_HOLD_LAST;
}

typedef struct parse_ctx {
    node_config *cfg;
    char dir[NODE_PATH_MAX]; /* the config file's directory */
    char err[512];           /* first error ("section.key: reason") */
} parse_ctx;

static int set_err(parse_ctx *p, const char *sec, const char *name, const char *fmt,
                   const char *val) {
    if (!p->err[0]) {
        char why[256];
        snprintf(why, sizeof why, fmt, val);
        snprintf(p->err, sizeof p->err, "%s.%s: %s", sec, name, why);
    }
    return 0;
}

/* "section.key: 'v' is not <what> in [lo, hi]" */
static int range_err(parse_ctx *p, const key *k, const char *v, const char *what) {
    char fmt[128];
    snprintf(fmt, sizeof fmt, "'%%s' is not %s in [%g, %g]", what, k->lo, k->hi);
    return set_err(p, k->section, k->name, fmt, v);
}

static int parse_list(parse_ctx *p, const key *k, const char *v, int32_t *out, int cap,
                      int *n_out) {
    int n = 0;
    const char *s = v;
    while (*s) {
        char *end;
        errno = 0;
        long x = strtol(s, &end, 10);
        if (errno || end == s || x < 0 || x > INT32_MAX)
            return set_err(p, k->section, k->name,
                           "'%s' is not a comma-separated list of "
                           "non-negative integers",
                           v);
        if (n >= cap) return set_err(p, k->section, k->name, "'%s': too many values", v);
        out[n++] = (int32_t)x;
        s = end;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == ',')
            s++;
        else if (*s)
            return set_err(p, k->section, k->name,
                           "'%s' is not a comma-separated list of non-negative integers", v);
        while (*s == ' ' || *s == '\t')
            s++;
    }
    *n_out = n;
    return 1;
}

static int set_value(parse_ctx *p, const key *k, const char *v) {
    char *field = (char *)p->cfg + k->off;
    switch (k->kind) {
    case K_DOUBLE: {
        int bad = 0;
        double d = pi0__parse_num(v, k->lo, k->hi, &bad); /* ranges are finite: no nan, inf */
        if (bad) return range_err(p, k, v, "a number");
        *(double *)field = d;
        return 1;
    }
    case K_INT: {
        char *end;
        errno = 0;
        long x = strtol(v, &end, 10);
        if (errno || end == v || *end || x < (long)k->lo || x > (long)k->hi)
            return range_err(p, k, v, "an integer");
        *(int *)field = (int)x;
        return 1;
    }
    case K_U64: {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end || *v == '-' || *v == '+')
            return set_err(p, k->section, k->name, "'%s' is not an integer in [0, 2^64)", v);
        *(uint64_t *)field = (uint64_t)x;
        return 1;
    }
    case K_BOOL:
        if (!strcmp(v, "on") || !strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
            *(int *)field = 1;
        else if (!strcmp(v, "off") || !strcmp(v, "false") || !strcmp(v, "0") ||
                 !strcmp(v, "no"))
            *(int *)field = 0;
        else
            return set_err(p, k->section, k->name, "'%s' is not on/off", v);
        return 1;
    case K_ENUM: {
        const char *s = k->enums;
        for (int i = 0; *s; i++) {
            const char *bar = strchr(s, '|');
            size_t len = bar ? (size_t)(bar - s) : strlen(s);
            if (strlen(v) == len && !strncmp(v, s, len)) {
                *(int *)field = i;
                return 1;
            }
            s += len + (bar != NULL);
        }
        char fmt[160];
        snprintf(fmt, sizeof fmt, "'%%s' is not one of %s", k->enums);
        return set_err(p, k->section, k->name, fmt, v);
    }
    case K_TOPIC:
        if (pi0_topic_name_check(v))
            return set_err(p, k->section, k->name,
                           "'%s' is not a topic name ([A-Za-z0-9_.-]{1,63}, not starting "
                           "with .)",
                           v);
        /* fallthrough */
    case K_STR:
        if (strlen(v) >= k->size) return set_err(p, k->section, k->name, "'%s' is too long", v);
        snprintf(field, k->size, "%s", v);
        return 1;
    case K_PATH:
        if (!*v) return set_err(p, k->section, k->name, "empty path%s", "");
        if (v[0] == '/' || !p->dir[0]) {
            if (strlen(v) >= k->size)
                return set_err(p, k->section, k->name, "'%s' is too long", v);
            snprintf(field, k->size, "%s", v);
        } else {
            if (strlen(p->dir) + 1 + strlen(v) >= k->size)
                return set_err(p, k->section, k->name, "'%s' is too long", v);
            snprintf(field, k->size, "%s/%s", p->dir, v);
        }
        return 1;
    case K_CPUS:
        return parse_list(p, k, v, p->cfg->infer_cpus, NODE_CPUS_MAX, &p->cfg->n_infer_cpus);
    case K_TOKENS:
        return parse_list(p, k, v, p->cfg->tokens, NODE_TOKENS_MAX, &p->cfg->n_tokens);
    }
    return 0;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    parse_ctx *p = user;
    for (size_t i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].section, section) && !strcmp(keys[i].name, name))
            return set_value(p, &keys[i], value);
    if (!p->err[0])
        snprintf(p->err, sizeof p->err, "%s.%s: unknown key", section[0] ? section : "(none)",
                 name);
    return 0;
}

/* Cross-key checks after everything was read. */
static int validate(const node_config *c, const char *path) {
    if (!c->model_dir[0]) return pi0_errorf(PI0_ECONFIG, "%s: model.dir: required", path);
    if (!c->calib[0]) return pi0_errorf(PI0_ECONFIG, "%s: robot.calib: required", path);
    if (c->n_tokens < 0 && !c->prompt[0])
        return pi0_errorf(PI0_ECONFIG, "%s: model.tokens: give tokens or prompt + tokenizer",
                          path);
    if (c->n_tokens >= 0 && c->prompt[0])
        return pi0_errorf(PI0_ECONFIG, "%s: model.prompt: give tokens or prompt, not both",
                          path);
    if (c->prompt[0] && !c->tokenizer[0])
        return pi0_errorf(PI0_ECONFIG, "%s: model.tokenizer: required with model.prompt", path);
    const char *topics[4] = {c->joints_topic, c->action_topic, c->chunk_topic, c->status_topic};
    const char *names[4] = {"robot.joints_topic", "robot.action_topic", "robot.chunk_topic",
                            "node.status_topic"};
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++)
            if (!strcmp(topics[i], topics[j]))
                return pi0_errorf(PI0_ECONFIG, "%s: %s: '%s' is also %s", path, names[j],
                                  topics[j], names[i]);
    return 0;
}

int node_config_load(node_config *cfg, const char *path, const char *const *sets, int n_sets) {
    parse_ctx p;
    memset(&p, 0, sizeof p);
    p.cfg = cfg;
    defaults(cfg);
    snprintf(cfg->path, sizeof cfg->path, "%s", path);
    char tmp[NODE_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    snprintf(p.dir, sizeof p.dir, "%s", dirname(tmp));
    FILE *f = fopen(path, "r");
    if (!f) return pi0_errorf(PI0_ENOENT, "%s: %s", path, strerror(errno));
    int line = ini_parse_file(f, handler, &p);
    int read_errno = ferror(f) ? errno : 0; /* e.g. EISDIR: inih sees only an EOF */
    fclose(f);
    if (read_errno) return pi0_errorf(PI0_EIO, "%s: %s", path, strerror(read_errno));
    if (line > 0) {
        if (!p.err[0]) snprintf(p.err, sizeof p.err, "syntax error (want key = value)");
        return pi0_errorf(PI0_ECONFIG, "%s:%d: %s", path, line, p.err);
    }
    if (line < 0) return pi0_errorf(PI0_EIO, "%s: cannot read", path);
    /* overrides: paths in them are relative to the current directory */
    p.dir[0] = 0;
    for (int i = 0; i < n_sets; i++) {
        const char *s = sets[i], *dot = strchr(s, '.'), *eq = strchr(s, '=');
        if (!dot || !eq || dot > eq || dot == s)
            return pi0_errorf(PI0_ECONFIG, "--set %s: want section.key=value", s);
        char sec[64], name[64];
        if ((size_t)(dot - s) >= sizeof sec || (size_t)(eq - dot - 1) >= sizeof name)
            return pi0_errorf(PI0_ECONFIG, "--set %s: want section.key=value", s);
        snprintf(sec, sizeof sec, "%.*s", (int)(dot - s), s);
        snprintf(name, sizeof name, "%.*s", (int)(eq - dot - 1), dot + 1);
        if (!handler(&p, sec, name, eq + 1)) return pi0_errorf(PI0_ECONFIG, "--set %s", p.err);
    }
    return validate(cfg, path);
}

void node_config_print(const node_config *c, FILE *f) {
    const char *sec = "";
    for (size_t i = 0; i < N_KEYS; i++) {
        const key *k = &keys[i];
        const char *field = (const char *)c + k->off;
        if (strcmp(sec, k->section)) fprintf(f, "%s[%s]\n", i ? "\n" : "", sec = k->section);
        fprintf(f, "%s = ", k->name);
        switch (k->kind) {
        case K_DOUBLE:
            fprintf(f, "%g\n", *(const double *)field);
            break;
        case K_INT:
            fprintf(f, "%d\n", *(const int *)field);
            break;
        case K_U64:
            fprintf(f, "%llu\n", (unsigned long long)*(const uint64_t *)field);
            break;
        case K_BOOL:
            fprintf(f, "%s\n", *(const int *)field ? "on" : "off");
            break;
        case K_ENUM: {
            const char *s = k->enums;
            for (int j = 0; j < *(const int *)field; j++)
                s = strchr(s, '|') + 1;
            fprintf(f, "%.*s\n", (int)strcspn(s, "|"), s);
            break;
        }
        case K_STR:
        case K_PATH:
        case K_TOPIC:
            fprintf(f, "%s\n", field);
            break;
        case K_CPUS:
        case K_TOKENS: {
            const int32_t *v = k->kind == K_CPUS ? c->infer_cpus : c->tokens;
            int n = k->kind == K_CPUS ? c->n_infer_cpus : c->n_tokens;
            for (int j = 0; j < n; j++)
                fprintf(f, "%s%d", j ? "," : "", (int)v[j]);
            fputc('\n', f);
            break;
        }
        }
    }
}
