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
DEBCM_HD float dropout_apply(float x, uint8_t keep, float scale)
{
    union {
        float f;
        uint32_t u;
    } r;
    r.f = x * scale;
    r.u &= 0u - (uint32_t)(keep != 0); /* +0 when dropped (not x·0, which keeps −0 and NaN); no branch: vectorises */
    return r.f;
}

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

/* Top-k of one row by radix selection. The order: value v at index j beats w at index i when v > w, or v == w and
 * j < i (the larger value first, then the lower index) — a total order, so the selection is unique. Each value
 * maps to an unsigned key with the same order (topk_key: −0 is taken as +0, and NaN sorts above +inf, so a row
 * with NaN selects it and gives a NaN loss); four passes of an 8-bit histogram find the k-th largest key T
 * exactly, then one scan takes the keys above T and the lowest-indexed ones equal to T. Every pass is a
 * branch-free loop over the row: no per-candidate comparisons against a moving threshold (a heap or a sorted list
 * mispredicts on every insertion). The selection comes out in increasing index. */
DEBCM_HD uint32_t topk_key(float v)
{
    union {
        float f;
        uint32_t u;
    } b;
    b.f = v + 0.0f; /* −0 + 0 = +0 */
    if (v != v)     /* any NaN, whatever its sign bit (x86 makes inf − inf negative, CUDA positive): the top */
        return 0xFFFFFFFFu;
    return b.u ^ ((b.u >> 31) ? 0xFFFFFFFFu : 0x80000000u);
}

/* The k best of v[0..n) except index skip (−1: none) into idx[] in increasing index; scratch: [2n] words (the keys,
 * then the candidates still tied on the bits fixed so far). Returns the count taken, min(k, candidates). The
 * histograms are four interleaved copies, so runs of equal bins (a row's values share their top bits) do not
 * serialise on one counter. */
DEBCM_HD int32_t topk_select(int32_t *idx, uint32_t *scratch, const float *v, int32_t n, int32_t k, int32_t skip)
{
    int32_t avail = n - (skip >= 0 && skip < n ? 1 : 0);
    if (k > avail)
        k = avail;
    if (k <= 0)
        return 0;
    uint32_t *key = scratch, *cand = scratch + n;
    int32_t hist[4][256];
    for (int c = 0; c < 4; c++)
        for (int b = 0; b < 256; b++)
            hist[c][b] = 0;
    for (int32_t j = 0; j < n; j++) { /* the keys and the first pass's histogram (top byte) in one sweep */
        key[j] = topk_key(v[j]);
        hist[j & 3][key[j] >> 24]++;
    }
    if (skip >= 0 && skip < n)
        hist[skip & 3][key[skip] >> 24]--;
    uint32_t prefix = 0;
    int32_t need = k, m = 0; /* need: how many are still to take among the candidates (keys sharing the prefix) */
    for (int shift = 24; shift >= 0; shift -= 8) {
        if (shift < 24) { /* later passes: only the candidates */
            for (int c = 0; c < 4; c++)
                for (int b = 0; b < 256; b++)
                    hist[c][b] = 0;
            for (int32_t t = 0; t < m; t++)
                hist[t & 3][(key[cand[t]] >> shift) & 255u]++;
        }
        int b = 255, in_b;
        for (;;) { /* whole bins above the k-th key: all taken */
            in_b = hist[0][b] + hist[1][b] + hist[2][b] + hist[3][b];
            if (in_b >= need)
                break;
            need -= in_b;
            b--;
        }
        prefix |= (uint32_t)b << shift;
        int32_t m2 = 0; /* keep the candidates in bin b (in place: m2 never passes t) */
        if (shift == 24)
            for (int32_t j = 0; j < n; j++) {
                cand[m2] = (uint32_t)j;
                m2 += ((key[j] >> 24) == (uint32_t)b) & (j != skip);
            }
        else
            for (int32_t t = 0; t < m; t++) {
                cand[m2] = cand[t];
                m2 += ((key[cand[t]] >> shift) & 255u) == (uint32_t)b;
            }
        m = m2;
    }
    int32_t c = 0; /* prefix is now the k-th largest key T; `need` of the m keys equal to T are taken */
    if (need == m) { /* no tie cut at T (the usual case): every key ≥ T, no chain through `need` */
        for (int32_t j = 0; j < n; j++)
            if ((key[j] >= prefix) & (j != skip)) /* rare (k of n): predictable */
                idx[c++] = j;
        return c;
    }
    for (int32_t j = 0; j < n; j++) {
        int eq = key[j] == prefix;
        int take = (j != skip) & ((key[j] > prefix) | (eq & (need > 0)));
        need -= eq & take;
        if (take)
            idx[c++] = j;
    }
    return c;
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
