/* tests/test_models.c — the teacher and student networks of models/ against the published code's numbers.
 *
 * `test_models DATA` reads DATA/fixtures/tiny (copied from shared/fixtures; DATA is tests/data); `test_models
 * --paper-dims DIR` runs the one-step and evaluation checks below on the published sizes in DIR (the shared
 * paper_dims fixtures, read in place), and exits 77 (skipped) when DIR is absent. Every fixture reader takes the
 * fixture directory as its first parameter. Parameters and BN
 * running statistics are loaded into the arenas BY NAME through the tensor table (every table tensor must have its
 * file and every file must name a table tensor: no silent skip), then:
 *   teacher/, student/: one training step replaying the recorded draws — the loss and every scalar of meta.json to
 *     1e-5 relative, every gradient of grad/ to 1e-4 (‖a−b‖/‖b‖ per tensor), the running statistics against
 *     after_forward/ (1e-5), the parameters after one Adam step against after_adam1/ (fixtures/README: an element
 *     whose gradient is within rounding of zero may differ by up to 2·lr; at most 1% of elements beyond 1e-3·lr);
 *   teacher_steps/, student_steps/: three steps (12, 12, 7 rows) with one optimiser, losses per step and final/;
 *   student_eval/, teacher_eval/: weighted Recall@K / NDCG@K (100 negatives) and full-ranking Recall@K;
 *   Philox mode: a step runs, the same seed gives identical losses and parameters, 1 and 2 OpenMP threads agree,
 *     and a batch of one row is refused with a message.
 * Prints the worst relative error per group; exit code 0 pass, 1 fail. */
#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <cblas.h>
#include <jansson.h>

#include "check.h"
#include "engine/error.h"
#include "engine/ops.h"
#include "io/dataset.h"
#include "io/npy.h"
#include "io/pickle.h"
#include "models/model.h"

#define SCALAR_TOL 1e-5
#define GRAD_TOL 1e-4
#define STAT_TOL 1e-5

static const debcm_ops *ops;

#define OK(call) CHECK_MSG((call) == 0, "%s", debcm_last_error())

/* worst errors per group */
typedef struct {
    char name[48];
    double worst;
} group_stat;
static group_stat groups[32];
static int ngroups;
static void note(const char *group, double err)
{
    int i = 0;
    while (i < ngroups && strcmp(groups[i].name, group))
        i++;
    if (i == ngroups) {
        if (ngroups == 32)
            abort();
        snprintf(groups[ngroups++].name, sizeof groups[0].name, "%s", group);
    }
    if (!(err <= groups[i].worst))
        groups[i].worst = err;
}

/* ---- files ------------------------------------------------------------------------------------------------------ */

/* sub/name.npy as float32 (count elements expected; count < 0: any, returned in *n) */
static float *load_f32(const char *fx, const char *sub, const char *name, int64_t count, int64_t *n)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/%s.npy", fx, sub, name);
    npy_file f;
    if (npy_open(&f, path)) {
        CHECK_MSG(0, "%s", debcm_last_error());
        return NULL;
    }
    float *out = NULL;
    if (count >= 0 && f.h.count != count) {
        CHECK_MSG(0, "%s: %lld elements, expected %lld", path, (long long)f.h.count, (long long)count);
    } else {
        out = malloc((size_t)(f.h.count ? f.h.count : 1) * sizeof *out);
        if (!out || npy_to_f32(&f, out)) {
            CHECK_MSG(0, "%s: %s", path, out ? debcm_last_error() : "out of memory");
            free(out);
            out = NULL;
        } else if (n) {
            *n = f.h.count;
        }
    }
    npy_close(&f);
    return out;
}

static uint8_t *load_mask(const char *fx, const char *sub, const char *name, int64_t count)
{
    float *m = load_f32(fx, sub, name, count, NULL);
    if (!m)
        return NULL;
    uint8_t *u = malloc((size_t)count);
    if (u)
        for (int64_t i = 0; i < count; i++)
            u[i] = m[i] != 0.0f;
    free(m);
    return u;
}

static json_t *load_meta(const char *fx, const char *sub)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/meta.json", fx, sub);
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    CHECK_MSG(j != NULL, "%s: %s", path, e.text);
    return j;
}

/* meta["key"] or meta["scalars"]["key"] as a number; NaN (and a failure) when absent */
static double meta_num(const json_t *meta, const char *key)
{
    const json_t *v = json_object_get(meta, key);
    if (!v)
        v = json_object_get(json_object_get(meta, "scalars"), key);
    CHECK_MSG(json_is_number(v), "meta.json has no number \"%s\"", key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The .npy files of sub/ must all name tensors of the network, of the allowed kinds. */
static void check_dir_names(const char *fx, const debcm_net *net, const char *sub, int allow_params, int allow_stats)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", fx, sub);
    DIR *d = opendir(path);
    CHECK_MSG(d != NULL, "cannot open %s", path);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".npy"))
            continue;
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)(n - 4), e->d_name);
        int i = net_tensor_find(net, name);
        net_tensor t;
        CHECK_MSG(i >= 0, "%s/%s: no tensor of that name in the network", path, e->d_name);
        if (i >= 0 && net_tensor_get(net, i, &t) == 0)
            CHECK_MSG(t.kind == TENSOR_PARAM ? allow_params : allow_stats, "%s/%s: unexpected kind", path,
                      e->d_name);
    }
    closedir(d);
}

/* Load every tensor of the network from sub/<name>.npy (all must be present). */
static void load_net(const char *fx, debcm_net *net, const char *sub)
{
    check_dir_names(fx, net, sub, 1, 1);
    for (int i = 0; i < net_tensor_count(net); i++) {
        net_tensor t;
        OK(net_tensor_get(net, i, &t));
        float *h = load_f32(fx, sub, t.name, t.count, NULL);
        if (h)
            OK(ops->upload(t.data, h, (size_t)t.count * sizeof *h));
        free(h);
    }
}

/* a device copy of a host array */
static void *dev_copy(const void *h, size_t bytes)
{
    void *d = ops->alloc(bytes);
    if (d && h)
        OK(ops->upload(d, h, bytes));
    return d;
}

/* ---- comparisons ------------------------------------------------------------------------------------------------ */

static double rel_norm(const float *a, const float *b, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0.0 ? sqrt(num / den) : sqrt(num);
}

static double rel_max(const float *a, const float *b, int64_t n)
{
    double num = 0.0, den = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= num))
            num = e;
        den = fmax(den, fabs(b[i]));
    }
    return den > 0.0 ? num / den : num;
}

static void check_scalar(const char *group, const char *what, double got, double want)
{
    double rel = fabs(got - want) / fmax(fabs(want), 1e-30);
    printf("  %-14s %-16s engine % .9g  published % .9g  rel %.2g\n", group, what, got, want, rel);
    note(group, rel);
    CHECK_MSG(rel <= SCALAR_TOL, "%s: %s = %.9g, published %.9g (rel %.3g)", group, what, got, want, rel);
}

/* Every gradient against sub/grad (all present, ‖a−b‖/‖b‖ ≤ 1e-4). */
static void check_grads(const char *fx, const debcm_net *net, const char *sub, const char *group)
{
    char dir[256];
    snprintf(dir, sizeof dir, "%s/grad", sub);
    check_dir_names(fx, net, dir, 1, 0);
    double worst = 0.0;
    for (int i = 0; i < net_tensor_count(net); i++) {
        net_tensor t;
        OK(net_tensor_get(net, i, &t));
        if (t.kind != TENSOR_PARAM)
            continue;
        float *want = load_f32(fx, dir, t.name, t.count, NULL);
        float *got = malloc((size_t)t.count * sizeof *got);
        if (want && got && ops->download(got, t.grad, (size_t)t.count * sizeof *got) == 0) {
            double e = rel_norm(got, want, t.count);
            worst = fmax(worst, e);
            CHECK_MSG(e <= GRAD_TOL, "%s: gradient of %s off by %.3g (relative norm)", group, t.name, e);
        }
        free(want);
        free(got);
    }
    char g[64];
    snprintf(g, sizeof g, "%s grad", group);
    note(g, worst);
}

/* Tensors against sub/: statistics to 1e-5 (max relative); parameters (when want_params) within the Adam
 * tolerance of fixtures/README: |Δ| ≤ 2·lr·steps everywhere, and at most 1% of elements beyond 1e-3·lr. */
static void check_state(const char *fx, const debcm_net *net, const char *sub, int want_params, double lr,
                        int steps, const char *group)
{
    check_dir_names(fx, net, sub, want_params, 1);
    double worst_stat = 0.0, worst_step = 0.0;
    int64_t off = 0, total = 0;
    for (int i = 0; i < net_tensor_count(net); i++) {
        net_tensor t;
        OK(net_tensor_get(net, i, &t));
        if (t.kind == TENSOR_PARAM && !want_params)
            continue;
        float *want = load_f32(fx, sub, t.name, t.count, NULL);
        float *got = malloc((size_t)t.count * sizeof *got);
        if (want && got && ops->download(got, t.data, (size_t)t.count * sizeof *got) == 0) {
            if (t.kind == TENSOR_STAT) {
                double e = rel_max(got, want, t.count);
                worst_stat = fmax(worst_stat, e);
                CHECK_MSG(e <= STAT_TOL, "%s: %s off by %.3g", group, t.name, e);
            } else {
                for (int64_t j = 0; j < t.count; j++) {
                    double e = fabs((double)got[j] - want[j]);
                    worst_step = fmax(worst_step, e / lr);
                    off += e > 1e-3 * lr + 1e-6 * fabs(want[j]);
                    total++;
                }
            }
        }
        free(want);
        free(got);
    }
    char g[64];
    snprintf(g, sizeof g, "%s stats", group);
    note(g, worst_stat);
    if (want_params) {
        snprintf(g, sizeof g, "%s params (·lr)", group);
        note(g, worst_step);
        printf("  %-14s parameters vs %s: worst |Δ| = %.3g·lr, %lld of %lld elements beyond 1e-3·lr\n", group, sub,
               worst_step, (long long)off, (long long)total);
        CHECK_MSG(worst_step <= 2.0 * steps + 1e-3, "%s: a parameter differs by %.3g·lr", group, worst_step);
        CHECK_MSG(off * 100 <= total, "%s: %lld of %lld parameters off", group, (long long)off, (long long)total);
    }
}

/* ---- the networks of a fixture ---------------------------------------------------------------------------------- */

typedef struct {
    model_dims dims;
    int64_t k;
    double margin, alpha, lr, wd, dropout;
} fx_dims;

static int read_dims(const char *fx, fx_dims *d, const char *kind)
{
    json_t *m = load_meta(fx, kind);
    if (!m)
        return -1;
    d->dims.D_v = (int64_t)meta_num(m, "D_v");
    d->dims.D_m = (int64_t)meta_num(m, "D_m");
    d->dims.L = (int64_t)meta_num(m, "L");
    d->dims.G = strcmp(kind, "student") ? 0 : (int64_t)meta_num(m, "G");
    d->k = (int64_t)meta_num(m, "k");
    d->margin = meta_num(m, "margin");
    d->alpha = strcmp(kind, "student") ? 0.0 : meta_num(m, "alpha");
    d->lr = meta_num(m, "lr");
    d->wd = meta_num(m, "weight_decay");
    d->dropout = json_object_get(m, "dropout") ? meta_num(m, "dropout") : 0.2;
    json_decref(m);
    return 0;
}

static model_config fx_config(const fx_dims *d, int student)
{
    model_config c;
    model_config_default(&c, student);
    c.lr = d->lr;
    c.weight_decay = d->wd;
    c.L = d->dims.L;
    c.dropout = (float)d->dropout;
    c.match.k = d->k;
    c.match.margin = (float)d->margin;
    if (student)
        c.alpha = (float)d->alpha;
    return c;
}

/* the inputs and recorded draws of one step folder, in backend memory */
typedef struct {
    void *mem[9];
    model_batch batch;
    model_draws draws;
} fx_step_in;

static int load_step(const char *fx, fx_step_in *s, const char *sub, const model_dims *d, int student, int64_t B)
{
    memset(s, 0, sizeof *s);
    int64_t L = d->L;
    float *xm = load_f32(fx, sub, "x_m", B * d->D_m, NULL), *xv = load_f32(fx, sub, "x_v", B * d->D_v, NULL);
    float *em = load_f32(fx, sub, "eps_m", B * L, NULL), *ev = load_f32(fx, sub, "eps_v", B * L, NULL);
    float *pr = student ? load_f32(fx, sub, "user_prior", B * d->G, NULL) : NULL;
    uint8_t *m1 = load_mask(fx, sub, "mask_m_encoder", B * d->D_m);
    uint8_t *m2 = load_mask(fx, sub, "mask_v_encoder", B * d->D_v);
    uint8_t *m3 = load_mask(fx, sub, "mask_m_decoder", B * L), *m4 = load_mask(fx, sub, "mask_video_v_decoder", B * L);
    int ok = xm && xv && em && ev && (!student || pr) && m1 && m2 && m3 && m4;
    if (ok) {
        s->batch.x_m = s->mem[0] = dev_copy(xm, (size_t)(B * d->D_m) * sizeof(float));
        s->batch.x_v = s->mem[1] = dev_copy(xv, (size_t)(B * d->D_v) * sizeof(float));
        s->draws.eps_m = s->mem[2] = dev_copy(em, (size_t)(B * L) * sizeof(float));
        s->draws.eps_v = s->mem[3] = dev_copy(ev, (size_t)(B * L) * sizeof(float));
        s->draws.mask_m_encoder = s->mem[4] = dev_copy(m1, (size_t)(B * d->D_m));
        s->draws.mask_v_encoder = s->mem[5] = dev_copy(m2, (size_t)(B * d->D_v));
        s->draws.mask_m_decoder = s->mem[6] = dev_copy(m3, (size_t)(B * L));
        s->draws.mask_video_v_decoder = s->mem[7] = dev_copy(m4, (size_t)(B * L));
        if (student)
            s->batch.prior = s->mem[8] = dev_copy(pr, (size_t)(B * d->G) * sizeof(float));
        s->batch.B = B;
    }
    free(xm); free(xv); free(em); free(ev); free(pr); free(m1); free(m2); free(m3); free(m4);
    return ok ? 0 : -1;
}

static void free_step(fx_step_in *s)
{
    for (int i = 0; i < 9; i++)
        if (s->mem[i])
            ops->free(s->mem[i]);
    memset(s, 0, sizeof *s);
}

/* ---- 1. one step: teacher/ and student/ ------------------------------------------------------------------------- */

static void test_one_step(const char *fx, const char *kind)
{
    int student = !strcmp(kind, "student");
    printf("%s: one training step (replayed draws)\n", kind);
    fx_dims fd;
    json_t *meta = load_meta(fx, kind);
    if (!meta || read_dims(fx, &fd, kind)) {
        json_decref(meta);
        return;
    }
    int64_t B = (int64_t)meta_num(meta, "B");
    model_config cfg = fx_config(&fd, student);
    debcm_net net, teacher;
    model_workspace ws;
    memset(&teacher, 0, sizeof teacher);
    OK(net_create(&net, ops, &fd.dims, student));
    OK(model_workspace_create(&ws, ops, &fd.dims, B));
    char sub[256];
    snprintf(sub, sizeof sub, "%s/init", kind);
    load_net(fx, &net, sub);
    if (student) {
        OK(net_create(&teacher, ops, &fd.dims, 0));
        load_net(fx, &teacher, "student/teacher");
    }
    fx_step_in in;
    if (load_step(fx, &in, kind, &fd.dims, student, B) == 0) {
        model_losses l;
        OK(model_train_step(&net, &ws, &cfg, student ? &teacher : NULL, &in.batch, &in.draws, 0, 0, &l));
        check_scalar(kind, "recon", l.recon, meta_num(meta, "recon"));
        check_scalar(kind, "kl_m", l.kl_m, meta_num(meta, "kl_m"));
        check_scalar(kind, "kl_v", l.kl_v, meta_num(meta, "kl_v"));
        if (student) {
            check_scalar(kind, "video_term", l.video, meta_num(meta, "video_term"));
            check_scalar(kind, "distill_m", l.distill_m, meta_num(meta, "distill_m"));
            check_scalar(kind, "distill_v", l.distill_v, meta_num(meta, "distill_v"));
        } else {
            check_scalar(kind, "neg_video_term", -l.video, meta_num(meta, "neg_video_term"));
        }
        check_scalar(kind, "loss", l.loss, meta_num(meta, "loss"));
        check_grads(fx, &net, kind, kind);
        snprintf(sub, sizeof sub, "%s/after_forward", kind);
        check_state(fx, &net, sub, 0, cfg.lr, 1, kind);
        OK(model_adam_step(&net, &cfg));
        snprintf(sub, sizeof sub, "%s/after_adam1", kind);
        check_state(fx, &net, sub, 1, cfg.lr, 1, kind);
    }
    free_step(&in);
    model_workspace_free(&ws);
    net_free(&net);
    net_free(&teacher);
    json_decref(meta);
}

/* ---- 2. three steps: teacher_steps/ and student_steps/ -------------------------------------------------------- */

static void test_three_steps(const char *fx, const char *kind)
{
    int student = !strcmp(kind, "student");
    char dir[64], sub[256], group[64];
    snprintf(dir, sizeof dir, "%s_steps", kind);
    snprintf(group, sizeof group, "%s_steps", kind);
    printf("%s: three training steps with one optimiser\n", dir);
    fx_dims fd;
    json_t *meta = load_meta(fx, dir);
    if (!meta || read_dims(fx, &fd, kind)) {
        json_decref(meta);
        return;
    }
    const json_t *sizes = json_object_get(meta, "batch_sizes"), *losses = json_object_get(meta, "losses");
    CHECK(json_array_size(sizes) == 3 && json_array_size(losses) == 3);
    if (json_array_size(sizes) != 3 || json_array_size(losses) != 3) {
        json_decref(meta);
        return;
    }
    fd.lr = meta_num(meta, "lr");
    fd.wd = meta_num(meta, "weight_decay");
    fd.k = (int64_t)meta_num(meta, "k");
    model_config cfg = fx_config(&fd, student);
    debcm_net net, teacher;
    model_workspace ws;
    memset(&teacher, 0, sizeof teacher);
    OK(net_create(&net, ops, &fd.dims, student));
    OK(model_workspace_create(&ws, ops, &fd.dims, 12));
    snprintf(sub, sizeof sub, "%s/init", dir);
    load_net(fx, &net, sub);
    if (student) {
        OK(net_create(&teacher, ops, &fd.dims, 0));
        load_net(fx, &teacher, "student/teacher");
    }
    for (int s = 0; s < 3; s++) {
        int64_t B = (int64_t)json_integer_value(json_array_get(sizes, (size_t)s));
        snprintf(sub, sizeof sub, "%s/step%d", dir, s);
        fx_step_in in;
        if (load_step(fx, &in, sub, &fd.dims, student, B) == 0) {
            model_losses l;
            OK(model_train_step(&net, &ws, &cfg, student ? &teacher : NULL, &in.batch, &in.draws, 0, (uint64_t)s,
                                &l));
            char what[32];
            snprintf(what, sizeof what, "loss step %d (B %lld)", s, (long long)B);
            check_scalar(group, what, l.loss, json_number_value(json_array_get(losses, (size_t)s)));
            OK(model_adam_step(&net, &cfg));
        }
        free_step(&in);
    }
    snprintf(sub, sizeof sub, "%s/final", dir);
    check_state(fx, &net, sub, 1, cfg.lr, 3, group);
    model_workspace_free(&ws);
    net_free(&net);
    net_free(&teacher);
    json_decref(meta);
}

/* ---- 3. evaluation: student_eval/ and teacher_eval/ ------------------------------------------------------------- */

static int pv_i64(const pv *v, int64_t *out)
{
    if (v && v->kind == PV_INT) {
        *out = v->u.i;
        return 0;
    }
    if (v && v->kind == PV_NDARRAY && v->u.arr.ndim == 0 && v->u.arr.type != NPY_OBJECT)
        return npy_convert_i64(out, v->u.arr.data, v->u.arr.type, v->u.arr.big_endian, 0, 0, v->u.arr.shape, "id");
    return -1;
}

/* rows.npy: object array [R, 3] of [video, positive, array of negatives] */
static int load_eval_rows(const char *fx, eval_split *e, const char *sub)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s/rows.npy", fx, sub);
    memset(e, 0, sizeof *e);
    npy_file f;
    pickle_doc doc;
    memset(&doc, 0, sizeof doc);
    int rc = -1;
    if (npy_open(&f, path)) {
        CHECK_MSG(0, "%s", debcm_last_error());
        return -1;
    }
    if (f.h.type != NPY_OBJECT || pickle_load(&doc, f.data, f.data_size, path)) {
        CHECK_MSG(0, "%s: not a loadable object array (%s)", path, debcm_last_error());
        goto out;
    }
    const pv *a = doc.root;
    if (!a || a->kind != PV_NDARRAY || a->u.arr.ndim != 2 || a->u.arr.shape[1] != 3) {
        CHECK_MSG(0, "%s: expected an object array [R, 3]", path);
        goto out;
    }
    e->n = a->u.arr.shape[0];
    const pv *neg0 = a->u.arr.items[2];
    e->n_neg = neg0 && neg0->kind == PV_NDARRAY && neg0->u.arr.ndim == 1 ? neg0->u.arr.shape[0] : 0;
    e->video = calloc((size_t)e->n, sizeof *e->video);
    e->positive = calloc((size_t)e->n, sizeof *e->positive);
    e->negatives = calloc((size_t)(e->n * e->n_neg) + 1, sizeof *e->negatives);
    e->weight = calloc((size_t)e->n, sizeof *e->weight);
    if (!e->video || !e->positive || !e->negatives || !e->weight || e->n_neg < 1)
        goto out;
    for (int64_t r = 0; r < e->n; r++) {
        const pv *const *it = (const pv *const *)a->u.arr.items + r * 3;
        const pv *ng = it[2];
        if (pv_i64(it[0], &e->video[r]) || pv_i64(it[1], &e->positive[r]) || !ng || ng->kind != PV_NDARRAY ||
            ng->u.arr.ndim != 1 || ng->u.arr.shape[0] != e->n_neg ||
            npy_convert_i64(e->negatives + r * e->n_neg, ng->u.arr.data, ng->u.arr.type, ng->u.arr.big_endian, 0, 1,
                            ng->u.arr.shape, path)) {
            CHECK_MSG(0, "%s: row %lld is not [video, positive, %lld negatives]", path, (long long)r,
                      (long long)e->n_neg);
            goto out;
        }
    }
    int64_t nw = 0;
    float *w = load_f32(fx, sub, "weights", e->n, &nw);
    if (!w)
        goto out;
    memcpy(e->weight, w, (size_t)e->n * sizeof *w);
    free(w);
    rc = 0;
out:
    pickle_free(&doc);
    npy_close(&f);
    return rc;
}

static void check_metric(const char *group, const char *what, int K, double got, double want)
{
    double err = fabs(got - want) / fmax(fabs(want), 1e-12);
    if (want == 0.0)
        err = fabs(got);
    printf("  %-14s %s@%-3d engine %.9f  published %.9f\n", group, what, K, got, want);
    note(group, err);
    CHECK_MSG(err <= SCALAR_TOL, "%s: %s@%d = %.9g, published %.9g", group, what, K, got, want);
}

static void test_student_eval(const char *fx)
{
    printf("student_eval: 100-negative protocol with the student's after_adam1 weights\n");
    fx_dims fd;
    json_t *meta = load_meta(fx, "student_eval");
    if (!meta || read_dims(fx, &fd, "student")) {
        json_decref(meta);
        return;
    }
    debcm_net net;
    model_workspace ws;
    OK(net_create(&net, ops, &fd.dims, 1));
    OK(model_workspace_create(&ws, ops, &fd.dims, 64)); /* chunks of 64 rows: several chunks for 300 musics */
    load_net(fx, &net, "student/after_adam1");
    int64_t Nm = 0, Nv = 0;
    float *m = load_f32(fx, "student_eval", "m_feat", -1, &Nm), *v = load_f32(fx, "student_eval", "v_feat", -1, &Nv);
    float *prior = load_f32(fx, "student", "user_prior_mean", fd.dims.G, NULL);
    eval_split rows;
    if (m && v && prior && load_eval_rows(fx, &rows, "student_eval") == 0) {
        model_eval_result res;
        memset(&res, 0, sizeof res);
        const int32_t K[] = {1, 5, 10, 15, 20, 25};
        res.nK = 6;
        memcpy(res.K, K, sizeof K);
        OK(model_eval_negatives(&net, &ws, v, Nv / fd.dims.D_v, m, Nm / fd.dims.D_m, prior, &rows, &res));
        const json_t *metrics = json_object_get(meta, "metrics");
        for (int i = 0; i < res.nK; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", K[i]);
            const json_t *e = json_object_get(metrics, key);
            CHECK_MSG(e != NULL, "student_eval/meta.json: no metrics for K = %s", key);
            check_metric("student_eval", "Recall", K[i], res.recall[i], meta_num(e, "recall"));
            check_metric("student_eval", "NDCG", K[i], res.ndcg[i], meta_num(e, "ndcg"));
        }
        printf("  student_eval   %lld rows, %lld with a tie at the positive, %lld listing it among negatives\n",
               (long long)res.rows, (long long)res.tie_rows, (long long)res.rows_positive_in_negatives);
        free(rows.video); free(rows.positive); free(rows.negatives); free(rows.weight);
    }
    free(m); free(v); free(prior);
    model_workspace_free(&ws);
    net_free(&net);
    json_decref(meta);
}

static void test_teacher_eval(const char *fx)
{
    printf("teacher_eval: full ranking with the teacher's after_adam1 weights\n");
    fx_dims fd;
    json_t *meta = load_meta(fx, "teacher_eval");
    if (!meta || read_dims(fx, &fd, "teacher")) {
        json_decref(meta);
        return;
    }
    debcm_net net;
    model_workspace ws;
    OK(net_create(&net, ops, &fd.dims, 0));
    OK(model_workspace_create(&ws, ops, &fd.dims, 16)); /* several chunks of videos */
    load_net(fx, &net, "teacher/after_adam1");
    int64_t Nm = 0, Nv = 0, Np = 0;
    float *m = load_f32(fx, "teacher_eval", "m_feat", -1, &Nm), *v = load_f32(fx, "teacher_eval", "v_feat", -1, &Nv);
    float *val = load_f32(fx, "teacher_eval", "val", -1, &Np);
    if (m && v && val) {
        pair_list pairs = {Np / 2, calloc((size_t)Np / 2 + 1, sizeof(int64_t)), calloc((size_t)Np / 2 + 1, sizeof(int64_t))};
        for (int64_t r = 0; r < pairs.n; r++) {
            pairs.video[r] = (int64_t)val[2 * r];
            pairs.music[r] = (int64_t)val[2 * r + 1];
        }
        model_eval_result res;
        memset(&res, 0, sizeof res);
        const int32_t K[] = {1, 5, 10, 25};
        res.nK = 4;
        memcpy(res.K, K, sizeof K);
        OK(model_eval_full_rank(&net, &ws, v, Nv / fd.dims.D_v, m, Nm / fd.dims.D_m, &pairs, &res));
        const json_t *recall = json_object_get(meta, "recall");
        for (int i = 0; i < res.nK; i++) {
            char key[16];
            snprintf(key, sizeof key, "%d", K[i]);
            const json_t *e = json_object_get(recall, key);
            CHECK_MSG(json_is_number(e), "teacher_eval/meta.json: no recall for K = %s", key);
            check_metric("teacher_eval", "Recall", K[i], res.recall[i], json_number_value(e));
        }
        free(pairs.video);
        free(pairs.music);
    }
    free(m); free(v); free(val);
    model_workspace_free(&ws);
    net_free(&net);
    json_decref(meta);
}

/* ---- 4. Philox mode: runs, deterministic, thread-count independent --------------------------------------------- */

static void set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

/* two Philox steps + Adam of the student from student/init (with its teacher), k = 40 capped at B − 1; losses and
 * final parameters. teacher_cache: the teacher's posteriors computed beforehand by model_posteriors (as the
 * trainer's cache does) and passed with the batch, instead of the step running the teacher's encoders */
static void philox_run(const char *fx, uint64_t seed, double losses[2], float *params_out, int64_t B,
                       int teacher_cache)
{
    fx_dims fd;
    if (read_dims(fx, &fd, "student"))
        return;
    model_config cfg = fx_config(&fd, 1);
    cfg.match.k = 40; /* the published k: capped at B − 1 (SPEC §6) */
    debcm_net net, teacher;
    model_workspace ws;
    OK(net_create(&net, ops, &fd.dims, 1));
    OK(net_create(&teacher, ops, &fd.dims, 0));
    OK(model_workspace_create(&ws, ops, &fd.dims, B));
    load_net(fx, &net, "student/init");
    load_net(fx, &teacher, "student/teacher");
    float *xm = load_f32(fx, "student", "x_m", -1, NULL), *xv = load_f32(fx, "student", "x_v", -1, NULL);
    float *pr = load_f32(fx, "student", "user_prior", -1, NULL);
    if (xm && xv && pr) {
        model_batch b = {dev_copy(xv, (size_t)(B * fd.dims.D_v) * 4), dev_copy(xm, (size_t)(B * fd.dims.D_m) * 4),
                         dev_copy(pr, (size_t)(B * fd.dims.G) * 4), B, NULL};
        const int64_t L = fd.dims.L;
        float *post = calloc((size_t)(4 * B * L), sizeof *post); /* host: mu_m, lv_m, mu_v, lv_v */
        float *dpost = ops->alloc((size_t)(4 * B * L) * sizeof *dpost);
        model_teacher_post tp = {dpost, dpost + B * L, dpost + 2 * B * L, dpost + 3 * B * L};
        if (!post || !dpost)
            abort();
        if (teacher_cache) { /* in two chunks of rows, as the trainer's cache is built apart from the batches */
            int64_t h = B / 2;
            OK(model_posteriors(&teacher, &ws, MODEL_MUSIC, post, post + B * L, xm, h));
            OK(model_posteriors(&teacher, &ws, MODEL_MUSIC, post + h * L, post + B * L + h * L,
                                xm + h * fd.dims.D_m, B - h));
            OK(model_posteriors(&teacher, &ws, MODEL_VIDEO, post + 2 * B * L, post + 3 * B * L, xv, B));
            OK(ops->upload(dpost, post, (size_t)(4 * B * L) * sizeof *post));
            b.teacher_post = &tp;
        }
        for (int s = 0; s < 2; s++) {
            model_losses l;
            OK(model_train_step(&net, &ws, &cfg, &teacher, &b, NULL, seed, (uint64_t)s, &l));
            CHECK_MSG(isfinite(l.loss), "Philox step: loss %g", l.loss);
            CHECK_MSG(l.k == B - 1, "k = %lld for B = %lld, expected the cap B − 1", (long long)l.k, (long long)B);
            losses[s] = l.loss;
            OK(model_adam_step(&net, &cfg));
        }
        OK(ops->download(params_out, net.param_arena, (size_t)net.n_params * sizeof(float)));
        /* a batch of one row is refused, with the reason */
        b.B = 1;
        model_losses l1;
        CHECK(model_train_step(&net, &ws, &cfg, &teacher, &b, NULL, seed, 9, &l1) == -1);
        CHECK_CONTAINS(debcm_last_error(), "at least 2 rows");
        ops->free((void *)b.x_v);
        ops->free((void *)b.x_m);
        ops->free((void *)b.prior);
        ops->free(dpost);
        free(post);
    }
    free(xm); free(xv); free(pr);
    model_workspace_free(&ws);
    net_free(&net);
    net_free(&teacher);
}

static void test_philox(const char *fx)
{
    printf("Philox mode: determinism\n");
    fx_dims fd;
    if (read_dims(fx, &fd, "student"))
        return;
    debcm_net probe;
    OK(net_create(&probe, ops, &fd.dims, 1));
    int64_t n = probe.n_params;
    net_free(&probe);
    float *a = calloc((size_t)n, sizeof *a), *b = calloc((size_t)n, sizeof *b), *c = calloc((size_t)n, sizeof *c);
    float *d = calloc((size_t)n, sizeof *d), *e = calloc((size_t)n, sizeof *e);
    double la[2] = {0}, lb[2] = {0}, lc[2] = {0}, ld[2] = {0}, le[2] = {0};
    if (!a || !b || !c || !d || !e)
        abort();
    set_threads(1);
    philox_run(fx, 1234, la, a, 12, 0);
    philox_run(fx, 1234, lb, b, 12, 0);
    set_threads(2);
    philox_run(fx, 1234, lc, c, 12, 0);
    philox_run(fx, 99, ld, d, 12, 0);
    philox_run(fx, 1234, le, e, 12, 1);
    /* the teacher's posteriors computed beforehand are the ones the step computes: the same run */
    double worst = 0.0;
    for (int64_t i = 0; i < n; i++)
        worst = fmax(worst, fabs((double)e[i] - a[i]));
    printf("  teacher cache  losses %.9g %.9g; max |param difference| %.3g\n", le[0], le[1], worst);
    CHECK_MSG(fabs(le[0] - la[0]) <= 1e-6 * fabs(la[0]) && fabs(le[1] - la[1]) <= 1e-6 * fabs(la[1]) &&
                  worst <= 1e-6,
              "the cached teacher posteriors changed the run: losses %.9g %.9g vs %.9g %.9g", le[0], le[1], la[0],
              la[1]);
    printf("  philox         losses seed 1234: %.9g %.9g (again %.9g %.9g; 2 threads %.9g %.9g); seed 99: %.9g\n",
           la[0], la[1], lb[0], lb[1], lc[0], lc[1], ld[0]);
    CHECK_MSG(la[0] == lb[0] && la[1] == lb[1] && !memcmp(a, b, (size_t)n * sizeof *a),
              "the same seed gave different results");
    CHECK_MSG(la[0] == lc[0] && la[1] == lc[1] && !memcmp(a, c, (size_t)n * sizeof *a),
              "1 and 2 threads gave different results");
    CHECK_MSG(la[0] != ld[0], "another seed gave the same loss");
    free(a); free(b); free(c); free(d); free(e);
}

/* ---- 5. the table and initialisation -------------------------------------------------------------------------- */

static void test_init(void)
{
    model_dims dims = {40, 20, 16, 6};
    debcm_net n1, n2;
    OK(net_create(&n1, ops, &dims, 1));
    OK(net_create(&n2, ops, &dims, 1));
    OK(net_init(&n1, 7));
    OK(net_init(&n2, 7));
    CHECK(!memcmp(n1.param_arena, n2.param_arena, (size_t)n1.n_params * sizeof(float)));
    CHECK(net_tensor_find(&n1, "confounder_emb.weight") >= 0 && net_tensor_find(&n1, "v_encoder.fc1.weight") < 0);
    /* the SPEC §5 distributions, roughly: Xavier std, bias bounds, γ = 1, running var 1, Cemb ~ N(0, 1) */
    double s2 = 0.0;
    for (int64_t i = 0; i < 16 * 40; i++)
        s2 += (double)n1.p.v_enc.mu_w[i] * n1.p.v_enc.mu_w[i];
    double std = sqrt(s2 / (16 * 40));
    CHECK_MSG(fabs(std - sqrt(2.0 / 56.0)) < 0.03, "Xavier std %g, expected %g", std, sqrt(2.0 / 56.0));
    int bias_ok = 1;
    for (int64_t i = 0; i < 16; i++)
        bias_ok &= fabsf(n1.p.v_enc.mu_b[i]) <= 1.0f / sqrtf(40.0f) && fabsf(n1.p.bc[i]) <= 1.0f / sqrtf(32.0f);
    CHECK(bias_ok);
    CHECK(n1.p.m_enc.bn_w[3] == 1.0f && n1.p.m_enc.bn_b[3] == 0.0f && n1.s.v_dec.var[2] == 1.0f &&
          n1.s.v_dec.mean[2] == 0.0f);
    double cs = 0.0;
    for (int64_t i = 0; i < 6 * 16; i++)
        cs += (double)n1.p.cemb[i] * n1.p.cemb[i];
    CHECK_MSG(cs / 96 > 0.5 && cs / 96 < 1.6, "Cemb second moment %g", cs / 96);
    net_free(&n1);
    net_free(&n2);
}

static int report(void)
{
    printf("%-32s %12s\n", "group", "worst error");
    for (int i = 0; i < ngroups; i++)
        printf("%-32s %12.3g\n", groups[i].name, groups[i].worst);
    printf("(scalars, stats, metrics: relative; grad: ‖a−b‖/‖b‖; params: max |Δ| in units of lr)\n");
    return check_done();
}

/* --paper-dims DIR: the published sizes (shared/fixtures/paper_dims, read in place: too big to copy). The same
 * checks and tolerances as tiny, for the groups that case has (no *_steps, and Philox stays with tiny). Skipped
 * (77) when DIR is absent, so the default suite never needs ../shared. */
static int run_paper_dims(const char *fx)
{
    DIR *d = opendir(fx);
    if (!d) {
        printf("test_models: %s is absent: skipped\n", fx);
        return CHECK_SKIP_CODE;
    }
    closedir(d);
    printf("test_models: backend %s, fixtures %s\n", ops->name, fx);
    test_one_step(fx, "teacher");
    test_one_step(fx, "student");
    test_student_eval(fx);
    test_teacher_eval(fx);
    return report();
}

int main(int argc, char **argv)
{
    ops = debcm_ops_cpu();
    if (argc > 1 && !strcmp(argv[1], "--paper-dims")) {
        if (argc != 3) {
            fprintf(stderr, "usage: test_models --paper-dims DIR\n");
            return 1;
        }
        return run_paper_dims(argv[2]);
    }
    char fx[1024];
    snprintf(fx, sizeof fx, "%s/fixtures/tiny", argc > 1 ? argv[1] : "tests/data");
    printf("test_models: backend %s, fixtures %s\n", ops->name, fx);
    test_init();
    test_one_step(fx, "teacher");
    test_one_step(fx, "student");
    test_three_steps(fx, "teacher");
    test_three_steps(fx, "student");
    test_student_eval(fx);
    test_teacher_eval(fx);
    test_philox(fx);
    return report();
}
