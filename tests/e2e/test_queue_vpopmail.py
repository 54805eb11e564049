"""The whole local chain with the real programs: qmail-queue -> qmail-send ->
qmail-lspawn -> qmail-local -> vdelivermail -> the user's Maildir, and the
bounce for an unknown user of a vpopmail domain."""
import os
import unittest

from harness import RootTestCase, maildir_messages
from test_queue_delivery import queue, send_once


class VpopmailChain(RootTestCase):
    def setUp(self):
        super().setUp()
        for prog in ("qmail-local", "vdelivermail", "vadddomain", "vadduser"):
            if not os.path.exists(self.root.bin(prog)):
                self.skipTest(f"{prog} is not built yet")
        self.root.add_domain("example.com")
        self.root.add_user("joe@example.com")
        self.root.add_user("sender@example.com")
        self.out = os.path.join(self.root.dir, "unused")

    def test_delivery_and_no_mailbox_bounce(self):
        if os.path.exists(self.root.bin("sendmail")):
            r = self.root.run("sendmail", "-f", "sender@example.com", "joe@example.com", "nobody@example.com",
                              input="Subject: hi\n\nhello joe\n")
            self.assertEqual(r.returncode, 0, r.stderr)
        else:
            self.assertEqual(queue(self.root, "Subject: hi\n\nhello joe\n", "sender@example.com",
                                   ["joe@example.com", "nobody@example.com"]), 0)
        log = send_once(self.root, self.out)
        got = maildir_messages(self.root.maildir("joe", "example.com"))
        self.assertEqual(len(got), 1, log)
        with open(got[0], "rb") as f:
            m = f.read()
        self.assertTrue(m.startswith(b"Return-Path: <sender@example.com>\n"
                                     b"Delivered-To: joe@example.com\n"), m[:200])
        self.assertIn(b"Subject: hi\n", m)
        self.assertTrue(m.endswith(b"\n\nhello joe\n"))
        bounces = maildir_messages(self.root.maildir("sender", "example.com"))
        self.assertEqual(len(bounces), 1, log)
        with open(bounces[0], "rb") as f:
            b = f.read().decode(errors="replace")
        self.assertIn("Subject: failure notice\n", b)
        self.assertIn("<nobody@example.com>:\nSorry, no mailbox here by that name. vpopmail (#5.1.1)\n", b)
        self.assertIn("--- Below this line is a copy of the message.\n\nReturn-Path: <sender@example.com>\n", b)

    def test_programs_of_a_user_qmail_get_the_delivery_environment(self):
        """vdelivermail runs a user's .qmail `|` line with qmail-local's
        variables (SENDER, RECIPIENT, EXT, HOST ...)."""
        out = os.path.join(self.root.dir, "env.out")
        home = os.path.dirname(self.root.maildir("joe", "example.com"))
        with open(os.path.join(home, ".qmail"), "w") as f:
            f.write(f'|echo "$SENDER $RECIPIENT $EXT $HOST" > {out}\n')
        self.assertEqual(queue(self.root, "Subject: hi\n\nhello\n", "sender@example.com",
                               ["joe@example.com"]), 0)
        log = send_once(self.root, self.out)
        with open(out) as f:
            self.assertEqual(f.read(), "sender@example.com example.com-joe@example.com joe example.com\n", log)

    def test_another_vdelivermail_at_the_path_is_executed(self):
        """qmail-local runs vqmail's own vdelivermail in its process; any other
        program at that path (vpopmail's, a wrapper) is started as before."""
        out = os.path.join(self.root.dir, "other.out")
        prog = self.root.bin("vdelivermail")
        os.unlink(prog)
        with open(prog, "w") as f:
            f.write(f'#!/bin/sh\necho "other $# [$1] $2 $EXT@$HOST" >> {out}\nexit 0\n')
        os.chmod(prog, 0o755)
        self.assertEqual(queue(self.root, "Subject: hi\n\nhello\n", "sender@example.com",
                               ["joe@example.com"]), 0)
        log = send_once(self.root, self.out)
        with open(out) as f:
            self.assertEqual(f.read(), "other 2 [] bounce-no-mailbox joe@example.com\n", log)
        self.assertEqual(maildir_messages(self.root.maildir("joe", "example.com")), [])


if __name__ == "__main__":
    unittest.main()
