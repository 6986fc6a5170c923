/* apps/serve_common.h — what the commands that serve a trained model share (`debcm recommend`, `debcm export`):
 * the options --threads and --device, and opening a checkpoint on its data. A student scores the videos and musics
 * of data_matching (with user_prior_mean's confounder mean, SPEC §4), a teacher those of data_pgc (SPEC §3); the
 * kind comes from the checkpoint's metadata, as `debcm evaluate` reads it, and ROOT or --pgc/--data resolve as
 * they do for evaluate (apps/run_common.h). */
#ifndef DEBCM_SERVE_COMMON_H
#define DEBCM_SERVE_COMMON_H

#include <limits.h>
#include <stdint.h>

#include "engine/train.h"
#include "io/dataset.h"
#include "models/model.h"

/* A checkpoint loaded on its data, with the side of the data its score uses. */
typedef struct {
    int student;            /* 1 student, 0 teacher (from the checkpoint's metadata) */
    const debcm_ops *ops;
    debcm_dataset ds;
    train_data td;
    debcm_net net;
    model_workspace ws;
    const float *videos;    /* host [Nv, D_v]: the video features of the model's directory */
    int64_t Nv, D_v;
    const float *musics;    /* host [Nm, D_m]: its music features [vggish ‖ smile] */
    int64_t Nm, L;
    const float *prior_mean; /* host [G] (student), NULL (teacher) */
    char dir[PATH_MAX];        /* data_matching (student) or data_pgc (teacher) */
    char video_file[PATH_MAX]; /* dir/visual_features_resnet_V.npy or dir/mv_video_resnet_features.npy */
} serve_model;

/* Parse --threads N (1 .. 4096) and --device cpu|cuda values; −1 with a message naming the option. */
int serve_parse_threads(const char *s, int *out);
int serve_parse_device(const char *s, int *cuda);

/* The data of the command line: ROOT, --data ROOT, or --pgc DIR --data DIR (the pointers, --data ROOT moved into
 * *root). −1 to go on, or the usage error's exit status (the message printed for cmd). */
int serve_check_data_args(const char *cmd, const char **root, const char **pgc, const char **data);

/* Open the checkpoint ckpt on the data of root (ROOT/data_pgc and ROOT/data_matching), or of the directories pgc
 * and data (root NULL); the backend of --device (cuda). Data warnings go to stderr as "debcm <cmd>: warning: …".
 * 0, or −1 with a message (the checkpoint or a data file named); serve_model_close in both cases. */
int serve_model_open(serve_model *m, const char *ckpt, const char *root, const char *pgc, const char *data, int cuda,
                     const char *cmd);
void serve_model_close(serve_model *m);

#endif
