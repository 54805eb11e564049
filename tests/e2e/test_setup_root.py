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
        # A bare name too: the sandbox's host name has no dot, so defaultdomain is
        # empty and root stays root@localhost (not the remote root@localhost.localhost).
        self.assertEqual(r.read("var/qmail/control/defaultdomain"), b"\n")
        p = r.run("sendmail", "root", input=b"Subject: root\n\nhi\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        send_once(r, os.path.join(r.dir, "unused"))
        self.assertEqual(len(os.listdir(os.path.join(r.dir, "var/qmail/alias/Maildir/new"))), 2)

    def test_wrong_program_directory_creates_nothing(self):
        target = os.path.join(self.root.dir, "never")
        p = subprocess.run([os.path.join(REPO, "scripts", "setup-root"), target], capture_output=True,
                           env=dict(os.environ, VQMAIL_BIN="/nonexistent"), timeout=60)
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"no built programs in /nonexistent", p.stderr)
        self.assertFalse(os.path.exists(target))

    def test_a_umask_of_002_leaves_nothing_writable_by_the_group(self):
        # The root directory too (vchkpw refuses a domain whose path a group
        # other than its own may change).
        target = os.path.join(self.root.dir, "grp", "sandbox")
        p = subprocess.run(["sh", "-c", 'umask 002; exec "$@"', "sh",
                            os.path.join(REPO, "scripts", "setup-root"), target],
                           capture_output=True, env=dict(os.environ, VQMAIL_BIN=BIN), timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        for d in (os.path.join(self.root.dir, "grp"), target, os.path.join(target, "home", "vpopmail")):
            self.assertEqual(os.stat(d).st_mode & 0o022, 0, d)

    def test_missing_openssl_is_named_before_anything_is_written(self):
        target = os.path.join(self.root.dir, "never")
        path = path_without(self.root.dir, "openssl")
        p = subprocess.run([os.path.join(REPO, "scripts", "setup-root"), target], capture_output=True,
                           env=dict(os.environ, VQMAIL_BIN=BIN, PATH=path), timeout=60)
        self.assertEqual(p.returncode, 111)
        self.assertEqual(p.stderr, b"setup-root: fatal: openssl is missing (apt-get install openssl); "
                                   b"nothing was installed\n")
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
        # A subdirectory that cannot be made (its path would be too long):
        # the error names it, and no half Maildir stays behind.
        base = os.path.join(self.root.dir, "deep")
        while len(base) < 4000:
            base = os.path.join(base, "d" * min(200, 4000 - len(base)))
        os.makedirs(base)
        d = base + "/" + "m" * (4093 - len(base) - 1)
        p = self.root.run("maildirmake", d)
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"maildirmake: fatal: unable to mkdir " + d.encode() + b"/tmp: ", p.stderr)
        self.assertFalse(os.path.exists(d))


if __name__ == "__main__":
    unittest.main()


ACCOUNTS = ("alias:x:7411:7402::/var/qmail/alias:/usr/sbin/nologin\n"
            "qmaild:x:7412:7402::/var/qmail:/usr/sbin/nologin\n"
            "qmaill:x:7413:7402::/var/qmail:/usr/sbin/nologin\n"
            "qmailp:x:7414:7402::/var/qmail:/usr/sbin/nologin\n"
            "qmailq:x:7415:7401::/var/qmail:/usr/sbin/nologin\n"
            "qmailr:x:7416:7401::/var/qmail:/usr/sbin/nologin\n"
            "qmails:x:7417:7401::/var/qmail:/usr/sbin/nologin\n"
            "vpopmail:x:7489:7489::/home/vpopmail:/usr/sbin/nologin\n")
GROUPS = "qmail:x:7401:\nnofiles:x:7402:\nvchkpw:x:7489:\n"


def path_without(d, *names):
    """A PATH directory (made in d) with every program of the system's
    but the named ones."""
    out = os.path.join(d, "path-without-" + "-".join(names))
    os.makedirs(out, exist_ok=True)
    for sysdir in ("/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        if not os.path.isdir(sysdir):
            continue
        for n in os.listdir(sysdir):
            dst = os.path.join(out, n)
            if n not in names and not os.path.lexists(dst):
                os.symlink(os.path.join(sysdir, n), dst)
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root (a private mount namespace)")
class RealHost(unittest.TestCase):
    """`setup-root /` as on a real host, in a private mount namespace: copies of
    /etc/passwd and /etc/group and empty /var and /home bind-mounted over the
    real ones, so nothing outside the test changes."""

    def setUp(self):
        import shutil
        import tempfile
        if not shutil.which("unshare"):
            self.skipTest("no unshare")
        self.d = tempfile.mkdtemp(prefix="vqmail-host-")
        self.addCleanup(shutil.rmtree, self.d, ignore_errors=True)
        for sub in ("etc", "var", "home"):
            os.mkdir(os.path.join(self.d, sub))
        probe = subprocess.run(["unshare", "-m", "--propagation", "private", "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("no mount namespaces here")

    def host_argv(self, passwd_extra, group_extra, script):
        """The command running `script` (sh) in a namespace whose /etc/passwd and
        /etc/group are the real ones plus the given lines, with this test's /var
        and /home."""
        for name, extra in (("passwd", passwd_extra), ("group", group_extra)):
            with open(f"/etc/{name}") as f:
                text = f.read()
            with open(os.path.join(self.d, "etc", name), "w") as f:
                f.write(text + extra)
        mounts = (f"mount --bind {self.d}/etc/passwd /etc/passwd && mount --bind {self.d}/etc/group /etc/group && "
                  f"mount --bind {self.d}/var /var && mount --bind {self.d}/home /home && ")
        return ["unshare", "-m", "--propagation", "private", "sh", "-c", mounts + script]

    def host(self, passwd_extra, group_extra, script):
        """Runs `script` as host_argv says; its result."""
        return subprocess.run(self.host_argv(passwd_extra, group_extra, script),
                              capture_output=True, timeout=300,
                              env=dict(os.environ, VQMAIL_BIN=BIN))

    def test_accounts_owners_and_refusals(self):
        setup = os.path.join(REPO, "scripts", "setup-root")
        # No accounts: refused, nothing installed (/ spelled // too).
        p = self.host("", "", f"VQMAIL_ME=mail.test {setup} //")
        self.assertEqual(p.returncode, 111, p.stderr)
        self.assertIn(b"setup-root: fatal: missing in /etc/passwd or /etc/group: alias qmaild", p.stderr)
        self.assertIn(b"scripts/add-accounts makes them", p.stderr)
        self.assertEqual(os.listdir(os.path.join(self.d, "var")), [])
        # Some of them: refused, naming the rest.
        some = "".join(l + "\n" for l in ACCOUNTS.splitlines() if not l.startswith("alias:"))
        p = self.host(some, GROUPS, f"VQMAIL_ME=mail.test {setup} /")
        self.assertEqual(p.returncode, 111, p.stderr)
        self.assertIn(b"missing in /etc/passwd or /etc/group: alias\n", p.stderr)
        self.assertEqual(os.listdir(os.path.join(self.d, "var")), [])
        # All of them but no host name: refused.
        p = self.host(ACCOUNTS, GROUPS, f"{setup} /")
        self.assertEqual(p.returncode, 100, p.stderr)
        self.assertIn(b"set VQMAIL_ME", p.stderr)
        # No tcpserver for the services: refused.
        nopath = path_without(self.d, "tcpserver")
        p = self.host(ACCOUNTS, GROUPS, f"PATH={nopath} VQMAIL_ME=mail.test {setup} /")
        self.assertEqual(p.returncode, 111, p.stderr)
        self.assertIn(b"tcpserver is missing (apt-get install ucspi-tcp); nothing was installed", p.stderr)
        self.assertEqual(os.listdir(os.path.join(self.d, "var")), [])
        # Without VQMAIL_BIN the host gets the release build, never a newer
        # debug one; with none, it says so.
        release = subprocess.run([os.path.join(REPO, "scripts", "bin-dir"), "release"],
                                 capture_output=True, text=True).stdout.strip()
        env = {k: v for k, v in os.environ.items() if k != "VQMAIL_BIN"}
        p = subprocess.run(self.host_argv(ACCOUNTS, GROUPS, f"VQMAIL_ME=mail.test {setup} /"),
                           capture_output=True, timeout=300, env=env)
        if not release:
            self.assertEqual(p.returncode, 111, p.stderr)
            self.assertIn(b"no release build to install (run make release)", p.stderr)
            self.assertEqual(os.listdir(os.path.join(self.d, "var")), [])
        else:
            self.assertEqual(p.returncode, 0, p.stderr)
            for d, prog in (("var/qmail/bin", "qmail-queue"), ("home/vpopmail/bin", "vchkpw")):
                with open(os.path.join(self.d, d, prog), "rb") as a, open(os.path.join(release, prog), "rb") as b:
                    self.assertTrue(a.read() == b.read(), prog)
        # The real install: owners, modes, setuid bits, control/me.
        p = self.host(ACCOUNTS, GROUPS, f"VQMAIL_ME=mail.test {setup} / && {setup} /")
        self.assertEqual(p.returncode, 0, p.stderr)
        q = os.path.join(self.d, "var", "qmail")
        st = os.stat(os.path.join(q, "bin", "qmail-queue"))
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (7415, 7401, 0o4711))
        st = os.stat(os.path.join(self.d, "home", "vpopmail", "bin", "vchkpw"))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (7489, 0o6711))
        for sub in ("", "new", "cur", "tmp"):
            self.assertEqual(os.stat(os.path.join(q, "alias", "Maildir", sub)).st_uid, 7411, sub)
        self.assertEqual(os.stat(os.path.join(q, "queue", "todo")).st_uid, 7415)
        with open(os.path.join(q, "control", "me")) as f:
            self.assertEqual(f.read(), "mail.test\n")

    def unit_command(self, unit, port):
        """The shell command of a contrib/systemd unit's ExecStart, as systemd
        runs it: `$$` is `$`, `%i` the instance (the port)."""
        with open(os.path.join(REPO, "contrib", "systemd", unit)) as f:
            line = next(l for l in f if l.startswith("ExecStart="))
        cmd = line[len("ExecStart="):].strip().replace("$$", "$").replace("%i", str(port))
        prefix = "/bin/sh -c '"
        self.assertTrue(cmd.startswith(prefix) and cmd.endswith("'"), cmd)
        return cmd[len(prefix):-1]

    def test_the_systemd_units_serve(self):
        import signal
        import smtplib
        import poplib
        import socket
        setup = os.path.join(REPO, "scripts", "setup-root")
        p = self.host(ACCOUNTS, GROUPS, f"VQMAIL_ME=mail.test {setup} / && "
                      "/home/vpopmail/bin/vadddomain unit.test pm-pass-1 && "
                      "/home/vpopmail/bin/vadduser joe@unit.test joe-pass-1 && "
                      "echo 0 > /var/qmail/control/pop3interval && echo 0 > /var/qmail/control/mfcheck")
        self.assertEqual(p.returncode, 0, p.stderr)
        ports = []
        for _ in range(2):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                ports.append(s.getsockname()[1])
        # qmail-send as its unit starts it, but logging to a file (no syslog here).
        send = ("cd /var/qmail && env - PATH=/var/qmail/bin:/usr/bin:/bin "
                "/var/qmail/bin/qmail-start ./Maildir/ >/var/send.log 2>&1")
        script = (f"{{ ({self.unit_command('vqmail-smtpd@.service', ports[0])}) & "
                  f"({self.unit_command('vqmail-pop3@.service', ports[1])}) & ({send}) & wait; }}")
        srv = subprocess.Popen(self.host_argv(ACCOUNTS, GROUPS, script),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        self.addCleanup(srv.wait, 30)
        self.addCleanup(os.killpg, srv.pid, signal.SIGTERM)
        from harness import wait_until
        from test_run_local import listening as up
        for port in ports:
            try:
                wait_until(lambda: up(port), what=f"port {port}")
            except AssertionError:
                os.killpg(srv.pid, signal.SIGTERM)
                raise AssertionError(f"port {port}: {srv.communicate(timeout=30)[1]!r}")
        with smtplib.SMTP("127.0.0.1", ports[0], timeout=30) as s:
            code, msg = s.ehlo("client.test")
            self.assertEqual(code, 250)
            self.assertTrue(msg.startswith(b"mail.test"), msg)
            self.assertTrue(s.has_extn("starttls"))
        pop = poplib.POP3("127.0.0.1", ports[1], timeout=30)
        self.assertIn(b"@mail.test>", pop.getwelcome())
        pop.user("joe@unit.test")
        pop.pass_("joe-pass-1")
        self.assertEqual(pop.stat(), (0, 0))
        pop.quit()
        # The whole way with the real owners: SMTP as vpopmail, qmail-queue setuid
        # qmailq, qmail-send, qmail-lspawn's owner check, vdelivermail, POP3.
        with smtplib.SMTP("127.0.0.1", ports[0], timeout=30) as s:
            s.sendmail("postmaster@unit.test", ["joe@unit.test"], "Subject: real\r\n\r\nhello\r\n")

        def arrived():
            try:
                p = poplib.POP3("127.0.0.1", ports[1], timeout=30)
                p.user("joe@unit.test")
                p.pass_("joe-pass-1")
                n = p.stat()[0]
                p.quit()
                return n == 1
            except poplib.error_proto:
                return False
        wait_until(arrived, timeout=60, what="delivery to joe@unit.test")
        # ~vpopmail and its bin are root's: root runs the programs there.
        for d in ("", "bin"):
            st = os.stat(os.path.join(self.d, "home", "vpopmail", d))
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o755), d)
        self.assertEqual(os.stat(os.path.join(self.d, "home", "vpopmail", "bin", "clearopensmtp")).st_uid, 0)

    def test_add_accounts_then_install(self):
        import shutil
        etc = os.path.join(self.d, "etc-copy")
        r = subprocess.run(["cp", "-a", "/etc", etc], capture_output=True)
        if r.returncode != 0:
            self.skipTest("cannot copy /etc")
        script = (f"mount --bind {etc} /etc && mount --bind {self.d}/var /var && mount --bind {self.d}/home /home && "
                  f"{REPO}/scripts/add-accounts && echo second && {REPO}/scripts/add-accounts && "
                  f"VQMAIL_ME=mail.test {REPO}/scripts/setup-root / && "
                  f"VQMAIL_ME=other.test {REPO}/scripts/setup-root / && "
                  f"{{ {REPO}/scripts/setup-root /tmp/vqmail-sandbox-in-ns; test $? = 100; }}")
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, timeout=300, env=dict(os.environ, VQMAIL_BIN=BIN))
        self.assertEqual(p.returncode, 0, p.stderr)
        first, second = p.stdout.split(b"second\n")
        self.assertIn(b"add-accounts: user vpopmail\n", first)
        self.assertIn(b"add-accounts: group vchkpw\n", first)
        self.assertEqual(second, b"")  # nothing left to make
        with open(os.path.join(etc, "passwd")) as f:
            pw = {l.split(":")[0]: l.split(":") for l in f}
        for u in ("alias", "qmaild", "qmaill", "qmailp", "qmailq", "qmailr", "qmails", "vpopmail"):
            self.assertIn(u, pw)
        used89 = subprocess.run(["awk", "-F:", "$3 == 89", "/etc/passwd"], capture_output=True).stdout
        if not used89:
            self.assertEqual(pw["vpopmail"][2], "89")
        # A different VQMAIL_ME on a rerun is reported, and control/me kept.
        self.assertIn(b"setup-root: control/me says mail.test, kept", p.stderr)
        st = os.stat(os.path.join(self.d, "var", "qmail", "bin", "qmail-queue"))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o4711)
        self.assertEqual(st.st_uid, int(pw["qmailq"][2]))
        # Elsewhere than / root with the accounts gets no installation: a root-owned
        # sandbox would not work with programs that take those accounts, and a
        # setuid qmail-queue would ignore QMAIL_HOME and use the host's queue.
        self.addCleanup(shutil.rmtree, "/tmp/vqmail-sandbox-in-ns", ignore_errors=True)
        self.assertIn(b"setup-root: fatal: this host has qmail's or vpopmail's accounts", p.stderr)
        self.assertFalse(os.path.exists("/tmp/vqmail-sandbox-in-ns/var/qmail/bin"))

    def test_a_rerun_leaves_what_the_accounts_own_alone(self):
        setup = os.path.join(REPO, "scripts", "setup-root")
        p = self.host(ACCOUNTS, GROUPS, f"VQMAIL_ME=mail.test {setup} /")
        self.assertEqual(p.returncode, 0, p.stderr)
        # qmailq (owner of queue/lock) points tcpto at a root file, and a mess
        # bucket at a root directory: a rerun follows neither.
        victim = os.path.join(self.d, "victim")
        with open(victim, "w") as f:
            f.write("root's\n")
        os.chmod(victim, 0o600)
        vdir = os.path.join(self.d, "victim-dir")
        os.mkdir(vdir, 0o755)
        q = os.path.join(self.d, "var", "qmail", "queue")
        os.unlink(os.path.join(q, "lock", "tcpto"))
        os.symlink(victim, os.path.join(q, "lock", "tcpto"))
        os.rmdir(os.path.join(q, "mess", "5"))
        os.symlink(vdir, os.path.join(q, "mess", "5"))
        p = self.host(ACCOUNTS, GROUPS, f"{setup} /")
        self.assertEqual(p.returncode, 0, p.stderr)
        st = os.stat(victim)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o600))
        st = os.stat(vdir)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o755))
        # An installation from before ~vpopmail was root's: a link vpopmail put
        # at ~vpopmail/bin stops the rerun before anything is written.
        v = os.path.join(self.d, "home", "vpopmail")
        os.chown(v, 7489, 7489)
        os.rename(os.path.join(v, "bin"), os.path.join(v, "bin.old"))
        os.symlink(vdir, os.path.join(v, "bin"))
        p = self.host(ACCOUNTS, GROUPS, f"{setup} /")
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"/home/vpopmail/bin is a symbolic link; it should not be", p.stderr)
        self.assertEqual(os.listdir(vdir), [])
        # The same older installation with a bin of vpopmail's holding a link
        # vpopmail planted: the bin is set aside whole and a new one made.
        os.unlink(os.path.join(v, "bin"))
        os.rename(os.path.join(v, "bin.old"), os.path.join(v, "bin"))
        os.chown(os.path.join(v, "bin"), 7489, 7489)
        os.unlink(os.path.join(v, "bin", "vchkpw"))
        os.symlink(vdir, os.path.join(v, "bin", "vchkpw"))
        p = self.host(ACCOUNTS, GROUPS, f"{setup} /")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"/home/vpopmail/bin was vpopmail's: set aside", p.stderr)
        st = os.stat(vdir)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o755))
        st = os.lstat(os.path.join(v, "bin", "vchkpw"))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (7489, 0o6711))
        self.assertEqual(os.stat(os.path.join(v, "bin")).st_uid, 0)
        self.assertEqual(os.stat(v).st_uid, 0)

    def test_a_killed_first_install_is_finished_and_foreign_links_refused(self):
        setup = os.path.join(REPO, "scripts", "setup-root")
        # As a first run killed right after making ~alias and the queue (root's, 0700).
        q = os.path.join(self.d, "var", "qmail")
        os.makedirs(q)
        for d in ("alias", "queue"):
            os.mkdir(os.path.join(q, d), 0o700)
        p = self.host(ACCOUNTS, GROUPS, f"VQMAIL_ME=mail.test {setup} /")
        self.assertEqual(p.returncode, 0, p.stderr)
        st = os.stat(os.path.join(q, "alias"))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (7411, 0o2755))
        self.assertTrue(os.path.isdir(os.path.join(q, "alias", "Maildir", "new")))
        st = os.stat(os.path.join(q, "queue"))
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (7415, 0o750))
        self.assertTrue(os.path.exists(os.path.join(q, "queue", "lock", "trigger")))
        # A link vpopmail made (it owns the link), even in root's ~vpopmail,
        # stops a rerun; root's own link there would be taken.
        v = os.path.join(self.d, "home", "vpopmail")
        os.rename(os.path.join(v, "etc"), os.path.join(v, "etc.real"))
        os.symlink(os.path.join(v, "etc.real"), os.path.join(v, "etc"))
        os.lchown(os.path.join(v, "etc"), 7489, 7489)
        p = self.host(ACCOUNTS, GROUPS, f"{setup} /")
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"/home/vpopmail/etc is a symbolic link; it should not be", p.stderr)
        os.lchown(os.path.join(v, "etc"), 0, 0)
        p = self.host(ACCOUNTS, GROUPS, f"{setup} /")
        self.assertEqual(p.returncode, 0, p.stderr)
