/* models/step.c — one training step of the DebCM teacher (SPEC §3) and student (SPEC §4), and Adam (SPEC §5).
 *
 * The forward composes the ops of engine/ops.h in the order of the published model: encoders (BN → dropout →
 * linear → normalize, §2), reparameterisation, the student's confounder layer, the cross decoders, the MSE, KL,
 * matching and (student) distillation terms against the frozen teacher in eval mode (its posteriors computed here,
 * or given with the batch when the trainer caches them). The backward walks it back;
 * every op's backward accumulates, so the gradient arena and the workspace's gradient part are zeroed once per
 * step and a tensor with several consumers (z_v feeds R_m and the matching term) simply receives each share. The
 * per-batch activations come from model_workspace, carved from one allocation sized for the largest batch. */
#include <stdint.h>
#include <string.h>

#include "engine/error.h"
#include "models/model.h"

#define TRY(call)                                                                                              \
    do {                                                                                                       \
        if ((call) != 0)                                                                                       \
            return -1;                                                                                         \
    } while (0)

/* ---- the workspace: one block, carved twice (first to size it, then to point into it) ------------------------- */

typedef struct {
    char *base; /* NULL while sizing */
    size_t off;
} carver;

static void *carve(carver *c, size_t bytes)
{
    size_t at = (c->off + 63) / 64 * 64;
    c->off = at + bytes;
    return c->base ? c->base + at : NULL;
}
#define CF(c, n) ((float *)carve((c), (size_t)(n) * sizeof(float)))

static void carve_enc(carver *c, enc_ws *e, int64_t B, int64_t D, int64_t L)
{
    e->bn = CF(c, B * D);
    e->xhat = CF(c, B * D);
    e->h = CF(c, B * D);
    e->mean = CF(c, D);
    e->rstd = CF(c, D);
    e->mask = carve(c, (size_t)(B * D));
    e->pre_mu = CF(c, B * L);
    e->mu = CF(c, B * L);
    e->n_mu = CF(c, B);
    e->pre_lv = CF(c, B * L);
    e->lv = CF(c, B * L);
    e->n_lv = CF(c, B);
}

static void carve_enc_grads(carver *c, enc_ws *e, int64_t B, int64_t D, int64_t L)
{
    e->dmu = CF(c, B * L);
    e->dlv = CF(c, B * L);
    e->d_pre_mu = CF(c, B * L);
    e->d_pre_lv = CF(c, B * L);
    e->dh = CF(c, B * D);
    e->dbn = CF(c, B * D);
}

static void carve_dec(carver *c, dec_ws *d, int64_t B, int64_t L, int64_t D)
{
    d->bn = CF(c, B * L);
    d->xhat = CF(c, B * L);
    d->h = CF(c, B * L);
    d->mean = CF(c, L);
    d->rstd = CF(c, L);
    d->mask = carve(c, (size_t)(B * L));
    d->pre = CF(c, B * D);
    d->out = CF(c, B * D);
}

static void carve_dec_grads(carver *c, dec_ws *d, int64_t B, int64_t L, int64_t D)
{
    d->dout = CF(c, B * D);
    d->dpre = CF(c, B * D);
    d->dh = CF(c, B * L);
    d->dbn = CF(c, B * L);
}

static void ws_layout(model_workspace *ws, char *base)
{
    carver c = {base, 0};
    int64_t B = ws->B_max, L = ws->dims.L, Dm = ws->dims.D_m, Dv = ws->dims.D_v, G = ws->dims.G;
    carve_enc(&c, &ws->em, B, Dm, L);
    carve_enc(&c, &ws->ev, B, Dv, L);
    carve_enc(&c, &ws->tm, B, Dm, L);
    carve_enc(&c, &ws->tv, B, Dv, L);
    carve_dec(&c, &ws->rm, B, L, Dm);
    carve_dec(&c, &ws->rv, B, L, Dv);
    ws->x_v = CF(&c, B * Dv);
    ws->x_m = CF(&c, B * Dm);
    ws->prior = CF(&c, B * (G > 0 ? G : 1));
    ws->eps_m = CF(&c, B * L);
    ws->eps_v = CF(&c, B * L);
    ws->z_m = CF(&c, B * L);
    ws->z_v = CF(&c, B * L);
    ws->zc = CF(&c, B * L);
    ws->pi = CF(&c, G > 0 ? G : 1);
    ws->c = CF(&c, L);
    ws->S = CF(&c, B * B);
    ws->sel_m = carve(&c, (size_t)(B * (B - 1 > 0 ? B - 1 : 1)) * sizeof(int32_t));
    ws->sel_v = carve(&c, (size_t)(B * (B - 1 > 0 ? B - 1 : 1)) * sizeof(int32_t));
    ws->scalars = CF(&c, 8);
    /* the gradient part, zeroed once per step */
    size_t d_begin = (c.off + 63) / 64 * 64;
    c.off = d_begin;
    carve_enc_grads(&c, &ws->em, B, Dm, L);
    carve_enc_grads(&c, &ws->ev, B, Dv, L);
    carve_dec_grads(&c, &ws->rm, B, L, Dm);
    carve_dec_grads(&c, &ws->rv, B, L, Dv);
    ws->dz_m = CF(&c, B * L);
    ws->dz_v = CF(&c, B * L);
    ws->dzc = CF(&c, B * L);
    ws->dS = CF(&c, B * B);
    ws->bytes = c.off;
    ws->d_bytes = c.off - d_begin;
    ws->d_begin = base ? base + d_begin : NULL;
}

int model_workspace_create(model_workspace *ws, const debcm_ops *ops, const model_dims *dims, int64_t B_max)
{
    memset(ws, 0, sizeof *ws);
    if (B_max < 1)
        return debcm_fail("model_workspace_create: B_max %lld < 1", (long long)B_max);
    ws->ops = ops;
    ws->dims = *dims;
    ws->B_max = B_max;
    ws_layout(ws, NULL);
    ws->block = ops->alloc(ws->bytes);
    if (!ws->block)
        return debcm_error_prefix("model_workspace_create (B_max %lld; a smaller --batch-size needs less memory)",
                                  (long long)B_max);
    ws_layout(ws, ws->block);
    return 0;
}

void model_workspace_free(model_workspace *ws)
{
    if (ws->ops && ws->block)
        ws->ops->free(ws->block);
    memset(ws, 0, sizeof *ws);
}

/* ---- building blocks (SPEC §2) ------------------------------------------------------------------------------- */

/* E: h = dropout(BN(x)); mu = normalize(W_mu h + b_mu); lv = normalize(W_lv h + b_lv). train = 0: running
 * statistics, no dropout (mask unused). */
static int encoder_forward(const debcm_ops *o, enc_ws *w, const enc_params *p, const bn_stats *s, const float *x,
                           const uint8_t *mask, int train, float pdrop, int64_t B, int64_t D, int64_t L)
{
    const float *h = w->bn;
    if (train) {
        TRY(o->bn_forward_train(w->bn, w->xhat, w->mean, w->rstd, s->mean, s->var, x, p->bn_w, p->bn_b, B, D));
        TRY(o->dropout_forward(w->h, w->bn, mask, pdrop, B * D));
        h = w->h;
    } else {
        TRY(o->bn_forward_eval(w->bn, x, p->bn_w, p->bn_b, s->mean, s->var, B, D));
    }
    TRY(o->linear_forward(w->pre_mu, h, p->mu_w, p->mu_b, B, D, L));
    TRY(o->l2norm_forward(w->mu, w->n_mu, w->pre_mu, B, L));
    TRY(o->linear_forward(w->pre_lv, h, p->lv_w, p->lv_b, B, D, L));
    TRY(o->l2norm_forward(w->lv, w->n_lv, w->pre_lv, B, L));
    return 0;
}

/* from w->dmu, w->dlv into the encoder's parameter gradients (x is data: no dx) */
static int encoder_backward(const debcm_ops *o, enc_ws *w, const enc_params *p, const enc_params *g,
                            const uint8_t *mask, float pdrop, int64_t B, int64_t D, int64_t L)
{
    TRY(o->l2norm_backward(w->d_pre_mu, w->dmu, w->mu, w->n_mu, B, L));
    TRY(o->linear_backward(w->dh, g->mu_w, g->mu_b, w->d_pre_mu, w->h, p->mu_w, B, D, L));
    TRY(o->l2norm_backward(w->d_pre_lv, w->dlv, w->lv, w->n_lv, B, L));
    TRY(o->linear_backward(w->dh, g->lv_w, g->lv_b, w->d_pre_lv, w->h, p->lv_w, B, D, L));
    TRY(o->dropout_backward(w->dbn, w->dh, mask, pdrop, B * D));
    TRY(o->bn_backward(NULL, g->bn_w, g->bn_b, w->dbn, w->xhat, p->bn_w, w->rstd, B, D));
    return 0;
}

/* R: out = relu(W dropout(BN(z)) + b), training mode */
static int decoder_forward(const debcm_ops *o, dec_ws *w, const dec_params *p, const bn_stats *s, const float *z,
                           const uint8_t *mask, float pdrop, int64_t B, int64_t L, int64_t D)
{
    TRY(o->bn_forward_train(w->bn, w->xhat, w->mean, w->rstd, s->mean, s->var, z, p->bn_w, p->bn_b, B, L));
    TRY(o->dropout_forward(w->h, w->bn, mask, pdrop, B * L));
    TRY(o->linear_forward(w->pre, w->h, p->w, p->b, B, L, D));
    TRY(o->relu_forward(w->out, w->pre, B * D));
    return 0;
}

/* from w->dout into the decoder's gradients and dz (accumulated) */
static int decoder_backward(const debcm_ops *o, dec_ws *w, float *dz, const dec_params *p, const dec_params *g,
                            const uint8_t *mask, float pdrop, int64_t B, int64_t L, int64_t D)
{
    TRY(o->relu_backward(w->dpre, w->dout, w->out, B * D));
    TRY(o->linear_backward(w->dh, g->w, g->b, w->dpre, w->h, p->w, B, L, D));
    TRY(o->dropout_backward(w->dbn, w->dh, mask, pdrop, B * L));
    TRY(o->bn_backward(dz, g->bn_w, g->bn_b, w->dbn, w->xhat, p->bn_w, w->rstd, B, L));
    return 0;
}

/* ---- the step ------------------------------------------------------------------------------------------------ */

/* Philox streams of the training draws: one per use, the network's role in the high bits (teacher and student
 * never share a stream), counter = step · 2³² (a layer draws at most B·D_v < 2³² values per step). */
enum { DRAW_EPS_M = 1, DRAW_EPS_V, DRAW_MASK_EM, DRAW_MASK_EV, DRAW_MASK_RM, DRAW_MASK_RV };
static debcm_draw step_draw(uint64_t seed, int student, int use, uint64_t step)
{
    debcm_draw d = {seed, ((uint64_t)(student ? 0x5354 : 0x5445) << 32) | (uint64_t)use, step << 32};
    return d;
}

int model_train_step_async(debcm_net *net, model_workspace *ws, const model_config *cfg, const debcm_net *teacher,
                           const model_batch *batch, const model_draws *replay, uint64_t seed, uint64_t step,
                           float *terms)
{
    const debcm_ops *o = net->ops;
    const int64_t B = batch->B, L = net->dims.L, Dm = net->dims.D_m, Dv = net->dims.D_v, G = net->dims.G;
    const int student = net->student;
    const float pd = cfg->dropout;
    if (!terms)
        return debcm_fail("model_train_step_async: NULL terms");
    if (B < 2)
        return debcm_fail("model_train_step: a batch of %lld row(s) cannot be trained (BatchNorm in training mode "
                          "needs at least 2 rows, SPEC §6): skip it",
                          (long long)B);
    if (B > ws->B_max)
        return debcm_fail("model_train_step: batch of %lld rows, the workspace holds %lld", (long long)B,
                          (long long)ws->B_max);
    if (ws->dims.D_v != Dv || ws->dims.D_m != Dm || ws->dims.L != L || ws->dims.G < G)
        return debcm_fail("model_train_step: workspace dimensions differ from the network's");
    if (student && (!teacher || teacher->student || teacher->dims.D_v != Dv || teacher->dims.D_m != Dm ||
                    teacher->dims.L != L))
        return debcm_fail("model_train_step: the student needs a frozen teacher of the same D_v, D_m, L");
    if (student && !batch->prior)
        return debcm_fail("model_train_step: the student needs the rows' user_prior");

    TRY(o->zero(net->grad_arena, (size_t)net->n_params * sizeof(float)));
    TRY(o->zero(ws->d_begin, ws->d_bytes));

    /* draws: recorded (replay) or Philox */
    const float *eps_m = ws->eps_m, *eps_v = ws->eps_v;
    const uint8_t *mk_em = ws->em.mask, *mk_ev = ws->ev.mask, *mk_rm = ws->rm.mask, *mk_rv = ws->rv.mask;
    if (replay) {
        eps_m = replay->eps_m;
        eps_v = replay->eps_v;
        mk_em = replay->mask_m_encoder;
        mk_ev = replay->mask_v_encoder;
        mk_rm = replay->mask_m_decoder;
        mk_rv = replay->mask_video_v_decoder;
        if (!eps_m || !eps_v || !mk_em || !mk_ev || !mk_rm || !mk_rv)
            return debcm_fail("model_train_step: replay needs all six recorded draws");
    } else {
        TRY(o->normal_draw(ws->eps_m, step_draw(seed, student, DRAW_EPS_M, step), B * L));
        TRY(o->normal_draw(ws->eps_v, step_draw(seed, student, DRAW_EPS_V, step), B * L));
        TRY(o->dropout_mask(ws->em.mask, step_draw(seed, student, DRAW_MASK_EM, step), pd, B * Dm));
        TRY(o->dropout_mask(ws->ev.mask, step_draw(seed, student, DRAW_MASK_EV, step), pd, B * Dv));
        TRY(o->dropout_mask(ws->rm.mask, step_draw(seed, student, DRAW_MASK_RM, step), pd, B * L));
        TRY(o->dropout_mask(ws->rv.mask, step_draw(seed, student, DRAW_MASK_RV, step), pd, B * L));
    }

    /* ---- forward ---- */
    const net_params *p = &net->p, *g = &net->g;
    TRY(encoder_forward(o, &ws->em, &p->m_enc, &net->s.m_enc, batch->x_m, mk_em, 1, pd, B, Dm, L));
    TRY(encoder_forward(o, &ws->ev, &p->v_enc, &net->s.v_enc, batch->x_v, mk_ev, 1, pd, B, Dv, L));
    TRY(o->reparam_forward(ws->z_m, ws->em.mu, ws->em.lv, eps_m, B * L));
    TRY(o->reparam_forward(ws->z_v, ws->ev.mu, ws->ev.lv, eps_v, B * L));
    const float *zm_match = ws->z_m; /* teacher: z_m; student: z'_m = W_c [c ; z_m] + b_c (SPEC §4) */
    float *dzm_match = ws->dz_m;
    if (student) { /* π = batch mean of user_prior (P = B rows): Monte-Carlo backdoor adjustment */
        TRY(o->confounder_forward(ws->zc, ws->pi, ws->c, ws->z_m, batch->prior, p->cemb, p->wc, p->bc, B, B, L,
                                  G));
        zm_match = ws->zc;
        dzm_match = ws->dzc;
    }
    TRY(decoder_forward(o, &ws->rm, &p->m_dec, &net->s.m_dec, ws->z_v, mk_rm, pd, B, L, Dm)); /* r_m = R_m(z_v) */
    TRY(decoder_forward(o, &ws->rv, &p->v_dec, &net->s.v_dec, zm_match, mk_rv, pd, B, L, Dv)); /* r_v = R_v(z'_m) */
    float *sc = terms; /* recon_m, recon_v, kl_m, kl_v, music, video, distill_m, distill_v */
    TRY(o->zero(sc, 8 * sizeof *sc));
    TRY(o->mse_forward(sc + 0, ws->rm.out, batch->x_m, B * Dm));
    TRY(o->mse_forward(sc + 1, ws->rv.out, batch->x_v, B * Dv));
    TRY(o->kl_forward(sc + 2, ws->em.mu, ws->em.lv, B, L));
    TRY(o->kl_forward(sc + 3, ws->ev.mu, ws->ev.lv, B, L));
    match_cfg mc = cfg->match;
    TRY(o->match_forward(sc + 4, sc + 5, ws->S, ws->sel_m, ws->sel_v, zm_match, ws->z_v, &mc, B, L));
    model_teacher_post tp = {ws->tm.mu, ws->tm.lv, ws->tv.mu, ws->tv.lv};
    if (student && batch->teacher_post) { /* computed once per run by the caller */
        tp = *batch->teacher_post;
        if (!tp.mu_m || !tp.lv_m || !tp.mu_v || !tp.lv_v)
            return debcm_fail("model_train_step: teacher posteriors given without all four tensors");
    } else if (student) { /* the frozen teacher in eval mode: running statistics, no dropout, no noise (SPEC §4) */
        TRY(encoder_forward(o, &ws->tm, &teacher->p.m_enc, &teacher->s.m_enc, batch->x_m, NULL, 0, pd, B, Dm, L));
        TRY(encoder_forward(o, &ws->tv, &teacher->p.v_enc, &teacher->s.v_enc, batch->x_v, NULL, 0, pd, B, Dv, L));
    }
    if (student) {
        TRY(o->distill_forward(sc + 6, ws->em.mu, ws->em.lv, tp.mu_m, tp.lv_m, cfg->distill, B, L));
        TRY(o->distill_forward(sc + 7, ws->ev.mu, ws->ev.lv, tp.mu_v, tp.lv_v, cfg->distill, B, L));
    }
    const float sign = match_loss_sign(mc.variant); /* faithful: −factor·music − video (SPEC §3) */

    /* ---- backward: d loss / d every parameter ---- */
    TRY(o->match_backward(dzm_match, ws->dz_v, ws->dS, sign * cfg->factor, sign, ws->S, ws->sel_m, ws->sel_v,
                          zm_match, ws->z_v, &mc, B, L));
    TRY(o->mse_backward(ws->rm.dout, cfg->w_recon, ws->rm.out, batch->x_m, B * Dm));
    TRY(o->mse_backward(ws->rv.dout, cfg->w_recon, ws->rv.out, batch->x_v, B * Dv));
    TRY(decoder_backward(o, &ws->rm, ws->dz_v, &p->m_dec, &g->m_dec, mk_rm, pd, B, L, Dm));
    TRY(decoder_backward(o, &ws->rv, dzm_match, &p->v_dec, &g->v_dec, mk_rv, pd, B, L, Dv));
    if (student) /* π is data: no gradient to the prior */
        TRY(o->confounder_backward(ws->dz_m, g->cemb, g->wc, g->bc, ws->dzc, ws->pi, ws->c, ws->z_m, p->wc, B, L,
                                   G));
    TRY(o->reparam_backward(ws->em.dmu, ws->em.dlv, ws->dz_m, ws->em.lv, eps_m, B * L));
    TRY(o->reparam_backward(ws->ev.dmu, ws->ev.dlv, ws->dz_v, ws->ev.lv, eps_v, B * L));
    TRY(o->kl_backward(ws->em.dmu, ws->em.dlv, 1.0f, ws->em.mu, ws->em.lv, B, L));
    TRY(o->kl_backward(ws->ev.dmu, ws->ev.dlv, 1.0f, ws->ev.mu, ws->ev.lv, B, L));
    if (student) { /* only the student side gets gradients; the teacher is frozen */
        TRY(o->distill_backward(ws->em.dmu, ws->em.dlv, cfg->alpha, ws->em.mu, ws->em.lv, tp.mu_m, tp.lv_m,
                                cfg->distill, B, L));
        TRY(o->distill_backward(ws->ev.dmu, ws->ev.dlv, cfg->alpha, ws->ev.mu, ws->ev.lv, tp.mu_v, tp.lv_v,
                                cfg->distill, B, L));
    }
    TRY(encoder_backward(o, &ws->em, &p->m_enc, &g->m_enc, mk_em, pd, B, Dm, L));
    TRY(encoder_backward(o, &ws->ev, &p->v_enc, &g->v_enc, mk_ev, pd, B, Dv, L));
    return 0;
}

void model_losses_from_terms(model_losses *out, const float terms[MODEL_LOSS_TERMS], const model_config *cfg,
                             int student, int64_t B)
{
    const float *h = terms;
    const float sign = match_loss_sign(cfg->match.variant); /* faithful: −factor·music − video (SPEC §3) */
    memset(out, 0, sizeof *out);
    out->B = B;
    out->k = cfg->match.variant == MATCH_SOFTMAX ? 0 : match_k_eff(cfg->match.k, B);
    out->recon_m = h[0];
    out->recon_v = h[1];
    out->recon = (double)h[0] + h[1];
    out->kl_m = h[2];
    out->kl_v = h[3];
    out->music = h[4];
    out->video = h[5];
    out->distill_m = h[6];
    out->distill_v = h[7];
    out->loss = (double)sign * cfg->factor * out->music + (double)sign * out->video + out->kl_m + out->kl_v +
                (double)cfg->w_recon * out->recon;
    if (student) /* loss_student = − music − video + α·distill + KL_m + KL_v + recon (SPEC §4) */
        out->loss += (double)cfg->alpha * (out->distill_m + out->distill_v);
}

int model_train_step(debcm_net *net, model_workspace *ws, const model_config *cfg, const debcm_net *teacher,
                     const model_batch *batch, const model_draws *replay, uint64_t seed, uint64_t step,
                     model_losses *out)
{
    float h[MODEL_LOSS_TERMS];
    memset(out, 0, sizeof *out);
    if (model_train_step_async(net, ws, cfg, teacher, batch, replay, seed, step, ws->scalars) ||
        net->ops->download(h, ws->scalars, sizeof h))
        return -1;
    model_losses_from_terms(out, h, cfg, net->student, batch->B);
    return 0;
}

int model_adam_step(debcm_net *net, const model_config *cfg)
{
    /* SPEC §5: every trainable parameter, never the running statistics (they live in their own arena) */
    adam_cfg a = {cfg->lr, cfg->beta1, cfg->beta2, cfg->adam_eps, cfg->weight_decay};
    net->adam_t++;
    return net->ops->adam_update(net->param_arena, net->adam_m_arena, net->adam_v_arena, net->grad_arena, &a,
                                 net->adam_t, net->n_params);
}
