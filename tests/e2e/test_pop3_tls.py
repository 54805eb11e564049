"""POP3 over TLS (STLS and POP3S) through qmail-popup's relay, with real
clients: Python's poplib, curl, fetchmail and mpop, in plaintext, STLS and
POP3S each."""
import os
import poplib
import subprocess
import tempfile
import unittest

from harness import need_tool, wait_until
import test_pop3_protocol as p3

M1 = p3.M1


def pop3d_running(root):
    """True while a qmail-pop3d of this root is alive."""
    exe = root.bin("qmail-pop3d").encode()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().split(b"\0")[0] == exe:
                        return True
            except OSError:
                pass
    return False


class Tls(p3.Pop3Case):
    def test_poplib_stls_and_pop3s(self):
        for i in range(3):
            self.put(f"{i}.m.h", M1)
        p = poplib.POP3("127.0.0.1", self.pop3().port, timeout=10)
        self.assertIn("STLS", p.capa())
        p.stls(self.tls_context())
        self.assertNotIn("STLS", p.capa())
        p.user("joe")
        p.pass_("secret")
        self.assertEqual(p.stat(), (3, 3 * len(M1)))
        self.assertEqual(p.retr(1)[1], [b"Subject: one", b"", b"line 1", b".dot", b"line 3", b""])
        p.dele(1)
        p.quit()
        self.assertEqual(self.files("new"), [])
        self.assertEqual(self.files("cur"), ["1.m.h:2,", "2.m.h:2,"])

        s = poplib.POP3_SSL("127.0.0.1", self.pop3(pop3s=True).port, timeout=10,
                            context=self.tls_context())
        self.assertNotIn("STLS", s.capa())
        s.user("joe")
        s.pass_("secret")
        self.assertEqual([u.split()[1] for u in s.uidl()[1]], [b"1.m.h", b"2.m.h"])
        s.dele(2)
        s.quit()
        self.assertEqual(self.files("cur"), ["1.m.h:2,"])

    def test_wrong_password_over_tls(self):
        s = poplib.POP3_SSL("127.0.0.1", self.pop3(pop3s=True).port, timeout=10,
                            context=self.tls_context())
        s.user("joe")
        with self.assertRaises(poplib.error_proto) as e:
            s.pass_("nope")
        self.assertEqual(e.exception.args[0], b"-ERR authorization failed")

    def test_bytes_pipelined_after_stls_are_refused(self):
        c = p3.Raw(self.pop3().port)
        c.line()
        c.send("STLS\r\nUSER joe\r\n")
        self.assertEqual(c.line(), b"-ERR STLS refused: commands were pipelined after STLS; closing\r\n")
        self.assertTrue(c.closed())

    def test_large_message_through_the_relay(self):
        body = b"".join(b"line %07d %s\n" % (i, b"x" * 60) for i in range(40000))
        msg = b"Subject: big\n\n" + body
        self.put("1.big.h", msg)
        s = poplib.POP3_SSL("127.0.0.1", self.pop3(pop3s=True).port, timeout=20,
                            context=self.tls_context())
        s.user("joe")
        s.pass_("secret")
        resp, lines, octets = s.retr(1)
        self.assertEqual(b"\n".join(lines), msg)  # poplib drops the extra empty line's CRLF
        s.quit()

    def test_pipelined_retrs_through_the_relay_do_not_deadlock(self):
        body = b"".join(b"%06d %s\n" % (i, b"y" * 90) for i in range(1000))
        self.put("1.big.h", b"Subject: p\n\n" + body)
        c = p3.Raw(self.pop3(pop3s=True).port, tls=True)
        c.line()
        c.cmd("USER joe")
        c.cmd("PASS secret")
        n = 200
        c.send("RETR 1\r\n" * n + "QUIT\r\n")
        for _ in range(n):
            self.assertTrue(c.multi().endswith(b"%06d %s\r\n\r\n.\r\n" % (999, b"y" * 90)))
        self.assertEqual(c.line(), b"+OK \r\n")
        self.assertTrue(c.closed())

    def test_dropped_tls_session_deletes_nothing(self):
        self.put("1.m.h", M1)
        c = p3.Raw(self.pop3(pop3s=True).port, tls=True)
        c.line()
        c.cmd("USER joe")
        self.assertEqual(c.cmd("PASS secret"), b"+OK \r\n")
        self.assertEqual(c.cmd("DELE 1"), b"+OK \r\n")
        c.s.close()
        wait_until(lambda: not pop3d_running(self.root), what="qmail-pop3d to end")
        self.assertEqual(self.files("new"), ["1.m.h"])

    # -- other clients ----------------------------------------------------------
    def curl(self, url, *opts):
        curl = need_tool("curl")
        r = subprocess.run([curl, "-s", "-S", "--max-time", "20", "-u", "joe:secret", *opts, url],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_curl_plain_stls_pop3s(self):
        self.put("1.m.h", M1)
        plain = self.pop3().port
        tls = self.pop3(pop3s=True).port
        self.assertEqual(self.curl(f"pop3://127.0.0.1:{plain}/"), b"1 33\r\n")
        self.assertIn(b"line 1\r\n", self.curl(f"pop3://127.0.0.1:{plain}/1"))
        self.assertIn(b"Subject: one\r\n", self.curl(f"pop3://127.0.0.1:{plain}/1", "--ssl-reqd", "-k"))
        self.assertIn(b"line 3\r\n", self.curl(f"pop3s://127.0.0.1:{tls}/1", "-k"))
        self.assertEqual(self.curl(f"pop3s://127.0.0.1:{tls}/", "-k", "-X", "UIDL"), b"1 1.m.h\r\n")
        self.curl(f"pop3s://127.0.0.1:{tls}/1", "-k", "-X", "DELE", "-I")
        self.assertEqual(self.files("new") + self.files("cur"), [])

    def test_fetchmail_keep_uidl_fetches_each_message_once(self):
        port = self.pop3().port
        self.put("1.m.h", M1)
        work = tempfile.mkdtemp(dir=self.root.dir)
        got, log = self.fetchmail(port, "sslproto '' keep", work, "uidl")
        self.assertEqual(len(got), 1, log)
        self.put("2.m.h", M1)  # 1.m.h is in cur/ now, with the same UIDL
        self.assertEqual(self.files("cur"), ["1.m.h:2,"])
        got, log = self.fetchmail(port, "sslproto '' keep", work, "uidl")
        self.assertEqual(len(got), 2, log)  # one more message in the same output directory
        self.assertEqual(self.files("cur"), ["1.m.h:2,", "2.m.h:2,"])

    def fetchmail(self, port, tls_opts, work=None, server_opts=""):
        fetchmail = need_tool("fetchmail")
        work = work or tempfile.mkdtemp(dir=self.root.dir)
        out = os.path.join(work, "out")
        os.makedirs(out, exist_ok=True)
        rc = os.path.join(work, "rc")
        with open(rc, "w") as f:
            f.write(f'poll 127.0.0.1 with proto POP3 port {port} {server_opts}\n'
                    f'  user "joe" there with password "secret" is "root" here\n'
                    f'  options {"" if "keep" in tls_opts else "fetchall"} {tls_opts} mda "/bin/sh -c \'cat > {out}/$$\'"\n')
        os.chmod(rc, 0o600)
        r = subprocess.run([fetchmail, "-f", rc, "--nosyslog", "--pidfile", os.path.join(work, "pid")],
                           env=dict(os.environ, FETCHMAILHOME=work, HOME=work),
                           capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        got = []
        for n in os.listdir(out):
            with open(os.path.join(out, n), "rb") as f:
                got.append(f.read())
        return got, r.stdout + r.stderr

    def test_fetchmail_plain_stls_pop3s(self):
        plain = self.pop3().port
        tls = self.pop3(pop3s=True).port
        for opts in ("sslproto ''", "sslproto 'tls1.2+' no sslcertck", "ssl no sslcertck"):
            self.put("1.m.h", M1)
            self.put("2.m.h", M1)
            got, log = self.fetchmail(tls if opts.startswith("ssl ") else plain, opts)
            self.assertEqual(len(got), 2, log)
            for m in got:
                self.assertIn(b"Subject: one\n", m)
                self.assertIn(b"\n.dot\n", m)
            # fetchmail deleted what it fetched (at QUIT).
            self.assertEqual(self.files("new") + self.files("cur"), [], opts)

    def test_mpop_stls_and_pop3s(self):
        mpop = need_tool("mpop")
        plain = self.pop3().port
        tls = self.pop3(pop3s=True).port
        for port, opts in ((plain, ["--tls=off"]),
                           (plain, ["--tls=on", "--tls-starttls=on", "--tls-certcheck=off"]),
                           (tls, ["--tls=on", "--tls-starttls=off", "--tls-certcheck=off"])):
            self.put("1.m.h", M1)
            work = tempfile.mkdtemp(dir=self.root.dir)
            box = os.path.join(work, "box")
            for d in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(box, d))
            r = subprocess.run([mpop, "-C", "/dev/null", "-q", f"--host=127.0.0.1", f"--port={port}",
                                "--user=joe", "--passwordeval=echo secret", "--auth=user",
                                f"--delivery=maildir,{box}", "--keep=off",
                                f"--uidls-file={work}/uidls", *opts],
                               capture_output=True, timeout=60, env=dict(os.environ, HOME=work))
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            got = os.listdir(os.path.join(box, "new"))
            self.assertEqual(len(got), 1, opts)
            self.assertEqual(self.files("new") + self.files("cur"), [], opts)


if __name__ == "__main__":
    unittest.main()
