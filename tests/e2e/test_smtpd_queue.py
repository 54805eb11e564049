"""qmail-smtpd with the real qmail-queue (no QMAILQUEUE): the message is on disk
in the queue before the 250, with qmail-queue's Received line above ours; and,
when qmail-send and the local delivery programs are built, all the way to the
user's Maildir."""
import os
import smtplib
import subprocess
import unittest

from harness import IN_CI, wait_until, maildir_messages
from smtpd_lib import SmtpdCase


def need(root, *progs):
    missing = [p for p in progs if not os.path.exists(root.bin(p))]
    if missing and not IN_CI:
        raise unittest.SkipTest("not built yet: " + " ".join(missing))


class RealQueue(SmtpdCase):
    def files(self, sub):
        out = []
        for d, _, fs in os.walk(self.root.q("queue", sub)):
            out += [os.path.join(d, f) for f in fs]
        return out

    def test_queued_on_disk_before_the_reply(self):
        need(self.root, "qmail-queue")
        srv = self.smtpd(stubqq=False)
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as c:
            c.ehlo("client.example")
            c.sendmail("s@example.net", ["u@localhost"], b"Subject: real\r\n\r\nbody\r\n")
            # The 250 has been read: the message must already be in the queue.
            mess = self.files("mess")
            self.assertEqual(len(mess), 1, mess)
        with open(mess[0], "rb") as f:
            lines = f.read().split(b"\n")
        self.assertRegex(lines[0].decode(), r"^Received: \(qmail \d+ invoked (by uid \d+|from network)\); ")
        self.assertEqual(lines[1], b"Received: from unknown (HELO client.example) (127.0.0.1)")
        self.assertIn(b"Subject: real", lines)

    def test_delivered_to_the_maildir(self):
        need(self.root, "qmail-queue", "qmail-start", "qmail-send", "qmail-lspawn",
             "qmail-local", "vdelivermail", "vadddomain", "vadduser")
        r = self.root
        r.add_domain("example.test")
        r.add_user("joe@example.test", "secret1")
        send = subprocess.Popen([r.bin("qmail-start"), "./Maildir/"], cwd=r.qmail, env=r.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        self.addCleanup(lambda: (send.terminate(), send.wait(timeout=10)))
        srv = self.smtpd(stubqq=False)
        with smtplib.SMTP("127.0.0.1", srv.port, timeout=20) as c:
            c.sendmail("s@example.net", ["joe@example.test"], b"Subject: e2e\r\n\r\nhello\r\n")
        md = r.maildir("joe", "example.test")
        [path] = wait_until(lambda: maildir_messages(md), timeout=20, what="delivery to the Maildir")
        with open(path, "rb") as f:
            msg = f.read()
        self.assertIn(b"Received: from unknown (HELO", msg)
        self.assertIn(b"Subject: e2e\n\nhello\n", msg)
