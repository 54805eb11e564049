"""The order of qmail-queue's disk writes, seen by strace: the message file, the
envelope and the message's directory entry (mess/S/) are on disk before the
message is linked into todo/, and todo/ is on disk before qmail-queue exits 0.
Checked for a message whose files are new and for one that reuses spare files
(renamed and linked into place, which no file system syncs with the file)."""
import os
import re
import subprocess

from harness import RootTestCase, need_tool
from test_queue_delivery import delivered, queue, queue_files, send_once, setup_stubs

CALL = re.compile(r"^(\d+)\s+(?:<\.\.\. (\w+) resumed>|(\w+)\()(.*)$")
FD_PATH = re.compile(r"^\d+<([^>]*)>")


def traced_queue(root, strace, out):
    """Runs qmail-queue under strace; returns its exit code and the trace."""
    envelope = b"Fs@localhost\0Tjoe@localhost\0\0"
    r_env, w_env = os.pipe()
    os.write(w_env, envelope)
    os.close(w_env)
    try:
        p = subprocess.run([strace, "-f", "-qq", "-y", "-o", out,
                            "-e", "trace=fsync,fdatasync,link,linkat,exit_group",
                            root.bin("qmail-queue")],
                           input=b"Subject: t\n\nbody\n", stdout=r_env, stderr=subprocess.PIPE,
                           env=root.env(), timeout=60)
    finally:
        os.close(r_env)
    with open(out) as f:
        return p.returncode, f.read().splitlines()


def events(lines):
    """The trace as (kind, path, old path) in the order the calls completed: a
    sync of a descriptor (named by the path it was opened with), a link, the
    exit."""
    pending = {}
    done = []
    for line in lines:
        m = CALL.match(line)
        if not m:
            continue
        pid, resumed, name, rest = m.groups()
        if name:
            if rest.endswith("<unfinished ...>"):
                pending[pid] = (name, rest)
                continue
            call, args = name, rest
        else:
            call, args = pending.pop(pid, (resumed, ""))
            if not re.search(r"= 0\s*$", rest):
                continue
        if call in ("fsync", "fdatasync"):
            fd = FD_PATH.match(args)
            if fd and re.search(r"= 0\s*$", line):
                done.append(("sync", fd.group(1), None))
        elif call in ("link", "linkat") and re.search(r"= 0\s*$", line):
            names = re.findall(r'"([^"]*)"', args)
            done.append(("link", names[-1], names[0]))
        elif call == "exit_group":
            done.append(("exit", args, None))
    return done


class QueueWriteOrder(RootTestCase):
    def setUp(self):
        super().setUp()
        self.strace = need_tool("strace")
        self.out = setup_stubs(self.root, remote=False)
        self.qdir = os.path.realpath(self.root.q("queue"))

    def check_one(self, name):
        code, lines = traced_queue(self.root, self.strace, os.path.join(self.root.dir, name))
        self.assertEqual(code, 0, lines)
        ev = events(lines)
        todo = [i for i, (k, a, _) in enumerate(ev) if k == "link" and "/todo/" in a]
        self.assertEqual(len(todo), 1, ev)
        n = os.path.basename(ev[todo[0]][1])
        messes = [(a, o) for k, a, o in ev if k == "link" and re.search(r"/mess/\d+/" + n + "$", a)]
        self.assertEqual(len(messes), 1, ev)
        mess, pidfile = messes[0]
        before = {os.path.realpath(a) for k, a, _ in ev[:todo[0]] if k == "sync"}
        # The message file was opened as the pid file, the name strace shows.
        self.assertTrue({os.path.realpath(mess), os.path.realpath(pidfile)} & before,
                        f"{mess} not synced before the todo link: {ev}")
        for must in (os.path.dirname(mess), os.path.join(self.qdir, "intd", n)):
            self.assertIn(os.path.realpath(must), before, f"{must} not synced before the todo link: {ev}")
        after = [os.path.realpath(a) for k, a, _ in ev[todo[0]:] if k == "sync"]
        self.assertIn(os.path.join(self.qdir, "todo"), after, ev)
        exits = [i for i, (k, _, _) in enumerate(ev) if k == "exit"]
        last_sync = max(i for i, (k, _, _) in enumerate(ev) if k == "sync")
        self.assertTrue(exits and exits[-1] > last_sync, ev)
        return n

    def test_new_files_and_spare_files_are_synced_before_the_todo_link(self):
        self.check_one("first.trace")
        send_once(self.root, self.out)
        self.assertEqual(len(delivered(self.out, "joe@localhost")), 1)
        self.assertEqual(queue_files(self.root), [])
        # The finished todo file became a spare; the message file was unlinked
        # and a new file made in its place.
        spares = os.listdir(os.path.join(self.qdir, "pid", "spare"))
        self.assertEqual(len(spares), 2)
        self.check_one("second.trace")
        # The second message took the spares instead of new files.
        self.assertLess(len(os.listdir(os.path.join(self.qdir, "pid", "spare"))), len(spares))


class SpareFiles(RootTestCase):
    def test_a_reused_spare_looks_like_a_new_file(self):
        # Spares made under qmail-start's umask 077 and left unused for two
        # days (a quiet weekend): the message and envelope files made from
        # them are 0644 (qmail-send and qmail-rspawn run under other uids)
        # and have fresh times (qmail-send's cleanup removes message files
        # whose atime is 36 hours old and that have no todo/info yet).
        out = setup_stubs(self.root, remote=False)
        qdir = self.root.q("queue")
        spare = os.path.join(qdir, "pid", "spare")
        os.makedirs(spare, exist_ok=True)
        old = 1_700_000_000
        for i in range(8):
            p = os.path.join(spare, f"1.{i}")
            with open(p, "wb"):
                pass
            os.chmod(p, 0o600)
            os.utime(p, (old, old))
        self.assertEqual(queue(self.root, "Subject: t\n\nbody\n", "s@localhost", ["joe@localhost"]), 0)
        self.assertLess(len(os.listdir(spare)), 8)  # spares were used
        files = [os.path.join(dp, f) for sub in ("mess", "intd", "todo")
                 for dp, _, fs in os.walk(os.path.join(qdir, sub)) for f in fs]
        self.assertTrue(files)
        for f in files:
            st = os.stat(f)
            self.assertEqual(st.st_mode & 0o777, 0o644, f)
            self.assertGreater(st.st_atime, old + 86400, f)
            self.assertGreater(st.st_mtime, old + 86400, f)
        log = send_once(self.root, out)
        self.assertEqual(len(delivered(out, "joe@localhost")), 1, log)
