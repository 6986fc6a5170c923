/* tests/test_run_cli.c — what a PyTorch user meets first on the command line of the training commands
 * (apps/cmd_run.c, apps/run_job.c): the config (--config FILE.json under the command line, --print-config, the
 * published scripts' flag names as aliases, config.json equal to --print-config), the run directory's name
 * (--name), and the progress the run explains itself with: metrics.jsonl parsed back line by line (a "train"
 * window every --log-every batches whose means equal a recount from the epoch lines' batches, an "epoch" line
 * per epoch), plain progress lines when stdout is not a terminal, a live line redrawn in place on a terminal (a
 * pseudo-terminal here), nothing but the test table with --quiet; the report a run leaves (metrics.csv, report.md
 * with the test table it printed, the plots); a closed standard output (exit 1 with one line, not SIGPIPE; 130
 * and the state saved when SIGINT came too). Usage: test_run_cli DEBCM WORKDIR. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine/error.h"
#include "test_cli.h"
#include "test_files.h"

static char *out_text(void) { return test_read_file(out_txt, NULL); }
static char *err_text(void) { return test_read_file(err_txt, NULL); }

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* a usage or input error: the status, one line on stderr holding frag */
static void expect_error(int st, int want, const char *frag, const char *what)
{
    char *e = err_text();
    CHECK_MSG(st == want, "%s: status %d, expected %d (%s)", what, st, want, e ? e : "");
    CHECK_MSG(e && strstr(e, frag) && cli_lines(e) == 1, "%s: stderr \"%s\" should be one line with \"%s\"", what,
              e ? e : "", frag);
    free(e);
}

static json_t *parse_out(const char *what)
{
    char *o = out_text();
    json_error_t je;
    json_t *j = o ? json_loads(o, 0, &je) : NULL;
    CHECK_MSG(j && json_is_object(j), "%s: not one JSON object: %s", what, o ? o : "(nothing)");
    free(o);
    return j;
}

static double num(const json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }
static json_int_t integer(const json_t *o, const char *key) { return json_integer_value(json_object_get(o, key)); }
static const char *str(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* ---- config: file, command line, aliases, print-config ------------------------------------------------------ */

static void test_config(const char *tiny)
{
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/my.json", work);
    write_text(cfg, "{\"batch_size\": 64, \"lr_student\": 0.002, \"seed\": 7, \"teacher_epochs\": 3, "
                    "\"matching\": \"hinge\", \"dropout\": 0.1}\n");
    /* the file over the defaults, the command line over the file */
    int st = cli_sh("run %s --config my.json --seed 9 --epochs 2 --print-config", tiny);
    CHECK_MSG(st == 0, "--print-config: status %d", st);
    json_t *j = parse_out("--print-config");
    if (j) {
        CHECK(integer(j, "batch_size") == 64 && num(j, "lr_student") == 0.002 && integer(j, "seed") == 9);
        CHECK(integer(j, "teacher_epochs") == 2 && integer(j, "student_epochs") == 2); /* --epochs over the file */
        CHECK(!strcmp(str(j, "matching"), "hinge") && num(j, "dropout") == 0.1);
        CHECK(num(j, "lr_teacher") == 1e-4 && integer(j, "k") == 40); /* defaults where neither says */
        CHECK(!strcmp(str(j, "command"), "run") && !strcmp(str(j, "format"), "debcm-config-1"));
        CHECK_MSG(str(j, "pgc")[0] == '/' && strstr(str(j, "pgc"), "data_pgc"), "pgc %s", str(j, "pgc"));
    }
    /* a phase's own key on the command line over --epochs, in either order, over the file */
    CHECK(cli_sh("run %s --config my.json --teacher-epochs 5 --epochs 1 --print-config", tiny) == 0);
    json_t *k = parse_out("--teacher-epochs over --epochs");
    CHECK(k && integer(k, "teacher_epochs") == 5 && integer(k, "student_epochs") == 1);
    json_decref(k);
    /* the published flag names */
    CHECK(cli_sh("run %s --l_r 0.003 --batch_size 48 --num_epoch 4 --dim_latent 32 --weight_decay 0.01 "
             "--dropout_rate 0.3 --num_neg_sample 7 --margin 0.2 --seed 3 --print-config", tiny) == 0);
    json_t *a = parse_out("aliases");
    if (a) {
        CHECK(num(a, "lr_teacher") == 0.003 && num(a, "lr_student") == 0.003); /* run: both phases */
        CHECK(integer(a, "batch_size") == 48 && integer(a, "teacher_epochs") == 4 && integer(a, "student_epochs") == 4);
        CHECK(integer(a, "latent") == 32 && num(a, "weight_decay") == 0.01 && num(a, "dropout") == 0.3);
        CHECK(integer(a, "k") == 7 && num(a, "margin") == 0.2 && integer(a, "seed") == 3);
    }
    json_decref(a);
    /* a phase's own --lr-student over --l_r, in either order */
    for (int order = 0; order < 2; order++) {
        CHECK(cli_sh(order ? "run %s --lr-student 0.2 --l_r 0.5 --print-config" : "run %s --l_r 0.5 --lr-student 0.2 "
                 "--print-config", tiny) == 0);
        json_t *l = parse_out("--l_r beside --lr-student");
        CHECK_MSG(l && num(l, "lr_student") == 0.2 && num(l, "lr_teacher") == 0.5, "order %d", order);
        json_decref(l);
    }
    CHECK(cli_sh("train-teacher %s --l_r 0.004 --print-config", tiny) == 0);
    json_t *t = parse_out("--l_r of train-teacher");
    CHECK(t && num(t, "lr_teacher") == 0.004 && !json_object_get(t, "lr_student"));
    json_decref(t);
    /* --print-config is what config.json holds, and a config.json read back with --config gives it again */
    if (j) {
        CHECK(cli_sh("run %s --config my.json --seed 9 --epochs 2 --out cfg-run", tiny) == 0);
        char p[4096];
        snprintf(p, sizeof p, "%s/cfg-run/config.json", work);
        char *text = test_read_file(p, NULL);
        json_t *written = text ? json_loads(text, 0, NULL) : NULL;
        CHECK_MSG(written && json_equal(written, j), "config.json differs from --print-config: %s", text ? text : "");
        free(text);
        CHECK(cli_sh("run --config cfg-run/config.json --print-config") == 0); /* its data paths too */
        json_t *again = parse_out("config.json as --config");
        CHECK(again && json_equal(again, j));
        json_decref(again);
        json_decref(written);
    }
    json_decref(j);
    /* refusals: one line each, naming the file and the key */
    write_text(cfg, "{\"batch_size\": 1}");
    expect_error(cli_sh("run %s --config my.json --epochs 1", tiny), 1, "my.json: key 'batch_size'", "a bad value");
    write_text(cfg, "{\"colour\": 1}");
    expect_error(cli_sh("run %s --config my.json", tiny), 1, "my.json: unknown key 'colour'", "an unknown key");
    write_text(cfg, "{\"alpha\": 1}");
    expect_error(cli_sh("train-teacher %s --config my.json", tiny), 1, "key 'alpha' does not apply to train-teacher",
                 "another phase's key");
    write_text(cfg, "{\"seed\": 1,,}");
    expect_error(cli_sh("run %s --config my.json", tiny), 1, "my.json: line 1", "broken JSON");
    expect_error(cli_sh("run %s --config no-such.json", tiny), 1, "no-such.json", "a missing file");
    write_text(cfg, "{}");
    expect_error(cli_sh("run %s --config my.json --config my.json", tiny), 2, "--config given twice", "twice");
    expect_error(cli_sh("run %s --name a/b", tiny), 2, "--name needs a plain name", "--name with a slash");
    expect_error(cli_sh("run %s --name x --out y", tiny), 2, "not both", "--name and --out");
    expect_error(cli_sh("run --resume cfg-run --config my.json"), 2, "--config does not go with --resume", "resume");
    expect_error(cli_sh("run %s --l_r -1", tiny), 2, "--l_r", "a bad --l_r");
    expect_error(cli_sh("evaluate --model x --data %s --config my.json", tiny), 2, "does not apply", "evaluate");
}

/* ---- the log and the progress lines ---------------------------------------------------------------------------- */

/* metrics.jsonl of dir: every line an object; the "train" windows' means against the batches they cover */
static void check_log(const char *dir, int every, int epochs)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/metrics.jsonl", work, dir);
    char *text = test_read_file(p, NULL);
    CHECK_MSG(text != NULL, "%s missing", p);
    int windows[2] = {0, 0}, ep[2] = {0, 0};
    int64_t last_step = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        CHECK_MSG(o && json_is_object(o), "%s: not a JSON object: %.80s", p, line);
        if (!o)
            continue;
        const int s = !strcmp(str(o, "phase"), "student");
        const char *kind = str(o, "kind");
        CHECK_MSG(!strcmp(kind, "train") || !strcmp(kind, "epoch"), "kind '%s'", kind);
        CHECK(num(o, "lr") == (s ? 1e-3 : 1e-4));
        if (!strcmp(kind, "train")) {
            windows[s]++;
            CHECK(integer(o, "batch") % every == 0 && integer(o, "batch") <= integer(o, "batches"));
            CHECK(integer(o, "window_batches") >= 1 && integer(o, "window_batches") <= every);
            CHECK(isfinite(num(o, "loss")) && json_is_number(json_object_get(o, "kl_m")));
            CHECK((json_object_get(o, "distill_m") != NULL) == s);
        } else {
            ep[s]++;
            CHECK(integer(o, "epoch") >= 1 && integer(o, "epoch") <= epochs);
            CHECK(json_is_number(json_object_get(o, "val_recall@25")));
            CHECK((json_object_get(o, "val_ndcg@25") != NULL) == s);
        }
        CHECK_MSG(integer(o, "step") >= last_step || (s && integer(o, "step") >= 1), "steps go back");
        last_step = integer(o, "step");
        json_decref(o);
    }
    free(text);
    CHECK_MSG(ep[0] == epochs && ep[1] == epochs, "%d and %d epoch lines", ep[0], ep[1]);
    CHECK_MSG(windows[0] >= epochs && windows[1] >= epochs, "%d and %d windows", windows[0], windows[1]);
}

/* with one window per epoch of all its batches, the window's means are the epoch line's */
static void check_window_is_epoch(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s/metrics.jsonl", work, dir);
    char *text = test_read_file(p, NULL);
    json_t *prev = NULL;
    int pairs = 0;
    for (char *line = text ? strtok(text, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        if (!o)
            continue;
        if (prev && !strcmp(str(o, "kind"), "epoch") && !strcmp(str(prev, "kind"), "train") &&
            integer(prev, "batch") == integer(prev, "batches") && integer(prev, "window_batches") == integer(o, "batches")) {
            const char *keys[] = {"loss", "match_music", "match_video", "kl_m", "kl_v", "recon"};
            for (int i = 0; i < 6; i++)
                CHECK_MSG(num(prev, keys[i]) == num(o, keys[i]), "%s: window %.17g, epoch %.17g", keys[i],
                          num(prev, keys[i]), num(o, keys[i]));
            pairs++;
        }
        json_decref(prev);
        prev = o;
    }
    json_decref(prev);
    free(text);
    CHECK_MSG(pairs >= 2, "only %d window/epoch pairs to compare", pairs);
}

static void test_progress(const char *tiny)
{
    /* not a terminal: a plain line every --log-every batches */
    CHECK(cli_sh("run %s --epochs 2 --batch-size 32 --log-every 2 --name logged", tiny) == 0);
    char *o = out_text();
    int progress = 0;
    for (const char *p = o; p && (p = strstr(p, "  batch ")); p++)
        progress++;
    CHECK_MSG(progress >= 4 && o && !strchr(o, '\r') && strstr(o, "samples/s  ETA "), "progress lines: %s",
              o ? o : "");
    char p[4096];
    snprintf(p, sizeof p, "%s/runs/logged/config.json", work);
    CHECK_MSG(access(p, F_OK) == 0, "--name logged: no %s", p);
    /* the run leaves its report: metrics.csv, report.md holding the test table it printed, the plots */
    snprintf(p, sizeof p, "%s/runs/logged/report.md", work);
    char *md = test_read_file(p, NULL);
    CHECK_MSG(md != NULL, "no %s", p);
    const char *table = o ? strstr(o, "   K   Recall@K   NDCG@K\n") : NULL;
    int rows = 0;
    for (const char *t = table ? strchr(table, '\n') + 1 : NULL; t && md; t = strchr(t, '\n') + 1) {
        int K;
        char r[32], n[32];
        if (sscanf(t, " %d %31s %31s", &K, r, n) != 3 || K < 10 || K > 25)
            break;
        CHECK_MSG(strstr(md, r) && strstr(md, n), "report.md lacks K = %d: %s %s", K, r, n);
        rows++;
    }
    CHECK_MSG(rows == 4, "the printed test table had %d rows", rows);
    free(md);
    free(o);
    snprintf(p, sizeof p, "%s/runs/logged/metrics.csv", work);
    CHECK_MSG(access(p, F_OK) == 0, "no %s", p);
    if (system("command -v gnuplot > /dev/null 2>&1") == 0) {
        snprintf(p, sizeof p, "%s/runs/logged/plots/validation.png", work);
        CHECK_MSG(access(p, F_OK) == 0, "no %s", p);
    } else {
        printf("gnuplot not found: the plots are not checked\n");
    }
    check_log("runs/logged", 2, 2);
    /* a window of the whole epoch equals the epoch's means, bit for bit */
    CHECK(cli_sh("run %s --epochs 2 --batch-size 64 --log-every 2 --out whole", tiny) == 0);
    check_window_is_epoch("whole");
    /* --quiet: the test table alone */
    CHECK(cli_sh("run %s --epochs 1 --batch-size 32 --log-every 1 --quiet --out quiet", tiny) == 0);
    o = out_text();
    CHECK_MSG(o && strstr(o, "Recall@K") && !strstr(o, "epoch") && !strstr(o, "debcm run:"), "--quiet: %s",
              o ? o : "");
    free(o);
    check_log("quiet", 1, 1);
    /* a terminal: one line redrawn in place (carriage return, erase to the end of the line) */
    int master;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tty", work);
    fflush(NULL);
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    CHECK(pid >= 0);
    if (pid == 0) {
        execl(debcm, debcm, "run", tiny, "--epochs", "2", "--batch-size", "16", "--out", dir, (char *)NULL);
        _exit(127);
    }
    char buf[1 << 16];
    size_t n = 0;
    for (;;) {
        ssize_t k = read(master, buf + n, sizeof buf - 1 - n);
        if (k > 0)
            n += (size_t)k;
        else if (k < 0 && errno == EINTR)
            continue;
        else
            break; /* EIO once the child has gone */
        if (n == sizeof buf - 1)
            n = 0; /* keep reading; the start is enough */
    }
    buf[n] = '\0';
    int st;
    waitpid(pid, &st, 0);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run on a terminal: status %d", st);
    CHECK_MSG(strstr(buf, "\r\033[K") && strstr(buf, "  batch "), "no live line on a terminal");
    CHECK_MSG(strstr(buf, "student epoch  2/2  loss"), "the epoch lines are still printed");
    close(master);
}

/* standard output a pipe whose reader has gone (`debcm run | head`, or Ctrl-C that stopped `| tee` too): the
 * writes fail instead of killing by SIGPIPE; a finished run exits 1 saying so, one stopped by SIGINT keeps 130
 * with its state saved */
static void test_closed_pipe(const char *tiny)
{
    for (int interrupt = 0; interrupt < 2; interrupt++) {
        char dir[4096], ck[4200], epochs[16];
        snprintf(dir, sizeof dir, "%s/pipe-%d", work, interrupt);
        snprintf(ck, sizeof ck, "%s/resume.safetensors", dir);
        snprintf(epochs, sizeof epochs, "%d", interrupt ? 200 : 1);
        int fd[2];
        CHECK(pipe(fd) == 0);
        close(fd[0]); /* nobody reads */
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            int e = open(err_txt, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (e < 0 || dup2(fd[1], 1) < 0 || dup2(e, 2) < 0)
                _exit(126);
            signal(SIGPIPE, SIG_DFL); /* as a shell leaves it */
            signal(SIGINT, SIG_DFL);
            execl(debcm, debcm, "run", tiny, "--epochs", epochs, "--batch-size", "16", "--log-every", "1", "--out",
                  dir, (char *)NULL);
            _exit(127);
        }
        close(fd[1]);
        if (interrupt) {
            for (int i = 0; i < 3000 && access(ck, F_OK) != 0; i++)
                usleep(10000);
            kill(pid, SIGINT);
        }
        int st;
        waitpid(pid, &st, 0);
        char *e = err_text();
        const int want = interrupt ? 130 : 1;
        CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == want, "closed stdout%s: %s %d: %s",
                  interrupt ? " and SIGINT" : "", WIFSIGNALED(st) ? "killed by signal" : "status",
                  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), e ? e : "");
        CHECK_MSG(e && strstr(e, "writing to standard output"), "closed stdout: %s", e ? e : "");
        if (interrupt)
            CHECK_MSG(e && strstr(e, "interrupted by SIGINT") && access(ck, F_OK) == 0, "%s", e ? e : "");
        free(e);
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_run_cli DEBCM WORKDIR\n");
        return 2;
    }
    debcm = argv[1];
    work = argv[2];
    cli_cwd = work; /* relative paths (my.json, cfg-run) are the work directory's */
    char cmd[8192], tiny[4096];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", work, work);
    if (system(cmd) != 0)
        return 1;
    snprintf(out_txt, sizeof out_txt, "%s/out.txt", work);
    snprintf(err_txt, sizeof err_txt, "%s/err.txt", work);
    snprintf(tiny, sizeof tiny, "%s/tiny", work);
    if (cli_sh("synth --scale tiny --out %s", tiny) != 0) {
        fprintf(stderr, "debcm synth failed\n");
        return 1;
    }
    test_config(tiny);
    test_progress(tiny);
    test_closed_pipe(tiny);
    return check_done();
}
