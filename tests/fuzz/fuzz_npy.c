/* tests/fuzz/fuzz_npy.c — libFuzzer target for the .npy reader (io/npy.c): header parsing, payload validation and
 * both conversions on whatever opens. Every refusal must come with a message naming the input. The same function
 * replays tests/fuzz/corpus/npy inside tests/test_npy.c, so the seeds and every former crash stay regression
 * tests in the ordinary (gcc) build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/npy.h"

#define FUZZ_NPY_MAX_COUNT ((int64_t)1 << 22) /* convert arrays up to 4M elements (16-32 MB of output) */

/* convert a numeric npy_file both ways; the outputs are only written, so ASan/UBSan do the checking */
static void fuzz_npy_convert(const npy_file *f)
{
    if (f->h.type == NPY_OBJECT || f->h.count > FUZZ_NPY_MAX_COUNT)
        return;
    size_t n = f->h.count ? (size_t)f->h.count : 1;
    float *of = malloc(n * sizeof *of);
    int64_t *oi = malloc(n * sizeof *oi);
    if (of && oi) {
        if (npy_to_f32(f, of) != 0 && !strstr(debcm_last_error(), f->path))
            abort();
        if (npy_to_i64(f, oi) != 0 && !strstr(debcm_last_error(), f->path))
            abort();
        const float *v = npy_f32_view(f);
        if (v && f->h.count && v[f->h.count - 1] != v[f->h.count - 1] && of[0] == 12345.0f)
            abort(); /* never true; reads the view's last element */
    }
    free(of);
    free(oi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    npy_header h;
    if (size > 0 && npy_parse_header(&h, data, size, "fuzz.npy") != 0 && !strstr(debcm_last_error(), "fuzz.npy"))
        abort();
    npy_file f;
    if (npy_open_buffer(&f, data, size, "fuzz.npy") == 0) {
        fuzz_npy_convert(&f);
        npy_close(&f);
    } else if (!strstr(debcm_last_error(), "fuzz.npy")) {
        abort();
    }
    return 0;
}
