/* io/safetensors.h — checkpoints in the safetensors format (https://github.com/huggingface/safetensors): an 8-byte
 * little-endian header length N, N bytes of JSON naming each tensor's dtype, shape and byte range, then the raw
 * little-endian data. This sits at the end of the training pipeline (parameters, Adam state, step counters and
 * RNG state are saved here) and at the start of evaluation and resume (the models' checkpoint loaders read them
 * back and refuse, with safetensors_expect, a checkpoint whose shapes do not match the data or whose metadata
 * names another model kind). The reader memory-maps the file and validates the whole header against it before
 * handing out anything: every rule of the format is checked (see safetensors.c; the tensors must tile the data
 * area exactly: no overlap, no hole, no trailing bytes, as the reference requires), and a refusal is one line
 * naming the file, the tensor, what was expected and what was found. The writer produces the bytes the reference
 * Python library produces for the same tensors (order, padding, JSON spelling), atomically. */
#ifndef DEBCM_SAFETENSORS_H
#define DEBCM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "io/file_map.h"

#define SAFETENSORS_MAX_NDIM 8                   /* deeper tensors are refused (the reference has no limit) */
#define SAFETENSORS_MAX_HEADER ((uint64_t)100000000) /* the reference refuses longer headers too */

/* The dtypes of fixed byte size. The reference also knows sub-byte (F4, F6_*), complex (C64) and the FNUZ
 * float8 variants: those are refused as unsupported, by name. */
typedef enum {
    SAFETENSORS_ANY = -1, /* for safetensors_expect: any dtype */
    SAFETENSORS_BOOL = 0,
    SAFETENSORS_U8, SAFETENSORS_I8, SAFETENSORS_U16, SAFETENSORS_I16,
    SAFETENSORS_U32, SAFETENSORS_I32, SAFETENSORS_U64, SAFETENSORS_I64,
    SAFETENSORS_F8_E5M2, SAFETENSORS_F8_E4M3, SAFETENSORS_F8_E8M0, /* OCP float8: e5m2, e4m3fn, e8m0fnu */
    SAFETENSORS_F16, SAFETENSORS_BF16, SAFETENSORS_F32, SAFETENSORS_F64,
    SAFETENSORS_DTYPE_COUNT
} safetensors_dtype;

/* The header's spelling ("F32", "BF16", ...); "?" for a value outside the enum. */
const char *safetensors_dtype_name(safetensors_dtype d);

/* Bytes per element; 0 for a value outside the enum. */
int safetensors_dtype_size(safetensors_dtype d);

/* The dtype a header spelling names, or SAFETENSORS_ANY (-1) when it names none we support. */
safetensors_dtype safetensors_dtype_parse(const char *name);

/* 1 for the floating-point dtypes (F8_*, F16, BF16, F32, F64). */
int safetensors_dtype_is_float(safetensors_dtype d);

/* ---- reading ------------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;        /* NUL-terminated UTF-8; lives as long as the file stays open */
    safetensors_dtype dtype;
    int ndim;                /* 0..SAFETENSORS_MAX_NDIM */
    int64_t shape[SAFETENSORS_MAX_NDIM];
    int64_t numel;           /* product of shape: 1 for 0-d, 0 when a dimension is 0 */
    const uint8_t *data;     /* nbytes of little-endian elements; aligned to the element size in the files our
                              * writer (or the reference) writes, possibly unaligned in others */
    size_t nbytes;           /* numel * element size */
    uint64_t begin;          /* data_offsets[0], relative to the start of the data area */
} safetensors_tensor;

typedef struct {
    const char *key, *value; /* NUL-terminated UTF-8 */
} safetensors_meta;

typedef struct {
    char path[1024];               /* for error messages */
    safetensors_tensor *tensors;   /* count tensors sorted by name (strcmp): iterate with an index */
    size_t count;
    safetensors_meta *metadata;    /* metadata_count pairs of "__metadata__", in the order of the file */
    size_t metadata_count;
    uint64_t header_len;           /* N */
    const uint8_t *data_area;      /* the bytes after the header */
    size_t data_size;
    file_map map;                  /* the whole file (safetensors_open), or not mapped (open_buffer) */
    void *json;                    /* the parsed header (a json_t), which owns the names and metadata strings */
} safetensors_file;

/* Open a file and validate it whole; the data stay memory-mapped. -1 with a message naming the path. */
int safetensors_open(safetensors_file *f, const char *path);

/* The same over a buffer (a fuzz input, a test image). The buffer is not copied and must outlive f; name is used in
 * error messages. */
int safetensors_open_buffer(safetensors_file *f, const void *buf, size_t len, const char *name);

/* Release everything; safe on a zeroed or already closed file. */
void safetensors_close(safetensors_file *f);

/* The tensor of that name, or NULL (and a message "<path>: no tensor '<name>' ...") when there is none. */
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);

/* The metadata value of key, or NULL when absent (no message). */
const char *safetensors_metadata(const safetensors_file *f, const char *key);

/* 0 when the metadata value of key is exactly value; otherwise -1 with "<path>: metadata '<key>': expected
 * '<value>', found '<other>'" (or "... not present"). For refusing a checkpoint of another model kind. */
int safetensors_expect_metadata(const safetensors_file *f, const char *key, const char *value);

/* The tensor `name` when it exists with that dtype (SAFETENSORS_ANY: any) and shape (ndim dimensions); otherwise
 * NULL with "<path>: tensor '<name>': expected shape [128, 2048] (from <source>), found [128, 1024]" (or the
 * dtype, or "not present"). source says where the expected shape comes from ("the data"); NULL leaves it out. */
const safetensors_tensor *safetensors_expect(const safetensors_file *f, const char *name, safetensors_dtype dtype,
                                             int ndim, const int64_t *shape, const char *source);

/* The tensor's data in place as float32: when its dtype is F32 and the data are 4-byte aligned; NULL otherwise. */
const float *safetensors_f32_view(const safetensors_tensor *t);

/* Convert a tensor of f into out[t->numel] (row-major, as stored).
 * to_f32: float dtypes (F64 values beyond float32's range are refused; NaN and Inf pass through), integers and
 *   BOOL when the value is exactly representable (|v| <= 2^24).
 * to_i64: integers and BOOL (U64 above INT64_MAX refused); float dtypes are refused.
 * BOOL bytes other than 0 and 1 are refused. -1 with a message naming the file, the tensor and the element. */
int safetensors_to_f32(const safetensors_file *f, const safetensors_tensor *t, float *out);
int safetensors_to_i64(const safetensors_file *f, const safetensors_tensor *t, int64_t *out);

/* What a checkpoint loader calls per parameter: safetensors_expect (any float dtype) + safetensors_to_f32, and
 * safetensors_expect (any integer dtype or BOOL) + safetensors_to_i64. */
int safetensors_read_f32(const safetensors_file *f, const char *name, int ndim, const int64_t *shape,
                         const char *source, float *out);
int safetensors_read_i64(const safetensors_file *f, const char *name, int ndim, const int64_t *shape,
                         const char *source, int64_t *out);

/* ---- writing ------------------------------------------------------------------------------------------------- */

typedef struct safetensors_entry safetensors_entry; /* private to safetensors.c */

typedef struct {
    safetensors_entry *entries;
    size_t count, cap;
    safetensors_meta *metadata; /* owned copies, in the order they were first set */
    size_t metadata_count, metadata_cap;
} safetensors_writer;

void safetensors_writer_init(safetensors_writer *w);

/* Free the copies of names and metadata; safe on an initialised or already freed writer. */
void safetensors_writer_free(safetensors_writer *w);

/* Add a tensor. The name is copied; the data (numel elements of dtype in native = little-endian order, row-major)
 * are not: they must stay valid until safetensors_write. Names must be unique, valid UTF-8 without NUL and other
 * than "__metadata__"; ndim 0..SAFETENSORS_MAX_NDIM, dimensions >= 0; data may be NULL only when numel is 0. */
int safetensors_writer_add(safetensors_writer *w, const char *name, safetensors_dtype dtype, int ndim,
                           const int64_t *shape, const void *data);

/* Set a metadata string (replacing an earlier value of the same key). Both are copied. */
int safetensors_writer_set_metadata(safetensors_writer *w, const char *key, const char *value);

/* Write the file: tensors ordered as the reference orders them (by dtype, widest first, then by name), so that
 * every tensor's data are aligned to its element size; the JSON header padded with spaces to a multiple of 8.
 * Atomic, through io/atomic_file.h: written to path.tmp.<pid> in the same directory, fsync'd, renamed over path,
 * and the directory fsync'd; on any failure the temporary file is removed and a previous file at path is left as
 * it was. */
int safetensors_write(const safetensors_writer *w, const char *path);

/* ---- the content checksum -----------------------------------------------------------------------------------------
 * A CRC-32 (zlib) of what a file means rather than of its bytes: every tensor in name order (its name, dtype,
 * shape and data) and every metadata pair in key order except SAFETENSORS_CHECKSUM_KEY itself, whose value is
 * "crc32:xxxxxxxx". A flipped bit anywhere in a tensor's data, name, shape or offsets, or in a metadata value,
 * changes it (or breaks the format, which the reader refuses first); a file rewritten by another safetensors
 * writer with the same tensors and metadata keeps it. debcm writes it into every checkpoint. */
#define SAFETENSORS_CHECKSUM_KEY "checksum"

/* Compute the checksum of the writer's tensors (their data must be valid now) and metadata and set it. */
int safetensors_writer_set_checksum(safetensors_writer *w);

/* Verify a file's checksum. 0 when it matches; also 0 when the file has none and required is 0 (a file from
 * another writer). Otherwise −1 with "<path>: checksum mismatch: the file is damaged (recorded …, computed …)"
 * or "<path>: no checksum in its metadata". */
int safetensors_verify_checksum(const safetensors_file *f, int required);

/* ---- internals exposed for tests ------------------------------------------------------------------------------ */

/* One-line, printable rendering of an arbitrary name for messages: control and non-UTF-8 bytes as \xNN, cut with
 * "..." beyond max_chars. Returns out. */
char *safetensors_quote(char *out, size_t cap, const char *s, size_t max_chars);

#endif
