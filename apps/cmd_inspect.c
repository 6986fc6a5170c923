/* apps/cmd_inspect.c — `debcm inspect`: load a dataset in the published DebCM layout through io/dataset.c,
 * and print what is in it (counts, dimensions, genre distribution, popularity skew, negatives per evaluation
 * row) and every problem found, as text or, with --json, as one JSON object (keys listed in README.md).
 * Exit status 0 when the dataset has no error (warnings allowed), 1 otherwise. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "apps/commands.h"
#include "engine/error.h"
#include "io/dataset.h"

static void inspect_usage(FILE *out)
{
    fprintf(out,
            "usage: debcm inspect ROOT [--json]\n"
            "       debcm inspect --pgc DIR --data DIR [--json]\n"
            "\n"
            "Check a dataset in the published DebCM layout and summarise it. ROOT holds data_pgc/ and\n"
            "data_matching/; --pgc and --data name the two directories separately.\n"
            "\n"
            "options:\n"
            "  --pgc DIR    the teacher's directory (data_pgc)\n"
            "  --data DIR   the student's directory (data_matching)\n"
            "  --json       print one JSON object instead of text\n"
            "  -h, --help   this help\n"
            "\n"
            "Exit status: 0 no error found (warnings allowed), 1 errors found, 2 bad usage.\n");
}

/* 1234567 -> "1,234,567" */
static const char *grouped(char *buf, size_t n, int64_t v)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)(v < 0 ? -v : v));
    size_t len = strlen(digits), o = 0;
    if (v < 0 && o + 1 < n)
        buf[o++] = '-';
    for (size_t i = 0; i < len && o + 2 < n; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

/* up to 8 grouped numbers in one printf: each use names its own buffer */
#define G(i, v) grouped(g[i], sizeof g[i], (v))

static void print_text(const debcm_dataset *ds, const dataset_summary *s)
{
    char g[8][32];
    printf("data_pgc       %s\n", ds->pgc_dir);
    printf("data_matching  %s\n\n", ds->ugc_dir);
    printf("teacher (PGC)\n");
    printf("  videos         %s, D_v %s\n", G(0, s->pgc_videos), G(1, s->pgc_dim_v));
    printf("  musics         %s, D_m %s + %s\n", G(0, s->pgc_musics), G(1, s->pgc_dim_vggish), G(2, s->pgc_dim_smile));
    printf("  pairs          %s train / %s val\n", G(0, s->pgc_train), G(1, s->pgc_val));
    printf("  label skew     the top 1%% of musics get %.1f%% of the training pairs\n",
           100.0 * s->pgc_top1pct_label_share);
    printf("\nstudent (UGC)\n");
    printf("  videos         %s, D_v %s\n", G(0, s->ugc_videos), G(1, s->ugc_dim_v));
    printf("  musics         %s, D_m %s + %s\n", G(0, s->ugc_musics), G(1, s->ugc_dim_vggish), G(2, s->ugc_dim_smile));
    printf("  rows           %s train / %s val / %s test\n", G(0, s->train_rows), G(1, s->val_rows), G(2, s->test_rows));
    printf("  genres         %lld\n", (long long)s->genres);
    if (s->genre_label_count) {
        int64_t total = 0;
        for (int64_t k = 0; k < s->genres; k++)
            total += s->genre_label_count[k];
        printf("  genre labels  ");
        for (int64_t k = 0; k < s->genres; k++)
            printf(" %lld: %s (%.1f%%)%s", (long long)k, G(0, s->genre_label_count[k]),
                   total ? 100.0 * (double)s->genre_label_count[k] / (double)total : 0.0,
                   k + 1 < s->genres ? "," : "");
        printf("\n");
        if (s->genre_out_of_range)
            printf("                 %s genre ids outside [0, %lld)\n", G(0, s->genre_out_of_range),
                   (long long)s->genres);
    }
    printf("  popularity     the top 1%% of musics (%s) get %.1f%% of the training labels; %s musics are used "
           "as labels\n", G(0, s->top1pct_musics), 100.0 * s->top1pct_label_share, G(1, s->train_distinct_musics));
    printf("  negatives/row  %s val, %s test\n", G(0, s->val_negatives), G(1, s->test_negatives));
    printf("  eval weights   sum %.4g val, %.4g test\n", s->val_weight_sum, s->test_weight_sum);
    printf("\nfeatures         %d of 6 files used in place (memory-mapped float32)\n", s->features_mapped);
    const problem_list *p = &ds->problems;
    if (!p->errors && !p->warnings) {
        printf("problems         none\n");
        return;
    }
    printf("problems         %d error%s, %d warning%s (rows counted; a problem repeated over rows is listed once)\n",
           p->errors, p->errors == 1 ? "" : "s", p->warnings, p->warnings == 1 ? "" : "s");
    for (int i = 0; i < p->count; i++)
        printf("  %s: %s\n", p->items[i].severity == PROBLEM_ERROR ? "error" : "warning", p->items[i].message);
    if (p->unlisted)
        printf("  (%d more problems not listed; the counts above include them)\n", p->unlisted);
}

/* A JSON string from bytes that may not be UTF-8 (paths, messages quoting file contents): valid UTF-8 is kept,
 * any other byte is written as the text \xNN, so the output is always valid JSON and nothing is dropped. */
static json_t *json_text(const char *text)
{
    size_t n = strlen(text), o = 0;
    char *out = malloc(4 * n + 1);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)text[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        int ok = len > 0 && i + len <= n && !(len == 2 && c < 0xC2);
        for (size_t j = 1; ok && j < len; j++)
            ok = ((unsigned char)text[i + j] & 0xC0) == 0x80;
        if (ok && len == 3) { /* no overlong forms, no surrogates */
            unsigned char c1 = (unsigned char)text[i + 1];
            ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0);
        }
        if (ok && len == 4) {
            unsigned char c1 = (unsigned char)text[i + 1];
            ok = !(c == 0xF0 && c1 < 0x90) && !(c == 0xF4 && c1 >= 0x90) && c <= 0xF4;
        }
        if (ok) {
            memcpy(out + o, text + i, len);
            o += len;
            i += len;
        } else {
            o += (size_t)sprintf(out + o, "\\x%02x", c);
            i++;
        }
    }
    json_t *j = json_stringn(out, o);
    free(out);
    return j;
}

static int print_json(const debcm_dataset *ds, const dataset_summary *s)
{
    json_t *root = json_object();
    json_t *pgc = json_object();
    json_t *ugc = json_object();
    json_t *problems = json_array();
    json_t *genres = json_array();
    if (!root || !pgc || !ugc || !problems || !genres)
        return debcm_fail("out of memory building JSON");
    json_object_set_new(root, "pgc_dir", json_text(ds->pgc_dir));
    json_object_set_new(root, "data_dir", json_text(ds->ugc_dir));
    json_object_set_new(root, "ok", json_boolean(ds->problems.errors == 0));

    json_object_set_new(pgc, "videos", json_integer(s->pgc_videos));
    json_object_set_new(pgc, "musics", json_integer(s->pgc_musics));
    json_object_set_new(pgc, "dim_v", json_integer(s->pgc_dim_v));
    json_object_set_new(pgc, "dim_vggish", json_integer(s->pgc_dim_vggish));
    json_object_set_new(pgc, "dim_smile", json_integer(s->pgc_dim_smile));
    json_object_set_new(pgc, "train_pairs", json_integer(s->pgc_train));
    json_object_set_new(pgc, "val_pairs", json_integer(s->pgc_val));
    json_object_set_new(pgc, "top1pct_label_share", json_real(s->pgc_top1pct_label_share));
    json_object_set_new(root, "pgc", pgc);

    json_object_set_new(ugc, "videos", json_integer(s->ugc_videos));
    json_object_set_new(ugc, "musics", json_integer(s->ugc_musics));
    json_object_set_new(ugc, "dim_v", json_integer(s->ugc_dim_v));
    json_object_set_new(ugc, "dim_vggish", json_integer(s->ugc_dim_vggish));
    json_object_set_new(ugc, "dim_smile", json_integer(s->ugc_dim_smile));
    json_object_set_new(ugc, "train_rows", json_integer(s->train_rows));
    json_object_set_new(ugc, "val_rows", json_integer(s->val_rows));
    json_object_set_new(ugc, "test_rows", json_integer(s->test_rows));
    json_object_set_new(ugc, "genres", json_integer(s->genres));
    for (int64_t k = 0; s->genre_label_count && k < s->genres; k++)
        json_array_append_new(genres, json_integer(s->genre_label_count[k]));
    json_object_set_new(ugc, "genre_label_counts", genres);
    json_object_set_new(ugc, "genre_ids_out_of_range", json_integer(s->genre_out_of_range));
    json_object_set_new(ugc, "train_distinct_musics", json_integer(s->train_distinct_musics));
    json_object_set_new(ugc, "top1pct_musics", json_integer(s->top1pct_musics));
    json_object_set_new(ugc, "top1pct_label_share", json_real(s->top1pct_label_share));
    json_object_set_new(ugc, "val_negatives_per_row", json_integer(s->val_negatives));
    json_object_set_new(ugc, "test_negatives_per_row", json_integer(s->test_negatives));
    json_object_set_new(ugc, "val_weight_sum", json_real(s->val_weight_sum));
    json_object_set_new(ugc, "test_weight_sum", json_real(s->test_weight_sum));
    json_object_set_new(ugc, "val_rows_positive_in_negatives", json_integer(ds->val.rows_positive_in_negatives));
    json_object_set_new(ugc, "test_rows_positive_in_negatives", json_integer(ds->test.rows_positive_in_negatives));
    json_object_set_new(ugc, "val_rows_duplicate_negatives", json_integer(ds->val.rows_duplicate_negatives));
    json_object_set_new(ugc, "test_rows_duplicate_negatives", json_integer(ds->test.rows_duplicate_negatives));
    json_object_set_new(root, "ugc", ugc);

    json_object_set_new(root, "features_memory_mapped", json_integer(s->features_mapped));
    json_object_set_new(root, "errors", json_integer(ds->problems.errors));
    json_object_set_new(root, "warnings", json_integer(ds->problems.warnings));
    json_object_set_new(root, "problems_unlisted", json_integer(ds->problems.unlisted));
    for (int i = 0; i < ds->problems.count; i++) {
        json_t *item = json_object();
        json_object_set_new(item, "severity",
                            json_string(ds->problems.items[i].severity == PROBLEM_ERROR ? "error" : "warning"));
        json_object_set_new(item, "message", json_text(ds->problems.items[i].message));
        json_array_append_new(problems, item);
    }
    json_object_set_new(root, "problems", problems);
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_ENSURE_ASCII);
    json_decref(root);
    if (!text)
        return debcm_fail("could not format the JSON output");
    puts(text);
    free(text);
    return 0;
}

/* A usage error: one line on stderr, exit 2. */
static int inspect_usage_error(const char *what)
{
    fprintf(stderr, "debcm inspect: %s (see debcm inspect --help)\n", what);
    return DEBCM_EXIT_USAGE;
}

int cmd_inspect(int argc, char **argv)
{
    static const struct option options[] = {
        {"pgc", required_argument, NULL, 'p'},
        {"data", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *pgc = NULL, *data = NULL;
    int json = 0, c;
    char msg[256];
    optind = 1;
    opterr = 0; /* our own one-line messages */
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'p': pgc = optarg; break;
        case 'd': data = optarg; break;
        case 'j': json = 1; break;
        case 'h': inspect_usage(stdout); return DEBCM_EXIT_OK;
        case ':':
            snprintf(msg, sizeof msg, "option '%.100s' needs a value", argv[optind - 1]);
            return inspect_usage_error(msg);
        default:
            snprintf(msg, sizeof msg, "unknown option '%.100s'", argv[optind - 1]);
            return inspect_usage_error(msg);
        }
    }
    char pgc_buf[PATH_MAX], data_buf[PATH_MAX];
    if (optind < argc) {
        if (optind + 1 < argc)
            return inspect_usage_error("give one ROOT");
        if (pgc || data)
            return inspect_usage_error("give either ROOT or --pgc DIR --data DIR, not both");
        const char *root = argv[optind];
        size_t len = strlen(root);
        if (len == 0)
            return inspect_usage_error("ROOT is an empty string");
        const char *sep = root[len - 1] == '/' ? "" : "/";
        if ((size_t)snprintf(pgc_buf, sizeof pgc_buf, "%s%sdata_pgc", root, sep) >= sizeof pgc_buf ||
            (size_t)snprintf(data_buf, sizeof data_buf, "%s%sdata_matching", root, sep) >= sizeof data_buf) {
            fprintf(stderr, "debcm inspect: error: %.200s...: path too long (%zu bytes; at most %d)\n", root, len,
                    PATH_MAX - 20);
            return DEBCM_EXIT_FAIL;
        }
        struct stat st;
        if (stat(root, &st) != 0 || !S_ISDIR(st.st_mode)) {
            fprintf(stderr, "debcm inspect: error: %s: expected a directory holding data_pgc/ and data_matching/, "
                    "found %s\n", root, errno == ENOENT ? "nothing there" : "something that is not a directory");
            return DEBCM_EXIT_FAIL;
        }
        pgc = pgc_buf;
        data = data_buf;
    }
    if (!pgc || !data)
        return inspect_usage_error("need ROOT, or both --pgc DIR and --data DIR");
    if (!*pgc || !*data)
        return inspect_usage_error("--pgc and --data need a directory, found an empty string");

    debcm_dataset ds;
    int load_rc = dataset_load(&ds, pgc, data);
    dataset_summary s;
    int rc = dataset_summarise(&s, &ds);
    if (rc == 0)
        rc = json ? print_json(&ds, &s) : (print_text(&ds, &s), 0);
    int status = DEBCM_EXIT_OK;
    if (rc != 0) {
        status = cmd_report_error("inspect");
    } else if (load_rc != 0) {
        /* every problem was listed on stdout; stderr gets one line for scripts and logs */
        const char *first = "";
        for (int i = 0; i < ds.problems.count; i++)
            if (ds.problems.items[i].severity == PROBLEM_ERROR) {
                first = ds.problems.items[i].message;
                break;
            }
        if (ds.problems.errors > 1)
            fprintf(stderr, "debcm inspect: error: %s (%d errors in all; standard output lists them)\n", first,
                    ds.problems.errors);
        else
            fprintf(stderr, "debcm inspect: error: %s\n", first);
        status = DEBCM_EXIT_FAIL;
    }
    dataset_summary_free(&s);
    dataset_free(&ds);
    return status;
}
