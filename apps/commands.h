/* apps/commands.h — the subcommands of the `debcm` program. Each takes the arguments after its name
 * (argv[0] is the subcommand name, ready for getopt_long) and returns the process exit status:
 * 0 success, 1 failure (a one-line "debcm <cmd>: error: ..." on stderr), 2 bad usage. Every subcommand
 * understands --help, which prints its usage on stdout and returns 0. */
#ifndef DEBCM_APPS_COMMANDS_H
#define DEBCM_APPS_COMMANDS_H

#define DEBCM_EXIT_OK 0
#define DEBCM_EXIT_FAIL 1
#define DEBCM_EXIT_USAGE 2

int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_run(int argc, char **argv);           /* apps/cmd_run.c: run, train-teacher, train-student, evaluate */
int cmd_train_teacher(int argc, char **argv);
int cmd_train_student(int argc, char **argv);
int cmd_evaluate(int argc, char **argv);
int cmd_report(int argc, char **argv);        /* apps/cmd_report.c: the run report of a run directory */
int cmd_recommend(int argc, char **argv);     /* apps/cmd_recommend.c */
int cmd_export(int argc, char **argv);        /* apps/cmd_export.c */

/* Print "debcm <cmd>: error: <debcm_last_error()>" on stderr and return DEBCM_EXIT_FAIL. */
int cmd_report_error(const char *cmd);

/* A usage error: "debcm <cmd>: <message> (see debcm <cmd> --help)" on stderr; returns DEBCM_EXIT_USAGE. */
int cmd_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
