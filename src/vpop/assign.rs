//! `users/assign` and its compiled form `users/cdb`, exactly as qmail-newu(8)
//! builds it.
//!
//! ```text
//! +example.com-:example.com:89:89:/home/vpopmail/domains/example.com:-::
//! =joe:joe:1001:1001:/home/joe:::
//! .
//! ```
//!
//! A `+prefix` line becomes the key `!prefix` (lowercased); an `=local` line the
//! key `!local\0`. The data is the six fields after the first `:` with each `:`
//! turned into `\0`, up to (not including) the sixth `:`: `user\0uid\0gid\0dir\0dash\0ext`.
//! The key "" holds the set of last characters of the `+` prefixes (the
//! "wildcard characters"). The file ends with a line holding a single `.`.

use std::io;
use std::path::{Path, PathBuf};

use crate::cdb;
use crate::paths::Roots;

/// Why assign text cannot be compiled (qmail-newu's "bad format").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError;

/// Compiles assign text into users/cdb records, exactly as qmail-newu.
pub fn compile(text: &[u8]) -> Result<cdb::Writer, FormatError> {
    let mut w = cdb::Writer::new();
    let mut wild: Vec<u8> = Vec::new();
    let mut rest = text;
    loop {
        // qmail-newu stops at a line starting with "."; a missing "." line (end
        // of file) or a last line without newline is a format error.
        let nl = rest.iter().position(|&b| b == b'\n');
        let line = match nl {
            Some(i) => &rest[..i],
            None => rest,
        };
        if !line.is_empty() && line[0] == b'.' {
            break;
        }
        let Some(i) = nl else { return Err(FormatError) };
        rest = &rest[i + 1..];
        if line.contains(&0) {
            return Err(FormatError);
        }
        let colon = line.iter().position(|&b| b == b':').ok_or(FormatError)?;
        if colon == 0 {
            return Err(FormatError);
        }
        let mut key = vec![b'!'];
        key.extend_from_slice(&line[1..colon]);
        if line[0] == b'+' {
            if colon >= 2 {
                let c = line[colon - 1];
                if !wild.contains(&c) {
                    wild.push(c);
                }
            }
        } else {
            key.push(0);
        }
        key.make_ascii_lowercase();
        let mut data = line[colon + 1..].to_vec();
        let mut colons = 0;
        let mut end = data.len();
        for (j, b) in data.iter_mut().enumerate() {
            if *b == b':' {
                *b = 0;
                colons += 1;
                if colons == 6 {
                    end = j;
                    break;
                }
            }
        }
        if colons < 6 {
            return Err(FormatError);
        }
        data.truncate(end);
        w.add(&key, &data);
    }
    w.add(b"", &wild);
    Ok(w)
}

/// `users/assign`.
pub fn assign_path(roots: &Roots) -> PathBuf {
    roots.users().join("assign")
}

/// `users/cdb`.
pub fn cdb_path(roots: &Roots) -> PathBuf {
    roots.users().join("cdb")
}

/// qmail-newu: compiles users/assign into users/cdb (through `users/cdb.tmp`,
/// mode 0644), atomically.
///
/// It holds the assign lock (vpopmail's, `users/assign.lock`) while it reads
/// and writes: concurrent domain tools each compile what assign holds when
/// their turn comes, one after the other, through the one temporary name (a
/// compile running alongside another removed the other's temporary file, and
/// a late one could put an older assign in place).
pub fn newu(roots: &Roots) -> Result<(), NewuError> {
    let _l = crate::vpop::ctlfiles::lock(&assign_path(roots)).map_err(NewuError::Write)?;
    // A regular file, read without waiting (a FIFO there must not hang it).
    let text = crate::control::read_file(&assign_path(roots))
        .map_err(NewuError::Read)?
        .ok_or_else(|| NewuError::Read(io::Error::from_raw_os_error(libc::ENOENT)))?;
    let w = compile(&text).map_err(|_| NewuError::Format)?;
    let tmp = roots.users().join("cdb.tmp");
    w.write_via(&cdb_path(roots), &tmp, 0o644)
        .map_err(NewuError::Write)
}

/// What went wrong in [`newu`] (qmail-newu's messages).
#[derive(Debug)]
pub enum NewuError {
    /// users/assign could not be read.
    Read(io::Error),
    /// users/assign is not in assign format.
    Format,
    /// users/cdb could not be written.
    Write(io::Error),
}

impl std::fmt::Display for NewuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NewuError::Read(e) => write!(
                f,
                "unable to read users/assign: {}",
                crate::deliver::errstr(e)
            ),
            NewuError::Format => f.write_str("bad format in users/assign"),
            NewuError::Write(e) => write!(
                f,
                "unable to write users/cdb: {}",
                crate::deliver::errstr(e)
            ),
        }
    }
}

/// One `+` line of users/assign, split into its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wild {
    /// The address prefix (`example.com-`).
    pub prefix: String,
    /// The user field (for vpopmail: the real domain).
    pub user: String,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
    /// The home directory.
    pub dir: String,
}

/// Parses a `+prefix:user:uid:gid:dir:dash:ext:` line.
pub fn parse_wild(line: &str) -> Option<Wild> {
    let body = line.strip_prefix('+')?;
    let f: Vec<&str> = body.split(':').collect();
    if f.len() < 7 {
        return None;
    }
    Some(Wild {
        prefix: f[0].to_string(),
        user: f[1].to_string(),
        uid: f[2].parse().ok()?,
        gid: f[3].parse().ok()?,
        dir: f[4].to_string(),
    })
}

/// The assign line vadddomain writes for a domain.
pub fn domain_line(alias: &str, real: &str, uid: u32, gid: u32, dir: &Path) -> String {
    format!("+{alias}-:{real}:{uid}:{gid}:{}:-::", dir.display())
}

/// Looks a `!key` up: in users/cdb, or in users/assign when the cdb is missing
/// or older than assign (an edit not yet compiled, or a writer between the two
/// renames).
pub fn lookup(roots: &Roots, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let cdbp = cdb_path(roots);
    let ap = assign_path(roots);
    let cdb_m = std::fs::metadata(&cdbp).and_then(|m| m.modified()).ok();
    let as_m = std::fs::metadata(&ap).and_then(|m| m.modified()).ok();
    let stale = match (cdb_m, as_m) {
        (None, _) => true,
        (Some(c), Some(a)) => a > c,
        (Some(_), None) => false,
    };
    if !stale {
        if let Some(r) = cdb::Reader::open_opt(&cdbp)? {
            return r.get(key);
        }
    }
    let Some(text) = crate::control::read_file(&ap)? else {
        return Ok(None);
    };
    // Compile in memory and look up with the same rules. A file qmail-newu
    // would refuse leaves the compiled users/cdb in force, as in qmail;
    // without one it is an error, not "no such domain".
    let Ok(w) = compile(&text) else {
        if let Some(r) = cdb::Reader::open_opt(&cdbp)? {
            return r.get(key);
        }
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "bad format in users/assign",
        ));
    };
    let bytes = w.to_bytes()?;
    Ok(lookup_bytes(&bytes, key))
}

fn lookup_bytes(bytes: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    // Records are in file order; the first match wins as in a cdb lookup.
    let mut pos = 2048usize;
    let end = (0..256)
        .map(|i| {
            u32::from_le_bytes([
                bytes[i * 8],
                bytes[i * 8 + 1],
                bytes[i * 8 + 2],
                bytes[i * 8 + 3],
            ]) as usize
        })
        .min()
        .unwrap_or(2048);
    while pos + 8 <= end {
        let klen = u32::from_le_bytes([bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]])
            as usize;
        let dlen = u32::from_le_bytes([
            bytes[pos + 4],
            bytes[pos + 5],
            bytes[pos + 6],
            bytes[pos + 7],
        ]) as usize;
        let k = &bytes[pos + 8..pos + 8 + klen];
        if k == key {
            return Some(bytes[pos + 8 + klen..pos + 8 + klen + dlen].to_vec());
        }
        pos += 8 + klen + dlen;
    }
    None
}

/// Splits users/cdb data into its fields (`user uid gid dir dash ext`).
pub fn split_data(data: &[u8]) -> Vec<String> {
    data.split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiles_like_qmail_newu() {
        let text = b"+example.com-:example.com:89:89:/home/vpopmail/domains/example.com:-::\n\
                     +Alias.NET-:example.com:89:89:/home/vpopmail/domains/example.com:-::\n\
                     =joe:joe:1001:1002:/home/joe:::\n\
                     +x:x:1:1:/x:-:ext:\n\
                     .\n";
        let w = compile(text).unwrap();
        let bytes = w.to_bytes().unwrap();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("cdb");
        std::fs::write(&p, &bytes).unwrap();
        let r = cdb::Reader::open(&p).unwrap();
        assert_eq!(
            r.get(b"!example.com-").unwrap().unwrap(),
            b"example.com\x0089\x0089\x00/home/vpopmail/domains/example.com\x00-\x00"
        );
        assert!(r.get(b"!alias.net-").unwrap().is_some());
        assert_eq!(
            r.get(b"!joe\0").unwrap().unwrap(),
            b"joe\x001001\x001002\x00/home/joe\x00\x00"
        );
        assert_eq!(
            r.get(b"!x").unwrap().unwrap(),
            b"x\x001\x001\x00/x\x00-\x00ext"
        );
        // The wildcard characters, each once, in order of appearance.
        assert_eq!(r.get(b"").unwrap().unwrap(), b"-x");
        let recs = r.records().unwrap();
        assert_eq!(recs.len(), 5);
        assert_eq!(recs[4].0, b"");
    }

    #[test]
    fn format_errors() {
        assert!(compile(b"").is_err(), "no final dot");
        assert!(compile(b"+a-:a:1:1:/a:-::").is_err(), "no newline");
        assert!(compile(b"+a-:a:1:1:/a:-:\n.\n").is_err(), "too few colons");
        assert!(compile(b":a:1:1:/a:-::\n.\n").is_err());
        assert!(compile(b"+a-\n.\n").is_err());
        assert_eq!(compile(b".\n").unwrap().len(), 1);
        assert_eq!(compile(b".").unwrap().len(), 1);
        // Text after the dot is ignored.
        assert_eq!(compile(b".\ngarbage").unwrap().len(), 1);
    }

    #[test]
    fn wild_lines() {
        let w = parse_wild("+example.com-:example.com:89:89:/d/example.com:-::").unwrap();
        assert_eq!(w.prefix, "example.com-");
        assert_eq!(w.uid, 89);
        assert_eq!(w.dir, "/d/example.com");
        assert_eq!(
            domain_line("a.com", "a.com", 89, 89, Path::new("/d/a.com")),
            "+a.com-:a.com:89:89:/d/a.com:-::"
        );
    }
}
