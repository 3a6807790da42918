/* bench_loader — loader and preprocessing timings, one JSON object per line.
 *   bench_loader load DIR      pi0_weights_load(DIR): wall ms, RSS before/after, tensors
 *   bench_loader preprocess    1280x720 and 640x480 RGB -> 256x588 patches, ms per image,
 *                              with a baseline in the same run: one memcpy of the source
 *                              image plus one write of the f32 patch buffer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/pi0_time.h"
#include "pipeline/pi0_weights.h"
#include "pipeline/preprocess/preprocess.h"

static long status_kb(const char *key) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, key, n)) v = atol(line + n + 1);
    if (fp) fclose(fp);
    return v;
}

static int bench_load(const char *dir) {
    long rss0 = status_kb("VmRSS");
    double t0 = (pi0__now_s() * 1e3);
    pi0_weights *w = NULL;
    int rc = pi0_weights_load(dir, &w);
    double t1 = (pi0__now_s() * 1e3);
    if (rc) {
        fprintf(stderr, "bench_loader: %s\n", pi0_last_error());
        return 1;
    }
    long rss1 = status_kb("VmRSS");
    /* checksums so a test can compare tensor contents with an independent reader */
    double sum_out = 0, sum_row = 0;
    int64_t n_out = pi0_tensor_numel(&w->action_out_w), W = w->embed.shape[1];
    float *buf = malloc(sizeof(float) * (size_t)(n_out > W ? n_out : W));
    if (buf && !pi0_tensor_to_f32(&w->action_out_w, 0, n_out, buf))
        for (int64_t i = 0; i < n_out; i++)
            sum_out += buf[i];
    if (buf && w->embed.shape[0] > 1 && !pi0_tensor_to_f32(&w->embed, W, W, buf))
        for (int64_t i = 0; i < W; i++)
            sum_row += buf[i];
    free(buf);
    printf("{\"bench\":\"loader_checksums\",\"action_out_sum\":%.9g,\"embed_row1_sum\":%.9g}\n",
           sum_out, sum_row);
    printf("{\"bench\":\"loader_load\",\"dir\":\"%s\",\"tensors\":%d,\"pi05\":%d,\"embed_"
           "dtype\":\"%s\","
           "\"load_ms\":%.2f,\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"vm_size_kb\":%ld}\n",
           dir, pi0_weights_count(w), w->cfg.pi05, w->embed.dtype == PI0_F32 ? "F32" : "BF16",
           t1 - t0, rss0, rss1, status_kb("VmSize"));
    double t2 = (pi0__now_s() * 1e3);
    pi0_weights_destroy(w);
    printf("{\"bench\":\"loader_destroy\",\"ms\":%.2f}\n", (pi0__now_s() * 1e3) - t2);
    return 0;
}

static int bench_preprocess(void) {
    static const int sizes[][2] = {{1280, 720}, {640, 480}, {224, 224}};
    pi0_preproc *pp = NULL;
    if (pi0_preproc_create(1280, 720, &pp)) return 1;
    float *patches = malloc(sizeof(float) * 256 * 588),
          *base_out = malloc(sizeof(float) * 256 * 588);
    uint8_t *img = malloc(1280 * 720 * 3), *copy = malloc(1280 * 720 * 3);
    for (size_t i = 0; i < 1280 * 720 * 3; i++)
        img[i] = (uint8_t)(i * 2654435761u >> 24);
    for (int s = 0; s < 3; s++) {
        int w = sizes[s][0], h = sizes[s][1], iters = 200;
        pi0_preproc_patches(pp, img, w, h, (size_t)w * 3, 14, patches); /* warm */
        double t0 = (pi0__now_s() * 1e3);
        for (int i = 0; i < iters; i++)
            pi0_preproc_patches(pp, img, w, h, (size_t)w * 3, 14, patches);
        double ms = ((pi0__now_s() * 1e3) - t0) / iters;
        t0 = (pi0__now_s() * 1e3);
        for (int i = 0; i < iters; i++) {
            memcpy(copy, img, (size_t)w * h * 3);
            memset(base_out, i & 1, sizeof(float) * 256 * 588);
            __asm__ volatile("" ::"r"(copy), "r"(base_out) : "memory");
        }
        double base = ((pi0__now_s() * 1e3) - t0) / iters;
        printf("{\"bench\":\"preprocess\",\"src\":\"%dx%d\",\"ms_per_image\":%.3f,"
               "\"baseline_copy_ms\":%.3f,\"ratio_to_copy\":%.1f}\n",
               w, h, ms, base, ms / base);
    }
    free(patches);
    free(base_out);
    free(img);
    free(copy);
    pi0_preproc_destroy(pp);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "load")) return bench_load(argv[2]);
    if (argc == 2 && !strcmp(argv[1], "preprocess")) return bench_preprocess();
    fprintf(argc == 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
            "usage: bench_loader load DIR | bench_loader preprocess\n");
    return argc == 2 && !strcmp(argv[1], "--help") ? 0 : 2;
}
