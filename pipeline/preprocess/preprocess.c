/* preprocess.c — resize-with-pad (Pillow BILINEAR, bit-exact), [-1, 1] scaling, patchify.
 * See preprocess.h. */
#include "preprocess.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PRECISION_BITS (32 - 8 - 2) /* Pillow's fixed point for 8-bit images */
#define MAX_SIDE       16384

struct pi0_preproc {
    int max_w, max_h;
    int ksize_max;
    uint8_t *tmp;                    /* [max_h, 224, 3] horizontal pass output */
    double *dk;                      /* [224 * ksize_max] float coefficients */
    int32_t *kx, *ky;                /* [224 * ksize_max] fixed-point coefficients */
    int *bx, *by;                    /* [224 * 2] (first tap, tap count) per output pixel */
    int32_t acc[PI0_IMAGE_SIZE * 3]; /* vertical pass accumulators, one output row */
    uint8_t img[PI0_IMAGE_SIZE * PI0_IMAGE_SIZE * 3];
};

// ---- pixels -----------------------------------------------------------------------

float pi0_pixel_to_float(uint8_t x) {
    return (float)x / 255.0f * 2.0f - 1.0f;
}

/* pi0_pixel_to_float of every byte, filled once (pthread_once: any thread may be first). */
static float LUT[256];
static pthread_once_t lut_once = PTHREAD_ONCE_INIT;

static void lut_fill(void) {
    for (int i = 0; i < 256; i++)
        LUT[i] = pi0_pixel_to_float((uint8_t)i);
}

void pi0_patchify_u8(const uint8_t *hwc, int size, int patch, float *out) {
    pthread_once(&lut_once, lut_fill);
    int g = size / patch, pp = patch * patch;
    for (int py = 0; py < g; py++)
        for (int px = 0; px < g; px++) {
            float *o = out + (size_t)(py * g + px) * 3 * (size_t)pp;
            for (int kh = 0; kh < patch; kh++) {
                const uint8_t *row =
                    hwc +
                    ((size_t)(py * patch + kh) * (size_t)size + (size_t)px * (size_t)patch) * 3;
                for (int kw = 0; kw < patch; kw++)
                    for (int c = 0; c < 3; c++)
                        o[c * pp + kh * patch + kw] = LUT[row[kw * 3 + c]];
            }
        }
}

// ---- resampling (Pillow's ImagingResample with the bilinear filter) ---------------

void pi0_resize_dims(int w, int h, int size, int *out_w, int *out_h) {
    /* openpi resize_with_pad, same double arithmetic as Python */
    double ratio = fmax((double)w / size, (double)h / size);
    int rw = (int)((double)w / ratio), rh = (int)((double)h / ratio);
    *out_w = rw < 1 ? 1 : rw > size ? size : rw;
    *out_h = rh < 1 ? 1 : rh > size ? size : rh;
}

static int ksize_for(int in, int out) {
    double scale = (double)in / out, filterscale = scale < 1.0 ? 1.0 : scale;
    return (int)ceil(filterscale) * 2 + 1;
}

static double bilinear(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* Pillow precompute_coeffs + normalize_coeffs_8bpc. Returns ksize. */
static int coeffs(pi0_preproc *pp, int in, int out, int32_t *kk, int *bounds) {
    double scale = (double)in / out, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale, ss = 1.0 / filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    PI0_ASSERT(ksize <= pp->ksize_max);
    double *dk = pp->dk;
    for (int xx = 0; xx < out; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0;
        int xmin = (int)(center - support + 0.5), xmax;
        if (xmin < 0) xmin = 0;
        xmax = (int)(center + support + 0.5);
        if (xmax > in) xmax = in;
        xmax -= xmin;
        double *k = dk + (size_t)xx * (size_t)ksize;
        int x = 0;
        for (; x < xmax; x++) {
            double w = bilinear((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++)
            k[x] = 0;
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    for (int i = 0; i < out * ksize; i++)
        kk[i] = dk[i] < 0 ? (int32_t)(-0.5 + dk[i] * (1 << PRECISION_BITS))
                          : (int32_t)(0.5 + dk[i] * (1 << PRECISION_BITS));
    return ksize;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

int pi0_preproc_create(int max_w, int max_h, pi0_preproc **out) {
    if (max_w < 1 || max_h < 1 || max_w > MAX_SIDE || max_h > MAX_SIDE)
        return pi0_errorf(PI0_EINVAL, "pi0_preproc_create: size %dx%d outside 1..%d", max_w,
                          max_h, MAX_SIDE);
    pi0_preproc *pp = calloc(1, sizeof *pp);
    if (!pp) return pi0_errorf(PI0_ENOMEM, "pi0_preproc_create: out of memory");
    pp->max_w = max_w;
    pp->max_h = max_h;
    /* in/out <= 2 * max_side / 224 for the sizes pi0_resize_dims gives (see there) */
    int m = max_w > max_h ? max_w : max_h;
    pp->ksize_max = 2 * (int)ceil(fmax(1.0, 2.0 * m / PI0_IMAGE_SIZE + 1.0)) + 3;
    size_t nk = (size_t)PI0_IMAGE_SIZE * (size_t)pp->ksize_max;
    pp->tmp = malloc((size_t)max_h * PI0_IMAGE_SIZE * 3);
    pp->dk = malloc(nk * sizeof *pp->dk);
    pp->kx = malloc(nk * sizeof *pp->kx);
    pp->ky = malloc(nk * sizeof *pp->ky);
    pp->bx = malloc(PI0_IMAGE_SIZE * 2 * sizeof *pp->bx);
    pp->by = malloc(PI0_IMAGE_SIZE * 2 * sizeof *pp->by);
    if (!pp->tmp || !pp->dk || !pp->kx || !pp->ky || !pp->bx || !pp->by) {
        pi0_preproc_destroy(pp);
        return pi0_errorf(PI0_ENOMEM, "pi0_preproc_create: out of memory");
    }
    pthread_once(&lut_once, lut_fill); /* here, so that no image pays for it */
    *out = pp;
    return 0;
}

void pi0_preproc_destroy(pi0_preproc *pp) {
    if (!pp) return;
    free(pp->tmp);
    free(pp->dk);
    free(pp->kx);
    free(pp->ky);
    free(pp->bx);
    free(pp->by);
    free(pp);
}

int pi0_preproc_resize_pad(pi0_preproc *pp, const uint8_t *src, int w, int h, size_t stride,
                           uint8_t *dst) {
    const int S = PI0_IMAGE_SIZE;
    if (!pp || !src || !dst || w < 1 || h < 1 || stride < (size_t)w * 3)
        return pi0_errorf(PI0_EINVAL, "pi0_preproc_resize_pad: bad image %dx%d (stride %zu)", w,
                          h, stride);
    if (w > pp->max_w || h > pp->max_h)
        return pi0_errorf(PI0_ERANGE,
                          "pi0_preproc_resize_pad: image %dx%d exceeds the %dx%d "
                          "given at creation",
                          w, h, pp->max_w, pp->max_h);
    int rw, rh;
    pi0_resize_dims(w, h, S, &rw, &rh);
    PI0_ASSERT(ksize_for(w, rw) <= pp->ksize_max && ksize_for(h, rh) <= pp->ksize_max);
    int kxs = coeffs(pp, w, rw, pp->kx, pp->bx);
    int kys = coeffs(pp, h, rh, pp->ky, pp->by);
    /* horizontal pass: every source row, w -> rw, rounded to uint8 (skipped when the
     * width is unchanged, as Pillow does; the result would be the identity anyway) */
    const uint8_t *hp = src;
    size_t hstride = stride;
    if (rw != w) {
        hp = pp->tmp;
        hstride = (size_t)rw * 3;
        for (int y = 0; y < h; y++) {
            const uint8_t *row = src + (size_t)y * stride;
            uint8_t *o = pp->tmp + (size_t)y * hstride;
            for (int xx = 0; xx < rw; xx++) {
                int xmin = pp->bx[xx * 2], n = pp->bx[xx * 2 + 1];
                const int32_t *k = pp->kx + (size_t)xx * (size_t)kxs;
                int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
                const uint8_t *p = row + (size_t)xmin * 3;
                for (int x = 0; x < n; x++) {
                    s0 += p[x * 3] * k[x];
                    s1 += p[x * 3 + 1] * k[x];
                    s2 += p[x * 3 + 2] * k[x];
                }
                o[xx * 3] = clip8(s0);
                o[xx * 3 + 1] = clip8(s1);
                o[xx * 3 + 2] = clip8(s2);
            }
        }
    }
    /* vertical pass into the padded destination, a row of accumulators at a time */
    int pad_x = (S - rw) / 2, pad_y = (S - rh) / 2;
    size_t trow = (size_t)rw * 3;
    if (rh != S) memset(dst, 0, (size_t)S * S * 3);
    for (int yy = 0; yy < rh; yy++) {
        uint8_t *o = dst + ((size_t)(pad_y + yy) * S + (size_t)pad_x) * 3;
        if (rw != S) { /* side padding of this row */
            memset(dst + (size_t)(pad_y + yy) * S * 3, 0, (size_t)pad_x * 3);
            memset(o + trow, 0, (size_t)(S - rw - pad_x) * 3);
        }
        if (rh == h) {
            memcpy(o, hp + (size_t)yy * hstride, trow);
            continue;
        }
        int ymin = pp->by[yy * 2], n = pp->by[yy * 2 + 1];
        const int32_t *k = pp->ky + (size_t)yy * (size_t)kys;
        int32_t *acc = pp->acc;
        for (size_t i = 0; i < trow; i++)
            acc[i] = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) {
            const uint8_t *p = hp + (size_t)(ymin + y) * hstride;
            int32_t ky = k[y];
            for (size_t i = 0; i < trow; i++)
                acc[i] += p[i] * ky;
        }
        for (size_t i = 0; i < trow; i++)
            o[i] = clip8(acc[i]);
    }
    return 0;
}

int pi0_preproc_patches(pi0_preproc *pp, const uint8_t *src, int w, int h, size_t stride,
                        int patch, float *out) {
    if (patch < 1 || PI0_IMAGE_SIZE % patch)
        return pi0_errorf(PI0_EINVAL, "pi0_preproc_patches: patch %d does not divide %d", patch,
                          PI0_IMAGE_SIZE);
    int rc = pi0_preproc_resize_pad(pp, src, w, h, stride, pp->img);
    if (rc) return rc;
    pi0_patchify_u8(pp->img, PI0_IMAGE_SIZE, patch, out);
    return 0;
}

void pi0_image_to_rgb(const uint8_t *src, int w, int h, size_t stride, int format,
                      int rotate180, uint8_t *dst) {
    for (int y = 0; y < h; y++) {
        const uint8_t *row = src + (size_t)(rotate180 ? h - 1 - y : y) * stride;
        uint8_t *o = dst + (size_t)y * (size_t)w * 3;
        for (int x = 0; x < w; x++, o += 3) {
            int sx = rotate180 ? w - 1 - x : x;
            if (format == 2) {
                o[0] = o[1] = o[2] = row[sx];
            } else {
                const uint8_t *p = row + (size_t)sx * 3;
                o[0] = p[format == 1 ? 2 : 0];
                o[1] = p[1];
                o[2] = p[format == 1 ? 0 : 2];
            }
        }
    }
}
