//! Maildir and Maildir++: directory layout, unique names and (later in this
//! module's children) the maildirsize quota file.
//!
//! A Maildir is a directory with `tmp/`, `new/` and `cur/`. Messages are
//! written to `tmp/` under a unique name, fsynced, then linked into `new/`;
//! readers move them to `cur/` with an `:2,FLAGS` suffix.

use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

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
