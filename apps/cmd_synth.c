/* apps/cmd_synth.c — `debcm synth`: writes a synthetic dataset in the published DebCM layout (io/synth.h) under
 * --out, at a named scale with optional size overrides, then ROOT/gen_stats.json (sizes, arguments, seconds and
 * the planted-bias statistics, in the form of shared/data/debcm-mini/gen_stats.json). gen_stats.json is written
 * last and atomically (io/atomic_file.h), as the last step of the run: its presence marks a complete dataset,
 * and if it cannot be written the run fails and removes what it wrote. SIGINT/SIGTERM/SIGHUP remove the
 * temporary file being written. This file only parses arguments and writes the JSON (jansson stays out of the
 * generator); the generator is io/synth.c. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "apps/commands.h"
#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/synth.h"

static void synth_usage(FILE *out)
{
    fprintf(out,
            "usage: debcm synth --out ROOT [--scale tiny|small|tt150k] [--seed N] [options]\n"
            "\n"
            "Write a synthetic dataset in the published DebCM layout: ROOT/data_pgc/, ROOT/data_matching/ and,\n"
            "last, ROOT/gen_stats.json. The same seed gives byte-identical files, whatever OMP_NUM_THREADS.\n"
            "\n"
            "  -o, --out ROOT        output directory (created like mkdir -p)\n"
            "      --scale NAME      tiny     240 videos, 60 musics, D_v 64, 16+16, 20 negatives, 120 PGC (tests)\n"
            "                        small    2,000 videos, 300 musics, D_v 2048, 128+128, 100 neg., 1,200 PGC\n"
            "                        tt150k   146,000 videos, 3,003 musics, D_v 2048, 128+128, 100 neg., 30,000 PGC\n"
            "                        (default small)\n"
            "  -s, --seed N          random seed, 0 .. 2^63-1 (default 1)\n"
            "      --videos N        override the number of UGC videos (>= 10; split 80/10/10)\n"
            "      --musics N        override the number of musics (>= 2)\n"
            "      --pgc N           override the number of PGC segments (>= 10; split 90/10)\n"
            "      --dim-v N         override the video feature size D_v\n"
            "      --negatives N     override the negatives per evaluation row (<= musics - 1)\n"
            "      --genres N        override the number of genres G (<= musics)\n"
            "      --bias P          share of training labels replaced by a popular music of the uploader's\n"
            "                        favourite genre (default 0.4)\n"
            "  -f, --force           overwrite a dataset already in ROOT\n"
            "  -h, --help            print this help\n");
}

enum { OPT_SCALE = 256, OPT_VIDEOS, OPT_MUSICS, OPT_PGC, OPT_DIM_V, OPT_NEGATIVES, OPT_GENRES, OPT_BIAS };

/* A whole-string integer in [lo, hi]; prints the usage error itself. */
static int parse_int(const char *opt, const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "debcm synth: --%s expects an integer in %" PRId64 " .. %" PRId64 ", found '%s'\n", opt, lo,
                hi, s);
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

static json_t *stats_json(const char *scale, const synth_config *c, const synth_stats *st, double seconds)
{
    json_t *args = json_object(), *root = json_object();
    if (!args || !root) {
        json_decref(args);
        json_decref(root);
        return NULL;
    }
    json_object_set_new(args, "scale", json_string(scale));
    json_object_set_new(args, "videos", json_integer(c->videos));
    json_object_set_new(args, "musics", json_integer(c->musics));
    json_object_set_new(args, "genres", json_integer(c->genres));
    json_object_set_new(args, "dim_v", json_integer(c->dim_v));
    json_object_set_new(args, "dim_vggish", json_integer(c->dim_vggish));
    json_object_set_new(args, "dim_smile", json_integer(c->dim_smile));
    json_object_set_new(args, "pgc_pairs", json_integer(c->pgc));
    json_object_set_new(args, "latent", json_integer(c->latent));
    json_object_set_new(args, "videos_per_user", json_real(c->videos_per_user));
    json_object_set_new(args, "bias", json_real(c->bias));
    json_object_set_new(args, "zipf", json_real(c->zipf));
    json_object_set_new(args, "video_noise", json_real(c->video_noise));
    json_object_set_new(args, "feat_scale", json_real(c->feat_scale));
    json_object_set_new(args, "feat_bias", json_real(c->feat_bias));
    json_object_set_new(args, "feat_noise", json_real(c->feat_noise));
    json_object_set_new(args, "multi_genre", json_real(c->multi_genre));
    json_object_set_new(args, "num_neg", json_integer(c->negatives));
    json_object_set_new(args, "seed", json_integer((json_int_t)c->seed));

    json_object_set_new(root, "generator", json_string("debcm synth"));
    json_object_set_new(root, "videos", json_integer(c->videos));
    json_object_set_new(root, "musics", json_integer(c->musics));
    json_object_set_new(root, "genres", json_integer(c->genres));
    json_object_set_new(root, "train", json_integer(st->train));
    json_object_set_new(root, "val", json_integer(st->val));
    json_object_set_new(root, "test", json_integer(st->test));
    json_object_set_new(root, "pgc_train", json_integer(st->pgc_train));
    json_object_set_new(root, "pgc_val", json_integer(st->pgc_val));
    json_object_set_new(root, "users", json_integer(st->users));
    json_object_set_new(root, "train_label_is_true_music", json_real(st->train_label_is_true_music));
    json_object_set_new(root, "top1pct_music_share_of_train_labels",
                        json_real(st->top1pct_music_share_of_train_labels));
    json_object_set_new(root, "payload_bytes", json_integer(st->bytes));
    /* the one field that differs between two runs of the same seed: the determinism test skips this line */
    json_object_set_new(root, "seconds", json_real((double)(int64_t)(seconds * 100.0 + 0.5) / 100.0));
    json_object_set_new(root, "args", args);
    return root;
}

/* What the marker callback needs besides the stats: the arguments and when the run started. */
typedef struct {
    const char *scale;
    const synth_config *c;
    struct timespec t0;
    double seconds;
} stats_ctx;

/* ROOT/gen_stats.json, atomically: synth_write_with_marker calls this last, and undoes the run if it fails. */
static int write_stats_file(const char *root, const synth_stats *st, void *arg)
{
    stats_ctx *ctx = arg;
    char path[PATH_MAX];
    size_t n = strlen(root), m = strlen(SYNTH_STATS_FILE);
    if (n + 1 + m >= sizeof path) /* not reached: synth_write checked a longer name under ROOT */
        return debcm_fail_path_too_long(root, sizeof path - 2 - m);
    memcpy(path, root, n);
    path[n] = '/';
    memcpy(path + n + 1, SYNTH_STATS_FILE, m + 1);
    ctx->seconds = seconds_since(&ctx->t0);
    json_t *doc = stats_json(ctx->scale, ctx->c, st, ctx->seconds);
    char *text = doc ? json_dumps(doc, JSON_INDENT(1) | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(doc);
    if (!text)
        return debcm_fail("%s: out of memory building the JSON", path);
    atomic_file a;
    int rc = atomic_file_begin(&a, path);
    if (rc == 0 && (atomic_file_write(&a, text, strlen(text)) || atomic_file_write(&a, "\n", 1)))
        rc = -1; /* a failed write has removed the temporary file already */
    if (rc == 0)
        rc = atomic_file_commit(&a);
    free(text);
    return rc;
}

int cmd_synth(int argc, char **argv)
{
    static const struct option options[] = {
        {"out", required_argument, NULL, 'o'},
        {"scale", required_argument, NULL, OPT_SCALE},
        {"seed", required_argument, NULL, 's'},
        {"videos", required_argument, NULL, OPT_VIDEOS},
        {"musics", required_argument, NULL, OPT_MUSICS},
        {"pgc", required_argument, NULL, OPT_PGC},
        {"dim-v", required_argument, NULL, OPT_DIM_V},
        {"negatives", required_argument, NULL, OPT_NEGATIVES},
        {"genres", required_argument, NULL, OPT_GENRES},
        {"bias", required_argument, NULL, OPT_BIAS},
        {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *scale = "small";
    int64_t seed = 1, videos = 0, musics = 0, pgc = 0, dim_v = 0, negatives = 0, genres = 0;
    double bias = -1.0;
    int force = 0, opt;

    optind = 1;
    opterr = 0; /* our own one-line messages */
    while ((opt = getopt_long(argc, argv, ":o:s:fh", options, NULL)) != -1) {
        int bad = 0;
        switch (opt) {
        case 'o': out = optarg; break;
        case OPT_SCALE: scale = optarg; break;
        case 's': bad = parse_int("seed", optarg, 0, INT64_MAX, &seed); break;
        case OPT_VIDEOS: bad = parse_int("videos", optarg, 1, INT64_MAX, &videos); break;
        case OPT_MUSICS: bad = parse_int("musics", optarg, 1, INT64_MAX, &musics); break;
        case OPT_PGC: bad = parse_int("pgc", optarg, 1, INT64_MAX, &pgc); break;
        case OPT_DIM_V: bad = parse_int("dim-v", optarg, 1, INT64_MAX, &dim_v); break;
        case OPT_NEGATIVES: bad = parse_int("negatives", optarg, 1, INT64_MAX, &negatives); break;
        case OPT_GENRES: bad = parse_int("genres", optarg, 1, INT64_MAX, &genres); break;
        case OPT_BIAS: {
            char *end;
            errno = 0;
            bias = strtod(optarg, &end);
            if (errno || end == optarg || *end || !(bias >= 0.0 && bias <= 1.0)) {
                fprintf(stderr, "debcm synth: --bias expects a number in [0, 1], found '%s'\n", optarg);
                bad = 1;
            }
            break;
        }
        case 'f': force = 1; break;
        case 'h': synth_usage(stdout); return DEBCM_EXIT_OK;
        case ':':
            fprintf(stderr, "debcm synth: option '%s' needs a value (debcm synth --help)\n", argv[optind - 1]);
            return DEBCM_EXIT_USAGE;
        default:
            fprintf(stderr, "debcm synth: unknown option '%s' (debcm synth --help)\n", argv[optind - 1]);
            return DEBCM_EXIT_USAGE;
        }
        if (bad)
            return DEBCM_EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "debcm synth: unexpected argument '%s' (debcm synth --help)\n", argv[optind]);
        return DEBCM_EXIT_USAGE;
    }
    if (!out || !*out) {
        fprintf(stderr, "debcm synth: --out ROOT is required (debcm synth --help)\n");
        return DEBCM_EXIT_USAGE;
    }

    /* the preset first, then the overrides, whatever their order on the command line */
    synth_config c;
    if (synth_config_preset(&c, scale)) {
        fprintf(stderr, "debcm synth: %s\n", debcm_last_error());
        return DEBCM_EXIT_USAGE;
    }
    c.seed = (uint64_t)seed;
    if (videos) c.videos = videos;
    if (musics) c.musics = musics;
    if (pgc) c.pgc = pgc;
    if (dim_v) c.dim_v = dim_v;
    if (negatives) c.negatives = negatives;
    if (genres) c.genres = genres;
    if (bias >= 0.0) c.bias = bias;
    if (synth_config_validate(&c)) {
        fprintf(stderr, "debcm synth: %s (debcm synth --help)\n", debcm_last_error());
        return DEBCM_EXIT_USAGE;
    }

    /* Ctrl-C, kill, a closed terminal: the temporary file being written goes with the process */
    if (atomic_file_install_signal_cleanup())
        return cmd_report_error("synth");
    stats_ctx ctx = {.scale = scale, .c = &c, .seconds = 0.0};
    clock_gettime(CLOCK_MONOTONIC, &ctx.t0);
    synth_stats st;
    if (synth_write_with_marker(out, &c, force, &st, write_stats_file, &ctx))
        return cmd_report_error("synth");
    double seconds = ctx.seconds;

    printf("debcm synth: wrote %s (%s, seed %" PRIu64 "): %" PRId64 " videos (train %" PRId64 " / val %" PRId64
           " / test %" PRId64 "), %" PRId64 " musics, %" PRId64 " PGC pairs, %.1f MB in %.2f s; %.1f%% of training "
           "labels are the true music\n",
           out, scale, c.seed, c.videos, st.train, st.val, st.test, c.musics, st.pgc_train + st.pgc_val,
           (double)st.bytes / 1e6, seconds, 100.0 * st.train_label_is_true_music);
    return DEBCM_EXIT_OK;
}
