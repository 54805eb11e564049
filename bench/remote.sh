#!/bin/sh
# bench/remote.sh: remote deliveries per second, qmail-remote to a local SMTP sink,
# at concurrency 1 and 20 (REMOTE_BENCH_N deliveries each, default 300; a 4 KB message,
# one recipient, plaintext). The sink is Postfix's smtp-sink (../shared/bench/sink.sh)
# when Postfix is installed, else a small asyncio SMTP sink in Python (which, being
# Python, may itself be the limit at concurrency 20; the output says which sink ran).
# Routing is control/smtproutes ":[127.0.0.1]:PORT", so no DNS is involved.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
SB=${SHARED_BENCH:-$repo/../shared/bench}
BIN=${VQMAIL_BIN:-$("$repo/scripts/bin-dir" release || echo "$repo/target/release")}
N=${REMOTE_BENCH_N:-300}
PORT=${REMOTE_BENCH_PORT:-12526}

[ -x "$BIN/qmail-remote" ] || { echo "remote bench: build first (make release)" >&2; exit 1; }

root=$(mktemp -d /tmp/vqmail-bench-remote.XXXXXX)
sinkpid=
usedsink=
cleanup() {
    if [ "$usedsink" = smtp-sink ]; then "$SB/sink.sh" stop 2>/dev/null || true; fi
    [ -n "$sinkpid" ] && kill -TERM "$sinkpid" 2>/dev/null || true
    rm -rf "$root"
}
trap cleanup EXIT INT TERM
VQMAIL_BIN=$BIN "$repo/scripts/setup-root" "$root" >/dev/null
export QMAIL_HOME="$root/var/qmail" VPOPMAIL_HOME="$root/home/vpopmail"
echo ":[127.0.0.1]:$PORT" > "$QMAIL_HOME/control/smtproutes"
echo bench.vqmail.test > "$QMAIL_HOME/control/helohost"

if [ -x /usr/sbin/smtp-sink ] && [ -x "$SB/sink.sh" ]; then
    "$SB/sink.sh" start "$PORT" 2>/dev/null
    usedsink=smtp-sink
else
    usedsink="python asyncio sink"
    python3 - "$PORT" > "$root/sink.port" <<'PY' &
import asyncio, sys

class Sink(asyncio.Protocol):
    def connection_made(self, t):
        self.t, self.buf, self.data = t, b"", False
        t.write(b"220 sink ESMTP\r\n")

    def data_received(self, b):
        self.buf += b
        while True:
            if self.data:
                i = self.buf.find(b"\r\n.\r\n")
                if i < 0:
                    self.buf = self.buf[-4:]
                    return
                self.buf, self.data = self.buf[i + 5:], False
                self.t.write(b"250 2.0.0 Ok: queued\r\n")
                continue
            i = self.buf.find(b"\r\n")
            if i < 0:
                return
            line, self.buf = self.buf[:i], self.buf[i + 2:]
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.t.write(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n")
            elif verb == b"DATA":
                self.data = True
                self.buf = b"\r\n" + self.buf
                self.t.write(b"354 go\r\n")
            elif verb == b"QUIT":
                self.t.write(b"221 bye\r\n")
                self.t.close()
                return
            else:
                self.t.write(b"250 ok\r\n")

async def main():
    srv = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", int(sys.argv[1]), backlog=256)
    print("up", flush=True)
    async with srv:
        await srv.serve_forever()

asyncio.run(main())
PY
    sinkpid=$!
    i=0
    while [ ! -s "$root/sink.port" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
fi

python3 - "$BIN/qmail-remote" "$N" "$usedsink" <<'PY'
import os, subprocess, sys, time, tempfile
from concurrent.futures import ThreadPoolExecutor

prog, n, sink = sys.argv[1], int(sys.argv[2]), sys.argv[3]
msg = tempfile.TemporaryFile()
msg.write(b"From: bench@vqmail.test\nTo: sink@remote.test\nSubject: bench\n\n" + b"x" * 76 + b"\n" * 1 + (b"y" * 76 + b"\n") * 52)
msg.flush()
path = "/proc/self/fd/%d" % msg.fileno()

def one(_):
    with open(path, "rb") as f:
        r = subprocess.run([prog, "remote.test", "bench@vqmail.test", "sink@remote.test"],
                           stdin=f, capture_output=True)
    return r.stdout.split(b"\0")[-2][:1] == b"K"

for c in (1, 20):
    t = time.monotonic()
    with ThreadPoolExecutor(c) as ex:
        ok = sum(ex.map(one, range(n)))
    dt = time.monotonic() - t
    print("remote deliveries/s at concurrency %2d: %7.1f  (%d/%d delivered, sink: %s)" % (c, ok / dt, ok, n, sink))
    if ok != n:
        sys.exit(1)
PY
