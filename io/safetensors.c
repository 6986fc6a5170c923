/* io/safetensors.c — the safetensors reader and writer behind io/safetensors.h (checkpoints of the models).
 *
 * Reading validates, before anything is handed out, every rule the reference implementation (huggingface/
 * safetensors, Rust) enforces, and a few more: the file holds the 8-byte length N and N more bytes; N is at most
 * 100 MB; the header is valid UTF-8 JSON (jansson), an object, without duplicate keys (the reference keeps the last
 * one silently; here it is an error); "__metadata__", when present, maps strings to strings; every other key is a
 * tensor whose value has exactly "dtype" (a supported name), "shape" (at most 8 integers >= 0) and "data_offsets"
 * (two integers, begin <= end <= the data area's size), with end - begin == numel * element size computed without
 * overflow. Sorted by offset, the tensors must tile the data area exactly: no overlap, no hole between tensors, no
 * unused bytes at the end. The reference refuses holes and trailing bytes too ("invalid offset", "file not fully
 * covered"), so a file this reader accepts is a file the reference accepts. Unknown keys inside a tensor entry are
 * refused (the reference ignores them; no writer we know produces them, and a checkpoint with fields we do not
 * understand is safer refused than half-read). A little-endian host is assumed, as in io/npy.c. */
#include "io/safetensors.h"

#include <float.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "engine/error.h"
#include "io/atomic_file.h"
#include "io/crc32.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "io/safetensors.c assumes a little-endian host: safetensors data are little-endian and used in place"
#endif

#define ST_QUOTE_CAP 256   /* a quoted name in a message: at most ST_QUOTE_CHARS characters + escapes */
#define ST_QUOTE_CHARS 120
#define ST_SHAPE_CAP 256   /* "[d0, d1, ...]" of up to 8 int64 */

/* ---- dtypes ---------------------------------------------------------------------------------------------------- */

typedef struct {
    const char *name;
    int size;
    int rank;     /* position in the reference's Dtype enum (relative order only): its writer sorts by it, widest
                   * first, which keeps every tensor aligned to its element size */
    int is_float;
} dtype_info;

static const dtype_info dtype_table[SAFETENSORS_DTYPE_COUNT] = {
    [SAFETENSORS_BOOL] = {"BOOL", 1, 0, 0},       [SAFETENSORS_U8] = {"U8", 1, 1, 0},
    [SAFETENSORS_I8] = {"I8", 1, 2, 0},           [SAFETENSORS_F8_E5M2] = {"F8_E5M2", 1, 3, 1},
    [SAFETENSORS_F8_E4M3] = {"F8_E4M3", 1, 4, 1}, [SAFETENSORS_F8_E8M0] = {"F8_E8M0", 1, 5, 1},
    [SAFETENSORS_I16] = {"I16", 2, 6, 0},         [SAFETENSORS_U16] = {"U16", 2, 7, 0},
    [SAFETENSORS_F16] = {"F16", 2, 8, 1},         [SAFETENSORS_BF16] = {"BF16", 2, 9, 1},
    [SAFETENSORS_I32] = {"I32", 4, 10, 0},        [SAFETENSORS_U32] = {"U32", 4, 11, 0},
    [SAFETENSORS_F32] = {"F32", 4, 12, 1},        [SAFETENSORS_F64] = {"F64", 8, 13, 1},
    [SAFETENSORS_I64] = {"I64", 8, 14, 0},        [SAFETENSORS_U64] = {"U64", 8, 15, 0},
};

/* dtypes the reference knows and this reader does not (sub-byte, complex, float8 FNUZ) */
static const char *const dtype_unsupported[] = {"F4", "F6_E2M3", "F6_E3M2", "F8_E4M3FNUZ", "F8_E5M2FNUZ", "C64"};

#define ST_DTYPE_LIST "BOOL, U8, I8, U16, I16, U32, I32, U64, I64, F8_E5M2, F8_E4M3, F8_E8M0, F16, BF16, F32, F64"

static int dtype_ok(safetensors_dtype d) { return d >= 0 && d < SAFETENSORS_DTYPE_COUNT; }

const char *safetensors_dtype_name(safetensors_dtype d) { return dtype_ok(d) ? dtype_table[d].name : "?"; }

int safetensors_dtype_size(safetensors_dtype d) { return dtype_ok(d) ? dtype_table[d].size : 0; }

int safetensors_dtype_is_float(safetensors_dtype d) { return dtype_ok(d) && dtype_table[d].is_float; }

safetensors_dtype safetensors_dtype_parse(const char *name)
{
    for (int d = 0; d < SAFETENSORS_DTYPE_COUNT; d++)
        if (strcmp(name, dtype_table[d].name) == 0)
            return (safetensors_dtype)d;
    return SAFETENSORS_ANY;
}

/* ---- messages ---------------------------------------------------------------------------------------------------- */

/* length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there are not one (overlong forms,
 * surrogates and code points beyond U+10FFFF included, as JSON requires) */
static size_t utf8_len(const unsigned char *p)
{
    unsigned c = p[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned cp;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) /* also stops at the terminating NUL */
            return 0;
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

static int utf8_valid(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (!n)
            return 0;
        p += n;
    }
    return 1;
}

char *safetensors_quote(char *out, size_t cap, const char *s, size_t max_chars)
{
    if (!cap)
        return out;
    out[0] = '\0';
    if (cap < 5) /* no room for even "..." */
        return out;
    size_t o = 0, chars = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        char tmp[8];
        size_t n = utf8_len(p), tl;
        if (n == 1 && *p >= 0x20 && *p != 0x7f && *p != '\\') {
            tmp[0] = (char)*p;
            tl = 1;
        } else if (n > 1) {
            memcpy(tmp, p, n);
            tl = n;
        } else if (*p == '\\') {
            memcpy(tmp, "\\\\", 2);
            tl = 2;
            n = 1;
        } else { /* a control byte, or a byte that starts no valid UTF-8 sequence */
            snprintf(tmp, sizeof tmp, "\\x%02x", *p);
            tl = 4;
            n = 1;
        }
        if (chars >= max_chars || o + tl + 4 > cap) { /* keep room for "..." and the NUL */
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        memcpy(out + o, tmp, tl);
        o += tl;
        p += n;
        chars++;
    }
    out[o] = '\0';
    return out;
}

/* "[128, 2048]" */
static const char *shape_str(char *out, size_t cap, int ndim, const int64_t *shape)
{
    size_t o = 0;
    int n = snprintf(out, cap, "[");
    o = n > 0 ? (size_t)n : 0;
    for (int i = 0; i < ndim && o < cap; i++) {
        n = snprintf(out + o, cap - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
        o += n > 0 ? (size_t)n : 0;
    }
    if (o < cap)
        snprintf(out + o, cap - o, "]");
    return out;
}

/* a JSON value as it appears in the header, compact, quoted and cut for a message */
static const char *json_str(char *out, size_t cap, const json_t *v)
{
    char *s = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER) : NULL;
    safetensors_quote(out, cap, s ? s : "(nothing)", 60);
    free(s);
    return out;
}

/* ---- reading ----------------------------------------------------------------------------------------------------- */

static uint64_t load_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* a non-negative JSON integer, or -1 */
static int64_t json_uint(const json_t *v)
{
    if (!json_is_integer(v))
        return -1;
    json_int_t x = json_integer_value(v);
    return x < 0 ? -1 : (int64_t)x;
}

static int parse_tensor(const safetensors_file *f, const char *name, json_t *v, safetensors_tensor *t)
{
    char q[ST_QUOTE_CAP], js[ST_QUOTE_CAP], sh[ST_SHAPE_CAP];
    safetensors_quote(q, sizeof q, name, ST_QUOTE_CHARS);
    t->name = name;
    if (!json_is_object(v))
        return debcm_fail("%s: tensor '%s': expected an object with \"dtype\", \"shape\" and \"data_offsets\", "
                          "found %s", f->path, q, json_str(js, sizeof js, v));
    const char *key;
    json_t *x;
    json_object_foreach(v, key, x) {
        if (strcmp(key, "dtype") != 0 && strcmp(key, "shape") != 0 && strcmp(key, "data_offsets") != 0) {
            char kq[ST_QUOTE_CAP];
            return debcm_fail("%s: tensor '%s': unexpected key '%s', expected only \"dtype\", \"shape\" and "
                              "\"data_offsets\"", f->path, q, safetensors_quote(kq, sizeof kq, key, 60));
        }
    }
    /* dtype */
    json_t *dt = json_object_get(v, "dtype");
    if (!dt || !json_is_string(dt))
        return debcm_fail("%s: tensor '%s': expected \"dtype\" to be a string (e.g. \"F32\"), found %s", f->path,
                          q, json_str(js, sizeof js, dt));
    const char *dname = json_string_value(dt);
    t->dtype = safetensors_dtype_parse(dname);
    if (t->dtype == SAFETENSORS_ANY) {
        int known = 0;
        for (size_t i = 0; i < sizeof dtype_unsupported / sizeof *dtype_unsupported; i++)
            known |= strcmp(dname, dtype_unsupported[i]) == 0;
        return debcm_fail("%s: tensor '%s': %s dtype %s, expected one of " ST_DTYPE_LIST, f->path, q,
                          known ? "unsupported" : "unknown", json_str(js, sizeof js, dt));
    }
    int64_t esize = dtype_table[t->dtype].size;
    /* shape */
    json_t *s = json_object_get(v, "shape");
    if (!s || !json_is_array(s))
        return debcm_fail("%s: tensor '%s': expected \"shape\" to be an array of integers, found %s", f->path, q,
                          json_str(js, sizeof js, s));
    size_t nd = json_array_size(s);
    if (nd > SAFETENSORS_MAX_NDIM)
        return debcm_fail("%s: tensor '%s': expected at most %d dimensions, found %zu in shape %s", f->path, q,
                          SAFETENSORS_MAX_NDIM, nd, json_str(js, sizeof js, s));
    t->ndim = (int)nd;
    t->numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < nd; i++) {
        int64_t d = json_uint(json_array_get(s, i));
        if (d < 0)
            return debcm_fail("%s: tensor '%s': expected \"shape\" to hold integers >= 0, found %s", f->path, q,
                              json_str(js, sizeof js, s));
        t->shape[i] = d;
        overflow |= __builtin_mul_overflow(t->numel, d, &t->numel);
    }
    int64_t nbytes = 0;
    /* the product is taken left to right and any overflow on the way refused, as the reference does: [0, 2^62, 4]
     * is an empty tensor, [2^62, 4, 0] an error */
    if (overflow || __builtin_mul_overflow(t->numel, esize, &nbytes))
        return debcm_fail("%s: tensor '%s': shape %s of dtype %s: the product of the dimensions and the element "
                          "size overflows int64", f->path, q, shape_str(sh, sizeof sh, t->ndim, t->shape),
                          dtype_table[t->dtype].name);
    /* data_offsets */
    json_t *o = json_object_get(v, "data_offsets");
    int64_t begin = -1, end = -1;
    if (o && json_is_array(o) && json_array_size(o) == 2) {
        begin = json_uint(json_array_get(o, 0));
        end = json_uint(json_array_get(o, 1));
    }
    if (begin < 0 || end < 0 || begin > end)
        return debcm_fail("%s: tensor '%s': expected \"data_offsets\" to be [begin, end] with 0 <= begin <= end, "
                          "found %s", f->path, q, json_str(js, sizeof js, o));
    if ((uint64_t)end > f->data_size)
        return debcm_fail("%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the data area, which "
                          "holds %zu bytes", f->path, q, (long long)begin, (long long)end, f->data_size);
    if (end - begin != nbytes)
        return debcm_fail("%s: tensor '%s': expected %lld bytes for shape %s of dtype %s, found data_offsets "
                          "[%lld, %lld] (%lld bytes)", f->path, q, (long long)nbytes,
                          shape_str(sh, sizeof sh, t->ndim, t->shape), dtype_table[t->dtype].name,
                          (long long)begin, (long long)end, (long long)(end - begin));
    t->begin = (uint64_t)begin;
    t->nbytes = (size_t)nbytes;
    t->data = f->data_area + begin;
    return 0;
}

static int cmp_by_offset(const void *a, const void *b)
{
    const safetensors_tensor *x = *(const safetensors_tensor *const *)a, *y = *(const safetensors_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->nbytes != y->nbytes)
        return x->nbytes < y->nbytes ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const safetensors_tensor *)a)->name, ((const safetensors_tensor *)b)->name);
}

/* the tensors, sorted by offset, must tile [0, data_size) */
static int check_coverage(const safetensors_file *f)
{
    if (!f->count) {
        if (f->data_size)
            return debcm_fail("%s: expected no data after a header without tensors, found %zu bytes", f->path,
                              f->data_size);
        return 0;
    }
    const safetensors_tensor **order = malloc(f->count * sizeof *order);
    if (!order)
        return debcm_fail("%s: out of memory for %zu tensors", f->path, f->count);
    for (size_t i = 0; i < f->count; i++)
        order[i] = &f->tensors[i];
    qsort(order, f->count, sizeof *order, cmp_by_offset);
    uint64_t pos = 0;
    int rc = 0;
    char q[ST_QUOTE_CAP], q2[ST_QUOTE_CAP];
    for (size_t i = 0; i < f->count && rc == 0; i++) {
        const safetensors_tensor *t = order[i];
        uint64_t end = t->begin + t->nbytes;
        if (t->begin < pos)
            rc = debcm_fail("%s: tensor '%s': data_offsets [%llu, %llu] overlap those of tensor '%s' [%llu, %llu]",
                            f->path, safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS),
                            (unsigned long long)t->begin, (unsigned long long)end,
                            safetensors_quote(q2, sizeof q2, order[i - 1]->name, ST_QUOTE_CHARS),
                            (unsigned long long)order[i - 1]->begin,
                            (unsigned long long)(order[i - 1]->begin + order[i - 1]->nbytes));
        else if (t->begin > pos)
            rc = debcm_fail("%s: tensor '%s': expected data_offsets to begin at %llu, where the previous tensor "
                            "ends, found [%llu, %llu] (safetensors allows no hole in the data area)",
                            f->path, safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS),
                            (unsigned long long)pos, (unsigned long long)t->begin, (unsigned long long)end);
        pos = end;
    }
    if (rc == 0 && pos != f->data_size)
        rc = debcm_fail("%s: expected the tensors to cover the data area of %zu bytes, found %llu bytes covered and "
                        "%llu unused at the end", f->path, f->data_size, (unsigned long long)pos,
                        (unsigned long long)(f->data_size - pos));
    free(order);
    return rc;
}

static int parse_metadata(safetensors_file *f, json_t *m)
{
    char js[ST_QUOTE_CAP];
    if (!json_is_object(m))
        return debcm_fail("%s: expected \"__metadata__\" to be an object of strings, found %s", f->path,
                          json_str(js, sizeof js, m));
    size_t n = json_object_size(m);
    f->metadata = calloc(n ? n : 1, sizeof *f->metadata);
    if (!f->metadata)
        return debcm_fail("%s: out of memory for %zu metadata entries", f->path, n);
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        if (!json_is_string(v)) {
            char q[ST_QUOTE_CAP];
            return debcm_fail("%s: metadata '%s': expected a string, found %s", f->path,
                              safetensors_quote(q, sizeof q, key, ST_QUOTE_CHARS), json_str(js, sizeof js, v));
        }
        f->metadata[f->metadata_count].key = key;
        f->metadata[f->metadata_count].value = json_string_value(v);
        f->metadata_count++;
    }
    return 0;
}

/* everything after the mapping: f->path set, buf/len the whole file */
static int parse_file(safetensors_file *f, const uint8_t *buf, size_t len)
{
    if (len < 8)
        return debcm_fail("%s: expected at least the 8-byte header length of a .safetensors file, found a file of "
                          "%zu bytes", f->path, len);
    uint64_t n = load_le64(buf);
    if (n > SAFETENSORS_MAX_HEADER)
        return debcm_fail("%s: not a .safetensors file? expected a header length of at most %llu bytes in its first "
                          "8 bytes, found %llu", f->path, (unsigned long long)SAFETENSORS_MAX_HEADER,
                          (unsigned long long)n);
    if (n > len - 8)
        return debcm_fail("%s: header of %llu bytes runs past the end of the file (%zu bytes after the length)",
                          f->path, (unsigned long long)n, len - 8);
    f->header_len = n;
    f->data_area = buf + 8 + n;
    f->data_size = len - 8 - (size_t)n;
    json_error_t err;
    json_t *root = json_loadb((const char *)buf + 8, (size_t)n, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        char q[ST_QUOTE_CAP];
        return debcm_fail("%s: expected a JSON header, found invalid JSON at byte %d of %llu: %s", f->path,
                          err.position, (unsigned long long)n, safetensors_quote(q, sizeof q, err.text, 160));
    }
    f->json = root;
    if (!json_is_object(root)) {
        char js[ST_QUOTE_CAP];
        return debcm_fail("%s: expected the header to be a JSON object, found %s", f->path,
                          json_str(js, sizeof js, root));
    }
    json_t *meta = json_object_get(root, "__metadata__");
    if (meta && parse_metadata(f, meta))
        return -1;
    size_t count = json_object_size(root) - (meta ? 1 : 0);
    f->tensors = calloc(count ? count : 1, sizeof *f->tensors);
    if (!f->tensors)
        return debcm_fail("%s: out of memory for %zu tensors", f->path, count);
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (v == meta)
            continue;
        if (parse_tensor(f, key, v, &f->tensors[f->count]))
            return -1;
        f->count++;
    }
    if (check_coverage(f))
        return -1;
    qsort(f->tensors, f->count, sizeof *f->tensors, cmp_by_name);
    return 0;
}

static void set_path(safetensors_file *f, const char *path)
{
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path ? path : "(buffer)");
}

int safetensors_open(safetensors_file *f, const char *path)
{
    set_path(f, path);
    if (file_map_open(&f->map, path, "a .safetensors file", 0))
        return -1;
    if (parse_file(f, f->map.base, f->map.len)) {
        safetensors_close(f);
        return -1;
    }
    return 0;
}

int safetensors_open_buffer(safetensors_file *f, const void *buf, size_t len, const char *name)
{
    set_path(f, name);
    if (!buf && len)
        return debcm_fail("%s: no buffer", f->path);
    if (parse_file(f, buf, len)) {
        safetensors_close(f);
        return -1;
    }
    return 0;
}

void safetensors_close(safetensors_file *f)
{
    free(f->tensors);
    free(f->metadata);
    if (f->json)
        json_decref((json_t *)f->json);
    file_map_close(&f->map);
    f->tensors = NULL;
    f->metadata = NULL;
    f->json = NULL;
    f->count = f->metadata_count = 0;
    f->data_area = NULL;
    f->data_size = 0;
}

static const safetensors_tensor *find(const safetensors_file *f, const char *name)
{
    size_t lo = 0, hi = f->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(f->tensors[mid].name, name);
        if (c == 0)
            return &f->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name)
{
    const safetensors_tensor *t = find(f, name);
    if (!t) {
        char q[ST_QUOTE_CAP];
        debcm_fail("%s: tensor '%s': expected in the file, not found among its %zu tensors", f->path,
                   safetensors_quote(q, sizeof q, name, ST_QUOTE_CHARS), f->count);
    }
    return t;
}

const char *safetensors_metadata(const safetensors_file *f, const char *key)
{
    for (size_t i = 0; i < f->metadata_count; i++) /* a handful of keys: a linear search */
        if (strcmp(f->metadata[i].key, key) == 0)
            return f->metadata[i].value;
    return NULL;
}

int safetensors_expect_metadata(const safetensors_file *f, const char *key, const char *value)
{
    const char *v = safetensors_metadata(f, key);
    if (v && strcmp(v, value) == 0)
        return 0;
    char qk[ST_QUOTE_CAP], qv[ST_QUOTE_CAP], qf[ST_QUOTE_CAP];
    safetensors_quote(qk, sizeof qk, key, ST_QUOTE_CHARS);
    safetensors_quote(qv, sizeof qv, value, ST_QUOTE_CHARS);
    if (!v)
        return debcm_fail("%s: metadata '%s': expected '%s', found no such key", f->path, qk, qv);
    return debcm_fail("%s: metadata '%s': expected '%s', found '%s'", f->path, qk, qv,
                      safetensors_quote(qf, sizeof qf, v, ST_QUOTE_CHARS));
}

const safetensors_tensor *safetensors_expect(const safetensors_file *f, const char *name, safetensors_dtype dtype,
                                             int ndim, const int64_t *shape, const char *source)
{
    const safetensors_tensor *t = safetensors_find(f, name);
    if (!t)
        return NULL;
    char q[ST_QUOTE_CAP];
    safetensors_quote(q, sizeof q, name, ST_QUOTE_CHARS);
    if (dtype != SAFETENSORS_ANY && t->dtype != dtype) {
        debcm_fail("%s: tensor '%s': expected dtype %s, found %s", f->path, q, safetensors_dtype_name(dtype),
                   safetensors_dtype_name(t->dtype));
        return NULL;
    }
    int same = ndim == t->ndim && (ndim == 0 || shape);
    for (int i = 0; same && i < ndim; i++)
        same = shape[i] == t->shape[i];
    if (!same) {
        char want[ST_SHAPE_CAP], have[ST_SHAPE_CAP], src[ST_QUOTE_CAP + 16] = "";
        if (source) {
            char qs[ST_QUOTE_CAP];
            snprintf(src, sizeof src, " (from %s)", safetensors_quote(qs, sizeof qs, source, ST_QUOTE_CHARS));
        }
        /* an ndim outside 0..8 cannot be printed as a shape: it cannot match either */
        if (ndim < 0 || ndim > SAFETENSORS_MAX_NDIM || (ndim > 0 && !shape))
            snprintf(want, sizeof want, "(a %d-d shape)", ndim);
        else
            shape_str(want, sizeof want, ndim, shape);
        debcm_fail("%s: tensor '%s': expected shape %s%s, found %s", f->path, q, want, src,
                   shape_str(have, sizeof have, t->ndim, t->shape));
        return NULL;
    }
    return t;
}

const float *safetensors_f32_view(const safetensors_tensor *t)
{
    if (t->dtype != SAFETENSORS_F32 || ((uintptr_t)t->data % sizeof(float)) != 0)
        return NULL;
    return (const float *)(const void *)t->data;
}

/* ---- conversions ------------------------------------------------------------------------------------------------- */

static float bits_to_float(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* IEEE binary16 */
static float f16_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    if (e == 0) { /* zero and subnormals: m * 2^-24, exact in float */
        float v = ldexpf((float)m, -24);
        return sign ? -v : v;
    }
    if (e == 31)
        return bits_to_float(sign | 0x7f800000u | (m << 13));
    return bits_to_float(sign | ((e + 112) << 23) | (m << 13));
}

/* OCP float8 e4m3fn: bias 7, no infinities, S.1111.111 is NaN */
static float f8_e4m3_to_float(uint8_t b)
{
    int e = (b >> 3) & 0xf, m = b & 7;
    float v;
    if (e == 15 && m == 7)
        v = NAN;
    else if (e == 0)
        v = ldexpf((float)m, -9);
    else
        v = ldexpf((float)(8 + m), e - 10);
    return (b & 0x80) ? -v : v;
}

/* OCP float8 e8m0fnu: an exponent only, 2^(b - 127); 0xff is NaN */
static float f8_e8m0_to_float(uint8_t b) { return b == 0xff ? NAN : ldexpf(1.0f, (int)b - 127); }

/* unaligned little-endian loads of element i */
#define ST_DEFINE_LOAD(suffix, type)                                                                                 \
    static inline type ld_##suffix(const uint8_t *p, int64_t i)                                                      \
    {                                                                                                                \
        type v;                                                                                                      \
        memcpy(&v, p + (size_t)i * sizeof v, sizeof v);                                                              \
        return v;                                                                                                    \
    }
ST_DEFINE_LOAD(uint8_t, uint8_t)
ST_DEFINE_LOAD(int8_t, int8_t)
ST_DEFINE_LOAD(uint16_t, uint16_t)
ST_DEFINE_LOAD(int16_t, int16_t)
ST_DEFINE_LOAD(uint32_t, uint32_t)
ST_DEFINE_LOAD(int32_t, int32_t)
ST_DEFINE_LOAD(uint64_t, uint64_t)
ST_DEFINE_LOAD(int64_t, int64_t)
ST_DEFINE_LOAD(double, double)
#undef ST_DEFINE_LOAD
#define ST_LOAD(type, p, i) ld_##type((p), (i))

#define ST_EXACT_F32 16777216.0 /* 2^24: integers up to this magnitude are exact in float32 */

int safetensors_to_f32(const safetensors_file *f, const safetensors_tensor *t, float *out)
{
    const uint8_t *p = t->data;
    char q[ST_QUOTE_CAP];
    int64_t n = t->numel, i = 0;
    double bad = 0;
    switch (t->dtype) {
    case SAFETENSORS_F32: memcpy(out, p, t->nbytes); return 0;
    case SAFETENSORS_F16: for (; i < n; i++) out[i] = f16_to_float(ST_LOAD(uint16_t, p, i)); return 0;
    case SAFETENSORS_BF16: for (; i < n; i++) out[i] = bits_to_float((uint32_t)ST_LOAD(uint16_t, p, i) << 16); return 0;
    case SAFETENSORS_F8_E5M2: for (; i < n; i++) out[i] = f16_to_float((uint16_t)(p[i] << 8)); return 0;
    case SAFETENSORS_F8_E4M3: for (; i < n; i++) out[i] = f8_e4m3_to_float(p[i]); return 0;
    case SAFETENSORS_F8_E8M0: for (; i < n; i++) out[i] = f8_e8m0_to_float(p[i]); return 0;
    case SAFETENSORS_F64:
        for (; i < n; i++) {
            double v = ST_LOAD(double, p, i);
            if (isfinite(v) && fabs(v) > FLT_MAX)
                return debcm_fail("%s: tensor '%s': element %lld: F64 value %g is beyond float32's range", f->path,
                                  safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS), (long long)i, v);
            out[i] = (float)v;
        }
        return 0;
    case SAFETENSORS_BOOL:
        for (; i < n; i++) {
            if (p[i] > 1)
                return debcm_fail("%s: tensor '%s': element %lld: expected a BOOL byte 0 or 1, found %u", f->path,
                                  safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS), (long long)i, p[i]);
            out[i] = p[i];
        }
        return 0;
#define ST_INT_TO_F32(type)                                                                                          \
    for (; i < n; i++) {                                                                                             \
        double v = (double)ST_LOAD(type, p, i);                                                                      \
        if (fabs(v) > ST_EXACT_F32) {                                                                                \
            bad = v;                                                                                                 \
            break;                                                                                                   \
        }                                                                                                            \
        out[i] = (float)v;                                                                                           \
    }                                                                                                                \
    break
    case SAFETENSORS_U8: ST_INT_TO_F32(uint8_t);
    case SAFETENSORS_I8: ST_INT_TO_F32(int8_t);
    case SAFETENSORS_U16: ST_INT_TO_F32(uint16_t);
    case SAFETENSORS_I16: ST_INT_TO_F32(int16_t);
    case SAFETENSORS_U32: ST_INT_TO_F32(uint32_t);
    case SAFETENSORS_I32: ST_INT_TO_F32(int32_t);
    case SAFETENSORS_U64: ST_INT_TO_F32(uint64_t);
    case SAFETENSORS_I64: ST_INT_TO_F32(int64_t);
#undef ST_INT_TO_F32
    default:
        return debcm_fail("%s: tensor '%s': dtype %d cannot be converted", f->path,
                          safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS), (int)t->dtype);
    }
    if (i < n)
        return debcm_fail("%s: tensor '%s': element %lld: %s value %.17g is not exactly representable as float32 "
                          "(|v| <= 2^24)", f->path, safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS),
                          (long long)i, dtype_table[t->dtype].name, bad);
    return 0;
}

int safetensors_to_i64(const safetensors_file *f, const safetensors_tensor *t, int64_t *out)
{
    const uint8_t *p = t->data;
    char q[ST_QUOTE_CAP];
    int64_t n = t->numel, i = 0;
    switch (t->dtype) {
    case SAFETENSORS_I64: memcpy(out, p, t->nbytes); return 0;
    case SAFETENSORS_U8: for (; i < n; i++) out[i] = p[i]; return 0;
    case SAFETENSORS_I8: for (; i < n; i++) out[i] = ST_LOAD(int8_t, p, i); return 0;
    case SAFETENSORS_U16: for (; i < n; i++) out[i] = ST_LOAD(uint16_t, p, i); return 0;
    case SAFETENSORS_I16: for (; i < n; i++) out[i] = ST_LOAD(int16_t, p, i); return 0;
    case SAFETENSORS_U32: for (; i < n; i++) out[i] = ST_LOAD(uint32_t, p, i); return 0;
    case SAFETENSORS_I32: for (; i < n; i++) out[i] = ST_LOAD(int32_t, p, i); return 0;
    case SAFETENSORS_U64:
        for (; i < n; i++) {
            uint64_t v = ST_LOAD(uint64_t, p, i);
            if (v > (uint64_t)INT64_MAX)
                return debcm_fail("%s: tensor '%s': element %lld: U64 value %llu is beyond int64's range", f->path,
                                  safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS), (long long)i,
                                  (unsigned long long)v);
            out[i] = (int64_t)v;
        }
        return 0;
    case SAFETENSORS_BOOL:
        for (; i < n; i++) {
            if (p[i] > 1)
                return debcm_fail("%s: tensor '%s': element %lld: expected a BOOL byte 0 or 1, found %u", f->path,
                                  safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS), (long long)i, p[i]);
            out[i] = p[i];
        }
        return 0;
    default:
        return debcm_fail("%s: tensor '%s': expected an integer or BOOL dtype to read as int64, found %s", f->path,
                          safetensors_quote(q, sizeof q, t->name, ST_QUOTE_CHARS), safetensors_dtype_name(t->dtype));
    }
}

int safetensors_read_f32(const safetensors_file *f, const char *name, int ndim, const int64_t *shape,
                         const char *source, float *out)
{
    const safetensors_tensor *t = safetensors_expect(f, name, SAFETENSORS_ANY, ndim, shape, source);
    if (!t)
        return -1;
    if (!safetensors_dtype_is_float(t->dtype)) {
        char q[ST_QUOTE_CAP];
        return debcm_fail("%s: tensor '%s': expected a floating-point dtype (F32, F16, BF16, F64, F8_*), found %s",
                          f->path, safetensors_quote(q, sizeof q, name, ST_QUOTE_CHARS),
                          safetensors_dtype_name(t->dtype));
    }
    return safetensors_to_f32(f, t, out);
}

int safetensors_read_i64(const safetensors_file *f, const char *name, int ndim, const int64_t *shape,
                         const char *source, int64_t *out)
{
    const safetensors_tensor *t = safetensors_expect(f, name, SAFETENSORS_ANY, ndim, shape, source);
    return t ? safetensors_to_i64(f, t, out) : -1;
}

/* ---- writing ----------------------------------------------------------------------------------------------------- */

struct safetensors_entry {
    char *name;
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_NDIM];
    const void *data;
    uint64_t nbytes;
};

void safetensors_writer_init(safetensors_writer *w) { memset(w, 0, sizeof *w); }

void safetensors_writer_free(safetensors_writer *w)
{
    for (size_t i = 0; i < w->count; i++)
        free(w->entries[i].name);
    for (size_t i = 0; i < w->metadata_count; i++) {
        free((char *)w->metadata[i].key);
        free((char *)w->metadata[i].value);
    }
    free(w->entries);
    free(w->metadata);
    memset(w, 0, sizeof *w);
}

/* grow *arr (of *cap elements of size esize) to hold one more than n */
static int grow(void **arr, size_t *cap, size_t n, size_t esize)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap : 16, bytes;
    while (nc <= n)
        if (__builtin_mul_overflow(nc, (size_t)2, &nc))
            return -1;
    if (__builtin_mul_overflow(nc, esize, &bytes))
        return -1;
    void *p = realloc(*arr, bytes);
    if (!p)
        return -1;
    *arr = p;
    *cap = nc;
    return 0;
}

int safetensors_writer_add(safetensors_writer *w, const char *name, safetensors_dtype dtype, int ndim,
                           const int64_t *shape, const void *data)
{
    char q[ST_QUOTE_CAP], sh[ST_SHAPE_CAP];
    if (!name)
        return debcm_fail("safetensors writer: a tensor without a name");
    safetensors_quote(q, sizeof q, name, ST_QUOTE_CHARS);
    if (!utf8_valid(name))
        return debcm_fail("tensor '%s': expected a UTF-8 name, found invalid bytes", q);
    if (strcmp(name, "__metadata__") == 0)
        return debcm_fail("tensor '%s': the name is reserved for the metadata", q);
    if (!dtype_ok(dtype))
        return debcm_fail("tensor '%s': expected a dtype, found the value %d", q, (int)dtype);
    if (ndim < 0 || ndim > SAFETENSORS_MAX_NDIM || (ndim > 0 && !shape))
        return debcm_fail("tensor '%s': expected 0 to %d dimensions, found %d%s", q, SAFETENSORS_MAX_NDIM, ndim,
                          ndim > 0 && !shape ? " and no shape" : "");
    int64_t numel = 1, nbytes;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return debcm_fail("tensor '%s': expected dimensions >= 0, found shape %s", q,
                              shape_str(sh, sizeof sh, ndim, shape));
        overflow |= __builtin_mul_overflow(numel, shape[i], &numel); /* left to right, as the reader checks */
    }
    if (overflow || __builtin_mul_overflow(numel, (int64_t)dtype_table[dtype].size, &nbytes))
        return debcm_fail("tensor '%s': shape %s of dtype %s: the product of the dimensions and the element size "
                          "overflows int64", q, shape_str(sh, sizeof sh, ndim, shape), dtype_table[dtype].name);
    if (nbytes > 0 && !data)
        return debcm_fail("tensor '%s': no data for shape %s", q, shape_str(sh, sizeof sh, ndim, shape));
    for (size_t i = 0; i < w->count; i++)
        if (strcmp(w->entries[i].name, name) == 0)
            return debcm_fail("tensor '%s': added twice; expected unique names", q);
    if (grow((void **)&w->entries, &w->cap, w->count, sizeof *w->entries))
        return debcm_fail("tensor '%s': out of memory for %zu tensors", q, w->count + 1);
    safetensors_entry *e = &w->entries[w->count];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    if (!e->name)
        return debcm_fail("tensor '%s': out of memory", q);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        e->shape[i] = shape[i];
    e->data = data;
    e->nbytes = (uint64_t)nbytes;
    w->count++;
    return 0;
}

int safetensors_writer_set_metadata(safetensors_writer *w, const char *key, const char *value)
{
    char q[ST_QUOTE_CAP];
    if (!key || !value)
        return debcm_fail("safetensors writer: metadata without a key or a value");
    safetensors_quote(q, sizeof q, key, ST_QUOTE_CHARS);
    if (!utf8_valid(key) || !utf8_valid(value))
        return debcm_fail("metadata '%s': expected UTF-8 key and value, found invalid bytes", q);
    char *v = strdup(value);
    if (!v)
        return debcm_fail("metadata '%s': out of memory", q);
    for (size_t i = 0; i < w->metadata_count; i++) {
        if (strcmp(w->metadata[i].key, key) == 0) {
            free((char *)w->metadata[i].value);
            w->metadata[i].value = v;
            return 0;
        }
    }
    char *k = strdup(key);
    if (!k || grow((void **)&w->metadata, &w->metadata_cap, w->metadata_count, sizeof *w->metadata)) {
        free(k);
        free(v);
        return debcm_fail("metadata '%s': out of memory", q);
    }
    w->metadata[w->metadata_count].key = k;
    w->metadata[w->metadata_count].value = v;
    w->metadata_count++;
    return 0;
}

/* A growing text buffer for the header; a failed allocation is sticky (checked once at the end). */
typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} st_text;

static void text_put(st_text *t, const char *s, size_t n)
{
    if (t->failed)
        return;
    size_t need;
    if (__builtin_add_overflow(t->len, n + 1, &need)) {
        t->failed = 1;
        return;
    }
    if (need > t->cap) {
        size_t nc = t->cap ? t->cap : 256;
        while (nc < need && !t->failed)
            t->failed = __builtin_mul_overflow(nc, (size_t)2, &nc);
        char *p = t->failed ? NULL : realloc(t->buf, nc);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->buf = p;
        t->cap = nc;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void text_str(st_text *t, const char *s) { text_put(t, s, strlen(s)); }

/* A JSON string spelled as serde_json (the reference's serializer) spells it: '"' and '\' escaped, \b \f \n \r
 * \t by name, other control characters as \u00xx (lowercase hex), everything else (UTF-8 included) as is. */
static void text_json_string(st_text *t, const char *s)
{
    text_put(t, "\"", 1);
    const char *run = s;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        const char *esc = NULL;
        char u[8];
        switch (*p) {
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        default:
            if (*p < 0x20) {
                snprintf(u, sizeof u, "\\u%04x", *p);
                esc = u;
            }
        }
        if (esc) {
            text_put(t, run, (size_t)((const char *)p - run));
            text_str(t, esc);
            run = (const char *)p + 1;
        }
    }
    text_str(t, run);
    text_put(t, "\"", 1);
}

/* the reference's order: dtype rank descending (widest first), then name */
static int cmp_entry(const void *a, const void *b)
{
    const safetensors_entry *x = *(const safetensors_entry *const *)a, *y = *(const safetensors_entry *const *)b;
    int rx = dtype_table[x->dtype].rank, ry = dtype_table[y->dtype].rank;
    if (rx != ry)
        return rx > ry ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The JSON header as the reference writes it ("__metadata__" first, then the tensors in data order, each as
 * {"dtype":..,"shape":[..],"data_offsets":[b,e]}, no spaces), padded with spaces so that 8 + N is a multiple of
 * 8. *order gets the entries in data order. NULL with a message on failure. */
static char *build_header(const safetensors_writer *w, const char *path, safetensors_entry ***order, size_t *len)
{
    *order = NULL;
    safetensors_entry **ord = malloc((w->count ? w->count : 1) * sizeof *ord);
    if (!ord) {
        debcm_fail("%s: out of memory for the header", path);
        return NULL;
    }
    for (size_t i = 0; i < w->count; i++)
        ord[i] = &w->entries[i];
    qsort(ord, w->count, sizeof *ord, cmp_entry);
    st_text t = {0};
    char num[64];
    text_str(&t, "{");
    if (w->metadata_count) {
        text_str(&t, "\"__metadata__\":{");
        for (size_t i = 0; i < w->metadata_count; i++) {
            if (i)
                text_str(&t, ",");
            text_json_string(&t, w->metadata[i].key);
            text_str(&t, ":");
            text_json_string(&t, w->metadata[i].value);
        }
        text_str(&t, "}");
    }
    uint64_t pos = 0;
    for (size_t i = 0; i < w->count; i++) {
        const safetensors_entry *e = ord[i];
        uint64_t end;
        if (__builtin_add_overflow(pos, e->nbytes, &end) || end > (uint64_t)INT64_MAX) {
            free(t.buf);
            free(ord);
            debcm_fail("%s: the tensors hold more than 2^63 bytes together", path);
            return NULL;
        }
        if (i || w->metadata_count)
            text_str(&t, ",");
        text_json_string(&t, e->name);
        text_str(&t, ":{\"dtype\":\"");
        text_str(&t, dtype_table[e->dtype].name);
        text_str(&t, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            snprintf(num, sizeof num, "%s%lld", d ? "," : "", (long long)e->shape[d]);
            text_str(&t, num);
        }
        snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)pos,
                 (unsigned long long)end);
        text_str(&t, num);
        pos = end;
    }
    text_str(&t, "}");
    while (!t.failed && t.len % 8)
        text_str(&t, " ");
    if (t.failed) {
        free(t.buf);
        free(ord);
        debcm_fail("%s: out of memory for the header", path);
        return NULL;
    }
    *len = t.len;
    *order = ord;
    return t.buf;
}

int safetensors_write(const safetensors_writer *w, const char *path)
{
    if (atomic_file_check_path(path))
        return -1;
    safetensors_entry **order = NULL;
    size_t hlen = 0;
    char *header = build_header(w, path, &order, &hlen);
    if (!header)
        return -1;
    uint8_t len8[8];
    for (int i = 0; i < 8; i++)
        len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    /* io/atomic_file: path.tmp.<pid>, every write checked, fsync, rename, fsync of the directory; a failed write
     * removes the temporary file (and makes the later writes and the commit fail) */
    atomic_file a;
    int rc = atomic_file_begin(&a, path);
    if (rc == 0) {
        rc = atomic_file_write(&a, len8, sizeof len8);
        if (rc == 0)
            rc = atomic_file_write(&a, header, hlen);
        for (size_t i = 0; rc == 0 && i < w->count; i++)
            rc = atomic_file_write(&a, order[i]->data, (size_t)order[i]->nbytes);
        if (rc == 0)
            rc = atomic_file_commit(&a);
        else
            atomic_file_abort(&a);
    }
    free(header);
    free(order);
    return rc;
}

/* ---- the content checksum ------------------------------------------------------------------------------------- */

/* one item of the checksum: the same bytes from the reader's and the writer's side */
typedef struct {
    const char *name, *dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
    uint64_t nbytes;
} st_sum_tensor;

static uLong crc_bytes(uLong crc, const void *p, uint64_t n) { return crc32_update((uint32_t)crc, p, n); }

static uLong crc_u64(uLong crc, uint64_t v)
{
    uint8_t le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (uint8_t)(v >> (8 * i));
    return crc32(crc, le, 8);
}

static uLong crc_str(uLong crc, const char *s) { return crc_bytes(crc, s, strlen(s) + 1); }

static uLong crc_tensor(uLong crc, const st_sum_tensor *t)
{
    crc = crc_str(crc_str(crc_str(crc, "T"), t->name), t->dtype);
    crc = crc_u64(crc, (uint64_t)t->ndim);
    for (int i = 0; i < t->ndim; i++)
        crc = crc_u64(crc, (uint64_t)t->shape[i]);
    crc = crc_u64(crc, t->nbytes);
    return crc_bytes(crc, t->data, t->nbytes);
}

static int cmp_meta_key(const void *a, const void *b)
{
    return strcmp((*(const safetensors_meta *const *)a)->key, (*(const safetensors_meta *const *)b)->key);
}

/* the metadata pairs in key order, the checksum's own left out */
static uLong crc_metadata(uLong crc, const safetensors_meta *m, size_t n, int *failed)
{
    const safetensors_meta **ord = malloc((n ? n : 1) * sizeof *ord);
    if (!ord) {
        *failed = 1;
        return crc;
    }
    for (size_t i = 0; i < n; i++)
        ord[i] = &m[i];
    qsort(ord, n, sizeof *ord, cmp_meta_key);
    for (size_t i = 0; i < n; i++)
        if (strcmp(ord[i]->key, SAFETENSORS_CHECKSUM_KEY))
            crc = crc_str(crc_str(crc_str(crc, "M"), ord[i]->key), ord[i]->value);
    free(ord);
    return crc;
}

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp((*(const safetensors_entry *const *)a)->name, (*(const safetensors_entry *const *)b)->name);
}

int safetensors_writer_set_checksum(safetensors_writer *w)
{
    safetensors_entry **ord = malloc((w->count ? w->count : 1) * sizeof *ord);
    if (!ord)
        return debcm_fail("safetensors writer: out of memory for the checksum");
    for (size_t i = 0; i < w->count; i++)
        ord[i] = &w->entries[i];
    qsort(ord, w->count, sizeof *ord, cmp_entry_name);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t i = 0; i < w->count; i++) {
        st_sum_tensor t = {ord[i]->name, dtype_table[ord[i]->dtype].name, ord[i]->ndim, ord[i]->shape, ord[i]->data,
                           ord[i]->nbytes};
        crc = crc_tensor(crc, &t);
    }
    free(ord);
    int failed = 0;
    crc = crc_metadata(crc, w->metadata, w->metadata_count, &failed);
    if (failed)
        return debcm_fail("safetensors writer: out of memory for the checksum");
    char v[32];
    snprintf(v, sizeof v, "crc32:%08x", (unsigned)crc);
    return safetensors_writer_set_metadata(w, SAFETENSORS_CHECKSUM_KEY, v);
}

int safetensors_verify_checksum(const safetensors_file *f, int required)
{
    const char *rec = safetensors_metadata(f, SAFETENSORS_CHECKSUM_KEY);
    if (!rec)
        return required ? debcm_fail("%s: no checksum in its metadata (not written by debcm, or damaged)", f->path)
                        : 0;
    uLong crc = crc32(0L, Z_NULL, 0);
    for (size_t i = 0; i < f->count; i++) { /* f->tensors are sorted by name */
        const safetensors_tensor *x = &f->tensors[i];
        st_sum_tensor t = {x->name, dtype_table[x->dtype].name, x->ndim, x->shape, x->data, x->nbytes};
        crc = crc_tensor(crc, &t);
    }
    int failed = 0;
    crc = crc_metadata(crc, f->metadata, f->metadata_count, &failed);
    if (failed)
        return debcm_fail("%s: out of memory verifying the checksum", f->path);
    char v[32], q[ST_QUOTE_CAP];
    snprintf(v, sizeof v, "crc32:%08x", (unsigned)crc);
    if (strcmp(v, rec))
        return debcm_fail("%s: checksum mismatch: the file is damaged (recorded '%s', computed '%s')", f->path,
                          safetensors_quote(q, sizeof q, rec, ST_QUOTE_CHARS), v);
    return 0;
}
