/* cpu_pk_tile.h — the packed GEMM's micro-kernel, written once over a 16-float vector type
 * and included by each file that compiles it for an instruction set:
 *   - cpu_gemm_packed.c (AVX2): v16 is a pair of ymm registers. One panel per tile (6 x 16,
 *     12 ymm accumulators) is the AVX2 kernel; two panels per tile is the AVX-512 kernel's
 *     exact loop run on AVX2 (PI0_CPU_ISA=avx512emu), so that its indexing, tails and
 *     prefetches are tested on every x86-64 machine.
 *   - cpu_gemm_packed512.c (AVX-512F): v16 is one zmm register, two panels per tile (6 x 32,
 *     12 zmm accumulators: enough independent sums to keep both FMA pipes busy).
 *
 * The including file defines, before including this header:
 *   v16                      the vector type (16 floats)
 *   V_ZERO()                 all lanes 0
 *   V_LOADU(p) V_STOREU(p,v) 16 floats from / to p (any alignment)
 *   V_BCAST(p)               *p in every lane
 *   V_FMA(a, b, c)           a * b + c, one rounding
 *   V_ADD(a, b)
 *   V_DPBF16(a, b, c)        (for the bf16 dot product) c + both products of each lane's
 *                            pair of bf16 in a and b
 * and then instantiates DEFINE_PK_TILE(NAME, NP, WT, LOAD, STEP, MADD) for each variant it
 * needs: LOAD(p) reads one k step of a panel (WT elements, STEP of them per step) as a
 * v16, MADD(a, b, c) is c + a·b for one step. Two kinds of step:
 *   - one k: a step of x is 6 floats (one per row); the panel's is 16 f32, or 16 bf16 in
 *     the packed order widened exactly; MADD is V_FMA;
 *   - a pair of k (bf16 dot product): a step of x is 6 words, each the row's two bf16
 *     values; the panel's is 16 such words (one per column); MADD is V_DPBF16, which adds
 *     both products of each pair to the f32 lane (vdpbf16ps).
 *
 * NAME(mr, kc, a, b, pstride, c, ldc, add, pf, pfn): c[0..mr)[0..16·NP) (= or += when add)
 * = a[kc][6] · the kc steps of NP consecutive panels starting at b (panel i's at
 * b + i·pstride elements). The output tile is prefetched first; during each of the first
 * pfn steps, one step of each of the NP slices at pf (same pstride) is prefetched to L2.
 * Accumulators are named, not an array: GCC keeps those in registers. */
#ifndef PI0_DEVICE_CPU_PK_TILE_H
#define PI0_DEVICE_CPU_PK_TILE_H

#include <immintrin.h>
#include <stddef.h>

#define PK_ROW(i, MADD)                                                                        \
    if (mr > i) {                                                                              \
        v16 av = V_BCAST(al + i);                                                              \
        c##i##0 = MADD(av, b0, c##i##0);                                                       \
        if (np_ > 1) c##i##1 = MADD(av, b1, c##i##1);                                          \
    }
#define PK_OUT_HALF(i, h)                                                                      \
    {                                                                                          \
        float *o = c + (size_t)i * (size_t)ldc + 16 * h;                                       \
        if (add) c##i##h = V_ADD(c##i##h, V_LOADU(o));                                         \
        V_STOREU(o, c##i##h);                                                                  \
    }
#define PK_OUT(i)                                                                              \
    if (mr > i) {                                                                              \
        PK_OUT_HALF(i, 0)                                                                      \
        if (np_ > 1) PK_OUT_HALF(i, 1)                                                         \
    }

/* the tile for a constant row count, so that the compiler specialises each */
#define PK_MR_CALL(NAME, N) NAME##_mr(N, kc, a, bw, pstride, c, ldc, add, pw, pfn)
#define PK_MR_CASE(NAME, N)                                                                    \
    case N:                                                                                    \
        PK_MR_CALL(NAME, N);                                                                   \
        break

#define DEFINE_PK_TILE(NAME, NP, WT, LOAD, STEP, MADD)                                         \
    static inline __attribute__((always_inline)) void NAME##_mr(                               \
        int mr, int kc, const float *a, const WT *b, size_t pstride, float *c, int ldc,        \
        int add, const WT *pf, int pfn) {                                                      \
        const int np_ = NP; /* panels per tile (the row macros read it) */                     \
        v16 c00 = V_ZERO(), c01 = V_ZERO(), c10 = V_ZERO(), c11 = V_ZERO(), c20 = V_ZERO(),    \
            c21 = V_ZERO(), c30 = V_ZERO(), c31 = V_ZERO(), c40 = V_ZERO(), c41 = V_ZERO(),    \
            c50 = V_ZERO(), c51 = V_ZERO();                                                    \
        for (int i = 0; i < mr; i++) /* the output tile arrives while the sums run */          \
            for (int h = 0; h < NP; h++) {                                                     \
                _mm_prefetch((const char *)(c + (size_t)i * (size_t)ldc + 16 * h),             \
                             _MM_HINT_T0);                                                     \
                _mm_prefetch((const char *)(c + (size_t)i * (size_t)ldc + 16 * h + 15),        \
                             _MM_HINT_T0);                                                     \
            }                                                                                  \
        for (int l = 0; l < kc; l++) {                                                         \
            if (l < pfn)                                                                       \
                for (int h = 0; h < NP; h++)                                                   \
                    _mm_prefetch((const char *)(pf + h * pstride + (size_t)l * STEP),          \
                                 _MM_HINT_T1);                                                 \
            v16 b0 = LOAD(b + (size_t)l * STEP), b1 = b0;                                      \
            if (NP > 1) b1 = LOAD(b + pstride + (size_t)l * STEP);                             \
            const float *al = a + (size_t)l * 6;                                               \
            PK_ROW(0, MADD)                                                                    \
            PK_ROW(1, MADD) PK_ROW(2, MADD) PK_ROW(3, MADD) PK_ROW(4, MADD) PK_ROW(5, MADD)    \
        }                                                                                      \
        (void)c01, (void)c11, (void)c21, (void)c31, (void)c41, (void)c51;                      \
        PK_OUT(0) PK_OUT(1) PK_OUT(2) PK_OUT(3) PK_OUT(4) PK_OUT(5)                            \
    }                                                                                          \
    static void NAME(int mr, int kc, const float *a, const void *b, size_t pstride, float *c,  \
                     int ldc, int add, const void *pf, int pfn) {                              \
        const WT *bw = b, *pw = pf;                                                            \
        switch (mr) {                                                                          \
            PK_MR_CASE(NAME, 6);                                                               \
            PK_MR_CASE(NAME, 5);                                                               \
            PK_MR_CASE(NAME, 4);                                                               \
            PK_MR_CASE(NAME, 3);                                                               \
            PK_MR_CASE(NAME, 2);                                                               \
        default:                                                                               \
            PK_MR_CALL(NAME, 1);                                                               \
        }                                                                                      \
    }

#endif /* PI0_DEVICE_CPU_PK_TILE_H */
