//! Quotas as the admin programs take them (vadduser -q, vmoduser -q,
//! vsetuserquota, vadddomain -q) and as they write them into vpasswd.
//!
//! Input (case-insensitive): `NOQUOTA`; a byte size, bare or with `S`/`B`, with
//! an optional `K`, `M` or `G` multiplier (1024-based; with one, a decimal
//! fraction too): `52428800`, `50M`, `50MB`, `1.5G`, `52428800S`; a message
//! count `NNNC`; or both, separated by a comma (`50M,1000C`; `50M,0C` is
//! `50M`). Written as vpopmail's `format_maildirquota` writes it:
//! `NNNS`, `NNNC` or `NNNS,NNNC`.
//!
//! The hosting profile offers mailboxes of 25M to 2G: a byte quota outside
//! that range is refused with an `Error:` line and nothing changes. The range
//! is read from `~vpopmail/etc/quota-range` (two sizes, `MIN MAX`, in the same
//! notation) when that file exists, so a host with other plans can change it.
//! Message counts have no range. Quotas already in vpasswd are never
//! rewritten because of the range.

use crate::paths::Roots;
use crate::vpop::error::{VError, VA_QUOTA_TOO_LONG};

/// The default lower bound: 25M.
pub const DEFAULT_MIN: u64 = 25 * 1024 * 1024;
/// The default upper bound: 2G.
pub const DEFAULT_MAX: u64 = 2 * 1024 * 1024 * 1024;

/// A size with an optional K/M/G multiplier and an optional trailing B or S.
/// With a multiplier the number may have a decimal fraction (`1.5G`, as
/// vdelivermail reads such a quota), rounded down to whole bytes.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.strip_suffix(['B', 'S']).unwrap_or(s);
    let (number, mult) = match s.as_bytes().last()? {
        b'K' => (&s[..s.len() - 1], 1024u64),
        b'M' => (&s[..s.len() - 1], 1024 * 1024),
        b'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) if mult > 1 => (i, f),
        Some(_) => return None,
        None => (number, ""),
    };
    let digits = |d: &str, max: usize| d.len() <= max && d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty())
        || !digits(int, 15)
        || !digits(frac, 9)
        || number.ends_with('.')
    {
        return None;
    }
    let whole = if int.is_empty() {
        0
    } else {
        int.parse::<u64>().ok()?
    };
    let mut bytes = whole.checked_mul(mult)?;
    if !frac.is_empty() {
        let scale = 10u64.pow(frac.len() as u32);
        bytes = bytes.checked_add(frac.parse::<u64>().ok()? * mult / scale)?;
    }
    Some(bytes)
}

/// Shows a byte count the way the range is written (`25M`, `2G`).
pub fn human(n: u64) -> String {
    const G: u64 = 1024 * 1024 * 1024;
    const M: u64 = 1024 * 1024;
    const K: u64 = 1024;
    if n >= G && n % G == 0 {
        format!("{}G", n / G)
    } else if n >= M && n % M == 0 {
        format!("{}M", n / M)
    } else if n >= K && n % K == 0 {
        format!("{}K", n / K)
    } else {
        n.to_string()
    }
}

/// The allowed byte range: `~vpopmail/etc/quota-range`, else 25M..2G.
pub fn range(roots: &Roots) -> (u64, u64) {
    let text = crate::control::read_line(&roots.vpop_etc("quota-range"))
        .ok()
        .flatten()
        .unwrap_or_default()
        .to_ascii_uppercase();
    let mut it = text.split_whitespace().map(parse_size);
    match (it.next(), it.next()) {
        (Some(Some(a)), Some(Some(b))) if a <= b => (a, b),
        (None, _) => (DEFAULT_MIN, DEFAULT_MAX),
        _ => {
            crate::elog!(
                "Warning: {} is not \"MIN MAX\"; using 25M 2G",
                roots.vpop_etc("quota-range").display()
            );
            (DEFAULT_MIN, DEFAULT_MAX)
        }
    }
}

/// Parses admin input into the vpasswd quota field, checking the byte range.
pub fn parse(input: &str, range: (u64, u64)) -> Result<String, VError> {
    let q = input.trim().to_ascii_uppercase();
    let invalid = || VError::msg(format!("invalid quota: {input}"));
    if q == "NOQUOTA" {
        return Ok(q);
    }
    if q.is_empty() || q.split(',').count() > 2 {
        return Err(invalid());
    }
    let (mut bytes, mut count) = (None, None);
    for part in q.split(',') {
        if let Some(c) = part.strip_suffix('C') {
            if count.is_some()
                || c.is_empty()
                || c.len() > 15
                || !c.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(invalid());
            }
            // `0C` is no limit on the count (vpopmail's form for a byte
            // quota alone); on its own it limits nothing and is refused.
            count = Some(c.parse::<u64>().map_err(|_| invalid())?);
        } else {
            if bytes.is_some() {
                return Err(invalid());
            }
            bytes = Some(parse_size(part).ok_or_else(invalid)?);
        }
    }
    if let Some(b) = bytes {
        if b < range.0 || b > range.1 {
            return Err(VError::msg(format!(
                "quota {input} is outside the range of {} to {}",
                human(range.0),
                human(range.1)
            )));
        }
    }
    let count = match (bytes, count) {
        (Some(_), Some(0)) => None,
        (None, Some(0)) => return Err(invalid()),
        (_, c) => c,
    };
    let out = match (bytes, count) {
        (Some(b), Some(c)) => format!("{b}S,{c}C"),
        (Some(b), None) => format!("{b}S"),
        (None, Some(c)) => format!("{c}C"),
        (None, None) => return Err(invalid()),
    };
    if out.len() > crate::vpop::entry::MAX_QUOTA {
        return Err(VError::code(VA_QUOTA_TOO_LONG));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const R: (u64, u64) = (DEFAULT_MIN, DEFAULT_MAX);

    #[test]
    fn forms() {
        assert_eq!(parse("NOQUOTA", R).unwrap(), "NOQUOTA");
        assert_eq!(parse("noquota", R).unwrap(), "NOQUOTA");
        assert_eq!(parse("50M", R).unwrap(), "52428800S");
        assert_eq!(parse("50m", R).unwrap(), "52428800S");
        assert_eq!(parse("50MB", R).unwrap(), "52428800S");
        assert_eq!(parse("52428800", R).unwrap(), "52428800S");
        assert_eq!(parse("52428800S", R).unwrap(), "52428800S");
        assert_eq!(parse("25600K", R).unwrap(), "26214400S");
        assert_eq!(parse("2G", R).unwrap(), "2147483648S");
        assert_eq!(parse("1000C", R).unwrap(), "1000C");
        assert_eq!(parse("50M,1000C", R).unwrap(), "52428800S,1000C");
        assert_eq!(parse("1000C,50M", R).unwrap(), "52428800S,1000C");
        assert_eq!(parse("1.5G", R).unwrap(), "1610612736S");
        assert_eq!(parse("0.5g", R).unwrap(), "536870912S");
        assert_eq!(parse(".5G", R).unwrap(), "536870912S");
        assert_eq!(parse("25.5M", R).unwrap(), "26738688S");
        assert_eq!(parse("50M,0C", R).unwrap(), "52428800S");
    }

    #[test]
    fn range_is_enforced_for_bytes_only() {
        assert!(parse("25M", R).is_ok());
        assert!(parse("24M", R).is_err());
        assert!(parse("2049M", R).is_err());
        assert!(parse("1000", R).is_err());
        assert!(parse("3G", R).is_err());
        assert!(parse("1C", R).is_ok());
        assert!(parse("5000", (1000, 10000)).is_ok());
        let e = parse("1M", R).unwrap_err();
        assert_eq!(e.text, "quota 1M is outside the range of 25M to 2G");
    }

    #[test]
    fn garbage() {
        for bad in [
            "",
            "abc",
            "M",
            "50X",
            "-5M",
            "50M,",
            ",1C",
            "1C,2C",
            "50M,60M",
            "0C",
            "NOQUOTA,0C",
            "1.5",
            "1.G",
            "1..5G",
            "1.5.5G",
            ".G",
            "1.1234567890G",
            "99999999999999999999",
        ] {
            assert!(parse(bad, R).is_err(), "{bad:?}");
        }
    }
}
