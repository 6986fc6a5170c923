/* tests/test_synth.c — how the synthetic generator (io/synth.c) fails and what it leaves: a run whose last step
 * (the gen_stats.json marker) fails removes every file and directory it made, so that ROOT is as before and a
 * retry is not refused; what was in ROOT before stays; the empty data directories a killed run leaves are not
 * "a dataset" (no --force needed). A config too large for this machine's memory is refused before anything is
 * created, with the size. Long paths: a dataset under a directory path of ~2,000 characters is written and read
 * back; a ROOT too long for PATH_MAX (itself, or with the layout's longest file name and its temporary suffix)
 * is refused as "path too long" before anything is created. argv[1] is not used. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "engine/error.h"
#include "io/npy.h"
#include "io/synth.h"

static char tmp_dir[512];

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* entries of dir, "." and ".." excluded; -1 when it cannot be opened */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static int failing_marker(const char *root, const synth_stats *st, void *ctx)
{
    (void)st;
    int *calls = ctx;
    ++*calls;
    return debcm_fail("%s/gen_stats.json: disk full (simulated)", root);
}

static void test_failed_run_undone(void)
{
    synth_config c;
    CHECK(synth_config_preset(&c, "tiny") == 0);
    char root[700];
    int calls = 0;

    /* ROOT made by the run (two levels): all gone */
    snprintf(root, sizeof root, "%s/made/by/run", tmp_dir);
    CHECK(synth_write_with_marker(root, &c, 0, NULL, failing_marker, &calls) == -1);
    CHECK(calls == 1);
    CHECK_CONTAINS(debcm_last_error(), "disk full (simulated)");
    char made[700];
    snprintf(made, sizeof made, "%s/made", tmp_dir);
    CHECK_MSG(!exists(made), "%s left behind", made);

    /* ROOT existed with a file of its own: the file and ROOT stay, nothing else */
    snprintf(root, sizeof root, "%s/existing", tmp_dir);
    CHECK(mkdir(root, 0755) == 0);
    char mine[800];
    snprintf(mine, sizeof mine, "%s/notes.txt", root);
    FILE *fp = fopen(mine, "w");
    if (fp)
        fclose(fp);
    CHECK(synth_write_with_marker(root, &c, 0, NULL, failing_marker, &calls) == -1);
    CHECK(exists(mine) && count_entries(root) == 1);

    /* and the retry, without --force, is not refused */
    CHECK_MSG(synth_write(root, &c, 0, NULL) == 0, "%s", debcm_last_error());
    char f[800];
    snprintf(f, sizeof f, "%s/data_matching/train.npy", root);
    CHECK(exists(f));

    /* --force over a complete dataset, failing: what it wrote is removed, and the old marker was removed first,
     * so that nothing left looks like a complete dataset */
    snprintf(f, sizeof f, "%s/gen_stats.json", root);
    fp = fopen(f, "w");
    if (fp)
        fclose(fp);
    CHECK(synth_write_with_marker(root, &c, 1, NULL, failing_marker, &calls) == -1);
    CHECK(!exists(f) && exists(mine));
    snprintf(f, sizeof f, "%s/data_matching/train.npy", root);
    CHECK(!exists(f));

    /* what a run killed by a signal before its first file leaves — empty data directories — is no dataset */
    snprintf(root, sizeof root, "%s/killed", tmp_dir);
    const char *const dirs[] = {"", "/data_pgc", "/data_matching", "/data_matching/100neg"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(f, sizeof f, "%s%s", root, dirs[i]);
        CHECK(mkdir(f, 0755) == 0);
    }
    CHECK_MSG(synth_write(root, &c, 0, NULL) == 0, "empty data directories refused: %s", debcm_last_error());
    /* files in them are (synth_write writes no gen_stats.json: the data files alone make the refusal) */
    CHECK(synth_write(root, &c, 0, NULL) == -1);
    CHECK_CONTAINS(debcm_last_error(), "already holds a dataset");
    CHECK_CONTAINS(debcm_last_error(), "--force");
    printf("failed runs undone: ok\n");
}

static void test_memory_refused(void)
{
    synth_config c;
    CHECK(synth_config_preset(&c, "tiny") == 0);
    c.dim_v = 1 << 20;
    c.videos = 1000000000; /* 4 PB of features */
    char root[700];
    snprintf(root, sizeof root, "%s/huge", tmp_dir);
    CHECK(synth_write(root, &c, 0, NULL) == -1);
    CHECK_CONTAINS(debcm_last_error(), "GiB");
    CHECK_CONTAINS(debcm_last_error(), "1000000000 x 1048576");
    CHECK_MSG(!exists(root), "%s created by a refused run", root);
    printf("memory: %s\n", debcm_last_error());
}

/* dir/xxx.../xxx... : nested directories of 200-character names until the path is about `target` long */
static void make_long_dir(char *out, size_t cap, const char *base, size_t target)
{
    char name[201];
    memset(name, 'd', 200);
    name[200] = '\0';
    snprintf(out, cap, "%s", base);
    while (strlen(out) + 201 <= target) {
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "/%s", name);
        if (mkdir(out, 0755) != 0 && errno != EEXIST)
            CHECK_MSG(0, "mkdir %zu: %s", strlen(out), strerror(errno));
    }
}

static void test_long_paths(void)
{
    synth_config c;
    CHECK(synth_config_preset(&c, "tiny") == 0);
    static char dir[PATH_MAX], root[PATH_MAX * 2], file[PATH_MAX * 3];
    make_long_dir(dir, sizeof dir, tmp_dir, 2000);
    snprintf(root, sizeof root, "%s/ds", dir);
    CHECK_MSG(synth_write(root, &c, 0, NULL) == 0, "%zu-byte root: %s", strlen(root), debcm_last_error());
    snprintf(file, sizeof file, "%s/data_matching/visual_features_resnet_V.npy", root);
    npy_file f;
    CHECK_MSG(npy_open(&f, file) == 0, "%s", debcm_last_error());
    CHECK(f.h.ndim == 2 && f.h.shape[0] == c.videos && f.h.shape[1] == c.dim_v);
    npy_close(&f);
    printf("a %zu-character ROOT: written and read back\n", strlen(root));

    /* too long once the layout's longest name is added, or only once its ".tmp.<pid>" is: refused before anything
     * is created, with the length of that file's path */
    static const size_t lengths[] = {PATH_MAX - 40, PATH_MAX - 1 - 48 - 3};
    size_t n = strlen(dir);
    for (size_t i = 0; i < sizeof lengths / sizeof lengths[0]; i++) {
        memset(root, 'r', sizeof root);
        memcpy(root, dir, n);
        root[n] = '/';
        root[lengths[i]] = '\0';
        CHECK(synth_write(root, &c, 0, NULL) == -1);
        CHECK_CONTAINS(debcm_last_error(), "path too long");
        char want[64];
        snprintf(want, sizeof want, "...: path too long (%zu bytes; at most ", lengths[i] + 48);
        CHECK_CONTAINS(debcm_last_error(), want);
        CHECK(!exists(root));
    }
    /* ROOT itself longer than PATH_MAX */
    memset(root, 'r', sizeof root);
    memcpy(root, dir, n);
    root[n] = '/';
    root[PATH_MAX + 100] = '\0';
    CHECK(synth_write(root, &c, 0, NULL) == -1);
    CHECK_CONTAINS(debcm_last_error(), "path too long");
    printf("too long: %s\n", debcm_last_error());
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_synth.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_failed_run_undone();
    test_memory_refused();
    test_long_paths();
    int rc = check_done();
    if (rc == 0) {
        char cmd[700];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", tmp_dir);
    }
    return rc;
}
