"""vdelivermail: every argument form, users' .qmail, BOUNCE_MAIL, .no-user.msg,
Maildir++ quota and the loop check, run as qmail-local runs it from a
domain's .qmail-default (EXT, HOST, DTLINE, RPLINE in the environment)."""
import os
import unittest

from harness import Root, chown_tree, maildir_messages, open_to_all

MSG = b"From: a@example.org\nSubject: hi\n\nbody \x00\xff\r\n"
DOM = "example.test"


class Vdelivermail(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = Root()
        cls.root.add_domain(DOM)
        cls.root.add_user(f"joe@{DOM}")

    @classmethod
    def tearDownClass(cls):
        cls.root.cleanup()

    def vdel(self, user, arg="bounce-no-mailbox", msg=MSG, args=None, sender="a@example.org"):
        env = {"EXT": user, "HOST": DOM, "SENDER": sender,
               "DTLINE": f"Delivered-To: {DOM}-{user}@{DOM}\n",
               "RPLINE": f"Return-Path: <{sender}>\n"}
        return self.root.run("vdelivermail", *(args if args is not None else ["", arg]),
                             input=msg, env=env)

    def msgs(self, user):
        return maildir_messages(self.root.maildir(user, DOM))

    def test_delivers_to_user_maildir_with_size_in_name(self):
        before = len(self.msgs("joe"))
        r = self.vdel("Joe")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        paths = self.msgs("joe")
        self.assertEqual(len(paths), before + 1)
        newest = max(paths, key=os.path.getmtime)
        with open(newest, "rb") as f:
            data = f.read()
        self.assertEqual(data, b"Return-Path: <a@example.org>\nDelivered-To: joe@" + DOM.encode() + b"\n" + MSG)
        self.assertTrue(newest.endswith(f",S={len(data)}"), newest)

    def test_unknown_user_bounces_with_vpopmail_text(self):
        r = self.vdel("nobody")
        self.assertEqual(r.returncode, 100)
        self.assertEqual(r.stdout, b"Sorry, no mailbox here by that name. vpopmail (#5.1.1)\n")

    def test_no_user_msg(self):
        p = os.path.join(self.root.domain_dir(DOM), ".no-user.msg")
        with open(p, "w") as f:
            f.write("No such person here, try www.example.test\n")
        try:
            r = self.vdel("nobody")
            self.assertEqual(r.returncode, 100)
            self.assertEqual(r.stdout, b"No such person here, try www.example.test\n")
        finally:
            os.unlink(p)

    def test_delete_discards(self):
        r = self.vdel("nobody", "delete")
        self.assertEqual(r.returncode, 0)

    def test_catch_all_path(self):
        pm = os.path.join(self.root.domain_dir(DOM), "postmaster")
        before = len(maildir_messages(os.path.join(pm, "Maildir")))
        r = self.vdel("nobody", pm)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(len(maildir_messages(os.path.join(pm, "Maildir"))), before + 1)
        # A Maildir path itself works too.
        r = self.vdel("nobody", os.path.join(pm, "Maildir") + "/")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(len(maildir_messages(os.path.join(pm, "Maildir"))), before + 2)

    def test_postmaster_gets_mail(self):
        before = len(self.msgs("postmaster"))
        self.assertEqual(self.vdel("postmaster").returncode, 0)
        self.assertEqual(len(self.msgs("postmaster")), before + 1)

    def test_missing_maildir_is_created(self):
        self.root.add_user(f"fresh@{DOM}")
        import shutil
        shutil.rmtree(os.path.join(self.root.domain_dir(DOM), "fresh"))
        r = self.vdel("fresh")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(len(self.msgs("fresh")), 1)
        # vadduser's mode (COMPAT 11: 0750 directories).
        import stat
        for sub in ("", "Maildir", "Maildir/new"):
            p = os.path.join(self.root.domain_dir(DOM), "fresh", sub)
            self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o750, p)

    def test_extension_address(self):
        self.root.add_user(f"ext@{DOM}")
        d = os.path.join(self.root.domain_dir(DOM), "ext")
        before = len(self.msgs("ext"))
        # user-anything reaches user when there is no such user ...
        self.assertEqual(self.vdel("ext-news").returncode, 0)
        self.assertEqual(len(self.msgs("ext")), before + 1)
        # ... with the mailbox in Delivered-To, as vpopmail writes it.
        with open(max(self.msgs("ext"), key=os.path.getmtime), "rb") as f:
            self.assertIn(f"\nDelivered-To: ext@{DOM}\n".encode(), f.read())
        # A message stored in the mailbox before and resent to an extension
        # (a client's bounce/redirect, a .qmail forward) is no loop.
        r = self.vdel("ext-news", msg=f"Delivered-To: ext@{DOM}\n".encode() + MSG)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(len(self.msgs("ext")), before + 2)
        # ... and the user's .qmail-EXT decides when it exists.
        with open(os.path.join(d, ".qmail-lists"), "w") as f:
            f.write("|cat > lists-got\n")
        self.assertEqual(self.vdel("ext-lists").returncode, 0)
        self.assertTrue(os.path.exists(os.path.join(d, "lists-got")))
        self.assertEqual(len(self.msgs("ext")), before + 2)

    def test_syntax_error(self):
        r = self.vdel("joe", args=["bounce-no-mailbox"])
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"vdelivermail: invalid syntax in .qmail-default file", r.stdout)

    def test_loop(self):
        r = self.vdel("joe", msg=b"delivered-to: JOE@" + DOM.encode() + b"\n" + MSG)
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"mail is looping", r.stdout)

    def test_bounce_mail_flag(self):
        self.root.add_user(f"locked@{DOM}")
        self.root.run("vmoduser", "-b", f"locked@{DOM}", check=True)
        r = self.vdel("locked")
        self.assertEqual(r.returncode, 100)
        self.assertIn(f"account is locked email bounced locked@{DOM}".encode(), r.stdout)

    def test_user_dot_qmail(self):
        self.root.add_user(f"fw@{DOM}")
        d = os.path.join(self.root.domain_dir(DOM), "fw")
        with open(os.path.join(d, ".qmail"), "w") as f:
            f.write("# comment\n|cat > got\n./Maildir/\n")
        r = self.vdel("fw")
        self.assertEqual(r.returncode, 0, r.stdout)
        with open(os.path.join(d, "got"), "rb") as f:
            self.assertEqual(f.read(), MSG)
        self.assertEqual(len(self.msgs("fw")), 1)
        with open(os.path.join(d, ".qmail"), "w") as f:
            f.write("/var/mail/fw\n")
        r = self.vdel("fw")
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"can't handle mbox delivery for /var/mail/fw", r.stdout)
        with open(os.path.join(d, ".qmail"), "w") as f:
            f.write("# discard everything\n")
        self.assertEqual(self.vdel("fw").returncode, 0)
        self.assertEqual(len(self.msgs("fw")), 1)

    def test_root_by_hand_becomes_the_domains_owner(self):
        # Started by hand as root, vdelivermail works in a domain of another
        # owner (vadddomain -i: a bare uid) with that owner's rights: the
        # Maildir file and a |program line's work are the owner's, not root's.
        if os.getuid() != 0:
            self.skipTest("needs root")
        owner = 4243
        dom = "owned.test"
        self.root.add_domain(dom)
        self.root.add_user(f"kim@{dom}")
        d = self.root.domain_dir(dom)
        chown_tree(d, owner, owner)
        self.root.set_domain_owner(owner, owner, dom)
        for p in (self.root.dir, self.root.v("domains")):
            os.chmod(p, os.stat(p).st_mode | 0o055)
        kim = os.path.join(d, "kim")
        with open(os.path.join(kim, ".qmail"), "w") as f:
            f.write('|echo "$(id -u) $(id -g)" > ids\n./Maildir/\n')
        os.lchown(os.path.join(kim, ".qmail"), owner, owner)
        env = {"EXT": "kim", "HOST": dom, "SENDER": "a@example.org",
               "DTLINE": f"Delivered-To: {dom}-kim@{dom}\n",
               "RPLINE": "Return-Path: <a@example.org>\n"}
        r = self.root.run("vdelivermail", "", "bounce-no-mailbox", input=MSG, env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(kim, "ids")) as f:
            self.assertEqual(f.read().split(), [str(owner), str(owner)])
        got = maildir_messages(os.path.join(kim, "Maildir"))
        self.assertEqual(len(got), 1)
        self.assertEqual(os.stat(got[0]).st_uid, owner)
        # A domain of root's own (a sandbox) keeps root.
        self.assertEqual(self.vdel("joe").returncode, 0)
        self.assertEqual(os.stat(max(self.msgs("joe"), key=os.path.getmtime)).st_uid, 0)

    def test_quota(self):
        with open(self.root.v("etc", "quota-range"), "w") as f:
            f.write("1 2G\n")
        self.root.add_user(f"small@{DOM}", "secret1", "-q", "400")
        md = self.root.maildir("small", DOM)
        r = self.vdel("small", msg=b"x" * 200)
        self.assertEqual(r.returncode, 0, r.stdout)
        [m] = self.msgs("small")
        size = os.path.getsize(m)
        with open(os.path.join(md, "maildirsize")) as f:
            lines = f.read().splitlines()
        self.assertEqual(lines[0], "400S")
        self.assertEqual(sum(int(l.split()[0]) for l in lines[1:]), size)
        self.assertEqual(sum(int(l.split()[1]) for l in lines[1:]), 1)
        r = self.vdel("small", msg=b"x" * 200)
        self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"))
        self.assertEqual(len(self.msgs("small")), 1)
        # A deletion recorded by a POP3 server makes room again.
        os.unlink(m)
        with open(os.path.join(md, "maildirsize"), "a") as f:
            f.write(f"-{size} -1\n")
        self.assertEqual(self.vdel("small", msg=b"x" * 200).returncode, 0)
        over = os.path.join(self.root.domain_dir(DOM), ".over-quota.msg")
        with open(over, "w") as f:
            f.write("Mailbox full.\n")
        try:
            r = self.vdel("small", msg=b"x" * 300)
            self.assertEqual((r.returncode, r.stdout), (100, b"Mailbox full.\n"))
        finally:
            os.unlink(over)

    def test_user_dot_qmail_copy_keeps_the_users_quota(self):
        # A .qmail keeping a copy in the user's own Maildir (qmailadmin's
        # "save a copy", vacation) delivers under the vpasswd quota, even with
        # no maildirsize yet, in either spelling of the Maildir.
        with open(self.root.v("etc", "quota-range"), "w") as f:
            f.write("1 2G\n")
        for user, line in (("cq1", "./Maildir/"), ("cq2", None)):
            self.root.add_user(f"{user}@{DOM}", "secret1", "-q", "400")
            d = os.path.join(self.root.domain_dir(DOM), user)
            md = self.root.maildir(user, DOM)
            with open(os.path.join(d, ".qmail"), "w") as f:
                f.write("|true\n%s\n" % (line or md + "/"))
            if os.path.exists(os.path.join(md, "maildirsize")):
                os.unlink(os.path.join(md, "maildirsize"))
            r = self.vdel(user, msg=b"x" * 200)
            self.assertEqual(r.returncode, 0, r.stdout)
            r = self.vdel(user, msg=b"x" * 200)
            self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"), user)
            self.assertEqual(len(self.msgs(user)), 1, user)
        # A folder of the user's Maildir (Maildir++) counts in the same quota,
        # kept in the Maildir's own maildirsize.
        self.root.add_user(f"cq4@{DOM}", "secret1", "-q", "400")
        md = self.root.maildir("cq4", DOM)
        spam = os.path.join(md, ".Spam")
        for sub in ("", "tmp", "new", "cur"):
            os.makedirs(os.path.join(spam, sub), exist_ok=True)
        with open(os.path.join(self.root.domain_dir(DOM), "cq4", ".qmail"), "w") as f:
            f.write("./Maildir/.Spam/\n")
        self.assertEqual(self.vdel("cq4", msg=b"x" * 200).returncode, 0)
        r = self.vdel("cq4", msg=b"x" * 200)
        self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"))
        self.assertEqual(len(maildir_messages(spam)), 1)
        with open(os.path.join(md, "maildirsize")) as f:
            self.assertEqual(f.read().splitlines()[0], "400S")
        self.assertFalse(os.path.exists(os.path.join(spam, "maildirsize")))
        # A link to the folder is the folder.
        self.root.add_user(f"cq5@{DOM}", "secret1", "-q", "400")
        home5 = os.path.join(self.root.domain_dir(DOM), "cq5")
        spam5 = os.path.join(self.root.maildir("cq5", DOM), ".Spam")
        for sub in ("", "tmp", "new", "cur"):
            os.makedirs(os.path.join(spam5, sub), exist_ok=True)
        os.symlink(spam5, os.path.join(home5, "spamlink"))
        with open(os.path.join(home5, ".qmail"), "w") as f:
            f.write("./spamlink/\n")
        self.assertEqual(self.vdel("cq5", msg=b"x" * 200).returncode, 0)
        r = self.vdel("cq5", msg=b"x" * 200)
        self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"))
        # Another user's folder counts in that user's maildirsize.
        self.root.add_user(f"cq6@{DOM}", "secret1", "-q", "400")
        with open(os.path.join(self.root.domain_dir(DOM), "cq6", ".qmail"), "w") as f:
            f.write("../cq4/Maildir/.Spam/\n")
        r = self.vdel("cq6", msg=b"x" * 200)
        self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"))
        self.assertEqual(len(maildir_messages(spam)), 1)
        # Another Maildir named by a .qmail keeps its own maildirsize's quota
        # (none here: no limit).
        self.root.add_user(f"cq3@{DOM}", "secret1", "-q", "400")
        other = os.path.join(self.root.dir, "other-md")
        for sub in ("", "tmp", "new", "cur"):
            os.makedirs(os.path.join(other, sub), exist_ok=True)
        with open(os.path.join(self.root.domain_dir(DOM), "cq3", ".qmail"), "w") as f:
            f.write(other + "/\n")
        for _ in range(3):
            self.assertEqual(self.vdel("cq3", msg=b"x" * 200).returncode, 0)
        self.assertEqual(len(maildir_messages(other)), 3)

    def test_a_maildirsize_the_delivery_may_not_read_is_rebuilt(self):
        # Left root's (0600) by an admin script: rebuilt over through tmp/,
        # as Courier's quota code does, instead of holding the mail back.
        import subprocess
        with open(self.root.v("etc", "quota-range"), "w") as f:
            f.write("1 2G\n")
        self.root.add_user(f"rq@{DOM}", "secret1", "-q", "4000")
        self.root.run("vuserinfo", f"rq@{DOM}", check=True)
        md = self.root.maildir("rq", DOM)
        open_to_all(self.root.dir)
        chown_tree(os.path.dirname(md), 65534, 65534)
        ms = os.path.join(md, "maildirsize")
        with open(ms, "w") as f:
            f.write("4000S\n0 0\n")
        os.chown(ms, 0, 0)
        os.chmod(ms, 0o600)
        env = self.root.env(EXT="rq", HOST=DOM, SENDER="a@example.org",
                            DTLINE=f"Delivered-To: {DOM}-rq@{DOM}\n", RPLINE="Return-Path: <a@example.org>\n")
        r = subprocess.run([self.root.bin("vdelivermail"), "", "bounce-no-mailbox"], input=MSG,
                           capture_output=True, env=env, timeout=30,
                           preexec_fn=lambda: (os.setgroups([]), os.setgid(65534), os.setuid(65534)))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.msgs("rq")), 1)
        self.assertEqual(os.stat(ms).st_uid, 65534)
        with open(ms) as f:
            self.assertEqual(f.read().splitlines()[0], "4000S")

    def near_quota(self, user, warning):
        """A user with a 5000-byte quota and the domain's .quotawarn.msg."""
        with open(self.root.v("etc", "quota-range"), "w") as f:
            f.write("1 2G\n")
        self.root.add_user(f"{user}@{DOM}", "secret1", "-q", "5000")
        warn = os.path.join(self.root.domain_dir(DOM), ".quotawarn.msg")
        with open(warn, "w") as f:
            f.write(warning)
        return warn

    def test_quota_with_vpopmail_size_suffix(self):
        # A vpasswd from vpopmail may hold "1K" or "50M": that many bytes.
        self.root.add_user(f"kq@{DOM}", "secret1")
        vp = os.path.join(self.root.domain_dir(DOM), "vpasswd")
        with open(vp) as f:
            lines = f.read().splitlines()
        with open(vp, "w") as f:
            for l in lines:
                if l.startswith("kq:"):
                    l = ":".join(l.split(":")[:6] + ["1K"] + l.split(":")[7:])
                f.write(l + "\n")
        os.unlink(vp + ".cdb")
        self.assertEqual(self.vdel("kq", msg=b"x" * 600).returncode, 0)
        r = self.vdel("kq", msg=b"x" * 600)
        self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"))
        self.assertEqual(len(self.msgs("kq")), 1)

    def test_quota_in_vpopmails_older_forms(self):
        # "1KB,2C" as older vpopmail left it in vpasswd: 1024 bytes and 2 messages.
        self.root.add_user(f"kc@{DOM}", "secret1")
        self.rewrite_vpasswd_line("kc", lambda f: f[:6] + ["1KB,2C"] + f[7:])
        for _ in range(2):
            self.assertEqual(self.vdel("kc", msg=b"x" * 10).returncode, 0)
        r = self.vdel("kc", msg=b"x" * 10)
        self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"))
        self.assertEqual(len(self.msgs("kc")), 2)

    def test_quota_counts_the_message_as_handed_over(self):
        # As vpopmail (fstat of descriptor 0): a 400-byte message fits a 400S
        # quota although Return-Path and Delivered-To make the file longer.
        self.root.add_user(f"exact@{DOM}", "secret1")
        self.rewrite_vpasswd_line("exact", lambda f: f[:6] + ["400S"] + f[7:])
        r = self.vdel("exact", msg=b"x" * 399 + b"\n")
        self.assertEqual(r.returncode, 0, r.stdout)
        [m] = self.msgs("exact")
        self.assertGreater(os.path.getsize(m), 400)
        r = self.vdel("exact", msg=b"x\n")
        self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"))

    def test_parallel_deliveries_never_pass_one_quota_together(self):
        # Twenty at once into a 3-message mailbox: exactly three get in.
        import subprocess
        self.root.add_user(f"par@{DOM}", "secret1")
        self.root.run("vsetuserquota", f"par@{DOM}", "3C", check=True)
        env = self.root.env(EXT="par", HOST=DOM, SENDER="a@example.org",
                            DTLINE=f"Delivered-To: {DOM}-par@{DOM}\n", RPLINE="Return-Path: <a@example.org>\n")
        procs = [subprocess.Popen([self.root.bin("vdelivermail"), "", "bounce-no-mailbox"],
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
                 for _ in range(20)]
        # Every one has its message before any is waited for, so they all
        # reach the quota check together.
        for p in procs:
            p.stdin.write(MSG)
        for p in procs:
            p.stdin.close()
        codes = [p.wait(timeout=60) for p in procs]
        self.assertEqual(sorted(codes), [0] * 3 + [100] * 17, codes)
        self.assertEqual(len(self.msgs("par")), 3)

    def rewrite_vpasswd_line(self, user, fields):
        vp = os.path.join(self.root.domain_dir(DOM), "vpasswd")
        with open(vp) as f:
            lines = f.read().splitlines()
        with open(vp, "w") as f:
            for l in lines:
                if l.startswith(user + ":"):
                    l = ":".join(fields(l.split(":")))
                f.write(l + "\n")
        os.unlink(vp + ".cdb")

    def test_empty_quota_field_leaves_the_quota_to_maildirsize(self):
        # As vpopmail's deliver_mail: an empty field reads line 1 of maildirsize.
        self.root.add_user(f"eq@{DOM}", "secret1")
        self.rewrite_vpasswd_line("eq", lambda f: f[:6] + [""] + f[7:])
        with open(os.path.join(self.root.maildir("eq", DOM), "maildirsize"), "w") as f:
            f.write("1000S\n")
        self.assertEqual(self.vdel("eq", msg=b"x" * 600).returncode, 0)
        r = self.vdel("eq", msg=b"x" * 600)
        self.assertEqual((r.returncode, r.stdout), (100, b"user is over quota\n"))
        self.assertEqual(len(self.msgs("eq")), 1)
        p = self.root.run("vuserinfo", "-Q", f"eq@{DOM}")
        self.assertNotEqual(p.stdout.strip(), b"0%", p.stdout)

    def test_line_without_quota_field_is_still_a_user(self):
        # name:crypted:uid:flags:gecos:dir, as hand-written files have it:
        # vpopmail reads the missing field as empty.
        self.root.add_user(f"six@{DOM}", "secret1")
        self.rewrite_vpasswd_line("six", lambda f: f[:6])
        r = self.vdel("six")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(len(self.msgs("six")), 1)
        self.assertEqual(self.root.run("vuserinfo", f"six@{DOM}").returncode, 0)

    def test_line_without_a_directory_defers(self):
        # name:crypted:uid:flags:gecos (no directory): the mail waits in the
        # queue; nothing is delivered into the directory vdelivermail runs in.
        self.root.add_user(f"nodir@{DOM}", "secret1")
        self.rewrite_vpasswd_line("nodir", lambda f: f[:5])
        env = {"EXT": "nodir", "HOST": DOM, "SENDER": "a@example.org",
               "DTLINE": f"Delivered-To: {DOM}-nodir@{DOM}\n", "RPLINE": "Return-Path: <a@example.org>\n"}
        dd = self.root.domain_dir(DOM)
        r = self.root.run("vdelivermail", "", "bounce-no-mailbox", input=MSG, env=env, cwd=dd)
        self.assertEqual((r.returncode, r.stdout),
                         (111, f"vdelivermail: nodir@{DOM} has no absolute directory in vpasswd. (#4.3.0)\n".encode()))
        self.assertFalse(os.path.exists(os.path.join(dd, "Maildir")))

    def test_quota_warning_once_a_day(self):
        warn = self.near_quota("warn", "Your mailbox is almost full.\n")
        try:
            self.assertEqual(self.vdel("warn", msg=b"x" * 4500).returncode, 0)
            got = self.msgs("warn")
            self.assertEqual(len(got), 2)
            texts = []
            for p in got:
                with open(p, "rb") as f:
                    texts.append(f.read())
            self.assertTrue(any(b"Your mailbox is almost full." in t for t in texts))
            md = self.root.maildir("warn", DOM)
            with open(os.path.join(md, "maildirsize")) as f:
                lines = f.read().splitlines()
            self.assertEqual(sum(int(l.split()[1]) for l in lines[1:]), 2)
            self.assertEqual(sum(int(l.split()[0]) for l in lines[1:]),
                             sum(os.path.getsize(p) for p in got))
            # Within 24 hours: no second warning.
            self.assertEqual(self.vdel("warn", msg=b"y").returncode, 0)
            self.assertEqual(len(self.msgs("warn")), 3)
        finally:
            os.unlink(warn)

    def test_quota_warning_keeps_the_files_own_headers(self):
        warn = self.near_quota(
            "warn2", "From: postmaster@example.test\nSubject: quota warning\n\nYou are almost over quota.\n")
        try:
            self.assertEqual(self.vdel("warn2", msg=b"x" * 4500).returncode, 0)
            texts = []
            for p in self.msgs("warn2"):
                with open(p, "rb") as f:
                    texts.append(f.read())
            [w] = [t for t in texts if b"almost over quota" in t]
            head = w.split(b"\n\n")[0].split(b"\n")
            self.assertEqual([l for l in head if l.startswith(b"From:")], [b"From: postmaster@example.test"])
            self.assertEqual([l for l in head if l.startswith(b"Subject:")], [b"Subject: quota warning"])
            self.assertIn(b"To: warn2@example.test", head)
            self.assertEqual(len([l for l in head if l.startswith(b"Date: ")]), 1)
            self.assertTrue(w.endswith(b"\n\nYou are almost over quota.\n"), w)
        finally:
            os.unlink(warn)


if __name__ == "__main__":
    unittest.main()
