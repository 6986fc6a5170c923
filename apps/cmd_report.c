/* apps/cmd_report.c — `debcm report RUNDIR`: write the run report again from the run directory's files
 * (apps/run_report.h): metrics.csv, the plots (when gnuplot is on PATH; otherwise a warning) and report.md. For a
 * run made before the report existed, a run still going (it reads whole lines only), or a report to redraw on a
 * machine that has gnuplot. Exit status 0, 1 (one line naming the file, and the line of metrics.jsonl), 2 usage. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "apps/commands.h"
#include "apps/run_report.h"
#include "engine/error.h"

static void report_usage(FILE *out)
{
    fprintf(out,
            "usage: debcm report RUNDIR\n"
            "\n"
            "Write the report of the run in RUNDIR again from its files (config.json, metrics.jsonl and, after\n"
            "`debcm run`, report.json): RUNDIR/metrics.csv (every metrics.jsonl line as a CSV row),\n"
            "RUNDIR/plots/ (teacher_losses, student_losses, validation; SVG and PNG, drawn by gnuplot when it is\n"
            "on PATH: apt-get install gnuplot-nox) and RUNDIR/report.md.\n"
            "\n"
            "options:\n"
            "  -h, --help   this help\n"
            "\n"
            "Exit status: 0 written (a missing gnuplot is a warning), 1 failure, 2 bad usage.\n");
}

static int report_usage_error(const char *what)
{
    fprintf(stderr, "debcm report: %s (see debcm report --help)\n", what);
    return DEBCM_EXIT_USAGE;
}

int cmd_report(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char msg[256];
    int c;
    optind = 1;
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (c == 'h') {
            report_usage(stdout);
            return DEBCM_EXIT_OK;
        }
        snprintf(msg, sizeof msg, "unknown option '%.100s'", argv[optind - 1]);
        return report_usage_error(msg);
    }
    if (optind >= argc)
        return report_usage_error("missing RUNDIR");
    if (optind + 1 < argc)
        return report_usage_error("give one RUNDIR");
    const char *dir = argv[optind];
    if (!*dir)
        return report_usage_error("RUNDIR is an empty string");
    struct stat st;
    if (stat(dir, &st) != 0) {
        fprintf(stderr, "debcm report: error: %s: expected a run directory: %s\n", dir, strerror(errno));
        return DEBCM_EXIT_FAIL;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "debcm report: error: %s: expected a run directory, found something else\n", dir);
        return DEBCM_EXIT_FAIL;
    }
    char warning[256];
    if (run_report_write(dir, warning, sizeof warning))
        return cmd_report_error("report");
    if (warning[0])
        fprintf(stderr, "debcm report: warning: %s\n", warning);
    const char *sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
    printf("metrics: %s%smetrics.csv\n", dir, sep);
    if (!warning[0])
        printf("plots: %s%splots/\n", dir, sep);
    printf("report: %s%sreport.md\n", dir, sep);
    return DEBCM_EXIT_OK;
}
