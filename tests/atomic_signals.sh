#!/bin/sh
# tests/atomic_signals.sh DEBCM WORKDIR — `debcm synth` killed in the middle of writing a file (SIGTERM, SIGINT,
# SIGHUP) dies of that signal (status 128+signo: 143, 130, 129) and leaves no temporary file (*.tmp.*) anywhere
# under its output. The run is polled until a temporary file exists, then signalled. Asynchronous commands of a
# non-interactive shell start with SIGINT ignored (and debcm keeps an ignored signal ignored, like nohup), so the
# SIGINT run is started through `env --default-signal=INT`; without that option (coreutils < 8.31) that case is
# skipped. Exit 0 pass, 1 fail.
set -u
DEBCM=$1
WORK=$2
rm -rf "$WORK"
mkdir -p "$WORK" || exit 1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

# kill_mid_write SIGNAL WANT_STATUS [launcher...]: start synth, wait for a temporary file, send SIGNAL
kill_mid_write() {
    sig=$1 want=$2
    shift 2
    out="$WORK/$sig"
    # ~170 MB (20,000 x 2,048 float32 features): a second or two, files being written most of that time
    "$@" "$DEBCM" synth --scale small --videos 20000 --out "$out" > "$WORK/out.txt" 2> "$WORK/err.txt" &
    pid=$!
    tries=0
    seen=
    while [ -z "$seen" ]; do
        seen=$(find "$out" -name '*.tmp.*' 2> /dev/null | head -n 1)
        [ -n "$seen" ] && break
        tries=$((tries + 1))
        if ! kill -0 "$pid" 2> /dev/null || [ "$tries" -gt 6000 ]; then
            wait "$pid"
            fail "SIG$sig: no temporary file seen before the run ended (status $?)"
            return
        fi
        sleep 0.01
    done
    kill -s "$sig" "$pid"
    wait "$pid"
    got=$?
    left=$(find "$out" -name '*.tmp.*' | wc -l)
    if [ "$got" -ne "$want" ]; then
        fail "SIG$sig: exit status $got, want $want"
        cat "$WORK/err.txt"
    fi
    if [ "$left" -ne 0 ]; then
        fail "SIG$sig: $left temporary file(s) left:"
        find "$out" -name '*.tmp.*'
    fi
    [ "$got" -eq "$want" ] && [ "$left" -eq 0 ] &&
        echo "ok: SIG$sig while writing ${seen#"$out"/} -> status $got, no temporary file left"
}

kill_mid_write TERM 143
kill_mid_write HUP 129
if env --default-signal=INT true 2> /dev/null; then
    kill_mid_write INT 130 env --default-signal=INT
else
    echo "skipped: SIGINT case (env has no --default-signal to undo the shell's SIG_IGN)"
fi

if [ "$fails" -ne 0 ]; then
    echo "atomic_signals: $fails failure(s)"
    exit 1
fi
rm -rf "$WORK"
echo "atomic_signals: pass"
exit 0
