/* io/crc32.c — crc32_update and crc32_update_parallel (io/crc32.h): zlib's crc32 over a buffer in pieces of at
 * most 1 GiB, or over 16 MiB pieces on every thread, joined with crc32_combine. */
#include "io/crc32.h"

#include <stdlib.h>
#include <zlib.h>

uint32_t crc32_update(uint32_t crc, const void *p, uint64_t n)
{
    const Bytef *b = p;
    uLong c = crc;
    while (n > 0) { /* zlib counts in uInt */
        uInt k = n > (1u << 30) ? (1u << 30) : (uInt)n;
        c = crc32(c, b, k);
        b += k;
        n -= k;
    }
    return (uint32_t)c;
}

uint32_t crc32_update_parallel(uint32_t crc, const void *p, uint64_t n)
{
    const uint64_t piece = (uint64_t)16 << 20;
    const int64_t pieces = (int64_t)((n + piece - 1) / piece);
    if (pieces < 2)
        return crc32_update(crc, p, n);
    uint32_t *part = malloc((size_t)pieces * sizeof *part);
    if (!part)
        return crc32_update(crc, p, n); /* the same number, on one thread */
    const unsigned char *b = p;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < pieces; i++) {
        const uint64_t off = (uint64_t)i * piece, len = n - off < piece ? n - off : piece;
        part[i] = crc32_update(0, b + off, len);
    }
    uLong c = crc;
    for (int64_t i = 0; i < pieces; i++) {
        const uint64_t off = (uint64_t)i * piece, len = n - off < piece ? n - off : piece;
        c = crc32_combine(c, part[i], (z_off_t)len);
    }
    free(part);
    return (uint32_t)c;
}
