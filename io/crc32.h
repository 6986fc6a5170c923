/* io/crc32.h — the CRC-32 (zlib's, the one of ZIP and PNG) of a buffer of any length. zlib counts bytes in a
 * 32-bit uInt, so a feature matrix of several GB has to be fed in pieces; this is that loop, shared by the
 * checkpoints' content checksum (io/safetensors.c) and the data fingerprint (io/dataset_stats.c), whose pass over
 * every feature value runs on all the cores. */
#ifndef DEBCM_IO_CRC32_H
#define DEBCM_IO_CRC32_H

#include <stdint.h>

/* crc continued over the n bytes at p (p may be NULL when n is 0); start from 0. */
uint32_t crc32_update(uint32_t crc, const void *p, uint64_t n);

/* The same number, computed by OpenMP threads over pieces of 16 MiB joined with crc32_combine: a pass over
 * gigabytes of features at the speed of the cores together. */
uint32_t crc32_update_parallel(uint32_t crc, const void *p, uint64_t n);

#endif
