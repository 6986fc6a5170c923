/* apps/run_job.h — the training job behind `debcm run`, `train-teacher` and `train-student` (apps/run_job.c):
 * what the command line (apps/cmd_run.c) hands over once it has parsed and checked the options. */
#ifndef DEBCM_RUN_JOB_H
#define DEBCM_RUN_JOB_H

#include "engine/run_config.h"

#define RUN_JOB_MAX_OPTIONS 64

typedef struct {
    run_config cfg;                           /* the defaults with the command line's values over them */
    unsigned char given[RUN_JOB_MAX_OPTIONS]; /* 1 where the command line gave option i of run_options() */
    const char *root, *pgc, *data;            /* the dataset, as given (NULL when not) */
    const char *out;                          /* --out RUNDIR, or NULL (runs/<timestamp>) */
    const char *teacher_ckpt;                 /* --teacher CKPT (train-student) */
    const char *resume;                       /* --resume RUNDIR, or NULL */
    const char *name;                         /* --name NAME: RUNDIR = runs/NAME (NULL: a timestamp) */
    int force;                                /* --force: replace a run already in RUNDIR */
} run_job_args;

/* Run the job; returns the exit status (0, 1, or 128 + the signal that stopped it after saving its state). */
int run_job_main(run_job_args *a);

#endif
