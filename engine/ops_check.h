/* engine/ops_check.h — the argument checks that every backend of engine/ops.h makes in the same words, so that a
 * misuse fails the same way on the CPU and on the GPU: the size limit of a BLAS dimension, the matching
 * configuration, and the evaluation cut-offs. Host code only (C and the CUDA backend's C++); each check returns 0,
 * or −1 with a message naming the op (engine/error.h). */
#ifndef DEBCM_OPS_CHECK_H
#define DEBCM_OPS_CHECK_H

#include <limits.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/ops.h"

/* a dimension a BLAS call takes as int */
static inline int ops_blas_ok(int64_t n) { return n > 0 && n <= INT_MAX; }

static inline int ops_check_match(const char *op, const match_cfg *cfg, int64_t B, int64_t L)
{
    if (!cfg)
        return debcm_fail("%s: NULL cfg", op);
    if (cfg->variant != MATCH_PUBLISHED && cfg->variant != MATCH_HINGE && cfg->variant != MATCH_SOFTMAX)
        return debcm_fail("%s: unknown variant %d", op, (int)cfg->variant);
    if (B < 2 || B > INT32_MAX || !ops_blas_ok(L))
        return debcm_fail("%s: B=%lld L=%lld; the matching term needs B >= 2 (a batch with negatives)", op,
                          (long long)B, (long long)L);
    if (cfg->variant != MATCH_SOFTMAX && cfg->k < 1)
        return debcm_fail("%s: k = %lld, expected >= 1", op, (long long)cfg->k);
    if (cfg->variant == MATCH_SOFTMAX && !(cfg->tau > 0.0f))
        return debcm_fail("%s: tau = %g, expected > 0", op, (double)cfg->tau);
    return 0;
}

static inline int ops_check_eval_K(const char *op, const int32_t *K, int nK)
{
    if (!K || nK < 1)
        return debcm_fail("%s: no cut-off K given", op);
    for (int i = 0; i < nK; i++)
        if (K[i] < 1)
            return debcm_fail("%s: K[%d] = %d, expected >= 1", op, i, (int)K[i]);
    return 0;
}

#endif
