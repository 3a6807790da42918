/* rng.h — the pipeline's one pseudo-random generator (internal, header only):
 * xoshiro256** (Blackman & Vigna, 2018) seeded through splitmix64. Fast and well
 * distributed; not cryptographic. Used for the default denoising noise (model.c) and for
 * random checkpoints (mkmodel.c). A pi0__rng is owned by one thread at a time.
 */
#ifndef PI0_RNG_H
#define PI0_RNG_H

#include <stdint.h>

typedef struct pi0__rng {
    uint64_t s[4];
} pi0__rng;

static inline uint64_t pi0__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Any seed (0 too) gives a valid, non-zero state. */
static inline void pi0__rng_seed(pi0__rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++)
        r->s[i] = pi0__splitmix64(&seed);
}

static inline uint64_t pi0__rotl(uint64_t x, int k) {
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t pi0__rng_next(pi0__rng *r) {
    uint64_t *s = r->s, out = pi0__rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = pi0__rotl(s[3], 45);
    return out;
}

#endif /* PI0_RNG_H */
