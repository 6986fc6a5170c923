/* tests/test_cuda_smoke.c — runs the smoke kernel of kernels/cuda_device.cu on GPU 0 and checks every value;
 * prints the devices found. Exit 77 (skipped) without a GPU. */
#include <stdio.h>

#include "kernels/cuda_device.h"

int main(void)
{
    char desc[2048];
    int gpus = cuda_device_describe(desc, sizeof desc);
    printf("%s\n", desc);
    if (gpus == 0) {
        printf("no GPU: skipped\n");
        return 77;
    }
    int rc = cuda_device_smoke_test();
    printf("smoke kernel: %s\n", rc == 0 ? "ok" : rc == 77 ? "skipped" : "FAILED");
    return rc;
}
