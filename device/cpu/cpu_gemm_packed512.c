/* cpu_gemm_packed512.c — the packed GEMM's micro-kernel with AVX-512F (compiled with
 * -mavx512f, called only when the CPU has it: cpu_dev.pk_kern, see cpu_backend.c). The
 * layout and the loops are cpu_gemm_packed.c's; a tile covers two 16-row panels, so 6 rows
 * x 32 columns are 12 zmm accumulators. The same tiles run on AVX2 with each zmm emulated
 * by two ymm under PI0_CPU_ISA=avx512emu, which the cross-ISA tests use on every x86-64
 * machine; here only the vector operations below differ. In the bf16 compute mode on CPUs
 * with AVX512_BF16 the tiles take pairs of k per step with vdpbf16ps (twice the products
 * per instruction of an FMA). */
#include <immintrin.h>

#include "cpu.h"

typedef __m512 v16;

static inline v16 v16_load_f32(const float *b) {
    return _mm512_loadu_ps(b);
}
/* the packed bf16 order makes one unpack against zero columns 0-7, one 8-15 (AVX2's
 * widening), then both halves go into one zmm */
static inline v16 v16_load_bf16(const uint16_t *b) {
    __m256i v = _mm256_loadu_si256((const __m256i *)b), z = _mm256_setzero_si256();
    __m256i lo = _mm256_unpacklo_epi16(z, v), hi = _mm256_unpackhi_epi16(z, v);
    return _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
}
#define V_ZERO()       _mm512_setzero_ps()
#define V_LOADU(p)     _mm512_loadu_ps(p)
#define V_STOREU(p, v) _mm512_storeu_ps(p, v)
#define V_BCAST(p)     _mm512_set1_ps(*(p))
#define V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define V_ADD(a, b)    _mm512_add_ps(a, b)
#include "cpu_pk_tile.h"

DEFINE_PK_TILE(tile1_f32, 1, float, v16_load_f32, PI0__PK_NR, V_FMA)
DEFINE_PK_TILE(tile2_f32, 2, float, v16_load_f32, PI0__PK_NR, V_FMA)
DEFINE_PK_TILE(tile1_bf16, 1, uint16_t, v16_load_bf16, PI0__PK_NR, V_FMA)
DEFINE_PK_TILE(tile2_bf16, 2, uint16_t, v16_load_bf16, PI0__PK_NR, V_FMA)

/* the bf16 dot-product tiles, the only code here that needs AVX512_BF16 (cpu_backend.c runs
 * them only where the CPU has it) */
#pragma GCC push_options
#pragma GCC target("avx512bf16")
#define V_DPBF16(a, b, c)                                                                      \
    _mm512_dpbf16_ps(c, (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b))
DEFINE_PK_TILE(tile1_dp, 1, float, v16_load_f32, PI0__PK_NR, V_DPBF16)
DEFINE_PK_TILE(tile2_dp, 2, float, v16_load_f32, PI0__PK_NR, V_DPBF16)

#define EXPORT_TILE(NAME)                                                                      \
    void pi0__pk_##NAME##_avx512(int mr, int kc, const float *a, const void *b,                \
                                 size_t pstride, float *c, int ldc, int add, const void *pf,   \
                                 int pfn) {                                                    \
        NAME(mr, kc, a, b, pstride, c, ldc, add, pf, pfn);                                     \
    }
EXPORT_TILE(tile1_f32)
EXPORT_TILE(tile2_f32)
EXPORT_TILE(tile1_bf16)
EXPORT_TILE(tile2_bf16)
EXPORT_TILE(tile1_dp)
EXPORT_TILE(tile2_dp)
#pragma GCC pop_options
