"""vadduser, vdeluser, vpasswd, vmoduser, vsetuserquota, vuserinfo, valias on
files in vpopmail's exact format: golden lines, byte-for-byte preservation of
what they do not change, and bad input that changes nothing."""
import os
import subprocess
import stat
import unittest
import warnings

from harness import RootTestCase
from test_vpop_domains import cdb_records, snapshot

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt


def verify(password, hashed):
    return crypt.crypt(password, hashed) == hashed


# A domain as vpopmail 5.4 leaves it: MD5-crypt and DES hashes, clear
# passwords, flags, quotas, a hashed user, a line without the clear field.
GOLDEN = [
    "ann:$1$AbCdEfGh$0123456789abcdefghijkl:1:0:Ann Smith:{dom}/ann:NOQUOTA:annpass",
    "bob:aZGJuE6EXrjEE:1:2050:bob:{dom}/bob:52428800S,1000C:test",
    "carl:$1$saltsalt$abcdefghijklmnopqrstuv:2:0:Carl:{dom}/0/carl:10485760S:",
    "postmaster:$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0:1:0:Postmaster:{dom}/postmaster:NOQUOTA",
]


class Users(RootTestCase):
    def setUp(self):
        super().setUp()
        self.root.add_domain("example.com")
        self.dom = self.root.v("domains", "example.com")

    def vpasswd_lines(self):
        with open(os.path.join(self.dom, "vpasswd")) as f:
            return f.read().splitlines()

    def entry(self, name):
        for l in self.vpasswd_lines():
            if l.split(":")[0] == name:
                return l.split(":")
        return None

    def install_golden(self):
        lines = [l.format(dom=self.dom) for l in GOLDEN]
        with open(os.path.join(self.dom, "vpasswd"), "w") as f:
            f.write("".join(l + "\n" for l in lines))
        os.unlink(os.path.join(self.dom, "vpasswd.cdb"))
        for u in ("ann", "bob", "0/carl"):
            os.makedirs(os.path.join(self.dom, u, "Maildir", "new"))
        return lines

    def test_vadduser_golden_line_and_cdb(self):
        r = self.root
        p = r.run("vadduser", "-c", "Joe User", "Joe@Example.com", "secret1")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, b"", b""))
        line = [l for l in self.vpasswd_lines() if l.startswith("joe:")][0]
        f = line.split(":")
        self.assertEqual(len(f), 7, "no clear-text field unless asked for")
        self.assertRegex(f[1], r"^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$")
        self.assertTrue(verify("secret1", f[1]))
        self.assertEqual(f[2:], ["1", "0", "Joe User", self.dom + "/joe", "NOQUOTA"])
        recs = dict(cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb")))
        self.assertEqual(recs[b"joe"], line.split(":", 1)[1].encode())
        ud = os.path.join(self.dom, "joe")
        self.assertEqual(stat.S_IMODE(os.stat(ud).st_mode), 0o750)
        for sub in ("new", "cur", "tmp"):
            self.assertEqual(stat.S_IMODE(os.stat(os.path.join(ud, "Maildir", sub)).st_mode), 0o750)
        with open(os.path.join(ud, "lastauth"), "rb") as fh:
            self.assertEqual(fh.read(), b"0.0.0.0")
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(self.dom, "vpasswd")).st_mode), 0o600)

        p = r.run("vadduser", "-C", "-q", "50M", "kim@example.com", "pw:with:colons")
        self.assertEqual(p.returncode, 0, p.stdout)
        f = self.entry("kim")
        self.assertEqual(f[6], "52428800S")
        self.assertEqual(":".join(f[7:]), "pw:with:colons")
        with open(os.path.join(self.dom, "kim", "Maildir", "maildirsize")) as fh:
            self.assertEqual(fh.read(), "52428800S\n0 0\n")
        p = r.run("vadduser", "-n", "nopw@example.com")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(self.entry("nopw")[1], "")
        p = r.run("vadduser", "-e", "$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0", "md5@example.com")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(self.entry("md5")[1], "$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0")
        p = r.run("vadduser", "-r", "rnd@example.com")
        self.assertRegex(p.stdout, rb"^Random password: [0-9A-Za-z]{12}\n$")
        self.assertTrue(verify(p.stdout.split()[-1].decode(), self.entry("rnd")[1]))
        p = r.run("vadduser", "-r20", "rnd20@example.com")
        self.assertRegex(p.stdout, rb"^Random password: [0-9A-Za-z]{20}\n$")
        names = [l.split(":")[0] for l in self.vpasswd_lines()]
        self.assertEqual(names, sorted(names))
        # The default quota comes from the domain limits, as in vpopmail.
        with open(os.path.join(self.dom, ".qmailadmin-limits"), "w") as fh:
            fh.write("maxpopaccounts: 100\ndefault_quota: 104857600\ndefault_maxmsgcount: 5000\n")
        self.assertEqual(r.run("vadduser", "lim@example.com", "pw1").returncode, 0)
        self.assertEqual(self.entry("lim")[6], "104857600S,5000C")

    def test_existing_vpopmail_lines_survive_byte_for_byte(self):
        r = self.root
        lines = self.install_golden()
        self.assertEqual(r.run("vadduser", "bea@example.com", "pw1234").returncode, 0)
        now = self.vpasswd_lines()
        self.assertEqual([l for l in now if not l.startswith("bea:")], lines)
        self.assertEqual([l.split(":")[0] for l in now], ["ann", "bea", "bob", "carl", "postmaster"])
        # The cdb is rebuilt from every line, the clear fields included.
        recs = dict(cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb")))
        for l in lines:
            n, rest = l.split(":", 1)
            self.assertEqual(recs[n.encode()], rest.encode())
        # Changing one user rewrites only that line.
        self.assertEqual(r.run("vmoduser", "-c", "Bob Jones", "bob@example.com").returncode, 0)
        now = self.vpasswd_lines()
        self.assertEqual(now[2], lines[1].replace(":bob:", ":Bob Jones:"))
        self.assertEqual([now[0]] + now[3:], [lines[0], lines[2], lines[3]])
        self.assertEqual(r.run("vsetuserquota", "carl@example.com", "30m").returncode, 0)
        self.assertEqual(self.vpasswd_lines()[3], lines[2].replace(":10485760S:", ":31457280S:"))

    def test_a_hand_edited_vpasswd_gets_its_cdb_rebuilt(self):
        # As vpopmail does: a vpasswd newer than vpasswd.cdb (edited by hand)
        # is compiled again at the next lookup, which then reads the cdb.
        r = self.root
        r.run("vadduser", "joe@example.com", "pw1", check=True)
        d = r.domain_dir("example.com")
        vp, cdbp = os.path.join(d, "vpasswd"), os.path.join(d, "vpasswd.cdb")
        with open(vp, "a") as f:
            f.write("hand:$1$salt$x:1:0:By Hand:%s/hand:NOQUOTA\n" % d)
        st = os.stat(vp)
        os.utime(cdbp, ns=(st.st_atime_ns, st.st_mtime_ns - 10 * 10**9))
        p = r.run("vuserinfo", "-n", "hand@example.com")
        self.assertEqual((p.returncode, p.stdout), (0, b"hand\n"))
        self.assertGreaterEqual(os.stat(cdbp).st_mtime_ns, os.stat(vp).st_mtime_ns)
        recs = dict(cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb")))
        self.assertIn(b"hand", recs)
        self.assertIn(b"joe", recs)

    def test_a_corrupt_vpasswd_cdb_is_rebuilt_from_vpasswd(self):
        # vpasswd is the truth, the cdb its index: a cdb cut short or
        # overwritten neither locks the domain's users out nor stops the tools.
        r = self.root
        r.run("vadduser", "joe@example.com", "pw1", check=True)
        cdbp = os.path.join(r.domain_dir("example.com"), "vpasswd.cdb")
        for junk in (b"\xff" * 100, b"\xff" * 3000):
            with open(cdbp, "wb") as f:
                f.write(junk)
            p = r.run("vuserinfo", "-n", "joe@example.com")
            self.assertEqual((p.returncode, p.stdout), (0, b"joe\n"), junk[:8])
            recs = dict(cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb")))
            self.assertIn(b"joe", recs)
            with open(cdbp, "wb") as f:
                f.write(junk)
            p = r.run("vadduser", "ann@example.com", "pw2")
            self.assertEqual(p.returncode, 0, p.stdout)
            recs = dict(cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb")))
            self.assertIn(b"ann", recs)
            self.assertIn(b"joe", recs)
            r.run("vdeluser", "ann@example.com", check=True)

    def test_vadduser_reuses_what_a_killed_vadduser_left(self):
        # A vadduser killed between its directory and its vpasswd line leaves
        # an empty skeleton: the next vadduser of that name takes it over. A
        # directory with anything in it is never touched.
        r = self.root
        d = r.domain_dir("example.com")
        for parts in ((), ("Maildir",), ("Maildir", "Maildir/new", "Maildir/cur", "Maildir/tmp")):
            os.mkdir(os.path.join(d, "bob"))
            for part in parts:
                os.mkdir(os.path.join(d, "bob", part))
            p = r.run("vadduser", "bob@example.com", "bobpass1")
            self.assertEqual(p.returncode, 0, (parts, p.stdout))
            self.assertTrue(os.path.isdir(os.path.join(d, "bob", "Maildir", "new")))
            r.run("vdeluser", "bob@example.com", check=True)
        # A Maildir that is a link to empty directories elsewhere: refused,
        # and nothing there is removed.
        elsewhere = os.path.join(r.dir, "elsewhere")
        for sub in ("new", "cur", "tmp"):
            os.makedirs(os.path.join(elsewhere, sub))
        os.mkdir(os.path.join(d, "bob"))
        os.symlink(elsewhere, os.path.join(d, "bob", "Maildir"))
        p = r.run("vadduser", "bob@example.com", "bobpass1")
        self.assertEqual(p.returncode, 249, p.stdout)
        self.assertEqual(sorted(os.listdir(elsewhere)), ["cur", "new", "tmp"])
        os.unlink(os.path.join(d, "bob", "Maildir"))
        os.rmdir(os.path.join(d, "bob"))
        os.makedirs(os.path.join(d, "bob", "Maildir", "new"))
        with open(os.path.join(d, "bob", "Maildir", "new", "1.mail"), "w") as f:
            f.write("keep me\n")
        p = r.run("vadduser", "bob@example.com", "bobpass1")
        self.assertEqual((p.returncode, p.stdout), (249, b"Error: User's directory already exists\n"))
        self.assertTrue(os.path.exists(os.path.join(d, "bob", "Maildir", "new", "1.mail")))

    def test_vuserinfo_format(self):
        r = self.root
        self.install_golden()
        os.utime(os.path.join(self.dom, "bob"), None)
        la = os.path.join(self.dom, "bob", "lastauth")
        with open(la, "w") as f:
            f.write("192.0.2.7")
        os.utime(la, (812090814, 812090814))
        p = r.run("vuserinfo", "bob@example.com", env={"TZ": "UTC"})
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stdout.decode(), (
            "name:   bob\n"
            "passwd: aZGJuE6EXrjEE\n"
            "clear passwd: test\n"
            "comment/gecos: bob\n"
            "uid:    1\n"
            "gid:    2050\n"
            "flags:  2050\n"
            "gecos: bob\n"
            "limits:\n"
            "        pop access closed\n"
            "        smtp access is closed\n"
            f"dir:       {self.dom}/bob\n"
            "quota:     52428800S,1000C\n"
            "usage:     0%\n"
            "last auth: Tue Sep 26 04:46:54 1995\n"
            "last auth ip: 192.0.2.7\n"))
        p = r.run("vuserinfo", "ann@example.com")
        self.assertTrue(p.stdout.decode().endswith(
            f"dir:       {self.dom}/ann\nquota:     NOQUOTA\nusage:     NOQUOTA\nlast auth: Never logged in\n"))
        self.assertEqual(r.run("vuserinfo", "-d", "-q", "-C", "carl@example.com").stdout.decode(),
                         f"\n{self.dom}/0/carl\n10485760S\n")
        # Usage: 1 of 1000 messages, 5 MB of 50 MB: the fuller one, 10%.
        md = os.path.join(self.dom, "bob", "Maildir")
        with open(os.path.join(md, "new", "1.2.host,S=5242880"), "w") as f:
            f.write("x")
        self.assertEqual(r.run("vuserinfo", "-Q", "bob@example.com").stdout, b"10%\n")
        p = r.run("vuserinfo", "nobody@example.com")
        self.assertEqual((p.returncode, p.stdout), (255, b"no such user nobody@example.com\n"))
        p = r.run("vuserinfo", "-D", "example.com", "-n")
        self.assertEqual(p.stdout.decode(), "".join(f"------------------------------------------\n{n}\n"
                                                    for n in ("ann", "bob", "carl", "postmaster")))
        # A new account: created, never logged in.
        r.run("vadduser", "new@example.com", "pw1", check=True)
        out = r.run("vuserinfo", "-l", "new@example.com").stdout.decode().splitlines()
        self.assertRegex(out[0], r"^account created: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$")
        self.assertEqual(out[1], "last auth: Never logged in")

    def test_vdeluser(self):
        r = self.root
        r.run("vadduser", "joe@example.com", "pw1", check=True)
        p = r.run("vdeluser", "joe@example.com")
        self.assertEqual((p.returncode, p.stdout), (0, b""))
        self.assertIsNone(self.entry("joe"))
        self.assertFalse(os.path.exists(os.path.join(self.dom, "joe")))
        self.assertNotIn(b"joe", dict(cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb"))))
        p = r.run("vdeluser", "joe@example.com")
        self.assertEqual((p.returncode, p.stdout), (246, b"Error: User does not exist\n"))
        # A directory another user still has stays, with its mail.
        r.run("vadduser", "ann@example.com", "pw1", check=True)
        pm = os.path.join(self.dom, "postmaster")
        r.run("vmoduser", "-D", pm, "ann@example.com", check=True)
        r.run("vdeluser", "ann@example.com", check=True)
        self.assertTrue(os.path.isdir(os.path.join(pm, "Maildir")))
        # ... and so does one holding another user's (a user pointed at
        # postmaster's Maildir, or at a directory around other users').
        r.run("vadduser", "bea@example.com", "pw1", check=True)
        r.run("vmoduser", "-D", os.path.join(pm, "Maildir"), "bea@example.com", check=True)
        r.run("vdeluser", "bea@example.com", check=True)
        self.assertTrue(os.path.isdir(os.path.join(pm, "Maildir", "new")))
        r.run("vadduser", "cat@example.com", "pw1", check=True)
        r.run("vmoduser", "-D", self.dom + "/", "cat@example.com", check=True)
        r.run("vdeluser", "cat@example.com", check=True)
        self.assertTrue(os.path.isdir(os.path.join(pm, "Maildir", "new")))
        p = r.run("vdeluser", "joe@nowhere.com")
        self.assertEqual((p.returncode, p.stdout), (245, b"Error: Domain does not exist\n"))
        before = snapshot(r.dir)
        p = r.run("vdeluser", "Postmaster@example.com")
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stdout, rb"^Error: can't delete postmaster@example.com[^\n]*\n$")
        self.assertEqual(snapshot(r.dir), before)
        # Everything else works on postmaster.
        self.assertEqual(r.run("vpasswd", "postmaster@example.com", "newpm1").returncode, 0)
        self.assertTrue(verify("newpm1", self.entry("postmaster")[1]))
        self.assertEqual(r.run("vsetuserquota", "postmaster@example.com", "100M").returncode, 0)
        self.assertEqual(self.entry("postmaster")[6], "104857600S")
        # The catch-all account is refused, as vpopmail refuses it.
        r.run("vadduser", "boss@example.com", "pw1", check=True)
        with open(os.path.join(self.dom, ".qmail-default"), "w") as f:
            f.write(f"| {r.vpop}/bin/vdelivermail '' {self.dom}/boss\n")
        p = r.run("vdeluser", "boss@example.com")
        self.assertEqual(p.stdout, b"Error: can't delete catchall account\n")
        self.assertIsNotNone(self.entry("boss"))

    def test_vpasswd(self):
        r = self.root
        self.install_golden()
        before = self.vpasswd_lines()
        p = r.run("vpasswd", "ann@example.com", "fresh1")
        self.assertEqual((p.returncode, p.stdout), (0, b""))
        ann = self.entry("ann")
        self.assertTrue(ann[1].startswith("$6$") and verify("fresh1", ann[1]))
        self.assertEqual(ann[7], "", "the old clear password no longer matches and is emptied")
        self.assertEqual(self.vpasswd_lines()[1:], before[1:])
        self.assertEqual(r.run("vpasswd", "-C", "ann@example.com", "fresh2").returncode, 0)
        self.assertEqual(self.entry("ann")[7], "fresh2")
        p = r.run("vpasswd", "ann@example.com", input="a1\nb1\nc1\nc1\n")
        self.assertEqual((p.returncode, p.stdout), (0, b"Passwords do not match, try again\n"))
        self.assertIn(b"Please enter password for ann@example.com: ", p.stderr)
        self.assertTrue(verify("c1", self.entry("ann")[1]))
        # An empty password argument ($PASS unset in a script) asks, as vpopmail does.
        p = r.run("vpasswd", "ann@example.com", "", input="d1\nd1\n")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn(b"Please enter password for ann@example.com: ", p.stderr)
        self.assertTrue(verify("d1", self.entry("ann")[1]))
        p = r.run("vpasswd", "-r", "ann@example.com")
        self.assertTrue(verify(p.stdout.split()[-1].decode(), self.entry("ann")[1]))
        for who in ("nobody@example.com",):
            p = r.run("vpasswd", who, "x1")
            self.assertEqual((p.returncode, p.stdout), (255, b"Error: Illegal username\n"))
        r.run("vmoduser", "-d", "ann@example.com", check=True)
        snap = snapshot(r.dir)
        p = r.run("vpasswd", "ann@example.com", "x1")
        self.assertEqual((p.returncode, p.stdout), (255, b"Error: Illegal username\n"))
        self.assertEqual(snapshot(r.dir), snap)

    def test_vmoduser_flags(self):
        r = self.root
        r.run("vadduser", "joe@example.com", "pw1", check=True)
        self.assertEqual(r.run("vmoduser", "-p", "-s", "joe@example.com").returncode, 0)
        self.assertEqual(self.entry("joe")[3], "2050")
        self.assertEqual(r.run("vmoduser", "-br", "joe@example.com").returncode, 0)
        self.assertEqual(self.entry("joe")[3], str(2050 | 0x10 | 0x20))
        self.assertEqual(r.run("vmoduser", "-x", "-i", "joe@example.com").returncode, 0)
        self.assertEqual(self.entry("joe")[3], "8")
        self.assertEqual(r.run("vmoduser", "-C", "clear1", "joe@example.com").returncode, 0)
        j = self.entry("joe")
        self.assertTrue(verify("clear1", j[1]))
        self.assertEqual(j[7], "clear1")
        self.assertEqual(r.run("vmoduser", "-e", "aZGJuE6EXrjEE", "joe@example.com").returncode, 0)
        self.assertEqual(self.entry("joe")[1], "aZGJuE6EXrjEE")
        self.assertEqual(self.entry("joe")[7], "")
        # An empty value changes nothing, as in vpopmail.
        before = self.entry("joe")
        self.assertEqual(r.run("vmoduser", "-C", "", "-e", "", "-c", "", "-D", "", "joe@example.com").returncode, 0)
        self.assertEqual(self.entry("joe"), before)
        self.assertEqual(r.run("vmoduser", "-q", "1000C", "joe@example.com").returncode, 0)
        self.assertEqual(self.entry("joe")[6], "1000C")
        with open(os.path.join(self.dom, "joe", "Maildir", "maildirsize")) as f:
            self.assertEqual(f.readline(), "1000C\n")
        # A bare domain: every user.
        self.assertEqual(r.run("vmoduser", "-w", "example.com").returncode, 0)
        self.assertTrue(all(int(l.split(":")[3]) & 4 for l in self.vpasswd_lines()))
        p = r.run("vmoduser", "-p", "nobody@example.com")
        self.assertEqual((p.returncode, p.stdout), (255, b"no such user nobody@example.com\n"))
        p = r.run("vmoduser", "-p", "joe@nodomain.test")
        self.assertEqual((p.returncode, p.stdout), (255, b"no such user joe@nodomain.test\n"))

    def test_vsetuserquota(self):
        r = self.root
        r.run("vadduser", "joe@example.com", "pw1", check=True)
        md = os.path.join(self.dom, "joe", "Maildir")
        with open(os.path.join(md, "cur", "1.1.h,S=1000:2,S"), "w") as f:
            f.write("x")
        for q, want in [("50M", "52428800S"), ("52428800", "52428800S"), ("1g", "1073741824S"),
                        ("2000C", "2000C"), ("50M,1000C", "52428800S,1000C"), ("NOQUOTA", "NOQUOTA"),
                        ("25m", "26214400S"), ("1.5G", "1610612736S"), ("50M,0C", "52428800S")]:
            p = r.run("vsetuserquota", "joe@example.com", q)
            self.assertEqual((p.returncode, p.stdout), (0, b""), q)
            self.assertEqual(self.entry("joe")[6], want, q)
            ms = os.path.join(md, "maildirsize")
            if want == "NOQUOTA":
                self.assertFalse(os.path.exists(ms))
            else:
                with open(ms) as f:
                    self.assertEqual(f.read(), f"{want}\n1000 1\n", q)
        snap = snapshot(r.dir)
        for q in ("1M", "3G", "24M", "1000", "abc", "-1", "50M,", "5X", "0C", "1.5", "2.5G"):
            p = r.run("vsetuserquota", "joe@example.com", q)
            self.assertNotEqual(p.returncode, 0, q)
            self.assertTrue(p.stdout.startswith(b"Error: ") and p.stdout.count(b"\n") == 1, p.stdout)
        self.assertEqual(snapshot(r.dir), snap)
        # The hosting range can be changed by the admin.
        with open(r.v("etc", "quota-range"), "w") as f:
            f.write("1K 3G\n")
        self.assertEqual(r.run("vsetuserquota", "joe@example.com", "3G").returncode, 0)
        self.assertEqual(r.run("vsetuserquota", "joe@example.com", "2000").returncode, 0)
        self.assertEqual(self.entry("joe")[6], "2000S")
        # A bare domain: every user.
        self.assertEqual(r.run("vsetuserquota", "example.com", "200M").returncode, 0)
        self.assertTrue(all(l.split(":")[6] == "209715200S" for l in self.vpasswd_lines()))

    def test_bad_input_is_one_error_line_and_no_change(self):
        r = self.root
        r.run("vadduser", "joe@example.com", "pw1", check=True)
        snap = snapshot(r.dir)
        cases = [
            ("vadduser", ["../x@example.com", "pw"]),
            ("vadduser", ["a/b@example.com", "pw"]),
            ("vadduser", ["a:b@example.com", "pw"]),
            ("vadduser", ["@example.com", "pw"]),
            ("vadduser", ["x" * 33 + "@example.com", "pw"]),
            ("vadduser", ["a%b@example.com", "pw"]),
            ("vadduser", ["a@b@example.com", "pw"]),
            ("vadduser", ["a\nb@example.com", "pw"]),
            ("vadduser", ["a\x01b@example.com", "pw"]),
            ("vadduser", ["a b@example.com", "pw"]),
            ("vadduser", [".hidden@example.com", "pw"]),
            ("vadduser", ["x@example.com", "pw"]),
            ("vadduser", ["vpasswd@example.com", "pw"]),
            ("vadduser", ["new@nowhere.com", "pw"]),
            ("vadduser", ["new@../etc", "pw"]),
            ("vadduser", ["joe@example.com", "pw"]),
            ("vadduser", []),
            ("vadduser", ["-q"]),
            ("vadduser", ["-c", "a:b", "new@example.com", "pw"]),
            ("vadduser", ["-c", "a\nb", "new@example.com", "pw"]),
            ("vadduser", ["-c", "x" * 49, "new@example.com", "pw"]),
            ("vadduser", ["new@example.com", "p\nw"]),
            ("vadduser", ["new@example.com", "x" * 129]),
            ("vadduser", ["-e", "a:b", "new@example.com"]),
            ("vadduser", ["-r", "new@example.com", "pw"]),
            ("vadduser", ["-z", "new@example.com", "pw"]),
            ("vadduser", ["new@example.com", "pw", "extra"]),
            ("vdeluser", []),
            ("vdeluser", ["../x@example.com"]),
            ("vdeluser", ["nobody@example.com"]),
            ("vpasswd", []),
            ("vpasswd", ["joe@example.com", "p\nw"]),
            ("vmoduser", []),
            ("vmoduser", ["-c", "a:b", "joe@example.com"]),
            ("vmoduser", ["-q", "1M", "joe@example.com"]),
            ("vmoduser", ["-D", "relative/dir", "joe@example.com"]),
            ("vsetuserquota", ["joe@example.com"]),
            ("vsetuserquota", ["nobody@example.com", "50M"]),
            ("vsetuserquota", ["joe@nowhere.com", "50M"]),
            ("vuserinfo", []),
            ("vuserinfo", ["../x@example.com"]),
        ]
        p = r.run("vadduser", "new@nowhere.com", "pw")
        self.assertEqual((p.returncode, p.stdout), (255, b"Error: Domain does not exist\n"))
        p = r.run("vadduser", "joe@example.com", "pw")
        self.assertEqual((p.returncode, p.stdout), (255, b"Error: User already exists\n"))
        # The other checks exit with vpopmail's code (VA_GECOS_TOO_LONG, -28).
        p = r.run("vadduser", "-c", "g" * 49, "new@example.com", "pw")
        self.assertEqual((p.returncode, p.stdout), (228, b"Error: gecos too long (max=48)\n"))
        for prog, args in cases:
            p = r.run(prog, *args, input="")
            self.assertNotEqual(p.returncode, 0, (prog, args))
            lines = p.stdout.splitlines()
            self.assertEqual(len(lines), 1, (prog, args, p.stdout))
            self.assertTrue(lines[0].startswith(b"Error: ") or lines[0].startswith(b"no such user"),
                            (prog, args, p.stdout))
            self.assertEqual(snapshot(r.dir), snap, (prog, args))
        # A directory in the new domain's place: VA_COULD_NOT_MAKE_DOMAIN_DIR
        # (-14), and no domain.
        os.makedirs(r.v("domains", "taken.test"))
        p = r.run("vadddomain", "taken.test", "pw")
        self.assertEqual(p.returncode, 242, p.stdout)
        self.assertRegex(p.stdout, rb"^Error: Could not make domain dir: .*taken.test already exists\n$")
        with open(r.q("users", "assign")) as f:
            self.assertNotIn("taken.test", f.read())
        # A base directory that does not exist (-d, or -u with a home that
        # does not): VA_BAD_V_DIR, nothing made.
        nobase = os.path.join(r.dir, "no-such-base")
        p = r.run("vadddomain", "-d", nobase, "nobase.test", "pw")
        self.assertEqual((p.returncode, p.stdout),
                         (250, b"Error: Unable to chdir to vpopmail/domains/domain directory\n"))
        self.assertFalse(os.path.exists(nobase))
        # vsetuserquota on a user of an unknown domain: vpopmail's domain check.
        p = r.run("vsetuserquota", "joe@nowhere.com", "50M")
        self.assertEqual((p.returncode, p.stdout), (245, b"Error: Domain does not exist\n"))
        p = r.run("vsetuserquota", "nobody@example.com", "50M")
        self.assertEqual((p.returncode, p.stdout), (246, b"Error: User does not exist\n"))
        # A domain default quota outside the allowed range is refused as -q is.
        limits = os.path.join(r.domain_dir("example.com"), ".qmailadmin-limits")
        with open(limits, "w") as f:
            f.write("default_quota: 1048576\n")
        try:
            p = r.run("vadduser", "small@example.com", "pw")
            self.assertEqual(p.returncode, 255)
            self.assertEqual(
                p.stdout,
                b"Error: default_quota in " + r.domain_dir("example.com").encode()
                + b"/.qmailadmin-limits: quota 1048576S is outside the range of 25M to 2G (give -q)\n")
            self.assertFalse(os.path.exists(os.path.join(r.domain_dir("example.com"), "small")))
            # -q gets past it.
            p = r.run("vadduser", "-q", "30M", "small@example.com", "pw")
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            # A value that is not a plain number is refused too, rather than
            # giving the user no quota at all.
            for value in ("50M", "-5", "52428800 # 50 MB"):
                with open(limits, "w") as f:
                    f.write("default_quota: %s\n" % value)
                p = r.run("vadduser", "small3@example.com", "pw")
                self.assertEqual((p.returncode, p.stdout), (
                    255, b"Error: default_quota in " + limits.encode()
                    + b": default_quota %s is not a plain number (give -q)\n" % value.encode()), value)
                self.assertFalse(os.path.exists(os.path.join(r.domain_dir("example.com"), "small3")))
        finally:
            os.unlink(limits)
        # Without a file of the domain's own the value comes from
        # vlimits.default, and the message names that file.
        default = r.v("etc", "vlimits.default")
        with open(default, "w") as f:
            f.write("default_quota: 1048576\n")
        try:
            p = r.run("vadduser", "small2@example.com", "pw")
            self.assertEqual((p.returncode, p.stdout), (
                255, b"Error: default_quota in " + default.encode()
                + b": quota 1048576S is outside the range of 25M to 2G (give -q)\n"))
        finally:
            os.unlink(default)

    def test_a_random_password_that_cannot_be_shown_is_not_set(self):
        r = self.root
        r.run("vadduser", "rnd@example.com", "pw-123456", check=True)
        before = self.vpasswd_lines()
        for argv in (["vpasswd", "-r", "rnd@example.com"], ["vadduser", "-r", "rnd2@example.com"]):
            with open("/dev/full", "wb") as full:
                p = subprocess.run([r.bin(argv[0])] + argv[1:], stdout=full, stderr=subprocess.PIPE,
                                   env=r.env(), timeout=60)
            self.assertEqual(p.returncode, 255, argv)
            self.assertIn(b"can't show the random password", p.stderr)
            self.assertEqual(self.vpasswd_lines(), before, argv)

    def test_a_listing_that_cannot_be_written_is_an_error(self):
        r = self.root
        for argv in (["vuserinfo", "postmaster@example.com"], ["vdominfo", "example.com"]):
            with open("/dev/full", "wb") as full:
                p = subprocess.run([r.bin(argv[0])] + argv[1:], stdout=full, stderr=subprocess.PIPE,
                                   env=r.env(), timeout=60)
            self.assertEqual(p.returncode, 111, argv)
            self.assertEqual(p.stderr, b"Error: can't write the output: out of disk space\n")

    def test_domain_disables_password_changing(self):
        # vpopmail's vpasswd() looks at pw_flags: the domain's
        # disable_password_changing counts as the user's NO_PASSWD_CHNG,
        # unless the user has V_OVERRIDE.
        r = self.root
        r.add_user("pwfix@example.com", "old-pass1")
        limits = os.path.join(r.domain_dir("example.com"), ".qmailadmin-limits")
        with open(limits, "w") as f:
            f.write("disable_password_changing\n")
        try:
            before = r.read(r.domain_dir("example.com"), "vpasswd")
            p = r.run("vpasswd", "pwfix@example.com", "new-pass1")
            self.assertEqual((p.returncode, p.stdout), (255, b"Error: Illegal username\n"))
            self.assertEqual(r.read(r.domain_dir("example.com"), "vpasswd"), before)
            self.assertEqual(r.run("vmoduser", "-o", "pwfix@example.com").returncode, 0)
            p = r.run("vpasswd", "pwfix@example.com", "new-pass1")
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        finally:
            os.unlink(limits)

    def test_valias(self):
        r = self.root
        self.assertEqual(r.run("valias", "-i", "joe@else.where", "info@example.com").returncode, 0)
        self.assertEqual(r.run("valias", "-i", "&ann@else.where", "info@example.com").returncode, 0)
        self.assertEqual(r.run("valias", "-i", f"{self.dom}/postmaster/Maildir/", "sales.team@example.com").returncode, 0)
        with open(os.path.join(self.dom, ".qmail-info")) as f:
            self.assertEqual(f.read(), "joe@else.where\n&ann@else.where\n")
        self.assertTrue(os.path.exists(os.path.join(self.dom, ".qmail-sales:team")))
        self.assertEqual(r.run("valias", "info@example.com").stdout,
                         b"info@example.com -> joe@else.where\ninfo@example.com -> &ann@else.where\n")
        self.assertEqual(r.run("valias", "-s", "example.com").stdout.decode(),
                         "info@example.com -> joe@else.where\ninfo@example.com -> &ann@else.where\n"
                         f"sales.team@example.com -> {self.dom}/postmaster/Maildir/\n")
        self.assertEqual(r.run("valias", "-n", "example.com").stdout, b"info\nsales.team\n")
        # A one-letter alias is a .qmail-a file: allowed (vpopmail's valias_insert).
        self.assertEqual(r.run("valias", "-i", "joe@else.where", "a@example.com").returncode, 0)
        self.assertEqual(r.run("valias", "a@example.com").stdout, b"a@example.com -> joe@else.where\n")
        self.assertEqual(r.run("valias", "-d", "a@example.com").returncode, 0)
        # A .qmail- link is not followed, but the listing says it left it out.
        os.symlink("/etc/hostname", os.path.join(self.dom, ".qmail-linked"))
        try:
            p = r.run("valias", "-n", "example.com")
            self.assertEqual(p.stdout, b"info\nsales.team\n")
            self.assertIn(b".qmail-linked is a symbolic link: not shown", p.stderr)
        finally:
            os.unlink(os.path.join(self.dom, ".qmail-linked"))
        p = r.run("valias", "-i", "joe@else.where", "info@example.com")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stderr, b"Error: alias info@example.com -> joe@else.where already exists.\n")
        for bad in (["-i", "x\ny", "a2@example.com"], ["-i", "x", "../a@example.com"],
                    ["-i", "x", "a2@nowhere.com"], ["-d", "nosuch@example.com"], []):
            p = r.run("valias", *bad)
            self.assertNotEqual(p.returncode, 0, bad)
            self.assertTrue(p.stderr.startswith(b"Error: "), (bad, p.stderr))
        self.assertEqual(r.run("valias", "-d", "info@example.com").returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.dom, ".qmail-info")))
        self.assertTrue(os.path.exists(os.path.join(self.dom, ".qmail-default")))
        # Nothing to show: no text and 255, as vpopmail's vexit(-1).
        self.assertEqual(r.run("valias", "-d", "sales.team@example.com").returncode, 0)
        for args in (("info@example.com",), ("example.com",), ("-n", "example.com")):
            p = r.run("valias", *args)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (255, b"", b""), args)


if __name__ == "__main__":
    unittest.main()
