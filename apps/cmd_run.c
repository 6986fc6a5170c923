/* apps/cmd_run.c — the command lines of the training and evaluation commands: `debcm run` (teacher → student →
 * test report, SPEC §5), `debcm train-teacher`, `debcm train-student` (one phase each), their `--resume RUNDIR`,
 * and `debcm evaluate` (a saved checkpoint on the data). The options come from the one table of
 * engine/run_config.h (types, ranges, phases, help, which ones --resume may change); this file turns argv into a
 * run_job_args (one-line usage errors, exit 2) and hands it to apps/run_job.c, or evaluates a checkpoint itself. */
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/commands.h"
#include "apps/run_common.h"
#include "apps/run_job.h"
#include "engine/error.h"
#include "engine/train.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "models/checkpoint.h"

enum { CMD_RUN = 0, CMD_TEACHER, CMD_STUDENT, CMD_EVALUATE };
static const char *const cmd_names[] = {"run", "train-teacher", "train-student", "evaluate"};

/* the options outside the table; the table's option i has the id OPT_TABLE + i */
enum { OPT_PGC = 256, OPT_DATA, OPT_OUT, OPT_TEACHER, OPT_MODEL, OPT_JSON, OPT_RESUME, OPT_FORCE, OPT_CONFIG,
       OPT_PRINT_CONFIG, OPT_NAME, OPT_ALIAS_LR, OPT_HELP, OPT_TABLE = 512 };

/* the published scripts' flag names, accepted as aliases of ours (--l_r: the learning rate of the command's
 * phase, of both phases for run; --margin and --seed are the same names) */
static const struct { const char *alias, *option; } aliases[] = {
    {"batch_size", "batch-size"}, {"num_epoch", "epochs"},   {"dim_latent", "latent"},
    {"weight_decay", "weight-decay"}, {"dropout_rate", "dropout"}, {"num_neg_sample", "k"},
};
#define N_ALIASES ((int)(sizeof aliases / sizeof aliases[0]))

typedef struct {
    int cmd;
    run_job_args job;
    const char *model_ckpt; /* evaluate */
    int json;
    const char *config;     /* --config FILE.json */
    int explicit_lr[2];     /* --lr-teacher / --lr-student given: --l_r leaves that phase alone, in any order */
    int print_config;       /* --print-config */
} cli;

static const char *cname(const cli *o) { return cmd_names[o->cmd]; }

/* "--threads, --device, … and --quiet": the options of the command's phases that --resume may change */
static const char *resumable_list(int cmd)
{
    static char buf[512];
    const int phases = run_command_phases((run_command)cmd);
    size_t n = 0, count = 0, k = 0;
    for (const run_option *opt = run_options(); opt->name; opt++)
        count += opt->resumable && (opt->phases & phases);
    buf[0] = '\0';
    for (const run_option *opt = run_options(); opt->name && n < sizeof buf; opt++)
        if (opt->resumable && (opt->phases & phases)) {
            k++;
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s--%s", k == 1 ? "" : k == count ? " and " : ", ",
                                  opt->name);
        }
    return buf;
}

/* one help line: "  --name ARG" padded to column 28 (or alone on its line when longer), then the text wrapped at
 * 110 columns, with no space left at a line's end */
static void help_line(FILE *out, const char *opt, const char *text)
{
    if (strlen(opt) > 25)
        fprintf(out, "  %s\n%28s", opt, "");
    else
        fprintf(out, "  %-26s", opt);
    int col = 28;
    for (const char *p = text; *p;) {
        size_t w = strcspn(p, " ");
        if (col > 28 && col + 1 + (int)w > 110) {
            fprintf(out, "\n%28s", "");
            col = 28;
        } else if (col > 28) {
            fputc(' ', out);
            col++;
        }
        fprintf(out, "%.*s", (int)w, p);
        col += (int)w;
        p += w;
        p += strspn(p, " ");
    }
    fputc('\n', out);
}

static void usage(FILE *out, int cmd)
{
    if (cmd == CMD_EVALUATE) {
        fprintf(out,
                "usage: debcm evaluate --model CKPT ROOT [--json]\n"
                "       debcm evaluate --model CKPT --data ROOT [--json]\n"
                "       debcm evaluate --model CKPT --pgc DIR --data DIR [--json]\n"
                "\n"
                "Evaluate a checkpoint written by run, train-teacher or train-student on a dataset in the published\n"
                "layout (ROOT holds data_pgc/ and data_matching/; with --pgc, --data names data_matching/ itself).\n"
                "A student checkpoint: weighted Recall@K and NDCG@K (K = 10, 15, 20, 25; 100-negative protocol) on\n"
                "test and on val. A teacher checkpoint: its full-ranking Recall@K over all musics on data_pgc val.\n"
                "The kind is read from the checkpoint's metadata; shapes must match the data.\n"
                "\n"
                "options:\n"
                "  --model CKPT              the checkpoint (.safetensors)\n"
                "  --data ROOT|DIR           the dataset root (or data_matching/ with --pgc)\n"
                "  --pgc DIR                 data_pgc/\n"
                "  --json                    print one JSON object instead of tables\n"
                "  --threads N               CPU threads (OpenMP and OpenBLAS)\n"
                "  --device cpu|cuda         the backend (cpu)\n"
                "  --tf32                    cuda: let cuBLAS use TF32 tensor cores for the FP32 GEMMs\n"
                "  -h, --help                this help\n"
                "\n"
                "Exit status: 0 done, 1 failed (one line on stderr), 2 bad usage.\n");
        return;
    }
    static const char *const synopsis[] = {
        "usage: debcm run ROOT [options]\n       debcm run --pgc DIR --data DIR [options]\n"
        "       debcm run --resume RUNDIR [ROOT] [--threads N] [--device D] [--tf32] [--teacher-cache on|off]\n"
        "                 [--checkpoint-every N] [--nan-policy P] [--quiet]\n\n"
        "Train the teacher on data_pgc, then the student on data_matching distilled from the best teacher, then\n"
        "report the best student's test metrics. Writes into RUNDIR: config.json (the whole config), metrics.jsonl\n"
        "and metrics.csv (a line per --log-every batches and per epoch), teacher.safetensors and\n"
        "student.safetensors (best epochs), resume.safetensors (the state to continue from: --resume RUNDIR),\n"
        "report.json, plots/ and report.md.\n",
        "usage: debcm train-teacher ROOT [options]\n       debcm train-teacher --resume RUNDIR [options]\n\n"
        "Train the teacher only (SPEC §3) and write RUNDIR/teacher.safetensors (best epoch), config.json,\n"
        "metrics.jsonl and resume.safetensors.\n",
        "usage: debcm train-student ROOT --teacher CKPT [options]\n"
        "       debcm train-student --resume RUNDIR [options]\n\n"
        "Train the student only (SPEC §4) with the frozen teacher read from CKPT (refused when it is not a teacher\n"
        "or its shapes do not match the data) and write RUNDIR/student.safetensors (best epoch), config.json,\n"
        "metrics.jsonl and resume.safetensors, then print the test report (also in report.json).\n",
    };
    fprintf(out, "%s\noptions (defaults: the published ones):\n", synopsis[cmd]);
    help_line(out, "--pgc DIR, --data DIR", "the two directories instead of ROOT");
    help_line(out, "--out RUNDIR", "output directory (created; default runs/<timestamp>); refused when it holds "
                                   "a run already, unless --force");
    help_line(out, "--name NAME", "the run directory is runs/NAME");
    help_line(out, "--config FILE.json", "options from a JSON file (keys: the option names with '_' for '-', as "
                                         "config.json and --print-config write them); the command line overrides "
                                         "it");
    help_line(out, "--print-config", "print the resolved config as JSON and exit");
    if (cmd == CMD_STUDENT)
        help_line(out, "--teacher CKPT", "the teacher checkpoint (required)");
    const int phases = run_command_phases((run_command)cmd);
    for (const run_option *o = run_options(); o->name; o++) {
        if (!(o->phases & phases))
            continue;
        char opt[64];
        snprintf(opt, sizeof opt, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        help_line(out, opt, o->help);
    }
    char resume_help[1024];
    snprintf(resume_help, sizeof resume_help, "continue the run in RUNDIR where it stopped (killed, interrupted or "
             "stopped on a non-finite loss), with its own config; only %s and the data's place (ROOT, --pgc, "
             "--data) may be given again, for that process only (the run's config.json keeps its own values)",
             resumable_list(cmd));
    help_line(out, "--resume RUNDIR", resume_help);
    help_line(out, "--force", "replace a run already in RUNDIR (its files are removed first)");
    help_line(out, "-h, --help", "this help");
    fprintf(out, "\nThe published scripts' flags are accepted too: --l_r (the phase's learning rate; both for run),\n"
                 "--batch_size, --num_epoch, --dim_latent, --weight_decay, --dropout_rate, --num_neg_sample (--k),\n"
                 "--margin, --seed.\n");
    fprintf(out, "\nExit status: 0 done, 1 failed (one line on stderr), 2 bad usage, 130/143/129 stopped by\n"
                 "SIGINT/SIGTERM/SIGHUP after the step in flight, with the state saved (--resume RUNDIR continues).\n");
}

static int usage_error(const cli *o, const char *fmt, ...) DEBCM_PRINTF(2, 3);

/* A usage error: one line on stderr, exit 2. */
static int usage_error(const cli *o, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cmd_usage_error(cname(o), "%s", msg);
}

/* getopt_long's table: the fixed options, then every option of run_options() */
static struct option *long_options(void)
{
    static struct option opts[RUN_JOB_MAX_OPTIONS + 32];
    static const struct option fixed[] = {
        {"config", required_argument, NULL, OPT_CONFIG}, {"print-config", no_argument, NULL, OPT_PRINT_CONFIG},
        {"name", required_argument, NULL, OPT_NAME}, {"l_r", required_argument, NULL, OPT_ALIAS_LR},
        {"pgc", required_argument, NULL, OPT_PGC}, {"data", required_argument, NULL, OPT_DATA},
        {"out", required_argument, NULL, OPT_OUT}, {"teacher", required_argument, NULL, OPT_TEACHER},
        {"model", required_argument, NULL, OPT_MODEL}, {"json", no_argument, NULL, OPT_JSON},
        {"resume", required_argument, NULL, OPT_RESUME}, {"force", no_argument, NULL, OPT_FORCE},
        {"help", no_argument, NULL, OPT_HELP},
    };
    size_t n = 0;
    for (; n < sizeof fixed / sizeof fixed[0]; n++)
        opts[n] = fixed[n];
    int i = 0;
    for (const run_option *o = run_options(); o->name && i < RUN_JOB_MAX_OPTIONS; o++, i++)
        opts[n++] = (struct option){o->name, o->kind == RUN_OPT_FLAG ? no_argument : required_argument, NULL,
                                    OPT_TABLE + i};
    for (int a = 0; a < N_ALIASES; a++) {
        const run_option *t = run_option_find(aliases[a].option);
        opts[n++] = (struct option){aliases[a].alias, required_argument, NULL, OPT_TABLE + (int)(t - run_options())};
    }
    opts[n] = (struct option){NULL, 0, NULL, 0};
    return opts;
}

/* whether option c applies to the command (and to --resume, checked after parsing) */
static int applies(const cli *o, int c)
{
    if (o->cmd == CMD_EVALUATE) {
        if (c >= OPT_TABLE) {
            const char *n = run_options()[c - OPT_TABLE].name;
            return !strcmp(n, "threads") || !strcmp(n, "device") || !strcmp(n, "tf32");
        }
        return c == OPT_PGC || c == OPT_DATA || c == OPT_MODEL || c == OPT_JSON || c == OPT_HELP;
    }
    if (c >= OPT_TABLE)
        return (run_options()[c - OPT_TABLE].phases & run_command_phases((run_command)o->cmd)) != 0;
    if (c == OPT_MODEL || c == OPT_JSON)
        return 0;
    if (c == OPT_ALIAS_LR)
        return 1;
    if (c == OPT_TEACHER)
        return o->cmd == CMD_STUDENT;
    return 1;
}

/* --config FILE.json, read before the other options so that they override it: the defaults, then the file, then
 * the command line. Returns -1 to go on, else the exit status. */
static int read_config_option(cli *o, int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        const char *path = NULL;
        if (!strcmp(argv[i], "--config") && i + 1 < argc)
            path = argv[++i];
        else if (!strncmp(argv[i], "--config=", 9))
            path = argv[i] + 9;
        if (!path)
            continue;
        if (o->config)
            return usage_error(o, "--config given twice");
        if (!*path)
            return usage_error(o, "--config needs a file, found an empty string");
        o->config = path;
        char *text = NULL;
        size_t len = 0;
        int rc = run_read_text_file(path, &text, &len) || run_config_from_json(&o->job.cfg, text, len, path);
        free(text);
        if (rc)
            return cmd_report_error(cname(o));
    }
    return -1;
}

/* --l_r X: the learning rate of the command's phase (both phases for run) */
static int set_alias_lr(cli *o, const char *text)
{
    run_job_args *j = &o->job;
    const char *names[2] = {"lr-teacher", "lr-student"};
    for (int p = 0; p < 2; p++) {
        if ((p == 0 && o->cmd == CMD_STUDENT) || (p == 1 && o->cmd == CMD_TEACHER) || o->explicit_lr[p])
            continue;
        const run_option *opt = run_option_find(names[p]);
        if (run_option_set_text(&j->cfg, opt, text))
            return usage_error(o, "--l_r: %s", debcm_last_error());
        j->given[opt - run_options()] = 1;
    }
    return -1;
}

/* Parse and validate; returns -1 to go on, else the exit status. */
static int parse(cli *o, int argc, char **argv)
{
    const struct option *options = long_options();
    run_job_args *j = &o->job;
    run_config_default(&j->cfg, o->cmd == CMD_EVALUATE ? RUN_CMD_RUN : (run_command)o->cmd);
    int c, li = -1, given_phase_epochs[2] = {0, 0};
    if (o->cmd != CMD_EVALUATE) {
        int st = read_config_option(o, argc, argv);
        if (st >= 0)
            return st;
    }
    optind = 1;
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":h", options, &li)) != -1) {
        /* the option's name for messages: "--epochs" also when given as "--epochs=3" or "--epochs 3" */
        char optname[64];
        if (li >= 0)
            snprintf(optname, sizeof optname, "--%s", options[li].name);
        else
            snprintf(optname, sizeof optname, "%.60s", argv[optind - 1]);
        li = -1;
        if (c == 'h')
            c = OPT_HELP;
        if ((c >= OPT_PGC && c <= OPT_HELP) || c >= OPT_TABLE) {
            if (!applies(o, c))
                return usage_error(o, "option '%s' does not apply to %s", optname, cname(o));
        }
        if (c >= OPT_TABLE) {
            const run_option *opt = &run_options()[c - OPT_TABLE];
            /* --epochs is both phases' default; a phase's own --teacher-epochs / --student-epochs wins, in any order */
            run_config before = j->cfg;
            if (run_option_set_text(&j->cfg, opt, optarg ? optarg : ""))
                return usage_error(o, "%s", debcm_last_error());
            if (opt->off2 != RUN_OPT_NO_OFF) {
                if (given_phase_epochs[0])
                    j->cfg.teacher_epochs = before.teacher_epochs;
                if (given_phase_epochs[1])
                    j->cfg.student_epochs = before.student_epochs;
            } else if (!strcmp(opt->name, "teacher-epochs")) {
                given_phase_epochs[0] = 1;
            } else if (!strcmp(opt->name, "student-epochs")) {
                given_phase_epochs[1] = 1;
            } else if (!strcmp(opt->name, "lr-teacher") || !strcmp(opt->name, "lr-student")) {
                o->explicit_lr[opt->name[3] == 's'] = 1;
            }
            j->given[c - OPT_TABLE] = 1;
            continue;
        }
        switch (c) {
        case OPT_HELP: usage(stdout, o->cmd); return DEBCM_EXIT_OK;
        case OPT_PGC: j->pgc = optarg; break;
        case OPT_DATA: j->data = optarg; break;
        case OPT_OUT: j->out = optarg; break;
        case OPT_TEACHER: j->teacher_ckpt = optarg; break;
        case OPT_MODEL: o->model_ckpt = optarg; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_RESUME: j->resume = optarg; break;
        case OPT_FORCE: j->force = 1; break;
        case OPT_CONFIG: break; /* read first, by read_config_option */
        case OPT_PRINT_CONFIG: o->print_config = 1; break;
        case OPT_NAME:
            if (!*optarg || strchr(optarg, '/') || !strcmp(optarg, ".") || !strcmp(optarg, ".."))
                return usage_error(o, "--name needs a plain name (runs/NAME; --out sets the whole path), found '%s'",
                                   optarg);
            j->name = optarg;
            break;
        case OPT_ALIAS_LR: {
            int st = set_alias_lr(o, optarg);
            if (st >= 0)
                return st;
            break;
        }
        case ':': return usage_error(o, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(o, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        if (optind + 1 < argc)
            return usage_error(o, "unexpected argument '%s'", argv[optind + 1]);
        j->root = argv[optind];
        if (!*j->root)
            return usage_error(o, "ROOT is an empty string");
    }
    if (o->cmd == CMD_EVALUATE && !j->pgc && j->data && !j->root) { /* --data ROOT */
        j->root = j->data;
        j->data = NULL;
    }
    if (j->root && (j->pgc || j->data))
        return usage_error(o, "give either ROOT or --pgc DIR --data DIR, not both");
    if (!j->root && !j->pgc && !j->data && j->cfg.pgc[0] && j->cfg.data[0]) { /* the data of --config */
        j->pgc = j->cfg.pgc;
        j->data = j->cfg.data;
    }
    if (!j->teacher_ckpt && j->cfg.teacher[0])
        j->teacher_ckpt = j->cfg.teacher;
    if (j->out && j->name)
        return usage_error(o, "give either --out RUNDIR or --name NAME, not both");
    if (o->print_config && j->resume)
        return usage_error(o, "--print-config does not go with --resume (the run's config is RUNDIR/config.json)");
    if (o->config && j->resume)
        return usage_error(o, "--config does not go with --resume (the run keeps its own config)");
    if (o->print_config && !j->root && !j->pgc)
        return -1; /* the config without data paths */
    if ((j->pgc != NULL) != (j->data != NULL) || (!j->root && !j->pgc && !j->resume))
        return usage_error(o, "need ROOT, or both --pgc DIR and --data DIR");
    if ((j->pgc && !*j->pgc) || (j->data && !*j->data))
        return usage_error(o, "--pgc and --data need a directory, found an empty string");
    if (j->resume) {
        if (!*j->resume)
            return usage_error(o, "--resume needs a run directory, found an empty string");
        if (j->out || j->name || j->teacher_ckpt || j->force)
            return usage_error(o, "--resume RUNDIR continues the run in RUNDIR: %s does not go with it",
                               j->out ? "--out" : j->name ? "--name" : j->teacher_ckpt ? "--teacher" : "--force");
        int i = 0;
        for (const run_option *opt = run_options(); opt->name; opt++, i++)
            if (j->given[i] && !opt->resumable)
                return usage_error(o, "option '--%s' cannot change on --resume (the run's config.json fixes it; "
                                      "%s can)", opt->name, resumable_list(o->cmd));
    }
    if (o->cmd == CMD_STUDENT && !j->teacher_ckpt && !j->resume)
        return usage_error(o, "--teacher CKPT is required");
    if (o->cmd == CMD_EVALUATE && !o->model_ckpt)
        return usage_error(o, "--model CKPT is required");
    if (j->out && !*j->out)
        return usage_error(o, "--out needs a directory, found an empty string");
    if (j->cfg.tf32 && j->cfg.device != RUN_DEVICE_CUDA)
        return usage_error(o, "--tf32 applies to --device cuda only");
    return -1;
}

/* ---- debcm evaluate ------------------------------------------------------------------------------------------ */

static int cmd_evaluate_main(cli *o)
{
    const char *cmd = cname(o);
    run_job_args *j = &o->job;
    int student;
    int64_t L;
    if (checkpoint_peek(o->model_ckpt, &student, &L))
        return cmd_report_error(cmd);
    debcm_dataset ds;
    train_data td;
    debcm_net net;
    model_workspace ws;
    memset(&ds, 0, sizeof ds);
    memset(&td, 0, sizeof td);
    memset(&net, 0, sizeof net);
    memset(&ws, 0, sizeof ws);
    int status = DEBCM_EXIT_FAIL;
    char pgc[PATH_MAX], data[PATH_MAX];
    const debcm_ops *ops = run_select_backend(j->cfg.device == RUN_DEVICE_CUDA, (int)j->cfg.tf32);
    if (!ops || run_resolve_dirs(j->root, j->pgc, j->data, pgc, data) ||
        run_load_data(pgc, data, &ds, stderr, cmd) || train_data_build(&td, &ds, L))
        goto done;
    model_dims dims = train_dims(&td, student);
    if (net_create(&net, ops, &dims, student) || checkpoint_load(&net, o->model_ckpt) ||
        model_workspace_create(&ws, ops, &dims, 1024))
        goto done;
    json_t *root = json_object();
    if (!root) {
        debcm_fail("out of memory");
        goto done;
    }
    json_object_set_new(root, "model", json_string(student ? "student" : "teacher"));
    if (student) {
        model_eval_result test, val;
        run_set_K(&test);
        run_set_K(&val);
        if (model_eval_negatives(&net, &ws, ds.ugc_video.data, ds.ugc_video.rows, td.ugc_music, ds.ugc_vggish.rows,
                                 ds.prior_mean, &ds.test, &test) ||
            model_eval_negatives(&net, &ws, ds.ugc_video.data, ds.ugc_video.rows, td.ugc_music, ds.ugc_vggish.rows,
                                 ds.prior_mean, &ds.val, &val)) {
            json_decref(root);
            goto done;
        }
        if (o->json) {
            json_object_set_new(root, "test", run_metrics_json(&test));
            json_object_set_new(root, "val", run_metrics_json(&val));
        } else {
            printf("student %s\n", o->model_ckpt);
            run_print_table("test", &test);
            run_print_table("val", &val);
        }
    } else {
        model_eval_result r;
        run_set_K(&r);
        if (model_eval_full_rank(&net, &ws, ds.pgc_video.data, ds.pgc_video.rows, td.pgc_music, ds.pgc_vggish.rows,
                                 &ds.pgc_val, &r)) {
            json_decref(root);
            goto done;
        }
        if (o->json) {
            json_t *v = json_object();
            char key[32];
            for (int i = 0; i < r.nK; i++) {
                snprintf(key, sizeof key, "recall@%d", r.K[i]);
                json_object_set_new(v, key, json_real(r.recall[i]));
            }
            json_object_set_new(root, "pgc_val", v);
        } else {
            printf("teacher %s: full ranking over %lld musics, data_pgc val (%lld pairs)\n   K   Recall@K\n",
                   o->model_ckpt, (long long)ds.pgc_vggish.rows, (long long)r.rows);
            for (int i = 0; i < r.nK; i++)
                printf("  %2d   %8.4f\n", r.K[i], r.recall[i]);
        }
    }
    if (o->json) {
        char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
        if (text)
            puts(text);
        free(text);
    }
    json_decref(root);
    status = DEBCM_EXIT_OK;
done:
    if (status != DEBCM_EXIT_OK)
        cmd_report_error(cmd);
    model_workspace_free(&ws);
    net_free(&net);
    train_data_free(&td);
    dataset_free(&ds);
    return status;
}

/* --print-config: the resolved config (defaults, --config, the command line; the data as absolute paths) as
 * config.json would hold it, on stdout */
static int print_config(cli *o)
{
    run_job_args *j = &o->job;
    char pgc[PATH_MAX], data[PATH_MAX];
    if (j->root || j->pgc) {
        if (run_resolve_dirs(j->root, j->pgc, j->data, pgc, data))
            return cmd_report_error(cname(o));
        run_absolute_path(j->cfg.pgc, pgc);
        run_absolute_path(j->cfg.data, data);
    }
    if (j->teacher_ckpt)
        run_absolute_path(j->cfg.teacher, j->teacher_ckpt);
    char *text = run_config_to_json(&j->cfg, 1);
    if (!text)
        return cmd_report_error(cname(o));
    fputs(text, stdout);
    free(text);
    return DEBCM_EXIT_OK;
}

static int dispatch(int cmd, int argc, char **argv)
{
    cli o;
    memset(&o, 0, sizeof o);
    o.cmd = cmd;
    if (atomic_file_install_signal_cleanup())
        return cmd_report_error(cname(&o));
    int st = parse(&o, argc, argv);
    if (st >= 0)
        return st;
    if (o.print_config)
        return print_config(&o);
    run_set_threads((int)o.job.cfg.threads);
    return cmd == CMD_EVALUATE ? cmd_evaluate_main(&o) : run_job_main(&o.job);
}

int cmd_run(int argc, char **argv) { return dispatch(CMD_RUN, argc, argv); }
int cmd_train_teacher(int argc, char **argv) { return dispatch(CMD_TEACHER, argc, argv); }
int cmd_train_student(int argc, char **argv) { return dispatch(CMD_STUDENT, argc, argv); }
int cmd_evaluate(int argc, char **argv) { return dispatch(CMD_EVALUATE, argc, argv); }
