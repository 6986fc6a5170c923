/* apps/build_info.h — what this binary was built with, gathered in one place for the two places that tell it:
 * `debcm version` (apps/cmd_version.c, as text) and the machine section of the run report
 * (apps/run_report_machine.c, as JSON). The debcm version, the compiler, OpenBLAS (its configuration string and
 * threading), zlib, jansson, OpenMP and, in a CUDA build, the CUDA runtime, driver, cuBLAS and cuDNN versions and
 * the GPUs the runtime sees (kernels/cuda_device.h); a CPU-only build says CUDA was not built. */
#ifndef DEBCM_APPS_BUILD_INFO_H
#define DEBCM_APPS_BUILD_INFO_H

typedef struct {
    const char *version;    /* debcm's own, "0.1.0" */
    char compiler[256];     /* "gcc 12.2.0", "clang 14.0.6" */
    const char *blas;       /* openblas_get_config(): "OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY ..." */
    int blas_threading;     /* openblas_get_parallel(): 0 sequential, 1 pthreads, 2 OpenMP */
    const char *zlib;       /* zlibVersion() */
    const char *jansson;    /* JANSSON_VERSION */
    int openmp;             /* _OPENMP (yyyymm), 0 in a build without OpenMP */
    int openmp_threads;     /* omp_get_max_threads(), 0 without OpenMP */
    int cuda_built;         /* 1 in a CUDA build */
    char cuda[2048];        /* a CUDA build: cuda_device_describe()'s text (versions line, then one line per GPU) */
    int gpus;               /* GPUs found (0 in a CPU-only build or without a driver) */
} build_info;

/* Fill b; never fails (a CUDA build without a driver reports 0 GPUs). */
void build_info_get(build_info *b);

/* "OpenMP", "pthreads" or "no" for build_info.blas_threading. */
const char *build_info_threading_name(int blas_threading);

#endif
