/* engine/rng.h — the counter-based random numbers of debcm (Philox-4x32-10, Salmon et al., SC'11).
 *
 * A draw is a pure function of (seed, stream, counter): no hidden state, so the CPU loops and the CUDA kernels
 * that include this header produce the same numbers for the same indices, any thread split gives the same result,
 * and a checkpoint only needs to store the counters. Streams separate independent uses (dropout of one layer,
 * noise of one encoder, the epoch's shuffle, the synthetic data generator's features, ...). */
#ifndef DEBCM_RNG_H
#define DEBCM_RNG_H

#include <math.h>
#include <stdint.h>

#include "engine/hostdev.h"

typedef struct {
    uint32_t v[4];
} rng_u32x4;

DEBCM_HD uint32_t rng_mulhilo(uint32_t a, uint32_t b, uint32_t *hi)
{
    uint64_t p = (uint64_t)a * (uint64_t)b;
    *hi = (uint32_t)(p >> 32);
    return (uint32_t)p;
}

/* Philox-4x32 with 10 rounds over the 128-bit counter (stream, counter) under the 64-bit key seed. */
DEBCM_HD rng_u32x4 rng_philox(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint32_t c0 = (uint32_t)counter, c1 = (uint32_t)(counter >> 32);
    uint32_t c2 = (uint32_t)stream, c3 = (uint32_t)(stream >> 32);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        uint32_t hi0, hi1;
        uint32_t lo0 = rng_mulhilo(0xD2511F53u, c0, &hi0);
        uint32_t lo1 = rng_mulhilo(0xCD9E8D57u, c2, &hi1);
        uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
        c0 = n0; c1 = n1; c2 = n2; c3 = n3;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    rng_u32x4 r;
    r.v[0] = c0; r.v[1] = c1; r.v[2] = c2; r.v[3] = c3;
    return r;
}

/* Uniform float in (0, 1] from 32 bits (never 0, so log() is safe). */
DEBCM_HD float rng_u01(uint32_t x) { return ((float)(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

/* Uniform double in [0, 1) from 64 bits. */
DEBCM_HD double rng_u01_double(uint32_t lo, uint32_t hi)
{
    uint64_t x = ((uint64_t)hi << 32 | lo) >> 11;
    return (double)x * (1.0 / 9007199254740992.0);
}

/* Element i of a stream of uniform floats in (0, 1]: four per Philox call. */
DEBCM_HD float rng_uniform(uint64_t seed, uint64_t stream, uint64_t i)
{
    rng_u32x4 r = rng_philox(seed, stream, i >> 2);
    return rng_u01(r.v[i & 3]);
}

/* The normal of half h (0 or 1) of one Philox block (Box–Muller on lanes 2h and 2h + 1). */
DEBCM_HD float rng_normal_from(rng_u32x4 r, int h)
{
    float u1 = rng_u01(r.v[h * 2]);
    float u2 = rng_u01(r.v[h * 2 + 1]);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530717958647692f * u2);
}

/* Element i of a stream of standard normal floats: half i mod 2 of Philox block i / 2. Loops that fill a range
 * call rng_philox once per block and rng_normal_from twice (the same numbers, half the work). */
DEBCM_HD float rng_normal(uint64_t seed, uint64_t stream, uint64_t i)
{
    return rng_normal_from(rng_philox(seed, stream, i >> 1), (int)(i & 1));
}

#endif
