/* engine/error.c — the thread-local error message behind engine/error.h (see there for the convention). */
#include "engine/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char error_message[DEBCM_ERROR_MAX];

int debcm_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return -1;
}

int debcm_error_prefix(const char *fmt, ...)
{
    /* built in place, without stack copies of DEBCM_ERROR_MAX bytes (prefixes are added in OpenMP threads too):
     * the old message moves right by the prefix's length plus ": ", then the prefix goes in front. */
    static _Thread_local char prefix[DEBCM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t plen = n < 0 ? 0 : (size_t)n < sizeof prefix ? (size_t)n : sizeof prefix - 1;
    size_t old = strlen(error_message);
    size_t sep = old ? 2 : 0;
    if (plen + sep >= sizeof error_message) { /* the prefix alone fills the buffer: cut, never overflowed */
        memcpy(error_message, prefix, sizeof error_message - 1);
        error_message[sizeof error_message - 1] = '\0';
        return -1;
    }
    size_t keep = old < sizeof error_message - 1 - plen - sep ? old : sizeof error_message - 1 - plen - sep;
    memmove(error_message + plen + sep, error_message, keep);
    error_message[plen + sep + keep] = '\0';
    memcpy(error_message, prefix, plen);
    if (sep)
        memcpy(error_message + plen, ": ", 2);
    return -1;
}

int debcm_fail_path_too_long(const char *path, size_t max)
{
    size_t n = strlen(path);
    return debcm_fail("%.200s%s: path too long (%zu bytes; at most %zu)", path, n > 200 ? "..." : "", n, max);
}

const char *debcm_last_error(void) { return error_message; }

void debcm_error_clear(void) { error_message[0] = '\0'; }
