/* tests/test_npy.c — tests of the .npy reader and writer (io/npy.c).
 *
 * 1. Every NumPy-written fixture of tests/data/manifest.txt (gen_npy.py: every dtype, byte order, format version,
 *    memory order, 0-d/1-d/2-d and zero-size shape) opened from disk and from an unaligned in-memory copy, with
 *    every value checked through npy_to_f32/npy_to_i64 or the refusal checked. 2. Hand-made headers: the odd but
 *    valid forms NumPy accepts, and one malformed header per rule, each refused with a message naming the file;
 *    truncation at every length. 3. Conversions: all 65536 float16 patterns, Fortran transposition across tile
 *    edges, the refusals. 4. The writer: every type x byte order x memory order x version x shape written and read
 *    back, NumPy's exact header bytes, failures (missing directory, file size limit) leaving no temporary file.
 *    5. Paths: a FIFO or a device where a .npy should be is refused at once (never waited on); a round trip under
 *    a ~2,000-character directory path; a path over PATH_MAX is "path too long", never a shortened path; a
 *    message quoting a ~3,000-character path holds all of it. 6. The fuzz corpus replayed through the fuzz
 *    target. argv[1] is tests/data. */
#include <dirent.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "test_files.h"
#include "engine/error.h"
#include "io/file_map.h"
#include "io/npy.h"
#include "io/npz.h"
#include "npy_manifest.h"

#include "fuzz/fuzz_npy.c" /* LLVMFuzzerTestOneInput, replayed over the corpus below */

static const char *data_dir;
static char tmp_dir[512];

/* ---- helpers -------------------------------------------------------------------------------------------------- */

/* a .npy image: magic, version, header length, the header text as given, payload */
static size_t make_npy(uint8_t *out, size_t cap, int version, const char *header, const void *payload, size_t plen)
{
    size_t hl = strlen(header);
    size_t prefix = version == 1 ? 10 : 12;
    if (prefix + hl + plen > cap)
        abort();
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (uint8_t)version;
    out[7] = 0;
    out[8] = (uint8_t)(hl & 0xff);
    out[9] = (uint8_t)(hl >> 8 & 0xff);
    if (version != 1) {
        out[10] = (uint8_t)(hl >> 16 & 0xff);
        out[11] = (uint8_t)(hl >> 24 & 0xff);
    }
    memcpy(out + prefix, header, hl);
    if (plen)
        memcpy(out + prefix + hl, payload, plen);
    return prefix + hl + plen;
}

static int write_bytes(const char *path, const void *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t n = len ? fwrite(buf, 1, len, fp) : 0;
    return (fclose(fp) == 0 && n == len) ? 0 : -1;
}

/* ---- 1. fixtures ------------------------------------------------------------------------------------------------ */

static void test_fixtures(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.txt", data_dir);
    manifest m;
    CHECK_MSG(manifest_load(&m, path) == 0, "cannot load %s", path);
    int n_npy = 0;
    for (int i = 0; i < m.count; i++) {
        const manifest_rec *r = &m.recs[i];
        if (strncmp(r->src, "npy/", 4) != 0)
            continue;
        n_npy++;
        snprintf(path, sizeof path, "%s/%s", data_dir, r->src);
        npy_file f;
        if (npy_open(&f, path) != 0) {
            CHECK_MSG(0, "%s: %s", r->src, debcm_last_error());
            continue;
        }
        manifest_check(r, &f);
        /* the same from memory at an odd address: unaligned loads, no in-place view */
        uint8_t *copy = malloc(f.map_len + 1);
        memcpy(copy + 1, f.map_base, f.map_len);
        npy_file g;
        CHECK_MSG(npy_open_buffer(&g, copy + 1, f.map_len, path) == 0, "%s", debcm_last_error());
        if (g.data) {
            CHECK(npy_f32_view(&g) == NULL || g.h.count == 0);
            manifest_check(r, &g);
        }
        npy_close(&g);
        npy_close(&g); /* closing twice is safe */
        free(copy);
        npy_close(&f);
    }
    CHECK_MSG(n_npy >= 120, "only %d .npy fixtures in the manifest", n_npy);
    printf("fixtures: %d .npy files checked\n", n_npy);
    manifest_free(&m);
}

/* specific refusals of the fixtures, with their messages */
static void expect_conv_fail(const char *file, int to_i64, const char *needle)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/npy/%s", data_dir, file);
    npy_file f;
    if (npy_open(&f, path) != 0) {
        CHECK_MSG(0, "%s", debcm_last_error());
        return;
    }
    float of[64];
    int64_t oi[64];
    int rc = to_i64 ? npy_to_i64(&f, oi) : npy_to_f32(&f, of);
    CHECK_MSG(rc == -1, "%s: conversion should fail", file);
    CHECK_CONTAINS(debcm_last_error(), path);
    CHECK_CONTAINS(debcm_last_error(), needle);
    npy_close(&f);
}

static void test_fixture_refusals(void)
{
    expect_conv_fail("f4_fraction.npy", 1, "element 1 of the float32 array is 2.5; expected an integral value");
    expect_conv_fail("u8_max.npy", 1, "element 1 of the uint64 array is 18446744073709551615");
    expect_conv_fail("f8_nan_i64.npy", 1, "is NaN");
    expect_conv_fail("f8_2pow63.npy", 1, "outside int64's range");
    expect_conv_fail("f2_inf_i64.npy", 1, "outside int64's range");
    expect_conv_fail("f8_overflow_f32.npy", 0, "element 2 (row 1, col 0) is 1e+300, outside float32's range");
    expect_conv_fail("f8_overflow_neg_be.npy", 0, "element 1 is -3.5e+38");
    expect_conv_fail("object_2d.npy", 0, "object array cannot be converted");
    expect_conv_fail("object_2d.npy", 1, "object array cannot be converted");
}

/* ---- 2. hand-made headers --------------------------------------------------------------------------------------- */

static const float four_floats[4] = {1.0f, -2.0f, 3.5f, 0.25f};

static int open_header(npy_file *f, int version, const char *header, const void *payload, size_t plen)
{
    static uint8_t buf[1 << 17];
    size_t n = make_npy(buf, sizeof buf, version, header, payload, plen);
    debcm_error_clear();
    return npy_open_buffer(f, buf, n, "hand.npy");
}

static void accept_header(int version, const char *header, npy_type type, int fortran, int big, int ndim, int64_t d0,
                          int64_t d1, const void *payload, size_t plen)
{
    npy_file f;
    int rc = open_header(&f, version, header, payload, plen);
    CHECK_MSG(rc == 0, "header %s refused: %s", header, debcm_last_error());
    if (rc == 0) {
        CHECK_MSG(f.h.type == type && f.h.fortran_order == fortran && f.h.big_endian == big && f.h.ndim == ndim,
                  "header %s: type %d fortran %d big %d ndim %d", header, f.h.type, f.h.fortran_order,
                  f.h.big_endian, f.h.ndim);
        if (ndim > 0)
            CHECK(f.h.shape[0] == d0);
        if (ndim > 1)
            CHECK(f.h.shape[1] == d1);
        CHECK(f.h.version_major == version);
    }
    npy_close(&f);
}

static void refuse_header(int version, const char *header, const void *payload, size_t plen, const char *needle)
{
    npy_file f;
    int rc = open_header(&f, version, header, payload, plen);
    CHECK_MSG(rc == -1, "header %s accepted", header);
    CHECK_CONTAINS(debcm_last_error(), "hand.npy");
    CHECK_CONTAINS(debcm_last_error(), needle);
    if (getenv("DEBCM_TEST_VERBOSE"))
        printf("  refused: %s\n", debcm_last_error());
    CHECK(f.data == NULL && f.owned == NULL && f.map_base == NULL);
    npy_close(&f);
}

static void test_headers(void)
{
    static uint8_t zeros[4096];
    /* valid forms */
    accept_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", NPY_FLOAT32, 0, 0, 2, 2, 2,
                  four_floats, 16);
    accept_header(1, "{\"shape\": (2L, 2L), 'fortran_order': False, 'descr': '<f4'}", NPY_FLOAT32, 0, 0, 2, 2, 2,
                  four_floats, 16);
    accept_header(2, "{'descr':'<f4','fortran_order':True,'shape':(2,2,),}\n", NPY_FLOAT32, 1, 0, 2, 2, 2,
                  four_floats, 16);
    accept_header(3, "  {  'descr' : '>f4' ,\n 'fortran_order' : False , 'shape' : ( ) , }  \n", NPY_FLOAT32, 0, 1,
                  0, 0, 0, four_floats, 4);
    accept_header(1, "{'descr': '=i4', 'fortran_order': False, 'shape': (4,)}", NPY_INT32, 0, 0, 1, 4, 0, zeros, 16);
    accept_header(1, "{'descr': '|f4', 'fortran_order': False, 'shape': (4,)}", NPY_FLOAT32, 0, 0, 1, 4, 0, zeros,
                  16);
    accept_header(1, "{'descr': 'f8', 'fortran_order': False, 'shape': (2,)}", NPY_FLOAT64, 0, 0, 1, 2, 0, zeros,
                  16);
    accept_header(1, "{'descr': '>u1', 'fortran_order': False, 'shape': (3,)}", NPY_UINT8, 0, 0, 1, 3, 0, zeros, 3);
    accept_header(1, "{'descr': '|b1', 'fortran_order': False, 'shape': (3,)}", NPY_BOOL, 0, 0, 1, 3, 0, zeros, 3);
    accept_header(1, "{'descr': '?', 'fortran_order': False, 'shape': (3,)}", NPY_BOOL, 0, 0, 1, 3, 0, zeros, 3);
    accept_header(1, "{'descr': '|O8', 'fortran_order': False, 'shape': (3,)}", NPY_OBJECT, 0, 0, 1, 3, 0,
                  "\x80\x02N.", 4);
    accept_header(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (0, 5)}", NPY_FLOAT16, 0, 0, 2, 0, 5, NULL,
                  0);
    accept_header(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 9223372036854775807)}", NPY_FLOAT64, 0,
                  0, 2, 0, INT64_MAX, NULL, 0);
    accept_header(1, "{'descr':'<i2','fortran_order':False,'shape':(1,\n2)}", NPY_INT16, 0, 0, 2, 1, 2, zeros, 4);

    /* one malformed header per rule */
    refuse_header(1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}", zeros, 16, "unsupported dtype '<c8'");
    refuse_header(1, "{'descr': '<U4', 'fortran_order': False, 'shape': (2,)}", zeros, 32, "unsupported dtype");
    refuse_header(1, "{'descr': '<f16', 'fortran_order': False, 'shape': (2,)}", zeros, 32, "unsupported dtype");
    refuse_header(1, "{'descr': '<f4x', 'fortran_order': False, 'shape': (2,)}", zeros, 8, "unsupported dtype");
    refuse_header(1, "{'descr': '', 'fortran_order': False, 'shape': (2,)}", zeros, 8, "unsupported dtype");
    refuse_header(1, "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (2,)}", zeros, 16,
                  "structured dtype");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': maybe, 'shape': (2,)}", zeros, 8, "True or False");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", zeros, 8, "True or False");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': Falsely, 'shape': (2,)}", zeros, 8, "True or False");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 4)}", zeros, 96,
                  "3-d array (shape (2, 3, 4)) is not supported");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", zeros, 8, "negative dimension");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4611686018427387904)}",
                  zeros, 8, "more than 2**63-1 elements");
    refuse_header(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952, 2)}", zeros, 8,
                  "more than 2**63-1 bytes");
    refuse_header(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (99999999999999999999,)}", zeros, 8,
                  "exceeds 2**63-1");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), ", zeros, 8, "malformed header");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", zeros, 8, "malformed header");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,", zeros, 8, "malformed header");
    refuse_header(1, "{'descr': '<f4, 'fortran_order': False, 'shape': (2,)}", zeros, 8, "unsupported dtype");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", zeros, 8, "not a tuple");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", zeros, 8, "a tuple");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'extra': 1}", zeros, 8,
                  "unknown key 'extra'");
    refuse_header(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", zeros, 8,
                  "key 'descr' appears twice");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False}", zeros, 8, "lacks the key 'shape'");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", zeros, 8,
                  "only spaces and a newline after the header dict");
    refuse_header(1, "'descr': '<f4', 'fortran_order': False, 'shape': (2,)", zeros, 8, "a dict '{'");
    refuse_header(1, "{'de\\x63r': '<f4', 'fortran_order': False, 'shape': (2,)}", zeros, 8, "no escapes");
    refuse_header(1, "{'descr' '<f4', 'fortran_order': False, 'shape': (2,)}", zeros, 8, "':' after a key");
    refuse_header(1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2,)}", zeros, 8, "',' or '}'");
    refuse_header(1, "", zeros, 8, "a dict '{'");
    /* payload against the shape */
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (100, 2048), }", zeros, 4000,
                  "header says shape (100, 2048) of float32 = 819200 bytes but the file holds only 4000 bytes after "
                  "the header");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", zeros, 13,
                  "1 trailing bytes (NumPy never writes any)");
    refuse_header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }", zeros, 0, "holds only 0 bytes");
    refuse_header(1, "{'descr': '|O', 'fortran_order': False, 'shape': (3,), }", zeros, 0,
                  "without its pickle payload");

    /* preamble: magic, version, header length */
    uint8_t buf[512];
    size_t n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                        four_floats, 16);
    npy_file f;
    const struct {
        size_t off;
        uint8_t val;
        const char *needle;
    } pokes[] = {
        {0, 0x94, "not a .npy file: expected the magic \\x93NUMPY, found bytes 944e554d5059"},
        {3, 'X', "not a .npy file"},
        {6, 4, "unsupported .npy format version 4.0"},
        {6, 0, "unsupported .npy format version 0.0"},
        {7, 1, "unsupported .npy format version 1.1"},
        {9, 0xff, "only"},
    };
    for (size_t i = 0; i < sizeof pokes / sizeof pokes[0]; i++) {
        uint8_t save = buf[pokes[i].off];
        buf[pokes[i].off] = pokes[i].val;
        CHECK(npy_open_buffer(&f, buf, n, "poke.npy") == -1);
        CHECK_CONTAINS(debcm_last_error(), "poke.npy");
        CHECK_CONTAINS(debcm_last_error(), pokes[i].needle);
        buf[pokes[i].off] = save;
    }
    /* version 2.0 with a huge header length */
    static uint8_t big[80];
    memcpy(big, "\x93NUMPY\x02\x00\xff\xff\xff\x7f", 12);
    CHECK(npy_open_buffer(&f, big, sizeof big, "huge.npy") == -1);
    CHECK_CONTAINS(debcm_last_error(), "huge.npy: header length 2147483647 exceeds the limit of 65536 bytes");
    memcpy(big, "\x93NUMPY\x02\x00\x01\x00\x01\x00", 12); /* 65537 */
    CHECK(npy_open_buffer(&f, big, sizeof big, "huge.npy") == -1);
    CHECK_CONTAINS(debcm_last_error(), "exceeds the limit");
    memcpy(big, "\x93NUMPY\x02\x00\x00\x00\x01\x00", 12); /* 65536: allowed, but past the end */
    CHECK(npy_open_buffer(&f, big, sizeof big, "huge.npy") == -1);
    CHECK_CONTAINS(debcm_last_error(), "header length is 65536 bytes but only 68 bytes follow");
    /* a NUL byte in the padding after the dict */
    n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }    \n", four_floats,
                 16);
    CHECK(npy_open_buffer(&f, buf, n, "nul.npy") == 0);
    npy_close(&f);
    buf[10 + 60] = '\0';
    CHECK(npy_open_buffer(&f, buf, n, "nul.npy") == -1);
    CHECK_CONTAINS(debcm_last_error(), "nul.npy: malformed header: expected only spaces and a newline after the "
                                       "header dict, found '?");
    n = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", four_floats, 16);
    CHECK(npy_open_buffer(&f, buf, 0, "empty.npy") == -1);
    CHECK_CONTAINS(debcm_last_error(), "empty.npy: empty");
    CHECK(npy_open_buffer(&f, buf, n, "ok.npy") == 0);
    npy_close(&f);
}

/* truncate a NumPy-written file at every length from 0 to past the header end */
static void test_truncation(void)
{
    char path[1024], tpath[1024];
    snprintf(path, sizeof path, "%s/npy/float32_le_2d_c.npy", data_dir);
    size_t len;
    uint8_t *full = (uint8_t *)test_read_file(path, &len);
    CHECK(full != NULL && len == 128 + 48);
    if (!full)
        return;
    int refused = 0;
    for (size_t n = 0; n < len; n++) {
        npy_file f;
        debcm_error_clear();
        int rc = npy_open_buffer(&f, full, n, "cut.npy");
        CHECK_MSG(rc == -1, "truncated at %zu accepted", n);
        CHECK_CONTAINS(debcm_last_error(), "cut.npy");
        refused += rc == -1;
        if (n == 0 || n == 60 || n == 128 || n == 140) { /* and through the file path */
            snprintf(tpath, sizeof tpath, "%s/cut_%zu.npy", tmp_dir, n);
            write_bytes(tpath, full, n);
            CHECK(npy_open(&f, tpath) == -1);
            CHECK_CONTAINS(debcm_last_error(), tpath);
            CHECK_CONTAINS(debcm_last_error(), n == 0 ? "empty file" : n < 128 ? "truncated" : "holds only");
            unlink(tpath);
        }
    }
    printf("truncation: %d prefixes refused\n", refused);
    npy_file f;
    CHECK(npy_open_buffer(&f, full, len, "cut.npy") == 0);
    npy_close(&f);
    free(full);

    /* open errors through the file system */
    snprintf(tpath, sizeof tpath, "%s/does_not_exist.npy", tmp_dir);
    CHECK(npy_open(&f, tpath) == -1);
    CHECK_CONTAINS(debcm_last_error(), "does_not_exist.npy: cannot open: No such file or directory");
    CHECK(npy_open(&f, tmp_dir) == -1);
    CHECK_CONTAINS(debcm_last_error(), "is a directory, expected a .npy file");
    CHECK(f.map_base == NULL);
}

/* ---- 3. conversions ------------------------------------------------------------------------------------------- */

static float half_reference(uint16_t h)
{
    int sign = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0)
        v = ldexp(m, -24);
    else if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = ldexp(1024 + m, e - 25);
    return (float)(sign ? -v : v);
}

static void test_half_exhaustive(void)
{
    uint16_t *le = malloc(65536 * 2);
    uint8_t *be = malloc(65536 * 2);
    float *out = malloc(65536 * sizeof *out);
    for (uint32_t i = 0; i < 65536; i++) {
        le[i] = (uint16_t)i;
        be[2 * i] = (uint8_t)(i >> 8);
        be[2 * i + 1] = (uint8_t)i;
    }
    int64_t shape[1] = {65536};
    for (int big = 0; big < 2; big++) {
        CHECK(npy_convert_f32(out, big ? be : (const uint8_t *)le, NPY_FLOAT16, big, 0, 1, shape, "half") == 0);
        int bad = 0;
        for (uint32_t i = 0; i < 65536; i++) {
            float want = half_reference((uint16_t)i);
            int ok = isnan(want) ? isnan(out[i]) && ((i & 0x8000) != 0) == (signbit(out[i]) != 0)
                                 : memcmp(&want, &out[i], 4) == 0;
            if (!ok && bad++ < 5)
                CHECK_MSG(0, "half 0x%04x -> %.9g, expected %.9g", i, out[i], want);
        }
        CHECK_MSG(bad == 0, "%d of 65536 half values wrong (big=%d)", bad, big);
    }
    /* quiet NaN payload is kept */
    uint16_t qnan = 0x7e01;
    int64_t one[1] = {1};
    CHECK(npy_convert_f32(out, (const uint8_t *)&qnan, NPY_FLOAT16, 0, 0, 1, one, "nan") == 0);
    uint32_t bits;
    memcpy(&bits, out, 4);
    CHECK(bits == (0x7f800000u | (0x201u << 13)));
    free(le);
    free(be);
    free(out);
}

/* Fortran -> C transposition over shapes that straddle the 32x32 tiles, for every type and byte order */
static void test_transpose(void)
{
    const int64_t shapes[][2] = {{130, 67}, {1, 200}, {200, 1}, {64, 64}, {65, 2}, {2, 65}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t R = shapes[s][0], C = shapes[s][1], n = R * C;
        for (int t = NPY_BOOL; t < NPY_OBJECT; t++) {
            for (int big = 0; big < 2; big++) {
                int es = npy_type_size((npy_type)t);
                uint8_t *src = malloc((size_t)n * (size_t)es);
                float *of = malloc((size_t)n * sizeof *of);
                int64_t *oi = malloc((size_t)n * sizeof *oi);
                /* element (r, c) holds the value r*C + c (small, exact in every type; float16 < 2048) */
                for (int64_t r = 0; r < R; r++)
                    for (int64_t c = 0; c < C; c++) {
                        int64_t v = (r * C + c) % 2000;
                        if (t == NPY_BOOL || t == NPY_INT8 || t == NPY_UINT8)
                            v %= t == NPY_BOOL ? 2 : 100;
                        uint8_t e[8];
                        uint16_t h16;
                        float f32 = (float)v;
                        double f64 = (double)v;
                        uint64_t u = (uint64_t)v;
                        if (t == NPY_FLOAT16) {
                            /* v < 2048 is exact: build the half bits by hand */
                            if (v == 0)
                                h16 = 0;
                            else {
                                int ex = 0;
                                while ((v >> ex) > 1)
                                    ex++;
                                h16 = (uint16_t)(((ex + 15) << 10) | (((v << 10) >> ex) & 1023));
                            }
                            memcpy(e, &h16, 2);
                        } else if (t == NPY_FLOAT32)
                            memcpy(e, &f32, 4);
                        else if (t == NPY_FLOAT64)
                            memcpy(e, &f64, 8);
                        else
                            memcpy(e, &u, 8);
                        uint8_t *dst = src + (size_t)(c * R + r) * (size_t)es; /* Fortran position */
                        for (int b = 0; b < es; b++)
                            dst[b] = big ? e[es - 1 - b] : e[b];
                    }
                int64_t shape[2] = {R, C};
                CHECK(npy_convert_f32(of, src, (npy_type)t, big, 1, 2, shape, "tr") == 0);
                CHECK(npy_convert_i64(oi, src, (npy_type)t, big, 1, 2, shape, "tr") == 0);
                int bad = 0;
                for (int64_t k = 0; k < n; k++) {
                    int64_t v = k % 2000;
                    if (t == NPY_BOOL || t == NPY_INT8 || t == NPY_UINT8)
                        v %= t == NPY_BOOL ? 2 : 100;
                    if ((of[k] != (float)v || oi[k] != v) && bad++ < 3)
                        CHECK_MSG(0, "%s big=%d %lldx%lld [%lld]: %g / %lld, expected %lld",
                                  npy_type_name((npy_type)t), big, (long long)R, (long long)C, (long long)k,
                                  of[k], (long long)oi[k], (long long)v);
                }
                free(src);
                free(of);
                free(oi);
            }
        }
    }
}

static void test_convert_misc(void)
{
    float of[4];
    int64_t oi[4];
    int64_t shape[2] = {2, 2};
    double d[4] = {1, 2, 3, 4};
    CHECK(npy_convert_f32(of, (const uint8_t *)d, NPY_OBJECT, 0, 0, 2, shape, "obj") == -1);
    CHECK_CONTAINS(debcm_last_error(), "obj: object array cannot be converted");
    int64_t s3[3] = {1, 1, 1};
    CHECK(npy_convert_i64(oi, (const uint8_t *)d, NPY_FLOAT64, 0, 0, 3, s3, "d3") == -1);
    CHECK_CONTAINS(debcm_last_error(), "d3: 3-d array");
    int64_t neg[2] = {-1, 2};
    CHECK(npy_convert_f32(of, (const uint8_t *)d, NPY_FLOAT64, 0, 0, 2, neg, "neg") == -1);
    CHECK_CONTAINS(debcm_last_error(), "neg: negative dimension");
    /* int64 limits from float64: -2**63 is fine, 2**63 is not */
    double lim[2] = {-9223372036854775808.0, 9.2233720368547748e18};
    int64_t s1[1] = {2};
    CHECK(npy_convert_i64(oi, (const uint8_t *)lim, NPY_FLOAT64, 0, 0, 1, s1, "lim") == 0);
    CHECK(oi[0] == INT64_MIN && oi[1] == 9223372036854774784LL);
    double frac[1] = {-0.5};
    int64_t s0[1] = {0};
    CHECK(npy_convert_i64(oi, (const uint8_t *)frac, NPY_FLOAT64, 0, 0, 0, s0, "frac") == -1);
    CHECK_CONTAINS(debcm_last_error(), "frac: the 0-d value of the float64 array is -0.5; expected an integral value");
    /* 0-d arrays ignore the shape pointer; zero-size arrays need no data */
    CHECK(npy_convert_f32(of, (const uint8_t *)d, NPY_FLOAT64, 1, 0, 0, NULL, "scalar") == 0);
    int64_t z[2] = {0, 5};
    CHECK(npy_convert_f32(of, NULL, NPY_FLOAT32, 0, 1, 2, z, "zero") == 0);
    CHECK(npy_convert_i64(oi, NULL, NPY_UINT64, 1, 1, 2, z, "zero") == 0);
    /* float64 just beyond float32's max is refused, float32 max itself and infinities pass */
    double edge[3] = {3.4028234663852886e38, INFINITY, -INFINITY};
    int64_t s3b[1] = {3};
    CHECK(npy_convert_f32(of, (const uint8_t *)edge, NPY_FLOAT64, 0, 0, 1, s3b, "edge") == 0);
    CHECK(of[0] == FLT_MAX && isinf(of[1]) && isinf(of[2]) && of[2] < 0);
    double over[1] = {3.4028236e38};
    int64_t s1b[1] = {1};
    CHECK(npy_convert_f32(of, (const uint8_t *)over, NPY_FLOAT64, 0, 0, 1, s1b, "over") == -1);
    CHECK_CONTAINS(debcm_last_error(), "over: element 0 is 3.4028236e+38, outside");
    CHECK(strcmp(npy_type_name(NPY_FLOAT16), "float16") == 0 && strcmp(npy_type_name(NPY_OBJECT), "object") == 0);
    CHECK(npy_type_size(NPY_OBJECT) == 8 && npy_type_size(NPY_BOOL) == 1 && npy_type_size(NPY_FLOAT16) == 2);
}

/* ---- 4. the writer ------------------------------------------------------------------------------------------------ */

/* deterministic element bits for the round trip; floats keep away from NaN so values compare exactly */
static void sample_element(npy_type t, int64_t k, uint8_t *e)
{
    uint64_t x = (uint64_t)(k + 1) * 0x9E3779B97F4A7C15ull;
    int es = npy_type_size(t);
    if (t == NPY_BOOL)
        x = (k % 3) == 0;
    if (t == NPY_FLOAT16 && ((x >> 48) & 0x7c00) == 0x7c00)
        x &= ~((uint64_t)0x0400 << 48);
    if (t == NPY_FLOAT32 && ((x >> 32) & 0x7f800000u) == 0x7f800000u)
        x &= ~((uint64_t)0x00800000u << 32);
    if (t == NPY_FLOAT64 && (x & 0x7ff0000000000000ull) == 0x7ff0000000000000ull)
        x &= ~0x0010000000000000ull;
    uint64_t v = es == 8 ? x : es == 4 ? x >> 32 : es == 2 ? x >> 48 : (t == NPY_BOOL ? x : x >> 56);
    memcpy(e, &v, (size_t)es); /* little-endian host: the low bytes */
}

static void test_writer_roundtrip(void)
{
    const int64_t shapes[][2] = {{0, 0}, {5, 0}, {3, 4}, {0, 3}, {1, 5}, {70, 3}};
    const int ndims[] = {0, 1, 2, 2, 2, 2};
    char path[1024];
    snprintf(path, sizeof path, "%s/rt.npy", tmp_dir);
    int files = 0;
    for (int t = NPY_BOOL; t < NPY_OBJECT; t++)
        for (int big = 0; big < 2; big++)
            for (int fo = 0; fo < 2; fo++)
                for (int ver = 0; ver <= 3; ver++)
                    for (size_t s = 0; s < sizeof ndims / sizeof ndims[0]; s++) {
                        int nd = ndims[s];
                        const int64_t *shape = shapes[s];
                        int64_t R = nd == 2 ? shape[0] : 1, C = nd == 0 ? 1 : shape[nd - 1], n = R * C;
                        int es = npy_type_size((npy_type)t);
                        uint8_t *src = malloc((size_t)(n ? n : 1) * (size_t)es);
                        for (int64_t k = 0; k < n; k++)
                            sample_element((npy_type)t, k, src + (size_t)k * (size_t)es);
                        npy_write_options o = {ver, big, fo};
                        int rc = npy_write(path, (npy_type)t, nd, shape, src, &o);
                        CHECK_MSG(rc == 0, "write %s: %s", npy_type_name((npy_type)t), debcm_last_error());
                        npy_file f;
                        if (rc == 0 && npy_open(&f, path) == 0) {
                            files++;
                            int transposed = fo && nd == 2 && R > 1 && C > 1;
                            CHECK(f.h.type == (npy_type)t && f.h.ndim == nd && f.h.count == n);
                            CHECK(f.h.version_major == (ver ? ver : 1));
                            CHECK(f.h.big_endian == (big && es > 1));
                            CHECK(f.h.fortran_order == transposed);
                            CHECK(f.h.data_offset % 64 == 0);
                            for (int i = 0; i < nd; i++)
                                CHECK(f.h.shape[i] == shape[i]);
                            int bad = 0;
                            for (int64_t k = 0; k < n; k++) { /* the raw element at its file position */
                                int64_t pos = transposed ? (k % C) * R + k / C : k;
                                const uint8_t *p = f.data + (size_t)pos * (size_t)es;
                                const uint8_t *q = src + (size_t)k * (size_t)es;
                                for (int b = 0; b < es; b++)
                                    bad += p[b] != q[(big && es > 1) ? es - 1 - b : b];
                            }
                            CHECK_MSG(bad == 0, "%s big=%d fortran=%d v%d shape %d: %d bytes differ",
                                      npy_type_name((npy_type)t), big, fo, ver, (int)s, bad);
                            /* and through the conversion, against converting the source */
                            float *a = malloc((size_t)(n ? n : 1) * sizeof *a);
                            float *b = malloc((size_t)(n ? n : 1) * sizeof *b);
                            if (npy_convert_f32(b, src, (npy_type)t, 0, 0, nd, shape, "src") == 0) {
                                CHECK(npy_to_f32(&f, a) == 0);
                                CHECK(n == 0 || memcmp(a, b, (size_t)n * sizeof *a) == 0);
                            }
                            free(a);
                            free(b);
                            npy_close(&f);
                        } else if (rc == 0) {
                            CHECK_MSG(0, "reopen: %s", debcm_last_error());
                        }
                        free(src);
                    }
    CHECK(test_count_temp_files(tmp_dir) == 0);
    printf("writer: %d files written and read back\n", files);

    /* NumPy's exact header for a known case */
    float v[12] = {0};
    int64_t shape[2] = {3, 4};
    CHECK(npy_write(path, NPY_FLOAT32, 2, shape, v, NULL) == 0);
    size_t len;
    char *text = test_read_file(path, &len);
    static const uint8_t preamble[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 118, 0};
    const char *dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }";
    CHECK(text && len == 128 + 48 && memcmp(text, preamble, 10) == 0 && memcmp(text + 10, dict, strlen(dict)) == 0);
    for (int i = 10 + (int)strlen(dict); text && i < 127; i++)
        CHECK(text[i] == ' ');
    CHECK(text && text[127] == '\n');
    free(text);
    /* the NumPy fixture written from the same values by NumPy has the same header */
    char fix[1024];
    snprintf(fix, sizeof fix, "%s/npy/float32_le_2d_f.npy", data_dir);
    npy_file nf;
    if (npy_open(&nf, fix) == 0) {
        float c[12];
        CHECK(npy_to_f32(&nf, c) == 0);
        npy_write_options o = {1, 0, 1};
        CHECK(npy_write(path, NPY_FLOAT32, 2, nf.h.shape, c, &o) == 0);
        char *mine = test_read_file(path, &len);
        CHECK(mine && len == nf.map_len && memcmp(mine, nf.map_base, len) == 0);
        free(mine);
        npy_close(&nf);
    }

    /* object arrays: the header and the pickle bytes as given */
    const char pickle[] = "\x80\x02]q\x00(K\x01K\x02" "e.";
    int64_t oshape[1] = {2};
    npy_write_options o3 = {3, 0, 0};
    CHECK(npy_write_object(path, 1, oshape, pickle, sizeof pickle - 1, &o3) == 0);
    npy_file of;
    CHECK(npy_open(&of, path) == 0);
    CHECK(of.h.type == NPY_OBJECT && of.h.version_major == 3 && of.h.ndim == 1 && of.h.shape[0] == 2);
    CHECK(of.data_size == sizeof pickle - 1 && memcmp(of.data, pickle, of.data_size) == 0);
    npy_close(&of);
    unlink(path);

    /* refusals of the writer */
    CHECK(npy_write(path, NPY_OBJECT, 1, oshape, v, NULL) == -1);
    CHECK_CONTAINS(debcm_last_error(), "npy_write_object");
    int64_t s3[3] = {1, 2, 3};
    CHECK(npy_write(path, NPY_FLOAT32, 3, s3, v, NULL) == -1);
    CHECK_CONTAINS(debcm_last_error(), "3-d");
    npy_write_options bad = {4, 0, 0};
    CHECK(npy_write(path, NPY_FLOAT32, 2, shape, v, &bad) == -1);
    CHECK_CONTAINS(debcm_last_error(), "version 4");
    CHECK(!test_file_exists(path));
}

static void test_writer_failures(void)
{
    char path[1024], tmp[1100];
    float v[4] = {1, 2, 3, 4};
    int64_t shape[1] = {4};
    /* a directory that does not exist */
    snprintf(path, sizeof path, "%s/no_such_dir/x.npy", tmp_dir);
    CHECK(npy_write(path, NPY_FLOAT32, 1, shape, v, NULL) == -1);
    CHECK_CONTAINS(debcm_last_error(), path);
    CHECK_CONTAINS(debcm_last_error(), "No such file or directory");
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    CHECK(!test_file_exists(tmp) && !test_file_exists(path));
    /* the target is a directory: rename fails, the temporary file goes */
    snprintf(path, sizeof path, "%s/a_dir.npy", tmp_dir);
    mkdir(path, 0755);
    CHECK(npy_write(path, NPY_FLOAT32, 1, shape, v, NULL) == -1);
    CHECK_CONTAINS(debcm_last_error(), "cannot rename");
    CHECK(test_count_temp_files(tmp_dir) == 0);
    rmdir(path);
    /* the disk fills up: a file size limit makes write() fail with EFBIG part way */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 65536;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    int64_t big_shape[2] = {512, 512};
    float *big = calloc(512 * 512, sizeof *big);
    snprintf(path, sizeof path, "%s/too_big.npy", tmp_dir);
    if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        for (int be = 0; be < 2; be++) { /* the direct path and the buffered (byte-swapping) path */
            npy_write_options o = {0, be, 0};
            CHECK(npy_write(path, NPY_FLOAT32, 2, big_shape, big, &o) == -1);
            CHECK_CONTAINS(debcm_last_error(), path);
            CHECK_CONTAINS(debcm_last_error(), "File too large");
            CHECK(!test_file_exists(path));
            CHECK(test_count_temp_files(tmp_dir) == 0);
        }
        setrlimit(RLIMIT_FSIZE, &old);
    }
    signal(SIGXFSZ, prev);
    free(big);
    /* and the same array goes through once the limit is gone */
    CHECK(npy_write(path, NPY_FLOAT32, 2, big_shape, NULL, NULL) == -1); /* no data */
    CHECK_CONTAINS(debcm_last_error(), "no data");
    unlink(path);
}

/* ---- 5. paths ---------------------------------------------------------------------------------------------------- */

/* A FIFO or a device where a file should be: refused at once, naming the path. Opening a FIFO for reading used to
 * block until a writer came; alarm() turns a regression into a failure instead of a stuck suite. */
static void test_special_files(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/fifo.npy", tmp_dir);
    if (mkfifo(path, 0644) != 0) {
        printf("mkfifo: %s; FIFO case skipped\n", strerror(errno));
        return;
    }
    alarm(20);
    npy_file f;
    CHECK(npy_open(&f, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), path);
    CHECK_CONTAINS(debcm_last_error(), "not a regular file");
    file_map m;
    CHECK(file_map_open(&m, path, "a .npy file", 1) == -1);
    CHECK_CONTAINS(debcm_last_error(), path);
    npz_archive z;
    CHECK(npz_open(&z, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), "not a regular file, expected a .npz archive");
    CHECK(npy_open(&f, "/dev/null") == -1);
    CHECK_CONTAINS(debcm_last_error(), "/dev/null: not a regular file");
    alarm(0);
    unlink(path);
    printf("FIFO and device: refused at once\n");
}

static void test_long_paths(void)
{
    static char dir[PATH_MAX], path[PATH_MAX * 2];
    char name[201];
    memset(name, 'n', 200);
    name[200] = '\0';
    int depth = 0;
    snprintf(dir, sizeof dir, "%s", tmp_dir);
    while (strlen(dir) + 201 <= 2000) {
        size_t n = strlen(dir);
        snprintf(dir + n, sizeof dir - n, "/%s", name);
        CHECK(mkdir(dir, 0755) == 0);
        depth++;
    }
    /* a round trip under a ~2,000-character directory */
    snprintf(path, sizeof path, "%s/rt.npy", dir);
    float v[6] = {1, 2, 3, 4, 5, 6}, back[6] = {0};
    int64_t shape[2] = {2, 3};
    CHECK_MSG(npy_write(path, NPY_FLOAT32, 2, shape, v, NULL) == 0, "%s", debcm_last_error());
    npy_file f;
    CHECK_MSG(npy_open(&f, path) == 0, "%s", debcm_last_error());
    if (f.data) {
        CHECK(strcmp(f.path, path) == 0);
        CHECK(npy_to_f32(&f, back) == 0 && memcmp(back, v, sizeof v) == 0);
        npy_close(&f);
    }
    CHECK(test_count_temp_files(dir) == 0);
    unlink(path);
    printf("round trip under a %zu-character path\n", strlen(path));

    /* a message that quotes a ~3,000-character path quotes all of it (DEBCM_ERROR_MAX) */
    size_t n = strlen(dir);
    memset(dir + n, 'm', 1000);
    for (size_t k = n; k < n + 1000; k += 200) /* components of 199 bytes: within NAME_MAX */
        dir[k] = '/';
    dir[n + 1000] = '\0';
    CHECK(npy_open(&f, dir) == -1);
    CHECK_CONTAINS(debcm_last_error(), dir);
    CHECK_CONTAINS(debcm_last_error(), "No such file or directory");
    dir[n] = '\0';

    /* over PATH_MAX: "path too long" with the length, from the writer and the readers */
    memset(path, 'p', PATH_MAX + 50);
    memcpy(path, dir, n);
    path[n] = '/';
    path[PATH_MAX + 50] = '\0';
    char want[80];
    snprintf(want, sizeof want, "path too long (%d bytes; at most ", PATH_MAX + 50);
    CHECK(npy_write(path, NPY_FLOAT32, 2, shape, v, NULL) == -1);
    CHECK_CONTAINS(debcm_last_error(), want);
    CHECK(npy_open(&f, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), want);
    npz_archive z;
    CHECK(npz_open(&z, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), want);
    path[PATH_MAX + 10] = '\0'; /* a name longer than an npy_file holds (for buffers: an archive and member) */
    memset(path, 'p', sizeof path - 1);
    path[sizeof path - 1] = '\0';
    uint8_t img[256];
    size_t len = make_npy(img, sizeof img, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", v, 4);
    CHECK(npy_open_buffer(&f, img, len, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), "path too long");
    CHECK(npy_open_buffer(&f, img, len, "short name") == 0);
    npy_close(&f);
    CHECK(test_count_temp_files(dir) == 0);

    for (; depth > 0; depth--) {
        CHECK(rmdir(dir) == 0);
        *strrchr(dir, '/') = '\0';
    }
}

/* ---- 6. the fuzz corpus and former crashes ---------------------------------------------------------------------- */

/* the corpus must be there; the regressions folder only once a crash has been kept */
static void replay_corpus(const char *dir, int required)
{
    int n = test_replay_corpus(dir, LLVMFuzzerTestOneInput);
    CHECK_MSG(n >= 0 || !required, "no corpus at %s", dir);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s tests/data\n", argv[0]);
        return 1;
    }
    data_dir = argv[1];
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_npy.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_fixtures();
    test_fixture_refusals();
    test_headers();
    test_truncation();
    test_half_exhaustive();
    test_transpose();
    test_convert_misc();
    test_writer_roundtrip();
    test_writer_failures();
    test_special_files();
    test_long_paths();
    char corpus[1024];
    snprintf(corpus, sizeof corpus, "%s/../fuzz/corpus/npy", data_dir);
    replay_corpus(corpus, 1);
    snprintf(corpus, sizeof corpus, "%s/../fuzz/regress/npy", data_dir);
    replay_corpus(corpus, 0);
    CHECK(test_count_temp_files(tmp_dir) == 0);
    rmdir(tmp_dir);
    return check_done();
}
