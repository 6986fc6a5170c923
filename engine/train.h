/* engine/train.h — the DebCM training job (SPEC §5): the epoch loop of each phase and the order of the phases.
 *
 * This sits on top of models/ (one training step, Adam, the evaluation protocols, checkpoints) and under
 * apps/cmd_run.c (options, output files, the report). train_data_build joins the music features [vggish ‖ smile]
 * of both directories once (D_m = the sum of the widths, read from the files) and checks that the teacher's and
 * the student's data agree in D_v and D_m (the frozen teacher runs on the student's batches). A phase trains one
 * network for its epochs: every epoch reshuffles the training rows with a Philox Fisher–Yates addressed by (seed,
 * phase, epoch), so an epoch's order does not depend on the ones before; batches of cfg->batch rows, the last
 * shorter batch used (k capped at B − 1 by the ops), a last batch of exactly one row skipped and logged (BatchNorm
 * cannot train on it, SPEC §6); after each epoch the validation protocol of the phase (teacher: full-ranking
 * Recall@25 on data_pgc val; student: 100-negative weighted Recall@25 and NDCG@25 on val) and the best epoch (a
 * strictly greater Recall@25) is copied aside and, when a checkpoint path is given, written at once (atomically).
 * One progress line per epoch goes to the log. Zero epochs keep the initial model (a baseline), validated once. */
#ifndef DEBCM_TRAIN_H
#define DEBCM_TRAIN_H

#include <stdint.h>
#include <stdio.h>

#include "io/dataset.h"
#include "models/checkpoint.h"
#include "models/model.h"

typedef struct {
    const debcm_dataset *ds;
    float *pgc_music; /* [pgc Nm, D_m] = [vggish ‖ smile] of data_pgc */
    float *ugc_music; /* [ugc Nm, D_m] of data_matching */
    model_dims dims;  /* D_v, D_m from the data, L given, G of data_matching (the teacher's network uses G = 0) */
} train_data;

/* Build the joined music features; L is the latent size. −1 with a message when the two directories disagree in
 * D_v or D_m, or out of memory. */
int train_data_build(train_data *td, const debcm_dataset *ds, int64_t L);
void train_data_free(train_data *td);

/* The dimensions of the teacher's (student = 0) or the student's network. */
model_dims train_dims(const train_data *td, int student);

/* Fisher–Yates shuffle of perm[0..n) (filled with 0..n−1 first) from Philox at (seed, stream, counter epoch·2³² + i). */
void train_shuffle(int64_t *perm, int64_t n, uint64_t seed, uint64_t stream, uint64_t epoch);

typedef struct {
    int64_t best_epoch;     /* 0 when no epoch was trained */
    double val_recall;      /* Recall@25 of the best epoch */
    double val_ndcg;        /* NDCG@25 of the best epoch (student) */
    int64_t skipped_batches; /* one-row batches skipped, over all epochs */
    int64_t steps;
    double seconds;
} train_phase_result;

typedef struct {
    uint64_t seed;
    FILE *log;                  /* progress lines; NULL: quiet */
    const char *ckpt_path;      /* where the best epoch goes; NULL: nowhere */
    const checkpoint_meta *meta; /* extra checkpoint metadata (variants) */
    int n_meta;
    int teacher_recompute;      /* student: 1 runs the frozen teacher's encoders every step; 0 (default) computes
                                   its eval-mode posteriors of every training row once per phase (the same
                                   values: no dropout, no noise, frozen weights) and gathers them per batch */
} train_phase_opts;

/* ---- one phase, epoch by epoch (the trainer below, and bench/bench_epoch) ------------------------------------ */

typedef struct train_phase train_phase;

typedef struct {
    double loss, music, video, kl_m, kl_v, recon, distill_m, distill_v; /* means over the epoch's batches */
    int64_t batches, samples, skipped; /* skipped: one-row batches */
    double seconds;
} train_epoch_stats;

/* Prepare a phase: student = 0 trains net (a teacher) on data_pgc train pairs, 1 trains net (a student) on
 * data_matching train rows with the frozen teacher. Allocates the staging, the workspace and (student, unless
 * opt->teacher_recompute) the teacher's posterior cache, whose build time goes to *cache_seconds (may be NULL).
 * *out = NULL and −1 with a message on failure. */
int train_phase_begin(train_phase **out, int student, debcm_net *net, const debcm_net *teacher,
                      const train_data *td, const model_config *cfg, const train_phase_opts *opt,
                      double *cache_seconds);
/* One epoch (1-based): its shuffle, then every step with Adam. No validation. */
int train_phase_epoch(train_phase *ph, int64_t epoch, train_epoch_stats *st);
void train_phase_end(train_phase *ph);

/* Train the teacher (SPEC §3) on data_pgc train pairs from net's current (initialised) parameters. On return net
 * holds the BEST epoch's model. cfg->epochs may be 0. */
int train_teacher(debcm_net *net, const train_data *td, const model_config *cfg, const train_phase_opts *opt,
                  train_phase_result *res);

/* Train the student (SPEC §4) on data_matching train rows with the frozen teacher; on return net holds the best
 * epoch's model. */
int train_student(debcm_net *net, const debcm_net *teacher, const train_data *td, const model_config *cfg,
                  const train_phase_opts *opt, train_phase_result *res);

/* Monotonic seconds (for the phase timings). */
double train_now(void);

#endif
