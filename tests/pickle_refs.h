/* tests/pickle_refs.h — the reference rows that io/pickle_write.c writes in the tests, from the same formulas as
 * writer_ref_values() in tests/data/gen_pickle.py: test_pickle compares our stream with NumPy 1.24's
 * (tests/data/pickle/writer_<name>.np1.pkl) byte for byte, and test_pickle_numpy has NumPy load ours and compare
 * the values and element types. Keep the two in step. */
#ifndef DEBCM_TESTS_PICKLE_REFS_H
#define DEBCM_TESTS_PICKLE_REFS_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "io/pickle.h"

static const char *const pickle_ref_names[] = {"train", "train_np64", "neg",       "misc",
                                               "zero_d", "empty",      "one", "late_dtype"};
#define PICKLE_REF_COUNT ((int)(sizeof pickle_ref_names / sizeof pickle_ref_names[0]))

static int pickle_ref_shape(const char *name, int *ndim, int64_t shape[2])
{
    static const struct {
        const char *name;
        int ndim;
        int64_t s0, s1;
    } t[] = {{"train", 2, 201, 5}, {"train_np64", 2, 20, 5}, {"neg", 2, 40, 3}, {"misc", 1, 1001, 0},
             {"zero_d", 0, 0, 0},  {"empty", 2, 0, 5},       {"one", 1, 1, 0},     {"late_dtype", 1, 303, 0}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(t[i].name, name)) {
            *ndim = t[i].ndim;
            shape[0] = t[i].s0;
            shape[1] = t[i].s1;
            return 0;
        }
    return -1;
}

/* Write reference `name` into w (begin ... end). 0 on success. */
static int pickle_ref_write(const char *name, pickle_writer *w)
{
    int ndim;
    int64_t shape[2];
    char s[32];
    double f[1001];
    int64_t v[100];
    int rc = 0;
    if (pickle_ref_shape(name, &ndim, shape) || pickle_writer_begin(w, ndim, shape))
        return -1;
    if (!strcmp(name, "train")) {
        for (int i = 0; i < 201; i++) {
            for (int g = 0; g < 6; g++)
                f[g] = (double)(i * 6 + g + 1) / 1000.0;
            snprintf(s, sizeof s, "[%d]", i % 6);
            rc |= pickle_write_int(w, ((int64_t)i * 70001) % 100003) | pickle_write_int(w, (i * 13) % 300) |
                  pickle_write_str(w, s) | pickle_write_float_list(w, f, 6) | pickle_write_float(w, 1.0 / (i + 2));
        }
    } else if (!strcmp(name, "train_np64")) {
        for (int i = 0; i < 20; i++) {
            for (int g = 0; g < 6; g++)
                f[g] = 0.125 * g;
            snprintf(s, sizeof s, "[%d]", i % 6);
            rc |= pickle_write_np_int64(w, i * 7 + 3) | pickle_write_np_int64(w, (i * 13) % 300) |
                  pickle_write_str(w, s) | pickle_write_float_list(w, f, 6) | pickle_write_float(w, 0.5);
        }
    } else if (!strcmp(name, "neg")) {
        for (int i = 0; i < 40; i++) {
            for (int k = 0; k < 100; k++)
                v[k] = (i * 31 + k * 7) % 300;
            rc |= pickle_write_int(w, i * 11) | pickle_write_int(w, (i * 17) % 300) |
                  pickle_write_int64_ndarray(w, v, 100);
        }
    } else if (!strcmp(name, "misc")) {
        static const int64_t ints[] = {0,          255,         256,       65535,          65536,
                                       -1,         -2147483648LL, 2147483647, 2147483648LL, -2147483649LL,
                                       1LL << 40,  INT64_MIN,   INT64_MAX, 128,            -129,
                                       1LL << 55};
        static const char *const strs[] = {"", "a", "\xc3\xa9", "\xe2\x82\xac", "a", "\xc3\xa9", "", "ab", "[2]"};
        int n = 0;
        for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++, n++)
            rc |= pickle_write_int(w, ints[i]);
        const double floats[] = {INFINITY, -INFINITY, NAN, -0.0, 1e-310};
        for (size_t i = 0; i < sizeof floats / sizeof floats[0]; i++, n++)
            rc |= pickle_write_float(w, floats[i]);
        for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++, n++)
            rc |= pickle_write_str(w, strs[i]);
        for (int k = 0; k < 1001; k++)
            f[k] = k;
        const double one[] = {1.5}, two[] = {1.0, 2.0};
        rc |= pickle_write_float_list(w, f, 0) | pickle_write_float_list(w, one, 1) |
              pickle_write_float_list(w, two, 2) | pickle_write_float_list(w, f, 1001);
        n += 4;
        for (int k = 0; k < 32; k++)
            v[k] = k;
        const int64_t seven = 7;
        rc |= pickle_write_int64_ndarray(w, v, 0) | pickle_write_int64_ndarray(w, &seven, 1) |
              pickle_write_int64_ndarray(w, v, 31);
        for (int k = 0; k < 32; k++)
            v[k] = k - 5;
        rc |= pickle_write_int64_ndarray(w, v, 32);
        n += 4;
        rc |= pickle_write_np_int64(w, -1) | pickle_write_np_int64(w, 1LL << 62) | pickle_write_np_int64(w, 0);
        n += 3;
        for (int k = 0; n < 1001; k++, n++)
            rc |= pickle_write_int(w, k);
    } else if (!strcmp(name, "zero_d")) {
        rc |= pickle_write_float(w, 1.25);
    } else if (!strcmp(name, "empty")) {
        /* no elements */
    } else if (!strcmp(name, "one")) {
        rc |= pickle_write_str(w, "only");
    } else if (!strcmp(name, "late_dtype")) {
        for (int k = 0; k < 300; k++) {
            snprintf(s, sizeof s, "s%d", k);
            rc |= pickle_write_str(w, s);
        }
        const int64_t three[] = {0, 1, 2};
        rc |= pickle_write_np_int64(w, 5) | pickle_write_np_int64(w, 6) | pickle_write_int64_ndarray(w, three, 3);
    } else {
        return -1;
    }
    if (rc)
        return -1;
    return pickle_writer_end(w);
}

#endif
