/* tests/dataset_edit.h — writing one file of a dataset again with a defect in it (an eval split with short or
 * duplicated negatives, a float32 array with a NaN or values that do not sum to 1), for the loader's tests
 * (test_dataset.c) and the training commands' (test_resume.c). Written with io/npy.h and io/pickle.h: no NumPy
 * needed. Include after check.h. */
#ifndef DEBCM_TESTS_DATASET_EDIT_H
#define DEBCM_TESTS_DATASET_EDIT_H

#include <stdio.h>

#include "io/dataset.h"
#include "io/npy.h"
#include "io/pickle.h"

/* data_matching/100neg/<split>.npy from e (row short_row, when ≥ 0, with one negative less) */
static inline void write_eval(const char *ugc, const char *split, const eval_split *e, int64_t short_row)
{
    char path[600];
    snprintf(path, sizeof path, "%s/100neg/%s.npy", ugc, split);
    pickle_writer w;
    int64_t shape[2] = {e->n, 3};
    CHECK(pickle_writer_begin(&w, 2, shape) == 0);
    for (int64_t r = 0; r < e->n; r++) {
        pickle_write_np_int64(&w, e->video[r]);
        pickle_write_np_int64(&w, e->positive[r]);
        pickle_write_int64_ndarray(&w, e->negatives + r * e->n_neg, (size_t)(r == short_row ? e->n_neg - 1 : e->n_neg));
    }
    CHECK(pickle_writer_end(&w) == 0);
    CHECK(npy_write_object(path, 2, shape, w.buf, w.len, NULL) == 0);
    pickle_writer_free(&w);
}

/* dir/file as a float32 array */
static inline void write_f32(const char *dir, const char *file, int ndim, const int64_t *shape, const float *data)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    CHECK(npy_write(path, NPY_FLOAT32, ndim, shape, data, NULL) == 0);
}

#endif
