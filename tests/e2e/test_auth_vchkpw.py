"""vchkpw: the checkpassword interface on descriptor 3, login forms, flags,
CRAM-MD5 and APOP, exit codes, environment, lastauth and the relay it opens."""
import hashlib
import hmac
import os
import socket
import stat
import subprocess
import unittest

from auth_lib import crypt6, NO_IMAP, NO_POP, NO_RELAY, NO_SMTP, NO_WEBMAIL, AuthCase
from harness import chown_tree, need_tool, open_to_all

NOBODY = 65534
DAEMON = 1
SHOW = 'printf "%s|%s|%s|%s|%s" "$USER" "$HOME" "$SHELL" "$VPOPUSER" "$(pwd)"'


class Vchkpw(AuthCase):
    def setUp(self):
        super().setUp()
        self.add_domain("example.com")
        self.add_domain("other.org")
        self.user("joe", "example.com", "secret1")
        self.user("ann", "other.org", "annpass", clear="annpass")

    def check(self, login, password, challenge=b"", prog=None, env=None, fd3=True, umask="022", uid=None):
        """Runs vchkpw with login\\0password\\0challenge\\0 on descriptor 3."""
        if isinstance(login, str):
            login = login.encode()
        if isinstance(password, str):
            password = password.encode()
        if isinstance(challenge, str):
            challenge = challenge.encode()
        prog = prog if prog is not None else ["sh", "-c", SHOW]
        e = {"TCPREMOTEIP": "10.0.0.9", "TCPLOCALPORT": "110", "VQMAIL_NOW": "1800000000"}
        e.update(env or {})
        full = self.root.env(**e)
        for k, v in list(full.items()):
            if v is None:
                del full[k]
        vchkpw = self.root.bin("vchkpw")
        if fd3:
            data = login + b"\0" + password + b"\0" + challenge + b"\0"
            argv = ["sh", "-c", f'umask {umask}; exec 3<&0 </dev/null; exec "$@"', "sh", vchkpw, *prog]

            def become():
                if uid is not None:
                    os.setgroups([])
                    os.setgid(uid)
                    os.setuid(uid)
            return subprocess.run(argv, input=data, capture_output=True, env=full, timeout=30,
                                  preexec_fn=become)
        return subprocess.run([vchkpw, *prog], capture_output=True, env=full, timeout=30)

    def expect(self, r, code, log=None):
        self.assertEqual(r.returncode, code, (r.stdout, r.stderr))
        if log is not None:
            self.assertIn(("vpopmail: " + log).encode(), r.stderr)

    # -- logins ------------------------------------------------------------
    def test_login_forms_and_environment(self):
        home = self.root.domain_dir("example.com") + "/joe"
        for login in ["joe@example.com", "joe%example.com", "joe/example.com", "JOE@Example.Com"]:
            r = self.check(login, "secret1")
            self.expect(r, 0)
            self.assertEqual(r.stdout.decode(), f"joe|{home}|NOLOGIN|{login.lower()}|{home}")

    def test_default_domain_file_and_variable(self):
        with open(self.root.v("etc", "defaultdomain"), "w") as f:
            f.write("example.com\n")
        self.expect(self.check("joe", "secret1"), 0)
        self.expect(self.check("ann", "annpass"), 3, "vchkpw-pop3: vpopmail user not found ann@example.com:10.0.0.9")
        r = self.check("ann", "annpass", env={"VPOPMAIL_DOMAIN": "other.org"})
        self.expect(r, 0)
        self.assertTrue(r.stdout.startswith(b"ann|"))

    def test_a_directory_the_domains_owner_does_not_own_is_refused(self):
        # A vpasswd line (written by whoever owns the domain) pointing at a
        # directory of another account: no login, nothing written there.
        elsewhere = os.path.join(self.root.dir, "elsewhere")
        os.makedirs(os.path.join(elsewhere, "Maildir", "new"))
        os.chown(elsewhere, NOBODY, NOBODY)
        self.user("spy", "example.com", "spypass", dir=elsewhere)
        r = self.check("spy@example.com", "spypass")
        self.expect(r, 1, f"vchkpw-pop3: user directory {elsewhere} belongs to uid {NOBODY}, "
                          f"not to the domain's owner (uid {os.getuid()}) spy@example.com:10.0.0.9")
        self.assertFalse(os.path.exists(os.path.join(elsewhere, "lastauth")))
        self.assertEqual(r.stdout, b"")

    def test_a_domain_of_another_owner_is_refused_without_root(self):
        # vchkpw running as an account other than the one that owns the
        # domain's directory, without root to change to it, cannot keep that
        # owner out of others' mail: the domain is refused. A domain whose
        # files are its own (a sandbox made by an ordinary user, whatever
        # owner users/assign names) is served.
        r = self.root
        open_to_all(r.dir)
        dom = r.domain_dir("example.com")
        chown_tree(dom, DAEMON, DAEMON)
        r.run("vuserinfo", "joe@example.com", check=True)  # vpasswd.cdb, before it is daemon's
        os.lchown(os.path.join(dom, "vpasswd.cdb"), DAEMON, DAEMON)
        os.chmod(os.path.join(dom, "vpasswd.cdb"), 0o644)
        res = self.check("joe@example.com", "secret1", uid=NOBODY, env={"VQMAIL_NOW": None})
        self.expect(res, 1, f"vchkpw-pop3: domain belongs to uid {DAEMON}, and vchkpw runs as "
                            f"uid {NOBODY} without root to change to it ({dom}) joe@example.com:10.0.0.9")
        self.assertEqual(res.stdout, b"")
        # users/assign naming another owner than the one of the files.
        r.set_domain_owner(NOBODY, NOBODY, "example.com")
        res = self.check("joe@example.com", "secret1", uid=DAEMON, env={"VQMAIL_NOW": None})
        self.expect(res, 0)
        self.assertTrue(res.stdout.startswith(b"joe|"), res.stdout)

    def test_a_domain_directory_others_may_write_is_refused_without_root(self):
        # A domain whose directory is a shared one (/tmp, /var/tmp: root's,
        # but anyone's files): whoever put a vpasswd there would choose
        # where its logins go.
        r = self.root
        shared = os.path.join(r.dir, "shared")
        os.mkdir(shared)
        os.chmod(shared, 0o1777)
        with open(r.q("users", "assign")) as f:
            text = f.read()
        with open(r.q("users", "assign"), "w") as f:
            f.write(text.replace(".\n", f"+bob.test-:bob.test:0:0:{shared}:-::\n.\n"))
        r.run("qmail-newu", check=True)
        spy = os.path.join(shared, "spy")
        os.makedirs(os.path.join(spy, "Maildir", "new"))
        with open(os.path.join(shared, "vpasswd"), "w") as f:
            f.write(f"spy:{crypt6('spypass')}:1:0:spy:{spy}:NOQUOTA\n")
        r.run("vuserinfo", "spy@bob.test", check=True)  # its vpasswd.cdb
        open_to_all(r.dir)
        res = self.check("spy@bob.test", "spypass", uid=NOBODY, env={"VQMAIL_NOW": None})
        self.expect(res, 1, f"vchkpw-pop3: domain directory {shared} may be written by others "
                            f"spy@bob.test:10.0.0.9")
        # Nor may another account own a link on the way, which it could
        # point elsewhere between the read of vpasswd and the check.
        link = os.path.join(shared, "dom")
        os.symlink(r.domain_dir("example.com"), link)
        os.lchown(link, DAEMON, DAEMON)
        with open(r.q("users", "assign")) as f:
            text = f.read()
        with open(r.q("users", "assign"), "w") as f:
            f.write(text.replace(f":{r.domain_dir('example.com')}:", f":{link}:"))
        r.run("qmail-newu", check=True)
        res = self.check("joe@example.com", "secret1", uid=NOBODY, env={"VQMAIL_NOW": None})
        self.expect(res, 1, f"vchkpw-pop3: domain belongs to uid {DAEMON}, and vchkpw runs as "
                            f"uid {NOBODY} without root to change to it ({link}) joe@example.com:10.0.0.9")
        # A user directory others may write is refused whatever vchkpw runs as.
        os.chmod(shared, 0o755)
        os.chmod(spy, 0o777)
        res = self.check("spy@bob.test", "spypass")
        self.expect(res, 1, f"vchkpw-pop3: user directory {spy} may be written by others "
                            f"spy@bob.test:10.0.0.9")
        self.assertFalse(os.path.exists(os.path.join(spy, "lastauth")))

    def test_root_writes_lastauth_with_the_domain_owners_rights(self):
        # Root becomes the domain's owner for the login; lastauth is written
        # with that owner's rights too, never root's (the owner could swap
        # his directory for a link to /etc between a check and the write).
        r = self.root
        r.set_domain_owner(NOBODY, NOBODY, "example.com")
        r.run("vuserinfo", "joe@example.com", check=True)
        dom = r.domain_dir("example.com")
        home = os.path.join(dom, "joe")
        os.makedirs(os.path.join(home, "Maildir", "new"))
        open_to_all(r.dir)
        chown_tree(dom, NOBODY, NOBODY)
        os.chmod(home, 0o555)  # not even its owner may write there
        res = self.check("joe@example.com", "secret1")
        self.expect(res, 0, "vchkpw-pop3: unable to write lastauth (access denied) joe@example.com:10.0.0.9")
        self.assertFalse(os.path.exists(os.path.join(home, "lastauth")))
        os.chmod(home, 0o750)
        self.expect(self.check("joe@example.com", "secret1"), 0)
        self.assertEqual(os.stat(os.path.join(home, "lastauth")).st_uid, NOBODY)

    def test_started_by_root_through_the_setuid_bit_it_is_root(self):
        # A root-run server with the installed (setuid-vpopmail) vchkpw:
        # root again, so it reads the root's files (here: the sandbox named
        # by the environment, which a setuid program would ignore).
        import shutil
        suid = os.path.join(self.root.dir, "suid")
        os.mkdir(suid, 0o755)
        vchkpw = os.path.join(suid, "vchkpw")
        shutil.copy(self.root.bin("vchkpw"), vchkpw)
        os.chown(vchkpw, NOBODY, NOBODY)
        os.chmod(vchkpw, 0o4711)
        data = b"joe@example.com\0secret1\0\0"
        env = self.root.env(TCPREMOTEIP="10.0.0.9", TCPLOCALPORT="110")
        p = subprocess.run(["sh", "-c", 'exec 3<&0 </dev/null; exec "$@"', "sh", vchkpw, "sh", "-c", SHOW],
                           input=data, capture_output=True, env=env, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stdout.startswith(b"joe|"), p.stdout)

    def test_maildir_is_created_and_lastauth_written(self):
        home = os.path.join(self.root.domain_dir("example.com"), "joe")
        self.assertFalse(os.path.exists(home))
        self.expect(self.check("joe@example.com", "secret1", env={"TCPREMOTEIP": "::ffff:10.1.1.1"},
                               umask="077"), 0)
        # With vadduser's mode (0750), whatever the umask.
        for sub in ("", "Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp"):
            p = os.path.join(home, sub)
            self.assertTrue(os.path.isdir(p), p)
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o750, p)
        with open(os.path.join(home, "lastauth")) as f:
            self.assertEqual(f.read(), "10.1.1.1")

    def test_program_gets_its_arguments_and_no_program_means_exit_0(self):
        r = self.check("joe@example.com", "secret1", prog=["sh", "-c", 'echo "$1/$2"', "x", "a b", "c"])
        self.expect(r, 0)
        self.assertEqual(r.stdout, b"a b/c\n")
        self.expect(self.check("joe@example.com", "secret1", prog=[]), 0)
        r = self.check("joe@example.com", "secret1", prog=["/nonexistent/prog"])
        self.expect(r, 111, "vchkpw-pop3: unable to run /nonexistent/prog")

    def test_root_becomes_the_domain_owner_for_pop_not_for_smtp(self):
        import pwd
        if os.getuid() != 0:
            self.skipTest("needs root")
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no nobody account")
        # A domain owned by a real account other than root.
        self.add_domain("owned.test", owner=(nobody.pw_uid, nobody.pw_gid))
        d = self.root.domain_dir("owned.test")
        for p in (self.root.dir, self.root.v("domains")):
            os.chmod(p, 0o755)
        self.user("kim", "owned.test", "kimpass")
        ids = ["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G)"']
        r = self.check("kim@owned.test", "kimpass", prog=ids)
        self.expect(r, 0)
        self.assertEqual(r.stdout.decode().split(), [str(nobody.pw_uid), str(nobody.pw_gid), str(nobody.pw_gid)])
        md = os.path.join(d, "kim", "Maildir", "new")
        self.assertEqual(os.stat(md).st_uid, nobody.pw_uid)
        r = self.check("kim@owned.test", "kimpass", prog=ids, env={"TCPLOCALPORT": "25"})
        self.expect(r, 0)
        self.assertEqual(r.stdout.decode().split()[0], "0")

    def test_root_opens_the_relay_when_it_makes_the_maildir(self):
        # Started by root for a domain of another account, a login whose
        # Maildir is missing still opens POP-before-SMTP: the Maildir is made
        # with the owner's rights, the relay written with root's.
        if os.getuid() != 0:
            self.skipTest("needs root")
        uid = 4244
        self.add_domain("owned2.test", owner=(uid, uid))
        for p in (self.root.dir, self.root.v("domains")):
            os.chmod(p, 0o755)
        udir = self.user("kim", "owned2.test", "kimpass")
        r = self.check("kim@owned2.test", "kimpass", prog=["true"], env={"TCPREMOTEIP": "10.5.5.2"})
        self.expect(r, 0)
        self.assertEqual(os.stat(os.path.join(udir, "Maildir", "new")).st_uid, uid)
        with open(self.root.v("etc", "open-smtp")) as f:
            self.assertIn("10.5.5.2", f.read())

    def test_root_becomes_a_numeric_owner_that_owns_the_domain(self):
        # vadddomain -i with a uid that has no /etc/passwd line: root still
        # becomes it when it owns the domain's directory (it could plant a
        # Maildir link for root to follow otherwise); a sandbox tree that is
        # root's keeps root.
        if os.getuid() != 0:
            self.skipTest("needs root")
        uid = 4242
        self.add_domain("numeric.test", owner=(uid, uid))
        d = self.root.domain_dir("numeric.test")
        for p in (self.root.dir, self.root.v("domains")):
            os.chmod(p, 0o755)
        self.user("kim", "numeric.test", "kimpass")
        ids = ["sh", "-c", 'echo "$(id -u) $(id -g)"']
        r = self.check("kim@numeric.test", "kimpass", prog=ids)
        self.expect(r, 0)
        self.assertEqual(r.stdout.decode().split(), [str(uid), str(uid)])
        # The domain's name made a link to a directory of root's: still the
        # owner (only a directory of root's itself keeps root).
        roots_dir = os.path.join(self.root.dir, "roots-copy")
        os.rename(d, roots_dir)
        os.symlink(roots_dir, d)
        os.lchown(d, uid, uid)
        os.chown(roots_dir, 0, 0)
        r = self.check("kim@numeric.test", "kimpass", prog=ids)
        self.assertNotEqual(r.stdout.decode().split()[:1], ["0"])
        os.unlink(d)
        os.rename(roots_dir, d)
        os.chown(d, 0, 0)
        for top, dirs, files in os.walk(d):
            for n in dirs + files:
                os.lchown(os.path.join(top, n), 0, 0)
        r = self.check("kim@numeric.test", "kimpass", prog=ids)
        self.expect(r, 0)
        self.assertEqual(r.stdout.decode().split()[0], "0")

    # -- exit codes ----------------------------------------------------------
    def test_exit_codes_and_log_lines(self):
        self.expect(self.check("joe@example.com", "wrong"), 3,
                    "vchkpw-pop3: password fail joe@example.com:10.0.0.9")
        self.assertNotIn(b"wrong", self.check("joe@example.com", "wrong").stderr)
        self.expect(self.check("nobody@example.com", "x"), 3,
                    "vchkpw-pop3: vpopmail user not found nobody@example.com:10.0.0.9")
        self.expect(self.check("joe@nowhere.test", "x"), 3,
                    "vchkpw-pop3: vpopmail user not found joe@nowhere.test:10.0.0.9")
        self.expect(self.check("", "x"), 12, "vchkpw-pop3: null user name given :10.0.0.9")
        self.expect(self.check("joe@example.com", ""), 13,
                    "vchkpw-pop3: null password given joe@example.com:10.0.0.9")
        self.expect(self.check("jo e@example.com", "x"), 20,
                    "vchkpw-pop3: invalid user/domain characters jo e@example.com:10.0.0.9")
        self.expect(self.check("joe@exa;mple.com", "x"), 20)
        r = self.check("joe@example.com", "x", fd3=False)
        self.expect(r, 11)
        self.assertIn(b"vchkpw is only for talking with qmail-popup and qmail-pop3d", r.stderr)
        self.expect(self.check("joe@example.com", "x" * 600), 2)
        self.user("nodir", "example.com", "pw1", dir="")
        self.expect(self.check("nodir@example.com", "pw1"), 14,
                    "vchkpw-pop3: dir auto create failed nodir@example.com:10.0.0.9")
        # A wrong password for such a user is a wrong password like any other
        # (the directory is looked at only after it, so timing tells nothing).
        self.expect(self.check("nodir@example.com", "wrong"), 3,
                    "vchkpw-pop3: password fail nodir@example.com:10.0.0.9")
        self.user("baddir", "example.com", "pw1", dir="/dev/null/baddir")
        self.expect(self.check("baddir@example.com", "pw1", env={"TCPREMOTEIP": "10.9.9.9"}), 6,
                    "vchkpw-pop3: autocreate dir failed")
        # A directory that is there, with a file where the Maildir should be.
        udir = self.user("filemd", "example.com", "pw1")
        os.makedirs(udir)
        open(os.path.join(udir, "Maildir"), "w").close()
        self.expect(self.check("filemd@example.com", "pw1"), 6,
                    "vchkpw-pop3: autocreate Maildir failed")
        # A login that ends in that error opens no relay.
        osmtp = self.root.v("etc", "open-smtp")
        self.assertNotIn("10.9.9.9", open(osmtp).read() if os.path.exists(osmtp) else "")
        # SMTP AUTH does not enter the directory.
        self.expect(self.check("baddir@example.com", "pw1", prog=["/bin/true"], env={"TCPLOCALPORT": "25"}), 0)
        self.user("nopass", "example.com", "", hashed="")
        self.expect(self.check("nopass@example.com", "x"), 15,
                    "vchkpw-pop3: user has no password nopass@example.com:10.0.0.9")

    # -- flags and connection types ------------------------------------------
    def test_flags_deny_their_service(self):
        self.user("np", "example.com", "pw1", flags=NO_POP)
        self.user("ni", "example.com", "pw1", flags=NO_IMAP)
        self.user("ns", "example.com", "pw1", flags=NO_SMTP)
        self.user("nw", "example.com", "pw1", flags=NO_WEBMAIL)
        pop = {"TCPLOCALPORT": "110"}
        pops = {"TCPLOCALPORT": "995"}
        imap = {"TCPLOCALPORT": "143"}
        smtp = {"TCPLOCALPORT": "587"}
        webmail = {"TCPLOCALPORT": "143", "TCPREMOTEIP": "127.0.0.1"}
        cases = [
            ("np", pop, 1, "vchkpw-pop3: pop access denied np@example.com:10.0.0.9"),
            ("np", pops, 1, "vchkpw-pop3s: pop access denied"),
            ("np", imap, 0, None), ("np", smtp, 0, None),
            ("ni", imap, 1, "vchkpw-imap: imap access denied ni@example.com:10.0.0.9"),
            ("ni", pop, 0, None), ("ni", webmail, 0, None),
            ("ns", smtp, 1, "vchkpw-submission: smtp access denied ns@example.com:10.0.0.9"),
            ("ns", pop, 0, None),
            ("nw", webmail, 1, "vchkpw-webmail: webmail access denied nw@example.com:127.0.0.1"),
            ("nw", imap, 0, None), ("nw", pop, 0, None),
        ]
        for user, env, code, log in cases:
            with self.subTest(user=user, env=env):
                self.expect(self.check(f"{user}@example.com", "pw1", env=env), code, log)

    def test_unknown_port_uses_the_program_name(self):
        self.user("ns", "example.com", "pw1", flags=NO_SMTP)
        self.user("ni", "example.com", "pw1", flags=NO_IMAP)
        self.user("np", "example.com", "pw1", flags=NO_POP)
        port = {"TCPLOCALPORT": "4321"}
        self.expect(self.check("ns@example.com", "pw1", prog=["/bin/true"], env=port), 1,
                    "vchkpw-4321: smtp access denied")
        self.expect(self.check("ni@example.com", "pw1", prog=["sh", "-c", "exit 0", "imapd"], env=port), 0)
        self.expect(self.check("ni@example.com", "pw1", prog=["/usr/sbin/imapd-nothere"], env=port), 1,
                    "vchkpw-4321: imap access denied")
        self.expect(self.check("np@example.com", "pw1", prog=["qmail-pop3d-nothere"], env=port), 1,
                    "vchkpw-4321: pop access denied")
        # The loopback ports of make run map to their standard services.
        self.expect(self.check("np@example.com", "pw1", env={"TCPLOCALPORT": "2110"}), 1,
                    "vchkpw-pop3: pop access denied")
        self.expect(self.check("ns@example.com", "pw1", env={"TCPLOCALPORT": "2465"}), 1,
                    "vchkpw-smtps: smtp access denied")

    # -- challenge/response ----------------------------------------------------
    def test_apop_and_cram_md5_need_a_clear_password(self):
        ts = "<1234.1800000000@mail.example.com>"
        apop = hashlib.md5((ts + "annpass").encode()).hexdigest()
        self.expect(self.check("ann@other.org", apop, ts), 0)
        cram = hmac.new(b"annpass", ts.encode(), hashlib.md5).hexdigest()
        self.expect(self.check("ann@other.org", cram, ts, prog=["/bin/true"], env={"TCPLOCALPORT": "25"}), 0)
        # Each digest only for its own protocol.
        self.expect(self.check("ann@other.org", cram, ts), 3)
        self.expect(self.check("ann@other.org", apop, ts, prog=["/bin/true"], env={"TCPLOCALPORT": "25"}), 3)
        # joe has no clear password: digests never match.
        apop = hashlib.md5((ts + "secret1").encode()).hexdigest()
        self.expect(self.check("joe@example.com", apop, ts), 3)
        cram = hmac.new(b"secret1", ts.encode(), hashlib.md5).hexdigest()
        self.expect(self.check("joe@example.com", cram, ts, prog=["/bin/true"], env={"TCPLOCALPORT": "25"}), 3)
        # The plain password works everywhere, whatever the challenge says.
        self.expect(self.check("ann@other.org", "annpass", ts, prog=["/bin/true"], env={"TCPLOCALPORT": "25"}), 0)

    def test_vpasswd_bytes_that_are_not_utf8_are_kept(self):
        # An ISO-8859-1 line, as older vpopmail hosts have them.
        d = self.root.domain_dir("example.com")
        pw = subprocess.run(["openssl", "passwd", "-6", "-salt", "abcdefgh", "p\xe4ss"],
                            capture_output=True, check=True).stdout.strip()
        line = b"anna:" + pw + b":1:0:Anna M\xfcller:" + d.encode() + b"/anna:NOQUOTA:p\xe4ss"
        with open(os.path.join(d, "vpasswd"), "ab") as f:
            f.write(line + b"\n")
        cdb = os.path.join(d, "vpasswd.cdb")
        if os.path.exists(cdb):
            os.unlink(cdb)
        os.makedirs(os.path.join(d, "anna", "Maildir", "new"))
        ts = b"<1234.1800000000@mail.example.com>"
        apop = hashlib.md5(ts + b"p\xe4ss").hexdigest()
        self.expect(self.check("anna@example.com", apop, ts), 0)
        # Another user's change rewrites vpasswd: anna's line keeps its bytes.
        self.assertEqual(self.root.run("vmoduser", "-c", "Joe Q", "joe@example.com").returncode, 0)
        with open(os.path.join(d, "vpasswd"), "rb") as f:
            self.assertIn(line + b"\n", f.read())
        self.expect(self.check("anna@example.com", apop, ts), 0)
        p = self.root.run("vuserinfo", "-c", "anna@example.com")
        self.assertEqual(p.stdout, b"Anna M\xfcller\n")

    def test_older_hash_schemes_verify(self):
        md5 = subprocess.run(["openssl", "passwd", "-1", "-salt", "abcdefgh", "old-pw"],
                             capture_output=True, text=True, check=True).stdout.strip()
        self.user("old", "example.com", "", hashed=md5)
        self.expect(self.check("old@example.com", "old-pw"), 0)
        self.expect(self.check("old@example.com", "old-px"), 3)

    # -- the relay -------------------------------------------------------------
    def open_smtp(self):
        with open(self.root.v("etc", "open-smtp")) as f:
            return f.read()

    def test_pop_and_imap_logins_open_the_relay_smtp_does_not(self):
        self.user("nr", "example.com", "pw1", flags=NO_RELAY)
        self.expect(self.check("joe@example.com", "secret1", env={"TCPREMOTEIP": "10.5.5.5"}), 0)
        self.expect(self.check("joe@example.com", "secret1",
                               env={"TCPREMOTEIP": "10.5.5.6", "TCPLOCALPORT": "993"}), 0)
        self.expect(self.check("joe@example.com", "secret1", prog=["/bin/true"],
                               env={"TCPREMOTEIP": "10.5.5.7", "TCPLOCALPORT": "25"}), 0)
        self.expect(self.check("nr@example.com", "pw1", env={"TCPREMOTEIP": "10.5.5.8"}), 0)
        self.expect(self.check("joe@example.com", "wrong", env={"TCPREMOTEIP": "10.5.5.9"}), 3)
        self.assertEqual(self.open_smtp(),
                         '10.5.5.5:allow,RELAYCLIENT="",RBLSMTPD=""\t1800000000\n'
                         '10.5.5.6:allow,RELAYCLIENT="",RBLSMTPD=""\t1800000000\n')

    def test_pop_login_under_tcpserver_gives_relayclient_to_smtp(self):
        need_tool("tcpserver")
        vchkpw = self.root.bin("vchkpw")
        login = self.serve(["sh", "-c", f'printf "joe@example.com\\000secret1\\000<1@x>\\000" '
                                        f'| {vchkpw} sh -c "echo ok" 3<&0'])
        smtp = self.serve(["sh", "-c", 'echo "R=${RELAYCLIENT-unset}"'],
                          rules=self.root.v("etc", "tcp.smtp.cdb"))

        def talk(port):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                data = b""
                while True:
                    c = s.recv(100)
                    if not c:
                        return data.decode().strip()
                    data += c

        self.assertEqual(talk(smtp.port), "R=unset")
        self.assertEqual(talk(login.port), "ok")
        self.assertIn("127.0.0.1:allow,", self.open_smtp())
        self.assertEqual(talk(smtp.port), "R=")



class WithAdminTools(AuthCase):
    """vchkpw reads what the real vadddomain, vadduser, vmoduser and vpasswd write."""

    def setUp(self):
        super().setUp()
        for prog in ("vadddomain", "vadduser", "vmoduser", "vpasswd"):
            if not os.path.exists(self.root.bin(prog)):
                self.skipTest(f"{prog} is not built")

    def check(self, login, password, challenge="", port="110"):
        data = f"{login}\0{password}\0{challenge}\0".encode()
        argv = ["sh", "-c", 'exec 3<&0 </dev/null; exec "$@"', "sh", self.root.bin("vchkpw"), "true"]
        return subprocess.run(argv, input=data, capture_output=True, timeout=30,
                              env=self.root.env(TCPREMOTEIP="10.2.2.2", TCPLOCALPORT=port)).returncode

    def test_users_made_by_the_admin_tools(self):
        self.root.add_domain("tools.test", "pm-pass1")
        self.root.add_user("kim@tools.test", "kim-pass1")
        self.root.run("vadduser", "-C", "lee@tools.test", "lee-pass1", check=True)
        self.assertEqual(self.check("kim@tools.test", "kim-pass1"), 0)
        self.assertEqual(self.check("postmaster@tools.test", "pm-pass1"), 0)
        self.assertEqual(self.check("kim@tools.test", "nope"), 3)
        ts = "<1.2@tools.test>"
        self.assertEqual(self.check("lee@tools.test", hashlib.md5((ts + "lee-pass1").encode()).hexdigest(), ts), 0)
        self.assertEqual(self.check("kim@tools.test", hashlib.md5((ts + "kim-pass1").encode()).hexdigest(), ts), 3)
        self.root.run("vmoduser", "-p", "kim@tools.test", check=True)
        self.assertEqual(self.check("kim@tools.test", "kim-pass1"), 1)
        self.assertEqual(self.check("kim@tools.test", "kim-pass1", port="587"), 0)
        self.root.run("vpasswd", "lee@tools.test", "lee-pass2", check=True)
        self.assertEqual(self.check("lee@tools.test", "lee-pass1"), 3)
        self.assertEqual(self.check("lee@tools.test", "lee-pass2"), 0)

    def test_domain_limits_add_their_flags(self):
        self.root.add_domain("closed.test", "pm-pass1")
        self.root.add_user("kim@closed.test", "kim-pass1")
        limits = os.path.join(self.root.domain_dir("closed.test"), ".qmailadmin-limits")
        with open(limits, "w") as f:
            f.write("maxpopaccounts: 10\ndisable_pop\ndisable_smtp: 1\ndisable_imap 0\n")
        self.assertEqual(self.check("kim@closed.test", "kim-pass1"), 1)               # POP3 closed
        self.assertEqual(self.check("kim@closed.test", "kim-pass1", port="587"), 1)   # SMTP AUTH closed
        self.assertEqual(self.check("kim@closed.test", "kim-pass1", port="143"), 0)   # IMAP: 0 is not set
        # vuserinfo shows them as vpopmail's does: gid = the user's own flags,
        # flags = with the domain's, and those only the domain sets marked (*).
        info = self.root.run("vuserinfo", "kim@closed.test").stdout.decode()
        self.assertIn("gid:    0\nflags:  2050\n", info)
        self.assertIn("limits:\n        pop access closed (*)\n        smtp access is closed (*)\n"
                      "        * = set by domain-wide limits\ndir:", info)
        # V_OVERRIDE (vmoduser -o): the domain's limits no longer apply.
        self.root.run("vmoduser", "-o", "kim@closed.test", check=True)
        self.assertEqual(self.check("kim@closed.test", "kim-pass1"), 0)
        info = self.root.run("vuserinfo", "kim@closed.test").stdout.decode()
        self.assertIn("gid:    8192\nflags:  8192\n", info)
        self.assertIn("limits:\n        user is not subject to domain limits\ndir:", info)
        self.root.run("vmoduser", "-x", "kim@closed.test", check=True)
        os.unlink(limits)
        self.assertEqual(self.check("kim@closed.test", "kim-pass1"), 0)
        # vlimits.default stands in for a domain without its own file.
        with open(self.root.v("etc", "vlimits.default"), "w") as f:
            f.write("disable_pop: 1\n")
        self.assertEqual(self.check("kim@closed.test", "kim-pass1"), 1)


if __name__ == "__main__":
    unittest.main()
