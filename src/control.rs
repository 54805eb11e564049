//! qmail's control files (qmail-control(5)).
//!
//! Two reading rules, the same everywhere:
//! * one-value files ("readline"): the first line, trailing white space stripped;
//! * list files ("readfile"): every line, trailing spaces and tabs stripped, blank
//!   lines and lines starting with `#` dropped.
//!
//! A missing file means "use the default". Any other error is reported to the
//! caller, which answers with its own "unable to read controls" text.

use std::io;
use std::path::Path;

use crate::paths::Roots;

/// Reads the whole file, `Ok(None)` when it does not exist; only a regular
/// file ([`crate::fsutil::read_regular`]).
pub fn read_file(path: &Path) -> io::Result<Option<Vec<u8>>> {
    crate::fsutil::read_regular(path, false)
}

fn trim_end_ws(s: &str) -> &str {
    s.trim_end_matches([' ', '\t', '\r', '\n'])
}

/// The first line of a one-value file, trailing white space stripped.
pub fn read_line(path: &Path) -> io::Result<Option<String>> {
    Ok(read_file(path)?.map(|b| {
        let s = String::from_utf8_lossy(&b);
        trim_end_ws(s.split('\n').next().unwrap_or("")).to_string()
    }))
}

/// The lines of a list file: blank lines and `#` comments dropped, trailing
/// spaces and tabs stripped.
pub fn read_list(path: &Path) -> io::Result<Option<Vec<String>>> {
    Ok(read_file(path)?.map(|b| parse_list(&String::from_utf8_lossy(&b))))
}

/// Parses list-file text (see [`read_list`]).
pub fn parse_list(text: &str) -> Vec<String> {
    text.split('\n')
        .map(trim_end_ws)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Reads a number from a one-value file; a missing file, or an empty or
/// unparsable first line, gives `default` (qmail's `control_readint` keeps the
/// default for text it cannot scan).
pub fn read_u64(path: &Path, default: u64) -> io::Result<u64> {
    Ok(read_file(path)?.map_or(default, |b| parse_u64(&b, default)))
}

/// The number a one-value file's contents start with (see [`read_u64`]).
pub fn parse_u64(contents: &[u8], default: u64) -> u64 {
    let s = String::from_utf8_lossy(contents);
    let digits: String = s
        .split('\n')
        .next()
        .unwrap_or("")
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap_or(default)
}

/// The control files of one qmail home.
#[derive(Clone, Debug)]
pub struct Control<'a> {
    roots: &'a Roots,
}

impl<'a> Control<'a> {
    /// Control files under `roots.qmail/control`.
    pub fn new(roots: &'a Roots) -> Self {
        Control { roots }
    }
    /// A one-value file.
    pub fn line(&self, name: &str) -> io::Result<Option<String>> {
        read_line(&self.roots.control(name))
    }
    /// A one-value file, falling back to `control/me`, then to `default`.
    pub fn line_or_me(&self, name: &str, default: Option<&str>) -> io::Result<Option<String>> {
        if let Some(v) = self.line(name)? {
            return Ok(Some(v));
        }
        if let Some(me) = self.line("me")? {
            return Ok(Some(me));
        }
        Ok(default.map(str::to_string))
    }
    /// A list file (empty when missing).
    pub fn list(&self, name: &str) -> io::Result<Vec<String>> {
        Ok(read_list(&self.roots.control(name))?.unwrap_or_default())
    }
    /// A list file, `None` when missing (for files whose absence means something).
    pub fn list_opt(&self, name: &str) -> io::Result<Option<Vec<String>>> {
        read_list(&self.roots.control(name))
    }
    /// A number.
    pub fn u64(&self, name: &str, default: u64) -> io::Result<u64> {
        read_u64(&self.roots.control(name), default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_rules() {
        assert_eq!(
            parse_list("a.com  \n\n# c\nb.com\t\n  \n"),
            vec!["a.com".to_string(), "b.com".to_string()]
        );
    }

    #[test]
    fn line_and_int() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("x");
        assert_eq!(read_line(&p).unwrap(), None);
        assert_eq!(read_u64(&p, 7).unwrap(), 7);
        std::fs::write(&p, "10485760 \nignored\n").unwrap();
        assert_eq!(read_line(&p).unwrap().as_deref(), Some("10485760"));
        assert_eq!(read_u64(&p, 7).unwrap(), 10485760);
        std::fs::write(&p, "junk\n").unwrap();
        assert_eq!(read_u64(&p, 7).unwrap(), 7);
    }
}
