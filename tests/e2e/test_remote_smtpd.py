"""qmail-remote against our own qmail-smtpd under the real tcpserver: STARTTLS
with the installation's servercert.pem, PIPELINING, and qmail-smtpd's refusals
coming back as qmail-remote reports with their transcript.

qmail-smtpd hands messages to the stand-in qmail-queue of smtpd_lib (QMAILQUEUE).
"""
import unittest

from harness import need_module
from smtpd_lib import SmtpdCase
from dnsserver import shared_dns, stop_shared_dns
from test_remote_direct import MSG, parse_report


class TestRemoteToSmtpd(SmtpdCase):
    def setUp(self):
        need_module("dnslib")
        super().setUp()
        self.dns = shared_dns()
        r = self.root
        r.write_control("rcpthosts", "localhost\nmx.test\n")
        r.write_control("notipme", "127.0.0.1\n")
        r.write_control("helohost", "out.vqmail.test\n")

    def start(self, **env):
        e = {"DNSCACHEIP": self.dns.addr}
        e.update(env)
        srv = self.smtpd(env=e)
        self.root.write_control("smtproutes", "::%d\n" % srv.port)
        return srv

    def remote(self, host, sender, *recips, msg=MSG):
        r = self.root.run("qmail-remote", host, sender, *recips, input=msg,
                          env={"DNSCACHEIP": self.dns.addr}, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return parse_report(r.stdout)

    def test_delivery_over_starttls(self):
        self.start()
        rep = self.remote("mx.test", "me@aonly.test", "u@mx.test", "v@mx.test")
        self.assertEqual([l for l, _ in rep], ["r", "r", "K"], rep)
        self.assertTrue(rep[-1][1].startswith("127.0.0.1 accepted message.\nRemote host said: 250 ok "), rep)
        self.assertIn("Session with mx1.mx.test[127.0.0.1]:", rep[-1][1])
        self.assertIn(": TLS TLSv1_", rep[-1][1])
        [(env, msg)] = self.queued()
        self.assertEqual(env, b"Fme@aonly.test\0Tu@mx.test\0Tv@mx.test\0\0")
        self.assertTrue(msg.endswith(MSG), msg)
        self.assertIn(b"out.vqmail.test", msg)  # the HELO name in Received:

    def test_relay_refusal_is_permanent_with_transcript(self):
        self.start()
        rep = self.remote("aonly.test", "me@aonly.test", "u@aonly.test")
        self.assertEqual(rep[0][0], "h", rep)
        text = rep[0][1]
        self.assertTrue(text.startswith("127.0.0.1 does not like recipient.\nRemote host said: 553 "), text)
        self.assertIn("while talking to aonly.test[127.0.0.1]:\n>>> RCPT TO:<u@aonly.test>\n<<< 553 ", text)
        self.assertEqual(rep[1][0], "D")
        self.assertTrue(self.nothing_queued())

    def test_size_over_databytes_refused_at_mail(self):
        self.root.write_control("databytes", "20\n")
        self.start()
        rep = self.remote("mx.test", "me@aonly.test", "u@mx.test")
        self.assertEqual(len(rep), 1, rep)
        letter, text = rep[0]
        self.assertEqual(letter, "D", text)
        self.assertTrue(text.startswith("Connected to 127.0.0.1 but sender was rejected.\nRemote host said: 552 "), text)
        self.assertIn(">>> MAIL FROM:<me@aonly.test> SIZE=", text)


def tearDownModule():
    stop_shared_dns()


if __name__ == "__main__":
    unittest.main()
