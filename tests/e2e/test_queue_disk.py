"""A full disk: the queue on a 1 MB tmpfs. qmail-queue answers qmail's temporary
code 53 and leaves nothing behind; qmail-send that cannot write info/local keeps
the message in todo/ and delivers it once space is back. Needs the right to
mount a tmpfs (root); skipped otherwise."""
import errno
import os
import signal
import subprocess
import time
import unittest

from harness import RootTestCase, wait_until
from test_queue_delivery import delivered, queue, queue_files, send_once, setup_stubs


class DiskFull(RootTestCase):
    def setUp(self):
        super().setUp()
        self.out = setup_stubs(self.root, remote=False)
        q = self.root.q("queue")
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0750", "tmpfs", q],
                           capture_output=True)
        if r.returncode != 0:
            self.skipTest(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        self.addCleanup(subprocess.run, ["umount", "-l", q], capture_output=True)
        for d in ("pid", "intd", "todo", "bounce", "lock"):
            os.mkdir(os.path.join(q, d), 0o700)
        for d in ("mess", "info", "local", "remote"):
            for i in range(23):
                os.makedirs(os.path.join(q, d, str(i)), 0o700)
        open(os.path.join(q, "lock", "sendmutex"), "w").close()
        with open(os.path.join(q, "lock", "tcpto"), "wb") as f:
            f.write(b"\0" * 1024)
        os.mkfifo(os.path.join(q, "lock", "trigger"), 0o622)
        self.q = q

    def start_send(self):
        """qmail-start as a daemon, logging to send.log; stopped (TERM, then
        KILL of its group) at the test's end if still running."""
        self.logpath = os.path.join(self.root.dir, "send.log")
        log = open(self.logpath, "w+b")
        self.addCleanup(log.close)
        p = subprocess.Popen([self.root.bin("qmail-start"), "./Maildir/"], stderr=log,
                             stdin=subprocess.DEVNULL, env=self.root.env(STUB_OUT=self.out),
                             start_new_session=True)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(timeout=10)
        self.addCleanup(stop)
        return p

    def log_text(self):
        with open(self.logpath, "rb") as f:
            return f.read()

    def fill(self):
        path = os.path.join(self.q, "filler")
        with open(path, "wb", buffering=0) as f:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        f.write(b"\0" * size)
                except OSError as e:
                    self.assertEqual(e.errno, errno.ENOSPC)
        return path

    def test_qmail_queue_answers_53_and_leaves_nothing(self):
        big = b"Subject: big\n\n" + b"x" * (2 * 1024 * 1024)
        self.assertEqual(queue(self.root, big, "s@localhost", ["joe@localhost"]), 53)
        self.assertEqual(queue_files(self.root), [])
        self.assertEqual(queue(self.root, "Subject: small\n\nok\n", "s@localhost", ["joe@localhost"]), 0)
        send_once(self.root, self.out)
        self.assertEqual(len(delivered(self.out, "joe@localhost")), 1)
        self.assertEqual(queue_files(self.root), [])

    def test_qmail_send_keeps_todo_until_space_returns(self):
        self.assertEqual(queue(self.root, "Subject: t\n\nx\n", "s@localhost", ["joe@localhost"]), 0)
        filler = self.fill()
        log = send_once(self.root, self.out)
        self.assertRegex(log, r"warning: trouble writing to info/\d+/\d+")
        self.assertEqual(delivered(self.out, "joe@localhost"), [])
        self.assertEqual(len([f for f in queue_files(self.root) if f.startswith("todo/")]), 1)
        os.unlink(filler)
        send_once(self.root, self.out)
        self.assertEqual(len(delivered(self.out, "joe@localhost")), 1)
        self.assertEqual(queue_files(self.root), [])

    def test_a_bounce_that_cannot_be_written_keeps_its_recipient_over_a_stop(self):
        # A permanent failure whose paragraph cannot go into bounce/N (full
        # disk): qmail-send retries; stopped meanwhile, it leaves the
        # recipient undone, and after the restart the bounce names it.
        n = 4242
        for d, data in (("mess", b"Subject: t\n\nx\n"), ("info", b"Fs@localhost\0"),
                        ("local", b"Tfail@localhost\0")):
            with open(os.path.join(self.q, d, str(n % 23), str(n)), "wb") as f:
                f.write(data)
        filler = self.fill()
        p = self.start_send()
        wait_until(lambda: b"unable to append to bounce message" in self.log_text(), 30,
                   what="the bounce alert")
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=40), 0)
        with open(os.path.join(self.q, "local", str(n % 23), str(n)), "rb") as f:
            self.assertEqual(f.read(), b"Tfail@localhost\0")
        # (no empty bounce file is left to be sent as a bounce naming no one)
        self.assertFalse(os.path.exists(os.path.join(self.q, "bounce", str(n))))
        os.unlink(filler)
        # (at the retry the stop scheduled)
        log = send_once(self.root, self.out, now=int(time.time()) + 3600)
        bounces = delivered(self.out, "s@localhost")
        self.assertEqual(len(bounces), 1, log)
        self.assertIn(b"<fail@localhost>:\nSorry, no mailbox here by that name. (#5.1.1)\n", bounces[0])
        self.assertEqual(queue_files(self.root), [])

    def test_what_waited_for_space_goes_at_the_next_trigger(self):
        # A message qmail-send could not take in (its info file could not be
        # written) is tried again when the next message pulls the trigger,
        # not only at the 25-minute scan.
        self.assertEqual(queue(self.root, "Subject: t\n\nx\n", "s@localhost", ["joe@localhost"]), 0)
        filler = self.fill()
        self.start_send()
        wait_until(lambda: b"warning: trouble writing to info/" in self.log_text(), 30,
                   what="the write warning")
        os.unlink(filler)
        self.assertEqual(queue(self.root, "Subject: u\n\nx\n", "s@localhost", ["ann@localhost"]), 0)
        wait_until(lambda: delivered(self.out, "joe@localhost") and delivered(self.out, "ann@localhost"),
                   30, what="both deliveries after the trigger")

    def test_a_full_disk_under_a_big_todo_is_not_read_again_at_once(self):
        # More than one batch (100) of new messages that cannot be taken in:
        # each is warned about once, not read again and again at full speed.
        subprocess.run(["mount", "-o", "remount,size=4m", self.q], check=True, capture_output=True)
        for i in range(105):
            self.assertEqual(queue(self.root, f"Subject: {i}\n\nx\n", "s@localhost", ["joe@localhost"]), 0)
        filler = self.fill()
        self.start_send()

        def warnings():
            return self.log_text().count(b"warning: trouble writing to info/")
        n = wait_until(lambda: warnings() >= 100 and warnings(), 30, what="the first batch's warnings")
        # (a loop would have logged thousands by the time the first
        # hundred are seen)
        self.assertLessEqual(n, 200)
        os.unlink(filler)
        self.assertEqual(queue(self.root, "Subject: u\n\nx\n", "s@localhost", ["ann@localhost"]), 0)
        wait_until(lambda: len(delivered(self.out, "joe@localhost")) == 105, 60,
                   what="every message once the disk has room")


if __name__ == "__main__":
    unittest.main()
