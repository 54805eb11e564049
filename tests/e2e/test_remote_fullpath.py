"""The whole remote path: a message injected with sendmail (qmail-queue while
sendmail is not installed), qmail-send's remote channel, qmail-rspawn,
qmail-remote, and an SMTP server on 127.0.0.1 (Python's aiosmtpd, or our own
qmail-smtpd under tcpserver), with the test DNS server (dnsserver.py).

qmail-send runs in once mode (VQMAIL_SEND_ONCE=1: it exits when nothing is due)
with the clock injected through VQMAIL_NOW, so retries and the queue lifetime are
tested without sleeping. Senders are remote too, so bounces travel the same path
back to the peer, where the tests read them.
"""
import os
import re
import subprocess
import unittest

from harness import RootTestCase, need_module, need_tool
from dnsserver import shared_dns, stop_shared_dns
from smtppeer import Peer, make_certs

T0 = 1_800_000_000
MSG = b"From: Sender <sender@aonly.test>\nTo: u@mx.test\nSubject: full path\n\nhello\n.dot\n"
LIFETIME_LINE = "I'm not going to try again; this message has been in the queue too long.\n"


class FullPath(RootTestCase):
    def setUp(self):
        need_module("dnslib")
        need_module("aiosmtpd")
        super().setUp()
        for prog in ("qmail-start", "qmail-send", "qmail-rspawn", "qmail-queue"):
            if not os.path.exists(self.root.bin(prog)):
                raise unittest.SkipTest("%s is not built yet" % prog)
        self.dns = shared_dns()
        r = self.root
        r.write_control("notipme", "127.0.0.1\n")
        r.write_control("helohost", "out.vqmail.test\n")
        self.npeers = 0

    def peer(self, *opts):
        self.npeers += 1
        p = Peer(os.path.join(self.root.dir, "peer%d" % self.npeers), *opts).start()
        self.addCleanup(p.stop)
        return p

    def routes(self, text):
        self.root.write_control("smtproutes", text)

    def dead_port(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def env(self, **extra):
        e = {"DNSCACHEIP": self.dns.addr}
        e.update(extra)
        return e

    def inject(self, msg, sender, *rcpts):
        """sendmail -f sender rcpts (qmail-queue while sendmail is not built)."""
        if os.path.exists(self.root.bin("sendmail")):
            r = self.root.run("sendmail", "-f", sender, *rcpts, input=msg,
                              env=self.env(VQMAIL_NOW=T0))
        else:
            envelope = b"F" + sender.encode() + b"\0" + b"".join(
                b"T" + x.encode() + b"\0" for x in rcpts) + b"\0"
            rfd, wfd = os.pipe()
            os.write(wfd, envelope)
            os.close(wfd)
            try:
                r = subprocess.run([self.root.bin("qmail-queue")], input=msg, stdout=rfd,
                                   capture_output=False, stderr=subprocess.PIPE,
                                   env=self.root.env(**self.env(VQMAIL_NOW=T0)), timeout=30)
            finally:
                os.close(rfd)
        self.assertEqual(r.returncode, 0, r.stderr)

    def send_once(self, now):
        p = subprocess.run([self.root.bin("qmail-start"), "./Maildir/"],
                           env=self.root.env(**self.env(VQMAIL_SEND_ONCE=1, VQMAIL_NOW=now)),
                           capture_output=True, timeout=90)
        log = p.stderr.decode(errors="replace")
        self.assertEqual(p.returncode, 0, log)
        return log

    def queue_empty(self):
        for sub in ("mess", "info", "local", "remote", "todo", "bounce"):
            for d, _, files in os.walk(self.root.q("queue", sub)):
                if files and d != self.root.q("queue", "info", "spare"):
                    return False
        return True

    def bounce_at(self, peer, rcpt):
        for m in peer.messages():
            if m["from"] in ("", "<>") and m["rcpt"] == [rcpt]:
                return m["data"].replace("\r\n", "\n")
        self.fail("no bounce for %s among %r" % (rcpt, peer.messages()))


class TestFullPath(FullPath):
    def test_550_to_rcpt_bounces_with_transcript(self):
        p = self.peer("--reject", "nobody@mx.test")
        self.routes("::%d\n" % p.port)
        self.inject(MSG, "sender@aonly.test", "nobody@mx.test")
        log = self.send_once(T0)
        self.assertRegex(log, r"delivery \d+: failure: 127.0.0.1_does_not_like_recipient./")
        b = self.bounce_at(p, "sender@aonly.test")
        self.assertIn("Subject: failure notice\n", b)
        self.assertIn(
            "<nobody@mx.test>:\n"
            "127.0.0.1 does not like recipient.\n"
            "Remote host said: 550 5.1.1 <nobody@mx.test>: Recipient address rejected: User unknown\n"
            "while talking to mx1.mx.test[127.0.0.1]:\n"
            ">>> RCPT TO:<nobody@mx.test>\n"
            "<<< 550 5.1.1 <nobody@mx.test>: Recipient address rejected: User unknown\n"
            "Giving up on 127.0.0.1.\n", b)
        self.assertIn("--- Below this line is a copy of the message.\n", b)
        self.assertIn("Subject: full path\n", b)
        self.assertTrue(self.queue_empty())

    def test_dead_peer_retried_on_schedule_then_bounced_after_lifetime(self):
        p = self.peer()
        dead = self.dead_port()
        self.routes("mx.test::%d\n::%d\n" % (dead, p.port))
        self.inject(MSG, "sender@aonly.test", "u@mx.test")
        log = self.send_once(T0)
        self.assertRegex(log, r"deferral: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._\(#4.4.1\)/")
        n = int(re.search(r"new msg (\d+)", log).group(1))
        remote = self.root.q("queue", "remote", str(n % 23), str(n))
        self.assertEqual(os.stat(remote).st_mtime, T0 + 400)   # (0 + 20)^2
        self.assertNotIn("starting delivery", self.send_once(T0 + 399))
        log = self.send_once(T0 + 400)
        self.assertIn("to remote u@mx.test", log)
        self.assertEqual(os.stat(remote).st_mtime, T0 + 1600)  # (20 + 20)^2
        self.assertEqual(p.messages(), [])
        # After control/queuelifetime (86400 in the hosting profile): one last try, then a bounce.
        log = self.send_once(T0 + 86401)
        b = self.bounce_at(p, "sender@aonly.test")
        m = re.search(r"<u@mx.test>:\n(.*?)\n\n", b, re.S)
        self.assertIsNotNone(m, b)
        text = m.group(1) + "\n"
        self.assertTrue(text.startswith("Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"), text)
        self.assertIn("mx1.mx.test[127.0.0.1]:%d: Connection refused\n" % dead, text)
        self.assertTrue(text.endswith(LIFETIME_LINE), text)
        self.assertTrue(self.queue_empty())

    def test_starttls_used_when_offered(self):
        need_tool("openssl")
        d = os.path.join(self.root.dir, "certs")
        os.makedirs(d)
        _, cert, key = make_certs(d, ["mx1.mx.test"])
        p = self.peer("--starttls", cert, key)
        self.routes("::%d\n" % p.port)
        self.inject(MSG, "sender@aonly.test", "u@mx.test")
        log = self.send_once(T0)
        self.assertRegex(log, r"delivery \d+: success: 127.0.0.1_accepted_message./Remote_host_said:_250_2.0.0_Ok:_queued_as_1/"
                              r"Session_with_mx1.mx.test\[127.0.0.1\]:%d:_TLS_TLSv1_3:" % p.port)
        [m] = p.messages()
        self.assertTrue(m["tls"])
        self.assertEqual((m["from"], m["rcpt"]), ("sender@aonly.test", ["u@mx.test"]))
        data = m["data"].replace("\r\n", "\n")
        self.assertIn("\nSubject: full path\n", data)
        self.assertTrue(data.endswith("\n\nhello\n.dot\n"), data)  # dot-stuffed and back
        self.assertTrue(self.queue_empty())

    def test_broken_tls_handshake_falls_back_to_plaintext_unless_required(self):
        p = self.peer("--broken-tls")
        self.routes("::%d\n" % p.port)
        self.inject(MSG, "sender@aonly.test", "u@mx.test")
        log = self.send_once(T0)
        self.assertRegex(log, r"success: .*no_TLS_\(TLS_handshake_failed:")
        self.assertEqual(len(p.messages()), 1)
        self.assertFalse(p.messages()[0]["tls"])
        # Required for this domain: deferred with COMPAT A's text, not sent.
        self.root.write_control("tlsrequired", "mx.test\n")
        self.inject(MSG, "sender@aonly.test", "v@mx.test")
        log = self.send_once(T0)
        self.assertRegex(log, r"deferral: TLS_not_available:_connect_failed:_.*;_connected_to_127.0.0.1./")
        self.assertEqual(len(p.messages()), 1)


class TestFullPathToOurSmtpd(FullPath):
    def test_delivery_to_qmail_smtpd_under_tcpserver(self):
        from harness import TcpServer
        from smtpd_lib import STUBQQ, write_exec
        qq_dir = os.path.join(self.root.dir, "stubqq")
        os.makedirs(qq_dir)
        stubqq = write_exec(os.path.join(self.root.dir, "stubqq.py"), STUBQQ)
        self.root.write_control("rcpthosts", "localhost\nmx.test\n")
        srv = TcpServer(self.root, [self.root.bin("qmail-smtpd")],
                        env={"QMAILQUEUE": stubqq, "STUBQQ_DIR": qq_dir, "DNSCACHEIP": self.dns.addr})
        self.addCleanup(srv.stop)
        self.routes("::%d\n" % srv.port)
        self.inject(MSG, "sender@aonly.test", "u@mx.test")
        log = self.send_once(T0)
        self.assertRegex(log, r"success: 127.0.0.1_accepted_message./Remote_host_said:_250_ok_.*_TLS_TLSv1_")
        envs = [f for f in os.listdir(qq_dir) if f.endswith(".env")]
        self.assertEqual(len(envs), 1)
        with open(os.path.join(qq_dir, envs[0]), "rb") as f:
            self.assertEqual(f.read(), b"Fsender@aonly.test\0Tu@mx.test\0\0")
        self.assertTrue(self.queue_empty())


def tearDownModule():
    stop_shared_dns()


if __name__ == "__main__":
    unittest.main()
