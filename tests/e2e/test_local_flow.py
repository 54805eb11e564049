"""End to end through the real programs: sendmail -> qmail-inject -> qmail-queue
-> qmail-send -> qmail-lspawn -> qmail-local -> vdelivermail -> Maildir, for a
user made with vadduser, and the qmail-format bounce for an unknown user;
forwards through qmail-local and vdelivermail's catch-all address."""
import os
import unittest

from harness import RootTestCase, maildir_messages
from test_queue_delivery import send_once

DOM = "example.com"


class Flow(RootTestCase):
    def setUp(self):
        super().setUp()
        for prog in ("qmail-send", "qmail-queue", "qmail-lspawn", "vadduser"):
            if not os.path.exists(self.root.bin(prog)):
                self.skipTest(f"{prog} is not built yet")
        self.root.add_domain(DOM)
        self.root.add_user(f"joe@{DOM}")
        self.root.add_user(f"sender@{DOM}")
        self.out = os.path.join(self.root.dir, "unused")
        # Without qmail-remote, remote mail waits in the queue (no network in tests).
        if os.path.exists(self.root.bin("qmail-remote")):
            os.unlink(self.root.bin("qmail-remote"))

    def sendmail(self, *args, msg):
        r = self.root.run("sendmail", *args, input=msg)
        self.assertEqual(r.returncode, 0, r.stderr)

    def read(self, path):
        with open(path, "rb") as f:
            return f.read()

    def test_sendmail_to_vadduser_user_and_unknown_bounces(self):
        self.sendmail("-t", "-i", f"-fsender@{DOM}",
                      msg=f"To: joe@{DOM}\nSubject: hi\n\nhello \xe9 joe\r\n".encode("latin-1"))
        self.sendmail(f"-fsender@{DOM}", f"nobody@{DOM}", msg=b"Subject: lost\n\nfor nobody\n")
        log = send_once(self.root, self.out)
        [m] = [self.read(p) for p in maildir_messages(self.root.maildir("joe", DOM))]
        self.assertTrue(m.startswith(f"Return-Path: <sender@{DOM}>\nDelivered-To: joe@{DOM}\n".encode()), m[:300])
        self.assertTrue(m.endswith(b"\n\nhello \xe9 joe\r\n"), m)
        self.assertIn(b"\nMessage-ID: <", m)
        self.assertIn(b"\nFrom: sender@example.com\n", m)
        news = os.listdir(os.path.join(self.root.maildir("joe", DOM), "new"))
        self.assertRegex(news[0], r",S=\d+$")
        [b] = [self.read(p).decode(errors="replace") for p in maildir_messages(self.root.maildir("sender", DOM))]
        self.assertIn("From: MAILER-DAEMON@", b)
        self.assertIn("Subject: failure notice\n", b)
        self.assertIn("Hi. This is the qmail-send program at ", b)
        self.assertIn(f"<nobody@{DOM}>:\nSorry, no mailbox here by that name. vpopmail (#5.1.1)\n", b)
        self.assertIn("--- Below this line is a copy of the message.", b)
        self.assertIn("for nobody\n", b)
        self.assertTrue(b.startswith("Return-Path: <>\n"), b[:100])

    def test_started_with_sigchld_ignored(self):
        """A start script that ignores SIGCHLD (inherited through exec) must not
        make a good enqueue or delivery look failed."""
        import signal
        import subprocess
        ign = lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN)
        p = subprocess.run([self.root.bin("sendmail"), f"-fsender@{DOM}", f"joe@{DOM}"],
                           input=b"Subject: sigchld\n\nhi\n", capture_output=True, env=self.root.env(),
                           preexec_fn=ign, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run([self.root.bin("sendmail"), "-bs"], input=(
            f"HELO x\r\nMAIL FROM:<sender@{DOM}>\r\nRCPT TO:<joe@{DOM}>\r\nDATA\r\nSubject: bs\r\n\r\nhi\r\n.\r\nQUIT\r\n"
        ).encode(), capture_output=True, env=self.root.env(), preexec_fn=ign, timeout=60)
        self.assertIn(b"\r\n250 ok ", p.stdout)
        d = subprocess.run([self.root.bin("qmail-start"), "./Maildir/"], capture_output=True,
                           env=self.root.env(VQMAIL_SEND_ONCE="1"), preexec_fn=ign, timeout=60)
        log = d.stderr.decode(errors="replace")
        self.assertEqual(d.returncode, 0, log)
        self.assertEqual(log.count("success"), 2, log)
        self.assertNotIn("deferral", log)
        self.assertEqual(len(maildir_messages(self.root.maildir("joe", DOM))), 2)

    def test_a_delivery_still_reading_keeps_its_own_message(self):
        """A program that goes on reading its message after qmail-local is done
        (or a delivery orphaned by a qmail-send crash) must read that message,
        whatever the queue does with later ones."""
        import time
        flag = os.path.join(self.root.dir, "flag")
        out = os.path.join(self.root.dir, "late.out")
        with open(os.path.join(self.root.domain_dir(DOM), ".qmail-late"), "w") as f:
            f.write("|exec 3<&0; (i=0; while [ ! -e %s ] && [ $i -lt 300 ]; do sleep 0.05; i=$((i+1)); done; "
                    "cat <&3 > %s.tmp; mv %s.tmp %s) >/dev/null 2>&1 &\n" % (flag, out, out, out))
        self.sendmail(f"-fsender@{DOM}", f"late@{DOM}", msg=b"Subject: MESSAGE-A\n\nfor late only\n")
        send_once(self.root, self.out)
        for i in range(3):
            self.sendmail(f"-fsender@{DOM}", f"joe@{DOM}", msg=b"Subject: MESSAGE-B%d\n\nprivate to joe\n" % i)
        send_once(self.root, self.out)
        self.assertEqual(len(maildir_messages(self.root.maildir("joe", DOM))), 3)
        open(flag, "w").close()
        deadline = time.monotonic() + 20
        while not os.path.exists(out) and time.monotonic() < deadline:
            time.sleep(0.05)
        got = self.read(out)
        self.assertIn(b"Subject: MESSAGE-A\n\nfor late only\n", got)
        self.assertNotIn(b"MESSAGE-B", got)

    def test_forward_in_user_dot_qmail_and_catch_all_address(self):
        # joe forwards a copy to sender and keeps one.
        with open(os.path.join(self.root.domain_dir(DOM), "joe", ".qmail"), "w") as f:
            f.write(f"./Maildir/\n&sender@{DOM}\n")
        # Unknown users of the domain go to joe (written with a leading &,
        # which vdelivermail strips as vpopmail's does).
        with open(os.path.join(self.root.domain_dir(DOM), ".qmail-default"), "w") as f:
            f.write(f"| {self.root.bin('vdelivermail')} '' '&joe@{DOM}'\n")
        self.sendmail("-fsomeone@else.example", f"stranger@{DOM}", msg=b"Subject: catch\n\nall\n")
        log = send_once(self.root, self.out)
        joe = [self.read(p) for p in maildir_messages(self.root.maildir("joe", DOM))]
        snd = [self.read(p) for p in maildir_messages(self.root.maildir("sender", DOM))]
        self.assertEqual(len(joe), 1, log)
        self.assertEqual(len(snd), 1, log)
        self.assertIn(f"Delivered-To: stranger@{DOM}\n".encode(), joe[0])
        self.assertIn(f"Delivered-To: joe@{DOM}\n".encode(), snd[0])
        self.assertTrue(snd[0].endswith(b"\n\nall\n"))

    def test_domain_alias_file(self):
        # An alias as vpopmail's valias/qmailadmin write it: DOMDIR/.qmail-info.
        with open(os.path.join(self.root.domain_dir(DOM), ".qmail-info"), "w") as f:
            f.write(f"&joe@{DOM}\n")
        self.sendmail(f"-fsender@{DOM}", f"Info@{DOM}", msg=b"Subject: alias\n\nto info\n")
        log = send_once(self.root, self.out)
        joe = [self.read(p) for p in maildir_messages(self.root.maildir("joe", DOM))]
        self.assertEqual(len(joe), 1, log)
        # The local part keeps its case, as in qmail.
        self.assertIn(f"Delivered-To: {DOM}-Info@{DOM}\n".encode(), joe[0])

    def test_forward_loop_is_bounced_not_repeated(self):
        with open(os.path.join(self.root.domain_dir(DOM), "joe", ".qmail"), "w") as f:
            f.write(f"&joe@{DOM}\n")
        self.sendmail(f"-fsender@{DOM}", f"joe@{DOM}", msg=b"Subject: loop\n\nround\n")
        log = send_once(self.root, self.out)
        b = [self.read(p).decode(errors="replace") for p in maildir_messages(self.root.maildir("sender", DOM))]
        self.assertEqual(len(b), 1, log)
        self.assertIn("looping", b[0])

    def test_sendmail_bs_speaks_smtp_and_relays(self):
        if not os.path.exists(self.root.bin("qmail-smtpd")):
            self.skipTest("qmail-smtpd is not built yet")
        dialog = (b"HELO client\r\nMAIL FROM:<sender@example.com>\r\n"
                  b"RCPT TO:<joe@example.com>\r\nRCPT TO:<someone@elsewhere.example>\r\n"
                  b"DATA\r\nSubject: bs\r\n\r\nvia -bs\r\n.\r\nQUIT\r\n")
        r = self.root.run("sendmail", "-bs", input=dialog)
        out = r.stdout.decode(errors="replace")
        self.assertTrue(out.startswith("220 "), out)
        # RELAYCLIENT is set: a foreign recipient is accepted too.
        self.assertEqual(out.count("\r\n250 "), 5, out)
        self.assertIn("\r\n221 ", out)
        send_once(self.root, self.out)
        [m] = [self.read(p) for p in maildir_messages(self.root.maildir("joe", DOM))]
        self.assertIn(b"via -bs", m)
        self.assertIn(b"sendmail-bs", m)

    def test_sendmail_bs_offers_no_starttls_on_its_pipe(self):
        """A local pipe has nothing for TLS to protect, and a client that
        takes STARTTLS whenever offered would fail on it."""
        if not os.path.exists(self.root.bin("qmail-smtpd")):
            self.skipTest("qmail-smtpd is not built yet")
        self.assertTrue(os.path.exists(self.root.control("servercert.pem")))
        r = self.root.run("sendmail", "-bs", input=b"EHLO client\r\nSTARTTLS\r\nQUIT\r\n")
        out = r.stdout.decode(errors="replace")
        self.assertIn("250-PIPELINING", out)
        self.assertNotIn("STARTTLS", out)
        self.assertIn("\r\n502 unimplemented (#5.5.1)\r\n", out)

    def test_mailq_lists_the_queue(self):
        self.sendmail(f"-fsender@{DOM}", "someone@elsewhere.example", msg=b"Subject: q\n\nwait\n")
        send_once(self.root, self.out)
        for args in (("mailq",), ("sendmail", "-bp")):
            r = self.root.run(*args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn(b"someone@elsewhere.example", r.stdout)


if __name__ == "__main__":
    unittest.main()
