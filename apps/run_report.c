/* apps/run_report.c — the whole run report (apps/run_report.h) in one call, for `debcm report` and for the end of
 * a run: metrics.csv, then the plots, then report.md, which links the plots just drawn. Each part is its own
 * file: run_report_csv.c, run_report_plots.c, run_report_md.c (and run_report_machine.c for report.json's
 * "machine"), over the readers of run_report_files.c. */
#include "apps/run_report.h"

#include "apps/run_report_files.h"

int run_report_write(const char *rundir, char *warning, size_t cap)
{
    if (warning && cap)
        warning[0] = '\0';
    /* report.md reads config.json and report.json: refuse a directory where they are missing or broken before
     * anything is written (metrics.jsonl is read first thing by the CSV writer) */
    json_t *config, *report;
    if (report_load_json(rundir, "config.json", 0, &config))
        return -1;
    json_decref(config);
    if (report_load_json(rundir, "report.json", 1, &report))
        return -1;
    json_decref(report);
    if (run_report_write_csv(rundir) || run_report_plots(rundir, warning, cap) || run_report_markdown(rundir))
        return -1;
    return 0;
}
