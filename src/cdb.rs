//! Constant databases (cdb), byte-compatible with D. J. Bernstein's cdbmake and
//! tcprules.
//!
//! Format (all integers u32 little-endian): a 2048-byte header of 256
//! `(table_pos, table_slots)` pairs; records `klen dlen key data` from byte 2048;
//! then the 256 hash tables of `(hash, record_pos)` slots. The hash starts at
//! 5381 and does `h = ((h << 5) + h) ^ c`; the table is `h & 255`, the first slot
//! `(h >> 8) % slots`, probing forward. A table has twice as many slots as
//! records; duplicate keys keep their insertion order.
//!
//! Lookups read only the slots and records they need (`pread`), so their cost
//! does not grow with the size of the database. Writers build the whole file in
//! a temporary file, fsync it and rename it over the target.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

/// The cdb hash function.
pub fn hash(key: &[u8]) -> u32 {
    let mut h: u32 = 5381;
    for &c in key {
        h = (h << 5).wrapping_add(h) ^ u32::from(c);
    }
    h
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn corrupt() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "cdb file is corrupt")
}

/// An open cdb file.
pub struct Reader {
    file: File,
    len: u64,
}

impl Reader {
    /// Opens `path`.
    pub fn open(path: &Path) -> io::Result<Reader> {
        Reader::open_flags(path, 0)
    }

    /// Opens `path` unless it is a symbolic link (a file in a directory
    /// another account can write, read by root), `Ok(None)` when missing.
    pub fn open_opt_nofollow(path: &Path) -> io::Result<Option<Reader>> {
        match Reader::open_flags(path, libc::O_NOFOLLOW) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_flags(path: &Path, flags: i32) -> io::Result<Reader> {
        use std::os::unix::fs::OpenOptionsExt;
        // Without waiting: a FIFO in a cdb's place is refused, not read.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | flags)
            .open(path)?;
        let m = file.metadata()?;
        if !m.is_file() || m.len() < 2048 {
            return Err(corrupt());
        }
        Ok(Reader { file, len: m.len() })
    }

    /// Opens `path`, `Ok(None)` when it does not exist.
    pub fn open_opt(path: &Path) -> io::Result<Option<Reader>> {
        match Reader::open(path) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], pos: u64) -> io::Result<()> {
        if pos
            .checked_add(buf.len() as u64)
            .is_none_or(|end| end > self.len)
        {
            return Err(corrupt());
        }
        self.file.read_exact_at(buf, pos)
    }

    /// `len` bytes at `pos`; the length is checked against the file before
    /// anything is allocated (a damaged length must not cost gigabytes).
    fn read_vec_at(&self, len: usize, pos: u64) -> io::Result<Vec<u8>> {
        if pos.checked_add(len as u64).is_none_or(|end| end > self.len) {
            return Err(corrupt());
        }
        let mut v = vec![0u8; len];
        self.file.read_exact_at(&mut v, pos)?;
        Ok(v)
    }

    /// The data of the first record with this key.
    pub fn get(&self, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let mut out = None;
        self.each(key, |d| {
            out = Some(d);
            false
        })?;
        Ok(out)
    }

    /// The data of every record with this key, in insertion order.
    pub fn get_all(&self, key: &[u8]) -> io::Result<Vec<Vec<u8>>> {
        let mut out = Vec::new();
        self.each(key, |d| {
            out.push(d);
            true
        })?;
        Ok(out)
    }

    fn each(&self, key: &[u8], mut f: impl FnMut(Vec<u8>) -> bool) -> io::Result<()> {
        let h = hash(key);
        let mut hdr = [0u8; 8];
        self.read_exact_at(&mut hdr, u64::from(h & 255) * 8)?;
        let tpos = u32_at(&hdr, 0);
        let slots = u32_at(&hdr, 4);
        if slots == 0 {
            return Ok(());
        }
        let mut slot = (h >> 8) % slots;
        for _ in 0..slots {
            let mut s = [0u8; 8];
            self.read_exact_at(&mut s, u64::from(tpos) + u64::from(slot) * 8)?;
            let (sh, rpos) = (u32_at(&s, 0), u32_at(&s, 4));
            if rpos == 0 {
                return Ok(());
            }
            if sh == h {
                let mut kd = [0u8; 8];
                self.read_exact_at(&mut kd, u64::from(rpos))?;
                let (klen, dlen) = (u32_at(&kd, 0) as usize, u32_at(&kd, 4) as usize);
                if klen == key.len() {
                    let k = self.read_vec_at(klen, u64::from(rpos) + 8)?;
                    if k == key {
                        let d = self.read_vec_at(dlen, u64::from(rpos) + 8 + klen as u64)?;
                        if !f(d) {
                            return Ok(());
                        }
                    }
                }
            }
            slot = (slot + 1) % slots;
        }
        Ok(())
    }

    /// Every record in file order (for dumps and tests).
    pub fn records(&self) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut hdr = [0u8; 2048];
        self.read_exact_at(&mut hdr, 0)?;
        // The records end where the first table starts.
        let end = (0..256).map(|i| u32_at(&hdr, i * 8)).min().unwrap_or(2048) as u64;
        let mut pos = 2048u64;
        let mut out = Vec::new();
        while pos < end {
            let mut kd = [0u8; 8];
            self.read_exact_at(&mut kd, pos)?;
            let (klen, dlen) = (u32_at(&kd, 0) as usize, u32_at(&kd, 4) as usize);
            let k = self.read_vec_at(klen, pos + 8)?;
            let d = self.read_vec_at(dlen, pos + 8 + klen as u64)?;
            pos += 8 + klen as u64 + dlen as u64;
            out.push((k, d));
        }
        Ok(out)
    }
}

/// Looks `key` up in the cdb at `path`; a missing file is "not found".
pub fn lookup(path: &Path, key: &[u8]) -> io::Result<Option<Vec<u8>>> {
    match Reader::open_opt(path)? {
        Some(r) => r.get(key),
        None => Ok(None),
    }
}

/// Builds a cdb in memory order, exactly as cdbmake does.
#[derive(Default)]
pub struct Writer {
    records: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Writer {
    /// An empty database.
    pub fn new() -> Writer {
        Writer::default()
    }

    /// Adds a record (duplicates are kept, in order).
    pub fn add(&mut self, key: &[u8], data: &[u8]) {
        self.records.push((key.to_vec(), data.to_vec()));
    }

    /// Number of records added.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The complete file.
    pub fn to_bytes(&self) -> io::Result<Vec<u8>> {
        let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "cdb would exceed 4 GiB");
        let mut out = vec![0u8; 2048];
        let mut tables: Vec<Vec<(u32, u32)>> = vec![Vec::new(); 256];
        for (k, d) in &self.records {
            let pos = u32::try_from(out.len()).map_err(|_| too_big())?;
            let h = hash(k);
            out.extend_from_slice(&(u32::try_from(k.len()).map_err(|_| too_big())?).to_le_bytes());
            out.extend_from_slice(&(u32::try_from(d.len()).map_err(|_| too_big())?).to_le_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(d);
            tables[(h & 255) as usize].push((h, pos));
        }
        for (i, t) in tables.iter().enumerate() {
            let pos = u32::try_from(out.len()).map_err(|_| too_big())?;
            let slots = t.len() * 2;
            out[i * 8..i * 8 + 4].copy_from_slice(&pos.to_le_bytes());
            out[i * 8 + 4..i * 8 + 8].copy_from_slice(&(slots as u32).to_le_bytes());
            let mut table = vec![(0u32, 0u32); slots];
            for &(h, p) in t {
                let mut w = ((h >> 8) as usize) % slots;
                while table[w].1 != 0 {
                    w = (w + 1) % slots;
                }
                table[w] = (h, p);
            }
            for (h, p) in table {
                out.extend_from_slice(&h.to_le_bytes());
                out.extend_from_slice(&p.to_le_bytes());
            }
        }
        if out.len() as u64 > u64::from(u32::MAX) {
            return Err(too_big());
        }
        Ok(out)
    }

    /// Writes the database to `path` atomically (temporary file, fsync, rename,
    /// fsync of the directory), with permission `mode`.
    pub fn write_atomic(&self, path: &Path, mode: u32) -> io::Result<()> {
        let bytes = self.to_bytes()?;
        crate::fsutil::atomic_write(path, &bytes, mode)
    }

    /// Writes the database through `tmp` and renames it to `path`, as tcprules
    /// and qmail-newu do with an explicit temporary name.
    pub fn write_via(&self, path: &Path, tmp: &Path, mode: u32) -> io::Result<()> {
        self.write_via_owned(path, tmp, mode, None)
    }

    /// [`Writer::write_via`], the file given to `owner` (as root) before the
    /// rename, so its readers never find it root's.
    pub fn write_via_owned(
        &self,
        path: &Path,
        tmp: &Path,
        mode: u32,
        owner: Option<(u32, u32)>,
    ) -> io::Result<()> {
        let bytes = self.to_bytes()?;
        let mut f = crate::fsutil::create_fresh(tmp, mode)?;
        if let Err(e) = crate::fsutil::fchown_if_root(&f, owner) {
            drop(f);
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        // Exactly `mode`, whatever the umask: tcpserver (under its own uid)
        // must be able to read tcp.smtp.cdb after a run from a cron job
        // with umask 077, as vpopmail sets umask 022 for it.
        use std::os::unix::fs::PermissionsExt;
        let r = f
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .and_then(|_| f.write_all(&bytes))
            .and_then(|_| f.sync_all());
        drop(f);
        if let Err(e) = r.and_then(|_| std::fs::rename(tmp, path)) {
            let _ = std::fs::remove_file(tmp);
            return Err(e);
        }
        crate::fsutil::fsync_dir(crate::fsutil::parent_dir(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_matches_reference() {
        assert_eq!(hash(b""), 5381);
        assert_eq!(hash(b"a"), (5381u32 << 5).wrapping_add(5381) ^ 97);
    }

    #[test]
    fn a_damaged_length_is_an_error_not_an_allocation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.cdb");
        let mut w = Writer::new();
        w.add(b"k", b"v");
        let mut b = w.to_bytes().unwrap();
        // The one record starts at 2048: key length 1, then the data length.
        b[2052..2056].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&p, &b).unwrap();
        let r = Reader::open(&p).unwrap();
        assert_eq!(r.get(b"k").unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert!(r.records().is_err());
    }

    #[test]
    fn round_trip_with_duplicates() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("t.cdb");
        let mut w = Writer::new();
        for i in 0..1000u32 {
            w.add(format!("key{i}").as_bytes(), format!("val{i}").as_bytes());
        }
        w.add(b"key7", b"second");
        w.add(b"", b"empty");
        w.write_atomic(&p, 0o644).unwrap();
        let r = Reader::open(&p).unwrap();
        assert_eq!(r.get(b"key999").unwrap().unwrap(), b"val999");
        assert_eq!(
            r.get_all(b"key7").unwrap(),
            vec![b"val7".to_vec(), b"second".to_vec()]
        );
        assert_eq!(r.get(b"").unwrap().unwrap(), b"empty");
        assert_eq!(r.get(b"nokey").unwrap(), None);
        assert_eq!(r.records().unwrap().len(), 1002);
    }

    #[test]
    fn empty_database_is_2048_header_only() {
        let b = Writer::new().to_bytes().unwrap();
        assert_eq!(b.len(), 2048);
        assert_eq!(&b[0..8], &[0, 8, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn corrupt_file_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("bad.cdb");
        let mut b = Writer::new();
        b.add(b"k", b"v");
        let mut bytes = b.to_bytes().unwrap();
        bytes.truncate(2060);
        std::fs::write(&p, &bytes).unwrap();
        let r = Reader::open(&p).unwrap();
        assert!(r.get(b"k").is_err());
    }
}
