/* engine/train.c — the epoch loop of the DebCM training job (see train.h): one loop for both phases, which differ
 * only in their rows (data_pgc pairs or data_matching rows with their user priors), the frozen teacher and the
 * validation protocol. The data stay resident in backend memory for the whole phase (the memory-mapped arrays
 * themselves on the CPU, one upload at the start on a GPU). Per epoch: shuffle (Philox Fisher–Yates at (seed,
 * phase stream, epoch)), one upload of the epoch's order, then for each batch ops->gather_rows of its features,
 * priors and cached teacher posteriors, one model_train_step_async + model_adam_step, all queued with no wait:
 * the steps' loss terms are read once at the epoch's end (a non-finite loss is reported there, with its step);
 * then validate and keep the best epoch in a second network (one ops->copy of each arena). Draws of step s use Philox counter s (a global step count), so a
 * run is a pure function of its seed whatever the thread count (the ops split outputs, never reductions).
 * Each step's loss terms are read before its Adam step (in place on the CPU; a 32-byte download elsewhere) so that a
 * non-finite loss never reaches the parameters; the BatchNorm running statistics, which the forward updates, are
 * copied aside before every step (a few thousand floats) so that a refused step leaves no trace. The state goes to
 * the caller's save_state after every epoch, every checkpoint_every steps, on a stop request and before a stop on a
 * non-finite loss; a phase given opt->start continues exactly where that state was taken. */
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

/* ---- one phase, epoch by epoch ------------------------------------------------------------------------------ */

struct train_phase {
    int student;
    const char *name;        /* "teacher", "student" */
    int64_t n;               /* training rows */
    const int64_t *video, *music;
    const float *prior;      /* [n, G] (student) */
    const float *v_feat, *m_feat; /* host: the (memory-mapped) features */
    int64_t n_video, n_music;     /* their rows */
    const debcm_net *teacher;
    uint64_t shuffle_stream;
    debcm_net *net;
    const train_data *td;
    const model_config *cfg;
    train_phase_opts opt;
    int64_t Bmax, steps;     /* steps: the global step count, the Philox counter of the draws */
    model_workspace ws;
    int64_t *perm;
    /* Resident data, in backend memory for the whole phase: the features and priors (the host arrays themselves
     * when the backend's memory is the host's, else one upload at the start); per epoch, the rows' video, music
     * and row indices in the epoch's order (one upload per epoch); each batch is then gathered by ops->gather_rows
     * with no host copy. own: 1 where this phase allocated the backend copy. */
    const float *b_vfeat, *b_mfeat, *b_prior;
    int own_feat;
    int64_t *h_idx, *b_idx; /* [3][n]: video, music, row; b_idx == h_idx on a host-memory backend */
    /* the frozen teacher's posteriors (student, unless opt.teacher_recompute), backend memory: per training row
     * (video side) and per music */
    float *tc_mu_v, *tc_lv_v, *tc_mu_m, *tc_lv_m;
    /* every step's MODEL_LOSS_TERMS loss terms of the epoch, backend memory [batches][terms], read once at the
     * epoch's end (no host synchronisation between the steps of an epoch); h_terms its host copy */
    float *b_terms, *h_terms;
    int64_t max_batches;
    float *stat_snap;   /* backend memory [n_stats]: the BatchNorm statistics before the step in flight */
    int64_t nonfinite;  /* batches skipped for a non-finite loss, over the phase */
    int64_t skipped;    /* one-row batches skipped, over the phase */
    double t0, seconds0; /* when this process began the phase; the time of earlier processes (resumed) */
    double ep_t0;        /* when the epoch in progress began, its earlier process's part counted in */
    const int64_t *ep_samples; /* the rows it has trained so far */
    double start_ep_seconds; /* a resumed epoch's earlier part (from opt->start), used by its first call */
    int64_t start_ep_samples;
    const debcm_net *best; /* run_phase's copy of the best epoch (for save_state); NULL in bench_epoch */
    int64_t best_epoch;
    double best_recall, best_ndcg;
};

static const char *const term_names[MODEL_LOSS_TERMS] = {"recon_m", "recon_v", "kl_m", "kl_v",
                                                          "match_music", "match_video", "distill_m", "distill_v"};

const char *train_term_name(int i) { return i >= 0 && i < MODEL_LOSS_TERMS ? term_names[i] : "?"; }

static void backend_free(const debcm_ops *o, const void *p)
{
    if (p)
        o->free((void *)p);
}

/* a backend copy of n floats (or ints) of host memory */
static void *backend_copy(const debcm_ops *o, const void *host, size_t bytes, const char *what, const char *phase)
{
    void *p = o->alloc(bytes ? bytes : 1);
    if (!p) {
        debcm_error_prefix("%s: %s (%.0f MB)", phase, what, (double)bytes / 1e6);
        return NULL;
    }
    if (bytes && o->upload(p, host, bytes)) {
        o->free(p);
        debcm_error_prefix("%s: uploading %s", phase, what);
        return NULL;
    }
    return p;
}

void train_phase_end(train_phase *ph)
{
    if (!ph)
        return;
    const debcm_ops *o = ph->net->ops;
    model_workspace_free(&ph->ws);
    free(ph->perm);
    if (ph->own_feat) {
        backend_free(o, ph->b_vfeat);
        backend_free(o, ph->b_mfeat);
        backend_free(o, ph->b_prior);
    }
    if (ph->b_idx != ph->h_idx)
        backend_free(o, ph->b_idx);
    free(ph->h_idx);
    backend_free(o, ph->tc_mu_v);
    backend_free(o, ph->tc_lv_v);
    backend_free(o, ph->tc_mu_m);
    backend_free(o, ph->tc_lv_m);
    backend_free(o, ph->b_terms);
    backend_free(o, ph->stat_snap);
    free(ph->h_terms);
    free(ph);
}

/* the teacher's eval-mode posteriors of every training row's video and of every music, once, into backend
 * memory (computed into host memory: the backend's own on the CPU, a staging copy uploaded once otherwise) */
static int build_teacher_cache(train_phase *ph)
{
    const debcm_ops *o = ph->net->ops;
    const int64_t n = ph->n, L = ph->net->dims.L, Dv = ph->net->dims.D_v, Nm = ph->n_music;
    const size_t bv = (size_t)(n * L) * sizeof(float), bm = (size_t)(Nm * L) * sizeof(float);
    float *h[4] = {malloc(bv), malloc(bv), malloc(bm), malloc(bm)}; /* mu_v, lv_v, mu_m, lv_m */
    float *xv = malloc((size_t)(ph->Bmax * Dv) * sizeof(float));
    int rc = -1;
    if (!h[0] || !h[1] || !h[2] || !h[3] || !xv) {
        debcm_fail("%s: out of memory for the teacher's posterior cache (%.0f MB; --teacher-cache off recomputes "
                   "them every step instead)", ph->name, (double)(2 * (bv + bm)) / 1e6);
        goto done;
    }
    if (model_posteriors(ph->teacher, &ph->ws, MODEL_MUSIC, h[2], h[3], ph->m_feat, Nm)) {
        debcm_error_prefix("%s: the teacher's music posteriors", ph->name);
        goto done;
    }
    for (int64_t r0 = 0; r0 < n; r0 += ph->Bmax) {
        int64_t c = n - r0 < ph->Bmax ? n - r0 : ph->Bmax;
        for (int64_t r = 0; r < c; r++)
            memcpy(xv + r * Dv, ph->v_feat + ph->video[r0 + r] * Dv, (size_t)Dv * sizeof(float));
        if (model_posteriors(ph->teacher, &ph->ws, MODEL_VIDEO, h[0] + r0 * L, h[1] + r0 * L, xv, c)) {
            debcm_error_prefix("%s: the teacher's video posteriors", ph->name);
            goto done;
        }
    }
    float **dst[4] = {&ph->tc_mu_v, &ph->tc_lv_v, &ph->tc_mu_m, &ph->tc_lv_m};
    for (int t = 0; t < 4; t++) {
        if (o->host_memory) { /* the host arrays are the backend's: freed with o->free (free) at the end */
            *dst[t] = h[t];
            h[t] = NULL;
        } else if (!(*dst[t] = backend_copy(o, h[t], t < 2 ? bv : bm, "the teacher's posterior cache", ph->name))) {
            goto done;
        }
    }
    rc = 0;
done:
    for (int t = 0; t < 4; t++)
        free(h[t]);
    free(xv);
    return rc;
}

int train_phase_begin(train_phase **out, int student, debcm_net *net, const debcm_net *teacher,
                      const train_data *td, const model_config *cfg, const train_phase_opts *opt,
                      double *cache_seconds)
{
    *out = NULL;
    if (cache_seconds)
        *cache_seconds = 0.0;
    if (student != net->student)
        return debcm_fail("train_phase_begin: the network is %s a student", net->student ? "" : "not");
    if (student && (!teacher || teacher->student))
        return debcm_fail("train_phase_begin: the student needs a teacher network");
    const debcm_dataset *ds = td->ds;
    const debcm_ops *o = net->ops;
    train_phase *ph = calloc(1, sizeof *ph);
    if (!ph)
        return debcm_fail("train_phase_begin: out of memory");
    ph->student = student;
    ph->net = net;
    ph->td = td;
    ph->cfg = cfg;
    ph->opt = *opt;
    ph->t0 = train_now();
    if (student) {
        ph->name = "student";
        ph->n = ds->train.n;
        ph->video = ds->train.video;
        ph->music = ds->train.music;
        ph->prior = ds->train.prior;
        ph->v_feat = ds->ugc_video.data;
        ph->n_video = ds->ugc_video.rows;
        ph->m_feat = td->ugc_music;
        ph->n_music = ds->ugc_vggish.rows;
        ph->teacher = teacher;
        ph->shuffle_stream = SHUFFLE_STREAM_STUDENT;
    } else {
        ph->name = "teacher";
        ph->n = ds->pgc_train.n;
        ph->video = ds->pgc_train.video;
        ph->music = ds->pgc_train.music;
        ph->v_feat = ds->pgc_video.data;
        ph->n_video = ds->pgc_video.rows;
        ph->m_feat = td->pgc_music;
        ph->n_music = ds->pgc_vggish.rows;
        ph->shuffle_stream = SHUFFLE_STREAM_TEACHER;
    }
    const int64_t n = ph->n, Dv = net->dims.D_v, Dm = net->dims.D_m, G = net->dims.G;
    if (n < 2) {
        debcm_fail("%s: %lld training row(s): at least 2 are needed", ph->name, (long long)n);
        goto fail;
    }
    if (cfg->batch < 2) {
        debcm_fail("%s: batch size %lld: at least 2 rows are needed", ph->name, (long long)cfg->batch);
        goto fail;
    }
    ph->Bmax = cfg->batch < n ? cfg->batch : n;
    ph->max_batches = (n + ph->Bmax - 1) / ph->Bmax;
    ph->h_terms = malloc((size_t)(ph->max_batches * MODEL_LOSS_TERMS) * sizeof *ph->h_terms);
    ph->b_terms = o->alloc((size_t)(ph->max_batches * MODEL_LOSS_TERMS) * sizeof *ph->b_terms);
    ph->stat_snap = o->alloc((size_t)(net->n_stats ? net->n_stats : 1) * sizeof(float));
    if (!ph->h_terms || !ph->b_terms || !ph->stat_snap) {
        debcm_error_prefix("%s: the loss log of an epoch (%lld batches)", ph->name, (long long)ph->max_batches);
        goto fail;
    }
    ph->perm = malloc((size_t)n * sizeof *ph->perm);
    ph->h_idx = malloc((size_t)(3 * n) * sizeof *ph->h_idx);
    if (!ph->perm || !ph->h_idx) {
        debcm_fail("%s: out of memory for the epoch's order (%lld rows)", ph->name, (long long)n);
        goto fail;
    }
    if (o->host_memory) { /* the host arrays are backend memory already */
        ph->b_vfeat = ph->v_feat;
        ph->b_mfeat = ph->m_feat;
        ph->b_prior = ph->prior;
        ph->b_idx = ph->h_idx;
    } else {
        ph->own_feat = 1;
        if (!(ph->b_vfeat = backend_copy(o, ph->v_feat, (size_t)(ph->n_video * Dv) * sizeof(float),
                                         "the video features", ph->name)) ||
            !(ph->b_mfeat = backend_copy(o, ph->m_feat, (size_t)(ph->n_music * Dm) * sizeof(float),
                                         "the music features", ph->name)) ||
            (student && !(ph->b_prior = backend_copy(o, ph->prior, (size_t)(n * G) * sizeof(float),
                                                     "the user priors", ph->name))) ||
            !(ph->b_idx = o->alloc((size_t)(3 * n) * sizeof(int64_t))))
            goto fail;
    }
    if (model_workspace_create(&ph->ws, o, &net->dims, ph->Bmax))
        goto fail;
    if (student && !opt->teacher_recompute) {
        double t0 = train_now();
        if (build_teacher_cache(ph))
            goto fail;
        if (cache_seconds)
            *cache_seconds = train_now() - t0;
    }
    *out = ph;
    return 0;
fail:
    train_phase_end(ph);
    return -1;
}

/* the epoch's order: video, music and row index of every position, in backend memory */
static int order_epoch(train_phase *ph, int64_t epoch)
{
    const int64_t n = ph->n;
    train_shuffle(ph->perm, n, ph->opt.seed, ph->shuffle_stream, (uint64_t)epoch);
    for (int64_t t = 0; t < n; t++) {
        int64_t row = ph->perm[t];
        ph->h_idx[t] = ph->video[row];
        ph->h_idx[n + t] = ph->music[row];
        ph->h_idx[2 * n + t] = row;
    }
    if (ph->b_idx != ph->h_idx &&
        ph->net->ops->upload(ph->b_idx, ph->h_idx, (size_t)(3 * n) * sizeof *ph->h_idx))
        return debcm_error_prefix("%s epoch %lld: uploading the epoch's order", ph->name, (long long)epoch);
    return 0;
}

/* gather the batch at positions [b0, b0 + B) of the epoch's order from the resident data */
static int gather_batch(train_phase *ph, int64_t b0, int64_t B, model_batch *batch, model_teacher_post *tp)
{
    const debcm_ops *o = ph->net->ops;
    const int64_t n = ph->n, Dv = ph->net->dims.D_v, Dm = ph->net->dims.D_m, G = ph->net->dims.G;
    const int64_t L = ph->net->dims.L;
    const int64_t *vid = ph->b_idx + b0, *mid = ph->b_idx + n + b0, *rid = ph->b_idx + 2 * n + b0;
    model_workspace *ws = &ph->ws;
    if (o->gather_rows(ws->x_v, ph->b_vfeat, vid, B, Dv) || o->gather_rows(ws->x_m, ph->b_mfeat, mid, B, Dm) ||
        (ph->student && o->gather_rows(ws->prior, ph->b_prior, rid, B, G)))
        return -1;
    *batch = (model_batch){ws->x_v, ws->x_m, ph->student ? ws->prior : NULL, B, NULL};
    if (ph->tc_mu_v) { /* the step reads them where the teacher's encoders would have written them */
        if (o->gather_rows(ws->tm.mu, ph->tc_mu_m, mid, B, L) || o->gather_rows(ws->tm.lv, ph->tc_lv_m, mid, B, L) ||
            o->gather_rows(ws->tv.mu, ph->tc_mu_v, rid, B, L) || o->gather_rows(ws->tv.lv, ph->tc_lv_v, rid, B, L))
            return -1;
        *tp = (model_teacher_post){ws->tm.mu, ws->tm.lv, ws->tv.mu, ws->tv.lv};
        batch->teacher_post = tp;
    }
    return 0;
}

/* the loss terms of every batch of the epoch, in host memory (the backend's own on the CPU) */
static float *terms_host(const train_phase *ph) { return ph->net->ops->host_memory ? ph->b_terms : ph->h_terms; }

/* hand the state at (epoch, batch) to the caller */
static int save_state(const train_phase *ph, int64_t epoch, int64_t batch)
{
    if (!ph->opt.save_state)
        return 0;
    train_state s;
    memset(&s, 0, sizeof s);
    s.pos.student = ph->student;
    s.pos.next_epoch = epoch;
    s.pos.next_batch = batch;
    s.pos.step = ph->steps;
    s.pos.best_epoch = ph->best_epoch;
    s.pos.best_recall = ph->best_recall;
    s.pos.best_ndcg = ph->best_ndcg;
    s.pos.skipped_batches = ph->skipped;
    s.pos.nonfinite_skipped = ph->nonfinite;
    s.pos.seconds = ph->seconds0 + (train_now() - ph->t0);
    if (batch > 0 && ph->ep_samples) {
        s.pos.epoch_seconds = train_now() - ph->ep_t0;
        s.pos.epoch_samples = *ph->ep_samples;
    }
    s.pos.epoch_terms = terms_host(ph);
    s.net = ph->net;
    s.best = ph->best ? ph->best : ph->net;
    return ph->opt.save_state(ph->opt.ctx, &s);
}

/* the first term of a step that is not finite, or −1 */
static int nonfinite_term(const float *t)
{
    for (int i = 0; i < MODEL_LOSS_TERMS; i++)
        if (!isfinite(t[i]))
            return i;
    return -1;
}

int64_t train_terms_mean(const train_step_record *r, int64_t from, int64_t to, double out[8])
{
    double sum[8] = {0};
    int64_t trained = 0;
    for (int64_t b = from < 0 ? 0 : from; b < to && b < r->batch; b++) {
        int64_t b0 = b * r->batch_rows, B = r->rows - b0 < r->batch_rows ? r->rows - b0 : r->batch_rows;
        const float *t = r->epoch_terms + b * MODEL_LOSS_TERMS;
        if (B == 1 || nonfinite_term(t) >= 0) /* a one-row batch, or one skipped for its loss */
            continue;
        model_losses l;
        model_losses_from_terms(&l, t, r->cfg, r->student, B);
        double terms[8] = {l.loss, l.music, l.video, l.kl_m, l.kl_v, l.recon, l.distill_m, l.distill_v};
        for (int i = 0; i < 8; i++)
            sum[i] += terms[i];
        trained++;
    }
    double k = trained ? 1.0 / (double)trained : 0.0;
    for (int i = 0; i < 8; i++)
        out[i] = sum[i] * k;
    return trained;
}

int train_phase_epoch(train_phase *ph, int64_t epoch, int64_t first_batch, train_epoch_stats *st)
{
    const debcm_ops *o = ph->net->ops;
    const int64_t n = ph->n, Bmax = ph->Bmax;
    const size_t stat_bytes = (size_t)ph->net->n_stats * sizeof(float);
    double te = train_now();
    memset(st, 0, sizeof *st);
    if (first_batch > 0) { /* a resumed epoch: its earlier part's time and rows count in its timings */
        te -= ph->start_ep_seconds;
        st->samples = ph->start_ep_samples;
        ph->start_ep_seconds = 0;
        ph->start_ep_samples = 0;
    }
    ph->ep_t0 = te;
    ph->ep_samples = &st->samples;
    if (order_epoch(ph, epoch))
        return -1;
    float *th = terms_host(ph);
    for (int64_t b = first_batch; b * Bmax < n; b++) {
        int64_t b0 = b * Bmax, B = n - b0 < Bmax ? n - b0 : Bmax;
        float *terms = ph->b_terms + b * MODEL_LOSS_TERMS;
        if (B == 1) {
            st->skipped++;
            ph->skipped++;
            continue;
        }
        model_batch batch;
        model_teacher_post tp;
        if (o->copy(ph->stat_snap, ph->net->stat_arena, stat_bytes) || gather_batch(ph, b0, B, &batch, &tp) ||
            model_train_step_async(ph->net, &ph->ws, ph->cfg, ph->teacher, &batch, NULL, ph->opt.seed,
                                   (uint64_t)ph->steps, terms) ||
            (!o->host_memory && o->download(th + b * MODEL_LOSS_TERMS, terms, MODEL_LOSS_TERMS * sizeof(float))))
            return debcm_error_prefix("%s epoch %lld, batch %lld", ph->name, (long long)epoch, (long long)b);
        int bad = nonfinite_term(th + b * MODEL_LOSS_TERMS);
        if (bad >= 0) { /* the step never happened: statistics back, no Adam step */
            float v = th[b * MODEL_LOSS_TERMS + bad];
            if (o->copy(ph->net->stat_arena, ph->stat_snap, stat_bytes))
                return debcm_error_prefix("%s epoch %lld, batch %lld", ph->name, (long long)epoch, (long long)b);
            if (!ph->opt.nan_skip) {
                int saved = ph->opt.save_state ? save_state(ph, epoch, b) : -1;
                return debcm_fail("%s epoch %lld, batch %lld (step %lld): loss term '%s' is %s (diverged; try a "
                                  "smaller learning rate, or --nan-policy skip-batch)%s",
                                  ph->name, (long long)epoch, (long long)b, (long long)ph->steps, term_names[bad],
                                  isnan(v) ? "nan" : v > 0 ? "inf" : "-inf",
                                  saved == 0            ? "; the state before this step is saved (--resume continues from it)"
                                  : ph->opt.save_state ? "; saving the state before this step failed too"
                                                       : "");
            }
            th[b * MODEL_LOSS_TERMS] = NAN; /* marks the batch as skipped in the epoch's terms */
            ph->nonfinite++;
            st->nonfinite++;
            if (ph->opt.log && ph->opt.before_log)
                ph->opt.before_log(ph->opt.ctx);
            if (ph->opt.log)
                fprintf(ph->opt.log, "%s epoch %lld, batch %lld (step %lld): loss term '%s' is %s: batch skipped "
                        "(--nan-policy skip-batch)\n", ph->name, (long long)epoch, (long long)b,
                        (long long)ph->steps, term_names[bad], isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
            ph->steps++; /* its draws are spent: the later steps keep their counters */
        } else {
            if (model_adam_step(ph->net, ph->cfg))
                return debcm_error_prefix("%s epoch %lld, batch %lld", ph->name, (long long)epoch, (long long)b);
            ph->steps++;
            st->samples += B;
        }
        if (ph->opt.on_step) { /* before the checkpoint: what it logs is inside the state a resume starts from */
            const int64_t nb = (n + Bmax - 1) / Bmax;
            train_step_record rec = {ph->student, epoch, ph->cfg->epochs, b + 1, nb, ph->steps, train_now() - te,
                                     st->samples, th, n, Bmax, ph->cfg};
            if (ph->opt.on_step(ph->opt.ctx, &rec))
                return -1;
        }
        int stop = ph->opt.stop_requested ? ph->opt.stop_requested() : 0;
        if ((stop || (ph->opt.checkpoint_every > 0 && ph->steps % ph->opt.checkpoint_every == 0)) &&
            save_state(ph, epoch, b + 1))
            return -1;
        if (stop)
            return TRAIN_INTERRUPTED;
    }
    double mean[8];
    train_step_record all = {ph->student, epoch, ph->cfg->epochs, (n + Bmax - 1) / Bmax, (n + Bmax - 1) / Bmax,
                             ph->steps, 0.0, st->samples, th, n, Bmax, ph->cfg};
    const int64_t trained = train_terms_mean(&all, 0, all.batches, mean);
    st->batches = trained; /* the epoch's, those of an earlier process (resumed) included */
    st->loss = mean[0];
    st->music = mean[1];
    st->video = mean[2];
    st->kl_m = mean[3];
    st->kl_v = mean[4];
    st->recon = mean[5];
    st->distill_m = mean[6];
    st->distill_v = mean[7];
    st->seconds = train_now() - te;
    ph->ep_samples = NULL;
    return 0;
}

/* ---- the trainer: epochs, validation, the best epoch ------------------------------------------------------- */

/* validation: Recall@25 (and NDCG@25 for the student) */
static int validate(const train_phase *ph, debcm_net *net, model_workspace *ws, double *recall, double *ndcg)
{
    const train_data *td = ph->td;
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

/* the phase's state from opt->start: position, counters, the best copy, the epoch's done batches */
static int restore_start(train_phase *ph, debcm_net *best, train_phase_result *res)
{
    const train_resume_point *s = ph->opt.start;
    const int64_t nb = (ph->n + ph->Bmax - 1) / ph->Bmax;
    if (s->student != ph->student || s->next_epoch < 1 || s->next_batch < 0 || s->next_batch > nb ||
        (s->next_batch > 0 && s->next_epoch > ph->cfg->epochs) || s->step < 0 || s->best_epoch < 0 ||
        s->best_epoch >= s->next_epoch || (s->next_batch > 0 && !s->epoch_terms))
        return debcm_fail("%s: the saved position (epoch %lld, batch %lld of %lld, best epoch %lld) does not fit "
                          "this phase (%lld epochs)", ph->name, (long long)s->next_epoch, (long long)s->next_batch,
                          (long long)nb, (long long)s->best_epoch, (long long)ph->cfg->epochs);
    ph->steps = s->step;
    ph->skipped = s->skipped_batches;
    ph->nonfinite = s->nonfinite_skipped;
    ph->seconds0 = s->seconds;
    ph->start_ep_seconds = s->next_batch > 0 ? s->epoch_seconds : 0.0;
    ph->start_ep_samples = s->next_batch > 0 ? s->epoch_samples : 0;
    ph->best_epoch = res->best_epoch = s->best_epoch;
    ph->best_recall = res->val_recall = s->best_epoch ? s->best_recall : -1.0;
    ph->best_ndcg = res->val_ndcg = s->best_ndcg;
    if (s->next_batch > 0)
        memcpy(terms_host(ph), s->epoch_terms, (size_t)(s->next_batch * MODEL_LOSS_TERMS) * sizeof(float));
    if (ph->opt.start_best)
        return copy_net(best, ph->opt.start_best);
    return 0;
}

static void log_epoch(const train_phase *ph, int64_t epoch, int64_t epochs_here, double elapsed,
                      const train_epoch_stats *st, double r, double g, const train_phase_result *res, int improved)
{
    char eta[32], dist[64] = "", ndcg[32] = "", skipped[64] = "";
    const int64_t E = ph->cfg->epochs;
    fmt_duration(eta, sizeof eta, elapsed / (double)epochs_here * (double)(E - epoch));
    if (ph->student) {
        snprintf(dist, sizeof dist, " distill %.3g/%.3g", st->distill_m, st->distill_v);
        snprintf(ndcg, sizeof ndcg, " NDCG@25 %.4f", g);
    }
    if (st->nonfinite)
        snprintf(skipped, sizeof skipped, "  %lld batch(es) skipped (non-finite loss)", (long long)st->nonfinite);
    if (ph->opt.before_log)
        ph->opt.before_log(ph->opt.ctx);
    fprintf(ph->opt.log,
            "%s epoch %*lld/%lld  loss %.4f (match %.4f/%.4f kl %.4f/%.4f recon %.4f%s)  %.0f samples/s  "
            "val R@25 %.4f%s  best %.4f @%lld%s%s  ETA %s\n",
            ph->name, E >= 100 ? 3 : 2, (long long)epoch, (long long)E, st->loss, st->music, st->video, st->kl_m,
            st->kl_v, st->recon, dist, st->seconds > 0 ? (double)st->samples / st->seconds : 0.0, r, ndcg,
            res->val_recall, (long long)res->best_epoch, improved ? " *" : "", skipped, eta);
    fflush(ph->opt.log);
}

static int run_phase(int student, debcm_net *net, const debcm_net *teacher, const train_data *td,
                     const model_config *cfg, const train_phase_opts *opt, train_phase_result *res)
{
    double t0 = train_now(), t_cache = 0.0;
    memset(res, 0, sizeof *res);
    res->val_recall = -1.0;
    train_phase *ph = NULL;
    debcm_net best;
    memset(&best, 0, sizeof best);
    int rc = -1;
    if (train_phase_begin(&ph, student, net, teacher, td, cfg, opt, &t_cache) ||
        net_create(&best, net->ops, &net->dims, net->student) || copy_net(&best, net))
        goto done;
    ph->best = &best;
    ph->best_recall = -1.0;
    if (opt->start && restore_start(ph, &best, res))
        goto done;
    if (student && !opt->teacher_recompute && opt->log)
        fprintf(opt->log, "student: the frozen teacher's posteriors of %lld rows and %lld musics computed once "
                "(%.1f s)\n", (long long)ph->n, (long long)ph->n_music, t_cache);

    if (cfg->epochs == 0) { /* the initial model is the result: validate it once */
        double r, g;
        if (validate(ph, net, &ph->ws, &r, &g) || save_best(net, opt, 0))
            goto done;
        res->val_recall = r;
        res->val_ndcg = g;
        if (opt->log)
            fprintf(opt->log, "%s 0 epochs: the initial model kept  val R@25 %.4f\n", ph->name, r);
        rc = 0;
        goto done;
    }
    if (ph->n % ph->Bmax == 1 && opt->log)
        fprintf(opt->log, "%s: note: %lld rows = %lld batches of %lld + 1: the last batch of one row is skipped "
                "every epoch (BatchNorm cannot train on one row, SPEC §6)\n", ph->name, (long long)ph->n,
                (long long)(ph->n / ph->Bmax), (long long)ph->Bmax);
    const int64_t first_epoch = opt->start ? opt->start->next_epoch : 1;
    if (opt->start && opt->log && first_epoch <= cfg->epochs)
        fprintf(opt->log, "%s: resumed at epoch %lld, batch %lld (step %lld; best so far %.4f @%lld)\n", ph->name,
                (long long)first_epoch, (long long)opt->start->next_batch, (long long)ph->steps,
                res->best_epoch ? res->val_recall : 0.0, (long long)res->best_epoch);
    for (int64_t epoch = first_epoch; epoch <= cfg->epochs; epoch++) {
        train_epoch_stats st;
        double r, g;
        int erc = train_phase_epoch(ph, epoch, epoch == first_epoch && opt->start ? opt->start->next_batch : 0, &st);
        if (erc == TRAIN_INTERRUPTED) {
            res->interrupted = opt->stop_requested();
            rc = 0;
            goto done;
        }
        if (erc || validate(ph, net, &ph->ws, &r, &g))
            goto done;
        int improved = r > res->val_recall; /* strictly greater (SPEC §3) */
        if (improved) {
            res->best_epoch = ph->best_epoch = epoch;
            res->val_recall = ph->best_recall = r;
            res->val_ndcg = ph->best_ndcg = g;
            if (copy_net(&best, net) || save_best(net, opt, epoch))
                goto done;
        }
        if (opt->log)
            log_epoch(ph, epoch, epoch - first_epoch + 1, train_now() - t0, &st, r, g, res, improved);
        if (opt->on_epoch) {
            train_epoch_record rec = {student, epoch, cfg->epochs, ph->steps, &st, r, g, res->best_epoch,
                                      res->val_recall, improved, cfg->lr};
            if (opt->on_epoch(opt->ctx, &rec))
                goto done;
        }
        if (save_state(ph, epoch + 1, 0)) /* after the metrics line: a resume from here never repeats it */
            goto done;
        int stop = opt->stop_requested ? opt->stop_requested() : 0;
        if (stop && epoch < cfg->epochs) {
            res->interrupted = stop;
            rc = 0;
            goto done;
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
    if (ph) {
        res->steps = ph->steps;
        res->skipped_batches = ph->skipped;
        res->nonfinite_skipped = ph->nonfinite;
        res->seconds = ph->seconds0 + (train_now() - t0);
    } else {
        res->seconds = train_now() - t0;
    }
    net_free(&best);
    train_phase_end(ph);
    return rc;
}

int train_teacher(debcm_net *net, const train_data *td, const model_config *cfg, const train_phase_opts *opt,
                  train_phase_result *res)
{
    return run_phase(0, net, NULL, td, cfg, opt, res);
}

int train_student(debcm_net *net, const debcm_net *teacher, const train_data *td, const model_config *cfg,
                  const train_phase_opts *opt, train_phase_result *res)
{
    return run_phase(1, net, teacher, td, cfg, opt, res);
}
