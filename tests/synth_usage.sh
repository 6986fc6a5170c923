#!/bin/sh
# tests/synth_usage.sh DEBCM WORKDIR — `debcm synth` refuses bad usage with status 2 and an unwritable output with
# status 1, each with exactly one line on stderr that says what is wrong; --help prints the usage on stdout, status 0.
# Exit 0 pass, 1 fail.
set -u
DEBCM=$1
WORK=$2
rm -rf "$WORK"
mkdir -p "$WORK" || exit 1
fails=0

# expect STATUS PATTERN ARGS...: the status, one stderr line matching PATTERN (grep -E), nothing written
expect() {
    want=$1 pattern=$2
    shift 2
    "$DEBCM" synth "$@" > "$WORK/out.txt" 2> "$WORK/err.txt"
    got=$?
    lines=$(wc -l < "$WORK/err.txt")
    if [ "$got" -ne "$want" ] || [ "$lines" -ne 1 ] || ! grep -Eq -- "$pattern" "$WORK/err.txt"; then
        echo "FAIL: debcm synth $*: status $got (want $want), $lines stderr line(s) (want 1 matching '$pattern'):"
        cat "$WORK/err.txt"
        fails=$((fails + 1))
    else
        echo "ok: debcm synth $* -> $got: $(cat "$WORK/err.txt")"
    fi
}

expect 2 "unknown scale 'huge'" --scale huge --out "$WORK/d1"
expect 2 "negatives \(60\) must be at most musics - 1 = 59" --scale tiny --negatives 60 --out "$WORK/d2"
expect 2 "negatives \(301\)" --scale small --negatives 301 --out "$WORK/d3"
expect 2 "genres \(61\) must be at most musics" --scale tiny --genres 61 --out "$WORK/d4"
expect 2 "--videos expects an integer" --scale tiny --videos 12x --out "$WORK/d5"
expect 2 "--videos expects an integer" --scale tiny --videos 0 --out "$WORK/d5"
expect 2 "videos must be between 10" --scale tiny --videos 9 --out "$WORK/d5"
expect 2 "--musics expects an integer" --scale tiny --musics -3 --out "$WORK/d5"
expect 2 "--bias expects a number in \[0, 1\]" --scale tiny --bias 1.5 --out "$WORK/d5"
expect 2 "--out ROOT is required" --scale tiny
expect 2 "unknown option '--colour'" --scale tiny --colour --out "$WORK/d6"
expect 2 "needs a value" --scale tiny --out
expect 2 "unexpected argument 'extra'" --scale tiny --out "$WORK/d7" extra
for d in d1 d2 d3 d4 d5 d6 d7; do
    if [ -e "$WORK/$d" ]; then echo "FAIL: a refused command created $WORK/$d"; fails=$((fails + 1)); fi
done

# unwritable output: a directory below a regular file cannot be created (even by root)
: > "$WORK/plainfile"
expect 1 "^debcm synth: error: .*$WORK/plainfile" --scale tiny --out "$WORK/plainfile/sub"
expect 1 "^debcm synth: error: .*not a directory" --scale tiny --out "$WORK/plainfile"

# the largest allowed negatives works (distinct negatives drawn from all the other musics)
if ! "$DEBCM" synth --scale tiny --negatives 59 --out "$WORK/ok" > "$WORK/out.txt" 2>&1; then
    echo "FAIL: --negatives 59 (musics - 1) refused:"
    cat "$WORK/out.txt"
    fails=$((fails + 1))
fi

if ! "$DEBCM" synth --help > "$WORK/out.txt" 2> "$WORK/err.txt" || ! grep -q "^usage: debcm synth" "$WORK/out.txt" ||
   [ -s "$WORK/err.txt" ]; then
    echo "FAIL: debcm synth --help: usage on stdout, status 0"
    fails=$((fails + 1))
fi

if [ "$fails" -ne 0 ]; then
    echo "synth_usage: $fails failure(s)"
    exit 1
fi
rm -rf "$WORK"
echo "synth_usage: pass"
exit 0
