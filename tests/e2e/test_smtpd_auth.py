"""qmail-smtpd AUTH (PLAIN, LOGIN, CRAM-MD5) in plaintext, after STARTTLS and
on SMTPS, through a checkpassword program on fd 3; TLS rules."""
import base64
import hashlib
import hmac
import os
import smtplib
import ssl
import subprocess
import time

from harness import need_tool
from smtpd_lib import SmtpdCase, Raw

OK = "250 ok\r\n"


class Auth(SmtpdCase):
    def setUp(self):
        super().setUp()
        self.root.write_control("smtpauthdelay", "0\n")
        self.pem = self.root.control("servercert.pem")

    def ctx(self):
        c = ssl.create_default_context(cafile=self.pem)
        return c

    def client(self, mode, port):
        if mode == "smtps":
            c = smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=self.ctx())
            c.ehlo("client")
        else:
            c = smtplib.SMTP("127.0.0.1", port, timeout=10)
            c.ehlo("client")
            if mode == "starttls":
                self.assertTrue(c.has_extn("starttls"))
                c.starttls(context=self.ctx())
                c.ehlo("client")
                self.assertFalse(c.has_extn("starttls"))
        return c

    def log(self):
        with open(self.checkpw_log, "rb") as f:
            return [l.split(b"|") for l in f.read().splitlines()]

    def test_smtps_quit_ends_tls_with_close_notify(self):
        import socket
        port = self.smtpd(env={"SMTPS": "1"}).port
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                            server_hostname="localhost", suppress_ragged_eofs=False)
        self.addCleanup(s.close)
        got = b""
        while not got.endswith(b"\r\n"):
            got += s.recv(512)
        self.assertTrue(got.startswith(b"220 "))
        s.sendall(b"QUIT\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            got += s.recv(512)
        self.assertTrue(got.startswith(b"221 "), got)
        try:
            self.assertEqual(s.recv(512), b"")  # close_notify, not a bare hang-up
        except ssl.SSLEOFError as e:
            self.fail(f"TLS closed without close_notify: {e}")

    def test_smtps_client_taking_no_replies_is_dropped_after_one_timeout(self):
        # Under TLS too, a write that times out ends qmail-smtpd: it does not
        # wait a second timeout trying to send "451 timeout" to a client that
        # takes nothing.
        import socket
        from harness import children, flood_until_gone
        self.root.write_control("timeoutsmtpd", "2\n")
        srv = self.smtpd(env={"SMTPS": "1"})
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        raw = socket.socket()
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        raw.settimeout(10)
        raw.connect(("127.0.0.1", srv.port))
        s = ctx.wrap_socket(raw, server_hostname="localhost")
        self.addCleanup(s.close)
        got = b""
        while not got.endswith(b"\r\n"):
            got += s.recv(512)
        self.assertTrue(got.startswith(b"220 "))
        [child] = children(srv.proc.pid)
        self.assertLess(flood_until_gone(s, b"NOOP\r\n" * 300000, child, "qmail-smtpd to exit"), 3.9)

    def test_a_dripped_handshake_gets_one_timeout_in_all(self):
        # A client sending its TLS hello a byte at a time, each within the
        # read timeout, still has only one timeout for the whole handshake
        # (as with the qmail TLS patch), on SMTPS and after STARTTLS.
        import socket
        import time
        self.root.write_control("timeoutsmtpd", "2\n")
        for env in ({"SMTPS": "1"}, {}):
            srv = self.smtpd(env=env)
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            self.addCleanup(raw.close)
            if not env:
                f = raw.makefile("rb")
                self.assertTrue(f.readline().startswith(b"220 "))
                raw.sendall(b"STARTTLS\r\n")
                self.assertTrue(f.readline().startswith(b"220 "))
            start = time.monotonic()
            closed = False
            # A record header announcing 512 bytes, then one byte each 0.5 s.
            for b in b"\x16\x03\x01\x02\x00" + b"\x01" * 40:
                try:
                    raw.sendall(bytes([b]))
                except OSError:
                    closed = True
                    break
                raw.settimeout(0.5)
                try:
                    if raw.recv(512) == b"":
                        closed = True
                        break
                except socket.timeout:
                    pass
                except OSError:
                    closed = True
                    break
            self.assertTrue(closed, env)
            self.assertLess(time.monotonic() - start, 8, env)

    def test_each_mechanism_on_each_transport(self):
        plain = self.smtpd()
        smtps = self.smtpd(env={"SMTPS": "1"})
        n = 0
        for mode, port in [("plain", plain.port), ("starttls", plain.port), ("smtps", smtps.port)]:
            for mech in ["PLAIN", "LOGIN", "CRAM-MD5"]:
                with self.subTest(mode=mode, mech=mech):
                    c = self.client(mode, port)
                    self.assertIn(mech, c.esmtp_features["auth"].split())
                    c.user, c.password = "joe@example.test", "secret1"
                    fn = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login, "CRAM-MD5": c.auth_cram_md5}[mech]
                    code, _ = c.auth(mech, fn, initial_response_ok=(mech != "LOGIN"))
                    self.assertEqual(code, 235)
                    # Relay rights: a foreign recipient is taken.
                    c.sendmail("joe@example.test", ["friend@elsewhere.example"],
                               f"Subject: {mode} {mech}\r\n\r\nhi\r\n")
                    c.quit()
                    n += 1
                    [(env, msg)] = [m for m in self.queued(n)
                                    if f"Subject: {mode} {mech}".encode() in m[1]]
                    self.assertEqual(env, b"Fjoe@example.test\0Tfriend@elsewhere.example\0\0")
                    head = msg.split(b"\n")[:2]
                    self.assertEqual(head[0], b"Received: from unknown (HELO client) (joe@example.test@127.0.0.1)")
                    proto = {"plain": b"with ESMTPA;", "starttls": b"with ESMTPSA (TLS_AES_",
                             "smtps": b"with ESMTPSA (TLS_AES_"}[mode]
                    self.assertIn(b"  by localhost " + proto, head[1])
                    login, pw, ch = self.log()[-1]
                    self.assertEqual(login, b"joe@example.test")
                    if mech == "CRAM-MD5":
                        self.assertRegex(ch.decode(), r"^<\d+\.\d+@localhost>$")
                        self.assertEqual(pw, hmac.new(b"secret1", ch, hashlib.md5).hexdigest().encode())
                    else:
                        self.assertEqual((pw, ch), (b"secret1", b""))

    def test_failed_auth_is_slow_and_refused(self):
        self.root.write_control("smtpauthdelay", "1\n")
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        t = time.monotonic()
        r = c.cmd("AUTH PLAIN " + base64.b64encode(b"\0joe@example.test\0wrong").decode())
        self.assertEqual(r, "535 authorization failed (#5.7.0)\r\n")
        self.assertGreaterEqual(time.monotonic() - t, 1.0)
        self.assertEqual(c.cmd("MAIL FROM:<joe@example.test>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<x@elsewhere.example>"),
                         "553 sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)\r\n")

    def test_malformed_and_canceled_exchanges(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("AUTH PLAIN ***notbase64***"), "501 malformed auth input (#5.5.4)\r\n")
        self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n")
        self.assertEqual(c.cmd("%%%"), "501 malformed auth input (#5.5.4)\r\n")
        self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n")
        self.assertEqual(c.cmd("*"), "501 auth exchange canceled (#5.0.0)\r\n")
        self.assertEqual(c.cmd("AUTH DIGEST-MD5"), "504 auth type unimplemented (#5.5.1)\r\n")
        self.assertEqual(c.cmd("MAIL FROM:<>"), OK)
        self.assertEqual(c.cmd("AUTH LOGIN"), "503 no auth during mail transaction (#5.5.0)\r\n")
        self.assertEqual(c.cmd("RSET"), "250 flushed\r\n")
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0joe@example.test\0secret1").decode()),
                         "235 ok, go ahead (#2.0.0)\r\n")
        self.assertEqual(c.cmd("AUTH LOGIN"), "503 you're already authenticated (#5.5.0)\r\n")

    def test_long_auth_lines_are_read_to_rfc_4954s_length(self):
        # An AUTH line or SASL answer over the 1000-byte command limit is
        # still an AUTH exchange (RFC 4954 section 4: 12,288 octets), not a
        # "command line too long" strike; longer still is one.
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        long_plain = base64.b64encode(b"\0joe@example.test\0" + b"p" * 900).decode()
        self.assertGreater(len("AUTH PLAIN " + long_plain), 1000)
        self.assertTrue(c.cmd("AUTH PLAIN " + long_plain).startswith("535 "))
        self.assertEqual(c.cmd("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n")
        self.assertEqual(c.cmd(base64.b64encode(b"j" * 900).decode()), "334 UGFzc3dvcmQ6\r\n")
        self.assertTrue(c.cmd(base64.b64encode(b"p" * 900).decode()).startswith("535 "))
        self.assertEqual(c.cmd("AUTH PLAIN " + "A" * 12300),
                         "500 sorry, command line too long (#5.5.2)\r\n")
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0joe@example.test\0secret1").decode()),
                         "235 ok, go ahead (#2.0.0)\r\n")

    def test_no_checkprogram_no_auth(self):
        srv = self.smtpd(args=["localhost"])
        c = Raw(srv.port)
        c.reply()
        self.assertNotIn("AUTH", c.cmd("EHLO x"))
        self.assertEqual(c.cmd("AUTH LOGIN"), "503 auth not available (#5.3.3)\r\n")

    def test_broken_checkprogram(self):
        srv = self.smtpd(args=["localhost", "/nonexistent/vchkpw", "/bin/true"])
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0a\0b").decode()),
                         "454 oops, problem with child and I can't auth (#4.3.0)\r\n")

    def test_crashing_checkprogram_is_our_failure_not_a_wrong_password(self):
        script = os.path.join(self.root.dir, "crash.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nkill -SEGV $$\n")
        os.chmod(script, 0o755)
        self.root.write_control("smtpauthdelay", "5\n")
        srv = self.smtpd(args=["localhost", script, "/bin/true"])
        c = Raw(srv.port)
        c.reply()
        t = time.monotonic()
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0a@b\0c").decode()),
                         "454 oops, problem with child and I can't auth (#4.3.0)\r\n")
        self.assertLess(time.monotonic() - t, 4)  # no wrong-password delay

    def test_ehlo_lines_and_bare_auth(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        lines = c.cmd("EHLO x").splitlines()
        self.assertEqual(lines[1:4], ["250-STARTTLS", "250-AUTH LOGIN CRAM-MD5 PLAIN", "250-AUTH=LOGIN CRAM-MD5 PLAIN"])
        self.assertEqual(lines[-2:], ["250-PIPELINING", "250 8BITMIME"])
        self.assertEqual(c.cmd("AUTH"), "504 auth type unimplemented (#5.5.1)\r\n")

    def test_tls_setup_errors_use_the_tls_patch_texts(self):
        with open(self.pem) as f:
            good = f.read()
        self.addCleanup(lambda: open(self.pem, "w").write(good))
        cert_only = good[good.index("-----BEGIN CERTIFICATE-----"):good.index("-----END CERTIFICATE-----") + 25] + "\n"
        for content, want in (("garbage\n", "454 TLS missing certificate: no certificate in servercert.pem (#4.3.0)\r\n"),
                              (cert_only, "454 TLS no valid RSA private key: ")):
            with open(self.pem, "w") as f:
                f.write(content)
            srv = self.smtpd()
            c = Raw(srv.port)
            c.reply()
            c.cmd("EHLO x")
            r = c.cmd("STARTTLS")
            self.assertTrue(r.startswith(want), r)
            self.assertTrue(r.endswith(" (#4.3.0)\r\n"), r)
            self.assertNotIn(self.root.dir, r)  # no path for clients to see

    def test_a_fifo_for_the_certificate_does_not_hang_starttls(self):
        with open(self.pem) as f:
            good = f.read()
        os.unlink(self.pem)
        os.mkfifo(self.pem)
        self.addCleanup(lambda: (os.unlink(self.pem), open(self.pem, "w").write(good)))
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        c.cmd("EHLO x")
        self.assertEqual(c.cmd("STARTTLS"),
                         "454 TLS missing certificate: unable to read servercert.pem: not a regular file (#4.3.0)\r\n")

    def test_starttls_without_a_certificate(self):
        os.unlink(self.pem)
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertNotIn("STARTTLS", c.cmd("EHLO x"))
        r = c.cmd("STARTTLS")
        self.assertTrue(r.startswith("454 TLS missing certificate: "), r)
        self.assertEqual(c.cmd("NOOP"), "250 ok\r\n")  # the session goes on in plaintext

    def test_failed_handshake_gets_the_tls_patch_reply(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        c.cmd("EHLO x")
        self.assertEqual(c.cmd("STARTTLS"), "220 ready for tls\r\n")
        c.send(b"this is not a TLS client hello at all\r\n")
        c.s.settimeout(10)
        got = c.buf
        while True:  # a TLS alert, then the plaintext reply, then the close
            b = c.s.recv(65536)
            if not b:
                break
            got += b
        self.assertRegex(got, rb"454 TLS connection failed: [^\r\n]+ \(#4\.3\.0\)\r\n$")

    def test_smtpauthtls_requires_tls_first(self):
        self.root.write_control("smtpauthtls", "1\n")
        srv = self.smtpd()
        c = smtplib.SMTP("127.0.0.1", srv.port, timeout=10)
        c.ehlo("x")
        self.assertFalse(c.has_extn("auth"))
        code, msg = c.docmd("AUTH", "LOGIN")
        self.assertEqual((code, msg), (538, b"encryption required for requested authentication mechanism (#5.7.11)"))
        c.starttls(context=self.ctx())
        c.ehlo("x")
        self.assertTrue(c.has_extn("auth"))
        c.login("joe@example.test", "secret1")
        c.quit()

    def test_pipelined_starttls_is_refused(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        c.send("STARTTLS\r\nMAIL FROM:<a@b.example>\r\n")
        self.assertEqual(c.reply(), "554 sorry, commands pipelined after STARTTLS are refused (#5.5.1)\r\n")
        self.assertTrue(c.closed())

    def test_starttls_with_a_parameter_is_refused(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("STARTTLS foo"), "501 Syntax error (no parameters allowed) (#5.5.4)\r\n")
        self.assertEqual(c.cmd("NOOP"), "250 ok\r\n")

    def test_cipher_list_limits_tls12_and_names_the_cipher(self):
        def handshake(port, cipher):
            ctx = self.ctx()
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(cipher)
            c = smtplib.SMTP("127.0.0.1", port, timeout=10)
            c.ehlo("client")
            try:
                c.starttls(context=ctx)
            except (ssl.SSLError, smtplib.SMTPServerDisconnected, ConnectionError):
                return None
            name = c.sock.cipher()[0]
            c.ehlo("client")
            c.sendmail("a@example.net", ["someone@localhost"], f"Subject: {cipher}\r\n\r\nhi\r\n")
            c.quit()
            return name
        # control/tlsserverciphers (lines joined by ":"), then $TLSCIPHERS over it.
        self.root.write_control("tlsserverciphers", "ECDHE-RSA-AES128-GCM-SHA256\nECDHE-ECDSA-AES128-GCM-SHA256\n")
        srv = self.smtpd()
        self.assertIsNone(handshake(srv.port, "ECDHE-RSA-CHACHA20-POLY1305"))
        self.assertEqual(handshake(srv.port, "ECDHE-RSA-AES128-GCM-SHA256"), "ECDHE-RSA-AES128-GCM-SHA256")
        srv2 = self.smtpd(env={"TLSCIPHERS": "HIGH:!AES128"})
        self.assertIsNone(handshake(srv2.port, "ECDHE-RSA-AES128-GCM-SHA256"))
        self.assertEqual(handshake(srv2.port, "ECDHE-RSA-CHACHA20-POLY1305"), "ECDHE-RSA-CHACHA20-POLY1305")
        # The Received line names the cipher as OpenSSL (and the TLS patch) does.
        received = [m.split(b"\n")[1] for _, m in self.queued(2)]
        self.assertIn(b"  by localhost with ESMTPS (ECDHE-RSA-AES128-GCM-SHA256 encrypted); ", b"\n".join(received))
        self.assertIn(b"  by localhost with ESMTPS (ECDHE-RSA-CHACHA20-POLY1305 encrypted); ", b"\n".join(received))

    def test_starttls_twice_and_state_reset(self):
        srv = self.smtpd()
        c = self.client("starttls", srv.port)
        self.assertEqual(c.docmd("STARTTLS"), (502, b"unimplemented (#5.5.1)"))
        c.quit()

    def test_swaks_each_mechanism_plain_starttls_smtps(self):
        swaks = need_tool("swaks")
        plain = self.smtpd()
        smtps = self.smtpd(env={"SMTPS": "1"})
        runs = [(opts, mech) for opts in (["--port", str(plain.port)],
                                          ["--port", str(plain.port), "-tls"],
                                          ["--port", str(smtps.port), "--tls-on-connect"])
                for mech in ("PLAIN", "LOGIN", "CRAM-MD5")]
        for opts, mech in runs:
            r = subprocess.run([swaks, "--server", "127.0.0.1", *opts, "--auth", mech,
                                "--auth-user", "joe@example.test", "--auth-password", "secret1",
                                "--from", "joe@example.test", "--to", "far@elsewhere.example"],
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertIn("235 ok, go ahead", r.stdout)
            if "-tls" in opts:
                self.assertIn("<-  220 ready for tls", r.stdout)
        self.assertEqual(len(self.queued(len(runs))), len(runs))

    def test_cram_md5_can_be_left_out_for_clients_that_pick_it(self):
        # control/smtpauthcram 0: curl, which picks CRAM-MD5 when offered and
        # does not fall back, logs in with PLAIN or LOGIN.
        curl = need_tool("curl")
        self.root.write_control("smtpauthcram", "0\n")
        srv = self.smtpd()
        c = self.client("plain", srv.port)
        self.assertEqual(set(c.esmtp_features["auth"].split()), {"LOGIN", "PLAIN"})
        self.assertEqual(c.docmd("AUTH", "CRAM-MD5"), (504, b"auth type unimplemented (#5.5.1)"))
        c.quit()
        r = subprocess.run([curl, "-s", "-S", f"smtp://127.0.0.1:{srv.port}", "-u", "joe@example.test:secret1",
                            "--mail-from", "joe@example.test", "--mail-rcpt", "far@elsewhere.example",
                            "-T", "-"], input=b"Subject: x\r\n\r\nhi\r\n", capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.queued(1)), 1)

    def test_msmtp_each_mechanism_starttls_smtps_and_no_relay_without_auth(self):
        msmtp = need_tool("msmtp")
        plain = self.smtpd()
        smtps = self.smtpd(env={"SMTPS": "1"})
        msg = b"From: joe@example.test\nTo: far@elsewhere.example\nSubject: msmtp\n\nhello\n"

        def send(port, *opts):
            return subprocess.run([msmtp, "--host=127.0.0.1", f"--port={port}",
                                   f"--tls-trust-file={self.pem}", "--from=joe@example.test",
                                   *opts, "far@elsewhere.example"],
                                  input=msg, capture_output=True, timeout=30)

        auth = ["--user=joe@example.test", "--passwordeval=echo secret1"]
        runs = [(port, tls, mech) for port, tls in ((plain.port, "--tls-starttls=on"),
                                                     (smtps.port, "--tls-starttls=off"))
                for mech in ("plain", "login", "cram-md5")]
        for port, tls, mech in runs:
            with self.subTest(tls=tls, mech=mech):
                r = send(port, "--tls=on", tls, f"--auth={mech}", *auth)
                self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.queued(len(runs))), len(runs))
        # Without AUTH the relay is refused: msmtp shows qmail's text, exits 65.
        r = send(plain.port, "--tls=on", "--tls-starttls=on", "--auth=off")
        self.assertEqual(r.returncode, 65, r.stderr)
        self.assertIn(b"553 sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)",
                      r.stderr)
        # A wrong password: 535, exit 77 (EX_NOPERM).
        r = send(plain.port, "--tls=on", "--tls-starttls=on", "--auth=plain",
                 "--user=joe@example.test", "--passwordeval=echo wrong")
        self.assertEqual(r.returncode, 77, r.stderr)
        self.assertIn(b"535 authorization failed (#5.7.0)", r.stderr)
