/* cpu_kernels.c — the cpu backend's non-GEMM kernels: norms, elementwise, RoPE,
 * attention, gather. Each runs with the compute lock held and splits its rows over the
 * pool; nothing here allocates (attention uses the device scratch). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "cpu_vec.h"

// ---- row loops (vectorized, see cpu_vec.h) ----

PI0_VEC static void row_gelu(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++)
        y[i] = pi0__gelu_tanh(x[i]);
}
PI0_VEC static void row_silu(float *y, const float *x, int n) {
    for (int i = 0; i < n; i++)
        y[i] = pi0__silu(x[i]);
}
PI0_VEC static void row_scale(float *y, const float *x, float a, int n) {
    for (int i = 0; i < n; i++)
        y[i] = x[i] * a;
}
PI0_VEC static void row_mul(float *y, const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        y[i] = a[i] * b[i];
}
PI0_VEC static void row_geglu(float *y, const float *g, const float *u, int n) {
    for (int i = 0; i < n; i++)
        y[i] = pi0__gelu_tanh(g[i]) * u[i];
}
PI0_VEC static void row_gated_add(float *h, const float *g, const float *x, int n) {
    for (int i = 0; i < n; i++)
        h[i] += g[i] * x[i];
}
/* sum of x[i] (mode 0), of x[i]^2 (mode 1), of (x[i]-c)^2 (mode 2), 16 partial sums */
PI0_VEC static float row_sum(const float *x, int n, int mode, float c) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            float v = mode == 2 ? x[i + j] - c : x[i + j];
            acc[j] += mode ? v * v : v;
        }
    float s = 0;
    for (; i < n; i++) {
        float v = mode == 2 ? x[i] - c : x[i];
        s += mode ? v * v : v;
    }
    for (int j = 0; j < 16; j++)
        s += acc[j];
    return s;
}
/* y = (x - c) * r * (1 + w) + b   (w, b may be NULL: treated as 0) */
PI0_VEC static void row_norm_apply(float *y, const float *x, float c, float r, const float *w,
                                   const float *b, int one_plus, int n) {
    if (w && b) {
        if (one_plus)
            for (int i = 0; i < n; i++)
                y[i] = (x[i] - c) * r * (1.0f + w[i]) + b[i];
        else
            for (int i = 0; i < n; i++)
                y[i] = (x[i] - c) * r * w[i] + b[i];
    } else if (w) {
        if (one_plus)
            for (int i = 0; i < n; i++)
                y[i] = (x[i] - c) * r * (1.0f + w[i]);
        else
            for (int i = 0; i < n; i++)
                y[i] = (x[i] - c) * r * w[i];
    } else {
        for (int i = 0; i < n; i++)
            y[i] = (x[i] - c) * r;
    }
}
PI0_VEC static float row_max(const float *x, int n) {
    float acc[16];
    int i = 0;
    float m = -INFINITY;
    for (int j = 0; j < 16; j++)
        acc[j] = -INFINITY;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++)
            acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    for (int j = 0; j < 16; j++)
        m = acc[j] > m ? acc[j] : m;
    return m;
}
/* x = exp(x - m); returns the sum */
PI0_VEC static float row_exp_sum(float *x, float m, int n) {
    float acc[16] = {0};
    int i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) {
            float e = pi0__expf(x[i + j] - m);
            x[i + j] = e;
            acc[j] += e;
        }
    float s = 0;
    for (; i < n; i++) {
        x[i] = pi0__expf(x[i] - m);
        s += x[i];
    }
    for (int j = 0; j < 16; j++)
        s += acc[j];
    return s;
}
PI0_VEC static void row_mask_u8(float *s, const uint8_t *m, int n) {
    for (int i = 0; i < n; i++)
        s[i] = m[i] ? s[i] : PI0__MASKED_SCORE;
}
PI0_VEC static void row_mask_f32(float *s, const float *m, int n) {
    for (int i = 0; i < n; i++) {
        float v = s[i] + m[i];
        s[i] = v < PI0__MASKED_SCORE ? PI0__MASKED_SCORE : v; /* -inf becomes finite */
    }
}

// ---- row-parallel driver ----

typedef void (*rows_fn)(const cpu_args *a, int r0, int r1);

typedef struct rows_ctx {
    const cpu_args *a;
    rows_fn fn;
    int rows, per;
} rows_ctx;

static void rows_task(void *ctx, int t, int thread) {
    rows_ctx *c = ctx;
    int r0 = t * c->per, r1 = r0 + c->per < c->rows ? r0 + c->per : c->rows;
    c->fn(c->a, r0, r1);
}

/* Splits rows [0, rows) over the pool when the work (rows*cols) is worth waking it: a
 * wake-up costs ~10-20 us, about what one thread needs for 64K elements. */
#define PAR_MIN_WORK (1L << 16)
static void par_rows(cpu_dev *d, const cpu_args *a, int rows, int cols, rows_fn fn) {
    long work = (long)rows * cols;
    int tasks = 1;
    if (work >= PAR_MIN_WORK && d->n_threads > 1) {
        tasks = d->n_threads * 4;
        if (tasks > rows) tasks = rows;
    }
    rows_ctx c = {a, fn, rows, (rows + tasks - 1) / tasks};
    tasks = (rows + c.per - 1) / c.per;
    pi0__pool_run(&d->pool, rows_task, &c, tasks);
}

#define F(mi, r, c) ((float *)cpu_at(a->m[mi], (r), (c)))
/* row r of a [1, cols] or [rows, cols] operand */
#define FB(mi, r) ((float *)cpu_at(a->m[mi], a->m[mi].rows == 1 ? 0 : (r), 0))

// ---- norms ----

static void layernorm_rows(const cpu_args *a, int r0, int r1) {
    int n = a->m[1].cols;
    for (int r = r0; r < r1; r++) {
        const float *x = F(1, r, 0);
        float mean = row_sum(x, n, 0, 0) / (float)n;
        float var = row_sum(x, n, 2, mean) / (float)n;
        row_norm_apply(F(0, r, 0), x, mean, 1.0f / sqrtf(var + a->f[0]), F(2, 0, 0), F(3, 0, 0),
                       0, n);
    }
}

int pi0__cpu_layernorm(cpu_dev *d, const cpu_args *a) {
    par_rows(d, a, a->m[1].rows, a->m[1].cols, layernorm_rows);
    return PI0_OK;
}

static void rmsnorm_rows(const cpu_args *a, int r0, int r1) {
    int n = a->m[1].cols;
    for (int r = r0; r < r1; r++) {
        const float *x = F(1, r, 0);
        float ms = row_sum(x, n, 1, 0) / (float)n;
        row_norm_apply(F(0, r, 0), x, 0, 1.0f / sqrtf(ms + a->f[0]), F(2, 0, 0), NULL, 1, n);
    }
}

int pi0__cpu_rmsnorm(cpu_dev *d, const cpu_args *a) {
    par_rows(d, a, a->m[1].rows, a->m[1].cols, rmsnorm_rows);
    return PI0_OK;
}

static void rmsnorm_ada_rows(const cpu_args *a, int r0, int r1) {
    int n = a->m[1].cols;
    for (int r = r0; r < r1; r++) {
        const float *x = F(1, r, 0);
        float ms = row_sum(x, n, 1, 0) / (float)n;
        row_norm_apply(F(0, r, 0), x, 0, 1.0f / sqrtf(ms + a->f[0]), FB(2, r), FB(3, r), 1, n);
    }
}

int pi0__cpu_rmsnorm_ada(cpu_dev *d, const cpu_args *a) {
    par_rows(d, a, a->m[1].rows, a->m[1].cols, rmsnorm_ada_rows);
    return PI0_OK;
}

// ---- elementwise ----

static void gated_add_rows(const cpu_args *a, int r0, int r1) {
    for (int r = r0; r < r1; r++)
        row_gated_add(F(0, r, 0), FB(1, r), F(2, r, 0), a->m[0].cols);
}

int pi0__cpu_gated_add(cpu_dev *d, const cpu_args *a) {
    par_rows(d, a, a->m[0].rows, a->m[0].cols, gated_add_rows);
    return PI0_OK;
}

static void unary_rows(const cpu_args *a, int r0, int r1) {
    int n = a->m[0].cols;
    for (int r = r0; r < r1; r++) {
        float *y = F(0, r, 0);
        const float *x = F(1, r, 0);
        switch ((pi0_unop)a->i[0]) {
        case PI0_UN_GELU_TANH:
            row_gelu(y, x, n);
            break;
        case PI0_UN_SILU:
            row_silu(y, x, n);
            break;
        case PI0_UN_SCALE:
            row_scale(y, x, a->f[0], n);
            break;
        }
    }
}

int pi0__cpu_unary(cpu_dev *d, const cpu_args *a) {
    par_rows(d, a, a->m[0].rows, a->m[0].cols, unary_rows);
    return PI0_OK;
}

static void binary_rows(const cpu_args *a, int r0, int r1) {
    int n = a->m[0].cols;
    for (int r = r0; r < r1; r++) {
        if (a->i[0] == PI0_BIN_ADD)
            pi0__row_add(F(0, r, 0), F(1, r, 0), FB(2, r), n);
        else
            row_mul(F(0, r, 0), F(1, r, 0), FB(2, r), n);
    }
}

int pi0__cpu_binary(cpu_dev *d, const cpu_args *a) {
    par_rows(d, a, a->m[0].rows, a->m[0].cols, binary_rows);
    return PI0_OK;
}

static void geglu_rows(const cpu_args *a, int r0, int r1) {
    for (int r = r0; r < r1; r++)
        row_geglu(F(0, r, 0), F(1, r, 0), F(2, r, 0), a->m[0].cols);
}

int pi0__cpu_geglu(cpu_dev *d, const cpu_args *a) {
    par_rows(d, a, a->m[0].rows, a->m[0].cols, geglu_rows);
    return PI0_OK;
}

// ---- RoPE ----

#define ROPE_TABLE_POS 16384 /* positions [0, this) come from the table, others direct */

/* cos/sin(pos * theta^(-2j/hd)) rows, the angle in double (positions up to ~1e4 keep full
 * f32 accuracy), the same expression as the direct path: the table changes no bit. */
static void rope_angles(float *c, float *s, int32_t p, double theta, int hd) {
    int half = hd / 2;
    for (int j = 0; j < half; j++) {
        double ang = (double)p * pow(theta, -2.0 * j / hd);
        c[j] = (float)cos(ang);
        s[j] = (float)sin(ang);
    }
}

/* d->rope_tab covers (theta, hd) for positions [0, need): rebuilt when theta or hd change
 * or a position is past its end (sized to the next power of two, at least 1024). Runs
 * under the compute lock (a kernel's calling thread, or pi0_dev_reserve_rope at load), so
 * no kernel reads it meanwhile.
 * 0 when the table cannot be allocated (the kernel then computes angles directly). */
int pi0__cpu_rope_table(cpu_dev *d, float theta, int hd, int need) {
    if (need > ROPE_TABLE_POS) need = ROPE_TABLE_POS;
    if (d->rope_tab && d->rope_theta == theta && d->rope_hd == hd && d->rope_npos >= need)
        return 1;
    int npos = 1024;
    while (npos < need)
        npos *= 2;
    float *t = malloc((size_t)npos * (size_t)hd * sizeof *t);
    if (!t) return 0;
    for (int p = 0; p < npos; p++)
        rope_angles(t + (size_t)p * hd, t + (size_t)p * hd + hd / 2, p, theta, hd);
    free(d->rope_tab);
    d->rope_tab = t;
    d->rope_theta = theta;
    d->rope_hd = hd;
    d->rope_npos = npos;
    return 1;
}

/* rotates the pairs (j, j + half) of every head of one token's row by the angles c, s */
PI0_VEC static void rope_row(float *x, int nh, int hd, const float *c, const float *s) {
    int half = hd / 2;
    for (int h = 0; h < nh; h++) {
        float *xh = x + (size_t)h * hd;
        for (int j = 0; j < half; j++) {
            float u = xh[j], v = xh[j + half];
            xh[j] = u * c[j] - v * s[j];
            xh[j + half] = v * c[j] + u * s[j];
        }
    }
}

typedef struct rope_ctx {
    const cpu_args *a;
    const float *tab; /* cpu_dev.rope_tab, or NULL */
    int npos, rows, per;
} rope_ctx;

/* q (m[0], i[0] heads) and, with has_opt, k (m[2], i[2] heads) of tokens [r0, r1): one
 * pass over the tokens, each token's cos/sin row read once for both */
static void rope_task(void *ctx, int t, int thread) {
    const rope_ctx *c = ctx;
    const cpu_args *a = c->a;
    int nh = a->i[0], hd = a->i[1], nkv = a->has_opt ? a->i[2] : 0, half = hd / 2;
    int r0 = t * c->per, r1 = r0 + c->per < c->rows ? r0 + c->per : c->rows;
    (void)thread;
    for (int r = r0; r < r1; r++) {
        int32_t p = cpu_i32_at(a->m[1], r);
        float *q = F(0, r, 0), *k = nkv ? F(2, r, 0) : NULL;
        if (c->tab && p >= 0 && p < c->npos) {
            const float *cs = c->tab + (size_t)p * hd;
            rope_row(q, nh, hd, cs, cs + half);
            if (k) rope_row(k, nkv, hd, cs, cs + half);
            continue;
        }
        for (int j = 0; j < half; j++) { /* outside the table: one angle at a time */
            double ang = (double)p * pow((double)a->f[0], -2.0 * j / hd);
            float cj = (float)cos(ang), sj = (float)sin(ang);
            for (int h = 0; h < nh + nkv; h++) {
                float *xh = h < nh ? q + (size_t)h * hd : k + (size_t)(h - nh) * hd;
                float u = xh[j], v = xh[j + half];
                xh[j] = u * cj - v * sj;
                xh[j + half] = v * cj + u * sj;
            }
        }
    }
}

int pi0__cpu_rope(cpu_dev *d, const cpu_args *a) {
    int rows = a->m[0].rows, maxp = -1;
    for (int r = 0; r < rows; r++) {
        int32_t p = cpu_i32_at(a->m[1], r);
        if (p > maxp) maxp = p;
    }
    rope_ctx c = {.a = a, .rows = rows};
    if (maxp >= 0 && pi0__cpu_rope_table(d, a->f[0], a->i[1], maxp + 1)) {
        c.tab = d->rope_tab;
        c.npos = d->rope_npos;
    }
    long cols = a->m[0].cols + (a->has_opt ? a->m[2].cols : 0);
    int tasks = 1;
    if ((long)rows * cols >= PAR_MIN_WORK && d->n_threads > 1)
        tasks = d->n_threads * 4 < rows ? d->n_threads * 4 : rows;
    c.per = (rows + tasks - 1) / tasks;
    pi0__pool_run(&d->pool, rope_task, &c, (rows + c.per - 1) / c.per);
    return PI0_OK;
}

// ---- attention ----

#define ATT_TILE_ROWS 128 /* query rows (token, head) per tile */

/* per query token: its group's scaled queries [g, hd], scores [g, nk], outputs [g, hd] */
size_t pi0__cpu_attention_scratch(int n_k, int head_dim, int group) {
    return (size_t)group * ((size_t)n_k + 2 * (size_t)head_dim);
}

int pi0__cpu_attention_tile(int group) {
    return ATT_TILE_ROWS / group > 0 ? ATT_TILE_ROWS / group : 1;
}

typedef struct att_ctx {
    cpu_dev *d;
    const cpu_args *a;
    int nq, nk, nh, nkv, hd, g, tile_tok, n_tiles;
    int direct; /* q·kᵀ on the direct kernel (pi0__cpu_gemm_direct of a whole tile) */
} att_ctx;

static void att_task(void *ctx, int task, int thread) {
    att_ctx *c = ctx;
    const cpu_args *a = c->a;
    int j = task / c->n_tiles, t0 = (task % c->n_tiles) * c->tile_tok;
    int t1 = t0 + c->tile_tok < c->nq ? t0 + c->tile_tok : c->nq;
    int hd = c->hd, g = c->g, nk = c->nk, rows = (t1 - t0) * g;
    float *qs = cpu_scratch(c->d, thread); /* [rows, hd] scaled queries */
    float *sc = qs + (size_t)rows * hd;    /* [rows, nk] scores, then probabilities */
    float *os = sc + (size_t)rows * nk;    /* [rows, hd] outputs */
    pi0_mat q = a->m[1], k = a->m[2], v = a->m[3], out = a->m[0];
    for (int t = t0; t < t1; t++)
        for (int h = 0; h < g; h++)
            row_scale(qs + ((size_t)(t - t0) * g + h) * hd, cpu_at(q, t, (j * g + h) * hd),
                      a->f[0], hd);
    pi0__cpu_sgemm_nt(c->direct, rows, nk, hd, qs, hd, cpu_at(k, 0, j * hd), k.ld, sc, nk, 0);
    for (int r = 0; r < rows; r++) {
        float *s = sc + (size_t)r * nk;
        int t = t0 + r / g;
        if (a->has_opt) {
            if (a->m[4].dtype == PI0_U8)
                row_mask_u8(s, cpu_at(a->m[4], t, 0), nk);
            else
                row_mask_f32(s, cpu_at(a->m[4], t, 0), nk);
        }
        float m = row_max(s, nk);
        float sum = row_exp_sum(s, m, nk);
        row_scale(s, s, 1.0f / sum, nk);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, hd, nk, 1.0f, sc, nk,
                cpu_at(v, 0, j * hd), v.ld, 0.0f, os, hd);
    for (int t = t0; t < t1; t++)
        memcpy(cpu_at(out, t, j * g * hd), os + (size_t)(t - t0) * g * hd,
               (size_t)g * hd * sizeof(float));
}

int pi0__cpu_attention(cpu_dev *d, const cpu_args *a) {
    att_ctx c = {.d = d,
                 .a = a,
                 .nq = a->m[1].rows,
                 .nk = a->m[2].rows,
                 .nh = a->i[0],
                 .nkv = a->i[1],
                 .hd = a->i[2]};
    c.g = c.nh / c.nkv;
    size_t per_tok = pi0__cpu_attention_scratch(c.nk, c.hd, c.g);
    size_t fit = cpu_scratch_bytes(d) / sizeof(float) / per_tok;
    int want = pi0__cpu_attention_tile(c.g);
    c.tile_tok = fit < (size_t)want ? (int)fit : want;
    /* the enqueue side checked one token fits, and the scratch only grows */
    PI0_ASSERT(c.tile_tok >= 1);
    /* enough tiles to keep every thread busy, unless the whole op is too small to share */
    double work = (double)c.nq * c.nh * c.nk * c.hd;
    int min_tiles = work < (1 << 19) ? 1 : d->n_threads * 2;
    while (c.tile_tok > 1 && (long)c.nkv * ((c.nq + c.tile_tok - 1) / c.tile_tok) < min_tiles)
        c.tile_tok = (c.tile_tok + 1) / 2;
    c.n_tiles = (c.nq + c.tile_tok - 1) / c.tile_tok;
    c.direct = pi0__cpu_gemm_direct(d, c.tile_tok * c.g);
    pi0__pool_run(&d->pool, att_task, &c, c.nkv * c.n_tiles);
    return PI0_OK;
}

// ---- gather ----

typedef struct gather_ctx {
    const cpu_args *a;
    atomic_int bad_row; /* lowest row with a bad id + 1, or 0 */
} gather_ctx;

static void gather_task(void *ctx, int t, int thread) {
    gather_ctx *c = ctx;
    const cpu_args *a = c->a;
    const pi0_weight *w = a->w;
    int n = a->m[0].rows, per = 64, r1 = (t + 1) * per < n ? (t + 1) * per : n;
    for (int r = t * per; r < r1; r++) {
        int32_t id = cpu_i32_at(a->m[1], r);
        float *y = F(0, r, 0);
        if (id < 0 || id >= w->n) {
            memset(y, 0, (size_t)w->k * sizeof(float));
            /* keep the lowest bad row: tasks run in any order */
            int seen = atomic_load_explicit(&c->bad_row, memory_order_relaxed);
            while ((seen == 0 || seen > r + 1) &&
                   !atomic_compare_exchange_weak(&c->bad_row, &seen, r + 1)) {
            }
            continue;
        }
        /* a packed weight is read from its rows, which the caller keeps */
        const void *src = w->packed ? w->host : w->impl;
        size_t row = (size_t)id * (size_t)w->ld;
        pi0_dtype dt = w->packed ? w->host_dtype : w->dtype;
        if (dt == PI0_BF16)
            pi0__row_bf16_to_f32(y, (const uint16_t *)src + row, a->f[0], w->k);
        else if (dt == PI0_F16)
            for (int i = 0; i < w->k; i++)
                y[i] = pi0_f16_to_f32(((const uint16_t *)src)[row + (size_t)i]) * a->f[0];
        else
            row_scale(y, (const float *)src + row, a->f[0], w->k);
    }
}

int pi0__cpu_gather(cpu_dev *d, const cpu_args *a) {
    gather_ctx c = {.a = a};
    atomic_init(&c.bad_row, 0);
    int n = a->m[0].rows;
    pi0__pool_run(&d->pool, gather_task, &c, (n + 63) / 64);
    int bad = atomic_load(&c.bad_row);
    if (bad) {
        int r = bad - 1;
        int32_t id = cpu_i32_at(a->m[1], r);
        return pi0_errorf(PI0_ERANGE, "pi0_dev_gather: ids[%d] = %d outside [0, %d)", r, id,
                          a->w->n);
    }
    return PI0_OK;
}

// ---- 2-D copy ----

static void copy_rows(const cpu_args *a, int r0, int r1) {
    size_t bytes = (size_t)a->m[0].cols * pi0_dtype_size(a->m[0].dtype);
    for (int r = r0; r < r1; r++)
        memcpy(cpu_at(a->m[0], r, 0), cpu_at(a->m[1], r, 0), bytes);
}

int pi0__cpu_copy_mat(cpu_dev *d, const cpu_args *a) {
    par_rows(d, a, a->m[0].rows,
             (int)((size_t)a->m[0].cols * pi0_dtype_size(a->m[0].dtype) / 4), copy_rows);
    return PI0_OK;
}
