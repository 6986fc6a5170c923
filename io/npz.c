/* io/npz.c — the .npz (ZIP of .npy members) reader behind io/npz.h, one step above io/npy.c in the data path.
 *
 * The archive is memory-mapped (or borrowed) and indexed once: the End Of Central Directory record is searched in
 * the last 65535+22 bytes, the ZIP64 locator and record are followed when present, and every central directory
 * entry is checked against the archive — its local header (which has its own name and extra lengths), the ZIP64
 * extra field (id 0x0001) that np.savez always writes since it forces zip64, the data range, a data descriptor if
 * one is flagged, encryption, method (stored or deflate only), duplicate names and overlapping members. Reading a
 * member inflates it with zlib (raw deflate) into a buffer bounded by the size the directory declares and by the
 * caller's max_bytes, verifies its CRC-32 and opens it as a .npy that owns the buffer. Members whose names do not
 * end in ".npy" are skipped (not indexed); everything else that is wrong is an error naming the archive. */
#include "io/npz.h"
#include "io/file_map.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "engine/error.h"
#include "io/crc32.h"

#define SIG_LOCAL 0x04034b50u
#define SIG_CENTRAL 0x02014b50u
#define SIG_EOCD 0x06054b50u
#define SIG_Z64_EOCD 0x06064b50u
#define SIG_Z64_LOCATOR 0x07064b50u
#define SIG_DESCRIPTOR 0x08074b50u

#define EOCD_LEN 22
#define CENTRAL_LEN 46
#define LOCAL_LEN 30
#define Z64_LOCATOR_LEN 20
#define Z64_EOCD_LEN 56

static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* the entry's name for messages: printable ASCII, truncated */
static void printable_name(char *out, size_t cap, const uint8_t *name, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++)
        out[n++] = (name[i] >= 0x20 && name[i] < 0x7f) ? (char)name[i] : '?';
    out[n] = '\0';
}

/* Walk the extra fields [x, xend) for the ZIP64 block (0x0001) and take, in the order the spec fixes, the values
 * whose 32-bit fields are saturated: uncompressed size, compressed size, local header offset. want[] says which
 * are needed; vals[] receives them. Returns 0, or -1 with a message. */
static int read_zip64_extra(const uint8_t *x, const uint8_t *xend, const int want[3], uint64_t vals[3],
                            const char *path, const char *mname)
{
    int need = want[0] + want[1] + want[2];
    if (!need)
        return 0;
    while (xend - x >= 4) {
        uint16_t id = rd16(x), sz = rd16(x + 2);
        if (sz > xend - x - 4)
            return debcm_fail("%s: member '%s': extra field 0x%04x of %u bytes runs past the end of its extra data",
                              path, mname, id, sz);
        if (id == 0x0001) {
            const uint8_t *q = x + 4;
            if (sz < 8 * need)
                return debcm_fail("%s: member '%s': ZIP64 extra field holds %u bytes, expected at least %d", path,
                                  mname, sz, 8 * need);
            for (int k = 0; k < 3; k++)
                if (want[k]) {
                    vals[k] = rd64(q);
                    q += 8;
                }
            return 0;
        }
        x += 4 + sz;
    }
    return debcm_fail("%s: member '%s': sizes or offset are 0xFFFFFFFF but there is no ZIP64 extra field", path,
                      mname);
}

typedef struct {
    uint64_t start, end; /* data range */
    int idx;             /* into the members array, or -1 for a skipped entry */
} span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int cmp_name(const void *a, const void *b)
{
    const npz_member *x = *(const npz_member *const *)a, *y = *(const npz_member *const *)b;
    return strcmp(x->name, y->name);
}

/* Check the local header of an entry described by the central directory and find where its data starts. */
static int check_local(const npz_archive *z, uint64_t off, uint64_t data_limit, const uint8_t *cname, uint16_t cnlen,
                       uint16_t cflags, int method, uint32_t crc, uint64_t csize, uint64_t usize, const char *mname,
                       uint64_t *data_start)
{
    const char *path = z->path;
    if (off > data_limit || data_limit - off < LOCAL_LEN)
        return debcm_fail("%s: member '%s': local header offset %llu lies beyond the member data area (%llu bytes)",
                          path, mname, (unsigned long long)off, (unsigned long long)data_limit);
    const uint8_t *l = z->data + off;
    if (rd32(l) != SIG_LOCAL)
        return debcm_fail("%s: member '%s': no local header signature at offset %llu (found 0x%08x)", path, mname,
                          (unsigned long long)off, rd32(l));
    uint16_t lflags = rd16(l + 6), lmethod = rd16(l + 8);
    uint32_t lcrc = rd32(l + 14);
    uint64_t lcsize = rd32(l + 18), lusize = rd32(l + 22);
    uint16_t lnlen = rd16(l + 26), lxlen = rd16(l + 28);
    uint64_t start = off + LOCAL_LEN + lnlen + lxlen;
    if (start > data_limit)
        return debcm_fail("%s: member '%s': local header (name %u bytes, extra %u bytes) runs past the member data "
                          "area", path, mname, lnlen, lxlen);
    if (lnlen != cnlen || memcmp(l + LOCAL_LEN, cname, cnlen) != 0) {
        char lname[64];
        printable_name(lname, sizeof lname, l + LOCAL_LEN, lnlen);
        return debcm_fail("%s: member '%s': local header names it '%s'", path, mname, lname);
    }
    if (lflags & 0x41)
        return debcm_fail("%s: member '%s' is encrypted (local header); encrypted archives are not supported", path,
                          mname);
    if (lmethod != method)
        return debcm_fail("%s: member '%s': local header says method %u, central directory says %d", path, mname,
                          lmethod, method);
    if ((lflags & 0x08) != (cflags & 0x08))
        return debcm_fail("%s: member '%s': local header and central directory disagree on the data descriptor "
                          "flag", path, mname);
    if (csize > data_limit - start)
        return debcm_fail("%s: member '%s': its %llu compressed bytes at offset %llu run past the member data area "
                          "(%llu bytes)", path, mname, (unsigned long long)csize, (unsigned long long)start,
                          (unsigned long long)data_limit);
    if (!(lflags & 0x08)) {
        if (lcsize == 0xFFFFFFFFu || lusize == 0xFFFFFFFFu) {
            /* a local ZIP64 extra carries both sizes, uncompressed first (np.savez: force_zip64) */
            int want[3] = {1, 1, 0};
            uint64_t v[3] = {0, 0, 0};
            const uint8_t *x = l + LOCAL_LEN + lnlen;
            if (read_zip64_extra(x, x + lxlen, want, v, path, mname))
                return -1;
            lusize = v[0];
            lcsize = v[1];
        }
        if (lcrc != crc || lcsize != csize || lusize != usize)
            return debcm_fail("%s: member '%s': local header (crc 0x%08x, %llu -> %llu bytes) disagrees with the "
                              "central directory (crc 0x%08x, %llu -> %llu bytes)", path, mname, lcrc,
                              (unsigned long long)lcsize, (unsigned long long)lusize, crc, (unsigned long long)csize,
                              (unsigned long long)usize);
    } else {
        /* data descriptor after the data: [signature] crc, sizes (4+4 or 8+8 bytes) */
        uint64_t d = start + csize;
        uint64_t left = data_limit - d;
        if (left >= 4 && rd32(z->data + d) == SIG_DESCRIPTOR) {
            d += 4;
            left -= 4;
        }
        const uint8_t *q = z->data + d;
        int ok = 0;
        if (left >= 12 && rd32(q) == crc && rd32(q + 4) == csize && rd32(q + 8) == usize)
            ok = 1;
        if (!ok && left >= 20 && rd32(q) == crc && rd64(q + 4) == csize && rd64(q + 12) == usize)
            ok = 1;
        if (!ok)
            return debcm_fail("%s: member '%s': its data descriptor is missing or disagrees with the central "
                              "directory (crc 0x%08x, %llu -> %llu bytes)", path, mname, crc,
                              (unsigned long long)csize, (unsigned long long)usize);
    }
    *data_start = start;
    return 0;
}

static int index_archive(npz_archive *z)
{
    const uint8_t *b = z->data;
    const size_t len = z->size;
    const char *path = z->path;
    if (len < EOCD_LEN)
        return debcm_fail("%s: %zu bytes, too short for a zip archive (its end record alone is %d bytes)", path, len,
                          EOCD_LEN);

    /* End Of Central Directory: the last record whose comment reaches exactly the end of the file */
    size_t lowest = len - EOCD_LEN > 65535 ? len - EOCD_LEN - 65535 : 0;
    size_t eocd = SIZE_MAX;
    for (size_t pos = len - EOCD_LEN + 1; pos-- > lowest;)
        if (rd32(b + pos) == SIG_EOCD && pos + EOCD_LEN + rd16(b + pos + 20) == len) {
            eocd = pos;
            break;
        }
    if (eocd == SIZE_MAX)
        return debcm_fail("%s: no zip End Of Central Directory record in the last %zu bytes: not a zip archive, or "
                          "truncated", path, len - lowest);
    const uint8_t *e = b + eocd;
    uint64_t disk = rd16(e + 4), cd_disk = rd16(e + 6), n_disk = rd16(e + 8), n_total = rd16(e + 10);
    uint64_t cd_size = rd32(e + 12), cd_off = rd32(e + 16);
    uint64_t cd_limit = eocd; /* the central directory ends before this */

    if (eocd >= Z64_LOCATOR_LEN && rd32(b + eocd - Z64_LOCATOR_LEN) == SIG_Z64_LOCATOR) {
        const uint8_t *loc = b + eocd - Z64_LOCATOR_LEN;
        uint32_t z64_disk = rd32(loc + 4), ndisks = rd32(loc + 16);
        uint64_t z64_off = rd64(loc + 8);
        uint64_t loc_pos = eocd - Z64_LOCATOR_LEN;
        if (z64_disk != 0 || ndisks > 1)
            return debcm_fail("%s: multi-disk zip archives are not supported (ZIP64 locator: disk %u of %u)", path,
                              z64_disk, ndisks);
        if (z64_off > loc_pos || loc_pos - z64_off < Z64_EOCD_LEN)
            return debcm_fail("%s: ZIP64 end record offset %llu does not leave room for it before its locator at "
                              "%llu", path, (unsigned long long)z64_off, (unsigned long long)loc_pos);
        const uint8_t *r = b + z64_off;
        if (rd32(r) != SIG_Z64_EOCD)
            return debcm_fail("%s: no ZIP64 end record signature at offset %llu (found 0x%08x)", path,
                              (unsigned long long)z64_off, rd32(r));
        uint64_t rsize = rd64(r + 4);
        if (rsize < Z64_EOCD_LEN - 12 || rsize > loc_pos - z64_off - 12)
            return debcm_fail("%s: ZIP64 end record claims %llu bytes; expected 44 up to its locator", path,
                              (unsigned long long)rsize);
        disk = rd32(r + 16);
        cd_disk = rd32(r + 20);
        n_disk = rd64(r + 24);
        n_total = rd64(r + 32);
        cd_size = rd64(r + 40);
        cd_off = rd64(r + 48);
        cd_limit = z64_off;
    }
    if (disk != 0 || cd_disk != 0 || n_disk != n_total)
        return debcm_fail("%s: multi-disk zip archives are not supported (disk %llu, directory on disk %llu, %llu "
                          "of %llu entries here)", path, (unsigned long long)disk, (unsigned long long)cd_disk,
                          (unsigned long long)n_disk, (unsigned long long)n_total);
    if (cd_off > cd_limit || cd_size > cd_limit - cd_off)
        return debcm_fail("%s: central directory (%llu bytes at offset %llu) runs past its end record at %llu", path,
                          (unsigned long long)cd_size, (unsigned long long)cd_off, (unsigned long long)cd_limit);
    if (n_total > cd_size / CENTRAL_LEN || n_total > INT_MAX)
        return debcm_fail("%s: %llu members cannot fit in a central directory of %llu bytes (%d bytes each at "
                          "least)", path, (unsigned long long)n_total, (unsigned long long)cd_size, CENTRAL_LEN);

    z->members = calloc(n_total ? (size_t)n_total : 1, sizeof *z->members);
    span *spans = malloc((n_total ? (size_t)n_total : 1) * sizeof *spans);
    if (!z->members || !spans) {
        free(spans);
        return debcm_fail("%s: out of memory indexing %llu members", path, (unsigned long long)n_total);
    }
    int rc = -1;
    uint64_t q = cd_off, cd_end = cd_off + cd_size;
    for (uint64_t i = 0; i < n_total; i++) {
        if (cd_end - q < CENTRAL_LEN) {
            debcm_fail("%s: central directory entry %llu of %llu runs past the directory's end", path,
                       (unsigned long long)i, (unsigned long long)n_total);
            goto done;
        }
        const uint8_t *c = b + q;
        if (rd32(c) != SIG_CENTRAL) {
            debcm_fail("%s: central directory entry %llu: bad signature 0x%08x at offset %llu", path,
                       (unsigned long long)i, rd32(c), (unsigned long long)q);
            goto done;
        }
        uint16_t flags = rd16(c + 8), method = rd16(c + 10);
        uint32_t crc = rd32(c + 16);
        uint64_t csize = rd32(c + 20), usize = rd32(c + 24);
        uint16_t nlen = rd16(c + 28), xlen = rd16(c + 30), clen = rd16(c + 32), dstart = rd16(c + 34);
        uint64_t off = rd32(c + 42);
        uint64_t elen = (uint64_t)CENTRAL_LEN + nlen + xlen + clen;
        if (elen > cd_end - q) {
            debcm_fail("%s: central directory entry %llu (%llu bytes with its name, extra and comment) runs past the "
                       "directory's end", path, (unsigned long long)i, (unsigned long long)elen);
            goto done;
        }
        const uint8_t *name = c + CENTRAL_LEN;
        char mname[80];
        printable_name(mname, sizeof mname, name, nlen);
        if (memchr(name, 0, nlen)) {
            debcm_fail("%s: member '%s': name contains a NUL byte", path, mname);
            goto done;
        }
        if (flags & 0x41) {
            debcm_fail("%s: member '%s' is encrypted; encrypted archives are not supported", path, mname);
            goto done;
        }
        if (method != 0 && method != 8) {
            debcm_fail("%s: member '%s': unsupported compression method %u; expected 0 (stored) or 8 (deflate)",
                       path, mname, method);
            goto done;
        }
        if (dstart != 0 && dstart != 0xFFFF) {
            debcm_fail("%s: member '%s' starts on disk %u; multi-disk archives are not supported", path, mname,
                       dstart);
            goto done;
        }
        int want[3] = {usize == 0xFFFFFFFFu, csize == 0xFFFFFFFFu, off == 0xFFFFFFFFu};
        uint64_t v[3] = {usize, csize, off};
        if (read_zip64_extra(name + nlen, name + nlen + xlen, want, v, path, mname))
            goto done;
        usize = v[0];
        csize = v[1];
        off = v[2];
        if (method == 0 && csize != usize) {
            debcm_fail("%s: member '%s' is stored but its compressed size %llu differs from its size %llu", path,
                       mname, (unsigned long long)csize, (unsigned long long)usize);
            goto done;
        }
        uint64_t start = 0;
        if (check_local(z, off, cd_off, name, nlen, flags, method, crc, csize, usize, mname, &start))
            goto done;
        spans[i].start = off;
        spans[i].end = start + csize;
        spans[i].idx = -1;
        if (nlen >= 4 && memcmp(name + nlen - 4, ".npy", 4) == 0) {
            if (nlen - 4 >= (int)sizeof z->members[0].name) {
                debcm_fail("%s: member '%s...': name longer than %zu bytes", path, mname,
                           sizeof z->members[0].name - 1);
                goto done;
            }
            npz_member *m = &z->members[z->count];
            memcpy(m->name, name, nlen - 4u);
            m->name[nlen - 4] = '\0';
            m->offset = off;
            m->compressed_size = csize;
            m->uncompressed_size = usize;
            m->crc32 = crc;
            m->method = method;
            m->data_offset = start;
            spans[i].idx = z->count++;
        }
        q += elen;
    }
    if (q != cd_end) {
        debcm_fail("%s: central directory holds %llu bytes beyond its %llu entries", path,
                   (unsigned long long)(cd_end - q), (unsigned long long)n_total);
        goto done;
    }
    /* members must not share bytes: overlapping entries are the classic zip bomb, or corruption */
    qsort(spans, (size_t)n_total, sizeof *spans, cmp_span);
    for (uint64_t i = 1; i < n_total; i++)
        if (spans[i].start < spans[i - 1].end) {
            debcm_fail("%s: two members overlap (one at offset %llu, the next at %llu): a zip bomb or a corrupt "
                       "archive", path, (unsigned long long)spans[i - 1].start, (unsigned long long)spans[i].start);
            goto done;
        }
    if (z->count > 1) {
        const npz_member **order = malloc((size_t)z->count * sizeof *order);
        if (!order) {
            debcm_fail("%s: out of memory", path);
            goto done;
        }
        for (int i = 0; i < z->count; i++)
            order[i] = &z->members[i];
        qsort(order, (size_t)z->count, sizeof *order, cmp_name);
        for (int i = 1; i < z->count; i++)
            if (strcmp(order[i]->name, order[i - 1]->name) == 0) {
                debcm_fail("%s: member '%s.npy' appears twice", path, order[i]->name);
                free(order);
                goto done;
            }
        free(order);
    }
    rc = 0;
done:
    free(spans);
    return rc;
}

/* z->path = name, or "path too long" (never a shortened name) */
static int set_path(npz_archive *z, const char *name)
{
    size_t n = strlen(name);
    if (n >= sizeof z->path)
        return debcm_fail_path_too_long(name, sizeof z->path - 1);
    memcpy(z->path, name, n + 1);
    return 0;
}

int npz_open_buffer(npz_archive *z, const void *buf, size_t len, const char *name)
{
    memset(z, 0, sizeof *z);
    if (set_path(z, name ? name : "<buffer>"))
        return -1;
    z->data = buf;
    z->size = len;
    if (index_archive(z)) {
        npz_close(z);
        return -1;
    }
    return 0;
}

int npz_open(npz_archive *z, const char *path)
{
    memset(z, 0, sizeof *z);
    if (set_path(z, path))
        return -1;
    file_map map;
    if (file_map_open(&map, path, "a .npz archive", 0) != 0)
        return -1;
    z->map_base = map.base;
    z->map_len = map.len;
    z->data = map.base;
    z->size = map.len;
    if (index_archive(z)) {
        npz_close(z);
        return -1;
    }
    return 0;
}

void npz_close(npz_archive *z)
{
    if (!z)
        return;
    file_map map = {z->map_base, z->map_len};
    file_map_close(&map);
    free(z->members);
    memset(z, 0, sizeof *z);
}

int npz_find(const npz_archive *z, const char *name)
{
    for (int i = 0; i < z->count; i++)
        if (strcmp(z->members[i].name, name) == 0)
            return i;
    return -1;
}

#define ZCHUNK ((uint64_t)1 << 30) /* zlib counts in uInt: feed it at most 1 GiB at a time */

/* raw deflate of m into out[usize]: exactly usize bytes from exactly csize bytes, or an error */
static int inflate_member(const npz_archive *z, const npz_member *m, uint8_t *out)
{
    z_stream st;
    memset(&st, 0, sizeof st);
    if (inflateInit2(&st, -MAX_WBITS) != Z_OK)
        return debcm_fail("%s: member '%s.npy': cannot initialise zlib", z->path, m->name);
    const uint8_t *in = z->data + m->data_offset;
    uint64_t in_left = m->compressed_size, out_left = m->uncompressed_size;
    uint8_t *outp = out;
    uint8_t scratch;
    int over = 0; /* the output buffer is full and inflate got one scratch byte to show whether more follows */
    int rc = -1;
    for (;;) {
        if (st.avail_in == 0 && in_left > 0) {
            uInt k = (uInt)(in_left < ZCHUNK ? in_left : ZCHUNK);
            st.next_in = (Bytef *)(uintptr_t)in;
            st.avail_in = k;
            in += k;
            in_left -= k;
        }
        if (st.avail_out == 0) {
            if (out_left > 0) {
                uInt k = (uInt)(out_left < ZCHUNK ? out_left : ZCHUNK);
                st.next_out = outp;
                st.avail_out = k;
                outp += k;
                out_left -= k;
            } else {
                st.next_out = &scratch;
                st.avail_out = 1;
                over = 1;
            }
        }
        int zr = inflate(&st, Z_NO_FLUSH);
        if (over && st.avail_out == 0) {
            debcm_fail("%s: member '%s.npy' inflates to more than the %llu bytes the central directory says",
                       z->path, m->name, (unsigned long long)m->uncompressed_size);
            goto done;
        }
        if (zr == Z_STREAM_END)
            break;
        if (zr == Z_OK)
            continue;
        if (zr == Z_BUF_ERROR && st.avail_in == 0 && in_left == 0) {
            debcm_fail("%s: member '%s.npy': its %llu compressed bytes end before the deflate stream does", z->path,
                       m->name, (unsigned long long)m->compressed_size);
            goto done;
        }
        debcm_fail("%s: member '%s.npy': corrupt deflate data (zlib: %s)", z->path, m->name,
                   st.msg ? st.msg : zr == Z_MEM_ERROR ? "out of memory" : "error");
        goto done;
    }
    uint64_t produced = over ? m->uncompressed_size : (uint64_t)(st.next_out - out);
    uint64_t consumed = m->compressed_size - in_left - st.avail_in;
    if (produced != m->uncompressed_size) {
        debcm_fail("%s: member '%s.npy' inflates to %llu bytes but the central directory says %llu", z->path,
                   m->name, (unsigned long long)produced, (unsigned long long)m->uncompressed_size);
        goto done;
    }
    if (consumed != m->compressed_size) {
        debcm_fail("%s: member '%s.npy': the deflate stream ends after %llu of its %llu compressed bytes", z->path,
                   m->name, (unsigned long long)consumed, (unsigned long long)m->compressed_size);
        goto done;
    }
    rc = 0;
done:
    inflateEnd(&st);
    return rc;
}

int npz_read_member(const npz_archive *z, int i, npy_file *out, uint64_t max_bytes)
{
    memset(out, 0, sizeof *out);
    if (i < 0 || i >= z->count)
        return debcm_fail("%s: no member %d (the archive has %d .npy members)", z->path, i, z->count);
    const npz_member *m = &z->members[i];
    if (max_bytes && m->uncompressed_size > max_bytes)
        return debcm_fail("%s: member '%s.npy' would inflate to %llu bytes, more than the limit of %llu bytes",
                          z->path, m->name, (unsigned long long)m->uncompressed_size, (unsigned long long)max_bytes);
    if (m->uncompressed_size >= SIZE_MAX)
        return debcm_fail("%s: member '%s.npy' of %llu bytes does not fit in memory", z->path, m->name,
                          (unsigned long long)m->uncompressed_size);
    size_t usize = (size_t)m->uncompressed_size;
    uint8_t *buf = malloc(usize ? usize : 1);
    if (!buf)
        return debcm_fail("%s: member '%s.npy': cannot allocate %zu bytes", z->path, m->name, usize);
    if (m->method == 0) {
        if (usize)
            memcpy(buf, z->data + m->data_offset, usize);
    } else if (inflate_member(z, m, buf)) {
        free(buf);
        return -1;
    }
    const uint32_t crc = crc32_update(0, buf, usize);
    if (crc != m->crc32) {
        free(buf);
        return debcm_fail("%s: member '%s.npy': CRC-32 mismatch (computed 0x%08x, the archive says 0x%08x)", z->path,
                          m->name, crc, m->crc32);
    }
    /* "ARCHIVE[MEMBER.npy]" always fits an npy_file's name (io/npy.h, NPY_NAME_MAX) */
    _Static_assert(sizeof ((npy_file *)0)->path >= sizeof z->path + sizeof m->name + 6, "NPY_NAME_MAX too small");
    char name[sizeof z->path + sizeof m->name + 8];
    snprintf(name, sizeof name, "%s[%s.npy]", z->path, m->name);
    if (npy_open_buffer(out, buf, usize, name)) {
        free(buf);
        return -1;
    }
    out->owned = buf;
    return 0;
}
