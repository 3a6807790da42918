/* cpu_gemm_avx2.c — GEMM straight from bf16 or f32 weights with AVX2+FMA, the counterpart
 * of cpu_gemm_avx512.c for CPUs without AVX-512 (compiled with -mavx2 -mfma, called only
 * when the CPU has them: cpu_dev.isa, see cpu_gemm.c), for few rows (the action expert).
 *
 * t[m, nn] (= or +=) x[m, k] · W[n0:n0+nn, :]ᵀ in dot-product form on the weights' own
 * layout (rows contiguous along k, never packed): blocks of 4 input rows x 3 weight rows
 * keep 12 accumulators in the 16 ymm registers; bf16 weights are widened in registers
 * (bf16 << 16 is exact), so they are read at 2 bytes per element. k is walked in chunks of
 * KC and x in chunks of MC rows, so the x chunk and the task's W rows stay in L2. k % 8
 * leftover elements are added in scalar after the vector sums. */
#include <immintrin.h>

#include "cpu.h"

#define MC 64
#define KC 1024
#define MR 4
#define NR 3

static inline __m256 load_f32(const float *p) {
    return _mm256_loadu_ps(p);
}

static inline __m256 load_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

static inline float scalar_f32(const float *p) {
    return *p;
}

static inline float scalar_bf16(const uint16_t *p) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)*p << 16};
    return v.f;
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One weight type WT with loaders LOAD / SCALAR (a macro: the bf16 and f32 kernels are the
 * same code). block: out[i][j] += sum over k in [0, kc) for mr <= MR input rows and
 * nr <= NR weight rows, both compile-time constants at every call. */
#define DEFINE_SMALLM_AVX2(NAME, WT, LOAD, SCALAR)                                             \
    static inline __attribute__((always_inline)) void NAME##_block(                            \
        int mr, int nr, int kc, const float *x, int ldx, const WT *w, int ldw, float *out,     \
        int ldt) {                                                                             \
        __m256 acc[MR][NR];                                                                    \
        for (int i = 0; i < MR; i++)                                                           \
            for (int j = 0; j < NR; j++)                                                       \
                acc[i][j] = _mm256_setzero_ps();                                               \
        int l = 0;                                                                             \
        for (; l + 8 <= kc; l += 8) {                                                          \
            __m256 wv[NR];                                                                     \
            for (int j = 0; j < nr; j++)                                                       \
                wv[j] = LOAD(w + (size_t)j * ldw + l);                                         \
            for (int i = 0; i < mr; i++) {                                                     \
                __m256 xv = _mm256_loadu_ps(x + (size_t)i * ldx + l);                          \
                for (int j = 0; j < nr; j++)                                                   \
                    acc[i][j] = _mm256_fmadd_ps(xv, wv[j], acc[i][j]);                         \
            }                                                                                  \
        }                                                                                      \
        for (int i = 0; i < mr; i++)                                                           \
            for (int j = 0; j < nr; j++) {                                                     \
                float s = hsum(acc[i][j]);                                                     \
                for (int q = l; q < kc; q++)                                                   \
                    s += x[(size_t)i * ldx + q] * SCALAR(w + (size_t)j * ldw + q);             \
                out[(size_t)i * ldt + j] += s;                                                 \
            }                                                                                  \
    }                                                                                          \
    static void NAME##_rows(int mr, int nr, int kc, const float *x, int ldx, const WT *w,      \
                            int ldw, float *out, int ldt) {                                    \
        switch (mr * 4 + nr) {                                                                 \
        case 4 * 4 + 3:                                                                        \
            NAME##_block(4, 3, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 4 * 4 + 2:                                                                        \
            NAME##_block(4, 2, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 4 * 4 + 1:                                                                        \
            NAME##_block(4, 1, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 3 * 4 + 3:                                                                        \
            NAME##_block(3, 3, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 3 * 4 + 2:                                                                        \
            NAME##_block(3, 2, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 3 * 4 + 1:                                                                        \
            NAME##_block(3, 1, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 2 * 4 + 3:                                                                        \
            NAME##_block(2, 3, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 2 * 4 + 2:                                                                        \
            NAME##_block(2, 2, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 2 * 4 + 1:                                                                        \
            NAME##_block(2, 1, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 1 * 4 + 3:                                                                        \
            NAME##_block(1, 3, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 1 * 4 + 2:                                                                        \
            NAME##_block(1, 2, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        default:                                                                               \
            NAME##_block(1, 1, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        }                                                                                      \
    }                                                                                          \
    void NAME(int m, int nn, int k, const float *x, int ldx, const WT *w, int ldw, float *t,   \
              int ldt, int beta1) {                                                            \
        if (!beta1)                                                                            \
            for (int i = 0; i < m; i++)                                                        \
                for (int j = 0; j < nn; j++)                                                   \
                    t[(size_t)i * ldt + j] = 0.0f;                                             \
        for (int k0 = 0; k0 < k; k0 += KC) {                                                   \
            int kc = k - k0 < KC ? k - k0 : KC;                                                \
            for (int mc = 0; mc < m; mc += MC) {                                               \
                int me = m - mc < MC ? m : mc + MC;                                            \
                for (int j0 = 0; j0 < nn; j0 += NR) {                                          \
                    int nr = nn - j0 < NR ? nn - j0 : NR;                                      \
                    const WT *wj = w + (size_t)j0 * ldw + k0;                                  \
                    for (int i0 = mc; i0 < me; i0 += MR) {                                     \
                        int mr = me - i0 < MR ? me - i0 : MR;                                  \
                        NAME##_rows(mr, nr, kc, x + (size_t)i0 * ldx + k0, ldx, wj, ldw,       \
                                    t + (size_t)i0 * ldt + j0, ldt);                           \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_SMALLM_AVX2(pi0__gemm_bf16_smallm_avx2, uint16_t, load_bf16, scalar_bf16)
DEFINE_SMALLM_AVX2(pi0__gemm_f32_smallm_avx2, float, load_f32, scalar_f32)
