/* shm_sample.h — self-checking test samples for the shm tests (test_shm, shm_peer).
 *
 * Layout of a sample of `len` bytes (32 <= len):
 *   [0, 8) seq   [8, 16) salt (writer pid << 32 | epoch)   [16, 20) len   [20, 24) 0
 *   [24, len - 8) pseudo-random bytes derived from (seq, salt)
 *   [len - 8, len) FNV-1a 64 of bytes [0, len - 8)
 * A torn sample (a mix of two writes, or a half-written one) fails the checksum or the
 * seq/len fields with overwhelming probability.
 *
 * The functions touch payload bytes one at a time and are not instrumented by
 * ThreadSanitizer: they stand for a user's zero-copy reads and writes, which race by
 * design with the seqlock (the library validates them; TSAN checks the protocol). */
#ifndef PI0_TEST_SHM_SAMPLE_H
#define PI0_TEST_SHM_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_THREAD__)
#define SHM_TEST_PAYLOAD_FN static __attribute__((unused, no_sanitize_thread, noinline))
#else
#define SHM_TEST_PAYLOAD_FN static inline
#endif

#define SHM_SAMPLE_MIN 32u

static inline void shm_put64(volatile uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t shm_get64(const volatile uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* FNV-1a 64 of the n bytes at p. */
SHM_TEST_PAYLOAD_FN uint64_t shm_fnv1a(const volatile uint8_t *p, uint32_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* Length of sample `seq` for a topic whose payload holds at most `max` bytes. */
static inline uint32_t shm_sample_len(uint64_t seq, uint32_t max) {
    uint64_t x = (seq * 0x9e3779b97f4a7c15ull) >> 40;
    return SHM_SAMPLE_MIN + (uint32_t)(x % (max - SHM_SAMPLE_MIN + 1));
}

SHM_TEST_PAYLOAD_FN void shm_sample_fill(void *dst, uint64_t seq, uint64_t salt, uint32_t len) {
    volatile uint8_t *p = dst;
    shm_put64(p, seq);
    shm_put64(p + 8, salt);
    shm_put64(p + 16, len);
    uint64_t x = seq * 0x2545f4914f6cdd1dull ^ salt ^ 0x9e3779b97f4a7c15ull;
    for (uint32_t i = 24; i < len - 8; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (uint8_t)x;
    }
    shm_put64(p + len - 8, shm_fnv1a(p, len - 8));
}

/* 1 if the `size` bytes at src are one intact sample with sequence `seq`
 * (seq == UINT64_MAX: any). */
SHM_TEST_PAYLOAD_FN int shm_sample_ok(const void *src, uint32_t size, uint64_t seq) {
    const volatile uint8_t *p = src;
    if (size < SHM_SAMPLE_MIN) return 0;
    if (shm_get64(p + 16) != size) return 0;
    if (seq != UINT64_MAX && shm_get64(p) != seq) return 0;
    return shm_fnv1a(p, size - 8) == shm_get64(p + size - 8);
}

#endif
