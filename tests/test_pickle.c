/* tests/test_pickle.c — tests of the restricted unpickler and the writer (io/pickle.c, io/pickle_write.c).
 *
 * 1. Every stream of tests/data/pickle/manifest.np1.txt and manifest.np2.txt (gen_pickle.py: NumPy 1.24 and 2.x,
 *    protocols 2–5, C and Fortran order, every supported element kind) loads, and its tree, rendered canonically,
 *    equals the rendering Python made of the value. 2. Every hostile stream of manifest.bad.txt, and more built
 *    here (deep nesting, a full stack), is refused with a one-line message naming the stream and the offset and
 *    holding the expected phrase. 3. Every proper prefix of several valid streams is refused; thousands of
 *    deterministic mutations load or are refused, never crash (run under ASan/UBSan in the sanitized build).
 *    4. The writer: round trip through the reader; byte identity with what NumPy 1.24 wrote for the same rows
 *    (pickle_refs.h); its refusals; and, when ../shared is there, debcm-mini's three object arrays read and
 *    written again byte for byte. 5. Numeric payloads of the tree go through npy_convert_f32 (byte order, Fortran
 *    order, float16). 6. The fuzz corpus replayed through the fuzz target. argv[1] is tests/data. */
#include <dirent.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "test_files.h"
#include "engine/error.h"
#include "io/pickle.h"
#include "pickle_refs.h"

#include "fuzz/fuzz_pickle.c" /* LLVMFuzzerTestOneInput, replayed over the corpus below */

static const char *data_dir;

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            abort();
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_printf(sbuf *b, const char *fmt, ...) DEBCM_PRINTF(2, 3);
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_add(b, tmp, (size_t)k);
}

static void sb_hex(sbuf *b, const uint8_t *p, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        char two[2] = {hx[p[i] >> 4], hx[p[i] & 15]};
        sb_add(b, two, 2);
    }
}

static const char *type_str(npy_type t)
{
    static const char *const s[] = {[NPY_BOOL] = "b1",   [NPY_INT8] = "i1",    [NPY_INT16] = "i2",
                                    [NPY_INT32] = "i4",  [NPY_INT64] = "i8",   [NPY_UINT8] = "u1",
                                    [NPY_UINT16] = "u2", [NPY_UINT32] = "u4",  [NPY_UINT64] = "u8",
                                    [NPY_FLOAT16] = "f2", [NPY_FLOAT32] = "f4", [NPY_FLOAT64] = "f8",
                                    [NPY_OBJECT] = "O8"};
    return (unsigned)t < NPY_TYPE_COUNT ? s[t] : "?";
}

static int type_size(npy_type t)
{
    static const int s[] = {1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 8};
    return (unsigned)t < NPY_TYPE_COUNT ? s[t] : 0;
}

/* The canonical text of gen_pickle.py's render(). The loader guarantees depth <= PICKLE_MAX_DEPTH. */
static void render(sbuf *b, const pv *v)
{
    switch (v->kind) {
    case PV_NONE: sb_add(b, "N", 1); break;
    case PV_BOOL: sb_add(b, v->u.i ? "T" : "F", 1); break;
    case PV_INT: sb_printf(b, "i%lld", (long long)v->u.i); break;
    case PV_FLOAT:
        if (v->u.f != v->u.f) {
            sb_add(b, "fnan", 4);
        } else {
            uint64_t u;
            memcpy(&u, &v->u.f, sizeof u);
            sb_printf(b, "f%016llx", (unsigned long long)u);
        }
        break;
    case PV_STR:
    case PV_BYTES:
        sb_add(b, v->kind == PV_STR ? "s" : "b", 1);
        sb_hex(b, (const uint8_t *)v->u.str.s, v->u.str.n);
        break;
    case PV_LIST:
    case PV_TUPLE:
        sb_add(b, v->kind == PV_LIST ? "[" : "(", 1);
        for (size_t i = 0; i < v->u.seq.n; i++) {
            if (i)
                sb_add(b, ",", 1);
            render(b, v->u.seq.items[i]);
        }
        sb_add(b, v->kind == PV_LIST ? "]" : ")", 1);
        break;
    case PV_NDARRAY: {
        sbuf shape = {0};
        sb_add(&shape, "", 0);
        for (int d = 0; d < v->u.arr.ndim; d++)
            sb_printf(&shape, "%s%lld", d ? "x" : "", (long long)v->u.arr.shape[d]);
        if (v->u.arr.type == NPY_OBJECT) {
            sb_printf(b, "O(%s)[", shape.s);
            for (int64_t i = 0; i < v->u.arr.count; i++) {
                if (i)
                    sb_add(b, ",", 1);
                render(b, v->u.arr.items[i]);
            }
            sb_add(b, "]", 1);
        } else {
            int size = type_size(v->u.arr.type);
            char order = size == 1 ? '|' : v->u.arr.big_endian ? '>' : '<';
            sb_printf(b, "A%c%s%c(%s)", order, type_str(v->u.arr.type), v->u.arr.fortran_order ? 'F' : 'C', shape.s);
            sb_hex(b, v->u.arr.data, (size_t)v->u.arr.count * (size_t)size);
        }
        free(shape.s);
        break;
    }
    default: sb_add(b, "?", 1); break;
    }
}

static uint8_t *slurp_data(const char *name, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/pickle/%s", data_dir, name);
    uint8_t *b = (uint8_t *)test_read_file(path, len);
    CHECK_MSG(b != NULL, "cannot read %s", path);
    return b;
}

/* Load that must fail: one line, "<name>: pickle offset N: ...", holding phrase (NULL: any). */
static void expect_refusal(const uint8_t *buf, size_t len, const char *name, const char *phrase)
{
    pickle_doc d;
    debcm_error_clear();
    int rc = pickle_load(&d, buf, len, name);
    CHECK_MSG(rc == -1, "%s: loaded, expected a refusal (%s)", name, phrase ? phrase : "any");
    if (rc == 0) {
        pickle_free(&d);
        return;
    }
    const char *e = debcm_last_error();
    CHECK_MSG(d.root == NULL && d.arena == NULL, "%s: doc not empty after a failure", name);
    CHECK_MSG(strncmp(e, name, strlen(name)) == 0 && strstr(e, ": pickle offset ") != NULL,
              "%s: message does not name the stream and the offset: %s", name, e);
    CHECK_MSG(strchr(e, '\n') == NULL, "%s: message is not one line: %s", name, e);
    if (phrase)
        CHECK_MSG(strstr(e, phrase) != NULL, "%s: \"%s\" does not contain \"%s\"", name, e, phrase);
}

/* ---- 1. NumPy's own pickles ------------------------------------------------------------------------------------- */

static int manifest_valid(const char *tag)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/pickle/manifest.%s.txt", data_dir, tag);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f)
        return 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t k;
    int cases = 0;
    while ((k = getline(&line, &cap, f)) > 0) {
        if (line[k - 1] == '\n')
            line[--k] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        const char *expect = tab + 1;
        size_t len;
        uint8_t *buf = slurp_data(line, &len);
        if (!buf)
            continue;
        pickle_doc d;
        int rc = pickle_load(&d, buf, len, line);
        CHECK_MSG(rc == 0, "%s: %s", line, debcm_last_error());
        if (rc == 0) {
            sbuf r = {0};
            render(&r, d.root);
            CHECK_MSG(strcmp(r.s, expect) == 0, "%s: rendered\n  %.300s\nexpected\n  %.300s", line, r.s, expect);
            free(r.s);
            pickle_free(&d);
        }
        free(buf);
        cases++;
    }
    free(line);
    fclose(f);
    return cases;
}

/* ---- 2. hostile streams ----------------------------------------------------------------------------------------- */

static int manifest_bad(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/pickle/manifest.bad.txt", data_dir);
    FILE *f = fopen(path, "r");
    CHECK_MSG(f != NULL, "cannot open %s", path);
    if (!f)
        return 0;
    char line[1024];
    int cases = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *tab = strchr(line, '\t');
        if (!tab)
            continue;
        *tab = '\0';
        size_t len;
        uint8_t *buf = slurp_data(line, &len);
        if (buf || len == 0)
            expect_refusal(buf, len, line, tab + 1);
        free(buf);
        cases++;
    }
    fclose(f);
    return cases;
}

static uint8_t *repeat(const char *head, uint8_t op, size_t n, const char *mid, uint8_t op2, size_t n2,
                       const char *tail, size_t *len)
{
    size_t hl = strlen(head), ml = strlen(mid), tl = strlen(tail);
    uint8_t *b = malloc(hl + n + ml + n2 + tl);
    if (!b)
        abort();
    memcpy(b, head, hl);
    memset(b + hl, op, n);
    memcpy(b + hl + n, mid, ml);
    memset(b + hl + n + ml, op2, n2);
    memcpy(b + hl + n + ml + n2, tail, tl);
    *len = hl + n + ml + n2 + tl;
    return b;
}

static void hostile_built_here(void)
{
    size_t len;
    uint8_t *b;
    /* 100000 nested lists: ]]]...]aaa...a. */
    b = repeat("\x80\x03", ']', 100000, "", 'a', 99999, ".", &len);
    expect_refusal(b, len, "deep_lists", "nested deeper than 64 levels");
    free(b);
    /* 100000 MARKs */
    b = repeat("\x80\x03", '(', 100000, "", '.', 0, ".", &len);
    expect_refusal(b, len, "deep_marks", "more than 64 nested MARKs");
    free(b);
    /* 100000 nested 1-tuples */
    b = repeat("\x80\x03N", 0x85, 100000, "", '.', 0, ".", &len);
    expect_refusal(b, len, "deep_tuples", "nested deeper than 64 levels");
    free(b);
    /* 65 nested lists are too deep, 63 (plus the outer one) are fine */
    b = repeat("\x80\x03", ']', 65, "", 'a', 64, ".", &len);
    expect_refusal(b, len, "lists_65", "nested deeper than 64 levels");
    free(b);
    b = repeat("\x80\x03", ']', 64, "", 'a', 63, ".", &len);
    pickle_doc d;
    CHECK_MSG(pickle_load(&d, b, len, "lists_64") == 0, "%s", debcm_last_error());
    pickle_free(&d);
    free(b);
    /* a list of 100000 references to one list (MARK, the list, 99999 DUPs, APPENDS): shared, but small once
     * expanded, so it loads */
    b = repeat("\x80\x03](]", '2', 99999, "", 'e', 1, ".", &len);
    CHECK_MSG(pickle_load(&d, b, len, "shared_100000") == 0, "%s", debcm_last_error());
    if (d.root)
        CHECK(d.root->kind == PV_LIST && d.root->u.seq.n == 100000 &&
              d.root->u.seq.items[0] == d.root->u.seq.items[99999]);
    pickle_free(&d);
    free(b);
    /* the stack bound: 2^24 + 1 Nones */
    b = repeat("\x80\x03", 'N', (1u << 24) + 1, "", '.', 0, ".", &len);
    expect_refusal(b, len, "full_stack", "values on the stack");
    free(b);
    /* a huge memo index reached honestly: many opcodes, then LONG_BINPUT beyond the values limit */
    uint8_t big_put[] = {0x80, 0x03, 'N', 'r', 0x00, 0x00, 0x00, 0x40, '.'};
    expect_refusal(big_put, sizeof big_put, "memo_2^30", "memo index 1073741824 is too large");
    /* NULL/empty input */
    expect_refusal(NULL, 0, "null", "missing STOP");
    expect_refusal(NULL, 5, "null5", "missing STOP");
}

/* ---- 3. truncation and mutation ------------------------------------------------------------------------------- */

static const char *const robust_files[] = {"mixed_C.np1.p3.pkl", "mixed_F.np2.p5.pkl", "neg.np1.p2.pkl",
                                           "scalars.np2.p4.pkl", "num_f4_be.np1.p5.pkl", "train.np2.p3.pkl",
                                           "shared.np1.p4.pkl"};

static int truncations(void)
{
    int n = 0;
    for (size_t f = 0; f < sizeof robust_files / sizeof robust_files[0]; f++) {
        size_t len;
        uint8_t *full = slurp_data(robust_files[f], &len);
        if (!full)
            continue;
        for (size_t cut = 0; cut < len; cut++) {
            uint8_t *b = malloc(cut ? cut : 1); /* an exact-size copy: ASan sees any read past the end */
            memcpy(b, full, cut);
            expect_refusal(b, cut, robust_files[f], NULL);
            free(b);
            n++;
        }
        free(full);
    }
    return n;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static int mutations(int *loaded)
{
    int n = 0;
    for (size_t f = 0; f < sizeof robust_files / sizeof robust_files[0]; f++) {
        size_t len;
        uint8_t *full = slurp_data(robust_files[f], &len);
        if (!full)
            continue;
        for (int t = 0; t < 3000; t++) {
            uint8_t *b = malloc(len + 8);
            memcpy(b, full, len);
            size_t blen = len;
            int edits = 1 + (int)(rnd() % 4);
            for (int e = 0; e < edits; e++) {
                size_t at = (size_t)(rnd() % blen);
                switch (rnd() % 4) {
                case 0: b[at] = (uint8_t)rnd(); break;
                case 1: b[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
                case 2: /* delete a byte */
                    memmove(b + at, b + at + 1, blen - at - 1);
                    blen--;
                    break;
                default: { /* an opcode that changes the structure */
                    static const char ops[] = "()]eat.qhrjNR2\x85\x86\x87\x88\x89\x94\x93";
                    b[at] = (uint8_t)ops[rnd() % (sizeof ops - 1)];
                    break;
                }
                }
                if (blen < 2)
                    break;
            }
            pickle_doc d;
            if (pickle_load(&d, b, blen, "mutant") == 0) {
                sbuf r = {0};
                render(&r, d.root);
                free(r.s);
                pickle_free(&d);
                (*loaded)++;
            } else {
                const char *e = debcm_last_error();
                CHECK_MSG(strchr(e, '\n') == NULL && strstr(e, "mutant: pickle offset ") == e, "bad message: %s", e);
            }
            free(b);
            n++;
        }
        free(full);
    }
    return n;
}

/* ---- 4. the writer ---------------------------------------------------------------------------------------------- */

static const pv *item(const pv *arr, int64_t i) { return arr->u.arr.items[i]; }

static void writer_round_trip(void)
{
    pickle_writer w;
    int64_t shape[2] = {3, 5};
    CHECK(pickle_writer_begin(&w, 2, shape) == 0);
    double prior[6] = {0.1, 0.2, 0.3, 0.15, 0.15, 0.1};
    for (int r = 0; r < 3; r++) {
        CHECK(pickle_write_np_int64(&w, 1000000007LL * r) == 0);
        CHECK(pickle_write_int(&w, -r * 70000) == 0);
        CHECK(pickle_write_str(&w, r == 1 ? "[2, 3]" : "[\xc3\xa9]") == 0);
        CHECK(pickle_write_float_list(&w, prior, (size_t)(6 - r)) == 0);
        CHECK(pickle_write_float(&w, r / 3.0) == 0);
    }
    CHECK(pickle_writer_end(&w) == 0);
    pickle_doc d;
    CHECK_MSG(pickle_load(&d, w.buf, w.len, "round_trip") == 0, "%s", debcm_last_error());
    if (d.root) {
        const pv *a = d.root;
        CHECK(a->kind == PV_NDARRAY && a->u.arr.type == NPY_OBJECT && a->u.arr.ndim == 2 && a->u.arr.shape[0] == 3 &&
              a->u.arr.shape[1] == 5 && a->u.arr.count == 15);
        for (int r = 0; r < 3; r++) {
            const pv *e = item(a, r * 5);
            CHECK(e->kind == PV_INT && e->u.i == 1000000007LL * r);
            e = item(a, r * 5 + 1);
            CHECK(e->kind == PV_INT && e->u.i == -r * 70000);
            e = item(a, r * 5 + 2);
            CHECK(e->kind == PV_STR && !strcmp(e->u.str.s, r == 1 ? "[2, 3]" : "[\xc3\xa9]"));
            e = item(a, r * 5 + 3);
            CHECK(e->kind == PV_LIST && e->u.seq.n == (size_t)(6 - r));
            for (size_t g = 0; e->kind == PV_LIST && g < e->u.seq.n; g++)
                CHECK(e->u.seq.items[g]->kind == PV_FLOAT && e->u.seq.items[g]->u.f == prior[g]);
            e = item(a, r * 5 + 4);
            CHECK(e->kind == PV_FLOAT && e->u.f == r / 3.0);
        }
        pickle_free(&d);
    }
    pickle_writer_free(&w);

    /* 100neg rows: int64 ndarrays */
    int64_t neg[100];
    for (int k = 0; k < 100; k++)
        neg[k] = k * 1000003LL - 50;
    shape[0] = 2;
    shape[1] = 3;
    CHECK(pickle_writer_begin(&w, 2, shape) == 0);
    for (int r = 0; r < 2; r++)
        CHECK((pickle_write_np_int64(&w, r) | pickle_write_np_int64(&w, r + 1) |
               pickle_write_int64_ndarray(&w, neg, r ? 100 : 3)) == 0);
    CHECK(pickle_writer_end(&w) == 0);
    CHECK_MSG(pickle_load(&d, w.buf, w.len, "round_trip_neg") == 0, "%s", debcm_last_error());
    if (d.root) {
        for (int r = 0; r < 2; r++) {
            const pv *e = item(d.root, r * 3 + 2);
            CHECK(e->kind == PV_NDARRAY && e->u.arr.type == NPY_INT64 && e->u.arr.ndim == 1 &&
                  e->u.arr.count == (r ? 100 : 3) && !e->u.arr.big_endian);
            for (int64_t k = 0; e->kind == PV_NDARRAY && k < e->u.arr.count; k++) {
                int64_t x;
                memcpy(&x, e->u.arr.data + 8 * k, 8);
                CHECK(x == neg[k]);
            }
            CHECK(item(d.root, r * 3)->kind == PV_INT && item(d.root, r * 3 + 1)->u.i == r + 1);
        }
        pickle_free(&d);
    }
    pickle_writer_free(&w);

    /* refusals */
    shape[0] = 1;
    CHECK(pickle_writer_begin(&w, 1, shape) == 0);
    CHECK(pickle_write_int(&w, 1) == 0);
    CHECK(pickle_write_int(&w, 2) == -1);
    CHECK_CONTAINS(debcm_last_error(), "more elements than the array's shape holds");
    CHECK(pickle_writer_end(&w) == -1);
    pickle_writer_free(&w);
    shape[0] = 2;
    CHECK(pickle_writer_begin(&w, 1, shape) == 0);
    CHECK(pickle_write_int(&w, 1) == 0);
    CHECK(pickle_writer_end(&w) == -1);
    CHECK_CONTAINS(debcm_last_error(), "1 of 2 elements written");
    pickle_writer_free(&w);
    CHECK(pickle_writer_begin(&w, 3, shape) == -1);
    pickle_writer_free(&w);
    shape[0] = -1;
    CHECK(pickle_writer_begin(&w, 1, shape) == -1);
    pickle_writer_free(&w);
    shape[0] = INT64_MAX;
    shape[1] = 2;
    CHECK(pickle_writer_begin(&w, 2, shape) == -1);
    CHECK_CONTAINS(debcm_last_error(), "overflows");
    pickle_writer_free(&w);
}

static int writer_identity(void)
{
    int n = 0;
    for (int i = 0; i < PICKLE_REF_COUNT; i++) {
        char name[128];
        snprintf(name, sizeof name, "writer_%s.np1.pkl", pickle_ref_names[i]);
        size_t len;
        uint8_t *ref = slurp_data(name, &len);
        pickle_writer w;
        int rc = pickle_ref_write(pickle_ref_names[i], &w);
        CHECK_MSG(rc == 0, "%s: %s", name, debcm_last_error());
        if (ref && rc == 0) {
            size_t at = 0;
            while (at < len && at < w.len && ref[at] == w.buf[at])
                at++;
            CHECK_MSG(w.len == len && at == len, "%s: ours (%zu bytes) and NumPy's (%zu bytes) differ at byte %zu",
                      name, w.len, len, at);
            n += w.len == len && at == len;
            /* and what NumPy wrote loads to the same tree as what we wrote */
            pickle_doc a, b;
            if (pickle_load(&a, ref, len, name) == 0 && pickle_load(&b, w.buf, w.len, "ours") == 0) {
                sbuf ra = {0}, rb = {0};
                render(&ra, a.root);
                render(&rb, b.root);
                CHECK_MSG(!strcmp(ra.s, rb.s), "%s: trees differ", name);
                free(ra.s);
                free(rb.s);
                pickle_free(&a);
                pickle_free(&b);
            } else {
                CHECK_MSG(0, "%s: %s", name, debcm_last_error());
            }
        }
        pickle_writer_free(&w);
        free(ref);
    }
    return n;
}

/* debcm-mini's object arrays, written by NumPy 1.24: read them and write them again, byte for byte. */
static int shared_mini_identity(void)
{
#ifdef DEBCM_SHARED_DIR
    static const char *const files[] = {"data_matching/train.npy", "data_matching/100neg/val.npy",
                                        "data_matching/100neg/test.npy"};
    int n = 0;
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/data/debcm-mini/%s", DEBCM_SHARED_DIR, files[f]);
        size_t len;
        uint8_t *b = (uint8_t *)test_read_file(path, &len);
        if (!b) {
            printf("skipped: %s not found\n", path);
            continue;
        }
        size_t off = 10 + (size_t)(b[8] | b[9] << 8); /* format 1.0 header, as np.save wrote it */
        CHECK(len > off && b[6] == 1);
        pickle_doc d;
        int rc = pickle_load(&d, b + off, len - off, path);
        CHECK_MSG(rc == 0, "%s", debcm_last_error());
        if (rc == 0) {
            const pv *a = d.root;
            pickle_writer w;
            CHECK(a->kind == PV_NDARRAY && a->u.arr.type == NPY_OBJECT);
            rc = pickle_writer_begin(&w, a->u.arr.ndim, a->u.arr.shape);
            for (int64_t i = 0; rc == 0 && i < a->u.arr.count; i++) {
                const pv *e = item(a, i);
                if (e->kind == PV_INT)
                    rc = pickle_write_int(&w, e->u.i);
                else if (e->kind == PV_FLOAT)
                    rc = pickle_write_float(&w, e->u.f);
                else if (e->kind == PV_STR)
                    rc = pickle_write_str(&w, e->u.str.s);
                else if (e->kind == PV_LIST) {
                    double v[64];
                    CHECK(e->u.seq.n <= 64);
                    for (size_t k = 0; k < e->u.seq.n && k < 64; k++)
                        v[k] = e->u.seq.items[k]->u.f;
                    rc = pickle_write_float_list(&w, v, e->u.seq.n);
                } else if (e->kind == PV_NDARRAY && e->u.arr.type == NPY_INT64) {
                    int64_t *v = malloc((size_t)e->u.arr.count * 8 + 8);
                    memcpy(v, e->u.arr.data, (size_t)e->u.arr.count * 8);
                    rc = pickle_write_int64_ndarray(&w, v, (size_t)e->u.arr.count);
                    free(v);
                } else {
                    CHECK_MSG(0, "%s: element %lld is a %s", path, (long long)i, pv_kind_name(e->kind));
                    rc = -1;
                }
            }
            if (rc == 0)
                rc = pickle_writer_end(&w);
            CHECK_MSG(rc == 0, "%s", debcm_last_error());
            CHECK_MSG(rc == 0 && w.len == len - off && !memcmp(w.buf, b + off, w.len),
                      "%s: rewritten stream differs (%zu vs %zu bytes)", path, w.len, len - off);
            n += rc == 0 && w.len == len - off && !memcmp(w.buf, b + off, w.len);
            pickle_writer_free(&w);
            pickle_free(&d);
        }
        free(b);
    }
    return n;
#else
    printf("skipped: DEBCM_SHARED_DIR not set\n");
    return 0;
#endif
}

/* numeric payloads go straight into io/npy.c's converters, with their byte order and memory order */
static void payload_conversions(void)
{
    static const struct {
        const char *file;
        double want[6];
        int n;
    } t[] = {
        {"num_i8_2d_F.np1.p3.pkl", {0, 1, 2, 3, 4, 5}, 6},   {"num_i8_2d_F.np2.p5.pkl", {0, 1, 2, 3, 4, 5}, 6},
        {"num_f4_be.np1.p2.pkl", {1.5, -2, 3.25, 1e-3}, 4}, {"num_f4_be.np2.p5.pkl", {1.5, -2, 3.25, 1e-3}, 4},
        {"num_f2.np1.p4.pkl", {0, 1, -2.5, 65504}, 4},       {"num_u2_be.np2.p3.pkl", {1, 65535}, 2},
        {"num_noncontig.np1.p5.pkl", {0, 2, 4, 6, 8, 10}, 6},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        size_t len;
        uint8_t *b = slurp_data(t[i].file, &len);
        pickle_doc d;
        if (!b || pickle_load(&d, b, len, t[i].file) != 0) {
            CHECK_MSG(0, "%s: %s", t[i].file, debcm_last_error());
            free(b);
            continue;
        }
        const pv *a = d.root;
        float f[6];
        CHECK(a->kind == PV_NDARRAY && a->u.arr.count == t[i].n);
        CHECK_MSG(npy_convert_f32(f, a->u.arr.data, a->u.arr.type, a->u.arr.big_endian, a->u.arr.fortran_order,
                                  a->u.arr.ndim, a->u.arr.shape, t[i].file) == 0,
                  "%s", debcm_last_error());
        for (int k = 0; k < t[i].n; k++)
            CHECK_NEAR(f[k], t[i].want[k], 1e-6);
        pickle_free(&d);
        free(b);
    }
}

/* ---- 5. the fuzz corpus ------------------------------------------------------------------------------------------ */

static int fuzz_corpus(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/../fuzz/corpus/pickle", data_dir);
    int n = test_replay_corpus(dir, LLVMFuzzerTestOneInput);
    CHECK_MSG(n >= 0, "cannot open %s", dir);
    return n < 0 ? 0 : n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s tests/data\n", argv[0]);
        return 2;
    }
    data_dir = argv[1];
    int np1 = manifest_valid("np1"), np2 = manifest_valid("np2");
    printf("NumPy-written streams: %d from 1.24, %d from 2.x\n", np1, np2);
    CHECK(np1 > 50 && np2 > 50);
    int bad = manifest_bad();
    printf("hostile streams refused: %d from the manifest\n", bad);
    CHECK(bad > 50);
    hostile_built_here();
    int cuts = truncations();
    printf("truncated prefixes refused: %d\n", cuts);
    int loaded = 0;
    int muts = mutations(&loaded);
    printf("mutants: %d (%d loaded, the rest refused)\n", muts, loaded);
    writer_round_trip();
    int ids = writer_identity();
    printf("writer streams byte-identical to NumPy 1.24's: %d of %d\n", ids, PICKLE_REF_COUNT);
    int mini = shared_mini_identity();
    printf("debcm-mini object arrays rewritten byte for byte: %d\n", mini);
    payload_conversions();
    int corpus = fuzz_corpus();
    printf("fuzz corpus inputs replayed: %d\n", corpus);
    return check_done();
}
