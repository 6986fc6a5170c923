/* tests/fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors reader (io/safetensors.c): header length,
 * JSON, per-tensor validation and the tiling of the data area, then, on whatever opens, every tensor looked up by
 * name, read through both conversions and checked against safetensors_expect. Every refusal must be one line that
 * names the input. The same function replays tests/fuzz/corpus/safetensors inside tests/test_safetensors.c, so the
 * seeds and every former crash stay regression tests in the ordinary (gcc) build. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/safetensors.h"

#define FUZZ_ST_NAME "fuzz.safetensors"

/* a refusal: a message naming the input, on one line */
static void fuzz_st_check_message(void)
{
    const char *m = debcm_last_error();
    if (!strstr(m, FUZZ_ST_NAME) || strchr(m, '\n'))
        abort();
}

static void fuzz_st_tensor(const safetensors_file *f, const safetensors_tensor *t)
{
    if (safetensors_find(f, t->name) != t)
        abort();
    if (!safetensors_expect(f, t->name, t->dtype, t->ndim, t->shape, "the fuzzer"))
        abort();
    int64_t other[SAFETENSORS_MAX_NDIM + 1];
    memcpy(other, t->shape, sizeof t->shape);
    other[t->ndim] = 3; /* one dimension more: must be refused */
    if (safetensors_expect(f, t->name, SAFETENSORS_ANY, t->ndim + 1, other, "the fuzzer"))
        abort();
    fuzz_st_check_message();
    if ((size_t)t->numel * (size_t)safetensors_dtype_size(t->dtype) != t->nbytes)
        abort();
    /* numel is bounded by the input's size: the data area holds nbytes */
    size_t n = t->numel ? (size_t)t->numel : 1;
    float *of = malloc(n * sizeof *of);
    int64_t *oi = malloc(n * sizeof *oi);
    if (of && oi) {
        if (safetensors_to_f32(f, t, of) != 0)
            fuzz_st_check_message();
        if (safetensors_to_i64(f, t, oi) != 0)
            fuzz_st_check_message();
        const float *v = safetensors_f32_view(t);
        if (v && t->numel && v[t->numel - 1] != v[t->numel - 1] && of[0] == 12345.0f)
            abort(); /* never true; reads the view's last element */
    }
    free(of);
    free(oi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    safetensors_file f;
    if (safetensors_open_buffer(&f, data, size, FUZZ_ST_NAME) != 0) {
        fuzz_st_check_message();
        return 0;
    }
    for (size_t i = 0; i < f.count; i++) {
        if (i && strcmp(f.tensors[i - 1].name, f.tensors[i].name) >= 0)
            abort(); /* sorted, unique */
        fuzz_st_tensor(&f, &f.tensors[i]);
    }
    for (size_t i = 0; i < f.metadata_count; i++)
        if (safetensors_metadata(&f, f.metadata[i].key) != f.metadata[i].value ||
            safetensors_expect_metadata(&f, f.metadata[i].key, f.metadata[i].value) != 0)
            abort();
    if (!safetensors_find(&f, "\x01no such tensor"))
        fuzz_st_check_message();
    safetensors_close(&f);
    return 0;
}
