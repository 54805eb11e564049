//! Crash-safe file writes: create a temporary file next to the target, write,
//! fsync, rename over the target, fsync the directory. A crash at any moment
//! leaves either the old file or the new one, never a torn one (a stale
//! temporary file at worst, which the next writer of that file removes).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The temporary name used for an atomic write of `path`: `NAME.tmp.PID` in the
/// same directory (so the rename cannot cross file systems).
pub fn tmp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!("{name}.tmp.{}", std::process::id()))
}

/// Removes the temporary files (`NAME.tmp.PID`) that writers of `path`
/// killed before their rename left behind: only those whose process is gone,
/// so a live writer's file is never taken from under it.
fn remove_dead_tmps(path: &Path) {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
        return;
    };
    let prefix = format!("{name}.tmp.");
    let Ok(rd) = std::fs::read_dir(parent_dir(path)) else {
        return;
    };
    for e in rd.flatten() {
        let n = e.file_name();
        let Some(pid) = n
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // (Linux pids stop at 2^22: a larger number is not a writer's.)
        let gone = pid > 0
            && pid <= 1 << 22
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
                == Err(nix::errno::Errno::ESRCH);
        if gone {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

/// Creates `p` afresh for writing with `mode`: whatever is at that name (a
/// file a killed writer left, or a link someone planted) is unlinked, never
/// followed, and the new file is made exclusively (`O_EXCL`, so a link put
/// back in between makes this fail instead of being followed).
pub fn create_fresh(p: &Path, mode: u32) -> io::Result<File> {
    match std::fs::remove_file(p) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(p)
}

/// Opens (creating it, mode 0600) a lock file; a symbolic link at its name is
/// an error (`ELOOP`), never followed. A name that is not a plain file of its
/// own (a hard link someone with write access to the directory planted to
/// another file) is replaced by a new file, so that giving the lock file to
/// its owner (through the descriptor, [`fchown_if_root`]) never gives away
/// another file.
pub fn open_lock(p: &Path) -> io::Result<File> {
    use std::os::unix::fs::MetadataExt;
    // Non-blocking, so a FIFO at the name cannot make the opener wait.
    let open = || {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(p)
    };
    match open() {
        Ok(f) => {
            let m = f.metadata()?;
            if m.is_file() && m.nlink() == 1 {
                return Ok(f);
            }
        }
        // A FIFO nobody reads (ENXIO); a symbolic link stays an error.
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {}
        Err(e) => return Err(e),
    }
    drop(create_fresh(p, 0o600)?);
    let f = open()?;
    let m = f.metadata()?;
    if m.is_file() && m.nlink() == 1 {
        Ok(f)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a lock file of its own", p.display()),
        ))
    }
}

/// For root's tools working in directories other users own (a domain's
/// directory tree is vpopmail's): an error when some component of `path` is a
/// symbolic link in a directory that a user other than root can write, a
/// link that user may have planted to make root write elsewhere. Links that
/// only root could have made (`/home` pointing to another disk) are fine.
/// Nothing is checked for other users, and components that do not exist yet
/// end the check.
pub fn no_planted_links(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let mut cur = PathBuf::new();
    for comp in path.components() {
        cur.push(comp);
        if !matches!(comp, std::path::Component::Normal(_)) {
            continue;
        }
        let m = match std::fs::symlink_metadata(&cur) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        if !m.file_type().is_symlink() {
            continue;
        }
        let parent = cur.parent().unwrap_or(Path::new("/"));
        let pm = std::fs::metadata(parent)?;
        if pm.uid() != 0 || pm.mode() & 0o022 != 0 {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is a symbolic link in a directory another user can write; not followed",
                    cur.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Reads a whole file that must not be a symbolic link (`None` when missing).
pub fn read_nofollow(p: &Path) -> io::Result<Option<Vec<u8>>> {
    read_regular(p, true)
}

/// [`read_nofollow`] for a file whose contents root copies somewhere others
/// may read (tcp.smtp into tcp.smtp.cdb): a file with another name too (a
/// hard link the directory's owner made to a file of root's) is refused.
pub fn read_nofollow_single(p: &Path) -> io::Result<Option<Vec<u8>>> {
    read_checked(p, true, true)
}

/// Reads a whole regular file, `Ok(None)` when it does not exist: the open
/// does not wait (a FIFO in a file's place must not hang root's tools), and
/// anything but a regular file is an error; with `nofollow`, so is a
/// symbolic link.
pub fn read_regular(p: &Path, nofollow: bool) -> io::Result<Option<Vec<u8>>> {
    read_checked(p, nofollow, false)
}

fn read_checked(p: &Path, nofollow: bool, single: bool) -> io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let flags = libc::O_NONBLOCK | if nofollow { libc::O_NOFOLLOW } else { 0 };
    let mut f = match OpenOptions::new().read(true).custom_flags(flags).open(p) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if nofollow && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is a symbolic link; not followed", p.display()),
            ))
        }
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    if !m.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", p.display()),
        ));
    }
    if single && std::os::unix::fs::MetadataExt::nlink(&m) > 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} has other names (hard links); not read", p.display()),
        ));
    }
    let mut b = Vec::with_capacity(m.len().min(1 << 20) as usize);
    f.read_to_end(&mut b)?;
    Ok(Some(b))
}

/// Changes the owner of `p` itself: a symbolic link put at that name is
/// changed, not the file it points to (what root's tools must do in
/// directories other users can write).
pub fn lchown(p: &Path, uid: u32, gid: u32) -> io::Result<()> {
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        p,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(io::Error::from)
}

/// fsyncs a directory, so a rename or link inside it is on disk.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory holding `path` ("." for a bare name).
pub fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The directory this process last moved into with [`chdir`], as named then.
static CWD: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

/// Changes this process's working directory; every change goes through here,
/// so that [`start_in`] knows where the process is without asking.
pub fn chdir(dir: &Path) -> io::Result<()> {
    std::env::set_current_dir(dir)?;
    if let Ok(mut c) = CWD.lock() {
        *c = Some(dir.to_path_buf());
    }
    Ok(())
}

/// Makes `cmd` start in `dir`, through [`Command::current_dir`] only when this
/// process is not already there (by [`chdir`]): with a directory change the
/// standard library cannot use posix_spawn in a static build and falls back
/// to a full fork.
pub fn start_in(cmd: &mut std::process::Command, dir: &Path) {
    let here = CWD.lock().is_ok_and(|c| c.as_deref() == Some(dir));
    if !here {
        cmd.current_dir(dir);
    }
}

/// Moves this process into `dir` (an absolute path) for good, as qmail's
/// programs do with their home; errors are left to the operations that follow.
pub fn settle_in(dir: &Path) {
    if dir.is_absolute() {
        let _ = chdir(dir);
    }
}

/// Writes `data` to `path` atomically with permission `mode`.
pub fn atomic_write(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    atomic_write_with(path, mode, |f| f.write_all(data))
}

/// [`atomic_write`], the file given to `owner` (uid, gid) when running as
/// root before it replaces `path`: a program running as that owner never
/// finds the file root's for a moment.
pub fn atomic_write_owned(
    path: &Path,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    replace_via_tmp(path, mode, true, owner, |f| f.write_all(data))
}

/// Gives an open file to `owner` when running as root (nothing otherwise).
pub fn fchown_if_root(f: &File, owner: Option<(u32, u32)>) -> io::Result<()> {
    if let Some((uid, gid)) = owner {
        if nix::unistd::geteuid().is_root() {
            nix::unistd::fchown(
                f,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(io::Error::from)?;
        }
    }
    Ok(())
}

/// Replaces `path` with `data` through a temporary file and a rename, without
/// fsync: readers never see a torn file, but a crash may lose the update. For
/// state that is cheap to lose and written on every login (`lastauth`, the
/// open-smtp timestamps), where two fsyncs would cost more than the login.
pub fn replace_unsynced(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace_via_tmp(path, mode, false, None, |f| f.write_all(data))
}

/// [`replace_unsynced`], owned by `owner` before the rename (see
/// [`atomic_write_owned`]).
pub fn replace_unsynced_owned(
    path: &Path,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    replace_via_tmp(path, mode, false, owner, |f| f.write_all(data))
}

/// Like [`atomic_write`], with the content produced by `fill`.
pub fn atomic_write_with(
    path: &Path,
    mode: u32,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    replace_via_tmp(path, mode, true, None, fill)
}

/// Writes a temporary file beside `path` with exactly `mode`, then renames it
/// over `path`; `durable` fsyncs the file before and the directory after the
/// rename. The temporary file is removed on failure.
fn replace_via_tmp(
    path: &Path,
    mode: u32,
    durable: bool,
    owner: Option<(u32, u32)>,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<()> {
    let tmp = tmp_path(path);
    remove_dead_tmps(path);
    let result = (|| {
        let mut f = create_fresh(&tmp, mode)?;
        fchown_if_root(&f, owner)?;
        // The umask may have narrowed the mode; the caller asked for exactly this.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        fill(&mut f)?;
        f.flush()?;
        if durable {
            f.sync_all()?;
        }
        drop(f);
        std::fs::rename(&tmp, path)?;
        if durable {
            fsync_dir(parent_dir(path))?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_killed_writers_temporary_file_is_removed_by_the_next_one() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("rcpthosts");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let live = nix::unistd::getppid().as_raw();
        std::fs::write(d.path().join(format!("rcpthosts.tmp.{dead}")), "x").unwrap();
        std::fs::write(d.path().join(format!("rcpthosts.tmp.{live}")), "y").unwrap();
        atomic_write(&p, b"a\n", 0o644).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["rcpthosts".to_string(), format!("rcpthosts.tmp.{live}")]
        );
    }

    #[test]
    fn planted_lock_links_and_directory_links_are_refused() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let d = tempfile::tempdir().unwrap();
        // A hard link at a lock file's name: replaced, the other file untouched.
        let victim = d.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::fs::hard_link(&victim, d.path().join(".vpasswd.lock")).unwrap();
        let f = open_lock(&d.path().join(".vpasswd.lock")).unwrap();
        fchown_if_root(&f, Some((65534, 65534))).unwrap();
        assert_eq!(f.metadata().unwrap().nlink(), 1);
        let v = std::fs::metadata(&victim).unwrap();
        assert_eq!((v.uid(), v.nlink()), (0, 1));
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        // A link in a directory another user owns is refused; one in a
        // directory only root can write is fine.
        let theirs = d.path().join("domains");
        std::fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::symlink("/etc", theirs.join("example.com")).unwrap();
        std::os::unix::fs::symlink("/etc", d.path().join("rootlink")).unwrap();
        std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = no_planted_links(&theirs.join("example.com").join("vpasswd")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(no_planted_links(&d.path().join("rootlink").join("passwd")).is_ok());
        assert!(no_planted_links(&theirs.join("missing").join("x")).is_ok());
    }

    #[test]
    fn a_fifo_at_a_lock_name_is_replaced_not_waited_on() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("open-smtp.lock");
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let f = open_lock(&p).unwrap();
        assert!(f.metadata().unwrap().is_file());
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file());
    }

    #[test]
    fn owned_writes_are_owned_before_they_appear() {
        use std::os::unix::fs::MetadataExt;
        if !nix::unistd::geteuid().is_root() {
            return; // only root gives files away
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("vpasswd");
        atomic_write_owned(&p, b"x", 0o600, Some((65534, 65534))).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid(), m.mode() & 0o777), (65534, 65534, 0o600));
        replace_unsynced_owned(&p, b"y", 0o600, Some((65533, 65533))).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (65533, 65533));
        let w = crate::cdb::Writer::new();
        let c = d.path().join("x.cdb");
        w.write_via_owned(&c, &d.path().join("x.tmp"), 0o600, Some((65534, 65534)))
            .unwrap();
        assert_eq!(std::fs::metadata(&c).unwrap().uid(), 65534);
    }

    #[test]
    fn planted_links_are_never_followed() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("secret");
        std::fs::write(&target, "root only").unwrap();
        // A link at a writer's temporary name.
        let path = d.path().join("vpasswd");
        std::os::unix::fs::symlink(&target, tmp_path(&path)).unwrap();
        atomic_write(&path, b"new", 0o600).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"root only");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        // At a fixed temporary name.
        let fixed = d.path().join("x.tmp");
        std::os::unix::fs::symlink(&target, &fixed).unwrap();
        drop(create_fresh(&fixed, 0o600).unwrap());
        assert_eq!(std::fs::read(&target).unwrap(), b"root only");
        assert!(!std::fs::symlink_metadata(&fixed)
            .unwrap()
            .file_type()
            .is_symlink());
        // Lock files and files to read.
        let lock = d.path().join("x.lock");
        std::os::unix::fs::symlink(&target, &lock).unwrap();
        assert!(open_lock(&lock).is_err());
        assert!(read_nofollow(&lock).is_err());
        assert_eq!(read_nofollow(&d.path().join("missing")).unwrap(), None);
        assert_eq!(read_nofollow(&target).unwrap().unwrap(), b"root only");
        assert_eq!(
            read_nofollow_single(&target).unwrap().unwrap(),
            b"root only"
        );
        let twin = d.path().join("twin");
        std::fs::hard_link(&target, &twin).unwrap();
        assert!(read_nofollow_single(&twin).is_err());
        assert!(read_nofollow(&twin).is_ok());
        // lchown changes the link itself (here: to our own ids, which works
        // for any user).
        let (uid, gid) = (
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        );
        lchown(&lock, uid, gid).unwrap();
    }

    #[test]
    fn replaces_atomically() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        atomic_write(&p, b"one", 0o644).unwrap();
        atomic_write(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }
}
