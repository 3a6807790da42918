/* pi0rt_shm.c — `pi0rt-shm`, the `ros2 topic` of pi0rt: ls, info, echo, hz, bw, pub, gc,
 * bench. Every error ends the program with a non-zero status and one line naming what
 * was wrong. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/pi0_cli.h"
#include "common/pi0_hash.h"
#include "common/pi0_time.h"
#include "pi0_shm.h"
#include "shm_internal.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void install_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int fail(int status, const char *what) {
    fprintf(stderr, "pi0rt-shm: %s: %s\n", what, status ? pi0_last_error_for(status) : "error");
    return 1;
}

static int usage_error(const char *fmt, const char *arg) {
    fprintf(stderr, "pi0rt-shm: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see pi0rt-shm --help)\n");
    return 2;
}

static const char *const USAGE =
    "usage: pi0rt-shm COMMAND [ARGS]\n"
    "\n"
    "Inspect and exercise pi0rt shared-memory topics (/dev/shm/pi0rt.<uid>.<topic>).\n"
    "\n"
    "  ls                      topics of this user: type, publisher pid, alive/dead,\n"
    "                          rate, age of the last sample\n"
    "  info TOPIC              header, layout, publisher identity and liveness\n"
    "  echo TOPIC [--count N] [--duration S]\n"
    "                          print each sample, decoded, one per line\n"
    "  hz TOPIC [--duration S] publish rate, printed every second\n"
    "  bw TOPIC [--duration S] bandwidth, printed every second\n"
    "  pub TOPIC --type image|joints|chunk|action|status|raw [--size WxH] [--rate HZ]\n"
    "          [--count N] [--duration S] [--slots N] [--bytes N] [--unlink]\n"
    "                          synthetic publisher (Ctrl-C stops it; --unlink removes the\n"
    "                          topic on exit, otherwise it stays for a restart or gc)\n"
    "  gc [PREFIX]             remove topics (whose name starts with PREFIX) whose\n"
    "                          publisher is dead; never one with a live publisher\n"
    "  record -o FILE.mcap (TOPIC... | --all) [--duration S] [--compression lz4|none]\n"
    "         [--chunk-size BYTES]\n"
    "                          record topics into an MCAP file (ROS 2 messages, LZ4\n"
    "                          chunks); Ctrl-C / SIGTERM finish the file; exit 1 if a\n"
    "                          sample was lost\n"
    "  record --recover BROKEN.mcap -o FIXED.mcap\n"
    "                          rebuild a complete file from every intact chunk\n"
    "  play FILE.mcap [--rate X] [--loop] [--topics T1,T2,...] [--prefix P] [--delay S]\n"
    "                          republish a recording into topics with its timing\n"
    "                          (topics are created first, then --delay S passes)\n"
    "  info FILE.mcap          channels, types, counts, time range, compression,\n"
    "                          damage and what is salvageable (exit 1 if damaged)\n"
    "  bench [--quick] [--other]\n"
    "                          latency benchmark: shm (futex and polling) vs a Unix\n"
    "                          socket, JSON lines; publisher and sleeping subscribers run\n"
    "                          SCHED_FIFO when permitted unless --other\n"
    "  --help                  this text\n"
    "\n"
    "Exit status: 0 ok, 1 error (one line on stderr), 2 bad usage.\n";

// ---- argument helpers ----

typedef struct args {
    const char *topic, *type, *size;
    double rate, duration;
    long count, slots, bytes;
    int unlink_on_exit, quick, other;
} args;

enum { NO_TOPIC, NEED_TOPIC, OPT_PREFIX };

/* Parses the options and the positional argument (TOPIC, or gc's optional PREFIX:
 * `positional`) after the command, argv[1..argc), into *a (a->topic). Returns 0, or 2
 * after a message. */
static int parse_args(int argc, char **argv, int positional, args *a) {
    enum {
        O_TYPE = 256,
        O_SIZE,
        O_RATE,
        O_DURATION,
        O_COUNT,
        O_SLOTS,
        O_BYTES,
        O_UNLINK,
        O_QUICK,
        O_OTHER
    };
    static const struct option opts[] = {{"type", required_argument, NULL, O_TYPE},
                                         {"size", required_argument, NULL, O_SIZE},
                                         {"rate", required_argument, NULL, O_RATE},
                                         {"duration", required_argument, NULL, O_DURATION},
                                         {"count", required_argument, NULL, O_COUNT},
                                         {"slots", required_argument, NULL, O_SLOTS},
                                         {"bytes", required_argument, NULL, O_BYTES},
                                         {"unlink", no_argument, NULL, O_UNLINK},
                                         {"quick", no_argument, NULL, O_QUICK},
                                         {"other", no_argument, NULL, O_OTHER},
                                         {NULL, 0, NULL, 0}};
    memset(a, 0, sizeof *a);
    a->count = -1;
    a->duration = -1;
    opterr = 0;
    optind = 1;
    for (int c; (c = getopt_long(argc, argv, ":", opts, NULL)) != -1;) {
        const char *v = optarg;
        double d;
        switch (c) {
        case O_TYPE:
            a->type = v;
            break;
        case O_SIZE:
            a->size = v;
            break;
        case O_RATE:
            if (shm__num_arg(NULL, "--rate", v, 0.001, 1e6, &a->rate)) return 2;
            break;
        case O_DURATION:
            if (shm__num_arg(NULL, "--duration", v, 0, 1e9, &a->duration)) return 2;
            break;
        case O_COUNT:
            if (shm__num_arg(NULL, "--count", v, 0, 1e15, &d)) return 2;
            a->count = (long)d;
            break;
        case O_SLOTS:
            if (shm__num_arg(NULL, "--slots", v, 2, PI0_SHM_SLOTS_MAX, &d)) return 2;
            a->slots = (long)d;
            break;
        case O_BYTES:
            if (shm__num_arg(NULL, "--bytes", v, 1, PI0_SHM_PAYLOAD_MAX, &d)) return 2;
            a->bytes = (long)d;
            break;
        case O_UNLINK:
            a->unlink_on_exit = 1;
            break;
        case O_QUICK:
            a->quick = 1;
            break;
        case O_OTHER:
            a->other = 1;
            break;
        default:
            return pi0__opt_error("pi0rt-shm", argv, c);
        }
    }
    for (int i = optind; i < argc; i++) {
        if (positional != NO_TOPIC && !a->topic)
            a->topic = argv[i];
        else
            return usage_error("unexpected argument \"%s\"", argv[i]);
    }
    if (positional == NEED_TOPIC && !a->topic) return usage_error("%s", "missing TOPIC");
    /* a PREFIX of some topic name is itself a valid name */
    int st = a->topic ? pi0_topic_name_check(a->topic) : 0;
    if (st) {
        fprintf(stderr, "pi0rt-shm: %s\n", pi0_last_error_for(st));
        return 2;
    }
    return 0;
}

static const char *state_name(int state) {
    return state == PI0_PUB_ALIVE ? "alive" : "dead";
}

static void fmt_age(char *buf, size_t cap, int64_t ns) {
    if (ns < 0)
        snprintf(buf, cap, "-");
    else if (ns < 1000000)
        snprintf(buf, cap, "%.0fus", (double)ns / 1e3);
    else if (ns < 10000000000ll)
        snprintf(buf, cap, "%.1fms", (double)ns / 1e6);
    else
        snprintf(buf, cap, "%.0fs", (double)ns / 1e9);
}

// ---- ls / info / gc ----

static int ls_one(const char *topic, void *ctx) {
    (void)ctx;
    pi0_sub *sub;
    int st = pi0_sub_open(topic, NULL, &sub);
    if (st == PI0_EPERM) { /* not ours (planted by another user, a FIFO, a link): skip */
        fprintf(stderr, "pi0rt-shm: ls: skipping %s\n", pi0_last_error());
        return 0;
    }
    if (st) {
        printf("%-24s %-16s %8s %-6s %9s %9s  (%s)\n", topic, "?", "-", "?", "-", "-",
               pi0_last_error_for(st));
        return 0;
    }
    pi0_pub_info pi;
    pi0_topic_info ti;
    pi0_sub_publisher(sub, &pi);
    pi0_sub_topic_info(sub, &ti);
    char age[32];
    fmt_age(age, sizeof age, pi.sample_age_ns);
    printf("%-24s %-16s %8d %-6s %9.2f %9s  %ux%u B\n", topic, ti.type_name, (int)pi.pid,
           state_name(pi.state), pi0_sub_rate_hz(sub), age, ti.slot_count, ti.payload_max);
    pi0_sub_close(sub);
    return 0;
}

static int cmd_ls(void) {
    printf("%-24s %-16s %8s %-6s %9s %9s  %s\n", "TOPIC", "TYPE", "PID", "STATE", "RATE_HZ",
           "AGE", "SLOTS");
    int st = pi0_topic_foreach(ls_one, NULL);
    return st < 0 ? fail(st, "ls") : 0;
}

static int cmd_info(const args *a) {
    pi0_sub *sub;
    int st = pi0_sub_open(a->topic, NULL, &sub);
    if (st) return fail(st, "info");
    pi0_pub_info pi;
    pi0_topic_info ti;
    pi0_sub_publisher(sub, &pi);
    pi0_sub_topic_info(sub, &ti);
    char seg[128], age[32], hb[32];
    pi0_topic_segment_name(a->topic, -1, seg, sizeof seg);
    fmt_age(age, sizeof age, pi.sample_age_ns);
    fmt_age(hb, sizeof hb, pi.heartbeat_age_ns);
    printf("topic:         %s\n", ti.topic);
    printf("segment:       /dev/shm%s (mode %03o)\n", seg, ti.mode);
    /* what the topic costs in /dev/shm, all of it reserved when the publisher creates it */
    printf("size:          %llu bytes = 4096 header + %u x %u slots, page-rounded, + 4096 "
           "waiter page\n",
           (unsigned long long)ti.segment_size, ti.slot_count, ti.slot_size);
    struct statvfs vfs;
    if (statvfs("/dev/shm", &vfs) == 0)
        printf("/dev/shm:      %.1f MiB free of %.1f MiB\n",
               (double)vfs.f_bavail * (double)vfs.f_frsize / 1048576.0,
               (double)vfs.f_blocks * (double)vfs.f_frsize / 1048576.0);
    printf("type:          %s (message version %u, segment ABI %u)\n", ti.type_name,
           ti.msg_version, ti.abi_version);
    printf("slots:         %u x %u bytes (payload up to %u bytes)\n", ti.slot_count,
           ti.slot_size, ti.payload_max);
    printf("publisher:     pid %d, %s, epoch %u, start time %llu\n", (int)pi.pid,
           state_name(pi.state), pi.epoch, (unsigned long long)pi.start_time);
    printf("published:     %llu samples, rate %.2f Hz, last %s ago, heartbeat %s ago\n",
           (unsigned long long)pi.head, pi0_sub_rate_hz(sub), age, hb);
    printf("sleepers:      %u%s\n", ti.waiters,
           ti.waiter_page ? "" : " (waiter page read-only for us: waits poll)");
    pi0_sub_close(sub);
    return 0;
}

typedef struct gc_ctx {
    const char *prefix; /* NULL: every topic */
    int removed, kept;
} gc_ctx;

/* Removing entries while pi0_topic_foreach reads the directory is fine: readdir still
 * returns every entry not yet removed. */
static int gc_one(const char *topic, void *ctx) {
    gc_ctx *g = ctx;
    if (g->prefix && strncmp(topic, g->prefix, strlen(g->prefix))) return 0;
    int st = pi0_topic_remove(topic);
    if (st == 0) {
        printf("removed %s\n", topic);
        g->removed++;
    } else if (st == PI0_EBUSY) {
        g->kept++;
    } else if (st == PI0_EPERM) { /* not ours to remove: say so and go on */
        fprintf(stderr, "pi0rt-shm: gc: skipping %s\n", pi0_last_error());
    } else if (st != PI0_ENOENT) {
        return st; /* stops the walk; the detail stays recorded with st */
    }
    return 0;
}

static int cmd_gc(const char *prefix) {
    gc_ctx g = {prefix, 0, 0};
    int st = pi0_topic_foreach(gc_one, &g);
    if (st < 0) return fail(st, "gc");
    printf("gc: removed %d, kept %d with a live publisher\n", g.removed, g.kept);
    return 0;
}

// ---- echo / hz / bw ----

static void print_floats_d(const double *v, uint32_t n) {
    printf("[");
    for (uint32_t i = 0; i < n && i < 8; i++)
        printf(i ? " %.4g" : "%.4g", v[i]);
    printf(n > 8 ? " ...]" : "]");
}

static void print_floats_f(const float *v, uint32_t n) {
    printf("[");
    for (uint32_t i = 0; i < n && i < 8; i++)
        printf(i ? " %.4g" : "%.4g", (double)v[i]);
    printf(n > 8 ? " ...]" : "]");
}

static const char *pix_name(uint32_t f) {
    return f == PI0_PIX_RGB8    ? "RGB8"
           : f == PI0_PIX_BGR8  ? "BGR8"
           : f == PI0_PIX_GRAY8 ? "GRAY8"
                                : "?";
}

static const char *node_state_name(uint32_t s) {
    static const char *n[] = {"?", "starting", "running", "holding", "error"};
    return s <= 4 ? n[s] : "?";
}

/* Decodes one sample (untrusted bytes) onto stdout, without the trailing newline. */
static void print_sample(const char *type, const uint8_t *p, uint32_t size, int64_t now) {
    int st;
    if (!strcmp(type, PI0_TYPE_IMAGE)) {
        if ((st = pi0_image_check(p, size))) {
            printf("image INVALID: %s", pi0_last_error_for(st));
            return;
        }
        const pi0_image *im = (const pi0_image *)p;
        uint64_t sum = pi0__fnv1a(im->data, im->data_bytes);
        printf("image %ux%u %s stride=%u frame=%llu capture_age=%.3fms fnv=%016llx", im->width,
               im->height, pix_name(im->format), im->stride, (unsigned long long)im->frame_id,
               (double)(now - (int64_t)im->capture_ns) / 1e6, (unsigned long long)sum);
    } else if (!strcmp(type, PI0_TYPE_JOINT_STATE)) {
        if ((st = pi0_joint_state_check(p, size))) {
            printf("joints INVALID: %s", pi0_last_error_for(st));
            return;
        }
        const pi0_joint_state *js = (const pi0_joint_state *)p;
        printf("joints n=%u stamp_age=%.3fms pos=", js->n,
               (double)(now - (int64_t)js->stamp_ns) / 1e6);
        print_floats_d(js->position, js->n);
        printf(" vel=");
        print_floats_d(js->velocity, js->n);
        printf(" eff=");
        print_floats_d(js->effort, js->n);
    } else if (!strcmp(type, PI0_TYPE_ACTION_CHUNK)) {
        if ((st = pi0_action_chunk_check(p, size))) {
            printf("chunk INVALID: %s", pi0_last_error_for(st));
            return;
        }
        const pi0_action_chunk *c = (const pi0_action_chunk *)p;
        printf("chunk seq=%llu horizon=%u dim=%u period=%.3fms t0_in=%.3fms obs_age=%.3fms "
               "lat_us=%u/%u/%u/%u/%u a0=",
               (unsigned long long)c->seq, c->horizon, c->dim, (double)c->period_ns / 1e6,
               (double)((int64_t)c->t0_ns - now) / 1e6,
               (double)(now - (int64_t)c->obs_stamp_ns) / 1e6, c->preprocess_us, c->encode_us,
               c->denoise_us, c->postprocess_us, c->total_us);
        print_floats_f(c->actions, c->dim);
    } else if (!strcmp(type, PI0_TYPE_ACTION)) {
        if ((st = pi0_action_check(p, size))) {
            printf("action INVALID: %s", pi0_last_error_for(st));
            return;
        }
        const pi0_action *a = (const pi0_action *)p;
        printf("action due_in=%.3fms chunk=%llu index=%u dim=%u%s values=",
               (double)((int64_t)a->due_ns - now) / 1e6, (unsigned long long)a->chunk_seq,
               a->index, a->dim, (a->flags & PI0_ACTION_HOLD) ? " HOLD" : "");
        print_floats_f(a->values, a->dim);
    } else if (!strcmp(type, PI0_TYPE_NODE_STATUS)) {
        if ((st = pi0_node_status_check(p, size))) {
            printf("status INVALID: %s", pi0_last_error_for(st));
            return;
        }
        const pi0_node_status *s = (const pi0_node_status *)p;
        printf("status %s ticks=%llu missed=%llu chunks=%llu dropped=%llu holds=%llu "
               "hold_reason=0x%x late_us=%u/%u/%u infer_us=%u/%u/%u error=%d msg=\"%s\"",
               node_state_name(s->state), (unsigned long long)s->ticks,
               (unsigned long long)s->missed_ticks, (unsigned long long)s->chunks,
               (unsigned long long)s->dropped_chunks, (unsigned long long)s->holds,
               s->hold_reason, s->tick_late_p50_us, s->tick_late_p99_us, s->tick_late_max_us,
               s->infer_p50_us, s->infer_p99_us, s->infer_max_us, (int)s->last_error,
               s->message);
    } else {
        printf("%s %u bytes:", type, size);
        for (uint32_t i = 0; i < size && i < 16; i++)
            printf(" %02x", p[i]);
        if (size > 16) printf(" ...");
    }
}

static int64_t deadline_of(double duration) {
    return duration < 0 ? INT64_MAX : pi0__now_ns() + (int64_t)(duration * 1e9);
}

static int cmd_echo(const args *a) {
    pi0_sub *sub;
    int st = pi0_sub_open(a->topic, NULL, &sub);
    if (st) return fail(st, "echo");
    pi0_topic_info ti;
    pi0_sub_topic_info(sub, &ti);
    uint8_t *buf = malloc(ti.payload_max);
    if (!buf) {
        pi0_sub_close(sub);
        fprintf(stderr, "pi0rt-shm: echo: out of memory for %u bytes\n", ti.payload_max);
        return 1;
    }
    install_signals();
    int64_t deadline = deadline_of(a->duration);
    long printed = 0;
    int rc = 0;
    while (!g_stop && (a->count < 0 || printed < a->count)) {
        int64_t left = deadline - pi0__now_ns();
        if (left <= 0) break;
        st = pi0_sub_wait(sub, left < 200000000 ? left : 200000000);
        if (st == PI0_ETIMEDOUT) continue;
        pi0_sample s;
        st = pi0_sub_next_copy(sub, buf, ti.payload_max, &s);
        if (st == PI0_EAGAIN) continue;
        if (st) {
            rc = fail(st, "echo");
            break;
        }
        printf("seq=%llu epoch=%u age=%.3fms", (unsigned long long)s.seq, s.epoch,
               (double)(pi0__now_ns() - (int64_t)s.stamp_ns) / 1e6);
        if (s.lost) printf(" lost=%llu", (unsigned long long)s.lost);
        printf(" ");
        print_sample(ti.type_name, buf, s.size, pi0__now_ns());
        printf("\n");
        fflush(stdout);
        printed++;
    }
    free(buf);
    pi0_sub_close(sub);
    return rc;
}

/* hz and bw: consume every sample by view (no copy), report once per second. */
static int cmd_rate(const args *a, int bandwidth) {
    pi0_sub *sub;
    int st = pi0_sub_open(a->topic, NULL, &sub);
    if (st) return fail(st, bandwidth ? "bw" : "hz");
    install_signals();
    int64_t deadline = deadline_of(a->duration);
    int64_t window_start = pi0__now_ns();
    uint64_t n = 0, bytes = 0, lost = 0, last_stamp = 0;
    double sum_dt = 0, sum_dt2 = 0, min_dt = 1e30, max_dt = 0;
    int printed = 0;
    while (!g_stop) {
        int64_t t = pi0__now_ns();
        if (t >= deadline) break;
        if (t - window_start >= 1000000000ll) {
            double secs = (double)(t - window_start) * 1e-9;
            if (bandwidth) {
                printf("bw: %.3f MB/s (%llu samples, %.1f KiB mean) lost=%llu\n",
                       (double)bytes / secs / 1e6, (unsigned long long)n,
                       n ? (double)bytes / (double)n / 1024 : 0, (unsigned long long)lost);
            } else if (n > 1 && sum_dt > 0) {
                double k = (double)(n - 1), mean = sum_dt / k;
                double sd = sqrt(fmax(0, sum_dt2 / k - mean * mean));
                printf(
                    "rate: %.3f Hz  min %.3fms max %.3fms std %.3fms  window %llu lost=%llu\n",
                    1e3 / mean, min_dt, max_dt, sd, (unsigned long long)n,
                    (unsigned long long)lost);
            } else {
                printf("rate: no new samples  window %llu\n", (unsigned long long)n);
            }
            fflush(stdout);
            printed++;
            window_start = t;
            n = bytes = lost = 0;
            sum_dt = sum_dt2 = max_dt = 0;
            min_dt = 1e30;
            last_stamp = 0;
        }
        int64_t left = deadline - t;
        st = pi0_sub_wait(sub, left < 100000000 ? left : 100000000);
        if (st == PI0_ETIMEDOUT) continue;
        pi0_sample s;
        while ((st = pi0_sub_next_view(sub, &s)) == 0) {
            if (last_stamp && s.stamp_ns > last_stamp) {
                double dt = (double)(s.stamp_ns - last_stamp) / 1e6;
                sum_dt += dt;
                sum_dt2 += dt * dt;
                if (dt < min_dt) min_dt = dt;
                if (dt > max_dt) max_dt = dt;
            }
            last_stamp = s.stamp_ns;
            n++;
            bytes += s.size;
            lost += s.lost;
        }
        if (st != PI0_EAGAIN) {
            pi0_sub_close(sub);
            return fail(st, bandwidth ? "bw" : "hz");
        }
    }
    if (!printed) printf("%s: no full one-second window\n", bandwidth ? "bw" : "rate");
    pi0_sub_close(sub);
    return 0;
}

// ---- pub ----

static int parse_size(const char *s, uint32_t *w, uint32_t *h) {
    unsigned a, b;
    char extra;
    if (!s || sscanf(s, "%ux%u%c", &a, &b, &extra) != 2 || !a || !b || a > 16384 || b > 16384)
        return -1;
    *w = a;
    *h = b;
    return 0;
}

static void fill_image(pi0_image *im, uint32_t w, uint32_t h, uint64_t frame, int64_t t) {
    im->width = w;
    im->height = h;
    im->format = PI0_PIX_RGB8;
    im->stride = w * 3;
    im->capture_ns = (uint64_t)t;
    im->frame_id = frame;
    im->data_bytes = im->stride * h;
    memset(im->reserved, 0, sizeof im->reserved);
    /* a moving gradient, written in place into the loaned slot */
    for (uint32_t y = 0; y < h; y++) {
        uint8_t *row = im->data + (size_t)y * im->stride;
        uint8_t base = (uint8_t)(y + frame);
        for (uint32_t x = 0; x < w; x++) {
            row[3 * x] = (uint8_t)(base + x);
            row[3 * x + 1] = (uint8_t)(y * 2);
            row[3 * x + 2] = (uint8_t)frame;
        }
    }
}

static int cmd_pub(const args *a) {
    enum { T_IMAGE, T_JOINTS, T_CHUNK, T_ACTION, T_STATUS, T_RAW } kind;
    if (!a->type)
        return usage_error("%s", "pub needs --type image|joints|chunk|action|status|raw");
    pi0_pub_opts o = {0};
    uint32_t w = 640, h = 480;
    if (!strcmp(a->type, "image")) {
        kind = T_IMAGE;
        if (a->size && parse_size(a->size, &w, &h))
            return usage_error("--size \"%s\": want WxH, e.g. 1280x720", a->size);
        o.type_name = PI0_TYPE_IMAGE;
        o.payload_max = (uint32_t)pi0_image_bytes(w, h, PI0_PIX_RGB8);
    } else if (!strcmp(a->type, "joints")) {
        kind = T_JOINTS, o.type_name = PI0_TYPE_JOINT_STATE,
        o.payload_max = sizeof(pi0_joint_state);
    } else if (!strcmp(a->type, "chunk")) {
        kind = T_CHUNK, o.type_name = PI0_TYPE_ACTION_CHUNK,
        o.payload_max = sizeof(pi0_action_chunk);
    } else if (!strcmp(a->type, "action")) {
        kind = T_ACTION, o.type_name = PI0_TYPE_ACTION, o.payload_max = sizeof(pi0_action);
    } else if (!strcmp(a->type, "status")) {
        kind = T_STATUS, o.type_name = PI0_TYPE_NODE_STATUS,
        o.payload_max = sizeof(pi0_node_status);
    } else if (!strcmp(a->type, "raw")) {
        kind = T_RAW, o.type_name = PI0_TYPE_RAW,
        o.payload_max = a->bytes ? (uint32_t)a->bytes : 64;
    } else {
        return usage_error("--type \"%s\": want image, joints, chunk, action, status or raw",
                           a->type);
    }
    if (a->size && kind != T_IMAGE) return usage_error("%s", "--size is for --type image");
    o.slot_count = a->slots ? (uint32_t)a->slots : 8;
    double rate = a->rate > 0 ? a->rate : 30;
    pi0_pub *pub;
    int st = pi0_pub_create(a->topic, &o, &pub);
    if (st) return fail(st, "pub");
    install_signals();
    fprintf(stderr, "pi0rt-shm: publishing %s on %s at %.2f Hz (pid %d, epoch %u)\n",
            o.type_name, a->topic, rate, (int)getpid(), pi0_pub_epoch(pub));
    int64_t period = (int64_t)(1e9 / rate), t0 = pi0__now_ns(), next = t0;
    int64_t deadline = deadline_of(a->duration);
    long n = 0;
    while (!g_stop && (a->count < 0 || n < a->count) && pi0__now_ns() < deadline) {
        int64_t t = pi0__now_ns();
        double ph = (double)(t - t0) * 1e-9;
        void *p = pi0_pub_loan(pub);
        size_t size = o.payload_max;
        switch (kind) {
        case T_IMAGE:
            fill_image(p, w, h, (uint64_t)n, t);
            break;
        case T_JOINTS: {
            pi0_joint_state *js = p;
            memset(js, 0, sizeof *js);
            js->stamp_ns = (uint64_t)t;
            js->n = 7;
            for (int j = 0; j < 7; j++) {
                js->position[j] = 0.5 * sin(ph + j);
                js->velocity[j] = 0.5 * cos(ph + j);
                js->effort[j] = 0.1 * j;
            }
            break;
        }
        case T_CHUNK: {
            pi0_action_chunk *c = p;
            memset(c, 0, 64);
            c->seq = (uint64_t)n;
            c->period_ns = 20000000;
            c->t0_ns = (uint64_t)t + c->period_ns;
            c->obs_stamp_ns = (uint64_t)(t - 50000000);
            c->horizon = 50;
            c->dim = 32;
            c->total_us = 50000;
            for (uint32_t i = 0; i < c->horizon * c->dim; i++)
                c->actions[i] = (float)sin(ph + 0.02 * (i / c->dim) + (i % c->dim));
            break;
        }
        case T_ACTION: {
            pi0_action *ac = p;
            memset(ac, 0, sizeof *ac);
            ac->due_ns = (uint64_t)t;
            ac->chunk_seq = (uint64_t)n / 50;
            ac->index = (uint32_t)(n % 50);
            ac->dim = 7;
            for (int j = 0; j < 7; j++)
                ac->values[j] = (float)sin(ph + j);
            break;
        }
        case T_STATUS: {
            pi0_node_status *s = p;
            memset(s, 0, sizeof *s);
            s->stamp_ns = (uint64_t)t;
            s->state = PI0_NODE_RUNNING;
            s->ticks = (uint64_t)n;
            snprintf(s->message, sizeof s->message, "synthetic status %ld", n);
            break;
        }
        case T_RAW:
            for (size_t i = 0; i < size; i++)
                ((uint8_t *)p)[i] = (uint8_t)(n + (long)i);
            break;
        }
        if ((st = pi0_pub_commit(pub, size))) break;
        n++;
        next += period;
        if (next < pi0__now_ns() - period)
            next = pi0__now_ns(); /* fell far behind: do not burst */
        shm__sleep_until(next, &g_stop);
    }
    pi0_pub_destroy(pub);
    if (st) return fail(st, "pub");
    fprintf(stderr, "pi0rt-shm: published %ld samples on %s\n", n, a->topic);
    if (a->unlink_on_exit && (st = pi0_topic_remove(a->topic)) && st != PI0_ENOENT)
        return fail(st, "pub --unlink");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return 0;
        }
    if (!strcmp(cmd, "record")) return shm__record_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "play")) return shm__play_main(argc - 2, argv + 2);
    if (!strcmp(cmd, "info") && argc == 3 && shm__is_mcap_file(argv[2]))
        return shm__info_file(argv[2]);
    args a;
    int need_topic = !strcmp(cmd, "info") || !strcmp(cmd, "echo") || !strcmp(cmd, "hz") ||
                     !strcmp(cmd, "bw") || !strcmp(cmd, "pub");
    int is_gc = !strcmp(cmd, "gc");
    int known = need_topic || is_gc || !strcmp(cmd, "ls") || !strcmp(cmd, "bench");
    if (!known) return usage_error("unknown command \"%s\"", cmd);
    int positional = need_topic ? NEED_TOPIC : is_gc ? OPT_PREFIX : NO_TOPIC;
    int rc = parse_args(argc - 1, argv + 1, positional, &a);
    if (rc) return rc;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!strcmp(cmd, "ls")) return cmd_ls();
    if (is_gc) return cmd_gc(a.topic);
    if (!strcmp(cmd, "info")) return cmd_info(&a);
    if (!strcmp(cmd, "echo")) return cmd_echo(&a);
    if (!strcmp(cmd, "hz")) return cmd_rate(&a, 0);
    if (!strcmp(cmd, "bw")) return cmd_rate(&a, 1);
    if (!strcmp(cmd, "pub")) return cmd_pub(&a);
    return shm__bench(a.quick, !a.other);
}
