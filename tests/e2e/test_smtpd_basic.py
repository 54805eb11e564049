"""qmail-smtpd under the real tcpserver: the netqmail dialog, PIPELINING, SIZE,
DATA decoding (SMTP smuggling), limits and bad input, sender checks."""
import os
import re
import smtplib
import socket
import subprocess
import time

from harness import children, need_tool, wait_until
from smtpd_lib import SmtpdCase, Raw, DnsServer

OK = "250 ok\r\n"


NO_RELAY = "553 sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)\r\n"
SMTPLF = "451 See http://pobox.com/~djb/docs/smtplf.html.\r\n"


class Dialog(SmtpdCase):
    def test_smtplib_delivery_envelope_and_received_line(self):
        srv = self.smtpd()
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=10) as c:
            code, msg = c.ehlo("client.example")
            self.assertEqual(code, 250)
            for ext in ("pipelining", "8bitmime", "starttls", "auth"):
                self.assertTrue(c.has_extn(ext), ext)
            self.assertEqual(c.esmtp_features["size"], "10485760")
            c.sendmail("sender@example.net", ["u1@localhost", "u2@localhost"],
                       b"Subject: t\r\n\r\nline one\r\n.leading dot\r\n")
        [(env, msg)] = self.queued()
        self.assertEqual(env, b"Fsender@example.net\0Tu1@localhost\0Tu2@localhost\0\0")
        first, rest = msg.split(b"\n", 1)
        self.assertRegex(first.decode(), r"^Received: from unknown \(HELO client\.example\) \(127\.0\.0\.1\)$")
        self.assertRegex(rest.decode(), r"^  by localhost with SMTP; \d{1,2} [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d -0000\n")
        self.assertTrue(msg.endswith(b"Subject: t\n\nline one\n.leading dot\n"), msg)

    def test_reply_texts(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        self.assertEqual(c.reply(), "220 localhost ESMTP\r\n")
        self.assertEqual(c.cmd("HELO x"), "250 localhost\r\n")
        self.assertEqual(c.cmd("RCPT TO:<a@localhost>"), "503 MAIL first (#5.5.1)\r\n")
        self.assertEqual(c.cmd("DATA"), "503 MAIL first (#5.5.1)\r\n")
        self.assertEqual(c.cmd("MAIL FROM:<>"), OK)
        self.assertEqual(c.cmd("DATA"), "503 RCPT first (#5.5.1)\r\n")
        self.assertEqual(c.cmd("NOOP"), OK)
        self.assertEqual(c.cmd("VRFY a"), "252 send some mail, i'll try my best\r\n")
        self.assertEqual(c.cmd("HELP"), "214 netqmail home page: http://qmail.org/netqmail\r\n")
        self.assertEqual(c.cmd("RSET"), "250 flushed\r\n")
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<x@evil.example>"), NO_RELAY)
        self.assertEqual(c.cmd("RCPT TO:<x@localhost>"), OK)
        self.assertEqual(c.cmd("DATA"), "354 go ahead\r\n")
        c.send("hi\r\n.\r\n")
        self.assertRegex(c.reply(), r"^250 ok \d+ qp \d+\r\n$")
        self.assertEqual(c.cmd("QUIT"), "221 localhost\r\n")
        self.assertTrue(c.closed())

    def test_ip_literals_of_this_host_are_local(self):
        # qmail's ipme: user@[IP] for any address of this host is user@localiphost;
        # control/moreipme adds addresses, control/notipme takes them away.
        with open(self.root.control("moreipme"), "w") as f:
            f.write("10.9.8.7\n10.9.8.6\n")
        with open(self.root.control("notipme"), "w") as f:
            f.write("10.9.8.6\n")
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        c.cmd("HELO x")
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<postmaster@[10.9.8.7]>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<postmaster@[10.9.8.6]>"), NO_RELAY)
        self.assertEqual(c.cmd("RCPT TO:<postmaster@[10.9.8.5]>"), NO_RELAY)

    def test_pipelining(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        c.send("EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@localhost>\r\n"
               "RCPT TO:<y@evil.example>\r\nRCPT TO:<z@localhost>\r\nDATA\r\n")
        self.assertTrue(c.reply().startswith("250-localhost"))
        self.assertEqual([c.reply() for _ in range(4)], [OK, OK, NO_RELAY, OK])
        self.assertEqual(c.reply(), "354 go ahead\r\n")
        c.send("a\r\n.\r\nMAIL FROM:<c@d.example>\r\nRCPT TO:<w@localhost>\r\nDATA\r\n")
        self.assertTrue(c.reply().startswith("250 ok "))
        self.assertEqual([c.reply() for _ in range(3)], [OK, OK, "354 go ahead\r\n"])
        c.send("b\r\n.\r\nQUIT\r\n")
        self.assertTrue(c.reply().startswith("250 ok "))
        self.assertEqual(c.reply(), "221 localhost\r\n")
        envs = sorted(e for e, _ in self.queued(2))
        self.assertEqual(envs, [b"Fa@b.example\0Tx@localhost\0Tz@localhost\0\0",
                                b"Fc@d.example\0Tw@localhost\0\0"])

    def test_replies_are_sent_before_waiting_for_the_rest_of_a_line(self):
        # Whole commands and then part of one: the answers come without the
        # rest (qmail flushes before every read); a 250 for a queued message
        # is sent even when the client then half-closes mid-line.
        import socket
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        c.send("EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@loc")
        self.assertTrue(c.reply().startswith("250-localhost"))
        self.assertEqual(c.reply(), OK)
        c.send("alhost>\r\nDATA\r\n")
        self.assertEqual([c.reply() for _ in range(2)], [OK, "354 go ahead\r\n"])
        c.send("hi\r\n.\r\nQUIT now and then some")
        c.s.shutdown(socket.SHUT_WR)
        self.assertTrue(c.reply().startswith("250 ok "))
        self.assertEqual(len(self.queued(1)), 1)

    def test_swaks(self):
        swaks = need_tool("swaks")
        srv = self.smtpd()
        r = subprocess.run([swaks, "--server", "127.0.0.1", "--port", str(srv.port),
                            "--from", "s@example.net", "--to", "someone@localhost",
                            "--header", "Subject: via swaks"],
                           capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        [(env, msg)] = self.queued()
        self.assertEqual(env, b"Fs@example.net\0Tsomeone@localhost\0\0")
        self.assertIn(b"Subject: via swaks\n", msg)

    def test_queue_failures_are_reported(self):
        for code, text in [("53", "451 qq write error or disk full (#4.3.0)\r\n"),
                           ("31", "554 mail server permanently rejected message (#5.3.0)\r\n")]:
            srv = self.smtpd(env={"STUBQQ_EXIT": code})
            c = Raw(srv.port)
            c.reply()
            c.send("MAIL FROM:<>\r\nRCPT TO:<a@localhost>\r\nDATA\r\n")
            self.assertEqual([c.reply() for _ in range(3)], [OK, OK, "354 go ahead\r\n"])
            c.send("x\r\n.\r\n")
            self.assertEqual(c.reply(), text)
            self.assertEqual(c.cmd("NOOP"), OK)
            c.close()
        srv = self.smtpd(env={"QMAILQUEUE": "/nonexistent/qmail-queue"}, stubqq=False)
        c = Raw(srv.port)
        c.reply()
        c.send("MAIL FROM:<>\r\nRCPT TO:<a@localhost>\r\nDATA\r\n")
        self.assertEqual([c.reply() for _ in range(3)], [OK, OK, "451 qqt failure (#4.3.0)\r\n"])
        c.close()
        # A queue program that exits 0 without reading the message has not
        # taken it: qmail's read error, never 250.
        srv = self.smtpd(env={"QMAILQUEUE": "/bin/true"}, stubqq=False)
        c = Raw(srv.port, timeout=30)
        c.reply()
        c.send("MAIL FROM:<>\r\nRCPT TO:<a@localhost>\r\nDATA\r\n")
        self.assertEqual([c.reply() for _ in range(3)], [OK, OK, "354 go ahead\r\n"])
        c.send(("x" * 998 + "\r\n") * 1100 + ".\r\n")
        self.assertEqual(c.reply(), "451 qq read error (#4.3.0)\r\n")


class Data(SmtpdCase):
    def start(self, **kw):
        srv = self.smtpd(**kw)
        c = Raw(srv.port, timeout=30)
        c.reply()
        c.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<x@localhost>\r\nDATA\r\n")
        self.assertEqual([c.reply() for _ in range(3)], [OK, OK, "354 go ahead\r\n"])
        return c

    def test_smuggling_bare_lf_is_refused_and_closes(self):
        for seq in [b"\n.\r\n", b"\r\n.\n", b"\n.\n"]:
            c = self.start()
            c.send(b"Subject: x\r\n\r\nbody" + seq + b"MAIL FROM:<evil@x.example>\r\n"
                   b"RCPT TO:<v@localhost>\r\nDATA\r\nsmuggled\r\n.\r\n")
            self.assertEqual(c.reply(), SMTPLF, seq)
            self.assertTrue(c.closed(), seq)
        self.assertTrue(self.nothing_queued())

    def test_smuggling_cr_dot_cr_stays_in_the_message(self):
        c = self.start()
        c.send(b"Subject: x\r\n\r\nbody\r.\rMAIL FROM:<evil@x.example>\r\nmore\r\n.\r\n")
        self.assertTrue(c.reply().startswith("250 ok "))
        [(env, msg)] = self.queued()
        self.assertEqual(env, b"Fa@b.example\0Tx@localhost\0\0")
        self.assertTrue(msg.endswith(b"\nbody\r.\rMAIL FROM:<evil@x.example>\nmore\n"), msg)

    def test_databytes_10mb_plus_one_is_refused_after_the_final_dot(self):
        c = self.start()
        line = b"x" * 1023 + b"\r\n"            # 1024 bytes stored per line (LF only)
        c.send(line * 10240)                     # 10485760 bytes: exactly the limit
        c.send(b"\r\n.\r\n")                     # one more byte (an empty line), then the end
        self.assertEqual(c.reply(), "552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n")
        self.assertEqual(c.cmd("RSET"), "250 flushed\r\n")
        self.assertTrue(self.nothing_queued())

    def test_databytes_exact_limit_is_accepted(self):
        c = self.start(env={"DATABYTES": "100"})
        c.send(b"x" * 99 + b"\r\n.\r\n")      # 100 stored bytes
        self.assertTrue(c.reply().startswith("250 ok "))
        c.send("MAIL FROM:<>\r\nRCPT TO:<x@localhost>\r\nDATA\r\n")
        self.assertEqual([c.reply() for _ in range(3)], [OK, OK, "354 go ahead\r\n"])
        c.send(b"x" * 100 + b"\r\n.\r\n")     # 101
        self.assertEqual(c.reply(), "552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n")
        self.assertEqual(len(self.queued()), 1)

    def test_databytes_is_read_as_scan_ulong_reads_it(self):
        # "20M" is 20 bytes, as in qmail; never "no limit".
        env = self.root.env(TCPREMOTEIP="192.0.2.9", TCPLOCALIP="127.0.0.1", TCPLOCALPORT="25",
                            DATABYTES="20M")
        r = subprocess.run([self.root.bin("qmail-smtpd"), "localhost"], input=b"EHLO x\r\nQUIT\r\n",
                           capture_output=True, env=env, timeout=30)
        self.assertIn(b"250-SIZE 20\r\n", r.stdout)

    def test_exit_status_like_qmail(self):
        env = self.root.env(TCPREMOTEIP="192.0.2.9", TCPLOCALIP="127.0.0.1", TCPLOCALPORT="25")
        smtpd = [self.root.bin("qmail-smtpd"), "localhost"]
        gone = subprocess.run(smtpd, input=b"HELO x\r\n", capture_output=True, env=env, timeout=30)
        self.assertEqual(gone.returncode, 1)  # the client left without QUIT
        quit_ = subprocess.run(smtpd, input=b"HELO x\r\nQUIT\r\n", capture_output=True, env=env, timeout=30)
        self.assertEqual(quit_.returncode, 0)
        # Closed by the server after three bad commands: an error, not a QUIT.
        bad = subprocess.run(smtpd, input=b"X\r\nY\r\nZ\r\n", capture_output=True, env=env, timeout=30)
        self.assertTrue(bad.stdout.endswith(b"421 too many bad commands, closing connection (#4.7.0)\r\n"))
        self.assertEqual(bad.returncode, 1)

    def test_size_parameter_refused_at_mail(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        ehlo = c.cmd("EHLO x").splitlines()
        self.assertEqual(ehlo[-3:], ["250-SIZE 10485760", "250-PIPELINING", "250 8BITMIME"])
        too_big = "552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n"
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example> SIZE=10485761"), too_big)
        # beyond 64 bits, and an address written without <>
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example> SIZE=18446744073709551616"), too_big)
        self.assertEqual(c.cmd("MAIL FROM:a@b.example SIZE=20000000"), too_big)
        self.assertEqual(c.cmd("MAIL FROM:<a@b.example> SIZE=10485760 BODY=8BITMIME"), OK)

    def test_looping_message(self):
        c = self.start()
        c.send(b"".join(b"Received: hop %d\r\n" % i for i in range(100)) + b"\r\nx\r\n.\r\n")
        self.assertEqual(c.reply(), "554 too many hops, this message is looping (#5.4.6)\r\n")
        self.assertTrue(self.nothing_queued())

    def test_nul_in_message(self):
        c = self.start()
        c.send(b"a\0b\r\n.\r\n")
        self.assertEqual(c.reply(), "554 sorry, I don't accept NUL bytes in messages (#5.6.0)\r\n")
        self.assertEqual(c.cmd("NOOP"), OK)
        self.assertTrue(self.nothing_queued())


class Limits(SmtpdCase):
    def test_long_line_nul_and_three_strikes(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("NOOP " + "x" * 1000), "500 sorry, command line too long (#5.5.2)\r\n")
        self.assertEqual(c.cmd("NOOP " + "x" * 993), OK)   # 1000 bytes with CRLF
        self.assertEqual(c.cmd("NO\0OP"), "501 sorry, NUL byte in command (#5.5.2)\r\n")
        self.assertEqual(c.cmd("MAIL FROM:<>"), OK)
        self.assertEqual(c.cmd("GET / HTTP/1.0"),
                         "421 too many bad commands, closing connection (#4.7.0)\r\n")
        self.assertTrue(c.closed())

    def test_read_timeout(self):
        self.root.write_control("timeoutsmtpd", "1\n")
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        t = time.monotonic()
        self.assertEqual(c.reply(), "451 timeout (#4.4.2)\r\n")
        self.assertTrue(c.closed())
        self.assertLess(time.monotonic() - t, 5)

    def test_write_timeout(self):
        """A client that sends commands but never reads their replies: once the
        socket buffers are full, qmail-smtpd's write waits timeoutsmtpd seconds
        and the process ends (it is not left blocked for ever)."""
        self.root.write_control("timeoutsmtpd", "1\n")
        srv = self.smtpd()
        s = socket.socket()
        self.addCleanup(s.close)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", srv.port))
        [child] = wait_until(lambda: children(srv.proc.pid), what="the qmail-smtpd process")
        s.setblocking(False)
        chunk = b"NOOP\r\n" * 10000
        stalled = None

        def gone():
            nonlocal stalled
            if not os.path.exists(f"/proc/{child}"):
                return True
            try:
                for _ in range(1000):
                    s.send(chunk)
            except BlockingIOError:
                stalled = stalled or time.monotonic()
            except OSError:
                pass
            return False
        wait_until(gone, timeout=30, interval=0.05, what="qmail-smtpd to give up writing")
        self.assertIsNotNone(stalled, "the client's sends never blocked")
        self.assertGreaterEqual(time.monotonic() - stalled, 0.9)

    def test_address_too_long(self):
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<%s@b.example>" % ("a" * 900)), "555 syntax error (#5.5.4)\r\n")

    def test_no_controls(self):
        os.unlink(self.root.control("me"))
        srv = self.smtpd()
        c = Raw(srv.port)
        self.assertEqual(c.reply(), "421 unable to read controls (#4.3.0)\r\n")
        self.assertTrue(c.closed())


class SenderChecks(SmtpdCase):
    def test_badmailfrom_whole_address_and_domain(self):
        self.root.write_control("badmailfrom", "spam@example.net\n@bad.example\n")
        srv = self.smtpd()
        c = Raw(srv.port)
        c.reply()
        bmf = "553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n"
        for sender, want in [("SPAM@Example.NET", bmf), ("x@BAD.example", bmf),
                             ("ok@example.net", OK), ("x@sub.bad.example", OK)]:
            self.assertEqual(c.cmd(f"MAIL FROM:<{sender}>"), OK)
            self.assertEqual(c.cmd("RCPT TO:<u@localhost>"), want, sender)

    def test_sender_domain_dns_check(self):
        dns = DnsServer({"mx.example": {"MX": ["mail.mx.example"]},
                         "a-only.example": {"A": ["192.0.2.5"]},
                         "empty.example": {},
                         "nullmx.example": {"MX": ["."], "A": ["192.0.2.6"]}},
                        servfail=["broken.example"])
        self.addCleanup(dns.stop)
        self.root.write_control("mfcheck", "1\n")
        srv = self.smtpd(env={"DNSCACHEIP": f"127.0.0.1:{dns.port}"})
        c = Raw(srv.port, timeout=30)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<a@mx.example>"), OK)
        self.assertEqual(c.cmd("MAIL FROM:<a@a-only.example>"), OK)
        self.assertEqual(c.cmd("MAIL FROM:<a@nx.example>"),
                         "553 Non-existing DNS_MX: MAIL FROM:<a@nx.example> (#5.1.8)\r\n")
        self.assertEqual(c.cmd("MAIL FROM:<a@empty.example>"),
                         "553 Non-existing DNS_MX: MAIL FROM:<a@empty.example> (#5.1.8)\r\n")
        # A null MX (RFC 7505): the domain takes no mail, so no bounce could reach it.
        self.assertEqual(c.cmd("MAIL FROM:<a@nullmx.example>"),
                         "553 Non-existing DNS_MX: MAIL FROM:<a@nullmx.example> (#5.1.8)\r\n")
        self.assertEqual(c.cmd("MAIL FROM:<a@broken.example>"),
                         "451 temporary DNS failure checking the sender domain (#4.4.3)\r\n")
        # Bounces and local senders are not looked up.
        n = len(dns.queries)
        self.assertEqual(c.cmd("MAIL FROM:<>"), OK)
        self.assertEqual(c.cmd("MAIL FROM:<me@localhost>"), OK)
        self.assertEqual(len(dns.queries), n)
        self.assertIn(("nx.example", "MX"), dns.queries)


class HostingProfile(SmtpdCase):
    def test_setup_root_writes_the_smtpd_controls(self):
        import tempfile
        from harness import REPO, BIN
        d = tempfile.mkdtemp(prefix="vqmail-profile-")
        self.addCleanup(lambda: subprocess.run(["rm", "-rf", d]))
        subprocess.run([os.path.join(REPO, "scripts", "setup-root"), d], check=True, timeout=120,
                       env=dict(os.environ, VQMAIL_BIN=BIN), capture_output=True)
        ctl = lambda n: open(os.path.join(d, "var", "qmail", "control", n)).read()
        self.assertEqual(ctl("smtpauthtls"), "0\n")   # plaintext AUTH allowed
        self.assertEqual(ctl("rcptcheck"), "1\n")     # unknown vpopmail users: 550 at RCPT
        self.assertEqual(ctl("mfcheck"), "1\n")       # sender domain DNS check
        self.assertEqual(ctl("databytes"), "10485760\n")
