/* kernels/cuda_ops.cu — the CUDA backend of engine/ops.h ("cuda"): every DebCM op except matching and
 * evaluation (kernels/cuda_match_eval.cu), with the CPU table (engine/ops_cpu.c) as its oracle.
 *
 * Each op is kernel → launcher → entry: a `static __global__` kernel doing only indexing and reductions around
 * the shared per-element formulas of engine/math.h and engine/rng.h (never re-derived here); an entry that checks
 * sizes and pointers with the CPU's own messages, so misuse fails the same way on both backends, then queues the
 * work on the backend stream (kernels/cuda_context.cu) and returns without waiting. Matrix products are cuBLAS
 * SGEMMs: our tensors are row-major, cuBLAS is column-major, and a row-major M[r, c] read as column-major is Mᵀ
 * with leading dimension c, so every product is computed transposed — Cᵀ = op(B)ᵀ·op(A)ᵀ — with the operands
 * swapped; the mapping is written beside each call. Reductions are deterministic by construction: a fixed
 * thread-to-element assignment that depends only on the sizes, sums in double, partials combined in a fixed
 * order, no atomics anywhere — so every result is the same run to run. Where the CPU sums a feature (a column of
 * a row-major tensor) row by row, so do these kernels (bias gradients, confounder sums); BatchNorm and the losses
 * use a different but fixed order (tolerance-level agreement with the CPU, bitwise agreement with themselves).
 * Element counts are int64_t and kernels loop grid-stride, so n beyond 2^31 works. */
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "engine/error.h"
#include "engine/math.h"
#include "engine/ops.h"
#include "engine/ops_check.h"
#include "engine/rng.h"
#include "kernels/cuda_common.cuh"
#include "kernels/cuda_match_eval.h" /* match_forward/backward, eval_negatives/full_rank */
#include "kernels/cuda_ops.h"

/* the CPU's check, with its message */
#define REQUIRE(cond, ...)                                                                                   \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            return debcm_fail(__VA_ARGS__);                                                                  \
    } while (0)

/* the backend context, or return −1 (cuda_ctx has recorded why) */
#define GET_CTX(ctx)                                                                                         \
    cuda_context *ctx = cuda_ctx();                                                                          \
    if (!ctx)                                                                                                \
    return -1

/* i over [0, n) in a grid-stride loop, in 64-bit */
#define GRID_STRIDE(i, n)                                                                                    \
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

/* sizes handed to cuBLAS must fit its int (the CPU's BLAS has the same limit) */

/* one thread per element, the grid capped (cuda_blocks) and the kernels grid-striding past it */
static unsigned grid_for(int64_t n) { return cuda_blocks(n, CUDA_THREADS); }

/* ---- memory ---------------------------------------------------------------------------------------------------- */

static void *cu_alloc(size_t bytes)
{
    /* the CPU's contract: zero-filled, 64-byte aligned (cudaMalloc gives 256), and a valid block even for 0 bytes */
    size_t rounded = (bytes + 255) / 256 * 256;
    if (rounded == 0)
        rounded = 256;
    void *p = NULL;
    if (cuda_mem_alloc(&p, rounded, "a tensor arena") != 0)
        return NULL;
    cudaError_t e = cudaMemsetAsync(p, 0, rounded, cuda_ctx()->stream);
    if (e != cudaSuccess) {
        cuda_mem_free(p);
        debcm_fail("CUDA: zero-filling %zu new bytes failed: %s", rounded, cudaGetErrorString(e));
        return NULL;
    }
    return p;
}

static void cu_free(void *p) { cuda_mem_free(p); }

static int cu_upload(void *dst, const void *host_src, size_t bytes)
{
    if (bytes == 0)
        return 0;
    REQUIRE(dst && host_src, "upload: NULL pointer (%zu bytes)", bytes);
    GET_CTX(ctx);
    CUDA_CHECK(cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, ctx->stream));
    /* From pageable memory the copy has left the caller's buffer when cudaMemcpyAsync returns; from page-locked
     * memory it has not, and the caller may reuse the buffer at once: wait in that case only. */
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, host_src) != cudaSuccess)
        cudaGetLastError();
    else if (a.type == cudaMemoryTypeHost)
        CUDA_CHECK(cudaStreamSynchronize(ctx->stream));
    return 0;
}

static int cu_download(void *host_dst, const void *src, size_t bytes)
{
    if (bytes == 0)
        return 0;
    REQUIRE(host_dst && src, "download: NULL pointer (%zu bytes)", bytes);
    GET_CTX(ctx);
    CUDA_CHECK(cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream)); /* the host reads it next */
    return 0;
}

/* device-to-device with memmove's semantics (the CPU table's copy is memmove): overlapping ranges go through
 * the scratch */
static int device_move(cuda_context *ctx, void *dst, const void *src, size_t bytes)
{
    if (bytes == 0 || dst == src)
        return 0;
    uintptr_t d = (uintptr_t)dst, s = (uintptr_t)src;
    if (d + bytes <= s || s + bytes <= d) {
        CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
        return 0;
    }
    void *tmp = cuda_scratch(bytes);
    if (!tmp)
        return -1;
    CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
    CUDA_CHECK(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
    return 0;
}

static int cu_copy(void *dst, const void *src, size_t bytes)
{
    if (bytes == 0)
        return 0;
    REQUIRE(dst && src, "copy: NULL pointer (%zu bytes)", bytes);
    GET_CTX(ctx);
    return device_move(ctx, dst, src, bytes);
}

static int cu_zero(void *p, size_t bytes)
{
    if (bytes == 0)
        return 0;
    REQUIRE(p, "zero: NULL pointer (%zu bytes)", bytes);
    GET_CTX(ctx);
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, ctx->stream));
    return 0;
}

static int cu_sync(void)
{
    GET_CTX(ctx);
    CUDA_CHECK(cudaStreamSynchronize(ctx->stream)); /* also where a kernel's execution error surfaces */
    return 0;
}

/* ---- cuBLAS and shared small kernels ----------------------------------------------------------------------------- */

/* C = op(A)·op(B) + beta·C in cuBLAS's column-major terms (alpha 1), sizes already checked to fit an int */
static int sgemm(cuda_context *ctx, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k,
                 const float *A, int64_t lda, const float *Bm, int64_t ldb, float beta, float *C, int64_t ldc)
{
    const float alpha = 1.0f;
    CUBLAS_CHECK(cublasSgemm(ctx->blas, ta, tb, (int)m, (int)n, (int)k, &alpha, A, (int)lda, Bm, (int)ldb, &beta, C,
                             (int)ldc));
    return 0;
}

/* y[r, o] += b[o] over a row-major [rows, cols] */
/* ---- gather rows ---------------------------------------------------------------------------------------------- */

static __global__ void gather_rows_kernel(float *dst, const float *src, const int64_t *idx, int64_t B, int64_t D)
{
    GRID_STRIDE(i, B * D) {
        int64_t r = i / D, d = i - r * D;
        dst[i] = src[idx[r] * D + d];
    }
}

static int cu_gather_rows(float *dst, const float *src, const int64_t *idx, int64_t B, int64_t D)
{
    REQUIRE(dst && src && idx && B >= 0 && D > 0, "gather_rows: NULL tensor or bad sizes B=%lld D=%lld",
            (long long)B, (long long)D);
    if (B == 0)
        return 0;
    GET_CTX(ctx);
    gather_rows_kernel<<<grid_for(B * D), CUDA_THREADS, 0, ctx->stream>>>(dst, src, idx, B, D);
    CUDA_LAUNCHED();
    return 0;
}

static __global__ void add_row_vector_kernel(float *y, const float *b, int64_t rows, int64_t cols)
{
    GRID_STRIDE(i, rows * cols) {
        y[i] += b[i % cols];
    }
}

/* dst[o] (+)= Σ_r src[r, o]: one thread per column, the rows summed in double by increasing r (the CPU's order:
 * column_sums_add), the threads of a warp reading one row's consecutive columns */
static __global__ void column_sums_kernel(float *dst, const float *src, int64_t rows, int64_t cols, int accumulate)
{
    GRID_STRIDE(o, cols) {
        double s = 0.0;
        for (int64_t r = 0; r < rows; r++)
            s += src[r * cols + o];
        dst[o] = accumulate ? dst[o] + (float)s : (float)s;
    }
}

/* ---- linear ------------------------------------------------------------------------------------------------------ */

static int cu_linear_forward(float *y, const float *x, const float *W, const float *b, int64_t B, int64_t in,
                             int64_t out)
{
    REQUIRE(y && x && W, "linear_forward: NULL tensor");
    REQUIRE(ops_blas_ok(B) && ops_blas_ok(in) && ops_blas_ok(out), "linear_forward: bad sizes B=%lld in=%lld out=%lld",
            (long long)B, (long long)in, (long long)out);
    GET_CTX(ctx);
    /* y[B,out] = x[B,in]·W[out,in]ᵀ. Column-major: yᵀ[out,B] (ld out) = W·xᵀ, where W is op(T) of the column-major
     * view Wᵀ[in,out] (ld in) and xᵀ[in,B] (ld in) is x as stored. */
    if (sgemm(ctx, CUBLAS_OP_T, CUBLAS_OP_N, out, B, in, W, in, x, in, 0.0f, y, out))
        return -1;
    if (b) {
        add_row_vector_kernel<<<grid_for(B * out), CUDA_THREADS, 0, ctx->stream>>>(y, b, B, out);
        CUDA_LAUNCHED();
    }
    return 0;
}

static int cu_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                              int64_t B, int64_t in, int64_t out)
{
    REQUIRE(dy, "linear_backward: NULL dy");
    REQUIRE(ops_blas_ok(B) && ops_blas_ok(in) && ops_blas_ok(out), "linear_backward: bad sizes B=%lld in=%lld out=%lld",
            (long long)B, (long long)in, (long long)out);
    if (dx)
        REQUIRE(W, "linear_backward: dx wanted but W is NULL");
    if (dW)
        REQUIRE(x, "linear_backward: dW wanted but x is NULL");
    if (!dx && !dW && !db)
        return 0;
    GET_CTX(ctx);
    if (dx) { /* dx[B,in] += dy[B,out]·W[out,in]. Column-major: dxᵀ[in,B] (ld in) += Wᵀ[in,out]·dyᵀ[out,B], Wᵀ being
               * W as stored (ld in) and dyᵀ dy as stored (ld out): no transposes. */
        if (sgemm(ctx, CUBLAS_OP_N, CUBLAS_OP_N, in, B, out, W, in, dy, out, 1.0f, dx, in))
            return -1;
    }
    if (dW) { /* dW[out,in] += dy[B,out]ᵀ·x[B,in]. Column-major: dWᵀ[in,out] (ld in) += xᵀ[in,B]·dy[B,out], xᵀ being
               * x as stored (ld in) and dy op(T) of dy as stored (dyᵀ[out,B], ld out). */
        if (sgemm(ctx, CUBLAS_OP_N, CUBLAS_OP_T, in, out, B, x, in, dy, out, 1.0f, dW, in))
            return -1;
    }
    if (db) {
        column_sums_kernel<<<grid_for(out), CUDA_THREADS, 0, ctx->stream>>>(db, dy, B, out, 1);
        CUDA_LAUNCHED();
    }
    return 0;
}

/* ---- BatchNorm (SPEC §2) ------------------------------------------------------------------------------------ *
 * A block of BN_FEAT × BN_LANES threads owns BN_FEAT consecutive features; lane ty sums rows ty, ty + BN_LANES,
 * ... of its feature in double (a warp reads BN_FEAT consecutive floats of one row), then the BN_LANES partials
 * are added in lane order. The CPU adds the rows in plain order: same terms, another fixed order. */

#define BN_FEAT 32
#define BN_LANES 8

static __global__ void bn_forward_train_kernel(float *y, float *xhat, float *mean, float *rstd, float *running_mean,
                                               float *running_var, const float *x, const float *gamma,
                                               const float *beta, int64_t B, int64_t D)
{
    __shared__ double part[BN_LANES][BN_FEAT];
    __shared__ float stat_mean[BN_FEAT], stat_rstd[BN_FEAT];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t ngroups = (D + BN_FEAT - 1) / BN_FEAT;
    for (int64_t grp = blockIdx.x; grp < ngroups; grp += gridDim.x) { /* uniform per block: the syncs are safe */
        const int64_t d = grp * BN_FEAT + tx;
        const bool ok = d < D;
        double s = 0.0;
        if (ok)
            for (int64_t r = ty; r < B; r += BN_LANES)
                s += x[r * D + d];
        part[ty][tx] = s;
        __syncthreads();
        double mu = 0.0; /* every thread of the column forms the same mean, in lane order */
        for (int k = 0; k < BN_LANES; k++)
            mu += part[k][tx];
        mu /= (double)B;
        __syncthreads(); /* part is reused */
        double q = 0.0;
        if (ok)
            for (int64_t r = ty; r < B; r += BN_LANES) {
                double t = x[r * D + d] - mu; /* the second pass, as the CPU: Σ (x − mean)² */
                q += t * t;
            }
        part[ty][tx] = q;
        __syncthreads();
        if (ty == 0 && ok) {
            double qq = 0.0;
            for (int k = 0; k < BN_LANES; k++)
                qq += part[k][tx];
            float var_biased = (float)(qq / (double)B);         /* normalises */
            float var_unbiased = (float)(qq / (double)(B - 1)); /* feeds running_var (SPEC §2) */
            float m = (float)mu, rs = bn_rstd(var_biased, DEBCM_BN_EPS);
            mean[d] = m;
            rstd[d] = rs;
            running_mean[d] = bn_running_update(running_mean[d], m, DEBCM_BN_MOMENTUM);
            running_var[d] = bn_running_update(running_var[d], var_unbiased, DEBCM_BN_MOMENTUM);
            stat_mean[tx] = m;
            stat_rstd[tx] = rs;
        }
        __syncthreads();
        if (ok) {
            const float m = stat_mean[tx], rs = stat_rstd[tx], g = gamma[d], bt = beta[d];
            for (int64_t r = ty; r < B; r += BN_LANES) {
                int64_t i = r * D + d;
                float xh = bn_xhat(x[i], m, rs);
                xhat[i] = xh;
                y[i] = bn_apply(xh, g, bt);
            }
        }
        __syncthreads(); /* stat_* and part are reused by the next group */
    }
}

static unsigned bn_grid(int64_t D) { return cuda_blocks((D + BN_FEAT - 1) / BN_FEAT, 1); }

static int cu_bn_forward_train(float *y, float *xhat, float *mean, float *rstd, float *running_mean,
                               float *running_var, const float *x, const float *gamma, const float *beta, int64_t B,
                               int64_t D)
{
    REQUIRE(y && xhat && mean && rstd && running_mean && running_var && x && gamma && beta,
            "bn_forward_train: NULL tensor");
    REQUIRE(D > 0, "bn_forward_train: D = %lld", (long long)D);
    REQUIRE(B >= 2, "bn_forward_train: a batch of %lld row(s); training-mode BatchNorm needs at least 2",
            (long long)B);
    GET_CTX(ctx);
    bn_forward_train_kernel<<<bn_grid(D), dim3(BN_FEAT, BN_LANES), 0, ctx->stream>>>(
        y, xhat, mean, rstd, running_mean, running_var, x, gamma, beta, B, D);
    CUDA_LAUNCHED();
    return 0;
}

static __global__ void bn_forward_eval_kernel(float *y, const float *x, const float *gamma, const float *beta,
                                              const float *running_mean, const float *running_var, int64_t B,
                                              int64_t D)
{
    GRID_STRIDE(i, B * D) {
        int64_t d = i % D;
        float rs = bn_rstd(running_var[d], DEBCM_BN_EPS);
        y[i] = bn_apply(bn_xhat(x[i], running_mean[d], rs), gamma[d], beta[d]);
    }
}

static int cu_bn_forward_eval(float *y, const float *x, const float *gamma, const float *beta,
                              const float *running_mean, const float *running_var, int64_t B, int64_t D)
{
    REQUIRE(y && x && gamma && beta && running_mean && running_var, "bn_forward_eval: NULL tensor");
    REQUIRE(B > 0 && D > 0, "bn_forward_eval: bad sizes B=%lld D=%lld", (long long)B, (long long)D);
    GET_CTX(ctx);
    bn_forward_eval_kernel<<<grid_for(B * D), CUDA_THREADS, 0, ctx->stream>>>(y, x, gamma, beta, running_mean,
                                                                              running_var, B, D);
    CUDA_LAUNCHED();
    return 0;
}

static __global__ void bn_backward_kernel(float *dx, float *dgamma, float *dbeta, const float *dy, const float *xhat,
                                          const float *gamma, const float *rstd, int64_t B, int64_t D)
{
    __shared__ double part_dy[BN_LANES][BN_FEAT], part_dyx[BN_LANES][BN_FEAT];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t ngroups = (D + BN_FEAT - 1) / BN_FEAT;
    for (int64_t grp = blockIdx.x; grp < ngroups; grp += gridDim.x) {
        const int64_t d = grp * BN_FEAT + tx;
        const bool ok = d < D;
        double sdy = 0.0, sdyx = 0.0;
        if (ok)
            for (int64_t r = ty; r < B; r += BN_LANES) {
                int64_t i = r * D + d;
                sdy += dy[i];
                sdyx += (double)dy[i] * xhat[i];
            }
        part_dy[ty][tx] = sdy;
        part_dyx[ty][tx] = sdyx;
        __syncthreads();
        sdy = sdyx = 0.0; /* every thread of the column forms the same sums, in lane order */
        for (int k = 0; k < BN_LANES; k++) {
            sdy += part_dy[k][tx];
            sdyx += part_dyx[k][tx];
        }
        if (ok) {
            if (ty == 0) {
                if (dbeta)
                    dbeta[d] += (float)sdy;
                if (dgamma)
                    dgamma[d] += (float)sdyx;
            }
            if (dx) {
                const float g = gamma[d], rs = rstd[d], fs = (float)sdy, fsx = (float)sdyx;
                for (int64_t r = ty; r < B; r += BN_LANES) {
                    int64_t i = r * D + d;
                    dx[i] += bn_backward_dx(dy[i], xhat[i], g, rs, fs, fsx, (float)B);
                }
            }
        }
        __syncthreads(); /* the partials are reused by the next group */
    }
}

static int cu_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *xhat,
                          const float *gamma, const float *rstd, int64_t B, int64_t D)
{
    REQUIRE(dy && xhat && gamma && rstd, "bn_backward: NULL tensor");
    REQUIRE(B >= 2 && D > 0, "bn_backward: bad sizes B=%lld D=%lld", (long long)B, (long long)D);
    if (!dx && !dgamma && !dbeta)
        return 0;
    GET_CTX(ctx);
    bn_backward_kernel<<<bn_grid(D), dim3(BN_FEAT, BN_LANES), 0, ctx->stream>>>(dx, dgamma, dbeta, dy, xhat, gamma,
                                                                               rstd, B, D);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- dropout (SPEC §2) --------------------------------------------------------------------------------------- */

/* Element e = counter + i is lane e mod 4 of Philox block e / 4 (rng_uniform): one thread per Philox block, as
 * the CPU groups them, so the mask is the CPU's bit for bit (the keep test compares exact floats). */
static __global__ void dropout_mask_kernel(uint8_t *mask, uint64_t seed, uint64_t stream, uint64_t c0, uint64_t c1,
                                           uint64_t q0, int64_t nq, float p)
{
    GRID_STRIDE(t, nq) {
        uint64_t q = q0 + (uint64_t)t;
        rng_u32x4 r = rng_philox(seed, stream, q);
        for (int lane = 0; lane < 4; lane++) {
            uint64_t e = q * 4 + (uint64_t)lane;
            if (e >= c0 && e < c1)
                mask[e - c0] = dropout_keep(rng_u01(r.v[lane]), p);
        }
    }
}

static int cu_dropout_mask(uint8_t *mask, debcm_draw draw, float p, int64_t n)
{
    REQUIRE(mask && n >= 0, "dropout_mask: NULL mask or n = %lld", (long long)n);
    REQUIRE(p >= 0.0f && p < 1.0f, "dropout_mask: p = %g, expected 0 <= p < 1", (double)p);
    if (n == 0)
        return 0;
    GET_CTX(ctx);
    const uint64_t c0 = draw.counter, c1 = draw.counter + (uint64_t)n, q0 = c0 >> 2, nq = ((c1 - 1) >> 2) - q0 + 1;
    dropout_mask_kernel<<<grid_for((int64_t)nq), CUDA_THREADS, 0, ctx->stream>>>(mask, draw.seed, draw.stream, c0,
                                                                                 c1, q0, (int64_t)nq, p);
    CUDA_LAUNCHED();
    return 0;
}

/* y = x·mask·scale; the backward adds the same expression of dy */
static __global__ void dropout_kernel(float *out, const float *in, const uint8_t *mask, float scale, int64_t n,
                                      int accumulate)
{
    GRID_STRIDE(i, n) {
        float v = dropout_apply(in[i], mask[i], scale);
        out[i] = accumulate ? out[i] + v : v;
    }
}

static int cu_dropout_forward(float *y, const float *x, const uint8_t *mask, float p, int64_t n)
{
    REQUIRE(y && x && n >= 0, "dropout_forward: NULL tensor or n = %lld", (long long)n);
    REQUIRE(p >= 0.0f && p < 1.0f, "dropout_forward: p = %g, expected 0 <= p < 1", (double)p);
    if (n == 0)
        return 0;
    GET_CTX(ctx);
    if (!mask) /* evaluation mode */
        return device_move(ctx, y, x, (size_t)n * sizeof *y);
    dropout_kernel<<<grid_for(n), CUDA_THREADS, 0, ctx->stream>>>(y, x, mask, dropout_scale(p), n, 0);
    CUDA_LAUNCHED();
    return 0;
}

static int cu_dropout_backward(float *dx, const float *dy, const uint8_t *mask, float p, int64_t n)
{
    REQUIRE(dy && mask && n >= 0, "dropout_backward: NULL tensor or n = %lld", (long long)n);
    REQUIRE(p >= 0.0f && p < 1.0f, "dropout_backward: p = %g, expected 0 <= p < 1", (double)p);
    if (!dx || n == 0)
        return 0;
    GET_CTX(ctx);
    dropout_kernel<<<grid_for(n), CUDA_THREADS, 0, ctx->stream>>>(dx, dy, mask, dropout_scale(p), n, 1);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- row L2 normalisation (SPEC §2) ---------------------------------------------------------------------------
 * One warp per row: lane l sums elements l, l + 32, ... in double, the lanes combine by a fixed shuffle tree and
 * lane 0's total is broadcast. Every lane reads its own elements before writing them, so y may be x. */

#define ROWS_PER_BLOCK (CUDA_THREADS / 32)

static unsigned row_grid(int64_t rows) { return cuda_blocks(rows, ROWS_PER_BLOCK); }

static __global__ void l2norm_forward_kernel(float *y, float *norm, const float *x, int64_t B, int64_t D)
{
    const int lane = threadIdx.x & 31;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = warp; r < B; r += nwarps) { /* uniform per warp: the shuffles see all 32 lanes */
        const float *xr = x + r * D;
        double s = 0.0;
        for (int64_t d = lane; d < D; d += 32)
            s += (double)xr[d] * xr[d];
        s = __shfl_sync(0xffffffffu, warp_sum_double(s), 0);
        float nr = (float)sqrt(s);
        if (lane == 0)
            norm[r] = nr;
        float den = l2n_denominator(nr);
        for (int64_t d = lane; d < D; d += 32)
            y[r * D + d] = xr[d] / den;
    }
}

static int cu_l2norm_forward(float *y, float *norm, const float *x, int64_t B, int64_t D)
{
    REQUIRE(y && norm && x, "l2norm_forward: NULL tensor");
    REQUIRE(B > 0 && D > 0, "l2norm_forward: bad sizes B=%lld D=%lld", (long long)B, (long long)D);
    GET_CTX(ctx);
    l2norm_forward_kernel<<<row_grid(B), CUDA_THREADS, 0, ctx->stream>>>(y, norm, x, B, D);
    CUDA_LAUNCHED();
    return 0;
}

static __global__ void l2norm_backward_kernel(float *dx, const float *dy, const float *y, const float *norm,
                                              int64_t B, int64_t D)
{
    const int lane = threadIdx.x & 31;
    const int64_t warp = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int64_t nwarps = ((int64_t)gridDim.x * blockDim.x) >> 5;
    for (int64_t r = warp; r < B; r += nwarps) {
        const int64_t o = r * D;
        double s = 0.0;
        for (int64_t d = lane; d < D; d += 32)
            s += (double)y[o + d] * dy[o + d];
        s = __shfl_sync(0xffffffffu, warp_sum_double(s), 0);
        const float fs = (float)s, nr = norm[r];
        for (int64_t d = lane; d < D; d += 32)
            dx[o + d] += l2n_backward_dx(dy[o + d], y[o + d], fs, nr);
    }
}

static int cu_l2norm_backward(float *dx, const float *dy, const float *y, const float *norm, int64_t B, int64_t D)
{
    REQUIRE(dy && y && norm, "l2norm_backward: NULL tensor");
    REQUIRE(B > 0 && D > 0, "l2norm_backward: bad sizes B=%lld D=%lld", (long long)B, (long long)D);
    if (!dx)
        return 0;
    GET_CTX(ctx);
    l2norm_backward_kernel<<<row_grid(B), CUDA_THREADS, 0, ctx->stream>>>(dx, dy, y, norm, B, D);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- reparameterisation (SPEC §2) ---------------------------------------------------------------------------- */

/* Element e = counter + i is half e mod 2 of Philox block e / 2 (rng_normal): one thread per Philox block, as the
 * CPU. The Philox bits are the CPU's exactly; the normals agree to the last ulp or two only, since Box–Muller's
 * logf/cosf/sqrtf are CUDA's here and the C library's there. */
static __global__ void normal_draw_kernel(float *eps, uint64_t seed, uint64_t stream, uint64_t c0, uint64_t c1,
                                          uint64_t q0, int64_t nq)
{
    GRID_STRIDE(t, nq) {
        uint64_t q = q0 + (uint64_t)t;
        rng_u32x4 r = rng_philox(seed, stream, q);
        for (int half = 0; half < 2; half++) {
            uint64_t e = q * 2 + (uint64_t)half;
            if (e >= c0 && e < c1)
                eps[e - c0] = rng_normal_from(r, half);
        }
    }
}

static int cu_normal_draw(float *eps, debcm_draw draw, int64_t n)
{
    REQUIRE(eps && n >= 0, "normal_draw: NULL tensor or n = %lld", (long long)n);
    if (n == 0)
        return 0;
    GET_CTX(ctx);
    const uint64_t c0 = draw.counter, c1 = draw.counter + (uint64_t)n, q0 = c0 >> 1, nq = ((c1 - 1) >> 1) - q0 + 1;
    normal_draw_kernel<<<grid_for((int64_t)nq), CUDA_THREADS, 0, ctx->stream>>>(eps, draw.seed, draw.stream, c0, c1,
                                                                                q0, (int64_t)nq);
    CUDA_LAUNCHED();
    return 0;
}

static __global__ void reparam_forward_kernel(float *z, const float *mu, const float *lv, const float *eps,
                                              int64_t n)
{
    GRID_STRIDE(i, n) {
        z[i] = reparam_z(mu[i], lv[i], eps[i]);
    }
}

static int cu_reparam_forward(float *z, const float *mu, const float *lv, const float *eps, int64_t n)
{
    REQUIRE(z && mu && n >= 0, "reparam_forward: NULL tensor or n = %lld", (long long)n);
    if (!eps) { /* evaluation: z = mu */
        if (n == 0)
            return 0;
        GET_CTX(ctx);
        return device_move(ctx, z, mu, (size_t)n * sizeof *z);
    }
    REQUIRE(lv, "reparam_forward: NULL lv");
    if (n == 0)
        return 0;
    GET_CTX(ctx);
    reparam_forward_kernel<<<grid_for(n), CUDA_THREADS, 0, ctx->stream>>>(z, mu, lv, eps, n);
    CUDA_LAUNCHED();
    return 0;
}

static __global__ void reparam_backward_kernel(float *dmu, float *dlv, const float *dz, const float *lv,
                                               const float *eps, int64_t n)
{
    GRID_STRIDE(i, n) {
        if (dmu)
            dmu[i] += dz[i];
        if (dlv)
            dlv[i] += dz[i] * reparam_dz_dlv(lv[i], eps[i]);
    }
}

static int cu_reparam_backward(float *dmu, float *dlv, const float *dz, const float *lv, const float *eps, int64_t n)
{
    REQUIRE(dz && n >= 0, "reparam_backward: NULL dz or n = %lld", (long long)n);
    REQUIRE(!dlv || (lv && eps), "reparam_backward: dlv wanted but lv or eps is NULL");
    if ((!dmu && !dlv) || n == 0)
        return 0;
    GET_CTX(ctx);
    reparam_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, ctx->stream>>>(dmu, dlv, dz, lv, eps, n);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- ReLU ------------------------------------------------------------------------------------------------------ */

static __global__ void relu_forward_kernel(float *y, const float *x, int64_t n)
{
    GRID_STRIDE(i, n) {
        y[i] = relu(x[i]);
    }
}

static int cu_relu_forward(float *y, const float *x, int64_t n)
{
    REQUIRE(y && x && n >= 0, "relu_forward: NULL tensor or n = %lld", (long long)n);
    if (n == 0)
        return 0;
    GET_CTX(ctx);
    relu_forward_kernel<<<grid_for(n), CUDA_THREADS, 0, ctx->stream>>>(y, x, n);
    CUDA_LAUNCHED();
    return 0;
}

static __global__ void relu_backward_kernel(float *dx, const float *dy, const float *y, int64_t n)
{
    GRID_STRIDE(i, n) {
        dx[i] += relu_backward(dy[i], y[i]);
    }
}

static int cu_relu_backward(float *dx, const float *dy, const float *y, int64_t n)
{
    REQUIRE(dy && y && n >= 0, "relu_backward: NULL tensor or n = %lld", (long long)n);
    if (!dx || n == 0)
        return 0;
    GET_CTX(ctx);
    relu_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, ctx->stream>>>(dx, dy, y, n);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- scalar losses: a deterministic two-stage sum ----------------------------------------------------------------
 * Stage 1: a grid of LOSS_PARTS(n) blocks — a function of n alone — each thread summing its grid-stride elements
 * in double, the block combining them with block_sum_double's fixed tree into partial[block]. Stage 2: one thread
 * adds the partials in block order and applies the loss's normalisation (the CPU's expression for each loss),
 * writing the float. The CPU sums in 64 fixed chunks instead: the same terms in another fixed order. */

#define LOSS_MAX_PARTS 1024
#define LOSS_PER_THREAD 8

typedef enum {
    LOSS_MEAN = 0,             /* total / n                          (MSE) */
    LOSS_KL = 1,               /* −½ · total / B                     (KL to N(0, I)) */
    LOSS_DISTILL_PUBLISHED = 2, /* −½ · (B − total) / B              (faithful: the 1 outside the sum) */
    LOSS_DISTILL_KL = 3,       /* ½ · total / B */
} loss_norm;

struct mse_term_fn {
    const float *x, *target;
    __device__ double operator()(int64_t i) const
    {
        double t = (double)x[i] - target[i];
        return t * t;
    }
};

struct kl_term_fn {
    const float *mu, *lv;
    __device__ double operator()(int64_t i) const { return kl_term(mu[i], lv[i]); }
};

struct distill_term_fn {
    const float *mu1, *lv1, *mu2, *lv2;
    int published;
    __device__ double operator()(int64_t i) const
    {
        return published ? klg_published_term(mu1[i], lv1[i], mu2[i], lv2[i])
                         : klg_kl_term(mu1[i], lv1[i], mu2[i], lv2[i]);
    }
};

template <class Term> static __global__ void loss_partials_kernel(double *partial, Term term, int64_t n)
{
    double s = 0.0;
    GRID_STRIDE(i, n) {
        s += term(i);
    }
    s = block_sum_double(s); /* every thread calls it: the loop above is the only divergence */
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s;
}

static __global__ void loss_finish_kernel(float *loss, const double *partial, int nparts, int norm, double count)
{
    if (blockIdx.x != 0 || threadIdx.x != 0)
        return;
    double total = 0.0;
    for (int b = 0; b < nparts; b++) /* in order */
        total += partial[b];
    double v;
    switch (norm) {
    case LOSS_MEAN:
        v = total / count;
        break;
    case LOSS_KL:
        v = -0.5 * total / count;
        break;
    case LOSS_DISTILL_PUBLISHED:
        v = -0.5 * (count - total) / count;
        break;
    default: /* LOSS_DISTILL_KL */
        v = 0.5 * total / count;
        break;
    }
    *loss = (float)v;
}

/* loss = norm(Σ_{i<n} term(i)); count is n (LOSS_MEAN) or B (the others) */
template <class Term> static int loss_reduce(float *loss, Term term, int64_t n, loss_norm norm, double count)
{
    GET_CTX(ctx);
    int64_t parts = (n + (int64_t)CUDA_THREADS * LOSS_PER_THREAD - 1) / ((int64_t)CUDA_THREADS * LOSS_PER_THREAD);
    if (parts < 1)
        parts = 1;
    if (parts > LOSS_MAX_PARTS)
        parts = LOSS_MAX_PARTS;
    double *partial = (double *)cuda_scratch((size_t)parts * sizeof(double));
    if (!partial)
        return -1;
    loss_partials_kernel<Term><<<(unsigned)parts, CUDA_THREADS, 0, ctx->stream>>>(partial, term, n);
    CUDA_LAUNCHED();
    loss_finish_kernel<<<1, 1, 0, ctx->stream>>>(loss, partial, (int)parts, (int)norm, count);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- MSE ------------------------------------------------------------------------------------------------------- */

static int cu_mse_forward(float *loss, const float *x, const float *target, int64_t n)
{
    REQUIRE(loss && x && target && n > 0, "mse_forward: NULL tensor or n = %lld", (long long)n);
    mse_term_fn term = {x, target};
    return loss_reduce(loss, term, n, LOSS_MEAN, (double)n);
}

static __global__ void mse_backward_kernel(float *dx, float f, const float *x, const float *target, int64_t n)
{
    GRID_STRIDE(i, n) {
        dx[i] += f * (x[i] - target[i]);
    }
}

static int cu_mse_backward(float *dx, float dloss, const float *x, const float *target, int64_t n)
{
    REQUIRE(x && target && n > 0, "mse_backward: NULL tensor or n = %lld", (long long)n);
    if (!dx)
        return 0;
    GET_CTX(ctx);
    float f = 2.0f * dloss / (float)n; /* the CPU's float expression */
    mse_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, ctx->stream>>>(dx, f, x, target, n);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- KL to the standard normal (SPEC §2) --------------------------------------------------------------------- */

static int cu_kl_forward(float *loss, const float *mu, const float *lv, int64_t B, int64_t L)
{
    REQUIRE(loss && mu && lv, "kl_forward: NULL tensor");
    REQUIRE(B > 0 && L > 0, "kl_forward: bad sizes B=%lld L=%lld", (long long)B, (long long)L);
    kl_term_fn term = {mu, lv};
    return loss_reduce(loss, term, B * L, LOSS_KL, (double)B); /* −½ · mean over rows of the row sums */
}

static __global__ void kl_backward_kernel(float *dmu, float *dlv, float f, const float *mu, const float *lv,
                                          int64_t n)
{
    GRID_STRIDE(i, n) {
        if (dmu)
            dmu[i] += f * kl_term_dmu(mu[i]);
        if (dlv)
            dlv[i] += f * kl_term_dlv(lv[i]);
    }
}

static int cu_kl_backward(float *dmu, float *dlv, float dloss, const float *mu, const float *lv, int64_t B,
                          int64_t L)
{
    REQUIRE(mu && lv, "kl_backward: NULL tensor");
    REQUIRE(B > 0 && L > 0, "kl_backward: bad sizes B=%lld L=%lld", (long long)B, (long long)L);
    if (!dmu && !dlv)
        return 0;
    GET_CTX(ctx);
    float f = -0.5f * dloss / (float)B;
    kl_backward_kernel<<<grid_for(B * L), CUDA_THREADS, 0, ctx->stream>>>(dmu, dlv, f, mu, lv, B * L);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- distillation (SPEC §4, §6) ------------------------------------------------------------------------------ */

static int cu_distill_forward(float *loss, const float *mu1, const float *lv1, const float *mu2, const float *lv2,
                              distill_variant variant, int64_t B, int64_t L)
{
    REQUIRE(loss && mu1 && lv1 && mu2 && lv2, "distill_forward: NULL tensor");
    REQUIRE(B > 0 && L > 0, "distill_forward: bad sizes B=%lld L=%lld", (long long)B, (long long)L);
    REQUIRE(variant == DISTILL_PUBLISHED || variant == DISTILL_KL, "distill_forward: unknown variant %d",
            (int)variant);
    distill_term_fn term = {mu1, lv1, mu2, lv2, variant == DISTILL_PUBLISHED};
    return loss_reduce(loss, term, B * L, variant == DISTILL_PUBLISHED ? LOSS_DISTILL_PUBLISHED : LOSS_DISTILL_KL,
                       (double)B);
}

static __global__ void distill_backward_kernel(float *dmu1, float *dlv1, float f, const float *mu1, const float *lv1,
                                               const float *mu2, const float *lv2, int published, int64_t n)
{
    GRID_STRIDE(i, n) {
        if (published) {
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
}

static int cu_distill_backward(float *dmu1, float *dlv1, float dloss, const float *mu1, const float *lv1,
                               const float *mu2, const float *lv2, distill_variant variant, int64_t B, int64_t L)
{
    REQUIRE(mu1 && lv1 && mu2 && lv2, "distill_backward: NULL tensor");
    REQUIRE(B > 0 && L > 0, "distill_backward: bad sizes B=%lld L=%lld", (long long)B, (long long)L);
    REQUIRE(variant == DISTILL_PUBLISHED || variant == DISTILL_KL, "distill_backward: unknown variant %d",
            (int)variant);
    if (!dmu1 && !dlv1)
        return 0;
    GET_CTX(ctx);
    float f = 0.5f * dloss / (float)B; /* both forms: ∂loss/∂t = +½/B */
    distill_backward_kernel<<<grid_for(B * L), CUDA_THREADS, 0, ctx->stream>>>(
        dmu1, dlv1, f, mu1, lv1, mu2, lv2, variant == DISTILL_PUBLISHED, B * L);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- confounder mixing (SPEC §4) ------------------------------------------------------------------------------
 * W_c = [W1 | W2] with W1 = W_c[:, :L] acting on c and W2 = W_c[:, L:] on z_m (row stride 2L); c is the same for
 * every row, so zc = zm·W2ᵀ + (W1·c + b_c). The small vectors (π [G], c [L], u [L]) are each a handful of dot
 * products: one block computes them in the CPU's order; the [B, L] products are cuBLAS. */

#define MIX_THREADS 256

/* π_g = mean_p prior[p, g]; c_l = Σ_g π_g·Cemb[g, l]; u_l = b_c[l] + Σ_j W1[l, j]·c_j — each in double, in the
 * CPU's order. One block: __syncthreads makes π and c (global memory) visible to the whole block. */
static __global__ void confounder_mix_kernel(float *u, float *pi, float *c, const float *prior, const float *cemb,
                                             const float *Wc, const float *bc, int64_t P, int64_t L, int64_t G)
{
    for (int64_t g = threadIdx.x; g < G; g += blockDim.x) {
        double s = 0.0;
        for (int64_t p = 0; p < P; p++)
            s += prior[p * G + g];
        pi[g] = (float)(s / (double)P);
    }
    __syncthreads();
    for (int64_t l = threadIdx.x; l < L; l += blockDim.x) {
        double s = 0.0;
        for (int64_t g = 0; g < G; g++)
            s += (double)pi[g] * cemb[g * L + l];
        c[l] = (float)s;
    }
    __syncthreads();
    for (int64_t l = threadIdx.x; l < L; l += blockDim.x) {
        double s = bc[l];
        for (int64_t j = 0; j < L; j++)
            s += (double)Wc[l * 2 * L + j] * c[j];
        u[l] = (float)s;
    }
}

static int cu_confounder_forward(float *zc, float *pi, float *c, const float *zm, const float *prior,
                                 const float *cemb, const float *Wc, const float *bc, int64_t B, int64_t P,
                                 int64_t L, int64_t G)
{
    REQUIRE(zc && pi && c && zm && prior && cemb && Wc && bc, "confounder_forward: NULL tensor");
    REQUIRE(ops_blas_ok(B) && P > 0 && ops_blas_ok(2 * L) && G > 0,
            "confounder_forward: bad sizes B=%lld P=%lld L=%lld G=%lld", (long long)B, (long long)P,
            (long long)L, (long long)G);
    GET_CTX(ctx);
    float *u = (float *)cuda_scratch((size_t)L * sizeof(float));
    if (!u)
        return -1;
    confounder_mix_kernel<<<1, MIX_THREADS, 0, ctx->stream>>>(u, pi, c, prior, cemb, Wc, bc, P, L, G);
    CUDA_LAUNCHED();
    /* zc[B,L] = zm[B,L]·W2[L,L]ᵀ, W2 = Wc + L with row stride 2L. Column-major: zcᵀ[L,B] (ld L) = W2·zmᵀ, where
     * W2 is op(T) of the column-major view W2ᵀ (ld 2L) and zmᵀ[L,B] (ld L) is zm as stored. */
    if (sgemm(ctx, CUBLAS_OP_T, CUBLAS_OP_N, L, B, L, Wc + L, 2 * L, zm, L, 0.0f, zc, L))
        return -1;
    add_row_vector_kernel<<<grid_for(B * L), CUDA_THREADS, 0, ctx->stream>>>(zc, u, B, L);
    CUDA_LAUNCHED();
    return 0;
}

/* dW1[l, j] += du_l·c_j (row stride 2L) when dWc; dbc[l] += du_l when dbc */
static __global__ void confounder_dw1_dbc_kernel(float *dWc, float *dbc, const float *du, const float *c, int64_t L)
{
    GRID_STRIDE(i, dWc ? L * L : L) {
        if (dWc) {
            int64_t l = i / L, j = i % L;
            dWc[l * 2 * L + j] += du[l] * c[j];
        }
        if (dbc && i < L)
            dbc[i] += du[i];
    }
}

/* dc_j = Σ_l W1[l, j]·du_l (double, by increasing l); dCemb[g, j] += π_g·dc_j */
static __global__ void confounder_dcemb_kernel(float *dcemb, const float *du, const float *pi, const float *Wc,
                                               int64_t L, int64_t G)
{
    GRID_STRIDE(j, L) {
        double s = 0.0;
        for (int64_t l = 0; l < L; l++)
            s += (double)Wc[l * 2 * L + j] * du[l];
        float dc = (float)s;
        for (int64_t g = 0; g < G; g++)
            dcemb[g * L + j] += pi[g] * dc;
    }
}

static int cu_confounder_backward(float *dzm, float *dcemb, float *dWc, float *dbc, const float *dzc,
                                  const float *pi, const float *c, const float *zm, const float *Wc, int64_t B,
                                  int64_t L, int64_t G)
{
    REQUIRE(dzc && pi && c && zm && Wc, "confounder_backward: NULL tensor");
    REQUIRE(ops_blas_ok(B) && ops_blas_ok(2 * L) && G > 0, "confounder_backward: bad sizes B=%lld L=%lld G=%lld",
            (long long)B, (long long)L, (long long)G);
    if (!dzm && !dcemb && !dWc && !dbc)
        return 0;
    GET_CTX(ctx);
    if (dbc || dWc || dcemb) {
        float *du = (float *)cuda_scratch((size_t)L * sizeof(float)); /* du = Σ_rows dzc, the gradient of u */
        if (!du)
            return -1;
        column_sums_kernel<<<grid_for(L), CUDA_THREADS, 0, ctx->stream>>>(du, dzc, B, L, 0);
        CUDA_LAUNCHED();
        if (dbc || dWc) {
            confounder_dw1_dbc_kernel<<<grid_for(dWc ? L * L : L), CUDA_THREADS, 0, ctx->stream>>>(dWc, dbc, du, c,
                                                                                                  L);
            CUDA_LAUNCHED();
        }
        if (dcemb) {
            confounder_dcemb_kernel<<<grid_for(L), CUDA_THREADS, 0, ctx->stream>>>(dcemb, du, pi, Wc, L, G);
            CUDA_LAUNCHED();
        }
    }
    if (dWc) { /* dW2[L,L] += dzc[B,L]ᵀ·zm[B,L] (row stride 2L). Column-major: dW2ᵀ[L,L] (ld 2L) += zmᵀ[L,B]·dzc[B,L],
                * zmᵀ being zm as stored (ld L) and dzc op(T) of dzc as stored (dzcᵀ[L,B], ld L). */
        if (sgemm(ctx, CUBLAS_OP_N, CUBLAS_OP_T, L, L, B, zm, L, dzc, L, 1.0f, dWc + L, 2 * L))
            return -1;
    }
    if (dzm) { /* dzm[B,L] += dzc[B,L]·W2[L,L]. Column-major: dzmᵀ[L,B] (ld L) += W2ᵀ·dzcᵀ, W2ᵀ being W2 as stored
                * (ld 2L) and dzcᵀ dzc as stored (ld L): no transposes. */
        if (sgemm(ctx, CUBLAS_OP_N, CUBLAS_OP_N, L, B, L, Wc + L, 2 * L, dzc, L, 1.0f, dzm, L))
            return -1;
    }
    return 0;
}

/* ---- Adam (SPEC §5) -------------------------------------------------------------------------------------------- */

static __global__ void adam_kernel(float *theta, float *m, float *v, const float *g, adam_coef c, int64_t n)
{
    GRID_STRIDE(i, n) {
        adam_update_one(&theta[i], &m[i], &v[i], g[i], c);
    }
}

static int cu_adam_update(float *theta, float *m, float *v, const float *g, const adam_cfg *cfg, int64_t t,
                          int64_t n)
{
    REQUIRE(theta && m && v && g && cfg, "adam_update: NULL tensor");
    REQUIRE(t >= 1 && n >= 0, "adam_update: step t = %lld (expected >= 1), n = %lld", (long long)t, (long long)n);
    if (n == 0)
        return 0;
    GET_CTX(ctx);
    /* the coefficients on the host, in double, exactly as the CPU (math.h) */
    adam_coef c = adam_coef_make(cfg->lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, t);
    adam_kernel<<<grid_for(n), CUDA_THREADS, 0, ctx->stream>>>(theta, m, v, g, c, n);
    CUDA_LAUNCHED();
    return 0;
}

/* ---- the table ------------------------------------------------------------------------------------------------- */

static debcm_ops g_cuda_ops;
static pthread_once_t g_cuda_ops_once = PTHREAD_ONCE_INIT;

/* filled field by field (C++17 has no designated initialisers; a positional list would silently misplace two
 * ops of the same type) */
static void cuda_ops_fill(void)
{
    debcm_ops *t = &g_cuda_ops;
    t->name = "cuda";
    t->host_memory = 0;
    t->gather_rows = cu_gather_rows;
    t->alloc = cu_alloc;
    t->free = cu_free;
    t->upload = cu_upload;
    t->download = cu_download;
    t->copy = cu_copy;
    t->zero = cu_zero;
    t->sync = cu_sync;
    t->linear_forward = cu_linear_forward;
    t->linear_backward = cu_linear_backward;
    t->bn_forward_train = cu_bn_forward_train;
    t->bn_forward_eval = cu_bn_forward_eval;
    t->bn_backward = cu_bn_backward;
    t->dropout_mask = cu_dropout_mask;
    t->dropout_forward = cu_dropout_forward;
    t->dropout_backward = cu_dropout_backward;
    t->l2norm_forward = cu_l2norm_forward;
    t->l2norm_backward = cu_l2norm_backward;
    t->normal_draw = cu_normal_draw;
    t->reparam_forward = cu_reparam_forward;
    t->reparam_backward = cu_reparam_backward;
    t->relu_forward = cu_relu_forward;
    t->relu_backward = cu_relu_backward;
    t->mse_forward = cu_mse_forward;
    t->mse_backward = cu_mse_backward;
    t->kl_forward = cu_kl_forward;
    t->kl_backward = cu_kl_backward;
    t->distill_forward = cu_distill_forward;
    t->distill_backward = cu_distill_backward;
    t->match_forward = cuda_match_forward;
    t->match_backward = cuda_match_backward;
    t->confounder_forward = cu_confounder_forward;
    t->confounder_backward = cu_confounder_backward;
    t->adam_update = cu_adam_update;
    t->eval_negatives = cuda_eval_negatives;
    t->eval_full_rank = cuda_eval_full_rank;
}

extern "C" const debcm_ops *debcm_ops_cuda(void)
{
    if (!cuda_ctx()) /* no usable GPU: cuda_ctx has said why */
        return NULL;
    pthread_once(&g_cuda_ops_once, cuda_ops_fill);
    return &g_cuda_ops;
}
