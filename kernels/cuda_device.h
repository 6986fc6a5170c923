/* kernels/cuda_device.h — what the C host code asks of the CUDA side before any training exists: which GPUs
 * are there, which runtime, cuBLAS and cuDNN versions the build links, and a smoke kernel proving that code
 * built for this GPU's architecture actually runs on it. Plain C declarations: a CPU-only build never includes
 * this header (apps check DEBCM_WITH_CUDA). */
#ifndef DEBCM_CUDA_DEVICE_H
#define DEBCM_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Write a human-readable description (runtime, driver, cuBLAS, cuDNN versions and one line per GPU) into buf.
 * Returns the number of GPUs found (0 when there is none or no driver: that is not an error here). */
int cuda_device_describe(char *buf, size_t n);

/* Launch a small kernel (y[i] = a*x[i] + i over an awkward size) on GPU 0 and check every value on the host.
 * Returns 0 when it ran and matched, 77 when there is no GPU (the tests' skip code), 1 on any failure. */
int cuda_device_smoke_test(void);

#ifdef __cplusplus
}
#endif

#endif
