/* kernels/cuda_common.cuh — what every .cu file of the CUDA backend shares: the checked-call macros that turn a
 * CUDA or cuBLAS error into debcm's one-line message (engine/error.h, naming the expression, file and line) and
 * a −1 return; the one stream and cuBLAS handle of the backend (cuda_ctx, created on first use); launch-size
 * helpers; and the deterministic block reduction used by the loss kernels (a fixed tree per block, partial sums
 * combined in block order by one final block: no float atomics, so a loss is the same run to run). Every op runs
 * on the backend stream and returns without synchronising; ops->sync or a download waits for it. */
#ifndef DEBCM_CUDA_COMMON_CUH
#define DEBCM_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>

#include "engine/error.h"

/* ---- checked calls: in a function returning int (0 / −1) ---- */

#define CUDA_CHECK(expr)                                                                                     \
    do {                                                                                                     \
        cudaError_t err_ = (expr);                                                                           \
        if (err_ != cudaSuccess)                                                                             \
            return debcm_fail("CUDA: %s failed at %s:%d: %s", #expr, __FILE__, __LINE__,                     \
                              cudaGetErrorString(err_));                                                     \
    } while (0)

#define CUBLAS_CHECK(expr)                                                                                   \
    do {                                                                                                     \
        cublasStatus_t st_ = (expr);                                                                         \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                                    \
            return debcm_fail("cuBLAS: %s failed at %s:%d: status %d", #expr, __FILE__, __LINE__, (int)st_); \
    } while (0)

/* after a kernel launch: the launch error, if any (execution errors surface at the next sync) */
#define CUDA_LAUNCHED() CUDA_CHECK(cudaGetLastError())

/* ---- the backend context ---- */

typedef struct {
    cudaStream_t stream;
    cublasHandle_t blas;
    int device;
    int tf32; /* 1: cuBLAS may use TF32 tensor cores for FP32 GEMMs (--tf32) */
    float *scratch;     /* device scratch for reductions and small temporaries, grown on demand */
    size_t scratch_bytes;
} cuda_context;

#ifdef __cplusplus
extern "C" {
#endif
/* The context (created on first call: device 0, a non-blocking stream, a cuBLAS handle bound to it, pointer
 * mode host). NULL with a message when there is no usable GPU. */
cuda_context *cuda_ctx(void);
/* Device scratch of at least `bytes`, valid until the next call (stream-ordered: safe for the next kernels). */
void *cuda_scratch(size_t bytes);
#ifdef __cplusplus
}
#endif

/* ---- launch sizes ---- */

#define CUDA_THREADS 256
static inline unsigned cuda_blocks(int64_t n, int64_t per_block)
{
    int64_t b = (n + per_block - 1) / per_block;
    if (b < 1)
        b = 1;
    if (b > 65535LL * 32)
        b = 65535LL * 32; /* kernels loop grid-stride beyond this */
    return (unsigned)b;
}

/* ---- deterministic reductions ----
 * block_sum_double: every thread passes its partial; returns the block's total in thread 0 (other threads get
 * an unspecified value). Fixed shape: warp shuffles, then the warp totals summed by warp 0 in order. */
__device__ __forceinline__ double warp_sum_double(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ double block_sum_double(double v)
{
    __shared__ double warp_totals[32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum_double(v);
    __syncthreads(); /* warp_totals may still be read by a previous call */
    if (lane == 0)
        warp_totals[warp] = v;
    __syncthreads();
    int nwarps = (blockDim.x + 31) >> 5;
    v = (threadIdx.x < (unsigned)nwarps) ? warp_totals[lane] : 0.0;
    if (warp == 0)
        v = warp_sum_double(v);
    return v;
}

#endif
