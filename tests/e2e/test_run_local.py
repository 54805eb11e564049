"""`make run`'s services (scripts/run-local), with real clients: SMTP, submission
with STARTTLS and AUTH, SMTPS with CRAM-MD5 for the demo account, POP3 and POP3S,
delivery by qmail-send to the demo Maildir, and `stop`. The ports are moved by
VQMAIL_PORT_OFFSET to free ones."""
import os
import poplib
import random
import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

from harness import BIN, REPO, maildir_messages, need_tool, wait_until

PORTS = {"smtp": 2625, "submission": 2587, "smtps": 2465, "pop3": 2110, "pop3s": 2995}


def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_offset(test):
    """A VQMAIL_PORT_OFFSET whose five ports are all free (skips the test
    when none is found)."""
    for _ in range(50):
        off = random.randrange(20000, 40000)
        if all(free(p + off) for p in PORTS.values()):
            return off
    test.skipTest("no free ports")


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def no_verify():
    c = ssl.create_default_context()
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    return c


class RunLocal(unittest.TestCase):
    def setUp(self):
        need_tool("tcpserver")
        self.dir = tempfile.mkdtemp(prefix="vqmail-run-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        off = free_offset(self)
        self.port = {k: v + off for k, v in PORTS.items()}
        self.env = dict(os.environ, VQMAIL_BIN=BIN, VQMAIL_PORT_OFFSET=str(off))
        self.run_local = os.path.join(REPO, "scripts", "run-local")
        r = subprocess.run([self.run_local, "start", self.dir], env=self.env,
                           capture_output=True, text=True, timeout=120)
        self.addCleanup(subprocess.run, [self.run_local, "stop", self.dir], env=self.env,
                        capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.out = r.stdout
        for p in self.port.values():
            wait_until(lambda: listening(p), what=f"port {p}")

    def test_services_and_stop(self):
        for name, p in self.port.items():
            self.assertIn(f"{name}: 127.0.0.1:{p}", self.out)
        self.assertIn(f"swaks --server 127.0.0.1:{self.port['submission']} -tls", self.out)
        self.assertIn(f"Stop with: {self.run_local} stop {self.dir}\n", self.out)
        maildir = os.path.join(self.dir, "home", "vpopmail", "domains", "example.test", "demo", "Maildir")

        # SMTP: local mail is taken without AUTH; relaying is not.
        with smtplib.SMTP("127.0.0.1", self.port["smtp"], timeout=30) as s:
            s.ehlo("client.example")
            s.sendmail("postmaster@example.test", ["demo@example.test"],
                       "Subject: run-local one\r\n\r\nhello\r\n")
            s.mail("postmaster@example.test")
            code, _ = s.rcpt("someone@example.net")
            self.assertEqual(code, 553)

        # Submission: STARTTLS, then AUTH; then relaying is allowed.
        with smtplib.SMTP("127.0.0.1", self.port["submission"], timeout=30) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("starttls"))
            s.starttls(context=no_verify())
            s.ehlo("client.example")
            s.login("demo@example.test", "demo-pass1")
            s.mail("demo@example.test")
            code, _ = s.rcpt("someone@example.net")
            self.assertEqual(code, 250)
            s.rset()

        # SMTPS: TLS from the start; CRAM-MD5 works for the demo account.
        with smtplib.SMTP_SSL("127.0.0.1", self.port["smtps"], timeout=30, context=no_verify()) as s:
            s.ehlo("client.example")
            self.assertIn("CRAM-MD5", s.esmtp_features.get("auth", ""))
            s.user, s.password = "demo@example.test", "demo-pass1"
            code, _ = s.auth("CRAM-MD5", s.auth_cram_md5)
            self.assertEqual(code, 235)
            s.sendmail("demo@example.test", ["demo@example.test"],
                       "Subject: run-local two\r\n\r\nhello again\r\n")

        # qmail-send delivers both into the demo Maildir.
        wait_until(lambda: len(maildir_messages(maildir)) == 2, timeout=30, what="two deliveries")
        # qmail-pop3d lists only messages from before the current second.
        newest = max(os.stat(m).st_mtime for m in maildir_messages(maildir))
        wait_until(lambda: time.time() >= int(newest) + 1, timeout=5, what="the next second")

        # POP3 for demo, POP3S for postmaster (the poll limit counts per account).
        p = poplib.POP3("127.0.0.1", self.port["pop3"], timeout=30)
        p.user("demo@example.test")
        p.pass_("demo-pass1")
        count, _ = p.stat()
        self.assertEqual(count, 2)
        subjects = {line for i in (1, 2) for line in p.retr(i)[1] if line.startswith(b"Subject:")}
        self.assertEqual(subjects, {b"Subject: run-local one", b"Subject: run-local two"})
        p.quit()
        p = poplib.POP3_SSL("127.0.0.1", self.port["pop3s"], timeout=30, context=no_verify())
        p.user("postmaster@example.test")
        p.pass_("postmaster-pass1")
        self.assertEqual(p.stat()[0], 0)
        p.quit()

        # The POP3 logins opened relaying from 127.0.0.1 (POP-before-SMTP);
        # clearopensmtp runs every minute to expire it, and the printed way to
        # close it at once works.
        with open(os.path.join(self.dir, "pids", "clearopensmtp")) as f:
            os.kill(int(f.read()), 0)
        self.assertIn("clearopensmtp: every minute", self.out)

        def relays():
            with smtplib.SMTP("127.0.0.1", self.port["smtp"], timeout=30) as s:
                s.ehlo("client.example")
                s.mail("demo@example.test")
                return s.rcpt("someone@example.net")[0] == 250
        self.assertTrue(relays())
        vpop = os.path.join(self.dir, "home", "vpopmail")
        self.assertIn(": > $VPOPMAIL_HOME/etc/open-smtp; $VPOPMAIL_HOME/bin/clearopensmtp", self.out)
        open(os.path.join(vpop, "etc", "open-smtp"), "w").close()
        # (with the environment run-local prints for the admin tools)
        admin_env = dict(self.env, VPOPMAIL_HOME=vpop, QMAIL_HOME=os.path.join(self.dir, "var", "qmail"))
        subprocess.run([os.path.join(vpop, "bin", "clearopensmtp")], env=admin_env, check=True, timeout=60)
        self.assertFalse(relays())
        # The POP3 servers do not read the SMTP rules.
        with open(os.path.join(self.dir, "pids", "pop3")) as f:
            with open(f"/proc/{int(f.read())}/cmdline", "rb") as c:
                self.assertNotIn(b"tcp.smtp.cdb", c.read())

        # stop: every service is gone, sessions in progress too.
        held = socket.create_connection(("127.0.0.1", self.port["pop3"]), timeout=30)
        self.addCleanup(held.close)
        self.assertTrue(held.recv(512).startswith(b"+OK"))
        r = subprocess.run([self.run_local, "stop", self.dir], env=self.env,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        for port in self.port.values():
            wait_until(lambda: not listening(port), what=f"port {port} closed")
        held.settimeout(10)
        self.assertEqual(held.recv(512), b"")  # qmail-popup ended with its tcpserver
        self.assertEqual(os.listdir(os.path.join(self.dir, "pids")), [])


class RunLocalPortTaken(unittest.TestCase):
    def test_a_port_in_use_fails_loudly_and_starts_nothing(self):
        need_tool("tcpserver")
        d = tempfile.mkdtemp(prefix="vqmail-run-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        run_local = os.path.join(REPO, "scripts", "run-local")
        off = free_offset(self)
        env = dict(os.environ, VQMAIL_BIN=BIN, VQMAIL_PORT_OFFSET=str(off))
        # Another server already has the POP3 port.
        with socket.socket() as other:
            other.bind(("127.0.0.1", PORTS["pop3"] + off))
            other.listen(1)
            r = subprocess.run([run_local, "start", d], env=env, capture_output=True, text=True, timeout=120)
            self.addCleanup(subprocess.run, [run_local, "stop", d], env=env, capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 111, r.stdout + r.stderr)
            self.assertIn(f"run-local: pop3 could not listen on 127.0.0.1:{PORTS['pop3'] + off}:", r.stderr)
            self.assertIn("address already used", r.stderr)
            self.assertNotIn("vqmail is running", r.stdout)
        # What it had started is stopped again.
        self.assertEqual(os.listdir(os.path.join(d, "pids")), [])
        wait_until(lambda: not listening(PORTS["smtp"] + off), what="smtp port closed")


class RunLocalStalePidFile(unittest.TestCase):
    def test_stop_leaves_a_process_it_did_not_start_alone(self):
        # A pid file left by a run that ended may name another process (and
        # its process group) by now: stop signals only what it started.
        d = tempfile.mkdtemp(prefix="vqmail-run-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        os.makedirs(os.path.join(d, "pids"))
        other = subprocess.Popen(["sleep", "60"], start_new_session=True)
        self.addCleanup(other.wait, 10)
        self.addCleanup(other.kill)
        with open(os.path.join(d, "pids", "smtp"), "w") as f:
            f.write(f"{other.pid}\n")
        r = subprocess.run([os.path.join(REPO, "scripts", "run-local"), "stop", d],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIsNone(other.poll())
        self.assertEqual(os.listdir(os.path.join(d, "pids")), [])
