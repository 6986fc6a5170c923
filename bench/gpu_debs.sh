#!/usr/bin/env bash
# bench/gpu_debs.sh — run HERE (a Debian machine with apt), before a GPU session: downloads the Debian packages of
# the C libraries debcm links (OpenBLAS's OpenMP build, jansson, zlib) into .gpu-debs/ (ignored by git). The GPU
# machine's image has nvcc and CMake but maybe not these, and reaches no network; the device tool carries the
# folder (`carry: [".gpu-debs"]`) and bench/gpu_check.sh unpacks it there when the system lacks the headers.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-debs
cd .gpu-debs
apt-get download libopenblas0-openmp libopenblas-openmp-dev libjansson4 libjansson-dev zlib1g-dev
ls -la
