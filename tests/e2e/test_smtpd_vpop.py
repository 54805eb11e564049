"""qmail-smtpd with vpopmail: AUTH through the real vchkpw, POP-before-SMTP
after a real POP3 login, and unknown recipients of vpopmail domains refused
at RCPT (control/rcptcheck)."""
import base64
import hashlib
import hmac
import os
import poplib
import smtplib
import ssl
import time
import unittest

from harness import IN_CI
from smtpd_lib import SmtpdCase, Raw
from test_smtpd_relay import TRICKS

OK = "250 ok\r\n"
NO_RELAY = "553 sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)\r\n"
NO_MAILBOX = "550 sorry, no mailbox here by that name. (#5.1.1)\r\n"


class VpopCase(SmtpdCase):
    def setUp(self):
        super().setUp()
        r = self.root
        if not os.path.exists(r.bin("vadddomain")) and not IN_CI:
            raise unittest.SkipTest("vpopmail's admin programs are not built")
        r.write_control("smtpauthdelay", "0\n")
        r.add_domain("example.test")
        r.run("vadduser", "-C", "joe@example.test", "secret1", check=True)
        r.add_user("ann@example.test", "annpass1")
        self.vchkpw = r.bin("vchkpw")

    def vsmtpd(self, **kw):
        return self.smtpd(args=["localhost", self.vchkpw, "/bin/true"], **kw)

    def battery(self, c, want):
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        for t in TRICKS:
            self.assertEqual(c.cmd(f"RCPT TO:{t}"), want, t)
        self.assertEqual(c.cmd("RSET"), "250 flushed\r\n")


class RcptCheck(VpopCase):
    def test_unknown_users_refused_at_rcpt(self):
        r = self.root
        r.run("valias", "-i", "&joe@example.test", "sales@example.test", check=True)
        # A user whose mail vpopmail bounces (vmoduser -b) has no mailbox.
        r.add_user("locked@example.test", "lockpass1")
        r.run("vmoduser", "-b", "locked@example.test", check=True)
        dd = r.domain_dir("example.test")
        with open(os.path.join(dd, ".qmail-list-default"), "w") as f:
            f.write("|/bin/true\n")
        srv = self.vsmtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        for to, want in [("joe@example.test", OK), ("JOE@Example.Test", OK),
                         ("postmaster@example.test", OK), ("sales@example.test", OK),
                         ("list-subscribe@example.test", OK), ("list-a/b@example.test", OK),
                         ("nobody@example.test", NO_MAILBOX), ("list@example.test", NO_MAILBOX),
                         # vdelivermail delivers user-ext to user
                         ("joe-lists@example.test", OK), ("Joe-Foo-Bar@example.test", OK),
                         ("nobody-lists@example.test", NO_MAILBOX),
                         ("locked@example.test", NO_MAILBOX), ("locked-x@example.test", NO_MAILBOX),
                         # .qmail-default itself is the catch-all, not a user
                         ("default@example.test", NO_MAILBOX),
                         ("anyone@localhost", OK)]:
            self.assertEqual(c.cmd(f"RCPT TO:<{to}>"), want, to)

    def test_addresses_qmail_routes_past_vpopmail_are_accepted(self):
        r = self.root
        # A per-address virtualdomains line and an exact users/assign entry
        # (after qmail-newu) take an address out of vdelivermail's hands.
        with open(r.control("virtualdomains"), "a") as f:
            f.write("special@example.test:list\n")
        assign = r.q("users", "assign")
        with open(assign) as f:
            lines = [l for l in f.read().splitlines() if l != "."]
        lines.append("=example.test-sysbox:alias:%d:%d:%s:::" % (os.getuid(), os.getgid(), r.q("alias")))
        with open(assign, "w") as f:
            f.write("\n".join(lines) + "\n.\n")
        r.run("qmail-newu", check=True)
        srv = self.vsmtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        for to, want in [("special@example.test", OK), ("Special@Example.test", OK),
                         ("sysbox@example.test", OK), ("SysBox@example.test", OK),
                         ("nobody@example.test", NO_MAILBOX), ("sysbox2@example.test", NO_MAILBOX)]:
            self.assertEqual(c.cmd(f"RCPT TO:<{to}>"), want, to)
        # vpasswd and its cdb unreadable (a corrupt cdb alone is rebuilt from
        # vpasswd; directories in their places are not): those addresses
        # still go past vpopmail; the others wait (451) rather than being
        # refused.
        for name in ("vpasswd.cdb", "vpasswd"):
            path = os.path.join(r.domain_dir("example.test"), name)
            os.unlink(path)
            os.mkdir(path)
        c = Raw(self.vsmtpd().port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<special@example.test>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<sysbox@example.test>"), OK)
        self.assertTrue(c.cmd("RCPT TO:<nobody@example.test>").startswith("451 "))

    def test_what_qmail_does_not_give_vpopmail_is_not_judged_by_it(self):
        r = self.root
        # A hand-made virtual domain served from ~alias (an assign line with
        # an extension, as vpopmail never writes): qmail-local reads
        # ~alias/.qmail-plain-*, so vpasswd has no say.
        r.add_domain("other.test")
        assign = r.q("users", "assign")
        with open(assign) as f:
            lines = [l for l in f.read().splitlines() if l != "."]
        lines.append("+plain.test-:alias:%d:%d:%s:-:plain-:" % (os.getuid(), os.getgid(), r.q("alias")))
        with open(assign, "w") as f:
            f.write("\n".join(sorted(lines)) + "\n.\n")
        r.run("qmail-newu", check=True)
        with open(r.control("rcpthosts"), "a") as f:
            f.write("plain.test\n")
        # A vpopmail domain also in locals is delivered as a local domain.
        with open(r.control("locals"), "a") as f:
            f.write("other.test\n")
        srv = self.vsmtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        for to in ("info@plain.test", "root@other.test", "nobody@other.test"):
            self.assertEqual(c.cmd(f"RCPT TO:<{to}>"), OK, to)
        self.assertEqual(c.cmd("RCPT TO:<nobody@example.test>"), NO_MAILBOX)
        # A domain directory that is not there (a disk not mounted yet):
        # mail waits rather than being refused for good.
        dd = r.domain_dir("example.test")
        os.rename(dd, dd + ".away")
        try:
            c = Raw(self.vsmtpd().port)
            c.reply()
            self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
            self.assertTrue(c.cmd("RCPT TO:<postmaster@example.test>").startswith("451 "))
            self.assertTrue(c.cmd("RCPT TO:<joe@example.test>").startswith("451 "))
        finally:
            os.rename(dd + ".away", dd)

    def test_user_with_a_bang_in_the_name_gets_outside_mail(self):
        self.root.add_user("bang!user@example.test", "bangpass1")
        srv = self.vsmtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<bang!user@example.test>"), OK)
        # with an extension too (vdelivermail's user-ext rule delivers it).
        self.assertEqual(c.cmd("RCPT TO:<bang!user-lists@example.test>"), OK)
        # Other ! addresses are still routes, refused without relay rights.
        self.assertEqual(c.cmd("RCPT TO:<evil.example!joe@example.test>"), NO_RELAY)
        self.assertEqual(c.cmd("RCPT TO:<bang!user%evil.example@example.test>"), NO_RELAY)

    def test_catch_all_accepts_everything(self):
        dd = self.root.domain_dir("example.test")
        # The old bounce line, commented out, stays in the file.
        with open(os.path.join(dd, ".qmail-default"), "w") as f:
            f.write("# | %s '' bounce-no-mailbox\n| %s '' joe@example.test\n"
                    % (self.root.bin("vdelivermail"), self.root.bin("vdelivermail")))
        srv = self.vsmtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<nobody@example.test>"), OK)

    def test_rcptcheck_off(self):
        self.root.write_control("rcptcheck", "0\n")
        srv = self.vsmtpd()
        c = Raw(srv.port)
        c.reply()
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<nobody@example.test>"), OK)


class Vchkpw(VpopCase):
    def test_auth_mechanisms_with_vchkpw(self):
        plain = self.vsmtpd()
        smtps = self.vsmtpd(env={"SMTPS": "1"})
        ctx = ssl.create_default_context(cafile=self.root.control("servercert.pem"))
        for mode, port in [("starttls", plain.port), ("smtps", smtps.port), ("plain", plain.port)]:
            for mech in ["PLAIN", "LOGIN", "CRAM-MD5"]:
                with self.subTest(mode=mode, mech=mech):
                    if mode == "smtps":
                        c = smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=ctx)
                    else:
                        c = smtplib.SMTP("127.0.0.1", port, timeout=10)
                        if mode == "starttls":
                            c.starttls(context=ctx)
                    c.ehlo("client")
                    c.user, c.password = "joe@example.test", "secret1"
                    fn = {"PLAIN": c.auth_plain, "LOGIN": c.auth_login, "CRAM-MD5": c.auth_cram_md5}[mech]
                    self.assertEqual(c.auth(mech, fn, initial_response_ok=(mech != "LOGIN"))[0], 235)
                    self.assertEqual(c.docmd("MAIL", "FROM:<joe@example.test>")[0], 250)
                    self.assertEqual(c.docmd("RCPT", "TO:<far@elsewhere.example>")[0], 250)
                    c.quit()
        # A wrong password and a user without a clear password for CRAM-MD5.
        c = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
        c.ehlo("x")
        with self.assertRaises(smtplib.SMTPAuthenticationError) as e:
            c.login("joe@example.test", "wrong")
        self.assertEqual(e.exception.smtp_code, 535)
        c.user, c.password = "ann@example.test", "annpass1"
        self.assertEqual(c.auth("PLAIN", c.auth_plain)[0], 235)
        c.quit()
        c = smtplib.SMTP("127.0.0.1", plain.port, timeout=10)
        c.ehlo("x")
        c.user, c.password = "ann@example.test", "annpass1"
        with self.assertRaises(smtplib.SMTPAuthenticationError):
            c.auth("CRAM-MD5", c.auth_cram_md5)
        c.quit()


class PopLogin(VpopCase):
    def test_pop3_login_opens_relay_until_the_window_ends(self):
        now = int(time.time())
        popup = self.serve([self.root.bin("qmail-popup"), "localhost", self.vchkpw,
                            self.root.bin("qmail-pop3d"), "Maildir"],
                           env={"VQMAIL_NOW": str(now)})
        rules = self.root.v("etc", "tcp.smtp.cdb")
        # Before: refused.
        srv = self.vsmtpd(rules=rules)
        c = Raw(srv.port)
        c.reply()
        self.battery(c, NO_RELAY)
        c.close()
        p = poplib.POP3("127.0.0.1", popup.port, timeout=10)
        p.user("ann@example.test")
        p.pass_("annpass1")
        p.quit()
        with open(self.root.v("etc", "open-smtp")) as f:
            self.assertIn("127.0.0.1:allow,", f.read())
        # Through tcpserver's rules (RELAYCLIENT) and read directly.
        for kw in [{"rules": rules}, {}]:
            srv = self.vsmtpd(env={"VQMAIL_NOW": str(now + 1800)}, **kw)
            c = Raw(srv.port)
            c.reply()
            self.battery(c, OK)
            c.close()
        # After the window (60 minutes), with clearopensmtp run from cron.
        self.root.run("clearopensmtp", env={"VQMAIL_NOW": str(now + 3601)}, check=True)
        for kw in [{"rules": rules}, {}]:
            srv = self.vsmtpd(env={"VQMAIL_NOW": str(now + 3601)}, **kw)
            c = Raw(srv.port)
            c.reply()
            self.battery(c, NO_RELAY)
            c.close()
