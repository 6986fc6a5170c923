/* tests/npy_write_sample.c — writes, with io/npy.c's npy_write, one .npy per numeric type x byte order x memory
 * order x format version x shape into the directory argv[1], plus object arrays, for tests/npy_numpy_check.py to
 * load with NumPy itself. Element k (C order) of each array has the bits sample_bits(type, k), a formula the Python
 * side repeats. File names: <type>_<le|be>_<c|f>_v<0..3>_<shape tag>.npy (v0 = the writer's automatic choice). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/npy.h"

/* (k+1) * golden-ratio constant, truncated to the element width; exponent-all-ones patterns (NaN/Inf) avoided */
static uint64_t sample_bits(npy_type t, int64_t k)
{
    uint64_t x = (uint64_t)(k + 1) * 0x9E3779B97F4A7C15ull;
    switch (t) {
    case NPY_BOOL: return (uint64_t)(k % 3 == 0);
    case NPY_INT8: case NPY_UINT8: return x >> 56;
    case NPY_INT16: case NPY_UINT16: return x >> 48;
    case NPY_INT32: case NPY_UINT32: return x >> 32;
    case NPY_FLOAT16: x >>= 48; return (x & 0x7c00) == 0x7c00 ? x & ~(uint64_t)0x0400 : x;
    case NPY_FLOAT32: x >>= 32; return (x & 0x7f800000u) == 0x7f800000u ? x & ~(uint64_t)0x00800000u : x;
    case NPY_FLOAT64:
        return (x & 0x7ff0000000000000ull) == 0x7ff0000000000000ull ? x & ~0x0010000000000000ull : x;
    default: return x;
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s OUT_DIR\n", argv[0]);
        return 2;
    }
    static const char *tags[] = {"0d", "1d", "2d", "2d_empty", "2d_row", "2d_tall"};
    static const int ndims[] = {0, 1, 2, 2, 2, 2};
    static const int64_t shapes[][2] = {{0, 0}, {5, 0}, {3, 4}, {0, 3}, {1, 5}, {70, 3}};
    int files = 0;
    char path[2048];
    for (int t = NPY_BOOL; t < NPY_OBJECT; t++)
        for (int be = 0; be < 2; be++)
            for (int fo = 0; fo < 2; fo++)
                for (int v = 0; v <= 3; v++)
                    for (int s = 0; s < 6; s++) {
                        int64_t n = ndims[s] == 0 ? 1 : ndims[s] == 1 ? shapes[s][0] : shapes[s][0] * shapes[s][1];
                        int es = npy_type_size((npy_type)t);
                        uint8_t *data = malloc((size_t)(n ? n : 1) * (size_t)es);
                        if (!data)
                            return 1;
                        for (int64_t k = 0; k < n; k++) {
                            uint64_t x = sample_bits((npy_type)t, k);
                            memcpy(data + k * es, &x, (size_t)es); /* little-endian host: the low bytes */
                        }
                        snprintf(path, sizeof path, "%s/%s_%s_%s_v%d_%s.npy", argv[1], npy_type_name((npy_type)t),
                                 be ? "be" : "le", fo ? "f" : "c", v, tags[s]);
                        npy_write_options o = {v, be, fo};
                        if (npy_write(path, (npy_type)t, ndims[s], shapes[s], data, &o) != 0) {
                            fprintf(stderr, "%s\n", debcm_last_error());
                            free(data);
                            return 1;
                        }
                        free(data);
                        files++;
                    }
    /* object arrays: a protocol-2 pickle of the list [1, 2] behind an object header */
    static const char pickle[] = "\x80\x02]q\x00(K\x01K\x02" "e.";
    for (int v = 0; v <= 3; v++) {
        int64_t shape[2] = {2, 0};
        npy_write_options o = {v, 0, 0};
        snprintf(path, sizeof path, "%s/object_v%d.npy", argv[1], v);
        if (npy_write_object(path, 1, shape, pickle, sizeof pickle - 1, &o) != 0) {
            fprintf(stderr, "%s\n", debcm_last_error());
            return 1;
        }
        files++;
    }
    printf("%d files written to %s\n", files, argv[1]);
    return 0;
}
