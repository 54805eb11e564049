"""The queue end to end: qmail-queue, qmail-start/qmail-send with the spawners and
qmail-clean, bounces, the retry schedule, the lifetime, qmail-qread.

Deliveries go through a stub qmail-local/qmail-remote written into the test root
(shell scripts), so each test controls what a delivery answers; the real
qmail-local is exercised by the local delivery tests. qmail-send runs in once
mode (VQMAIL_SEND_ONCE=1: exit when nothing is due now) with the clock injected
through VQMAIL_NOW, or as a daemon when a test is about the trigger and signals.
"""
import os
import re
import signal
import subprocess
import unittest

from harness import RootTestCase, wait_until

STUB_LOCAL = r"""#!/bin/sh
# test stub: qmail-local -- user home local dash ext domain sender aliasempty
shift
local=$3 domain=$6 sender=$7
printf '%s\n' "$*" >> "$STUB_OUT/argv"
case "$local" in
  fail*) echo "Sorry, no mailbox here by that name. (#5.1.1)"; exit 100 ;;
  defer*) echo "Temporary stub failure. (#4.3.0)"; exit 111 ;;
  slow*) sleep 1 ;;
esac
d="$STUB_OUT/$local@$domain"
mkdir -p "$d" || exit 111
t="$d/.tmp.$$"
{ printf 'Return-Path: <%s>\n' "$sender"; cat; } > "$t" || exit 111
mv "$t" "$d/$$.$(date +%s%N)" || exit 111
echo "did 0+0+1"
"""

STUB_REMOTE = r"""#!/bin/sh
# test stub: qmail-remote host sender recip
cat > /dev/null
printf '%s %s %s\n' "$1" "$2" "$3" >> "$STUB_OUT/remote"
case "$3" in
  hard*) printf 'h127.0.0.1 does not like recipient.\nRemote host said: 550 no such user\n\000DGiving up on 127.0.0.1.\n\000' ;;
  soft*) printf "ZSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n\000" ;;
  *) printf 'r\000K127.0.0.1 accepted message./Remote host said: 250 ok\n\000' ;;
esac
"""

T0 = 1_800_000_000  # an injected "now"


def install_stub(root, name, text):
    p = root.q("bin", name)
    if os.path.exists(p):
        os.rename(p, p + ".real")
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o755)


def setup_stubs(root, remote=True):
    out = os.path.join(root.dir, "stub-out")
    os.makedirs(out, exist_ok=True)
    install_stub(root, "qmail-local", STUB_LOCAL)
    if remote:
        install_stub(root, "qmail-remote", STUB_REMOTE)
    elif os.path.exists(root.q("bin", "qmail-remote")):
        os.unlink(root.q("bin", "qmail-remote"))
    return out


def queue(root, msg, sender, rcpts, env=None):
    """Runs qmail-queue with the message on fd 0 and the envelope on fd 1."""
    envelope = b"F" + sender.encode() + b"\0" + b"".join(b"T" + r.encode() + b"\0" for r in rcpts) + b"\0"
    return queue_raw(root, msg, envelope, env)


def queue_raw(root, msg, envelope, env=None):
    if isinstance(msg, str):
        msg = msg.encode()
    r_env, w_env = os.pipe()
    os.write(w_env, envelope)
    os.close(w_env)
    try:
        p = subprocess.run([root.bin("qmail-queue")], input=msg, stdout=r_env,
                           stderr=subprocess.PIPE, env=root.env(**(env or {})), timeout=30)
    finally:
        os.close(r_env)
    return p.returncode


def send_once(root, stub_out, now=None, extra=None):
    """qmail-start ./Maildir/ with qmail-send in once mode; its log."""
    env = {"VQMAIL_SEND_ONCE": "1", "STUB_OUT": stub_out}
    if now is not None:
        env["VQMAIL_NOW"] = str(now)
    env.update(extra or {})
    p = subprocess.run([root.bin("qmail-start"), "./Maildir/"], env=root.env(**env),
                       capture_output=True, timeout=60)
    log = p.stderr.decode(errors="replace")
    assert p.returncode == 0, log
    return log


def delivered(stub_out, addr):
    d = os.path.join(stub_out, addr)
    if not os.path.isdir(d):
        return []
    out = []
    for f in sorted(os.listdir(d)):
        if not f.startswith("."):
            with open(os.path.join(d, f), "rb") as fh:
                out.append(fh.read())
    return out


def queue_files(root):
    """Every file left in the queue (relative names), except lock/ and the
    spare files (info/spare/, pid/spare/), which hold no message."""
    out = []
    base = root.q("queue")
    for dp, _, fs in os.walk(base):
        rel = os.path.relpath(dp, base)
        if rel.startswith("lock") or rel in ("info/spare", "pid/spare"):
            continue
        out += [os.path.join(rel, f) for f in fs]
    return sorted(out)


class QmailQueue(RootTestCase):
    def test_layout_received_line_and_envelope(self):
        rc = queue(self.root, "Subject: hi\n\nbody\n", "a@example.net", ["b@localhost", "c@example.org"],
                   env={"VQMAIL_NOW": "812090814"})
        self.assertEqual(rc, 0)
        todo = os.listdir(self.root.q("queue", "todo"))
        self.assertEqual(len(todo), 1)
        n = int(todo[0])
        mess = self.root.q("queue", "mess", str(n % 23), str(n))
        # message number = inode number of the (former) pid file, now mess/S/N
        self.assertEqual(os.stat(mess).st_ino, n)
        with open(mess, "rb") as f:
            m = f.read()
        self.assertRegex(m, rb"^Received: \(qmail \d+ invoked by uid %d\); 26 Sep 1995 04:46:54 -0000\n"
                         % os.getuid())
        self.assertTrue(m.endswith(b"Subject: hi\n\nbody\n"))
        with open(self.root.q("queue", "todo", str(n)), "rb") as f:
            t = f.read()
        self.assertRegex(t, rb"^u%d\0p\d+\0Fa@example.net\0Tb@localhost\0Tc@example.org\0$" % os.getuid())
        self.assertEqual(os.stat(self.root.q("queue", "todo", str(n))).st_ino,
                         os.stat(self.root.q("queue", "intd", str(n))).st_ino)
        self.assertEqual(os.listdir(self.root.q("queue", "pid")), [])

    def test_spawner_and_send_started_wrongly_say_so(self):
        p = subprocess.run([self.root.bin("qmail-lspawn")], stdin=subprocess.DEVNULL, capture_output=True,
                           env=self.root.env(), timeout=30)
        self.assertEqual((p.returncode, p.stderr), (100, b"qmail-lspawn: usage: qmail-lspawn aliasempty\n"))
        p = subprocess.run([self.root.bin("qmail-send")], stdin=subprocess.DEVNULL, capture_output=True,
                           env=self.root.env(), timeout=30)
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"qmail-send: fatal: descriptors 0 to 6 are not all open", p.stderr)

    def test_a_spare_with_a_second_name_is_not_emptied(self):
        # After a power failure on a file system without a journal, a spare's
        # name can survive next to the queue name it was given: qmail-queue
        # must not take that file as a spare and empty the message.
        self.assertEqual(queue(self.root, "Subject: one\n\nfirst\n", "a@example.net", ["b@localhost"]), 0)
        n = int(os.listdir(self.root.q("queue", "todo"))[0])
        mess = self.root.q("queue", "mess", str(n % 23), str(n))
        with open(mess, "rb") as f:
            before = f.read()
        spares = self.root.q("queue", "pid", "spare")
        os.makedirs(spares, exist_ok=True)
        for name in os.listdir(spares):
            os.unlink(os.path.join(spares, name))
        os.link(mess, os.path.join(spares, "1"))
        os.link(self.root.q("queue", "todo", str(n)), os.path.join(spares, "2"))
        self.assertEqual(queue(self.root, "Subject: two\n\nsecond\n", "a@example.net", ["b@localhost"]), 0)
        with open(mess, "rb") as f:
            self.assertEqual(f.read(), before)
        with open(self.root.q("queue", "todo", str(n)), "rb") as f:
            self.assertTrue(f.read().endswith(b"Tb@localhost\0"))
        self.assertEqual(len(os.listdir(self.root.q("queue", "todo"))), 2)

    def test_envelope_errors_leave_nothing(self):
        cases = [
            (b"Fa@b\0Tc@d\0", 54),          # no final NUL: truncated
            (b"Fa@b\0Tc@", 54),
            (b"", 54),
            (b"Xa@b\0\0", 91),               # bad record byte
            (b"Fa@b\0Q\0\0", 91),
            (b"Fa@b\0T" + b"x" * 1003 + b"\0\0", 11),   # address too long
            (b"F" + b"x" * 1003 + b"\0Tc@d\0\0", 11),
        ]
        for env, code in cases:
            self.assertEqual(queue_raw(self.root, b"x\n", env), code, env[:20])
        self.assertEqual(queue_files(self.root), [])
        self.assertEqual(queue_raw(self.root, b"x\n", b"Fa@b\0T" + b"x" * 1002 + b"\0\0"), 0)

    def test_the_24_hour_alarm_exits_52(self):
        # qmail-queue's timer (simulated: the same signal, sent now) ends it
        # with exit 52, "qq timeout", not a death by signal ("qq crashed").
        r_env, w_env = os.pipe()
        p = subprocess.Popen([self.root.bin("qmail-queue")], stdin=subprocess.PIPE, stdout=r_env,
                             stderr=subprocess.PIPE, env=self.root.env())
        os.close(r_env)
        try:
            p.stdin.write(b"Subject: slow\n\npart one\n")
            p.stdin.flush()
            # Once its message file exists it is past its start (and its
            # handler), reading the message, which stays unfinished.
            def mess_file():
                return [f for _, _, fs in os.walk(self.root.q("queue", "mess")) for f in fs]
            wait_until(mess_file, timeout=20, what="qmail-queue's message file")
            p.send_signal(signal.SIGALRM)
            self.assertEqual(p.wait(timeout=10), 52)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(w_env)
            p.stdin.close()
            p.stderr.close()
        self.assertEqual(os.listdir(self.root.q("queue", "todo")), [])

    def test_nul_bare_cr_and_8bit_kept_byte_for_byte(self):
        body = b"Subject: x\n\na\0b\rc\xff\xfe\n"
        self.assertEqual(queue(self.root, body, "a@b", ["c@d"]), 0)
        n = int(os.listdir(self.root.q("queue", "todo"))[0])
        with open(self.root.q("queue", "mess", str(n % 23), str(n)), "rb") as f:
            self.assertTrue(f.read().endswith(body))


class Delivery(RootTestCase):
    def setUp(self):
        super().setUp()
        self.out = setup_stubs(self.root)

    def test_local_delivery_log_and_clean_queue(self):
        self.assertEqual(queue(self.root, "Subject: t\n\nhello\n", "s@example.net", ["joe@localhost"]), 0)
        log = send_once(self.root, self.out)
        got = delivered(self.out, "joe@localhost")
        self.assertEqual(len(got), 1)
        self.assertTrue(got[0].startswith(b"Return-Path: <s@example.net>\nReceived: (qmail "))
        n = re.search(r"new msg (\d+)", log).group(1)
        self.assertRegex(log, r"info msg %s: bytes \d+ from <s@example.net> qp \d+ uid %d\n" % (n, os.getuid()))
        self.assertRegex(log, r"starting delivery 1: msg %s to local joe@localhost\n" % n)
        self.assertIn("delivery 1: success: did_0+0+1/\n", log)
        self.assertIn("end msg %s\n" % n, log)
        self.assertIn("status: local 0/10 remote 0/20\n", log)
        self.assertTrue(log.rstrip().endswith("status: exiting"))
        self.assertEqual(queue_files(self.root), [])
        # qmail-local's argv: -- user home local dash ext domain sender aliasempty
        with open(os.path.join(self.out, "argv")) as f:
            argv = f.read().split()
        self.assertEqual(argv[0], "alias")
        self.assertEqual(argv[1:], [self.root.q("alias"), "joe", "-", "joe", "localhost",
                                    "s@example.net", "./Maildir/"])

    def test_system_account_without_its_home_goes_to_alias(self):
        import pwd
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.skipTest("no nobody account")
        if os.path.isdir(nobody.pw_dir) and os.stat(nobody.pw_dir).st_uid == nobody.pw_uid:
            self.skipTest("nobody has a home of its own here")
        self.assertEqual(queue(self.root, "x\n", "s@example.net", ["nobody-Foo.Bar@localhost"]), 0)
        send_once(self.root, self.out)
        with open(os.path.join(self.out, "argv")) as f:
            argv = f.read().split()
        # qmail-getpw's rule: an account is a mail user only with a home of
        # its own; else the alias user, the whole local part as extension
        # (its case kept).
        self.assertEqual(argv[0], "alias")
        self.assertEqual(argv[4], "nobody-Foo.Bar")

    def test_concurrency_0_holds_the_channel(self):
        self.root.write_control("concurrencylocal", "0\n")
        self.assertEqual(queue(self.root, "Subject: t\n\nheld\n", "s@example.net", ["joe@localhost"]), 0)
        log = send_once(self.root, self.out)
        self.assertIn("status: local 0/0 remote 0/20\n", log)
        self.assertEqual(delivered(self.out, "joe@localhost"), [])
        self.assertNotEqual(queue_files(self.root), [])
        self.root.write_control("concurrencylocal", "10\n")
        send_once(self.root, self.out)
        self.assertEqual(len(delivered(self.out, "joe@localhost")), 1)

    def test_spawner_protocol_is_qmails(self):
        # qmail's spawner protocol: the spawner announces its concurrency in one
        # byte, commands and reports carry a one-byte slot. A spawner written
        # to it (here a small Python one announcing 3) works under our
        # qmail-send, which caps the channel's concurrency by it.
        import sys
        fake = self.root.q("bin", "qmail-lspawn")
        os.rename(fake, fake + ".real")
        self.addCleanup(os.replace, fake + ".real", fake)
        with open(fake, "w") as f:
            f.write(f"""#!{sys.executable}
import os
os.write(1, bytes([3]))
buf = b""
while True:
    b = os.read(0, 4096)
    if not b:
        break
    buf += b
    while buf.count(b"\\0") >= 3 and len(buf) > 1:
        slot, rest = buf[0], buf[1:]
        mess, sender, recip, buf = rest.split(b"\\0", 3)
        with open(os.path.join({self.out!r}, "fake-spawner"), "ab") as f:
            f.write(bytes([slot]) + b"|" + mess + b"|" + sender + b"|" + recip + b"\\n")
        os.write(1, bytes([slot]) + b"Kfake spawner took it\\n\\0")
""")
        os.chmod(fake, 0o755)
        self.assertEqual(queue(self.root, "x\n", "s@example.net", ["joe@localhost", "ann@localhost"]), 0)
        log = send_once(self.root, self.out)
        self.assertIn("status: local 0/3 remote 0/20\n", log)
        self.assertIn("delivery 1: success: fake_spawner_took_it/\n", log)
        self.assertIn("delivery 2: success: fake_spawner_took_it/\n", log)
        with open(os.path.join(self.out, "fake-spawner"), "rb") as f:
            lines = sorted(f.read().splitlines())
        self.assertEqual(sorted(l.split(b"|")[3] for l in lines), [b"ann@localhost", b"joe@localhost"])
        self.assertEqual({l[:1] for l in lines}, {b"\0", b"\1"})
        self.assertEqual(queue_files(self.root), [])

    def test_our_spawner_speaks_qmails_protocol(self):
        self.assertEqual(queue(self.root, "x\n", "s@example.net", ["joe@localhost"]), 0)
        mess = [os.path.join(dp, f) for dp, _, fs in os.walk(self.root.q("queue", "mess")) for f in fs]
        n = os.path.basename(mess[0])
        rel = os.path.relpath(mess[0], self.root.q("queue", "mess"))
        p = subprocess.Popen([self.root.bin("qmail-lspawn"), "./Maildir/"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, cwd=self.root.qmail,
                             env=self.root.env(STUB_OUT=self.out))
        try:
            self.assertEqual(p.stdout.read(1), bytes([120]))
            p.stdin.write(b"\x07" + rel.encode() + b"\0s@example.net\0joe@localhost\0")
            p.stdin.close()
            report = p.stdout.read()
        finally:
            if p.poll() is None:
                p.kill()
            p.wait()
        self.assertEqual(report, b"\x07Kdid 0+0+1\n\0", n)

    def test_vpopmail_domain_through_users_cdb(self):
        self.root.add_domain("example.com")
        self.assertEqual(queue(self.root, "x\n", "s@example.net", ["Joe.Doe@example.com"]), 0)
        send_once(self.root, self.out)
        with open(os.path.join(self.out, "argv")) as f:
            argv = f.read().split()
        # the wildcard assignment +example.com- of users/cdb, the rest of LOCAL as EXT
        self.assertEqual(argv[:7], ["example.com", self.root.domain_dir("example.com"),
                                    "example.com-Joe.Doe", "-", "Joe.Doe", "example.com", "s@example.net"])

    def test_virtualdomains_envnoathost_percenthack(self):
        self.root.write_control("virtualdomains", "example.com:example.com\n")
        self.root.write_control("percenthack", "localhost\n")
        self.assertEqual(queue(self.root, "x\n", "s@example.net",
                               ["joe@Example.COM", "ann", "bob%localhost@localhost"]), 0)
        send_once(self.root, self.out)
        self.assertEqual(len(delivered(self.out, "example.com-joe@Example.COM")), 1)
        self.assertEqual(len(delivered(self.out, "ann@localhost")), 1)
        self.assertEqual(len(delivered(self.out, "bob@localhost")), 1)

    def test_bounce_in_qmails_format(self):
        self.root.write_control("virtualdomains", "example.com:failvd\n")
        self.root.write_control("concurrencylocal", "1\n")  # paragraphs in recipient order
        self.assertEqual(queue(self.root, "Subject: orig\n\nbody\n", "sender@localhost",
                               ["failjoe@localhost", "ok@localhost", "failx@example.com"]), 0)
        log = send_once(self.root, self.out, now=T0)
        self.assertEqual(len(delivered(self.out, "ok@localhost")), 1)
        bounces = delivered(self.out, "sender@localhost")
        self.assertEqual(len(bounces), 1, log)
        b = bounces[0].decode()
        head, _, orig = b.partition("\n--- Below this line is a copy of the message.\n\n")
        self.assertRegex(head, r"^Return-Path: <>\nReceived: \(qmail \d+ invoked by uid \d+\); "
                               r"15 Jan 2027 08:00:00 -0000\n")
        body = head[head.index("Date: "):]
        self.assertEqual(body, (
            "Date: 15 Jan 2027 08:00:00 -0000\n"
            "From: MAILER-DAEMON@localhost\n"
            "To: sender@localhost\n"
            "Subject: failure notice\n"
            "\n"
            "Hi. This is the qmail-send program at localhost.\n"
            "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
            "This is a permanent error; I've given up. Sorry it didn't work out.\n"
            "\n"
            "<failjoe@localhost>:\n"
            "Sorry, no mailbox here by that name. (#5.1.1)\n"
            "\n"
            "<failx@example.com>:\n"
            "Sorry, no mailbox here by that name. (#5.1.1)\n"))
        self.assertRegex(orig, r"^Return-Path: <sender@localhost>\nReceived: \(qmail \d+ invoked by uid \d+\); "
                               r".*\nSubject: orig\n\nbody\n$")
        self.assertRegex(log, r"delivery \d+: failure: Sorry,_no_mailbox_here_by_that_name._\(#5.1.1\)/\n")
        self.assertRegex(log, r"bounce msg \d+ qp \d+\n")
        self.assertEqual(queue_files(self.root), [])

    def test_a_bounce_cut_short_is_not_queued(self):
        # qmail-send gives qmail-queue the bounce first and its envelope only
        # after the last byte, as qmail does: if qmail-send dies part way,
        # qmail-queue has no envelope and queues nothing. This qmail-queue
        # kills qmail-send after the first bytes and records the envelope it
        # then finds.
        seen = os.path.join(self.root.dir, "envelope-seen")
        wrapper = os.path.join(self.root.dir, "qq-kills-parent")
        with open(wrapper, "w") as f:
            f.write("#!/usr/bin/env python3\n"
                    "import os, signal\n"
                    "os.read(0, 1000)\n"
                    "os.kill(os.getppid(), signal.SIGKILL)\n"
                    "while os.read(0, 65536): pass\n"
                    "env = b''\n"
                    "while True:\n"
                    "    b = os.read(1, 65536)\n"
                    "    if not b: break\n"
                    "    env += b\n"
                    f"open({seen!r}, 'wb').write(env)\n")
        os.chmod(wrapper, 0o755)
        big = "Subject: big\n\n" + ("x" * 999 + "\n") * 1000  # far more than a pipe holds
        self.assertEqual(queue(self.root, big, "sender@localhost", ["failjoe@localhost"]), 0)
        env = {"VQMAIL_SEND_ONCE": "1", "STUB_OUT": self.out, "VQMAIL_NOW": str(T0), "QMAILQUEUE": wrapper}
        p = subprocess.Popen([self.root.bin("qmail-start"), "./Maildir/"], env=self.root.env(**env),
                             stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            p.wait(timeout=60)
            wait_until(lambda: os.path.exists(seen), 30, what="the stand-in qmail-queue")
        finally:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        with open(seen, "rb") as f:
            self.assertEqual(f.read(), b"")

    def test_double_and_triple_bounce(self):
        self.assertEqual(queue(self.root, "x\n", "", ["failjoe@localhost"]), 0)
        log = send_once(self.root, self.out, now=T0)
        dbl = delivered(self.out, "postmaster@localhost")
        self.assertEqual(len(dbl), 1, log)
        d = dbl[0].decode()
        self.assertIn("Return-Path: <#@[]>\n", d)
        self.assertIn("To: postmaster@localhost\n", d)
        self.assertIn("Hi. This is the qmail-send program at localhost.\n"
                      "I tried to deliver a bounce message to this address, but the bounce bounced!\n"
                      "\n<failjoe@localhost>:\n", d)
        self.assertIn("--- Below this line is the original bounce.\n\nReturn-Path: <>\n", d)
        self.assertEqual(queue(self.root, "x\n", "#@[]", ["failjoe@localhost"]), 0)
        log = send_once(self.root, self.out, now=T0)
        self.assertRegex(log, r"triple bounce: discarding bounce/\d+\n")
        self.assertEqual(len(delivered(self.out, "postmaster@localhost")), 1)
        self.assertEqual(queue_files(self.root), [])

    def test_remote_channel_reports(self):
        self.assertEqual(queue(self.root, "x\n", "s@localhost",
                               ["ok@example.net", "hard@example.net"]), 0)
        log = send_once(self.root, self.out, now=T0)
        with open(os.path.join(self.out, "remote")) as f:
            calls = sorted(f.read().splitlines())
        self.assertEqual(calls, ["example.net s@localhost hard@example.net",
                                 "example.net s@localhost ok@example.net"])
        self.assertRegex(log, r"delivery \d+: success: 127.0.0.1_accepted_message./Remote_host_said:_250_ok/\n")
        b = delivered(self.out, "s@localhost")
        self.assertEqual(len(b), 1)
        self.assertIn(b"<hard@example.net>:\n127.0.0.1 does not like recipient.\n"
                      b"Remote host said: 550 no such user\nGiving up on 127.0.0.1.\n\n", b[0])
        self.assertEqual(queue_files(self.root), [])

    def test_deferral_schedule_and_lifetime(self):
        self.assertEqual(queue(self.root, "x\n", "s@localhost", ["soft@example.net", "deferme@localhost"]), 0)
        log = send_once(self.root, self.out, now=T0)
        self.assertRegex(log, r"deferral: Sorry,_I_wasn't_able_to_establish_an_SMTP_connection._\(#4.4.1\)/\n")
        self.assertRegex(log, r"deferral: Temporary_stub_failure._\(#4.3.0\)/\n")
        n = int(re.search(r"new msg (\d+)", log).group(1))
        s = str(n % 23)
        info = self.root.q("queue", "info", s, str(n))
        self.assertEqual(os.stat(info).st_mtime, T0)  # birth
        # next retry: birth + (isqrt(0) + 20)^2 remote, + 10^2 local
        self.assertEqual(os.stat(self.root.q("queue", "remote", s, str(n))).st_mtime, T0 + 400)
        self.assertEqual(os.stat(self.root.q("queue", "local", s, str(n))).st_mtime, T0 + 100)
        # not due yet: nothing happens
        log = send_once(self.root, self.out, now=T0 + 99)
        self.assertNotIn("starting delivery", log)
        # local due at +100, remote not
        log = send_once(self.root, self.out, now=T0 + 100)
        self.assertIn("to local deferme@localhost", log)
        self.assertNotIn("to remote", log)
        self.assertEqual(os.stat(self.root.q("queue", "local", s, str(n))).st_mtime, T0 + 400)
        # ALRM-like: every pending delivery is retried after the lifetime, then bounced
        log = send_once(self.root, self.out, now=T0 + 86401)
        b = delivered(self.out, "s@localhost")
        self.assertEqual(len(b), 1, log)
        self.assertIn(b"<soft@example.net>:\nSorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n"
                      b"I'm not going to try again; this message has been in the queue too long.\n\n", b[0])
        self.assertIn(b"<deferme@localhost>:\nTemporary stub failure. (#4.3.0)\n"
                      b"I'm not going to try again; this message has been in the queue too long.\n\n", b[0])
        self.assertEqual(queue_files(self.root), [])

    def test_unreadable_info_is_retried_not_skipped(self):
        # qmail-send cannot read info/ at start: it says so and tries again
        # (qmail's 10-second wait, cut short by ALRM); the messages already
        # there are then scheduled, not left until the next restart.
        self.assertEqual(queue(self.root, "x\n", "s@localhost", ["soft@example.net"]), 0)
        log = send_once(self.root, self.out, now=T0)
        n = int(re.search(r"new msg (\d+)", log).group(1))
        broken = self.root.q("queue", "info", str((n + 1) % 23))
        os.rmdir(broken)
        with open(broken, "w"):
            pass  # a file where a directory belongs: opendir fails
        logf = open(os.path.join(self.root.dir, "send2.log"), "w+b")
        self.addCleanup(logf.close)
        env = {"VQMAIL_SEND_ONCE": "1", "STUB_OUT": self.out, "VQMAIL_NOW": str(T0 + 400)}
        p = subprocess.Popen([self.root.bin("qmail-start"), "./Maildir/"], stderr=logf,
                             env=self.root.env(**env), start_new_session=True)

        def text():
            logf.seek(0)
            return logf.read().decode(errors="replace")

        try:
            wait_until(lambda: "alert: unable to opendir info, sleeping..." in text(), 10,
                       what="the alert")
            self.assertIsNone(p.poll())
            os.unlink(broken)
            os.mkdir(broken)
            p.send_signal(signal.SIGALRM)
            self.assertEqual(p.wait(timeout=20), 0)
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        self.assertIn(f"starting delivery 1: msg {n} to remote soft@example.net", text())

    def test_missing_qmail_remote_defers_never_bounces(self):
        os.unlink(self.root.q("bin", "qmail-remote"))
        self.assertEqual(queue(self.root, "x\n", "s@localhost", ["u@example.net"]), 0)
        log = send_once(self.root, self.out, now=T0)
        self.assertIn("deferral: Unable_to_run_qmail-remote:_file_does_not_exist./\n", log)
        self.assertEqual(delivered(self.out, "s@localhost"), [])
        self.assertEqual(len([f for f in queue_files(self.root) if f.startswith("remote/")]), 1)
        # Past queuelifetime too (the host's fault, not the message's): still
        # a deferral, no bounce, the message kept.
        log = send_once(self.root, self.out, now=T0 + 30 * 86400)
        self.assertIn("deferral: Unable_to_run_qmail-remote:_file_does_not_exist./\n", log)
        self.assertNotIn("not_going_to_try_again", log)
        self.assertEqual(delivered(self.out, "s@localhost"), [])
        self.assertEqual(len([f for f in queue_files(self.root) if f.startswith("remote/")]), 1)
        # A qmail-remote that runs and exits 111 (a wrapper that failed) is
        # an ordinary temporary failure: bounced once the message is too old.
        install_stub(self.root, "qmail-remote", "#!/bin/sh\nexit 111\n")
        log = send_once(self.root, self.out, now=T0 + 31 * 86400)
        self.assertIn("Unable_to_run_qmail-remote./I'm_not_going_to_try_again", log)
        self.assertEqual(len(delivered(self.out, "s@localhost")), 1)

    def test_qread_and_qstat(self):
        # The sender has bytes that are not printable (and not UTF-8): one _ each.
        env = b"Fs\xe4\x01@localhost\0Tsoft@example.net\0Tok@localhost\0Tdeferme@localhost\0\0"
        self.assertEqual(queue_raw(self.root, "x\n", env), 0)
        q = self.root.run("qmail-qstat").stdout.decode()
        self.assertEqual(q, "messages in queue: 1\nmessages in queue but not yet preprocessed: 1\n")
        send_once(self.root, self.out, now=T0)
        out = self.root.run("qmail-qread").stdout.decode()
        self.assertRegex(out, r"^15 Jan 2027 08:00:00 GMT  #\d+  \d+  <s__@localhost> \n"
                              r"  done\tlocal\tok@localhost\n\tlocal\tdeferme@localhost\n\tremote\tsoft@example.net\n$")
        # No queue at all (a wrong QMAIL_HOME): an error, not an empty queue.
        for prog in ("qmail-qread", "qmail-qstat"):
            r = subprocess.run([self.root.bin(prog)], capture_output=True, timeout=30,
                               env=self.root.env(QMAIL_HOME=os.path.join(self.root.dir, "nowhere")))
            self.assertEqual(r.returncode, 111, prog)
            self.assertIn(b"unable to read the queue: file does not exist", r.stdout + r.stderr)
        # Output that cannot be written is not a queue that cannot be read; a
        # reader that stops early (`mailq | head -0`) gets no complaint.
        for prog in ("qmail-qread", "qmail-qstat"):
            with open("/dev/full", "wb") as full:
                r = subprocess.run([self.root.bin(prog)], stdout=full, stderr=subprocess.PIPE,
                                   timeout=30, env=self.root.env())
            self.assertEqual((r.returncode, r.stderr),
                             (111, f"{prog}: fatal: unable to write output: out of disk space\n".encode()))
            rd, wr = os.pipe()
            os.close(rd)
            try:
                r = subprocess.run([self.root.bin(prog)], stdout=wr, stderr=subprocess.PIPE,
                                   timeout=30, env=self.root.env())
            finally:
                os.close(wr)
            self.assertEqual((r.returncode, r.stderr), (0, b""), prog)

    def test_netqmail_written_queue_is_delivered(self):
        # A message as netqmail's qmail-queue leaves it: mess/S/N, intd/N + todo/N.
        n = 4242
        q = self.root.q("queue")
        with open(os.path.join(q, "mess", str(n % 23), str(n)), "wb") as f:
            f.write(b"Received: (qmail 1 invoked by uid 0); 1 Jan 2020 00:00:00 -0000\nSubject: old\n\nx\n")
        for d in ("intd", "todo"):
            with open(os.path.join(q, d, str(n)), "wb") as f:
                f.write(b"u0\0p1\0Fold@localhost\0Tjoe@localhost\0")
        log = send_once(self.root, self.out, now=T0)
        self.assertIn("new msg 4242\n", log)
        self.assertEqual(len(delivered(self.out, "joe@localhost")), 1)
        self.assertEqual(queue_files(self.root), [])
        # And a preprocessed one (state S5): info + local with one address done.
        with open(os.path.join(q, "mess", str(n % 23), str(n)), "wb") as f:
            f.write(b"Subject: s5\n\nx\n")
        with open(os.path.join(q, "info", str(n % 23), str(n)), "wb") as f:
            f.write(b"Fold@localhost\0")
        with open(os.path.join(q, "local", str(n % 23), str(n)), "wb") as f:
            f.write(b"Ddone@localhost\0Tann@localhost\0")
        send_once(self.root, self.out, now=T0)
        self.assertEqual(len(delivered(self.out, "ann@localhost")), 1)
        self.assertEqual(delivered(self.out, "done@localhost"), [])
        self.assertEqual(queue_files(self.root), [])

    def test_an_empty_bounce_file_sends_no_bounce(self):
        # A message whose recipients are all done, with an empty bounce/N (no
        # failure was recorded in it): it ends without a bounce naming no one.
        n = 4245
        q = self.root.q("queue")
        for d, data in (("mess", b"Subject: t\n\nx\n"), ("info", b"Fs@localhost\0"),
                        ("local", b"Djoe@localhost\0")):
            with open(os.path.join(q, d, str(n % 23), str(n)), "wb") as f:
                f.write(data)
        open(os.path.join(q, "bounce", str(n)), "wb").close()
        log = send_once(self.root, self.out, now=T0)
        self.assertNotIn("bounce msg", log)
        self.assertEqual(delivered(self.out, "s@localhost"), [])
        self.assertEqual(queue_files(self.root), [])

    def test_a_damaged_todo_is_left_with_a_warning(self):
        # An envelope qmail-queue never writes (an unknown record, no sender)
        # is not delivered in part: it stays in todo/ with qmail's warning,
        # and the messages behind it go on.
        q = self.root.q("queue")
        bad = {4243: b"u0\0p1\0Fold@localhost\0Tkim@localhost\0Xpostmaster@localhost\0",
               4244: b"u0\0p1\0Tlee@localhost\0"}
        for n, env in bad.items():
            with open(os.path.join(q, "mess", str(n % 23), str(n)), "wb") as f:
                f.write(b"Subject: damaged\n\nx\n")
            for d in ("intd", "todo"):
                with open(os.path.join(q, d, str(n)), "wb") as f:
                    f.write(env)
        self.assertEqual(queue(self.root, "Subject: fine\n\nx\n", "a@localhost", ["joe@localhost"]), 0)
        log = send_once(self.root, self.out, now=T0)
        self.assertIn("warning: unknown record type in todo/4243\n", log)
        self.assertIn("warning: no sender record in todo/4244; will try again later\n", log)
        self.assertNotIn("new msg 4243", log)
        self.assertNotIn("new msg 4244", log)
        for who in ("kim", "lee", "postmaster"):
            self.assertEqual(delivered(self.out, f"{who}@localhost"), [])
        self.assertEqual(len(delivered(self.out, "joe@localhost")), 1)
        self.assertEqual(sorted(os.listdir(os.path.join(q, "todo"))), ["4243", "4244"])
        # Repaired by hand, it is delivered.
        for d in ("intd", "todo"):
            with open(os.path.join(q, d, "4244"), "wb") as f:
                f.write(b"u0\0p1\0Fold@localhost\0Tlee@localhost\0")
        send_once(self.root, self.out, now=T0)
        self.assertEqual(len(delivered(self.out, "lee@localhost")), 1)

    def test_stale_files_cleaned_after_36_hours(self):
        q = self.root.q("queue")
        # qmail-queue killed in S2/S3, and a stale pid file
        for n in (101, 102):
            p = os.path.join(q, "mess", str(n % 23), str(n))
            with open(p, "wb") as f:
                f.write(b"partial")
            os.utime(p, (T0, T0))
        with open(os.path.join(q, "intd", "102"), "wb") as f:
            f.write(b"u0\0p1\0F\0")
        pidf = os.path.join(q, "pid", "123.1.1")
        open(pidf, "wb").close()
        os.utime(pidf, (T0, T0))
        send_once(self.root, self.out, now=T0 + 129600)
        self.assertEqual(len(queue_files(self.root)), 4)
        send_once(self.root, self.out, now=T0 + 129601)
        self.assertEqual(queue_files(self.root), [])


class Daemon(RootTestCase):
    """qmail-start as a daemon: the trigger, ALRM, HUP and TERM."""

    def setUp(self):
        super().setUp()
        self.out = setup_stubs(self.root)
        self.log = open(os.path.join(self.root.dir, "send.log"), "w+b")
        self.proc = subprocess.Popen([self.root.bin("qmail-start"), "./Maildir/"], stderr=self.log,
                                     stdin=subprocess.DEVNULL,
                                     env=self.root.env(STUB_OUT=self.out), start_new_session=True)
        self.addCleanup(self.stop)
        wait_until(lambda: "status: local 0/10" in self.text(), 10, what="qmail-send start")

    def text(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def test_trigger_alrm_hup_term(self):
        # the trigger: delivered without waiting for the 25-minute rescan
        self.assertEqual(queue(self.root, "x\n", "s@localhost", ["joe@localhost"]), 0)
        wait_until(lambda: delivered(self.out, "joe@localhost"), 10, what="delivery via trigger")
        # a deferral is retried at once on ALRM
        self.assertEqual(queue(self.root, "x\n", "s@localhost", ["soft@example.net"]), 0)
        wait_until(lambda: self.text().count("deferral: Sorry,_I_wasn't") == 1, 10, what="first try")
        self.proc.send_signal(signal.SIGALRM)
        wait_until(lambda: self.text().count("to remote soft@example.net") == 2, 10, what="retry on ALRM")
        # HUP rereads locals
        self.root.write_control("locals", "localhost\nnew.test\n")
        self.proc.send_signal(signal.SIGHUP)
        # (the flag is set before qmail-send's poll returns, and handled before todo)
        self.assertEqual(queue(self.root, "x\n", "s@localhost", ["joe@new.test"]), 0)
        wait_until(lambda: delivered(self.out, "joe@new.test"), 10, what="delivery to a new local")
        # TERM: exits
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=10), 0)
        self.assertTrue(self.text().rstrip().endswith("status: exiting"))

    def test_term_lets_deliveries_in_progress_finish(self):
        self.assertEqual(queue(self.root, "x\n", "s@localhost", ["slow@localhost"]), 0)
        wait_until(lambda: "to local slow@localhost" in self.text(), 10, what="delivery start")
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=10), 0)
        log = self.text()
        self.assertIn("exitasap", log)
        self.assertLess(log.index("delivery 1: success"), log.index("status: exiting"))
        self.assertEqual(len(delivered(self.out, "slow@localhost")), 1)
        self.assertEqual(queue_files(self.root), [])

    def test_term_with_a_logger_exits_at_once(self):
        import time
        self.stop()  # the daemon of setUp; this one logs through a logger program
        out = os.path.join(self.root.dir, "logger.out")
        p = subprocess.Popen([self.root.bin("qmail-start"), "./Maildir/", "sh", "-c", "exec cat > " + out],
                             stdin=subprocess.DEVNULL, env=self.root.env(STUB_OUT=self.out),
                             start_new_session=True)
        try:
            wait_until(lambda: os.path.exists(out) and b"status: local 0/10" in open(out, "rb").read(),
                       10, what="qmail-send start")
            t = time.monotonic()
            p.send_signal(signal.SIGTERM)
            self.assertEqual(p.wait(timeout=20), 0)
            self.assertLess(time.monotonic() - t, 5)
            wait_until(lambda: b"status: exiting" in open(out, "rb").read(), 10, what="the last log line")
        finally:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)

    def test_second_instance_refused(self):
        p = subprocess.run([self.root.bin("qmail-start"), "./Maildir/"], env=self.root.env(STUB_OUT=self.out),
                           capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"alert: cannot start: qmail-send is already running", p.stderr)


if __name__ == "__main__":
    unittest.main()
