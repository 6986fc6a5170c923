#!/usr/bin/env bash
# tests/run.sh — the test command of README.md (and of CI, through .ci/run): installs what is missing
# (.ci/deps.sh), then
#   1. the release build (gcc; CUDA included when nvcc is found) and its whole CTest suite;
#   2. a clang build with AddressSanitizer + UndefinedBehaviorSanitizer and the libFuzzer targets, and the whole
#      suite again under it, each fuzzer running DEBCM_FUZZ_SECONDS (default 20) from its seed corpus.
# Exits non-zero when anything fails. Tests that need a GPU report "skipped" on machines without one.
set -uo pipefail
cd "$(dirname "$0")/.."
bash .ci/deps.sh || exit 1
if ! command -v nvcc > /dev/null 2>&1 && [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi
jobs=$(nproc 2> /dev/null || echo 2)
status=0

echo "== release build (build/) =="
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j "$jobs" || exit 1
ctest --test-dir build --output-on-failure -j "$jobs" || status=1

echo "== ASan + UBSan build with fuzzers (build-asan/) =="
cmake -S . -B build-asan -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DDEBCM_SANITIZE=ON -DDEBCM_FUZZ=ON \
      -DDEBCM_CUDA=OFF -DDEBCM_FUZZ_SECONDS="${DEBCM_FUZZ_SECONDS:-20}" && cmake --build build-asan -j "$jobs" || exit 1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-asan --output-on-failure -j "$jobs" || status=1

[ $status -eq 0 ] && echo "tests/run.sh: all suites passed" || echo "tests/run.sh: FAILURES above"
exit $status
