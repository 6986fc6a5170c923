/* engine/error.h — one way to report errors across every layer of debcm.
 *
 * Functions that can fail return 0 on success and -1 on failure, after recording a one-line message with
 * debcm_fail(). The message says what was expected and what was found; callers that know more context (the
 * file, the row, the field) prepend it with debcm_error_prefix() as the error travels up, so that what the
 * user finally sees reads "data_matching/train.npy: row 17, field 'music': expected ... , found ...".
 * The buffer is thread-local, so parallel loaders do not clobber each other's messages. */
#ifndef DEBCM_ERROR_H
#define DEBCM_ERROR_H

#include <stddef.h>

#define DEBCM_ERROR_MAX 8192 /* room for messages that quote two paths of PATH_MAX (4096) bytes */

#if defined(__GNUC__)
#define DEBCM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DEBCM_PRINTF(a, b)
#endif

#ifdef __cplusplus
extern "C" { /* the CUDA backend's .cu files report through these too */
#endif

/* Record a message (printf-style) and return -1, so that `return debcm_fail(...)` reads naturally. */
int debcm_fail(const char *fmt, ...) DEBCM_PRINTF(1, 2);

/* Prepend context to the current message: "<context>: <old message>". Returns -1. */
int debcm_error_prefix(const char *fmt, ...) DEBCM_PRINTF(1, 2);

/* Record "PATH: path too long (N bytes; at most MAX)" (N = strlen(path)) and return -1: the one message for a
 * path that does not fit a buffer, so that a path is refused, never silently shortened. Such a path is thousands
 * of bytes long: its first 200 are quoted, then "..." (as io/dataset.c and apps/cmd_inspect.c do). */
int debcm_fail_path_too_long(const char *path, size_t max);

/* The last recorded message ("" when none). */
const char *debcm_last_error(void);

/* Forget the current message. */
void debcm_error_clear(void);

#ifdef __cplusplus
}
#endif

#endif
