"""qmail-remote on its own: argv + message on fd 0, the r/h/s K/Z/D report on fd 1,
against Python's aiosmtpd on 127.0.0.1 and the test DNS server (dnsserver.py).

The exchangers of the test zones all live on 127.0.0.1, so the tests put
127.0.0.1 in control/notipme and route every domain to the peer's port with
control/smtproutes "::PORT" (MX lookup as usual, another port).
"""
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import Root, need_module, need_tool
from dnsserver import shared_dns, stop_shared_dns
from smtppeer import Peer, make_certs, make_self_signed

MSG = b"Subject: hello\n\nfirst line\n.leading dot\n..two dots\nlast line\n"


def parse_report(out):
    """[(letter, text)...] for each NUL-terminated report."""
    parts = out.split(b"\0")
    assert parts[-1] == b"", "report does not end in NUL: %r" % out
    return [(p[:1].decode(), p[1:].decode()) for p in parts[:-1]]


class RemoteCase(unittest.TestCase):
    """One root per test class (setting one up is the slow part); every test
    starts from the same control files."""

    # Control files the tests write; removed before each test.
    RESET = ("smtproutes", "notipme", "helohost", "tlsrequired", "tlshosts", "notlshosts", "tlsclientciphers",
             "timeoutremote", "moreipme")

    @classmethod
    def setUpClass(cls):
        need_module("dnslib")
        need_module("aiosmtpd")
        cls.root = Root()
        cls.npeers = 0

    @classmethod
    def tearDownClass(cls):
        cls.root.cleanup()

    def setUp(self):
        for name in self.RESET:
            p = self.root.control(name)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.unlink(p)
        self.dns = shared_dns()
        self.root.write_control("notipme", "127.0.0.1\n")
        self.root.write_control("helohost", "out.vqmail.test\n")

    def peer(self, *opts, route=True):
        type(self).npeers += 1
        p = Peer(os.path.join(self.root.dir, "peer%d" % self.npeers), *opts).start()
        self.addCleanup(p.stop)
        if route:
            self.root.write_control("smtproutes", "::%d\n" % p.port)
        return p

    def dead_port(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        return port

    def remote(self, host, sender, *recips, msg=MSG, env=None):
        e = {"DNSCACHEIP": self.dns.addr}
        e.update(env or {})
        r = self.root.run("qmail-remote", host, sender, *recips, input=msg, env=e, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return parse_report(r.stdout)

    def certs(self, *names, san=True):
        d = tempfile.mkdtemp(dir=self.root.dir)
        return make_certs(d, list(names), san=san)


class TestDelivery(RemoteCase):
    def test_starttls_used_when_offered_and_message_encoded(self):
        need_tool("openssl")
        ca, cert, key = self.certs("mx1.mx.test", "mx2.mx.test")
        p = self.peer("--starttls", cert, key)
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[0], ("r", ""))
        letter, text = rep[1]
        self.assertEqual(letter, "K", text)
        self.assertTrue(text.startswith("127.0.0.1 accepted message.\nRemote host said: 250 2.0.0 Ok: queued as 1\n"), text)
        self.assertIn("Session with mx1.mx.test[127.0.0.1]:%d: TLS TLSv1_3:" % p.port, text)
        [m] = p.messages()
        self.assertTrue(m["tls"])
        self.assertEqual(m["helo"], "out.vqmail.test")
        self.assertEqual(m["from"], "me@vqmail.test")
        self.assertEqual(m["rcpt"], ["u@mx.test"])
        self.assertEqual(m["data"], MSG.decode().replace("\n", "\r\n"))

    def test_tlsclientciphers_narrows_the_tls12_ciphers(self):
        need_tool("openssl")
        ca, cert, key = self.certs("mx1.mx.test", "mx2.mx.test")
        p = self.peer("--starttls", cert, key, "--tls12-ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[1][0], "K", rep)
        self.assertIn("Session with mx1.mx.test[127.0.0.1]:%d: TLS TLSv1_2:TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256." % p.port,
                      rep[1][1])
        # A list without the peer's only cipher: the handshake fails and the
        # mail goes in plaintext on a new connection, as with any failed one.
        self.root.write_control("tlsclientciphers", "ECDHE-ECDSA-AES256-GCM-SHA384\nECDHE-RSA-AES256-GCM-SHA384\n")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[1][0], "K", rep)
        self.assertIn("no TLS (TLS handshake failed: ", rep[1][1])
        self.assertEqual([m["tls"] for m in p.messages()], [True, False])

    def test_qmail_tcpto_lists_and_qmail_tcpok_forgets_dead_addresses(self):
        import struct
        p = self.peer()
        tcpto = self.root.q("queue", "lock", "tcpto")
        now = 1_800_000_000
        env = {"VQMAIL_NOW": str(now)}
        # 127.0.0.1 timed out twice, the last time 100 s ago (qmail's record).
        rec = bytes([127, 0, 0, 1, 2, 0, 0, 0]) + struct.pack("<I", now - 100) + bytes(4)
        with open(tcpto, "wb") as f:
            f.write(rec + bytes(1024 - 16))
        self.addCleanup(lambda: open(tcpto, "wb").write(bytes(1024)))
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test", env=env)
        self.assertEqual(rep[-1][0], "Z", rep)
        self.assertIn("skipped, timed out recently", rep[-1][1])
        r = self.root.run("qmail-tcpto", env=env, check=True)
        self.assertEqual(r.stdout, b"127.0.0.1 timed out 100 seconds ago; # recent timeouts: 2\n")
        r = self.root.run("qmail-tcpok", check=True)
        self.assertEqual((r.stdout, r.stderr), (b"", b""))
        with open(tcpto, "rb") as f:
            self.assertEqual(f.read(), bytes(1024))
        self.assertEqual(self.root.run("qmail-tcpto", env=env, check=True).stdout, b"")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test", env=env)
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertEqual(len(p.messages()), 1)
        # A symbolic link in the file's place is refused, and nothing is written
        # through it.
        other = os.path.join(self.root.dir, "not-tcpto")
        with open(other, "wb") as f:
            f.write(b"keep")
        os.rename(tcpto, tcpto + ".real")
        try:
            for make in (lambda: os.symlink(other, tcpto), lambda: os.mkfifo(tcpto)):
                make()
                for prog in ("qmail-tcpok", "qmail-tcpto"):
                    r = self.root.run(prog, timeout=30)
                    self.assertEqual(r.returncode, 111, prog)
                    self.assertTrue(r.stderr.startswith(b"%s: fatal: unable to " % prog.encode()), r.stderr)
                    self.assertTrue(r.stderr.endswith(b": not a regular file with one name\n"), r.stderr)
                os.unlink(tcpto)
        finally:
            if os.path.lexists(tcpto):
                os.unlink(tcpto)
            os.rename(tcpto + ".real", tcpto)
        with open(other, "rb") as f:
            self.assertEqual(f.read(), b"keep")

    def test_plaintext_when_starttls_not_offered(self):
        p = self.peer()
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertIn("no TLS (not offered)", rep[-1][1])
        self.assertFalse(p.messages()[0]["tls"])

    def test_seekable_message_file_and_8bit_and_size(self):
        p = self.peer()
        path = os.path.join(self.root.dir, "msg")
        body = "Subject: caf\u00e9\n\n\u00e9t\u00e9\n.\n".encode("latin-1")
        with open(path, "wb") as f:
            f.write(body)
        with open(path, "rb") as f:
            r = subprocess.run([self.root.bin("qmail-remote"), "mx.test", "a@b.test", "u@mx.test"],
                               stdin=f, capture_output=True, timeout=60,
                               env=self.root.env(DNSCACHEIP=self.dns.addr))
        rep = parse_report(r.stdout)
        self.assertEqual(rep[-1][0], "K", rep)
        [m] = p.messages()
        self.assertEqual(m["data"].encode("latin-1"), body.replace(b"\n", b"\r\n"))
        self.assertIn("BODY=8BITMIME", m["mail_options"])
        # SIZE counts each line end as CRLF, but neither the doubled dot of
        # the "." line nor the final "." line (RFC 1870).
        size = len(body.replace(b"\n", b"\r\n"))
        self.assertIn("SIZE=%d" % size, m["mail_options"])

    def test_broken_tls_handshake_is_retried_in_plaintext(self):
        p = self.peer("--broken-tls")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        letter, text = rep[-1]
        self.assertEqual(letter, "K", text)
        self.assertIn("no TLS (TLS handshake failed: ", text)
        self.assertIn("retried in plaintext", text)
        [m] = p.messages()
        self.assertFalse(m["tls"])

    def test_tls_refused_after_the_handshake_is_retried_in_plaintext(self):
        # A server that wants a client certificate refuses TLS 1.3 with an
        # alert the client reads after its side of the handshake is done.
        need_tool("openssl")
        ca, cert, key = self.certs("mx1.mx.test", "mx2.mx.test")
        p = self.peer("--starttls", cert, key, "--want-client-cert")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        letter, text = rep[-1]
        self.assertEqual(letter, "K", text)
        self.assertIn("no TLS (TLS handshake failed: refused after the handshake", text)
        self.assertIn("retried in plaintext", text)
        [m] = p.messages()
        self.assertFalse(m["tls"])

    def test_broken_tls_handshake_when_tls_required_is_a_deferral(self):
        p = self.peer("--broken-tls")
        self.root.write_control("tlsrequired", "mx.test\n")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        letter, text = rep[-1]
        self.assertEqual(letter, "Z", text)
        self.assertTrue(text.startswith("TLS not available: connect failed: "), text)
        self.assertTrue(text.endswith("; connected to 127.0.0.1.\n"
                                      "Session with mx1.mx.test[127.0.0.1]:%d: no TLS.\n" % p.port), text)
        self.assertEqual(p.messages(), [])

    def test_starttls_refused_when_tls_required_says_what_the_server_said(self):
        p = self.peer("--refuse-tls")
        self.root.write_control("tlsrequired", "mx.test\n")
        [(letter, text)] = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(letter, "Z", text)
        self.assertIn("STARTTLS rejected with 454", text)
        self.assertIn("Remote host said: 454 4.7.0 TLS not available due to local problem\n", text)
        self.assertEqual(p.messages(), [])

    def test_plaintext_after_starttls_reply_is_refused(self):
        p = self.peer("--inject")
        self.root.write_control("tlsrequired", ".mx.test\n")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "Z")
        self.assertIn("TLS not available: connect failed: plaintext received after the STARTTLS reply", rep[-1][1])
        # Opportunistic: the injected reply is never read; plaintext on a new connection.
        os.unlink(self.root.control("tlsrequired"))
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertIn("response injection", rep[-1][1])
        self.assertFalse(p.messages()[0]["tls"])

    def test_tlshosts_pem_verifies_the_certificate(self):
        need_tool("openssl")
        ca, cert, key = self.certs("mx1.mx.test")
        p = self.peer("--starttls", cert, key)
        os.makedirs(self.root.control("tlshosts"), exist_ok=True)
        pem = self.root.control("tlshosts/mx1.mx.test.pem")
        with open(ca) as src, open(pem, "w") as dst:
            dst.write(src.read())
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertTrue(p.messages()[0]["tls"])
        # Another CA: the TLS patch's text, a deferral, nothing sent.
        other_ca, _, _ = self.certs("elsewhere.test")
        with open(other_ca) as src, open(pem, "w") as dst:
            dst.write(src.read())
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "Z")
        self.assertTrue(rep[-1][1].startswith(
            "TLS unable to verify server with control/tlshosts/mx1.mx.test.pem: "), rep)
        self.assertEqual(len(p.messages()), 1)

    def test_tlshosts_pem_name_mismatch(self):
        need_tool("openssl")
        ca, cert, key = self.certs("other.test")
        p = self.peer("--starttls", cert, key)
        os.makedirs(self.root.control("tlshosts"), exist_ok=True)
        with open(ca) as src, open(self.root.control("tlshosts/mx1.mx.test.pem"), "w") as dst:
            dst.write(src.read())
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1], ("Z", "TLS unable to verify server mx1.mx.test: received certificate for other.test; connected to 127.0.0.1.\n"
                                        "Session with mx1.mx.test[127.0.0.1]:%d: no TLS.\n" % p.port))

    def test_tlshosts_pem_commonname_names_the_host(self):
        # As the TLS patch: without a matching subjectAltName the commonName counts.
        need_tool("openssl")
        ca, cert, key = self.certs("mx1.mx.test", san=False)
        p = self.peer("--starttls", cert, key)
        os.makedirs(self.root.control("tlshosts"), exist_ok=True)
        shutil.copy(ca, self.root.control("tlshosts/mx1.mx.test.pem"))
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertTrue(p.messages()[0]["tls"])
        # The same under control/tlsrequired, against the system's roots
        # (here the test CA, through SSL_CERT_FILE).
        os.unlink(self.root.control("tlshosts/mx1.mx.test.pem"))
        self.root.write_control("tlsrequired", "mx1.mx.test\n")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test", env={"SSL_CERT_FILE": ca})
        self.assertEqual(rep[-1][0], "K", rep)
        os.unlink(self.root.control("tlsrequired"))
        # A commonName that does not name it: the name in the text.
        ca, cert, key = self.certs("other.test", san=False)
        p = self.peer("--starttls", cert, key)
        shutil.copy(ca, self.root.control("tlshosts/mx1.mx.test.pem"))
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1], ("Z", "TLS unable to verify server mx1.mx.test: received certificate for other.test; connected to 127.0.0.1.\n"
                                        "Session with mx1.mx.test[127.0.0.1]:%d: no TLS.\n" % p.port))

    def test_tlshosts_pem_pinned_self_signed_certificate(self):
        # The peer's own self-signed certificate (CA:TRUE, openssl's default)
        # pinned in tlshosts/HOST.pem, as OpenSSL accepts it.
        need_tool("openssl")
        d = tempfile.mkdtemp(dir=self.root.dir)
        cert, key = make_self_signed(d, "mx1.mx.test")
        p = self.peer("--starttls", cert, key)
        os.makedirs(self.root.control("tlshosts"), exist_ok=True)
        shutil.copy(cert, self.root.control("tlshosts/mx1.mx.test.pem"))
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertTrue(p.messages()[0]["tls"])
        # Another self-signed certificate pinned: refused, nothing sent.
        other, _ = make_self_signed(tempfile.mkdtemp(dir=self.root.dir), "mx1.mx.test")
        shutil.copy(other, self.root.control("tlshosts/mx1.mx.test.pem"))
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "Z", rep)
        self.assertTrue(rep[-1][1].startswith("TLS unable to verify server with control/tlshosts/mx1.mx.test.pem: "
                                              "invalid peer certificate: self signed certificate; "
                                              "connected to 127.0.0.1.\n"), rep)
        self.assertEqual(len(p.messages()), 1)

    def test_address_literal_relay_gets_tls(self):
        need_tool("openssl")
        ca, cert, key = self.certs("mx1.mx.test")
        p = self.peer("--starttls", cert, key, route=False)
        self.root.write_control("smtproutes", ":[127.0.0.1]:%d\n" % p.port)
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertIn("Session with [127.0.0.1]:%d: TLS TLSv1_3:" % p.port, rep[-1][1])
        self.assertTrue(p.messages()[0]["tls"])

    def test_malformed_relay_in_smtproutes_defers(self):
        # Never past the configured relay: the domain's mail waits.
        p = self.peer(route=False)
        for line in (":[127.0.0.1:%d", ":[127.0.0.1]x:%d", ":[not-an-address]:%d"):
            self.root.write_control("smtproutes", (line % p.port) + "\n")
            rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
            self.assertEqual(rep[-1][0], "Z", (line, rep))
            self.assertTrue(rep[-1][1].startswith("Unable to read control files: control/smtproutes has the bad relay ["),
                            rep)
        self.assertEqual(p.messages(), [])

    def test_tlshosts_pem_without_starttls(self):
        self.peer()
        os.makedirs(self.root.control("tlshosts"), exist_ok=True)
        with open(self.root.control("tlshosts/mx1.mx.test.pem"), "w") as f:
            f.write("")
        rep = self.remote("mx.test", "me@vqmail.test", "u@mx.test")
        self.assertEqual(rep[-1][0], "Z")
        # An empty CA file cannot verify anything: refused before talking.
        self.assertIn("control/tlshosts/mx1.mx.test.pem", rep[-1][1])


class TestReplies(RemoteCase):
    def test_550_to_rcpt_gives_transcript(self):
        self.peer("--reject", "nobody@mx.test")
        rep = self.remote("mx.test", "me@vqmail.test", "nobody@mx.test")
        self.assertEqual(rep[0], ("h",
            "127.0.0.1 does not like recipient.\n"
            "Remote host said: 550 5.1.1 <nobody@mx.test>: Recipient address rejected: User unknown\n"
            "while talking to mx1.mx.test[127.0.0.1]:\n"
            ">>> RCPT TO:<nobody@mx.test>\n"
            "<<< 550 5.1.1 <nobody@mx.test>: Recipient address rejected: User unknown\n"))
        self.assertEqual(rep[1][0], "D")
        self.assertTrue(rep[1][1].startswith("Giving up on 127.0.0.1.\n"), rep)

    def test_a_reply_line_of_any_length_is_read_and_its_code_counts(self):
        # A 550 line of 5,000 bytes: its start is kept, and the refusal is
        # one (a bounce), not a broken connection (a deferral).
        self.peer("--reject-long", "long@mx.test")
        rep = self.remote("mx.test", "me@vqmail.test", "long@mx.test")
        self.assertEqual(rep[0][0], "h", rep)
        self.assertIn("Remote host said: 550 5.1.1 no such user xxx", rep[0][1])
        self.assertLess(len(rep[0][1]), 4096 * 2 + 500)
        self.assertEqual(rep[1][0], "D", rep)

    def test_mixed_recipients(self):
        p = self.peer("--reject", "bad@mx.test", "--defer", "later@mx.test")
        rep = self.remote("mx.test", "me@vqmail.test", "bad@mx.test", "ok@mx.test", "later@mx.test")
        self.assertEqual([l for l, _ in rep], ["h", "r", "s", "K"])
        self.assertIn("450 4.2.1", rep[2][1])
        self.assertEqual(p.messages()[0]["rcpt"], ["ok@mx.test"])

    def test_bad_invocation_and_partial_line(self):
        r = self.root.run("qmail-remote", "mx.test", input=b"")
        self.assertEqual(parse_report(r.stdout), [("D", "I (qmail-remote) was invoked improperly. (#5.3.5)\n")])
        rep = self.remote("mx.test", "a@b", "u@mx.test", msg=b"Subject: x\n\nno newline")
        self.assertEqual(rep, [("D", "SMTP cannot transfer messages with partial final lines. (#5.6.2)\n")])


class TestRouting(RemoteCase):
    def test_dns_outcomes(self):
        self.peer()
        cases = {
            "nope.test": ("D", "Sorry, I couldn't find any host named nope.test. (#5.1.2)\n"),
            "servfail.test": ("Z", "Sorry, I couldn't find any host by that name. (#4.1.2)\n"),
            "servfail-host.test": ("Z", "Sorry, I couldn't find any host by that name. (#4.1.2)\n"),
            "noaddr.test": ("D", "Name service error for mx.noaddr.test: Host found but no data record of requested type\n"
                                 "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"),
            # an exchanger that does not exist: qmail's text alone
            "nxmx.test": ("D", "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n"),
            # neither MX nor address records: qmail's "no host" text
            "empty.test": ("D", "Sorry, I couldn't find any host named empty.test. (#5.1.2)\n"),
            "nullmx.test": ("D", "Sorry, nullmx.test does not accept mail (it publishes a null MX). (#5.1.10)\n"),
        }
        for host, want in cases.items():
            with self.subTest(host=host):
                self.assertEqual(self.remote(host, "a@b", "u@" + host), [want])

    def test_a_nameserver_setting_naming_no_server_defers(self):
        """A control/nameservers or DNSCACHEIP that is there but names no
        server that can be asked (a typo, port 0 or 99999, an empty file) is
        a temporary failure, never a reason to ask resolv.conf's servers.
        (Run without a network, so that not even a regression can ask them.)"""
        if not shutil.which("unshare") or subprocess.run(
                ["unshare", "-n", "true"], capture_output=True).returncode != 0:
            self.skipTest("no network namespaces here")
        env = self.root.env()
        env.pop("DNSCACHEIP", None)
        argv = ["unshare", "-n", self.root.bin("qmail-remote"), "mx.test", "a@b", "u@mx.test"]
        control = "Sorry, control/nameservers names no usable nameserver. (#4.3.0)\n"
        cases = [("", None, control), ("# a comment\n", None, control),
                 ("127.0.0.1:99999\n", None, control), ("127.0.0.1:0\n", None, control),
                 ("nameserver 127.0.0.1\n", None, control),
                 ("127.0.0.1:1\n", "127.0.0.1:0 x",
                  "Sorry, DNSCACHEIP names no usable nameserver: 127.0.0.1:0 x. (#4.3.0)\n")]
        for text, cache, want in cases:
            with self.subTest(text=text, cache=cache):
                self.root.write_control("nameservers", text)
                e = dict(env, **({"DNSCACHEIP": cache} if cache else {}))
                r = subprocess.run(argv, input=MSG, capture_output=True, env=e, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(parse_report(r.stdout), [("Z", want)])

    def test_truncated_answers_are_asked_again_over_tcp(self):
        p = self.peer()
        for host in ("tc.test", "big.test"):
            with self.subTest(host=host):
                rep = self.remote(host, "a@b", "u@" + host)
                self.assertEqual(rep[-1][0], "K", rep)
        self.assertEqual(len(p.messages()), 2)

    def test_a_record_fallback_literal_and_cname(self):
        p = self.peer()
        self.assertEqual(self.remote("aonly.test", "a@b", "u@aonly.test")[-1][0], "K")
        self.assertEqual(self.remote("[127.0.0.1]", "a@b", "u@[127.0.0.1]")[-1][0], "K")
        rep = self.remote("cname.test", "a@b", "u@cname.test")
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertEqual([m["rcpt"] for m in p.messages()],
                         [["u@aonly.test"], ["u@[127.0.0.1]"], ["u@mx.test"]])

    def test_smtproutes_relay_skips_mx_lookup(self):
        p = self.peer(route=False)
        self.root.write_control("smtproutes",
                                "nope.test:aonly.test:%d\n.sub.test:[127.0.0.1]:%d\n" % (p.port, p.port))
        self.assertEqual(self.remote("nope.test", "a@b", "u@nope.test")[-1][0], "K")
        self.assertEqual(self.remote("a.sub.test", "a@b", "u@a.sub.test")[-1][0], "K")
        self.assertEqual(len(p.messages()), 2)

    def test_we_are_the_best_mx(self):
        self.peer()
        os.unlink(self.root.control("notipme"))
        rep = self.remote("mx.test", "a@b", "u@mx.test")
        self.assertEqual(rep, [("D", "Sorry. Although I'm listed as a best-preference MX or A for that host,\n"
                                     "it isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n")])

    def test_dead_peer_tries_exchangers_by_preference(self):
        port = self.dead_port()
        self.root.write_control("smtproutes", "::%d\n" % port)
        rep = self.remote("mx.test", "a@b", "u@mx.test")
        self.assertEqual(len(rep), 1)
        letter, text = rep[0]
        self.assertEqual(letter, "Z")
        lines = text.splitlines()
        self.assertEqual(lines[0], "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)")
        self.assertTrue(lines[1].startswith("mx1.mx.test[127.0.0.1]:%d: " % port), text)
        self.assertTrue(lines[2].startswith("mx2.mx.test[127.0.0.1]:%d: " % port), text)
        # Equal preferences are shuffled.
        firsts = set()
        for _ in range(16):
            firsts.add(self.remote("tie.test", "a@b", "u@tie.test")[0][1].splitlines()[1].split("[")[0])
            if len(firsts) == 2:
                break
        self.assertEqual(firsts, {"x.tie.test", "y.tie.test"})

    def test_a_long_list_of_failed_addresses_is_cut(self):
        # One line per address for the first 20, then a count: the report
        # stays whole within what qmail-rspawn reads.
        port = self.dead_port()
        self.root.write_control("smtproutes", "::%d\n" % port)
        [(letter, text)] = self.remote("many.test", "a@b", "u@many.test")
        self.assertEqual(letter, "Z")
        lines = text.splitlines()
        self.assertEqual(lines[0], "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)")
        self.assertEqual(len(lines), 22, text)
        self.assertTrue(all(".many.test[127.0.0.1]:%d: " % port in l for l in lines[1:21]), text)
        self.assertEqual(lines[21], "and 5 more addresses.")

    def test_silent_peer_times_out_after_timeoutremote(self):
        import socket
        import time
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4)  # connections complete in the backlog; nobody ever speaks
        self.addCleanup(s.close)
        self.root.write_control("smtproutes", "::%d\n" % s.getsockname()[1])
        self.root.write_control("timeoutremote", "1\n")
        t = time.monotonic()
        rep = self.remote("mx.test", "a@b", "u@mx.test")
        self.assertEqual(rep, [("Z", "Connected to 127.0.0.1 but connection died. (#4.4.2)\n"
                                     "Session with mx1.mx.test[127.0.0.1]:%d: no TLS.\n" % s.getsockname()[1])])
        self.assertLess(time.monotonic() - t, 20)

    def test_ipv6_exchanger(self):
        port = self.dead_port()
        self.root.write_control("smtproutes", "::%d\n" % port)
        self.root.write_control("notipme", "127.0.0.1\n::1\n")
        rep = self.remote("v6.test", "a@b", "u@v6.test")
        self.assertEqual(rep[0][0], "Z")
        self.assertIn("\nmx.v6.test[::1]:%d: " % port, rep[0][1])


class RawPeer:
    """A scripted SMTP server on 127.0.0.1 for one connection: sends
    `greeting`, then answers each line it reads with the reply `answer(line)`
    gives (None: close). Records every byte the client sent."""

    def __init__(self, greeting=b"220 raw.test ESMTP\r\n", answer=None):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(30)
        self.port = self.sock.getsockname()[1]
        self.greeting = greeting
        self.answer = answer or self.default
        self.received = b""
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    @staticmethod
    def default(line):
        if line.startswith(b"DATA"):
            return b"354 go\r\n"
        if line.startswith(b"QUIT"):
            return None
        return b"250 ok\r\n"

    def serve(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        c.settimeout(30)
        with c:
            c.sendall(self.greeting)
            buf = b""
            in_data = False
            while True:
                try:
                    d = c.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                self.received += d
                buf += d
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    if in_data:
                        if line == b".":
                            in_data = False
                            c.sendall(b"250 queued\r\n")
                        continue
                    r = self.answer(line)
                    if r is None:
                        return
                    c.sendall(r)
                    if r.startswith(b"354"):
                        in_data = True

    def stop(self):
        self.sock.close()
        self.thread.join(10)


class TestAddressesOnTheWire(RemoteCase):
    def raw(self, **kw):
        p = RawPeer(**kw)
        self.addCleanup(p.stop)
        self.root.write_control("smtproutes", "::%d\n" % p.port)
        return p

    def test_local_parts_are_quoted_and_8bit_bytes_kept(self):
        p = self.raw()
        rep = self.remote("mx.test", b"s\xe9nder@vqmail.test", "jane doe@mx.test", "a..b@mx.test",
                          b"j\xe9r\xf4me@mx.test", 'q"uote@mx.test', "plain.name@mx.test")
        self.assertEqual([l for l, _ in rep], ["r", "r", "r", "r", "r", "K"], rep)
        p.stop()
        self.assertIn(b'MAIL FROM:<"s\xe9nder"@vqmail.test>', p.received)
        for want in (b'RCPT TO:<"jane doe"@mx.test>\r\n', b'RCPT TO:<"a..b"@mx.test>\r\n',
                     b'RCPT TO:<"j\xe9r\xf4me"@mx.test>\r\n', b'RCPT TO:<"q\\"uote"@mx.test>\r\n',
                     b"RCPT TO:<plain.name@mx.test>\r\n"):
            self.assertIn(want, p.received)

    def test_line_breaks_in_addresses_never_reach_the_wire(self):
        p = self.raw()
        rep = self.remote("mx.test", "a@vqmail.test", "ok@mx.test", "x@mx.test>\r\nRCPT TO:<evil@mx.test",
                          "last@mx.test")
        self.assertEqual([l for l, _ in rep], ["r", "h", "r", "K"], rep)
        self.assertEqual(rep[1][1], "Sorry, this address contains a line break, which SMTP cannot carry. (#5.1.3)\n")
        p.stop()
        self.assertNotIn(b"evil", p.received)
        self.assertEqual(p.received.count(b"RCPT TO:"), 2)
        # A sender with a line break fails the whole message, and nothing is sent.
        q = self.raw()
        rep = self.remote("mx.test", "a@b\nRSET", "ok@mx.test")
        self.assertEqual(rep, [("D", "Sorry, the envelope sender contains a line break, which SMTP cannot carry. (#5.1.7)\n")])
        q.stop()
        self.assertEqual(q.received, b"")

    def test_refused_greeting_or_name_is_temporary_with_session_line(self):
        self.raw(greeting=b"554 busy, try later\r\n")
        rep = self.remote("mx.test", "a@b", "u@mx.test")
        self.assertEqual(rep[0][0], "Z", rep)
        self.assertTrue(rep[0][1].startswith("Connected to 127.0.0.1 but greeting failed.\nRemote host said: 554 busy"), rep)
        self.assertTrue(rep[0][1].endswith(":%d: no TLS.\n" % self.root_port()), rep)
        self.assertIn("Session with mx1.mx.test[127.0.0.1]:", rep[0][1])
        self.raw(answer=lambda line: None if line.startswith(b"QUIT") else b"550 go away\r\n")
        rep = self.remote("mx.test", "a@b", "u@mx.test")
        self.assertEqual(rep[0][0], "Z", rep)
        self.assertIn("but my name was rejected.\n", rep[0][1])
        self.assertIn("\nSession with mx1.mx.test[127.0.0.1]:", rep[0][1])

    def root_port(self):
        with open(self.root.control("smtproutes")) as f:
            return int(f.read().strip().rsplit(":", 1)[1])

    def test_literal_hosts_are_named_once(self):
        port = self.dead_port()
        self.root.write_control("smtproutes", ":[127.0.0.1]:%d\n" % port)
        rep = self.remote("other.test", "a@b", "u@other.test")
        self.assertEqual(rep[0][0], "Z")
        self.assertIn("\n[127.0.0.1]:%d: " % port, rep[0][1])

    def test_smtproutes_line_with_a_bad_port_defers(self):
        for bad in ("notaport", "99999", "0"):
            with self.subTest(port=bad):
                self.root.write_control("smtproutes", "mx.test:127.0.0.1:%s\n" % bad)
                rep = self.remote("mx.test", "a@b", "u@mx.test")
                self.assertEqual(rep, [("Z", "Unable to read control files: control/smtproutes has the bad port "
                                             "%s for this domain. (#4.3.0)\n" % bad)])


class TestImplicitTls(RemoteCase):
    def test_port_465_is_tls_from_the_start(self):
        need_tool("openssl")
        ca, cert, key = self.certs("mx1.mx.test")
        try:
            p = self.peer("--implicit", cert, key, "--port", "465", route=False)
        except AssertionError:
            raise unittest.SkipTest("port 465 on 127.0.0.1 is not available")
        self.root.write_control("smtproutes", "mx.test::465\n")
        rep = self.remote("mx.test", "a@b", "u@mx.test")
        self.assertEqual(rep[-1][0], "K", rep)
        self.assertIn(":465: TLS TLSv1_3", rep[-1][1])
        self.assertEqual(len(p.messages()), 1)


def tearDownModule():
    stop_shared_dns()


if __name__ == "__main__":
    unittest.main()
