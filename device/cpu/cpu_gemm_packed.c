/* cpu_gemm_packed.c — the cpu backend's GEMM on weights repacked at load: packing, the
 * loops, and the AVX2 micro-kernel (compiled with -mavx2 -mfma; called only when the CPU
 * has them, see cpu_backend.c; the AVX-512 micro-kernel is cpu_gemm_packed512.c).
 *
 * y[m, n] = x[m, k] · W[n, k]ᵀ, organised like BLIS / OpenBLAS: a register-blocked
 * micro-kernel (cpu_pk_tile.h) over a KC-deep slice: with AVX2, MR = 6 rows x one panel of
 * NR = 16 columns (12 ymm accumulators, 2 weight vectors and one broadcast: 15 of the 16
 * ymm registers); with AVX-512, 6 rows x two panels (12 zmm accumulators).
 *   - Weights are repacked once, at weight creation, into panels of NR rows interleaved
 *     along k: panel p holds W[16p .. 16p+15, :] as [k][16] (rows past n are zero), so the
 *     kernel reads 64 contiguous bytes per k step. bf16 weights keep 2 bytes per element in
 *     the same order with the middle two groups of 4 swapped, so that one unpack against
 *     zero (bf16 << 16 is exact) gives columns 0-7 and one gives 8-15.
 *   - x is packed per block of at most MC rows (equal blocks, each streams the weights once
 *     more) into [row group of 6][k][6] (rounded to bf16 first in the bf16 compute mode),
 *     shared by all threads.
 *   - Loops: row blocks (x packed for the block by all threads, then one parallel region
 *     over chunks of weight panels); in a chunk, k slices of KC outside, panels inside, row
 *     groups innermost: a KC x 16 weight slice (16 KiB) stays in L1 while it meets every
 *     row group of the block, and the block's KC-deep slice of packed x (up to 192 KiB)
 *     stays in L2 while it meets every panel of the chunk. While a tile's slices meet their
 *     row groups, each pass prefetches its share of the next tile's slices, so the
 *     prefetches are spread over the whole panel instead of bursting in one pass. They go
 *     to L2, not L1: the current slice, the next one and the streaming x would not fit in
 *     L1 together (one thread, weights in L3: 91 -> 96 GFLOP/s at 156 x 2048 x 2048).
 *   - Packed weights of 2 MiB and more sit on transparent huge pages where the kernel
 *     allows (cpu_backend.c: stream_alloc).
 *   - Partial sums over k slices go to y itself (or, for an activation over an
 *     accumulated output, to a per-thread tile); bias and activation run on each panel's
 *     columns once its last slice is done, while they are still in cache. */
#include <immintrin.h>
#include <string.h>

#include "cpu.h"

#define MR PI0__PK_MR
#define NR PI0__PK_NR
#define KC 256
#define MC PI0__PK_MC

// ---- packing ----

/* k steps of a panel: one per k, or one per pair of k */
static inline int steps(int fmt, int k) {
    return fmt == PI0__PK_BF16X2 ? (k + 1) / 2 : k;
}

size_t pi0__pk_weight_bytes(int fmt, int n, int k) {
    return (size_t)((n + NR - 1) / NR) * (size_t)steps(fmt, k) * NR *
           (fmt == PI0__PK_BF16 ? 2 : 4);
}

/* position of column c (0..15) of a panel inside its packed bf16 k step */
static inline int bf16_slot(int c) {
    return c < 4 ? c : c < 8 ? c + 4 : c < 12 ? c - 4 : c;
}

static inline float src_at(const void *src, pi0_dtype dt, size_t i) {
    if (dt == PI0_F32) return ((const float *)src)[i];
    uint16_t h = ((const uint16_t *)src)[i];
    if (dt == PI0_F16) return pi0_f16_to_f32(h);
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* 8x8 transpose of r[0..7] in registers */
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* W[r][l] as bf16 (0 past k) */
static inline uint32_t src_bf16(const void *src, pi0_dtype dt, int ld, int r, int l, int k) {
    if (l >= k) return 0;
    size_t i = (size_t)r * (size_t)ld + l;
    return dt == PI0_BF16 ? ((const uint16_t *)src)[i] : pi0_f32_to_bf16(src_at(src, dt, i));
}

void pi0__pk_weight(void *dst, int fmt, const void *src, pi0_dtype src_dtype, int n, int k,
                    int ld) {
    int np = (n + NR - 1) / NR;
    for (int p = 0; p < np; p++) {
        int r0 = p * NR, nr = n - r0 < NR ? n - r0 : NR;
        if (fmt == PI0__PK_BF16X2) { /* word (j, c): W[c][2j] low, W[c][2j+1] high */
            int k2 = steps(fmt, k);
            uint32_t *d = (uint32_t *)dst + (size_t)p * (size_t)k2 * NR;
            for (int c = 0; c < NR; c++)
                for (int j = 0; j < k2; j++)
                    d[(size_t)j * NR + c] =
                        c < nr ? src_bf16(src, src_dtype, ld, r0 + c, 2 * j, k) |
                                     src_bf16(src, src_dtype, ld, r0 + c, 2 * j + 1, k) << 16
                               : 0;
        } else if (fmt == PI0__PK_F32) {
            float *d = (float *)dst + (size_t)p * (size_t)k * NR;
            int l = 0;
            if (src_dtype == PI0_F32 && nr == NR) /* 8x8 blocks transposed in registers */
                for (; l + 8 <= k; l += 8)
                    for (int h = 0; h < 2; h++) {
                        __m256 r[8];
                        for (int i = 0; i < 8; i++)
                            r[i] = _mm256_loadu_ps((const float *)src +
                                                   (size_t)(r0 + 8 * h + i) * (size_t)ld + l);
                        transpose8(r);
                        for (int q = 0; q < 8; q++)
                            _mm256_storeu_ps(d + (size_t)(l + q) * NR + 8 * h, r[q]);
                    }
            for (; l < k; l++)
                for (int c = 0; c < NR; c++)
                    d[(size_t)l * NR + c] =
                        c < nr ? src_at(src, src_dtype, (size_t)(r0 + c) * (size_t)ld + l)
                               : 0.0f;
        } else {
            uint16_t *d = (uint16_t *)dst + (size_t)p * (size_t)k * NR;
            for (int c = 0; c < NR; c++) {
                int s = bf16_slot(c);
                for (int l = 0; l < k; l++)
                    d[(size_t)l * NR + s] =
                        c < nr ? (uint16_t)src_bf16(src, src_dtype, ld, r0 + c, l, k) : 0;
            }
        }
    }
}

/* bf16 rounding of 8 floats, kept as f32: to nearest even, as pi0_f32_to_bf16. A NaN is
 * truncated and made quiet instead: rounding could carry its payload into the exponent
 * (inf) or the sign (0). */
static inline __m256 round_bf16(__m256 v) {
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u);
    __m256i u = _mm256_castps_si256(v);
    __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
    __m256i q = _mm256_or_si256(u, _mm256_set1_epi32(0x00400000));
    __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    r = _mm256_castps_si256(
        _mm256_blendv_ps(_mm256_castsi256_ps(r), _mm256_castsi256_ps(q), nan));
    return _mm256_castsi256_ps(_mm256_and_si256(r, hi));
}

/* 8-float stores 6 apart of r[0..n), each one's last 2 lanes overwritten by the next; the
 * last one is masked so that nothing lands past the group */
static inline void store_groups(float *d, const __m256 *r, int n) {
    for (int q = 0; q < n - 1; q++)
        _mm256_storeu_ps(d + (size_t)q * MR, r[q]);
    _mm256_maskstore_ps(d + (size_t)(n - 1) * MR,
                        _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0), r[n - 1]);
}

void pi0__pk_x(float *ap, const float *x, int ldx, int rows, int k, int fmt, int round) {
    const int pairs = fmt == PI0__PK_BF16X2, nk = steps(fmt, k);
    round = round || pairs;
    for (int g = 0; g < rows; g += MR) {
        int mr = rows - g < MR ? rows - g : MR;
        float *d = ap + (size_t)g * (size_t)nk;
        const float *xr = x + (size_t)g * (size_t)ldx;
        int l = 0;
        if (mr == MR)
            for (; l + 8 <= k; l += 8) {
                __m256 r[8];
                for (int i = 0; i < MR; i++) {
                    r[i] = _mm256_loadu_ps(xr + (size_t)i * (size_t)ldx + l);
                    if (round) r[i] = round_bf16(r[i]);
                    if (pairs) { /* bf16 halves packed two to a word: k 2j low, 2j+1 high */
                        __m256i h = _mm256_srli_epi32(_mm256_castps_si256(r[i]), 16);
                        h = _mm256_packus_epi32(h, h); /* per 128-bit lane: w0 w1 w0 w1 */
                        h = _mm256_permutevar8x32_epi32(
                            h, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
                        r[i] = _mm256_castsi256_ps(h);
                    }
                }
                r[6] = r[7] = _mm256_setzero_ps();
                transpose8(r);
                store_groups(d + (size_t)(pairs ? l / 2 : l) * MR, r, pairs ? 4 : 8);
            }
        for (int j = pairs ? l / 2 : l; j < nk; j++)
            for (int i = 0; i < MR; i++) {
                const float *xi = i < mr ? xr + (size_t)i * (size_t)ldx : NULL;
                float v;
                if (pairs) {
                    uint32_t lo = i < mr ? pi0_f32_to_bf16(xi[2 * j]) : 0;
                    uint32_t hi = i < mr && 2 * j + 1 < k ? pi0_f32_to_bf16(xi[2 * j + 1]) : 0;
                    uint32_t w = lo | hi << 16;
                    memcpy(&v, &w, 4);
                } else {
                    v = i < mr ? xi[j] : 0.0f;
                    if (round) v = pi0_bf16_to_f32(pi0_f32_to_bf16(v));
                }
                d[(size_t)j * MR + i] = v;
            }
    }
}

// ---- micro-kernels (cpu_pk_tile.h) ----

/* v16 as two ymm registers: columns 0-7 and 8-15 of a panel */
typedef struct v16 {
    __m256 lo, hi;
} v16;

static inline v16 v16_zero(void) {
    return (v16){_mm256_setzero_ps(), _mm256_setzero_ps()};
}
static inline v16 v16_loadu(const float *p) {
    return (v16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)};
}
static inline void v16_storeu(float *p, v16 v) {
    _mm256_storeu_ps(p, v.lo);
    _mm256_storeu_ps(p + 8, v.hi);
}
static inline v16 v16_bcast(const float *p) {
    __m256 a = _mm256_broadcast_ss(p);
    return (v16){a, a};
}
static inline v16 v16_fma(v16 a, v16 b, v16 c) {
    return (v16){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
static inline v16 v16_add(v16 a, v16 b) {
    return (v16){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)};
}
static inline v16 v16_load_f32(const float *b) {
    return (v16){_mm256_load_ps(b), _mm256_load_ps(b + 8)};
}
/* the packed bf16 order makes one unpack against zero columns 0-7, one 8-15 */
static inline v16 v16_load_bf16(const uint16_t *b) {
    __m256i v = _mm256_load_si256((const __m256i *)b), z = _mm256_setzero_si256();
    return (v16){_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, v)),
                 _mm256_castsi256_ps(_mm256_unpackhi_epi16(z, v))};
}
/* vdpbf16ps on 8 lanes: each lane's pair of bf16 products added to it, one after the
 * other (odd element first, as Intel's pseudo-code has it), each product exact in f32 and
 * each sum rounded, which is what an FMA of the widened values does. The hardware also
 * flushes denormal inputs and results to zero; this does not. */
static inline __m256 dp8(__m256 a, __m256 b, __m256 c) {
    const __m256 hi = _mm256_castsi256_ps(_mm256_set1_epi32((int)0xffff0000u));
    __m256 ae = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(a), 16));
    __m256 be = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(b), 16));
    c = _mm256_fmadd_ps(_mm256_and_ps(a, hi), _mm256_and_ps(b, hi), c);
    return _mm256_fmadd_ps(ae, be, c);
}
static inline v16 v16_dp(v16 a, v16 b, v16 c) {
    return (v16){dp8(a.lo, b.lo, c.lo), dp8(a.hi, b.hi, c.hi)};
}
#define V_ZERO()          v16_zero()
#define V_LOADU(p)        v16_loadu(p)
#define V_STOREU(p, v)    v16_storeu(p, v)
#define V_BCAST(p)        v16_bcast(p)
#define V_FMA(a, b, c)    v16_fma(a, b, c)
#define V_ADD(a, b)       v16_add(a, b)
#define V_DPBF16(a, b, c) v16_dp(a, b, c)
#include "cpu_pk_tile.h"

/* one panel per tile: the AVX2 kernel (and the AVX-512 kernel's tail, emulated) */
DEFINE_PK_TILE(tile1_f32, 1, float, v16_load_f32, NR, V_FMA)
DEFINE_PK_TILE(tile1_bf16, 1, uint16_t, v16_load_bf16, NR, V_FMA)
DEFINE_PK_TILE(tile1_dp, 1, float, v16_load_f32, NR, V_DPBF16)
/* two panels per tile: the AVX-512 kernel's loop on emulated 512-bit vectors */
DEFINE_PK_TILE(tile2_f32, 2, float, v16_load_f32, NR, V_FMA)
DEFINE_PK_TILE(tile2_bf16, 2, uint16_t, v16_load_bf16, NR, V_FMA)
DEFINE_PK_TILE(tile2_dp, 2, float, v16_load_f32, NR, V_DPBF16)

/* [kern][fmt][panels per tile - 1] (the bf16 dot product only with the AVX-512 loops) */
static pi0__pk_tile_fn *const tiles[3][3][2] = {
    [PI0__PK_AVX2] = {{tile1_f32, NULL}, {tile1_bf16, NULL}, {NULL, NULL}}, /* 1 panel only */
    [PI0__PK_AVX512] = {{pi0__pk_tile1_f32_avx512, pi0__pk_tile2_f32_avx512},
                        {pi0__pk_tile1_bf16_avx512, pi0__pk_tile2_bf16_avx512},
                        {pi0__pk_tile1_dp_avx512, pi0__pk_tile2_dp_avx512}},
    [PI0__PK_AVX512_EMU] = {{tile1_f32, tile2_f32},
                            {tile1_bf16, tile2_bf16},
                            {tile1_dp, tile2_dp}},
};

// ---- driver ----

void pi0__pk_run_chunk(const pi0__pk_job *j, int p0, int p1, float *d, int ldd, int first_add,
                       float *tmp, void (*done)(const pi0__pk_job *, int p, void *),
                       void *done_ctx) {
    const int wide = j->kern != PI0__PK_AVX2, nk = steps(j->fmt, j->k);
    const int ks_max = j->fmt == PI0__PK_BF16X2 ? KC / 2 : KC; /* steps per slice */
    const size_t esz = j->fmt == PI0__PK_BF16 ? 2 : 4, pstride = (size_t)nk * NR;
    const int groups = (j->rows + MR - 1) / MR;
    for (int s0 = 0; s0 < nk; s0 += ks_max) {
        int ks = nk - s0 < ks_max ? nk - s0 : ks_max, last = s0 + ks == nk;
        int add = s0 > 0 || first_add;
        for (int p = p0, np; p < p1; p += np) {
            np = wide && p + 1 < p1 ? 2 : 1;
            pi0__pk_tile_fn *tile = tiles[j->kern][j->fmt][np - 1];
            const char *b = (const char *)j->w + ((size_t)p * (size_t)nk + s0) * NR * esz;
            /* the next tile's slices, when it has as many panels as this one (the tile
             * prefetches np of them; addresses stay inside the chunk) */
            const char *pf = p + 2 * np <= p1 ? b + (size_t)np * pstride * esz : NULL;
            int cols = j->n - p * NR < np * NR ? j->n - p * NR : np * NR,
                full = cols == np * NR;
            float *dp = d + (size_t)(p - p0) * NR;
            for (int g = 0; g < j->rows; g += MR) {
                int mr = j->rows - g < MR ? j->rows - g : MR;
                const float *a = j->xp + (size_t)g * (size_t)nk + (size_t)s0 * MR;
                float *c = full ? dp + (size_t)g * (size_t)ldd : tmp;
                /* this pass prefetches its share of the next tile's slices */
                int share = (ks + groups - 1) / groups, l0 = (g / MR) * share;
                int pfn = pf && l0 < ks ? (ks - l0 < share ? ks - l0 : share) : 0;
                tile(mr, ks, a, b, pstride, c, full ? ldd : np * NR, full && add,
                     pfn ? pf + (size_t)l0 * NR * esz : NULL, pfn);
                if (!full) /* the weight's last panel has columns past n: through tmp */
                    for (int i = 0; i < mr; i++) {
                        float *o = dp + (size_t)(g + i) * (size_t)ldd;
                        for (int q = 0; q < cols; q++)
                            o[q] = add ? o[q] + tmp[i * np * NR + q] : tmp[i * np * NR + q];
                    }
            }
            if (last && done)
                for (int i = 0; i < np; i++)
                    done(j, p + i, done_ctx);
        }
    }
}
