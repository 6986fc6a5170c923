/* kernels/cuda_device.cu — device discovery and a smoke kernel for the C host (kernels/cuda_device.h).
 * Every CUDA call is checked and reported with the failing expression, file and line (STYLE habit 6); a
 * missing GPU is reported as such, never as a failure or a pass. */
#include "kernels/cuda_device.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#if defined(DEBCM_WITH_CUDNN)
#include <cudnn.h>
#endif

#define CUDA_TRY(expr)                                                                                       \
    do {                                                                                                     \
        cudaError_t err_ = (expr);                                                                           \
        if (err_ != cudaSuccess) {                                                                           \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(err_));  \
            goto fail;                                                                                       \
        }                                                                                                    \
    } while (0)

static __global__ void smoke_axpy_index(float *y, const float *x, float a, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n)
        y[i] = a * x[i] + (float)i;
}

extern "C" int cuda_device_describe(char *buf, size_t n)
{
    size_t o = 0;
    int runtime = 0, driver = 0, count = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    if (cudaGetDeviceCount(&count) != cudaSuccess)
        count = 0;
    o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "CUDA runtime %d.%d, ", runtime / 1000, (runtime % 1000) / 10);
    if (driver > 0)
        o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "driver %d.%d", driver / 1000, (driver % 1000) / 10);
    else
        o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "no CUDA driver");
    o += (size_t)snprintf(buf + o, o < n ? n - o : 0, ", cuBLAS %d.%d.%d", CUBLAS_VER_MAJOR, CUBLAS_VER_MINOR,
                          CUBLAS_VER_PATCH);
#if defined(DEBCM_WITH_CUDNN)
    size_t cudnn = cudnnGetVersion();
    o += (size_t)snprintf(buf + o, o < n ? n - o : 0, ", cuDNN %zu.%zu.%zu", cudnn / 10000, (cudnn % 10000) / 100,
                          cudnn % 100);
#else
    o += (size_t)snprintf(buf + o, o < n ? n - o : 0, ", cuDNN not built");
#endif
    if (count == 0)
        o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "\nno GPU found");
    for (int d = 0; d < count; d++) {
        cudaDeviceProp prop;
        if (cudaGetDeviceProperties(&prop, d) != cudaSuccess)
            continue;
        o += (size_t)snprintf(buf + o, o < n ? n - o : 0, "\nGPU %d: %s, sm_%d%d, %.1f GiB, %d SMs", d, prop.name,
                              prop.major, prop.minor, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
                              prop.multiProcessorCount);
    }
    return count;
}

extern "C" int cuda_device_smoke_test(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
        return 77;
    const int n = 1000003; /* not a multiple of the block size */
    float *hx = (float *)malloc(sizeof(float) * n), *hy = (float *)malloc(sizeof(float) * n);
    float *dx = NULL, *dy = NULL;
    int bad = 0;
    if (!hx || !hy)
        goto fail;
    for (int i = 0; i < n; i++)
        hx[i] = (float)(i % 97) * 0.5f;
    CUDA_TRY(cudaMalloc((void **)&dx, sizeof(float) * n));
    CUDA_TRY(cudaMalloc((void **)&dy, sizeof(float) * n));
    CUDA_TRY(cudaMemcpy(dx, hx, sizeof(float) * n, cudaMemcpyHostToDevice));
    smoke_axpy_index<<<(n + 255) / 256, 256>>>(dy, dx, 3.0f, n);
    CUDA_TRY(cudaGetLastError());
    CUDA_TRY(cudaMemcpy(hy, dy, sizeof(float) * n, cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++)
        if (hy[i] != 3.0f * hx[i] + (float)i) {
            if (bad++ < 5)
                fprintf(stderr, "smoke kernel: y[%d] = %g, expected %g\n", i, hy[i], 3.0f * hx[i] + (float)i);
        }
    cudaFree(dx);
    cudaFree(dy);
    free(hx);
    free(hy);
    return bad ? 1 : 0;
fail:
    cudaFree(dx);
    cudaFree(dy);
    free(hx);
    free(hy);
    return 1;
}
