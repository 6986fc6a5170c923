/* models/eval_full.h — what the student's scores say beyond the 100-negative protocol: its ranking of every test
 * positive among ALL musics, the genres its top-K recommendations go to, and the top-K lists themselves.
 *
 * This sits beside models/eval.c (which it reuses: the eval-mode embeddings model_embed and
 * model_embed_music_student) and under the commands that report or serve a trained model (`debcm run`'s report,
 * `debcm recommend`, `debcm export`). The score is the one of SPEC §4, score(v, m) = mu_v · e_m with
 * e_m = W_c [c̄ ; mu_m] + b_c and c̄ from user_prior_mean (the teacher's, SPEC §3, is mu_v · mu_m): a plain dot
 * product of two embedding matrices, which is what `debcm export` writes. Score blocks are computed with the
 * backend's existing ops (a linear_forward without bias, as eval.c does: no new op, so no CUDA twin) in the very
 * chunks model_eval_negatives uses, so that a row's scores are bitwise those of the 100-negative protocol, and
 * ranked on the host. Ranks follow SPEC §4 everywhere (rank 0 = best): a competitor counts against the positive
 * when its score is not smaller (ties and NaN count against it), so a collapsed model that scores everything
 * equally gets nothing; the rows with an exact tie at the positive are counted. Weighted metrics are SPEC §4's
 * weighted SUMS over the rows with the inverse-popularity weights (video_popularity_test.npy, already normalised:
 * exactly as model_eval_negatives sums them, no division); unweighted ones are plain means over the rows. */
#ifndef DEBCM_EVAL_FULL_H
#define DEBCM_EVAL_FULL_H

#include <jansson.h>
#include <stdint.h>

#include "io/dataset.h"
#include "models/model.h"

/* ---- the score of either network ------------------------------------------------------------------------------ */

/* The music side of the evaluation score, for the N rows of the HOST matrix x [N, D_m] (= [vggish ‖ smile]) into
 * out [N, L] (backend memory): the student's e_m (SPEC §4; prior_mean host [G] = user_prior_mean) or the
 * teacher's mu_m (SPEC §3; prior_mean unused, may be NULL). score(v, m) = mu_v · out[m] for both. */
int model_embed_music_eval(const debcm_net *net, model_workspace *ws, float *out, const float *x, int64_t N,
                           const float *prior_mean);

/* The K best of the N host scores (0 < K ≤ N), best first, into idx [K] and (when not NULL) score [K]: a greater
 * score first, equal scores by the lower index, NaN after every number. */
void model_top_k(int64_t *idx, float *score, const float *scores, int64_t N, int64_t K);

/* The K best musics for each of the n rows of the HOST video features x [n, D_v]: e_m [Nm, L] backend (from
 * model_embed_music_eval), top [n, K] music ids and top_score [n, K] (host; may be NULL), best first as
 * model_top_k orders them. 0 < K ≤ Nm. 0, or −1 with a message. */
int model_recommend(const debcm_net *net, model_workspace *ws, const float *e_m, int64_t Nm, const float *x,
                    int64_t n, int64_t K, int64_t *top, float *top_score);

/* ---- full ranking and genre exposure (issue 7) ------------------------------------------------------------------ */

/* Each music's genre: the most frequent genre id in the genre lists of the training rows whose label is that
 * music (ties: the lowest id; ids outside [0, G) are not counted); G ("unknown") for a music with no such id.
 * genre [Nm]. 0, or −1 with a message when a training row's music is outside [0, Nm). */
int model_music_genres(int32_t *genre, int64_t Nm, const ugc_train *train);

/* The share of each genre among the top-k recommendations of the test rows (every row gives k musics) against
 * its share among the rows' positives. Entry g < G is genre g, entry G the musics of unknown genre. */
typedef struct {
    int64_t G;               /* genres; the arrays have G + 1 entries */
    int64_t k;               /* the cut-off (capped at the number of musics) */
    int64_t rows;            /* test rows */
    int64_t *musics;         /* [G+1] musics of the genre */
    int64_t *top_k;          /* [G+1] top-k places given to the genre, over all rows (Σ = rows·k) */
    int64_t *positives;      /* [G+1] test positives of the genre (Σ = rows) */
    double *share_top_k;     /* [G+1] top_k / (rows·k) */
    double *share_positives; /* [G+1] positives / rows */
    double *ratio;           /* [G+1] share_top_k / share_positives; NaN where share_positives is 0 */
} model_genre_exposure;

typedef struct {
    /* inputs (model_full_result_init sets the defaults) */
    int nK;
    int32_t K[MODEL_EVAL_MAX_K]; /* 10, 15, 20, 25 */
    int64_t exposure_k;          /* 25; 0: no genre exposure */
    int64_t *row_rank;           /* NULL, or [rows]: each row's rank among all musics (0 = first) */
    int64_t *row_rank_neg;       /* NULL, or [rows]: its rank among its own negatives (SPEC §4's rank_r) */
    int64_t *row_top;            /* NULL, or [rows, k], k = min(exposure_k, Nm): each row's top-k musics, best
                                    first (model_top_k's order) */
    /* outputs */
    int64_t rows, musics;        /* test rows, musics ranked */
    int64_t tie_rows;            /* rows where another music scores exactly the positive's score */
    int64_t rows_positive_in_negatives;
    double weight_sum;           /* Σ_r w_r */
    double recall_w[MODEL_EVAL_MAX_K], ndcg_w[MODEL_EVAL_MAX_K], mrr_w; /* Σ_r w_r · metric_r */
    double recall[MODEL_EVAL_MAX_K], ndcg[MODEL_EVAL_MAX_K], mrr;       /* mean_r metric_r */
    model_genre_exposure exposure; /* allocated by the evaluation (exposure_k > 0); model_full_result_free */
} model_full_result;

/* Zero r and set the inputs to their defaults (the report's K, exposure k 25, no per-row outputs). */
void model_full_result_init(model_full_result *r);
void model_full_result_free(model_full_result *r); /* the exposure arrays; the inputs are the caller's */

/* Rank every test row's positive among ALL Nm musics with the student's score (SPEC §4): rank_r = #{musics m ≠
 * positive with score ≥ score(positive)}; Recall@K = [rank_r < K], NDCG@K = [rank_r < K] / log2(rank_r + 2),
 * MRR = 1 / (rank_r + 1), weighted (Σ_r w_r ·) and unweighted (mean). With res->exposure_k > 0 also the genre
 * exposure of the top-k lists (genres from `train`, model_music_genres). v_feat host [Nv, D_v], m_feat host
 * [Nm, D_m], prior_mean host [G], rows: data_matching's test split (weights included). 0, or −1 with a message
 * naming the row and field of an id out of range. */
int model_eval_full_student(const debcm_net *net, model_workspace *ws, const float *v_feat, int64_t Nv,
                            const float *m_feat, int64_t Nm, const float *prior_mean, const eval_split *rows,
                            const ugc_train *train, model_full_result *res);

/* The result as one JSON object (NULL when out of memory):
 * {"full_ranking": {"rows", "musics", "tie_rows", "rows_positive_in_negatives", "weight_sum",
 *                   "weighted": {"recall@10", "ndcg@10", …, "recall@25", "ndcg@25", "mrr"},
 *                   "unweighted": {the same keys}},
 *  "genre_exposure": {"k", "rows", "genres": [{"genre": 0 … G−1 or "unknown", "musics", "top_k", "positives",
 *                     "share_top_k", "share_positives", "ratio" (null where no positive has the genre)}, …]}}
 * ("genre_exposure" only when it was computed). */
json_t *model_full_result_json(const model_full_result *r);

#endif
