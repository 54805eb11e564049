"""Test harness for vqmail's end-to-end tests.

Every test runs the real binaries inside a temporary root made by
scripts/setup-root, and talks to the network programs under the real tcpserver
(ucspi-tcp) on 127.0.0.1 with real clients. Every wait has a bound; every
server a test starts is stopped by its pid.

    from harness import Root, TcpServer, wait_until, need_tool
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _default_bin():
    """The newest debug build (scripts/bin-dir: make puts it in target/TRIPLE/debug)."""
    r = subprocess.run([os.path.join(REPO, "scripts", "bin-dir"), "debug"], capture_output=True, text=True)
    return r.stdout.strip() or os.path.join(REPO, "target", "debug")


BIN = os.environ.get("VQMAIL_BIN") or _default_bin()
IN_CI = os.environ.get("CI", "") not in ("", "0", "false")

VPOP_PROGRAMS = {
    "vadddomain", "vdeldomain", "vadduser", "vdeluser", "vpasswd", "vmoduser",
    "vsetuserquota", "vuserinfo", "valias", "vchkpw", "vdelivermail",
    "relay-open", "clearopensmtp", "vdominfo", "vaddaliasdomain",
}


def need_tool(name):
    """Skips the test when an external tool is missing (fails in CI instead)."""
    if shutil.which(name):
        return shutil.which(name)
    if IN_CI:
        raise AssertionError(f"{name} is required in CI (installed by .ci/run)")
    raise unittest.SkipTest(f"{name} not installed")


def need_module(name):
    """Imports a Python module, skipping (or failing in CI) when it is missing."""
    try:
        return __import__(name)
    except ImportError:
        if IN_CI:
            raise AssertionError(f"python module {name} is required in CI")
        raise unittest.SkipTest(f"python module {name} not installed")


def wait_until(cond, timeout=10.0, interval=0.02, what="condition"):
    """Polls cond() until it returns a true value; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def chown_tree(top, uid, gid):
    """Gives top and everything below it (links themselves) to uid:gid."""
    os.lchown(top, uid, gid)
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            os.lchown(os.path.join(d, n), uid, gid)


def open_to_all(top):
    """Lets every account read everything below top and pass its directories
    (group and others get r-x; nothing becomes writable)."""
    os.chmod(top, os.stat(top).st_mode | 0o055)
    for d, dirs, files in os.walk(top):
        for n in dirs + files:
            p = os.path.join(d, n)
            if not os.path.islink(p):
                os.chmod(p, os.stat(p).st_mode | 0o055)


def flood_until_gone(sock, data, pid, what, timeout=30):
    """Sends data on sock from a thread without reading any reply, until
    process pid is gone; returns the seconds that took."""
    import threading

    def flood():
        try:
            sock.sendall(data)
        except (OSError, ValueError):
            pass  # the server is gone
    t = threading.Thread(target=flood, daemon=True)
    t0 = time.monotonic()
    t.start()
    wait_until(lambda: not os.path.exists(f"/proc/{pid}"), timeout=timeout, what=what)
    took = time.monotonic() - t0
    t.join(15)
    return took


def children(pid):
    """The pids whose parent is pid (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            if int(st.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d))
    return out


class Root:
    """A complete installation in a temporary directory (scripts/setup-root)."""

    def __init__(self, me="localhost", keep=False):
        self.dir = tempfile.mkdtemp(prefix="vqmail-")
        self.keep = keep or bool(os.environ.get("VQMAIL_KEEP"))
        self.qmail = os.path.join(self.dir, "var", "qmail")
        self.vpop = os.path.join(self.dir, "home", "vpopmail")
        env = dict(os.environ, VQMAIL_BIN=BIN, VQMAIL_ME=me)
        r = subprocess.run([os.path.join(REPO, "scripts", "setup-root"), self.dir],
                           env=env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError(f"setup-root failed: {r.stdout}{r.stderr}")
        # Tests never ask the system resolver: qmail-smtpd's sender domain check
        # (control/mfcheck, on in the hosting profile) is off unless a test turns
        # it on together with its own DNS server on 127.0.0.1.
        self.write_control("mfcheck", "0\n")
        # Any other lookup (qmail-remote for a bounce to an outside domain)
        # goes to a port on 127.0.0.1 where nothing answers, unless the test
        # names its own server (DNSCACHEIP or control/nameservers).
        self.write_control("nameservers", "127.0.0.1:1\n")

    # -- paths ----------------------------------------------------------------
    def q(self, *p):
        return os.path.join(self.qmail, *p)

    def v(self, *p):
        return os.path.join(self.vpop, *p)

    def control(self, name):
        return self.q("control", name)

    def bin(self, prog):
        if prog in VPOP_PROGRAMS:
            return self.v("bin", prog)
        return self.q("bin", prog)

    def domain_dir(self, domain):
        return self.v("domains", domain)

    def maildir(self, user, domain):
        return os.path.join(self.domain_dir(domain), user, "Maildir")

    # -- files ----------------------------------------------------------------
    def write_control(self, name, text):
        with open(self.control(name), "w") as f:
            f.write(text)

    def read(self, *p):
        with open(os.path.join(self.dir, *p), "rb") as f:
            return f.read()

    # -- programs -------------------------------------------------------------
    def env(self, **extra):
        e = dict(os.environ)
        e["QMAIL_HOME"] = self.qmail
        e["VPOPMAIL_HOME"] = self.vpop
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def run(self, prog, *args, input=None, env=None, timeout=60, check=False, pass_fds=(), cwd=None):
        """Runs a program of this root; returns CompletedProcess (bytes)."""
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run([self.bin(prog), *args], input=input, capture_output=True,
                           env=self.env(**(env or {})), timeout=timeout, pass_fds=pass_fds,
                           cwd=cwd)
        if check and r.returncode != 0:
            raise AssertionError(f"{prog} {args} exited {r.returncode}: {r.stdout!r} {r.stderr!r}")
        return r

    def add_domain(self, domain, password="pmpass1"):
        self.run("vadddomain", domain, password, check=True)

    def set_domain_owner(self, uid, gid, domain=None):
        """Gives users/assign's domain lines (all, or domain's) the owner
        uid:gid, and compiles users/cdb."""
        path = self.q("users", "assign")
        with open(path) as f:
            lines = f.read().splitlines(True)
        with open(path, "w") as f:
            for line in lines:
                fields = line.split(":")
                if line.startswith("+") and (domain is None or fields[0] == f"+{domain}-"):
                    fields[2:4] = [str(uid), str(gid)]
                f.write(":".join(fields))
        self.run("qmail-newu", check=True)

    def add_user(self, addr, password="secret1", *opts):
        self.run("vadduser", *opts, addr, password, check=True)

    def cleanup(self):
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


class TcpServer:
    """A program under the real tcpserver on 127.0.0.1, on a free port.

    The server is started with -1 (print the port) and stopped by its pid.
    """

    def __init__(self, root, argv, env=None, rules=None, opts=("-R", "-H", "-l", "localhost")):
        tcpserver = need_tool("tcpserver")
        cmd = [tcpserver, "-1", *opts]
        if rules:
            cmd += ["-x", rules]
        cmd += ["127.0.0.1", "0", *argv]
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log,
                                     env=root.env(**(env or {})), start_new_session=True)
        line = self._read_port_line(10.0)
        self.port = int(line)

    def _read_port_line(self, timeout):
        import select
        r, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not r:
            self.stop()
            raise AssertionError("tcpserver did not print its port")
        line = self.proc.stdout.readline().decode().strip()
        if not line.isdigit():
            self.stop()
            raise AssertionError(f"tcpserver failed to start: {line!r} {self.stderr()}")
        return line

    def stderr(self):
        self.log.seek(0)
        return self.log.read().decode(errors="replace")

    def stop(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


class RootTestCase(unittest.TestCase):
    """A test case with a fresh root per test; servers registered with
    self.serve() are stopped after the test."""

    root_me = "localhost"

    def setUp(self):
        self.root = Root(me=self.root_me)
        self._servers = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for s in self._servers:
            s.stop()
        self.root.cleanup()

    def serve(self, argv, **kw):
        s = TcpServer(self.root, argv, **kw)
        self._servers.append(s)
        return s


def maildir_messages(path):
    """The files in a Maildir's new/ and cur/ (sorted)."""
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        if os.path.isdir(d):
            out += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    return out
