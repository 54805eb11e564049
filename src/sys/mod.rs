//! The only module with `unsafe` code: raw file descriptors, fcntl record
//! locks, process identity and privilege changes.
//!
//! Areas that need more of this add a file here (`sys/<area>.rs`) rather than
//! `unsafe` anywhere else.

pub mod auth;
pub mod pop3;
pub mod queue;
pub mod tty;

use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Puts SIGCHLD back to its default action. A SIGCHLD ignored by whatever
/// started us (a start script that sets it to SIG_IGN) is inherited through
/// exec, and then the kernel reaps our children itself: waiting for one fails
/// after it did its work, so a delivery or an enqueue that succeeded would be
/// reported as failed and made again. Every program calls this first.
#[allow(unsafe_code)]
pub fn reset_sigchld() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: the default disposition installs no handler code.
    let _ = unsafe { signal(Signal::SIGCHLD, SigHandler::SigDfl) };
}

/// qmail-queue's 24-hour limit: an alarm in `secs` seconds that ends the
/// process with exit code 52 (qmail-queue's "timeout"), not the signal's
/// default death, which callers would report as a crash.
#[allow(unsafe_code)]
pub fn alarm_exits_52(secs: u32) {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    extern "C" fn on_alarm(_: libc::c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(52) }
    }
    let act = SigAction::new(
        SigHandler::Handler(on_alarm),
        SaFlags::empty(),
        SigSet::empty(),
    );
    // SAFETY: the handler only calls _exit.
    let _ = unsafe { sigaction(Signal::SIGALRM, &act) };
    nix::unistd::alarm::set(secs);
}

/// True when the process runs setuid or setgid (real and effective ids differ).
pub fn is_setid() -> bool {
    nix::unistd::getuid() != nix::unistd::geteuid()
        || nix::unistd::getgid() != nix::unistd::getegid()
}

/// True when the descriptor `fd` is open (Rust's stdio takes a closed 1 or
/// 2 for a sink that accepts everything).
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only asks about the number; nothing is kept.
    nix::fcntl::fcntl(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .is_ok()
}

/// Takes ownership of an inherited file descriptor (0, 1, 3 ...), if it is open.
pub fn inherit_fd(fd: RawFd) -> Option<OwnedFd> {
    if nix::fcntl::fcntl(
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .is_err()
    {
        return None;
    }
    // SAFETY: the descriptor is open (F_GETFD succeeded) and, by the program's
    // interface, belongs to this process alone from now on.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An inherited descriptor as a `File` (see [`inherit_fd`]).
pub fn inherit_file(fd: RawFd) -> Option<File> {
    inherit_fd(fd).map(File::from)
}

/// Takes an exclusive fcntl (POSIX record) lock on the whole file, waiting for
/// it. vpopmail locks `.vpasswd.lock` and `open-smtp.lock` this way; `flock`
/// locks would not be seen by it. The lock lasts until the file is closed.
pub fn lock_exclusive(f: &File) -> io::Result<()> {
    fcntl_lock(f, libc::F_WRLCK as libc::c_short, true).map(|_| ())
}

/// Tries to take an exclusive fcntl lock without waiting; `Ok(false)` when
/// another process holds it.
pub fn try_lock_exclusive(f: &File) -> io::Result<bool> {
    fcntl_lock(f, libc::F_WRLCK as libc::c_short, false)
}

/// Tries to take an exclusive flock(2) lock without waiting; `Ok(false)`
/// when another process holds it. (On Linux flock and fcntl locks are
/// separate: a program may need both.)
pub fn try_flock_exclusive(f: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    loop {
        // SAFETY: flock on a valid descriptor.
        let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

fn fcntl_lock(f: &File, kind: libc::c_short, wait: bool) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let fl = libc::flock {
        l_type: kind,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    let cmd = if wait { libc::F_SETLKW } else { libc::F_SETLK };
    loop {
        // SAFETY: fcntl with a valid descriptor and a pointer to a live flock.
        let r = unsafe { libc::fcntl(f.as_raw_fd(), cmd, &fl) };
        if r == 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) | Some(libc::EACCES) if !wait => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// A system account: uid, gid and home.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// The account name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Its home directory.
    pub home: std::path::PathBuf,
}

/// Looks a system account up by name in `/etc/passwd`.
///
/// qmail fixes its accounts' ids when it is built; we read them from the file on
/// each use. The programs are linked statically and each runs once per
/// connection or delivery, so they do not start the name service (nsswitch,
/// loadable modules): accounts that live only in NIS or LDAP are not seen.
pub fn account(name: &str) -> Option<Account> {
    let text = std::fs::read("/etc/passwd").ok()?;
    passwd_entry(&text, |f| f[0] == name.as_bytes())
}

/// Runs `f` with the effective ids (and only group) of `owner` when running
/// as root and `owner` is not root (an account in /etc/passwd or only a
/// number: `vadddomain -i`), then takes root back; otherwise runs it as it
/// is. Root's work in a tree another account
/// owns (a domain of `vadddomain -u`) then has that account's rights only:
/// a link swapped in by it cannot lead root's writes, chowns or removals
/// out of its own files. A failure to take root back ends the program
/// (exit 111): nothing goes on with half-way identities.
pub fn as_owner<T>(
    owner: Option<(u32, u32)>,
    f: impl FnOnce() -> std::io::Result<T>,
) -> std::io::Result<T> {
    use nix::unistd::{getegid, geteuid, getgroups, setegid, seteuid, setgroups, Gid, Uid};
    let euid = geteuid();
    let Some((uid, gid)) = owner else {
        return f();
    };
    if !euid.is_root() || uid == 0 {
        return f();
    }
    let (egid, groups) = (getegid(), getgroups().unwrap_or_default());
    let became = setgroups(&[Gid::from_raw(gid)])
        .and_then(|()| setegid(Gid::from_raw(gid)))
        .and_then(|()| seteuid(Uid::from_raw(uid)));
    let r = match became {
        Ok(()) => f(),
        Err(e) => Err(std::io::Error::from(e)),
    };
    let back = seteuid(euid)
        .and_then(|()| setegid(egid))
        .and_then(|()| setgroups(&groups));
    if back.is_err() {
        std::process::exit(111);
    }
    r
}

/// Looks a system account up by uid in `/etc/passwd` (see [`account`]).
pub fn account_by_uid(uid: u32) -> Option<Account> {
    let text = std::fs::read("/etc/passwd").ok()?;
    let uid = uid.to_string();
    passwd_entry(&text, |f| f[2] == uid.as_bytes())
}

/// The first passwd(5) line whose fields satisfy `want`.
fn passwd_entry(text: &[u8], want: impl Fn(&[&[u8]]) -> bool) -> Option<Account> {
    use std::os::unix::ffi::OsStrExt;
    text.split(|&b| b == b'\n').find_map(|line| {
        let f: Vec<&[u8]> = line.split(|&b| b == b':').collect();
        if f.len() < 7 || f[0].is_empty() || !want(&f) {
            return None;
        }
        let num = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u32>().ok();
        Some(Account {
            name: String::from_utf8(f[0].to_vec()).ok()?,
            uid: num(f[2])?,
            gid: num(f[3])?,
            home: std::path::PathBuf::from(std::ffi::OsStr::from_bytes(f[5])),
        })
    })
}

static SANDBOX_WARNED: AtomicBool = AtomicBool::new(false);

/// Switches to the account `name` (setgid, then setuid), as qmail's programs do.
///
/// In a sandbox (the account does not exist, or the process is not root), the
/// process keeps its identity and says so once on stderr; `Ok(false)` then.
pub fn become_user(prog: &str, name: &str) -> io::Result<bool> {
    match account(name) {
        Some(a) if nix::unistd::geteuid().is_root() => {
            set_ids(a.uid, a.gid)?;
            Ok(true)
        }
        Some(a) if nix::unistd::geteuid().as_raw() == a.uid => Ok(true),
        _ => {
            if !SANDBOX_WARNED.swap(true, Ordering::Relaxed) {
                crate::elog!(
                    "{prog}: warning: account {name} unavailable; running as uid {}",
                    nix::unistd::geteuid()
                );
            }
            Ok(false)
        }
    }
}

/// setgroups([gid]), setgid(gid), setuid(uid), in that order.
pub fn set_ids(uid: u32, gid: u32) -> io::Result<()> {
    let gid = nix::unistd::Gid::from_raw(gid);
    let uid = nix::unistd::Uid::from_raw(uid);
    if nix::unistd::geteuid().is_root() {
        nix::unistd::setgroups(&[gid]).map_err(io::Error::from)?;
    }
    nix::unistd::setgid(gid).map_err(io::Error::from)?;
    nix::unistd::setuid(uid).map_err(io::Error::from)?;
    Ok(())
}

/// The host name (gethostname), used in Maildir file names and greetings.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether descriptor 0 is a socket of any kind (tcpserver, inetd, a
/// socketpair), not a pipe or file.
pub fn stdin_is_socket() -> bool {
    use nix::sys::stat::{fstat, SFlag};
    fstat(std::io::stdin())
        .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFSOCK)
}

/// The address of the peer on descriptor 0, when that is an IP socket (inetd,
/// a systemd socket unit with `Accept=yes`, tcpserver): an IPv4-mapped IPv6
/// address as IPv4.
pub fn stdin_peer_ip() -> Option<std::net::IpAddr> {
    use nix::sys::socket::{getpeername, SockaddrStorage};
    let a: SockaddrStorage = getpeername(0).ok()?;
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(std::net::IpAddr::V4(v4.ip()));
    }
    a.as_sockaddr_in6()
        .map(|v6| std::net::IpAddr::V6(v6.ip()).to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_entries_by_name() {
        let t = b"root:x:0:0:root:/root:/bin/bash\nqmaild:x:1001:1002::/var/qmail:/bin/false\nbad:x:y:1::/:/bin/sh\nshort:x:1:1\n";
        let by = |n: &str| passwd_entry(t, |f| f[0] == n.as_bytes());
        let a = by("qmaild").unwrap();
        assert_eq!(
            (a.uid, a.gid, a.home.to_str().unwrap()),
            (1001, 1002, "/var/qmail")
        );
        assert!(by("qmail").is_none());
        assert!(by("bad").is_none());
        assert!(by("short").is_none());
        assert_eq!(by("root").unwrap().uid, 0);
        let u = passwd_entry(t, |f| f[2] == b"1001".as_slice()).unwrap();
        assert_eq!(u.name, "qmaild");
        assert_eq!(
            account_by_uid(0).map(|a| a.name),
            account("root").map(|a| a.name)
        );
    }

    #[test]
    fn fcntl_lock_excludes_another_process_only() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l");
        let f = File::create(&p).unwrap();
        lock_exclusive(&f).unwrap();
        // fcntl locks are per process: the same process may lock again.
        let g = File::open(&p).unwrap();
        let _ = g;
        assert!(try_lock_exclusive(&File::options().write(true).open(&p).unwrap()).unwrap());
    }
}
