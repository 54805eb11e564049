"""Concurrency, crash safety and hashed directories of the vpopmail admin
programs: parallel vadduser runs all land, a kill -9 in the middle of a
rewrite leaves the old or the new vpasswd, large domains hash their users."""
import os
import random
import signal
import subprocess
import time
import unittest

from harness import RootTestCase, chown_tree, need_tool, open_to_all
from test_vpop_domains import cdb_records


class Safety(RootTestCase):
    def setUp(self):
        super().setUp()
        self.root.add_domain("example.com")
        self.dom = self.root.v("domains", "example.com")

    def lines(self):
        with open(os.path.join(self.dom, "vpasswd")) as f:
            return f.read().split("\n")

    def test_planted_links_are_not_followed(self):
        r = self.root
        r.add_domain("links.test")
        r.add_user("user1@links.test", "secret1")
        dd = r.domain_dir("links.test")
        secret = os.path.join(r.dir, "secret")
        with open(secret, "w") as f:
            f.write("root only\n")
        os.chmod(secret, 0o600)
        # At vpasswd's fixed temporary name, and as an alias file.
        os.symlink(secret, os.path.join(dd, "vpasswd.cdb.tmp"))
        os.symlink(secret, os.path.join(dd, ".qmail-stolen"))
        r.run("vpasswd", "user1@links.test", "newpass1", check=True)
        with open(secret) as f:
            self.assertEqual(f.read(), "root only\n")
        p = r.run("valias", "-s", "stolen@links.test")
        self.assertNotIn(b"root only", p.stdout + p.stderr)
        # And at open-smtp's lock.
        lock = r.v("etc", "open-smtp.lock")
        if os.path.exists(lock):
            os.unlink(lock)
        os.symlink(secret, lock)
        p = r.run("relay-open", "-c")
        self.assertNotEqual(p.returncode, 0)
        with open(secret) as f:
            self.assertEqual(f.read(), "root only\n")

    def test_planted_hard_links_and_directory_links_are_not_followed(self):
        # What vpopmail (here: uid 65534, owning the domain's tree) could plant
        # for root's tools: a hard link at a lock file's name, a user's Maildir
        # and a domain directory pointing elsewhere.
        r = self.root
        r.add_domain("tree.test")
        r.add_user("joe@tree.test", "secret1")
        dd = r.domain_dir("tree.test")
        for dp, dns, fns in os.walk(os.path.dirname(dd)):
            for n in dns + fns:
                os.lchown(os.path.join(dp, n), 65534, 65534)
        os.chown(os.path.dirname(dd), 65534, 65534)
        victim = os.path.join(r.dir, "victim")
        with open(victim, "w") as f:
            f.write("root's\n")
        os.chmod(victim, 0o666)
        lock = os.path.join(dd, ".vpasswd.lock")
        if os.path.exists(lock):
            os.unlink(lock)
        os.link(victim, lock)
        r.run("vpasswd", "joe@tree.test", "newpass1", check=True)
        st = os.stat(victim)
        self.assertEqual((st.st_uid, st.st_nlink), (0, 1))
        # A Maildir pointing to a directory of root's: no maildirsize there.
        elsewhere = os.path.join(r.dir, "elsewhere")
        os.makedirs(os.path.join(elsewhere, "tmp"))
        md = os.path.join(dd, "joe", "Maildir")
        os.rename(md, md + ".moved")
        os.symlink(elsewhere, md)
        p = r.run("vsetuserquota", "joe@tree.test", "30M")
        self.assertEqual(os.listdir(elsewhere), ["tmp"], p.stdout + p.stderr)
        # A domain directory pointing to a directory of root's: nothing
        # written there, one Error: line.
        os.rename(dd, dd + ".moved")
        os.symlink(elsewhere, dd)
        p = r.run("vadduser", "ann@tree.test", "secret1")
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stdout, rb"^Error: [^\n]*symbolic link[^\n]*\n$")
        self.assertEqual(os.listdir(elsewhere), ["tmp"])

    def test_root_makes_a_user_directory_with_the_domain_owners_rights(self):
        # The owner of a domain (vadddomain -u) may swap what root is working
        # on in its tree; root's vadduser therefore makes and fills the user's
        # directory as that owner (seteuid), and chowns nothing there, so no
        # link can turn its work onto files of another account.
        strace = need_tool("strace")
        r = self.root
        r.add_domain("owned.test")
        dd = r.domain_dir("owned.test")
        r.set_domain_owner(65534, 65534, "owned.test")
        open_to_all(r.dir)
        chown_tree(dd, 65534, 65534)
        trace = os.path.join(r.dir, "trace")
        p = subprocess.run([strace, "-f", "-qq", "-o", trace, "-e",
                            "trace=setresuid,mkdir,mkdirat,chown,lchown,fchownat,fchown",
                            r.bin("vadduser"), "kim@owned.test", "kimpass1"],
                           env=r.env(), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(trace) as f:
            calls = [l.split(None, 1)[1] for l in f.read().splitlines() if l.strip()]
        kim = os.path.join(dd, "kim")
        made = [i for i, c in enumerate(calls) if c.startswith(f'mkdir("{kim}"')]
        self.assertEqual(len(made), 1, calls)
        became = [i for i, c in enumerate(calls) if c.startswith("setresuid(-1, 65534, -1)")]
        self.assertTrue(became and became[0] < made[0], calls)
        self.assertEqual([c for c in calls if "chown" in c and kim in c], [], calls)
        for path in (kim, os.path.join(kim, "Maildir"), os.path.join(kim, "Maildir", "new")):
            st = os.lstat(path)
            self.assertEqual((st.st_uid, st.st_gid), (65534, 65534), path)
        # vpasswd and its cdb are written through the directory the lock
        # pinned (/proc/self/fd/N), never through the path the owner may
        # swap; a domain directory that is not the owner's is refused.
        p = subprocess.run([strace, "-f", "-qq", "-o", trace, "-e", "trace=rename,renameat,renameat2",
                            r.bin("vpasswd"), "kim@owned.test", "kimpass2"],
                           env=r.env(), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(trace) as f:
            renames = [l for l in f.read().splitlines() if "vpasswd" in l]
        self.assertTrue(renames, renames)
        self.assertTrue(all("/proc/self/fd/" in l and dd not in l for l in renames), renames)
        os.chown(dd, 0, 0)
        try:
            p = r.run("vpasswd", "kim@owned.test", "kimpass3")
            self.assertEqual(p.returncode, 255)
            self.assertIn(f"{dd} does not belong to the domain's owner".encode(), p.stdout)
        finally:
            os.chown(dd, 65534, 65534)
        # An owner that cannot reach its domain gets no directory from root.
        os.chmod(os.path.dirname(dd), 0o700)
        try:
            p = r.run("vadduser", "lee@owned.test", "leepass1")
            self.assertEqual(p.returncode, 255)
            self.assertEqual(p.stdout, f"Error: the domain's owner (uid 65534) cannot reach {dd}: "
                                       "access denied\n".encode())
            self.assertFalse(os.path.exists(os.path.join(dd, "lee")))
            # A quota change still reaches vpasswd (root writes it), but the
            # maildirsize the owner cannot remove is named, not kept quietly.
            size = os.path.join(kim, "Maildir", "maildirsize")
            with open(size, "w") as f:
                f.write("52428800S\n0 0\n")
            p = r.run("vsetuserquota", "kim@owned.test", "2C")
            self.assertEqual((p.returncode, p.stderr),
                             (0, f"Warning: maildirsize not updated: {size}: access denied\n".encode()))
        finally:
            os.chmod(os.path.dirname(dd), 0o755)
        # vdeluser and vdeldomain remove the owner's tree with its rights too.
        for args, top in ((("vdeluser", "kim@owned.test"), kim), (("vdeldomain", "owned.test"), dd)):
            p = subprocess.run([strace, "-f", "-qq", "-o", trace, "-e",
                                "trace=setresuid,unlink,unlinkat,rmdir", r.bin(args[0]), *args[1:]],
                               env=r.env(), capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            with open(trace) as f:
                calls = [l.split(None, 1)[1] for l in f.read().splitlines() if l.strip()]
            self.assertFalse(os.path.exists(top), args)
            removals = [i for i, c in enumerate(calls)
                        if c.startswith(("unlink", "rmdir")) and top in c and c.endswith("= 0")]
            became = [i for i, c in enumerate(calls) if c.startswith("setresuid(-1, 65534, -1)")]
            self.assertTrue(removals and became and became[0] < removals[0], (args, calls))
        # The emptied domain directory goes through its parent as opened, not
        # by its path.
        self.assertTrue(any(c.startswith("unlinkat(") and '"owned.test", AT_REMOVEDIR) = 0' in c
                            for c in calls), calls)

    def test_vadddomain_for_another_owner_writes_through_the_directory_it_made(self):
        # vadddomain -i/-g -d: the owner has BASE/domains and may swap the new
        # domain's directory; .qmail-default and vpasswd go through the
        # directory as made (/proc/self/fd/N), the postmaster's directory is
        # made with the owner's rights.
        strace = need_tool("strace")
        r = self.root
        base = os.path.join(r.dir, "owners-base")
        os.mkdir(base)
        os.chown(base, 65534, 65534)
        open_to_all(r.dir)
        trace = os.path.join(r.dir, "trace-add")
        p = subprocess.run([strace, "-f", "-qq", "-o", trace, "-e",
                            "trace=rename,renameat,renameat2,setresuid,mkdir,mkdirat,chown,lchown,fchownat",
                            r.bin("vadddomain"), "-i", "65534", "-g", "65534", "-d", base, "other.test", "pmpass1"],
                           env=r.env(), capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(trace) as f:
            text = f.read()
        calls = [l.split(None, 1)[1] for l in text.splitlines() if l.strip()]
        # The domain's directory is made with the owner's rights, through the
        # domains directory the lock pinned, and nothing there is chowned.
        made = [i for i, c in enumerate(calls) if c.startswith("mkdir") and "other.test" in c and "= 0" in c]
        became = [i for i, c in enumerate(calls) if c.startswith("setresuid(-1, 65534, -1)")]
        self.assertTrue(made and became and became[0] < made[0], calls)
        self.assertTrue(all("/proc/self/fd/" in calls[i] for i in made[:1]), calls)
        self.assertEqual([c for c in calls if "chown" in c and "other.test" in c], [], calls)
        renames = [l for l in text.splitlines() if "rename" in l and (".qmail-default" in l or "vpasswd" in l)]
        self.assertTrue(renames, text)
        self.assertTrue(all("/proc/self/fd/" in l for l in renames), renames)
        self.assertIn("setresuid(-1, 65534, -1)", text)
        dd = os.path.join(base, "domains", "other.test")
        for path in (dd, os.path.join(dd, "postmaster", "Maildir"), os.path.join(dd, ".qmail-default")):
            self.assertEqual(os.lstat(path).st_uid, 65534, path)
        self.assertEqual(r.run("vdeldomain", "other.test").returncode, 0)
        self.assertFalse(os.path.exists(dd))
        # A base reached through the owner's own directory is worked on with
        # the owner's rights: it cannot have root make `domains` in a
        # directory of root's.
        home = os.path.join(r.dir, "owners-home")
        os.mkdir(home)
        os.chown(home, 65534, 65534)
        roots = os.path.join(home, "roots")
        os.mkdir(roots, 0o755)
        p = r.run("vadddomain", "-i", "65534", "-g", "65534", "-d", roots, "third.test", "pmpass1")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn(b"Can not make domains directory", p.stdout)
        self.assertFalse(os.path.exists(os.path.join(roots, "domains")))
        # Into vpopmail's own domains directory, which the owner cannot
        # enter: refused before anything is made, the shared counter left
        # its owner's.
        domains = r.v("domains")
        os.chmod(domains, 0o750)
        before = sorted(os.listdir(domains))
        p = r.run("vadddomain", "-i", "4242", "-g", "4242", "fourth.test", "pmpass1")
        self.assertEqual((p.returncode, p.stdout), (255, f"Error: the domain's owner (uid 4242) cannot reach "
                                                         f"{domains}: access denied\n".encode()))
        self.assertEqual(sorted(os.listdir(domains)), before)
        for name in before:
            self.assertNotEqual(os.lstat(os.path.join(domains, name)).st_uid, 4242, name)

    def test_concurrent_vadduser_all_succeed(self):
        r = self.root
        procs = [subprocess.Popen([r.bin("vadduser"), f"user{i:02d}@example.com", "pw-12345"],
                                  env=r.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for i in range(16)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, (out, err))
        names = [l.split(":")[0] for l in self.lines() if l]
        self.assertEqual(names, sorted(["postmaster"] + [f"user{i:02d}" for i in range(16)]))
        recs = dict(cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb")))
        self.assertEqual(sorted(recs), sorted(n.encode() for n in names))
        # The same user twice at once: exactly one wins.
        procs = [subprocess.Popen([r.bin("vadduser"), "same@example.com", "pw-12345"], env=r.env(),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
        codes = sorted(p.wait(timeout=120) for p in procs)
        self.assertEqual(codes.count(0), 1, codes)
        self.assertEqual(sum(1 for l in self.lines() if l.startswith("same:")), 1)

    def test_kill_9_leaves_old_or_new_vpasswd(self):
        r = self.root
        # A large domain, written in vpopmail's format.
        n = 3000
        lines = [l for l in self.lines() if l]
        for i in range(n):
            lines.append(f"u{i:05d}:$1$saltsalt$abcdefghijklmnopqrstuv:1:0:old:{self.dom}/u{i:05d}:NOQUOTA")
        lines.sort()
        with open(os.path.join(self.dom, "vpasswd"), "w") as f:
            f.write("\n".join(lines) + "\n")
        os.unlink(os.path.join(self.dom, "vpasswd.cdb"))
        # How long one whole rewrite takes here, so the kills spread over it.
        t0 = time.monotonic()
        r.run("vmoduser", "-c", "old", "example.com", check=True)
        span = 1.5 * (time.monotonic() - t0)
        rng = random.Random(4242)
        seen = set()
        for round_ in range(25):
            gecos = f"gen{round_}"
            p = subprocess.Popen([r.bin("vmoduser"), "-c", gecos, "example.com"], env=r.env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # Kill at a random moment of the rewrite (a timing injection, not a
            # wait); every fifth run is left to finish, so both outcomes occur
            # however busy the machine is.
            try:
                p.wait(timeout=60 if round_ % 5 == 4 else rng.uniform(0.0, span))
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGKILL)
            p.wait(timeout=60)
            text = self.lines()
            self.assertEqual(text[-1], "", "vpasswd ends with a newline")
            body = text[:-1]
            self.assertEqual(len(body), n + 1)
            gecos_set = set()
            for l in body:
                f = l.split(":")
                self.assertEqual(len(f), 7, l)
                if f[0] != "postmaster":
                    gecos_set.add(f[4])
            self.assertEqual(len(gecos_set), 1, "a torn vpasswd mixes two versions")
            seen.add(p.returncode == 0)
            # Readers see the current text even if the kill came between the
            # rename of vpasswd and the one of vpasswd.cdb.
            v = r.run("vuserinfo", "-c", "u01234@example.com")
            self.assertEqual(v.stdout.decode(), gecos_set.pop() + "\n")
        self.assertEqual(seen, {True, False}, "some runs were killed, some completed")
        # The next writer leaves everything consistent.
        r.run("vmoduser", "-c", "final", "example.com", check=True)
        recs = dict(cdb_records(r.read("home/vpopmail/domains/example.com/vpasswd.cdb")))
        self.assertEqual(len(recs), n + 1)
        self.assertIn(b":final:", recs[b"u00007"])

    def test_large_domain_hashes_user_dirs(self):
        r = self.root
        # postmaster is entry 1; entries 2..99 stay in the domain directory.
        for i in range(2, 121):
            p = r.run("vadduser", "-n", f"n{i:03d}@example.com")
            self.assertEqual(p.returncode, 0, p.stdout)
        entries = {l.split(":")[0]: l.split(":")[5] for l in self.lines() if l}
        self.assertEqual(entries["n099"], f"{self.dom}/n099")
        self.assertEqual(entries["n100"], f"{self.dom}/0/n100")
        self.assertEqual(entries["n120"], f"{self.dom}/0/n120")
        self.assertTrue(os.path.isdir(os.path.join(self.dom, "0", "n100", "Maildir", "new")))
        with open(os.path.join(self.dom, ".dir-control")) as f:
            self.assertEqual(f.read(), "120\n0\n3\n0 0 0\n61 61 61\n0 2 4\n0 0 0\n0\n")
        self.assertEqual(r.run("vuserinfo", "-d", "n110@example.com").stdout,
                         f"{self.dom}/0/n110\n".encode())
        self.assertEqual(r.run("vdeluser", "n110@example.com").returncode, 0)
        self.assertFalse(os.path.exists(os.path.join(self.dom, "0", "n110")))
        with open(os.path.join(self.dom, ".dir-control")) as f:
            self.assertEqual(f.readline(), "119\n")
        # One-letter names are refused when directories are hashed (vpopmail).
        self.assertEqual(r.run("vadduser", "x@example.com", "pw").stdout, b"Error: Illegal username\n")
        # Continuing a vpopmail counter that is about to wrap to two levels.
        with open(os.path.join(self.dom, ".dir-control"), "w") as f:
            f.write("6299\n0\n3\n0 0 0\n61 61 61\n0 2 4\n61 0 0\nz\n")
        self.assertEqual(r.run("vadduser", "-n", "deep@example.com").returncode, 0)
        self.assertTrue(os.path.isdir(os.path.join(self.dom, "0", "0", "deep")))


if __name__ == "__main__":
    unittest.main()
