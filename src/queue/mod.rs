//! The qmail queue: qmail-queue, todo processing, scheduling and bounces.
//!
//! The layout is qmail's (conf-split 23), so a queue written by netqmail 1.06 is
//! processed by our qmail-send and the other way round:
//!
//! ```text
//! queue/pid/PID.TIME.SEQ   the file whose inode number becomes the message number N
//! queue/mess/S/N           the message, Received line first        (S = N % 23)
//! queue/intd/N             envelope being written: u<uid>\0p<pid>\0F<sender>\0T<rcpt>\0...
//! queue/todo/N             hard link of intd/N: the message is queued
//! queue/info/S/N           F<sender>\0; its mtime is the message's birth
//! queue/local/S/N          T<addr>\0 records (D once an address is finished)
//! queue/remote/S/N         the same for remote addresses
//! queue/bounce/N           accumulated permanent failure texts
//! ```
//!
//! The states a crash can leave (qmail's INTERNALS):
//! * S1: nothing; S2: +mess (qmail-queue writing); S3: +mess +intd;
//! * S4: +mess +intd +todo (queued; acknowledged by exit 0 after fsync);
//! * S5: +mess +info (+local/remote/bounce), -todo (preprocessed by qmail-send).
//!
//! A crash in S2 or S3 leaves files that nobody references: qmail-send removes
//! mess files without todo and info once their atime is 36 hours old (intd goes
//! with them), and qmail-clean removes pid files of that age. A crash in S4 or
//! during todo processing is repaired by processing todo/N again (stale info and
//! channel files are deleted first). In S5 a crash between a delivery and the
//! `D` mark in the channel file repeats that one delivery: qmail's documented
//! window for duplicates.

pub mod bounce;
pub mod clean;
pub mod enqueue;
pub mod qread;
pub mod rewrite;
pub mod send;
pub mod spare;
pub mod spawn;
pub mod start;

use std::path::{Path, PathBuf};

/// conf-split.
pub const SPLIT: u64 = 23;
/// Longest envelope address qmail-queue accepts is `ADDR - 1` bytes.
pub const ADDR: usize = 1003;
/// Files older than this (seconds) without a reference are removed (36 hours).
pub const OSSIFIED: i64 = 129_600;
/// Default queue lifetime (seconds).
pub const DEFAULT_LIFETIME: u64 = 604_800;
/// conf-spawn: the upper bound of each channel's concurrency.
pub const MAX_CONCURRENCY: u64 = 120;
/// The retry skips of the channels (local, remote).
pub const CHANSKIP: [i64; 2] = [10, 20];

/// Paths inside a queue directory.
#[derive(Clone, Debug)]
pub struct Queue {
    dir: PathBuf,
}

impl Queue {
    /// The queue at `dir` (normally `QMAIL_HOME/queue`).
    pub fn new(dir: impl Into<PathBuf>) -> Queue {
        Queue { dir: dir.into() }
    }
    /// The queue directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    /// A split path: `DIR/(id % 23)/id`.
    pub fn split(&self, sub: &str, id: u64) -> PathBuf {
        self.dir
            .join(sub)
            .join((id % SPLIT).to_string())
            .join(id.to_string())
    }
    /// A flat path: `DIR/id`.
    pub fn flat(&self, sub: &str, id: u64) -> PathBuf {
        self.dir.join(sub).join(id.to_string())
    }
    /// `mess/S/N`.
    pub fn mess(&self, id: u64) -> PathBuf {
        self.split("mess", id)
    }
    /// `info/S/N`.
    pub fn info(&self, id: u64) -> PathBuf {
        self.split("info", id)
    }
    /// `local/S/N` (channel 0) or `remote/S/N` (channel 1).
    pub fn chan(&self, c: usize, id: u64) -> PathBuf {
        self.split(CHANNEL_DIRS[c], id)
    }
    /// `todo/N`.
    pub fn todo(&self, id: u64) -> PathBuf {
        self.flat("todo", id)
    }
    /// `intd/N`.
    pub fn intd(&self, id: u64) -> PathBuf {
        self.flat("intd", id)
    }
    /// `bounce/N`.
    pub fn bounce(&self, id: u64) -> PathBuf {
        self.flat("bounce", id)
    }
    /// `lock/NAME`.
    pub fn lock(&self, name: &str) -> PathBuf {
        self.dir.join("lock").join(name)
    }

    /// The message numbers in a flat directory (todo, intd, bounce).
    pub fn list_flat(&self, sub: &str) -> std::io::Result<Vec<u64>> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(self.dir.join(sub))? {
            if let Some(id) = parse_id(&e?.file_name().to_string_lossy()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }

    /// The message numbers in a split directory (mess, info, local, remote);
    /// files in the wrong split directory are ignored, as qmail's readsubdir does.
    pub fn list_split(&self, sub: &str) -> std::io::Result<Vec<u64>> {
        let mut ids = Vec::new();
        for s in 0..SPLIT {
            let d = self.dir.join(sub).join(s.to_string());
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for e in rd {
                if let Some(id) = parse_id(&e?.file_name().to_string_lossy()) {
                    if id % SPLIT == s {
                        ids.push(id);
                    }
                }
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

/// The channel directories: 0 local, 1 remote.
pub const CHANNEL_DIRS: [&str; 2] = ["local", "remote"];

/// A message number: decimal digits only.
pub fn parse_id(name: &str) -> Option<u64> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// qmail-send's log filter: `\n` becomes `/`; `%`, control characters, spaces
/// and bytes above 126 become `_`.
pub fn logsafe(s: &[u8]) -> String {
    s.iter()
        .map(|&b| match b {
            b'\n' => '/',
            b'%' => '_',
            33..=126 => b as char,
            _ => '_',
        })
        .collect()
}

/// Integer square root: the largest y with y*y <= x.
pub fn isqrt(x: i64) -> i64 {
    if x <= 0 {
        return 0;
    }
    let mut y = (x as f64).sqrt() as i64;
    while y * y > x {
        y -= 1;
    }
    while (y + 1) * (y + 1) <= x {
        y += 1;
    }
    y
}

/// qmail's retry schedule: `birth + (isqrt(now - birth) + chanskip)^2`.
pub fn next_retry(birth: i64, now: i64, chan: usize) -> i64 {
    let n = if birth > now { 0 } else { isqrt(now - birth) } + CHANSKIP[chan];
    birth + n * n
}

/// Splits NUL-terminated records (a missing final NUL ends the last record too).
pub fn records(data: &[u8]) -> Vec<&[u8]> {
    let mut out: Vec<&[u8]> = data.split(|&b| b == 0).collect();
    if data.last() == Some(&0) || data.is_empty() {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_paths() {
        let q = Queue::new("/q");
        assert_eq!(q.mess(47), PathBuf::from("/q/mess/1/47"));
        assert_eq!(q.todo(47), PathBuf::from("/q/todo/47"));
        assert_eq!(q.chan(1, 23), PathBuf::from("/q/remote/0/23"));
    }

    #[test]
    fn retry_schedule_matches_qmail() {
        // local: 0, 100, 400, 900 ...; remote: 0, 400, 1600, 3600 ...
        assert_eq!(next_retry(1000, 1000, 0), 1100);
        assert_eq!(next_retry(1000, 1100, 0), 1400);
        assert_eq!(next_retry(1000, 1400, 0), 1900);
        assert_eq!(next_retry(1000, 1000, 1), 1400);
        assert_eq!(next_retry(1000, 1400, 1), 2600);
        assert_eq!(next_retry(1000, 2600, 1), 4600);
        assert_eq!(next_retry(1000, 900, 1), 1400);
        for x in 0..10_000 {
            let y = isqrt(x);
            assert!(y * y <= x && (y + 1) * (y + 1) > x);
        }
    }

    #[test]
    fn logsafe_mangles_like_qmail() {
        assert_eq!(logsafe(b"a b%c\nd\x01\xff"), "a_b_c/d__");
    }

    #[test]
    fn record_split() {
        assert_eq!(records(b"Fa\0Tb\0"), vec![&b"Fa"[..], b"Tb"]);
        assert_eq!(records(b"Fa\0Tb"), vec![&b"Fa"[..], b"Tb"]);
        assert!(records(b"").is_empty());
    }
}
