/* tests/test_dataset.c — the dataset loader (io/dataset.c) on a `synth --scale tiny` dataset: a clean load with
 * the right counts, then one defect at a time written into a fresh copy (an id out of range, a genre literal
 * that is code, a prior of the wrong width, NaN features, mismatched music files, ragged negatives, ...), each
 * of which must fail (or warn) with a message that names the file, the row and the field. Also the genre
 * literal parser on its own. No NumPy needed: defects are written with io/npy.h and io/pickle.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "dataset_edit.h"
#include "engine/error.h"
#include "io/crc32.h"
#include "io/dataset.h"
#include "io/npy.h"
#include "io/pickle.h"
#include "io/synth.h"

static char tmp_root[256];
static int case_no;

/* A fresh tiny dataset under tmp_root/caseN; returns the root. */
static const char *fresh_dataset(char *root, size_t n)
{
    snprintf(root, n, "%s/case%d", tmp_root, case_no++);
    synth_config c;
    if (synth_config_preset(&c, "tiny") != 0 || synth_write(root, &c, 0, NULL) != 0) {
        fprintf(stderr, "synth failed: %s\n", debcm_last_error());
        exit(1);
    }
    return root;
}

static void dirs(const char *root, char *pgc, char *ugc, size_t n)
{
    snprintf(pgc, n, "%s/data_pgc", root);
    snprintf(ugc, n, "%s/data_matching", root);
}

/* Load, expecting failure; the first error (debcm_last_error) must contain each of the given fragments. */
static void expect_error(const char *root, const char *frag1, const char *frag2, const char *frag3)
{
    char pgc[512], ugc[512];
    dirs(root, pgc, ugc, sizeof pgc);
    debcm_dataset ds;
    int rc = dataset_load(&ds, pgc, ugc);
    CHECK_MSG(rc != 0, "expected the load of %s to fail (%s)", root, frag1);
    const char *msg = debcm_last_error();
    printf("  error: %s\n", msg);
    CHECK(strchr(msg, '\n') == NULL); /* one line */
    if (frag1)
        CHECK_CONTAINS(msg, frag1);
    if (frag2)
        CHECK_CONTAINS(msg, frag2);
    if (frag3)
        CHECK_CONTAINS(msg, frag3);
    dataset_free(&ds);
}

/* Write data_matching/train.npy from the arrays of a loaded dataset (so that a test can change one thing). */
static void write_train(const char *ugc, const ugc_train *t, const char *genre_override_row0, int64_t prior_width_row,
                        int64_t prior_width)
{
    char path[600];
    snprintf(path, sizeof path, "%s/train.npy", ugc);
    pickle_writer w;
    int64_t shape[2] = {t->n, 5};
    CHECK(pickle_writer_begin(&w, 2, shape) == 0);
    double prior[64];
    for (int64_t r = 0; r < t->n; r++) {
        char genre[64];
        int o = snprintf(genre, sizeof genre, "[");
        for (int64_t j = t->genre_offset[r]; j < t->genre_offset[r + 1]; j++)
            o += snprintf(genre + o, sizeof genre - (size_t)o, "%s%d", j > t->genre_offset[r] ? ", " : "",
                          t->genre_ids[j]);
        snprintf(genre + o, sizeof genre - (size_t)o, "]");
        for (int64_t g = 0; g < t->G; g++)
            prior[g] = t->prior[r * t->G + g];
        pickle_write_np_int64(&w, t->video[r]);
        pickle_write_np_int64(&w, t->music[r]);
        pickle_write_str(&w, r == 0 && genre_override_row0 ? genre_override_row0 : genre);
        pickle_write_float_list(&w, prior, (size_t)(r == prior_width_row ? prior_width : t->G));
        pickle_write_float(&w, t->propensity[r]);
    }
    CHECK(pickle_writer_end(&w) == 0);
    CHECK(npy_write_object(path, 2, shape, w.buf, w.len, NULL) == 0);
    pickle_writer_free(&w);
}

/* Load a fresh dataset that must be clean. */
static int load_clean(debcm_dataset *ds, const char *root)
{
    char pgc[512], ugc[512];
    dirs(root, pgc, ugc, sizeof pgc);
    int rc = dataset_load(ds, pgc, ugc);
    if (rc != 0)
        fprintf(stderr, "clean load failed: %s\n", debcm_last_error());
    return rc;
}

static void test_clean_load(void)
{
    char root[300];
    fresh_dataset(root, sizeof root);
    synth_config c;
    synth_config_preset(&c, "tiny");
    debcm_dataset ds;
    CHECK(load_clean(&ds, root) == 0);
    CHECK(ds.problems.errors == 0);
    CHECK(ds.ugc_video.rows == c.videos);
    CHECK(ds.ugc_video.cols == c.dim_v);
    CHECK(ds.ugc_vggish.rows == c.musics && ds.ugc_vggish.cols == c.dim_vggish);
    CHECK(ds.ugc_smile.cols == c.dim_smile);
    CHECK(ds.pgc_video.cols == c.dim_v);
    CHECK(ds.train.n + ds.val.n + ds.test.n == c.videos);
    CHECK(ds.pgc_train.n + ds.pgc_val.n == c.pgc);
    CHECK(ds.train.G == c.genres && ds.prior_mean_len == c.genres);
    CHECK(ds.val.n_neg == c.negatives && ds.test.n_neg == c.negatives);
    CHECK(ds.ugc_video.mapped == 1); /* little-endian float32: used in place */
    CHECK(ds.val.rows_positive_in_negatives == 0);
    dataset_summary s;
    CHECK(dataset_summarise(&s, &ds) == 0);
    int64_t labels = 0;
    for (int64_t g = 0; g < s.genres; g++)
        labels += s.genre_label_count[g];
    CHECK(labels >= ds.train.n); /* every row has at least one genre */
    CHECK(s.top1pct_label_share > 0.0 && s.top1pct_label_share <= 1.0);
    CHECK_NEAR(s.val_weight_sum, 1.0, 1e-4);
    dataset_summary_free(&s);
    dataset_free(&ds);
}

static void test_defects(void)
{
    char root[300], pgc[512], ugc[512];
    debcm_dataset ds;

    /* a training music id out of range */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    ds.train.music[3] = 9999;
    write_train(ugc, &ds.train, NULL, -1, 0);
    dataset_free(&ds);
    expect_error(root, "data_matching/train.npy: row 3, field 'music'", "expected an id in [0, 60)", "found 9999");

    /* a genre literal that is code, not a list */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    write_train(ugc, &ds.train, "__import__('os').system('true')", -1, 0);
    dataset_free(&ds);
    expect_error(root, "train.npy: row 0, field 'genre'", "expected a list literal", "__import__");

    /* a prior of the wrong width in row 5 */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    write_train(ugc, &ds.train, NULL, 5, ds.train.G + 1);
    dataset_free(&ds);
    expect_error(root, "train.npy: row 5, field 'user_prior'", "expected 6 genre probabilities", "found 7");

    /* a prior that does not sum to 1 is a warning, not an error */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    ds.train.prior[2 * ds.train.G] += 0.5f;
    write_train(ugc, &ds.train, NULL, -1, 0);
    dataset_free(&ds);
    CHECK(load_clean(&ds, root) == 0);
    CHECK(ds.problems.warnings == 1);
    CHECK(ds.problems.count == 1 && strstr(ds.problems.items[0].message, "row 2, field 'user_prior'"));
    dataset_free(&ds);

    /* the prior mean has another G */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    {
        float pm[7] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.4f};
        int64_t shape[1] = {7};
        write_f32(ugc, "user_prior_mean.npy", 1, shape, pm);
    }
    expect_error(root, "user_prior_mean.npy", "expected 6 genre probabilities", "found 7");

    /* a NaN weight and a negative weight */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    ds.val.weight[4] = NAN;
    ds.val.weight[6] = -1.0f;
    {
        int64_t shape[1] = {ds.val.n};
        write_f32(ugc, "video_popularity_val.npy", 1, shape, ds.val.weight);
    }
    dataset_free(&ds);
    expect_error(root, "video_popularity_val.npy: row 4", "expected a finite weight >= 0", "nan");
    CHECK(load_clean(&ds, root) != 0 && ds.problems.errors == 2);
    dataset_free(&ds);

    /* NaN in the features: the first row and column are named */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    {
        int64_t rows = ds.ugc_video.rows, cols = ds.ugc_video.cols;
        float *copy = malloc((size_t)(rows * cols) * sizeof *copy);
        memcpy(copy, ds.ugc_video.data, (size_t)(rows * cols) * sizeof *copy);
        copy[7 * cols + 3] = NAN;
        copy[9 * cols + 1] = INFINITY;
        int64_t shape[2] = {rows, cols};
        dataset_free(&ds);
        write_f32(ugc, "visual_features_resnet_V.npy", 2, shape, copy);
        free(copy);
    }
    expect_error(root, "visual_features_resnet_V.npy: row 7, column 3", "found NaN", "2 non-finite");

    /* the two music files of data_matching disagree in row count */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    {
        int64_t shape[2] = {ds.ugc_smile.rows - 1, ds.ugc_smile.cols};
        float *copy = malloc((size_t)(shape[0] * shape[1]) * sizeof *copy);
        memcpy(copy, ds.ugc_smile.data, (size_t)(shape[0] * shape[1]) * sizeof *copy);
        dataset_free(&ds);
        write_f32(ugc, "new_music_smile_features_norm.npy", 2, shape, copy);
        free(copy);
    }
    expect_error(root, "new_music_smile_features_norm.npy", "expected 60 rows", "found 59");

    /* ragged negatives in the validation rows */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    write_eval(ugc, "val", &ds.val, 2);
    dataset_free(&ds);
    expect_error(root, "100neg/val.npy: row 2, field 'negatives'", "expected 20 negatives", "found 19");

    /* a positive among its own negatives, and a duplicated negative: warnings with counts */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    ds.test.negatives[1 * ds.test.n_neg + 4] = ds.test.positive[1];
    ds.test.negatives[3 * ds.test.n_neg + 4] = ds.test.positive[3];
    ds.test.negatives[5 * ds.test.n_neg + 1] = ds.test.negatives[5 * ds.test.n_neg];
    write_eval(ugc, "test", &ds.test, -1);
    dataset_free(&ds);
    CHECK(load_clean(&ds, root) == 0);
    CHECK(ds.test.rows_positive_in_negatives == 2);
    CHECK(ds.test.rows_duplicate_negatives == 1);
    CHECK(ds.problems.warnings == 3);
    dataset_free(&ds);

    /* a PGC pair whose video is out of range (numeric pairs) */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    {
        int64_t n = ds.pgc_train.n;
        int64_t *pairs = malloc((size_t)n * 2 * sizeof *pairs);
        for (int64_t r = 0; r < n; r++) {
            pairs[2 * r] = ds.pgc_train.video[r];
            pairs[2 * r + 1] = ds.pgc_train.music[r];
        }
        pairs[0] = -1;
        int64_t shape[2] = {n, 2};
        char path[600];
        snprintf(path, sizeof path, "%s/train.npy", pgc);
        CHECK(npy_write(path, NPY_INT64, 2, shape, pairs, NULL) == 0);
        free(pairs);
    }
    dataset_free(&ds);
    expect_error(root, "data_pgc/train.npy: row 0, field 'video'", "expected an id in [0,", "found -1");

    /* a missing file */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    {
        char path[600];
        snprintf(path, sizeof path, "%s/vggish_features.npy", pgc);
        CHECK(unlink(path) == 0);
    }
    expect_error(root, "data_pgc/vggish_features.npy", NULL, NULL);

    /* a truncated object array */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    {
        char path[600];
        snprintf(path, sizeof path, "%s/train.npy", ugc);
        FILE *f = fopen(path, "rb");
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fclose(f);
        CHECK(truncate(path, size / 2) == 0);
    }
    expect_error(root, "data_matching/train.npy", NULL, NULL);

    /* a training file that is a plain numeric array */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    {
        float zeros[10] = {0};
        int64_t shape[2] = {2, 5};
        write_f32(ugc, "train.npy", 2, shape, zeros);
    }
    expect_error(root, "data_matching/train.npy", "expected an object array of rows", "found float32");

    /* an empty evaluation split */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    {
        eval_split empty = ds.val;
        empty.n = 0;
        write_eval(ugc, "val", &empty, -1);
    }
    dataset_free(&ds);
    expect_error(root, "100neg/val.npy", "expected at least one evaluation row", NULL);

    /* weights shorter than the rows: an error, and nothing reads past them (a crash once, under inspect) */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    {
        int64_t shape[1] = {ds.test.n - 1};
        write_f32(ugc, "video_popularity_test.npy", 1, shape, ds.test.weight);
    }
    dataset_free(&ds);
    expect_error(root, "video_popularity_test.npy", "expected one weight per row", "found 23");
    {
        debcm_dataset bad;
        CHECK(dataset_load(&bad, pgc, ugc) != 0);
        CHECK(bad.test.weight == NULL);
        dataset_summary s;
        CHECK(dataset_summarise(&s, &bad) == 0);
        CHECK(s.test_weight_sum == 0.0);
        dataset_summary_free(&s);
        dataset_free(&bad);
    }

    /* genre ids beyond G, an empty genre list and a propensity <= 0 are warnings with their rows */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    ds.train.propensity[4] = 0.0f;
    ds.train.propensity[8] = -1.0f;
    write_train(ugc, &ds.train, "[9]", -1, 0);
    dataset_free(&ds);
    CHECK(load_clean(&ds, root) == 0);
    CHECK(ds.problems.warnings == 3);
    {
        int seen_genre = 0, seen_prop = 0;
        for (int i = 0; i < ds.problems.count; i++) {
            seen_genre += strstr(ds.problems.items[i].message, "row 0, field 'genre': expected genre ids in [0, 6)") != NULL;
            seen_prop += strstr(ds.problems.items[i].message, "row 4, field 'propensity'") != NULL &&
                         strstr(ds.problems.items[i].message, "(2 rows in all)") != NULL;
        }
        CHECK(seen_genre == 1 && seen_prop == 1);
    }
    dataset_free(&ds);
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    write_train(ugc, &ds.train, "[]", -1, 0);
    dataset_free(&ds);
    CHECK(load_clean(&ds, root) == 0);
    CHECK(ds.problems.warnings == 1 && ds.problems.count == 1 &&
          strstr(ds.problems.items[0].message, "row 0, field 'genre': expected at least one genre id"));
    dataset_free(&ds);

    /* bool arrays are not ids */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    {
        uint8_t flags[8] = {1, 0, 1, 1, 0, 0, 1, 0};
        int64_t shape[2] = {4, 2};
        char path[600];
        snprintf(path, sizeof path, "%s/val.npy", pgc);
        CHECK(npy_write(path, NPY_BOOL, 2, shape, flags, NULL) == 0);
    }
    expect_error(root, "data_pgc/val.npy", "expected integer pairs", "found bool");

    /* a directory that is not there is one problem, not one per file; the other directory is still checked */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    {
        char moved[600];
        snprintf(moved, sizeof moved, "%s.moved", pgc);
        CHECK(rename(pgc, moved) == 0);
        CHECK(dataset_load(&ds, pgc, ugc) != 0);
        CHECK(ds.problems.errors == 1);
        CHECK_CONTAINS(debcm_last_error(), "expected the teacher (data_pgc) directory, found nothing there");
        CHECK(ds.train.n > 0); /* data_matching was loaded all the same */
        dataset_free(&ds);
    }

    /* float64 and big-endian features are converted, not refused */
    fresh_dataset(root, sizeof root);
    dirs(root, pgc, ugc, sizeof pgc);
    CHECK(load_clean(&ds, root) == 0);
    {
        int64_t rows = ds.pgc_vggish.rows, cols = ds.pgc_vggish.cols;
        double *d = malloc((size_t)(rows * cols) * sizeof *d);
        for (int64_t i = 0; i < rows * cols; i++)
            d[i] = ds.pgc_vggish.data[i];
        float first = ds.pgc_vggish.data[cols + 2];
        int64_t shape[2] = {rows, cols};
        char path[600];
        snprintf(path, sizeof path, "%s/vggish_features.npy", pgc);
        npy_write_options be = {0, 1, 1}; /* version auto, big-endian, Fortran order */
        CHECK(npy_write(path, NPY_FLOAT64, 2, shape, d, &be) == 0);
        free(d);
        dataset_free(&ds);
        CHECK(load_clean(&ds, root) == 0);
        CHECK(ds.pgc_vggish.mapped == 0);
        CHECK(ds.pgc_vggish.data[cols + 2] == first);
        dataset_free(&ds);
    }
}

static void test_genre_literals(void)
{
    struct {
        const char *text;
        int ok;
        int64_t count;
        int32_t first, second;
    } cases[] = {
        {"[2]", 1, 1, 2, 0},         {"[1, 3]", 1, 2, 1, 3},       {" [ 1 , 3 , ] ", 1, 2, 1, 3},
        {"[]", 1, 0, 0, 0},          {"[0,5]", 1, 2, 0, 5},        {"[1 2]", 0, 0, 0, 0},
        {"[-1]", 0, 0, 0, 0},        {"[1]]", 0, 0, 0, 0},         {"eval('1')", 0, 0, 0, 0},
        {"[99999999999]", 0, 0, 0, 0}, {"[1", 0, 0, 0, 0},         {"", 0, 0, 0, 0},
        {"[1.5]", 0, 0, 0, 0},       {"[,]", 0, 0, 0, 0},          {"[1,,2]", 0, 0, 0, 0},
        {"[01]", 0, 0, 0, 0},        {"[0, 10]", 1, 2, 0, 10},     {"[1_0]", 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int32_t *ids = NULL;
        int64_t count = -1;
        int rc = dataset_parse_genre_literal(cases[i].text, strlen(cases[i].text), &ids, &count);
        CHECK_MSG((rc == 0) == cases[i].ok, "literal \"%s\": rc %d", cases[i].text, rc);
        if (rc == 0 && cases[i].ok) {
            CHECK_MSG(count == cases[i].count, "literal \"%s\": count %lld", cases[i].text, (long long)count);
            if (count > 0)
                CHECK(ids[0] == cases[i].first);
            if (count > 1)
                CHECK(ids[1] == cases[i].second);
        }
        if (rc != 0)
            CHECK_CONTAINS(debcm_last_error(), "expected");
        free(ids);
    }
}

/* the fingerprint's CRC of the features: the threads' pieces joined give zlib's one-pass number, for lengths
 * around the 16 MiB piece, and a changed byte anywhere changes it */
static void test_crc_parallel(void)
{
    const size_t n = (size_t)40 << 20;
    unsigned char *b = malloc(n + 1);
    CHECK(b != NULL);
    if (!b)
        return;
    for (size_t i = 0; i < n + 1; i++)
        b[i] = (unsigned char)((i * 2654435761u) >> 13);
    const size_t lens[] = {0, 1, (size_t)16 << 20, ((size_t)16 << 20) + 1, ((size_t)32 << 20) - 1, n};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++)
        for (uint32_t start = 0; start < 2; start++)
            CHECK_MSG(crc32_update_parallel(start * 0x1234567u, b, lens[k]) == crc32_update(start * 0x1234567u, b, lens[k]),
                      "length %zu", lens[k]);
    const uint32_t before = crc32_update_parallel(0, b, n);
    b[(size_t)25 << 20] ^= 1;
    CHECK(crc32_update_parallel(0, b, n) != before);
    free(b);
}

int main(void)
{
    test_crc_parallel();
    snprintf(tmp_root, sizeof tmp_root, "/tmp/debcm-test-dataset-XXXXXX");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    test_genre_literals();
    test_clean_load();
    test_defects();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
    if (check_failures == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_root);
    return check_done();
}
