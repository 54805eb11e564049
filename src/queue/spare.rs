//! Spare files for qmail-queue, in `pid/spare/`.
//!
//! When a message is finished, qmail-clean renames its last `mess` and `todo`
//! names there and empties them instead of unlinking them; qmail-queue renames
//! a spare into place (its pid file, its `intd/N`) instead of creating a file.
//! The queue's layout and every name in it stay as qmail has them; only fewer
//! inodes are created and freed, which costs some file systems a lot (ext4
//! without a journal scans every recently freed inode on each creation).
//!
//! A spare is claimed by renaming it to its new name, never over an existing
//! one, and only then emptied and written, so two qmail-queues never share
//! one and no queue file ever shows another message's bytes. qmail's own
//! programs never look into `pid/spare/`.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::Queue;

/// At most this many spares are kept (a few more between counts).
pub const MAX: usize = 4096;

/// The spare directory.
pub fn dir(q: &Queue) -> PathBuf {
    q.dir().join("pid").join("spare")
}

/// Makes a spare directory if needed and removes hidden files a crash left
/// in it (see [`keep`]); whether it can be used.
pub fn prepare_dir(d: &Path) -> bool {
    if std::fs::create_dir(d).is_ok() {
        return true;
    }
    if !std::fs::symlink_metadata(d).is_ok_and(|m| m.is_dir()) {
        return false;
    }
    if let Ok(rd) = std::fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_name().to_string_lossy().starts_with('.') {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    true
}

/// Claims the spare `from` as `to`, never over an existing name
/// (`AlreadyExists`), and opens it emptied for reading and writing. A spare
/// another process took first is `NotFound`.
///
/// The file is then made to look as a new one would: mode 0644 (as
/// qmail-queue's files are, whatever umask made the spare) and its times
/// set to now. qmail-send's cleanup removes message files whose atime is
/// 36 hours old; an old spare must not look like one while it is filled.
///
/// A spare with another name is not a spare: on a file system without a
/// journal, a power failure can undo the rename that made a spare a queue
/// file while keeping the queue file's new name, and emptying the file
/// would empty that message. Such a file is left to its other name and the
/// claim fails as if the spare had been taken (`NotFound`).
pub fn claim(from: &Path, to: &Path) -> io::Result<File> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    crate::sys::queue::rename_noreplace(from, to)?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(to)
        .and_then(|f| {
            let m = f.metadata()?;
            if !m.is_file() {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            if m.nlink() != 1 {
                return Err(io::ErrorKind::NotFound.into());
            }
            if m.len() != 0 {
                f.set_len(0)?;
            }
            // (Most spares are 0644 already: no chmod for them.)
            if m.permissions().mode() & 0o7777 != 0o644 {
                f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            }
            let now = std::time::SystemTime::now();
            f.set_times(
                std::fs::FileTimes::new()
                    .set_accessed(now)
                    .set_modified(now),
            )?;
            Ok(f)
        });
    if f.is_err() {
        let _ = std::fs::remove_file(to);
    }
    f
}

/// Removes the name `p` by making it the spare `spare`, emptied. The file is
/// emptied under a hidden name (`.NAME`, which no taker looks at) and only then
/// renamed to `spare`: emptied after it became a spare, it could cut a file a
/// qmail-queue had just claimed and written. A crash leaves a full hidden file
/// (removed by [`prepare_dir`]), never an empty queue file. A missing `p` is
/// `NotFound`, as for unlink; on other errors the caller unlinks.
pub fn keep(p: &Path, spare: &Path) -> io::Result<()> {
    let name = spare.file_name().unwrap_or_default().to_string_lossy();
    let hidden = spare.with_file_name(format!(".{name}"));
    std::fs::rename(p, &hidden)?;
    let emptied = OpenOptions::new()
        .write(true)
        .open(&hidden)
        .and_then(|f| f.set_len(0));
    if emptied
        .and_then(|_| std::fs::rename(&hidden, spare))
        .is_err()
    {
        let _ = std::fs::remove_file(&hidden);
    }
    Ok(())
}

/// The spares in `d`, in directory order (hidden files being emptied are not
/// spares; none when `d` is missing).
pub fn names(d: &Path) -> impl Iterator<Item = PathBuf> {
    std::fs::read_dir(d)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
}

/// The spares seen once by a qmail-queue run.
pub struct Taker {
    names: Vec<PathBuf>,
    next: u64,
}

impl Taker {
    /// How many spares one qmail-queue run looks at: the first ones in the
    /// directory, which one read of it returns, however many it holds.
    const LOOK: usize = 64;

    /// Lists some spares (none when the directory is missing).
    pub fn list(q: &Queue) -> Taker {
        let names = names(&dir(q)).take(Self::LOOK).collect();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let next = (u64::from(std::process::id()) << 32 | u64::from(nanos)) | 1;
        Taker { names, next }
    }

    /// Claims a spare as `to`, which must not exist, and opens it emptied for
    /// reading and writing; `None` when no spare could be had (the caller
    /// creates the file).
    pub fn take(&mut self, to: &Path) -> Option<File> {
        for _ in 0..8 {
            if self.names.is_empty() {
                return None;
            }
            // Concurrent qmail-queues saw much the same names: each tries
            // them in its own order (xorshift), so they seldom collide.
            self.next ^= self.next << 13;
            self.next ^= self.next >> 7;
            self.next ^= self.next << 17;
            let from = self
                .names
                .swap_remove((self.next % self.names.len() as u64) as usize);
            match claim(&from, to) {
                Ok(f) => return Some(f),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => return None,
            }
        }
        None
    }
}

/// qmail-clean's side: keeps removed files as spares.
pub struct Keeper {
    dir: Option<PathBuf>,
    count: usize,
    since_count: u32,
    seq: u64,
}

impl Keeper {
    /// The directory is counted again after this many removals.
    const RECOUNT: u32 = 128;

    /// Makes the spare directory if needed and counts what it holds.
    pub fn open(q: &Queue) -> Keeper {
        let d = dir(q);
        let ok = prepare_dir(&d);
        let mut k = Keeper {
            dir: ok.then_some(d),
            count: 0,
            since_count: 0,
            seq: 0,
        };
        k.recount();
        k
    }

    fn recount(&mut self) {
        self.since_count = 0;
        self.count = match self.dir.as_ref().map(std::fs::read_dir) {
            Some(Ok(rd)) => rd.count(),
            _ => MAX,
        };
    }

    /// Removes the name `p` (the file's last one): renamed into the spare
    /// directory and emptied, or unlinked when there are enough spares.
    /// A missing `p` is `NotFound`, as for unlink.
    pub fn remove(&mut self, p: &Path) -> io::Result<()> {
        // Spares taken by qmail-queue since the last count show up here.
        self.since_count += 1;
        if self.since_count > Self::RECOUNT {
            self.recount();
        }
        if let Some(d) = self.dir.as_ref().filter(|_| self.count < MAX) {
            self.seq += 1;
            let spare = d.join(format!("{}.{}", std::process::id(), self.seq));
            match keep(p, &spare) {
                Ok(()) => {
                    self.count += 1;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(e),
                Err(_) => {}
            }
        }
        std::fs::remove_file(p)
    }
}

impl Keeper {
    /// Adds a spare that was never a message file: a new empty file, made
    /// here, off qmail-queue's path, so that a message file qmail-clean had to
    /// unlink (see [`super::clean`]) is replaced without qmail-queue making an
    /// inode itself. Nothing when there are enough spares.
    pub fn replenish(&mut self) {
        let Some(d) = self.dir.as_ref().filter(|_| self.count < MAX) else {
            return;
        };
        self.seq += 1;
        let name = format!("{}.{}", std::process::id(), self.seq);
        let hidden = d.join(format!(".{name}"));
        // 0644 whatever the umask (qmail-start's is 077).
        let made = crate::fsutil::create_fresh(&hidden, 0o644)
            .and_then(|f| {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o644))
            })
            .and_then(|_| std::fs::rename(&hidden, d.join(&name)));
        match made {
            Ok(()) => self.count += 1,
            Err(_) => {
                let _ = std::fs::remove_file(&hidden);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn kept_files_come_back_empty_under_their_new_name() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("pid")).unwrap();
        let q = Queue::new(d.path());
        let mut k = Keeper::open(&q);
        let a = d.path().join("a");
        std::fs::write(&a, "old message").unwrap();
        let ino = std::fs::metadata(&a).unwrap().ino();
        k.remove(&a).unwrap();
        assert!(!a.exists());
        assert_eq!(
            k.remove(&d.path().join("missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        // Emptied under a hidden name first, none of which stays behind; a
        // hidden file left by a crash is no spare and goes at the next start.
        assert!(names(&dir(&q)).all(|n| std::fs::metadata(n).unwrap().len() == 0));
        std::fs::write(dir(&q).join(".9.9"), "half kept").unwrap();
        assert_eq!(names(&dir(&q)).count(), 1);
        assert!(prepare_dir(&dir(&q)));
        assert!(!dir(&q).join(".9.9").exists());
        let mut t = Taker::list(&q);
        // Never over an existing name.
        std::fs::write(d.path().join("b"), "x").unwrap();
        assert!(t.take(&d.path().join("b")).is_none());
        assert_eq!(std::fs::read(d.path().join("b")).unwrap(), b"x");
        let mut t = Taker::list(&q);
        let c = d.path().join("c");
        let mut f = t.take(&c).unwrap();
        assert_eq!(f.metadata().unwrap().ino(), ino);
        let mut s = String::new();
        f.read_to_string(&mut s).unwrap();
        assert_eq!(s, "");
        f.write_all(b"new").unwrap();
        assert_eq!(std::fs::read(&c).unwrap(), b"new");
        assert!(t.take(&d.path().join("e")).is_none());
        assert_eq!(std::fs::read_dir(dir(&q)).unwrap().count(), 0);
    }

    #[test]
    fn a_spare_that_is_also_a_queue_file_is_left_alone() {
        // What a power failure can leave: the spare's name and a message's
        // name for one file.
        let d = tempfile::tempdir().unwrap();
        let spare = d.path().join("spare");
        let mess = d.path().join("mess");
        std::fs::write(&mess, "the message").unwrap();
        std::fs::hard_link(&mess, &spare).unwrap();
        let to = d.path().join("new");
        let e = claim(&spare, &to).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(std::fs::read(&mess).unwrap(), b"the message");
        assert!(!to.exists() && !spare.exists());
        // A real spare is emptied.
        std::fs::write(&spare, "old").unwrap();
        let f = claim(&spare, &to).unwrap();
        assert_eq!(f.metadata().unwrap().len(), 0);
    }

    #[test]
    fn a_claimed_spare_looks_new() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let old = d.path().join("old");
        std::fs::write(&old, "").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Two days old, as a spare on a quiet host.
        let then = std::time::SystemTime::now() - std::time::Duration::from_secs(2 * 86400);
        let f = std::fs::File::options().write(true).open(&old).unwrap();
        f.set_times(
            std::fs::FileTimes::new()
                .set_accessed(then)
                .set_modified(then),
        )
        .unwrap();
        drop(f);
        let to = d.path().join("new");
        let f = claim(&old, &to).unwrap();
        let m = f.metadata().unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o644);
        let now = std::time::SystemTime::now();
        for t in [m.accessed().unwrap(), m.modified().unwrap()] {
            assert!(now.duration_since(t).unwrap_or_default().as_secs() < 60);
        }
    }

    #[test]
    fn keeps_at_most_max() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("pid")).unwrap();
        let q = Queue::new(d.path());
        let mut k = Keeper::open(&q);
        for i in 0..MAX + 40 {
            let p = d.path().join(i.to_string());
            std::fs::write(&p, "m").unwrap();
            k.remove(&p).unwrap();
            assert!(!p.exists());
        }
        let n = std::fs::read_dir(dir(&q)).unwrap().count();
        assert_eq!(n, MAX);
        // Taken spares are counted again later, and then kept again.
        for i in 0..100 {
            let mut t = Taker::list(&q);
            assert!(t.take(&d.path().join(format!("t{i}"))).is_some());
        }
        assert_eq!(std::fs::read_dir(dir(&q)).unwrap().count(), MAX - 100);
        for i in 0..Keeper::RECOUNT + 100 {
            let p = d.path().join(format!("again{i}"));
            std::fs::write(&p, "m").unwrap();
            k.remove(&p).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir(&q)).unwrap().count(), MAX);
    }
}
