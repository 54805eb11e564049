//! vpopmail's hashed directories for large domains (`--enable-users-big-dir`).
//!
//! A counter file `.dir-control` (users: in the domain directory; domains: in
//! `~vpopmail/domains`) holds eight lines:
//!
//! ```text
//! cur_users            e.g. 150
//! level_cur            0
//! level_max            3
//! start0 start1 start2 0 0 0
//! end0 end1 end2       61 61 61
//! mod0 mod1 mod2       0 2 4
//! index0 index1 index2 1 0 0
//! the_dir              0
//! ```
//!
//! Each new entry increments `cur_users`; when it reaches a multiple of 100 the
//! current directory advances through `0-9A-Za-z`: the first 99 entries live
//! directly in the parent, the next 100 in `0/`, then `1/` ... `z/`, then two
//! levels `0/0` ... This is a port of vpopmail's `bigdir.c`, quirks included,
//! so an existing `.dir-control` continues where vpopmail left it.

use std::io;
use std::path::Path;

/// The bucket alphabet.
const DIRLIST: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// Entries per directory before the bucket advances.
const PER_LEVEL: u64 = 100;
/// The file name.
pub const FILE: &str = ".dir-control";

/// A bucket name: empty, or up to three one-character levels of the bucket
/// alphabet separated by `/`.
fn is_bucket(dir: &[u8]) -> bool {
    dir.is_empty()
        || (dir.len() <= 5
            && dir
                .split(|&b| b == b'/')
                .all(|c| c.len() == 1 && DIRLIST.contains(&c[0])))
}

/// The state of one `.dir-control` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirControl {
    /// Entries created (minus those deleted).
    pub cur_users: u64,
    level_cur: usize,
    level_max: i64,
    level_start: [usize; 3],
    level_end: [usize; 3],
    level_mod: [usize; 3],
    level_index: [usize; 3],
    the_dir: [u8; 300],
}

impl Default for DirControl {
    fn default() -> Self {
        DirControl {
            cur_users: 0,
            level_cur: 0,
            level_max: 3,
            level_start: [0; 3],
            level_end: [61; 3],
            level_mod: [0, 2, 4],
            level_index: [0; 3],
            the_dir: [0; 300],
        }
    }
}

fn atoi(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, t),
    };
    let v: i64 = t.bytes().take_while(u8::is_ascii_digit).fold(0i64, |a, c| {
        a.saturating_mul(10).saturating_add(i64::from(c - b'0'))
    });
    if neg {
        -v
    } else {
        v
    }
}

fn three(line: &str) -> [i64; 3] {
    let mut it = line.split(' ');
    [
        atoi(it.next().unwrap_or("")),
        atoi(it.next().unwrap_or("")),
        atoi(it.next().unwrap_or("")),
    ]
}

impl DirControl {
    /// Parses the file's text (vpopmail's `vread_dir_control`). Out-of-range
    /// values fall back to the defaults rather than being trusted.
    pub fn parse(text: &str) -> DirControl {
        let mut d = DirControl::default();
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() < 7 {
            // Not a file vpopmail wrote: start over rather than trust it.
            return d;
        }
        let get = |i: usize| lines.get(i).copied().unwrap_or("");
        d.cur_users = atoi(get(0)).max(0) as u64;
        let ok = |v: i64, max: usize| v >= 0 && (v as usize) <= max;
        let lc = atoi(get(1));
        d.level_cur = if ok(lc, 2) { lc as usize } else { 0 };
        d.level_max = atoi(get(2));
        for (slot, line, max) in [(0, 3, 61), (1, 4, 61), (2, 5, 298), (3, 6, 61)] {
            let v = three(get(line));
            for i in 0..3 {
                if ok(v[i], max) {
                    let v = v[i] as usize;
                    match slot {
                        0 => d.level_start[i] = v,
                        1 => d.level_end[i] = v,
                        2 => d.level_mod[i] = v,
                        _ => d.level_index[i] = v,
                    }
                }
            }
        }
        // vpopmail reads one line more than it writes and, at end of file,
        // keeps the eighth line as the current directory.
        // Only a bucket name as vpopmail makes them (`0`, `0/A`, `0/A/z`):
        // root's tools create directories there, so a path planted in this
        // vpopmail-owned file (`/etc`, `../..`) must not be followed.
        let dir = get(7).as_bytes();
        if is_bucket(dir) {
            d.the_dir[..dir.len()].copy_from_slice(dir);
        }
        d
    }

    /// Reads `dir/.dir-control`; a missing file is the initial state.
    pub fn read(dir: &Path) -> io::Result<DirControl> {
        Ok(match crate::fsutil::read_nofollow(&dir.join(FILE))? {
            Some(b) => DirControl::parse(&String::from_utf8_lossy(&b)),
            None => DirControl::default(),
        })
    }

    /// The file's text (vpopmail's `vwrite_dir_control`).
    pub fn to_text(&self) -> String {
        format!(
            "{}\n{}\n{}\n{} {} {}\n{} {} {}\n{} {} {}\n{} {} {}\n{}\n",
            self.cur_users,
            self.level_cur,
            self.level_max,
            self.level_start[0],
            self.level_start[1],
            self.level_start[2],
            self.level_end[0],
            self.level_end[1],
            self.level_end[2],
            self.level_mod[0],
            self.level_mod[1],
            self.level_mod[2],
            self.level_index[0],
            self.level_index[1],
            self.level_index[2],
            self.current()
        )
    }

    /// Writes `dir/.dir-control` atomically (owned by `owner` as root).
    pub fn write(&self, dir: &Path, owner: Option<(u32, u32)>) -> io::Result<()> {
        // Temporary files of writers killed before their renames (the
        // caller holds `.dir-control.lock`, so no live writer is between).
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.file_name()
                    .to_string_lossy()
                    .starts_with(".dir-control.tmp.")
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
        let p = dir.join(FILE);
        crate::fsutil::atomic_write_owned(&p, self.to_text().as_bytes(), 0o600, owner)
    }

    /// The current bucket ("" = the parent itself).
    pub fn current(&self) -> String {
        let end = self
            .the_dir
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.the_dir.len());
        let dir = &self.the_dir[..end];
        if !is_bucket(dir) {
            return String::new();
        }
        String::from_utf8_lossy(dir).into_owned()
    }

    /// Counts a new entry and returns the bucket it goes into.
    pub fn next_dir(&mut self) -> String {
        self.inc_dir_control();
        self.current()
    }

    /// Counts a deleted entry (vpopmail's `dec_dir_control`).
    pub fn dec(&mut self) {
        self.cur_users = self.cur_users.saturating_sub(1);
    }

    fn next_char(c: u8, start: usize, end: usize) -> u8 {
        let mut i = start;
        while i < end + 1 && DIRLIST[i] != c {
            i += 1;
        }
        i += 1;
        if i > end {
            i = start;
        }
        DIRLIST[i.min(61)]
    }

    fn inc_dir(&mut self, level: usize) {
        let m = self.level_mod[level];
        if self.the_dir[m] == DIRLIST[self.level_end[level]] {
            self.the_dir[m] = DIRLIST[self.level_start[level]];
            self.level_index[level] = self.level_start[level];
            if level > 0 {
                self.inc_dir(level - 1);
            }
        } else {
            self.the_dir[m] = Self::next_char(
                self.the_dir[m],
                self.level_start[level],
                self.level_end[level],
            );
            self.level_index[level] += 1;
        }
    }

    fn strcat_slash(&mut self) {
        let end = self
            .the_dir
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.the_dir.len() - 1);
        if end + 1 < self.the_dir.len() {
            self.the_dir[end] = b'/';
            self.the_dir[end + 1] = 0;
        }
    }

    fn inc_dir_control(&mut self) {
        self.cur_users += 1;
        if self.cur_users % PER_LEVEL != 0 {
            return;
        }
        if self.the_dir[0] == 0 {
            self.the_dir[0] = DIRLIST[self.level_start[0]];
            self.the_dir[1] = 0;
            return;
        }
        let lc = self.level_cur;
        if self.level_index[lc] == self.level_end[lc] {
            match lc {
                0 => {
                    self.inc_dir(0);
                    self.level_cur += 1;
                    self.strcat_slash();
                }
                1 if self.level_index[0] == self.level_end[0]
                    && self.level_index[1] == self.level_end[1] =>
                {
                    self.inc_dir(1);
                    self.level_cur += 1;
                    self.strcat_slash();
                }
                _ => {}
            }
        }
        self.inc_dir(self.level_cur);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_99_in_parent_then_buckets() {
        let mut d = DirControl::default();
        let dirs: Vec<String> = (0..400).map(|_| d.next_dir()).collect();
        assert!(dirs[..99].iter().all(|s| s.is_empty()));
        assert!(dirs[99..199].iter().all(|s| s == "0"));
        assert!(dirs[199..299].iter().all(|s| s == "1"));
        assert_eq!(dirs[299], "2");
        assert_eq!(d.cur_users, 400);
    }

    #[test]
    fn second_level_after_z() {
        let mut d = DirControl::default();
        let mut last = String::new();
        let mut seen = Vec::new();
        for _ in 0..(64 * 100) {
            let s = d.next_dir();
            if s != last {
                seen.push(s.clone());
                last = s;
            }
        }
        assert_eq!(seen[0], "0");
        assert_eq!(seen[61], "z");
        assert_eq!(seen[62], "0/0");
        assert_eq!(seen[63], "0/1");
    }

    #[test]
    fn text_round_trip() {
        let mut d = DirControl::default();
        for _ in 0..150 {
            d.next_dir();
        }
        let t = d.to_text();
        assert_eq!(t, "150\n0\n3\n0 0 0\n61 61 61\n0 2 4\n0 0 0\n0\n");
        let e = DirControl::parse(&t);
        assert_eq!(e.to_text(), t);
        assert_eq!(
            DirControl::parse("").to_text(),
            DirControl::default().to_text()
        );
        // Garbage does not panic.
        let g = DirControl::parse("x\n9\n-1\n99 99 99\n-5 300 1\n999 999 999\n");
        let _ = g.clone().next_dir();
    }

    #[test]
    fn a_planted_path_is_not_a_bucket() {
        let base = "150\n0\n3\n0 0 0\n61 61 61\n0 2 4\n1 0 0\n";
        for bad in ["/etc", "../..", "0/../..", "ab", "0/A/z/q", "0//A", "."] {
            let d = DirControl::parse(&format!("{base}{bad}\n"));
            assert_eq!(d.current(), "", "{bad}");
        }
        for good in ["0", "0/A", "z/9/A"] {
            assert_eq!(
                DirControl::parse(&format!("{base}{good}\n")).current(),
                good
            );
        }
    }
}
