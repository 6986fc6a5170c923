/* apps/run_job.c — the training job of `debcm run`, `train-teacher` and `train-student`, new or resumed: the run
 * directory, its config, the data, the two phases of engine/train.c with their checkpoints, the test report.
 *
 * A run directory holds config.json (the whole resolved config, engine/run_config.h), metrics.jsonl (a line per
 * validated epoch, io/metrics_log.h), teacher.safetensors and student.safetensors (the best epochs, written as
 * soon as an epoch improves), resume.safetensors (the whole state, engine/resume.h: after every epoch, every
 * --checkpoint-every steps, on SIGINT/SIGTERM/SIGHUP after the step in flight, before a stop on a non-finite
 * loss) and report.json (run). Every file is replaced atomically. The directory is locked (flock) for the run's
 * life, so two processes never write one run; a new run refuses a directory that holds one (unless --force), and
 * one refused before it trained leaves nothing behind. `--resume RUNDIR` reads the state (or, when the run was
 * killed before its first checkpoint, config.json alone), removes the temporary files a kill -9 left, checks the
 * data against the fingerprint the run started with, cuts metrics.jsonl back to the length the state records and
 * continues: on the CPU backend the losses, metrics and checkpoints are those of the uninterrupted run, bit for
 * bit. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apps/commands.h"
#include "apps/run_common.h"
#include "apps/run_job.h"
#include "apps/run_report.h"
#include "engine/error.h"
#include "engine/resume.h"
#include "engine/train.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/json_file.h"
#include "io/metrics_log.h"
#include "models/checkpoint.h"
#include "models/eval_full.h"

#define CONFIG_FILE "config.json"
#define METRICS_FILE "metrics.jsonl"
#define MAX_CREATED 64

/* the files a run writes: what --force removes, and whose stale temporary files a resume removes; the first
 * N_PRIMARY say that a directory holds a run (the others are made from them, and a metrics.csv of one's own is
 * no run) */
#define N_PRIMARY 6
static const char *const run_files[] = {CONFIG_FILE, METRICS_FILE, RESUME_FILE, "teacher.safetensors",
                                        "student.safetensors", "report.json", "metrics.csv", "report.md",
                                        "plots/teacher_losses.svg", "plots/teacher_losses.png",
                                        "plots/student_losses.svg", "plots/student_losses.png",
                                        "plots/validation.svg", "plots/validation.png"};
#define N_RUN_FILES ((int)(sizeof run_files / sizeof run_files[0]))

typedef struct {
    run_job_args *a;
    run_config cfg;    /* what this process runs with */
    run_config stored; /* the run's own config (config.json, the checkpoints): cfg without the options given to
                          this --resume, which apply to this process only */
    const char *cmd;
    char dir[PATH_MAX];
    char p_config[PATH_MAX], p_metrics[PATH_MAX], p_resume[PATH_MAX], p_teacher[PATH_MAX], p_student[PATH_MAX],
        p_report[PATH_MAX];
    char created[MAX_CREATED][PATH_MAX]; /* directories this run made, outermost first */
    int n_created;
    int lock_fd;
    int fresh;       /* a new run: may be undone while nothing but its config is written */
    int wrote;       /* a checkpoint or a best epoch is on disk */
    char *config_json;
    char fingerprint[DATASET_FINGERPRINT_MAX];
    metrics_log log;
    const debcm_net *teacher; /* the frozen teacher, saved with the student phase's state */
    int teacher_done;
    train_phase_result rt;
    train_resume_point saved; /* the last state written */
    int have_saved;
    int live;                 /* stdout is a terminal: one progress line redrawn in place */
    int live_shown;           /* that line is on the screen now */
    double live_at;           /* when it was last drawn */
} job;

/* ---- the run directory ---------------------------------------------------------------------------------------- */

static int dir_file(char *buf, const char *dir, const char *file)
{
    if ((size_t)snprintf(buf, PATH_MAX, "%s/%s", dir, file) >= PATH_MAX)
        return debcm_fail_path_too_long(dir, PATH_MAX - strlen(file) - 2);
    return atomic_file_check_path(buf);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static void undo_dirs(job *j)
{
    while (j->n_created > 0)
        rmdir(j->created[--j->n_created]);
}

/* mkdir -p dir, recording what was made */
static int make_dirs(job *j, const char *dir)
{
    char buf[PATH_MAX];
    if (strlen(dir) + 32 >= sizeof buf)
        return debcm_fail_path_too_long(dir, sizeof buf - 32);
    strcpy(buf, dir);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            struct stat st;
            if (stat(buf, &st) != 0) {
                if (mkdir(buf, 0777) != 0) {
                    int e = errno;
                    undo_dirs(j);
                    return debcm_fail("--out %s: cannot create directory %s: %s", dir, buf, strerror(e));
                }
                if (j->n_created < MAX_CREATED)
                    strcpy(j->created[j->n_created++], buf);
            } else if (!S_ISDIR(st.st_mode)) {
                undo_dirs(j);
                return debcm_fail("--out %s: %s exists and is not a directory", dir, buf);
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    return 0;
}

/* a file can be created in the directory (a temporary one, removed at once) */
static int probe_writable(const job *j, const char *what)
{
    atomic_file a;
    if (atomic_file_begin(&a, j->p_report))
        return debcm_error_prefix("%s %s: not writable", what, j->dir);
    atomic_file_abort(&a);
    return 0;
}

/* One process per run directory: an exclusive flock on the directory itself, held until the process ends (a
 * kill -9 releases it too). */
static int lock_dir(job *j)
{
    j->lock_fd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->lock_fd < 0)
        return debcm_fail("%s: cannot open the run directory: %s", j->dir, strerror(errno));
    if (flock(j->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return debcm_fail("%s: in use by another debcm process (a run or a resume of it); wait for it to end",
                          j->dir);
    return 0;
}

/* the temporary files (NAME.tmp.<pid>) that a killed process left beside the run's files */
static void remove_stale_temporaries(const job *j)
{
    DIR *d = opendir(j->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        for (int i = 0; i < N_RUN_FILES; i++) {
            size_t n = strlen(run_files[i]);
            const char *rest = e->d_name + n;
            if (strncmp(e->d_name, run_files[i], n) || strncmp(rest, ".tmp.", 5) || !rest[5] ||
                strspn(rest + 5, "0123456789") != strlen(rest + 5))
                continue;
            char p[PATH_MAX];
            if ((size_t)snprintf(p, sizeof p, "%s/%s", j->dir, e->d_name) < sizeof p && unlink(p) == 0)
                fprintf(stderr, "debcm %s: removed %s, a temporary file left by a process that was killed\n", j->cmd,
                        p);
        }
    }
    closedir(d);
}

/* the first of the run's files found in the directory, or NULL */
static const char *run_file_present(const job *j)
{
    char p[PATH_MAX];
    for (int i = 0; i < N_PRIMARY; i++)
        if ((size_t)snprintf(p, sizeof p, "%s/%s", j->dir, run_files[i]) < sizeof p && exists(p))
            return run_files[i];
    return NULL;
}

static int remove_run_files(const job *j)
{
    char p[PATH_MAX];
    for (int i = 0; i < N_RUN_FILES; i++)
        if ((size_t)snprintf(p, sizeof p, "%s/%s", j->dir, run_files[i]) < sizeof p && unlink(p) != 0 &&
            errno != ENOENT)
            return debcm_fail("--force: cannot remove %s: %s", p, strerror(errno));
    if ((size_t)snprintf(p, sizeof p, "%s/plots", j->dir) < sizeof p)
        rmdir(p); /* when nothing else is in it */
    return 0;
}

static int set_paths(job *j)
{
    return dir_file(j->p_config, j->dir, CONFIG_FILE) || dir_file(j->p_metrics, j->dir, METRICS_FILE) ||
                   dir_file(j->p_resume, j->dir, RESUME_FILE) || dir_file(j->p_teacher, j->dir, "teacher.safetensors") ||
                   dir_file(j->p_student, j->dir, "student.safetensors") || dir_file(j->p_report, j->dir, "report.json")
               ? -1
               : 0;
}

/* A new run's directory: named, refused when it holds a run (unless --force), created, probed, locked. */
static int open_new_dir(job *j)
{
    const char *out = j->a->out;
    if (!out && j->a->name) {
        if ((size_t)snprintf(j->dir, sizeof j->dir, "runs/%s", j->a->name) >= sizeof j->dir)
            return debcm_fail_path_too_long(j->a->name, sizeof j->dir - 6);
    } else if (!out) {
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        char name[64];
        strftime(name, sizeof name, "runs/%Y%m%d-%H%M%S", &tmv);
        snprintf(j->dir, sizeof j->dir, "%s", name);
        for (int k = 2; k < 1000 && exists(j->dir); k++) /* a run started in the same second */
            snprintf(j->dir, sizeof j->dir, "%s-%d", name, k);
    } else if ((size_t)snprintf(j->dir, sizeof j->dir, "%s", out) >= sizeof j->dir) {
        return debcm_fail_path_too_long(out, sizeof j->dir - 1);
    }
    if (set_paths(j))
        return -1;
    const char *present = run_file_present(j);
    if (present && !j->a->force)
        return debcm_fail("%s already holds a run (%s): continue it with --resume %s, or replace it with --force",
                          j->dir, present, j->dir);
    if (make_dirs(j, j->dir))
        return -1;
    if (probe_writable(j, "--out") || lock_dir(j) || (j->a->force && remove_run_files(j))) {
        undo_dirs(j);
        return -1;
    }
    remove_stale_temporaries(j);
    j->fresh = 1;
    return 0;
}

/* the absolute form of a path that exists (else the path as given: the loader names it in its error) */
static int write_config(job *j)
{
    free(j->config_json);
    j->config_json = run_config_to_json(&j->stored, 1);
    if (!j->config_json)
        return -1;
    atomic_file f;
    if (atomic_file_begin(&f, j->p_config) || atomic_file_write(&f, j->config_json, strlen(j->config_json)) ||
        atomic_file_commit(&f)) {
        atomic_file_abort(&f);
        return -1;
    }
    return 0;
}

/* ---- resuming ---------------------------------------------------------------------------------------------------- */

/* the config's "command" names the resuming command, or a message saying which command resumes it */
static int check_command(const job *j, const char *text, size_t len, const char *source)
{
    json_t *root = json_loadb(text, len, 0, NULL);
    const char *c = json_string_value(json_object_get(root, "command"));
    int rc = 0;
    if (c && strcmp(c, j->cmd) && (!strcmp(c, "run") || !strcmp(c, "train-teacher") || !strcmp(c, "train-student")))
        rc = debcm_fail("%s: the run was started by debcm %s: continue it with debcm %s --resume %s", source, c, c,
                        j->dir);
    json_decref(root);
    return rc;
}

/* The resumed run's config: the state's (checksummed) when there is one, else config.json; then the options the
 * command line may change, and the data's new place. */
static int open_resume(job *j, resume_file *rf, int *have_state)
{
    run_job_args *a = j->a;
    if ((size_t)snprintf(j->dir, sizeof j->dir, "%s", a->resume) >= sizeof j->dir)
        return debcm_fail_path_too_long(a->resume, sizeof j->dir - 1);
    struct stat st;
    if (stat(j->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return debcm_fail("--resume %s: expected a run directory, found %s", j->dir,
                          errno == ENOENT ? "nothing there" : "something that is not a directory");
    if (set_paths(j) || lock_dir(j))
        return -1;
    remove_stale_temporaries(j);
    run_config cfg;
    run_config_default(&cfg, a->cfg.command);
    *have_state = exists(j->p_resume);
    if (*have_state) {
        if (resume_open(rf, j->p_resume))
            return debcm_error_prefix("--resume %s (the checkpoint is damaged: remove it to start the run again "
                                      "from its config.json)", j->dir);
        const char *cj = rf->info.config_json;
        if (check_command(j, cj, strlen(cj), j->p_resume) || run_config_from_json(&cfg, cj, strlen(cj), j->p_resume))
            return -1;
    } else {
        char *text = NULL;
        size_t len = 0;
        if (!exists(j->p_config))
            return debcm_fail("--resume %s: nothing to resume (no %s and no %s)", j->dir, RESUME_FILE, CONFIG_FILE);
        int rc = run_read_text_file(j->p_config, &text, &len) || check_command(j, text, len, j->p_config) ||
                 run_config_from_json(&cfg, text, len, j->p_config);
        free(text);
        if (rc)
            return -1;
    }
    if (a->root || a->pgc) { /* the data moved (kept in the config): the fingerprint below still has to match */
        char pgc[PATH_MAX], data[PATH_MAX];
        if (run_resolve_dirs(a->root, a->pgc, a->data, pgc, data))
            return -1;
        run_absolute_path(cfg.pgc, pgc);
        run_absolute_path(cfg.data, data);
    }
    j->stored = cfg;
    int i = 0;
    for (const run_option *o = run_options(); o->name; o++, i++)
        if (a->given[i]) /* parse() let only the resumable ones through; for this process only */
            memcpy((char *)&cfg + o->off, (const char *)&a->cfg + o->off, o->kind == RUN_OPT_NUM ? sizeof(double)
                                                                                                 : sizeof(int64_t));
    if (cfg.tf32 && cfg.device != RUN_DEVICE_CUDA)
        cfg.tf32 = 0; /* a resume on the CPU of a run begun with --device cuda --tf32 */
    j->cfg = cfg;
    if (probe_writable(j, "--resume"))
        return -1;
    return 0;
}

/* ---- the trainer's callbacks ------------------------------------------------------------------------------------ */

static int job_save_state(void *ctx, const train_state *st)
{
    job *j = ctx;
    resume_info ri;
    memset(&ri, 0, sizeof ri);
    ri.pos = st->pos;
    ri.teacher_done = j->teacher_done;
    ri.teacher_best_epoch = j->rt.best_epoch;
    ri.teacher_steps = j->rt.steps;
    ri.teacher_val_recall = j->rt.val_recall;
    ri.teacher_seconds = j->rt.seconds;
    ri.metrics_bytes = j->log.bytes;
    ri.config_json = j->config_json;
    ri.data_fingerprint = j->fingerprint;
    if (resume_save(j->p_resume, &ri, st->net, st->best, st->pos.student ? j->teacher : NULL))
        return debcm_error_prefix("saving the state (%s epoch %lld, batch %lld; the previous checkpoint is kept)",
                                  st->pos.student ? "student" : "teacher", (long long)st->pos.next_epoch,
                                  (long long)st->pos.next_batch);
    j->saved = st->pos;
    j->have_saved = 1;
    j->wrote = 1;
    return 0;
}

/* ---- progress: a live line on a terminal, plain lines and metrics windows every --log-every batches -------- */

static const char *const term_keys[8] = {"loss", "match_music", "match_video", "kl_m", "kl_v", "recon",
                                         "distill_m", "distill_v"};

/* the live line off the screen, before any other line is printed */
static void job_before_log(void *ctx)
{
    job *j = ctx;
    if (j->live_shown) {
        fputs("\r\033[K", stdout);
        j->live_shown = 0;
    }
}

static void fmt_eta(char *buf, size_t cap, double s)
{
    if (!(s >= 0) || s > 1e8)
        snprintf(buf, cap, "?");
    else if (s >= 3600)
        snprintf(buf, cap, "%dh%02dm", (int)(s / 3600), (int)(s / 60) % 60);
    else
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

/* "teacher epoch 3/50  batch 40/105  loss … (match …)  2845 samples/s  ETA 4m10s" (the ETA of the phase's
 * training, at this epoch's rate) */
static void progress_text(char *buf, size_t cap, const train_step_record *r, const double m[8], int64_t done_here)
{
    const double rate = r->epoch_seconds > 0 ? (double)r->samples / r->epoch_seconds : 0.0;
    const double per_batch = done_here > 0 ? r->epoch_seconds / (double)done_here : 0.0;
    const double left = (double)(r->batches - r->batch) + (double)(r->epochs - r->epoch) * (double)r->batches;
    char eta[32], dist[64] = "";
    fmt_eta(eta, sizeof eta, done_here > 0 ? per_batch * left : -1.0);
    if (r->student)
        snprintf(dist, sizeof dist, " distill %.3g/%.3g", m[6], m[7]);
    snprintf(buf, cap, "%s epoch %*lld/%lld  batch %lld/%lld  loss %.4f (match %.4f/%.4f kl %.4f/%.4f recon %.4f%s)  "
             "%.0f samples/s  ETA %s", r->student ? "student" : "teacher", r->epochs >= 100 ? 3 : 2, (long long)r->epoch,
             (long long)r->epochs,
             (long long)r->batch, (long long)r->batches, m[0], m[1], m[2], m[3], m[4], m[5], dist, rate, eta);
}

static int job_on_step(void *ctx, const train_step_record *r)
{
    job *j = ctx;
    const int64_t every = j->cfg.log_every;
    const int window_end = r->batch % every == 0;
    double m[8];
    /* this process's batches of the epoch: what its rate and ETA stand on */
    const int64_t done_here = r->samples > 0 ? (r->samples + r->batch_rows - 1) / r->batch_rows : 0;
    if (window_end) {
        const int64_t n = train_terms_mean(r, r->batch - every, r->batch, m);
        json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "kind", "train", "phase",
                              r->student ? "student" : "teacher", "epoch", (json_int_t)r->epoch, "epochs",
                              (json_int_t)r->epochs, "step", (json_int_t)r->step, "batch", (json_int_t)r->batch,
                              "batches", (json_int_t)r->batches);
        if (!o)
            return debcm_fail("%s: could not build a log line", j->p_metrics);
        for (int i = 0; i < (r->student ? 8 : 6); i++)
            json_object_set_new(o, term_keys[i], n > 0 ? json_real(m[i]) : json_null());
        json_object_set_new(o, "window_batches", json_integer((json_int_t)n));
        json_object_set_new(o, "samples_per_s",
                            json_real(r->epoch_seconds > 0 ? (double)r->samples / r->epoch_seconds : 0.0));
        json_object_set_new(o, "lr", json_real(r->cfg->lr));
        json_object_set_new(o, "seconds", json_real(r->epoch_seconds));
        int rc = metrics_log_append(&j->log, o);
        json_decref(o);
        if (rc)
            return -1;
    }
    if (j->cfg.quiet)
        return 0;
    char line[512];
    if (j->live) {
        const double now = train_now();
        if (j->live_shown && now - j->live_at < 0.2 && r->batch < r->batches)
            return 0;
        j->live_at = now;
        train_terms_mean(r, 0, r->batch, m); /* the epoch's running means */
        progress_text(line, sizeof line, r, m, done_here);
        struct winsize ws; /* one line: cut to the terminal's width, or it wraps and each redraw leaves a line */
        if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && strlen(line) >= ws.ws_col)
            line[ws.ws_col - 1] = '\0';
        printf("\r%s\033[K", line);
        fflush(stdout);
        j->live_shown = 1;
    } else if (window_end) {
        train_terms_mean(r, r->batch - every, r->batch, m);
        progress_text(line, sizeof line, r, m, done_here);
        printf("%s\n", line);
        fflush(stdout);
    }
    return 0;
}

static int job_on_epoch(void *ctx, const train_epoch_record *r)
{
    job *j = ctx;
    const train_epoch_stats *s = r->stats;
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:f, s:f, s:f, s:I, "
                          "s:f, s:b}",
                          "kind", "epoch", "phase", r->student ? "student" : "teacher", "epoch", (json_int_t)r->epoch, "epochs",
                          (json_int_t)r->epochs, "step", (json_int_t)r->step, "loss", s->loss, "match_music", s->music,
                          "match_video", s->video, "kl_m", s->kl_m, "kl_v", s->kl_v, "recon", s->recon, "batches",
                          (json_int_t)s->batches, "nonfinite_skipped", (json_int_t)s->nonfinite, "seconds",
                          s->seconds, "samples_per_s", s->seconds > 0 ? (double)s->samples / s->seconds : 0.0,
                          "val_recall@25", r->val_recall, "best_epoch", (json_int_t)r->best_epoch,
                          "best_val_recall@25", r->best_recall, "improved", r->improved);
    if (o)
        json_object_set_new(o, "lr", json_real(r->lr));
    if (!o)
        return debcm_fail("%s: could not build a log line", j->p_metrics);
    if (r->student) {
        json_object_set_new(o, "distill_m", json_real(s->distill_m));
        json_object_set_new(o, "distill_v", json_real(s->distill_v));
        json_object_set_new(o, "val_ndcg@25", json_real(r->val_ndcg));
    }
    int rc = metrics_log_append(&j->log, o);
    json_decref(o);
    if (rc == 0) {
        j->wrote = 1;
        rc = run_report_write_csv(j->dir); /* metrics.csv follows the log epoch by epoch */
    }
    return rc;
}

static int job_stop_requested(void) { return atomic_file_signal_pending(); }

static const char *signal_name(int s)
{
    return s == SIGINT ? "SIGINT" : s == SIGTERM ? "SIGTERM" : s == SIGHUP ? "SIGHUP" : "a signal";
}

/* a phase stopped by a signal: say where its state is, exit 128 + signo */
static int interrupted(job *j, int sig)
{
    atomic_file_take_signal();
    atomic_file_defer_signals(0);
    if (j->have_saved)
        fprintf(stderr, "debcm %s: interrupted by %s: the state at %s epoch %lld, batch %lld (step %lld) is saved in "
                "%s; continue with: debcm %s --resume %s\n", j->cmd, signal_name(sig),
                j->saved.student ? "student" : "teacher", (long long)j->saved.next_epoch,
                (long long)j->saved.next_batch, (long long)j->saved.step, j->p_resume, j->cmd, j->dir);
    else
        fprintf(stderr, "debcm %s: interrupted by %s; continue with: debcm %s --resume %s\n", j->cmd, signal_name(sig),
                j->cmd, j->dir);
    return 128 + sig;
}

/* ---- the report ------------------------------------------------------------------------------------------------ */

typedef struct {
    char buf[8][48];
    checkpoint_meta meta[8];
    int n;
} variant_meta;

static void make_variant_meta(variant_meta *v, const run_config *c)
{
    const char *keys[] = {"matching", "distill", "margin", "k", "temperature", "alpha", "seed"};
    const char *opts[] = {"matching", "distill", "margin", "k", "temperature", "alpha", "seed"};
    v->n = 7;
    for (int i = 0; i < v->n; i++) {
        run_option_value_text(c, run_option_find(opts[i]), v->buf[i], sizeof v->buf[i]);
        v->meta[i] = (checkpoint_meta){keys[i], v->buf[i]};
    }
}

static json_t *variants_json(const run_config *c)
{
    json_t *v = json_pack("{s:s, s:s, s:f, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I}", "matching",
                          run_match_name((match_variant)c->matching), "distill",
                          run_distill_name((distill_variant)c->distill), "margin", c->margin, "k", (json_int_t)c->k,
                          "temperature", c->temperature, "alpha", c->alpha, "seed", (json_int_t)c->seed, "batch_size",
                          (json_int_t)c->batch_size, "teacher_epochs", (json_int_t)c->teacher_epochs,
                          "student_epochs", (json_int_t)c->student_epochs, "lr_teacher", c->lr_teacher, "lr_student",
                          c->lr_student, "weight_decay", c->weight_decay, "dropout", c->dropout, "latent",
                          (json_int_t)c->latent);
    if (v && c->command == RUN_CMD_STUDENT) { /* the teacher was loaded, not trained */
        json_object_del(v, "teacher_epochs");
        json_object_del(v, "lr_teacher");
    }
    return v;
}

/* report.json's "data": where the data were, their fingerprint and sizes */
static json_t *data_json(const job *j, const debcm_dataset *ds)
{
    return json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}}", "pgc", j->cfg.pgc,
                     "data", j->cfg.data, "fingerprint", j->fingerprint, "sizes", "pgc_videos",
                     (json_int_t)ds->pgc_video.rows, "pgc_musics", (json_int_t)ds->pgc_vggish.rows, "pgc_train_pairs",
                     (json_int_t)ds->pgc_train.n, "pgc_val_pairs", (json_int_t)ds->pgc_val.n, "videos",
                     (json_int_t)ds->ugc_video.rows, "musics", (json_int_t)ds->ugc_vggish.rows, "train_rows",
                     (json_int_t)ds->train.n, "val_rows", (json_int_t)ds->val.n, "test_rows", (json_int_t)ds->test.n,
                     "dim_v", (json_int_t)ds->ugc_video.cols, "genres", (json_int_t)ds->train.G);
}

/* ---- the job ------------------------------------------------------------------------------------------------------- */

/* the phase's options: callbacks into this job, the start point when resuming */
static train_phase_opts phase_opts(job *j, const char *ckpt, const variant_meta *vm, const train_resume_point *start,
                                   const debcm_net *start_best)
{
    train_phase_opts p;
    memset(&p, 0, sizeof p);
    p.seed = (uint64_t)j->cfg.seed;
    p.log = j->cfg.quiet ? NULL : stdout;
    p.before_log = job_before_log;
    p.on_step = job_on_step;
    p.ckpt_path = ckpt;
    p.meta = vm->meta;
    p.n_meta = vm->n;
    p.teacher_recompute = j->cfg.teacher_cache == RUN_TEACHER_CACHE_OFF;
    p.nan_skip = j->cfg.nan_policy == RUN_NAN_SKIP_BATCH;
    p.checkpoint_every = j->cfg.checkpoint_every;
    p.start = start;
    p.start_best = start_best;
    p.stop_requested = job_stop_requested;
    p.save_state = job_save_state;
    p.on_epoch = job_on_epoch;
    p.ctx = j;
    return p;
}

static void print_header(const job *j, const debcm_dataset *ds, const model_dims *d, const char *backend,
                         int loaded_teacher)
{
    const run_config *c = &j->cfg;
    char tau[48] = "";
    if (c->matching == MATCH_SOFTMAX)
        snprintf(tau, sizeof tau, ", temperature %g", c->temperature);
    printf("debcm %s: matching %s (margin %g, k %lld%s), distill %s (alpha %g); D_v %lld, D_m %lld, L %lld, G %lld\n",
           j->cmd, run_match_name((match_variant)c->matching), c->margin, (long long)c->k, tau,
           run_distill_name((distill_variant)c->distill), c->alpha, (long long)d->D_v, (long long)d->D_m,
           (long long)d->L, (long long)d->G);
    printf("  teacher: %lld pairs train / %lld val, %lld musics, %lld epochs, lr %g%s\n", (long long)ds->pgc_train.n,
           (long long)ds->pgc_val.n, (long long)ds->pgc_vggish.rows, (long long)c->teacher_epochs, c->lr_teacher,
           loaded_teacher ? " (not trained: loaded)" : "");
    const int student = c->command != RUN_CMD_TEACHER;
    if (student)
        printf("  student: %lld rows train / %lld val / %lld test, %lld musics, %lld epochs, lr %g\n",
               (long long)ds->train.n, (long long)ds->val.n, (long long)ds->test.n, (long long)ds->ugc_vggish.rows,
               (long long)c->student_epochs, c->lr_student);
    printf("  batch %lld, weight decay %g, dropout %g, seed %lld, backend %s%s, out %s\n", (long long)c->batch_size,
           c->weight_decay, c->dropout, (long long)c->seed, backend,
           !student ? "" : c->teacher_cache == RUN_TEACHER_CACHE_OFF ? ", teacher cache off" : ", teacher cache on",
           j->dir);
    if (c->checkpoint_every > 0 || c->nan_policy != RUN_NAN_STOP)
        printf("  checkpoint every %lld steps, non-finite loss: %s\n", (long long)c->checkpoint_every,
               c->nan_policy == RUN_NAN_SKIP_BATCH ? "skip the batch" : "stop");
    fflush(stdout);
}

int run_job_main(run_job_args *a)
{
    job j;
    memset(&j, 0, sizeof j);
    j.a = a;
    j.cmd = run_command_name(a->cfg.command);
    j.lock_fd = -1;
    j.log.fd = -1;
    resume_file rf;
    memset(&rf, 0, sizeof rf);
    int have_state = 0;
    debcm_dataset ds;
    train_data td;
    debcm_net teacher, student, best;
    memset(&ds, 0, sizeof ds);
    memset(&td, 0, sizeof td);
    memset(&teacher, 0, sizeof teacher);
    memset(&student, 0, sizeof student);
    memset(&best, 0, sizeof best);
    int status = DEBCM_EXIT_FAIL;
    double t_start = train_now();
    model_eval_result test;
    run_set_K(&test);
    double t_test = 0;
    model_full_result full; /* the test rows ranked over every music (run and train-student) */
    memset(&full, 0, sizeof full);
    int have_full = 0;
    train_phase_result rs;
    memset(&rs, 0, sizeof rs);

    /* the directory and the config */
    if (a->resume) {
        if (open_resume(&j, &rf, &have_state))
            goto done;
        if (!a->given[run_option_find("threads") - run_options()])
            run_set_threads((int)j.cfg.threads);
    } else {
        j.cfg = a->cfg;
        char pgc[PATH_MAX], data[PATH_MAX];
        if (run_resolve_dirs(a->root, a->pgc, a->data, pgc, data))
            goto done;
        run_absolute_path(j.cfg.pgc, pgc);
        run_absolute_path(j.cfg.data, data);
        if (a->teacher_ckpt)
            run_absolute_path(j.cfg.teacher, a->teacher_ckpt);
        if (open_new_dir(&j))
            goto done;
        j.stored = j.cfg;
    }
    if (write_config(&j))
        goto done;

    const debcm_ops *ops = run_select_backend(j.cfg.device == RUN_DEVICE_CUDA, (int)j.cfg.tf32);
    if (!ops || run_load_data(j.cfg.pgc, j.cfg.data, &ds, stderr, j.cmd) ||
        dataset_fingerprint(&ds, j.fingerprint, sizeof j.fingerprint))
        goto done;
    if (have_state && strcmp(j.fingerprint, rf.info.data_fingerprint)) {
        debcm_fail("--resume %s: the data differ from the data the run started on (then: %s; now: %s)", j.dir,
                   rf.info.data_fingerprint, j.fingerprint);
        goto done;
    }
    model_config tcfg, scfg;
    run_config_models(&j.cfg, &tcfg, &scfg);
    if (train_data_build(&td, &ds, scfg.L))
        goto done;
    const run_command command = j.cfg.command;
    const int do_teacher = command != RUN_CMD_STUDENT, do_student = command != RUN_CMD_TEACHER;
    const int resume_student = have_state && rf.student;
    model_dims dt = train_dims(&td, 0), dsd = train_dims(&td, 1);
    /* both networks before any training, so that sizes the machine cannot hold fail first (--latent) */
    if (net_create(&teacher, ops, &dt, 0) || (do_student && net_create(&student, ops, &dsd, 1)) ||
        (have_state && net_create(&best, ops, resume_student ? &dsd : &dt, resume_student))) {
        debcm_error_prefix("the networks (L %lld, D_v %lld, D_m %lld; --latent sets L)", (long long)dsd.L,
                           (long long)dsd.D_v, (long long)dsd.D_m);
        goto done;
    }
    if (have_state) {
        if ((!do_student && resume_student) || (!do_teacher && !resume_student)) {
            debcm_fail("%s: holds a %s phase, which debcm %s does not train", j.p_resume,
                       resume_student ? "student" : "teacher", j.cmd);
            goto done;
        }
        if (resume_read_nets(&rf, resume_student ? &student : &teacher, &best, resume_student ? &teacher : NULL))
            goto done;
        if (resume_student && rf.info.teacher_done) {
            j.teacher_done = 1;
            j.rt.best_epoch = rf.info.teacher_best_epoch;
            j.rt.steps = rf.info.teacher_steps;
            j.rt.val_recall = rf.info.teacher_val_recall;
            j.rt.seconds = rf.info.teacher_seconds;
        }
    } else if (!do_teacher && checkpoint_load(&teacher, j.cfg.teacher)) {
        goto done;
    }
    if (metrics_log_open(&j.log, j.p_metrics, a->resume ? (have_state ? rf.info.metrics_bytes : 0) : -1))
        goto done;

    variant_meta vm;
    make_variant_meta(&vm, &j.cfg);
    j.live = !j.cfg.quiet && isatty(STDOUT_FILENO);
    if (!j.cfg.quiet)
        print_header(&j, &ds, &dsd, j.cfg.tf32 ? "cuda (TF32 GEMMs)" : ops->name, !do_teacher);
    const int64_t phase_epochs = rf.student ? j.cfg.student_epochs : j.cfg.teacher_epochs;
    if (j.cfg.quiet)
        ; /* nothing */
    else if (have_state && rf.info.pos.next_epoch > phase_epochs && (rf.student || command == RUN_CMD_TEACHER))
        printf("%s: the run was complete (%s, %lld epochs): nothing left to train; its outputs are written again\n",
               j.dir, rf.student ? "student" : "teacher", (long long)phase_epochs);
    else if (have_state)
        printf("resuming %s from %s: %s epoch %lld, batch %lld (step %lld)\n", j.dir, RESUME_FILE,
               rf.student ? "student" : "teacher", (long long)rf.info.pos.next_epoch,
               (long long)rf.info.pos.next_batch, (long long)rf.info.pos.step);
    else if (a->resume)
        printf("resuming %s from its start (it stopped before its first checkpoint)\n", j.dir);
    fflush(stdout);

    if (do_teacher && !resume_student) {
        train_phase_opts to = phase_opts(&j, j.p_teacher, &vm, have_state ? &rf.info.pos : NULL,
                                         have_state ? &best : NULL);
        if (!have_state && net_init(&teacher, (uint64_t)j.cfg.seed))
            goto done;
        atomic_file_defer_signals(1);
        int rc = train_teacher(&teacher, &td, &tcfg, &to, &j.rt);
        if (rc == 0 && j.rt.interrupted) {
            status = interrupted(&j, j.rt.interrupted);
            goto done;
        }
        atomic_file_defer_signals(0);
        if (rc)
            goto done;
        j.teacher_done = 1;
        j.wrote = 1;
        if (!j.cfg.quiet)
            printf("teacher: best epoch %lld, val Recall@25 %.4f, %.1f s -> %s\n", (long long)j.rt.best_epoch,
                   j.rt.val_recall, j.rt.seconds, j.p_teacher);
    }
    if (do_student) {
        j.teacher = &teacher;
        train_phase_opts so = phase_opts(&j, j.p_student, &vm, resume_student ? &rf.info.pos : NULL,
                                         resume_student ? &best : NULL);
        if (!resume_student && net_init(&student, (uint64_t)j.cfg.seed ^ 0x9E3779B97F4A7C15ull))
            goto done;
        atomic_file_defer_signals(1);
        int rc = train_student(&student, &teacher, &td, &scfg, &so, &rs);
        if (rc == 0 && rs.interrupted) {
            status = interrupted(&j, rs.interrupted);
            goto done;
        }
        atomic_file_defer_signals(0);
        if (rc)
            goto done;
        j.wrote = 1;
        if (!j.cfg.quiet)
            printf("student: best epoch %lld, val Recall@25 %.4f NDCG@25 %.4f, %.1f s -> %s\n", (long long)rs.best_epoch,
                   rs.val_recall, rs.val_ndcg, rs.seconds, j.p_student);
        double t0 = train_now();
        model_workspace ws;
        if (model_workspace_create(&ws, ops, &dsd, 1024))
            goto done;
        int erc = model_eval_negatives(&student, &ws, ds.ugc_video.data, ds.ugc_video.rows, td.ugc_music,
                                       ds.ugc_vggish.rows, ds.prior_mean, &ds.test, &test);
        if (erc == 0) { /* beyond the published protocol: every music ranked, and the genres recommended */
            model_full_result_init(&full);
            have_full = 1;
            erc = model_eval_full_student(&student, &ws, ds.ugc_video.data, ds.ugc_video.rows, td.ugc_music,
                                          ds.ugc_vggish.rows, ds.prior_mean, &ds.test, &ds.train, &full);
        }
        model_workspace_free(&ws);
        if (erc)
            goto done;
        t_test = train_now() - t0;
        run_print_table("test", &test);
        if (!j.cfg.quiet)
            printf("test, full ranking over all %lld musics (weighted): Recall@25 %.4f  NDCG@25 %.4f  MRR %.4f\n",
                   (long long)full.musics, full.recall_w[full.nK - 1], full.ndcg_w[full.nK - 1], full.mrr_w);
    }
    if (do_student) { /* run and train-student: the test results */
        /* a resumed run: its phases' seconds come from the checkpoint, the rest (loading, saving) from this process */
        double total = train_now() - t_start;
        const double phases = (command == RUN_CMD_RUN ? j.rt.seconds : 0.0) + rs.seconds + t_test;
        if (a->resume && total < phases)
            total = phases;
        json_t *root = json_pack("{s:{s:I, s:f, s:f}, s:o, s:o, s:{s:f, s:f, s:f}}", "student", "best_epoch",
                                 (json_int_t)rs.best_epoch, "val_recall@25", rs.val_recall, "val_ndcg@25",
                                 rs.val_ndcg, "test", run_metrics_json(&test), "variants", variants_json(&j.stored),
                                 "seconds", "student", rs.seconds, "test", t_test, "total", total);
        if (root && command == RUN_CMD_RUN) {
            json_object_set_new(root, "teacher", json_pack("{s:I, s:f}", "best_epoch", (json_int_t)j.rt.best_epoch,
                                                           "val_recall@25", j.rt.val_recall));
            json_object_set_new(json_object_get(root, "seconds"), "teacher", json_real(j.rt.seconds));
        } else if (root) { /* train-student: the teacher it was given */
            json_object_set_new(root, "teacher", json_pack("{s:s?}", "checkpoint", j.cfg.teacher));
        }
        if (!root) {
            debcm_fail("could not build the report");
            goto done;
        }
        json_t *fj = model_full_result_json(&full);
        if (fj) {
            json_object_update(root, fj);
            json_decref(fj);
        }
        json_object_set_new(root, "machine", run_report_machine());
        json_object_set_new(root, "data", data_json(&j, &ds));
        int wrc = json_file_write(root, j.p_report);
        json_decref(root);
        if (wrc)
            goto done;
    }
    /* metrics.csv, the plots and report.md, from the files above */
    char warning[256] = "";
    if (run_report_write(j.dir, warning, sizeof warning))
        goto done;
    if (warning[0])
        fprintf(stderr, "debcm %s: warning: %s\n", j.cmd, warning);
    if (!j.cfg.quiet)
        printf("report: %s/report.md%s\n", j.dir, do_student ? " (and report.json)" : "");
    status = DEBCM_EXIT_OK;
done:
    atomic_file_defer_signals(0);
    if (status == DEBCM_EXIT_FAIL) {
        cmd_report_error(j.cmd);
        if (j.fresh && !j.wrote) { /* refused before anything but the config was written: leave nothing */
            unlink(j.p_config);
            unlink(j.p_metrics);
            undo_dirs(&j);
        }
    }
    if (have_full)
        model_full_result_free(&full);
    metrics_log_close(&j.log);
    resume_close(&rf);
    free(j.config_json);
    net_free(&best);
    net_free(&student);
    net_free(&teacher);
    train_data_free(&td);
    dataset_free(&ds);
    if (j.lock_fd >= 0)
        close(j.lock_fd);
    return status;
}
