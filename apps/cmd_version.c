/* apps/cmd_version.c — `debcm version`: the version, how this binary was built (compiler, BLAS, zlib, jansson,
 * OpenMP, CUDA/cuBLAS/cuDNN) and which GPUs the CUDA runtime sees. The first thing to paste into a bug report.
 * What it prints is gathered by apps/build_info.c, which the run report's machine section shares. */
#include <stdio.h>
#include <string.h>

#include "apps/build_info.h"
#include "apps/commands.h"

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
    build_info b;
    build_info_get(&b);
    printf("debcm %s\n", b.version);
    printf("compiler  %s\n", b.compiler);
    printf("BLAS      %s (%s threading)\n", b.blas,
           b.blas_threading == 1 ? "pthreads: slower beside OpenMP, see README"
                                 : build_info_threading_name(b.blas_threading));
    printf("zlib      %s\n", b.zlib);
    printf("jansson   %s\n", b.jansson);
    if (b.openmp)
        printf("OpenMP    %d, up to %d threads\n", b.openmp, b.openmp_threads);
    else
        printf("OpenMP    not built\n");
    if (b.cuda_built)
        printf("%s\n", b.cuda);
    else
        printf("CUDA      not built (no nvcc at configure time, or -DDEBCM_CUDA=OFF)\n");
    return DEBCM_EXIT_OK;
}
