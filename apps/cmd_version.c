/* apps/cmd_version.c — `debcm version`: the version, how this binary was built (compiler, BLAS, zlib, jansson,
 * OpenMP, CUDA/cuBLAS/cuDNN) and which GPUs the CUDA runtime sees. The first thing to paste into a bug report. */
#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "apps/commands.h"

int openblas_get_parallel(void); /* OpenBLAS's own; not in every cblas.h */
#ifdef DEBCM_WITH_CUDA
#include "kernels/cuda_device.h"
#endif

#ifndef DEBCM_VERSION
#define DEBCM_VERSION "0.1.0"
#endif

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: debcm version\n\nPrint the version, the libraries this build uses and the GPUs found.\n");
        return DEBCM_EXIT_OK;
    }
    if (argc > 1) {
        fprintf(stderr, "debcm version: unexpected argument '%s'\n", argv[1]);
        return DEBCM_EXIT_USAGE;
    }
    printf("debcm %s\n", DEBCM_VERSION);
#if defined(__clang__)
    printf("compiler  clang %s\n", __clang_version__);
#elif defined(__GNUC__)
    printf("compiler  gcc %s\n", __VERSION__);
#endif
    int par = openblas_get_parallel(); /* 0 sequential, 1 pthreads, 2 OpenMP */
    printf("BLAS      %s (%s threading)\n", openblas_get_config(),
           par == 2 ? "OpenMP" : par == 1 ? "pthreads: slower beside OpenMP, see README" : "no");
    printf("zlib      %s\n", zlibVersion());
    printf("jansson   %s\n", JANSSON_VERSION);
#ifdef _OPENMP
    printf("OpenMP    %d, up to %d threads\n", _OPENMP, omp_get_max_threads());
#else
    printf("OpenMP    not built\n");
#endif
#ifdef DEBCM_WITH_CUDA
    char desc[2048];
    cuda_device_describe(desc, sizeof desc);
    printf("%s\n", desc);
#else
    printf("CUDA      not built (no nvcc at configure time, or -DDEBCM_CUDA=OFF)\n");
#endif
    return DEBCM_EXIT_OK;
}
