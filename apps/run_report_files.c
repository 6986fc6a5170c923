/* apps/run_report_files.c — see apps/run_report_files.h. Files are read whole (a run's logs are small: one line per
 * epoch and per logging window), then parsed with jansson; metrics.jsonl line by line, so that an error can say
 * which line. */
#include "apps/run_report_files.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"
#include "io/atomic_file.h"

int report_path(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX) {
        char whole[2 * PATH_MAX + 2];
        snprintf(whole, sizeof whole, "%s/%s", dir, name);
        return debcm_fail_path_too_long(whole, PATH_MAX - 1);
    }
    return 0;
}

/* The whole file, NUL-terminated, *len its length; NULL with errno set (ENOENT for a missing file). */
static char *read_whole(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (n < cap - 1) {
            if (ferror(fp)) {
                int e = errno ? errno : EIO;
                free(buf);
                buf = NULL;
                errno = e;
            }
            break;
        }
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            errno = ENOMEM;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(fp);
    if (buf) {
        buf[n] = '\0';
        *len = n;
    }
    return buf;
}

static const char *json_type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER:
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

int report_load_json(const char *dir, const char *name, int optional, json_t **out)
{
    char path[PATH_MAX];
    *out = NULL;
    if (report_path(path, dir, name))
        return -1;
    size_t len;
    char *text = read_whole(path, &len);
    if (!text) {
        if (optional && errno == ENOENT)
            return 0;
        return debcm_fail("%s: cannot read: %s", path, strerror(errno));
    }
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_DECODE_ANY, &e);
    free(text);
    if (!j)
        return debcm_fail("%s: line %d, column %d: not valid JSON: %s", path, e.line, e.column, e.text);
    if (!json_is_object(j)) {
        const char *t = json_type_name(j);
        json_decref(j);
        return debcm_fail("%s: expected a JSON object, found %s", path, t);
    }
    *out = j;
    return 0;
}

int report_load_metrics(const char *dir, json_t **lines)
{
    char path[PATH_MAX];
    *lines = NULL;
    if (report_path(path, dir, "metrics.jsonl"))
        return -1;
    size_t len;
    char *text = read_whole(path, &len);
    if (!text)
        return debcm_fail("%s: cannot read: %s", path, strerror(errno));
    json_t *arr = json_array();
    int rc = arr ? 0 : debcm_fail("%s: out of memory", path);
    long line_no = 0;
    for (size_t pos = 0; rc == 0 && pos < len; line_no++) {
        const char *start = text + pos, *nl = memchr(start, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - start) : len - pos;
        pos += n + (nl != NULL);
        if (n > 0 && start[n - 1] == '\r')
            n--;
        size_t blank = 0;
        while (blank < n && (start[blank] == ' ' || start[blank] == '\t'))
            blank++;
        if (blank == n)
            continue; /* a blank line: nothing to report */
        json_error_t e;
        json_t *j = json_loadb(start, n, JSON_DECODE_ANY, &e);
        if (!j) {
            rc = debcm_fail("%s: line %ld: not valid JSON (column %d: %s)", path, line_no + 1, e.column, e.text);
        } else if (!json_is_object(j)) {
            rc = debcm_fail("%s: line %ld: expected a JSON object, found %s", path, line_no + 1, json_type_name(j));
            json_decref(j);
        } else if (json_array_append_new(arr, j)) {
            rc = debcm_fail("%s: out of memory", path);
        }
    }
    free(text);
    if (rc) {
        json_decref(arr);
        return -1;
    }
    *lines = arr;
    return 0;
}

const char *report_line_kind(const json_t *line)
{
    const char *k = report_get_string(line, "kind");
    return k ? k : "epoch";
}

const char *report_get_string(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key)); /* NULL unless a string */
}

int report_get_number(const json_t *obj, const char *key, double *x)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_number(v))
        return 0;
    *x = json_number_value(v);
    return 1;
}

size_t report_format_double(char *buf, size_t cap, double x)
{
    int n = 0;
    for (int p = 1; p <= 17; p++) {
        n = snprintf(buf, cap, "%.*g", p, x);
        if (strtod(buf, NULL) == x) /* 17 digits always read back; fewer often do */
            break;
    }
    if (n > 0 && (size_t)n + 2 < cap && !strpbrk(buf, ".eEni")) { /* "1" → "1.0": still a float when read back */
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    return n > 0 ? (size_t)n : 0;
}

int report_find_gnuplot(char *out)
{
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    for (const char *p = path;;) {
        const char *colon = strchr(p, ':');
        size_t n = colon ? (size_t)(colon - p) : strlen(p);
        int w = n ? snprintf(out, PATH_MAX, "%.*s/gnuplot", (int)n, p) : snprintf(out, PATH_MAX, "./gnuplot");
        struct stat st;
        if (w > 0 && w < PATH_MAX && stat(out, &st) == 0 && S_ISREG(st.st_mode) && access(out, X_OK) == 0)
            return 1;
        if (!colon)
            return 0;
        p = colon + 1;
    }
}

int report_write_text(const char *path, const char *text, size_t len)
{
    atomic_file a;
    if (atomic_file_begin(&a, path))
        return -1;
    if (atomic_file_write(&a, text, len))
        return -1; /* aborted by the failed write */
    return atomic_file_commit(&a);
}
