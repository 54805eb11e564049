"""A DNS server for the tests, on 127.0.0.1 (UDP and TCP on one port), built on dnslib.

It answers like a recursive resolver would, from a table of zones:

    {"name": {"MX": [[pref, "host"], ...], "A": ["ip", ...], "AAAA": ["ip", ...],
              "CNAME": "target", "rcode": "SERVFAIL" | "REFUSED",
              "tc": true, "silent": true}}

A name in the table without records of the asked type gets NODATA; a name not in
the table gets NXDOMAIN; a CNAME is followed inside the table and the target's
records are added to the answer. "tc" answers every UDP query for the name with
the TC bit and no records, so the client must ask again over TCP; answers over
512 bytes are truncated the same way. "silent" names get no answer at all.

Run as a program it prints its port on the first line of stdout and serves until
it is killed:  python3 dnsserver.py [zones.json]
As a module: DnsServer(extra_zones).start() runs it as a child process, .addr is
"127.0.0.1:PORT" (for DNSCACHEIP), .stop() kills it by pid.
"""
import json
import os
import socket
import subprocess
import sys
import tempfile

# Exchanger names of big.test: the first labels differ, so compression cannot
# keep 30 of them under 512 bytes.
BIG = "mx%02d-a-first-label-that-cannot-be-compressed.big.test"

# The standard test zones. Every mail exchanger is on 127.0.0.1; tests reach the
# SMTP server's port with control/smtproutes "::PORT" (MX lookup, other port).
ZONES = {
    # An MX with preferences; both exchangers resolve.
    "mx.test": {"MX": [[20, "mx2.mx.test"], [10, "mx1.mx.test"]]},
    "mx1.mx.test": {"A": ["127.0.0.1"]},
    "mx2.mx.test": {"A": ["127.0.0.1"]},
    # Ties, to see the shuffle.
    "tie.test": {"MX": [[10, "x.tie.test"], [10, "y.tie.test"]]},
    "x.tie.test": {"A": ["127.0.0.1"]},
    "y.tie.test": {"A": ["127.0.0.1"]},
    # An MX whose host exists but has no address record.
    "noaddr.test": {"MX": [[10, "mx.noaddr.test"]]},
    "mx.noaddr.test": {"TXT": ["no address here"]},
    # An MX whose host does not exist at all.
    "nxmx.test": {"MX": [[10, "gone.nxmx.test"]]},
    # No MX, only an address: the fallback to A.
    "aonly.test": {"A": ["127.0.0.1"]},
    # A name with neither MX nor address.
    "empty.test": {"TXT": ["nothing"]},
    # IPv6 only (loopback).
    "v6.test": {"MX": [[10, "mx.v6.test"]]},
    "mx.v6.test": {"AAAA": ["::1"]},
    # A CNAME to a domain with MX records.
    "cname.test": {"CNAME": "mx.test"},
    # Server failure and silence.
    "servfail.test": {"rcode": "SERVFAIL"},
    "mx.servfail-host.test": {"rcode": "SERVFAIL"},
    "servfail-host.test": {"MX": [[10, "mx.servfail-host.test"]]},
    "silent.test": {"silent": True},
    # Truncated over UDP: only TCP gets the answer.
    "tc.test": {"tc": True, "MX": [[10, "mx1.mx.test"]]},
    # An answer too big for 512 bytes (truncated by size).
    "big.test": {"MX": [[10 + i, BIG % i] for i in range(30)]},
    # RFC 7505 null MX.
    "nullmx.test": {"MX": [[0, ""]]},
}
for i in range(30):
    ZONES[BIG % i] = {"A": ["127.0.0.1"]} if i == 0 else {"TXT": ["x"]}
# 25 exchangers, every one with an address.
ZONES["many.test"] = {"MX": [[10 + i, "m%02d.many.test" % i] for i in range(25)]}
for i in range(25):
    ZONES["m%02d.many.test" % i] = {"A": ["127.0.0.1"]}


def serve(zones):
    from dnslib import AAAA, CNAME, MX, QTYPE, RCODE, RR, TXT, A, DNSLabel
    from dnslib.dns import DNSError
    from dnslib.server import DNSHandler, DNSServer

    table = {k.lower().rstrip("."): v for k, v in zones.items()}

    def records(name, qtype):
        z = table.get(name, {})
        out = []
        for t, v in z.items():
            if t in ("rcode", "tc", "silent", "CNAME"):
                continue
            if qtype not in (t, "ANY"):
                continue
            for item in v:
                if t == "MX":
                    rd = MX(DNSLabel(item[1] or "."), item[0])
                elif t == "A":
                    rd = A(item)
                elif t == "AAAA":
                    rd = AAAA(item)
                elif t == "TXT":
                    rd = TXT(item)
                else:
                    continue
                out.append(RR(name, getattr(QTYPE, t), rdata=rd, ttl=60))
        return out

    class Resolver:
        def resolve(self, request, handler):
            reply = request.reply()
            name = str(request.q.qname).lower().rstrip(".")
            qtype = QTYPE[request.q.qtype]
            z = table.get(name)
            if z is None:
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
            if z.get("silent"):
                raise DNSError("silent")
            if "rcode" in z:
                reply.header.rcode = getattr(RCODE, z["rcode"])
                return reply
            if z.get("tc") and handler.protocol == "udp":
                reply.header.tc = 1
                return reply
            hops = 0
            while "CNAME" in z and qtype != "CNAME" and hops < 8:
                target = z["CNAME"].lower().rstrip(".")
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(target), ttl=60))
                name, hops = target, hops + 1
                z = table.get(name)
                if z is None:
                    reply.header.rcode = RCODE.NXDOMAIN
                    return reply
            if qtype == "CNAME" and "CNAME" in z:
                reply.add_answer(RR(name, QTYPE.CNAME, rdata=CNAME(z["CNAME"]), ttl=60))
            for rr in records(name, qtype):
                reply.add_answer(rr)
            return reply

    class Handler(DNSHandler):
        udplen = 512

    class Quiet:
        def __getattr__(self, _name):
            return lambda *a, **k: None

    # UDP and TCP on the same port.
    for _ in range(50):
        udp = DNSServer(Resolver(), address="127.0.0.1", port=0, handler=Handler, logger=Quiet())
        port = udp.server.server_address[1]
        try:
            tcp = DNSServer(Resolver(), address="127.0.0.1", port=port, tcp=True,
                            handler=Handler, logger=Quiet())
            break
        except OSError:
            udp.server.server_close()
    else:
        raise SystemExit("dnsserver: no free port")
    tcp.start_thread()
    print(port, flush=True)
    udp.start()


class DnsServer:
    """The server as a child process of the test."""

    def __init__(self, extra=None):
        zones = dict(ZONES)
        zones.update(extra or {})
        self.zonefile = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump(zones, self.zonefile)
        self.zonefile.close()
        self.proc = None
        self.port = None

    def start(self):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), self.zonefile.name],
                                     stdout=subprocess.PIPE, start_new_session=True)
        import select
        r, _, _ = select.select([self.proc.stdout], [], [], 10)
        line = self.proc.stdout.readline() if r else b""
        if not line.strip().isdigit():
            self.stop()
            raise AssertionError("dnsserver did not start")
        self.port = int(line)
        self.addr = "127.0.0.1:%d" % self.port
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        try:
            os.unlink(self.zonefile.name)
        except OSError:
            pass


_shared = []


def shared_dns():
    """One server with the standard zones for a whole test module (it keeps no
    state); stop it with stop_shared_dns() in tearDownModule."""
    if not _shared:
        _shared.append(DnsServer().start())
    return _shared[0]


def stop_shared_dns():
    while _shared:
        _shared.pop().stop()


if __name__ == "__main__":
    zones = dict(ZONES)
    if len(sys.argv) > 1:
        with open(sys.argv[1]) as f:
            zones = json.load(f)
    serve(zones)
