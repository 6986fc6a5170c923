/* apps/cmd_recommend.c — `debcm recommend`: the top-K musics a trained model gives a video, best first.
 *
 * The query is a video of the model's own directory (--video ID: a row of data_matching's video features for a
 * student, of data_pgc's for a teacher) or each row of a .npy of video features (--features FILE: float32 or
 * float64, [D_v] or [N, D_v]; read with io/npy.h). The score is the evaluation score (SPEC §4 for a student: mu_v
 * · e_m with the confounder mean of user_prior_mean; SPEC §3 for a teacher: mu_v · mu_m) over every music of that
 * directory, computed by models/eval_full.c's model_recommend; equal scores go to the lower music id. Output: a
 * small table per query, or with --json one object holding an array of per-query results. Errors in the input
 * (a file, an id or a -k the data cannot satisfy) are one line naming it, exit 1; bad usage exit 2. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/commands.h"
#include "apps/run_common.h"
#include "apps/serve_common.h"
#include "engine/error.h"
#include "io/npy.h"
#include "models/eval_full.h"

static const char cmd[] = "recommend";

static void recommend_usage(FILE *out)
{
    fprintf(out,
            "usage: debcm recommend --model CKPT --data ROOT (--video ID | --features FILE.npy) [-k N] [--json]\n"
            "                       [--threads N] [--device cpu|cuda]\n"
            "       (or ROOT as the last argument, or --pgc DIR --data DIR for the two directories)\n"
            "\n"
            "Print the top-K musics a checkpoint (written by run, train-teacher or train-student) recommends for a\n"
            "video, best first, with their scores. A student ranks the musics of data_matching with the score of\n"
            "its evaluation (video embedding · music embedding after the confounder layer with user_prior_mean); a\n"
            "teacher ranks those of data_pgc (video mu · music mu). Equal scores: the lower music id first.\n"
            "\n"
            "options:\n"
            "  --model CKPT          the checkpoint (.safetensors); its kind is read from its metadata\n"
            "  --data ROOT|DIR       the dataset root (or data_matching/ with --pgc)\n"
            "  --pgc DIR             data_pgc/\n"
            "  --video ID            a video of the model's directory (a row of its video features)\n"
            "  --features FILE       the queries: a .npy of float32 or float64 video features, [D_v] or [N, D_v]\n"
            "  -k, --k N             how many musics (1 .. the number of musics; default 10)\n"
            "  --json                print one JSON object: {\"model\", \"checkpoint\", \"musics\", \"k\", \"results\":\n"
            "                        [{\"video\": ID or \"features\": FILE, \"row\": R, \"top\": [{\"music\", \"score\"}, …]}]}\n"
            "  --threads N           CPU threads (OpenMP and OpenBLAS)\n"
            "  --device cpu|cuda     the backend (cpu)\n"
            "  -h, --help            this help\n"
            "\n"
            "Exit status: 0 done, 1 failed (one line on stderr naming the file or option), 2 bad usage.\n");
}


typedef struct {
    const char *model, *root, *pgc, *data, *features;
    int64_t video; /* −1: none */
    int64_t k;
    int json, threads, cuda;
} rec_args;

/* a whole-string integer ≥ lo */
static int parse_i64(const char *s, int64_t lo, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo)
        return -1;
    *out = (int64_t)v;
    return 0;
}

enum { OPT_MODEL = 256, OPT_DATA, OPT_PGC, OPT_VIDEO, OPT_FEATURES, OPT_JSON, OPT_THREADS, OPT_DEVICE };

/* −1 to go on, else the exit status */
static int parse(rec_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, OPT_MODEL},       {"data", required_argument, NULL, OPT_DATA},
        {"pgc", required_argument, NULL, OPT_PGC},           {"video", required_argument, NULL, OPT_VIDEO},
        {"features", required_argument, NULL, OPT_FEATURES}, {"k", required_argument, NULL, 'k'},
        {"json", no_argument, NULL, OPT_JSON},               {"threads", required_argument, NULL, OPT_THREADS},
        {"device", required_argument, NULL, OPT_DEVICE},     {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->video = -1;
    a->k = 10;
    optind = 1;
    opterr = 0;
    int c, video_given = 0;
    while ((c = getopt_long(argc, argv, ":hk:", opts, NULL)) != -1) {
        switch (c) {
        case 'h': recommend_usage(stdout); return DEBCM_EXIT_OK;
        case OPT_MODEL: a->model = optarg; break;
        case OPT_DATA: a->data = optarg; break;
        case OPT_PGC: a->pgc = optarg; break;
        case OPT_FEATURES: a->features = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_VIDEO:
            if (video_given++)
                return cmd_usage_error(cmd, "--video given twice (one video per call; --features FILE for several)");
            if (parse_i64(optarg, 0, &a->video))
                return cmd_usage_error(cmd, "--video expects a video id (a non-negative integer), found '%s'", optarg);
            break;
        case 'k':
            if (parse_i64(optarg, 1, &a->k))
                return cmd_usage_error(cmd, "-k expects an integer ≥ 1 (at most the number of musics), found '%s'", optarg);
            break;
        case OPT_THREADS:
            if (serve_parse_threads(optarg, &a->threads))
                return cmd_usage_error(cmd, "%s", debcm_last_error());
            break;
        case OPT_DEVICE:
            if (serve_parse_device(optarg, &a->cuda))
                return cmd_usage_error(cmd, "%s", debcm_last_error());
            break;
        case ':': return cmd_usage_error(cmd, "option '%s' needs a value", argv[optind - 1]);
        default: return cmd_usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        if (optind + 1 < argc)
            return cmd_usage_error(cmd, "unexpected argument '%s'", argv[optind + 1]);
        a->root = argv[optind];
        if (!*a->root)
            return cmd_usage_error(cmd, "ROOT is an empty string");
    }
    int st = serve_check_data_args(cmd, &a->root, &a->pgc, &a->data);
    if (st >= 0)
        return st;
    if (!a->model || !*a->model)
        return cmd_usage_error(cmd, "--model CKPT is required");
    if (video_given == (a->features != NULL))
        return cmd_usage_error(cmd, video_given ? "give --video ID or --features FILE, not both"
                                       : "need --video ID or --features FILE");
    if (a->features && !*a->features)
        return cmd_usage_error(cmd, "--features needs a file, found an empty string");
    return -1;
}

/* The query rows of a features file, checked against the model's D_v: float32/float64, [D_v] or [N, D_v], N ≥ 1,
 * every value finite. *x malloc'd [*n, D_v]. */
static int read_features(const npy_file *f, const serve_model *m, float **x, int64_t *n)
{
    const npy_header *h = &f->h;
    *x = NULL;
    if (h->type != NPY_FLOAT32 && h->type != NPY_FLOAT64)
        return debcm_fail("%s: dtype %s: expected float32 or float64 video features", f->path, npy_type_name(h->type));
    int64_t rows, cols;
    if (h->ndim == 1) {
        rows = 1;
        cols = h->shape[0];
    } else if (h->ndim == 2) {
        rows = h->shape[0];
        cols = h->shape[1];
    } else {
        return debcm_fail("%s: a %d-d array: expected [D_v] or [N, D_v] video features (D_v = %lld)", f->path, h->ndim,
                          (long long)m->D_v);
    }
    if (cols != m->D_v)
        return debcm_fail("%s: rows of %lld values: expected D_v = %lld (the width of %s)", f->path, (long long)cols,
                          (long long)m->D_v, m->video_file);
    if (rows < 1)
        return debcm_fail("%s: no rows: expected at least one video ([N, %lld] with N ≥ 1)", f->path,
                          (long long)m->D_v);
    float *buf = malloc((size_t)(rows * cols) * sizeof *buf);
    if (!buf)
        return debcm_fail("%s: out of memory (%lld × %lld floats)", f->path, (long long)rows, (long long)cols);
    if (npy_to_f32(f, buf)) {
        free(buf);
        return -1;
    }
    for (int64_t i = 0; i < rows * cols; i++)
        if (!isfinite(buf[i])) {
            debcm_fail("%s: row %lld, column %lld: %s (expected a finite number)", f->path, (long long)(i / cols),
                       (long long)(i % cols), isnan(buf[i]) ? "NaN" : "Inf");
            free(buf);
            return -1;
        }
    *x = buf;
    *n = rows;
    return 0;
}

static json_t *results_json(const rec_args *a, const serve_model *m, const int64_t *top, const float *score,
                            int64_t n)
{
    json_t *root = json_object(), *list = json_array();
    if (!root || !list) {
        json_decref(root);
        json_decref(list);
        return NULL;
    }
    json_object_set_new(root, "model", json_string(m->student ? "student" : "teacher"));
    json_object_set_new(root, "checkpoint", json_string(a->model));
    json_object_set_new(root, "musics_of", json_string(m->dir));
    json_object_set_new(root, "musics", json_integer(m->Nm));
    json_object_set_new(root, "k", json_integer(a->k));
    for (int64_t q = 0; q < n; q++) {
        json_t *item = json_object(), *t = json_array();
        if (!item || !t) {
            json_decref(item);
            json_decref(t);
            json_decref(list);
            json_decref(root);
            return NULL;
        }
        if (a->features) {
            json_object_set_new(item, "features", json_string(a->features));
            json_object_set_new(item, "row", json_integer(q));
        } else {
            json_object_set_new(item, "video", json_integer(a->video));
        }
        for (int64_t j = 0; j < a->k; j++) {
            json_t *e = json_object();
            json_object_set_new(e, "music", json_integer(top[q * a->k + j]));
            double s = score[q * a->k + j];
            json_object_set_new(e, "score", isfinite(s) ? json_real(s) : json_null());
            json_array_append_new(t, e);
        }
        json_object_set_new(item, "top", t);
        json_array_append_new(list, item);
    }
    json_object_set_new(root, "results", list);
    return root;
}

static void print_table(const rec_args *a, const serve_model *m, const int64_t *top, const float *score, int64_t n)
{
    printf("%s %s: top %lld of %lld musics (%s)\n", m->student ? "student" : "teacher", a->model, (long long)a->k,
           (long long)m->Nm, m->dir);
    for (int64_t q = 0; q < n; q++) {
        if (a->features)
            printf("\n%s row %lld\n", a->features, (long long)q);
        else
            printf("\nvideo %lld\n", (long long)a->video);
        printf("  rank   music       score\n");
        for (int64_t j = 0; j < a->k; j++)
            printf("  %4lld  %6lld  %10.6f\n", (long long)(j + 1), (long long)top[q * a->k + j],
                   (double)score[q * a->k + j]);
    }
}

int cmd_recommend(int argc, char **argv)
{
    rec_args a;
    int st = parse(&a, argc, argv);
    if (st >= 0)
        return st;
    run_set_threads(a.threads);
    serve_model m;
    npy_file f;
    memset(&f, 0, sizeof f);
    float *x = NULL, *score = NULL, *e_m = NULL;
    int64_t *top = NULL, n = 0;
    int status = DEBCM_EXIT_FAIL;
    /* the features file first: a missing or malformed one fails before the data are loaded */
    if (a.features && npy_open(&f, a.features)) {
        memset(&m, 0, sizeof m);
        debcm_error_prefix("--features");
        goto done;
    }
    if (serve_model_open(&m, a.model, a.root, a.pgc, a.data, a.cuda, cmd))
        goto done;
    if (a.k > m.Nm) {
        debcm_fail("-k %lld: expected 1 .. %lld (the musics of %s)", (long long)a.k, (long long)m.Nm, m.dir);
        goto done;
    }
    if (a.features) {
        if (read_features(&f, &m, &x, &n))
            goto done;
    } else {
        if (a.video >= m.Nv) {
            debcm_fail("--video %lld: outside [0, %lld), the rows of %s (%s checkpoint)", (long long)a.video,
                       (long long)m.Nv, m.video_file, m.student ? "a student" : "a teacher");
            goto done;
        }
        n = 1;
        x = malloc((size_t)m.D_v * sizeof *x);
        if (!x) {
            debcm_fail("out of memory");
            goto done;
        }
        memcpy(x, m.videos + a.video * m.D_v, (size_t)m.D_v * sizeof *x);
    }
    top = malloc((size_t)(n * a.k) * sizeof *top);
    score = malloc((size_t)(n * a.k) * sizeof *score);
    e_m = m.ops->alloc((size_t)(m.Nm * m.L) * sizeof(float));
    if (!top || !score || !e_m) {
        debcm_fail("out of memory (%lld queries × %lld musics)", (long long)n, (long long)a.k);
        goto done;
    }
    if (model_embed_music_eval(&m.net, &m.ws, e_m, m.musics, m.Nm, m.prior_mean) ||
        model_recommend(&m.net, &m.ws, e_m, m.Nm, x, n, a.k, top, score))
        goto done;
    if (a.json) {
        json_t *root = results_json(&a, &m, top, score, n);
        char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) : NULL;
        json_decref(root);
        if (!text) {
            debcm_fail("out of memory (JSON output)");
            goto done;
        }
        puts(text);
        free(text);
    } else {
        print_table(&a, &m, top, score, n);
    }
    status = DEBCM_EXIT_OK;
done:
    if (status != DEBCM_EXIT_OK)
        cmd_report_error(cmd);
    if (e_m)
        m.ops->free(e_m);
    free(top);
    free(score);
    free(x);
    npy_close(&f);
    serve_model_close(&m);
    return status;
}
