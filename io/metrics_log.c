/* io/metrics_log.c — the JSON-lines log of a run (see metrics_log.h): plain POSIX file calls, every one checked,
 * every line one write() followed by fdatasync. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"
#include "io/metrics_log.h"

int metrics_log_open(metrics_log *m, const char *path, int64_t keep)
{
    m->fd = -1;
    m->bytes = 0;
    if ((size_t)snprintf(m->path, sizeof m->path, "%s", path) >= sizeof m->path)
        return debcm_fail_path_too_long(path, sizeof m->path - 1);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (keep < 0 ? O_TRUNC : 0), 0666);
    if (fd < 0)
        return debcm_fail("%s: cannot open the metrics log: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = errno;
        close(fd);
        return debcm_fail("%s: %s", path, e && !S_ISREG(st.st_mode) ? strerror(e) : "not a regular file");
    }
    if (keep > 0 && st.st_size < keep) {
        close(fd);
        return debcm_fail("%s: %lld bytes, shorter than the %lld the checkpoint records (the log was edited or cut)",
                          path, (long long)st.st_size, (long long)keep);
    }
    if (keep >= 0 && (ftruncate(fd, keep) != 0 || lseek(fd, keep, SEEK_SET) < 0)) {
        int e = errno;
        close(fd);
        return debcm_fail("%s: cannot cut the metrics log to %lld bytes: %s", path, (long long)keep, strerror(e));
    }
    m->fd = fd;
    m->bytes = keep > 0 ? keep : 0;
    return 0;
}

int metrics_log_append(metrics_log *m, const json_t *obj)
{
    char *line = json_dumps(obj, JSON_COMPACT | JSON_REAL_PRECISION(17));
    if (!line)
        return debcm_fail("%s: out of memory for a log line", m->path);
    size_t n = strlen(line);
    line[n] = '\n'; /* json_dumps leaves room: the NUL becomes the newline, the length says where it ends */
    size_t done = 0;
    int rc = 0;
    while (done <= n) {
        ssize_t w = write(m->fd, line + done, n + 1 - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = debcm_fail("%s: writing the metrics log: %s", m->path, w < 0 ? strerror(errno) : "nothing written");
            break;
        }
        done += (size_t)w;
    }
    if (rc == 0 && fdatasync(m->fd) != 0 && errno != EINVAL)
        rc = debcm_fail("%s: writing the metrics log: %s", m->path, strerror(errno));
    free(line);
    if (rc) { /* keep whole lines: cut back what part of this one got in */
        if (ftruncate(m->fd, m->bytes) == 0)
            (void)lseek(m->fd, m->bytes, SEEK_SET);
        return -1;
    }
    m->bytes += (int64_t)(n + 1);
    return 0;
}

void metrics_log_close(metrics_log *m)
{
    if (m->fd >= 0)
        close(m->fd);
    m->fd = -1;
}
