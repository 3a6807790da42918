/* record.c — `pi0rt-shm record`, `play`, `info FILE.mcap` and `record --recover`: pi0rt
 * topics to and from MCAP files (mcap.h) holding ROS 2 messages (ros2msg.h). */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_time.h"
#include "mcap.h"
#include "pi0_shm.h"
#include "ros2msg.h"
#include "shm_internal.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig) {
    (void)sig;
    g_stop = 1;
}

static void catch_signals(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int fail(const char *cmd) {
    fprintf(stderr, "pi0rt-shm: %s: %s\n", cmd, pi0_last_error());
    return 1;
}

static int usage(const char *cmd, const char *what, const char *arg) {
    fprintf(stderr, "pi0rt-shm: %s: %s%s%s (see pi0rt-shm --help)\n", cmd, what, arg ? " " : "",
            arg ? arg : "");
    return 2;
}

/* CLOCK_MONOTONIC -> Unix time offset, from the tightest of a few bracketed readings. */
static int64_t clock_offset_ns(void) {
    int64_t best = 0, width = INT64_MAX;
    for (int i = 0; i < 5; i++) {
        struct timespec a, r, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        clock_gettime(CLOCK_REALTIME, &r);
        clock_gettime(CLOCK_MONOTONIC, &b);
        int64_t ma = (int64_t)a.tv_sec * 1000000000 + a.tv_nsec;
        int64_t mb = (int64_t)b.tv_sec * 1000000000 + b.tv_nsec;
        int64_t rr = (int64_t)r.tv_sec * 1000000000 + r.tv_nsec;
        if (mb - ma < width) width = mb - ma, best = rr - (ma + (mb - ma) / 2);
    }
    return best;
}

/* The validator of a recordable type's payload (NULL: the type cannot be recorded), found
 * once per topic so that the sampling loop does no type-name comparisons. */
typedef int (*check_fn)(const void *payload, size_t size);
static check_fn payload_check(const char *type) {
    if (!strcmp(type, PI0_TYPE_IMAGE)) return pi0_image_check;
    if (!strcmp(type, PI0_TYPE_JOINT_STATE)) return pi0_joint_state_check;
    if (!strcmp(type, PI0_TYPE_ACTION_CHUNK)) return pi0_action_chunk_check;
    if (!strcmp(type, PI0_TYPE_ACTION)) return pi0_action_check;
    if (!strcmp(type, PI0_TYPE_NODE_STATUS)) return pi0_node_status_check;
    return NULL;
}

// ---- record ----

#define TOPICS_MAX 64

typedef struct rec_topic {
    char name[PI0_TOPIC_NAME_MAX + 1];
    char type[PI0_TYPE_NAME_MAX + 1];
    pi0_sub *sub;
    void *buf;
    uint32_t cap;
    check_fn check; /* payload_check of the type */
    int n_kinds, kinds[2];
    uint16_t channel[2];
    uint64_t count, lost, invalid;
} rec_topic;

typedef struct recorder {
    rec_topic t[TOPICS_MAX];
    int n;
    int all;
} recorder;

static int add_topic(recorder *rc, const char *name, int from_all) {
    if (rc->n >= TOPICS_MAX) return pi0_errorf(PI0_ERANGE, "more than %d topics", TOPICS_MAX);
    for (int i = 0; i < rc->n; i++)
        if (!strcmp(rc->t[i].name, name)) return 0;
    rec_topic *t = &rc->t[rc->n];
    memset(t, 0, sizeof *t);
    pi0_sub_opts so = {NULL, -1};
    int st = pi0_sub_open(name, &so, &t->sub);
    if (st) return pi0_errorf(st, "topic %s: %s", name, pi0_last_error());
    pi0_topic_info ti;
    pi0_sub_topic_info(t->sub, &ti);
    snprintf(t->name, sizeof t->name, "%s", name);
    snprintf(t->type, sizeof t->type, "%s", ti.type_name);
    t->n_kinds = pi0__ros2_kinds_of_pi0(ti.type_name, t->kinds);
    t->check = payload_check(ti.type_name);
    if (!t->n_kinds || !t->check) {
        pi0_sub_close(t->sub);
        if (from_all) {
            fprintf(stderr,
                    "pi0rt-shm: record: skipping topic %s (type %s has no ROS 2 form)\n", name,
                    ti.type_name);
            return 0;
        }
        return pi0_errorf(PI0_ETYPE, "topic %s: type %s cannot be recorded (no ROS 2 form)",
                          name, ti.type_name);
    }
    t->cap = ti.payload_max;
    if (!(t->buf = malloc(t->cap))) {
        pi0_sub_close(t->sub);
        return pi0_errorf(PI0_ENOMEM, "topic %s: %u-byte buffer", name, t->cap);
    }
    rc->n++;
    return 0;
}

static int add_all(const char *topic, void *ctx) {
    int st = add_topic(ctx, topic, 1);
    if (st) fprintf(stderr, "pi0rt-shm: record: skipping %s\n", pi0_last_error());
    return 0;
}

static int setup_channels(pi0__mcap_writer *w, recorder *rc, int64_t off) {
    uint16_t schema_of[PI0__ROS2_KINDS] = {0};
    char off_s[32];
    snprintf(off_s, sizeof off_s, "%" PRId64, off);
    const char *clock_meta[] = {"monotonic_to_unix_offset_ns", off_s};
    int st = pi0__mcap_add_metadata(w, "pi0rt.clock", clock_meta, 1);
    for (int i = 0; i < rc->n && !st; i++) {
        rec_topic *t = &rc->t[i];
        for (int k = 0; k < t->n_kinds && !st; k++) {
            int kind = t->kinds[k];
            if (!schema_of[kind] &&
                (st = pi0__mcap_add_schema(
                     w, pi0__ros2_name(kind), "ros2msg", pi0__ros2_schema(kind),
                     (uint32_t)strlen(pi0__ros2_schema(kind)), &schema_of[kind])))
                break;
            char topic[PI0_TOPIC_NAME_MAX + 16];
            /* the lossless pi0rt copy of a chunk goes on a second channel */
            snprintf(topic, sizeof topic, "/%s%s", t->name,
                     kind == PI0__ROS2_CHUNK && t->n_kinds == 2 ? "/pi0rt" : "");
            const char *meta[] = {"offered_qos_profiles", "",     "pi0rt.topic", t->name,
                                  "pi0rt.type",           t->type};
            /* only the replayable channel names the shm topic to play into */
            int n_meta = pi0__ros2_pi0_type(kind) ? 3 : 1;
            st = pi0__mcap_add_channel(w, schema_of[kind], topic, "cdr", meta, n_meta,
                                       &t->channel[k]);
        }
    }
    return st;
}

/* Encoded messages on their way from the sampling loop to the writer thread, so that a
 * write or fdatasync that blocks on the disk never stops the loop from taking samples
 * out of the topics' rings before they are overwritten. */
typedef struct qmsg {
    struct qmsg *next;
    uint16_t channel;
    uint32_t seq;
    uint64_t log_time, publish_time;
    pi0__buf data;
} qmsg;

#define QUEUE_BYTES_MAX (512u << 20) /* beyond this the loop waits (and may lose samples) */

typedef struct wqueue {
    pthread_mutex_t mu;
    pthread_cond_t more, room;
    qmsg *head, *tail;
    size_t bytes;
    int done;   /* no more messages will come */
    int status; /* first error of the writer thread */
    pi0__mcap_writer *w;
} wqueue;

static void *writer_thread(void *p) {
    wqueue *q = p;
    pthread_mutex_lock(&q->mu);
    for (;;) {
        while (!q->head && !q->done)
            pthread_cond_wait(&q->more, &q->mu);
        qmsg *m = q->head;
        if (!m) break;
        q->head = q->tail = NULL; /* take the whole list */
        pthread_mutex_unlock(&q->mu);
        size_t freed = 0;
        int st = 0;
        while (m) {
            qmsg *next = m->next;
            if (!st)
                st = pi0__mcap_write(q->w, m->channel, m->seq, m->log_time, m->publish_time,
                                     m->data.p, m->data.len);
            freed += m->data.len;
            pi0__buf_free(&m->data);
            free(m);
            m = next;
        }
        pthread_mutex_lock(&q->mu);
        q->bytes -= freed;
        if (st && !q->status) {
            q->status = st;
            fprintf(stderr, "pi0rt-shm: record: %s\n", pi0_last_error());
        }
        pthread_cond_broadcast(&q->room);
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

/* Hands an encoded message (taking over cdr's memory) to the writer thread. */
static int enqueue(wqueue *q, uint16_t channel, uint32_t seq, uint64_t log_time,
                   uint64_t publish_time, pi0__buf *cdr) {
    qmsg *m = malloc(sizeof *m);
    if (!m) return pi0_errorf(PI0_ENOMEM, "record queue");
    *m = (qmsg){NULL, channel, seq, log_time, publish_time, *cdr};
    memset(cdr, 0, sizeof *cdr);
    pthread_mutex_lock(&q->mu);
    while (q->bytes > QUEUE_BYTES_MAX && !q->status)
        pthread_cond_wait(&q->room, &q->mu);
    int st = q->status;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
    q->bytes += m->data.len;
    pthread_cond_signal(&q->more);
    pthread_mutex_unlock(&q->mu);
    return st;
}

/* Copies every new sample of t into the queue. Returns the number taken or < 0. */
static int drain(wqueue *q, rec_topic *t, int64_t off, pi0__buf *cdr) {
    int taken = 0;
    for (;;) {
        pi0_sample s;
        int st = pi0_sub_next_copy(t->sub, t->buf, t->cap, &s);
        if (st == PI0_EAGAIN) return taken;
        if (st == PI0_ERANGE) { /* re-attached to a replaced topic with bigger samples */
            pi0_topic_info ti;
            pi0_sub_topic_info(t->sub, &ti);
            void *nb = ti.payload_max > t->cap ? realloc(t->buf, ti.payload_max) : NULL;
            if (!nb) return pi0_errorf(st, "topic %s: %s", t->name, pi0_last_error());
            t->buf = nb;
            t->cap = ti.payload_max;
            continue;
        }
        if (st) return pi0_errorf(st, "topic %s: %s", t->name, pi0_last_error());
        uint64_t log_time = (uint64_t)(pi0__now_ns() + off);
        taken++;
        if (s.lost) {
            if (!t->lost)
                fprintf(stderr,
                        "pi0rt-shm: record: topic %s: lost %" PRIu64
                        " samples (recorder fell behind)\n",
                        t->name, s.lost);
            t->lost += s.lost;
        }
        if (t->check(t->buf, s.size)) {
            if (!t->invalid++)
                fprintf(stderr, "pi0rt-shm: record: topic %s: sample %" PRIu64 " skipped: %s\n",
                        t->name, s.seq, pi0_last_error());
            continue;
        }
        uint32_t seq = (uint32_t)s.seq;
        if (t->kinds[0] == PI0__ROS2_IMAGE) seq = (uint32_t)((pi0_image *)t->buf)->frame_id;
        for (int k = 0; k < t->n_kinds; k++) {
            if ((st = pi0__ros2_encode(t->kinds[k], t->buf, s.size, off, t->name, cdr)) ||
                (st = enqueue(q, t->channel[k], seq, log_time,
                              (uint64_t)((int64_t)s.stamp_ns + off), cdr)))
                return st;
        }
        t->count++;
    }
}

static int do_record(const char *out, recorder *rc, double duration, int compress,
                     uint64_t chunk_size) {
    int64_t off = clock_offset_ns();
    pi0__mcap_writer_opts wo = {chunk_size, compress, "pi0rt-shm record", 1.0};
    pi0__mcap_writer *w;
    int st = pi0__mcap_writer_create(out, &wo, &w);
    if (st) return fail("record");
    if ((st = setup_channels(w, rc, off))) {
        pi0__mcap_writer_close(w, 0, NULL);
        return fail("record");
    }
    catch_signals();
    fprintf(stderr, "pi0rt-shm: record: %d topic(s) -> %s (Ctrl-C stops)\n", rc->n, out);
    int64_t end = duration >= 0 ? pi0__now_ns() + (int64_t)(duration * 1e9) : INT64_MAX;
    pi0__buf cdr = {0};
    static wqueue q;
    q.w = w;
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.more, NULL);
    pthread_cond_init(&q.room, NULL);
    pthread_t writer;
    if ((errno = pthread_create(&writer, NULL, writer_thread, &q))) {
        pi0__mcap_writer_close(w, 0, NULL);
        fprintf(stderr, "pi0rt-shm: record: writer thread: %s\n", strerror(errno));
        return 1;
    }
    int64_t next_check = pi0__now_ns();
    while (!g_stop && pi0__now_ns() < end) {
        int got = 0;
        if (pi0__now_ns() >= next_check) { /* follows publishers that restart (re-attach) */
            for (int i = 0; i < rc->n; i++) {
                pi0_pub_info pinfo;
                if (!pi0_sub_publisher(rc->t[i].sub, &pinfo) &&
                    (pinfo.restarted || pinfo.reattached))
                    fprintf(stderr, "pi0rt-shm: record: topic %s: publisher restarted%s\n",
                            rc->t[i].name, pinfo.reattached ? " with a new layout" : "");
            }
            next_check = pi0__now_ns() + 1000000000;
        }
        for (int i = 0; i < rc->n && st >= 0; i++)
            got += st = drain(&q, &rc->t[i], off, &cdr);
        if (st < 0) break;
        st = 0;
        if (!got) shm__sleep_until(pi0__now_ns() + 1000000, &g_stop);
    }
    pi0__buf_free(&cdr);
    pthread_mutex_lock(&q.mu);
    q.done = 1;
    pthread_cond_signal(&q.more);
    pthread_mutex_unlock(&q.mu);
    pthread_join(writer, NULL);
    if (!st) st = q.status;
    uint64_t lost = 0, invalid = 0;
    char key[TOPICS_MAX][PI0_TOPIC_NAME_MAX + 16], val[TOPICS_MAX][48];
    const char *meta[4 * TOPICS_MAX];
    for (int i = 0; i < rc->n; i++) {
        rec_topic *t = &rc->t[i];
        lost += t->lost;
        invalid += t->invalid;
        snprintf(key[i], sizeof key[i], "%s", t->name);
        snprintf(val[i], sizeof val[i],
                 "recorded %" PRIu64 " lost %" PRIu64 " invalid %" PRIu64, t->count, t->lost,
                 t->invalid);
        meta[2 * i] = key[i];
        meta[2 * i + 1] = val[i];
    }
    if (!st) st = pi0__mcap_add_metadata(w, "pi0rt.recorder", meta, rc->n);
    if (st) fprintf(stderr, "pi0rt-shm: record: %s\n", pi0_last_error());
    pi0__mcap_stats ws;
    int cst = pi0__mcap_writer_close(w, 1, &ws);
    if (cst) return fail("record");
    if (st) return 1;
    for (int i = 0; i < rc->n; i++)
        fprintf(stderr, "pi0rt-shm: record: %s (%s): %" PRIu64 " samples, %" PRIu64 " lost\n",
                rc->t[i].name, rc->t[i].type, rc->t[i].count, rc->t[i].lost);
    fprintf(stderr,
            "pi0rt-shm: record: %" PRIu64 " messages in %" PRIu64 " chunks, %.1f MB, lz4 ratio "
            "%.2f\n",
            ws.messages, ws.chunks, (double)ws.file_bytes / 1e6,
            ws.compressed_bytes ? (double)ws.raw_bytes / (double)ws.compressed_bytes : 1.0);
    if (lost || invalid) {
        fprintf(stderr, "pi0rt-shm: record: %" PRIu64 " samples lost, %" PRIu64 " invalid\n",
                lost, invalid);
        return 1;
    }
    return 0;
}

// ---- recover ----

typedef struct recover_ctx {
    pi0__mcap_writer *w;
    int mapped[PI0__MCAP_CHANNELS_MAX]; /* reader channel index -> writer channel + 1 */
    uint16_t schema_map[PI0__MCAP_CHANNELS_MAX + 1];
    const pi0__mcap_schema *schemas[PI0__MCAP_CHANNELS_MAX];
    int n_schemas;
} recover_ctx;

static int recover_msg(const pi0__mcap_message *m, void *p) {
    recover_ctx *c = p;
    int ix = m->channel->index, st;
    if (!c->mapped[ix]) {
        uint16_t sid = 0, cid;
        if (m->schema) {
            int j = 0;
            while (j < c->n_schemas && c->schemas[j] != m->schema)
                j++;
            if (j == c->n_schemas) {
                if ((st = pi0__mcap_add_schema(c->w, m->schema->name, m->schema->encoding,
                                               m->schema->data, m->schema->data_len,
                                               &c->schema_map[j])))
                    return st;
                c->schemas[c->n_schemas++] = m->schema;
            }
            sid = c->schema_map[j];
        }
        if ((st = pi0__mcap_add_channel_raw(c->w, sid, m->channel->topic,
                                            m->channel->message_encoding, m->channel->meta,
                                            m->channel->meta_len, &cid)))
            return st;
        c->mapped[ix] = cid + 1;
    }
    return pi0__mcap_write(c->w, (uint16_t)(c->mapped[ix] - 1), m->sequence, m->log_time,
                           m->publish_time, m->data, m->len);
}

static int do_recover(const char *in, const char *out, int compress) {
    pi0__mcap_reader *r;
    if (pi0__mcap_open(in, &r)) return fail("record --recover");
    pi0__mcap_writer_opts wo = {0, compress, "pi0rt-shm record --recover", 0};
    recover_ctx c;
    memset(&c, 0, sizeof c);
    if (pi0__mcap_writer_create(out, &wo, &c.w)) {
        pi0__mcap_close(r);
        return fail("record --recover");
    }
    pi0__mcap_scan_info info;
    int st = pi0__mcap_scan(r, recover_msg, &c, &info);
    char damage[512] = "";
    if (st == PI0_EFORMAT) { /* damage: keep what came before it */
        snprintf(damage, sizeof damage, "%s", pi0_last_error());
        st = 0;
    }
    if (!st && info.have_clock_offset) {
        char off_s[32];
        snprintf(off_s, sizeof off_s, "%" PRId64, info.clock_offset_ns);
        const char *meta[] = {"monotonic_to_unix_offset_ns", off_s};
        st = pi0__mcap_add_metadata(c.w, "pi0rt.clock", meta, 1);
    }
    if (st) {
        fprintf(stderr, "pi0rt-shm: record --recover: %s\n", pi0_last_error());
        pi0__mcap_writer_close(c.w, 0, NULL);
        pi0__mcap_close(r);
        return 1;
    }
    pi0__mcap_close(r);
    if (pi0__mcap_writer_close(c.w, 1, NULL)) return fail("record --recover");
    fprintf(stderr,
            "pi0rt-shm: record --recover: %s: %" PRIu64 " messages from %" PRIu64
            " intact chunks -> %s\n",
            in, info.messages, info.chunks, out);
    if (*damage) fprintf(stderr, "pi0rt-shm: record --recover: dropped the rest: %s\n", damage);
    return 0;
}

int shm__record_main(int argc, char **argv) {
    const char *out = NULL, *recover = NULL;
    double duration = -1, chunk = 1 << 20;
    int compress = 1, all = 0;
    const char *topics[TOPICS_MAX];
    int n_topics = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "-o") || !strcmp(o, "--output")) {
            if (!v) return usage("record", "missing value of", o);
            out = v, i++;
        } else if (!strcmp(o, "--recover")) {
            if (!v) return usage("record", "missing value of", o);
            recover = v, i++;
        } else if (!strcmp(o, "--duration")) {
            if (shm__num_arg("record", o, v, 0, 1e9, &duration)) return 2;
            i++;
        } else if (!strcmp(o, "--chunk-size")) {
            if (shm__num_arg("record", o, v, 1024, 1 << 30, &chunk)) return 2;
            i++;
        } else if (!strcmp(o, "--compression")) {
            if (!v || (strcmp(v, "lz4") && strcmp(v, "none")))
                return usage("record", "--compression wants lz4 or none, not",
                             v ? v : "nothing");
            compress = !strcmp(v, "lz4"), i++;
        } else if (!strcmp(o, "--all")) {
            all = 1;
        } else if (o[0] == '-') {
            return usage("record", "unknown option", o);
        } else if (n_topics < TOPICS_MAX) {
            topics[n_topics++] = o;
        } else {
            return usage("record", "too many topics at", o);
        }
    }
    if (!out) return usage("record", "missing -o FILE.mcap", NULL);
    if (recover) {
        if (n_topics || all) return usage("record", "--recover takes no topics", NULL);
        return do_recover(recover, out, compress);
    }
    if (!n_topics && !all) return usage("record", "name TOPICs or --all", NULL);
    static recorder rc;
    for (int i = 0; i < n_topics; i++)
        if (add_topic(&rc, topics[i], 0)) return fail("record");
    if (all) pi0_topic_foreach(add_all, &rc);
    if (!rc.n) {
        fprintf(stderr, "pi0rt-shm: record: no recordable topics\n");
        return 1;
    }
    int ret = do_record(out, &rc, duration, compress, (uint64_t)chunk);
    for (int i = 0; i < rc.n; i++) {
        pi0_sub_close(rc.t[i].sub);
        free(rc.t[i].buf);
    }
    return ret;
}

// ---- info FILE.mcap ----

static void fmt_unix(char *buf, size_t cap, uint64_t ns) {
    time_t s = (time_t)(ns / 1000000000u);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03uZ", (unsigned)(ns % 1000000000u / 1000000u));
}

int shm__is_mcap_file(const char *arg) {
    size_t n = strlen(arg);
    return (n > 5 && !strcmp(arg + n - 5, ".mcap")) || pi0__mcap_is_mcap(arg);
}

int shm__info_file(const char *path) {
    pi0__mcap_reader *r;
    if (pi0__mcap_open(path, &r)) return fail("info");
    pi0__mcap_scan_info in;
    int st = pi0__mcap_scan(r, NULL, NULL, &in);
    char a[40], b[40];
    fmt_unix(a, sizeof a, in.start_time);
    fmt_unix(b, sizeof b, in.end_time);
    printf("file:     %s\n", path);
    printf("status:   %s\n", st ? "DAMAGED or unfinished (see below)" : "complete");
    printf("messages: %" PRIu64 "\n", in.messages);
    if (in.messages)
        printf("time:     %s .. %s (%.3f s)\n", a, b,
               (double)(in.end_time - in.start_time) / 1e9);
    printf("chunks:   %" PRIu64 ", %.1f MB raw, %.1f MB stored, compression ratio %.2f\n",
           in.chunks, (double)in.chunk_raw_bytes / 1e6, (double)in.chunk_compressed_bytes / 1e6,
           in.chunk_compressed_bytes
               ? (double)in.chunk_raw_bytes / (double)in.chunk_compressed_bytes
               : 1.0);
    if (in.have_clock_offset)
        printf("clock:    monotonic + %" PRId64 " ns = Unix\n", in.clock_offset_ns);
    printf("channels:\n");
    for (int i = 0; i < in.n_channels; i++) {
        const pi0__mcap_channel *c = in.channels[i];
        printf("  %-4u %-32s %-36s %-5s %8" PRIu64 " msgs\n", c->id, c->topic,
               c->schema ? c->schema->name : "(no schema)", c->message_encoding,
               in.channel_messages[i]);
    }
    if (st) {
        printf("damage:   %s\n", pi0_last_error());
        printf("salvageable: %" PRIu64 " messages in %" PRIu64
               " intact chunks (bytes 0..%" PRIu64 "); rebuild with\n"
               "          pi0rt-shm record --recover %s -o FIXED.mcap\n",
               in.messages, in.chunks, in.good_bytes, path);
    }
    pi0__mcap_close(r);
    return st ? 1 : 0;
}

// ---- play ----

typedef struct play_chan {
    int state; /* 0 not looked at, 1 plays, -1 skipped */
    int kind;
    char topic[PI0_TOPIC_NAME_MAX + 1];
    pi0_pub *pub;
    uint32_t payload_max;
    uint64_t count;
} play_chan;

typedef struct player {
    play_chan ch[PI0__MCAP_CHANNELS_MAX];
    const char *filter[TOPICS_MAX];
    int n_filter;
    const char *prefix;
    double rate;
    int64_t start_mono; /* playback time of the first message */
    uint64_t first_log; /* its log_time */
    int have_first;
    pi0__buf payload;
    uint64_t published;
} player;

/* The shm topic a channel plays into: its pi0rt.topic, else its name without the leading
 * '/' and with characters a topic name cannot hold replaced ('/' -> '.', others -> '_'). */
static void play_topic_name(const player *p, const pi0__mcap_channel *c, char *out,
                            size_t cap) {
    char base[PI0_TOPIC_NAME_MAX + 1];
    const char *src = c->pi0rt_topic ? c->pi0rt_topic : c->topic;
    while (*src == '/')
        src++;
    size_t n = 0;
    for (; *src && n < sizeof base - 1; src++) {
        char ch = *src;
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.';
        base[n++] = ok ? ch : ch == '/' ? '.' : '_';
    }
    base[n] = 0;
    snprintf(out, cap, "%s%s", p->prefix ? p->prefix : "", base);
}

static int64_t retime(const player *p, uint64_t unix_ns) {
    if (!unix_ns) return 0;
    double d = (double)((int64_t)unix_ns - (int64_t)p->first_log) / p->rate;
    return p->start_mono + (int64_t)d;
}

/* Maps the Unix stamps of a decoded payload onto this playback's CLOCK_MONOTONIC. */
static void retime_payload(const player *p, int kind, void *payload) {
    switch (kind) {
    case PI0__ROS2_IMAGE: {
        pi0_image *im = payload;
        im->capture_ns = (uint64_t)retime(p, im->capture_ns);
        break;
    }
    case PI0__ROS2_JOINT_STATE: {
        pi0_joint_state *js = payload;
        js->stamp_ns = (uint64_t)retime(p, js->stamp_ns);
        break;
    }
    case PI0__ROS2_CHUNK: {
        pi0_action_chunk *c = payload;
        c->t0_ns = (uint64_t)retime(p, c->t0_ns);
        c->obs_stamp_ns = (uint64_t)retime(p, c->obs_stamp_ns);
        break;
    }
    case PI0__ROS2_ACTION: {
        pi0_action *a = payload;
        a->due_ns = (uint64_t)retime(p, a->due_ns);
        break;
    }
    case PI0__ROS2_STATUS: {
        pi0_node_status *s = payload;
        s->stamp_ns = (uint64_t)retime(p, s->stamp_ns);
        break;
    }
    default:
        break;
    }
}

static void play_classify(player *p, const pi0__mcap_channel *c, play_chan *pc) {
    pc->state = -1;
    pc->kind = c->schema ? pi0__ros2_kind_of(c->schema->name) : PI0__ROS2_NONE;
    if (!pi0__ros2_pi0_type(pc->kind) || strcmp(c->message_encoding, "cdr")) {
        if (pc->kind != PI0__ROS2_TRAJECTORY) /* its lossless twin plays instead */
            fprintf(stderr, "pi0rt-shm: play: channel %s (%s, %s) not played: no pi0rt type\n",
                    c->topic, c->schema ? c->schema->name : "no schema", c->message_encoding);
        return;
    }
    play_topic_name(p, c, pc->topic, sizeof pc->topic);
    if (p->n_filter) {
        int hit = 0;
        for (int i = 0; i < p->n_filter; i++)
            hit |= !strcmp(p->filter[i], pc->topic + (p->prefix ? strlen(p->prefix) : 0));
        if (!hit) return;
    }
    if (pi0_topic_name_check(pc->topic)) {
        fprintf(stderr, "pi0rt-shm: play: channel %s not played: %s\n", c->topic,
                pi0_last_error());
        return;
    }
    pc->state = 1;
}

/* Pre-pass: which channels play, and the largest payload of each (a decoded payload is
 * at most its CDR size + the 64-byte image header, or the fixed struct size). */
static int play_size(const pi0__mcap_message *m, void *ctx) {
    player *p = ctx;
    play_chan *pc = &p->ch[m->channel->index];
    if (!pc->state) play_classify(p, m->channel, pc);
    if (pc->state > 0 && m->len + 64 > pc->payload_max) pc->payload_max = (uint32_t)m->len + 64;
    return 0;
}

static size_t fixed_size(int kind) {
    switch (kind) {
    case PI0__ROS2_JOINT_STATE:
        return sizeof(pi0_joint_state);
    case PI0__ROS2_CHUNK:
        return sizeof(pi0_action_chunk);
    case PI0__ROS2_ACTION:
        return sizeof(pi0_action);
    case PI0__ROS2_STATUS:
        return sizeof(pi0_node_status);
    default:
        return 0;
    }
}

/* Creates the publishers of every channel that plays, before the first message. */
static int play_create(player *p) {
    for (int i = 0; i < PI0__MCAP_CHANNELS_MAX; i++) {
        play_chan *pc = &p->ch[i];
        if (pc->state <= 0) continue;
        size_t fixed = fixed_size(pc->kind);
        if (fixed) pc->payload_max = (uint32_t)fixed;
        if (pc->payload_max > PI0_SHM_PAYLOAD_MAX) pc->payload_max = PI0_SHM_PAYLOAD_MAX;
        /* deep rings for small messages: a recorder of the replay may lag a little */
        uint32_t slots = pc->payload_max <= (64u << 10) ? 256 : 16;
        pi0_pub_opts po = {pi0__ros2_pi0_type(pc->kind), pc->payload_max, slots, 0};
        int st = pi0_pub_create(pc->topic, &po, &pc->pub);
        if (st) return pi0_errorf(st, "topic %s: %s", pc->topic, pi0_last_error());
    }
    return 0;
}

static int play_msg(const pi0__mcap_message *m, void *ctx) {
    player *p = ctx;
    if (g_stop) return 1;
    play_chan *pc = &p->ch[m->channel->index];
    if (!pc->state) play_classify(p, m->channel, pc);
    if (pc->state < 0) return 0;
    int st = pi0__ros2_decode(pc->kind, m->data, m->len, m->sequence, &p->payload);
    if (st)
        return pi0_errorf(st, "channel %s: message sequence %u at log_time %" PRIu64 ": %s",
                          m->channel->topic, m->sequence, m->log_time, pi0_last_error());
    if (!p->have_first) {
        p->have_first = 1;
        p->first_log = m->log_time;
        p->start_mono = pi0__now_ns();
    }
    retime_payload(p, pc->kind, p->payload.p);
    if (!pc->pub) return 0; /* first seen after the pre-pass stopped at damage */
    shm__sleep_until(retime(p, m->log_time), &g_stop);
    if (g_stop) return 1;
    if ((st = pi0_pub_publish(pc->pub, p->payload.p, p->payload.len)))
        return pi0_errorf(st, "topic %s: %s", pc->topic, pi0_last_error());
    pc->count++;
    p->published++;
    return 0;
}

int shm__play_main(int argc, char **argv) {
    static player p;
    const char *path = NULL;
    int loop = 0;
    double delay = 0;
    p.rate = 1;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--rate")) {
            if (shm__num_arg("play", o, v, 1e-3, 1e3, &p.rate)) return 2;
            i++;
        } else if (!strcmp(o, "--loop")) {
            loop = 1;
        } else if (!strcmp(o, "--delay")) {
            if (shm__num_arg("play", o, v, 0, 3600, &delay)) return 2;
            i++;
        } else if (!strcmp(o, "--prefix")) {
            if (!v || pi0_topic_name_check(v))
                return usage("play", "--prefix wants a topic name prefix, not",
                             v ? v : "nothing");
            p.prefix = v, i++;
        } else if (!strcmp(o, "--topics")) {
            if (!v) return usage("play", "missing value of", o);
            for (char *s = argv[++i], *tok; (tok = strsep(&s, ","));)
                if (*tok && p.n_filter < TOPICS_MAX) p.filter[p.n_filter++] = tok;
        } else if (o[0] == '-') {
            return usage("play", "unknown option", o);
        } else if (!path) {
            path = o;
        } else {
            return usage("play", "unexpected argument", o);
        }
    }
    if (!path) return usage("play", "missing FILE.mcap", NULL);
    pi0__mcap_reader *r;
    if (pi0__mcap_open(path, &r)) return fail("play");
    catch_signals();
    pi0__mcap_scan_info info;
    int st = pi0__mcap_scan(r, play_size, &p, &info);
    /* a damaged file plays up to the damage (and reports it at the end) */
    st = st == PI0_EFORMAT ? 0 : st;
    if (!st) st = play_create(&p);
    if (!st && delay > 0) shm__sleep_until(pi0__now_ns() + (int64_t)(delay * 1e9), &g_stop);
    if (!st) do {
            p.have_first = 0;
            st = pi0__mcap_scan(r, play_msg, &p, &info);
            if (st == 1) st = 0; /* stopped by a signal */
        } while (!st && loop && !g_stop && p.published);
    if (st) fprintf(stderr, "pi0rt-shm: play: %s\n", pi0_last_error());
    for (int i = 0; i < PI0__MCAP_CHANNELS_MAX; i++)
        if (p.ch[i].pub) {
            fprintf(stderr, "pi0rt-shm: play: %s: %" PRIu64 " samples\n", p.ch[i].topic,
                    p.ch[i].count);
            pi0_pub_destroy(p.ch[i].pub);
        }
    pi0__buf_free(&p.payload);
    pi0__mcap_close(r);
    return st ? 1 : 0;
}
