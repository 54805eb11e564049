"""qmail-inject and sendmail: options cron, PHP mail() and scripts use, header
rewriting, envelope, exit codes. qmail-queue is replaced through QMAILQUEUE
by a recorder (the path from sendmail to a Maildir is in test_local_flow)."""
import os
import subprocess
import tempfile
import unittest

from harness import Root


class Inject(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = Root(me="mail.example.com")
        cls.root.write_control("defaultdomain", "example.com\n")
        cls.tmp = tempfile.mkdtemp(dir=cls.root.dir)
        cls.qq = os.path.join(cls.tmp, "qq")
        cls.out = os.path.join(cls.tmp, "out")
        with open(cls.qq, "w") as f:
            f.write(f"#!/bin/sh\ncat > {cls.out}.msg\ncat <&1 > {cls.out}.env\n"
                    f"exit $(cat {cls.out}.code 2>/dev/null || echo 0)\n")
        os.chmod(cls.qq, 0o755)

    @classmethod
    def tearDownClass(cls):
        cls.root.cleanup()

    def setUp(self):
        for ext in (".msg", ".env", ".code"):
            if os.path.exists(self.out + ext):
                os.unlink(self.out + ext)

    def run_prog(self, prog, *args, msg=b"", env=None):
        e = {"QMAILQUEUE": self.qq, "USER": "www", "LOGNAME": "www", "NAME": "",
             "MAILNAME": "", "QMAILNAME": "", "QMAILUSER": "", "MAILUSER": "",
             "QMAILHOST": "", "MAILHOST": "", "VQMAIL_NOW": "812090813"}
        e.update(env or {})
        return self.root.run(prog, *args, input=msg, env=e)

    def queued(self):
        with open(self.out + ".msg", "rb") as f:
            msg = f.read()
        with open(self.out + ".env", "rb") as f:
            env = f.read()
        return msg, env

    def test_php_mail_style(self):
        # PHP: sendmail -t -i, with -f from sendmail_path.
        msg = b"To: joe@example.net\nSubject: order\nX-PHP-Originating-Script: 33:a.php\n\nbody\r\n\x00\xe9\n.\nafter dot\n"
        r = self.run_prog("sendmail", "-t", "-i", "-fshop@site.example", msg=msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        self.assertEqual(env, b"Fshop@site.example\0Tjoe@example.net\0\0")
        head, body = m.split(b"\n\n", 1)
        self.assertEqual(body, b"body\r\n\x00\xe9\n.\nafter dot\n")
        self.assertIn(b"\nFrom: shop@site.example\n", b"\n" + head + b"\n")
        self.assertIn(b"Date: 26 Sep 1995 04:46:53 -0000", head)
        self.assertRegex(head, rb"Message-ID: <19950926044653\.\d+\.qmail@mail\.example\.com>")

    def test_grouped_flags_quoted_local_parts_and_spaced_field_names(self):
        msg = (b'To: "joe smith"@example.net, Bob <"b b"@example.org>\nBcc : hidden@example.org\n'
               b"Subject : spaced\n\nbody\n")
        for flags in (["-ti"], ["-it"], ["-tf", "shop@site.example"]):
            with self.subTest(flags=flags):
                r = self.run_prog("sendmail", *flags, msg=msg)
                self.assertEqual(r.returncode, 0, r.stderr)
                m, env = self.queued()
                self.assertIn(b"\0Tjoe smith@example.net\0Tb b@example.org\0Thidden@example.org\0\0", env)
                head, body = m.split(b"\n\n", 1)
                self.assertIn(b'To: "joe smith"@example.net, Bob <"b b"@example.org>', head)
                self.assertNotIn(b"hidden", m)  # the Bcc field is gone, not moved into the body
                self.assertIn(b"Subject : spaced", head)
                self.assertEqual(body, b"body\n")
        # -f is parsed as an address, as qmail-inject parses it: a line end is
        # white space there, so nothing of it reaches the envelope.
        r = self.run_prog("sendmail", "-f", "a@b\nX: y", "joe@example.net", msg=b"Subject: x\n\nbody\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        self.assertFalse(any(c < 32 and c != 0 for c in env), env)
        self.assertTrue(env.endswith(b"\0Tjoe@example.net\0\0"), env)

    def test_iso_8859_1_fields_and_long_lists(self):
        # An ISO-8859-1 display name and local part: completed like the rest,
        # bytes unchanged in the field and in the envelope.
        msg = b"To: J\xf6rg <joerg>, j\xf6rg\nFrom: Ren\xe9 <rene>\n\nbody\n"
        r = self.run_prog("qmail-inject", msg=msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        self.assertIn(b"\0Tjoerg@mail.example.com\0Tj\xf6rg@mail.example.com\0\0", env)
        self.assertIn(b"To: J\xf6rg <joerg@mail.example.com>, j\xf6rg@mail.example.com\n", m)
        self.assertIn(b"From: Ren\xe9 <rene@mail.example.com>\n", m)
        # A long list of short names is folded after commas, within 78 columns.
        names = ", ".join(f"user{i}" for i in range(40))
        r = self.run_prog("qmail-inject", msg=f"To: {names}\n\nbody\n".encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        head = m.split(b"\n\n", 1)[0]
        to = head[head.index(b"To:"):].split(b"\n")
        to = to[:next((i for i, l in enumerate(to[1:], 1) if not l.startswith(b" ")), len(to))]
        self.assertGreater(len(to), 1)
        self.assertTrue(all(len(l) <= 78 for l in to), to)
        self.assertEqual(env.count(b"\0T"), 40)

    def test_qmailinject_f_and_i_replace_from_and_message_id(self):
        msg = b"From: forged@evil.example\nMessage-ID: <old@evil.example>\nTo: joe@example.net\n\nbody\n"
        r = self.run_prog("qmail-inject", msg=msg, env={"QMAILINJECT": "fi"})
        self.assertEqual(r.returncode, 0, r.stderr)
        m, _ = self.queued()
        head = m.split(b"\n\n", 1)[0]
        self.assertNotIn(b"evil.example", head)
        self.assertIn(b"\nFrom: www@mail.example.com\n", b"\n" + head + b"\n")
        self.assertRegex(head, rb"\nMessage-ID: <[^>]+@mail\.example\.com>")

    def test_qmailinject_verp_and_mail_followup_to(self):
        lists = os.path.join(self.tmp, "lists")
        with open(lists, "w") as f:
            f.write("# my lists\nlist@lists.example.org  \n\n")
        msg = b"To: List@lists.example.org\nCc: bob\nSubject: s\n\nbody\n"
        # r: per-recipient VERP, expanded by qmail-send; m: time and pid.
        r = self.run_prog("qmail-inject", msg=msg, env={"QMAILINJECT": "mr", "QMAILMFTFILE": lists})
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        self.assertRegex(env, rb"^Fwww-812090813\.\d+-@mail\.example\.com-@\[\]\0TList@lists\.example\.org\0"
                              rb"Tbob@mail\.example\.com\0\0$")
        head = m.split(b"\n\n", 1)[0]
        self.assertIn(b"\nMail-Followup-To: List@lists.example.org,\n  bob@mail.example.com\n", head)
        # Not to a list: no Mail-Followup-To. A missing file is no list; an
        # unreadable one is a temporary failure.
        r = self.run_prog("qmail-inject", msg=b"To: a@x.org\n\nb\n", env={"QMAILMFTFILE": lists})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"Mail-Followup-To", self.queued()[0])
        r = self.run_prog("qmail-inject", msg=msg, env={"QMAILMFTFILE": lists + ".none"})
        self.assertEqual(r.returncode, 0, r.stderr)
        r = self.run_prog("qmail-inject", msg=msg, env={"QMAILMFTFILE": self.tmp})
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"qmail-inject: fatal: unable to read $QMAILMFTFILE", r.stderr)
        # An mbox From line is kept as a field.
        r = self.run_prog("qmail-inject", "-n", msg=b"From joe Sat Dec  5 10:00:00 2026\nTo: a@x.org\n\nb\n")
        self.assertIn(b"\nMBOX-Line: From joe Sat Dec  5 10:00:00 2026\nTo: a@x.org\n", r.stdout)

    def test_nul_and_control_characters_in_header_addresses(self):
        # A NUL ends an address (as in qmail); what follows it never becomes
        # a recipient of its own. A line break in one refuses the message.
        r = self.run_prog("qmail-inject", msg=b"To: a@x.org\0Tevil@y.org, b@x.org\n\nhi\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.queued()[1], b"Fwww@mail.example.com\0Ta@x.org\0Tb@x.org\0\0")
        r = self.run_prog("qmail-inject", msg=b'To: "a\rb"@x.org\n\nhi\n')
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"control character", r.stderr)

    def test_backslashes_in_header_addresses(self):
        # As token822 reads them: an escaped space is part of the address, an
        # escaped comma no separator, and a backslash at a line's end (the
        # field's end, or before a fold) no escape of the line break.
        cases = [(b"To: a\\ b@x.org, c\\,d@x.org\n", [b"a b@x.org", b"c,d@x.org"]),
                 (b"To: a\\\nCc: b@x.org\n", [b"a@mail.example.com", b"b@x.org"]),
                 (b"To: x@y.org, a\\\r\n", [b"x@y.org", b"a@mail.example.com"]),
                 (b"To: a\\\n b@x.org\n", [b"a@mail.example.com", b"b@x.org"])]
        for head, want in cases:
            with self.subTest(head=head):
                r = self.run_prog("qmail-inject", msg=head + b"\nhi\n")
                self.assertEqual(r.returncode, 0, r.stderr)
                env = self.queued()[1]
                self.assertEqual(env, b"Fwww@mail.example.com\0" + b"".join(b"T" + w + b"\0" for w in want) + b"\0")

    def test_qmail_queue_runs_in_qmails_home(self):
        # As qmail's callers chdir to /var/qmail first: a relative QMAILQUEUE
        # works from anywhere, and the program starts there.
        pwdqq = os.path.join(self.tmp, "pwdqq")
        with open(pwdqq, "w") as f:
            f.write(f"#!/bin/sh\npwd > {self.out}.pwd\ncat > /dev/null\nexit 0\n")
        os.chmod(pwdqq, 0o755)
        r = self.run_prog("qmail-inject", "a@x.org", msg=b"Subject: s\n\nb\n", env={"QMAILQUEUE": pwdqq})
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(self.out + ".pwd") as f:
            self.assertEqual(os.path.realpath(f.read().strip()), os.path.realpath(self.root.qmail))
        before = len(os.listdir(self.root.q("queue", "todo")))
        for prog in ("qmail-inject", "sendmail"):
            r = subprocess.run([self.root.bin(prog), "a@x.org"], input=b"Subject: rel\n\nb\n", cwd="/",
                               capture_output=True, timeout=60,
                               env=self.root.env(QMAILQUEUE="bin/qmail-queue", USER="www"))
            self.assertEqual(r.returncode, 0, (prog, r.stderr))
        self.assertEqual(len(os.listdir(self.root.q("queue", "todo"))), before + 2)

    def test_cron_style_local_user(self):
        # cron: sendmail -FCronDaemon -i -odi -oem -oi -t, To: a bare user name.
        msg = b"To: root\nSubject: Cron <www@host> job\n\noutput\n"
        r = self.run_prog("sendmail", "-FCronDaemon", "-i", "-odi", "-oem", "-oi", "-t", msg=msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        self.assertEqual(env, b"Fwww@mail.example.com\0Troot@mail.example.com\0\0")
        self.assertIn(b"To: root@mail.example.com\n", m)
        self.assertIn(b"From: CronDaemon <www@mail.example.com>\n", m)

    def test_bcc_removed_and_recipient(self):
        msg = b"To: a@x.org\nBcc: hidden@y.org\nReturn-Path: <bounce@z.org>\n\nb\n"
        r = self.run_prog("qmail-inject", msg=msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        self.assertNotIn(b"hidden", m)
        self.assertNotIn(b"Return-Path", m)
        self.assertEqual(env, b"Fbounce@z.org\0Ta@x.org\0Thidden@y.org\0\0")

    def test_arguments_only_and_header_mode(self):
        msg = b"To: a@x.org\n\nb\n"
        self.assertEqual(self.run_prog("sendmail", "r@y.org", msg=msg).returncode, 0)
        self.assertEqual(self.queued()[1], b"Fwww@mail.example.com\0Tr@y.org\0\0")
        self.assertEqual(self.run_prog("qmail-inject", "-h", "-f", "", "r@y.org", msg=msg).returncode, 0)
        self.assertEqual(self.queued()[1], b"F\0Ta@x.org\0\0")

    def test_print_only(self):
        r = self.run_prog("qmail-inject", "-n", msg=b"To: box\n\nhello")
        self.assertEqual(r.returncode, 0)
        # The envelope sender comes first, as a Return-Path field.
        self.assertTrue(r.stdout.startswith(b"Return-Path: <www@mail.example.com>\n"), r.stdout)
        self.assertIn(b"To: box@mail.example.com\n", r.stdout)
        self.assertTrue(r.stdout.endswith(b"\n\nhello\n"))
        self.assertFalse(os.path.exists(self.out + ".msg"))

    def test_exit_codes(self):
        r = self.run_prog("sendmail", "-q", msg=b"x")
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"sendmail: usage: sendmail [ -t ] [ -fsender ] [ -Fname ] [ -bp ] [ -bs ] [ arg ... ]", r.stderr)
        r = self.run_prog("qmail-inject", msg=b"Subject: none\n\nb\n")
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"no recipients", r.stderr)
        with open(self.out + ".code", "w") as f:
            f.write("53")
        r = self.run_prog("sendmail", "a@b.org", msg=b"\nb\n")
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"qq write error or disk full (#4.3.0)", r.stderr)
        with open(self.out + ".code", "w") as f:
            f.write("11")
        r = self.run_prog("sendmail", "a" * 1200 + "@b.org", msg=b"\nb\n")
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"envelope address too long for qq (#5.1.3)", r.stderr)
        r = self.run_prog("qmail-inject", "a@b.org", msg=b"", env={"QMAILQUEUE": "/nonexistent"})
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"unable to exec qq", r.stderr)

    def test_unparsable_address_field_refuses_the_message(self):
        # As qmail's token822: a comment or quoted string left open, a word
        # starting with `)`, a `>` without `<`, a group without `;` stop the
        # message, whether the field names recipients or not; nothing is queued.
        for field in (b"To: joe@example.net (open", b"Cc: a@b.org,\n )x@y.org",
                      b"Reply-To: \"open <a@b.org>", b"From: a@b.org>", b"Bcc: team: a@b.org"):
            r = self.run_prog("sendmail", "-t", msg=field + b"\nSubject: s\n\nbody\n")
            self.assertEqual(r.returncode, 100, field)
            self.assertEqual(r.stderr, b"qmail-inject: fatal: unable to parse this line: "
                             + b" ".join(field.split()) + b"\n", field)
            self.assertFalse(os.path.exists(self.out + ".msg"), field)
        # An argument: qmail quotes its local part, so only the domain counts.
        r = self.run_prog("sendmail", "joe@example.net (open", msg=b"Subject: s\n\nb\n")
        self.assertEqual(r.returncode, 100)
        self.assertEqual(r.stderr, b"qmail-inject: fatal: unable to parse address: joe@example.net (open\n")
        self.assertFalse(os.path.exists(self.out + ".msg"))
        # A `)` inside a word, and groups and routes that close, are addresses.
        r = self.run_prog("sendmail", "-t", msg=b"To: a@b.org), list: c@d.org;\nCc: <@r:e@f.org>\n\nb\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, env = self.queued()
        self.assertEqual(env, b"Fwww@mail.example.com\0Ta@b.org)\0Tc@d.org\0Te@f.org\0\0")
        # Words with only white space between, or after <...>, are addresses
        # of their own, as qmail reads them.
        r = self.run_prog("sendmail", "-t", msg=b"To: c@d.org e\nCc: <a@b.org> x (note)\n\nb\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        self.assertEqual(env, b"Fwww@mail.example.com\0Tc@d.org\0Te@mail.example.com\0"
                              b"Ta@b.org\0Tx@mail.example.com\0\0")
        self.assertIn(b"To: c@d.org, e@mail.example.com\nCc: <a@b.org>, x@mail.example.com (note)\n", m)
        r = self.run_prog("sendmail", "-t", msg=b"To: Alice <alice@x.org> Bob <bob@y.org>\n\nb\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        m, env = self.queued()
        self.assertEqual(env, b"Fwww@mail.example.com\0Talice@x.org\0Tbob@y.org\0\0")
        self.assertIn(b"To: Alice <alice@x.org>, Bob <bob@y.org>\n", m)
        # A -f sender that does not parse stops the message too; one trailing
        # dot goes from every address (qmail's rwextradot).
        r = self.run_prog("sendmail", "-f", "joe@example.net (open", "a@b.org", msg=b"\nb\n")
        self.assertEqual((r.returncode, r.stderr), (100, b"qmail-inject: fatal: unable to parse this line: "
                                                           b"joe@example.net (open\n"))
        r = self.run_prog("sendmail", "-f", "joe@example.net.", "bob@example.org.", msg=b"\nb\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, env = self.queued()
        self.assertEqual(env, b"Fjoe@example.net\0Tbob@example.org\0\0")
        # An argument's local part is quoted by qmail, so it keeps its dot.
        r = self.run_prog("qmail-inject", "-f", ".", "root.", msg=b"\nb\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, env = self.queued()
        self.assertEqual(env, b"F.@mail.example.com\0Troot.@mail.example.com\0\0")
        # One argument is one recipient, as qmail quotes its local part.
        r = self.run_prog("sendmail", "a b", "a@x.org b@y.org", "c@y.org (C)", msg=b"\nb\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        _, env = self.queued()
        self.assertEqual(env, b"Fwww@mail.example.com\0Ta b@mail.example.com\0Ta@x.org b@y.org\0Tc@y.org\0\0")

    def test_truncated_input(self):
        r = self.run_prog("sendmail", "a@b.org", msg=b"To: a@b.org\nSubject: cut in the midd")
        self.assertEqual(r.returncode, 0, r.stderr)
        m, _ = self.queued()
        self.assertIn(b"Subject: cut in the midd\n", m)

    def test_mailq_runs_qmail_qread(self):
        if not os.path.exists(self.root.bin("qmail-qread")):
            r = self.run_prog("mailq")
            self.assertEqual(r.returncode, 111)
            self.assertIn(b"unable to run", r.stderr)
            self.skipTest("qmail-qread is not built yet")
        for prog, args in (("mailq", ()), ("sendmail", ("-bp",))):
            r = self.run_prog(prog, *args)
            self.assertEqual(r.returncode, 0, r.stderr)


if __name__ == "__main__":
    unittest.main()
