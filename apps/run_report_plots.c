/* apps/run_report_plots.c — RUNDIR/plots/ from RUNDIR/metrics.jsonl, drawn by gnuplot (Debian's gnuplot-nox),
 * each plot as SVG and PNG (terminals svg and pngcairo, 900×540):
 *   teacher_losses, student_losses  one panel per loss term (multiplot): the terms differ by orders of magnitude
 *                                   (distill ≈ −66, kl ≈ 0.75), so a shared axis would flatten all but one; the
 *                                   epoch lines as points joined by a line, the logging windows ("kind": "train")
 *                                   as a thin line at their fractional epoch, epoch − 1 + batch / batches; one
 *                                   key for all panels, outside them (top right, beside the title);
 *   validation                      val Recall@25 per epoch of the teacher (full ranking), val Recall@25 and
 *                                   NDCG@25 of the student (100 negatives), each phase a panel, the best epoch
 *                                   circled; the y axis from 0 to at most 1.05, each key below its panel.
 * The epoch axis has tics every 1, 2, 5, 10, … epochs, as many as a panel of that width holds.
 * gnuplot is looked up on PATH when this runs, not at build time; without it nothing is drawn and a warning is
 * handed back for the caller to print. The data travel inside the script (gnuplot datablocks), written to a
 * temporary directory; gnuplot writes each image to the temporary name of an atomic write (io/atomic_file.h),
 * which is renamed over the plot only when gnuplot succeeded: a plot is never seen half drawn. A plot whose data
 * are absent (a train-student run has no teacher lines) is not drawn and an old one of that name is removed. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "apps/run_report.h"
#include "apps/run_report_files.h"
#include "engine/error.h"
#include "io/atomic_file.h"

extern char **environ;

#define PLOT_SIZE "900,540"

/* The loss terms of a log line, in the order of the panels, and what each panel's title says. */
static const char *const loss_terms[][2] = {
    {"loss", "whole loss"},
    {"match_music", "matching, music rows"},
    {"match_video", "matching, video rows"},
    {"kl_m", "KL, music encoder"},
    {"kl_v", "KL, video encoder"},
    {"recon", "cross reconstruction (MSE)"},
    {"distill_m", "distillation KLG, music"},
    {"distill_v", "distillation KLG, video"},
};
#define N_TERMS ((int)(sizeof loss_terms / sizeof loss_terms[0]))

/* ---- the data ---------------------------------------------------------------------------------------------------- */

/* Whether any of lines has a number under key. */
static int has_key(const json_t *lines, const char *key)
{
    size_t i;
    json_t *line;
    double x;
    json_array_foreach(lines, i, line) if (report_get_number(line, key, &x)) return 1;
    return 0;
}

typedef struct {
    json_t *epochs;  /* this phase's epoch lines (references into the log) */
    json_t *windows; /* its logging-window lines */
    int terms[N_TERMS];
    int n_terms;
} phase_lines;

static int phase_collect(phase_lines *p, const json_t *lines, const char *phase)
{
    memset(p, 0, sizeof *p);
    p->epochs = json_array();
    p->windows = json_array();
    if (!p->epochs || !p->windows)
        return debcm_fail("out of memory");
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line) {
        const char *kind = report_line_kind(line), *ph = report_get_string(line, "phase");
        double e;
        if (!ph || strcmp(ph, phase) || !report_get_number(line, "epoch", &e))
            continue;
        if (!strcmp(kind, "epoch") && json_array_append(p->epochs, line))
            return debcm_fail("out of memory");
        if (!strcmp(kind, "train") && json_array_append(p->windows, line))
            return debcm_fail("out of memory");
    }
    for (int t = 0; t < N_TERMS; t++)
        if (has_key(p->epochs, loss_terms[t][0]) || has_key(p->windows, loss_terms[t][0]))
            p->terms[p->n_terms++] = t;
    return 0;
}

static void phase_free(phase_lines *p)
{
    json_decref(p->epochs);
    json_decref(p->windows);
}

/* Where a logging window sits on the epoch axis: the epoch's start plus the share of its batches done. */
static int window_x(const json_t *line, double *x)
{
    double e, b, n;
    if (!report_get_number(line, "epoch", &e))
        return 0;
    *x = e;
    if (report_get_number(line, "batch", &b) && report_get_number(line, "batches", &n) && n > 0)
        *x = e - 1 + b / n;
    return 1;
}

static void put_value(FILE *f, const json_t *line, const char *key)
{
    double v;
    char num[64];
    if (report_get_number(line, key, &v) && isfinite(v)) {
        report_format_double(num, sizeof num, v);
        fprintf(f, " %s", num);
    } else {
        fputs(" ?", f); /* set datafile missing '?' */
    }
}

/* A datablock "$name << EOD": one row per line, x then the columns; *lo, *hi widened to the x values seen. */
static void put_block(FILE *f, const char *name, const json_t *lines, int windows, const char *const *cols,
                      int n_cols, double *lo, double *hi)
{
    fprintf(f, "$%s << EOD\n", name);
    size_t i;
    json_t *line;
    json_array_foreach(lines, i, line) {
        double x;
        if (windows ? !window_x(line, &x) : !report_get_number(line, "epoch", &x))
            continue;
        char num[64];
        report_format_double(num, sizeof num, x);
        fputs(num, f);
        for (int c = 0; c < n_cols; c++)
            put_value(f, line, cols[c]);
        fputc('\n', f);
        *lo = fmin(*lo, x);
        *hi = fmax(*hi, x);
    }
    fputs("EOD\n", f);
}

/* gnuplot's single-quoted string: no escapes, a quote doubled. */
static void put_string(FILE *f, const char *s)
{
    fputc('\'', f);
    for (; *s; s++) {
        if (*s == '\'')
            fputc('\'', f);
        fputc(*s, f);
    }
    fputc('\'', f);
}

/* The epoch axis: [lo, hi] with room for the markers at the ends, tics every 1, 2, 5, 10, 20, 50, … epochs, the
 * smallest step that gives at most max_tics intervals (a narrow panel of many epochs: labels that do not touch). */
static void put_xrange(FILE *f, double lo, double hi, int max_tics)
{
    if (!(lo <= hi))
        return;
    double step = 1, span = hi - lo;
    for (int i = 0; step * max_tics < span && i < 64; i++)
        step *= i % 3 == 1 ? 2.5 : 2;
    double pad = span < 1 ? 0.5 : 0.02 * span; /* room for the markers at the ends (one epoch: more) */
    fprintf(f, "set xrange [%.17g:%.17g]\nset xtics %.17g\n", lo - pad, hi + pad, step);
}

/* How many tic intervals a panel's epoch axis holds legibly, for a figure of cols panels side by side. */
static int max_tics_for(int cols)
{
    return cols <= 1 ? 12 : cols == 2 ? 8 : cols == 3 ? 6 : 5;
}

static void grid_layout(int n, int *rows, int *cols)
{
    *rows = n <= 3 ? 1 : n <= 8 ? 2 : n <= 12 ? 3 : 4;
    *cols = (n + *rows - 1) / *rows;
}

/* ---- the plots' scripts: data, then the body that draws them (run once per terminal) ----------------------------- */

static void losses_script(FILE *data, FILE *body, const phase_lines *p, const char *phase)
{
    const char *cols[N_TERMS];
    for (int t = 0; t < p->n_terms; t++)
        cols[t] = loss_terms[p->terms[t]][0];
    double lo = INFINITY, hi = -INFINITY;
    int has_e = json_array_size(p->epochs) > 0, has_w = json_array_size(p->windows) > 0;
    if (has_e)
        put_block(data, "E", p->epochs, 0, cols, p->n_terms, &lo, &hi);
    if (has_w)
        put_block(data, "W", p->windows, 1, cols, p->n_terms, &lo, &hi);
    if (has_w)
        lo = fmin(lo, floor(lo)); /* the first window lies inside epoch 1: start the axis at 0 */
    int rows, ncols;
    grid_layout(p->n_terms, &rows, &ncols);
    fprintf(body, "set multiplot layout %d,%d title '%s: loss terms by epoch%s'\n", rows, ncols, phase,
            has_w ? " (thick: epoch means, thin: logging windows)" : "");
    put_xrange(body, lo, hi, max_tics_for(ncols));
    /* one key for all the panels, outside them: in the band of the figure's title, at its right end (the
     * title is centred and shorter than the half of the width), drawn by the first panel; only when there are two
     * kinds of curve to tell apart */
    fputs("set xlabel 'epoch'\nset grid lc rgb '#dddddd'\nset format y '%g'\n"
          "set offsets 0, 0, graph 0.05, graph 0.05\n", /* no point on the frame */
          body);
    fputs(has_w && has_e ? "set key at screen 0.995, 0.995 right top horizontal noautotitle samplen 3 spacing 1\n"
                         : "unset key\n",
          body);
    for (int t = 0; t < p->n_terms; t++) {
        /* a curve only where the term has values: gnuplot refuses a curve without a single point */
        int in_w = has_key(p->windows, cols[t]), in_e = has_key(p->epochs, cols[t]);
        fputs("set title ", body);
        put_string(body, loss_terms[p->terms[t]][1]);
        fputs("\nset ylabel ", body);
        put_string(body, cols[t]);
        fputs("\nplot ", body);
        if (in_w)
            fprintf(body, "$W using 1:%d with lines lw 1 lc rgb '#6baed6' title 'window'%s", t + 2, in_e ? ", " : "");
        if (in_e)
            fprintf(body, "$E using 1:%d with linespoints lw 2 pt 7 ps 0.6 lc rgb '#08306b' title 'epoch'", t + 2);
        fputs("\nunset key\n", body); /* the legend once, by the first panel */
    }
    fputs("unset multiplot\n", body);
}

/* The best epoch of a phase: the last epoch line's best_epoch; 0 when none says. */
static double best_epoch(const json_t *epochs)
{
    double b = 0;
    size_t n = json_array_size(epochs);
    if (n)
        report_get_number(json_array_get(epochs, n - 1), "best_epoch", &b);
    return b;
}

/* The epoch line of epoch e, or NULL. */
static const json_t *line_of_epoch(const json_t *epochs, double e)
{
    size_t i;
    json_t *line, *found = NULL;
    json_array_foreach(epochs, i, line) {
        double x;
        if (report_get_number(line, "epoch", &x) && x == e)
            found = line; /* the last such line */
    }
    return found;
}

/* One panel of the validation plot: the phase's val metrics among recall@25, ndcg@25. */
static void validation_panel(FILE *data, FILE *body, const json_t *epochs, const char *block, const char *title,
                             int panels)
{
    static const char *const keys[] = {"val_recall@25", "val_ndcg@25"};
    static const char *const names[] = {"val Recall@25", "val NDCG@25"};
    static const char *const colours[] = {"#08519c", "#d94801"};
    double lo = INFINITY, hi = -INFINITY;
    put_block(data, block, epochs, 0, keys, 2, &lo, &hi);
    double best = best_epoch(epochs), r;
    const json_t *bl = best > 0 ? line_of_epoch(epochs, best) : NULL;
    int mark = bl && report_get_number(bl, keys[0], &r) && isfinite(r);
    if (mark) {
        char bx[64], by[64];
        report_format_double(bx, sizeof bx, best);
        report_format_double(by, sizeof by, r);
        fprintf(data, "$%sbest << EOD\n%s %s\nEOD\n", block, bx, by);
    }
    fputs("set title ", body);
    put_string(body, title);
    fputc('\n', body);
    put_xrange(body, lo, hi, max_tics_for(panels));
    /* the metrics lie in [0, 1]: the axis from 0, autoscaled above but never past 1.05 (gnuplot would round 1 up
     * to the next tic, 1.2); the key below the panel, clear of the curves: in a bottom margin made room for, at
     * the figure's bottom edge (gnuplot's own `set key below` lands on the x label in a multiplot) */
    fputs("set xlabel 'epoch'\nset ylabel 'metric'\nset yrange [0:*<1.05]\nset offsets 0, 0, graph 0.06, 0\n"
          "set grid lc rgb '#dddddd'\nset bmargin 6\n"
          "set key at graph 0.5, screen 0.01 center bottom horizontal samplen 2 width -1\nplot ",
          body);
    int first = 1;
    for (int k = 0; k < 2; k++) {
        if (!has_key(epochs, keys[k]))
            continue;
        fprintf(body, "%s$%s using 1:%d with linespoints lw 2 pt 7 ps 0.6 lc rgb '%s' title '%s'", first ? "" : ", ",
                block, k + 2, colours[k], names[k]);
        first = 0;
    }
    if (mark)
        fprintf(body, ", $%sbest using 1:2 with points pt 6 ps 2.5 lw 2 lc rgb '#238b45' title 'best epoch %.0f'",
                block, best);
    fputc('\n', body);
}

/* ---- running gnuplot --------------------------------------------------------------------------------------------- */

/* The last non-empty line of a file, for an error message (a copy in out). */
static void last_line(const char *path, char *out, size_t cap)
{
    out[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (!fp)
        return;
    char line[1024];
    while (fgets(line, sizeof line, fp)) {
        size_t n = strcspn(line, "\r\n");
        if (n == 0)
            continue;
        if (n > cap - 1)
            n = cap - 1;
        memcpy(out, line, n);
        out[n] = '\0';
    }
    fclose(fp);
}

static int write_script(const char *path, const char *data, const char *body, const atomic_file *svg,
                        const atomic_file *png)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return debcm_fail("%s: cannot create the gnuplot script: %s", path, strerror(errno));
    fputs("set datafile missing '?'\n", f);
    fputs(data, f);
    fputs("set terminal svg size " PLOT_SIZE " font 'Sans,10' noenhanced background rgb 'white'\nset output ", f);
    put_string(f, svg->tmp);
    fprintf(f, "\n%sunset output\n", body);
    fputs("set terminal pngcairo size " PLOT_SIZE " font 'Sans,9' noenhanced background rgb 'white'\nset output ", f);
    put_string(f, png->tmp);
    fprintf(f, "\n%sunset output\n", body);
    if (ferror(f) | fclose(f))
        return debcm_fail("%s: writing the gnuplot script: %s", path, strerror(errno));
    return 0;
}

/* Run "gnuplot script" with stdin from /dev/null and its output into log; 0 when it exited 0. */
static int run_gnuplot(const char *gnuplot, const char *script, const char *log, const char *what)
{
    posix_spawn_file_actions_t fa;
    if (posix_spawn_file_actions_init(&fa))
        return debcm_fail("%s: cannot start gnuplot: out of memory", what);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    char *argv[] = {(char *)"gnuplot", (char *)script, NULL};
    pid_t pid;
    int e = posix_spawn(&pid, gnuplot, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (e)
        return debcm_fail("%s: cannot run %s: %s", what, gnuplot, strerror(e));
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return debcm_fail("%s: waiting for gnuplot: %s", what, strerror(errno));
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    char said[512];
    last_line(log, said, sizeof said);
    if (WIFSIGNALED(st))
        return debcm_fail("%s: gnuplot was killed by signal %d%s%s", what, WTERMSIG(st), said[0] ? ": " : "", said);
    return debcm_fail("%s: gnuplot failed (exit %d)%s%s", what, WEXITSTATUS(st), said[0] ? ": " : "", said);
}

/* Whether the temporary file of an atomic write has bytes in it (gnuplot wrote through its own descriptor). */
static int atomic_nonempty(const atomic_file *a)
{
    struct stat st;
    return fstat(a->fd, &st) == 0 && st.st_size > 0;
}

/* Draw plots/NAME.svg and plots/NAME.png with one gnuplot run of data + body. */
static int make_plot(const char *gnuplot, const char *plots, const char *name, const char *data, const char *body)
{
    char svg_path[PATH_MAX], png_path[PATH_MAX], file[64];
    snprintf(file, sizeof file, "%s.svg", name);
    if (report_path(svg_path, plots, file))
        return -1;
    snprintf(file, sizeof file, "%s.png", name);
    if (report_path(png_path, plots, file))
        return -1;
    const char *tmpdir = getenv("TMPDIR");
    char dir[PATH_MAX - 32], script[PATH_MAX], log[PATH_MAX]; /* room for the two names below */
    if (!tmpdir || !*tmpdir || snprintf(dir, sizeof dir, "%s/debcm-plot-XXXXXX", tmpdir) >= (int)sizeof dir)
        snprintf(dir, sizeof dir, "/tmp/debcm-plot-XXXXXX");
    if (!mkdtemp(dir))
        return debcm_fail("%s: cannot create a temporary directory for gnuplot: %s", dir, strerror(errno));
    snprintf(script, sizeof script, "%s/plot.gp", dir);
    snprintf(log, sizeof log, "%s/gnuplot.log", dir);
    atomic_file svg, png;
    int rc = -1;
    if (atomic_file_begin(&svg, svg_path))
        goto out;
    if (atomic_file_begin(&png, png_path)) {
        atomic_file_abort(&svg);
        goto out;
    }
    if (write_script(script, data, body, &svg, &png) == 0 && run_gnuplot(gnuplot, script, log, svg_path) == 0) {
        if (!atomic_nonempty(&svg) || !atomic_nonempty(&png))
            debcm_fail("%s: gnuplot exited 0 but wrote nothing", svg_path);
        else if (atomic_file_commit(&svg) == 0)
            rc = atomic_file_commit(&png);
    }
    atomic_file_abort(&svg); /* no-ops once committed */
    atomic_file_abort(&png);
out:
    unlink(script);
    unlink(log);
    rmdir(dir);
    return rc;
}

/* Remove plots/NAME.{svg,png} (a plot whose data are gone). */
static void remove_plot(const char *plots, const char *name)
{
    char path[PATH_MAX];
    const char *ext[] = {"svg", "png"};
    for (int i = 0; i < 2; i++)
        if (snprintf(path, sizeof path, "%s/%s.%s", plots, name, ext[i]) < (int)sizeof path)
            (void)unlink(path);
}

/* Build data and body with fill(), then draw them; an empty body: remove the plot instead. */
typedef struct {
    FILE *data, *body;
    char *data_text, *body_text;
    size_t data_len, body_len;
} script_parts;

static int parts_open(script_parts *s)
{
    memset(s, 0, sizeof *s);
    s->data = open_memstream(&s->data_text, &s->data_len);
    s->body = open_memstream(&s->body_text, &s->body_len);
    return s->data && s->body ? 0 : debcm_fail("out of memory");
}

static int parts_close(script_parts *s)
{
    int bad = 0;
    if (s->data)
        bad |= ferror(s->data) | fclose(s->data);
    if (s->body)
        bad |= ferror(s->body) | fclose(s->body);
    s->data = s->body = NULL;
    return bad ? debcm_fail("out of memory") : 0;
}

static void parts_free(script_parts *s)
{
    parts_close(s);
    free(s->data_text);
    free(s->body_text);
}

static int draw(const char *gnuplot, const char *plots, const char *name, script_parts *s)
{
    int rc = parts_close(s);
    if (rc == 0 && s->body_len == 0)
        remove_plot(plots, name);
    else if (rc == 0)
        rc = make_plot(gnuplot, plots, name, s->data_text, s->body_text);
    parts_free(s);
    return rc;
}

int run_report_plots(const char *rundir, char *warning, size_t cap)
{
    if (warning && cap)
        warning[0] = '\0';
    char plots[PATH_MAX], gnuplot[PATH_MAX];
    if (report_path(plots, rundir, "plots"))
        return -1;
    json_t *lines;
    if (report_load_metrics(rundir, &lines))
        return -1;
    phase_lines ph[2];
    static const char *const phases[] = {"teacher", "student"};
    int rc = -1, collected = 0;
    for (; collected < 2; collected++)
        if (phase_collect(&ph[collected], lines, phases[collected])) {
            phase_free(&ph[collected]);
            goto done;
        }
    if (!report_find_gnuplot(gnuplot)) {
        if (warning && cap)
            snprintf(warning, cap, "plots skipped: gnuplot not found (apt-get install gnuplot-nox)");
        rc = 0;
        goto done;
    }
    if (mkdir(plots, 0777) != 0 && errno != EEXIST) {
        debcm_fail("%s: cannot create the directory: %s", plots, strerror(errno));
        goto done;
    }
    struct stat st;
    if (stat(plots, &st) != 0 || !S_ISDIR(st.st_mode)) {
        debcm_fail("%s: exists and is not a directory", plots);
        goto done;
    }
    script_parts s;
    for (int p = 0; p < 2; p++) {
        char name[32];
        snprintf(name, sizeof name, "%s_losses", phases[p]);
        if (parts_open(&s)) {
            parts_free(&s);
            goto done;
        }
        if (ph[p].n_terms)
            losses_script(s.data, s.body, &ph[p], phases[p]);
        if (draw(gnuplot, plots, name, &s))
            goto done;
    }
    if (parts_open(&s)) {
        parts_free(&s);
        goto done;
    }
    int panels = has_key(ph[0].epochs, "val_recall@25") + (has_key(ph[1].epochs, "val_recall@25") ||
                                                           has_key(ph[1].epochs, "val_ndcg@25"));
    if (panels) {
        fprintf(s.body, "set multiplot layout 1,%d title 'validation by epoch'\n", panels);
        if (has_key(ph[0].epochs, "val_recall@25"))
            validation_panel(s.data, s.body, ph[0].epochs, "T", "teacher: full ranking, PGC val pairs", panels);
        if (has_key(ph[1].epochs, "val_recall@25") || has_key(ph[1].epochs, "val_ndcg@25"))
            validation_panel(s.data, s.body, ph[1].epochs, "S", "student: 100 negatives, weighted, UGC val",
                             panels);
        fputs("unset multiplot\n", s.body);
    }
    rc = draw(gnuplot, plots, "validation", &s);
done:
    for (int p = 0; p < collected; p++)
        phase_free(&ph[p]);
    json_decref(lines);
    return rc;
}
