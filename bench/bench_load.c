/* bench/bench_load.c — how fast the data layer loads and validates a dataset in the published layout, beside
 * the machine's ceiling. It measures (1) the memory-copy bandwidth of this machine (the ceiling for a pass over
 * the feature matrices), and (2) dataset_load() on ROOT — memory-mapping every .npy, unpickling the object
 * arrays, checking every id and every feature value — as the median of several runs after a warm-up (page
 * cache warm). Prints GB/s for both and the load's share of the ceiling.
 * Usage: bench_load ROOT [runs]   (make ROOT with `debcm synth --scale tt150k --out ROOT`) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "engine/error.h"
#include "io/dataset.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Read bandwidth ceiling: a memcpy of a 512 MiB buffer (counting bytes read), median of runs. */
static double copy_bandwidth_gbs(int runs)
{
    size_t n = (size_t)512 << 20;
    char *a = malloc(n), *b = malloc(n);
    if (!a || !b) {
        free(a);
        free(b);
        return 0.0;
    }
    memset(a, 1, n);
    memset(b, 2, n);
    double t[16];
    for (int r = 0; r < runs + 1 && r < 16; r++) {
        double t0 = now_s();
        memcpy(b, a, n);
        t[r] = now_s() - t0;
        a[r] = b[n - 1 - (size_t)r]; /* keep the copy observable */
    }
    double med = median(t + 1, runs); /* the first run is the warm-up */
    free(a);
    free(b);
    return (double)n / med / 1e9;
}

static double feature_bytes(const debcm_dataset *ds)
{
    const feat_matrix *m[6] = {&ds->pgc_video, &ds->pgc_vggish, &ds->pgc_smile,
                               &ds->ugc_video, &ds->ugc_vggish, &ds->ugc_smile};
    double bytes = 0.0;
    for (int i = 0; i < 6; i++)
        bytes += 4.0 * (double)m[i]->rows * (double)m[i]->cols;
    return bytes;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: bench_load ROOT [runs]\n\nMedian time of dataset_load(ROOT) after a warm-up, and the "
               "machine's memory-copy bandwidth as its ceiling.\n");
        return argc < 2 ? 2 : 0;
    }
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    if (runs < 1 || runs > 15)
        runs = 5;
    char pgc[2048], ugc[2048];
    snprintf(pgc, sizeof pgc, "%s/data_pgc", argv[1]);
    snprintf(ugc, sizeof ugc, "%s/data_matching", argv[1]);
    struct utsname u;
    uname(&u);
    double bw = copy_bandwidth_gbs(runs);

    double t[16], bytes = 0.0;
    int64_t rows = 0;
    for (int r = 0; r < runs + 1; r++) {
        debcm_dataset ds;
        double t0 = now_s();
        int rc = dataset_load(&ds, pgc, ugc);
        t[r] = now_s() - t0;
        if (rc != 0) {
            fprintf(stderr, "bench_load: %s\n", debcm_last_error());
            dataset_free(&ds);
            return 1;
        }
        bytes = feature_bytes(&ds);
        rows = ds.train.n + ds.val.n + ds.test.n + ds.pgc_train.n + ds.pgc_val.n;
        dataset_free(&ds);
    }
    double med = median(t + 1, runs);
    printf("machine          %s %s, %ld CPUs online\n", u.machine, u.release, sysconf(_SC_NPROCESSORS_ONLN));
    printf("ceiling          memcpy %.2f GB/s (median of %d)\n", bw, runs);
    printf("dataset          %s: %.2f GB of features, %lld rows\n", argv[1], bytes / 1e9, (long long)rows);
    printf("dataset_load     %.3f s median of %d (warm page cache): %.2f GB/s of features validated, "
           "%.0f%% of the memcpy ceiling\n", med, runs, bytes / med / 1e9, 100.0 * bytes / med / 1e9 / bw);
    return 0;
}
