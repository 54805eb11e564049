#!/bin/sh
# bench/queue.sh: local deliveries per second, from injection to the user's Maildir, with
# every fsync in place (qmail-queue: message, envelope, todo link; qmail-send: info and
# local files and their directories; qmail-local/vdelivermail: the Maildir file).
#
# A root made by setup-root with example.test and user@example.test (vadddomain,
# vadduser); qmail-start ./Maildir/ runs; QUEUE_BENCH_N messages of QUEUE_BENCH_SIZE
# bytes (default 1000 x 5 KB) are injected by QUEUE_BENCH_CONC parallel injectors
# (default 4) with sendmail (or qmail-inject, or qmail-queue when those are not built);
# the clock stops when the last one is in Maildir/new. Runs QUEUE_BENCH_REPS times
# (default 3) and prints one JSON line per run and the median.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BIN=${VQMAIL_BIN:-$("$repo/scripts/bin-dir" release || echo "$repo/target/release")}
N=${QUEUE_BENCH_N:-1000}
SIZE=${QUEUE_BENCH_SIZE:-5000}
CONC=${QUEUE_BENCH_CONC:-4}
REPS=${QUEUE_BENCH_REPS:-3}

[ -x "$BIN/qmail-queue" ] && [ -x "$BIN/qmail-start" ] && [ -x "$BIN/qmail-local" ] \
    || { echo "queue bench: build first (make release)" >&2; exit 1; }

root=
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    [ -n "$root" ] && rm -rf "$root"
    pid=; root=
}
trap cleanup EXIT INT TERM

run_once() {
    root=$(mktemp -d /tmp/vqmail-bench-queue.XXXXXX)
    VQMAIL_BIN=$BIN "$repo/scripts/setup-root" "$root" >/dev/null
    export QMAIL_HOME="$root/var/qmail" VPOPMAIL_HOME="$root/home/vpopmail"
    "$VPOPMAIL_HOME/bin/vadddomain" example.test bench-postmaster-1 >/dev/null
    "$VPOPMAIL_HOME/bin/vadduser" user@example.test bench-pass-1 >/dev/null
    md="$VPOPMAIL_HOME/domains/example.test/user/Maildir/new"
    msg="$root/msg"
    python3 -c "import sys; n=int(sys.argv[1]); sys.stdout.write('From: bench@example.test\nTo: user@example.test\nSubject: bench\n\n' + ('x'*75 + '\n') * max(1, n // 76))" "$SIZE" > "$msg"
    printf 'Fbench@example.test\0Tuser@example.test\0\0' > "$root/env"
    "$QMAIL_HOME/bin/qmail-start" ./Maildir/ 2>"$root/send.log" &
    pid=$!
    if [ -x "$QMAIL_HOME/bin/sendmail" ]; then
        inject="$QMAIL_HOME/bin/sendmail -f bench@example.test user@example.test < $msg"; via=sendmail
    elif [ -x "$QMAIL_HOME/bin/qmail-inject" ]; then
        inject="$QMAIL_HOME/bin/qmail-inject -fbench@example.test user@example.test < $msg"; via=qmail-inject
    else
        inject="$QMAIL_HOME/bin/qmail-queue < $msg 1< $root/env"; via=qmail-queue
    fi
    t0=$(date +%s.%N)
    seq "$N" | xargs -P "$CONC" -I{} sh -c "$inject" || { echo "queue bench: injection failed" >&2; return 1; }
    t1=$(date +%s.%N)
    deadline=$(( $(date +%s) + 600 ))
    while [ "$(ls "$md" | wc -l)" -lt "$N" ]; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "queue bench: timed out" >&2; return 1; }
        sleep 0.05
    done
    t2=$(date +%s.%N)
    python3 -c "import sys; n,c,s,v=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3]),sys.argv[4]; t0,t1,t2=map(float,sys.argv[5:]); print('{\"bench\": \"queue\", \"via\": \"%s\", \"n\": %d, \"conc\": %d, \"size\": %d, \"inject_per_s\": %.1f, \"delivered_per_s\": %.1f}' % (v,n,c,s,n/(t1-t0),n/(t2-t0)))" "$N" "$CONC" "$SIZE" "$via" "$t0" "$t1" "$t2"
    cleanup
}

out=$(mktemp)
i=0
while [ $i -lt "$REPS" ]; do
    run_once | tee -a "$out"
    i=$((i + 1))
done
python3 -c "
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print('queue: local deliveries per second (median of %d): %.1f (injection %.1f/s)' % (
    len(runs), statistics.median(r['delivered_per_s'] for r in runs),
    statistics.median(r['inject_per_s'] for r in runs)))
" "$out"
rm -f "$out"
