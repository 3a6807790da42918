/* mcap.c — MCAP writer and reader (see mcap.h for the file layout this code produces and
 * the trust rules of the reader). */
#include "mcap.h"

#include "common/pi0_time.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4frame.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static const uint8_t MAGIC[8] = {0x89, 'M', 'C', 'A', 'P', 0x30, '\r', '\n'};

// ---- CRC-32 (slicing by 8) ----

static uint32_t crc_tab[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tab[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
}

uint32_t pi0__crc32(uint32_t crc, const void *data, size_t n) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (n >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        a ^= crc;
        crc = crc_tab[7][a & 0xff] ^ crc_tab[6][(a >> 8) & 0xff] ^
              crc_tab[5][(a >> 16) & 0xff] ^ crc_tab[4][a >> 24] ^ crc_tab[3][b & 0xff] ^
              crc_tab[2][(b >> 8) & 0xff] ^ crc_tab[1][(b >> 16) & 0xff] ^ crc_tab[0][b >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        crc = crc_tab[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

// ---- byte buffer ----

void pi0__buf_free(pi0__buf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

int pi0__buf_reserve(pi0__buf *b, size_t n) {
    if (b->oom) return pi0_errorf(PI0_ENOMEM, "buffer: out of memory earlier");
    if (n <= b->cap - b->len) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < n) {
        if (cap > SIZE_MAX / 2) goto oom;
        cap *= 2;
    }
    uint8_t *p = realloc(b->p, cap);
    if (!p) goto oom;
    b->p = p;
    b->cap = cap;
    return 0;
oom:
    b->oom = 1;
    return pi0_errorf(PI0_ENOMEM, "buffer of %zu bytes", b->len + n);
}

void pi0__buf_put(pi0__buf *b, const void *p, size_t n) {
    if (!n || pi0__buf_reserve(b, n)) return;
    memcpy(b->p + b->len, p, n);
    b->len += n;
}
void pi0__buf_u8(pi0__buf *b, uint8_t v) {
    pi0__buf_put(b, &v, 1);
}
void pi0__buf_u16(pi0__buf *b, uint16_t v) {
    pi0__buf_put(b, &v, 2);
}
void pi0__buf_u32(pi0__buf *b, uint32_t v) {
    pi0__buf_put(b, &v, 4);
}
void pi0__buf_u64(pi0__buf *b, uint64_t v) {
    pi0__buf_put(b, &v, 8);
}
void pi0__buf_str(pi0__buf *b, const char *s) {
    size_t n = strlen(s);
    pi0__buf_u32(b, (uint32_t)n);
    pi0__buf_put(b, s, n);
}

/* Starts a record (opcode + length placeholder); returns the offset of the length. */
static size_t rec_begin(pi0__buf *b, uint8_t op) {
    pi0__buf_u8(b, op);
    size_t at = b->len;
    pi0__buf_u64(b, 0);
    return at;
}
static void rec_end(pi0__buf *b, size_t at) {
    if (b->oom) return;
    uint64_t n = b->len - at - 8;
    memcpy(b->p + at, &n, 8);
}
static void put_map(pi0__buf *b, const char *const *kv, int n) {
    size_t at = b->len;
    pi0__buf_u32(b, 0);
    for (int i = 0; i < 2 * n; i++)
        pi0__buf_str(b, kv[i]);
    if (b->oom) return;
    uint32_t len = (uint32_t)(b->len - at - 4);
    memcpy(b->p + at, &len, 4);
}

// ---- writer ----

struct pi0__mcap_writer {
    int fd;
    char *path;
    int status;
    pi0__mcap_writer_opts opts;
    uint64_t offset; /* bytes written so far */
    int64_t last_sync_ns;

    pi0__buf chunk; /* records of the open chunk (uncompressed) */
    pi0__buf out;   /* compressed chunk */
    pi0__buf head;  /* chunk record header + message indexes */
    uint64_t chunk_start, chunk_end;
    pi0__buf index[PI0__MCAP_CHANNELS_MAX]; /* (log_time, offset) pairs of the open chunk */

    pi0__buf schemas, channels, meta_index, chunk_index; /* summary groups */
    uint16_t n_schemas, n_channels;
    uint32_t n_metadata;
    uint64_t channel_count[PI0__MCAP_CHANNELS_MAX];
    uint64_t start_time, end_time;
    pi0__mcap_stats st;
};

/* Writes all iovecs (looping over partial writes). */
static int w_writev(pi0__mcap_writer *w, struct iovec *iov, int n) {
    if (w->status) return w->status;
    for (int i = 0; i < n; i++)
        w->offset += iov[i].iov_len;
    while (n > 0) {
        ssize_t k = writev(w->fd, iov, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0)
            return w->status = pi0_errorf(PI0_EIO, "%s: write: %s", w->path, strerror(errno));
        while (n > 0 && (size_t)k >= iov->iov_len)
            k -= (ssize_t)iov->iov_len, iov++, n--;
        if (n > 0) {
            iov->iov_base = (char *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    if (w->opts.sync_s > 0 &&
        pi0__now_ns() - w->last_sync_ns > (int64_t)(w->opts.sync_s * 1e9)) {
        fdatasync(w->fd);
        w->last_sync_ns = pi0__now_ns();
    }
    return 0;
}

static int w_write_buf(pi0__mcap_writer *w, pi0__buf *b) {
    if (b->oom) return w->status = pi0_errorf(PI0_ENOMEM, "%s: out of memory", w->path);
    struct iovec iov = {b->p, b->len};
    return w_writev(w, &iov, 1);
}

int pi0__mcap_writer_create(const char *path, const pi0__mcap_writer_opts *opts,
                            pi0__mcap_writer **out) {
    *out = NULL;
    pi0__mcap_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
    }
    w->opts = *opts;
    if (!w->opts.chunk_size) w->opts.chunk_size = 1u << 20;
    w->fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        int st = pi0_errorf(PI0_EIO, "%s: %s", path, strerror(errno));
        free(w->path);
        free(w);
        return st;
    }
    w->last_sync_ns = pi0__now_ns();
    pi0__buf b = {0};
    pi0__buf_put(&b, MAGIC, 8);
    size_t at = rec_begin(&b, PI0__MCAP_OP_HEADER);
    pi0__buf_str(&b, "ros2");
    pi0__buf_str(&b, opts->library ? opts->library : "pi0rt");
    rec_end(&b, at);
    int st = w_write_buf(w, &b);
    pi0__buf_free(&b);
    if (st) {
        pi0__mcap_writer_close(w, 0, NULL);
        return st;
    }
    *out = w;
    return 0;
}

/* Writes a data-section record built in b and keeps a copy in the summary group `keep`. */
static int w_record(pi0__mcap_writer *w, pi0__buf *b, pi0__buf *keep) {
    int st = w_write_buf(w, b);
    if (!st && keep) pi0__buf_put(keep, b->p, b->len);
    pi0__buf_free(b);
    return st;
}

int pi0__mcap_add_schema(pi0__mcap_writer *w, const char *name, const char *encoding,
                         const void *data, uint32_t data_len, uint16_t *id) {
    if (w->n_schemas >= PI0__MCAP_CHANNELS_MAX)
        return pi0_errorf(PI0_ERANGE, "%s: more than %d schemas", w->path,
                          PI0__MCAP_CHANNELS_MAX);
    *id = ++w->n_schemas;
    pi0__buf b = {0};
    size_t at = rec_begin(&b, PI0__MCAP_OP_SCHEMA);
    pi0__buf_u16(&b, *id);
    pi0__buf_str(&b, name);
    pi0__buf_str(&b, encoding);
    pi0__buf_u32(&b, data_len);
    pi0__buf_put(&b, data, data_len);
    rec_end(&b, at);
    return w_record(w, &b, &w->schemas);
}

int pi0__mcap_add_channel(pi0__mcap_writer *w, uint16_t schema_id, const char *topic,
                          const char *message_encoding, const char *const *meta, int n_meta,
                          uint16_t *id) {
    pi0__buf m = {0};
    put_map(&m, meta, n_meta);
    if (m.oom) return pi0_errorf(PI0_ENOMEM, "%s: channel", w->path);
    int st = pi0__mcap_add_channel_raw(w, schema_id, topic, message_encoding, m.p + 4,
                                       (uint32_t)(m.len - 4), id);
    pi0__buf_free(&m);
    return st;
}

int pi0__mcap_add_channel_raw(pi0__mcap_writer *w, uint16_t schema_id, const char *topic,
                              const char *message_encoding, const uint8_t *meta,
                              uint32_t meta_len, uint16_t *id) {
    if (w->n_channels >= PI0__MCAP_CHANNELS_MAX)
        return pi0_errorf(PI0_ERANGE, "%s: more than %d channels", w->path,
                          PI0__MCAP_CHANNELS_MAX);
    *id = w->n_channels++; /* channel ids 0..n-1 (0 is a valid channel id) */
    pi0__buf b = {0};
    size_t at = rec_begin(&b, PI0__MCAP_OP_CHANNEL);
    pi0__buf_u16(&b, *id);
    pi0__buf_u16(&b, schema_id);
    pi0__buf_str(&b, topic);
    pi0__buf_str(&b, message_encoding);
    pi0__buf_u32(&b, meta_len);
    pi0__buf_put(&b, meta, meta_len);
    rec_end(&b, at);
    return w_record(w, &b, &w->channels);
}

int pi0__mcap_add_metadata(pi0__mcap_writer *w, const char *name, const char *const *meta,
                           int n_meta) {
    pi0__buf b = {0};
    size_t at = rec_begin(&b, PI0__MCAP_OP_METADATA);
    pi0__buf_str(&b, name);
    put_map(&b, meta, n_meta);
    rec_end(&b, at);
    uint64_t where = w->offset, len = b.len;
    int st = w_record(w, &b, NULL);
    if (st) return st;
    w->n_metadata++;
    at = rec_begin(&w->meta_index, PI0__MCAP_OP_METADATA_INDEX);
    pi0__buf_u64(&w->meta_index, where);
    pi0__buf_u64(&w->meta_index, len);
    pi0__buf_str(&w->meta_index, name);
    rec_end(&w->meta_index, at);
    return 0;
}

/* Compresses (or stores) the open chunk and writes it with its message indexes in one
 * writev, then records its ChunkIndex. */
static int flush_chunk(pi0__mcap_writer *w) {
    if (w->status || !w->chunk.len) return w->status;
    if (w->chunk.oom) return w->status = pi0_errorf(PI0_ENOMEM, "%s: chunk", w->path);
    const uint8_t *data = w->chunk.p;
    size_t raw = w->chunk.len, len = raw;
    uint32_t crc = pi0__crc32(0, data, raw);
    const char *comp = "";
    if (w->opts.compress && raw >= 1024) {
        LZ4F_preferences_t prefs;
        memset(&prefs, 0, sizeof prefs);
        prefs.frameInfo.contentSize = raw;
        size_t bound = LZ4F_compressFrameBound(raw, &prefs);
        w->out.len = 0;
        if (pi0__buf_reserve(&w->out, bound))
            return w->status = pi0_errorf(PI0_ENOMEM, "%s: chunk", w->path);
        size_t n = LZ4F_compressFrame(w->out.p, bound, data, raw, &prefs);
        if (LZ4F_isError(n))
            return w->status =
                       pi0_errorf(PI0_EIO, "%s: lz4: %s", w->path, LZ4F_getErrorName(n));
        if ((double)n * 1.02 <= (double)raw) { /* it pays: keep it compressed */
            data = w->out.p;
            len = n;
            comp = "lz4";
        }
    }
    pi0__buf *h = &w->head;
    h->len = 0;
    pi0__buf_u8(h, PI0__MCAP_OP_CHUNK);
    pi0__buf_u64(h, 8 + 8 + 8 + 4 + 4 + strlen(comp) + 8 + len);
    pi0__buf_u64(h, w->chunk_start);
    pi0__buf_u64(h, w->chunk_end);
    pi0__buf_u64(h, raw);
    pi0__buf_u32(h, crc);
    pi0__buf_str(h, comp);
    pi0__buf_u64(h, len);
    size_t head_len = h->len;
    uint64_t chunk_off = w->offset, chunk_len = head_len + len;
    /* message indexes follow the chunk; their offsets go into the chunk index */
    pi0__buf map = {0};
    uint64_t idx_off = chunk_off + chunk_len;
    for (int c = 0; c < w->n_channels; c++) {
        pi0__buf *ix = &w->index[c];
        if (!ix->len) continue;
        pi0__buf_u16(&map, (uint16_t)c);
        pi0__buf_u64(&map, idx_off + (h->len - head_len));
        pi0__buf_u8(h, PI0__MCAP_OP_MESSAGE_INDEX);
        pi0__buf_u64(h, 2 + 4 + ix->len);
        pi0__buf_u16(h, (uint16_t)c);
        pi0__buf_u32(h, (uint32_t)ix->len);
        pi0__buf_put(h, ix->p, ix->len);
        ix->len = 0;
    }
    uint64_t idx_len = h->len - head_len;
    if (h->oom || map.oom) {
        pi0__buf_free(&map);
        return w->status = pi0_errorf(PI0_ENOMEM, "%s: chunk index", w->path);
    }
    struct iovec iov[3] = {{h->p, head_len}, {(void *)data, len}, {h->p + head_len, idx_len}};
    int st = w_writev(w, iov, 3);
    if (!st) {
        pi0__buf *ci = &w->chunk_index;
        size_t at = rec_begin(ci, PI0__MCAP_OP_CHUNK_INDEX);
        pi0__buf_u64(ci, w->chunk_start);
        pi0__buf_u64(ci, w->chunk_end);
        pi0__buf_u64(ci, chunk_off);
        pi0__buf_u64(ci, chunk_len);
        pi0__buf_u32(ci, (uint32_t)map.len);
        pi0__buf_put(ci, map.p, map.len);
        pi0__buf_u64(ci, idx_len);
        pi0__buf_str(ci, comp);
        pi0__buf_u64(ci, len);
        pi0__buf_u64(ci, raw);
        rec_end(ci, at);
        w->st.chunks++;
        w->st.chunks_stored += !*comp;
        w->st.raw_bytes += raw;
        w->st.compressed_bytes += len;
    }
    pi0__buf_free(&map);
    w->chunk.len = 0;
    return st;
}

int pi0__mcap_write(pi0__mcap_writer *w, uint16_t channel, uint32_t sequence, uint64_t log_time,
                    uint64_t publish_time, const void *data, size_t len) {
    if (w->status) return w->status;
    if (channel >= w->n_channels)
        return pi0_errorf(PI0_EINVAL, "%s: no channel %u", w->path, channel);
    pi0__buf *c = &w->chunk;
    if (!c->len || log_time < w->chunk_start) w->chunk_start = log_time;
    if (!c->len || log_time > w->chunk_end) w->chunk_end = log_time;
    pi0__buf_u64(&w->index[channel], log_time);
    pi0__buf_u64(&w->index[channel], c->len);
    pi0__buf_u8(c, PI0__MCAP_OP_MESSAGE);
    pi0__buf_u64(c, 2 + 4 + 8 + 8 + len);
    pi0__buf_u16(c, channel);
    pi0__buf_u32(c, sequence);
    pi0__buf_u64(c, log_time);
    pi0__buf_u64(c, publish_time);
    pi0__buf_put(c, data, len);
    if (c->oom || w->index[channel].oom)
        return w->status = pi0_errorf(PI0_ENOMEM, "%s: chunk", w->path);
    if (!w->st.messages || log_time < w->start_time) w->start_time = log_time;
    if (!w->st.messages || log_time > w->end_time) w->end_time = log_time;
    w->st.messages++;
    w->channel_count[channel]++;
    if (c->len >= w->opts.chunk_size) return flush_chunk(w);
    return 0;
}

/* DataEnd, summary groups, summary offsets, footer, magic. */
static int finish_file(pi0__mcap_writer *w) {
    int st = flush_chunk(w);
    if (st) return st;
    pi0__buf b = {0};
    pi0__buf_u8(&b, PI0__MCAP_OP_DATA_END);
    pi0__buf_u64(&b, 4);
    pi0__buf_u32(&b, 0); /* data-section CRC not computed (as the reference writer's default):
                            every chunk carries its own CRC, the summary has one too */
    if ((st = w_write_buf(w, &b))) goto out;
    b.len = 0;

    uint64_t summary_start = w->offset;
    pi0__buf stats = {0};
    size_t at = rec_begin(&stats, PI0__MCAP_OP_STATISTICS);
    pi0__buf_u64(&stats, w->st.messages);
    pi0__buf_u16(&stats, w->n_schemas);
    pi0__buf_u32(&stats, w->n_channels);
    pi0__buf_u32(&stats, 0); /* attachments */
    pi0__buf_u32(&stats, w->n_metadata);
    pi0__buf_u32(&stats, (uint32_t)w->st.chunks);
    pi0__buf_u64(&stats, w->start_time);
    pi0__buf_u64(&stats, w->end_time);
    pi0__buf_u32(&stats, (uint32_t)(w->n_channels * 10u));
    for (int c = 0; c < w->n_channels; c++) {
        pi0__buf_u16(&stats, (uint16_t)c);
        pi0__buf_u64(&stats, w->channel_count[c]);
    }
    rec_end(&stats, at);
    /* summary groups in this order (Channels before Statistics, as the spec asks) */
    struct {
        uint8_t op;
        pi0__buf *g;
    } groups[] = {{PI0__MCAP_OP_SCHEMA, &w->schemas},
                  {PI0__MCAP_OP_CHANNEL, &w->channels},
                  {PI0__MCAP_OP_STATISTICS, &stats},
                  {PI0__MCAP_OP_METADATA_INDEX, &w->meta_index},
                  {PI0__MCAP_OP_CHUNK_INDEX, &w->chunk_index}};
    pi0__buf offs = {0};
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        if (!groups[i].g->len) continue;
        at = rec_begin(&offs, PI0__MCAP_OP_SUMMARY_OFFSET);
        pi0__buf_u8(&offs, groups[i].op);
        pi0__buf_u64(&offs, summary_start + b.len);
        pi0__buf_u64(&offs, groups[i].g->len);
        rec_end(&offs, at);
        pi0__buf_put(&b, groups[i].g->p, groups[i].g->len);
    }
    pi0__buf_free(&stats);
    uint64_t offset_start = summary_start + b.len;
    pi0__buf_put(&b, offs.p, offs.len);
    pi0__buf_free(&offs);
    pi0__buf_u8(&b, PI0__MCAP_OP_FOOTER);
    pi0__buf_u64(&b, 20);
    pi0__buf_u64(&b, summary_start);
    pi0__buf_u64(&b, offset_start);
    if (!b.oom) pi0__buf_u32(&b, pi0__crc32(0, b.p, b.len));
    pi0__buf_put(&b, MAGIC, 8);
    st = w_write_buf(w, &b);
    if (!st && fsync(w->fd))
        st = w->status = pi0_errorf(PI0_EIO, "%s: fsync: %s", w->path, strerror(errno));
out:
    pi0__buf_free(&b);
    return st;
}

int pi0__mcap_writer_close(pi0__mcap_writer *w, int finish, pi0__mcap_stats *stats) {
    if (!w) return 0;
    int st = finish ? finish_file(w) : w->status;
    if (stats) {
        *stats = w->st;
        stats->file_bytes = w->offset;
    }
    if (close(w->fd) && !st)
        st = pi0_errorf(PI0_EIO, "%s: close: %s", w->path, strerror(errno));
    pi0__buf *bufs[] = {&w->chunk,    &w->out,        &w->head,       &w->schemas,
                        &w->channels, &w->meta_index, &w->chunk_index};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        pi0__buf_free(bufs[i]);
    for (int c = 0; c < PI0__MCAP_CHANNELS_MAX; c++)
        pi0__buf_free(&w->index[c]);
    free(w->path);
    free(w);
    return st;
}

// ---- reader ----

#define CHUNK_RAW_MAX (1ull << 30) /* largest uncompressed chunk this reader accepts */

struct pi0__mcap_reader {
    char *path;
    const uint8_t *map;
    size_t size;
    pi0__mcap_schema schemas[PI0__MCAP_CHANNELS_MAX];
    pi0__mcap_channel channels[PI0__MCAP_CHANNELS_MAX];
    int n_schemas, n_channels;
    int16_t *chan_ix; /* channel id -> index into channels, -1: none (65536 entries) */
    pi0__buf raw;     /* decompressed chunk */
    LZ4F_dctx *dctx;
};

/* A bounded cursor over untrusted bytes; `base` is the file offset of p[0] (for errors). */
typedef struct cur {
    const uint8_t *p;
    size_t n;
    int bad;
} cur;

static int c_take(cur *c, void *dst, size_t k) {
    if (c->bad || c->n < k) {
        c->bad = 1;
        if (dst) memset(dst, 0, k);
        return -1;
    }
    if (dst) memcpy(dst, c->p, k);
    c->p += k;
    c->n -= k;
    return 0;
}
static uint16_t c_u16(cur *c) {
    uint16_t v;
    c_take(c, &v, 2);
    return v;
}
static uint32_t c_u32(cur *c) {
    uint32_t v;
    c_take(c, &v, 4);
    return v;
}
static uint64_t c_u64(cur *c) {
    uint64_t v;
    c_take(c, &v, 8);
    return v;
}
/* A length-prefixed (uint32) byte run, returned as a view. */
static const uint8_t *c_bytes(cur *c, uint32_t *len) {
    *len = c_u32(c);
    const uint8_t *p = c->p;
    if (c_take(c, NULL, *len)) *len = 0;
    return c->bad ? NULL : p;
}
/* A String copied NUL-terminated (NUL inside the string rejected). */
static char *c_str(cur *c) {
    uint32_t n;
    const uint8_t *p = c_bytes(c, &n);
    if (!p || memchr(p, 0, n)) {
        c->bad = 1;
        return NULL;
    }
    char *s = malloc((size_t)n + 1);
    if (!s) {
        c->bad = 1;
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

int pi0__mcap_is_mcap(const char *path) {
    uint8_t m[8];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int ok = read(fd, m, 8) == 8 && !memcmp(m, MAGIC, 8);
    close(fd);
    return ok;
}

int pi0__mcap_open(const char *path, pi0__mcap_reader **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pi0_errorf(errno == ENOENT ? PI0_ENOENT : PI0_EIO, "%s: %s", path,
                          strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) || !S_ISREG(sb.st_mode)) {
        close(fd);
        return pi0_errorf(PI0_EIO, "%s: not a regular file", path);
    }
    if (sb.st_size < 8 + 9) {
        close(fd);
        return pi0_errorf(PI0_EFORMAT, "%s: offset 0: %lld bytes, too short for an MCAP file",
                          path, (long long)sb.st_size);
    }
    pi0__mcap_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path)) || !(r->chan_ix = malloc(65536 * sizeof *r->chan_ix))) {
        close(fd);
        if (r) free(r->path);
        free(r);
        return pi0_errorf(PI0_ENOMEM, "%s: out of memory", path);
    }
    memset(r->chan_ix, 0xff, 65536 * sizeof *r->chan_ix);
    r->size = (size_t)sb.st_size;
    void *m = mmap(NULL, r->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        int st = pi0_errorf(PI0_EIO, "%s: mmap: %s", path, strerror(errno));
        r->map = NULL;
        pi0__mcap_close(r);
        return st;
    }
    r->map = m;
    if (memcmp(r->map, MAGIC, 8)) {
        pi0__mcap_close(r);
        return pi0_errorf(PI0_EFORMAT, "%s: offset 0: not an MCAP file (bad magic)", path);
    }
    uint8_t first = r->map[8];
    if (first != PI0__MCAP_OP_HEADER) {
        pi0__mcap_close(r);
        return pi0_errorf(PI0_EFORMAT, "%s: offset 8: first record is 0x%02x, not a Header",
                          path, first);
    }
    *out = r;
    return 0;
}

void pi0__mcap_close(pi0__mcap_reader *r) {
    if (!r) return;
    if (r->map) munmap((void *)r->map, r->size);
    for (int i = 0; i < r->n_schemas; i++) {
        free((char *)r->schemas[i].name);
        free((char *)r->schemas[i].encoding);
        free((char *)r->schemas[i].data);
    }
    for (int i = 0; i < r->n_channels; i++) {
        free((char *)r->channels[i].topic);
        free((char *)r->channels[i].message_encoding);
        free((char *)r->channels[i].pi0rt_topic);
        free((uint8_t *)r->channels[i].meta);
    }
    pi0__buf_free(&r->raw);
    if (r->dctx) LZ4F_freeDecompressionContext(r->dctx);
    free(r->chan_ix);
    free(r->path);
    free(r);
}

static const char *op_name(uint8_t op) {
    static const char *const names[] = {
        "record 0x00", "Header",        "Footer",          "Schema",
        "Channel",     "Message",       "Chunk",           "MessageIndex",
        "ChunkIndex",  "Attachment",    "AttachmentIndex", "Statistics",
        "Metadata",    "MetadataIndex", "SummaryOffset",   "DataEnd"};
    return op < 16 ? names[op] : "unknown record";
}

/* Error "PATH: offset N: RECORD: what". */
#define BAD(r, off, op, ...) bad(r, off, op, __VA_ARGS__)
PI0_PRINTF(4, 5)
static int bad(const pi0__mcap_reader *r, uint64_t off, uint8_t op, const char *fmt, ...) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return pi0_errorf(PI0_EFORMAT, "%s: offset %llu: %s: %s", r->path, (unsigned long long)off,
                      op_name(op), what);
}

static const pi0__mcap_schema *find_schema(const pi0__mcap_reader *r, uint16_t id) {
    for (int i = 0; i < r->n_schemas; i++)
        if (r->schemas[i].id == id) return &r->schemas[i];
    return NULL;
}

static int parse_schema(pi0__mcap_reader *r, cur c, uint64_t off) {
    uint16_t id = c_u16(&c);
    char *name = c_str(&c), *enc = c_str(&c);
    uint32_t len;
    const uint8_t *data = c_bytes(&c, &len);
    int st = 0;
    if (c.bad) {
        st = BAD(r, off, PI0__MCAP_OP_SCHEMA, "truncated or malformed field");
    } else if (id == 0 || find_schema(r, id)) {
        /* id 0 is invalid and ignored; a repeated id must be identical: keep the first */
    } else if (r->n_schemas >= PI0__MCAP_CHANNELS_MAX) {
        st = BAD(r, off, PI0__MCAP_OP_SCHEMA, "more than %d schemas", PI0__MCAP_CHANNELS_MAX);
    } else {
        char *copy = malloc((size_t)len + 1);
        if (!copy) {
            st = pi0_errorf(PI0_ENOMEM, "%s: schema", r->path);
        } else {
            memcpy(copy, data, len);
            copy[len] = 0;
            r->schemas[r->n_schemas++] = (pi0__mcap_schema){id, name, enc, copy, len};
            return 0;
        }
    }
    free(name);
    free(enc);
    return st;
}

static int parse_channel(pi0__mcap_reader *r, cur c, uint64_t off) {
    uint16_t id = c_u16(&c), schema = c_u16(&c);
    char *topic = c_str(&c), *enc = c_str(&c), *pt = NULL;
    uint32_t mlen;
    const uint8_t *mp = c_bytes(&c, &mlen);
    cur m = {mp, mlen, 0};
    while (!c.bad && !m.bad && m.n) {
        char *k = c_str(&m), *v = c_str(&m);
        if (k && v && !strcmp(k, "pi0rt.topic") && !pt) pt = v, v = NULL;
        free(k);
        free(v);
    }
    int st = 0;
    if (c.bad || m.bad) {
        st = BAD(r, off, PI0__MCAP_OP_CHANNEL, "truncated or malformed field");
    } else if (r->chan_ix[id] >= 0) {
        /* repeated id: identical by the spec; keep the first */
    } else if (schema && !find_schema(r, schema)) {
        st = BAD(r, off, PI0__MCAP_OP_CHANNEL, "channel %u refers to unknown schema %u", id,
                 schema);
    } else if (r->n_channels >= PI0__MCAP_CHANNELS_MAX) {
        st = BAD(r, off, PI0__MCAP_OP_CHANNEL, "more than %d channels", PI0__MCAP_CHANNELS_MAX);
    } else {
        uint8_t *copy = malloc(mlen ? mlen : 1);
        if (!copy) {
            st = pi0_errorf(PI0_ENOMEM, "%s: channel", r->path);
        } else {
            memcpy(copy, mp, mlen);
            int ix = r->n_channels++;
            r->chan_ix[id] = (int16_t)ix;
            r->channels[ix] = (pi0__mcap_channel){
                ix, id,   schema, schema ? find_schema(r, schema) : NULL, topic, enc,
                pt, copy, mlen};
            return 0;
        }
    }
    free(topic);
    free(enc);
    free(pt);
    return st;
}

static int parse_metadata(pi0__mcap_reader *r, cur c, uint64_t off, pi0__mcap_scan_info *info) {
    char *name = c_str(&c);
    uint32_t mlen;
    const uint8_t *mp = c_bytes(&c, &mlen);
    cur m = {mp, mlen, 0};
    while (!c.bad && !m.bad && m.n) {
        char *k = c_str(&m), *v = c_str(&m);
        if (name && k && v && !strcmp(name, "pi0rt.clock") &&
            !strcmp(k, "monotonic_to_unix_offset_ns")) {
            char *end;
            errno = 0;
            long long x = strtoll(v, &end, 10);
            if (!errno && end != v && !*end) {
                info->clock_offset_ns = x;
                info->have_clock_offset = 1;
            }
        }
        free(k);
        free(v);
    }
    free(name);
    if (c.bad || m.bad) return BAD(r, off, PI0__MCAP_OP_METADATA, "truncated or malformed");
    return 0;
}

typedef int (*msg_fn)(const pi0__mcap_message *m, void *ctx);

/* A Message record's content. With fn NULL only validates. */
static int parse_message(pi0__mcap_reader *r, cur c, uint64_t off, int deliver, msg_fn fn,
                         void *ctx, pi0__mcap_scan_info *info) {
    pi0__mcap_message m;
    uint16_t ch = c_u16(&c);
    m.sequence = c_u32(&c);
    m.log_time = c_u64(&c);
    m.publish_time = c_u64(&c);
    if (c.bad) return BAD(r, off, PI0__MCAP_OP_MESSAGE, "shorter than its 22-byte header");
    if (r->chan_ix[ch] < 0) return BAD(r, off, PI0__MCAP_OP_MESSAGE, "unknown channel %u", ch);
    if (!deliver) return 0;
    int ix = r->chan_ix[ch];
    m.channel = &r->channels[ix];
    m.schema = m.channel->schema;
    m.data = c.p;
    m.len = c.n;
    if (!info->messages || m.log_time < info->start_time) info->start_time = m.log_time;
    if (!info->messages || m.log_time > info->end_time) info->end_time = m.log_time;
    info->messages++;
    info->channel_messages[ix]++;
    return fn ? fn(&m, ctx) : 0;
}

/* Decompresses a chunk into r->raw and checks its CRC; out, n: the records. */
static int chunk_records(pi0__mcap_reader *r, cur c, uint64_t off, const uint8_t **out,
                         size_t *n, uint64_t *stored) {
    c_u64(&c); /* message_start_time */
    c_u64(&c); /* message_end_time */
    uint64_t raw = c_u64(&c);
    uint32_t crc = c_u32(&c);
    char *comp = c_str(&c);
    uint64_t len = c_u64(&c);
    const uint8_t *data = c.p;
    if (!c.bad && len > c.n) c.bad = 1;
    if (c.bad) {
        free(comp);
        return BAD(r, off, PI0__MCAP_OP_CHUNK, "truncated or malformed field");
    }
    *stored = len;
    int st = 0;
    if (!*comp) {
        if (raw != len)
            st = BAD(r, off, PI0__MCAP_OP_CHUNK, "uncompressed_size %llu != records %llu",
                     (unsigned long long)raw, (unsigned long long)len);
        *out = data;
        *n = len;
    } else if (!strcmp(comp, "lz4")) {
        /* LZ4 expands at most ~255x: a larger claim is a lie, not a reason to allocate */
        if (raw > CHUNK_RAW_MAX || raw > 255 * len + 65536) {
            st = BAD(r, off, PI0__MCAP_OP_CHUNK, "implausible uncompressed_size %llu for %llu",
                     (unsigned long long)raw, (unsigned long long)len);
        } else if (!r->dctx &&
                   LZ4F_isError(LZ4F_createDecompressionContext(&r->dctx, LZ4F_VERSION))) {
            r->dctx = NULL;
            st = pi0_errorf(PI0_ENOMEM, "%s: lz4 context", r->path);
        } else if (!(st = pi0__buf_reserve(&r->raw, raw + 1 - r->raw.len))) {
            size_t dst = raw + 1, src = len; /* room for one byte too many: detects excess */
            size_t ret = LZ4F_decompress(r->dctx, r->raw.p, &dst, data, &src, NULL);
            if (LZ4F_isError(ret) || ret != 0 || src != len || dst != raw) {
                st = BAD(r, off, PI0__MCAP_OP_CHUNK, "lz4 frame: %s",
                         LZ4F_isError(ret) ? LZ4F_getErrorName(ret)
                                           : "size differs from uncompressed_size");
                LZ4F_freeDecompressionContext(r->dctx); /* a fresh one for the next chunk */
                r->dctx = NULL;
            }
            *out = r->raw.p;
            *n = raw;
        }
    } else {
        st = BAD(r, off, PI0__MCAP_OP_CHUNK, "unsupported compression \"%.20s\"", comp);
    }
    free(comp);
    if (!st && crc && pi0__crc32(0, *out, *n) != crc)
        st = BAD(r, off, PI0__MCAP_OP_CHUNK, "CRC mismatch of the uncompressed records");
    return st;
}

/* Walks the records of a chunk: deliver = 0 validates (and registers schemas/channels),
 * deliver = 1 counts and delivers the messages. */
static int chunk_walk(pi0__mcap_reader *r, const uint8_t *p, size_t n, uint64_t off,
                      int deliver, msg_fn fn, void *ctx, pi0__mcap_scan_info *info) {
    size_t pos = 0;
    while (pos < n) {
        if (n - pos < 9)
            return BAD(r, off, PI0__MCAP_OP_CHUNK, "record at %zu truncated inside the chunk",
                       pos);
        uint8_t op = p[pos];
        uint64_t len;
        memcpy(&len, p + pos + 1, 8);
        if (len > n - pos - 9)
            return BAD(r, off, PI0__MCAP_OP_CHUNK, "%s at %zu: length %llu past chunk end",
                       op_name(op), pos, (unsigned long long)len);
        cur c = {p + pos + 9, (size_t)len, 0};
        int st = 0;
        if (op == PI0__MCAP_OP_MESSAGE)
            st = parse_message(r, c, off, deliver, fn, ctx, info);
        else if (!deliver && op == PI0__MCAP_OP_SCHEMA)
            st = parse_schema(r, c, off);
        else if (!deliver && op == PI0__MCAP_OP_CHANNEL)
            st = parse_channel(r, c, off);
        if (st) return st;
        pos += 9 + (size_t)len;
    }
    return 0;
}

/* Checks the summary and footer after DataEnd at `pos`. */
static int check_tail(pi0__mcap_reader *r, uint64_t pos) {
    const uint64_t foot = r->size - 8 - 29; /* footer record: 1 + 8 + 20 bytes */
    if (r->size < 8 + 29 + pos || memcmp(r->map + r->size - 8, MAGIC, 8))
        return BAD(r, pos, PI0__MCAP_OP_FOOTER, "missing trailing magic (file truncated)");
    uint64_t flen;
    memcpy(&flen, r->map + foot + 1, 8);
    if (r->map[foot] != PI0__MCAP_OP_FOOTER || flen != 20)
        return BAD(r, foot, PI0__MCAP_OP_FOOTER, "no Footer before the trailing magic");
    uint64_t ss, so;
    uint32_t crc;
    memcpy(&ss, r->map + foot + 9, 8);
    memcpy(&so, r->map + foot + 17, 8);
    memcpy(&crc, r->map + foot + 25, 4);
    if ((ss && (ss < pos || ss > foot)) || (so && (so < pos || so > foot)))
        return BAD(r, foot, PI0__MCAP_OP_FOOTER, "summary offsets outside the summary");
    uint64_t from = ss ? ss : so ? so : foot;
    if (crc && pi0__crc32(0, r->map + from, foot + 25 - from) != crc)
        return BAD(r, foot, PI0__MCAP_OP_FOOTER, "summary CRC mismatch");
    /* the summary must be well-formed records up to the footer */
    for (uint64_t p = pos; p < foot;) {
        uint64_t len;
        if (foot - p < 9) return BAD(r, p, r->map[p], "truncated record in the summary");
        memcpy(&len, r->map + p + 1, 8);
        if (len > foot - p - 9) return BAD(r, p, r->map[p], "length past the footer");
        p += 9 + len;
    }
    return 0;
}

int pi0__mcap_scan(pi0__mcap_reader *r, msg_fn fn, void *ctx, pi0__mcap_scan_info *info) {
    memset(info, 0, sizeof *info);
    uint64_t pos = 8;
    int st = 0, first = 1;
    while (!st) {
        info->good_bytes = pos;
        if (pos == r->size) {
            st = BAD(r, pos, 0, "file ends without DataEnd and Footer (recorder killed?)");
            break;
        }
        if (r->size - pos < 9) {
            st = BAD(r, pos, r->map[pos], "record header truncated");
            break;
        }
        uint8_t op = r->map[pos];
        uint64_t len;
        memcpy(&len, r->map + pos + 1, 8);
        if (len > r->size - pos - 9) {
            st = BAD(r, pos, op, "length %llu runs past the end of the file (%zu bytes)",
                     (unsigned long long)len, r->size);
            break;
        }
        cur c = {r->map + pos + 9, (size_t)len, 0};
        uint64_t next = pos + 9 + len;
        if (first && op != PI0__MCAP_OP_HEADER) st = BAD(r, pos, op, "expected a Header");
        first = 0;
        if (st) break;
        switch (op) {
        case PI0__MCAP_OP_SCHEMA:
            st = parse_schema(r, c, pos);
            break;
        case PI0__MCAP_OP_CHANNEL:
            st = parse_channel(r, c, pos);
            break;
        case PI0__MCAP_OP_METADATA:
            st = parse_metadata(r, c, pos, info);
            break;
        case PI0__MCAP_OP_MESSAGE:
            st = parse_message(r, c, pos, 1, fn, ctx, info);
            break;
        case PI0__MCAP_OP_CHUNK: {
            const uint8_t *recs = NULL;
            size_t n = 0;
            uint64_t stored = 0;
            st = chunk_records(r, c, pos, &recs, &n, &stored);
            if (!st) st = chunk_walk(r, recs, n, pos, 0, fn, ctx, info);
            if (!st) {
                info->chunks++;
                info->chunk_raw_bytes += n;
                info->chunk_compressed_bytes += stored;
                info->good_bytes = next; /* the chunk is intact even if fn stops here */
                st = chunk_walk(r, recs, n, pos, 1, fn, ctx, info);
            }
            break;
        }
        case PI0__MCAP_OP_DATA_END: {
            uint32_t crc = c_u32(&c);
            if (c.bad) {
                st = BAD(r, pos, op, "truncated");
            } else if (crc && pi0__crc32(0, r->map, pos) != crc) {
                st = BAD(r, pos, op, "data section CRC mismatch");
            } else {
                info->good_bytes = next;
                st = check_tail(r, next);
                if (!st) info->footer_ok = 1;
                goto done;
            }
            break;
        }
        case PI0__MCAP_OP_FOOTER: /* a file without DataEnd and summary */
            if (next + 8 != r->size || memcmp(r->map + next, MAGIC, 8))
                st = BAD(r, pos, op, "Footer not followed by the trailing magic");
            else
                info->footer_ok = 1;
            goto done;
        default: /* MessageIndex, Attachment, unknown: skipped */
            break;
        }
        pos = next;
    }
done:
    info->n_channels = r->n_channels;
    for (int i = 0; i < r->n_channels; i++)
        info->channels[i] = &r->channels[i];
    return st;
}
