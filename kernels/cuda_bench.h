/* kernels/cuda_bench.h — what bench/bench_epoch asks of the GPU beside the training itself: the FP32 (or TF32)
 * GEMM rate of cuBLAS at a given shape, measured with CUDA events on the backend's stream, and the device memory
 * in use. Plain C declarations for the C benchmark; a CPU-only build never includes this header. */
#ifndef DEBCM_CUDA_BENCH_H
#define DEBCM_CUDA_BENCH_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Median seconds of `runs` row-major products C[M,N] = op(A)·op(B) (ta, tb: 'N' or 'T', as cblas_sgemm's
 * row-major arguments), after one warm-up, on device buffers of that size filled with small values. Returns 0, or
 * −1 with a message. */
int cuda_time_sgemm(char ta, char tb, int M, int N, int K, int runs, double *seconds);

/* Device memory in use on the backend's GPU (total − free, every process), and its total. 0 or −1. */
int cuda_memory_in_use(size_t *used, size_t *total);

/* The GPU's name, for the benchmark's header ("" when unknown). */
const char *cuda_device_name(void);

#ifdef __cplusplus
}
#endif

#endif
