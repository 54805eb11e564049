//! The parts of an X.509 certificate qmail-remote checks itself, as the TLS
//! patch (OpenSSL) does and webpki does not: the subject's commonName (used
//! when no subjectAltName matches), and, for a self-signed certificate pinned
//! in `control/tlshosts/HOST.pem`, its names and validity period.
//!
//! A small DER reader: only the fields named here are decoded, every length
//! is checked, and anything unexpected makes the certificate unreadable.

use std::net::IpAddr;

/// What is read from a certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertInfo {
    /// notBefore and notAfter, Unix seconds.
    pub not_before: i64,
    /// See `not_before`.
    pub not_after: i64,
    /// The subject's commonName values.
    pub cn: Vec<String>,
    /// subjectAltName dNSName values.
    pub dns: Vec<String>,
    /// subjectAltName iPAddress values.
    pub ips: Vec<IpAddr>,
    /// The issuer is the subject.
    pub self_signed: bool,
}

/// One DER element: its tag and contents.
struct Tlv<'a> {
    tag: u8,
    body: &'a [u8],
}

/// Splits the first element off `d`.
fn next(d: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&tag, rest) = d.split_first()?;
    let (&l0, rest) = rest.split_first()?;
    let (len, rest) = if l0 < 0x80 {
        (usize::from(l0), rest)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((
        Tlv {
            tag,
            body: &rest[..len],
        },
        &rest[len..],
    ))
}

/// The elements of a constructed element's contents.
fn items(mut d: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut v = Vec::new();
    while !d.is_empty() {
        let (t, rest) = next(d)?;
        v.push(t);
        d = rest;
    }
    Some(v)
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn time(t: &Tlv<'_>) -> Option<i64> {
    let s = std::str::from_utf8(t.body).ok()?.strip_suffix('Z')?;
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok());
    let (year, rest) = match (t.tag, s.len()) {
        (0x17, 12) => {
            let yy = n(0, 2)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, 2)
        }
        (0x18, 14) => (n(0, 4)?, 4),
        _ => return None,
    };
    let (mo, d) = (n(rest, rest + 2)?, n(rest + 2, rest + 4)?);
    let (h, mi, se) = (
        n(rest + 4, rest + 6)?,
        n(rest + 6, rest + 8)?,
        n(rest + 8, rest + 10)?,
    );
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Reads a DER certificate; `None` when it cannot be read.
pub fn parse(der: &[u8]) -> Option<CertInfo> {
    let (cert, _) = next(der)?;
    if cert.tag != SEQUENCE {
        return None;
    }
    let (tbs, _) = next(cert.body)?;
    if tbs.tag != SEQUENCE {
        return None;
    }
    let f = items(tbs.body)?;
    // [0] version is optional; then serial, signature, issuer, validity,
    // subject, subjectPublicKeyInfo, and the optional [1] [2] [3].
    let base = usize::from(f.first()?.tag == 0xa0);
    let validity = items(f.get(base + 3)?.body)?;
    let subject = f.get(base + 4)?;
    let mut info = CertInfo {
        not_before: time(validity.first()?)?,
        not_after: time(validity.get(1)?)?,
        self_signed: f.get(base + 2)?.body == subject.body,
        ..CertInfo::default()
    };
    for rdn in items(subject.body)? {
        if rdn.tag != SET {
            return None;
        }
        for atv in items(rdn.body)? {
            let parts = items(atv.body)?;
            if parts.len() == 2 && parts[0].tag == 0x06 && parts[0].body == OID_CN {
                info.cn
                    .push(String::from_utf8_lossy(parts[1].body).into_owned());
            }
        }
    }
    if let Some(ext) = f.iter().skip(base + 6).find(|t| t.tag == 0xa3) {
        let (list, _) = next(ext.body)?;
        for e in items(list.body)? {
            let parts = items(e.body)?;
            if parts
                .first()
                .is_some_and(|p| p.tag == 0x06 && p.body == OID_SAN)
            {
                let value = parts.last()?;
                let (names, _) = next(value.body)?;
                for n in items(names.body)? {
                    match n.tag {
                        0x82 => info.dns.push(String::from_utf8_lossy(n.body).into_owned()),
                        0x87 => match n.body.len() {
                            4 => info
                                .ips
                                .push(IpAddr::from(<[u8; 4]>::try_from(n.body).ok()?)),
                            16 => info
                                .ips
                                .push(IpAddr::from(<[u8; 16]>::try_from(n.body).ok()?)),
                            _ => {}
                        },
                        _ => {}
                    }
                }
            }
        }
    }
    Some(info)
}

/// A certificate name against a host name: equal ignoring case and a final
/// dot, or `*.rest` standing for exactly one label in front of `rest`.
pub fn name_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if let Some(rest) = p.strip_prefix("*.") {
        return h
            .split_once('.')
            .is_some_and(|(first, tail)| !first.is_empty() && tail == rest);
    }
    !p.is_empty() && p == h
}

impl CertInfo {
    /// True when the certificate names `host` (a DNS name or an address):
    /// a subjectAltName, else the commonName, as the TLS patch checks.
    pub fn names(&self, host: &str) -> bool {
        if let Some(ip) = super::route::literal(host) {
            return self.ips.contains(&ip) || self.cn.iter().any(|c| c.parse() == Ok(ip));
        }
        self.dns
            .iter()
            .chain(&self.cn)
            .any(|n| name_matches(n, host))
    }

    /// Every name the certificate presents, for a failure text.
    pub fn presented(&self) -> Vec<String> {
        let mut v: Vec<String> = self.dns.clone();
        v.extend(self.ips.iter().map(IpAddr::to_string));
        v.extend(self.cn.iter().filter(|c| !self.dns.contains(c)).cloned());
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal certificate body: the fields parse() reads, DER-encoded.
    fn der(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        if body.len() < 0x80 {
            v.push(body.len() as u8);
        } else {
            v.push(0x82);
            v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(body);
        v
    }

    fn cert(cn: &str, sans: &[(u8, &[u8])], not_before: &str, not_after: &str) -> Vec<u8> {
        let cat = |parts: &[Vec<u8>]| parts.concat();
        let version = der(0xa0, &der(0x02, &[2]));
        let serial = der(0x02, &[1]);
        let alg = der(SEQUENCE, &der(0x06, &[0x2a, 0x86, 0x48]));
        let rdn = |oid: &[u8], v: &str| {
            der(
                SET,
                &der(SEQUENCE, &cat(&[der(0x06, oid), der(0x0c, v.as_bytes())])),
            )
        };
        let name = der(
            SEQUENCE,
            &cat(&[rdn(&[0x55, 0x04, 0x0a], "Org"), rdn(OID_CN, cn)]),
        );
        let tm = |t: &str| der(if t.len() == 13 { 0x17 } else { 0x18 }, t.as_bytes());
        let validity = der(SEQUENCE, &cat(&[tm(not_before), tm(not_after)]));
        let spki = der(SEQUENCE, &der(0x03, &[0, 1, 2]));
        let gn: Vec<u8> = sans.iter().flat_map(|(t, b)| der(*t, b)).collect();
        let san = der(
            SEQUENCE,
            &cat(&[der(0x06, OID_SAN), der(0x04, &der(SEQUENCE, &gn))]),
        );
        let bc = der(
            SEQUENCE,
            &cat(&[
                der(0x06, &[0x55, 0x1d, 0x13]),
                der(0x04, &der(SEQUENCE, &[])),
            ]),
        );
        let exts = der(0xa3, &der(SEQUENCE, &cat(&[bc, san])));
        let tbs = der(
            SEQUENCE,
            &cat(&[
                version,
                serial,
                alg.clone(),
                name.clone(),
                validity,
                name,
                spki,
                exts,
            ]),
        );
        der(SEQUENCE, &cat(&[tbs, alg, der(0x03, &[0, 9])]))
    }

    #[test]
    fn reads_names_and_dates() {
        let c = cert(
            "mx.example.net",
            &[
                (0x82, b"*.example.org"),
                (0x87, &[192, 0, 2, 7]),
                (0x82, b"mail.test"),
            ],
            "251205100000Z",
            "20361231235959Z",
        );
        let i = parse(&c).unwrap();
        assert_eq!(i.cn, vec!["mx.example.net"]);
        assert_eq!(i.dns, vec!["*.example.org", "mail.test"]);
        assert_eq!(i.ips, vec!["192.0.2.7".parse::<IpAddr>().unwrap()]);
        assert_eq!(i.not_before, 1_764_928_800);
        assert_eq!(i.not_after, 2_114_380_799);
        assert!(i.names("mx.example.net"));
        assert!(i.names("MAIL.test."));
        assert!(i.names("a.example.org"));
        assert!(!i.names("a.b.example.org"));
        assert!(!i.names("example.org"));
        assert!(i.names("[192.0.2.7]"));
        assert!(!i.names("[192.0.2.8]"));
        assert_eq!(
            i.presented(),
            vec!["*.example.org", "mail.test", "192.0.2.7", "mx.example.net"]
        );
        // A commonName alone names the host.
        let c = cert("localhost", &[], "500101000000Z", "491231235959Z");
        let i = parse(&c).unwrap();
        assert!(i.names("localhost"));
        assert_eq!(i.not_before, -631_152_000);
    }

    #[test]
    fn broken_input_is_unreadable() {
        let c = cert("x", &[], "251205100000Z", "261205100000Z");
        for cut in [0, 1, 5, 20, c.len() / 2, c.len() - 1] {
            assert_eq!(parse(&c[..cut]), None, "{cut}");
        }
        assert_eq!(parse(&cert("x", &[], "2512051000Z", "261205100000Z")), None);
        assert_eq!(
            parse(&cert("x", &[], "251305100000Z", "261205100000Z")),
            None
        );
        assert_eq!(parse(b"\x30\x84\xff\xff\xff\xff"), None);
    }

    #[test]
    fn wildcards() {
        assert!(name_matches("*.mx.test", "mx1.mx.test"));
        assert!(!name_matches("*.mx.test", "mx.test"));
        assert!(!name_matches("*.mx.test", ".mx.test"));
        assert!(!name_matches("", ""));
        assert!(!name_matches("a*.mx.test", "ab.mx.test"));
    }

    #[test]
    fn fuzzed_certificates_name_only_what_they_say() {
        let seeds = [
            cert(
                "mx.example.net",
                &[(0x82, b"*.example.org"), (0x87, &[192, 0, 2, 7])],
                "251205100000Z",
                "20361231235959Z",
            ),
            cert("localhost", &[], "500101000000Z", "491231235959Z"),
        ];
        let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
        crate::fuzz::run(
            "certname",
            &seeds,
            &[
                b"\x82",
                b"\x84\xff\xff\xff\xff",
                b"\x30\x00",
                b"mx.example.net\0",
                b"*.",
                b"Z",
            ],
            4000,
            |input| {
                let Some(i) = parse(input) else { return };
                let said = i.presented();
                for host in [
                    "mx.example.net",
                    "a.example.org",
                    "[192.0.2.7]",
                    "localhost",
                ] {
                    if i.names(host) {
                        let bare = host.trim_matches(|c| c == '[' || c == ']');
                        let parent = host.split_once('.').map_or("", |p| p.1);
                        assert!(
                            said.iter().any(|n| {
                                let n = n.trim_end_matches('.').to_ascii_lowercase();
                                n == bare || n == format!("*.{parent}")
                            }),
                            "{host} named by {said:?}"
                        );
                    }
                }
            },
        );
    }
}
