/* tests/test_resume.c — runs that survive (engine/resume.c, engine/run_config.c, apps/run_job.c, the trainer's
 * fault handling), library checks first, then the debcm binary on `synth --scale tiny` data in WORKDIR.
 *
 * Library: the config's JSON round trip (every option, paths that are not UTF-8) and its refusals; a resume
 * checkpoint round trip (parameters, Adam moments and t, statistics, best copy, teacher, position, the epoch's
 * loss terms); every single-byte flip of a checkpoint and every truncation refused, naming the file; a model
 * checkpoint's checksum checked; a resume checkpoint refused as a model.
 * Command line: an uninterrupted reference run, then the same run killed with SIGKILL at random moments (the
 * seed is printed; resumes are killed too) and resumed until done (every other round on one thread instead of
 * OpenMP's count): metrics.jsonl (but its timings), report.json
 * (but its seconds) and both best checkpoints must equal the reference's byte for byte; SIGTERM, SIGINT and
 * SIGHUP stop with 143/130/129 and a line naming the state, and the resume equals the reference; a non-finite
 * loss stops with the step and the term named and the state saved, `--resume --nan-policy skip-batch` goes past
 * it, exactly as a run with skip-batch from the start; a truncated and a flipped resume checkpoint are refused
 * with one line; a file-size limit (RLIMIT_FSIZE: a full disk without privileges) makes a checkpoint write fail
 * with the previous one intact, and the run resumes from it; the refusals (a directory holding a run, options
 * --resume cannot change, a locked directory, other data, another command); a complete run resumed (nothing
 * trained, the same outputs); train-teacher and train-student
 * resumed; and bad data through `run` (a NaN feature, an id out of range, an empty split: one line, nothing
 * left behind; a prior mean that does not sum to 1, duplicate negatives, a positive among its negatives:
 * warnings with their counts). Usage: test_resume DEBCM WORKDIR. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "dataset_edit.h"
#include "engine/error.h"
#include "engine/resume.h"
#include "engine/run_config.h"
#include "models/checkpoint.h"
#include "test_cli.h"
#include "test_files.h"

/* ---- helpers ----------------------------------------------------------------------------------------------------- */

static char *slurp(const char *path) { return test_read_file(path, NULL); }

static int spit(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    int rc = fwrite(data, 1, n, f) == n ? 0 : -1;
    return fclose(f) || rc ? -1 : 0;
}

/* child-side limits for spawn */
static rlim_t child_fsize_limit; /* 0: none */
static int child_as_nobody;      /* 1: the child drops to uid/gid 65534 (when the test runs as root) */

/* Start "DEBCM args..." (args split on spaces; no quoting needed in this test) with stdout and stderr to
 * out_txt / err_txt, SIGINT at its default (a background job's may be ignored). */
static pid_t spawn(const char *fmt, ...) DEBCM_PRINTF(1, 2);
static pid_t spawn(const char *fmt, ...)
{
    char args[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)debcm;
    for (char *t = strtok(args, " "); t && argc < 63; t = strtok(NULL, " "))
        argv[argc++] = t;
    argv[argc] = NULL;
    fflush(NULL);
    pid_t p = fork();
    if (p == 0) {
        int o = open(out_txt, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(err_txt, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        signal(SIGINT, SIG_DFL);
        if (child_fsize_limit) {
            struct rlimit rl = {child_fsize_limit, child_fsize_limit};
            signal(SIGXFSZ, SIG_IGN); /* a write past the limit then fails with EFBIG instead of killing */
            setrlimit(RLIMIT_FSIZE, &rl);
        }
        if (child_as_nobody && (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0))
            _exit(125);
        execv(debcm, argv);
        _exit(127);
    }
    return p;
}

/* the shell's convention: the exit code, or 128 + the signal that killed it */
static int wait_for(pid_t p)
{
    int st;
    while (waitpid(p, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

#define SH(...) wait_for(spawn(__VA_ARGS__))

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* wait (up to 60 s) until path exists; 0 when it does */
static int wait_file(const char *path, pid_t child)
{
    for (int i = 0; i < 60000; i++) {
        if (cli_exists(path))
            return 0;
        if (waitpid(child, NULL, WNOHANG) == child)
            return -1;
        sleep_s(0.001);
    }
    return -1;
}

static uint64_t lcg_state;
static double uniform01(void)
{
    lcg_state = lcg_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg_state >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- comparing two runs ------------------------------------------------------------------------------------------ */

/* metrics.jsonl as an array, the timings removed */
static json_t *load_metrics(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    char *text = slurp(p);
    json_t *arr = json_array();
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        json_error_t e;
        json_t *o = json_loads(line, 0, &e);
        CHECK_MSG(o && json_is_object(o), "%s: a line that is not a JSON object: %.80s", p, line);
        if (!o)
            continue;
        json_object_del(o, "seconds");
        json_object_del(o, "samples_per_s");
        json_array_append_new(arr, o);
    }
    free(text);
    return arr;
}

static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = test_read_file(a, &na), *y = test_read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* dir's losses, metrics, report and best checkpoints against ref's; report: whether a report.json is expected */
static int same_run(const char *ref, const char *dir, int report, const char *what)
{
    int ok = 1;
    json_t *a = load_metrics(ref), *b = load_metrics(dir);
    if (!json_equal(a, b)) {
        ok = 0;
        size_t n = json_array_size(a) > json_array_size(b) ? json_array_size(a) : json_array_size(b);
        for (size_t i = 0; i < n; i++) {
            json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
            if (!x || !y || !json_equal(x, y)) {
                char *sx = x ? json_dumps(x, JSON_COMPACT) : NULL, *sy = y ? json_dumps(y, JSON_COMPACT) : NULL;
                fprintf(stderr, "%s: metrics line %zu differs:\n  ref %s\n  got %s\n", what, i + 1, sx ? sx : "-",
                        sy ? sy : "-");
                free(sx);
                free(sy);
                break;
            }
        }
    }
    CHECK_MSG(json_array_size(a) > 0, "%s: the reference has no metrics", what);
    json_decref(a);
    json_decref(b);
    char pa[4096], pb[4096];
    const char *files[] = {"teacher.safetensors", "student.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(pa, sizeof pa, "%s/%s", ref, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", dir, files[i]);
        if (cli_exists(pa) && !same_file(pa, pb)) {
            fprintf(stderr, "%s: %s differs from the reference's\n", what, files[i]);
            ok = 0;
        }
    }
    if (report) {
        snprintf(pa, sizeof pa, "%s/report.json", ref);
        snprintf(pb, sizeof pb, "%s/report.json", dir);
        json_t *ra = json_load_file(pa, 0, NULL), *rb = json_load_file(pb, 0, NULL);
        for (int k = 0; k < 2; k++) { /* the timings and the machine (its OpenMP thread count) aside */
            json_t *r = k ? rb : ra;
            if (r) {
                json_object_del(r, "seconds");
                json_object_del(r, "machine");
            }
        }
        if (!ra || !rb || !json_equal(ra, rb)) {
            fprintf(stderr, "%s: report.json differs from the reference's (or is missing)\n", what);
            ok = 0;
        }
        json_decref(ra);
        json_decref(rb);
    }
    CHECK_MSG(ok, "%s: not the reference run", what);
    return ok;
}

/* ---- library: the config ------------------------------------------------------------------------------------------ */

static int configs_equal(const run_config *a, const run_config *b)
{
    for (const run_option *o = run_options(); o->name; o++)
        if (!run_option_equal(a, b, o))
            return 0;
    return a->command == b->command && !strcmp(a->pgc, b->pgc) && !strcmp(a->data, b->data) &&
           !strcmp(a->teacher, b->teacher);
}

static void expect_config_error(run_command cmd, const char *json, const char *frag)
{
    run_config c;
    run_config_default(&c, cmd);
    int rc = run_config_from_json(&c, json, strlen(json), "cfg.json");
    CHECK_MSG(rc != 0, "config %s was accepted", json);
    if (rc) {
        CHECK_CONTAINS(debcm_last_error(), "cfg.json");
        CHECK_CONTAINS(debcm_last_error(), frag);
        CHECK(!strchr(debcm_last_error(), '\n'));
    }
}

static void test_config(void)
{
    /* the defaults round-trip, and so does a config with every option changed and odd paths */
    for (int cmd = 0; cmd < 3; cmd++) {
        run_config a, b;
        run_config_default(&a, (run_command)cmd);
        if (cmd == RUN_CMD_STUDENT) {
            snprintf(a.teacher, sizeof a.teacher, "/t/\"q\"\\x.safetensors");
        }
        snprintf(a.pgc, sizeof a.pgc, "/data/ü/\xff\xfe pgc");
        snprintf(a.data, sizeof a.data, "/data/matching\n");
        const char *texts[][2] = {{"teacher-epochs", "7"}, {"student-epochs", "9"}, {"batch-size", "33"},
                                  {"seed", "9223372036854775807"}, {"threads", "3"}, {"device", "cuda"},
                                  {"tf32", ""}, {"lr-teacher", "0.000123456789012345"}, {"lr-student", "3e-3"},
                                  {"weight-decay", "0"}, {"latent", "17"}, {"dropout", "0.3"}, {"margin", "-0.1"},
                                  {"k", "5"}, {"alpha", "1e-7"}, {"matching", "softmax"}, {"temperature", "0.07"},
                                  {"distill", "kl"}, {"teacher-cache", "off"}, {"checkpoint-every", "11"},
                                  {"nan-policy", "skip-batch"}, {"log-every", "7"}, {"quiet", ""}};
        /* every option of the table is changed above ("epochs" is the two phase keys) */
        for (const run_option *o = run_options(); o->name; o++) {
            int listed = o->off2 != RUN_OPT_NO_OFF;
            for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
                listed |= !strcmp(texts[i][0], o->name);
            CHECK_MSG(listed, "option --%s is not in the round-trip test", o->name);
        }
        int phases = run_command_phases((run_command)cmd);
        for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
            const run_option *o = run_option_find(texts[i][0]);
            CHECK(o != NULL);
            if (o && (o->phases & phases))
                CHECK_MSG(run_option_set_text(&a, o, texts[i][1]) == 0, "%s: %s", texts[i][0], debcm_last_error());
        }
        char *j = run_config_to_json(&a, cmd == 1);
        run_config_default(&b, (run_command)cmd);
        CHECK_MSG(j && run_config_from_json(&b, j, strlen(j), "round") == 0, "%s", debcm_last_error());
        CHECK_MSG(configs_equal(&a, &b), "config of %s does not round-trip: %s", run_command_name((run_command)cmd), j);
        /* the text reads as JSON and has no option of another phase */
        json_t *parsed = j ? json_loads(j, 0, NULL) : NULL;
        CHECK(parsed != NULL);
        if (cmd == RUN_CMD_TEACHER)
            CHECK(parsed && !json_object_get(parsed, "lr_student") && !json_object_get(parsed, "alpha"));
        json_decref(parsed);
        free(j);
    }
    /* the keys given replace earlier values, the others are kept (a file under the command line's values) */
    run_config c;
    run_config_default(&c, RUN_CMD_RUN);
    c.seed = 42;
    const char *part = "{\"lr_student\": 0.002, \"epochs\": 3, \"student_epochs\": 5}";
    CHECK(run_config_from_json(&c, part, strlen(part), "part") == 0);
    CHECK(c.seed == 42 && c.lr_student == 0.002 && c.teacher_epochs == 3 && c.student_epochs == 5);
    /* refusals, each one line naming the file, the key, what was expected and what was found */
    expect_config_error(RUN_CMD_RUN, "{\"dropout\": 1}", "key 'dropout': expected a probability in [0, 1), found 1");
    expect_config_error(RUN_CMD_RUN, "{\"batch_size\": 1.5}", "key 'batch_size': expected an integer in [2, 1048576]");
    expect_config_error(RUN_CMD_RUN, "{\"matching\": \"fancy\"}", "expected published, hinge or softmax");
    expect_config_error(RUN_CMD_RUN, "{\"tf32\": 1}", "expected true or false");
    expect_config_error(RUN_CMD_RUN, "{\"colour\": 1}", "unknown key 'colour'");
    expect_config_error(RUN_CMD_TEACHER, "{\"alpha\": 0.1}", "key 'alpha' does not apply to train-teacher");
    expect_config_error(RUN_CMD_RUN, "{\"format\": \"other\"}", "key 'format'");
    expect_config_error(RUN_CMD_RUN, "{\"command\": \"train-teacher\"}", "expected \"run\"");
    expect_config_error(RUN_CMD_RUN, "[1, 2]", "expected one JSON object");
    expect_config_error(RUN_CMD_RUN, "{\"seed\": 1, \"seed\": 2}", "duplicate");
    expect_config_error(RUN_CMD_RUN, "{\"seed\": -1}", "expected a non-negative integer");
    expect_config_error(RUN_CMD_RUN, "{\"pgc\": 3}", "key 'pgc': expected a path");
    expect_config_error(RUN_CMD_RUN, "{\"pgc\": {\"hex\": \"2f0\"}}", "even number of hex digits");
    expect_config_error(RUN_CMD_RUN, "{\"teacher\": \"/x\"}", "applies to train-student only");
    expect_config_error(RUN_CMD_RUN, "{\"seed\": 1", "line 1");
    /* the command line's wording for the same checks */
    CHECK(run_option_set_text(&c, run_option_find("dropout"), "1") == -1);
    CHECK_CONTAINS(debcm_last_error(), "--dropout expects a probability in [0, 1), found '1'");
    CHECK(run_option_set_text(&c, run_option_find("nan-policy"), "ignore") == -1);
    CHECK_CONTAINS(debcm_last_error(), "--nan-policy expects stop or skip-batch, found 'ignore'");
}

/* ---- library: the resume checkpoint ------------------------------------------------------------------------------- */

static void fill(debcm_net *n, float base)
{
    for (int64_t i = 0; i < n->n_params; i++) {
        n->param_arena[i] = base + 0.001f * (float)i;
        n->adam_m_arena[i] = base - 0.002f * (float)i;
        n->adam_v_arena[i] = 0.5f * base + 0.003f * (float)i;
    }
    for (int64_t i = 0; i < n->n_stats; i++)
        n->stat_arena[i] = base + 0.25f * (float)i;
}

static int arenas_equal(const debcm_net *a, const debcm_net *b, int with_adam)
{
    size_t pb = (size_t)a->n_params * sizeof(float);
    return a->n_params == b->n_params && !memcmp(a->param_arena, b->param_arena, pb) &&
           !memcmp(a->stat_arena, b->stat_arena, (size_t)a->n_stats * sizeof(float)) &&
           (!with_adam || (!memcmp(a->adam_m_arena, b->adam_m_arena, pb) &&
                           !memcmp(a->adam_v_arena, b->adam_v_arena, pb) && a->adam_t == b->adam_t));
}

static void test_resume_file(void)
{
    const debcm_ops *ops = debcm_ops_cpu();
    model_dims ds = {12, 10, 8, 3}, dt = {12, 10, 8, 0};
    debcm_net s, best, t, s2, best2, t2, t_other;
    debcm_net *all[] = {&s, &best, &t, &s2, &best2, &t2, &t_other};
    int ok = net_create(&s, ops, &ds, 1) == 0 && net_create(&best, ops, &ds, 1) == 0 &&
             net_create(&t, ops, &dt, 0) == 0 && net_create(&s2, ops, &ds, 1) == 0 &&
             net_create(&best2, ops, &ds, 1) == 0 && net_create(&t2, ops, &dt, 0) == 0;
    model_dims d_other = {12, 10, 9, 0};
    ok = ok && net_create(&t_other, ops, &d_other, 0) == 0;
    CHECK_MSG(ok, "net_create: %s", debcm_last_error());
    if (!ok)
        return;
    fill(&s, 1.0f);
    fill(&best, 2.0f);
    fill(&t, 3.0f);
    s.adam_t = 123;
    float terms[3 * MODEL_LOSS_TERMS];
    for (int i = 0; i < 3 * MODEL_LOSS_TERMS; i++)
        terms[i] = 0.1f * (float)i;
    terms[MODEL_LOSS_TERMS] = NAN; /* a batch skipped for its loss */
    resume_info ri;
    memset(&ri, 0, sizeof ri);
    ri.pos = (train_resume_point){1, 4, 3, 57, 2, 0.75, 0.3125, 1, 2, 12.5, 0.1 + 0.2, 96, terms};
    ri.teacher_done = 1;
    ri.teacher_best_epoch = 3;
    ri.teacher_steps = 40;
    ri.teacher_val_recall = 1.0 / 3.0;
    ri.teacher_seconds = 4.25;
    ri.metrics_bytes = 777;
    ri.config_json = "{\"seed\": 5}";
    ri.data_fingerprint = "fp";
    char path[4096], bad[4096];
    cli_wpath(path, "lib-resume.safetensors");
    cli_wpath(bad, "lib-bad.safetensors");
    CHECK_MSG(resume_save(path, &ri, &s, &best, &t) == 0, "%s", debcm_last_error());
    resume_file rf;
    CHECK_MSG(resume_open(&rf, path) == 0, "%s", debcm_last_error());
    CHECK(rf.student == 1 && rf.info.pos.next_epoch == 4 && rf.info.pos.next_batch == 3 && rf.info.pos.step == 57 &&
          rf.info.pos.best_epoch == 2 && rf.info.pos.best_recall == 0.75 && rf.info.pos.best_ndcg == 0.3125 &&
          rf.info.pos.skipped_batches == 1 && rf.info.pos.nonfinite_skipped == 2 && rf.info.pos.seconds == 12.5 &&
          rf.info.pos.epoch_seconds == 0.1 + 0.2 && rf.info.pos.epoch_samples == 96);
    CHECK(rf.info.teacher_done && rf.info.teacher_best_epoch == 3 && rf.info.teacher_steps == 40 &&
          rf.info.teacher_val_recall == 1.0 / 3.0 && rf.info.teacher_seconds == 4.25 && rf.info.metrics_bytes == 777);
    CHECK(!strcmp(rf.info.config_json, "{\"seed\": 5}") && !strcmp(rf.info.data_fingerprint, "fp"));
    CHECK(rf.info.pos.epoch_terms && !memcmp(rf.info.pos.epoch_terms + MODEL_LOSS_TERMS + 1, terms + MODEL_LOSS_TERMS + 1,
                                             (2 * MODEL_LOSS_TERMS - 1) * sizeof(float)) &&
          isnan(rf.info.pos.epoch_terms[MODEL_LOSS_TERMS]));
    CHECK_MSG(resume_read_nets(&rf, &s2, &best2, &t2) == 0, "%s", debcm_last_error());
    CHECK(arenas_equal(&s, &s2, 1) && arenas_equal(&best, &best2, 0) && arenas_equal(&t, &t2, 0));
    resume_close(&rf);
    /* a teacher of another L: the shape message */
    CHECK(resume_open(&rf, path) == 0);
    CHECK(resume_read_nets(&rf, &s2, &best2, &t_other) == -1);
    CHECK_CONTAINS(debcm_last_error(), "tensor 'teacher.");
    resume_close(&rf);
    /* not a model */
    CHECK(checkpoint_load(&t2, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), "a resume checkpoint");

    /* every single-byte flip of the header and of every 13th data byte, and every truncation at 7-byte steps */
    size_t n = 0;
    unsigned char *bytes = (unsigned char *)test_read_file(path, &n);
    CHECK(bytes && n > 64);
    uint64_t hlen = 0;
    for (int i = 0; bytes && i < 8; i++)
        hlen |= (uint64_t)bytes[i] << (8 * i);
    int flips = 0, accepted = 0, unnamed = 0;
    for (size_t i = 0; bytes && i < n; i += i < 8 + hlen ? 1 : 13) {
        for (int k = 0; k < 2; k++) {
            unsigned char keep = bytes[i];
            bytes[i] = k ? (unsigned char)(keep ^ 0xFF) : (unsigned char)(keep ^ (1u << (i % 8)));
            if (spit(bad, bytes, n) == 0) {
                flips++;
                resume_file r2;
                int rc = resume_open(&r2, bad);
                if (rc == 0) {
                    accepted++;
                    if (accepted < 4)
                        fprintf(stderr, "a flip at byte %zu (of %zu, header %llu) was accepted\n", i, n,
                                (unsigned long long)hlen);
                } else if (!strstr(debcm_last_error(), "lib-bad.safetensors")) {
                    unnamed++;
                }
                resume_close(&r2);
            }
            bytes[i] = keep;
        }
    }
    CHECK_MSG(accepted == 0 && unnamed == 0, "%d of %d flipped files accepted, %d refusals without the file's name",
              accepted, flips, unnamed);
    int cuts = 0, cut_accepted = 0;
    for (size_t len = 0; bytes && len < n; len += 7) {
        if (spit(bad, bytes, len) == 0) {
            cuts++;
            resume_file r2;
            if (resume_open(&r2, bad) == 0)
                cut_accepted++;
            resume_close(&r2);
        }
    }
    CHECK_MSG(cut_accepted == 0, "%d of %d truncated files accepted", cut_accepted, cuts);
    printf("resume checkpoint: %zu bytes, %d flipped and %d truncated copies, all refused\n", n, flips, cuts);
    free(bytes);

    /* a model checkpoint: its checksum is written and checked; one from another writer (none) still loads */
    cli_wpath(path, "lib-model.safetensors");
    CHECK(checkpoint_save(&t, path, NULL, 0) == 0);
    CHECK(checkpoint_load(&t2, path) == 0 && arenas_equal(&t, &t2, 0));
    bytes = (unsigned char *)test_read_file(path, &n);
    if (bytes) {
        bytes[n - 5] ^= 0x10;
        CHECK(spit(bad, bytes, n) == 0);
        CHECK(checkpoint_load(&t2, bad) == -1);
        CHECK_CONTAINS(debcm_last_error(), "checksum mismatch");
        free(bytes);
    }
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        net_free(all[i]);
}

/* ---- the command line ---------------------------------------------------------------------------------------------- */

static const char *OPTS = "--teacher-epochs 4 --student-epochs 4 --batch-size 32 --seed 5 --log-every 2";

static void expect_fail(int want, const char *frag1, const char *frag2, int st, const char *what)
{
    char *err = slurp(err_txt);
    printf("  %s: exit %d: %s", what, st, err ? err : "\n");
    CHECK_MSG(st == want, "%s: status %d (want %d): %s", what, st, want, err ? err : "");
    CHECK_MSG(err && cli_lines(err) >= 1 && strstr(err, frag1) && (!frag2 || strstr(err, frag2)),
              "%s: stderr lacks '%s'%s%s: %s", what, frag1, frag2 ? " / " : "", frag2 ? frag2 : "", err ? err : "");
    free(err);
}

/* the run killed with SIGKILL at random moments, then resumed (and sometimes killed again) until it is done */
static void test_kill9(const char *tiny, const char *ref, double t_ref)
{
    char dir[4096];
    int kills = 0, mid_epoch = 0, restarts = 0;
    for (int round = 0; round < 10; round++) {
        snprintf(dir, sizeof dir, "%s/kill-%d", work, round);
        double delay = t_ref * (0.1 + 0.9 * uniform01()); /* most of a run is its student phase */
        pid_t p = spawn("run %s %s --checkpoint-every 3 --out %s", tiny, OPTS, dir);
        sleep_s(delay);
        kill(p, SIGKILL);
        int st = wait_for(p);
        kills += st == 128 + SIGKILL;
        for (int attempt = 0; attempt < 8; attempt++) {
            if (attempt < 2 && uniform01() < 0.5) { /* killed again while resuming */
                pid_t q = spawn("run --resume %s", dir);
                sleep_s(uniform01() * t_ref * 0.6);
                kill(q, SIGKILL);
                kills += wait_for(q) == 128 + SIGKILL;
            }
            /* odd rounds resume on one thread: the CPU numbers do not depend on the thread count */
            st = round % 2 ? SH("run --resume %s --threads 1", dir) : SH("run --resume %s", dir);
            char *out = slurp(out_txt), *err = slurp(err_txt);
            if (out && strstr(out, ", batch ") && !strstr(out, ", batch 0 "))
                mid_epoch++;
            if (st != 0 && err && (strstr(err, "nothing to resume") || strstr(err, "expected a run directory"))) {
                restarts++; /* killed before the run wrote its config: a user starts it again */
                st = SH("run %s %s --checkpoint-every 3 --out %s --force", tiny, OPTS, dir);
            }
            free(out);
            free(err);
            if (st == 0)
                break;
            CHECK_MSG(st == 128 + SIGKILL, "resume of %s: status %d: %s", dir, st, slurp(err_txt));
        }
        char what[64];
        snprintf(what, sizeof what, "kill -9 round %d (after %.3f s)", round, delay);
        same_run(ref, dir, 1, what);
    }
    printf("kill -9: %d kills, %d resumes from inside an epoch, %d runs started again\n", kills, mid_epoch, restarts);
    CHECK_MSG(kills >= 6, "only %d of the kills hit a running process", kills);
}

/* SIGTERM / SIGINT / SIGHUP: the step in flight finishes, the state is saved, exit 128 + signo */
static void test_signals(const char *tiny, const char *ref)
{
    const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    const char *names[] = {"SIGTERM", "SIGINT", "SIGHUP"};
    for (int i = 0; i < 3; i++) {
        char dir[4096], ck[4096];
        snprintf(dir, sizeof dir, "%s/signal-%d", work, i);
        snprintf(ck, sizeof ck, "%s/resume.safetensors", dir);
        pid_t p = spawn("run %s %s --checkpoint-every 3 --out %s", tiny, OPTS, dir);
        CHECK(wait_file(ck, p) == 0);
        sleep_s(0.01 * i);
        kill(p, sigs[i]);
        int st = wait_for(p);
        char *err = slurp(err_txt);
        if (st == 0) {
            fprintf(stderr, "%s arrived after the run's end; not counted\n", names[i]);
        } else {
            CHECK_MSG(st == 128 + sigs[i], "%s: status %d: %s", names[i], st, err ? err : "");
            CHECK_MSG(err && strstr(err, names[i]) && strstr(err, "--resume") && strstr(err, "resume.safetensors"),
                      "%s: %s", names[i], err ? err : "");
            CHECK(cli_lines(err) == 1);
        }
        free(err);
        CHECK(SH("run --resume %s", dir) == 0);
        same_run(ref, dir, 1, names[i]);
    }
}

/* A state saved after an epoch's last batch but before its validation (--checkpoint-every 4 = the teacher's
 * batches per epoch here): the resumed epoch trains nothing more, and its line must still carry the time and
 * the rows of the batches the earlier process trained (not 0 samples/s). */
static void test_epoch_end_timing(const char *tiny)
{
    char dir[4096], ck[4200];
    int hit = 0;
    for (int attempt = 0; attempt < 6 && !hit; attempt++) {
        snprintf(dir, sizeof dir, "%s/epoch-end-%d", work, attempt);
        snprintf(ck, sizeof ck, "%s/resume.safetensors", dir);
        pid_t p = spawn("run %s --teacher-epochs 2 --student-epochs 1 --batch-size 32 --checkpoint-every 4 --out %s",
                        tiny, dir);
        CHECK(wait_file(ck, p) == 0);
        kill(p, SIGKILL);
        wait_for(p);
        resume_file rf;
        if (resume_open(&rf, ck) == 0) {
            hit = !rf.info.pos.student && rf.info.pos.next_epoch == 1 && rf.info.pos.next_batch == 4;
            if (hit) /* the epoch's rows so far (108 pairs) and its time */
                CHECK(rf.info.pos.epoch_samples == 108 && rf.info.pos.epoch_seconds > 0);
        }
        resume_close(&rf);
    }
    if (!hit) {
        printf("epoch-end timing: no kill landed between the last batch and the validation; not counted\n");
        return;
    }
    CHECK_MSG(SH("run --resume %s", dir) == 0, "%s", slurp(err_txt));
    char p[4200];
    snprintf(p, sizeof p, "%s/metrics.jsonl", dir);
    char *text = slurp(p);
    json_t *first = NULL;
    for (char *line = text ? strtok(text, "\n") : NULL; line && !first; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        const char *kind = json_string_value(json_object_get(o, "kind"));
        if (kind && !strcmp(kind, "epoch"))
            first = o;
        else
            json_decref(o);
    }
    free(text);
    CHECK_MSG(first && json_real_value(json_object_get(first, "samples_per_s")) > 0 &&
                  json_real_value(json_object_get(first, "seconds")) > 0,
              "the resumed epoch's timings: %s", first ? json_dumps(first, JSON_COMPACT) : "(no epoch line)");
    json_decref(first);
}

/* a copy of tiny whose PGC video features have one row of huge finite values: the teacher's loss overflows */
static void make_huge(const char *tiny, const char *huge)
{
    char cmd[8192], pgc[4096], ugc[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", huge, tiny, huge);
    CHECK(system(cmd) == 0);
    snprintf(pgc, sizeof pgc, "%s/data_pgc", huge);
    snprintf(ugc, sizeof ugc, "%s/data_matching", huge);
    debcm_dataset ds;
    CHECK_MSG(dataset_load(&ds, pgc, ugc) == 0, "%s", debcm_last_error());
    const feat_matrix *v = &ds.pgc_video;
    float *x = malloc((size_t)(v->rows * v->cols) * sizeof *x);
    if (x) {
        memcpy(x, v->data, (size_t)(v->rows * v->cols) * sizeof *x);
        for (int64_t r = 5; r < 7; r++)
            for (int64_t c = 0; c < v->cols; c++)
                x[r * v->cols + c] = 3e38f;
        int64_t shape[2] = {v->rows, v->cols};
        write_f32(pgc, "mv_video_resnet_features.npy", 2, shape, x);
    }
    free(x);
    dataset_free(&ds);
}

static void test_nonfinite(const char *tiny)
{
    char huge[4096], a[4096], b[4096], ck[4096];
    make_huge(tiny, cli_wpath(huge, "huge"));
    cli_wpath(a, "nan-stop");
    cli_wpath(b, "nan-skip");
    int st = SH("run %s %s --out %s", huge, OPTS, a);
    expect_fail(1, "loss term '", "the state before this step is saved", st, "a non-finite loss");
    char *err = slurp(err_txt);
    CHECK(err && strstr(err, "(step ") && strstr(err, "--nan-policy skip-batch") && cli_lines(err) == 1);
    free(err);
    snprintf(ck, sizeof ck, "%s/resume.safetensors", a);
    resume_file rf;
    CHECK_MSG(resume_open(&rf, ck) == 0, "%s", debcm_last_error());
    CHECK(rf.info.pos.student == 0 && rf.info.pos.next_batch >= 0); /* the state before the step */
    resume_close(&rf);
    CHECK(SH("run --resume %s --nan-policy skip-batch", a) == 0);
    char *out = slurp(out_txt);
    CHECK(out && strstr(out, "batch skipped (--nan-policy skip-batch)") && strstr(out, "skipped (non-finite loss)"));
    free(out);
    CHECK(SH("run %s %s --nan-policy skip-batch --out %s", huge, OPTS, b) == 0);
    same_run(b, a, 1, "stop, then resumed with skip-batch");
    json_t *m = load_metrics(b);
    json_t *first = NULL, *line; /* the first epoch's line (the windows of steps come before it) */
    size_t i;
    json_array_foreach(m, i, line) {
        const char *kind = json_string_value(json_object_get(line, "kind"));
        if (!first && kind && !strcmp(kind, "epoch"))
            first = line;
    }
    CHECK(first && json_integer_value(json_object_get(first, "nonfinite_skipped")) >= 1);
    json_decref(m);
}

static void test_damaged(const char *ref)
{
    char d[4096], ck[4096], cmd[8192];
    cli_wpath(d, "damaged");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", d, ref, d);
    CHECK(system(cmd) == 0);
    snprintf(ck, sizeof ck, "%s/resume.safetensors", d);
    size_t n = 0;
    char *bytes = test_read_file(ck, &n);
    CHECK(bytes && n > 1000);
    if (!bytes)
        return;
    CHECK(spit(ck, bytes, n / 2) == 0); /* truncated */
    expect_fail(1, "resume.safetensors", "remove it to start the run again", SH("run --resume %s", d), "truncated");
    bytes[n / 2] ^= 0x04; /* one flipped bit in the data */
    CHECK(spit(ck, bytes, n) == 0);
    expect_fail(1, "checksum mismatch", NULL, SH("run --resume %s", d), "flipped");
    char *err = slurp(err_txt);
    CHECK(cli_lines(err) == 1);
    free(err);
    free(bytes);
    /* without its checkpoint the run starts again from its config.json: the same run */
    unlink(ck);
    CHECK(SH("run --resume %s", d) == 0);
    char *out = slurp(out_txt);
    CHECK(out && strstr(out, "from its start"));
    free(out);
    same_run(ref, d, 1, "restarted from config.json");
}

/* a full disk, without privileges: a file-size limit the checkpoint does not fit under */
static void test_write_fails(const char *tiny, const char *ref)
{
    char d[4096], ck[4096];
    cli_wpath(d, "fsize");
    snprintf(ck, sizeof ck, "%s/resume.safetensors", d);
    pid_t p = spawn("run %s %s --out %s", tiny, OPTS, d);
    CHECK(wait_file(ck, p) == 0);
    kill(p, SIGTERM);
    int st = wait_for(p);
    CHECK_MSG(st == 143, "status %d", st);
    size_t n0 = 0;
    char *before = test_read_file(ck, &n0);
    child_fsize_limit = (rlim_t)(n0 / 4);
    st = SH("run --resume %s", d);
    child_fsize_limit = 0;
    expect_fail(1, "resume.safetensors", "the previous checkpoint is kept", st, "a checkpoint larger than the limit");
    size_t n1 = 0;
    char *after = test_read_file(ck, &n1);
    CHECK_MSG(before && after && n0 == n1 && !memcmp(before, after, n0), "the previous checkpoint changed");
    free(before);
    free(after);
    CHECK(SH("run --resume %s", d) == 0);
    same_run(ref, d, 1, "after a failed checkpoint write");
}

static void test_refusals(const char *tiny, const char *ref)
{
    char d[4096], e[4096], cmd[8192];
    cli_wpath(d, "refuse");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", d, ref, d);
    CHECK(system(cmd) == 0);
    expect_fail(1, "already holds a run", "--resume", SH("run %s %s --out %s", tiny, OPTS, d), "a run over a run");
    CHECK(SH("run %s %s --out %s --force", tiny, OPTS, d) == 0);
    same_run(ref, d, 1, "--force");
    /* a complete run resumed: nothing trained again, the same outputs written again */
    CHECK_MSG(SH("run --resume %s", d) == 0, "--resume of a complete run: %s", slurp(err_txt));
    char *out = slurp(out_txt);
    CHECK_MSG(out && strstr(out, "the run was complete (student, ") && !strstr(out, "student epoch "),
              "--resume of a complete run printed: %s", out ? out : "(nothing)");
    free(out);
    same_run(ref, d, 1, "--resume of a complete run");
    /* the options given to a --resume are for that process: the run's config.json stays as it was */
    char cj[4200];
    snprintf(cj, sizeof cj, "%s/config.json", d);
    size_t n_before = 0, n_after = 0;
    char *cfg_before = test_read_file(cj, &n_before);
    CHECK(SH("run --resume %s --quiet --nan-policy skip-batch --checkpoint-every 7", d) == 0);
    char *cfg_after = test_read_file(cj, &n_after);
    CHECK_MSG(cfg_before && cfg_after && n_before == n_after && !memcmp(cfg_before, cfg_after, n_before),
              "config.json changed by the options of a --resume: %s", cfg_after ? cfg_after : "");
    free(cfg_before);
    free(cfg_after);
    expect_fail(2, "option '--lr-student' cannot change on --resume", NULL,
                SH("run --resume %s --lr-student 0.5", d), "--resume with a fixed option");
    expect_fail(2, "--out does not go with it", NULL, SH("run --resume %s --out %s", d, d), "--resume --out");
    expect_fail(1, "expected a run directory", NULL, SH("run --resume %s/no-such-run", work), "no directory");
    cli_wpath(e, "empty-run");
    mkdir(e, 0777);
    expect_fail(1, "nothing to resume", NULL, SH("run --resume %s", e), "an empty directory");
    expect_fail(1, "the run was started by debcm run: continue it with debcm run --resume", NULL,
                SH("train-teacher --resume %s", d), "another command's run");
    /* another process holds the run */
    int fd = open(d, O_RDONLY | O_DIRECTORY);
    CHECK(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0);
    expect_fail(1, "in use by another debcm process", NULL, SH("run --resume %s", d), "a locked run");
    if (fd >= 0)
        close(fd);
    /* other data */
    char other[4096];
    cli_wpath(other, "other-data");
    CHECK(SH("synth --scale tiny --videos 2000 --seed 9 --out %s", other) == 0);
    /* the same data but one feature value in the middle of a training video's row (the whole features count) */
    char moved[4096];
    cli_wpath(moved, "one-value-changed");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", moved, tiny, moved);
    CHECK(system(cmd) == 0);
    {
        char pgc[4200], ugc[4200];
        snprintf(pgc, sizeof pgc, "%s/data_pgc", moved);
        snprintf(ugc, sizeof ugc, "%s/data_matching", moved);
        debcm_dataset ds;
        CHECK_MSG(dataset_load(&ds, pgc, ugc) == 0, "%s", debcm_last_error());
        const feat_matrix *v = &ds.ugc_video;
        float *x = malloc((size_t)(v->rows * v->cols) * sizeof *x);
        if (x && v->rows > 2) {
            memcpy(x, v->data, (size_t)(v->rows * v->cols) * sizeof *x);
            x[(v->rows / 2) * v->cols + v->cols / 2] += 5.0f;
            int64_t shape[2] = {v->rows, v->cols};
            write_f32(ugc, "visual_features_resnet_V.npy", 2, shape, x);
        }
        free(x);
        dataset_free(&ds);
    }
    expect_fail(1, "the data differ from the data the run started on", NULL, SH("run --resume %s %s", d, moved),
                "one feature value changed");
    expect_fail(1, "the data differ from the data the run started on", NULL, SH("run --resume %s %s", d, other),
                "other data");
    /* a resume checkpoint is not a teacher */
    expect_fail(1, "a resume checkpoint", NULL,
                SH("train-student %s --teacher %s/resume.safetensors --out %s/ts", tiny, d, work), "--teacher");
    /* a truncated best checkpoint */
    char t[4096];
    snprintf(t, sizeof t, "%s/teacher.safetensors", d);
    size_t n = 0;
    char *bytes = test_read_file(t, &n);
    if (bytes) {
        CHECK(spit(t, bytes, n - 100) == 0);
        expect_fail(1, "teacher.safetensors", NULL, SH("evaluate --model %s %s", t, tiny), "a truncated model");
        free(bytes);
    }
}

/* train-teacher and train-student stopped and resumed: the uninterrupted phase's numbers */
static void test_single_phases(const char *tiny, const char *ref)
{
    char a[4096], b[4096], ck[4096], teacher[4096];
    for (int s = 0; s < 2; s++) {
        snprintf(teacher, sizeof teacher, "%s/teacher.safetensors", ref);
        const char *cmd = s ? "train-student" : "train-teacher";
        char extra[4200];
        snprintf(extra, sizeof extra, "%s%s", s ? "--teacher " : "", s ? teacher : "");
        snprintf(a, sizeof a, "%s/%s-ref", work, cmd);
        snprintf(b, sizeof b, "%s/%s-stopped", work, cmd);
        CHECK(SH("%s %s %s --epochs 3 --batch-size 32 --checkpoint-every 4 --out %s", cmd, tiny, extra, a) == 0);
        snprintf(ck, sizeof ck, "%s/resume.safetensors", b);
        pid_t p = spawn("%s %s %s --epochs 3 --batch-size 32 --checkpoint-every 4 --out %s", cmd, tiny, extra, b);
        CHECK(wait_file(ck, p) == 0);
        kill(p, SIGTERM);
        int st = wait_for(p);
        CHECK(st == 143 || st == 0);
        CHECK_MSG(SH("%s --resume %s", cmd, b) == 0, "%s --resume: %s", cmd, slurp(err_txt));
        same_run(a, b, 0, cmd);
    }
}

/* bad data through run: errors leave nothing behind, warnings carry their counts */
static void test_bad_data(const char *tiny)
{
    char d[4096], o[4096], cmd[8192], pgc[4096], ugc[4096];
    debcm_dataset ds;
    const char *cases[] = {"nan-feature", "id-out-of-range", "empty-split", "warnings"};
    for (int c = 0; c < 4; c++) {
        snprintf(d, sizeof d, "%s/bad-%s", work, cases[c]);
        snprintf(o, sizeof o, "%s/bad-%s-run", work, cases[c]);
        snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' && cp -r '%s' '%s'", d, o, tiny, d);
        CHECK(system(cmd) == 0);
        snprintf(pgc, sizeof pgc, "%s/data_pgc", d);
        snprintf(ugc, sizeof ugc, "%s/data_matching", d);
        if (dataset_load(&ds, pgc, ugc) != 0) {
            CHECK_MSG(0, "%s", debcm_last_error());
            dataset_free(&ds);
            continue;
        }
        if (c == 0) { /* a NaN in the music features */
            const feat_matrix *m = &ds.ugc_vggish;
            float *x = malloc((size_t)(m->rows * m->cols) * sizeof *x);
            memcpy(x, m->data, (size_t)(m->rows * m->cols) * sizeof *x);
            x[7 * m->cols + 3] = NAN;
            int64_t shape[2] = {m->rows, m->cols};
            write_f32(ugc, "music_features.npy", 2, shape, x);
            free(x);
        } else if (c == 1) { /* a PGC pair whose music is not there */
            int64_t *pairs = malloc((size_t)(2 * ds.pgc_train.n) * sizeof *pairs);
            for (int64_t r = 0; r < ds.pgc_train.n; r++) {
                pairs[2 * r] = ds.pgc_train.video[r];
                pairs[2 * r + 1] = r == 4 ? 9999 : ds.pgc_train.music[r];
            }
            int64_t shape[2] = {ds.pgc_train.n, 2};
            char p[4200];
            snprintf(p, sizeof p, "%s/train.npy", pgc);
            CHECK(npy_write(p, NPY_INT64, 2, shape, pairs, NULL) == 0);
            free(pairs);
        } else if (c == 2) { /* no validation pairs */
            int64_t shape[2] = {0, 2}, none = 0;
            char p[4200];
            snprintf(p, sizeof p, "%s/val.npy", pgc);
            CHECK(npy_write(p, NPY_INT64, 2, shape, &none, NULL) == 0);
        } else { /* a prior mean summing to 2, duplicate negatives in 3 rows, a positive among its negatives in 2 */
            float pm[64];
            for (int64_t g = 0; g < ds.prior_mean_len && g < 64; g++)
                pm[g] = 2.0f * ds.prior_mean[g];
            int64_t shape[1] = {ds.prior_mean_len};
            write_f32(ugc, "user_prior_mean.npy", 1, shape, pm);
            eval_split *e = &ds.val;
            for (int r = 0; r < 3; r++)
                e->negatives[r * e->n_neg + 1] = e->negatives[r * e->n_neg];
            for (int r = 3; r < 5; r++)
                e->negatives[r * e->n_neg + 2] = e->positive[r];
            write_eval(ugc, "val", e, -1);
        }
        dataset_free(&ds);
        int st = SH("run %s --epochs 1 --batch-size 32 --out %s", d, o);
        char *err = slurp(err_txt);
        if (c == 0) {
            expect_fail(1, "music_features.npy", "row 7", st, "a NaN feature");
            CHECK(err && strstr(err, "column 3"));
        } else if (c == 1) {
            expect_fail(1, "data_pgc/train.npy: row 4", "9999", st, "an id out of range");
        } else if (c == 2) {
            expect_fail(1, "val.npy", "expected at least one", st, "an empty split");
        } else {
            CHECK_MSG(st == 0, "warnings only: status %d: %s", st, err ? err : "");
            CHECK_MSG(err && strstr(err, "warning: ") && strstr(err, "user_prior_mean.npy"), "%s", err ? err : "");
            CHECK_MSG(err && strstr(err, "listed more than once") && strstr(err, "3 rows"), "%s", err ? err : "");
            CHECK_MSG(err && strstr(err, "2 rows"), "the positive-among-negatives count: %s", err ? err : "");
        }
        if (c < 3) {
            CHECK_MSG(err && cli_lines(err) == 1, "%s: %s", cases[c], err ? err : "");
            CHECK_MSG(!cli_exists(o), "%s: the refused run left %s", cases[c], o);
        }
        free(err);
    }
}

/* A run directory that turns read-only: debcm runs as an unprivileged user (as root, the child drops to nobody,
 * for whom permissions count) and the directory loses its write permission in the middle of the run. */
static void test_read_only(const char *tiny, const char *ref)
{
    char d[4096], run[4096], ck[4096], cmd[16384], area[4096], bin[4096], data[4200], ref_here[4200];
    const char *own_debcm = debcm;
    if (getuid() == 0) { /* as nobody, in a place nobody can reach, on a copy of the binary and the data */
        if (cli_nobody_area(area, bin) != 0) {
            CHECK_MSG(0, "no directory for the read-only check");
            return;
        }
        snprintf(d, sizeof d, "%s/ro", area);
        snprintf(data, sizeof data, "%s/tiny", area);
        snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && chmod -R a+rX '%s'", tiny, data, data);
        CHECK(system(cmd) == 0);
        tiny = data;
        debcm = bin;
        /* the reference on the same copy of the data (report.json names where the data lie) */
        snprintf(ref_here, sizeof ref_here, "%s/ref", area);
        CHECK(SH("run %s %s --out %s", tiny, OPTS, ref_here) == 0);
        ref = ref_here;
    } else {
        cli_wpath(d, "ro");
        area[0] = '\0';
    }
    snprintf(run, sizeof run, "%s/run", d);
    snprintf(ck, sizeof ck, "%s/resume.safetensors", run);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", d, run);
    CHECK(system(cmd) == 0);
    if (getuid() == 0 && chown(run, 65534, 65534) != 0) {
        CHECK_MSG(0, "chown %s: %s", run, strerror(errno));
        debcm = own_debcm;
        return;
    }
    child_as_nobody = getuid() == 0;
    pid_t p = spawn("run %s %s --checkpoint-every 2 --out %s", tiny, OPTS, run);
    int ready = wait_file(ck, p) == 0;
    CHECK(ready && chmod(run, 0555) == 0);
    int st = wait_for(p);
    char *err = slurp(err_txt);
    if (st == 0) {
        printf("read-only mid-run: the run ended before the chmod; not counted\n");
    } else {
        printf("  read-only mid-run: exit %d: %s", st, err ? err : "\n");
        CHECK_MSG(st == 1, "read-only mid-run: status %d: %s", st, err ? err : "");
        CHECK_MSG(err && cli_lines(err) == 1 && strstr(err, run) && strstr(err, "ermission denied"), "%s", err ? err : "");
        /* still read-only: a resume and a run below it are refused at once */
        st = SH("run --resume %s", run);
        expect_fail(1, "not writable", NULL, st, "--resume of a read-only run");
        st = SH("run %s %s --out %s/sub", tiny, OPTS, run);
        expect_fail(1, "cannot create directory", NULL, st, "a new run below a read-only directory");
        child_as_nobody = 0;
        CHECK(chmod(run, 0755) == 0);
        CHECK(SH("run --resume %s", run) == 0); /* writable again: from the last checkpoint */
        same_run(ref, run, 1, "after a read-only run directory");
    }
    child_as_nobody = 0;
    free(err);
    debcm = own_debcm;
    if (area[0]) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", area);
        CHECK(system(cmd) == 0);
    }
}

/* A full disk for real: a small tmpfs inside a user and mount namespace (unshare -rm; skipped, and said so, where
 * the kernel does not allow them). */
static void test_full_disk(const char *tiny, const char *ref)
{
    char script[16384], m[4096], run[4096], st_path[4096], d[4096], cmd[8192];
    char *st, *err;
    if (system("unshare -rm true > /dev/null 2>&1") != 0) {
        printf("full-disk check skipped: no user namespaces here (unshare -rm)\n");
        return;
    }
    cli_wpath(st_path, "tmpfs-status");
    /* a tmpfs with a few hundred KB left: the checkpoint write fails, the previous one is kept */
    cli_wpath(d, "tmpfs-stopped");
    char ck[4096];
    snprintf(ck, sizeof ck, "%s/resume.safetensors", d);
    pid_t p = spawn("run %s %s --out %s", tiny, OPTS, d);
    CHECK(wait_file(ck, p) == 0);
    kill(p, SIGTERM);
    CHECK(wait_for(p) == 143);
    cli_wpath(m, "tmpfs-mount");
    snprintf(run, sizeof run, "%s/run", m);
    char back[4096], st2[4096], left[4096];
    cli_wpath(back, "tmpfs-run");
    cli_wpath(st2, "tmpfs-status2");
    cli_wpath(left, "tmpfs-left");
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' && mkdir -p '%s'", m, back, m);
    CHECK(system(cmd) == 0);
    snprintf(script, sizeof script,
             "unshare -rm sh -c 'mount -t tmpfs -o size=16m tmpfs %s && cp -r %s %s && "
             "dd if=/dev/zero of=%s/spacer bs=1k count=300 2>/dev/null; "
             "dd if=/dev/zero of=%s/fill bs=64k 2>/dev/null; rm %s/spacer; "
             "%s run --resume %s > %s 2> %s; echo $? > %s; cmp -s %s/resume.safetensors %s && echo same > %s; "
             "ls %s | grep -c tmp >> %s; rm %s/fill; %s run --resume %s > /dev/null 2>&1; echo $? > %s; "
             "cp -r %s %s'",
             m, d, run, m, m, m, debcm, run, out_txt, err_txt, st_path, run, ck, left, run, left, m, debcm, run, st2,
             run, back);
    CHECK(system(script) == 0);
    st = slurp(st_path);
    err = slurp(err_txt);
    char *kept = slurp(left), *done = slurp(st2);
    printf("  a full disk: exit %s  %s", st ? st : "?\n", err ? err : "\n");
    CHECK_MSG(st && atoi(st) == 1, "a full disk: status %s: %s", st ? st : "?", err ? err : "");
    CHECK_MSG(err && cli_lines(err) == 1 && strstr(err, "No space left on device"), "%s", err ? err : "");
    CHECK_MSG(kept && strstr(kept, "same") && strstr(kept, "\n0\n"),
              "after the failed write: the previous checkpoint kept and no temporary file left: %s", kept ? kept : "");
    CHECK_MSG(done && atoi(done) == 0, "resume once the disk has room: status %s", done ? done : "?");
    same_run(ref, back, 1, "after a full disk");
    free(st);
    free(err);
    free(kept);
    free(done);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_resume DEBCM WORKDIR\n");
        return 2;
    }
    debcm = argv[1];
    work = argv[2];
    char cmd[8192], tiny[4096], ref[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", work, work);
    if (system(cmd) != 0)
        return 1;
    snprintf(out_txt, sizeof out_txt, "%s/out.txt", work);
    snprintf(err_txt, sizeof err_txt, "%s/err.txt", work);
    const char *seed_env = getenv("DEBCM_TEST_SEED");
    lcg_state = seed_env ? strtoull(seed_env, NULL, 10) : (uint64_t)time(NULL);
    printf("seed %llu (DEBCM_TEST_SEED=%llu repeats this run's kill times)\n", (unsigned long long)lcg_state,
           (unsigned long long)lcg_state);
    test_config();
    test_resume_file();
    if (SH("synth --scale tiny --videos 2000 --out %s", cli_wpath(tiny, "tiny")) != 0) {
        fprintf(stderr, "debcm synth failed: %s\n", slurp(err_txt));
        return 1;
    }
    double t0 = now_s();
    int st = SH("run %s %s --checkpoint-every 3 --out %s", tiny, OPTS, cli_wpath(ref, "ref"));
    double t_ref = now_s() - t0;
    CHECK_MSG(st == 0, "the reference run: status %d: %s", st, slurp(err_txt));
    printf("reference run: %.2f s\n", t_ref);
    if (st == 0) { /* its log holds windows of steps (--log-every 2) beside the epochs: both must come back */
        json_t *m = load_metrics(ref);
        size_t i, windows = 0, epochs = 0;
        json_t *line;
        json_array_foreach(m, i, line) {
            const char *kind = json_string_value(json_object_get(line, "kind"));
            windows += kind && !strcmp(kind, "train");
            epochs += kind && !strcmp(kind, "epoch");
        }
        CHECK_MSG(windows >= 8 && epochs == 8, "the reference log: %zu windows, %zu epochs", windows, epochs);
        json_decref(m);
    }
    if (st == 0) {
        test_kill9(tiny, ref, t_ref);
        test_signals(tiny, ref);
        test_epoch_end_timing(tiny);
        test_nonfinite(tiny);
        test_damaged(ref);
        test_write_fails(tiny, ref);
        test_refusals(tiny, ref);
        test_single_phases(tiny, ref);
        test_read_only(tiny, ref);
        test_full_disk(tiny, ref);
    }
    test_bad_data(tiny);
    return check_done();
}
