/* tests/test_files.h — file helpers the C tests share: read a whole file into memory, and replay every input
 * of a fuzz corpus directory through a fuzz target's LLVMFuzzerTestOneInput (so that the seeds and former
 * crashes run in every build, not only in the libFuzzer one), and look for leftovers of the atomic writers. */
#ifndef DEBCM_TESTS_TEST_FILES_H
#define DEBCM_TESTS_TEST_FILES_H

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The whole file, NUL-terminated (the terminator is not counted in *len); NULL when it cannot be read. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0 && (n = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0)
        buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    if (buf) {
        buf[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return buf;
}

/* Run fn over every file of dir; returns how many, or -1 when dir cannot be opened. */
static inline int test_replay_corpus(const char *dir, int (*fn)(const uint8_t *, size_t))
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *buf = test_read_file(path, &len);
        if (!buf)
            continue;
        fn((const uint8_t *)buf, len);
        free(buf);
        n++;
    }
    closedir(d);
    printf("corpus %s: %d inputs replayed\n", dir, n);
    return n;
}

/* Whether anything (a file, a directory, a dangling link) is at path. */
static inline int test_file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* How many "*.tmp.*" entries (the atomic writers' temporary files) dir holds. */
static inline int test_count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp."))
            n++;
    closedir(d);
    return n;
}

#endif
