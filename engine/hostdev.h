/* engine/hostdev.h — the one macro that lets a header of inline math be compiled by both the C compiler (CPU
 * backend) and nvcc (CUDA kernels): DEBCM_HD marks a function host+device under nvcc and is empty in C. */
#ifndef DEBCM_HOSTDEV_H
#define DEBCM_HOSTDEV_H

#if defined(__CUDACC__)
#define DEBCM_HD __host__ __device__ __forceinline__
#else
#define DEBCM_HD static inline
#endif

#endif
