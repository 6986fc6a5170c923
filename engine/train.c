/* engine/train.c — the epoch loop of the DebCM training job (see train.h): one loop for both phases, which differ
 * only in their rows (data_pgc pairs or data_matching rows with their user priors), the frozen teacher and the
 * validation protocol. Per epoch: shuffle (Philox Fisher–Yates at (seed, phase stream, epoch)), gather each batch
 * into host staging, upload it, one model_train_step + model_adam_step; then validate and keep the best epoch in a
 * second network (one ops->copy of each arena). Draws of step s use Philox counter s (a global step count), so a
 * run is a pure function of its seed whatever the thread count (the ops split outputs, never reductions). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/error.h"
#include "engine/rng.h"
#include "engine/train.h"

/* Philox streams of the two phases' shuffles (any constants distinct from the models' streams) */
#define SHUFFLE_STREAM_TEACHER 0x5348554654ull /* "SHUFT" */
#define SHUFFLE_STREAM_STUDENT 0x5348554653ull /* "SHUFS" */
#define VAL_K 25

double train_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* out[i] = [a_i ‖ b_i] */
static float *join_rows(const feat_matrix *a, const feat_matrix *b, const char *what)
{
    int64_t N = a->rows, Da = a->cols, Db = b->cols;
    float *out = malloc((size_t)(N * (Da + Db)) * sizeof *out + 1);
    if (!out) {
        debcm_fail("%s: out of memory joining the music features (%lld × %lld)", what, (long long)N,
                   (long long)(Da + Db));
        return NULL;
    }
    for (int64_t i = 0; i < N; i++) {
        memcpy(out + i * (Da + Db), a->data + i * Da, (size_t)Da * sizeof *out);
        memcpy(out + i * (Da + Db) + Da, b->data + i * Db, (size_t)Db * sizeof *out);
    }
    return out;
}

int train_data_build(train_data *td, const debcm_dataset *ds, int64_t L)
{
    memset(td, 0, sizeof *td);
    td->ds = ds;
    int64_t dv_p = ds->pgc_video.cols, dv_u = ds->ugc_video.cols;
    int64_t dm_p = ds->pgc_vggish.cols + ds->pgc_smile.cols, dm_u = ds->ugc_vggish.cols + ds->ugc_smile.cols;
    if (dv_p != dv_u)
        return debcm_fail("the video features of data_pgc (D_v %lld) and data_matching (D_v %lld) differ: the "
                          "teacher runs on the student's videos, they must have one width", (long long)dv_p,
                          (long long)dv_u);
    if (dm_p != dm_u)
        return debcm_fail("the music features of data_pgc (D_m %lld + %lld) and data_matching (D_m %lld + %lld) "
                          "differ in width: the teacher runs on the student's musics", (long long)ds->pgc_vggish.cols,
                          (long long)ds->pgc_smile.cols, (long long)ds->ugc_vggish.cols, (long long)ds->ugc_smile.cols);
    td->dims.D_v = dv_p;
    td->dims.D_m = dm_p;
    td->dims.L = L;
    td->dims.G = ds->train.G;
    td->pgc_music = join_rows(&ds->pgc_vggish, &ds->pgc_smile, "data_pgc");
    td->ugc_music = td->pgc_music ? join_rows(&ds->ugc_vggish, &ds->ugc_smile, "data_matching") : NULL;
    if (!td->ugc_music) {
        train_data_free(td);
        return -1;
    }
    return 0;
}

void train_data_free(train_data *td)
{
    free(td->pgc_music);
    free(td->ugc_music);
    td->pgc_music = td->ugc_music = NULL;
}

model_dims train_dims(const train_data *td, int student)
{
    model_dims d = td->dims;
    if (!student)
        d.G = 0;
    return d;
}

void train_shuffle(int64_t *perm, int64_t n, uint64_t seed, uint64_t stream, uint64_t epoch)
{
    for (int64_t i = 0; i < n; i++)
        perm[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        rng_u32x4 r = rng_philox(seed, stream, (epoch << 32) + (uint64_t)i);
        int64_t j = (int64_t)(rng_u01_double(r.v[0], r.v[1]) * (double)(i + 1)); /* uniform in [0, i] */
        if (j > i)
            j = i;
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* ---- the loop of one phase --------------------------------------------------------------------------------- */

typedef struct {
    int student;
    const char *name;        /* "teacher", "student" */
    int64_t n;               /* training rows */
    const int64_t *video, *music;
    const float *prior;      /* [n, G] (student) */
    const float *v_feat, *m_feat;
    const debcm_net *teacher;
    uint64_t shuffle_stream;
} phase_def;

/* validation: Recall@25 (and NDCG@25 for the student) */
static int validate(const phase_def *ph, const train_data *td, debcm_net *net, model_workspace *ws, double *recall,
                    double *ndcg)
{
    const debcm_dataset *ds = td->ds;
    model_eval_result r;
    memset(&r, 0, sizeof r);
    r.nK = 1;
    r.K[0] = VAL_K;
    int rc = ph->student
                 ? model_eval_negatives(net, ws, ds->ugc_video.data, ds->ugc_video.rows, td->ugc_music,
                                        ds->ugc_vggish.rows, ds->prior_mean, &ds->val, &r)
                 : model_eval_full_rank(net, ws, ds->pgc_video.data, ds->pgc_video.rows, td->pgc_music,
                                        ds->pgc_vggish.rows, &ds->pgc_val, &r);
    if (rc)
        return debcm_error_prefix("%s validation", ph->name);
    *recall = r.recall[0];
    *ndcg = r.ndcg[0];
    return 0;
}

static int copy_net(debcm_net *dst, const debcm_net *src)
{
    const debcm_ops *o = src->ops;
    return o->copy(dst->param_arena, src->param_arena, (size_t)src->n_params * sizeof(float)) ||
                   o->copy(dst->stat_arena, src->stat_arena, (size_t)src->n_stats * sizeof(float))
               ? -1
               : 0;
}

static void fmt_duration(char *buf, size_t n, double s)
{
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, t / 60 % 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

static int save_best(const debcm_net *net, const train_phase_opts *opt, int64_t epoch)
{
    if (!opt->ckpt_path)
        return 0;
    checkpoint_meta meta[32];
    int n = 0;
    char ep[32];
    snprintf(ep, sizeof ep, "%lld", (long long)epoch);
    meta[n++] = (checkpoint_meta){"epoch", ep};
    for (int i = 0; i < opt->n_meta && n < (int)(sizeof meta / sizeof meta[0]); i++)
        meta[n++] = opt->meta[i];
    return checkpoint_save(net, opt->ckpt_path, meta, n);
}

static int run_phase(const phase_def *ph, debcm_net *net, const train_data *td, const model_config *cfg,
                     const train_phase_opts *opt, train_phase_result *res)
{
    const debcm_ops *o = net->ops;
    const int64_t n = ph->n, Dv = net->dims.D_v, Dm = net->dims.D_m, G = net->dims.G;
    const int64_t Bmax = cfg->batch < n ? cfg->batch : n;
    double t0 = train_now();
    memset(res, 0, sizeof *res);
    res->val_recall = -1.0;
    if (n < 2)
        return debcm_fail("%s: %lld training row(s): at least 2 are needed", ph->name, (long long)n);
    if (cfg->batch < 2)
        return debcm_fail("%s: batch size %lld: at least 2 rows are needed", ph->name, (long long)cfg->batch);

    model_workspace ws;
    debcm_net best;
    memset(&ws, 0, sizeof ws);
    memset(&best, 0, sizeof best);
    int64_t *perm = malloc((size_t)n * sizeof *perm);
    float *hx_v = malloc((size_t)(Bmax * Dv) * sizeof *hx_v);
    float *hx_m = malloc((size_t)(Bmax * Dm) * sizeof *hx_m);
    float *hpr = malloc((size_t)(Bmax * (G > 0 ? G : 1)) * sizeof *hpr);
    int rc = -1;
    if (!perm || !hx_v || !hx_m || !hpr) {
        debcm_fail("%s: out of memory for the batch staging (%lld rows)", ph->name, (long long)Bmax);
        goto done;
    }
    if (model_workspace_create(&ws, o, &net->dims, Bmax) || net_create(&best, o, &net->dims, net->student) ||
        copy_net(&best, net))
        goto done;

    if (cfg->epochs == 0) { /* the initial model is the result: validate it once */
        double r, g;
        if (validate(ph, td, net, &ws, &r, &g) || save_best(net, opt, 0))
            goto done;
        res->val_recall = r;
        res->val_ndcg = g;
        if (opt->log)
            fprintf(opt->log, "%s 0 epochs: the initial model kept  val R@25 %.4f\n", ph->name, r);
        rc = 0;
        goto done;
    }
    if (n % Bmax == 1 && opt->log)
        fprintf(opt->log, "%s: note: %lld rows = %lld batches of %lld + 1: the last batch of one row is skipped "
                "every epoch (BatchNorm cannot train on one row, SPEC §6)\n", ph->name, (long long)n,
                (long long)(n / Bmax), (long long)Bmax);

    for (int64_t epoch = 1; epoch <= cfg->epochs; epoch++) {
        double te = train_now();
        train_shuffle(perm, n, opt->seed, ph->shuffle_stream, (uint64_t)epoch);
        double sum[8] = {0};
        int64_t batches = 0, samples = 0;
        for (int64_t b0 = 0; b0 < n; b0 += Bmax) {
            int64_t B = n - b0 < Bmax ? n - b0 : Bmax;
            if (B == 1) {
                res->skipped_batches++;
                continue;
            }
            for (int64_t r = 0; r < B; r++) { /* gather the batch's rows */
                int64_t row = perm[b0 + r], v = ph->video[row], m = ph->music[row];
                memcpy(hx_v + r * Dv, ph->v_feat + v * Dv, (size_t)Dv * sizeof *hx_v);
                memcpy(hx_m + r * Dm, ph->m_feat + m * Dm, (size_t)Dm * sizeof *hx_m);
                if (ph->student)
                    memcpy(hpr + r * G, ph->prior + row * G, (size_t)G * sizeof *hpr);
            }
            if (o->upload(ws.x_v, hx_v, (size_t)(B * Dv) * sizeof *hx_v) ||
                o->upload(ws.x_m, hx_m, (size_t)(B * Dm) * sizeof *hx_m) ||
                (ph->student && o->upload(ws.prior, hpr, (size_t)(B * G) * sizeof *hpr)))
                goto done;
            model_batch batch = {ws.x_v, ws.x_m, ph->student ? ws.prior : NULL, B};
            model_losses l;
            if (model_train_step(net, &ws, cfg, ph->teacher, &batch, NULL, opt->seed, (uint64_t)res->steps, &l) ||
                model_adam_step(net, cfg)) {
                debcm_error_prefix("%s epoch %lld, batch %lld", ph->name, (long long)epoch,
                                   (long long)(b0 / Bmax));
                goto done;
            }
            if (!isfinite(l.loss)) {
                debcm_fail("%s epoch %lld, batch %lld: the loss is %g (diverged; try a smaller learning rate)",
                           ph->name, (long long)epoch, (long long)(b0 / Bmax), l.loss);
                goto done;
            }
            res->steps++;
            batches++;
            samples += B;
            double terms[8] = {l.loss, l.music, l.video, l.kl_m, l.kl_v, l.recon, l.distill_m, l.distill_v};
            for (int i = 0; i < 8; i++)
                sum[i] += terms[i];
        }
        double t_train = train_now() - te, r, g;
        if (validate(ph, td, net, &ws, &r, &g))
            goto done;
        int improved = r > res->val_recall; /* strictly greater (SPEC §3) */
        if (improved) {
            res->best_epoch = epoch;
            res->val_recall = r;
            res->val_ndcg = g;
            if (copy_net(&best, net) || save_best(net, opt, epoch))
                goto done;
        }
        if (opt->log) {
            double k = batches ? 1.0 / (double)batches : 0.0, el = train_now() - t0;
            char eta[32], dist[64] = "";
            fmt_duration(eta, sizeof eta, el / (double)epoch * (double)(cfg->epochs - epoch));
            if (ph->student)
                snprintf(dist, sizeof dist, " distill %.3g/%.3g", sum[6] * k, sum[7] * k);
            char ndcg[32] = "";
            if (ph->student)
                snprintf(ndcg, sizeof ndcg, " NDCG@25 %.4f", g);
            fprintf(opt->log,
                    "%s epoch %*lld/%lld  loss %.4f (match %.4f/%.4f kl %.4f/%.4f recon %.4f%s)  %.0f samples/s  "
                    "val R@25 %.4f%s  best %.4f @%lld%s  ETA %s\n",
                    ph->name, cfg->epochs >= 100 ? 3 : 2, (long long)epoch, (long long)cfg->epochs, sum[0] * k,
                    sum[1] * k, sum[2] * k, sum[3] * k, sum[4] * k, sum[5] * k, dist,
                    t_train > 0 ? (double)samples / t_train : 0.0, r, ndcg, res->val_recall,
                    (long long)res->best_epoch, improved ? " *" : "", eta);
            fflush(opt->log);
        }
    }
    if (res->best_epoch == 0) { /* every epoch validated as NaN: keep the last model, said so */
        debcm_fail("%s: no epoch gave a comparable validation Recall@25 (NaN scores?)", ph->name);
        goto done;
    }
    if (copy_net(net, &best)) /* the best epoch is the phase's result */
        goto done;
    rc = 0;
done:
    res->seconds = train_now() - t0;
    net_free(&best);
    model_workspace_free(&ws);
    free(perm);
    free(hx_v);
    free(hx_m);
    free(hpr);
    return rc;
}

int train_teacher(debcm_net *net, const train_data *td, const model_config *cfg, const train_phase_opts *opt,
                  train_phase_result *res)
{
    const debcm_dataset *ds = td->ds;
    phase_def ph = {0, "teacher", ds->pgc_train.n, ds->pgc_train.video, ds->pgc_train.music, NULL,
                    ds->pgc_video.data, td->pgc_music, NULL, SHUFFLE_STREAM_TEACHER};
    if (net->student)
        return debcm_fail("train_teacher: the network is a student");
    return run_phase(&ph, net, td, cfg, opt, res);
}

int train_student(debcm_net *net, const debcm_net *teacher, const train_data *td, const model_config *cfg,
                  const train_phase_opts *opt, train_phase_result *res)
{
    const debcm_dataset *ds = td->ds;
    phase_def ph = {1, "student", ds->train.n, ds->train.video, ds->train.music, ds->train.prior,
                    ds->ugc_video.data, td->ugc_music, teacher, SHUFFLE_STREAM_STUDENT};
    if (!net->student || !teacher || teacher->student)
        return debcm_fail("train_student: needs a student network and a teacher network");
    return run_phase(&ph, net, td, cfg, opt, res);
}
