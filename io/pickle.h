/* io/pickle.h — a restricted unpickler (and the matching writer) for the object arrays of the DebCM layout.
 *
 * NumPy stores an object array (train.npy, 100neg/val.npy, 100neg/test.npy) as a pickle of the ndarray. This
 * reader is a pickle virtual machine that knows only the opcodes of protocols 2–5 that such a stream needs and
 * only these globals, under both `numpy.core` and `numpy._core`:
 *   multiarray._reconstruct, multiarray.scalar, numeric._frombuffer, numpy.ndarray, numpy.dtype,
 *   _codecs.encode (how protocol 2 spells bytes; only with 'latin1') and builtins.bytes (protocol 2's b'').
 * It builds a tree of plain values: None, bool, int (int64), float (double), str, bytes, list, tuple, and
 * ndarray (numeric payloads kept as raw bytes with their dtype; object payloads as a list of values in C order).
 * NumPy scalars become int/float/bool values. Everything else — any other global, opcode, a REDUCE on anything
 * but the callables above, nesting deeper than PICKLE_MAX_DEPTH, a length field past the end of the data — is
 * refused with a one-line error. Nothing is ever executed: a hostile file is an error, never an exploit.
 * The tree is acyclic (a recursive structure is refused) but may share sub-objects that the stream shared
 * through its memo; expanded, it holds at most PICKLE_MAX_VALUES values. Strings, payloads and nodes are copies
 * in the document's arena: the input buffer may be released after pickle_load.
 *
 * The writer emits protocol-3 streams of the same shape as NumPy's own, so NumPy (allow_pickle=True) and the
 * published code can read what `debcm synth` writes. */
#ifndef DEBCM_PICKLE_H
#define DEBCM_PICKLE_H

#include <stddef.h>
#include <stdint.h>

#include "io/npy.h"

#define PICKLE_MAX_DEPTH 64          /* nested containers */
#define PICKLE_MAX_VALUES (1u << 28) /* values in one stream */

typedef enum {
    PV_NONE = 0,
    PV_BOOL,
    PV_INT,
    PV_FLOAT,
    PV_STR,     /* UTF-8 (s, n); a NUL follows the n bytes, but s may contain NULs itself */
    PV_BYTES,
    PV_LIST,
    PV_TUPLE,
    PV_NDARRAY,
    PV_KIND_COUNT
} pv_kind;

typedef struct pv pv;
struct pv {
    pv_kind kind;
    union {
        int64_t i;                       /* PV_BOOL (0/1), PV_INT */
        double f;                        /* PV_FLOAT */
        struct { const char *s; size_t n; } str;        /* PV_STR, PV_BYTES */
        struct { pv **items; size_t n; } seq;           /* PV_LIST, PV_TUPLE */
        struct {
            npy_type type;               /* NPY_OBJECT: items holds count values (C order) */
            int big_endian;              /* numeric payload stored big-endian ('>'); 0 for 1-byte types */
            int fortran_order;           /* the pickle's is_fortran, kept only for ndim 2 (else 0) */
            int ndim;                    /* 0..NPY_MAX_NDIM */
            int64_t shape[NPY_MAX_NDIM];
            int64_t count;
            const uint8_t *data;         /* numeric payload: count * npy_type_size(type) bytes, in the memory
                                            order of fortran_order and byte order of big_endian, 16-byte aligned
                                            (give it to npy_convert_f32/npy_convert_i64); NULL for NPY_OBJECT */
            pv **items;                  /* NPY_OBJECT payload in C order: NumPy pickles the elements of an
                                            object array in C order even when is_fortran is set */
        } arr;
    } u;
};

/* The result of one load: the root value and the memory that holds the tree. */
typedef struct {
    pv *root;
    void *arena; /* opaque: every node and string of the tree */
} pickle_doc;

/* Run the restricted unpickler over buf[0..len). name is used in error messages ("<name>: pickle offset 123:
 * global 'os.system' is not allowed"). On failure returns -1 and doc holds nothing to free. */
int pickle_load(pickle_doc *doc, const uint8_t *buf, size_t len, const char *name);
void pickle_free(pickle_doc *doc);

/* Name of a kind, for messages ("int", "list", "ndarray", ...). */
const char *pv_kind_name(pv_kind k);

/* Writer: a growable byte buffer holding a protocol-3 stream of one object ndarray, filled in C order. The
 * stream is the one NumPy 1.24's np.save writes for the same Python objects, byte for byte: the same opcodes,
 * MARK ... APPENDS batches of 1000, and the same memo numbering (BINPUT after every memoized object, BINGET for the
 * repeated globals, dtypes and the strs/bytes CPython shares: '', 1-character strs, 0- and 1-byte bytes). */
typedef struct {
    uint8_t *buf;
    size_t len, cap;
    int64_t total;      /* elements of the array */
    int64_t written;    /* elements written so far */
    int failed;         /* an error was seen: every later call fails */
    uint32_t memo_next; /* next memo index */
    /* memo slots of shared objects, as index + 1 (0 = not written yet) */
    uint32_t memo_reconstruct, memo_ndarray, memo_dtype_class, memo_scalar, memo_dtype_i8;
    uint32_t memo_empty_str, memo_empty_bytes;
    uint32_t memo_char[256];  /* 1-character strs U+0000..U+00FF */
    uint32_t memo_byte[256];  /* 1-byte bytes */
} pickle_writer;

/* Start an object ndarray of the given shape. */
int pickle_writer_begin(pickle_writer *w, int ndim, const int64_t *shape);
/* Elements, in C order: */
int pickle_write_np_int64(pickle_writer *w, int64_t v);                 /* numpy.int64 scalar */
int pickle_write_int(pickle_writer *w, int64_t v);                      /* Python int */
int pickle_write_float(pickle_writer *w, double v);                     /* Python float */
int pickle_write_str(pickle_writer *w, const char *s);                  /* Python str (UTF-8) */
int pickle_write_float_list(pickle_writer *w, const double *v, size_t n); /* Python list of floats */
int pickle_write_int64_ndarray(pickle_writer *w, const int64_t *v, size_t n); /* 1-d int64 ndarray */
/* Close the array; on success buf/len hold the stream (free with pickle_writer_free). */
int pickle_writer_end(pickle_writer *w);
void pickle_writer_free(pickle_writer *w);

#endif
