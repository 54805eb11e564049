//! A domain's `vpasswd` file and its `vpasswd.cdb`, under vpopmail's lock.
//!
//! Reading goes through `vpasswd.cdb` (key = user name, data = the rest of the
//! line after the first `:`), so a lookup costs the same in a domain of ten users
//! or a hundred thousand. When the cdb is missing it is rebuilt from vpasswd (if
//! this process may write the domain), otherwise, and when vpasswd is newer than
//! the cdb (a hand edit, or a writer caught between its two renames), the text
//! file is scanned.
//!
//! Every change takes an exclusive fcntl lock on `DOMAIN/.vpasswd.lock` (the kind
//! vpopmail takes; flock would not be seen by it), reads vpasswd, writes the new
//! text and the new `vpasswd.cdb` to temporary files and fsyncs both, then
//! renames them into place, vpasswd first. A write that fails (a full disk)
//! changes nothing; a crash at any moment leaves the old or the new vpasswd,
//! never a torn one; a crash between the two renames leaves a cdb older than
//! vpasswd, which readers notice (above) and the next writer replaces.
//!
//! New users are inserted before the first line whose name sorts after them, as
//! vpopmail's `vauth_adduser` does, so a sorted file stays sorted and a hand-made
//! order is left alone.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use crate::cdb;
use crate::vpop::entry::Entry;

/// File names inside a domain directory.
pub const VPASSWD: &str = "vpasswd";
/// The compiled form.
pub const VPASSWD_CDB: &str = "vpasswd.cdb";
/// Temporary name of the compiled form while it is built.
pub const VPASSWD_CDB_TMP: &str = "vpasswd.cdb.tmp";
/// The lock file.
pub const VPASSWD_LOCK: &str = ".vpasswd.lock";

/// Looks a user up in the domain directory `dir`.
pub fn lookup(dir: &Path, user: &str, owner: Option<(u32, u32)>) -> io::Result<Option<Entry>> {
    lookup_with(dir, user, owner, true)
}

/// Like [`lookup`], for a process that already holds the domain's [`Lock`]:
/// never rebuilds the cdb (taking the lock a second time and closing it would
/// release the caller's fcntl lock, which belongs to the process, not the
/// descriptor).
pub fn lookup_locked(_lock: &Lock, dir: &Path, user: &str) -> io::Result<Option<Entry>> {
    lookup_with(dir, user, None, false)
}

fn lookup_with(
    dir: &Path,
    user: &str,
    owner: Option<(u32, u32)>,
    may_rebuild: bool,
) -> io::Result<Option<Entry>> {
    let text = dir.join(VPASSWD);
    let cdbp = dir.join(VPASSWD_CDB);
    let text_m = std::fs::metadata(&text).and_then(|m| m.modified()).ok();
    let cdb_m = std::fs::metadata(&cdbp).and_then(|m| m.modified()).ok();
    let from_cdb = |cdbp: &Path| -> io::Result<Option<Option<Entry>>> {
        Ok(cdb::Reader::open_opt_nofollow(cdbp)?.map(|r| {
            r.get(user.as_bytes())
                .ok()
                .flatten()
                .and_then(|d| Entry::from_parts(user, &crate::vpop::entry::decode(&d)).ok())
        }))
    };
    match (cdb_m, text_m) {
        (Some(c), Some(t)) if t > c => {
            // vpasswd changed after its cdb (a hand edit, or a writer killed
            // between its renames): rebuilt, as vpopmail does, so lookups stay
            // cdb lookups. Checked again under the lock, which a writer holds
            // across both of its renames.
            if may_rebuild && may_write(dir) {
                if let Ok(lock) = Lock::take(dir, owner) {
                    let stale = || -> Option<bool> {
                        let t = std::fs::metadata(&text).and_then(|m| m.modified()).ok()?;
                        let c = std::fs::metadata(&cdbp).and_then(|m| m.modified()).ok()?;
                        Some(t > c)
                    };
                    if stale() != Some(true) || lock.rebuild_cdb().is_ok() {
                        if let Some(found) = from_cdb(&cdbp)? {
                            return Ok(found);
                        }
                    }
                }
            }
            scan(&text, user)
        }
        (Some(_), _) => {
            let get = || -> io::Result<Option<Option<Entry>>> {
                let Some(r) = cdb::Reader::open_opt_nofollow(&cdbp)? else {
                    return Ok(None);
                };
                Ok(Some(r.get(user.as_bytes())?.and_then(|d| {
                    Entry::from_parts(user, &crate::vpop::entry::decode(&d)).ok()
                })))
            };
            match get() {
                Ok(Some(found)) => return Ok(found),
                Ok(None) => {}
                // A corrupt cdb (cut short by a full disk or a hand copy) is
                // rebuilt from vpasswd as a missing one is; where this
                // process may not, vpasswd itself answers. vpasswd is the
                // truth: the cdb is only its index.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    if may_rebuild && may_write(dir) {
                        if let Ok(lock) = Lock::take(dir, owner) {
                            if lock.rebuild_cdb().is_ok() {
                                if let Ok(Some(found)) = get() {
                                    return Ok(found);
                                }
                            }
                        }
                    }
                }
                Err(e) => return Err(e),
            }
            scan(&text, user)
        }
        (None, None) => {
            // Neither file: no users. A domain this process may not read
            // (run by someone other than its owner) is an error, not that.
            match std::fs::metadata(&text) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(None),
            }
        }
        (None, Some(_)) => {
            if may_rebuild && may_write(dir) {
                // Rebuild as vpopmail does; if that fails, the text still answers.
                if let Ok(lock) = Lock::take(dir, owner) {
                    let _ = lock.rebuild_cdb();
                    if let Some(r) = cdb::Reader::open_opt_nofollow(&cdbp)? {
                        return Ok(r.get(user.as_bytes())?.and_then(|d| {
                            Entry::from_parts(user, &crate::vpop::entry::decode(&d)).ok()
                        }));
                    }
                }
            }
            scan(&text, user)
        }
    }
}

fn may_write(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let euid = nix::unistd::geteuid().as_raw();
    euid == 0
        || std::fs::metadata(dir)
            .map(|m| m.uid() == euid)
            .unwrap_or(false)
}

fn scan(text: &Path, user: &str) -> io::Result<Option<Entry>> {
    let Some(b) = crate::fsutil::read_nofollow(text)? else {
        return Ok(None);
    };
    let s = crate::vpop::entry::decode(&b);
    for line in s.lines() {
        if line.split(':').next() == Some(user) {
            return Ok(Entry::parse(line).ok());
        }
    }
    Ok(None)
}

/// Every entry of the domain, in file order (unparsable lines are skipped).
pub fn read_all(dir: &Path) -> io::Result<Vec<Entry>> {
    Ok(read_lines(&dir.join(VPASSWD))?
        .iter()
        .filter_map(|l| Entry::parse(l).ok())
        .collect())
}

fn read_lines(path: &Path) -> io::Result<Vec<String>> {
    Ok(match crate::fsutil::read_nofollow(path)? {
        Some(b) => crate::vpop::entry::decode(&b)
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        None => Vec::new(),
    })
}

/// Writes `data` to a new file at `p` (mode 0600) and fsyncs it.
/// Writes a new file (mode 0600, given to `owner` as root) and syncs it.
fn write_synced(p: &Path, data: &[u8], owner: Option<(u32, u32)>) -> io::Result<()> {
    use std::io::Write;
    let mut f = crate::fsutil::create_fresh(p, 0o600)?;
    crate::fsutil::fchown_if_root(&f, owner)?;
    f.write_all(data)?;
    f.sync_all()
}

/// Builds the vpasswd.cdb records from vpasswd lines, as vpopmail's
/// `make_vpasswd_cdb` (key up to the first `:`, data after it; lines without
/// `:` are skipped).
pub fn cdb_from_lines<S: AsRef<str>>(lines: &[S]) -> cdb::Writer {
    let mut w = cdb::Writer::new();
    for l in lines {
        if let Some((k, d)) = l.as_ref().split_once(':') {
            w.add(
                &crate::vpop::entry::encode(k),
                &crate::vpop::entry::encode(d),
            );
        }
    }
    w
}

/// Why a change was not made.
#[derive(Debug)]
pub enum ChangeError {
    /// The user is already in vpasswd.
    Exists,
    /// The user is not in vpasswd.
    Missing,
    /// A system error.
    Io(io::Error),
}

impl From<io::Error> for ChangeError {
    fn from(e: io::Error) -> Self {
        ChangeError::Io(e)
    }
}

/// The exclusive lock on a domain's `.vpasswd.lock`; changes are made through it.
pub struct Lock {
    /// The directory, pinned: `/proc/self/fd/N` of a descriptor opened on
    /// it when the lock was taken (see [`Lock::take_named`]).
    dir: PathBuf,
    owner: Option<(u32, u32)>,
    _file: File,
    _dir_fd: Option<std::os::fd::OwnedFd>,
}

impl Lock {
    /// Takes the lock (waiting for it). `owner` is the domain's uid/gid, given
    /// to the files when running as root.
    pub fn take(dir: &Path, owner: Option<(u32, u32)>) -> io::Result<Lock> {
        Lock::take_named(dir, VPASSWD_LOCK, owner)
    }

    /// Takes an exclusive fcntl lock on `dir/name` (another lock file of the
    /// same kind, such as `domains/.dir-control.lock`).
    ///
    /// The directory is opened once (its last component not through a
    /// link) and every file of it is then reached through that descriptor
    /// (`/proc/self/fd/N/...`): an owner of the domain's tree who swaps the
    /// directory, or one above it, for a link while root works cannot send
    /// root's reads and writes into another domain. A directory that turns
    /// out not to belong to an owner other than vpopmail and root (an
    /// untrusted owner, [`crate::vpop::untrusted`]) is refused.
    pub fn take_named(dir: &Path, name: &str, owner: Option<(u32, u32)>) -> io::Result<Lock> {
        crate::fsutil::no_planted_links(dir)?;
        // Only a domain's own directory must be its owner's; a `domains`
        // directory may be vpopmail's.
        let (pinned, dir_fd) = pin_dir(dir, owner.filter(|_| name == VPASSWD_LOCK))?;
        let path = pinned.join(name);
        let f = crate::fsutil::open_lock(&path)?;
        crate::sys::lock_exclusive(&f)?;
        crate::fsutil::fchown_if_root(&f, owner)?;
        Ok(Lock {
            dir: pinned,
            owner,
            _file: f,
            _dir_fd: dir_fd,
        })
    }

    /// The locked directory, pinned (see [`Lock::take_named`]): the path to
    /// use for its other files while the lock is held.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current lines of vpasswd.
    pub fn lines(&self) -> io::Result<Vec<String>> {
        read_lines(&self.dir.join(VPASSWD))
    }

    /// Writes `lines` as the new vpasswd and its cdb: both are written and
    /// synced under temporary names first, and only then renamed into place,
    /// so a failure (a full disk) changes nothing.
    pub fn write(&self, lines: &[String]) -> io::Result<()> {
        let path = self.dir.join(VPASSWD);
        let cdb_path = self.dir.join(VPASSWD_CDB);
        let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let cdb_bytes = cdb_from_lines(lines).to_bytes()?;
        // Temporary files of writers killed before their renames (we hold
        // the lock, so no other writer of ours is between them now).
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with("vpasswd.tmp.") {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let tmp = crate::fsutil::tmp_path(&path);
        let cdb_tmp = self.dir.join(VPASSWD_CDB_TMP);
        // Both are the domain owner's before they replace the live files:
        // vchkpw, vdelivermail and qmail-smtpd's rcptcheck read them as
        // vpopmail at any moment.
        let staged = write_synced(&tmp, &crate::vpop::entry::encode(&text), self.owner)
            .and_then(|_| write_synced(&cdb_tmp, &cdb_bytes, self.owner))
            .and_then(|_| std::fs::rename(&tmp, &path));
        if let Err(e) = staged {
            let _ = std::fs::remove_file(&tmp);
            let _ = std::fs::remove_file(&cdb_tmp);
            return Err(e);
        }
        // vpasswd is in place; a cdb that cannot follow is only older than
        // vpasswd, which readers notice (see the module text).
        let r = std::fs::rename(&cdb_tmp, &cdb_path);
        if r.is_err() {
            let _ = std::fs::remove_file(&cdb_tmp);
        }
        r.and_then(|_| crate::fsutil::fsync_dir(&self.dir))
    }

    fn write_cdb(&self, lines: &[String]) -> io::Result<()> {
        let path = self.dir.join(VPASSWD_CDB);
        cdb_from_lines(lines).write_via_owned(
            &path,
            &self.dir.join(VPASSWD_CDB_TMP),
            0o600,
            self.owner,
        )
    }

    /// Rebuilds vpasswd.cdb from vpasswd (vmkpasswd).
    pub fn rebuild_cdb(&self) -> io::Result<()> {
        let lines = self.lines()?;
        self.write_cdb(&lines)
    }

    /// Adds an entry, in vpopmail's sorted position.
    pub fn add(&self, e: &Entry) -> Result<(), ChangeError> {
        let mut lines = self.lines()?;
        if lines.iter().any(|l| name_of(l) == e.name) {
            return Err(ChangeError::Exists);
        }
        let at = lines
            .iter()
            .position(|l| e.name.as_str() < name_of(l))
            .unwrap_or(lines.len());
        lines.insert(at, e.to_line());
        self.write(&lines)?;
        Ok(())
    }

    /// Replaces the entry with the same name.
    pub fn modify(&self, e: &Entry) -> Result<(), ChangeError> {
        let mut lines = self.lines()?;
        let mut found = false;
        for l in lines.iter_mut() {
            if name_of(l) == e.name {
                *l = e.to_line();
                found = true;
            }
        }
        if !found {
            return Err(ChangeError::Missing);
        }
        self.write(&lines)?;
        Ok(())
    }

    /// Removes the entry `name`; returns it.
    pub fn delete(&self, name: &str) -> Result<Entry, ChangeError> {
        let lines = self.lines()?;
        let old = lines
            .iter()
            .find(|l| name_of(l) == name)
            .and_then(|l| Entry::parse(l).ok())
            .ok_or(ChangeError::Missing)?;
        let kept: Vec<String> = lines.into_iter().filter(|l| name_of(l) != name).collect();
        self.write(&kept)?;
        Ok(old)
    }

    /// The entry `name` as it is now (read under the lock).
    pub fn get(&self, name: &str) -> io::Result<Option<Entry>> {
        Ok(self
            .lines()?
            .iter()
            .find(|l| name_of(l) == name)
            .and_then(|l| Entry::parse(l).ok()))
    }
}

/// Opens `dir` (its last component not through a link) and returns the
/// path that reaches that very directory whatever happens to `dir` later
/// (`/proc/self/fd/N`), with the descriptor to keep open; `dir` itself when
/// /proc is not there. For an untrusted owner the directory must be its.
pub fn pin_dir(
    dir: &Path,
    owner: Option<(u32, u32)>,
) -> io::Result<(PathBuf, Option<std::os::fd::OwnedFd>)> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let flags = nix::fcntl::OFlag::O_RDONLY
        | nix::fcntl::OFlag::O_DIRECTORY
        | nix::fcntl::OFlag::O_NOFOLLOW
        | nix::fcntl::OFlag::O_CLOEXEC;
    let fd = nix::fcntl::open(dir, flags, nix::sys::stat::Mode::empty())?;
    let pinned = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let m = std::fs::metadata(&pinned);
    if let Some((uid, _)) = crate::vpop::untrusted(owner) {
        match &m {
            Ok(m) if m.uid() == uid => {}
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("{} does not belong to the domain's owner", dir.display()),
                ))
            }
            Err(e) => return Err(io::Error::new(e.kind(), e.to_string())),
        }
    }
    if m.is_err() {
        // No /proc: the path, as it is.
        return Ok((dir.to_path_buf(), None));
    }
    Ok((pinned, Some(fd)))
}

fn name_of(line: &str) -> &str {
    line.split(':').next().unwrap_or("")
}

/// Gives `path` to `owner` when running as root (a no-op otherwise).
pub fn chown_to(path: &Path, owner: Option<(u32, u32)>) {
    if let Some((uid, gid)) = owner {
        if nix::unistd::geteuid().is_root() {
            let _ = crate::fsutil::lchown(path, uid, gid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(name: &str) -> Entry {
        Entry::new(name, "$6$x$y", "", &format!("/d/{name}"))
    }

    #[test]
    fn files_are_the_domain_owners_when_they_appear() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        // A directory not the owner's is refused; the owner's is worked in.
        assert_eq!(
            Lock::take(d.path(), Some((65534, 65534)))
                .err()
                .map(|e| e.kind()),
            Some(io::ErrorKind::PermissionDenied)
        );
        crate::fsutil::lchown(d.path(), 65534, 65534).unwrap();
        let lock = Lock::take(d.path(), Some((65534, 65534))).unwrap();
        lock.add(&e("joe")).unwrap();
        for f in [VPASSWD, VPASSWD_CDB] {
            let m = std::fs::metadata(d.path().join(f)).unwrap();
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{f}");
        }
        lock.rebuild_cdb().unwrap();
        assert_eq!(
            std::fs::metadata(d.path().join(VPASSWD_CDB)).unwrap().uid(),
            65534
        );
    }

    #[test]
    fn a_failed_write_changes_nothing_and_leftovers_go() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let l = Lock::take(dir, None).unwrap();
        l.add(&e("alice")).unwrap();
        let before = std::fs::read(dir.join(VPASSWD)).unwrap();
        let cdb_before = std::fs::read(dir.join(VPASSWD_CDB)).unwrap();
        // The cdb cannot be written (as on a full disk): vpasswd stays as it was.
        std::fs::create_dir(dir.join(VPASSWD_CDB_TMP)).unwrap();
        assert!(l.add(&e("bob")).is_err());
        assert_eq!(std::fs::read(dir.join(VPASSWD)).unwrap(), before);
        assert_eq!(std::fs::read(dir.join(VPASSWD_CDB)).unwrap(), cdb_before);
        std::fs::remove_dir(dir.join(VPASSWD_CDB_TMP)).unwrap();
        // A writer killed earlier left its temporary file: the next one removes it.
        std::fs::write(dir.join("vpasswd.tmp.99999"), "alice:x\n").unwrap();
        l.add(&e("bob")).unwrap();
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
        assert_eq!(lookup(dir, "bob", None).unwrap().unwrap().name, "bob");
    }

    #[test]
    fn add_sorted_modify_delete_and_cdb() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        let l = Lock::take(dir, None).unwrap();
        for n in ["mike", "alice", "zed", "bob"] {
            l.add(&e(n)).unwrap();
        }
        assert!(matches!(l.add(&e("bob")), Err(ChangeError::Exists)));
        let text = std::fs::read_to_string(dir.join(VPASSWD)).unwrap();
        let names: Vec<&str> = text.lines().map(name_of).collect();
        assert_eq!(names, ["alice", "bob", "mike", "zed"]);
        let mut b = l.get("bob").unwrap().unwrap();
        b.quota = "1000S".into();
        l.modify(&b).unwrap();
        drop(l);
        assert_eq!(lookup(dir, "bob", None).unwrap().unwrap().quota, "1000S");
        assert_eq!(
            cdb::lookup(&dir.join(VPASSWD_CDB), b"bob")
                .unwrap()
                .unwrap(),
            b.rest().as_bytes()
        );
        let l = Lock::take(dir, None).unwrap();
        l.delete("mike").unwrap();
        assert!(matches!(l.delete("mike"), Err(ChangeError::Missing)));
        drop(l);
        assert!(lookup(dir, "mike", None).unwrap().is_none());
        assert_eq!(read_all(dir).unwrap().len(), 3);
    }

    #[test]
    fn missing_cdb_is_rebuilt_and_stale_cdb_is_bypassed() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        std::fs::write(dir.join(VPASSWD), "joe:x:1:0:Joe:/d/joe:NOQUOTA:pw\n").unwrap();
        let j = lookup(dir, "joe", None).unwrap().unwrap();
        assert_eq!(j.clear.as_deref(), Some("pw"));
        assert!(dir.join(VPASSWD_CDB).exists());
        // A hand edit newer than the cdb is seen.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::write(dir.join(VPASSWD), "ann:x:1:0:Ann:/d/ann:NOQUOTA\n").unwrap();
        File::options()
            .write(true)
            .open(dir.join(VPASSWD))
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert!(lookup(dir, "ann", None).unwrap().is_some());
        assert!(lookup(dir, "joe", None).unwrap().is_none());
        assert!(lookup(dir, "nobody", None).unwrap().is_none());
    }

    #[test]
    fn a_corrupt_cdb_is_rebuilt_or_bypassed() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path();
        std::fs::write(dir.join(VPASSWD), "joe:x:1:0:Joe:/d/joe:NOQUOTA\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
        let corrupt = || {
            std::fs::write(dir.join(VPASSWD_CDB), [0xffu8; 3000]).unwrap();
            File::options()
                .write(true)
                .open(dir.join(VPASSWD_CDB))
                .unwrap()
                .set_modified(later)
                .unwrap();
        };
        // A writer holding the lock may not rebuild: vpasswd answers.
        corrupt();
        let lock = Lock::take(dir, None).unwrap();
        assert!(lookup_locked(&lock, dir, "joe").unwrap().is_some());
        assert!(lookup_locked(&lock, dir, "ann").unwrap().is_none());
        drop(lock);
        // A reader that may write the domain rebuilds it.
        assert!(lookup(dir, "joe", None).unwrap().is_some());
        let r = cdb::Reader::open_opt_nofollow(&dir.join(VPASSWD_CDB))
            .unwrap()
            .unwrap();
        assert!(r.get(b"joe").unwrap().is_some());
    }

    #[test]
    fn cdb_matches_vpopmails_make_vpasswd_cdb() {
        let lines = ["a:x:1:0:a:/d/a:NOQUOTA", "b:y:1:0:b:/d/b:NOQUOTA:c"];
        let w = cdb_from_lines(&lines);
        let mut ref_w = cdb::Writer::new();
        ref_w.add(b"a", b"x:1:0:a:/d/a:NOQUOTA");
        ref_w.add(b"b", b"y:1:0:b:/d/b:NOQUOTA:c");
        assert_eq!(w.to_bytes().unwrap(), ref_w.to_bytes().unwrap());
    }
}
