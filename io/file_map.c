/* io/file_map.c — read-only whole-file mappings for the readers of io/ (see io/file_map.h). */
#include "io/file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"

int file_map_open(file_map *m, const char *path, const char *expected, int populate)
{
    m->base = NULL;
    m->len = 0;
    /* O_NONBLOCK: opening a FIFO (or a device) for reading would otherwise block until a writer shows up, before
     * the S_ISREG check below could refuse it; for a regular file the flag changes nothing. */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return debcm_fail("%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return debcm_fail("%s: cannot stat: %s", path, strerror(e));
    }
    const char *bad = S_ISDIR(st.st_mode)    ? "is a directory"
                      : !S_ISREG(st.st_mode) ? "not a regular file"
                      : st.st_size == 0      ? "empty file (0 bytes)"
                                             : NULL;
    if (bad) {
        close(fd);
        return debcm_fail("%s: %s, expected %s", path, bad, expected);
    }
    if ((uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return debcm_fail("%s: file of %lld bytes does not fit in the address space", path, (long long)st.st_size);
    }
    size_t len = (size_t)st.st_size;
    /* MAP_POPULATE for files read whole (feature matrices are checked value by value for NaN/Inf): faulting
     * the pages in one call costs a quarter of faulting them one by one (bench/bench_load on tt150k:
     * 0.92 s -> 0.70 s for the whole dataset). The pages are page cache, not private memory. */
    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED)
        return debcm_fail("%s: cannot mmap %zu bytes: %s", path, len, strerror(e));
    m->base = map;
    m->len = len;
    return 0;
}

void file_map_close(file_map *m)
{
    if (m->base)
        munmap(m->base, m->len);
    m->base = NULL;
    m->len = 0;
}
