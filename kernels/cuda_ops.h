/* kernels/cuda_ops.h — the CUDA backend of engine/ops.h, as the C host sees it.
 *
 * debcm_ops_cuda() hands out the "cuda" table (kernels/cuda_ops.cu, with the matching and evaluation ops of
 * kernels/cuda_match_eval.cu): the same signatures and contracts as the CPU table, every tensor pointer in GPU
 * memory, every op queued on the backend's one stream (kernels/cuda_context.cu) and returning without waiting;
 * ops->download and ops->sync wait. Plain C declarations: a CPU-only build never includes this header (apps and
 * tests check DEBCM_WITH_CUDA). */
#ifndef DEBCM_CUDA_OPS_H
#define DEBCM_CUDA_OPS_H

#include <stddef.h>

#include "engine/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The CUDA table, creating the backend context on first use (GPU 0 of those CUDA_VISIBLE_DEVICES shows, one
 * non-blocking stream, one cuBLAS handle). NULL with a message (engine/error.h) when no GPU is usable: no driver,
 * no device, or a GPU this build has no kernels for. */
const debcm_ops *debcm_ops_cuda(void);

/* Let cuBLAS use TF32 tensor cores for the FP32 GEMMs (on = 1; the --tf32 flag) or not (on = 0, the default:
 * full FP32, what the parity tests against the CPU assume). May be called before or after the context exists.
 * Returns 0, or −1 with a message. */
int cuda_set_tf32(int on);

/* Device memory for the kernels/ files: stream-ordered (cudaMallocAsync / cudaFreeAsync on the backend stream)
 * where the GPU has memory pools, cudaMalloc / cudaFree after a stream sync otherwise. `what` names the use in the
 * message. cuda_mem_alloc returns 0, or −1 with a message giving the bytes asked for, the GPU's free and total
 * memory and the hint to lower --batch-size; the memory is NOT zeroed. cuda_mem_free(NULL) does nothing. */
int cuda_mem_alloc(void **p, size_t bytes, const char *what);
void cuda_mem_free(void *p);

#ifdef __cplusplus
}
#endif

#endif
