/* io/atomic_file.c — atomic file replacement for every writer of debcm (see io/atomic_file.h), and the registry
 * of temporary files that the SIGINT/SIGTERM/SIGHUP handler removes. The registry is a fixed array of slots, each
 * a path and a state word touched only with atomic operations, so that the handler (which may run in any thread,
 * at any moment) reads either a complete path or none, and threads writing files at once never share a slot. The
 * handler does only async-signal-safe things: unlink, sigaction, raise, pthread_sigmask, _exit. Writes go straight
 * to the file descriptor, no stdio buffer: the writers hand over large blocks (a header, a whole payload), and one
 * layer less is one place less where an error could be lost. */
#include "io/atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/error.h"

/* ---- the registry of open temporary files --------------------------------------------------------------------- */

enum { SLOT_FREE = 0, SLOT_LIVE = 1 };

static char registry_path[ATOMIC_FILE_MAX_OPEN][PATH_MAX];
static int registry_state[ATOMIC_FILE_MAX_OPEN]; /* SLOT_*, accessed with __atomic builtins only */

/* Claim a free slot for tmp: the path is copied while the slot is ours but not yet live, then published. */
static int registry_add(const char *tmp)
{
    for (int i = 0; i < ATOMIC_FILE_MAX_OPEN; i++) {
        int expected = SLOT_FREE;
        /* -1 marks "claimed, being filled": the handler skips it, other threads do not take it */
        if (__atomic_compare_exchange_n(&registry_state[i], &expected, -1, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_RELAXED)) {
            memcpy(registry_path[i], tmp, strlen(tmp) + 1);
            __atomic_store_n(&registry_state[i], SLOT_LIVE, __ATOMIC_RELEASE);
            return i;
        }
    }
    return -1;
}

static void registry_remove(int slot)
{
    if (slot >= 0)
        __atomic_store_n(&registry_state[slot], SLOT_FREE, __ATOMIC_RELEASE);
}

int atomic_file_open_count(void)
{
    int n = 0;
    for (int i = 0; i < ATOMIC_FILE_MAX_OPEN; i++)
        n += __atomic_load_n(&registry_state[i], __ATOMIC_ACQUIRE) == SLOT_LIVE;
    return n;
}

/* ---- signals ------------------------------------------------------------------------------------------------- */

static const int cleanup_signals[] = {SIGINT, SIGTERM, SIGHUP};

/* deferred mode (atomic_file_defer_signals): the first signal is only recorded in pending_signal */
static volatile sig_atomic_t deferring, pending_signal;

static void cleanup_handler(int signo)
{
    if (deferring && !pending_signal) {
        pending_signal = signo;
        return;
    }
    for (int i = 0; i < ATOMIC_FILE_MAX_OPEN; i++)
        if (__atomic_load_n(&registry_state[i], __ATOMIC_ACQUIRE) == SLOT_LIVE)
            (void)unlink(registry_path[i]);
    /* die of the signal itself, so that the parent sees 128+signo: default action, then deliver it. The three
     * signals are blocked while this handler runs (sa_mask), so the raised one stays pending until unblocked. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    (void)sigaction(signo, &dfl, NULL);
    (void)raise(signo);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signo);
    (void)pthread_sigmask(SIG_UNBLOCK, &set, NULL);
    _exit(128 + signo); /* not reached: the default action of these signals is to terminate */
}

void atomic_file_defer_signals(int on)
{
    if (on) {
        deferring = 1;
        return;
    }
    deferring = 0;
    int s = pending_signal;
    if (s) /* recorded and never taken: act on it now, as it would have acted */
        cleanup_handler(s);
}

int atomic_file_signal_pending(void) { return pending_signal; }

int atomic_file_take_signal(void)
{
    int s = pending_signal;
    pending_signal = 0;
    return s;
}

int atomic_file_install_signal_cleanup(void)
{
    static int installed;
    if (__atomic_exchange_n(&installed, 1, __ATOMIC_ACQ_REL))
        return 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = cleanup_handler;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof cleanup_signals[0]; i++)
        sigaddset(&sa.sa_mask, cleanup_signals[i]);
    for (size_t i = 0; i < sizeof cleanup_signals / sizeof cleanup_signals[0]; i++) {
        struct sigaction old;
        if (sigaction(cleanup_signals[i], NULL, &old) != 0)
            return debcm_fail("cannot query the handler of signal %d: %s", cleanup_signals[i], strerror(errno));
        if (!(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN)
            continue; /* nohup and friends: an ignored signal stays ignored */
        if (sigaction(cleanup_signals[i], &sa, NULL) != 0)
            return debcm_fail("cannot install the handler of signal %d: %s", cleanup_signals[i], strerror(errno));
    }
    return 0;
}

/* ---- writing --------------------------------------------------------------------------------------------------- */

/* ".tmp.<pid>" into out (at least 32 bytes); returns its length */
static size_t temp_suffix(char *out, size_t cap)
{
    int n = snprintf(out, cap, ".tmp.%ld", (long)getpid());
    return n > 0 ? (size_t)n : 0;
}

int atomic_file_check_path(const char *path)
{
    char suffix[32];
    size_t n = strlen(path), s = temp_suffix(suffix, sizeof suffix);
    if (n == 0)
        return debcm_fail("cannot write a file with an empty name");
    if (n + s >= PATH_MAX) /* the temporary name must fit, NUL included */
        return debcm_fail_path_too_long(path, (size_t)PATH_MAX - 1 - s);
    return 0;
}

int atomic_file_begin(atomic_file *a, const char *path)
{
    a->fd = -1;
    a->slot = -1;
    a->failed = 1;
    a->path[0] = a->tmp[0] = '\0';
    if (atomic_file_check_path(path))
        return -1;
    char suffix[32];
    size_t n = strlen(path), s = temp_suffix(suffix, sizeof suffix);
    memcpy(a->path, path, n + 1);
    memcpy(a->tmp, path, n);
    memcpy(a->tmp + n, suffix, s + 1);
    /* registered before it exists: a signal between the open and the registration would otherwise leave it.
     * Should the name already exist (O_EXCL fails), a signal right now would remove that file — which can only
     * be a leftover of a dead process that had our pid, garbage by this module's naming. */
    a->slot = registry_add(a->tmp);
    if (a->slot < 0)
        return debcm_fail("%s: more than %d files are being written at once", path, ATOMIC_FILE_MAX_OPEN);
    a->fd = open(a->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (a->fd < 0) {
        int e = errno;
        registry_remove(a->slot);
        a->slot = -1;
        return debcm_fail("%s: cannot create the temporary file %s: %s%s", path, a->tmp, strerror(e),
                          e == EEXIST ? " (left by an earlier run that was killed? remove it)" : "");
    }
    a->failed = 0;
    return 0;
}

void atomic_file_abort(atomic_file *a)
{
    if (a->fd < 0)
        return;
    int e = errno;
    (void)close(a->fd);
    (void)unlink(a->tmp);
    registry_remove(a->slot); /* after the unlink: a signal in between finds nothing to remove, harmlessly */
    a->fd = -1;
    a->slot = -1;
    a->failed = 1;
    errno = e;
}

/* Abort with a message; returns -1. The message is recorded before the abort so that errno is the write's. */
static int fail_and_abort(atomic_file *a, const char *what, int err)
{
    debcm_fail("%s: %s %s: %s", a->path, what, a->tmp, strerror(err ? err : EIO));
    atomic_file_abort(a);
    return -1;
}

static int check_open(atomic_file *a)
{
    if (a->fd >= 0)
        return 0;
    if (a->failed && debcm_last_error()[0])
        return -1; /* the first failure already said what happened */
    return debcm_fail("%s: write to a file that is not open (already committed or aborted)",
                      a->path[0] ? a->path : "atomic_file");
}

int atomic_file_write(atomic_file *a, const void *buf, size_t len)
{
    if (check_open(a))
        return -1;
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        size_t chunk = left < ((size_t)1 << 30) ? left : ((size_t)1 << 30); /* Linux writes at most ~2 GiB */
        ssize_t w = write(a->fd, p, chunk);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = w < 0 ? errno : ENOSPC; /* 0 bytes for a non-empty write: the device is full */
            char what[96];
            snprintf(what, sizeof what, "cannot write %zu bytes (%zu written) to", len, len - left);
            return fail_and_abort(a, what, e);
        }
        p += w;
        left -= (size_t)w;
    }
    return 0;
}

/* make the rename itself durable: fsync the directory; best effort (some file systems refuse it) */
static void sync_directory(const char *path)
{
    char dir[PATH_MAX];
    memcpy(dir, path, strlen(path) + 1); /* fits: checked in atomic_file_begin */
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        memcpy(dir, ".", 2);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        (void)close(dfd);
    }
}

int atomic_file_commit(atomic_file *a)
{
    if (check_open(a))
        return -1;
    if (fsync(a->fd) != 0)
        return fail_and_abort(a, "cannot fsync", errno);
    int fd = a->fd;
    a->fd = -1; /* closed below whatever close() says: POSIX leaves the descriptor unusable after a failure */
    if (close(fd) != 0) {
        int e = errno;
        debcm_fail("%s: cannot close %s: %s", a->path, a->tmp, strerror(e));
        (void)unlink(a->tmp);
        registry_remove(a->slot);
        a->slot = -1;
        a->failed = 1;
        return -1;
    }
    if (rename(a->tmp, a->path) != 0) {
        int e = errno;
        debcm_fail("%s: cannot rename %s to it: %s", a->path, a->tmp, strerror(e));
        (void)unlink(a->tmp);
        registry_remove(a->slot);
        a->slot = -1;
        a->failed = 1;
        return -1;
    }
    registry_remove(a->slot); /* after the rename: a signal in between unlinks a name that is gone, harmlessly */
    a->slot = -1;
    sync_directory(a->path);
    return 0;
}
