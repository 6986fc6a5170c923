/* kernels/cuda_match_eval.cu — the in-batch matching term (SPEC §3, §6) and the ranking evaluations (SPEC §3,
 * §4) of the CUDA backend: kernels/cuda_match_eval.h, with the contract of engine/ops.h, tested against the CPU
 * oracle (engine/ops_cpu.c: cpu_match_forward/backward, cpu_eval_negatives/full_rank).
 *
 * Same semantics as the CPU, kernel by kernel:
 *   - S = Zm·Zvᵀ by cuBLAS; the per-element values and gradients are math.h's (match_published_value/grad,
 *     match_hinge_value/grad, topk_key), called from the threads.
 *   - top-k (published, hinge): one block per line (rows of S = music, rows of Sᵀ = video) runs topk_select's
 *     radix selection in parallel: four 8-bit histogram passes in shared memory (integer atomics: the counts,
 *     hence the result, do not depend on their order) find the k-th largest key T and how many keys equal to T
 *     are taken; an ordered block scan (warp ballots) then writes the keys above T and the lowest-indexed keys
 *     equal to T in increasing index — the set and order topk_select gives.
 *   - every loss is summed in double with a fixed reduction shape (per-line values, then one block), never with
 *     float atomics; the gradient dS is written by owners only (row i owns dS[i][·] in the music pass, column j
 *     owns dS[·][j] in the video pass, two kernels in stream order), in the CPU's accumulation order.
 *   - products that feed a sum are written __fmul_rn/__dmul_rn, so nvcc does not contract them into an FMA that
 *     the (x86-64, no -mfma) CPU build does not do.
 * What can still differ from the CPU in the last bits: the GEMMs (cuBLAS vs OpenBLAS), double exp/log/log2 (CUDA
 * vs glibc, ≤ 1 ulp) and the association of the double sums of the loss values and of the softmax
 * denominators (tree vs sequential); the parity test needs a tolerance for those, not for the selections. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "kernels/cuda_common.cuh"

#include "engine/math.h"
#include "engine/ops.h"
#include "engine/ops_check.h"
#include "kernels/cuda_match_eval.h"

#define REQUIRE(cond, ...)                                                                                   \
    do {                                                                                                     \
        if (!(cond))                                                                                         \
            return debcm_fail(__VA_ARGS__);                                                                  \
    } while (0)

#define LINE_THREADS 256 /* block of the per-line kernels: a multiple of 32 (warp ballots and shuffles) */
#define WARPS_PER_BLOCK (LINE_THREADS / 32)
#define TILE 32          /* transpose and column kernels: 32 columns × TILE_ROWS row phases per block */
#define TILE_ROWS 8
#define FULL_MASK 0xffffffffu

/* byte offsets inside the one scratch buffer of an op (cuda_scratch: valid until the next call) */
static size_t align_up(size_t n) { return (n + 255) & ~(size_t)255; }

/* ---- deterministic block reductions (fixed shape: warp shuffles, then warp totals in warp order) ---- */

static __device__ __forceinline__ double warp_max_double(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmax(v, __shfl_down_sync(FULL_MASK, v, o));
    return v;
}

/* The block's fmax of v, returned to every thread. fmax drops NaN (as the CPU's fmax does), and the max is the
 * same in any order, so this matches the CPU's sequential fmax exactly. */
static __device__ double block_max_double_all(double v)
{
    __shared__ double warp_v[32];
    __shared__ double result;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_max_double(v);
    __syncthreads(); /* warp_v / result may still be read by a previous call */
    if (lane == 0)
        warp_v[warp] = v;
    __syncthreads();
    if (warp == 0) {
        int nwarps = (blockDim.x + 31) >> 5;
        double w = lane < nwarps ? warp_v[lane] : -INFINITY;
        w = warp_max_double(w);
        if (lane == 0)
            result = w;
    }
    __syncthreads();
    return result;
}

/* block_sum_double (cuda_common.cuh) returned to every thread */
static __device__ double block_sum_double_all(double v)
{
    __shared__ double result;
    v = block_sum_double(v); /* begins with a __syncthreads: earlier readers of `result` are done */
    if (threadIdx.x == 0)
        result = v;
    __syncthreads();
    return result;
}

static __device__ __forceinline__ long long warp_sum_ll(long long v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_down_sync(FULL_MASK, v, o);
    return v;
}

/* integer block sum (exact, so its order does not matter); the total in thread 0 */
static __device__ long long block_sum_ll(long long v)
{
    __shared__ long long warp_totals[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum_ll(v);
    __syncthreads();
    if (lane == 0)
        warp_totals[warp] = v;
    __syncthreads();
    int nwarps = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < (unsigned)nwarps) ? warp_totals[lane] : 0;
    if (warp == 0)
        v = warp_sum_ll(v);
    return v;
}

/* ---- in-batch matching (SPEC §3, §6) ---------------------------------------------------------------------- */


/* T[j][i] = S[i][j], B × B, through a padded 32 × 33 shared tile (coalesced reads and writes); grid-stride over
 * tiles in both directions. */
static __global__ void transpose_kernel(float *__restrict__ T, const float *__restrict__ S, int64_t B)
{
    __shared__ float tile[TILE][TILE + 1];
    const int64_t nt = (B + TILE - 1) / TILE;
    for (int64_t ti = blockIdx.y; ti < nt; ti += gridDim.y)
        for (int64_t tj = blockIdx.x; tj < nt; tj += gridDim.x) {
            const int64_t i0 = ti * TILE, j0 = tj * TILE;
            for (int r = threadIdx.y; r < TILE; r += TILE_ROWS) { /* tile[r][x] = S[i0 + r][j0 + x] */
                int64_t i = i0 + r, j = j0 + threadIdx.x;
                if (i < B && j < B)
                    tile[r][threadIdx.x] = S[i * B + j];
            }
            __syncthreads();
            for (int r = threadIdx.y; r < TILE; r += TILE_ROWS) { /* T[j0 + r][i0 + x] = S[i0 + x][j0 + r] */
                int64_t j = j0 + r, i = i0 + threadIdx.x;
                if (i < B && j < B)
                    T[j * B + i] = tile[threadIdx.x][r];
            }
            __syncthreads(); /* the tile is refilled by the next iteration */
        }
}

static __device__ __forceinline__ float match_value(int published, float pos, float s, float margin)
{
    return published ? match_published_value(pos, s, margin) : match_hinge_value(pos, s, margin);
}

/* Top-k of every line: lines 0..B−1 are the rows a of S (music a), lines B..2B−1 the rows a of St = Sᵀ (video a).
 * Line a holds the positive M[a] and the candidates M[j], j ≠ a, valued by match_value; the k best (topk_key
 * order: larger key first, then lower index) go to sel[a·k ..] in increasing index, and the sum of their values
 * (double) to line_val[line]. One block per line (grid-stride), LINE_THREADS threads.
 * Cost: five sweeps of the line (four histogram passes and the scan), L1/L2-resident for B ≤ ~16k, recomputing
 * the value and key from M each time (a subtraction and a clamp) instead of keeping B keys in shared memory. */
static __global__ void __launch_bounds__(LINE_THREADS)
    topk_lines_kernel(double *__restrict__ line_val, int32_t *__restrict__ sel_m, int32_t *__restrict__ sel_v,
                      const float *__restrict__ S, const float *__restrict__ St, int64_t B, int32_t k, int published,
                      float margin)
{
    __shared__ unsigned hist[256];
    __shared__ uint32_t s_prefix;
    __shared__ int32_t s_need;
    __shared__ int32_t w_gt[32], w_eq[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const unsigned lanes_below = (1u << lane) - 1u;

    for (int64_t line = blockIdx.x; line < 2 * B; line += gridDim.x) {
        const int64_t a = line < B ? line : line - B;
        const float *M = (line < B ? S : St) + a * B;
        const float pos = M[a];

        /* radix passes: prefix = the bits of the k-th largest key fixed so far, need = how many keys sharing
         * the prefix are still to be taken (topk_select's loop, with the candidates defined by the prefix) */
        uint32_t prefix = 0;
        int32_t need = k;
        for (int shift = 24; shift >= 0; shift -= 8) {
            const uint32_t fixed = shift == 24 ? 0u : ~0u << (shift + 8); /* the bits decided by earlier passes */
            for (int b = threadIdx.x; b < 256; b += blockDim.x)
                hist[b] = 0;
            __syncthreads();
            for (int64_t base = 0; base < B; base += blockDim.x) { /* uniform trip count: warp intrinsics below */
                const int64_t j = base + threadIdx.x;
                int bin = -1;
                if (j < B && j != a) {
                    uint32_t key = topk_key(match_value(published, pos, M[j], margin));
                    if ((key & fixed) == prefix)
                        bin = (int)((key >> shift) & 255u);
                }
                /* warp-aggregated increment: ties (a clamped row is mostly one value) would otherwise serialise
                 * 32 lanes on one shared counter */
                const unsigned peers = __match_any_sync(FULL_MASK, bin);
                if (bin >= 0 && lane == __ffs(peers) - 1)
                    atomicAdd(&hist[bin], (unsigned)__popc(peers));
            }
            __syncthreads();
            if (threadIdx.x == 0) { /* whole bins above the k-th key are taken (topk_select's scan) */
                int b = 255;
                int32_t nd = need;
                for (;;) {
                    int32_t in_b = (int32_t)hist[b];
                    if (in_b >= nd || b == 0) /* b == 0: unreachable (the candidates number ≥ need) */
                        break;
                    nd -= in_b;
                    b--;
                }
                s_prefix = prefix | ((uint32_t)b << shift);
                s_need = nd;
            }
            __syncthreads();
            prefix = s_prefix;
            need = s_need;
        }

        /* prefix is now the k-th largest key T: take every key > T and the `need` lowest-indexed keys == T. The
         * output slot of a taken j is #{taken below j} = #{key > T below j} + min(#{key == T below j}, need). */
        const uint32_t T = prefix;
        int32_t *out = (line < B ? sel_m : sel_v) + a * (int64_t)k;
        int32_t run_gt = 0, run_eq = 0; /* counts in the chunks before this one */
        double vsum = 0.0;
        for (int64_t base = 0; base < B; base += blockDim.x) {
            const int64_t j = base + threadIdx.x;
            bool gt = false, eq = false;
            float v = 0.0f;
            if (j < B && j != a) {
                v = match_value(published, pos, M[j], margin);
                uint32_t key = topk_key(v);
                gt = key > T;
                eq = key == T;
            }
            const unsigned bal_gt = __ballot_sync(FULL_MASK, gt), bal_eq = __ballot_sync(FULL_MASK, eq);
            if (lane == 0) {
                w_gt[warp] = __popc(bal_gt);
                w_eq[warp] = __popc(bal_eq);
            }
            __syncthreads();
            int32_t gt_below = run_gt + __popc(bal_gt & lanes_below), eq_below = run_eq + __popc(bal_eq & lanes_below);
            int32_t chunk_gt = 0, chunk_eq = 0;
            for (int w = 0; w < nwarps; w++) {
                if (w < warp) {
                    gt_below += w_gt[w];
                    eq_below += w_eq[w];
                }
                chunk_gt += w_gt[w];
                chunk_eq += w_eq[w];
            }
            __syncthreads(); /* w_gt / w_eq are rewritten by the next chunk */
            run_gt += chunk_gt;
            run_eq += chunk_eq;
            if (gt || (eq && eq_below < need)) {
                out[gt_below + (eq_below < need ? eq_below : need)] = (int32_t)j;
                vsum += (double)v;
            }
        }
        vsum = block_sum_double(vsum);
        if (threadIdx.x == 0)
            line_val[line] = vsum;
    }
}

/* Softmax cross-entropy over the rows of S (SPEC §6, InfoNCE), one block per row r (grid-stride):
 *   forward (!BACKWARD):  line_val[r] = (float)(logsumexp_j S[r][j]/τ − S[r][r]/τ), as a double;
 *   backward:             dS[r][j] = 0 + (float)(f·(softmax_j − δ_rj)), f = dmusic/B/τ — the row pass, which
 *                         OVERWRITES dS (the CPU's memset then +=; the column pass adds after it).
 * Double throughout, as the CPU: x_j = (double)S[r][j]·(1/τ), mx = fmax of x_j, s = Σ exp(x_j − mx). */
template <bool BACKWARD>
static __global__ void __launch_bounds__(LINE_THREADS)
    softmax_rows_kernel(double *__restrict__ line_val, float *__restrict__ dS, const float *__restrict__ S,
                        int64_t B, double inv_tau, double f)
{
    for (int64_t r = blockIdx.x; r < B; r += gridDim.x) {
        const float *row = S + r * B;
        double mx = -INFINITY;
        for (int64_t j = threadIdx.x; j < B; j += blockDim.x)
            mx = fmax(mx, __dmul_rn((double)row[j], inv_tau));
        mx = block_max_double_all(mx);
        double s = 0.0;
        for (int64_t j = threadIdx.x; j < B; j += blockDim.x)
            s += exp(__dmul_rn((double)row[j], inv_tau) - mx);
        s = block_sum_double_all(s);
        if (!BACKWARD) {
            if (threadIdx.x == 0)
                line_val[r] = (double)(float)(mx + log(s) - __dmul_rn((double)row[r], inv_tau));
        } else {
            float *drow = dS + r * B;
            for (int64_t j = threadIdx.x; j < B; j += blockDim.x) {
                double p = exp(__dmul_rn((double)row[j], inv_tau) - mx) / s;
                drow[j] = 0.0f + (float)(f * (p - (j == r ? 1.0 : 0.0)));
            }
        }
    }
}

/* The same over the columns of S, TILE columns per block (blockDim TILE × TILE_ROWS: a warp reads 32 adjacent
 * columns of one row, coalesced); thread (x, y) covers rows y, y + TILE_ROWS, … of column c0 + x, and the
 * TILE_ROWS partials of a column are combined in y order. Backward ADDS to dS[·][c] (after the row pass);
 * element dS[i][c] belongs to thread (c − c0, i mod TILE_ROWS) of the block of c. */
template <bool BACKWARD>
static __global__ void __launch_bounds__(TILE * TILE_ROWS)
    softmax_cols_kernel(double *__restrict__ line_val, float *__restrict__ dS, const float *__restrict__ S,
                        int64_t B, double inv_tau, double f)
{
    __shared__ double part[TILE_ROWS][TILE];
    __shared__ double col_mx[TILE], col_s[TILE];
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t ntiles = (B + TILE - 1) / TILE;
    for (int64_t tile = blockIdx.x; tile < ntiles; tile += gridDim.x) {
        const int64_t c = tile * TILE + tx;
        const bool on = c < B;
        double mx = -INFINITY;
        if (on)
            for (int64_t i = ty; i < B; i += TILE_ROWS)
                mx = fmax(mx, __dmul_rn((double)S[i * B + c], inv_tau));
        part[ty][tx] = mx;
        __syncthreads();
        if (ty == 0) {
            double m = part[0][tx];
            for (int y = 1; y < TILE_ROWS; y++)
                m = fmax(m, part[y][tx]);
            col_mx[tx] = m;
        }
        __syncthreads();
        mx = col_mx[tx];
        double s = 0.0;
        if (on)
            for (int64_t i = ty; i < B; i += TILE_ROWS)
                s += exp(__dmul_rn((double)S[i * B + c], inv_tau) - mx);
        part[ty][tx] = s;
        __syncthreads();
        if (ty == 0) {
            double t = part[0][tx];
            for (int y = 1; y < TILE_ROWS; y++)
                t += part[y][tx];
            col_s[tx] = t;
        }
        __syncthreads();
        s = col_s[tx];
        if (!BACKWARD) {
            if (ty == 0 && on)
                line_val[c] = (double)(float)(mx + log(s) - __dmul_rn((double)S[c * B + c], inv_tau));
        } else if (on) {
            for (int64_t i = ty; i < B; i += TILE_ROWS) {
                double p = exp(__dmul_rn((double)S[i * B + c], inv_tau) - mx) / s;
                dS[i * B + c] += (float)(f * (p - (i == c ? 1.0 : 0.0)));
            }
        }
        __syncthreads(); /* part / col_mx / col_s are rewritten by the next tile */
    }
}

/* music = Σ line_val[0..B) / count, video = Σ line_val[B..2B) / count (count = B·k, softmax: B); one block,
 * fixed reduction shape. */
static __global__ void __launch_bounds__(LINE_THREADS)
    match_finish_kernel(float *music, float *video, const double *__restrict__ line_val, int64_t B, double count)
{
    double sm = 0.0, sv = 0.0;
    for (int64_t i = threadIdx.x; i < B; i += blockDim.x) {
        sm += line_val[i];
        sv += line_val[B + i];
    }
    sm = block_sum_double(sm);
    sv = block_sum_double(sv);
    if (threadIdx.x == 0) {
        *music = (float)(sm / count);
        *video = (float)(sv / count);
    }
}

/* Backward of the top-k terms, music pass: thread i owns row i of dS (zeroed before): for each selected j in
 * sel_m order, dS[i][i] += fm·g and dS[i][j] −= fm·g (the CPU's loop; j ≠ i, so the diagonal's running sum is
 * kept in a register and stored once). g: published +grad (the value rises with s_pos), hinge −grad. */
static __global__ void topk_grad_rows_kernel(float *__restrict__ dS, const float *__restrict__ S,
                                      const int32_t *__restrict__ sel_m, int64_t B, int32_t k, int published,
                                      float margin, float fm)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < B; i += (int64_t)gridDim.x * blockDim.x) {
        const float pos = S[i * B + i];
        float d = dS[i * B + i];
        for (int32_t t = 0; t < k; t++) {
            const int64_t j = sel_m[i * k + t];
            if (j < 0 || j >= B || j == i) /* never produced by match_forward; skipped rather than a fault */
                continue;
            const float neg = S[i * B + j];
            const float g = published ? match_published_grad(pos, neg, margin) : -match_hinge_grad(pos, neg, margin);
            const float p = __fmul_rn(fm, g);
            d = d + p;
            dS[i * B + j] = dS[i * B + j] - p;
        }
        dS[i * B + i] = d;
    }
}

/* Video pass, after the music pass: thread j owns column j of dS: dS[j][j] += fv·g, dS[i][j] −= fv·g for each
 * selected i in sel_v order (positive S[j][j], negative S[i][j]). */
static __global__ void topk_grad_cols_kernel(float *__restrict__ dS, const float *__restrict__ S,
                                      const int32_t *__restrict__ sel_v, int64_t B, int32_t k, int published,
                                      float margin, float fv)
{
    for (int64_t j = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; j < B; j += (int64_t)gridDim.x * blockDim.x) {
        const float pos = S[j * B + j];
        float d = dS[j * B + j];
        for (int32_t t = 0; t < k; t++) {
            const int64_t i = sel_v[j * k + t];
            if (i < 0 || i >= B || i == j)
                continue;
            const float neg = S[i * B + j];
            const float g = published ? match_published_grad(pos, neg, margin) : -match_hinge_grad(pos, neg, margin);
            const float p = __fmul_rn(fv, g);
            d = d + p;
            dS[i * B + j] = dS[i * B + j] - p;
        }
        dS[j * B + j] = d;
    }
}

extern "C" int cuda_match_forward(float *music, float *video, float *S, int32_t *sel_m, int32_t *sel_v,
                                  const float *zm, const float *zv, const match_cfg *cfg, int64_t B, int64_t L)
{
    if (ops_check_match("match_forward", cfg, B, L))
        return -1;
    REQUIRE(music && video && S && zm && zv, "match_forward: NULL tensor");
    REQUIRE(cfg->variant == MATCH_SOFTMAX || (sel_m && sel_v), "match_forward: NULL selection buffer");
    cuda_context *ctx = cuda_ctx();
    if (!ctx)
        return -1;
    cudaStream_t st = ctx->stream;
    const int topk = cfg->variant != MATCH_SOFTMAX;
    const int64_t k = topk ? match_k_eff(cfg->k, B) : 1;

    /* S[B,B] (row-major) = zm[B,L]·zv[B,L]ᵀ. cuBLAS is column-major, and a row-major [r,c] matrix with leading
     * dimension c IS the column-major [c,r] matrix (its transpose) with the same leading dimension. So S as a
     * column-major matrix is Sᵀ = Zv·Zmᵀ: A = zv read as column-major [L,B] (= Zvᵀ, lda = L) with op T gives Zv
     * [B,L]; B = zm read as column-major [L,B] (= Zmᵀ, ldb = L) with op N; C = S column-major [B,B], ldc = B.
     * m = n = B, k = L. (cuda_ctx's handle: pointer mode host, bound to the stream.) */
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasSgemm(ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)B, (int)B, (int)L, &one, zv, (int)L, zm,
                             (int)L, &zero, S, (int)B));

    /* scratch: line_val [2B] doubles (per-line loss values: music rows, then video columns), then St [B,B] */
    const size_t off_st = align_up((size_t)(2 * B) * sizeof(double));
    const size_t bytes = off_st + (topk ? (size_t)B * (size_t)B * sizeof(float) : 0);
    char *scratch = (char *)cuda_scratch(bytes);
    if (!scratch)
        return debcm_error_prefix("match_forward: device scratch of %zu bytes for B = %lld", bytes, (long long)B);
    double *line_val = (double *)scratch;

    if (!topk) {
        const double inv_tau = 1.0 / (double)cfg->tau;
        softmax_rows_kernel<false><<<cuda_blocks(B, 1), LINE_THREADS, 0, st>>>(line_val, NULL, S, B, inv_tau, 0.0);
        CUDA_LAUNCHED();
        softmax_cols_kernel<false><<<cuda_blocks(B, TILE), dim3(TILE, TILE_ROWS), 0, st>>>(line_val + B, NULL, S, B,
                                                                                         inv_tau, 0.0);
        CUDA_LAUNCHED();
    } else {
        float *St = (float *)(scratch + off_st);
        const unsigned nt = cuda_blocks(B, TILE), g = nt < 65535u ? nt : 65535u;
        transpose_kernel<<<dim3(g, g), dim3(TILE, TILE_ROWS), 0, st>>>(St, S, B);
        CUDA_LAUNCHED();
        topk_lines_kernel<<<cuda_blocks(2 * B, 1), LINE_THREADS, 0, st>>>(
            line_val, sel_m, sel_v, S, St, B, (int32_t)k, cfg->variant == MATCH_PUBLISHED, cfg->margin);
        CUDA_LAUNCHED();
    }
    /* mean over all B·k selected values (SPEC §3); softmax: over the B rows (columns) */
    match_finish_kernel<<<1, LINE_THREADS, 0, st>>>(music, video, line_val, B, (double)(B * k));
    CUDA_LAUNCHED();
    return 0;
}

extern "C" int cuda_match_backward(float *dzm, float *dzv, float *dS, float dmusic, float dvideo, const float *S,
                                   const int32_t *sel_m, const int32_t *sel_v, const float *zm, const float *zv,
                                   const match_cfg *cfg, int64_t B, int64_t L)
{
    if (ops_check_match("match_backward", cfg, B, L))
        return -1;
    REQUIRE(dS && S && zm && zv, "match_backward: NULL tensor");
    const int topk = cfg->variant != MATCH_SOFTMAX;
    REQUIRE(!topk || (sel_m && sel_v), "match_backward: NULL selection buffer");
    cuda_context *ctx = cuda_ctx();
    if (!ctx)
        return -1;
    cudaStream_t st = ctx->stream;

    if (!topk) {
        /* d CE_row_i / d S_ij = (softmax_j(S_i·/τ) − δ_ij)/τ, the same over columns; rows first (overwriting dS:
         * every element is written), then columns (adding) — the CPU's two passes */
        const double inv_tau = 1.0 / (double)cfg->tau;
        const double fm = (double)dmusic / (double)B, fv = (double)dvideo / (double)B;
        softmax_rows_kernel<true><<<cuda_blocks(B, 1), LINE_THREADS, 0, st>>>(NULL, dS, S, B, inv_tau, fm * inv_tau);
        CUDA_LAUNCHED();
        softmax_cols_kernel<true><<<cuda_blocks(B, TILE), dim3(TILE, TILE_ROWS), 0, st>>>(NULL, dS, S, B, inv_tau,
                                                                                        fv * inv_tau);
        CUDA_LAUNCHED();
    } else {
        const int64_t k = match_k_eff(cfg->k, B);
        const float fm = dmusic / (float)(B * k), fv = dvideo / (float)(B * k);
        const int published = cfg->variant == MATCH_PUBLISHED;
        CUDA_CHECK(cudaMemsetAsync(dS, 0, (size_t)B * (size_t)B * sizeof(float), st));
        topk_grad_rows_kernel<<<cuda_blocks(B, CUDA_THREADS), CUDA_THREADS, 0, st>>>(dS, S, sel_m, B, (int32_t)k,
                                                                                   published, cfg->margin, fm);
        CUDA_LAUNCHED();
        topk_grad_cols_kernel<<<cuda_blocks(B, CUDA_THREADS), CUDA_THREADS, 0, st>>>(dS, S, sel_v, B, (int32_t)k,
                                                                                   published, cfg->margin, fv);
        CUDA_LAUNCHED();
    }

    const float one = 1.0f;
    if (dzm) {
        /* dzm[B,L] += dS[B,B]·zv[B,L]. Column-major (row-major [r,c] = column-major [c,r]): dzmᵀ[L,B] +=
         * zvᵀ[L,B]·dSᵀ[B,B]; zv is column-major [L,B] with ld L (op N), dS read column-major is dSᵀ with ld B
         * (op N); C = dzm as column-major [L,B], ldc = L. m = L, n = B, k = B, beta = 1. */
        CUBLAS_CHECK(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)L, (int)B, (int)B, &one, zv, (int)L, dS,
                                 (int)B, &one, dzm, (int)L));
    }
    if (dzv) {
        /* dzv[B,L] += dSᵀ·zm: dzvᵀ[L,B] += zmᵀ[L,B]·dS[B,B]; dS read column-major is dSᵀ, op T gives dS. */
        CUBLAS_CHECK(cublasSgemm(ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)L, (int)B, (int)B, &one, zm, (int)L, dS,
                                 (int)B, &one, dzv, (int)L));
    }
    return 0;
}

/* ---- evaluation (SPEC §4, §3) ------------------------------------------------------------------------------
 * A competitor counts against the positive when !(score(competitor) < score(true)): ties and NaN on either side
 * count. One warp per row computes the row's rank (integer shuffles: exact); the sums over rows are taken in
 * the CPU's order (row 0, 1, …, one thread per cut-off K), so the recall sums are bit-identical to the CPU's and
 * the NDCG sums differ at most by log2's last bit. */


/* rank[r] = #{j in 1..C−1 : !(s[r][j] < s[r][0])}, tie[r] = any s[r][j] == s[r][0]; one warp per row */
static __global__ void __launch_bounds__(LINE_THREADS)
    eval_negatives_rank_kernel(int64_t *__restrict__ rank, int32_t *__restrict__ tie, const float *__restrict__ scores,
                               int64_t R, int64_t C)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < R; r += warps) {
        const float *s = scores + r * C;
        const float s0 = s[0];
        long long n = 0;
        int t = 0;
        for (int64_t j = 1 + lane; j < C; j += 32) {
            const float v = s[j];
            n += !(v < s0);
            t |= v == s0;
        }
        n = warp_sum_ll(n);
        t = __any_sync(FULL_MASK, t);
        if (lane == 0) {
            rank[r] = n;
            tie[r] = t;
        }
    }
}

/* out[i] = Σ_r w_r·[rank_r < K_i], out[nK + i] = Σ_r w_r·[rank_r < K_i] / log2(rank_r + 2) (rows in order, in
 * double, as the CPU); thread nK counts the tie rows into *ties */
static __global__ void eval_negatives_sums_kernel(double *__restrict__ out, long long *__restrict__ ties,
                                           const int64_t *__restrict__ rank, const int32_t *__restrict__ tie,
                                           const float *__restrict__ weights, const int32_t *__restrict__ K, int nK,
                                           int64_t R)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < nK) {
        const int32_t Ki = K[i];
        double rc = 0.0, nd = 0.0;
        for (int64_t r = 0; r < R; r++)
            if (rank[r] < Ki) {
                rc += weights[r];
                nd += weights[r] / log2((double)rank[r] + 2.0);
            }
        out[i] = rc;
        out[nK + i] = nd;
    } else if (i == nK) {
        long long t = 0;
        for (int64_t r = 0; r < R; r++)
            t += tie[r];
        *ties = t;
    }
}

extern "C" int cuda_eval_negatives(double *recall, double *ndcg, int64_t *tie_rows, const float *scores,
                                   const float *weights, const int32_t *K, int nK, int64_t R, int64_t C)
{
    REQUIRE(recall && ndcg && tie_rows && scores && weights, "eval_negatives: NULL pointer");
    REQUIRE(R > 0 && C >= 2, "eval_negatives: R=%lld rows of C=%lld candidates (positive + >= 1 negative)",
            (long long)R, (long long)C);
    if (ops_check_eval_K("eval_negatives", K, nK))
        return -1;
    cuda_context *ctx = cuda_ctx();
    if (!ctx)
        return -1;
    cudaStream_t st = ctx->stream;

    /* scratch: K [nK] int32 (uploaded: K is host memory), rank [R] int64, tie [R] int32, out [2nK] double,
     * ties [1] long long */
    const size_t off_rank = align_up((size_t)nK * sizeof(int32_t));
    const size_t off_tie = off_rank + align_up((size_t)R * sizeof(int64_t));
    const size_t off_out = off_tie + align_up((size_t)R * sizeof(int32_t));
    const size_t off_ties = off_out + align_up((size_t)(2 * nK) * sizeof(double));
    const size_t bytes = off_ties + sizeof(long long);
    char *scratch = (char *)cuda_scratch(bytes);
    if (!scratch)
        return debcm_error_prefix("eval_negatives: device scratch of %zu bytes for %lld rows", bytes, (long long)R);
    int32_t *dK = (int32_t *)scratch;
    int64_t *rank = (int64_t *)(scratch + off_rank);
    int32_t *tie = (int32_t *)(scratch + off_tie);
    double *out = (double *)(scratch + off_out);
    long long *dties = (long long *)(scratch + off_ties);

    CUDA_CHECK(cudaMemcpyAsync(dK, K, (size_t)nK * sizeof(int32_t), cudaMemcpyHostToDevice, st));
    eval_negatives_rank_kernel<<<cuda_blocks(R, WARPS_PER_BLOCK), LINE_THREADS, 0, st>>>(rank, tie, scores, R, C);
    CUDA_LAUNCHED();
    eval_negatives_sums_kernel<<<cuda_blocks((int64_t)nK + 1, 32), 32, 0, st>>>(out, dties, rank, tie, weights, dK,
                                                                              nK, R);
    CUDA_LAUNCHED();
    long long ties = 0;
    CUDA_CHECK(cudaMemcpyAsync(recall, out, (size_t)nK * sizeof(double), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaMemcpyAsync(ndcg, out + nK, (size_t)nK * sizeof(double), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaMemcpyAsync(&ties, dties, sizeof ties, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st)); /* the caller reads the host results at once */
    *tie_rows = (int64_t)ties;
    return 0;
}

/* rank[r] = #{j ≠ t : !(s[r][j] < s[r][t])}, t = truth[r] (device memory); one warp per row. A truth outside
 * [0, N) leaves the row unranked and lowers *bad to its row (integer atomicMin: the first bad row, whatever the
 * order — the row the CPU's check reports). */
static __global__ void __launch_bounds__(LINE_THREADS)
    eval_full_rank_kernel(int64_t *__restrict__ rank, unsigned long long *bad, const float *__restrict__ scores,
                          const int64_t *__restrict__ truth, int64_t R, int64_t N)
{
    const int lane = threadIdx.x & 31;
    const int64_t warps = (int64_t)gridDim.x * (blockDim.x >> 5);
    for (int64_t r = (int64_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5); r < R; r += warps) {
        const int64_t t = truth[r];
        if (t < 0 || t >= N) { /* the same for the whole warp */
            if (lane == 0) {
                atomicMin(bad, (unsigned long long)r);
                rank[r] = N;
            }
            continue;
        }
        const float *s = scores + r * N;
        const float pos = s[t];
        long long n = 0;
        for (int64_t j = lane; j < N; j += 32)
            n += (j != t) & !(s[j] < pos);
        n = warp_sum_ll(n);
        if (lane == 0)
            rank[r] = n;
    }
}

/* recall[i] = #{r : rank_r < K_i} / R; one block per cut-off (integer counts: exact in any order) */
static __global__ void __launch_bounds__(LINE_THREADS)
    eval_full_rank_sums_kernel(double *__restrict__ out, const int64_t *__restrict__ rank,
                               const int32_t *__restrict__ K, int nK, int64_t R)
{
    for (int i = blockIdx.x; i < nK; i += gridDim.x) {
        const int32_t Ki = K[i];
        long long hits = 0;
        for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
            hits += rank[r] < Ki;
        hits = block_sum_ll(hits);
        if (threadIdx.x == 0)
            out[i] = (double)hits / (double)R;
    }
}

extern "C" int cuda_eval_full_rank(double *recall, const float *scores, const int64_t *truth, const int32_t *K,
                                   int nK, int64_t R, int64_t N)
{
    REQUIRE(recall && scores && truth, "eval_full_rank: NULL pointer");
    REQUIRE(R > 0 && N > 0, "eval_full_rank: R=%lld N=%lld", (long long)R, (long long)N);
    if (ops_check_eval_K("eval_full_rank", K, nK))
        return -1;
    cuda_context *ctx = cuda_ctx();
    if (!ctx)
        return -1;
    cudaStream_t st = ctx->stream;

    /* scratch: K [nK] int32 (host → device), rank [R] int64, out [nK] double, bad [1] (first bad truth row) */
    const size_t off_rank = align_up((size_t)nK * sizeof(int32_t));
    const size_t off_out = off_rank + align_up((size_t)R * sizeof(int64_t));
    const size_t off_bad = off_out + align_up((size_t)nK * sizeof(double));
    const size_t bytes = off_bad + sizeof(unsigned long long);
    char *scratch = (char *)cuda_scratch(bytes);
    if (!scratch)
        return debcm_error_prefix("eval_full_rank: device scratch of %zu bytes for %lld rows", bytes, (long long)R);
    int32_t *dK = (int32_t *)scratch;
    int64_t *rank = (int64_t *)(scratch + off_rank);
    double *out = (double *)(scratch + off_out);
    unsigned long long *dbad = (unsigned long long *)(scratch + off_bad);

    CUDA_CHECK(cudaMemcpyAsync(dK, K, (size_t)nK * sizeof(int32_t), cudaMemcpyHostToDevice, st));
    CUDA_CHECK(cudaMemsetAsync(dbad, 0xFF, sizeof *dbad, st)); /* ULLONG_MAX: no bad row */
    eval_full_rank_kernel<<<cuda_blocks(R, WARPS_PER_BLOCK), LINE_THREADS, 0, st>>>(rank, dbad, scores, truth, R, N);
    CUDA_LAUNCHED();
    eval_full_rank_sums_kernel<<<cuda_blocks(nK, 1), LINE_THREADS, 0, st>>>(out, rank, dK, nK, R);
    CUDA_LAUNCHED();
    unsigned long long bad = 0;
    CUDA_CHECK(cudaMemcpyAsync(&bad, dbad, sizeof bad, cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st));
    if (bad != ULLONG_MAX) { /* the CPU's check, reported after the fact: recall is left untouched */
        int64_t t = 0;
        CUDA_CHECK(cudaMemcpyAsync(&t, truth + bad, sizeof t, cudaMemcpyDeviceToHost, st));
        CUDA_CHECK(cudaStreamSynchronize(st));
        return debcm_fail("eval_full_rank: row %lld: true music column %lld outside [0, %lld)", (long long)bad,
                          (long long)t, (long long)N);
    }
    CUDA_CHECK(cudaMemcpyAsync(recall, out, (size_t)nK * sizeof(double), cudaMemcpyDeviceToHost, st));
    CUDA_CHECK(cudaStreamSynchronize(st)); /* the caller reads the host results at once */
    return 0;
}
