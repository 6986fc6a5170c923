/* models/eval_full.c — the student's full ranking, its genre exposure and top-K recommendation (see eval_full.h).
 *
 * The scores of a block of rows are one linear_forward of the rows' video embeddings against every music
 * embedding (backend memory), downloaded and ranked on the host, one row per OpenMP iteration (rows are
 * independent; the sums over rows are then taken in row order, so the numbers do not depend on the thread
 * count). The blocks are those of model_eval_negatives (models/eval.c: the workspace's batch, halved until a block
 * holds at most 2^26 scores) and each block's video embeddings one model_embed call of at most B_max rows, the
 * same single chunk eval.c's embed_chunk computes: the full ranking of a row therefore sees exactly the scores the
 * 100-negative protocol sees, and its rank among all musics can never be better than its rank among its
 * negatives (when those are distinct and exclude the positive). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "models/eval_full.h"

/* Rows scored at once against all Nm musics: as models/eval.c's eval_chunk_rows (keep the two equal, see above). */
static int64_t full_chunk_rows(const model_workspace *ws, int64_t Nm)
{
    int64_t chunk = ws->B_max;
    while (chunk > 1 && chunk * Nm > ((int64_t)1 << 26))
        chunk /= 2;
    return chunk;
}

int model_embed_music_eval(const debcm_net *net, model_workspace *ws, float *out, const float *x, int64_t N,
                           const float *prior_mean)
{
    if (net->student)
        return model_embed_music_student(net, ws, out, x, N, prior_mean); /* e_m, SPEC §4 */
    return model_embed(net, ws, MODEL_MUSIC, out, x, N);                   /* mu_m, SPEC §3 */
}

/* ---- top-K selection -------------------------------------------------------------------------------------------- */

/* 1 when (sa, ia) ranks before (sb, ib): the greater score, NaN last, equal scores by the lower index */
static int ranks_before(float sa, int64_t ia, float sb, int64_t ib)
{
    int na = isnan(sa), nb = isnan(sb);
    if (na != nb)
        return nb;
    if (!na && sa != sb)
        return sa > sb;
    return ia < ib;
}

/* heap[0] is the WORST kept element: sift element i down */
static void heap_sift_down(int64_t *heap, int64_t n, int64_t i, const float *s)
{
    for (;;) {
        int64_t w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && ranks_before(s[heap[w]], heap[w], s[heap[l]], heap[l]))
            w = l;
        if (r < n && ranks_before(s[heap[w]], heap[w], s[heap[r]], heap[r]))
            w = r;
        if (w == i)
            return;
        int64_t t = heap[i];
        heap[i] = heap[w];
        heap[w] = t;
        i = w;
    }
}

void model_top_k(int64_t *idx, float *score, const float *scores, int64_t N, int64_t K)
{
    if (K > N)
        K = N;
    if (K <= 0)
        return;
    /* a heap of the K best so far, its worst at the root: O(N log K) */
    for (int64_t j = 0; j < K; j++) {
        idx[j] = j;
    }
    for (int64_t i = K / 2 - 1; i >= 0; i--)
        heap_sift_down(idx, K, i, scores);
    for (int64_t j = K; j < N; j++)
        if (ranks_before(scores[j], j, scores[idx[0]], idx[0])) {
            idx[0] = j;
            heap_sift_down(idx, K, 0, scores);
        }
    /* heap sort: the worst goes last */
    for (int64_t n = K; n > 1; n--) {
        int64_t t = idx[0];
        idx[0] = idx[n - 1];
        idx[n - 1] = t;
        heap_sift_down(idx, n - 1, 0, scores);
    }
    if (score)
        for (int64_t j = 0; j < K; j++)
            score[j] = scores[idx[j]];
}

/* ---- the shared scoring loop ------------------------------------------------------------------------------------ */

/* Backend and host buffers of one block of rows scored against Nm musics. */
typedef struct {
    int64_t chunk;
    float *mu_v;   /* backend [chunk, L] */
    float *full;   /* backend [chunk, Nm] */
    float *h_full; /* host [chunk, Nm] */
    float *h_x;    /* host [chunk, D_v] */
} score_blocks;

static void score_blocks_free(const debcm_ops *o, score_blocks *b)
{
    if (b->mu_v)
        o->free(b->mu_v);
    if (b->full)
        o->free(b->full);
    free(b->h_full);
    free(b->h_x);
    memset(b, 0, sizeof *b);
}

static int score_blocks_create(const debcm_net *net, model_workspace *ws, int64_t Nm, score_blocks *b,
                               const char *who)
{
    const debcm_ops *o = net->ops;
    const int64_t L = net->dims.L, Dv = net->dims.D_v;
    memset(b, 0, sizeof *b);
    b->chunk = full_chunk_rows(ws, Nm);
    b->mu_v = o->alloc((size_t)(b->chunk * L) * sizeof(float));
    b->full = o->alloc((size_t)(b->chunk * Nm) * sizeof(float));
    b->h_full = malloc((size_t)(b->chunk * Nm) * sizeof(float));
    b->h_x = malloc((size_t)(b->chunk * Dv) * sizeof(float));
    if (!b->mu_v || !b->full || !b->h_full || !b->h_x) {
        score_blocks_free(o, b);
        return debcm_fail("%s: out of memory (%lld musics, blocks of %lld rows)", who, (long long)Nm,
                          (long long)b->chunk);
    }
    return 0;
}

/* Scores of the n ≤ chunk video rows staged in b->h_x against e_m [Nm, L] into b->h_full [n, Nm]. */
static int score_block(const debcm_net *net, model_workspace *ws, score_blocks *b, const float *e_m, int64_t Nm,
                       int64_t n)
{
    const debcm_ops *o = net->ops;
    const int64_t L = net->dims.L;
    if (model_embed(net, ws, MODEL_VIDEO, b->mu_v, b->h_x, n) ||
        o->linear_forward(b->full, b->mu_v, e_m, NULL, n, L, Nm) || /* mu_v · e_mᵀ */
        o->download(b->h_full, b->full, (size_t)(n * Nm) * sizeof *b->h_full))
        return -1;
    return 0;
}

int model_recommend(const debcm_net *net, model_workspace *ws, const float *e_m, int64_t Nm, const float *x,
                    int64_t n, int64_t K, int64_t *top, float *top_score)
{
    if (Nm < 1 || K < 1 || K > Nm)
        return debcm_fail("model_recommend: k = %lld, expected 1 .. %lld (the number of musics)", (long long)K,
                          (long long)Nm);
    const int64_t Dv = net->dims.D_v;
    score_blocks b;
    if (score_blocks_create(net, ws, Nm, &b, "model_recommend"))
        return -1;
    int rc = -1;
    for (int64_t r0 = 0; r0 < n; r0 += b.chunk) {
        int64_t m = n - r0 < b.chunk ? n - r0 : b.chunk;
        memcpy(b.h_x, x + r0 * Dv, (size_t)(m * Dv) * sizeof *b.h_x);
        if (score_block(net, ws, &b, e_m, Nm, m)) {
            debcm_error_prefix("model_recommend (rows %lld..%lld)", (long long)r0, (long long)(r0 + m));
            goto done;
        }
#pragma omp parallel for schedule(static) if (m > 1)
        for (int64_t r = 0; r < m; r++)
            model_top_k(top + (r0 + r) * K, top_score ? top_score + (r0 + r) * K : NULL, b.h_full + r * Nm, Nm, K);
    }
    rc = 0;
done:
    score_blocks_free(net->ops, &b);
    return rc;
}

/* ---- genres ----------------------------------------------------------------------------------------------------- */

int model_music_genres(int32_t *genre, int64_t Nm, const ugc_train *train)
{
    const int64_t G = train->G;
    int64_t *count = calloc((size_t)(Nm * (G > 0 ? G : 1)), sizeof *count); /* [Nm, G] */
    if (!count && Nm > 0)
        return debcm_fail("model_music_genres: out of memory (%lld musics, %lld genres)", (long long)Nm,
                          (long long)G);
    for (int64_t r = 0; r < train->n; r++) {
        int64_t m = train->music[r];
        if (m < 0 || m >= Nm) {
            free(count);
            return debcm_fail("model_music_genres: training row %lld, field 'music': %lld outside [0, %lld)",
                              (long long)r, (long long)m, (long long)Nm);
        }
        for (int64_t j = train->genre_offset[r]; j < train->genre_offset[r + 1]; j++) {
            int32_t g = train->genre_ids[j];
            if (g >= 0 && g < G) /* an id outside [0, G) is a warning of the loader, not a genre */
                count[m * G + g]++;
        }
    }
    for (int64_t m = 0; m < Nm; m++) {
        int32_t best = (int32_t)G; /* unknown */
        int64_t best_n = 0;
        for (int64_t g = 0; g < G; g++)
            if (count[m * G + g] > best_n) { /* strictly more: a tie keeps the lower id */
                best_n = count[m * G + g];
                best = (int32_t)g;
            }
        genre[m] = best;
    }
    free(count);
    return 0;
}

static int exposure_alloc(model_genre_exposure *e, int64_t G)
{
    size_t n = (size_t)(G + 1);
    e->G = G;
    e->musics = calloc(n, sizeof *e->musics);
    e->top_k = calloc(n, sizeof *e->top_k);
    e->positives = calloc(n, sizeof *e->positives);
    e->share_top_k = calloc(n, sizeof *e->share_top_k);
    e->share_positives = calloc(n, sizeof *e->share_positives);
    e->ratio = calloc(n, sizeof *e->ratio);
    if (!e->musics || !e->top_k || !e->positives || !e->share_top_k || !e->share_positives || !e->ratio)
        return debcm_fail("genre exposure: out of memory (%lld genres)", (long long)G);
    return 0;
}

static void exposure_free(model_genre_exposure *e)
{
    free(e->musics);
    free(e->top_k);
    free(e->positives);
    free(e->share_top_k);
    free(e->share_positives);
    free(e->ratio);
    memset(e, 0, sizeof *e);
}

/* ---- full ranking ----------------------------------------------------------------------------------------------- */

static const int32_t default_K[4] = {10, 15, 20, 25};

void model_full_result_init(model_full_result *r)
{
    memset(r, 0, sizeof *r);
    r->nK = 4;
    memcpy(r->K, default_K, sizeof default_K);
    r->exposure_k = 25;
}

void model_full_result_free(model_full_result *r) { exposure_free(&r->exposure); }

/* What one row contributes, computed in parallel and summed in row order. */
typedef struct {
    int64_t rank, rank_neg;
    uint8_t tie, pos_in_neg;
} row_rank;

int model_eval_full_student(const debcm_net *net, model_workspace *ws, const float *v_feat, int64_t Nv,
                            const float *m_feat, int64_t Nm, const float *prior_mean, const eval_split *rows,
                            const ugc_train *train, model_full_result *res)
{
    static const char who[] = "model_eval_full_student";
    const debcm_ops *o = net->ops;
    const int64_t L = net->dims.L, Dv = net->dims.D_v, R = rows->n, NN = rows->n_neg;
    if (!net->student)
        return debcm_fail("%s: the network is not a student", who);
    if (res->nK < 1 || res->nK > MODEL_EVAL_MAX_K)
        return debcm_fail("%s: %d cut-offs K (1..%d)", who, res->nK, MODEL_EVAL_MAX_K);
    for (int i = 0; i < res->nK; i++)
        if (res->K[i] < 1)
            return debcm_fail("%s: cut-off K = %d (expected ≥ 1)", who, (int)res->K[i]);
    if (res->exposure_k < 0 || Nm < 1)
        return debcm_fail("%s: exposure k = %lld over %lld musics", who, (long long)res->exposure_k,
                          (long long)Nm);
    /* clear the outputs (the inputs stay) */
    exposure_free(&res->exposure);
    res->rows = R;
    res->musics = Nm;
    res->tie_rows = res->rows_positive_in_negatives = 0;
    res->weight_sum = res->mrr_w = res->mrr = 0.0;
    memset(res->recall_w, 0, sizeof res->recall_w);
    memset(res->ndcg_w, 0, sizeof res->ndcg_w);
    memset(res->recall, 0, sizeof res->recall);
    memset(res->ndcg, 0, sizeof res->ndcg);
    const int64_t k = res->exposure_k < Nm ? res->exposure_k : Nm;

    score_blocks b;
    if (score_blocks_create(net, ws, Nm, &b, who))
        return -1;
    const int64_t chunk = b.chunk;
    float *e_m = o->alloc((size_t)(Nm * L) * sizeof(float)); /* [Nm, L] music embeddings e_m */
    row_rank *rr = malloc((size_t)chunk * sizeof *rr);
    int64_t *top = k ? malloc((size_t)(chunk * k) * sizeof *top) : NULL;
    int32_t *genre = k ? malloc((size_t)Nm * sizeof *genre) : NULL;
    int rc = -1;
    if (!e_m || !rr || (k && (!top || !genre))) {
        debcm_fail("%s: out of memory (%lld musics)", who, (long long)Nm);
        goto done;
    }
    if (k) {
        if (model_music_genres(genre, Nm, train) || exposure_alloc(&res->exposure, train->G))
            goto done;
        res->exposure.k = k;
        res->exposure.rows = R;
        for (int64_t m = 0; m < Nm; m++)
            res->exposure.musics[genre[m]]++;
    }
    if (model_embed_music_student(net, ws, e_m, m_feat, Nm, prior_mean))
        goto done;
    for (int64_t r0 = 0; r0 < R; r0 += chunk) {
        int64_t n = R - r0 < chunk ? R - r0 : chunk;
        for (int64_t r = 0; r < n; r++) { /* the rows' videos, and every id checked before it indexes anything */
            int64_t row = r0 + r, vid = rows->video[row], pos = rows->positive[row];
            if (vid < 0 || vid >= Nv) {
                debcm_fail("%s: test row %lld, field 'video': %lld outside [0, %lld)", who, (long long)row,
                           (long long)vid, (long long)Nv);
                goto done;
            }
            if (pos < 0 || pos >= Nm) {
                debcm_fail("%s: test row %lld, field 'positive': music %lld outside [0, %lld)", who, (long long)row,
                           (long long)pos, (long long)Nm);
                goto done;
            }
            for (int64_t j = 0; j < NN; j++) {
                int64_t m = rows->negatives[row * NN + j];
                if (m < 0 || m >= Nm) {
                    debcm_fail("%s: test row %lld, field 'negatives' [%lld]: music %lld outside [0, %lld)", who,
                               (long long)row, (long long)j, (long long)m, (long long)Nm);
                    goto done;
                }
            }
            memcpy(b.h_x + r * Dv, v_feat + vid * Dv, (size_t)Dv * sizeof *b.h_x);
        }
        if (score_block(net, ws, &b, e_m, Nm, n)) {
            debcm_error_prefix("%s (test rows %lld..%lld)", who, (long long)r0, (long long)(r0 + n));
            goto done;
        }
#pragma omp parallel for schedule(static) if (n * Nm >= 65536)
        for (int64_t r = 0; r < n; r++) {
            const int64_t row = r0 + r, pos = rows->positive[row];
            const float *s = b.h_full + r * Nm;
            const float sp = s[pos];
            int64_t rank = 0, rank_neg = 0;
            uint8_t tie = 0, pin = 0;
            for (int64_t m = 0; m < Nm; m++)
                if (m != pos) {
                    rank += !(s[m] < sp); /* ties and NaN count against the positive (SPEC §4) */
                    tie |= s[m] == sp;
                }
            for (int64_t j = 0; j < NN; j++) { /* SPEC §4's rank_r, as the eval_negatives op counts it */
                int64_t m = rows->negatives[row * NN + j];
                rank_neg += !(s[m] < sp);
                pin |= m == pos;
            }
            rr[r] = (row_rank){rank, rank_neg, tie, pin};
            if (k)
                model_top_k(top + r * k, NULL, s, Nm, k);
        }
        for (int64_t r = 0; r < n; r++) { /* sums in row order: independent of the thread count */
            const int64_t row = r0 + r;
            const double w = rows->weight[row], rank = (double)rr[r].rank;
            res->weight_sum += w;
            res->tie_rows += rr[r].tie;
            res->rows_positive_in_negatives += rr[r].pos_in_neg;
            res->mrr_w += w / (rank + 1.0);
            res->mrr += 1.0 / (rank + 1.0);
            for (int i = 0; i < res->nK; i++)
                if (rr[r].rank < res->K[i]) {
                    double g = 1.0 / log2(rank + 2.0);
                    res->recall_w[i] += w;
                    res->ndcg_w[i] += w * g;
                    res->recall[i] += 1.0;
                    res->ndcg[i] += g;
                }
            if (res->row_rank)
                res->row_rank[row] = rr[r].rank;
            if (res->row_rank_neg)
                res->row_rank_neg[row] = rr[r].rank_neg;
            if (k) {
                res->exposure.positives[genre[rows->positive[row]]]++;
                for (int64_t j = 0; j < k; j++)
                    res->exposure.top_k[genre[top[r * k + j]]]++;
                if (res->row_top)
                    memcpy(res->row_top + row * k, top + r * k, (size_t)k * sizeof *top);
            }
        }
    }
    if (R > 0) { /* unweighted: means over the rows */
        res->mrr /= (double)R;
        for (int i = 0; i < res->nK; i++) {
            res->recall[i] /= (double)R;
            res->ndcg[i] /= (double)R;
        }
    }
    if (k) {
        model_genre_exposure *e = &res->exposure;
        for (int64_t g = 0; g <= e->G; g++) {
            e->share_top_k[g] = R > 0 ? (double)e->top_k[g] / ((double)R * (double)k) : 0.0;
            e->share_positives[g] = R > 0 ? (double)e->positives[g] / (double)R : 0.0;
            e->ratio[g] = e->positives[g] > 0 ? e->share_top_k[g] / e->share_positives[g] : NAN;
        }
    }
    rc = 0;
done:
    if (rc)
        exposure_free(&res->exposure);
    if (e_m)
        o->free(e_m);
    score_blocks_free(o, &b);
    free(rr);
    free(top);
    free(genre);
    return rc;
}

/* ---- JSON ------------------------------------------------------------------------------------------------------- */

/* a number, or null for NaN/Inf (which JSON cannot hold) */
static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *metrics_json(const model_full_result *r, int weighted)
{
    json_t *o = json_object();
    char key[32];
    for (int i = 0; o && i < r->nK; i++) {
        snprintf(key, sizeof key, "recall@%d", (int)r->K[i]);
        json_object_set_new(o, key, jnum(weighted ? r->recall_w[i] : r->recall[i]));
        snprintf(key, sizeof key, "ndcg@%d", (int)r->K[i]);
        json_object_set_new(o, key, jnum(weighted ? r->ndcg_w[i] : r->ndcg[i]));
    }
    if (o)
        json_object_set_new(o, "mrr", jnum(weighted ? r->mrr_w : r->mrr));
    return o;
}

json_t *model_full_result_json(const model_full_result *r)
{
    json_t *root = json_object(), *full = json_object();
    if (!root || !full) {
        json_decref(root);
        json_decref(full);
        return NULL;
    }
    json_object_set_new(full, "rows", json_integer(r->rows));
    json_object_set_new(full, "musics", json_integer(r->musics));
    json_object_set_new(full, "tie_rows", json_integer(r->tie_rows));
    json_object_set_new(full, "rows_positive_in_negatives", json_integer(r->rows_positive_in_negatives));
    json_object_set_new(full, "weight_sum", jnum(r->weight_sum));
    json_object_set_new(full, "weighted", metrics_json(r, 1));
    json_object_set_new(full, "unweighted", metrics_json(r, 0));
    json_object_set_new(root, "full_ranking", full);
    const model_genre_exposure *e = &r->exposure;
    if (e->musics) {
        json_t *ex = json_object(), *list = json_array();
        for (int64_t g = 0; ex && list && g <= e->G; g++) {
            json_t *item = json_object();
            if (!item)
                break;
            json_object_set_new(item, "genre", g < e->G ? json_integer(g) : json_string("unknown"));
            json_object_set_new(item, "musics", json_integer(e->musics[g]));
            json_object_set_new(item, "top_k", json_integer(e->top_k[g]));
            json_object_set_new(item, "positives", json_integer(e->positives[g]));
            json_object_set_new(item, "share_top_k", jnum(e->share_top_k[g]));
            json_object_set_new(item, "share_positives", jnum(e->share_positives[g]));
            json_object_set_new(item, "ratio", jnum(e->ratio[g]));
            json_array_append_new(list, item);
        }
        if (ex) {
            json_object_set_new(ex, "k", json_integer(e->k));
            json_object_set_new(ex, "rows", json_integer(e->rows));
            json_object_set_new(ex, "genres", list ? list : json_null());
            json_object_set_new(root, "genre_exposure", ex);
        } else {
            json_decref(list);
        }
    }
    return root;
}
