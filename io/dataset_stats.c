/* io/dataset_stats.c — the summary numbers `debcm inspect` prints for a loaded dataset (io/dataset.h): sizes,
 * dimensions, the genre distribution of the training labels, and the popularity skew (the share of training
 * labels that go to the most-used 1% of musics), which is the bias DebCM sets out to correct; and the fingerprint a
 * resumed run checks its data against. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/error.h"
#include "io/crc32.h"
#include "io/dataset.h"

static int cmp_desc_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x < y) - (x > y);
}

/* Share of the n labels that go to the top ceil(1%) musics by label count; *top gets that music count. */
static int top_share(const int64_t *music, int64_t n, int64_t n_musics, int64_t *top, double *share,
                     int64_t *distinct)
{
    *top = 0;
    *share = 0.0;
    if (distinct)
        *distinct = 0;
    if (n_musics <= 0 || n <= 0)
        return 0;
    int64_t *count = calloc((size_t)n_musics, sizeof *count);
    if (!count)
        return debcm_fail("out of memory counting music labels");
    for (int64_t r = 0; r < n; r++)
        if (music[r] >= 0 && music[r] < n_musics)
            count[music[r]]++;
    if (distinct)
        for (int64_t m = 0; m < n_musics; m++)
            *distinct += count[m] > 0;
    qsort(count, (size_t)n_musics, sizeof *count, cmp_desc_i64);
    int64_t k = (n_musics + 99) / 100, sum = 0;
    for (int64_t i = 0; i < k; i++)
        sum += count[i];
    *top = k;
    *share = (double)sum / (double)n;
    free(count);
    return 0;
}

int dataset_summarise(dataset_summary *s, const debcm_dataset *ds)
{
    memset(s, 0, sizeof *s);
    s->pgc_videos = ds->pgc_video.rows;
    s->pgc_dim_v = ds->pgc_video.cols;
    s->pgc_musics = ds->pgc_vggish.rows;
    s->pgc_dim_vggish = ds->pgc_vggish.cols;
    s->pgc_dim_smile = ds->pgc_smile.cols;
    s->pgc_train = ds->pgc_train.n;
    s->pgc_val = ds->pgc_val.n;
    s->ugc_videos = ds->ugc_video.rows;
    s->ugc_dim_v = ds->ugc_video.cols;
    s->ugc_musics = ds->ugc_vggish.rows;
    s->ugc_dim_vggish = ds->ugc_vggish.cols;
    s->ugc_dim_smile = ds->ugc_smile.cols;
    s->train_rows = ds->train.n;
    s->val_rows = ds->val.n;
    s->test_rows = ds->test.n;
    s->genres = ds->train.G > 0 ? ds->train.G : ds->prior_mean_len;
    s->val_negatives = ds->val.n_neg;
    s->test_negatives = ds->test.n_neg;
    const feat_matrix *feats[6] = {&ds->pgc_video, &ds->pgc_vggish, &ds->pgc_smile,
                                   &ds->ugc_video, &ds->ugc_vggish, &ds->ugc_smile};
    for (int i = 0; i < 6; i++)
        s->features_mapped += feats[i]->mapped;

    if (s->genres > 0 && ds->train.genre_offset) {
        s->genre_label_count = calloc((size_t)s->genres, sizeof *s->genre_label_count);
        if (!s->genre_label_count)
            return debcm_fail("out of memory");
        for (int64_t r = 0; r < ds->train.n; r++)
            for (int64_t j = ds->train.genre_offset[r]; j < ds->train.genre_offset[r + 1]; j++) {
                int32_t g = ds->train.genre_ids[j];
                if (g >= 0 && g < s->genres)
                    s->genre_label_count[g]++;
                else
                    s->genre_out_of_range++;
            }
    }
    if (ds->train.music &&
        top_share(ds->train.music, ds->train.n, s->ugc_musics, &s->top1pct_musics, &s->top1pct_label_share,
                  &s->train_distinct_musics) != 0)
        return -1;
    int64_t pgc_top;
    if (ds->pgc_train.music &&
        top_share(ds->pgc_train.music, ds->pgc_train.n, s->pgc_musics, &pgc_top, &s->pgc_top1pct_label_share,
                  NULL) != 0)
        return -1;
    for (int64_t r = 0; ds->val.weight && r < ds->val.n; r++)
        s->val_weight_sum += ds->val.weight[r];
    for (int64_t r = 0; ds->test.weight && r < ds->test.n; r++)
        s->test_weight_sum += ds->test.weight[r];
    return 0;
}

void dataset_summary_free(dataset_summary *s)
{
    free(s->genre_label_count);
    memset(s, 0, sizeof *s);
}

/* ---- the fingerprint ------------------------------------------------------------------------------------------ */

static uLong crc_array(uLong crc, const void *p, int64_t n, size_t elem)
{
    return crc32_update((uint32_t)crc, p, p && n > 0 ? (uint64_t)n * elem : 0);
}

/* a feature matrix: every value (a pass over the mapped file on every core: 1.4 GB at TT-150k) */
static uLong crc_features(uLong crc, const feat_matrix *m)
{
    if (m->rows <= 0 || m->cols <= 0 || !m->data)
        return crc;
    return crc32_update_parallel((uint32_t)crc, m->data, (uint64_t)m->rows * (uint64_t)m->cols * sizeof(float));
}

int dataset_fingerprint(const debcm_dataset *ds, char *out, size_t cap)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const feat_matrix *f[6] = {&ds->pgc_video, &ds->pgc_vggish, &ds->pgc_smile,
                               &ds->ugc_video, &ds->ugc_vggish, &ds->ugc_smile};
    for (int i = 0; i < 6; i++)
        crc = crc_features(crc, f[i]);
    const pair_list *pl[2] = {&ds->pgc_train, &ds->pgc_val};
    for (int i = 0; i < 2; i++) {
        crc = crc_array(crc, pl[i]->video, pl[i]->n, sizeof(int64_t));
        crc = crc_array(crc, pl[i]->music, pl[i]->n, sizeof(int64_t));
    }
    const ugc_train *t = &ds->train;
    crc = crc_array(crc, t->video, t->n, sizeof(int64_t));
    crc = crc_array(crc, t->music, t->n, sizeof(int64_t));
    crc = crc_array(crc, t->prior, t->n * t->G, sizeof(float));
    const eval_split *e[2] = {&ds->val, &ds->test};
    for (int i = 0; i < 2; i++) {
        crc = crc_array(crc, e[i]->video, e[i]->n, sizeof(int64_t));
        crc = crc_array(crc, e[i]->positive, e[i]->n, sizeof(int64_t));
        crc = crc_array(crc, e[i]->negatives, e[i]->n * e[i]->n_neg, sizeof(int64_t));
        crc = crc_array(crc, e[i]->weight, e[i]->n, sizeof(float));
    }
    crc = crc_array(crc, ds->prior_mean, ds->prior_mean_len, sizeof(float));
    int n = snprintf(out, cap,
                     "data_pgc: %lld videos x %lld, %lld musics x %lld+%lld, %lld/%lld pairs; data_matching: %lld "
                     "videos x %lld, %lld musics x %lld+%lld, %lld/%lld/%lld rows, G %lld, %lld negatives; crc32 %08x",
                     (long long)ds->pgc_video.rows, (long long)ds->pgc_video.cols, (long long)ds->pgc_vggish.rows,
                     (long long)ds->pgc_vggish.cols, (long long)ds->pgc_smile.cols, (long long)ds->pgc_train.n,
                     (long long)ds->pgc_val.n, (long long)ds->ugc_video.rows, (long long)ds->ugc_video.cols,
                     (long long)ds->ugc_vggish.rows, (long long)ds->ugc_vggish.cols, (long long)ds->ugc_smile.cols,
                     (long long)t->n, (long long)ds->val.n, (long long)ds->test.n, (long long)t->G,
                     (long long)ds->val.n_neg, (unsigned)crc);
    if (n < 0 || (size_t)n >= cap)
        return debcm_fail("dataset fingerprint: a buffer of %zu bytes is too small", cap);
    return 0;
}
