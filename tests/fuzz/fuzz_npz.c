/* tests/fuzz/fuzz_npz.c — libFuzzer target for the .npz reader (io/npz.c): the ZIP index (EOCD, ZIP64 records,
 * central directory, local headers), inflating every member under a 16 MB bound, CRC checks, and the .npy reader
 * and conversions on each member that opens. Every refusal must name the input. Replayed over
 * tests/fuzz/corpus/npz by tests/test_npz.c. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/npy.h"
#include "io/npz.h"

#define FUZZ_NPZ_MAX_BYTES ((uint64_t)16 << 20)
#define FUZZ_NPZ_MAX_COUNT ((int64_t)1 << 22)

static void fuzz_npz_convert(const npy_file *f)
{
    if (f->h.type == NPY_OBJECT || f->h.count > FUZZ_NPZ_MAX_COUNT)
        return;
    size_t n = f->h.count ? (size_t)f->h.count : 1;
    float *of = malloc(n * sizeof *of);
    int64_t *oi = malloc(n * sizeof *oi);
    if (of && oi) {
        if (npy_to_f32(f, of) != 0 && !strstr(debcm_last_error(), "fuzz.npz"))
            abort();
        if (npy_to_i64(f, oi) != 0 && !strstr(debcm_last_error(), "fuzz.npz"))
            abort();
    }
    free(of);
    free(oi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npz_archive z;
    if (npz_open_buffer(&z, data, size, "fuzz.npz") != 0) {
        if (!strstr(debcm_last_error(), "fuzz.npz"))
            abort();
        return 0;
    }
    for (int i = 0; i < z.count; i++) {
        npy_file f;
        if (npz_find(&z, z.members[i].name) < 0)
            abort();
        if (npz_read_member(&z, i, &f, FUZZ_NPZ_MAX_BYTES) == 0) {
            fuzz_npz_convert(&f);
            npy_close(&f);
        } else if (!strstr(debcm_last_error(), "fuzz.npz")) {
            abort();
        }
    }
    npz_close(&z);
    return 0;
}
