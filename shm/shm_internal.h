/* shm_internal.h — helpers shared by the pi0rt-shm tool's files (not part of the library). */
#ifndef PI0_SHM_INTERNAL_H
#define PI0_SHM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* FNV-1a 64 of n bytes. */
static inline uint64_t shm__fnv1a(const void *p, size_t n) {
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* `pi0rt-shm bench`: prints JSON lines; returns the exit status. fifo: run the publisher
 * and sleeping subscribers SCHED_FIFO when permitted. */
int shm__bench(int quick, int fifo);

#endif
