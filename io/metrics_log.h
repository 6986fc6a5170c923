/* io/metrics_log.h — an append-only log of JSON lines (RUNDIR/metrics.jsonl): one compact JSON object per line,
 * each line written whole with one write() and made durable (fdatasync) before the call returns, so a kill leaves
 * whole lines only. A resumed run opens the log at the length its checkpoint recorded and cuts what came after
 * (the lines of work it is about to redo), so an interrupted and resumed run leaves the same lines as an
 * uninterrupted one. */
#ifndef DEBCM_METRICS_LOG_H
#define DEBCM_METRICS_LOG_H

#include <jansson.h>
#include <limits.h>
#include <stdint.h>

typedef struct {
    int fd;             /* -1 when closed */
    char path[PATH_MAX];
    int64_t bytes;      /* the log's length: what a checkpoint records */
} metrics_log;

/* keep < 0: a new log (created, or emptied). keep ≥ 0: an existing log cut to its first keep bytes (created
 * empty when missing with keep 0). −1 with a message naming the path; a log shorter than keep is refused too
 * ("… shorter than the checkpoint records"). */
int metrics_log_open(metrics_log *m, const char *path, int64_t keep);

/* Append obj as one line. 0, or −1 with a message naming the path (a full disk included); a failed append is
 * cut off again, so the log keeps whole lines. */
int metrics_log_append(metrics_log *m, const json_t *obj);

void metrics_log_close(metrics_log *m);

#endif
