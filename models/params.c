/* models/params.c — the memory of one DebCM network: the tensor table, the arenas, SPEC §5 initialisation.
 *
 * One table below lists every tensor of the teacher (SPEC §3) and the student (SPEC §4) with its published
 * state_dict name, its shape in the SPEC's symbols, whether it is trained (parameter arena, with gradient and
 * Adam m/v at the same offset) or a BatchNorm running statistic (statistics arena), the field of the pointer
 * struct it fills and how it is initialised. net_create carves the arenas from that table, net_init fills them
 * from Philox, and the fixture tests and checkpoints walk it by name. The unused `fc1` layers of the published
 * code are left out (SPEC §3) and so is BatchNorm's num_batches_tracked (momentum is fixed, SPEC §2). */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/rng.h"
#include "models/model.h"

void model_config_default(model_config *c, int student)
{
    memset(c, 0, sizeof *c);
    c->lr = student ? 1e-3 : 1e-4; /* SPEC §5 */
    c->weight_decay = 1e-3;
    c->beta1 = 0.9;
    c->beta2 = 0.999;
    c->adam_eps = 1e-8;
    c->batch = 1024;
    c->epochs = 50;
    c->L = 128;
    c->dropout = 0.2f;
    c->match.variant = MATCH_PUBLISHED;
    c->match.margin = 0.05f;
    c->match.tau = 0.1f;
    c->match.k = 40;
    c->distill = DISTILL_PUBLISHED;
    c->alpha = 5e-5f;
    c->factor = 1.0f;
    c->w_recon = 1.0f;
}

/* ---- the tensor table ---------------------------------------------------------------------------------------- */

typedef enum { DIM_NONE = 0, DIM_DM, DIM_DV, DIM_L, DIM_2L, DIM_G } dim_sym;
typedef enum { INIT_ZERO = 0, INIT_ONE, INIT_XAVIER, INIT_FANIN, INIT_NORMAL } init_kind;

typedef struct {
    const char *name;
    tensor_kind kind;
    dim_sym rows, cols; /* cols DIM_NONE: a vector */
    size_t field;       /* offsetof in net_params (TENSOR_PARAM) or net_stats (TENSOR_STAT) */
    init_kind init;
    dim_sym fan_in;     /* INIT_FANIN: U(−1/√fan_in, 1/√fan_in) */
    int student_only;
} tensor_def;

#define P_(f) offsetof(net_params, f)
#define S_(f) offsetof(net_stats, f)
#define ENC(pre, D, part)                                                                                      \
    {pre ".fc_mu.weight", TENSOR_PARAM, DIM_L, D, P_(part.mu_w), INIT_XAVIER, DIM_NONE, 0},                    \
    {pre ".fc_mu.bias", TENSOR_PARAM, DIM_L, DIM_NONE, P_(part.mu_b), INIT_FANIN, D, 0},                       \
    {pre ".fc_logvar.weight", TENSOR_PARAM, DIM_L, D, P_(part.lv_w), INIT_XAVIER, DIM_NONE, 0},                \
    {pre ".fc_logvar.bias", TENSOR_PARAM, DIM_L, DIM_NONE, P_(part.lv_b), INIT_FANIN, D, 0},                   \
    {pre ".bn1.weight", TENSOR_PARAM, D, DIM_NONE, P_(part.bn_w), INIT_ONE, DIM_NONE, 0},                      \
    {pre ".bn1.bias", TENSOR_PARAM, D, DIM_NONE, P_(part.bn_b), INIT_ZERO, DIM_NONE, 0},                       \
    {pre ".bn1.running_mean", TENSOR_STAT, D, DIM_NONE, S_(part.mean), INIT_ZERO, DIM_NONE, 0},                \
    {pre ".bn1.running_var", TENSOR_STAT, D, DIM_NONE, S_(part.var), INIT_ONE, DIM_NONE, 0}
#define DEC(pre, D, part)                                                                                      \
    {pre ".bn1.weight", TENSOR_PARAM, DIM_L, DIM_NONE, P_(part.bn_w), INIT_ONE, DIM_NONE, 0},                  \
    {pre ".bn1.bias", TENSOR_PARAM, DIM_L, DIM_NONE, P_(part.bn_b), INIT_ZERO, DIM_NONE, 0},                   \
    {pre ".bn1.running_mean", TENSOR_STAT, DIM_L, DIM_NONE, S_(part.mean), INIT_ZERO, DIM_NONE, 0},            \
    {pre ".bn1.running_var", TENSOR_STAT, DIM_L, DIM_NONE, S_(part.var), INIT_ONE, DIM_NONE, 0},               \
    {pre ".fc2.weight", TENSOR_PARAM, D, DIM_L, P_(part.w), INIT_XAVIER, DIM_NONE, 0},                         \
    {pre ".fc2.bias", TENSOR_PARAM, D, DIM_NONE, P_(part.b), INIT_FANIN, DIM_L, 0}

/* The published state_dict order (m_encoder, m_decoder, v_encoder, video_v_decoder, linear, confounder_emb). */
static const tensor_def tensor_defs[] = {
    ENC("m_encoder", DIM_DM, m_enc),
    DEC("m_decoder", DIM_DM, m_dec),
    ENC("v_encoder", DIM_DV, v_enc),
    DEC("video_v_decoder", DIM_DV, v_dec),
    {"linear.weight", TENSOR_PARAM, DIM_L, DIM_2L, P_(wc), INIT_FANIN, DIM_2L, 1},
    {"linear.bias", TENSOR_PARAM, DIM_L, DIM_NONE, P_(bc), INIT_FANIN, DIM_2L, 1},
    {"confounder_emb.weight", TENSOR_PARAM, DIM_G, DIM_L, P_(cemb), INIT_NORMAL, DIM_NONE, 1},
};
#define N_DEFS ((int)(sizeof tensor_defs / sizeof tensor_defs[0]))

static int64_t dim_value(const model_dims *d, dim_sym s)
{
    switch (s) {
    case DIM_DM: return d->D_m;
    case DIM_DV: return d->D_v;
    case DIM_L: return d->L;
    case DIM_2L: return 2 * d->L;
    case DIM_G: return d->G;
    default: return 1;
    }
}

static int64_t def_count(const model_dims *d, const tensor_def *t) { return dim_value(d, t->rows) * dim_value(d, t->cols); }

/* the pointer field of def t inside the struct at base (net_params or net_stats) */
static float **def_field(void *base, const tensor_def *t) { return (float **)(void *)((char *)base + t->field); }

/* Point the fields of the four trainable structs and the statistics struct into their arenas; counts when the
 * arenas are NULL. */
static void net_layout(debcm_net *net)
{
    int64_t off_p = 0, off_s = 0;
    for (int i = 0; i < N_DEFS; i++) {
        const tensor_def *t = &tensor_defs[i];
        if (t->student_only && !net->student)
            continue;
        int64_t n = def_count(&net->dims, t);
        if (t->kind == TENSOR_PARAM) {
            if (net->param_arena) {
                *def_field(&net->p, t) = net->param_arena + off_p;
                *def_field(&net->g, t) = net->grad_arena + off_p;
                *def_field(&net->m, t) = net->adam_m_arena + off_p;
                *def_field(&net->v, t) = net->adam_v_arena + off_p;
            }
            off_p += n;
        } else {
            if (net->stat_arena)
                *def_field(&net->s, t) = net->stat_arena + off_s;
            off_s += n;
        }
    }
    net->n_params = off_p;
    net->n_stats = off_s;
}

int net_create(debcm_net *net, const debcm_ops *ops, const model_dims *dims, int student)
{
    memset(net, 0, sizeof *net);
    if (dims->D_v < 1 || dims->D_m < 1 || dims->L < 1 || (student && dims->G < 1))
        return debcm_fail("net_create: bad dimensions D_v %lld, D_m %lld, L %lld, G %lld", (long long)dims->D_v,
                          (long long)dims->D_m, (long long)dims->L, (long long)dims->G);
    net->ops = ops;
    net->student = student;
    net->dims = *dims;
    if (!student)
        net->dims.G = 0;
    net_layout(net); /* sizes only */
    size_t pb = (size_t)net->n_params * sizeof(float), sb = (size_t)net->n_stats * sizeof(float);
    net->param_arena = ops->alloc(pb);
    net->grad_arena = ops->alloc(pb);
    net->adam_m_arena = ops->alloc(pb);
    net->adam_v_arena = ops->alloc(pb);
    net->stat_arena = ops->alloc(sb);
    if (!net->param_arena || !net->grad_arena || !net->adam_m_arena || !net->adam_v_arena || !net->stat_arena) {
        net_free(net);
        return debcm_error_prefix("net_create (%lld parameters)", (long long)(pb / sizeof(float)));
    }
    net_layout(net);
    return 0;
}

void net_free(debcm_net *net)
{
    if (!net->ops)
        return;
    float *arenas[5] = {net->param_arena, net->grad_arena, net->adam_m_arena, net->adam_v_arena, net->stat_arena};
    for (int i = 0; i < 5; i++)
        if (arenas[i])
            net->ops->free(arenas[i]);
    memset(net, 0, sizeof *net);
}

/* ---- the table, by index and by name ------------------------------------------------------------------------- */

/* the i-th def this network has, or NULL */
static const tensor_def *net_def(const debcm_net *net, int i)
{
    for (int j = 0; j < N_DEFS; j++) {
        if (tensor_defs[j].student_only && !net->student)
            continue;
        if (i-- == 0)
            return &tensor_defs[j];
    }
    return NULL;
}

int net_tensor_count(const debcm_net *net) { return net->student ? N_DEFS : N_DEFS - 3; }

int net_tensor_get(const debcm_net *net, int i, net_tensor *out)
{
    const tensor_def *t = i >= 0 ? net_def(net, i) : NULL;
    if (!t)
        return debcm_fail("net_tensor_get: no tensor %d (the network has %d)", i, net_tensor_count(net));
    memset(out, 0, sizeof *out);
    out->name = t->name;
    out->kind = t->kind;
    out->ndim = t->cols == DIM_NONE ? 1 : 2;
    out->shape[0] = dim_value(&net->dims, t->rows);
    out->shape[1] = t->cols == DIM_NONE ? 1 : dim_value(&net->dims, t->cols);
    out->count = def_count(&net->dims, t);
    if (t->kind == TENSOR_PARAM) {
        out->data = *def_field((void *)&net->p, t);
        out->grad = *def_field((void *)&net->g, t);
    } else {
        out->data = *def_field((void *)&net->s, t);
    }
    return 0;
}

int net_tensor_find(const debcm_net *net, const char *name)
{
    for (int i = 0; i < net_tensor_count(net); i++)
        if (!strcmp(net_def(net, i)->name, name))
            return i;
    return -1;
}

/* ---- initialisation (SPEC §5) ------------------------------------------------------------------------------- */

#define INIT_STREAM_BASE 0x696e6974ull << 32 /* "init": stream = base + tensor index */

int net_init(debcm_net *net, uint64_t seed)
{
    const debcm_ops *o = net->ops;
    int64_t max_n = 0;
    for (int i = 0; i < net_tensor_count(net); i++) {
        int64_t n = def_count(&net->dims, net_def(net, i));
        max_n = n > max_n ? n : max_n;
    }
    float *host = malloc((size_t)max_n * sizeof *host);
    if (!host)
        return debcm_fail("net_init: out of memory for %lld floats", (long long)max_n);
    for (int i = 0; i < net_tensor_count(net); i++) {
        const tensor_def *t = net_def(net, i);
        net_tensor nt;
        net_tensor_get(net, i, &nt);
        uint64_t stream = (INIT_STREAM_BASE) + (uint64_t)i;
        double fan_out = (double)nt.shape[0], fan_in = (double)nt.shape[1];
        double bound = t->init == INIT_FANIN ? 1.0 / sqrt((double)dim_value(&net->dims, t->fan_in)) : 0.0;
        double std = t->init == INIT_XAVIER ? sqrt(2.0 / (fan_in + fan_out)) : 1.0; /* Xavier normal, gain 1 */
        for (int64_t j = 0; j < nt.count; j++) {
            switch (t->init) {
            case INIT_ZERO: host[j] = 0.0f; break;
            case INIT_ONE: host[j] = 1.0f; break;
            case INIT_XAVIER: host[j] = (float)(std * rng_normal(seed, stream, (uint64_t)j)); break;
            case INIT_NORMAL: host[j] = rng_normal(seed, stream, (uint64_t)j); break; /* Cemb ~ N(0, 1) */
            case INIT_FANIN:
                host[j] = (float)(-bound + 2.0 * bound * (double)rng_uniform(seed, stream, (uint64_t)j));
                break;
            }
        }
        if (o->upload(nt.data, host, (size_t)nt.count * sizeof *host)) {
            free(host);
            return debcm_error_prefix("net_init: %s", nt.name);
        }
    }
    free(host);
    size_t pb = (size_t)net->n_params * sizeof(float);
    if (o->zero(net->grad_arena, pb) || o->zero(net->adam_m_arena, pb) || o->zero(net->adam_v_arena, pb))
        return debcm_error_prefix("net_init");
    net->adam_t = 0;
    return 0;
}
