#!/bin/sh
# tests/synth_failures.sh DEBCM WORKDIR — `debcm synth` that cannot finish leaves its output as it found it, and
# says why in one line naming the path: a full disk (a file size limit with SIGXFSZ ignored, on the first file
# and on a later one; a 2 MB tmpfs when this user may mount one) removes the files and directories the run made,
# keeps what was there, and a retry without --force then works; a read-only target (a read-only tmpfs when
# mountable, else a mode-555 directory for a non-root user) is reported where something must be created, not as a
# failed removal of a file that does not exist; a config far too large for memory is refused at once with its
# size and nothing created; --out under a ~2,000-character path works and one longer than PATH_MAX is "path too
# long". Exit 0 pass, 1 fail.
set -u
DEBCM=$1
WORK=$2
MNT="$WORK/mnt"
mounted=
cleanup() { [ -n "$mounted" ] && umount "$MNT" 2> /dev/null; mounted=; }
trap cleanup EXIT
rm -rf "$WORK"
mkdir -p "$WORK" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# run STATUS PATTERN ARGS...: debcm synth ARGS exits STATUS with one stderr line matching PATTERN (grep -E)
run() {
    want=$1 pattern=$2
    shift 2
    "$DEBCM" synth "$@" > "$WORK/out.txt" 2> "$WORK/err.txt"
    got=$?
    lines=$(wc -l < "$WORK/err.txt")
    bad=0
    [ "$got" -ne "$want" ] && bad=1
    if [ "$want" -ne 0 ] && { [ "$lines" -ne 1 ] || ! grep -Eq -- "$pattern" "$WORK/err.txt"; }; then bad=1; fi
    if [ "$bad" -ne 0 ]; then
        fail "debcm synth $*: status $got (want $want), $lines stderr line(s) (want one matching '$pattern'):"
        cat "$WORK/err.txt"
        return 1
    fi
    [ "$want" -ne 0 ] && echo "ok: $(cut -c1-200 "$WORK/err.txt")"
    return 0
}

# limited BLOCKS ARGS...: run under a file size limit of BLOCKS blocks (512 bytes in dash, 1024 in bash: the sizes
# below work with either), SIGXFSZ ignored (write() then fails with EFBIG)
limited() {
    blocks=$1
    shift
    (trap '' XFSZ; ulimit -f "$blocks" && exec "$DEBCM" synth "$@") > "$WORK/out.txt" 2> "$WORK/err.txt"
}

# tree DIR: what is under DIR, one path a line
tree() { (cd "$1" && find . | sort); }

# --- a full disk -------------------------------------------------------------------------------------------------
mkdir -p "$WORK/fs"
limited 2048 --scale small --out "$WORK/fs/new/root"
st=$?
if [ $st -ne 1 ] || ! grep -q "File too large" "$WORK/err.txt" ||
   ! grep -q "$WORK/fs/new/root/data_pgc/" "$WORK/err.txt"; then
    fail "first file over the limit: status $st"; cat "$WORK/err.txt"
fi
[ -z "$(ls -A "$WORK/fs")" ] || { fail "first file over the limit: left $(tree "$WORK/fs" | tr '\n' ' ')"; }

# the limit hit on a later file (15 or 30 MB: the 9.8 MB PGC features fit, the 65 MB UGC features do not): the
# PGC files written go too; what was there before stays
mkdir -p "$WORK/fs/kept/data_pgc" && : > "$WORK/fs/kept/notes.txt"
tree "$WORK/fs/kept" > "$WORK/before.txt"
limited 30000 --scale small --videos 8000 --out "$WORK/fs/kept" --force
st=$?
if [ $st -ne 1 ] || ! grep -q "visual_features_resnet_V.npy.*File too large" "$WORK/err.txt"; then
    fail "later file over the limit: status $st"; cat "$WORK/err.txt"
fi
tree "$WORK/fs/kept" > "$WORK/after.txt"
if ! cmp -s "$WORK/before.txt" "$WORK/after.txt"; then
    fail "later file over the limit: the tree changed:"
    diff "$WORK/before.txt" "$WORK/after.txt"
fi
echo "ok: file size limit, first and later file: output as before"

limited 30000 --scale small --videos 8000 --out "$WORK/fs/retry"
run 0 "" --scale small --out "$WORK/fs/retry" && echo "ok: retry after a failed run, without --force"

# a small tmpfs that fills up, when mounting is allowed (root, or a container that lets us)
mkdir -p "$MNT"
if mount -t tmpfs -o size=2m tmpfs "$MNT" 2> /dev/null; then
    mounted=1
    run 1 "No space left on device" --scale small --out "$MNT/ds"
    [ -z "$(ls -A "$MNT")" ] || fail "full tmpfs: left $(tree "$MNT" | tr '\n' ' ')"
    run 0 "" --scale tiny --out "$MNT/ds" && echo "ok: the tiny dataset fits afterwards, without --force"
    cleanup
else
    echo "skipped: full tmpfs case (cannot mount a tmpfs here)"
fi

# --- a read-only target --------------------------------------------------------------------------------------------
if mount -t tmpfs -o ro,size=1m tmpfs "$MNT" 2> /dev/null; then
    mounted=1
    run 1 "cannot create directory '$MNT/data_pgc': Read-only file system" --scale tiny --out "$MNT" --force
    run 1 "cannot create directory '$MNT/sub': Read-only file system" --scale tiny --out "$MNT/sub"
    cleanup
elif [ "$(id -u)" -ne 0 ]; then
    mkdir -p "$WORK/ro" && chmod 555 "$WORK/ro"
    run 1 "cannot create directory '$WORK/ro/data_pgc': Permission denied" --scale tiny --out "$WORK/ro" --force
    chmod 755 "$WORK/ro"
else
    echo "skipped: read-only target (root, and no read-only mount allowed)"
fi
if grep -q "cannot remove" "$WORK/err.txt"; then fail "a read-only target is reported as a failed removal"; fi

# --- too large for memory: refused before anything is written ---------------------------------------------------
run 1 "needs about .* GiB of memory \(the video features alone: 1000000000 x 1048576 float32" \
    --scale tiny --dim-v 1048576 --videos 1000000000 --out "$WORK/huge"
[ -e "$WORK/huge" ] && fail "a config refused for its size created $WORK/huge"

# --- long paths --------------------------------------------------------------------------------------------------
name=$(printf '%0200d' 0)
long="$WORK/long"
while [ ${#long} -lt 1800 ]; do long="$long/$name"; done
mkdir -p "$long" || fail "mkdir -p of a ${#long}-character path"
run 0 "" --scale tiny --out "$long/ds" && [ -f "$long/ds/gen_stats.json" ] &&
    echo "ok: --out of $(printf '%s' "$long/ds" | wc -c) characters"
toolong=$long
while [ ${#toolong} -le 4200 ]; do toolong="$toolong/$name"; done
run 1 "path too long \([0-9]+ bytes; at most [0-9]+\)" --scale tiny --out "$toolong"

if [ "$fails" -ne 0 ]; then
    echo "synth_failures: $fails failure(s)"
    exit 1
fi
rm -rf "$WORK"
echo "synth_failures: pass"
exit 0
