"""IMAP for vpopmail users with Dovecot and vchkpw, as the README sets it up:
contrib/dovecot/vqmail.conf (with this test's paths and ports) and
contrib/dovecot/vchkpw-dovecot. A private Dovecot instance, on ports that are
not 143/993, so vchkpw must take the service from Dovecot's SERVICE."""
import imaplib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import unittest

from harness import IN_CI, REPO, Root, need_tool, wait_until

REPLY = "/usr/lib/dovecot/checkpassword-reply"
NOBODY = 65534
MSG = b"From: alice@example.org\nTo: joe@example.test\nSubject: hello imap\n\nbody\n"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class DovecotImap(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        dovecot = need_tool("dovecot")
        if not os.path.exists(REPLY):
            if IN_CI:
                raise AssertionError(f"{REPLY} is required in CI (dovecot-imapd)")
            raise unittest.SkipTest(f"{REPLY} not installed")
        cls.root = r = Root()
        r.add_domain("example.test")
        r.add_user("joe@example.test", "joe-pass1")
        r.add_user("ann@example.test", "ann-pass1")
        r.run("vmoduser", "-i", "ann@example.test", check=True)
        r.add_user("rid@example.test", "rid-pass1")
        r.run("vmoduser", "-r", "rid@example.test", check=True)
        with open(r.v("etc", "defaultdomain"), "w") as f:
            f.write("example.test\n")
        # 127.0.0.1 would be a webmail address (NO_WEBMAIL instead of NO_IMAP).
        with open(r.v("etc", "webmail-ips"), "w") as f:
            f.write("192.0.2.1\n")
        with open(os.path.join(r.maildir("joe", "example.test"), "new", "1.a.h"), "wb") as f:
            f.write(MSG)
        # The domains' owner (vpopmail on a real host) runs the password check
        # and the mail processes: here nobody, whose files all of this becomes.
        dc = os.path.join(r.dir, "dovecot")
        os.mkdir(dc)
        wrapper = os.path.join(dc, "vchkpw-dovecot")
        shutil.copy(os.path.join(REPO, "contrib", "dovecot", "vchkpw-dovecot"), wrapper)
        # ... and so the owner users/assign gives the domain.
        r.set_domain_owner(NOBODY, NOBODY)
        os.chmod(r.dir, 0o755)
        for top, dirs, files in os.walk(r.dir):
            for n in dirs + files:
                os.lchown(os.path.join(top, n), NOBODY, NOBODY)
        os.chown(wrapper, 0, 0)
        os.chown(dc, 0, 0)
        cls.imap_port, cls.imaps_port = free_port(), free_port()
        with open(os.path.join(REPO, "contrib", "dovecot", "vqmail.conf")) as f:
            conf = f.read()
        cert = r.control("servercert.pem")
        for old, new in [
            ("listen = *, ::", "listen = 127.0.0.1"),
            ("</var/qmail/control/servercert.pem", "<" + cert),
            ("/usr/local/lib/vqmail/vchkpw-dovecot", wrapper),
            ("user = vpopmail", "user = nobody"),
        ]:
            if old not in conf:
                raise AssertionError(f"contrib/dovecot/vqmail.conf has no {old!r}")
            conf = conf.replace(old, new)
        conf += f"""
base_dir = {dc}/run
state_dir = {dc}/state
log_path = {dc}/dovecot.log
instance_name = vqmail-test-{cls.imap_port}
import_environment = TZ VCHKPW={r.bin("vchkpw")} VPOPMAIL_HOME={r.vpop} QMAIL_HOME={r.qmail}
service imap-login {{
  inet_listener imap {{
    port = {cls.imap_port}
  }}
  inet_listener imaps {{
    port = {cls.imaps_port}
    ssl = yes
  }}
}}
"""
        cls.conf = os.path.join(dc, "dovecot.conf")
        with open(cls.conf, "w") as f:
            f.write(conf)
        cls.proc = subprocess.Popen([dovecot, "-F", "-c", cls.conf], stdin=subprocess.DEVNULL,
                                    stdout=open(os.path.join(dc, "fg.out"), "wb"),
                                    stderr=subprocess.STDOUT, start_new_session=True)

        def listening():
            if cls.proc.poll() is not None:
                raise AssertionError("dovecot exited: " + open(os.path.join(dc, "fg.out")).read())
            try:
                socket.create_connection(("127.0.0.1", cls.imaps_port), timeout=1).close()
                return True
            except OSError:
                return False
        try:
            wait_until(listening, timeout=30, what="dovecot's listeners")
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        p = getattr(cls, "proc", None)
        if p is not None and p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=20)
        cls.root.cleanup()

    def login(self, user, password, imaps=False):
        if imaps:
            c = imaplib.IMAP4_SSL("127.0.0.1", self.imaps_port, ssl_context=tls_context(), timeout=30)
        else:
            c = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=30)
            c.starttls(tls_context())
        self.addCleanup(c.shutdown)
        c.login(user, password)
        return c

    def refused(self, user, password):
        with self.assertRaises(imaplib.IMAP4.error) as e:
            self.login(user, password)
        return str(e.exception)

    def open_smtp(self):
        try:
            with open(self.root.v("etc", "open-smtp")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def test_login_forms_read_the_maildir(self):
        c = self.login("joe@example.test", "joe-pass1", imaps=True)
        self.assertEqual(c.select("INBOX"), ("OK", [b"1"]))
        typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(typ, "OK")
        self.assertIn(b"Subject: hello imap", data[0][1])
        for user in ("joe%example.test", "joe/example.test", "JOE@Example.Test", "joe"):
            c = self.login(user, "joe-pass1")
            self.assertEqual(c.select("INBOX", readonly=True), ("OK", [b"1"]), user)

    def test_refusals_are_authentication_failures(self):
        # A wrong password, an unknown user and NO_IMAP: "authentication
        # failed" (status 1 for Dovecot), not a temporary failure. ann's good
        # password is refused only when vchkpw takes the login for IMAP.
        for user, password in (("joe@example.test", "wrong"), ("nobody@example.test", "x1"),
                               ("ann@example.test", "ann-pass1")):
            self.assertIn("AUTHENTICATIONFAILED", self.refused(user, password), user)

    def test_an_imap_login_opens_the_relay(self):
        # NO_RELAY first: its login opens nothing.
        self.login("rid@example.test", "rid-pass1")
        self.assertNotIn("127.0.0.1:", self.open_smtp())
        self.login("joe@example.test", "joe-pass1")
        self.assertIn("127.0.0.1:allow,RELAYCLIENT=", self.open_smtp())
