//! Where a message for a domain goes: `control/smtproutes`, address
//! literals, MX records sorted by preference (ties shuffled), the addresses
//! of each exchanger, and qmail's rule against delivering to ourselves.

use std::net::{IpAddr, Ipv6Addr};

use super::report::{text, Report};
use crate::dns::{Error, Mx, Resolver};

/// One address to try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The exchanger's (or relay's) name; SNI and TLS policy use it.
    pub name: String,
    /// Its address.
    pub ip: IpAddr,
    /// MX preference (0 for A records, relays and literals).
    pub pref: u32,
}

impl Target {
    /// `name[ip]` as reports show it; `[ip]` for an address literal.
    pub fn peer(&self) -> String {
        if literal(&self.name).is_some() {
            format!("[{}]", self.ip)
        } else {
            format!("{}[{}]", self.name, self.ip)
        }
    }
}

/// One `control/smtproutes` line: `domain:relay[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// The domain (lower case), `.suffix`, or "" for everything.
    pub key: String,
    /// The relay host; empty = MX lookup as usual.
    pub relay: String,
    /// The port, when given.
    pub port: Option<u16>,
    /// A port was given but is not a number from 1 to 65535: the route
    /// still applies, and its mail is deferred with this text.
    pub bad_port: Option<String>,
    /// The relay is a malformed address literal (`[192.0.2.1` without its
    /// `]`, text after the `]`, or no address inside): the route still
    /// applies, and its mail is deferred, never sent elsewhere.
    pub bad_relay: Option<String>,
}

/// Parses smtproutes lines (a relay may be a `[literal]`, IPv6 included).
pub fn parse_routes(lines: &[String]) -> Vec<RouteEntry> {
    lines
        .iter()
        .filter_map(|l| {
            let (key, rest) = l.split_once(':')?;
            let mut bad_relay = None;
            let (relay, port) = if rest.starts_with('[') {
                match rest.find(']') {
                    Some(end) => {
                        let (r, p) = rest.split_at(end + 1);
                        if literal(r).is_none() || !(p.is_empty() || p.starts_with(':')) {
                            bad_relay = Some(rest.split(':').next().unwrap_or(rest).to_string());
                        }
                        (r, p.strip_prefix(':'))
                    }
                    None => {
                        bad_relay = Some(rest.to_string());
                        (rest, None)
                    }
                }
            } else {
                match rest.split_once(':') {
                    Some((r, p)) => (r, Some(p)),
                    None => (rest, None),
                }
            };
            let (port, bad_port) = match port.map(str::trim) {
                Some(p) if !p.is_empty() => match p.parse::<u16>() {
                    Ok(n) if n > 0 => (Some(n), None),
                    _ => (None, Some(p.to_string())),
                },
                _ => (None, None),
            };
            Some(RouteEntry {
                key: key.trim().to_ascii_lowercase(),
                relay: relay.trim().to_string(),
                port,
                bad_port,
                bad_relay,
            })
        })
        .collect()
}

/// qmail's lookup: the host itself, then each `.suffix`, then "".
pub fn find_route<'a>(routes: &'a [RouteEntry], host: &str) -> Option<&'a RouteEntry> {
    let host = host.to_ascii_lowercase();
    let get = |k: &str| routes.iter().find(|r| r.key == k);
    if let Some(r) = get(&host) {
        return Some(r);
    }
    for (i, c) in host.char_indices() {
        if c == '.' {
            if let Some(r) = get(&host[i..]) {
                return Some(r);
            }
        }
    }
    get("")
}

/// An address literal: `[192.0.2.1]`, `[IPv6:2001:db8::1]`, or a bare IP.
pub fn literal(host: &str) -> Option<IpAddr> {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Some(v6) = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
    {
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    inner.parse::<IpAddr>().ok()
}

/// A small random source for shuffling ties.
pub struct Rng(u64);

impl Rng {
    /// Seeded from the system.
    pub fn new() -> Rng {
        let mut b = [0u8; 8];
        if getrandom::fill(&mut b).is_err() {
            b = (u64::from(std::process::id()) ^ 0x9e37_79b9_7f4a_7c15).to_le_bytes();
        }
        Rng(u64::from_le_bytes(b) | 1)
    }
    /// A value below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

impl Default for Rng {
    fn default() -> Self {
        Rng::new()
    }
}

/// Shuffles exchangers of equal preference (the list is sorted).
pub fn shuffle_ties(mxs: &mut [Mx], rng: &mut Rng) {
    let mut i = 0;
    while i < mxs.len() {
        let mut j = i;
        while j < mxs.len() && mxs[j].pref == mxs[i].pref {
            j += 1;
        }
        for k in (i + 1..j).rev() {
            let r = i + rng.below(k - i + 1);
            mxs.swap(k, r);
        }
        i = j;
    }
}

/// The addresses for a relay from smtproutes (A/AAAA only, no MX).
pub fn resolve_relay(res: &Resolver, relay: &str) -> Result<Vec<Target>, Report> {
    if let Some(ip) = literal(relay) {
        return Ok(vec![Target {
            name: relay.to_string(),
            ip,
            pref: 0,
        }]);
    }
    match res.ips(relay) {
        Ok(ips) => Ok(ips
            .into_iter()
            .map(|ip| Target {
                name: relay.to_ascii_lowercase(),
                ip,
                pref: 0,
            })
            .collect()),
        Err(Error::Temporary(_)) => Err(Report::temp(text::DNS_TEMP)),
        Err(_) => Err(Report::perm(text::no_host(relay))),
    }
}

/// The addresses for a domain: MX records by preference (ties shuffled),
/// every address of each; without MX records the domain's own addresses.
pub fn resolve_mx(res: &Resolver, host: &str, rng: &mut Rng) -> Result<Vec<Target>, Report> {
    if let Some(ip) = literal(host) {
        return Ok(vec![Target {
            name: host.to_string(),
            ip,
            pref: 0,
        }]);
    }
    let host = host.to_ascii_lowercase();
    let mut mxs = match res.mx(&host) {
        Ok(m) => m,
        Err(Error::NxDomain) => return Err(Report::perm(text::no_host(&host))),
        Err(Error::Temporary(_)) => return Err(Report::temp(text::DNS_TEMP)),
        Err(Error::NoData) => {
            return match res.ips(&host) {
                Ok(ips) => Ok(ips
                    .into_iter()
                    .map(|ip| Target {
                        name: host.clone(),
                        ip,
                        pref: 0,
                    })
                    .collect()),
                Err(Error::Temporary(_)) => Err(Report::temp(text::DNS_TEMP)),
                Err(Error::NxDomain | Error::NoData) => Err(Report::perm(text::no_host(&host))),
            };
        }
    };
    if mxs.iter().all(|m| m.host.is_empty()) {
        return Err(Report::perm(text::null_mx(&host)));
    }
    shuffle_ties(&mut mxs, rng);
    let mut out = Vec::new();
    let mut soft = false;
    let mut why = String::new();
    for m in mxs.iter().filter(|m| !m.host.is_empty()) {
        let found = match literal(&m.host) {
            Some(ip) => Ok(vec![ip]),
            None => res.ips(&m.host),
        };
        match found {
            Ok(ips) => out.extend(ips.into_iter().map(|ip| Target {
                name: m.host.clone(),
                ip,
                pref: u32::from(m.pref),
            })),
            Err(Error::Temporary(_)) => soft = true,
            Err(Error::NoData) => why.push_str(&text::name_service_nodata(&m.host)),
            // An exchanger that does not exist at all gets qmail's text alone
            // (COMPAT section A adds a line only for one without addresses).
            Err(Error::NxDomain) => {}
        }
    }
    if out.is_empty() {
        if soft {
            return Err(Report::temp(text::DNS_TEMP));
        }
        return Err(Report::perm(format!("{why}{}", text::NO_MX)));
    }
    Ok(out)
}

/// qmail's ipme rule: when one of the targets is this host, only exchangers
/// with a strictly lower preference may be used.
pub fn apply_ipme(mut targets: Vec<Target>, ipme: &[IpAddr]) -> Result<Vec<Target>, Report> {
    // An IPv4-mapped IPv6 address (`::ffff:A.B.C.D`, from an AAAA record or
    // an `[IPv6:...]` literal) is the IPv4 address it maps.
    let is_me = |ip: &IpAddr| ipme.iter().any(|m| m.to_canonical() == ip.to_canonical());
    let prefme = targets
        .iter()
        .filter(|t| is_me(&t.ip))
        .map(|t| t.pref)
        .min();
    if let Some(p) = prefme {
        targets.retain(|t| t.pref < p);
        if targets.is_empty() {
            return Err(Report::perm(text::IPME));
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtproutes_lookup() {
        let lines: Vec<String> = [
            "example.com:relay.example.net",
            ".example.org:[192.0.2.9]:2525",
            "v6.test:[IPv6:2001:db8::1]:26",
            "mx.test::2526",
            ":smarthost.example:587",
            "bad line",
            "bad.port:x:99999",
            "typo.port:relay.test:notaport",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let r = parse_routes(&lines);
        assert_eq!(r.len(), 7);
        // A bad port keeps the route (its mail is deferred, not sent elsewhere).
        let bad = find_route(&r, "bad.port").unwrap();
        assert_eq!((bad.port, bad.bad_port.as_deref()), (None, Some("99999")));
        let typo = find_route(&r, "typo.port").unwrap();
        assert_eq!(typo.bad_port.as_deref(), Some("notaport"));
        assert_eq!(find_route(&r, "mx.test").unwrap().bad_port, None);
        // So does a malformed literal.
        let r2 = parse_routes(&[
            "a.test:[127.0.0.1:3714".to_string(),
            "b.test:[127.0.0.1]x:3714".to_string(),
            "c.test:[not-an-ip]".to_string(),
            "d.test:[127.0.0.1]:3714".to_string(),
        ]);
        let bad = |h: &str| find_route(&r2, h).unwrap().bad_relay.clone();
        assert_eq!(bad("a.test").as_deref(), Some("[127.0.0.1:3714"));
        assert_eq!(bad("b.test").as_deref(), Some("[127.0.0.1]x"));
        assert_eq!(bad("c.test").as_deref(), Some("[not-an-ip]"));
        assert_eq!(bad("d.test"), None);
        let f = |h: &str| find_route(&r, h).map(|e| (e.relay.clone(), e.port));
        assert_eq!(f("Example.COM"), Some(("relay.example.net".into(), None)));
        assert_eq!(f("a.example.org"), Some(("[192.0.2.9]".into(), Some(2525))));
        assert_eq!(
            f("example.org"),
            Some(("smarthost.example".into(), Some(587)))
        );
        assert_eq!(f("v6.test"), Some(("[IPv6:2001:db8::1]".into(), Some(26))));
        assert_eq!(f("mx.test"), Some(("".into(), Some(2526))));
        assert_eq!(find_route(&r[..3], "other.test"), None);
    }

    #[test]
    fn literals() {
        assert_eq!(literal("[192.0.2.1]"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(literal("192.0.2.1"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            literal("[IPv6:2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(literal("example.com"), None);
        assert_eq!(literal("[example.com]"), None);
    }

    #[test]
    fn ties_are_shuffled_only_among_themselves() {
        let mk = |p: u16, h: &str| Mx {
            pref: p,
            host: h.into(),
        };
        let mut seen_first = std::collections::HashSet::new();
        let mut rng = Rng::new();
        for _ in 0..200 {
            let mut v = vec![
                mk(5, "a"),
                mk(10, "b"),
                mk(10, "c"),
                mk(10, "d"),
                mk(20, "e"),
            ];
            shuffle_ties(&mut v, &mut rng);
            assert_eq!(v[0].host, "a");
            assert_eq!(v[4].host, "e");
            seen_first.insert(v[1].host.clone());
        }
        assert_eq!(seen_first.len(), 3);
    }

    #[test]
    fn ipme_keeps_only_better_exchangers() {
        let t = |n: &str, ip: &str, pref| Target {
            name: n.into(),
            ip: ip.parse().unwrap(),
            pref,
        };
        let me: Vec<IpAddr> = vec!["192.0.2.2".parse().unwrap()];
        let v = vec![
            t("a", "192.0.2.1", 10),
            t("me", "192.0.2.2", 20),
            t("c", "192.0.2.3", 30),
        ];
        assert_eq!(apply_ipme(v, &me).unwrap(), vec![t("a", "192.0.2.1", 10)]);
        let v = vec![t("me", "192.0.2.2", 10), t("c", "192.0.2.3", 30)];
        assert_eq!(apply_ipme(v, &me).unwrap_err().text, text::IPME);
        // The same host through an IPv4-mapped AAAA record.
        let v = vec![t("me", "::ffff:192.0.2.2", 10), t("c", "192.0.2.3", 30)];
        assert_eq!(apply_ipme(v, &me).unwrap_err().text, text::IPME);
    }
}
