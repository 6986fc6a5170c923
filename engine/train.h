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
 * One progress line per epoch goes to the log. Zero epochs keep the initial model (a baseline), validated once.
 *
 * Surviving faults. The trainer hands its whole state to a caller's save_state callback (engine/resume.h writes
 * it) after every epoch, every checkpoint_every steps, when stop_requested reports a signal (after the step in
 * flight) and before it stops on a non-finite loss; a phase given a train_resume_point continues from it and,
 * on the CPU backend, computes bit for bit what the uninterrupted phase computes (the draws of step s are Philox
 * counter s, the order of epoch e is a function of (seed, e), Adam's state and the BatchNorm statistics come
 * back whole, and the loss terms of the epoch's done batches too). Every step's loss terms are checked before
 * Adam runs: a non-finite term stops the phase with the step and the term named, the BatchNorm statistics put
 * back as they were before that step and the last good state saved; or, with nan_skip, that batch is skipped
 * (no Adam step, statistics put back) and counted. */
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

/* ---- one phase, epoch by epoch (the trainer below, and bench/bench_epoch) ------------------------------------ */

typedef struct train_phase train_phase;

typedef struct {
    double loss, music, video, kl_m, kl_v, recon, distill_m, distill_v; /* means over the epoch's trained batches */
    int64_t batches, samples, skipped; /* batches trained in the epoch (a resumed one: with the earlier process's);
                                          samples: the rows trained (a resumed epoch: the earlier process's too);
                                          skipped: one-row batches */
    int64_t nonfinite;       /* batches skipped for a non-finite loss (nan_skip) */
    double seconds;          /* the epoch's time (a resumed epoch: the earlier process's part too) */
} train_epoch_stats;

typedef struct {
    int64_t best_epoch;     /* 0 when no epoch was trained */
    double val_recall;      /* Recall@25 of the best epoch */
    double val_ndcg;        /* NDCG@25 of the best epoch (student) */
    int64_t skipped_batches; /* one-row batches skipped, over all epochs */
    int64_t nonfinite_skipped; /* batches skipped for a non-finite loss (nan_skip), over all epochs */
    int64_t steps;
    double seconds;         /* the phase's time, earlier processes' included when resumed */
    int interrupted;        /* the signal that stopped the phase (its state saved), 0 when it ran to its end */
} train_phase_result;

/* Where a phase stands: what save_state receives and what a resumed phase starts from. */
typedef struct {
    int student;             /* the phase: 0 teacher, 1 student */
    int64_t next_epoch;      /* the epoch to continue (1-based; epochs + 1 once every epoch is done) */
    int64_t next_batch;      /* the batch of that epoch to continue from (0: its start) */
    int64_t step;            /* steps taken in the phase: the Philox counter of the next step's draws */
    int64_t best_epoch;      /* 0: none yet */
    double best_recall, best_ndcg;
    int64_t skipped_batches, nonfinite_skipped;
    double seconds;          /* the phase's time so far */
    double epoch_seconds;    /* the time and the rows of next_epoch's batches before next_batch (timings only) */
    int64_t epoch_samples;
    const float *epoch_terms; /* [next_batch][MODEL_LOSS_TERMS]: the loss terms of the epoch's batches before
                                 next_batch (NaN for a batch skipped for a non-finite loss); host memory */
} train_resume_point;

/* The state handed to save_state: the position, the network being trained (parameters, Adam, statistics) and
 * the copy of its best epoch so far. */
typedef struct {
    train_resume_point pos;
    const debcm_net *net, *best;
} train_state;

/* One validated epoch, for a metrics log. */
typedef struct {
    int student;
    int64_t epoch, epochs, step;
    const train_epoch_stats *stats;
    double val_recall, val_ndcg; /* NDCG: student only */
    int64_t best_epoch;
    double best_recall;
    int improved;
    double lr;
} train_epoch_record;

/* One step done, for a live progress line and a metrics log of windows of steps. */
typedef struct {
    int student;
    int64_t epoch, epochs;
    int64_t batch;              /* batches of the epoch done, this one included (1-based) */
    int64_t batches;            /* batches in the epoch */
    int64_t step;               /* steps of the phase done */
    double epoch_seconds;       /* this process's time in the epoch so far */
    int64_t samples;            /* rows this process trained in the epoch so far */
    const float *epoch_terms;   /* [batch][MODEL_LOSS_TERMS], host: every batch of the epoch so far (NaN first
                                   term: skipped for a non-finite loss) */
    int64_t rows, batch_rows;   /* the phase's training rows and its batch size */
    const model_config *cfg;
} train_step_record;

/* The mean loss and terms (out[8]: loss, match_music, match_video, kl_m, kl_v, recon, distill_m, distill_v) over
 * the trained batches [from, to) of r's epoch so far; returns how many there were (0: out all zero). */
int64_t train_terms_mean(const train_step_record *r, int64_t from, int64_t to, double out[8]);

typedef struct {
    uint64_t seed;
    FILE *log;                  /* progress lines; NULL: quiet */
    void (*before_log)(void *ctx); /* called before a line goes to log (to clear a live progress line); or NULL */
    int (*on_step)(void *ctx, const train_step_record *r); /* after each step, before its checkpoint; or NULL */
    const char *ckpt_path;      /* where the best epoch goes; NULL: nowhere */
    const checkpoint_meta *meta; /* extra checkpoint metadata (variants) */
    int n_meta;
    int teacher_recompute;      /* student: 1 runs the frozen teacher's encoders every step; 0 (default) computes
                                   its eval-mode posteriors of every training row once per phase (the same
                                   values: no dropout, no noise, frozen weights) and gathers them per batch */
    int nan_skip;               /* 1: a batch whose loss is not finite is skipped; 0: the phase stops */
    int64_t checkpoint_every;   /* save_state every N steps as well (0: after every epoch only) */
    const train_resume_point *start; /* NULL: from the initial model; else continue from there (net then holds
                                        the saved parameters and Adam state) */
    const debcm_net *start_best; /* with start: the best epoch's copy saved with it */
    int (*stop_requested)(void); /* the signal that asks the phase to stop, or 0; NULL: never asked */
    int (*save_state)(void *ctx, const train_state *st);  /* 0 or −1 with a message; NULL: nothing saved */
    int (*on_epoch)(void *ctx, const train_epoch_record *r); /* after each epoch's validation; NULL: none */
    void *ctx;
} train_phase_opts;



/* Prepare a phase: student = 0 trains net (a teacher) on data_pgc train pairs, 1 trains net (a student) on
 * data_matching train rows with the frozen teacher. Allocates the staging, the workspace and (student, unless
 * opt->teacher_recompute) the teacher's posterior cache, whose build time goes to *cache_seconds (may be NULL).
 * *out = NULL and −1 with a message on failure. */
int train_phase_begin(train_phase **out, int student, debcm_net *net, const debcm_net *teacher,
                      const train_data *td, const model_config *cfg, const train_phase_opts *opt,
                      double *cache_seconds);
/* One epoch (1-based): its shuffle, then every step from batch first_batch on with Adam, each step's loss terms
 * checked first. No validation. 0 at the epoch's end; TRAIN_INTERRUPTED when opt->stop_requested asked (the state
 * after the last step saved); −1 with a message on failure or a non-finite loss under the stop policy. */
#define TRAIN_INTERRUPTED 1
int train_phase_epoch(train_phase *ph, int64_t epoch, int64_t first_batch, train_epoch_stats *st);

/* The names of the MODEL_LOSS_TERMS terms, for messages and logs ("recon_m", …, "distill_v"). */
const char *train_term_name(int i);
void train_phase_end(train_phase *ph);

/* Train the teacher (SPEC §3) on data_pgc train pairs from net's current (initialised) parameters, or from
 * opt->start. On return net holds the BEST epoch's model. cfg->epochs may be 0. 0 done (res->interrupted 0), or
 * stopped by a signal with its state saved (res->interrupted the signal); −1 with a message. */
int train_teacher(debcm_net *net, const train_data *td, const model_config *cfg, const train_phase_opts *opt,
                  train_phase_result *res);

/* Train the student (SPEC §4) on data_matching train rows with the frozen teacher; on return net holds the best
 * epoch's model. */
int train_student(debcm_net *net, const debcm_net *teacher, const train_data *td, const model_config *cfg,
                  const train_phase_opts *opt, train_phase_result *res);

/* Monotonic seconds (for the phase timings). */
double train_now(void);

#endif
