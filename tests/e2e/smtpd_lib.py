"""Helpers for the qmail-smtpd tests: a stand-in qmail-queue, a checkpassword
program, a tiny DNS server on 127.0.0.1, and a raw SMTP client.

The stand-in qmail-queue (QMAILQUEUE) keeps qmail-queue's interface: message on
fd 0, envelope on fd 1; it stores both under $STUBQQ_DIR only when the envelope
is complete (so an aborted DATA leaves nothing) and exits $STUBQQ_EXIT (0).
"""
import os
import socket
import sys
import threading
import time

from harness import RootTestCase, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))

STUBQQ = r'''#!/usr/bin/env python3
import os, sys
msg = sys.stdin.buffer.read()
env = b""
while True:
    b = os.read(1, 65536)
    if not b:
        break
    env += b
d = os.environ["STUBQQ_DIR"]
code = int(os.environ.get("STUBQQ_EXIT", "0"))
if code == 0 and env.startswith(b"F") and env.endswith(b"\0\0"):
    n = "%d.%d" % (os.getpid(), len(os.listdir(d)))
    with open(os.path.join(d, n + ".env.tmp"), "wb") as f:
        f.write(env)
    with open(os.path.join(d, n + ".msg"), "wb") as f:
        f.write(msg)
    os.rename(os.path.join(d, n + ".env.tmp"), os.path.join(d, n + ".env"))
    sys.exit(0)
sys.exit(code or 54)
'''

# checkpassword: accepts joe@example.test / secret1 (also by CRAM-MD5 with that
# secret); logs each request as one line "login|password|challenge".
CHECKPW = r'''#!/usr/bin/env python3
import hmac, hashlib, os, sys
data = b""
while True:
    b = os.read(3, 512)
    if not b:
        break
    data += b
f = data.split(b"\0")
login, pw, ch = f[0], f[1], f[2]
with open(os.environ["CHECKPW_LOG"], "ab") as log:
    log.write(b"|".join([login, pw, ch]) + b"\n")
ok = login == b"joe@example.test" and (
    pw == b"secret1" or
    (ch and pw == hmac.new(b"secret1", ch, hashlib.md5).hexdigest().encode()))
if not ok:
    sys.exit(1)
os.execvp(sys.argv[1], sys.argv[1:])
'''


def write_exec(path, text):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o755)
    return path


class SmtpdCase(RootTestCase):
    """A root with the stand-in qmail-queue and checkpassword program."""

    def setUp(self):
        super().setUp()
        r = self.root
        self.qq_dir = os.path.join(r.dir, "stubqq")
        os.makedirs(self.qq_dir)
        self.stubqq = write_exec(os.path.join(r.dir, "stubqq.py"), STUBQQ)
        self.checkpw_log = os.path.join(r.dir, "checkpw.log")
        self.checkpw = write_exec(os.path.join(r.dir, "checkpw.py"), CHECKPW)

    def smtpd(self, env=None, args=None, rules=None, stubqq=True):
        """qmail-smtpd under tcpserver; returns the TcpServer."""
        e = {"CHECKPW_LOG": self.checkpw_log, "STUBQQ_DIR": self.qq_dir}
        if stubqq:
            e["QMAILQUEUE"] = self.stubqq
        e.update(env or {})
        if args is None:
            args = ["localhost", self.checkpw, "/bin/true"]
        return self.serve([self.root.bin("qmail-smtpd"), *args], env=e, rules=rules)

    def queued(self, n=1, timeout=10):
        """The (envelope, message) pairs the stand-in queue stored, once n exist."""
        def done():
            names = sorted(x for x in os.listdir(self.qq_dir) if x.endswith(".env"))
            return names if len(names) >= n else None
        names = wait_until(done, timeout=timeout, what=f"{n} queued messages")
        out = []
        for e in names:
            base = e[:-4]
            with open(os.path.join(self.qq_dir, e), "rb") as f:
                env = f.read()
            with open(os.path.join(self.qq_dir, base + ".msg"), "rb") as f:
                msg = f.read()
            out.append((env, msg))
        return out

    def nothing_queued(self):
        return [x for x in os.listdir(self.qq_dir) if x.endswith(".env")] == []


class Raw:
    """A raw SMTP client: send bytes, read whole replies (multi-line aware)."""

    def __init__(self, port, timeout=10):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __del__(self):
        self.s.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def _line(self):
        while b"\n" not in self.buf:
            b = self.s.recv(65536)
            if not b:
                raise EOFError(self.buf)
            self.buf += b
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def reply(self):
        """One reply (all its lines) as text."""
        out = ""
        while True:
            line = self._line().decode()
            out += line
            if len(line) < 4 or line[3] != "-":
                return out

    def cmd(self, line):
        self.send(line + "\r\n")
        return self.reply()

    def closed(self, timeout=5):
        """True when the server closes the connection (after any pending bytes)."""
        self.s.settimeout(timeout)
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    return True
                self.buf += b
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()


class DnsServer:
    """A tiny authoritative DNS server on 127.0.0.1 (UDP) with dnslib.

    zone: {name: {"MX": [...], "A": [...]}}; names listed in `servfail` answer
    SERVFAIL; every other name is NXDOMAIN. Stopped with stop().
    """

    def __init__(self, zone, servfail=()):
        from harness import need_module
        self.dnslib = need_module("dnslib")
        self.zone = {k.rstrip(".").lower(): v for k, v in zone.items()}
        self.servfail = {s.lower() for s in servfail}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.running = True
        self.t = threading.Thread(target=self._serve, daemon=True)
        self.t.start()

    def _serve(self):
        d = self.dnslib
        while self.running:
            try:
                data, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                q = d.DNSRecord.parse(data)
            except Exception:
                continue
            name = str(q.q.qname).rstrip(".").lower()
            qtype = d.QTYPE[q.q.qtype]
            self.queries.append((name, qtype))
            r = q.reply()
            if name in self.servfail:
                r.header.rcode = d.RCODE.SERVFAIL
            elif name not in self.zone:
                r.header.rcode = d.RCODE.NXDOMAIN
            else:
                for v in self.zone[name].get(qtype, []):
                    if qtype == "MX":
                        r.add_answer(d.RR(name, d.QTYPE.MX, rdata=d.MX(v), ttl=60))
                    elif qtype == "A":
                        r.add_answer(d.RR(name, d.QTYPE.A, rdata=d.A(v), ttl=60))
            self.sock.sendto(r.pack(), addr)

    def stop(self):
        self.running = False
        self.t.join(timeout=2)
        self.sock.close()
