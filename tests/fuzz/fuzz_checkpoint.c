/* tests/fuzz/fuzz_checkpoint.c — libFuzzer target for the checkpoint readers above the safetensors format: the
 * resume checkpoint (engine/resume.c: metadata, the epoch's loss terms, the networks with their Adam state, the
 * best copy and the teacher) and a model (models/checkpoint.c's checkpoint_read_net). The first input byte picks
 * whether the checksum is verified (odd) or skipped (even: a fuzzer cannot forge CRCs, and what lies behind the
 * check must hold on its own). Networks are built with the dimensions the file's metadata claims, when they are
 * small. A refusal must be one line that names the input; nothing may crash or leak. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/resume.h"
#include "models/checkpoint.h"

#define FUZZ_CK_NAME "fuzz.safetensors"

static void fuzz_ck_check_message(void)
{
    const char *m = debcm_last_error();
    if (!strstr(m, FUZZ_CK_NAME) || strchr(m, '\n'))
        abort();
}

/* a metadata value as a small positive integer (≤ 64), or −1 */
static int64_t fuzz_ck_dim(const safetensors_file *f, const char *key, int64_t lo)
{
    const char *s = safetensors_metadata(f, key);
    if (!s)
        return -1;
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v >= lo && v <= 64 ? v : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int verify = data[0] & 1;
    resume_file rf;
    int rc = resume_open_buffer(&rf, data + 1, size - 1, FUZZ_CK_NAME, verify);
    if (rc != 0)
        fuzz_ck_check_message();
    const safetensors_file *f = &rf.f;
    model_dims d = {fuzz_ck_dim(f, "D_v", 1), fuzz_ck_dim(f, "D_m", 1), fuzz_ck_dim(f, "L", 1),
                    fuzz_ck_dim(f, "G", 0)};
    if (f->data_area && d.D_v > 0 && d.D_m > 0 && d.L > 0 && d.G >= 0) {
        const debcm_ops *ops = debcm_ops_cpu();
        model_dims dt = d;
        dt.G = 0;
        int student = d.G > 0;
        debcm_net net, best, teacher;
        memset(&net, 0, sizeof net);
        memset(&best, 0, sizeof best);
        memset(&teacher, 0, sizeof teacher);
        if (net_create(&net, ops, &d, student) == 0 && net_create(&best, ops, &d, student) == 0 &&
            net_create(&teacher, ops, &dt, 0) == 0) {
            if (rc == 0 && resume_read_nets(&rf, &net, &best, &teacher) != 0)
                fuzz_ck_check_message();
            if (checkpoint_read_net(f, &net, "", 0) != 0) /* the file as a model */
                fuzz_ck_check_message();
        }
        net_free(&net);
        net_free(&best);
        net_free(&teacher);
    }
    resume_close(&rf);
    return 0;
}
