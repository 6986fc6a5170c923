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


/* host copies of the parameter and statistics arenas (and with_adam: the two Adam moments), one block laid out
 * [params | stats | m | v] */
static float *host_arenas(const debcm_net *net, int with_adam)
{
    size_t n = (size_t)(net->n_params * (with_adam ? 3 : 1) + net->n_stats);
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (!h)
        debcm_fail("checkpoint: out of memory (%zu floats)", n);
    return h;
}

/* where tensor t (part 0: itself, 1: Adam m, 2: Adam v) lives inside the host copy made by host_arenas */
static float *host_place(const debcm_net *net, float *h, const net_tensor *t, int part)
{
    if (t->kind == TENSOR_STAT)
        return h + net->n_params + (t->data - net->stat_arena);
    return h + (part ? net->n_params + net->n_stats + (part - 1) * net->n_params : 0) + (t->data - net->param_arena);
}

static const char *const part_prefix[3] = {"", "optimizer.exp_avg.", "optimizer.exp_avg_sq."};

/* prefix + the part's prefix + name, or −1 when it does not fit */
static int part_name(char *buf, size_t cap, const char *prefix, int part, const char *name)
{
    if ((size_t)snprintf(buf, cap, "%s%s%s", prefix, part_prefix[part], name) >= cap)
        return debcm_fail("checkpoint: tensor name '%s%s' too long", prefix, name);
    return 0;
}

int checkpoint_add_net(safetensors_writer *w, const debcm_net *net, const char *prefix, int with_adam, float **host)
{
    const debcm_ops *o = net->ops;
    float *h = *host = host_arenas(net, with_adam);
    if (!h)
        return -1;
    const size_t pb = (size_t)net->n_params * sizeof *h;
    if (o->download(h, net->param_arena, pb) ||
        o->download(h + net->n_params, net->stat_arena, (size_t)net->n_stats * sizeof *h) ||
        (with_adam && (o->download(h + net->n_params + net->n_stats, net->adam_m_arena, pb) ||
                       o->download(h + 2 * net->n_params + net->n_stats, net->adam_v_arena, pb))))
        return -1;
    int n = net_tensor_count(net);
    char name[256];
    for (int part = 0; part < (with_adam ? 3 : 1); part++)
        for (int i = 0; i < n; i++) {
            net_tensor t;
            if (net_tensor_get(net, i, &t))
                return -1;
            if (part && t.kind != TENSOR_PARAM)
                continue;
            if (part_name(name, sizeof name, prefix, part, t.name) ||
                safetensors_writer_add(w, name, SAFETENSORS_F32, t.ndim, t.shape, host_place(net, h, &t, part)))
                return -1;
        }
    return 0;
}

int checkpoint_read_net(const safetensors_file *f, debcm_net *net, const char *prefix, int with_adam)
{
    const debcm_ops *o = net->ops;
    float *h = host_arenas(net, with_adam);
    if (!h)
        return -1;
    int rc = -1, n = net_tensor_count(net);
    char name[256];
    for (int part = 0; part < (with_adam ? 3 : 1); part++)
        for (int i = 0; i < n; i++) {
            net_tensor t;
            if (net_tensor_get(net, i, &t))
                goto done;
            if (part && t.kind != TENSOR_PARAM)
                continue;
            if (part_name(name, sizeof name, prefix, part, t.name) ||
                safetensors_read_f32(f, name, t.ndim, t.shape, "the data and --latent", host_place(net, h, &t, part)))
                goto done;
        }
    const size_t pb = (size_t)net->n_params * sizeof *h;
    if (o->upload(net->param_arena, h, pb) ||
        o->upload(net->stat_arena, h + net->n_params, (size_t)net->n_stats * sizeof *h) ||
        (with_adam && (o->upload(net->adam_m_arena, h + net->n_params + net->n_stats, pb) ||
                       o->upload(net->adam_v_arena, h + 2 * net->n_params + net->n_stats, pb))))
        goto done;
    rc = 0;
done:
    free(h);
    return rc;
}

int checkpoint_net_tensors(const debcm_net *net, int with_adam)
{
    int n = net_tensor_count(net), params = 0;
    for (int i = 0; i < n; i++) {
        net_tensor t;
        if (net_tensor_get(net, i, &t) == 0 && t.kind == TENSOR_PARAM)
            params++;
    }
    return n + (with_adam ? 2 * params : 0);
}

int checkpoint_add_dims(safetensors_writer *w, const debcm_net *net, const char *format)
{
    char buf[4][32];
    snprintf(buf[0], sizeof buf[0], "%lld", (long long)net->dims.D_v);
    snprintf(buf[1], sizeof buf[1], "%lld", (long long)net->dims.D_m);
    snprintf(buf[2], sizeof buf[2], "%lld", (long long)net->dims.L);
    snprintf(buf[3], sizeof buf[3], "%lld", (long long)net->dims.G);
    return safetensors_writer_set_metadata(w, "format", format) ||
                   safetensors_writer_set_metadata(w, "model", net->student ? "student" : "teacher") ||
                   safetensors_writer_set_metadata(w, "D_v", buf[0]) ||
                   safetensors_writer_set_metadata(w, "D_m", buf[1]) ||
                   safetensors_writer_set_metadata(w, "L", buf[2]) || safetensors_writer_set_metadata(w, "G", buf[3])
               ? -1
               : 0;
}

int checkpoint_save(const debcm_net *net, const char *path, const checkpoint_meta *extra, int n_extra)
{
    float *h = NULL;
    safetensors_writer w;
    safetensors_writer_init(&w);
    int rc = -1;
    if (checkpoint_add_net(&w, net, "", 0, &h) || checkpoint_add_dims(&w, net, CHECKPOINT_FORMAT))
        goto done;
    for (int i = 0; i < n_extra; i++)
        if (safetensors_writer_set_metadata(&w, extra[i].key, extra[i].value))
            goto done;
    if (safetensors_writer_set_checksum(&w))
        goto done;
    rc = safetensors_write(&w, path);
done:
    safetensors_writer_free(&w);
    free(h);
    return rc;
}

/* A file that is not a model: a resume checkpoint is named as such (it holds much more than a model). */
static int refuse_resume_file(const safetensors_file *f)
{
    const char *fmt = safetensors_metadata(f, "format");
    if (fmt && !strcmp(fmt, CHECKPOINT_RESUME_FORMAT))
        return debcm_fail("%s: a resume checkpoint (debcm run --resume RUNDIR), not a model: the best epochs are "
                          "RUNDIR/teacher.safetensors and RUNDIR/student.safetensors", f->path);
    return 0;
}

int checkpoint_peek(const char *path, int *student, int64_t *L)
{
    safetensors_file f;
    if (safetensors_open(&f, path))
        return -1;
    int rc = -1;
    const char *model = safetensors_metadata(&f, "model"), *l = safetensors_metadata(&f, "L");
    if (safetensors_verify_checksum(&f, 0) || refuse_resume_file(&f)) {
        safetensors_close(&f);
        return -1;
    }
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
    int rc = -1;
    if (safetensors_verify_checksum(&f, 0) || refuse_resume_file(&f) ||
        safetensors_expect_metadata(&f, "model", net->student ? "student" : "teacher") ||
        checkpoint_read_net(&f, net, "", 0))
        goto done;
    if ((size_t)checkpoint_net_tensors(net, 0) != f.count) { /* a tensor we do not know: not this network's file */
        for (size_t i = 0; i < f.count; i++)
            if (net_tensor_find(net, f.tensors[i].name) < 0) {
                debcm_fail("%s: tensor '%s' is not part of a %s network", path, f.tensors[i].name,
                           net->student ? "student" : "teacher");
                goto done;
            }
    }
    net->adam_t = 0;
    if (o->zero(net->adam_m_arena, (size_t)net->n_params * sizeof(float)) ||
        o->zero(net->adam_v_arena, (size_t)net->n_params * sizeof(float)))
        goto done;
    rc = 0;
done:
    safetensors_close(&f);
    return rc;
}
