#!/usr/bin/env bash
# .ci/deps.sh — installs the Debian packages that building and testing debcm need, and nothing when they are
# all there already. Uses sudo when not run as root. The CUDA toolkit is not installed here: the CUDA parts are
# built whenever nvcc is found (/usr/local/cuda/bin is searched too). OpenBLAS: the OpenMP build, which shares
# its threads with the engine's OpenMP loops (the pthreads build fights them for the cores).
# gnuplot-nox: the plots of the run report (debcm report; skipped with a warning without it).
set -euo pipefail
packages=(build-essential cmake pkg-config libopenblas-openmp-dev zlib1g-dev libjansson-dev
          python3 python3-numpy python3-torch clang libclang-rt-dev gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" > /dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
