/* engine/run_config.c — the option table of a training job and its two spellings, command-line text and JSON
 * (see run_config.h). The table is the single place where an option's type, range, phases and help live: the
 * command-line parser, the config reader and writer, the help and the --resume rules all walk it. The JSON
 * writer is hand-rolled (one flat object) so that numbers come out in their shortest form that reads back to the
 * same double ("0.05", not "0.050000000000000003"); paths that are not UTF-8 are written as {"hex": "…"}. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/run_config.h"
#include "io/safetensors.h"

#define OFF(f) offsetof(run_config, f)
#define NO RUN_OPT_NO_OFF
#define T RUN_PHASE_TEACHER
#define S RUN_PHASE_STUDENT
#define TS (RUN_PHASE_TEACHER | RUN_PHASE_STUDENT)

static const char *const matching_names[] = {"published", "hinge", "softmax", NULL};
static const char *const distill_names[] = {"published", "kl", NULL};
static const char *const device_names[] = {"cpu", "cuda", NULL};
static const char *const on_off[] = {"on", "off", NULL};
static const char *const nan_names[] = {"stop", "skip-batch", NULL};

#define INT_OPT(n, a, ph, res, f, f2, lo, hi, what, help) {n, a, RUN_OPT_INT, ph, res, OFF(f), f2, lo, hi, 0, 0, 0, 0, NULL, what, help}
#define NUM_OPT(n, ph, f, lo, lo_open, hi, hi_open, what, help) {n, "X", RUN_OPT_NUM, ph, 0, OFF(f), NO, 0, 0, lo, hi, lo_open, hi_open, NULL, what, help}
#define CHOICE_OPT(n, a, ph, res, f, names, help) {n, a, RUN_OPT_CHOICE, ph, res, OFF(f), NO, 0, 0, 0, 0, 0, 0, names, NULL, help}

static const run_option option_table[] = {
    {"epochs", "N", RUN_OPT_INT, TS, 0, OFF(teacher_epochs), OFF(student_epochs), 0, 1000000, 0, 0, 0, 0, NULL, NULL,
     "epochs of the phase(s) (50); 0 keeps the initial model (a baseline)"},
    INT_OPT("teacher-epochs", "N", T, 0, teacher_epochs, NO, 0, 1000000, NULL, "epochs of the teacher phase"),
    INT_OPT("student-epochs", "N", S, 0, student_epochs, NO, 0, 1000000, NULL, "epochs of the student phase"),
    INT_OPT("batch-size", "N", TS, 0, batch_size, NO, 2, 1 << 20, NULL, "rows per batch, at least 2 (1024)"),
    INT_OPT("seed", "N", TS, 0, seed, NO, 0, INT64_MAX, "a non-negative integer",
            "seed of initialisation, shuffles, dropout and noise (1)"),
    INT_OPT("threads", "N", TS, 1, threads, NO, 1, 4096, NULL,
            "CPU threads (OpenMP and OpenBLAS; default: theirs); results do not depend on it"),
    CHOICE_OPT("device", "cpu|cuda", TS, 1, device, device_names,
               "the backend (cpu; cuda: not yet run on a GPU, see README)"),
    {"tf32", NULL, RUN_OPT_FLAG, TS, 1, OFF(tf32), NO, 0, 1, 0, 0, 0, 0, NULL, NULL,
     "cuda: let cuBLAS use TF32 tensor cores for the FP32 GEMMs"},
    NUM_OPT("lr-teacher", T, lr_teacher, 0, 1, 10, 0, NULL, "teacher learning rate (1e-4)"),
    NUM_OPT("lr-student", S, lr_student, 0, 1, 10, 0, NULL, "student learning rate (1e-3)"),
    NUM_OPT("weight-decay", TS, weight_decay, 0, 0, 10, 0, NULL, "L2 weight decay (1e-3)"),
    INT_OPT("latent", "N", TS, 0, latent, NO, 1, 65536, NULL, "latent size L (128)"),
    NUM_OPT("dropout", TS, dropout, 0, 0, 1, 1, "a probability", "dropout probability in [0, 1) (0.2)"),
    NUM_OPT("margin", TS, margin, -100, 0, 100, 0, NULL, "matching margin (0.05)"),
    INT_OPT("k", "N", TS, 0, k, NO, 1, 1 << 20, NULL, "negatives per row in the matching term, capped at B-1 (40)"),
    NUM_OPT("alpha", S, alpha, 0, 0, 1e6, 0, NULL, "distillation weight (5e-5)"),
    CHOICE_OPT("matching", "published|hinge|softmax", TS, 0, matching, matching_names,
               "matching term (published: faithful, SPEC §6)"),
    NUM_OPT("temperature", TS, temperature, 1e-6, 0, 1e6, 0, NULL, "softmax matching temperature (0.1)"),
    CHOICE_OPT("distill", "published|kl", S, 0, distill, distill_names,
               "distillation term (published: faithful KLG, SPEC §6)"),
    CHOICE_OPT("teacher-cache", "on|off", S, 1, teacher_cache, on_off,
               "on: the frozen teacher's posteriors of every student training row are computed once (the same "
               "values, less work); off: every step (on)"),
    INT_OPT("checkpoint-every", "N", TS, 1, checkpoint_every, NO, 0, 1000000000, NULL,
            "also write the resume checkpoint every N steps (0: after every epoch only)"),
    CHOICE_OPT("nan-policy", "stop|skip-batch", TS, 1, nan_policy, nan_names,
               "a non-finite loss: stop with a checkpoint of the last good state, or skip that batch (stop)"),
    INT_OPT("log-every", "N", TS, 0, log_every, NO, 1, 1000000000, NULL,
            "every N batches of an epoch: a line of the window's mean losses in metrics.jsonl and, when the output "
            "is not a terminal, a progress line (50)"),
    {"quiet", NULL, RUN_OPT_FLAG, TS, 1, OFF(quiet), NO, 0, 1, 0, 0, 0, 0, NULL, NULL,
     "print nothing but warnings, errors and the test table"},
    {NULL, NULL, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, NULL, NULL},
};

const run_option *run_options(void) { return option_table; }

const run_option *run_option_find(const char *name)
{
    for (const run_option *o = option_table; o->name; o++)
        if (!strcmp(o->name, name))
            return o;
    return NULL;
}

/* the config key of o into buf ('-' → '_') */
static const char *option_key(const run_option *o, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", o->name);
    for (char *p = buf; *p; p++)
        if (*p == '-')
            *p = '_';
    return buf;
}

const run_option *run_option_find_key(const char *key)
{
    char k[64];
    for (const run_option *o = option_table; o->name; o++)
        if (!strcmp(option_key(o, k, sizeof k), key))
            return o;
    return NULL;
}

int run_command_phases(run_command c)
{
    return c == RUN_CMD_TEACHER ? RUN_PHASE_TEACHER : c == RUN_CMD_STUDENT ? RUN_PHASE_STUDENT
                                                                             : RUN_PHASE_TEACHER | RUN_PHASE_STUDENT;
}

const char *run_command_name(run_command c)
{
    return c == RUN_CMD_TEACHER ? "train-teacher" : c == RUN_CMD_STUDENT ? "train-student" : "run";
}

void run_config_default(run_config *c, run_command command)
{
    memset(c, 0, sizeof *c);
    model_config t, s;
    model_config_default(&t, 0);
    model_config_default(&s, 1);
    c->command = command;
    c->teacher_epochs = t.epochs;
    c->student_epochs = s.epochs;
    c->batch_size = s.batch;
    c->seed = 1;
    c->threads = 0; /* OpenMP's and OpenBLAS's own */
    c->latent = s.L;
    c->k = s.match.k;
    c->checkpoint_every = 0;
    c->matching = s.match.variant;
    c->distill = s.distill;
    c->teacher_cache = RUN_TEACHER_CACHE_ON;
    c->device = RUN_DEVICE_CPU;
    c->tf32 = 0;
    c->nan_policy = RUN_NAN_STOP;
    c->log_every = 50;
    c->quiet = 0;
    c->lr_teacher = t.lr;
    c->lr_student = s.lr;
    c->weight_decay = s.weight_decay;
    c->dropout = 0.2; /* model_config keeps floats; these are the values as written */
    c->margin = 0.05;
    c->alpha = 5e-5;
    c->temperature = 0.1;
}

static int64_t *ival(run_config *c, size_t off) { return (int64_t *)(void *)((char *)c + off); }
static double *dval(run_config *c, size_t off) { return (double *)(void *)((char *)c + off); }
static int64_t ival_c(const run_config *c, size_t off) { return *(const int64_t *)(const void *)((const char *)c + off); }
static double dval_c(const run_config *c, size_t off) { return *(const double *)(const void *)((const char *)c + off); }

const char *run_option_expect(const run_option *o, char *buf, size_t cap)
{
    switch (o->kind) {
    case RUN_OPT_INT:
        if (o->what)
            snprintf(buf, cap, "%s", o->what);
        else
            snprintf(buf, cap, "an integer in [%lld, %lld]", (long long)o->ilo, (long long)o->ihi);
        break;
    case RUN_OPT_NUM:
        snprintf(buf, cap, "%s in %c%g, %g%c", o->what ? o->what : "a number", o->lo_open ? '(' : '[', o->lo, o->hi,
                 o->hi_open ? ')' : ']');
        break;
    case RUN_OPT_CHOICE: {
        size_t n = 0, used = 0;
        while (o->choices[n])
            n++;
        buf[0] = '\0';
        for (size_t i = 0; i < n && used < cap; i++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ",
                                     o->choices[i]);
        break;
    }
    case RUN_OPT_FLAG: snprintf(buf, cap, "true or false"); break;
    }
    return buf;
}

static int in_range(const run_option *o, double v)
{
    return isfinite(v) && v >= o->lo && !(o->lo_open && v == o->lo) && v <= o->hi && !(o->hi_open && v == o->hi);
}

/* A value for both phases ("epochs": teacher_epochs, then student_epochs) goes only to the command's own phases,
 * so that a config holds nothing its command would not write back. */
static void store_int(run_config *c, const run_option *o, int64_t v)
{
    if (o->off2 == RUN_OPT_NO_OFF || c->command != RUN_CMD_STUDENT)
        *ival(c, o->off) = v;
    if (o->off2 != RUN_OPT_NO_OFF && c->command != RUN_CMD_TEACHER)
        *ival(c, o->off2) = v;
}

int run_option_set_text(run_config *c, const run_option *o, const char *text)
{
    char want[160];
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case RUN_OPT_INT: {
        long long v = strtoll(text, &end, 10);
        if (*text && !*end && !errno && v >= o->ilo && v <= o->ihi) {
            store_int(c, o, v);
            return 0;
        }
        break;
    }
    case RUN_OPT_NUM: {
        double v = strtod(text, &end);
        if (*text && !*end && !errno && in_range(o, v)) {
            *dval(c, o->off) = v;
            return 0;
        }
        break;
    }
    case RUN_OPT_CHOICE:
        for (int i = 0; o->choices[i]; i++)
            if (!strcmp(o->choices[i], text)) {
                store_int(c, o, i);
                return 0;
            }
        break;
    case RUN_OPT_FLAG: store_int(c, o, 1); return 0;
    }
    return debcm_fail("--%s expects %s, found '%.200s'", o->name, run_option_expect(o, want, sizeof want), text);
}

/* the shortest text of x that reads back as x */
static const char *num_text(double x, char *buf, size_t cap)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    return buf;
}

const char *run_option_value_text(const run_config *c, const run_option *o, char *buf, size_t cap)
{
    switch (o->kind) {
    case RUN_OPT_INT: snprintf(buf, cap, "%lld", (long long)ival_c(c, o->off)); break;
    case RUN_OPT_NUM: num_text(dval_c(c, o->off), buf, cap); break;
    case RUN_OPT_CHOICE: snprintf(buf, cap, "%s", o->choices[ival_c(c, o->off)]); break;
    case RUN_OPT_FLAG: snprintf(buf, cap, "%s", ival_c(c, o->off) ? "on" : "off"); break;
    }
    return buf;
}

int run_option_equal(const run_config *a, const run_config *b, const run_option *o)
{
    if (o->kind == RUN_OPT_NUM)
        return dval_c(a, o->off) == dval_c(b, o->off);
    return ival_c(a, o->off) == ival_c(b, o->off) &&
           (o->off2 == RUN_OPT_NO_OFF || ival_c(a, o->off2) == ival_c(b, o->off2));
}

/* ---- JSON ------------------------------------------------------------------------------------------------------- */

/* a JSON value, compact and cut short, for messages */
static const char *json_found(const json_t *v, char *buf, size_t cap)
{
    char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (!s) {
        snprintf(buf, cap, "a value");
        return buf;
    }
    if (strlen(s) > 60)
        snprintf(buf, cap, "%.57s...", s);
    else
        snprintf(buf, cap, "%s", s);
    free(s);
    return buf;
}

static int key_error(const char *source, const char *key, const char *want, const json_t *v)
{
    char found[80];
    return debcm_fail("%s: key '%.64s': expected %s, found %s", source, key, want, json_found(v, found, sizeof found));
}

/* an option's value from JSON, checked as the command line checks it */
static int set_json(run_config *c, const run_option *o, const char *key, const json_t *v, const char *source)
{
    char want[160];
    run_option_expect(o, want, sizeof want);
    switch (o->kind) {
    case RUN_OPT_INT:
        if (json_is_integer(v) && json_integer_value(v) >= o->ilo && json_integer_value(v) <= o->ihi) {
            store_int(c, o, json_integer_value(v));
            return 0;
        }
        break;
    case RUN_OPT_NUM:
        if (json_is_number(v) && in_range(o, json_number_value(v))) {
            *dval(c, o->off) = json_number_value(v);
            return 0;
        }
        break;
    case RUN_OPT_CHOICE:
        for (int i = 0; json_is_string(v) && o->choices[i]; i++)
            if (!strcmp(o->choices[i], json_string_value(v))) {
                store_int(c, o, i);
                return 0;
            }
        break;
    case RUN_OPT_FLAG:
        if (json_is_boolean(v)) {
            store_int(c, o, json_is_true(v));
            return 0;
        }
        break;
    }
    return key_error(source, key, want, v);
}

static int hexval(int ch)
{
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* a path: a string, null (unset) or {"hex": "…"} for bytes that are not UTF-8 */
static int set_path(char *dst, const char *key, const json_t *v, const char *source)
{
    static const char want[] = "a path (a string, {\"hex\": ...} or null)";
    if (json_is_null(v)) {
        dst[0] = '\0';
        return 0;
    }
    if (json_is_string(v)) {
        size_t n = json_string_length(v);
        if (n >= PATH_MAX || memchr(json_string_value(v), '\0', n))
            return key_error(source, key, "a path without NUL bytes of at most 4095 bytes", v);
        memcpy(dst, json_string_value(v), n + 1);
        return 0;
    }
    const json_t *h = json_is_object(v) && json_object_size(v) == 1 ? json_object_get(v, "hex") : NULL;
    if (!json_is_string(h))
        return key_error(source, key, want, v);
    const char *s = json_string_value(h);
    size_t n = json_string_length(h);
    if (n % 2 || n / 2 >= PATH_MAX || n == 0)
        return key_error(source, key, "an even number of hex digits, at most 8190", v);
    for (size_t i = 0; i < n / 2; i++) {
        int a = hexval(s[2 * i]), b = hexval(s[2 * i + 1]);
        if (a < 0 || b < 0 || (a == 0 && b == 0))
            return key_error(source, key, "lowercase hex digits of non-zero bytes", v);
        dst[i] = (char)(a * 16 + b);
    }
    dst[n / 2] = '\0';
    return 0;
}

int run_config_from_json(run_config *c, const char *text, size_t len, const char *source)
{
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!root) {
        char what[200]; /* jansson's text may quote the input: control bytes become \xNN, one line */
        return debcm_fail("%s: line %d, column %d: %s", source, e.line, e.column,
                          safetensors_quote(what, sizeof what, e.text, 120));
    }
    int rc = -1;
    if (!json_is_object(root)) {
        key_error(source, "(the whole file)", "one JSON object", root);
        goto done;
    }
    const int phases = run_command_phases(c->command);
    const json_t *ep = json_object_get(root, "epochs");
    if (ep && set_json(c, run_option_find("epochs"), "epochs", ep, source))
        goto done; /* both phases first; the phase's own keys below may then refine it */
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        const run_option *o = run_option_find_key(key);
        if (o) {
            if (!(o->phases & phases)) {
                debcm_fail("%s: key '%s' does not apply to %s", source, key, run_command_name(c->command));
                goto done;
            }
            if (o->off2 == RUN_OPT_NO_OFF && set_json(c, o, key, v, source))
                goto done;
        } else if (!strcmp(key, "format")) {
            if (!json_is_string(v) || strcmp(json_string_value(v), RUN_CONFIG_FORMAT)) {
                key_error(source, key, "\"" RUN_CONFIG_FORMAT "\"", v);
                goto done;
            }
        } else if (!strcmp(key, "command")) {
            const char *want = run_command_name(c->command);
            if (!json_is_string(v) || strcmp(json_string_value(v), want)) {
                char w[64];
                snprintf(w, sizeof w, "\"%s\" (the command reading it)", want);
                key_error(source, key, w, v);
                goto done;
            }
        } else if (!strcmp(key, "pgc") || !strcmp(key, "data") || !strcmp(key, "teacher")) {
            char *dst = !strcmp(key, "pgc") ? c->pgc : !strcmp(key, "data") ? c->data : c->teacher;
            if (set_path(dst, key, v, source))
                goto done;
        } else {
            char q[300];
            safetensors_quote(q, sizeof q, key, 64);
            debcm_fail("%s: unknown key '%s' (debcm %s --help lists the options; a key is an option's name with "
                       "'_' for '-')", source, q, run_command_name(c->command));
            goto done;
        }
    }
    if (c->teacher[0] && c->command != RUN_CMD_STUDENT) {
        debcm_fail("%s: key 'teacher' applies to train-student only", source);
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

/* ---- writing -------------------------------------------------------------------------------------------------- */

typedef struct {
    char *buf;
    size_t len, cap;
    int failed;
} text_buf;

static void put(text_buf *t, const char *fmt, ...) DEBCM_PRINTF(2, 3);
static void put(text_buf *t, const char *fmt, ...)
{
    if (t->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->failed = 1;
        return;
    }
    if ((size_t)n >= t->cap - t->len) {
        size_t cap = (t->len + (size_t)n + 1) * 2;
        char *p = realloc(t->buf, cap);
        if (!p) {
            t->failed = 1;
            return;
        }
        t->buf = p;
        t->cap = cap;
        va_start(ap, fmt);
        vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
    }
    t->len += (size_t)n;
}

static void put_path(text_buf *t, const char *path)
{
    if (!path[0]) {
        put(t, "null");
        return;
    }
    json_t *s = json_string(path); /* NULL when the bytes are not UTF-8 */
    char *enc = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    json_decref(s);
    if (enc) {
        put(t, "%s", enc);
        free(enc);
        return;
    }
    put(t, "{\"hex\": \"");
    for (const unsigned char *p = (const unsigned char *)path; *p; p++)
        put(t, "%02x", *p);
    put(t, "\"}");
}

char *run_config_to_json(const run_config *c, int indent)
{
    text_buf t = {malloc(1024), 0, 1024, 0};
    if (!t.buf) {
        debcm_fail("out of memory writing the config");
        return NULL;
    }
    t.buf[0] = '\0';
    const char *sep = indent ? ",\n  " : ", ";
    put(&t, "{%s\"format\": \"%s\"%s\"command\": \"%s\"%s\"pgc\": ", indent ? "\n  " : "", RUN_CONFIG_FORMAT, sep,
        run_command_name(c->command), sep);
    put_path(&t, c->pgc);
    put(&t, "%s\"data\": ", sep);
    put_path(&t, c->data);
    if (c->command == RUN_CMD_STUDENT) {
        put(&t, "%s\"teacher\": ", sep);
        put_path(&t, c->teacher);
    }
    const int phases = run_command_phases(c->command);
    char key[64], val[64];
    for (const run_option *o = option_table; o->name; o++) {
        if (!(o->phases & phases) || o->off2 != RUN_OPT_NO_OFF || (o->off == OFF(threads) && c->threads == 0))
            continue; /* another phase's; "epochs" (both phase keys are written); threads unset */
        option_key(o, key, sizeof key);
        switch (o->kind) {
        case RUN_OPT_INT: put(&t, "%s\"%s\": %lld", sep, key, (long long)ival_c(c, o->off)); break;
        case RUN_OPT_NUM: put(&t, "%s\"%s\": %s", sep, key, num_text(dval_c(c, o->off), val, sizeof val)); break;
        case RUN_OPT_CHOICE: put(&t, "%s\"%s\": \"%s\"", sep, key, o->choices[ival_c(c, o->off)]); break;
        case RUN_OPT_FLAG: put(&t, "%s\"%s\": %s", sep, key, ival_c(c, o->off) ? "true" : "false"); break;
        }
    }
    put(&t, "%s}\n", indent ? "\n" : "");
    if (t.failed) {
        free(t.buf);
        debcm_fail("out of memory writing the config");
        return NULL;
    }
    return t.buf;
}

void run_config_models(const run_config *c, model_config *teacher, model_config *student)
{
    model_config *m[2] = {teacher, student};
    for (int i = 0; i < 2; i++) {
        model_config_default(m[i], i);
        m[i]->lr = i ? c->lr_student : c->lr_teacher;
        m[i]->epochs = i ? c->student_epochs : c->teacher_epochs;
        m[i]->batch = c->batch_size;
        m[i]->L = c->latent;
        m[i]->weight_decay = c->weight_decay;
        m[i]->dropout = (float)c->dropout;
        m[i]->match.variant = (match_variant)c->matching;
        m[i]->match.margin = (float)c->margin;
        m[i]->match.k = c->k;
        m[i]->match.tau = (float)c->temperature;
        m[i]->distill = (distill_variant)c->distill;
        m[i]->alpha = (float)c->alpha;
    }
}
