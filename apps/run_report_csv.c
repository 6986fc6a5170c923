/* apps/run_report_csv.c — RUNDIR/metrics.csv from RUNDIR/metrics.jsonl, the way PyTorch Lightning's CSVLogger
 * lays out its metrics.csv, so that the usual tools (pandas.read_csv, a spreadsheet) read a run's log directly:
 * the header is the union of the lines' keys in the order they are first seen, one row per line, an empty cell
 * where a line lacks a key. Cells: integers as written, other numbers in the shortest form that reads back as the
 * same double (report_format_double), true/false, strings as they are, null as an empty cell (like a missing
 * key), an array or object as its compact JSON; quoted as RFC 4180 says when they hold a comma, a quote, a line
 * break or a leading or trailing space. The raw lines are written, nothing is inferred: a line of an older log
 * without "kind" has an empty "kind" cell (readers take it as "epoch"). Written atomically, so a reader (or a
 * kill during the write) never sees half a file; the trainer rewrites it after every epoch. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/run_report.h"
#include "apps/run_report_files.h"
#include "engine/error.h"

static void put_quoted(FILE *out, const char *s)
{
    size_t n = strlen(s);
    int quote = n > 0 && (strpbrk(s, ",\"\r\n") || s[0] == ' ' || s[n - 1] == ' ');
    if (!quote) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void put_cell(FILE *out, const json_t *v)
{
    char num[64];
    switch (v ? json_typeof(v) : JSON_NULL) {
    case JSON_INTEGER:
        fprintf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        report_format_double(num, sizeof num, json_real_value(v));
        fputs(num, out);
        break;
    case JSON_TRUE: fputs("true", out); break;
    case JSON_FALSE: fputs("false", out); break;
    case JSON_STRING: put_quoted(out, json_string_value(v)); break;
    case JSON_ARRAY:
    case JSON_OBJECT: {
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        if (text)
            put_quoted(out, text);
        free(text);
        break;
    }
    default: break; /* null: an empty cell */
    }
}

int run_report_write_csv(const char *rundir)
{
    char path[PATH_MAX];
    if (report_path(path, rundir, "metrics.csv"))
        return -1;
    json_t *lines;
    if (report_load_metrics(rundir, &lines))
        return -1;
    /* the header: every key, in the order first seen (seen: the set, keys: the order) */
    json_t *seen = json_object(), *keys = json_array();
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    int rc = -1;
    if (!seen || !keys || !out) {
        debcm_fail("%s: out of memory", path);
        goto done;
    }
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line) {
        const char *k;
        json_t *v;
        json_object_foreach(line, k, v) {
            if (!json_object_get(seen, k) &&
                (json_object_set_new(seen, k, json_true()) || json_array_append_new(keys, json_string(k)))) {
                debcm_fail("%s: out of memory", path);
                goto done;
            }
        }
    }
    size_t c;
    json_t *key;
    json_array_foreach(keys, c, key) {
        if (c)
            fputc(',', out);
        put_quoted(out, json_string_value(key));
    }
    if (json_array_size(keys))
        fputc('\n', out);
    json_array_foreach(lines, i, line) {
        json_array_foreach(keys, c, key) {
            if (c)
                fputc(',', out);
            json_t *v = json_object_get(line, json_string_value(key));
            if (json_array_size(keys) == 1 && (!v || json_is_null(v)))
                fputs("\"\"", out); /* a row of one empty cell: quoted, or readers skip it as a blank line */
            else
                put_cell(out, v);
        }
        fputc('\n', out);
    }
    if (ferror(out) | fclose(out)) {
        out = NULL;
        debcm_fail("%s: out of memory", path);
        goto done;
    }
    out = NULL;
    rc = report_write_text(path, text, len);
done:
    if (out)
        fclose(out);
    free(text);
    json_decref(seen);
    json_decref(keys);
    json_decref(lines);
    return rc;
}
