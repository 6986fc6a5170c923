/* apps/run_common.h — what the training commands (apps/run_job.c) and `debcm evaluate` (apps/cmd_run.c) share:
 * the backend of --device, the thread count, the dataset directories of ROOT or --pgc/--data, loading the data
 * with its warnings printed, and the test-report tables (text and JSON). */
#ifndef DEBCM_RUN_COMMON_H
#define DEBCM_RUN_COMMON_H

#include <jansson.h>
#include <stdio.h>

#include "engine/ops.h"
#include "io/dataset.h"
#include "models/model.h"

/* The ops table of --device: the CPU's, or the CUDA one (NULL with a message when this build has none or no GPU
 * is usable, or TF32 cannot be set). */
const debcm_ops *run_select_backend(int cuda, int tf32);

/* OpenMP's and OpenBLAS's thread count (n ≤ 0: leave theirs). */
void run_set_threads(int n);

/* pgc and data (PATH_MAX each) from ROOT (then data_pgc/ and data_matching/ below it, ROOT checked to be a
 * directory) or from the two directories themselves (root NULL). −1 with a message. */
int run_resolve_dirs(const char *root, const char *pgc_in, const char *data_in, char *pgc, char *data);

/* Load and validate the dataset; the first error (and how many there are) as the message on failure. The warnings
 * (a prior that does not sum to 1, duplicate negatives, a positive among its own negatives, …, each with its row
 * count) go to `warn` as "debcm <cmd>: warning: …" lines. */
int run_load_data(const char *pgc, const char *data, debcm_dataset *ds, FILE *warn, const char *cmd);

/* The report's cut-offs K = 10, 15, 20, 25 into r (zeroed). */
void run_set_K(model_eval_result *r);
void run_print_table(const char *title, const model_eval_result *r);
json_t *run_metrics_json(const model_eval_result *r); /* {"recall@10": …, "ndcg@10": …, …} */

/* dst (PATH_MAX) = the absolute, resolved form of path (path itself when it cannot be resolved). */
void run_absolute_path(char *dst, const char *path);

/* The whole of a small text file (a JSON config), NUL-terminated, malloc'd; what names it in messages: "a JSON
 * config". −1 with a message naming path. */
int run_read_text_file(const char *path, char **text, size_t *len);

const char *run_match_name(match_variant v);
const char *run_distill_name(distill_variant v);

#endif
