/* tests/test_atomic_file.c — the atomic file writer every debcm writer goes through (io/atomic_file.c). Commit:
 * the target appears only at commit, with every byte, replacing a previous file. Abort and every failure (the
 * disk filling up — a file size limit with SIGXFSZ ignored, as in test_npy —, a missing directory, a target that
 * is a directory, a path longer than PATH_MAX, a temporary name that already exists, too many files open at once)
 * leave the previous file intact, no temporary file, an empty registry and a message naming the path. Signals:
 * a child process that dies of SIGINT, SIGTERM or SIGHUP in the middle of a write leaves no temporary file and
 * still dies of that signal; an ignored signal stays ignored. Threads: files written from several threads at
 * once. argv[1] (tests/data) is not used. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine/error.h"
#include "io/atomic_file.h"
#include "test_files.h"

static char tmp_dir[512];

/* ---- helpers -------------------------------------------------------------------------------------------------- */

/* the whole file equals text */
static int file_is(const char *path, const char *text)
{
    size_t len;
    char *buf = test_read_file(path, &len);
    int ok = buf && len == strlen(text) && memcmp(buf, text, len) == 0;
    free(buf);
    return ok;
}

static int put_file(const char *path, const char *text)
{
    atomic_file a;
    if (atomic_file_begin(&a, path) || atomic_file_write(&a, text, strlen(text)))
        return -1;
    return atomic_file_commit(&a);
}

/* ---- commit and abort ------------------------------------------------------------------------------------------ */

static void test_commit_abort(void)
{
    char path[600], tmp[700];
    snprintf(path, sizeof path, "%s/a.txt", tmp_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());

    atomic_file a;
    CHECK(atomic_file_begin(&a, path) == 0);
    CHECK(test_file_exists(tmp) && !test_file_exists(path)); /* the target appears only at commit */
    CHECK(atomic_file_open_count() == 1);
    CHECK(atomic_file_write(&a, "hello ", 6) == 0);
    CHECK(atomic_file_write(&a, "", 0) == 0);
    CHECK(atomic_file_write(&a, "world", 5) == 0);
    CHECK(!test_file_exists(path));
    CHECK(atomic_file_commit(&a) == 0);
    CHECK(file_is(path, "hello world"));
    CHECK(!test_file_exists(tmp) && atomic_file_open_count() == 0);
    /* a second commit, a write after it: refused, the file untouched; abort is a no-op */
    CHECK(atomic_file_commit(&a) == -1);
    CHECK_CONTAINS(debcm_last_error(), "not open");
    CHECK(atomic_file_write(&a, "x", 1) == -1);
    atomic_file_abort(&a);
    CHECK(file_is(path, "hello world"));

    /* commit replaces the previous file */
    CHECK(put_file(path, "second") == 0);
    CHECK(file_is(path, "second"));

    /* abort: the previous file stays, the temporary goes; the message is not touched */
    CHECK(atomic_file_begin(&a, path) == 0);
    CHECK(atomic_file_write(&a, "third, never seen", 17) == 0);
    debcm_fail("the caller's own error");
    atomic_file_abort(&a);
    CHECK_CONTAINS(debcm_last_error(), "the caller's own error");
    atomic_file_abort(&a); /* twice: harmless */
    CHECK(file_is(path, "second"));
    CHECK(!test_file_exists(tmp) && atomic_file_open_count() == 0);

    /* an empty file is a file */
    char empty[600];
    snprintf(empty, sizeof empty, "%s/empty.txt", tmp_dir);
    CHECK(atomic_file_begin(&a, empty) == 0 && atomic_file_commit(&a) == 0);
    CHECK(file_is(empty, ""));
    unlink(empty);

    /* a large write in one call */
    size_t big = (size_t)48 << 20;
    char *buf = malloc(big);
    if (buf) {
        for (size_t i = 0; i < big; i++)
            buf[i] = (char)(i * 2654435761u >> 24);
        char bigp[600];
        snprintf(bigp, sizeof bigp, "%s/big.bin", tmp_dir);
        CHECK(atomic_file_begin(&a, bigp) == 0 && atomic_file_write(&a, buf, big) == 0 && atomic_file_commit(&a) == 0);
        size_t len;
        char *back = test_read_file(bigp, &len);
        CHECK(back && len == big && memcmp(back, buf, big) == 0);
        free(back);
        free(buf);
        unlink(bigp);
    }
    unlink(path);
    printf("commit/abort: ok\n");
}

/* ---- failures ---------------------------------------------------------------------------------------------------- */

static void test_failures(void)
{
    char path[600], tmp[700];
    atomic_file a;
    snprintf(path, sizeof path, "%s/kept.txt", tmp_dir);
    CHECK(put_file(path, "previous") == 0);

    /* the disk fills up: RLIMIT_FSIZE makes write() fail with EFBIG part way (SIGXFSZ ignored, or it kills us) */
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 65536;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    size_t n = 200000;
    char *buf = calloc(n, 1);
    if (buf && setrlimit(RLIMIT_FSIZE, &lim) == 0) {
        CHECK(atomic_file_begin(&a, path) == 0);
        CHECK(atomic_file_write(&a, buf, 1000) == 0);
        CHECK(atomic_file_write(&a, buf, n) == -1);
        CHECK_CONTAINS(debcm_last_error(), path);
        CHECK_CONTAINS(debcm_last_error(), "File too large");
        CHECK_CONTAINS(debcm_last_error(), "64536 written"); /* the partial write is reported, then refused */
        char msg[DEBCM_ERROR_MAX];
        snprintf(msg, sizeof msg, "%s", debcm_last_error());
        CHECK(test_count_temp_files(tmp_dir) == 0 && atomic_file_open_count() == 0); /* gone at once */
        CHECK(atomic_file_write(&a, "x", 1) == -1);
        CHECK(atomic_file_commit(&a) == -1);
        CHECK(strcmp(debcm_last_error(), msg) == 0); /* the first failure is what the caller reports */
        atomic_file_abort(&a);
        CHECK(file_is(path, "previous"));
        setrlimit(RLIMIT_FSIZE, &old);
    } else {
        printf("RLIMIT_FSIZE not settable: disk-full case skipped\n");
    }
    signal(SIGXFSZ, prev);
    free(buf);

    /* a directory that does not exist */
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no_such_dir/x.txt", tmp_dir);
    CHECK(atomic_file_begin(&a, missing) == -1);
    CHECK_CONTAINS(debcm_last_error(), missing);
    CHECK_CONTAINS(debcm_last_error(), "No such file or directory");
    CHECK(atomic_file_open_count() == 0);
    atomic_file_abort(&a); /* harmless after a failed begin */

    /* the target is a directory: the rename fails, the temporary file goes */
    char dir[600];
    snprintf(dir, sizeof dir, "%s/a_dir", tmp_dir);
    CHECK(mkdir(dir, 0755) == 0);
    CHECK(put_file(dir, "data") == -1);
    CHECK_CONTAINS(debcm_last_error(), "cannot rename");
    CHECK_CONTAINS(debcm_last_error(), dir);
    CHECK(test_count_temp_files(tmp_dir) == 0 && atomic_file_open_count() == 0);
    rmdir(dir);

    /* a temporary name that exists already is not someone we overwrite */
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *fp = fopen(tmp, "w");
    if (fp) {
        fputs("not ours", fp);
        fclose(fp);
    }
    CHECK(atomic_file_begin(&a, path) == -1);
    CHECK_CONTAINS(debcm_last_error(), "File exists");
    CHECK(file_is(tmp, "not ours") && file_is(path, "previous"));
    CHECK(atomic_file_open_count() == 0);
    unlink(tmp);

    /* paths: over PATH_MAX, and one that fits but leaves no room for ".tmp.<pid>" */
    size_t len = PATH_MAX + 10;
    char *lp = malloc(len + 1);
    memset(lp, 'x', len);
    lp[0] = '/';
    lp[len] = '\0';
    CHECK(atomic_file_begin(&a, lp) == -1);
    CHECK_CONTAINS(debcm_last_error(), "path too long");
    char want[64];
    snprintf(want, sizeof want, "(%zu bytes; at most", len);
    CHECK_CONTAINS(debcm_last_error(), want);
    lp[PATH_MAX - 3] = '\0'; /* fits PATH_MAX itself, not with the suffix */
    CHECK(atomic_file_check_path(lp) == -1);
    CHECK_CONTAINS(debcm_last_error(), "path too long");
    free(lp);
    CHECK(atomic_file_begin(&a, "") == -1);
    CHECK(atomic_file_open_count() == 0);

    /* the registry is bounded: one file more than it holds is refused, nothing left behind */
    atomic_file many[ATOMIC_FILE_MAX_OPEN + 1];
    int opened = 0;
    for (int i = 0; i < ATOMIC_FILE_MAX_OPEN; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/many_%d", tmp_dir, i);
        opened += atomic_file_begin(&many[i], p) == 0;
    }
    CHECK(opened == ATOMIC_FILE_MAX_OPEN && atomic_file_open_count() == ATOMIC_FILE_MAX_OPEN);
    char p[600];
    snprintf(p, sizeof p, "%s/one_too_many", tmp_dir);
    CHECK(atomic_file_begin(&many[ATOMIC_FILE_MAX_OPEN], p) == -1);
    CHECK_CONTAINS(debcm_last_error(), "at once");
    CHECK(!test_file_exists(p));
    for (int i = 0; i < ATOMIC_FILE_MAX_OPEN; i++)
        atomic_file_abort(&many[i]);
    CHECK(atomic_file_open_count() == 0 && test_count_temp_files(tmp_dir) == 0);

    CHECK(file_is(path, "previous"));
    unlink(path);
    printf("failures: ok\n");
}

/* ---- signals ----------------------------------------------------------------------------------------------------- */

/* In a child: start writing path, then receive sig. Returns the child's wait status. ignore: SIG_IGN first. */
static int child_signalled(const char *path, int sig, int ignore)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        if (ignore)
            signal(sig, SIG_IGN);
        else
            signal(sig, SIG_DFL); /* whatever ctest or the shell left us */
        if (atomic_file_install_signal_cleanup() || atomic_file_install_signal_cleanup())
            _exit(3);
        atomic_file a;
        if (atomic_file_begin(&a, path) || atomic_file_write(&a, "partial", 7))
            _exit(4);
        raise(sig);
        /* only reached when the signal is ignored: the write goes on */
        if (atomic_file_write(&a, " and whole", 10) || atomic_file_commit(&a))
            _exit(5);
        _exit(0);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid)
        return -1;
    return status;
}

static void test_signals(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    char path[600];
    snprintf(path, sizeof path, "%s/signalled.txt", tmp_dir);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        int st = child_signalled(path, sigs[i], 0);
        CHECK_MSG(WIFSIGNALED(st) && WTERMSIG(st) == sigs[i], "signal %d: wait status 0x%x", sigs[i], st);
        CHECK_MSG(test_count_temp_files(tmp_dir) == 0, "signal %d left a temporary file", sigs[i]);
        CHECK(!test_file_exists(path));
    }
    /* an ignored signal (nohup) stays ignored: the write completes */
    int st = child_signalled(path, SIGHUP, 1);
    CHECK_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0, "ignored SIGHUP: wait status 0x%x", st);
    CHECK(file_is(path, "partial and whole"));
    CHECK(test_count_temp_files(tmp_dir) == 0);
    unlink(path);
    printf("signals: ok\n");
}

/* ---- threads ---------------------------------------------------------------------------------------------------- */

enum { THREADS = 8, ROUNDS = 50 };

static void *thread_writer(void *arg)
{
    long t = (long)(intptr_t)arg;
    long bad = 0;
    for (int r = 0; r < ROUNDS; r++) {
        char path[600], text[64];
        snprintf(path, sizeof path, "%s/thread_%ld.txt", tmp_dir, t);
        snprintf(text, sizeof text, "thread %ld round %d", t, r);
        atomic_file a;
        if (atomic_file_begin(&a, path) || atomic_file_write(&a, text, strlen(text))) {
            bad++;
            continue;
        }
        if (r % 3 == 2)
            atomic_file_abort(&a);
        else if (atomic_file_commit(&a))
            bad++;
    }
    return (void *)(intptr_t)bad;
}

static void test_threads(void)
{
    pthread_t th[THREADS];
    int started = 0;
    for (long t = 0; t < THREADS; t++)
        started += pthread_create(&th[t], NULL, thread_writer, (void *)(intptr_t)t) == 0;
    CHECK(started == THREADS);
    long bad = 0;
    for (int t = 0; t < started; t++) {
        void *r;
        pthread_join(th[t], &r);
        bad += (long)(intptr_t)r;
    }
    CHECK_MSG(bad == 0, "%ld writes failed: %s", bad, debcm_last_error());
    CHECK(atomic_file_open_count() == 0 && test_count_temp_files(tmp_dir) == 0);
    for (long t = 0; t < THREADS; t++) {
        char path[600], text[64];
        snprintf(path, sizeof path, "%s/thread_%ld.txt", tmp_dir, t);
        snprintf(text, sizeof text, "thread %ld round %d", t, (ROUNDS - 1) % 3 == 2 ? ROUNDS - 2 : ROUNDS - 1);
        CHECK(file_is(path, text));
        unlink(path);
    }
    printf("threads: %d x %d files\n", THREADS, ROUNDS);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof tmp_dir, "%s/test_atomic_file.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_commit_abort();
    test_failures();
    test_signals();
    test_threads();
    CHECK(test_count_temp_files(tmp_dir) == 0);
    CHECK_MSG(rmdir(tmp_dir) == 0, "%s not empty at the end: %s", tmp_dir, strerror(errno));
    return check_done();
}
