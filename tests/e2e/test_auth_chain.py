"""vchkpw in its real chains under the real tcpserver: SMTP AUTH through
qmail-smtpd (PLAIN, LOGIN, CRAM-MD5), POP3 through qmail-popup + qmail-pop3d
(USER/PASS, APOP), and POP-before-SMTP: a POP3 login lets the same IP relay
until the window closes (clock injected)."""
import os
import poplib
import smtplib
import unittest

from auth_lib import NO_POP, NO_RELAY, NO_SMTP, AuthCase

T0 = 1_800_000_000


class Chain(AuthCase):
    def setUp(self):
        super().setUp()
        for prog in ("qmail-smtpd", "qmail-popup", "qmail-pop3d"):
            if not os.path.exists(self.root.bin(prog)):
                self.skipTest(f"{prog} is not built")
        self.add_domain("example.com")
        self.user("joe", "example.com", "secret1")
        self.user("ann", "example.com", "annpass", clear="annpass")
        self.user("ns", "example.com", "pw1", flags=NO_SMTP)
        self.user("np", "example.com", "pw1", flags=NO_POP)
        self.user("nr", "example.com", "pw1", flags=NO_RELAY)
        # No DNS in these tests, and no waiting after a failed AUTH.
        self.root.write_control("mfcheck", "0\n")
        self.root.write_control("smtpauthdelay", "0\n")
        self.root.write_control("pop3interval", "0\n")

    def smtpd(self, now=T0, rules=None):
        argv = [self.root.bin("qmail-smtpd"), "localhost", self.root.bin("vchkpw"), "/bin/true"]
        return self.serve(argv, env={"VQMAIL_NOW": now, "QMAILQUEUE": "/bin/false"}, rules=rules)

    def popup(self, now=T0):
        argv = [self.root.bin("qmail-popup"), "mail.example.com", self.root.bin("vchkpw"),
                self.root.bin("qmail-pop3d"), "Maildir"]
        return self.serve(argv, env={"VQMAIL_NOW": now})

    def auth(self, srv, mech, user, password):
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
            s.ehlo("client.example")
            s.user, s.password = user, password
            method = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login, "CRAM-MD5": s.auth_cram_md5}[mech]
            try:
                code, _ = s.auth(mech, method)
            except smtplib.SMTPAuthenticationError as e:
                code = e.smtp_code
            return code

    def relays(self, srv):
        """Whether an unauthenticated client may send to a foreign domain."""
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as s:
            s.ehlo("client.example")
            s.mail("joe@example.com")
            code, msg = s.rcpt("someone@foreign.example")
            return code == 250

    def pop_login(self, srv, user, password, apop=False):
        p = poplib.POP3("127.0.0.1", srv.port, timeout=20)
        try:
            if apop:
                p.apop(user, password)
            else:
                p.user(user)
                p.pass_(password)
            p.stat()
            p.quit()
            return True
        except poplib.error_proto:
            return False
        finally:
            p.close()

    def test_smtp_auth_mechanisms_through_vchkpw(self):
        srv = self.smtpd()
        for mech in ("PLAIN", "LOGIN"):
            self.assertEqual(self.auth(srv, mech, "joe@example.com", "secret1"), 235, mech)
            self.assertEqual(self.auth(srv, mech, "joe%example.com", "secret1"), 235, mech)
            self.assertEqual(self.auth(srv, mech, "joe@example.com", "wrong"), 535, mech)
            self.assertEqual(self.auth(srv, mech, "ns@example.com", "pw1"), 535, mech)
        # CRAM-MD5 needs the clear password vpasswd stores for ann.
        self.assertEqual(self.auth(srv, "CRAM-MD5", "ann@example.com", "annpass"), 235)
        self.assertEqual(self.auth(srv, "CRAM-MD5", "ann@example.com", "wrong"), 535)
        self.assertEqual(self.auth(srv, "CRAM-MD5", "joe@example.com", "secret1"), 535)
        # SMTP AUTH never opens the relay for the IP.
        self.assertEqual(self.read_open_smtp(), "")

    def read_open_smtp(self):
        with open(self.root.v("etc", "open-smtp")) as f:
            return f.read()

    def test_pop3_logins_through_vchkpw(self):
        srv = self.popup()
        self.assertTrue(self.pop_login(srv, "joe@example.com", "secret1"))
        self.assertTrue(os.path.isdir(self.root.maildir("joe", "example.com")))
        self.assertTrue(self.pop_login(srv, "ann@example.com", "annpass", apop=True))
        self.assertFalse(self.pop_login(srv, "joe@example.com", "secret1", apop=True))
        self.assertFalse(self.pop_login(srv, "joe@example.com", "wrong"))
        self.assertFalse(self.pop_login(srv, "np@example.com", "pw1"))

    def test_pop_before_smtp_direct_and_through_tcpserver_rules(self):
        direct = self.smtpd(now=T0 + 10)
        ruled = self.smtpd(now=T0 + 10, rules=self.root.v("etc", "tcp.smtp.cdb"))
        self.assertFalse(self.relays(direct))
        self.assertFalse(self.relays(ruled))
        # A NO_RELAY user's login opens nothing.
        self.assertTrue(self.pop_login(self.popup(), "nr@example.com", "pw1"))
        self.assertFalse(self.relays(direct))
        self.assertTrue(self.pop_login(self.popup(), "joe@example.com", "secret1"))
        self.assertIn('127.0.0.1:allow,RELAYCLIENT="",RBLSMTPD=""\t%d\n' % T0, self.read_open_smtp())
        self.assertTrue(self.relays(direct))
        self.assertTrue(self.relays(ruled))
        # Just inside the window, then after it (the clock is injected).
        self.assertTrue(self.relays(self.smtpd(now=T0 + 3599)))
        self.assertFalse(self.relays(self.smtpd(now=T0 + 3600)))
        r = self.root.run("clearopensmtp", env={"VQMAIL_NOW": T0 + 3600})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertFalse(self.relays(ruled))


if __name__ == "__main__":
    unittest.main()
