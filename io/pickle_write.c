/* io/pickle_write.c — the writer half of io/pickle.h: protocol-3 pickle streams of one object ndarray, as
 * `debcm synth` needs them for data_matching/train.npy and 100neg/{val,test}.npy (SPEC §1; npy_write_object puts
 * the '|O' header in front). The stream mimics what NumPy 1.24's np.save emits through CPython's pickler for the
 * same Python objects, byte for byte: _reconstruct/BUILD for the array, numpy.dtype REDUCE/BUILD for its dtype,
 * the elements in C order in APPENDS batches of 1000 (as the C pickler cuts lists), BINPUT after every object the
 * pickler memoizes, and BINGET where CPython hands it an object it has already seen — the globals, the
 * dtype singletons, b'b', and the strs and bytes that CPython caches ('', 1-character strs below U+0100, 0- and
 * 1-byte bytes). So the published code and NumPy read what we write, and a file written here can be compared
 * with NumPy's own. Elements: numpy.int64 scalars, Python ints and floats, strs, lists of floats and 1-d int64
 * ndarrays. Names and opcodes follow CPython's Lib/pickle.py (save_long, save_bytes, save_str, save_reduce). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/pickle.h"

#define BATCH 1000 /* pickle._BATCHSIZE: items per MARK ... APPENDS */

static int w_fail(pickle_writer *w, const char *msg)
{
    w->failed = 1;
    return debcm_fail("pickle writer: %s", msg);
}

static void put(pickle_writer *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    if (n > w->cap - w->len) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap - w->len < n) {
            if (cap > SIZE_MAX / 2) {
                w_fail(w, "stream too large");
                return;
            }
            cap *= 2;
        }
        uint8_t *b = realloc(w->buf, cap);
        if (!b) {
            w_fail(w, "out of memory");
            return;
        }
        w->buf = b;
        w->cap = cap;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put1(pickle_writer *w, uint8_t c) { put(w, &c, 1); }

static void put_le(pickle_writer *w, uint64_t v, int n)
{
    uint8_t b[8];
    for (int i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    put(w, b, (size_t)n);
}

/* BINPUT/LONG_BINPUT with the next memo index; returns that index + 1 (the form the memo_* slots keep). */
static uint32_t memoize(pickle_writer *w)
{
    uint32_t idx = w->memo_next++;
    if (idx < 256) {
        put1(w, 'q');
        put1(w, (uint8_t)idx);
    } else {
        put1(w, 'r');
        put_le(w, idx, 4);
    }
    return idx + 1;
}

static void get(pickle_writer *w, uint32_t slot)
{
    uint32_t idx = slot - 1;
    if (idx < 256) {
        put1(w, 'h');
        put1(w, (uint8_t)idx);
    } else {
        put1(w, 'j');
        put_le(w, idx, 4);
    }
}

/* save_long: BININT1 / BININT2 / BININT, else LONG1 with the shortest two's complement */
static void emit_int(pickle_writer *w, int64_t v)
{
    if (v >= 0 && v <= 0xff) {
        put1(w, 'K');
        put1(w, (uint8_t)v);
    } else if (v >= 0 && v <= 0xffff) {
        put1(w, 'M');
        put_le(w, (uint64_t)v, 2);
    } else if (v >= -0x80000000LL && v <= 0x7fffffffLL) {
        put1(w, 'J');
        put_le(w, (uint64_t)v, 4);
    } else {
        uint64_t u = (uint64_t)v;
        int n = 8; /* drop bytes that only repeat the sign, as encode_long does */
        while (n > 1) {
            uint8_t hi = (uint8_t)(u >> (8 * (n - 1))), next = (uint8_t)(u >> (8 * (n - 2)));
            if ((hi == 0x00 && !(next & 0x80)) || (hi == 0xff && (next & 0x80)))
                n--;
            else
                break;
        }
        put1(w, 0x8a);
        put1(w, (uint8_t)n);
        put_le(w, u, n);
    }
}

static void emit_float(pickle_writer *w, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    uint8_t b[9];
    b[0] = 'G';
    for (int i = 0; i < 8; i++)
        b[1 + i] = (uint8_t)(u >> (56 - 8 * i)); /* big-endian */
    put(w, b, sizeof b);
}

/* save_str (protocol 3): BINUNICODE, memoized; CPython's cached strs come back as BINGET. s is UTF-8. */
static void emit_str(pickle_writer *w, const char *s, size_t n)
{
    const uint8_t *u = (const uint8_t *)s;
    uint32_t *slot = NULL;
    if (n == 0)
        slot = &w->memo_empty_str;
    else if (n == 1 && u[0] < 0x80)
        slot = &w->memo_char[u[0]];
    else if (n == 2 && (u[0] == 0xC2 || u[0] == 0xC3) && (u[1] & 0xC0) == 0x80)
        slot = &w->memo_char[((u[0] & 0x1F) << 6) | (u[1] & 0x3F)];
    if (slot && *slot) {
        get(w, *slot);
        return;
    }
    if (n > 0xffffffffu) {
        w_fail(w, "str longer than 4 GiB (protocol 3 cannot hold it)");
        return;
    }
    put1(w, 'X');
    put_le(w, n, 4);
    put(w, s, n);
    uint32_t m = memoize(w);
    if (slot)
        *slot = m;
}

/* save_bytes (protocol 3): SHORT_BINBYTES / BINBYTES, memoized; 0- and 1-byte bytes are shared by CPython */
static void emit_bytes(pickle_writer *w, const uint8_t *p, size_t n)
{
    uint32_t *slot = n == 0 ? &w->memo_empty_bytes : n == 1 ? &w->memo_byte[p[0]] : NULL;
    if (slot && *slot) {
        get(w, *slot);
        return;
    }
    if (n <= 0xff) {
        put1(w, 'C');
        put1(w, (uint8_t)n);
    } else if (n <= 0xffffffffu) {
        put1(w, 'B');
        put_le(w, n, 4);
    } else {
        w_fail(w, "bytes longer than 4 GiB (protocol 3 cannot hold them)");
        return;
    }
    put(w, p, n);
    uint32_t m = memoize(w);
    if (slot)
        *slot = m;
}

/* GLOBAL 'module name', memoized, or BINGET when already written */
static void emit_global(pickle_writer *w, uint32_t *slot, const char *module, const char *name)
{
    if (*slot) {
        get(w, *slot);
        return;
    }
    put1(w, 'c');
    put(w, module, strlen(module));
    put1(w, '\n');
    put(w, name, strlen(name));
    put1(w, '\n');
    *slot = memoize(w);
}

/* A dtype as arraydescr_reduce gives it: numpy.dtype REDUCE (str, False, True), memoized, then BUILD with
 * (3, byteorder, None, None, None, -1, -1, flags). descr is "i8" or "O8"; the object dtype is written once per
 * stream (the array's own), int64 is a singleton shared by every scalar and element array. */
static void emit_dtype(pickle_writer *w, uint32_t *slot, const char *descr, char byteorder, int flags)
{
    if (slot && *slot) {
        get(w, *slot);
        return;
    }
    emit_global(w, &w->memo_dtype_class, "numpy", "dtype");
    emit_str(w, descr, strlen(descr));
    put1(w, 0x89); /* NEWFALSE */
    put1(w, 0x88); /* NEWTRUE */
    put1(w, 0x87); /* TUPLE3 */
    memoize(w);
    put1(w, 'R');
    uint32_t m = memoize(w);
    if (slot)
        *slot = m;
    put1(w, '(');
    emit_int(w, 3);
    emit_str(w, &byteorder, 1);
    put(w, "NNN", 3);
    emit_int(w, -1);
    emit_int(w, -1);
    emit_int(w, flags);
    put1(w, 't');
    memoize(w);
    put1(w, 'b');
}

/* _reconstruct(numpy.ndarray, (0,), b'b'), memoized: the head of every ndarray */
static void emit_ndarray_head(pickle_writer *w)
{
    emit_global(w, &w->memo_reconstruct, "numpy.core.multiarray", "_reconstruct");
    emit_global(w, &w->memo_ndarray, "numpy", "ndarray");
    emit_int(w, 0);
    put1(w, 0x85); /* TUPLE1 */
    memoize(w);
    emit_bytes(w, (const uint8_t *)"b", 1);
    put1(w, 0x87); /* TUPLE3 */
    memoize(w);
    put1(w, 'R');
    memoize(w);
}

/* save_tuple of ints: () is EMPTY_TUPLE and not memoized; up to 3 items TUPLEn; more MARK ... TUPLE */
static void emit_shape(pickle_writer *w, int ndim, const int64_t *shape)
{
    if (ndim == 0) {
        put1(w, ')');
        return;
    }
    if (ndim > 3)
        put1(w, '(');
    for (int i = 0; i < ndim; i++)
        emit_int(w, shape[i]);
    put1(w, ndim > 3 ? 't' : (uint8_t)(0x84 + ndim));
    memoize(w);
}

/* The items of an already memoized list, as CPython's C pickler writes an exact list (batch_list_exact in
 * Modules/_pickle.c, which differs from Lib/pickle.py here): a list of one item is that item and APPEND; any
 * other is cut into batches of 1000, each MARK ... APPENDS — a last batch of one item included. */
static void emit_float_items(pickle_writer *w, const double *v, size_t n)
{
    if (n == 1) {
        emit_float(w, v[0]);
        put1(w, 'a');
        return;
    }
    for (size_t start = 0; start < n; start += BATCH) {
        size_t k = n - start < BATCH ? n - start : BATCH;
        put1(w, '(');
        for (size_t i = 0; i < k; i++)
            emit_float(w, v[start + i]);
        put1(w, 'e');
    }
}

/* The outer array's elements are batched in the same way, across calls. */
static int elem_begin(pickle_writer *w)
{
    if (w->failed)
        return -1;
    if (w->written >= w->total)
        return w_fail(w, "more elements than the array's shape holds");
    if (w->written % BATCH == 0 && w->total > 1)
        put1(w, '(');
    return 0;
}

static int elem_end(pickle_writer *w)
{
    w->written++;
    if (w->total == 1)
        put1(w, 'a');
    else if (w->written % BATCH == 0 || w->written == w->total)
        put1(w, 'e');
    return w->failed ? -1 : 0;
}

int pickle_writer_begin(pickle_writer *w, int ndim, const int64_t *shape)
{
    memset(w, 0, sizeof *w);
    if (ndim < 0 || ndim > NPY_MAX_NDIM)
        return w_fail(w, "object arrays of 0 to 2 dimensions only");
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return w_fail(w, "negative dimension");
        if (shape[i] && count > INT64_MAX / shape[i])
            return w_fail(w, "shape overflows int64");
        count *= shape[i];
    }
    w->total = count;
    put1(w, 0x80); /* PROTO 3 */
    put1(w, 3);
    emit_ndarray_head(w);
    put1(w, '('); /* state: (1, shape, dtype('O'), False, [items]) */
    emit_int(w, 1);
    emit_shape(w, ndim, shape);
    emit_dtype(w, NULL, "O8", '|', 63);
    put1(w, 0x89); /* NEWFALSE: C order */
    put1(w, ']');
    memoize(w);
    return w->failed ? -1 : 0;
}

int pickle_write_np_int64(pickle_writer *w, int64_t v)
{
    if (elem_begin(w))
        return -1;
    /* numpy.int64 → scalar(dtype('int64'), 8 little-endian bytes) */
    emit_global(w, &w->memo_scalar, "numpy.core.multiarray", "scalar");
    emit_dtype(w, &w->memo_dtype_i8, "i8", '<', 0);
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)v >> (8 * i));
    emit_bytes(w, b, 8);
    put1(w, 0x86); /* TUPLE2 */
    memoize(w);
    put1(w, 'R');
    memoize(w);
    return elem_end(w);
}

int pickle_write_int(pickle_writer *w, int64_t v)
{
    if (elem_begin(w))
        return -1;
    emit_int(w, v);
    return elem_end(w);
}

int pickle_write_float(pickle_writer *w, double v)
{
    if (elem_begin(w))
        return -1;
    emit_float(w, v);
    return elem_end(w);
}

int pickle_write_str(pickle_writer *w, const char *s)
{
    if (elem_begin(w))
        return -1;
    emit_str(w, s, strlen(s));
    return elem_end(w);
}

int pickle_write_float_list(pickle_writer *w, const double *v, size_t n)
{
    if (elem_begin(w))
        return -1;
    put1(w, ']');
    memoize(w);
    emit_float_items(w, v, n);
    return elem_end(w);
}

int pickle_write_int64_ndarray(pickle_writer *w, const int64_t *v, size_t n)
{
    if (elem_begin(w))
        return -1;
    if (n > SIZE_MAX / 8 || n > (size_t)INT64_MAX)
        return w_fail(w, "ndarray too large");
    emit_ndarray_head(w);
    put1(w, '('); /* state: (1, (n,), dtype('int64'), False, bytes) */
    emit_int(w, 1);
    int64_t shape = (int64_t)n;
    emit_shape(w, 1, &shape);
    emit_dtype(w, &w->memo_dtype_i8, "i8", '<', 0);
    put1(w, 0x89); /* NEWFALSE */
    uint8_t *b = malloc(n ? n * 8 : 1);
    if (!b)
        return w_fail(w, "out of memory");
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < 8; j++)
            b[8 * i + (size_t)j] = (uint8_t)((uint64_t)v[i] >> (8 * j));
    emit_bytes(w, b, n * 8);
    free(b);
    put1(w, 't');
    memoize(w);
    put1(w, 'b');
    return elem_end(w);
}

int pickle_writer_end(pickle_writer *w)
{
    if (w->failed)
        return -1;
    if (w->written != w->total) {
        char msg[128];
        snprintf(msg, sizeof msg, "%lld of %lld elements written", (long long)w->written, (long long)w->total);
        return w_fail(w, msg);
    }
    put1(w, 't');
    memoize(w);
    put1(w, 'b');
    put1(w, '.');
    return w->failed ? -1 : 0;
}

void pickle_writer_free(pickle_writer *w)
{
    if (!w)
        return;
    free(w->buf);
    memset(w, 0, sizeof *w);
}
