/* tests/test_cuda_parity.c — the CUDA ops table (kernels/cuda_ops.h) against the CPU oracle (engine/ops_cpu.c):
 * every op of engine/ops.h, forward and backward, on the same random inputs of awkward sizes (B ∈ {2, 3, 37,
 * 1024, 1030}, D ∈ {1, 5, 128, 257, 2048}, k capped at B − 1, the three matching and two distillation variants),
 * each CUDA tensor living in device memory from ops->alloc + upload with 64 sentinel bytes (a NaN pattern) on both
 * sides that must survive the op, and results brought back with ops->download. Forward outputs are compared with a
 * relative tolerance (max |cuda − cpu| over max |cpu|: 1e-5 elementwise, 1e-4 for GEMMs and reductions); backwards
 * start from d-outputs pre-filled with non-zero values of the size of their contribution (the += contract) and are
 * compared on the contribution; NULL d-outputs must be accepted; every output must be finite; inputs must come
 * back unchanged; and the same op run twice on the GPU must give bit-identical bytes. Philox dropout masks must
 * be byte-identical to the CPU's and normals within a few ulp, at odd counters across the 32-bit boundary. The
 * matching op is checked twice: its top-k selection must be exactly the one math.h's topk_select makes from the
 * GPU's own S (and bit-equal to the CPU's when the inputs are dyadic so that S is exact on both), and its backward
 * is fed the same S and selection on both sides. The evaluation ops take device scores and host results and are
 * compared with ties and NaN scores. Then the models (models/model.h): one model_train_step of the teacher and of
 * the student from the same net_init and the same Philox draws on both tables (losses to 1e-4 relative, every
 * gradient and running statistic of net_tensor_get to 1e-3 in relative norm, 1e-2 when near-ties of S made the
 * two tables pick a different top-k negative, which is then printed), model_eval_negatives and
 * model_eval_full_rank. gather_rows (B from 0, D from 1 to 2048, repeated and out-of-order indices) must be a
 * bit-exact copy of src[idx[r]], and on a real GPU also past 2^31 floats of offset. Then the training loop
 * (engine/train.c, train_phase_begin/epoch): two epochs of a teacher and of a student (teacher cache on and off) on
 * a tiny synthetic dataset written in process, per-epoch losses to 1e-4 relative (exact with --fake-gpu). A per-op
 * table of the worst error is printed. Exit 77 ("no GPU: skipped") when no GPU is visible; a GPU that is visible
 * but refused by the backend is a failure. With --fake-gpu (and --quick for the small sizes only) the same checks
 * run without a GPU against the CPU table behind a wrapper that verifies every pointer is device or host memory as
 * the op's contract says: the harness's own self-test (see "the fake GPU" below). */
#include <float.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "engine/error.h"
#include "engine/math.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "kernels/cuda_device.h"
#include "kernels/cuda_ops.h"
#include "engine/train.h"
#include "io/synth.h"
#include "models/model.h"

#define GUARD 64        /* sentinel bytes on each side of every device tensor (keeps the payload 64-byte aligned) */
#define ELEM_TOL 1e-5   /* elementwise ops */
#define RED_TOL 1e-4    /* GEMMs and reductions */
#define NORMAL_ULPS 16  /* Philox normals: CUDA's logf/cosf against glibc's */
#define MODEL_LOSS_TOL 1e-4
#define MODEL_GRAD_TOL 1e-3

static const debcm_ops *ops_c; /* the oracle */
static const debcm_ops *ops_g; /* under test */
static int quick;              /* --quick: the small sizes only (the fake-GPU self-test in the CPU suite) */

static const int64_t Bs[] = {2, 3, 37, 1024, 1030};
static const int64_t Ds[] = {1, 5, 128, 257, 2048};
#define NB (int)(sizeof Bs / sizeof Bs[0])
#define ND (int)(sizeof Ds / sizeof Ds[0])

static _Noreturn void die(const char *what)
{
    fprintf(stderr, "test_cuda_parity: %s: %s\n", what, debcm_last_error());
    exit(1);
}

static void *xcalloc(size_t n)
{
    void *p = calloc(1, n ? n : 1);
    if (!p) {
        fprintf(stderr, "test_cuda_parity: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* ---- random inputs (Philox, so a failure reproduces) ------------------------------------------------------------ */

static const uint64_t SEED = 0x5eed2025cafeull;
static uint64_t draw_i;
static float urand(float lo, float hi) { return lo + (hi - lo) * rng_uniform(SEED, 11, draw_i++); }
static void fill_u(float *x, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = urand(lo, hi);
}
static void fill_n(float *x, int64_t n, float sd)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = sd * rng_normal(SEED, 12, draw_i++);
}
/* dyadic values j/8, j ∈ [−8, 8]: every product and sum of the matching GEMM is exact in float */
static void fill_dyadic(float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)((int)(urand(0.0f, 17.0f)) - 8) / 8.0f;
}

/* ---- the per-op table -------------------------------------------------------------------------------------------- */

typedef struct {
    const char *op;
    int cases;
    double worst, worst_tol; /* the error closest to (or furthest past) its tolerance, and that tolerance */
    double worst_ratio;
    char worst_at[256];
    int fails, guard, nonfinite, nondet, modified, rcfail;
} op_stat;

static op_stat stats[96];
static int nstats;
static const char *cur_op = "";
static char cur_where[128];

static op_stat *stat_for(const char *op)
{
    for (int i = 0; i < nstats; i++)
        if (!strcmp(stats[i].op, op))
            return &stats[i];
    if (nstats == (int)(sizeof stats / sizeof stats[0]))
        die("too many ops in the table");
    op_stat *s = &stats[nstats++];
    memset(s, 0, sizeof *s);
    s->op = op;
    return s;
}

static void begin(const char *op, const char *fmt, ...) DEBCM_PRINTF(2, 3);
static void begin(const char *op, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cur_where, sizeof cur_where, fmt, ap);
    va_end(ap);
    cur_op = op;
    stat_for(op)->cases++;
}

/* record an error against its tolerance (exact comparisons: tol 0, err = mismatches) */
static void note(const char *what, double err, double tol)
{
    op_stat *s = stat_for(cur_op);
    double ratio = tol > 0 ? err / tol : (err > 0 ? INFINITY : 0.0);
    if (err != err)
        ratio = INFINITY;
    if (ratio >= s->worst_ratio || !s->worst_at[0]) {
        s->worst_ratio = ratio;
        s->worst = err;
        s->worst_tol = tol;
        snprintf(s->worst_at, sizeof s->worst_at, "%s %s", cur_where, what);
    }
    if (!(err <= tol))
        s->fails++;
    CHECK_MSG(err <= tol, "%s %s %s: error %.3g > tolerance %.3g", cur_op, cur_where, what, err, tol);
}

/* ---- tensors: a host copy for the CPU, a guarded device copy for the GPU ----------------------------------------- */

enum { KF32, KU8, KI32, KI64 };
enum {
    R_IN,      /* read only: must come back unchanged */
    R_OUT,     /* overwritten by the op: compared on its value */
    R_ACC,     /* accumulated into (+=): pre-filled, compared on the contribution */
    R_INOUT,   /* updated in place (running statistics, Adam moments): compared on its value */
    R_SCRATCH, /* the op's scratch: guards only */
    R_NOCMP,   /* an output checked elsewhere (guards and determinism here) */
};

typedef struct {
    const char *name;
    int kind, role;
    int64_t n;
    size_t bytes;
    double tol;  /* relative tolerance (KF32) */
    int ulps;    /* > 0: KF32 compared in ulps instead */
    int scaled;  /* R_ACC: pre-fill already sized to the contribution */
    void *init;  /* host: the contents before the op */
    void *h;     /* host: the CPU backend's copy */
    void *got;   /* host: downloaded from the GPU */
    void *det;   /* host: the GPU's first result (determinism) */
    unsigned char *dbase;
    void *d;     /* device: dbase + GUARD */
} tens;

#define MAXT 48
static tens pool[MAXT];
static int npool;
static unsigned char *img; /* a host image of one whole guarded allocation */
static size_t img_n;

static size_t kind_size(int k) { return k == KU8 ? 1 : k == KI64 ? 8 : 4; }
static unsigned char guard_byte(size_t i) { return (i & 3) == 3 ? 0x7F : 0xA5; } /* floats 0x7FA5A5A5: NaN */

static unsigned char *image(size_t n)
{
    if (n > img_n) {
        free(img);
        img = xcalloc(n);
        img_n = n;
    }
    return img;
}

static tens *tnew(const char *name, int kind, int role, int64_t n, double tol)
{
    if (npool == MAXT)
        die("too many tensors in one case");
    tens *t = &pool[npool++];
    memset(t, 0, sizeof *t);
    t->name = name;
    t->kind = kind;
    t->role = role;
    t->n = n;
    t->tol = tol;
    t->bytes = (size_t)n * kind_size(kind);
    t->init = xcalloc(t->bytes);
    t->h = xcalloc(t->bytes);
    t->got = xcalloc(t->bytes);
    t->det = xcalloc(t->bytes);
    size_t total = t->bytes + 2 * GUARD;
    t->dbase = ops_g->alloc(total);
    if (!t->dbase)
        die("ops->alloc on the GPU");
    t->d = t->dbase + GUARD;
    unsigned char *im = image(total);
    for (size_t i = 0; i < total; i++)
        im[i] = guard_byte(i);
    if (ops_g->upload(t->dbase, im, total))
        die("ops->upload of the sentinels");
    return t;
}

static void tfree_all(void)
{
    for (int i = 0; i < npool; i++) {
        ops_g->free(pool[i].dbase);
        free(pool[i].init);
        free(pool[i].h);
        free(pool[i].got);
        free(pool[i].det);
    }
    npool = 0;
}

/* the device copy back to init */
static void tset_dev(tens *t)
{
    if (t->bytes && ops_g->upload(t->d, t->init, t->bytes))
        die("ops->upload");
}

/* both copies back to init */
static void tset(tens *t)
{
    memcpy(t->h, t->init, t->bytes);
    tset_dev(t);
}

/* the GPU copy into got, checking the sentinels on both sides */
static void tfetch(tens *t)
{
    size_t total = t->bytes + 2 * GUARD;
    unsigned char *im = image(total);
    if (ops_g->download(im, t->dbase, total))
        die("ops->download");
    int bad = 0;
    for (size_t i = 0; i < total; i++)
        if ((i < GUARD || i >= GUARD + t->bytes) && im[i] != guard_byte(i))
            bad++;
    if (bad) {
        stat_for(cur_op)->guard++;
        CHECK_MSG(0, "%s %s: %d sentinel bytes around '%s' overwritten", cur_op, cur_where, bad, t->name);
    } else {
        check_count++;
    }
    memcpy(t->got, im + GUARD, t->bytes);
}

#define F(t) ((float *)(t)->init)

/* max |a − b| over max |b − base| (base NULL: over max |b|); NaN anywhere: infinity */
static double rel_err(const float *a, const float *b, const float *base, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d != d)
            return INFINITY;
        double r = fabs(base ? (double)b[i] - (double)base[i] : (double)b[i]);
        num = d > num ? d : num;
        den = r > den ? r : den;
    }
    if (num == 0.0)
        return 0.0;
    return num / (den > 0.0 ? den : 1e-300);
}

static int64_t float_order(float f)
{
    int32_t i;
    memcpy(&i, &f, sizeof i);
    return i >= 0 ? (int64_t)i : -(int64_t)(i & 0x7fffffff);
}

/* the largest distance in ulps, where |a − b| ≤ 1e-7 counts as 0 (a cos near its zero) */
static double ulp_err(const float *a, const float *b, int64_t n)
{
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (a[i] != a[i] || b[i] != b[i])
            return INFINITY;
        if (fabsf(a[i] - b[i]) <= 1e-7f)
            continue;
        int64_t d = float_order(a[i]) - float_order(b[i]);
        d = d < 0 ? -d : d;
        worst = d > worst ? d : worst;
    }
    return (double)worst;
}

static int64_t count_nonfinite(const float *a, int64_t n)
{
    int64_t c = 0;
    for (int64_t i = 0; i < n; i++)
        c += !isfinite(a[i]);
    return c;
}

static void compare_tensor(tens *t)
{
    if (t->role == R_IN) {
        int gpu_mod = memcmp(t->got, t->init, t->bytes) != 0, cpu_mod = memcmp(t->h, t->init, t->bytes) != 0;
        if (gpu_mod)
            stat_for(cur_op)->modified++;
        CHECK_MSG(!gpu_mod && !cpu_mod, "%s %s: input '%s' modified (gpu %d, cpu %d)", cur_op, cur_where, t->name,
                  gpu_mod, cpu_mod);
        return;
    }
    if (t->role == R_SCRATCH || t->role == R_NOCMP) {
        if (t->kind == KF32 && t->role == R_NOCMP) {
            int64_t nf = count_nonfinite(t->got, t->n);
            if (nf)
                stat_for(cur_op)->nonfinite++;
            CHECK_MSG(nf == 0, "%s %s: %lld non-finite values in '%s'", cur_op, cur_where, (long long)nf, t->name);
        }
        return;
    }
    if (t->kind == KF32) {
        int64_t nf = count_nonfinite(t->got, t->n);
        if (nf)
            stat_for(cur_op)->nonfinite++;
        CHECK_MSG(nf == 0, "%s %s: %lld non-finite values in '%s' (cpu: %lld)", cur_op, cur_where, (long long)nf,
                  t->name, (long long)count_nonfinite(t->h, t->n));
        if (t->ulps > 0)
            note(t->name, ulp_err(t->got, t->h, t->n), t->ulps);
        else
            note(t->name, rel_err(t->got, t->h, t->role == R_ACC ? (const float *)t->init : NULL, t->n), t->tol);
    } else {
        size_t es = kind_size(t->kind);
        int64_t mism = 0;
        for (int64_t i = 0; i < t->n; i++)
            mism += memcmp((char *)t->got + i * es, (char *)t->h + i * es, es) != 0;
        note(t->name, (double)mism, 0.0);
    }
}

/* ---- one case: the op on both tables, then the comparisons and a second GPU run ---------------------------------- */

typedef int (*op_fn)(const debcm_ops *o, int dev, void *ctx);
#define PF(t) ((t) ? (float *)((dev) ? (t)->d : (t)->h) : NULL)
#define PU8(t) ((t) ? (uint8_t *)((dev) ? (t)->d : (t)->h) : NULL)
#define PI32(t) ((t) ? (int32_t *)((dev) ? (t)->d : (t)->h) : NULL)
#define PI64(t) ((t) ? (int64_t *)((dev) ? (t)->d : (t)->h) : NULL)

static int run_case(op_fn f, void *ctx)
{
    op_stat *s = stat_for(cur_op);
    /* size the pre-fill of the accumulated outputs to their contribution: one CPU run from zero */
    int probe = 0;
    for (int i = 0; i < npool; i++)
        probe |= pool[i].role == R_ACC && !pool[i].scaled;
    if (probe) {
        for (int i = 0; i < npool; i++) {
            tens *t = &pool[i];
            memcpy(t->h, t->init, t->bytes);
            if (t->role == R_ACC && !t->scaled)
                memset(t->h, 0, t->bytes);
        }
        if (f(ops_c, 0, ctx))
            die(cur_op);
        for (int i = 0; i < npool; i++) {
            tens *t = &pool[i];
            if (t->role != R_ACC || t->scaled)
                continue;
            double m = 0.0;
            for (int64_t j = 0; j < t->n; j++)
                m = fmax(m, fabs((double)((float *)t->h)[j]));
            float sc = m > 0.0 && isfinite(m) ? (float)m : 1.0f;
            fill_u(t->init, t->n, -sc, sc);
            t->scaled = 1;
        }
    }
    for (int i = 0; i < npool; i++)
        tset(&pool[i]);
    debcm_error_clear();
    if (f(ops_c, 0, ctx)) {
        s->rcfail++;
        CHECK_MSG(0, "%s %s: the CPU op failed: %s", cur_op, cur_where, debcm_last_error());
        return -1;
    }
    if (f(ops_g, 1, ctx)) {
        s->rcfail++;
        CHECK_MSG(0, "%s %s: the CUDA op failed: %s", cur_op, cur_where, debcm_last_error());
        return -1;
    }
    for (int i = 0; i < npool; i++)
        tfetch(&pool[i]);
    for (int i = 0; i < npool; i++)
        compare_tensor(&pool[i]);
    /* determinism: the same op again from the same state (the CPU's results stay in h for the caller) */
    for (int i = 0; i < npool; i++)
        memcpy(pool[i].det, pool[i].got, pool[i].bytes);
    for (int i = 0; i < npool; i++)
        tset_dev(&pool[i]);
    if (f(ops_g, 1, ctx)) {
        s->rcfail++;
        CHECK_MSG(0, "%s %s: the CUDA op failed on its second run: %s", cur_op, cur_where, debcm_last_error());
        return -1;
    }
    for (int i = 0; i < npool; i++) {
        tens *t = &pool[i];
        tfetch(t);
        if (t->role == R_SCRATCH || t->role == R_IN)
            continue;
        int same = !memcmp(t->det, t->got, t->bytes);
        if (!same)
            s->nondet++;
        CHECK_MSG(same, "%s %s: '%s' differs between two runs of the same op (not deterministic)", cur_op,
                  cur_where, t->name);
    }
    return 0;
}

/* ---- memory ops ------------------------------------------------------------------------------------------------ */

static void test_memory(void)
{
    begin("memory", "alloc/upload/download/copy/zero/sync");
    /* alloc is zero-filled, also for 0 bytes a valid block */
    const size_t n = 4099;
    unsigned char *a = ops_g->alloc(n), *b = ops_g->alloc(n), *z = ops_g->alloc(0);
    CHECK_MSG(a && b && z, "alloc: %s", debcm_last_error());
    if (!a || !b || !z)
        return;
    unsigned char *h = xcalloc(n), *h2 = xcalloc(n), *want = xcalloc(n);
    CHECK(ops_g->download(h, a, n) == 0);
    int nonzero = 0;
    for (size_t i = 0; i < n; i++)
        nonzero += h[i] != 0;
    note("alloc not zero-filled (bytes)", nonzero, 0);
    /* upload and download at odd offsets and sizes */
    for (size_t i = 0; i < n; i++)
        want[i] = (unsigned char)(i * 7 + 3);
    CHECK(ops_g->upload(a, want, n) == 0);
    CHECK(ops_g->upload(a + 3, want + 100, 13) == 0);
    memcpy(want + 3, want + 100, 13);
    CHECK(ops_g->download(h, a, n) == 0);
    note("upload/download (bytes)", memcmp(h, want, n) ? 1 : 0, 0);
    /* device to device copy of an odd range; zero of an odd range */
    CHECK(ops_g->zero(b, n) == 0);
    CHECK(ops_g->copy(b + 5, a + 17, 1001) == 0);
    CHECK(ops_g->zero(b + 200, 7) == 0);
    memset(h2, 0, n);
    memcpy(h2 + 5, want + 17, 1001);
    memset(h2 + 200, 0, 7);
    CHECK(ops_g->sync() == 0);
    CHECK(ops_g->download(h, b, n) == 0);
    int64_t mism = 0;
    for (size_t i = 0; i < n; i++)
        mism += h[i] != h2[i];
    note("copy/zero (bytes)", (double)mism, 0);
    /* overlapping ranges: memmove's semantics, both directions */
    CHECK(ops_g->copy(b + 40, b + 3, 2000) == 0);
    memmove(h2 + 40, h2 + 3, 2000);
    CHECK(ops_g->copy(b + 1, b + 77, 3001) == 0);
    memmove(h2 + 1, h2 + 77, 3001);
    CHECK(ops_g->download(h, b, n) == 0);
    mism = 0;
    for (size_t i = 0; i < n; i++)
        mism += h[i] != h2[i];
    note("overlapping copy (bytes)", (double)mism, 0);
    /* zero-byte transfers are no-ops */
    CHECK(ops_g->upload(a, want, 0) == 0 && ops_g->download(h, a, 0) == 0 && ops_g->copy(b, a, 0) == 0 &&
          ops_g->zero(a, 0) == 0);
    ops_g->free(a);
    ops_g->free(b);
    ops_g->free(z);
    free(h);
    free(h2);
    free(want);
}

/* ---- gather rows ------------------------------------------------------------------------------------------------- */

typedef struct {
    tens *dst, *src, *idx;
    int64_t B, D;
} gather_ctx;

static int gather_run(const debcm_ops *o, int dev, void *vc)
{
    gather_ctx *c = vc;
    return o->gather_rows(PF(c->dst), PF(c->src), PI64(c->idx), c->B, c->D);
}

/* dst [B, D] = src[idx] from src [N, D]: indices out of order and repeated (N < B forces repeats), the first and
 * last rows of src included; src holds −0, subnormals and ±FLT_MAX (a gather is a copy: bit-exact); dst starts
 * with stale values (overwritten). Both results are also checked byte by byte against src[idx[r]] itself. */
static void test_gather(int64_t B, int64_t D, int64_t N)
{
    gather_ctx c = {0};
    c.B = B;
    c.D = D;
    begin("gather_rows", "B=%lld D=%lld N=%lld", (long long)B, (long long)D, (long long)N);
    c.src = tnew("src", KF32, R_IN, N * D, 0);
    c.idx = tnew("idx", KI64, R_IN, B, 0);
    c.dst = tnew("dst", KF32, R_OUT, B * D, 0);
    float *src = F(c.src);
    int64_t *idx = c.idx->init;
    fill_u(src, N * D, -4, 4);
    static const float special[] = {-0.0f, 1e-40f, -3e-39f, FLT_MAX, -FLT_MAX, 1.0f};
    for (int64_t i = 3; i < N * D; i += 11)
        src[i] = special[(i / 11) % 6];
    for (int64_t r = 0; r < B; r++)
        idx[r] = (int64_t)urand(0.0f, (float)N) % N;
    if (B > 0)
        idx[0] = N - 1;
    if (B > 1)
        idx[B - 1] = 0;
    if (B > 3)
        idx[B / 2] = idx[1]; /* a repeat even when N ≥ B */
    fill_u(F(c.dst), B * D, 100, 200);
    if (run_case(gather_run, &c) == 0) {
        int64_t mg = 0, mc = 0;
        for (int64_t r = 0; r < B; r++) {
            const float *want = src + idx[r] * D;
            mg += memcmp((const float *)c.dst->got + r * D, want, (size_t)D * sizeof(float)) != 0;
            mc += memcmp((const float *)c.dst->h + r * D, want, (size_t)D * sizeof(float)) != 0;
        }
        note("dst rows vs src[idx[r]] (rows not bit-equal)", (double)mg, 0);
        CHECK_MSG(mc == 0, "gather_rows %s: the CPU's dst has %lld rows that are not src[idx[r]]", cur_where,
                  (long long)mc);
    }
    tfree_all();
}

/* row offsets idx[r]·D past 2^31 floats (64-bit index arithmetic): a real GPU only (8.6 GB of device memory), checked
 * directly rather than against the CPU */
static void test_gather_big(void)
{
    const int64_t D = 1024, N = ((int64_t)1 << 31) / D + 2, B = 5;
    begin("gather_rows", "B=%lld D=%lld N=%lld (offsets past 2^31)", (long long)B, (long long)D, (long long)N);
    size_t bytes = (size_t)(N * D) * sizeof(float);
    float *src = ops_g->alloc(bytes), *dst = ops_g->alloc((size_t)(B * D) * sizeof(float));
    int64_t *idx = ops_g->alloc((size_t)B * sizeof(int64_t));
    if (!src || !dst || !idx) {
        printf("  note: gather_rows: no room for %.1f GB on the device (%s): the 64-bit offsets are not checked\n",
               (double)bytes / 1e9, debcm_last_error());
        if (src)
            ops_g->free(src);
        if (dst)
            ops_g->free(dst);
        if (idx)
            ops_g->free(idx);
        return;
    }
    const int64_t rows[3] = {N - 1, N - 2, 1};
    float *h = xcalloc((size_t)(3 * D) * sizeof *h), *got = xcalloc((size_t)(B * D) * sizeof *got);
    fill_u(h, 3 * D, -1, 1);
    for (int i = 0; i < 3; i++)
        CHECK(ops_g->upload(src + rows[i] * D, h + i * D, (size_t)D * sizeof *h) == 0);
    const int64_t hidx[5] = {N - 1, 0, N - 2, 1, N - 1};
    CHECK(ops_g->upload(idx, hidx, sizeof hidx) == 0);
    int rc = ops_g->gather_rows(dst, src, idx, B, D);
    CHECK_MSG(rc == 0, "gather_rows %s: %s", cur_where, debcm_last_error());
    CHECK(ops_g->download(got, dst, (size_t)(B * D) * sizeof *got) == 0);
    const float *want[5] = {h, NULL, h + D, h + 2 * D, h}; /* row 0 of src: zeros (alloc is zero-filled) */
    int64_t mism = 0;
    for (int r = 0; r < B; r++)
        for (int64_t d = 0; d < D; d++)
            mism += got[r * D + d] != (want[r] ? want[r][d] : 0.0f);
    note("dst vs src[idx] (mismatching floats)", (double)mism, 0);
    ops_g->free(src);
    ops_g->free(dst);
    ops_g->free(idx);
    free(h);
    free(got);
}

/* ---- linear ------------------------------------------------------------------------------------------------------ */

typedef struct {
    tens *y, *x, *W, *b, *dx, *dW, *db, *dy;
    int64_t B, in, out;
    int use;
} lin_ctx;

static int lin_fwd(const debcm_ops *o, int dev, void *vc)
{
    lin_ctx *c = vc;
    return o->linear_forward(PF(c->y), PF(c->x), PF(c->W), PF(c->b), c->B, c->in, c->out);
}
static int lin_bwd(const debcm_ops *o, int dev, void *vc)
{
    lin_ctx *c = vc;
    return o->linear_backward(c->use & 1 ? PF(c->dx) : NULL, c->use & 2 ? PF(c->dW) : NULL,
                              c->use & 4 ? PF(c->db) : NULL, PF(c->dy), PF(c->x), PF(c->W), c->B, c->in, c->out);
}

static void test_linear(int64_t B, int64_t in, int64_t out, int bias, int nulls)
{
    lin_ctx c = {0};
    c.B = B;
    c.in = in;
    c.out = out;
    begin("linear_forward", "B=%lld in=%lld out=%lld%s", (long long)B, (long long)in, (long long)out,
          bias ? "" : " no bias");
    c.x = tnew("x", KF32, R_IN, B * in, 0);
    c.W = tnew("W", KF32, R_IN, out * in, 0);
    c.b = bias ? tnew("b", KF32, R_IN, out, 0) : NULL;
    c.y = tnew("y", KF32, R_OUT, B * out, RED_TOL);
    fill_u(F(c.x), B * in, -1, 1);
    fill_u(F(c.W), out * in, -0.5f, 0.5f);
    if (bias)
        fill_u(F(c.b), out, -1, 1);
    run_case(lin_fwd, &c);
    tfree_all();

    begin("linear_backward", "B=%lld in=%lld out=%lld", (long long)B, (long long)in, (long long)out);
    c.x = tnew("x", KF32, R_IN, B * in, 0);
    c.W = tnew("W", KF32, R_IN, out * in, 0);
    c.dy = tnew("dy", KF32, R_IN, B * out, 0);
    c.dx = tnew("dx", KF32, R_ACC, B * in, RED_TOL);
    c.dW = tnew("dW", KF32, R_ACC, out * in, RED_TOL);
    c.db = tnew("db", KF32, R_ACC, out, RED_TOL);
    fill_u(F(c.x), B * in, -1, 1);
    fill_u(F(c.W), out * in, -0.5f, 0.5f);
    fill_u(F(c.dy), B * out, -1, 1);
    c.use = 7;
    run_case(lin_bwd, &c);
    for (int use = 0; nulls && use < 7; use++) { /* every subset of NULL d-outputs */
        begin("linear_backward", "B=%lld in=%lld out=%lld use=%d", (long long)B, (long long)in, (long long)out, use);
        c.use = use;
        run_case(lin_bwd, &c);
    }
    tfree_all();
}

/* ---- BatchNorm --------------------------------------------------------------------------------------------------- */

typedef struct {
    tens *y, *xhat, *mean, *rstd, *rm, *rv, *x, *gamma, *beta;
    tens *dx, *dgamma, *dbeta, *dy;
    int64_t B, D;
    int use;
} bn_ctx;

static int bn_train(const debcm_ops *o, int dev, void *vc)
{
    bn_ctx *c = vc;
    return o->bn_forward_train(PF(c->y), PF(c->xhat), PF(c->mean), PF(c->rstd), PF(c->rm), PF(c->rv), PF(c->x),
                               PF(c->gamma), PF(c->beta), c->B, c->D);
}
static int bn_eval(const debcm_ops *o, int dev, void *vc)
{
    bn_ctx *c = vc;
    return o->bn_forward_eval(PF(c->y), PF(c->x), PF(c->gamma), PF(c->beta), PF(c->rm), PF(c->rv), c->B, c->D);
}
static int bn_bwd(const debcm_ops *o, int dev, void *vc)
{
    bn_ctx *c = vc;
    return o->bn_backward(c->use & 1 ? PF(c->dx) : NULL, c->use & 2 ? PF(c->dgamma) : NULL,
                          c->use & 4 ? PF(c->dbeta) : NULL, PF(c->dy), PF(c->xhat), PF(c->gamma), PF(c->rstd), c->B,
                          c->D);
}

static void test_bn(int64_t B, int64_t D, int nulls)
{
    bn_ctx c = {0};
    c.B = B;
    c.D = D;
    begin("bn_forward_train", "B=%lld D=%lld", (long long)B, (long long)D);
    c.x = tnew("x", KF32, R_IN, B * D, 0);
    c.gamma = tnew("gamma", KF32, R_IN, D, 0);
    c.beta = tnew("beta", KF32, R_IN, D, 0);
    c.y = tnew("y", KF32, R_OUT, B * D, RED_TOL);
    c.xhat = tnew("xhat", KF32, R_OUT, B * D, RED_TOL);
    c.mean = tnew("mean", KF32, R_OUT, D, RED_TOL);
    c.rstd = tnew("rstd", KF32, R_OUT, D, RED_TOL);
    c.rm = tnew("running_mean", KF32, R_INOUT, D, RED_TOL);
    c.rv = tnew("running_var", KF32, R_INOUT, D, RED_TOL);
    for (int64_t i = 0; i < B * D; i++) /* a per-feature offset and scale: the mean matters */
        F(c.x)[i] = 0.5f * (float)(i % D % 7) - 1.0f + (1.0f + (float)(i % D % 3)) * urand(-1, 1);
    fill_u(F(c.gamma), D, 0.5f, 1.5f);
    fill_u(F(c.beta), D, -0.5f, 0.5f);
    fill_u(F(c.rm), D, -1, 1);
    fill_u(F(c.rv), D, 0.5f, 2);
    run_case(bn_train, &c);
    tfree_all();

    begin("bn_forward_eval", "B=%lld D=%lld", (long long)B, (long long)D);
    c.x = tnew("x", KF32, R_IN, B * D, 0);
    c.gamma = tnew("gamma", KF32, R_IN, D, 0);
    c.beta = tnew("beta", KF32, R_IN, D, 0);
    c.rm = tnew("running_mean", KF32, R_IN, D, 0);
    c.rv = tnew("running_var", KF32, R_IN, D, 0);
    c.y = tnew("y", KF32, R_OUT, B * D, ELEM_TOL);
    fill_u(F(c.x), B * D, -2, 2);
    fill_u(F(c.gamma), D, 0.5f, 1.5f);
    fill_u(F(c.beta), D, -0.5f, 0.5f);
    fill_u(F(c.rm), D, -1, 1);
    fill_u(F(c.rv), D, 0.05f, 3);
    run_case(bn_eval, &c);
    tfree_all();

    begin("bn_backward", "B=%lld D=%lld", (long long)B, (long long)D);
    c.dy = tnew("dy", KF32, R_IN, B * D, 0);
    c.xhat = tnew("xhat", KF32, R_IN, B * D, 0);
    c.gamma = tnew("gamma", KF32, R_IN, D, 0);
    c.rstd = tnew("rstd", KF32, R_IN, D, 0);
    c.dx = tnew("dx", KF32, R_ACC, B * D, RED_TOL);
    c.dgamma = tnew("dgamma", KF32, R_ACC, D, RED_TOL);
    c.dbeta = tnew("dbeta", KF32, R_ACC, D, RED_TOL);
    fill_u(F(c.dy), B * D, -1, 1);
    fill_u(F(c.xhat), B * D, -2, 2);
    fill_u(F(c.gamma), D, 0.5f, 1.5f);
    fill_u(F(c.rstd), D, 0.3f, 3);
    c.use = 7;
    run_case(bn_bwd, &c);
    for (int use = 0; nulls && use < 7; use++) {
        begin("bn_backward", "B=%lld D=%lld use=%d", (long long)B, (long long)D, use);
        c.use = use;
        run_case(bn_bwd, &c);
    }
    tfree_all();
}

/* ---- Philox draws, dropout, reparameterisation ------------------------------------------------------------------- */

typedef struct {
    tens *mask, *eps, *x, *y, *dx, *dy, *mu, *lv, *z, *dz, *dmu, *dlv;
    debcm_draw draw;
    float p;
    int64_t n;
    int use, eval;
} rnd_ctx;

static int drop_mask(const debcm_ops *o, int dev, void *vc)
{
    rnd_ctx *c = vc;
    return o->dropout_mask(PU8(c->mask), c->draw, c->p, c->n);
}
static int drop_fwd(const debcm_ops *o, int dev, void *vc)
{
    rnd_ctx *c = vc;
    return o->dropout_forward(PF(c->y), PF(c->x), c->eval ? NULL : PU8(c->mask), c->p, c->n);
}
static int drop_bwd(const debcm_ops *o, int dev, void *vc)
{
    rnd_ctx *c = vc;
    return o->dropout_backward(c->use ? PF(c->dx) : NULL, PF(c->dy), PU8(c->mask), c->p, c->n);
}
static int normal_draw(const debcm_ops *o, int dev, void *vc)
{
    rnd_ctx *c = vc;
    return o->normal_draw(PF(c->eps), c->draw, c->n);
}
static int rep_fwd(const debcm_ops *o, int dev, void *vc)
{
    rnd_ctx *c = vc;
    return o->reparam_forward(PF(c->z), PF(c->mu), PF(c->lv), c->eval ? NULL : PF(c->eps), c->n);
}
static int rep_bwd(const debcm_ops *o, int dev, void *vc)
{
    rnd_ctx *c = vc;
    return o->reparam_backward(c->use & 1 ? PF(c->dmu) : NULL, c->use & 2 ? PF(c->dlv) : NULL, PF(c->dz), PF(c->lv),
                               PF(c->eps), c->n);
}

static const uint64_t odd_counters[] = {0, 1, 3, 6, 4294967293ull, (1ull << 34) - 5, (7ull << 32) + 7};
#define NCOUNTERS (int)(sizeof odd_counters / sizeof odd_counters[0])
static const int64_t draw_ns[] = {1, 2, 3, 5, 37, 264711};
#define NDRAWN (int)(sizeof draw_ns / sizeof draw_ns[0])

static void test_draws(void)
{
    const float ps[] = {0.0f, 0.2f, 0.5f, 0.9f};
    for (int ci = 0; ci < NCOUNTERS; ci++)
        for (int ni = 0; ni < NDRAWN; ni++) {
            rnd_ctx c = {0};
            c.n = draw_ns[ni];
            c.draw.seed = 0x9E3779B97F4A7C15ull + (uint64_t)ci;
            c.draw.stream = (0x5354ull << 32) | (uint64_t)(ni + 1);
            c.draw.counter = odd_counters[ci];
            c.p = ps[(ci + ni) % 4];
            begin("dropout_mask", "n=%lld counter=%llu p=%g", (long long)c.n, (unsigned long long)c.draw.counter,
                  (double)c.p);
            c.mask = tnew("mask", KU8, R_OUT, c.n, 0);
            run_case(drop_mask, &c);
            tfree_all();
            begin("normal_draw", "n=%lld counter=%llu", (long long)c.n, (unsigned long long)c.draw.counter);
            c.eps = tnew("eps", KF32, R_OUT, c.n, 0);
            c.eps->ulps = NORMAL_ULPS;
            run_case(normal_draw, &c);
            tfree_all();
        }
}

static void test_dropout(int64_t n, float p, int nulls)
{
    rnd_ctx c = {0};
    c.n = n;
    c.p = p;
    uint8_t *mask = xcalloc((size_t)n);
    debcm_draw d = {77, 3, 12345};
    if (ops_c->dropout_mask(mask, d, p, n))
        die("dropout_mask on the CPU");
    for (int eval = 0; eval < 2; eval++) {
        begin("dropout_forward", "n=%lld p=%g%s", (long long)n, (double)p, eval ? " eval" : "");
        c.eval = eval;
        c.x = tnew("x", KF32, R_IN, n, 0);
        c.mask = tnew("mask", KU8, R_IN, n, 0);
        c.y = tnew("y", KF32, R_OUT, n, ELEM_TOL);
        fill_u(F(c.x), n, -2, 2);
        memcpy(c.mask->init, mask, (size_t)n);
        run_case(drop_fwd, &c);
        tfree_all();
    }
    begin("dropout_backward", "n=%lld p=%g", (long long)n, (double)p);
    c.dy = tnew("dy", KF32, R_IN, n, 0);
    c.mask = tnew("mask", KU8, R_IN, n, 0);
    c.dx = tnew("dx", KF32, R_ACC, n, ELEM_TOL);
    fill_u(F(c.dy), n, -2, 2);
    memcpy(c.mask->init, mask, (size_t)n);
    c.use = 1;
    run_case(drop_bwd, &c);
    if (nulls) {
        begin("dropout_backward", "n=%lld p=%g dx NULL", (long long)n, (double)p);
        c.use = 0;
        run_case(drop_bwd, &c);
    }
    tfree_all();
    free(mask);
}

static void test_reparam(int64_t n, int nulls)
{
    rnd_ctx c = {0};
    c.n = n;
    for (int eval = 0; eval < 2; eval++) {
        begin("reparam_forward", "n=%lld%s", (long long)n, eval ? " eval" : "");
        c.eval = eval;
        c.mu = tnew("mu", KF32, R_IN, n, 0);
        c.lv = tnew("lv", KF32, R_IN, n, 0);
        c.eps = tnew("eps", KF32, R_IN, n, 0);
        c.z = tnew("z", KF32, R_OUT, n, ELEM_TOL);
        fill_u(F(c.mu), n, -1, 1);
        fill_u(F(c.lv), n, -4, 12); /* across the clamp at 10 */
        fill_n(F(c.eps), n, 1);
        run_case(rep_fwd, &c);
        tfree_all();
    }
    begin("reparam_backward", "n=%lld", (long long)n);
    c.dz = tnew("dz", KF32, R_IN, n, 0);
    c.lv = tnew("lv", KF32, R_IN, n, 0);
    c.eps = tnew("eps", KF32, R_IN, n, 0);
    c.dmu = tnew("dmu", KF32, R_ACC, n, ELEM_TOL);
    c.dlv = tnew("dlv", KF32, R_ACC, n, ELEM_TOL);
    fill_u(F(c.dz), n, -1, 1);
    fill_u(F(c.lv), n, -4, 12);
    fill_n(F(c.eps), n, 1);
    c.use = 3;
    run_case(rep_bwd, &c);
    for (int use = 0; nulls && use < 3; use++) {
        begin("reparam_backward", "n=%lld use=%d", (long long)n, use);
        c.use = use;
        run_case(rep_bwd, &c);
    }
    tfree_all();
}

/* ---- L2 normalisation ----------------------------------------------------------------------------------------- */

typedef struct {
    tens *y, *norm, *x, *dx, *dy;
    int64_t B, D;
    int use;
} l2_ctx;

static int l2_fwd(const debcm_ops *o, int dev, void *vc)
{
    l2_ctx *c = vc;
    return o->l2norm_forward(PF(c->y), PF(c->norm), PF(c->x), c->B, c->D);
}
static int l2_bwd(const debcm_ops *o, int dev, void *vc)
{
    l2_ctx *c = vc;
    return o->l2norm_backward(c->use ? PF(c->dx) : NULL, PF(c->dy), PF(c->y), PF(c->norm), c->B, c->D);
}

/* zero_row: row 1 all zeros (the 1e-10 floor of the denominator) */
static void test_l2norm(int64_t B, int64_t D, int zero_row, int nulls)
{
    l2_ctx c = {0};
    c.B = B;
    c.D = D;
    begin("l2norm_forward", "B=%lld D=%lld%s", (long long)B, (long long)D, zero_row ? " zero row" : "");
    c.x = tnew("x", KF32, R_IN, B * D, 0);
    c.y = tnew("y", KF32, R_OUT, B * D, ELEM_TOL);
    c.norm = tnew("norm", KF32, R_OUT, B, ELEM_TOL);
    fill_u(F(c.x), B * D, -1, 1);
    if (zero_row)
        memset(F(c.x) + D, 0, (size_t)D * sizeof(float));
    run_case(l2_fwd, &c);
    /* its outputs feed the backward, as in the model */
    float *y = xcalloc((size_t)(B * D) * sizeof *y), *norm = xcalloc((size_t)B * sizeof *norm);
    memcpy(y, c.y->h, (size_t)(B * D) * sizeof *y);
    memcpy(norm, c.norm->h, (size_t)B * sizeof *norm);
    tfree_all();

    begin("l2norm_backward", "B=%lld D=%lld%s", (long long)B, (long long)D, zero_row ? " zero row" : "");
    c.dy = tnew("dy", KF32, R_IN, B * D, 0);
    c.y = tnew("y", KF32, R_IN, B * D, 0);
    c.norm = tnew("norm", KF32, R_IN, B, 0);
    c.dx = tnew("dx", KF32, R_ACC, B * D, RED_TOL);
    fill_u(F(c.dy), B * D, -1, 1);
    memcpy(c.y->init, y, (size_t)(B * D) * sizeof *y);
    memcpy(c.norm->init, norm, (size_t)B * sizeof *norm);
    c.use = 1;
    run_case(l2_bwd, &c);
    if (nulls) {
        begin("l2norm_backward", "B=%lld D=%lld dx NULL", (long long)B, (long long)D);
        c.use = 0;
        run_case(l2_bwd, &c);
    }
    tfree_all();
    free(y);
    free(norm);
}

/* ---- ReLU, MSE, KL, distillation --------------------------------------------------------------------------------- */

typedef struct {
    tens *loss, *x, *y, *t, *dx, *dy, *mu, *lv, *mu2, *lv2, *dmu, *dlv;
    distill_variant var;
    float dloss;
    int64_t n, B, L;
    int use;
} ew_ctx;

static int relu_fwd(const debcm_ops *o, int dev, void *vc)
{
    ew_ctx *c = vc;
    return o->relu_forward(PF(c->y), PF(c->x), c->n);
}
static int relu_bwd(const debcm_ops *o, int dev, void *vc)
{
    ew_ctx *c = vc;
    return o->relu_backward(c->use ? PF(c->dx) : NULL, PF(c->dy), PF(c->y), c->n);
}
static int mse_fwd(const debcm_ops *o, int dev, void *vc)
{
    ew_ctx *c = vc;
    return o->mse_forward(PF(c->loss), PF(c->x), PF(c->t), c->n);
}
static int mse_bwd(const debcm_ops *o, int dev, void *vc)
{
    ew_ctx *c = vc;
    return o->mse_backward(c->use ? PF(c->dx) : NULL, c->dloss, PF(c->x), PF(c->t), c->n);
}
static int kl_fwd(const debcm_ops *o, int dev, void *vc)
{
    ew_ctx *c = vc;
    return o->kl_forward(PF(c->loss), PF(c->mu), PF(c->lv), c->B, c->L);
}
static int kl_bwd(const debcm_ops *o, int dev, void *vc)
{
    ew_ctx *c = vc;
    return o->kl_backward(c->use & 1 ? PF(c->dmu) : NULL, c->use & 2 ? PF(c->dlv) : NULL, c->dloss, PF(c->mu),
                          PF(c->lv), c->B, c->L);
}
static int dis_fwd(const debcm_ops *o, int dev, void *vc)
{
    ew_ctx *c = vc;
    return o->distill_forward(PF(c->loss), PF(c->mu), PF(c->lv), PF(c->mu2), PF(c->lv2), c->var, c->B, c->L);
}
static int dis_bwd(const debcm_ops *o, int dev, void *vc)
{
    ew_ctx *c = vc;
    return o->distill_backward(c->use & 1 ? PF(c->dmu) : NULL, c->use & 2 ? PF(c->dlv) : NULL, c->dloss, PF(c->mu),
                               PF(c->lv), PF(c->mu2), PF(c->lv2), c->var, c->B, c->L);
}

static void test_relu_mse(int64_t n, int nulls)
{
    ew_ctx c = {0};
    c.n = n;
    begin("relu_forward", "n=%lld", (long long)n);
    c.x = tnew("x", KF32, R_IN, n, 0);
    c.y = tnew("y", KF32, R_OUT, n, ELEM_TOL);
    fill_u(F(c.x), n, -1, 1);
    for (int64_t i = 0; i < n; i += 5)
        F(c.x)[i] = (i & 1) ? -0.0f : 0.0f;
    run_case(relu_fwd, &c);
    tfree_all();

    begin("relu_backward", "n=%lld", (long long)n);
    c.dy = tnew("dy", KF32, R_IN, n, 0);
    c.y = tnew("y", KF32, R_IN, n, 0);
    c.dx = tnew("dx", KF32, R_ACC, n, ELEM_TOL);
    fill_u(F(c.dy), n, -1, 1);
    for (int64_t i = 0; i < n; i++)
        F(c.y)[i] = i % 3 ? relu(urand(-1, 1)) : 0.0f;
    c.use = 1;
    run_case(relu_bwd, &c);
    if (nulls) {
        begin("relu_backward", "n=%lld dx NULL", (long long)n);
        c.use = 0;
        run_case(relu_bwd, &c);
    }
    tfree_all();

    begin("mse_forward", "n=%lld", (long long)n);
    c.x = tnew("x", KF32, R_IN, n, 0);
    c.t = tnew("target", KF32, R_IN, n, 0);
    c.loss = tnew("loss", KF32, R_OUT, 1, RED_TOL);
    fill_u(F(c.x), n, -1, 2);
    fill_u(F(c.t), n, -1, 1);
    run_case(mse_fwd, &c);
    tfree_all();

    begin("mse_backward", "n=%lld", (long long)n);
    c.x = tnew("x", KF32, R_IN, n, 0);
    c.t = tnew("target", KF32, R_IN, n, 0);
    c.dx = tnew("dx", KF32, R_ACC, n, ELEM_TOL);
    fill_u(F(c.x), n, -1, 2);
    fill_u(F(c.t), n, -1, 1);
    c.dloss = -1.7f;
    c.use = 1;
    run_case(mse_bwd, &c);
    if (nulls) {
        begin("mse_backward", "n=%lld dx NULL", (long long)n);
        c.use = 0;
        run_case(mse_bwd, &c);
    }
    tfree_all();
}

static void test_kl(int64_t B, int64_t L, int nulls)
{
    ew_ctx c = {0};
    c.B = B;
    c.L = L;
    begin("kl_forward", "B=%lld L=%lld", (long long)B, (long long)L);
    c.mu = tnew("mu", KF32, R_IN, B * L, 0);
    c.lv = tnew("lv", KF32, R_IN, B * L, 0);
    c.loss = tnew("loss", KF32, R_OUT, 1, RED_TOL);
    fill_u(F(c.mu), B * L, -1, 1);
    fill_u(F(c.lv), B * L, -3, 11); /* across the clamp at 10 */
    run_case(kl_fwd, &c);
    tfree_all();

    begin("kl_backward", "B=%lld L=%lld", (long long)B, (long long)L);
    c.mu = tnew("mu", KF32, R_IN, B * L, 0);
    c.lv = tnew("lv", KF32, R_IN, B * L, 0);
    c.dmu = tnew("dmu", KF32, R_ACC, B * L, ELEM_TOL);
    c.dlv = tnew("dlv", KF32, R_ACC, B * L, ELEM_TOL);
    fill_u(F(c.mu), B * L, -1, 1);
    fill_u(F(c.lv), B * L, -3, 11);
    c.dloss = 0.75f;
    c.use = 3;
    run_case(kl_bwd, &c);
    for (int use = 0; nulls && use < 3; use++) {
        begin("kl_backward", "B=%lld L=%lld use=%d", (long long)B, (long long)L, use);
        c.use = use;
        run_case(kl_bwd, &c);
    }
    tfree_all();
}

static void test_distill(int64_t B, int64_t L, distill_variant var, int nulls)
{
    const char *vn = var == DISTILL_PUBLISHED ? "published" : "kl";
    ew_ctx c = {0};
    c.B = B;
    c.L = L;
    c.var = var;
    for (int pass = 0; pass < 2; pass++) {
        begin(pass ? "distill_backward" : "distill_forward", "%s B=%lld L=%lld", vn, (long long)B, (long long)L);
        c.mu = tnew("mu1", KF32, R_IN, B * L, 0);
        c.lv = tnew("lv1", KF32, R_IN, B * L, 0);
        c.mu2 = tnew("mu2", KF32, R_IN, B * L, 0);
        c.lv2 = tnew("lv2", KF32, R_IN, B * L, 0);
        fill_u(F(c.mu), B * L, -1, 1);
        fill_u(F(c.mu2), B * L, -1, 1);
        fill_u(F(c.lv), B * L, -2, 2);
        fill_u(F(c.lv2), B * L, -2, 2);
        for (int64_t i = 0; i < B * L; i += 11) /* a few across the clamp at 10 */
            F(c.lv)[i] = urand(9, 12);
        for (int64_t i = 3; i < B * L; i += 13)
            F(c.lv2)[i] = urand(9, 12);
        if (!pass) {
            c.loss = tnew("loss", KF32, R_OUT, 1, RED_TOL);
            run_case(dis_fwd, &c);
        } else {
            c.dmu = tnew("dmu1", KF32, R_ACC, B * L, ELEM_TOL);
            c.dlv = tnew("dlv1", KF32, R_ACC, B * L, ELEM_TOL);
            c.dloss = 5e-5f * 3.0f;
            c.use = 3;
            run_case(dis_bwd, &c);
            for (int use = 0; nulls && use < 3; use++) {
                begin("distill_backward", "%s B=%lld L=%lld use=%d", vn, (long long)B, (long long)L, use);
                c.use = use;
                run_case(dis_bwd, &c);
            }
        }
        tfree_all();
    }
}

/* ---- matching ---------------------------------------------------------------------------------------------------- */

typedef struct {
    tens *music, *video, *S, *sel_m, *sel_v, *zm, *zv, *dzm, *dzv, *dS;
    match_cfg cfg;
    float dmusic, dvideo;
    int64_t B, L;
    int use;
} match_ctx;

static int m_fwd(const debcm_ops *o, int dev, void *vc)
{
    match_ctx *c = vc;
    return o->match_forward(PF(c->music), PF(c->video), PF(c->S), PI32(c->sel_m), PI32(c->sel_v), PF(c->zm),
                            PF(c->zv), &c->cfg, c->B, c->L);
}
static int m_bwd(const debcm_ops *o, int dev, void *vc)
{
    match_ctx *c = vc;
    return o->match_backward(c->use & 1 ? PF(c->dzm) : NULL, c->use & 2 ? PF(c->dzv) : NULL, PF(c->dS), c->dmusic,
                             c->dvideo, PF(c->S), PI32(c->sel_m), PI32(c->sel_v), PF(c->zm), PF(c->zv), &c->cfg,
                             c->B, c->L);
}

/* From the GPU's own S: its selections must be exactly topk_select's, and its two terms the double means of the
 * selected values (softmax: of the row and column cross-entropies). */
static void match_self_check(const match_cfg *cfg, const float *S, const int32_t *sel_m, const int32_t *sel_v,
                             float music, float video, int64_t B)
{
    int64_t k = match_k_eff(cfg->k, B);
    float *row = xcalloc((size_t)B * sizeof *row);
    uint32_t *keys = xcalloc((size_t)(2 * B) * sizeof *keys);
    int32_t *idx = xcalloc((size_t)B * sizeof *idx);
    int64_t mism = 0;
    double sum[2] = {0.0, 0.0};
    for (int side = 0; side < 2; side++)
        for (int64_t a = 0; a < B; a++) {
            for (int64_t j = 0; j < B; j++) /* row a of S (music a) or column a (video a) */
                row[j] = side == 0 ? S[a * B + j] : S[j * B + a];
            if (cfg->variant == MATCH_SOFTMAX) {
                double inv_tau = 1.0 / (double)cfg->tau, mx = -INFINITY, s = 0.0;
                for (int64_t j = 0; j < B; j++)
                    mx = fmax(mx, row[j] * inv_tau);
                for (int64_t j = 0; j < B; j++)
                    s += exp(row[j] * inv_tau - mx);
                sum[side] += mx + log(s) - row[a] * inv_tau;
                continue;
            }
            float pos = row[a];
            for (int64_t j = 0; j < B; j++)
                row[j] = cfg->variant == MATCH_PUBLISHED ? match_published_value(pos, row[j], cfg->margin)
                                                         : match_hinge_value(pos, row[j], cfg->margin);
            int32_t cnt = topk_select(idx, keys, row, (int32_t)B, (int32_t)k, (int32_t)a);
            const int32_t *got = (side == 0 ? sel_m : sel_v) + a * k;
            for (int32_t t = 0; t < cnt; t++) {
                mism += got[t] != idx[t];
                sum[side] += row[idx[t]];
            }
        }
    double div = cfg->variant == MATCH_SOFTMAX ? (double)B : (double)(B * k);
    double rm = sum[0] / div, rv = sum[1] / div;
    if (cfg->variant != MATCH_SOFTMAX)
        note("selection vs topk_select(own S) (mismatches)", (double)mism, 0);
    double em = fabs(music - rm) / fmax(fabs(rm), 1e-30), ev = fabs(video - rv) / fmax(fabs(rv), 1e-30);
    if (fabs(music - rm) == 0.0)
        em = 0.0;
    if (fabs(video - rv) == 0.0)
        ev = 0.0;
    note("music vs own S (double)", em, ELEM_TOL);
    note("video vs own S (double)", ev, ELEM_TOL);
    free(row);
    free(keys);
    free(idx);
}

static const char *variant_name(match_variant v)
{
    return v == MATCH_PUBLISHED ? "published" : v == MATCH_HINGE ? "hinge" : "softmax";
}

/* exact: dyadic inputs (S exact on both sides, so selections must be bit-equal, ties included) */
static void test_match(match_variant var, int64_t B, int64_t L, int64_t k, int exact, int nulls)
{
    match_ctx c = {0};
    c.B = B;
    c.L = L;
    c.cfg.variant = var;
    c.cfg.margin = exact ? 3.0f / 64.0f : 0.05f;
    c.cfg.tau = exact ? 2.0f : 0.1f;
    c.cfg.k = k;
    int64_t kk = var == MATCH_SOFTMAX ? 0 : match_k_eff(k, B);
    char where[96];
    snprintf(where, sizeof where, "%s B=%lld L=%lld k=%lld%s", variant_name(var), (long long)B, (long long)L,
             (long long)kk, exact ? " dyadic" : "");
    float *zm = xcalloc((size_t)(B * L) * sizeof *zm), *zv = xcalloc((size_t)(B * L) * sizeof *zv);
    if (exact) {
        fill_dyadic(zm, B * L);
        fill_dyadic(zv, B * L);
    } else { /* rows of norm about 1, as the model's latents */
        float a = 1.7f / sqrtf((float)L);
        fill_u(zm, B * L, -a, a);
        fill_u(zv, B * L, -a, a);
        for (int64_t i = 0; i < B; i++) /* the positives a little ahead */
            for (int64_t l = 0; l < L; l++)
                zv[i * L + l] = 0.7f * zv[i * L + l] + 0.3f * zm[i * L + l];
    }

    begin("match_forward", "%s", where);
    c.zm = tnew("zm", KF32, R_IN, B * L, 0);
    c.zv = tnew("zv", KF32, R_IN, B * L, 0);
    c.music = tnew("music", KF32, R_OUT, 1, RED_TOL);
    c.video = tnew("video", KF32, R_OUT, 1, RED_TOL);
    c.S = tnew("S", KF32, R_OUT, B * B, exact ? 0.0 : RED_TOL);
    if (kk > 0) {
        c.sel_m = tnew("sel_m", KI32, exact ? R_OUT : R_NOCMP, B * kk, 0);
        c.sel_v = tnew("sel_v", KI32, exact ? R_OUT : R_NOCMP, B * kk, 0);
    }
    memcpy(c.zm->init, zm, (size_t)(B * L) * sizeof *zm);
    memcpy(c.zv->init, zv, (size_t)(B * L) * sizeof *zv);
    if (run_case(m_fwd, &c) == 0) {
        match_self_check(&c.cfg, c.S->got, kk ? c.sel_m->got : NULL, kk ? c.sel_v->got : NULL,
                         *(float *)c.music->got, *(float *)c.video->got, B);
        if (!exact && kk > 0) { /* near-ties of S may legitimately select differently: information only */
            int64_t diff = 0;
            for (int64_t i = 0; i < B * kk; i++)
                diff += ((int32_t *)c.sel_m->got)[i] != ((int32_t *)c.sel_m->h)[i] ||
                        ((int32_t *)c.sel_v->got)[i] != ((int32_t *)c.sel_v->h)[i];
            if (diff)
                printf("  note: match_forward %s: %lld selection positions differ from the CPU's (near-ties of S)\n",
                       where, (long long)diff);
        }
    }
    /* the backward on both sides from the GPU's S and selections */
    float *S = xcalloc((size_t)(B * B) * sizeof *S);
    size_t sel_bytes = (size_t)(B * (kk ? kk : 1)) * sizeof(int32_t);
    int32_t *sm = xcalloc(sel_bytes), *sv = xcalloc(sel_bytes);
    memcpy(S, c.S->got, (size_t)(B * B) * sizeof *S);
    if (kk) {
        memcpy(sm, c.sel_m->got, (size_t)(B * kk) * sizeof *sm);
        memcpy(sv, c.sel_v->got, (size_t)(B * kk) * sizeof *sv);
    }
    tfree_all();

    begin("match_backward", "%s", where);
    c.zm = tnew("zm", KF32, R_IN, B * L, 0);
    c.zv = tnew("zv", KF32, R_IN, B * L, 0);
    c.S = tnew("S", KF32, R_IN, B * B, 0);
    c.sel_m = kk ? tnew("sel_m", KI32, R_IN, B * kk, 0) : NULL;
    c.sel_v = kk ? tnew("sel_v", KI32, R_IN, B * kk, 0) : NULL;
    c.dS = tnew("dS", KF32, R_SCRATCH, B * B, 0);
    c.dzm = tnew("dzm", KF32, R_ACC, B * L, RED_TOL);
    c.dzv = tnew("dzv", KF32, R_ACC, B * L, RED_TOL);
    memcpy(c.zm->init, zm, (size_t)(B * L) * sizeof *zm);
    memcpy(c.zv->init, zv, (size_t)(B * L) * sizeof *zv);
    memcpy(c.S->init, S, (size_t)(B * B) * sizeof *S);
    if (kk) {
        memcpy(c.sel_m->init, sm, (size_t)(B * kk) * sizeof *sm);
        memcpy(c.sel_v->init, sv, (size_t)(B * kk) * sizeof *sv);
    }
    fill_u(F(c.dS), B * B, -3, 3); /* stale scratch: the op must not accumulate into it */
    c.dmusic = var == MATCH_PUBLISHED ? -1.25f : 0.8f;
    c.dvideo = var == MATCH_PUBLISHED ? -1.0f : 1.3f;
    c.use = 3;
    run_case(m_bwd, &c);
    for (int use = 0; nulls && use < 3; use++) {
        begin("match_backward", "%s use=%d", where, use);
        c.use = use;
        run_case(m_bwd, &c);
    }
    tfree_all();
    free(S);
    free(sm);
    free(sv);
    free(zm);
    free(zv);
}

/* ---- confounder -------------------------------------------------------------------------------------------------- */

typedef struct {
    tens *zc, *pi, *cc, *zm, *prior, *cemb, *Wc, *bc, *dzm, *dcemb, *dWc, *dbc, *dzc;
    int64_t B, P, L, G;
    int use;
} conf_ctx;

static int conf_fwd(const debcm_ops *o, int dev, void *vc)
{
    conf_ctx *c = vc;
    return o->confounder_forward(PF(c->zc), PF(c->pi), PF(c->cc), PF(c->zm), PF(c->prior), PF(c->cemb), PF(c->Wc),
                                 PF(c->bc), c->B, c->P, c->L, c->G);
}
static int conf_bwd(const debcm_ops *o, int dev, void *vc)
{
    conf_ctx *c = vc;
    return o->confounder_backward(c->use & 1 ? PF(c->dzm) : NULL, c->use & 2 ? PF(c->dcemb) : NULL,
                                  c->use & 4 ? PF(c->dWc) : NULL, c->use & 8 ? PF(c->dbc) : NULL, PF(c->dzc),
                                  PF(c->pi), PF(c->cc), PF(c->zm), PF(c->Wc), c->B, c->L, c->G);
}

static void test_confounder(int64_t B, int64_t P, int64_t L, int64_t G, int nulls)
{
    conf_ctx c = {0};
    c.B = B;
    c.P = P;
    c.L = L;
    c.G = G;
    begin("confounder_forward", "B=%lld P=%lld L=%lld G=%lld", (long long)B, (long long)P, (long long)L,
          (long long)G);
    c.zm = tnew("zm", KF32, R_IN, B * L, 0);
    c.prior = tnew("prior", KF32, R_IN, P * G, 0);
    c.cemb = tnew("cemb", KF32, R_IN, G * L, 0);
    c.Wc = tnew("Wc", KF32, R_IN, L * 2 * L, 0);
    c.bc = tnew("bc", KF32, R_IN, L, 0);
    c.zc = tnew("zc", KF32, R_OUT, B * L, RED_TOL);
    c.pi = tnew("pi", KF32, R_OUT, G, RED_TOL);
    c.cc = tnew("c", KF32, R_OUT, L, RED_TOL);
    fill_u(F(c.zm), B * L, -1, 1);
    fill_u(F(c.prior), P * G, 0, 1);
    fill_n(F(c.cemb), G * L, 1);
    fill_u(F(c.Wc), L * 2 * L, -1.0f / sqrtf((float)(2 * L)), 1.0f / sqrtf((float)(2 * L)));
    fill_u(F(c.bc), L, -0.2f, 0.2f);
    run_case(conf_fwd, &c);
    tfree_all();

    begin("confounder_backward", "B=%lld L=%lld G=%lld", (long long)B, (long long)L, (long long)G);
    c.dzc = tnew("dzc", KF32, R_IN, B * L, 0);
    c.pi = tnew("pi", KF32, R_IN, G, 0);
    c.cc = tnew("c", KF32, R_IN, L, 0);
    c.zm = tnew("zm", KF32, R_IN, B * L, 0);
    c.Wc = tnew("Wc", KF32, R_IN, L * 2 * L, 0);
    c.dzm = tnew("dzm", KF32, R_ACC, B * L, RED_TOL);
    c.dcemb = tnew("dcemb", KF32, R_ACC, G * L, RED_TOL);
    c.dWc = tnew("dWc", KF32, R_ACC, L * 2 * L, RED_TOL);
    c.dbc = tnew("dbc", KF32, R_ACC, L, RED_TOL);
    fill_u(F(c.dzc), B * L, -1, 1);
    fill_u(F(c.pi), G, 0, 1);
    fill_u(F(c.cc), L, -2, 2);
    fill_u(F(c.zm), B * L, -1, 1);
    fill_u(F(c.Wc), L * 2 * L, -0.3f, 0.3f);
    c.use = 15;
    run_case(conf_bwd, &c);
    for (int use = 0; nulls && use < 15; use++) {
        begin("confounder_backward", "B=%lld L=%lld G=%lld use=%d", (long long)B, (long long)L, (long long)G, use);
        c.use = use;
        run_case(conf_bwd, &c);
    }
    tfree_all();
}

/* ---- Adam ------------------------------------------------------------------------------------------------------- */

typedef struct {
    tens *theta, *m, *v, *g;
    adam_cfg cfg;
    int64_t t, n;
} adam_ctx;

static int adam_run(const debcm_ops *o, int dev, void *vc)
{
    adam_ctx *c = vc;
    return o->adam_update(PF(c->theta), PF(c->m), PF(c->v), PF(c->g), &c->cfg, c->t, c->n);
}

static void test_adam(int64_t n, int64_t t)
{
    adam_ctx c = {0};
    c.n = n;
    c.t = t;
    c.cfg.lr = 1e-3;
    c.cfg.beta1 = 0.9;
    c.cfg.beta2 = 0.999;
    c.cfg.eps = 1e-8;
    c.cfg.weight_decay = 1e-3;
    begin("adam_update", "n=%lld t=%lld", (long long)n, (long long)t);
    c.g = tnew("g", KF32, R_IN, n, 0);
    c.theta = tnew("theta", KF32, R_ACC, n, ELEM_TOL); /* compared on the step: theta is pre-filled at its size */
    c.m = tnew("m", KF32, R_INOUT, n, ELEM_TOL);
    c.v = tnew("v", KF32, R_INOUT, n, ELEM_TOL);
    fill_u(F(c.g), n, -0.1f, 0.1f);
    for (int64_t i = 0; i < n; i += 17)
        F(c.g)[i] = 0.0f;
    if (t > 1) {
        fill_u(F(c.m), n, -0.01f, 0.01f);
        fill_u(F(c.v), n, 0.0f, 1e-4f);
    }
    run_case(adam_run, &c);
    tfree_all();
}

/* ---- evaluation ops: device scores, host cut-offs and results -------------------------------------------------- */

static const int32_t Ks[] = {1, 3, 10, 50, 100, 101, 1000};
#define NK (int)(sizeof Ks / sizeof Ks[0])

/* scores [R, C]: quantised (ties) when ties, a few NaN (positives included) when nans */
static void fill_scores(float *s, int64_t n, int ties, int nans)
{
    for (int64_t i = 0; i < n; i++) {
        float v = urand(-1, 1);
        s[i] = ties ? roundf(v * 8.0f) / 8.0f : v;
    }
    if (nans)
        for (int64_t i = 0; i < n; i += 97)
            s[i] = NAN;
}

static void test_eval_negatives(int64_t R, int64_t C, int ties, int nans)
{
    begin("eval_negatives", "R=%lld C=%lld%s%s", (long long)R, (long long)C, ties ? " ties" : "",
          nans ? " NaN" : "");
    tens *sc = tnew("scores", KF32, R_IN, R * C, 0), *w = tnew("weights", KF32, R_IN, R, 0);
    fill_scores(F(sc), R * C, ties, nans);
    fill_u(F(w), R, 0.01f, 3.0f);
    tset(sc);
    tset(w);
    double rc[NK], nc[NK], rg[NK + 2], ng[NK + 2], rg2[NK + 2], ng2[NK + 2];
    int64_t tc = -1, tg[2] = {-1, -7}, tg2[2] = {-1, -7};
    for (int i = 0; i < NK + 2; i++)
        rg[i] = ng[i] = rg2[i] = ng2[i] = -12345.0; /* host sentinels past nK */
    if (ops_c->eval_negatives(rc, nc, &tc, F(sc), F(w), Ks, NK, R, C))
        die("eval_negatives on the CPU");
    int e1 = ops_g->eval_negatives(rg, ng, &tg[0], sc->d, w->d, Ks, NK, R, C);
    int e2 = ops_g->eval_negatives(rg2, ng2, &tg2[0], sc->d, w->d, Ks, NK, R, C);
    CHECK_MSG(e1 == 0 && e2 == 0, "eval_negatives %s: the CUDA op failed: %s", cur_where, debcm_last_error());
    if (e1 || e2) {
        stat_for(cur_op)->rcfail++;
        tfree_all();
        return;
    }
    double worst = 0.0;
    for (int i = 0; i < NK; i++) {
        worst = fmax(worst, fabs(rg[i] - rc[i]) / fmax(fabs(rc[i]), 1e-300));
        worst = fmax(worst, fabs(ng[i] - nc[i]) / fmax(fabs(nc[i]), 1e-300));
        if (rg[i] != rg[i] || ng[i] != ng[i])
            worst = INFINITY;
    }
    note("recall/ndcg", worst, 1e-9);
    note("tie_rows (difference)", (double)llabs(tg[0] - tc), 0);
    note("host results past nK or tie_rows written", (rg[NK] != -12345.0) + (rg[NK + 1] != -12345.0) +
                                                         (ng[NK] != -12345.0) + (ng[NK + 1] != -12345.0) +
                                                         (tg[1] != -7),
         0);
    int same = !memcmp(rg, rg2, sizeof rg) && !memcmp(ng, ng2, sizeof ng) && tg[0] == tg2[0];
    if (!same)
        stat_for(cur_op)->nondet++;
    CHECK_MSG(same, "eval_negatives %s: two runs differ", cur_where);
    tfetch(sc);
    tfetch(w);
    compare_tensor(sc);
    compare_tensor(w);
    tfree_all();
}

static void test_eval_full_rank(int64_t R, int64_t N, int ties, int nans)
{
    begin("eval_full_rank", "R=%lld N=%lld%s%s", (long long)R, (long long)N, ties ? " ties" : "", nans ? " NaN" : "");
    tens *sc = tnew("scores", KF32, R_IN, R * N, 0), *tr = tnew("truth", KI64, R_IN, R, 0);
    fill_scores(F(sc), R * N, ties, nans);
    for (int64_t r = 0; r < R; r++)
        ((int64_t *)tr->init)[r] = (int64_t)urand(0.0f, (float)N) % N;
    tset(sc);
    tset(tr);
    double rc[NK], rg[NK + 2], rg2[NK + 2];
    for (int i = 0; i < NK + 2; i++)
        rg[i] = rg2[i] = -12345.0;
    if (ops_c->eval_full_rank(rc, F(sc), (const int64_t *)tr->init, Ks, NK, R, N))
        die("eval_full_rank on the CPU");
    int e1 = ops_g->eval_full_rank(rg, sc->d, tr->d, Ks, NK, R, N);
    int e2 = ops_g->eval_full_rank(rg2, sc->d, tr->d, Ks, NK, R, N);
    CHECK_MSG(e1 == 0 && e2 == 0, "eval_full_rank %s: the CUDA op failed: %s", cur_where, debcm_last_error());
    if (e1 || e2) {
        stat_for(cur_op)->rcfail++;
        tfree_all();
        return;
    }
    double worst = 0.0;
    for (int i = 0; i < NK; i++) {
        worst = fmax(worst, fabs(rg[i] - rc[i]));
        if (rg[i] != rg[i])
            worst = INFINITY;
    }
    note("recall (absolute)", worst, 1e-12);
    note("host results past nK written", (rg[NK] != -12345.0) + (rg[NK + 1] != -12345.0), 0);
    int same = !memcmp(rg, rg2, sizeof rg);
    if (!same)
        stat_for(cur_op)->nondet++;
    CHECK_MSG(same, "eval_full_rank %s: two runs differ", cur_where);
    tfetch(sc);
    tfetch(tr);
    compare_tensor(sc);
    compare_tensor(tr);
    tfree_all();
}

/* ---- refusals: the CUDA table says no where the CPU does --------------------------------------------------------- */

static void test_refusals(void)
{
    begin("refusals", "bad sizes and arguments");
    float *d = ops_g->alloc(4096 * sizeof(float));
    float *h = xcalloc(4096 * sizeof(float));
    int32_t *di = ops_g->alloc(4096 * sizeof(int32_t)), *hi = xcalloc(4096 * sizeof(int32_t));
    if (!d || !di)
        die("alloc");
    match_cfg mc = {MATCH_PUBLISHED, 0.05f, 0.1f, 40};
    match_cfg m0 = {MATCH_HINGE, 0.05f, 0.1f, 0};
    match_cfg mt = {MATCH_SOFTMAX, 0.05f, 0.0f, 40};
    float *bufs[2] = {h, d};
    int32_t *ibufs[2] = {hi, di};
    int64_t *dl = ops_g->alloc(16 * sizeof(int64_t)), hl[16] = {0};
    if (!dl)
        die("alloc");
    int64_t *lbufs[2] = {hl, dl};
    int rc[2][8];
    for (int side = 0; side < 2; side++) {
        const debcm_ops *o = side ? ops_g : ops_c;
        float *p = bufs[side];
        int32_t *q = ibufs[side];
        rc[side][0] = o->bn_forward_train(p, p + 8, p + 16, p + 24, p + 32, p + 40, p + 48, p + 56, p + 64, 1, 4);
        rc[side][1] = o->match_forward(p, p + 1, p + 8, q, q + 8, p + 64, p + 128, &mc, 1, 4);
        rc[side][2] = o->match_forward(p, p + 1, p + 8, q, q + 8, p + 64, p + 128, &m0, 4, 4);
        rc[side][3] = o->match_forward(p, p + 1, p + 8, NULL, NULL, p + 64, p + 128, &mt, 4, 4);
        rc[side][4] = o->linear_forward(p, NULL, p + 64, NULL, 4, 4, 4);
        rc[side][5] = o->dropout_mask((uint8_t *)p, (debcm_draw){1, 2, 3}, 1.0f, 16);
        rc[side][6] = o->gather_rows(p, p + 64, lbufs[side], 4, 0);
        rc[side][7] = o->gather_rows(p, p + 64, lbufs[side], -1, 4);
    }
    static const char *what[8] = {"bn_forward_train B=1", "match_forward B=1", "match_forward k=0",
                                  "match_forward tau=0", "linear_forward x NULL", "dropout_mask p=1",
                                  "gather_rows D=0", "gather_rows B=-1"};
    for (int i = 0; i < 8; i++) {
        CHECK_MSG(rc[0][i] == -1, "refusals: the CPU accepted %s", what[i]);
        note(what[i], rc[1][i] == -1 ? 0 : 1, 0);
    }
    CHECK(ops_g->sync() == 0);
    ops_g->free(d);
    ops_g->free(di);
    ops_g->free(dl);
    free(h);
    free(hi);
}

/* ---- models: one training step and the evaluations on both tables ------------------------------------------------ */

static void *to_backend(const debcm_ops *o, const void *h, size_t bytes)
{
    void *d = o->alloc(bytes);
    if (!d || o->upload(d, h, bytes))
        die("alloc + upload of a batch");
    return d;
}

static double rel_norm(const float *a, const float *b, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    if (num != num)
        return INFINITY;
    return num == 0.0 ? 0.0 : sqrt(num) / fmax(sqrt(den), 1e-300);
}

static void loss_check(const char *what, double g, double c)
{
    double e = fabs(g - c) / fmax(fabs(c), 1e-6);
    if (g != g || !isfinite(g))
        e = INFINITY;
    note(what, e, MODEL_LOSS_TOL);
}

/* the Philox draws of the step: masks bit-equal, normals within ulps (both workspaces after the step) */
static void draws_check(const model_workspace *wc, const model_workspace *wg, int64_t B, const model_dims *dims)
{
    struct {
        const char *name;
        const void *c, *g;
        int64_t n;
        int normal;
    } d[6] = {
        {"mask m_encoder", wc->em.mask, wg->em.mask, B * dims->D_m, 0},
        {"mask v_encoder", wc->ev.mask, wg->ev.mask, B * dims->D_v, 0},
        {"mask m_decoder", wc->rm.mask, wg->rm.mask, B * dims->L, 0},
        {"mask video_v_decoder", wc->rv.mask, wg->rv.mask, B * dims->L, 0},
        {"eps_m (ulp)", wc->eps_m, wg->eps_m, B * dims->L, 1},
        {"eps_v (ulp)", wc->eps_v, wg->eps_v, B * dims->L, 1},
    };
    for (int i = 0; i < 6; i++) {
        size_t bytes = (size_t)d[i].n * (d[i].normal ? sizeof(float) : 1);
        void *h = xcalloc(bytes);
        if (ops_g->download(h, d[i].g, bytes))
            die("download of the draws");
        if (d[i].normal) {
            note(d[i].name, ulp_err(h, d[i].c, d[i].n), NORMAL_ULPS);
        } else {
            int64_t m = 0;
            for (int64_t j = 0; j < d[i].n; j++)
                m += ((uint8_t *)h)[j] != ((const uint8_t *)d[i].c)[j];
            note(d[i].name, (double)m, 0);
        }
        free(h);
    }
}

static void model_step_compare(const char *label, const model_dims *dims, int64_t B, int student,
                               match_variant mv, distill_variant dv)
{
    begin(student ? "model_train_step student" : "model_train_step teacher",
          "%s B=%lld D_v=%lld D_m=%lld L=%lld G=%lld %s%s%s", label, (long long)B, (long long)dims->D_v,
          (long long)dims->D_m, (long long)dims->L, (long long)dims->G, variant_name(mv), student ? " distill " : "",
          student ? (dv == DISTILL_PUBLISHED ? "published" : "kl") : "");
    model_config cfg;
    model_config_default(&cfg, student);
    cfg.L = dims->L;
    cfg.match.variant = mv;
    cfg.distill = dv;
    debcm_net nc, ng, tc, tg;
    model_workspace wc, wg;
    if (net_create(&nc, ops_c, dims, student) || net_create(&ng, ops_g, dims, student) || net_init(&nc, 2024) ||
        net_init(&ng, 2024))
        die("net_create / net_init");
    if (student && (net_create(&tc, ops_c, dims, 0) || net_create(&tg, ops_g, dims, 0) || net_init(&tc, 7) ||
                    net_init(&tg, 7)))
        die("net_create / net_init of the teacher");
    if (model_workspace_create(&wc, ops_c, dims, B) || model_workspace_create(&wg, ops_g, dims, B))
        die("model_workspace_create");
    float *xv = xcalloc((size_t)(B * dims->D_v) * sizeof *xv), *xm = xcalloc((size_t)(B * dims->D_m) * sizeof *xm);
    float *pr = xcalloc((size_t)(B * (dims->G > 0 ? dims->G : 1)) * sizeof *pr);
    fill_u(xv, B * dims->D_v, 0, 2); /* ResNet-like: non-negative */
    fill_n(xm, B * dims->D_m, 1);
    for (int64_t r = 0; r < B && student; r++) { /* rows of the prior sum to 1 */
        double s = 0.0;
        for (int64_t g = 0; g < dims->G; g++)
            s += pr[r * dims->G + g] = urand(0, 1);
        for (int64_t g = 0; g < dims->G; g++)
            pr[r * dims->G + g] = (float)(pr[r * dims->G + g] / s);
    }
    size_t bv = (size_t)(B * dims->D_v) * sizeof *xv, bm = (size_t)(B * dims->D_m) * sizeof *xm;
    size_t bp = (size_t)(B * (dims->G > 0 ? dims->G : 1)) * sizeof *pr;
    model_batch bc = {xv, xm, student ? pr : NULL, B, NULL};
    model_batch bg = {to_backend(ops_g, xv, bv), to_backend(ops_g, xm, bm), student ? to_backend(ops_g, pr, bp) : NULL,
                      B, NULL};
    model_losses lc, lg;
    int rc_c = model_train_step(&nc, &wc, &cfg, student ? &tc : NULL, &bc, NULL, 99, 5, &lc);
    if (rc_c)
        die("model_train_step on the CPU");
    int rc_g = model_train_step(&ng, &wg, &cfg, student ? &tg : NULL, &bg, NULL, 99, 5, &lg);
    CHECK_MSG(rc_g == 0, "%s: model_train_step on the GPU failed: %s", cur_where, debcm_last_error());
    if (rc_g == 0) {
        loss_check("loss", lg.loss, lc.loss);
        loss_check("recon_m", lg.recon_m, lc.recon_m);
        loss_check("recon_v", lg.recon_v, lc.recon_v);
        loss_check("kl_m", lg.kl_m, lc.kl_m);
        loss_check("kl_v", lg.kl_v, lc.kl_v);
        loss_check("music", lg.music, lc.music);
        loss_check("video", lg.video, lc.video);
        if (student) {
            loss_check("distill_m", lg.distill_m, lc.distill_m);
            loss_check("distill_v", lg.distill_v, lc.distill_v);
        }
        CHECK(lg.B == lc.B && lg.k == lc.k);
        draws_check(&wc, &wg, B, dims);
        /* Near-ties of S (cuBLAS against OpenBLAS, normals a few ulps apart) may select a different negative;
         * each such swap moves the matching gradient by one of its B·k shares, which the op-level checks (fed the
         * same S) cannot see. With swaps the gradients get 1e-2 instead of 1e-3, and the count is printed. */
        int64_t diff = 0;
        if (mv != MATCH_SOFTMAX) {
            int64_t k = match_k_eff(cfg.match.k, B);
            int32_t *s = xcalloc((size_t)(2 * B * k) * sizeof *s);
            if (ops_g->download(s, wg.sel_m, (size_t)(B * k) * sizeof *s) ||
                ops_g->download(s + B * k, wg.sel_v, (size_t)(B * k) * sizeof *s))
                die("download of the selections");
            for (int64_t i = 0; i < B * k; i++)
                diff += (s[i] != wc.sel_m[i]) + (s[B * k + i] != wc.sel_v[i]);
            if (diff)
                printf("  note: %s %s: %lld top-k selection positions differ from the CPU's (near-ties of S)\n", cur_op,
                       cur_where, (long long)diff);
            free(s);
        }
        /* every gradient and running statistic */
        for (int i = 0; i < net_tensor_count(&nc); i++) {
            net_tensor a, b;
            if (net_tensor_get(&nc, i, &a) || net_tensor_get(&ng, i, &b))
                die("net_tensor_get");
            const float *src = a.kind == TENSOR_PARAM ? b.grad : b.data;
            const float *ref = a.kind == TENSOR_PARAM ? a.grad : a.data;
            float *h = xcalloc((size_t)a.count * sizeof *h);
            if (ops_g->download(h, src, (size_t)a.count * sizeof *h))
                die("download of a gradient");
            char what[160];
            snprintf(what, sizeof what, "%s %s", a.kind == TENSOR_PARAM ? "grad" : "stat", a.name);
            int64_t nf = count_nonfinite(h, a.count);
            if (nf)
                stat_for(cur_op)->nonfinite++;
            CHECK_MSG(nf == 0, "%s %s: %lld non-finite values in %s", cur_op, cur_where, (long long)nf, what);
            note(what, rel_norm(h, ref, a.count), diff ? 10 * MODEL_GRAD_TOL : MODEL_GRAD_TOL);
            free(h);
        }
    }
    ops_g->free((void *)bg.x_v);
    ops_g->free((void *)bg.x_m);
    if (bg.prior)
        ops_g->free((void *)bg.prior);
    free(xv);
    free(xm);
    free(pr);
    model_workspace_free(&wc);
    model_workspace_free(&wg);
    net_free(&nc);
    net_free(&ng);
    if (student) {
        net_free(&tc);
        net_free(&tg);
    }
}

/* random running statistics, the same on both tables (eval mode reads them) */
static void perturb_stats(debcm_net *a, debcm_net *b)
{
    for (int i = 0; i < net_tensor_count(a); i++) {
        net_tensor t, u;
        net_tensor_get(a, i, &t);
        net_tensor_get(b, i, &u);
        if (t.kind != TENSOR_STAT)
            continue;
        float *h = xcalloc((size_t)t.count * sizeof *h);
        int is_var = strstr(t.name, "running_var") != NULL;
        fill_u(h, t.count, is_var ? 0.5f : -0.3f, is_var ? 2.0f : 0.3f);
        size_t bytes = (size_t)t.count * sizeof *h;
        if (ops_c->upload(t.data, h, bytes) || ops_g->upload(u.data, h, bytes))
            die("upload of running statistics");
        free(h);
    }
}

static void result_check(const char *what, const model_eval_result *g, const model_eval_result *c, int ndcg)
{
    double worst = 0.0;
    for (int i = 0; i < c->nK; i++) {
        worst = fmax(worst, fabs(g->recall[i] - c->recall[i]) / fmax(fabs(c->recall[i]), 1e-12));
        if (ndcg)
            worst = fmax(worst, fabs(g->ndcg[i] - c->ndcg[i]) / fmax(fabs(c->ndcg[i]), 1e-12));
        if (g->recall[i] != g->recall[i] || g->ndcg[i] != g->ndcg[i])
            worst = INFINITY;
    }
    /* one rank flipped by a near-tie of two scores moves a metric by about 1/rows: the tolerance allows one */
    note(what, worst, 1e-3);
    note("rows, tie_rows, rows_positive_in_negatives (mismatches)",
         (g->rows != c->rows) + (g->tie_rows != c->tie_rows) +
             (g->rows_positive_in_negatives != c->rows_positive_in_negatives),
         0);
}

static void model_eval_compare(void)
{
    model_dims dims = {301, 130, 40, 7};
    const int64_t Nv = 500, Nm = 700, R = 2000, NNEG = 100;
    float *v = xcalloc((size_t)(Nv * dims.D_v) * sizeof *v), *m = xcalloc((size_t)(Nm * dims.D_m) * sizeof *m);
    float *pm = xcalloc((size_t)dims.G * sizeof *pm);
    fill_u(v, Nv * dims.D_v, 0, 2);
    fill_n(m, Nm * dims.D_m, 1);
    fill_u(pm, dims.G, 0.05f, 0.3f);
    eval_split rows = {0};
    rows.n = R;
    rows.n_neg = NNEG;
    rows.video = xcalloc((size_t)R * sizeof(int64_t));
    rows.positive = xcalloc((size_t)R * sizeof(int64_t));
    rows.negatives = xcalloc((size_t)(R * NNEG) * sizeof(int64_t));
    rows.weight = xcalloc((size_t)R * sizeof(float));
    for (int64_t r = 0; r < R; r++) {
        rows.video[r] = (int64_t)urand(0, (float)Nv) % Nv;
        rows.positive[r] = (int64_t)urand(0, (float)Nm) % Nm;
        rows.weight[r] = urand(0.1f, 2.0f);
        for (int64_t j = 0; j < NNEG; j++)
            rows.negatives[r * NNEG + j] = (int64_t)urand(0, (float)Nm) % Nm;
        if (r % 50 == 0) /* a data defect: the positive among its negatives (an exact tie on both tables) */
            rows.negatives[r * NNEG + 7] = rows.positive[r];
    }
    pair_list pairs = {0};
    pairs.n = 1500;
    pairs.video = xcalloc((size_t)pairs.n * sizeof(int64_t));
    pairs.music = xcalloc((size_t)pairs.n * sizeof(int64_t));
    for (int64_t r = 0; r < pairs.n; r++) {
        pairs.video[r] = (int64_t)urand(0, (float)Nv) % Nv;
        pairs.music[r] = (int64_t)urand(0, (float)Nm) % Nm;
    }

    for (int student = 1; student >= 0; student--) {
        begin(student ? "model_eval_negatives" : "model_eval_full_rank", "Nv=%lld Nm=%lld R=%lld chunks of 64",
              (long long)Nv, (long long)Nm, (long long)(student ? R : pairs.n));
        debcm_net nc, ng;
        model_workspace wc, wg;
        if (net_create(&nc, ops_c, &dims, student) || net_create(&ng, ops_g, &dims, student) ||
            net_init(&nc, 31) || net_init(&ng, 31))
            die("net_create / net_init");
        perturb_stats(&nc, &ng);
        if (model_workspace_create(&wc, ops_c, &dims, 64) || model_workspace_create(&wg, ops_g, &dims, 64))
            die("model_workspace_create");
        model_eval_result rc = {0}, rg = {0};
        rc.nK = rg.nK = 4;
        const int32_t K4[4] = {1, 10, 50, 100};
        memcpy(rc.K, K4, sizeof K4);
        memcpy(rg.K, K4, sizeof K4);
        int ec, eg;
        if (student) {
            ec = model_eval_negatives(&nc, &wc, v, Nv, m, Nm, pm, &rows, &rc);
            if (ec)
                die("model_eval_negatives on the CPU");
            eg = model_eval_negatives(&ng, &wg, v, Nv, m, Nm, pm, &rows, &rg);
        } else {
            ec = model_eval_full_rank(&nc, &wc, v, Nv, m, Nm, &pairs, &rc);
            if (ec)
                die("model_eval_full_rank on the CPU");
            eg = model_eval_full_rank(&ng, &wg, v, Nv, m, Nm, &pairs, &rg);
        }
        CHECK_MSG(eg == 0, "%s: the GPU run failed: %s", cur_op, debcm_last_error());
        if (eg == 0) {
            result_check(student ? "recall/ndcg" : "recall", &rg, &rc, student);
            printf("  %s: recall@{1,10,50,100} cpu %.6g %.6g %.6g %.6g, cuda %.6g %.6g %.6g %.6g\n", cur_op,
                   rc.recall[0], rc.recall[1], rc.recall[2], rc.recall[3], rg.recall[0], rg.recall[1], rg.recall[2],
                   rg.recall[3]);
        }
        model_workspace_free(&wc);
        model_workspace_free(&wg);
        net_free(&nc);
        net_free(&ng);
    }
    free(v);
    free(m);
    free(pm);
    free(rows.video);
    free(rows.positive);
    free(rows.negatives);
    free(rows.weight);
    free(pairs.video);
    free(pairs.music);
}

/* ---- the table --------------------------------------------------------------------------------------------------- */

static void report(void)
{
    printf("\n%-28s %6s %11s %9s  %-6s %s\n", "op", "cases", "worst err", "tol", "issues", "worst at");
    for (int i = 0; i < nstats; i++) {
        op_stat *s = &stats[i];
        char issues[96] = "";
        int o = 0;
        if (s->fails)
            o += snprintf(issues + o, sizeof issues - (size_t)o, "tol:%d ", s->fails);
        if (s->guard)
            o += snprintf(issues + o, sizeof issues - (size_t)o, "guard:%d ", s->guard);
        if (s->nonfinite)
            o += snprintf(issues + o, sizeof issues - (size_t)o, "nan:%d ", s->nonfinite);
        if (s->nondet)
            o += snprintf(issues + o, sizeof issues - (size_t)o, "nondet:%d ", s->nondet);
        if (s->modified)
            o += snprintf(issues + o, sizeof issues - (size_t)o, "input:%d ", s->modified);
        if (s->rcfail)
            o += snprintf(issues + o, sizeof issues - (size_t)o, "rc:%d ", s->rcfail);
        printf("%-28s %6d %11.3g %9.3g  %-6s %s\n", s->op, s->cases, s->worst, s->worst_tol, o ? issues : "ok",
               s->worst_at);
    }
    printf("(worst err: relative to the CPU's max |value| or |contribution| for += outputs; ulps for normals;\n"
           " mismatching elements where tol is 0)\n\n");
}

/* ---- the harness's self-test: a fake "GPU" -------------------------------------------------------------------------
 * With --fake-gpu the table under test is the CPU's behind wrappers that own their allocations and check, for every
 * call, that each tensor argument lies (with its whole extent) inside memory from this table's alloc, and that the
 * host-memory arguments (configs, K[], evaluation results, the host side of upload/download) do not. That checks,
 * without a GPU, that this test and models/ pass device pointers exactly where the CUDA table will get them; every
 * comparison then has error 0. DEBCM_PARITY_FAULT=<name> injects one defect into the fake table, to see that the
 * harness catches it (guard, overwrite, nondet, input, mask, normal, sel, nan, evalnk, tol, gather: gather_rows
 * copies one wrong row, hostmem: the table claims host memory so engine/train.c passes it host arrays). */

#define FAKE_MAX 8192
static struct {
    char *p;
    size_t n;
} fake_blocks[FAKE_MAX];
static int fake_nblocks, fake_bad, fake_calls;
static const char *fault = "";

static int is_fault(const char *name) { return !strcmp(fault, name); }

static void *fake_alloc(size_t bytes)
{
    if (fake_nblocks == FAKE_MAX)
        die("fake GPU: too many live allocations");
    void *p = ops_c->alloc(bytes);
    if (p) {
        fake_blocks[fake_nblocks].p = p;
        fake_blocks[fake_nblocks].n = bytes;
        fake_nblocks++;
    }
    return p;
}

static void fake_free(void *p)
{
    for (int i = 0; i < fake_nblocks; i++)
        if (fake_blocks[i].p == p) {
            fake_blocks[i] = fake_blocks[--fake_nblocks];
            ops_c->free(p);
            return;
        }
    fake_bad++;
    fprintf(stderr, "fake GPU: free of %p, not from this table's alloc\n", p);
}

/* p .. p + bytes inside one block (bytes < 0: sizes the op will refuse, only p is checked) */
static int in_dev(const void *p, int64_t bytes)
{
    const char *c = p;
    for (int i = 0; i < fake_nblocks; i++) {
        const char *b = fake_blocks[i].p;
        if (c >= b && c <= b + fake_blocks[i].n)
            return bytes < 0 || (size_t)(c - b) + (size_t)bytes <= fake_blocks[i].n;
    }
    return 0;
}

static void need_dev(const char *op, const void *p, int64_t bytes, const char *arg)
{
    fake_calls++;
    if (p && !in_dev(p, bytes)) {
        fake_bad++;
        fprintf(stderr, "fake GPU: %s: %s (%lld bytes) is not (all) device memory\n", op, arg, (long long)bytes);
    }
}

static void need_host(const char *op, const void *p, const char *arg)
{
    fake_calls++;
    if (p && in_dev(p, 0)) {
        fake_bad++;
        fprintf(stderr, "fake GPU: %s: %s is device memory, the op wants host memory\n", op, arg);
    }
}

#define DEV(p, n) need_dev(__func__, (p), (int64_t)(n), #p)
#define HOST(p) need_host(__func__, (p), #p)
#define FB(n) ((n) * (int64_t)sizeof(float))

static int fk_upload(void *dst, const void *src, size_t bytes)
{
    DEV(dst, bytes);
    HOST(src);
    return ops_c->upload(dst, src, bytes);
}
static int fk_download(void *dst, const void *src, size_t bytes)
{
    HOST(dst);
    DEV(src, bytes);
    return ops_c->download(dst, src, bytes);
}
static int fk_copy(void *dst, const void *src, size_t bytes)
{
    DEV(dst, bytes);
    DEV(src, bytes);
    return ops_c->copy(dst, src, bytes);
}
static int fk_zero(void *p, size_t bytes)
{
    DEV(p, bytes);
    return ops_c->zero(p, bytes);
}
static int fk_sync(void) { return 0; }

/* the wrapper allocation holding p (p may be its end), or -1 */
static int dev_block(const void *p)
{
    const char *c = p;
    for (int i = 0; i < fake_nblocks; i++)
        if (c >= fake_blocks[i].p && c <= fake_blocks[i].p + fake_blocks[i].n)
            return i;
    return -1;
}

/* dst [B, D] and idx [B] whole; src must be a wrapper allocation holding every row the op reads (row idx[r] =
 * D floats at idx[r]·D past src): src's extent [N, D] is not an argument, so it is checked through the rows
 * touched, reading idx on the host side of the fake once idx is known to be device memory. An index outside src's
 * allocation is refused (-1) instead of read: on a GPU it is an illegal address or garbage. */
static int fk_gather_rows(float *dst, const float *src, const int64_t *idx, int64_t B, int64_t D)
{
    DEV(dst, FB(B * D));
    DEV(idx, B * 8);
    fake_calls++;
    int blk = src ? dev_block(src) : -1;
    if (src && blk < 0) {
        fake_bad++;
        fprintf(stderr, "fake GPU: %s: src is not device memory\n", __func__);
    } else if (src && idx && B > 0 && D > 0 && in_dev(idx, B * 8)) {
        size_t avail = fake_blocks[blk].n - (size_t)((const char *)src - fake_blocks[blk].p);
        uint64_t rows = avail / sizeof(float) / (uint64_t)D; /* whole rows of D floats from src to the block's end */
        int64_t out = 0, first = -1;
        for (int64_t r = 0; r < B; r++)
            if (idx[r] < 0 || (uint64_t)idx[r] >= rows) {
                out++;
                first = first < 0 ? r : first;
            }
        if (out) {
            fake_bad++;
            fprintf(stderr, "fake GPU: %s: %lld of %lld rows outside src's allocation (%llu rows of D=%lld there; "
                    "idx[%lld] = %lld)\n", __func__, (long long)out, (long long)B, (unsigned long long)rows,
                    (long long)D, (long long)first, (long long)idx[first]);
            return debcm_fail("fake GPU: gather_rows: index outside the source's allocation");
        }
    }
    int rc = ops_c->gather_rows(dst, src, idx, B, D);
    if (rc == 0 && B > 1 && D > 0 && is_fault("gather")) /* row 0 from another row of src than idx[0] */
        for (int64_t r = 1; r < B; r++)
            if (idx[r] != idx[0]) {
                memcpy(dst, src + idx[r] * D, (size_t)D * sizeof *dst);
                break;
            }
    return rc;
}

static int fk_linear_forward(float *y, const float *x, const float *W, const float *b, int64_t B, int64_t in,
                             int64_t out)
{
    DEV(y, FB(B * out));
    DEV(x, FB(B * in));
    DEV(W, FB(out * in));
    DEV(b, FB(out));
    int rc = ops_c->linear_forward(y, x, W, b, B, in, out);
    if (rc == 0 && is_fault("guard"))
        y[B * out] = 1.0f; /* one float past the end */
    return rc;
}
static int fk_linear_backward(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                              int64_t B, int64_t in, int64_t out)
{
    DEV(dx, FB(B * in));
    DEV(dW, FB(out * in));
    DEV(db, FB(out));
    DEV(dy, FB(B * out));
    DEV(x, FB(B * in));
    DEV(W, FB(out * in));
    return ops_c->linear_backward(dx, dW, db, dy, x, W, B, in, out);
}
static int fk_bn_forward_train(float *y, float *xhat, float *mean, float *rstd, float *rm, float *rv, const float *x,
                               const float *gamma, const float *beta, int64_t B, int64_t D)
{
    DEV(y, FB(B * D));
    DEV(xhat, FB(B * D));
    DEV(mean, FB(D));
    DEV(rstd, FB(D));
    DEV(rm, FB(D));
    DEV(rv, FB(D));
    DEV(x, FB(B * D));
    DEV(gamma, FB(D));
    DEV(beta, FB(D));
    return ops_c->bn_forward_train(y, xhat, mean, rstd, rm, rv, x, gamma, beta, B, D);
}
static int fk_bn_forward_eval(float *y, const float *x, const float *gamma, const float *beta, const float *rm,
                              const float *rv, int64_t B, int64_t D)
{
    DEV(y, FB(B * D));
    DEV(x, FB(B * D));
    DEV(gamma, FB(D));
    DEV(beta, FB(D));
    DEV(rm, FB(D));
    DEV(rv, FB(D));
    return ops_c->bn_forward_eval(y, x, gamma, beta, rm, rv, B, D);
}
static int fk_bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *xhat,
                          const float *gamma, const float *rstd, int64_t B, int64_t D)
{
    DEV(dx, FB(B * D));
    DEV(dgamma, FB(D));
    DEV(dbeta, FB(D));
    DEV(dy, FB(B * D));
    DEV(xhat, FB(B * D));
    DEV(gamma, FB(D));
    DEV(rstd, FB(D));
    float *before = NULL;
    if (is_fault("tol") && dgamma) {
        before = xcalloc((size_t)D * sizeof *before);
        memcpy(before, dgamma, (size_t)D * sizeof *before);
    }
    int rc = ops_c->bn_backward(dx, dgamma, dbeta, dy, xhat, gamma, rstd, B, D);
    if (before) { /* the contribution 0.1% too large */
        for (int64_t i = 0; i < D; i++)
            dgamma[i] += 1e-3f * (dgamma[i] - before[i]);
        free(before);
    }
    return rc;
}
static int fk_dropout_mask(uint8_t *mask, debcm_draw draw, float p, int64_t n)
{
    DEV(mask, n);
    int rc = ops_c->dropout_mask(mask, draw, p, n);
    if (rc == 0 && n > 0 && is_fault("mask"))
        mask[n / 2] ^= 1;
    return rc;
}
static int fk_dropout_forward(float *y, const float *x, const uint8_t *mask, float p, int64_t n)
{
    DEV(y, FB(n));
    DEV(x, FB(n));
    DEV(mask, n);
    int rc = ops_c->dropout_forward(y, x, mask, p, n);
    if (rc == 0 && n > 0 && is_fault("input") && x != y)
        ((float *)x)[0] += 1.0f;
    return rc;
}
static int fk_dropout_backward(float *dx, const float *dy, const uint8_t *mask, float p, int64_t n)
{
    DEV(dx, FB(n));
    DEV(dy, FB(n));
    DEV(mask, n);
    return ops_c->dropout_backward(dx, dy, mask, p, n);
}
static int fk_l2norm_forward(float *y, float *norm, const float *x, int64_t B, int64_t D)
{
    DEV(y, FB(B * D));
    DEV(norm, FB(B));
    DEV(x, FB(B * D));
    return ops_c->l2norm_forward(y, norm, x, B, D);
}
static int fk_l2norm_backward(float *dx, const float *dy, const float *y, const float *norm, int64_t B, int64_t D)
{
    DEV(dx, FB(B * D));
    DEV(dy, FB(B * D));
    DEV(y, FB(B * D));
    DEV(norm, FB(B));
    return ops_c->l2norm_backward(dx, dy, y, norm, B, D);
}
static int fk_normal_draw(float *eps, debcm_draw draw, int64_t n)
{
    DEV(eps, FB(n));
    int rc = ops_c->normal_draw(eps, draw, n);
    if (rc == 0 && n > 0 && is_fault("normal")) {
        int32_t i;
        memcpy(&i, eps, sizeof i);
        i += 100; /* 100 ulps */
        memcpy(eps, &i, sizeof i);
    }
    return rc;
}
static int fk_reparam_forward(float *z, const float *mu, const float *lv, const float *eps, int64_t n)
{
    DEV(z, FB(n));
    DEV(mu, FB(n));
    DEV(lv, FB(n));
    DEV(eps, FB(n));
    return ops_c->reparam_forward(z, mu, lv, eps, n);
}
static int fk_reparam_backward(float *dmu, float *dlv, const float *dz, const float *lv, const float *eps, int64_t n)
{
    DEV(dmu, FB(n));
    DEV(dlv, FB(n));
    DEV(dz, FB(n));
    DEV(lv, FB(n));
    DEV(eps, FB(n));
    return ops_c->reparam_backward(dmu, dlv, dz, lv, eps, n);
}
static int fk_relu_forward(float *y, const float *x, int64_t n)
{
    DEV(y, FB(n));
    DEV(x, FB(n));
    return ops_c->relu_forward(y, x, n);
}
static int fk_relu_backward(float *dx, const float *dy, const float *y, int64_t n)
{
    DEV(dx, FB(n));
    DEV(dy, FB(n));
    DEV(y, FB(n));
    if (dx && n > 0 && is_fault("overwrite")) /* = instead of += */
        memset(dx, 0, (size_t)n * sizeof *dx);
    return ops_c->relu_backward(dx, dy, y, n);
}
static int fk_mse_forward(float *loss, const float *x, const float *target, int64_t n)
{
    static int calls;
    DEV(loss, FB(1));
    DEV(x, FB(n));
    DEV(target, FB(n));
    int rc = ops_c->mse_forward(loss, x, target, n);
    if (rc == 0 && is_fault("nondet") && (calls++ & 1))
        *loss = nextafterf(*loss, INFINITY);
    return rc;
}
static int fk_mse_backward(float *dx, float dloss, const float *x, const float *target, int64_t n)
{
    DEV(dx, FB(n));
    DEV(x, FB(n));
    DEV(target, FB(n));
    return ops_c->mse_backward(dx, dloss, x, target, n);
}
static int fk_kl_forward(float *loss, const float *mu, const float *lv, int64_t B, int64_t L)
{
    DEV(loss, FB(1));
    DEV(mu, FB(B * L));
    DEV(lv, FB(B * L));
    return ops_c->kl_forward(loss, mu, lv, B, L);
}
static int fk_kl_backward(float *dmu, float *dlv, float dloss, const float *mu, const float *lv, int64_t B, int64_t L)
{
    DEV(dmu, FB(B * L));
    DEV(dlv, FB(B * L));
    DEV(mu, FB(B * L));
    DEV(lv, FB(B * L));
    int rc = ops_c->kl_backward(dmu, dlv, dloss, mu, lv, B, L);
    if (rc == 0 && dlv && is_fault("nan"))
        dlv[0] = NAN;
    return rc;
}
static int fk_distill_forward(float *loss, const float *mu1, const float *lv1, const float *mu2, const float *lv2,
                              distill_variant v, int64_t B, int64_t L)
{
    DEV(loss, FB(1));
    DEV(mu1, FB(B * L));
    DEV(lv1, FB(B * L));
    DEV(mu2, FB(B * L));
    DEV(lv2, FB(B * L));
    return ops_c->distill_forward(loss, mu1, lv1, mu2, lv2, v, B, L);
}
static int fk_distill_backward(float *dmu1, float *dlv1, float dloss, const float *mu1, const float *lv1,
                               const float *mu2, const float *lv2, distill_variant v, int64_t B, int64_t L)
{
    DEV(dmu1, FB(B * L));
    DEV(dlv1, FB(B * L));
    DEV(mu1, FB(B * L));
    DEV(lv1, FB(B * L));
    DEV(mu2, FB(B * L));
    DEV(lv2, FB(B * L));
    return ops_c->distill_backward(dmu1, dlv1, dloss, mu1, lv1, mu2, lv2, v, B, L);
}
static int fk_match_forward(float *music, float *video, float *S, int32_t *sel_m, int32_t *sel_v, const float *zm,
                            const float *zv, const match_cfg *cfg, int64_t B, int64_t L)
{
    int64_t k = cfg && cfg->variant != MATCH_SOFTMAX && B >= 2 ? match_k_eff(cfg->k, B) : 0;
    HOST(cfg);
    DEV(music, FB(1));
    DEV(video, FB(1));
    DEV(S, FB(B * B));
    DEV(sel_m, k * 4);
    DEV(sel_v, k * 4);
    DEV(zm, FB(B * L));
    DEV(zv, FB(B * L));
    int rc = ops_c->match_forward(music, video, S, sel_m, sel_v, zm, zv, cfg, B, L);
    if (rc == 0 && k > 0 && B >= 3 && is_fault("sel")) /* another column: no longer topk_select's */
        sel_m[0] = sel_m[0] == 1 ? 2 : 1;
    return rc;
}
static int fk_match_backward(float *dzm, float *dzv, float *dS, float dmusic, float dvideo, const float *S,
                             const int32_t *sel_m, const int32_t *sel_v, const float *zm, const float *zv,
                             const match_cfg *cfg, int64_t B, int64_t L)
{
    int64_t k = cfg && cfg->variant != MATCH_SOFTMAX && B >= 2 ? match_k_eff(cfg->k, B) : 0;
    HOST(cfg);
    DEV(dzm, FB(B * L));
    DEV(dzv, FB(B * L));
    DEV(dS, FB(B * B));
    DEV(S, FB(B * B));
    DEV(sel_m, k * 4);
    DEV(sel_v, k * 4);
    DEV(zm, FB(B * L));
    DEV(zv, FB(B * L));
    return ops_c->match_backward(dzm, dzv, dS, dmusic, dvideo, S, sel_m, sel_v, zm, zv, cfg, B, L);
}
static int fk_confounder_forward(float *zc, float *pi, float *c, const float *zm, const float *prior,
                                 const float *cemb, const float *Wc, const float *bc, int64_t B, int64_t P, int64_t L,
                                 int64_t G)
{
    DEV(zc, FB(B * L));
    DEV(pi, FB(G));
    DEV(c, FB(L));
    DEV(zm, FB(B * L));
    DEV(prior, FB(P * G));
    DEV(cemb, FB(G * L));
    DEV(Wc, FB(2 * L * L));
    DEV(bc, FB(L));
    return ops_c->confounder_forward(zc, pi, c, zm, prior, cemb, Wc, bc, B, P, L, G);
}
static int fk_confounder_backward(float *dzm, float *dcemb, float *dWc, float *dbc, const float *dzc,
                                  const float *pi, const float *c, const float *zm, const float *Wc, int64_t B,
                                  int64_t L, int64_t G)
{
    DEV(dzm, FB(B * L));
    DEV(dcemb, FB(G * L));
    DEV(dWc, FB(2 * L * L));
    DEV(dbc, FB(L));
    DEV(dzc, FB(B * L));
    DEV(pi, FB(G));
    DEV(c, FB(L));
    DEV(zm, FB(B * L));
    DEV(Wc, FB(2 * L * L));
    return ops_c->confounder_backward(dzm, dcemb, dWc, dbc, dzc, pi, c, zm, Wc, B, L, G);
}
static int fk_adam_update(float *theta, float *m, float *v, const float *g, const adam_cfg *cfg, int64_t t,
                          int64_t n)
{
    HOST(cfg);
    DEV(theta, FB(n));
    DEV(m, FB(n));
    DEV(v, FB(n));
    DEV(g, FB(n));
    return ops_c->adam_update(theta, m, v, g, cfg, t, n);
}
static int fk_eval_negatives(double *recall, double *ndcg, int64_t *tie_rows, const float *scores,
                             const float *weights, const int32_t *K, int nK, int64_t R, int64_t C)
{
    HOST(recall);
    HOST(ndcg);
    HOST(tie_rows);
    HOST(K);
    DEV(scores, FB(R * C));
    DEV(weights, FB(R));
    int rc = ops_c->eval_negatives(recall, ndcg, tie_rows, scores, weights, K, nK, R, C);
    if (rc == 0 && is_fault("evalnk"))
        recall[nK] = 0.0;
    return rc;
}
static int fk_eval_full_rank(double *recall, const float *scores, const int64_t *truth, const int32_t *K, int nK,
                             int64_t R, int64_t N)
{
    HOST(recall);
    HOST(K);
    DEV(scores, FB(R * N));
    DEV(truth, R * 8);
    /* the CPU op reads truth directly: host memory here, so that is fine; the CUDA op must read it on the GPU */
    return ops_c->eval_full_rank(recall, scores, truth, K, nK, R, N);
}

static debcm_ops fake_ops;
static const debcm_ops *fake_table(void)
{
    debcm_ops *t = &fake_ops;
    t->name = "fake-gpu (cpu behind pointer checks)";
    t->alloc = fake_alloc;
    t->free = fake_free;
    t->upload = fk_upload;
    t->download = fk_download;
    t->copy = fk_copy;
    t->zero = fk_zero;
    t->sync = fk_sync;
    t->gather_rows = fk_gather_rows;
    t->linear_forward = fk_linear_forward;
    t->linear_backward = fk_linear_backward;
    t->bn_forward_train = fk_bn_forward_train;
    t->bn_forward_eval = fk_bn_forward_eval;
    t->bn_backward = fk_bn_backward;
    t->dropout_mask = fk_dropout_mask;
    t->dropout_forward = fk_dropout_forward;
    t->dropout_backward = fk_dropout_backward;
    t->l2norm_forward = fk_l2norm_forward;
    t->l2norm_backward = fk_l2norm_backward;
    t->normal_draw = fk_normal_draw;
    t->reparam_forward = fk_reparam_forward;
    t->reparam_backward = fk_reparam_backward;
    t->relu_forward = fk_relu_forward;
    t->relu_backward = fk_relu_backward;
    t->mse_forward = fk_mse_forward;
    t->mse_backward = fk_mse_backward;
    t->kl_forward = fk_kl_forward;
    t->kl_backward = fk_kl_backward;
    t->distill_forward = fk_distill_forward;
    t->distill_backward = fk_distill_backward;
    t->match_forward = fk_match_forward;
    t->match_backward = fk_match_backward;
    t->confounder_forward = fk_confounder_forward;
    t->confounder_backward = fk_confounder_backward;
    t->adam_update = fk_adam_update;
    t->eval_negatives = fk_eval_negatives;
    t->eval_full_rank = fk_eval_full_rank;
    const char *f = getenv("DEBCM_PARITY_FAULT");
    fault = f ? f : "";
    /* device memory, as a GPU's: engine/train.c must then upload what it uses (fault hostmem: claim host memory,
     * so that train.c hands the table its host arrays, which the pointer checks must catch) */
    t->host_memory = is_fault("hostmem");
    return t;
}

/* ---- the training loop (engine/train.c) on both tables --------------------------------------------------------------
 * A `debcm synth --scale tiny`-like dataset written in process (io/synth.h) into a temporary directory and loaded
 * with dataset_load; then, on each table, train_phase_begin + TRAIN_EPOCHS train_phase_epoch of a teacher and of a
 * student distilled from that table's teacher, with the teacher's posterior cache on and off. train.c keeps the
 * features, priors, the epoch's order and the cache resident in backend memory and gathers every batch with
 * gather_rows: with --fake-gpu (host_memory 0) every one of those pointers goes through the wrapper's checks, so
 * this proves train.c uploads what it hands the table (the CPU reference runs the host-memory path: the arrays in
 * place), and the two paths must then agree bit for bit. On a GPU the per-epoch means agree to MODEL_LOSS_TOL. */

#define TRAIN_EPOCHS 2
static int fake_gpu; /* --fake-gpu: the table under test is the CPU's: every comparison exact */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* a fresh network (net_init(seed)) trained TRAIN_EPOCHS epochs on table o; net stays for the caller */
static int phase_run(debcm_net *net, const debcm_ops *o, int student, const debcm_net *teacher, const train_data *td,
                     const model_config *cfg, int recompute, train_epoch_stats *st)
{
    model_dims dims = train_dims(td, student);
    memset(net, 0, sizeof *net);
    if (net_create(net, o, &dims, student) || net_init(net, student ? 1111 : 555))
        return -1;
    train_phase_opts opt;
    memset(&opt, 0, sizeof opt);
    opt.seed = 4242;
    opt.teacher_recompute = recompute;
    train_phase *ph = NULL;
    if (train_phase_begin(&ph, student, net, teacher, td, cfg, &opt, NULL))
        return -1;
    for (int e = 0; e < TRAIN_EPOCHS; e++)
        if (train_phase_epoch(ph, e + 1, 0, &st[e])) {
            train_phase_end(ph);
            return -1;
        }
    train_phase_end(ph);
    return 0;
}

/* every epoch's means (relative to the reference's) and its counts (exact) */
static void epochs_check(const char *what, const train_epoch_stats *g, const train_epoch_stats *c, double tol)
{
    for (int e = 0; e < TRAIN_EPOCHS; e++) {
        const double a[8] = {g[e].loss, g[e].music, g[e].video, g[e].kl_m, g[e].kl_v, g[e].recon, g[e].distill_m,
                             g[e].distill_v};
        const double b[8] = {c[e].loss, c[e].music, c[e].video, c[e].kl_m, c[e].kl_v, c[e].recon, c[e].distill_m,
                             c[e].distill_v};
        static const char *names[8] = {"loss", "music", "video", "kl_m", "kl_v", "recon", "distill_m", "distill_v"};
        double worst = 0.0;
        int wi = 0;
        for (int i = 0; i < 8; i++) {
            double err = a[i] == b[i] ? 0.0 : fabs(a[i] - b[i]) / fmax(fabs(b[i]), 1e-6);
            if (!isfinite(a[i]) || !isfinite(b[i]))
                err = INFINITY;
            if (err > worst || (err != err)) {
                worst = err;
                wi = i;
            }
        }
        char w[160];
        snprintf(w, sizeof w, "%s epoch %d means (worst: %s %.9g vs %.9g)", what, e + 1, names[wi], a[wi], b[wi]);
        note(w, worst, tol);
        snprintf(w, sizeof w, "%s epoch %d batches/samples/skipped (mismatches)", what, e + 1);
        note(w, (double)((g[e].batches != c[e].batches) + (g[e].samples != c[e].samples) +
                         (g[e].skipped != c[e].skipped)),
             0);
    }
}

/* the trained parameters and running statistics, relative norm per tensor: exact with --fake-gpu; on a GPU printed
 * only (Adam turns gradients that are rounding noise around 0 into full ±lr steps, so after a dozen steps the
 * tensors' differences say little: the per-epoch losses are the check there) */
static void nets_check(const char *what, const debcm_net *g, const debcm_net *c)
{
    double worst = 0.0;
    const char *wn = "";
    for (int i = 0; i < net_tensor_count(c); i++) {
        net_tensor a, b;
        if (net_tensor_get(c, i, &a) || net_tensor_get(g, i, &b))
            die("net_tensor_get");
        float *h = xcalloc((size_t)a.count * sizeof *h);
        if (g->ops->download(h, b.data, (size_t)a.count * sizeof *h))
            die("download of a trained tensor");
        double e = rel_norm(h, a.data, a.count);
        if (e > worst || e != e) {
            worst = e;
            wn = a.name;
        }
        free(h);
    }
    char w[160];
    snprintf(w, sizeof w, "%s trained tensors (worst: %s)", what, wn);
    if (fake_gpu)
        note(w, worst, 0.0);
    else
        printf("  note: train_phase %s: %.3g (relative norm)\n", w, worst);
}

static void print_epochs(const char *what, const train_epoch_stats *st)
{
    for (int e = 0; e < TRAIN_EPOCHS; e++)
        printf("  %s epoch %d: loss %.9g (match %.6g/%.6g kl %.6g/%.6g recon %.6g distill %.6g/%.6g) %lld batches "
               "%lld samples %lld skipped\n", what, e + 1, st[e].loss, st[e].music, st[e].video, st[e].kl_m,
               st[e].kl_v, st[e].recon, st[e].distill_m, st[e].distill_v, (long long)st[e].batches,
               (long long)st[e].samples, (long long)st[e].skipped);
}

static void train_compare(void)
{
    begin("train_phase", "synth tiny");
    const char *tmp = getenv("TMPDIR");
    char root[PATH_MAX], pgc[PATH_MAX + 32], ugc[PATH_MAX + 32];
    snprintf(root, sizeof root, "%s/debcm-parity-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(root)) {
        CHECK_MSG(0, "train_phase: mkdtemp %s failed", root);
        return;
    }
    snprintf(pgc, sizeof pgc, "%s/data_pgc", root);
    snprintf(ugc, sizeof ugc, "%s/data_matching", root);
    /* tiny, resized so that the phases get awkward batches: teacher 109 pairs = 4·27 + 1 (a one-row batch, skipped),
     * student 200 rows = 5·37 + 15 (a short last batch) */
    synth_config sc;
    synth_stats ss;
    debcm_dataset ds;
    train_data td;
    memset(&ds, 0, sizeof ds);
    memset(&td, 0, sizeof td);
    int ok = synth_config_preset(&sc, "tiny") == 0;
    sc.videos = 248;
    sc.pgc = 121;
    sc.seed = 20250;
    ok = ok && synth_write(root, &sc, 0, &ss) == 0;
    CHECK_MSG(ok, "train_phase: synth_write %s: %s", root, debcm_last_error());
    ok = ok && dataset_load(&ds, pgc, ugc) == 0;
    CHECK_MSG(ok, "train_phase: dataset_load %s: %s", root, debcm_last_error());
    const int64_t L = 16;
    ok = ok && train_data_build(&td, &ds, L) == 0;
    CHECK_MSG(ok, "train_phase: train_data_build: %s", debcm_last_error());
    if (!ok)
        goto done;
    model_config tcfg, scfg;
    model_config_default(&tcfg, 0);
    model_config_default(&scfg, 1);
    tcfg.L = scfg.L = L;
    tcfg.batch = 27;
    scfg.batch = 37;
    snprintf(cur_where, sizeof cur_where, "teacher %lld pairs/batch %lld, student %lld rows/batch %lld, L %lld D_v %lld "
             "D_m %lld G %lld", (long long)ds.pgc_train.n, (long long)tcfg.batch,
             (long long)ds.train.n, (long long)scfg.batch, (long long)L, (long long)td.dims.D_v,
             (long long)td.dims.D_m, (long long)td.dims.G);
    printf("  train_phase: %s\n", cur_where);
    const double tol = fake_gpu ? 0.0 : MODEL_LOSS_TOL;
    const debcm_ops *tables[2] = {ops_c, ops_g};
    debcm_net teacher[2], student[2][2];
    train_epoch_stats tst[2][TRAIN_EPOCHS], sst[2][2][TRAIN_EPOCHS]; /* [table], [table][recompute] */
    int okt[2] = {0, 0}, oks[2][2] = {{0, 0}, {0, 0}};
    memset(teacher, 0, sizeof teacher);
    memset(student, 0, sizeof student);
    for (int t = 0; t < 2; t++) {
        okt[t] = phase_run(&teacher[t], tables[t], 0, NULL, &td, &tcfg, 0, tst[t]) == 0;
        if (!t && !okt[t])
            die("train_phase teacher on the CPU");
        CHECK_MSG(okt[t], "train_phase teacher on '%s': %s", tables[t]->name, debcm_last_error());
        stat_for(cur_op)->rcfail += !okt[t];
        for (int rec = 0; okt[t] && rec < 2; rec++) {
            oks[t][rec] = phase_run(&student[t][rec], tables[t], 1, &teacher[t], &td, &scfg, rec, sst[t][rec]) == 0;
            if (!t && !oks[t][rec])
                die("train_phase student on the CPU");
            CHECK_MSG(oks[t][rec], "train_phase student (teacher cache %s) on '%s': %s", rec ? "off" : "on",
                      tables[t]->name, debcm_last_error());
            stat_for(cur_op)->rcfail += !oks[t][rec];
        }
    }
    print_epochs("teacher cpu", tst[0]);
    print_epochs("student cache on cpu", sst[0][0]);
    print_epochs("student cache off cpu", sst[0][1]);
    if (okt[1]) {
        epochs_check("teacher", tst[1], tst[0], tol);
        nets_check("teacher", &teacher[1], &teacher[0]);
    }
    for (int rec = 0; rec < 2; rec++)
        if (oks[1][rec]) {
            const char *w = rec ? "student, teacher cache off," : "student, teacher cache on,";
            epochs_check(w, sst[1][rec], sst[0][rec], tol);
            nets_check(w, &student[1][rec], &student[0][rec]);
        }
    /* the cache holds exactly what the teacher's encoders compute in eval mode: on and off agree, on each table */
    epochs_check("cpu: cache on vs off:", sst[0][0], sst[0][1], 0.0);
    if (oks[1][0] && oks[1][1])
        epochs_check("under test: cache on vs off:", sst[1][0], sst[1][1], tol);
    for (int t = 0; t < 2; t++) {
        net_free(&teacher[t]);
        net_free(&student[t][0]);
        net_free(&student[t][1]);
    }
    /* the whole trainer (run_phase: its validation after each epoch, the best epoch kept by ops->copy): the steps
     * must agree; the validation metrics exactly with --fake-gpu, printed only on a GPU (on the ~25 validation rows
     * one rank flipped by a near-tie moves Recall@25 by 4%, and then the best epoch may differ) */
    tcfg.epochs = scfg.epochs = TRAIN_EPOCHS;
    train_phase_result rt[2], rs[2];
    int okr[2] = {0, 0};
    for (int t = 0; t < 2; t++) {
        debcm_net tn, sn;
        model_dims dt = train_dims(&td, 0), dsd = train_dims(&td, 1);
        train_phase_opts opt;
        memset(&opt, 0, sizeof opt);
        opt.seed = 77;
        memset(&tn, 0, sizeof tn);
        memset(&sn, 0, sizeof sn);
        okr[t] = net_create(&tn, tables[t], &dt, 0) == 0 && net_init(&tn, 3) == 0 &&
                 train_teacher(&tn, &td, &tcfg, &opt, &rt[t]) == 0 && net_create(&sn, tables[t], &dsd, 1) == 0 &&
                 net_init(&sn, 4) == 0 && train_student(&sn, &tn, &td, &scfg, &opt, &rs[t]) == 0;
        if (!t && !okr[t])
            die("train_teacher / train_student on the CPU");
        CHECK_MSG(okr[t], "train_teacher / train_student on '%s': %s", tables[t]->name, debcm_last_error());
        stat_for(cur_op)->rcfail += !okr[t];
        net_free(&tn);
        net_free(&sn);
    }
    printf("  train_teacher cpu: best epoch %lld val R@25 %.6g; train_student cpu: best epoch %lld val R@25 %.6g "
           "NDCG@25 %.6g\n", (long long)rt[0].best_epoch, rt[0].val_recall, (long long)rs[0].best_epoch,
           rs[0].val_recall, rs[0].val_ndcg);
    if (okr[1]) {
        note("train_teacher/train_student steps, skipped batches (mismatches)",
             (double)((rt[1].steps != rt[0].steps) + (rs[1].steps != rs[0].steps) +
                      (rt[1].skipped_batches != rt[0].skipped_batches) +
                      (rs[1].skipped_batches != rs[0].skipped_batches)),
             0);
        double dv = fmax(fmax(fabs(rt[1].val_recall - rt[0].val_recall), fabs(rs[1].val_recall - rs[0].val_recall)),
                         fabs(rs[1].val_ndcg - rs[0].val_ndcg));
        int db = (rt[1].best_epoch != rt[0].best_epoch) + (rs[1].best_epoch != rs[0].best_epoch);
        if (fake_gpu) {
            note("train_teacher/train_student validation metrics (absolute)", dv, 0);
            note("train_teacher/train_student best epochs (mismatches)", db, 0);
        } else {
            printf("  note: train_teacher/train_student on the GPU: best epoch %lld / %lld, validation metrics %.3g "
                   "apart (absolute)\n", (long long)rt[1].best_epoch, (long long)rs[1].best_epoch, dv);
        }
    }
    /* the reference epochs must have trained something: batches, one-row batch skipped, the distillation term */
    for (int e = 0; e < TRAIN_EPOCHS; e++) {
        int64_t n = ds.pgc_train.n, B = tcfg.batch;
        CHECK(tst[0][e].batches == n / B + (n % B >= 2) && tst[0][e].skipped == (n % B == 1));
        n = ds.train.n;
        B = scfg.batch;
        CHECK(sst[0][0][e].batches == n / B + (n % B >= 2) && sst[0][0][e].skipped == (n % B == 1));
    }
    CHECK(isfinite(sst[0][0][1].distill_m) && sst[0][0][1].distill_m != 0.0);
done:
    train_data_free(&td);
    dataset_free(&ds);
    if (nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS))
        fprintf(stderr, "test_cuda_parity: could not remove %s\n", root);
}

int main(int argc, char **argv)
{
    int fake = 0;
    for (int i = 1; i < argc; i++) {
        fake |= !strcmp(argv[i], "--fake-gpu");
        quick |= !strcmp(argv[i], "--quick");
    }
    ops_c = debcm_ops_cpu();
    fake_gpu = fake;
    if (fake) {
        ops_g = fake_table();
        if (fault[0])
            printf("fault injected into the fake GPU: %s (this run should FAIL)\n", fault);
    } else {
        char desc[2048];
        int gpus = cuda_device_describe(desc, sizeof desc);
        printf("%s\n", desc);
        if (gpus == 0) {
            printf("no GPU: skipped\n");
            return CHECK_SKIP_CODE;
        }
        ops_g = debcm_ops_cuda();
        if (!ops_g) {
            /* a GPU is visible but the backend refuses it (no kernels for its architecture, a driver too old):
             * that is a defect of this build, not a machine without a GPU */
            printf("the CUDA backend refused the visible GPU: %s\n", debcm_last_error());
            return 1;
        }
        if (cuda_set_tf32(0)) /* full FP32: what the tolerances assume */
            die("cuda_set_tf32(0)");
        CHECK_MSG(ops_g->name && !strcmp(ops_g->name, "cuda"), "the CUDA table is named '%s'",
                  ops_g->name ? ops_g->name : "(null)");
    }
    printf("parity of the '%s' table against '%s'\n", ops_g->name, ops_c->name);

    test_memory();
    test_refusals();

    /* gather_rows: B from 0, D from 1 to 2048, src with fewer rows than B (repeats) and with more */
    static const int64_t gBs[] = {0, 1, 2, 3, 37, 1024, 1030}, gDs[] = {1, 2, 5, 128, 257, 2048};
    for (int bi = 0; bi < (int)(sizeof gBs / sizeof gBs[0]); bi++)
        for (int di = 0; di < (int)(sizeof gDs / sizeof gDs[0]); di++)
            if (!quick || gBs[bi] <= 37) {
                test_gather(gBs[bi], gDs[di], gBs[bi] / 2 + 1);
                test_gather(gBs[bi], gDs[di], 3 * gBs[bi] + 7);
            }
    if (!quick && !fake)
        test_gather_big();
    test_draws();

    /* linear: every B with (in, out) pairs of awkward sizes; NULL d-outputs once */
    static const int64_t io[][2] = {{1, 5}, {5, 1}, {128, 257}, {257, 128}, {2048, 128}, {128, 2048}, {257, 2048},
                                    {2048, 257}};
    for (int bi = 0; bi < NB; bi++)
        for (int p = 0; p < (int)(sizeof io / sizeof io[0]); p++)
            if (!quick || (Bs[bi] <= 37 && io[p][0] * io[p][1] <= 257 * 128))
                test_linear(Bs[bi], io[p][0], io[p][1], (bi + p) % 3 != 0, bi == 2 && p == 2);

    for (int bi = 0; bi < NB; bi++)
        for (int di = 0; di < ND; di++) {
            if (quick && (Bs[bi] > 37 || Ds[di] > 257))
                continue;
            int nulls = bi == 2 && di == 3;
            test_bn(Bs[bi], Ds[di], nulls);
            test_l2norm(Bs[bi], Ds[di], 0, nulls);
            if (Ds[di] <= 257) { /* L sized */
                test_kl(Bs[bi], Ds[di], nulls);
                test_distill(Bs[bi], Ds[di], DISTILL_PUBLISHED, nulls);
                test_distill(Bs[bi], Ds[di], DISTILL_KL, nulls);
            }
        }
    test_l2norm(5, 3, 1, 1);
    test_l2norm(37, 128, 1, 0);

    static const int64_t ns[] = {1, 5, 37, 1030, 264710, 2109441};
    for (int i = 0; i < (int)(sizeof ns / sizeof ns[0]); i++) {
        if (quick && ns[i] > 1030)
            continue;
        int nulls = i == 2;
        test_dropout(ns[i], i % 2 ? 0.2f : 0.5f, nulls);
        test_reparam(ns[i], nulls);
        test_relu_mse(ns[i], nulls);
        test_adam(ns[i], 1);
        test_adam(ns[i], i + 2);
    }
    test_dropout(1031, 0.0f, 0);
    test_adam(4099, 1000);

    /* matching: every variant, B, L and k (1, the published 40, and past B − 1), exact and random inputs */
    static const int64_t Ls[] = {1, 5, 128, 257};
    static const int64_t kset[] = {1, 40, 100000};
    for (int v = 0; v < 3; v++)
        for (int bi = 0; bi < NB; bi++)
            for (int li = 0; li < (int)(sizeof Ls / sizeof Ls[0]); li++)
                for (int ki = 0; ki < (v == MATCH_SOFTMAX ? 1 : 3); ki++)
                    for (int exact = 0; exact < 2; exact++)
                        if (!quick || Bs[bi] <= 37)
                            test_match((match_variant)v, Bs[bi], Ls[li], kset[ki], exact,
                                   bi == 2 && li == 2 && ki == 1 && !exact);
    if (!quick)
        test_match(MATCH_PUBLISHED, 1030, 2048, 40, 0, 0);

    static const int64_t Gs[] = {1, 7};
    for (int bi = 0; bi < NB; bi++)
        for (int li = 0; li < (int)(sizeof Ls / sizeof Ls[0]); li++)
            for (int gi = 0; gi < 2; gi++)
                for (int pp = 0; pp < 2; pp++)
                    if (!quick || Bs[bi] <= 37)
                        test_confounder(Bs[bi], pp ? Bs[bi] : 1, Ls[li], Gs[gi], bi == 2 && li == 2 && gi == 1 && pp);

    for (int ties = 0; ties < 2; ties++)
        for (int nans = 0; nans < 2; nans++) {
            test_eval_negatives(1, 2, ties, nans);
            test_eval_negatives(37, 101, ties, nans);
            if (!quick)
                test_eval_negatives(5000, 101, ties, nans);
            test_eval_full_rank(1, 1, ties, nans);
            test_eval_full_rank(37, 5, ties, nans);
            if (!quick)
                test_eval_full_rank(1030, 2049, ties, nans);
        }

    /* the models: small awkward sizes with every variant, then the published sizes */
    model_dims small = {301, 130, 40, 7}, paper = {2048, 256, 128, 19};
    for (int v = 0; v < 3; v++)
        model_step_compare("small", &small, 37, 0, (match_variant)v, DISTILL_PUBLISHED);
    model_step_compare("small", &small, 37, 1, MATCH_PUBLISHED, DISTILL_PUBLISHED);
    model_step_compare("small", &small, 37, 1, MATCH_HINGE, DISTILL_KL);
    if (!quick) {
        model_step_compare("paper", &paper, 1024, 0, MATCH_PUBLISHED, DISTILL_PUBLISHED);
        model_step_compare("paper", &paper, 1030, 1, MATCH_PUBLISHED, DISTILL_PUBLISHED);
    }
    model_eval_compare();
    train_compare();

    report();
    if (fake) {
        printf("fake GPU: %d pointer checks, %d not in the right memory, %d allocations still live\n", fake_calls,
               fake_bad, fake_nblocks);
        CHECK_MSG(fake_bad == 0, "%d pointers in the wrong memory", fake_bad);
        CHECK_MSG(fake_nblocks == 0, "%d device allocations leaked", fake_nblocks);
    }
    free(img);
    return check_done();
}
