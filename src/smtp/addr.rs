//! Envelope addresses as qmail-smtpd reads them (COMPAT section 7), the
//! rcpthosts keys, badmailfrom matching and the routing tricks refused to
//! clients without relay rights.

/// Longest address accepted (qmail's `addr.len > 900` check, NUL included).
pub const MAX_ADDR: usize = 900;

/// qmail's `addrparse()`: the address in a `MAIL FROM:`/`RCPT TO:` argument.
///
/// Takes what follows the first `<` up to the matching `>` (quotes and
/// backslash escapes removed, a leading `@route:` source route stripped); with
/// no `<`, what follows the first `:` (spaces skipped) up to a space (a
/// tolerance for clients that omit the brackets, as qmail has always had).
/// `None` when the address is too long.
pub fn parse(arg: &[u8]) -> Option<Vec<u8>> {
    let (mut rest, terminator) = match arg.iter().position(|&b| b == b'<') {
        Some(i) => (&arg[i + 1..], b'>'),
        None => {
            let mut r = match arg.iter().position(|&b| b == b':') {
                Some(i) => &arg[i + 1..],
                None => &arg[arg.len()..],
            };
            while let [b' ', tail @ ..] = r {
                r = tail;
            }
            (r, b' ')
        }
    };
    if rest.first() == Some(&b'@') {
        rest = match rest.iter().position(|&b| b == b':') {
            Some(i) => &rest[i + 1..],
            None => &rest[rest.len()..],
        };
    }
    let mut addr = Vec::with_capacity(rest.len().min(MAX_ADDR + 1));
    let mut esc = false;
    let mut quoted = false;
    for &ch in rest {
        if esc {
            addr.push(ch);
            esc = false;
            continue;
        }
        if !quoted && ch == terminator {
            break;
        }
        match ch {
            b'\\' => esc = true,
            b'"' => quoted = !quoted,
            _ => addr.push(ch),
        }
        if addr.len() > MAX_ADDR {
            return None;
        }
    }
    // qmail counts the terminating NUL.
    if addr.len() + 1 > MAX_ADDR {
        return None;
    }
    Some(addr)
}

/// The ESMTP parameters after the address (`SIZE=n`, `BODY=8BITMIME`,
/// `AUTH=<>`): the value of `SIZE`, if given and numeric; a number too large
/// for 64 bits is `u64::MAX`. The address ends at `>`, or, written without
/// `<>` (qmail takes that form too), at the first space after the colon.
pub fn size_param(arg: &[u8]) -> Option<u64> {
    let rest = if arg.contains(&b'<') {
        let close = arg.iter().position(|&b| b == b'>')?;
        &arg[close + 1..]
    } else {
        let colon = arg.iter().position(|&b| b == b':').map_or(0, |i| i + 1);
        let a = &arg[colon..];
        let start = a.iter().position(|&b| b != b' ').unwrap_or(a.len());
        let a = &a[start..];
        &a[a.iter().position(|&b| b == b' ').unwrap_or(a.len())..]
    };
    let params = std::str::from_utf8(rest).ok()?;
    params.split_ascii_whitespace().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        if !k.eq_ignore_ascii_case("SIZE") {
            return None;
        }
        match v.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => Some(u64::MAX),
            Err(_) => None,
        }
    })
}

/// qmail's `quote`: a local part as it is when it is a plain dot-atom, else
/// in double quotes with `"` and `\\` escaped: an empty one, one with a
/// space, a special character, a control or 8-bit byte, or a dot at either
/// end or doubled.
pub fn quote_local(local: &[u8]) -> Vec<u8> {
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~.".contains(&b);
    let needs = local.is_empty()
        || local.iter().any(|&b| !atext(b))
        || local.starts_with(b".")
        || local.ends_with(b".")
        || local.windows(2).any(|w| w == b"..");
    if !needs {
        return local.to_vec();
    }
    let mut out = Vec::with_capacity(local.len() + 2);
    out.push(b'"');
    for &b in local {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
    out
}

/// qmail's `quote2`, for envelope addresses in SMTP commands and in
/// `Return-Path:`: the part before the last `@` through [`quote_local`], the
/// domain unchanged; an address without `@` is quoted whole; the empty
/// address stays empty.
pub fn quote2(addr: &[u8]) -> Vec<u8> {
    if addr.is_empty() {
        return Vec::new();
    }
    match addr.iter().rposition(|&b| b == b'@') {
        Some(at) => {
            let mut out = quote_local(&addr[..at]);
            out.extend_from_slice(&addr[at..]);
            out
        }
        None => quote_local(addr),
    }
}

/// An address as it goes into a header line: a CR or LF (which an envelope
/// may carry) becomes `_`, so it can neither end the field nor start one.
pub fn header_safe(mut v: Vec<u8>) -> Vec<u8> {
    for b in &mut v {
        if *b == b'\n' || *b == b'\r' {
            *b = b'_';
        }
    }
    v
}

/// The domain of an address (after the last `@`), if any.
pub fn domain(addr: &[u8]) -> Option<&[u8]> {
    addr.iter()
        .rposition(|&b| b == b'@')
        .map(|i| &addr[i + 1..])
}

/// The local part (before the last `@`).
pub fn local(addr: &[u8]) -> &[u8] {
    match addr.iter().rposition(|&b| b == b'@') {
        Some(i) => &addr[..i],
        None => addr,
    }
}

/// The keys qmail's rcpthosts tries for a domain (lowercased): the domain
/// itself, then every `.suffix` (`a.b.c` → `a.b.c`, `.b.c`, `.c`).
pub fn rcpthosts_keys(domain: &[u8]) -> Vec<Vec<u8>> {
    let d = domain.to_ascii_lowercase();
    let mut keys = vec![d.clone()];
    for (i, &b) in d.iter().enumerate() {
        if i > 0 && b == b'.' {
            keys.push(d[i..].to_vec());
        }
    }
    keys
}

/// qmail's badmailfrom rule: the whole address, or `@domain`, case-insensitive.
pub fn badmailfrom(list: &[String], addr: &[u8]) -> bool {
    if list.is_empty() {
        return false;
    }
    let a = addr.to_ascii_lowercase();
    let at = domain(&a).map(|d| {
        let mut k = b"@".to_vec();
        k.extend_from_slice(d);
        k
    });
    list.iter().any(|l| {
        let l = l.as_bytes().to_ascii_lowercase();
        l == a || at.as_deref() == Some(&l[..])
    })
}

/// True when a recipient asks a local domain to route it further: a `%` or
/// `!` in it, or more than one `@` (`u%evil@here`, `evil!u@here`,
/// `"u@evil"@here`). qmail takes these for a local domain and bounces them
/// later (or relays them with `percenthack`); vqmail refuses them at RCPT to
/// clients without relay rights, so the host can never be tricked into
/// forwarding.
pub fn is_routed(addr: &[u8]) -> bool {
    addr.iter().any(|&b| b == b'%' || b == b'!') || addr.iter().filter(|&&b| b == b'@').count() > 1
}

/// [`is_routed`] only for a `!` (no `%`, one `@`): the one form an
/// existing user's own address can take.
pub fn only_bang_routed(addr: &[u8]) -> bool {
    !addr.contains(&b'%')
        && addr.iter().filter(|&&b| b == b'@').count() == 1
        && addr.contains(&b'!')
}

/// `[d.d.d.d]` as an IPv4 address (qmail's ip_scanbracket), for the
/// `user@[our IP]` → `user@localiphost` rewrite.
pub fn bracket_ip(domain: &[u8]) -> Option<std::net::IpAddr> {
    let inner = domain.strip_prefix(b"[")?.strip_suffix(b"]")?;
    let s = std::str::from_utf8(inner).ok()?;
    if let Some(v6) = s.strip_prefix("IPv6:").or_else(|| s.strip_prefix("ipv6:")) {
        return v6.parse::<std::net::Ipv6Addr>().ok().map(Into::into);
    }
    s.parse::<std::net::Ipv4Addr>().ok().map(Into::into)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Option<String> {
        parse(s.as_bytes()).map(|a| String::from_utf8(a).unwrap())
    }

    #[test]
    fn addrparse_like_qmail() {
        assert_eq!(p("FROM:<a@b.c>").as_deref(), Some("a@b.c"));
        assert_eq!(p("FROM:<>").as_deref(), Some(""));
        assert_eq!(p("FROM: <a@b.c> SIZE=10").as_deref(), Some("a@b.c"));
        assert_eq!(p("TO:a@b.c").as_deref(), Some("a@b.c"));
        assert_eq!(p("TO:  a@b.c SIZE=1").as_deref(), Some("a@b.c"));
        assert_eq!(p("TO:<@r1,@r2:a@b.c>").as_deref(), Some("a@b.c"));
        assert_eq!(p("TO:<\"a b\"@c>").as_deref(), Some("a b@c"));
        assert_eq!(p("TO:<\"a>b\"@c>").as_deref(), Some("a>b@c"));
        assert_eq!(p("TO:<a\\@x@c>").as_deref(), Some("a@x@c"));
        assert_eq!(p("TO:<a@b").as_deref(), Some("a@b"));
        let long = format!("TO:<{}@x>", "a".repeat(900));
        assert_eq!(p(&long), None);
        let ok = format!("TO:<{}>", "a".repeat(899));
        assert!(p(&ok).is_some());
    }

    #[test]
    fn params() {
        assert_eq!(size_param(b"FROM:<a@b> SIZE=1000"), Some(1000));
        assert_eq!(size_param(b"FROM:<a@b> BODY=8BITMIME size=7"), Some(7));
        assert_eq!(size_param(b"FROM:<a@b>"), None);
        assert_eq!(size_param(b"FROM:<a@b> SIZE=x"), None);
        assert_eq!(
            size_param(b"FROM:<a@b> SIZE=18446744073709551616"),
            Some(u64::MAX)
        );
        assert_eq!(size_param(b"FROM:a@b SIZE=20000000"), Some(20_000_000));
        assert_eq!(size_param(b"FROM: a@b  size=5"), Some(5));
        assert_eq!(size_param(b"FROM:a@b"), None);
    }

    #[test]
    fn keys_and_lists() {
        assert_eq!(
            rcpthosts_keys(b"A.Example.COM"),
            vec![
                b"a.example.com".to_vec(),
                b".example.com".to_vec(),
                b".com".to_vec()
            ]
        );
        let l = vec!["spam@x.com".to_string(), "@Bad.Example".to_string()];
        assert!(badmailfrom(&l, b"SPAM@x.com"));
        assert!(badmailfrom(&l, b"anyone@bad.example"));
        assert!(!badmailfrom(&l, b"anyone@sub.bad.example"));
        assert!(!badmailfrom(&l, b"ok@x.com"));
        assert!(is_routed(b"u%evil@here"));
        assert!(is_routed(b"evil!u@here"));
        assert!(is_routed(b"u@evil@here"));
        assert!(!is_routed(b"u.v+w@here"));
        assert_eq!(
            bracket_ip(b"[127.0.0.1]"),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(bracket_ip(b"[IPv6:::1]"), Some("::1".parse().unwrap()));
        assert_eq!(bracket_ip(b"127.0.0.1"), None);
    }
}
