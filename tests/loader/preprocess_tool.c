/* preprocess_tool — runs pipeline/preprocess.c on .npy files, for tests/test_preprocess.py.
 *   preprocess_tool IN.npy OUT_U8.npy [OUT_PATCHES.npy PATCH]
 * IN: uint8 [H, W, 3]. OUT_U8: uint8 [224, 224, 3] (resize-with-pad). OUT_PATCHES: f32
 * [(224/PATCH)^2, 3*PATCH*PATCH] from pi0_preproc_patches. */
#include <stdio.h>
#include <stdlib.h>

#include "pipeline/checkpoint/npy.h"
#include "pipeline/preprocess/preprocess.h"

int main(int argc, char **argv) {
    if (argc != 3 && argc != 5) {
        fprintf(stderr, "usage: preprocess_tool IN.npy OUT_U8.npy [OUT_PATCHES.npy PATCH]\n");
        return argc == 2 && argv[1][0] == '-' ? 0 : 2;
    }
    pi0_npy in;
    int64_t want[3] = {-1, -1, 3};
    int rc = pi0_npy_read(argv[1], &in);
    if (!rc) rc = pi0_npy_expect(&in, argv[1], PI0_U8, 3, want);
    pi0_preproc *pp = NULL;
    int h = (int)in.shape[0], w = (int)in.shape[1];
    if (!rc) rc = pi0_preproc_create(w, h, &pp);
    static uint8_t out[224 * 224 * 3];
    if (!rc) rc = pi0_preproc_resize_pad(pp, in.data, w, h, (size_t)w * 3, out);
    int64_t shape[3] = {224, 224, 3};
    if (!rc) rc = pi0_npy_write(argv[2], PI0_U8, 3, shape, out);
    if (!rc && argc == 5) {
        int p = atoi(argv[4]), g = 224 / (p > 0 ? p : 1);
        float *patches = malloc(sizeof(float) * (size_t)g * g * 3 * p * p);
        rc = pi0_preproc_patches(pp, in.data, w, h, (size_t)w * 3, p, patches);
        int64_t ps[2] = {(int64_t)g * g, 3LL * p * p};
        if (!rc) rc = pi0_npy_write(argv[3], PI0_F32, 2, ps, patches);
        free(patches);
    }
    pi0_preproc_destroy(pp);
    pi0_npy_free(&in);
    if (rc) {
        fprintf(stderr, "preprocess_tool: %s\n", pi0_last_error());
        return 1;
    }
    return 0;
}
