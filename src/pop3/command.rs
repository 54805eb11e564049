//! POP3 command lines as qmail reads them (qmail's `commands.c`), with bounds.
//!
//! A line ends at LF; one CR before it is dropped. The verb runs to the first
//! space and is matched without regard to case; the argument is the rest after
//! the spaces that follow the verb (so a password may contain spaces). Lines
//! over [`MAX_LINE`] bytes (RFC 2449 allows 255 octets with the CRLF; we allow
//! 255 without it) and lines holding a NUL byte get an error reply and do
//! nothing else.

/// The longest command line accepted, CRLF excluded.
pub const MAX_LINE: usize = 255;

/// The longest AUTH PLAIN response taken after `+ ` (RFC 5034 section 4: the
/// command-line limit does not apply to it): the base64 of three fields of
/// up to 255 bytes each, with room to spare.
pub const MAX_SASL_LINE: usize = 2048;

/// A parsed command: verb lowercased, argument raw.
#[derive(Debug, PartialEq, Eq)]
pub struct Command<'a> {
    /// The verb, lowercased ASCII.
    pub verb: String,
    /// The argument (may be empty).
    pub arg: &'a [u8],
}

/// Why a line is not a command.
#[derive(Debug, PartialEq, Eq)]
pub enum Bad {
    /// Over [`MAX_LINE`] bytes.
    TooLong,
    /// Holds a NUL byte.
    Nul,
}

/// Strips the line end (the LF is already gone; one CR is dropped).
pub fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses one line (without its LF).
pub fn parse(line: &[u8]) -> Result<Command<'_>, Bad> {
    let line = strip_cr(line);
    if line.len() > MAX_LINE {
        return Err(Bad::TooLong);
    }
    if line.contains(&0) {
        return Err(Bad::Nul);
    }
    let sp = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let verb = String::from_utf8_lossy(&line[..sp]).to_ascii_lowercase();
    let mut arg = &line[sp..];
    while let [b' ', rest @ ..] = arg {
        arg = rest;
    }
    Ok(Command { verb, arg })
}

/// qmail's `scan_ulong`: the leading decimal digits of `arg`, if any
/// (saturating, so a huge number is simply "not that many").
pub fn scan_ulong(arg: &[u8]) -> Option<(u64, &[u8])> {
    let n = arg.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 {
        return None;
    }
    let v = arg[..n].iter().fold(0u64, |acc, &d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    Some((v, &arg[n..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_and_arguments() {
        let c = parse(b"PASS  two words \r").unwrap();
        assert_eq!(c.verb, "pass");
        assert_eq!(c.arg, b"two words ");
        let c = parse(b"StAt").unwrap();
        assert_eq!((c.verb.as_str(), c.arg), ("stat", &b""[..]));
        let c = parse(b"").unwrap();
        assert_eq!(c.verb, "");
    }

    #[test]
    fn bounds() {
        assert_eq!(parse(&[b'x'; 256]), Err(Bad::TooLong));
        let mut l = vec![b'x'; 255];
        assert!(parse(&l).is_ok());
        l.push(b'\r');
        assert!(parse(&l).is_ok());
        assert_eq!(parse(b"USER a\0b"), Err(Bad::Nul));
    }

    #[test]
    fn numbers() {
        assert_eq!(scan_ulong(b"12 3"), Some((12, &b" 3"[..])));
        assert_eq!(scan_ulong(b"x"), None);
        assert_eq!(
            scan_ulong(b"99999999999999999999999").map(|x| x.0),
            Some(u64::MAX)
        );
    }
}
