/* tests/test_cli.h — the harness of the tests that drive the debcm binary (test_train, test_resume, test_run_cli,
 * test_report, test_recommend): the binary and the work directory (main sets them from argv), the files that
 * catch a command's stdout and stderr, running "DEBCM <args>" through the shell (in cli_cwd when set), and the
 * small checks every such test makes: a path under the work directory, whether a file exists, how many lines a
 * message has. */
#ifndef DEBCM_TESTS_TEST_CLI_H
#define DEBCM_TESTS_TEST_CLI_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "engine/error.h"

static const char *debcm, *work;         /* argv[1], argv[2] */
static char out_txt[4096], err_txt[4096]; /* where cli_sh puts a command's stdout and stderr */
static const char *cli_cwd;              /* NULL: cli_sh runs in the test's own directory */

/* "DEBCM <args>" through /bin/sh with stdout and stderr to out_txt / err_txt; the exit status (−1 on a signal) */
static inline int cli_sh(const char *fmt, ...) DEBCM_PRINTF(1, 2);
static inline int cli_sh(const char *fmt, ...)
{
    char args[8192], cmd[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    if (cli_cwd)
        snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s > '%s' 2> '%s'", cli_cwd, debcm, args, out_txt, err_txt);
    else
        snprintf(cmd, sizeof cmd, "'%s' %s > '%s' 2> '%s'", debcm, args, out_txt, err_txt);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* buf (4096 bytes) = WORK/rel */
static inline char *cli_wpath(char *buf, const char *rel)
{
    snprintf(buf, 4096, "%s/%s", work, rel);
    return buf;
}

static inline int cli_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A directory that uid 65534 can reach even when the checkout lies under a private one (mkdtemp's 0700): area
 * (4096 bytes) = a new /tmp/debcm-nobody-XXXXXX (0755) holding a copy of the binary, whose path goes to bin
 * (4096 bytes). The tests that run a command as nobody (permissions count for it, not for root) work there.
 * 0, or −1 (said on stderr). The caller removes area. */
static inline int cli_nobody_area(char *area, char *bin)
{
    char cmd[12288];
    snprintf(area, 4096, "/tmp/debcm-nobody-XXXXXX");
    if (!mkdtemp(area) || chmod(area, 0755) != 0) {
        perror("cli_nobody_area");
        return -1;
    }
    snprintf(bin, 4096, "%s/debcm", area);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s' && chmod 0755 '%s'", debcm, bin, bin);
    if (system(cmd) != 0) {
        fprintf(stderr, "cli_nobody_area: cannot copy %s into %s\n", debcm, area);
        return -1;
    }
    return 0;
}

/* newlines in s (a one-line message has 1) */
static inline int cli_lines(const char *s)
{
    int n = 0;
    for (; s && *s; s++)
        n += *s == '\n';
    return n;
}

#endif
