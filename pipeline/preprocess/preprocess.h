/* preprocess.h — camera image → SigLIP input, per PI0-SPEC.md §3–4.
 *
 * uint8 RGB HWC of any size → resize keeping the aspect ratio to fit 224×224 (openpi's
 * resize_with_pad: ratio = max(w/224, h/224), new size = int(w/ratio) × int(h/ratio),
 * clamped to ≥ 1 pixel) with PIL's antialiased BILINEAR resampling (separable triangle
 * filter, support scaled by the downscale factor, 22-bit fixed-point coefficients,
 * horizontal pass then vertical, each rounded to uint8 — matches Pillow exactly), pad
 * centered with black (before = floor(diff/2)), then x/255·2−1 as float in [−1, 1], and
 * patchify for the patch-embedding GEMM: [n_patches, 3·p·p], patches row-major, columns
 * in (c, kh, kw) order (= the conv weight [width, 3, p, p] read as a matrix).
 *
 * No allocation per image: a pi0_preproc is created once for the largest expected source
 * size and owns all scratch. One pi0_preproc per thread (not thread-safe); the stateless
 * helpers below may be called from any thread. */
#ifndef PI0_PREPROCESS_H
#define PI0_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "common/pi0_status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PI0_IMAGE_SIZE 224

typedef struct pi0_preproc pi0_preproc;

/* Scratch for sources up to max_w × max_h pixels (allocates once). PI0_EINVAL for
 * non-positive or absurd sizes (> 16384). */
int pi0_preproc_create(int max_w, int max_h, pi0_preproc **out);
void pi0_preproc_destroy(pi0_preproc *pp); /* NULL ok */

/* The size openpi's resize_with_pad gives a w × h image before padding to `size`. */
void pi0_resize_dims(int w, int h, int size, int *out_w, int *out_h);

/* src: h rows of w RGB pixels, rows `stride` bytes apart (stride >= 3w).
 * dst: [224, 224, 3] uint8, resized and padded. PI0_ERANGE when w × h exceeds the size
 * given at creation, PI0_EINVAL for bad arguments. Allocates nothing. */
int pi0_preproc_resize_pad(pi0_preproc *pp, const uint8_t *src, int w, int h, size_t stride,
                           uint8_t *dst);

/* Resize-with-pad + scale + patchify in one call: out is [n_patches, 3·p·p] f32 with
 * n_patches = (224/p)², p dividing 224. Allocates nothing. */
int pi0_preproc_patches(pi0_preproc *pp, const uint8_t *src, int w, int h, size_t stride,
                        int patch, float *out);

/* x/255·2−1 of a [size, size, 3] uint8 HWC image, patchified: [(size/p)², 3·p·p] f32,
 * patches row-major, columns in (c, kh, kw) order; p must divide size. */
void pi0_patchify_u8(const uint8_t *hwc, int size, int patch, float *out);

/* Converts h rows of w pixels (rows `stride` bytes apart; 3 bytes per pixel for RGB / BGR
 * (format 0 / 1), 1 for gray (2)) to packed RGB in dst [h, w, 3], rotated by 180° when
 * rotate180. Allocates nothing. */
void pi0_image_to_rgb(const uint8_t *src, int w, int h, size_t stride, int format,
                      int rotate180, uint8_t *dst);

/* The value x/255·2−1 in f32, as computed here (for references and tests). */
float pi0_pixel_to_float(uint8_t x);

#ifdef __cplusplus
}
#endif
#endif /* PI0_PREPROCESS_H */
