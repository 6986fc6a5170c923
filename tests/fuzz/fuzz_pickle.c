/* tests/fuzz/fuzz_pickle.c — libFuzzer target for the restricted unpickler (io/pickle.c) and, through it, the
 * writer (io/pickle_write.c). A refused input must leave a one-line message naming the input and the offset; an
 * accepted one must be a tree whose every node keeps the promises of io/pickle.h (kinds, lengths, payload sizes,
 * depth), which is walked and read to the last byte so ASan sees any overrun; when the root is an object array
 * of elements the writer can express, it is written again and read back, and must come back the same. The same
 * function replays tests/fuzz/corpus/pickle inside tests/test_pickle.c, so the seeds and every former crash stay
 * regression tests in the ordinary build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/pickle.h"

#define FUZZ_PICKLE_MAX_VISITS 200000 /* a tree may expand to 2^28 values: walk only this much of it */

static int fuzz_pickle_size(npy_type t)
{
    static const int s[] = {1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 8};
    return (unsigned)t < NPY_TYPE_COUNT ? s[t] : 0;
}

static unsigned fuzz_pickle_sink;

/* the promises of io/pickle.h, checked at every node; aborts on a broken one */
static void fuzz_pickle_walk(const pv *v, int depth, long *visits)
{
    if (!v || depth > PICKLE_MAX_DEPTH)
        abort();
    if (++*visits > FUZZ_PICKLE_MAX_VISITS)
        return;
    switch (v->kind) {
    case PV_NONE:
    case PV_INT:
    case PV_FLOAT: break;
    case PV_BOOL:
        if (v->u.i != 0 && v->u.i != 1)
            abort();
        break;
    case PV_STR:
    case PV_BYTES:
        if (!v->u.str.s || v->u.str.s[v->u.str.n] != '\0')
            abort();
        for (size_t i = 0; i < v->u.str.n; i++)
            fuzz_pickle_sink += (unsigned char)v->u.str.s[i];
        break;
    case PV_LIST:
    case PV_TUPLE:
        if (v->u.seq.n && !v->u.seq.items)
            abort();
        for (size_t i = 0; i < v->u.seq.n; i++)
            fuzz_pickle_walk(v->u.seq.items[i], depth + 1, visits);
        break;
    case PV_NDARRAY: {
        int64_t c = 1;
        if (v->u.arr.ndim < 0 || v->u.arr.ndim > NPY_MAX_NDIM)
            abort();
        for (int d = 0; d < v->u.arr.ndim; d++) {
            if (v->u.arr.shape[d] < 0)
                abort();
            c *= v->u.arr.shape[d];
        }
        if (c != v->u.arr.count || (v->u.arr.fortran_order && v->u.arr.ndim != 2))
            abort();
        if (v->u.arr.type == NPY_OBJECT) {
            if (c && !v->u.arr.items)
                abort();
            for (int64_t i = 0; i < c; i++)
                fuzz_pickle_walk(v->u.arr.items[i], depth + 1, visits);
        } else {
            int size = fuzz_pickle_size(v->u.arr.type);
            if (!size || !v->u.arr.data || (v->u.arr.big_endian && size == 1))
                abort();
            for (int64_t i = 0; i < c * size; i++)
                fuzz_pickle_sink += v->u.arr.data[i];
            *visits += (long)(c * size / 64); /* a shared payload costs its size at each occurrence */
        }
        break;
    }
    default: abort();
    }
}

static int fuzz_pickle_equal(const pv *a, const pv *b, int depth)
{
    if (a->kind != b->kind || depth > PICKLE_MAX_DEPTH)
        return 0;
    switch (a->kind) {
    case PV_INT: return a->u.i == b->u.i;
    case PV_FLOAT: return !memcmp(&a->u.f, &b->u.f, sizeof a->u.f);
    case PV_STR: return a->u.str.n == b->u.str.n && !memcmp(a->u.str.s, b->u.str.s, a->u.str.n);
    case PV_LIST:
        if (a->u.seq.n != b->u.seq.n)
            return 0;
        for (size_t i = 0; i < a->u.seq.n; i++)
            if (!fuzz_pickle_equal(a->u.seq.items[i], b->u.seq.items[i], depth + 1))
                return 0;
        return 1;
    case PV_NDARRAY:
        if (a->u.arr.type != b->u.arr.type || a->u.arr.count != b->u.arr.count || a->u.arr.ndim != b->u.arr.ndim)
            return 0;
        if (a->u.arr.type == NPY_OBJECT) {
            for (int64_t i = 0; i < a->u.arr.count; i++)
                if (!fuzz_pickle_equal(a->u.arr.items[i], b->u.arr.items[i], depth + 1))
                    return 0;
            return 1;
        }
        return !memcmp(a->u.arr.data, b->u.arr.data, (size_t)a->u.arr.count * 8);
    default: return 0;
    }
}

/* an element the writer can write: int, float, str without NUL, list of floats, 1-d little-endian int64 array */
static int fuzz_pickle_writable(const pv *e)
{
    switch (e->kind) {
    case PV_INT:
    case PV_FLOAT: return 1;
    case PV_STR: return strlen(e->u.str.s) == e->u.str.n;
    case PV_LIST:
        for (size_t i = 0; i < e->u.seq.n; i++)
            if (e->u.seq.items[i]->kind != PV_FLOAT)
                return 0;
        return e->u.seq.n <= 4096;
    case PV_NDARRAY:
        return e->u.arr.type == NPY_INT64 && e->u.arr.ndim == 1 && !e->u.arr.big_endian && e->u.arr.count <= 4096;
    default: return 0;
    }
}

static void fuzz_pickle_rewrite(const pv *root)
{
    if (root->kind != PV_NDARRAY || root->u.arr.type != NPY_OBJECT || root->u.arr.count > 4096)
        return;
    for (int64_t i = 0; i < root->u.arr.count; i++)
        if (!fuzz_pickle_writable(root->u.arr.items[i]))
            return;
    pickle_writer w;
    int rc = pickle_writer_begin(&w, root->u.arr.ndim, root->u.arr.shape);
    for (int64_t i = 0; rc == 0 && i < root->u.arr.count; i++) {
        const pv *e = root->u.arr.items[i];
        if (e->kind == PV_INT) {
            rc = pickle_write_int(&w, e->u.i);
        } else if (e->kind == PV_FLOAT) {
            rc = pickle_write_float(&w, e->u.f);
        } else if (e->kind == PV_STR) {
            rc = pickle_write_str(&w, e->u.str.s);
        } else if (e->kind == PV_LIST) {
            double v[4096];
            for (size_t k = 0; k < e->u.seq.n; k++)
                v[k] = e->u.seq.items[k]->u.f;
            rc = pickle_write_float_list(&w, v, e->u.seq.n);
        } else {
            int64_t v[4096];
            memcpy(v, e->u.arr.data, (size_t)e->u.arr.count * 8);
            rc = pickle_write_int64_ndarray(&w, v, (size_t)e->u.arr.count);
        }
    }
    if (rc == 0)
        rc = pickle_writer_end(&w);
    if (rc != 0)
        abort(); /* everything was in range: the writer must not fail */
    pickle_doc d;
    if (pickle_load(&d, w.buf, w.len, "rewritten") != 0 || !fuzz_pickle_equal(root, d.root, 0))
        abort();
    pickle_free(&d);
    pickle_writer_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pickle_doc doc;
    debcm_error_clear();
    if (pickle_load(&doc, data, size, "fuzz.pkl") != 0) {
        const char *e = debcm_last_error();
        if (strncmp(e, "fuzz.pkl: pickle offset ", 24) != 0 || strchr(e, '\n') || doc.root || doc.arena)
            abort();
        return 0;
    }
    long visits = 0;
    fuzz_pickle_walk(doc.root, 1, &visits);
    fuzz_pickle_rewrite(doc.root);
    pickle_free(&doc);
    return 0;
}
