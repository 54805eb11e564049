//! A small synchronous DNS client: MX, A, AAAA and CNAME lookups, over UDP
//! with a retry over TCP when the answer is truncated (RFC 1035 section 4.2,
//! RFC 7766).
//!
//! The nameservers come from `/etc/resolv.conf` (`nameserver` lines),
//! overridden by `control/nameservers` (one per line: `IP`, `IP:port` or
//! `[IPv6]:port`, port 53 when none is given), overridden in turn by the
//! environment variable `DNSCACHEIP` (the same forms, separated by spaces).
//! Tests run a DNS server on 127.0.0.1 and never query the system resolver.
//!
//! Outcomes are the three that matter to a mailer: [`Error::NxDomain`] (the
//! name does not exist: permanent), [`Error::NoData`] (the name exists, but
//! has no record of the type asked for) and [`Error::Temporary`] (SERVFAIL,
//! REFUSED, timeouts, garbage: try again later).

pub mod wire;

use std::fmt;
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::paths::Roots;
use wire::{RData, TYPE_A, TYPE_AAAA, TYPE_CNAME, TYPE_MX};

/// Why a lookup gave no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The name does not exist (NXDOMAIN): a permanent failure.
    NxDomain,
    /// The name exists but has no record of the requested type.
    NoData,
    /// A temporary failure (SERVFAIL, timeout, unreachable server, bad
    /// answer); the text says which.
    Temporary(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NxDomain => f.write_str("host not found"),
            Error::NoData => f.write_str("Host found but no data record of requested type"),
            Error::Temporary(s) => write!(f, "temporary DNS failure: {s}"),
        }
    }
}

impl std::error::Error for Error {}

/// One mail exchanger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    /// Preference (lower is tried first).
    pub pref: u16,
    /// Host name, lower case, no final dot ("" for a null MX, RFC 7505).
    pub host: String,
}

/// How many CNAMEs a lookup follows.
const MAX_CNAME: usize = 8;
/// Largest answer accepted over TCP.
const MAX_TCP: usize = 65535;

/// A stub resolver asking recursive nameservers.
#[derive(Debug, Clone)]
pub struct Resolver {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    rounds: usize,
}

impl Resolver {
    /// The resolver configured for this installation (see the module doc).
    /// A `DNSCACHEIP` or `control/nameservers` that is there but names no
    /// server that can be asked (a typo, a port out of range, an empty
    /// file), or a `control/nameservers` that cannot be read, is an error:
    /// the lookup must not go to resolv.conf's servers instead.
    pub fn from_roots(roots: &Roots) -> Result<Resolver, String> {
        let env = std::env::var("DNSCACHEIP").ok();
        let control = crate::control::read_list(&roots.control("nameservers")).map_err(|e| {
            format!(
                "unable to read control/nameservers: {}",
                crate::deliver::errstr(&e)
            )
        })?;
        let resolv = std::fs::read_to_string("/etc/resolv.conf").ok();
        Ok(Resolver::new(choose_servers(
            env.as_deref(),
            control.as_deref(),
            resolv.as_deref(),
        )?))
    }

    /// A resolver asking these servers, in order. With none, 127.0.0.1:53.
    pub fn new(mut servers: Vec<SocketAddr>) -> Resolver {
        if servers.is_empty() {
            servers.push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
        }
        Resolver {
            servers,
            timeout: Duration::from_secs(3),
            rounds: 2,
        }
    }

    /// Changes the wait for one answer and how many times every server is
    /// asked (at least once).
    pub fn with_timeout(mut self, timeout: Duration, rounds: usize) -> Resolver {
        self.timeout = timeout;
        self.rounds = rounds.max(1);
        self
    }

    /// The servers asked, in order.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The MX records of `name`, sorted by preference (stable: ties keep the
    /// server's order; the caller shuffles them). `NoData` when there are none.
    pub fn mx(&self, name: &str) -> Result<Vec<Mx>, Error> {
        let mut v: Vec<Mx> = self
            .lookup(name, TYPE_MX)?
            .into_iter()
            .filter_map(|d| match d {
                RData::Mx { pref, host } => Some(Mx { pref, host }),
                _ => None,
            })
            .collect();
        if v.is_empty() {
            return Err(Error::NoData);
        }
        v.sort_by_key(|m| m.pref);
        Ok(v)
    }

    /// The IPv4 addresses of `name` (CNAMEs followed).
    pub fn a(&self, name: &str) -> Result<Vec<Ipv4Addr>, Error> {
        Ok(self
            .lookup(name, TYPE_A)?
            .into_iter()
            .filter_map(|d| match d {
                RData::A(a) => Some(a),
                _ => None,
            })
            .collect())
    }

    /// The IPv6 addresses of `name` (CNAMEs followed).
    pub fn aaaa(&self, name: &str) -> Result<Vec<Ipv6Addr>, Error> {
        Ok(self
            .lookup(name, TYPE_AAAA)?
            .into_iter()
            .filter_map(|d| match d {
                RData::Aaaa(a) => Some(a),
                _ => None,
            })
            .collect())
    }

    /// The addresses of `name`: IPv4 first, then IPv6. When one family fails
    /// temporarily but the other has addresses, those are returned.
    pub fn ips(&self, name: &str) -> Result<Vec<IpAddr>, Error> {
        let v4 = self.a(name);
        if v4 == Err(Error::NxDomain) {
            return Err(Error::NxDomain);
        }
        let v6 = self.aaaa(name);
        let mut out: Vec<IpAddr> = Vec::new();
        let mut temp = None;
        match v4 {
            Ok(v) => out.extend(v.into_iter().map(IpAddr::V4)),
            Err(Error::Temporary(s)) => temp = Some(s),
            Err(_) => {}
        }
        match v6 {
            Ok(v) => out.extend(v.into_iter().map(IpAddr::V6)),
            Err(Error::Temporary(s)) => temp = temp.or(Some(s)),
            Err(_) => {}
        }
        if !out.is_empty() {
            return Ok(out);
        }
        match temp {
            Some(s) => Err(Error::Temporary(s)),
            None => Err(Error::NoData),
        }
    }

    /// The canonical name of `name` (CNAME chain followed); `name` itself
    /// when it has no CNAME or does not exist.
    /// Names are compared in presentation form; a name that stays as given,
    /// or whose canonical name has bytes only an escape can show, comes back
    /// as given (lowercased, without a final dot), never escaped.
    pub fn canonical(&self, name: &str) -> Result<String, Error> {
        let start = normalize(name);
        let given = || name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
        let done = |cur: String| {
            if cur == start || cur.contains('\\') {
                given()
            } else {
                cur
            }
        };
        let mut cur = start.clone();
        for _ in 0..MAX_CNAME {
            match self.query(&cur, TYPE_CNAME) {
                Ok(m) => {
                    let next = m.answers.iter().find_map(|r| match &r.data {
                        RData::Cname(t) if r.name == cur => Some(t.clone()),
                        _ => None,
                    });
                    match next {
                        Some(t) => cur = t,
                        None => return Ok(done(cur)),
                    }
                }
                Err(Error::NxDomain) | Err(Error::NoData) => return Ok(done(cur)),
                Err(e) => return Err(e),
            }
        }
        Err(Error::Temporary(format!("CNAME chain too long for {name}")))
    }

    /// True when mail to `domain` has somewhere to go: it has MX records
    /// (other than a null MX) or an address. `Ok(false)` when the name does not exist or has neither;
    /// `Err(Temporary)` when that cannot be told now.
    pub fn has_mail_route(&self, domain: &str) -> Result<bool, Error> {
        match self.mx(domain) {
            // A null MX (RFC 7505) says the domain takes no mail.
            Ok(v) => return Ok(v.iter().any(|m| !m.host.is_empty())),
            Err(Error::NxDomain) => return Ok(false),
            Err(Error::NoData) => {}
            Err(e) => return Err(e),
        }
        match self.ips(domain) {
            Ok(_) => Ok(true),
            Err(Error::NxDomain) | Err(Error::NoData) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The records of type `qtype` for `name`, following CNAMEs (inside the
    /// answer, and with new queries when the answer stops at a CNAME).
    pub fn lookup(&self, name: &str, qtype: u16) -> Result<Vec<RData>, Error> {
        let mut cur = normalize(name);
        for _ in 0..MAX_CNAME {
            let m = self.query(&cur, qtype)?;
            // Walk the chain inside this answer.
            let mut hops = 0;
            loop {
                let found: Vec<RData> = m
                    .answers
                    .iter()
                    .filter(|r| r.rtype == qtype && r.name == cur)
                    .map(|r| r.data.clone())
                    .collect();
                if !found.is_empty() {
                    return Ok(found);
                }
                let next = m.answers.iter().find_map(|r| match &r.data {
                    RData::Cname(t) if r.name == cur && qtype != TYPE_CNAME => Some(t.clone()),
                    _ => None,
                });
                match next {
                    Some(t) if hops < MAX_CNAME => {
                        cur = t;
                        hops += 1;
                    }
                    Some(_) => {
                        return Err(Error::Temporary(format!("CNAME loop for {name}")));
                    }
                    None if hops == 0 => return Err(Error::NoData),
                    None => break,
                }
            }
        }
        Err(Error::Temporary(format!("CNAME chain too long for {name}")))
    }

    /// Asks the servers one question; `Ok` only for a NOERROR answer.
    pub fn query(&self, name: &str, qtype: u16) -> Result<wire::Message, Error> {
        let name = normalize(name);
        if name.is_empty() {
            return Err(Error::NxDomain);
        }
        let mut last = String::from("no nameserver answered");
        for _ in 0..self.rounds {
            for server in &self.servers {
                match self.ask(*server, &name, qtype) {
                    Ok(m) => match m.rcode() {
                        wire::RCODE_NOERROR => return Ok(m),
                        wire::RCODE_NXDOMAIN => return Err(Error::NxDomain),
                        wire::RCODE_SERVFAIL => {
                            last = format!("SERVFAIL from {server} for {name}");
                        }
                        rc => last = format!("rcode {rc} from {server} for {name}"),
                    },
                    Err(AskError::BadName) => return Err(Error::NxDomain),
                    Err(AskError::Other(e)) => last = format!("{server}: {e} for {name}"),
                }
            }
        }
        Err(Error::Temporary(last))
    }

    fn ask(&self, server: SocketAddr, name: &str, qtype: u16) -> Result<wire::Message, AskError> {
        let id = random_id();
        let q = wire::encode_query(id, name, qtype).map_err(|_| AskError::BadName)?;
        let m = self.ask_udp(server, &q, id, name, qtype)?;
        if !m.truncated() {
            return Ok(m);
        }
        let id = random_id();
        let q = wire::encode_query(id, name, qtype).map_err(|_| AskError::BadName)?;
        self.ask_tcp(server, &q, id, name, qtype)
    }

    fn ask_udp(
        &self,
        server: SocketAddr,
        q: &[u8],
        id: u16,
        name: &str,
        qtype: u16,
    ) -> Result<wire::Message, AskError> {
        let local: SocketAddr = match server {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sock = UdpSocket::bind(local)?;
        // connect(): the kernel drops datagrams from anyone but the server.
        sock.connect(server)?;
        sock.send(q)?;
        let deadline = Instant::now() + self.timeout;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(AskError::Other("timed out".into()));
            }
            sock.set_read_timeout(Some(left))?;
            let n = match sock.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return Err(AskError::Other("timed out".into()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            // Anything that is not the answer to this question is ignored.
            if let Ok(m) = wire::decode(&buf[..n]) {
                if matches_question(&m, id, name, qtype) || truncated_header_only(&m, id) {
                    return Ok(m);
                }
            }
        }
    }

    fn ask_tcp(
        &self,
        server: SocketAddr,
        q: &[u8],
        id: u16,
        name: &str,
        qtype: u16,
    ) -> Result<wire::Message, AskError> {
        let mut s = TcpStream::connect_timeout(&server, self.timeout)?;
        s.set_read_timeout(Some(self.timeout))?;
        s.set_write_timeout(Some(self.timeout))?;
        let mut out = Vec::with_capacity(q.len() + 2);
        out.extend_from_slice(&(q.len() as u16).to_be_bytes());
        out.extend_from_slice(q);
        s.write_all(&out)?;
        let mut len = [0u8; 2];
        s.read_exact(&mut len)?;
        let len = usize::from(u16::from_be_bytes(len)).min(MAX_TCP);
        let mut buf = vec![0u8; len];
        s.read_exact(&mut buf)?;
        let m = wire::decode(&buf).map_err(|e| AskError::Other(e.to_string()))?;
        if !matches_question(&m, id, name, qtype) {
            return Err(AskError::Other("answer does not match the question".into()));
        }
        Ok(m)
    }
}

enum AskError {
    BadName,
    Other(String),
}

impl From<std::io::Error> for AskError {
    fn from(e: std::io::Error) -> AskError {
        AskError::Other(e.to_string())
    }
}

fn matches_question(m: &wire::Message, id: u16, name: &str, qtype: u16) -> bool {
    m.id == id
        && m.is_response()
        && m.questions.len() == 1
        && m.questions[0].0 == name
        && m.questions[0].1 == qtype
}

/// Tolerance: some servers (dnslib, some middleboxes) answer an oversized
/// query with a bare header (TC set, no question). With the right id it can
/// only send us to TCP, where the answer is checked in full.
fn truncated_header_only(m: &wire::Message, id: u16) -> bool {
    m.id == id && m.is_response() && m.truncated() && m.questions.is_empty()
}

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    if getrandom::fill(&mut b).is_err() {
        // Only predictable ids are lost; the answer is still checked.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        return (t ^ std::process::id()) as u16;
    }
    u16::from_be_bytes(b)
}

/// Lower case, without a final dot, in the presentation form names read
/// from answers have (`wire::presentation`).
fn normalize(name: &str) -> String {
    wire::presentation(name)
}

/// Parses one nameserver: `IP`, `IP:port` (port 1 to 65535), `[IPv6]` or
/// `[IPv6]:port`; a zone index (`fe80::1%eth0`) is dropped.
pub fn parse_server(s: &str) -> Option<SocketAddr> {
    let s = s.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        // Port 0 cannot be asked.
        return (a.port() != 0).then_some(a);
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    let bare = bare.split('%').next().unwrap_or(bare);
    bare.parse::<IpAddr>()
        .ok()
        .map(|ip| SocketAddr::new(ip, 53))
}

/// The `nameserver` entries of resolv.conf text.
pub fn parse_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            match (w.next(), w.next()) {
                (Some("nameserver"), Some(ip)) => parse_server(ip),
                _ => None,
            }
        })
        .collect()
}

/// Picks the servers: `DNSCACHEIP` (unless blank) over `control/nameservers`
/// over resolv.conf. A `DNSCACHEIP` or `control/nameservers` that names no
/// valid server is an error, not a reason to ask resolv.conf's servers.
pub fn choose_servers(
    env: Option<&str>,
    control: Option<&[String]>,
    resolv: Option<&str>,
) -> Result<Vec<SocketAddr>, String> {
    if let Some(e) = env.filter(|e| !e.trim().is_empty()) {
        let v: Vec<SocketAddr> = e.split_whitespace().filter_map(parse_server).collect();
        if v.is_empty() {
            return Err(format!(
                "DNSCACHEIP names no usable nameserver: {}",
                crate::paths::loggable(e)
            ));
        }
        return Ok(v);
    }
    if let Some(c) = control {
        let v: Vec<SocketAddr> = c.iter().filter_map(|l| parse_server(l)).collect();
        if v.is_empty() {
            return Err("control/nameservers names no usable nameserver".to_string());
        }
        return Ok(v);
    }
    Ok(resolv.map(parse_resolv_conf).unwrap_or_default())
}

/// Reads `control/nameservers`-style text from a file (for tools).
pub fn read_servers(path: &Path) -> std::io::Result<Vec<SocketAddr>> {
    Ok(crate::control::read_list(path)?
        .unwrap_or_default()
        .iter()
        .filter_map(|l| parse_server(l))
        .collect())
}

#[cfg(test)]
mod tests;
