/* engine/ops.h — the operations the DebCM networks are built from, behind one backend table.
 *
 * The models (models/) never call a loop or a kernel directly: they call through a `debcm_ops` table chosen at
 * run time — debcm_ops_cpu() now (engine/ops_cpu.c, plain C + OpenBLAS + OpenMP, the readable oracle), a CUDA
 * table later with the same signatures, tested against this one. Every tensor pointer passed to an op lives in
 * the backend's memory (host memory for the CPU table, device memory for a CUDA table; the table's alloc/upload/
 * download move data between them). Configuration structs (match_cfg, adam_cfg) and the evaluation results are
 * host memory in every backend. Conventions of every op:
 *   - signature order: outputs first, then inputs, then sizes (named as in SPEC.md: B rows, D or L features,
 *     G genres, k); gradients are prefixed `d`; tensors are row-major, linear weights in PyTorch's [out, in];
 *   - every BACKWARD ACCUMULATES (+=) into its d-outputs (zero the gradient arena once per step; a tensor with
 *     several consumers then simply receives each consumer's share), and a d-output may be NULL to skip it;
 *     forwards OVERWRITE their outputs;
 *   - a loss forward writes one float (backend memory); its backward takes the upstream scalar dloss (host value,
 *     e.g. the loss weight of that term);
 *   - returns 0, or −1 with a message (engine/error.h) when a size or pointer is wrong;
 *   - deterministic: CPU threads split outputs, never reduction axes, so results do not depend on the thread
 *     count; random draws come from Philox (engine/rng.h) at explicit (seed, stream, counter).
 * The per-element formulas live in engine/math.h, shared with the CUDA kernels. */
#ifndef DEBCM_OPS_H
#define DEBCM_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/hostdev.h"

#ifdef __cplusplus
extern "C" { /* the CUDA backend's .cu files include this header too */
#endif

/* Where a draw comes from: element i of the op's output uses Philox index counter + i of (seed, stream).
 * The caller advances counter by the element count after each draw (or uses one stream per use). */
typedef struct {
    uint64_t seed, stream, counter;
} debcm_draw;

/* SPEC §3 and §6: which matching term. */
typedef enum {
    MATCH_PUBLISHED = 0, /* faithful: mean top-k of clamp(S_pos − S_neg − margin, 0, 1e6); loss −factor·music − video */
    MATCH_HINGE = 1,     /* mean top-k (hardest) of [margin − S_pos + S_neg]₊; loss + music + video */
    MATCH_SOFTMAX = 2,   /* symmetric InfoNCE over S/τ: music = CE over rows, video = CE over columns; loss + both */
} match_variant;

typedef struct {
    match_variant variant;
    float margin; /* published, hinge (0.05 in SPEC §3) */
    float tau;    /* softmax temperature */
    int64_t k;    /* negatives averaged per row (40 in SPEC §3); the ops cap it at B − 1 */
} match_cfg;

/* SPEC §4 and §6: which distillation term. */
typedef enum {
    DISTILL_PUBLISHED = 0, /* faithful KLG: −½·mean_rows(1 − Σ_l [log(e2/(e1+ε)+ε) − (e1+Δμ²)/(e2+ε)]) */
    DISTILL_KL = 1,        /* the true KL(N(μ1,σ1²) ‖ N(μ2,σ2²)), averaged over rows */
} distill_variant;

/* SPEC §5: Adam with PyTorch's L2 weight decay (β = 0.9, 0.999; eps 1e-8). */
typedef struct {
    double lr, beta1, beta2, eps, weight_decay;
} adam_cfg;

/* The number of negatives the matching term averages per row: k capped at B − 1 (SPEC §6). */
DEBCM_HD int64_t match_k_eff(int64_t k, int64_t B) { return k < B - 1 ? k : B - 1; }

/* The sign with which the matching terms enter the loss: the published term is maximised (loss − music −
 * video, SPEC §3), the corrected variants are minimised. */
DEBCM_HD float match_loss_sign(match_variant v) { return v == MATCH_PUBLISHED ? -1.0f : 1.0f; }

typedef struct debcm_ops {
    const char *name; /* "cpu", "cuda" */
    int host_memory;  /* 1: backend memory is host memory (the CPU's), so host arrays can be used in place */

    /* ---- memory of this backend ---- */
    void *(*alloc)(size_t bytes); /* zero-filled, 64-byte aligned; NULL (with a message) on failure */
    void (*free)(void *p);
    int (*upload)(void *dst, const void *host_src, size_t bytes);
    int (*download)(void *host_dst, const void *src, size_t bytes);
    int (*copy)(void *dst, const void *src, size_t bytes);
    int (*zero)(void *p, size_t bytes);
    int (*sync)(void); /* wait for queued work (a no-op on the CPU) */

    /* ---- gather rows: dst[r, :] = src[idx[r], :] for r < B (src [N, D], dst [B, D], idx [B], all backend
     *      memory; the caller guarantees 0 ≤ idx[r] < N). How a batch is assembled from features that stay
     *      resident for the whole run. ---- */
    int (*gather_rows)(float *dst, const float *src, const int64_t *idx, int64_t B, int64_t D);

    /* ---- linear layer: y[B,out] = x[B,in]·Wᵀ + b, W: [out,in], b: [out] or NULL (then a plain product, e.g.
     *      the score matrix mu_v·mu_mᵀ). Backward: dx += dy·W, dW += dyᵀ·x, db += Σ_rows dy. ---- */
    int (*linear_forward)(float *y, const float *x, const float *W, const float *b, int64_t B, int64_t in,
                          int64_t out);
    int (*linear_backward)(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                           int64_t B, int64_t in, int64_t out);

    /* ---- BatchNorm over the D features of a batch (SPEC §2). Training: batch mean, biased variance, eps 1e-5;
     *      writes xhat [B,D], mean [D], rstd [D] for backward and updates running_mean/var [D] in place with
     *      momentum 0.1 (running_var takes the UNBIASED variance; B ≥ 2 required). Eval: running statistics. ---- */
    int (*bn_forward_train)(float *y, float *xhat, float *mean, float *rstd, float *running_mean,
                            float *running_var, const float *x, const float *gamma, const float *beta, int64_t B,
                            int64_t D);
    int (*bn_forward_eval)(float *y, const float *x, const float *gamma, const float *beta,
                           const float *running_mean, const float *running_var, int64_t B, int64_t D);
    int (*bn_backward)(float *dx, float *dgamma, float *dbeta, const float *dy, const float *xhat,
                       const float *gamma, const float *rstd, int64_t B, int64_t D);

    /* ---- inverted dropout (SPEC §2): the keep-mask (uint8, 1 = kept) is either drawn here from Philox
     *      (kept where uniform > p) or supplied by the caller (a fixture's recorded mask); forward and backward
     *      scale kept values by 1/(1−p). mask NULL in dropout_forward = evaluation mode (y = x). ---- */
    int (*dropout_mask)(uint8_t *mask, debcm_draw draw, float p, int64_t n);
    int (*dropout_forward)(float *y, const float *x, const uint8_t *mask, float p, int64_t n);
    int (*dropout_backward)(float *dx, const float *dy, const uint8_t *mask, float p, int64_t n);

    /* ---- row L2 normalisation y = x / max(‖x‖, 1e-10) (SPEC §2); norm [B] keeps ‖x‖ for backward ---- */
    int (*l2norm_forward)(float *y, float *norm, const float *x, int64_t B, int64_t D);
    int (*l2norm_backward)(float *dx, const float *dy, const float *y, const float *norm, int64_t B, int64_t D);

    /* ---- reparameterisation (SPEC §2): z = mu + eps ⊙ exp(min(lv,10)/2); eps [n] from normal_draw (Philox
     *      normals) or supplied; eps NULL = evaluation mode (z = mu). Backward: dmu += dz, dlv += dz·∂z/∂lv. ---- */
    int (*normal_draw)(float *eps, debcm_draw draw, int64_t n);
    int (*reparam_forward)(float *z, const float *mu, const float *lv, const float *eps, int64_t n);
    int (*reparam_backward)(float *dmu, float *dlv, const float *dz, const float *lv, const float *eps, int64_t n);

    /* ---- ReLU; MSE = mean over all n elements of (x − target)² (the target gets no gradient) ---- */
    int (*relu_forward)(float *y, const float *x, int64_t n);
    int (*relu_backward)(float *dx, const float *dy, const float *y, int64_t n);
    int (*mse_forward)(float *loss, const float *x, const float *target, int64_t n);
    int (*mse_backward)(float *dx, float dloss, const float *x, const float *target, int64_t n);

    /* ---- KL to N(0, I) (SPEC §2): −½ · mean_rows Σ_l (1 + lv' − mu² − exp(lv')), mu, lv: [B,L] ---- */
    int (*kl_forward)(float *loss, const float *mu, const float *lv, int64_t B, int64_t L);
    int (*kl_backward)(float *dmu, float *dlv, float dloss, const float *mu, const float *lv, int64_t B, int64_t L);

    /* ---- distillation (SPEC §4, §6): student (mu1, lv1) against the frozen teacher (mu2, lv2), [B,L];
     *      only the student side gets gradients. ---- */
    int (*distill_forward)(float *loss, const float *mu1, const float *lv1, const float *mu2, const float *lv2,
                           distill_variant variant, int64_t B, int64_t L);
    int (*distill_backward)(float *dmu1, float *dlv1, float dloss, const float *mu1, const float *lv1,
                            const float *mu2, const float *lv2, distill_variant variant, int64_t B, int64_t L);

    /* ---- in-batch matching (SPEC §3, §6): S = Zm·Zvᵀ [B,B] (row i = music i, column j = video j; positives on
     *      the diagonal), then the two terms `music` (over the rows of S) and `video` (over its columns), each
     *      one float, returned separately for logging. With k' = match_k_eff(k, B), sel_m [B,k'] receives for
     *      music row i the columns j of its selected negatives and sel_v [B,k'] for video column j the rows i,
     *      listed in increasing index (the k largest values, ties to the lower index: math.h's topk_select);
     *      the gradient flows to the selected entries only, as torch.topk's. sel_m/sel_v may be NULL for
     *      MATCH_SOFTMAX. B ≥ 2.
     *      Backward: dS [B,B] is scratch (overwritten); dzm += dS·Zv, dzv += dSᵀ·Zm, where dmusic, dvideo are
     *      the upstream factors of the two terms (published: −factor and −1). ---- */
    int (*match_forward)(float *music, float *video, float *S, int32_t *sel_m, int32_t *sel_v, const float *zm,
                         const float *zv, const match_cfg *cfg, int64_t B, int64_t L);
    int (*match_backward)(float *dzm, float *dzv, float *dS, float dmusic, float dvideo, const float *S,
                          const int32_t *sel_m, const int32_t *sel_v, const float *zm, const float *zv,
                          const match_cfg *cfg, int64_t B, int64_t L);

    /* ---- confounder mixing (SPEC §4): π = mean over the P rows of prior [P,G] (P = B in training; P = 1 with
     *      user_prior_mean in evaluation), c = Σ_g π_g·Cemb_g [L], zc = W_c·[c ; zm] + b_c for each of the B
     *      rows (W_c: [L, 2L], its first L columns act on c). Forward writes pi [G] and c [L] for backward.
     *      Backward: dzm += dzc·W_c[:, L:], dcemb [G,L], dWc, dbc accumulate; π is data (no gradient). ---- */
    int (*confounder_forward)(float *zc, float *pi, float *c, const float *zm, const float *prior,
                              const float *cemb, const float *Wc, const float *bc, int64_t B, int64_t P, int64_t L,
                              int64_t G);
    int (*confounder_backward)(float *dzm, float *dcemb, float *dWc, float *dbc, const float *dzc,
                               const float *pi, const float *c, const float *zm, const float *Wc, int64_t B,
                               int64_t L, int64_t G);

    /* ---- Adam (SPEC §5) over one flat array of n parameters, step t ≥ 1 (bias correction); g is not
     *      modified. ---- */
    int (*adam_update)(float *theta, float *m, float *v, const float *g, const adam_cfg *cfg, int64_t t,
                       int64_t n);

    /* ---- evaluation (SPEC §4, §3); results in HOST memory, for nK cut-offs K [nK] (host) in one pass.
     *      Ties count AGAINST the positive, and so does a NaN score on either side: a competitor counts when
     *      !(score(competitor) < score(true)). A collapsed model scoring everything equal gets rank = all.
     *  eval_negatives: scores [R, C], column 0 the positive, columns 1..C−1 its negatives; weights [R];
     *      rank_r = #{negatives ranked at or above the positive}; recall[i] = Σ_r w_r·[rank_r < K_i],
     *      ndcg[i] = Σ_r w_r·[rank_r < K_i] / log2(rank_r + 2); tie_rows = rows where a negative's score equals
     *      the positive's exactly.
     *  eval_full_rank: scores [R, N] over every music, truth [R] the column of the true music; rank = #{other
     *      columns ranked at or above it}; recall[i] = fraction of rows with rank < K_i. ---- */
    int (*eval_negatives)(double *recall, double *ndcg, int64_t *tie_rows, const float *scores,
                          const float *weights, const int32_t *K, int nK, int64_t R, int64_t C);
    int (*eval_full_rank)(double *recall, const float *scores, const int64_t *truth, const int32_t *K, int nK,
                          int64_t R, int64_t N);
} debcm_ops;

/* The CPU backend (engine/ops_cpu.c). */
const debcm_ops *debcm_ops_cpu(void);

#ifdef __cplusplus
}
#endif

#endif
