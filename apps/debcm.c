/* apps/debcm.c — the `debcm` command: dispatches to the subcommands of apps/commands.h and prints the overall
 * usage. This is the only entry point users touch; everything it runs lives in io/, engine/, models/ and
 * kernels/. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "apps/commands.h"
#include "engine/error.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} debcm_command;

static const debcm_command commands[] = {
    {"inspect", cmd_inspect, "check a dataset in the published DebCM layout and summarise it"},
    {"synth", cmd_synth, "write a synthetic dataset in the published layout"},
    {"run", cmd_run, "train the teacher, then the student, and report the test metrics"},
    {"train-teacher", cmd_train_teacher, "train the teacher only"},
    {"train-student", cmd_train_student, "train the student only, with a saved teacher"},
    {"evaluate", cmd_evaluate, "evaluate a saved teacher or student checkpoint"},
    {"report", cmd_report, "write a run's report again: metrics.csv, plots and report.md"},
    {"recommend", cmd_recommend, "print the top-K musics a checkpoint recommends for a video"},
    {"export", cmd_export, "write the music and video embeddings a checkpoint scores with (.npy)"},
    {"version", cmd_version, "print the version, the build's libraries and the GPUs found"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: debcm <command> [options]   (debcm <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
}

int cmd_report_error(const char *cmd)
{
    fprintf(stderr, "debcm %s: error: %s\n", cmd, debcm_last_error());
    return DEBCM_EXIT_FAIL;
}

int cmd_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "debcm %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see debcm %s --help)\n", cmd);
    return DEBCM_EXIT_USAGE;
}

/* What a command printed must have reached standard output (a full disk, a closed pipe): otherwise the run
 * failed, whatever the command itself thought — but a run stopped by a signal keeps its 128 + signo. */
static int finish_output(const char *cmd, int status)
{
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "debcm %s: error: writing to standard output: %s\n", cmd, strerror(errno));
        return status >= 128 ? status : DEBCM_EXIT_FAIL;
    }
    return status;
}

int main(int argc, char **argv)
{
    /* a closed pipe (`debcm run | head`, or Ctrl-C that also stopped `| tee`) is a failed write, said in one
     * line at the end, not a death by SIGPIPE in the middle of a step whose state a signal asked to save */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        fprintf(stderr, "debcm: missing command (see debcm --help)\n");
        return DEBCM_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return finish_output("help", DEBCM_EXIT_OK);
    }
    if (!strcmp(argv[1], "--version"))
        return finish_output("version", cmd_version(1, argv + 1));
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return finish_output(argv[1], commands[i].run(argc - 1, argv + 1));
    fprintf(stderr, "debcm: unknown command '%s' (see debcm --help)\n", argv[1]);
    return DEBCM_EXIT_USAGE;
}
