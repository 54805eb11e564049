//! tcprules: the rules text syntax and its cdb encoding, as ucspi-tcp 0.88 writes
//! and tcpserver reads them (tcprules(1), tcpserver(1)).
//!
//! Text: one rule per line, `ADDRESS:allow` or `ADDRESS:deny`, followed by any
//! number of `,VAR=XvalueX` where `X` is any quote character. Lines starting
//! with `#` are comments; trailing spaces and tabs are stripped; lines without
//! a `:` are ignored. Anything else is fatal: `tcprules: fatal: unable to parse
//! this line: LINE` (exit 100), and the old cdb stays in place.
//!
//! ADDRESS is `1.2.3.4`, a prefix `1.2.3.`, a range `1.2.3.4-7` or `10.0-3.`
//! (the octet holding the first `-` is expanded, one key per value, the top
//! capped at 255; only when the address holds neither `=` nor `@`), `=host`, `=.domain`,
//! `=`, `info@address`, or empty.
//!
//! cdb: key = the address, value = `D\0` for deny, then `+VAR=value\0` for each
//! variable; allow without variables is an empty value. Records are added in
//! input order, so for a duplicate key the first rule wins in tcpserver.

use std::fmt;
use std::io;

use crate::cdb;

/// A line tcprules refuses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// The offending line, trailing white space stripped.
    pub line: Vec<u8>,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unable to parse this line: {}",
            String::from_utf8_lossy(&self.line)
        )
    }
}

impl ParseError {
    /// The whole message tcprules prints before exiting 100.
    pub fn fatal_message(&self) -> String {
        format!("tcprules: fatal: {self}")
    }
}

impl std::error::Error for ParseError {}

impl From<ParseError> for io::Error {
    fn from(e: ParseError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// One parsed rule: the address as written and its encoded cdb value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The address part, before range expansion.
    pub address: Vec<u8>,
    /// The cdb value (`D\0` and `+VAR=value\0` entries).
    pub data: Vec<u8>,
}

/// Parses one line (without its `\n`). `Ok(None)` for comments and lines
/// without a `:`.
pub fn parse_line(line: &[u8]) -> Result<Option<Rule>, ParseError> {
    if line.first() == Some(&b'#') {
        return Ok(None);
    }
    let mut len = line.len();
    while len > 0 && (line[len - 1] == b' ' || line[len - 1] == b'\t') {
        len -= 1;
    }
    let line = &line[..len];
    let bad = || ParseError {
        line: line.to_vec(),
    };
    let Some(colon) = line.iter().position(|&c| c == b':') else {
        return Ok(None);
    };
    let address = line[..colon].to_vec();
    let mut x = &line[colon + 1..];
    let mut data = Vec::new();
    if let Some(rest) = x.strip_prefix(b"allow") {
        x = rest;
    } else if let Some(rest) = x.strip_prefix(b"deny") {
        x = rest;
        data.extend_from_slice(b"D\0");
    } else {
        return Err(bad());
    }
    while let Some((&c, rest)) = x.split_first() {
        if c != b',' {
            return Err(bad());
        }
        let eq = rest.iter().position(|&c| c == b'=').ok_or_else(bad)?;
        data.push(b'+');
        data.extend_from_slice(&rest[..=eq]);
        let after = &rest[eq + 1..];
        let (&quote, value) = after.split_first().ok_or_else(bad)?;
        let end = value.iter().position(|&c| c == quote).ok_or_else(bad)?;
        data.extend_from_slice(&value[..end]);
        data.push(0);
        x = &value[end + 1..];
    }
    Ok(Some(Rule { address, data }))
}

/// The cdb keys of an address: itself, or one per value of its range
/// (`1.2.3.4-7`; not for `=host` or `info@ip` keys, as in tcprules). `None`
/// when a range's ends are not numbers: tcprules refuses the line.
pub fn expand(address: &[u8]) -> Option<Vec<Vec<u8>>> {
    if !address.contains(&b'=') && !address.contains(&b'@') {
        if let Some(i) = address.iter().position(|&c| c == b'-') {
            let left = address[..i]
                .iter()
                .rposition(|&c| c == b'.')
                .map_or(0, |p| p + 1);
            let right = address[i + 1..]
                .iter()
                .position(|&c| c == b'.')
                .map_or(address.len(), |p| i + 1 + p);
            let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
            if !digits(&address[left..i]) || !digits(&address[i + 1..right]) {
                return None;
            }
            let bot = scan_ulong(&address[left..i]);
            let top = scan_ulong(&address[i + 1..right]).min(255);
            return Some(
                (bot..=top)
                    .map(|n| {
                        let mut k = address[..left].to_vec();
                        k.extend_from_slice(n.to_string().as_bytes());
                        k.extend_from_slice(&address[right..]);
                        k
                    })
                    .collect(),
            );
        }
    }
    Some(vec![address.to_vec()])
}

/// Compiles rules text into cdb records, exactly as `tcprules` does.
pub fn compile(text: &[u8]) -> Result<cdb::Writer, ParseError> {
    let mut w = cdb::Writer::new();
    for line in lines(text) {
        if let Some(rule) = parse_line(line)? {
            let keys = expand(&rule.address).ok_or_else(|| ParseError {
                line: line.to_vec(),
            })?;
            for key in keys {
                w.add(&key, &rule.data);
            }
        }
    }
    Ok(w)
}

/// What a cdb value says: deny or allow, and the variables to set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// True for a deny rule.
    pub deny: bool,
    /// The variables, in order.
    pub env: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Decodes a cdb value as tcpserver does (entries without a `\0` are ignored).
pub fn decode(data: &[u8]) -> Decision {
    let mut d = Decision::default();
    let mut rest = data;
    while let Some(end) = rest.iter().position(|&c| c == 0) {
        let entry = &rest[..end];
        match entry.first() {
            Some(b'D') => d.deny = true,
            Some(b'+') => {
                if let Some(eq) = entry.iter().position(|&c| c == b'=') {
                    d.env
                        .push((entry[1..eq].to_vec(), entry[eq + 1..].to_vec()));
                }
            }
            _ => {}
        }
        rest = &rest[end + 1..];
    }
    d
}

/// The keys tcpserver tries, first hit wins: `INFO@IP`, `INFO@=HOST`, `IP`,
/// `=HOST`, the IP's prefixes ending in `.`, the `=.suffixes` of HOST, `=`
/// (when HOST is known), and the empty key.
pub fn lookup_keys(ip: &str, host: Option<&str>, info: Option<&str>) -> Vec<String> {
    let mut keys = Vec::new();
    if let Some(info) = info {
        keys.push(format!("{info}@{ip}"));
        if let Some(h) = host {
            keys.push(format!("{info}@={h}"));
        }
    }
    keys.push(ip.to_string());
    if let Some(h) = host {
        keys.push(format!("={h}"));
    }
    let mut p = ip;
    while let Some(dot) = p[..p.len().saturating_sub(1)].rfind('.') {
        p = &ip[..=dot];
        keys.push(p.to_string());
    }
    if let Some(h) = host {
        let mut s = h;
        while let Some(dot) = s.find('.') {
            s = &s[dot..];
            keys.push(format!("={s}"));
            s = &s[1..];
        }
        keys.push("=".to_string());
    }
    keys.push(String::new());
    keys
}

/// Looks a connection up as tcpserver does: the matching key and its decision,
/// or `None` (tcpserver then allows without variables).
pub fn check(
    rules: &cdb::Reader,
    ip: &str,
    host: Option<&str>,
    info: Option<&str>,
) -> io::Result<Option<(String, Decision)>> {
    for key in lookup_keys(ip, host, info) {
        if let Some(data) = rules.get(key.as_bytes())? {
            return Ok(Some((key, decode(&data))));
        }
    }
    Ok(None)
}

/// Splits input into lines as tcprules reads them (`\n` removed; a last line
/// without `\n` still counts).
fn lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    let t = text.strip_suffix(b"\n").unwrap_or(text);
    let empty = text.is_empty();
    t.split(|&c| c == b'\n').filter(move |_| !empty)
}

/// scan_ulong: leading decimal digits, wrapping like the C original.
fn scan_ulong(s: &[u8]) -> u64 {
    s.iter()
        .take_while(|c| c.is_ascii_digit())
        .fold(0u64, |n, &c| {
            n.wrapping_mul(10).wrapping_add(u64::from(c - b'0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(l: &str) -> Option<(String, Vec<u8>)> {
        parse_line(l.as_bytes())
            .unwrap()
            .map(|r| (String::from_utf8(r.address).unwrap(), r.data))
    }

    #[test]
    fn encodes_allow_deny_and_variables() {
        assert_eq!(rule(":allow"), Some((String::new(), vec![])));
        assert_eq!(
            rule("1.2.3.4:deny"),
            Some(("1.2.3.4".into(), b"D\0".to_vec()))
        );
        assert_eq!(
            rule("1.2.3.5:allow,A=\"x\",B='y'"),
            Some(("1.2.3.5".into(), b"+A=x\0+B=y\0".to_vec()))
        );
        assert_eq!(
            rule("10.:deny,RBLSMTPD=\"-go away\""),
            Some(("10.".into(), b"D\0+RBLSMTPD=-go away\0".to_vec()))
        );
        assert_eq!(
            rule("127.:allow,RELAYCLIENT=\"\",RBLSMTPD=\"\"  \t"),
            Some(("127.".into(), b"+RELAYCLIENT=\0+RBLSMTPD=\0".to_vec()))
        );
        // Any character quotes, even one inside the value's alphabet.
        assert_eq!(
            rule("=host.example:allow,X=/a\"b/"),
            Some(("=host.example".into(), b"+X=a\"b\0".to_vec()))
        );
    }

    #[test]
    fn comments_blank_and_colonless_lines_are_ignored() {
        assert_eq!(rule("# 1.2.3.4:deny"), None);
        assert_eq!(rule(""), None);
        assert_eq!(rule("   \t"), None);
        assert_eq!(rule("no colon here"), None);
    }

    #[test]
    fn bad_lines_are_refused_with_tcprules_text() {
        for l in [
            "x:Allow",
            "x:allowfoo",
            "x:allow,A",
            "x:allow,A=",
            "x:allow,A=\"x",
            "x:ALLOW",
            "x:",
            "x:deny ,A=\"\"",
        ] {
            let e = parse_line(l.as_bytes()).unwrap_err();
            assert_eq!(e.to_string(), format!("unable to parse this line: {l}"));
        }
        // Trailing white space is gone from the quoted line.
        let e = parse_line(b"x:nope \t").unwrap_err();
        assert_eq!(e.line, b"x:nope");
    }

    #[test]
    fn fatal_message_is_tcprules_own() {
        let e = parse_line(b"1.2.3.4:permit").unwrap_err();
        assert_eq!(
            e.fatal_message(),
            "tcprules: fatal: unable to parse this line: 1.2.3.4:permit"
        );
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A small deterministic generator over an alphabet rich in syntax.
        let alphabet = b"0123456789.-=@:,'\" \tallowdenyXY#\0\xff";
        let mut x: u32 = 12345;
        for _ in 0..20000 {
            let mut line = Vec::new();
            for _ in 0..(x % 24) {
                x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                line.push(alphabet[(x >> 16) as usize % alphabet.len()]);
            }
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            if let Ok(Some(r)) = parse_line(&line) {
                assert!(expand(&r.address).map_or(0, |k| k.len()) <= 256);
                let _ = decode(&r.data);
            }
        }
    }

    #[test]
    fn ranges_expand_one_key_per_value() {
        let k = |a: &str| -> Vec<String> {
            expand(a.as_bytes())
                .unwrap()
                .into_iter()
                .map(|k| String::from_utf8(k).unwrap())
                .collect()
        };
        assert_eq!(k("1.2.3.4-7"), ["1.2.3.4", "1.2.3.5", "1.2.3.6", "1.2.3.7"]);
        assert_eq!(k("10.0-2."), ["10.0.", "10.1.", "10.2."]);
        assert_eq!(k("1.2.3.254-300"), ["1.2.3.254", "1.2.3.255"]);
        assert_eq!(k("1.2.3.9-7"), Vec::<String>::new());
        // As tcprules 0.88 does (checked against it):
        assert_eq!(k("joe@1.2.3.4-5"), ["joe@1.2.3.4-5"]);
        assert_eq!(k("=a-b.example"), ["=a-b.example"]);
        assert_eq!(k("1.2.3.4"), ["1.2.3.4"]);
        assert_eq!(k("1.2.3.-2"), ["1.2.3.0", "1.2.3.1", "1.2.3.2"]);
        assert_eq!(k("1.2.3.4-"), Vec::<String>::new());
        assert_eq!(k("1.2.3.4-5.6"), ["1.2.3.4.6", "1.2.3.5.6"]);
        assert_eq!(k("1.2.3.04-05"), ["1.2.3.4", "1.2.3.5"]);
        for bad in [
            "host-name.example",
            "a-b",
            "x-1",
            "1-x",
            "1.2.3.x-y",
            "1.2.3.4--5",
        ] {
            assert_eq!(expand(bad.as_bytes()), None, "{bad}");
        }
        assert!(compile(b"host-name.example:allow\n").is_err());
    }

    #[test]
    fn compile_keeps_order_and_duplicates() {
        let w = compile(b"1.2.3.4:allow,RELAYCLIENT=\"\"\n#c\n\n1.2.3.4:deny\n:allow").unwrap();
        assert_eq!(w.len(), 3);
        let bytes = w.to_bytes().unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("r.cdb");
        std::fs::write(&p, bytes).unwrap();
        let r = cdb::Reader::open(&p).unwrap();
        assert_eq!(
            r.get_all(b"1.2.3.4").unwrap(),
            vec![b"+RELAYCLIENT=\0".to_vec(), b"D\0".to_vec()]
        );
        let (key, dec) = check(&r, "1.2.3.4", None, None).unwrap().unwrap();
        assert_eq!(key, "1.2.3.4");
        assert!(!dec.deny);
        assert_eq!(dec.env, vec![(b"RELAYCLIENT".to_vec(), vec![])]);
        let (key, dec) = check(&r, "9.9.9.9", None, None).unwrap().unwrap();
        assert_eq!((key.as_str(), dec.deny), ("", false));
        assert!(compile(b"ok:allow\nbad:line\n").is_err());
        assert!(compile(b"").unwrap().is_empty());
    }

    #[test]
    fn lookup_order_is_tcpservers() {
        assert_eq!(
            lookup_keys("1.2.3.4", Some("a.b.example"), Some("joe")),
            [
                "joe@1.2.3.4",
                "joe@=a.b.example",
                "1.2.3.4",
                "=a.b.example",
                "1.2.3.",
                "1.2.",
                "1.",
                "=.b.example",
                "=.example",
                "=",
                ""
            ]
        );
        assert_eq!(
            lookup_keys("1.2.3.4", None, None),
            ["1.2.3.4", "1.2.3.", "1.2.", "1.", ""]
        );
    }

    #[test]
    fn decode_reads_what_compile_writes() {
        let d = decode(b"D\0+A=1\0+B=\0junk");
        assert!(d.deny);
        assert_eq!(
            d.env,
            vec![(b"A".to_vec(), b"1".to_vec()), (b"B".to_vec(), vec![])]
        );
        assert_eq!(decode(b""), Decision::default());
    }
}
