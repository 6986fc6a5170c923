/* engine/resume.h — the resume checkpoint: a run's whole state in one safetensors file, RUNDIR/resume.safetensors.
 *
 * It sits between the trainer (engine/train.h hands its state to a save_state callback after every epoch, every
 * --checkpoint-every steps, on SIGINT/SIGTERM/SIGHUP and before a stop on a non-finite loss) and `debcm … --resume
 * RUNDIR` (apps/cmd_run.c). What it holds:
 *   tensors   the network being trained under its state_dict names (so safetensors.torch.load_file gives a
 *             usable state_dict), its Adam moments (optimizer.exp_avg.<name>, optimizer.exp_avg_sq.<name>), the
 *             best epoch's copy (best.<name>), in the student phase the frozen teacher (teacher.<name>), and the
 *             loss terms of the epoch's batches done so far (epoch_loss_terms [batches, 8]);
 *   metadata  format "debcm-resume-1", the model kind and dimensions, the phase, the next epoch and batch (the
 *             position in the epoch's permutation, which is a function of (seed, epoch)), the step count (the
 *             Philox counter: the RNG state), Adam's step t, the best epoch and its Recall@25 / NDCG@25, the
 *             skipped-batch counts, the phase's seconds, the teacher phase's result once it is done, the length of
 *             metrics.jsonl when the state was taken, the full config (run_config JSON), the data fingerprint and a
 *             content checksum (io/safetensors.h), verified before anything is read.
 * Writing is atomic (a temporary file, fsync, rename): a kill at any moment leaves the previous checkpoint or the
 * new one, never half of one. Numbers in the metadata are decimal text with 17 significant digits, so they read
 * back bit for bit. */
#ifndef DEBCM_RESUME_H
#define DEBCM_RESUME_H

#include <stdint.h>

#include "engine/train.h"
#include "io/safetensors.h"
#include "models/model.h"

#define RESUME_FILE "resume.safetensors"

/* Everything of a resume checkpoint but the networks. */
typedef struct {
    train_resume_point pos;        /* the phase in progress (pos.epoch_terms: pos.next_batch rows, host memory) */
    int teacher_done;              /* the teacher phase's result below is known (the student phase of run) */
    int64_t teacher_best_epoch, teacher_steps;
    double teacher_val_recall, teacher_seconds;
    int64_t metrics_bytes;         /* metrics.jsonl's length when the state was taken */
    const char *config_json;       /* run_config_to_json */
    const char *data_fingerprint;  /* dataset_fingerprint */
} resume_info;

/* Write the state: net (the phase's network with its Adam state and adam_t), best (its best epoch's copy) and, in
 * the student phase, teacher. 0, or −1 with a message naming path (a previous file at path is then untouched). */
int resume_save(const char *path, const resume_info *ri, const debcm_net *net, const debcm_net *best,
                const debcm_net *teacher);

/* An open resume checkpoint: info filled from its metadata (the strings and terms point into the file, valid
 * until resume_close). */
typedef struct {
    safetensors_file f;
    resume_info info;
    int student;       /* the kind of the network in progress */
    int64_t L, adam_t;
    float *terms;      /* a copy of epoch_loss_terms (pos.epoch_terms points here) */
} resume_file;

/* Open path, verify its checksum and format, read its metadata. −1 with a message naming the file (truncated,
 * damaged, not a resume checkpoint, a value out of range). Call resume_close in both cases. */
int resume_open(resume_file *rf, const char *path);

/* The same over a buffer (a fuzz input; name for messages); verify 0 skips the checksum, so that a fuzzer reaches
 * what lies behind it. */
int resume_open_buffer(resume_file *rf, const void *buf, size_t len, const char *name, int verify);

/* Read the networks (created by the caller with the dimensions of the data and the config) from the open file:
 * net with its Adam state, best, and teacher (required in the student phase, else NULL). Shapes are checked;
 * every tensor of the file must be one of these. */
int resume_read_nets(resume_file *rf, debcm_net *net, debcm_net *best, debcm_net *teacher);

void resume_close(resume_file *rf);

#endif
