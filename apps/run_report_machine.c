/* apps/run_report_machine.c — the "machine" object of report.json: where a run ran, so that its timings can be
 * read against the hardware and its numbers against the libraries. Layout (every key always present):
 *   {"cpu": "AMD EPYC 7B13" (/proc/cpuinfo's model name, else the architecture), "logical_cores": 2,
 *    "memory_bytes": 25217306624 (/proc/meminfo's MemTotal; 0 when unreadable),
 *    "os": "Linux 6.1.0-28-cloud-amd64 x86_64" (uname), "distribution": "Debian GNU/Linux 12 (bookworm)"
 *    (/etc/os-release's PRETTY_NAME, "unknown" without it), "compiler": "gcc 12.2.0", "debcm": "0.1.0",
 *    "libraries": {"blas": openblas_get_config(), "blas_threading": "OpenMP" | "pthreads" | "no",
 *                  "zlib": "1.2.13", "jansson": "2.14", "openmp": "201511" | "not built", "openmp_threads": 2},
 *    "cuda": "not built" | the CUDA runtime, driver, cuBLAS and cuDNN versions,
 *    "gpus": "none" | ["GPU 0: NVIDIA H200, sm_90, 139.8 GiB, 132 SMs", …]}
 * The libraries and GPUs come from apps/build_info.c, the same that `debcm version` prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "apps/build_info.h"
#include "apps/run_report.h"

/* The value of the first line of path that starts with key (then spaces or tabs, then sep), trimmed, into out;
 * quotes around it removed. 0 when there is none. */
static int read_keyed(const char *path, const char *key, char sep, char *out, size_t cap)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return 0;
    char line[1024];
    int found = 0;
    size_t kn = strlen(key);
    while (!found && fgets(line, sizeof line, fp)) {
        if (strncmp(line, key, kn))
            continue;
        char *p = line + kn;
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p++ != sep)
            continue;
        while (*p == ' ' || *p == '\t' || *p == '"')
            p++;
        size_t n = strcspn(p, "\r\n");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '"'))
            n--;
        snprintf(out, cap, "%.*s", (int)n, p);
        found = n > 0;
    }
    fclose(fp);
    return found;
}

static json_t *gpus_json(const build_info *b)
{
    if (!b->cuda_built || b->gpus <= 0)
        return json_string("none");
    json_t *list = json_array();
    for (const char *p = b->cuda; list && p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (n > 4 && !strncmp(p, "GPU ", 4))
            json_array_append_new(list, json_stringn(p, n));
        p = nl ? nl + 1 : NULL;
    }
    return list;
}

json_t *run_report_machine(void)
{
    build_info b;
    build_info_get(&b);
    struct utsname u;
    char cpu[256] = "", os[512] = "unknown", distro[256] = "unknown", mem[64] = "", openmp[32] = "not built";
    int have_uname = uname(&u) == 0;
    if (have_uname)
        snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
    /* x86 says "model name"; some ARM kernels "Model" or "Hardware" */
    if (!read_keyed("/proc/cpuinfo", "model name", ':', cpu, sizeof cpu) &&
        !read_keyed("/proc/cpuinfo", "Model", ':', cpu, sizeof cpu) &&
        !read_keyed("/proc/cpuinfo", "Hardware", ':', cpu, sizeof cpu))
        snprintf(cpu, sizeof cpu, "%s", have_uname ? u.machine : "unknown");
    long long mem_bytes = 0;
    if (read_keyed("/proc/meminfo", "MemTotal", ':', mem, sizeof mem))
        mem_bytes = strtoll(mem, NULL, 10) * 1024; /* "25217306624 kB" */
    read_keyed("/etc/os-release", "PRETTY_NAME", '=', distro, sizeof distro);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (b.openmp)
        snprintf(openmp, sizeof openmp, "%d", b.openmp);
    char cuda[512] = "not built";
    if (b.cuda_built)
        snprintf(cuda, sizeof cuda, "%.*s", (int)strcspn(b.cuda, "\n"), b.cuda); /* the versions line */
    return json_pack("{s:s, s:I, s:I, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:i}, s:s, s:o}", "cpu", cpu,
                     "logical_cores", (json_int_t)(cores > 0 ? cores : 0), "memory_bytes", (json_int_t)mem_bytes,
                     "os", os, "distribution", distro, "compiler", b.compiler, "debcm", b.version, "libraries",
                     "blas", b.blas ? b.blas : "unknown", "blas_threading", build_info_threading_name(b.blas_threading),
                     "zlib", b.zlib, "jansson", b.jansson, "openmp", openmp, "openmp_threads", b.openmp_threads,
                     "cuda", cuda, "gpus", gpus_json(&b));
}
