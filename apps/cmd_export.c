/* apps/cmd_export.c — `debcm export`: the embeddings a trained model scores with, as two .npy matrices, so that
 * another program (a nearest-neighbour index, a notebook) recommends exactly as debcm does.
 *
 * DIR/music_embeddings.npy [Nm, L] and DIR/video_embeddings.npy [Nv, L], float32, C order, for every music and
 * every video of the model's directory (data_matching for a student, data_pgc for a teacher). They are chosen so
 * that the evaluation score is a plain dot product of their rows, score(v, m) = video[v] · music[m]: a student's
 * music rows are e_m = W_c [c̄ ; mu_m] + b_c with c̄ = Σ_g prior_mean_g · Cemb_g (SPEC §4: the confounder layer,
 * with user_prior_mean, folded into the music side), its video rows mu_v; a teacher's rows are mu_m and mu_v
 * (SPEC §3). All in evaluation mode (running BatchNorm statistics, no dropout, z = mu). Each file is written
 * atomically by the npy writer (io/npy.h: a temporary file, fsync, rename), DIR is created like mkdir -p. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apps/commands.h"
#include "apps/run_common.h"
#include "apps/serve_common.h"
#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "models/eval_full.h"

static const char cmd[] = "export";

static void export_usage(FILE *out)
{
    fprintf(out,
            "usage: debcm export --model CKPT --data ROOT --out DIR [--threads N] [--device cpu|cuda]\n"
            "       (or ROOT as the last argument, or --pgc DIR --data DIR for the two directories)\n"
            "\n"
            "Write the embeddings a checkpoint scores with: DIR/music_embeddings.npy [Nm, L] and\n"
            "DIR/video_embeddings.npy [Nv, L] (float32), every music and video of data_matching for a student, of\n"
            "data_pgc for a teacher, such that score(video v, music m) = video_embeddings[v] · music_embeddings[m],\n"
            "the score `debcm evaluate` and `debcm recommend` rank by. A student's music rows already include its\n"
            "confounder layer with the mean prior of user_prior_mean.npy (SPEC §4); a teacher's are its music mu.\n"
            "Files already in DIR are replaced (atomically).\n"
            "\n"
            "options:\n"
            "  --model CKPT          the checkpoint (.safetensors); its kind is read from its metadata\n"
            "  --data ROOT|DIR       the dataset root (or data_matching/ with --pgc)\n"
            "  --pgc DIR             data_pgc/\n"
            "  --out DIR             the output directory (created like mkdir -p)\n"
            "  --threads N           CPU threads (OpenMP and OpenBLAS)\n"
            "  --device cpu|cuda     the backend (cpu)\n"
            "  -h, --help            this help\n"
            "\n"
            "Exit status: 0 done, 1 failed (one line on stderr naming the file or option), 2 bad usage.\n");
}

static int usage_error(const char *fmt, ...) DEBCM_PRINTF(1, 2);
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "debcm %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see debcm %s --help)\n", cmd);
    return DEBCM_EXIT_USAGE;
}

typedef struct {
    const char *model, *root, *pgc, *data, *out;
    int threads, cuda;
} export_args;

enum { OPT_MODEL = 256, OPT_DATA, OPT_PGC, OPT_OUT, OPT_THREADS, OPT_DEVICE };

static int parse(export_args *a, int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, OPT_MODEL},     {"data", required_argument, NULL, OPT_DATA},
        {"pgc", required_argument, NULL, OPT_PGC},         {"out", required_argument, NULL, OPT_OUT},
        {"threads", required_argument, NULL, OPT_THREADS}, {"device", required_argument, NULL, OPT_DEVICE},
        {"help", no_argument, NULL, 'h'},                  {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': export_usage(stdout); return DEBCM_EXIT_OK;
        case OPT_MODEL: a->model = optarg; break;
        case OPT_DATA: a->data = optarg; break;
        case OPT_PGC: a->pgc = optarg; break;
        case OPT_OUT: a->out = optarg; break;
        case OPT_THREADS:
            if (serve_parse_threads(optarg, &a->threads))
                return usage_error("%s", debcm_last_error());
            break;
        case OPT_DEVICE:
            if (serve_parse_device(optarg, &a->cuda))
                return usage_error("%s", debcm_last_error());
            break;
        case ':': return usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        if (optind + 1 < argc)
            return usage_error("unexpected argument '%s'", argv[optind + 1]);
        a->root = argv[optind];
    }
    if (!a->pgc && a->data && !a->root) {
        a->root = a->data;
        a->data = NULL;
    }
    if (a->root && (a->pgc || a->data))
        return usage_error("give either ROOT (or --data ROOT) or --pgc DIR --data DIR, not both");
    if ((a->pgc != NULL) != (a->data != NULL) || (!a->root && !a->pgc))
        return usage_error("need --data ROOT, or both --pgc DIR and --data DIR");
    if ((a->pgc && !*a->pgc) || (a->data && !*a->data) || (a->root && !*a->root))
        return usage_error("--pgc and --data need a directory, found an empty string");
    if (!a->model || !*a->model)
        return usage_error("--model CKPT is required");
    if (!a->out || !*a->out)
        return usage_error("--out DIR is required");
    return -1;
}

/* mkdir -p dir: every missing component created, an existing directory accepted, anything else refused */
static int make_dirs(const char *dir)
{
    char buf[PATH_MAX];
    size_t n = strlen(dir);
    if (n >= sizeof buf)
        return debcm_fail_path_too_long(dir, sizeof buf - 1);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if ((buf[i] != '/' && buf[i] != '\0') || buf[i - 1] == '/')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        struct stat st;
        if (stat(buf, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return debcm_fail("--out %s: %s exists and is not a directory", dir, buf);
        } else if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            return debcm_fail("--out %s: cannot create directory %s: %s", dir, buf, strerror(errno));
        }
        buf[i] = saved;
    }
    return 0;
}

/* dir/name into out (PATH_MAX), checked to fit with the writer's temporary suffix */
static int out_path(char *out, const char *dir, const char *name)
{
    size_t n = strlen(dir);
    if ((size_t)snprintf(out, PATH_MAX, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/", name) >= PATH_MAX)
        return debcm_fail_path_too_long(dir, PATH_MAX - 64);
    return atomic_file_check_path(out);
}

/* The embeddings of the N host rows x into host [N, L]: modality's mu, or the music side of the score */
static int embed_all(serve_model *m, int music, float *host, const float *x, int64_t N)
{
    const debcm_ops *o = m->ops;
    size_t bytes = (size_t)(N * m->L) * sizeof(float);
    float *dev = o->alloc(bytes ? bytes : sizeof(float));
    if (!dev)
        return debcm_error_prefix("%s embeddings (%lld rows)", music ? "music" : "video", (long long)N);
    int rc = (music ? model_embed_music_eval(&m->net, &m->ws, dev, x, N, m->prior_mean)
                    : model_embed(&m->net, &m->ws, MODEL_VIDEO, dev, x, N)) ||
                     o->download(host, dev, bytes)
                 ? -1
                 : 0;
    o->free(dev);
    return rc;
}

int cmd_export(int argc, char **argv)
{
    export_args a;
    int st = parse(&a, argc, argv);
    if (st >= 0)
        return st;
    if (atomic_file_install_signal_cleanup()) /* a signal removes the temporary file being written */
        return cmd_report_error(cmd);
    run_set_threads(a.threads);
    serve_model m;
    float *music = NULL, *video = NULL;
    int status = DEBCM_EXIT_FAIL;
    char p_music[PATH_MAX], p_video[PATH_MAX];
    if (out_path(p_music, a.out, "music_embeddings.npy") || out_path(p_video, a.out, "video_embeddings.npy")) {
        memset(&m, 0, sizeof m);
        goto done;
    }
    if (serve_model_open(&m, a.model, a.root, a.pgc, a.data, a.cuda, cmd))
        goto done;
    music = malloc((size_t)(m.Nm * m.L) * sizeof *music);
    video = malloc((size_t)(m.Nv * m.L) * sizeof *video);
    if (!music || !video) {
        debcm_fail("out of memory (%lld + %lld embeddings of %lld floats)", (long long)m.Nm, (long long)m.Nv,
                   (long long)m.L);
        goto done;
    }
    if (embed_all(&m, 1, music, m.musics, m.Nm) || embed_all(&m, 0, video, m.videos, m.Nv) || make_dirs(a.out))
        goto done;
    const int64_t shape_m[2] = {m.Nm, m.L}, shape_v[2] = {m.Nv, m.L};
    if (npy_write(p_music, NPY_FLOAT32, 2, shape_m, music, NULL) ||
        npy_write(p_video, NPY_FLOAT32, 2, shape_v, video, NULL))
        goto done;
    printf("%s %s: wrote %s [%lld, %lld] (musics of %s) and %s [%lld, %lld] (videos of %s); score = video · music\n",
           m.student ? "student" : "teacher", a.model, p_music, (long long)m.Nm, (long long)m.L, m.dir, p_video,
           (long long)m.Nv, (long long)m.L, m.video_file);
    status = DEBCM_EXIT_OK;
done:
    if (status != DEBCM_EXIT_OK)
        cmd_report_error(cmd);
    free(music);
    free(video);
    serve_model_close(&m);
    return status;
}
