/* tests/test_safetensors.c — tests of the safetensors reader and writer (io/safetensors.c).
 *
 * 1. The fixtures the reference Python library wrote (tests/data/safetensors, gen_safetensors.py): every dtype at
 *    0-d, 1-d, 3-d and 8-d and empty, integer extremes, a checkpoint-like file, metadata only, no tensors; checked
 *    against the specification both sides share, then rewritten by our writer, which must produce the same bytes.
 *    2. Conversions: every float8 byte, F16/BF16 patterns and F64 values against ml_dtypes' and numpy's float32
 *    (ref_conv), all 65536 F16 and BF16 patterns against an independent decoder, and the refusals. 3. Round trips
 *    of the same specification through our writer and reader, with the layout rules (padding, alignment). 4. The
 *    writer's refusals. 5. One malformed file per rule, each refused with one line naming the file; truncation at
 *    every length. 6. safetensors_expect and the metadata check, with their exact messages. 7. Atomic writes that
 *    fail (missing directory, target a directory, file size limit) leave the previous checkpoint intact and no
 *    temporary file. 8. The fuzz corpus replayed through the fuzz target. argv[1] is tests/data.
 * With `--python PYTHON SCRIPT DIR` it is instead test_safetensors_python: it writes the specification's files into
 * DIR and has the reference library check them (SCRIPT --check DIR); exit 77 when PYTHON is empty. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine/error.h"
#include "io/safetensors.h"
#include "test_files.h"

#include "fuzz/fuzz_safetensors.c" /* LLVMFuzzerTestOneInput, replayed over the corpus below */

static const char *data_dir;
static char tmp_dir[512];

/* ---- helpers ------------------------------------------------------------------------------------------------- */

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int count_temp_files(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* the last error is one line that names `name` and contains `what` */
#define CHECK_REFUSAL(name, what)                                                                                  \
    do {                                                                                                           \
        CHECK_CONTAINS(debcm_last_error(), (name));                                                                \
        CHECK_CONTAINS(debcm_last_error(), (what));                                                                \
        CHECK_MSG(strchr(debcm_last_error(), '\n') == NULL, "message on several lines: %s", debcm_last_error());   \
    } while (0)

/* ---- independent decoders (not io/safetensors.c's) --------------------------------------------------------------- */

static double ref_f16(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? m * pow(2, -24) : e == 31 ? (m ? NAN : INFINITY) : (1024 + m) * pow(2, e - 25);
    return s ? -v : v;
}

static double ref_f8(safetensors_dtype d, uint8_t b)
{
    double sign = (b & 0x80) ? -1 : 1;
    if (d == SAFETENSORS_F8_E8M0)
        return b == 0xff ? NAN : pow(2, b - 127);
    if (d == SAFETENSORS_F8_E4M3) {
        int e = (b >> 3) & 15, m = b & 7;
        if (e == 15 && m == 7)
            return NAN;
        return sign * (e == 0 ? m * pow(2, -9) : (8 + m) * pow(2, e - 10));
    }
    int e = (b >> 2) & 31, m = b & 3; /* E5M2 */
    if (e == 31)
        return m ? NAN : sign * INFINITY;
    return sign * (e == 0 ? m * pow(2, -16) : (4 + m) * pow(2, e - 17));
}

static int same_float(double a, double b) { return (isnan(a) && isnan(b)) || (a == b && signbit(a) == signbit(b)); }

/* ---- the specification gen_safetensors.py shares ----------------------------------------------------------------- */

#define SPEC_MAX 320

typedef struct {
    char name[48];
    safetensors_dtype dtype;
    int ndim;
    int64_t shape[SAFETENSORS_MAX_NDIM];
    int seed;
} spec_tensor;

typedef struct {
    const char *name;
    spec_tensor t[SPEC_MAX];
    size_t count;
    const char *meta[2][2];
    size_t meta_count;
} spec_case;

static const char *const spec_case_names[] = {"dtypes", "checkpoint", "empty", "meta_only", "many"};
#define SPEC_CASES 5
static const char spec_note[] = "ünïcødé \"quoted\" back\\slash\nnewline\ttab\x01/";
static const int64_t spec_i64_extremes[5] = {INT64_MIN, -1, 0, 1, INT64_MAX};
static const uint64_t spec_u64_extremes[4] = {0, 1, (uint64_t)1 << 63, UINT64_MAX};

static void spec_add(spec_case *c, const char *name, safetensors_dtype d, int ndim, const int64_t *shape, int seed)
{
    spec_tensor *t = &c->t[c->count++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = d;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++)
        t->shape[i] = shape[i];
    t->seed = seed;
}

static void spec_build(spec_case *c, const char *which)
{
    memset(c, 0, sizeof *c);
    c->name = which;
    static const int64_t shapes[4][8] = {{7}, {2, 3}, {3, 1, 4}, {2, 2, 2, 2, 2, 2, 2, 2}};
    static const int ndims[4] = {1, 2, 3, 8};
    char name[48], lower[16];
    if (strcmp(which, "dtypes") == 0) {
        for (int d = 0; d < SAFETENSORS_DTYPE_COUNT; d++) {
            const char *dn = safetensors_dtype_name((safetensors_dtype)d);
            size_t i = 0;
            for (; dn[i] && i + 1 < sizeof lower; i++)
                lower[i] = (char)(dn[i] >= 'A' && dn[i] <= 'Z' ? dn[i] - 'A' + 'a' : dn[i]);
            lower[i] = '\0';
            int64_t empty[2] = {3, 0};
            snprintf(name, sizeof name, "%s.full", lower);
            spec_add(c, name, (safetensors_dtype)d, ndims[d % 4], shapes[d % 4], d);
            snprintf(name, sizeof name, "%s.scalar", lower);
            spec_add(c, name, (safetensors_dtype)d, 0, NULL, d + 1);
            snprintf(name, sizeof name, "%s.empty", lower);
            spec_add(c, name, (safetensors_dtype)d, 2, empty, 0);
        }
        int64_t five = 5, four = 4;
        spec_add(c, "extremes.i64", SAFETENSORS_I64, 1, &five, 0);
        spec_add(c, "extremes.u64", SAFETENSORS_U64, 1, &four, 0);
        c->meta[0][0] = "format", c->meta[0][1] = "pt", c->meta_count = 1;
    } else if (strcmp(which, "checkpoint") == 0) {
        int64_t w[2] = {16, 24}, b = 16, r = 32;
        spec_add(c, "v_encoder.fc_mu.weight", SAFETENSORS_F32, 2, w, 1);
        spec_add(c, "v_encoder.fc_mu.bias", SAFETENSORS_F32, 1, &b, 2);
        spec_add(c, "step", SAFETENSORS_I64, 0, NULL, 5);
        spec_add(c, "rng", SAFETENSORS_U8, 1, &r, 3);
        c->meta[0][0] = "model", c->meta[0][1] = "teacher", c->meta_count = 1;
    } else if (strcmp(which, "meta_only") == 0) {
        c->meta[0][0] = "model", c->meta[0][1] = "student";
        c->meta[1][0] = "note", c->meta[1][1] = spec_note;
        c->meta_count = 2;
    } else if (strcmp(which, "many") == 0) {
        for (int i = 0; i < 300; i++) {
            int64_t n = i % 5 + 1;
            snprintf(name, sizeof name, "layer%03d.w", i);
            spec_add(c, name, SAFETENSORS_F32, 1, &n, i);
        }
    } /* "empty": nothing */
}

/* element value k = (i + seed) % 9 in the dtype's terms */
static double spec_value(safetensors_dtype d, int64_t i, int seed)
{
    int k = (int)((i + seed) % 9);
    switch (d) {
    case SAFETENSORS_BOOL: return k % 2;
    case SAFETENSORS_U8: case SAFETENSORS_U16: case SAFETENSORS_U32: case SAFETENSORS_U64: return k;
    case SAFETENSORS_I8: case SAFETENSORS_I16: case SAFETENSORS_I32: case SAFETENSORS_I64: return k - 4;
    case SAFETENSORS_F8_E8M0: return pow(2, k - 4);
    default: return (k - 4) * 0.5;
    }
}

/* the bytes of v (exact in d) */
static void spec_encode(safetensors_dtype d, double v, uint8_t *out)
{
    switch (d) {
    case SAFETENSORS_BOOL: case SAFETENSORS_U8: out[0] = (uint8_t)v; break;
    case SAFETENSORS_I8: out[0] = (uint8_t)(int8_t)v; break;
    case SAFETENSORS_U16: { uint16_t x = (uint16_t)v; memcpy(out, &x, 2); } break;
    case SAFETENSORS_I16: { int16_t x = (int16_t)v; memcpy(out, &x, 2); } break;
    case SAFETENSORS_U32: { uint32_t x = (uint32_t)v; memcpy(out, &x, 4); } break;
    case SAFETENSORS_I32: { int32_t x = (int32_t)v; memcpy(out, &x, 4); } break;
    case SAFETENSORS_U64: { uint64_t x = (uint64_t)v; memcpy(out, &x, 8); } break;
    case SAFETENSORS_I64: { int64_t x = (int64_t)v; memcpy(out, &x, 8); } break;
    case SAFETENSORS_F32: { float x = (float)v; memcpy(out, &x, 4); } break;
    case SAFETENSORS_F64: memcpy(out, &v, 8); break;
    case SAFETENSORS_BF16: {
        float x = (float)v;
        uint32_t b;
        memcpy(&b, &x, 4);
        uint16_t h = (uint16_t)(b >> 16);
        memcpy(out, &h, 2);
    } break;
    case SAFETENSORS_F16:
        for (uint32_t h = 0; h < 65536; h++) {
            if (ref_f16((uint16_t)h) == v) { /* the first match: +0 before -0 */
                uint16_t x = (uint16_t)h;
                memcpy(out, &x, 2);
                return;
            }
        }
        abort();
    default: /* float8 */
        for (int b = 0; b < 256; b++) {
            if (ref_f8(d, (uint8_t)b) == v) {
                out[0] = (uint8_t)b;
                return;
            }
        }
        abort();
    }
}

/* the tensor's bytes (malloc'd; NULL when empty) */
static uint8_t *spec_bytes(const spec_tensor *t, size_t *len)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    size_t es = (size_t)safetensors_dtype_size(t->dtype);
    *len = (size_t)n * es;
    if (!n)
        return NULL;
    uint8_t *b = malloc(*len);
    if (!b)
        abort();
    if (strcmp(t->name, "extremes.i64") == 0)
        memcpy(b, spec_i64_extremes, sizeof spec_i64_extremes);
    else if (strcmp(t->name, "extremes.u64") == 0)
        memcpy(b, spec_u64_extremes, sizeof spec_u64_extremes);
    else {
        /* 9 distinct values: encode each once (the F16 encoder searches) */
        uint8_t enc[9][8];
        for (int k = 0; k < 9; k++)
            spec_encode(t->dtype, spec_value(t->dtype, k, 0), enc[k]);
        for (int64_t i = 0; i < n; i++)
            memcpy(b + (size_t)i * es, enc[(i + t->seed) % 9], es);
    }
    return b;
}

/* write a specification case with our writer; the data buffers stay alive until the write */
static int spec_write(const spec_case *c, const char *path)
{
    safetensors_writer w;
    safetensors_writer_init(&w);
    uint8_t *bufs[SPEC_MAX];
    int rc = 0;
    for (size_t i = 0; i < c->count; i++) {
        size_t len;
        bufs[i] = spec_bytes(&c->t[i], &len);
        if (rc == 0)
            rc = safetensors_writer_add(&w, c->t[i].name, c->t[i].dtype, c->t[i].ndim, c->t[i].shape, bufs[i]);
    }
    for (size_t i = 0; rc == 0 && i < c->meta_count; i++)
        rc = safetensors_writer_set_metadata(&w, c->meta[i][0], c->meta[i][1]);
    if (rc == 0)
        rc = safetensors_write(&w, path);
    for (size_t i = 0; i < c->count; i++)
        free(bufs[i]);
    safetensors_writer_free(&w);
    return rc;
}

/* f holds exactly the case: tensors, bytes, both conversions, metadata */
static void spec_check(const safetensors_file *f, const spec_case *c)
{
    CHECK_MSG(f->count == c->count, "%s: %zu tensors, expected %zu", f->path, f->count, c->count);
    for (size_t i = 0; i < c->count; i++) {
        const spec_tensor *s = &c->t[i];
        const safetensors_tensor *t = safetensors_expect(f, s->name, s->dtype, s->ndim, s->shape, "the spec");
        CHECK_MSG(t != NULL, "%s", debcm_last_error());
        if (!t)
            continue;
        size_t len;
        uint8_t *want = spec_bytes(s, &len);
        CHECK_MSG(t->nbytes == len && (len == 0 || memcmp(t->data, want, len) == 0), "%s: tensor %s: bytes differ",
                  f->path, s->name);
        CHECK_MSG((uintptr_t)t->data % (uintptr_t)safetensors_dtype_size(s->dtype) == 0,
                  "%s: tensor %s: data not aligned", f->path, s->name);
        size_t n = t->numel ? (size_t)t->numel : 1;
        float *of = malloc(n * sizeof *of);
        int64_t *oi = malloc(n * sizeof *oi);
        int extreme = strncmp(s->name, "extremes.", 9) == 0;
        int rf = safetensors_to_f32(f, t, of);
        if (extreme) {
            CHECK(rf == -1);
            CHECK_REFUSAL(f->path, "not exactly representable as float32");
        }
        int ri = safetensors_to_i64(f, t, oi);
        if (extreme) {
            if (s->dtype == SAFETENSORS_I64) {
                CHECK(ri == 0 && memcmp(oi, spec_i64_extremes, sizeof spec_i64_extremes) == 0);
            } else {
                CHECK(ri == -1);
                CHECK_REFUSAL("extremes.u64", "element 2: U64 value 9223372036854775808 is beyond int64's range");
            }
        } else {
            CHECK_MSG(rf == 0, "%s", debcm_last_error());
            int bad = 0;
            for (int64_t e = 0; rf == 0 && e < t->numel; e++)
                bad += of[e] != (float)spec_value(s->dtype, e, s->seed);
            CHECK_MSG(bad == 0, "%s: tensor %s: %d float32 values differ", f->path, s->name, bad);
            if (safetensors_dtype_is_float(s->dtype)) {
                CHECK(ri == -1);
                CHECK_REFUSAL(s->name, "expected an integer or BOOL dtype to read as int64");
            } else {
                CHECK_MSG(ri == 0, "%s", debcm_last_error());
                for (int64_t e = 0; ri == 0 && e < t->numel; e++)
                    bad += oi[e] != (int64_t)spec_value(s->dtype, e, s->seed);
                CHECK_MSG(bad == 0, "%s: tensor %s: %d int64 values differ", f->path, s->name, bad);
            }
        }
        if (s->dtype == SAFETENSORS_F32)
            CHECK(safetensors_f32_view(t) == (const float *)(const void *)t->data);
        else
            CHECK(safetensors_f32_view(t) == NULL);
        free(of);
        free(oi);
        free(want);
    }
    CHECK_MSG(f->metadata_count == c->meta_count, "%s: %zu metadata keys", f->path, f->metadata_count);
    for (size_t i = 0; i < c->meta_count; i++) {
        const char *v = safetensors_metadata(f, c->meta[i][0]);
        CHECK_MSG(v && strcmp(v, c->meta[i][1]) == 0, "%s: metadata %s", f->path, c->meta[i][0]);
    }
    /* sorted by name */
    for (size_t i = 1; i < f->count; i++)
        CHECK(strcmp(f->tensors[i - 1].name, f->tensors[i].name) < 0);
}

/* rewrite an opened file with our writer (tensors in any order, metadata in file order) into `out` */
static int rewrite(const safetensors_file *f, const char *out)
{
    safetensors_writer w;
    safetensors_writer_init(&w);
    int rc = 0;
    for (size_t i = f->count; rc == 0 && i-- > 0;) /* reversed, so the writer's own ordering is what counts */
        rc = safetensors_writer_add(&w, f->tensors[i].name, f->tensors[i].dtype, f->tensors[i].ndim,
                                    f->tensors[i].shape, f->tensors[i].data);
    for (size_t i = 0; rc == 0 && i < f->metadata_count; i++)
        rc = safetensors_writer_set_metadata(&w, f->metadata[i].key, f->metadata[i].value);
    if (rc == 0)
        rc = safetensors_write(&w, out);
    safetensors_writer_free(&w);
    return rc;
}

static int same_file_bytes(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = test_read_file(a, &la), *y = test_read_file(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/* ---- 1. the reference's fixtures --------------------------------------------------------------------------------- */

static void test_fixtures(void)
{
    static const char *const files[] = {"ref_dtypes", "ref_checkpoint", "ref_empty", "ref_meta_only", "ref_conv"};
    spec_case *c = malloc(sizeof *c);
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char path[1024], out[1024];
        snprintf(path, sizeof path, "%s/safetensors/%s.safetensors", data_dir, files[k]);
        safetensors_file f;
        int rc = safetensors_open(&f, path);
        CHECK_MSG(rc == 0, "%s", debcm_last_error());
        if (rc)
            continue;
        if (k < 4) {
            spec_build(c, files[k] + 4);
            spec_check(&f, c);
        }
        /* our writer, given the same tensors, writes the reference's bytes */
        snprintf(out, sizeof out, "%s/%s.rewritten.safetensors", tmp_dir, files[k]);
        CHECK_MSG(rewrite(&f, out) == 0, "%s", debcm_last_error());
        CHECK_MSG(same_file_bytes(path, out), "%s: our rewrite differs from the reference's bytes", files[k]);
        unlink(out);
        /* and from the specification alone too (when the order of the metadata keys is not the reference's
         * hash map's choice) */
        if (k < 4 && c->meta_count <= 1) {
            snprintf(out, sizeof out, "%s/%s.spec.safetensors", tmp_dir, files[k]);
            CHECK_MSG(spec_write(c, out) == 0, "%s", debcm_last_error());
            CHECK_MSG(same_file_bytes(path, out), "%s: our file from the spec differs from the reference's",
                      files[k]);
            unlink(out);
        }
        safetensors_close(&f);
        safetensors_close(&f); /* twice is safe */
    }
    free(c);
}

/* ---- 2. conversions ---------------------------------------------------------------------------------------------- */

/* a one-tensor file image in memory, made by our writer (through a file) */
static uint8_t *one_tensor_image(safetensors_dtype d, int64_t n, const void *data, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/one.safetensors", tmp_dir);
    safetensors_writer w;
    safetensors_writer_init(&w);
    int64_t shape[1] = {n};
    uint8_t *img = NULL;
    if (safetensors_writer_add(&w, "x", d, 1, shape, data) == 0 && safetensors_write(&w, path) == 0)
        img = (uint8_t *)test_read_file(path, len);
    safetensors_writer_free(&w);
    unlink(path);
    return img;
}

static void test_conversions(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/safetensors/ref_conv.safetensors", data_dir);
    safetensors_file f;
    CHECK_MSG(safetensors_open(&f, path) == 0, "%s", debcm_last_error());
    static const char *const refs[] = {"f8_e5m2", "f8_e4m3", "f8_e8m0", "f16", "bf16", "f64"};
    for (size_t k = 0; f.count && k < sizeof refs / sizeof *refs; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s.bits", refs[k]);
        const safetensors_tensor *bits = safetensors_find(&f, name);
        snprintf(name, sizeof name, "%s.f32", refs[k]);
        const safetensors_tensor *want = safetensors_expect(&f, name, SAFETENSORS_F32, 1, bits ? bits->shape : NULL,
                                                            NULL);
        CHECK_MSG(bits && want, "%s", debcm_last_error());
        if (!bits || !want)
            continue;
        float *got = malloc((size_t)bits->numel * sizeof *got);
        CHECK_MSG(safetensors_to_f32(&f, bits, got) == 0, "%s", debcm_last_error());
        int bad = 0;
        for (int64_t i = 0; i < bits->numel; i++) {
            float w;
            memcpy(&w, want->data + 4 * i, 4);
            if (!same_float(got[i], w) && bad++ < 5)
                fprintf(stderr, "%s element %lld: got %.9g, ml_dtypes/numpy %.9g\n", refs[k], (long long)i,
                        (double)got[i], (double)w);
        }
        CHECK_MSG(bad == 0, "%s: %d of %lld values differ from the reference", refs[k], bad, (long long)bits->numel);
        printf("conversion %s: %lld values checked against the reference\n", refs[k], (long long)bits->numel);
        free(got);
    }
    safetensors_close(&f);

    /* every F16 and BF16 pattern against the independent decoders */
    uint16_t *pat = malloc(65536 * sizeof *pat);
    float *out = malloc(65536 * sizeof *out);
    for (uint32_t i = 0; i < 65536; i++)
        pat[i] = (uint16_t)i;
    for (int bf = 0; bf < 2; bf++) {
        size_t len;
        uint8_t *img = one_tensor_image(bf ? SAFETENSORS_BF16 : SAFETENSORS_F16, 65536, pat, &len);
        safetensors_file g;
        CHECK(img && safetensors_open_buffer(&g, img, len, "all16.safetensors") == 0);
        int bad = 0;
        if (img && g.count == 1 && safetensors_to_f32(&g, &g.tensors[0], out) == 0) {
            for (uint32_t i = 0; i < 65536; i++) {
                float want;
                uint32_t b = i << 16;
                memcpy(&want, &b, 4);
                bad += !same_float(out[i], bf ? (double)want : ref_f16((uint16_t)i));
            }
        } else {
            bad = -1;
        }
        CHECK_MSG(bad == 0, "%s: %d of 65536 patterns differ", bf ? "BF16" : "F16", bad);
        safetensors_close(&g);
        free(img);
    }
    free(pat);
    free(out);

    /* refusals, each naming the file, the tensor and the element */
    struct {
        safetensors_dtype d;
        int64_t n;
        uint8_t data[16];
        int to_i64;
        const char *what;
    } bad[] = {
        {SAFETENSORS_F64, 2, {0, 0, 0, 0, 0, 0, 0xf0, 0x3f, 165, 92, 195, 241, 41, 99, 61, 72}, 0,
         "element 1: F64 value 1e+40 is beyond float32's range"},
        {SAFETENSORS_I32, 2, {0, 0, 0, 0, 1, 0, 0, 1}, 0,
         "element 1: I32 value 16777217 is not exactly representable as float32"},
        {SAFETENSORS_BOOL, 3, {1, 0, 2}, 0, "element 2: expected a BOOL byte 0 or 1, found 2"},
        {SAFETENSORS_BOOL, 3, {1, 0, 2}, 1, "element 2: expected a BOOL byte 0 or 1, found 2"},
        {SAFETENSORS_F32, 1, {0, 0, 0x80, 0x3f}, 1, "expected an integer or BOOL dtype to read as int64, found F32"},
        {SAFETENSORS_U64, 2, {1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}, 1,
         "element 1: U64 value 9223372036854775808 is beyond int64's range"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        size_t len;
        uint8_t *img = one_tensor_image(bad[k].d, bad[k].n, bad[k].data, &len);
        safetensors_file g;
        CHECK(img && safetensors_open_buffer(&g, img, len, "conv.safetensors") == 0);
        float of[4];
        int64_t oi[4];
        if (img && g.count == 1) {
            CHECK(bad[k].to_i64 ? safetensors_to_i64(&g, &g.tensors[0], oi) == -1
                                : safetensors_to_f32(&g, &g.tensors[0], of) == -1);
            CHECK_REFUSAL("conv.safetensors: tensor 'x': ", bad[k].what);
        }
        safetensors_close(&g);
        free(img);
    }
    /* what passes: NaN and Inf from F64, 2^24 from an integer, -0.0 */
    double ok64[3] = {NAN, -INFINITY, -0.0};
    size_t len;
    uint8_t *img = one_tensor_image(SAFETENSORS_F64, 3, ok64, &len);
    safetensors_file g;
    float of[3];
    CHECK(img && safetensors_open_buffer(&g, img, len, "ok.safetensors") == 0 &&
          safetensors_to_f32(&g, &g.tensors[0], of) == 0 && isnan(of[0]) && of[1] == -INFINITY && of[2] == 0 &&
          signbit(of[2]));
    safetensors_close(&g);
    free(img);
    int32_t i24[2] = {16777216, -16777216};
    img = one_tensor_image(SAFETENSORS_I32, 2, i24, &len);
    CHECK(img && safetensors_open_buffer(&g, img, len, "ok.safetensors") == 0 &&
          safetensors_to_f32(&g, &g.tensors[0], of) == 0 && of[0] == 16777216.0f && of[1] == -16777216.0f);
    safetensors_close(&g);
    free(img);
}

/* ---- 3. round trips through our writer --------------------------------------------------------------------------- */

static void test_roundtrip(void)
{
    spec_case *c = malloc(sizeof *c);
    for (int k = 0; k < SPEC_CASES; k++) {
        spec_build(c, spec_case_names[k]);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.safetensors", tmp_dir, c->name);
        CHECK_MSG(spec_write(c, path) == 0, "%s", debcm_last_error());
        safetensors_file f;
        int rc = safetensors_open(&f, path);
        CHECK_MSG(rc == 0, "%s", debcm_last_error());
        if (rc)
            continue;
        spec_check(&f, c);
        /* layout: 8 + N a multiple of 8, the header padded with spaces, every tensor aligned to its element */
        CHECK((8 + f.header_len) % 8 == 0);
        const char *h = (const char *)f.map.base + 8;
        size_t end = (size_t)f.header_len;
        while (end > 0 && h[end - 1] == ' ')
            end--;
        CHECK(end > 0 && h[end - 1] == '}' && f.header_len - end < 8);
        for (size_t i = 0; i < f.count; i++)
            CHECK((8 + f.header_len + f.tensors[i].begin) % (uint64_t)safetensors_dtype_size(f.tensors[i].dtype) == 0);
        /* the same bytes through the buffer interface, from an unaligned copy */
        size_t len = 0;
        char *bytes = test_read_file(path, &len);
        CHECK(bytes != NULL);
        uint8_t *shifted = malloc(len + 1);
        if (bytes)
            memcpy(shifted + 1, bytes, len);
        safetensors_file b;
        CHECK_MSG(safetensors_open_buffer(&b, shifted + 1, len, "shifted.safetensors") == 0, "%s",
                  debcm_last_error());
        CHECK(b.count == f.count);
        for (size_t i = 0; i < b.count && i < f.count; i++) {
            CHECK(strcmp(b.tensors[i].name, f.tensors[i].name) == 0 && b.tensors[i].nbytes == f.tensors[i].nbytes &&
                  memcmp(b.tensors[i].data, f.tensors[i].data, f.tensors[i].nbytes) == 0);
            if (b.tensors[i].dtype == SAFETENSORS_F32 && b.tensors[i].numel)
                CHECK(safetensors_f32_view(&b.tensors[i]) == NULL); /* unaligned: use safetensors_to_f32 */
        }
        safetensors_close(&b);
        free(shifted);
        free(bytes);
        safetensors_close(&f);
        unlink(path);
    }
    free(c);
    /* a header of exactly 8k bytes needs no padding; one metadata key more needs some */
    safetensors_writer w;
    safetensors_writer_init(&w);
    char path[1024];
    snprintf(path, sizeof path, "%s/pad.safetensors", tmp_dir);
    for (int extra = 0; extra < 9; extra++) {
        char key[32];
        snprintf(key, sizeof key, "k%.*s", extra, "xxxxxxxxx");
        CHECK(safetensors_writer_set_metadata(&w, key, "v") == 0);
        CHECK(safetensors_write(&w, path) == 0);
        safetensors_file f;
        CHECK_MSG(safetensors_open(&f, path) == 0, "%s", debcm_last_error());
        CHECK(f.header_len % 8 == 0 && f.metadata_count == (size_t)extra + 1 && f.count == 0);
        safetensors_close(&f);
    }
    /* replacing a value keeps the key's place */
    CHECK(safetensors_writer_set_metadata(&w, "k", "replaced") == 0 && w.metadata_count == 9 &&
          strcmp(w.metadata[0].value, "replaced") == 0);
    safetensors_writer_free(&w);
    safetensors_writer_free(&w); /* twice is safe */
    unlink(path);
}

/* ---- 4. the writer's refusals ------------------------------------------------------------------------------------ */

static void test_writer_refusals(void)
{
    safetensors_writer w;
    safetensors_writer_init(&w);
    float v[4] = {1, 2, 3, 4};
    int64_t s1[1] = {4}, neg[2] = {2, -3}, huge[3] = {INT64_C(1) << 40, INT64_C(1) << 40, 1}, zero[2] = {0, 5};
    int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    CHECK(safetensors_writer_add(&w, "a", SAFETENSORS_F32, 1, s1, v) == 0);
    CHECK(safetensors_writer_add(&w, "a", SAFETENSORS_F32, 1, s1, v) == -1);
    CHECK_REFUSAL("tensor 'a'", "added twice");
    CHECK(safetensors_writer_add(&w, "__metadata__", SAFETENSORS_F32, 1, s1, v) == -1);
    CHECK_REFUSAL("'__metadata__'", "reserved");
    CHECK(safetensors_writer_add(&w, "b", (safetensors_dtype)99, 1, s1, v) == -1);
    CHECK_REFUSAL("tensor 'b'", "expected a dtype, found the value 99");
    CHECK(safetensors_writer_add(&w, "b", SAFETENSORS_ANY, 1, s1, v) == -1);
    CHECK(safetensors_writer_add(&w, "b", SAFETENSORS_F32, 9, nine, v) == -1);
    CHECK_REFUSAL("tensor 'b'", "expected 0 to 8 dimensions, found 9");
    CHECK(safetensors_writer_add(&w, "b", SAFETENSORS_F32, -1, s1, v) == -1);
    CHECK(safetensors_writer_add(&w, "b", SAFETENSORS_F32, 1, NULL, v) == -1);
    CHECK_REFUSAL("tensor 'b'", "no shape");
    CHECK(safetensors_writer_add(&w, "b", SAFETENSORS_F32, 2, neg, v) == -1);
    CHECK_REFUSAL("tensor 'b'", "expected dimensions >= 0, found shape [2, -3]");
    CHECK(safetensors_writer_add(&w, "b", SAFETENSORS_F32, 3, huge, v) == -1);
    CHECK_REFUSAL("tensor 'b'", "overflows int64");
    CHECK(safetensors_writer_add(&w, "b", SAFETENSORS_F32, 1, s1, NULL) == -1);
    CHECK_REFUSAL("tensor 'b'", "no data for shape [4]");
    CHECK(safetensors_writer_add(&w, "bad\xff utf8", SAFETENSORS_F32, 1, s1, v) == -1);
    CHECK_REFUSAL("tensor 'bad\\xff utf8'", "expected a UTF-8 name");
    CHECK(safetensors_writer_add(&w, "over\xc0\xaflong", SAFETENSORS_F32, 1, s1, v) == -1);
    CHECK(safetensors_writer_add(&w, "surrogate\xed\xa0\x80", SAFETENSORS_F32, 1, s1, v) == -1);
    CHECK(safetensors_writer_add(&w, NULL, SAFETENSORS_F32, 1, s1, v) == -1);
    CHECK(safetensors_writer_set_metadata(&w, "k", "\xfe") == -1);
    CHECK_REFUSAL("metadata 'k'", "expected UTF-8");
    CHECK(safetensors_writer_set_metadata(&w, NULL, "v") == -1);
    /* an empty tensor needs no data; names may be any UTF-8, empty included (the reference allows it) */
    CHECK(safetensors_writer_add(&w, "empty", SAFETENSORS_F32, 2, zero, NULL) == 0);
    CHECK(safetensors_writer_add(&w, "", SAFETENSORS_U8, 0, NULL, v) == 0);
    CHECK(safetensors_writer_add(&w, "ünï\ncødé \"\\", SAFETENSORS_U8, 0, NULL, v) == 0);
    CHECK(w.count == 4); /* the refused ones left nothing behind */
    char path[1024];
    snprintf(path, sizeof path, "%s/after_refusals.safetensors", tmp_dir);
    CHECK_MSG(safetensors_write(&w, path) == 0, "%s", debcm_last_error());
    safetensors_file f;
    CHECK_MSG(safetensors_open(&f, path) == 0, "%s", debcm_last_error());
    CHECK(f.count == 4 && safetensors_find(&f, "") && safetensors_find(&f, "ünï\ncødé \"\\") &&
          safetensors_find(&f, "empty") && safetensors_find(&f, "empty")->numel == 0);
    safetensors_close(&f);
    unlink(path);
    safetensors_writer_free(&w);
}

/* ---- 5. malformed files ------------------------------------------------------------------------------------------ */

/* a file image: the length N (or forced_n when nonzero), the header, the data */
static uint8_t *image(const char *header, size_t hlen, uint64_t forced_n, const void *data, size_t dlen,
                      size_t *len)
{
    *len = 8 + hlen + dlen;
    uint8_t *b = malloc(*len + 1);
    uint64_t n = forced_n ? forced_n : hlen;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(n >> (8 * i));
    memcpy(b + 8, header, hlen);
    if (dlen)
        memcpy(b + 8 + hlen, data, dlen);
    return b;
}

static void expect_refused(const char *header, size_t dlen, const char *what)
{
    static const uint8_t zeros[64];
    size_t len;
    uint8_t *b = image(header, strlen(header), 0, zeros, dlen, &len);
    safetensors_file f;
    int rc = safetensors_open_buffer(&f, b, len, "bad.safetensors");
    CHECK_MSG(rc == -1, "accepted: %s", header);
    if (rc == 0)
        safetensors_close(&f);
    CHECK_REFUSAL("bad.safetensors: ", what);
    CHECK(f.tensors == NULL && f.json == NULL); /* everything released */
    free(b);
}

#define T(dtype, shape, b, e) "{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"

static void test_malformed(void)
{
    size_t len;
    safetensors_file f;
    uint8_t *b;
    /* the length prefix */
    for (size_t n = 0; n < 8; n++) {
        CHECK(safetensors_open_buffer(&f, "\x10\0\0\0\0\0\0", n, "bad.safetensors") == -1);
        CHECK_REFUSAL("bad.safetensors: ", "expected at least the 8-byte header length");
    }
    static const uint64_t big[] = {UINT64_MAX, (uint64_t)1 << 63, 100000001};
    for (size_t k = 0; k < 3; k++) {
        b = image("{}", 2, big[k], NULL, 0, &len);
        CHECK(safetensors_open_buffer(&f, b, len, "bad.safetensors") == -1);
        CHECK_REFUSAL("bad.safetensors: ", "expected a header length of at most 100000000 bytes");
        free(b);
    }
    b = image("{}", 2, 3, NULL, 0, &len);
    CHECK(safetensors_open_buffer(&f, b, len, "bad.safetensors") == -1);
    CHECK_REFUSAL("bad.safetensors: ", "header of 3 bytes runs past the end of the file (2 bytes after the length)");
    free(b);
    /* the JSON */
    expect_refused("", 0, "invalid JSON at byte 0 of 0");
    expect_refused("{\"a\":", 0, "invalid JSON");
    expect_refused("{} x", 0, "invalid JSON");
    expect_refused("{\"a\xff\":1}", 0, "invalid JSON");
    expect_refused("{\"a\\u0000b\":1}", 0, "invalid JSON");
    expect_refused("[]", 0, "expected the header to be a JSON object, found []");
    expect_refused("{\"a\":" T("U8", "[1]", 0, 1) ",\"a\":" T("U8", "[1]", 0, 1) "}", 1, "duplicate object key");
    expect_refused("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", 0, "duplicate object key");
    /* metadata */
    expect_refused("{\"__metadata__\":[]}", 0, "expected \"__metadata__\" to be an object of strings, found []");
    expect_refused("{\"__metadata__\":null}", 0, "expected \"__metadata__\" to be an object of strings, found null");
    expect_refused("{\"__metadata__\":{\"k\":1}}", 0, "metadata 'k': expected a string, found 1");
    expect_refused("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0,
                   "metadata 'k': expected a string, found {\"x\":\"y\"}");
    /* tensor entries */
    expect_refused("{\"a\":1}", 0,
                   "tensor 'a': expected an object with \"dtype\", \"shape\" and \"data_offsets\", found 1");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"zz\":1}}", 1,
                   "tensor 'a': unexpected key 'zz'");
    expect_refused("{\"a\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                   "tensor 'a': expected \"dtype\" to be a string (e.g. \"F32\"), found (nothing)");
    expect_refused("{\"a\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,1]}}", 1, "found 4");
    expect_refused("{\"a\":" T("F33", "[1]", 0, 1) "}", 1, "tensor 'a': unknown dtype \"F33\", expected one of BOOL");
    expect_refused("{\"a\":" T("f32", "[1]", 0, 4) "}", 4, "unknown dtype \"f32\"");
    expect_refused("{\"a\":" T("F4", "[2]", 0, 1) "}", 1, "tensor 'a': unsupported dtype \"F4\"");
    expect_refused("{\"a\":" T("C64", "[1]", 0, 8) "}", 8, "unsupported dtype \"C64\"");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"data_offsets\":[0,1]}}", 1,
                   "tensor 'a': expected \"shape\" to be an array of integers, found (nothing)");
    expect_refused("{\"a\":" T("U8", "\"[1]\"", 0, 1) "}", 1, "found \"[1]\"");
    expect_refused("{\"a\":" T("U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) "}", 1,
                   "tensor 'a': expected at most 8 dimensions, found 9");
    expect_refused("{\"a\":" T("U8", "[-1]", 0, 0) "}", 0,
                   "tensor 'a': expected \"shape\" to hold integers >= 0, found [-1]");
    expect_refused("{\"a\":" T("U8", "[1.0]", 0, 1) "}", 1, "found [1.0]");
    expect_refused("{\"a\":" T("U8", "[\"1\"]", 0, 1) "}", 1, "found [\"1\"]");
    expect_refused("{\"a\":" T("U8", "[null]", 0, 1) "}", 1, "found [null]");
    expect_refused("{\"a\":" T("U8", "[99999999999999999999]", 0, 1) "}", 1, "invalid JSON");
    expect_refused("{\"a\":" T("F64", "[4611686018427387904,4,0]", 0, 0) "}", 0,
                   "tensor 'a': shape [4611686018427387904, 4, 0] of dtype F64: the product of the dimensions and "
                   "the element size overflows int64");
    expect_refused("{\"a\":" T("F32", "[2305843009213693952]", 0, 0) "}", 0, "overflows int64");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1]}}", 1,
                   "tensor 'a': expected \"data_offsets\" to be [begin, end] with 0 <= begin <= end, found (nothing)");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1, "found [0]");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]}}", 1, "found [0,1,2]");
    expect_refused("{\"a\":" T("U8", "[1]", -1, 0) "}", 1, "found [-1,0]");
    expect_refused("{\"a\":" T("U8", "[0]", 1, 0) "}", 1, "found [1,0]");
    expect_refused("{\"a\":" T("U8", "[1]", 0.0, 1) "}", 1, "found [0.0,1]");
    expect_refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{\"0\":1}}}", 1, "found {\"0\":1}");
    expect_refused("{\"a\":" T("U8", "[4]", 0, 4) "}", 3,
                   "tensor 'a': data_offsets [0, 4] run past the end of the data area, which holds 3 bytes");
    expect_refused("{\"a\":" T("U8", "[1]", 9223372036854775806, 9223372036854775807) "}", 3, "run past the end");
    expect_refused("{\"a\":" T("F32", "[2]", 0, 4) "}", 4,
                   "tensor 'a': expected 8 bytes for shape [2] of dtype F32, found data_offsets [0, 4] (4 bytes)");
    expect_refused("{\"a\":" T("F32", "[]", 0, 8) "}", 8, "expected 4 bytes for shape [] of dtype F32");
    /* the tiling of the data area */
    expect_refused("{\"a\":" T("U8", "[4]", 0, 4) ",\"b\":" T("U8", "[2]", 2, 4) "}", 4,
                   "tensor 'b': data_offsets [2, 4] overlap those of tensor 'a' [0, 4]");
    expect_refused("{\"a\":" T("U8", "[4]", 0, 4) ",\"b\":" T("U8", "[4]", 0, 4) "}", 4, "overlap");
    expect_refused("{\"a\":" T("U8", "[4]", 0, 4) ",\"e\":" T("U8", "[0]", 2, 2) "}", 4,
                   "tensor 'e': data_offsets [2, 2] overlap those of tensor 'a' [0, 4]");
    expect_refused("{\"a\":" T("U8", "[2]", 2, 4) "}", 4,
                   "tensor 'a': expected data_offsets to begin at 0, where the previous tensor ends, found [2, 4] "
                   "(safetensors allows no hole in the data area)");
    expect_refused("{\"a\":" T("U8", "[1]", 0, 1) ",\"b\":" T("U8", "[1]", 2, 3) "}", 3,
                   "tensor 'b': expected data_offsets to begin at 1");
    expect_refused("{\"a\":" T("U8", "[2]", 0, 2) "}", 4,
                   "expected the tensors to cover the data area of 4 bytes, found 2 bytes covered and 2 unused");
    expect_refused("{}", 1, "expected no data after a header without tensors, found 1 bytes");
    expect_refused("{\"__metadata__\":{}}", 5, "expected no data after a header without tensors, found 5 bytes");
    /* names in messages: control characters escaped, long names cut, the message on one line */
    expect_refused("{\"a\\nb\\u0007c\\\\\":1}", 0, "tensor 'a\\x0ab\\x07c\\\\': expected an object");
    char longh[3000];
    int n = snprintf(longh, sizeof longh, "{\"");
    for (int i = 0; i < 2000; i++)
        longh[n++] = 'n';
    snprintf(longh + n, sizeof longh - (size_t)n, "\":1}");
    expect_refused(longh, 0, "nnnnnnn...': expected an object");
    CHECK(strlen(debcm_last_error()) < 400);
    /* deep nesting: jansson's depth limit, no stack overflow */
    size_t depth = 100000;
    char *deep = malloc(2 * depth + 16);
    memcpy(deep, "{\"a\":", 5);
    memset(deep + 5, '[', depth);
    memset(deep + 5 + depth, ']', depth);
    memcpy(deep + 5 + 2 * depth, "}", 2);
    expect_refused(deep, 0, "invalid JSON");
    free(deep);
    /* what is accepted although odd: whitespace around the JSON, an empty name, an empty header object */
    static const char *const odd[] = {
        "  {\"a\":" T("U8", "[1]", 0, 1) "}\n\t ",
        "{\"\":" T("U8", "[1]", 0, 1) "}",
        "{\"b\":" T("U8", "[1]", 0, 1) ",\"a\":" T("F32", "[0]", 1, 1) ",\"c\":" T("F32", "[0,5]", 1, 1) "}",
        "{\"a\":" T("F64", "[0,4611686018427387904,4]", 0, 0) ",\"b\":" T("U8", "[1]", 0, 1) "}",
    };
    for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
        b = image(odd[k], strlen(odd[k]), 0, "x", 1, &len);
        CHECK_MSG(safetensors_open_buffer(&f, b, len, "odd.safetensors") == 0, "%s", debcm_last_error());
        safetensors_close(&f);
        free(b);
    }
    /* files on disk that are not files */
    char path[1024];
    snprintf(path, sizeof path, "%s/zero.safetensors", tmp_dir);
    FILE *fp = fopen(path, "wb");
    if (fp)
        fclose(fp);
    CHECK(safetensors_open(&f, path) == -1);
    CHECK_REFUSAL(path, "empty file (0 bytes), expected a .safetensors file");
    unlink(path);
    CHECK(safetensors_open(&f, tmp_dir) == -1);
    CHECK_REFUSAL(tmp_dir, "is a directory");
    snprintf(path, sizeof path, "%s/missing.safetensors", tmp_dir);
    CHECK(safetensors_open(&f, path) == -1);
    CHECK_REFUSAL(path, "No such file or directory");
    safetensors_close(&f);
}

/* every proper prefix of a valid file is refused, with a message naming it */
static void test_truncation(void)
{
    static const char *const files[] = {"ref_checkpoint", "ref_empty", "ref_meta_only"};
    for (size_t k = 0; k < sizeof files / sizeof *files; k++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/safetensors/%s.safetensors", data_dir, files[k]);
        size_t len;
        char *full = test_read_file(path, &len);
        CHECK_MSG(full != NULL, "cannot read %s", path);
        if (!full)
            continue;
        int accepted = 0, unnamed = 0;
        for (size_t n = 0; n < len; n++) {
            uint8_t *cut = malloc(n + 1); /* its own allocation, so ASan sees any read past n */
            memcpy(cut, full, n);
            safetensors_file f;
            if (safetensors_open_buffer(&f, cut, n, "cut.safetensors") == 0) {
                accepted++;
                safetensors_close(&f);
            } else if (!strstr(debcm_last_error(), "cut.safetensors") || strchr(debcm_last_error(), '\n')) {
                unnamed++;
            }
            free(cut);
        }
        CHECK_MSG(accepted == 0 && unnamed == 0, "%s: %d prefixes accepted, %d messages without the name", files[k],
                  accepted, unnamed);
        safetensors_file f;
        CHECK(safetensors_open_buffer(&f, full, len, "full.safetensors") == 0);
        safetensors_close(&f);
        /* and from disk, truncated to a few lengths */
        char cut_path[1024];
        snprintf(cut_path, sizeof cut_path, "%s/cut.safetensors", tmp_dir);
        for (size_t n = 1; n < len; n += len / 7 + 1) {
            FILE *fp = fopen(cut_path, "wb");
            CHECK(fp && fwrite(full, 1, n, fp) == n);
            if (fp)
                fclose(fp);
            CHECK(safetensors_open(&f, cut_path) == -1);
            CHECK_REFUSAL(cut_path, "");
        }
        unlink(cut_path);
        free(full);
    }
}

/* ---- 6. safetensors_expect and the metadata check ---------------------------------------------------------------- */

static void test_expect(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/teacher.safetensors", tmp_dir);
    float *w = calloc(128 * 1024, sizeof *w);
    int64_t ws[2] = {128, 1024}, hs[1] = {6};
    uint16_t half[6] = {0x3c00, 0xc000, 0x3800, 0, 0x8000, 0x7c00}; /* 1, -2, 0.5, 0, -0, inf */
    int64_t step = 1234;
    w[5] = 2.5f;
    safetensors_writer wr;
    safetensors_writer_init(&wr);
    CHECK(safetensors_writer_add(&wr, "v_encoder.fc_mu.weight", SAFETENSORS_F32, 2, ws, w) == 0);
    CHECK(safetensors_writer_add(&wr, "half", SAFETENSORS_F16, 1, hs, half) == 0);
    CHECK(safetensors_writer_add(&wr, "step", SAFETENSORS_I64, 0, NULL, &step) == 0);
    CHECK(safetensors_writer_set_metadata(&wr, "model", "student") == 0);
    CHECK(safetensors_write(&wr, path) == 0);
    safetensors_writer_free(&wr);
    safetensors_file f;
    CHECK_MSG(safetensors_open(&f, path) == 0, "%s", debcm_last_error());
    int64_t want[2] = {128, 2048};
    char msg[2048];
    CHECK(safetensors_expect(&f, "v_encoder.fc_mu.weight", SAFETENSORS_F32, 2, want, "the data") == NULL);
    snprintf(msg, sizeof msg, "%s: tensor 'v_encoder.fc_mu.weight': expected shape [128, 2048] (from the data), "
             "found [128, 1024]", path);
    CHECK_MSG(strcmp(debcm_last_error(), msg) == 0, "got \"%s\"", debcm_last_error());
    CHECK(safetensors_expect(&f, "v_encoder.fc_mu.weight", SAFETENSORS_F32, 1, want, NULL) == NULL);
    CHECK_CONTAINS(debcm_last_error(), "teacher.safetensors: tensor 'v_encoder.fc_mu.weight': expected shape [128], "
                                       "found [128, 1024]");
    CHECK(safetensors_expect(&f, "v_encoder.fc_mu.weight", SAFETENSORS_BF16, 2, ws, NULL) == NULL);
    CHECK_CONTAINS(debcm_last_error(), "teacher.safetensors: tensor 'v_encoder.fc_mu.weight': expected dtype BF16, "
                                       "found F32");
    CHECK(safetensors_expect(&f, "v_encoder.fc_logvar.weight", SAFETENSORS_F32, 2, ws, NULL) == NULL);
    CHECK_CONTAINS(debcm_last_error(), "teacher.safetensors: tensor 'v_encoder.fc_logvar.weight': expected in the "
                                       "file, not found among its 3 tensors");
    CHECK(safetensors_expect(&f, "step", SAFETENSORS_I64, 9, NULL, NULL) == NULL);
    CHECK_CONTAINS(debcm_last_error(), "expected shape (a 9-d shape), found []");
    CHECK(safetensors_expect(&f, "half", SAFETENSORS_F16, 1, NULL, NULL) == NULL);
    CHECK_CONTAINS(debcm_last_error(), "tensor 'half': expected shape (a 1-d shape), found [6]");
    const safetensors_tensor *t = safetensors_expect(&f, "v_encoder.fc_mu.weight", SAFETENSORS_ANY, 2, ws, NULL);
    CHECK(t && safetensors_f32_view(t) && safetensors_f32_view(t)[5] == 2.5f);
    /* the loaders' helpers */
    float hf[6];
    CHECK_MSG(safetensors_read_f32(&f, "half", 1, hs, "the model", hf) == 0, "%s", debcm_last_error());
    CHECK(hf[0] == 1 && hf[1] == -2 && hf[2] == 0.5f && hf[3] == 0 && !signbit(hf[3]) && signbit(hf[4]) &&
          isinf(hf[5]));
    CHECK(safetensors_read_f32(&f, "step", 0, NULL, NULL, hf) == -1);
    CHECK_CONTAINS(debcm_last_error(), "teacher.safetensors: tensor 'step': expected a floating-point dtype");
    CHECK(safetensors_read_f32(&f, "half", 1, ws, "the model", hf) == -1);
    CHECK_CONTAINS(debcm_last_error(), "tensor 'half': expected shape [128] (from the model), found [6]");
    int64_t st = 0;
    CHECK(safetensors_read_i64(&f, "step", 0, NULL, NULL, &st) == 0 && st == 1234);
    CHECK(safetensors_read_i64(&f, "half", 1, hs, NULL, &st) == -1);
    CHECK_CONTAINS(debcm_last_error(), "tensor 'half': expected an integer or BOOL dtype to read as int64, found F16");
    /* the model kind */
    CHECK(safetensors_expect_metadata(&f, "model", "student") == 0);
    CHECK(safetensors_expect_metadata(&f, "model", "teacher") == -1);
    snprintf(msg, sizeof msg, "%s: metadata 'model': expected 'teacher', found 'student'", path);
    CHECK_MSG(strcmp(debcm_last_error(), msg) == 0, "got \"%s\"", debcm_last_error());
    CHECK(safetensors_expect_metadata(&f, "kind", "teacher") == -1);
    CHECK_CONTAINS(debcm_last_error(), "teacher.safetensors: metadata 'kind': expected 'teacher', found no such key");
    CHECK(safetensors_metadata(&f, "kind") == NULL);
    safetensors_close(&f);
    unlink(path);
    free(w);
    /* the dtype table */
    for (int d = 0; d < SAFETENSORS_DTYPE_COUNT; d++)
        CHECK(safetensors_dtype_parse(safetensors_dtype_name((safetensors_dtype)d)) == (safetensors_dtype)d);
    CHECK(safetensors_dtype_parse("F4") == SAFETENSORS_ANY);
    CHECK(strcmp(safetensors_dtype_name(SAFETENSORS_ANY), "?") == 0);
    CHECK(safetensors_dtype_size(SAFETENSORS_BF16) == 2 && safetensors_dtype_size((safetensors_dtype)77) == 0);
    char q[16];
    CHECK(strcmp(safetensors_quote(q, sizeof q, "abcdefghijklmnopqrstuvwxyz", 100), "abcdefghijkl...") == 0);
    CHECK(strcmp(safetensors_quote(q, sizeof q, "ab", 1), "a...") == 0);
    CHECK(strcmp(safetensors_quote(q, 4, "ab", 10), "") == 0);
}

/* ---- 7. atomic writes -------------------------------------------------------------------------------------------- */

static void test_atomic(void)
{
    char path[1024], tmp[1100];
    float v[4] = {1, 2, 3, 4};
    int64_t s1[1] = {4};
    safetensors_writer w;
    safetensors_writer_init(&w);
    CHECK(safetensors_writer_add(&w, "v", SAFETENSORS_F32, 1, s1, v) == 0);
    /* a directory that does not exist */
    snprintf(path, sizeof path, "%s/no_such_dir/x.safetensors", tmp_dir);
    CHECK(safetensors_write(&w, path) == -1);
    CHECK_REFUSAL(path, "No such file or directory");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(!file_exists(tmp) && !file_exists(path));
    /* the target is a directory: rename fails, the temporary file goes */
    snprintf(path, sizeof path, "%s/a_dir.safetensors", tmp_dir);
    mkdir(path, 0755);
    CHECK(safetensors_write(&w, path) == -1);
    CHECK_REFUSAL(path, "cannot rename");
    CHECK(count_temp_files(tmp_dir) == 0);
    rmdir(path);
    /* a previous checkpoint survives a write that fails part way (the disk fills up: a file size limit makes
     * write() fail with EFBIG) */
    snprintf(path, sizeof path, "%s/ckpt.safetensors", tmp_dir);
    CHECK(safetensors_write(&w, path) == 0);
    size_t old_len;
    char *old = test_read_file(path, &old_len);
    safetensors_writer big;
    safetensors_writer_init(&big);
    int64_t bs[2] = {512, 512};
    float *data = calloc(512 * 512, sizeof *data);
    CHECK(safetensors_writer_add(&big, "v", SAFETENSORS_F32, 2, bs, data) == 0);
    CHECK(safetensors_writer_set_metadata(&big, "model", "teacher") == 0);
    struct rlimit lim_old, lim;
    getrlimit(RLIMIT_FSIZE, &lim_old);
    lim = lim_old;
    lim.rlim_cur = 65536;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        CHECK(safetensors_write(&big, path) == -1);
        CHECK_REFUSAL(path, "File too large");
        setrlimit(RLIMIT_FSIZE, &lim_old);
        size_t now_len;
        char *now = test_read_file(path, &now_len);
        CHECK_MSG(now && old && now_len == old_len && memcmp(now, old, old_len) == 0,
                  "the previous checkpoint changed");
        free(now);
        CHECK(count_temp_files(tmp_dir) == 0);
        safetensors_file f;
        CHECK(safetensors_open(&f, path) == 0 && f.count == 1 && f.tensors[0].numel == 4);
        safetensors_close(&f);
    } else {
        printf("setrlimit(RLIMIT_FSIZE) refused: the disk-full case is not exercised\n");
    }
    signal(SIGXFSZ, prev);
    /* without the limit, the same write replaces it */
    CHECK_MSG(safetensors_write(&big, path) == 0, "%s", debcm_last_error());
    safetensors_file f;
    CHECK(safetensors_open(&f, path) == 0 && f.count == 1 && f.tensors[0].numel == 512 * 512 &&
          safetensors_expect_metadata(&f, "model", "teacher") == 0);
    safetensors_close(&f);
    CHECK(count_temp_files(tmp_dir) == 0);
    unlink(path);
    free(old);
    free(data);
    safetensors_writer_free(&big);
    safetensors_writer_free(&w);
}

/* ---- 8. the fuzz corpus and former crashes ----------------------------------------------------------------------- */

/* the corpus must be there; the regressions folder only once a crash has been kept */
static void replay_corpus(const char *dir, int required)
{
    int n = test_replay_corpus(dir, LLVMFuzzerTestOneInput);
    CHECK_MSG(n >= 0 || !required, "no corpus at %s", dir);
}

/* ---- test_safetensors_python ------------------------------------------------------------------------------------- */

static int python_check(const char *python, const char *script, const char *dir)
{
    if (!python[0]) {
        printf("skipped: no Python that imports safetensors found at configure time (DEBCM_SAFETENSORS_PYTHON)\n");
        return CHECK_SKIP_CODE;
    }
    CHECK_MSG(mkdir(dir, 0777) == 0 || errno == EEXIST, "cannot create %s", dir);
    spec_case *c = malloc(sizeof *c);
    for (int k = 0; k < SPEC_CASES; k++) {
        spec_build(c, spec_case_names[k]);
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, c->name);
        CHECK_MSG(spec_write(c, path) == 0, "%s", debcm_last_error());
    }
    free(c);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(python, python, script, "--check", dir, (char *)NULL);
        perror(python);
        _exit(127);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s %s --check %s failed (status %d)", python, script,
              dir, status);
    return check_done();
}

int main(int argc, char **argv)
{
    if (argc == 6 && strcmp(argv[2], "--python") == 0)
        return python_check(argv[3], argv[4], argv[5]);
    if (argc != 2) {
        fprintf(stderr, "usage: %s tests/data [--python PYTHON gen_safetensors.py DIR]\n", argv[0]);
        return 1;
    }
    data_dir = argv[1];
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_safetensors.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_fixtures();
    test_conversions();
    test_roundtrip();
    test_writer_refusals();
    test_malformed();
    test_truncation();
    test_expect();
    test_atomic();
    char corpus[1024];
    snprintf(corpus, sizeof corpus, "%s/../fuzz/corpus/safetensors", data_dir);
    replay_corpus(corpus, 1);
    snprintf(corpus, sizeof corpus, "%s/../fuzz/regress/safetensors", data_dir);
    replay_corpus(corpus, 0);
    CHECK(count_temp_files(tmp_dir) == 0);
    rmdir(tmp_dir);
    return check_done();
}
