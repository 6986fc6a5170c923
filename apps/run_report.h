/* apps/run_report.h — the run report: what a person (or a notebook) reads about a finished or running run,
 * written from the files of its run directory alone, so that it can be written again at any time (`debcm report
 * RUNDIR`) and says only what the run recorded. From RUNDIR/config.json, RUNDIR/metrics.jsonl (epoch lines and
 * logging-window lines; a line without "kind" is an epoch line) and RUNDIR/report.json (a `run` only) it writes
 * RUNDIR/metrics.csv (Lightning's CSV layout), RUNDIR/plots/ (gnuplot, SVG and PNG) and RUNDIR/report.md; and it
 * gives report.json its "machine" object. Every file is replaced atomically. Errors are one message (engine/error.h)
 * naming the file, and the line of metrics.jsonl where one is at fault.
 *
 * plots/ holds teacher_losses.{svg,png} and student_losses.{svg,png} (one panel per loss term against the epoch,
 * the logging windows as a thin line at their fractional epoch) and validation.{svg,png} (val Recall@25 of the
 * teacher, val Recall@25 and NDCG@25 of the student, per epoch, the best epoch circled); a plot whose phase has no
 * lines is not drawn. */
#ifndef DEBCM_APPS_RUN_REPORT_H
#define DEBCM_APPS_RUN_REPORT_H

#include <jansson.h>
#include <stddef.h>

/* RUNDIR/metrics.csv from RUNDIR/metrics.jsonl: the header the union of the lines' keys in first-seen order, one
 * row per line, an empty cell where a line lacks the key; numbers in the shortest form that reads back as the same
 * double; RFC 4180 quoting. 0, or −1 with a message (metrics.jsonl missing or a line not a JSON object: its file and
 * line; metrics.csv not writable). Cheap enough to call after every epoch. */
int run_report_write_csv(const char *rundir);

/* A new JSON object describing this machine and build (apps/run_report_machine.c has the layout): CPU model,
 * logical cores, memory, OS, compiler, debcm's and the libraries' versions (those `debcm version` prints), CUDA
 * and the GPUs ("none" in a CPU-only build or without a GPU). NULL only when out of memory. */
json_t *run_report_machine(void);

/* RUNDIR/plots/ (created) from RUNDIR/metrics.jsonl, by gnuplot found on PATH now. warning (cap bytes; may be
 * NULL) is set to "" or, when gnuplot is not found, to "plots skipped: gnuplot not found (apt-get install
 * gnuplot-nox)" — then nothing is drawn and 0 is returned. 0, or −1 with a message (metrics.jsonl unreadable or a
 * line not JSON, plots/ not creatable, gnuplot failing: its last line quoted). */
int run_report_plots(const char *rundir, char *warning, size_t cap);

/* RUNDIR/report.md from config.json (required), metrics.jsonl (required) and report.json (optional), linking
 * the plots in plots/ that are not older than metrics.jsonl. 0, or −1 with a message naming the file. */
int run_report_markdown(const char *rundir);

/* All of the above that write files: metrics.csv, plots/, report.md (in that order: report.md links the plots
 * just drawn). warning as for run_report_plots. 0, or −1 with the first failure's message. */
int run_report_write(const char *rundir, char *warning, size_t cap);

#endif
