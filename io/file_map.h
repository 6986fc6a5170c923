/* io/file_map.h — a whole file mapped read-only into memory, the way every reader of io/ gets at its bytes
 * (.npy, .npz). Opening checks that the path is a non-empty regular file that fits in the address space and
 * says so, naming the path and what was expected there, when it is not — at once, also for a FIFO or a device,
 * which are never waited on. */
#ifndef DEBCM_FILE_MAP_H
#define DEBCM_FILE_MAP_H

#include <stddef.h>

typedef struct {
    void *base; /* NULL when not mapped */
    size_t len;
} file_map;

/* Map path read-only. expected names what should be there, for messages ("a .npy file"). populate asks the
 * kernel to fault every page in at once (for files that will be read whole). Returns -1 with a message. */
int file_map_open(file_map *m, const char *path, const char *expected, int populate);

/* Unmap; safe on a zeroed or already closed map. */
void file_map_close(file_map *m);

#endif
