/* models/model.h — the DebCM teacher and student networks (SPEC.md §2–§5), built from the ops table.
 *
 * This sits between the ops (engine/ops.h: one backend table, CPU today, CUDA later) and the trainer: it owns the
 * memory of one network and computes one training step and the evaluation-mode embeddings and metrics. Memory is
 * one arena per lifetime (STYLE habit 5): parameters, gradients, Adam m, Adam v (all four with the same layout, so
 * zeroing gradients is one memset and Adam is one adam_update over the whole arena) and the BatchNorm running
 * statistics (not trained, not in Adam); a table (net_tensor_*) maps every tensor to its published state_dict name
 * (`v_encoder.fc_mu.weight`, `m_decoder.bn1.running_mean`, `confounder_emb.weight`, ...) so that fixtures load one
 * to one and a checkpoint is one pass over the table. Activations live in a per-batch workspace sized for the
 * largest batch. Every buffer comes from ops->alloc: tensor pointers here are BACKEND memory (host memory for the
 * CPU table); the evaluation drivers take host feature matrices and upload them chunk by chunk. */
#ifndef DEBCM_MODEL_H
#define DEBCM_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/ops.h"
#include "io/dataset.h" /* eval_split, pair_list: the evaluation rows */

/* ---- configuration (SPEC §5 defaults) -------------------------------------------------------------------------- */

typedef struct {
    double lr;           /* teacher 1e-4, student 1e-3 */
    double weight_decay; /* 1e-3 (PyTorch's L2 form) */
    double beta1, beta2, adam_eps; /* 0.9, 0.999, 1e-8 */
    int64_t batch;       /* 1024 */
    int64_t epochs;      /* 50 */
    int64_t L;           /* latent size, 128 */
    float dropout;       /* p = 0.2 */
    match_cfg match;     /* published, margin 0.05, k 40; tau 0.1 for the softmax variant (our choice: SPEC names
                            no default) */
    distill_variant distill; /* published KLG, or the true kl */
    float alpha;         /* distillation weight 5e-5 (student only) */
    float factor;        /* weight of the music matching term, 1 */
    float w_recon;       /* weight of the reconstruction, 1 */
} model_config;

/* Fill c with the published defaults of the teacher (student = 0) or the student (student = 1). */
void model_config_default(model_config *c, int student);

/* ---- parameters and statistics ----------------------------------------------------------------------------------
 * One set of pointers per arena; field comments give the shapes ([out, in] for linear weights, as PyTorch). */

typedef struct {
    float *bn_w, *bn_b; /* [D]    bn1.weight, bn1.bias (γ, β) */
    float *mu_w;        /* [L, D] fc_mu.weight (W_mu) */
    float *mu_b;        /* [L]    fc_mu.bias */
    float *lv_w;        /* [L, D] fc_logvar.weight (W_lv) */
    float *lv_b;        /* [L]    fc_logvar.bias */
} enc_params;

typedef struct {
    float *bn_w, *bn_b; /* [L]    bn1.weight, bn1.bias */
    float *w;           /* [D, L] fc2.weight */
    float *b;           /* [D]    fc2.bias */
} dec_params;

typedef struct {
    enc_params m_enc;   /* E_m: m_encoder, D = D_m */
    enc_params v_enc;   /* E_v: v_encoder, D = D_v */
    dec_params m_dec;   /* R_m: m_decoder, L → D_m (music from the video latent) */
    dec_params v_dec;   /* R_v: video_v_decoder, L → D_v */
    float *cemb;        /* [G, L]  confounder_emb.weight (student only, else NULL) */
    float *wc;          /* [L, 2L] linear.weight: W_c, its first L columns act on c */
    float *bc;          /* [L]     linear.bias */
} net_params;

typedef struct {
    float *mean, *var; /* [D] or [L]: bn1.running_mean, bn1.running_var */
} bn_stats;

typedef struct {
    bn_stats m_enc, v_enc, m_dec, v_dec;
} net_stats;

typedef struct {
    int64_t D_v, D_m, L, G; /* from the data: D_m = vggish + smile widths; G = 0 for the teacher */
} model_dims;

typedef struct {
    const debcm_ops *ops;
    int student; /* 1: the student of SPEC §4 (confounder layer), 0: the teacher of §3 */
    model_dims dims;
    int64_t n_params, n_stats; /* floats in the trainable arenas and in the statistics arena */
    float *param_arena, *grad_arena, *adam_m_arena, *adam_v_arena, *stat_arena;
    net_params p, g, m, v; /* the same layout in the four trainable arenas */
    net_stats s;
    int64_t adam_t; /* Adam steps taken (bias correction) */
} debcm_net;

/* Allocate the arenas (zero-filled) for the given dimensions. Returns 0 or −1 with a message. */
int net_create(debcm_net *net, const debcm_ops *ops, const model_dims *dims, int student);
void net_free(debcm_net *net);

/* SPEC §5 initialisation from Philox (seed, one stream per tensor): Xavier normal for W_mu, W_lv, decoder W;
 * U(−1/√fan_in, 1/√fan_in) for biases and W_c; γ = 1, β = 0, running mean 0 / var 1; Cemb ~ N(0, 1). Also
 * clears the Adam state (adam_t = 0). */
int net_init(debcm_net *net, uint64_t seed);

/* The tensor table: every tensor of the network with its state_dict name. */
typedef enum { TENSOR_PARAM = 0, TENSOR_STAT = 1 } tensor_kind;
typedef struct {
    const char *name; /* "v_encoder.fc_mu.weight" */
    tensor_kind kind;
    int ndim;         /* 1 or 2 */
    int64_t shape[2];
    int64_t count;
    float *data;      /* backend memory: in param_arena or stat_arena */
    float *grad;      /* in grad_arena (TENSOR_PARAM), else NULL */
} net_tensor;

int net_tensor_count(const debcm_net *net);
/* Tensor i (0 ≤ i < count); returns 0, or −1 out of range. */
int net_tensor_get(const debcm_net *net, int i, net_tensor *t);
/* The index of a state_dict name, or −1 (no message) when the network has no such tensor. */
int net_tensor_find(const debcm_net *net, const char *name);

/* ---- one training step -------------------------------------------------------------------------------------- */

/* The activations of one batch, for up to B_max rows (backend memory). */
typedef struct {
    float *bn, *xhat, *mean, *rstd, *h; /* [B, D] (mean, rstd [D]) */
    uint8_t *mask;                      /* [B, D] dropout keep-mask */
    float *pre_mu, *mu, *n_mu;          /* [B, L], [B, L], [B] */
    float *pre_lv, *lv, *n_lv;
    float *dmu, *dlv, *d_pre_mu, *d_pre_lv, *dh, *dbn; /* gradients (zeroed each step) */
} enc_ws;

typedef struct {
    float *bn, *xhat, *mean, *rstd, *h; /* [B, L] */
    uint8_t *mask;                      /* [B, L] */
    float *pre, *out;                   /* [B, D] */
    float *dout, *dpre, *dh, *dbn;      /* gradients */
} dec_ws;

typedef struct {
    const debcm_ops *ops;
    int64_t B_max;
    model_dims dims;
    void *block;   /* the one allocation */
    size_t bytes;
    char *d_begin; /* the gradient part of block, zeroed once per step */
    size_t d_bytes;
    enc_ws em, ev, tm, tv; /* student encoders; tm, tv: the frozen teacher's (eval mode) */
    dec_ws rm, rv;
    float *x_v, *x_m, *prior;  /* [B, D_v], [B, D_m], [B, G]: staging for uploads */
    float *eps_m, *eps_v;      /* [B, L] reparameterisation noise */
    float *z_m, *z_v, *zc;     /* [B, L] */
    float *pi, *c;             /* [G], [L] */
    float *S;                  /* [B, B] */
    int32_t *sel_m, *sel_v;    /* [B, B−1] top-k selections */
    float *scalars;            /* [8] loss terms */
    float *dz_m, *dz_v, *dzc, *dS;
} model_workspace;

int model_workspace_create(model_workspace *ws, const debcm_ops *ops, const model_dims *dims, int64_t B_max);
void model_workspace_free(model_workspace *ws);

/* The frozen teacher's eval-mode posteriors of a batch's rows (backend memory, [B, L] each). They depend on the
 * row alone (no dropout, no noise, frozen weights), so a trainer can compute them once per run
 * (model_posteriors) and gather them per batch instead of running the teacher's encoders every step. */
typedef struct {
    const float *mu_m, *lv_m, *mu_v, *lv_v;
} model_teacher_post;

/* A batch: features in backend memory. x_m = [vggish ‖ smile]. prior: the rows' user_prior (student only).
 * teacher_post: the teacher's posteriors of these rows (student only; NULL: the step computes them). */
typedef struct {
    const float *x_v;   /* [B, D_v] */
    const float *x_m;   /* [B, D_m] */
    const float *prior; /* [B, G] */
    int64_t B;
    const model_teacher_post *teacher_post;
} model_batch;

/* Recorded random draws (backend memory) for replaying a fixture: all six or none. */
typedef struct {
    const float *eps_m, *eps_v;                    /* [B, L] music first, then video */
    const uint8_t *mask_m_encoder, *mask_v_encoder; /* [B, D_m], [B, D_v] */
    const uint8_t *mask_m_decoder, *mask_video_v_decoder; /* [B, L] each */
} model_draws;

/* Every term of the loss, for logging (host values). */
typedef struct {
    double loss;
    double recon, recon_m, recon_v; /* recon = recon_m + recon_v (SPEC §3) */
    double kl_m, kl_v;
    double music, video;            /* the matching terms as SPEC §3 defines them (before their sign) */
    double distill_m, distill_v;    /* before α (student only) */
    int64_t B, k;                   /* rows, and k after the cap at B − 1 */
} model_losses;

/* Forward and backward of one training step (SPEC §3 teacher, §4 student): zeroes the gradient arena, then
 * accumulates every gradient of the loss. Training mode (BatchNorm running statistics are updated). Draws:
 * replay ≠ NULL uses the recorded ones; NULL draws them from Philox at (seed, one stream per layer, counter
 * step·2³²). teacher: the frozen teacher (student only, eval mode), else NULL. A batch of 1 row is refused (−1,
 * with a message: the caller skips it, SPEC §6). Adam is separate (model_adam_step). */
int model_train_step(debcm_net *net, model_workspace *ws, const model_config *cfg, const debcm_net *teacher,
                     const model_batch *batch, const model_draws *replay, uint64_t seed, uint64_t step,
                     model_losses *out);

/* The same step without waiting for it: the MODEL_LOSS_TERMS loss terms (recon_m, recon_v, kl_m, kl_v, music,
 * video, distill_m, distill_v; the order of model_losses) go to `terms` in BACKEND memory and nothing is downloaded,
 * so a trainer can queue a whole epoch of steps with no host synchronisation and read the terms once at its end.
 * model_losses_from_terms turns downloaded terms into model_losses (host arithmetic only). */
#define MODEL_LOSS_TERMS 8
int model_train_step_async(debcm_net *net, model_workspace *ws, const model_config *cfg, const debcm_net *teacher,
                           const model_batch *batch, const model_draws *replay, uint64_t seed, uint64_t step,
                           float *terms);
void model_losses_from_terms(model_losses *out, const float terms[MODEL_LOSS_TERMS], const model_config *cfg,
                             int student, int64_t B);

/* One Adam step (SPEC §5) over the whole trainable arena with the gradients of the last step. */
int model_adam_step(debcm_net *net, const model_config *cfg);

/* ---- evaluation mode (SPEC §3 validation, §4 evaluation) ------------------------------------------------------ */

enum { MODEL_MUSIC = 0, MODEL_VIDEO = 1 };

/* mu of the encoder of `modality` (eval mode: running statistics, no dropout, no noise) for the N rows of the
 * HOST matrix x [N, D]; out [N, L] backend memory. */
int model_embed(const debcm_net *net, model_workspace *ws, int modality, float *out, const float *x, int64_t N);

/* The eval-mode posteriors (mu and logvar) of `modality`'s encoder for the N rows of the HOST matrix x [N, D],
 * into the HOST matrices mu and lv [N, L]. Used for the frozen teacher's posterior cache. */
int model_posteriors(const debcm_net *net, model_workspace *ws, int modality, float *mu, float *lv, const float *x,
                     int64_t N);

/* The student's music embedding e_m = W_c [c̄ ; mu_m] + b_c with c̄ = Σ_g prior_mean_g · Cemb_g (SPEC §4);
 * x host [N, D_m], prior_mean host [G], out backend [N, L]. */
int model_embed_music_student(const debcm_net *net, model_workspace *ws, float *out, const float *x, int64_t N,
                              const float *prior_mean);

#define MODEL_EVAL_MAX_K 8
typedef struct {
    int nK;
    int32_t K[MODEL_EVAL_MAX_K];
    double recall[MODEL_EVAL_MAX_K]; /* weighted sums (100 negatives) or fractions (full ranking) */
    double ndcg[MODEL_EVAL_MAX_K];   /* 100 negatives only */
    int64_t rows, tie_rows, rows_positive_in_negatives;
} model_eval_result;

/* The 100-negative protocol of SPEC §4 with the student: v_feat host [Nv, D_v], m_feat host [Nm, D_m] (= [vggish
 * ‖ smile]), prior_mean host [G]; rows from io/dataset.h (weights included). res->nK and res->K[] are inputs. */
int model_eval_negatives(const debcm_net *net, model_workspace *ws, const float *v_feat, int64_t Nv,
                         const float *m_feat, int64_t Nm, const float *prior_mean, const eval_split *rows,
                         model_eval_result *res);

/* The teacher's full ranking of SPEC §3: Recall@K over all Nm musics for each [video, music] pair. */
int model_eval_full_rank(const debcm_net *net, model_workspace *ws, const float *v_feat, int64_t Nv,
                         const float *m_feat, int64_t Nm, const pair_list *pairs, model_eval_result *res);

#endif
