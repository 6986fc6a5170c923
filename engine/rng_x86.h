/* engine/rng_x86.h — eight Philox-4x32-10 blocks at once with AVX2, for the CPU backend's hottest draw (the
 * dropout masks: 2.6 M per student step at the published sizes). The same numbers as engine/rng.h's rng_philox,
 * bit for bit (tested); AVX2 only when the CPU has it (checked once at run time), so the build stays portable. */
#ifndef DEBCM_RNG_X86_H
#define DEBCM_RNG_X86_H

#include <stdint.h>

/* 1 when rng_philox8 runs on AVX2 (an x86-64 CPU with it and a compiler that builds it), 0 when it falls back
 * to one block at a time. */
int rng_philox8_uses_avx2(void);

/* out[lane][b] = lane `lane` of rng_philox(seed, stream, q0 + b) for b = 0..7, on any CPU. */
void rng_philox8(uint32_t out[4][8], uint64_t seed, uint64_t stream, uint64_t q0);

#endif
