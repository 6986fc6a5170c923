/* apps/run_report_md.c — RUNDIR/report.md, the run report a person reads, written from the run directory's own
 * files: config.json (required), metrics.jsonl (required) and report.json (`run` and `train-student` write it at
 * the end; a train-teacher run never does, and a run that was stopped or is still running has none yet: the report
 * then says which, from config.json's command and the last epoch line; its optional parts — machine, data,
 * full_ranking, genre_exposure, a teacher given only by its checkpoint — are drawn only when present). Sections:
 * the title and the run's status; the machine; the data (directories,
 * fingerprint, sizes); the config, every key; the variants; per phase a table of its epoch lines (epoch, every
 * loss term, seconds, samples/s, the validation metrics, the best epoch marked) with any key this writer does not
 * know as a further column; the best epochs; the test table (Recall@K, NDCG@K, "%.4f" as `debcm run` prints
 * them); full ranking and genre exposure when present; wall time and mean samples/s per phase; links to the plots
 * (relative, plots/NAME.png and .svg, only those not older than metrics.jsonl: a stale plot is not shown as this
 * run's; when none is shown, why: no epoch logged, gnuplot missing, or not drawn yet). Written atomically. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apps/run_report.h"
#include "apps/run_report_files.h"
#include "engine/error.h"

/* ---- cells ------------------------------------------------------------------------------------------------------- */

/* Text inside a table cell: a '|' escaped, line breaks as spaces. */
static void put_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", f);
        else if (*s == '\n' || *s == '\r')
            fputc(' ', f);
        else
            fputc(*s, f);
    }
}

/* Any JSON value as text: strings as they are, numbers in their shortest exact form, the rest compact JSON. */
static void put_value(FILE *f, const json_t *v)
{
    char num[64];
    if (!v) {
        return;
    } else if (json_is_null(v)) {
        fputs("n/a", f); /* e.g. a genre ratio without positives */
    } else if (json_is_string(v)) {
        put_text(f, json_string_value(v));
    } else if (json_is_integer(v)) {
        fprintf(f, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        report_format_double(num, sizeof num, json_real_value(v));
        fputs(num, f);
    } else {
        char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        if (t)
            put_text(f, t);
        free(t);
    }
}

/* A number with that many decimals ("%.4f" for 4, as `debcm run` prints them), or nothing when obj lacks it. */
static void put_number(FILE *f, const json_t *obj, const char *key, int decimals)
{
    double x;
    if (report_get_number(obj, key, &x))
        fprintf(f, "%.*f", decimals, x);
}

/* "| key | value |" rows for every key of obj, nested objects flattened as "outer.inner". */
static void put_rows(FILE *f, const json_t *obj, const char *prefix)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (json_is_object(v)) {
            char p[256];
            snprintf(p, sizeof p, "%s%s.", prefix, k);
            put_rows(f, v, p);
            continue;
        }
        fputs("| ", f);
        put_text(f, prefix);
        put_text(f, k);
        fputs(" | ", f);
        put_value(f, v);
        fputs(" |\n", f);
    }
}

/* ---- sections ---------------------------------------------------------------------------------------------------- */

/* The machine section's labels for the keys run_report_machine writes; other keys are shown by their name. */
static const char *machine_label(const char *key)
{
    static const char *const labels[][2] = {
        {"cpu", "CPU"}, {"logical_cores", "logical cores"}, {"memory_bytes", "memory"}, {"os", "OS"},
        {"distribution", "distribution"}, {"compiler", "compiler"}, {"debcm", "debcm"}, {"blas", "BLAS"},
        {"blas_threading", "BLAS threading"}, {"zlib", "zlib"}, {"jansson", "jansson"}, {"openmp", "OpenMP"},
        {"openmp_threads", "OpenMP threads"}, {"cuda", "CUDA"}, {"gpus", "GPUs"},
    };
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++)
        if (!strcmp(labels[i][0], key))
            return labels[i][1];
    return key;
}

static void put_machine_rows(FILE *f, const json_t *obj)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v) {
        if (json_is_object(v)) {
            put_machine_rows(f, v);
            continue;
        }
        fprintf(f, "| %s | ", machine_label(k));
        if (!strcmp(k, "memory_bytes") && json_is_number(v)) {
            fprintf(f, "%.1f GiB", json_number_value(v) / (1024.0 * 1024.0 * 1024.0));
        } else if (json_is_array(v)) {
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                fputs(i ? "<br>" : "", f);
                put_value(f, e);
            }
        } else {
            put_value(f, v);
        }
        fputs(" |\n", f);
    }
}

static void section_machine(FILE *f, const json_t *report, int teacher_only)
{
    const json_t *m = json_object_get(report, "machine");
    fputs("## Machine\n\n", f);
    if (!json_is_object(m)) {
        fputs(report         ? "Not recorded in report.json.\n\n"
              : teacher_only ? "Not recorded: it is recorded in report.json, which a train-teacher run does not "
                               "write.\n\n"
                             : "Not recorded yet: it is recorded in report.json at the end of the run.\n\n",
              f);
        return;
    }
    fputs("| | |\n| --- | --- |\n", f);
    put_machine_rows(f, m);
    fputc('\n', f);
}

static void section_data(FILE *f, const json_t *config, const json_t *report)
{
    const json_t *d = json_object_get(report, "data");
    fputs("## Data\n\n| | |\n| --- | --- |\n", f);
    if (json_is_object(d)) {
        put_rows(f, d, "");
    } else {
        static const char *const keys[] = {"pgc", "data", "teacher"};
        for (int i = 0; i < 3; i++)
            if (json_object_get(config, keys[i])) {
                fprintf(f, "| %s | ", keys[i]);
                put_value(f, json_object_get(config, keys[i]));
                fputs(" |\n", f);
            }
        fputs("| fingerprint | not recorded |\n", f);
    }
    fputc('\n', f);
}

static void section_table(FILE *f, const char *title, const json_t *obj, const char *absent)
{
    fprintf(f, "## %s\n\n", title);
    if (!json_is_object(obj)) {
        fprintf(f, "%s\n\n", absent);
        return;
    }
    fputs("| key | value |\n| --- | --- |\n", f);
    put_rows(f, obj, "");
    fputc('\n', f);
}

/* ---- the run's status ------------------------------------------------------------------------------------------ */

/* The number of epochs a phase was given: its last epoch line's "epochs", else config.json's "<phase>_epochs";
 * −1 when neither says. */
static double phase_epochs(const json_t *config, const json_t *epochs, const char *phase)
{
    double n;
    size_t k = json_array_size(epochs);
    if (k && report_get_number(json_array_get(epochs, k - 1), "epochs", &n))
        return n;
    char key[32];
    snprintf(key, sizeof key, "%s_epochs", phase);
    return report_get_number(config, key, &n) ? n : -1;
}

/* Whether config.json asks for no epoch at all (every phase it names given 0 epochs). */
static int zero_epochs(const json_t *config)
{
    double t, st;
    int has_t = report_get_number(config, "teacher_epochs", &t);
    int has_s = report_get_number(config, "student_epochs", &st);
    return (has_t || has_s) && (!has_t || t == 0) && (!has_s || st == 0);
}

/* What the absence of report.json means, as a sentence into buf: from config.json's command, the epochs each phase
 * was given and the last epoch line of metrics.jsonl (epochs[p]: the phase's epoch lines, in file order; last: the
 * phase of the last one, −1 when there is none). A train-teacher run never writes report.json; `run` and
 * `train-student` write it at the end, so without it the run has not finished: it was stopped (killed,
 * interrupted) or still runs. */
static void run_status(char *buf, size_t cap, const char *command, const json_t *config, const json_t *const epochs[2],
                       int last)
{
    static const char *const phases[2] = {"teacher", "student"};
    char logged[128] = "no epoch logged yet";
    int complete = 0; /* the last epoch logged is the last one of its phase */
    if (last >= 0) {
        const json_t *line = json_array_get(epochs[last], json_array_size(epochs[last]) - 1);
        double e = 0, n = phase_epochs(config, epochs[last], phases[last]);
        report_get_number(line, "epoch", &e);
        if (n >= 0)
            snprintf(logged, sizeof logged, "last epoch logged: %s epoch %.0f of %.0f", phases[last], e, n);
        else
            snprintf(logged, sizeof logged, "last epoch logged: %s epoch %.0f", phases[last], e);
        complete = n >= 0 && e >= n;
    }
    int teacher_only = command && !strcmp(command, "train-teacher");
    if (teacher_only) {
        if (complete)
            snprintf(buf, cap, "A train-teacher run (it writes no report.json); %s", logged);
        else if (last < 0 && zero_epochs(config))
            snprintf(buf, cap, "A train-teacher run of 0 epochs (it writes no report.json)");
        else
            snprintf(buf, cap, "A train-teacher run (it writes no report.json) that has not finished (%s)", logged);
    } else if (complete && last == 1) {
        snprintf(buf, cap, "No report.json: the run has not finished (%s: stopped during the test evaluation, or "
                           "still in it)%s",
                 logged, command && !strcmp(command, "train-student")
                             ? "; or a train-student run of a debcm older than its report.json"
                             : "");
    } else if (last < 0 && zero_epochs(config)) {
        snprintf(buf, cap, "No report.json: the run, of 0 epochs, has not finished (stopped before or during the test "
                           "evaluation, or still in it)");
    } else {
        snprintf(buf, cap, "No report.json: the run has not finished (%s)", logged);
    }
}

/* A teacher that report.json names only by its checkpoint (train-student: trained by another run). */
static const char *teacher_checkpoint(const json_t *report)
{
    return report_get_string(json_object_get(report, "teacher"), "checkpoint");
}

/* ---- the epochs of a phase --------------------------------------------------------------------------------------- */

/* The loss terms, in the order of the columns. */
static const char *const loss_terms[] = {"loss", "match_music", "match_video", "kl_m", "kl_v",
                                         "recon", "distill_m", "distill_v"};
#define N_TERMS ((int)(sizeof loss_terms / sizeof loss_terms[0]))

/* Keys the epoch table shows in its own columns, or leaves out on purpose (bookkeeping, in the config, or the
 * same in every line). Any other key becomes a further column. */
static int known_key(const char *k)
{
    static const char *const known[] = {"kind", "phase", "epoch", "epochs", "step", "batch", "batches",
                                        "nonfinite_skipped", "seconds", "samples_per_s", "lr", "val_recall@25",
                                        "val_ndcg@25", "best_epoch", "best_val_recall@25", "improved"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(known[i], k))
            return 1;
    for (int t = 0; t < N_TERMS; t++)
        if (!strcmp(loss_terms[t], k))
            return 1;
    return 0;
}

static int any_number(const json_t *lines, const char *key, int nonzero)
{
    size_t i;
    json_t *line;
    double x;
    json_array_foreach(lines, i, line) if (report_get_number(line, key, &x) && (!nonzero || x != 0)) return 1;
    return 0;
}

/* The best epoch of a phase: report.json's, else the last epoch line's; 0 when neither says. */
static double phase_best(const json_t *report, const char *phase, const json_t *epochs)
{
    double b = 0;
    if (report_get_number(json_object_get(report, phase), "best_epoch", &b))
        return b;
    size_t n = json_array_size(epochs);
    if (n)
        report_get_number(json_array_get(epochs, n - 1), "best_epoch", &b);
    return b;
}

static void put_epoch_cell(FILE *f, const json_t *line)
{
    double e;
    if (report_get_number(line, "epoch", &e))
        fprintf(f, e == floor(e) && fabs(e) < 1e15 ? "%.0f" : "%g", e);
}

static void epoch_table(FILE *f, const char *phase, const json_t *epochs, int windows, double best)
{
    fprintf(f, "## %c%s epochs\n\n", phase[0] - 'a' + 'A', phase + 1);
    if (windows)
        fprintf(f, "%d logging windows besides (in metrics.csv and the plots).\n\n", windows);
    /* the columns: the terms present, further keys, then seconds, samples/s, validation, best */
    int terms[N_TERMS], n_terms = 0;
    for (int t = 0; t < N_TERMS; t++)
        if (any_number(epochs, loss_terms[t], 0))
            terms[n_terms++] = t;
    json_t *extra = json_array();
    size_t i;
    json_t *line;
    json_array_foreach(epochs, i, line) {
        const char *k;
        json_t *v;
        json_object_foreach(line, k, v) {
            int have = 0;
            size_t j;
            json_t *e;
            json_array_foreach(extra, j, e) have |= !strcmp(json_string_value(e), k);
            if (!have && !known_key(k))
                json_array_append_new(extra, json_string(k));
        }
    }
    int skipped = any_number(epochs, "nonfinite_skipped", 1), recall = any_number(epochs, "val_recall@25", 0),
        ndcg = any_number(epochs, "val_ndcg@25", 0);
    fputs("| epoch |", f);
    for (int t = 0; t < n_terms; t++)
        fprintf(f, " %s |", loss_terms[terms[t]]);
    json_t *e;
    json_array_foreach(extra, i, e) {
        fputc(' ', f);
        put_text(f, json_string_value(e));
        fputs(" |", f);
    }
    fprintf(f, "%s s | samples/s |%s%s best |\n|", skipped ? " skipped |" : "", recall ? " val R@25 |" : "",
            ndcg ? " val NDCG@25 |" : "");
    int cols = 1 + n_terms + (int)json_array_size(extra) + skipped + 2 + recall + ndcg + 1;
    for (int c = 0; c < cols; c++)
        fputs(c < cols - 1 ? " ---: |" : " --- |", f);
    fputc('\n', f);
    json_array_foreach(epochs, i, line) {
        fputs("| ", f);
        put_epoch_cell(f, line);
        fputs(" |", f);
        for (int t = 0; t < n_terms; t++) {
            fputc(' ', f);
            put_number(f, line, loss_terms[terms[t]], 4);
            fputs(" |", f);
        }
        size_t j;
        json_array_foreach(extra, j, e) {
            json_t *v = json_object_get(line, json_string_value(e));
            fputc(' ', f);
            if (json_is_real(v))
                fprintf(f, "%.6g", json_real_value(v));
            else
                put_value(f, v);
            fputs(" |", f);
        }
        if (skipped) {
            fputc(' ', f);
            put_number(f, line, "nonfinite_skipped", 0);
            fputs(" |", f);
        }
        fputc(' ', f);
        put_number(f, line, "seconds", 3);
        fputs(" | ", f);
        put_number(f, line, "samples_per_s", 0);
        fputs(" |", f);
        if (recall) {
            fputc(' ', f);
            put_number(f, line, "val_recall@25", 4);
            fputs(" |", f);
        }
        if (ndcg) {
            fputc(' ', f);
            put_number(f, line, "val_ndcg@25", 4);
            fputs(" |", f);
        }
        double ep;
        int is_best = best > 0 && report_get_number(line, "epoch", &ep) && ep == best;
        fprintf(f, " %s |\n", is_best ? "**best**" : json_is_true(json_object_get(line, "improved")) ? "improved" : "");
    }
    if (!json_array_size(epochs))
        fputs("| (no epoch lines) |\n", f);
    fputc('\n', f);
    json_decref(extra);
}

/* ---- results ----------------------------------------------------------------------------------------------------- */

static void section_best(FILE *f, const json_t *config, const json_t *report, const json_t *const epochs[2],
                         const char *const phases[2])
{
    fputs("## Best epochs\n\n", f);
    int any = 0;
    for (int p = 0; p < 2; p++) {
        double best = phase_best(report, phases[p], epochs[p]);
        const char *ckpt = p == 0 && best <= 0 ? teacher_checkpoint(report) : NULL;
        if (ckpt) {
            any = 1;
            fputs("- teacher: not trained by this run; it loaded the checkpoint ", f);
            put_text(f, ckpt);
            fputs(" (its epochs are in the report of the run that trained it)\n", f);
        }
        if (best <= 0)
            continue;
        any = 1;
        /* the numbers: report.json's, else the best epoch's own line */
        const json_t *src = json_object_get(report, phases[p]), *line = NULL;
        size_t i;
        json_t *l;
        double x;
        json_array_foreach(epochs[p], i, l) if (report_get_number(l, "epoch", &x) && x == best) line = l;
        if (!json_is_object(src))
            src = line;
        fprintf(f, "- %s: epoch %.0f", phases[p], best);
        double n;
        if (line && report_get_number(line, "epochs", &n))
            fprintf(f, " of %.0f", n);
        if (report_get_number(src, "val_recall@25", &x))
            fprintf(f, ", val Recall@25 %.4f", x);
        if (report_get_number(src, "val_ndcg@25", &x))
            fprintf(f, ", val NDCG@25 %.4f", x);
        fputs(p == 0 ? " (full ranking)\n" : " (100 negatives, weighted)\n", f);
    }
    fputs(any                  ? "\n"
          : zero_epochs(config) ? "None: the config gives every phase 0 epochs.\n\n"
                                : "No epoch has ended yet.\n\n",
          f);
}

static void section_test(FILE *f, const json_t *report)
{
    const json_t *t = json_object_get(report, "test");
    if (!json_is_object(t))
        return;
    fputs("## Test (the best student, weighted)\n\n| K | Recall@K | NDCG@K |\n| ---: | ---: | ---: |\n", f);
    /* the cut-offs in the order the report lists them */
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)t, k, v) {
        int K, used = 0;
        if (sscanf(k, "recall@%d%n", &K, &used) != 1 || k[used])
            continue;
        char nk[32];
        snprintf(nk, sizeof nk, "ndcg@%d", K);
        fprintf(f, "| %d | ", K);
        put_number(f, t, k, 4);
        fputs(" | ", f);
        put_number(f, t, nk, 4);
        fputs(" |\n", f);
    }
    fputc('\n', f);
}

static void section_full_ranking(FILE *f, const json_t *report)
{
    const json_t *fr = json_object_get(report, "full_ranking");
    if (!json_is_object(fr))
        return;
    fputs("## Full ranking (every music a candidate)\n\n", f);
    double rows, ties;
    if (report_get_number(fr, "rows", &rows))
        fprintf(f, "%.0f rows", rows);
    if (report_get_number(fr, "tie_rows", &ties))
        fprintf(f, "; %.0f with a tie at the positive", ties);
    fputs(".\n\n", f);
    const json_t *w = json_object_get(fr, "weighted"), *u = json_object_get(fr, "unweighted");
    json_t *metrics = json_array();
    const json_t *both[2] = {w, u};
    for (int s = 0; s < 2; s++) {
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)both[s], k, v) {
            int have = 0;
            size_t j;
            json_t *e;
            json_array_foreach(metrics, j, e) have |= !strcmp(json_string_value(e), k);
            if (!have)
                json_array_append_new(metrics, json_string(k));
        }
    }
    fputs("| metric | weighted | unweighted |\n| --- | ---: | ---: |\n", f);
    size_t i;
    json_t *e;
    json_array_foreach(metrics, i, e) {
        const char *k = json_string_value(e);
        fputs("| ", f);
        put_text(f, k);
        fputs(" | ", f);
        put_number(f, w, k, 4);
        fputs(" | ", f);
        put_number(f, u, k, 4);
        fputs(" |\n", f);
    }
    json_decref(metrics);
    /* anything else the section holds */
    const char *k;
    json_t *v;
    int other = 0;
    json_object_foreach((json_t *)fr, k, v) {
        if (!strcmp(k, "rows") || !strcmp(k, "tie_rows") || !strcmp(k, "weighted") || !strcmp(k, "unweighted"))
            continue;
        fprintf(f, "%s- ", other++ ? "" : "\n");
        put_text(f, k);
        fputs(": ", f);
        put_value(f, v);
        fputc('\n', f);
    }
    fputc('\n', f);
}

static const char *genre_label(const char *key, int k, char *buf, size_t cap)
{
    if (!strcmp(key, "share_top_k"))
        snprintf(buf, cap, "share of the top %d", k);
    else if (!strcmp(key, "share_positives"))
        snprintf(buf, cap, "share of the positives");
    else if (!strcmp(key, "top_k"))
        snprintf(buf, cap, "top-%d places", k);
    else if (!strcmp(key, "positives"))
        snprintf(buf, cap, "positives");
    else
        snprintf(buf, cap, "%s", key);
    return buf;
}

static void section_genres(FILE *f, const json_t *report)
{
    const json_t *g = json_object_get(report, "genre_exposure"), *list = json_object_get(g, "genres");
    if (!json_is_object(g))
        return;
    double kd = 0;
    report_get_number(g, "k", &kd);
    int k = (int)kd;
    fprintf(f, "## Genre exposure (top %d)\n\n", k);
    double rows;
    if (report_get_number(g, "rows", &rows))
        fprintf(f, "Over %.0f rows, each giving its top %d musics.\n\n", rows, k);
    json_t *cols = json_array();
    size_t i, c;
    json_t *row, *col;
    json_array_foreach(list, i, row) {
        const char *key;
        json_t *v;
        json_object_foreach(row, key, v) {
            int have = 0;
            json_array_foreach(cols, c, col) have |= !strcmp(json_string_value(col), key);
            if (!have)
                json_array_append_new(cols, json_string(key));
        }
    }
    char label[64];
    fputc('|', f);
    json_array_foreach(cols, c, col) {
        fputc(' ', f);
        put_text(f, genre_label(json_string_value(col), k, label, sizeof label));
        fputs(" |", f);
    }
    fputs("\n|", f);
    json_array_foreach(cols, c, col) fputs(" ---: |", f);
    fputc('\n', f);
    json_array_foreach(list, i, row) {
        fputc('|', f);
        json_array_foreach(cols, c, col) {
            json_t *v = json_object_get(row, json_string_value(col));
            fputc(' ', f);
            if (json_is_real(v))
                fprintf(f, "%.4f", json_real_value(v));
            else
                put_value(f, v);
            fputs(" |", f);
        }
        fputc('\n', f);
    }
    if (!json_array_size(list))
        fputs("(no genres listed)\n", f);
    fputc('\n', f);
    json_decref(cols);
}

/* mean samples/s and summed seconds of a phase's epoch lines */
static void epoch_means(const json_t *epochs, double *mean_sps, int *n_sps, double *sum_s)
{
    size_t i;
    json_t *line;
    double x, sum = 0;
    *n_sps = 0;
    *sum_s = 0;
    json_array_foreach(epochs, i, line) {
        if (report_get_number(line, "samples_per_s", &x)) {
            sum += x;
            ++*n_sps;
        }
        if (report_get_number(line, "seconds", &x))
            *sum_s += x;
    }
    *mean_sps = *n_sps ? sum / *n_sps : 0;
}

static void section_time(FILE *f, const json_t *report, const json_t *const epochs[2], const char *const phases[2])
{
    const json_t *sec = json_object_get(report, "seconds");
    fputs("## Time\n\n| phase | wall seconds | epochs | mean samples/s |\n| --- | ---: | ---: | ---: |\n", f);
    int summed = 0;
    for (int p = 0; p < 2; p++) {
        size_t n = json_array_size(epochs[p]);
        double s;
        if (!n && !report_get_number(sec, phases[p], &s))
            continue;
        double mean, sum;
        int n_sps;
        epoch_means(epochs[p], &mean, &n_sps, &sum);
        fprintf(f, "| %s | ", phases[p]);
        if (report_get_number(sec, phases[p], &s)) {
            fprintf(f, "%.2f", s);
        } else {
            fprintf(f, "%.2f*", sum);
            summed = 1;
        }
        fprintf(f, " | %zu | ", n);
        if (n_sps)
            fprintf(f, "%.0f", mean);
        fputs(" |\n", f);
    }
    static const char *const rest[] = {"test", "total"};
    for (int r = 0; r < 2; r++) {
        double s;
        if (report_get_number(sec, rest[r], &s))
            fprintf(f, "| %s | %.2f | | |\n", rest[r], s);
    }
    fputs(summed ? "\n\\* the sum of the epoch lines' seconds (no report.json): validation included, loading and "
                   "saving not.\n\n"
                 : "\n",
          f);
}

/* Whether path exists and is not older than ref (a plot drawn before the log last changed is stale). */
static int fresh_file(const char *path, const struct stat *ref)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return st.st_mtim.tv_sec > ref->st_mtim.tv_sec ||
           (st.st_mtim.tv_sec == ref->st_mtim.tv_sec && st.st_mtim.tv_nsec >= ref->st_mtim.tv_nsec);
}

/* plottable: metrics.jsonl holds an epoch or logging-window line of a phase (what the plots draw) */
static void section_plots(FILE *f, const char *rundir, int plottable, const json_t *config)
{
    static const char *const plots[][2] = {
        {"teacher_losses", "teacher: loss terms"},
        {"student_losses", "student: loss terms"},
        {"validation", "validation metrics"},
    };
    char metrics[PATH_MAX], path[PATH_MAX];
    struct stat ref;
    fputs("## Plots\n\n", f);
    if (report_path(metrics, rundir, "metrics.jsonl") || stat(metrics, &ref) != 0)
        memset(&ref, 0, sizeof ref);
    int shown = 0, stale = 0;
    for (int i = 0; i < 3; i++) {
        char png[64], svg[64];
        snprintf(png, sizeof png, "plots/%s.png", plots[i][0]);
        snprintf(svg, sizeof svg, "plots/%s.svg", plots[i][0]);
        int have_png = report_path(path, rundir, png) == 0 && fresh_file(path, &ref);
        int have_svg = report_path(path, rundir, svg) == 0 && fresh_file(path, &ref);
        if (!have_png && !have_svg) {
            stale += report_path(path, rundir, png) == 0 && stat(path, &(struct stat){0}) == 0;
            continue;
        }
        shown++;
        fprintf(f, "**%s**%s%s%s\n\n", plots[i][1], have_svg ? " ([SVG](" : "", have_svg ? svg : "",
                have_svg ? "))" : "");
        if (have_png)
            fprintf(f, "![%s](%s)\n\n", plots[i][1], png);
    }
    char gnuplot[PATH_MAX];
    if (shown)
        ;
    else if (!plottable)
        fprintf(f, "No plots: metrics.jsonl holds no epoch (%s).\n\n",
                zero_epochs(config) ? "0 epochs" : "none has ended yet");
    else if (!report_find_gnuplot(gnuplot))
        fputs("No plots: they are drawn by gnuplot, which was not found (apt-get install gnuplot-nox), then "
              "`debcm report RUNDIR`.\n\n",
              f);
    else
        fputs("No plots drawn yet: `debcm report RUNDIR` draws them.\n\n", f);
    if (stale)
        fputs("(Plots older than metrics.jsonl are in plots/ but not shown: `debcm report RUNDIR` redraws them.)\n\n",
              f);
}

/* ---- the report -------------------------------------------------------------------------------------------------- */

/* The last component of a path, without trailing slashes, into out. */
static void base_name(const char *path, char *out, size_t cap)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/')
        start--;
    snprintf(out, cap, "%.*s", (int)(n - start), path + start);
}

int run_report_markdown(const char *rundir)
{
    char path[PATH_MAX];
    if (report_path(path, rundir, "report.md"))
        return -1;
    json_t *config = NULL, *report = NULL, *lines = NULL;
    if (report_load_json(rundir, "config.json", 0, &config) || report_load_json(rundir, "report.json", 1, &report) ||
        report_load_metrics(rundir, &lines)) {
        json_decref(config);
        json_decref(report);
        return -1;
    }
    static const char *const phases[2] = {"teacher", "student"};
    json_t *epochs[2] = {json_array(), json_array()};
    int windows[2] = {0, 0}, phaseless = 0, other_kinds = 0, last = -1;
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line) {
        const char *kind = report_line_kind(line), *ph = report_get_string(line, "phase");
        int p = ph && !strcmp(ph, "teacher") ? 0 : ph && !strcmp(ph, "student") ? 1 : -1;
        if (strcmp(kind, "epoch") && strcmp(kind, "train"))
            other_kinds++;
        else if (p < 0)
            phaseless++;
        else if (!strcmp(kind, "train"))
            windows[p]++;
        else if (epochs[p] && json_array_append(epochs[p], line) == 0)
            last = p;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    int rc = -1;
    if (!f || !epochs[0] || !epochs[1]) {
        debcm_fail("%s: out of memory", path);
        goto done;
    }
    char name[256];
    base_name(rundir, name, sizeof name);
    const char *command = report_get_string(config, "command");
    fputs("# debcm run report: ", f);
    put_text(f, name);
    size_t n_lines = json_array_size(lines);
    fprintf(f, "\n\nA `debcm %s` run, reported by `debcm report` from the files beside this one: config.json, "
               "metrics.jsonl (",
            command ? command : "run");
    if (n_lines)
        fprintf(f, "%zu line%s; every one in metrics.csv", n_lines, n_lines == 1 ? "" : "s");
    else
        fputs("empty", f);
    fprintf(f, ")%s.\n\n", report ? " and report.json" : "");
    const json_t *ep[2] = {epochs[0], epochs[1]};
    char status[512] = "";
    if (!report) {
        run_status(status, sizeof status, command, config, ep, last);
        fprintf(f, "**Status:** %s.\n\n", status);
    }
    if (phaseless || other_kinds)
        fprintf(f, "metrics.jsonl also holds %d lines without a known phase and %d of other kinds (in "
                   "metrics.csv, not below).\n\n",
                phaseless, other_kinds);
    const int teacher_only = command && !strcmp(command, "train-teacher");
    section_machine(f, report, teacher_only);
    section_data(f, config, report);
    section_table(f, "Config", config, "");
    section_table(f, "Variants", json_object_get(report, "variants"),
                  report ? "Not in report.json." : "No report.json (see the status above): the config above holds the "
                                                   "variants.");
    for (int p = 0; p < 2; p++)
        if (json_array_size(epochs[p]) || windows[p])
            epoch_table(f, phases[p], epochs[p], windows[p], phase_best(report, phases[p], epochs[p]));
    section_best(f, config, report, ep, phases);
    section_test(f, report);
    section_full_ranking(f, report);
    section_genres(f, report);
    section_time(f, report, ep, phases);
    section_plots(f, rundir, json_array_size(epochs[0]) || json_array_size(epochs[1]) || windows[0] || windows[1],
                  config);
    int bad = ferror(f);
    bad |= fclose(f);
    f = NULL;
    if (bad) {
        debcm_fail("%s: out of memory", path);
        goto done;
    }
    rc = report_write_text(path, text, len);
done:
    if (f)
        fclose(f);
    free(text);
    json_decref(epochs[0]);
    json_decref(epochs[1]);
    json_decref(lines);
    json_decref(report);
    json_decref(config);
    return rc;
}
