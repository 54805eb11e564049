//! Crash-safe Maildir delivery: `tmp/NAME` created exclusively (mode 0600),
//! written, fsynced, linked to `new/NAME`, the directory fsynced, `tmp/NAME`
//! unlinked. The bytes of the message are copied unchanged.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// How the file name is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameStyle {
    /// qmail-local's `TIME.PID.HOST`.
    Plain,
    /// vdelivermail's `TIME.PID.HOST,S=SIZE` (SIZE = bytes written,
    /// including the header lines added by the delivery).
    WithSize,
}

/// A finished delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivered {
    /// The file name inside `new/`.
    pub name: String,
    /// The full path of the delivered file.
    pub path: PathBuf,
    /// Bytes written (prefix + message).
    pub size: u64,
}

/// The base of a unique name: `TIME.PID.HOST` for the first try, then
/// `TIME.MusecPpidQn.HOST` (the Maildir convention for several deliveries by
/// one process within a second), so a second delivery never waits.
pub fn unique_name(time: i64, attempt: u32) -> String {
    let pid = std::process::id();
    let host = super::name_host();
    if attempt == 0 {
        format!("{time}.{pid}.{host}")
    } else {
        let usec = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0);
        format!("{time}.M{usec}P{pid}Q{attempt}.{host}")
    }
}

/// Delivers `prefix` followed by everything readable from `msg` into the
/// Maildir `maildir`. On error nothing is left behind in `tmp/` or `new/`.
/// The error keeps its OS code (ENOSPC, EDQUOT ...) for the caller to map.
pub fn deliver(
    maildir: &Path,
    prefix: &[u8],
    msg: &mut dyn Read,
    style: NameStyle,
) -> io::Result<Delivered> {
    let time = crate::timefmt::now();
    let tmpdir = maildir.join("tmp");
    let (base, tmp, mut file) = create_tmp(&tmpdir, time)?;
    let result = (|| -> io::Result<u64> {
        let mut w = io::BufWriter::with_capacity(64 * 1024, &mut file);
        w.write_all(prefix)?;
        let n = io::copy(msg, &mut w)?;
        w.flush()?;
        drop(w);
        file.sync_all()?;
        Ok(prefix.len() as u64 + n)
    })();
    drop(file);
    let size = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    let named = |base: &str| match style {
        NameStyle::Plain => base.to_string(),
        NameStyle::WithSize => format!("{base},S={size}"),
    };
    let newdir = maildir.join("new");
    let mut name = named(&base);
    let mut target = newdir.join(&name);
    let mut tries = 0;
    loop {
        match std::fs::hard_link(&tmp, &target) {
            Ok(()) => break,
            // Another message has that name (delivered in this second by a
            // process with this pid): never take its place, take a new name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 20 => {
                tries += 1;
                name = named(&unique_name(time, next_attempt()));
                target = newdir.join(&name);
            }
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
        }
    }
    if let Err(e) = crate::fsutil::fsync_dir(&newdir) {
        let _ = std::fs::remove_file(&target);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let _ = std::fs::remove_file(&tmp);
    Ok(Delivered {
        name,
        path: target,
        size,
    })
}

/// Deliveries made by this process so far: the first one is named
/// `TIME.PID.HOST`, every later one (a second Maildir line, vdelivermail's
/// quota warning) gets a name of its own within the same second.
static ATTEMPTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn next_attempt() -> u32 {
    ATTEMPTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn create_tmp(tmpdir: &Path, time: i64) -> io::Result<(String, PathBuf, File)> {
    let mut attempt = next_attempt();
    for _ in 0..=20 {
        let base = unique_name(time, attempt);
        let path = tmpdir.join(&base);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(f) => {
                // The new/ name must be free as well: a file delivered earlier in
                // the same second by a process with the same pid.
                if tmpdir
                    .parent()
                    .map(|m| m.join("new").join(&base).exists())
                    .unwrap_or(false)
                {
                    let _ = std::fs::remove_file(&path);
                } else {
                    return Ok((base, path, f));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        attempt = next_attempt();
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "unable to find a unique name in tmp",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("Maildir");
        crate::maildir::create(&m, 0o700).unwrap();
        (d, m)
    }

    #[test]
    fn delivers_bytes_unchanged_and_cleans_tmp() {
        let (_d, m) = md();
        let body: &[u8] = b"Subject: x\r\n\nbare\rCR \x00 nul \xff\xfe 8bit\n";
        let mut r = body;
        let d = deliver(&m, b"Return-Path: <a@b>\n", &mut r, NameStyle::Plain).unwrap();
        let got = std::fs::read(&d.path).unwrap();
        assert_eq!(&got[..19], b"Return-Path: <a@b>\n");
        assert_eq!(&got[19..], body);
        assert_eq!(d.size as usize, got.len());
        assert_eq!(std::fs::read_dir(m.join("tmp")).unwrap().count(), 0);
        assert!(!d.name.contains(",S="));
    }

    #[test]
    fn size_in_name_counts_prefix() {
        let (_d, m) = md();
        let mut r: &[u8] = b"hello\n";
        let d = deliver(&m, b"X: y\n", &mut r, NameStyle::WithSize).unwrap();
        assert!(d.name.ends_with(",S=11"), "{}", d.name);
    }

    #[test]
    fn same_second_same_pid_gets_distinct_names() {
        let (_d, m) = md();
        let mut names = std::collections::HashSet::new();
        for _ in 0..5 {
            let mut r: &[u8] = b"x\n";
            let d = deliver(&m, b"", &mut r, NameStyle::Plain).unwrap();
            assert!(names.insert(d.name));
        }
        assert_eq!(std::fs::read_dir(m.join("new")).unwrap().count(), 5);
    }

    #[test]
    fn read_error_leaves_nothing() {
        struct Bad;
        impl Read for Bad {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
        }
        let (_d, m) = md();
        assert!(deliver(&m, b"", &mut Bad, NameStyle::Plain).is_err());
        assert_eq!(std::fs::read_dir(m.join("tmp")).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(m.join("new")).unwrap().count(), 0);
    }

    #[test]
    fn missing_maildir_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let mut r: &[u8] = b"x";
        assert!(deliver(&d.path().join("nope"), b"", &mut r, NameStyle::Plain).is_err());
    }

    #[test]
    fn two_deliveries_of_one_size_in_one_second_both_arrive() {
        let (_d, m) = md();
        let a = deliver(&m, b"", &mut &b"same size\n"[..], NameStyle::WithSize).unwrap();
        let b = deliver(&m, b"", &mut &b"same size\n"[..], NameStyle::WithSize).unwrap();
        assert_ne!(a.name, b.name);
        // A file already in new/ is never replaced.
        let base = unique_name(crate::timefmt::now(), 0);
        std::fs::write(m.join("new").join(format!("{base},S=3")), "old").unwrap();
        let c = deliver(&m, b"", &mut &b"new"[..], NameStyle::WithSize).unwrap();
        assert_eq!(
            std::fs::read(m.join("new").join(format!("{base},S=3"))).unwrap(),
            b"old"
        );
        assert_eq!(std::fs::read(&c.path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(m.join("new")).unwrap().count(), 4);
        assert_eq!(std::fs::read_dir(m.join("tmp")).unwrap().count(), 0);
    }
}
