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
    char prefix[DEBCM_ERROR_MAX];
    char old[DEBCM_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[2 * DEBCM_ERROR_MAX + 2];
    memcpy(old, error_message, sizeof old);
    if (old[0])
        snprintf(joined, sizeof joined, "%s: %s", prefix, old);
    else
        snprintf(joined, sizeof joined, "%s", prefix);
    /* a message longer than the buffer is cut, never overflowed */
    snprintf(error_message, sizeof error_message, "%.*s", DEBCM_ERROR_MAX - 1, joined);
    return -1;
}

const char *debcm_last_error(void) { return error_message; }

void debcm_error_clear(void) { error_message[0] = '\0'; }
