/* tests/test_train.c — the training job end to end (engine/train.c, models/checkpoint.c, apps/cmd_run.c).
 *
 * Library checks: train_shuffle gives a permutation that depends on (seed, epoch) only; a checkpoint round-trips
 * every tensor bit for bit and refuses the other kind and a shape that does not match. Command-line checks (the
 * debcm binary, on datasets written by `debcm synth --scale tiny` into WORKDIR): a short `run` completes and its
 * report.json has every key; the same seed twice (another thread count) gives identical numbers; `evaluate` on the
 * saved student reproduces the report's test numbers exactly; a teacher of another D_v is refused with the shape
 * message; a student checkpoint given as --teacher is refused by kind; bad options exit 2 with one line; an unwritable --out
 * exits 1 and leaves nothing; the matching and distillation variants each run an epoch; and on a tiny dataset with
 * 59 negatives the trained student beats the untrained one (--epochs 0) on test Recall@10 and on val Recall@25.
 * Usage: test_train DEBCM WORKDIR. Exit 0 pass, 1 fail. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine/error.h"
#include "engine/train.h"
#include "models/checkpoint.h"
#include "test_cli.h"
#include "test_files.h"

static double jnum(json_t *root, const char *obj, const char *key)
{
    json_t *o = json_object_get(root, obj), *v = o ? json_object_get(o, key) : NULL;
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static json_t *load_json(const char *path)
{
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    CHECK_MSG(j != NULL, "%s: %s", path, e.text);
    return j;
}

/* ---- library ------------------------------------------------------------------------------------------------- */

static void test_shuffle(void)
{
    enum { N = 1000 };
    int64_t *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    char *seen = calloc(N, 1);
    if (!a || !b || !c || !seen) {
        CHECK(0);
        goto done;
    }
    train_shuffle(a, N, 7, 1, 3);
    train_shuffle(b, N, 7, 1, 3);
    train_shuffle(c, N, 7, 1, 4);
    int perm = 1, moved = 0;
    for (int i = 0; i < N; i++) {
        if (a[i] < 0 || a[i] >= N || seen[a[i]])
            perm = 0;
        else
            seen[a[i]] = 1;
        moved += a[i] != i;
    }
    CHECK_MSG(perm, "train_shuffle is not a permutation");
    CHECK(memcmp(a, b, N * sizeof *a) == 0); /* a pure function of (seed, stream, epoch) */
    CHECK(memcmp(a, c, N * sizeof *a) != 0); /* another epoch, another order */
    CHECK_MSG(moved > N / 2, "only %d of %d rows moved", moved, N);
done:
    free(a); free(b); free(c); free(seen);
}

static void test_checkpoint(void)
{
    const debcm_ops *ops = debcm_ops_cpu();
    model_dims d = {24, 10, 8, 3}, d2 = {20, 10, 8, 3};
    debcm_net s, s2, s3, t;
    char path[4096];
    cli_wpath(path, "lib.safetensors");
    if (net_create(&s, ops, &d, 1) || net_create(&s2, ops, &d, 1) || net_create(&s3, ops, &d2, 1) ||
        net_create(&t, ops, &d, 0)) {
        CHECK_MSG(0, "net_create: %s", debcm_last_error());
        return;
    }
    CHECK(net_init(&s, 5) == 0);
    for (int64_t i = 0; i < s.n_stats; i++) /* non-trivial statistics */
        s.stat_arena[i] = 0.5f + (float)i;
    checkpoint_meta m = {"matching", "hinge"};
    CHECK_MSG(checkpoint_save(&s, path, &m, 1) == 0, "%s", debcm_last_error());
    CHECK_MSG(checkpoint_load(&s2, path) == 0, "%s", debcm_last_error());
    CHECK(memcmp(s.param_arena, s2.param_arena, (size_t)s.n_params * sizeof(float)) == 0);
    CHECK(memcmp(s.stat_arena, s2.stat_arena, (size_t)s.n_stats * sizeof(float)) == 0);
    int student = -1;
    int64_t L = 0;
    CHECK(checkpoint_peek(path, &student, &L) == 0 && student == 1 && L == 8);
    CHECK(checkpoint_load(&t, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), "metadata 'model': expected 'teacher', found 'student'");
    CHECK(checkpoint_load(&s3, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), "tensor 'v_encoder.fc_mu.weight': expected shape [8, 20] "
                                       "(from the data and --latent), "
                                       "found [8, 24]");
    net_free(&s); net_free(&s2); net_free(&s3); net_free(&t);
}

/* ---- the command line ---------------------------------------------------------------------------------------- */

static const char *report_keys[][2] = {
    {"teacher", "best_epoch"}, {"teacher", "val_recall@25"}, {"student", "best_epoch"},
    {"student", "val_recall@25"}, {"student", "val_ndcg@25"}, {"test", "recall@10"}, {"test", "ndcg@10"},
    {"test", "recall@15"}, {"test", "ndcg@15"}, {"test", "recall@20"}, {"test", "ndcg@20"},
    {"test", "recall@25"}, {"test", "ndcg@25"}, {"seconds", "teacher"}, {"seconds", "student"},
    {"seconds", "test"}, {"seconds", "total"},
};
#define N_KEYS ((int)(sizeof report_keys / sizeof report_keys[0]))

static void test_run(const char *tiny)
{
    char a[4096], b[4096], p[4096];
    const char *opts = "--teacher-epochs 3 --student-epochs 5 --batch-size 64 --seed 7";
    int st = cli_sh("run '%s' %s --out '%s'", tiny, opts, cli_wpath(a, "run-a"));
    CHECK_MSG(st == 0, "run: status %d: %s", st, test_read_file(err_txt, NULL));
    char *out = test_read_file(out_txt, NULL);
    if (out) {
        CHECK_CONTAINS(out, "matching published");
        CHECK_CONTAINS(out, "teacher epoch  3/3");
        CHECK_CONTAINS(out, "student epoch  5/5");
        CHECK_CONTAINS(out, "samples/s");
        CHECK_CONTAINS(out, "NDCG@25");
        CHECK_CONTAINS(out, "ETA");
        CHECK_CONTAINS(out, "   K   Recall@K   NDCG@K");
        CHECK_CONTAINS(out, "teacher cache on");
        CHECK_CONTAINS(out, "the frozen teacher's posteriors of");
    }
    free(out);
    snprintf(p, sizeof p, "%s/teacher.safetensors", a);
    CHECK(cli_exists(p));
    snprintf(p, sizeof p, "%s/student.safetensors", a);
    CHECK(cli_exists(p));
    snprintf(p, sizeof p, "%s/report.json", a);
    json_t *ra = load_json(p);
    /* the same seed again, with another thread count (the ops split outputs, never reductions) and the frozen
     * teacher run every step instead of its cached posteriors (the same values) */
    CHECK(cli_sh("run '%s' %s --threads 3 --teacher-cache off --out '%s'", tiny, opts, cli_wpath(b, "run-b")) == 0);
    char *out_b = test_read_file(out_txt, NULL);
    if (out_b) {
        CHECK_CONTAINS(out_b, "teacher cache off");
        CHECK(!strstr(out_b, "posteriors of"));
    }
    free(out_b);
    snprintf(p, sizeof p, "%s/report.json", b);
    json_t *rb = load_json(p);
    if (!ra || !rb)
        goto done;
    { /* the published report's keys, then what lies beyond it (the full ranking, genre exposure, machine, data) */
        const char *keys[] = {"teacher", "student", "test", "variants", "seconds", "full_ranking", "genre_exposure",
                              "machine", "data"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
            CHECK_MSG(json_object_get(ra, keys[i]) != NULL, "report.json has no '%s'", keys[i]);
        CHECK(json_object_size(ra) == sizeof keys / sizeof keys[0]);
    }
    json_t *var = json_object_get(ra, "variants");
    CHECK(var && !strcmp(json_string_value(json_object_get(var, "matching")), "published") &&
          !strcmp(json_string_value(json_object_get(var, "distill")), "published"));
    for (int i = 0; i < N_KEYS; i++) {
        double x = jnum(ra, report_keys[i][0], report_keys[i][1]), y = jnum(rb, report_keys[i][0], report_keys[i][1]);
        CHECK_MSG(isfinite(x), "report.json: %s.%s missing", report_keys[i][0], report_keys[i][1]);
        if (strcmp(report_keys[i][0], "seconds"))
            CHECK_MSG(x == y, "same seed, different %s.%s: %.17g vs %.17g", report_keys[i][0], report_keys[i][1],
                      x, y);
    }
    CHECK(jnum(ra, "teacher", "best_epoch") >= 1 && jnum(ra, "student", "best_epoch") >= 1);
    /* evaluate reproduces the report's test numbers */
    snprintf(p, sizeof p, "%s/student.safetensors", a);
    st = cli_sh("evaluate --json --model '%s' --data '%s'", p, tiny);
    CHECK_MSG(st == 0, "evaluate: status %d: %s", st, test_read_file(err_txt, NULL));
    json_t *ev = load_json(out_txt);
    for (int i = 5; ev && i < 13; i++) {
        double x = jnum(ra, "test", report_keys[i][1]), y = jnum(ev, "test", report_keys[i][1]);
        CHECK_MSG(x == y, "evaluate %s: %.17g, the report %.17g", report_keys[i][1], y, x);
    }
    CHECK(ev && isfinite(jnum(ev, "val", "recall@25")));
    CHECK_NEAR(ev ? jnum(ev, "val", "recall@25") : 0, jnum(ra, "student", "val_recall@25"), 1e-9);
    json_decref(ev);
    /* text form: both tables */
    CHECK(cli_sh("evaluate --model '%s' '%s'", p, tiny) == 0);
    out = test_read_file(out_txt, NULL);
    CHECK(out && strstr(out, "test (weighted") && strstr(out, "val (weighted"));
    free(out);
    /* a teacher checkpoint: its full ranking on data_pgc val (the kind comes from the metadata) */
    snprintf(p, sizeof p, "%s/teacher.safetensors", a);
    CHECK(cli_sh("evaluate --json --model '%s' --data '%s'", p, tiny) == 0);
    ev = load_json(out_txt);
    CHECK(ev && !strcmp(json_string_value(json_object_get(ev, "model")), "teacher"));
    CHECK_NEAR(ev ? jnum(ev, "pgc_val", "recall@25") : 0, jnum(ra, "teacher", "val_recall@25"), 1e-9);
    json_decref(ev);
    /* train-student with the run's teacher gives the run's student */
    CHECK(cli_sh("train-student '%s' --teacher '%s' --student-epochs 5 --batch-size 64 --seed 7 --out '%s'", tiny, p,
             cli_wpath(b, "student-only")) == 0);
    out = test_read_file(out_txt, NULL);
    char line[256];
    snprintf(line, sizeof line, "  10   %8.4f", jnum(ra, "test", "recall@10"));
    CHECK_MSG(out && strstr(out, line), "train-student: no line '%s' in its output", line);
    free(out);
    /* a student checkpoint is not a teacher */
    snprintf(p, sizeof p, "%s/student.safetensors", a);
    st = cli_sh("train-student '%s' --teacher '%s' --out '%s'", tiny, p, cli_wpath(b, "refused-kind"));
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 1 && cli_lines(err) == 1, "status %d, stderr: %s", st, err);
    CHECK_CONTAINS(err ? err : "", "metadata 'model': expected 'teacher', found 'student'");
    CHECK(!cli_exists(b));
    free(err);
done:
    json_decref(ra);
    json_decref(rb);
}

static void test_other_dv(const char *tiny)
{
    char d[4096], t[4096], o[4096], p[4096];
    CHECK(cli_sh("synth --scale tiny --dim-v 32 --out '%s'", cli_wpath(d, "tiny-dv32")) == 0);
    CHECK(cli_sh("train-teacher '%s' --epochs 1 --batch-size 64 --out '%s'", d, cli_wpath(t, "teacher-dv32")) == 0);
    snprintf(p, sizeof p, "%s/teacher.safetensors", t);
    CHECK(cli_exists(p));
    int st = cli_sh("train-student '%s' --teacher '%s' --out '%s'", tiny, p, cli_wpath(o, "refused-dv"));
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == 1 && cli_lines(err) == 1, "status %d, stderr: %s", st, err);
    CHECK_CONTAINS(err ? err : "", "teacher.safetensors: tensor 'v_encoder.fc_mu.weight': expected shape [128, 64] "
                                   "(from the data and --latent), found [128, 32]");
    CHECK(!cli_exists(o));
    free(err);
}

static void expect_usage(int want, const char *needle, const char *args)
{
    int st = cli_sh("%s", args);
    char *err = test_read_file(err_txt, NULL);
    CHECK_MSG(st == want && cli_lines(err) == 1 && strstr(err ? err : "", needle),
              "debcm %s: status %d (want %d), stderr (want one line with '%s'): %s", args, st, want, needle, err);
    free(err);
}

static void test_usage(const char *tiny)
{
    char cmd[8192], o[4096], f[4096];
    cli_wpath(o, "never");
#define U(want, needle, ...)                                                                                      \
    do {                                                                                                          \
        snprintf(cmd, sizeof cmd, __VA_ARGS__);                                                                   \
        expect_usage(want, needle, cmd);                                                                          \
    } while (0)
    U(2, "--epochs expects an integer", "run '%s' --epochs -1 --out '%s'", tiny, o);
    U(2, "--batch-size expects an integer in [2", "run '%s' --batch-size 1 --out '%s'", tiny, o);
    U(2, "--matching expects published, hinge or softmax", "run '%s' --matching fancy --out '%s'", tiny, o);
    U(2, "--distill expects published or kl", "run '%s' --distill js --out '%s'", tiny, o);
    U(2, "--device expects cpu or cuda", "run '%s' --device tpu --out '%s'", tiny, o);
    U(2, "--teacher-cache expects on or off", "run '%s' --teacher-cache maybe --out '%s'", tiny, o);
    U(2, "--dropout expects a probability", "run '%s' --dropout 1 --out '%s'", tiny, o);
    U(2, "--lr-teacher expects a number", "run '%s' --lr-teacher 0 --out '%s'", tiny, o);
    U(2, "--lr-student expects a number", "run '%s' --lr-student nan --out '%s'", tiny, o);
    U(2, "--k expects an integer", "run '%s' --k 4x --out '%s'", tiny, o);
    U(2, "--temperature expects a number", "run '%s' --temperature 0 --out '%s'", tiny, o);
    U(2, "--threads expects an integer", "run '%s' --threads 0 --out '%s'", tiny, o);
    U(2, "--seed expects a non-negative integer", "run '%s' --seed -4 --out '%s'", tiny, o);
    U(2, "unknown option '--colour'", "run '%s' --colour --out '%s'", tiny, o);
    U(2, "needs a value", "run '%s' --out", tiny);
    U(2, "need ROOT", "run --out '%s'", o);
    U(2, "unexpected argument 'extra'", "run '%s' extra --out '%s'", tiny, o);
    U(2, "option '--model' does not apply to run", "run '%s' --model x --out '%s'", tiny, o);
    U(2, "option '--epochs' does not apply to evaluate", "evaluate --model x --epochs 3 '%s'", tiny);
    U(2, "--teacher CKPT is required", "train-student '%s' --out '%s'", tiny, o);
    U(2, "option '--distill' does not apply to train-teacher", "train-teacher '%s' --distill kl --out '%s'", tiny, o);
    U(2, "option '--teacher-epochs' does not apply to train-student",
      "train-student '%s' --teacher x --teacher-epochs 3 --out '%s'", tiny, o);
    U(2, "--model CKPT is required", "evaluate '%s'", tiny);
    U(2, "--tf32 applies to --device cuda only", "run '%s' --tf32 --out '%s'", tiny, o);
    { /* --device cuda: without a GPU (or a CUDA build) one line naming the option and no output; with one, a run */
        char dc[8192], dout[4096];
        cli_wpath(dout, "cuda-run");
        snprintf(dc, sizeof dc, "run '%s' --device cuda --epochs 1 --batch-size 64 --out '%s'", tiny, dout);
        int st = cli_sh("%s", dc);
        char *err = test_read_file(err_txt, NULL);
        CHECK_MSG(st == 0 || (st == 1 && cli_lines(err) == 1 && strstr(err ? err : "", "--device cuda")),
                  "debcm %s: status %d, stderr: %s", dc, st, err);
        if (st != 0)
            CHECK(!cli_exists(dout));
        free(err);
    }
    /* unwritable --out: below a regular file (refused even for root), or a regular file itself */
    cli_wpath(f, "plainfile");
    FILE *pf = fopen(f, "w");
    if (pf)
        fclose(pf);
    U(1, "debcm run: error: --out", "run '%s' --epochs 1 --out '%s/sub/dir'", tiny, f);
    U(1, "not a directory", "run '%s' --epochs 1 --out '%s'", tiny, f);
    /* a dataset that does not load: one line, and the (new) output directory is not left behind */
    U(1, "debcm run: error: ", "run '%s/no-such-root' --out '%s'", work, o);
    CHECK(!cli_exists(o));
    snprintf(cmd, sizeof cmd, "%s/sub", f);
    CHECK(!cli_exists(cmd));
    CHECK(cli_sh("run --help") == 0);
    char *out = test_read_file(out_txt, NULL);
    CHECK(out && strstr(out, "usage: debcm run ROOT") && strstr(out, "--temperature") && strstr(out, "--distill"));
    free(out);
    CHECK(cli_sh("evaluate --help") == 0);
#undef U
}

static void test_variants(const char *tiny)
{
    static const char *const v[] = {"--matching hinge", "--matching softmax --temperature 0.2",
                                    "--matching published", "--distill kl", "--distill published"};
    char o[4096], p[4096];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        snprintf(p, sizeof p, "variant-%zu", i);
        int st = cli_sh("run '%s' %s --epochs 1 --batch-size 64 --out '%s'", tiny, v[i], cli_wpath(o, p));
        CHECK_MSG(st == 0, "run %s: status %d: %s", v[i], st, test_read_file(err_txt, NULL));
        snprintf(p, sizeof p, "%s/report.json", o);
        json_t *r = load_json(p);
        CHECK_MSG(r && isfinite(jnum(r, "test", "recall@10")), "run %s: no test recall", v[i]);
        json_decref(r);
    }
}

/* The trained student against the untrained one, on a tiny dataset with 59 negatives (the 21 candidates of the
 * default tiny make Recall@25 = 1 for every model). Deterministic: a fixed seed of data and run. */
static void test_learns(void)
{
    char d[4096], o0[4096], o1[4096], o2[4096], p[4096];
    CHECK(cli_sh("synth --scale tiny --videos 2000 --negatives 59 --out '%s'", cli_wpath(d, "tiny59")) == 0);
    CHECK(cli_sh("run '%s' --epochs 0 --out '%s'", d, cli_wpath(o0, "untrained")) == 0);
    CHECK(cli_sh("run '%s' --matching hinge --teacher-epochs 3 --student-epochs 15 --batch-size 64 --out '%s'", d,
             cli_wpath(o1, "trained-hinge")) == 0);
    CHECK(cli_sh("run '%s' --teacher-epochs 3 --student-epochs 5 --batch-size 64 --out '%s'", d,
             cli_wpath(o2, "trained-published")) == 0);
    snprintf(p, sizeof p, "%s/report.json", o0);
    json_t *r0 = load_json(p);
    snprintf(p, sizeof p, "%s/report.json", o1);
    json_t *r1 = load_json(p);
    snprintf(p, sizeof p, "%s/report.json", o2);
    json_t *r2 = load_json(p);
    if (r0 && r1 && r2) {
        double u = jnum(r0, "test", "recall@10"), h = jnum(r1, "test", "recall@10");
        double uv = jnum(r0, "student", "val_recall@25"), pv = jnum(r2, "student", "val_recall@25");
        printf("test Recall@10: untrained %.4f, trained (hinge) %.4f; val Recall@25: untrained %.4f, trained "
               "(published) %.4f\n", u, h, uv, pv);
        CHECK(jnum(r0, "student", "best_epoch") == 0 && jnum(r0, "teacher", "best_epoch") == 0);
        CHECK_MSG(h > u + 0.05, "trained test Recall@10 %.4f does not clearly beat the untrained %.4f", h, u);
        CHECK_MSG(pv > uv + 0.05, "trained val Recall@25 %.4f does not clearly beat the untrained %.4f", pv, uv);
    }
    json_decref(r0);
    json_decref(r1);
    json_decref(r2);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_train DEBCM WORKDIR\n");
        return 2;
    }
    debcm = argv[1];
    work = argv[2];
    char cmd[8192], tiny[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", work, work);
    if (system(cmd) != 0)
        return 1;
    snprintf(out_txt, sizeof out_txt, "%s/out.txt", work);
    snprintf(err_txt, sizeof err_txt, "%s/err.txt", work);
    test_shuffle();
    test_checkpoint();
    if (cli_sh("synth --scale tiny --out '%s'", cli_wpath(tiny, "tiny")) != 0) {
        fprintf(stderr, "debcm synth failed: %s\n", test_read_file(err_txt, NULL));
        return 1;
    }
    test_run(tiny);
    test_other_dv(tiny);
    test_usage(tiny);
    test_variants(tiny);
    test_learns();
    return check_done();
}
