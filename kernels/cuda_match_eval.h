/* kernels/cuda_match_eval.h — the CUDA backend's in-batch matching term (SPEC §3, §6) and the two ranking
 * evaluations (SPEC §3, §4): the `match_forward`, `match_backward`, `eval_negatives` and `eval_full_rank`
 * entries of the ops table (engine/ops.h), with exactly its signatures and contract.
 *
 * Memory: every tensor pointer is DEVICE memory (S, sel_m, sel_v, zm, zv, dzm, dzv, dS, music, video, scores,
 * weights and truth — models/eval.c uploads truth with ops->upload); cfg, K[] and the evaluation results (recall,
 * ndcg, tie_rows) are HOST memory. The match ops queue their work on the backend stream and return without
 * waiting; the evaluation ops wait for the stream, because the caller reads their host results at once.
 * Plain C declarations: included by the C host code and by kernels/cuda_match_eval.cu. */
#ifndef DEBCM_CUDA_MATCH_EVAL_H
#define DEBCM_CUDA_MATCH_EVAL_H

#include <stdint.h>

#include "engine/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

int cuda_match_forward(float *music, float *video, float *S, int32_t *sel_m, int32_t *sel_v, const float *zm,
                       const float *zv, const match_cfg *cfg, int64_t B, int64_t L);
int cuda_match_backward(float *dzm, float *dzv, float *dS, float dmusic, float dvideo, const float *S,
                        const int32_t *sel_m, const int32_t *sel_v, const float *zm, const float *zv,
                        const match_cfg *cfg, int64_t B, int64_t L);
int cuda_eval_negatives(double *recall, double *ndcg, int64_t *tie_rows, const float *scores, const float *weights,
                        const int32_t *K, int nK, int64_t R, int64_t C);
int cuda_eval_full_rank(double *recall, const float *scores, const int64_t *truth, const int32_t *K, int nK,
                        int64_t R, int64_t N);

#ifdef __cplusplus
}
#endif

#endif
