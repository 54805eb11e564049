"""qmail-popup + qmail-pop3d under the real tcpserver: the RFC 1939 dialog
byte for byte (with qmail's quirks), pre-authentication commands, bad input,
failed logins, the poll limit and timeouts.

These tests use a small checkpassword program written here (STUB), so that
they exercise qmail-popup and qmail-pop3d alone; test_pop3_chain.py runs the
real chain with vchkpw.

Pop3Case (no tests of its own) is shared by the other test_pop3_*.py files.
"""
import hashlib
import os
import re
import socket
import ssl
import time
import unittest

from harness import RootTestCase, children, flood_until_gone, wait_until

STUB = r'''#!/usr/bin/env python3
# checkpassword for tests: joe / secret (or APOP digest); home from STUB_HOME.
import hashlib, os, sys
with os.fdopen(3, "rb") as f:
    data = f.read(512)
login, pw, ts = (data.split(b"\0") + [b"", b"", b""])[:3]
apop = hashlib.md5(ts + b"secret").hexdigest().encode()
if login != b"joe" or pw not in (b"secret", apop):
    sys.exit(1)
home = os.environ["STUB_HOME"]
os.chdir(home)
os.environ.update(HOME=home, USER="joe", SHELL="NOLOGIN")
os.execvp(sys.argv[1], sys.argv[1:])
'''

PAST = 1_600_000_000  # mtime for test messages: long before any injected clock


class Pop3Case(RootTestCase):
    """A root with a stub account joe/secret whose Maildir is self.md."""

    def setUp(self):
        super().setUp()
        self.home = os.path.join(self.root.dir, "joe")
        self.md = os.path.join(self.home, "Maildir")
        for d in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(self.md, d))
        os.chmod(self.md, 0o700)  # as maildirmake makes it
        self.stub = os.path.join(self.root.dir, "stubcp")
        with open(self.stub, "w") as f:
            f.write(STUB)
        os.chmod(self.stub, 0o755)
        self.root.write_control("pop3interval", "0\n")
        self.addCleanup(self._close_raw)

    @staticmethod
    def _close_raw():
        while OPEN:
            OPEN.pop().close()

    # -- mailbox --------------------------------------------------------------
    def put(self, name, body, sub="new", mtime=None):
        p = os.path.join(self.md, sub, name)
        with open(p, "wb") as f:
            f.write(body if isinstance(body, bytes) else body.encode())
        t = PAST + len(os.listdir(os.path.join(self.md, sub))) if mtime is None else mtime
        os.utime(p, (t, t))
        return p

    def files(self, sub):
        return sorted(os.listdir(os.path.join(self.md, sub)))

    # -- servers --------------------------------------------------------------
    def argv(self):
        return [self.root.bin("qmail-popup"), "mail.test", self.stub,
                self.root.bin("qmail-pop3d"), "Maildir"]

    def pop3(self, pop3s=False, **env):
        env = dict(STUB_HOME=self.home, **env)
        if pop3s:
            env["POP3S"] = "1"
        return self.serve(self.argv(), env=env)

    @staticmethod
    def tls_context():
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx


OPEN = []  # Raw connections, closed after each test


class Raw:
    """A byte-level POP3 client: send lines, read exact replies."""

    def __init__(self, port, tls=False):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if tls:
            s = Pop3Case.tls_context().wrap_socket(s)
        self.s = s
        self.buf = b""
        OPEN.append(self)

    def read_until(self, end):
        while end not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError(self.buf)
            self.buf += d
        i = self.buf.index(end) + len(end)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def line(self):
        return self.read_until(b"\r\n")

    def multi(self):
        return self.read_until(b"\r\n.\r\n")

    def send(self, data):
        self.s.sendall(data if isinstance(data, bytes) else data.encode())

    def cmd(self, line, multi=False):
        self.send(line + "\r\n")
        return self.multi() if multi else self.line()

    def closed(self, timeout=10):
        """True when the server closes the connection (bounded wait)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(4096)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, ssl.SSLError):
            return True

    def close(self):
        self.s.close()


M1 = b"Subject: one\n\nline 1\n.dot\nline 3\n"
M2 = b"Subject: two\n\nbody"


class Protocol(Pop3Case):
    def login(self, port):
        c = Raw(port)
        greet = c.line()
        self.assertRegex(greet, rb"^\+OK <\d+\.\d+@mail\.test>\r\n$")
        self.assertEqual(c.cmd("USER joe"), b"+OK \r\n")
        self.assertEqual(c.cmd("PASS secret"), b"+OK \r\n")
        return c

    def test_rfc1939_dialog_byte_exact_with_qmail_quirks(self):
        self.put("100.a.host,S=33", M1, sub="cur", mtime=PAST)
        os.rename(os.path.join(self.md, "cur", "100.a.host,S=33"),
                  os.path.join(self.md, "cur", "100.a.host,S=33:2,S"))
        self.put("200.b.host", M2, mtime=PAST + 1)
        c = self.login(self.pop3().port)
        self.assertEqual(c.cmd("STAT"), b"+OK 2 51\r\n")
        self.assertEqual(c.cmd("LIST", True), b"+OK \r\n1 33\r\n2 18\r\n.\r\n")
        self.assertEqual(c.cmd("LIST 2"), b"+OK 2 18\r\n")
        self.assertEqual(c.cmd("UIDL", True), b"+OK \r\n1 100.a.host,S=33\r\n2 200.b.host\r\n.\r\n")
        self.assertEqual(c.cmd("UIDL 1"), b"+OK 1 100.a.host,S=33\r\n")
        self.assertEqual(c.cmd("RETR 1", True),
                         b"+OK \r\nSubject: one\r\n\r\nline 1\r\n..dot\r\nline 3\r\n\r\n.\r\n")
        self.assertEqual(c.cmd("RETR 2", True), b"+OK \r\nSubject: two\r\n\r\nbody\r\n\r\n.\r\n")
        self.assertEqual(c.cmd("TOP 1 1", True), b"+OK \r\nSubject: one\r\n\r\nline 1\r\n\r\n.\r\n")
        self.assertEqual(c.cmd("TOP 1 0", True), b"+OK \r\nSubject: one\r\n\r\n\r\n.\r\n")
        self.assertEqual(c.cmd("LAST"), b"+OK 0\r\n")
        self.assertEqual(c.cmd("DELE 1"), b"+OK \r\n")
        self.assertEqual(c.cmd("DELE 1"), b"-ERR already deleted\r\n")
        self.assertEqual(c.cmd("LAST"), b"+OK 1\r\n")
        self.assertEqual(c.cmd("STAT"), b"+OK 2 18\r\n")  # qmail: count keeps deleted ones
        self.assertEqual(c.cmd("LIST", True), b"+OK \r\n2 18\r\n.\r\n")
        self.assertEqual(c.cmd("RSET"), b"+OK \r\n")
        self.assertEqual(c.cmd("STAT"), b"+OK 2 51\r\n")
        self.assertEqual(c.cmd("NOOP"), b"+OK \r\n")
        self.assertEqual(c.cmd("XTND"), b"-ERR unimplemented\r\n")
        capa = c.cmd("CAPA", True)
        self.assertTrue(capa.startswith(b"+OK capability list follows\r\n"), capa)
        self.assertNotIn(b"USER\r\n", capa)
        self.assertEqual(c.cmd("QUIT"), b"+OK \r\n")
        self.assertTrue(c.closed())

    def test_message_numbers_out_of_range(self):
        self.put("1.a.h", M1)
        c = self.login(self.pop3().port)
        for cmd in ("RETR 0", "DELE 0", "LIST 0", "TOP 0 1"):
            self.assertEqual(c.cmd(cmd), b"-ERR messages are counted from 1\r\n", cmd)
        for cmd in ("RETR 2", "DELE 99", "UIDL 2", "LIST 18446744073709551616000"):
            self.assertEqual(c.cmd(cmd), b"-ERR not that many messages\r\n", cmd)
        for cmd in ("RETR", "DELE x", "TOP", "RETR -1"):
            self.assertEqual(c.cmd(cmd), b"-ERR syntax error\r\n", cmd)
        c.cmd("QUIT")

    def test_pre_auth_commands_and_errors(self):
        c = Raw(self.pop3().port)
        c.line()
        self.assertEqual(c.cmd("PASS secret"), b"-ERR USER first\r\n")
        self.assertEqual(c.cmd("USER"), b"-ERR syntax error\r\n")
        self.assertEqual(c.cmd("APOP joe"), b"-ERR syntax error\r\n")
        self.assertEqual(c.cmd("STAT"), b"-ERR authorization first\r\n")
        self.assertEqual(c.cmd("NOOP"), b"+OK \r\n")
        self.assertEqual(c.cmd("X" * 300), b"-ERR command line too long\r\n")
        self.assertEqual(c.cmd("USER jo\0e"), b"-ERR NUL byte in command line\r\n")
        self.assertEqual(c.cmd("USER joe"), b"+OK \r\n")
        self.assertEqual(c.cmd("PASS"), b"-ERR syntax error\r\n")
        capa = c.cmd("CAPA", True)
        for cap in (b"TOP", b"UIDL", b"USER", b"SASL PLAIN", b"STLS", b"PIPELINING"):
            self.assertIn(b"\r\n" + cap + b"\r\n", capa)
        self.assertEqual(c.cmd("QUIT"), b"+OK \r\n")
        self.assertTrue(c.closed())

    def test_post_auth_bad_lines(self):
        c = self.login(self.pop3().port)
        self.assertEqual(c.cmd("LIST " + "1" * 300), b"-ERR command line too long\r\n")
        self.assertEqual(c.cmd("STAT\0"), b"-ERR NUL byte in command line\r\n")
        self.assertEqual(c.cmd("STAT"), b"+OK 0 0\r\n")
        c.cmd("QUIT")

    def test_wrong_password_one_attempt_and_slowed(self):
        c = Raw(self.pop3().port)
        c.line()
        c.cmd("USER joe")
        t0 = time.monotonic()
        self.assertEqual(c.cmd("PASS wrong"), b"-ERR authorization failed\r\n")
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        self.assertTrue(c.closed())

    def test_sasl_plain_and_apop(self):
        port = self.pop3().port
        c = Raw(port)
        c.line()
        self.assertEqual(c.cmd("AUTH", True), b"+OK \r\nPLAIN\r\n.\r\n")
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
        self.assertEqual(c.cmd("AGpvZQBzZWNyZXQ="), b"+OK \r\n")  # \0joe\0secret
        self.assertEqual(c.cmd("STAT"), b"+OK 0 0\r\n")
        c.cmd("QUIT")
        c = Raw(port)
        c.line()
        self.assertEqual(c.cmd("AUTH PLAIN am9lAGpvZQBzZWNyZXQ="), b"+OK \r\n")  # joe\0joe\0secret
        c.cmd("QUIT")
        c = Raw(port)
        ts = re.search(rb"<[^>]*>", c.line()).group(0)
        digest = hashlib.md5(ts + b"secret").hexdigest()
        self.assertEqual(c.cmd("APOP joe " + digest), b"+OK \r\n")
        c.cmd("QUIT")
        import poplib
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        p.apop("joe", "secret")
        self.assertEqual(p.stat(), (0, 0))
        p.quit()

    def test_pipelined_commands_after_pass_are_answered(self):
        self.put("1.a.h", M1)
        c = Raw(self.pop3().port)
        c.line()
        c.send("USER joe\r\nPASS secret\r\nSTAT\r\nUIDL\r\nQUIT\r\n")
        self.assertEqual(c.read_until(b"+OK \r\n"), b"+OK \r\n")
        self.assertEqual(c.line(), b"+OK \r\n")
        self.assertEqual(c.line(), b"+OK 1 33\r\n")
        self.assertEqual(c.multi(), b"+OK \r\n1 1.a.h\r\n.\r\n")
        self.assertEqual(c.line(), b"+OK \r\n")
        self.assertTrue(c.closed())

    def test_poll_limit_with_injected_clock(self):
        self.root.write_control("pop3interval", "60\n")
        self.put("1.a.h", M1)
        import poplib

        def session(now):
            srv = self.pop3(VQMAIL_NOW=str(now))
            p = poplib.POP3("127.0.0.1", srv.port, timeout=10)
            p.user("joe")
            try:
                p.pass_("secret")
            except poplib.error_proto as e:
                with self.assertRaises((EOFError, poplib.error_proto, OSError)):
                    p.stat()
                srv.stop()
                return e.args[0]
            capa = p.capa()
            self.assertEqual(capa.get("LOGIN-DELAY"), ["60"])
            n = p.stat()[0]
            p.quit()
            srv.stop()
            return n

        self.assertEqual(session(PAST + 1000), 1)
        before = (self.files("new"), self.files("cur"), self.files("tmp"))
        self.assertEqual(session(PAST + 1030),
                         b"-ERR [LOGIN-DELAY] logged in too soon: this account may log in once "
                         b"every 60 seconds; try again in 30 seconds")
        self.assertTrue(session(PAST + 1059).endswith(b"try again in 1 second"))
        # Nothing changed in the mailbox, and refused logins do not move the stamp.
        self.assertEqual((self.files("new"), self.files("cur"), self.files("tmp")), before)
        with open(os.path.join(self.home, "lastpop3")) as f:
            self.assertEqual(f.read(), f"{PAST + 1000}\n")
        self.assertEqual(session(PAST + 1060), 1)
        # The first admitted session moved the message to cur/ at QUIT.
        self.assertEqual(self.files("cur"), ["1.a.h:2,"])

    def test_read_timeouts(self):
        self.root.write_control("timeoutpop3", "1\n")
        port = self.pop3().port
        c = Raw(port)
        c.line()
        t0 = time.monotonic()
        self.assertTrue(c.closed(timeout=10))
        self.assertLess(time.monotonic() - t0, 8)
        self.assertEqual(c.buf, b"")  # qmail-popup dies silently
        self.put("1.a.h", M1)
        c = Raw(port)
        c.line()
        c.cmd("USER joe")
        c.cmd("PASS secret")
        c.cmd("DELE 1")
        self.assertTrue(c.closed(timeout=10))
        self.assertEqual(self.files("new"), ["1.a.h"])  # no QUIT: nothing deleted

    def test_a_client_taking_no_output_is_dropped_after_one_timeout(self):
        # Pipelined commands from a client that reads none of the replies:
        # the first write that times out ends qmail-pop3d. The replies still
        # buffered are not tried again, each for another whole timeout, on
        # the way out.
        self.root.write_control("timeoutpop3", "2\n")
        self.put("1.a.h", M1)
        srv = self.pop3()
        port = srv.port
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        c = Raw.__new__(Raw)
        c.s, c.buf = s, b""
        OPEN.append(c)
        c.line()
        c.cmd("USER joe")
        self.assertTrue(c.cmd("PASS secret").startswith(b"+OK"))
        [child] = children(srv.proc.pid)
        took = flood_until_gone(s, b"UIDL\r\n" * 300000, child, "qmail-pop3d to exit")
        # One timeout of 2 s (and the time to fill the buffers), not two or three.
        self.assertLess(took, 3.9)

    def test_usage(self):
        r = self.root.run("qmail-popup", "onlyhost")
        self.assertEqual(r.stdout, b"-ERR usage: popup hostname subprogram\r\n")
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main()
