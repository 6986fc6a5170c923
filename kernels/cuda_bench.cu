/* kernels/cuda_bench.cu — the GPU side of bench/bench_epoch (kernels/cuda_bench.h): cuBLAS SGEMM timed with CUDA
 * events at the shapes a training step issues (row-major operands mapped onto column-major cuBLAS by computing
 * Cᵀ = op(B)ᵀ·op(A)ᵀ, the same mapping the backend's linear layers use), and the device memory in use. Runs on
 * the backend's stream and cuBLAS handle (kernels/cuda_context.cu), so the TF32 setting of --tf32 applies. */
#include "kernels/cuda_bench.h"

#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda_common.cuh"

static __global__ void fill_small(float *p, size_t n, float a)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = a * (float)((i * 7u) % 13u) - 0.06f;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

extern "C" int cuda_time_sgemm(char ta, char tb, int M, int N, int K, int runs, double *seconds)
{
    cuda_context *ctx = cuda_ctx();
    if (!ctx)
        return -1;
    if (M < 1 || N < 1 || K < 1 || runs < 1 || runs > 64)
        return debcm_fail("cuda_time_sgemm: bad shape %d x %d x %d or runs %d", M, N, K, runs);
    size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    float *A = NULL, *Bm = NULL, *C = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    double t[64];
    int rc = -1;
    /* row-major C[M,N] = op(A)·op(B) is column-major Cᵀ[N,M] = op(B)ᵀ·op(A)ᵀ: cuBLAS gets B first */
    cublasOperation_t opA = ta == 'N' ? CUBLAS_OP_N : CUBLAS_OP_T, opB = tb == 'N' ? CUBLAS_OP_N : CUBLAS_OP_T;
    int lda = ta == 'N' ? K : M, ldb = tb == 'N' ? N : K;
    const float one = 1.0f, zero = 0.0f;
    if (cudaMalloc(&A, na * sizeof(float)) != cudaSuccess || cudaMalloc(&Bm, nb * sizeof(float)) != cudaSuccess ||
        cudaMalloc(&C, nc * sizeof(float)) != cudaSuccess) {
        debcm_fail("cuda_time_sgemm: out of device memory for %d x %d x %d", M, N, K);
        goto done;
    }
    fill_small<<<256, 256, 0, ctx->stream>>>(A, na, 0.01f);
    fill_small<<<256, 256, 0, ctx->stream>>>(Bm, nb, 0.02f);
    if (cudaEventCreate(&e0) != cudaSuccess || cudaEventCreate(&e1) != cudaSuccess) {
        debcm_fail("cuda_time_sgemm: cudaEventCreate failed");
        goto done;
    }
    for (int r = 0; r <= runs; r++) { /* run 0 is the warm-up */
        cudaEventRecord(e0, ctx->stream);
        cublasStatus_t st = cublasSgemm(ctx->blas, opB, opA, N, M, K, &one, Bm, ldb, A, lda, &zero, C, N);
        cudaEventRecord(e1, ctx->stream);
        cudaError_t ce = cudaEventSynchronize(e1);
        if (st != CUBLAS_STATUS_SUCCESS || ce != cudaSuccess) {
            debcm_fail("cuda_time_sgemm: cublasSgemm %c%c %d x %d x %d failed (cuBLAS %d, CUDA %s)", ta, tb, M, N,
                       K, (int)st, cudaGetErrorString(ce));
            goto done;
        }
        float ms = 0.0f;
        cudaEventElapsedTime(&ms, e0, e1);
        if (r > 0)
            t[r - 1] = 1e-3 * ms;
    }
    qsort(t, (size_t)runs, sizeof t[0], cmp_double);
    *seconds = runs % 2 ? t[runs / 2] : 0.5 * (t[runs / 2 - 1] + t[runs / 2]);
    rc = 0;
done:
    if (e0)
        cudaEventDestroy(e0);
    if (e1)
        cudaEventDestroy(e1);
    cudaFree(A);
    cudaFree(Bm);
    cudaFree(C);
    return rc;
}

extern "C" int cuda_memory_in_use(size_t *used, size_t *total)
{
    if (!cuda_ctx())
        return -1;
    size_t free_b = 0, total_b = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    *used = total_b - free_b;
    *total = total_b;
    return 0;
}

extern "C" const char *cuda_device_name(void)
{
    static char name[256];
    cuda_context *ctx = cuda_ctx();
    cudaDeviceProp prop;
    if (!ctx || cudaGetDeviceProperties(&prop, ctx->device) != cudaSuccess)
        return "";
    snprintf(name, sizeof name, "%s", prop.name);
    return name;
}
