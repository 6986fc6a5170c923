/* tests/fuzz/fuzz_config.c — libFuzzer target for the run config reader (engine/run_config.c), what `--resume`
 * reads from config.json and from the resume checkpoint: the input as JSON for each of the three commands. A
 * refusal must be one line that names the input; a config that is accepted must come back the same through
 * run_config_to_json and a second read (the writer and the reader agree on every value, bit for bit), and every
 * value must lie in its option's range (threads may also be 0, the default: unset). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/run_config.h"

#define FUZZ_CFG_NAME "fuzz-config.json"

static void fuzz_cfg_check_message(void)
{
    const char *m = debcm_last_error();
    if (!strstr(m, FUZZ_CFG_NAME) || strchr(m, '\n'))
        abort();
}

static int fuzz_cfg_equal(const run_config *a, const run_config *b)
{
    for (const run_option *o = run_options(); o->name; o++)
        if (!run_option_equal(a, b, o))
            return 0;
    return a->command == b->command && !strcmp(a->pgc, b->pgc) && !strcmp(a->data, b->data) &&
           !strcmp(a->teacher, b->teacher);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int cmd = 0; cmd < 3; cmd++) {
        run_config c, d;
        run_config_default(&c, (run_command)cmd);
        if (run_config_from_json(&c, (const char *)data, size, FUZZ_CFG_NAME) != 0) {
            fuzz_cfg_check_message();
            continue;
        }
        for (const run_option *o = run_options(); o->name; o++) {
            char text[64];
            run_option_value_text(&c, o, text, sizeof text); /* every value prints */
            if (o->kind == RUN_OPT_INT) {
                int64_t v = *(const int64_t *)(const void *)((const char *)&c + o->off);
                int unset_threads = o->off == offsetof(run_config, threads) && v == 0; /* the default: unset */
                if ((v < o->ilo || v > o->ihi) && !unset_threads)
                    abort();
            }
        }
        char *j = run_config_to_json(&c, cmd & 1);
        if (!j)
            abort();
        run_config_default(&d, (run_command)cmd);
        if (run_config_from_json(&d, j, strlen(j), FUZZ_CFG_NAME) != 0 || !fuzz_cfg_equal(&c, &d))
            abort(); /* what the writer wrote, the reader must read back the same */
        free(j);
    }
    return 0;
}
