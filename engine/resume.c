/* engine/resume.c — the resume checkpoint (see resume.h): the trainer's state and the run's context in one
 * safetensors file, written through models/checkpoint.c's network helpers and io/safetensors.c's atomic writer
 * with a content checksum, and read back with every value checked before it is used. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/resume.h"
#include "models/checkpoint.h"

#define TERMS_TENSOR "epoch_loss_terms"

static int set_i64(safetensors_writer *w, const char *key, int64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%lld", (long long)v);
    return safetensors_writer_set_metadata(w, key, b);
}

static int set_f64(safetensors_writer *w, const char *key, double v)
{
    char b[40];
    snprintf(b, sizeof b, "%.17g", v);
    return safetensors_writer_set_metadata(w, key, b);
}

int resume_save(const char *path, const resume_info *ri, const debcm_net *net, const debcm_net *best,
                const debcm_net *teacher)
{
    const train_resume_point *p = &ri->pos;
    float *h[3] = {NULL, NULL, NULL};
    safetensors_writer w;
    safetensors_writer_init(&w);
    int rc = -1;
    if (p->student && !teacher) {
        debcm_fail("%s: the student phase's state needs its teacher", path);
        goto done;
    }
    int64_t tshape[2] = {p->next_batch, MODEL_LOSS_TERMS};
    if (checkpoint_add_net(&w, net, "", 1, &h[0]) || checkpoint_add_net(&w, best, "best.", 0, &h[1]) ||
        (p->student && checkpoint_add_net(&w, teacher, "teacher.", 0, &h[2])) ||
        (p->next_batch > 0 && safetensors_writer_add(&w, TERMS_TENSOR, SAFETENSORS_F32, 2, tshape, p->epoch_terms)))
        goto done;
    if (checkpoint_add_dims(&w, net, CHECKPOINT_RESUME_FORMAT) ||
        safetensors_writer_set_metadata(&w, "phase", p->student ? "student" : "teacher") ||
        set_i64(&w, "next_epoch", p->next_epoch) || set_i64(&w, "next_batch", p->next_batch) ||
        set_i64(&w, "step", p->step) || set_i64(&w, "adam_t", net->adam_t) ||
        set_i64(&w, "best_epoch", p->best_epoch) || set_f64(&w, "best_val_recall@25", p->best_recall) ||
        set_f64(&w, "best_val_ndcg@25", p->best_ndcg) || set_i64(&w, "one_row_batches_skipped", p->skipped_batches) ||
        set_i64(&w, "nonfinite_batches_skipped", p->nonfinite_skipped) || set_f64(&w, "phase_seconds", p->seconds) ||
        set_f64(&w, "epoch_seconds", p->epoch_seconds) || set_i64(&w, "epoch_samples", p->epoch_samples) ||
        set_i64(&w, "metrics_bytes", ri->metrics_bytes) ||
        safetensors_writer_set_metadata(&w, "config", ri->config_json ? ri->config_json : "") ||
        safetensors_writer_set_metadata(&w, "data", ri->data_fingerprint ? ri->data_fingerprint : ""))
        goto done;
    if (ri->teacher_done &&
        (set_i64(&w, "teacher_best_epoch", ri->teacher_best_epoch) || set_i64(&w, "teacher_steps", ri->teacher_steps) ||
         set_f64(&w, "teacher_val_recall@25", ri->teacher_val_recall) ||
         set_f64(&w, "teacher_seconds", ri->teacher_seconds)))
        goto done;
    if (safetensors_writer_set_checksum(&w))
        goto done;
    rc = safetensors_write(&w, path);
done:
    safetensors_writer_free(&w);
    for (int i = 0; i < 3; i++)
        free(h[i]);
    return rc;
}

/* ---- reading ---------------------------------------------------------------------------------------------------- */

static int meta_str(const resume_file *rf, const char *key, const char **out)
{
    *out = safetensors_metadata(&rf->f, key);
    if (!*out)
        return debcm_fail("%s: metadata '%s' is missing (not a complete resume checkpoint)", rf->f.path, key);
    return 0;
}

static int meta_i64(const resume_file *rf, const char *key, int64_t lo, int64_t hi, int64_t *out)
{
    const char *s;
    if (meta_str(rf, key, &s))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return debcm_fail("%s: metadata '%s': expected an integer in [%lld, %lld], found '%.40s'", rf->f.path, key,
                          (long long)lo, (long long)hi, s);
    *out = v;
    return 0;
}

static int meta_f64(const resume_file *rf, const char *key, double *out)
{
    const char *s;
    if (meta_str(rf, key, &s))
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v))
        return debcm_fail("%s: metadata '%s': expected a finite number, found '%.40s'", rf->f.path, key, s);
    *out = v;
    return 0;
}

/* the metadata of the opened file, checked */
static int read_info(resume_file *rf, int verify)
{
    const char *path = rf->f.path;
    if ((verify && safetensors_verify_checksum(&rf->f, 1)) ||
        safetensors_expect_metadata(&rf->f, "format", CHECKPOINT_RESUME_FORMAT))
        return -1;
    resume_info *ri = &rf->info;
    train_resume_point *p = &ri->pos;
    const char *model, *phase;
    int64_t big = INT64_MAX / 4;
    if (meta_str(rf, "model", &model) || meta_str(rf, "phase", &phase) ||
        meta_i64(rf, "L", 1, 65536, &rf->L) || meta_i64(rf, "next_epoch", 1, 1000001, &p->next_epoch) ||
        meta_i64(rf, "next_batch", 0, big, &p->next_batch) || meta_i64(rf, "step", 0, big, &p->step) ||
        meta_i64(rf, "adam_t", 0, big, &rf->adam_t) || meta_i64(rf, "best_epoch", 0, 1000000, &p->best_epoch) ||
        meta_f64(rf, "best_val_recall@25", &p->best_recall) || meta_f64(rf, "best_val_ndcg@25", &p->best_ndcg) ||
        meta_i64(rf, "one_row_batches_skipped", 0, big, &p->skipped_batches) ||
        meta_i64(rf, "nonfinite_batches_skipped", 0, big, &p->nonfinite_skipped) ||
        meta_f64(rf, "phase_seconds", &p->seconds) || meta_i64(rf, "metrics_bytes", 0, big, &ri->metrics_bytes) ||
        meta_str(rf, "config", &ri->config_json) || meta_str(rf, "data", &ri->data_fingerprint))
        return -1;
    /* the resumed epoch's earlier time and rows: timings only (absent from older checkpoints: 0) */
    if ((safetensors_metadata(&rf->f, "epoch_seconds") && meta_f64(rf, "epoch_seconds", &p->epoch_seconds)) ||
        (safetensors_metadata(&rf->f, "epoch_samples") && meta_i64(rf, "epoch_samples", 0, big, &p->epoch_samples)))
        return -1;
    if (strcmp(model, phase) || (strcmp(phase, "teacher") && strcmp(phase, "student")))
        return debcm_fail("%s: metadata 'phase' and 'model': expected both 'teacher' or both 'student', found '%.20s' "
                          "and '%.20s'", path, phase, model);
    p->student = rf->student = !strcmp(phase, "student");
    if (safetensors_metadata(&rf->f, "teacher_best_epoch")) {
        ri->teacher_done = 1;
        if (meta_i64(rf, "teacher_best_epoch", 0, 1000000, &ri->teacher_best_epoch) ||
            meta_i64(rf, "teacher_steps", 0, big, &ri->teacher_steps) ||
            meta_f64(rf, "teacher_val_recall@25", &ri->teacher_val_recall) ||
            meta_f64(rf, "teacher_seconds", &ri->teacher_seconds))
            return -1;
    }
    if (p->next_batch > 0) {
        int64_t shape[2] = {p->next_batch, MODEL_LOSS_TERMS};
        rf->terms = malloc((size_t)(p->next_batch * MODEL_LOSS_TERMS) * sizeof *rf->terms);
        if (!rf->terms)
            return debcm_fail("%s: out of memory for the epoch's loss terms", path);
        if (safetensors_read_f32(&rf->f, TERMS_TENSOR, 2, shape, "metadata 'next_batch'", rf->terms))
            return -1;
        p->epoch_terms = rf->terms;
    }
    return 0;
}

int resume_open(resume_file *rf, const char *path)
{
    memset(rf, 0, sizeof *rf);
    if (safetensors_open(&rf->f, path))
        return -1;
    return read_info(rf, 1);
}

int resume_open_buffer(resume_file *rf, const void *buf, size_t len, const char *name, int verify)
{
    memset(rf, 0, sizeof *rf);
    if (safetensors_open_buffer(&rf->f, buf, len, name))
        return -1;
    return read_info(rf, verify);
}

int resume_read_nets(resume_file *rf, debcm_net *net, debcm_net *best, debcm_net *teacher)
{
    const char *path = rf->f.path;
    if (net->student != rf->student || best->student != rf->student)
        return debcm_fail("%s: holds the %s phase, not the %s's", path, rf->student ? "student" : "teacher",
                          net->student ? "student" : "teacher");
    if (rf->student && (!teacher || teacher->student))
        return debcm_fail("%s: the student phase needs its teacher network", path);
    if (!rf->student)
        teacher = NULL;
    size_t want = (size_t)checkpoint_net_tensors(net, 1) + (size_t)checkpoint_net_tensors(best, 0) +
                  (teacher ? (size_t)checkpoint_net_tensors(teacher, 0) : 0) + (rf->info.pos.next_batch > 0);
    if (checkpoint_read_net(&rf->f, net, "", 1) || checkpoint_read_net(&rf->f, best, "best.", 0) ||
        (teacher && checkpoint_read_net(&rf->f, teacher, "teacher.", 0)))
        return -1;
    if (rf->f.count != want) /* every expected tensor was found; anything more is not ours */
        return debcm_fail("%s: %zu tensors, expected %zu for a %s phase (not a resume checkpoint of this run?)", path,
                          rf->f.count, want, rf->student ? "student" : "teacher");
    net->adam_t = rf->adam_t;
    return 0;
}

void resume_close(resume_file *rf)
{
    safetensors_close(&rf->f);
    free(rf->terms);
    rf->terms = NULL;
}
