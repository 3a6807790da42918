/* cpu_vec.h — vectorizable row loops of the cpu backend (static, one copy per file): the
 * scalar helpers they build on, and the loops more than one file needs.
 *
 * Each loop is compiled for AVX-512 (x86-64-v4), AVX2+FMA (x86-64-v3) and the baseline,
 * picked at load time by the CPU (GCC function multiversioning via ifunc), so the binary
 * stays portable without -march=native. exp is a Cephes-style polynomial (max rel. error
 * ~2 ulp) that vectorizes, unlike libm's expf. */
#ifndef PI0_DEVICE_CPU_VEC_H
#define PI0_DEVICE_CPU_VEC_H

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) &&                         \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define PI0_VEC __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PI0_VEC
#endif

static inline float pi0__bits_f32(int32_t i) {
    float f;
    memcpy(&f, &i, 4);
    return f;
}
static inline int32_t pi0__f32_bits(float f) {
    int32_t i;
    memcpy(&i, &f, 4);
    return i;
}

/* e^x for x in float range; 0 below -87, clamped at e^88 above. Written without branches
 * or unions (selects and memcpy) so that GCC vectorizes the loops calling it. */
static inline float pi0__expf(float x) {
    float xc = x > 88.0f ? 88.0f : x;
    xc = xc < -87.0f ? -87.0f : xc;
    float t =
        xc * 1.44269504088896341f + 12582912.0f; /* round(x/ln2) in the low mantissa bits */
    int32_t n = pi0__f32_bits(t) - 0x4b400000;
    float fn = t - 12582912.0f;
    float r = xc - fn * 0.693359375f + fn * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = pi0__bits_f32(pi0__f32_bits(p * r * r + r + 1.0f) + n * (1 << 23)); /* x 2^n */
    return x < -87.0f ? 0.0f : y;
}

/* 0.5x(1 + tanh(u)) = x * sigmoid(2u), u = sqrt(2/pi)(x + 0.044715x^3) */
static inline float pi0__gelu_tanh(float x) {
    float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return x / (1.0f + pi0__expf(-2.0f * u));
}

static inline float pi0__silu(float x) {
    return x / (1.0f + pi0__expf(-x));
}

// ---- row loops shared by cpu_kernels.c and cpu_gemm.c ----

/* y = a + b (y may be a or b) */
PI0_VEC static inline void pi0__row_add(float *y, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        y[i] = a[i] + b[i];
}

/* y = bf16 x widened to f32 (exact), times a */
PI0_VEC static inline void pi0__row_bf16_to_f32(float *y, const uint16_t *x, float a, int n) {
    for (int i = 0; i < n; i++) {
        union {
            uint32_t u;
            float f;
        } v = {.u = (uint32_t)x[i] << 16};
        y[i] = v.f * a;
    }
}

#endif /* PI0_DEVICE_CPU_VEC_H */
