/* kernels/cuda_context.cu — the one context of the CUDA backend (kernels/cuda_common.cuh): GPU 0, one
 * non-blocking stream that every op and copy is queued on, one cuBLAS handle bound to it, and a grow-only device
 * scratch for reductions and small temporaries. Created lazily on first use, under a mutex; a failure (no driver,
 * no GPU, a GPU this build has no kernels for) is remembered and reported again to every later caller, so a
 * process without a GPU gets the same clear message each time instead of a half-built context. Also the device
 * allocator shared by the kernels/ files (kernels/cuda_ops.h), stream-ordered where the GPU supports it.
 * Nothing here is torn down at exit: the driver releases the stream, the handle and the memory with the process,
 * and destroying them from an atexit handler would race the CUDA runtime's own teardown. */
#include <pthread.h>
#include <stdio.h>

#include "engine/error.h"

#include "kernels/cuda_common.cuh"
#include "kernels/cuda_ops.h"

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static cuda_context g_ctx;
static int g_state;             /* 0: not tried yet, 1: ready, −1: failed (g_fail holds why) */
static char g_fail[1024];
static int g_tf32_wanted;       /* cuda_set_tf32 before the context exists */
static int g_pools;             /* 1: cudaMallocAsync / cudaFreeAsync (memory pools supported) */

/* a kernel whose only use is asking the runtime whether this build has code for the GPU */
static __global__ void context_probe_kernel(void) {}

static int context_math_mode(cuda_context *ctx)
{
    CUBLAS_CHECK(cublasSetMathMode(ctx->blas, ctx->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    return 0;
}

/* Build g_ctx; on failure everything created so far is released again and the message is recorded. */
static int context_create(void)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count == 0) {
        const char *why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device";
        cudaGetLastError(); /* not sticky: clear it so later checks do not report it again */
        return debcm_fail("CUDA backend: no usable GPU (cudaGetDeviceCount: %s); is the NVIDIA driver loaded and "
                          "a GPU visible (nvidia-smi, CUDA_VISIBLE_DEVICES)? The CPU backend needs none",
                          why);
    }
    cuda_context *ctx = &g_ctx;
    ctx->device = 0;
    CUDA_CHECK(cudaSetDevice(ctx->device));
    cudaFuncAttributes fa;
    e = cudaFuncGetAttributes(&fa, (const void *)context_probe_kernel);
    if (e != cudaSuccess) {
        cudaDeviceProp prop;
        int major = 0, minor = 0;
        if (cudaGetDeviceProperties(&prop, ctx->device) == cudaSuccess) {
            major = prop.major;
            minor = prop.minor;
        }
        cudaGetLastError();
        return debcm_fail("CUDA backend: this build has no kernels for GPU 0 (sm_%d%d): %s; rebuild with "
                          "-DCMAKE_CUDA_ARCHITECTURES=%d%d",
                          major, minor, cudaGetErrorString(e), major, minor);
    }
    int pools = 0;
    if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, ctx->device) != cudaSuccess) {
        pools = 0;
        cudaGetLastError();
    }
    g_pools = pools != 0;

    CUDA_CHECK(cudaStreamCreateWithFlags(&ctx->stream, cudaStreamNonBlocking));
    cublasStatus_t st = cublasCreate(&ctx->blas);
    if (st != CUBLAS_STATUS_SUCCESS) {
        cudaStreamDestroy(ctx->stream);
        ctx->stream = NULL;
        ctx->blas = NULL;
        return debcm_fail("cuBLAS: cublasCreate failed: status %d (out of GPU memory, or a driver/toolkit "
                          "mismatch)",
                          (int)st);
    }
    ctx->tf32 = g_tf32_wanted;
    /* every scalar (alpha, beta) is a host value; one stream, so cuBLAS results are the same run to run (its
     * atomics mode stays at the default, not allowed) */
    if (cublasSetStream(ctx->blas, ctx->stream) != CUBLAS_STATUS_SUCCESS ||
        cublasSetPointerMode(ctx->blas, CUBLAS_POINTER_MODE_HOST) != CUBLAS_STATUS_SUCCESS ||
        context_math_mode(ctx) != 0) {
        cublasDestroy(ctx->blas);
        cudaStreamDestroy(ctx->stream);
        ctx->blas = NULL;
        ctx->stream = NULL;
        return debcm_fail("cuBLAS: could not bind the handle to the backend stream (stream, pointer or math "
                          "mode)");
    }
    ctx->scratch = NULL;
    ctx->scratch_bytes = 0;
    return 0;
}

extern "C" cuda_context *cuda_ctx(void)
{
    if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) == 1)
        return &g_ctx;
    pthread_mutex_lock(&g_lock);
    if (g_state == 0) {
        if (context_create() == 0) {
            __atomic_store_n(&g_state, 1, __ATOMIC_RELEASE);
        } else {
            snprintf(g_fail, sizeof g_fail, "%s", debcm_last_error());
            __atomic_store_n(&g_state, -1, __ATOMIC_RELEASE);
        }
    }
    int state = g_state;
    pthread_mutex_unlock(&g_lock);
    if (state == 1)
        return &g_ctx;
    debcm_fail("%s", g_fail); /* the same message for every caller (the error buffer is per thread) */
    return NULL;
}

extern "C" int cuda_set_tf32(int on)
{
    pthread_mutex_lock(&g_lock);
    g_tf32_wanted = on != 0;
    int rc = 0;
    if (g_state == 1) {
        g_ctx.tf32 = g_tf32_wanted;
        rc = context_math_mode(&g_ctx);
    }
    pthread_mutex_unlock(&g_lock);
    return rc;
}

/* ---- device memory -------------------------------------------------------------------------------------------- */

extern "C" int cuda_mem_alloc(void **p, size_t bytes, const char *what)
{
    *p = NULL;
    cuda_context *ctx = cuda_ctx();
    if (!ctx)
        return -1;
    cudaError_t e = g_pools ? cudaMallocAsync(p, bytes, ctx->stream) : cudaMalloc(p, bytes);
    if (e == cudaSuccess)
        return 0;
    *p = NULL;
    cudaGetLastError(); /* an allocation failure is not sticky: keep it from surfacing at the next launch check */
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
        cudaGetLastError();
        free_b = total_b = 0;
    }
    const double MiB = 1024.0 * 1024.0;
    if (e == cudaErrorMemoryAllocation)
        return debcm_fail("CUDA: out of GPU memory for %s: %zu bytes (%.1f MiB) asked, GPU %d has %.1f MiB free of "
                          "%.1f MiB; try a smaller --batch-size",
                          what, bytes, (double)bytes / MiB, ctx->device, (double)free_b / MiB,
                          (double)total_b / MiB);
    return debcm_fail("CUDA: allocating %zu bytes for %s failed: %s (GPU %d: %.1f MiB free of %.1f MiB)", bytes,
                      what, cudaGetErrorString(e), ctx->device, (double)free_b / MiB, (double)total_b / MiB);
}

extern "C" void cuda_mem_free(void *p)
{
    if (!p || __atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != 1)
        return;
    cudaError_t e;
    if (g_pools) {
        e = cudaFreeAsync(p, g_ctx.stream); /* after the work queued before it, which may still read p */
    } else {
        e = cudaStreamSynchronize(g_ctx.stream); /* cudaFree does not order itself after a non-blocking stream */
        if (e == cudaSuccess)
            e = cudaFree(p);
    }
    if (e != cudaSuccess) /* free cannot return an error: record it for whoever looks next */
        debcm_fail("CUDA: freeing device memory failed: %s", cudaGetErrorString(e));
}

/* ---- scratch ------------------------------------------------------------------------------------------------------ */

extern "C" void *cuda_scratch(size_t bytes)
{
    cuda_context *ctx = cuda_ctx();
    if (!ctx)
        return NULL;
    if (ctx->scratch && bytes <= ctx->scratch_bytes)
        return ctx->scratch;
    /* grow geometrically from 1 MiB, in 256-byte units; the old block is freed stream-ordered, after the kernels
     * already queued on it */
    size_t want = ctx->scratch_bytes * 2;
    if (want < ((size_t)1 << 20))
        want = (size_t)1 << 20;
    if (want < bytes)
        want = bytes;
    want = (want + 255) / 256 * 256;
    cuda_mem_free(ctx->scratch);
    ctx->scratch = NULL;
    ctx->scratch_bytes = 0;
    void *p = NULL;
    if (cuda_mem_alloc(&p, want, "scratch") != 0) { /* the head-room did not fit: just what was asked */
        want = bytes;
        if (cuda_mem_alloc(&p, want, "scratch") != 0)
            return NULL;
    }
    ctx->scratch = (float *)p;
    ctx->scratch_bytes = want;
    return p;
}
