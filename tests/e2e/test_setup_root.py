"""scripts/setup-root: a complete installation with the hosting profile."""
import os
import stat
import subprocess
import unittest

from harness import Root, REPO, BIN


class SetupRoot(unittest.TestCase):
    def setUp(self):
        self.root = Root()
        self.addCleanup(self.root.cleanup)

    def mode(self, *p):
        return stat.S_IMODE(os.stat(os.path.join(self.root.dir, *p)).st_mode)

    def test_queue_layout_and_modes(self):
        q = "var/qmail/queue"
        for d, m in [("", 0o750), ("pid", 0o700), ("intd", 0o700), ("todo", 0o750),
                     ("bounce", 0o700), ("lock", 0o750)]:
            self.assertEqual(self.mode(q, d), m, d)
        for d, m in [("mess", 0o750), ("info", 0o700), ("local", 0o700), ("remote", 0o700)]:
            for i in range(23):
                self.assertEqual(self.mode(q, d, str(i)), m, f"{d}/{i}")
            self.assertFalse(os.path.exists(os.path.join(self.root.dir, q, d, "23")))
        self.assertEqual(self.root.read(q, "lock", "tcpto"), b"\0" * 1024)
        self.assertTrue(stat.S_ISFIFO(os.stat(os.path.join(self.root.dir, q, "lock", "trigger")).st_mode))
        self.assertEqual(self.mode(q, "lock", "trigger"), 0o622)

    def test_hosting_profile(self):
        r = self.root
        self.assertEqual(r.read("var/qmail/control/databytes"), b"10485760\n")
        self.assertEqual(r.read("var/qmail/control/queuelifetime"), b"86400\n")
        self.assertEqual(r.read("var/qmail/control/pop3interval"), b"60\n")
        self.assertEqual(r.read("home/vpopmail/etc/relay-clear-minutes"), b"60\n")
        pem = r.read("var/qmail/control/servercert.pem")
        self.assertIn(b"BEGIN CERTIFICATE", pem)
        self.assertIn(b"PRIVATE KEY", pem)
        self.assertTrue(os.path.exists(r.control("rcpthosts")), "no rcpthosts would be an open relay")
        self.assertEqual(r.read("var/qmail/users/assign"), b".\n")

    def test_postmaster_root_and_mailer_daemon_reach_someone(self):
        r = self.root
        for a in ("postmaster", "root", "mailer-daemon"):
            self.assertEqual(r.read("var/qmail/alias/.qmail-" + a), b"./Maildir/\n")
        for d in ("new", "cur", "tmp"):
            self.assertTrue(os.path.isdir(os.path.join(r.dir, "var/qmail/alias/Maildir", d)))
        self.assertTrue(os.path.exists(os.path.join(r.dir, "var/qmail/man/man8/qmail-smtpd.8")))
        # Delivered there, through the real queue.
        from test_queue_delivery import send_once
        p = r.run("sendmail", "-f", "someone@localhost", "postmaster@localhost", input=b"Subject: pm\n\nhi\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        send_once(r, os.path.join(r.dir, "unused"))
        self.assertEqual(len(os.listdir(os.path.join(r.dir, "var/qmail/alias/Maildir/new"))), 1)

    def test_wrong_program_directory_creates_nothing(self):
        target = os.path.join(self.root.dir, "never")
        p = subprocess.run([os.path.join(REPO, "scripts", "setup-root"), target], capture_output=True,
                           env=dict(os.environ, VQMAIL_BIN="/nonexistent"), timeout=60)
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"no built programs in /nonexistent", p.stderr)
        self.assertFalse(os.path.exists(target))

    def test_programs_are_installed_in_their_homes(self):
        self.assertTrue(os.access(self.root.q("bin", "maildirmake"), os.X_OK))

    def test_rerun_keeps_data_and_updates_programs(self):
        r = self.root
        r.write_control("databytes", "5000\n")
        marker = r.v("domains", "keep.me")
        os.makedirs(marker)
        os.unlink(r.q("bin", "maildirmake"))
        p = subprocess.run([os.path.join(REPO, "scripts", "setup-root"), r.dir],
                           env=dict(os.environ, VQMAIL_BIN=BIN), capture_output=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r.read("var/qmail/control/databytes"), b"5000\n")
        self.assertTrue(os.path.isdir(marker))
        self.assertTrue(os.access(r.q("bin", "maildirmake"), os.X_OK))

    def test_maildirmake(self):
        d = os.path.join(self.root.dir, "md")
        p = self.root.run("maildirmake", d)
        self.assertEqual(p.returncode, 0, p.stderr)
        for sub in ("tmp", "new", "cur"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(d, sub)).st_mode), 0o700)
        p = self.root.run("maildirmake", d)
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"maildirmake: fatal:", p.stderr)


if __name__ == "__main__":
    unittest.main()
