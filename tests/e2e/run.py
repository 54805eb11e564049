#!/usr/bin/env python3
"""Runs the end-to-end test files (tests/e2e/test_*.py), several at a time.

Usage: run.py [-j N] [NAME ...]   (NAME: a test file stem such as test_smtpd)
Each file runs in its own process under unittest; the last line is the total:
"N passed, N failed, N skipped".
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_file(name):
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "unittest", "-v", name],
                       cwd=HERE, capture_output=True, text=True, timeout=1800)
    out = p.stdout + p.stderr
    ran = 0
    m = re.search(r"^Ran (\d+) tests?", out, re.M)
    if m:
        ran = int(m.group(1))
    failed = sum(int(x) for x in re.findall(r"(?:failures|errors)=(\d+)", out.splitlines()[-1] if out.splitlines() else ""))
    skipped = 0
    m = re.search(r"skipped=(\d+)", out.splitlines()[-1] if out.splitlines() else "")
    if m:
        skipped = int(m.group(1))
    if p.returncode != 0 and failed == 0:
        failed = max(1, ran)  # the file itself broke (import error, crash)
    passed = max(0, ran - failed - skipped)
    return name, passed, failed, skipped, out, time.monotonic() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-j", type=int, default=3)
    ap.add_argument("names", nargs="*")
    a = ap.parse_args()
    names = a.names or sorted(f[:-3] for f in os.listdir(HERE) if f.startswith("test_") and f.endswith(".py"))
    totals = [0, 0, 0]
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, a.j)) as ex:
        for name, p, f, s, out, secs in ex.map(run_file, names):
            totals[0] += p
            totals[1] += f
            totals[2] += s
            status = "ok" if f == 0 else "FAILED"
            print(f"e2e {name}: {p} passed, {f} failed, {s} skipped ({secs:.1f}s) {status}", flush=True)
            if f:
                print(out, flush=True)
    print(f"e2e: {totals[0]} passed, {totals[1]} failed, {totals[2]} skipped")
    sys.exit(1 if totals[1] else 0)


if __name__ == "__main__":
    main()
