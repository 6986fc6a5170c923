/* tests/test_report.c — the run report (apps/run_report*.c, apps/cmd_report.c), on run directories built by hand
 * in WORKDIR and on one made by `debcm run`.
 *
 * The hand-made directories hold a config.json, a metrics.jsonl of both kinds of lines (epoch lines, one of them
 * without "kind" as older logs have it, and logging windows), with values drawn from a seeded generator (random
 * bit patterns too: denormals, huge magnitudes, 17-digit values), keys the report does not know, strings that
 * need CSV quoting, nested values and null; and a report.json with or without its optional parts (machine, data,
 * full_ranking, genre_exposure), as train-student writes it (its teacher only a checkpoint), or none: report.md
 * then states the run's status (a train-teacher run, which never writes one; a run stopped in the student's or the
 * teacher's epochs, the last epoch logged named). A run of 0 epochs: "no epoch" is the reason given for no plots,
 * not gnuplot. Checks: metrics.csv parsed back (an RFC 4180 reader here) equals
 * metrics.jsonl value for value, numbers bit for bit, the header the keys in first-seen order; report.md holds
 * every test number of report.json formatted "%.4f", every epoch row, the best epochs, the config keys, the
 * optional tables' numbers and the plot links; the plots are PNGs with a valid signature and an IHDR of 900×540
 * and SVGs with one drawn group per curve (the curves counted from the inputs); a failing gnuplot leaves the
 * previous plots as they were and no temporary file; a missing gnuplot gives the warning and draws nothing (the
 * checks that need a real gnuplot are skipped, and said so, without one); bad inputs (a line that is not JSON,
 * a line that is not an object, config.json or metrics.jsonl missing, a broken config.json or report.json, an
 * unwritable run directory, bad usage) give one line naming the file and the line; and end to end: `debcm synth
 * --scale tiny`, `debcm run --epochs 2`, `debcm report`, the report's test table equal to the one `debcm run`
 * printed. The generator's seed is printed; DEBCM_TEST_SEED replays it.
 * Usage: test_report DEBCM WORKDIR. Exit 0 pass, 1 fail. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "apps/run_report.h"
#include "apps/run_report_files.h"
#include "check.h"
#include "engine/error.h"
#include "test_cli.h"
#include "test_files.h"

static int child_as_nobody; /* 1: the command runs as uid/gid 65534 (the test runs as root) */
static int have_gnuplot;

/* ---- helpers ----------------------------------------------------------------------------------------------------- */

/* Run "/bin/sh -c CMD" with stdout and stderr to out_txt / err_txt; the exit status (−1 on a signal, 125 when
 * dropping to nobody failed). */
static int sh(const char *fmt, ...) DEBCM_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        int o = open(out_txt, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_txt, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        if (child_as_nobody && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
            _exit(125);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    while (waitpid(p, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *dpath(char *buf, const char *dir, const char *rel)
{
    snprintf(buf, 4096, "%s/%s", dir, rel);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK_MSG(f != NULL, "%s: %s", path, strerror(errno));
    if (f) {
        fputs(text, f);
        CHECK(fclose(f) == 0);
    }
}

static void write_json(const char *path, const json_t *j)
{
    char *t = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    write_text(path, t ? t : "");
    free(t);
}

static void fresh_dir(const char *dir)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    CHECK(system(cmd) == 0);
}

/* A message must be one line, naming what it should. */
static void expect_one_line(const char *err, const char *a, const char *b, const char *what)
{
    CHECK_MSG(err && cli_lines(err) == 1, "%s: expected one line on stderr, found: %s", what, err ? err : "(none)");
    if (err && a)
        CHECK_MSG(strstr(err, a) != NULL, "%s: \"%s\" does not name \"%s\"", what, err, a);
    if (err && b)
        CHECK_MSG(strstr(err, b) != NULL, "%s: \"%s\" does not say \"%s\"", what, err, b);
}

/* ---- the generator of run directories ---------------------------------------------------------------------------- */

static uint64_t rng = 0x2545F4914F6CDD1Dull;

static uint64_t next_u64(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static double unit(void) { return (double)(next_u64() >> 11) * 0x1p-53; }

/* Any finite double, from its bits: denormals, huge and tiny magnitudes, negative zero. */
static double any_double(void)
{
    for (;;) {
        uint64_t b = next_u64();
        double d;
        memcpy(&d, &b, sizeof d);
        if (isfinite(d))
            return d;
    }
}

static const char *const terms[] = {"loss", "match_music", "match_video", "kl_m", "kl_v", "recon", "distill_m",
                                    "distill_v"};
static const double term_scale[] = {-22, 13, 13, 0.75, 0.75, 2.7, -66.6, -66.2};

typedef struct {
    int teacher_epochs, student_epochs; /* 0: no lines of that phase */
    int windows;                        /* logging windows per epoch */
    int odd;                            /* add the odd keys and values */
    int best[2];                        /* out: the best epoch of each phase */
    int student_of;                     /* the student lines' "epochs" when not student_epochs (a stopped run) */
} run_spec;

static void add_terms(json_t *o, int student, double wobble)
{
    for (int t = 0; t < (student ? 8 : 6); t++)
        json_object_set_new(o, terms[t], json_real(term_scale[t] * (1 + 0.05 * (unit() - 0.5)) + wobble));
}

/* metrics.jsonl in dir, as the trainer writes it (compact, 17 digits); returns the lines. */
static json_t *make_metrics(const char *dir, run_spec *s)
{
    json_t *lines = json_array();
    int epochs[2] = {s->teacher_epochs, s->student_epochs};
    int planned[2] = {s->teacher_epochs, s->student_of ? s->student_of : s->student_epochs};
    for (int p = 0; p < 2; p++) {
        double best = -1;
        s->best[p] = 0;
        for (int e = 1; e <= epochs[p]; e++) {
            for (int w = 1; w <= s->windows; w++) {
                json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i}", "kind", "train", "phase",
                                      p ? "student" : "teacher", "epoch", e, "epochs", planned[p], "step",
                                      (e - 1) * s->windows + w, "batch", w * 7, "batches", s->windows * 7);
                add_terms(o, p, 0.3 * w);
                json_object_set_new(o, "samples_per_s", json_real(1000 + 3000 * unit()));
                json_object_set_new(o, "lr", json_real(p ? 0.001 : 0.0001));
                json_object_set_new(o, "seconds", json_real(unit()));
                json_array_append_new(lines, o);
            }
            json_t *o = json_pack("{s:s, s:s, s:i, s:i, s:i}", "kind", "epoch", "phase", p ? "student" : "teacher",
                                  "epoch", e, "epochs", planned[p], "step", e * 10);
            if (p == 0 && e == 1)
                json_object_del(o, "kind"); /* as older logs have it: an epoch line */
            add_terms(o, p, 0);
            double r = floor(unit() * 8) / 8; /* ties happen: the best is the first strictly greater */
            if (r > best) {
                best = r;
                s->best[p] = e;
            }
            json_object_set_new(o, "batches", json_integer(s->windows * 7));
            json_object_set_new(o, "nonfinite_skipped", json_integer(0));
            json_object_set_new(o, "seconds", json_real(0.5 + unit()));
            json_object_set_new(o, "samples_per_s", json_real(1000 + 3000 * unit()));
            json_object_set_new(o, "lr", json_real(p ? 0.001 : 0.0001));
            json_object_set_new(o, "val_recall@25", json_real(r));
            if (p)
                json_object_set_new(o, "val_ndcg@25", json_real(unit() * 0.5));
            json_object_set_new(o, "best_epoch", json_integer(s->best[p]));
            json_object_set_new(o, "best_val_recall@25", json_real(best));
            json_object_set_new(o, "improved", json_boolean(s->best[p] == e));
            if (s->odd && p == 1) {
                json_object_set_new(o, "grad_norm", json_real(any_double()));
                json_object_set_new(o, "tiny", json_real(e == 1 ? 4.9406564584124654e-324 : -0.0));
                json_object_set_new(o, "note, with comma", json_string(e == 1 ? "a, \"quoted\"\nline " : ""));
                json_object_set_new(o, "nested", json_pack("{s:[i, f, n]}", "a", 1, 2.5));
                json_object_set_new(o, "nothing", json_null());
                json_object_set_new(o, "big", json_integer(e == 1 ? INT64_MAX : -9007199254740993LL));
                for (int k = 0; k < 6; k++) {
                    char key[16];
                    snprintf(key, sizeof key, "r%d", k);
                    json_object_set_new(o, key, json_real(any_double()));
                }
            }
            json_array_append_new(lines, o);
        }
    }
    char path[4096];
    FILE *f = fopen(dpath(path, dir, "metrics.jsonl"), "w");
    CHECK(f != NULL);
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line) {
        char *t = json_dumps(line, JSON_COMPACT | JSON_REAL_PRECISION(17));
        if (f && t)
            fprintf(f, "%s\n", t);
        free(t);
        if (f && i == 2)
            fputs("\n", f); /* a blank line: skipped */
    }
    if (f)
        CHECK(fclose(f) == 0);
    return lines;
}

static json_t *make_config(const char *dir, const char *command)
{
    json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:b, s:f, s:f, s:s}", "format", "debcm-config-1", "command",
                          command, "pgc", "/d/data_pgc", "data", "/d/data_matching", "batch_size", 1024, "seed", 1,
                          "tf32", 0, "lr_student", 0.001, "alpha", 5e-05, "matching", "published");
    if (!strcmp(command, "train-student"))
        json_object_set_new(c, "teacher", json_string("/d/run/teacher.safetensors"));
    char path[4096];
    write_json(dpath(path, dir, "config.json"), c);
    return c;
}

/* report.json from the lines' best epochs; full: with machine, data, full_ranking and genre_exposure; full == 2: as
 * train-student writes it, its teacher only a checkpoint (no teacher epochs, no teacher seconds). */
static json_t *make_report(const char *dir, const json_t *lines, const run_spec *s, int full)
{
    double tr = 0, sr = 0, sn = 0;
    size_t i;
    json_t *line;
    json_array_foreach((json_t *)lines, i, line) {
        const char *ph = json_string_value(json_object_get(line, "phase"));
        json_t *k = json_object_get(line, "kind");
        if (k && strcmp(json_string_value(k), "epoch"))
            continue;
        int e = (int)json_integer_value(json_object_get(line, "epoch"));
        if (!strcmp(ph, "teacher") && e == s->best[0])
            tr = json_real_value(json_object_get(line, "val_recall@25"));
        if (!strcmp(ph, "student") && e == s->best[1]) {
            sr = json_real_value(json_object_get(line, "val_recall@25"));
            sn = json_real_value(json_object_get(line, "val_ndcg@25"));
        }
    }
    json_t *test = json_object();
    for (int K = 10; K <= 25; K += 5) {
        char key[16];
        snprintf(key, sizeof key, "recall@%d", K);
        json_object_set_new(test, key, json_real(unit()));
        snprintf(key, sizeof key, "ndcg@%d", K);
        json_object_set_new(test, key, json_real(unit()));
    }
    json_t *r = json_pack("{s:{s:i, s:f}, s:{s:i, s:f, s:f}, s:o, s:{s:s, s:s, s:f, s:i}, s:{s:f, s:f, s:f, s:f}}",
                          "teacher", "best_epoch", s->best[0], "val_recall@25", tr, "student", "best_epoch",
                          s->best[1], "val_recall@25", sr, "val_ndcg@25", sn, "test", test, "variants", "matching",
                          "published", "distill", "kl", "margin", 0.05, "k", 40, "seconds", "teacher", 10 * unit(),
                          "student", 10 * unit(), "test", unit(), "total", 21.0);
    if (full) {
        json_object_set_new(r, "machine", run_report_machine());
        json_object_set_new(r, "data", json_pack("{s:s, s:s, s:s, s:{s:i, s:i}}", "pgc", "/d/data_pgc", "data",
                                                 "/d/data_matching", "fingerprint", "fp-9c1e77a0", "sizes",
                                                 "videos", 240, "musics", 60));
        json_t *w = json_object(), *u = json_object();
        static const char *const fr_keys[] = {"recall@10", "ndcg@10", "recall@25", "ndcg@25", "mrr"};
        for (int k = 0; k < 5; k++) {
            json_object_set_new(w, fr_keys[k], json_real(unit()));
            json_object_set_new(u, fr_keys[k], json_real(unit()));
        }
        json_object_set_new(r, "full_ranking", json_pack("{s:i, s:i, s:o, s:o}", "rows", 24, "tie_rows", 2,
                                                         "weighted", w, "unweighted", u));
        json_t *genres = json_array();
        for (int g = 0; g < 3; g++) {
            json_t *o = g < 2 ? json_pack("{s:i}", "genre", g) : json_pack("{s:s}", "genre", "unknown");
            json_object_set_new(o, "musics", json_integer(10 + g));
            json_object_set_new(o, "share_top_k", json_real(unit()));
            json_object_set_new(o, "share_positives", json_real(unit()));
            json_object_set_new(o, "ratio", json_real(2 * unit()));
            json_array_append_new(genres, o);
        }
        json_object_set_new(r, "genre_exposure", json_pack("{s:i, s:o}", "k", 25, "genres", genres));
    }
    if (full == 2) {
        json_object_set_new(r, "teacher", json_pack("{s:s}", "checkpoint", "/d/run/teacher.safetensors"));
        json_object_del(json_object_get(r, "seconds"), "teacher");
    }
    char path[4096];
    write_json(dpath(path, dir, "report.json"), r);
    return r;
}

/* ---- metrics.csv ------------------------------------------------------------------------------------------------- */

/* An RFC 4180 reader: an array of rows, each an array of cell strings. */
static json_t *parse_csv(const char *s)
{
    json_t *rows = json_array(), *row = json_array();
    size_t cap = 256, n = 0;
    char *cell = malloc(cap);
    int in_row = 0;
    for (const char *p = s;;) {
        n = 0;
        if (*p == '"') { /* a quoted cell: "" is a quote */
            for (p++;; p++) {
                if (!*p)
                    break;
                if (*p == '"' && p[1] == '"')
                    p++;
                else if (*p == '"') {
                    p++;
                    break;
                }
                if (n + 1 >= cap)
                    cell = realloc(cell, cap *= 2);
                cell[n++] = *p;
            }
        } else {
            for (; *p && *p != ',' && *p != '\n'; p++) {
                if (n + 1 >= cap)
                    cell = realloc(cell, cap *= 2);
                cell[n++] = *p;
            }
        }
        cell[n] = '\0';
        if (*p == ',' || *p == '\n' || n || in_row)
            json_array_append_new(row, json_string(cell));
        in_row = 1;
        if (*p == ',') {
            p++;
            continue;
        }
        json_array_append_new(rows, row);
        row = json_array();
        in_row = 0;
        if (!*p || !*++p)
            break;
    }
    json_decref(row);
    free(cell);
    return rows;
}

/* Whether a CSV cell holds exactly v; why says what differs. */
static int cell_matches(const char *cell, const json_t *v, char *why, size_t cap)
{
    char *end;
    why[0] = '\0';
    if (!v || json_is_null(v)) {
        snprintf(why, cap, "expected an empty cell, found '%s'", cell);
        return !*cell;
    }
    if (json_is_integer(v)) {
        errno = 0;
        long long x = strtoll(cell, &end, 10);
        snprintf(why, cap, "'%s' is not the integer %" JSON_INTEGER_FORMAT, cell, json_integer_value(v));
        return *cell && !*end && !errno && x == json_integer_value(v);
    }
    if (json_is_real(v)) {
        double want = json_real_value(v), x = strtod(cell, &end);
        char longest[64];
        snprintf(longest, sizeof longest, "%.17g", want);
        snprintf(why, cap, "'%s' is not %.17g bit for bit (or longer than '%s')", cell, want, longest);
        return *cell && !*end && memcmp(&x, &want, sizeof x) == 0 && strlen(cell) <= strlen(longest) + 2;
    }
    if (json_is_boolean(v)) {
        snprintf(why, cap, "'%s' is not %s", cell, json_is_true(v) ? "true" : "false");
        return !strcmp(cell, json_is_true(v) ? "true" : "false");
    }
    if (json_is_string(v)) {
        snprintf(why, cap, "'%s' is not the string '%s'", cell, json_string_value(v));
        return !strcmp(cell, json_string_value(v));
    }
    json_t *back = json_loads(cell, JSON_DECODE_ANY, NULL);
    int ok = back && json_equal(back, (json_t *)v);
    json_decref(back);
    snprintf(why, cap, "'%s' is not the JSON value written", cell);
    return ok;
}

/* metrics.csv of dir against metrics.jsonl, read here with jansson line by line. */
static void check_csv(const char *dir)
{
    char path[4096];
    char *jsonl = test_read_file(dpath(path, dir, "metrics.jsonl"), NULL);
    char *csv = test_read_file(dpath(path, dir, "metrics.csv"), NULL);
    CHECK_MSG(jsonl && csv, "%s: metrics.jsonl or metrics.csv missing", dir);
    if (!jsonl || !csv) {
        free(jsonl);
        free(csv);
        return;
    }
    json_t *lines = json_array(), *keys = json_array();
    for (char *save = NULL, *l = strtok_r(jsonl, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(l, 0, NULL);
        if (!o)
            continue; /* the blank line */
        json_array_append_new(lines, o);
        const char *k;
        json_t *v;
        json_object_foreach(o, k, v) {
            int have = 0;
            size_t j;
            json_t *e;
            json_array_foreach(keys, j, e) have |= !strcmp(json_string_value(e), k);
            if (!have)
                json_array_append_new(keys, json_string(k));
        }
    }
    json_t *rows = parse_csv(csv);
    CHECK_MSG(json_array_size(rows) == json_array_size(lines) + 1, "%s: %zu CSV rows for %zu lines", dir,
              json_array_size(rows), json_array_size(lines));
    json_t *header = json_array_get(rows, 0);
    CHECK_MSG(json_equal(header, keys), "%s: the header is not the keys in first-seen order", dir);
    int bad = 0, cells = 0;
    for (size_t r = 0; r < json_array_size(lines) && r + 1 < json_array_size(rows); r++) {
        json_t *row = json_array_get(rows, r + 1), *line = json_array_get(lines, r);
        CHECK_MSG(json_array_size(row) == json_array_size(keys), "%s: row %zu has %zu cells, not %zu", dir, r + 1,
                  json_array_size(row), json_array_size(keys));
        for (size_t c = 0; c < json_array_size(keys) && c < json_array_size(row); c++) {
            char why[512];
            const char *cell = json_string_value(json_array_get(row, c));
            const char *key = json_string_value(json_array_get(keys, c));
            cells++;
            if (!cell_matches(cell, json_object_get(line, key), why, sizeof why) && bad++ < 5)
                CHECK_MSG(0, "%s: metrics.csv row %zu, %s: %s", dir, r + 1, key, why);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d cells differ", dir, bad);
    printf("  %s: metrics.csv: %zu rows × %zu columns, %d cells equal to metrics.jsonl\n", dir,
           json_array_size(lines), json_array_size(keys), cells - bad);
    json_decref(rows);
    json_decref(lines);
    json_decref(keys);
    free(jsonl);
    free(csv);
}

static void test_format_double(void)
{
    const double xs[] = {0.1, 1.0 / 3, 0.30000000000000004, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
                         -0.0, 0.0, 1e21, 100.0, -22.18910276889801, 0.75068545341491699, 123456789012345680.0};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        char buf[64], longest[64];
        report_format_double(buf, sizeof buf, xs[i]);
        double back = strtod(buf, NULL);
        snprintf(longest, sizeof longest, "%.17g", xs[i]);
        CHECK_MSG(memcmp(&back, &xs[i], sizeof back) == 0, "'%s' does not read back as %s", buf, longest);
        CHECK_MSG(strpbrk(buf, ".e"), "'%s' does not read as a float", buf);
        /* the shortest: one digit fewer no longer reads back */
        int digits = 0;
        for (const char *p = buf; *p && *p != 'e'; p++)
            digits += *p >= '0' && *p <= '9';
        int lead = 0; /* "0.001": the zeros before the first significant digit do not count */
        for (const char *p = buf; *p && (*p == '-' || *p == '0' || *p == '.'); p++)
            lead += *p == '0';
        int sig = digits - lead;
        if (xs[i] != 0 && sig > 1 && !(fabs(xs[i]) == floor(fabs(xs[i])) && !strchr(buf, 'e'))) {
            char fewer[64];
            snprintf(fewer, sizeof fewer, "%.*g", sig - 1, xs[i]);
            CHECK_MSG(strtod(fewer, NULL) != xs[i], "'%s' is not the shortest: '%s' reads back too", buf, fewer);
        }
    }
    char z[64];
    report_format_double(z, sizeof z, -0.0);
    CHECK_MSG(!strcmp(z, "-0.0"), "-0.0 written '%s'", z);
    report_format_double(z, sizeof z, 0.1);
    CHECK_MSG(!strcmp(z, "0.1"), "0.1 written '%s'", z);
}

/* Logs of odd shapes: one column with a line that lacks it (a row of one empty cell must not read as a blank
 * line), and an empty log (an empty metrics.csv). */
static void test_csv_edges(void)
{
    char dir[4096], path[4096];
    cli_wpath(dir, "csv-one-column");
    fresh_dir(dir);
    write_text(dpath(path, dir, "metrics.jsonl"), "{\"a\": 1}\n{}\n{\"a\": 2.5}\n{\"a\": \" x,\\\"y\\\" \"}\n");
    CHECK_MSG(run_report_write_csv(dir) == 0, "%s", debcm_last_error());
    check_csv(dir);
    cli_wpath(dir, "csv-empty");
    fresh_dir(dir);
    write_text(dpath(path, dir, "metrics.jsonl"), "");
    CHECK_MSG(run_report_write_csv(dir) == 0, "%s", debcm_last_error());
    size_t n = 99;
    char *csv = test_read_file(dpath(path, dir, "metrics.csv"), &n);
    CHECK(csv && n == 0);
    free(csv);
}

/* ---- report.md --------------------------------------------------------------------------------------------------- */

static int is_epoch_line(const json_t *line)
{
    json_t *k = json_object_get(line, "kind");
    return !k || !strcmp(json_string_value(k), "epoch");
}

/* The line of md that starts with prefix, or NULL. */
static const char *md_line(const char *md, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = md; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, n))
            return p;
    return NULL;
}

/* A row "| PHASE | <number> …" of the time table in md. */
static int time_row(const char *md, const char *phase)
{
    char prefix[64];
    int n = snprintf(prefix, sizeof prefix, "| %s | ", phase);
    for (const char *p = md; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, (size_t)n) && p[n] >= '0' && p[n] <= '9')
            return 1;
    return 0;
}

static void check_markdown(const char *dir, const json_t *config, const json_t *lines, const json_t *report,
                           const run_spec *s)
{
    char path[4096], want[1024];
    char *md = test_read_file(dpath(path, dir, "report.md"), NULL);
    CHECK_MSG(md != NULL, "%s: no report.md", dir);
    if (!md)
        return;
    CHECK_CONTAINS(md, "# debcm run report: ");
    /* every epoch row: epoch, loss, match_music, match_video, in "%.4f" */
    static const char *const phases[] = {"teacher", "student"};
    int rows = 0;
    for (int p = 0; p < 2; p++) {
        size_t i;
        json_t *line;
        json_array_foreach((json_t *)lines, i, line) {
            if (!is_epoch_line(line) || strcmp(json_string_value(json_object_get(line, "phase")), phases[p]))
                continue;
            int e = (int)json_integer_value(json_object_get(line, "epoch"));
            snprintf(want, sizeof want, "| %d | %.4f | %.4f | %.4f |", e,
                     json_real_value(json_object_get(line, "loss")),
                     json_real_value(json_object_get(line, "match_music")),
                     json_real_value(json_object_get(line, "match_video")));
            const char *row = md_line(md, want);
            CHECK_MSG(row != NULL, "%s: report.md has no epoch row '%s'", dir, want);
            rows += row != NULL;
            if (row) {
                size_t n = strcspn(row, "\n");
                char *r = strndup(row, n);
                snprintf(want, sizeof want, "| %.4f |", json_real_value(json_object_get(line, "val_recall@25")));
                CHECK_MSG(strstr(r, want), "%s: epoch row '%s' lacks val Recall@25 %s", dir, r, want);
                int best = e == s->best[p];
                CHECK_MSG(best == (strstr(r, "**best**") != NULL), "%s: epoch row '%s': best marker %s", dir, r,
                          best ? "missing" : "where it is not the best epoch");
                free(r);
            }
        }
        if (s->best[p]) {
            snprintf(want, sizeof want, "- %s: epoch %d of %d", phases[p], s->best[p],
                     p ? (s->student_of ? s->student_of : s->student_epochs) : s->teacher_epochs);
            CHECK_MSG(strstr(md, want), "%s: report.md lacks the best epoch '%s'", dir, want);
        }
    }
    /* the config, every key */
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)config, k, v) {
        if (json_is_string(v))
            snprintf(want, sizeof want, "| %s | %s |", k, json_string_value(v));
        else
            snprintf(want, sizeof want, "| %s | ", k);
        CHECK_MSG(strstr(md, want), "%s: report.md lacks the config row '%s'", dir, want);
    }
    if (!report) {
        CHECK_CONTAINS(md, "**Status:** ");
        CHECK_CONTAINS(md, "o report.json"); /* "No report.json: …" or "(it writes no report.json)" */
        CHECK(!strstr(md, "## Test"));
        free(md);
        return;
    }
    /* the test table, "%.4f" as debcm run prints it */
    const json_t *test = json_object_get(report, "test");
    int numbers = 0;
    for (int K = 10; K <= 25; K += 5) {
        char rk[16], nk[16];
        snprintf(rk, sizeof rk, "recall@%d", K);
        snprintf(nk, sizeof nk, "ndcg@%d", K);
        snprintf(want, sizeof want, "| %d | %.4f | %.4f |", K, json_real_value(json_object_get(test, rk)),
                 json_real_value(json_object_get(test, nk)));
        CHECK_MSG(md_line(md, want), "%s: report.md lacks the test row '%s'", dir, want);
        numbers += 2;
    }
    /* the time table */
    const json_t *sec = json_object_get(report, "seconds");
    for (int p = 0; p < 2; p++) {
        if (!json_object_get(sec, phases[p])) { /* train-student's teacher: no time row */
            CHECK_MSG(!time_row(md, phases[p]), "%s: report.md has a time row for the %s, of no seconds and no epochs",
                      dir, phases[p]);
            continue;
        }
        snprintf(want, sizeof want, "| %s | %.2f | %d |", phases[p], json_real_value(json_object_get(sec, phases[p])),
                 p ? s->student_epochs : s->teacher_epochs);
        CHECK_MSG(md_line(md, want), "%s: report.md lacks the time row '%s'", dir, want);
    }
    snprintf(want, sizeof want, "| total | %.2f |", json_real_value(json_object_get(sec, "total")));
    CHECK_MSG(md_line(md, want), "%s: report.md lacks the time row '%s'", dir, want);
    /* the optional parts */
    const json_t *m = json_object_get(report, "machine"), *d = json_object_get(report, "data");
    if (m) {
        snprintf(want, sizeof want, "| CPU | %s |", json_string_value(json_object_get(m, "cpu")));
        CHECK_MSG(strstr(md, want), "%s: report.md lacks '%s'", dir, want);
        snprintf(want, sizeof want, "| jansson | %s |", JANSSON_VERSION);
        CHECK_MSG(strstr(md, want), "%s: report.md lacks '%s'", dir, want);
    } else {
        CHECK_CONTAINS(md, "Not recorded in report.json");
    }
    if (d) {
        snprintf(want, sizeof want, "| fingerprint | %s |", json_string_value(json_object_get(d, "fingerprint")));
        CHECK_MSG(strstr(md, want), "%s: report.md lacks '%s'", dir, want);
        json_object_foreach(json_object_get(d, "sizes"), k, v) {
            if (json_is_integer(v)) {
                snprintf(want, sizeof want, "| sizes.%s | %lld |", k, (long long)json_integer_value(v));
                CHECK_MSG(strstr(md, want), "%s: report.md lacks '%s'", dir, want);
            }
        }
    }
    const json_t *fr = json_object_get(report, "full_ranking");
    if (fr) {
        const json_t *w = json_object_get(fr, "weighted"), *u = json_object_get(fr, "unweighted");
        json_object_foreach((json_t *)w, k, v) {
            snprintf(want, sizeof want, "| %s | %.4f | %.4f |", k, json_real_value(v),
                     json_real_value(json_object_get(u, k)));
            CHECK_MSG(md_line(md, want), "%s: report.md lacks the full-ranking row '%s'", dir, want);
            numbers += 2;
        }
        snprintf(want, sizeof want, "%lld rows; %lld with a tie at the positive",
                 (long long)json_integer_value(json_object_get(fr, "rows")),
                 (long long)json_integer_value(json_object_get(fr, "tie_rows")));
        CHECK_CONTAINS(md, want);
    } else {
        CHECK(!strstr(md, "## Full ranking"));
    }
    const json_t *ge = json_object_get(report, "genre_exposure");
    if (ge) {
        size_t i;
        json_t *g;
        json_array_foreach(json_object_get(ge, "genres"), i, g) {
            /* the row of the genre: its id, its musics, then (in whatever columns) its shares and ratio */
            json_t *id = json_object_get(g, "genre");
            char idtext[64];
            if (json_is_string(id))
                snprintf(idtext, sizeof idtext, "%s", json_string_value(id));
            else
                snprintf(idtext, sizeof idtext, "%lld", (long long)json_integer_value(id));
            snprintf(want, sizeof want, "| %s | %lld |", idtext,
                     (long long)json_integer_value(json_object_get(g, "musics")));
            const char *row = md_line(md, want);
            CHECK_MSG(row != NULL, "%s: report.md lacks the genre row '%s …'", dir, want);
            if (!row)
                continue;
            char *r = strndup(row, strcspn(row, "\n"));
            static const char *const keys[] = {"share_top_k", "share_positives", "ratio"};
            char *at = r;
            for (int q = 0; q < 3 && at; q++) { /* in this order */
                json_t *x = json_object_get(g, keys[q]);
                if (json_is_null(x))
                    snprintf(want, sizeof want, "| n/a |");
                else
                    snprintf(want, sizeof want, "| %.4f |", json_number_value(x));
                char *hit = strstr(at, want);
                CHECK_MSG(hit, "%s: genre row '%s' lacks %s '%s'", dir, r, keys[q], want);
                at = hit ? hit + 1 : NULL;
                numbers++;
            }
            free(r);
        }
        snprintf(want, sizeof want, "share of the top %lld", (long long)json_integer_value(json_object_get(ge, "k")));
        CHECK_CONTAINS(md, want);
    } else {
        CHECK(!strstr(md, "## Genre exposure"));
    }
    printf("  %s: report.md: %d epoch rows, %d result numbers found\n", dir, rows, numbers);
    free(md);
}

/* ---- plots ------------------------------------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

static void check_png(const char *path)
{
    size_t n = 0;
    unsigned char *b = (unsigned char *)test_read_file(path, &n);
    CHECK_MSG(b && n > 33, "%s: missing or too short", path);
    if (b && n > 33) {
        CHECK_MSG(!memcmp(b, "\x89PNG\r\n\x1a\n", 8), "%s: no PNG signature", path);
        CHECK_MSG(be32(b + 8) == 13 && !memcmp(b + 12, "IHDR", 4), "%s: no IHDR chunk first", path);
        CHECK_MSG(be32(b + 16) == 900 && be32(b + 20) == 540, "%s: %u×%u, expected 900×540", path, be32(b + 16),
                  be32(b + 20));
    }
    free(b);
}

/* An SVG with `curves` drawn groups (gnuplot's <g id="gnuplot_plot_…">), each holding a path or polyline. */
static void check_svg(const char *path, int curves)
{
    char *s = test_read_file(path, NULL);
    CHECK_MSG(s != NULL, "%s: missing", path);
    if (!s)
        return;
    CHECK_MSG(strstr(s, "<svg") && strstr(s, "</svg>"), "%s: not an SVG document", path);
    int groups = 0, drawn = 0;
    for (char *g = strstr(s, "<g id=\"gnuplot_plot_"); g; groups++) {
        char *next = strstr(g + 1, "<g id=\"gnuplot_plot_");
        char save = next ? *next : 0;
        if (next)
            *next = '\0';
        drawn += strstr(g, "<path") || strstr(g, "<polyline");
        if (next)
            *next = save;
        g = next;
    }
    CHECK_MSG(groups == curves && drawn == curves, "%s: %d curve groups (%d drawn), expected %d", path, groups, drawn,
              curves);
    free(s);
}

static int any_term(const json_t *lines, const char *phase, const char *term, int windows)
{
    size_t i;
    json_t *line;
    json_array_foreach((json_t *)lines, i, line) {
        if (strcmp(json_string_value(json_object_get(line, "phase")), phase) || is_epoch_line(line) == windows)
            continue;
        if (json_is_number(json_object_get(line, term)))
            return 1;
    }
    return 0;
}

/* The plots of dir, their curves counted from the lines. */
static void check_plots(const char *dir, const json_t *lines, const run_spec *s)
{
    char path[4096], rel[64];
    static const char *const phases[] = {"teacher", "student"};
    int val_curves = 0;
    for (int p = 0; p < 2; p++) {
        int curves = 0;
        for (int t = 0; t < 8; t++)
            curves += any_term(lines, phases[p], terms[t], 0) + any_term(lines, phases[p], terms[t], 1);
        snprintf(rel, sizeof rel, "plots/%s_losses.png", phases[p]);
        if (!curves) {
            CHECK_MSG(!test_file_exists(dpath(path, dir, rel)), "%s: %s drawn without data", dir, rel);
            continue;
        }
        check_png(dpath(path, dir, rel));
        snprintf(rel, sizeof rel, "plots/%s_losses.svg", phases[p]);
        check_svg(dpath(path, dir, rel), curves);
        /* validation: recall, ndcg (student), and the best epoch's circle */
        int epochs = p ? s->student_epochs : s->teacher_epochs;
        if (epochs)
            val_curves += 1 + (p == 1) + (s->best[p] > 0);
    }
    check_png(dpath(path, dir, "plots/validation.png"));
    check_svg(dpath(path, dir, "plots/validation.svg"), val_curves);
    CHECK_MSG(test_count_temp_files(dpath(path, dir, "plots")) == 0, "%s: temporary files left in plots/", dir);
    CHECK_MSG(test_count_temp_files(dir) == 0, "%s: temporary files left", dir);
}

/* ---- the cases --------------------------------------------------------------------------------------------------- */

/* One hand-made run directory: csv, plots and markdown from the library calls, then checked. */
/* report_kind: 0 none, 1 base, 2 full, 3 train-student's (full, the teacher a checkpoint). Returns report.md (the
 * caller frees it), for the checks of the case. */
static char *test_dir(const char *name, run_spec s, const char *command, int report_kind)
{
    char dir[4096], warn[256];
    cli_wpath(dir, name);
    fresh_dir(dir);
    json_t *config = make_config(dir, command), *lines = make_metrics(dir, &s);
    json_t *report = report_kind ? make_report(dir, lines, &s, report_kind == 1 ? 0 : report_kind == 2 ? 1 : 2) : NULL;
    CHECK_MSG(run_report_write(dir, warn, sizeof warn) == 0, "%s: %s", dir, debcm_last_error());
    check_csv(dir);
    if (have_gnuplot) {
        CHECK_MSG(!warn[0], "%s: warning with gnuplot present: %s", dir, warn);
        check_plots(dir, lines, &s);
        char path[4096];
        char *md = test_read_file(dpath(path, dir, "report.md"), NULL);
        if (md && s.student_epochs)
            CHECK_CONTAINS(md, "![student: loss terms](plots/student_losses.png)");
        if (md && s.student_epochs)
            CHECK_CONTAINS(md, "[SVG](plots/validation.svg)");
        free(md);
    }
    check_markdown(dir, config, lines, report, &s);
    json_decref(config);
    json_decref(lines);
    json_decref(report);
    char path[4096];
    char *md = test_read_file(dpath(path, dir, "report.md"), NULL);
    if (!md)
        md = strdup("");
    return md;
}

/* report.md of a case holds (or, present 0, lacks) the text */
static void expect_md(const char *case_name, const char *md, const char *text, int present)
{
    CHECK_MSG(md && (strstr(md, text) != NULL) == present, "%s: report.md %s \"%s\"", case_name,
              present ? "lacks" : "holds", text);
}

/* What report.md says of the run's status, the machine, the teacher, by case. */
static void test_cases(void)
{
    char *md = test_dir("run-full", (run_spec){3, 2, 3, 1, {0, 0}, 0}, "run", 2);
    expect_md("run-full", md, "**Status:**", 0); /* a finished run: nothing to explain */
    expect_md("run-full", md, "not finished", 0);
    free(md);
    free(test_dir("run-base", (run_spec){2, 3, 0, 0, {0, 0}, 0}, "run", 1));
    /* train-teacher: never a report.json, and that is no sign of a stopped run */
    md = test_dir("teacher-only", (run_spec){4, 0, 2, 0, {0, 0}, 0}, "train-teacher", 0);
    expect_md("teacher-only", md,
              "**Status:** A train-teacher run (it writes no report.json); last epoch logged: teacher epoch 4 of 4.",
              1);
    expect_md("teacher-only", md, "Not recorded: it is recorded in report.json, which a train-teacher run does not "
                                  "write.", 1);
    expect_md("teacher-only", md, "not finished", 0);
    expect_md("teacher-only", md, "train-student", 0);
    free(md);
    /* a stopped `debcm run` (killed in the student's third epoch of 5): no report.json, and the report says why */
    md = test_dir("run-stopped", (run_spec){3, 2, 1, 0, {0, 0}, 5}, "run", 0);
    expect_md("run-stopped", md,
              "**Status:** No report.json: the run has not finished (last epoch logged: student epoch 2 of 5).", 1);
    expect_md("run-stopped", md, "Not recorded yet: it is recorded in report.json at the end of the run.", 1);
    expect_md("run-stopped", md, "train-teacher", 0);
    free(md);
    /* stopped in the teacher's epochs */
    md = test_dir("run-stopped-teacher", (run_spec){2, 0, 0, 0, {0, 0}, 0}, "run", 0);
    expect_md("run-stopped-teacher", md, "the run has not finished (last epoch logged: teacher epoch 2 of 2)", 1);
    free(md);
    /* train-student as it writes report.json now: the test table and the rest, the teacher only as its checkpoint */
    md = test_dir("student-report", (run_spec){0, 3, 2, 0, {0, 0}, 0}, "train-student", 3);
    expect_md("student-report", md, "## Test (the best student, weighted)", 1);
    expect_md("student-report", md, "## Full ranking", 1);
    expect_md("student-report", md, "## Genre exposure", 1);
    expect_md("student-report", md, "| CPU | ", 1);
    expect_md("student-report", md, "- teacher: not trained by this run; it loaded the checkpoint "
                                    "/d/run/teacher.safetensors", 1);
    expect_md("student-report", md, "- teacher: epoch", 0);
    expect_md("student-report", md, "## Teacher epochs", 0);
    CHECK_MSG(!time_row(md, "teacher"), "student-report: a teacher row in the time table");
    expect_md("student-report", md, "**Status:**", 0);
    free(md);
    /* the same directory without report.json: a train-student stopped after its last epoch, or an older debcm */
    md = test_dir("student-only", (run_spec){0, 1, 2, 1, {0, 0}, 0}, "train-student", 0);
    expect_md("student-only", md, "No report.json: the run has not finished (last epoch logged: student epoch 1 of "
                                  "1: stopped during the test evaluation, or still in it); or a train-student run "
                                  "of a debcm older than its report.json", 1);
    free(md);
}

/* `debcm run --epochs 0`: metrics.jsonl empty, report.json with the test table; the report says there is no epoch
 * to plot (gnuplot is not the reason), draws nothing and removes the plots of an earlier run of that directory. */
static void test_zero_epochs(void)
{
    char dir[4096], path[4096], warn[256];
    cli_wpath(dir, "zero-epochs");
    fresh_dir(dir);
    json_t *config = make_config(dir, "run");
    json_object_set_new(config, "teacher_epochs", json_integer(0));
    json_object_set_new(config, "student_epochs", json_integer(0));
    write_json(dpath(path, dir, "config.json"), config);
    run_spec s = {0, 0, 0, 0, {0, 0}, 0};
    json_t *lines = make_metrics(dir, &s);
    CHECK(json_array_size(lines) == 0);
    json_t *report = make_report(dir, lines, &s, 1);
    CHECK(mkdir(dpath(path, dir, "plots"), 0777) == 0);
    write_text(dpath(path, dir, "plots/validation.png"), "an earlier run's plot");
    CHECK_MSG(run_report_write(dir, warn, sizeof warn) == 0, "%s: %s", dir, debcm_last_error());
    CHECK_MSG(!have_gnuplot || !warn[0], "%s: warning with gnuplot present: %s", dir, warn);
    CHECK_MSG(!have_gnuplot || !test_file_exists(dpath(path, dir, "plots/validation.png")),
              "%s: an earlier run's plot kept beside a log of no epoch", dir);
    char *md = test_read_file(dpath(path, dir, "report.md"), NULL);
    CHECK(md != NULL);
    if (md) {
        expect_md("zero-epochs", md, "No plots: metrics.jsonl holds no epoch (0 epochs).", 1);
        expect_md("zero-epochs", md, "gnuplot", 0);
        expect_md("zero-epochs", md, "](plots/", 0);
        expect_md("zero-epochs", md, "metrics.jsonl (empty) and report.json", 1);
        expect_md("zero-epochs", md, "None: the config gives every phase 0 epochs.", 1);
        expect_md("zero-epochs", md, "No epoch has ended yet", 0);
        expect_md("zero-epochs", md, "## Test (the best student, weighted)", 1);
    }
    free(md);
    /* the same with gnuplot missing: still the epochs are the reason given */
    char bin[4096];
    fresh_dir(cli_wpath(bin, "empty-bin-0"));
    char *old_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", bin, 1);
    CHECK(run_report_markdown(dir) == 0);
    if (old_path)
        setenv("PATH", old_path, 1);
    free(old_path);
    md = test_read_file(dpath(path, dir, "report.md"), NULL);
    expect_md("zero-epochs, no gnuplot", md, "No plots: metrics.jsonl holds no epoch (0 epochs).", 1);
    free(md);
    json_decref(config);
    json_decref(lines);
    json_decref(report);
}

/* gnuplot missing (PATH without it): the warning, nothing drawn, report.md says so; then plots older than
 * metrics.jsonl are not linked. */
static void test_no_gnuplot(void)
{
    char dir[4096], bin[4096], path[4096], warn[256];
    cli_wpath(dir, "no-gnuplot");
    fresh_dir(dir);
    fresh_dir(cli_wpath(bin, "empty-bin"));
    run_spec s = {2, 2, 1, 0, {0, 0}, 0};
    json_decref(make_config(dir, "run"));
    json_decref(make_metrics(dir, &s));
    char *old_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    setenv("PATH", bin, 1);
    CHECK_MSG(run_report_write(dir, warn, sizeof warn) == 0, "%s", debcm_last_error());
    CHECK_MSG(!strcmp(warn, "plots skipped: gnuplot not found (apt-get install gnuplot-nox)"), "warning: '%s'", warn);
    CHECK(!test_file_exists(dpath(path, dir, "plots")));
    char *md = test_read_file(dpath(path, dir, "report.md"), NULL);
    CHECK(md && strstr(md, "No plots") && !strstr(md, "](plots/"));
    CHECK(md && strstr(md, "No plots: they are drawn by gnuplot, which was not found (apt-get install gnuplot-nox)"));
    free(md);
    /* the command: exit 0, the warning as one line */
    int st = sh("PATH='%s' '%s' report '%s'", bin, debcm, dir);
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 0, "report without gnuplot: status %d", st);
    expect_one_line(err, "debcm report: warning: plots skipped: gnuplot not found (apt-get install gnuplot-nox)",
                    NULL, "report without gnuplot");
    free(err);
    if (old_path)
        setenv("PATH", old_path, 1);
    /* stale plots: drawn, then metrics.jsonl changes and gnuplot is gone */
    if (have_gnuplot) {
        CHECK(run_report_plots(dir, warn, sizeof warn) == 0 && !warn[0]);
        struct timespec old[2] = {{1000000000, 0}, {1000000000, 0}};
        const char *names[] = {"plots/teacher_losses.png", "plots/teacher_losses.svg", "plots/student_losses.png",
                               "plots/student_losses.svg", "plots/validation.png", "plots/validation.svg"};
        for (int i = 0; i < 6; i++)
            CHECK(utimensat(AT_FDCWD, dpath(path, dir, names[i]), old, 0) == 0);
        setenv("PATH", bin, 1);
        CHECK(run_report_write(dir, warn, sizeof warn) == 0);
        md = test_read_file(dpath(path, dir, "report.md"), NULL);
        CHECK(md && strstr(md, "older than metrics.jsonl") && !strstr(md, "](plots/"));
        free(md);
        if (old_path)
            setenv("PATH", old_path, 1);
    } else {
        printf("skipped: the stale-plot check (gnuplot not found)\n");
    }
    free(old_path);
}

/* A gnuplot that fails after writing half of its outputs: an error quoting it, the previous plots untouched, no
 * temporary file left. */
static void test_failing_gnuplot(void)
{
    char dir[4096], bin[4096], path[4096], warn[256];
    cli_wpath(dir, "bad-gnuplot");
    fresh_dir(dir);
    fresh_dir(cli_wpath(bin, "fake-bin"));
    run_spec s = {2, 2, 0, 0, {0, 0}, 0};
    json_decref(make_config(dir, "run"));
    json_decref(make_metrics(dir, &s));
    char *before = NULL;
    size_t before_len = 0;
    if (have_gnuplot) {
        CHECK(run_report_plots(dir, warn, sizeof warn) == 0);
        before = test_read_file(dpath(path, dir, "plots/teacher_losses.png"), &before_len);
    }
    write_text(dpath(path, bin, "gnuplot"),
               "#!/bin/sh\n"
               "sed -n \"s/^set output '\\(.*\\)'$/\\1/p\" \"$1\" | while read -r f; do echo half > \"$f\"; done\n"
               "echo 'line 1: something went wrong' >&2\necho boom >&2\nexit 3\n");
    CHECK(chmod(path, 0755) == 0);
    char *old_path = getenv("PATH") ? strdup(getenv("PATH")) : NULL;
    char fake[8192];
    snprintf(fake, sizeof fake, "%s:/usr/bin:/bin", bin);
    setenv("PATH", fake, 1);
    CHECK(run_report_plots(dir, warn, sizeof warn) == -1);
    CHECK_CONTAINS(debcm_last_error(), "plots/teacher_losses.svg: gnuplot failed (exit 3): boom");
    if (old_path)
        setenv("PATH", old_path, 1);
    free(old_path);
    if (before) {
        size_t after_len = 0;
        char *after = test_read_file(dpath(path, dir, "plots/teacher_losses.png"), &after_len);
        CHECK_MSG(after && after_len == before_len && !memcmp(after, before, after_len),
                  "a failed gnuplot changed plots/teacher_losses.png");
        free(after);
    } else {
        CHECK(!test_file_exists(dpath(path, dir, "plots/teacher_losses.png")));
        printf("skipped: the previous plots' survival of a failed gnuplot (gnuplot not found)\n");
    }
    free(before);
    CHECK_MSG(test_count_temp_files(dpath(path, dir, "plots")) == 0, "temporary plots left after a failed gnuplot");
}

/* A fresh hand-made run directory for the error cases. */
static void error_dir(char *dir, const char *name)
{
    cli_wpath(dir, name);
    fresh_dir(dir);
    run_spec s = {1, 1, 1, 0, {0, 0}, 0};
    json_decref(make_config(dir, "run"));
    json_decref(make_metrics(dir, &s));
}

static void expect_cli_error(const char *dir, const char *a, const char *b, const char *what)
{
    int st = sh("'%s' report '%s'", debcm, dir);
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 1, "%s: status %d, expected 1", what, st);
    expect_one_line(err, "debcm report: error: ", a, what);
    if (b && err)
        CHECK_MSG(strstr(err, b) != NULL, "%s: \"%s\" does not say \"%s\"", what, err, b);
    free(err);
    char path[4096];
    CHECK_MSG(!test_file_exists(dpath(path, dir, "report.md")), "%s: report.md written anyway", what);
    CHECK_MSG(test_count_temp_files(dir) == 0, "%s: temporary files left", what);
}

static void test_bad_inputs(void)
{
    char dir[4096], path[4096], want[4200];
    /* a line that is not JSON: its line number */
    error_dir(dir, "bad-line");
    char *text = test_read_file(dpath(path, dir, "metrics.jsonl"), NULL);
    char *nl = text ? strchr(strchr(text, '\n') + 1, '\n') : NULL; /* after line 2 */
    if (nl) {
        FILE *f = fopen(path, "w");
        fprintf(f, "%.*s{\"kind\": \"epoch\", \"loss\": -1.5,,}\n%s", (int)(nl + 1 - text), text, nl + 1);
        fclose(f);
    }
    free(text);
    CHECK(run_report_write_csv(dir) == -1);
    snprintf(want, sizeof want, "%s/metrics.jsonl: line 3: not valid JSON", dir);
    CHECK_CONTAINS(debcm_last_error(), want);
    CHECK(run_report_plots(dir, NULL, 0) == -1 && strstr(debcm_last_error(), "metrics.jsonl: line 3"));
    CHECK(run_report_markdown(dir) == -1 && strstr(debcm_last_error(), "metrics.jsonl: line 3"));
    expect_cli_error(dir, want, NULL, "a broken metrics.jsonl line");
    CHECK(!test_file_exists(dpath(path, dir, "metrics.csv")));

    /* a line that is JSON but not an object */
    error_dir(dir, "array-line");
    text = test_read_file(dpath(path, dir, "metrics.jsonl"), NULL);
    nl = text ? strchr(text, '\n') : NULL;
    if (nl) {
        FILE *f = fopen(path, "w");
        fprintf(f, "%.*s[1, 2]\n%s", (int)(nl + 1 - text), text, nl + 1);
        fclose(f);
    }
    free(text);
    snprintf(want, sizeof want, "%s/metrics.jsonl: line 2: expected a JSON object, found an array", dir);
    expect_cli_error(dir, want, NULL, "a metrics.jsonl line that is an array");

    /* config.json missing: named, nothing written */
    error_dir(dir, "no-config");
    unlink(dpath(path, dir, "config.json"));
    snprintf(want, sizeof want, "%s/config.json: cannot read: No such file or directory", dir);
    expect_cli_error(dir, want, NULL, "a missing config.json");
    CHECK(!test_file_exists(dpath(path, dir, "metrics.csv")));
    CHECK(run_report_markdown(dir) == -1);
    CHECK_CONTAINS(debcm_last_error(), want);

    /* metrics.jsonl missing */
    error_dir(dir, "no-metrics");
    unlink(dpath(path, dir, "metrics.jsonl"));
    snprintf(want, sizeof want, "%s/metrics.jsonl: cannot read: No such file or directory", dir);
    expect_cli_error(dir, want, NULL, "a missing metrics.jsonl");

    /* config.json and report.json broken: the file and the line */
    error_dir(dir, "bad-config");
    write_text(dpath(path, dir, "config.json"), "{\n  \"format\": \"debcm-config-1\",\n  oops\n}\n");
    snprintf(want, sizeof want, "%s/config.json: line 3", dir);
    expect_cli_error(dir, want, NULL, "a broken config.json");
    error_dir(dir, "bad-report");
    write_text(dpath(path, dir, "report.json"), "{\"test\": {\"recall@10\": 0.5,\n \"ndcg@10\": }}\n");
    snprintf(want, sizeof want, "%s/report.json: line 2", dir);
    expect_cli_error(dir, want, NULL, "a broken report.json");
    error_dir(dir, "report-array");
    write_text(dpath(path, dir, "report.json"), "[1]\n");
    snprintf(want, sizeof want, "%s/report.json: expected a JSON object, found an array", dir);
    expect_cli_error(dir, want, NULL, "a report.json that is not an object");

    /* an unwritable run directory (as root, the command runs as nobody, for whom permissions count) */
    error_dir(dir, "read-only");
    char area[4096] = "", bin[4096], cmd[12288];
    const char *run_as = debcm;
    if (getuid() == 0) { /* nobody runs a copy of the binary on a copy of the run, where nobody can reach them */
        if (cli_nobody_area(area, bin) == 0) {
            snprintf(cmd, sizeof cmd, "cp -r '%s' '%s/read-only' && chmod -R a+rX '%s/read-only'", dir, area, area);
            CHECK(system(cmd) == 0);
            snprintf(dir, 4096, "%s/read-only", area);
            run_as = bin;
        } else {
            CHECK_MSG(0, "no directory for the unwritable-run check");
        }
    }
    CHECK(chmod(dir, 0555) == 0);
    child_as_nobody = getuid() == 0;
    int st = sh("'%s' report '%s'", run_as, dir);
    child_as_nobody = 0;
    char *err = test_read_file(err_txt, NULL);
    if (st == 125) {
        printf("skipped: the unwritable run directory (cannot drop to nobody here)\n");
    } else {
        snprintf(want, sizeof want, "%s/metrics.csv", dir);
        CHECK_MSG(st == 1, "an unwritable run directory: status %d: %s", st, err ? err : "");
        expect_one_line(err, want, "ermission denied", "an unwritable run directory");
        printf("  unwritable: %s", err ? err : "\n");
    }
    free(err);
    CHECK(chmod(dir, 0755) == 0);
    CHECK(test_count_temp_files(dir) == 0);
    if (area[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", area);
        CHECK(system(cmd) == 0);
    }

    /* not a directory, and bad usage */
    cli_wpath(dir, "nothing-here");
    st = sh("'%s' report '%s'", debcm, dir);
    err = test_read_file(err_txt, NULL);
    CHECK(st == 1);
    expect_one_line(err, dir, "No such file or directory", "a missing RUNDIR");
    free(err);
    static const char *const usage[] = {"", "a b", "--bogus x", "''"};
    for (int i = 0; i < 4; i++) {
        st = sh("'%s' report %s", debcm, usage[i]);
        err = test_read_file(err_txt, NULL);
        CHECK_MSG(st == 2, "report %s: status %d", usage[i], st);
        expect_one_line(err, "debcm report: ", "see debcm report --help", usage[i]);
        free(err);
    }
    st = sh("'%s' report --help", debcm);
    char *out = test_read_file(out_txt, NULL);
    CHECK(st == 0 && out && strstr(out, "usage: debcm report RUNDIR"));
    free(out);
    st = sh("'%s' --help", debcm);
    out = test_read_file(out_txt, NULL);
    CHECK(st == 0 && out && strstr(out, "  report "));
    free(out);
}

static void test_machine(void)
{
    json_t *m = run_report_machine();
    CHECK(json_is_object(m));
    char *text = json_dumps(m, JSON_COMPACT);
    printf("  machine: %s\n", text ? text : "(null)");
    free(text);
    const char *cpu = json_string_value(json_object_get(m, "cpu"));
    CHECK(cpu && *cpu);
    CHECK(json_integer_value(json_object_get(m, "logical_cores")) == sysconf(_SC_NPROCESSORS_ONLN));
    CHECK(json_integer_value(json_object_get(m, "memory_bytes")) > 0);
    struct utsname u;
    const char *os = json_string_value(json_object_get(m, "os"));
    CHECK(uname(&u) == 0 && os && strstr(os, u.sysname) && strstr(os, u.release));
    CHECK(json_string_value(json_object_get(m, "compiler")) != NULL);
    json_t *lib = json_object_get(m, "libraries");
    const char *jv = json_string_value(json_object_get(lib, "jansson"));
    CHECK(jv && !strcmp(jv, JANSSON_VERSION));
    const char *blas = json_string_value(json_object_get(lib, "blas"));
    CHECK(blas && strstr(blas, "OpenBLAS"));
    /* the libraries are the ones `debcm version` prints */
    if (sh("'%s' version", debcm) == 0) {
        char *out = test_read_file(out_txt, NULL), want[512];
        snprintf(want, sizeof want, "BLAS      %s (", blas ? blas : "?");
        CHECK_MSG(out && strstr(out, want), "debcm version does not print '%s'", want);
        snprintf(want, sizeof want, "compiler  %s\n", json_string_value(json_object_get(m, "compiler")));
        CHECK_MSG(out && strstr(out, want), "debcm version does not print '%s'", want);
        free(out);
    }
    json_t *gpus = json_object_get(m, "gpus");
#ifdef DEBCM_WITH_CUDA
    CHECK(json_is_array(gpus) || (json_is_string(gpus) && !strcmp(json_string_value(gpus), "none")));
#else
    CHECK(json_is_string(gpus) && !strcmp(json_string_value(gpus), "none"));
    CHECK(!strcmp(json_string_value(json_object_get(m, "cuda")), "not built"));
#endif
    json_decref(m);
}

/* debcm synth, debcm run, debcm report: the report of a real run, its test table the one the run printed. */
static void test_end_to_end(void)
{
    char tiny[4096], run[4096], path[4096];
    cli_wpath(tiny, "tiny");
    cli_wpath(run, "run");
    int st = sh("'%s' synth --scale tiny --out '%s'", debcm, tiny);
    CHECK_MSG(st == 0, "synth: status %d", st);
    st = sh("'%s' run '%s' --epochs 2 --out '%s'", debcm, tiny, run);
    CHECK_MSG(st == 0, "run: status %d: %s", st, test_read_file(err_txt, NULL));
    char *printed = test_read_file(out_txt, NULL);
    st = sh("'%s' report '%s'", debcm, run);
    char *err = test_read_file(err_txt, NULL), *out = test_read_file(out_txt, NULL);
    CHECK_MSG(st == 0, "report: status %d: %s", st, err ? err : "");
    if (out) {
        snprintf(path, sizeof path, "report: %s/report.md", run);
        CHECK_CONTAINS(out, path);
    }
    check_csv(run);
    char *md = test_read_file(dpath(path, run, "report.md"), NULL);
    json_error_t je;
    json_t *report = json_load_file(dpath(path, run, "report.json"), 0, &je);
    CHECK(md && report);
    /* the table `debcm run` printed ("  10     0.5241    0.2063"), row for row in report.md */
    int found = 0;
    for (const char *p = printed; md && p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        int K;
        char r[32], n[32], want[128];
        if (sscanf(p, " %d %31s %31s", &K, r, n) == 3 && (K == 10 || K == 15 || K == 20 || K == 25) &&
            strchr(r, '.') && !strchr(n, '/')) {
            snprintf(want, sizeof want, "| %d | %s | %s |", K, r, n);
            CHECK_MSG(md_line(md, want), "report.md lacks the row '%s' that debcm run printed", want);
            found++;
        }
    }
    CHECK_MSG(found == 4, "found %d of the 4 test rows in debcm run's output", found);
    json_t *config = json_load_file(dpath(path, run, "config.json"), 0, &je);
    json_t *lines = NULL;
    CHECK(report_load_metrics(run, &lines) == 0);
    if (md && report && config && lines) {
        run_spec s = {2, 2, 0, 0, {0, 0}, 0};
        s.best[0] = (int)json_integer_value(json_object_get(json_object_get(report, "teacher"), "best_epoch"));
        s.best[1] = (int)json_integer_value(json_object_get(json_object_get(report, "student"), "best_epoch"));
        check_markdown(run, config, lines, report, &s);
        if (have_gnuplot)
            check_plots(run, lines, &s);
    }
    json_decref(config);
    json_decref(lines);
    json_decref(report);
    free(md);
    free(printed);
    free(err);
    free(out);
}

static int gnuplot_on_path(void)
{
    const char *path = getenv("PATH");
    char buf[8192];
    snprintf(buf, sizeof buf, "%s", path ? path : "");
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[8300];
        snprintf(p, sizeof p, "%s/gnuplot", d);
        if (access(p, X_OK) == 0)
            return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_report DEBCM WORKDIR\n");
        return 2;
    }
    debcm = argv[1];
    work = argv[2];
    fresh_dir(work);
    CHECK(chmod(work, 0755) == 0); /* nobody must reach the read-only case */
    snprintf(out_txt, sizeof out_txt, "%s/out.txt", work);
    snprintf(err_txt, sizeof err_txt, "%s/err.txt", work);
    const char *seed_env = getenv("DEBCM_TEST_SEED");
    uint64_t seed = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    rng ^= seed * 0x9E3779B97F4A7C15ull;
    if (!rng)
        rng = 1;
    printf("seed %" PRIu64 " (DEBCM_TEST_SEED=%" PRIu64 " replays it)\n", seed, seed);
    have_gnuplot = gnuplot_on_path();
    if (!have_gnuplot)
        printf("skipped: the plot checks (gnuplot not found on PATH; apt-get install gnuplot-nox)\n");
    test_format_double();
    test_csv_edges();
    test_machine();
    test_cases();
    test_zero_epochs();
    test_no_gnuplot();
    test_failing_gnuplot();
    test_bad_inputs();
    test_end_to_end();
    return check_done();
}
