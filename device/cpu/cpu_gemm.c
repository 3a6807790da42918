/* cpu_gemm.c — y = act(x · Wᵀ + b) (+ y) on the cpu backend.
 *
 * Weights packed at creation (x86-64 CPUs with AVX2 or AVX-512: cpu_dev.pack) run on
 * cpu_gemm_packed.c (gemm_packed below). Row-major weights (the portable path; tables):
 * the output columns are split into blocks of nb weight rows, spread over the pool; each
 * thread computes its block, then the bias/activation epilogue while it is still warm.
 *   - m <= 64 rows, or on AVX-512 CPUs any m when OpenBLAS's selected kernels are not
 *     AVX-512 ones: cpu_gemm_avx512.c / cpu_gemm_avx2.c read the f32/bf16 weight rows
 *     directly (no packing; for bf16, 2 bytes per element is the win).
 *   - f32 weights otherwise: sgemm straight on the borrowed (mmapped) rows.
 *   - bf16 weights otherwise: never expanded as a whole. Each thread converts a panel of
 *     nb rows x kb columns of W to f32 in its scratch and calls sgemm on it, accumulating
 *     over the k panels (beta 1), so weight memory stays 2 bytes per element.
 *   - accumulate with an activation: computed per tile of rows into scratch, then added. */
#include <cblas.h>
#include <string.h>

#include "cpu.h"
#include "cpu_vec.h"

/* y (+)= act(t + b) for act GELU_TANH or SILU (PI0_ACT_NONE never gets here: a plain
 * bias is row_add); b may be NULL */
PI0_VEC static void epi_act(float *y, const float *t, const float *b, int act, int acc, int n) {
    if (act == PI0_ACT_GELU_TANH) {
        if (acc)
            for (int i = 0; i < n; i++)
                y[i] += pi0__gelu_tanh(t[i] + (b ? b[i] : 0.f));
        else
            for (int i = 0; i < n; i++)
                y[i] = pi0__gelu_tanh(t[i] + (b ? b[i] : 0.f));
    } else {
        if (acc)
            for (int i = 0; i < n; i++)
                y[i] += pi0__silu(t[i] + (b ? b[i] : 0.f));
        else
            for (int i = 0; i < n; i++)
                y[i] = pi0__silu(t[i] + (b ? b[i] : 0.f));
    }
}

#define SMALL_M 64
/* m*n*k below which one thread does the whole GEMM (a pool wake-up costs ~10-20 us) */
#define GEMM_PAR_MIN_FLOP (1 << 20)
/* rows*k below which one thread packs all of x (a copy of 64K floats ~ a pool wake-up) */
#define PAR_MIN_PACK (1 << 16)

typedef struct gemm_ctx {
    cpu_dev *d;
    int m, n, k;
    const float *x;
    int ldx;
    float *y;
    int ldy;
    const pi0_weight *w;
    const float *bias;
    int act, acc;
    int nb;     /* output columns per task */
    int kb;     /* k columns per bf16 panel */
    int mt;     /* rows per tile when accumulating with an activation */
    int direct; /* every block with a direct kernel: pi0__cpu_gemm_direct */
} gemm_ctx;

/* The direct AVX-512 kernel (~1.4x OpenBLAS's AVX2 kernels at the model's shapes) wins
 * for few rows everywhere; for many rows it loses to OpenBLAS's AVX-512 kernels, so it
 * runs there only when OpenBLAS has none selected (cpu_dev.direct_large). */
int pi0__cpu_gemm_direct(const cpu_dev *d, int m) {
#ifdef PI0_HAVE_AVX512_GEMM
    if (d->isa == CPU_ISA_AVX512 && (m <= SMALL_M || d->direct_large)) return CPU_ISA_AVX512;
    if (d->isa == CPU_ISA_AVX2 && m <= SMALL_M) return CPU_ISA_AVX2;
    return 0;
#else
    (void)d, (void)m;
    return 0;
#endif
}

void pi0__cpu_sgemm_nt(int direct, int m, int n, int k, const float *x, int ldx, const float *w,
                       int ldw, float *t, int ldt, int beta1) {
#ifdef PI0_HAVE_AVX512_GEMM
    if (direct == CPU_ISA_AVX512) {
        pi0__gemm_f32_smallm_avx512(m, n, k, x, ldx, w, ldw, t, ldt, beta1);
        return;
    }
    if (direct == CPU_ISA_AVX2) {
        pi0__gemm_f32_smallm_avx2(m, n, k, x, ldx, w, ldw, t, ldt, beta1);
        return;
    }
#endif
    (void)direct;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, x, ldx, w, ldw,
                beta1 ? 1.0f : 0.0f, t, ldt);
}

/* t[m, nn] (beta1: 0 overwrite, 1 add) = x[m, k] · W[n0:n0+nn, :]ᵀ */
static void block_gemm(const gemm_ctx *c, float *panel, int m, const float *x, int n0, int nn,
                       float *t, int ldt, int beta1) {
    const pi0_weight *w = c->w;
    if (w->dtype == PI0_F32) {
        pi0__cpu_sgemm_nt(c->direct, m, nn, c->k, x, c->ldx,
                          (const float *)w->impl + (size_t)n0 * (size_t)w->ld, w->ld, t, ldt,
                          beta1);
        return;
    }
    const uint16_t *wb = (const uint16_t *)w->impl + (size_t)n0 * (size_t)w->ld;
#ifdef PI0_HAVE_AVX512_GEMM
    if (c->direct == CPU_ISA_AVX512) {
        pi0__gemm_bf16_smallm_avx512(m, nn, c->k, x, c->ldx, wb, w->ld, t, ldt, beta1);
        return;
    }
    if (c->direct == CPU_ISA_AVX2) {
        pi0__gemm_bf16_smallm_avx2(m, nn, c->k, x, c->ldx, wb, w->ld, t, ldt, beta1);
        return;
    }
#endif
    for (int k0 = 0; k0 < c->k; k0 += c->kb) {
        int kk = c->k - k0 < c->kb ? c->k - k0 : c->kb;
        for (int r = 0; r < nn; r++)
            pi0__row_bf16_to_f32(panel + (size_t)r * kk, wb + (size_t)r * (size_t)w->ld + k0,
                                 1.0f, kk);
        pi0__cpu_sgemm_nt(0, m, nn, kk, x + k0, c->ldx, panel, kk, t, ldt, k0 ? 1 : beta1);
    }
}

static void gemm_task(void *ctx, int task, int thread) {
    const gemm_ctx *c = ctx;
    int n0 = task * c->nb, nn = c->n - n0 < c->nb ? c->n - n0 : c->nb;
    float *scr = cpu_scratch(c->d, thread);
    const float *b = c->bias ? c->bias + n0 : NULL;
    if (c->act != PI0_ACT_NONE && c->acc) {
        float *t = scr, *panel = scr + (size_t)c->mt * c->nb;
        for (int r0 = 0; r0 < c->m; r0 += c->mt) {
            int mm = c->m - r0 < c->mt ? c->m - r0 : c->mt;
            block_gemm(c, panel, mm, c->x + (size_t)r0 * c->ldx, n0, nn, t, nn, 0);
            for (int r = 0; r < mm; r++)
                epi_act(c->y + (size_t)(r0 + r) * c->ldy + n0, t + (size_t)r * nn, b, c->act, 1,
                        nn);
        }
        return;
    }
    float *y = c->y + n0;
    block_gemm(c, scr, c->m, c->x, n0, nn, y, c->ldy, c->acc);
    if (c->act != PI0_ACT_NONE) {
        for (int r = 0; r < c->m; r++)
            epi_act(y + (size_t)r * c->ldy, y + (size_t)r * c->ldy, b, c->act, 0, nn);
    } else if (b) {
        for (int r = 0; r < c->m; r++)
            pi0__row_add(y + (size_t)r * c->ldy, y + (size_t)r * c->ldy, b, nn);
    }
}

// ---- packed weights (cpu_gemm_packed.c) ----

#ifdef PI0_HAVE_AVX512_GEMM
#define PK_MAX_TASKS 256

/* One product of a (multi-)GEMM: its weight and output; y is the current block's row 0. */
typedef struct pk_part {
    pi0__pk_job job;
    pi0_mat ym;
    float *y;
} pk_part;

typedef struct pk_ctx {
    cpu_dev *d;
    int n_parts;
    pk_part part[PI0_GEMM_MULTI_MAX];
    pi0_mat xm;
    const float *x; /* the block's first row */
    int rows, k, round;
    int x_fmt, x_steps; /* how x is packed (PI0__PK_F32 or _BF16X2), k steps per row */
    const float *bias;  /* bias, act, acc: single product only */
    int act, acc;
    int groups; /* row groups of 6 per packing task */
    int n_tasks, chunk;
    unsigned char task_part[PK_MAX_TASKS];
    int task_p0[PK_MAX_TASKS];
} pk_ctx;

typedef struct pk_done_ctx {
    const pk_ctx *c;
    const float *t; /* act over an accumulated output: the thread's tile, else NULL */
    int ldt, p0;
} pk_done_ctx;

/* bias and activation on the block's columns of panel p, once its sums are complete */
static void pk_epilogue(const pi0__pk_job *j, int p, void *ctx) {
    const pk_done_ctx *e = ctx;
    const pk_ctx *c = e->c;
    int c0 = p * PI0__PK_NR, nn = j->n - c0 < PI0__PK_NR ? j->n - c0 : PI0__PK_NR;
    const float *b = c->bias ? c->bias + c0 : NULL;
    for (int r = 0; r < j->rows; r++) {
        float *y = c->part[0].y + (size_t)r * (size_t)c->part[0].ym.ld + c0;
        if (e->t)
            epi_act(y, e->t + (size_t)r * (size_t)e->ldt + (size_t)(p - e->p0) * PI0__PK_NR, b,
                    c->act, 1, nn);
        else if (c->act != PI0_ACT_NONE)
            epi_act(y, y, b, c->act, 0, nn);
        else
            pi0__row_add(y, y, b, nn);
    }
}

static void pk_pack_task(void *ctx, int t, int thread) {
    (void)thread;
    const pk_ctx *c = ctx;
    int r0 = t * c->groups * PI0__PK_MR, rows = c->rows - r0;
    if (rows > c->groups * PI0__PK_MR) rows = c->groups * PI0__PK_MR;
    pi0__pk_x(c->d->pk_x + (size_t)r0 * (size_t)c->x_steps,
              c->x + (size_t)r0 * (size_t)c->xm.ld, c->xm.ld, rows, c->k, c->x_fmt, c->round);
}

static void pk_task(void *ctx, int t, int thread) {
    const pk_ctx *c = ctx;
    const pk_part *pt = &c->part[c->task_part[t]];
    int np = (pt->job.n + PI0__PK_NR - 1) / PI0__PK_NR;
    int p0 = c->task_p0[t], p1 = p0 + c->chunk < np ? p0 + c->chunk : np;
    float *scr = cpu_scratch(c->d, thread), *tmp = scr;
    int need_epi = c->bias || c->act != PI0_ACT_NONE;
    pk_done_ctx e = {.c = c, .p0 = p0};
    if (c->act != PI0_ACT_NONE && c->acc) { /* sums to a tile first, then y += act(...) */
        e.t = scr + PI0__PK_TMP;
        e.ldt = c->chunk * PI0__PK_NR;
        pi0__pk_run_chunk(&pt->job, p0, p1, (float *)e.t, e.ldt, 0, tmp, pk_epilogue, &e);
        return;
    }
    pi0__pk_run_chunk(&pt->job, p0, p1, pt->y + (size_t)p0 * PI0__PK_NR, pt->ym.ld, c->acc, tmp,
                      need_epi ? pk_epilogue : NULL, &e);
}

/* ys[i] = x · ws[i]ᵀ (+ bias, act, acc when there is one product), all weights packed:
 * per block of rows, x is packed once (by all threads) and one parallel region computes
 * every product, in chunks of weight panels. */
static int gemm_packed(cpu_dev *d, int n_parts, const pi0_mat *ys, pi0_mat x,
                       const pi0_weight *const *ws, const float *bias, int act, int acc) {
    int nt = d->n_threads, np_all = 0;
    double flop = 0;
    pk_ctx c = {.d = d,
                .n_parts = n_parts,
                .xm = x,
                .k = x.cols,
                .round = d->precision == PI0_PRECISION_BF16,
                .x_fmt = d->pk_dp ? PI0__PK_BF16X2 : PI0__PK_F32,
                .x_steps = d->pk_dp ? (x.cols + 1) / 2 : x.cols,
                .bias = bias,
                .act = act,
                .acc = acc};
    for (int i = 0; i < n_parts; i++) {
        c.part[i].job = (pi0__pk_job){.xp = d->pk_x,
                                      .n = ws[i]->n,
                                      .k = ws[i]->k,
                                      .w = ws[i]->impl,
                                      .fmt = ws[i]->dtype == PI0_F32 ? PI0__PK_F32
                                             : d->pk_dp              ? PI0__PK_BF16X2
                                                                     : PI0__PK_BF16,
                                      .kern = d->pk_kern};
        c.part[i].ym = ys[i];
        np_all += (ws[i]->n + PI0__PK_NR - 1) / PI0__PK_NR;
        flop += (double)x.rows * ws[i]->n * ws[i]->k;
    }
    /* chunks of panels: about 4 per thread so that a thread slowed by another process
     * leaves its share to the others; one task when the product is too small to wake the
     * pool for */
    int tasks = flop < GEMM_PAR_MIN_FLOP ? 1 : 4 * nt;
    if (tasks > PK_MAX_TASKS - n_parts) tasks = PK_MAX_TASKS - n_parts;
    c.chunk = (np_all + tasks - 1) / tasks;
    if (d->pk_kern != PI0__PK_AVX2) c.chunk += c.chunk & 1; /* whole tiles of 2 panels */
    /* equal row blocks of at most PI0__PK_MC rows: each block streams every weight once
     * more from memory, so as few blocks as fit */
    int n_blocks = (x.rows + PI0__PK_MC - 1) / PI0__PK_MC;
    int mc = ((x.rows + n_blocks - 1) / n_blocks + PI0__PK_MR - 1) / PI0__PK_MR * PI0__PK_MR;
    if (act != PI0_ACT_NONE && acc) { /* the per-thread tile: the block's rows x the chunk */
        size_t fit =
            (cpu_scratch_bytes(d) / sizeof(float) - PI0__PK_TMP) / ((size_t)mc * PI0__PK_NR);
        if (fit < 1) return pi0_errorf(PI0_ENOMEM, "pi0_dev_gemm: scratch too small");
        if ((size_t)c.chunk > fit) c.chunk = (int)fit;
        if ((np_all + c.chunk - 1) / c.chunk > PK_MAX_TASKS - n_parts)
            return pi0_errorf(PI0_ENOMEM, "pi0_dev_gemm: scratch too small");
    }
    for (int i = 0; i < n_parts; i++)
        for (int p0 = 0; p0 < (c.part[i].job.n + PI0__PK_NR - 1) / PI0__PK_NR; p0 += c.chunk) {
            c.task_part[c.n_tasks] = (unsigned char)i;
            c.task_p0[c.n_tasks++] = p0;
        }
    for (int r0 = 0; r0 < x.rows; r0 += mc) {
        c.rows = x.rows - r0 < mc ? x.rows - r0 : mc;
        c.x = cpu_at(x, r0, 0);
        for (int i = 0; i < n_parts; i++) {
            c.part[i].job.rows = c.rows;
            c.part[i].y = cpu_at(ys[i], r0, 0);
        }
        int groups = (c.rows + PI0__PK_MR - 1) / PI0__PK_MR;
        c.groups = (groups + nt - 1) / nt;
        if ((double)c.rows * c.k < PAR_MIN_PACK) c.groups = groups;
        pi0__pool_run(&d->pool, pk_pack_task, &c, (groups + c.groups - 1) / c.groups);
        pi0__pool_run(&d->pool, pk_task, &c, c.n_tasks);
    }
    return PI0_OK;
}
#endif

int pi0__cpu_gemm(cpu_dev *d, const cpu_args *a) {
#ifdef PI0_HAVE_AVX512_GEMM
    if (a->w->packed)
        return gemm_packed(d, 1, &a->m[0], a->m[1], &a->w,
                           a->has_opt ? cpu_at(a->m[2], 0, 0) : NULL, a->i[0], a->i[1]);
#endif
    pi0_mat y = a->m[0], x = a->m[1];
    const pi0_weight *w = a->w;
    gemm_ctx c = {.d = d,
                  .m = x.rows,
                  .n = w->n,
                  .k = w->k,
                  .x = cpu_at(x, 0, 0),
                  .ldx = x.ld,
                  .y = cpu_at(y, 0, 0),
                  .ldy = y.ld,
                  .w = w,
                  .bias = a->has_opt ? cpu_at(a->m[2], 0, 0) : NULL,
                  .act = a->i[0],
                  .acc = a->i[1]};
    c.direct = pi0__cpu_gemm_direct(d, c.m);
    /* Blocks of output columns. For sgemm: a multiple of the thread count, at most ~1024
     * wide (each call packs x again). The direct kernel packs nothing: 128-wide or smaller
     * blocks, at least 8 per thread, so a thread slowed down by another process leaves its
     * share to the others. */
    int nt = d->n_threads, tasks, nb;
    if (c.direct) {
        tasks = (c.n + 127) / 128;
        if (tasks < 8 * nt) tasks = 8 * nt < (c.n + 15) / 16 ? 8 * nt : (c.n + 15) / 16;
        tasks = (tasks + nt - 1) / nt * nt;
    } else {
        tasks = nt * ((c.n + nt * 1024 - 1) / (nt * 1024));
    }
    if ((double)c.m * c.n * c.k < GEMM_PAR_MIN_FLOP) tasks = 1; /* not worth waking the pool */
    nb = (c.n + tasks - 1) / tasks;
    nb = (nb + 15) & ~15;
    if (nb > c.n) nb = c.n;
    size_t scr = cpu_scratch_bytes(d) / sizeof(float);
    int need_t = c.act != PI0_ACT_NONE && c.acc;
    if (need_t) { /* row tiles of the output block; the rest of the scratch is the panel */
        c.mt = c.m < 64 ? c.m : 64;
        while (nb > 16 && (size_t)c.mt * nb * 2 > scr)
            nb = (nb / 2 + 15) & ~15;
        while (c.mt > 1 && (size_t)c.mt * nb * 2 > scr)
            c.mt /= 2;
        if ((size_t)c.mt * nb >= scr)
            return pi0_errorf(PI0_ENOMEM, "pi0_dev_gemm: scratch too small");
        scr -= (size_t)c.mt * nb;
    }
    if (w->dtype == PI0_BF16 && !c.direct) {
        /* panel nb x kb floats: at most 1 MiB, and within the scratch */
        size_t cap = scr < (256u << 10) ? scr : (256u << 10);
        while (nb > 16 && (size_t)nb * 64 > cap)
            nb = (nb / 2 + 15) & ~15;
        if ((size_t)nb * 16 > cap)
            return pi0_errorf(PI0_ENOMEM, "pi0_dev_gemm: scratch too small");
        c.kb = (int)(cap / (size_t)nb);
        if (c.kb > c.k) c.kb = c.k;
        if (c.kb < c.k) c.kb &= ~15;
    }
    c.nb = nb;
    pi0__pool_run(&d->pool, gemm_task, &c, (c.n + nb - 1) / nb);
    return PI0_OK;
}

/* a->m[0 .. count) = a->m[count] · a->wm[i]ᵀ, count = a->i[0]: one packed region when every
 * weight is packed, else one product after the other */
int pi0__cpu_gemm_multi(cpu_dev *d, const cpu_args *a) {
    int n = a->i[0];
#ifdef PI0_HAVE_AVX512_GEMM
    int packed = 1;
    for (int i = 0; i < n; i++)
        packed &= a->wm[i]->packed;
    if (packed) return gemm_packed(d, n, a->m, a->m[n], a->wm, NULL, PI0_ACT_NONE, 0);
#endif
    for (int i = 0; i < n; i++) {
        cpu_args one = {.m = {a->m[i], a->m[n]}, .w = a->wm[i]};
        int st = pi0__cpu_gemm(d, &one);
        if (st) return st;
    }
    return PI0_OK;
}
