/* models/checkpoint.c — a network to and from safetensors (see checkpoint.h): one pass over the tensor table of
 * models/params.c. The arenas are downloaded once into a host copy (backend memory may be a GPU's) and every
 * tensor is written from its place in that copy; loading reads each tensor into a host copy of the arenas,
 * checked against the shapes the data give, and uploads the arenas once at the end, so that a refused checkpoint
 * leaves the network as it was. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/safetensors.h"
#include "models/checkpoint.h"

#define CHECKPOINT_FORMAT "debcm-checkpoint-1"

/* host copies of the parameter and statistics arenas, one block */
static float *host_arenas(const debcm_net *net)
{
    size_t n = (size_t)(net->n_params + net->n_stats);
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        debcm_fail("checkpoint: out of memory (%zu floats)", n);
    return h;
}

/* where tensor t lives inside the host copy made by host_arenas */
static float *host_place(const debcm_net *net, float *h, const net_tensor *t)
{
    if (t->kind == TENSOR_PARAM)
        return h + (t->data - net->param_arena);
    return h + net->n_params + (t->data - net->stat_arena);
}

int checkpoint_save(const debcm_net *net, const char *path, const checkpoint_meta *extra, int n_extra)
{
    const debcm_ops *o = net->ops;
    float *h = host_arenas(net);
    if (!h)
        return -1;
    safetensors_writer w;
    safetensors_writer_init(&w);
    int rc = -1;
    if (o->download(h, net->param_arena, (size_t)net->n_params * sizeof *h) ||
        o->download(h + net->n_params, net->stat_arena, (size_t)net->n_stats * sizeof *h))
        goto done;
    int n = net_tensor_count(net);
    for (int i = 0; i < n; i++) {
        net_tensor t;
        if (net_tensor_get(net, i, &t) ||
            safetensors_writer_add(&w, t.name, SAFETENSORS_F32, t.ndim, t.shape, host_place(net, h, &t)))
            goto done;
    }
    char buf[4][32];
    snprintf(buf[0], sizeof buf[0], "%lld", (long long)net->dims.D_v);
    snprintf(buf[1], sizeof buf[1], "%lld", (long long)net->dims.D_m);
    snprintf(buf[2], sizeof buf[2], "%lld", (long long)net->dims.L);
    snprintf(buf[3], sizeof buf[3], "%lld", (long long)net->dims.G);
    if (safetensors_writer_set_metadata(&w, "format", CHECKPOINT_FORMAT) ||
        safetensors_writer_set_metadata(&w, "model", net->student ? "student" : "teacher") ||
        safetensors_writer_set_metadata(&w, "D_v", buf[0]) || safetensors_writer_set_metadata(&w, "D_m", buf[1]) ||
        safetensors_writer_set_metadata(&w, "L", buf[2]) || safetensors_writer_set_metadata(&w, "G", buf[3]))
        goto done;
    for (int i = 0; i < n_extra; i++)
        if (safetensors_writer_set_metadata(&w, extra[i].key, extra[i].value))
            goto done;
    rc = safetensors_write(&w, path);
done:
    safetensors_writer_free(&w);
    free(h);
    return rc;
}

int checkpoint_peek(const char *path, int *student, int64_t *L)
{
    safetensors_file f;
    if (safetensors_open(&f, path))
        return -1;
    int rc = -1;
    const char *model = safetensors_metadata(&f, "model"), *l = safetensors_metadata(&f, "L");
    char *end = NULL;
    long long lv = l ? strtoll(l, &end, 10) : 0;
    if (!model || (strcmp(model, "teacher") && strcmp(model, "student")))
        debcm_fail("%s: metadata 'model': expected 'teacher' or 'student', found %s%s%s (not a debcm checkpoint?)",
                   path, model ? "'" : "", model ? model : "nothing", model ? "'" : "");
    else if (!l || !*l || *end || lv < 1)
        debcm_fail("%s: metadata 'L': expected a positive integer, found %s%s%s", path, l ? "'" : "",
                   l ? l : "nothing", l ? "'" : "");
    else {
        *student = !strcmp(model, "student");
        *L = lv;
        rc = 0;
    }
    safetensors_close(&f);
    return rc;
}

int checkpoint_load(debcm_net *net, const char *path)
{
    const debcm_ops *o = net->ops;
    safetensors_file f;
    if (safetensors_open(&f, path))
        return -1;
    float *h = NULL;
    int rc = -1;
    if (safetensors_expect_metadata(&f, "model", net->student ? "student" : "teacher"))
        goto done;
    if (!(h = host_arenas(net)))
        goto done;
    int n = net_tensor_count(net);
    for (int i = 0; i < n; i++) {
        net_tensor t;
        if (net_tensor_get(net, i, &t) ||
            safetensors_read_f32(&f, t.name, t.ndim, t.shape, "the data and --latent", host_place(net, h, &t)))
            goto done;
    }
    if ((size_t)n != f.count) { /* a tensor we do not know: not a checkpoint of this network */
        for (size_t i = 0; i < f.count; i++)
            if (net_tensor_find(net, f.tensors[i].name) < 0) {
                debcm_fail("%s: tensor '%s' is not part of a %s network", path, f.tensors[i].name,
                           net->student ? "student" : "teacher");
                goto done;
            }
    }
    if (o->upload(net->param_arena, h, (size_t)net->n_params * sizeof *h) ||
        o->upload(net->stat_arena, h + net->n_params, (size_t)net->n_stats * sizeof *h))
        goto done;
    net->adam_t = 0;
    if (o->zero(net->adam_m_arena, (size_t)net->n_params * sizeof(float)) ||
        o->zero(net->adam_v_arena, (size_t)net->n_params * sizeof(float)))
        goto done;
    rc = 0;
done:
    free(h);
    safetensors_close(&f);
    return rc;
}
