/* engine/math.h — the per-element and per-row formulas of DebCM, written once for every backend.
 *
 * Each formula of SPEC.md §2–§5 that acts on one element (or on one row, given the row's reductions) lives here
 * as a DEBCM_HD inline function in the C subset of CUDA: the CPU backend (engine/ops_cpu.c) calls it from plain
 * loops, and the CUDA kernels will call the same code from their threads, so what differs between the backends is
 * only indexing and the order of reductions. Nothing here allocates, loops over a tensor or touches memory other
 * than through its arguments. Backward pieces are written beside their forward: `<term>_d<x>` (and `_grad`) is
 * the derivative of the forward's value with respect to x (the caller multiplies by the upstream gradient and by
 * the loss's own factor, e.g. −½/B for the KL). Clamps follow torch.clamp's gradient rule: the gradient passes
 * where the input lies inside the closed interval [min, max] and is 0 strictly outside it. */
#ifndef DEBCM_MATH_H
#define DEBCM_MATH_H

#include <math.h>
#include <stdint.h>

#include "engine/hostdev.h"

#define DEBCM_BN_EPS 1e-5f        /* SPEC §2: BatchNorm eps */
#define DEBCM_BN_MOMENTUM 0.1f    /* SPEC §2: running statistics momentum */
#define DEBCM_L2_EPS 1e-10f       /* SPEC §2: normalize(y) = y / max(‖y‖, 1e-10) */
#define DEBCM_LV_MAX 10.0f        /* SPEC §2: lv' = min(lv, 10) */
#define DEBCM_KLG_EPS 1e-15f      /* SPEC §4: ε of the published KLG */
#define DEBCM_MATCH_MAX 1e6f      /* SPEC §3: clamp(·, 0, 1e6) of the matching term */
#define DEBCM_ADAM_EPS 1e-8f      /* SPEC §5 */

/* ---- BatchNorm (SPEC §2) ------------------------------------------------------------------------------------- */

/* 1/sqrt(var + eps) for the biased batch variance (training) or the running variance (evaluation). */
DEBCM_HD float bn_rstd(float var, float eps) { return 1.0f / sqrtf(var + eps); }

/* x̂ = (x − mean)·rstd */
DEBCM_HD float bn_xhat(float x, float mean, float rstd) { return (x - mean) * rstd; }

/* y = γ·x̂ + β */
DEBCM_HD float bn_apply(float xhat, float gamma, float beta) { return gamma * xhat + beta; }

/* running ← (1 − momentum)·running + momentum·batch; the caller passes the UNBIASED batch variance for
 * running_var (SPEC §2) and the batch mean for running_mean. */
DEBCM_HD float bn_running_update(float running, float batch, float momentum)
{
    return (1.0f - momentum) * running + momentum * batch;
}

/* Training-mode dx of one element, given the feature's sums over the batch: sum_dy = Σ_b dy, sum_dy_xhat =
 * Σ_b dy·x̂ (these are also dβ and dγ). dx = γ·rstd/B · (B·dy − Σdy − x̂·Σ dy·x̂). */
DEBCM_HD float bn_backward_dx(float dy, float xhat, float gamma, float rstd, float sum_dy, float sum_dy_xhat,
                              float B)
{
    return gamma * rstd / B * (B * dy - sum_dy - xhat * sum_dy_xhat);
}

/* ---- dropout (SPEC §2: inverted dropout, kept values scaled by 1/(1−p)) ---------------------------------------- */

/* Keep decision from a uniform u in (0, 1] (rng_uniform): kept with probability 1 − p. */
DEBCM_HD uint8_t dropout_keep(float u, float p) { return (uint8_t)(u > p); }

/* 1/(1−p), as PyTorch computes it in float32 (1.25 exactly for p = 0.2). */
DEBCM_HD float dropout_scale(float p) { return 1.0f / (1.0f - p); }

/* y = x·mask·scale; the same expression is the backward (dx = dy·mask·scale). */
DEBCM_HD float dropout_apply(float x, uint8_t keep, float scale) { return keep ? x * scale : 0.0f; }

/* ---- row L2 normalisation (SPEC §2: y = x / max(‖x‖, 1e-10), zero rows included) ------------------------------ */

/* The denominator n = max(‖x‖, eps) from the row's norm. */
DEBCM_HD float l2n_denominator(float norm) { return norm > DEBCM_L2_EPS ? norm : DEBCM_L2_EPS; }

/* dx of one element. Where the clamp is inactive (‖x‖ ≥ eps, torch.clamp_min passes the gradient at equality):
 * dx = (dy − y·(y·dy)) / n with y·dy the row's dot product. Where it is active (‖x‖ < eps, a zero row): n is the
 * constant eps, so dx = dy / eps. */
DEBCM_HD float l2n_backward_dx(float dy, float y, float y_dot_dy, float norm)
{
    if (norm >= DEBCM_L2_EPS)
        return (dy - y * y_dot_dy) / norm;
    return dy / DEBCM_L2_EPS;
}

/* ---- reparameterisation (SPEC §2) -------------------------------------------------------------------------- */

/* lv' = min(lv, 10) */
DEBCM_HD float lv_clamp(float lv) { return lv < DEBCM_LV_MAX ? lv : DEBCM_LV_MAX; }

/* d lv'/d lv: 1 where lv ≤ 10 (torch.clamp passes the gradient at the bound), 0 where lv > 10. */
DEBCM_HD float lv_clamp_grad(float lv) { return lv <= DEBCM_LV_MAX ? 1.0f : 0.0f; }

/* z = mu + ε ⊙ exp(lv'/2) (training mode). */
DEBCM_HD float reparam_z(float mu, float lv, float eps) { return mu + eps * expf(0.5f * lv_clamp(lv)); }

/* dz/dlv = ε·½·exp(lv'/2)·[lv ≤ 10]  (dz/dmu = 1) */
DEBCM_HD float reparam_dz_dlv(float lv, float eps)
{
    return eps * 0.5f * expf(0.5f * lv_clamp(lv)) * lv_clamp_grad(lv);
}

/* ---- ReLU, MSE ------------------------------------------------------------------------------------------------- */

DEBCM_HD float relu(float x) { return x > 0.0f ? x : 0.0f; }

/* dx from dy and the OUTPUT y (y > 0 exactly where x > 0; gradient 0 at x = 0, as torch.relu). */
DEBCM_HD float relu_backward(float dy, float y) { return y > 0.0f ? dy : 0.0f; }

/* ---- KL to the standard normal (SPEC §2): KL = −½ · mean_rows Σ_l term ------------------------------------- */

/* term = 1 + lv' − mu² − exp(lv') */
DEBCM_HD float kl_term(float mu, float lv)
{
    float lvc = lv_clamp(lv);
    return 1.0f + lvc - mu * mu - expf(lvc);
}
DEBCM_HD float kl_term_dmu(float mu) { return -2.0f * mu; }
DEBCM_HD float kl_term_dlv(float lv) { return (1.0f - expf(lv_clamp(lv))) * lv_clamp_grad(lv); }

/* ---- distillation KLG (SPEC §4, §6) --------------------------------------------------------------------------
 * published: KLG = −½ · mean_rows( 1 − Σ_l t ),
 *            t = log( exp(lv2')/(exp(lv1') + ε) + ε ) − (exp(lv1') + (mu1 − mu2)²)/(exp(lv2') + ε)
 *            (faithful: the "1 −" sits OUTSIDE the sum, and the second term has the sign of the published code),
 *            so ∂KLG/∂t = +½/B.
 * kl:        the true KL(N(mu1, σ1²) ‖ N(mu2, σ2²)) averaged over rows: ½ · mean_rows Σ_l t,
 *            t = (lv2' − lv1') + (exp(lv1') + (mu1 − mu2)²)/exp(lv2') − 1, so ∂KL/∂t = +½/B as well.
 * Side 1 is the student (gets the gradient), side 2 the frozen teacher. */

DEBCM_HD float klg_published_term(float mu1, float lv1, float mu2, float lv2)
{
    float e1 = expf(lv_clamp(lv1)), e2 = expf(lv_clamp(lv2)), d = mu1 - mu2;
    return logf(e2 / (e1 + DEBCM_KLG_EPS) + DEBCM_KLG_EPS) - (e1 + d * d) / (e2 + DEBCM_KLG_EPS);
}
DEBCM_HD float klg_published_term_dmu1(float mu1, float mu2, float lv2)
{
    return -2.0f * (mu1 - mu2) / (expf(lv_clamp(lv2)) + DEBCM_KLG_EPS);
}
/* d/dlv1 of log(e2/(e1+ε) + ε) is −e2·e1/(e1+ε)² / (e2/(e1+ε) + ε); of −(e1 + Δ²)/(e2+ε) it is −e1/(e2+ε). */
DEBCM_HD float klg_published_term_dlv1(float lv1, float lv2)
{
    float e1 = expf(lv_clamp(lv1)), e2 = expf(lv_clamp(lv2));
    float a = e1 + DEBCM_KLG_EPS;
    float r = e2 / a;
    return (-(r / a) * e1 / (r + DEBCM_KLG_EPS) - e1 / (e2 + DEBCM_KLG_EPS)) * lv_clamp_grad(lv1);
}

DEBCM_HD float klg_kl_term(float mu1, float lv1, float mu2, float lv2)
{
    float l1 = lv_clamp(lv1), l2 = lv_clamp(lv2), d = mu1 - mu2;
    return (l2 - l1) + (expf(l1) + d * d) / expf(l2) - 1.0f;
}
DEBCM_HD float klg_kl_term_dmu1(float mu1, float mu2, float lv2) { return 2.0f * (mu1 - mu2) / expf(lv_clamp(lv2)); }
DEBCM_HD float klg_kl_term_dlv1(float lv1, float lv2)
{
    return (expf(lv_clamp(lv1)) / expf(lv_clamp(lv2)) - 1.0f) * lv_clamp_grad(lv1);
}

/* ---- matching term (SPEC §3, §6) ------------------------------------------------------------------------------
 * published: value = clamp(S_pos − S_neg − margin, 0, 1e6), the k LARGEST per row are averaged and the loss
 *            subtracts them (faithful: the published code maximises them).
 * hinge:     value = [margin − S_pos + S_neg]₊, the k largest (hardest) per row, minimised. */

DEBCM_HD float match_published_value(float s_pos, float s_neg, float margin)
{
    float x = s_pos - s_neg - margin;
    return x < 0.0f ? 0.0f : (x > DEBCM_MATCH_MAX ? DEBCM_MATCH_MAX : x);
}
/* d value / d s_pos (= −d value / d s_neg): 1 inside the closed clamp interval, as torch.clamp. */
DEBCM_HD float match_published_grad(float s_pos, float s_neg, float margin)
{
    float x = s_pos - s_neg - margin;
    return (x >= 0.0f && x <= DEBCM_MATCH_MAX) ? 1.0f : 0.0f;
}

DEBCM_HD float match_hinge_value(float s_pos, float s_neg, float margin) { return relu(margin - s_pos + s_neg); }
/* d value / d s_neg (= −d value / d s_pos) */
DEBCM_HD float match_hinge_grad(float s_pos, float s_neg, float margin)
{
    return margin - s_pos + s_neg > 0.0f ? 1.0f : 0.0f;
}

/* Top-k by insertion, for one row scanned in INCREASING candidate index: val[0..*count) is kept sorted by value,
 * largest first. Tie rule: the larger value first, then the lower index — since candidates arrive by increasing
 * index, a candidate equal to the current k-th value never displaces it, and among equal values the earlier one
 * stays ahead. NaN never enters a full list. */
DEBCM_HD void topk_insert(float *val, int32_t *idx, int32_t *count, int32_t k, float v, int32_t j)
{
    int32_t n = *count;
    if (n == k) {
        if (!(v > val[k - 1]))
            return;
        n = k - 1; /* drop the last */
    }
    int32_t pos = n;
    while (pos > 0 && v > val[pos - 1]) {
        val[pos] = val[pos - 1];
        idx[pos] = idx[pos - 1];
        pos--;
    }
    val[pos] = v;
    idx[pos] = j;
    *count = n + 1;
}

/* ---- Adam with PyTorch's L2 weight decay (SPEC §5) ----------------------------------------------------------- */

/* The float32 coefficients of one step t (1-based), computed in double as torch.optim.Adam does in Python:
 * step_size = lr / (1 − β1^t), bc2_sqrt = sqrt(1 − β2^t). */
typedef struct {
    float step_size, bc2_sqrt;
    float beta1, one_minus_beta1, beta2, one_minus_beta2;
    float eps, weight_decay;
} adam_coef;

DEBCM_HD adam_coef adam_coef_make(double lr, double beta1, double beta2, double eps, double weight_decay,
                                  int64_t t)
{
    adam_coef c;
    c.step_size = (float)(lr / (1.0 - pow(beta1, (double)t)));
    c.bc2_sqrt = (float)sqrt(1.0 - pow(beta2, (double)t));
    c.beta1 = (float)beta1;
    c.one_minus_beta1 = (float)(1.0 - beta1);
    c.beta2 = (float)beta2;
    c.one_minus_beta2 = (float)(1.0 - beta2);
    c.eps = (float)eps;
    c.weight_decay = (float)weight_decay;
    return c;
}

/* One element, in the operation order of torch.optim.Adam (single-tensor path):
 *   g ← g + wd·θ;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g·g;  θ ← θ + (−step_size·m) / (√v / bc2_sqrt + eps).
 * The gradient array itself is not modified (PyTorch adds wd·θ to a copy). */
DEBCM_HD void adam_update_one(float *theta, float *m, float *v, float g, adam_coef c)
{
    float th = *theta;
    g = g + c.weight_decay * th;
    float mm = *m * c.beta1 + c.one_minus_beta1 * g;
    float vv = *v * c.beta2 + c.one_minus_beta2 * g * g;
    float denom = sqrtf(vv) / c.bc2_sqrt + c.eps;
    *m = mm;
    *v = vv;
    *theta = th + (-c.step_size * mm) / denom;
}

#endif
