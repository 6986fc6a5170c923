/* models/checkpoint.h — saving and loading one DebCM network (teacher or student) as a safetensors file.
 *
 * This sits between models/model.h (the network and its tensor table net_tensor_*) and io/safetensors.h (the file
 * format): a checkpoint is one pass over the table, every tensor under its published state_dict name in float32
 * (parameters and BatchNorm running statistics; the Adam state is not kept: a checkpoint here is the best epoch's
 * model, for evaluation and distillation; the resume point, engine/resume.h, is built from the same pieces). The metadata say what the file is: `format` =
 * "debcm-checkpoint-1", `model` = teacher|student, the dimensions `D_v`, `D_m`, `L`, `G` and whatever the trainer
 * adds (the variants, the epoch). Loading refuses a checkpoint of the other kind ("...: metadata 'model':
 * expected 'student', found 'teacher'") and any tensor whose shape does not match the network built from the data
 * ("teacher.safetensors: tensor 'v_encoder.fc_mu.weight': expected shape [128, 2048] (from the data and
 * --latent), found [128, 1024]"). Writes are atomic (io/atomic_file.h, through safetensors_write). */
#ifndef DEBCM_CHECKPOINT_H
#define DEBCM_CHECKPOINT_H

#include "io/safetensors.h"
#include "models/model.h"

#define CHECKPOINT_FORMAT "debcm-checkpoint-1"     /* a model: the best epoch of a phase */
#define CHECKPOINT_RESUME_FORMAT "debcm-resume-1"  /* a run's whole state (engine/resume.h) */

/* One extra metadata pair (copied). */
typedef struct {
    const char *key, *value;
} checkpoint_meta;

/* Write every tensor of net to path (atomically) with the standard metadata plus n_extra pairs and the content
 * checksum (io/safetensors.h). 0 or −1. */
int checkpoint_save(const debcm_net *net, const char *path, const checkpoint_meta *extra, int n_extra);

/* The building blocks, shared with the resume checkpoint (engine/resume.c).
 * checkpoint_add_net: every tensor of net into w under prefix + its state_dict name ("" for the plain names),
 * with_adam also the Adam moments under prefix + "optimizer.exp_avg." / "optimizer.exp_avg_sq." + name; the data
 * are a host copy made here, *host, which must outlive the write and then be freed (even on failure).
 * checkpoint_read_net: the same tensors from f into net, shapes checked against it ("… expected shape [128, 2048]
 * (from the data and --latent), found …"), uploaded only once all are read (a refusal leaves net as it was).
 * checkpoint_net_tensors: how many tensors those are. checkpoint_add_dims: the metadata format, model, D_v, D_m,
 * L and G. */
int checkpoint_add_net(safetensors_writer *w, const debcm_net *net, const char *prefix, int with_adam, float **host);
int checkpoint_read_net(const safetensors_file *f, debcm_net *net, const char *prefix, int with_adam);
int checkpoint_net_tensors(const debcm_net *net, int with_adam);
int checkpoint_add_dims(safetensors_writer *w, const debcm_net *net, const char *format);

/* Read the kind (1 student, 0 teacher) and the latent size L recorded in a checkpoint's metadata, without
 * loading it: what `evaluate` needs to build the right network. −1 with a message naming the file. */
int checkpoint_peek(const char *path, int *student, int64_t *L);

/* Fill the already created net (its dimensions from the data) from path: every tensor of the table must be there
 * with the net's shape; the metadata 'model' must name net's kind; a checksum, when the file has one, must match
 * (files from other writers have none); a resume checkpoint is refused by name. 0 or −1 with a message naming the
 * file. The Adam state is cleared (adam_t = 0). */
int checkpoint_load(debcm_net *net, const char *path);

#endif
