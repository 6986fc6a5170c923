/* tests/test_pickle_numpy.c — NumPy itself reads what the pickle writer writes. Writes each reference array of
 * pickle_refs.h (DebCM train rows with Python ints and with numpy.int64 ids, 100neg rows with int64 ndarrays, and
 * edge cases) as an .npy with io/pickle_write.c + npy_write_object, then runs tests/pickle_numpy_check.py under the
 * NumPy found at configure time: it np.load(allow_pickle=True)s each file and compares values and element types
 * (numpy.int64 vs int vs float vs str vs list vs ndarray) with the same rows built in Python; with NumPy 1.x it
 * also requires the pickle payload to equal pickle.dumps(rows, protocol=3). Exit 77 (skipped) without a NumPy. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "engine/error.h"
#include "io/npy.h"
#include "io/pickle.h"
#include "pickle_refs.h"

int main(void)
{
    const char *python = DEBCM_NUMPY_PYTHON;
    if (!python[0]) {
        printf("skipped: no Python with NumPy found at configure time\n");
        return CHECK_SKIP_CODE;
    }
    const char *dir = DEBCM_PICKLE_WORK_DIR;
    CHECK_MSG(mkdir(dir, 0777) == 0 || errno == EEXIST, "cannot create %s", dir);
    for (int i = 0; i < PICKLE_REF_COUNT; i++) {
        pickle_writer w;
        int ndim = 0;
        int64_t shape[2] = {0, 0};
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.npy", dir, pickle_ref_names[i]);
        CHECK(pickle_ref_shape(pickle_ref_names[i], &ndim, shape) == 0);
        int rc = pickle_ref_write(pickle_ref_names[i], &w);
        CHECK_MSG(rc == 0, "%s: %s", pickle_ref_names[i], debcm_last_error());
        if (rc == 0)
            CHECK_MSG(npy_write_object(path, ndim, shape, w.buf, w.len, NULL) == 0, "%s", debcm_last_error());
        pickle_writer_free(&w);
    }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        execl(python, python, DEBCM_PICKLE_CHECK_SCRIPT, dir, (char *)NULL);
        perror(python);
        _exit(127);
    }
    int status = 0;
    CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
    CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s %s failed (status %d)", python,
              DEBCM_PICKLE_CHECK_SCRIPT, status);
    return check_done();
}
