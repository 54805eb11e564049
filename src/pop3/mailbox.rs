//! The Maildir side of qmail-pop3d: the listing, message files, and QUIT's
//! commit.
//!
//! Like qmail-pop3d, a session takes no lock on the mailbox: it lists `new/`
//! and `cur/` once at login (sorted by mtime; files with an mtime of now or
//! later are left for the next session, qmail's guard against moving a message
//! that is still arriving), reads files on demand, and changes the Maildir only
//! at QUIT: marked messages are unlinked, the other `new/X` are renamed to
//! `cur/X:2,`. A dropped connection changes nothing.
//!
//! Two sessions on one mailbox (possible when the poll limit is off): each
//! works on the listing it took. A message that the other session moved from
//! `new/` to `cur/` is found again there (for RETR and for deletion); a
//! message that the other session already deleted is simply gone, which is
//! not an error at QUIT and is not counted twice in `maildirsize`. A delivery
//! during a session lands in `new/` under a name the session does not know,
//! so it is neither listed nor touched until the next login.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::pop3d::{Msg, Store};

/// Files in `tmp/` untouched for this long are removed at login (qmail: 36 h).
pub const TMP_MAX_AGE: i64 = 36 * 3600;

/// A Maildir, by path (relative paths are relative to the current directory).
pub struct Maildir {
    dir: PathBuf,
}

/// What QUIT did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Commit {
    /// Every marked message is gone (unlinked now or before by another session).
    pub all_unlinked: bool,
    /// Messages this session unlinked that maildirsize counts (not the ones
    /// flagged `T`, which a rebuild leaves out), and their bytes.
    pub removed: u64,
    /// Bytes removed.
    pub removed_bytes: u64,
    /// `new/` messages moved to `cur/`.
    pub moved: u64,
}

impl Maildir {
    /// A Maildir at `dir`.
    pub fn new(dir: impl Into<PathBuf>) -> Maildir {
        Maildir { dir: dir.into() }
    }

    /// The Maildir's path.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Removes `tmp/` files not accessed for 36 hours (qmail's maildir_clean).
    pub fn clean_tmp(&self, now: i64) {
        let Ok(rd) = fs::read_dir(self.dir.join("tmp")) else {
            return;
        };
        for e in rd.flatten() {
            if let Ok(md) = e.metadata() {
                if md.is_file() && now > md.atime() + TMP_MAX_AGE {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }

    /// Lists `new/` and `cur/`: messages with an mtime before `now`, oldest
    /// first (ties by name), numbered from 1 in that order.
    pub fn scan(&self, now: i64) -> io::Result<Vec<Msg>> {
        let mut v: Vec<(i64, Msg)> = Vec::new();
        for sub in ["new", "cur"] {
            for e in fs::read_dir(self.dir.join(sub))? {
                let e = e?;
                let name = e.file_name();
                let name = name.as_bytes();
                if name.starts_with(b".") {
                    continue;
                }
                let Ok(md) = fs::metadata(e.path()) else {
                    continue;
                };
                if !md.is_file() || md.mtime() >= now {
                    continue;
                }
                v.push((
                    md.mtime(),
                    Msg {
                        name: [sub.as_bytes(), b"/", name].concat(),
                        size: md.len(),
                        deleted: false,
                    },
                ));
            }
        }
        v.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
        Ok(v.into_iter().map(|(_, m)| m).collect())
    }

    /// Where message `m` is now: its listed place, or `cur/` when another
    /// session moved it there (with any flags); `Ok(None)` when it is gone.
    /// Only "no such file" means gone: a name that cannot be looked at (a
    /// directory made unreadable meanwhile) is an error.
    fn locate(&self, m: &Msg) -> io::Result<Option<PathBuf>> {
        let here = |p: &Path| match fs::symlink_metadata(p) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        };
        let p = self.dir.join(OsStr::from_bytes(&m.name));
        if here(&p)? {
            return Ok(Some(p));
        }
        let uid = m.uid();
        let prefix = [uid, b":"].concat();
        let exact = self
            .dir
            .join("cur")
            .join(OsStr::from_bytes(&[uid, b":2,"].concat()));
        if here(&exact)? {
            return Ok(Some(exact));
        }
        Ok(fs::read_dir(self.dir.join("cur"))?.flatten().find_map(|e| {
            let n = e.file_name();
            let n = n.as_bytes();
            (n.starts_with(&prefix) || n == uid).then(|| e.path())
        }))
    }

    /// QUIT: unlinks the marked messages, moves the other `new/` ones to
    /// `cur/NAME:2,`, and records the removed bytes in `maildirsize`.
    pub fn commit(&self, msgs: &[Msg]) -> Commit {
        let mut c = Commit {
            all_unlinked: true,
            ..Commit::default()
        };
        for m in msgs {
            if m.deleted {
                let p = match self.locate(m) {
                    Ok(Some(p)) => p,
                    Ok(None) => continue, // already deleted by another session
                    Err(_) => {
                        c.all_unlinked = false;
                        continue;
                    }
                };
                let counted = !p
                    .file_name()
                    .is_some_and(|n| crate::maildir::quota::trashed(&n.to_string_lossy()));
                match fs::remove_file(&p) {
                    Ok(()) if !counted => {}
                    Ok(()) => {
                        c.removed += 1;
                        // A size in a name is the sender's word: never trusted
                        // to fit.
                        c.removed_bytes = c.removed_bytes.saturating_add(quota_size(m));
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(_) => c.all_unlinked = false,
                }
            } else if let Some(base) = m.name.strip_prefix(b"new/") {
                let to = self
                    .dir
                    .join("cur")
                    .join(OsStr::from_bytes(&[base, b":2,"].concat()));
                // If it fails (moved by another session), the message stays where it is.
                if fs::rename(self.dir.join(OsStr::from_bytes(&m.name)), to).is_ok() {
                    c.moved += 1;
                }
            }
        }
        if c.removed > 0 {
            let bytes = i64::try_from(c.removed_bytes).unwrap_or(i64::MAX);
            let count = i64::try_from(c.removed).unwrap_or(i64::MAX);
            if let Err(e) = crate::maildir::quota::append(&self.dir, -bytes, -count) {
                crate::elog!(
                    "qmail-pop3d: unable to update maildirsize: {}",
                    crate::deliver::errstr(&e)
                );
            }
        }
        c
    }
}

impl Store for Maildir {
    fn open(&mut self, m: &Msg) -> io::Result<Box<dyn Read + '_>> {
        match open_message(&self.dir.join(OsStr::from_bytes(&m.name))) {
            Ok(f) => Ok(Box::new(f)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let p = self.locate(m)?.ok_or(e)?;
                Ok(Box::new(open_message(&p)?))
            }
            Err(e) => Err(e),
        }
    }
}

/// Opens a message file without waiting on a FIFO, and only a regular file
/// (a link to one too, as the listing at login counts it): anything else is
/// what replaced a message since.
fn open_message(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(p)?;
    if !f.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    Ok(f)
}

/// The size Maildir++ counts for a message: `,S=NNN` in its name, else its
/// size on disk.
pub fn quota_size(m: &Msg) -> u64 {
    crate::maildir::quota::size_from_name(&String::from_utf8_lossy(m.uid())).unwrap_or(m.size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    fn put(dir: &Path, name: &str, body: &[u8], mtime: i64) {
        let p = dir.join(name);
        fs::write(&p, body).unwrap();
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(mtime as u64);
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    fn md() -> (tempfile::TempDir, Maildir) {
        let d = tempfile::tempdir().unwrap();
        crate::maildir::create(d.path(), 0o700).unwrap();
        let m = Maildir::new(d.path());
        (d, m)
    }

    #[test]
    fn scan_sorts_by_mtime_and_skips_the_present() {
        let (d, m) = md();
        put(d.path(), "cur/2.b.h:2,S", b"bb", 200);
        put(d.path(), "new/1.a.h", b"a", 100);
        put(d.path(), "new/3.c.h", b"ccc", 300);
        put(d.path(), "new/.hidden", b"x", 100);
        let l = m.scan(300).unwrap();
        let names: Vec<_> = l.iter().map(|m| String::from_utf8_lossy(&m.name)).collect();
        assert_eq!(names, ["new/1.a.h", "cur/2.b.h:2,S"]);
        assert_eq!(l[1].uid(), b"2.b.h");
        assert_eq!(m.scan(301).unwrap().len(), 3);
    }

    #[test]
    fn a_message_that_cannot_be_looked_at_is_not_taken_for_deleted() {
        let (d, mut m) = md();
        put(d.path(), "new/1.a.h", b"a", 100);
        put(d.path(), "new/2.b.h", b"bb", 101);
        let mut l = m.scan(1000).unwrap();
        // A FIFO (or a link) in a message's place since the listing: an
        // error at once, not a wait for a writer.
        fs::remove_file(d.path().join("new/2.b.h")).unwrap();
        nix::unistd::mkfifo(&d.path().join("new/2.b.h"), nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(m.open(&l[1]).is_err());
        fs::remove_file(d.path().join("new/2.b.h")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", d.path().join("new/2.b.h")).unwrap();
        assert!(m.open(&l[1]).is_err());
        // A link to a regular file is read, as at login.
        fs::remove_file(d.path().join("new/2.b.h")).unwrap();
        put(d.path(), "elsewhere", b"bb", 101);
        std::os::unix::fs::symlink(d.path().join("elsewhere"), d.path().join("new/2.b.h")).unwrap();
        let mut got = String::new();
        m.open(&l[1]).unwrap().read_to_string(&mut got).unwrap();
        assert_eq!(got, "bb");
        // new/ no longer a directory: the deletion is not done, and QUIT
        // must say so rather than take the message for deleted elsewhere.
        fs::rename(d.path().join("new"), d.path().join("new.away")).unwrap();
        fs::write(d.path().join("new"), b"").unwrap();
        l[0].deleted = true;
        assert!(!m.commit(&l).all_unlinked);
        fs::remove_file(d.path().join("new")).unwrap();
        fs::rename(d.path().join("new.away"), d.path().join("new")).unwrap();
        assert!(m.commit(&l).all_unlinked);
        assert!(!d.path().join("new/1.a.h").exists());
    }

    #[test]
    fn commit_deletes_moves_and_counts_once() {
        let (d, mut m) = md();
        fs::write(d.path().join("maildirsize"), "1000S,10C\n30 3\n").unwrap();
        put(d.path(), "new/1.a.h,S=10", b"0123456789", 100);
        put(d.path(), "new/2.b.h", b"22", 101);
        put(d.path(), "cur/3.c.h:2,", b"333", 102);
        let mut a = m.scan(1000).unwrap();
        let mut b = m.scan(1000).unwrap();
        // Session A deletes 1 and 3 and moves 2; session B then deletes 1 and 2.
        a[0].deleted = true;
        a[2].deleted = true;
        let ca = m.commit(&a);
        assert_eq!(
            (ca.all_unlinked, ca.removed, ca.removed_bytes, ca.moved),
            (true, 2, 13, 1)
        );
        assert!(d.path().join("cur/2.b.h:2,").exists());
        // B still reads message 2 from its new place.
        let mut s = String::new();
        m.open(&b[1]).unwrap().read_to_string(&mut s).unwrap();
        assert_eq!(s, "22");
        assert!(m.open(&b[0]).is_err());
        b[0].deleted = true;
        b[1].deleted = true;
        let cb = m.commit(&b);
        assert_eq!(
            (cb.all_unlinked, cb.removed, cb.removed_bytes),
            (true, 1, 2)
        );
        assert!(crate::pop3::mailbox::tests::empty(d.path()));
        let ms = fs::read_to_string(d.path().join("maildirsize")).unwrap();
        assert_eq!(ms, "1000S,10C\n30 3\n-13 -2\n-2 -1\n");
    }

    #[test]
    fn a_trashed_message_is_not_taken_off_maildirsize() {
        // vdelivermail's rebuild leaves out messages flagged T (an IMAP
        // server's deleted ones), so removing one must not subtract it again.
        let (d, m) = md();
        fs::write(d.path().join("maildirsize"), "1000S,10C\n5 1\n").unwrap();
        put(d.path(), "cur/1.a.h:2,S", b"12345", 100);
        put(d.path(), "cur/2.b.h:2,ST", b"1234567", 101);
        let mut a = m.scan(1000).unwrap();
        a[0].deleted = true;
        a[1].deleted = true;
        let c = m.commit(&a);
        assert_eq!((c.all_unlinked, c.removed, c.removed_bytes), (true, 1, 5));
        assert!(empty(d.path()));
        let ms = fs::read_to_string(d.path().join("maildirsize")).unwrap();
        assert_eq!(ms, "1000S,10C\n5 1\n-5 -1\n");
    }

    pub(super) fn empty(d: &Path) -> bool {
        ["new", "cur"]
            .iter()
            .all(|s| fs::read_dir(d.join(s)).unwrap().next().is_none())
    }

    #[test]
    fn tmp_cleaning_and_no_maildirsize() {
        let (d, m) = md();
        put(d.path(), "tmp/old", b"x", 100);
        m.clean_tmp(100 + TMP_MAX_AGE + 10_000_000_000);
        assert!(!d.path().join("tmp/old").exists());
        crate::maildir::quota::append(d.path(), -1, -1).unwrap();
        assert!(!d.path().join("maildirsize").exists());
    }
}
