#!/bin/sh
# tests/synth_determinism.sh DEBCM WORKDIR — `debcm synth` is a pure function of its arguments: two runs with the
# same seed are byte-identical (every file; gen_stats.json but for its "seconds" line), whatever OMP_NUM_THREADS;
# another seed gives other data; an existing dataset is refused without --force and replaced with it.
# Exit 0 pass, 1 fail.
set -u
DEBCM=$1
WORK=$2
rm -rf "$WORK"
mkdir -p "$WORK" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# same_tree A B: every file of A is in B with the same bytes, and B has no other file
same_tree() {
    a=$1 b=$2
    (cd "$a" && find . -type f | sort) > "$WORK/list.a"
    (cd "$b" && find . -type f | sort) > "$WORK/list.b"
    if ! cmp -s "$WORK/list.a" "$WORK/list.b"; then
        echo "  file lists differ: $a vs $b"
        return 1
    fi
    while read -r f; do
        case "$f" in
        ./gen_stats.json)
            grep -v '"seconds"' "$a/$f" > "$WORK/js.a"
            grep -v '"seconds"' "$b/$f" > "$WORK/js.b"
            cmp -s "$WORK/js.a" "$WORK/js.b" || { echo "  differs: $f"; return 1; } ;;
        *) cmp -s "$a/$f" "$b/$f" || { echo "  differs: $f"; return 1; } ;;
        esac
    done < "$WORK/list.a"
    return 0
}

run() { # run DIR THREADS ARGS...
    dir=$1 threads=$2
    shift 2
    if ! OMP_NUM_THREADS=$threads "$DEBCM" synth --out "$dir" "$@" > "$WORK/out.txt" 2>&1; then
        cat "$WORK/out.txt"
        fail "debcm synth --out $dir $* (OMP_NUM_THREADS=$threads)"
    fi
}

# more videos than the preset, so that the row blocks of the projections spread over the threads
run "$WORK/a" 2 --scale tiny --seed 7 --videos 2000
run "$WORK/b" 2 --scale tiny --seed 7 --videos 2000
same_tree "$WORK/a" "$WORK/b" || fail "same seed, two runs: not byte-identical"
echo "seed 7, two runs: compared $(wc -l < "$WORK/list.a") files"

run "$WORK/t1" 1 --scale tiny --seed 7 --videos 2000
run "$WORK/t3" 3 --scale tiny --seed 7 --videos 2000
same_tree "$WORK/a" "$WORK/t1" || fail "OMP_NUM_THREADS=1 differs from 2"
same_tree "$WORK/a" "$WORK/t3" || fail "OMP_NUM_THREADS=3 differs from 2"
echo "OMP_NUM_THREADS 1, 2, 3: compared"

run "$WORK/c" 2 --scale tiny --seed 8 --videos 2000
for f in data_matching/visual_features_resnet_V.npy data_matching/train.npy data_matching/100neg/val.npy \
         data_pgc/mv_video_resnet_features.npy data_pgc/train.npy; do
    if cmp -s "$WORK/a/$f" "$WORK/c/$f"; then fail "seeds 7 and 8 give the same $f"; fi
done
echo "seed 8 differs from seed 7"

# an existing dataset: refused without --force (status 1, one line), replaced with it
if "$DEBCM" synth --scale tiny --seed 7 --videos 2000 --out "$WORK/a" > "$WORK/out.txt" 2> "$WORK/err.txt"; then
    fail "overwrote an existing dataset without --force"
elif [ "$(wc -l < "$WORK/err.txt")" -ne 1 ] || ! grep -q -- "--force" "$WORK/err.txt"; then
    cat "$WORK/err.txt"
    fail "refusal of an existing dataset is not one line naming --force"
fi
run "$WORK/c" 1 --scale tiny --seed 7 --videos 2000 --force
same_tree "$WORK/a" "$WORK/c" || fail "--force over a seed-8 dataset did not give the seed-7 files"
echo "existing dataset: refused, then replaced with --force"

if [ "$fails" -ne 0 ]; then
    echo "synth_determinism: $fails failure(s)"
    exit 1
fi
rm -rf "$WORK"
echo "synth_determinism: pass"
exit 0
