//! The poll limit: one POP3 login per account every `control/pop3interval`
//! seconds (0 = off; the hosting profile sets 60).
//!
//! qmail-pop3d enforces it, because it is the program that runs once the
//! password has been accepted, as the account, in its home directory. The
//! time of the last admitted login is kept in `$HOME/lastpop3` (decimal Unix
//! seconds and a newline, next to vpopmail's `lastauth`, which vchkpw updates
//! on every successful authentication of any kind). The check and the update
//! happen under an fcntl lock on that file, so two logins at the same moment
//! cannot both pass; the new stamp is written atomically (tmp, rename)
//! and only when the session is admitted, so a refused login does not push
//! the next allowed time further out. The clock is [`crate::timefmt::now`]
//! (`VQMAIL_NOW` in tests). A stamp in the future (the clock went back) does
//! not lock the account out: the login is admitted and the stamp rewritten.

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The stamp file's name in the account's home directory.
pub const STAMP: &str = "lastpop3";

/// The decision.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead (the stamp now holds `now`).
    Admitted,
    /// Too soon: try again in `wait` seconds.
    TooSoon {
        /// Seconds until a login is allowed again.
        wait: u64,
    },
}

/// Whether [`admit`] would refuse a login at `now`, without taking the lock
/// or writing anything (vchkpw asks, so that a login the limit refuses does
/// not open the POP-before-SMTP relay or count as `lastauth`).
pub fn too_soon(home: &Path, interval: u64, now: i64) -> bool {
    if interval == 0 {
        return false;
    }
    let Ok(text) = std::fs::read_to_string(home.join(STAMP)) else {
        return false;
    };
    // A stamp is whatever the file holds: the difference must not overflow.
    text.trim().parse::<i64>().is_ok_and(|last| {
        now.checked_sub(last)
            .is_some_and(|since| (0..).contains(&since) && (since as u64) < interval)
    })
}

/// Decides whether a login at `now` may proceed, and records it if so.
pub fn admit(home: &Path, interval: u64, now: i64) -> io::Result<Admission> {
    if interval == 0 {
        return Ok(Admission::Admitted);
    }
    let path = home.join(STAMP);
    for _ in 0..10 {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        crate::sys::lock_exclusive(&f)?;
        // Another login may have replaced the file while we waited for the lock.
        if std::fs::metadata(&path).map(|m| m.ino()).ok() != Some(f.metadata()?.ino()) {
            continue;
        }
        let mut text = String::new();
        let _ = f.take(64).read_to_string(&mut text);
        if let Some(since) = text
            .trim()
            .parse::<i64>()
            .ok()
            .and_then(|last| now.checked_sub(last))
        {
            if (0..).contains(&since) && (since as u64) < interval {
                return Ok(Admission::TooSoon {
                    wait: interval - since as u64,
                });
            }
        }
        write_stamp(&path, now)?;
        return Ok(Admission::Admitted);
    }
    Err(io::Error::other("lastpop3 keeps changing"))
}

/// Replaces the stamp atomically (a new file renamed over the old one). No
/// fsync: after a crash the worst case is a lost or empty stamp, which admits
/// one login early; two fsyncs per login would cost more than that is worth.
fn write_stamp(path: &Path, now: i64) -> io::Result<()> {
    let tmp = crate::fsutil::tmp_path(path);
    let r = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(format!("{now}\n").as_bytes())?;
        drop(f);
        std::fs::rename(&tmp, path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_soon_only_looks() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path();
        assert!(!too_soon(h, 60, 1000));
        assert_eq!(admit(h, 60, 1000).unwrap(), Admission::Admitted);
        assert!(too_soon(h, 60, 1059));
        assert!(!too_soon(h, 60, 1060));
        assert!(!too_soon(h, 0, 1001));
        assert!(!too_soon(h, 60, 999)); // a stamp in the future does not lock out
        assert_eq!(std::fs::read_to_string(h.join(STAMP)).unwrap(), "1000\n");
    }

    #[test]
    fn damaged_stamps_admit() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path();
        for bad in ["-9223372036854775808", "9223372036854775807", "x", ""] {
            std::fs::write(h.join(STAMP), bad).unwrap();
            assert!(!too_soon(h, 60, 1000), "{bad}");
            assert_eq!(admit(h, 60, 1000).unwrap(), Admission::Admitted, "{bad}");
        }
    }

    #[test]
    fn interval_counts_from_the_last_admitted_login() {
        let d = tempfile::tempdir().unwrap();
        let h = d.path();
        assert_eq!(admit(h, 60, 1000).unwrap(), Admission::Admitted);
        assert_eq!(std::fs::read_to_string(h.join(STAMP)).unwrap(), "1000\n");
        assert_eq!(admit(h, 60, 1000).unwrap(), Admission::TooSoon { wait: 60 });
        assert_eq!(admit(h, 60, 1059).unwrap(), Admission::TooSoon { wait: 1 });
        // Refused logins do not move the stamp.
        assert_eq!(std::fs::read_to_string(h.join(STAMP)).unwrap(), "1000\n");
        assert_eq!(admit(h, 60, 1060).unwrap(), Admission::Admitted);
        // A stamp in the future (clock set back) does not lock the account out.
        assert_eq!(admit(h, 60, 500).unwrap(), Admission::Admitted);
        // Off: no stamp is written.
        assert_eq!(admit(h, 0, 501).unwrap(), Admission::Admitted);
        assert_eq!(std::fs::read_to_string(h.join(STAMP)).unwrap(), "500\n");
    }
}
