#!/bin/sh
# bench/pop3.sh: the POP3 workload of ../shared/bench/pop3_bench.py against Dovecot
# (peers-up.sh, 127.0.0.1:1110) and against our chain under tcpserver
# (qmail-popup + vchkpw + qmail-pop3d), on the same mailbox: 1000 messages of 5 KB made by
# mkmaildir.py with the same seed. Phase A: login, STAT, LIST, RETR all, QUIT; phase B:
# many short sessions (login, STAT, QUIT). Runs A/B interleaved POP3_BENCH_REPS times
# (default 3) and prints the medians of both and the ratio ours/dovecot.
#
# The poll limit (control/pop3interval, 60 s in the hosting profile) would refuse the
# short-session workload after its first login, so this bench root sets it to 0.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
SB=${SHARED_BENCH:-$repo/../shared/bench}
BIN=${VQMAIL_BIN:-$("$repo/scripts/bin-dir" release || echo "$repo/target/release")}
REPS=${POP3_BENCH_REPS:-3}
PORT=${POP3_BENCH_PORT:-12110}
SESSIONS=${POP3_BENCH_SESSIONS:-200}

command -v tcpserver >/dev/null || { echo "pop3 bench: tcpserver missing" >&2; exit 1; }
[ -x "$BIN/qmail-popup" ] && [ -x "$BIN/vchkpw" ] || { echo "pop3 bench: build first (make release)" >&2; exit 1; }

up() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2).close()" "$1" 2>/dev/null; }
if ! up 1110; then
    echo "pop3 bench: starting the peers (peers-up.sh)"
    "$SB/peers-up.sh" >/dev/null
fi

root=$(mktemp -d /tmp/vqmail-bench-pop3.XXXXXX)
pid=
cleanup() {
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    rm -rf "$root"
}
trap cleanup EXIT INT TERM
VQMAIL_BIN=$BIN "$repo/scripts/setup-root" "$root" >/dev/null
export QMAIL_HOME="$root/var/qmail" VPOPMAIL_HOME="$root/home/vpopmail"
"$VPOPMAIL_HOME/bin/vadddomain" example.test bench-postmaster-1 >/dev/null
"$VPOPMAIL_HOME/bin/vadduser" pop@example.test pass >/dev/null
echo 0 > "$QMAIL_HOME/control/pop3interval"
echo "pop3 bench: control/pop3interval set to 0 in the bench root (the poll limit would refuse the short sessions)"
python3 "$SB/mkmaildir.py" "$VPOPMAIL_HOME/domains/example.test/pop/Maildir" 1000 5000 --seed 1 >/dev/null

tcpserver -R -H -l localhost 127.0.0.1 "$PORT" "$QMAIL_HOME/bin/qmail-popup" bench.test \
    "$VPOPMAIL_HOME/bin/vchkpw" "$QMAIL_HOME/bin/qmail-pop3d" Maildir 2>"$root/tcpserver.log" &
pid=$!
i=0
until up "$PORT"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "pop3 bench: our server did not start" >&2; exit 1; }
    sleep 0.1
done

out="$root/results.jsonl"
for r in $(seq "$REPS"); do
    for side in dovecot ours; do
        if [ $side = dovecot ]; then p=1110; else p=$PORT; fi
        python3 "$SB/pop3_bench.py" 127.0.0.1 "$p" pop@example.test pass --expect 1000 --sessions "$SESSIONS" |
            python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['side']='$side'; print(json.dumps(r))" >>"$out"
    done
done

python3 - "$out" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
keys = ["login_ms", "stat_list_ms", "retr_all_s", "retr_msgs_per_s", "full_session_s",
        "session_ms_median", "session_ms_p90", "sessions_per_s"]
med = {s: {k: statistics.median(r[k] for r in rows if r["side"] == s) for k in keys} for s in ("dovecot", "ours")}
print(f"POP3, 1000 x 5 KB, {len([r for r in rows if r['side'] == 'ours'])} interleaved runs each (medians)")
print("| metric | dovecot | ours | ours/dovecot |\n|---|---:|---:|---:|")
for k in keys:
    a, b = med["dovecot"][k], med["ours"][k]
    print(f"| {k} | {a:g} | {b:g} | {b / a:.2f} |" if a else f"| {k} | {a:g} | {b:g} | - |")
print("(times: lower is better; *_per_s: higher is better)")
PY
