/* apps/cmd_inspect.c — `debcm inspect`: load a dataset in the published DebCM layout through io/dataset.c,
 * and print what is in it (counts, dimensions, genre distribution, popularity skew, negatives per evaluation
 * row) and every problem found, as text or, with --json, as one JSON object (keys listed in README.md).
 * Exit status 0 when the dataset has no error (warnings allowed), 1 otherwise. */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

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
    printf("problems         %d error%s, %d warning%s\n", p->errors, p->errors == 1 ? "" : "s", p->warnings,
           p->warnings == 1 ? "" : "s");
    for (int i = 0; i < p->count; i++)
        printf("  %s: %s\n", p->items[i].severity == PROBLEM_ERROR ? "error" : "warning", p->items[i].message);
    if (p->errors + p->warnings > p->count)
        printf("  (%d more not listed; the counts above include them)\n", p->errors + p->warnings - p->count);
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
    json_object_set_new(root, "pgc_dir", json_string(ds->pgc_dir));
    json_object_set_new(root, "data_dir", json_string(ds->ugc_dir));
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
    for (int i = 0; i < ds->problems.count; i++) {
        json_t *item = json_object();
        json_object_set_new(item, "severity",
                            json_string(ds->problems.items[i].severity == PROBLEM_ERROR ? "error" : "warning"));
        /* messages quote file contents, which may not be UTF-8: json_string would refuse those */
        json_object_set_new(item, "message", json_stringn_nocheck(ds->problems.items[i].message,
                                                                  strlen(ds->problems.items[i].message)));
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
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (c) {
        case 'p': pgc = optarg; break;
        case 'd': data = optarg; break;
        case 'j': json = 1; break;
        case 'h': inspect_usage(stdout); return DEBCM_EXIT_OK;
        default: inspect_usage(stderr); return DEBCM_EXIT_USAGE;
        }
    }
    char pgc_buf[2048], data_buf[2048];
    if (optind < argc) {
        if (optind + 1 < argc || pgc || data) {
            fprintf(stderr, "debcm inspect: give either ROOT or --pgc DIR --data DIR\n");
            inspect_usage(stderr);
            return DEBCM_EXIT_USAGE;
        }
        const char *root = argv[optind];
        size_t len = strlen(root);
        const char *sep = (len && root[len - 1] == '/') ? "" : "/";
        snprintf(pgc_buf, sizeof pgc_buf, "%s%sdata_pgc", root, sep);
        snprintf(data_buf, sizeof data_buf, "%s%sdata_matching", root, sep);
        pgc = pgc_buf;
        data = data_buf;
    }
    if (!pgc || !data) {
        fprintf(stderr, "debcm inspect: need ROOT, or both --pgc DIR and --data DIR\n");
        inspect_usage(stderr);
        return DEBCM_EXIT_USAGE;
    }

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
        /* the problems were listed above; the one-line summary goes to stderr for scripts and logs */
        status = cmd_report_error("inspect");
    }
    dataset_summary_free(&s);
    dataset_free(&ds);
    return status;
}
