/* apps/cmd_export.c — `debcm export`: the embeddings a trained model scores with, as two .npy matrices, so that
 * another program (a nearest-neighbour index, a notebook) recommends exactly as debcm does.
 *
 * DIR/music_embeddings.npy [Nm, L] and DIR/video_embeddings.npy [Nv, L], float32, C order, for every music and
 * every video of the model's directory (data_matching for a student, data_pgc for a teacher). They are chosen so
 * that the evaluation score is a plain dot product of their rows, score(v, m) = video[v] · music[m]: a student's
 * music rows are e_m = W_c [c̄ ; mu_m] + b_c with c̄ = Σ_g prior_mean_g · Cemb_g (SPEC §4: the confounder layer,
 * with user_prior_mean, folded into the music side), its video rows mu_v; a teacher's rows are mu_m and mu_v
 * (SPEC §3). All in evaluation mode (running BatchNorm statistics, no dropout, z = mu). DIR is created like
 * mkdir -p.
 *
 * The two files are one result: a reader must never find the music rows of one model beside the video rows of
 * another. So both are written whole to their temporary names first (NAME.tmp.<pid>, io/atomic_file.h: created
 * O_EXCL, every write checked, fsync'd), and only then renamed into place, back to back, with SIGINT, SIGTERM
 * and SIGHUP deferred (a first signal waits until both names are in place). Any failure before the renames — a
 * full disk, a file-size limit, an unwritable DIR, a signal — removes both temporary files and leaves the
 * previous pair as it was. A kill -9 leaves its temporary files: the next export into DIR removes those whose
 * process no longer runs. The .npy bytes are exactly npy_write's (format 1.0, '<f4', C order). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apps/commands.h"
#include "apps/run_common.h"
#include "apps/serve_common.h"
#include "engine/error.h"
#include "io/atomic_file.h"
#include "models/eval_full.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .npy header below says '<f4' (little-endian) and the payload is written as it is in memory"
#endif

static const char cmd[] = "export";
static const char *const out_names[2] = {"music_embeddings.npy", "video_embeddings.npy"};

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
            "Both files are written in full before either replaces the one in DIR, then renamed into place together:\n"
            "a failure (a full disk, an unwritable DIR, a signal) leaves the previous pair as it was.\n"
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
    }
    int st = serve_check_data_args(cmd, &a->root, &a->pgc, &a->data);
    if (st >= 0)
        return st;
    if (!a->model || !*a->model)
        return cmd_usage_error(cmd, "--model CKPT is required");
    if (!a->out || !*a->out)
        return cmd_usage_error(cmd, "--out DIR is required");
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

/* ---- the pair on disk ---------------------------------------------------------------------------------------- */

/* The temporary files (NAME.tmp.<pid>, NAME one of out_names) in dir that an export killed by SIGKILL or a power
 * cut left behind: removed when that process no longer runs (another export writing into dir now keeps its own),
 * or when the pid is ours (a dead process's leftover that happened to have our pid: it would block our O_EXCL). */
static void remove_stale_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return; /* no DIR yet: nothing to remove */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        for (int i = 0; i < 2; i++) {
            size_t n = strlen(out_names[i]);
            const char *rest = e->d_name + n, *digits = rest + 5;
            if (strncmp(e->d_name, out_names[i], n) || strncmp(rest, ".tmp.", 5) || !digits[0] ||
                strspn(digits, "0123456789") != strlen(digits))
                continue;
            errno = 0;
            long long pid = strlen(digits) > 12 ? -1 : strtoll(digits, NULL, 10);
            /* kill(pid, 0): ESRCH when no such process runs; 0 or EPERM when one does (never pid 0 or −1: groups) */
            int dead = pid <= 0 || pid > INT_MAX || pid == (long long)getpid() ||
                       (kill((pid_t)pid, 0) != 0 && errno == ESRCH);
            char p[PATH_MAX];
            size_t dn = strlen(dir);
            if (dead &&
                (size_t)snprintf(p, sizeof p, "%s%s%s", dir, dn && dir[dn - 1] == '/' ? "" : "/", e->d_name) <
                    sizeof p &&
                unlink(p) == 0)
                fprintf(stderr, "debcm %s: removed %s, a temporary file left by an export that was killed\n", cmd, p);
        }
    }
    closedir(d);
}

/* The .npy header of a float32 [rows, cols] matrix in C order, byte for byte as npy_write writes it (io/npy.c,
 * NumPy 1.24's _write_array_header): format 1.0, the dict with its ", " after every value and 21 − len(repr(rows))
 * spaces, then space padding and a '\n' so that the payload starts at a multiple of 64. out holds 256 bytes;
 * returns the length. */
static size_t npy_f32_header(uint8_t out[256], int64_t rows, int64_t cols)
{
    char dict[160];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                     (long long)rows, (long long)cols);
    char axis[32];
    for (int i = snprintf(axis, sizeof axis, "%lld", (long long)rows); i < 21; i++)
        dict[n++] = ' '; /* fits: at most 57 + 2·20 + 21 bytes */
    size_t hlen = (size_t)n + 1, pad = 64 - (10 + hlen) % 64, field = hlen + pad, total = 10 + field;
    memcpy(out, "\x93NUMPY\x01\x00", 8);
    out[8] = (uint8_t)(field & 0xff);
    out[9] = (uint8_t)(field >> 8);
    memcpy(out + 10, dict, (size_t)n);
    memset(out + 10 + n, ' ', pad);
    out[total - 1] = '\n';
    return total;
}

/* path.tmp.<pid> holding the .npy file of x [rows, cols], complete and fsync'd, not renamed yet (f stays open,
 * registered for the signal cleanup). 0, or −1 with a message naming path and nothing left behind. */
static int stage_file(atomic_file *f, const char *path, const float *x, int64_t rows, int64_t cols)
{
    uint8_t header[256];
    size_t hlen = npy_f32_header(header, rows, cols);
    if (atomic_file_begin(f, path))
        return -1;
    if (atomic_file_write(f, header, hlen) || atomic_file_write(f, x, (size_t)(rows * cols) * sizeof *x))
        return -1; /* the failed write removed the temporary file */
    if (fsync(f->fd) != 0) { /* the bytes on disk before anything is renamed: a late ENOSPC or EIO shows here */
        int e = errno;
        debcm_fail("%s: cannot fsync %s: %s", path, f->tmp, strerror(e));
        atomic_file_abort(f);
        return -1;
    }
    return 0;
}

/* Both files written in full, then renamed into place back to back with signals deferred. On failure nothing of
 * this export is left: both temporary files removed, the previous pair untouched (the one exception, a rename of
 * the video file failing right after the music file's succeeded — an I/O error on the directory — removes the
 * new music file too, so that no mismatched pair remains, and says so). */
static int write_pair(const char *p_music, const char *p_video, const float *music, int64_t Nm, const float *video,
                      int64_t Nv, int64_t L)
{
    atomic_file fm, fv;
    fm.fd = fv.fd = -1; /* atomic_file_abort is then a no-op */
    if (stage_file(&fm, p_music, music, Nm, L) || stage_file(&fv, p_video, video, Nv, L)) {
        atomic_file_abort(&fm);
        atomic_file_abort(&fv);
        return -1;
    }
    atomic_file_defer_signals(1);
    int rc = atomic_file_commit(&fm);
    if (rc) {
        atomic_file_abort(&fv);
    } else if (atomic_file_commit(&fv)) {
        rc = -1;
        if (unlink(p_music) == 0)
            debcm_error_prefix("%s: removed again (the video file could not follow it)", p_music);
    }
    atomic_file_defer_signals(0); /* a signal that came meanwhile is acted on now, with both names in place */
    return rc;
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
    if (out_path(p_music, a.out, out_names[0]) || out_path(p_video, a.out, out_names[1])) {
        memset(&m, 0, sizeof m);
        goto done;
    }
    remove_stale_temporaries(a.out);
    if (serve_model_open(&m, a.model, a.root, a.pgc, a.data, a.cuda, cmd))
        goto done;
    music = malloc((size_t)(m.Nm * m.L) * sizeof *music);
    video = malloc((size_t)(m.Nv * m.L) * sizeof *video);
    if (!music || !video) {
        debcm_fail("out of memory (%lld + %lld embeddings of %lld floats)", (long long)m.Nm, (long long)m.Nv,
                   (long long)m.L);
        goto done;
    }
    if (embed_all(&m, 1, music, m.musics, m.Nm) || embed_all(&m, 0, video, m.videos, m.Nv) || make_dirs(a.out) ||
        write_pair(p_music, p_video, music, m.Nm, video, m.Nv, m.L))
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
