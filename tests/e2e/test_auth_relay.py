"""relay-open / clearopensmtp: open-smtp in vpopmail's format, tcp.smtp.cdb
byte-identical to the real tcprules, honoured by the real tcpserver."""
import os
import subprocess
import threading
import unittest

from harness import RootTestCase, need_tool, wait_until

T0 = 1_800_000_000
LINE = 'IP:allow,RELAYCLIENT="",RBLSMTPD=""\t'

TCP_SMTP = """# static rules
127.0.0.2:allow,RELAYCLIENT=""
10.1.2.3:deny
10.1.:deny
192.168.0-3.:allow,RELAYCLIENT="@relay",X='a "quoted" value'
172.16.5.10-12:allow,RBLSMTPD="-go away"
=mx.example.net:allow,RELAYCLIENT=""
=.example.org:deny
joe@127.0.0.9:allow,TCPREMOTEINFO="x"
:allow
"""


class Relay(RootTestCase):
    def setUp(self):
        super().setUp()
        need_tool("tcprules")

    def etc(self, name):
        return self.root.v("etc", name)

    def read(self, name):
        with open(self.etc(name), "rb") as f:
            return f.read()

    def write(self, name, text):
        with open(self.etc(name), "w") as f:
            f.write(text)

    def relay_open(self, *args, now=T0, env=None):
        e = {"VQMAIL_NOW": now}
        e.update(env or {})
        return self.root.run("relay-open", *args, env=e)

    def reference_cdb(self):
        """What the real tcprules makes of tcp.smtp + open-smtp cut at the TAB."""
        text = self.read("tcp.smtp")
        for line in self.read("open-smtp").splitlines():
            rule = line.split(b"\t")[0]
            if b"::" in rule:
                continue  # tcprules refuses IPv6 lines; we leave them out of the cdb
            text += rule + b"\n"
        out = os.path.join(self.root.dir, "ref.cdb")
        subprocess.run(["tcprules", out, out + ".tmp"], input=text, check=True, timeout=30)
        with open(out, "rb") as f:
            return f.read()

    def rulescheck(self, ip):
        need_tool("tcprulescheck")
        r = subprocess.run(["tcprulescheck", self.etc("tcp.smtp.cdb")], capture_output=True,
                           env=dict(os.environ, TCPREMOTEIP=ip), timeout=30)
        return r.stdout.decode()

    def test_open_writes_vpopmail_line_and_identical_cdb(self):
        self.write("tcp.smtp", TCP_SMTP)
        for i, ip in enumerate(["10.9.8.7", "::ffff:10.1.2.3", "10.1.4.4", "2001:db8::7"]):
            r = self.relay_open(ip, now=T0 + i)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(
            self.read("open-smtp").decode(),
            "".join(LINE.replace("IP", ip) + str(T0 + i) + "\n" for i, ip in
                    enumerate(["10.9.8.7", "10.1.2.3", "10.1.4.4", "2001:db8::7"])))
        self.assertEqual(self.read("tcp.smtp.cdb"), self.reference_cdb())
        self.assertFalse([f for f in os.listdir(self.root.v("etc")) if ".tmp." in f])

    def test_cdb_identical_for_the_hosting_profile_and_after_clear(self):
        r = self.root.run("relay-open", "-c")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.read("tcp.smtp.cdb"), self.reference_cdb())
        self.write("tcp.smtp", TCP_SMTP)
        self.assertEqual(self.relay_open("192.0.2.1").returncode, 0)
        self.assertEqual(self.read("tcp.smtp.cdb"), self.reference_cdb())
        self.assertEqual(self.root.run("clearopensmtp", env={"VQMAIL_NOW": T0 + 60}).returncode, 0)
        self.assertEqual(self.read("tcp.smtp.cdb"), self.reference_cdb())

    def test_tcprulescheck_agrees_with_what_we_wrote(self):
        self.write("tcp.smtp", TCP_SMTP)
        for ip in ["10.1.9.9", "10.1.2.3", "192.0.2.5"]:
            self.assertEqual(self.relay_open(ip).returncode, 0)
        # An open-smtp entry beats a prefix deny and the catch-all.
        self.assertEqual(self.rulescheck("10.1.9.9"),
                         "rule 10.1.9.9:\nset environment variable RELAYCLIENT=\n"
                         "set environment variable RBLSMTPD=\nallow connection\n")
        # A static line for the same IP wins.
        self.assertEqual(self.rulescheck("10.1.2.3"), "rule 10.1.2.3:\ndeny connection\n")
        self.assertEqual(self.rulescheck("10.1.7.7"), "rule 10.1.:\ndeny connection\n")
        self.assertEqual(self.rulescheck("192.168.2.1"),
                         "rule 192.168.2.:\nset environment variable RELAYCLIENT=@relay\n"
                         "set environment variable X=a \"quoted\" value\nallow connection\n")
        self.assertEqual(self.rulescheck("172.16.5.12"),
                         "rule 172.16.5.12:\nset environment variable RBLSMTPD=-go away\n"
                         "allow connection\n")
        self.assertEqual(self.rulescheck("198.51.100.1"), "rule :\nallow connection\n")

    def test_tcpserver_gives_relayclient_to_an_opened_ip_until_cleared(self):
        srv = self.serve(["sh", "-c", 'echo "R=${RELAYCLIENT-unset} B=${RBLSMTPD-unset}"'],
                         rules=self.etc("tcp.smtp.cdb"))

        def ask():
            import socket
            with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
                data = b""
                while True:
                    c = s.recv(100)
                    if not c:
                        return data.decode().strip()
                    data += c

        self.assertEqual(ask(), "R=unset B=unset")
        self.assertEqual(self.relay_open("127.0.0.1").returncode, 0)
        self.assertEqual(ask(), "R= B=")
        # Within the window nothing changes; after it, clearopensmtp closes it.
        self.assertEqual(self.root.run("clearopensmtp", env={"VQMAIL_NOW": T0 + 3599}).returncode, 0)
        self.assertEqual(ask(), "R= B=")
        self.assertEqual(self.root.run("clearopensmtp", env={"VQMAIL_NOW": T0 + 3600}).returncode, 0)
        self.assertEqual(ask(), "R=unset B=unset")
        self.assertEqual(self.read("open-smtp"), b"")

    def test_expiry_uses_relay_clear_minutes(self):
        self.write("relay-clear-minutes", "5\n")
        self.relay_open("10.0.0.1", now=T0)
        self.relay_open("10.0.0.2", now=T0 + 200)
        with open(self.etc("open-smtp"), "a") as f:
            f.write("10.0.0.3:allow,RELAYCLIENT=\"\"\n")  # no time: dropped
        self.assertEqual(self.root.run("relay-open", "-c", env={"VQMAIL_NOW": T0 + 300}).returncode, 0)
        self.assertEqual(self.read("open-smtp").decode(),
                         LINE.replace("IP", "10.0.0.2") + f"{T0 + 200}\n")
        # Opening another IP also drops expired entries.
        self.relay_open("10.0.0.4", now=T0 + 500)
        self.assertEqual(self.read("open-smtp").decode(),
                         LINE.replace("IP", "10.0.0.4") + f"{T0 + 500}\n")
        self.assertEqual(self.read("tcp.smtp.cdb"), self.reference_cdb())

    def test_reopening_an_ip_replaces_its_line(self):
        self.relay_open("10.0.0.1", now=T0)
        self.relay_open("10.0.0.2", now=T0 + 1)
        self.relay_open("10.0.0.1", now=T0 + 2)
        self.assertEqual(self.read("open-smtp").decode(),
                         LINE.replace("IP", "10.0.0.2") + f"{T0 + 1}\n" +
                         LINE.replace("IP", "10.0.0.1") + f"{T0 + 2}\n")

    def test_concurrent_runs_never_lose_lines(self):
        n = 24
        results = [None] * n

        def go(i):
            results[i] = self.relay_open(f"10.3.{i // 200}.{i % 200 + 1}", now=T0 + i)

        threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertTrue(all(r is not None and r.returncode == 0 for r in results),
                        [r.stderr for r in results if r is not None and r.returncode])
        lines = self.read("open-smtp").decode().splitlines()
        self.assertEqual(sorted(l.split(":")[0] for l in lines),
                         sorted(f"10.3.0.{i + 1}" for i in range(n)))
        self.assertEqual(self.read("tcp.smtp.cdb"), self.reference_cdb())

    def test_chain_form_records_tcpremoteip_and_execs(self):
        r = self.root.run("relay-open", "sh", "-c", 'echo "$0 $1"; exit 7', "a1", "a2",
                          env={"TCPREMOTEIP": "::ffff:10.7.7.7", "VQMAIL_NOW": T0})
        self.assertEqual(r.returncode, 7, r.stderr)
        self.assertEqual(r.stdout, b"a1 a2\n")
        self.assertEqual(self.read("open-smtp").decode(), LINE.replace("IP", "10.7.7.7") + f"{T0}\n")
        # Without TCPREMOTEIP the chain still runs.
        env = self.root.env()
        env.pop("TCPREMOTEIP", None)
        r = subprocess.run([self.root.bin("relay-open"), "true"], env=env, capture_output=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"TCPREMOTEIP", r.stderr)

    def test_bad_rules_keep_the_old_cdb(self):
        self.assertEqual(self.relay_open("10.0.0.1").returncode, 0)
        before = self.read("tcp.smtp.cdb")
        self.write("tcp.smtp", "127.:allow\n10.:ALLOW\n")
        r = self.root.run("relay-open", "-c", env={"VQMAIL_NOW": T0})
        self.assertEqual(r.returncode, 111)
        self.assertEqual(r.stderr, b"relay-open: fatal: open-smtp was written, but tcp.smtp.cdb was not rebuilt: "
                                   b"unable to parse this line: 10.:ALLOW\n")
        # The IP form: recorded in open-smtp, and the message says only the cdb is behind.
        r = self.relay_open("10.0.0.3")
        self.assertEqual(r.returncode, 111)
        self.assertTrue(r.stderr.startswith(b"relay-open: fatal: open-smtp was written, but tcp.smtp.cdb "
                                            b"was not rebuilt: "), r.stderr)
        self.assertIn(b"10.0.0.3:allow", self.read("open-smtp"))
        self.assertEqual(self.read("tcp.smtp.cdb"), before)
        self.assertFalse([f for f in os.listdir(self.root.v("etc")) if ".tmp." in f])
        # A range whose ends are not numbers, as tcprules refuses it.
        for bad in ("host-name.example:allow", "1.2.3.x-y:allow"):
            self.write("tcp.smtp", bad + "\n:allow\n")
            ref = subprocess.run(["tcprules", os.path.join(self.root.dir, "r.cdb"),
                                  os.path.join(self.root.dir, "r.tmp")],
                                 input=(bad + "\n").encode(), capture_output=True, timeout=30)
            self.assertEqual(ref.returncode, 100, bad)
            r = self.root.run("clearopensmtp", env={"VQMAIL_NOW": T0})
            self.assertEqual(r.returncode, 111, bad)
            self.assertIn(b"unable to parse this line: " + bad.encode(), r.stderr)
            self.assertEqual(self.read("tcp.smtp.cdb"), before)

    def test_files_with_other_names_are_not_read(self):
        # Root copies tcp.smtp's and open-smtp's lines into files everyone may
        # read: a hard link (to a file of root's) in their place is refused.
        self.assertEqual(self.relay_open("10.0.0.1").returncode, 0)
        before = (self.read("open-smtp"), self.read("tcp.smtp.cdb"))
        secret = os.path.join(self.root.dir, "secret")
        with open(secret, "w") as f:
            f.write('10.9.9.9:allow,SECRET="root only"\t%d\n' % T0)
        os.chmod(secret, 0o600)
        for name in ("open-smtp", "tcp.smtp"):
            saved = self.etc(name) + ".saved"
            os.rename(self.etc(name), saved)
            os.link(secret, self.etc(name))
            try:
                for argv in (["relay-open", "10.0.0.2"], ["relay-open", "-c"], ["clearopensmtp"]):
                    r = self.root.run(*argv, env={"VQMAIL_NOW": T0})
                    self.assertEqual(r.returncode, 111, (name, argv))
                    self.assertIn(b"has other names (hard links); not read", r.stderr)
                    self.assertEqual(r.stderr.count(b"\n"), 1, r.stderr)
            finally:
                os.unlink(self.etc(name))
                os.rename(saved, self.etc(name))
            # The cdb is not rebuilt; open-smtp is not rewritten from the link
            # (with tcp.smtp refused, relay-open 10.0.0.2 has recorded its line).
            self.assertEqual(self.read("tcp.smtp.cdb"), before[1], name)
            self.assertNotIn(b"SECRET", self.read("open-smtp"), name)
        self.assertEqual(self.read("open-smtp"), before[0] + b'10.0.0.2:allow,RELAYCLIENT="",RBLSMTPD=""\t%d\n' % T0)

    def test_cdb_is_world_readable_whatever_the_umask(self):
        # tcpserver runs under its own uid: the cdb is 0644 even from a cron
        # job with umask 077.
        for argv in (["relay-open", "10.0.0.9"], ["clearopensmtp"]):
            if os.path.exists(self.etc("tcp.smtp.cdb")):
                os.unlink(self.etc("tcp.smtp.cdb"))
            r = subprocess.run([self.root.bin(argv[0]), *argv[1:]], capture_output=True, timeout=30,
                               env=self.root.env(VQMAIL_NOW=str(T0)), preexec_fn=lambda: os.umask(0o077))
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(os.stat(self.etc("tcp.smtp.cdb")).st_mode & 0o777, 0o644, argv)

    def test_usage(self):
        self.assertEqual(self.root.run("relay-open").returncode, 100)
        self.assertEqual(self.root.run("relay-open", "-x").returncode, 100)
        self.assertEqual(self.root.run("relay-open", "1.2.3.4", "extra").returncode, 100)
        self.assertEqual(self.root.run("relay-open", "-c", "extra").returncode, 100)
        # A mistyped address is not taken for a program to run.
        for bad in ("10.0.0.256", "1.2.3", "1.2.3.4-255", "1.2.3.4:deny", "=host.example", "fe80::1%eth0"):
            r = self.root.run("relay-open", bad)
            self.assertEqual(r.returncode, 100, bad)
            self.assertEqual(r.stderr, f'relay-open: fatal: not an IP address: "{bad}"\n'.encode())
        self.assertEqual(self.root.run("clearopensmtp", "x").returncode, 100)


if __name__ == "__main__":
    unittest.main()
