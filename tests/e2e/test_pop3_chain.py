"""The real chain under tcpserver: qmail-popup HOST vchkpw qmail-pop3d Maildir,
with accounts made by vadddomain/vadduser: login forms, wrong passwords,
NO_POP, the relay opened on success, the poll limit, plaintext/STLS/POP3S."""
import base64
import os
import poplib
import subprocess
import time
import unittest

from harness import RootTestCase, IN_CI, need_tool, wait_until
import test_pop3_protocol as p3

M1 = p3.M1


class Chain(RootTestCase):
    def setUp(self):
        super().setUp()
        for prog in ("vchkpw", "vadddomain", "vadduser"):
            if not os.path.exists(self.root.bin(prog)):
                if IN_CI:
                    raise AssertionError(f"{prog} is not built")
                raise unittest.SkipTest(f"{prog} not built yet")
        self.root.write_control("pop3interval", "0\n")
        self.root.add_domain("example.test")
        self.root.add_user("joe@example.test", "secret1")
        self.md = self.root.maildir("joe", "example.test")

    def put(self, name, body=M1, t=p3.PAST):
        p = os.path.join(self.md, "new", name)
        with open(p, "wb") as f:
            f.write(body)
        os.utime(p, (t, t))

    def files(self):
        return sorted(os.listdir(os.path.join(self.md, "new")) + os.listdir(os.path.join(self.md, "cur")))

    def chain(self, pop3s=False, **env):
        if pop3s:
            env["POP3S"] = "1"
        return self.serve([self.root.bin("qmail-popup"), "mail.test", self.root.bin("vchkpw"),
                           self.root.bin("qmail-pop3d"), "Maildir"], env=env)

    def login(self, port, user, password="secret1", tls=None):
        if tls == "pop3s":
            p = poplib.POP3_SSL("127.0.0.1", port, timeout=10, context=p3.Pop3Case.tls_context())
        else:
            p = poplib.POP3("127.0.0.1", port, timeout=10)
            if tls == "stls":
                p.stls(p3.Pop3Case.tls_context())
        p.user(user)
        p.pass_(password)
        return p

    def test_login_forms_and_default_domain(self):
        with open(self.root.v("etc", "defaultdomain"), "w") as f:
            f.write("example.test\n")
        self.put("1.a.h")
        port = self.chain().port
        for user in ("joe@example.test", "joe%example.test", "joe/example.test", "JOE@Example.Test", "joe"):
            p = self.login(port, user)
            self.assertEqual(p.stat(), (1, len(M1)), user)
            self.assertEqual(p.uidl()[1], [b"1 1.a.h"])
            p.quit()

    def test_stls_and_pop3s_through_vchkpw(self):
        self.put("1.a.h")
        self.put("2.b.h")
        p = self.login(self.chain().port, "joe@example.test", tls="stls")
        p.dele(1)
        p.quit()
        p = self.login(self.chain(pop3s=True).port, "joe@example.test", tls="pop3s")
        self.assertEqual(p.retr(1)[1][0], b"Subject: one")
        p.dele(1)
        p.quit()
        self.assertEqual(self.files(), [])

    def test_long_names_and_passwords_with_auth_plain(self):
        # RFC 5034: the response after "+ " may be longer than a command line.
        dom = "a-rather-long-domain-name-for-testing.example.test"
        user = "sixteen-chars-xx"
        pw = "P" * 64 + "w" * 63 + "1"
        self.root.add_domain(dom)
        self.root.add_user(f"{user}@{dom}", pw)
        port = self.chain().port
        c = p3.Raw(port)
        c.line()
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
        resp = base64.b64encode(f"{user}@{dom}\0{user}@{dom}\0{pw}".encode()).decode()
        self.assertGreater(len(resp), 255)
        self.assertEqual(c.cmd(resp), b"+OK \r\n")
        c.cmd("QUIT")
        curl = need_tool("curl")
        r = subprocess.run([curl, "-s", "-S", "--max-time", "20", "-u", f"{user}@{dom}:{pw}",
                            f"pop3://127.0.0.1:{port}/"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_tls_ends_with_close_notify_before_login_too(self):
        import socket
        import ssl
        port = self.chain(pop3s=True).port
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        s = p3.Pop3Case.tls_context().wrap_socket(raw, server_hostname="mail.test", suppress_ragged_eofs=False)
        self.addCleanup(s.close)
        self.assertTrue(s.recv(512).startswith(b"+OK"))
        s.sendall(b"QUIT\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            got += s.recv(512)
        self.assertEqual(got, b"+OK \r\n")
        try:
            self.assertEqual(s.recv(512), b"")  # close_notify, not a bare hang-up
        except ssl.SSLEOFError as e:
            self.fail(f"TLS closed without close_notify: {e}")

    def tls_session(self, mode):
        """A raw TLS connection to a new chain, POP3S or after STLS, with the
        greeting read: (port, socket, its reader)."""
        import socket
        port = self.chain(pop3s=(mode == "pop3s")).port
        raw = socket.create_connection(("127.0.0.1", port), timeout=30)
        if mode == "stls":
            f = raw.makefile("rb")
            f.readline()
            raw.sendall(b"STLS\r\n")
            self.assertTrue(f.readline().startswith(b"+OK"))
        s = p3.Pop3Case.tls_context().wrap_socket(raw, server_hostname="mail.test")
        self.addCleanup(s.close)
        f = s.makefile("rb")
        if mode == "pop3s":
            self.assertTrue(f.readline().startswith(b"+OK"))
        return port, s, f

    def test_commands_sent_with_the_login_over_tls_are_all_answered(self):
        # USER, PASS and many more commands in one write: what TLS decrypted
        # at the login, beyond what qmail-popup read as lines, reaches
        # qmail-pop3d too (over POP3S and after STLS).
        self.put("1.a.h")
        n = 1500
        for mode in ("pop3s", "stls"):
            port, s, f = self.tls_session(mode)
            s.sendall(b"USER joe@example.test\r\nPASS secret1\r\n" + b"NOOP\r\n" * n + b"QUIT\r\n")
            lines = []
            while True:
                line = f.readline()
                if not line:
                    break
                lines.append(line)
            self.assertEqual(len(lines), n + 3, mode)
            self.assertEqual(lines[-1], b"+OK \r\n", mode)

    def test_a_close_notify_without_quit_ends_the_session(self):
        # The client ends TLS (close_notify) without QUIT: qmail-pop3d sees the
        # end of its input at once, deletes nothing, and the mailbox is free.
        self.put("1.a.h")
        for mode in ("pop3s", "stls"):
            port, s, f = self.tls_session(mode)
            s.sendall(b"USER joe@example.test\r\nPASS secret1\r\nDELE 1\r\n")
            for _ in range(3):
                self.assertTrue(f.readline().startswith(b"+OK"), mode)
            s.unwrap()  # close_notify, the TCP connection stays open

            def free():
                p = self.login(port, "joe@example.test", tls=mode)
                n = p.stat()[0]
                p.quit()
                return n == 1
            wait_until(free, timeout=20, what=f"the mailbox after a close_notify ({mode})")
        self.assertEqual(self.files(), ["1.a.h:2,"])  # read (by free()), not deleted

    def test_a_slow_child_is_not_cut_off_by_the_relay(self):
        # Over TLS qmail-popup relays; the idle time is the child's to keep.
        # A checkpassword chain that answers after 3 s, with timeoutpop3 1:
        # the answer still reaches the client.
        import socket
        self.root.write_control("timeoutpop3", "1\n")
        slow = ["/bin/sh", "-c", "cat <&3 >/dev/null; sleep 3; printf '+OK slow\\r\\n'"]
        port = self.serve([self.root.bin("qmail-popup"), "mail.test", *slow], env={"POP3S": "1"}).port
        s = p3.Pop3Case.tls_context().wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=30),
                                                  server_hostname="mail.test")
        self.addCleanup(s.close)
        f = s.makefile("rb")
        self.assertTrue(f.readline().startswith(b"+OK"))
        s.sendall(b"USER joe@example.test\r\nPASS secret1\r\n")
        self.assertEqual(f.readline(), b"+OK \r\n")
        self.assertEqual(f.readline(), b"+OK slow\r\n")

    def test_a_client_that_takes_no_output_is_dropped_whatever_it_sends(self):
        # Over TLS (relayed): a client that reads nothing of a large RETR but
        # keeps sending a byte now and then is dropped after timeoutpop3.
        self.root.write_control("timeoutpop3", "2\n")
        self.put("1.a.h", body=b"Subject: big\n\n" + b"x" * 76 + b"\n" * 1 + (b"y" * 99 + b"\n") * 60000)
        _, s, _ = self.tls_session("pop3s")
        s.sendall(b"USER joe@example.test\r\nPASS secret1\r\nRETR 1\r\n")
        dropped = False
        for _ in range(60):  # up to about 18 s of trickling
            try:
                s.sendall(b"N")
            except OSError:
                dropped = True
                break
            time.sleep(0.3)
        self.assertTrue(dropped, "the session outlived timeoutpop3 while the client sent bytes")
        self.assertEqual(self.files(), ["1.a.h"])

    def test_commands_after_quit_do_not_lose_the_replies(self):
        # Commands pipelined with the login (relayed) and a lot more after
        # QUIT: the replies up to QUIT's arrive, not a reset.
        import socket
        self.put("1.a.h")
        port = self.chain().port
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.addCleanup(s.close)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER joe@example.test\r\nPASS secret1\r\nSTAT\r\nQUIT\r\n" + b"NOOP\r\n" * 60000)
        self.assertEqual([f.readline() for _ in range(4)],
                         [b"+OK \r\n", b"+OK \r\n", b"+OK 1 %d\r\n" % len(M1), b"+OK \r\n"])

    def test_replies_are_not_held_back_by_a_partial_line(self):
        import socket
        port = self.chain().port
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.addCleanup(s.close)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"USER joe@example.test\r\nPASS secret1\r\n")
        self.assertTrue(f.readline().startswith(b"+OK"))
        self.assertTrue(f.readline().startswith(b"+OK"))
        # A whole NOOP and the start of the next command: the NOOP is answered
        # without waiting for the rest of the line (30 s bound: the socket's).
        s.sendall(b"NOOP\r\nNO")
        self.assertEqual(f.readline(), b"+OK \r\n")
        s.sendall(b"OP\r\nQUIT\r\n")
        self.assertEqual(f.readline(), b"+OK \r\n")
        self.assertEqual(f.readline(), b"+OK \r\n")

    def test_curl_and_fetchmail_through_vchkpw(self):
        curl = need_tool("curl")
        self.put("1.a.h")
        port = self.chain(pop3s=True).port
        r = subprocess.run([curl, "-s", "-S", "-k", "--max-time", "20", "-u", "joe@example.test:secret1",
                            f"pop3s://127.0.0.1:{port}/1"], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"line 1\r\n", r.stdout)

    def test_wrong_password_unknown_user_and_no_pop(self):
        port = self.chain().port
        for user, pw in (("joe@example.test", "wrong"), ("nobody@example.test", "secret1"),
                         ("joe@nodomain.test", "secret1")):
            p = poplib.POP3("127.0.0.1", port, timeout=10)
            p.user(user)
            t0 = time.monotonic()
            with self.assertRaises(poplib.error_proto) as e:
                p.pass_(pw)
            self.assertEqual(e.exception.args[0], b"-ERR authorization failed")
            self.assertGreaterEqual(time.monotonic() - t0, 1.9)
            p.close()
        if not os.path.exists(self.root.bin("vmoduser")):
            self.skipTest("vmoduser not built yet")
        self.root.run("vmoduser", "-p", "joe@example.test", check=True)
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        p.user("joe@example.test")
        with self.assertRaises(poplib.error_proto):
            p.pass_("secret1")
        p.close()

    def test_commands_sent_ahead_do_not_skip_the_refusal_or_its_delay(self):
        import socket
        port = self.chain().port
        for extra in (b"QUIT\r\n", b"STAT\r\nLIST\r\nQUIT\r\n"):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.recv(1000)
            t0 = time.monotonic()
            s.sendall(b"USER joe@example.test\r\nPASS wrong\r\n" + extra)
            got = b""
            while True:
                b = s.recv(1000)
                if not b:
                    break
                got += b
            s.close()
            self.assertEqual(got, b"+OK \r\n-ERR authorization failed\r\n", extra)
            self.assertGreaterEqual(time.monotonic() - t0, 1.9)

    def test_password_bytes_are_checked_as_sent(self):
        need_tool("openssl")
        if not os.path.exists(self.root.bin("vmoduser")):
            self.skipTest("vmoduser not built yet")
        # A hash made from a Latin-1 password, as vpopmail's crypt() makes it.
        h = subprocess.run(["openssl", "passwd", "-6", "-salt", "abcdefgh", "-stdin"],
                           input=b"p\xe4sswort\n", capture_output=True, check=True).stdout.strip().decode()
        self.root.run("vmoduser", "-e", h, "joe@example.test", check=True)
        port = self.chain().port
        for pw, ok in ((b"p\xe4sswort", True), (b"p\xf6sswort", False), ("p\ufffdsswort".encode(), False)):
            p = poplib.POP3("127.0.0.1", port, timeout=10)
            p.user("joe@example.test")
            p.sock.sendall(b"PASS " + pw + b"\r\n")
            reply = p.file.readline()
            self.assertEqual(reply.startswith(b"+OK"), ok, (pw, reply))
            p.close()

    def test_message_names_that_are_not_utf8(self):
        name = b"1001.B\xff.vm"
        p = os.path.join(os.fsencode(self.md), b"new", name)
        with open(p, "wb") as f:
            f.write(M1)
        os.utime(p, (p3.PAST, p3.PAST))
        c = self.login(self.chain().port, "joe@example.test")
        # The 8-bit byte goes out as %FF: ids are printable ASCII (RFC 1939).
        self.assertEqual(c.uidl()[1], [b"1 1001.B%FF.vm"])
        self.assertEqual(c.retr(1)[1][0], b"Subject: one")
        c.quit()
        self.assertEqual(os.listdir(os.path.join(os.fsencode(self.md), b"cur")), [name + b":2,"])

    def test_apop_with_a_clear_password(self):
        # Store the clear password (the 8th vpasswd field) and let the cdb be rebuilt.
        vp = os.path.join(self.root.domain_dir("example.test"), "vpasswd")
        with open(vp) as f:
            lines = f.read().splitlines()
        out = []
        for line in lines:
            fields = line.split(":")
            if fields[0] == "joe":
                fields = (fields + [""] * 8)[:8]
                fields[7] = "secret1"
            out.append(":".join(fields))
        with open(vp, "w") as f:
            f.write("\n".join(out) + "\n")
        cdb = vp + ".cdb"
        if os.path.exists(cdb):
            os.unlink(cdb)
        self.put("1.a.h")
        p = poplib.POP3("127.0.0.1", self.chain().port, timeout=10)
        p.apop("joe@example.test", "secret1")
        self.assertEqual(p.stat(), (1, len(M1)))
        p.quit()

    def test_apop_can_be_left_out(self):
        # control/pop3apop 0: no timestamp, so clients (curl, s-nail) use USER/PASS.
        self.root.write_control("pop3apop", "0\n")
        self.put("1.a.h")
        port = self.chain().port
        p = poplib.POP3("127.0.0.1", port, timeout=10)
        self.assertEqual(p.getwelcome(), b"+OK")
        with self.assertRaises(poplib.error_proto) as e:
            p._shortcmd("APOP joe@example.test c4c9334bac560ecc979e58001b3e22fb")
        self.assertEqual(e.exception.args[0], b"-ERR unimplemented")
        p.close()
        curl = need_tool("curl")
        r = subprocess.run([curl, "-s", "-u", "joe@example.test:secret1", f"pop3://127.0.0.1:{port}/1"],
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(r.stdout.replace(b"\r\n", b"\n").startswith(M1), r.stdout)

    def test_relay_opened_on_success(self):
        p = self.login(self.chain().port, "joe@example.test")
        p.quit()
        with open(self.root.v("etc", "open-smtp")) as f:
            self.assertRegex(f.read(), r"^127\.0\.0\.1:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\t\d+\n")

    def test_relay_opened_under_inetd_without_tcp_variables(self):
        """Started as inetd does, the connection on descriptors 0 and 1 and no
        TCPREMOTEIP: vchkpw takes the client's address from the connection."""
        import socket
        import threading
        srv = socket.socket()
        self.addCleanup(srv.close)
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        srv.settimeout(10)
        env = {k: v for k, v in self.root.env().items()
               if not k.startswith("TCP") and k not in ("REMOTE_HOST", "REMOTE_ADDR")}
        procs = []

        def serve():
            conn, _ = srv.accept()
            with conn:
                procs.append(subprocess.Popen(
                    [self.root.bin("qmail-popup"), "mail.test", self.root.bin("vchkpw"),
                     self.root.bin("qmail-pop3d"), "Maildir"],
                    stdin=conn, stdout=conn, stderr=subprocess.DEVNULL, env=env))
        t = threading.Thread(target=serve)
        t.start()
        p = poplib.POP3("127.0.0.1", srv.getsockname()[1], timeout=10)
        t.join(10)
        self.assertEqual(len(procs), 1)
        self.addCleanup(lambda: procs[0].poll() is None and procs[0].kill())
        p.user("joe@example.test")
        p.pass_("secret1")
        p.quit()
        self.assertEqual(procs[0].wait(timeout=30), 0)
        with open(self.root.v("etc", "open-smtp")) as f:
            self.assertRegex(f.read(), r"^127\.0\.0\.1:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"\t\d+\n")

    def test_a_malformed_poll_limit_is_off_and_logged(self):
        self.root.write_control("pop3interval", "sixty\n")
        srv = self.chain(VQMAIL_NOW=str(p3.PAST + 100))
        for _ in range(2):
            p = self.login(srv.port, "joe@example.test")
            p.quit()
        wait_until(lambda: "control/pop3interval is not a number (sixty): no poll limit" in srv.stderr(),
                   timeout=10, what="qmail-pop3d's warning")

    def test_poll_limit_through_the_chain(self):
        self.root.write_control("pop3interval", "60\n")
        self.put("1.a.h")

        servers = []

        def attempt(now):
            srv = self.chain(VQMAIL_NOW=str(now))
            servers.append(srv)
            p = poplib.POP3("127.0.0.1", srv.port, timeout=10)
            p.user("joe@example.test")
            try:
                p.pass_("secret1")
            except poplib.error_proto as e:
                return e.args[0]
            finally:
                pass
            n = p.stat()[0]
            p.quit()
            return n

        self.assertEqual(attempt(p3.PAST + 100), 1)
        # A login the limit refuses neither opens the relay nor counts as lastauth.
        osmtp = self.root.v("etc", "open-smtp")
        open(osmtp, "w").close()
        lastauth = os.path.join(os.path.dirname(self.md), "lastauth")
        before = os.stat(lastauth).st_mtime_ns if os.path.exists(lastauth) else None
        self.assertEqual(attempt(p3.PAST + 110),
                         b"-ERR [LOGIN-DELAY] logged in too soon: this account may log in once "
                         b"every 60 seconds; try again in 50 seconds")
        # The log says so (some clients show the refusal as a wrong password).
        wait_until(lambda: "refused: logged in too soon (poll limit 60s, 50s to wait)" in servers[-1].stderr(),
                   timeout=10, what="the LOGIN-DELAY log line")
        with open(osmtp) as f:
            self.assertEqual(f.read(), "")
        self.assertEqual(os.stat(lastauth).st_mtime_ns if os.path.exists(lastauth) else None, before)
        self.assertEqual(self.files(), ["1.a.h:2,"])
        self.assertEqual(attempt(p3.PAST + 160), 1)
        with open(osmtp) as f:
            self.assertIn("127.0.0.1:allow", f.read())


if __name__ == "__main__":
    unittest.main()
