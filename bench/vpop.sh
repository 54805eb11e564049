#!/bin/sh
# bench/vpop.sh: the vpopmail admin tools at hosting scale.
#
#   1. the time to add 10,000 users to one domain with vadduser (each run rewrites
#      vpasswd and vpasswd.cdb under the domain's lock, as vpopmail does: O(n) per add,
#      with both fsyncs);
#   2. one vuserinfo and one password check (vchkpw, SMTP mode, when built) in that
#      domain and in a domain of 10 users, medians of VPOP_BENCH_REPS runs (default 25):
#      lookups go through vpasswd.cdb, so the two sizes must cost about the same.
#
# VPOP_BENCH_USERS changes the 10,000.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BIN=${VQMAIL_BIN:-$("$repo/scripts/bin-dir" release || echo "$repo/target/release")}
USERS=${VPOP_BENCH_USERS:-10000}
REPS=${VPOP_BENCH_REPS:-25}
[ -x "$BIN/vadduser" ] || { echo "vpop bench: build first (make release)" >&2; exit 1; }

root=$(mktemp -d /tmp/vqmail-bench-vpop.XXXXXX)
trap 'rm -rf "$root"' EXIT INT TERM
VQMAIL_BIN=$BIN "$repo/scripts/setup-root" "$root" >/dev/null
export QMAIL_HOME="$root/var/qmail" VPOPMAIL_HOME="$root/home/vpopmail"
V="$VPOPMAIL_HOME/bin"
"$V/vadddomain" big.test bench-pm-1 >/dev/null
"$V/vadddomain" small.test bench-pm-1 >/dev/null

python3 - "$V" "$USERS" "$REPS" <<'PY'
import os, statistics, subprocess, sys, time
V, users, reps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def run(argv, stdin=None, fd3=None):
    kw = {}
    if fd3 is not None:
        r, w = os.pipe()
        os.write(w, fd3)
        os.close(w)
        kw = {"pass_fds": (3,), "preexec_fn": lambda: (os.dup2(r, 3), None)[1]}
    t = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, input=stdin,
                       env=dict(os.environ, TCPLOCALPORT="25", TCPREMOTEIP="127.0.0.1"), **kw)
    dt = time.perf_counter() - t
    if fd3 is not None:
        os.close(r)
    return p.returncode, dt

for i in range(9):
    run([f"{V}/vadduser", f"user{i:05d}@small.test", "bench-pass-1"])

t0 = time.perf_counter()
marks = {}
for i in range(users):
    rc, _ = run([f"{V}/vadduser", f"user{i:05d}@big.test", "bench-pass-1"])
    if rc != 0:
        sys.exit(f"vadduser failed at user {i}")
    if i + 1 in (100, 1000, 5000, users):
        marks[i + 1] = time.perf_counter() - t0
total = time.perf_counter() - t0
print(f"vadduser: {users} users added to one domain in {total:.1f} s "
      f"({users / total:.0f} users/s overall)")
prev_n, prev_t = 0, 0.0
for n in sorted(marks):
    t = marks[n]
    print(f"  users {prev_n + 1:>5}..{n:<5}: {1000 * (t - prev_t) / (n - prev_n):6.2f} ms per vadduser")
    prev_n, prev_t = n, t

def median(argv, **kw):
    ts = []
    for _ in range(reps):
        rc, dt = run(argv, **kw)
        ts.append(dt)
    return rc, 1000 * statistics.median(ts)

probe = f"user{users // 2:05d}"
for dom, who in (("small.test", "user00004"), ("big.test", probe)):
    rc, ms = median([f"{V}/vuserinfo", f"{who}@{dom}"])
    print(f"vuserinfo {who}@{dom}: {ms:.2f} ms (exit {rc})")
if os.access(f"{V}/vchkpw", os.X_OK):
    for dom, who in (("small.test", "user00004"), ("big.test", probe)):
        rc, ms = median([f"{V}/vchkpw", "/bin/true"], fd3=f"{who}@{dom}\0bench-pass-1\0\0".encode())
        print(f"password check (vchkpw, SMTP) {who}@{dom}: {ms:.2f} ms (exit {rc})")
else:
    print("password check: vchkpw not built")
PY
