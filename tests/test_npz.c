/* tests/test_npz.c — tests of the .npz reader (io/npz.c).
 *
 * 1. Every archive member listed in tests/data/manifest.txt (np.savez, np.savez_compressed, zipfile with
 *    force_zip64, written by gen_npy.py) read and checked value by value. 2. Archives built here by a small ZIP
 *    writer that can produce what NumPy does not: ZIP64 central extras and end records, data descriptors, comments,
 *    and one defect at a time (encryption, other methods, CRC and size lies, overlapping or duplicate members, absurd
 *    counts, a zip bomb), each refused with a message naming the archive. 3. Every truncation of a NumPy archive,
 *    and every single-byte corruption of a small one, handled cleanly. 4. The fuzz corpus replayed. argv[1] is
 *    tests/data. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "engine/error.h"
#include "io/npy.h"
#include "io/npz.h"
#include "npy_manifest.h"

#include "fuzz/fuzz_npz.c" /* LLVMFuzzerTestOneInput, replayed over the corpus below */

static const char *data_dir;

/* ---- a growable byte buffer and a small ZIP writer --------------------------------------------------------------- */

typedef struct {
    uint8_t *p;
    size_t len, cap;
} bytes;

static void put(bytes *b, const void *src, size_t n)
{
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    if (n)
        memcpy(b->p + b->len, src, n);
    b->len += n;
}
static void put16(bytes *b, uint32_t v)
{
    uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    put(b, x, 2);
}
static void put32(bytes *b, uint32_t v)
{
    put16(b, v & 0xffff);
    put16(b, v >> 16);
}
static void put64(bytes *b, uint64_t v)
{
    put32(b, (uint32_t)v);
    put32(b, (uint32_t)(v >> 32));
}

typedef struct {
    const char *name;
    const uint8_t *data;
    size_t len;
    int method;              /* 0 or 8: how the data is really stored */
    int zip64_central;       /* sizes and offset as 0xFFFFFFFF with a ZIP64 extra in the central directory */
    int zip64_local;         /* the local header's ZIP64 extra, as np.savez writes it */
    int descriptor;          /* flag bit 3 with a data descriptor after the data */
    int bad_descriptor;      /* ... whose CRC is wrong */
    uint32_t crc_xor;        /* corrupts the declared CRC in both headers */
    int64_t csize_delta;     /* added to the declared compressed size (both headers) */
    int64_t usize_delta;     /* added to the declared size (both headers) */
    size_t junk_after;       /* bytes written after the data (before any descriptor) */
    uint16_t flags_or;       /* e.g. 1: encrypted */
    int declared_method;     /* -1: the real one */
    int same_local_as;       /* central entry points at member k's local header (-1: its own) */
} zmember;

typedef struct {
    int zip64_eocd;          /* ZIP64 end record and locator, the 32-bit fields saturated */
    const char *comment;
    int64_t count_override;  /* >= 0: the entry count the end record claims */
    int64_t cd_off_delta;    /* added to the central directory offset the end record claims */
} zopts;

static zmember zm(const char *name, const void *data, size_t len, int method)
{
    zmember m;
    memset(&m, 0, sizeof m);
    m.name = name;
    m.data = data;
    m.len = len;
    m.method = method;
    m.declared_method = -1;
    m.same_local_as = -1;
    return m;
}

static uint8_t *deflate_raw(const uint8_t *src, size_t len, size_t *out_len)
{
    z_stream s;
    memset(&s, 0, sizeof s);
    if (deflateInit2(&s, 6, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        abort();
    size_t cap = deflateBound(&s, (uLong)len) + 16;
    uint8_t *out = malloc(cap);
    s.next_in = (Bytef *)(uintptr_t)src;
    s.avail_in = (uInt)len;
    s.next_out = out;
    s.avail_out = (uInt)cap;
    if (deflate(&s, Z_FINISH) != Z_STREAM_END)
        abort();
    *out_len = cap - s.avail_out;
    deflateEnd(&s);
    return out;
}

static bytes zip_build(const zmember *m, int n, const zopts *o)
{
    bytes b = {0};
    uint64_t *offs = calloc((size_t)n + 1, sizeof *offs);
    uint64_t *csz = calloc((size_t)n + 1, sizeof *csz);
    for (int i = 0; i < n; i++) {
        size_t clen = m[i].len;
        uint8_t *comp = NULL;
        if (m[i].method == 8)
            comp = deflate_raw(m[i].data, m[i].len, &clen);
        uint32_t crc = (uint32_t)crc32(0, m[i].data, (uInt)m[i].len) ^ m[i].crc_xor;
        uint64_t dcs = (uint64_t)((int64_t)clen + m[i].csize_delta), dus = (uint64_t)((int64_t)m[i].len + m[i].usize_delta);
        csz[i] = dcs;
        offs[i] = b.len;
        uint16_t flags = (uint16_t)(m[i].flags_or | (m[i].descriptor ? 8 : 0));
        int method = m[i].declared_method >= 0 ? m[i].declared_method : m[i].method;
        put32(&b, 0x04034b50);
        put16(&b, m[i].zip64_local ? 45 : 20);
        put16(&b, flags);
        put16(&b, (uint32_t)method);
        put16(&b, 0);
        put16(&b, 0x21);
        put32(&b, m[i].descriptor ? 0 : crc);
        put32(&b, m[i].descriptor ? 0 : m[i].zip64_local ? 0xFFFFFFFFu : (uint32_t)dcs);
        put32(&b, m[i].descriptor ? 0 : m[i].zip64_local ? 0xFFFFFFFFu : (uint32_t)dus);
        put16(&b, (uint32_t)strlen(m[i].name));
        put16(&b, m[i].zip64_local ? 20 : 0);
        put(&b, m[i].name, strlen(m[i].name));
        if (m[i].zip64_local) {
            put16(&b, 1);
            put16(&b, 16);
            put64(&b, dus);
            put64(&b, dcs);
        }
        put(&b, comp ? comp : m[i].data, clen);
        for (size_t k = 0; k < m[i].junk_after; k++)
            put(&b, "J", 1);
        if (m[i].descriptor) {
            put32(&b, 0x08074b50);
            put32(&b, crc ^ (m[i].bad_descriptor ? 1u : 0u));
            put32(&b, (uint32_t)dcs);
            put32(&b, (uint32_t)dus);
        }
        free(comp);
    }
    uint64_t cd_off = b.len;
    for (int i = 0; i < n; i++) {
        uint32_t crc = (uint32_t)crc32(0, m[i].data, (uInt)m[i].len) ^ m[i].crc_xor;
        uint64_t dus = (uint64_t)((int64_t)m[i].len + m[i].usize_delta);
        uint64_t off = offs[m[i].same_local_as >= 0 ? m[i].same_local_as : i];
        int method = m[i].declared_method >= 0 ? m[i].declared_method : m[i].method;
        int z = m[i].zip64_central;
        put32(&b, 0x02014b50);
        put16(&b, 45);
        put16(&b, z ? 45 : 20);
        put16(&b, (uint32_t)(m[i].flags_or | (m[i].descriptor ? 8 : 0)));
        put16(&b, (uint32_t)method);
        put16(&b, 0);
        put16(&b, 0x21);
        put32(&b, crc);
        put32(&b, z ? 0xFFFFFFFFu : (uint32_t)csz[i]);
        put32(&b, z ? 0xFFFFFFFFu : (uint32_t)dus);
        put16(&b, (uint32_t)strlen(m[i].name));
        put16(&b, z ? 28 : 0);
        put16(&b, 0);
        put16(&b, 0);
        put16(&b, 0);
        put32(&b, 0);
        put32(&b, z ? 0xFFFFFFFFu : (uint32_t)off);
        put(&b, m[i].name, strlen(m[i].name));
        if (z) {
            put16(&b, 1);
            put16(&b, 24);
            put64(&b, dus);
            put64(&b, csz[i]);
            put64(&b, off);
        }
    }
    uint64_t cd_size = b.len - cd_off;
    uint64_t count = o && o->count_override >= 0 ? (uint64_t)o->count_override : (uint64_t)n;
    uint64_t claimed_off = cd_off + (uint64_t)(o ? o->cd_off_delta : 0);
    int z64 = o && o->zip64_eocd;
    if (z64) {
        uint64_t rec = b.len;
        put32(&b, 0x06064b50);
        put64(&b, 44);
        put16(&b, 45);
        put16(&b, 45);
        put32(&b, 0);
        put32(&b, 0);
        put64(&b, count);
        put64(&b, count);
        put64(&b, cd_size);
        put64(&b, claimed_off);
        put32(&b, 0x07064b50);
        put32(&b, 0);
        put64(&b, rec);
        put32(&b, 1);
    }
    const char *comment = o && o->comment ? o->comment : "";
    put32(&b, 0x06054b50);
    put16(&b, 0);
    put16(&b, 0);
    put16(&b, z64 ? 0xFFFF : (uint32_t)count);
    put16(&b, z64 ? 0xFFFF : (uint32_t)count);
    put32(&b, z64 ? 0xFFFFFFFFu : (uint32_t)cd_size);
    put32(&b, z64 ? 0xFFFFFFFFu : (uint32_t)claimed_off);
    put16(&b, (uint32_t)strlen(comment));
    put(&b, comment, strlen(comment));
    free(offs);
    free(csz);
    return b;
}

/* a valid .npy image of float32 values k*0.5 + base, shape (n,) */
static bytes npy_image(int n, float base)
{
    bytes b = {0};
    char dict[128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%d,), }", n);
    size_t pad = 64 - (size_t)(10 + dl + 1) % 64;
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    pre[8] = (uint8_t)((dl + 1 + pad) & 0xff);
    pre[9] = (uint8_t)((dl + 1 + pad) >> 8);
    put(&b, pre, 10);
    put(&b, dict, (size_t)dl);
    for (size_t i = 0; i < pad; i++)
        put(&b, " ", 1);
    put(&b, "\n", 1);
    for (int k = 0; k < n; k++) {
        float v = (float)k * 0.5f + base;
        put(&b, &v, 4);
    }
    return b;
}

/* open the archive and read every member; returns 0 when everything worked, -1 at the first error */
static int read_all(const bytes *zip, const char *name, uint64_t max_bytes, int *members)
{
    npz_archive z;
    debcm_error_clear();
    if (npz_open_buffer(&z, zip->p, zip->len, name) != 0)
        return -1;
    if (members)
        *members = z.count;
    for (int i = 0; i < z.count; i++) {
        npy_file f;
        if (npz_read_member(&z, i, &f, max_bytes) != 0) {
            npz_close(&z);
            return -1;
        }
        float out[256];
        if (f.h.type == NPY_FLOAT32 && f.h.count <= 256)
            npy_to_f32(&f, out);
        npy_close(&f);
    }
    npz_close(&z);
    return 0;
}

static void expect_bad(const bytes *zip, uint64_t max_bytes, const char *needle, const char *what)
{
    int rc = read_all(zip, "built.npz", max_bytes, NULL);
    CHECK_MSG(rc == -1, "%s: accepted", what);
    CHECK_CONTAINS(debcm_last_error(), "built.npz");
    CHECK_CONTAINS(debcm_last_error(), needle);
    if (getenv("DEBCM_TEST_VERBOSE"))
        printf("  refused: %s\n", debcm_last_error());
}

/* ---- 1. NumPy fixtures ----------------------------------------------------------------------------------------- */

static void test_fixtures(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.txt", data_dir);
    manifest m;
    CHECK_MSG(manifest_load(&m, path) == 0, "cannot load %s", path);
    npz_archive z;
    memset(&z, 0, sizeof z);
    char open_name[256] = "";
    int members = 0, archives = 0, listed = 0;
    for (int i = 0; i <= m.count; i++) {
        const manifest_rec *r = i < m.count ? &m.recs[i] : NULL;
        char arch[256] = "", member[256] = "";
        if (r) {
            if (strncmp(r->src, "npz/", 4) != 0)
                continue;
            const char *colon = strchr(r->src, ':');
            if (!colon)
                continue;
            snprintf(arch, sizeof arch, "%.*s", (int)(colon - r->src), r->src);
            snprintf(member, sizeof member, "%s", colon + 1);
        }
        if (strcmp(arch, open_name) != 0) { /* the records of an archive are consecutive */
            if (open_name[0]) {
                CHECK_MSG(z.count == listed, "%s: %d members, manifest lists %d", open_name, z.count, listed);
                npz_close(&z);
            }
            snprintf(open_name, sizeof open_name, "%s", arch);
            listed = 0;
            if (!r)
                break;
            snprintf(path, sizeof path, "%s/%s", data_dir, arch);
            if (npz_open(&z, path) != 0) {
                CHECK_MSG(0, "%s", debcm_last_error());
                open_name[0] = '\0';
                continue;
            }
            archives++;
        }
        if (!r)
            break;
        listed++;
        int idx = npz_find(&z, member);
        CHECK_MSG(idx >= 0, "%s: no member %s", arch, member);
        if (idx < 0)
            continue;
        npy_file f;
        if (npz_read_member(&z, idx, &f, 16 << 20) != 0) {
            CHECK_MSG(0, "%s", debcm_last_error());
            continue;
        }
        CHECK_CONTAINS(f.path, member);
        manifest_check(r, &f);
        npy_close(&f);
        members++;
        /* one byte less than the member's size is over the limit */
        uint64_t us = z.members[idx].uncompressed_size;
        CHECK(npz_read_member(&z, idx, &f, us - 1) == -1);
        CHECK_CONTAINS(debcm_last_error(), "more than the limit");
        CHECK(f.owned == NULL);
    }
    manifest_free(&m);
    CHECK_MSG(archives == 3 && members >= 16, "%d archives, %d members", archives, members);
    printf("fixtures: %d members of %d archives checked\n", members, archives);

    /* the non-.npy member of zip64_forced.npz is skipped; an index out of range is an error */
    snprintf(path, sizeof path, "%s/npz/zip64_forced.npz", data_dir);
    if (npz_open(&z, path) == 0) {
        CHECK(z.count == 2 && npz_find(&z, "readme") < 0 && npz_find(&z, "readme.txt") < 0);
        npy_file f;
        CHECK(npz_read_member(&z, 2, &f, 0) == -1);
        CHECK_CONTAINS(debcm_last_error(), "no member 2");
        CHECK(npz_read_member(&z, -1, &f, 0) == -1);
        npz_close(&z);
        npz_close(&z); /* twice is safe */
    }
    /* file-system errors */
    CHECK(npz_open(&z, "/nonexistent/x.npz") == -1);
    CHECK_CONTAINS(debcm_last_error(), "/nonexistent/x.npz: cannot open: No such file or directory");
    CHECK(npz_open(&z, data_dir) == -1);
    CHECK_CONTAINS(debcm_last_error(), "is a directory, expected a .npz archive");
    char empty[512];
    snprintf(empty, sizeof empty, "%s/test_npz_empty.%ld.npz", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
             (long)getpid());
    FILE *fp = fopen(empty, "wb");
    if (fp) {
        fclose(fp);
        CHECK(npz_open(&z, empty) == -1);
        CHECK_CONTAINS(debcm_last_error(), "empty file (0 bytes), expected a .npz archive");
        unlink(empty);
    }
}

/* ---- 2. built archives ------------------------------------------------------------------------------------------ */

static void test_built(void)
{
    bytes a = npy_image(10, 1.0f), b = npy_image(300, -2.0f);
    zmember m[3];
    bytes zip;
    int count = 0;

    /* good archives: stored + deflated; ZIP64 everywhere; descriptors; a comment */
    for (int variant = 0; variant < 5; variant++) {
        m[0] = zm("a.npy", a.p, a.len, 0);
        m[1] = zm("b.npy", b.p, b.len, 8);
        m[2] = zm("notes.txt", (const uint8_t *)"hello", 5, 0);
        zopts o = {0, NULL, -1, 0};
        if (variant == 1)
            for (int i = 0; i < 3; i++)
                m[i].zip64_central = m[i].zip64_local = 1;
        if (variant == 2)
            o.zip64_eocd = 1;
        if (variant == 3)
            m[0].descriptor = m[1].descriptor = 1;
        if (variant == 4)
            o.comment = "a zip comment, which the EOCD search must step over";
        zip = zip_build(m, 3, &o);
        CHECK_MSG(read_all(&zip, "built.npz", 0, &count) == 0, "variant %d: %s", variant, debcm_last_error());
        CHECK(count == 2);
        npz_archive z;
        if (npz_open_buffer(&z, zip.p, zip.len, "built.npz") == 0) {
            int ib = npz_find(&z, "b");
            npy_file f;
            float out[300];
            CHECK(ib == 1 && npz_read_member(&z, ib, &f, 0) == 0);
            CHECK(f.h.count == 300 && npy_to_f32(&f, out) == 0 && out[299] == 299 * 0.5f - 2.0f);
            CHECK(z.members[ib].method == 8 && z.members[ib].uncompressed_size == b.len);
            npy_close(&f);
            npz_close(&z);
        }
        free(zip.p);
    }

    /* one defect at a time */
    struct {
        const char *what, *needle;
        int field;
        int64_t value;
    } cases[] = {
        {"encrypted", "is encrypted", 1, 1},
        {"bzip2", "unsupported compression method 12", 2, 12},
        {"crc", "CRC-32 mismatch", 3, 0x10},
        {"csize short", "end before the deflate stream does", 4, -5},
        {"csize long", "the deflate stream ends after", 5, 7},
        {"usize small", "inflates to more than the", 6, -3},
        {"usize large", "inflates to 1328 bytes but the central directory says 1338", 6, 10},
        {"bad descriptor", "data descriptor is missing or disagrees", 7, 0},
        {"csize beyond archive", "run past the member data area", 4, 100000},
        {"stored size lie", "is stored but its compressed size", 8, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        m[0] = zm("a.npy", a.p, a.len, 0);
        m[1] = zm("b.npy", b.p, b.len, 8);
        zmember *t = &m[1];
        switch (cases[c].field) {
        case 1: t->flags_or = 1; break;
        case 2: t->declared_method = 12; break;
        case 3: t->crc_xor = (uint32_t)cases[c].value; break;
        case 4: t->csize_delta = cases[c].value; break;
        case 5: t->csize_delta = cases[c].value, t->junk_after = (size_t)cases[c].value; break;
        case 6: t->usize_delta = cases[c].value; break;
        case 7: t->descriptor = t->bad_descriptor = 1; break;
        case 8: m[0].usize_delta = cases[c].value; t = &m[0]; break;
        }
        zip = zip_build(m, 2, NULL);
        expect_bad(&zip, 0, cases[c].needle, cases[c].what);
        free(zip.p);
    }
    /* a flipped byte in a stored member: only the CRC can tell */
    m[0] = zm("a.npy", a.p, a.len, 0);
    zip = zip_build(m, 1, NULL);
    zip.p[30 + 5 + 130] ^= 0x40;
    expect_bad(&zip, 0, "member 'a.npy': CRC-32 mismatch", "flipped stored byte");
    free(zip.p);
    /* a member that is not a valid .npy: the npy error names archive and member */
    m[0] = zm("bad.npy", (const uint8_t *)"not numpy", 9, 8);
    zip = zip_build(m, 1, NULL);
    expect_bad(&zip, 0, "built.npz[bad.npy]: not a .npy file", "bad member");
    free(zip.p);

    /* directory-level defects */
    m[0] = zm("a.npy", a.p, a.len, 0);
    m[1] = zm("b.npy", b.p, b.len, 8);
    zopts o = {0, NULL, 60000, 0};
    zip = zip_build(m, 2, &o);
    expect_bad(&zip, 0, "60000 members cannot fit in a central directory", "absurd count");
    free(zip.p);
    o.zip64_eocd = 1;
    o.count_override = (int64_t)1 << 40;
    zip = zip_build(m, 2, &o);
    expect_bad(&zip, 0, "1099511627776 members cannot fit", "absurd zip64 count");
    free(zip.p);
    o.count_override = 3;
    o.zip64_eocd = 0;
    zip = zip_build(m, 2, &o);
    expect_bad(&zip, 0, "cannot fit", "one more entry");
    free(zip.p);
    o.count_override = 1;
    zip = zip_build(m, 2, &o);
    expect_bad(&zip, 0, "bytes beyond its 1 entries", "one entry fewer");
    free(zip.p);
    zopts off = {0, NULL, -1, 1000000};
    zip = zip_build(m, 2, &off);
    expect_bad(&zip, 0, "runs past its end record", "cd offset beyond");
    free(zip.p);
    off.cd_off_delta = -1;
    zip = zip_build(m, 2, &off);
    expect_bad(&zip, 0, "central directory entry 0: bad signature", "cd offset off by one");
    free(zip.p);
    off.cd_off_delta = 1;
    off.zip64_eocd = 1;
    zip = zip_build(m, 2, &off);
    expect_bad(&zip, 0, "runs past its end record", "zip64 cd offset off by one");
    free(zip.p);
    /* duplicate names, overlapping members, a local header that names another file */
    m[1] = zm("a.npy", b.p, b.len, 8);
    zip = zip_build(m, 2, NULL);
    expect_bad(&zip, 0, "member 'a.npy' appears twice", "duplicate");
    free(zip.p);
    m[1] = zm("a.npy", a.p, a.len, 0);
    m[1].same_local_as = 0;
    zip = zip_build(m, 2, NULL);
    expect_bad(&zip, 0, "two members overlap", "overlap");
    free(zip.p);
    m[1] = zm("b.npy", a.p, a.len, 0);
    m[1].same_local_as = 0;
    zip = zip_build(m, 2, NULL);
    expect_bad(&zip, 0, "local header names it 'a.npy'", "local name");
    free(zip.p);
    /* a name too long for npz_member, and one with a NUL */
    char longname[320];
    memset(longname, 'n', sizeof longname);
    memcpy(longname + 300, ".npy", 5);
    m[0] = zm(longname, a.p, a.len, 0);
    zip = zip_build(m, 1, NULL);
    expect_bad(&zip, 0, "name longer than 255 bytes", "long name");
    free(zip.p);
    m[0] = zm("a\001.npy", a.p, a.len, 0);
    zip = zip_build(m, 1, NULL);
    zip.p[30 + 1] = 0;
    zip.p[zip.len - 22 - (46 + 6) + 46 + 1] = 0;
    expect_bad(&zip, 0, "name contains a NUL byte", "NUL name");
    free(zip.p);
    /* ZIP64 markers without the extra field */
    m[0] = zm("a.npy", a.p, a.len, 0);
    zip = zip_build(m, 1, NULL);
    memset(zip.p + zip.len - 22 - (46 + 5) + 20, 0xff, 4); /* central compressed size */
    expect_bad(&zip, 0, "there is no ZIP64 extra field", "missing zip64 extra");
    free(zip.p);
    /* no end record at all; too short; empty */
    bytes junk = {0};
    for (int i = 0; i < 5000; i++)
        put(&junk, "PK\x05\x06", i % 7 == 0 ? 4 : 1);
    expect_bad(&junk, 0, "no zip End Of Central Directory record", "junk");
    junk.len = 21;
    expect_bad(&junk, 0, "too short for a zip archive", "short");
    junk.len = 0;
    expect_bad(&junk, 0, "too short", "empty");
    free(junk.p);

    /* a zip bomb: 64 MB of zeros deflate to ~64 KB; refused by the limit before any allocation, and refused
     * when its central directory understates the size */
    size_t bomb_len = (size_t)64 << 20;
    uint8_t *zeros = calloc(bomb_len, 1);
    memcpy(zeros, a.p, a.len); /* a header that would otherwise be valid */
    m[0] = zm("bomb.npy", zeros, bomb_len, 8);
    zip = zip_build(m, 1, NULL);
    CHECK(zip.len < bomb_len / 500);
    expect_bad(&zip, (uint64_t)16 << 20, "member 'bomb.npy' would inflate to 67108864 bytes, more than the limit of "
                                         "16777216 bytes", "zip bomb");
    free(zip.p);
    m[0].usize_delta = -(int64_t)(bomb_len - 1000);
    zip = zip_build(m, 1, NULL);
    expect_bad(&zip, (uint64_t)16 << 20, "inflates to more than the 1000 bytes", "lying zip bomb");
    free(zip.p);
    free(zeros);
    free(a.p);
    free(b.p);
}

/* ---- 3. truncation and corruption of NumPy's archives ---------------------------------------------------------- */

static void test_truncation_and_flips(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/npz/savez.npz", data_dir);
    size_t len;
    char *full = test_read_file(path, &len);
    CHECK(full != NULL);
    if (!full)
        return;
    bytes zip = {(uint8_t *)full, len, len};
    CHECK(read_all(&zip, "cut.npz", 0, NULL) == 0);
    int refused = 0;
    for (size_t n = 0; n < len; n++) {
        bytes cut = {(uint8_t *)full, n, n};
        int rc = read_all(&cut, "cut.npz", 0, NULL);
        CHECK_MSG(rc == -1, "truncated at %zu accepted", n);
        CHECK_CONTAINS(debcm_last_error(), "cut.npz");
        refused += rc == -1;
    }
    printf("truncation: %d of %zu prefixes refused\n", refused, len);
    free(full);

    /* every byte of a small archive flipped (two masks): clean errors or a good read, never a crash */
    snprintf(path, sizeof path, "%s/npz/zip64_forced.npz", data_dir);
    full = test_read_file(path, &len);
    CHECK(full != NULL);
    if (!full)
        return;
    int ok = 0, bad = 0, named = 0;
    uint8_t *copy = malloc(len);
    const uint8_t masks[] = {0xff, 0x01, 0x80};
    for (size_t i = 0; i < len; i++)
        for (size_t k = 0; k < sizeof masks; k++) {
            memcpy(copy, full, len);
            copy[i] ^= masks[k];
            bytes z = {copy, len, len};
            if (read_all(&z, "flip.npz", 1 << 20, NULL) == 0) {
                ok++;
            } else {
                bad++;
                named += strstr(debcm_last_error(), "flip.npz") != NULL;
            }
        }
    CHECK(named == bad);
    CHECK(bad > ok);
    printf("byte flips: %d refused, %d still read (timestamps, attributes, ...)\n", bad, ok);
    free(copy);
    free(full);
}

/* ---- 4. the fuzz corpus ----------------------------------------------------------------------------------------- */

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
    test_fixtures();
    test_built();
    test_truncation_and_flips();
    char corpus[1024];
    snprintf(corpus, sizeof corpus, "%s/../fuzz/corpus/npz", data_dir);
    replay_corpus(corpus, 1);
    snprintf(corpus, sizeof corpus, "%s/../fuzz/regress/npz", data_dir);
    replay_corpus(corpus, 0);
    return check_done();
}
