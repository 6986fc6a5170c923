/* io/synth.c — the synthetic dataset generator of io/synth.h (`debcm synth`). It builds a small "world" (music
 * latents, genres, popularity ranks, random projections), derives every file of the published layout from it
 * and writes them with io/npy.h and io/pickle.h. Everything random is a Philox draw addressed by (seed, stream,
 * index) with one stream per use (engine/rng.h), and every OpenMP loop writes only its own outputs, so the bytes
 * never depend on the thread count; reductions (counts, sums, min/max) run serially in index order. The big
 * matrices (video features, up to 146,000 x 2,048 floats) are made block by block: noisy latents for a block of
 * rows, one cblas_sgemm with the projection, then bias, noise and ReLU in place, the block still in cache.
 *
 * The planted structure, in the order it is generated:
 *   music m: genre g(m) ∝ (g+1)^-½ (uneven, like a real catalogue; musics 0..G-1 take genres 0..G-1 so that
 *            none is empty; a share multi_genre get a uniform second genre), popularity rank r(m) (a random
 *            permutation), Zipf weight pop(m) = (r(m)+1)^-zipf,
 *            latent z_m = (c_g(m) + n) / sqrt 2 with a genre centre c_g ~ N(0, I) and n ~ N(0, I).
 *   music features: VGGish = (s P_a z_m / sqrt L + σ n) / sqrt(s² + σ²) (about unit variance, like VGGish's
 *            whitened embeddings); openSMILE = the same with its own projection, then min-max normalised per
 *            column to [0, 1] like the published *_norm files.
 *   a video (UGC or PGC) of true music m: latent copy y = (z_m + ν n) / sqrt(1 + ν²), features
 *            x = relu(s P_v y / sqrt L + b + σ n); PGC and UGC videos share P_v (one visual feature space, as
 *            the teacher's video encoder is applied to UGC videos during distillation).
 *   true music of a video (UGC and PGC): drawn ∝ pop(m)^½ — demand for a music is skewed, but less than what
 *            uploaders pick when they follow the trend.
 *   uploader u: favourite genre f(u) ∝ 1/(g+1); each UGC video has a uniform uploader.
 *   training label: with probability bias a draw ∝ pop(m) among the musics of genre f(u) (the selection bias),
 *            otherwise the true music. Validation and test positives are always the true music.
 *   user prior: the uploader's histogram of label genres over the training rows, smoothed (+½ per genre).
 *   propensity: (train count of the label music / largest train count)^½, in (0, 1].
 *   evaluation weight: 1 / (train count of the positive + 1), normalised to sum 1 over the split.
 * Bytes are the same for any thread count on one machine; on another CPU OpenBLAS may pick a kernel that rounds
 * the projections differently in the last bit. */
#include "io/synth.h"

#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "engine/error.h"
#include "engine/rng.h"
#include "io/atomic_file.h"
#include "io/npy.h"
#include "io/pickle.h"

#ifdef _OPENMP
#define SYNTH_OMP(x) _Pragma(#x)
#else
#define SYNTH_OMP(x)
#endif

/* the longest file name of the layout below ROOT: checked against PATH_MAX before anything is written */
#define SYNTH_LONGEST_FILE "data_matching/new_music_smile_features_norm.npy"
#define SYNTH_MAX_FILES 32  /* files of one dataset (14 today), remembered to remove them if the run fails */
#define SYNTH_BLOCK_ROWS 64 /* rows per sgemm call: fixed, so each call (hence its rounding) is thread-independent */
#define SYNTH_GENRE_STR 32  /* "[a, b]" with ids below 10,000 */

/* Philox streams of the generator. The tag 'SYNT' in the high word keeps them apart from the training streams
 * (dropout, noise, shuffles) even when a run uses the same seed as the data. */
enum {
    ST_GENRE_CENTER = 1,
    ST_MUSIC_GENRE,
    ST_MUSIC_RANK,
    ST_MUSIC_LATENT,
    ST_PROJ_V,
    ST_PROJ_VGGISH,
    ST_PROJ_SMILE,
    ST_NOISE_VGGISH,
    ST_NOISE_SMILE,
    ST_USER,
    ST_VIDEO,
    ST_VIDEO_LATENT,
    ST_VIDEO_FEAT,
    ST_SPLIT,
    ST_PGC,
    ST_PGC_LATENT,
    ST_PGC_FEAT,
    ST_PGC_SPLIT,
    ST_NEG_VAL,
    ST_NEG_TEST,
};
#define SYNTH_STREAM(s) (((uint64_t)0x53594E54u << 32) | (uint64_t)(s))

/* ---- presets and validation ---------------------------------------------------------------------------------- */

int synth_config_preset(synth_config *c, const char *scale)
{
    memset(c, 0, sizeof *c);
    /* the generator arguments of shared/data/debcm-mini/gen_stats.json, shared by every scale */
    c->genres = 6;
    c->videos_per_user = 15.0;
    c->bias = 0.4;
    c->zipf = 1.0;
    c->video_noise = 2.0;
    c->feat_scale = 0.8;
    c->feat_bias = 0.3;
    c->feat_noise = 1.0;
    c->multi_genre = 0.05;
    c->seed = 1;
    if (!strcmp(scale, "tiny")) {
        c->videos = 240; c->musics = 60; c->pgc = 120;
        c->dim_v = 64; c->dim_vggish = 16; c->dim_smile = 16; c->latent = 8;
        c->negatives = 20;
    } else if (!strcmp(scale, "small")) {
        c->videos = 2000; c->musics = 300; c->pgc = 1200;
        c->dim_v = 2048; c->dim_vggish = 128; c->dim_smile = 128; c->latent = 32;
        c->negatives = 100;
    } else if (!strcmp(scale, "tt150k")) {
        c->videos = 146000; c->musics = 3003; c->pgc = 30000;
        c->dim_v = 2048; c->dim_vggish = 128; c->dim_smile = 128; c->latent = 32;
        c->negatives = 100;
    } else {
        return debcm_fail("unknown scale '%s' (expected tiny, small or tt150k)", scale);
    }
    return 0;
}

static int check_range(const char *name, int64_t v, int64_t lo, int64_t hi)
{
    if (v < lo || v > hi)
        return debcm_fail("%s must be between %lld and %lld, found %lld", name, (long long)lo, (long long)hi,
                          (long long)v);
    return 0;
}

static int check_real(const char *name, double v, double lo, double hi)
{
    if (!(v >= lo && v <= hi)) /* also refuses NaN */
        return debcm_fail("%s must be between %g and %g, found %g", name, lo, hi, v);
    return 0;
}

int synth_config_validate(const synth_config *c)
{
    /* 10 rows at least: val and test (and PGC val) each take a tenth and must not be empty */
    if (check_range("videos", c->videos, 10, 1000000000) || check_range("musics", c->musics, 2, 100000000) ||
        check_range("pgc", c->pgc, 10, 1000000000) || check_range("dim_v", c->dim_v, 1, 1 << 20) ||
        check_range("dim_vggish", c->dim_vggish, 1, 1 << 16) || check_range("dim_smile", c->dim_smile, 1, 1 << 16) ||
        check_range("latent", c->latent, 1, 4096) || check_range("genres", c->genres, 1, 9999) ||
        check_range("negatives", c->negatives, 1, 100000000))
        return -1;
    if (c->genres > c->musics)
        return debcm_fail("genres (%lld) must be at most musics (%lld): every genre needs a music",
                          (long long)c->genres, (long long)c->musics);
    if (c->negatives > c->musics - 1)
        return debcm_fail("negatives (%lld) must be at most musics - 1 = %lld: negatives are distinct and differ "
                          "from the positive", (long long)c->negatives, (long long)(c->musics - 1));
    if (check_real("videos_per_user", c->videos_per_user, 1.0, 1e9) || check_real("bias", c->bias, 0.0, 1.0) ||
        check_real("zipf", c->zipf, 0.0, 10.0) || check_real("video_noise", c->video_noise, 0.0, 1e6) ||
        check_real("feat_scale", c->feat_scale, 0.0, 1e6) || check_real("feat_bias", c->feat_bias, -1e6, 1e6) ||
        check_real("feat_noise", c->feat_noise, 0.0, 1e6) || check_real("multi_genre", c->multi_genre, 0.0, 1.0))
        return -1;
    if (c->feat_scale == 0.0 && c->feat_noise == 0.0)
        return debcm_fail("feat_scale and feat_noise cannot both be 0");
    return 0;
}

/* ---- random numbers ------------------------------------------------------------------------------------------ */

/* Standard normals of the generator: element i of a stream comes from Philox call i/4, whose four words make two
 * Box–Muller pairs (radius from one word, angle from the next) and each pair gives both its cosine and its sine.
 * Not rng_normal()'s sequence (which keeps only the cosine: two Philox words per normal): the features take
 * ~360 million normals at the tt150k scale, and this form needs half the logarithms and no extra Philox calls. */
static inline void normal4(float out[4], uint64_t seed, uint64_t stream, uint64_t group)
{
    rng_u32x4 r = rng_philox(seed, stream, group);
    float ra = sqrtf(-2.0f * logf(rng_u01(r.v[0]))), rb = sqrtf(-2.0f * logf(rng_u01(r.v[2])));
    float sa, ca, sb, cb;
    sincosf(6.28318530717958647692f * rng_u01(r.v[1]), &sa, &ca);
    sincosf(6.28318530717958647692f * rng_u01(r.v[3]), &sb, &cb);
    out[0] = ra * ca;
    out[1] = ra * sa;
    out[2] = rb * cb;
    out[3] = rb * sb;
}

/* out[k] = element i0 + k of the normal stream, k < n (the same values whatever i0's alignment). */
static void fill_normal(float *out, int64_t n, uint64_t seed, uint64_t stream, uint64_t i0)
{
    float q[4];
    int64_t k = 0;
    uint64_t i = i0;
    if (n > 0 && (i & 3)) { /* head: the rest of a group */
        normal4(q, seed, stream, i >> 2);
        for (; k < n && (i & 3); k++, i++)
            out[k] = q[i & 3];
    }
    for (; k + 3 < n; k += 4, i += 4)
        normal4(out + k, seed, stream, i >> 2);
    if (k < n) { /* tail: the start of a group */
        normal4(q, seed, stream, i >> 2);
        for (int j = 0; k < n; k++, j++)
            out[k] = q[j];
    }
}

/* Index drawn from cumulative weights cdf[0..n) (cdf[n-1] = total) with the 32-bit word x: the first i with
 * cdf[i] > u * total, u = (x + ½) / 2^32 in (0, 1). */
static int64_t cdf_draw(const double *cdf, int64_t n, uint32_t x)
{
    double target = ((double)x + 0.5) * (1.0 / 4294967296.0) * cdf[n - 1];
    int64_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (cdf[mid] > target)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

typedef struct {
    uint64_t key;
    int64_t index;
} sort_key;

static int sort_key_cmp(const void *pa, const void *pb)
{
    const sort_key *a = pa, *b = pb;
    if (a->key != b->key)
        return a->key < b->key ? -1 : 1;
    return a->index < b->index ? -1 : (a->index > b->index);
}

/* perm[0..n): a uniformly random permutation of 0..n-1 — the indices sorted by a 64-bit Philox key each (ties,
 * which are astronomically rare, broken by index so that the order is still a pure function of the seed). */
static int random_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t stream)
{
    sort_key *keys = malloc((size_t)n * sizeof *keys);
    if (!keys)
        return debcm_fail("out of memory (permutation of %lld)", (long long)n);
    SYNTH_OMP(omp parallel for schedule(static))
    for (int64_t i = 0; i < n; i++) {
        rng_u32x4 r = rng_philox(seed, stream, (uint64_t)i);
        keys[i].key = (uint64_t)r.v[1] << 32 | r.v[0];
        keys[i].index = i;
    }
    qsort(keys, (size_t)n, sizeof *keys, sort_key_cmp);
    for (int64_t i = 0; i < n; i++)
        perm[i] = keys[i].index;
    free(keys);
    return 0;
}

/* ---- projections ---------------------------------------------------------------------------------------------- */

/* How project_rows() turns latents into features: row r of out is
 *   act( alpha · P ( (z[src[r]] + latent_noise · n_r) · latent_norm ) + bias + feat_noise · n'_r )
 * with n_r = normals (seed, st_latent, r·L + l), n'_r = normals (seed, st_feat, r·D + j), act = ReLU or identity. */
typedef struct {
    const float *z;      /* [N_m, L] music latents */
    const float *proj;   /* [L, D] projection, entries N(0, 1) */
    int64_t L, D;
    float latent_noise, latent_norm;
    float alpha, bias, feat_noise;
    int relu;
    uint64_t seed, st_latent, st_feat;
} projection;

static int project_rows(float *out, int64_t n, const int64_t *src, const projection *p)
{
    int64_t L = p->L, D = p->D;
    int64_t blocks = (n + SYNTH_BLOCK_ROWS - 1) / SYNTH_BLOCK_ROWS;
    int failed = 0;
    SYNTH_OMP(omp parallel)
    {
        float *a = malloc((size_t)(SYNTH_BLOCK_ROWS * L) * sizeof *a);
        float *noise = malloc((size_t)(D > L ? D : L) * sizeof *noise);
        if (!a || !noise) {
            SYNTH_OMP(omp atomic write)
            failed = 1;
        }
        SYNTH_OMP(omp for schedule(dynamic, 4))
        for (int64_t b = 0; b < blocks; b++) {
            if (!a || !noise)
                continue;
            int64_t r0 = b * SYNTH_BLOCK_ROWS;
            int64_t rows = n - r0 < SYNTH_BLOCK_ROWS ? n - r0 : SYNTH_BLOCK_ROWS;
            for (int64_t r = 0; r < rows; r++) {
                const float *zm = p->z + src[r0 + r] * L;
                float *ar = a + r * L;
                if (p->latent_noise != 0.0f) {
                    fill_normal(noise, L, p->seed, p->st_latent, (uint64_t)(r0 + r) * (uint64_t)L);
                    for (int64_t l = 0; l < L; l++)
                        ar[l] = (zm[l] + p->latent_noise * noise[l]) * p->latent_norm;
                } else {
                    for (int64_t l = 0; l < L; l++)
                        ar[l] = zm[l] * p->latent_norm;
                }
            }
            float *c = out + r0 * D;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)D, (int)L, p->alpha, a, (int)L,
                        p->proj, (int)D, 0.0f, c, (int)D);
            for (int64_t r = 0; r < rows; r++) {
                float *cr = c + r * D;
                fill_normal(noise, D, p->seed, p->st_feat, (uint64_t)(r0 + r) * (uint64_t)D);
                if (p->relu) {
                    for (int64_t j = 0; j < D; j++) {
                        float x = cr[j] + p->bias + p->feat_noise * noise[j];
                        cr[j] = x > 0.0f ? x : 0.0f;
                    }
                } else {
                    for (int64_t j = 0; j < D; j++)
                        cr[j] = cr[j] + p->bias + p->feat_noise * noise[j];
                }
            }
        }
        free(a);
        free(noise);
    }
    if (failed)
        return debcm_fail("out of memory (projection scratch)");
    return 0;
}

/* ---- files ---------------------------------------------------------------------------------------------------- */

/* out[PATH_MAX] = root/rel, or "path too long" (never a shortened path) */
static int join_path(char *out, const char *root, const char *rel)
{
    size_t a = strlen(root), b = strlen(rel);
    if (a + 1 + b >= PATH_MAX) {
        char *joined = malloc(a + b + 2); /* for the message only: it quotes the path that does not fit */
        if (!joined)
            return debcm_fail_path_too_long(root, PATH_MAX - 2 - b);
        memcpy(joined, root, a);
        joined[a] = '/';
        memcpy(joined + a + 1, rel, b + 1);
        debcm_fail_path_too_long(joined, PATH_MAX - 1);
        free(joined);
        return -1;
    }
    memcpy(out, root, a);
    out[a] = '/';
    memcpy(out + a + 1, rel, b + 1);
    return 0;
}

/* mkdir -p: create every missing component; an existing directory is fine, an existing non-directory is not.
 * *created = the length of the first prefix this call created (every deeper one was created too), 0 if none:
 * what undo_created() removes when the run fails. An existing component is recognised with stat before any
 * mkdir, so that a read-only or unwritable parent is only reported where something must really be created. */
static int mkdir_p(const char *path, size_t *created)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    *created = 0;
    if (n == 0)
        return debcm_fail("empty output directory name");
    if (n >= sizeof buf)
        return debcm_fail_path_too_long(path, sizeof buf - 1);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue; /* "a//b" */
        char saved = buf[i];
        buf[i] = '\0';
        struct stat sb;
        if (*created == 0 && stat(buf, &sb) == 0) {
            if (!S_ISDIR(sb.st_mode))
                return debcm_fail("cannot create directory '%s': it exists and is not a directory", buf);
        } else if (mkdir(buf, 0777) == 0) {
            if (*created == 0)
                *created = i;
        } else {
            int err = errno;
            if (err != EEXIST)
                return debcm_fail("cannot create directory '%s': %s", buf, strerror(err));
            if (stat(buf, &sb) != 0 || !S_ISDIR(sb.st_mode))
                return debcm_fail("cannot create directory '%s': it exists and is not a directory", buf);
        }
        buf[i] = saved;
    }
    return 0;
}

/* rmdir the prefixes of path that mkdir_p created (from `created` on), deepest first; stops at the first that
 * is not empty (or cannot be removed): what someone else put there stays. */
static void rmdir_created(const char *path, size_t created)
{
    char buf[PATH_MAX];
    size_t n = strlen(path);
    if (created == 0 || n >= sizeof buf)
        return;
    memcpy(buf, path, n + 1);
    for (size_t i = n; i >= created; i--) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        if (buf[i - 1] == '/')
            continue;
        buf[i] = '\0';
        if (rmdir(buf) != 0)
            return;
    }
}

/* ---- the generator -------------------------------------------------------------------------------------------- */

/* Everything the generator holds at once, freed in one place. */
typedef struct {
    int64_t *genre;          /* [N_m] primary genre */
    int64_t *genre2;         /* [N_m] second genre or -1 */
    int64_t *rank;           /* [N_m] popularity rank, 0 = most popular */
    double *demand_cdf;      /* [N_m] cumulative pop(m)^½: the true-music distribution */
    int64_t *genre_start;    /* [G+1] musics of genre g: genre_music[genre_start[g] .. genre_start[g+1]) */
    int64_t *genre_music;    /* [N_m] */
    double *genre_pop_cdf;   /* [N_m] per genre, cumulative pop(m) within the genre */
    double *genre_cdf;       /* [G] cumulative (g+1)^-½: the genres of the musics */
    double *fav_cdf;       /* [G] cumulative 1/(g+1): the uploaders' favourite genres */
    float *z;                /* [N_m, L] music latents */
    float *proj_v;           /* [L, D_v] */
    float *vggish;           /* [N_m, D_vggish] */
    float *smile;            /* [N_m, D_smile] */
    char *genre_str;         /* [N_m][SYNTH_GENRE_STR] */
    float *feat;             /* [max(P, N_v), D_v] video features (PGC, then UGC), allocated before writing */
    int64_t *src;            /* [rows] true music of each video */
    int64_t *perm;           /* [rows] split order */
    int64_t *user, *label;   /* [N_v] */
    int64_t *fav;            /* [users] */
    int64_t *count;          /* [N_m] training label count */
    int64_t *genre_count;    /* [users, G] label genres of each uploader's training rows */
    int64_t *user_rows;      /* [users] training rows of each uploader */
    int64_t *pairs;          /* [rows, 2] PGC pairs */
    int64_t *neg;            /* [rows, K] */
    double *weight;          /* [rows] */
    double *prior;           /* [G] */
    pickle_writer pw;
    /* what this run created, removed again if it fails (undo_created) */
    const char *done[SYNTH_MAX_FILES]; /* files written (relative to ROOT; string literals) */
    int n_done;
    size_t root_created;     /* mkdir_p of ROOT: first prefix created, 0 if ROOT existed */
    int made_pgc, made_matching, made_neg; /* data_pgc/, data_matching/, data_matching/100neg/ made by this run */
} synth_state;

static void synth_state_free(synth_state *s)
{
    free(s->genre); free(s->genre2); free(s->rank); free(s->demand_cdf); free(s->genre_start);
    free(s->genre_music); free(s->genre_pop_cdf); free(s->fav_cdf); free(s->genre_cdf); free(s->z);
    free(s->proj_v);
    free(s->vggish); free(s->smile); free(s->genre_str); free(s->feat); free(s->src); free(s->perm);
    free(s->user); free(s->label); free(s->fav); free(s->count); free(s->genre_count); free(s->user_rows);
    free(s->pairs); free(s->neg); free(s->weight); free(s->prior);
    pickle_writer_free(&s->pw);
    memset(s, 0, sizeof *s);
}

/* A failed run leaves ROOT as it found it: the files it completed are removed, then the directories it made
 * (rmdir: only the empty ones). A file it replaced under --force is not restored; gen_stats.json was removed
 * first, so what is left never looks like a complete dataset. Best effort: the error that matters is already
 * recorded, and unlink/rmdir never change it. */
static void undo_created(const synth_state *s, const char *root)
{
    char path[PATH_MAX];
    for (int i = s->n_done - 1; i >= 0; i--)
        if (join_path(path, root, s->done[i]) == 0)
            (void)unlink(path);
    const struct {
        int made;
        const char *rel;
    } dirs[] = {{s->made_neg, "data_matching/100neg"}, {s->made_matching, "data_matching"},
                {s->made_pgc, "data_pgc"}};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
        if (dirs[i].made && join_path(path, root, dirs[i].rel) == 0)
            (void)rmdir(path);
    rmdir_created(root, s->root_created);
}

/* npy_write names the path in its messages; make sure of it for what comes from below it. */
static int name_path_in_error(const char *path)
{
    if (!strstr(debcm_last_error(), path))
        return debcm_error_prefix("%s", path);
    return -1;
}

/* the file rel is complete: remember it for undo_created */
static int record_done(synth_state *s, const char *rel)
{
    if (s->n_done >= SYNTH_MAX_FILES)
        return debcm_fail("synth: more than %d files (raise SYNTH_MAX_FILES)", SYNTH_MAX_FILES);
    s->done[s->n_done++] = rel;
    return 0;
}

static int write_numeric(synth_state *s, const char *root, const char *rel, npy_type type, int ndim, int64_t d0,
                         int64_t d1, const void *data, int64_t *bytes)
{
    char path[PATH_MAX];
    int64_t shape[2] = {d0, d1};
    npy_write_options opt;
    memset(&opt, 0, sizeof opt);
    if (join_path(path, root, rel))
        return -1;
    if (npy_write(path, type, ndim, shape, data, &opt))
        return name_path_in_error(path);
    *bytes += d0 * (ndim == 2 ? d1 : 1) * npy_type_size(type);
    return record_done(s, rel);
}

static int write_object(synth_state *s, const char *root, const char *rel, pickle_writer *w, int64_t rows,
                        int64_t cols, int64_t *bytes)
{
    char path[PATH_MAX];
    int64_t shape[2] = {rows, cols};
    npy_write_options opt;
    memset(&opt, 0, sizeof opt);
    if (join_path(path, root, rel))
        return -1;
    if (pickle_writer_end(w))
        return debcm_error_prefix("%s: pickling", path);
    if (npy_write_object(path, 2, shape, w->buf, w->len, &opt))
        return name_path_in_error(path);
    *bytes += (int64_t)w->len;
    return record_done(s, rel);
}

static void *alloc_array(int64_t n, size_t elem, const char *what)
{
    void *p = malloc((size_t)(n > 0 ? n : 1) * elem);
    if (!p)
        debcm_fail("out of memory: %s (%.1f MiB)", what, (double)n * (double)elem / 1048576.0);
    return p;
}

/* Musics: genres, ranks, Zipf weights, latents and both feature matrices. */
static int build_musics(synth_state *s, const synth_config *c)
{
    int64_t M = c->musics, G = c->genres, L = c->latent;
    uint64_t seed = c->seed;
    if (!(s->genre = alloc_array(M, sizeof *s->genre, "genres")) ||
        !(s->genre2 = alloc_array(M, sizeof *s->genre2, "genres")) ||
        !(s->rank = alloc_array(M, sizeof *s->rank, "ranks")) ||
        !(s->demand_cdf = alloc_array(M, sizeof *s->demand_cdf, "weights")) ||
        !(s->genre_start = alloc_array(G + 1, sizeof *s->genre_start, "genres")) ||
        !(s->genre_music = alloc_array(M, sizeof *s->genre_music, "genres")) ||
        !(s->genre_pop_cdf = alloc_array(M, sizeof *s->genre_pop_cdf, "weights")) ||
        !(s->fav_cdf = alloc_array(G, sizeof *s->fav_cdf, "weights")) ||
        !(s->genre_cdf = alloc_array(G, sizeof *s->genre_cdf, "weights")) ||
        !(s->z = alloc_array(M * L, sizeof *s->z, "music latents")) ||
        !(s->genre_str = alloc_array(M, SYNTH_GENRE_STR, "genre strings")))
        return -1;

    double acc = 0.0;
    for (int64_t g = 0; g < G; g++) {
        acc += 1.0 / sqrt((double)(g + 1));
        s->genre_cdf[g] = acc;
    }
    for (int64_t m = 0; m < M; m++) {
        rng_u32x4 r = rng_philox(seed, SYNTH_STREAM(ST_MUSIC_GENRE), (uint64_t)m);
        int64_t g = m < G ? m : cdf_draw(s->genre_cdf, G, r.v[0]);
        int64_t g2 = -1;
        if (G > 1 && rng_u01(r.v[1]) <= c->multi_genre)
            g2 = (g + 1 + (int64_t)(((uint64_t)r.v[2] * (uint64_t)(G - 1)) >> 32)) % G;
        s->genre[m] = g;
        s->genre2[m] = g2;
        char *str = s->genre_str + m * SYNTH_GENRE_STR;
        if (g2 < 0)
            snprintf(str, SYNTH_GENRE_STR, "[%d]", (int)g); /* str([g]) in Python; G <= 9999 */
        else
            snprintf(str, SYNTH_GENRE_STR, "[%d, %d]", (int)(g < g2 ? g : g2), (int)(g < g2 ? g2 : g));
    }

    int64_t *order = alloc_array(M, sizeof *order, "ranks");
    if (!order || random_permutation(order, M, seed, SYNTH_STREAM(ST_MUSIC_RANK))) {
        free(order);
        return -1;
    }
    for (int64_t r = 0; r < M; r++)
        s->rank[order[r]] = r;
    free(order);

    acc = 0.0;
    for (int64_t m = 0; m < M; m++) {
        acc += pow((double)(s->rank[m] + 1), -0.5 * c->zipf);
        s->demand_cdf[m] = acc;
    }
    /* musics of each genre (primary), in index order, with their cumulative popularity */
    for (int64_t g = 0; g <= G; g++)
        s->genre_start[g] = 0;
    for (int64_t m = 0; m < M; m++)
        s->genre_start[s->genre[m] + 1]++;
    for (int64_t g = 0; g < G; g++)
        s->genre_start[g + 1] += s->genre_start[g];
    {
        int64_t *fill = alloc_array(G, sizeof *fill, "genres");
        if (!fill)
            return -1;
        memcpy(fill, s->genre_start, (size_t)G * sizeof *fill);
        for (int64_t m = 0; m < M; m++)
            s->genre_music[fill[s->genre[m]]++] = m;
        free(fill);
    }
    for (int64_t g = 0; g < G; g++) {
        acc = 0.0;
        for (int64_t k = s->genre_start[g]; k < s->genre_start[g + 1]; k++) {
            acc += pow((double)(s->rank[s->genre_music[k]] + 1), -c->zipf);
            s->genre_pop_cdf[k] = acc;
        }
    }
    acc = 0.0;
    for (int64_t g = 0; g < G; g++) {
        acc += 1.0 / (double)(g + 1);
        s->fav_cdf[g] = acc;
    }

    /* latents: z_m = (c_g(m) + n_m) / sqrt 2 — musics of a genre share half their variance */
    float *centre = alloc_array(G * L, sizeof *centre, "genre centres");
    if (!centre)
        return -1;
    fill_normal(centre, G * L, seed, SYNTH_STREAM(ST_GENRE_CENTER), 0);
    fill_normal(s->z, M * L, seed, SYNTH_STREAM(ST_MUSIC_LATENT), 0);
    for (int64_t m = 0; m < M; m++)
        for (int64_t l = 0; l < L; l++)
            s->z[m * L + l] = (centre[s->genre[m] * L + l] + s->z[m * L + l]) * 0.70710678118654752f;
    free(centre);

    /* music features: one projection each; the musics themselves are the source rows */
    int64_t *identity = alloc_array(M, sizeof *identity, "music ids");
    float *proj = alloc_array(L * (c->dim_vggish > c->dim_smile ? c->dim_vggish : c->dim_smile), sizeof *proj,
                              "projection");
    if (!identity || !proj || !(s->vggish = alloc_array(M * c->dim_vggish, sizeof *s->vggish, "VGGish features")) ||
        !(s->smile = alloc_array(M * c->dim_smile, sizeof *s->smile, "openSMILE features"))) {
        free(identity);
        free(proj);
        return -1;
    }
    for (int64_t m = 0; m < M; m++)
        identity[m] = m;
    double nrm = sqrt(c->feat_scale * c->feat_scale + c->feat_noise * c->feat_noise);
    projection p = {
        .z = s->z, .proj = proj, .L = L, .D = c->dim_vggish, .latent_noise = 0.0f, .latent_norm = 1.0f,
        .alpha = (float)(c->feat_scale / sqrt((double)L) / nrm), .bias = 0.0f,
        .feat_noise = (float)(c->feat_noise / nrm), .relu = 0, .seed = seed,
        .st_latent = 0, .st_feat = SYNTH_STREAM(ST_NOISE_VGGISH),
    };
    fill_normal(proj, L * c->dim_vggish, seed, SYNTH_STREAM(ST_PROJ_VGGISH), 0);
    int rc = project_rows(s->vggish, M, identity, &p);
    if (!rc) {
        p.D = c->dim_smile;
        p.st_feat = SYNTH_STREAM(ST_NOISE_SMILE);
        fill_normal(proj, L * c->dim_smile, seed, SYNTH_STREAM(ST_PROJ_SMILE), 0);
        rc = project_rows(s->smile, M, identity, &p);
    }
    free(identity);
    free(proj);
    if (rc)
        return -1;
    /* openSMILE "_norm": min-max per column to [0, 1] (a constant column becomes ½) */
    int64_t D = c->dim_smile;
    for (int64_t j = 0; j < D; j++) {
        float lo = s->smile[j], hi = s->smile[j];
        for (int64_t m = 1; m < M; m++) {
            float x = s->smile[m * D + j];
            lo = x < lo ? x : lo;
            hi = x > hi ? x : hi;
        }
        for (int64_t m = 0; m < M; m++) {
            float *x = &s->smile[m * D + j];
            *x = hi > lo ? (*x - lo) / (hi - lo) : 0.5f;
        }
    }

    if (!(s->proj_v = alloc_array(L * c->dim_v, sizeof *s->proj_v, "video projection")))
        return -1;
    fill_normal(s->proj_v, L * c->dim_v, seed, SYNTH_STREAM(ST_PROJ_V), 0);
    return 0;
}

/* The video-feature projection of the config, with the given noise streams. */
static projection video_projection(const synth_state *s, const synth_config *c, uint64_t st_latent,
                                   uint64_t st_feat)
{
    projection p = {
        .z = s->z, .proj = s->proj_v, .L = c->latent, .D = c->dim_v, .latent_noise = (float)c->video_noise,
        .latent_norm = (float)(1.0 / sqrt(1.0 + c->video_noise * c->video_noise)),
        .alpha = (float)(c->feat_scale / sqrt((double)c->latent)), .bias = (float)c->feat_bias,
        .feat_noise = (float)c->feat_noise, .relu = 1, .seed = c->seed, .st_latent = st_latent, .st_feat = st_feat,
    };
    return p;
}

/* data_pgc/: the teacher's professional segments, each with its true music (unbiased pairs). */
static int write_pgc(synth_state *s, const synth_config *c, const char *root, synth_stats *st)
{
    int64_t P = c->pgc, Dv = c->dim_v;
    int64_t n_val = P / 10, n_train = P - n_val;
    /* s->feat, [max(P, N_v), D_v], was allocated before anything was written (synth_write) */
    if (!(s->src = alloc_array(P, sizeof *s->src, "PGC musics")) ||
        !(s->perm = alloc_array(P, sizeof *s->perm, "PGC split")) ||
        !(s->pairs = alloc_array(2 * P, sizeof *s->pairs, "PGC pairs")))
        return -1;
    SYNTH_OMP(omp parallel for schedule(static))
    for (int64_t i = 0; i < P; i++) {
        rng_u32x4 r = rng_philox(c->seed, SYNTH_STREAM(ST_PGC), (uint64_t)i);
        s->src[i] = cdf_draw(s->demand_cdf, c->musics, r.v[0]);
    }
    projection p = video_projection(s, c, SYNTH_STREAM(ST_PGC_LATENT), SYNTH_STREAM(ST_PGC_FEAT));
    if (project_rows(s->feat, P, s->src, &p) ||
        write_numeric(s, root, "data_pgc/mv_video_resnet_features.npy", NPY_FLOAT32, 2, P, Dv, s->feat,
                      &st->bytes))
        return -1;

    if (random_permutation(s->perm, P, c->seed, SYNTH_STREAM(ST_PGC_SPLIT)))
        return -1;
    for (int64_t i = 0; i < P; i++) {
        s->pairs[2 * i] = s->perm[i];
        s->pairs[2 * i + 1] = s->src[s->perm[i]];
    }
    if (write_numeric(s, root, "data_pgc/train.npy", NPY_INT64, 2, n_train, 2, s->pairs, &st->bytes) ||
        write_numeric(s, root, "data_pgc/val.npy", NPY_INT64, 2, n_val, 2, s->pairs + 2 * n_train, &st->bytes) ||
        write_numeric(s, root, "data_pgc/vggish_features.npy", NPY_FLOAT32, 2, c->musics, c->dim_vggish, s->vggish,
                      &st->bytes) ||
        write_numeric(s, root, "data_pgc/opensmile_features_norm.npy", NPY_FLOAT32, 2, c->musics, c->dim_smile,
                      s->smile, &st->bytes))
        return -1;
    st->pgc_train = n_train;
    st->pgc_val = n_val;
    free(s->src); free(s->perm); free(s->pairs);
    s->src = s->perm = s->pairs = NULL;
    return 0;
}

/* One evaluation split: rows [video, true music, K distinct negatives ≠ positive drawn uniformly (a partial
 * Fisher–Yates over the other musics)] and the normalised inverse-popularity weights of the positives. */
static int write_eval(synth_state *s, const synth_config *c, const char *root, const int64_t *videos, int64_t n,
                      uint64_t stream, const char *rows_rel, const char *weights_rel, synth_stats *st)
{
    int64_t M = c->musics, K = c->negatives;
    int failed = 0;
    if (!(s->neg = alloc_array(n * K, sizeof *s->neg, "negatives")) ||
        !(s->weight = alloc_array(n, sizeof *s->weight, "weights")))
        return -1;
    SYNTH_OMP(omp parallel)
    {
        int64_t *cand = malloc((size_t)(M - 1) * sizeof *cand);
        if (!cand) {
            SYNTH_OMP(omp atomic write)
            failed = 1;
        }
        SYNTH_OMP(omp for schedule(static))
        for (int64_t r = 0; r < n; r++) {
            if (!cand)
                continue;
            int64_t pos = s->src[videos[r]];
            for (int64_t i = 0; i < M - 1; i++)
                cand[i] = i < pos ? i : i + 1;
            for (int64_t i = 0; i < K; i++) {
                rng_u32x4 u = rng_philox(c->seed, stream, (uint64_t)(r * K + i));
                int64_t j = i + (int64_t)(rng_u01_double(u.v[0], u.v[1]) * (double)(M - 1 - i));
                if (j > M - 2)
                    j = M - 2;
                int64_t t = cand[i];
                cand[i] = cand[j];
                cand[j] = t;
                s->neg[r * K + i] = cand[i];
            }
        }
        free(cand);
    }
    if (failed)
        return debcm_fail("out of memory (negatives)");

    double total = 0.0;
    for (int64_t r = 0; r < n; r++) {
        s->weight[r] = 1.0 / (double)(s->count[s->src[videos[r]]] + 1);
        total += s->weight[r];
    }
    for (int64_t r = 0; r < n; r++)
        s->weight[r] /= total;

    int64_t shape[2] = {n, 3};
    memset(&s->pw, 0, sizeof s->pw);
    if (pickle_writer_begin(&s->pw, 2, shape))
        return -1;
    for (int64_t r = 0; r < n; r++)
        if (pickle_write_np_int64(&s->pw, videos[r]) || pickle_write_np_int64(&s->pw, s->src[videos[r]]) ||
            pickle_write_int64_ndarray(&s->pw, s->neg + r * K, (size_t)K))
            return debcm_error_prefix("%s/%s: row %lld", root, rows_rel, (long long)r);
    if (write_object(s, root, rows_rel, &s->pw, n, 3, &st->bytes) ||
        write_numeric(s, root, weights_rel, NPY_FLOAT64, 1, n, 0, s->weight, &st->bytes))
        return -1;
    pickle_writer_free(&s->pw);
    memset(&s->pw, 0, sizeof s->pw);
    free(s->neg); free(s->weight);
    s->neg = NULL;
    s->weight = NULL;
    return 0;
}

static int cmp_count_desc(const void *pa, const void *pb)
{
    int64_t a = *(const int64_t *)pa, b = *(const int64_t *)pb;
    return a > b ? -1 : (a < b);
}

/* data_matching/: the uploaders' micro-videos, their biased training labels and the unbiased evaluation rows. */
static int write_matching(synth_state *s, const synth_config *c, const char *root, synth_stats *st)
{
    int64_t N = c->videos, M = c->musics, G = c->genres, Dv = c->dim_v;
    int64_t U = (int64_t)floor((double)N / c->videos_per_user);
    if (U < 1)
        U = 1;
    int64_t n_val = N / 10, n_test = N / 10, n_train = N - n_val - n_test;
    uint64_t seed = c->seed;
    if (!(s->src = alloc_array(N, sizeof *s->src, "true musics")) ||
        !(s->perm = alloc_array(N, sizeof *s->perm, "split")) ||
        !(s->user = alloc_array(N, sizeof *s->user, "uploaders")) ||
        !(s->label = alloc_array(N, sizeof *s->label, "labels")) ||
        !(s->fav = alloc_array(U, sizeof *s->fav, "uploaders")) ||
        !(s->count = alloc_array(M, sizeof *s->count, "label counts")) ||
        !(s->genre_count = alloc_array(U * G, sizeof *s->genre_count, "uploader genres")) ||
        !(s->user_rows = alloc_array(U, sizeof *s->user_rows, "uploader rows")) ||
        !(s->prior = alloc_array(G, sizeof *s->prior, "prior")))
        return -1;

    for (int64_t u = 0; u < U; u++)
        s->fav[u] = cdf_draw(s->fav_cdf, G, rng_philox(seed, SYNTH_STREAM(ST_USER), (uint64_t)u).v[0]);
    SYNTH_OMP(omp parallel for schedule(static))
    for (int64_t v = 0; v < N; v++) {
        rng_u32x4 r = rng_philox(seed, SYNTH_STREAM(ST_VIDEO), (uint64_t)v);
        int64_t u = (int64_t)(((uint64_t)r.v[0] * (uint64_t)U) >> 32);
        int64_t m = cdf_draw(s->demand_cdf, M, r.v[1]);
        s->user[v] = u;
        s->src[v] = m;
        s->label[v] = m;
        if (rng_u01(r.v[2]) <= c->bias) { /* selection bias: a popular music of the uploader's favourite genre */
            int64_t g = s->fav[u], g0 = s->genre_start[g], gn = s->genre_start[g + 1] - g0;
            s->label[v] = s->genre_music[g0 + cdf_draw(s->genre_pop_cdf + g0, gn, r.v[3])];
        }
    }

    /* all videos have features (ids index rows), whatever their split; s->feat was allocated up front */
    projection p = video_projection(s, c, SYNTH_STREAM(ST_VIDEO_LATENT), SYNTH_STREAM(ST_VIDEO_FEAT));
    if (project_rows(s->feat, N, s->src, &p) ||
        write_numeric(s, root, "data_matching/visual_features_resnet_V.npy", NPY_FLOAT32, 2, N, Dv, s->feat,
                      &st->bytes))
        return -1;
    free(s->feat);
    s->feat = NULL;
    if (write_numeric(s, root, "data_matching/music_features.npy", NPY_FLOAT32, 2, M, c->dim_vggish, s->vggish,
                      &st->bytes) ||
        write_numeric(s, root, "data_matching/new_music_smile_features_norm.npy", NPY_FLOAT32, 2, M, c->dim_smile,
                      s->smile, &st->bytes))
        return -1;

    if (random_permutation(s->perm, N, seed, SYNTH_STREAM(ST_SPLIT)))
        return -1;
    const int64_t *train = s->perm, *val = s->perm + n_train, *test = s->perm + n_train + n_val;

    /* label statistics of the training rows: counts, uploader genre histograms */
    memset(s->count, 0, (size_t)M * sizeof *s->count);
    memset(s->genre_count, 0, (size_t)(U * G) * sizeof *s->genre_count);
    memset(s->user_rows, 0, (size_t)U * sizeof *s->user_rows);
    int64_t true_hits = 0, max_count = 0;
    for (int64_t t = 0; t < n_train; t++) {
        int64_t v = train[t], m = s->label[v];
        s->count[m]++;
        s->genre_count[s->user[v] * G + s->genre[m]]++;
        s->user_rows[s->user[v]]++;
        true_hits += m == s->src[v];
    }
    for (int64_t m = 0; m < M; m++)
        max_count = s->count[m] > max_count ? s->count[m] : max_count;
    {
        int64_t *sorted = alloc_array(M, sizeof *sorted, "label counts");
        if (!sorted)
            return -1;
        memcpy(sorted, s->count, (size_t)M * sizeof *sorted);
        qsort(sorted, (size_t)M, sizeof *sorted, cmp_count_desc);
        int64_t top = M / 100 > 0 ? M / 100 : 1, hits = 0;
        for (int64_t k = 0; k < top; k++)
            hits += sorted[k];
        free(sorted);
        st->top1pct_music_share_of_train_labels = (double)hits / (double)n_train;
    }
    st->train_label_is_true_music = (double)true_hits / (double)n_train;

    /* train.npy: [video, label, genre string, uploader prior (G floats), propensity] */
    double *row_prior = alloc_array(G, sizeof *row_prior, "prior");
    if (!row_prior)
        return -1;
    for (int64_t g = 0; g < G; g++)
        s->prior[g] = 0.0;
    int64_t shape[2] = {n_train, 5};
    memset(&s->pw, 0, sizeof s->pw);
    int rc = pickle_writer_begin(&s->pw, 2, shape);
    for (int64_t t = 0; t < n_train && !rc; t++) {
        int64_t v = train[t], m = s->label[v], u = s->user[v];
        double denom = (double)s->user_rows[u] + 0.5 * (double)G; /* +½ per genre: no genre is impossible */
        for (int64_t g = 0; g < G; g++) {
            row_prior[g] = ((double)s->genre_count[u * G + g] + 0.5) / denom;
            s->prior[g] += row_prior[g];
        }
        double propensity = sqrt((double)s->count[m] / (double)max_count);
        rc = pickle_write_np_int64(&s->pw, v) || pickle_write_np_int64(&s->pw, m) ||
             pickle_write_str(&s->pw, s->genre_str + m * SYNTH_GENRE_STR) ||
             pickle_write_float_list(&s->pw, row_prior, (size_t)G) || pickle_write_float(&s->pw, propensity);
        if (rc)
            debcm_error_prefix("%s/data_matching/train.npy: row %lld", root, (long long)t);
    }
    free(row_prior);
    if (rc || write_object(s, root, "data_matching/train.npy", &s->pw, n_train, 5, &st->bytes))
        return -1;
    pickle_writer_free(&s->pw);
    memset(&s->pw, 0, sizeof s->pw);
    for (int64_t g = 0; g < G; g++)
        s->prior[g] /= (double)n_train;
    if (write_numeric(s, root, "data_matching/user_prior_mean.npy", NPY_FLOAT64, 1, G, 0, s->prior, &st->bytes))
        return -1;

    if (write_eval(s, c, root, val, n_val, SYNTH_STREAM(ST_NEG_VAL), "data_matching/100neg/val.npy",
                   "data_matching/video_popularity_val.npy", st) ||
        write_eval(s, c, root, test, n_test, SYNTH_STREAM(ST_NEG_TEST), "data_matching/100neg/test.npy",
                   "data_matching/video_popularity_test.npy", st))
        return -1;
    st->train = n_train;
    st->val = n_val;
    st->test = n_test;
    st->users = U;
    return 0;
}

/* Bytes the generator holds at its peak, roughly: what the musics take, the per-video arrays, and the largest of
 * the three phases that follow (the feature matrix; the training pickle; an evaluation split's negatives and
 * pickle — pickles grow by doubling, hence the 2). At the small preset: 17 MB, for a peak RSS of 22 MB. */
static double synth_peak_bytes(const synth_config *c, double *feat_bytes)
{
    double M = (double)c->musics, G = (double)c->genres, L = (double)c->latent, N = (double)c->videos;
    double P = (double)c->pgc, K = (double)c->negatives, Dv = (double)c->dim_v;
    double U = floor(N / c->videos_per_user) > 1.0 ? floor(N / c->videos_per_user) : 1.0;
    double n_train = N - 2.0 * floor(N / 10.0), n_val = floor(N / 10.0);
    double musics = M * (8.0 * 6.0 + SYNTH_GENRE_STR + 4.0 * (L + (double)c->dim_vggish + (double)c->dim_smile)) +
                    L * Dv * 4.0;
    double videos = N * 8.0 * 4.0 + U * 8.0 * (G + 2.0) + M * 8.0 * 2.0;
    double feat = (N > P ? N : P) * Dv * 4.0;
    double train = 2.0 * n_train * (96.0 + 9.0 * G);                /* 146 bytes a row at G = 6, measured */
    double eval = n_val * K * 8.0 + 2.0 * n_val * (120.0 + 8.0 * K); /* 917 bytes a row at K = 100, measured */
    double phase = feat > train ? feat : train;
    *feat_bytes = feat;
    return musics + videos + (phase > eval ? phase : eval);
}

/* Refuse a config that cannot fit in this machine's memory, and allocate the largest buffer (the video features,
 * shared by PGC and UGC), before anything is written: an out-of-memory is then an error about the size, not a
 * half-written dataset. */
static int reserve_memory(synth_state *s, const synth_config *c)
{
    double feat_bytes, need = synth_peak_bytes(c, &feat_bytes), gib = 1024.0 * 1024.0 * 1024.0;
    struct sysinfo si;
    if (sysinfo(&si) == 0) {
        double have = ((double)si.totalram + (double)si.totalswap) * (double)si.mem_unit;
        if (need > have)
            return debcm_fail("this dataset needs about %.1f GiB of memory (the video features alone: %lld x %lld "
                              "float32 = %.1f GiB), more than this machine's %.1f GiB of RAM and swap; lower "
                              "--videos, --pgc or --dim-v", need / gib,
                              (long long)(c->videos > c->pgc ? c->videos : c->pgc), (long long)c->dim_v,
                              feat_bytes / gib, have / gib);
    }
    int64_t rows = c->videos > c->pgc ? c->videos : c->pgc;
    if (!(s->feat = alloc_array(rows * c->dim_v, sizeof *s->feat, "video features")))
        return debcm_error_prefix("cannot allocate the largest buffer before writing (%lld x %lld float32)",
                                  (long long)rows, (long long)c->dim_v);
    return 0;
}

/* Whether path holds part of a dataset: anything but a directory (a file, a link), or a directory with anything in
 * it other than empty directories. The empty data_pgc/ and data_matching/100neg/ that a run killed by a signal
 * leaves (its handler removes only the temporary file) are no dataset, and no reason to ask for --force. */
static int holds_data(const char *path, int depth)
{
    struct stat sb;
    if (lstat(path, &sb) != 0)
        return 0;
    if (!S_ISDIR(sb.st_mode) || depth > 8)
        return 1;
    DIR *d = opendir(path);
    if (!d)
        return 1; /* cannot tell: assume it does */
    int found = 0;
    char sub[PATH_MAX];
    for (struct dirent *e; !found && (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        int n = snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
        found = n < 0 || (size_t)n >= sizeof sub || holds_data(sub, depth + 1);
    }
    closedir(d);
    return found;
}

/* ROOT, data_pgc/, data_matching/ and data_matching/100neg/, each recorded if this run made it. An overwrite
 * starts by removing the completion marker, so that a dataset interrupted halfway never looks complete — only
 * when it exists, so that what is reported on a read-only or unwritable ROOT is the first thing that really had
 * to be created, not the removal of a file that is not there. */
static int make_dirs(synth_state *s, const char *root)
{
    char path[PATH_MAX];
    struct stat sb;
    size_t made;
    if (mkdir_p(root, &s->root_created))
        return -1;
    if (join_path(path, root, SYNTH_STATS_FILE))
        return -1;
    if (lstat(path, &sb) == 0 && unlink(path) != 0 && errno != ENOENT)
        return debcm_fail("cannot remove '%s': %s", path, strerror(errno));
    if (join_path(path, root, "data_pgc") || mkdir_p(path, &made))
        return -1;
    s->made_pgc = made != 0;
    if (join_path(path, root, "data_matching") || mkdir_p(path, &made))
        return -1;
    s->made_matching = made != 0;
    if (join_path(path, root, "data_matching/100neg") || mkdir_p(path, &made))
        return -1;
    s->made_neg = made != 0;
    return 0;
}

int synth_write(const char *root, const synth_config *c, int force, synth_stats *stats)
{
    return synth_write_with_marker(root, c, force, stats, NULL, NULL);
}

int synth_write_with_marker(const char *root, const synth_config *c, int force, synth_stats *stats,
                            synth_marker_fn marker, void *ctx)
{
    static const char *const markers[] = {"data_pgc", "data_matching", SYNTH_STATS_FILE};
    char path[PATH_MAX];
    synth_stats st;
    synth_state s;
    memset(&st, 0, sizeof st);
    memset(&s, 0, sizeof s);
    if (synth_config_validate(c))
        return -1;
    /* every path of the layout (with its temporary suffix) must fit; found out now, not after minutes of work */
    if (join_path(path, root, SYNTH_LONGEST_FILE) || atomic_file_check_path(path))
        return -1;

    for (size_t i = 0; i < sizeof markers / sizeof markers[0]; i++) {
        if (join_path(path, root, markers[i]))
            return -1;
        if (!force && holds_data(path, 0))
            return debcm_fail("'%s' already holds a dataset (%s exists); pass --force to overwrite it", root, path);
    }
    if (reserve_memory(&s, c)) {
        synth_state_free(&s);
        return -1;
    }
    int rc = make_dirs(&s, root);

#if defined(OPENBLAS_VERSION)
    /* We parallelise over blocks of rows ourselves; OpenBLAS threads inside each call would make its split (and
     * with it, possibly, the rounding of edge tiles) depend on the thread count, and oversubscribe the cores. */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
#endif
    if (!rc)
        rc = build_musics(&s, c);
    if (!rc)
        rc = write_pgc(&s, c, root, &st);
    if (!rc)
        rc = write_matching(&s, c, root, &st);
#if defined(OPENBLAS_VERSION)
    openblas_set_num_threads(blas_threads);
#endif
    if (!rc && marker)
        rc = marker(root, &st, ctx);
    if (rc)
        undo_created(&s, root);
    synth_state_free(&s);
    if (rc)
        return -1;
    if (stats)
        *stats = st;
    return 0;
}
