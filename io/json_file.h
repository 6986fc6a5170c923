/* io/json_file.h — writing a JSON document (jansson) to a file atomically: formatted with two-space indents and
 * doubles at full precision, written to a temporary file, fsynced and renamed (io/atomic_file.h), so a reader
 * never sees half a report. */
#ifndef DEBCM_JSON_FILE_H
#define DEBCM_JSON_FILE_H

#include <jansson.h>

/* 0, or −1 with a message naming path. root is not consumed. */
int json_file_write(const json_t *root, const char *path);

#endif
