/* io/npy.h — reading and writing NumPy .npy files (format versions 1.0, 2.0, 3.0).
 *
 * This is the bottom of the data path: every file of the published DebCM layout is a .npy (SPEC §1). A file is
 * opened once; its header is parsed and validated against the file size (truncated files, inconsistent or
 * absurd headers are errors that name the file), and its payload is memory-mapped, not copied. Numeric payloads
 * are then either used in place (npy_f32_view: little-endian float32 in C order, the common case for large
 * feature matrices) or converted into a caller's buffer as float32 or int64; conversions that would lose
 * information (a non-integral float used as an id, an integer too large for int64) are refused. Object arrays
 * (dtype 'O', a pickle stream) are handed to io/pickle.h. The writer produces files NumPy reads, atomically
 * (temporary file, fsync, rename). */
#ifndef DEBCM_NPY_H
#define DEBCM_NPY_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_NDIM 2           /* 0-d, 1-d and 2-d arrays: all the DebCM layout uses */
#define NPY_MAX_HEADER_LEN 65536 /* NumPy itself refuses headers longer than this by default */
/* Longest name of an npy_file: a path (PATH_MAX, NUL included) or an .npz member's "ARCHIVE[MEMBER.npy]", which
 * adds the member name (io/npz.h: at most 255 bytes) and 6 bytes of brackets and suffix. Longer is an error,
 * never a silently shortened name. */
#define NPY_NAME_MAX (PATH_MAX + 264)

typedef enum {
    NPY_BOOL = 0,
    NPY_INT8, NPY_INT16, NPY_INT32, NPY_INT64,
    NPY_UINT8, NPY_UINT16, NPY_UINT32, NPY_UINT64,
    NPY_FLOAT16, NPY_FLOAT32, NPY_FLOAT64,
    NPY_OBJECT, /* '|O': payload is a pickle stream (io/pickle.h) */
    NPY_TYPE_COUNT
} npy_type;

typedef struct {
    int version_major, version_minor; /* 1.0, 2.0 or 3.0 */
    npy_type type;
    int elem_size;          /* bytes per element (8 for OBJECT, as NumPy reports it) */
    int big_endian;         /* 1 when the descr says '>' (and elem_size > 1) */
    int fortran_order;
    int ndim;               /* 0..NPY_MAX_NDIM */
    int64_t shape[NPY_MAX_NDIM];
    int64_t count;          /* product of shape (1 for 0-d) */
    size_t data_offset;     /* where the payload starts in the file */
} npy_header;

typedef struct {
    char path[NPY_NAME_MAX]; /* the path, or the name given to npy_open_buffer: for error messages */
    npy_header h;
    const uint8_t *data;    /* payload: count*elem_size bytes (or the pickle stream for OBJECT) */
    size_t data_size;       /* bytes available from data to the end of the file/buffer */
    void *map_base;         /* mmap of the whole file, or NULL */
    size_t map_len;
    uint8_t *owned;         /* malloc'd copy (npy_open_buffer with copy), or NULL */
} npy_file;

/* Open and validate a file; the payload is memory-mapped. On error returns -1 with a message naming the path
 * (a path of PATH_MAX bytes or more: "path too long"). */
int npy_open(npy_file *f, const char *path);

/* The same over a buffer in memory (an .npz member, a fuzz input). The buffer is not copied and must outlive f;
 * name is used in error messages. */
int npy_open_buffer(npy_file *f, const void *buf, size_t len, const char *name);

/* Release the mapping/copy. Safe on a zeroed or already closed npy_file. */
void npy_close(npy_file *f);

/* Parse a header from the start of buf (len bytes). Exposed for tests and fuzzing. */
int npy_parse_header(npy_header *h, const uint8_t *buf, size_t len, const char *name);

/* Human-readable dtype name ("float32", "int64", "object", ...). */
const char *npy_type_name(npy_type t);

/* Pointer to the payload as float32 when it can be used in place: little-endian float32, C order (or ndim < 2),
 * 4-byte aligned. NULL otherwise (then use npy_to_f32). */
const float *npy_f32_view(const npy_file *f);

/* Convert the whole payload into out[count] in C (row-major) order.
 * npy_to_f32: any numeric or bool type; float64 values outside float32's range are an error (NaN/Inf pass
 *   through: the dataset layer reports them with their row and column).
 * npy_to_i64: integer and bool types; floats only when every value is integral and in range. */
int npy_to_f32(const npy_file *f, float *out);
int npy_to_i64(const npy_file *f, int64_t *out);

/* The same conversions for a raw payload described by (type, big_endian, fortran, ndim, shape): used for
 * numeric ndarrays found inside pickles. name is for error messages. */
int npy_convert_f32(float *out, const uint8_t *data, npy_type type, int big_endian, int fortran_order, int ndim,
                    const int64_t *shape, const char *name);
int npy_convert_i64(int64_t *out, const uint8_t *data, npy_type type, int big_endian, int fortran_order,
                    int ndim, const int64_t *shape, const char *name);

/* Size in bytes of one element of a type (OBJECT: 8). */
int npy_type_size(npy_type t);

/* Write a numeric array. data holds count elements of `type` in native byte order, C order; the file is
 * written with the requested byte order, memory order and format version (1, 2 or 3; 0 = the smallest that
 * fits, as NumPy does). Atomic (io/atomic_file.h): written to path.tmp.<pid>, fsync'd, renamed; on failure or
 * SIGINT/SIGTERM/SIGHUP (once atomic_file_install_signal_cleanup ran) the temporary file is removed and a previous
 * file at path is left as it was. */
typedef struct {
    int version;       /* 0 (auto), 1, 2 or 3 */
    int big_endian;    /* write '>' */
    int fortran_order; /* write the payload in Fortran order (data is still given in C order) */
} npy_write_options;

int npy_write(const char *path, npy_type type, int ndim, const int64_t *shape, const void *data,
              const npy_write_options *opt);

/* Write an object array: header with descr '|O' and the given shape, followed by the pickle stream. Atomic. */
int npy_write_object(const char *path, int ndim, const int64_t *shape, const void *pickle, size_t pickle_len,
                     const npy_write_options *opt);

#endif
