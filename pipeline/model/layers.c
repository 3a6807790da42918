/* layers.c — load-time helpers shared by the model stages (see layers.h). */
#include "layers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reserves `n` floats (64-byte aligned), returns their offset in floats. */
static size_t params_reserve(pi0__params *pb, size_t n) {
    size_t off = (pb->n + 15) & ~(size_t)15;
    if (off + n > pb->cap) {
        size_t cap = pb->cap ? pb->cap : 4096;
        while (cap < off + n)
            cap *= 2;
        float *d = realloc(pb->data, cap * sizeof(float));
        if (!d) {
            pb->err =
                pi0_errorf(PI0_ENOMEM, "model parameters: out of memory (%zu floats)", cap);
            return 0;
        }
        pb->data = d;
        pb->cap = cap;
    }
    memset(pb->data + pb->n, 0, (off + n - pb->n) * sizeof(float));
    pb->n = off + n;
    return off;
}

void pi0__params_tensor(pi0__params *pb, const pi0_tensor *t, int rows, int cols,
                        pi0_mat *out) {
    pi0_mat x = {NULL, 0, rows, cols, cols, PI0_F32};
    *out = x;
    if (pb->err) return;
    if (pb->n_fix == pb->cap_fix) {
        size_t cap = pb->cap_fix ? 2 * pb->cap_fix : 64;
        pi0_mat **f = realloc(pb->fix, cap * sizeof *f);
        if (!f) {
            pb->err = pi0_errorf(PI0_ENOMEM, "model parameters: out of memory");
            return;
        }
        pb->fix = f;
        pb->cap_fix = cap;
    }
    size_t off = params_reserve(pb, (size_t)rows * (size_t)cols);
    if (pb->err) return;
    int rc = pi0_tensor_to_f32(t, 0, (int64_t)rows * cols, pb->data + off);
    if (rc) {
        pb->err = rc;
        return;
    }
    out->off = off * sizeof(float); /* buf is set by pi0__params_upload */
    pb->fix[pb->n_fix++] = out;
}

int pi0__params_upload(pi0__params *pb, pi0_dev *dev, pi0_stream *s, pi0_buf **buf) {
    int rc = pb->err;
    if (!rc) rc = pi0_buf_alloc(dev, pb->n * sizeof(float) + 64, buf);
    if (!rc) rc = pi0_dev_upload(s, *buf, 0, pb->data, pb->n * sizeof(float));
    if (!rc) rc = pi0_stream_sync(s);
    if (!rc)
        for (size_t i = 0; i < pb->n_fix; i++)
            pb->fix[i]->buf = *buf;
    pi0__params_free(pb);
    return rc;
}

void pi0__params_free(pi0__params *pb) {
    free(pb->data);
    free(pb->fix);
    pb->data = NULL;
    pb->fix = NULL;
    pb->n = pb->cap = pb->n_fix = pb->cap_fix = 0;
}

static int weight_make(pi0_dev *dev, const pi0_tensor *t, int table, pi0_weight **out) {
    int64_t n = t->shape[0];
    int64_t k = pi0_tensor_numel(t) / (n ? n : 1);
    int rc = (table ? pi0_weight_create_table : pi0_weight_create)(dev, t->data, t->dtype,
                                                                   (int)n, (int)k, (int)k, out);
    if (rc) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", pi0_last_error_for(rc));
        return pi0_errorf(rc, "tensor %s: %s", t->name ? t->name : "?", msg);
    }
    /* the backend keeps its own copy: the checkpoint's pages need not stay resident */
    if (pi0_weight_device_bytes(*out) > 0) pi0_tensor_evict(t);
    return PI0_OK;
}

int pi0__weight_make(pi0_dev *dev, const pi0_tensor *t, pi0_weight **out) {
    return weight_make(dev, t, 0, out);
}

int pi0__table_make(pi0_dev *dev, const pi0_tensor *t, pi0_weight **out) {
    return weight_make(dev, t, 1, out);
}

int pi0__linear_make(pi0_dev *dev, pi0__params *pb, const pi0_tensor *w, const pi0_tensor *b,
                     pi0__linear *out) {
    PI0__TRY(pi0__weight_make(dev, w, &out->w));
    if (b && pi0_tensor_present(b)) pi0__params_tensor(pb, b, 1, (int)b->shape[0], &out->b);
    return PI0_OK;
}

int pi0__buf_f32(pi0_dev *dev, pi0_buf **b, size_t rows, size_t cols) {
    return pi0_buf_alloc(dev, rows * cols * 4 + 64, b);
}
