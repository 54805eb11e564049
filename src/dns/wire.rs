//! The DNS message format (RFC 1035 section 4): queries are encoded, answers
//! decoded, and nothing else. Decoding is defensive: every read is bounds
//! checked, compression pointers are followed at most [`MAX_JUMPS`] times and
//! a name is at most 255 bytes, so a malformed packet gives an error, never a
//! panic or a loop.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Record type A (IPv4 address).
pub const TYPE_A: u16 = 1;
/// Record type CNAME.
pub const TYPE_CNAME: u16 = 5;
/// Record type MX.
pub const TYPE_MX: u16 = 15;
/// Record type AAAA (IPv6 address).
pub const TYPE_AAAA: u16 = 28;
/// Class IN.
pub const CLASS_IN: u16 = 1;

/// Response code: no error.
pub const RCODE_NOERROR: u8 = 0;
/// Response code: server failure.
pub const RCODE_SERVFAIL: u8 = 2;
/// Response code: the name does not exist.
pub const RCODE_NXDOMAIN: u8 = 3;

/// How many compression pointers one name may follow.
pub const MAX_JUMPS: usize = 64;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;

/// Why a packet could not be decoded, or a name not encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The packet ends in the middle of something.
    Short,
    /// A name is malformed (label type, length, pointer loop).
    BadName,
    /// A record's data does not fit its type.
    BadRecord,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Short => "truncated DNS packet",
            WireError::BadName => "malformed name in DNS packet",
            WireError::BadRecord => "malformed record in DNS packet",
        })
    }
}

/// The data of one answer record, for the types we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// An IPv6 address.
    Aaaa(Ipv6Addr),
    /// The canonical name.
    Cname(String),
    /// A mail exchanger; `host` is empty for the root (RFC 7505 null MX).
    Mx {
        /// Preference, lower is better.
        pref: u16,
        /// The exchanger's name.
        host: String,
    },
    /// Any other type, ignored.
    Other(u16),
}

/// One resource record of the answer section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name, lower case, without the final dot.
    pub name: String,
    /// Record type.
    pub rtype: u16,
    /// Class.
    pub class: u16,
    /// Time to live.
    pub ttl: u32,
    /// The data.
    pub data: RData,
}

/// A decoded message: header, the question and the answer section (the
/// authority and additional sections are not used and not decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Query id.
    pub id: u16,
    /// Header flags including opcode and rcode.
    pub flags: u16,
    /// The questions: (name, type, class).
    pub questions: Vec<(String, u16, u16)>,
    /// The answer records.
    pub answers: Vec<Record>,
}

impl Message {
    /// True for a response (QR set).
    pub fn is_response(&self) -> bool {
        self.flags & FLAG_QR != 0
    }
    /// True when the answer was truncated (TC set): ask again over TCP.
    pub fn truncated(&self) -> bool {
        self.flags & FLAG_TC != 0
    }
    /// The response code (low 4 bits).
    pub fn rcode(&self) -> u8 {
        (self.flags & 0x000f) as u8
    }
}

/// Encodes a recursive query for `name` (a trailing dot is allowed).
pub fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(18 + name.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    encode_name(name, &mut out)?;
    out.extend_from_slice(&qtype.to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(out)
}

/// Appends `name` in wire form (uncompressed). `name` is in presentation
/// form ([`read_name`]'s): `\DDD` and `\c` stand for one byte of a label.
pub fn encode_name(name: &str, out: &mut Vec<u8>) -> Result<(), WireError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut total = 1;
    if name.is_empty() {
        out.push(0);
        return Ok(());
    }
    let b = name.as_bytes();
    let mut label: Vec<u8> = Vec::new();
    let mut i = 0;
    loop {
        let end = i >= b.len();
        if end || b[i] == b'.' {
            if label.is_empty() || label.len() > 63 {
                return Err(WireError::BadName);
            }
            total += label.len() + 1;
            if total > 255 {
                return Err(WireError::BadName);
            }
            out.push(label.len() as u8);
            out.extend_from_slice(&label);
            label.clear();
            if end {
                break;
            }
            i += 1;
            continue;
        }
        if b[i] == b'\\' && i + 1 < b.len() {
            let d = &b[i + 1..b.len().min(i + 4)];
            if d.len() == 3 && d.iter().all(u8::is_ascii_digit) {
                let v = u32::from(d[0] - b'0') * 100
                    + u32::from(d[1] - b'0') * 10
                    + u32::from(d[2] - b'0');
                label.push(u8::try_from(v).map_err(|_| WireError::BadName)?);
                i += 4;
            } else {
                label.push(b[i + 1]);
                i += 2;
            }
            continue;
        }
        label.push(b[i]);
        i += 1;
    }
    out.push(0);
    Ok(())
}

/// `name` in the presentation form [`read_name`] gives (lower case, no
/// final dot, bytes escaped as it escapes them), so that names from the
/// wire and names asked for compare; a name that cannot be one is only
/// lowercased.
pub fn presentation(name: &str) -> String {
    let mut b = Vec::with_capacity(name.len() + 2);
    match encode_name(name, &mut b).map(|()| read_name(&b, 0)) {
        Ok(Ok((s, _))) => s,
        _ => name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase(),
    }
}

/// One label in presentation form: letters (lowercased), digits, `-` and
/// `_` as they are, every other byte as `\DDD`, so a name from the wire
/// never carries a character that means something in a log line, a
/// report or an SMTP command.
fn push_label(label: &[u8], out: &mut String) {
    for &c in label {
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            out.push(char::from(c.to_ascii_lowercase()));
        } else {
            out.push_str(&format!("\\{c:03}"));
        }
    }
}

/// Decodes a message.
pub fn decode(buf: &[u8]) -> Result<Message, WireError> {
    let id = be16(buf, 0)?;
    let flags = be16(buf, 2)?;
    let qd = be16(buf, 4)?;
    let an = be16(buf, 6)?;
    let mut pos = 12;
    if buf.len() < pos {
        return Err(WireError::Short);
    }
    let mut questions = Vec::new();
    for _ in 0..qd {
        let (name, next) = read_name(buf, pos)?;
        let qtype = be16(buf, next)?;
        let qclass = be16(buf, next + 2)?;
        pos = next + 4;
        questions.push((name, qtype, qclass));
    }
    let mut answers = Vec::new();
    for _ in 0..an {
        let (name, next) = read_name(buf, pos)?;
        let rtype = be16(buf, next)?;
        let class = be16(buf, next + 2)?;
        let ttl = (u32::from(be16(buf, next + 4)?) << 16) | u32::from(be16(buf, next + 6)?);
        let rdlen = usize::from(be16(buf, next + 8)?);
        let start = next + 10;
        let end = start + rdlen;
        let rdata = buf.get(start..end).ok_or(WireError::Short)?;
        let data = match (rtype, class) {
            (TYPE_A, CLASS_IN) => {
                let o: [u8; 4] = rdata.try_into().map_err(|_| WireError::BadRecord)?;
                RData::A(Ipv4Addr::from(o))
            }
            (TYPE_AAAA, CLASS_IN) => {
                let o: [u8; 16] = rdata.try_into().map_err(|_| WireError::BadRecord)?;
                RData::Aaaa(Ipv6Addr::from(o))
            }
            (TYPE_CNAME, _) => {
                let (n, after) = read_name(buf, start)?;
                if after != end {
                    return Err(WireError::BadRecord);
                }
                RData::Cname(n)
            }
            (TYPE_MX, _) => {
                let pref = be16(buf, start)?;
                if rdlen < 3 {
                    return Err(WireError::BadRecord);
                }
                let (host, after) = read_name(buf, start + 2)?;
                if after != end {
                    return Err(WireError::BadRecord);
                }
                RData::Mx { pref, host }
            }
            (t, _) => RData::Other(t),
        };
        answers.push(Record {
            name,
            rtype,
            class,
            ttl,
            data,
        });
        pos = end;
    }
    Ok(Message {
        id,
        flags,
        questions,
        answers,
    })
}

fn be16(buf: &[u8], pos: usize) -> Result<u16, WireError> {
    match buf.get(pos..pos + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(WireError::Short),
    }
}

/// Reads a (possibly compressed) name at `pos`; returns it in text form (lower
/// case, no final dot, the root as "") and the position after it.
///
/// Bytes other than letters, digits, `-` and `_` are written as `\DDD` so
/// that a hostile answer cannot put dots, spaces or control characters into
/// a host name that ends up in a log, an SMTP command or a file name.
pub fn read_name(buf: &[u8], mut pos: usize) -> Result<(String, usize), WireError> {
    let mut out = String::new();
    let mut after: Option<usize> = None;
    let mut jumps = 0;
    let mut wire_len = 1;
    loop {
        let len = *buf.get(pos).ok_or(WireError::Short)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                return Ok((out, after.unwrap_or(pos + 1)));
            }
            0x00 => {
                let n = usize::from(len);
                let label = buf.get(pos + 1..pos + 1 + n).ok_or(WireError::Short)?;
                wire_len += n + 1;
                if wire_len > 255 {
                    return Err(WireError::BadName);
                }
                if !out.is_empty() {
                    out.push('.');
                }
                push_label(label, &mut out);
                pos += 1 + n;
            }
            0xc0 => {
                let lo = *buf.get(pos + 1).ok_or(WireError::Short)?;
                if after.is_none() {
                    after = Some(pos + 2);
                }
                jumps += 1;
                if jumps > MAX_JUMPS {
                    return Err(WireError::BadName);
                }
                pos = (usize::from(len & 0x3f) << 8) | usize::from(lo);
            }
            _ => return Err(WireError::BadName),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A response to an MX query for example.com with two compressed MX
    /// records and a compressed CNAME.
    fn sample() -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 4, 0, 0, 0, 0];
        // question at 12: example.com MX IN
        p.extend_from_slice(b"\x07example\x03com\x00\x00\x0f\x00\x01");
        // answer 1: example.com (ptr 12) MX 10 mx1.example.com
        p.extend_from_slice(&[0xc0, 12, 0, 15, 0, 1, 0, 0, 0x0e, 0x10, 0, 8, 0, 10]);
        p.extend_from_slice(b"\x03mx1\xc0\x0c");
        // answer 2: MX 20 MX2.Example.COM written out (upper case)
        p.extend_from_slice(&[0xc0, 12, 0, 15, 0, 1, 0, 0, 0, 60, 0, 19, 0, 20]);
        p.extend_from_slice(b"\x03MX2\x07Example\x03COM\x00");
        // answer 3: www.example.com CNAME example.com
        p.extend_from_slice(b"\x03www\xc0\x0c");
        p.extend_from_slice(&[0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc0, 12]);
        // answer 4: example.com A 192.0.2.1
        p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1]);
        p
    }

    #[test]
    fn query_encoding() {
        let q = encode_query(0xbeef, "mx.example.com.", TYPE_MX).unwrap();
        assert_eq!(
            q,
            b"\xbe\xef\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x02mx\x07example\x03com\x00\x00\x0f\x00\x01"
        );
        let back = decode(&q).unwrap();
        assert_eq!(
            back.questions,
            vec![("mx.example.com".into(), TYPE_MX, CLASS_IN)]
        );
        assert!(!back.is_response());
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["a..b", ".a", &"x".repeat(64), &["abcdefghi"; 26].join(".")] {
            assert_eq!(
                encode_query(1, bad, TYPE_A),
                Err(WireError::BadName),
                "{bad}"
            );
        }
        assert!(encode_query(1, &"x".repeat(63), TYPE_A).is_ok());
        assert!(encode_query(1, ".", TYPE_A).is_ok());
    }

    #[test]
    fn compressed_answers() {
        let m = decode(&sample()).unwrap();
        assert_eq!(m.id, 0x1234);
        assert!(m.is_response());
        assert!(!m.truncated());
        assert_eq!(m.rcode(), RCODE_NOERROR);
        assert_eq!(m.answers.len(), 4);
        assert_eq!(
            m.answers[0].data,
            RData::Mx {
                pref: 10,
                host: "mx1.example.com".into()
            }
        );
        assert_eq!(m.answers[0].ttl, 3600);
        assert_eq!(
            m.answers[1].data,
            RData::Mx {
                pref: 20,
                host: "mx2.example.com".into()
            }
        );
        assert_eq!(m.answers[2].name, "www.example.com");
        assert_eq!(m.answers[2].data, RData::Cname("example.com".into()));
        assert_eq!(m.answers[3].data, RData::A(Ipv4Addr::new(192, 0, 2, 1)));
    }

    #[test]
    fn odd_label_bytes_are_escaped() {
        let mut p = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(b"\x05a.b c\x00\x00\x01\x00\x01");
        let m = decode(&p).unwrap();
        assert_eq!(m.questions[0].0, "a\\046b\\032c");
    }

    #[test]
    fn pointer_loops_and_forward_garbage_fail() {
        // A name that points at itself.
        let mut p = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(decode(&p), Err(WireError::BadName));
        // Two pointers to each other.
        let mut p = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0xc0, 14, 0xc0, 12, 0, 1, 0, 1]);
        assert_eq!(decode(&p), Err(WireError::BadName));
        // Extended label types.
        let mut p = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&[0x41, 0, 0, 1, 0, 1]);
        assert_eq!(decode(&p), Err(WireError::BadName));
        // An A record with 5 bytes of data.
        let mut p = vec![0, 1, 0x81, 0x80, 0, 0, 0, 1, 0, 0, 0, 0];
        p.extend_from_slice(&[0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 5, 1, 2, 3, 4, 5]);
        assert_eq!(decode(&p), Err(WireError::BadRecord));
    }

    #[test]
    fn a_long_pointer_chain_is_bounded() {
        // 300 one-byte labels reached through pointers: too long a name.
        let mut p = vec![0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0];
        for i in 0..300usize {
            let next = 12 + (i + 1) * 4;
            p.extend_from_slice(&[1, b'a', 0xc0 | (next >> 8) as u8, next as u8]);
        }
        p.push(0);
        assert!(decode(&p).is_err());
    }

    #[test]
    fn malformed_packets_never_panic() {
        let good = sample();
        // Every truncation.
        for n in 0..good.len() {
            let _ = decode(&good[..n]);
        }
        // Every byte replaced by interesting values.
        for i in 0..good.len() {
            for v in [0u8, 1, 0x3f, 0x40, 0x80, 0xc0, 0xc1, 0xff, 12, 13] {
                let mut p = good.clone();
                p[i] = v;
                let _ = decode(&p);
            }
        }
        // Pseudo-random packets.
        let mut x: u32 = 0x9e37_79b9;
        for len in 0..600 {
            let mut p = Vec::with_capacity(len);
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                p.push(x as u8);
            }
            if len > 12 {
                p[4] = 0;
                p[5] = 1;
                p[6] = 0;
                p[7] = (x % 8) as u8;
            }
            let _ = decode(&p);
        }
    }
}
