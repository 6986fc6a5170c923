/* apps/run_common.c — the pieces the training and evaluation commands share (see run_common.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "apps/run_common.h"
#include "engine/error.h"
#include "io/file_map.h"
#ifdef DEBCM_WITH_CUDA
#include "kernels/cuda_ops.h"
#endif

void openblas_set_num_threads(int n); /* OpenBLAS's own; not in every cblas.h */

const debcm_ops *run_select_backend(int cuda, int tf32)
{
    if (!cuda)
        return debcm_ops_cpu();
#ifdef DEBCM_WITH_CUDA
    const debcm_ops *ops = debcm_ops_cuda();
    if (!ops) {
        debcm_error_prefix("--device cuda");
        return NULL;
    }
    if (cuda_set_tf32(tf32)) {
        debcm_error_prefix("--tf32");
        return NULL;
    }
    return ops;
#else
    (void)tf32;
    debcm_fail("--device cuda: this build has no CUDA backend (nvcc was not found at configure time, or "
               "-DDEBCM_CUDA=OFF); use --device cpu");
    return NULL;
#endif
}

void run_set_threads(int n)
{
    if (n <= 0)
        return;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

int run_resolve_dirs(const char *root, const char *pgc_in, const char *data_in, char *pgc, char *data)
{
    if (!root) {
        if ((size_t)snprintf(pgc, PATH_MAX, "%s", pgc_in) >= PATH_MAX)
            return debcm_fail_path_too_long(pgc_in, PATH_MAX - 1);
        if ((size_t)snprintf(data, PATH_MAX, "%s", data_in) >= PATH_MAX)
            return debcm_fail_path_too_long(data_in, PATH_MAX - 1);
        return 0;
    }
    size_t len = strlen(root);
    const char *sep = root[len - 1] == '/' ? "" : "/";
    if ((size_t)snprintf(pgc, PATH_MAX, "%s%sdata_pgc", root, sep) >= PATH_MAX ||
        (size_t)snprintf(data, PATH_MAX, "%s%sdata_matching", root, sep) >= PATH_MAX)
        return debcm_fail_path_too_long(root, PATH_MAX - 20);
    struct stat st;
    if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode))
        return debcm_fail("%s: expected a directory holding data_pgc/ and data_matching/, found %s", root,
                          errno == ENOENT ? "nothing there" : "something that is not a directory");
    return 0;
}

int run_load_data(const char *pgc, const char *data, debcm_dataset *ds, FILE *warn, const char *cmd)
{
    if (dataset_load(ds, pgc, data) == 0) {
        for (int i = 0; warn && i < ds->problems.count; i++)
            if (ds->problems.items[i].severity == PROBLEM_WARNING)
                fprintf(warn, "debcm %s: warning: %s\n", cmd, ds->problems.items[i].message);
        if (warn && ds->problems.unlisted)
            fprintf(warn, "debcm %s: warning: %d more problems not listed (debcm inspect shows the counts)\n", cmd,
                    ds->problems.unlisted);
        return 0;
    }
    for (int i = 0; i < ds->problems.count; i++)
        if (ds->problems.items[i].severity == PROBLEM_ERROR) {
            if (ds->problems.errors > 1)
                return debcm_fail("%s (%d errors in all; debcm inspect lists them)", ds->problems.items[i].message,
                                  ds->problems.errors);
            return debcm_fail("%s", ds->problems.items[i].message);
        }
    return -1; /* the loader's own message */
}

static const int32_t report_K[4] = {10, 15, 20, 25};

void run_set_K(model_eval_result *r)
{
    memset(r, 0, sizeof *r);
    r->nK = 4;
    memcpy(r->K, report_K, sizeof report_K);
}

void run_print_table(const char *title, const model_eval_result *r)
{
    printf("%s (weighted, %lld rows; %lld with a tie at the positive", title, (long long)r->rows,
           (long long)r->tie_rows);
    if (r->rows_positive_in_negatives)
        printf("; warning: %lld list their positive among their negatives", (long long)r->rows_positive_in_negatives);
    printf(")\n   K   Recall@K   NDCG@K\n");
    for (int i = 0; i < r->nK; i++)
        printf("  %2d   %8.4f  %8.4f\n", r->K[i], r->recall[i], r->ndcg[i]);
}

json_t *run_metrics_json(const model_eval_result *r)
{
    json_t *j = json_object();
    char key[32];
    for (int i = 0; j && i < r->nK; i++) {
        snprintf(key, sizeof key, "recall@%d", r->K[i]);
        json_object_set_new(j, key, json_real(r->recall[i]));
        snprintf(key, sizeof key, "ndcg@%d", r->K[i]);
        json_object_set_new(j, key, json_real(r->ndcg[i]));
    }
    return j;
}

const char *run_match_name(match_variant v)
{
    return v == MATCH_HINGE ? "hinge" : v == MATCH_SOFTMAX ? "softmax" : "published";
}

const char *run_distill_name(distill_variant v) { return v == DISTILL_KL ? "kl" : "published"; }

void run_absolute_path(char *dst, const char *path)
{
    char *r = realpath(path, NULL);
    if (r || dst != path)
        snprintf(dst, PATH_MAX, "%s", r ? r : path);
    free(r);
}

int run_read_text_file(const char *path, char **text, size_t *len)
{
    file_map m;
    if (file_map_open(&m, path, "a JSON config", 1))
        return -1;
    *text = malloc(m.len + 1);
    if (!*text) {
        file_map_close(&m);
        return debcm_fail("%s: out of memory", path);
    }
    memcpy(*text, m.base, m.len);
    (*text)[m.len] = '\0';
    *len = m.len;
    file_map_close(&m);
    return 0;
}
