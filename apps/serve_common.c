/* apps/serve_common.c — opening a checkpoint on its data for `recommend` and `export` (see serve_common.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apps/commands.h"
#include "apps/run_common.h"
#include "apps/serve_common.h"
#include "engine/error.h"
#include "engine/run_config.h"
#include "models/checkpoint.h"

/* --threads and --device are read as the training commands read them: through their entries in the option
 * table of engine/run_config.h (the ranges and the names live there) */
int serve_parse_threads(const char *s, int *out)
{
    run_config c;
    run_config_default(&c, RUN_CMD_RUN);
    if (run_option_set_text(&c, run_option_find("threads"), s))
        return -1;
    *out = (int)c.threads;
    return 0;
}

int serve_parse_device(const char *s, int *cuda)
{
    run_config c;
    run_config_default(&c, RUN_CMD_RUN);
    if (run_option_set_text(&c, run_option_find("device"), s))
        return -1;
    *cuda = c.device == RUN_DEVICE_CUDA;
    return 0;
}

int serve_check_data_args(const char *cmd, const char **root, const char **pgc, const char **data)
{
    if (!*pgc && *data && !*root) { /* --data ROOT, as evaluate reads it */
        *root = *data;
        *data = NULL;
    }
    if (*root && (*pgc || *data))
        return cmd_usage_error(cmd, "give either ROOT (or --data ROOT) or --pgc DIR --data DIR, not both");
    if ((*pgc != NULL) != (*data != NULL) || (!*root && !*pgc))
        return cmd_usage_error(cmd, "need --data ROOT, or both --pgc DIR and --data DIR");
    if ((*pgc && !**pgc) || (*data && !**data) || (*root && !**root))
        return cmd_usage_error(cmd, "--pgc and --data need a directory, found an empty string");
    return -1;
}

int serve_model_open(serve_model *m, const char *ckpt, const char *root, const char *pgc_in, const char *data_in,
                     int cuda, const char *cmd)
{
    memset(m, 0, sizeof *m);
    char pgc[PATH_MAX], data[PATH_MAX];
    if (checkpoint_peek(ckpt, &m->student, &m->L)) /* before the data: a wrong file fails fast */
        return -1;
    m->ops = run_select_backend(cuda, 0);
    if (!m->ops || run_resolve_dirs(root, pgc_in, data_in, pgc, data) ||
        run_load_data(pgc, data, &m->ds, stderr, cmd) || train_data_build(&m->td, &m->ds, m->L))
        return -1;
    model_dims dims = train_dims(&m->td, m->student);
    if (net_create(&m->net, m->ops, &dims, m->student) || checkpoint_load(&m->net, ckpt) ||
        model_workspace_create(&m->ws, m->ops, &dims, 1024)) /* evaluate's workspace: the same score blocks */
        return -1;
    const char *dir = m->student ? data : pgc;
    const char *file = m->student ? "visual_features_resnet_V.npy" : "mv_video_resnet_features.npy";
    const feat_matrix *v = m->student ? &m->ds.ugc_video : &m->ds.pgc_video;
    size_t n = strlen(dir);
    if ((size_t)snprintf(m->dir, sizeof m->dir, "%s", dir) >= sizeof m->dir ||
        (size_t)snprintf(m->video_file, sizeof m->video_file, "%s%s%s", dir, n && dir[n - 1] == '/' ? "" : "/",
                         file) >= sizeof m->video_file)
        return debcm_fail_path_too_long(dir, PATH_MAX - 40);
    m->videos = v->data;
    m->Nv = v->rows;
    m->D_v = v->cols;
    m->musics = m->student ? m->td.ugc_music : m->td.pgc_music;
    m->Nm = m->student ? m->ds.ugc_vggish.rows : m->ds.pgc_vggish.rows;
    m->prior_mean = m->student ? m->ds.prior_mean : NULL;
    return 0;
}

void serve_model_close(serve_model *m)
{
    model_workspace_free(&m->ws);
    net_free(&m->net);
    train_data_free(&m->td);
    dataset_free(&m->ds);
    memset(m, 0, sizeof *m);
}
