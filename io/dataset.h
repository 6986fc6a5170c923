/* io/dataset.h — the DebCM dataset in memory: both directories of the published layout (SPEC §1), loaded
 * into typed, validated structures that the engine trains on.
 *
 * data_pgc/ (teacher) gives video and music features and [video, music] pairs; data_matching/ (student) gives
 * video and music features, the training rows [video, music, genre literal, user prior (G floats),
 * propensity] from an object array, the evaluation rows [video, positive, negatives] of 100neg/val.npy and
 * test.npy, their inverse-popularity weights and the prior mean. Feature matrices stay memory-mapped when the
 * file already holds little-endian float32 in C order (otherwise they are converted once). Every check of the
 * loader (ids within their feature matrix, equal row widths, one G everywhere, finite non-negative weights,
 * finite features, music files agreeing in row count, ...) records a problem that names the file, the row
 * and the field, what was expected and what was found. Errors make the load fail; warnings (a prior that does
 * not sum to 1, a positive listed among its own negatives, duplicate negatives, ...) are kept for `inspect`. */
#ifndef DEBCM_DATASET_H
#define DEBCM_DATASET_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "io/npy.h"

/* A float32 matrix [rows, cols], row-major. */
typedef struct {
    const float *data;
    int64_t rows, cols;
    npy_file file; /* keeps the mapping alive when data points into it */
    float *owned;  /* converted copy when the file is not little-endian float32 in C order */
    int mapped;    /* 1 when data points into the file's mapping */
} feat_matrix;

/* [video, music] pairs (data_pgc/train.npy, val.npy). */
typedef struct {
    int64_t n;
    int64_t *video; /* [n] */
    int64_t *music; /* [n] */
} pair_list;

/* data_matching/train.npy */
typedef struct {
    int64_t n;              /* rows */
    int64_t G;              /* genres: the width of every user prior */
    int64_t *video;         /* [n] */
    int64_t *music;         /* [n] */
    int64_t *genre_offset;  /* [n + 1]: row r's genre ids are genre_ids[genre_offset[r] .. genre_offset[r+1]) */
    int32_t *genre_ids;     /* parsed from the literal '[1, 3]' */
    float *prior;           /* [n, G] */
    float *propensity;      /* [n] */
} ugc_train;

/* data_matching/100neg/{val,test}.npy with video_popularity_{val,test}.npy */
typedef struct {
    int64_t n;          /* rows */
    int64_t n_neg;      /* negatives per row (the same for every row) */
    int64_t *video;     /* [n] */
    int64_t *positive;  /* [n] */
    int64_t *negatives; /* [n, n_neg] */
    float *weight;      /* [n] inverse-popularity weight of the row's positive */
    int64_t rows_positive_in_negatives; /* data defects, counted for warnings */
    int64_t rows_duplicate_negatives;
} eval_split;

typedef enum { PROBLEM_ERROR = 0, PROBLEM_WARNING = 1 } problem_severity;

typedef struct {
    problem_severity severity;
    char *message;
} dataset_problem;

typedef struct {
    dataset_problem *items;
    int count, cap;
    int errors, warnings; /* counted per row: a problem found in 70 rows counts 70 */
    int unlisted;         /* messages not kept once PROBLEMS_MAX_KEPT were (their rows are in the counts) */
} problem_list;

typedef struct {
    char pgc_dir[PATH_MAX];
    char ugc_dir[PATH_MAX];
    /* data_pgc/ */
    feat_matrix pgc_video;  /* mv_video_resnet_features.npy [Nv, D_v] */
    feat_matrix pgc_vggish; /* vggish_features.npy [Nm, 128] */
    feat_matrix pgc_smile;  /* opensmile_features_norm.npy [Nm, 128] */
    pair_list pgc_train, pgc_val;
    /* data_matching/ */
    feat_matrix ugc_video;  /* visual_features_resnet_V.npy [Nv, D_v] */
    feat_matrix ugc_vggish; /* music_features.npy [Nm, 128] */
    feat_matrix ugc_smile;  /* new_music_smile_features_norm.npy [Nm, 128] */
    ugc_train train;
    eval_split val, test;
    float *prior_mean;      /* user_prior_mean.npy [G] */
    int64_t prior_mean_len;
    problem_list problems;
} debcm_dataset;

/* The longest file name the loader appends to a directory ("100neg/test.npy", ...), with room to spare: a
 * directory whose path leaves less than this below PATH_MAX is refused as too long. */
#define DATASET_FILE_NAME_MAX 64

/* Load and validate both directories. Returns 0 when no error was found (warnings may be present), -1 otherwise
 * with debcm_last_error() = the first error (and how many more there are); ds->problems lists them all.
 * Call dataset_free in both cases. */
int dataset_load(debcm_dataset *ds, const char *pgc_dir, const char *ugc_dir);
void dataset_free(debcm_dataset *ds);

/* Parse a genre list literal such as "[2]" or "[1, 3]" (never evaluated). On success *ids is malloc'd (NULL
 * for "[]") and *count set. Returns -1 with a message on anything that is not such a literal. */
int dataset_parse_genre_literal(const char *s, size_t n, int32_t **ids, int64_t *count);

/* Summary numbers for `debcm inspect`. */
typedef struct {
    int64_t pgc_videos, pgc_musics, pgc_dim_v, pgc_dim_vggish, pgc_dim_smile, pgc_train, pgc_val;
    int64_t ugc_videos, ugc_musics, ugc_dim_v, ugc_dim_vggish, ugc_dim_smile;
    int64_t train_rows, val_rows, test_rows, genres;
    int64_t val_negatives, test_negatives; /* per row */
    int64_t *genre_label_count;            /* [genres]: training rows whose genre literal lists genre g */
    int64_t genre_out_of_range;            /* genre ids outside [0, genres) */
    int64_t train_distinct_musics;         /* musics used as a training label */
    int64_t top1pct_musics;                /* how many musics make the top 1% (at least 1) */
    double top1pct_label_share;            /* share of training labels that go to those musics */
    double pgc_top1pct_label_share;        /* the same for the PGC training pairs */
    double val_weight_sum, test_weight_sum;
    int features_mapped;                   /* how many of the six feature files are used in place */
} dataset_summary;

int dataset_summarise(dataset_summary *s, const debcm_dataset *ds);
void dataset_summary_free(dataset_summary *s);

/* A line that identifies a dataset: the sizes of every array, and a CRC-32 of every id, weight, prior and feature
 * value (the features on every OpenMP thread: about 1 s for TT-150k's 1.4 GB on two cores). A resumed run refuses
 * data whose fingerprint differs.
 * DATASET_FINGERPRINT_MAX bytes are enough. */
#define DATASET_FINGERPRINT_MAX 512
int dataset_fingerprint(const debcm_dataset *ds, char *out, size_t cap);

#endif
