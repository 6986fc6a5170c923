/* io/synth.h — the synthetic dataset generator behind `debcm synth`: writes a dataset in the published DebCM
 * layout (SPEC §1: data_pgc/ and data_matching/, every file NumPy and the published code read) with a planted
 * structure a model can learn and a selection bias a debiased model can undo. Each music has a latent vector and
 * a genre; music features are noisy projections of the latent; a video's features are a noisy projection of a
 * noisy copy of its true music's latent; music popularity is Zipf-skewed; uploaders prefer one genre and, with
 * probability `bias`, their training label is a popular music of that genre instead of the true match.
 * Validation/test positives and the teacher's PGC pairs are the true match. Every random number is a Philox draw
 * addressed by (seed, stream, index) (engine/rng.h), so the files are byte-identical for a seed whatever the
 * number of OpenMP threads. The caller (apps/cmd_synth.c) writes ROOT/gen_stats.json last, from synth_stats, through
 * synth_write_with_marker: a dataset is complete when that file exists. */
#ifndef DEBCM_SYNTH_H
#define DEBCM_SYNTH_H

#include <stdint.h>

#define SYNTH_STATS_FILE "gen_stats.json" /* written last by the caller: marks a complete dataset */

typedef struct {
    int64_t videos;          /* UGC micro-videos N_v: train 80% / val 10% / test 10% */
    int64_t musics;          /* N_m */
    int64_t pgc;             /* PGC segments (teacher pairs): train 90% / val 10% */
    int64_t dim_v;           /* D_v, video features */
    int64_t dim_vggish;      /* VGGish music features */
    int64_t dim_smile;       /* openSMILE music features (min-max normalised per column) */
    int64_t latent;          /* size of the planted music latent */
    int64_t genres;          /* G */
    int64_t negatives;       /* negatives per evaluation row (the directory is still called 100neg/) */
    double videos_per_user;  /* uploaders = max(1, floor(videos / videos_per_user)) */
    double bias;             /* share of training labels replaced by a popular music of the uploader's genre */
    double zipf;             /* popularity exponent: weight of the music of rank r is (r+1)^-zipf */
    double video_noise;      /* std of the noise added to the music latent before projecting it to a video */
    double feat_scale;       /* weight of the projected latent in every feature */
    double feat_bias;        /* offset of the video features before their ReLU */
    double feat_noise;       /* std of the per-feature noise */
    double multi_genre;      /* share of musics with a second genre ('[1, 3]') */
    uint64_t seed;
} synth_config;

typedef struct {
    int64_t train, val, test;            /* UGC rows of each split */
    int64_t pgc_train, pgc_val;          /* PGC pairs of each split */
    int64_t users;                       /* uploaders */
    double train_label_is_true_music;    /* ≈ 1 - bias (a little more: the biased draw can hit the truth) */
    double top1pct_music_share_of_train_labels;
    int64_t bytes;                       /* payload bytes of the files written (headers excluded) */
} synth_stats;

/* Fill c with a named scale: "tiny" (tests; files of a few KB), "small" (like shared/data/debcm-mini) or
 * "tt150k" (the size of the published TT-150k: 146,000 videos, 3,003 musics, ~1.5 GB). Seed 1. Returns -1 with
 * a message for an unknown name. */
int synth_config_preset(synth_config *c, const char *scale);

/* Check sizes and probabilities (everything positive, negatives <= musics - 1, genres <= musics, at least 10
 * videos and 10 PGC segments so that every split has a row, ...). Returns -1 with a message naming the field. */
int synth_config_validate(const synth_config *c);

/* Generate the dataset and write it under root (created like mkdir -p). Refuses a root that already holds a
 * dataset (gen_stats.json, or data_pgc/ or data_matching/ with anything in them but empty directories) unless
 * force; with force, gen_stats.json is removed first and every file is replaced. Each file is written
 * atomically (io/atomic_file.h). Before anything is written it checks that every path fits PATH_MAX ("path too
 * long") and that the largest buffers fit in memory (an error that gives the size). A run that fails removes
 * what it created — the files it completed and the directories it made (when empty) — so that ROOT is as before
 * and a retry is not refused. Returns -1 with a message that names the path on failure; stats may be NULL. */
int synth_write(const char *root, const synth_config *c, int force, synth_stats *stats);

/* Writes ROOT/gen_stats.json (or whatever marks the dataset complete) once every data file is written; returns
 * 0, or -1 with a message. */
typedef int (*synth_marker_fn)(const char *root, const synth_stats *stats, void *ctx);

/* synth_write, then marker(root, stats, ctx) as the last step, inside the run: if the marker fails, the data
 * files and directories are removed too. */
int synth_write_with_marker(const char *root, const synth_config *c, int force, synth_stats *stats,
                            synth_marker_fn marker, void *ctx);

#endif
