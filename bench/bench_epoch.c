/* bench/bench_epoch.c — a backend's epoch throughput at the published sizes (batch 1024, L 128, k 40),
 * beside the machine's SGEMM ceiling. It measures (1) cblas_sgemm at every shape one training step issues (the
 * linear layers' forward, dx and dW products, the similarity matrix S = Zm·Zvᵀ and its two backward products,
 * the student's confounder layer and the frozen teacher's encoders), GFLOP/s per shape, median of several runs
 * after a warm-up, and from them the GEMM-only time of a step: the "floor" an epoch could reach if it were all
 * BLAS at this machine's speed; (2) a teacher epoch and a student epoch (the student distils from the teacher
 * trained by the teacher epochs), through the trainer's own phase API (engine/train.h: train_phase_begin, then
 * train_phase_epoch, which does not validate): ms/epoch, samples/s and achieved GFLOP/s, median of N epochs
 * after one warm-up epoch, and the time of the teacher's posterior cache; (3) one validation of each protocol (the student's 100-negative evaluation on val, the
 * teacher's full ranking on data_pgc val), median of a few runs after a warm-up; (4) the peak RSS.
 * Usage: bench_epoch ROOT [--epochs N] [--threads N] [--only teacher|student] [--teacher-cache on|off]
 *                          [--device cpu|cuda] [--tf32]   (make ROOT with `debcm synth --scale tt150k --out ROOT`)
 * With --device cuda the same runs use the CUDA table, the ceiling is cuBLAS's SGEMM at the same shapes, and the
 * device memory in use is printed. */
#include <cblas.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <jansson.h>

#include "engine/error.h"
#include "engine/train.h"
#include "io/dataset.h"
#include "io/json_file.h"
#include "models/model.h"
#ifdef DEBCM_WITH_CUDA
#include "kernels/cuda_bench.h"
#include "kernels/cuda_ops.h"
#endif

/* OpenBLAS's own (not in every cblas.h) */
void openblas_set_num_threads(int n);
int openblas_get_num_threads(void);
char *openblas_get_config(void);

#define SEED 20240607ull
#define SHUFFLE_STREAM 0x42454e4348ull /* "BENCH": any stream; the order does not change the cost */
#define MAX_RUNS 32
#define SGEMM_RUNS 7
#define EVAL_RUNS 3

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_RUNS];
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static void cpu_model(char *buf, size_t n)
{
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *p = strchr(line, ':');
            if (p) {
                p += 1 + (p[1] == ' ');
                p[strcspn(p, "\n")] = '\0';
                snprintf(buf, n, "%s", p);
            }
            break;
        }
    fclose(f);
}

/* ---- the GEMMs of one step --------------------------------------------------------------------------------------
 * Every cblas_sgemm the CPU ops issue in one model_train_step, as engine/ops_cpu.c calls them (row-major; 'N'/'T'
 * = the transposes of A and B; C[M,N] = op(A)·op(B), 2·M·N·K FLOPs). A linear layer in→out on B rows costs
 * forward NT(B, out, in), backward dx NN(B, in, out) and dW TN(out, in, B): 3 × 2·B·in·out. Per step:
 *   encoders E_m (D_m → L) and E_v (D_v → L), two linears each (fc_mu, fc_logvar), forward + dx + dW:
 *       12·B·L·(D_m + D_v)
 *   decoders R_m (L → D_m), R_v (L → D_v), forward + dx + dW:                  6·B·L·(D_m + D_v)
 *   matching: S = Zm·Zvᵀ, dZm = dS·Zv, dZv = dSᵀ·Zm:                           6·B²·L
 *   student only: confounder zc = zm·W2ᵀ, dW2 = dzcᵀ·zm, dzm = dzc·W2:        6·B·L²
 *                 the frozen teacher's encoders, forward only (eval mode):     4·B·L·(D_m + D_v)
 *                 (not per step with the teacher cache: once per phase, 4·n·L·D_v + 4·N_m·L·D_m, timed apart)
 *   teacher step = 18·B·L·(D_m + D_v) + 6·B²·L
 *   student step = 18·B·L·(D_m + D_v) + 6·B²·L + 6·B·L² (+ 4·B·L·(D_m + D_v) without the teacher cache)
 * The element-wise ops (BatchNorm, dropout, L2 norm, top-k, Adam, ...) are not counted: they are memory-bound,
 * and the gap between the achieved rate and the GEMM floor is their time (plus BLAS's at small shapes). */
typedef struct {
    char ta, tb;
    int64_t M, N, K;
    int count;          /* calls per step */
    const char *what;
} gemm_shape;

static int step_gemms(gemm_shape *g, int student, int teacher_cache, int64_t B, int64_t Dv, int64_t Dm, int64_t L)
{
    int n = 0;
    const int64_t D[2] = {Dm, Dv};
    const char *enc[2] = {"E_m linear", "E_v linear"}, *dec[2] = {"R_m linear", "R_v linear"};
    for (int i = 0; i < 2; i++) {
        g[n++] = (gemm_shape){'N', 'T', B, L, D[i], 2, enc[i]};      /* forward, fc_mu and fc_logvar */
        g[n++] = (gemm_shape){'N', 'N', B, D[i], L, 2, enc[i]};      /* dx */
        g[n++] = (gemm_shape){'T', 'N', L, D[i], B, 2, enc[i]};      /* dW */
        g[n++] = (gemm_shape){'N', 'T', B, D[i], L, 1, dec[i]};      /* forward L → D */
        g[n++] = (gemm_shape){'N', 'N', B, L, D[i], 1, dec[i]};      /* dx */
        g[n++] = (gemm_shape){'T', 'N', D[i], L, B, 1, dec[i]};      /* dW */
    }
    g[n++] = (gemm_shape){'N', 'T', B, B, L, 1, "S = Zm Zv^T"};
    g[n++] = (gemm_shape){'N', 'N', B, L, B, 1, "dZm = dS Zv"};
    g[n++] = (gemm_shape){'T', 'N', B, L, B, 1, "dZv = dS^T Zm"};
    if (student) {
        g[n++] = (gemm_shape){'N', 'T', B, L, L, 1, "confounder"};
        g[n++] = (gemm_shape){'T', 'N', L, L, B, 1, "confounder"};
        g[n++] = (gemm_shape){'N', 'N', B, L, L, 1, "confounder"};
        if (!teacher_cache) {
            g[n++] = (gemm_shape){'N', 'T', B, L, Dm, 2, "teacher E_m"};
            g[n++] = (gemm_shape){'N', 'T', B, L, Dv, 2, "teacher E_v"};
        }
    }
    return n;
}

/* the formula above, for a batch of B rows */
static double step_flops(int student, int teacher_cache, double B, double Dv, double Dm, double L)
{
    double f = 18.0 * B * L * (Dm + Dv) + 6.0 * B * B * L;
    if (student)
        f += (teacher_cache ? 0.0 : 4.0 * B * L * (Dm + Dv)) + 6.0 * B * L * L;
    return f;
}

/* median seconds of one sgemm of this shape (warm-up first) */
static int use_cuda; /* --device cuda: the GEMM ceiling is cuBLAS's, the epochs run on the CUDA table */

static double time_sgemm(const gemm_shape *s, float *A, float *Bm, float *C, int runs)
{
#ifdef DEBCM_WITH_CUDA
    if (use_cuda) {
        double sec = 0.0;
        if (cuda_time_sgemm(s->ta, s->tb, (int)s->M, (int)s->N, (int)s->K, runs, &sec))
            fprintf(stderr, "bench_epoch: %s\n", debcm_last_error());
        return sec > 0.0 ? sec : 1e30;
    }
#endif
    const int M = (int)s->M, N = (int)s->N, K = (int)s->K;
    const int lda = s->ta == 'N' ? K : M, ldb = s->tb == 'N' ? N : K;
    double t[MAX_RUNS];
    for (int r = 0; r < runs + 1; r++) {
        double t0 = now_s();
        cblas_sgemm(CblasRowMajor, s->ta == 'N' ? CblasNoTrans : CblasTrans,
                    s->tb == 'N' ? CblasNoTrans : CblasTrans, M, N, K, 1.0f, A, lda, Bm, ldb, 0.0f, C, N);
        double dt = now_s() - t0;
        if (r > 0)
            t[r - 1] = dt;
    }
    return median(t, runs);
}

typedef struct {
    double gemm_s;  /* GEMM-only seconds of one full-batch step */
    double flops;   /* counted FLOPs of one full-batch step */
} step_floor;

/* time every shape of both steps; prints one line per distinct shape */
static int sgemm_ceiling(step_floor fl[2], int teacher_cache, int64_t B, int64_t Dv, int64_t Dm, int64_t L,
                         double *best_gflops)
{
    gemm_shape g[2][24];
    int n[2] = {step_gemms(g[0], 0, teacher_cache, B, Dv, Dm, L), step_gemms(g[1], 1, teacher_cache, B, Dv, Dm, L)};
    size_t cap = 0;
    for (int p = 0; p < 2; p++)
        for (int i = 0; i < n[p]; i++) {
            size_t a = (size_t)(g[p][i].M * g[p][i].K), b = (size_t)(g[p][i].K * g[p][i].N);
            size_t c = (size_t)(g[p][i].M * g[p][i].N);
            cap = a > cap ? a : cap;
            cap = b > cap ? b : cap;
            cap = c > cap ? c : cap;
        }
    float *A = malloc(cap * sizeof *A), *Bm = malloc(cap * sizeof *Bm), *C = malloc(cap * sizeof *C);
    if (!A || !Bm || !C) {
        free(A);
        free(Bm);
        free(C);
        return debcm_fail("out of memory for the SGEMM buffers");
    }
    for (size_t i = 0; i < cap; i++) {
        A[i] = (float)((i * 7u) % 13u) * 0.01f - 0.06f;
        Bm[i] = (float)((i * 5u) % 11u) * 0.01f - 0.05f;
        C[i] = 0.0f;
    }
    /* a global warm-up first (BLAS threads woken, clocks up): the E_v forward shape for at least 1 s */
    for (double t0 = now_s(); now_s() - t0 < 1.0;)
        time_sgemm(&g[1][6], A, Bm, C, 1);
    /* time the distinct shapes once (the student's list starts with the teacher's) */
    double t[24];
    *best_gflops = 0.0;
    printf("\nSGEMM at the step's shapes (%s, row-major, median of %d after a warm-up)\n",
           use_cuda ? "cuBLAS" : "cblas_sgemm", SGEMM_RUNS);
    printf("  %-14s %-2s %5s %5s %5s  %5s  %9s  %8s\n", "layer", "op", "M", "N", "K", "calls", "ms", "GFLOP/s");
    for (int i = 0; i < n[1]; i++) {
        const gemm_shape *s = &g[1][i];
        t[i] = time_sgemm(s, A, Bm, C, SGEMM_RUNS);
        double gf = 2.0 * (double)s->M * (double)s->N * (double)s->K / t[i] / 1e9;
        if (gf > *best_gflops)
            *best_gflops = gf;
        printf("  %-14s %c%c %5lld %5lld %5lld  %5d  %9.3f  %8.1f\n", s->what, s->ta, s->tb, (long long)s->M,
               (long long)s->N, (long long)s->K, s->count, 1e3 * t[i], gf);
    }
    for (int p = 0; p < 2; p++) {
        fl[p].gemm_s = 0.0;
        fl[p].flops = 0.0;
        for (int i = 0; i < n[p]; i++) { /* g[0][i] == g[1][i] for i < n[0] */
            fl[p].gemm_s += g[p][i].count * t[i];
            fl[p].flops += g[p][i].count * 2.0 * (double)g[p][i].M * (double)g[p][i].N * (double)g[p][i].K;
        }
    }
    free(A);
    free(Bm);
    free(C);
    return 0;
}

/* ---- epochs, through engine/train.h's phase API (the trainer's own loop, without its validation) ------------ */

typedef struct {
    double ms, samples_s, gflops, floor_ms, spread_lo, spread_hi, cache_ms;
    int64_t samples, steps;
    double flops_step; /* full batch */
} epoch_result;

/* the counted FLOPs of one epoch of n rows in batches of Bmax (a last batch of one row is skipped) */
static double epoch_flops(int student, int teacher_cache, int64_t n, int64_t Bmax, const model_dims *d)
{
    double f = 0.0;
    for (int64_t b0 = 0; b0 < n; b0 += Bmax) {
        int64_t B = n - b0 < Bmax ? n - b0 : Bmax;
        if (B > 1)
            f += step_flops(student, teacher_cache, (double)B, (double)d->D_v, (double)d->D_m, (double)d->L);
    }
    return f;
}

static int bench_phase(int student, debcm_net *net, const debcm_net *teacher, const train_data *td,
                       const model_config *cfg, int teacher_cache, int epochs, const step_floor *fl,
                       epoch_result *res)
{
    train_phase_opts opt;
    memset(&opt, 0, sizeof opt);
    opt.seed = SEED;
    opt.teacher_recompute = !teacher_cache;
    train_phase *ph = NULL;
    double cache_s = 0.0;
    if (train_phase_begin(&ph, student, net, teacher, td, cfg, &opt, &cache_s))
        return -1;
    double t[MAX_RUNS];
    train_epoch_stats st;
    for (int e = 0; e <= epochs; e++) { /* epoch 0 is the warm-up */
        if (train_phase_epoch(ph, e + 1, 0, &st)) {
            train_phase_end(ph);
            return -1;
        }
        if (e > 0)
            t[e - 1] = st.seconds;
    }
    train_phase_end(ph);
    int64_t n = student ? td->ds->train.n : td->ds->pgc_train.n, Bmax = cfg->batch < n ? cfg->batch : n;
    double flops = epoch_flops(student, teacher_cache, n, Bmax, &net->dims);
    double med = median(t, epochs), lo = t[0], hi = t[0];
    for (int e = 1; e < epochs; e++) {
        lo = t[e] < lo ? t[e] : lo;
        hi = t[e] > hi ? t[e] : hi;
    }
    res->ms = 1e3 * med;
    res->spread_lo = 1e3 * lo;
    res->spread_hi = 1e3 * hi;
    res->cache_ms = 1e3 * cache_s;
    res->samples = st.samples;
    res->steps = st.batches;
    res->samples_s = (double)st.samples / med;
    res->gflops = flops / med / 1e9;
    res->flops_step = fl->flops;
    res->floor_ms = 1e3 * flops / (fl->flops / fl->gemm_s); /* the epoch's FLOPs at the step's GEMM-mix rate */
    return 0;
}

/* median ms of one validation (warm-up first); which: 0 teacher full ranking, 1 student 100 negatives */
static int bench_eval(int which, const debcm_net *net, const train_data *td, int64_t B, double *ms,
                      double *recall)
{
    const debcm_dataset *ds = td->ds;
    model_workspace ws;
    memset(&ws, 0, sizeof ws);
    if (model_workspace_create(&ws, net->ops, &net->dims, B))
        return -1;
    double t[MAX_RUNS];
    int rc = 0;
    for (int r = 0; r < EVAL_RUNS + 1 && !rc; r++) {
        model_eval_result e;
        memset(&e, 0, sizeof e);
        e.nK = 1;
        e.K[0] = 25;
        double t0 = now_s();
        rc = which ? model_eval_negatives(net, &ws, ds->ugc_video.data, ds->ugc_video.rows, td->ugc_music,
                                          ds->ugc_vggish.rows, ds->prior_mean, &ds->val, &e)
                   : model_eval_full_rank(net, &ws, ds->pgc_video.data, ds->pgc_video.rows, td->pgc_music,
                                          ds->pgc_vggish.rows, &ds->pgc_val, &e);
        if (r > 0)
            t[r - 1] = now_s() - t0;
        *recall = e.recall[0];
    }
    model_workspace_free(&ws);
    if (rc)
        return -1;
    *ms = 1e3 * median(t, EVAL_RUNS);
    return 0;
}

/* one line on stderr and the usage exit status, as debcm's commands do */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_epoch: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see --help)\n");
    va_end(ap);
    return 2;
}

static int parse_int_in(const char *s, long lo, long hi, int *out)
{
    char *end;
    errno = 0;
    long x = strtol(s, &end, 10);
    if (errno || end == s || *end || x < lo || x > hi)
        return -1;
    *out = (int)x;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: bench_epoch ROOT [--epochs N] [--threads N] [--only teacher|student]\n"
               "                        [--teacher-cache on|off] [--device cpu|cuda] [--tf32] [--json FILE]\n\n"
               "Teacher and student epoch throughput of a backend at the published sizes (batch 1024, L 128,\n"
               "k 40), median of N epochs (default 2) after one warm-up epoch, beside the SGEMM ceiling at the\n"
               "step's shapes; one validation of each protocol; peak RSS. --threads: OpenMP and OpenBLAS threads\n"
               "(default: theirs). --only: time one phase (e.g. under perf record; the student then distils\n"
               "from an initialised teacher). --teacher-cache: as debcm run's (on: the frozen teacher's posteriors\n"
               "computed once per phase, timed apart). --device cuda: the CUDA backend, beside cuBLAS's SGEMM\n"
               "ceiling, and the device memory in use (--tf32: TF32 GEMMs). --json: the numbers also as JSON.\n"
               "Make ROOT with\n"
               "`debcm synth --scale tt150k --out ROOT`.\n");
}

int main(int argc, char **argv)
{
    const char *root = NULL;
    int epochs = 2, threads = 0, only = -1; /* only: -1 both phases, 0 teacher, 1 student (for perf) */
    int teacher_cache = 1, tf32 = 0;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = !strcmp(a, "--epochs") || !strcmp(a, "--threads") || !strcmp(a, "--only") ||
                    !strcmp(a, "--teacher-cache") || !strcmp(a, "--device") || !strcmp(a, "--json");
        if (takes && !v)
            return usage_error("option '%s' needs a value", a);
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--epochs")) {
            if (parse_int_in(v, 1, MAX_RUNS, &epochs))
                return usage_error("--epochs expects an integer in [1, %d], found '%s'", MAX_RUNS, v);
        } else if (!strcmp(a, "--threads")) {
            if (parse_int_in(v, 1, 4096, &threads))
                return usage_error("--threads expects an integer in [1, 4096], found '%s'", v);
        } else if (!strcmp(a, "--only")) {
            only = !strcmp(v, "teacher") ? 0 : !strcmp(v, "student") ? 1 : -2;
            if (only == -2)
                return usage_error("--only expects teacher or student, found '%s'", v);
        } else if (!strcmp(a, "--teacher-cache")) {
            teacher_cache = !strcmp(v, "on") ? 1 : !strcmp(v, "off") ? 0 : -1;
            if (teacher_cache < 0)
                return usage_error("--teacher-cache expects on or off, found '%s'", v);
        } else if (!strcmp(a, "--device")) {
            use_cuda = !strcmp(v, "cuda") ? 1 : !strcmp(v, "cpu") ? 0 : -1;
            if (use_cuda < 0)
                return usage_error("--device expects cpu or cuda, found '%s'", v);
        } else if (!strcmp(a, "--tf32")) {
            tf32 = 1;
        } else if (!strcmp(a, "--json")) {
            json_path = v;
        } else if (a[0] == '-') {
            return usage_error("unknown option '%s'", a);
        } else if (root) {
            return usage_error("unexpected argument '%s' (ROOT is '%s')", a, root);
        } else {
            root = a;
        }
        i += takes;
    }
    if (!root)
        return usage_error("need ROOT (a dataset in the published layout: debcm synth --scale tt150k --out ROOT)");
    if (tf32 && !use_cuda)
        return usage_error("--tf32 applies to --device cuda only");
    if (threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(threads);
#endif
        openblas_set_num_threads(threads);
    }
    int omp_threads = 1;
#ifdef _OPENMP
    omp_threads = omp_get_max_threads();
#endif

    struct utsname u;
    uname(&u);
    char cpu[256];
    cpu_model(cpu, sizeof cpu);
    printf("machine          %s %s %s; %s\n", u.sysname, u.release, u.machine, cpu);
    double la[3] = {0, 0, 0};
    getloadavg(la, 3);
    printf("threads          %ld CPUs online; used: OpenMP %d, OpenBLAS %d (%s); load average %.2f at the start\n",
           sysconf(_SC_NPROCESSORS_ONLN), omp_threads, openblas_get_num_threads(), openblas_get_config(), la[0]);

    char pgc[2048], ugc[2048];
    snprintf(pgc, sizeof pgc, "%s/data_pgc", root);
    snprintf(ugc, sizeof ugc, "%s/data_matching", root);
    debcm_dataset ds;
    double t0 = now_s();
    if (dataset_load(&ds, pgc, ugc)) {
        fprintf(stderr, "bench_epoch: %s\n", debcm_last_error());
        dataset_free(&ds);
        return 1;
    }
    double t_load = now_s() - t0;
    model_config tc, sc;
    model_config_default(&tc, 0);
    model_config_default(&sc, 1);
    train_data td;
    if (train_data_build(&td, &ds, tc.L)) {
        fprintf(stderr, "bench_epoch: %s\n", debcm_last_error());
        dataset_free(&ds);
        return 1;
    }
    const int64_t B = tc.batch, L = tc.L, Dv = td.dims.D_v, Dm = td.dims.D_m;
    printf("dataset          %s (load %.1f s): teacher %lld pairs, student %lld rows, D_v %lld, D_m %lld, G %lld\n",
           root, t_load, (long long)ds.pgc_train.n, (long long)ds.train.n, (long long)Dv, (long long)Dm,
           (long long)td.dims.G);
    printf("config           batch %lld, L %lld, k %lld, epochs: 1 warm-up + %d timed\n", (long long)B,
           (long long)L, (long long)tc.match.k, epochs);

    step_floor fl[2];
    double best = 0.0;
    int rc = 1;
    debcm_net teacher, student;
    memset(&teacher, 0, sizeof teacher);
    memset(&student, 0, sizeof student);
    const debcm_ops *ops = debcm_ops_cpu();
    if (use_cuda) {
#ifdef DEBCM_WITH_CUDA
        ops = debcm_ops_cuda();
        if (!ops || cuda_set_tf32(tf32))
            goto fail;
        printf("device           %s, CUDA backend%s\n", cuda_device_name(), tf32 ? ", TF32 GEMMs" : ", FP32 GEMMs");
#else
        (void)tf32;
        debcm_fail("--device cuda: this build has no CUDA backend");
        goto fail;
#endif
    }
    if (sgemm_ceiling(fl, teacher_cache, B, Dv, Dm, L, &best))
        goto fail;

    model_dims dt = train_dims(&td, 0), dsd = train_dims(&td, 1);
    if (net_create(&teacher, ops, &dt, 0) || net_init(&teacher, SEED) || net_create(&student, ops, &dsd, 1) ||
        net_init(&student, SEED + 1))
        goto fail;
    epoch_result er[2];
    memset(er, 0, sizeof er);
    if ((only != 1 && bench_phase(0, &teacher, NULL, &td, &tc, teacher_cache, epochs, &fl[0], &er[0])) ||
        (only != 0 && bench_phase(1, &student, &teacher, &td, &sc, teacher_cache, epochs, &fl[1], &er[1])))
        goto fail;
    double ev_ms[2], ev_r[2];
    if (bench_eval(0, &teacher, &td, B, &ev_ms[0], &ev_r[0]) || bench_eval(1, &student, &td, B, &ev_ms[1], &ev_r[1]))
        goto fail;

    printf("\nceiling          best SGEMM shape %.1f GFLOP/s; GEMM-mix rate of a step: teacher %.1f, student %.1f "
           "GFLOP/s\n", best, fl[0].flops / fl[0].gemm_s / 1e9, fl[1].flops / fl[1].gemm_s / 1e9);
    printf("\n%-8s %6s %9s %10s %21s %11s %10s %8s %10s %7s\n", "phase", "steps", "samples", "ms/epoch",
           "(min..max)", "samples/s", "GFLOP/step", "GFLOP/s", "floor ms", "floor%");
    for (int p = 0; p < 2; p++) {
        if (only >= 0 && p != only)
            continue;
        char spread[48];
        snprintf(spread, sizeof spread, "(%.0f..%.0f)", er[p].spread_lo, er[p].spread_hi);
        printf("%-8s %6lld %9lld %10.0f %21s %11.0f %10.2f %8.1f %10.0f %6.1f%%\n", p ? "student" : "teacher",
               (long long)er[p].steps, (long long)er[p].samples, er[p].ms, spread, er[p].samples_s,
               er[p].flops_step / 1e9, er[p].gflops, er[p].floor_ms, 100.0 * er[p].floor_ms / er[p].ms);
    }
    printf("(floor = the epoch's counted GEMM FLOPs at the step's GEMM-mix rate; floor%% = floor / measured)\n");
    if (only != 0)
        printf("teacher cache    %s\n",
               teacher_cache ? "on" : "off: the frozen teacher's encoders run every student step");
    if (only != 0 && teacher_cache)
        printf("                 the frozen teacher's posteriors of the student's %lld rows and %lld musics: %.0f ms "
               "once per run\n", (long long)ds.train.n, (long long)ds.ugc_vggish.rows, er[1].cache_ms);
    printf("\nvalidation       teacher full ranking on data_pgc val (%lld pairs, %lld musics): %.0f ms  (R@25 %.4f)\n",
           (long long)ds.pgc_val.n, (long long)ds.pgc_vggish.rows, ev_ms[0], ev_r[0]);
    printf("                 student %lld negatives on val (%lld rows): %.0f ms  (R@25 %.4f)   median of %d\n",
           (long long)ds.val.n_neg, (long long)ds.val.n, ev_ms[1], ev_r[1], EVAL_RUNS);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    if (getloadavg(la, 3) == 3)
        printf("load average     %.2f %.2f %.2f at the end (above the threads used: another process shared the "
               "CPUs)\n", la[0], la[1], la[2]);
#ifdef DEBCM_WITH_CUDA
    size_t dev_used = 0, dev_total = 0;
    if (use_cuda && !cuda_memory_in_use(&dev_used, &dev_total))
        printf("device memory    %.2f GiB in use of %.1f GiB after the runs (every buffer is allocated up front)\n",
               (double)dev_used / 1073741824.0, (double)dev_total / 1073741824.0);
#endif
    printf("peak RSS         %.2f GiB (ru_maxrss; the feature files are memory-mapped and count once touched)\n",
           (double)ru.ru_maxrss / (1024.0 * 1024.0));
    if (json_path) { /* the same numbers for bench/compare.py */
        json_t *ph = json_object();
        for (int p = 0; p < 2; p++) {
            if (only >= 0 && p != only)
                continue;
            json_object_set_new(ph, p ? "student" : "teacher",
                                json_pack("{s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "steps", (json_int_t)er[p].steps,
                                          "samples", (json_int_t)er[p].samples, "ms_per_epoch", er[p].ms,
                                          "samples_per_s", er[p].samples_s, "gflop_per_step", er[p].flops_step / 1e9,
                                          "gflops", er[p].gflops, "floor_ms", er[p].floor_ms, "cache_ms",
                                          p ? er[p].cache_ms : 0.0));
        }
        json_t *jroot = json_pack("{s:s, s:s, s:i, s:f, s:o, s:{s:f, s:f}, s:f, s:f}", "machine", cpu, "device",
                                 use_cuda ? "cuda" : "cpu", "threads", omp_threads, "gemm_mix_gflops",
                                 fl[1].flops / fl[1].gemm_s / 1e9, "phases", ph, "validation_ms", "teacher", ev_ms[0],
                                 "student", ev_ms[1], "peak_rss_bytes", (double)ru.ru_maxrss * 1024.0,
                                 "device_memory_bytes", 0.0);
#ifdef DEBCM_WITH_CUDA
        if (jroot && use_cuda)
            json_object_set_new(jroot, "device_memory_bytes", json_real((double)dev_used));
#endif
        if (!jroot || json_file_write(jroot, json_path)) {
            if (!jroot)
                debcm_fail("%s: could not build the JSON results", json_path);
            json_decref(jroot);
            goto fail;
        }
        json_decref(jroot);
        printf("json             %s\n", json_path);
    }
    rc = 0;
fail:
    if (rc)
        fprintf(stderr, "bench_epoch: %s\n", debcm_last_error());
    net_free(&teacher);
    net_free(&student);
    train_data_free(&td);
    dataset_free(&ds);
    return rc;
}
