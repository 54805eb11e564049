//! Descriptor plumbing for qmail-start: put pipes at the fixed numbers
//! qmail-send expects (0 to 6) before it is executed.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Makes each `target` descriptor a copy of its source, without the
/// close-on-exec flag, whatever numbers the sources have (a source may sit on
/// another pair's target: every source is first copied above 20).
pub fn install_fds(pairs: &[(RawFd, BorrowedFd<'_>)]) -> io::Result<()> {
    let mut temps = Vec::new();
    for (_, src) in pairs {
        // SAFETY: fcntl on a descriptor borrowed for the duration of the call.
        let t = unsafe { libc::fcntl(src.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 20) };
        if t < 0 {
            return Err(io::Error::last_os_error());
        }
        temps.push(t);
    }
    for ((target, _), t) in pairs.iter().zip(&temps) {
        // SAFETY: dup2 onto a fixed number; whatever was there is replaced, as
        // the caller intends (it is about to exec).
        if unsafe { libc::dup2(*t, *target) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    for t in temps {
        // SAFETY: closing the temporary copies made above, owned by nobody else.
        unsafe { libc::close(t) };
    }
    Ok(())
}

/// Sets the file mode creation mask.
pub fn umask(mask: u32) {
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(
        mask as libc::mode_t,
    ));
}

/// `renameat2(RENAME_NOREPLACE)` by its system call number, which every Linux
/// libc target has (glibc's wrapper is not in musl).
pub fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &std::path::Path| {
        CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
    };
    let (f, t) = (c(from)?, c(to)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
