"""qmail-smtpd is never an open relay: the classic relay tricks are refused
without relay rights and taken with them (AUTH, RELAYCLIENT from tcpserver's
rules, POP-before-SMTP through open-smtp, read by tcpserver -x or directly),
and refused again once the POP-before-SMTP window has passed (clock injected)."""
import base64
import os
import subprocess
import time

from harness import need_tool
from smtpd_lib import SmtpdCase, Raw

OK = "250 ok\r\n"
NO_RELAY = "553 sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)\r\n"

# Each would make a careless MTA forward to evil.example. "localhost" is ours.
TRICKS = [
    "<victim@evil.example>",                       # plain foreign recipient
    "<VICTIM@EVIL.EXAMPLE>",                       # upper case
    "victim@evil.example",                         # without <>
    "<victim@evil.example.>",                      # trailing dot
    "<victim%evil.example@localhost>",             # % hack
    "<victim%evil.example@[127.0.0.1]>",           # % hack via our IP literal
    "<\"victim%evil.example\"@localhost>",         # quoted % hack
    "<evil.example!victim@localhost>",             # ! path
    "<evil.example!victim>",                       # ! path without a domain
    "<\"victim@evil.example\"@localhost>",         # quoted local part with @
    "<victim\\@evil.example@localhost>",           # escaped @
    "<\"victim@evil.example\">",                   # quoted address, no domain of ours
    "<@localhost:victim@evil.example>",            # source route
    "<@localhost,@other.example:victim@evil.example>",  # multi-hop source route
    "<victim@[192.0.2.1]>",                        # foreign IP literal
    "<victim@evil.example@localhost>",             # double @
    "<victim@localhost@evil.example>",             # double @, foreign last
    "<victim@localhost.evil.example>",             # our name as a prefix
    "<victim@evil.example%localhost>",             # % in the domain
]


class RelayCase(SmtpdCase):
    def setUp(self):
        super().setUp()
        self.root.write_control("smtpauthdelay", "0\n")
        self.now = int(time.time())

    def battery(self, c, want):
        self.assertGreaterEqual(len(TRICKS), 15)
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        for t in TRICKS:
            self.assertEqual(c.cmd(f"RCPT TO:{t}"), want, t)
        self.assertEqual(c.cmd("RSET"), "250 flushed\r\n")

    def connect(self, srv):
        c = Raw(srv.port)
        self.assertTrue(c.reply().startswith("220 "))
        return c

    def relay_open(self, *args, now=None):
        env = {"VQMAIL_NOW": str(now or self.now)}
        self.root.run("relay-open", *args, env=env, check=True)

    def rules(self):
        return self.root.v("etc", "tcp.smtp.cdb")


class Battery(RelayCase):
    def test_refused_without_relay_rights(self):
        srv = self.smtpd()
        c = self.connect(srv)
        self.battery(c, NO_RELAY)
        # Our own domains still work.
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<someone@LOCALHOST>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<postmaster>"), OK)

    def test_without_rcpthosts_nothing_is_relayed(self):
        # qmail relays for everybody without control/rcpthosts; we never do.
        os.unlink(self.root.control("rcpthosts"))
        srv = self.smtpd()
        c = self.connect(srv)
        self.battery(c, NO_RELAY)
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<friend@elsewhere.example>"), NO_RELAY)
        self.assertEqual(c.cmd("RCPT TO:<postmaster>"), OK)
        self.assertEqual(c.cmd("RSET"), "250 flushed\r\n")
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0joe@example.test\0secret1").decode()),
                         "235 ok, go ahead (#2.0.0)\r\n")
        self.assertEqual(c.cmd("MAIL FROM:<joe@example.test>"), OK)
        self.assertEqual(c.cmd("RCPT TO:<friend@elsewhere.example>"), OK)

    def test_morercpthosts_cdb(self):
        r = self.root
        with open(r.control("morercpthosts"), "w") as f:
            f.write("More.Example\n.wild.example\n")
        r.run("qmail-newmrh", check=True)
        self.assertTrue(os.path.exists(r.control("morercpthosts.cdb")))
        srv = self.smtpd()
        c = self.connect(srv)
        self.assertEqual(c.cmd("MAIL FROM:<someone@example.net>"), OK)
        for to, want in [("a@more.example", OK), ("a@MORE.example", OK), ("a@x.wild.example", OK),
                         ("a@wild.example", NO_RELAY), ("a@evil.example", NO_RELAY),
                         ("a%evil.example@more.example", NO_RELAY)]:
            self.assertEqual(c.cmd(f"RCPT TO:<{to}>"), want, to)

    def test_accepted_after_auth(self):
        srv = self.smtpd()
        c = self.connect(srv)
        self.battery(c, NO_RELAY)
        self.assertEqual(c.cmd("AUTH PLAIN " + base64.b64encode(b"\0joe@example.test\0secret1").decode()),
                         "235 ok, go ahead (#2.0.0)\r\n")
        self.battery(c, OK)

    def test_relayclient_from_tcpserver_rules(self):
        tcprulescheck = need_tool("tcprulescheck")
        with open(self.root.v("etc", "tcp.smtp"), "w") as f:
            f.write('127.0.0.1:allow,RELAYCLIENT="-x"\n:allow\n')
        self.relay_open("-c")
        r = subprocess.run([tcprulescheck, self.rules()], env={"TCPREMOTEIP": "127.0.0.1"},
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.stdout, "rule 127.0.0.1:\nset environment variable RELAYCLIENT=-x\nallow connection\n")
        srv = self.smtpd(rules=self.rules())
        c = self.connect(srv)
        self.battery(c, OK)
        c.send("MAIL FROM:<a@example.net>\r\nRCPT TO:<v@evil.example>\r\nDATA\r\nx\r\n.\r\n")
        self.assertEqual([c.reply() for _ in range(3)], [OK, OK, "354 go ahead\r\n"])
        self.assertTrue(c.reply().startswith("250 ok"))
        [(env, _)] = self.queued()
        self.assertEqual(env, b"Fa@example.net\0Tv@evil.example-x\0\0")


class PopBeforeSmtp(RelayCase):
    def test_open_smtp_through_tcpserver_rules_and_window(self):
        tcprulescheck = need_tool("tcprulescheck")
        self.relay_open("127.0.0.1")
        with open(self.root.v("etc", "open-smtp")) as f:
            self.assertEqual(f.read(), f'127.0.0.1:allow,RELAYCLIENT="",RBLSMTPD=""\t{self.now}\n')
        r = subprocess.run([tcprulescheck, self.rules()], env={"TCPREMOTEIP": "127.0.0.1"},
                           capture_output=True, text=True, timeout=10)
        self.assertIn("set environment variable RELAYCLIENT=\n", r.stdout)
        srv = self.smtpd(rules=self.rules(), env={"VQMAIL_NOW": str(self.now + 60)})
        c = self.connect(srv)
        self.battery(c, OK)
        c.close()
        # An hour and a second later clearopensmtp has run from cron: refused again.
        self.relay_open("-c", now=self.now + 3601)
        r = subprocess.run([tcprulescheck, self.rules()], env={"TCPREMOTEIP": "127.0.0.1"},
                           capture_output=True, text=True, timeout=10)
        self.assertNotIn("RELAYCLIENT", r.stdout)
        srv2 = self.smtpd(rules=self.rules(), env={"VQMAIL_NOW": str(self.now + 3601)})
        c = self.connect(srv2)
        self.battery(c, NO_RELAY)

    def test_open_smtp_read_directly_without_rules(self):
        self.relay_open("127.0.0.1")
        within = self.smtpd(env={"VQMAIL_NOW": str(self.now + 3599)})
        c = self.connect(within)
        self.battery(c, OK)
        c.close()
        # No clearopensmtp run: the stale entry is still in the file, but
        # qmail-smtpd applies the window itself.
        after = self.smtpd(env={"VQMAIL_NOW": str(self.now + 3601)})
        c = self.connect(after)
        self.battery(c, NO_RELAY)

    def test_static_rule_for_the_same_ip_wins(self):
        # As under tcpserver -x: an exact-IP line of tcp.smtp without
        # RELAYCLIENT comes first, so a POP3 login from that IP opens nothing.
        tcprulescheck = need_tool("tcprulescheck")
        with open(self.root.v("etc", "tcp.smtp"), "w") as f:
            f.write('127.0.0.1:allow,NOTE="shared gateway, never relays"\n:allow\n')
        self.relay_open("127.0.0.1")
        r = subprocess.run([tcprulescheck, self.rules()], env={"TCPREMOTEIP": "127.0.0.1"},
                           capture_output=True, text=True, timeout=10)
        self.assertNotIn("RELAYCLIENT", r.stdout)
        for rules in (self.rules(), None):
            with self.subTest(rules=rules):
                c = self.connect(self.smtpd(rules=rules) if rules else self.smtpd())
                self.battery(c, NO_RELAY)
                c.close()
        # A prefix rule does not: the open-smtp line for the IP wins over it.
        with open(self.root.v("etc", "tcp.smtp"), "w") as f:
            f.write('127.0.:allow,NOTE="lan"\n:allow\n')
        self.relay_open("127.0.0.1")
        c = self.connect(self.smtpd())
        self.battery(c, OK)

    def test_other_ip_gets_nothing(self):
        self.relay_open("192.0.2.77")
        srv = self.smtpd()
        c = self.connect(srv)
        self.battery(c, NO_RELAY)
