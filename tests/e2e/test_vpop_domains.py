"""vadddomain, vdeldomain, qmail-newu, qmail-newmrh: the files they write are
the ones vpopmail and qmail write (golden texts and byte-identical cdbs)."""
import contextlib
import os
import time
import signal
import shutil
import stat
import struct
import subprocess
import unittest
import warnings

from harness import RootTestCase, wait_until

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt


@contextlib.contextmanager
def set_aside(*paths, dir_at=None):
    """Moves `paths` (those that exist) out of the way, with a directory
    made in place of `dir_at`; everything put back on the way out, whatever
    the tool left at those paths removed."""
    moved = [p for p in (*paths, dir_at) if p and os.path.exists(p)]
    for p in moved:
        os.rename(p, p + ".keep")
    if dir_at:
        os.mkdir(dir_at)
    try:
        yield
    finally:
        if dir_at:
            os.rmdir(dir_at)
        for p in paths:
            if os.path.exists(p):
                os.unlink(p)
        for p in moved:
            os.rename(p + ".keep", p)


def verify(password, hashed):
    return crypt.crypt(password, hashed) == hashed


def cdb_hash(key):
    h = 5381
    for c in key:
        h = (((h << 5) + h) & 0xFFFFFFFF) ^ c
    return h


def cdbmake(records):
    """cdbmake's output for these (key, data) records, in order."""
    out = bytearray(2048)
    tables = [[] for _ in range(256)]
    for k, d in records:
        h = cdb_hash(k)
        tables[h & 255].append((h, len(out)))
        out += struct.pack("<II", len(k), len(d)) + k + d
    for i, t in enumerate(tables):
        slots = len(t) * 2
        struct.pack_into("<II", out, i * 8, len(out), slots)
        table = [(0, 0)] * slots
        for h, p in t:
            w = (h >> 8) % slots
            while table[w][1] != 0:
                w = (w + 1) % slots
            table[w] = (h, p)
        for h, p in table:
            out += struct.pack("<II", h, p)
    return bytes(out)


def cdb_records(data):
    end = min(struct.unpack_from("<I", data, i * 8)[0] for i in range(256))
    pos, recs = 2048, []
    while pos < end:
        kl, dl = struct.unpack_from("<II", data, pos)
        recs.append((data[pos + 8:pos + 8 + kl], data[pos + 8 + kl:pos + 8 + kl + dl]))
        pos += 8 + kl + dl
    return recs


def snapshot(top):
    """Every file and directory under top with its mode and content."""
    snap = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            body = None
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    body = f.read()
            snap[os.path.relpath(p, top)] = (stat.S_IMODE(st.st_mode), body)
    return snap


class Domains(RootTestCase):
    def vadd(self, *args, **kw):
        return self.root.run("vadddomain", *args, **kw)

    def hold_lock(self, path):
        """Takes the fcntl lock the tools take on path (vpopmail's FILE.lock);
        returns the file, to unlock with fcntl.lockf(f, fcntl.LOCK_UN)."""
        import fcntl
        f = open(path, "a")
        self.addCleanup(f.close)
        fcntl.lockf(f, fcntl.LOCK_EX)
        return f

    def start_tool(self, *argv):
        """Starts a program of the root in the background (stdout and stderr
        together), killed at the test's end if still running."""
        p = subprocess.Popen([self.root.bin(argv[0]), *argv[1:]], env=self.root.env(),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

        def stop():
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
            p.stdout.close()
        self.addCleanup(stop)
        return p

    @staticmethod
    def waiting_for(path):
        """How many processes wait for a lock on path (/proc/locks)."""
        ino = os.stat(path).st_ino
        with open("/proc/locks") as f:
            return sum(1 for l in f if "->" in l and l.split()[6].endswith(f":{ino}"))

    def test_vadddomain_writes_vpopmails_files(self):
        r = self.root
        p = self.vadd("Example.COM", "pmpass1")
        self.assertEqual((p.returncode, p.stdout), (0, b""), p.stderr)
        dom = r.v("domains", "example.com")
        uid, gid = os.geteuid(), os.getegid()
        self.assertEqual(stat.S_IMODE(os.stat(dom).st_mode), 0o750)
        self.assertEqual(r.read("var/qmail/users/assign"),
                         f"+example.com-:example.com:{uid}:{gid}:{dom}:-::\n.\n".encode())
        cdb = r.read("var/qmail/users/cdb")
        self.assertEqual(cdb_records(cdb), [
            (b"!example.com-", f"example.com\0{uid}\0{gid}\0{dom}\0-\0".encode()),
            (b"", b"-"),
        ])
        self.assertEqual(cdb, cdbmake(cdb_records(cdb)))
        with open(os.path.join(dom, ".qmail-default"), "rb") as f:
            self.assertEqual(f.read(), f"| {r.vpop}/bin/vdelivermail '' bounce-no-mailbox\n".encode())
        self.assertEqual(stat.S_IMODE(os.stat(os.path.join(dom, ".qmail-default")).st_mode), 0o600)
        self.assertEqual(r.read("var/qmail/control/rcpthosts"), b"example.com\nlocalhost\n")
        self.assertEqual(r.read("var/qmail/control/virtualdomains"), b"example.com:example.com\n")
        for f in ("rcpthosts", "virtualdomains", "locals"):
            self.assertEqual(stat.S_IMODE(os.stat(r.control(f)).st_mode), 0o644, f)
        with open(os.path.join(dom, "vpasswd")) as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1)
        self.assertRegex(lines[0], r"^postmaster:\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}:1:0:Postmaster:"
                         + dom + r"/postmaster:NOQUOTA$")
        self.assertTrue(verify("pmpass1", lines[0].split(":")[1]))
        for sub in ("new", "cur", "tmp"):
            self.assertTrue(os.path.isdir(os.path.join(dom, "postmaster", "Maildir", sub)))
        # vpasswd.cdb: key = name, data = the rest of the line.
        recs = cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb"))
        self.assertEqual(recs, [(b"postmaster", lines[0].split(":", 1)[1].encode())])

    def test_localhost_domain_leaves_locals(self):
        r = self.root
        r.write_control("locals", "localhost\nmail.test\nShop.Example \n")
        self.assertEqual(self.vadd("mail.test", "pw12345").returncode, 0)
        self.assertEqual(r.read("var/qmail/control/locals"), b"localhost\nShop.Example \n")
        # As qmail reads locals: any case, trailing blanks.
        self.assertEqual(self.vadd("shop.example", "pw12345").returncode, 0)
        self.assertEqual(r.read("var/qmail/control/locals"), b"localhost\n")
        # Lines the tool does not change keep their bytes, UTF-8 or not.
        with open(r.q("users", "assign"), "rb") as f:
            assign = f.read()
        with open(r.q("users", "assign"), "wb") as f:
            f.write(b"=ren\xe9:ren\xe9:1000:1000:/home/ren\xe9:::\n" + assign)
        self.assertEqual(self.vadd("other.example", "pw12345").returncode, 0)
        self.assertIn(b"=ren\xe9:ren\xe9:1000:1000:/home/ren\xe9:::\n", r.read("var/qmail/users/assign"))

    def test_bad_domains_change_nothing(self):
        r = self.root
        self.assertEqual(self.vadd("example.com", "pw").returncode, 0)
        before = snapshot(r.dir)
        for bad, msg in [("example.com", b"Error: Domain already exists\n"),
                         ("EXAMPLE.com", b"Error: Domain already exists\n"),
                         ("../x.com", b"Error: Invalid domain name\n"),
                         ("a/b.com", b"Error: Invalid domain name\n"),
                         ("a:b.com", b"Error: Invalid domain name\n"),
                         ("nodot", b"Error: Invalid domain name\n"),
                         ("-a.com", b"Error: Invalid domain name\n"),
                         ("a..com", b"Error: Invalid domain name\n"),
                         ("a\nb.com", b"Error: Invalid domain name\n"),
                         ("x" * 97 + ".com", b"Error: domain name too long (max=96)\n")]:
            p = self.vadd("--", bad, "pw")
            self.assertNotEqual(p.returncode, 0, bad)
            self.assertEqual(p.stdout, msg, bad)
        p = self.vadd()
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b"Error: "), p.stdout)
        self.assertEqual(p.stdout.count(b"\n"), 1)
        p = self.vadd("-q", "1M", "new.com", "pw")
        self.assertEqual(p.stdout, b"Error: quota 1M is outside the range of 25M to 2G\n")
        self.assertEqual(self.vadd("new.com", input="").stdout.splitlines()[-1], b"Error: No password entered")
        # A relative -d, or an -i/-g that is not a number (atoi made it root's 0).
        for opts, what in ((["-d", "../x"], b"-d needs an absolute directory"),
                           (["-i", "abc"], b"-i needs a number"), (["-g", "-1"], b"-g needs a number"),
                           (["-i", ""], b"-i needs a number")):
            p = self.vadd(*opts, "new.com", "pw-123456")
            self.assertEqual(p.returncode, 255, opts)
            self.assertTrue(p.stdout.startswith(b"Error: " + what), p.stdout)
        self.assertEqual(snapshot(r.dir), before)

    def test_catchall_options(self):
        r = self.root
        self.assertEqual(self.vadd("-e", "boss@else.where", "a.com", "pw").returncode, 0)
        self.assertEqual(r.read("home/vpopmail/domains/a.com/.qmail-default"),
                         f"| {r.vpop}/bin/vdelivermail '' boss@else.where\n".encode())
        self.assertEqual(self.vadd("-e", "postmaster", "b.com", "pw").returncode, 0)
        self.assertEqual(r.read("home/vpopmail/domains/b.com/.qmail-default"),
                         f"| {r.vpop}/bin/vdelivermail '' {r.vpop}/domains/b.com/postmaster\n".encode())
        self.assertEqual(self.vadd("-e", "Postmaster", "e.com", "pw").returncode, 0)
        self.assertEqual(r.read("home/vpopmail/domains/e.com/.qmail-default"),
                         f"| {r.vpop}/bin/vdelivermail '' {r.vpop}/domains/e.com/postmaster\n".encode())
        # Nothing a shell would read as syntax gets into .qmail-default.
        for bad in ("a;touch /tmp/x@b.com", "o'brien", "x y@b.com", "$(id)@b.com"):
            p = self.vadd("-e", bad, "f.com", "pw")
            self.assertEqual(p.returncode, 255, bad)
            self.assertEqual(p.stdout, f"Error: invalid catch-all: {bad}\n".encode())
            self.assertFalse(os.path.exists(r.v("domains", "f.com")))
        p = self.vadd("-r", "c.com")
        self.assertEqual(p.returncode, 0)
        self.assertRegex(p.stdout, rb"^Random password: [0-9A-Za-z]{12}\n$")
        self.assertEqual(self.vadd("-q", "50M", "-C", "d.com", "pw").returncode, 0)
        with open(r.v("domains", "d.com", "vpasswd")) as f:
            line = f.read()
        self.assertTrue(line.endswith(":52428800S:pw\n"), line)
        with open(r.v("domains", "d.com", "postmaster", "Maildir", "maildirsize")) as f:
            self.assertEqual(f.read().splitlines()[0], "52428800S")

    def test_prompted_postmaster_password(self):
        p = self.vadd("p.com", input="one1\ntwo2\nsame1\nsame1\n")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(p.stdout, b"Passwords do not match, try again\n")
        self.assertIn(b"Please enter password for postmaster: ", p.stderr)
        self.assertIn(b"enter password again: ", p.stderr)
        with open(self.root.v("domains", "p.com", "vpasswd")) as f:
            self.assertTrue(verify("same1", f.read().split(":")[1]))

    def test_empty_password_argument_asks(self):
        p = self.vadd("e.com", "", input="same2\nsame2\n")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn(b"Please enter password for postmaster: ", p.stderr)
        with open(self.root.v("domains", "e.com", "vpasswd")) as f:
            self.assertTrue(verify("same2", f.read().split(":")[1]))

    def test_morercpthosts_after_50(self):
        r = self.root
        r.write_control("rcpthosts", "".join(f"h{i}.test\n" for i in range(50)))
        self.assertEqual(self.vadd("many.test", "pw").returncode, 0)
        self.assertEqual(r.read("var/qmail/control/morercpthosts"), b"many.test\n")
        cdb = r.read("var/qmail/control/morercpthosts.cdb")
        self.assertEqual(cdb, cdbmake([(b"many.test", b"")]))
        self.assertNotIn(b"many.test", r.read("var/qmail/control/rcpthosts"))
        self.assertEqual(r.run("vdeldomain", "many.test").returncode, 0)
        self.assertFalse(os.path.exists(r.control("morercpthosts")))
        self.assertFalse(os.path.exists(r.control("morercpthosts.cdb")))
        # A domain rcpthosts already names (by hand) lands in morercpthosts
        # as well; vdeldomain takes it out of both.
        with open(r.control("rcpthosts"), "a") as f:
            f.write("dup.test\n")
        self.assertEqual(self.vadd("dup.test", "pw").returncode, 0)
        self.assertEqual(r.read("var/qmail/control/morercpthosts"), b"dup.test\n")
        self.assertEqual(r.run("vdeldomain", "dup.test").returncode, 0)
        self.assertNotIn(b"dup.test", r.read("var/qmail/control/rcpthosts"))
        self.assertFalse(os.path.exists(r.control("morercpthosts")))
        self.assertFalse(os.path.exists(r.control("morercpthosts.cdb")))

    def test_sorted_like_vpopmail(self):
        r = self.root
        for d in ("zeta.org", "alpha.org", "www.alpha.org", "beta.net"):
            self.assertEqual(self.vadd(d, "pw").returncode, 0)
        self.assertEqual(r.read("var/qmail/control/rcpthosts"),
                         b"alpha.org\nwww.alpha.org\nbeta.net\nlocalhost\nzeta.org\n")
        names = [l.split(b":")[0] for l in r.read("var/qmail/users/assign").splitlines()]
        self.assertEqual(names, [b"+alpha.org-", b"+www.alpha.org-", b"+beta.net-", b"+zeta.org-", b"."])

    def test_vdeldomain_and_alias_domains(self):
        r = self.root
        before = snapshot(r.q())
        self.assertEqual(self.vadd("real.com", "pw").returncode, 0)
        dom = r.v("domains", "real.com")
        # An alias domain, as vaddaliasdomain writes it.
        uid, gid = os.geteuid(), os.getegid()
        with open(r.q("users", "assign")) as f:
            text = f.read()
        text = text.replace(".\n", f"+alias.com-:real.com:{uid}:{gid}:{dom}:-::\n.\n")
        with open(r.q("users", "assign"), "w") as f:
            f.write(text)
        self.assertEqual(r.run("qmail-newu").returncode, 0)
        p = r.run("vuserinfo", "-n", "postmaster@alias.com")
        self.assertEqual(p.stdout, b"postmaster\n")
        p = r.run("vdeldomain", "real.com")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(p.stdout, b"Warning: Alias domains exist:\n   alias.com\n"
                                   b"   use -f to force delete of domain and all aliases\n")
        self.assertTrue(os.path.isdir(dom))
        p = r.run("vdeldomain", "-f", "real.com")
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertEqual(p.stdout, b"Warning: Alias domains deleted:\n   alias.com\n")
        self.assertFalse(os.path.exists(dom))
        self.assertEqual(r.read("var/qmail/users/assign"), b".\n")
        after = snapshot(r.q())
        for f in ("control/rcpthosts", "control/virtualdomains", "control/locals", "users/assign"):
            self.assertEqual(after[f], before[f], f)
        p = r.run("vdeldomain", "real.com")
        self.assertEqual((p.returncode, p.stdout), (245, b"Error: Domain does not exist\n"))

    def test_tools_that_waited_for_a_domain_being_deleted_find_it_gone(self):
        # vdeldomain holds the domain's vpasswd lock while it works. Here it
        # is held up at control/rcpthosts (whose lock the test holds) with
        # the domain's lock taken; a vadduser, a vdeluser and a
        # vaddaliasdomain then wait for the domain's lock, and once the
        # domain is gone they say so, changing nothing.
        import fcntl
        r = self.root
        self.assertEqual(self.vadd("gone.test", "pw").returncode, 0)
        r.add_user("ann@gone.test")
        dom = r.v("domains", "gone.test")
        held = self.hold_lock(r.control("rcpthosts") + ".lock")
        deleting = self.start_tool("vdeldomain", "gone.test")
        wait_until(lambda: os.path.exists(os.path.join(dom, ".vdeldomain-running")), 10,
                   what="vdeldomain to hold the domain's lock")
        lock = os.path.join(dom, ".vpasswd.lock")
        waiters = [self.start_tool("vadduser", "bob@gone.test", "bobpass1"),
                   self.start_tool("vdeluser", "ann@gone.test"),
                   self.start_tool("vaddaliasdomain", "gone.test", "alias.test")]
        wait_until(lambda: self.waiting_for(lock) == 3, 10, what="the tools to wait for the domain's lock")
        fcntl.lockf(held, fcntl.LOCK_UN)
        self.assertEqual(deleting.wait(timeout=20), 0, deleting.stdout.read())
        for p in waiters:
            out = p.stdout.read()
            self.assertNotEqual(p.wait(timeout=20), 0, out)
            self.assertIn(b"Domain does not exist", out)
        self.assertFalse(os.path.exists(dom))
        for f in ("users/assign", "control/rcpthosts", "control/virtualdomains"):
            self.assertNotIn(b"gone.test", r.read("var/qmail/" + f), f)
            self.assertNotIn(b"alias.test", r.read("var/qmail/" + f), f)

    def test_vdeldomain_waits_for_a_vadddomain_of_the_same_name(self):
        # vadddomain is held up at users/assign (whose lock the test holds)
        # with the directory and postmaster made, users/assign not yet
        # written. A vdeldomain of that name must not take the directory for
        # a killed run's leftover: it waits, then deletes the domain.
        import fcntl
        r = self.root
        held = self.hold_lock(r.q("users", "assign") + ".lock")
        adding = self.start_tool("vadddomain", "race.test", "pmpass1")
        dom = r.v("domains", "race.test")
        wait_until(lambda: os.path.exists(os.path.join(dom, "vpasswd")), 10, what="vadddomain's postmaster")
        dc_lock = r.v("domains", ".dir-control.lock")
        deleting = self.start_tool("vdeldomain", "race.test")
        wait_until(lambda: self.waiting_for(dc_lock) == 1, 10,
                   what="vdeldomain to wait for the domain counter's lock")
        self.assertTrue(os.path.isdir(dom))
        fcntl.lockf(held, fcntl.LOCK_UN)
        self.assert_added_then_deleted(adding, deleting, "race.test")
        # Held up later, at control/rcpthosts, with users/assign written: the
        # vdeldomain that finds the domain there waits for the domain's own
        # lock, and removes it from every file, not only from those written.
        held2 = self.hold_lock(r.control("rcpthosts") + ".lock")
        adding = self.start_tool("vadddomain", "race2.test", "pmpass1")
        wait_until(lambda: b"race2.test" in r.read("var/qmail/users/assign"), 10,
                   what="vadddomain's users/assign line")
        dom2 = r.v("domains", "race2.test")
        lock = os.path.join(dom2, ".vpasswd.lock")
        deleting = self.start_tool("vdeldomain", "race2.test")
        wait_until(lambda: self.waiting_for(lock) == 1, 10, what="vdeldomain to wait for the domain's lock")
        fcntl.lockf(held2, fcntl.LOCK_UN)
        self.assert_added_then_deleted(adding, deleting, "race2.test")

    def assert_added_then_deleted(self, adding, deleting, domain):
        """Both tools of a race ended well, in that order: the domain is in
        no file and has no directory."""
        self.assertEqual(adding.wait(timeout=20), 0, adding.stdout.read())
        self.assertEqual(deleting.wait(timeout=20), 0, deleting.stdout.read())
        self.assertFalse(os.path.exists(self.root.v("domains", domain)))
        for f in ("users/assign", "control/rcpthosts", "control/virtualdomains"):
            self.assertNotIn(domain.encode(), self.root.read("var/qmail/" + f), f)

    def test_vdeldomain_removes_what_a_killed_run_left(self):
        r = self.root
        # vadddomain or vdeldomain killed between the directory and the
        # control files: a directory of a domain no control file names.
        for d in (r.v("domains", "left.com"), r.v("domains", "0", "A", "left.net")):
            os.makedirs(os.path.join(d, "postmaster", "Maildir", "new"))
            with open(os.path.join(d, "vpasswd"), "w") as f:
                f.write("postmaster:x:1:0::%s/postmaster:NOQUOTA\n" % d)
        # Killed at its first rename: only the temporary .qmail-default.
        early = r.v("domains", "early.org")
        os.makedirs(early)
        with open(os.path.join(early, ".qmail-default.tmp.4242"), "w") as f:
            f.write("| vdelivermail '' bounce-no-mailbox\n")
        p = r.run("vdeldomain", "early.org")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertFalse(os.path.exists(early))
        p = self.vadd("left.com", "pw")
        self.assertEqual(p.returncode, 242, p.stdout)
        for name, d in (("left.com", r.v("domains", "left.com")),
                        ("left.net", r.v("domains", "0", "A", "left.net"))):
            p = r.run("vdeldomain", name)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertEqual(p.stdout, b"Warning: %s was not a domain; removed its leftover directory %s\n"
                             % (name.encode(), d.encode()))
            self.assertFalse(os.path.exists(d))
        self.assertEqual(self.vadd("left.com", "pw").returncode, 0)
        # Nothing there: still vpopmail's answer.
        p = r.run("vdeldomain", "never.com")
        self.assertEqual((p.returncode, p.stdout), (245, b"Error: Domain does not exist\n"))

    def test_vdeldomain_killed_before_qmail_newu_can_be_run_again(self):
        # Killed after it rewrote the control files and users/assign but
        # before users/cdb was compiled: the directory stays and the old cdb
        # still names the domain. A second vdeldomain compiles assign again
        # and removes the directory, so the domain can be added again.
        import shutil
        r = self.root
        self.assertEqual(self.vadd("stale.com", "pw-123456").returncode, 0)
        r.run("vadduser", "joe@stale.com", "pw-123456", check=True)
        d = r.domain_dir("stale.com")
        old_cdb = r.read("var/qmail/users/cdb")
        shutil.copytree(d, d + ".keep", symlinks=True)
        self.assertEqual(r.run("vdeldomain", "stale.com").returncode, 0)
        os.rename(d + ".keep", d)
        # The mark the run made before it changed any control file.
        open(os.path.join(d, ".vdeldomain-running"), "w").close()
        with open(r.q("users", "cdb"), "wb") as f:
            f.write(old_cdb)
        # Older than assign, as the killed run left it.
        t = os.stat(r.q("users", "assign")).st_mtime - 10
        os.utime(r.q("users", "cdb"), (t, t))
        self.assertNotIn(b"stale.com", r.read("var/qmail/users/assign"))
        p = r.run("vdeldomain", "stale.com")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(p.stdout, b"Warning: stale.com was not a domain; removed its leftover directory %s\n"
                         % d.encode())
        self.assertFalse(os.path.exists(d))
        self.assertNotIn(b"stale.com", r.read("var/qmail/users/cdb"))
        self.assertEqual(self.vadd("stale.com", "pw-123456").returncode, 0)

    def test_vdeldomain_that_could_not_compile_users_cdb_can_be_run_again(self):
        # users/cdb cannot be written: assign has changed, so the domain is
        # gone as far as qmail-send reads assign, and its directory keeps the
        # mark; once the cause is fixed, the next run removes it.
        r = self.root
        self.assertEqual(self.vadd("nocdb.com", "pw-123456").returncode, 0)
        d = r.domain_dir("nocdb.com")
        # An old mark (of a run killed before it changed anything), older
        # than the last account change: made again by this run.
        open(os.path.join(d, ".vdeldomain-running"), "w").close()
        time.sleep(0.01)
        r.run("vadduser", "joe@nocdb.com", "pw-123456", check=True)
        os.makedirs(r.q("users", "cdb.tmp", "x"))
        try:
            p = r.run("vdeldomain", "nocdb.com")
            self.assertNotEqual(p.returncode, 0)
            self.assertTrue(os.path.exists(os.path.join(d, ".vdeldomain-running")))
        finally:
            os.rmdir(r.q("users", "cdb.tmp", "x"))
            os.rmdir(r.q("users", "cdb.tmp"))
        p = r.run("vdeldomain", "nocdb.com")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertFalse(os.path.exists(d))
        self.assertEqual(self.vadd("nocdb.com", "pw-123456").returncode, 0)

    def test_a_control_file_that_cannot_be_written_undoes_vadddomain(self):
        # rcpthosts is not a file: vadddomain fails, and what it had written
        # (users/assign, users/cdb, the directory) is taken back.
        r = self.root
        os.unlink(r.control("rcpthosts"))
        os.mkdir(r.control("rcpthosts"))
        try:
            p = self.vadd("half.com", "pw-123456")
            self.assertNotEqual(p.returncode, 0)
            self.assertTrue(p.stdout.startswith(b"Error: "), p.stdout)
            self.assertNotIn(b"half.com", r.read("var/qmail/users/assign"))
            self.assertNotIn(b"half.com", r.read("var/qmail/users/cdb"))
            self.assertFalse(os.path.exists(r.domain_dir("half.com")))
        finally:
            os.rmdir(r.control("rcpthosts"))
        self.assertEqual(self.vadd("half.com", "pw-123456").returncode, 0)
        # With 50 lines in rcpthosts the domain goes to morercpthosts: a run
        # that fails after that takes back the file it made (the cdb names
        # the domain no more), and
        # only the line it added from one that was there.
        with open(r.control("rcpthosts"), "a") as f:
            f.write("".join(f"filler{i}.test\n" for i in range(50)))
        vd = r.control("virtualdomains")
        with set_aside(dir_at=vd):
            p = self.vadd("more.com", "pw-123456")
            self.assertEqual(p.returncode, 255, p.stdout)
            self.assertIn(vd.encode(), p.stdout)
            self.assertFalse(os.path.exists(r.control("morercpthosts")))
            self.assertNotIn(b"more.com", r.read("var/qmail/control/morercpthosts.cdb"))
            with open(r.control("morercpthosts"), "w") as f:
                f.write("byhand.test\n")
            p = self.vadd("more.com", "pw-123456")
            self.assertEqual(p.returncode, 255, p.stdout)
            self.assertEqual(r.read("var/qmail/control/morercpthosts"), b"byhand.test\n")
        self.assertEqual(self.vadd("more.com", "pw-123456").returncode, 0)
        self.assertIn(b"more.com", r.read("var/qmail/control/morercpthosts"))
        # rcpthosts and virtualdomains made by a run that then fails go again.
        made = [r.control(name) for name in ("rcpthosts", "virtualdomains", "morercpthosts")]
        with set_aside(*made, dir_at=r.control("locals")):
            p = self.vadd("made.com", "pw-123456")
            self.assertEqual(p.returncode, 255, p.stdout)
            for name in ("rcpthosts", "virtualdomains"):
                self.assertFalse(os.path.exists(r.control(name)), name)

    def test_vdeldomain_never_takes_a_live_domain_for_a_leftover(self):
        # An assign that is empty, cut short or not in assign format, or a
        # wrong QMAIL_HOME, makes a live domain look unnamed: its directory
        # and mail stay, and the answer is vpopmail's.
        r = self.root
        self.assertEqual(self.vadd("live.com", "pw-123456").returncode, 0)
        md = os.path.join(r.domain_dir("live.com"), "postmaster", "Maildir")
        assign = r.q("users", "assign")
        with open(assign, "rb") as f:
            good = f.read()
        for broken in (b"", good.replace(b"\n.\n", b"\n"), b"junk\n.\n"):
            with open(assign, "wb") as f:
                f.write(broken)
            p = r.run("vdeldomain", "live.com")
            self.assertNotEqual(p.returncode, 0, broken)
            self.assertTrue(os.path.isdir(md), broken)
        with open(assign, "wb") as f:
            f.write(good)
        p = r.run("vdeldomain", "live.com", env={"QMAIL_HOME": os.path.join(r.dir, "nowhere")})
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(os.path.isdir(md))
        # QMAIL_HOME naming another installation, whose files are all there
        # and name nothing: a domain with accounts besides its postmaster
        # (and no mail, all fetched) is still not taken for a leftover.
        r.run("vadduser", "joe@live.com", "pw-123456", check=True)
        other = os.path.join(r.dir, "other-qmail")
        for sub in ("control", "users"):
            os.makedirs(os.path.join(other, sub), exist_ok=True)
        for name, text in (("control/me", "other.test\n"), ("control/rcpthosts", ""),
                           ("users/assign", ".\n")):
            with open(os.path.join(other, name), "w") as f:
                f.write(text)
        p = r.run("vdeldomain", "live.com", env={"QMAIL_HOME": other})
        self.assertEqual((p.returncode, p.stdout), (245, b"Error: Domain does not exist\n"))
        self.assertTrue(os.path.isdir(os.path.join(r.domain_dir("live.com"), "joe")))
        # Nor a domain of forwards (aliases beside the postmaster), nor one
        # whose accounts changed after the mark of a vdeldomain killed before
        # it changed anything.
        self.assertEqual(self.vadd("fwd.com", "pw-123456").returncode, 0)
        with open(os.path.join(r.domain_dir("fwd.com"), ".qmail-info"), "w") as f:
            f.write("&someone@example.org\n")
        p = r.run("vdeldomain", "fwd.com", env={"QMAIL_HOME": other})
        self.assertEqual(p.returncode, 245, p.stdout)
        self.assertTrue(os.path.exists(os.path.join(r.domain_dir("fwd.com"), ".qmail-info")))
        open(os.path.join(r.domain_dir("live.com"), ".vdeldomain-running"), "w").close()
        time.sleep(0.01)  # a later time stamp for the account change below
        r.run("vadduser", "ann@live.com", "pw-123456", check=True)
        p = r.run("vdeldomain", "live.com", env={"QMAIL_HOME": other})
        self.assertEqual(p.returncode, 245, p.stdout)
        self.assertTrue(os.path.isdir(os.path.join(r.domain_dir("live.com"), "ann")))
        os.unlink(os.path.join(r.domain_dir("live.com"), ".vdeldomain-running"))
        # A leftover-looking directory that holds mail is never removed as one
        # (QMAIL_HOME may name another real installation).
        left = r.v("domains", "mailful.com")
        os.makedirs(os.path.join(left, "joe", "Maildir", "new"))
        with open(os.path.join(left, "joe", "Maildir", "new", "1.x.h"), "w") as f:
            f.write("Subject: keep me\n\n")
        p = r.run("vdeldomain", "mailful.com")
        self.assertEqual((p.returncode, p.stdout), (245, b"Error: Domain does not exist\n"))
        self.assertTrue(os.path.exists(os.path.join(left, "joe", "Maildir", "new", "1.x.h")))
        # A control file that cannot be written stops vdeldomain before
        # users/assign, so the domain is whole and a second run finishes it.
        os.unlink(r.control("virtualdomains"))
        os.mkdir(r.control("virtualdomains"))
        p = r.run("vdeldomain", "live.com")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"+live.com-:", r.read("var/qmail/users/assign"))
        self.assertTrue(os.path.isdir(md))
        os.rmdir(r.control("virtualdomains"))
        with open(r.control("virtualdomains"), "w") as f:
            f.write("live.com:live.com\n")
        self.assertEqual(r.run("vdeldomain", "live.com").returncode, 0)
        self.assertFalse(os.path.exists(r.domain_dir("live.com")))

    def test_vadddomain_without_qmail_files_changes_nothing(self):
        import tempfile
        d = tempfile.mkdtemp(dir=self.root.dir)
        env = {"QMAIL_HOME": os.path.join(d, "q"), "VPOPMAIL_HOME": os.path.join(d, "v")}
        p = subprocess.run([self.root.bin("vadddomain"), "example.test", "pw-12345"], capture_output=True,
                           env=dict(os.environ, **env), timeout=60)
        self.assertEqual(p.returncode, 255)
        self.assertRegex(p.stdout, rb"^Error: .*/q/control/ is missing \(is QMAIL_HOME right\?\)\n$")
        self.assertEqual(os.listdir(d), [])
        # The other tools keep vpopmail's text on stdout, and say on stderr
        # why it came: the installation is not where the environment says.
        for argv in (["vadduser", "joe@example.test", "pw-12345"], ["vpasswd", "joe@example.test", "x-1234567"]):
            p = subprocess.run([self.root.bin(argv[0])] + argv[1:], capture_output=True,
                               env=dict(os.environ, **env), timeout=60)
            self.assertNotEqual(p.returncode, 0)
            self.assertTrue(p.stdout.startswith(b"Error: "), p.stdout)
            self.assertRegex(p.stderr, rb"^" + argv[0].encode()
                             + rb": .*/q/control/ is missing \(is QMAIL_HOME right\?\)\n$")
        env["QMAIL_HOME"] = self.root.qmail
        p = subprocess.run([self.root.bin("vadduser"), "joe@example.test", "pw-12345"], capture_output=True,
                           env=dict(os.environ, **env), timeout=60)
        self.assertRegex(p.stderr, rb"^vadduser: .*/v/domains is missing \(is VPOPMAIL_HOME right\?\)\n$")
        self.assertEqual(os.listdir(d), [])

    def test_vaddaliasdomain(self):
        r = self.root
        r.add_domain("real.test")
        r.add_user("joe@real.test", "joepass1")
        # Either order: the existing domain is the real one.
        p = r.run("vaddaliasdomain", "alias.test", "real.test")
        self.assertEqual((p.returncode, p.stdout), (0, b""), p.stderr)
        dom = r.domain_dir("real.test")
        with open(r.q("users", "assign")) as f:
            self.assertIn("+alias.test-:real.test:", f.read())
        with open(r.control("rcpthosts")) as f:
            self.assertIn("alias.test\n", f.read())
        with open(r.control("virtualdomains")) as f:
            self.assertIn("alias.test:alias.test\n", f.read())
        # Mail for the alias reaches the real domain's user.
        from test_queue_delivery import send_once
        from harness import maildir_messages
        p = r.run("sendmail", "-f", "someone@localhost", "joe@alias.test", input=b"Subject: via alias\n\nhi\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        send_once(r, os.path.join(r.dir, "unused"))
        [m] = maildir_messages(r.maildir("joe", "real.test"))
        with open(m, "rb") as f:
            self.assertIn(b"Subject: via alias", f.read())
        # Logins with the alias domain.
        data = b"joe@alias.test\0joepass1\0\0"
        argv = ["sh", "-c", 'exec 3<&0 </dev/null; exec "$@"', "sh", r.bin("vchkpw"), "true"]
        ok = subprocess.run(argv, input=data, capture_output=True, timeout=30,
                            env=r.env(TCPREMOTEIP="10.2.2.2", TCPLOCALPORT="110"))
        self.assertEqual(ok.returncode, 0, ok.stderr)
        # Refusals, each with one line and 255, and no change.
        before = r.read("var/qmail/users/assign")
        for args, text in [(("real.test", "alias.test"), b"Error: Both domains already exist, unable to create alias.\n"),
                           (("a.test", "b.test"), b"Error: Neither 'a.test' or 'b.test'  exist, unable to create alias.\n"),
                           (("real.test", "real.test"), b"Error: real domain and alias domain are the same!\n"),
                           (("real.test",), None)]:
            p = r.run("vaddaliasdomain", *args)
            self.assertEqual(p.returncode, 255, args)
            if text:
                self.assertEqual(p.stdout, text)
        self.assertEqual(r.read("var/qmail/users/assign"), before)
        # vdeldomain knows it.
        p = r.run("vdeldomain", "real.test")
        self.assertEqual(p.returncode, 1)
        self.assertIn(b"alias.test", p.stdout)
        r.run("vdeldomain", "alias.test", check=True)
        with open(r.control("rcpthosts")) as f:
            self.assertNotIn("alias.test", f.read())
        self.assertTrue(os.path.isdir(dom))

    def test_vdominfo(self):
        r = self.root
        r.add_domain("real.test")
        r.add_user("joe@real.test", "joepass1")
        r.add_domain("other.test")
        r.run("vaddaliasdomain", "real.test", "alias.test", check=True)
        dom, other = r.domain_dir("real.test"), r.domain_dir("other.test")
        uid, gid = os.stat(dom).st_uid, os.stat(dom).st_gid
        one = (f"domain: real.test\nuid:    {uid}\ngid:    {gid}\ndir:    {dom}\n"
               f"users:  2\nalias: alias.test\n").encode()
        # One domain, named by itself or by an alias (upper case too): the real
        # domain with its users (postmaster and joe), then its aliases.
        for name in ("real.test", "alias.test", "REAL.Test"):
            p = r.run("vdominfo", name)
            self.assertEqual((p.returncode, p.stdout, p.stderr), (0, one, b""), name)
        # Every domain, in users/assign's order, a blank line after each.
        p = r.run("vdominfo")
        self.assertEqual(p.returncode, 0)
        self.assertEqual(p.stdout.decode().split("\n\n"), [
            f"domain: alias.test (alias of real.test)\nuid:    {uid}\ngid:    {gid}\ndir:    {dom}\nusers:  2",
            f"domain: other.test\nuid:    {uid}\ngid:    {gid}\ndir:    {other}\nusers:  1",
            f"domain: real.test\nuid:    {uid}\ngid:    {gid}\ndir:    {dom}\nusers:  2",
            ""])
        # Single fields, bare, in vdominfo's order whatever the options' order,
        # and nothing else (the alias lines belong to the full display).
        p = r.run("vdominfo", "-t", "-d", "-n", "real.test")
        self.assertEqual(p.stdout, f"real.test\n{dom}\n2\n".encode())
        p = r.run("vdominfo", "-n", "-r")
        self.assertEqual(p.stdout, b"alias.test (alias of real.test)\nreal.test\n\n"
                                   b"other.test\nother.test\n\nreal.test\nreal.test\n\n")
        # A user removed is counted out.
        r.run("vdeluser", "joe@real.test", check=True)
        self.assertEqual(r.run("vdominfo", "-t", "real.test").stdout, b"1\n")
        # Unknown domain, bad option, two domains: one line and non-zero.
        p = r.run("vdominfo", "nope.test")
        self.assertEqual((p.returncode, p.stdout), (245, b"Invalid domain name\n"))
        for args in (("-x",), ("real.test", "other.test")):
            p = r.run("vdominfo", *args)
            self.assertEqual(p.returncode, 255, args)
            self.assertRegex(p.stdout, rb"^Error: [^\n]*usage: vdominfo[^\n]*\n$")

    def test_a_broken_users_assign_is_reported_not_read_as_no_domains(self):
        r = self.root
        r.add_domain("real.test")
        assign = r.q("users", "assign")
        with open(assign, "rb") as f:
            good = f.read()
        for broken in (b"", b"+real.test-:real.test:89\n.\n", b"\xff\x00garbage\n"):
            with open(assign, "wb") as f:
                f.write(broken)
            # vdominfo reads the file itself: an Error line and 255.
            for args in ((), ("real.test",)):
                p = r.run("vdominfo", *args)
                self.assertEqual((p.returncode, p.stdout), (255, b"Error: can't read users/assign: "
                                                           b"bad format in users/assign\n"), (broken, args))
            # The compiled users/cdb stays in force, as for qmail's programs.
            p = r.run("vuserinfo", "-d", "postmaster@real.test")
            self.assertEqual(p.returncode, 0, (broken, p.stdout))
            # Without it, the tools say why instead of "does not exist".
            os.rename(r.q("users", "cdb"), r.q("users", "cdb.keep"))
            p = r.run("vadduser", "bob@real.test", "bobpass1")
            self.assertEqual(p.returncode, 255)
            self.assertIn(b"bad format in users/assign", p.stdout)
            for args in (("vuserinfo", "postmaster@real.test"), ("vpasswd", "postmaster@real.test", "newpass1")):
                p = r.run(*args)
                self.assertEqual((p.returncode, p.stdout), (255, b"Error: can't read users/assign: "
                                                           b"bad format in users/assign\n"), args)
            os.rename(r.q("users", "cdb.keep"), r.q("users", "cdb"))
        # vadddomain and vaddaliasdomain refuse it before touching it: not
        # even sorted (a bad line first would be sorted to the end).
        broken = b"+zzz\n" + good
        with open(assign, "wb") as f:
            f.write(broken)
        # A line the admin put in rcpthosts by hand is not taken back either.
        with open(r.control("rcpthosts"), "a") as f:
            f.write("new.test\n")
        with open(r.control("rcpthosts"), "rb") as f:
            rcpthosts = f.read()
        for args in (("vadddomain", "new.test", "pmpass1"), ("vaddaliasdomain", "real.test", "al.test")):
            p = r.run(*args)
            self.assertEqual((p.returncode, p.stdout),
                             (255, b"Error: Could not update file: bad format in users/assign\n"), args)
            with open(assign, "rb") as f:
                self.assertEqual(f.read(), broken, args)
            with open(r.control("rcpthosts"), "rb") as f:
                self.assertEqual(f.read(), rcpthosts, args)
        self.assertFalse(os.path.exists(r.domain_dir("real.test").replace("real.test", "new.test")))
        # Text after the end line is no format error (qmail-newu never reads
        # it), and stays after it.
        with open(assign, "wb") as f:
            f.write(good + b"trailing junk\n")
        self.assertEqual(r.run("vadddomain", "new.test", "pmpass1").returncode, 0)
        with open(assign, "rb") as f:
            text = f.read()
        self.assertTrue(text.endswith(b"\n.\ntrailing junk\n"), text)
        self.assertIn(b"+new.test-:", text)
        self.assertEqual(r.run("qmail-newu").returncode, 0)
        # vdeldomain removes the domain's line, not a copy after the end.
        [line] = [l for l in text.split(b"\n") if l.startswith(b"+new.test-:")]
        with open(assign, "ab") as f:
            f.write(line + b"\n")
        r.run("vdeldomain", "new.test", check=True)
        with open(assign, "rb") as f:
            self.assertEqual(f.read(), good + b"trailing junk\n" + line + b"\n")
        # users/cdb without users/assign: a new assign holding one domain
        # would lose every other route, so nothing is added.
        os.unlink(assign)
        p = r.run("vadddomain", "lone.test", "pmpass1")
        self.assertEqual(p.returncode, 255, p.stdout)
        self.assertIn(b"users/assign is missing while", p.stdout)
        self.assertFalse(os.path.exists(assign))
        self.assertEqual(r.run("vuserinfo", "-d", "postmaster@real.test").returncode, 0)
        # vdeldomain could not finish either: it starts nothing.
        with open(r.control("rcpthosts"), "rb") as f:
            rcpthosts = f.read()
        p = r.run("vdeldomain", "real.test")
        self.assertNotEqual(p.returncode, 0, p.stdout)
        with open(r.control("rcpthosts"), "rb") as f:
            self.assertEqual(f.read(), rcpthosts)
        self.assertTrue(os.path.isdir(r.domain_dir("real.test")))
        with open(assign, "wb") as f:
            f.write(good)
        # Nor with a control file it would change that is not a file.
        with set_aside(dir_at=r.control("virtualdomains")):
            p = r.run("vdeldomain", "real.test")
            self.assertEqual(p.returncode, 255, p.stdout)
            self.assertIn(b"virtualdomains is not a regular file", p.stdout)
            with open(r.control("rcpthosts"), "rb") as f:
                self.assertEqual(f.read(), rcpthosts)
            with open(assign, "rb") as f:
                self.assertEqual(f.read(), good)
        # A domain whose directory cannot be read: `?`, why, and non-zero.
        line = good.decode().splitlines()[0].split(":")
        line[4] = "/etc/passwd"
        with open(assign, "w") as f:
            f.write(":".join(line) + "\n.\n")
        p = r.run("vdominfo", "-t", "real.test")
        self.assertEqual((p.returncode, p.stdout), (255, b"?\n"))
        self.assertEqual(p.stderr, b"vdominfo: can't read /etc/passwd/.dir-control: not a directory\n")

    def test_a_half_made_domain_is_named_so(self):
        # A vadddomain killed after users/assign, before rcpthosts or
        # virtualdomains: the second run says what is missing and how to mend.
        r = self.root
        r.add_domain("half.test")
        for f, missing in (("rcpthosts", "control/rcpthosts"), ("virtualdomains", "control/virtualdomains")):
            path = r.control(f)
            with open(path) as fh:
                text = fh.read()
            with open(path, "w") as fh:
                fh.write("".join(l for l in text.splitlines(True) if not l.startswith("half.test")))
            p = self.vadd("half.test", "pw")
            self.assertEqual((p.returncode, p.stdout), (243, (
                f"Error: Domain already exists (but not in {missing}: run vdeldomain half.test, "
                "then vadddomain again)\n").encode()))
            self.assertEqual(r.run("vdeldomain", "half.test").returncode, 0)
            self.assertEqual(self.vadd("half.test", "pw").returncode, 0)

    def test_qmail_newu_golden(self):
        r = self.root
        assign = (b"+example.com-:example.com:89:89:/home/vpopmail/domains/example.com:-::\n"
                  b"+Other.ORG-:other.org:89:89:/home/vpopmail/domains/other.org:-::\n"
                  b"=joe:joe:1001:100:/home/joe:::\n"
                  b"+joe-:joe:1001:100:/home/joe:-::\n"
                  b".\n")
        with open(r.q("users", "assign"), "wb") as f:
            f.write(assign)
        p = r.run("qmail-newu")
        self.assertEqual((p.returncode, p.stdout, p.stderr), (0, b"", b""))
        want = cdbmake([
            (b"!example.com-", b"example.com\x0089\x0089\x00/home/vpopmail/domains/example.com\x00-\x00"),
            (b"!other.org-", b"other.org\x0089\x0089\x00/home/vpopmail/domains/other.org\x00-\x00"),
            (b"!joe\x00", b"joe\x001001\x00100\x00/home/joe\x00\x00"),
            (b"!joe-", b"joe\x001001\x00100\x00/home/joe\x00-\x00"),
            (b"", b"-"),
        ])
        self.assertEqual(r.read("var/qmail/users/cdb"), want)
        self.assertEqual(stat.S_IMODE(os.stat(r.q("users", "cdb")).st_mode), 0o644)
        # A bad assign leaves the old cdb alone.
        with open(r.q("users", "assign"), "wb") as f:
            f.write(b"+broken-:x:1:1\n.\n")
        p = r.run("qmail-newu")
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"qmail-newu: fatal:", p.stderr)
        self.assertEqual(r.read("var/qmail/users/cdb"), want)
        # A FIFO put there is an error at once, not a wait.
        os.unlink(r.q("users", "assign"))
        os.mkfifo(r.q("users", "assign"))
        p = r.run("qmail-newu", timeout=20)
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"qmail-newu: fatal: unable to read users/assign: ", p.stderr)
        os.unlink(r.q("users", "assign"))

    def test_qmail_newmrh_golden(self):
        r = self.root
        r.write_control("morercpthosts", "One.example\n# comment\n\ntwo.example  \t\n")
        p = r.run("qmail-newmrh")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(r.read("var/qmail/control/morercpthosts.cdb"),
                         cdbmake([(b"one.example", b""), (b"two.example", b"")]))

    def test_hup_reaches_this_roots_qmail_send_only(self):
        r = self.root
        fake = os.path.join(r.dir, "qmail-send")
        shutil.copy(shutil.which("sleep"), fake)
        mine = subprocess.Popen([fake, "60"], cwd=r.q("queue"))
        # qmail-start's child in this root: found by its QMAIL_HOME.
        mine_env = subprocess.Popen([fake, "60"], cwd="/", env=r.env())
        other = subprocess.Popen([fake, "60"], cwd=r.dir, env=dict(r.env(), QMAIL_HOME="/nonexistent"))
        try:
            self.assertEqual(self.vadd("hup.test", "pw").returncode, 0)
            for p in (mine, mine_env):
                wait_until(lambda: p.poll() is not None, 10, what="HUP to qmail-send")
                self.assertEqual(p.returncode, -signal.SIGHUP)
            self.assertIsNone(other.poll())
        finally:
            for p in (mine, mine_env, other):
                if p.poll() is None:
                    p.kill()
                p.wait(timeout=10)

    def test_parallel_domain_tools_keep_users_cdb_whole(self):
        # vadddomain and vdeldomain run at the same time (and past 50 domains,
        # so morercpthosts.cdb too): every run succeeds and the compiled files
        # hold exactly what the text files do.
        r = self.root

        def parallel(argvs):
            ps = [subprocess.Popen([r.bin(a[0])] + a[1:], env=r.env(), stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE) for a in argvs]
            return [(p.wait(timeout=120), p.stdout.read() + p.stderr.read()) for p in ps]

        def compiled_match():
            assign = [l for l in r.read("var/qmail/users/assign").decode().splitlines() if l.startswith("+")]
            keys = {k for k, _ in cdb_records(r.read("var/qmail/users/cdb")) if k}
            self.assertEqual(keys, {b"!" + l[1:].split(":")[0].encode() for l in assign})
            mrh = r.q("control", "morercpthosts")
            if os.path.exists(mrh):
                with open(mrh, "rb") as f:
                    hosts = {l for l in f.read().splitlines() if l}
                keys = {k for k, _ in cdb_records(r.read("var/qmail/control/morercpthosts.cdb"))}
                self.assertEqual(keys, hosts)

        def domain_count():
            with open(r.v("domains", ".dir-control")) as f:
                return f.readline()

        count = domain_count() if os.path.exists(r.v("domains", ".dir-control")) else "0\n"
        names = [f"par{i:02d}.test" for i in range(60)]
        for rc, out in parallel([["vadddomain", n, "pw-123456"] for n in names]):
            self.assertEqual(rc, 0, out)
        compiled_match()
        for n in names:
            self.assertIn(f"+{n}-:".encode(), r.read("var/qmail/users/assign"))
        for rc, out in parallel([["vdeldomain", n] for n in names]):
            self.assertEqual(rc, 0, out)
        compiled_match()
        self.assertNotIn(b"par", r.read("var/qmail/users/assign"))
        for n in names:
            self.assertFalse(os.path.exists(r.domain_dir(n)), n)
        self.assertEqual(domain_count(), count)

    def test_many_domains_are_hashed(self):
        r = self.root
        # Start the domain counter where vpopmail leaves it after 99 domains.
        with open(r.v("domains", ".dir-control"), "w") as f:
            f.write("99\n0\n3\n0 0 0\n61 61 61\n0 2 4\n0 0 0\n\n")
        self.assertEqual(self.vadd("hashed.test", "pw").returncode, 0)
        self.assertTrue(os.path.isdir(r.v("domains", "0", "hashed.test")))
        self.assertIn(f":{r.vpop}/domains/0/hashed.test:-::".encode(), r.read("var/qmail/users/assign"))
        with open(r.v("domains", ".dir-control")) as f:
            self.assertEqual(f.read(), "100\n0\n3\n0 0 0\n61 61 61\n0 2 4\n0 0 0\n0\n")
        self.assertEqual(r.run("vadduser", "joe@hashed.test", "pw").returncode, 0)
        self.assertEqual(r.run("vdeldomain", "hashed.test").returncode, 0)
        self.assertFalse(os.path.exists(r.v("domains", "0", "hashed.test")))


if __name__ == "__main__":
    unittest.main()
