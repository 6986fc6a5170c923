/* io/atomic_file.h — the one way debcm replaces a file on disk: every writer (.npy/.npz payloads, gen_stats.json,
 * later checkpoints) goes through it, so that a reader never sees a half-written file and a failed or interrupted
 * write leaves neither a stray temporary file nor a damaged previous version. atomic_file_begin creates
 * PATH.tmp.<pid> next to the target (O_EXCL: never someone else's file); atomic_file_write checks every write (a
 * full disk is an error naming the path); atomic_file_commit makes the bytes durable (fsync), renames the
 * temporary file over PATH and fsyncs the directory; atomic_file_abort closes and removes the temporary file. On
 * any failure the temporary file is removed and whatever was at PATH before is untouched. The temporary files
 * open at any moment are kept in a small registry, and atomic_file_install_signal_cleanup() makes SIGINT, SIGTERM
 * and SIGHUP remove them before the process dies of the signal (status 128+signo, as without the handler). */
#ifndef DEBCM_ATOMIC_FILE_H
#define DEBCM_ATOMIC_FILE_H

#include <limits.h>
#include <stddef.h>

/* Temporary files that may be open at once, over all threads (a writer beyond this is refused). */
#define ATOMIC_FILE_MAX_OPEN 16

typedef struct {
    char path[PATH_MAX]; /* the target */
    char tmp[PATH_MAX];  /* path.tmp.<pid> */
    int fd;              /* -1 once committed or aborted */
    int slot;            /* index in the registry, or -1 */
    int failed;          /* a write or the commit failed: the file is gone and the message set */
} atomic_file;

/* Create path.tmp.<pid> (mode 0666 less the umask) and register it for the signal cleanup. Returns -1 with a
 * message naming path: the path (with its suffix) longer than PATH_MAX allows, the directory missing or not
 * writable, the temporary file already existing, or the registry full. Nothing is left behind on failure. */
int atomic_file_begin(atomic_file *a, const char *path);

/* Append len bytes (any size: partial writes and EINTR are retried). On failure (ENOSPC, EFBIG, EIO, ...) the
 * file is aborted — the temporary file removed — and -1 returned with a message naming the path; a later write
 * or commit then fails too, and atomic_file_abort is a no-op. */
int atomic_file_write(atomic_file *a, const void *buf, size_t len);

/* fsync, close, rename over the target, fsync the directory (best effort: some file systems refuse it). On
 * failure the temporary file is removed and -1 returned with a message naming the path; the previous file at
 * the target stays as it was. */
int atomic_file_commit(atomic_file *a);

/* Close and remove the temporary file; a no-op on a file already committed or aborted. Never changes the
 * current error message (it runs on failure paths, after the message that matters). */
void atomic_file_abort(atomic_file *a);

/* Fail with "PATH: path too long (N bytes; at most M)" unless path, plus the temporary suffix, fits: for callers
 * that want to refuse a target before spending time computing its contents. */
int atomic_file_check_path(const char *path);

/* Install handlers for SIGINT, SIGTERM and SIGHUP that unlink every registered temporary file and then die of
 * the same signal with its default action (so the exit status is still 128+signo). A signal that is ignored
 * when this is called (nohup) stays ignored. Idempotent. Returns -1 with a message if sigaction fails. */
int atomic_file_install_signal_cleanup(void);

/* Deferred mode, for work that must finish a step and save its state before it stops (the trainer): while on,
 * the first SIGINT, SIGTERM or SIGHUP is only recorded (atomic_file_signal_pending tells which; the caller
 * saves and exits with 128+signo); a second one removes the temporary files and dies as above (a user who
 * presses Ctrl-C twice is not kept waiting). Turning it off with a signal recorded and not taken delivers it. */
void atomic_file_defer_signals(int on);
int atomic_file_signal_pending(void); /* the recorded signal, or 0 */
int atomic_file_take_signal(void);    /* the recorded signal (then forgotten), or 0 */

/* How many temporary files are registered now (for tests). */
int atomic_file_open_count(void);

#endif
