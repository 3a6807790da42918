/* cpu_gemm_avx512.c — GEMM straight from bf16 or f32 weights (AVX-512F). Compiled with
 * -mavx512f and called only when the CPU has it (runtime check at open, see cpu_gemm.c):
 * always for few rows (the action expert, m = 51, memory-bound), and for any m when
 * OpenBLAS runs without AVX-512 kernels.
 *
 * t[m, nn] (= or +=) x[m, k] · W[n0:n0+nn, :]ᵀ in the dot-product form the weights' layout
 * gives (rows of W contiguous along k, borrowed in place, never packed): blocks of 4 weight
 * rows x 4 input rows keep 16 accumulators in registers; bf16 rows are widened to f32 in
 * registers (bf16 << 16 is exact), so a bf16 weight is read at 2 bytes per element and
 * never expanded in memory. k is walked in chunks of KC and x in chunks of MC rows, so the
 * x chunk and the task's block of W rows stay in L2. (Measured against an 8x3 block and
 * the other loop order: this one was as fast or faster here.) */
#include <immintrin.h>

#include "cpu.h"

#define MC 64   /* x rows per block: MC x KC floats = 256 KiB stay in L2 with the W block */
#define KC 1024 /* k chunk: 4 x rows * KC * 4 B = 16 KiB per x group, all of x in L2 */

void pi0__gemm_bf16_smallm_avx512(int m, int nn, int k, const float *x, int ldx,
                                  const uint16_t *w, int ldw, float *t, int ldt, int beta1);
void pi0__gemm_f32_smallm_avx512(int m, int nn, int k, const float *x, int ldx, const float *w,
                                 int ldw, float *t, int ldt, int beta1);

static inline __m512 load_bf16(const uint16_t *p) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
}

static inline __m512 load_bf16_mask(const uint16_t *p, __mmask16 mk) {
    return _mm512_castsi512_ps(
        _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(mk, p)), 16));
}

static inline __m512 load_f32(const float *p) {
    return _mm512_loadu_ps(p);
}

static inline __m512 load_f32_mask(const float *p, __mmask16 mk) {
    return _mm512_maskz_loadu_ps(mk, p);
}

/* The kernel for one weight type WT with loaders LOAD / LOAD_MASK (a macro: the bf16 and f32
 * variants are the same code). block: acc[i][j] over k in [0, kc) for mr input rows and nr
 * weight rows (both <= 4, compile-time constants at every call). */
#define DEFINE_SMALLM(NAME, WT, LOAD, LOAD_MASK)                                               \
    static inline __attribute__((always_inline)) void NAME##_block(                            \
        int mr, int nr, int kc, const float *x, int ldx, const WT *w, int ldw, float *out,     \
        int ldt) {                                                                             \
        __m512 acc[4][4];                                                                      \
        for (int i = 0; i < 4; i++)                                                            \
            for (int j = 0; j < 4; j++)                                                        \
                acc[i][j] = _mm512_setzero_ps();                                               \
        int l = 0;                                                                             \
        for (; l + 16 <= kc; l += 16) {                                                        \
            __m512 wv[4];                                                                      \
            for (int j = 0; j < nr; j++)                                                       \
                wv[j] = LOAD(w + (size_t)j * ldw + l);                                         \
            for (int i = 0; i < mr; i++) {                                                     \
                __m512 xv = _mm512_loadu_ps(x + (size_t)i * ldx + l);                          \
                for (int j = 0; j < nr; j++)                                                   \
                    acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);                         \
            }                                                                                  \
        }                                                                                      \
        if (l < kc) {                                                                          \
            __mmask16 mk = (__mmask16)((1u << (kc - l)) - 1);                                  \
            __m512 wv[4];                                                                      \
            for (int j = 0; j < nr; j++)                                                       \
                wv[j] = LOAD_MASK(w + (size_t)j * ldw + l, mk);                                \
            for (int i = 0; i < mr; i++) {                                                     \
                __m512 xv = _mm512_maskz_loadu_ps(mk, x + (size_t)i * ldx + l);                \
                for (int j = 0; j < nr; j++)                                                   \
                    acc[i][j] = _mm512_fmadd_ps(xv, wv[j], acc[i][j]);                         \
            }                                                                                  \
        }                                                                                      \
        for (int i = 0; i < mr; i++)                                                           \
            for (int j = 0; j < nr; j++)                                                       \
                out[(size_t)i * ldt + j] += _mm512_reduce_add_ps(acc[i][j]);                   \
    }                                                                                          \
    static void NAME##_nr4(int mr, int kc, const float *x, int ldx, const WT *w, int ldw,      \
                           float *out, int ldt) {                                              \
        switch (mr) {                                                                          \
        case 4:                                                                                \
            NAME##_block(4, 4, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 3:                                                                                \
            NAME##_block(3, 4, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 2:                                                                                \
            NAME##_block(2, 4, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        default:                                                                               \
            NAME##_block(1, 4, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        }                                                                                      \
    }                                                                                          \
    static void NAME##_nr1(int mr, int kc, const float *x, int ldx, const WT *w, int ldw,      \
                           float *out, int ldt) {                                              \
        switch (mr) {                                                                          \
        case 4:                                                                                \
            NAME##_block(4, 1, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 3:                                                                                \
            NAME##_block(3, 1, kc, x, ldx, w, ldw, out, ldt);                                  \
            break;                                                                             \
        case 2:                                                                                \
            NAME##_block(2, 1, kc, x, ldx, w, ldw, out, ldt);                                  \
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
                for (int j0 = 0; j0 < nn; j0 += 4) {                                           \
                    int nr = nn - j0 < 4 ? nn - j0 : 4;                                        \
                    const WT *wj = w + (size_t)j0 * ldw + k0;                                  \
                    for (int i0 = mc; i0 < me; i0 += 4) {                                      \
                        int mr = me - i0 < 4 ? me - i0 : 4;                                    \
                        const float *xi = x + (size_t)i0 * ldx + k0;                           \
                        float *ti = t + (size_t)i0 * ldt + j0;                                 \
                        if (nr == 4)                                                           \
                            NAME##_nr4(mr, kc, xi, ldx, wj, ldw, ti, ldt);                     \
                        else /* the last 1..3 weight rows, one at a time */                    \
                            for (int j = 0; j < nr; j++)                                       \
                                NAME##_nr1(mr, kc, xi, ldx, wj + (size_t)j * ldw, ldw, ti + j, \
                                           ldt);                                               \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    }

DEFINE_SMALLM(pi0__gemm_bf16_smallm_avx512, uint16_t, load_bf16, load_bf16_mask)
DEFINE_SMALLM(pi0__gemm_f32_smallm_avx512, float, load_f32, load_f32_mask)
