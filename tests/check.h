/* tests/check.h — the minimal test harness of the C tests: CHECK-style assertions that count failures and
 * print where they happened, and a verdict in the exit code (0 pass, 1 fail, 77 skipped — CTest's
 * SKIP_RETURN_CODE, never a pass). Each test program is a main() calling its cases and `return check_done();`. */
#ifndef DEBCM_TESTS_CHECK_H
#define DEBCM_TESTS_CHECK_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CHECK_SKIP_CODE 77

static int check_failures;
static int check_count;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        check_count++;                                                                                       \
        if (!(cond)) {                                                                                       \
            check_failures++;                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                         \
        }                                                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                                 \
    do {                                                                                                     \
        check_count++;                                                                                       \
        if (!(cond)) {                                                                                       \
            check_failures++;                                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                         \
            fprintf(stderr, __VA_ARGS__);                                                                    \
            fputc('\n', stderr);                                                                             \
        }                                                                                                    \
    } while (0)

/* a must hold s as a substring (error messages) */
#define CHECK_CONTAINS(a, s) CHECK_MSG(strstr((a), (s)) != NULL, "\"%s\" does not contain \"%s\"", (a), (s))

#define CHECK_NEAR(a, b, tol)                                                                                \
    CHECK_MSG(fabs((double)(a) - (double)(b)) <= (tol), "%.9g vs %.9g (tol %g)", (double)(a), (double)(b),   \
              (double)(tol))

static inline int check_done(void)
{
    printf("%d checks, %d failed\n", check_count, check_failures);
    return check_failures ? 1 : 0;
}

#endif
