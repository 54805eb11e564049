#!/bin/sh
# bench/smtp.sh: SMTP accept rate, end-to-end time to Maildir and memory per connection,
# Postfix (peers-up.sh, 127.0.0.1:2525) against tcpserver + qmail-smtpd + qmail-queue
# (+ qmail-send, qmail-local, vdelivermail for the end-to-end figure), with the same
# workload: ../shared/bench/smtp_accept.sh, SMTP_BENCH_N messages (default 2000) of
# SMTP_BENCH_SIZE bytes (5000), one session per message, at concurrency 1 and 20, runs
# interleaved postfix/ours SMTP_BENCH_REPS times (default 3); then mem_per_conn.py with
# 20 held connections on each. Prints medians and the ratios ours/postfix.
#
# Our root is the hosting profile from scripts/setup-root (rcptcheck and mfcheck on; the
# sender bench@example.test is local, so no DNS is asked). Needs a release build.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
SB=${SHARED_BENCH:-$repo/../shared/bench}
BIN=${VQMAIL_BIN:-$("$repo/scripts/bin-dir" release || echo "$repo/target/release")}
REPS=${SMTP_BENCH_REPS:-3}
N=${SMTP_BENCH_N:-2000}
SIZE=${SMTP_BENCH_SIZE:-5000}
PORT=${SMTP_BENCH_PORT:-12625}
CONCS=${SMTP_BENCH_CONC:-1 20}

[ -x "$SB/smtp_accept.sh" ] || { echo "smtp bench: no $SB/smtp_accept.sh (set SHARED_BENCH)" >&2; exit 1; }
command -v tcpserver >/dev/null || { echo "smtp bench: tcpserver missing" >&2; exit 1; }
[ -x "$BIN/qmail-smtpd" ] || { echo "smtp bench: build first (make release)" >&2; exit 1; }

up() { python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 2).close()" "$1" 2>/dev/null; }
if ! up 2525; then
    echo "smtp bench: starting the peers (peers-up.sh)"
    "$SB/peers-up.sh" >/dev/null
fi

root=$(mktemp -d /tmp/vqmail-bench-smtp.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do kill -TERM "$p" 2>/dev/null || true; done
    sleep 0.5
    rm -rf "$root"
}
trap cleanup EXIT INT TERM
VQMAIL_BIN=$BIN VQMAIL_ME=bench.test "$repo/scripts/setup-root" "$root" >/dev/null
export QMAIL_HOME="$root/var/qmail" VPOPMAIL_HOME="$root/home/vpopmail"
"$VPOPMAIL_HOME/bin/vadddomain" example.test bench-postmaster-1 >/dev/null
"$VPOPMAIL_HOME/bin/vadduser" user@example.test pass >/dev/null
OUR_MD="$VPOPMAIL_HOME/domains/example.test/user/Maildir"
PF_MD=/tmp/peers/mail/example.test/user/Maildir

e2e=0
if [ -x "$QMAIL_HOME/bin/qmail-start" ]; then
    (cd "$QMAIL_HOME" && exec setsid "$QMAIL_HOME/bin/qmail-start" ./Maildir/ >"$root/qmail-send.log" 2>&1) &
    pids="$pids $!"
    e2e=1
else
    echo "smtp bench: no qmail-start in $BIN: accept rates only"
fi
setsid tcpserver -R -H -l localhost -c 100 -x "$VPOPMAIL_HOME/etc/tcp.smtp.cdb" 127.0.0.1 "$PORT" \
    "$QMAIL_HOME/bin/qmail-smtpd" bench.test "$VPOPMAIL_HOME/bin/vchkpw" /bin/true 2>"$root/tcpserver.log" &
pids="$pids $!"
i=0
until up "$PORT"; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "smtp bench: our server did not start" >&2; exit 1; }
    sleep 0.1
done

out="$root/results.jsonl"
for conc in $CONCS; do
    for r in $(seq "$REPS"); do
        for side in postfix ours; do
            if [ $side = postfix ]; then p=2525; md=$PF_MD; else p=$PORT; md=$OUR_MD; fi
            if [ $side = ours ] && [ $e2e = 0 ]; then md=""; fi
            if [ -n "$md" ]; then find "$md/new" "$md/cur" -type f -delete 2>/dev/null || true; fi
            bash "$SB/smtp_accept.sh" 127.0.0.1 "$p" "$N" "$conc" "$SIZE" $md |
                python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['side']='$side'; print(json.dumps(r))" >>"$out"
        done
    done
done
for side in postfix ours; do
    if [ $side = postfix ]; then p=2525; else p=$PORT; fi
    python3 "$SB/mem_per_conn.py" smtp 127.0.0.1 "$p" --n 20 |
        python3 -c "import json,sys; r=json.loads(sys.stdin.read()); r['side']='$side'; r['bench']='mem'; print(json.dumps(r))" >>"$out"
done

python3 - "$out" "$N" "$SIZE" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
n, size = sys.argv[2], sys.argv[3]
acc = [r for r in rows if r.get("bench") == "smtp_accept"]
print(f"SMTP accept, {n} x {size} B, one session per message (medians of interleaved runs)")
print("| conc | metric | postfix | ours | ours/postfix |\n|---:|---|---:|---:|---:|")
for conc in sorted({r["conc"] for r in acc}):
    for k in ("accept_mps", "e2e_mps", "e2e_s", "cpu_busy_pct"):
        v = {s: [r[k] for r in acc if r["conc"] == conc and r["side"] == s and isinstance(r.get(k), (int, float))]
             for s in ("postfix", "ours")}
        if not v["postfix"] or not v["ours"]:
            continue
        a, b = statistics.median(v["postfix"]), statistics.median(v["ours"])
        print(f"| {conc} | {k} | {a:g} | {b:g} | {b / a:.2f} |" if a else f"| {conc} | {k} | {a:g} | {b:g} | - |")
mem = {r["side"]: r for r in rows if r.get("bench") == "mem"}
print("\nMemory per held SMTP connection (20 connections, mid-transaction)")
keys = [k for k, v in mem.get("ours", {}).items() if isinstance(v, (int, float)) and k not in ("n",)]
print("| metric | postfix | ours |\n|---|---:|---:|")
for k in keys:
    print(f"| {k} | {mem.get('postfix', {}).get(k, '-')} | {mem['ours'][k]} |")
print("(accept_mps, e2e_mps: higher is better; e2e_s, cpu, memory: lower is better)")
PY
