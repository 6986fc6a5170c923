/* engine/ops_cpu.c — the CPU backend of engine/ops.h: every DebCM op, forward and backward, as plain C loops
 * with OpenBLAS cblas_sgemm for the matrix products and OpenMP over OUTPUTS (rows, feature blocks, columns),
 * never over a reduction axis, so a result does not depend on the thread count. Scalar losses are summed in
 * double over a fixed number of chunks (SUM_CHUNKS) and the chunks added in order. The per-element formulas are
 * the shared ones of engine/math.h; this file adds only indexing, reductions and shape checks. It is the oracle
 * the CUDA backend is tested against, so readability comes before speed here. */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cblas.h>

#include "engine/error.h"
#include "engine/math.h"
#include "engine/ops.h"
#include "engine/ops_check.h"
#include "engine/rng.h"
#include "engine/rng_x86.h"

#define PAR_MIN 32768  /* elements below which a loop stays on one thread (the fork costs more) */
#define SUM_CHUNKS 64  /* fixed split of a scalar reduction: the same partial sums for any thread count */
#define BN_BLOCK 32    /* features per BatchNorm work item (rows are read contiguously within a block) */

#define REQUIRE(cond, ...)                                                                                   \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            return debcm_fail(__VA_ARGS__);                                                                  \
    } while (0)

/* sizes handed to BLAS must fit its int */

/* ---- memory (host) -------------------------------------------------------------------------------------------- */

static void *cpu_alloc(size_t bytes)
{
    size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded == 0)
        rounded = 64;
    void *p = aligned_alloc(64, rounded);
    if (!p) {
        long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
        debcm_fail("cpu_alloc: out of host memory for %zu bytes (%.1f MiB asked; %.0f MiB of RAM free)", bytes,
                   (double)bytes / 1048576.0, pages > 0 && page > 0 ? (double)pages * (double)page / 1048576.0 : 0.0);
        return NULL;
    }
    memset(p, 0, rounded);
    return p;
}

static void cpu_free(void *p) { free(p); }

static int cpu_memcpy(void *dst, const void *src, size_t bytes)
{
    if (bytes)
        memmove(dst, src, bytes);
    return 0;
}

static int cpu_zero(void *p, size_t bytes)
{
    if (bytes)
        memset(p, 0, bytes);
    return 0;
}

static int cpu_sync(void) { return 0; }

/* ---- gather rows ------------------------------------------------------------------------------------------- */

static int cpu_gather_rows(float *dst, const float *src, const int64_t *idx, int64_t B, int64_t D)
{
    REQUIRE(dst && src && idx && B >= 0 && D > 0, "gather_rows: NULL tensor or bad sizes B=%lld D=%lld",
            (long long)B, (long long)D);
#pragma omp parallel for schedule(static) if (B * D >= PAR_MIN)
    for (int64_t r = 0; r < B; r++)
        memcpy(dst + r * D, src + idx[r] * D, (size_t)D * sizeof *dst);
    return 0;
}

/* db[o] += Σ_r dy[r, o], each column summed in double by increasing r; the columns in blocks of BN_BLOCK, so the
 * rows are read contiguously and the block's sums vectorise */
static void column_sums_add(float *db, const float *dy, int64_t B, int64_t out)
{
    int64_t nblocks = (out + BN_BLOCK - 1) / BN_BLOCK;
#pragma omp parallel for schedule(static) if (B * out >= PAR_MIN)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t d0 = blk * BN_BLOCK, nd = out - d0 < BN_BLOCK ? out - d0 : BN_BLOCK;
        double s[BN_BLOCK] = {0};
        if (nd == BN_BLOCK) /* the common case, with a constant trip count */
            for (int64_t r = 0; r < B; r++)
                for (int64_t j = 0; j < BN_BLOCK; j++)
                    s[j] += dy[r * out + d0 + j];
        else
            for (int64_t r = 0; r < B; r++)
                for (int64_t j = 0; j < nd; j++)
                    s[j] += dy[r * out + d0 + j];
        for (int64_t j = 0; j < nd; j++)
            db[d0 + j] += (float)s[j];
    }
}

/* ---- linear ------------------------------------------------------------------------------------------------------ */

static int cpu_linear_forward(float *y, const float *x, const float *W, const float *b, int64_t B, int64_t in,
                              int64_t out)
{
    REQUIRE(y && x && W, "linear_forward: NULL tensor");
    REQUIRE(ops_blas_ok(B) && ops_blas_ok(in) && ops_blas_ok(out), "linear_forward: bad sizes B=%lld in=%lld out=%lld",
            (long long)B, (long long)in, (long long)out);
    /* y = x·Wᵀ (PyTorch layout W: [out, in]) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)out, (int)in, 1.0f, x, (int)in, W, (int)in,
                0.0f, y, (int)out);
    if (b) {
#pragma omp parallel for schedule(static) if (B * out >= PAR_MIN)
        for (int64_t r = 0; r < B; r++)
            for (int64_t o = 0; o < out; o++)
                y[r * out + o] += b[o];
    }
    return 0;
}

static int cpu_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                               int64_t B, int64_t in, int64_t out)
{
    REQUIRE(dy, "linear_backward: NULL dy");
    REQUIRE(ops_blas_ok(B) && ops_blas_ok(in) && ops_blas_ok(out), "linear_backward: bad sizes B=%lld in=%lld out=%lld",
            (long long)B, (long long)in, (long long)out);
    if (dx) { /* dx[B,in] += dy[B,out]·W[out,in] */
        REQUIRE(W, "linear_backward: dx wanted but W is NULL");
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)in, (int)out, 1.0f, dy, (int)out, W,
                    (int)in, 1.0f, dx, (int)in);
    }
    if (dW) { /* dW[out,in] += dyᵀ·x */
        REQUIRE(x, "linear_backward: dW wanted but x is NULL");
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)out, (int)in, (int)B, 1.0f, dy, (int)out, x,
                    (int)in, 1.0f, dW, (int)in);
    }
    if (db)
        column_sums_add(db, dy, B, out);
    return 0;
}

/* ---- BatchNorm (SPEC §2) ------------------------------------------------------------------------------------ */

static int cpu_bn_forward_train(float *restrict y, float *restrict xhat, float *mean, float *rstd,
                                float *running_mean, float *running_var, const float *restrict x,
                                const float *gamma, const float *beta, int64_t B, int64_t D)
{
    REQUIRE(y && xhat && mean && rstd && running_mean && running_var && x && gamma && beta,
            "bn_forward_train: NULL tensor");
    REQUIRE(D > 0, "bn_forward_train: D = %lld", (long long)D);
    /* PyTorch refuses a training-mode BatchNorm over one row (the unbiased variance divides by B − 1) */
    REQUIRE(B >= 2, "bn_forward_train: a batch of %lld row(s); training-mode BatchNorm needs at least 2",
            (long long)B);
    int64_t nblocks = (D + BN_BLOCK - 1) / BN_BLOCK;
#pragma omp parallel for schedule(static) if (B * D >= PAR_MIN)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t d0 = blk * BN_BLOCK, nd = D - d0 < BN_BLOCK ? D - d0 : BN_BLOCK;
        double s[BN_BLOCK], q[BN_BLOCK];
        for (int64_t j = 0; j < nd; j++)
            s[j] = q[j] = 0.0;
        for (int64_t r = 0; r < B; r++)
            for (int64_t j = 0; j < nd; j++)
                s[j] += x[r * D + d0 + j];
        for (int64_t j = 0; j < nd; j++)
            s[j] /= (double)B; /* s now holds the mean */
        for (int64_t r = 0; r < B; r++)
            for (int64_t j = 0; j < nd; j++) {
                double t = x[r * D + d0 + j] - s[j];
                q[j] += t * t;
            }
        for (int64_t j = 0; j < nd; j++) {
            int64_t d = d0 + j;
            float var_biased = (float)(q[j] / (double)B);    /* normalises */
            float var_unbiased = (float)(q[j] / (double)(B - 1)); /* feeds running_var (SPEC §2) */
            mean[d] = (float)s[j];
            rstd[d] = bn_rstd(var_biased, DEBCM_BN_EPS);
            running_mean[d] = bn_running_update(running_mean[d], mean[d], DEBCM_BN_MOMENTUM);
            running_var[d] = bn_running_update(running_var[d], var_unbiased, DEBCM_BN_MOMENTUM);
        }
        float m[BN_BLOCK], rs[BN_BLOCK], g[BN_BLOCK], bt[BN_BLOCK]; /* local: no aliasing with the outputs */
        for (int64_t j = 0; j < nd; j++) {
            m[j] = mean[d0 + j];
            rs[j] = rstd[d0 + j];
            g[j] = gamma[d0 + j];
            bt[j] = beta[d0 + j];
        }
        for (int64_t r = 0; r < B; r++)
            for (int64_t j = 0; j < nd; j++) {
                int64_t i = r * D + d0 + j;
                float xh = bn_xhat(x[i], m[j], rs[j]);
                xhat[i] = xh;
                y[i] = bn_apply(xh, g[j], bt[j]);
            }
    }
    return 0;
}

static int cpu_bn_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
                               const float *running_mean, const float *running_var, int64_t B, int64_t D)
{
    REQUIRE(y && x && gamma && beta && running_mean && running_var, "bn_forward_eval: NULL tensor");
    REQUIRE(B > 0 && D > 0, "bn_forward_eval: bad sizes B=%lld D=%lld", (long long)B, (long long)D);
#pragma omp parallel for schedule(static) if (B * D >= PAR_MIN)
    for (int64_t r = 0; r < B; r++)
        for (int64_t d = 0; d < D; d++) {
            float rs = bn_rstd(running_var[d], DEBCM_BN_EPS);
            y[r * D + d] = bn_apply(bn_xhat(x[r * D + d], running_mean[d], rs), gamma[d], beta[d]);
        }
    return 0;
}

static int cpu_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *xhat,
                           const float *gamma, const float *rstd, int64_t B, int64_t D)
{
    REQUIRE(dy && xhat && gamma && rstd, "bn_backward: NULL tensor");
    REQUIRE(B >= 2 && D > 0, "bn_backward: bad sizes B=%lld D=%lld", (long long)B, (long long)D);
    int64_t nblocks = (D + BN_BLOCK - 1) / BN_BLOCK;
#pragma omp parallel for schedule(static) if (B * D >= PAR_MIN)
    for (int64_t blk = 0; blk < nblocks; blk++) {
        int64_t d0 = blk * BN_BLOCK, nd = D - d0 < BN_BLOCK ? D - d0 : BN_BLOCK;
        double sdy[BN_BLOCK], sdyx[BN_BLOCK];
        for (int64_t j = 0; j < nd; j++)
            sdy[j] = sdyx[j] = 0.0;
        for (int64_t r = 0; r < B; r++)
            for (int64_t j = 0; j < nd; j++) {
                int64_t i = r * D + d0 + j;
                sdy[j] += dy[i];
                sdyx[j] += (double)dy[i] * xhat[i];
            }
        for (int64_t j = 0; j < nd; j++) {
            if (dbeta)
                dbeta[d0 + j] += (float)sdy[j];
            if (dgamma)
                dgamma[d0 + j] += (float)sdyx[j];
        }
        if (dx)
            for (int64_t r = 0; r < B; r++)
                for (int64_t j = 0; j < nd; j++) {
                    int64_t i = r * D + d0 + j;
                    dx[i] += bn_backward_dx(dy[i], xhat[i], gamma[d0 + j], rstd[d0 + j], (float)sdy[j],
                                            (float)sdyx[j], (float)B);
                }
    }
    return 0;
}

/* ---- dropout (SPEC §2) --------------------------------------------------------------------------------------- */

static int cpu_dropout_mask(uint8_t *mask, debcm_draw draw, float p, int64_t n)
{
    REQUIRE(mask && n >= 0, "dropout_mask: NULL mask or n = %lld", (long long)n);
    REQUIRE(p >= 0.0f && p < 1.0f, "dropout_mask: p = %g, expected 0 <= p < 1", (double)p);
    if (n == 0)
        return 0;
    /* element e = counter + i is lane e mod 4 of Philox block e / 4 (rng_uniform): one Philox call per 4 masks,
     * eight blocks at a time with AVX2 where the CPU has it (engine/rng_x86.h: the same numbers) */
    const uint64_t c0 = draw.counter, c1 = draw.counter + (uint64_t)n, q0 = c0 >> 2, nq = ((c1 - 1) >> 2) - q0 + 1;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t t = 0; t < (int64_t)((nq + 7) / 8); t++) {
        uint64_t qb = q0 + 8 * (uint64_t)t;
        uint32_t r[4][8];
        rng_philox8(r, draw.seed, draw.stream, qb);
        for (int b = 0; b < 8; b++)
            for (int lane = 0; lane < 4; lane++) {
                uint64_t e = (qb + (uint64_t)b) * 4 + (uint64_t)lane;
                if (e >= c0 && e < c1)
                    mask[e - c0] = dropout_keep(rng_u01(r[lane][b]), p);
            }
    }
    return 0;
}

static int cpu_dropout_forward(float *y, const float *x, const uint8_t *mask, float p, int64_t n)
{
    REQUIRE(y && x && n >= 0, "dropout_forward: NULL tensor or n = %lld", (long long)n);
    REQUIRE(p >= 0.0f && p < 1.0f, "dropout_forward: p = %g, expected 0 <= p < 1", (double)p);
    if (!mask) { /* evaluation mode */
        if (y != x)
            memmove(y, x, (size_t)n * sizeof *y);
        return 0;
    }
    float scale = dropout_scale(p);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        y[i] = dropout_apply(x[i], mask[i], scale);
    return 0;
}

static int cpu_dropout_backward(float *dx, const float *dy, const uint8_t *mask, float p, int64_t n)
{
    REQUIRE(dy && mask && n >= 0, "dropout_backward: NULL tensor or n = %lld", (long long)n);
    REQUIRE(p >= 0.0f && p < 1.0f, "dropout_backward: p = %g, expected 0 <= p < 1", (double)p);
    if (!dx)
        return 0;
    float scale = dropout_scale(p);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        dx[i] += dropout_apply(dy[i], mask[i], scale);
    return 0;
}

/* ---- row L2 normalisation (SPEC §2) ------------------------------------------------------------------------- */

static int cpu_l2norm_forward(float *y, float *norm, const float *x, int64_t B, int64_t D)
{
    REQUIRE(y && norm && x, "l2norm_forward: NULL tensor");
    REQUIRE(B > 0 && D > 0, "l2norm_forward: bad sizes B=%lld D=%lld", (long long)B, (long long)D);
#pragma omp parallel for schedule(static) if (B * D >= PAR_MIN)
    for (int64_t r = 0; r < B; r++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++)
            s += (double)x[r * D + d] * x[r * D + d];
        norm[r] = (float)sqrt(s);
        float n = l2n_denominator(norm[r]);
        for (int64_t d = 0; d < D; d++)
            y[r * D + d] = x[r * D + d] / n;
    }
    return 0;
}

static int cpu_l2norm_backward(float *dx, const float *dy, const float *y, const float *norm, int64_t B,
                               int64_t D)
{
    REQUIRE(dy && y && norm, "l2norm_backward: NULL tensor");
    REQUIRE(B > 0 && D > 0, "l2norm_backward: bad sizes B=%lld D=%lld", (long long)B, (long long)D);
    if (!dx)
        return 0;
#pragma omp parallel for schedule(static) if (B * D >= PAR_MIN)
    for (int64_t r = 0; r < B; r++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++)
            s += (double)y[r * D + d] * dy[r * D + d];
        for (int64_t d = 0; d < D; d++)
            dx[r * D + d] += l2n_backward_dx(dy[r * D + d], y[r * D + d], (float)s, norm[r]);
    }
    return 0;
}

/* ---- reparameterisation (SPEC §2) ---------------------------------------------------------------------------- */

static int cpu_normal_draw(float *eps, debcm_draw draw, int64_t n)
{
    REQUIRE(eps && n >= 0, "normal_draw: NULL tensor or n = %lld", (long long)n);
    if (n == 0)
        return 0;
    /* element e = counter + i comes from Philox block e / 2 (rng_normal): one Philox call per 2 normals, eight
     * blocks at a time (AVX2 where the CPU has it) */
    const uint64_t c0 = draw.counter, c1 = draw.counter + (uint64_t)n, q0 = c0 >> 1, nq = ((c1 - 1) >> 1) - q0 + 1;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t t = 0; t < (int64_t)((nq + 7) / 8); t++) {
        uint64_t qb = q0 + 8 * (uint64_t)t;
        uint32_t r8[4][8];
        rng_philox8(r8, draw.seed, draw.stream, qb);
        for (int b = 0; b < 8; b++) {
            rng_u32x4 r = {{r8[0][b], r8[1][b], r8[2][b], r8[3][b]}};
            for (int half = 0; half < 2; half++) {
                uint64_t e = (qb + (uint64_t)b) * 2 + (uint64_t)half;
                if (e >= c0 && e < c1)
                    eps[e - c0] = rng_normal_from(r, half);
            }
        }
    }
    return 0;
}

static int cpu_reparam_forward(float *z, const float *mu, const float *lv, const float *eps, int64_t n)
{
    REQUIRE(z && mu && n >= 0, "reparam_forward: NULL tensor or n = %lld", (long long)n);
    if (!eps) { /* evaluation: z = mu */
        if (z != mu)
            memmove(z, mu, (size_t)n * sizeof *z);
        return 0;
    }
    REQUIRE(lv, "reparam_forward: NULL lv");
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        z[i] = reparam_z(mu[i], lv[i], eps[i]);
    return 0;
}

static int cpu_reparam_backward(float *dmu, float *dlv, const float *dz, const float *lv, const float *eps,
                                int64_t n)
{
    REQUIRE(dz && n >= 0, "reparam_backward: NULL dz or n = %lld", (long long)n);
    REQUIRE(!dlv || (lv && eps), "reparam_backward: dlv wanted but lv or eps is NULL");
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (dmu)
            dmu[i] += dz[i];
        if (dlv)
            dlv[i] += dz[i] * reparam_dz_dlv(lv[i], eps[i]);
    }
    return 0;
}

/* ---- ReLU, MSE ------------------------------------------------------------------------------------------------ */

static int cpu_relu_forward(float *y, const float *x, int64_t n)
{
    REQUIRE(y && x && n >= 0, "relu_forward: NULL tensor or n = %lld", (long long)n);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        y[i] = relu(x[i]);
    return 0;
}

static int cpu_relu_backward(float *dx, const float *dy, const float *y, int64_t n)
{
    REQUIRE(dy && y && n >= 0, "relu_backward: NULL tensor or n = %lld", (long long)n);
    if (!dx)
        return 0;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        dx[i] += relu_backward(dy[i], y[i]);
    return 0;
}

static int cpu_mse_forward(float *loss, const float *x, const float *target, int64_t n)
{
    REQUIRE(loss && x && target && n > 0, "mse_forward: NULL tensor or n = %lld", (long long)n);
    double part[SUM_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int c = 0; c < SUM_CHUNKS; c++) {
        int64_t lo = n * c / SUM_CHUNKS, hi = n * (c + 1) / SUM_CHUNKS;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++) {
            double t = (double)x[i] - target[i];
            s += t * t;
        }
        part[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < SUM_CHUNKS; c++)
        total += part[c];
    *loss = (float)(total / (double)n);
    return 0;
}

static int cpu_mse_backward(float *dx, float dloss, const float *x, const float *target, int64_t n)
{
    REQUIRE(x && target && n > 0, "mse_backward: NULL tensor or n = %lld", (long long)n);
    if (!dx)
        return 0;
    float f = 2.0f * dloss / (float)n;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        dx[i] += f * (x[i] - target[i]);
    return 0;
}

/* ---- KL to the standard normal (SPEC §2) --------------------------------------------------------------------- */

static int cpu_kl_forward(float *loss, const float *mu, const float *lv, int64_t B, int64_t L)
{
    REQUIRE(loss && mu && lv, "kl_forward: NULL tensor");
    REQUIRE(B > 0 && L > 0, "kl_forward: bad sizes B=%lld L=%lld", (long long)B, (long long)L);
    int64_t n = B * L;
    double part[SUM_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int c = 0; c < SUM_CHUNKS; c++) {
        int64_t lo = n * c / SUM_CHUNKS, hi = n * (c + 1) / SUM_CHUNKS;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++)
            s += kl_term(mu[i], lv[i]);
        part[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < SUM_CHUNKS; c++)
        total += part[c];
    *loss = (float)(-0.5 * total / (double)B); /* −½ · mean over rows of the row sums */
    return 0;
}

static int cpu_kl_backward(float *dmu, float *dlv, float dloss, const float *mu, const float *lv, int64_t B,
                           int64_t L)
{
    REQUIRE(mu && lv, "kl_backward: NULL tensor");
    REQUIRE(B > 0 && L > 0, "kl_backward: bad sizes B=%lld L=%lld", (long long)B, (long long)L);
    int64_t n = B * L;
    float f = -0.5f * dloss / (float)B;
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (dmu)
            dmu[i] += f * kl_term_dmu(mu[i]);
        if (dlv)
            dlv[i] += f * kl_term_dlv(lv[i]);
    }
    return 0;
}

/* ---- distillation (SPEC §4, §6) ------------------------------------------------------------------------------ */

static int cpu_distill_forward(float *loss, const float *mu1, const float *lv1, const float *mu2,
                               const float *lv2, distill_variant variant, int64_t B, int64_t L)
{
    REQUIRE(loss && mu1 && lv1 && mu2 && lv2, "distill_forward: NULL tensor");
    REQUIRE(B > 0 && L > 0, "distill_forward: bad sizes B=%lld L=%lld", (long long)B, (long long)L);
    REQUIRE(variant == DISTILL_PUBLISHED || variant == DISTILL_KL, "distill_forward: unknown variant %d",
            (int)variant);
    int64_t n = B * L;
    double part[SUM_CHUNKS];
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int c = 0; c < SUM_CHUNKS; c++) {
        int64_t lo = n * c / SUM_CHUNKS, hi = n * (c + 1) / SUM_CHUNKS;
        double s = 0.0;
        for (int64_t i = lo; i < hi; i++)
            s += variant == DISTILL_PUBLISHED ? klg_published_term(mu1[i], lv1[i], mu2[i], lv2[i])
                                              : klg_kl_term(mu1[i], lv1[i], mu2[i], lv2[i]);
        part[c] = s;
    }
    double total = 0.0;
    for (int c = 0; c < SUM_CHUNKS; c++)
        total += part[c];
    if (variant == DISTILL_PUBLISHED) /* faithful: −½·mean_rows(1 − Σ_l t), the 1 outside the sum */
        *loss = (float)(-0.5 * ((double)B - total) / (double)B);
    else /* ½·mean_rows Σ_l t */
        *loss = (float)(0.5 * total / (double)B);
    return 0;
}

static int cpu_distill_backward(float *dmu1, float *dlv1, float dloss, const float *mu1, const float *lv1,
                                const float *mu2, const float *lv2, distill_variant variant, int64_t B, int64_t L)
{
    REQUIRE(mu1 && lv1 && mu2 && lv2, "distill_backward: NULL tensor");
    REQUIRE(B > 0 && L > 0, "distill_backward: bad sizes B=%lld L=%lld", (long long)B, (long long)L);
    REQUIRE(variant == DISTILL_PUBLISHED || variant == DISTILL_KL, "distill_backward: unknown variant %d",
            (int)variant);
    int64_t n = B * L;
    float f = 0.5f * dloss / (float)B; /* both forms: ∂loss/∂t = +½/B */
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        if (variant == DISTILL_PUBLISHED) {
            if (dmu1)
                dmu1[i] += f * klg_published_term_dmu1(mu1[i], mu2[i], lv2[i]);
            if (dlv1)
                dlv1[i] += f * klg_published_term_dlv1(lv1[i], lv2[i]);
        } else {
            if (dmu1)
                dmu1[i] += f * klg_kl_term_dmu1(mu1[i], mu2[i], lv2[i]);
            if (dlv1)
                dlv1[i] += f * klg_kl_term_dlv1(lv1[i], lv2[i]);
        }
    }
    return 0;
}

/* ---- in-batch matching (SPEC §3, §6) -------------------------------------------------------------------------
 * S[i][j] = <zm_i, zv_j>. "music" runs over row i of S (positive S_ii, negatives S_ij, j ≠ i); "video" over
 * column j (positive S_jj, negatives S_ij, i ≠ j). For the top-k variants each row (column) is scanned by
 * topk_select (math.h): the k largest values, ties to the lower index, listed in increasing index. */

/* T[j][i] = S[i][j] for a B × B matrix, in tiles (both sides stay in cache) */
static void transpose(float *restrict T, const float *restrict S, int64_t B)
{
    enum { TILE = 32 };
    int64_t nt = (B + TILE - 1) / TILE;
#pragma omp parallel for schedule(static) if (B * B >= PAR_MIN)
    for (int64_t ti = 0; ti < nt; ti++)
        for (int64_t j0 = 0; j0 < B; j0 += TILE)
            for (int64_t i = ti * TILE; i < B && i < (ti + 1) * TILE; i++)
                for (int64_t j = j0; j < B && j < j0 + TILE; j++)
                    T[j * B + i] = S[i * B + j];
}


static int cpu_match_forward(float *music, float *video, float *S, int32_t *sel_m, int32_t *sel_v,
                             const float *zm, const float *zv, const match_cfg *cfg, int64_t B, int64_t L)
{
    if (ops_check_match("match_forward", cfg, B, L))
        return -1;
    REQUIRE(music && video && S && zm && zv, "match_forward: NULL tensor");
    REQUIRE(cfg->variant == MATCH_SOFTMAX || (sel_m && sel_v), "match_forward: NULL selection buffer");
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)B, (int)L, 1.0f, zm, (int)L, zv, (int)L,
                0.0f, S, (int)B);
    /* St = Sᵀ, so that the video terms (columns of S) are row scans too: row a of M = S or St holds the
     * positive M[a][a] and the negatives M[a][j], j ≠ a, of music a or video a */
    float *St = malloc((size_t)(B * B) * sizeof *St);
    int64_t k = cfg->variant == MATCH_SOFTMAX ? 1 : match_k_eff(cfg->k, B);
    float *vals = malloc((size_t)(2 * B * k) * sizeof *vals); /* top-k values, then the per-row terms */
    if (!St || !vals) {
        free(St);
        free(vals);
        return debcm_fail("match_forward: out of memory for B = %lld", (long long)B);
    }
    transpose(St, S, B);

    match_variant var = cfg->variant;
    float margin = cfg->margin;
    double inv_tau = var == MATCH_SOFTMAX ? 1.0 / (double)cfg->tau : 0.0;
    int oom = 0;
#pragma omp parallel if (B * B >= PAR_MIN)
    {
        float *rowv = malloc((size_t)B * sizeof *rowv); /* one row's values */
        uint32_t *keys = malloc((size_t)(2 * B) * sizeof *keys); /* topk_select's scratch */
        if (!rowv || !keys) {
            free(rowv);
            rowv = NULL;
#pragma omp atomic write
            oom = 1;
        }
#pragma omp for schedule(static)
        for (int64_t row = 0; row < 2 * B; row++) {
            int64_t a = row < B ? row : row - B; /* rows 0..B−1: music a; B..2B−1: video a */
            const float *M = (row < B ? S : St) + a * B;
            float *val = vals + row * k;
            if (!rowv)
                continue;
            if (var == MATCH_SOFTMAX) { /* cross-entropy of the positive: logsumexp_j M[a][j]/τ − M[a][a]/τ */
                double mx = -INFINITY, s = 0.0;
                for (int64_t j = 0; j < B; j++)
                    mx = fmax(mx, M[j] * inv_tau);
                for (int64_t j = 0; j < B; j++)
                    s += exp(M[j] * inv_tau - mx);
                val[0] = (float)(mx + log(s) - M[a] * inv_tau);
                continue;
            }
            /* the values first (a branch-free loop), then the selection (math.h: in increasing index) */
            float pos = M[a];
            if (var == MATCH_PUBLISHED)
                for (int64_t j = 0; j < B; j++)
                    rowv[j] = match_published_value(pos, M[j], margin);
            else
                for (int64_t j = 0; j < B; j++)
                    rowv[j] = match_hinge_value(pos, M[j], margin);
            int32_t *idx = (row < B ? sel_m : sel_v) + a * k;
            int32_t cnt = topk_select(idx, keys, rowv, (int32_t)B, (int32_t)k, (int32_t)a); /* = k (k ≤ B − 1) */
            for (int32_t t = 0; t < cnt; t++)
                val[t] = rowv[idx[t]];
        }
        free(rowv);
        free(keys);
    }
    if (oom) {
        free(vals);
        free(St);
        return debcm_fail("match_forward: out of memory for B = %lld", (long long)B);
    }
    double sm = 0.0, sv = 0.0;
    for (int64_t i = 0; i < B * k; i++) {
        sm += vals[i];
        sv += vals[B * k + i];
    }
    free(vals);
    free(St);
    *music = (float)(sm / (double)(B * k)); /* mean over all B·k selected values (SPEC §3); softmax: over B */
    *video = (float)(sv / (double)(B * k));
    return 0;
}

static int cpu_match_backward(float *dzm, float *dzv, float *dS, float dmusic, float dvideo, const float *S,
                              const int32_t *sel_m, const int32_t *sel_v, const float *zm, const float *zv,
                              const match_cfg *cfg, int64_t B, int64_t L)
{
    if (ops_check_match("match_backward", cfg, B, L))
        return -1;
    REQUIRE(dS && S && zm && zv, "match_backward: NULL tensor");
    memset(dS, 0, (size_t)(B * B) * sizeof *dS);

    if (cfg->variant == MATCH_SOFTMAX) {
        /* d CE_row_i / d S_ij = (softmax_j(S_i·/τ) − δ_ij)/τ; the same over columns. Rows first, then columns. */
        double inv_tau = 1.0 / (double)cfg->tau;
        double fm = (double)dmusic / (double)B, fv = (double)dvideo / (double)B;
        for (int pass = 0; pass < 2; pass++) {
            int64_t step = pass == 0 ? 1 : B;       /* along a row, or down a column */
            int64_t stride = pass == 0 ? B : 1;     /* from one row (column) to the next */
            double f = (pass == 0 ? fm : fv) * inv_tau;
#pragma omp parallel for schedule(static) if (B * B >= PAR_MIN)
            for (int64_t r = 0; r < B; r++) {
                const float *base = S + r * stride;
                float *dbase = dS + r * stride;
                double mx = -INFINITY, s = 0.0;
                for (int64_t j = 0; j < B; j++)
                    mx = fmax(mx, base[j * step] * inv_tau);
                for (int64_t j = 0; j < B; j++)
                    s += exp(base[j * step] * inv_tau - mx);
                for (int64_t j = 0; j < B; j++) {
                    double p = exp(base[j * step] * inv_tau - mx) / s;
                    dbase[j * step] += (float)(f * (p - (j == r ? 1.0 : 0.0)));
                }
            }
        }
    } else {
        REQUIRE(sel_m && sel_v, "match_backward: NULL selection buffer");
        int64_t k = match_k_eff(cfg->k, B);
        float fm = dmusic / (float)(B * k), fv = dvideo / (float)(B * k);
        float margin = cfg->margin;
        int published = cfg->variant == MATCH_PUBLISHED;
        /* music rows: row i owns dS[i][·] */
#pragma omp parallel for schedule(static) if (B * k >= PAR_MIN)
        for (int64_t i = 0; i < B; i++)
            for (int64_t t = 0; t < k; t++) {
                int64_t j = sel_m[i * k + t];
                float pos = S[i * B + i], neg = S[i * B + j];
                /* published: value rises with s_pos; hinge: value rises with s_neg */
                float g = published ? match_published_grad(pos, neg, margin) : -match_hinge_grad(pos, neg, margin);
                dS[i * B + i] += fm * g;
                dS[i * B + j] -= fm * g;
            }
        /* video columns: column j owns dS[·][j] */
#pragma omp parallel for schedule(static) if (B * k >= PAR_MIN)
        for (int64_t j = 0; j < B; j++)
            for (int64_t t = 0; t < k; t++) {
                int64_t i = sel_v[j * k + t];
                float pos = S[j * B + j], neg = S[i * B + j];
                float g = published ? match_published_grad(pos, neg, margin) : -match_hinge_grad(pos, neg, margin);
                dS[j * B + j] += fv * g;
                dS[i * B + j] -= fv * g;
            }
    }
    if (dzm) /* dzm[B,L] += dS[B,B]·zv[B,L] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)L, (int)B, 1.0f, dS, (int)B, zv, (int)L,
                    1.0f, dzm, (int)L);
    if (dzv) /* dzv[B,L] += dSᵀ·zm */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)B, (int)L, (int)B, 1.0f, dS, (int)B, zm, (int)L,
                    1.0f, dzv, (int)L);
    return 0;
}

/* ---- confounder mixing (SPEC §4) ------------------------------------------------------------------------------
 * W_c = [W1 | W2] with W1 = W_c[:, :L] acting on c and W2 = W_c[:, L:] on z_m; c is the same for every row, so
 * zc = zm·W2ᵀ + (W1·c + b_c). */

static int cpu_confounder_forward(float *zc, float *pi, float *c, const float *zm, const float *prior,
                                  const float *cemb, const float *Wc, const float *bc, int64_t B, int64_t P,
                                  int64_t L, int64_t G)
{
    REQUIRE(zc && pi && c && zm && prior && cemb && Wc && bc, "confounder_forward: NULL tensor");
    REQUIRE(ops_blas_ok(B) && P > 0 && ops_blas_ok(2 * L) && G > 0,
            "confounder_forward: bad sizes B=%lld P=%lld L=%lld G=%lld", (long long)B, (long long)P,
            (long long)L, (long long)G);
    for (int64_t g = 0; g < G; g++) { /* π = mean over the rows of the prior (Monte-Carlo backdoor adjustment) */
        double s = 0.0;
        for (int64_t p = 0; p < P; p++)
            s += prior[p * G + g];
        pi[g] = (float)(s / (double)P);
    }
    for (int64_t l = 0; l < L; l++) { /* c = Σ_g π_g·Cemb_g */
        double s = 0.0;
        for (int64_t g = 0; g < G; g++)
            s += (double)pi[g] * cemb[g * L + l];
        c[l] = (float)s;
    }
    float *u = malloc((size_t)L * sizeof *u);
    REQUIRE(u, "confounder_forward: out of memory");
    for (int64_t l = 0; l < L; l++) { /* u = W1·c + b_c */
        double s = bc[l];
        for (int64_t j = 0; j < L; j++)
            s += (double)Wc[l * 2 * L + j] * c[j];
        u[l] = (float)s;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)B, (int)L, (int)L, 1.0f, zm, (int)L, Wc + L,
                (int)(2 * L), 0.0f, zc, (int)L);
#pragma omp parallel for schedule(static) if (B * L >= PAR_MIN)
    for (int64_t r = 0; r < B; r++)
        for (int64_t l = 0; l < L; l++)
            zc[r * L + l] += u[l];
    free(u);
    return 0;
}

static int cpu_confounder_backward(float *dzm, float *dcemb, float *dWc, float *dbc, const float *dzc,
                                   const float *pi, const float *c, const float *zm, const float *Wc, int64_t B,
                                   int64_t L, int64_t G)
{
    REQUIRE(dzc && pi && c && zm && Wc, "confounder_backward: NULL tensor");
    REQUIRE(ops_blas_ok(B) && ops_blas_ok(2 * L) && G > 0, "confounder_backward: bad sizes B=%lld L=%lld G=%lld",
            (long long)B, (long long)L, (long long)G);
    float *du = malloc((size_t)L * sizeof *du); /* du = Σ_rows dzc: the gradient of u = W1·c + b_c */
    REQUIRE(du, "confounder_backward: out of memory");
#pragma omp parallel for schedule(static) if (B * L >= PAR_MIN)
    for (int64_t l = 0; l < L; l++) {
        double s = 0.0;
        for (int64_t r = 0; r < B; r++)
            s += dzc[r * L + l];
        du[l] = (float)s;
    }
    if (dbc)
        for (int64_t l = 0; l < L; l++)
            dbc[l] += du[l];
    if (dWc) {
        for (int64_t l = 0; l < L; l++) /* dW1 += du·cᵀ */
            for (int64_t j = 0; j < L; j++)
                dWc[l * 2 * L + j] += du[l] * c[j];
        /* dW2[L,L] += dzcᵀ·zm */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)L, (int)L, (int)B, 1.0f, dzc, (int)L, zm, (int)L,
                    1.0f, dWc + L, (int)(2 * L));
    }
    if (dcemb)
        for (int64_t j = 0; j < L; j++) { /* dc = W1ᵀ·du; dCemb_g += π_g·dc */
            double s = 0.0;
            for (int64_t l = 0; l < L; l++)
                s += (double)Wc[l * 2 * L + j] * du[l];
            for (int64_t g = 0; g < G; g++)
                dcemb[g * L + j] += pi[g] * (float)s;
        }
    if (dzm) /* dzm[B,L] += dzc·W2 */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)B, (int)L, (int)L, 1.0f, dzc, (int)L, Wc + L,
                    (int)(2 * L), 1.0f, dzm, (int)L);
    free(du);
    return 0;
}

/* ---- Adam (SPEC §5) -------------------------------------------------------------------------------------------- */

static int cpu_adam_update(float *theta, float *m, float *v, const float *g, const adam_cfg *cfg, int64_t t,
                           int64_t n)
{
    REQUIRE(theta && m && v && g && cfg, "adam_update: NULL tensor");
    REQUIRE(t >= 1 && n >= 0, "adam_update: step t = %lld (expected >= 1), n = %lld", (long long)t, (long long)n);
    adam_coef c = adam_coef_make(cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, t);
#pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (int64_t i = 0; i < n; i++)
        adam_update_one(&theta[i], &m[i], &v[i], g[i], c);
    return 0;
}

/* ---- evaluation (SPEC §4, §3) ---------------------------------------------------------------------------------- */


static int cpu_eval_negatives(double *recall, double *ndcg, int64_t *tie_rows, const float *scores,
                              const float *weights, const int32_t *K, int nK, int64_t R, int64_t C)
{
    REQUIRE(recall && ndcg && tie_rows && scores && weights, "eval_negatives: NULL pointer");
    REQUIRE(R > 0 && C >= 2, "eval_negatives: R=%lld rows of C=%lld candidates (positive + >= 1 negative)",
            (long long)R, (long long)C);
    if (ops_check_eval_K("eval_negatives", K, nK))
        return -1;
    int64_t *rank = malloc((size_t)R * sizeof *rank);
    uint8_t *tie = malloc((size_t)R);
    if (!rank || !tie) {
        free(rank);
        free(tie);
        return debcm_fail("eval_negatives: out of memory for %lld rows", (long long)R);
    }
#pragma omp parallel for schedule(static) if (R * C >= PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *s = scores + r * C;
        int64_t n = 0;
        uint8_t t = 0;
        for (int64_t j = 1; j < C; j++) {
            n += !(s[j] < s[0]); /* ties (and NaN) count against the positive (SPEC §4) */
            t |= s[j] == s[0];
        }
        rank[r] = n;
        tie[r] = t;
    }
    int64_t ties = 0;
    for (int64_t r = 0; r < R; r++)
        ties += tie[r];
    for (int i = 0; i < nK; i++) {
        double rc = 0.0, nd = 0.0;
        for (int64_t r = 0; r < R; r++)
            if (rank[r] < K[i]) {
                rc += weights[r];
                nd += weights[r] / log2((double)rank[r] + 2.0);
            }
        recall[i] = rc;
        ndcg[i] = nd;
    }
    *tie_rows = ties;
    free(rank);
    free(tie);
    return 0;
}

static int cpu_eval_full_rank(double *recall, const float *scores, const int64_t *truth, const int32_t *K, int nK,
                              int64_t R, int64_t N)
{
    REQUIRE(recall && scores && truth, "eval_full_rank: NULL pointer");
    REQUIRE(R > 0 && N > 0, "eval_full_rank: R=%lld N=%lld", (long long)R, (long long)N);
    if (ops_check_eval_K("eval_full_rank", K, nK))
        return -1;
    for (int64_t r = 0; r < R; r++)
        REQUIRE(truth[r] >= 0 && truth[r] < N, "eval_full_rank: row %lld: true music column %lld outside [0, %lld)",
                (long long)r, (long long)truth[r], (long long)N);
    int64_t *rank = malloc((size_t)R * sizeof *rank);
    REQUIRE(rank, "eval_full_rank: out of memory for %lld rows", (long long)R);
#pragma omp parallel for schedule(static) if (R * N >= PAR_MIN)
    for (int64_t r = 0; r < R; r++) {
        const float *s = scores + r * N;
        float pos = s[truth[r]];
        int64_t n = 0;
        for (int64_t j = 0; j < N; j++)
            n += j != truth[r] && !(s[j] < pos); /* ties count against the true music (SPEC §3) */
        rank[r] = n;
    }
    for (int i = 0; i < nK; i++) {
        int64_t hits = 0;
        for (int64_t r = 0; r < R; r++)
            hits += rank[r] < K[i];
        recall[i] = (double)hits / (double)R;
    }
    free(rank);
    return 0;
}

/* ---- the table ------------------------------------------------------------------------------------------------- */

static const debcm_ops cpu_ops = {
    .name = "cpu",
    .host_memory = 1,
    .gather_rows = cpu_gather_rows,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .zero = cpu_zero,
    .sync = cpu_sync,
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .bn_forward_train = cpu_bn_forward_train,
    .bn_forward_eval = cpu_bn_forward_eval,
    .bn_backward = cpu_bn_backward,
    .dropout_mask = cpu_dropout_mask,
    .dropout_forward = cpu_dropout_forward,
    .dropout_backward = cpu_dropout_backward,
    .l2norm_forward = cpu_l2norm_forward,
    .l2norm_backward = cpu_l2norm_backward,
    .normal_draw = cpu_normal_draw,
    .reparam_forward = cpu_reparam_forward,
    .reparam_backward = cpu_reparam_backward,
    .relu_forward = cpu_relu_forward,
    .relu_backward = cpu_relu_backward,
    .mse_forward = cpu_mse_forward,
    .mse_backward = cpu_mse_backward,
    .kl_forward = cpu_kl_forward,
    .kl_backward = cpu_kl_backward,
    .distill_forward = cpu_distill_forward,
    .distill_backward = cpu_distill_backward,
    .match_forward = cpu_match_forward,
    .match_backward = cpu_match_backward,
    .confounder_forward = cpu_confounder_forward,
    .confounder_backward = cpu_confounder_backward,
    .adam_update = cpu_adam_update,
    .eval_negatives = cpu_eval_negatives,
    .eval_full_rank = cpu_eval_full_rank,
};

const debcm_ops *debcm_ops_cpu(void) { return &cpu_ops; }
