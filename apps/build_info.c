/* apps/build_info.c — see apps/build_info.h: the libraries' own version calls and macros, asked once here. */
#include "apps/build_info.h"

#include <cblas.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef DEBCM_WITH_CUDA
#include "kernels/cuda_device.h"
#endif

int openblas_get_parallel(void); /* OpenBLAS's own; not in every cblas.h */

#ifndef DEBCM_VERSION
#define DEBCM_VERSION "0.1.0"
#endif

void build_info_get(build_info *b)
{
    memset(b, 0, sizeof *b);
    b->version = DEBCM_VERSION;
#if defined(__clang__)
    snprintf(b->compiler, sizeof b->compiler, "clang %s", __clang_version__);
#elif defined(__GNUC__)
    snprintf(b->compiler, sizeof b->compiler, "gcc %s", __VERSION__);
#else
    snprintf(b->compiler, sizeof b->compiler, "unknown");
#endif
    for (size_t n = strlen(b->compiler); n > 0 && b->compiler[n - 1] == ' '; n--) /* __clang_version__ ends "… " */
        b->compiler[n - 1] = '\0';
    b->blas = openblas_get_config();
    b->blas_threading = openblas_get_parallel();
    b->zlib = zlibVersion();
    b->jansson = JANSSON_VERSION;
#ifdef _OPENMP
    b->openmp = _OPENMP;
    b->openmp_threads = omp_get_max_threads();
#endif
#ifdef DEBCM_WITH_CUDA
    b->cuda_built = 1;
    b->gpus = cuda_device_describe(b->cuda, sizeof b->cuda);
#endif
}

const char *build_info_threading_name(int blas_threading)
{
    return blas_threading == 2 ? "OpenMP" : blas_threading == 1 ? "pthreads" : "no";
}
