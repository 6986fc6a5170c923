/* io/npz.h — reading .npz archives (a ZIP of .npy members) as NumPy writes them with np.savez and
 * np.savez_compressed: stored and deflate-compressed members, ZIP64 extra fields included, through zlib.
 * Every size and offset in the central directory is validated against the archive's size; a member's CRC-32 is
 * checked after it is inflated. Members come back as npy_file values over an owned buffer. Members whose name
 * does not end in ".npy" are skipped (np.load would hand them back as raw bytes; nothing in DebCM uses them). */
#ifndef DEBCM_NPZ_H
#define DEBCM_NPZ_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "io/npy.h"

typedef struct {
    char name[256];            /* member name without the ".npy" suffix, as np.load(...)[name] */
    uint64_t offset;           /* local header offset */
    uint64_t compressed_size, uncompressed_size;
    uint32_t crc32;
    int method;                /* 0 stored, 8 deflate */
    uint64_t data_offset;      /* where the member's stored/compressed bytes start (after its local header) */
} npz_member;

typedef struct {
    char path[PATH_MAX];       /* a longer path is refused ("path too long"), never shortened */
    const uint8_t *data;       /* the whole archive (mmap'd by npz_open, borrowed by npz_open_buffer) */
    size_t size;
    void *map_base;
    size_t map_len;
    npz_member *members;
    int count;
} npz_archive;

int npz_open(npz_archive *z, const char *path);
int npz_open_buffer(npz_archive *z, const void *buf, size_t len, const char *name);
void npz_close(npz_archive *z);

/* Index of the member called name (without ".npy"), or -1 (no message set). */
int npz_find(const npz_archive *z, const char *name);

/* Extract member i into a freshly allocated buffer and open it as a .npy; close with npy_close. The sizes are
 * bounded (max_bytes; 0 = no bound beyond what fits in memory) so a ZIP bomb is an error, not an OOM. */
int npz_read_member(const npz_archive *z, int i, npy_file *out, uint64_t max_bytes);

#endif
