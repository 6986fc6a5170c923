/* io/json_file.c — see io/json_file.h: jansson formats, io/atomic_file.c makes the write all-or-nothing. */
#include "io/json_file.h"

#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "io/atomic_file.h"

int json_file_write(const json_t *root, const char *path)
{
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    if (!text)
        return debcm_fail("%s: could not format the JSON", path);
    atomic_file a;
    int rc = -1;
    if (atomic_file_begin(&a, path) == 0) {
        if (atomic_file_write(&a, text, strlen(text)) == 0 && atomic_file_write(&a, "\n", 1) == 0)
            rc = atomic_file_commit(&a);
        else
            atomic_file_abort(&a);
    }
    free(text);
    return rc;
}
