"""Helpers for the vchkpw / relay tests: vpopmail domains and users in a Root."""
import functools
import os
import subprocess

from harness import RootTestCase, need_tool

NO_POP, NO_WEBMAIL, NO_IMAP, NO_RELAY, NO_SMTP = 0x02, 0x04, 0x08, 0x20, 0x800


@functools.lru_cache(maxsize=None)
def crypt6(password):
    """SHA-512-crypt with a fixed salt (memoized: the tests reuse passwords)."""
    r = subprocess.run(["openssl", "passwd", "-6", "-salt", "e2esalt", password],
                       capture_output=True, text=True, check=True, timeout=30)
    return r.stdout.strip()


class AuthCase(RootTestCase):
    """A root with vpopmail domains and users written the way vadddomain and
    vadduser leave them (so these tests do not depend on those programs)."""

    def setUp(self):
        super().setUp()
        need_tool("openssl")

    # -- a vpopmail installation, written the way vadddomain/vadduser leave it --
    def add_domain(self, dom, owner=None):
        """A domain of this process's account, or of owner (uid, gid), whose
        directory it then is."""
        d = self.root.domain_dir(dom)
        os.makedirs(d, mode=0o750)
        uid, gid = owner or (os.getuid(), os.getgid())
        if owner:
            os.chown(d, uid, gid)
        assign = self.root.q("users", "assign")
        with open(assign) as f:
            lines = [l for l in f.read().splitlines() if l != "."]
        lines.append(f"+{dom}-:{dom}:{uid}:{gid}:{d}:-::")
        with open(assign, "w") as f:
            f.write("\n".join(sorted(lines)) + "\n.\n")
        newu = self.root.q("bin", "qmail-newu")
        if os.path.exists(newu):
            self.root.run("qmail-newu", check=True)

    def user(self, name, dom, password, flags=0, clear=None, hashed=None, dir=None):
        d = self.root.domain_dir(dom)
        udir = dir if dir is not None else os.path.join(d, name)
        h = crypt6(password) if hashed is None else hashed
        line = f"{name}:{h}:1:{flags}:{name}:{udir}:NOQUOTA"
        if clear is not None:
            line += f":{clear}"
        with open(os.path.join(d, "vpasswd"), "a") as f:
            f.write(line + "\n")
        cdb = os.path.join(d, "vpasswd.cdb")
        if os.path.exists(cdb):
            os.unlink(cdb)  # rebuilt from vpasswd on the next lookup
        return udir
