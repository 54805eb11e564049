"""An SMTP server that nobody here wrote (Python's aiosmtpd), as the peer of
qmail-remote in the tests, run as a child process on 127.0.0.1 and stopped by pid.

Every accepted message is written to OUTDIR as N.json:
{"helo", "from", "rcpt", "data" (latin-1 text), "tls", "mail_options"}.

Options (program form):  python3 smtppeer.py OUTDIR [--starttls CERT KEY]
  [--implicit CERT KEY] [--broken-tls] [--inject] [--reject ADDR]... [--defer ADDR]...
  [--port N]
  --starttls     offer STARTTLS with this certificate
  --implicit     TLS from the first byte (SMTPS)
  --broken-tls   offer STARTTLS, answer 220 and then send bytes that are not TLS
  --inject       answer STARTTLS with "220" and a second reply in the same packet
  --want-client-cert  with --starttls: require a client certificate (none is sent)
  --refuse-tls   offer STARTTLS and answer it with 454
  --reject/--defer  550 / 450 to RCPT TO for that address
"""
import argparse
import json
import os
import select
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def make_self_signed(d, name):
    """A self-signed certificate for name with CA:TRUE, as `openssl req -x509`
    makes by default (cert.pem, cert.key in d); returns (cert, key)."""
    cert, key = os.path.join(d, "self.pem"), os.path.join(d, "self.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=%s" % name,
                    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "subjectAltName=DNS:%s" % name],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def make_certs(d, names, san=True):
    """A CA (ca.pem) and a certificate for names signed by it (leaf.pem, leaf.key)
    in directory d; returns (ca, cert, key) paths. Without san, the leaf
    names only names[0], in its commonName."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca, cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
    leaf, key = os.path.join(d, "leaf.pem"), os.path.join(d, "leaf.key")
    csr, ext = os.path.join(d, "leaf.csr"), os.path.join(d, "ext.cnf")
    run = lambda *a: subprocess.run(["openssl", *a], check=True, capture_output=True, timeout=60)
    run("req", "-x509", *ec, "-keyout", cakey, "-out", ca, "-days", "2", "-subj", "/CN=vqmail test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=%s" % names[0])
    with open(ext, "w") as f:
        if san:
            f.write("subjectAltName=%s\n" % ",".join("DNS:" + n for n in names))
        f.write("basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", cakey, "-CAcreateserial", "-out", leaf,
        "-days", "2", "-extfile", ext)
    return ca, leaf, key


class Peer:
    """The server as a child process: Peer(outdir, *options).start(); .port; .stop();
    .messages() lists what it accepted."""

    def __init__(self, outdir, *options):
        self.outdir = outdir
        os.makedirs(outdir, exist_ok=True)
        self.argv = [sys.executable, os.path.join(HERE, "smtppeer.py"), outdir, *options]
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, start_new_session=True)
        r, _, _ = select.select([self.proc.stdout], [], [], 15)
        line = self.proc.stdout.readline() if r else b""
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError("smtppeer did not start: %r" % line)
        self.port = int(line)
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def messages(self):
        out = []
        for n in sorted(os.listdir(self.outdir), key=lambda s: int(s.split(".")[0])):
            if n.endswith(".json"):
                with open(os.path.join(self.outdir, n)) as f:
                    out.append(json.load(f))
        return out


def main():
    import asyncio
    import ssl

    from aiosmtpd.smtp import SMTP, syntax

    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--starttls", nargs=2)
    ap.add_argument("--implicit", nargs=2)
    ap.add_argument("--broken-tls", action="store_true")
    ap.add_argument("--inject", action="store_true")
    ap.add_argument("--want-client-cert", action="store_true")
    ap.add_argument("--refuse-tls", action="store_true")
    ap.add_argument("--tls12-ciphers", help="TLS 1.2 only, with this OpenSSL cipher list")
    ap.add_argument("--reject", action="append", default=[])
    ap.add_argument("--reject-long", action="append", default=[],
                    help="refuse this recipient with a 550 line of over 5,000 bytes")
    ap.add_argument("--defer", action="append", default=[])
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()

    def context(pair):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*pair)
        if a.tls12_ciphers:
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            ctx.set_ciphers(a.tls12_ciphers)
        return ctx

    counter = [0]

    class Handler:
        async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
            if address in a.reject:
                return "550 5.1.1 <%s>: Recipient address rejected: User unknown" % address
            if address in a.reject_long:
                return "550 5.1.1 no such user " + "x" * 5000
            if address in a.defer:
                return "450 4.2.1 <%s>: mailbox busy, try later" % address
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server, session, envelope):
            counter[0] += 1
            rec = {
                "helo": session.host_name,
                "from": envelope.mail_from,
                "rcpt": envelope.rcpt_tos,
                "data": envelope.original_content.decode("latin-1"),
                "tls": session.ssl is not None,
                "mail_options": envelope.mail_options,
            }
            tmp = os.path.join(a.outdir, ".%d.tmp" % counter[0])
            with open(tmp, "w") as f:
                json.dump(rec, f)
            os.rename(tmp, os.path.join(a.outdir, "%d.json" % counter[0]))
            return "250 2.0.0 Ok: queued as %d" % counter[0]

    class Peer(SMTP):
        @syntax("STARTTLS", when="tls_context")
        async def smtp_STARTTLS(self, arg):
            if a.broken_tls:
                await self.push("220 2.0.0 Ready to start TLS")
                self._writer.write(b"this is not a TLS record\r\n" * 4)
                await self._writer.drain()
                self._writer.close()
                return
            if a.refuse_tls:
                await self.push("454 4.7.0 TLS not available due to local problem")
                return
            if a.inject:
                self._writer.write(b"220 2.0.0 Ready to start TLS\r\n250 injected\r\n")
                await self._writer.drain()
                await asyncio.sleep(5)
                self._writer.close()
                return
            return await super().smtp_STARTTLS(arg)

    tls_ctx = None
    if a.starttls:
        tls_ctx = context(a.starttls)
        if a.want_client_cert:
            # TLS 1.3: the refusal reaches the client only after its side of
            # the handshake is done, at its first read.
            tls_ctx.verify_mode = ssl.CERT_REQUIRED
            tls_ctx.load_verify_locations(cafile=a.starttls[0])
    elif a.broken_tls or a.inject or a.refuse_tls:
        tls_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    implicit = context(a.implicit) if a.implicit else None

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    factory = lambda: Peer(Handler(), hostname="peer.test", tls_context=tls_ctx,
                           require_starttls=False, decode_data=False,
                           enable_SMTPUTF8=False)
    server = loop.run_until_complete(
        loop.create_server(factory, host="127.0.0.1", port=a.port, ssl=implicit))
    print(server.sockets[0].getsockname()[1], flush=True)
    loop.run_forever()


if __name__ == "__main__":
    main()
