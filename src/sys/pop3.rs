//! Starting the checkpassword program for qmail-popup: argv as given, the
//! credentials pipe on fd 3, and fd 0/1 either inherited (the connection
//! itself, as qmail does) or one end of a socketpair (when qmail-popup keeps a
//! TLS session and relays).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

/// Spawns `argv` with `fd3` as its descriptor 3 and, when `stdio` is given,
/// that descriptor as its 0 and 1. The parent's copies are closed on return.
pub fn spawn_with_fd3(
    argv: &[OsString],
    stdio: Option<OwnedFd>,
    fd3: OwnedFd,
) -> io::Result<Child> {
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no program"))?;
    let mut cmd = Command::new(prog);
    cmd.args(args);
    if let Some(s) = stdio {
        cmd.stdin(Stdio::from(s.try_clone()?));
        cmd.stdout(Stdio::from(s));
    }
    let raw = fd3.as_raw_fd();
    // SAFETY: the closure runs in the child between fork and exec and only
    // makes async-signal-safe calls (fcntl, dup2) on descriptors it owns.
    unsafe {
        cmd.pre_exec(move || {
            if raw == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) == -1 {
                    return Err(io::Error::last_os_error());
                }
            } else if libc::dup2(raw, 3) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(fd3);
    child
}

/// Switches O_NONBLOCK on or off for a descriptor this process holds (the
/// connection on fd 0/1 while qmail-popup relays).
pub fn set_nonblocking(fd: std::os::fd::RawFd, on: bool) -> io::Result<()> {
    // SAFETY: fcntl F_GETFL/F_SETFL on a descriptor number; no memory is passed.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl == -1 {
            return Err(io::Error::last_os_error());
        }
        let new = if on {
            fl | libc::O_NONBLOCK
        } else {
            fl & !libc::O_NONBLOCK
        };
        if new != fl && libc::fcntl(fd, libc::F_SETFL, new) == -1 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// The descriptor of an [`crate::io::FdStream`], borrowed for `poll`.
pub fn borrow_fd(s: &crate::io::FdStream) -> std::os::fd::BorrowedFd<'_> {
    // SAFETY: the FdStream owns the descriptor for at least the borrow's lifetime.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(s.raw_fd()) }
}
