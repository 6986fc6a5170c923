/* io/crc32.c — crc32_update (io/crc32.h): zlib's crc32 over a buffer in pieces of at most 1 GiB. */
#include "io/crc32.h"

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
