#!/usr/bin/env bash
# bench/gpu_check.sh — everything that needs a GPU, in one run of under 10 minutes on a machine with one (the
# device tool's H200: `bash bench/gpu_check.sh`, carrying .gpu-debs from bench/gpu_debs.sh). In order:
#   1. build for sm_90 (Release), unpacking .gpu-debs/ into a private root first when the image lacks OpenBLAS or
#      jansson headers (nothing is installed, nothing is fetched);
#   2. the `cuda` tests (every op and a training step against the CPU backend) and the whole suite;
#   3. compute-sanitizer memcheck and racecheck on a short training run (one teacher and one student epoch on
#      `synth --scale tiny`, batch 64, so every kernel runs);
#   4. the epoch-throughput benchmark at the published sizes (`synth --scale tt150k`) on the CUDA backend, FP32
#      and TF32, the whole job (`debcm run`, 50 + 50 epochs) timed, and the GPU half of the PyTorch comparison
#      (bench/compare.py: debcm beside both forms of bench/torch_ref, when the image's python3 has CUDA torch);
#   5. a short table last: samples/s and ms per epoch per phase, the counted FP32 floor, device memory.
# Logs go to $OUT (the device tool's folder that comes back) when it is set, else to gpu-check-out/. Each step
# has its own time limit; a failed step is reported and the script goes on, exiting non-zero at the end.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/cuda/bin" # nvcc, compute-sanitizer
OUT_DIR="${OUT:-gpu-check-out}"
mkdir -p "$OUT_DIR"
JOBS="$(nproc)"
BUILD=build-gpu
FAILED=()
t_start=$(date +%s)

step() { # step NAME SECONDS COMMAND...: run with a limit, log to $OUT_DIR/NAME.log, remember failures
    local name="$1" limit="$2"
    shift 2
    local t0=$(date +%s)
    echo "== $name (limit ${limit}s)"
    timeout "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    local rc=$?
    echo "   rc $rc, $(( $(date +%s) - t0 )) s; last lines:"
    tail -n 6 "$OUT_DIR/$name.log" | sed 's/^/   | /'
    [ $rc -eq 0 ] || FAILED+=("$name (rc $rc)")
    return $rc
}

# ---- 1. build ------------------------------------------------------------------------------------------------
cmake_args=(-DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 -DDEBCM_FUZZ=OFF)
arch_dir="/usr/include/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
if { [ ! -f "$arch_dir/openblas-openmp/cblas.h" ] && [ ! -f /usr/include/cblas.h ]; } ||
   [ ! -f /usr/include/jansson.h ]; then
    if [ -d .gpu-debs ]; then
        ROOT=/tmp/debcm-sysroot
        rm -rf "$ROOT" && mkdir -p "$ROOT"
        for f in .gpu-debs/*.deb; do dpkg -x "$f" "$ROOT"; done
        ml="$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)"
        export PKG_CONFIG_PATH="$ROOT/usr/lib/$ml/pkgconfig:${PKG_CONFIG_PATH:-}"
        export PKG_CONFIG_SYSROOT_DIR="$ROOT"
        export LD_LIBRARY_PATH="$ROOT/usr/lib/$ml:$ROOT/usr/lib/$ml/openblas-openmp:${LD_LIBRARY_PATH:-}"
        cmake_args+=(-DDEBCM_SYSROOT="$ROOT" -DCMAKE_PREFIX_PATH="$ROOT/usr")
        echo "== libraries from .gpu-debs unpacked into $ROOT"
    else
        echo "== warning: no OpenBLAS/jansson headers and no .gpu-debs/ (run bench/gpu_debs.sh where apt works)"
    fi
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$OUT_DIR/gpu.txt"
step configure 120 cmake -S . -B "$BUILD" "${cmake_args[@]}" || { echo "configure failed"; exit 1; }
step build 300 cmake --build "$BUILD" -j "$JOBS" || { echo "build failed"; exit 1; }
"$BUILD/debcm" version | tee "$OUT_DIR/version.txt"

# ---- 2. tests --------------------------------------------------------------------------------------------------
step test-cuda 240 ctest --test-dir "$BUILD" -L cuda --output-on-failure
step test-all 240 ctest --test-dir "$BUILD" -j "$JOBS" --output-on-failure -LE cuda

# ---- 3. compute-sanitizer on a short run -------------------------------------------------------------------------
D=/tmp/debcm-gpu-data
"$BUILD/debcm" synth --scale tiny --out "$D/tiny" --force > /dev/null
short=(run "$D/tiny" --device cuda --teacher-epochs 1 --student-epochs 1 --batch-size 64)
if command -v compute-sanitizer > /dev/null; then
    step memcheck 150 compute-sanitizer --tool memcheck --error-exitcode 9 "$BUILD/debcm" "${short[@]}" \
        --out "$D/run-memcheck"
    step racecheck 150 compute-sanitizer --tool racecheck --error-exitcode 9 "$BUILD/debcm" "${short[@]}" \
        --out "$D/run-racecheck"
else
    echo "== compute-sanitizer not found"
    FAILED+=("compute-sanitizer missing")
fi

# ---- 4. benchmarks at the published sizes ---------------------------------------------------------------------
step synth-tt150k 120 "$BUILD/debcm" synth --scale tt150k --out "$D/tt150k" --force
step bench-fp32 180 "$BUILD/bench_epoch" "$D/tt150k" --device cuda --epochs 3
step bench-tf32 120 "$BUILD/bench_epoch" "$D/tt150k" --device cuda --epochs 3 --tf32
step whole-job 180 "$BUILD/debcm" run "$D/tt150k" --device cuda --out "$D/run-tt150k"
# the GPU half of the PyTorch comparison (issue 5): debcm and both forms of bench/torch_ref on the same data
if python3 -c "import torch; assert torch.cuda.is_available()" 2> /dev/null; then
    step compare-gpu 300 python3 bench/compare.py "$D/tt150k" --epochs 2 --device cuda --build "$BUILD" \
        --out "$OUT_DIR/compare"
else
    echo "== compare-gpu skipped: no python3 with CUDA torch"
fi

# ---- 5. the table ----------------------------------------------------------------------------------------------
{
    echo
    echo "== summary ($(( $(date +%s) - t_start )) s in all; GPU: $(head -2 "$OUT_DIR/gpu.txt" | tail -1))"
    for b in bench-fp32 bench-tf32; do
        [ -f "$OUT_DIR/$b.log" ] || continue
        echo "-- $b: phase steps samples ms/epoch (min..max) samples/s GFLOP/step GFLOP/s floor-ms floor%"
        grep -E '^(teacher|student) ' "$OUT_DIR/$b.log" | sed 's/^/   /'
        grep -E '^(ceiling|device memory|validation|  +student 100)' "$OUT_DIR/$b.log" | sed 's/^/   /'
    done
    if [ -f "$OUT_DIR/compare/compare.md" ]; then
        echo "-- PyTorch comparison (bench/compare.py, 2 epochs):"
        grep -E '^\| (teacher|student) epoch' "$OUT_DIR/compare/compare.md" | sed 's/^/   /'
    fi
    if [ -f "$OUT_DIR/whole-job.log" ]; then
        echo "-- whole job (debcm run, 50 + 50 epochs + test):"
        grep -E '^(teacher:|student:|  (10|25) )' "$OUT_DIR/whole-job.log" | sed 's/^/   /'
        grep -o '"total": *[0-9.]*' "$D/run-tt150k/report.json" 2>/dev/null | sed 's/^/   seconds /'
    fi
    if [ ${#FAILED[@]} -eq 0 ]; then echo "== all steps passed"; else printf '== FAILED: %s\n' "${FAILED[@]}"; fi
} | tee "$OUT_DIR/summary.txt"
[ ${#FAILED[@]} -eq 0 ]
