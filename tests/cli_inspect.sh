#!/bin/sh
# tests/cli_inspect.sh — `debcm` as a user runs it: --help everywhere, usage errors (exit 2), the synth →
# inspect round trip (text and JSON agree with what synth says it wrote), and broken datasets (exit 1 with one
# line on stderr that names the file). Usage: cli_inspect.sh PATH/TO/debcm
set -u
debcm=$1
tmp=$(mktemp -d /tmp/debcm-cli-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fail=1; }
# Find a python3 for JSON parsing (any will do: only the json module is used).
py=$(command -v python3 || command -v /usr/bin/python3)

for cmd in "" inspect synth version; do
  if "$debcm" $cmd --help > "$tmp/help" 2>&1 && grep -q "usage: debcm" "$tmp/help"; then ok "debcm $cmd --help"; else bad "debcm $cmd --help"; fi
done
"$debcm" frobnicate > /dev/null 2> "$tmp/c.err"; [ $? -eq 2 ] && [ "$(wc -l < "$tmp/c.err")" -eq 1 ] && ok "unknown command: exit 2, one line" || bad "unknown command"
"$debcm" > /dev/null 2> "$tmp/c.err"; [ $? -eq 2 ] && [ "$(wc -l < "$tmp/c.err")" -eq 1 ] && ok "no command: exit 2, one line" || bad "no command"
"$debcm" inspect > /dev/null 2>&1; [ $? -eq 2 ] && ok "inspect without a dataset exits 2" || bad "inspect usage exit"
"$debcm" inspect --bogus x > /dev/null 2>&1; [ $? -eq 2 ] && ok "unknown option exits 2" || bad "unknown option exit"

"$debcm" synth --scale tiny --seed 7 --out "$tmp/ds" > "$tmp/synth.out" 2>&1 || { bad "synth tiny"; cat "$tmp/synth.out"; }
if "$debcm" inspect "$tmp/ds" > "$tmp/inspect.txt" 2> "$tmp/inspect.err"; then ok "inspect exits 0 on a clean dataset"; else bad "inspect on a clean dataset"; cat "$tmp/inspect.txt" "$tmp/inspect.err"; fi
grep -q "problems         none" "$tmp/inspect.txt" && ok "no problems reported" || bad "problems reported on clean data"
"$debcm" inspect --pgc "$tmp/ds/data_pgc" --data "$tmp/ds/data_matching" --json > "$tmp/inspect.json" || bad "inspect --json"
if "$py" - "$tmp/inspect.json" "$tmp/ds/gen_stats.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); g = json.load(open(sys.argv[2]))
a = g.get("args", g)
def want(x, y, what):
    if x != y:
        print("mismatch", what, x, y); sys.exit(1)
want(r["ok"], True, "ok")
want(r["errors"], 0, "errors")
want(r["ugc"]["train_rows"], g["train"], "train rows")
want(r["ugc"]["val_rows"], g["val"], "val rows")
want(r["ugc"]["test_rows"], g["test"], "test rows")
want(r["pgc"]["train_pairs"], g["pgc_train"], "pgc train")
want(r["pgc"]["val_pairs"], g["pgc_val"], "pgc val")
want(r["ugc"]["musics"], a["musics"], "musics")
want(r["ugc"]["genres"], a["genres"], "genres")
want(r["ugc"]["dim_v"], a["dim_v"], "dim_v")
want(r["ugc"]["val_negatives_per_row"], a["num_neg"], "negatives")
want(r["features_memory_mapped"], 6, "mapped")
if abs(r["ugc"]["top1pct_label_share"] - g["top1pct_music_share_of_train_labels"]) > 1e-9:
    print("top1% share", r["ugc"]["top1pct_label_share"], g["top1pct_music_share_of_train_labels"]); sys.exit(1)
PY
then ok "inspect --json agrees with gen_stats.json"; else bad "synth -> inspect round trip"; fi

# broken datasets: exit 1, one line on stderr naming the file
cp -r "$tmp/ds" "$tmp/broken1"
rm "$tmp/broken1/data_matching/user_prior_mean.npy"
"$debcm" inspect "$tmp/broken1" > "$tmp/b1.out" 2> "$tmp/b1.err"; rc=$?
[ $rc -eq 1 ] && ok "missing file exits 1" || bad "missing file exit status $rc"
[ "$(wc -l < "$tmp/b1.err")" -eq 1 ] && grep -q "user_prior_mean.npy" "$tmp/b1.err" && ok "missing file: one line naming it" || { bad "missing file message"; cat "$tmp/b1.err"; }
grep -q "error: .*user_prior_mean.npy" "$tmp/b1.out" && ok "inspect lists the problem" || bad "problem not listed"

cp -r "$tmp/ds" "$tmp/broken2"
printf 'not a numpy file at all' > "$tmp/broken2/data_pgc/val.npy"
"$debcm" inspect --json "$tmp/broken2" > "$tmp/b2.json" 2> "$tmp/b2.err"; rc=$?
[ $rc -eq 1 ] && ok "garbage file exits 1" || bad "garbage file exit status $rc"
grep -q "data_pgc/val.npy" "$tmp/b2.err" && ok "garbage file named" || { bad "garbage file message"; cat "$tmp/b2.err"; }
"$py" -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if (not r['ok'] and r['errors']>=1 and 'val.npy' in r['problems'][0]['message']) else 1)" "$tmp/b2.json" \
  && ok "JSON lists the problem" || bad "JSON problem list"

"$debcm" inspect "$tmp/does-not-exist" > /dev/null 2> "$tmp/b3.err"; rc=$?
[ $rc -eq 1 ] && grep -q "does-not-exist" "$tmp/b3.err" && ok "missing root exits 1 naming it" || bad "missing root ($rc)"

# usage errors: exit 2 and exactly one line on stderr
for args in "--bogus" "ROOT extra" "--pgc" "--json=1" "" ; do
  if [ "$args" = "ROOT extra" ]; then set -- "$tmp/ds" extra; elif [ -z "$args" ]; then set -- ""; else set -- $args; fi
  "$debcm" inspect "$@" > /dev/null 2> "$tmp/u.err"; rc=$?
  [ $rc -eq 2 ] && [ "$(wc -l < "$tmp/u.err")" -eq 1 ] && ok "usage error '$args': exit 2, one line" \
    || { bad "usage error '$args' (exit $rc)"; cat "$tmp/u.err"; }
done
"$debcm" inspect "$tmp/ds" --pgc "$tmp/ds/data_pgc" > /dev/null 2>&1; [ $? -eq 2 ] && ok "ROOT and --pgc: exit 2" || bad "ROOT and --pgc"

# a ROOT that is a file: one clear line
"$debcm" inspect "$tmp/ds/gen_stats.json" > /dev/null 2> "$tmp/f.err"; rc=$?
[ $rc -eq 1 ] && [ "$(wc -l < "$tmp/f.err")" -eq 1 ] && grep -q "expected a directory" "$tmp/f.err" && ok "ROOT a file" || { bad "ROOT a file ($rc)"; cat "$tmp/f.err"; }

# a path that is not UTF-8 still gives valid JSON that names it
odd=$(printf "$tmp/odd\377name")
cp -r "$tmp/ds" "$odd"
"$debcm" inspect --json "$odd" > "$tmp/odd.json" 2>&1; rc=$?
[ $rc -eq 0 ] && "$py" -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if 'odd\\\\xffname' in r['pgc_dir'] else 1)" "$tmp/odd.json" \
  && ok "non-UTF-8 path in JSON" || { bad "non-UTF-8 path in JSON ($rc)"; head -5 "$tmp/odd.json"; }
rm "$odd/data_matching/user_prior_mean.npy"
"$debcm" inspect --json "$odd" > "$tmp/odd2.json" 2> /dev/null; rc=$?
[ $rc -eq 1 ] && "$py" -c "import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if 'user_prior_mean.npy' in r['problems'][0]['message'] else 1)" "$tmp/odd2.json" \
  && ok "non-UTF-8 path in a JSON problem" || bad "non-UTF-8 path in a JSON problem ($rc)"

# output that cannot be written is a failure
if [ -w /dev/full ]; then
  "$debcm" inspect "$tmp/ds" > /dev/full 2> "$tmp/full.err"; rc=$?
  [ $rc -eq 1 ] && grep -q "writing to standard output" "$tmp/full.err" && ok "stdout full: exit 1" || bad "stdout full ($rc)"
fi

[ $fail -eq 0 ] && echo "cli_inspect: all passed" || echo "cli_inspect: FAILED"
exit $fail
