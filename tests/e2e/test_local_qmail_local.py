"""qmail-local: qmail's argv, the .qmail semantics, reports and exit codes,
run directly inside a root as qmail-lspawn would run it."""
import os
import stat
import tempfile
import unittest

from harness import Root, maildir_messages

def slurp(path):
    with open(path, "rb") as f:
        return f.read()


MSG = b"From: a@example.org\nSubject: hi\n\nbody\r\nbare\rCR \x00NUL \xe9\xff 8bit\nFrom me\n"


class QmailLocal(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = Root()

    @classmethod
    def tearDownClass(cls):
        cls.root.cleanup()

    def setUp(self):
        self.home = tempfile.mkdtemp(dir=self.root.dir, prefix="home-")
        os.chmod(self.home, 0o700)
        os.mkdir(os.path.join(self.home, "Maildir"))
        for s in ("tmp", "new", "cur"):
            os.mkdir(os.path.join(self.home, "Maildir", s))

    def qmail(self, name, text, mode=0o600):
        p = os.path.join(self.home, name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, mode)

    def local(self, local="joe", dash="", ext="", sender="a@example.org", aliasempty="./Maildir/",
              msg=MSG, env=None, opts=()):
        return self.root.run("qmail-local", *opts, "--", "joe", self.home, local, dash, ext,
                             "example.com", sender, aliasempty, input=msg, env=env)

    def delivered(self):
        return [slurp(p) for p in maildir_messages(os.path.join(self.home, "Maildir"))]

    def test_aliasempty_maildir_bytes_unchanged(self):
        r = self.local()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"did 1+0+0\n")
        [m] = self.delivered()
        self.assertEqual(m, b"Return-Path: <a@example.org>\nDelivered-To: joe@example.com\n" + MSG)
        self.assertEqual(os.listdir(os.path.join(self.home, "Maildir", "tmp")), [])
        name = os.listdir(os.path.join(self.home, "Maildir", "new"))[0]
        self.assertRegex(name, r"^\d+\.\d+\.")
        self.assertNotIn(",S=", name)

    def test_dot_qmail_lookup_default_and_extension_env(self):
        self.qmail(".qmail-list-default", '|echo "$DEFAULT $EXT $EXT2 $LOCAL $HOST2 $RECIPIENT" > out\n')
        r = self.local(local="joe-list-Foo.Bar", dash="-", ext="list-Foo.Bar")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, b"did 0+0+1\n")
        with open(os.path.join(self.home, "out")) as f:
            self.assertEqual(f.read(), "Foo.Bar list-Foo.Bar Foo.Bar joe-list-Foo.Bar example "
                                       "joe-list-Foo.Bar@example.com\n")

    def test_pwd_is_the_home_with_or_without_the_shell(self):
        script = os.path.join(self.home, "pwd.sh")
        with open(script, "w") as f:
            f.write('#!/bin/sh\necho "$PWD" > "$1"\n')
        os.chmod(script, 0o755)
        self.qmail(".qmail-direct", "|%s direct.out\n" % script)      # started without the shell
        self.qmail(".qmail-shell", "|%s shell.out; true\n" % script)  # through /bin/sh
        for ext in ("direct", "shell"):
            r = self.local(local="joe-" + ext, dash="-", ext=ext, env={"PWD": "/"})
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(self.home, ext + ".out")) as f:
                self.assertEqual(f.read().strip(), self.home, ext)
        # A program that does not recompute PWD as a shell does sees the
        # home too (printenv fails on the missing variable, so its output is
        # in qmail-local's report).
        self.qmail(".qmail-env", "|/usr/bin/printenv PWD NO_SUCH_VARIABLE\n")
        r = self.local(local="joe-env", dash="-", ext="env")
        self.assertEqual(r.returncode, 111, r.stdout)
        self.assertIn(self.home.encode() + b"\n", r.stdout)

    def test_what_is_not_a_regular_file_is_no_dot_qmail_file(self):
        # As qmail-local's qmeexists: a FIFO (never waited on), a socket, a
        # link to /dev/null, a directory, a link loop or a dangling link is
        # no file: .qmail-default applies, and for .qmail the default
        # delivery.
        import socket
        os.mkfifo(os.path.join(self.home, ".qmail-pipe"))
        sock = socket.socket(socket.AF_UNIX)
        self.addCleanup(sock.close)
        sock.bind(os.path.join(self.home, ".qmail-sock"))
        os.symlink("/dev/null", os.path.join(self.home, ".qmail-null"))
        os.mkdir(os.path.join(self.home, ".qmail-dir"))
        os.symlink(".qmail-loop", os.path.join(self.home, ".qmail-loop"))
        os.symlink("nowhere", os.path.join(self.home, ".qmail-gone"))
        self.qmail(".qmail-default", "./Maildir/\n")
        exts = ("pipe", "sock", "null", "dir", "loop", "gone")
        for ext in exts:
            r = self.local(local="joe-" + ext, dash="-", ext=ext)
            self.assertEqual(r.returncode, 0, (ext, r.stdout, r.stderr))
        self.assertEqual(len(self.delivered()), len(exts))
        os.mkdir(os.path.join(self.home, ".qmail"))
        r = self.local()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(self.delivered()), len(exts) + 1)

    def test_no_file_with_dash_bounces(self):
        r = self.local(local="joe-nope", dash="-", ext="nope")
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"Sorry, no mailbox here by that name. (#5.1.1)", r.stderr)

    def test_program_exit_codes_and_99(self):
        self.qmail(".qmail-p", "|exit 99\n./Maildir/\n")
        r = self.local(local="joe-p", dash="-", ext="p")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(self.delivered(), [])
        for code, want in ((100, 100), (64, 100), (1, 111), (75, 111)):
            self.qmail(".qmail-p", f"|echo failing; exit {code}\n")
            r = self.local(local="joe-p", dash="-", ext="p")
            self.assertEqual(r.returncode, want, code)
            self.assertIn(b"failing", r.stdout)
        self.qmail(".qmail-p", "|cat > got\n")
        self.assertEqual(self.local(local="joe-p", dash="-", ext="p").returncode, 0)
        with open(os.path.join(self.home, "got"), "rb") as f:
            self.assertEqual(f.read(), MSG)

    def test_loop_check(self):
        r = self.local(msg=b"Delivered-To: joe@example.com\n" + MSG)
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"This message is looping: it already has my Delivered-To line. (#5.4.6)", r.stderr)
        # Only in the header, and byte for byte.
        self.assertEqual(self.local(msg=b"S: x\n\nDelivered-To: joe@example.com\n").returncode, 0)
        self.assertEqual(self.local(msg=b"Delivered-To: JOE@example.com\n\nx\n").returncode, 0)
        # As in qmail-local, a line of just CR LF does not end the header here.
        r = self.local(msg=b"Subject: x\n\r\nDelivered-To: joe@example.com\n\nb\n")
        self.assertEqual(r.returncode, 100, r.stderr)

    def test_umask_077_and_unenterable_maildir(self):
        import pwd
        import shutil
        import subprocess
        # qmail-local sets umask 077 whatever it was started with.
        self.qmail(".qmail-u", "|umask > um\n")
        old = os.umask(0o022)
        try:
            self.assertEqual(self.local(local="joe-u", dash="-", ext="u").returncode, 0)
        finally:
            os.umask(old)
        self.assertEqual(slurp(os.path.join(self.home, "um")).strip(), b"0077")
        # A Maildir the user cannot enter: qmail's chdir text (a user, not root).
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no nobody account")
        if shutil.which("setpriv") is None:
            self.skipTest("no setpriv")
        home = tempfile.mkdtemp(prefix="vq-nobody-")
        self.addCleanup(shutil.rmtree, home, True)
        os.chmod(home, 0o755)
        md = os.path.join(home, "Maildir")
        for d in ("", "tmp", "new", "cur"):
            os.mkdir(os.path.join(md, d), 0o700)
        for d in (home, md, *(os.path.join(md, x) for x in ("tmp", "new", "cur"))):
            os.chown(d, nobody.pw_uid, nobody.pw_gid)
        os.chmod(md, 0)
        r = subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups",
                            self.root.bin("qmail-local"), "--", "nobody", home, "nobody", "", "", "example.com",
                            "a@example.org", "./Maildir/"], input=MSG, capture_output=True, timeout=60,
                           env=self.root.env())
        self.assertEqual((r.returncode, r.stderr), (111, b"Unable to chdir to maildir. (#4.2.1)\n"))

    def test_forward_one_qmail_queue_call(self):
        qq = os.path.join(self.home, "fakeqq")
        out = os.path.join(self.home, "qq")
        with open(qq, "w") as f:
            f.write(f"#!/bin/sh\ncat > {out}.msg\ncat <&1 > {out}.env\necho x >> {out}.calls\n")
        os.chmod(qq, 0o755)
        self.qmail(".qmail-fw", "&a@one.example\nb@two.example\n# c\n")
        self.qmail(".qmail-fw-owner", "x\n")
        r = self.local(local="joe-fw", dash="-", ext="fw", env={"QMAILQUEUE": qq})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rb"^did 0\+2\+0\nqp \d+\n$")
        self.assertEqual(slurp(out + ".msg"), b"Delivered-To: joe-fw@example.com\n" + MSG)
        self.assertEqual(slurp(out + ".env"),
                         b"Fjoe-fw-owner@example.com\0Ta@one.example\0Tb@two.example\0\0")
        self.assertEqual(slurp(out + ".calls").decode(), "x\n")
        # -owner-default as well: the VERP form of the owner address.
        self.qmail(".qmail-fw-owner-default", "x\n")
        r = self.local(local="joe-fw", dash="-", ext="fw", env={"QMAILQUEUE": qq})
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(slurp(out + ".env").startswith(b"Fjoe-fw-owner-@example.com-@[]\0"))
        # A bounce (empty sender) keeps its empty sender.
        r = self.local(local="joe-fw", dash="-", ext="fw", sender="", env={"QMAILQUEUE": qq})
        self.assertTrue(slurp(out + ".env").startswith(b"F\0T"))
        # qmail-queue failing temporarily: 111 and qmail's text.
        with open(qq, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\nexit 53\n")
        r = self.local(local="joe-fw", dash="-", ext="fw", env={"QMAILQUEUE": qq})
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"Unable to forward message: qq write error or disk full (#4.3.0).", r.stderr)

    def test_qmails_helpers_preline_forward_condredirect_bouncesaying_except(self):
        bin_dir = os.path.dirname(self.root.bin("preline"))
        env = {"PATH": bin_dir + ":/usr/bin:/bin"}
        # preline: the From_ line, Return-Path and Delivered-To before the message.
        self.qmail(".qmail-pl", "|preline cat > got\n")
        r = self.local(local="joe-pl", dash="-", ext="pl", env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        got = slurp(os.path.join(self.home, "got"))
        self.assertRegex(got, rb"^From a@example.org [A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\n"
                              rb"Return-Path: <a@example.org>\nDelivered-To: joe-pl@example.com\n")
        self.assertTrue(got.endswith(MSG))
        self.qmail(".qmail-pl", "|preline -f -d cat > got\n")
        self.assertEqual(self.local(local="joe-pl", dash="-", ext="pl", env=env).returncode, 0)
        self.assertEqual(slurp(os.path.join(self.home, "got")), b"Return-Path: <a@example.org>\n" + MSG)
        # preline passes the program's exit code on.
        self.qmail(".qmail-pl", "|preline sh -c 'cat >/dev/null; exit 100'\n")
        self.assertEqual(self.local(local="joe-pl", dash="-", ext="pl", env=env).returncode, 100)
        # bouncesaying: the text is the bounce's.
        self.qmail(".qmail-bs", "|bouncesaying 'This address is no longer in use.'\n./Maildir/\n")
        r = self.local(local="joe-bs", dash="-", ext="bs", env=env)
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"This address is no longer in use.", r.stdout + r.stderr)
        self.assertEqual(self.delivered(), [])
        # ... only when its program says so; otherwise the next line delivers.
        self.qmail(".qmail-bs", "|bouncesaying 'Go away.' grep -q nosuchword\n./Maildir/\n")
        self.assertEqual(self.local(local="joe-bs", dash="-", ext="bs", env=env).returncode, 0)
        self.assertEqual(len(self.delivered()), 1)
        # except turns success into a bounce.
        self.qmail(".qmail-ex", "|except grep -q body\n")
        self.assertEqual(self.local(local="joe-ex", dash="-", ext="ex", env=env).returncode, 100)
        # forward and condredirect through qmail-queue ($QMAILQUEUE here).
        qq = os.path.join(self.home, "fakeqq")
        out = os.path.join(self.home, "qq")
        with open(qq, "w") as f:
            f.write(f"#!/bin/sh\ncat > {out}.msg\ncat <&1 > {out}.env\n")
        os.chmod(qq, 0o755)
        self.qmail(".qmail-fo", "|forward one@example.net two@example.net\n")
        r = self.local(local="joe-fo", dash="-", ext="fo", env=dict(env, QMAILQUEUE=qq))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr, rb"forward: qp \d+")
        self.assertEqual(slurp(out + ".msg"), b"Delivered-To: joe-fo@example.com\n" + MSG)
        self.assertEqual(slurp(out + ".env"), b"Fa@example.org\0Tone@example.net\0Ttwo@example.net\0\0")
        self.qmail(".qmail-cr", "|condredirect boss@example.net grep -q body\n./Maildir/\n")
        n = len(self.delivered())
        r = self.local(local="joe-cr", dash="-", ext="cr", env=dict(env, QMAILQUEUE=qq))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr, rb"condredirect: qp \d+")
        self.assertEqual(slurp(out + ".env"), b"Fa@example.org\0Tboss@example.net\0\0")
        self.assertEqual(slurp(out + ".msg"), b"Delivered-To: joe-cr@example.com\n" + MSG)
        self.assertEqual(len(self.delivered()), n)  # 99: the Maildir line was not reached
        self.qmail(".qmail-cr", "|condredirect boss@example.net grep -q nosuchword\n./Maildir/\n")
        self.assertEqual(self.local(local="joe-cr", dash="-", ext="cr", env=dict(env, QMAILQUEUE=qq)).returncode, 0)
        self.assertEqual(len(self.delivered()), n + 1)
        # A script without a #! line runs under /bin/sh, as with qmail's
        # helpers (execvp), by its path and found in $PATH.
        script = os.path.join(self.home, "nohashbang")
        with open(script, "w") as f:
            f.write('cat > "$HOME/seen"\nexit 0\n')
        os.chmod(script, 0o755)
        self.qmail(".qmail-ex", f"|except {script}\n")
        self.assertEqual(self.local(local="joe-ex", dash="-", ext="ex", env=env).returncode, 100)
        self.qmail(".qmail-pl", "|preline nohashbang\n")
        r = self.local(local="joe-pl", dash="-", ext="pl", env=dict(env, PATH=self.home + ":" + env["PATH"]))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertTrue(slurp(os.path.join(self.home, "seen")).endswith(MSG))

    def test_mbox(self):
        self.qmail(".qmail-mb", "./mbox\n")
        r = self.local(local="joe-mb", dash="-", ext="mb", sender="")
        self.assertEqual(r.returncode, 0, r.stderr)
        data = slurp(os.path.join(self.home, "mbox"))
        self.assertTrue(data.startswith(b"From MAILER-DAEMON "))
        self.assertIn(b"Return-Path: <>\nDelivered-To: joe-mb@example.com\n", data)
        self.assertIn(b"\n>From me\n\n", data)
        self.assertTrue(data.endswith(b"\n\n"))

    def test_mbox_fifo_without_reader_defers_at_once(self):
        # As qmail's O_NDELAY open: no reader, no hang (the test's timeout).
        os.mkfifo(os.path.join(self.home, "fifo"))
        self.qmail(".qmail-ff", "./fifo\n")
        r = self.local(local="joe-ff", dash="-", ext="ff")
        self.assertEqual(r.returncode, 111, r.stdout)
        self.assertIn(b"Unable to open ./fifo", r.stdout + r.stderr)

    def test_mbox_waits_for_flock_and_fcntl_locks(self):
        # A mail reader holding either kind of lock keeps qmail-local out
        # until it lets go (flock as qmail-local takes, fcntl as mutt does).
        import fcntl
        import subprocess
        import time
        self.qmail(".qmail-mb", "./mbox\n")
        mbox = os.path.join(self.home, "mbox")
        for kind in ("flock", "fcntl"):
            # (Read before locking: closing any descriptor of the file would
            # drop this process's fcntl lock.)
            before = slurp(mbox) if os.path.exists(mbox) else b""
            with self.subTest(kind=kind), open(mbox, "ab") as held:
                if kind == "flock":
                    fcntl.flock(held, fcntl.LOCK_EX)
                else:
                    fcntl.lockf(held, fcntl.LOCK_EX)
                p = subprocess.Popen([self.root.bin("qmail-local"), "--", "joe", self.home, "joe-mb", "-",
                                      "mb", "example.com", "a@example.org", "./Maildir/"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=self.root.env())
                try:
                    p.stdin.write(MSG)
                    p.stdin.close()
                    # Wait until it has the mbox open (it then tries the locks) ...
                    deadline = time.monotonic() + 10
                    fd_dir = f"/proc/{p.pid}/fd"
                    while time.monotonic() < deadline and p.poll() is None:
                        try:
                            if any(os.readlink(os.path.join(fd_dir, fd)) == mbox for fd in os.listdir(fd_dir)):
                                break
                        except OSError:
                            pass
                        time.sleep(0.01)
                    # ... then it must still be waiting, with nothing written.
                    with self.assertRaises(subprocess.TimeoutExpired):
                        p.wait(timeout=0.5)
                    self.assertEqual(os.fstat(held.fileno()).st_size, len(before))
                    if kind == "flock":
                        fcntl.flock(held, fcntl.LOCK_UN)
                    else:
                        fcntl.lockf(held, fcntl.LOCK_UN)
                    self.assertEqual(p.wait(timeout=20), 0, p.stderr.read())
                finally:
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                    p.stdout.close()
                    p.stderr.close()
                self.assertTrue(slurp(mbox).endswith(b"\n>From me\n\n"))

    def test_maildirmake_takes_any_name(self):
        import subprocess
        name = os.path.join(self.home, "md").encode() + b"\x80\xff"
        r = subprocess.run([self.root.bin("maildirmake"), name], capture_output=True, timeout=30)
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        for sub in (b"new", b"cur", b"tmp"):
            self.assertTrue(os.path.isdir(os.path.join(name, sub)))
        r = subprocess.run([self.root.bin("maildirmake"), name], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"file exists", r.stderr)
        # As qmail's: names after the first are ignored; none is a usage error.
        first, second = os.path.join(self.home, "md1"), os.path.join(self.home, "md2")
        r = subprocess.run([self.root.bin("maildirmake"), first, second], capture_output=True, timeout=30)
        self.assertEqual((r.returncode, r.stderr), (0, b""))
        self.assertTrue(os.path.isdir(os.path.join(first, "new")))
        self.assertFalse(os.path.exists(second))
        r = subprocess.run([self.root.bin("maildirmake")], capture_output=True, timeout=30)
        self.assertEqual((r.returncode, r.stderr), (100, b"maildirmake: usage: maildirmake name\n"))

    def test_permission_checks(self):
        os.chmod(self.home, 0o777)
        r = self.local()
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"Uh-oh: home directory is writable. (#4.7.0)", r.stderr)
        os.chmod(self.home, 0o1700)
        r = self.local()
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"sticky", r.stderr)
        os.chmod(self.home, 0o700)
        self.qmail(".qmail-w", "./Maildir/\n", mode=0o666)
        r = self.local(local="joe-w", dash="-", ext="w")
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"Uh-oh: .qmail file is writable. (#4.7.0)", r.stderr)
        self.qmail(".qmail-x", "./Maildir/\n", mode=0o700)
        r = self.local(local="joe-x", dash="-", ext="x")
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"x bit set", r.stderr)
        self.qmail(".qmail-b", "\n./Maildir/\n")
        r = self.local(local="joe-b", dash="-", ext="b")
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"first line of .qmail file is blank", r.stderr)

    def test_usage_and_dry_run(self):
        r = self.root.run("qmail-local", "joe", "relative", "a", "b", input=b"")
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"usage", r.stderr)
        self.qmail(".qmail-n", "./Maildir/\n|true\nx@y\n")
        r = self.local(local="joe-n", dash="-", ext="n", opts=("-n",))
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, b"maildir ./Maildir/\nprogram true\nforward x@y\ndid 1+1+1\n")
        self.assertEqual(self.delivered(), [])

    def test_missing_maildir_is_temporary(self):
        r = self.local(aliasempty="./Nope/")
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"Unable to chdir to maildir. (#4.2.1)", r.stderr)


if __name__ == "__main__":
    unittest.main()
