/* tokenizer.c — SentencePiece .model loading (bounds-checked protobuf reader), the
 * normalizer (precompiled charsmap, whitespace rules), BPE and unigram encoding, decoding.
 *
 * The algorithms follow sentencepiece 0.1.97 (normalizer.cc Normalize/NormalizePrefix,
 * bpe_model.cc Encode, unigram_model.cc EncodeOptimized, sentencepiece_processor.cc
 * PopulateSentencePieceText and Decode); spm_encode / spm_decode from Debian's
 * `sentencepiece` package are the reference in tests/test_tokenizer.c. No code is shared
 * with sentencepiece; only the observable behaviour is reproduced. */
#include "pipeline/pi0_tokenizer.h"

#include <float.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/pi0_file.h"
#include "common/pi0_hash.h"

/* Largest .model file read (PaliGemma's, 257k pieces, is about 4 MB). */
#define TOKENIZER_MAX_FILE ((size_t)256 << 20)

// ---- model ----

enum { PT_NORMAL = 1, PT_UNKNOWN = 2, PT_CONTROL = 3, PT_USER = 4, PT_UNUSED = 5, PT_BYTE = 6 };
enum { MT_UNIGRAM = 1, MT_BPE = 2 };

/* Open-addressing hash of piece strings -> id. */
typedef struct strmap {
    int32_t *slot; // (cap) piece id or -1
    uint32_t *tag; // (cap) hash of the piece in slot (skips most string compares)
    uint32_t cap;  // power of two
} strmap;

/* Byte trie stored as a hash of (node, byte) -> child; value[node] = piece id or -1.
 * Used for the user-defined-symbol prefix matcher and the unigram lattice. */
typedef struct trie {
    uint64_t *key;   // (cap) node << 8 | byte, UINT64_MAX = empty
    uint32_t *child; // (cap)
    uint32_t cap;
    int32_t *value; // (n_nodes)
    uint32_t n_nodes, value_cap;
} trie;

struct pi0_tokenizer {
    int model_type;
    int n_pieces;
    char *strs;          // all piece strings, NUL-terminated
    uint32_t *piece_off; // (n_pieces) offset into strs
    uint32_t *piece_len; // (n_pieces)
    float *score;        // (n_pieces)
    uint8_t *type;       // (n_pieces) PT_*
    strmap normal;       // NORMAL, USER_DEFINED, UNUSED pieces (sentencepiece's pieces_)
    strmap reserved;     // CONTROL, UNKNOWN, BYTE pieces (reserved_id_map_)
    int unk_id;
    int byte_id[256]; // id of <0xNN>, or -1
    bool byte_fallback, ws_suffix, add_dummy_prefix, remove_extra_ws, escape_ws;
    char *unk_surface;
    char *bos_piece, *eos_piece, *pad_piece, *unk_piece;
    bool has_user;
    uint8_t user_first[256];    // 1 = some user-defined symbol starts with this byte
    trie user;                  // user-defined symbols (prefix matcher)
    trie pieces;                // unigram only: all pieces_
    float min_score, max_score; // over NORMAL pieces (unigram)
    // precompiled charsmap (copied): darts-clone double array + NUL-terminated strings
    uint32_t *da; // (da_n) units
    size_t da_n;
    char *norm; // (norm_n + 1) with a guard NUL
    size_t norm_n;
};

static uint32_t hash_bytes(const char *s, size_t n) {
    return (uint32_t)pi0__fnv1a(s, n);
}

static int no_memory(void) {
    return pi0_errorf(PI0_ENOMEM, "tokenizer: out of memory");
}

static const char *piece_str(const pi0_tokenizer *t, int id) {
    return t->strs + t->piece_off[id];
}

static int strmap_init(strmap *m, uint32_t n) {
    uint32_t cap = 16;
    while (cap < n * 2 + 16)
        cap <<= 1;
    m->slot = malloc(sizeof *m->slot * cap);
    m->tag = malloc(sizeof *m->tag * cap);
    if (!m->slot || !m->tag) return no_memory();
    memset(m->slot, 0xff, sizeof *m->slot * cap);
    m->cap = cap;
    return 0;
}

static int strmap_find(const pi0_tokenizer *t, const strmap *m, const char *s, size_t n) {
    if (!m->slot) return -1;
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int32_t id = m->slot[i];
        if (id < 0) return -1;
        if (m->tag[i] == h && t->piece_len[id] == n && memcmp(piece_str(t, id), s, n) == 0)
            return id;
    }
}

/* Inserts id; returns false when the same string is already present. */
static bool strmap_insert(pi0_tokenizer *t, strmap *m, int id) {
    const char *s = piece_str(t, id);
    size_t n = t->piece_len[id];
    uint32_t h = hash_bytes(s, n);
    for (uint32_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        int32_t o = m->slot[i];
        if (o < 0) {
            m->slot[i] = id;
            m->tag[i] = h;
            return true;
        }
        if (t->piece_len[o] == n && memcmp(piece_str(t, o), s, n) == 0) return false;
    }
}

static uint32_t mix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

static int trie_init(trie *tr, size_t n_bytes) {
    uint32_t cap = 16;
    while (cap < n_bytes * 2 + 16)
        cap <<= 1;
    tr->key = malloc(sizeof *tr->key * cap);
    tr->child = malloc(sizeof *tr->child * cap);
    tr->value_cap = 64;
    tr->value = malloc(sizeof *tr->value * tr->value_cap);
    if (!tr->key || !tr->child || !tr->value) return no_memory();
    memset(tr->key, 0xff, sizeof *tr->key * cap);
    tr->cap = cap;
    tr->n_nodes = 1;
    tr->value[0] = -1;
    return 0;
}

static void trie_free(trie *tr) {
    free(tr->key);
    free(tr->child);
    free(tr->value);
}

/* Child of node for byte b, or UINT32_MAX. */
static inline uint32_t trie_next(const trie *tr, uint32_t node, uint8_t b) {
    uint64_t k = (uint64_t)node << 8 | b;
    for (uint32_t i = mix64(k) & (tr->cap - 1);; i = (i + 1) & (tr->cap - 1)) {
        if (tr->key[i] == k) return tr->child[i];
        if (tr->key[i] == UINT64_MAX) return UINT32_MAX;
    }
}

/* Inserts s (darts keys end at the first NUL, so does this) with value id. */
static int trie_insert(trie *tr, const char *s, size_t n, int id) {
    uint32_t node = 0;
    for (size_t p = 0; p < n && s[p]; p++) {
        uint64_t k = (uint64_t)node << 8 | (uint8_t)s[p];
        uint32_t i = mix64(k) & (tr->cap - 1);
        while (tr->key[i] != k && tr->key[i] != UINT64_MAX)
            i = (i + 1) & (tr->cap - 1);
        if (tr->key[i] == k) {
            node = tr->child[i];
            continue;
        }
        if (tr->n_nodes == tr->value_cap) {
            int32_t *v = realloc(tr->value, sizeof *v * tr->value_cap * 2);
            if (!v) return no_memory();
            tr->value = v;
            tr->value_cap *= 2;
        }
        tr->key[i] = k;
        tr->child[i] = tr->n_nodes;
        tr->value[tr->n_nodes] = -1;
        node = tr->n_nodes++;
    }
    if (node != 0) tr->value[node] = id;
    return 0;
}

// ---- protobuf reader ----

typedef struct pb {
    const uint8_t *p, *end;
} pb;

static bool pb_varint(pb *r, uint64_t *v) {
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end) return false;
        uint8_t b = *r->p++;
        if (shift == 63 && b > 1) return false;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return true;
        }
    }
    return false;
}

/* Reads a field key and its value: varint in *v, fixed32/64 in *v, length-delimited as
 * a sub-reader in *sub. False on malformed or truncated input. */
static bool pb_field(pb *r, uint32_t *field, int *wire, uint64_t *v, pb *sub) {
    uint64_t key;
    if (!pb_varint(r, &key)) return false;
    *field = (uint32_t)(key >> 3);
    *wire = (int)(key & 7);
    if (*field == 0 || key >> 32) return false;
    switch (*wire) {
    case 0:
        return pb_varint(r, v);
    case 1:
        if (r->end - r->p < 8) return false;
        *v = 0;
        for (int i = 7; i >= 0; i--)
            *v = *v << 8 | r->p[i];
        r->p += 8;
        return true;
    case 5:
        if (r->end - r->p < 4) return false;
        *v = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 | (uint32_t)r->p[2] << 16 |
             (uint32_t)r->p[3] << 24;
        r->p += 4;
        return true;
    case 2: {
        uint64_t n;
        if (!pb_varint(r, &n) || n > (uint64_t)(r->end - r->p)) return false;
        sub->p = r->p;
        sub->end = r->p + n;
        r->p += n;
        *v = n;
        return true;
    }
    default:
        return false; // groups (3, 4) and reserved wire types
    }
}

static char *dup_bytes(const uint8_t *p, size_t n) {
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = 0;
    }
    return s;
}

typedef struct spec {
    int model_type;
    bool byte_fallback, ws_suffix, add_dummy_prefix, remove_extra_ws, escape_ws;
    char *unk_surface, *bos_piece, *eos_piece, *pad_piece, *unk_piece;
    const uint8_t *charsmap;
    size_t charsmap_n;
} spec;

static int set_str(char **dst, const pb *sub) {
    char *s = dup_bytes(sub->p, (size_t)(sub->end - sub->p));
    if (!s) return no_memory();
    free(*dst);
    *dst = s;
    return 0;
}

static int parse_trainer(pb r, spec *sp, const char *what) {
    uint32_t f;
    int w;
    uint64_t v;
    pb sub;
    while (r.p < r.end) {
        if (!pb_field(&r, &f, &w, &v, &sub))
            return pi0_errorf(PI0_EFORMAT, "%s: malformed trainer_spec", what);
        int rc = 0;
        if (w == 0 && f == 3)
            sp->model_type = (int)v;
        else if (w == 0 && f == 24)
            sp->ws_suffix = v != 0;
        else if (w == 0 && f == 35)
            sp->byte_fallback = v != 0;
        else if (w == 2 && f == 44)
            rc = set_str(&sp->unk_surface, &sub);
        else if (w == 2 && f == 45)
            rc = set_str(&sp->unk_piece, &sub);
        else if (w == 2 && f == 46)
            rc = set_str(&sp->bos_piece, &sub);
        else if (w == 2 && f == 47)
            rc = set_str(&sp->eos_piece, &sub);
        else if (w == 2 && f == 48)
            rc = set_str(&sp->pad_piece, &sub);
        if (rc) return pi0_errorf(rc, "%s: out of memory", what);
    }
    return 0;
}

static int parse_normalizer(pb r, spec *sp, const char *what) {
    uint32_t f;
    int w;
    uint64_t v;
    pb sub;
    while (r.p < r.end) {
        if (!pb_field(&r, &f, &w, &v, &sub))
            return pi0_errorf(PI0_EFORMAT, "%s: malformed normalizer_spec", what);
        if (w == 2 && f == 2) {
            sp->charsmap = sub.p;
            sp->charsmap_n = (size_t)(sub.end - sub.p);
        } else if (w == 0 && f == 3)
            sp->add_dummy_prefix = v != 0;
        else if (w == 0 && f == 4)
            sp->remove_extra_ws = v != 0;
        else if (w == 0 && f == 5)
            sp->escape_ws = v != 0;
    }
    return 0;
}

/* One SentencePiece message: piece string (1), score float (2), type (3). */
static bool parse_piece(pb r, pb *str, float *score, int *type) {
    uint32_t f;
    int w;
    uint64_t v;
    pb sub;
    str->p = str->end = NULL;
    *score = 0;
    *type = PT_NORMAL;
    while (r.p < r.end) {
        if (!pb_field(&r, &f, &w, &v, &sub)) return false;
        if (f == 1 && w == 2)
            *str = sub;
        else if (f == 2 && w == 5) {
            uint32_t u = (uint32_t)v;
            memcpy(score, &u, 4);
        } else if (f == 3 && w == 0)
            *type = (int)v;
    }
    return true;
}

static int load_charsmap(pi0_tokenizer *t, const spec *sp, const char *what) {
    if (sp->charsmap_n == 0) return 0;
    const uint8_t *b = sp->charsmap;
    size_t n = sp->charsmap_n;
    if (n <= 4) return pi0_errorf(PI0_EFORMAT, "%s: precompiled_charsmap is broken", what);
    uint32_t trie_size =
        (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    if (trie_size >= n || trie_size > n - 4 || trie_size % 4 != 0)
        return pi0_errorf(PI0_EFORMAT, "%s: precompiled_charsmap trie size %u exceeds blob",
                          what, trie_size);
    t->da_n = trie_size / 4;
    t->da = malloc(trie_size ? trie_size : 4);
    t->norm_n = n - 4 - trie_size;
    t->norm = malloc(t->norm_n + 1);
    if (!t->da || !t->norm) return pi0_errorf(PI0_ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < t->da_n; i++) {
        const uint8_t *u = b + 4 + 4 * i;
        t->da[i] =
            (uint32_t)u[0] | (uint32_t)u[1] << 8 | (uint32_t)u[2] << 16 | (uint32_t)u[3] << 24;
    }
    memcpy(t->norm, b + 4 + trie_size, t->norm_n);
    t->norm[t->norm_n] = 0;
    return 0;
}

static int parse_byte_piece(const char *s, size_t n) {
    // "<0xNN>" with uppercase hex, as sentencepiece's ByteToPiece writes it.
    static const char hex[] = "0123456789ABCDEF";
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>') return -1;
    const char *a = memchr(hex, s[3], 16), *b = memchr(hex, s[4], 16);
    if (!a || !b || !s[3] || !s[4]) return -1;
    return (int)(a - hex) * 16 + (int)(b - hex);
}

static int build(pi0_tokenizer *t, const uint8_t *data, size_t size, const char *what) {
    spec sp = {.model_type = MT_UNIGRAM,
               .add_dummy_prefix = true,
               .remove_extra_ws = true,
               .escape_ws = true};
    int rc = 0;
    size_t total = 0;
    int n = 0;
    // Pass 1: count pieces, parse the specs.
    pb r = {data, data + size}, sub;
    uint32_t f;
    int w;
    uint64_t v;
    while (r.p < r.end) {
        if (!pb_field(&r, &f, &w, &v, &sub)) {
            rc = pi0_errorf(PI0_EFORMAT,
                            "%s: not a SentencePiece model (malformed protobuf "
                            "at byte %zu)",
                            what, (size_t)(r.p - data));
            goto out;
        }
        if (f == 1 && w == 2) {
            pb str;
            float score;
            int type;
            if (!parse_piece(sub, &str, &score, &type)) {
                rc = pi0_errorf(PI0_EFORMAT, "%s: malformed piece %d", what, n);
                goto out;
            }
            if (n == INT32_MAX / 2) {
                rc = pi0_errorf(PI0_EFORMAT, "%s: too many pieces", what);
                goto out;
            }
            total += (size_t)(str.end - str.p) + 1;
            n++;
        } else if (f == 2 && w == 2) {
            if ((rc = parse_trainer(sub, &sp, what))) goto out;
        } else if (f == 3 && w == 2) {
            if ((rc = parse_normalizer(sub, &sp, what))) goto out;
        }
    }
    if (n == 0) {
        rc = pi0_errorf(PI0_EFORMAT, "%s: model has no pieces", what);
        goto out;
    }
    if (sp.model_type != MT_UNIGRAM && sp.model_type != MT_BPE) {
        rc = pi0_errorf(PI0_ENOTSUP,
                        "%s: model_type %d is not supported (only UNIGRAM=1 and "
                        "BPE=2)",
                        what, sp.model_type);
        goto out;
    }
    if (total > UINT32_MAX) {
        rc = pi0_errorf(PI0_EFORMAT, "%s: pieces too large", what);
        goto out;
    }
    t->model_type = sp.model_type;
    t->n_pieces = n;
    t->strs = malloc(total);
    t->piece_off = malloc(sizeof *t->piece_off * (size_t)n);
    t->piece_len = malloc(sizeof *t->piece_len * (size_t)n);
    t->score = malloc(sizeof *t->score * (size_t)n);
    t->type = malloc((size_t)n);
    if (!t->strs || !t->piece_off || !t->piece_len || !t->score || !t->type ||
        strmap_init(&t->normal, (uint32_t)n) || strmap_init(&t->reserved, 512)) {
        rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory for %d pieces", what, n);
        goto out;
    }
    // Pass 2: copy the pieces.
    r = (pb){data, data + size};
    size_t off = 0;
    int i = 0, n_reserved = 0;
    while (r.p < r.end) {
        (void)pb_field(&r, &f, &w, &v, &sub); // validated in pass 1
        if (!(f == 1 && w == 2)) continue;
        pb str;
        float score;
        int type;
        (void)parse_piece(sub, &str, &score, &type);
        size_t len = (size_t)(str.end - str.p);
        if (len == 0) {
            rc = pi0_errorf(PI0_EFORMAT, "%s: piece %d is empty", what, i);
            goto out;
        }
        if (type < PT_NORMAL || type > PT_BYTE) {
            rc = pi0_errorf(PI0_EFORMAT, "%s: piece %d has unknown type %d", what, i, type);
            goto out;
        }
        memcpy(t->strs + off, str.p, len);
        t->strs[off + len] = 0;
        t->piece_off[i] = (uint32_t)off;
        t->piece_len[i] = (uint32_t)len;
        t->score[i] = score;
        t->type[i] = (uint8_t)type;
        off += len + 1;
        i++;
        if (type != PT_NORMAL && type != PT_USER && type != PT_UNUSED) n_reserved++;
    }
    // Index the pieces like ModelInterface::InitializePieces.
    if (n_reserved * 2 + 16 > (int)t->reserved.cap) {
        free(t->reserved.slot);
        free(t->reserved.tag);
        if (strmap_init(&t->reserved, (uint32_t)n_reserved)) {
            rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", what);
            goto out;
        }
    }
    t->unk_id = -1;
    for (int b = 0; b < 256; b++)
        t->byte_id[b] = -1;
    size_t user_bytes = 0, all_bytes = 0;
    for (i = 0; i < n; i++) {
        int ty = t->type[i];
        bool normal = ty == PT_NORMAL || ty == PT_USER || ty == PT_UNUSED;
        if (!strmap_insert(t, normal ? &t->normal : &t->reserved, i)) {
            rc = pi0_errorf(PI0_EFORMAT, "%s: piece %d \"%s\" is already defined", what, i,
                            piece_str(t, i));
            goto out;
        }
        if (ty == PT_USER) user_bytes += t->piece_len[i];
        if (normal) all_bytes += t->piece_len[i];
        if (ty == PT_UNKNOWN) {
            if (t->unk_id >= 0) {
                rc = pi0_errorf(PI0_EFORMAT, "%s: unk is already defined (ids %d and %d)", what,
                                t->unk_id, i);
                goto out;
            }
            t->unk_id = i;
        }
        if (ty == PT_BYTE) {
            if (!sp.byte_fallback) {
                rc = pi0_errorf(PI0_EFORMAT,
                                "%s: byte piece %d \"%s\" found although "
                                "byte_fallback is false",
                                what, i, piece_str(t, i));
                goto out;
            }
            int b = parse_byte_piece(piece_str(t, i), t->piece_len[i]);
            if (b < 0) {
                rc = pi0_errorf(PI0_EFORMAT, "%s: bad byte piece %d \"%s\"", what, i,
                                piece_str(t, i));
                goto out;
            }
            t->byte_id[b] = i;
        }
    }
    if (t->unk_id < 0) {
        rc = pi0_errorf(PI0_EFORMAT, "%s: model defines no unknown piece", what);
        goto out;
    }
    if (user_bytes) {
        t->has_user = true;
        if (trie_init(&t->user, user_bytes)) {
            rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", what);
            goto out;
        }
        for (i = 0; i < n; i++)
            if (t->type[i] == PT_USER) t->user_first[(uint8_t)piece_str(t, i)[0]] = 1;
        for (i = 0; i < n; i++)
            if (t->type[i] == PT_USER &&
                trie_insert(&t->user, piece_str(t, i), t->piece_len[i], i)) {
                rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", what);
                goto out;
            }
    }
    t->min_score = FLT_MAX;
    t->max_score = FLT_MIN;
    if (t->model_type == MT_UNIGRAM) {
        for (i = 0; i < n; i++)
            if (t->type[i] == PT_NORMAL) {
                if (t->score[i] < t->min_score) t->min_score = t->score[i];
                if (t->score[i] > t->max_score) t->max_score = t->score[i];
            }
        if (trie_init(&t->pieces, all_bytes)) {
            rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", what);
            goto out;
        }
        for (i = 0; i < n; i++) {
            int ty = t->type[i];
            if ((ty == PT_NORMAL || ty == PT_USER || ty == PT_UNUSED) &&
                trie_insert(&t->pieces, piece_str(t, i), t->piece_len[i], i)) {
                rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", what);
                goto out;
            }
        }
    }
    t->byte_fallback = sp.byte_fallback;
    t->ws_suffix = sp.ws_suffix;
    t->add_dummy_prefix = sp.add_dummy_prefix;
    t->remove_extra_ws = sp.remove_extra_ws;
    t->escape_ws = sp.escape_ws;
    if ((rc = load_charsmap(t, &sp, what))) goto out;
#define DEFAULT_STR(field, s)                                                                  \
    do {                                                                                       \
        if (!sp.field) sp.field = strdup(s);                                                   \
        if (!sp.field) {                                                                       \
            rc = pi0_errorf(PI0_ENOMEM, "%s: out of memory", what);                            \
            goto out;                                                                          \
        }                                                                                      \
        t->field = sp.field;                                                                   \
        sp.field = NULL;                                                                       \
    } while (0)
    DEFAULT_STR(unk_surface, " \xE2\x81\x87 ");
    DEFAULT_STR(unk_piece, "<unk>");
    DEFAULT_STR(bos_piece, "<s>");
    DEFAULT_STR(eos_piece, "</s>");
    DEFAULT_STR(pad_piece, "<pad>");
#undef DEFAULT_STR
out:
    free(sp.unk_surface);
    free(sp.unk_piece);
    free(sp.bos_piece);
    free(sp.eos_piece);
    free(sp.pad_piece);
    return rc;
}

int pi0_tokenizer_load_buffer(const void *data, size_t size, const char *what,
                              pi0_tokenizer **out) {
    if (!out || (!data && size)) return pi0_errorf(PI0_EINVAL, "tokenizer: NULL argument");
    if (!what) what = "tokenizer model";
    pi0_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return pi0_errorf(PI0_ENOMEM, "%s: out of memory", what);
    int rc = build(t, data, size, what);
    if (rc) {
        pi0_tokenizer_destroy(t);
        return rc;
    }
    *out = t;
    return 0;
}

int pi0_tokenizer_load(const char *path, pi0_tokenizer **out) {
    if (!path || !out) return pi0_errorf(PI0_EINVAL, "tokenizer: NULL argument");
    char *buf = NULL;
    size_t n = 0;
    int rc = pi0__read_file(path, TOKENIZER_MAX_FILE, &buf, &n);
    if (!rc) rc = pi0_tokenizer_load_buffer(buf, n, path, out);
    free(buf);
    return rc;
}

void pi0_tokenizer_destroy(pi0_tokenizer *t) {
    if (!t) return;
    free(t->strs);
    free(t->piece_off);
    free(t->piece_len);
    free(t->score);
    free(t->type);
    free(t->normal.slot);
    free(t->normal.tag);
    free(t->reserved.slot);
    free(t->reserved.tag);
    if (t->has_user) trie_free(&t->user);
    if (t->model_type == MT_UNIGRAM) trie_free(&t->pieces);
    free(t->da);
    free(t->norm);
    free(t->unk_surface);
    free(t->bos_piece);
    free(t->eos_piece);
    free(t->pad_piece);
    free(t->unk_piece);
    free(t);
}

int pi0_tokenizer_vocab_size(const pi0_tokenizer *t) {
    return t ? t->n_pieces : 0;
}

/* ModelInterface::PieceToId: reserved pieces first, then normal ones, else unk. */
static int piece_to_id(const pi0_tokenizer *t, const char *s, size_t n) {
    int id = strmap_find(t, &t->reserved, s, n);
    if (id >= 0) return id;
    id = strmap_find(t, &t->normal, s, n);
    return id >= 0 ? id : t->unk_id;
}

int pi0_tokenizer_piece_to_id(const pi0_tokenizer *t, const char *piece) {
    if (!t || !piece) return -1;
    size_t n = strlen(piece);
    int id = strmap_find(t, &t->reserved, piece, n);
    return id >= 0 ? id : strmap_find(t, &t->normal, piece, n);
}

const char *pi0_tokenizer_id_to_piece(const pi0_tokenizer *t, int id) {
    if (!t || id < 0 || id >= t->n_pieces) return NULL;
    return piece_str(t, id);
}

/* SentencePieceProcessor::{bos,eos,pad}_id: the id of the named piece if it is a control
 * piece; unk_id if the unk piece is the unknown piece. */
static int special_id(const pi0_tokenizer *t, const char *piece, int want_type) {
    if (!t) return -1;
    int id = piece_to_id(t, piece, strlen(piece));
    return t->type[id] == want_type ? id : -1;
}
int pi0_tokenizer_bos_id(const pi0_tokenizer *t) {
    return special_id(t, t ? t->bos_piece : "", PT_CONTROL);
}
int pi0_tokenizer_eos_id(const pi0_tokenizer *t) {
    return special_id(t, t ? t->eos_piece : "", PT_CONTROL);
}
int pi0_tokenizer_pad_id(const pi0_tokenizer *t) {
    return special_id(t, t ? t->pad_piece : "", PT_CONTROL);
}
int pi0_tokenizer_unk_id(const pi0_tokenizer *t) {
    return special_id(t, t ? t->unk_piece : "", PT_UNKNOWN);
}

// ---- scratch buffers ----

typedef struct scratch scratch;

/* Grows *p to at least n elements of size elem (never shrinks). */
static bool grow(void **p, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap && *p) return true;
    size_t c = *cap ? *cap : 64;
    while (c < n)
        c *= 2;
    void *q = realloc(*p, c * elem);
    if (!q) return false;
    *p = q;
    *cap = c;
    return true;
}

typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static bool buf_reserve(buf *b, size_t extra) {
    if (b->n + extra <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + extra)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
    return true;
}

static bool buf_put(buf *b, const char *s, size_t n) {
    if (!buf_reserve(b, n)) return false;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    return true;
}

// ---- normalizer ----

static inline int one_char_len(const char *s) {
    return "\1\1\1\1\1\1\1\1\1\1\1\1\2\2\3\4"[(uint8_t)*s >> 4];
}

static inline bool trail(uint8_t c) {
    return (c & 0xC0) == 0x80;
}
static inline bool valid_cp(uint32_t c) {
    return c < 0xD800 || (c >= 0xE000 && c <= 0x10FFFF);
}

/* string_util::IsValidDecodeUTF8: true with *mblen for a well-formed character (U+FFFD
 * itself included), false with *mblen = 1 otherwise. */
static bool valid_utf8(const uint8_t *s, size_t len, size_t *mblen) {
    uint8_t c = s[0];
    *mblen = 1;
    if (c < 0x80) return true;
    if (len >= 2 && (c & 0xE0) == 0xC0) {
        uint32_t cp = (uint32_t)(c & 0x1F) << 6 | (s[1] & 0x3F);
        if (trail(s[1]) && cp >= 0x80 && valid_cp(cp)) return *mblen = 2, true;
    } else if (len >= 3 && (c & 0xF0) == 0xE0) {
        uint32_t cp = (uint32_t)(c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        if (trail(s[1]) && trail(s[2]) && cp >= 0x800 && valid_cp(cp)) return *mblen = 3, true;
    } else if (len >= 4 && (c & 0xF8) == 0xF0) {
        uint32_t cp = (uint32_t)(c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 |
                      (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        if (trail(s[1]) && trail(s[2]) && trail(s[3]) && cp >= 0x10000 && valid_cp(cp))
            return *mblen = 4, true;
    }
    return false;
}

/* Longest user-defined symbol that prefixes s (0 when none). */
static size_t user_match(const pi0_tokenizer *t, const char *s, size_t len) {
    if (!t->has_user || len == 0 || !t->user_first[(uint8_t)s[0]]) return 0;
    uint32_t node = 0;
    size_t best = 0;
    for (size_t i = 0; i < len; i++) {
        node = trie_next(&t->user, node, (uint8_t)s[i]);
        if (node == UINT32_MAX) break;
        if (t->user.value[node] >= 0) best = i + 1;
    }
    return best;
}

/* darts-clone commonPrefixSearch over the charsmap trie, keeping the longest match among
 * the first 32 results (Normalizer::kMaxTrieResultsSize). Returns the matched length and
 * the offset of the replacement in t->norm, or 0. Out-of-range units end the search. */
static size_t charsmap_match(const pi0_tokenizer *t, const uint8_t *s, size_t len,
                             size_t *value) {
    if (!t->da_n) return 0;
    size_t best = 0, nres = 0;
    size_t pos = 0;
    uint32_t unit = t->da[0];
#define DA_OFFSET(u) (((u) >> 10) << (((u) & (1u << 9)) >> 6))
    pos ^= DA_OFFSET(unit);
    for (size_t i = 0; i < len; i++) {
        pos ^= s[i];
        if (pos >= t->da_n) break;
        unit = t->da[pos];
        if ((unit & ((1u << 31) | 0xFF)) != s[i]) break;
        pos ^= DA_OFFSET(unit);
        if (pos >= t->da_n) break;
        if ((unit >> 8) & 1) {
            if (nres < 32) {
                size_t val = t->da[pos] & 0x7FFFFFFFu;
                if (val < t->norm_n && (best == 0 || i + 1 > best)) {
                    best = i + 1;
                    *value = val;
                }
            }
            nres++;
        }
    }
#undef DA_OFFSET
    return best;
}

/* Normalizer::NormalizePrefix: the normalized form of the next unit of input and how
 * many input bytes it consumes. */
static const char *normalize_prefix(const pi0_tokenizer *t, const char *in, size_t len,
                                    size_t *out_len, size_t *consumed) {
    size_t m = user_match(t, in, len);
    if (m) {
        *consumed = *out_len = m;
        return in;
    }
    size_t val = 0;
    m = charsmap_match(t, (const uint8_t *)in, len, &val);
    if (m) {
        *consumed = m;
        *out_len = strlen(t->norm + val);
        return t->norm + val;
    }
    size_t mb;
    if (!valid_utf8((const uint8_t *)in, len, &mb)) {
        *consumed = 1;
        *out_len = 3;
        return "\xEF\xBF\xBD";
    }
    *consumed = *out_len = mb;
    return in;
}

static const char kSpace[] = "\xE2\x96\x81"; // U+2581

/* Normalizer::Normalize into out (cleared first). */
static int normalize(const pi0_tokenizer *t, const char *in, size_t len, buf *out) {
    out->n = 0;
    if (len == 0) return 0;
    size_t ol, used;
    if (t->remove_extra_ws) {
        while (len > 0) {
            const char *sp = normalize_prefix(t, in, len, &ol, &used);
            if (!(ol == 1 && sp[0] == ' ')) break;
            in += used;
            len -= used;
        }
    }
    if (len == 0) return 0;
    const char *ws = t->escape_ws ? kSpace : " ";
    size_t ws_n = t->escape_ws ? 3 : 1;
    if (!t->ws_suffix && t->add_dummy_prefix && !buf_put(out, ws, ws_n)) return no_memory();
    bool prev_space = t->remove_extra_ws;
    while (len > 0) {
        const char *sp = normalize_prefix(t, in, len, &ol, &used);
        if (prev_space)
            while (ol > 0 && sp[0] == ' ')
                sp++, ol--;
        if (ol > 0) {
            if (!buf_reserve(out, ol * 3)) return no_memory();
            for (size_t k = 0; k < ol; k++) {
                if (t->escape_ws && sp[k] == ' ') {
                    memcpy(out->p + out->n, kSpace, 3);
                    out->n += 3;
                } else {
                    out->p[out->n++] = sp[k];
                }
            }
            prev_space = sp[ol - 1] == ' ';
        }
        in += used;
        len -= used;
        if (!t->remove_extra_ws) prev_space = false;
    }
    if (t->remove_extra_ws)
        while (out->n >= ws_n && memcmp(out->p + out->n - ws_n, ws, ws_n) == 0)
            out->n -= ws_n;
    if (t->ws_suffix && t->add_dummy_prefix && !buf_put(out, ws, ws_n)) return no_memory();
    return 0;
}

// ---- model encoders: (offset, length, id) pieces of the normalized text ----

typedef struct span {
    uint32_t off, len;
    int32_t id;
} span;

typedef struct spans {
    span *p;
    size_t n, cap;
} spans;

static bool spans_push(spans *s, uint32_t off, uint32_t len, int32_t id) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        span *p = realloc(s->p, sizeof *p * cap);
        if (!p) return false;
        s->p = p;
        s->cap = cap;
    }
    s->p[s->n++] = (span){off, len, id};
    return true;
}

/* Unigram Viterbi node (best path ending here). */
typedef struct vnode {
    int32_t id;
    int32_t start; // -1 = unset
    float score;
} vnode;

/* BPE symbol, candidate pair, and re-split entry of an UNUSED piece. */
typedef struct sym {
    int32_t prev, next;
    uint32_t off, len;
    bool freeze;
} sym;

typedef struct pair {
    int32_t left, right;
    float score;
    uint32_t size;
} pair;

typedef struct revm {
    uint32_t off, len, left_len; // merged piece and the length of its left part
} revm;

// ---- per-thread scratch ----

/* Working memory of encode/decode, kept per thread and grown to the largest input seen,
 * so that after the first call of a given size nothing is allocated; freed at thread
 * exit. */
struct scratch {
    buf norm;    // normalized text
    spans sp;    // model output pieces
    vnode *best; // (best_cap) unigram Viterbi
    size_t best_cap;
    sym *sy; // (sy_cap) BPE symbols
    size_t sy_cap;
    pair *heap; // BPE agenda
    size_t caph;
    revm *rev; // BPE re-split table
    size_t caprev;
    buf text;       // decode output
    uint8_t *bytes; // (bytes_cap) decode byte run
    size_t bytes_cap;
};

static pthread_key_t g_scratch_key;
static pthread_once_t g_scratch_once = PTHREAD_ONCE_INIT;
static bool g_scratch_ok;

static void scratch_free(void *p) {
    scratch *ws = p;
    if (!ws) return;
    free(ws->norm.p);
    free(ws->sp.p);
    free(ws->best);
    free(ws->sy);
    free(ws->heap);
    free(ws->rev);
    free(ws->text.p);
    free(ws->bytes);
    free(ws);
}

static void scratch_key_init(void) {
    g_scratch_ok = pthread_key_create(&g_scratch_key, scratch_free) == 0;
}

static scratch *get_scratch(void) {
    pthread_once(&g_scratch_once, scratch_key_init);
    if (!g_scratch_ok) return NULL;
    scratch *ws = pthread_getspecific(g_scratch_key);
    if (!ws) {
        ws = calloc(1, sizeof *ws);
        if (ws && pthread_setspecific(g_scratch_key, ws) != 0) {
            free(ws);
            ws = NULL;
        }
    }
    return ws;
}

/* unigram Model::EncodeOptimized: Viterbi over the pieces trie; user-defined pieces score
 * length * max_score - 0.1 (in double, as the C++ ternary promotes), an unknown character
 * min_score - 10 (in float). */
static int encode_unigram(const pi0_tokenizer *t, const char *s, size_t n, spans *out,
                          scratch *ws) {
    if (!grow((void **)&ws->best, &ws->best_cap, n + 1, sizeof *ws->best)) return no_memory();
    vnode *best = ws->best;
    for (size_t i = 0; i <= n; i++)
        best[i] = (vnode){-1, -1, 0.0f};
    const float unk_score = t->min_score - 10.0f;
    size_t start = 0;
    while (start < n) {
        const float till_here = best[start].score;
        bool single = false;
        size_t mblen = (size_t)one_char_len(s + start);
        if (mblen > n - start) mblen = n - start;
        uint32_t node = 0;
        for (size_t k = start; k < n;) {
            node = trie_next(&t->pieces, node, (uint8_t)s[k]);
            k++;
            if (node == UINT32_MAX) break;
            int id = t->pieces.value[node];
            if (id < 0 || t->type[id] == PT_UNUSED) continue;
            size_t length = k - start;
            double score = t->type[id] == PT_USER ? (double)((float)length * t->max_score) - 0.1
                                                  : (double)t->score[id];
            double cand = score + (double)till_here;
            vnode *tg = &best[k];
            if (tg->start == -1 || cand > (double)tg->score) {
                tg->score = (float)cand;
                tg->start = (int32_t)start;
                tg->id = id;
            }
            if (length == mblen) single = true;
        }
        if (!single) {
            vnode *tg = &best[start + mblen];
            float cand = unk_score + till_here;
            if (tg->start == -1 || cand > tg->score) {
                tg->score = cand;
                tg->start = (int32_t)start;
                tg->id = t->unk_id;
            }
        }
        start += mblen;
    }
    // Backtrack into out (reversed, then flipped).
    size_t first = out->n;
    for (size_t end = n; end > 0;) {
        vnode *v = &best[end];
        if (v->start < 0) // cannot happen: every character has at least an unk node
            return pi0_errorf(PI0_EFORMAT, "tokenizer: Viterbi found no path");
        if (!spans_push(out, (uint32_t)v->start, (uint32_t)(end - (size_t)v->start), v->id))
            return no_memory();
        end = (size_t)v->start;
    }
    for (size_t a = first, b = out->n; a + 1 < b; a++, b--) {
        span tmp = out->p[a];
        out->p[a] = out->p[b - 1];
        out->p[b - 1] = tmp;
    }
    return 0;
}

/* bpe Model::Encode: greedy merges by score (ties: leftmost), using a binary heap of
 * candidate pairs; stale pairs are skipped when popped. UNUSED pieces are re-split into
 * the two symbols they were merged from. */

typedef struct bpe_state {
    const pi0_tokenizer *t;
    const char *s;
    sym *sy;
    pair *heap;
    size_t nh, caph;
    revm *rev;
    size_t nrev, caprev;
} bpe_state;

static inline bool pair_less(const pair *a, const pair *b) { // a has lower priority
    return a->score < b->score || (a->score == b->score && a->left > b->left);
}

static bool heap_push(bpe_state *st, pair p) {
    if (st->nh == st->caph) {
        size_t cap = st->caph ? st->caph * 2 : 64;
        pair *h = realloc(st->heap, sizeof *h * cap);
        if (!h) return false;
        st->heap = h;
        st->caph = cap;
    }
    size_t i = st->nh++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (!pair_less(&st->heap[up], &p)) break;
        st->heap[i] = st->heap[up];
        i = up;
    }
    st->heap[i] = p;
    return true;
}

static pair heap_pop(bpe_state *st) {
    pair top = st->heap[0], last = st->heap[--st->nh];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= st->nh) break;
        if (c + 1 < st->nh && pair_less(&st->heap[c], &st->heap[c + 1])) c++;
        if (!pair_less(&last, &st->heap[c])) break;
        st->heap[i] = st->heap[c];
        i = c;
    }
    if (st->nh) st->heap[i] = last;
    return top;
}

static bool maybe_add_pair(bpe_state *st, int32_t l, int32_t r) {
    if (l < 0 || r < 0 || st->sy[l].freeze || st->sy[r].freeze) return true;
    const pi0_tokenizer *t = st->t;
    uint32_t off = st->sy[l].off, len = st->sy[l].len + st->sy[r].len;
    int id = strmap_find(t, &t->normal, st->s + off, len);
    if (id < 0) return true;
    if (!heap_push(st, (pair){l, r, t->score[id], len})) return false;
    if (t->type[id] == PT_UNUSED) {
        if (st->nrev == st->caprev) {
            size_t cap = st->caprev ? st->caprev * 2 : 16;
            revm *p = realloc(st->rev, sizeof *p * cap);
            if (!p) return false;
            st->rev = p;
            st->caprev = cap;
        }
        st->rev[st->nrev++] = (revm){off, len, st->sy[l].len};
    }
    return true;
}

static bool resegment(bpe_state *st, uint32_t off, uint32_t len, spans *out, int depth) {
    const pi0_tokenizer *t = st->t;
    int id = piece_to_id(t, st->s + off, len);
    if (t->type[id] == PT_UNUSED && depth < 256) {
        for (size_t k = st->nrev; k-- > 0;) { // latest assignment wins, like rev_merge[piece] =
            const revm *m = &st->rev[k];
            if (m->len == len && memcmp(st->s + m->off, st->s + off, len) == 0)
                return resegment(st, off, m->left_len, out, depth + 1) &&
                       resegment(st, off + m->left_len, len - m->left_len, out, depth + 1);
        }
    }
    return spans_push(out, off, len, id);
}

static int encode_bpe(const pi0_tokenizer *t, const char *s, size_t n, spans *out,
                      scratch *ws) {
    if (!grow((void **)&ws->sy, &ws->sy_cap, n, sizeof *ws->sy)) return no_memory();
    bpe_state st = {.t = t,
                    .s = s,
                    .sy = ws->sy,
                    .heap = ws->heap,
                    .caph = ws->caph,
                    .rev = ws->rev,
                    .caprev = ws->caprev};
    int rc = 0;
    int32_t ns = 0;
    for (size_t p = 0; p < n;) {
        size_t m = user_match(t, s + p, n - p);
        bool freeze = m > 0;
        if (!m) {
            m = (size_t)one_char_len(s + p);
            if (m > n - p) m = n - p;
        }
        st.sy[ns] = (sym){ns - 1, p + m < n ? ns + 1 : -1, (uint32_t)p, (uint32_t)m, freeze};
        ns++;
        p += m;
    }
    for (int32_t i = 1; i < ns; i++)
        if (!maybe_add_pair(&st, i - 1, i)) {
            rc = no_memory();
            goto done;
        }
    while (st.nh > 0) {
        pair top = heap_pop(&st);
        sym *l = &st.sy[top.left], *r = &st.sy[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size) continue;
        l->len += r->len;
        l->next = r->next;
        if (r->next >= 0) st.sy[r->next].prev = top.left;
        r->len = 0;
        if (!maybe_add_pair(&st, l->prev, top.left) ||
            !maybe_add_pair(&st, top.left, l->next)) {
            rc = no_memory();
            goto done;
        }
    }
    for (int32_t i = ns ? 0 : -1; i >= 0; i = st.sy[i].next)
        if (!resegment(&st, st.sy[i].off, st.sy[i].len, out, 0)) {
            rc = no_memory();
            goto done;
        }
done: // keep the (possibly grown) arrays for the next call on this thread
    ws->heap = st.heap;
    ws->caph = st.caph;
    ws->rev = st.rev;
    ws->caprev = st.caprev;
    return rc;
}

// ---- encode / decode ----

int pi0_tokenizer_encode(const pi0_tokenizer *t, const char *text, size_t len, int32_t *ids,
                         int max_ids, int *n_ids) {
    if (!t || (!text && len) || !n_ids || max_ids < 0 || (max_ids > 0 && !ids))
        return pi0_errorf(PI0_EINVAL, "tokenizer_encode: bad argument");
    scratch *ws = get_scratch();
    if (!ws) return pi0_errorf(PI0_ENOMEM, "tokenizer_encode: out of memory");
    buf norm = ws->norm;
    spans sp = ws->sp;
    sp.n = 0;
    int rc = normalize(t, text, len, &norm);
    if (!rc && norm.n > UINT32_MAX / 2)
        rc = pi0_errorf(PI0_ERANGE, "tokenizer_encode: text too long");
    if (!rc && norm.n > 0)
        rc = t->model_type == MT_BPE ? encode_bpe(t, norm.p, norm.n, &sp, ws)
                                     : encode_unigram(t, norm.p, norm.n, &sp, ws);
    ws->norm = norm;
    ws->sp = sp;
    if (rc) {
        return rc == PI0_ENOMEM ? pi0_errorf(rc, "tokenizer_encode: out of memory") : rc;
    }
    // SentencePieceProcessor::PopulateSentencePieceText: unknown pieces become byte
    // pieces with byte_fallback, otherwise runs of unknown pieces merge into one.
    long count = 0;
    bool prev_unk = false;
#define EMIT(x)                                                                                \
    do {                                                                                       \
        if (count < max_ids) ids[count] = (x);                                                 \
        count++;                                                                               \
    } while (0)
    for (size_t i = 0; i < sp.n; i++) {
        int id = sp.p[i].id;
        bool unk = t->type[id] == PT_UNKNOWN;
        if (t->type[id] == PT_CONTROL)
            EMIT(id);
        else if (unk && t->byte_fallback) {
            for (uint32_t k = 0; k < sp.p[i].len; k++) {
                uint8_t b = (uint8_t)norm.p[sp.p[i].off + k];
                EMIT(t->byte_id[b] >= 0 ? t->byte_id[b] : t->unk_id);
            }
        } else if (!(unk && prev_unk))
            EMIT(id);
        prev_unk = unk;
    }
#undef EMIT
    if (count > INT32_MAX) return pi0_errorf(PI0_ERANGE, "tokenizer_encode: too many ids");
    *n_ids = (int)count;
    if (count > max_ids)
        return pi0_errorf(PI0_ERANGE, "tokenizer_encode: %ld ids do not fit in %d", count,
                          max_ids);
    return 0;
}

static bool put_replacement(buf *b) {
    return buf_put(b, "\xEF\xBF\xBD", 3);
}

/* Appends the UTF-8 assembled from a run of byte pieces; invalid bytes become U+FFFD. */
static bool flush_bytes(buf *out, const uint8_t *bytes, size_t n) {
    for (size_t k = 0; k < n;) {
        size_t mb;
        if (!valid_utf8(bytes + k, n - k, &mb)) {
            if (!put_replacement(out)) return false;
            k += 1;
        } else {
            if (!buf_put(out, (const char *)bytes + k, mb)) return false;
            k += mb;
        }
    }
    return true;
}

int pi0_tokenizer_decode(const pi0_tokenizer *t, const int32_t *ids, int n, char *out,
                         size_t cap, size_t *out_len) {
    if (!t || n < 0 || (n > 0 && !ids) || (cap > 0 && !out) || !out_len)
        return pi0_errorf(PI0_EINVAL, "tokenizer_decode: bad argument");
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= t->n_pieces)
            return pi0_errorf(PI0_EINVAL,
                              "tokenizer_decode: invalid id %d at position %d "
                              "(vocab size %d)",
                              ids[i], i, t->n_pieces);
    scratch *ws = get_scratch();
    if (!ws || !grow((void **)&ws->bytes, &ws->bytes_cap, (size_t)n + 1, 1))
        return pi0_errorf(PI0_ENOMEM, "tokenizer_decode: out of memory");
    buf text = ws->text;
    text.n = 0;
    uint8_t *bytes = ws->bytes;
    size_t nb = 0;
    bool ok = bytes != NULL, bos_ws = true, bos_ws_seen = false;
    for (int i = 0; ok && i < n; i++) {
        int id = ids[i], ty = t->type[id];
        if (ty == PT_BYTE) {
            bytes[nb++] = (uint8_t)parse_byte_piece(piece_str(t, id), t->piece_len[id]);
            continue;
        }
        ok = flush_bytes(&text, bytes, nb);
        nb = 0;
        if (!ok) continue;
        if (ty == PT_CONTROL || ty == PT_UNKNOWN) {
            if (bos_ws_seen || text.n > 0) bos_ws = false;
            bos_ws_seen = false;
        }
        if (ty == PT_CONTROL) continue;
        if (ty == PT_UNKNOWN) {
            ok = buf_put(&text, t->unk_surface, strlen(t->unk_surface));
            continue;
        }
        const char *p = piece_str(t, id);
        size_t len = t->piece_len[id];
        // Only the leading U+2581 of the first piece(s) is dropped: all of them while the
        // text is empty with remove_extra_whitespaces, else the first one seen.
        if (bos_ws_seen || text.n > 0) bos_ws = false;
        bos_ws_seen = false;
        if (bos_ws && (t->add_dummy_prefix || t->remove_extra_ws) && len >= 3 &&
            memcmp(p, kSpace, 3) == 0) {
            p += 3, len -= 3;
            bos_ws_seen = !t->remove_extra_ws;
        }
        for (size_t k = 0; ok && k < len;) {
            if (len - k >= 3 && memcmp(p + k, kSpace, 3) == 0) {
                ok = buf_put(&text, " ", 1);
                k += 3;
            } else {
                ok = buf_put(&text, p + k, 1);
                k++;
            }
        }
    }
    if (ok) ok = flush_bytes(&text, bytes, nb);
    ws->text = text;
    if (!ok) {
        return pi0_errorf(PI0_ENOMEM, "tokenizer_decode: out of memory");
    }
    *out_len = text.n;
    int rc = 0;
    if (cap > 0) {
        size_t k = text.n < cap ? text.n : cap - 1;
        if (k) memcpy(out, text.p, k);
        out[k] = 0;
    }
    if (text.n >= cap)
        rc = pi0_errorf(PI0_ERANGE, "tokenizer_decode: %zu bytes do not fit in %zu", text.n,
                        cap);
    return rc;
}
