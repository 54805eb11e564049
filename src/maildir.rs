//! Maildir and Maildir++: directory layout, crash-safe delivery and the
//! `maildirsize` quota file.
//!
//! A Maildir is a directory with `tmp/`, `new/` and `cur/`. Messages are
//! written to `tmp/` under a unique name, fsynced, then linked into `new/`;
//! readers move them to `cur/` with an `:2,FLAGS` suffix. Maildir++ adds
//! folders as `.NAME` subdirectories and the quota file `maildirsize`
//! (see [`quota`] and maildirsize(5)).
//!
//! States a crash can leave during [`deliver`] (the message is acknowledged
//! only after the last step):
//! 1. a partial file in `tmp/`: not delivered; readers ignore `tmp/`, and
//!    qmail-pop3d removes files there not accessed for 36 hours;
//! 2. a complete, fsynced file in `tmp/`: not delivered (the sender retries);
//! 3. the file linked into `new/` and still in `tmp/`: delivered;
//! 4. the file only in `new/`: delivered.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

mod deliver;
pub mod quota;

pub use deliver::{deliver, unique_name, Delivered, NameStyle};
pub use quota::{append, over_quota, Quota, Usage};

/// Creates a Maildir (`tmp`, `new`, `cur`) at `path` with directory mode `mode`.
/// Existing directories are fine; the parent must exist.
pub fn create(path: &Path, mode: u32) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.mode(mode);
    match b.create(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    for sub in ["tmp", "new", "cur"] {
        match b.create(path.join(sub)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The host part of Maildir file names: gethostname, at most 64 bytes, with
/// `/` and `:` written as `\057` and `\072` (they would break the name).
pub fn name_host() -> String {
    let mut h = crate::sys::hostname();
    if h.len() > 64 {
        let mut cut = 64;
        while !h.is_char_boundary(cut) {
            cut -= 1;
        }
        h.truncate(cut);
    }
    h.replace('/', "\\057").replace(':', "\\072")
}
