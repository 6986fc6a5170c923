/* io/npy.c — the NumPy .npy reader and writer behind io/npy.h, the bottom of the data path (SPEC §1).
 *
 * Reading: the file is memory-mapped whole; the header (a Python dict literal) is parsed by hand, strictly —
 * exactly the keys 'descr', 'fortran_order' and 'shape', simple dtypes only, 0-d to 2-d — and checked against
 * the size of the file before any payload byte is touched. Conversions to float32/int64 read the payload once,
 * byte-swapping and transposing Fortran-order data on the way; the dtype and byte order are dispatched by a switch
 * outside the loops so the hot loops are straight-line code. Writing reproduces NumPy's header byte for byte
 * (including the spare spaces NumPy >= 1.24 leaves for growing the first axis) and replaces the target
 * atomically through io/atomic_file.h (temporary file, fsync, rename; the temporary file removed on failure and
 * on SIGINT/SIGTERM/SIGHUP). The byte order '=' and the in-place float32 view assume a little-endian host, which
 * is checked at compile time. */
#include "io/npy.h"
#include "io/atomic_file.h"
#include "io/file_map.h"

#include <float.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io/npy.c assumes a little-endian host ('=' descrs and npy_f32_view)"
#endif

static const char npy_magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

/* ---- types ---------------------------------------------------------------------------------------------------- */

const char *npy_type_name(npy_type t)
{
    switch (t) {
    case NPY_BOOL: return "bool";
    case NPY_INT8: return "int8";
    case NPY_INT16: return "int16";
    case NPY_INT32: return "int32";
    case NPY_INT64: return "int64";
    case NPY_UINT8: return "uint8";
    case NPY_UINT16: return "uint16";
    case NPY_UINT32: return "uint32";
    case NPY_UINT64: return "uint64";
    case NPY_FLOAT16: return "float16";
    case NPY_FLOAT32: return "float32";
    case NPY_FLOAT64: return "float64";
    case NPY_OBJECT: return "object";
    default: return "unknown";
    }
}

int npy_type_size(npy_type t)
{
    switch (t) {
    case NPY_BOOL: case NPY_INT8: case NPY_UINT8: return 1;
    case NPY_INT16: case NPY_UINT16: case NPY_FLOAT16: return 2;
    case NPY_INT32: case NPY_UINT32: case NPY_FLOAT32: return 4;
    case NPY_INT64: case NPY_UINT64: case NPY_FLOAT64: case NPY_OBJECT: return 8;
    default: return 0;
    }
}

/* "(3, 4)", "(3,)" or "()" — Python's repr of the shape tuple, as NumPy writes it and as messages show it */
static void shape_repr(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "(");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, ndim == 1 ? ",)" : ")");
}

/* the shortest %g form that reads back as v (Python's repr, near enough), for messages */
static const char *fmt_double(char *buf, size_t cap, double v)
{
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (v != v || strtod(buf, NULL) == v)
            break;
    }
    return buf;
}

/* ---- header parsing ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
    const char *name;
} hcursor;

/* a printable excerpt of what the parser found at p, for messages */
static const char *found_at(const hcursor *c, char *buf, size_t cap)
{
    if (c->p >= c->end)
        return "the end of the header";
    size_t n = 0;
    buf[n++] = '\'';
    for (const char *q = c->p; q < c->end && n + 5 < cap && q - c->p < 24; q++)
        buf[n++] = (*q >= 0x20 && *q < 0x7f) ? *q : '?';
    buf[n++] = '\'';
    buf[n] = '\0';
    return buf;
}

static int hfail(const hcursor *c, const char *expected)
{
    char b[40];
    return debcm_fail("%s: malformed header: expected %s, found %s", c->name, expected, found_at(c, b, sizeof b));
}

static void skip_ws(hcursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* a Python string literal without escapes: '...' or "..." */
static int parse_str(hcursor *c, char *out, size_t cap)
{
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return hfail(c, "a quoted string");
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n')
            return hfail(c, "a simple string (no escapes or newlines)");
        if (n + 1 >= cap)
            return debcm_fail("%s: malformed header: string longer than %zu bytes", c->name, cap - 1);
        out[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return debcm_fail("%s: malformed header: unterminated string", c->name);
    c->p++;
    out[n] = '\0';
    return 0;
}

static int is_ident_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_';
}

static int parse_bool(hcursor *c, int *out)
{
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && memcmp(c->p, "True", 4) == 0 && (left == 4 || !is_ident_char(c->p[4]))) {
        c->p += 4;
        *out = 1;
        return 0;
    }
    if (left >= 5 && memcmp(c->p, "False", 5) == 0 && (left == 5 || !is_ident_char(c->p[5]))) {
        c->p += 5;
        *out = 0;
        return 0;
    }
    return hfail(c, "True or False for 'fortran_order'");
}

#define NPY_PARSE_MAX_DIMS 32 /* more are parsed only to say how many there were */

/* a tuple of non-negative Python ints, each possibly with the 'L' suffix of Python 2 era NumPy: (), (3,), (3L, 4L) */
static int parse_shape(hcursor *c, int *ndim, int64_t *dims)
{
    if (c->p >= c->end || *c->p != '(')
        return hfail(c, "a tuple '(' for 'shape'");
    c->p++;
    int n = 0;
    int trailing_comma = 0;
    for (;;) {
        skip_ws(c);
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            break;
        }
        if (c->p < c->end && *c->p == '-')
            return debcm_fail("%s: header: negative dimension in 'shape' (found '-' at dimension %d)", c->name,
                              n);
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return hfail(c, "a non-negative integer dimension in 'shape'");
        uint64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            v = v * 10 + (uint64_t)(*c->p - '0');
            if (v > (uint64_t)INT64_MAX)
                return debcm_fail("%s: header: dimension %d of 'shape' exceeds 2**63-1", c->name, n);
            c->p++;
        }
        if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
            c->p++;
        if (n >= NPY_PARSE_MAX_DIMS)
            return debcm_fail("%s: header: 'shape' has more than %d dimensions; expected at most %d", c->name,
                              NPY_PARSE_MAX_DIMS, NPY_MAX_NDIM);
        dims[n++] = (int64_t)v;
        skip_ws(c);
        trailing_comma = 0;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            trailing_comma = 1;
            continue;
        }
        if (c->p < c->end && *c->p == ')') {
            c->p++;
            break;
        }
        return hfail(c, "',' or ')' in 'shape'");
    }
    if (n == 1 && !trailing_comma)
        return debcm_fail("%s: header: 'shape' is (%lld), a parenthesised int, not a tuple (a 1-d shape is written "
                          "(%lld,))", c->name, (long long)dims[0], (long long)dims[0]);
    *ndim = n;
    return 0;
}

/* descr strings NumPy writes for the types we read: '<f4', '>i8', '|u1', '|b1', '|O' (and '|O8' of old NumPy) */
static int parse_descr(const char *descr, npy_header *h, const char *name)
{
    const char *s = descr;
    char order = '=';
    if (*s == '<' || *s == '>' || *s == '|' || *s == '=')
        order = *s++;
    char kind = *s ? *s++ : '\0';
    int size = 0, digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 3) {
        size = size * 10 + (*s++ - '0');
        digits++;
    }
    npy_type t = NPY_TYPE_COUNT;
    if (*s == '\0') {
        switch (kind) {
        case 'f': t = size == 2 ? NPY_FLOAT16 : size == 4 ? NPY_FLOAT32 : size == 8 ? NPY_FLOAT64 : t; break;
        case 'i': t = size == 1 ? NPY_INT8 : size == 2 ? NPY_INT16 : size == 4 ? NPY_INT32 : size == 8 ? NPY_INT64 : t;
            break;
        case 'u':
            t = size == 1 ? NPY_UINT8 : size == 2 ? NPY_UINT16 : size == 4 ? NPY_UINT32 : size == 8 ? NPY_UINT64 : t;
            break;
        case 'b': t = size == 1 ? NPY_BOOL : t; break;
        case '?': t = digits == 0 ? NPY_BOOL : t; break;
        case 'O': t = (digits == 0 || size == 8) ? NPY_OBJECT : t; break;
        default: break;
        }
    }
    if (t == NPY_TYPE_COUNT)
        return debcm_fail("%s: unsupported dtype '%s' in header; expected float16/32/64 ('<f2', '<f4', '<f8'), "
                          "int8..int64, uint8..uint64, bool ('|b1') or object ('|O')", name, descr);
    h->type = t;
    h->elem_size = npy_type_size(t);
    h->big_endian = (order == '>' && h->elem_size > 1 && t != NPY_OBJECT);
    return 0;
}

int npy_parse_header(npy_header *h, const uint8_t *buf, size_t len, const char *name)
{
    memset(h, 0, sizeof *h);
    if (!name)
        name = "<buffer>";
    if (len == 0)
        return debcm_fail("%s: empty (0 bytes), expected a .npy file", name);
    size_t nmagic = len < sizeof npy_magic ? len : sizeof npy_magic;
    if (memcmp(buf, npy_magic, nmagic) != 0) {
        char found[32] = "";
        for (size_t i = 0, n = 0; i < nmagic && n + 4 < sizeof found; i++)
            n += (size_t)snprintf(found + n, sizeof found - n, "%02x", buf[i]);
        return debcm_fail("%s: not a .npy file: expected the magic \\x93NUMPY, found bytes %s", name, found);
    }
    if (len < 8)
        return debcm_fail("%s: truncated .npy file: %zu bytes, too short for the magic and format version (8)", name,
                          len);
    int major = buf[6], minor = buf[7];
    if ((major != 1 && major != 2 && major != 3) || minor != 0)
        return debcm_fail("%s: unsupported .npy format version %d.%d; expected 1.0, 2.0 or 3.0", name, major, minor);
    size_t prefix = major == 1 ? 10 : 12;
    if (len < prefix)
        return debcm_fail("%s: truncated .npy file: %zu bytes, too short for the version %d.0 preamble (%zu bytes)",
                          name, len, major, prefix);
    uint64_t hlen = major == 1 ? (uint64_t)buf[8] | (uint64_t)buf[9] << 8
                               : (uint64_t)buf[8] | (uint64_t)buf[9] << 8 | (uint64_t)buf[10] << 16 |
                                     (uint64_t)buf[11] << 24;
    if (hlen > NPY_MAX_HEADER_LEN)
        return debcm_fail("%s: header length %llu exceeds the limit of %d bytes", name, (unsigned long long)hlen,
                          NPY_MAX_HEADER_LEN);
    if (hlen > len - prefix)
        return debcm_fail("%s: truncated .npy file: header length is %llu bytes but only %zu bytes follow the "
                          "preamble", name, (unsigned long long)hlen, len - prefix);
    h->version_major = major;
    h->version_minor = minor;
    h->data_offset = prefix + (size_t)hlen;

    hcursor c = {(const char *)buf + prefix, (const char *)buf + prefix + hlen, name};
    int have_descr = 0, have_fortran = 0, have_shape = 0;
    int ndim = 0;
    int64_t dims[NPY_PARSE_MAX_DIMS];
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return hfail(&c, "a dict '{' at the start of the header");
    c.p++;
    for (;;) {
        skip_ws(&c);
        if (c.p < c.end && *c.p == '}')
            break;
        char key[32];
        if (parse_str(&c, key, sizeof key))
            return -1;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':')
            return hfail(&c, "':' after a key");
        c.p++;
        skip_ws(&c);
        int *seen;
        if (strcmp(key, "descr") == 0) {
            seen = &have_descr;
            if (c.p < c.end && *c.p == '[')
                return debcm_fail("%s: structured dtype (a list of fields) in 'descr' is not supported; expected "
                                  "a simple dtype such as '<f4'", name);
            char descr[32];
            if (parse_str(&c, descr, sizeof descr) || parse_descr(descr, h, name))
                return -1;
        } else if (strcmp(key, "fortran_order") == 0) {
            seen = &have_fortran;
            if (parse_bool(&c, &h->fortran_order))
                return -1;
        } else if (strcmp(key, "shape") == 0) {
            seen = &have_shape;
            if (parse_shape(&c, &ndim, dims))
                return -1;
        } else {
            return debcm_fail("%s: unknown key '%s' in header; expected only 'descr', 'fortran_order' and 'shape'",
                              name, key);
        }
        if (*seen)
            return debcm_fail("%s: key '%s' appears twice in header", name, key);
        *seen = 1;
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}')
            break;
        return hfail(&c, "',' or '}' after a value");
    }
    c.p++; /* the '}' */
    skip_ws(&c);
    if (c.p < c.end)
        return hfail(&c, "only spaces and a newline after the header dict");
    if (!have_descr || !have_fortran || !have_shape)
        return debcm_fail("%s: header lacks the key '%s'", name,
                          !have_descr ? "descr" : !have_fortran ? "fortran_order" : "shape");
    if (ndim > NPY_MAX_NDIM) {
        char s[128];
        shape_repr(s, sizeof s, ndim, dims);
        return debcm_fail("%s: %d-d array (shape %s) is not supported; expected 0-d, 1-d or 2-d", name, ndim, s);
    }
    h->ndim = ndim;
    int64_t count = 1;
    for (int i = 0; i < ndim; i++) {
        h->shape[i] = dims[i];
        if (__builtin_mul_overflow(count, dims[i], &count)) {
            char s[128];
            shape_repr(s, sizeof s, ndim, dims);
            return debcm_fail("%s: shape %s has more than 2**63-1 elements", name, s);
        }
    }
    int64_t bytes;
    if (__builtin_mul_overflow(count, (int64_t)h->elem_size, &bytes)) {
        char s[128];
        shape_repr(s, sizeof s, ndim, dims);
        return debcm_fail("%s: shape %s of %s is more than 2**63-1 bytes", name, s, npy_type_name(h->type));
    }
    h->count = count;
    return 0;
}

/* ---- opening ------------------------------------------------------------------------------------------------- */

/* parse and check the payload size; f->data/data_size are set from buf */
static int open_common(npy_file *f, const uint8_t *buf, size_t len)
{
    if (len == 0)
        return debcm_fail("%s: empty (0 bytes), expected a .npy file", f->path);
    if (npy_parse_header(&f->h, buf, len, f->path))
        return -1;
    f->data = buf + f->h.data_offset;
    f->data_size = len - f->h.data_offset;
    if (f->h.type == NPY_OBJECT) {
        if (f->data_size == 0)
            return debcm_fail("%s: object array without its pickle payload (nothing after the header)", f->path);
        return 0;
    }
    uint64_t need = (uint64_t)f->h.count * (uint64_t)f->h.elem_size; /* no overflow: checked by the parser */
    if (need != f->data_size) {
        char s[128];
        shape_repr(s, sizeof s, f->h.ndim, f->h.shape);
        if (need > f->data_size)
            return debcm_fail("%s: header says shape %s of %s = %llu bytes but the file holds only %zu bytes after "
                              "the header", f->path, s, npy_type_name(f->h.type), (unsigned long long)need,
                              f->data_size);
        return debcm_fail("%s: header says shape %s of %s = %llu bytes but the file holds %zu bytes after the "
                          "header: %llu trailing bytes (NumPy never writes any)", f->path, s,
                          npy_type_name(f->h.type), (unsigned long long)need, f->data_size,
                          (unsigned long long)(f->data_size - need));
    }
    return 0;
}

/* f->path = name, or an error when it is longer than max - 1 bytes (a shortened name would point at another
 * file): PATH_MAX for a path, all of f->path for a buffer's name */
static int set_path(npy_file *f, const char *name, size_t max)
{
    size_t n = strlen(name);
    if (n >= max)
        return debcm_fail_path_too_long(name, max - 1);
    memcpy(f->path, name, n + 1);
    return 0;
}

int npy_open_buffer(npy_file *f, const void *buf, size_t len, const char *name)
{
    memset(f, 0, sizeof *f);
    if (set_path(f, name ? name : "<buffer>", sizeof f->path))
        return -1;
    if (open_common(f, buf, len)) {
        npy_close(f);
        return -1;
    }
    return 0;
}

int npy_open(npy_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    if (set_path(f, path, PATH_MAX))
        return -1;
    file_map map;
    if (file_map_open(&map, path, "a .npy file", 1) != 0)
        return -1;
    f->map_base = map.base;
    f->map_len = map.len;
    if (open_common(f, map.base, map.len)) {
        npy_close(f);
        return -1;
    }
    return 0;
}

void npy_close(npy_file *f)
{
    if (!f)
        return;
    file_map map = {f->map_base, f->map_len};
    file_map_close(&map);
    free(f->owned);
    memset(f, 0, sizeof *f);
}

const float *npy_f32_view(const npy_file *f)
{
    const npy_header *h = &f->h;
    if (!f->data || h->type != NPY_FLOAT32 || h->big_endian)
        return NULL;
    /* a Fortran-order array with a dimension of 1 (or 0) has the same layout as in C order */
    if (h->ndim == 2 && h->fortran_order && h->shape[0] > 1 && h->shape[1] > 1)
        return NULL;
    if ((uintptr_t)f->data % _Alignof(float) != 0)
        return NULL;
    return (const float *)(const void *)f->data;
}

/* ---- conversions --------------------------------------------------------------------------------------------- */

static inline uint16_t ld16(const uint8_t *p, int swap)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return swap ? __builtin_bswap16(v) : v;
}
static inline uint32_t ld32(const uint8_t *p, int swap)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return swap ? __builtin_bswap32(v) : v;
}
static inline uint64_t ld64(const uint8_t *p, int swap)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return swap ? __builtin_bswap64(v) : v;
}
static inline float ldf32(const uint8_t *p, int swap)
{
    uint32_t u = ld32(p, swap);
    float v;
    memcpy(&v, &u, 4);
    return v;
}
static inline double ldf64(const uint8_t *p, int swap)
{
    uint64_t u = ld64(p, swap);
    double v;
    memcpy(&v, &u, 8);
    return v;
}

/* IEEE 754 binary16 -> binary32, exact: normals rebias the exponent (15 -> 127), subnormals are mant * 2^-24,
 * infinities and NaNs keep their payload. */
static inline float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t bits;
    if (exp == 0) {
        float v = (float)mant * 0x1p-24f;
        return sign ? -v : v;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (mant << 13);
    else
        bits = sign | ((exp + 112u) << 23) | (mant << 13);
    float v;
    memcpy(&v, &bits, 4);
    return v;
}

typedef struct {
    int64_t rows, cols, n; /* the C-order view: ndim 0 -> 1x1, ndim 1 -> 1xN */
    int transpose;         /* source is Fortran order with rows > 1 and cols > 1 */
    int ndim;
} conv_shape;

static int conv_setup(conv_shape *s, const uint8_t *data, npy_type type, int fortran_order, int ndim,
                      const int64_t *shape, const char *name)
{
    if (ndim < 0 || ndim > NPY_MAX_NDIM)
        return debcm_fail("%s: %d-d array; expected 0-d, 1-d or 2-d", name, ndim);
    s->ndim = ndim;
    s->rows = ndim == 2 ? shape[0] : 1;
    s->cols = ndim == 0 ? 1 : shape[ndim - 1];
    if (s->rows < 0 || s->cols < 0)
        return debcm_fail("%s: negative dimension in shape", name);
    if (__builtin_mul_overflow(s->rows, s->cols, &s->n) || s->n > (int64_t)(SIZE_MAX / 8))
        return debcm_fail("%s: shape too large", name);
    s->transpose = ndim == 2 && fortran_order && s->rows > 1 && s->cols > 1;
    if (type == NPY_OBJECT)
        return debcm_fail("%s: object array cannot be converted to numbers (its payload is a pickle)", name);
    if ((int)type < 0 || type >= NPY_TYPE_COUNT)
        return debcm_fail("%s: unknown element type %d", name, (int)type);
    if (!data && s->n > 0)
        return debcm_fail("%s: no data", name);
    return 0;
}

/* where a flat C-order index lies, for messages: "element 7 (row 1, col 3)" */
static void describe_elem(char *buf, size_t cap, const conv_shape *s, int64_t d)
{
    if (s->ndim == 0)
        snprintf(buf, cap, "the 0-d value");
    else if (s->ndim == 1)
        snprintf(buf, cap, "element %lld", (long long)d);
    else
        snprintf(buf, cap, "element %lld (row %lld, col %lld)", (long long)d, (long long)(d / s->cols),
                 (long long)(d % s->cols));
}

#define NPY_TILE 32 /* measured: 32 beats 16, 64 and 128 on a 32768x4096 float32 transpose */

/* Visit every element once: p points at the source element, d is its flat index in C order. BODY may `goto` out.
 * Fortran-order sources are walked in 32x32 tiles so both sides stay in cache. */
#define NPY_FOR_EACH(SIZE, BODY)                                                                               \
    do {                                                                                                       \
        if (!s.transpose) {                                                                                    \
            for (int64_t d = 0; d < s.n; d++) {                                                                \
                const uint8_t *p = data + (size_t)d * (SIZE);                                                  \
                BODY                                                                                           \
            }                                                                                                  \
        } else {                                                                                               \
            for (int64_t r0 = 0; r0 < s.rows; r0 += NPY_TILE)                                                  \
                for (int64_t c0 = 0; c0 < s.cols; c0 += NPY_TILE) {                                            \
                    int64_t r1 = r0 + NPY_TILE < s.rows ? r0 + NPY_TILE : s.rows;                              \
                    int64_t c1 = c0 + NPY_TILE < s.cols ? c0 + NPY_TILE : s.cols;                              \
                    for (int64_t c = c0; c < c1; c++)                                                          \
                        for (int64_t r = r0; r < r1; r++) {                                                    \
                            const uint8_t *p = data + (size_t)(c * s.rows + r) * (SIZE);                       \
                            int64_t d = r * s.cols + c;                                                        \
                            BODY                                                                               \
                        }                                                                                      \
                }                                                                                              \
        }                                                                                                      \
    } while (0)

/* the same loop instantiated with a compile-time byte-swap flag `sw`, chosen once outside the loop */
#define NPY_FOR_EACH_SW(SIZE, BODY)                                                                            \
    do {                                                                                                       \
        if (swap) {                                                                                            \
            const int sw = 1;                                                                                  \
            NPY_FOR_EACH(SIZE, BODY);                                                                          \
        } else {                                                                                               \
            const int sw = 0;                                                                                  \
            NPY_FOR_EACH(SIZE, BODY);                                                                          \
        }                                                                                                      \
    } while (0)

int npy_convert_f32(float *out, const uint8_t *data, npy_type type, int big_endian, int fortran_order, int ndim,
                    const int64_t *shape, const char *name)
{
    conv_shape s;
    if (!name)
        name = "<array>";
    if (conv_setup(&s, data, type, fortran_order, ndim, shape, name))
        return -1;
    int swap = big_endian && npy_type_size(type) > 1;
    int64_t bad = -1;
    double badv = 0;
    if (type == NPY_FLOAT32 && !swap && !s.transpose) {
        if (s.n)
            memcpy(out, data, (size_t)s.n * 4);
        return 0;
    }
    switch (type) {
    case NPY_BOOL: NPY_FOR_EACH(1, out[d] = *p ? 1.0f : 0.0f;); break;
    case NPY_INT8: NPY_FOR_EACH(1, out[d] = (float)(int8_t)*p;); break;
    case NPY_UINT8: NPY_FOR_EACH(1, out[d] = (float)*p;); break;
    case NPY_INT16: NPY_FOR_EACH_SW(2, out[d] = (float)(int16_t)ld16(p, sw);); break;
    case NPY_UINT16: NPY_FOR_EACH_SW(2, out[d] = (float)ld16(p, sw);); break;
    case NPY_INT32: NPY_FOR_EACH_SW(4, out[d] = (float)(int32_t)ld32(p, sw);); break;
    case NPY_UINT32: NPY_FOR_EACH_SW(4, out[d] = (float)ld32(p, sw);); break;
    case NPY_INT64: NPY_FOR_EACH_SW(8, out[d] = (float)(int64_t)ld64(p, sw);); break;
    case NPY_UINT64: NPY_FOR_EACH_SW(8, out[d] = (float)ld64(p, sw);); break;
    case NPY_FLOAT16: NPY_FOR_EACH_SW(2, out[d] = half_to_float(ld16(p, sw));); break;
    case NPY_FLOAT32: NPY_FOR_EACH_SW(4, out[d] = ldf32(p, sw);); break;
    case NPY_FLOAT64:
        NPY_FOR_EACH_SW(8, {
            double v = ldf64(p, sw);
            double a = v < 0 ? -v : v;
            if (a > FLT_MAX && a <= DBL_MAX) { /* finite but beyond float32; NaN/Inf pass through */
                bad = d;
                badv = v;
                goto out_of_range;
            }
            out[d] = (float)v;
        });
        break;
    default: return debcm_fail("%s: cannot convert %s to float32", name, npy_type_name(type));
    }
    return 0;
out_of_range:;
    char where[96], num[40];
    describe_elem(where, sizeof where, &s, bad);
    return debcm_fail("%s: %s is %s, outside float32's range (+-3.4028235e+38)", name, where,
                      fmt_double(num, sizeof num, badv));
}

#define I64_LO (-0x1p63)
#define I64_HI (0x1p63)

int npy_convert_i64(int64_t *out, const uint8_t *data, npy_type type, int big_endian, int fortran_order, int ndim,
                    const int64_t *shape, const char *name)
{
    conv_shape s;
    if (!name)
        name = "<array>";
    if (conv_setup(&s, data, type, fortran_order, ndim, shape, name))
        return -1;
    int swap = big_endian && npy_type_size(type) > 1;
    int64_t bad = -1;
    double badv = 0;
    uint64_t badu = 0;
    if (type == NPY_INT64 && !swap && !s.transpose) {
        if (s.n)
            memcpy(out, data, (size_t)s.n * 8);
        return 0;
    }
    /* a float is an id only when integral and inside int64 (NaN fails every comparison) */
#define NPY_FLOAT_TO_I64(EXPR)                                                                                 \
    {                                                                                                          \
        double v = (EXPR);                                                                                     \
        if (!(v >= I64_LO && v < I64_HI) || (double)(int64_t)v != v) {                                         \
            bad = d;                                                                                           \
            badv = v;                                                                                          \
            goto not_integral;                                                                                 \
        }                                                                                                      \
        out[d] = (int64_t)v;                                                                                   \
    }
    switch (type) {
    case NPY_BOOL: NPY_FOR_EACH(1, out[d] = *p ? 1 : 0;); break;
    case NPY_INT8: NPY_FOR_EACH(1, out[d] = (int8_t)*p;); break;
    case NPY_UINT8: NPY_FOR_EACH(1, out[d] = *p;); break;
    case NPY_INT16: NPY_FOR_EACH_SW(2, out[d] = (int16_t)ld16(p, sw);); break;
    case NPY_UINT16: NPY_FOR_EACH_SW(2, out[d] = ld16(p, sw);); break;
    case NPY_INT32: NPY_FOR_EACH_SW(4, out[d] = (int32_t)ld32(p, sw);); break;
    case NPY_UINT32: NPY_FOR_EACH_SW(4, out[d] = ld32(p, sw);); break;
    case NPY_INT64: NPY_FOR_EACH_SW(8, out[d] = (int64_t)ld64(p, sw);); break;
    case NPY_UINT64:
        NPY_FOR_EACH_SW(8, {
            uint64_t u = ld64(p, sw);
            if (u > (uint64_t)INT64_MAX) {
                bad = d;
                badu = u;
                goto too_large;
            }
            out[d] = (int64_t)u;
        });
        break;
    case NPY_FLOAT16: NPY_FOR_EACH_SW(2, NPY_FLOAT_TO_I64(half_to_float(ld16(p, sw)))); break;
    case NPY_FLOAT32: NPY_FOR_EACH_SW(4, NPY_FLOAT_TO_I64(ldf32(p, sw))); break;
    case NPY_FLOAT64: NPY_FOR_EACH_SW(8, NPY_FLOAT_TO_I64(ldf64(p, sw))); break;
    default: return debcm_fail("%s: cannot convert %s to int64", name, npy_type_name(type));
    }
#undef NPY_FLOAT_TO_I64
    return 0;
    char where[96], num[40];
not_integral:
    describe_elem(where, sizeof where, &s, bad);
    if (badv != badv)
        return debcm_fail("%s: %s of the %s array is NaN; expected an integer", name, where, npy_type_name(type));
    if (!(badv >= I64_LO && badv < I64_HI))
        return debcm_fail("%s: %s of the %s array is %s, outside int64's range", name, where, npy_type_name(type),
                          fmt_double(num, sizeof num, badv));
    return debcm_fail("%s: %s of the %s array is %s; expected an integral value", name, where, npy_type_name(type),
                      fmt_double(num, sizeof num, badv));
too_large:
    describe_elem(where, sizeof where, &s, bad);
    return debcm_fail("%s: %s of the uint64 array is %llu, larger than int64's maximum 9223372036854775807", name,
                      where, (unsigned long long)badu);
}

int npy_to_f32(const npy_file *f, float *out)
{
    const npy_header *h = &f->h;
    return npy_convert_f32(out, f->data, h->type, h->big_endian, h->fortran_order, h->ndim, h->shape, f->path);
}

int npy_to_i64(const npy_file *f, int64_t *out)
{
    const npy_header *h = &f->h;
    return npy_convert_i64(out, f->data, h->type, h->big_endian, h->fortran_order, h->ndim, h->shape, f->path);
}

/* ---- writing -------------------------------------------------------------------------------------------------- */

static const char *descr_of(npy_type t, int big_endian)
{
    static const char *le[NPY_TYPE_COUNT] = {"|b1", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8",
                                             "<f2", "<f4", "<f8", "|O"};
    static const char *be[NPY_TYPE_COUNT] = {"|b1", "|i1", ">i2", ">i4", ">i8", "|u1", ">u2", ">u4", ">u8",
                                             ">f2", ">f4", ">f8", "|O"};
    return big_endian ? be[t] : le[t];
}

/* The preamble and header exactly as numpy.lib.format._write_array_header writes them (NumPy 1.24): the dict
 * with sorted keys and a ", " after every value, then 21 - len(repr(growth axis)) spaces, then space padding and
 * a '\n' so that the payload starts at a multiple of 64. Returns the total length, or 0 on error. */
static size_t build_header(uint8_t *out, size_t cap, const char *descr, int fortran, int ndim, const int64_t *shape,
                           int *version, const char *path)
{
    char dict[512];
    char s[128];
    shape_repr(s, sizeof s, ndim, shape);
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }", descr,
                     fortran ? "True" : "False", s);
    if (ndim > 0) {
        char axis[32];
        int alen = snprintf(axis, sizeof axis, "%lld", (long long)shape[fortran ? ndim - 1 : 0]);
        for (int i = alen; i < 21 && n + 1 < (int)sizeof dict; i++)
            dict[n++] = ' ';
        dict[n] = '\0';
    }
    int v = *version;
    for (;;) {
        int use = v ? v : 1;
        size_t prefix = use == 1 ? 10 : 12;
        size_t hlen = (size_t)n + 1;
        size_t padlen = 64 - (prefix + hlen) % 64;
        size_t field = hlen + padlen;
        if (use == 1 && field > 65535) {
            if (v == 0) { /* auto: NumPy falls back to 2.0 */
                v = 2;
                continue;
            }
            debcm_fail("%s: header of %zu bytes does not fit format version 1.0", path, field);
            return 0;
        }
        size_t total = prefix + field;
        if (total > cap) {
            debcm_fail("%s: header of %zu bytes is too long", path, total);
            return 0;
        }
        memcpy(out, npy_magic, 6);
        out[6] = (uint8_t)use;
        out[7] = 0;
        out[8] = (uint8_t)(field & 0xff);
        out[9] = (uint8_t)(field >> 8 & 0xff);
        if (use != 1) {
            out[10] = (uint8_t)(field >> 16 & 0xff);
            out[11] = (uint8_t)(field >> 24 & 0xff);
        }
        memcpy(out + prefix, dict, (size_t)n);
        memset(out + prefix + n, ' ', padlen);
        out[total - 1] = '\n';
        *version = use;
        return total;
    }
}

static int check_write_shape(const char *path, int ndim, const int64_t *shape, int64_t *count)
{
    if (ndim < 0 || ndim > NPY_MAX_NDIM)
        return debcm_fail("%s: cannot write a %d-d array; expected 0-d, 1-d or 2-d", path, ndim);
    *count = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return debcm_fail("%s: cannot write negative dimension %lld", path, (long long)shape[i]);
        if (__builtin_mul_overflow(*count, shape[i], count) || *count > (int64_t)(SIZE_MAX / 8))
            return debcm_fail("%s: shape too large to write", path);
    }
    return 0;
}

/* payload in the file's order and byte order, through a bounded buffer (element by element when swapping or
 * transposing: the writer serves small outputs, the fast path is the plain fwrite) */
static int write_payload(atomic_file *a, const uint8_t *src, int esize, int swap, int transpose, int64_t rows,
                         int64_t cols, int64_t count)
{
    if (!swap && !transpose)
        return atomic_file_write(a, src, (size_t)count * (size_t)esize);
    enum { CHUNK = 1 << 16 };
    uint8_t *buf = malloc((size_t)CHUNK * (size_t)esize);
    if (!buf)
        return debcm_fail("%s: out of memory (%zu bytes to reorder the payload)", a->path,
                          (size_t)CHUNK * (size_t)esize);
    int64_t done = 0;
    while (done < count) {
        int64_t k = count - done < CHUNK ? count - done : CHUNK;
        for (int64_t j = 0; j < k; j++) {
            int64_t o = done + j; /* index in file order */
            int64_t i = transpose ? (o % rows) * cols + o / rows : o;
            const uint8_t *p = src + (size_t)i * (size_t)esize;
            uint8_t *q = buf + (size_t)j * (size_t)esize;
            if (swap)
                for (int b = 0; b < esize; b++)
                    q[b] = p[esize - 1 - b];
            else
                memcpy(q, p, (size_t)esize);
        }
        if (atomic_file_write(a, buf, (size_t)k * (size_t)esize)) {
            free(buf);
            return -1;
        }
        done += k;
    }
    free(buf);
    return 0;
}

int npy_write(const char *path, npy_type type, int ndim, const int64_t *shape, const void *data,
              const npy_write_options *opt)
{
    npy_write_options o = {0, 0, 0};
    if (opt)
        o = *opt;
    if ((int)type < 0 || type >= NPY_OBJECT)
        return debcm_fail("%s: npy_write needs a numeric or bool type, got %s (use npy_write_object for objects)",
                          path, npy_type_name(type));
    if (o.version < 0 || o.version > 3)
        return debcm_fail("%s: unknown .npy format version %d; expected 0 (auto), 1, 2 or 3", path, o.version);
    int64_t count = 0;
    if (check_write_shape(path, ndim, shape, &count))
        return -1;
    if (!data && count > 0)
        return debcm_fail("%s: no data to write", path);
    int esize = npy_type_size(type);
    int64_t rows = ndim == 2 ? shape[0] : 1, cols = ndim == 0 ? 1 : shape[ndim - 1];
    /* like NumPy, the header says fortran_order only when the layouts differ (2-d, both dimensions > 1) */
    int transpose = o.fortran_order && ndim == 2 && rows > 1 && cols > 1;
    int fortran = transpose;
    int swap = o.big_endian && esize > 1;
    uint8_t header[1024];
    int version = o.version;
    size_t hlen = build_header(header, sizeof header, descr_of(type, o.big_endian), fortran, ndim, shape, &version,
                               path);
    if (!hlen)
        return -1;
    atomic_file a;
    if (atomic_file_begin(&a, path))
        return -1;
    if (atomic_file_write(&a, header, hlen) || write_payload(&a, data, esize, swap, transpose, rows, cols, count)) {
        atomic_file_abort(&a); /* a no-op when the write already aborted; needed after an out-of-memory */
        return -1;
    }
    return atomic_file_commit(&a);
}

int npy_write_object(const char *path, int ndim, const int64_t *shape, const void *pickle, size_t pickle_len,
                     const npy_write_options *opt)
{
    npy_write_options o = {0, 0, 0};
    if (opt)
        o = *opt;
    if (o.version < 0 || o.version > 3)
        return debcm_fail("%s: unknown .npy format version %d; expected 0 (auto), 1, 2 or 3", path, o.version);
    int64_t count;
    if (check_write_shape(path, ndim, shape, &count))
        return -1;
    if (!pickle || pickle_len == 0)
        return debcm_fail("%s: an object array needs its pickle stream", path);
    uint8_t header[1024];
    int version = o.version;
    int fortran = o.fortran_order && ndim == 2 && shape[0] > 1 && shape[1] > 1;
    size_t hlen = build_header(header, sizeof header, "|O", fortran, ndim, shape, &version, path);
    if (!hlen)
        return -1;
    atomic_file a;
    if (atomic_file_begin(&a, path))
        return -1;
    if (atomic_file_write(&a, header, hlen) || atomic_file_write(&a, pickle, pickle_len))
        return -1; /* atomic_file_write aborts on failure */
    return atomic_file_commit(&a);
}
