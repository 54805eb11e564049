//! qmail's memory of dead hosts, `queue/lock/tcpto`: 64 records of 16 bytes
//! (IPv4 address, error count at byte 4, time of the last error little-endian
//! at bytes 8..12). An address with at least two connection timeouts is
//! skipped for about an hour after the last one (3840..5824 s, varying with
//! the pid as in qmail). The file is shared with qmail's own qmail-remote
//! (same format, same flock), so the two can run side by side.
//!
//! Only timeouts count; a refused connection is an answer. IPv6 addresses
//! are not recorded (qmail's format has no room for them).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use nix::fcntl::{Flock, FlockArg};

const SIZE: usize = 1024;

/// The tcpto file of a queue.
pub struct Tcpto {
    path: PathBuf,
}

/// The file's whole 16-byte records, from its first SIZE bytes.
fn records(f: &mut impl Read) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(SIZE);
    f.take(SIZE as u64).read_to_end(&mut buf)?;
    buf.truncate(buf.len() & !15);
    Ok(buf)
}

fn when(rec: &[u8]) -> i64 {
    i64::from(u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]))
}

fn set_when(rec: &mut [u8], t: i64) {
    rec[8..12].copy_from_slice(&(t as u32).to_le_bytes());
}

impl Tcpto {
    /// `queue/lock/tcpto` under the qmail root.
    pub fn new(path: PathBuf) -> Tcpto {
        Tcpto { path }
    }

    fn read(&self) -> Option<(Flock<File>, Vec<u8>)> {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .ok()?;
        let mut f = Flock::lock(f, FlockArg::LockExclusive).ok()?;
        let buf = records(&mut *f).ok()?;
        Some((f, buf))
    }

    /// True when `ip` timed out repeatedly and recently.
    pub fn is_dead(&self, ip: IpAddr, now: i64) -> bool {
        let IpAddr::V4(v4) = ip else { return false };
        let Some((_lock, buf)) = self.read() else {
            return false;
        };
        let window = (60 + i64::from(std::process::id() & 31)) << 6;
        buf.chunks(16)
            .find(|r| r[..4] == v4.octets())
            .is_some_and(|r| r[4] >= 2 && now - when(r) < window)
    }

    /// Records the outcome of a connection attempt: `timed_out` after a
    /// connect timeout, false after a successful connection (which clears
    /// the count of a known address).
    pub fn record(&self, ip: IpAddr, timed_out: bool, now: i64) {
        let IpAddr::V4(v4) = ip else { return };
        let Some((mut f, mut buf)) = self.read() else {
            return;
        };
        let n = buf.len() / 16;
        if n == 0 {
            return;
        }
        let pos = buf.chunks(16).position(|r| r[..4] == v4.octets());
        let i = match pos {
            Some(i) => {
                let r = &mut buf[i * 16..i * 16 + 16];
                if !timed_out {
                    if r[4] == 0 {
                        return;
                    }
                    r[4] = 0;
                } else {
                    if r[4] != 0 && now < 120 + when(r) {
                        return;
                    }
                    r[4] = r[4].saturating_add(1).min(10);
                    set_when(r, now);
                }
                i
            }
            None if !timed_out => return,
            None => {
                // A free record, else the one that would expire first.
                let i = buf.chunks(16).position(|r| r[4] == 0).unwrap_or_else(|| {
                    (0..n)
                        .min_by_key(|&k| {
                            let r = &buf[k * 16..k * 16 + 16];
                            when(r) + (i64::from(r[4]) << 10)
                        })
                        .unwrap_or(0)
                });
                let r = &mut buf[i * 16..i * 16 + 16];
                r[..4].copy_from_slice(&v4.octets());
                set_when(r, now);
                r[4] = 1;
                i
            }
        };
        if f.seek(SeekFrom::Start((i * 16) as u64)).is_ok() {
            let _ = f.write_all(&buf[i * 16..i * 16 + 16]);
        }
    }
}

/// Opens the file for qmail-tcpok and qmail-tcpto, which root may run: not
/// through a symbolic link, and only a regular file with no other name
/// (the queue's owners must not turn root's write into one on their file).
fn open_checked(path: &std::path::Path, write: bool) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let odd = || {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not a regular file with one name",
        )
    };
    // Looked at before the open too: opening a FIFO for writing would fail
    // with a less telling error.
    if !std::fs::symlink_metadata(path)?.is_file() {
        return Err(odd());
    }
    let f = OpenOptions::new()
        .read(!write)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?;
    let m = f.metadata()?;
    if !m.is_file() || m.nlink() != 1 {
        return Err(odd());
    }
    Ok(f)
}

fn lock(f: File) -> Result<Flock<File>, ToolError> {
    Flock::lock(f, FlockArg::LockExclusive).map_err(|(_, e)| ToolError {
        step: "lock",
        err: e.into(),
    })
}

/// What went wrong in [`clear`] or [`list`]: the step (qmail's words) and
/// the error.
#[derive(Debug)]
pub struct ToolError {
    /// `write`, `lock`, `clear`, `open`, `read`.
    pub step: &'static str,
    /// The error.
    pub err: std::io::Error,
}

impl ToolError {
    /// The program's fatal line: `PROG: fatal: unable to STEP PATH: why`.
    pub fn fatal(&self, prog: &str, path: &std::path::Path) -> String {
        format!(
            "{prog}: fatal: unable to {} {}: {}",
            self.step,
            path.display(),
            crate::deliver::errstr(&self.err)
        )
    }
}

/// qmail-tcpok: forgets every address, writing 1024 zero bytes over the
/// file under its lock, as qmail's does.
pub fn clear(path: &std::path::Path) -> Result<(), ToolError> {
    let f = lock(open_checked(path, true).map_err(|err| ToolError { step: "write", err })?)?;
    (&*f)
        .write_all(&[0u8; SIZE])
        .map_err(|err| ToolError { step: "clear", err })
}

/// qmail-tcpto: one line per remembered address, as qmail's prints them:
/// `IP timed out N seconds ago; # recent timeouts: K`.
pub fn list(path: &std::path::Path, now: i64) -> Result<Vec<String>, ToolError> {
    let mut f = lock(open_checked(path, false).map_err(|err| ToolError { step: "open", err })?)?;
    let buf = records(&mut *f).map_err(|err| ToolError { step: "read", err })?;
    Ok(buf
        .chunks(16)
        .filter(|r| r[4] >= 1)
        .map(|r| {
            format!(
                "{}.{}.{}.{} timed out {} seconds ago; # recent timeouts: {}",
                r[0],
                r[1],
                r[2],
                r[3],
                (now - when(r)).max(0),
                r[4]
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_timeouts_make_an_address_dead_for_a_while() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("tcpto");
        std::fs::write(&p, [0u8; 1024]).unwrap();
        let t = Tcpto::new(p.clone());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let now = 1_000_000;
        assert!(!t.is_dead(ip, now));
        t.record(ip, true, now);
        assert!(!t.is_dead(ip, now));
        // A second timeout within 120 s is not counted.
        t.record(ip, true, now + 60);
        assert!(!t.is_dead(ip, now + 60));
        t.record(ip, true, now + 200);
        assert!(t.is_dead(ip, now + 300));
        assert!(!t.is_dead(other, now + 300));
        assert!(!t.is_dead(ip, now + 200 + 6000));
        // The byte layout is qmail's.
        let raw = std::fs::read(&p).unwrap();
        assert_eq!(&raw[..5], &[192, 0, 2, 1, 2]);
        assert_eq!(&raw[8..12], &((now + 200) as u32).to_le_bytes());
        // A successful connection clears the count.
        t.record(ip, false, now + 400);
        assert!(!t.is_dead(ip, now + 400));
        // Without the file nothing is remembered.
        let none = Tcpto::new(d.path().join("missing"));
        none.record(ip, true, now);
        assert!(!none.is_dead(ip, now));
    }
}
