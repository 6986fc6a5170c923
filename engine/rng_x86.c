/* engine/rng_x86.c — Philox-4x32-10 on eight counters at once with AVX2 (engine/rng_x86.h). Each round needs the
 * full 64-bit products of two 32-bit words: _mm256_mul_epu32 gives them for the even 32-bit lanes, so the odd
 * lanes are shifted down, multiplied, and the low and high halves blended back into place. Compiled with a target
 * attribute, so the rest of the build keeps the baseline instruction set; rng_philox8 asks the CPU once and falls
 * back to one block at a time without AVX2. */
#include "engine/rng_x86.h"

#include "engine/rng.h"

/* one block at a time: the fallback, and what the AVX2 path must equal */
static void philox8_scalar(uint32_t out[4][8], uint64_t seed, uint64_t stream, uint64_t q0)
{
    for (int b = 0; b < 8; b++) {
        rng_u32x4 r = rng_philox(seed, stream, q0 + (uint64_t)b);
        for (int lane = 0; lane < 4; lane++)
            out[lane][b] = r.v[lane];
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

int rng_philox8_uses_avx2(void)
{
    static int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return cached;
}

/* lo/hi 32 bits of the 64-bit products of the eight 32-bit lanes of a with m */
__attribute__((target("avx2"))) static inline void mulhilo8(__m256i a, __m256i m, __m256i *lo, __m256i *hi)
{
    __m256i even = _mm256_mul_epu32(a, m);                        /* lanes 0, 2, 4, 6 as 64-bit products */
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  /* lanes 1, 3, 5, 7 */
    *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

__attribute__((target("avx2"))) static void philox8_avx2(uint32_t out[4][8], uint64_t seed, uint64_t stream,
                                                         uint64_t q0)
{
    uint32_t lo_q[8], hi_q[8];
    for (int b = 0; b < 8; b++) {
        uint64_t q = q0 + (uint64_t)b;
        lo_q[b] = (uint32_t)q;
        hi_q[b] = (uint32_t)(q >> 32);
    }
    __m256i c0 = _mm256_loadu_si256((const __m256i *)lo_q), c1 = _mm256_loadu_si256((const __m256i *)hi_q);
    __m256i c2 = _mm256_set1_epi32((int)(uint32_t)stream), c3 = _mm256_set1_epi32((int)(uint32_t)(stream >> 32));
    const __m256i m0 = _mm256_set1_epi32((int)0xD2511F53u), m1 = _mm256_set1_epi32((int)0xCD9E8D57u);
    uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    for (int round = 0; round < 10; round++) {
        __m256i lo0, hi0, lo1, hi1;
        mulhilo8(c0, m0, &lo0, &hi0);
        mulhilo8(c2, m1, &lo1, &hi1);
        __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
        __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    _mm256_storeu_si256((__m256i *)out[0], c0);
    _mm256_storeu_si256((__m256i *)out[1], c1);
    _mm256_storeu_si256((__m256i *)out[2], c2);
    _mm256_storeu_si256((__m256i *)out[3], c3);
}

void rng_philox8(uint32_t out[4][8], uint64_t seed, uint64_t stream, uint64_t q0)
{
    if (rng_philox8_uses_avx2())
        philox8_avx2(out, seed, stream, q0);
    else
        philox8_scalar(out, seed, stream, q0);
}

#else

int rng_philox8_uses_avx2(void) { return 0; }

void rng_philox8(uint32_t out[4][8], uint64_t seed, uint64_t stream, uint64_t q0)
{
    philox8_scalar(out, seed, stream, q0);
}

#endif
