/* tests/test_ops.c — tests of the CPU ops (engine/ops_cpu.c) and their shared formulas (engine/math.h).
 *
 * 1. For every op, a float64 reference written here from SPEC.md (not from the engine's code): the op's forward
 *    is compared with it, and its float32 analytic backward with central finite differences of the reference
 *    (h = 1e-5 in double; 1e-4 for the KL terms, whose loss reaches 1e4) of L = Σ r·output for a random
 *    projection r (or of the loss itself, times a random upstream factor), on random inputs of awkward sizes
 *    (B = 7, 12, 33; D = 5, 40; k = 1, 5, B − 1). Inputs are kept away from the kinks of ReLU, the lv clamp, the
 *    matching clamps and the top-k boundaries (matching inputs are redrawn until no kink is near). The error
 *    of a gradient is max_i |analytic_i − fd_i| / max_i |fd_i|; the worst per op is printed with the seed
 *    (DEBCM_TEST_SEED overrides it).
 * 2. Specific behaviour: BatchNorm running statistics (unbiased variance) and eval mode, zero rows in the L2
 *    normalisation, the lv clamp, the Philox masks and normals, the top-k tie rule, k capped at B − 1, backwards
 *    accumulating, Adam against a hand-written double version over several steps, the evaluation metrics on
 *    hand-computed cases (ties, a collapsed model scoring everything equal, NaN).
 * 3. Determinism: every op with OpenMP loops (and the OpenBLAS products) run with 1 and with 2 threads gives
 *    bit-identical results.
 * 4. The published code's numbers: one teacher step and one student step of tests/data/fixtures/tiny (copied
 *    from shared/fixtures) composed from the ops — loss terms to 1e-5, gradients to 1e-4, BN running statistics
 *    and the Adam step. argv[1] is tests/data. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h> /* OpenBLAS: openblas_set_num_threads */

#include "check.h"
#include "engine/error.h"
#include "engine/math.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "engine/rng_x86.h"
#include "io/npy.h"

#define GRAD_TOL 1e-4 /* float32 analytic vs float64 finite differences, relative to the gradient's max */
#define FWD_TOL 1e-5  /* float32 forward vs float64 reference, relative to the output's max */
/* step of the central differences in double: truncation ~h², rounding ~1e-16·|L|/h */
static double fd_h = 1e-5;

static const debcm_ops *ops;
static uint64_t test_seed = 20250611;
static uint64_t draw_index;

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_ops: out of memory\n");
        exit(1);
    }
    return p;
}
#define NEWF(n) ((float *)xmalloc((size_t)(n) * sizeof(float)))
#define NEWD(n) ((double *)xmalloc((size_t)(n) * sizeof(double)))

static float urand(float lo, float hi) { return lo + (hi - lo) * rng_uniform(test_seed, 1, draw_index++); }
static void fill(float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = urand(lo, hi);
}
/* uniform in [lo, hi] but at least `gap` away from `kink` */
static void fill_avoid(float *x, int64_t n, float lo, float hi, float kink, float gap)
{
    for (int64_t i = 0; i < n; i++)
        do
            x[i] = urand(lo, hi);
        while (fabsf(x[i] - kink) < gap);
}
static void fill_normal(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = rng_normal(test_seed, 2, draw_index++);
}
static double *to_double(const float *x, int64_t n)
{
    double *d = NEWD(n);
    for (int64_t i = 0; i < n; i++)
        d[i] = x[i];
    return d;
}

/* worst errors per op, printed at the end */
typedef struct {
    char name[40];
    double grad, fwd;
} op_stat;
static op_stat stats[64];
static int nstats;

static op_stat *stat_for(const char *name)
{
    for (int i = 0; i < nstats; i++)
        if (!strcmp(stats[i].name, name))
            return &stats[i];
    if (nstats == 64)
        abort();
    op_stat *s = &stats[nstats++];
    snprintf(s->name, sizeof s->name, "%s", name);
    return s;
}

/* max_i |a_i − b_i| / max_i |b_i| (absolute when b is all zero) */
static double rel_max_err(const float *a, const double *b, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= num)) /* NaN propagates */
            num = e;
        den = fmax(den, fabs(b[i]));
    }
    return den > 0.0 ? num / den : num;
}

static void note_fwd(const char *op, const char *what, const float *a, const double *ref, int64_t n)
{
    double e = rel_max_err(a, ref, n);
    op_stat *s = stat_for(op);
    if (!(e <= s->fwd))
        s->fwd = e;
    CHECK_MSG(e <= FWD_TOL, "%s forward %s: error %.3g > %g (seed %llu)", op, what, e, FWD_TOL,
              (unsigned long long)test_seed);
}

/* The reference: a function of the double arrays in ctx returning a scalar. */
typedef double (*ref_fn)(void *ctx);

/* Central differences of f with respect to p[n] (an array inside ctx) against the analytic gradient ga. */
static void fd_check(const char *op, const char *wrt, ref_fn f, void *ctx, double *p, int64_t n, const float *ga)
{
    double *g = NEWD(n);
    for (int64_t i = 0; i < n; i++) {
        double save = p[i];
        p[i] = save + fd_h;
        double fp = f(ctx);
        p[i] = save - fd_h;
        double fm = f(ctx);
        p[i] = save;
        g[i] = (fp - fm) / (2.0 * fd_h);
    }
    double e = rel_max_err(ga, g, n);
    op_stat *s = stat_for(op);
    if (!(e <= s->grad))
        s->grad = e;
    CHECK_MSG(e <= GRAD_TOL, "%s d/d%s: error %.3g > %g (n %lld, seed %llu)", op, wrt, e, GRAD_TOL, (long long)n,
              (unsigned long long)test_seed);
    free(g);
}

static double dot_d(const double *a, const double *b, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

#define OK(call) CHECK_MSG((call) == 0, "%s", debcm_last_error())

/* ---- 1. linear ------------------------------------------------------------------------------------------------- */

typedef struct {
    double *x, *W, *b, *r;
    int64_t B, in, out;
} linear_ctx;

static void ref_linear(double *y, const linear_ctx *c)
{
    for (int64_t r = 0; r < c->B; r++)
        for (int64_t o = 0; o < c->out; o++) {
            double s = c->b ? c->b[o] : 0.0;
            for (int64_t i = 0; i < c->in; i++)
                s += c->x[r * c->in + i] * c->W[o * c->in + i];
            y[r * c->out + o] = s;
        }
}
static double ref_linear_loss(void *ctx)
{
    linear_ctx *c = ctx;
    double *y = NEWD(c->B * c->out);
    ref_linear(y, c);
    double s = dot_d(y, c->r, c->B * c->out);
    free(y);
    return s;
}

static void test_linear(int64_t B, int64_t in, int64_t out, int with_bias)
{
    float *x = NEWF(B * in), *W = NEWF(out * in), *b = NEWF(out), *r = NEWF(B * out), *y = NEWF(B * out);
    float *dx = NEWF(B * in), *dW = NEWF(out * in), *db = NEWF(out);
    fill(x, B * in, -1, 1);
    fill(W, out * in, -1, 1);
    fill(b, out, -1, 1);
    fill(r, B * out, -1, 1);
    linear_ctx c = {to_double(x, B * in), to_double(W, out * in), with_bias ? to_double(b, out) : NULL,
                    to_double(r, B * out), B, in, out};
    OK(ops->linear_forward(y, x, W, with_bias ? b : NULL, B, in, out));
    double *yr = NEWD(B * out);
    ref_linear(yr, &c);
    note_fwd("linear", "y", y, yr, B * out);
    OK(ops->linear_backward(dx, dW, with_bias ? db : NULL, r, x, W, B, in, out));
    fd_check("linear", "x", ref_linear_loss, &c, c.x, B * in, dx);
    fd_check("linear", "W", ref_linear_loss, &c, c.W, out * in, dW);
    if (with_bias) {
        fd_check("linear", "b", ref_linear_loss, &c, c.b, out, db);
        /* backwards accumulate: a second call doubles the gradients */
        float *dx1 = NEWF(B * in), *db1 = NEWF(out);
        memcpy(dx1, dx, (size_t)(B * in) * sizeof *dx);
        memcpy(db1, db, (size_t)out * sizeof *db);
        OK(ops->linear_backward(dx, NULL, db, r, x, W, B, in, out));
        double worst = 0.0;
        for (int64_t i = 0; i < B * in; i++)
            worst = fmax(worst, fabs(dx[i] - 2.0 * dx1[i]) / (fabs(dx1[i]) + 1e-6));
        for (int64_t i = 0; i < out; i++)
            worst = fmax(worst, fabs(db[i] - 2.0 * db1[i]) / (fabs(db1[i]) + 1e-6));
        CHECK_MSG(worst < 1e-5, "linear_backward does not accumulate: %g", worst);
        free(dx1);
        free(db1);
    }
    free(x); free(W); free(b); free(r); free(y); free(dx); free(dW); free(db); free(yr);
    free(c.x); free(c.W); free(c.b); free(c.r);
}

/* ---- 2. BatchNorm ------------------------------------------------------------------------------------------------ */

typedef struct {
    double *x, *gamma, *beta, *r;
    int64_t B, D;
} bn_ctx;

/* y, and the batch mean and biased/unbiased variance per feature (any of them may be NULL) */
static void ref_bn(double *y, double *mean, double *var_b, double *var_u, const bn_ctx *c)
{
    for (int64_t d = 0; d < c->D; d++) {
        double m = 0.0, q = 0.0;
        for (int64_t r = 0; r < c->B; r++)
            m += c->x[r * c->D + d];
        m /= (double)c->B;
        for (int64_t r = 0; r < c->B; r++)
            q += (c->x[r * c->D + d] - m) * (c->x[r * c->D + d] - m);
        double vb = q / (double)c->B;
        if (mean)
            mean[d] = m;
        if (var_b)
            var_b[d] = vb;
        if (var_u)
            var_u[d] = q / (double)(c->B - 1);
        if (y)
            for (int64_t r = 0; r < c->B; r++)
                y[r * c->D + d] = c->gamma[d] * (c->x[r * c->D + d] - m) / sqrt(vb + 1e-5) + c->beta[d];
    }
}
static double ref_bn_loss(void *ctx)
{
    bn_ctx *c = ctx;
    double *y = NEWD(c->B * c->D);
    ref_bn(y, NULL, NULL, NULL, c);
    double s = dot_d(y, c->r, c->B * c->D);
    free(y);
    return s;
}

static void test_bn(int64_t B, int64_t D)
{
    int64_t n = B * D;
    float *x = NEWF(n), *gamma = NEWF(D), *beta = NEWF(D), *r = NEWF(n), *y = NEWF(n), *xhat = NEWF(n);
    float *mean = NEWF(D), *rstd = NEWF(D), *rm = NEWF(D), *rv = NEWF(D), *rm0 = NEWF(D), *rv0 = NEWF(D);
    float *dx = NEWF(n), *dgamma = NEWF(D), *dbeta = NEWF(D);
    for (int64_t d = 0; d < D; d++) { /* features of different location and scale */
        float loc = urand(-3, 3), scale = urand(0.1f, 4);
        for (int64_t b = 0; b < B; b++)
            x[b * D + d] = loc + scale * urand(-1, 1);
    }
    fill(gamma, D, 0.5f, 1.5f);
    fill(beta, D, -0.5f, 0.5f);
    fill(r, n, -1, 1);
    fill(rm0, D, -1, 1);
    fill(rv0, D, 0.5f, 2);
    memcpy(rm, rm0, (size_t)D * sizeof *rm);
    memcpy(rv, rv0, (size_t)D * sizeof *rv);
    bn_ctx c = {to_double(x, n), to_double(gamma, D), to_double(beta, D), to_double(r, n), B, D};
    OK(ops->bn_forward_train(y, xhat, mean, rstd, rm, rv, x, gamma, beta, B, D));
    double *yr = NEWD(n), *mr = NEWD(D), *vb = NEWD(D), *vu = NEWD(D), *rmr = NEWD(D), *rvr = NEWD(D);
    ref_bn(yr, mr, vb, vu, &c);
    note_fwd("batchnorm", "y", y, yr, n);
    note_fwd("batchnorm", "mean", mean, mr, D);
    for (int64_t d = 0; d < D; d++) { /* SPEC §2: momentum 0.1, running_var takes the UNBIASED variance */
        rmr[d] = 0.9 * rm0[d] + 0.1 * mr[d];
        rvr[d] = 0.9 * rv0[d] + 0.1 * vu[d];
        vb[d] = 1.0 / sqrt(vb[d] + 1e-5);
    }
    note_fwd("batchnorm", "rstd", rstd, vb, D);
    note_fwd("batchnorm", "running_mean", rm, rmr, D);
    note_fwd("batchnorm", "running_var", rv, rvr, D);
    OK(ops->bn_backward(dx, dgamma, dbeta, r, xhat, gamma, rstd, B, D));
    fd_check("batchnorm", "x", ref_bn_loss, &c, c.x, n, dx);
    fd_check("batchnorm", "gamma", ref_bn_loss, &c, c.gamma, D, dgamma);
    fd_check("batchnorm", "beta", ref_bn_loss, &c, c.beta, D, dbeta);

    /* eval mode: the running statistics */
    OK(ops->bn_forward_eval(y, x, gamma, beta, rm, rv, B, D));
    for (int64_t i = 0; i < n; i++) {
        int64_t d = i % D;
        yr[i] = gamma[d] * (x[i] - (double)rm[d]) / sqrt((double)rv[d] + 1e-5) + beta[d];
    }
    note_fwd("batchnorm_eval", "y", y, yr, n);

    /* a batch of one row is refused in training mode (SPEC §6) */
    CHECK(ops->bn_forward_train(y, xhat, mean, rstd, rm, rv, x, gamma, beta, 1, D) == -1);
    CHECK_CONTAINS(debcm_last_error(), "at least 2");

    free(x); free(gamma); free(beta); free(r); free(y); free(xhat); free(mean); free(rstd); free(rm); free(rv);
    free(rm0); free(rv0); free(dx); free(dgamma); free(dbeta);
    free(yr); free(mr); free(vb); free(vu); free(rmr); free(rvr);
    free(c.x); free(c.gamma); free(c.beta); free(c.r);
}

/* ---- 3. dropout -------------------------------------------------------------------------------------------------- */

typedef struct {
    double *x, *r;
    const uint8_t *mask;
    double p;
    int64_t n;
} dropout_ctx;

static double ref_dropout_loss(void *ctx)
{
    dropout_ctx *c = ctx;
    double s = 0.0;
    for (int64_t i = 0; i < c->n; i++)
        s += c->r[i] * (c->mask[i] ? c->x[i] / (1.0 - c->p) : 0.0);
    return s;
}

static void test_dropout(void)
{
    const int64_t n = 7 * 40;
    const float p = 0.2f;
    float *x = NEWF(n), *r = NEWF(n), *y = NEWF(n), *dx = NEWF(n);
    uint8_t *mask = xmalloc((size_t)n);
    fill(x, n, -2, 2);
    fill(r, n, -1, 1);
    for (int64_t i = 0; i < n; i++) /* a supplied (replayed) mask */
        mask[i] = urand(0, 1) > p;
    dropout_ctx c = {to_double(x, n), to_double(r, n), mask, p, n};
    OK(ops->dropout_forward(y, x, mask, p, n));
    double *yr = NEWD(n);
    for (int64_t i = 0; i < n; i++)
        yr[i] = mask[i] ? x[i] * 1.25 : 0.0;
    note_fwd("dropout", "y", y, yr, n);
    for (int64_t i = 0; i < n; i++) /* p = 0.2: kept values are scaled by exactly 1.25, as PyTorch's */
        CHECK(y[i] == (mask[i] ? x[i] * 1.25f : 0.0f));
    OK(ops->dropout_backward(dx, r, mask, p, n));
    fd_check("dropout", "x", ref_dropout_loss, &c, c.x, n, dx);
    OK(ops->dropout_forward(y, x, NULL, p, n)); /* eval mode: identity */
    CHECK(!memcmp(y, x, (size_t)n * sizeof *y));

    /* Philox masks: a pure function of (seed, stream, counter), kept with probability 1 − p */
    const int64_t big = 200000;
    uint8_t *m1 = xmalloc((size_t)big), *m2 = xmalloc((size_t)big), *m3 = xmalloc((size_t)big);
    debcm_draw d1 = {42, 7, 1000};
    OK(ops->dropout_mask(m1, d1, p, big));
    OK(ops->dropout_mask(m2, d1, p, big));
    debcm_draw d2 = d1;
    d2.counter += (uint64_t)big;
    OK(ops->dropout_mask(m3, d2, p, big));
    CHECK(!memcmp(m1, m2, (size_t)big));
    CHECK(memcmp(m1, m3, (size_t)big) != 0);
    int64_t kept = 0, same_as_formula = 0;
    for (int64_t i = 0; i < big; i++) {
        kept += m1[i];
        same_as_formula += m1[i] == (rng_uniform(42, 7, 1000 + (uint64_t)i) > p);
    }
    CHECK(same_as_formula == big);
    CHECK_MSG(fabs((double)kept / big - 0.8) < 0.005, "kept fraction %g", (double)kept / big);
    /* a mask drawn at an offset equals the tail of one drawn from the start (any split gives the same mask) */
    d2.counter = d1.counter + 12345;
    OK(ops->dropout_mask(m3, d2, p, 1000));
    CHECK(!memcmp(m3, m1 + 12345, 1000));
    /* the eight-block AVX2 Philox (when this CPU has AVX2) against the scalar one, at counters near 2^32 too */
    int philox8_bad = 0;
    for (uint64_t q = 0; q < 4096; q += 8) {
        uint32_t r8[4][8];
        uint64_t qq = q + (q & 64 ? 0xFFFFFFF0ull : 0), st = 0x1234567ull << (q % 40);
        rng_philox8(r8, 0xABCDEF0123ull + q, st, qq);
        for (int b = 0; b < 8; b++) {
            rng_u32x4 one = rng_philox(0xABCDEF0123ull + q, st, qq + (uint64_t)b);
            for (int lane = 0; lane < 4; lane++)
                philox8_bad += one.v[lane] != r8[lane][b];
        }
    }
    printf("  philox8        %s, %d words differ from rng_philox\n", rng_philox8_uses_avx2() ? "AVX2" : "scalar",
           philox8_bad);
    CHECK(philox8_bad == 0);
    /* short draws at every alignment to the 4-lane Philox block (the head and tail lanes of a block) */
    for (int64_t off = 0; off < 9; off++)
        for (int64_t len = 1; len < 11; len++) {
            memset(m3, 0xAA, 16);
            d2.counter = d1.counter + (uint64_t)off;
            OK(ops->dropout_mask(m3, d2, p, len));
            CHECK_MSG(!memcmp(m3, m1 + off, (size_t)len) && m3[len] == 0xAA, "mask at offset %lld, length %lld",
                      (long long)off, (long long)len);
        }
    free(m1); free(m2); free(m3);
    free(x); free(r); free(y); free(dx); free(mask); free(yr); free(c.x); free(c.r);
}

/* ---- 4. row L2 normalisation ---------------------------------------------------------------------------------------- */

typedef struct {
    double *x, *r;
    int64_t B, D;
} l2n_ctx;

static void ref_l2n(double *y, const l2n_ctx *c)
{
    for (int64_t r = 0; r < c->B; r++) {
        double s = 0.0;
        for (int64_t d = 0; d < c->D; d++)
            s += c->x[r * c->D + d] * c->x[r * c->D + d];
        double nrm = fmax(sqrt(s), 1e-10);
        for (int64_t d = 0; d < c->D; d++)
            y[r * c->D + d] = c->x[r * c->D + d] / nrm;
    }
}
static double ref_l2n_loss(void *ctx)
{
    l2n_ctx *c = ctx;
    double *y = NEWD(c->B * c->D);
    ref_l2n(y, c);
    double s = dot_d(y, c->r, c->B * c->D);
    free(y);
    return s;
}

static void test_l2norm(int64_t B, int64_t D)
{
    int64_t n = B * D;
    float *x = NEWF(n), *r = NEWF(n), *y = NEWF(n), *nrm = NEWF(B), *dx = NEWF(n);
    fill(x, n, -2, 2);
    fill(r, n, -1, 1);
    l2n_ctx c = {to_double(x, n), to_double(r, n), B, D};
    OK(ops->l2norm_forward(y, nrm, x, B, D));
    double *yr = NEWD(n);
    ref_l2n(yr, &c);
    note_fwd("l2norm", "y", y, yr, n);
    OK(ops->l2norm_backward(dx, r, y, nrm, B, D));
    fd_check("l2norm", "x", ref_l2n_loss, &c, c.x, n, dx);

    /* rows at and below the eps: a zero row stays zero; below eps y = x / 1e-10 and dx = dy / 1e-10 */
    for (int64_t d = 0; d < D; d++) {
        x[d] = 0.0f;
        x[D + d] = d == 0 ? 3e-11f : (d == 1 ? -4e-11f : 0.0f); /* norm 5e-11 */
    }
    memset(dx, 0, (size_t)n * sizeof *dx);
    OK(ops->l2norm_forward(y, nrm, x, B, D));
    OK(ops->l2norm_backward(dx, r, y, nrm, B, D));
    for (int64_t d = 0; d < D; d++) {
        CHECK(y[d] == 0.0f);
        CHECK_NEAR(y[D + d], x[D + d] / 1e-10, 1e-6);
        CHECK_NEAR(dx[d], r[d] / 1e-10, fabs(r[d]) * 1e10 * 1e-6);
        CHECK_NEAR(dx[D + d], r[D + d] / 1e-10, fabs(r[D + d]) * 1e10 * 1e-6);
    }
    free(x); free(r); free(y); free(nrm); free(dx); free(yr); free(c.x); free(c.r);
}

/* ---- 5. reparameterisation ------------------------------------------------------------------------------------------ */

typedef struct {
    double *mu, *lv, *eps, *r;
    int64_t n;
} reparam_ctx;

static double ref_reparam_loss(void *ctx)
{
    reparam_ctx *c = ctx;
    double s = 0.0;
    for (int64_t i = 0; i < c->n; i++)
        s += c->r[i] * (c->mu[i] + c->eps[i] * exp(0.5 * fmin(c->lv[i], 10.0)));
    return s;
}

static void test_reparam(void)
{
    const int64_t n = 12 * 16;
    float *mu = NEWF(n), *lv = NEWF(n), *eps = NEWF(n), *r = NEWF(n), *z = NEWF(n), *dmu = NEWF(n), *dlv = NEWF(n);
    fill(mu, n, -1, 1);
    fill_avoid(lv, n, -4, 12, 10.0f, 0.05f); /* about one in eight above the clamp */
    fill_normal(eps, n);
    fill(r, n, -1, 1);
    reparam_ctx c = {to_double(mu, n), to_double(lv, n), to_double(eps, n), to_double(r, n), n};
    OK(ops->reparam_forward(z, mu, lv, eps, n));
    double *zr = NEWD(n);
    for (int64_t i = 0; i < n; i++)
        zr[i] = c.mu[i] + c.eps[i] * exp(0.5 * fmin(c.lv[i], 10.0));
    note_fwd("reparam", "z", z, zr, n);
    OK(ops->reparam_backward(dmu, dlv, r, lv, eps, n));
    fd_check("reparam", "mu", ref_reparam_loss, &c, c.mu, n, dmu);
    fd_check("reparam", "lv", ref_reparam_loss, &c, c.lv, n, dlv);
    int zero_above = 1;
    for (int64_t i = 0; i < n; i++)
        if (lv[i] > 10.0f && dlv[i] != 0.0f)
            zero_above = 0;
    CHECK_MSG(zero_above, "the lv clamp passes a gradient above 10");
    OK(ops->reparam_forward(z, mu, lv, NULL, n)); /* eval: z = mu */
    CHECK(!memcmp(z, mu, (size_t)n * sizeof *z));

    /* Philox normals: deterministic, mean 0, variance 1 */
    const int64_t big = 200000;
    float *e1 = NEWF(big), *e2 = NEWF(big);
    debcm_draw d = {7, 3, 0};
    OK(ops->normal_draw(e1, d, big));
    OK(ops->normal_draw(e2, d, big));
    CHECK(!memcmp(e1, e2, (size_t)big * sizeof *e1));
    int64_t same_as_formula = 0;
    for (int64_t i = 0; i < big; i++)
        same_as_formula += e1[i] == rng_normal(7, 3, (uint64_t)i);
    CHECK(same_as_formula == big);
    /* short draws at both alignments to the 2-normal Philox block, and a guard after them */
    for (int64_t off = 0; off < 5; off++)
        for (int64_t len = 1; len < 7; len++) {
            float g[8];
            for (int i = 0; i < 8; i++)
                g[i] = -7.0f;
            debcm_draw d2 = {7, 3, (uint64_t)off};
            OK(ops->normal_draw(g, d2, len));
            CHECK_MSG(!memcmp(g, e1 + off, (size_t)len * sizeof *g) && g[len] == -7.0f,
                      "normals at offset %lld, length %lld", (long long)off, (long long)len);
        }
    double s = 0.0, q = 0.0;
    for (int64_t i = 0; i < big; i++) {
        s += e1[i];
        q += (double)e1[i] * e1[i];
    }
    CHECK_MSG(fabs(s / big) < 0.01 && fabs(q / big - 1.0) < 0.02, "normals: mean %g, second moment %g", s / big,
              q / big);
    free(e1); free(e2);
    free(mu); free(lv); free(eps); free(r); free(z); free(dmu); free(dlv); free(zr);
    free(c.mu); free(c.lv); free(c.eps); free(c.r);
}

/* ---- 6. ReLU, MSE ---------------------------------------------------------------------------------------------------- */

typedef struct {
    double *x, *t, *r;
    double dloss;
    int64_t n;
} ew_ctx;

static double ref_relu_loss(void *ctx)
{
    ew_ctx *c = ctx;
    double s = 0.0;
    for (int64_t i = 0; i < c->n; i++)
        s += c->r[i] * fmax(c->x[i], 0.0);
    return s;
}
static double ref_mse(const ew_ctx *c)
{
    double s = 0.0;
    for (int64_t i = 0; i < c->n; i++)
        s += (c->x[i] - c->t[i]) * (c->x[i] - c->t[i]);
    return s / (double)c->n;
}
static double ref_mse_loss(void *ctx) { return ((ew_ctx *)ctx)->dloss * ref_mse(ctx); }

static void test_relu_mse(int64_t n)
{
    float *x = NEWF(n), *t = NEWF(n), *r = NEWF(n), *y = NEWF(n), *dx = NEWF(n), loss;
    fill_avoid(x, n, -1, 1, 0.0f, 1e-3f);
    fill(t, n, -1, 1);
    fill(r, n, -1, 1);
    ew_ctx c = {to_double(x, n), to_double(t, n), to_double(r, n), 0.7, n};
    OK(ops->relu_forward(y, x, n));
    double *yr = NEWD(n);
    for (int64_t i = 0; i < n; i++)
        yr[i] = fmax(c.x[i], 0.0);
    note_fwd("relu", "y", y, yr, n);
    OK(ops->relu_backward(dx, r, y, n));
    fd_check("relu", "x", ref_relu_loss, &c, c.x, n, dx);

    OK(ops->mse_forward(&loss, x, t, n));
    double lr = ref_mse(&c);
    note_fwd("mse", "loss", &loss, &lr, 1);
    memset(dx, 0, (size_t)n * sizeof *dx);
    OK(ops->mse_backward(dx, 0.7f, x, t, n));
    fd_check("mse", "x", ref_mse_loss, &c, c.x, n, dx);
    free(x); free(t); free(r); free(y); free(dx); free(yr); free(c.x); free(c.t); free(c.r);
}

/* ---- 7. KL to the standard normal, 8. distillation ------------------------------------------------------------------ */

typedef struct {
    double *mu1, *lv1, *mu2, *lv2;
    double dloss;
    int variant; /* -1: KL to N(0, I); else distill_variant */
    int64_t B, L;
} kl_ctx;

static double ref_kl(const kl_ctx *c)
{
    double total = 0.0;
    for (int64_t b = 0; b < c->B; b++) {
        double row = 0.0;
        for (int64_t l = 0; l < c->L; l++) {
            int64_t i = b * c->L + l;
            double l1 = fmin(c->lv1[i], 10.0);
            if (c->variant < 0) { /* SPEC §2 */
                row += 1.0 + l1 - c->mu1[i] * c->mu1[i] - exp(l1);
                continue;
            }
            double l2 = fmin(c->lv2[i], 10.0), e1 = exp(l1), e2 = exp(l2), dm = c->mu1[i] - c->mu2[i];
            if (c->variant == DISTILL_PUBLISHED) /* SPEC §4, ε = 1e-15 */
                row += log(e2 / (e1 + 1e-15) + 1e-15) - (e1 + dm * dm) / (e2 + 1e-15);
            else /* SPEC §6: the true KL */
                row += log(e2 / e1) + (e1 + dm * dm) / e2 - 1.0;
        }
        if (c->variant < 0)
            total += -0.5 * row;
        else if (c->variant == DISTILL_PUBLISHED)
            total += -0.5 * (1.0 - row); /* the "1 −" outside the sum */
        else
            total += 0.5 * row;
    }
    return total / (double)c->B;
}
static double ref_kl_loss(void *ctx) { return ((kl_ctx *)ctx)->dloss * ref_kl(ctx); }

static void test_kl(int64_t B, int64_t L, int variant)
{
    int64_t n = B * L;
    const char *name = variant < 0 ? "kl" : variant == DISTILL_PUBLISHED ? "distill_published" : "distill_kl";
    float *mu1 = NEWF(n), *lv1 = NEWF(n), *mu2 = NEWF(n), *lv2 = NEWF(n), *dmu = NEWF(n), *dlv = NEWF(n), loss;
    fill(mu1, n, -1, 1);
    fill_avoid(lv1, n, -3, 12, 10.0f, 0.05f);
    fill(mu2, n, -1, 1);
    fill(lv2, n, -3, 3);
    float dloss = -1.3f;
    kl_ctx c = {to_double(mu1, n), to_double(lv1, n), to_double(mu2, n), to_double(lv2, n), dloss, variant, B, L};
    if (variant < 0) {
        OK(ops->kl_forward(&loss, mu1, lv1, B, L));
        OK(ops->kl_backward(dmu, dlv, dloss, mu1, lv1, B, L));
    } else {
        OK(ops->distill_forward(&loss, mu1, lv1, mu2, lv2, (distill_variant)variant, B, L));
        OK(ops->distill_backward(dmu, dlv, dloss, mu1, lv1, mu2, lv2, (distill_variant)variant, B, L));
    }
    double lr = ref_kl(&c);
    note_fwd(name, "loss", &loss, &lr, 1);
    /* |L| reaches 1e4 (exp(10) terms) while one element's share is ~1/B: a larger step keeps rounding down; the
     * terms are smooth and lv stays 0.05 away from the clamp */
    fd_h = 1e-4;
    fd_check(name, "mu", ref_kl_loss, &c, c.mu1, n, dmu);
    fd_check(name, "lv", ref_kl_loss, &c, c.lv1, n, dlv);
    fd_h = 1e-5;
    if (variant == DISTILL_KL) { /* a divergence: 0 at the teacher, positive elsewhere */
        float zero;
        OK(ops->distill_forward(&zero, mu2, lv2, mu2, lv2, DISTILL_KL, B, L));
        CHECK_NEAR(zero, 0.0, 1e-6);
        CHECK(loss > 0.0f);
    }
    free(mu1); free(lv1); free(mu2); free(lv2); free(dmu); free(dlv);
    free(c.mu1); free(c.lv1); free(c.mu2); free(c.lv2);
}

/* ---- 9. matching -------------------------------------------------------------------------------------------------------- */

typedef struct {
    double v;
    int32_t i;
} vi_pair;
static int vi_cmp(const void *a, const void *b) /* value descending, then index ascending */
{
    const vi_pair *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

typedef struct {
    double *zm, *zv;
    double cm, cv; /* upstream factors of music and video */
    match_cfg cfg;
    int64_t B, L;
    int32_t *sel_m, *sel_v; /* the reference's selection, when not NULL */
} match_ctx;

/* music and video of SPEC §3 / §6 in double */
/* the indices of row[0..k) in increasing order */
static void sorted_indices(int32_t *out, const vi_pair *row, int64_t k)
{
    for (int64_t t = 0; t < k; t++) {
        int64_t p = t;
        while (p > 0 && out[p - 1] > row[t].i) {
            out[p] = out[p - 1];
            p--;
        }
        out[p] = row[t].i;
    }
}

static void ref_match(double *music, double *video, match_ctx *c)
{
    int64_t B = c->B, L = c->L, k = match_k_eff(c->cfg.k, B);
    double *S = NEWD(B * B);
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < B; j++)
            S[i * B + j] = dot_d(c->zm + i * L, c->zv + j * L, L);
    double m = c->cfg.margin, tau = c->cfg.tau, sums[2] = {0.0, 0.0};
    vi_pair *row = xmalloc((size_t)B * sizeof *row);
    for (int dir = 0; dir < 2; dir++)
        for (int64_t a = 0; a < B; a++) {
            /* dir 0: music row a (negatives S[a][j]); dir 1: video column a (negatives S[i][a]) */
            double pos = S[a * B + a];
            if (c->cfg.variant == MATCH_SOFTMAX) {
                double mx = -INFINITY, s = 0.0;
                for (int64_t j = 0; j < B; j++)
                    mx = fmax(mx, (dir == 0 ? S[a * B + j] : S[j * B + a]) / tau);
                for (int64_t j = 0; j < B; j++)
                    s += exp((dir == 0 ? S[a * B + j] : S[j * B + a]) / tau - mx);
                sums[dir] += mx + log(s) - pos / tau;
                continue;
            }
            int64_t n = 0;
            for (int64_t j = 0; j < B; j++) {
                if (j == a)
                    continue;
                double neg = dir == 0 ? S[a * B + j] : S[j * B + a];
                double v = c->cfg.variant == MATCH_PUBLISHED ? fmin(fmax(pos - neg - m, 0.0), 1e6)
                                                             : fmax(m - pos + neg, 0.0);
                row[n].v = v;
                row[n].i = (int32_t)j;
                n++;
            }
            qsort(row, (size_t)n, sizeof *row, vi_cmp);
            for (int64_t t = 0; t < k; t++)
                sums[dir] += row[t].v;
            int32_t *sel = dir == 0 ? c->sel_m : c->sel_v;
            if (sel) /* the op lists its selection in increasing index */
                sorted_indices(sel + a * k, row, k);
        }
    double denom = c->cfg.variant == MATCH_SOFTMAX ? (double)B : (double)(B * k);
    *music = sums[0] / denom;
    *video = sums[1] / denom;
    free(row);
    free(S);
}
static double ref_match_loss(void *ctx)
{
    match_ctx *c = ctx;
    double music, video;
    ref_match(&music, &video, c);
    return c->cm * music + c->cv * video;
}

/* How close the inputs are to a kink of the matching term: the clamp's argument near 0, or a tie between the
 * k-th and (k+1)-th largest value of a row (a top-k boundary). Finite differences need this well above h. */
static double match_kink_distance(const float *zm, const float *zv, const match_cfg *cfg, int64_t B, int64_t L)
{
    if (cfg->variant == MATCH_SOFTMAX)
        return INFINITY;
    int64_t k = match_k_eff(cfg->k, B);
    double dist = INFINITY, m = cfg->margin;
    double *v = NEWD(B);
    for (int dir = 0; dir < 2; dir++)
        for (int64_t a = 0; a < B; a++) {
            int64_t n = 0;
            for (int64_t j = 0; j < B; j++) {
                if (j == a)
                    continue;
                const float *mrow = dir == 0 ? zm + a * L : zm + j * L, *vrow = dir == 0 ? zv + j * L : zv + a * L;
                double pos = 0.0, neg = 0.0;
                for (int64_t l = 0; l < L; l++) {
                    pos += (double)zm[a * L + l] * zv[a * L + l];
                    neg += (double)mrow[l] * vrow[l];
                }
                double x = cfg->variant == MATCH_PUBLISHED ? pos - neg - m : m - pos + neg;
                dist = fmin(dist, fabs(x));
                v[n++] = fmax(x, 0.0);
            }
            for (int64_t i = 0; i < n; i++) /* sort descending (n is small) */
                for (int64_t j = i + 1; j < n; j++)
                    if (v[j] > v[i]) {
                        double t = v[i];
                        v[i] = v[j];
                        v[j] = t;
                    }
            if (k < n && v[k - 1] > 0.0)
                dist = fmin(dist, v[k - 1] - v[k]);
        }
    free(v);
    return dist;
}

static void test_match(match_variant variant, int64_t B, int64_t L, int64_t k)
{
    static const char *names[] = {"match_published", "match_hinge", "match_softmax"};
    const char *name = names[variant];
    int64_t kk = match_k_eff(k, B);
    float *zm = NEWF(B * L), *zv = NEWF(B * L), *S = NEWF(B * B), *dS = NEWF(B * B);
    float *dzm = NEWF(B * L), *dzv = NEWF(B * L), music, video;
    int32_t *sel_m = xmalloc((size_t)(B * kk) * sizeof *sel_m), *sel_v = xmalloc((size_t)(B * kk) * sizeof *sel_v);
    int32_t *rsel_m = xmalloc((size_t)(B * kk) * sizeof *sel_m), *rsel_v = xmalloc((size_t)(B * kk) * sizeof *sel_v);
    match_cfg cfg = {variant, 0.05f, 0.5f, k};
    int tries = 0;
    do { /* redraw until no kink lies within 5·h (|∂S/∂z| ≤ max|z| = 1) */
        fill(zm, B * L, -1, 1);
        fill(zv, B * L, -1, 1);
    } while (match_kink_distance(zm, zv, &cfg, B, L) < 5.0 * fd_h && ++tries < 100);
    CHECK(tries < 100);
    match_ctx c = {to_double(zm, B * L), to_double(zv, B * L), -1.7, 0.6, cfg, B, L, rsel_m, rsel_v};
    OK(ops->match_forward(&music, &video, S, sel_m, sel_v, zm, zv, &cfg, B, L));
    double mr, vr;
    ref_match(&mr, &vr, &c);
    note_fwd(name, "music", &music, &mr, 1);
    note_fwd(name, "video", &video, &vr, 1);
    if (variant != MATCH_SOFTMAX) {
        CHECK_MSG(!memcmp(sel_m, rsel_m, (size_t)(B * kk) * sizeof *sel_m), "%s: music selection differs", name);
        CHECK_MSG(!memcmp(sel_v, rsel_v, (size_t)(B * kk) * sizeof *sel_v), "%s: video selection differs", name);
    }
    c.sel_m = c.sel_v = NULL;
    OK(ops->match_backward(dzm, dzv, dS, (float)c.cm, (float)c.cv, S, sel_m, sel_v, zm, zv, &cfg, B, L));
    fd_check(name, "zm", ref_match_loss, &c, c.zm, B * L, dzm);
    fd_check(name, "zv", ref_match_loss, &c, c.zv, B * L, dzv);
    free(zm); free(zv); free(S); free(dS); free(dzm); free(dzv); free(sel_m); free(sel_v); free(rsel_m);
    free(rsel_v); free(c.zm); free(c.zv);
}

/* The tie rule on hand-made scores: L = 1, zm = 1, so S_ij = zv_j. */
static void test_topk_ties(void)
{
    /* topk_select itself: the larger value first, then the lower index; listed by increasing index */
    static const float v[] = {0.5f, 2.0f, 0.5f, 2.0f, 1.0f, 0.5f};
    int32_t idx[6];
    uint32_t key[12];
    CHECK(topk_select(idx, key, v, 6, 4, -1) == 4);
    CHECK(idx[0] == 0 && idx[1] == 1 && idx[2] == 3 && idx[3] == 4); /* {1, 3, 4} then 0 of the three 0.5s */
    CHECK(topk_select(idx, key, v, 6, 4, 1) == 4 && idx[0] == 0 && idx[1] == 2 && idx[2] == 3 && idx[3] == 4);
    CHECK(topk_select(idx, key, v, 6, 9, 2) == 5); /* k above the candidates: all but the skipped one */
    static const float z[] = {-0.0f, 0.0f, -0.0f, 1.0f}; /* −0 and +0 are one value: ties by index */
    CHECK(topk_select(idx, key, z, 4, 2, -1) == 2 && idx[0] == 0 && idx[1] == 3);
    /* against a plain reference (a stable sort by value, largest first, of the row; the first k indices sorted)
     * on rows full of ties and of both signs, for every k and every skipped index */
    enum { NR = 37 };
    int bad = 0;
    vi_pair ref[NR];
    for (int trial = 0; trial < 100; trial++) {
        float row[NR];
        int32_t ri[NR], hi[NR];
        uint32_t keys[2 * NR];
        for (int32_t j = 0; j < NR; j++)
            row[j] = (float)(int)urand(-3.0f, 3.0f) * (trial % 2 ? 1.0f : 1e-30f); /* few distinct values */
        for (int32_t skip = -1; skip < NR; skip += 5)
            for (int32_t k = 1; k <= NR; k++) {
                int64_t n = 0;
                for (int32_t j = 0; j < NR; j++)
                    if (j != skip)
                        ref[n++] = (vi_pair){row[j], j};
                qsort(ref, (size_t)n, sizeof *ref, vi_cmp);
                int64_t kk = k < n ? k : n;
                sorted_indices(ri, ref, kk);
                int32_t c = topk_select(hi, keys, row, NR, k, skip);
                bad += c != kk || memcmp(hi, ri, (size_t)kk * sizeof *hi);
            }
    }
    CHECK_MSG(bad == 0, "%d top-k selections differ from the stable-sort reference", bad);

    /* through the op: zv = [0, 0, 0, −1, −1]: music row 0 has A_0j = zv_0 − zv_j − m = −m, −m, 1−m, 1−m,
     * clamped to 0, 0, 0.95, 0.95; with k = 3 it picks j = 3, 4 (tie: lower index first), then j = 1 */
    const int64_t B = 5;
    float zm[5] = {1, 1, 1, 1, 1}, zv[5] = {0, 0, 0, -1, -1}, S[25], music, video;
    int32_t sm[20], sv[20];
    match_cfg cfg = {MATCH_PUBLISHED, 0.05f, 1.0f, 3};
    OK(ops->match_forward(&music, &video, S, sm, sv, zm, zv, &cfg, B, 1));
    CHECK(sm[0] == 1 && sm[1] == 3 && sm[2] == 4); /* listed by index */
    /* row 3: A_3j = −1 − zv_j − m: all negative → all 0, picked by index: 0, 1, 2 */
    CHECK(sm[9] == 0 && sm[10] == 1 && sm[11] == 2);
    /* the gradient of a tie at 0 that is clamped does not flow; the zero-valued picks carry none */
    float dzm[5] = {0}, dzv[5] = {0}, dS[25];
    OK(ops->match_backward(dzm, dzv, dS, 1.0f, 0.0f, S, sm, sv, zm, zv, &cfg, B, 1));
    CHECK(dS[3 * 5 + 0] == 0.0f && dS[3 * 5 + 3] == 0.0f);
    CHECK(dS[0 * 5 + 3] < 0.0f && dS[0 * 5 + 1] == 0.0f && dS[0 * 5 + 2] == 0.0f);

    /* k above B − 1 is capped (SPEC §6): the same as k = B − 1 */
    float m2, v2;
    int32_t big_m[20], big_v[20];
    match_cfg c40 = cfg, c4 = cfg;
    c40.k = 40;
    c4.k = 4;
    OK(ops->match_forward(&music, &video, S, big_m, big_v, zm, zv, &c40, B, 1));
    OK(ops->match_forward(&m2, &v2, S, sm, sv, zm, zv, &c4, B, 1));
    CHECK(music == m2 && video == v2 && !memcmp(big_m, sm, sizeof big_m));
    cfg.k = 1;
    CHECK(ops->match_forward(&music, &video, S, sm, sv, zm, zv, &cfg, 1, 1) == -1); /* B = 1: no negatives */
}

/* ---- 10. confounder mixing --------------------------------------------------------------------------------------------- */

typedef struct {
    double *zm, *prior, *cemb, *Wc, *bc, *r;
    int64_t B, P, L, G;
} conf_ctx;

static void ref_conf(double *zc, const conf_ctx *c)
{
    int64_t L = c->L;
    double *cat = NEWD(2 * L), *cv = NEWD(L);
    for (int64_t l = 0; l < L; l++) {
        double s = 0.0;
        for (int64_t g = 0; g < c->G; g++) {
            double pi = 0.0;
            for (int64_t p = 0; p < c->P; p++)
                pi += c->prior[p * c->G + g];
            s += pi / (double)c->P * c->cemb[g * L + l];
        }
        cv[l] = s;
    }
    for (int64_t b = 0; b < c->B; b++) {
        for (int64_t l = 0; l < L; l++) { /* [c ; z_m] */
            cat[l] = cv[l];
            cat[L + l] = c->zm[b * L + l];
        }
        for (int64_t o = 0; o < L; o++)
            zc[b * L + o] = c->bc[o] + dot_d(c->Wc + o * 2 * L, cat, 2 * L);
    }
    free(cat);
    free(cv);
}
static double ref_conf_loss(void *ctx)
{
    conf_ctx *c = ctx;
    double *zc = NEWD(c->B * c->L);
    ref_conf(zc, c);
    double s = dot_d(zc, c->r, c->B * c->L);
    free(zc);
    return s;
}

static void test_confounder(int64_t B, int64_t P, int64_t L, int64_t G)
{
    float *zm = NEWF(B * L), *prior = NEWF(P * G), *cemb = NEWF(G * L), *Wc = NEWF(L * 2 * L), *bc = NEWF(L);
    float *r = NEWF(B * L), *zc = NEWF(B * L), *pi = NEWF(G), *cv = NEWF(L);
    float *dzm = NEWF(B * L), *dcemb = NEWF(G * L), *dWc = NEWF(L * 2 * L), *dbc = NEWF(L);
    fill(zm, B * L, -1, 1);
    fill(prior, P * G, 0, 1);
    fill_normal(cemb, G * L);
    fill(Wc, L * 2 * L, -0.5f, 0.5f);
    fill(bc, L, -0.5f, 0.5f);
    fill(r, B * L, -1, 1);
    conf_ctx c = {to_double(zm, B * L), to_double(prior, P * G), to_double(cemb, G * L), to_double(Wc, L * 2 * L),
                  to_double(bc, L), to_double(r, B * L), B, P, L, G};
    OK(ops->confounder_forward(zc, pi, cv, zm, prior, cemb, Wc, bc, B, P, L, G));
    double *zr = NEWD(B * L);
    ref_conf(zr, &c);
    note_fwd("confounder", "zc", zc, zr, B * L);
    OK(ops->confounder_backward(dzm, dcemb, dWc, dbc, r, pi, cv, zm, Wc, B, L, G));
    fd_check("confounder", "zm", ref_conf_loss, &c, c.zm, B * L, dzm);
    fd_check("confounder", "cemb", ref_conf_loss, &c, c.cemb, G * L, dcemb);
    fd_check("confounder", "Wc", ref_conf_loss, &c, c.Wc, L * 2 * L, dWc);
    fd_check("confounder", "bc", ref_conf_loss, &c, c.bc, L, dbc);
    free(zm); free(prior); free(cemb); free(Wc); free(bc); free(r); free(zc); free(pi); free(cv);
    free(dzm); free(dcemb); free(dWc); free(dbc); free(zr);
    free(c.zm); free(c.prior); free(c.cemb); free(c.Wc); free(c.bc); free(c.r);
}

/* ---- 11. Adam ------------------------------------------------------------------------------------------------------------ */

static void test_adam(void)
{
    const int64_t n = 1000;
    const int steps = 6;
    adam_cfg cfg = {1e-3, 0.9, 0.999, 1e-8, 1e-3};
    float *th = NEWF(n), *m = NEWF(n), *v = NEWF(n), *g = NEWF(n), *g_copy = NEWF(n);
    double *thd = NEWD(n), *md = NEWD(n), *vd = NEWD(n);
    fill(th, n, -1, 1);
    for (int64_t i = 0; i < n; i++)
        thd[i] = th[i];
    double worst = 0.0, worst_first = 0.0;
    for (int t = 1; t <= steps; t++) {
        fill(g, n, -0.1f, 0.1f);
        memcpy(g_copy, g, (size_t)n * sizeof *g);
        OK(ops->adam_update(th, m, v, g, &cfg, t, n));
        CHECK(!memcmp(g, g_copy, (size_t)n * sizeof *g)); /* the gradient is not modified */
        for (int64_t i = 0; i < n; i++) {                 /* SPEC §5 in double */
            double gd = g[i] + cfg.weight_decay * thd[i];
            md[i] = cfg.beta1 * md[i] + (1.0 - cfg.beta1) * gd;
            vd[i] = cfg.beta2 * vd[i] + (1.0 - cfg.beta2) * gd * gd;
            double mh = md[i] / (1.0 - pow(cfg.beta1, t)), vh = vd[i] / (1.0 - pow(cfg.beta2, t));
            double step = cfg.lr * mh / (sqrt(vh) + cfg.eps);
            if (t == 1 && fabs(gd) > 1e-4) /* the first bias-corrected step is about lr·sign(g) (eps aside) */
                worst_first = fmax(worst_first, fabs(fabs(step) - cfg.lr));
            thd[i] -= step;
            /* error relative to the size of one step */
            worst = fmax(worst, fabs(th[i] - thd[i]) / cfg.lr);
        }
    }
    op_stat *s = stat_for("adam");
    s->fwd = worst;
    CHECK_MSG(worst < 1e-2, "adam: θ differs from the double version by %g·lr after %d steps", worst, steps);
    CHECK(worst_first < 1e-5);
    free(th); free(m); free(v); free(g); free(g_copy); free(thd); free(md); free(vd);
}

/* ---- 12. evaluation metrics --------------------------------------------------------------------------------------------- */

static void test_eval(void)
{
    /* 100-negative protocol: three rows of [positive, 3 negatives] */
    float scores[12] = {0.9f, 0.1f, 0.2f, 0.3f,  /* rank 0 */
                        0.5f, 0.6f, 0.5f, 0.1f,  /* rank 2: one above, one TIED (counts against) */
                        0.2f, 0.3f, 0.4f, 0.5f}; /* rank 3 */
    float w[3] = {0.5f, 0.3f, 0.2f};
    int32_t K[4] = {1, 2, 3, 10};
    double recall[4], ndcg[4];
    int64_t ties = -1;
    OK(ops->eval_negatives(recall, ndcg, &ties, scores, w, K, 4, 3, 4));
    CHECK(ties == 1);
    CHECK_NEAR(recall[0], 0.5, 1e-12);
    CHECK_NEAR(recall[1], 0.5, 1e-12);
    CHECK_NEAR(recall[2], 0.5 + (double)0.3f, 1e-12);
    CHECK_NEAR(recall[3], (double)0.5f + 0.3f + 0.2f, 1e-7);
    CHECK_NEAR(ndcg[0], 0.5, 1e-12);
    CHECK_NEAR(ndcg[2], 0.5 + (double)0.3f / 2.0, 1e-12); /* 1/log2(2 + 2) */
    CHECK_NEAR(ndcg[3], 0.5 + (double)0.3f / 2.0 + (double)0.2f / log2(5.0), 1e-12);

    /* a collapsed model scoring every candidate equally gets 0, never 1 */
    float flat[12];
    for (int i = 0; i < 12; i++)
        flat[i] = 0.25f;
    OK(ops->eval_negatives(recall, ndcg, &ties, flat, w, K, 3, 3, 4));
    CHECK(ties == 3 && recall[0] == 0.0 && recall[2] == 0.0 && ndcg[2] == 0.0);
    /* a NaN positive ranks last */
    scores[0] = NAN;
    OK(ops->eval_negatives(recall, ndcg, &ties, scores, w, K, 1, 1, 4));
    CHECK(recall[0] == 0.0);

    /* teacher full ranking: rank = #{other musics with score >= the true one's} */
    float full[8] = {0.1f, 0.9f, 0.3f, 0.9f, /* truth 1: tied with column 3 → rank 1 */
                     0.5f, 0.2f, 0.1f, 0.0f}; /* truth 0 → rank 0 */
    int64_t truth[2] = {1, 0};
    OK(ops->eval_full_rank(recall, full, truth, K, 2, 2, 4));
    CHECK(recall[0] == 0.5 && recall[1] == 1.0);
    for (int i = 0; i < 8; i++)
        full[i] = 1.0f;
    OK(ops->eval_full_rank(recall, full, truth, K, 3, 2, 4));
    CHECK(recall[0] == 0.0 && recall[2] == 0.0);
    truth[1] = 4;
    CHECK(ops->eval_full_rank(recall, full, truth, K, 1, 2, 4) == -1);
    CHECK_CONTAINS(debcm_last_error(), "row 1");
}

/* ---- determinism across thread counts ------------------------------------------------------------------------------------ */

typedef struct {
    float *buf;
    size_t len, cap;
} sink;
static void sink_put(sink *s, const void *p, size_t bytes)
{
    size_t nf = (bytes + sizeof(float) - 1) / sizeof(float);
    if (s->len + nf > s->cap) {
        fprintf(stderr, "test_ops: sink too small\n");
        exit(1);
    }
    memcpy(s->buf + s->len, p, bytes);
    s->len += nf;
}

/* Every op with an OpenMP loop, at sizes above the threading threshold; all results appended to out. */
static void run_battery(sink *out)
{
    const int64_t B = 320, D = 200, L = 128, G = 6, n = B * D;
    uint64_t saved = draw_index;
    draw_index = 777; /* the same inputs on every call */
    float *x = NEWF(n), *y = NEWF(n), *xhat = NEWF(n), *dy = NEWF(n), *dx = NEWF(n), *W = NEWF(L * D);
    float *z = NEWF(B * L), *dz = NEWF(B * L), *lv = NEWF(B * L), *mu2 = NEWF(B * L), *eps = NEWF(B * L);
    float *mean = NEWF(D), *rstd = NEWF(D), *rm = NEWF(D), *rv = NEWF(D), *gam = NEWF(D), *bet = NEWF(D);
    float *dgam = NEWF(D), *dbet = NEWF(D), *S = NEWF(B * B), *dS = NEWF(B * B), *nrm = NEWF(B);
    float *prior = NEWF(B * G), *cemb = NEWF(G * L), *Wc = NEWF(L * 2 * L), *bc = NEWF(L), *pi = NEWF(G);
    float *cv = NEWF(L), *dcemb = NEWF(G * L), *dWc = NEWF(L * 2 * L), *dbc = NEWF(L), *mm = NEWF(n), *vv = NEWF(n);
    uint8_t *mask = xmalloc((size_t)n);
    int32_t *sm = xmalloc((size_t)(B * 40) * sizeof *sm), *sv = xmalloc((size_t)(B * 40) * sizeof *sv);
    float loss[4];
    fill(x, n, -2, 2);
    fill(dy, n, -1, 1);
    fill(W, L * D, -0.1f, 0.1f);
    fill(gam, D, 0.5f, 1.5f);
    fill(lv, B * L, -2, 2);
    fill(mu2, B * L, -1, 1);
    fill(prior, B * G, 0, 1);
    fill(cemb, G * L, -1, 1);
    fill(Wc, L * 2 * L, -0.1f, 0.1f);
    fill(dz, B * L, -1, 1);

    OK(ops->bn_forward_train(y, xhat, mean, rstd, rm, rv, x, gam, bet, B, D));
    OK(ops->bn_backward(dx, dgam, dbet, dy, xhat, gam, rstd, B, D));
    sink_put(out, y, (size_t)n * 4);
    sink_put(out, dx, (size_t)n * 4);
    sink_put(out, dgam, (size_t)D * 4);
    sink_put(out, rv, (size_t)D * 4);
    OK(ops->dropout_mask(mask, (debcm_draw){1, 2, 3}, 0.2f, n));
    OK(ops->dropout_forward(y, x, mask, 0.2f, n));
    OK(ops->dropout_backward(dx, dy, mask, 0.2f, n));
    sink_put(out, y, (size_t)n * 4);
    sink_put(out, dx, (size_t)n * 4);
    OK(ops->linear_forward(z, y, W, bc, B, D, L));
    float *dW = NEWF(L * D);
    OK(ops->linear_backward(dx, dW, dbc, dz, y, W, B, D, L));
    sink_put(out, z, (size_t)(B * L) * 4);
    sink_put(out, dx, (size_t)n * 4);
    sink_put(out, dW, (size_t)(L * D) * 4);
    sink_put(out, dbc, (size_t)L * 4);
    free(dW);
    OK(ops->l2norm_forward(y, nrm, x, B, D));
    OK(ops->l2norm_backward(dx, dy, y, nrm, B, D));
    sink_put(out, y, (size_t)n * 4);
    sink_put(out, dx, (size_t)n * 4);
    OK(ops->normal_draw(eps, (debcm_draw){5, 6, 7}, B * L));
    OK(ops->reparam_forward(z, mu2, lv, eps, B * L));
    OK(ops->reparam_backward(dx, mm, dz, lv, eps, B * L));
    sink_put(out, z, (size_t)(B * L) * 4);
    sink_put(out, mm, (size_t)(B * L) * 4);
    OK(ops->relu_forward(y, x, n));
    OK(ops->relu_backward(dx, dy, y, n));
    OK(ops->mse_forward(&loss[0], x, dy, n));
    OK(ops->mse_backward(dx, 1.0f, x, dy, n));
    OK(ops->kl_forward(&loss[1], z, lv, B, L));
    OK(ops->kl_backward(mm, vv, 1.0f, z, lv, B, L));
    OK(ops->distill_forward(&loss[2], z, lv, mu2, lv, DISTILL_PUBLISHED, B, L));
    OK(ops->distill_backward(mm, vv, 1.0f, z, lv, mu2, lv, DISTILL_PUBLISHED, B, L));
    sink_put(out, dx, (size_t)n * 4);
    sink_put(out, mm, (size_t)(B * L) * 4);
    sink_put(out, vv, (size_t)(B * L) * 4);
    sink_put(out, loss, 3 * 4);
    for (int v = 0; v < 3; v++) {
        match_cfg cfg = {(match_variant)v, 0.05f, 0.1f, 40};
        OK(ops->match_forward(&loss[0], &loss[1], S, sm, sv, z, mu2, &cfg, B, L));
        OK(ops->match_backward(dz, lv, dS, -1.0f, -1.0f, S, sm, sv, z, mu2, &cfg, B, L));
        sink_put(out, loss, 2 * 4);
        sink_put(out, dz, (size_t)(B * L) * 4);
        sink_put(out, sm, (size_t)(B * 40) * 4);
    }
    OK(ops->confounder_forward(dz, pi, cv, z, prior, cemb, Wc, bc, B, B, L, G));
    OK(ops->confounder_backward(lv, dcemb, dWc, dbc, dz, pi, cv, z, Wc, B, L, G));
    sink_put(out, dz, (size_t)(B * L) * 4);
    sink_put(out, dcemb, (size_t)(G * L) * 4);
    sink_put(out, dWc, (size_t)(L * 2 * L) * 4);
    adam_cfg acfg = {1e-3, 0.9, 0.999, 1e-8, 1e-3};
    OK(ops->adam_update(x, mm, vv, dy, &acfg, 3, B * L));
    sink_put(out, x, (size_t)(B * L) * 4);
    double rec[2], nd[2];
    int64_t ties;
    int32_t K[2] = {5, 25};
    OK(ops->eval_negatives(rec, nd, &ties, x, dy, K, 2, B, D));
    sink_put(out, rec, sizeof rec);
    sink_put(out, nd, sizeof nd);
    free(x); free(y); free(xhat); free(dy); free(dx); free(W); free(z); free(dz); free(lv); free(mu2); free(eps);
    free(mean); free(rstd); free(rm); free(rv); free(gam); free(bet); free(dgam); free(dbet); free(S); free(dS);
    free(nrm); free(prior); free(cemb); free(Wc); free(bc); free(pi); free(cv); free(dcemb); free(dWc); free(dbc);
    free(mm); free(vv); free(mask); free(sm); free(sv);
    draw_index = saved;
}

static void test_threads(void)
{
#ifdef _OPENMP
    sink a = {NEWF(4000000), 0, 4000000}, b = {NEWF(4000000), 0, 4000000};
    /* our loops (OpenMP) and OpenBLAS's sgemm both with 1, then with 2 threads */
    int saved = omp_get_max_threads(), saved_blas = openblas_get_num_threads();
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
    run_battery(&a);
    omp_set_num_threads(2);
    openblas_set_num_threads(2);
    run_battery(&b);
    omp_set_num_threads(saved);
    openblas_set_num_threads(saved_blas);
    CHECK(a.len == b.len);
    size_t first = a.len;
    for (size_t i = 0; i < a.len && i < b.len; i++)
        if (memcmp(&a.buf[i], &b.buf[i], sizeof(float))) {
            first = i;
            break;
        }
    CHECK_MSG(first == a.len, "1 vs 2 threads: results differ first at float %zu of %zu", first, a.len);
    printf("determinism: %zu floats bit-identical with 1 and 2 threads (OpenMP and OpenBLAS)\n", a.len);
    free(a.buf);
    free(b.buf);
#else
    printf("determinism: built without OpenMP, nothing to compare\n");
#endif
}

/* ---- 13. the published code's numbers (tests/data/fixtures/tiny) ------------------------------------------------------ */

/* One training step of the published code, composed here from the ops: encoders E (BN → dropout → fc_mu / fc_logvar
 * → normalise), decoders R (BN → dropout → fc2 → ReLU), SPEC §2–§4, with the fixture's recorded masks and noise. */

static char fx_root[1024];
static void *fx_mem[1024];
static int fx_nmem;

static void *fx_alloc(size_t bytes)
{
    if (fx_nmem == 1024)
        abort();
    return fx_mem[fx_nmem++] = xmalloc(bytes);
}
#define FXF(n) ((float *)fx_alloc((size_t)(n) * sizeof(float)))
static void fx_free_all(void)
{
    while (fx_nmem)
        free(fx_mem[--fx_nmem]);
}

/* tests/data/fixtures/tiny/<sub>/<name>.npy as float32, checking the element count; NULL (a failed check) when
 * missing */
static float *fx_load(const char *sub, const char *name, int64_t count)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s.npy", fx_root, sub, name);
    npy_file f;
    if (npy_open(&f, path)) {
        CHECK_MSG(0, "%s", debcm_last_error());
        return NULL;
    }
    float *out = NULL;
    if (f.h.count != count)
        CHECK_MSG(0, "%s: %lld elements, expected %lld", path, (long long)f.h.count, (long long)count);
    else {
        out = FXF(count);
        if (npy_to_f32(&f, out)) {
            CHECK_MSG(0, "%s", debcm_last_error());
            out = NULL;
        }
    }
    npy_close(&f);
    return out;
}
static uint8_t *fx_mask(const char *sub, const char *name, int64_t count)
{
    float *m = fx_load(sub, name, count);
    if (!m)
        return NULL;
    uint8_t *u = fx_alloc((size_t)count);
    for (int64_t i = 0; i < count; i++)
        u[i] = m[i] != 0.0f;
    return u;
}

/* a number from meta.json: the value after "key": (the fixture's keys are unique) */
static double fx_meta(const char *meta, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = meta ? strstr(meta, pat) : NULL;
    CHECK_MSG(p != NULL, "meta.json: no \"%s\"", key);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}
static char *fx_read_text(const char *sub, const char *name)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s", fx_root, sub, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *text = fx_alloc(1 << 16);
    size_t n = fread(text, 1, (1 << 16) - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}

/* one parameter tensor: its value, gradient, Adam state and the fixture name */
typedef struct {
    char name[96];
    float *w, *g, *m, *v;
    int64_t n;
} fx_param;
static fx_param fx_params[64];
static int fx_nparams;

static float *fx_param_load(const char *sub, const char *prefix, const char *field, int64_t n, float **grad)
{
    fx_param *p = &fx_params[fx_nparams++];
    snprintf(p->name, sizeof p->name, "%s.%s", prefix, field);
    p->n = n;
    p->w = fx_load(sub, p->name, n);
    p->g = FXF(n);
    p->m = FXF(n);
    p->v = FXF(n);
    if (!p->w)
        p->w = FXF(n);
    if (grad)
        *grad = p->g;
    return p->w;
}
static float *fx_buffer_load(const char *sub, const char *prefix, const char *field, int64_t n)
{
    char name[96];
    snprintf(name, sizeof name, "%s.%s", prefix, field);
    float *w = fx_load(sub, name, n);
    return w ? w : FXF(n);
}

typedef struct {
    char prefix[32];
    int64_t B, D, L;
    float *gamma, *beta, *rm, *rv, *Wmu, *bmu, *Wlv, *blv;
    float *dgamma, *dbeta, *dWmu, *dbmu, *dWlv, *dblv;
    float *bn, *xhat, *mean, *rstd, *h, *amu, *alv, *mu, *lv, *nmu, *nlv;
    uint8_t *mask; /* NULL: evaluation mode */
} fx_encoder;

typedef struct {
    char prefix[32];
    int64_t B, L, D;
    float *gamma, *beta, *rm, *rv, *W, *b;
    float *dgamma, *dbeta, *dW, *db;
    float *bn, *xhat, *mean, *rstd, *h, *pre, *out;
    uint8_t *mask;
} fx_decoder;

/* trainable: parameters registered for gradients and Adam (the student's own, the teacher's); frozen: the
 * student's teacher */
static void fx_encoder_init(fx_encoder *e, const char *sub, const char *prefix, int64_t B, int64_t D, int64_t L,
                            int trainable)
{
    memset(e, 0, sizeof *e);
    snprintf(e->prefix, sizeof e->prefix, "%s", prefix);
    e->B = B, e->D = D, e->L = L;
    if (trainable) {
        e->Wmu = fx_param_load(sub, prefix, "fc_mu.weight", L * D, &e->dWmu);
        e->bmu = fx_param_load(sub, prefix, "fc_mu.bias", L, &e->dbmu);
        e->Wlv = fx_param_load(sub, prefix, "fc_logvar.weight", L * D, &e->dWlv);
        e->blv = fx_param_load(sub, prefix, "fc_logvar.bias", L, &e->dblv);
        e->gamma = fx_param_load(sub, prefix, "bn1.weight", D, &e->dgamma);
        e->beta = fx_param_load(sub, prefix, "bn1.bias", D, &e->dbeta);
    } else {
        e->Wmu = fx_buffer_load(sub, prefix, "fc_mu.weight", L * D);
        e->bmu = fx_buffer_load(sub, prefix, "fc_mu.bias", L);
        e->Wlv = fx_buffer_load(sub, prefix, "fc_logvar.weight", L * D);
        e->blv = fx_buffer_load(sub, prefix, "fc_logvar.bias", L);
        e->gamma = fx_buffer_load(sub, prefix, "bn1.weight", D);
        e->beta = fx_buffer_load(sub, prefix, "bn1.bias", D);
    }
    e->rm = fx_buffer_load(sub, prefix, "bn1.running_mean", D);
    e->rv = fx_buffer_load(sub, prefix, "bn1.running_var", D);
    e->bn = FXF(B * D), e->xhat = FXF(B * D), e->mean = FXF(D), e->rstd = FXF(D), e->h = FXF(B * D);
    e->amu = FXF(B * L), e->alv = FXF(B * L), e->mu = FXF(B * L), e->lv = FXF(B * L), e->nmu = FXF(B);
    e->nlv = FXF(B);
}

static void fx_decoder_init(fx_decoder *d, const char *sub, const char *prefix, int64_t B, int64_t L, int64_t D)
{
    memset(d, 0, sizeof *d);
    snprintf(d->prefix, sizeof d->prefix, "%s", prefix);
    d->B = B, d->L = L, d->D = D;
    d->W = fx_param_load(sub, prefix, "fc2.weight", D * L, &d->dW);
    d->b = fx_param_load(sub, prefix, "fc2.bias", D, &d->db);
    d->gamma = fx_param_load(sub, prefix, "bn1.weight", L, &d->dgamma);
    d->beta = fx_param_load(sub, prefix, "bn1.bias", L, &d->dbeta);
    d->rm = fx_buffer_load(sub, prefix, "bn1.running_mean", L);
    d->rv = fx_buffer_load(sub, prefix, "bn1.running_var", L);
    d->bn = FXF(B * L), d->xhat = FXF(B * L), d->mean = FXF(L), d->rstd = FXF(L), d->h = FXF(B * L);
    d->pre = FXF(B * D), d->out = FXF(B * D);
}

/* E (SPEC §2): h = dropout(BN(x)); mu = normalize(W_mu h + b_mu); lv = normalize(W_lv h + b_lv) */
static void fx_encoder_forward(fx_encoder *e, const float *x)
{
    int64_t B = e->B, D = e->D, L = e->L;
    if (e->mask) {
        OK(ops->bn_forward_train(e->bn, e->xhat, e->mean, e->rstd, e->rm, e->rv, x, e->gamma, e->beta, B, D));
        OK(ops->dropout_forward(e->h, e->bn, e->mask, 0.2f, B * D));
    } else {
        OK(ops->bn_forward_eval(e->h, x, e->gamma, e->beta, e->rm, e->rv, B, D));
    }
    OK(ops->linear_forward(e->amu, e->h, e->Wmu, e->bmu, B, D, L));
    OK(ops->l2norm_forward(e->mu, e->nmu, e->amu, B, L));
    OK(ops->linear_forward(e->alv, e->h, e->Wlv, e->blv, B, D, L));
    OK(ops->l2norm_forward(e->lv, e->nlv, e->alv, B, L));
}

static void fx_encoder_backward(fx_encoder *e, const float *dmu, const float *dlv)
{
    int64_t B = e->B, D = e->D, L = e->L;
    float *da = FXF(B * L), *dh = FXF(B * D), *dbn = FXF(B * D);
    OK(ops->l2norm_backward(da, dmu, e->mu, e->nmu, B, L));
    OK(ops->linear_backward(dh, e->dWmu, e->dbmu, da, e->h, e->Wmu, B, D, L));
    memset(da, 0, (size_t)(B * L) * sizeof *da);
    OK(ops->l2norm_backward(da, dlv, e->lv, e->nlv, B, L));
    OK(ops->linear_backward(dh, e->dWlv, e->dblv, da, e->h, e->Wlv, B, D, L));
    OK(ops->dropout_backward(dbn, dh, e->mask, 0.2f, B * D));
    OK(ops->bn_backward(NULL, e->dgamma, e->dbeta, dbn, e->xhat, e->gamma, e->rstd, B, D)); /* x is data */
}

/* R (SPEC §2): out = relu(W dropout(BN(z)) + b) */
static void fx_decoder_forward(fx_decoder *d, const float *z)
{
    int64_t B = d->B, L = d->L, D = d->D;
    OK(ops->bn_forward_train(d->bn, d->xhat, d->mean, d->rstd, d->rm, d->rv, z, d->gamma, d->beta, B, L));
    OK(ops->dropout_forward(d->h, d->bn, d->mask, 0.2f, B * L));
    OK(ops->linear_forward(d->pre, d->h, d->W, d->b, B, L, D));
    OK(ops->relu_forward(d->out, d->pre, B * D));
}

static void fx_decoder_backward(fx_decoder *d, float *dz, const float *dout)
{
    int64_t B = d->B, L = d->L, D = d->D;
    float *dpre = FXF(B * D), *dh = FXF(B * L), *dbn = FXF(B * L);
    OK(ops->relu_backward(dpre, dout, d->out, B * D));
    OK(ops->linear_backward(dh, d->dW, d->db, dpre, d->h, d->W, B, L, D));
    OK(ops->dropout_backward(dbn, dh, d->mask, 0.2f, B * L));
    OK(ops->bn_backward(dz, d->dgamma, d->dbeta, dbn, d->xhat, d->gamma, d->rstd, B, L));
}

static void fx_check_scalar(const char *kind, const char *meta, const char *key, double value)
{
    double want = fx_meta(meta, key);
    double rel = fabs(value - want) / fmax(fabs(want), 1e-30);
    printf("fixture %-8s %-15s engine % .9g  published % .9g  rel %.2g\n", kind, key, value, want, rel);
    CHECK_MSG(rel <= 1e-5, "fixture %s: %s = %.9g, published %.9g (rel %.3g)", kind, key, value, want, rel);
}

/* gradients (‖a − b‖/‖b‖ ≤ 1e-4), then one Adam step against after_adam1 (within 2·lr, README) */
static void fx_check_grads_and_adam(const char *kind, const char *sub, double lr, double wd)
{
    char dir[256];
    double worst_g = 0.0, worst_step = 0.0;
    int64_t off_rounding = 0, total = 0;
    for (int i = 0; i < fx_nparams; i++) {
        fx_param *p = &fx_params[i];
        snprintf(dir, sizeof dir, "%s/grad", sub);
        float *want = fx_load(dir, p->name, p->n);
        if (!want)
            continue;
        double num = 0.0, den = 0.0;
        for (int64_t j = 0; j < p->n; j++) {
            num += ((double)p->g[j] - want[j]) * ((double)p->g[j] - want[j]);
            den += (double)want[j] * want[j];
        }
        double rel = sqrt(num) / fmax(sqrt(den), 1e-30);
        worst_g = fmax(worst_g, rel);
        CHECK_MSG(rel <= 1e-4, "fixture %s: grad of %s off by %.3g (relative norm)", kind, p->name, rel);

        adam_cfg cfg = {lr, 0.9, 0.999, 1e-8, wd};
        OK(ops->adam_update(p->w, p->m, p->v, p->g, &cfg, 1, p->n));
        snprintf(dir, sizeof dir, "%s/after_adam1", sub);
        float *after = fx_load(dir, p->name, p->n);
        if (!after)
            continue;
        for (int64_t j = 0; j < p->n; j++) {
            double e = fabs((double)p->w[j] - after[j]);
            worst_step = fmax(worst_step, e / lr);
            off_rounding += e > 1e-3 * lr;
            total++;
        }
    }
    printf("fixture %-8s gradients: worst relative norm error %.3g over %d tensors\n", kind, worst_g, fx_nparams);
    printf("fixture %-8s Adam step 1: worst |θ − published| = %.3g·lr; %lld of %lld elements beyond 1e-3·lr\n",
           kind, worst_step, (long long)off_rounding, (long long)total);
    op_stat *s = stat_for(strcmp(kind, "teacher") ? "fixture_student" : "fixture_teacher");
    s->grad = worst_g;
    CHECK_MSG(worst_step <= 2.0 + 1e-3, "fixture %s: Adam step differs by %.3g·lr", kind, worst_step);
    CHECK_MSG(off_rounding * 100 <= total, "fixture %s: %lld elements of the Adam step off", kind,
              (long long)off_rounding);
}

static void fx_check_running(const char *kind, const char *sub, const float *got, const char *prefix,
                             const char *field, int64_t n)
{
    char dir[256], name[96];
    snprintf(dir, sizeof dir, "%s/after_forward", sub);
    snprintf(name, sizeof name, "%s.bn1.%s", prefix, field);
    float *want = fx_load(dir, name, n);
    if (!want)
        return;
    double *wd = to_double(want, n);
    char what[160];
    snprintf(what, sizeof what, "%s %s", kind, name);
    note_fwd(strcmp(kind, "teacher") ? "fixture_student" : "fixture_teacher", what, got, wd, n);
    free(wd);
}

/* kind "teacher": SPEC §3; kind "student": SPEC §4 (confounder, frozen teacher, KLG) */
static void fx_step(const char *kind)
{
    int student = !strcmp(kind, "student");
    const char *sub = kind;
    char *meta = fx_read_text(sub, "meta.json");
    CHECK_MSG(meta != NULL, "%s/%s/meta.json missing", fx_root, sub);
    if (!meta)
        return;
    int64_t B = (int64_t)fx_meta(meta, "B"), Dm = (int64_t)fx_meta(meta, "D_m"), Dv = (int64_t)fx_meta(meta, "D_v");
    int64_t L = (int64_t)fx_meta(meta, "L"), k = (int64_t)fx_meta(meta, "k");
    int64_t G = student ? (int64_t)fx_meta(meta, "G") : 0;
    double lr = fx_meta(meta, "lr"), wd = fx_meta(meta, "weight_decay"), margin = fx_meta(meta, "margin");
    double alpha = student ? fx_meta(meta, "alpha") : 0.0;
    fx_nparams = 0;

    fx_encoder em, ev, tm, tv;
    fx_decoder rm, rv;
    char init[64];
    snprintf(init, sizeof init, "%s/init", sub);
    fx_encoder_init(&em, init, "m_encoder", B, Dm, L, 1);
    fx_encoder_init(&ev, init, "v_encoder", B, Dv, L, 1);
    fx_decoder_init(&rm, init, "m_decoder", B, L, Dm);
    fx_decoder_init(&rv, init, "video_v_decoder", B, L, Dv);
    em.mask = fx_mask(sub, "mask_m_encoder", B * Dm);
    ev.mask = fx_mask(sub, "mask_v_encoder", B * Dv);
    rm.mask = fx_mask(sub, "mask_m_decoder", B * L);
    rv.mask = fx_mask(sub, "mask_video_v_decoder", B * L);
    float *x_m = fx_load(sub, "x_m", B * Dm), *x_v = fx_load(sub, "x_v", B * Dv);
    float *eps_m = fx_load(sub, "eps_m", B * L), *eps_v = fx_load(sub, "eps_v", B * L);
    float *cemb = NULL, *dcemb = NULL, *Wc = NULL, *dWc = NULL, *bc = NULL, *dbc = NULL, *prior = NULL;
    if (student) {
        cemb = fx_param_load(init, "confounder_emb", "weight", G * L, &dcemb);
        Wc = fx_param_load(init, "linear", "weight", L * 2 * L, &dWc);
        bc = fx_param_load(init, "linear", "bias", L, &dbc);
        prior = fx_load(sub, "user_prior", B * G);
        char tsub[64];
        snprintf(tsub, sizeof tsub, "%s/teacher", sub);
        fx_encoder_init(&tm, tsub, "m_encoder", B, Dm, L, 0);
        fx_encoder_init(&tv, tsub, "v_encoder", B, Dv, L, 0);
    }
    if (!em.mask || !ev.mask || !rm.mask || !rv.mask || !x_m || !x_v || !eps_m || !eps_v || (student && !prior))
        return;

    /* forward */
    float *z_m = FXF(B * L), *z_v = FXF(B * L), *zc = FXF(B * L), *pi = FXF(student ? G : 1), *cvec = FXF(L);
    float *S = FXF(B * B), kl_m, kl_v, rec_m, rec_v, music, video, dist_m = 0, dist_v = 0;
    int32_t *sel_m = fx_alloc((size_t)(B * k) * sizeof *sel_m), *sel_v = fx_alloc((size_t)(B * k) * sizeof *sel_v);
    fx_encoder_forward(&em, x_m);
    fx_encoder_forward(&ev, x_v);
    OK(ops->reparam_forward(z_m, em.mu, em.lv, eps_m, B * L));
    OK(ops->reparam_forward(z_v, ev.mu, ev.lv, eps_v, B * L));
    const float *zm_match = z_m; /* teacher: z_m; student: z'_m = W_c [c ; z_m] + b_c */
    if (student) {
        OK(ops->confounder_forward(zc, pi, cvec, z_m, prior, cemb, Wc, bc, B, B, L, G));
        zm_match = zc;
    }
    fx_decoder_forward(&rm, z_v);      /* r_m = R_m(z_v) */
    fx_decoder_forward(&rv, zm_match); /* r_v = R_v(z_m) (student: z'_m) */
    OK(ops->mse_forward(&rec_m, rm.out, x_m, B * Dm));
    OK(ops->mse_forward(&rec_v, rv.out, x_v, B * Dv));
    OK(ops->kl_forward(&kl_m, em.mu, em.lv, B, L));
    OK(ops->kl_forward(&kl_v, ev.mu, ev.lv, B, L));
    match_cfg mcfg = {MATCH_PUBLISHED, (float)margin, 1.0f, k};
    OK(ops->match_forward(&music, &video, S, sel_m, sel_v, zm_match, z_v, &mcfg, B, L));
    if (student) { /* the frozen teacher in eval mode */
        fx_encoder_forward(&tm, x_m);
        fx_encoder_forward(&tv, x_v);
        OK(ops->distill_forward(&dist_m, em.mu, em.lv, tm.mu, tm.lv, DISTILL_PUBLISHED, B, L));
        OK(ops->distill_forward(&dist_v, ev.mu, ev.lv, tv.mu, tv.lv, DISTILL_PUBLISHED, B, L));
    }
    double recon = (double)rec_m + rec_v;
    double loss = -(double)music - video + alpha * ((double)dist_m + dist_v) + kl_m + kl_v + recon;
    fx_check_scalar(kind, meta, "recon", recon);
    fx_check_scalar(kind, meta, "kl_m", kl_m);
    fx_check_scalar(kind, meta, "kl_v", kl_v);
    if (student) {
        fx_check_scalar(kind, meta, "video_term", video);
        fx_check_scalar(kind, meta, "distill_m", dist_m);
        fx_check_scalar(kind, meta, "distill_v", dist_v);
    } else {
        fx_check_scalar(kind, meta, "neg_video_term", -(double)video);
    }
    fx_check_scalar(kind, meta, "loss", loss);
    fx_check_running(kind, sub, em.rm, "m_encoder", "running_mean", Dm);
    fx_check_running(kind, sub, em.rv, "m_encoder", "running_var", Dm);
    fx_check_running(kind, sub, ev.rm, "v_encoder", "running_mean", Dv);
    fx_check_running(kind, sub, ev.rv, "v_encoder", "running_var", Dv);
    fx_check_running(kind, sub, rm.rm, "m_decoder", "running_mean", L);
    fx_check_running(kind, sub, rm.rv, "m_decoder", "running_var", L);
    fx_check_running(kind, sub, rv.rm, "video_v_decoder", "running_mean", L);
    fx_check_running(kind, sub, rv.rv, "video_v_decoder", "running_var", L);

    /* backward of loss = −music − video + α·distill + KL_m + KL_v + recon (factor = 1) */
    float *dz_m = FXF(B * L), *dz_v = FXF(B * L), *dzc = FXF(B * L), *dS = FXF(B * B);
    float *dmu_m = FXF(B * L), *dlv_m = FXF(B * L), *dmu_v = FXF(B * L), *dlv_v = FXF(B * L);
    float *dr_m = FXF(B * Dm), *dr_v = FXF(B * Dv);
    float *dzm_match = student ? dzc : dz_m;
    OK(ops->match_backward(dzm_match, dz_v, dS, -1.0f, -1.0f, S, sel_m, sel_v, zm_match, z_v, &mcfg, B, L));
    OK(ops->mse_backward(dr_m, 1.0f, rm.out, x_m, B * Dm));
    OK(ops->mse_backward(dr_v, 1.0f, rv.out, x_v, B * Dv));
    fx_decoder_backward(&rm, dz_v, dr_m);
    fx_decoder_backward(&rv, dzm_match, dr_v);
    if (student)
        OK(ops->confounder_backward(dz_m, dcemb, dWc, dbc, dzc, pi, cvec, z_m, Wc, B, L, G));
    OK(ops->reparam_backward(dmu_m, dlv_m, dz_m, em.lv, eps_m, B * L));
    OK(ops->reparam_backward(dmu_v, dlv_v, dz_v, ev.lv, eps_v, B * L));
    OK(ops->kl_backward(dmu_m, dlv_m, 1.0f, em.mu, em.lv, B, L));
    OK(ops->kl_backward(dmu_v, dlv_v, 1.0f, ev.mu, ev.lv, B, L));
    if (student) {
        OK(ops->distill_backward(dmu_m, dlv_m, (float)alpha, em.mu, em.lv, tm.mu, tm.lv, DISTILL_PUBLISHED, B, L));
        OK(ops->distill_backward(dmu_v, dlv_v, (float)alpha, ev.mu, ev.lv, tv.mu, tv.lv, DISTILL_PUBLISHED, B, L));
    }
    fx_encoder_backward(&em, dmu_m, dlv_m);
    fx_encoder_backward(&ev, dmu_v, dlv_v);
    fx_check_grads_and_adam(kind, sub, lr, wd);
}

static void test_fixtures(const char *data_dir)
{
    snprintf(fx_root, sizeof fx_root, "%s/fixtures/tiny", data_dir);
    fx_step("teacher");
    fx_free_all();
    fx_step("student");
    fx_free_all();
}

/* ---- main ------------------------------------------------------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    const char *env = getenv("DEBCM_TEST_SEED");
    if (env && *env)
        test_seed = strtoull(env, NULL, 0);
    ops = debcm_ops_cpu();
    printf("test_ops: backend %s, seed %llu\n", ops->name, (unsigned long long)test_seed);

    test_linear(7, 5, 3, 1);
    test_linear(12, 40, 16, 1);
    test_linear(33, 5, 40, 0);
    test_bn(7, 5);
    test_bn(12, 40);
    test_bn(33, 5);
    test_dropout();
    test_l2norm(7, 5);
    test_l2norm(12, 40);
    test_reparam();
    test_relu_mse(7 * 5);
    test_relu_mse(33 * 40);
    for (int variant = -1; variant <= DISTILL_KL; variant++) {
        test_kl(7, 5, variant);
        test_kl(33, 40, variant);
    }
    for (int v = 0; v < 3; v++) {
        test_match((match_variant)v, 7, 5, 1);
        test_match((match_variant)v, 12, 40, 5);
        test_match((match_variant)v, 33, 5, 5);
        test_match((match_variant)v, 33, 5, 32);
        test_match((match_variant)v, 7, 5, 40); /* k capped at B − 1 */
    }
    test_topk_ties();
    test_confounder(7, 7, 5, 6);
    test_confounder(12, 1, 16, 3);
    test_confounder(33, 33, 5, 6);
    test_adam();
    test_eval();
    test_threads();
    test_fixtures(argc > 1 ? argv[1] : "tests/data");

    printf("%-20s %12s %12s\n", "op", "worst grad", "worst fwd");
    for (int i = 0; i < nstats; i++)
        printf("%-20s %12.3g %12.3g\n", stats[i].name, stats[i].grad, stats[i].fwd);
    printf("(grad: max|analytic − fd| / max|fd|, tolerance %g; fwd: relative, tolerance %g; adam: in units of lr)\n",
           GRAD_TOL, FWD_TOL);
    return check_done();
}
