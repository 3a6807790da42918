/* launch.c — `pi0rt-launch FILE.ini`: start the processes of a launch file in dependency
 * order, prefix their output, restart them per policy, stop them in reverse order and
 * remove the topics their dead publishers left.
 *
 * One thread, one poll() loop over the children's stdout/stderr pipes, their readiness
 * pipes and a signalfd (SIGCHLD, SIGINT, SIGTERM, SIGHUP), woken at least every 50 ms for
 * the timers (readiness checks, back-off, grace times, duration). Each child runs in its
 * own process group (a terminal's Ctrl-C reaches only the launcher, which then stops the
 * children in order) with PR_SET_PDEATHSIG = SIGKILL, so a SIGKILLed launcher takes its
 * children with it. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <ini.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_cli.h"
#include "common/pi0_time.h"
#include "shm/pi0_shm.h"

#define MAX_PROCS 32
#define MAX_ARGS  64
#define MAX_ENV   32
#define MAX_AFTER 8
#define NAME_MAX_ 63
#define LINE_CAP  4096
#define MAX_PIDS  1024

enum restart_policy { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };
enum ready_kind { READY_STARTED, READY_TOPIC, READY_NOTIFY };
enum proc_state { P_WAITING, P_RUNNING, P_BACKOFF, P_DONE };

typedef struct outbuf {
    int fd; /* -1 when closed */
    size_t len;
    char buf[LINE_CAP];
} outbuf;

typedef struct proc {
    /* configuration */
    char name[NAME_MAX_ + 1];
    int line; /* line of the [process NAME] header */
    char *cmd;
    int cmd_line;
    char *path; /* cmd resolved against PATH */
    char *args[MAX_ARGS];
    int nargs;
    char *env[MAX_ENV];
    int nenv;
    cpu_set_t cpus;
    int has_cpus;
    int restart;
    int max_restarts; /* -1: unlimited */
    char after_name[MAX_AFTER][NAME_MAX_ + 1];
    int after_line[MAX_AFTER];
    int after[MAX_AFTER];
    int nafter;
    int ready_kind;
    char ready_topic[PI0_TOPIC_NAME_MAX + 1];
    double ready_timeout;
    int stop_signal;
    int required;
    /* run time */
    int state;
    pid_t pid;
    int ready;
    int ready_fd; /* read end of the readiness pipe, -1 when none */
    double started, first_started, run_s, next_start, ready_deadline;
    int restarts, backoff_n;
    int status;     /* wait status of the last exit */
    int stop_phase; /* 0 not stopping, 1 stop_signal sent, 2 SIGTERM, 3 SIGKILL */
    double stop_deadline;
    int started_once, stopped_by_us;
    outbuf out, err;
} proc;

typedef struct launch {
    const char *file;
    proc procs[MAX_PROCS];
    int n;
    double duration, grace, backoff, backoff_max, ready_timeout;
    /* parsing */
    int line, at_line_start;
    int section_line, new_section; /* line of the last [section] header; one just began */
    FILE *fp;
    char err[512]; /* first error, "file:line: ..." */
    int cur;       /* current [process] index, -1 in [launch], -2 elsewhere */
    /* run time */
    int order[MAX_PROCS]; /* first-start order */
    int norder;
    pid_t pids[MAX_PIDS]; /* every pid we spawned (topic clean-up) */
    int npids;
    int stopping, kill_now, stop_idx;
    int fail_code; /* first failure's code, 0 = none */
    char fail_why[256];
} launch;

// ---- configuration -------------------------------------------------------------------

static int cfg_error(launch *L, const char *fmt, ...) PI0_PRINTF(2, 3);
static int cfg_error(launch *L, const char *fmt, ...) {
    if (L->err[0]) return 0; /* keep the first error */
    int k = snprintf(L->err, sizeof L->err, "%s:%d: ", L->file, L->line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->err + k, sizeof L->err - (size_t)k, fmt, ap);
    va_end(ap);
    return 0;
}

/* Splits `s` into words: whitespace separates, '...' and "..." quote, \ escapes inside
 * "..." and outside quotes. Returns the count, or -1 on an unbalanced quote, -2 when
 * more than cap words. Words are malloc'ed. */
static int split_words(const char *s, char **out, int cap) {
    int n = 0;
    size_t len = strlen(s);
    char *w = malloc(len + 1);
    if (!w) return -2;
    const char *p = s;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p) break;
        size_t k = 0;
        while (*p && *p != ' ' && *p != '\t') {
            if (*p == '\'') {
                const char *e = strchr(p + 1, '\'');
                if (!e) goto unbalanced;
                memcpy(w + k, p + 1, (size_t)(e - p - 1));
                k += (size_t)(e - p - 1);
                p = e + 1;
            } else if (*p == '"') {
                p++;
                while (*p && *p != '"') {
                    if (*p == '\\' && p[1]) p++;
                    w[k++] = *p++;
                }
                if (*p != '"') goto unbalanced;
                p++;
            } else {
                if (*p == '\\' && p[1]) p++;
                w[k++] = *p++;
            }
        }
        if (n == cap) {
            free(w);
            return -2;
        }
        w[k] = 0;
        out[n++] = strdup(w);
    }
    free(w);
    return n;
unbalanced:
    free(w);
    for (int i = 0; i < n; i++)
        free(out[i]);
    return -1;
}

static int parse_seconds(const char *v, double lo, double hi, double *out) {
    int bad = 0;
    double d = pi0__parse_num(v, lo, hi, &bad);
    if (!bad) *out = d;
    return -bad;
}

static int parse_int(const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

static const struct {
    const char *name;
    int sig;
} SIGNALS[] = {{"INT", SIGINT},   {"TERM", SIGTERM}, {"HUP", SIGHUP},  {"QUIT", SIGQUIT},
               {"KILL", SIGKILL}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2}};

static int parse_signal(const char *v) {
    if (!strncmp(v, "SIG", 3)) v += 3;
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++)
        if (!strcmp(v, SIGNALS[i].name)) return SIGNALS[i].sig;
    return 0;
}

static const char *signal_name(int sig) {
    static char bufs[4][16]; /* a few calls may share one printf */
    static int k;
    char *buf = bufs[k++ & 3];
    if (sig == SIGSEGV) return "SIGSEGV";
    if (sig == SIGABRT) return "SIGABRT";
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++)
        if (SIGNALS[i].sig == sig) {
            snprintf(buf, sizeof bufs[0], "SIG%s", SIGNALS[i].name);
            return buf;
        }
    snprintf(buf, sizeof bufs[0], "signal %d", sig);
    return buf;
}

/* "0-3,6" into a CPU set, each CPU also allowed for this process. */
static int parse_cpus(launch *L, const char *name, const char *v, cpu_set_t *set) {
    cpu_set_t allowed;
    CPU_ZERO(set);
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) CPU_ZERO(&allowed);
    const char *p = v;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p || a < 0)
            return cfg_error(L, "[process %s] cpus: \"%s\": want a list like 0-3,6", name, v);
        p = end;
        if (*p == '-') {
            b = strtol(p + 1, &end, 10);
            if (end == p + 1 || b < a)
                return cfg_error(L, "[process %s] cpus: \"%s\": bad range", name, v);
            p = end;
        }
        if (b >= CPU_SETSIZE)
            return cfg_error(L, "[process %s] cpus: CPU %ld does not exist", name, b);
        for (long c = a; c <= b; c++) {
            if (!CPU_ISSET((int)c, &allowed))
                return cfg_error(
                    L, "[process %s] cpus: CPU %ld is not available to this process", name, c);
            CPU_SET((int)c, set);
        }
        if (*p == ',')
            p++;
        else if (*p)
            return cfg_error(L, "[process %s] cpus: \"%s\": want a list like 0-3,6", name, v);
    }
    return CPU_COUNT(set) ? 1 : cfg_error(L, "[process %s] cpus: empty list", name);
}

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_) return 0;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || s[i] == '-' || s[i] == '.' || (s[i] >= '0' && s[i] <= '9') ||
              (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')))
            return 0;
    return 1;
}

static int on_launch_key(launch *L, const char *key, const char *v) {
    double d;
    if (!strcmp(key, "duration")) {
        if (parse_seconds(v, 0, 1e7, &d))
            return cfg_error(L, "[launch] duration: \"%s\": want seconds >= 0", v);
        L->duration = d;
    } else if (!strcmp(key, "grace")) {
        if (parse_seconds(v, 0.01, 600, &d))
            return cfg_error(L, "[launch] grace: \"%s\": want 0.01..600 s", v);
        L->grace = d;
    } else if (!strcmp(key, "backoff")) {
        if (parse_seconds(v, 0.01, 600, &d))
            return cfg_error(L, "[launch] backoff: \"%s\": want 0.01..600 s", v);
        L->backoff = d;
    } else if (!strcmp(key, "backoff_max")) {
        if (parse_seconds(v, 0.01, 3600, &d))
            return cfg_error(L, "[launch] backoff_max: \"%s\": want 0.01..3600 s", v);
        L->backoff_max = d;
    } else if (!strcmp(key, "ready_timeout")) {
        if (parse_seconds(v, 0.01, 3600, &d))
            return cfg_error(L, "[launch] ready_timeout: \"%s\": want 0.01..3600 s", v);
        L->ready_timeout = d;
    } else {
        return cfg_error(L,
                         "[launch] %s: unknown key (duration, grace, backoff, backoff_max, "
                         "ready_timeout)",
                         key);
    }
    return 1;
}

static int on_process_key(launch *L, proc *p, const char *key, const char *v) {
    long x;
    double d;
    if (!strcmp(key, "cmd")) {
        if (p->cmd) return cfg_error(L, "[process %s] cmd: given twice", p->name);
        if (!*v) return cfg_error(L, "[process %s] cmd: empty", p->name);
        p->cmd = strdup(v);
        p->cmd_line = L->line;
    } else if (!strcmp(key, "args")) {
        int k = split_words(v, p->args + p->nargs, MAX_ARGS - p->nargs);
        if (k == -1) return cfg_error(L, "[process %s] args: unbalanced quote", p->name);
        if (k < 0) return cfg_error(L, "[process %s] args: more than %d", p->name, MAX_ARGS);
        p->nargs += k;
    } else if (!strcmp(key, "env")) {
        char *w[MAX_ENV];
        int k = split_words(v, w, MAX_ENV - p->nenv);
        if (k == -1) return cfg_error(L, "[process %s] env: unbalanced quote", p->name);
        if (k < 0) return cfg_error(L, "[process %s] env: more than %d", p->name, MAX_ENV);
        for (int i = 0; i < k; i++) {
            char *eq = strchr(w[i], '=');
            if (!eq || eq == w[i]) {
                cfg_error(L, "[process %s] env: \"%s\": want NAME=VALUE", p->name, w[i]);
                for (int m = i; m < k; m++)
                    free(w[m]);
                return 0;
            }
            p->env[p->nenv++] = w[i];
        }
    } else if (!strcmp(key, "cpus")) {
        if (!parse_cpus(L, p->name, v, &p->cpus)) return 0;
        p->has_cpus = 1;
    } else if (!strcmp(key, "restart")) {
        if (!strcmp(v, "no"))
            p->restart = RESTART_NO;
        else if (!strcmp(v, "on-failure"))
            p->restart = RESTART_ON_FAILURE;
        else if (!strcmp(v, "always"))
            p->restart = RESTART_ALWAYS;
        else
            return cfg_error(L, "[process %s] restart: \"%s\": want no, on-failure or always",
                             p->name, v);
    } else if (!strcmp(key, "max_restarts")) {
        if (parse_int(v, -1, 1000000, &x))
            return cfg_error(L, "[process %s] max_restarts: \"%s\": want -1 (no limit) or >= 0",
                             p->name, v);
        p->max_restarts = (int)x;
    } else if (!strcmp(key, "after")) {
        char *w[MAX_AFTER];
        int k = split_words(v, w, MAX_AFTER - p->nafter);
        if (k < 0)
            return cfg_error(L, "[process %s] after: more than %d names", p->name, MAX_AFTER);
        for (int i = 0; i < k; i++) {
            if (!name_ok(w[i]))
                return cfg_error(L, "[process %s] after: bad name \"%s\"", p->name, w[i]);
            snprintf(p->after_name[p->nafter], sizeof p->after_name[0], "%s", w[i]);
            p->after_line[p->nafter++] = L->line;
            free(w[i]);
        }
    } else if (!strcmp(key, "ready")) {
        if (!strcmp(v, "started"))
            p->ready_kind = READY_STARTED;
        else if (!strcmp(v, "notify"))
            p->ready_kind = READY_NOTIFY;
        else if (!strncmp(v, "topic ", 6)) {
            const char *t = v + 6;
            while (*t == ' ')
                t++;
            if (pi0_topic_name_check(t) != 0)
                return cfg_error(L, "[process %s] ready: bad topic name \"%s\"", p->name, t);
            p->ready_kind = READY_TOPIC;
            snprintf(p->ready_topic, sizeof p->ready_topic, "%s", t);
        } else
            return cfg_error(L,
                             "[process %s] ready: \"%s\": want started, notify or topic NAME",
                             p->name, v);
    } else if (!strcmp(key, "ready_timeout")) {
        if (parse_seconds(v, 0.01, 3600, &d))
            return cfg_error(L, "[process %s] ready_timeout: \"%s\": want 0.01..3600 s",
                             p->name, v);
        p->ready_timeout = d;
    } else if (!strcmp(key, "stop_signal")) {
        int s = parse_signal(v);
        if (!s)
            return cfg_error(L,
                             "[process %s] stop_signal: \"%s\": want INT, TERM, HUP, QUIT, "
                             "KILL, USR1 or USR2",
                             p->name, v);
        p->stop_signal = s;
    } else if (!strcmp(key, "required")) {
        if (!strcmp(v, "yes"))
            p->required = 1;
        else if (!strcmp(v, "no"))
            p->required = 0;
        else
            return cfg_error(L, "[process %s] required: \"%s\": want yes or no", p->name, v);
    } else {
        return cfg_error(L,
                         "[process %s] %s: unknown key (cmd, args, env, cpus, restart, "
                         "max_restarts, after, ready, ready_timeout, stop_signal, required)",
                         p->name, key);
    }
    return 1;
}

static int on_ini(void *user, const char *section, const char *key, const char *value) {
    launch *L = user;
    if (L->err[0]) return 1; /* report only the first error */
#if defined(INI_CALL_HANDLER_ON_NEW_SECTION) && INI_CALL_HANDLER_ON_NEW_SECTION
    if (!key) return 1;
#endif
    int new_section = L->new_section, key_line = L->line;
    L->new_section = 0;
    if (new_section) L->cur = -2;
    L->line = L->section_line; /* errors about the section name the header's line */
    if (!strcmp(section, "launch")) {
        L->line = key_line;
        return on_launch_key(L, key, value);
    }
    if (strncmp(section, "process ", 8) != 0)
        return cfg_error(L, "[%s]: unknown section (want [launch] or [process NAME])", section);
    const char *name = section + 8;
    while (*name == ' ')
        name++;
    if (!name_ok(name))
        return cfg_error(L, "[%s]: process name must be 1-%d of [A-Za-z0-9_.-]", section,
                         NAME_MAX_);
    proc *p = NULL;
    if (L->cur >= 0 && !strcmp(L->procs[L->cur].name, name)) p = &L->procs[L->cur];
    if (!p) {
        for (int i = 0; i < L->n; i++)
            if (!strcmp(L->procs[i].name, name))
                return cfg_error(L, "[process %s]: defined twice (first at line %d)", name,
                                 L->procs[i].line);
        if (L->n == MAX_PROCS) return cfg_error(L, "more than %d processes", MAX_PROCS);
        p = &L->procs[L->n];
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", name);
        p->line = L->section_line;
        p->max_restarts = -1;
        p->stop_signal = SIGINT;
        p->ready_timeout = -1;
        p->ready_fd = -1;
        p->out.fd = p->err.fd = -1;
        L->cur = L->n++;
    }
    L->line = key_line;
    return on_process_key(L, p, key, value);
}

/* inih reads through this so the handler knows the line it is handling. */
static char *reader(char *str, int num, void *stream) {
    launch *L = stream;
    char *r = fgets(str, num, L->fp);
    if (!r) return NULL;
    if (L->at_line_start) L->line++;
    if (L->at_line_start) {
        const char *q = r + strspn(r, " \t");
        if (*q == '[') L->section_line = L->line, L->new_section = 1;
    }
    size_t n = strlen(r);
    L->at_line_start = n > 0 && r[n - 1] == '\n';
    if (!L->at_line_start && !feof(L->fp)) /* inih would cut the line here */
        cfg_error(L,
                  "line longer than %d characters (give long args on several `args =` lines)",
                  num - 2);
    return r;
}

/* Resolves cmd like execvp would; NULL when no executable file is found. */
static char *resolve_cmd(const char *cmd) {
    struct stat st;
    if (strchr(cmd, '/'))
        return access(cmd, X_OK) == 0 && stat(cmd, &st) == 0 && S_ISREG(st.st_mode)
                   ? strdup(cmd)
                   : NULL;
    const char *path = getenv("PATH");
    if (!path) path = "/usr/local/bin:/usr/bin:/bin";
    char buf[PATH_MAX];
    while (*path) {
        const char *e = strchr(path, ':');
        size_t k = e ? (size_t)(e - path) : strlen(path);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)k, k ? path : ".", cmd);
        if (access(buf, X_OK) == 0 && stat(buf, &st) == 0 && S_ISREG(st.st_mode))
            return strdup(buf);
        path += k + (e ? 1 : 0);
    }
    return NULL;
}

/* Depth-first search for a cycle through `after`; returns the process index whose
 * `after` entry closes the cycle (and that entry in *which), or -1. */
static int find_cycle(launch *L, int i, int *color, int *which) {
    color[i] = 1;
    for (int k = 0; k < L->procs[i].nafter; k++) {
        int j = L->procs[i].after[k];
        if (color[j] == 1) {
            *which = k;
            return i;
        }
        if (color[j] == 0) {
            int r = find_cycle(L, j, color, which);
            if (r >= 0) return r;
        }
    }
    color[i] = 2;
    return -1;
}

/* Parses and checks the whole file; 0, or -1 with L->err set. Nothing is started. */
static int load_config(launch *L) {
    L->fp = fopen(L->file, "r");
    if (!L->fp) {
        snprintf(L->err, sizeof L->err, "%s: %s", L->file, strerror(errno));
        return -1;
    }
    L->line = 0;
    L->at_line_start = 1;
    L->cur = -2;
    int r = ini_parse_stream(reader, L, on_ini, L);
    int read_errno = ferror(L->fp) ? errno : 0; /* e.g. EISDIR: inih sees only an EOF */
    fclose(L->fp);
    L->fp = NULL;
    if (L->err[0]) return -1;
    if (read_errno) {
        snprintf(L->err, sizeof L->err, "%s: %s", L->file, strerror(read_errno));
        return -1;
    }
    if (r != 0) {
        snprintf(L->err, sizeof L->err, "%s:%d: syntax error (want [section] or key = value)",
                 L->file, r);
        return -1;
    }
    if (L->n == 0) {
        snprintf(L->err, sizeof L->err, "%s: no [process NAME] section", L->file);
        return -1;
    }
    for (int i = 0; i < L->n; i++) {
        proc *p = &L->procs[i];
        if (!p->cmd) {
            snprintf(L->err, sizeof L->err, "%s:%d: [process %s]: no cmd", L->file, p->line,
                     p->name);
            return -1;
        }
        p->path = resolve_cmd(p->cmd);
        if (!p->path) {
            snprintf(L->err, sizeof L->err,
                     "%s:%d: [process %s] cmd: \"%s\": no such executable", L->file,
                     p->cmd_line, p->name, p->cmd);
            return -1;
        }
        if (p->ready_timeout < 0) p->ready_timeout = L->ready_timeout;
        for (int k = 0; k < p->nafter; k++) {
            int j = -1;
            for (int m = 0; m < L->n; m++)
                if (!strcmp(L->procs[m].name, p->after_name[k])) j = m;
            if (j < 0 || j == i) {
                snprintf(L->err, sizeof L->err, "%s:%d: [process %s] after: %s \"%s\"", L->file,
                         p->after_line[k], p->name,
                         j < 0 ? "no process named" : "itself:", p->after_name[k]);
                return -1;
            }
            p->after[k] = j;
        }
    }
    int color[MAX_PROCS] = {0};
    for (int i = 0; i < L->n; i++) {
        if (color[i]) continue;
        int which = 0, c = find_cycle(L, i, color, &which);
        if (c >= 0) {
            proc *p = &L->procs[c];
            snprintf(L->err, sizeof L->err, "%s:%d: [process %s] after: %s: cycle in `after`",
                     L->file, p->after_line[which], p->name, p->after_name[which]);
            return -1;
        }
    }
    return 0;
}

// ---- output ----------------------------------------------------------------------------

static void emit(const proc *p, int is_err, const char *s, size_t n) {
    FILE *f = is_err ? stderr : stdout;
    fprintf(f, is_err ? "[%s:err] %.*s\n" : "[%s] %.*s\n", p->name, (int)n, s);
    fflush(f);
}

/* Reads what is available; prints complete lines (and a full buffer as one line). At EOF
 * prints the rest and closes the pipe. */
static void drain(proc *p, outbuf *o, int is_err) {
    while (o->fd >= 0) {
        ssize_t r = read(o->fd, o->buf + o->len, sizeof o->buf - o->len);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            if (o->len) emit(p, is_err, o->buf, o->len);
            o->len = 0;
            close(o->fd);
            o->fd = -1;
            return;
        }
        o->len += (size_t)r;
        size_t start = 0;
        for (size_t i = 0; i < o->len; i++)
            if (o->buf[i] == '\n') {
                emit(p, is_err, o->buf + start, i - start);
                start = i + 1;
            }
        if (start == 0 && o->len == sizeof o->buf)
            start = o->len, emit(p, is_err, o->buf, o->len);
        memmove(o->buf, o->buf + start, o->len - start);
        o->len -= start;
    }
}

static void say(const char *fmt, ...) PI0_PRINTF(1, 2);
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("launch: ", stdout);
    vfprintf(stdout, fmt, ap);
    fputc('\n', stdout);
    fflush(stdout);
    va_end(ap);
}

// ---- processes -------------------------------------------------------------------------

static void fail(launch *L, int code, const char *fmt, ...) PI0_PRINTF(3, 4);
static void fail(launch *L, int code, const char *fmt, ...) {
    if (L->fail_code) return;
    L->fail_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->fail_why, sizeof L->fail_why, fmt, ap);
    va_end(ap);
}

static int set_nonblock_cloexec(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fcntl(fd, F_SETFL, fl | O_NONBLOCK) | fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int start_proc(launch *L, int i) {
    proc *p = &L->procs[i];
    int out[2], err[2], rdy[2] = {-1, -1};
    if (pipe2(out, O_CLOEXEC) != 0) return -1;
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(out[0]), close(out[1]);
        return -1;
    }
    if (p->ready_kind == READY_NOTIFY && pipe2(rdy, O_CLOEXEC) != 0) {
        close(out[0]), close(out[1]), close(err[0]), close(err[1]);
        return -1;
    }
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(out[0]), close(out[1]), close(err[0]), close(err[1]);
        if (rdy[0] >= 0) close(rdy[0]), close(rdy[1]);
        return -1;
    }
    if (pid == 0) {
        /* child: die with the launcher, own process group, default signals, pipes */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        setpgid(0, 0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD};
        for (size_t k = 0; k < sizeof sigs / sizeof sigs[0]; k++)
            signal(sigs[k], SIG_DFL);
        /* stdin from /dev/null: in its own process group a child reading the terminal
         * would be stopped (SIGTTIN) */
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0), close(devnull);
        dup2(out[1], 1);
        dup2(err[1], 2);
        if (rdy[1] >= 0) {
            dup2(rdy[1], 3);
            setenv("PI0RT_READY_FD", "3", 1);
        }
        for (int k = 0; k < p->nenv; k++)
            putenv(p->env[k]);
        if (p->has_cpus && sched_setaffinity(0, sizeof p->cpus, &p->cpus) != 0)
            dprintf(2, "cpus: %s\n", strerror(errno));
        char *argv[MAX_ARGS + 2];
        argv[0] = p->cmd;
        for (int k = 0; k < p->nargs; k++)
            argv[k + 1] = p->args[k];
        argv[p->nargs + 1] = NULL;
        execv(p->path, argv);
        dprintf(2, "exec %s: %s\n", p->path, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also here, so signals to the group work right away */
    close(out[1]);
    close(err[1]);
    if (rdy[1] >= 0) close(rdy[1]);
    set_nonblock_cloexec(out[0]);
    set_nonblock_cloexec(err[0]);
    if (rdy[0] >= 0) set_nonblock_cloexec(rdy[0]);
    p->out.fd = out[0];
    p->err.fd = err[0];
    p->out.len = p->err.len = 0;
    p->ready_fd = rdy[0];
    p->pid = pid;
    p->state = P_RUNNING;
    p->started = pi0__now_s();
    if (!p->started_once) {
        p->started_once = 1;
        p->first_started = p->started;
        L->order[L->norder++] = i;
        p->ready_deadline = p->started + p->ready_timeout;
    }
    if (L->npids < MAX_PIDS) L->pids[L->npids++] = pid;
    say("%s: started (pid %d)%s", p->name, (int)pid, p->restarts ? ", restarted" : "");
    return 0;
}

/* 1 when the process counts as ready for those that wait on it. */
static int check_ready(proc *p) {
    if (p->ready) return 1;
    if (p->state != P_RUNNING) return 0;
    if (p->ready_kind == READY_STARTED) return p->ready = 1;
    if (p->ready_kind == READY_NOTIFY) {
        char c;
        if (p->ready_fd >= 0 && read(p->ready_fd, &c, 1) == 1) p->ready = 1;
        return p->ready;
    }
    pi0_sub *s;
    pi0_sub_opts so = {NULL, -1};
    if (pi0_sub_open(p->ready_topic, &so, &s) == 0) {
        pi0_pub_info info;
        if (pi0_sub_publisher(s, &info) == 0 && info.state == PI0_PUB_ALIVE) p->ready = 1;
        pi0_sub_close(s);
    }
    pi0_clear_error();
    return p->ready;
}

static const char *describe_status(int st, char *buf, size_t cap) {
    if (WIFEXITED(st))
        snprintf(buf, cap, "exited %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, cap, "killed by %s", signal_name(WTERMSIG(st)));
    else
        snprintf(buf, cap, "status 0x%x", st);
    return buf;
}

/* A clean end: exit 0, or the signal we stopped it with (or the 128+signal exit code
 * some programs use for it) while stopping. */
static int clean_end(const proc *p) {
    int st = p->status;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) return 1;
    if (!p->stopped_by_us || p->stop_phase >= 3) return 0;
    int sig = WIFSIGNALED(st) ? WTERMSIG(st) : WIFEXITED(st) ? WEXITSTATUS(st) - 128 : 0;
    return sig == p->stop_signal || sig == SIGTERM || sig == SIGINT;
}

static int fail_code_of(int st) {
    if (WIFEXITED(st)) return WEXITSTATUS(st) ? WEXITSTATUS(st) : 1;
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return 1;
}

static void begin_stop(launch *L, const char *why) {
    if (L->stopping) return;
    L->stopping = 1;
    L->stop_idx = L->norder - 1;
    say("stopping (%s)", why);
    for (int i = 0; i < L->n; i++) {
        proc *p = &L->procs[i];
        if (p->state == P_WAITING || p->state == P_BACKOFF) p->state = P_DONE;
    }
}

static void on_exit_status(launch *L, proc *p, int st, double t) {
    char d[64];
    p->status = st;
    p->pid = 0;
    p->run_s += t - p->started;
    drain(p, &p->out, 0);
    drain(p, &p->err, 1);
    if (p->ready_fd >= 0) {
        check_ready(p);
        close(p->ready_fd);
        p->ready_fd = -1;
    }
    describe_status(st, d, sizeof d);
    int failed = !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    int again =
        !L->stopping &&
        (p->restart == RESTART_ALWAYS || (p->restart == RESTART_ON_FAILURE && failed)) &&
        (p->max_restarts < 0 || p->restarts < p->max_restarts);
    if (again) {
        if (t - p->started >= 10.0) p->backoff_n = 0; /* ran a while: start over */
        double delay = L->backoff * ldexp(1.0, p->backoff_n);
        if (delay > L->backoff_max)
            delay = L->backoff_max;
        else
            p->backoff_n++;
        p->state = P_BACKOFF;
        p->next_start = t + delay;
        say("%s: %s after %.1f s; restart %d in %.1f s (restart = %s)", p->name, d,
            t - p->started, p->restarts + 1, delay,
            p->restart == RESTART_ALWAYS ? "always" : "on-failure");
        return;
    }
    p->state = P_DONE;
    if (L->stopping) return;
    const char *why =
        p->restart == RESTART_NO || !failed ? "" : "; no restart left (max_restarts reached)";
    say("%s: %s after %.1f s%s", p->name, d, t - p->started, why);
    if (!clean_end(p)) fail(L, fail_code_of(st), "%s %s", p->name, d);
    if (p->required) {
        char w[128];
        snprintf(w, sizeof w, "required process %s ended", p->name);
        begin_stop(L, w);
    }
}

static void reap(launch *L) {
    for (;;) {
        int st;
        pid_t pid = waitpid(-1, &st, WNOHANG);
        if (pid <= 0) return;
        double t = pi0__now_s();
        for (int i = 0; i < L->n; i++)
            if (L->procs[i].pid == pid && L->procs[i].state == P_RUNNING)
                on_exit_status(L, &L->procs[i], st, t);
    }
}

/* Starts waiting processes whose `after` processes are ready; fails the launch when one
 * waited for is past its ready timeout or ended before it was ready. */
static void start_ready(launch *L, double t) {
    for (int i = 0; i < L->n && !L->stopping; i++) {
        proc *p = &L->procs[i];
        if (p->state == P_BACKOFF && t >= p->next_start) {
            p->restarts++;
            p->ready = 0;
            if (start_proc(L, i) != 0) {
                fail(L, 1, "%s: cannot start: %s", p->name, strerror(errno));
                begin_stop(L, "a process could not be started");
            }
            continue;
        }
        if (p->state != P_WAITING) continue;
        int ok = 1;
        for (int k = 0; k < p->nafter && ok; k++) {
            proc *q = &L->procs[p->after[k]];
            if (check_ready(q)) continue;
            ok = 0;
            if (q->state == P_DONE) {
                fail(L, 1, "%s: %s ended before it was ready", p->name, q->name);
                say("%s: cannot start: %s ended before it was ready", p->name, q->name);
                begin_stop(L, "a dependency ended before it was ready");
            } else if (q->started_once && t > q->ready_deadline) {
                const char *how = q->ready_kind == READY_TOPIC    ? "its topic did not appear"
                                  : q->ready_kind == READY_NOTIFY ? "it did not report ready"
                                                                  : "it did not start";
                fail(L, 1, "%s: not ready after %.1f s", q->name, q->ready_timeout);
                say("%s: not ready after %.1f s (%s%s%s); %s not started", q->name,
                    q->ready_timeout, how, q->ready_kind == READY_TOPIC ? ": " : "",
                    q->ready_kind == READY_TOPIC ? q->ready_topic : "", p->name);
                begin_stop(L, "ready timeout");
            }
        }
        if (ok && !L->stopping && start_proc(L, i) != 0) {
            fail(L, 1, "%s: cannot start: %s", p->name, strerror(errno));
            begin_stop(L, "a process could not be started");
        }
    }
}

/* Advances the reverse-order stop: one process at a time, stop_signal, then SIGTERM
 * after the grace time, then SIGKILL. Returns 1 when everything has ended. */
static int advance_stop(launch *L, double t) {
    if (L->kill_now)
        for (int i = 0; i < L->n; i++)
            if (L->procs[i].state == P_RUNNING && L->procs[i].stop_phase < 3) {
                kill(-L->procs[i].pid, SIGKILL);
                L->procs[i].stopped_by_us = 1;
                L->procs[i].stop_phase = 3;
                L->procs[i].stop_deadline = t + 5.0;
            }
    while (L->stop_idx >= 0) {
        proc *p = &L->procs[L->order[L->stop_idx]];
        if (p->state != P_RUNNING) {
            L->stop_idx--;
            continue;
        }
        if (p->stop_phase == 0) {
            p->stopped_by_us = 1;
            p->stop_phase = 1;
            p->stop_deadline = t + L->grace;
            kill(-p->pid, p->stop_signal);
        } else if (t >= p->stop_deadline && p->stop_phase < 3) {
            int sig = p->stop_phase == 1 && p->stop_signal != SIGTERM ? SIGTERM : SIGKILL;
            say("%s: still running %.1f s after %s; sending %s", p->name, L->grace,
                p->stop_phase == 1 ? signal_name(p->stop_signal) : "SIGTERM", signal_name(sig));
            p->stop_phase = sig == SIGTERM ? 2 : 3;
            p->stop_deadline = t + (sig == SIGKILL ? 5.0 : L->grace);
            kill(-p->pid, sig);
        } else if (t >= p->stop_deadline) {
            say("%s: pid %d did not end after SIGKILL; leaving it", p->name, (int)p->pid);
            p->state = P_DONE;
            p->status = W_EXITCODE(1, 0);
            fail(L, 1, "%s did not end", p->name);
            continue;
        }
        return 0;
    }
    for (int i = 0; i < L->n; i++)
        if (L->procs[i].state == P_RUNNING) return 0;
    return 1;
}

// ---- topic clean-up --------------------------------------------------------------------

typedef struct topic_list {
    char names[256][PI0_TOPIC_NAME_MAX + 1];
    int n;
} topic_list;

static int collect_topic(const char *topic, void *ctx) {
    topic_list *tl = ctx;
    if (tl->n < 256) snprintf(tl->names[tl->n++], sizeof tl->names[0], "%s", topic);
    return 0;
}

/* Removes each topic whose last publisher was one of our processes and is dead. */
static void remove_topics(launch *L) {
    static topic_list tl;
    tl.n = 0;
    pi0_topic_foreach(collect_topic, &tl);
    for (int i = 0; i < tl.n; i++) {
        pi0_sub *s;
        pi0_sub_opts so = {NULL, -1};
        if (pi0_sub_open(tl.names[i], &so, &s) != 0) continue;
        pi0_pub_info info;
        int r = pi0_sub_publisher(s, &info);
        pi0_sub_close(s);
        if (r != 0 || info.state != PI0_PUB_DEAD) continue;
        int ours = -1;
        for (int k = 0; k < L->npids; k++)
            if (L->pids[k] == info.pid) ours = k;
        if (ours < 0) continue;
        if (pi0_topic_remove(tl.names[i]) == 0)
            say("removed topic %s (publisher pid %d ended)", tl.names[i], (int)info.pid);
    }
    pi0_clear_error();
}

// ---- main ------------------------------------------------------------------------------

static void summary(launch *L) {
    for (int i = 0; i < L->n; i++) {
        proc *p = &L->procs[i];
        char d[64];
        if (!p->started_once)
            snprintf(d, sizeof d, "not started");
        else if (p->stopped_by_us && clean_end(p) && !WIFEXITED(p->status))
            snprintf(d, sizeof d, "stopped by %s", signal_name(WTERMSIG(p->status)));
        else
            describe_status(p->status, d, sizeof d);
        say("summary: %-12s %-22s restarts %d, ran %.1f s", p->name, d, p->restarts, p->run_s);
    }
}

static const char *const USAGE =
    "usage: pi0rt-launch [--duration S] [--grace S] [--check] LAUNCH.ini\n"
    "\n"
    "Starts the processes of a launch file in dependency order, prefixes their output\n"
    "([NAME] on stdout, [NAME:err] on stderr), restarts them per policy, and on Ctrl-C,\n"
    "SIGTERM or after --duration stops them in reverse start order (their stop_signal,\n"
    "then SIGTERM, then SIGKILL, --grace seconds apart), then removes the topics whose\n"
    "publisher was one of them and is dead.\n"
    "\n"
    "  [launch]         duration (0 = until stopped), grace (2), backoff (0.5),\n"
    "                   backoff_max (8), ready_timeout (10)\n"
    "  [process NAME]   cmd, args (more args lines, or indented lines, append),\n"
    "                   env (NAME=VALUE ...),\n"
    "                   cpus (0-3,6),\n"
    "                   restart = no|on-failure|always, max_restarts (-1 = no limit),\n"
    "                   after = NAME ..., ready = started|notify|topic TOPIC,\n"
    "                   ready_timeout, stop_signal (INT), required = yes|no\n"
    "\n"
    "  --duration S     stop after S seconds (overrides [launch] duration)\n"
    "  --grace S        seconds between stop signals (overrides [launch] grace)\n"
    "  --check          check the file and exit\n"
    "\n"
    "ready = notify: the process writes a byte to the fd in $PI0RT_READY_FD.\n"
    "Exit status: 0 when every process ended cleanly, else the first failure's code\n"
    "(exit status, or 128 + signal); 1 for a bad launch file (one line, file:line,\n"
    "nothing started); 2 for bad usage.\n";

int main(int argc, char **argv) {
    static launch L;
    L.duration = 0;
    L.grace = 2.0;
    L.backoff = 0.5;
    L.backoff_max = 8.0;
    L.ready_timeout = 10.0;
    double opt_duration = -1, opt_grace = -1;
    int check_only = 0;
    static const struct option opts[] = {{"duration", required_argument, 0, 'd'},
                                         {"grace", required_argument, 0, 'g'},
                                         {"check", no_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(USAGE, stdout);
            return 0;
        }
        if (c == 'c')
            check_only = 1;
        else if (c == 'd' && parse_seconds(optarg, 0, 1e7, &opt_duration) == 0) {
        } else if (c == 'g' && parse_seconds(optarg, 0.01, 600, &opt_grace) == 0) {
        } else if (c == 'd' || c == 'g') {
            fprintf(stderr, "pi0rt-launch: --%s \"%s\": want seconds (see --help)\n",
                    c == 'd' ? "duration" : "grace", optarg);
            return 2;
        } else {
            return pi0__opt_error("pi0rt-launch", argv, c);
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "pi0rt-launch: want one LAUNCH.ini (see pi0rt-launch --help)\n");
        return 2;
    }
    L.file = argv[optind];
    if (load_config(&L) != 0) {
        fprintf(stderr, "pi0rt-launch: %s\n", L.err);
        return 1;
    }
    if (opt_duration >= 0) L.duration = opt_duration;
    if (opt_grace > 0) L.grace = opt_grace;
    if (check_only) {
        printf("%s: %d processes, ok\n", L.file, L.n);
        return 0;
    }

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    if (sfd < 0) {
        fprintf(stderr, "pi0rt-launch: signalfd: %s\n", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    double t0 = pi0__now_s();
    for (;;) {
        double t = pi0__now_s();
        if (!L.stopping) {
            start_ready(&L, t);
            if (L.duration > 0 && t - t0 >= L.duration) begin_stop(&L, "duration reached");
            int live = 0;
            for (int i = 0; i < L.n; i++)
                live += L.procs[i].state != P_DONE;
            if (!live) begin_stop(&L, "every process ended");
        }
        if (L.stopping && advance_stop(&L, t)) break;

        struct pollfd pf[1 + 3 * MAX_PROCS];
        proc *owner[1 + 3 * MAX_PROCS];
        int kind[1 + 3 * MAX_PROCS], n = 0;
        pf[n] = (struct pollfd){sfd, POLLIN, 0};
        owner[n] = NULL;
        kind[n++] = 0;
        for (int i = 0; i < L.n; i++) {
            proc *p = &L.procs[i];
            if (p->out.fd >= 0)
                owner[n] = p, kind[n] = 1, pf[n++] = (struct pollfd){p->out.fd, POLLIN, 0};
            if (p->err.fd >= 0)
                owner[n] = p, kind[n] = 2, pf[n++] = (struct pollfd){p->err.fd, POLLIN, 0};
        }
        if (poll(pf, (nfds_t)n, 50) < 0 && errno != EINTR) {
            fprintf(stderr, "pi0rt-launch: poll: %s\n", strerror(errno));
            break;
        }
        for (int k = 1; k < n; k++)
            if (pf[k].revents)
                drain(owner[k], kind[k] == 1 ? &owner[k]->out : &owner[k]->err, kind[k] == 2);
        struct signalfd_siginfo si;
        while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
            if (si.ssi_signo == SIGCHLD) continue;
            if (L.stopping) {
                if (!L.kill_now)
                    say("second %s: sending SIGKILL to everything",
                        signal_name((int)si.ssi_signo));
                L.kill_now = 1;
            } else {
                char w[64];
                snprintf(w, sizeof w, "%s", signal_name((int)si.ssi_signo));
                begin_stop(&L, w);
            }
        }
        reap(&L);
    }
    for (int i = 0; i < L.n; i++) {
        drain(&L.procs[i], &L.procs[i].out, 0);
        drain(&L.procs[i], &L.procs[i].err, 1);
    }
    remove_topics(&L);
    for (int i = 0; i < L.n; i++) {
        proc *p = &L.procs[i];
        if (p->started_once && p->state == P_DONE && !clean_end(p)) {
            char d[64];
            fail(&L, fail_code_of(p->status), "%s %s", p->name,
                 describe_status(p->status, d, sizeof d));
        }
    }
    summary(&L);
    if (L.fail_code) say("exit %d: %s", L.fail_code, L.fail_why);
    return L.fail_code;
}
