#!/bin/sh
# tests/shared_mini_inspect.sh — `debcm inspect` on ../shared/data/debcm-mini, the sample dataset written by
# NumPy itself: the counts of its README. Exit 77 (skipped) when the directory is absent.
# Usage: shared_mini_inspect.sh PATH/TO/debcm DIR
set -u
debcm=$1; dir=$2
[ -d "$dir" ] || { echo "no $dir: skipped"; exit 77; }
out=$("$debcm" inspect "$dir") || { echo "FAIL: inspect exited non-zero"; echo "$out"; exit 1; }
echo "$out"
fail=0
for want in "1,600 train / 200 val / 200 test" "1,080 train / 120 val" "musics         300, D_m 128 + 128" \
            "genres         6" "D_v 2,048" "negatives/row  100 val, 100 test" "problems         none"; do
  echo "$out" | grep -qF "$want" || { echo "FAIL: missing '$want'"; fail=1; }
done
exit $fail
