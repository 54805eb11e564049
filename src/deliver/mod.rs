//! Local delivery: `.qmail` files (dot-qmail(5)), Maildir, mbox, forwards,
//! programs ([`local`], qmail-local), vpopmail's delivery agent
//! ([`vdeliver`], vdelivermail) and mail submission ([`inject`],
//! qmail-inject and sendmail).
//!
//! Every failure is decided once, where it is understood, as a [`Fail`]:
//! permanent (exit 100) or temporary (exit 111), with qmail's text.

pub mod dotqmail;
pub mod helpers;
pub mod inject;
pub mod local;
pub mod mbox;
pub mod message;
pub mod program;
pub mod qq;
pub mod vdeliver;

use std::fmt;
use std::io;

/// A delivery failure with its exit code (100 permanent, 111 temporary, or
/// another code a program asked to pass through) and its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fail {
    /// The exit code.
    pub code: u8,
    /// The text for the report (one line, no newline).
    pub text: String,
}

impl Fail {
    /// A permanent failure (exit 100).
    pub fn perm(text: impl Into<String>) -> Fail {
        Fail {
            code: 100,
            text: text.into(),
        }
    }
    /// A temporary failure (exit 111).
    pub fn temp(text: impl Into<String>) -> Fail {
        Fail {
            code: 111,
            text: text.into(),
        }
    }
    /// Exit with `code` and no text of our own (a program's output already
    /// says why).
    pub fn silent(code: u8) -> Fail {
        Fail {
            code,
            text: String::new(),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// qmail's `error_str`: the short text for an OS error.
pub fn errstr(e: &io::Error) -> String {
    let known = match e.raw_os_error() {
        Some(libc::ENOENT) => "file does not exist",
        Some(libc::EACCES) => "access denied",
        Some(libc::EPERM) => "permission denied",
        Some(libc::ENOSPC) => "out of disk space",
        Some(libc::EDQUOT) => "disk quota exceeded",
        Some(libc::EIO) => "input/output error",
        Some(libc::ENOTDIR) => "not a directory",
        Some(libc::EISDIR) => "is a directory",
        Some(libc::EEXIST) => "file already exists",
        Some(libc::EROFS) => "read-only file system",
        Some(libc::ENOMEM) => "out of memory",
        Some(libc::EINTR) => "interrupted system call",
        Some(libc::EAGAIN) => "temporary failure",
        Some(libc::EMFILE) | Some(libc::ENFILE) => "too many open files",
        Some(libc::ELOOP) => "symbolic link loop",
        Some(libc::ENAMETOOLONG) => "file name too long",
        Some(libc::ETXTBSY) => "text busy",
        Some(libc::EFBIG) => "file too big",
        Some(libc::ESTALE) => "stale NFS file handle",
        Some(libc::EPIPE) => "broken pipe",
        Some(libc::ESPIPE) => "unseekable descriptor",
        Some(libc::EBADF) => "file descriptor not open",
        Some(libc::ETIMEDOUT) => "timed out",
        Some(libc::ECONNREFUSED) => "connection refused",
        Some(libc::EINVAL) => "invalid argument",
        Some(libc::ENXIO) => "device not configured",
        _ => "",
    };
    if known.is_empty() {
        // The system's words without Rust's " (os error N)".
        let s = e.to_string();
        match s.find(" (os error ") {
            Some(i) => s[..i].to_string(),
            None => s,
        }
    } else {
        known.to_string()
    }
}

/// True for OS errors qmail treats as temporary (`error_temp`).
pub fn is_temp(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EINTR
                | libc::ENOMEM
                | libc::ETXTBSY
                | libc::EIO
                | libc::ETIMEDOUT
                | libc::EAGAIN
                | libc::ENOSPC
                | libc::EDQUOT
                | libc::EMFILE
                | libc::ENFILE
                | libc::ESTALE
                | libc::ECONNREFUSED
        )
    )
}

/// The exit codes of a delivery program that mean "bounce" (qmail-local,
/// vdelivermail); 0 is success, 99 success-and-stop, anything else temporary.
pub fn program_code_is_permanent(code: i32) -> bool {
    matches!(code, 100 | 64 | 65 | 70 | 76 | 77 | 78 | 112)
}
