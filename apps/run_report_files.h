/* apps/run_report_files.h — a run directory as the report's writers read it (apps/run_report*.c; private to
 * them). config.json, report.json and metrics.jsonl are loaded with jansson, each failure one message that names
 * the file (and, for metrics.jsonl, the line); the lookups the writers share (a log line's kind, a key that may be
 * missing or of another type); the one number format of the machine-readable outputs (metrics.csv, the plots'
 * data): the shortest decimal that reads back as the same double; and the atomic write of a text. */
#ifndef DEBCM_APPS_RUN_REPORT_FILES_H
#define DEBCM_APPS_RUN_REPORT_FILES_H

#include <jansson.h>
#include <stddef.h>

/* out (PATH_MAX) = dir "/" name; −1 with a message when it does not fit. */
int report_path(char *out, const char *dir, const char *name);

/* dir/name parsed as a JSON object into *out (a new reference). optional: a missing file is no error, *out is
 * then NULL. −1 with "DIR/NAME: …" (the system's reason, or jansson's with the line and column, or "expected a
 * JSON object"). */
int report_load_json(const char *dir, const char *name, int optional, json_t **out);

/* dir/metrics.jsonl as a JSON array of its lines' objects, in file order (blank lines are skipped). −1 with
 * "DIR/metrics.jsonl: line N: …" on a line that is not a JSON object, or the system's reason for the file. */
int report_load_metrics(const char *dir, json_t **lines);

/* The kind of a log line: its "kind" string, or "epoch" when it has none (the log of older runs, epoch lines
 * only). */
const char *report_line_kind(const json_t *line);

/* obj[key] when it is a string, else NULL. */
const char *report_get_string(const json_t *obj, const char *key);

/* 1 and *x = obj[key] when it is a number (integer or real), else 0 (missing, null, another type). */
int report_get_number(const json_t *obj, const char *key, double *x);

/* The shortest "%.{p}g" (p = 1 … 17) that strtod reads back as exactly x, with ".0" appended when that looks like
 * an integer (so that a reader keeps it a float); cap ≥ 32. Returns the length. */
size_t report_format_double(char *buf, size_t cap, double x);

/* The first executable regular file named gnuplot on PATH (/usr/local/bin:/usr/bin:/bin when PATH is unset; an
 * empty entry the current directory, as for execvp) into out (PATH_MAX): 1, or 0 when there is none. The plots
 * are drawn by it, and report.md says why there are none. */
int report_find_gnuplot(char *out);

/* Replace path with len bytes of text atomically (io/atomic_file.h). −1 with a message naming path. */
int report_write_text(const char *path, const char *text, size_t len);

#endif
