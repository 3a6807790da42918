/* mcap.h — a small MCAP writer and reader (https://mcap.dev, format version 0), internal
 * to pi0rt-shm's record / play / info commands.
 *
 * Writer: magic, Header, Schema/Channel/Metadata records in the data section (outside
 * chunks, so every later chunk can be decoded on its own), Message records batched into
 * Chunks (LZ4 frame or stored, CRC32 of the uncompressed records) each followed by one
 * MessageIndex per channel, then DataEnd (no data-section CRC: each chunk has its own), the
 * summary (Schemas,
 * Channels, Statistics, MetadataIndexes, ChunkIndexes), SummaryOffsets, Footer (summary
 * CRC) and magic. A chunk is written with one write() as soon as it is full, so a killed
 * recorder leaves every complete chunk on disk; pi0__mcap_scan() reads such a file up to
 * its first damaged record and a new writer rebuilds a complete file from it.
 *
 * Reader: the whole file is mapped read-only and every length, count and offset is
 * checked against it before use; a damaged or hostile file gives PI0_EFORMAT with a
 * detail naming the byte offset and the record, never a crash. */
#ifndef PI0_MCAP_H
#define PI0_MCAP_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_status.h"

#define PI0__MCAP_OP_HEADER         0x01
#define PI0__MCAP_OP_FOOTER         0x02
#define PI0__MCAP_OP_SCHEMA         0x03
#define PI0__MCAP_OP_CHANNEL        0x04
#define PI0__MCAP_OP_MESSAGE        0x05
#define PI0__MCAP_OP_CHUNK          0x06
#define PI0__MCAP_OP_MESSAGE_INDEX  0x07
#define PI0__MCAP_OP_CHUNK_INDEX    0x08
#define PI0__MCAP_OP_STATISTICS     0x0B
#define PI0__MCAP_OP_METADATA       0x0C
#define PI0__MCAP_OP_METADATA_INDEX 0x0D
#define PI0__MCAP_OP_SUMMARY_OFFSET 0x0E
#define PI0__MCAP_OP_DATA_END       0x0F

#define PI0__MCAP_CHANNELS_MAX 256 /* channels (and schemas) per file this code handles */

/* CRC-32 (IEEE 802.3, as zlib's crc32): pass 0 to start, the previous value to continue. */
uint32_t pi0__crc32(uint32_t crc, const void *data, size_t n);

/* A growable byte buffer with little-endian appenders (the CDR encoders use it too). */
typedef struct pi0__buf {
    uint8_t *p;
    size_t len, cap;
    int oom; /* an append failed to grow: contents are incomplete */
} pi0__buf;

void pi0__buf_free(pi0__buf *b);
/* Makes room for n more bytes; 0 or PI0_ENOMEM (b->oom set). */
int pi0__buf_reserve(pi0__buf *b, size_t n);
void pi0__buf_put(pi0__buf *b, const void *p, size_t n);
void pi0__buf_u8(pi0__buf *b, uint8_t v);
void pi0__buf_u16(pi0__buf *b, uint16_t v);
void pi0__buf_u32(pi0__buf *b, uint32_t v);
void pi0__buf_u64(pi0__buf *b, uint64_t v);
void pi0__buf_str(pi0__buf *b, const char *s); /* uint32 length + bytes (MCAP String) */

// ---- writer ----

typedef struct pi0__mcap_writer pi0__mcap_writer;

typedef struct pi0__mcap_writer_opts {
    uint64_t chunk_size; /* uncompressed bytes per chunk; 0 = 1 MiB */
    int compress;        /* 1: LZ4 frame (stored when it does not pay), 0: stored */
    const char *library; /* Header library string */
    double sync_s;       /* fdatasync the file at most this often (0 = never) */
} pi0__mcap_writer_opts;

/* Creates (truncates) `path` and writes magic + Header (profile "ros2"). Errors:
 * PI0_EIO (names the path), PI0_ENOMEM. */
int pi0__mcap_writer_create(const char *path, const pi0__mcap_writer_opts *opts,
                            pi0__mcap_writer **out);
/* Adds a schema of data_len bytes (returns its id >= 1 in *id); written to the data
 * section at once. */
int pi0__mcap_add_schema(pi0__mcap_writer *w, const char *name, const char *encoding,
                         const void *data, uint32_t data_len, uint16_t *id);
/* Adds a channel; `meta` is n_meta key/value pairs (keys meta[2i], values meta[2i+1]). */
int pi0__mcap_add_channel(pi0__mcap_writer *w, uint16_t schema_id, const char *topic,
                          const char *message_encoding, const char *const *meta, int n_meta,
                          uint16_t *id);
/* Same with the metadata map given as its serialized entries (as a reader returns them). */
int pi0__mcap_add_channel_raw(pi0__mcap_writer *w, uint16_t schema_id, const char *topic,
                              const char *message_encoding, const uint8_t *meta,
                              uint32_t meta_len, uint16_t *id);
/* Writes a Metadata record (data section; indexed in the summary). */
int pi0__mcap_add_metadata(pi0__mcap_writer *w, const char *name, const char *const *meta,
                           int n_meta);
/* Appends one message to the open chunk; writes the chunk when it reaches chunk_size. */
int pi0__mcap_write(pi0__mcap_writer *w, uint16_t channel, uint32_t sequence, uint64_t log_time,
                    uint64_t publish_time, const void *data, size_t len);
typedef struct pi0__mcap_stats {
    uint64_t messages, chunks, chunks_stored; /* chunks_stored: not compressed */
    uint64_t raw_bytes, compressed_bytes;     /* chunk records before / after */
    uint64_t file_bytes;
} pi0__mcap_stats;

/* Writes the last chunk, DataEnd, the summary and the footer (then fsync), closes and
 * frees; *stats (may be NULL) gets the final numbers. With finish = 0 (error paths) it
 * only closes and frees. Returns the first error of the writer's life (a failed write is
 * reported here too). NULL is fine. */
int pi0__mcap_writer_close(pi0__mcap_writer *w, int finish, pi0__mcap_stats *stats);

// ---- reader ----

typedef struct pi0__mcap_schema {
    uint16_t id;
    const char *name, *encoding; /* NUL-terminated copies */
    const char *data;            /* copy, NUL-terminated after data_len bytes */
    uint32_t data_len;
} pi0__mcap_schema;

typedef struct pi0__mcap_channel {
    int index; /* 0.. in order of appearance */
    uint16_t id, schema_id;
    const pi0__mcap_schema *schema;       /* NULL: none */
    const char *topic, *message_encoding; /* NUL-terminated copies */
    const char *pi0rt_topic;              /* metadata "pi0rt.topic" or NULL */
    const uint8_t *meta;                  /* copy of the metadata map's entries */
    uint32_t meta_len;
} pi0__mcap_channel;

typedef struct pi0__mcap_message {
    const pi0__mcap_channel *channel;
    const pi0__mcap_schema *schema; /* NULL: none */
    uint32_t sequence;
    uint64_t log_time, publish_time;
    const uint8_t *data;
    size_t len;
} pi0__mcap_message;

/* What pi0__mcap_scan found, also when it stopped at damage. */
typedef struct pi0__mcap_scan_info {
    int footer_ok;       /* DataEnd, summary and footer present and intact */
    uint64_t good_bytes; /* file offset after the last intact record */
    uint64_t chunks, messages;
    uint64_t chunk_raw_bytes, chunk_compressed_bytes;
    uint64_t start_time, end_time; /* log_time range (0, 0 without messages) */
    int n_channels;
    const pi0__mcap_channel *channels[PI0__MCAP_CHANNELS_MAX];
    uint64_t channel_messages[PI0__MCAP_CHANNELS_MAX];
    int64_t clock_offset_ns; /* metadata pi0rt.clock, 0 when absent */
    int have_clock_offset;
} pi0__mcap_scan_info;

typedef struct pi0__mcap_reader pi0__mcap_reader;

/* Maps `path` and checks the leading magic and Header. PI0_ENOENT, PI0_EIO, PI0_EFORMAT. */
int pi0__mcap_open(const char *path, pi0__mcap_reader **out);
void pi0__mcap_close(pi0__mcap_reader *r); /* NULL is fine */

/* Reads the data section in file order, calling fn for each message (a non-zero return
 * stops the scan and is returned). Chunks are decompressed and CRC-checked before any of
 * their messages is delivered, so a damaged chunk delivers none. Returns 0 when the file
 * is complete and intact up to and including its footer, else PI0_EFORMAT with a detail
 * "PATH: offset N: record: what" (info says how far the file was good). */
int pi0__mcap_scan(pi0__mcap_reader *r, int (*fn)(const pi0__mcap_message *m, void *ctx),
                   void *ctx, pi0__mcap_scan_info *info);

/* True if the file at path starts with the MCAP magic. */
int pi0__mcap_is_mcap(const char *path);

#endif
