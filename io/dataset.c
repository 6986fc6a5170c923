/* io/dataset.c — loads and validates the two directories of the published DebCM layout (io/dataset.h).
 *
 * Files are opened through io/npy.c; object arrays (data_matching/train.npy, 100neg/{val,test}.npy, and PGC pairs when
 * saved as objects) go through the restricted unpickler of io/pickle.c, and the resulting value trees are read
 * row by row with the small accessors below, which accept the encodings NumPy produces (np.int64 scalars or
 * Python ints for ids, str literals or lists for genres, lists or ndarrays for priors and negatives). Each check
 * records a problem naming the file, row and field; a repeated problem is reported once with its row count.
 * Later checks that depend on a file that failed to load are skipped rather than reported twice. */
#include "io/dataset.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/error.h"
#include "io/pickle.h"

#define PROBLEMS_MAX_KEPT 200 /* messages kept; the counts go on */
#define PRIOR_SUM_TOLERANCE 1e-3
#define DATASET_PATH_MAX (PATH_MAX + DATASET_FILE_NAME_MAX) /* a directory (checked < PATH_MAX) + a file name */

/* ---- problems ------------------------------------------------------------------------------------------- */

static void problems_vadd(problem_list *p, problem_severity sev, const char *fmt, va_list ap) DEBCM_PRINTF(3, 0);
static void problems_vadd(problem_list *p, problem_severity sev, const char *fmt, va_list ap)
{
    if (sev == PROBLEM_ERROR)
        p->errors++;
    else
        p->warnings++;
    if (p->count >= PROBLEMS_MAX_KEPT) {
        p->unlisted++;
        return;
    }
    if (p->count == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        dataset_problem *items = realloc(p->items, (size_t)cap * sizeof *items);
        if (!items)
            return; /* the count above still makes the load fail */
        p->items = items;
        p->cap = cap;
    }
    char *msg = malloc(DEBCM_ERROR_MAX);
    if (!msg)
        return;
    vsnprintf(msg, DEBCM_ERROR_MAX, fmt, ap);
    p->items[p->count].severity = sev;
    p->items[p->count].message = msg;
    p->count++;
}

static void problems_add(problem_list *p, problem_severity sev, const char *fmt, ...) DEBCM_PRINTF(3, 4);
static void problems_add(problem_list *p, problem_severity sev, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problems_vadd(p, sev, fmt, ap);
    va_end(ap);
}

/* The error recorded by a lower layer (npy, pickle) becomes a problem of the dataset. */
static void problems_add_last_error(problem_list *p) { problems_add(p, PROBLEM_ERROR, "%s", debcm_last_error()); }

/* A check that may fail on many rows: the first failure is reported in full, the rest are counted, and
 * row_check_finish appends "(N rows in all)" to that first message. */
typedef struct {
    int64_t count;
    int index; /* index of the first message in the problem list, -1 when not kept */
} row_check;

static void row_check_hit(problem_list *p, row_check *rc, problem_severity sev, const char *fmt, ...)
    DEBCM_PRINTF(4, 5);
static void row_check_hit(problem_list *p, row_check *rc, problem_severity sev, const char *fmt, ...)
{
    if (rc->count++ > 0)
        return;
    int before = p->count;
    va_list ap;
    va_start(ap, fmt);
    problems_vadd(p, sev, fmt, ap);
    va_end(ap);
    rc->index = p->count > before ? before : -1;
}

static void row_check_finish(problem_list *p, const row_check *rc, problem_severity sev)
{
    if (rc->count <= 1)
        return;
    if (sev == PROBLEM_ERROR)
        p->errors += (int)(rc->count - 1 > 1000000 ? 1000000 : rc->count - 1);
    else
        p->warnings += (int)(rc->count - 1 > 1000000 ? 1000000 : rc->count - 1);
    if (rc->index < 0)
        return;
    char *msg = p->items[rc->index].message;
    size_t len = strlen(msg);
    snprintf(msg + len, DEBCM_ERROR_MAX - len, " (%lld rows in all)", (long long)rc->count);
}

/* ---- describing values for messages --------------------------------------------------------------------- */

static void describe_text(char *out, size_t n, const char *s, size_t len)
{
    size_t o = 0;
    out[o++] = '\'';
    for (size_t i = 0; i < len && o + 6 < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (i >= 40) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c >= 32 && c < 127 && c != '\'' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, n - o, "\\x%02x", c);
    }
    if (o + 2 <= n) {
        out[o++] = '\'';
    }
    out[o < n ? o : n - 1] = '\0';
}

static const char *describe_value(char *buf, size_t n, const pv *v)
{
    char text[64];
    if (!v) {
        snprintf(buf, n, "nothing");
        return buf;
    }
    switch (v->kind) {
    case PV_NONE: snprintf(buf, n, "None"); break;
    case PV_BOOL: snprintf(buf, n, "bool %s", v->u.i ? "True" : "False"); break;
    case PV_INT: snprintf(buf, n, "int %lld", (long long)v->u.i); break;
    case PV_FLOAT: snprintf(buf, n, "float %.9g", v->u.f); break;
    case PV_STR:
        describe_text(text, sizeof text, v->u.str.s, v->u.str.n);
        snprintf(buf, n, "str %s", text);
        break;
    case PV_BYTES: snprintf(buf, n, "bytes of length %zu", v->u.str.n); break;
    case PV_LIST: snprintf(buf, n, "list of %zu items", v->u.seq.n); break;
    case PV_TUPLE: snprintf(buf, n, "tuple of %zu items", v->u.seq.n); break;
    case PV_NDARRAY:
        if (v->u.arr.ndim == 0)
            snprintf(buf, n, "0-d ndarray of %s", npy_type_name(v->u.arr.type));
        else if (v->u.arr.ndim == 1)
            snprintf(buf, n, "ndarray of %s, shape (%lld,)", npy_type_name(v->u.arr.type),
                     (long long)v->u.arr.shape[0]);
        else
            snprintf(buf, n, "ndarray of %s, shape (%lld, %lld)", npy_type_name(v->u.arr.type),
                     (long long)v->u.arr.shape[0], (long long)v->u.arr.shape[1]);
        break;
    default: snprintf(buf, n, "a value of unknown kind"); break;
    }
    return buf;
}

/* ---- reading numbers out of value trees ----------------------------------------------------------------- */

static int is_numeric_type(npy_type t) { return t != NPY_OBJECT && t < NPY_TYPE_COUNT; }

/* An id: a Python or NumPy integer (or a 0-d integer ndarray); an integral float is accepted as NumPy would
 * index with it only after a lossless conversion. */
static int value_to_i64(const pv *v, int64_t *out)
{
    if (!v)
        return -1;
    if (v->kind == PV_INT) {
        *out = v->u.i;
        return 0;
    }
    if (v->kind == PV_FLOAT) {
        double f = v->u.f;
        if (!(f == floor(f)) || f < -9.2e18 || f > 9.2e18)
            return -1;
        *out = (int64_t)f;
        return 0;
    }
    if (v->kind == PV_NDARRAY && v->u.arr.ndim == 0 && is_numeric_type(v->u.arr.type) && v->u.arr.data)
        return npy_convert_i64(out, v->u.arr.data, v->u.arr.type, v->u.arr.big_endian, 0, 0, v->u.arr.shape,
                               "value");
    return -1;
}

static int value_to_f64(const pv *v, double *out)
{
    if (!v)
        return -1;
    if (v->kind == PV_FLOAT) {
        *out = v->u.f;
        return 0;
    }
    if (v->kind == PV_INT || v->kind == PV_BOOL) {
        *out = (double)v->u.i;
        return 0;
    }
    if (v->kind == PV_NDARRAY && v->u.arr.ndim == 0 && is_numeric_type(v->u.arr.type) && v->u.arr.data) {
        float f;
        if (npy_convert_f32(&f, v->u.arr.data, v->u.arr.type, v->u.arr.big_endian, 0, 0, v->u.arr.shape,
                            "value") != 0)
            return -1;
        *out = f;
        return 0;
    }
    return -1;
}

/* Length of a 1-d sequence of numbers: a list/tuple, or a 1-d numeric ndarray. -1 when v is not one. */
static int64_t value_seq_len(const pv *v)
{
    if (!v)
        return -1;
    if (v->kind == PV_LIST || v->kind == PV_TUPLE)
        return (int64_t)v->u.seq.n;
    if (v->kind == PV_NDARRAY && v->u.arr.ndim == 1)
        return v->u.arr.shape[0];
    return -1;
}

/* Read a sequence of n numbers as float (or int64 when ints != NULL). Returns the index of the first element
 * that is not a number, or -1 when all converted. Conversion failures of a whole ndarray report index 0. */
static int64_t value_seq_read(const pv *v, int64_t n, float *floats, int64_t *ints)
{
    if (v->kind == PV_NDARRAY && v->u.arr.type != NPY_OBJECT) {
        if (ints && v->u.arr.type == NPY_BOOL) {
            debcm_fail("a bool array, not integer ids");
            return 0;
        }
        int rc = ints ? npy_convert_i64(ints, v->u.arr.data, v->u.arr.type, v->u.arr.big_endian,
                                        v->u.arr.fortran_order, 1, v->u.arr.shape, "value")
                      : npy_convert_f32(floats, v->u.arr.data, v->u.arr.type, v->u.arr.big_endian,
                                        v->u.arr.fortran_order, 1, v->u.arr.shape, "value");
        return rc == 0 ? -1 : 0;
    }
    /* a list, a tuple or an object ndarray: one value per item */
    pv *const *items = v->kind == PV_NDARRAY ? v->u.arr.items : v->u.seq.items;
    for (int64_t i = 0; i < n; i++) {
        if (ints) {
            if (value_to_i64(items[i], &ints[i]) != 0)
                return i;
        } else {
            double d;
            if (value_to_f64(items[i], &d) != 0)
                return i;
            floats[i] = (float)d;
        }
    }
    return -1;
}

/* What item i of a sequence that value_seq_read refused holds, for messages: the item itself for lists and
 * object arrays, the conversion's own message for numeric ndarrays. */
static const char *describe_bad_item(char *buf, size_t n, const pv *v, int64_t i)
{
    char what[160];
    if (v->kind == PV_NDARRAY && v->u.arr.type != NPY_OBJECT) {
        snprintf(buf, n, "%s (%s)", describe_value(what, sizeof what, v), debcm_last_error());
        return buf;
    }
    pv *const *items = v->kind == PV_NDARRAY ? v->u.arr.items : v->u.seq.items;
    snprintf(buf, n, "%s at position %lld", describe_value(what, sizeof what, items[i]), (long long)i);
    return buf;
}

/* ---- object arrays as rows -------------------------------------------------------------------------------- */

/* The rows of an object array: either a 2-d object ndarray [rows, width] (what np.save makes of equal-length
 * rows) or a 1-d object ndarray whose items are the rows (lists, tuples or object ndarrays). */
typedef struct {
    const pv *root;
    int64_t rows, width;
} object_rows;

static const pv *object_row_item(const object_rows *o, int64_t r)
{
    return o->root->u.arr.items[r];
}

/* Field c of row r, or NULL when row r is not a sequence of `width` items (reported by object_rows_check). */
static const pv *object_rows_get(const object_rows *o, int64_t r, int64_t c)
{
    if (o->root->u.arr.ndim == 2)
        return o->root->u.arr.items[r * o->width + c];
    const pv *row = object_row_item(o, r);
    if ((row->kind == PV_LIST || row->kind == PV_TUPLE) && (int64_t)row->u.seq.n == o->width)
        return row->u.seq.items[c];
    if (row->kind == PV_NDARRAY && row->u.arr.type == NPY_OBJECT && row->u.arr.ndim == 1 &&
        row->u.arr.shape[0] == o->width)
        return row->u.arr.items[c];
    return NULL;
}

/* Open the rows of root; fields = expected width. Records problems and returns -1 when the layout is wrong. */
static int object_rows_open(object_rows *o, const pv *root, const char *path, int64_t fields, const char *layout,
                            problem_list *p)
{
    char what[160];
    o->root = root;
    if (root->kind != PV_NDARRAY || root->u.arr.type != NPY_OBJECT) {
        problems_add(p, PROBLEM_ERROR, "%s: expected an object array of rows %s, found %s", path, layout,
                     describe_value(what, sizeof what, root));
        return -1;
    }
    if (root->u.arr.ndim == 2) {
        o->rows = root->u.arr.shape[0];
        o->width = root->u.arr.shape[1];
        if (o->width != fields) {
            problems_add(p, PROBLEM_ERROR, "%s: expected rows of %lld fields %s, found rows of %lld fields",
                         path, (long long)fields, layout, (long long)o->width);
            return -1;
        }
        return 0;
    }
    if (root->u.arr.ndim != 1) {
        problems_add(p, PROBLEM_ERROR, "%s: expected a 1-d or 2-d object array of rows %s, found %d-d", path,
                     layout, root->u.arr.ndim);
        return -1;
    }
    o->rows = root->u.arr.shape[0];
    o->width = fields;
    row_check bad = {0, -1};
    for (int64_t r = 0; r < o->rows; r++) {
        if (!object_rows_get(o, r, 0))
            row_check_hit(p, &bad, PROBLEM_ERROR, "%s: row %lld: expected a row of %lld fields %s, found %s",
                          path, (long long)r, (long long)fields, layout,
                          describe_value(what, sizeof what, object_row_item(o, r)));
    }
    row_check_finish(p, &bad, PROBLEM_ERROR);
    return bad.count ? -1 : 0;
}

/* ---- files ---------------------------------------------------------------------------------------------- */

static void join_path(char *out, size_t n, const char *dir, const char *file)
{
    size_t len = strlen(dir);
    if (len > 0 && dir[len - 1] == '/')
        snprintf(out, n, "%s%s", dir, file);
    else
        snprintf(out, n, "%s/%s", dir, file);
}

static void format_shape(char *out, size_t n, const npy_header *h)
{
    if (h->ndim == 0)
        snprintf(out, n, "()");
    else if (h->ndim == 1)
        snprintf(out, n, "(%lld,)", (long long)h->shape[0]);
    else
        snprintf(out, n, "(%lld, %lld)", (long long)h->shape[0], (long long)h->shape[1]);
}

/* A float matrix [rows, cols]; cols_wanted < 0 accepts any width. Non-finite values are errors that name the
 * first row and column and the count. */
static int load_features(feat_matrix *m, problem_list *p, const char *dir, const char *file, const char *what)
{
    char path[DATASET_PATH_MAX];
    join_path(path, sizeof path, dir, file);
    memset(m, 0, sizeof *m);
    if (npy_open(&m->file, path) != 0) {
        problems_add_last_error(p);
        return -1;
    }
    const npy_header *h = &m->file.h;
    char shape[64];
    format_shape(shape, sizeof shape, h);
    if (h->type == NPY_OBJECT || h->type == NPY_BOOL || h->ndim != 2) {
        problems_add(p, PROBLEM_ERROR, "%s: expected %s as a 2-d float array [rows, dims], found %s of shape %s",
                     path, what, npy_type_name(h->type), shape);
        npy_close(&m->file);
        return -1;
    }
    m->rows = h->shape[0];
    m->cols = h->shape[1];
    if (m->rows == 0 || m->cols == 0) {
        problems_add(p, PROBLEM_ERROR, "%s: expected %s with at least one row and one column, found shape %s",
                     path, what, shape);
        npy_close(&m->file);
        return -1;
    }
    const float *view = npy_f32_view(&m->file);
    if (view) {
        m->data = view;
        m->mapped = 1;
    } else {
        m->owned = malloc((size_t)h->count * sizeof(float));
        if (!m->owned) {
            problems_add(p, PROBLEM_ERROR, "%s: out of memory converting %lld values to float32", path,
                         (long long)h->count);
            npy_close(&m->file);
            return -1;
        }
        if (npy_to_f32(&m->file, m->owned) != 0) {
            problems_add_last_error(p);
            free(m->owned);
            m->owned = NULL;
            npy_close(&m->file);
            return -1;
        }
        m->data = m->owned;
        npy_close(&m->file); /* the converted copy is all that is needed */
    }
    /* NaN/Inf: one vectorisable counting pass over the whole matrix (threads split it; the count does not
     * depend on the split); only when something is found, a second pass finds the first offender, reported
     * with its row and column. */
    int64_t total = m->rows * m->cols, bad = 0, first = 0;
    const float *d = m->data;
    const uint32_t *bits = (const uint32_t *)(const void *)d;
#pragma omp parallel for reduction(+ : bad) schedule(static)
    for (int64_t i = 0; i < total; i++)
        bad += (bits[i] & 0x7f800000u) == 0x7f800000u; /* exponent all ones: inf or NaN */
    while (bad && isfinite(d[first]))
        first++;
    if (bad) {
        problems_add(p, PROBLEM_ERROR,
                     "%s: row %lld, column %lld: expected finite %s, found %s (%lld non-finite values in all)", path,
                     (long long)(first / m->cols), (long long)(first % m->cols), what,
                     isnan(d[first]) ? "NaN" : (d[first] > 0 ? "inf" : "-inf"), (long long)bad);
        return -1;
    }
    return 0;
}

static void feat_matrix_free(feat_matrix *m)
{
    if (m->mapped)
        npy_close(&m->file);
    free(m->owned);
    memset(m, 0, sizeof *m);
}

/* Open a .npy that holds an object array and unpickle it. Returns 0 with doc filled. */
static int open_object_array(npy_file *f, pickle_doc *doc, problem_list *p, const char *path)
{
    if (pickle_load(doc, f->data, f->data_size, path) != 0) {
        problems_add_last_error(p);
        return -1;
    }
    const pv *root = doc->root;
    if (root->kind == PV_NDARRAY && (root->u.arr.ndim != f->h.ndim || root->u.arr.count != f->h.count)) {
        char a[64];
        format_shape(a, sizeof a, &f->h);
        problems_add(p, PROBLEM_ERROR, "%s: the header says shape %s but the pickled array has %lld elements",
                     path, a, (long long)root->u.arr.count);
        pickle_free(doc);
        return -1;
    }
    return 0;
}

/* Open an .npy that must hold an object array of rows with `fields` fields each (layout names them for
 * messages), unpickle it and open its rows. On success *have_doc is set and the caller frees doc and f. */
static int open_object_rows_file(npy_file *f, pickle_doc *doc, int *have_doc, object_rows *rows, problem_list *p,
                                 const char *path, int64_t fields, const char *layout)
{
    *have_doc = 0;
    if (npy_open(f, path) != 0) {
        problems_add_last_error(p);
        return -1;
    }
    if (f->h.type != NPY_OBJECT) {
        char shape[64];
        format_shape(shape, sizeof shape, &f->h);
        problems_add(p, PROBLEM_ERROR, "%s: expected an object array of rows %s (saved with allow_pickle=True), "
                     "found %s of shape %s", path, layout, npy_type_name(f->h.type), shape);
        return -1;
    }
    if (open_object_array(f, doc, p, path) != 0)
        return -1;
    *have_doc = 1;
    return object_rows_open(rows, doc->root, path, fields, layout, p);
}

/* An id field: must be an integer in [0, limit) when limit >= 0. */
static int read_id(const pv *v, int64_t limit, int64_t *out)
{
    if (value_to_i64(v, out) != 0)
        return -1;
    if (limit >= 0 && (*out < 0 || *out >= limit))
        return -2;
    return 0;
}

typedef struct {
    const char *path;
    const char *field;
    const char *limit_what; /* "rows of visual_features_resnet_V.npy" */
    int64_t limit;
    row_check bad_type, out_of_range;
} id_field;

static void id_field_read(id_field *f, problem_list *p, const pv *v, int64_t r, int64_t *out)
{
    char what[160];
    int rc = read_id(v, f->limit, out);
    if (rc == -1)
        row_check_hit(p, &f->bad_type, PROBLEM_ERROR, "%s: row %lld, field '%s': expected an integer id, found %s",
                      f->path, (long long)r, f->field, describe_value(what, sizeof what, v));
    else if (rc == -2)
        row_check_hit(p, &f->out_of_range, PROBLEM_ERROR,
                      "%s: row %lld, field '%s': expected an id in [0, %lld) (the %s), found %lld", f->path,
                      (long long)r, f->field, (long long)f->limit, f->limit_what, (long long)*out);
}

static void id_field_finish(const id_field *f, problem_list *p)
{
    row_check_finish(p, &f->bad_type, PROBLEM_ERROR);
    row_check_finish(p, &f->out_of_range, PROBLEM_ERROR);
}

/* ---- data_pgc pairs --------------------------------------------------------------------------------------- */

static int load_pairs(pair_list *out, problem_list *p, const char *dir, const char *file, int64_t n_videos,
                      int64_t n_musics)
{
    char path[DATASET_PATH_MAX];
    join_path(path, sizeof path, dir, file);
    memset(out, 0, sizeof *out);
    npy_file f = {0};
    if (npy_open(&f, path) != 0) {
        problems_add_last_error(p);
        return -1;
    }
    int64_t *flat = NULL;
    pickle_doc doc = {0};
    int have_doc = 0, rc = -1;
    int64_t n = 0;
    char shape[64];
    format_shape(shape, sizeof shape, &f.h);
    if (f.h.type == NPY_OBJECT) {
        if (open_object_array(&f, &doc, p, path) != 0)
            goto done;
        have_doc = 1;
        object_rows rows;
        if (object_rows_open(&rows, doc.root, path, 2, "[video id, music id]", p) != 0)
            goto done;
        n = rows.rows;
        flat = malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof *flat);
        if (!flat)
            goto oom;
        for (int64_t r = 0; r < n; r++)
            for (int c = 0; c < 2; c++)
                if (value_to_i64(object_rows_get(&rows, r, c), &flat[r * 2 + c]) != 0) {
                    char what[160];
                    problems_add(p, PROBLEM_ERROR, "%s: row %lld, field '%s': expected an integer id, found %s",
                                 path, (long long)r, c ? "music" : "video",
                                 describe_value(what, sizeof what, object_rows_get(&rows, r, c)));
                    goto done;
                }
    } else {
        if (f.h.ndim != 2 || f.h.shape[1] != 2 || f.h.type == NPY_BOOL) {
            problems_add(p, PROBLEM_ERROR, "%s: expected integer pairs of shape (rows, 2) [video id, music id], "
                         "found %s of shape %s", path, npy_type_name(f.h.type), shape);
            goto done;
        }
        n = f.h.shape[0];
        flat = malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof *flat);
        if (!flat)
            goto oom;
        if (npy_to_i64(&f, flat) != 0) {
            problems_add_last_error(p);
            goto done;
        }
    }
    if (n == 0) {
        problems_add(p, PROBLEM_ERROR, "%s: expected at least one [video, music] pair, found an empty array", path);
        goto done;
    }
    out->n = n;
    out->video = malloc((size_t)n * sizeof *out->video);
    out->music = malloc((size_t)n * sizeof *out->music);
    if (!out->video || !out->music)
        goto oom;
    id_field fv = {path, "video", "rows of mv_video_resnet_features.npy", n_videos, {0, -1}, {0, -1}};
    id_field fm = {path, "music", "rows of vggish_features.npy", n_musics, {0, -1}, {0, -1}};
    for (int64_t r = 0; r < n; r++) {
        int64_t v = flat[r * 2], m = flat[r * 2 + 1];
        if (n_videos >= 0 && (v < 0 || v >= n_videos))
            row_check_hit(p, &fv.out_of_range, PROBLEM_ERROR,
                          "%s: row %lld, field 'video': expected an id in [0, %lld) (the %s), found %lld", path,
                          (long long)r, (long long)n_videos, fv.limit_what, (long long)v);
        if (n_musics >= 0 && (m < 0 || m >= n_musics))
            row_check_hit(p, &fm.out_of_range, PROBLEM_ERROR,
                          "%s: row %lld, field 'music': expected an id in [0, %lld) (the %s), found %lld", path,
                          (long long)r, (long long)n_musics, fm.limit_what, (long long)m);
        out->video[r] = v;
        out->music[r] = m;
    }
    id_field_finish(&fv, p);
    id_field_finish(&fm, p);
    rc = (fv.out_of_range.count || fm.out_of_range.count) ? -1 : 0;
    goto done;
oom:
    problems_add(p, PROBLEM_ERROR, "%s: out of memory reading %lld pairs", path, (long long)n);
done:
    free(flat);
    if (have_doc)
        pickle_free(&doc);
    npy_close(&f);
    return rc;
}

/* ---- genre literals --------------------------------------------------------------------------------------- */

int dataset_parse_genre_literal(const char *s, size_t n, int32_t **ids, int64_t *count)
{
    char text[64];
    *ids = NULL;
    *count = 0;
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i]))
        i++;
    if (i >= n || s[i] != '[') {
        describe_text(text, sizeof text, s, n);
        return debcm_fail("expected a list literal of genre ids such as '[1, 3]', found %s", text);
    }
    i++;
    int32_t *out = NULL;
    int64_t k = 0, cap = 0;
    int expect_value = 1, closed = 0;
    while (i < n) {
        char c = s[i];
        if (isspace((unsigned char)c)) {
            i++;
            continue;
        }
        if (c == ']') {
            closed = 1;
            i++;
            break;
        }
        if (c == ',' && !expect_value) {
            expect_value = 1;
            i++;
            continue;
        }
        if (isdigit((unsigned char)c) && expect_value) {
            if (c == '0' && i + 1 < n && isdigit((unsigned char)s[i + 1]))
                break; /* '01' is not a Python integer literal */
            int64_t v = 0;
            while (i < n && isdigit((unsigned char)s[i])) {
                v = v * 10 + (s[i] - '0');
                if (v > INT32_MAX)
                    break;
                i++;
            }
            if (v > INT32_MAX) {
                free(out);
                describe_text(text, sizeof text, s, n);
                return debcm_fail("expected genre ids below 2^31, found a larger one in %s", text);
            }
            if (k == cap) {
                cap = cap ? cap * 2 : 4;
                int32_t *grown = realloc(out, (size_t)cap * sizeof *grown);
                if (!grown) {
                    free(out);
                    return debcm_fail("out of memory parsing a genre literal");
                }
                out = grown;
            }
            out[k++] = (int32_t)v;
            expect_value = 0;
            continue;
        }
        break; /* anything else is not part of a list of non-negative integers */
    }
    while (closed && i < n && isspace((unsigned char)s[i]))
        i++;
    if (!closed || i != n) {
        free(out);
        describe_text(text, sizeof text, s, n);
        return debcm_fail("expected a list literal of genre ids such as '[1, 3]', found %s", text);
    }
    *ids = out;
    *count = k;
    return 0;
}

/* ---- data_matching/train.npy ------------------------------------------------------------------------------ */

enum { TRAIN_VIDEO, TRAIN_MUSIC, TRAIN_GENRE, TRAIN_PRIOR, TRAIN_PROPENSITY, TRAIN_FIELDS };

/* Genre ids of one row: a literal string, a single int, or a sequence of ints. */
static int read_genres(const pv *v, int32_t **ids, int64_t *count)
{
    char what[160];
    *ids = NULL;
    *count = 0;
    if (v && v->kind == PV_STR)
        return dataset_parse_genre_literal(v->u.str.s, v->u.str.n, ids, count);
    int64_t single;
    if (v && value_to_i64(v, &single) == 0) {
        if (single < 0 || single > INT32_MAX)
            return debcm_fail("expected a non-negative genre id, found %lld", (long long)single);
        *ids = malloc(sizeof **ids);
        if (!*ids)
            return debcm_fail("out of memory");
        (*ids)[0] = (int32_t)single;
        *count = 1;
        return 0;
    }
    int64_t len = value_seq_len(v);
    if (len >= 0) {
        int64_t *tmp = malloc((size_t)(len > 0 ? len : 1) * sizeof *tmp);
        *ids = malloc((size_t)(len > 0 ? len : 1) * sizeof **ids);
        if (!tmp || !*ids) {
            free(tmp);
            free(*ids);
            *ids = NULL;
            return debcm_fail("out of memory");
        }
        int64_t badi = value_seq_read(v, len, NULL, tmp);
        for (int64_t i = 0; badi < 0 && i < len; i++) {
            if (tmp[i] < 0 || tmp[i] > INT32_MAX)
                badi = i;
            else
                (*ids)[i] = (int32_t)tmp[i];
        }
        free(tmp);
        if (badi >= 0) {
            free(*ids);
            *ids = NULL;
            return debcm_fail("expected a list of non-negative genre ids, item %lld is not one", (long long)badi);
        }
        *count = len;
        return 0;
    }
    return debcm_fail("expected a genre list literal such as '[1, 3]', found %s", describe_value(what, sizeof what, v));
}

static int load_train(ugc_train *t, problem_list *p, const char *dir, int64_t n_videos, int64_t n_musics)
{
    char path[DATASET_PATH_MAX], what[512];
    join_path(path, sizeof path, dir, "train.npy");
    memset(t, 0, sizeof *t);
    npy_file f = {0};
    pickle_doc doc = {0};
    int have_doc = 0, rc = -1;
    object_rows rows;
    if (open_object_rows_file(&f, &doc, &have_doc, &rows, p, path, TRAIN_FIELDS,
                              "[video, music, genre, user_prior, propensity]") != 0)
        goto done;
    int64_t n = rows.rows;
    if (n == 0) {
        problems_add(p, PROBLEM_ERROR, "%s: expected at least one training row, found an empty array", path);
        goto done;
    }
    /* G from the first row's prior; every row must agree. */
    int64_t G = value_seq_len(object_rows_get(&rows, 0, TRAIN_PRIOR));
    if (G <= 0) {
        problems_add(p, PROBLEM_ERROR, "%s: row 0, field 'user_prior': expected a list of G genre probabilities, "
                     "found %s", path, describe_value(what, sizeof what, object_rows_get(&rows, 0, TRAIN_PRIOR)));
        goto done;
    }
    t->n = n;
    t->G = G;
    t->video = malloc((size_t)n * sizeof *t->video);
    t->music = malloc((size_t)n * sizeof *t->music);
    t->genre_offset = calloc((size_t)(n + 1), sizeof *t->genre_offset); /* all-zero: empty rows if cut short */
    t->prior = malloc((size_t)n * (size_t)G * sizeof *t->prior);
    t->propensity = malloc((size_t)n * sizeof *t->propensity);
    int64_t genre_cap = n + 16, genre_len = 0;
    t->genre_ids = malloc((size_t)genre_cap * sizeof *t->genre_ids);
    if (!t->video || !t->music || !t->genre_offset || !t->prior || !t->propensity || !t->genre_ids) {
        problems_add(p, PROBLEM_ERROR, "%s: out of memory for %lld training rows", path, (long long)n);
        goto done;
    }
    id_field fv = {path, "video", "rows of visual_features_resnet_V.npy", n_videos, {0, -1}, {0, -1}};
    id_field fm = {path, "music", "rows of music_features.npy", n_musics, {0, -1}, {0, -1}};
    row_check bad_genre = {0, -1}, bad_width = {0, -1}, bad_prior = {0, -1}, prior_sum = {0, -1},
              prior_negative = {0, -1}, bad_prop = {0, -1}, genre_empty = {0, -1}, genre_range = {0, -1},
              prop_nonpositive = {0, -1};
    for (int64_t r = 0; r < n; r++) {
        id_field_read(&fv, p, object_rows_get(&rows, r, TRAIN_VIDEO), r, &t->video[r]);
        id_field_read(&fm, p, object_rows_get(&rows, r, TRAIN_MUSIC), r, &t->music[r]);

        int32_t *ids = NULL;
        int64_t k = 0;
        t->genre_offset[r] = genre_len;
        if (read_genres(object_rows_get(&rows, r, TRAIN_GENRE), &ids, &k) != 0) {
            row_check_hit(p, &bad_genre, PROBLEM_ERROR, "%s: row %lld, field 'genre': %s", path, (long long)r,
                          debcm_last_error());
        } else {
            if (genre_len + k > genre_cap) {
                int64_t cap = (genre_len + k) * 2;
                int32_t *grown = realloc(t->genre_ids, (size_t)cap * sizeof *grown);
                if (!grown) {
                    free(ids);
                    problems_add(p, PROBLEM_ERROR, "%s: out of memory for genre ids", path);
                    goto done;
                }
                t->genre_ids = grown;
                genre_cap = cap;
            }
            if (k == 0)
                row_check_hit(p, &genre_empty, PROBLEM_WARNING, "%s: row %lld, field 'genre': expected at least one "
                              "genre id, found '[]'", path, (long long)r);
            for (int64_t j = 0; j < k; j++)
                if (ids[j] >= G) {
                    row_check_hit(p, &genre_range, PROBLEM_WARNING, "%s: row %lld, field 'genre': expected genre ids "
                                  "in [0, %lld) (G, the width of user_prior), found %d", path, (long long)r,
                                  (long long)G, ids[j]);
                    break;
                }
            if (k)
                memcpy(t->genre_ids + genre_len, ids, (size_t)k * sizeof *ids);
            genre_len += k;
            free(ids);
        }

        const pv *prior = object_rows_get(&rows, r, TRAIN_PRIOR);
        int64_t len = value_seq_len(prior);
        float *pr = t->prior + r * G;
        if (len != G) {
            if (len < 0)
                row_check_hit(p, &bad_width, PROBLEM_ERROR, "%s: row %lld, field 'user_prior': expected a list of "
                              "%lld genre probabilities (as in row 0), found %s", path, (long long)r, (long long)G,
                              describe_value(what, sizeof what, prior));
            else
                row_check_hit(p, &bad_width, PROBLEM_ERROR, "%s: row %lld, field 'user_prior': expected %lld genre "
                              "probabilities (G, as in row 0), found %lld", path, (long long)r, (long long)G,
                              (long long)len);
            memset(pr, 0, (size_t)G * sizeof *pr);
        } else {
            int64_t badi = value_seq_read(prior, G, pr, NULL);
            double sum = 0.0;
            int finite = 1, negative = 0;
            for (int64_t g = 0; badi < 0 && g < G; g++) {
                if (!isfinite(pr[g]))
                    finite = 0;
                else if (pr[g] < 0.0f)
                    negative = 1;
                sum += pr[g];
            }
            if (badi >= 0 || !finite)
                row_check_hit(p, &bad_prior, PROBLEM_ERROR, "%s: row %lld, field 'user_prior': expected %lld finite "
                              "numbers, found %s", path, (long long)r, (long long)G,
                              badi >= 0 ? describe_bad_item(what, sizeof what, prior, badi) : "NaN or inf");
            else if (negative)
                row_check_hit(p, &prior_negative, PROBLEM_ERROR, "%s: row %lld, field 'user_prior': expected "
                              "probabilities >= 0, found a negative value", path, (long long)r);
            else if (fabs(sum - 1.0) > PRIOR_SUM_TOLERANCE)
                row_check_hit(p, &prior_sum, PROBLEM_WARNING, "%s: row %lld, field 'user_prior': expected "
                              "probabilities summing to 1, found a sum of %.6g", path, (long long)r, sum);
        }

        double prop;
        const pv *pv_prop = object_rows_get(&rows, r, TRAIN_PROPENSITY);
        if (value_to_f64(pv_prop, &prop) != 0 || !isfinite(prop)) {
            row_check_hit(p, &bad_prop, PROBLEM_ERROR, "%s: row %lld, field 'propensity': expected a finite number, "
                          "found %s", path, (long long)r, describe_value(what, sizeof what, pv_prop));
            t->propensity[r] = 0.0f;
        } else {
            if (prop <= 0.0)
                row_check_hit(p, &prop_nonpositive, PROBLEM_WARNING, "%s: row %lld, field 'propensity': expected a "
                              "positive propensity (IPS variants divide by it), found %g", path, (long long)r, prop);
            t->propensity[r] = (float)prop;
        }
    }
    t->genre_offset[n] = genre_len;
    id_field_finish(&fv, p);
    id_field_finish(&fm, p);
    row_check_finish(p, &bad_genre, PROBLEM_ERROR);
    row_check_finish(p, &bad_width, PROBLEM_ERROR);
    row_check_finish(p, &bad_prior, PROBLEM_ERROR);
    row_check_finish(p, &prior_negative, PROBLEM_ERROR);
    row_check_finish(p, &prior_sum, PROBLEM_WARNING);
    row_check_finish(p, &bad_prop, PROBLEM_ERROR);
    row_check_finish(p, &genre_empty, PROBLEM_WARNING);
    row_check_finish(p, &genre_range, PROBLEM_WARNING);
    row_check_finish(p, &prop_nonpositive, PROBLEM_WARNING);
    rc = (fv.bad_type.count || fv.out_of_range.count || fm.bad_type.count || fm.out_of_range.count ||
          bad_genre.count || bad_width.count || bad_prior.count || prior_negative.count || bad_prop.count)
             ? -1
             : 0;
done:
    if (have_doc)
        pickle_free(&doc);
    npy_close(&f);
    return rc;
}

/* ---- a 1-d float vector (weights, prior mean) ------------------------------------------------------------- */

static int load_vector(float **out, int64_t *len, problem_list *p, const char *dir, const char *file,
                       const char *what)
{
    char path[DATASET_PATH_MAX], shape[64];
    join_path(path, sizeof path, dir, file);
    *out = NULL;
    *len = 0;
    npy_file f = {0};
    if (npy_open(&f, path) != 0) {
        problems_add_last_error(p);
        return -1;
    }
    format_shape(shape, sizeof shape, &f.h);
    /* [n] or [n, 1] (a column vector, as some scripts save it) */
    if (f.h.type == NPY_OBJECT || f.h.ndim == 0 || (f.h.ndim == 2 && f.h.shape[1] != 1)) {
        problems_add(p, PROBLEM_ERROR, "%s: expected %s as a 1-d float array, found %s of shape %s", path, what,
                     npy_type_name(f.h.type), shape);
        npy_close(&f);
        return -1;
    }
    float *v = malloc((size_t)(f.h.count > 0 ? f.h.count : 1) * sizeof *v);
    if (!v || npy_to_f32(&f, v) != 0) {
        if (v)
            problems_add_last_error(p);
        else
            problems_add(p, PROBLEM_ERROR, "%s: out of memory", path);
        free(v);
        npy_close(&f);
        return -1;
    }
    *out = v;
    *len = f.h.count;
    npy_close(&f);
    return 0;
}

/* ---- evaluation rows -------------------------------------------------------------------------------------- */

static int load_eval(eval_split *e, problem_list *p, const char *dir, const char *split, int64_t n_videos,
                     int64_t n_musics)
{
    char path[DATASET_PATH_MAX], file[64], what[512];
    snprintf(file, sizeof file, "100neg/%s.npy", split);
    join_path(path, sizeof path, dir, file);
    memset(e, 0, sizeof *e);
    npy_file f = {0};
    pickle_doc doc = {0};
    int have_doc = 0, rc = -1;
    int64_t *seen = NULL; /* [n_musics] */
    object_rows rows;
    if (open_object_rows_file(&f, &doc, &have_doc, &rows, p, path, 3, "[video, positive, negatives]") != 0)
        goto done;
    int64_t n = rows.rows;
    if (n == 0) {
        problems_add(p, PROBLEM_ERROR, "%s: expected at least one evaluation row, found an empty array", path);
        goto done;
    }
    int64_t k = value_seq_len(object_rows_get(&rows, 0, 2));
    if (k <= 0) {
        problems_add(p, PROBLEM_ERROR, "%s: row 0, field 'negatives': expected an array of negative music ids, "
                     "found %s", path, describe_value(what, sizeof what, object_rows_get(&rows, 0, 2)));
        goto done;
    }
    e->n = n;
    e->n_neg = k;
    e->video = malloc((size_t)n * sizeof *e->video);
    e->positive = malloc((size_t)n * sizeof *e->positive);
    e->negatives = malloc((size_t)n * (size_t)k * sizeof *e->negatives);
    seen = n_musics > 0 ? calloc((size_t)n_musics, sizeof *seen) : NULL;
    if (!e->video || !e->positive || !e->negatives || (n_musics > 0 && !seen)) {
        problems_add(p, PROBLEM_ERROR, "%s: out of memory for %lld evaluation rows", path, (long long)n);
        goto done;
    }
    id_field fv = {path, "video", "rows of visual_features_resnet_V.npy", n_videos, {0, -1}, {0, -1}};
    id_field fp = {path, "positive", "rows of music_features.npy", n_musics, {0, -1}, {0, -1}};
    row_check bad_width = {0, -1}, bad_neg = {0, -1}, neg_range = {0, -1}, pos_in_neg = {0, -1}, dup = {0, -1};
    for (int64_t r = 0; r < n; r++) {
        id_field_read(&fv, p, object_rows_get(&rows, r, 0), r, &e->video[r]);
        id_field_read(&fp, p, object_rows_get(&rows, r, 1), r, &e->positive[r]);
        const pv *negs = object_rows_get(&rows, r, 2);
        int64_t *row = e->negatives + r * k;
        int64_t len = value_seq_len(negs);
        if (len != k) {
            if (len < 0)
                row_check_hit(p, &bad_width, PROBLEM_ERROR, "%s: row %lld, field 'negatives': expected an array of "
                              "%lld music ids, found %s", path, (long long)r, (long long)k,
                              describe_value(what, sizeof what, negs));
            else
                row_check_hit(p, &bad_width, PROBLEM_ERROR, "%s: row %lld, field 'negatives': expected %lld "
                              "negatives (as in row 0), found %lld", path, (long long)r, (long long)k,
                              (long long)len);
            memset(row, 0, (size_t)k * sizeof *row);
            continue;
        }
        int64_t badi = value_seq_read(negs, k, NULL, row);
        if (badi >= 0) {
            row_check_hit(p, &bad_neg, PROBLEM_ERROR, "%s: row %lld, field 'negatives': expected integer music ids, "
                          "found %s", path, (long long)r, describe_bad_item(what, sizeof what, negs, badi));
            continue;
        }
        for (int64_t j = 0; j < k; j++)
            if (n_musics >= 0 && (row[j] < 0 || row[j] >= n_musics)) {
                row_check_hit(p, &neg_range, PROBLEM_ERROR, "%s: row %lld, field 'negatives': expected ids in "
                              "[0, %lld) (the rows of music_features.npy), found %lld at position %lld", path,
                              (long long)r, (long long)n_musics, (long long)row[j], (long long)j);
                break;
            }
        /* duplicates and the positive among the negatives: seen[m] == r + 1 marks music m as listed in row r
         * (ids are in range here: a row with an out-of-range id was reported above and skipped) */
        int in_range = 1;
        for (int64_t j = 0; j < k; j++)
            in_range &= row[j] >= 0 && row[j] < n_musics;
        if (!in_range || !seen)
            continue;
        for (int64_t j = 0; j < k; j++) {
            if (seen[row[j]] == r + 1) {
                row_check_hit(p, &dup, PROBLEM_WARNING, "%s: row %lld, field 'negatives': music %lld is listed "
                              "more than once", path, (long long)r, (long long)row[j]);
                e->rows_duplicate_negatives++;
                break;
            }
            seen[row[j]] = r + 1;
        }
        for (int64_t j = 0; j < k; j++)
            seen[row[j]] = r + 1; /* complete the marks when the loop above stopped early */
        if (e->positive[r] >= 0 && e->positive[r] < n_musics && seen[e->positive[r]] == r + 1) {
            row_check_hit(p, &pos_in_neg, PROBLEM_WARNING, "%s: row %lld: the positive music %lld is also listed "
                          "among its own negatives", path, (long long)r, (long long)e->positive[r]);
            e->rows_positive_in_negatives++;
        }
    }
    id_field_finish(&fv, p);
    id_field_finish(&fp, p);
    row_check_finish(p, &bad_width, PROBLEM_ERROR);
    row_check_finish(p, &bad_neg, PROBLEM_ERROR);
    row_check_finish(p, &neg_range, PROBLEM_ERROR);
    row_check_finish(p, &dup, PROBLEM_WARNING);
    row_check_finish(p, &pos_in_neg, PROBLEM_WARNING);
    rc = (fv.bad_type.count || fv.out_of_range.count || fp.bad_type.count || fp.out_of_range.count ||
          bad_width.count || bad_neg.count || neg_range.count)
             ? -1
             : 0;

    /* the row's inverse-popularity weights */
    char wfile[64];
    snprintf(wfile, sizeof wfile, "video_popularity_%s.npy", split);
    char wpath[DATASET_PATH_MAX];
    join_path(wpath, sizeof wpath, dir, wfile);
    int64_t wlen = 0;
    if (load_vector(&e->weight, &wlen, p, dir, wfile, "per-row popularity weights") != 0) {
        rc = -1;
        goto done;
    }
    if (wlen != n) {
        problems_add(p, PROBLEM_ERROR, "%s: expected one weight per row of %s (%lld), found %lld", wpath, path,
                     (long long)n, (long long)wlen);
        free(e->weight); /* weights that do not match the rows are not kept: nothing may index them by row */
        e->weight = NULL;
        rc = -1;
        goto done;
    }
    row_check bad_w = {0, -1};
    for (int64_t r = 0; r < n; r++)
        if (!isfinite(e->weight[r]) || e->weight[r] < 0.0f)
            row_check_hit(p, &bad_w, PROBLEM_ERROR, "%s: row %lld: expected a finite weight >= 0, found %g", wpath,
                          (long long)r, (double)e->weight[r]);
    row_check_finish(p, &bad_w, PROBLEM_ERROR);
    if (bad_w.count)
        rc = -1;
done:
    free(seen);
    if (have_doc)
        pickle_free(&doc);
    npy_close(&f);
    return rc;
}

/* ---- the whole dataset ------------------------------------------------------------------------------------ */

/* The two music feature files of one directory describe the same musics: equal row counts. */
static void check_music_pair(problem_list *p, const char *dir, const feat_matrix *vggish, const char *vggish_file,
                             const feat_matrix *smile, const char *smile_file)
{
    if (vggish->data && smile->data && vggish->rows != smile->rows) {
        char a[DATASET_PATH_MAX];
        join_path(a, sizeof a, dir, smile_file);
        problems_add(p, PROBLEM_ERROR, "%s: expected %lld rows (one per music, as in %s), found %lld", a,
                     (long long)vggish->rows, vggish_file, (long long)smile->rows);
    }
}

/* The frozen teacher encodes the student's data: its input widths must match. */
static void check_same_width(problem_list *p, const char *ugc_dir, const char *ugc_file, const feat_matrix *ugc,
                             const char *pgc_dir, const char *pgc_file, const feat_matrix *pgc)
{
    if (ugc->data && pgc->data && ugc->cols != pgc->cols) {
        char a[DATASET_PATH_MAX], b[DATASET_PATH_MAX];
        join_path(a, sizeof a, ugc_dir, ugc_file);
        join_path(b, sizeof b, pgc_dir, pgc_file);
        problems_add(p, PROBLEM_ERROR, "%s: expected %lld columns (the width of %s, which the teacher was built "
                     "for), found %lld", a, (long long)pgc->cols, b, (long long)ugc->cols);
    }
}

/* data_pgc/: the teacher's features and pairs. */
static void load_data_pgc(debcm_dataset *ds, problem_list *p, const char *pgc_dir)
{
    load_features(&ds->pgc_video, p, pgc_dir, "mv_video_resnet_features.npy", "video features");
    load_features(&ds->pgc_vggish, p, pgc_dir, "vggish_features.npy", "VGGish music features");
    load_features(&ds->pgc_smile, p, pgc_dir, "opensmile_features_norm.npy", "openSMILE music features");
    check_music_pair(p, pgc_dir, &ds->pgc_vggish, "vggish_features.npy", &ds->pgc_smile,
                     "opensmile_features_norm.npy");
    int64_t nv = ds->pgc_video.data ? ds->pgc_video.rows : -1;
    int64_t nm = ds->pgc_vggish.data ? ds->pgc_vggish.rows : -1;
    load_pairs(&ds->pgc_train, p, pgc_dir, "train.npy", nv, nm);
    load_pairs(&ds->pgc_val, p, pgc_dir, "val.npy", nv, nm);
}

/* data_matching/: the student's features, training rows, evaluation rows and prior mean. */
static void load_data_matching(debcm_dataset *ds, problem_list *p, const char *ugc_dir)
{
    load_features(&ds->ugc_video, p, ugc_dir, "visual_features_resnet_V.npy", "video features");
    load_features(&ds->ugc_vggish, p, ugc_dir, "music_features.npy", "VGGish music features");
    load_features(&ds->ugc_smile, p, ugc_dir, "new_music_smile_features_norm.npy", "openSMILE music features");
    check_music_pair(p, ugc_dir, &ds->ugc_vggish, "music_features.npy", &ds->ugc_smile,
                     "new_music_smile_features_norm.npy");
    int64_t nv = ds->ugc_video.data ? ds->ugc_video.rows : -1;
    int64_t nm = ds->ugc_vggish.data ? ds->ugc_vggish.rows : -1;
    load_train(&ds->train, p, ugc_dir, nv, nm);
    load_eval(&ds->val, p, ugc_dir, "val", nv, nm);
    load_eval(&ds->test, p, ugc_dir, "test", nv, nm);

    if (load_vector(&ds->prior_mean, &ds->prior_mean_len, p, ugc_dir, "user_prior_mean.npy",
                    "the mean user prior over genres") == 0) {
        char path[DATASET_PATH_MAX];
        join_path(path, sizeof path, ugc_dir, "user_prior_mean.npy");
        if (ds->train.G > 0 && ds->prior_mean_len != ds->train.G)
            problems_add(p, PROBLEM_ERROR, "%s: expected %lld genre probabilities (G, the width of every "
                         "user_prior in train.npy), found %lld", path, (long long)ds->train.G,
                         (long long)ds->prior_mean_len);
        double sum = 0.0;
        int finite = 1;
        for (int64_t g = 0; g < ds->prior_mean_len; g++) {
            if (!isfinite(ds->prior_mean[g]))
                finite = 0;
            sum += ds->prior_mean[g];
        }
        if (!finite)
            problems_add(p, PROBLEM_ERROR, "%s: expected finite probabilities, found NaN or inf", path);
        else if (fabs(sum - 1.0) > PRIOR_SUM_TOLERANCE)
            problems_add(p, PROBLEM_WARNING, "%s: expected probabilities summing to 1, found a sum of %.6g", path,
                         sum);
    }
}

/* A directory of the layout must exist, be a directory, and leave room below PATH_MAX for the file names. One
 * problem for the directory instead of one per file in it. */
static int check_directory(problem_list *p, const char *dir, const char *which)
{
    struct stat st;
    size_t len = strlen(dir);
    if (len == 0) {
        problems_add(p, PROBLEM_ERROR, "expected the path of the %s directory, found an empty string", which);
        return -1;
    }
    if (len + DATASET_FILE_NAME_MAX >= PATH_MAX) {
        problems_add(p, PROBLEM_ERROR, "%.200s...: path too long for the %s directory (%zu bytes; at most %d)", dir,
                     which, len, PATH_MAX - DATASET_FILE_NAME_MAX - 1);
        return -1;
    }
    if (stat(dir, &st) != 0) {
        problems_add(p, PROBLEM_ERROR, "%s: expected the %s directory, found nothing there (%s)", dir, which,
                     strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        problems_add(p, PROBLEM_ERROR, "%s: expected the %s directory, found a file that is not a directory", dir,
                     which);
        return -1;
    }
    return 0;
}

int dataset_load(debcm_dataset *ds, const char *pgc_dir, const char *ugc_dir)
{
    memset(ds, 0, sizeof *ds);
    snprintf(ds->pgc_dir, sizeof ds->pgc_dir, "%s", pgc_dir);
    snprintf(ds->ugc_dir, sizeof ds->ugc_dir, "%s", ugc_dir);
    problem_list *p = &ds->problems;
    int pgc_ok = check_directory(p, pgc_dir, "teacher (data_pgc)") == 0;
    int ugc_ok = check_directory(p, ugc_dir, "student (data_matching)") == 0;
    /* A missing directory is one problem, not one per file in it: its files are skipped, and so are the
     * checks that need them (they look at .data, which stays NULL). */

    /* data_pgc/ */
    if (pgc_ok)
        load_data_pgc(ds, p, pgc_dir);

    /* data_matching/ */
    if (ugc_ok)
        load_data_matching(ds, p, ugc_dir);
    check_same_width(p, ugc_dir, "visual_features_resnet_V.npy", &ds->ugc_video, pgc_dir,
                     "mv_video_resnet_features.npy", &ds->pgc_video);
    check_same_width(p, ugc_dir, "music_features.npy", &ds->ugc_vggish, pgc_dir, "vggish_features.npy",
                     &ds->pgc_vggish);
    check_same_width(p, ugc_dir, "new_music_smile_features_norm.npy", &ds->ugc_smile, pgc_dir,
                     "opensmile_features_norm.npy", &ds->pgc_smile);

    if (p->errors) {
        const char *first = "";
        for (int i = 0; i < p->count; i++)
            if (p->items[i].severity == PROBLEM_ERROR) {
                first = p->items[i].message;
                break;
            }
        if (p->errors > 1)
            return debcm_fail("%s (and %d more problem%s: run `debcm inspect` to list them)", first,
                              p->errors - 1, p->errors > 2 ? "s" : "");
        return debcm_fail("%s", first);
    }
    return 0;
}

void dataset_free(debcm_dataset *ds)
{
    feat_matrix_free(&ds->pgc_video);
    feat_matrix_free(&ds->pgc_vggish);
    feat_matrix_free(&ds->pgc_smile);
    feat_matrix_free(&ds->ugc_video);
    feat_matrix_free(&ds->ugc_vggish);
    feat_matrix_free(&ds->ugc_smile);
    pair_list *pairs[2] = {&ds->pgc_train, &ds->pgc_val};
    for (int i = 0; i < 2; i++) {
        free(pairs[i]->video);
        free(pairs[i]->music);
    }
    free(ds->train.video);
    free(ds->train.music);
    free(ds->train.genre_offset);
    free(ds->train.genre_ids);
    free(ds->train.prior);
    free(ds->train.propensity);
    eval_split *splits[2] = {&ds->val, &ds->test};
    for (int i = 0; i < 2; i++) {
        free(splits[i]->video);
        free(splits[i]->positive);
        free(splits[i]->negatives);
        free(splits[i]->weight);
    }
    free(ds->prior_mean);
    for (int i = 0; i < ds->problems.count; i++)
        free(ds->problems.items[i].message);
    free(ds->problems.items);
    memset(ds, 0, sizeof *ds);
}
