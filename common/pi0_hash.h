/* pi0_hash.h — the project's one non-cryptographic hash: 64-bit FNV-1a (offset basis
 * 14695981039346656037, prime 1099511628211). Used for name tables, per-tensor seeds of
 * generated checkpoints and image fingerprints. */
#ifndef PI0_HASH_H
#define PI0_HASH_H

#include <stddef.h>
#include <stdint.h>

#define PI0__FNV1A_BASIS 0xcbf29ce484222325ull
#define PI0__FNV1A_PRIME 0x100000001b3ull

/* FNV-1a of n bytes. */
static inline uint64_t pi0__fnv1a(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = PI0__FNV1A_BASIS;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * PI0__FNV1A_PRIME;
    return h;
}

/* FNV-1a of a NUL-terminated string (its bytes without the NUL). */
static inline uint64_t pi0__fnv1a_str(const char *s) {
    uint64_t h = PI0__FNV1A_BASIS;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * PI0__FNV1A_PRIME;
    return h;
}

#endif /* PI0_HASH_H */
