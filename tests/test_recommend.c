/* tests/test_recommend.c — the student's full ranking and genre exposure (models/eval_full.c), `debcm recommend`
 * and `debcm export` (apps/cmd_recommend.c, apps/cmd_export.c), end to end.
 *
 * Setup: `debcm synth --scale tiny` (600 videos, 120 musics, 30 negatives) and a short `debcm run` in WORKDIR.
 * Library: model_top_k's order (ties to the lower id, NaN last) and model_music_genres' vote on hand-made rows; a
 * collapsed (all-zero) student gets every row tied and rank Nm − 1; on the trained student the 100-negative ranks
 * that model_eval_full_student reports per row sum to exactly model_eval_negatives' numbers (the same scores), the
 * full rank of a row is never better than its rank among its negatives (rows without defects), and the exposure
 * counts and shares add up. Export: the shapes, and the full-ranking metrics and per-row ranks recomputed here in
 * double precision from the exported embeddings and the test rows equal the library's to 1e-6 (a row whose
 * recomputed positive score is within EPS of another music's is "ambiguous": the library's rank must lie in the
 * range the tolerance allows and is then used); the exposure recounted from genres voted here. Recommend:
 * --video's top-K is the argsort of the exported scores (positions may swap only between scores within EPS), the
 * text and --json outputs agree, --features with two rows equals --video for those ids (float32 and float64
 * files, and a [D_v] file bit for bit), a teacher ranks data_pgc; export's pair on disk: npy_write's bytes, a
 * failure on the second file (a file-size limit) leaving the previous pair byte for byte and no temporary file, a
 * dead export's temporary file removed by the next; and every refusal is one line with the right exit status.
 * Usage: test_recommend DEBCM WORKDIR. Exit 0 pass, 1 fail. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine/error.h"
#include "engine/train.h"
#include "io/npy.h"
#include "models/checkpoint.h"
#include "models/eval_full.h"
#include "test_cli.h"
#include "test_files.h"

#define EPS 4e-6 /* float scores (sgemm, other row blocks) against their double recomputation: ~10x the worst seen */
#define TOPK 10

static char root[4096], run_dir[4096], student_ckpt[4096], teacher_ckpt[4096];

/* ---- embeddings read back from `debcm export` ------------------------------------------------------------------ */

typedef struct {
    float *music, *video; /* [Nm, L], [Nv, L] */
    int64_t Nm, Nv, L;
} embeddings;

static float *read_matrix(const char *path, int64_t *rows, int64_t *cols)
{
    npy_file f;
    if (npy_open(&f, path)) {
        CHECK_MSG(0, "%s", debcm_last_error());
        return NULL;
    }
    float *x = NULL;
    CHECK_MSG(f.h.type == NPY_FLOAT32 && f.h.ndim == 2, "%s: %s, %d-d", path, npy_type_name(f.h.type), f.h.ndim);
    if (f.h.type == NPY_FLOAT32 && f.h.ndim == 2) {
        *rows = f.h.shape[0];
        *cols = f.h.shape[1];
        x = malloc((size_t)(f.h.count ? f.h.count : 1) * sizeof *x);
        if (!x || npy_to_f32(&f, x)) {
            CHECK_MSG(0, "%s: %s", path, debcm_last_error());
            free(x);
            x = NULL;
        }
    }
    npy_close(&f);
    return x;
}

static int export_model(const char *ckpt, const char *sub, embeddings *e)
{
    char dir[4096], p[4096];
    memset(e, 0, sizeof *e);
    int st = cli_sh("export --model '%s' --data '%s' --out '%s'", ckpt, root, cli_wpath(dir, sub));
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 0, "export %s: status %d: %s", ckpt, st, err ? err : "");
    free(err);
    if (st)
        return -1;
    int64_t Lm = 0, Lv = 0;
    snprintf(p, sizeof p, "%s/music_embeddings.npy", dir);
    e->music = read_matrix(p, &e->Nm, &Lm);
    snprintf(p, sizeof p, "%s/video_embeddings.npy", dir);
    e->video = read_matrix(p, &e->Nv, &Lv);
    CHECK_MSG(Lm == Lv && Lm > 0, "music width %lld, video width %lld", (long long)Lm, (long long)Lv);
    e->L = Lm;
    return e->music && e->video && Lm == Lv ? 0 : -1;
}

static void embeddings_free(embeddings *e)
{
    free(e->music);
    free(e->video);
}

/* score(v, m) in double from the exported rows */
static double escore(const embeddings *e, int64_t v, int64_t m)
{
    double s = 0.0;
    for (int64_t l = 0; l < e->L; l++)
        s += (double)e->video[v * e->L + l] * (double)e->music[m * e->L + l];
    return s;
}

/* all Nm scores of video v, and their order (greater first, ties to the lower id) */
static const double *sort_scores;
static int by_score(const void *a, const void *b)
{
    int64_t i = *(const int64_t *)a, j = *(const int64_t *)b;
    if (sort_scores[i] != sort_scores[j])
        return sort_scores[i] > sort_scores[j] ? -1 : 1;
    return i < j ? -1 : 1;
}

static void score_row(const embeddings *e, int64_t v, double *s, int64_t *order)
{
    for (int64_t m = 0; m < e->Nm; m++) {
        s[m] = escore(e, v, m);
        order[m] = m;
    }
    sort_scores = s;
    qsort(order, (size_t)e->Nm, sizeof *order, by_score);
}

/* ---- library: the pieces -------------------------------------------------------------------------------------- */

static void test_top_k_order(void)
{
    const float s[7] = {0.5f, NAN, 0.9f, 0.5f, 0.9f, -1.0f, 0.7f};
    int64_t idx[7];
    float sc[7];
    model_top_k(idx, sc, s, 7, 7);
    const int64_t want[7] = {2, 4, 6, 0, 3, 5, 1}; /* the rule: greater first, equal by lower id, NaN last */
    for (int i = 0; i < 7; i++)
        CHECK_MSG(idx[i] == want[i], "model_top_k position %d: %lld, want %lld", i, (long long)idx[i],
                  (long long)want[i]);
    CHECK(sc[0] == 0.9f && sc[3] == 0.5f && isnan(sc[6]));
    model_top_k(idx, NULL, s, 7, 3);
    CHECK(idx[0] == 2 && idx[1] == 4 && idx[2] == 6);
    /* a longer row against a full sort */
    enum { N = 997 };
    float *r = malloc(N * sizeof *r);
    int64_t *top = malloc(N * sizeof *top);
    if (!r || !top) {
        CHECK(0);
        free(r);
        free(top);
        return;
    }
    for (int i = 0; i < N; i++)
        r[i] = (float)((i * 7919) % 211) / 211.0f; /* many ties */
    model_top_k(top, NULL, r, N, 50);
    int ok = 1;
    for (int j = 0; j < 50; j++) {
        int64_t better = 0; /* musics that must precede top[j] */
        for (int i = 0; i < N; i++)
            better += r[i] > r[top[j]] || (r[i] == r[top[j]] && i < top[j]);
        ok &= better == j;
    }
    CHECK_MSG(ok, "model_top_k(50 of %d) is not the first 50 of the full order", N);
    free(r);
    free(top);
}

static void test_music_genres(void)
{
    /* music 0: [1], [2], [2] -> 2; music 1: [0, 3], [3, 0] -> tie, 0; music 2: no row -> unknown;
     * music 3: [7] (outside G = 4) and [] -> unknown; music 4: [3] -> 3 */
    int64_t video[8] = {0, 1, 2, 3, 4, 5, 6, 7}, music[8] = {0, 0, 0, 1, 1, 3, 3, 4};
    int64_t off[9] = {0, 1, 2, 3, 5, 7, 8, 8, 9}; /* [1] [2] [2] [0, 3] [3, 0] [7] [] [3] */
    int32_t ids[9] = {1, 2, 2, 0, 3, 3, 0, 7, 3};
    ugc_train t = {.n = 8, .G = 4, .video = video, .music = music, .genre_offset = off, .genre_ids = ids};
    int32_t g[5];
    CHECK_MSG(model_music_genres(g, 5, &t) == 0, "%s", debcm_last_error());
    const int32_t want[5] = {2, 0, 4, 4, 3};
    for (int m = 0; m < 5; m++)
        CHECK_MSG(g[m] == want[m], "music %d: genre %d, want %d", m, g[m], want[m]);
    t.music[2] = 9;
    CHECK(model_music_genres(g, 5, &t) == -1);
    CHECK_CONTAINS(debcm_last_error(), "training row 2, field 'music': 9 outside [0, 5)");
}

/* the dataset and the trained student, loaded here as `debcm evaluate` loads them */
typedef struct {
    debcm_dataset ds;
    train_data td;
    debcm_net net;
    model_workspace ws;
    int ok;
} loaded;

static void load(loaded *x)
{
    memset(x, 0, sizeof *x);
    char pgc[4096], data[4096];
    snprintf(pgc, sizeof pgc, "%s/data_pgc", root);
    snprintf(data, sizeof data, "%s/data_matching", root);
    int student = 0;
    int64_t L = 0;
    if (dataset_load(&x->ds, pgc, data) || checkpoint_peek(student_ckpt, &student, &L) || !student ||
        train_data_build(&x->td, &x->ds, L)) {
        CHECK_MSG(0, "load: %s", debcm_last_error());
        return;
    }
    model_dims d = train_dims(&x->td, 1);
    if (net_create(&x->net, debcm_ops_cpu(), &d, 1) || checkpoint_load(&x->net, student_ckpt) ||
        model_workspace_create(&x->ws, debcm_ops_cpu(), &d, 1024)) {
        CHECK_MSG(0, "load: %s", debcm_last_error());
        return;
    }
    x->ok = 1;
}

static void unload(loaded *x)
{
    model_workspace_free(&x->ws);
    net_free(&x->net);
    train_data_free(&x->td);
    dataset_free(&x->ds);
}

static int full_eval(loaded *x, const debcm_net *net, model_full_result *r)
{
    const debcm_dataset *ds = &x->ds;
    int rc = model_eval_full_student(net, &x->ws, ds->ugc_video.data, ds->ugc_video.rows, x->td.ugc_music,
                                     ds->ugc_vggish.rows, ds->prior_mean, &ds->test, &ds->train, r);
    CHECK_MSG(rc == 0, "model_eval_full_student: %s", debcm_last_error());
    return rc;
}

/* an untrained, all-zero student scores every music 0: every row ties, rank Nm − 1, nothing recalled */
static void test_collapsed(loaded *x)
{
    debcm_net z;
    model_dims d = train_dims(&x->td, 1);
    if (net_create(&z, debcm_ops_cpu(), &d, 1)) {
        CHECK_MSG(0, "%s", debcm_last_error());
        return;
    }
    model_full_result r;
    model_full_result_init(&r);
    int64_t R = x->ds.test.n, Nm = x->ds.ugc_vggish.rows;
    if (full_eval(x, &z, &r) == 0) {
        CHECK_MSG(r.tie_rows == R, "collapsed model: %lld tie rows of %lld", (long long)r.tie_rows, (long long)R);
        CHECK(r.recall[3] == 0.0 && r.recall_w[3] == 0.0 && r.ndcg[0] == 0.0);
        CHECK_NEAR(r.mrr, 1.0 / (double)Nm, 1e-12);
        /* every music tied: the top-k lists are the k lowest ids */
        CHECK(r.exposure.k == 25);
    }
    model_full_result_free(&r);
    net_free(&z);
}

static double sum_d(const double *a, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += a[i];
    return s;
}

/* The library on the trained student: its per-row negatives ranks against model_eval_negatives, full ≥ negatives
 * row-wise, exposure bookkeeping, JSON. Returns the result (with per-row ranks and top lists) for the export
 * check; the caller frees r and the three arrays. */
static void test_library(loaded *x, model_full_result *r)
{
    const eval_split *t = &x->ds.test;
    const int64_t R = t->n, Nm = x->ds.ugc_vggish.rows;
    model_full_result_init(r);
    r->row_rank = calloc((size_t)R, sizeof *r->row_rank);
    r->row_rank_neg = calloc((size_t)R, sizeof *r->row_rank_neg);
    r->row_top = calloc((size_t)(R * 25), sizeof *r->row_top);
    if (!r->row_rank || !r->row_rank_neg || !r->row_top || full_eval(x, &x->net, r)) {
        CHECK(0);
        return;
    }
    CHECK(r->rows == R && r->musics == Nm);
    model_eval_result neg;
    memset(&neg, 0, sizeof neg);
    neg.nK = r->nK;
    memcpy(neg.K, r->K, sizeof neg.K);
    CHECK_MSG(model_eval_negatives(&x->net, &x->ws, x->ds.ugc_video.data, x->ds.ugc_video.rows, x->td.ugc_music, Nm,
                                   x->ds.prior_mean, t, &neg) == 0, "%s", debcm_last_error());
    /* the per-row negative ranks ARE the 100-negative protocol's (same scores): the sums agree */
    double wsum = 0.0;
    for (int64_t i = 0; i < R; i++)
        wsum += t->weight[i];
    CHECK_NEAR(r->weight_sum, wsum, 1e-12);
    for (int i = 0; i < r->nK; i++) {
        double rec = 0.0, nd = 0.0;
        for (int64_t i2 = 0; i2 < R; i2++)
            if (r->row_rank_neg[i2] < r->K[i]) {
                rec += t->weight[i2];
                nd += t->weight[i2] / log2((double)r->row_rank_neg[i2] + 2.0);
            }
        CHECK_MSG(fabs(rec - neg.recall[i]) <= 1e-9 && fabs(nd - neg.ndcg[i]) <= 1e-9,
                  "K=%d: per-row negative ranks give recall %.12g ndcg %.12g, model_eval_negatives %.12g %.12g",
                  r->K[i], rec, nd, neg.recall[i], neg.ndcg[i]);
        /* all musics include the negatives: full-rank metrics cannot beat the 100-negative ones */
        CHECK_MSG(r->recall_w[i] <= neg.recall[i] + 1e-12 && r->ndcg_w[i] <= neg.ndcg[i] + 1e-12,
                  "K=%d: full recall %.6f ndcg %.6f above the 100-negative %.6f %.6f", r->K[i], r->recall_w[i],
                  r->ndcg_w[i], neg.recall[i], neg.ndcg[i]);
        if (i > 0)
            CHECK(r->recall[i] >= r->recall[i - 1] && r->recall_w[i] >= r->recall_w[i - 1]);
        CHECK(r->ndcg[i] <= r->recall[i] + 1e-12);
    }
    int64_t checked = 0, worse = 0, strictly = 0;
    for (int64_t i = 0; i < R; i++) {
        const int64_t *ng = t->negatives + i * t->n_neg;
        int defect = 0;
        for (int64_t j = 0; j < t->n_neg; j++) {
            defect |= ng[j] == t->positive[i];
            for (int64_t j2 = 0; j2 < j; j2++)
                defect |= ng[j] == ng[j2];
        }
        if (defect)
            continue;
        checked++;
        worse += r->row_rank[i] < r->row_rank_neg[i];
        strictly += r->row_rank[i] > r->row_rank_neg[i];
        for (int k = 0; k < r->nK; k++) /* a hit among all musics is a hit among the negatives */
            worse += r->row_rank[i] < r->K[k] && !(r->row_rank_neg[i] < r->K[k]);
        worse += r->row_rank[i] > Nm - 1 || r->row_rank[i] < 0;
    }
    CHECK_MSG(worse == 0, "%lld rows rank better among all musics than among their negatives", (long long)worse);
    CHECK_MSG(checked > R / 2 && strictly > 0, "only %lld rows checked, %lld strictly worse in the full ranking",
              (long long)checked, (long long)strictly);
    printf("library: %lld test rows, %lld musics; full weighted R@10 %.4f R@25 %.4f NDCG@25 %.4f MRR %.4f "
           "(100-neg R@10 %.4f R@25 %.4f); unweighted R@25 %.4f MRR %.4f; %lld tie rows; full rank worse than "
           "the 100-neg rank in %lld of %lld rows\n",
           (long long)R, (long long)Nm, r->recall_w[0], r->recall_w[3], r->ndcg_w[3], r->mrr_w, neg.recall[0],
           neg.recall[3], r->recall[3], r->mrr, (long long)r->tie_rows, (long long)strictly, (long long)checked);
    /* exposure bookkeeping */
    const model_genre_exposure *e = &r->exposure;
    CHECK(e->G == x->ds.train.G && e->k == 25 && e->rows == R);
    int64_t sm = 0, st = 0, sp = 0;
    for (int64_t g = 0; g <= e->G; g++) {
        sm += e->musics[g];
        st += e->top_k[g];
        sp += e->positives[g];
        CHECK_NEAR(e->share_top_k[g], (double)e->top_k[g] / (double)(R * 25), 1e-15);
        CHECK_NEAR(e->share_positives[g], (double)e->positives[g] / (double)R, 1e-15);
        if (e->positives[g])
            CHECK_NEAR(e->ratio[g], e->share_top_k[g] / e->share_positives[g], 1e-12);
        else
            CHECK(isnan(e->ratio[g]));
    }
    CHECK(sm == Nm && st == R * 25 && sp == R);
    CHECK_NEAR(sum_d(e->share_top_k, e->G + 1), 1.0, 1e-12);
    CHECK_NEAR(sum_d(e->share_positives, e->G + 1), 1.0, 1e-12);
    /* JSON */
    json_t *j = model_full_result_json(r);
    CHECK(j != NULL);
    if (j) {
        json_t *f = json_object_get(j, "full_ranking"), *w = json_object_get(f, "weighted"),
               *u = json_object_get(f, "unweighted"), *ge = json_object_get(j, "genre_exposure"),
               *gl = json_object_get(ge, "genres");
        CHECK(json_integer_value(json_object_get(f, "rows")) == R);
        CHECK(json_integer_value(json_object_get(f, "tie_rows")) == r->tie_rows);
        CHECK(json_real_value(json_object_get(w, "recall@25")) == r->recall_w[3]);
        CHECK(json_real_value(json_object_get(w, "ndcg@10")) == r->ndcg_w[0]);
        CHECK(json_real_value(json_object_get(w, "mrr")) == r->mrr_w);
        CHECK(json_real_value(json_object_get(u, "recall@15")) == r->recall[1]);
        CHECK(json_real_value(json_object_get(u, "mrr")) == r->mrr);
        CHECK(json_object_size(w) == 9 && json_object_size(u) == 9);
        CHECK(json_integer_value(json_object_get(ge, "k")) == 25);
        CHECK((int64_t)json_array_size(gl) == e->G + 1);
        json_t *last = json_array_get(gl, (size_t)e->G), *first = json_array_get(gl, 0);
        CHECK(json_is_string(json_object_get(last, "genre")) &&
              !strcmp(json_string_value(json_object_get(last, "genre")), "unknown"));
        CHECK(json_integer_value(json_object_get(first, "genre")) == 0);
        CHECK(json_integer_value(json_object_get(first, "top_k")) == e->top_k[0]);
        CHECK(json_real_value(json_object_get(first, "share_top_k")) == e->share_top_k[0]);
        for (int64_t g = 0; g <= e->G; g++) {
            json_t *ratio = json_object_get(json_array_get(gl, (size_t)g), "ratio");
            CHECK(e->positives[g] ? json_is_real(ratio) : json_is_null(ratio));
        }
        char *text = json_dumps(j, JSON_INDENT(2));
        CHECK(text != NULL);
        free(text);
        json_decref(j);
    }
}

/* ---- the library against the exported embeddings --------------------------------------------------------------- */

static void test_against_export(loaded *x, const model_full_result *r, const embeddings *e)
{
    const eval_split *t = &x->ds.test;
    const int64_t R = t->n, Nm = e->Nm, G = x->ds.train.G, k = 25;
    CHECK(e->Nm == x->ds.ugc_vggish.rows && e->Nv == x->ds.ugc_video.rows && e->L == x->net.dims.L);
    double *s = malloc((size_t)Nm * sizeof *s);
    int64_t *order = malloc((size_t)Nm * sizeof *order);
    int32_t *genre = malloc((size_t)Nm * sizeof *genre);
    int64_t *cnt = calloc((size_t)(Nm * G), sizeof *cnt);
    int64_t *top_own = calloc((size_t)(G + 1), sizeof *top_own), *top_lib = calloc((size_t)(G + 1), sizeof *top_lib);
    int64_t *pos = calloc((size_t)(G + 1), sizeof *pos), *mus = calloc((size_t)(G + 1), sizeof *mus);
    if (!s || !order || !genre || !cnt || !top_own || !top_lib || !pos || !mus) {
        CHECK(0);
        goto done;
    }
    /* genres voted here: the most frequent id in the labels' genre lists, the lower id on a tie */
    const ugc_train *tr = &x->ds.train;
    for (int64_t i = 0; i < tr->n; i++)
        for (int64_t j = tr->genre_offset[i]; j < tr->genre_offset[i + 1]; j++)
            if (tr->genre_ids[j] >= 0 && tr->genre_ids[j] < G)
                cnt[tr->music[i] * G + tr->genre_ids[j]]++;
    for (int64_t m = 0; m < Nm; m++) {
        genre[m] = (int32_t)G;
        for (int64_t g = 0, best = 0; g < G; g++)
            if (cnt[m * G + g] > best) {
                best = cnt[m * G + g];
                genre[m] = (int32_t)g;
            }
        mus[genre[m]]++;
    }
    double rec_w[4] = {0}, ndcg_w[4] = {0}, rec[4] = {0}, ndcg[4] = {0}, mrr_w = 0, mrr = 0, worst = 0;
    int64_t ambiguous = 0, boundary_ambiguous = 0, rank_mismatch = 0, top_mismatch = 0, swaps = 0;
    for (int64_t i = 0; i < R; i++) {
        const int64_t v = t->video[i], p = t->positive[i];
        score_row(e, v, s, order);
        int64_t lo = 0, hi = 0, rank = 0;
        for (int64_t m = 0; m < Nm; m++)
            if (m != p) {
                rank += s[m] >= s[p];
                lo += s[m] > s[p] + EPS;
                hi += s[m] >= s[p] - EPS;
            }
        int64_t lib = r->row_rank[i], used = rank;
        if (lo != hi) { /* a near-tie at the positive: the float ranking may go either way within the tolerance */
            ambiguous++;
            CHECK_MSG(lib >= lo && lib <= hi, "row %lld: library rank %lld outside [%lld, %lld]", (long long)i,
                      (long long)lib, (long long)lo, (long long)hi);
            used = lib;
        } else {
            rank_mismatch += lib != rank;
        }
        const double w = t->weight[i];
        mrr_w += w / ((double)used + 1.0);
        mrr += 1.0 / ((double)used + 1.0);
        for (int q = 0; q < 4; q++)
            if (used < r->K[q]) {
                rec_w[q] += w;
                ndcg_w[q] += w / log2((double)used + 2.0);
                rec[q] += 1.0;
                ndcg[q] += 1.0 / log2((double)used + 2.0);
            }
        /* the top-25 lists: each place's score within EPS of the recomputed order's */
        const int64_t *lt = r->row_top + i * k;
        for (int64_t j = 0; j < k; j++) {
            double d = fabs(s[lt[j]] - s[order[j]]);
            worst = d > worst ? d : worst;
            top_mismatch += d > EPS;
            swaps += lt[j] != order[j];
            top_lib[genre[lt[j]]]++;
            top_own[genre[order[j]]]++;
        }
        boundary_ambiguous += s[order[k - 1]] - s[order[k]] <= EPS;
        pos[genre[p]]++;
    }
    CHECK_MSG(rank_mismatch == 0, "%lld unambiguous rows ranked differently", (long long)rank_mismatch);
    CHECK_MSG(top_mismatch == 0, "%lld top-25 places differ beyond %g (worst %.3g)", (long long)top_mismatch, EPS,
              worst);
    for (int q = 0; q < 4; q++) {
        CHECK_NEAR(r->recall_w[q], rec_w[q], 1e-6);
        CHECK_NEAR(r->ndcg_w[q], ndcg_w[q], 1e-6);
        CHECK_NEAR(r->recall[q], rec[q] / (double)R, 1e-6);
        CHECK_NEAR(r->ndcg[q], ndcg[q] / (double)R, 1e-6);
    }
    CHECK_NEAR(r->mrr_w, mrr_w, 1e-6);
    CHECK_NEAR(r->mrr, mrr / (double)R, 1e-6);
    CHECK_MSG(r->tie_rows <= ambiguous, "%lld tie rows but only %lld rows with a near-tie", (long long)r->tie_rows,
              (long long)ambiguous);
    /* exposure recounted */
    const model_genre_exposure *ex = &r->exposure;
    for (int64_t g = 0; g <= G; g++) {
        CHECK_MSG(ex->musics[g] == mus[g], "genre %lld: %lld musics, recounted %lld", (long long)g,
                  (long long)ex->musics[g], (long long)mus[g]);
        CHECK(ex->positives[g] == pos[g]);
        CHECK(ex->top_k[g] == top_lib[g]);
        if (boundary_ambiguous == 0) /* the recomputed top-25 sets are the library's */
            CHECK_MSG(ex->top_k[g] == top_own[g], "genre %lld: %lld top-25 places, recounted %lld", (long long)g,
                      (long long)ex->top_k[g], (long long)top_own[g]);
        CHECK_NEAR(ex->share_top_k[g], (double)top_lib[g] / (double)(R * k), 1e-12);
        CHECK_NEAR(ex->share_positives[g], (double)pos[g] / (double)R, 1e-12);
    }
    printf("export: recomputed full ranking of %lld rows (%lld with a near-tie at the positive, %lld at the "
           "25th place); worst top-25 score gap %.3g, %lld places swapped; exposure per genre (top-25 share / "
           "positive share):",
           (long long)R, (long long)ambiguous, (long long)boundary_ambiguous, worst, (long long)swaps);
    for (int64_t g = 0; g <= G; g++) {
        if (g < G)
            printf(" genre %lld %.3f/%.3f,", (long long)g, ex->share_top_k[g], ex->share_positives[g]);
        else
            printf(" unknown (%lld musics) %.3f/%.3f", (long long)ex->musics[g], ex->share_top_k[g],
                   ex->share_positives[g]);
    }
    printf("\n");
done:
    free(s);
    free(order);
    free(genre);
    free(cnt);
    free(top_own);
    free(top_lib);
    free(pos);
    free(mus);
}

/* ---- the command line ----------------------------------------------------------------------------------------- */

/* the q-th table of the text output: k (music, score) pairs */
static int parse_text(const char *txt, int q, int64_t *ids, double *scores, int k)
{
    const char *p = txt;
    for (int i = 0; i <= q; i++) {
        p = p ? strstr(p, "  rank   music       score\n") : NULL;
        if (p)
            p += strlen("  rank   music       score\n");
    }
    if (!p)
        return -1;
    for (int j = 0; j < k; j++) {
        long long rank, id;
        double sc;
        int used = 0;
        if (sscanf(p, " %lld %lld %lf%n", &rank, &id, &sc, &used) != 3 || rank != j + 1)
            return -1;
        ids[j] = id;
        scores[j] = sc;
        p += used;
    }
    return 0;
}

/* result q of a --json output: k (music, score) pairs; the query's id (−1 for a features row) */
static int parse_json(json_t *doc, int q, int64_t *ids, double *scores, int k, int64_t *video)
{
    json_t *res = json_array_get(json_object_get(doc, "results"), (size_t)q);
    json_t *top = json_object_get(res, "top");
    if (!res || (int)json_array_size(top) != k)
        return -1;
    json_t *v = json_object_get(res, "video");
    *video = json_is_integer(v) ? json_integer_value(v) : -1;
    for (int j = 0; j < k; j++) {
        json_t *e = json_array_get(top, (size_t)j);
        if (!json_is_integer(json_object_get(e, "music")) || !json_is_number(json_object_get(e, "score")))
            return -1;
        ids[j] = json_integer_value(json_object_get(e, "music"));
        scores[j] = json_number_value(json_object_get(e, "score"));
    }
    return 0;
}

static json_t *run_json(const char *fmt, ...) DEBCM_PRINTF(1, 2);
static json_t *run_json(const char *fmt, ...)
{
    char args[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int st = cli_sh("%s", args);
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 0, "debcm %s: status %d: %s", args, st, err ? err : "");
    free(err);
    if (st)
        return NULL;
    json_error_t je;
    json_t *j = json_load_file(out_txt, 0, &je);
    CHECK_MSG(j != NULL, "debcm %s: output is not JSON: %s", args, je.text);
    return j;
}

/* A top-k list against the argsort of the exported scores of video v: every place's score within EPS of the
 * sorted one (a swap only between near-equal scores), the reported score within EPS of the dot product, no
 * music twice. Returns the number of places whose id differs. */
static double worst_score_error; /* the largest |reported score − double dot product| seen */
static int64_t check_against_argsort(const embeddings *e, int64_t v, const int64_t *ids, const double *sc, int k,
                                     const char *what)
{
    double *s = malloc((size_t)e->Nm * sizeof *s);
    int64_t *order = malloc((size_t)e->Nm * sizeof *order), diff = 0;
    if (!s || !order) {
        CHECK(0);
        free(s);
        free(order);
        return 0;
    }
    score_row(e, v, s, order);
    for (int j = 0; j < k; j++) {
        int ok_id = ids[j] >= 0 && ids[j] < e->Nm;
        CHECK_MSG(ok_id, "%s: place %d: music %lld outside [0, %lld)", what, j + 1, (long long)ids[j],
                  (long long)e->Nm);
        if (!ok_id)
            break;
        CHECK_MSG(fabs(s[ids[j]] - s[order[j]]) <= EPS, "%s: place %d: music %lld (score %.7f), the argsort has %lld "
                  "(%.7f)", what, j + 1, (long long)ids[j], s[ids[j]], (long long)order[j], s[order[j]]);
        worst_score_error = fmax(worst_score_error, fabs(sc[j] - s[ids[j]]));
        CHECK_MSG(fabs(sc[j] - s[ids[j]]) <= EPS, "%s: place %d: score %.7f, the embeddings' dot product %.7f", what,
                  j + 1, sc[j], s[ids[j]]);
        for (int j2 = 0; j2 < j; j2++)
            CHECK(ids[j2] != ids[j]);
        diff += ids[j] != order[j];
    }
    free(s);
    free(order);
    return diff;
}

static void test_recommend_video(loaded *x, const embeddings *e)
{
    const int64_t Nv = x->ds.ugc_video.rows;
    const int64_t vids[4] = {x->ds.test.video[0], x->ds.test.video[1], 0, Nv - 1};
    int64_t swapped = 0;
    for (int i = 0; i < 4; i++) {
        int64_t ids[TOPK], jids[TOPK], jv = -2;
        double sc[TOPK], jsc[TOPK];
        int st = cli_sh("recommend --model '%s' --data '%s' --video %lld -k %d", student_ckpt, root, (long long)vids[i],
                    TOPK);
        char *txt = test_read_file(out_txt, NULL);
        CHECK_MSG(st == 0 && txt && parse_text(txt, 0, ids, sc, TOPK) == 0, "recommend --video %lld: status %d: %s",
                  (long long)vids[i], st, txt ? txt : "");
        char head[128];
        snprintf(head, sizeof head, "top %d of %lld musics", TOPK, (long long)e->Nm);
        CHECK(txt && strstr(txt, "student") && strstr(txt, "data_matching") && strstr(txt, head));
        free(txt);
        json_t *j = run_json("recommend --json --model '%s' --data '%s' --video %lld -k %d", student_ckpt, root,
                             (long long)vids[i], TOPK);
        if (!j || parse_json(j, 0, jids, jsc, TOPK, &jv)) {
            CHECK_MSG(0, "recommend --json --video %lld: no %d results", (long long)vids[i], TOPK);
            json_decref(j);
            continue;
        }
        CHECK(jv == vids[i]);
        CHECK(!strcmp(json_string_value(json_object_get(j, "model")), "student"));
        CHECK(json_integer_value(json_object_get(j, "k")) == TOPK &&
              json_integer_value(json_object_get(j, "musics")) == e->Nm);
        for (int q = 0; q < TOPK; q++) { /* the table prints %.6f */
            CHECK_MSG(ids[q] == jids[q], "video %lld place %d: text %lld, json %lld", (long long)vids[i], q + 1,
                      (long long)ids[q], (long long)jids[q]);
            CHECK_NEAR(sc[q], jsc[q], 6e-7);
            if (q)
                CHECK(jsc[q] <= jsc[q - 1]);
        }
        if (i == 0) { /* the thread count changes nothing */
            char *one = test_read_file(out_txt, NULL);
            json_t *j1 = run_json("recommend --json --threads 1 --model '%s' --data '%s' --video %lld -k %d",
                                  student_ckpt, root, (long long)vids[i], TOPK);
            char *t1 = test_read_file(out_txt, NULL);
            CHECK_MSG(one && t1 && !strcmp(one, t1), "recommend --threads 1 differs from the default thread count");
            free(one);
            free(t1);
            json_decref(j1);
        }
        char what[64];
        snprintf(what, sizeof what, "recommend --video %lld", (long long)vids[i]);
        swapped += check_against_argsort(e, vids[i], jids, jsc, TOPK, what);
        json_decref(j);
    }
    printf("recommend --video: 4 videos × top %d against the exported argsort: %lld places swapped between "
           "near-equal scores; worst |score − dot product of the exported rows| %.3g\n", TOPK, (long long)swapped,
           worst_score_error);
}

/* --features with rows of the data's own video features equals --video for those ids */
static void test_recommend_features(loaded *x, const embeddings *e)
{
    const feat_matrix *V = &x->ds.ugc_video;
    const int64_t Dv = V->cols, a = x->ds.test.video[2], b = x->ds.test.video[3];
    char f32[4096], f64[4096], f1[4096];
    float *rows = malloc((size_t)(2 * Dv) * sizeof *rows);
    double *rows64 = malloc((size_t)(2 * Dv) * sizeof *rows64);
    if (!rows || !rows64) {
        CHECK(0);
        goto done;
    }
    memcpy(rows, V->data + a * Dv, (size_t)Dv * sizeof *rows);
    memcpy(rows + Dv, V->data + b * Dv, (size_t)Dv * sizeof *rows);
    for (int64_t i = 0; i < 2 * Dv; i++)
        rows64[i] = rows[i];
    const int64_t shape[2] = {2, Dv}, shape1[1] = {Dv};
    CHECK(npy_write(cli_wpath(f32, "two.npy"), NPY_FLOAT32, 2, shape, rows, NULL) == 0);
    CHECK(npy_write(cli_wpath(f64, "two64.npy"), NPY_FLOAT64, 2, shape, rows64, NULL) == 0);
    CHECK(npy_write(cli_wpath(f1, "one.npy"), NPY_FLOAT32, 1, shape1, rows, NULL) == 0);
    json_t *jf = run_json("recommend --json --model '%s' --data '%s' --features '%s' -k %d", student_ckpt, root, f32,
                          TOPK);
    json_t *jd = run_json("recommend --json --model '%s' --data '%s' --features '%s' -k %d", student_ckpt, root, f64,
                          TOPK);
    json_t *j1 = run_json("recommend --json --model '%s' --data '%s' --features '%s' -k %d", student_ckpt, root, f1,
                          TOPK);
    json_t *ja = run_json("recommend --json --model '%s' --data '%s' --video %lld -k %d", student_ckpt, root,
                          (long long)a, TOPK);
    json_t *jb = run_json("recommend --json --model '%s' --data '%s' --video %lld -k %d", student_ckpt, root,
                          (long long)b, TOPK);
    int64_t fi[2][TOPK], di[2][TOPK], oi[TOPK], vi[2][TOPK], q;
    double fs[2][TOPK], ds[2][TOPK], os[TOPK], vs[2][TOPK];
    int ok = jf && jd && j1 && ja && jb && parse_json(jf, 0, fi[0], fs[0], TOPK, &q) == 0 &&
             parse_json(jf, 1, fi[1], fs[1], TOPK, &q) == 0 && parse_json(jd, 0, di[0], ds[0], TOPK, &q) == 0 &&
             parse_json(jd, 1, di[1], ds[1], TOPK, &q) == 0 && parse_json(j1, 0, oi, os, TOPK, &q) == 0 &&
             parse_json(ja, 0, vi[0], vs[0], TOPK, &q) == 0 && parse_json(jb, 0, vi[1], vs[1], TOPK, &q) == 0;
    CHECK_MSG(ok, "recommend --features: missing results");
    if (ok) {
        CHECK(json_array_size(json_object_get(jf, "results")) == 2);
        json_t *r0 = json_array_get(json_object_get(jf, "results"), 1);
        CHECK(json_integer_value(json_object_get(r0, "row")) == 1 &&
              !strcmp(json_string_value(json_object_get(r0, "features")), f32));
        int64_t swaps = 0;
        for (int r = 0; r < 2; r++)
            for (int j = 0; j < TOPK; j++) {
                /* float64 holding the same values: the same float32 queries, the same numbers */
                CHECK(fi[r][j] == di[r][j] && fs[r][j] == ds[r][j]);
                /* two rows in one block against one row alone: equal up to float rounding */
                if (fi[r][j] != vi[r][j]) {
                    swaps++;
                    int64_t v = r ? b : a;
                    CHECK_MSG(fabs(escore(e, v, fi[r][j]) - escore(e, v, vi[r][j])) <= EPS,
                              "--features row %d place %d: music %lld, --video %lld gives %lld", r, j + 1,
                              (long long)fi[r][j], (long long)v, (long long)vi[r][j]);
                }
                CHECK_NEAR(fs[r][j], vs[r][j], EPS);
            }
        for (int j = 0; j < TOPK; j++) /* a [D_v] file is the same computation as --video: bit for bit */
            CHECK_MSG(oi[j] == vi[0][j] && os[j] == vs[0][j], "[D_v] file place %d: %lld %.9g, --video %lld %.9g",
                      j + 1, (long long)oi[j], os[j], (long long)vi[0][j], vs[0][j]);
        printf("recommend --features: 2 rows (float32 and float64) equal --video %lld and %lld (%lld near-tie "
               "swaps)\n", (long long)a, (long long)b, (long long)swaps);
    }
    json_decref(jf);
    json_decref(jd);
    json_decref(j1);
    json_decref(ja);
    json_decref(jb);
done:
    free(rows);
    free(rows64);
}

/* a teacher ranks the musics of data_pgc and takes the ids of data_pgc's videos */
static void test_teacher(loaded *x)
{
    embeddings te;
    if (export_model(teacher_ckpt, "export-teacher", &te))
        return;
    CHECK(te.Nm == x->ds.pgc_vggish.rows && te.Nv == x->ds.pgc_video.rows);
    json_t *j = run_json("recommend --json --model '%s' --data '%s' --video 3 -k 5", teacher_ckpt, root);
    int64_t ids[5], v;
    double sc[5];
    if (j && parse_json(j, 0, ids, sc, 5, &v) == 0) {
        CHECK(!strcmp(json_string_value(json_object_get(j, "model")), "teacher"));
        CHECK(strstr(json_string_value(json_object_get(j, "musics_of")), "data_pgc") != NULL);
        check_against_argsort(&te, 3, ids, sc, 5, "teacher recommend --video 3");
    } else {
        CHECK_MSG(0, "teacher recommend: no results");
    }
    json_decref(j);
    /* the first id past data_pgc's videos: refused for the teacher, a video of data_matching for the student */
    const int64_t id = x->ds.pgc_video.rows;
    int st = cli_sh("recommend --model '%s' --data '%s' --video %lld", teacher_ckpt, root, (long long)id);
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 1 && cli_lines(err) == 1 && strstr(err ? err : "", "mv_video_resnet_features.npy") &&
                  strstr(err ? err : "", "a teacher checkpoint"),
              "teacher --video %lld: status %d: %s", (long long)id, st, err ? err : "");
    free(err);
    if (id < x->ds.ugc_video.rows)
        CHECK(cli_sh("recommend --model '%s' --data '%s' --video %lld", student_ckpt, root, (long long)id) == 0);
    embeddings_free(&te);
}

/* cli_sh() in a forked child whose files may not grow past limit bytes (RLIMIT_FSIZE; SIGXFSZ ignored, so that a
 * write past it fails with EFBIG instead of killing): a disk that fills at a chosen size. */
static int sh_fsize_limited(rlim_t limit, const char *fmt, ...) DEBCM_PRINTF(2, 3);
static int sh_fsize_limited(rlim_t limit, const char *fmt, ...)
{
    char args[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        struct rlimit rl = {limit, limit};
        signal(SIGXFSZ, SIG_IGN);
        _exit(setrlimit(RLIMIT_FSIZE, &rl) != 0 ? 126 : cli_sh("%s", args));
    }
    int st;
    if (p < 0 || waitpid(p, &st, 0) != p)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

/* Whether a and b hold the same bytes (sizes included); a missing file is never equal. */
static int same_bytes(const char *a, size_t na, const char *b, size_t nb)
{
    return a && b && na == nb && !memcmp(a, b, na);
}

/* The pair on disk (apps/cmd_export.c): the files are npy_write's bytes exactly; a failure on the second file (a
 * file-size limit between the sizes of the two) exits 1 naming it and leaves the previous pair byte for byte and
 * no temporary file; a temporary file of an export that died is removed by the next export, one whose process
 * still runs (this test's pid) is kept. */
static void test_export_pair(void)
{
    char dir[4096], pm[4096], pv[4096], sm[4096], sv[4096], p[4096];
    cli_wpath(dir, "export-pair");
    snprintf(pm, sizeof pm, "%s/music_embeddings.npy", dir);
    snprintf(pv, sizeof pv, "%s/video_embeddings.npy", dir);
    cli_wpath(sm, "export/a/b/music_embeddings.npy"); /* the student's, exported by main */
    cli_wpath(sv, "export/a/b/video_embeddings.npy");
    /* the exported bytes are those of npy_write for the same matrix */
    const char *const exported[2] = {sm, sv};
    for (int i = 0; i < 2; i++) {
        int64_t r = 0, c = 0;
        float *x = read_matrix(exported[i], &r, &c);
        const int64_t shape[2] = {r, c};
        size_t n0 = 0, n1 = 0;
        char *a = test_read_file(exported[i], &n0), *b = NULL;
        if (x && npy_write(cli_wpath(p, "npy_write-copy.npy"), NPY_FLOAT32, 2, shape, x, NULL) == 0)
            b = test_read_file(p, &n1);
        CHECK_MSG(same_bytes(a, n0, b, n1), "%s: not the bytes npy_write writes for the same [%lld, %lld] matrix",
                  exported[i], (long long)r, (long long)c);
        free(a);
        free(b);
        free(x);
        unlink(p);
    }
    /* the previous pair: the teacher's */
    int st = cli_sh("export --model '%s' --data '%s' --out '%s'", teacher_ckpt, root, dir);
    CHECK_MSG(st == 0, "export of the teacher: status %d", st);
    size_t nm0 = 0, nv0 = 0;
    char *m0 = test_read_file(pm, &nm0), *v0 = test_read_file(pv, &nv0);
    /* the student's pair into it, with the disk "full" past the music file: the video file cannot be written */
    const int64_t size_m = file_size(sm), size_v = file_size(sv);
    CHECK_MSG(m0 && v0 && size_m > 0 && size_v > size_m + 1, "teacher pair %s, student files of %lld and %lld bytes",
              m0 && v0 ? "read" : "missing", (long long)size_m, (long long)size_v);
    if (m0 && v0 && size_m > 0 && size_v > size_m + 1) {
        st = sh_fsize_limited((rlim_t)((size_m + size_v) / 2), "export --model '%s' --data '%s' --out '%s'",
                              student_ckpt, root, dir);
        char *err = test_read_file(err_txt, NULL);
        CHECK_MSG(st == 1 && cli_lines(err) == 1 && strstr(err ? err : "", "video_embeddings.npy"),
                  "export with the video file past the file-size limit: status %d (want 1), stderr (want one line "
                  "naming video_embeddings.npy): %s",
                  st, err ? err : "");
        free(err);
        size_t nm1 = 0, nv1 = 0;
        char *m1 = test_read_file(pm, &nm1), *v1 = test_read_file(pv, &nv1);
        CHECK_MSG(same_bytes(m0, nm0, m1, nm1), "a failed export changed %s (the previous pair is the teacher's)", pm);
        CHECK_MSG(same_bytes(v0, nv0, v1, nv1), "a failed export changed %s", pv);
        CHECK_MSG(test_count_temp_files(dir) == 0, "a failed export left %d temporary files in %s",
                  test_count_temp_files(dir), dir);
        free(m1);
        free(v1);
    }
    free(m0);
    free(v0);
    /* stale temporary files: of a process that has exited (removed), of one that runs (kept), another name (kept) */
    fflush(NULL);
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    CHECK(dead > 0 && waitpid(dead, NULL, 0) == dead);
    char stale[4096], live[4096], other[4096];
    snprintf(stale, sizeof stale, "%s/music_embeddings.npy.tmp.%ld", dir, (long)dead);
    snprintf(live, sizeof live, "%s/video_embeddings.npy.tmp.%ld", dir, (long)getpid());
    snprintf(other, sizeof other, "%s/music_embeddings.npy.tmp.12x", dir);
    const char *const planted[3] = {stale, live, other};
    for (int i = 0; i < 3; i++) {
        FILE *f = fopen(planted[i], "w");
        CHECK_MSG(f && fputs("half a file", f) >= 0 && fclose(f) == 0, "cannot write %s", planted[i]);
    }
    st = cli_sh("export --model '%s' --data '%s' --out '%s'", student_ckpt, root, dir);
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 0, "export over stale temporary files: status %d: %s", st, err ? err : "");
    CHECK_MSG(!cli_exists(stale), "%s (a dead process's) was not removed", stale);
    CHECK_MSG(err && strstr(err, stale) && cli_lines(err) == 1, "export: want one line naming the removed %s: %s", stale,
              err ? err : "");
    CHECK_MSG(cli_exists(live), "%s (this test's pid, a running process) was removed", live);
    CHECK_MSG(cli_exists(other), "%s (not a temporary name of export) was removed", other);
    free(err);
    CHECK_MSG(file_size(pm) == file_size(sm) && file_size(pv) == file_size(sv),
              "after the export the pair in %s is not the student's", dir);
    unlink(live);
    unlink(other);
    CHECK_MSG(test_count_temp_files(dir) == 0, "temporary files left in %s", dir);
}

static void expect_fail(int want, const char *needle, const char *fmt, ...) DEBCM_PRINTF(3, 4);
static void expect_fail(int want, const char *needle, const char *fmt, ...)
{
    char args[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    int st = cli_sh("%s", args);
    char *err = test_read_file(err_txt, NULL), *out = test_read_file(out_txt, NULL);
    CHECK_MSG(st == want && cli_lines(err) == 1 && strstr(err ? err : "", needle) && (!out || !*out),
              "debcm %s: status %d (want %d), stderr (want one line with '%s'): %s", args, st, want, needle,
              err ? err : "");
    free(err);
    free(out);
}

static void test_errors(loaded *x)
{
    const int64_t Dv = x->ds.ugc_video.cols, Nv = x->ds.ugc_video.rows, Nm = x->ds.ugc_vggish.rows;
    const char *S = student_ckpt;
    char wide[4096], ints[4096], nan_f[4096], empty[4096], missing[4096], other[4096], plain[4096], want[256];
    float *buf = calloc((size_t)(3 * (Dv + 1)), sizeof *buf);
    int64_t *ibuf = calloc((size_t)(2 * Dv), sizeof *ibuf);
    if (!buf || !ibuf) {
        CHECK(0);
        free(buf);
        free(ibuf);
        return;
    }
    const int64_t sw[2] = {2, Dv + 1}, si[2] = {2, Dv}, sn[2] = {3, Dv}, se[2] = {0, Dv};
    CHECK(npy_write(cli_wpath(wide, "wide.npy"), NPY_FLOAT32, 2, sw, buf, NULL) == 0);
    CHECK(npy_write(cli_wpath(ints, "ints.npy"), NPY_INT64, 2, si, ibuf, NULL) == 0);
    buf[1 * Dv + 2] = NAN;
    CHECK(npy_write(cli_wpath(nan_f, "nan.npy"), NPY_FLOAT32, 2, sn, buf, NULL) == 0);
    CHECK(npy_write(cli_wpath(empty, "empty.npy"), NPY_FLOAT32, 2, se, buf, NULL) == 0);
    free(buf);
    free(ibuf);
    cli_wpath(missing, "no-such-file.npy");
    /* bad input: exit 1, one line naming the file or option */
    snprintf(want, sizeof want, "wide.npy: rows of %lld values: expected D_v = %lld (the width of ", (long long)(Dv + 1),
             (long long)Dv);
    expect_fail(1, want, "recommend --model '%s' --data '%s' --features '%s'", S, root, wide);
    expect_fail(1, "ints.npy: dtype int64: expected float32 or float64", "recommend --model '%s' --data '%s' "
                "--features '%s'", S, root, ints);
    expect_fail(1, "nan.npy: row 1, column 2: NaN", "recommend --model '%s' --data '%s' --features '%s'", S, root,
                nan_f);
    expect_fail(1, "empty.npy: no rows", "recommend --model '%s' --data '%s' --features '%s'", S, root, empty);
    expect_fail(1, "no-such-file.npy", "recommend --model '%s' --data '%s' --features '%s'", S, root, missing);
    snprintf(want, sizeof want, "--video %lld: outside [0, %lld)", (long long)Nv, (long long)Nv);
    expect_fail(1, want, "recommend --model '%s' --data '%s' --video %lld", S, root, (long long)Nv);
    snprintf(want, sizeof want, "-k %lld: expected 1 .. %lld (the musics of", (long long)(Nm + 1), (long long)Nm);
    expect_fail(1, want, "recommend --model '%s' --data '%s' --video 0 -k %lld", S, root, (long long)(Nm + 1));
    CHECK(cli_sh("recommend --model '%s' --data '%s' --video 0 -k %lld", S, root, (long long)Nm) == 0); /* all musics */
    expect_fail(1, "no-such-model.safetensors", "recommend --model '%s/no-such-model.safetensors' --data '%s' "
                "--video 0", work, root);
    expect_fail(1, "a resume checkpoint", "recommend --model '%s/resume.safetensors' --data '%s' --video 0", run_dir,
                root);
    expect_fail(1, "debcm recommend: error: ", "recommend --model '%s' --data '%s/nowhere' --video 0", S, work);
    /* a student of D_v 64 on data of D_v 32: the shapes named */
    if (cli_sh("synth --scale tiny --dim-v 32 --out '%s'", cli_wpath(other, "tiny-dv32")) == 0) {
        expect_fail(1, "tensor 'v_encoder.fc_mu.weight': expected shape", "recommend --model '%s' --data '%s' "
                    "--video 0", S, other);
        expect_fail(1, "tensor 'v_encoder.fc_mu.weight': expected shape", "export --model '%s' --data '%s' --out "
                    "'%s/never'", S, other, work);
    } else {
        CHECK_MSG(0, "synth --dim-v 32 failed");
    }
    /* bad usage: exit 2 */
    expect_fail(2, "-k expects an integer", "recommend --model '%s' --data '%s' --video 0 -k 0", S, root);
    expect_fail(2, "-k expects an integer", "recommend --model '%s' --data '%s' --video 0 -k 3x", S, root);
    expect_fail(2, "--video expects a video id", "recommend --model '%s' --data '%s' --video -1", S, root);
    expect_fail(2, "not both", "recommend --model '%s' --data '%s' --video 0 --features '%s'", S, root, wide);
    expect_fail(2, "need --video ID or --features FILE", "recommend --model '%s' --data '%s'", S, root);
    expect_fail(2, "--model CKPT is required", "recommend --data '%s' --video 0", root);
    expect_fail(2, "need --data ROOT", "recommend --model '%s' --video 0", S);
    expect_fail(2, "unknown option '--colour'", "recommend --model '%s' --data '%s' --video 0 --colour", S, root);
    expect_fail(2, "needs a value", "recommend --model '%s' --data '%s' --video", S, root);
    expect_fail(2, "--device expects cpu or cuda", "recommend --model '%s' --data '%s' --video 0 --device tpu", S,
                root);
    expect_fail(2, "--threads expects an integer", "recommend --model '%s' --data '%s' --video 0 --threads 0", S,
                root);
    expect_fail(2, "--out DIR is required", "export --model '%s' --data '%s'", S, root);
    expect_fail(2, "unexpected argument", "export --model '%s' '%s' extra --out x", S, root);
    /* export into something that cannot be a directory */
    FILE *pf = fopen(cli_wpath(plain, "plainfile"), "w");
    if (pf)
        fclose(pf);
    expect_fail(1, "exists and is not a directory", "export --model '%s' --data '%s' --out '%s/sub'", S, root, plain);
    /* --device cuda: a GPU runs it; otherwise one line naming the option */
    int st = cli_sh("recommend --model '%s' --data '%s' --video 0 --device cuda", S, root);
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 0 || (st == 1 && cli_lines(err) == 1 && strstr(err ? err : "", "--device cuda")),
              "--device cuda: status %d: %s", st, err ? err : "");
    free(err);
    /* --help */
    CHECK(cli_sh("recommend --help") == 0);
    char *out = test_read_file(out_txt, NULL);
    CHECK(out && strstr(out, "usage: debcm recommend --model CKPT --data ROOT (--video ID | --features FILE.npy)"));
    free(out);
    CHECK(cli_sh("export --help") == 0);
    out = test_read_file(out_txt, NULL);
    CHECK(out && strstr(out, "usage: debcm export --model CKPT --data ROOT --out DIR"));
    free(out);
    CHECK(cli_sh("--help") == 0);
    out = test_read_file(out_txt, NULL);
    CHECK(out && strstr(out, "recommend") && strstr(out, "export"));
    free(out);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_recommend DEBCM WORKDIR\n");
        return 2;
    }
    debcm = argv[1];
    work = argv[2];
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", work, work);
    if (system(cmd) != 0)
        return 1;
    snprintf(out_txt, sizeof out_txt, "%s/out.txt", work);
    snprintf(err_txt, sizeof err_txt, "%s/err.txt", work);
    test_top_k_order();
    test_music_genres();
    const unsigned seed = 11;
    printf("data seed 1 (synth tiny, 600 videos, 120 musics, 30 negatives), run seed %u\n", seed);
    if (cli_sh("synth --scale tiny --videos 600 --musics 120 --negatives 30 --out '%s'", cli_wpath(root, "tiny")) != 0 ||
        cli_sh("run '%s' --teacher-epochs 2 --student-epochs 4 --batch-size 64 --seed %u --out '%s'", root, seed,
           cli_wpath(run_dir, "run")) != 0) {
        char *err = test_read_file(err_txt, NULL);
        fprintf(stderr, "setup failed: %s\n", err ? err : "");
        free(err);
        return 1;
    }
    snprintf(student_ckpt, sizeof student_ckpt, "%s/student.safetensors", run_dir);
    snprintf(teacher_ckpt, sizeof teacher_ckpt, "%s/teacher.safetensors", run_dir);
    loaded x;
    load(&x);
    if (x.ok) {
        test_collapsed(&x);
        model_full_result r;
        test_library(&x, &r);
        embeddings e;
        memset(&e, 0, sizeof e);
        if (r.row_rank && r.row_rank_neg && r.row_top && export_model(student_ckpt, "export/a/b", &e) == 0) {
            test_against_export(&x, &r, &e);
            test_recommend_video(&x, &e);
            test_recommend_features(&x, &e);
        }
        embeddings_free(&e);
        free(r.row_rank);
        free(r.row_rank_neg);
        free(r.row_top);
        model_full_result_free(&r);
        test_teacher(&x);
        test_export_pair();
        test_errors(&x);
    }
    unload(&x);
    CHECK(!cli_exists(cli_wpath(cmd, "never")));
    return check_done();
}
