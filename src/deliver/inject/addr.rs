//! Address lists in header fields (RFC 5322 section 3.4), as far as
//! qmail-inject needs them: find each address, rewrite it with the default
//! host and domain, and collect recipients. Comments, quoted strings,
//! `<route-addr>` and `group: a, b;` are understood; anything else is copied.

/// How addresses without a full domain are completed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defaults {
    /// Added as `@host` to an address without `@` (defaulthost).
    pub host: String,
    /// Appended as `.domain` to a host without a dot (defaultdomain).
    pub domain: String,
    /// Replaces a trailing `+` of a host (plusdomain).
    pub plus: String,
}

impl Defaults {
    /// Completes one address: `joe` -> `joe@host`, `joe@box` ->
    /// `joe@box.domain`, `joe@box+` -> `joe@box.plusdomain`. The empty
    /// address and `#@[]`-style addresses are left alone.
    pub fn complete(&self, addr: &str) -> String {
        if addr.is_empty() {
            return String::new();
        }
        let (local, host) = match addr.rfind('@') {
            Some(i) => (&addr[..i], addr[i + 1..].to_string()),
            None => (addr, self.host.clone()),
        };
        let mut host = host;
        if let Some(h) = host.strip_suffix('+') {
            host = if h.is_empty() {
                self.plus.clone()
            } else {
                format!("{h}.{}", self.plus)
            };
        }
        if !host.is_empty()
            && !host.contains('.')
            && !host.starts_with('[')
            && !self.domain.is_empty()
        {
            host = format!("{host}.{}", self.domain);
        }
        if host.is_empty() {
            local.to_string()
        } else {
            format!("{local}@{host}")
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// Copied as is (atoms, specials, white space, comments, quoted strings).
    Text(String, bool),
    /// `<...>` content.
    Angle(String),
    Comma,
    Colon,
    Semi,
}

fn tokenize(v: &str) -> Vec<Tok> {
    let b = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'(' => {
                let start = i;
                let mut depth = 0;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 1,
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                out.push(Tok::Text(v[start..i.min(b.len())].to_string(), true));
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(b.len());
                out.push(Tok::Text(v[start..i].to_string(), false));
            }
            b'<' => {
                let start = i + 1;
                while i < b.len() && b[i] != b'>' {
                    i += 1;
                }
                out.push(Tok::Angle(v[start..i.min(b.len())].to_string()));
                i = (i + 1).min(b.len());
            }
            b',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            b':' => {
                out.push(Tok::Colon);
                i += 1;
            }
            b';' => {
                out.push(Tok::Semi);
                i += 1;
            }
            _ => {
                let start = i;
                while i < b.len() && !b"(\"<,:;".contains(&b[i]) {
                    i += 1;
                }
                out.push(Tok::Text(v[start..i].to_string(), false));
            }
        }
    }
    out
}

/// Rewrites every address of an address-list field value and returns the
/// new value and the addresses found (after completion).
pub fn rewrite_list(value: &str, d: &Defaults) -> (String, Vec<String>) {
    let toks = tokenize(value);
    let mut out = String::with_capacity(value.len() + 16);
    let mut addrs = Vec::new();
    // One "mailbox" at a time: the tokens between separators.
    let mut cur: Vec<Tok> = Vec::new();
    let flush = |cur: &mut Vec<Tok>, out: &mut String, addrs: &mut Vec<String>| {
        if cur.is_empty() {
            return;
        }
        if let Some(pos) = cur.iter().position(|t| matches!(t, Tok::Angle(_))) {
            for (i, t) in cur.iter().enumerate() {
                match t {
                    Tok::Angle(a) if i == pos => {
                        let inner = a.trim();
                        // A source route `@a,@b:x@y` keeps its route.
                        let (route, spec) = match inner.rfind(':') {
                            Some(c) if inner.starts_with('@') => (&inner[..=c], &inner[c + 1..]),
                            _ => ("", inner),
                        };
                        let full = d.complete(spec.trim());
                        out.push('<');
                        out.push_str(route);
                        out.push_str(&full);
                        out.push('>');
                        addrs.push(unquote(&full));
                    }
                    Tok::Angle(a) => {
                        out.push('<');
                        out.push_str(a);
                        out.push('>');
                    }
                    Tok::Text(s, _) => out.push_str(s),
                    _ => {}
                }
            }
        } else {
            // addr-spec possibly with comments: the non-comment text is the
            // address, white space dropped except inside quoted strings.
            let spec: String = cur
                .iter()
                .filter_map(|t| match t {
                    Tok::Text(s, false) => Some(s.as_str()),
                    _ => None,
                })
                .collect::<String>();
            let squeezed: String = cur
                .iter()
                .filter_map(|t| match t {
                    Tok::Text(s, false) if s.starts_with('"') => Some(s.clone()),
                    Tok::Text(s, false) => Some(s.split_whitespace().collect::<String>()),
                    _ => None,
                })
                .collect();
            let spec_trim = spec.trim();
            if spec_trim.is_empty() {
                for t in cur.iter() {
                    if let Tok::Text(s, _) = t {
                        out.push_str(s);
                    }
                }
            } else {
                let full = d.complete(&squeezed);
                let lead: String = spec.chars().take_while(|c| c.is_whitespace()).collect();
                out.push_str(&lead);
                out.push_str(&full);
                for t in cur.iter() {
                    if let Tok::Text(s, true) = t {
                        out.push(' ');
                        out.push_str(s);
                    }
                }
                addrs.push(unquote(&full));
            }
        }
        cur.clear();
    };
    for t in toks {
        match t {
            Tok::Comma => {
                flush(&mut cur, &mut out, &mut addrs);
                out.push(',');
            }
            Tok::Colon => {
                // A group name: copy it, the members follow.
                for t in cur.drain(..) {
                    if let Tok::Text(s, _) = t {
                        out.push_str(&s);
                    }
                }
                out.push(':');
            }
            Tok::Semi => {
                flush(&mut cur, &mut out, &mut addrs);
                out.push(';');
            }
            t => cur.push(t),
        }
    }
    flush(&mut cur, &mut out, &mut addrs);
    (out, addrs)
}

/// An address as the envelope has it: quoted strings without their quotes
/// and backslashes (`"joe smith"@x.org` -> `joe smith@x.org`).
fn unquote(addr: &str) -> String {
    let mut out = String::with_capacity(addr.len());
    let mut quoted = false;
    let mut chars = addr.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => quoted = !quoted,
            '\\' if quoted => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d() -> Defaults {
        Defaults {
            host: "mail.example.com".into(),
            domain: "example.com".into(),
            plus: "plus.example.com".into(),
        }
    }

    #[test]
    fn completes() {
        let d = d();
        assert_eq!(d.complete("joe"), "joe@mail.example.com");
        assert_eq!(d.complete("joe@box"), "joe@box.example.com");
        assert_eq!(d.complete("joe@box+"), "joe@box.plus.example.com");
        assert_eq!(d.complete("joe@a.b"), "joe@a.b");
        assert_eq!(d.complete("joe@[1.2.3.4]"), "joe@[1.2.3.4]");
    }

    #[test]
    fn never_panics_on_odd_input() {
        let alphabet: Vec<char> = "a@b.<>,;:()\\\" \té€\n".chars().collect();
        let mut x: u64 = 12345;
        for _ in 0..5000 {
            let mut v = String::new();
            for _ in 0..(x % 24) {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                v.push(alphabet[(x >> 33) as usize % alphabet.len()]);
            }
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
            let _ = rewrite_list(&v, &d());
        }
    }

    #[test]
    fn lists() {
        let d = d();
        let (v, a) = rewrite_list(
            " Joe User <joe>, \"A, B\" <ab@x.org>, bob (Bob), c@d.org",
            &d,
        );
        assert_eq!(
            v,
            " Joe User <joe@mail.example.com>, \"A, B\" <ab@x.org>, bob@mail.example.com (Bob), c@d.org"
        );
        assert_eq!(
            a,
            vec![
                "joe@mail.example.com",
                "ab@x.org",
                "bob@mail.example.com",
                "c@d.org"
            ]
        );
        let (v, a) = rewrite_list(" undisclosed-recipients:;", &d);
        assert_eq!(v, " undisclosed-recipients:;");
        assert!(a.is_empty());
        let (_, a) = rewrite_list(" team: x@y.org, z;", &d);
        assert_eq!(a, vec!["x@y.org", "z@mail.example.com"]);
        let (_, a) = rewrite_list(" <>", &d);
        assert_eq!(a, vec![""]);
        // Quoted local parts keep their spaces in the header and lose their
        // quotes in the envelope.
        let (v, a) = rewrite_list(" \"joe smith\"@x.org, Bob <\"b b\"@y.org>, \"q\\\"x\"", &d);
        assert_eq!(
            v,
            " \"joe smith\"@x.org, Bob <\"b b\"@y.org>, \"q\\\"x\"@mail.example.com"
        );
        assert_eq!(
            a,
            vec!["joe smith@x.org", "b b@y.org", "q\"x@mail.example.com"]
        );
    }
}
