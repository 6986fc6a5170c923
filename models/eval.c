/* models/eval.c — evaluation mode of the DebCM networks: embeddings and the two ranking protocols.
 *
 * Embeddings run the encoders in eval mode (running BatchNorm statistics, no dropout, z = mu; SPEC §2) over host
 * feature matrices, chunk by chunk through the workspace (each chunk uploaded, so a CUDA backend works the same).
 * The student's music embedding adds the confounder layer with c̄ from user_prior_mean (SPEC §4). The drivers then
 * score and rank through the ops table: eval_negatives for the 100-negative protocol (row = [positive, negatives],
 * weighted Recall@K / NDCG@K, SPEC §4) and eval_full_rank for the teacher's ranking over all musics (SPEC §3).
 * Ties count against the positive (the ops' rule). */
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "models/model.h"

#define TRY(call)                                                                                              \
    do {                                                                                                       \
        if ((call) != 0)                                                                                       \
            return -1;                                                                                         \
    } while (0)

/* mu (eval mode) of rows [0, n) of the host matrix x [*, D] into dst [n, L]; n ≤ B_max. dst_lv ≠ NULL: also the
 * logvar head into dst_lv [n, L] (backend memory) */
static int encode_chunk(const debcm_net *net, model_workspace *ws, int modality, float *dst, float *dst_lv,
                        const float *x, int64_t n)
{
    const debcm_ops *o = net->ops;
    int64_t L = net->dims.L, D = modality == MODEL_MUSIC ? net->dims.D_m : net->dims.D_v;
    const enc_params *p = modality == MODEL_MUSIC ? &net->p.m_enc : &net->p.v_enc;
    const bn_stats *s = modality == MODEL_MUSIC ? &net->s.m_enc : &net->s.v_enc;
    enc_ws *w = modality == MODEL_MUSIC ? &ws->tm : &ws->tv; /* the eval-mode encoder buffers */
    float *xin = modality == MODEL_MUSIC ? ws->x_m : ws->x_v;
    TRY(o->upload(xin, x, (size_t)(n * D) * sizeof *x));
    TRY(o->bn_forward_eval(w->bn, xin, p->bn_w, p->bn_b, s->mean, s->var, n, D));
    TRY(o->linear_forward(w->pre_mu, w->bn, p->mu_w, p->mu_b, n, D, L));
    TRY(o->l2norm_forward(dst, w->n_mu, w->pre_mu, n, L)); /* mu = normalize(W_mu BN(x) + b_mu) */
    if (dst_lv) {
        TRY(o->linear_forward(w->pre_lv, w->bn, p->lv_w, p->lv_b, n, D, L));
        TRY(o->l2norm_forward(dst_lv, w->n_lv, w->pre_lv, n, L));
    }
    return 0;
}

static int embed_chunk(const debcm_net *net, model_workspace *ws, int modality, float *dst, const float *x,
                       int64_t n)
{
    return encode_chunk(net, ws, modality, dst, NULL, x, n);
}

int model_posteriors(const debcm_net *net, model_workspace *ws, int modality, float *mu, float *lv, const float *x,
                     int64_t N)
{
    const debcm_ops *o = net->ops;
    int64_t L = net->dims.L, D = modality == MODEL_MUSIC ? net->dims.D_m : net->dims.D_v;
    enc_ws *w = modality == MODEL_MUSIC ? &ws->tm : &ws->tv;
    for (int64_t r = 0; r < N; r += ws->B_max) {
        int64_t n = N - r < ws->B_max ? N - r : ws->B_max;
        if (encode_chunk(net, ws, modality, w->mu, w->lv, x + r * D, n) ||
            o->download(mu + r * L, w->mu, (size_t)(n * L) * sizeof *mu) ||
            o->download(lv + r * L, w->lv, (size_t)(n * L) * sizeof *lv))
            return debcm_error_prefix("model_posteriors (rows %lld..%lld)", (long long)r, (long long)(r + n));
    }
    return 0;
}

int model_embed(const debcm_net *net, model_workspace *ws, int modality, float *out, const float *x, int64_t N)
{
    int64_t L = net->dims.L, D = modality == MODEL_MUSIC ? net->dims.D_m : net->dims.D_v;
    for (int64_t r = 0; r < N; r += ws->B_max) {
        int64_t n = N - r < ws->B_max ? N - r : ws->B_max;
        if (embed_chunk(net, ws, modality, out + r * L, x + r * D, n))
            return debcm_error_prefix("model_embed (rows %lld..%lld)", (long long)r, (long long)(r + n));
    }
    return 0;
}

int model_embed_music_student(const debcm_net *net, model_workspace *ws, float *out, const float *x, int64_t N,
                              const float *prior_mean)
{
    const debcm_ops *o = net->ops;
    int64_t L = net->dims.L, G = net->dims.G;
    if (!net->student)
        return debcm_fail("model_embed_music_student: the network is not a student");
    TRY(o->upload(ws->prior, prior_mean, (size_t)G * sizeof *prior_mean));
    for (int64_t r = 0; r < N; r += ws->B_max) {
        int64_t n = N - r < ws->B_max ? N - r : ws->B_max;
        TRY(embed_chunk(net, ws, MODEL_MUSIC, ws->z_m, x + r * net->dims.D_m, n));
        /* e_m = W_c [c̄ ; mu_m] + b_c, c̄ from the one-row prior user_prior_mean (P = 1, SPEC §4) */
        TRY(o->confounder_forward(out + r * L, ws->pi, ws->c, ws->z_m, ws->prior, net->p.cemb, net->p.wc,
                                  net->p.bc, n, 1, L, G));
    }
    return 0;
}

/* Check the cut-offs and clear the sums of a result about to be accumulated over R rows. */
static int eval_result_begin(model_eval_result *res, int64_t R)
{
    if (res->nK < 1 || res->nK > MODEL_EVAL_MAX_K)
        return debcm_fail("model evaluation: %d cut-offs K (1..%d)", res->nK, MODEL_EVAL_MAX_K);
    memset(res->recall, 0, sizeof res->recall);
    memset(res->ndcg, 0, sizeof res->ndcg);
    res->rows = R;
    res->tie_rows = 0;
    res->rows_positive_in_negatives = 0;
    return 0;
}

/* Rows scored at once against all Nm musics: the workspace's batch, and at most 2^26 scores. */
static int64_t eval_chunk_rows(const model_workspace *ws, int64_t Nm)
{
    int64_t chunk = ws->B_max;
    while (chunk > 1 && chunk * Nm > ((int64_t)1 << 26))
        chunk /= 2;
    return chunk;
}

int model_eval_negatives(const debcm_net *net, model_workspace *ws, const float *v_feat, int64_t Nv,
                         const float *m_feat, int64_t Nm, const float *prior_mean, const eval_split *rows,
                         model_eval_result *res)
{
    const debcm_ops *o = net->ops;
    const int64_t L = net->dims.L, Dv = net->dims.D_v, R = rows->n, C = 1 + rows->n_neg;
    TRY(eval_result_begin(res, R));
    const int64_t chunk = eval_chunk_rows(ws, Nm);
    float *e_m = o->alloc((size_t)(Nm * L) * sizeof(float));         /* [Nm, L] music embeddings */
    float *mu_v = o->alloc((size_t)(chunk * L) * sizeof(float));      /* [chunk, L] */
    float *full = o->alloc((size_t)(chunk * Nm) * sizeof(float));     /* [chunk, Nm] mu_v · e_mᵀ */
    float *cand = o->alloc((size_t)(chunk * C) * sizeof(float));      /* [chunk, C] gathered scores */
    float *wdev = o->alloc((size_t)chunk * sizeof(float));
    float *h_full = malloc((size_t)(chunk * Nm) * sizeof(float));
    float *h_cand = malloc((size_t)(chunk * C) * sizeof(float));
    float *h_x = malloc((size_t)(chunk * Dv) * sizeof(float));
    float *h_w = malloc((size_t)chunk * sizeof(float));
    int rc = -1;
    if (!e_m || !mu_v || !full || !cand || !wdev || !h_full || !h_cand || !h_x || !h_w) {
        debcm_fail("model_eval_negatives: out of memory (%lld musics, chunk %lld)", (long long)Nm, (long long)chunk);
        goto done;
    }
    if (model_embed_music_student(net, ws, e_m, m_feat, Nm, prior_mean))
        goto done;
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
        int64_t n = R - r0 < chunk ? R - r0 : chunk;
        for (int64_t r = 0; r < n; r++) { /* gather the rows' videos */
            int64_t vid = rows->video[r0 + r];
            if (vid < 0 || vid >= Nv) {
                debcm_fail("model_eval_negatives: row %lld: video %lld outside [0, %lld)", (long long)(r0 + r),
                           (long long)vid, (long long)Nv);
                goto done;
            }
            memcpy(h_x + r * Dv, v_feat + vid * Dv, (size_t)Dv * sizeof *h_x);
            h_w[r] = rows->weight[r0 + r];
        }
        if (embed_chunk(net, ws, MODEL_VIDEO, mu_v, h_x, n) ||
            o->linear_forward(full, mu_v, e_m, NULL, n, L, Nm) ||
            o->download(h_full, full, (size_t)(n * Nm) * sizeof *h_full))
            goto done;
        for (int64_t r = 0; r < n; r++) { /* candidates = [positive, neg_1 … neg_100] */
            int64_t pos = rows->positive[r0 + r];
            const int64_t *neg = rows->negatives + (r0 + r) * rows->n_neg;
            int pos_in_neg = 0;
            for (int64_t j = 0; j < C; j++) {
                int64_t m = j == 0 ? pos : neg[j - 1];
                if (m < 0 || m >= Nm) {
                    debcm_fail("model_eval_negatives: row %lld: music %lld outside [0, %lld)", (long long)(r0 + r),
                               (long long)m, (long long)Nm);
                    goto done;
                }
                pos_in_neg |= j > 0 && m == pos;
                h_cand[r * C + j] = h_full[r * Nm + m];
            }
            res->rows_positive_in_negatives += pos_in_neg;
        }
        double rec[MODEL_EVAL_MAX_K], ndcg[MODEL_EVAL_MAX_K];
        int64_t ties = 0;
        if (o->upload(cand, h_cand, (size_t)(n * C) * sizeof *h_cand) ||
            o->upload(wdev, h_w, (size_t)n * sizeof *h_w) ||
            o->eval_negatives(rec, ndcg, &ties, cand, wdev, res->K, res->nK, n, C))
            goto done;
        for (int i = 0; i < res->nK; i++) { /* weighted sums: additive over chunks */
            res->recall[i] += rec[i];
            res->ndcg[i] += ndcg[i];
        }
        res->tie_rows += ties;
    }
    rc = 0;
done:
    if (e_m) o->free(e_m);
    if (mu_v) o->free(mu_v);
    if (full) o->free(full);
    if (cand) o->free(cand);
    if (wdev) o->free(wdev);
    free(h_full);
    free(h_cand);
    free(h_x);
    free(h_w);
    return rc;
}

int model_eval_full_rank(const debcm_net *net, model_workspace *ws, const float *v_feat, int64_t Nv,
                         const float *m_feat, int64_t Nm, const pair_list *pairs, model_eval_result *res)
{
    const debcm_ops *o = net->ops;
    const int64_t L = net->dims.L, Dv = net->dims.D_v, R = pairs->n;
    TRY(eval_result_begin(res, R));
    const int64_t chunk = eval_chunk_rows(ws, Nm);
    float *mu_m = o->alloc((size_t)(Nm * L) * sizeof(float));
    float *mu_v = o->alloc((size_t)(chunk * L) * sizeof(float));
    float *scores = o->alloc((size_t)(chunk * Nm) * sizeof(float));
    int64_t *truth = o->alloc((size_t)chunk * sizeof(int64_t));
    float *h_x = malloc((size_t)(chunk * Dv) * sizeof(float));
    int64_t *h_t = malloc((size_t)chunk * sizeof(int64_t));
    int rc = -1;
    if (!mu_m || !mu_v || !scores || !truth || !h_x || !h_t) {
        debcm_fail("model_eval_full_rank: out of memory (%lld musics)", (long long)Nm);
        goto done;
    }
    if (model_embed(net, ws, MODEL_MUSIC, mu_m, m_feat, Nm))
        goto done;
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
        int64_t n = R - r0 < chunk ? R - r0 : chunk;
        for (int64_t r = 0; r < n; r++) {
            int64_t vid = pairs->video[r0 + r], mus = pairs->music[r0 + r];
            if (vid < 0 || vid >= Nv || mus < 0 || mus >= Nm) {
                debcm_fail("model_eval_full_rank: pair %lld: [%lld, %lld] outside [0, %lld) × [0, %lld)",
                           (long long)(r0 + r), (long long)vid, (long long)mus, (long long)Nv, (long long)Nm);
                goto done;
            }
            memcpy(h_x + r * Dv, v_feat + vid * Dv, (size_t)Dv * sizeof *h_x);
            h_t[r] = mus;
        }
        double rec[MODEL_EVAL_MAX_K];
        /* score = mu_v · mu_m over ALL musics (SPEC §3) */
        if (embed_chunk(net, ws, MODEL_VIDEO, mu_v, h_x, n) || o->linear_forward(scores, mu_v, mu_m, NULL, n, L, Nm) ||
            o->upload(truth, h_t, (size_t)n * sizeof *h_t) ||
            o->eval_full_rank(rec, scores, truth, res->K, res->nK, n, Nm))
            goto done;
        for (int i = 0; i < res->nK; i++)
            res->recall[i] += rec[i] * (double)n; /* fractions: weight by the chunk's rows */
    }
    for (int i = 0; i < res->nK; i++)
        res->recall[i] = R > 0 ? res->recall[i] / (double)R : 0.0;
    rc = 0;
done:
    if (mu_m) o->free(mu_m);
    if (mu_v) o->free(mu_v);
    if (scores) o->free(scores);
    if (truth) o->free(truth);
    free(h_x);
    free(h_t);
    return rc;
}
