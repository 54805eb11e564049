//! `.qmail` files (dot-qmail(5)): which file applies to an address, and what
//! its lines mean.
//!
//! For DASH `-` and EXT `a-b-c` the files tried are `.qmail-a-b-c`,
//! `.qmail-a-b-default`, `.qmail-a-default`, `.qmail-default`; EXT is
//! lowercased and `.` becomes `:` first. As in qmail-local, a name that is
//! not a regular file counts as missing; one that cannot be opened defers
//! only for a temporary error or a permission.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use super::{errstr, is_temp, Fail};

/// One line of a .qmail file, with trailing spaces and tabs stripped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Line {
    /// An empty line after the first (ignored).
    Blank,
    /// `#...`
    Comment,
    /// `/path/` or `./path/`: a Maildir.
    Maildir(Vec<u8>),
    /// `/path` or `./path`: an mbox file.
    Mbox(Vec<u8>),
    /// `|command`: the command (without `|`).
    Program(Vec<u8>),
    /// `&addr` or a bare address.
    Forward(Vec<u8>),
    /// `+list`: forward-only from here on.
    PlusList,
    /// `+anything else`: ignored.
    Plus,
}

/// Splits .qmail contents into lines. An empty first line is qmail's
/// "first line of .qmail file is blank" (temporary).
pub fn parse(contents: &[u8]) -> Result<Vec<Line>, Fail> {
    let mut out = Vec::new();
    let body = contents.strip_suffix(b"\n").unwrap_or(contents);
    for (n, raw) in body.split(|&b| b == b'\n').enumerate() {
        let mut end = raw.len();
        while end > 0 && (raw[end - 1] == b' ' || raw[end - 1] == b'\t') {
            end -= 1;
        }
        let l = &raw[..end];
        // A line that starts with a NUL byte is an empty C string to qmail:
        // blank.
        let line = match l.first().filter(|&&b| b != 0) {
            None if n == 0 => {
                return Err(Fail::temp(
                    "Uh-oh: first line of .qmail file is blank. (#4.2.1)",
                ))
            }
            None => Line::Blank,
            Some(b'#') => Line::Comment,
            Some(b'.') | Some(b'/') => {
                if l.ends_with(b"/") {
                    Line::Maildir(l.to_vec())
                } else {
                    Line::Mbox(l.to_vec())
                }
            }
            // The command ends at a NUL byte, as qmail's C string does.
            Some(b'|') => Line::Program(
                l[1..]
                    .split(|&b| b == 0)
                    .next()
                    .unwrap_or_default()
                    .to_vec(),
            ),
            Some(b'+') if &l[1..] == b"list" => Line::PlusList,
            Some(b'+') => Line::Plus,
            Some(b'&') => Line::Forward(l[1..].to_vec()),
            Some(_) => Line::Forward(l.to_vec()),
        };
        out.push(line);
    }
    Ok(out)
}

/// The .qmail file that applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    /// Its name, e.g. `.qmail-a-default`.
    pub name: Vec<u8>,
    /// Its contents.
    pub contents: Vec<u8>,
    /// The owner's execute bit is set: forward-only.
    pub forward_only: bool,
    /// The part of EXT matched by `default` (`DEFAULT` in the environment).
    pub default: Option<Vec<u8>>,
}

/// EXT lowercased with `.` written as `:`.
pub fn safe_ext(ext: &[u8]) -> Vec<u8> {
    ext.iter()
        .map(|&b| match b.to_ascii_lowercase() {
            b'.' => b':',
            c => c,
        })
        .collect()
}

/// Finds the .qmail file for DASH and EXT in `dir` (qmail-local's qmesearch).
/// `Ok(None)` when none exists.
pub fn search(dir: &Path, dash: &[u8], ext: &[u8]) -> Result<Option<Found>, Fail> {
    let safe = safe_ext(ext);
    let mut name = b".qmail".to_vec();
    name.extend_from_slice(dash);
    name.extend_from_slice(&safe);
    if let Some(mut f) = open_qmail(dir, &name)? {
        if safe.len() >= 7 && safe.ends_with(b"default") {
            let i = safe.len() - 7;
            if i <= ext.len() {
                f.default = Some(ext[i..].to_vec());
            }
        }
        return Ok(Some(f));
    }
    for i in (0..=safe.len()).rev() {
        if i == 0 || safe[i - 1] == b'-' {
            let mut name = b".qmail".to_vec();
            name.extend_from_slice(dash);
            name.extend_from_slice(&safe[..i]);
            name.extend_from_slice(b"default");
            if let Some(mut f) = open_qmail(dir, &name)? {
                if i <= ext.len() {
                    f.default = Some(ext[i..].to_vec());
                }
                return Ok(Some(f));
            }
        }
    }
    Ok(None)
}

/// True when `.qmail DASH SAFEEXT SUFFIX` exists (the `-owner` checks).
pub fn exists(dir: &Path, dash: &[u8], ext: &[u8], suffix: &str) -> Result<bool, Fail> {
    let mut name = b".qmail".to_vec();
    name.extend_from_slice(dash);
    name.extend_from_slice(&safe_ext(ext));
    name.extend_from_slice(suffix.as_bytes());
    match std::fs::metadata(dir.join(OsStr::from_bytes(&name))) {
        Ok(_) => Ok(true),
        Err(e) if is_temp(&e) => Err(unable_to_open(&name, &e)),
        Err(_) => Ok(false),
    }
}

fn unable_to_open(name: &[u8], e: &io::Error) -> Fail {
    Fail::temp(format!(
        "Unable to open {}: {}. (#4.3.0)",
        String::from_utf8_lossy(name),
        errstr(e)
    ))
}

fn open_qmail(dir: &Path, name: &[u8]) -> Result<Option<Found>, Fail> {
    let path = dir.join(OsStr::from_bytes(name));
    // O_NONBLOCK, as qmail's open_read: a FIFO at that name must not hang
    // the delivery (it is not a regular file, so it is skipped below).
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&path)
    {
        Ok(f) => f,
        // As qmail-local's qmeexists: a temporary error or a file the user
        // may not read defers; any other failure (no such file, a dangling
        // link, a socket, a link loop) is no file.
        Err(e)
            if is_temp(&e)
                || matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM)) =>
        {
            return Err(unable_to_open(name, &e))
        }
        Err(_) => return Ok(None),
    };
    let m = f.metadata().map_err(|e| unable_to_open(name, &e))?;
    // Only a regular file is a .qmail file (qmeexists): a directory, a FIFO
    // or a device (a link to /dev/null) is no file.
    if !m.is_file() {
        return Ok(None);
    }
    if m.mode() & 0o002 != 0 {
        return Err(Fail::temp("Uh-oh: .qmail file is writable. (#4.7.0)"));
    }
    // Read whole, whatever its size (a forward list of many thousand
    // addresses): a cut file would deliver to the wrong places.
    let mut contents = Vec::new();
    f.read_to_end(&mut contents)
        .map_err(|e| unable_to_open(name, &e))?;
    Ok(Some(Found {
        name: name.to_vec(),
        contents,
        forward_only: m.mode() & 0o100 != 0,
        default: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn touch(dir: &Path, name: &str, text: &str) {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    #[test]
    fn lookup_order_and_default() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        assert_eq!(search(dir, b"-", b"a-b-c").unwrap(), None);
        touch(dir, ".qmail-default", "x\n");
        let f = search(dir, b"-", b"A-b-c").unwrap().unwrap();
        assert_eq!(f.name, b".qmail-default");
        assert_eq!(f.default.as_deref(), Some(&b"A-b-c"[..]));
        touch(dir, ".qmail-a-default", "x\n");
        let f = search(dir, b"-", b"a-b-c").unwrap().unwrap();
        assert_eq!(f.name, b".qmail-a-default");
        assert_eq!(f.default.as_deref(), Some(&b"b-c"[..]));
        touch(dir, ".qmail-a-b-default", "x\n");
        assert_eq!(
            search(dir, b"-", b"a-b-c").unwrap().unwrap().name,
            b".qmail-a-b-default"
        );
        touch(dir, ".qmail-a-b-c", "x\n");
        let f = search(dir, b"-", b"a-b-c").unwrap().unwrap();
        assert_eq!(f.name, b".qmail-a-b-c");
        assert_eq!(f.default, None);
        // Dots become colons.
        touch(dir, ".qmail-x:y", "x\n");
        assert_eq!(
            search(dir, b"-", b"X.Y").unwrap().unwrap().name,
            b".qmail-x:y"
        );
        // A plain user: .qmail
        assert_eq!(search(dir, b"", b"").unwrap(), None);
        touch(dir, ".qmail", "./Maildir/\n");
        assert_eq!(search(dir, b"", b"").unwrap().unwrap().name, b".qmail");
    }

    #[test]
    fn writable_and_executable() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join(".qmail-w");
        std::fs::write(&p, "x\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o602)).unwrap();
        let e = search(d.path(), b"-", b"w").unwrap_err();
        assert_eq!(e.code, 111);
        assert_eq!(e.text, "Uh-oh: .qmail file is writable. (#4.7.0)");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(search(d.path(), b"-", b"w").unwrap().unwrap().forward_only);
    }

    #[test]
    fn line_kinds() {
        let l = parse(b"# c\n./Maildir/\n/var/mail/x \t\n|prog arg\n&a@b\nc@d\n\n+list\n+foo\n")
            .unwrap();
        assert_eq!(
            l,
            vec![
                Line::Comment,
                Line::Maildir(b"./Maildir/".to_vec()),
                Line::Mbox(b"/var/mail/x".to_vec()),
                Line::Program(b"prog arg".to_vec()),
                Line::Forward(b"a@b".to_vec()),
                Line::Forward(b"c@d".to_vec()),
                Line::Blank,
                Line::PlusList,
                Line::Plus,
            ]
        );
        let e = parse(b"\n./Maildir/\n").unwrap_err();
        assert_eq!(
            e.text,
            "Uh-oh: first line of .qmail file is blank. (#4.2.1)"
        );
        assert_eq!(parse(b"  \n").unwrap_err().code, 111);
        assert_eq!(parse(b"x").unwrap(), vec![Line::Forward(b"x".to_vec())]);
        assert_eq!(
            parse(b"|prog a\0b c\n").unwrap(),
            vec![Line::Program(b"prog a".to_vec())]
        );
        assert_eq!(
            parse(b"./Maildir/\n\0x@y\n").unwrap(),
            vec![Line::Maildir(b"./Maildir/".to_vec()), Line::Blank]
        );
        assert_eq!(parse(b"\0x@y\n./Maildir/\n").unwrap_err().code, 111);
    }
}
