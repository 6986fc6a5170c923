/* tests/test_loss_fd.c — finite differences of the WHOLE teacher and student losses (SPEC.md §2–§4).
 *
 * For each case below, a tiny network (D_v 12, D_m 10, L 6, G 4, batch B 7) is built with net_create/net_init
 * on the CPU backend (BN γ, β then moved off 1, 0; the student's frozen teacher has its own init and random
 * running statistics), and one model_train_step runs on random inputs with recorded draws (model_draws: dropout
 * masks with p = 0.2, reparameterisation noise ε), which a float64 reference of the whole loss, written here from
 * the SPEC and not from the engine, replays: training-mode BatchNorm (batch mean, biased variance), inverted
 * dropout, normalised mu and logvar, reparameterisation, the student's confounder layer with π = batch mean of
 * user_prior, the cross decoders with ReLU, both MSEs, both KLs, the matching term (published clamp/top-k, hinge
 * or softmax; k capped at B − 1) and, for the student, the distillation term (published KLG or the true KL)
 * against the frozen teacher in eval mode (running statistics, no dropout, z = mu), with the signs and weights of
 * §3/§4 and model_config_default. The float32 loss and each logged term must match the reference to 1e-5 relative
 * (the loss relative to the sum of its terms' magnitudes, as it may cancel to near 0), and the analytic float32
 * gradient of EVERY trainable entry must match central differences of the reference (h = 1e-4, in double) to
 * ‖a−b‖/‖b‖ ≤ 1e-4 per tensor. The loss has kinks (ReLU, the matching clamps, the top-k boundaries; the lv clamp
 * at 10 and the L2 clamp at 1e-10 are out of reach of unit-norm lv and mu): inputs are redrawn (at most MAX_TRIES
 * times) until every kink argument lies at least KINK_GAP = 50·h from its kink, and every finite-difference
 * evaluation must see the same active set (ReLU signs, clamp signs, top-k selections) as the base point. α = 5e-5
 * by default makes the distillation's share of the gradient too small to see, so both distillation variants also
 * run with α = 1. Prints the errors per case and the worst per tensor, with the seed (DEBCM_TEST_SEED overrides
 * it); exit code 0 pass, 1 fail. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "models/model.h"

#define OK(call) CHECK_MSG((call) == 0, "%s", debcm_last_error())

enum { N_DV = 12, N_DM = 10, N_L = 6, N_G = 4, N_B = 7 };
#define FD_H 1e-4              /* central differences in double: truncation ~h², rounding ~1e-16·|loss|/h */
#define KINK_GAP (50.0 * FD_H) /* every kink argument at least this far from its kink */
#define LOSS_TOL 1e-5          /* float32 loss and terms vs the float64 reference, relative */
#define GRAD_TOL 1e-4          /* ‖analytic − fd‖ / ‖fd‖ per tensor; seen over 300 seeds: float32 rounding ~5e-7,
                                  the h² truncation of the differences at most 1.1e-5 */
#define MAX_TRIES 500          /* input redraws before giving up on a kink-free draw */

static const debcm_ops *ops;
static uint64_t test_seed = 20250612;
static uint64_t draw_index;

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_loss_fd: out of memory\n");
        exit(1);
    }
    return p;
}
#define NEWF(n) ((float *)xmalloc((size_t)(n) * sizeof(float)))
#define NEWD(n) ((double *)xmalloc((size_t)(n) * sizeof(double)))

static double urand(double lo, double hi) { return lo + (hi - lo) * (double)rng_uniform(test_seed, 1, draw_index++); }
static float nrand(void) { return rng_normal(test_seed, 2, draw_index++); }

static void to_double(double *out, const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i];
}

/* the worst gradient error per tensor name over all cases */
typedef struct {
    char name[48];
    double worst;
} tensor_stat;
static tensor_stat tstats[32];
static int ntstats;
static void note_tensor(const char *name, double err)
{
    int i = 0;
    while (i < ntstats && strcmp(tstats[i].name, name))
        i++;
    if (i == ntstats) {
        if (ntstats == 32)
            abort();
        snprintf(tstats[ntstats++].name, sizeof tstats[0].name, "%s", name);
    }
    if (!(err <= tstats[i].worst))
        tstats[i].worst = err;
}

/* ---- where each tensor sits in the parameter arena (the reference reads the same flat vector) -------------------- */

typedef struct {
    int64_t bn_w, bn_b, mu_w, mu_b, lv_w, lv_b;
} enc_off;
typedef struct {
    int64_t bn_w, bn_b, w, b;
} dec_off;
typedef struct {
    enc_off em, ev;
    dec_off rm, rv;
    int64_t cemb, wc, bc;  /* student only */
    int64_t rm_em, rv_em;  /* statistics arena: running mean / var of the encoders (the teacher's eval mode) */
    int64_t rm_ev, rv_ev;
} net_off;

static int64_t param_off(const debcm_net *net, const char *name, int64_t rows, int64_t cols)
{
    net_tensor t;
    int i = net_tensor_find(net, name);
    CHECK_MSG(i >= 0, "no tensor %s", name);
    if (i < 0 || net_tensor_get(net, i, &t))
        return 0;
    CHECK_MSG(t.shape[0] == rows && t.shape[1] == cols, "%s: shape [%lld, %lld], expected [%lld, %lld]", name,
              (long long)t.shape[0], (long long)t.shape[1], (long long)rows, (long long)cols);
    return t.kind == TENSOR_PARAM ? t.data - net->param_arena : t.data - net->stat_arena;
}

static void net_offsets(net_off *o, const debcm_net *net)
{
    const int64_t Dv = net->dims.D_v, Dm = net->dims.D_m, L = net->dims.L, G = net->dims.G;
    memset(o, 0, sizeof *o);
    enc_off *e[2] = {&o->em, &o->ev};
    dec_off *d[2] = {&o->rm, &o->rv};
    const char *epre[2] = {"m_encoder", "v_encoder"}, *dpre[2] = {"m_decoder", "video_v_decoder"};
    const int64_t D[2] = {Dm, Dv};
    char n[96];
    for (int s = 0; s < 2; s++) {
#define OFF(pre, part, r, c) (snprintf(n, sizeof n, "%s.%s", pre, part), param_off(net, n, r, c))
        e[s]->bn_w = OFF(epre[s], "bn1.weight", D[s], 1);
        e[s]->bn_b = OFF(epre[s], "bn1.bias", D[s], 1);
        e[s]->mu_w = OFF(epre[s], "fc_mu.weight", L, D[s]);
        e[s]->mu_b = OFF(epre[s], "fc_mu.bias", L, 1);
        e[s]->lv_w = OFF(epre[s], "fc_logvar.weight", L, D[s]);
        e[s]->lv_b = OFF(epre[s], "fc_logvar.bias", L, 1);
        d[s]->bn_w = OFF(dpre[s], "bn1.weight", L, 1);
        d[s]->bn_b = OFF(dpre[s], "bn1.bias", L, 1);
        d[s]->w = OFF(dpre[s], "fc2.weight", D[s], L);
        d[s]->b = OFF(dpre[s], "fc2.bias", D[s], 1);
    }
    o->rm_em = OFF("m_encoder", "bn1.running_mean", Dm, 1);
    o->rv_em = OFF("m_encoder", "bn1.running_var", Dm, 1);
    o->rm_ev = OFF("v_encoder", "bn1.running_mean", Dv, 1);
    o->rv_ev = OFF("v_encoder", "bn1.running_var", Dv, 1);
#undef OFF
    if (net->student) {
        o->cemb = param_off(net, "confounder_emb.weight", G, L);
        o->wc = param_off(net, "linear.weight", L, 2 * L);
        o->bc = param_off(net, "linear.bias", L, 1);
    }
}

/* ---- the float64 reference (SPEC §2–§4) -------------------------------------------------------------------------- */

typedef struct {
    double loss, recon_m, recon_v, kl_m, kl_v, music, video, distill_m, distill_v;
} ref_terms;

typedef struct {
    int student;
    model_config cfg;
    int64_t B, Dv, Dm, L, G;
    net_off off;
    double *xv, *xm, *prior, *eps_m, *eps_v;          /* the batch and the noise */
    uint8_t *mk_em, *mk_ev, *mk_rm, *mk_rv;           /* dropout keep-masks */
    double *t_mu_m, *t_lv_m, *t_mu_v, *t_lv_v;        /* the frozen teacher's eval-mode posteriors (student) */
    double *h, *hl, *mu_m, *lv_m, *mu_v, *lv_v, *z_m, *z_v, *zc, *out_m, *out_v, *S, *row, *cvec; /* scratch */
    int32_t *row_idx;
    uint8_t *sel;
    /* of the last evaluation: the smallest distance of a kink argument to its kink, and the active set */
    double kink;
    uint8_t *pat;
    int64_t npat, pat_cap;
} ref_ctx;

static void pat_put(ref_ctx *c, int v)
{
    if (c->pat && c->npat < c->pat_cap)
        c->pat[c->npat] = (uint8_t)v;
    c->npat++;
}

/* BatchNorm over the D features; rmean NULL: training mode (batch mean, biased variance), else evaluation mode */
static void ref_bn(double *y, const double *x, const double *gamma, const double *beta, const double *rmean,
                   const double *rvar, int64_t B, int64_t D)
{
    for (int64_t d = 0; d < D; d++) {
        double m = 0.0, v = 0.0;
        if (rmean) {
            m = rmean[d];
            v = rvar[d];
        } else {
            for (int64_t r = 0; r < B; r++)
                m += x[r * D + d];
            m /= (double)B;
            for (int64_t r = 0; r < B; r++)
                v += (x[r * D + d] - m) * (x[r * D + d] - m);
            v /= (double)B;
        }
        double rs = 1.0 / sqrt(v + 1e-5);
        for (int64_t r = 0; r < B; r++)
            y[r * D + d] = gamma[d] * (x[r * D + d] - m) * rs + beta[d];
    }
}

/* inverted dropout in place: kept values scaled by 1/(1 − p) */
static void ref_dropout(double *y, const uint8_t *mask, double p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = mask[i] ? y[i] / (1.0 - p) : 0.0;
}

/* y[B, out] = x[B, in]·Wᵀ + b, W [out, in] */
static void ref_linear(double *y, const double *x, const double *W, const double *b, int64_t B, int64_t in,
                       int64_t out)
{
    for (int64_t r = 0; r < B; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b[o];
            for (int64_t i = 0; i < in; i++)
                s += W[o * in + i] * x[r * in + i];
            y[r * out + o] = s;
        }
}

/* y / max(‖y‖, 1e-10) per row, in place */
static void ref_normalize(double *y, int64_t B, int64_t D)
{
    for (int64_t r = 0; r < B; r++) {
        double s = 0.0;
        for (int64_t d = 0; d < D; d++)
            s += y[r * D + d] * y[r * D + d];
        double n = fmax(sqrt(s), 1e-10);
        for (int64_t d = 0; d < D; d++)
            y[r * D + d] /= n;
    }
}

static double lvc(double lv) { return fmin(lv, 10.0); }

/* E (SPEC §2): mask NULL and running statistics given: evaluation mode */
static void ref_encoder(double *mu, double *lv, double *h, const double *th, const enc_off *o, const double *x,
                        const uint8_t *mask, double p, const double *rmean, const double *rvar, int64_t B, int64_t D,
                        int64_t L)
{
    ref_bn(h, x, th + o->bn_w, th + o->bn_b, rmean, rvar, B, D);
    if (mask)
        ref_dropout(h, mask, p, B * D);
    ref_linear(mu, h, th + o->mu_w, th + o->mu_b, B, D, L);
    ref_normalize(mu, B, L);
    ref_linear(lv, h, th + o->lv_w, th + o->lv_b, B, D, L);
    ref_normalize(lv, B, L);
}

/* R (SPEC §2), training mode; records the ReLU kinks */
static void ref_decoder(ref_ctx *c, double *out, const double *th, const dec_off *o, const double *z,
                        const uint8_t *mask, int64_t D)
{
    ref_bn(c->hl, z, th + o->bn_w, th + o->bn_b, NULL, NULL, c->B, c->L);
    ref_dropout(c->hl, mask, c->cfg.dropout, c->B * c->L);
    ref_linear(out, c->hl, th + o->w, th + o->b, c->B, c->L, D);
    for (int64_t i = 0; i < c->B * D; i++) {
        c->kink = fmin(c->kink, fabs(out[i]));
        pat_put(c, out[i] > 0.0);
        out[i] = fmax(out[i], 0.0);
    }
}

static double ref_mse(const double *x, const double *t, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += (x[i] - t[i]) * (x[i] - t[i]);
    return s / (double)n;
}

/* KL to N(0, I): −½ · mean_rows Σ_l (1 + lv' − mu² − exp(lv')) */
static double ref_kl(const double *mu, const double *lv, int64_t B, int64_t L)
{
    double s = 0.0;
    for (int64_t i = 0; i < B * L; i++)
        s += 1.0 + lvc(lv[i]) - mu[i] * mu[i] - exp(lvc(lv[i]));
    return -0.5 * s / (double)B;
}

/* SPEC §4 KLG (published: the "1 −" outside the sum) or §6 the true KL(N(mu1, e1) ‖ N(mu2, e2)), over rows */
static double ref_distill(distill_variant v, const double *mu1, const double *lv1, const double *mu2,
                          const double *lv2, int64_t B, int64_t L)
{
    const double eps = 1e-15;
    double total = 0.0;
    for (int64_t r = 0; r < B; r++) {
        double s = 0.0;
        for (int64_t l = 0; l < L; l++) {
            int64_t i = r * L + l;
            double e1 = exp(lvc(lv1[i])), e2 = exp(lvc(lv2[i])), d = mu1[i] - mu2[i];
            if (v == DISTILL_PUBLISHED)
                s += log(e2 / (e1 + eps) + eps) - (e1 + d * d) / (e2 + eps);
            else
                s += log(e2 / e1) + (e1 + d * d) / e2 - 1.0;
        }
        total += v == DISTILL_PUBLISHED ? 1.0 - s : s;
    }
    return (v == DISTILL_PUBLISHED ? -0.5 : 0.5) * total / (double)B;
}

/* the matching terms of S = Zm·Zvᵀ (SPEC §3, §6); records the clamp kinks, the top-k boundaries and selections */
static void ref_match(ref_ctx *c, double *music, double *video, const double *zm, const double *zv)
{
    const int64_t B = c->B, L = c->L;
    const match_cfg *mc = &c->cfg.match;
    double *S = c->S;
    for (int64_t i = 0; i < B; i++)
        for (int64_t j = 0; j < B; j++) {
            double s = 0.0;
            for (int64_t l = 0; l < L; l++)
                s += zm[i * L + l] * zv[j * L + l];
            S[i * B + j] = s;
        }
    double sums[2] = {0.0, 0.0};
    if (mc->variant == MATCH_SOFTMAX) { /* CE of the positive over each row (music) and each column (video) */
        double tau = mc->tau;
        for (int dir = 0; dir < 2; dir++)
            for (int64_t a = 0; a < B; a++) {
                double mx = -INFINITY, s = 0.0;
                for (int64_t j = 0; j < B; j++)
                    mx = fmax(mx, (dir == 0 ? S[a * B + j] : S[j * B + a]) / tau);
                for (int64_t j = 0; j < B; j++)
                    s += exp((dir == 0 ? S[a * B + j] : S[j * B + a]) / tau - mx);
                sums[dir] += mx + log(s) - S[a * B + a] / tau;
            }
        *music = sums[0] / (double)B;
        *video = sums[1] / (double)B;
        return;
    }
    const int64_t k = c->cfg.match.k < B - 1 ? c->cfg.match.k : B - 1; /* SPEC §6: k capped at B − 1 */
    const double m = mc->margin;
    const int published = mc->variant == MATCH_PUBLISHED;
    for (int dir = 0; dir < 2; dir++)
        for (int64_t a = 0; a < B; a++) { /* dir 0: music a, negatives S_aj; dir 1: video a, negatives S_ja */
            double pos = S[a * B + a];
            int64_t n = 0;
            for (int64_t j = 0; j < B; j++) {
                if (j == a)
                    continue;
                double neg = dir == 0 ? S[a * B + j] : S[j * B + a];
                double x = published ? pos - neg - m : m - pos + neg;
                c->kink = fmin(c->kink, fabs(x));
                pat_put(c, x > 0.0);
                c->row[n] = published ? fmin(fmax(x, 0.0), 1e6) : fmax(x, 0.0);
                c->row_idx[n] = (int32_t)j;
                n++;
            }
            for (int64_t t = 1; t < n; t++) /* insertion sort: larger value first, then lower index */
                for (int64_t u = t; u > 0 && (c->row[u] > c->row[u - 1] ||
                                              (c->row[u] == c->row[u - 1] && c->row_idx[u] < c->row_idx[u - 1]));
                     u--) {
                    double tv = c->row[u];
                    int32_t ti = c->row_idx[u];
                    c->row[u] = c->row[u - 1];
                    c->row_idx[u] = c->row_idx[u - 1];
                    c->row[u - 1] = tv;
                    c->row_idx[u - 1] = ti;
                }
            memset(c->sel, 0, (size_t)B);
            for (int64_t t = 0; t < k; t++) {
                sums[dir] += c->row[t];
                c->sel[c->row_idx[t]] = 1;
            }
            if (k < n && c->row[k - 1] > 0.0) /* a top-k boundary between two values that carry a gradient */
                c->kink = fmin(c->kink, c->row[k - 1] - c->row[k]);
            for (int64_t j = 0; j < B; j++)
                pat_put(c, c->sel[j]);
        }
    *music = sums[0] / (double)(B * k);
    *video = sums[1] / (double)(B * k);
}

/* The whole loss at the parameter vector th (the arena's layout). pat (may be NULL) receives the active set. */
static double ref_loss(ref_ctx *c, const double *th, ref_terms *t, uint8_t *pat)
{
    const int64_t B = c->B, L = c->L, Dm = c->Dm, Dv = c->Dv, G = c->G;
    const double p = c->cfg.dropout;
    c->kink = INFINITY;
    c->pat = pat;
    c->npat = 0;
    memset(t, 0, sizeof *t);
    ref_encoder(c->mu_m, c->lv_m, c->h, th, &c->off.em, c->xm, c->mk_em, p, NULL, NULL, B, Dm, L);
    ref_encoder(c->mu_v, c->lv_v, c->h, th, &c->off.ev, c->xv, c->mk_ev, p, NULL, NULL, B, Dv, L);
    for (int64_t i = 0; i < B * L; i++) {
        c->z_m[i] = c->mu_m[i] + c->eps_m[i] * exp(0.5 * lvc(c->lv_m[i]));
        c->z_v[i] = c->mu_v[i] + c->eps_v[i] * exp(0.5 * lvc(c->lv_v[i]));
    }
    const double *zmatch = c->z_m;
    if (c->student) { /* z'_m = W_c [c ; z_m] + b_c, c = Σ_g π_g Cemb_g, π = batch mean of user_prior */
        const double *cemb = th + c->off.cemb, *wc = th + c->off.wc, *bc = th + c->off.bc;
        for (int64_t l = 0; l < L; l++) {
            double s = 0.0;
            for (int64_t g = 0; g < G; g++) {
                double pi = 0.0;
                for (int64_t r = 0; r < B; r++)
                    pi += c->prior[r * G + g];
                s += pi / (double)B * cemb[g * L + l];
            }
            c->cvec[l] = s;
        }
        for (int64_t r = 0; r < B; r++)
            for (int64_t l = 0; l < L; l++) {
                double s = bc[l];
                for (int64_t j = 0; j < L; j++)
                    s += wc[l * 2 * L + j] * c->cvec[j] + wc[l * 2 * L + L + j] * c->z_m[r * L + j];
                c->zc[r * L + l] = s;
            }
        zmatch = c->zc;
    }
    ref_decoder(c, c->out_m, th, &c->off.rm, c->z_v, c->mk_rm, Dm); /* r_m = R_m(z_v) */
    ref_decoder(c, c->out_v, th, &c->off.rv, zmatch, c->mk_rv, Dv); /* r_v = R_v(z_m or z'_m) */
    t->recon_m = ref_mse(c->out_m, c->xm, B * Dm);
    t->recon_v = ref_mse(c->out_v, c->xv, B * Dv);
    t->kl_m = ref_kl(c->mu_m, c->lv_m, B, L);
    t->kl_v = ref_kl(c->mu_v, c->lv_v, B, L);
    ref_match(c, &t->music, &t->video, zmatch, c->z_v);
    const model_config *cf = &c->cfg;
    if (cf->match.variant == MATCH_PUBLISHED) /* faithful: maximised (SPEC §3) */
        t->loss = -(double)cf->factor * t->music - t->video;
    else /* the corrected variants are minimised (SPEC §6) */
        t->loss = (double)cf->factor * t->music + t->video;
    t->loss += t->kl_m + t->kl_v + (double)cf->w_recon * (t->recon_m + t->recon_v);
    if (c->student) { /* the student's mu, lv are the encoder outputs, before the confounder layer (SPEC §4) */
        t->distill_m = ref_distill(cf->distill, c->mu_m, c->lv_m, c->t_mu_m, c->t_lv_m, B, L);
        t->distill_v = ref_distill(cf->distill, c->mu_v, c->lv_v, c->t_mu_v, c->t_lv_v, B, L);
        t->loss += (double)cf->alpha * (t->distill_m + t->distill_v);
    }
    return t->loss;
}

/* ---- one case ---------------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int student;
    match_variant match;
    int64_t k;
    distill_variant distill;
    float alpha, factor, w_recon; /* 0: model_config_default's */
} fd_case;

/* BN γ, β away from 1, 0 (net_init's values), so that their gradients and roles are not degenerate */
static void perturb_bn(debcm_net *net, int running_stats)
{
    for (int i = 0; i < net_tensor_count(net); i++) {
        net_tensor t;
        OK(net_tensor_get(net, i, &t));
        const char *dot = strrchr(t.name, '.');
        double lo, hi;
        if (!strcmp(dot, ".weight") && strstr(t.name, ".bn1."))
            lo = 0.7, hi = 1.3;
        else if (!strcmp(dot, ".bias") && strstr(t.name, ".bn1."))
            lo = -0.3, hi = 0.3;
        else if (running_stats && !strcmp(dot, ".running_mean"))
            lo = -0.5, hi = 0.5;
        else if (running_stats && !strcmp(dot, ".running_var"))
            lo = 0.5, hi = 2.0;
        else
            continue;
        float *v = NEWF(t.count);
        for (int64_t j = 0; j < t.count; j++)
            v[j] = (float)urand(lo, hi);
        OK(ops->upload(t.data, v, (size_t)t.count * sizeof *v));
        free(v);
    }
}

static float *backend_copy(const void *host, size_t bytes)
{
    float *p = ops->alloc(bytes);
    CHECK_MSG(p != NULL, "%s", debcm_last_error());
    if (p)
        OK(ops->upload(p, host, bytes));
    return p;
}

static void run_case(const fd_case *fc)
{
    const int64_t B = N_B, Dv = N_DV, Dm = N_DM, L = N_L, G = fc->student ? N_G : 0;
    const model_dims dims = {Dv, Dm, L, G}, tdims = {Dv, Dm, L, 0};
    debcm_net net, teacher;
    memset(&teacher, 0, sizeof teacher);
    OK(net_create(&net, ops, &dims, fc->student));
    OK(net_init(&net, test_seed + 11));
    perturb_bn(&net, 0);
    if (fc->student) {
        OK(net_create(&teacher, ops, &tdims, 0));
        OK(net_init(&teacher, test_seed + 12));
        perturb_bn(&teacher, 1);
    }
    model_config cfg;
    model_config_default(&cfg, fc->student);
    cfg.match.variant = fc->match;
    cfg.match.k = fc->k;
    cfg.distill = fc->distill;
    if (fc->alpha > 0.0f)
        cfg.alpha = fc->alpha;
    if (fc->factor > 0.0f)
        cfg.factor = fc->factor;
    if (fc->w_recon > 0.0f)
        cfg.w_recon = fc->w_recon;

    /* the reference's context */
    const int64_t n = net.n_params;
    ref_ctx c;
    memset(&c, 0, sizeof c);
    c.student = fc->student;
    c.cfg = cfg;
    c.B = B, c.Dv = Dv, c.Dm = Dm, c.L = L, c.G = G;
    net_offsets(&c.off, &net);
    c.xv = NEWD(B * Dv), c.xm = NEWD(B * Dm), c.prior = NEWD(B * (G ? G : 1));
    c.eps_m = NEWD(B * L), c.eps_v = NEWD(B * L);
    c.mk_em = xmalloc((size_t)(B * Dm)), c.mk_ev = xmalloc((size_t)(B * Dv));
    c.mk_rm = xmalloc((size_t)(B * L)), c.mk_rv = xmalloc((size_t)(B * L));
    c.t_mu_m = NEWD(B * L), c.t_lv_m = NEWD(B * L), c.t_mu_v = NEWD(B * L), c.t_lv_v = NEWD(B * L);
    c.h = NEWD(B * (Dv > Dm ? Dv : Dm)), c.hl = NEWD(B * L);
    c.mu_m = NEWD(B * L), c.lv_m = NEWD(B * L), c.mu_v = NEWD(B * L), c.lv_v = NEWD(B * L);
    c.z_m = NEWD(B * L), c.z_v = NEWD(B * L), c.zc = NEWD(B * L), c.cvec = NEWD(L);
    c.out_m = NEWD(B * Dm), c.out_v = NEWD(B * Dv), c.S = NEWD(B * B), c.row = NEWD(B);
    c.row_idx = xmalloc((size_t)B * sizeof *c.row_idx);
    c.sel = xmalloc((size_t)B);
    /* the active set: the ReLU signs, then per row of each direction the clamp signs and the top-k selection */
    c.pat_cap = B * (Dm + Dv) + (fc->match == MATCH_SOFTMAX ? 0 : 2 * B * (2 * B - 1));
    uint8_t *pat0 = xmalloc((size_t)c.pat_cap), *pat1 = xmalloc((size_t)c.pat_cap);

    /* the parameters (and the teacher's) as double */
    float *hp = NEWF(n);
    double *theta = NEWD(n);
    OK(ops->download(hp, net.param_arena, (size_t)n * sizeof *hp));
    to_double(theta, hp, n);
    double *t_theta = NULL, *t_stats = NULL;
    net_off t_off;
    memset(&t_off, 0, sizeof t_off);
    if (fc->student) {
        float *tp = NEWF(teacher.n_params), *ts = NEWF(teacher.n_stats);
        OK(ops->download(tp, teacher.param_arena, (size_t)teacher.n_params * sizeof *tp));
        OK(ops->download(ts, teacher.stat_arena, (size_t)teacher.n_stats * sizeof *ts));
        t_theta = NEWD(teacher.n_params);
        t_stats = NEWD(teacher.n_stats);
        to_double(t_theta, tp, teacher.n_params);
        to_double(t_stats, ts, teacher.n_stats);
        net_offsets(&t_off, &teacher);
        free(tp);
        free(ts);
    }

    /* inputs and draws: redrawn until no kink lies within KINK_GAP */
    float *xv = NEWF(B * Dv), *xm = NEWF(B * Dm), *prior = NEWF(B * (G ? G : 1)), *eps_m = NEWF(B * L),
          *eps_v = NEWF(B * L);
    ref_terms base;
    int tries = 0;
    for (; tries < MAX_TRIES; tries++) {
        for (int64_t i = 0; i < B * Dv; i++)
            xv[i] = (float)urand(-0.5, 2.0);
        for (int64_t i = 0; i < B * Dm; i++)
            xm[i] = (float)urand(-0.5, 2.0);
        for (int64_t r = 0; r < B; r++) { /* non-negative rows summing to 1 */
            double s = 0.0;
            for (int64_t g = 0; g < G; g++)
                s += prior[r * G + g] = (float)urand(0.0, 1.0);
            for (int64_t g = 0; g < G; g++)
                prior[r * G + g] = (float)(prior[r * G + g] / s);
        }
        for (int64_t i = 0; i < B * L; i++) {
            eps_m[i] = nrand();
            eps_v[i] = nrand();
        }
        uint8_t *masks[4] = {c.mk_em, c.mk_ev, c.mk_rm, c.mk_rv};
        const int64_t mn[4] = {B * Dm, B * Dv, B * L, B * L};
        for (int s = 0; s < 4; s++)
            for (int64_t i = 0; i < mn[s]; i++)
                masks[s][i] = urand(0.0, 1.0) > cfg.dropout;
        to_double(c.xv, xv, B * Dv);
        to_double(c.xm, xm, B * Dm);
        to_double(c.prior, prior, B * G);
        to_double(c.eps_m, eps_m, B * L);
        to_double(c.eps_v, eps_v, B * L);
        if (fc->student) { /* the frozen teacher: eval mode, running statistics, no dropout, z = mu */
            ref_encoder(c.t_mu_m, c.t_lv_m, c.h, t_theta, &t_off.em, c.xm, NULL, 0.0, t_stats + t_off.rm_em,
                        t_stats + t_off.rv_em, B, Dm, L);
            ref_encoder(c.t_mu_v, c.t_lv_v, c.h, t_theta, &t_off.ev, c.xv, NULL, 0.0, t_stats + t_off.rm_ev,
                        t_stats + t_off.rv_ev, B, Dv, L);
        }
        ref_loss(&c, theta, &base, pat0);
        if (c.kink >= KINK_GAP)
            break;
    }
    CHECK_MSG(tries < MAX_TRIES, "%s: no draw with every kink at least %g away in %d tries (seed %llu)", fc->name,
              KINK_GAP, MAX_TRIES, (unsigned long long)test_seed);
    CHECK(c.npat == c.pat_cap);
    const double base_kink = c.kink;

    /* the engine: one step with the recorded draws */
    model_workspace ws;
    OK(model_workspace_create(&ws, ops, &dims, B));
    float *d_xv = backend_copy(xv, (size_t)(B * Dv) * sizeof(float));
    float *d_xm = backend_copy(xm, (size_t)(B * Dm) * sizeof(float));
    float *d_prior = fc->student ? backend_copy(prior, (size_t)(B * G) * sizeof(float)) : NULL;
    float *d_eps_m = backend_copy(eps_m, (size_t)(B * L) * sizeof(float));
    float *d_eps_v = backend_copy(eps_v, (size_t)(B * L) * sizeof(float));
    uint8_t *d_mk[4];
    d_mk[0] = (uint8_t *)backend_copy(c.mk_em, (size_t)(B * Dm));
    d_mk[1] = (uint8_t *)backend_copy(c.mk_ev, (size_t)(B * Dv));
    d_mk[2] = (uint8_t *)backend_copy(c.mk_rm, (size_t)(B * L));
    d_mk[3] = (uint8_t *)backend_copy(c.mk_rv, (size_t)(B * L));
    model_batch batch = {d_xv, d_xm, d_prior, B, NULL};
    model_draws draws = {d_eps_m, d_eps_v, d_mk[0], d_mk[1], d_mk[2], d_mk[3]};
    model_losses out;
    OK(model_train_step(&net, &ws, &cfg, fc->student ? &teacher : NULL, &batch, &draws, test_seed, 0, &out));
    float *grad = NEWF(n);
    OK(ops->download(grad, net.grad_arena, (size_t)n * sizeof *grad));

    /* the loss and every logged term */
    /* the loss is a signed sum of terms of order 1 and may cancel to near 0: its float32 rounding is relative to
     * the sum of the terms' magnitudes, so that is the scale of the comparison (the terms are checked one by one) */
    double scale = fabs((double)cfg.factor * base.music) + fabs(base.video) + fabs(base.kl_m) + fabs(base.kl_v) +
                   fabs((double)cfg.w_recon * (base.recon_m + base.recon_v)) +
                   fabs((double)cfg.alpha * (base.distill_m + base.distill_v));
    double loss_err = fabs(out.loss - base.loss) / fmax(fabs(base.loss), scale);
    CHECK_MSG(loss_err <= LOSS_TOL, "%s: loss %.9g, reference %.9g (error %.3g of %.3g)", fc->name, out.loss,
              base.loss, loss_err, fmax(fabs(base.loss), scale));
    const double got[8] = {out.recon_m, out.recon_v, out.kl_m, out.kl_v, out.music, out.video, out.distill_m,
                           out.distill_v};
    const double want[8] = {base.recon_m, base.recon_v, base.kl_m, base.kl_v, base.music, base.video, base.distill_m,
                            base.distill_v};
    static const char *tnames[8] = {"recon_m", "recon_v", "kl_m", "kl_v", "music", "video", "distill_m", "distill_v"};
    double term_err = 0.0;
    for (int i = 0; i < 8; i++) {
        double e = fabs(got[i] - want[i]) / fmax(fabs(want[i]), 1e-3); /* terms near 0: absolute below 1e-3 */
        term_err = fmax(term_err, e);
        CHECK_MSG(e <= LOSS_TOL, "%s: %s %.9g, reference %.9g", fc->name, tnames[i], got[i], want[i]);
    }
    CHECK(out.B == B);
    CHECK(out.k == (fc->match == MATCH_SOFTMAX ? 0 : (fc->k < B - 1 ? fc->k : B - 1)));

    /* central differences of the reference w.r.t. every parameter; the active set must not move */
    double *fd = NEWD(n);
    int64_t moved = 0;
    double min_kink = base_kink;
    for (int64_t i = 0; i < n; i++) {
        double save = theta[i], lp, lm;
        ref_terms tt;
        theta[i] = save + FD_H;
        lp = ref_loss(&c, theta, &tt, pat1);
        min_kink = fmin(min_kink, c.kink);
        moved += memcmp(pat0, pat1, (size_t)c.pat_cap) != 0;
        theta[i] = save - FD_H;
        lm = ref_loss(&c, theta, &tt, pat1);
        min_kink = fmin(min_kink, c.kink);
        moved += memcmp(pat0, pat1, (size_t)c.pat_cap) != 0;
        theta[i] = save;
        fd[i] = (lp - lm) / (2.0 * FD_H);
    }
    CHECK_MSG(moved == 0, "%s: %lld finite-difference evaluations crossed a kink", fc->name, (long long)moved);

    /* per tensor: ‖analytic − fd‖ / ‖fd‖ */
    double worst = 0.0;
    const char *worst_name = "";
    int64_t covered = 0;
    for (int ti = 0; ti < net_tensor_count(&net); ti++) {
        net_tensor t;
        OK(net_tensor_get(&net, ti, &t));
        if (t.kind != TENSOR_PARAM)
            continue;
        int64_t off = t.data - net.param_arena;
        double num = 0.0, den = 0.0;
        for (int64_t j = 0; j < t.count; j++) {
            double a = grad[off + j], b = fd[off + j];
            num += (a - b) * (a - b);
            den += b * b;
        }
        covered += t.count;
        double e = sqrt(num) / fmax(sqrt(den), 1e-12);
        note_tensor(t.name, e);
        if (!(e <= worst)) {
            worst = e;
            worst_name = t.name;
        }
        CHECK_MSG(e <= GRAD_TOL, "%s: d loss / d %s: error %.3g > %g (‖fd‖ %.3g, seed %llu)", fc->name, t.name, e,
                  GRAD_TOL, sqrt(den), (unsigned long long)test_seed);
    }
    CHECK_MSG(covered == n, "%s: the tensors cover %lld of %lld parameters", fc->name, (long long)covered,
              (long long)n);
    printf("%-38s loss %10.6f (err %.1e, terms %.1e)  grad %.2e (%s)  %lld params, %d redraws, kink %.1e\n",
           fc->name, out.loss, loss_err, term_err, worst, worst_name, (long long)n, tries, min_kink);

    free(fd);
    free(grad);
    for (int s = 0; s < 4; s++)
        ops->free(d_mk[s]);
    ops->free(d_xv);
    ops->free(d_xm);
    if (d_prior)
        ops->free(d_prior);
    ops->free(d_eps_m);
    ops->free(d_eps_v);
    model_workspace_free(&ws);
    free(xv); free(xm); free(prior); free(eps_m); free(eps_v);
    free(hp); free(theta); free(t_theta); free(t_stats); free(pat0); free(pat1);
    free(c.xv); free(c.xm); free(c.prior); free(c.eps_m); free(c.eps_v);
    free(c.mk_em); free(c.mk_ev); free(c.mk_rm); free(c.mk_rv);
    free(c.t_mu_m); free(c.t_lv_m); free(c.t_mu_v); free(c.t_lv_v);
    free(c.h); free(c.hl); free(c.mu_m); free(c.lv_m); free(c.mu_v); free(c.lv_v);
    free(c.z_m); free(c.z_v); free(c.zc); free(c.cvec); free(c.out_m); free(c.out_v); free(c.S); free(c.row);
    free(c.row_idx); free(c.sel);
    net_free(&net);
    if (fc->student)
        net_free(&teacher);
}

int main(void)
{
    const char *env = getenv("DEBCM_TEST_SEED");
    if (env && *env)
        test_seed = strtoull(env, NULL, 0);
    ops = debcm_ops_cpu();
    printf("test_loss_fd: backend %s, seed %llu, B %d, D_v %d, D_m %d, L %d, G %d, h %g\n", ops->name,
           (unsigned long long)test_seed, N_B, N_DV, N_DM, N_L, N_G, FD_H);
    static const fd_case cases[] = {
        {"teacher published k3", 0, MATCH_PUBLISHED, 3, DISTILL_PUBLISHED, 0, 0, 0},
        {"teacher published k40 (cap B-1)", 0, MATCH_PUBLISHED, 40, DISTILL_PUBLISHED, 0, 0, 0},
        {"teacher published factor .5 w_recon 2", 0, MATCH_PUBLISHED, 3, DISTILL_PUBLISHED, 0, 0.5f, 2.0f},
        {"teacher hinge k3", 0, MATCH_HINGE, 3, DISTILL_PUBLISHED, 0, 0, 0},
        {"teacher hinge k40 (cap B-1)", 0, MATCH_HINGE, 40, DISTILL_PUBLISHED, 0, 0, 0},
        {"teacher softmax", 0, MATCH_SOFTMAX, 3, DISTILL_PUBLISHED, 0, 0, 0},
        {"student distill published", 1, MATCH_PUBLISHED, 3, DISTILL_PUBLISHED, 0, 0, 0},
        {"student distill kl", 1, MATCH_PUBLISHED, 3, DISTILL_KL, 0, 0, 0},
        {"student distill published alpha 1", 1, MATCH_PUBLISHED, 3, DISTILL_PUBLISHED, 1.0f, 0, 0},
        {"student distill kl alpha 1", 1, MATCH_PUBLISHED, 3, DISTILL_KL, 1.0f, 0, 0},
        {"student published k40 (cap B-1)", 1, MATCH_PUBLISHED, 40, DISTILL_PUBLISHED, 0, 0, 0},
        {"student hinge k3", 1, MATCH_HINGE, 3, DISTILL_PUBLISHED, 0, 0, 0},
        {"student softmax", 1, MATCH_SOFTMAX, 3, DISTILL_PUBLISHED, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    printf("(err: |loss − reference| / max(|reference|, Σ|terms|); terms: worst relative term; grad: ‖analytic − fd‖ "
           "/ ‖fd‖, worst tensor; kink: closest kink argument seen)\n");
    printf("%-38s %12s\n", "tensor", "worst grad");
    for (int i = 0; i < ntstats; i++)
        printf("%-38s %12.3g\n", tstats[i].name, tstats[i].worst);
    return check_done();
}
