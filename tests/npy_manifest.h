/* tests/npy_manifest.h — reads tests/data/manifest.txt (written by tests/data/gen_npy.py with NumPy) and checks an
 * opened npy_file against one of its records: header fields, and every value through npy_to_f32/npy_to_i64 (or
 * that the conversion is refused, with a message naming the file). Shared by tests/test_npy.c and tests/test_npz.c;
 * include after check.h. */
#ifndef DEBCM_TESTS_NPY_MANIFEST_H
#define DEBCM_TESTS_NPY_MANIFEST_H

#include "test_files.h"
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/npy.h"

typedef struct {
    char src[256];   /* npy/<file> or npz/<archive>:<member> */
    char dtype[16];
    int fortran, big, version, ndim;
    int64_t shape[NPY_MAX_NDIM];
    /* per conversion: 0 fail, 1 ok with values (text tokens), 2 "mod M" */
    int f32_kind, i64_kind;
    int64_t f32_mod, i64_mod;
    char **f32_vals, **i64_vals; /* pointers into the manifest text */
    int64_t nvals_f32, nvals_i64;
} manifest_rec;

typedef struct {
    char *text;
    manifest_rec *recs;
    int count;
} manifest;

/* parse "ok V..." / "fail" / "mod M" starting at tokens[*t] */
static int manifest_expect(char **tok, int ntok, int *t, int *kind, int64_t *mod, char ***vals, int64_t *nvals)
{
    if (*t >= ntok)
        return -1;
    const char *w = tok[(*t)++];
    *vals = NULL;
    *nvals = 0;
    if (strcmp(w, "fail") == 0) {
        *kind = 0;
        return 0;
    }
    if (strcmp(w, "mod") == 0) {
        *kind = 2;
        if (*t >= ntok)
            return -1;
        *mod = strtoll(tok[(*t)++], NULL, 10);
        return 0;
    }
    if (strcmp(w, "ok") != 0)
        return -1;
    *kind = 1;
    *vals = &tok[*t];
    while (*t < ntok && strcmp(tok[*t], "i64") != 0) {
        (*t)++;
        (*nvals)++;
    }
    return 0;
}

/* Parse the manifest; tokens of every line stay in m->text (NUL-separated). Returns 0 or -1. */
static int manifest_load(manifest *m, const char *path)
{
    memset(m, 0, sizeof *m);
    m->text = test_read_file(path, NULL);
    if (!m->text)
        return -1;
    int cap = 0;
    char *save_line = NULL;
    for (char *line = strtok_r(m->text, "\n", &save_line); line; line = strtok_r(NULL, "\n", &save_line)) {
        if (line[0] == '#' || line[0] == '\0')
            continue;
        /* tokenise in place */
        int ntok = 0, tcap = 64;
        char **tok = malloc((size_t)tcap * sizeof *tok);
        char *save_tok = NULL;
        for (char *w = strtok_r(line, " ", &save_tok); w; w = strtok_r(NULL, " ", &save_tok)) {
            if (ntok == tcap) {
                tcap *= 2;
                tok = realloc(tok, (size_t)tcap * sizeof *tok);
            }
            tok[ntok++] = w;
        }
        if (m->count == cap) {
            cap = cap ? 2 * cap : 64;
            m->recs = realloc(m->recs, (size_t)cap * sizeof *m->recs);
        }
        manifest_rec *r = &m->recs[m->count];
        memset(r, 0, sizeof *r);
        int t = 0;
        if (ntok < 6)
            goto bad;
        snprintf(r->src, sizeof r->src, "%s", tok[t++]);
        snprintf(r->dtype, sizeof r->dtype, "%s", tok[t++]);
        r->fortran = atoi(tok[t++]);
        r->big = atoi(tok[t++]);
        r->version = atoi(tok[t++]);
        r->ndim = atoi(tok[t++]);
        if (r->ndim < 0 || r->ndim > NPY_MAX_NDIM || t + r->ndim >= ntok)
            goto bad;
        for (int i = 0; i < r->ndim; i++)
            r->shape[i] = strtoll(tok[t++], NULL, 10);
        if (strcmp(tok[t++], "f32") != 0 ||
            manifest_expect(tok, ntok, &t, &r->f32_kind, &r->f32_mod, &r->f32_vals, &r->nvals_f32))
            goto bad;
        if (t >= ntok || strcmp(tok[t++], "i64") != 0 ||
            manifest_expect(tok, ntok, &t, &r->i64_kind, &r->i64_mod, &r->i64_vals, &r->nvals_i64))
            goto bad;
        /* the value pointers point into tok[], which must live on: keep copies of the pointer arrays */
        if (!r->nvals_f32)
            r->f32_vals = NULL;
        if (!r->nvals_i64)
            r->i64_vals = NULL;
        if (r->nvals_f32) {
            char **v = malloc((size_t)r->nvals_f32 * sizeof *v);
            memcpy(v, r->f32_vals, (size_t)r->nvals_f32 * sizeof *v);
            r->f32_vals = v;
        }
        if (r->nvals_i64) {
            char **v = malloc((size_t)r->nvals_i64 * sizeof *v);
            memcpy(v, r->i64_vals, (size_t)r->nvals_i64 * sizeof *v);
            r->i64_vals = v;
        }
        free(tok);
        m->count++;
        continue;
    bad:
        fprintf(stderr, "manifest %s: malformed line for %s\n", path, ntok ? tok[0] : "?");
        free(tok);
        return -1;
    }
    return 0;
}

static void manifest_free(manifest *m)
{
    for (int i = 0; i < m->count; i++) {
        free(m->recs[i].f32_vals);
        free(m->recs[i].i64_vals);
    }
    free(m->recs);
    free(m->text);
    memset(m, 0, sizeof *m);
}

static int manifest_same_float(float got, float want)
{
    if (want != want)
        return got != got;
    return memcmp(&got, &want, sizeof got) == 0; /* bitwise: -0.0 is not 0.0 */
}

/* Check f (already opened) against r. Returns the number of failed checks. */
static int manifest_check(const manifest_rec *r, const npy_file *f)
{
    int before = check_failures;
    const npy_header *h = &f->h;
    CHECK_MSG(strcmp(npy_type_name(h->type), r->dtype) == 0, "%s: dtype %s, manifest %s", r->src,
              npy_type_name(h->type), r->dtype);
    CHECK_MSG(h->fortran_order == r->fortran, "%s: fortran_order %d", r->src, h->fortran_order);
    CHECK_MSG(h->big_endian == r->big, "%s: big_endian %d", r->src, h->big_endian);
    CHECK_MSG(h->version_major == r->version && h->version_minor == 0, "%s: version %d.%d", r->src,
              h->version_major, h->version_minor);
    CHECK_MSG(h->ndim == r->ndim, "%s: ndim %d, manifest %d", r->src, h->ndim, r->ndim);
    int64_t count = 1;
    for (int i = 0; i < r->ndim && i < h->ndim; i++) {
        CHECK_MSG(h->shape[i] == r->shape[i], "%s: dim %d = %lld, manifest %lld", r->src, i,
                  (long long)h->shape[i], (long long)r->shape[i]);
        count *= r->shape[i];
    }
    CHECK_MSG(h->count == count, "%s: count %lld", r->src, (long long)h->count);
    if (check_failures != before)
        return check_failures - before;
    CHECK(h->data_offset % 64 == 0); /* NumPy aligns the payload */
    if (h->type == NPY_OBJECT) {
        CHECK_MSG(f->data_size > 2 && f->data[0] == 0x80, "%s: object payload should be a pickle", r->src);
    } else {
        CHECK_MSG(f->data_size == (size_t)count * (size_t)h->elem_size, "%s: data_size %zu", r->src, f->data_size);
    }

    float *of = malloc((size_t)(count ? count : 1) * sizeof *of);
    int64_t *oi = malloc((size_t)(count ? count : 1) * sizeof *oi);
    debcm_error_clear();
    int rc = npy_to_f32(f, of);
    if (r->f32_kind == 0) {
        CHECK_MSG(rc == -1, "%s: npy_to_f32 should fail", r->src);
        CHECK_CONTAINS(debcm_last_error(), f->path);
    } else {
        CHECK_MSG(rc == 0, "%s: npy_to_f32: %s", r->src, debcm_last_error());
        if (r->f32_kind == 1)
            CHECK_MSG(r->nvals_f32 == count, "%s: manifest has %lld f32 values", r->src, (long long)r->nvals_f32);
        int bad = 0;
        for (int64_t k = 0; rc == 0 && k < count && bad < 5; k++) {
            float want = r->f32_kind == 2 ? (float)(k % r->f32_mod)
                         : k < r->nvals_f32 ? (float)strtod(r->f32_vals[k], NULL)
                                            : 0.0f;
            if (!manifest_same_float(of[k], want)) {
                bad++;
                CHECK_MSG(0, "%s: f32[%lld] = %.9g, expected %.9g", r->src, (long long)k, of[k], want);
            }
        }
        const float *view = npy_f32_view(f);
        if (view)
            CHECK_MSG(memcmp(view, of, (size_t)count * sizeof *of) == 0, "%s: f32 view differs", r->src);
        else
            CHECK_MSG(h->type != NPY_FLOAT32 || h->big_endian || ((uintptr_t)f->data & 3) ||
                          (h->fortran_order && h->shape[0] > 1 && h->shape[1] > 1),
                      "%s: npy_f32_view should have been available", r->src);
    }
    debcm_error_clear();
    rc = npy_to_i64(f, oi);
    if (r->i64_kind == 0) {
        CHECK_MSG(rc == -1, "%s: npy_to_i64 should fail", r->src);
        CHECK_CONTAINS(debcm_last_error(), f->path);
    } else {
        CHECK_MSG(rc == 0, "%s: npy_to_i64: %s", r->src, debcm_last_error());
        if (r->i64_kind == 1)
            CHECK_MSG(r->nvals_i64 == count, "%s: manifest has %lld i64 values", r->src, (long long)r->nvals_i64);
        int bad = 0;
        for (int64_t k = 0; rc == 0 && k < count && bad < 5; k++) {
            int64_t want = r->i64_kind == 2 ? k % r->i64_mod
                           : k < r->nvals_i64 ? (int64_t)strtoll(r->i64_vals[k], NULL, 10)
                                              : 0;
            if (oi[k] != want) {
                bad++;
                CHECK_MSG(0, "%s: i64[%lld] = %lld, expected %lld", r->src, (long long)k, (long long)oi[k],
                          (long long)want);
            }
        }
    }
    free(of);
    free(oi);
    return check_failures - before;
}

#endif
