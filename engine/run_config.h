/* engine/run_config.h — the whole configuration of a training job, as one table of options shared by the command
 * line (apps/cmd_run.c), the run directory's config.json and the resume checkpoint (engine/resume.h).
 *
 * Each option of the table has its command-line name (`--lr-teacher`), its config key (the same with '_':
 * `lr_teacher`), its type (an integer, a number, a choice among names, a flag), its range, the phases it belongs
 * to (a `train-teacher` refuses the student's options), whether `--resume` may change it (only what cannot change
 * the numbers: threads, device, TF32, the checkpoint cadence, the non-finite policy) and its help line. Values
 * given as text (the command line) and as JSON (a config file) pass the same checks and fail with the same words:
 * "--dropout expects a probability in [0, 1), found '1'" and "config.json: key 'dropout': expected a probability
 * in [0, 1), found 1". run_config_to_json writes every key of the command (and the data paths); reading it back
 * gives the same values bit for bit (numbers at 17 significant digits). */
#ifndef DEBCM_RUN_CONFIG_H
#define DEBCM_RUN_CONFIG_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include "models/model.h"

#define RUN_CONFIG_FORMAT "debcm-config-1"

/* which job: its phases are RUN_PHASE_TEACHER | RUN_PHASE_STUDENT for run */
typedef enum { RUN_CMD_RUN = 0, RUN_CMD_TEACHER = 1, RUN_CMD_STUDENT = 2 } run_command;
enum { RUN_PHASE_TEACHER = 1, RUN_PHASE_STUDENT = 2 };

/* the choices' indices */
enum { RUN_DEVICE_CPU = 0, RUN_DEVICE_CUDA = 1 };
enum { RUN_TEACHER_CACHE_ON = 0, RUN_TEACHER_CACHE_OFF = 1 };
enum { RUN_NAN_STOP = 0, RUN_NAN_SKIP_BATCH = 1 };

typedef struct {
    run_command command;
    /* the data (absolute paths once resolved) and, for train-student, the teacher checkpoint; "" when unset */
    char pgc[PATH_MAX], data[PATH_MAX], teacher[PATH_MAX];
    /* integers (and choice indices, and flags 0/1) */
    int64_t teacher_epochs, student_epochs, batch_size, seed, threads, latent, k, checkpoint_every;
    int64_t matching, distill, teacher_cache, device, tf32, nan_policy;
    int64_t log_every, quiet;  /* metrics.jsonl window / progress line every N steps; no progress on stdout */
    /* numbers */
    double lr_teacher, lr_student, weight_decay, dropout, margin, alpha, temperature;
} run_config;

typedef enum { RUN_OPT_INT = 0, RUN_OPT_NUM, RUN_OPT_CHOICE, RUN_OPT_FLAG } run_opt_kind;

typedef struct {
    const char *name;  /* command-line name without "--"; the config key is the same with '-' → '_' */
    const char *arg;   /* the argument in the help ("N", "X"); NULL for a flag */
    run_opt_kind kind;
    int phases;        /* RUN_PHASE_* it belongs to */
    int resumable;     /* may be given again with --resume */
    size_t off, off2;  /* offsetof(run_config, …) of the value (int64_t or double); off2: a second place it
                          sets, or RUN_OPT_NO_OFF (--epochs sets both phases' epochs) */
    int64_t ilo, ihi;  /* RUN_OPT_INT: [ilo, ihi] */
    double lo, hi;     /* RUN_OPT_NUM: lo ≤ v ≤ hi, each end open when lo_open / hi_open */
    int lo_open, hi_open;
    const char *const *choices; /* RUN_OPT_CHOICE: the names, NULL-terminated; the value is the index */
    const char *what;  /* what is expected, when not just "an integer" / "a number" ("a probability") */
    const char *help;
} run_option;
#define RUN_OPT_NO_OFF ((size_t)-1)

/* Every option, NULL-name terminated. */
const run_option *run_options(void);

/* The option of a command-line name ("lr-teacher", no dashes in front), or NULL. */
const run_option *run_option_find(const char *name);

/* The option whose config key is key ("lr_teacher"), or NULL. */
const run_option *run_option_find_key(const char *key);

/* The command's phases (run: both). */
int run_command_phases(run_command c);
const char *run_command_name(run_command c); /* "run", "train-teacher", "train-student" */

/* The published defaults (SPEC §5) and ours for the rest; paths empty. */
void run_config_default(run_config *c, run_command command);

/* Set the option from the command line's text. −1 with "--NAME expects …, found 'TEXT'" on anything out of
 * range or not of its type. */
int run_option_set_text(run_config *c, const run_option *o, const char *text);

/* What the option expects, as messages word it ("an integer in [0, 1000000]", "published, hinge or softmax"). */
const char *run_option_expect(const run_option *o, char *buf, size_t cap);

/* The option's value as text, as the user would write it (for the help's defaults and messages). */
const char *run_option_value_text(const run_config *c, const run_option *o, char *buf, size_t cap);

/* 1 when the two configs give the option the same value. */
int run_option_equal(const run_config *a, const run_config *b, const run_option *o);

/* Read a JSON config (text of len bytes; source names it in messages) into c, which holds the defaults or
 * earlier values: the keys given replace them. Keys: every option's config key that applies to c->command
 * (another phase's key is refused), "epochs" (both phases, applied before the others), "format" (must be
 * RUN_CONFIG_FORMAT), "command" (must name c->command), "pgc", "data", "teacher" (strings or null). Anything
 * else — an unknown key, a value of the wrong type or out of range, text that is not one JSON object — is refused
 * with one line naming the source, the key, what was expected and what was found. */
int run_config_from_json(run_config *c, const char *text, size_t len, const char *source);

/* The config as one JSON object of every key above (NUL-terminated, malloc'd; the caller frees), pretty-printed
 * when indent. NULL with a message when out of memory. */
char *run_config_to_json(const run_config *c, int indent);

/* The model configs of both phases (lr, epochs, batch, variants, …) from c. */
void run_config_models(const run_config *c, model_config *teacher, model_config *student);

#endif
