//! qmail-remote: delivers one message to one remote domain by SMTP and
//! reports on fd 1 (COMPAT sections 6 and A).
//!
//! ```text
//! argv (host sender recip...) + message on fd 0
//!   -> route: smtproutes / address literal / MX by preference / A, AAAA
//!   -> ipme rule, tcpto (skip addresses that timed out lately)
//!   -> for each address: connect (timeoutconnect)
//!        -> greeting, EHLO (HELO), STARTTLS when offered -> EHLO again
//!        -> MAIL, RCPT..., DATA, message, QUIT        (timeoutremote per read/write)
//!   -> report: r/h/s per recipient, then K/Z/D, each ending in \0
//! ```
//!
//! Only connection failures move on to the next address, as in qmail; once a
//! server has answered, its answer decides. The one exception is TLS: when
//! an opportunistic STARTTLS handshake fails, the same address is tried
//! again in plaintext on a new connection.

pub mod certname;
pub mod message;
pub mod report;
pub mod route;
pub mod session;
pub mod tcpto;
pub mod tls;

use std::fs::File;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

use crate::control::Control;
use crate::dns::{self, Resolver};
use crate::paths::Roots;
use message::Message;
use report::{text, Report};
use route::Target;
use session::{Died, Session};
use tls::{Policy, Stream};

/// The SMTP port, unless smtproutes gives another.
pub const PORT: u16 = 25;
/// The port where TLS starts at once (SMTPS, RFC 8314).
pub const PORT_SMTPS: u16 = 465;

/// Everything read from `control/` at start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The name in EHLO/HELO (`helohost`, default `me`).
    pub helohost: String,
    /// `smtproutes`.
    pub routes: Vec<route::RouteEntry>,
    /// `timeoutconnect` (60 s).
    pub timeout_connect: Duration,
    /// `timeoutremote` (1200 s), for every read and write.
    pub timeout_remote: Duration,
    /// Our own addresses (interfaces, `moreipme`, minus `notipme`).
    pub ipme: Vec<IpAddr>,
    /// `tlsrequired`: destinations that need verified TLS.
    pub tls_required: Vec<String>,
    /// `tlsclientciphers`: an OpenSSL cipher list for TLS 1.2, its lines
    /// joined by `:` as the TLS patch joins them.
    pub tls_ciphers: Option<String>,
}

impl Config {
    /// Reads the control files.
    pub fn load(roots: &Roots) -> io::Result<Config> {
        let c = Control::new(roots);
        let hostname = crate::sys::hostname();
        let helohost = c
            .line_or_me("helohost", Some(&hostname))?
            .unwrap_or(hostname);
        let ipme = ipme(&c)?;
        Ok(Config {
            helohost,
            routes: route::parse_routes(&c.list("smtproutes")?),
            timeout_connect: Duration::from_secs(c.u64("timeoutconnect", 60)?.max(1)),
            timeout_remote: Duration::from_secs(c.u64("timeoutremote", 1200)?.max(1)),
            ipme,
            tls_required: c.list("tlsrequired")?,
            tls_ciphers: Some(c.list("tlsclientciphers")?.join(":")).filter(|l| !l.is_empty()),
        })
    }
}

/// This host's addresses for qmail-remote and qmail-smtpd: the interfaces,
/// plus `control/moreipme`, minus `control/notipme`.
pub fn ipme(c: &Control) -> io::Result<Vec<IpAddr>> {
    let parse_ips = |v: Vec<String>| -> Vec<IpAddr> {
        v.iter().filter_map(|l| route::literal(l.trim())).collect()
    };
    let notipme = parse_ips(c.list("notipme")?);
    let mut ipme = interface_addresses();
    ipme.extend(parse_ips(c.list("moreipme")?));
    ipme.retain(|ip| !notipme.contains(ip));
    Ok(ipme)
}

/// This host's addresses, as qmail's ipme: every interface address, plus
/// 0.0.0.0 (and ::), which connect to ourselves.
pub fn interface_addresses() -> Vec<IpAddr> {
    let mut v = vec![
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ];
    if let Ok(addrs) = nix::ifaddrs::getifaddrs() {
        for a in addrs {
            let Some(s) = a.address else { continue };
            if let Some(x) = s.as_sockaddr_in() {
                v.push(IpAddr::V4(x.ip()));
            } else if let Some(x) = s.as_sockaddr_in6() {
                v.push(IpAddr::V6(x.ip()));
            }
        }
    }
    v
}

/// The whole program: argv (after the program name; addresses are bytes,
/// passed on unchanged), the message file on fd 0; returns the report for
/// fd 1.
pub fn run(roots: &Roots, args: &[Vec<u8>], input: Option<File>) -> Report {
    if args.len() < 3 {
        return Report::perm(text::USAGE);
    }
    let cfg = match Config::load(roots) {
        Ok(c) => c,
        Err(_) => return Report::temp(text::READ_CONTROLS),
    };
    let mut msg = match input.map(Message::from_file) {
        Some(Ok(m)) => m,
        _ => return Report::temp(text::READ_MESSAGE),
    };
    if msg.partial {
        return Report::perm(text::PARTIAL_LINE);
    }
    let res = match Resolver::from_roots(roots) {
        Ok(r) => r,
        Err(e) => return Report::temp(format!("Sorry, {e}. (#4.3.0)\n")),
    };
    let ctx = Ctx {
        roots,
        cfg: &cfg,
        res: &res,
    };
    let host = String::from_utf8_lossy(&args[0]);
    ctx.deliver(&host, &args[1], &args[2..], &mut msg)
}

struct Ctx<'a> {
    roots: &'a Roots,
    cfg: &'a Config,
    res: &'a Resolver,
}

impl Ctx<'_> {
    fn deliver(&self, host: &str, sender: &[u8], recips: &[Vec<u8>], msg: &mut Message) -> Report {
        // No SMTP command can carry a CR or LF: such an address is refused
        // here rather than written into the session (command injection).
        if session::has_line_break(sender) {
            return Report::perm(text::SENDER_LINE_BREAK);
        }
        if recips.iter().any(|r| session::has_line_break(r)) {
            let good: Vec<Vec<u8>> = recips
                .iter()
                .filter(|r| !session::has_line_break(r))
                .cloned()
                .collect();
            let rep = if good.is_empty() {
                Report::perm(text::NO_RECIPIENTS)
            } else {
                self.deliver(host, sender, &good, msg)
            };
            return report::merge_refused(recips, session::has_line_break, rep);
        }
        let route = route::find_route(&self.cfg.routes, host);
        if let Some(bad) = route.and_then(|r| r.bad_relay.as_deref()) {
            return Report::temp(text::bad_route_relay(bad));
        }
        if let Some(bad) = route.and_then(|r| r.bad_port.as_deref()) {
            return Report::temp(text::bad_route_port(bad));
        }
        let relay = route.filter(|r| !r.relay.is_empty());
        let port = route.and_then(|r| r.port).unwrap_or(PORT);
        let targets = match relay {
            Some(r) => route::resolve_relay(self.res, &r.relay),
            None => route::resolve_mx(self.res, host, &mut route::Rng::new())
                .and_then(|t| route::apply_ipme(t, &self.cfg.ipme)),
        };
        let targets = match targets {
            Ok(t) => t,
            Err(r) => return r,
        };
        let recips = if relay.is_some() {
            recips.to_vec()
        } else {
            match self.canonical_recipients(recips) {
                Ok(r) => r,
                Err(r) => return r,
            }
        };
        let tcpto = tcpto::Tcpto::new(self.roots.queue().join("lock").join("tcpto"));
        // One line per address tried, the first FAILURES_SHOWN of them: the
        // whole report must stay within what qmail-rspawn reads.
        const FAILURES_SHOWN: usize = 20;
        let mut failures = String::new();
        let mut failed = 0;
        let mut note = |line: String| {
            failed += 1;
            if failed <= FAILURES_SHOWN {
                failures.push_str(&line);
            }
        };
        for t in &targets {
            let now = crate::timefmt::now();
            if tcpto.is_dead(t.ip, now) {
                note(format!("{}: skipped, timed out recently\n", t.peer()));
                continue;
            }
            match self.connect(t, port) {
                Ok(tcp) => {
                    tcpto.record(t.ip, false, now);
                    let dom = host.to_ascii_lowercase();
                    return self.attempt(tcp, t, port, &dom, sender, &recips, msg);
                }
                Err(e) => {
                    let timed_out = matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    );
                    tcpto.record(t.ip, timed_out, crate::timefmt::now());
                    let why = if timed_out {
                        "connection timed out".to_string()
                    } else {
                        plain_error(&e)
                    };
                    note(format!("{}:{port}: {why}\n", t.peer()));
                }
            }
        }
        if failed > FAILURES_SHOWN {
            failures.push_str(&format!(
                "and {} more addresses.\n",
                failed - FAILURES_SHOWN
            ));
        }
        Report::temp(format!("{}{failures}", text::NO_CONNECTION))
    }

    /// Recipient domains with their CNAMEs resolved (qmail's addrmangle).
    fn canonical_recipients(&self, recips: &[Vec<u8>]) -> Result<Vec<Vec<u8>>, Report> {
        let mut out = Vec::with_capacity(recips.len());
        for r in recips {
            let Some(at) = r.iter().rposition(|&b| b == b'@') else {
                out.push(r.clone());
                continue;
            };
            let (local, dom) = (&r[..at], &r[at + 1..]);
            let Ok(dom) = std::str::from_utf8(dom) else {
                out.push(r.clone());
                continue;
            };
            if dom.is_empty() || dom.starts_with('[') || route::literal(dom).is_some() {
                out.push(r.clone());
                continue;
            }
            match self.res.canonical(dom) {
                Ok(c) if c != dom.to_ascii_lowercase() => {
                    let mut a = local.to_vec();
                    a.push(b'@');
                    a.extend_from_slice(c.as_bytes());
                    out.push(a);
                }
                Ok(_) => out.push(r.clone()),
                Err(dns::Error::Temporary(_)) => return Err(Report::temp(text::CNAME_TEMP)),
                Err(_) => out.push(r.clone()),
            }
        }
        Ok(out)
    }

    fn connect(&self, t: &Target, port: u16) -> io::Result<TcpStream> {
        let s = TcpStream::connect_timeout(&SocketAddr::new(t.ip, port), self.cfg.timeout_connect)?;
        s.set_read_timeout(Some(self.cfg.timeout_remote))?;
        s.set_write_timeout(Some(self.cfg.timeout_remote))?;
        let _ = s.set_nodelay(true);
        Ok(s)
    }

    /// One session with `t`. Its report ends with the `Session with` line
    /// (exchanger, address, port, TLS or not), whatever happened.
    #[allow(clippy::too_many_arguments)]
    fn attempt(
        &self,
        tcp: TcpStream,
        t: &Target,
        port: u16,
        domain: &str,
        sender: &[u8],
        recips: &[Vec<u8>],
        msg: &mut Message,
    ) -> Report {
        let peer = format!("{}:{port}", t.peer());
        let mut rep = self.session(tcp, t, &peer, port, domain, sender, recips, msg);
        // The note is a line of its own; a peer's reply is never at the start
        // of one (it follows "Remote host said: ", "<<< " or its code).
        let note = format!("Session with {peer}: ");
        if !rep.text.lines().any(|l| l.starts_with(&note)) {
            rep.text
                .push_str(&format!("Session with {peer}: no TLS.\n"));
        }
        rep
    }

    #[allow(clippy::too_many_arguments)]
    fn session(
        &self,
        tcp: TcpStream,
        t: &Target,
        peer: &str,
        port: u16,
        domain: &str,
        sender: &[u8],
        recips: &[Vec<u8>],
        msg: &mut Message,
    ) -> Report {
        let ip = t.ip.to_string();
        let with_note = |mut r: Report, note: &str| {
            r.text.push_str(note);
            r
        };
        let policy = tls::policy(self.roots, &self.cfg.tls_required, &t.name, domain);
        let cfg = match policy {
            Policy::Never => None,
            _ => match tls::client_config(&policy, self.cfg.tls_ciphers.as_deref()) {
                Ok(c) => Some(c),
                Err(e) if policy.required() => return Report::temp(format!("{e}\n")),
                Err(_) => None,
            },
        };
        let fail = |reason: &str, err: Option<&rustls::Error>| {
            Report::temp(tls::failure_text(&policy, &t.name, &ip, reason, err))
        };

        // SMTPS: TLS from the first byte, no plaintext fallback.
        if port == PORT_SMTPS {
            let Some(cfg) = cfg else {
                return fail("TLS disabled for this host on port 465", None);
            };
            return match tls::handshake(tcp, cfg, &t.name) {
                Ok(s) => {
                    let note = format!("Session with {peer}: TLS {}.\n", tls::describe(&s));
                    let mut s = Session::new(Stream::Tls(Box::new(s)), &t.name, &ip);
                    s.set_reply_time(self.cfg.timeout_remote);
                    self.converse(s, sender, recips, msg, &note)
                }
                Err((reason, e)) => Report::temp(match e.as_ref() {
                    Some(e @ rustls::Error::InvalidCertificate(_)) if policy.required() => {
                        tls::failure_text(&policy, &t.name, &ip, &reason, Some(e))
                    }
                    _ => text::tls_not_available(&reason, &ip),
                }),
            };
        }

        let mut s = Session::new(Stream::Plain(tcp), &t.name, &ip);
        s.set_reply_time(self.cfg.timeout_remote);
        let ext = match self.open(&mut s, &ip) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let plain_note = |why: &str| format!("Session with {peer}: no TLS ({why}).\n");
        let Some(cfg) = cfg.filter(|_| ext.starttls) else {
            if let Policy::Pem { shown, .. } = &policy {
                let _ = s.send("QUIT");
                return Report::temp(format!(
                    "No TLS achieved while {shown} exists; connecting to {ip}.\n"
                ));
            }
            if policy.required() {
                let _ = s.send("QUIT");
                return fail("STARTTLS not offered", None);
            }
            let why = if policy == Policy::Never {
                "disabled for this host"
            } else {
                "not offered"
            };
            return s.transaction(&ext, sender, recips, msg, &plain_note(why));
        };
        match s.starttls() {
            Err(d) => return Report::temp(text::died(&ip, false, &d.detail)),
            Ok(Err(reply)) => {
                if let Policy::Pem { shown, .. } = &policy {
                    let _ = s.send("QUIT");
                    return Report::temp(format!(
                        "STARTTLS rejected while {shown} exists; connecting to {ip}.\n{}",
                        reply.said()
                    ));
                }
                if policy.required() {
                    let _ = s.send("QUIT");
                    let mut r = fail(&format!("STARTTLS rejected with {}", reply.code), None);
                    r.text.push_str(&reply.said());
                    return r;
                }
                let why = format!("STARTTLS rejected with {}", reply.code);
                return s.transaction(&ext, sender, recips, msg, &plain_note(&why));
            }
            Ok(Ok(())) => {}
        }
        // Plaintext that arrived after the 220 would be read as if it came
        // through TLS: a response injection (CVE-2011-0411 class).
        let injected = s.buffered() > 0;
        let tcp = match s.into_inner() {
            Stream::Plain(t) => t,
            Stream::Tls(_) => return Report::temp(text::died(&ip, false, "")),
        };
        let result = if injected {
            Err((
                "plaintext received after the STARTTLS reply (response injection?)".to_string(),
                None,
            ))
        } else {
            tls::handshake(tcp, cfg, &t.name)
        };
        let reason = match result {
            Ok(tls_stream) => {
                let note = format!("Session with {peer}: TLS {}.\n", tls::describe(&tls_stream));
                let mut s = Session::new(Stream::Tls(Box::new(tls_stream)), &t.name, &ip);
                s.set_reply_time(self.cfg.timeout_remote);
                match s.hello(&self.cfg.helohost) {
                    Ok(Ok(ext)) => return s.transaction(&ext, sender, recips, msg, &note),
                    Ok(Err(r)) => return with_note(r, &note),
                    // TLS 1.3: a server that refuses the handshake (it wants
                    // a client certificate, say) sends its alert, or just
                    // closes, only after the client has finished: the end
                    // comes at the first read. That is a failed handshake too.
                    Err(d) if d.ended && !policy.required() => {
                        let why = d.detail.trim_end_matches("; ");
                        if why.is_empty() {
                            "refused after the handshake".to_string()
                        } else {
                            format!("refused after the handshake: {why}")
                        }
                    }
                    Err(d) => {
                        return with_note(Report::temp(text::died(&ip, false, &d.detail)), &note)
                    }
                }
            }
            Err((reason, e)) => {
                if policy.required() {
                    return fail(&reason, e.as_ref());
                }
                reason
            }
        };
        // Opportunistic: the same address again, in plaintext.
        let tcp = match self.connect(t, port) {
            Ok(c) => c,
            Err(e) => {
                return Report::temp(format!(
                    "{}{peer}: TLS handshake failed ({reason}), then {}\n",
                    text::NO_CONNECTION,
                    plain_error(&e)
                ))
            }
        };
        let mut s = Session::new(Stream::Plain(tcp), &t.name, &ip);
        s.set_reply_time(self.cfg.timeout_remote);
        let ext = match self.open(&mut s, &ip) {
            Ok(e) => e,
            Err(r) => return r,
        };
        let why = format!("TLS handshake failed: {reason}; retried in plaintext");
        s.transaction(&ext, sender, recips, msg, &plain_note(&why))
    }

    /// Greeting and EHLO/HELO.
    fn open(&self, s: &mut Session<Stream>, ip: &str) -> Result<session::Extensions, Report> {
        let died = |d: Died| Report::temp(text::died(ip, false, &d.detail));
        s.greeting().map_err(died)??;
        s.hello(&self.cfg.helohost).map_err(died)?
    }

    fn converse(
        &self,
        mut s: Session<Stream>,
        sender: &[u8],
        recips: &[Vec<u8>],
        msg: &mut Message,
        note: &str,
    ) -> Report {
        let ip = s_ip(&s);
        let ext = match self.open(&mut s, &ip) {
            Ok(e) => e,
            Err(mut r) => {
                r.text.push_str(note);
                return r;
            }
        };
        s.transaction(&ext, sender, recips, msg, note)
    }
}

/// An I/O error as a reader wants it: `Connection refused`, without Rust's
/// ` (os error 111)`.
fn plain_error(e: &io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn s_ip(s: &Session<Stream>) -> String {
    match s.get_ref() {
        Stream::Plain(t) => t.peer_addr().map(|a| a.ip().to_string()),
        Stream::Tls(t) => t.sock.peer_addr().map(|a| a.ip().to_string()),
    }
    .unwrap_or_default()
}
