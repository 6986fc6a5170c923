/* apps/cmd_run.c — the training and evaluation commands: `debcm run` (teacher → student → test report, SPEC §5),
 * `debcm train-teacher`, `debcm train-student` (one phase each) and `debcm evaluate` (a saved checkpoint on the
 * data). Options are parsed and validated here (one-line usage errors, exit 2); the dataset is loaded with
 * io/dataset.h, the loop is engine/train.c, checkpoints are models/checkpoint.c. Outputs of a run go to RUNDIR
 * (--out, default runs/<timestamp>): teacher.safetensors and student.safetensors (the best epochs, written
 * atomically as soon as an epoch improves) and report.json (jansson, atomic). RUNDIR is created and probed for
 * writing before any training; a run refused there leaves nothing behind. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>

#include "apps/commands.h"
#include "engine/error.h"
#include "engine/train.h"
#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/json_file.h"
#include "models/checkpoint.h"
#ifdef DEBCM_WITH_CUDA
#include "kernels/cuda_ops.h"
#endif

void openblas_set_num_threads(int n); /* OpenBLAS's own; not in every cblas.h */

enum { CMD_RUN = 0, CMD_TEACHER, CMD_STUDENT, CMD_EVALUATE };
static const char *const cmd_names[] = {"run", "train-teacher", "train-student", "evaluate"};

enum {
    OPT_PGC = 256, OPT_DATA, OPT_OUT, OPT_TEACHER, OPT_MODEL, OPT_EPOCHS, OPT_TEPOCHS, OPT_SEPOCHS, OPT_BATCH,
    OPT_SEED, OPT_THREADS, OPT_DEVICE, OPT_LRT, OPT_LRS, OPT_WD, OPT_LATENT, OPT_DROPOUT, OPT_MARGIN, OPT_K,
    OPT_ALPHA, OPT_MATCHING, OPT_TEMP, OPT_DISTILL, OPT_TCACHE, OPT_TF32, OPT_JSON, OPT_HELP, OPT_END
};

typedef struct {
    int cmd;
    const char *root, *pgc, *data, *out, *teacher_ckpt, *model_ckpt;
    model_config tcfg, scfg; /* teacher, student */
    uint64_t seed;
    int threads, json;
    int teacher_recompute; /* --teacher-cache off */
    int device_cuda, tf32;  /* --device cuda, --tf32 */
    char out_buf[64];
} run_opts;

static const char *cname(const run_opts *o) { return cmd_names[o->cmd]; }

static void usage(FILE *out, int cmd)
{
    if (cmd == CMD_EVALUATE) {
        fprintf(out,
                "usage: debcm evaluate --model CKPT ROOT\n"
                "       debcm evaluate --model CKPT --data ROOT\n"
                "       debcm evaluate --model CKPT --pgc DIR --data DIR\n"
                "\n"
                "Evaluate a checkpoint written by run, train-teacher or train-student on a dataset in the published\n"
                "layout (ROOT holds data_pgc/ and data_matching/; with --pgc, --data names data_matching/ itself).\n"
                "A student checkpoint: weighted Recall@K and NDCG@K (K = 10, 15, 20, 25; 100-negative protocol) on\n"
                "test and on val. A teacher checkpoint: its full-ranking Recall@K over all musics on data_pgc val.\n"
                "The kind is read from the checkpoint's metadata; shapes must match the data.\n"
                "\n"
                "options:\n"
                "  --model CKPT        the checkpoint (.safetensors)\n"
                "  --data ROOT|DIR     the dataset root (or data_matching/ with --pgc)\n"
                "  --pgc DIR           data_pgc/\n"
                "  --json              print one JSON object instead of tables\n"
                "  --threads N         CPU threads (OpenMP and OpenBLAS)\n"
                "  --device cpu|cuda   the backend (cpu)\n"
                "  --tf32              cuda: let cuBLAS use TF32 tensor cores for the FP32 GEMMs\n"
                "  -h, --help          this help\n"
                "\n"
                "Exit status: 0 done, 1 failed (one line on stderr), 2 bad usage.\n");
        return;
    }
    static const char *const synopsis[] = {
        "usage: debcm run ROOT [options]\n       debcm run --pgc DIR --data DIR [options]\n\n"
        "Train the teacher on data_pgc, then the student on data_matching distilled from the best teacher, then\n"
        "report the best student's test metrics. Writes RUNDIR/teacher.safetensors, RUNDIR/student.safetensors\n"
        "(best epochs) and RUNDIR/report.json.\n",
        "usage: debcm train-teacher ROOT [options]\n\n"
        "Train the teacher only (SPEC §3) and write RUNDIR/teacher.safetensors (best epoch).\n",
        "usage: debcm train-student ROOT --teacher CKPT [options]\n\n"
        "Train the student only (SPEC §4) with the frozen teacher read from CKPT (refused when it is not a teacher\n"
        "or its shapes do not match the data) and write RUNDIR/student.safetensors (best epoch), then print the\n"
        "test report.\n",
        "",
    };
    fprintf(out, "%s", synopsis[cmd]);
    fprintf(out,
            "\n"
            "options (defaults: the published ones):\n"
            "  --pgc DIR, --data DIR     the two directories instead of ROOT\n"
            "  --out RUNDIR              output directory (created; default runs/<timestamp>)\n");
    if (cmd == CMD_STUDENT)
        fprintf(out, "  --teacher CKPT            the teacher checkpoint (required)\n");
    /* each line once, shown to the commands it applies to (phases: 1 teacher, 2 student, 3 both) */
    static const struct {
        int phases; /* 1: train-teacher, 2: train-student, 3: both (and run) */
        const char *text;
    } lines[] = {
        {3, "  --epochs N                epochs of the phase(s) (50); 0 keeps the initial model (a baseline)\n"},
        {1, "  --teacher-epochs N        epochs of the teacher phase\n"},
        {2, "  --student-epochs N        epochs of the student phase\n"},
        {3, "  --batch-size N            rows per batch, at least 2 (1024)\n"},
        {3, "  --seed N                  seed of initialisation, shuffles, dropout and noise (1)\n"},
        {3, "  --threads N               CPU threads (OpenMP and OpenBLAS; default: theirs)\n"},
        {3, "  --device cpu|cuda         the backend (cpu; cuda: not yet run on a GPU, see README)\n"},
        {3, "  --tf32                    cuda: let cuBLAS use TF32 tensor cores for the FP32 GEMMs\n"},
        {1, "  --lr-teacher X            teacher learning rate (1e-4)\n"},
        {2, "  --lr-student X            student learning rate (1e-3)\n"},
        {3, "  --weight-decay X          L2 weight decay (1e-3)\n"},
        {3, "  --latent N                latent size L (128)\n"},
        {3, "  --dropout P               dropout probability in [0, 1) (0.2)\n"},
        {3, "  --margin X                matching margin (0.05)\n"},
        {3, "  --k N                     negatives per row in the matching term, capped at B-1 (40)\n"},
        {2, "  --alpha X                 distillation weight (5e-5)\n"},
        {3, "  --matching published|hinge|softmax   matching term (published: faithful, SPEC §6)\n"},
        {3, "  --temperature X           softmax matching temperature (0.1)\n"},
        {2, "  --distill published|kl    distillation term (published: faithful KLG, SPEC §6)\n"},
        {2, "  --teacher-cache on|off    on: the frozen teacher's posteriors of every student training row are\n"
            "                            computed once (the same values, less work); off: every step (on)\n"},
    };
    int phases = cmd == CMD_TEACHER ? 1 : cmd == CMD_STUDENT ? 2 : 3;
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        if (lines[i].phases & phases)
            fputs(lines[i].text, out);
    fprintf(out, "  -h, --help                this help\n"
                 "\n"
                 "Exit status: 0 done, 1 failed (one line on stderr), 2 bad usage.\n");
}

static int usage_error(const run_opts *o, const char *fmt, ...) DEBCM_PRINTF(2, 3);

/* A usage error: one line on stderr, exit 2. */
static int usage_error(const run_opts *o, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "debcm %s: ", cname(o));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see debcm %s --help)\n", cname(o));
    return DEBCM_EXIT_USAGE;
}

static int parse_int(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* a finite number with lo <= v (lo_open: lo < v) and v <= hi (hi_open: v < hi) */
static int parse_num(const char *s, double lo, int lo_open, double hi, int hi_open, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(v) || v < lo || (lo_open && v == lo) || v > hi || (hi_open && v == hi))
        return -1;
    *out = v;
    return 0;
}

/* Parse and validate; returns -1 to go on, else the exit status. */
static int parse(run_opts *o, int argc, char **argv)
{
    static const struct option options[] = {
        {"pgc", required_argument, NULL, OPT_PGC}, {"data", required_argument, NULL, OPT_DATA},
        {"out", required_argument, NULL, OPT_OUT}, {"teacher", required_argument, NULL, OPT_TEACHER},
        {"model", required_argument, NULL, OPT_MODEL}, {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"teacher-epochs", required_argument, NULL, OPT_TEPOCHS},
        {"student-epochs", required_argument, NULL, OPT_SEPOCHS},
        {"batch-size", required_argument, NULL, OPT_BATCH}, {"seed", required_argument, NULL, OPT_SEED},
        {"threads", required_argument, NULL, OPT_THREADS}, {"device", required_argument, NULL, OPT_DEVICE},
        {"lr-teacher", required_argument, NULL, OPT_LRT}, {"lr-student", required_argument, NULL, OPT_LRS},
        {"weight-decay", required_argument, NULL, OPT_WD}, {"latent", required_argument, NULL, OPT_LATENT},
        {"dropout", required_argument, NULL, OPT_DROPOUT}, {"margin", required_argument, NULL, OPT_MARGIN},
        {"k", required_argument, NULL, OPT_K}, {"alpha", required_argument, NULL, OPT_ALPHA},
        {"matching", required_argument, NULL, OPT_MATCHING}, {"temperature", required_argument, NULL, OPT_TEMP},
        {"distill", required_argument, NULL, OPT_DISTILL}, {"json", no_argument, NULL, OPT_JSON},
        {"teacher-cache", required_argument, NULL, OPT_TCACHE}, {"tf32", no_argument, NULL, OPT_TF32},
        {"help", no_argument, NULL, OPT_HELP}, {NULL, 0, NULL, 0},
    };
    /* which options each command takes */
    static const int eval_ok[] = {OPT_PGC, OPT_DATA, OPT_MODEL, OPT_THREADS, OPT_DEVICE, OPT_TF32, OPT_JSON,
                                  OPT_HELP};
    int c;
    long long iv;
    double dv;
    int64_t t_epochs = -1, s_epochs = -1;
    model_config_default(&o->tcfg, 0);
    model_config_default(&o->scfg, 1);
    o->seed = 1;
    optind = 1;
    opterr = 0; /* our own one-line messages */
    int li = -1;
    while ((c = getopt_long(argc, argv, ":h", options, &li)) != -1) {
        /* the option's name for messages: "--epochs" also when given as "--epochs=3" or "--epochs 3" */
        char optname[64];
        if (li >= 0)
            snprintf(optname, sizeof optname, "--%s", options[li].name);
        else
            snprintf(optname, sizeof optname, "%.60s", argv[optind - 1]);
        const char *opt = optname;
        li = -1;
        if (c == 'h')
            c = OPT_HELP;
        if (c >= OPT_PGC && c < OPT_END) {
            int ok = 1;
            if (o->cmd == CMD_EVALUATE) {
                ok = 0;
                for (size_t i = 0; i < sizeof eval_ok / sizeof eval_ok[0]; i++)
                    ok |= eval_ok[i] == c;
            } else if (c == OPT_MODEL || c == OPT_JSON || (c == OPT_TEACHER && o->cmd != CMD_STUDENT)) {
                ok = 0;
            } else if (o->cmd == CMD_TEACHER) { /* the student phase's own options */
                ok = c != OPT_SEPOCHS && c != OPT_LRS && c != OPT_ALPHA && c != OPT_DISTILL && c != OPT_TCACHE;
            } else if (o->cmd == CMD_STUDENT) { /* the teacher comes trained from --teacher */
                ok = c != OPT_TEPOCHS && c != OPT_LRT;
            }
            if (!ok)
                return usage_error(o, "option '%s' does not apply to %s", opt, cname(o));
        }
        switch (c) {
        case OPT_HELP: usage(stdout, o->cmd); return DEBCM_EXIT_OK;
        case OPT_PGC: o->pgc = optarg; break;
        case OPT_DATA: o->data = optarg; break;
        case OPT_OUT: o->out = optarg; break;
        case OPT_TEACHER: o->teacher_ckpt = optarg; break;
        case OPT_MODEL: o->model_ckpt = optarg; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_EPOCHS:
        case OPT_TEPOCHS:
        case OPT_SEPOCHS:
            if (parse_int(optarg, 0, 1000000, &iv))
                return usage_error(o, "%s expects an integer in [0, 1000000], found '%s'", opt, optarg);
            if (c != OPT_SEPOCHS)
                t_epochs = iv;
            if (c != OPT_TEPOCHS)
                s_epochs = iv;
            break;
        case OPT_BATCH:
            if (parse_int(optarg, 2, 1 << 20, &iv))
                return usage_error(o, "%s expects an integer in [2, 1048576], found '%s'", opt, optarg);
            o->tcfg.batch = o->scfg.batch = iv;
            break;
        case OPT_SEED:
            if (parse_int(optarg, 0, LLONG_MAX, &iv))
                return usage_error(o, "%s expects a non-negative integer, found '%s'", opt, optarg);
            o->seed = (uint64_t)iv;
            break;
        case OPT_THREADS:
            if (parse_int(optarg, 1, 4096, &iv))
                return usage_error(o, "%s expects an integer in [1, 4096], found '%s'", opt, optarg);
            o->threads = (int)iv;
            break;
        case OPT_DEVICE:
            if (strcmp(optarg, "cpu") && strcmp(optarg, "cuda"))
                return usage_error(o, "%s expects cpu or cuda, found '%s'", opt, optarg);
            o->device_cuda = !strcmp(optarg, "cuda");
            break;
        case OPT_TF32: o->tf32 = 1; break;
        case OPT_LRT:
        case OPT_LRS:
            if (parse_num(optarg, 0, 1, 10, 0, &dv))
                return usage_error(o, "%s expects a number in (0, 10], found '%s'", opt, optarg);
            (c == OPT_LRT ? &o->tcfg : &o->scfg)->lr = dv;
            break;
        case OPT_WD:
            if (parse_num(optarg, 0, 0, 10, 0, &dv))
                return usage_error(o, "%s expects a number in [0, 10], found '%s'", opt, optarg);
            o->tcfg.weight_decay = o->scfg.weight_decay = dv;
            break;
        case OPT_LATENT:
            if (parse_int(optarg, 1, 65536, &iv))
                return usage_error(o, "%s expects an integer in [1, 65536], found '%s'", opt, optarg);
            o->tcfg.L = o->scfg.L = iv;
            break;
        case OPT_DROPOUT:
            if (parse_num(optarg, 0, 0, 1, 1, &dv))
                return usage_error(o, "%s expects a probability in [0, 1), found '%s'", opt, optarg);
            o->tcfg.dropout = o->scfg.dropout = (float)dv;
            break;
        case OPT_MARGIN:
            if (parse_num(optarg, -100, 0, 100, 0, &dv))
                return usage_error(o, "%s expects a number in [-100, 100], found '%s'", opt, optarg);
            o->tcfg.match.margin = o->scfg.match.margin = (float)dv;
            break;
        case OPT_K:
            if (parse_int(optarg, 1, 1 << 20, &iv))
                return usage_error(o, "%s expects an integer in [1, 1048576], found '%s'", opt, optarg);
            o->tcfg.match.k = o->scfg.match.k = iv;
            break;
        case OPT_ALPHA:
            if (parse_num(optarg, 0, 0, 1e6, 0, &dv))
                return usage_error(o, "%s expects a number in [0, 1e6], found '%s'", opt, optarg);
            o->scfg.alpha = (float)dv;
            break;
        case OPT_TEMP:
            if (parse_num(optarg, 1e-6, 0, 1e6, 0, &dv))
                return usage_error(o, "%s expects a number in [1e-6, 1e6], found '%s'", opt, optarg);
            o->tcfg.match.tau = o->scfg.match.tau = (float)dv;
            break;
        case OPT_MATCHING: {
            match_variant v;
            if (!strcmp(optarg, "published")) v = MATCH_PUBLISHED;
            else if (!strcmp(optarg, "hinge")) v = MATCH_HINGE;
            else if (!strcmp(optarg, "softmax")) v = MATCH_SOFTMAX;
            else return usage_error(o, "%s expects published, hinge or softmax, found '%s'", opt, optarg);
            o->tcfg.match.variant = o->scfg.match.variant = v;
            break;
        }
        case OPT_DISTILL:
            if (strcmp(optarg, "published") && strcmp(optarg, "kl"))
                return usage_error(o, "%s expects published or kl, found '%s'", opt, optarg);
            o->scfg.distill = o->tcfg.distill = !strcmp(optarg, "kl") ? DISTILL_KL : DISTILL_PUBLISHED;
            break;
        case OPT_TCACHE:
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                return usage_error(o, "%s expects on or off, found '%s'", opt, optarg);
            o->teacher_recompute = !strcmp(optarg, "off");
            break;
        case ':': return usage_error(o, "option '%s' needs a value", argv[optind - 1]);
        default: return usage_error(o, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (t_epochs >= 0)
        o->tcfg.epochs = t_epochs;
    if (s_epochs >= 0)
        o->scfg.epochs = s_epochs;
    if (optind < argc) {
        if (optind + 1 < argc)
            return usage_error(o, "unexpected argument '%s'", argv[optind + 1]);
        o->root = argv[optind];
        if (!*o->root)
            return usage_error(o, "ROOT is an empty string");
    }
    if (o->cmd == CMD_EVALUATE && !o->pgc && o->data && !o->root) { /* --data ROOT */
        o->root = o->data;
        o->data = NULL;
    }
    if (o->root && (o->pgc || o->data))
        return usage_error(o, "give either ROOT or --pgc DIR --data DIR, not both");
    if (!o->root && (!o->pgc || !o->data))
        return usage_error(o, "need ROOT, or both --pgc DIR and --data DIR");
    if ((o->pgc && !*o->pgc) || (o->data && !*o->data))
        return usage_error(o, "--pgc and --data need a directory, found an empty string");
    if (o->cmd == CMD_STUDENT && !o->teacher_ckpt)
        return usage_error(o, "--teacher CKPT is required");
    if (o->cmd == CMD_EVALUATE && !o->model_ckpt)
        return usage_error(o, "--model CKPT is required");
    if (o->out && !*o->out)
        return usage_error(o, "--out needs a directory, found an empty string");
    if (o->tf32 && !o->device_cuda)
        return usage_error(o, "--tf32 applies to --device cuda only");
    return -1;
}

/* ---- the backend ------------------------------------------------------------------------------------------- */

/* The ops table of --device: the CPU's, or the CUDA one (NULL with a message when this build has none or no GPU
 * is usable). */
static const debcm_ops *select_backend(const run_opts *o)
{
    if (!o->device_cuda)
        return debcm_ops_cpu();
#ifdef DEBCM_WITH_CUDA
    const debcm_ops *ops = debcm_ops_cuda();
    if (!ops) {
        debcm_error_prefix("--device cuda");
        return NULL;
    }
    if (cuda_set_tf32(o->tf32)) {
        debcm_error_prefix("--tf32");
        return NULL;
    }
    return ops;
#else
    debcm_fail("--device cuda: this build has no CUDA backend (nvcc was not found at configure time, or "
               "-DDEBCM_CUDA=OFF); use --device cpu");
    return NULL;
#endif
}

/* ---- the output directory ------------------------------------------------------------------------------------ */

#define MAX_CREATED 64
typedef struct {
    char created[MAX_CREATED][PATH_MAX]; /* directories this run made, outermost first */
    int n;
} out_dirs;

static void out_dirs_undo(out_dirs *d)
{
    while (d->n > 0)
        rmdir(d->created[--d->n]);
}

/* mkdir -p dir (recording what was made), then probe that a file can be written there */
static int prepare_out(out_dirs *d, const char *dir)
{
    char buf[PATH_MAX];
    d->n = 0;
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
                    out_dirs_undo(d);
                    return debcm_fail("--out %s: cannot create directory %s: %s", dir, buf, strerror(e));
                }
                if (d->n < MAX_CREATED)
                    strcpy(d->created[d->n++], buf);
            } else if (!S_ISDIR(st.st_mode)) {
                out_dirs_undo(d);
                return debcm_fail("--out %s: %s exists and is not a directory", dir, buf);
            }
            *p = saved;
            if (saved == '\0')
                break;
        }
    }
    char probe[PATH_MAX];
    snprintf(probe, sizeof probe, "%s/report.json", dir);
    atomic_file a;
    if (atomic_file_begin(&a, probe)) {
        out_dirs_undo(d);
        return debcm_error_prefix("--out %s: not writable", dir);
    }
    atomic_file_abort(&a);
    return 0;
}

static int out_path(char *buf, size_t n, const char *dir, const char *file)
{
    if ((size_t)snprintf(buf, n, "%s/%s", dir, file) >= n)
        return debcm_fail_path_too_long(dir, n - strlen(file) - 1);
    return 0;
}

/* ---- reporting ----------------------------------------------------------------------------------------------- */

static const int32_t report_K[4] = {10, 15, 20, 25};

static void set_K(model_eval_result *r)
{
    memset(r, 0, sizeof *r);
    r->nK = 4;
    memcpy(r->K, report_K, sizeof report_K);
}

static void print_table(const char *title, const model_eval_result *r)
{
    printf("%s (weighted, %lld rows; %lld with a tie at the positive", title, (long long)r->rows,
           (long long)r->tie_rows);
    if (r->rows_positive_in_negatives)
        printf("; warning: %lld list their positive among their negatives", (long long)r->rows_positive_in_negatives);
    printf(")\n   K   Recall@K   NDCG@K\n");
    for (int i = 0; i < r->nK; i++)
        printf("  %2d   %8.4f  %8.4f\n", r->K[i], r->recall[i], r->ndcg[i]);
}

static json_t *metrics_json(const model_eval_result *r)
{
    json_t *j = json_object();
    char key[32];
    for (int i = 0; j && i < r->nK; i++) {
        snprintf(key, sizeof key, "recall@%d", r->K[i]);
        json_object_set_new(j, key, json_real(r->recall[i]));
        snprintf(key, sizeof key, "ndcg@%d", r->K[i]);
        json_object_set_new(j, key, json_real(r->ndcg[i]));
    }
    return j;
}

static const char *match_name(match_variant v)
{
    return v == MATCH_HINGE ? "hinge" : v == MATCH_SOFTMAX ? "softmax" : "published";
}

static const char *distill_name(distill_variant v) { return v == DISTILL_KL ? "kl" : "published"; }

/* the variants as checkpoint metadata (strings) */
typedef struct {
    char buf[8][48];
    checkpoint_meta meta[8];
    int n;
} variant_meta;

static void make_variant_meta(variant_meta *v, const run_opts *o)
{
    const model_config *s = &o->scfg;
    const char *keys[] = {"matching", "distill", "margin", "k", "temperature", "alpha", "seed"};
    v->n = 7;
    snprintf(v->buf[0], sizeof v->buf[0], "%s", match_name(s->match.variant));
    snprintf(v->buf[1], sizeof v->buf[1], "%s", distill_name(s->distill));
    snprintf(v->buf[2], sizeof v->buf[2], "%.9g", s->match.margin);
    snprintf(v->buf[3], sizeof v->buf[3], "%lld", (long long)s->match.k);
    snprintf(v->buf[4], sizeof v->buf[4], "%.9g", s->match.tau);
    snprintf(v->buf[5], sizeof v->buf[5], "%.9g", s->alpha);
    snprintf(v->buf[6], sizeof v->buf[6], "%llu", (unsigned long long)o->seed);
    for (int i = 0; i < v->n; i++)
        v->meta[i] = (checkpoint_meta){keys[i], v->buf[i]};
}

/* a float option as the user wrote it (0.05, not 0.05000000074505806) */
static double tidy(float x) { char b[32]; snprintf(b, sizeof b, "%.7g", (double)x); return strtod(b, NULL); }

static json_t *variants_json(const run_opts *o)
{
    const model_config *s = &o->scfg, *t = &o->tcfg;
    return json_pack("{s:s, s:s, s:f, s:I, s:f, s:f, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:I}", "matching",
                     match_name(s->match.variant), "distill", distill_name(s->distill), "margin",
                     tidy(s->match.margin), "k", (json_int_t)s->match.k, "temperature", tidy(s->match.tau),
                     "alpha", tidy(s->alpha), "seed", (json_int_t)o->seed, "batch_size", (json_int_t)s->batch,
                     "teacher_epochs", (json_int_t)t->epochs, "student_epochs", (json_int_t)s->epochs, "lr_teacher",
                     t->lr, "lr_student", s->lr, "weight_decay", s->weight_decay, "dropout", tidy(s->dropout),
                     "latent", (json_int_t)s->L);
}

/* ---- the commands -------------------------------------------------------------------------------------------- */

static int resolve_dirs(const run_opts *o, char *pgc, char *data)
{
    if (!o->root) {
        snprintf(pgc, PATH_MAX, "%s", o->pgc);
        snprintf(data, PATH_MAX, "%s", o->data);
        return 0;
    }
    size_t len = strlen(o->root);
    const char *sep = o->root[len - 1] == '/' ? "" : "/";
    if ((size_t)snprintf(pgc, PATH_MAX, "%s%sdata_pgc", o->root, sep) >= PATH_MAX ||
        (size_t)snprintf(data, PATH_MAX, "%s%sdata_matching", o->root, sep) >= PATH_MAX)
        return debcm_fail_path_too_long(o->root, PATH_MAX - 20);
    struct stat st;
    if (stat(o->root, &st) != 0 || !S_ISDIR(st.st_mode))
        return debcm_fail("%s: expected a directory holding data_pgc/ and data_matching/, found %s", o->root,
                          errno == ENOENT ? "nothing there" : "something that is not a directory");
    return 0;
}

static int load_data(const run_opts *o, debcm_dataset *ds)
{
    char pgc[PATH_MAX], data[PATH_MAX];
    if (resolve_dirs(o, pgc, data))
        return -1;
    if (dataset_load(ds, pgc, data) == 0)
        return 0;
    for (int i = 0; i < ds->problems.count; i++)
        if (ds->problems.items[i].severity == PROBLEM_ERROR) {
            if (ds->problems.errors > 1)
                return debcm_fail("%s (%d errors in all; debcm inspect lists them)", ds->problems.items[i].message,
                                  ds->problems.errors);
            return debcm_fail("%s", ds->problems.items[i].message);
        }
    return -1; /* the loader's own message */
}

static void set_threads(int n)
{
    if (n <= 0)
        return;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

static int cmd_evaluate_main(run_opts *o)
{
    int student;
    int64_t L;
    if (checkpoint_peek(o->model_ckpt, &student, &L))
        return cmd_report_error(cname(o));
    debcm_dataset ds;
    train_data td;
    debcm_net net;
    memset(&ds, 0, sizeof ds);
    model_workspace ws;
    memset(&td, 0, sizeof td);
    memset(&net, 0, sizeof net);
    memset(&ws, 0, sizeof ws);
    int status = DEBCM_EXIT_FAIL;
    const debcm_ops *ops = select_backend(o);
    if (!ops || load_data(o, &ds) || train_data_build(&td, &ds, L))
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
        set_K(&test);
        set_K(&val);
        if (model_eval_negatives(&net, &ws, ds.ugc_video.data, ds.ugc_video.rows, td.ugc_music, ds.ugc_vggish.rows,
                                 ds.prior_mean, &ds.test, &test) ||
            model_eval_negatives(&net, &ws, ds.ugc_video.data, ds.ugc_video.rows, td.ugc_music, ds.ugc_vggish.rows,
                                 ds.prior_mean, &ds.val, &val)) {
            json_decref(root);
            goto done;
        }
        if (o->json) {
            json_object_set_new(root, "test", metrics_json(&test));
            json_object_set_new(root, "val", metrics_json(&val));
        } else {
            printf("student %s\n", o->model_ckpt);
            print_table("test", &test);
            print_table("val", &val);
        }
    } else {
        model_eval_result r;
        set_K(&r);
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
        cmd_report_error(cname(o));
    model_workspace_free(&ws);
    net_free(&net);
    train_data_free(&td);
    dataset_free(&ds);
    return status;
}

static int cmd_train_main(run_opts *o)
{
    const debcm_ops *ops = select_backend(o);
    if (!ops)
        return cmd_report_error(cname(o));
    if (!o->out) {
        time_t now = time(NULL);
        struct tm tmv;
        localtime_r(&now, &tmv);
        strftime(o->out_buf, sizeof o->out_buf, "runs/%Y%m%d-%H%M%S", &tmv);
        size_t base = strlen(o->out_buf);
        for (int k = 2; k < 1000 && access(o->out_buf, F_OK) == 0; k++) /* a run started in the same second */
            snprintf(o->out_buf + base, sizeof o->out_buf - base, "-%d", k);
        o->out = o->out_buf;
    }
    char p_teacher[PATH_MAX], p_student[PATH_MAX], p_report[PATH_MAX];
    if (out_path(p_teacher, sizeof p_teacher, o->out, "teacher.safetensors") ||
        out_path(p_student, sizeof p_student, o->out, "student.safetensors") ||
        out_path(p_report, sizeof p_report, o->out, "report.json") || atomic_file_check_path(p_teacher) ||
        atomic_file_check_path(p_student))
        return cmd_report_error(cname(o));

    debcm_dataset ds;
    train_data td;
    debcm_net teacher, student;
    memset(&ds, 0, sizeof ds);
    out_dirs dirs;
    memset(&td, 0, sizeof td);
    memset(&teacher, 0, sizeof teacher);
    memset(&student, 0, sizeof student);
    dirs.n = 0;
    int status = DEBCM_EXIT_FAIL, wrote = 0;
    double t_start = train_now();
    int do_teacher = o->cmd != CMD_STUDENT, do_student = o->cmd != CMD_TEACHER;
    train_phase_result rt, rs;
    memset(&rt, 0, sizeof rt);
    memset(&rs, 0, sizeof rs);
    model_eval_result test;
    set_K(&test);
    double t_test = 0;

    if (load_data(o, &ds))
        goto done;
    if (train_data_build(&td, &ds, o->scfg.L))
        goto done;
    model_dims dt = train_dims(&td, 0), dsd = train_dims(&td, 1);
    /* both networks before any training, so that sizes the machine cannot hold fail first (--latent) */
    if (net_create(&teacher, ops, &dt, 0) || (do_student && net_create(&student, ops, &dsd, 1))) {
        debcm_error_prefix("the networks (L %lld, D_v %lld, D_m %lld; --latent sets L)", (long long)dsd.L,
                           (long long)dsd.D_v, (long long)dsd.D_m);
        goto done;
    }
    if (!do_teacher && checkpoint_load(&teacher, o->teacher_ckpt))
        goto done;
    if (prepare_out(&dirs, o->out)) /* before any training; nothing is left if refused */
        goto done;

    variant_meta vm;
    make_variant_meta(&vm, o);
    printf("debcm %s: matching %s (margin %g, k %lld%s), distill %s (alpha %g); D_v %lld, D_m %lld, L %lld, G %lld\n",
           cname(o), match_name(o->scfg.match.variant), o->scfg.match.margin, (long long)o->scfg.match.k,
           o->scfg.match.variant == MATCH_SOFTMAX ? vm.buf[4] : "", distill_name(o->scfg.distill), o->scfg.alpha,
           (long long)dsd.D_v, (long long)dsd.D_m, (long long)dsd.L, (long long)dsd.G);
    printf("  teacher: %lld pairs train / %lld val, %lld musics, %lld epochs, lr %g%s\n", (long long)ds.pgc_train.n,
           (long long)ds.pgc_val.n, (long long)ds.pgc_vggish.rows, (long long)o->tcfg.epochs, o->tcfg.lr,
           do_teacher ? "" : " (not trained: loaded)");
    printf("  student: %lld rows train / %lld val / %lld test, %lld musics, %lld epochs, lr %g\n",
           (long long)ds.train.n, (long long)ds.val.n, (long long)ds.test.n, (long long)ds.ugc_vggish.rows,
           (long long)o->scfg.epochs, o->scfg.lr);
    printf("  batch %lld, weight decay %g, dropout %g, seed %llu, backend %s, teacher cache %s, out %s\n",
           (long long)o->scfg.batch, o->scfg.weight_decay, o->scfg.dropout, (unsigned long long)o->seed,
           o->tf32 ? "cuda (TF32 GEMMs)" : ops->name, o->teacher_recompute ? "off" : "on", o->out);
    fflush(stdout);

    if (do_teacher) {
        train_phase_opts to = {o->seed, stdout, p_teacher, vm.meta, vm.n, 0};
        if (net_init(&teacher, o->seed) || train_teacher(&teacher, &td, &o->tcfg, &to, &rt))
            goto done;
        wrote = 1;
        printf("teacher: best epoch %lld, val Recall@25 %.4f, %.1f s -> %s\n", (long long)rt.best_epoch,
               rt.val_recall, rt.seconds, p_teacher);
    }
    if (do_student) {
        train_phase_opts so = {o->seed, stdout, p_student, vm.meta, vm.n, o->teacher_recompute};
        if (net_init(&student, o->seed ^ 0x9E3779B97F4A7C15ull) ||
            train_student(&student, &teacher, &td, &o->scfg, &so, &rs))
            goto done;
        wrote = 1;
        printf("student: best epoch %lld, val Recall@25 %.4f NDCG@25 %.4f, %.1f s -> %s\n", (long long)rs.best_epoch,
               rs.val_recall, rs.val_ndcg, rs.seconds, p_student);
        double t0 = train_now();
        model_workspace ws;
        if (model_workspace_create(&ws, ops, &dsd, 1024))
            goto done;
        int erc = model_eval_negatives(&student, &ws, ds.ugc_video.data, ds.ugc_video.rows, td.ugc_music,
                                       ds.ugc_vggish.rows, ds.prior_mean, &ds.test, &test);
        model_workspace_free(&ws);
        if (erc)
            goto done;
        t_test = train_now() - t0;
        print_table("test", &test);
    }
    if (o->cmd == CMD_RUN) {
        json_t *root = json_pack("{s:{s:I, s:f}, s:{s:I, s:f, s:f}, s:o, s:o, s:{s:f, s:f, s:f, s:f}}", "teacher",
                                 "best_epoch", (json_int_t)rt.best_epoch, "val_recall@25", rt.val_recall, "student",
                                 "best_epoch", (json_int_t)rs.best_epoch, "val_recall@25", rs.val_recall,
                                 "val_ndcg@25", rs.val_ndcg, "test", metrics_json(&test), "variants",
                                 variants_json(o), "seconds", "teacher", rt.seconds, "student", rs.seconds, "test",
                                 t_test, "total", train_now() - t_start);
        if (!root) {
            debcm_fail("could not build the report");
            goto done;
        }
        int wrc = json_file_write(root, p_report);
        json_decref(root);
        if (wrc)
            goto done;
        printf("report: %s\n", p_report);
    }
    status = DEBCM_EXIT_OK;
done:
    if (status != DEBCM_EXIT_OK) {
        cmd_report_error(cname(o));
        if (!wrote)
            out_dirs_undo(&dirs); /* refused before anything was written: leave nothing */
    }
    net_free(&student);
    net_free(&teacher);
    train_data_free(&td);
    dataset_free(&ds);
    return status;
}

static int dispatch(int cmd, int argc, char **argv)
{
    run_opts o;
    memset(&o, 0, sizeof o);
    o.cmd = cmd;
    if (atomic_file_install_signal_cleanup())
        return cmd_report_error(cname(&o));
    int st = parse(&o, argc, argv);
    if (st >= 0)
        return st;
    set_threads(o.threads);
    return cmd == CMD_EVALUATE ? cmd_evaluate_main(&o) : cmd_train_main(&o);
}

int cmd_run(int argc, char **argv) { return dispatch(CMD_RUN, argc, argv); }
int cmd_train_teacher(int argc, char **argv) { return dispatch(CMD_TEACHER, argc, argv); }
int cmd_train_student(int argc, char **argv) { return dispatch(CMD_STUDENT, argc, argv); }
int cmd_evaluate(int argc, char **argv) { return dispatch(CMD_EVALUATE, argc, argv); }
