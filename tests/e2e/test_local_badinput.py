"""Bad input and a full disk for the delivery programs: a temporary failure
with qmail's code and text, nothing half-written, nothing lost (the same
delivery succeeds once there is room); long addresses; odd bytes."""
import os
import subprocess
import tempfile
import unittest

from harness import Root, maildir_messages

DOM = "example.test"


def try_mount_tmpfs(path, size="256k"):
    """Mounts a small tmpfs; returns None or the reason it is not possible."""
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot mount a tmpfs here (mount says: {r.stderr.strip() or r.returncode})"
    return None


def fill(path):
    """Writes into path until the file system is full; returns the filler's name."""
    filler = os.path.join(path, "filler")
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (b"\0" * 65536, b"\0" * 4096, b"\0"):
            try:
                while os.write(fd, block) > 0:
                    pass
            except OSError:
                pass
    finally:
        os.close(fd)
    return filler


class FullDisk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = Root()
        cls.root.add_domain(DOM)

    @classmethod
    def tearDownClass(cls):
        cls.root.cleanup()

    def setUp(self):
        self.mnt = tempfile.mkdtemp(dir=self.root.dir, prefix="small-")
        why = try_mount_tmpfs(self.mnt)
        if why:
            self.skipTest(why)
        self.addCleanup(lambda: subprocess.run(["umount", self.mnt], capture_output=True))
        self.home = os.path.join(self.mnt, "home")
        os.mkdir(self.home, 0o700)
        self.md = os.path.join(self.home, "Maildir")
        for d in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(self.md, d), 0o700)

    def local(self, msg, aliasempty="./Maildir/"):
        return self.root.run("qmail-local", "--", "joe", self.home, "joe", "", "", DOM,
                             "a@example.org", aliasempty, input=msg)

    def test_qmail_local_maildir_full_disk_is_temporary_and_lossless(self):
        msg = b"Subject: x\n\n" + b"y" * 20000 + b"\n"
        filler = fill(self.mnt)
        r = self.local(msg)
        self.assertEqual(r.returncode, 111, r.stdout + r.stderr)
        self.assertIn(b"Temporary error on maildir delivery. (#4.3.0)", r.stderr)
        self.assertEqual(os.listdir(os.path.join(self.md, "tmp")), [])
        self.assertEqual(maildir_messages(self.md), [])
        os.unlink(filler)
        r = self.local(msg)
        self.assertEqual(r.returncode, 0, r.stderr)
        [m] = maildir_messages(self.md)
        with open(m, "rb") as f:
            self.assertTrue(f.read().endswith(msg))

    def test_qmail_local_mbox_full_disk_truncates_back(self):
        mbox = os.path.join(self.home, "mbox")
        self.assertEqual(self.local(b"first\n", aliasempty="./mbox").returncode, 0)
        with open(mbox, "rb") as f:
            before = f.read()
        filler = fill(self.mnt)
        r = self.local(b"Subject: x\n\n" + b"z" * 50000 + b"\n", aliasempty="./mbox")
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"Unable to write ./mbox: out of disk space. (#4.3.0)", r.stderr)
        with open(mbox, "rb") as f:
            self.assertEqual(f.read(), before)
        os.unlink(filler)

    def test_vdelivermail_full_disk_keeps_maildirsize_right(self):
        with open(self.root.v("etc", "quota-range"), "w") as f:
            f.write("1 2G\n")
        user = "full" + os.path.basename(self.mnt)[-6:].lower().replace("_", "x")
        self.root.run("vadduser", "-q", "1000000", f"{user}@{DOM}", "secret1", check=True)
        udir = os.path.join(self.root.domain_dir(DOM), user)
        # The user's Maildir lives on the small file system.
        subprocess.run(["rm", "-rf", os.path.join(udir, "Maildir")], check=True)
        os.symlink(self.md, os.path.join(udir, "Maildir"))
        env = {"EXT": user, "HOST": DOM, "RPLINE": "Return-Path: <a@example.org>\n",
               "DTLINE": f"Delivered-To: {DOM}-{user}@{DOM}\n"}
        self.assertEqual(self.root.run("vdelivermail", "", "bounce-no-mailbox", input=b"one\n",
                                       env=env).returncode, 0)
        with open(os.path.join(self.md, "maildirsize")) as f:
            size_before = f.read()
        filler = fill(self.mnt)
        r = self.root.run("vdelivermail", "", "bounce-no-mailbox", input=b"x" * 30000, env=env)
        self.assertEqual(r.returncode, 111, r.stdout)
        self.assertIn(b"system error: out of disk space. (#4.3.0)", r.stdout)
        with open(os.path.join(self.md, "maildirsize")) as f:
            self.assertEqual(f.read(), size_before)
        self.assertEqual(len(maildir_messages(self.md)), 1)
        self.assertEqual([n for n in os.listdir(os.path.join(self.md, "tmp"))], [])
        os.unlink(filler)
        self.assertEqual(self.root.run("vdelivermail", "", "bounce-no-mailbox", input=b"x" * 30000,
                                       env=env).returncode, 0)
        self.assertEqual(len(maildir_messages(self.md)), 2)

    def test_sendmail_with_a_full_queue_disk(self):
        if not os.path.exists(self.root.bin("qmail-queue")):
            self.skipTest("qmail-queue is not built yet")
        # The queue moves onto the small file system, with its modes and owners.
        q = self.root.q("queue")
        qmnt = tempfile.mkdtemp(dir=self.root.dir, prefix="q-")
        why = try_mount_tmpfs(qmnt, size="512k")
        if why:
            self.skipTest(why)
        self.addCleanup(lambda: subprocess.run(["umount", qmnt], capture_output=True))
        subprocess.run(["cp", "-a", q + "/.", qmnt], check=True)
        saved = q + ".saved"
        os.rename(q, saved)
        os.symlink(qmnt, q)

        def restore():
            os.unlink(q)
            os.rename(saved, q)
        self.addCleanup(restore)
        filler = fill(qmnt)
        r = self.root.run("sendmail", "joe@example.org", input=b"Subject: x\n\n" + b"b" * 20000 + b"\n")
        self.assertEqual(r.returncode, 111, r.stderr)
        self.assertIn(b"qmail-inject: fatal: qq write error or disk full (#4.3.0)", r.stderr)
        os.unlink(filler)
        r = self.root.run("sendmail", "joe@example.org", input=b"Subject: x\n\nsmall\n")
        self.assertEqual(r.returncode, 0, r.stderr)


class OddInput(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = Root()

    @classmethod
    def tearDownClass(cls):
        cls.root.cleanup()

    def test_long_recipient_from_sendmail_is_refused_permanently(self):
        if not os.path.exists(self.root.bin("qmail-queue")):
            self.skipTest("qmail-queue is not built yet")
        r = self.root.run("sendmail", "a" * 1200 + "@example.org", input=b"Subject: x\n\nb\n")
        self.assertEqual(r.returncode, 100, r.stderr)
        self.assertIn(b"envelope address too long for qq (#5.1.3)", r.stderr)

    def test_long_local_part_and_empty_message_in_qmail_local(self):
        home = tempfile.mkdtemp(dir=self.root.dir)
        os.chmod(home, 0o700)
        md = os.path.join(home, "Maildir")
        for d in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(md, d), 0o700)
        local = "x" * 1500
        r = self.root.run("qmail-local", "--", "joe", home, local, "", "", "example.com",
                          "s" * 1200 + "@example.org", "./Maildir/", input=b"")
        self.assertEqual(r.returncode, 0, r.stderr)
        [m] = maildir_messages(md)
        with open(m, "rb") as f:
            data = f.read()
        self.assertEqual(data, b"Return-Path: <" + b"s" * 1200 + b"@example.org>\nDelivered-To: "
                         + local.encode() + b"@example.com\n")

    def test_newline_in_arguments_cannot_forge_header_lines(self):
        home = tempfile.mkdtemp(dir=self.root.dir)
        os.chmod(home, 0o700)
        md = os.path.join(home, "Maildir")
        for d in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(md, d), 0o700)
        r = self.root.run("qmail-local", "--", "joe", home, "joe\nX-Evil: 1", "", "", "example.com",
                          "s@x\nX-Evil: 2", "./Maildir/", input=b"body\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        [m] = maildir_messages(md)
        with open(m, "rb") as f:
            data = f.read()
        self.assertNotIn(b"\nX-Evil", data)


class Killed(unittest.TestCase):
    """qmail-local killed at random moments: new/ never holds a partial file."""

    def test_kill_during_maildir_delivery(self):
        import random
        import signal
        import time
        root = Root()
        self.addCleanup(root.cleanup)
        home = tempfile.mkdtemp(dir=root.dir)
        os.chmod(home, 0o700)
        md = os.path.join(home, "Maildir")
        for d in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(md, d), 0o700)
        body = b"Subject: big\n\n" + (b"0123456789abcdef" * 4096 + b"\n") * 64  # about 4 MB
        msgfile = os.path.join(root.dir, "msg")
        with open(msgfile, "wb") as f:
            f.write(body)
        want = b"Return-Path: <a@example.org>\nDelivered-To: joe@example.com\n" + body
        rnd = random.Random(7)
        outcomes = {0: 0, -9: 0}
        for _ in range(15):
            with open(msgfile, "rb") as fin:
                p = subprocess.Popen([root.bin("qmail-local"), "--", "joe", home, "joe", "", "",
                                      "example.com", "a@example.org", "./Maildir/"],
                                     stdin=fin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=root.env())
                time.sleep(rnd.uniform(0, 0.05))
                p.send_signal(signal.SIGKILL)
                rc = p.wait(timeout=30)
            outcomes[rc] = outcomes.get(rc, 0) + 1
        for name in os.listdir(os.path.join(md, "new")):
            with open(os.path.join(md, "new", name), "rb") as f:
                self.assertEqual(f.read(), want, f"partial file delivered: {name}")
        # Every run that exited 0 delivered exactly one file.
        self.assertGreaterEqual(len(os.listdir(os.path.join(md, "new"))), outcomes.get(0, 0))


if __name__ == "__main__":
    unittest.main()
