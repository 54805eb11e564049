//! Maildir++ quota: the `maildirsize` file (maildirsize(5)).
//!
//! ```text
//! 50000000S,1000C      line 1: the quota definition (bytes S, messages C)
//! 163459 45            the usage when the file was last rebuilt
//! 2041 1               one line per delivery ...
//! -2041 -1             ... and per deletion (signed deltas)
//! ```
//!
//! Usage is the sum of the lines after line 1. Writers append one line with a
//! single `write` on an `O_APPEND` descriptor, so concurrent appends never mix.
//! The file is rebuilt (a scan of `new/` and `cur/` of the Maildir and of each
//! `.Folder` except `.Trash`, taking sizes from `,S=NNN` in the names) when it
//! is 5120 bytes or larger, older than 15 minutes, missing, malformed, or
//! holds another quota definition. The rebuilt file is written to
//! `tmp/TIME.PID_NeWmAiLdIrSiZe.HOST`, fsynced and renamed over `maildirsize`.
//!
//! A message of SIZE bytes is over quota when `usage_bytes + SIZE > S` or
//! `usage_count + 1 > C` (exactly at the limit is still fine). A limit of 0
//! means no limit for that component.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::SystemTime;

/// The file name inside the Maildir.
pub const FILE: &str = "maildirsize";
/// Rebuild when the file has grown to this many bytes.
pub const MAX_SIZE: u64 = 5120;
/// Rebuild when the file is older than this many seconds.
pub const MAX_AGE: i64 = 15 * 60;

/// A quota definition: byte and message limits (`None` = no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quota {
    /// `NNNS`: the byte limit.
    pub bytes: Option<u64>,
    /// `NNNC`: the message limit.
    pub count: Option<u64>,
}

impl Quota {
    /// No limits at all (`NOQUOTA`).
    pub const UNLIMITED: Quota = Quota {
        bytes: None,
        count: None,
    };

    /// Parses `NNNS`, `NNNC`, `NNNS,NNNC` (in any order), a bare `NNN` (bytes,
    /// as old vpasswd files have it), `NOQUOTA` or anything starting with
    /// `NO` (unlimited, as vpopmail reads it), or an empty string (unlimited).
    /// Returns `None` for anything else.
    pub fn parse(def: &str) -> Option<Quota> {
        let def = def.trim();
        if def.is_empty() || def.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("no")) {
            return Some(Quota::UNLIMITED);
        }
        let mut q = Quota::UNLIMITED;
        // vpopmail's format_maildirquota: a single size with a K, M or G
        // suffix (as an existing vpasswd may hold, `50M`) is that many bytes.
        if !def.contains(',') {
            let mult = match def.as_bytes().last() {
                Some(b'K' | b'k') => Some(1u64 << 10),
                Some(b'M' | b'm') => Some(1 << 20),
                Some(b'G' | b'g') => Some(1 << 30),
                _ => None,
            };
            if let Some(m) = mult {
                let digits = &def[..def.len() - 1];
                if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                let n = digits.parse::<u64>().ok()?.checked_mul(m)?;
                q.bytes = (n != 0).then_some(n);
                return Some(q);
            }
        }
        for part in def.split(',') {
            let part = part.trim();
            let (digits, kind) = match part.as_bytes().last() {
                Some(b'S' | b's') => (&part[..part.len() - 1], 'S'),
                Some(b'C' | b'c') => (&part[..part.len() - 1], 'C'),
                Some(b'0'..=b'9') => (part, 'S'),
                _ => return None,
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: u64 = digits.parse().ok()?;
            let v = if n == 0 { None } else { Some(n) };
            match kind {
                'S' => q.bytes = v,
                _ => q.count = v,
            }
        }
        Some(q)
    }

    /// True when neither limit is set.
    /// The quota field of a vpasswd line, read as vpopmail's
    /// format_maildirquota reads it before every delivery: comma-separated
    /// parts; one ending in `C` is a message count (its leading number), any
    /// other a size: a trailing `S` and then `B` dropped, the leading decimal
    /// number taken, times 1024, 1024² or 1024³ for a `K`, `M` or `G` left
    /// at its end (`50M`, `50MB`, `1.5G`, `1mbs`, `52428800S`). `NO...`
    /// and an empty field are no limit; so is a part with no number (0).
    pub fn from_vpasswd(field: &str) -> Quota {
        let field = field.trim();
        if field.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("no")) {
            return Quota::UNLIMITED;
        }
        let mut q = Quota::UNLIMITED;
        for part in field.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if let Some(c) = part.strip_suffix(['C', 'c']) {
                q.count = leading_number(c).filter(|&n| n >= 1.0).map(|n| n as u64);
                continue;
            }
            let p = part.strip_suffix(['S', 's']).unwrap_or(part);
            let p = p.strip_suffix(['B', 'b']).unwrap_or(p);
            let mult = match p.as_bytes().last() {
                Some(b'K' | b'k') => 1024.0,
                Some(b'M' | b'm') => 1024.0 * 1024.0,
                Some(b'G' | b'g') => 1024.0 * 1024.0 * 1024.0,
                _ => 1.0,
            };
            let n = leading_number(p).unwrap_or(0.0) * mult;
            // "%.0f": rounded to whole bytes; 0 (or less) is no limit.
            q.bytes = (n >= 0.5 && n < u64::MAX as f64).then(|| n.round() as u64);
        }
        q
    }

    pub fn is_unlimited(&self) -> bool {
        self.bytes.is_none() && self.count.is_none()
    }

    /// How full the Maildir is, in percent of the tighter limit (0 when unlimited).
    pub fn percent(&self, u: &Usage) -> u64 {
        let pct = |used: i64, lim: Option<u64>| match lim {
            Some(l) if l > 0 => (used.max(0) as u128 * 100 / l as u128) as u64,
            _ => 0,
        };
        pct(u.bytes, self.bytes).max(pct(u.count, self.count))
    }
}

impl fmt::Display for Quota {
    /// The definition as line 1 of maildirsize (`NNNS,NNNC`), `NOQUOTA` when unlimited.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.bytes, self.count) {
            (None, None) => write!(f, "NOQUOTA"),
            (Some(b), None) => write!(f, "{b}S"),
            (None, Some(c)) => write!(f, "{c}C"),
            (Some(b), Some(c)) => write!(f, "{b}S,{c}C"),
        }
    }
}

/// Bytes and messages in use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of message sizes.
    pub bytes: i64,
    /// Number of messages.
    pub count: i64,
}

/// The number a string starts with, as C's atof reads it (white space, a
/// sign, digits, a fraction); `None` when there is none.
fn leading_number(s: &str) -> Option<f64> {
    let s = s.trim_start();
    let b = s.as_bytes();
    let mut end = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits_from = end;
    while end < b.len() && b[end].is_ascii_digit() {
        end += 1;
    }
    let mut seen = end > digits_from;
    if end < b.len() && b[end] == b'.' {
        let f = end + 1;
        let mut e = f;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        if e > f || seen {
            seen |= e > f;
            end = e;
        }
    }
    if !seen {
        return None;
    }
    // An exponent, as atof takes it (`1e3`).
    if end < b.len() && (b[end] == b'e' || b[end] == b'E') {
        let mut e = end + 1;
        if e < b.len() && (b[e] == b'+' || b[e] == b'-') {
            e += 1;
        }
        let digits = e;
        while e < b.len() && b[e].is_ascii_digit() {
            e += 1;
        }
        if e > digits {
            end = e;
        }
    }
    s[..end].parse::<f64>().ok()
}

/// True when one more message of `size` bytes would exceed `q`.
pub fn over_quota(q: &Quota, u: &Usage, size: u64) -> bool {
    let over_bytes = q
        .bytes
        .is_some_and(|s| u.bytes as i128 + size as i128 > s as i128);
    let over_count = q.count.is_some_and(|c| u.count as i128 + 1 > c as i128);
    over_bytes || over_count
}

/// The parsed contents of a maildirsize file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SizeFile {
    /// Line 1, as written.
    pub definition: String,
    /// Line 1, parsed (`None` if it is not a valid definition).
    pub quota: Option<Quota>,
    /// The sum of the lines after line 1.
    pub usage: Usage,
    /// File size in bytes.
    pub len: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// False when a line after line 1 was malformed or unterminated.
    pub well_formed: bool,
}

impl SizeFile {
    /// Parses the contents of a maildirsize file.
    pub fn parse(data: &[u8], mtime: i64) -> SizeFile {
        let mut lines = data.split_inclusive(|&b| b == b'\n');
        let first = lines.next().unwrap_or(b"");
        let definition = String::from_utf8_lossy(first.strip_suffix(b"\n").unwrap_or(first))
            .trim()
            .to_string();
        let mut well_formed = first.ends_with(b"\n");
        let mut usage = Usage::default();
        for line in lines {
            let Some(body) = line.strip_suffix(b"\n") else {
                well_formed = false;
                break;
            };
            let text = String::from_utf8_lossy(body);
            let mut f = text.split_ascii_whitespace();
            match (
                f.next().map(str::parse::<i64>),
                f.next().map(str::parse::<i64>),
            ) {
                (Some(Ok(b)), Some(Ok(c))) => {
                    usage.bytes = usage.bytes.saturating_add(b);
                    usage.count = usage.count.saturating_add(c);
                }
                (Some(Ok(b)), None) => usage.bytes = usage.bytes.saturating_add(b),
                (None, None) => {}
                _ => well_formed = false,
            }
        }
        SizeFile {
            // Maildir++'s `NNNS,NNNC`; anything else as vpopmail's
            // format_maildirquota would read it (`50M,2C`).
            quota: Quota::parse(&definition).or_else(|| {
                let q = Quota::from_vpasswd(&definition);
                (!q.is_unlimited()).then_some(q)
            }),
            definition,
            usage,
            len: data.len() as u64,
            mtime,
            well_formed,
        }
    }

    /// The rebuild rule: too big, too old, malformed, or another definition.
    pub fn needs_rebuild(&self, now: i64, wanted: &Quota) -> bool {
        self.len >= MAX_SIZE
            || now - self.mtime > MAX_AGE
            || !self.well_formed
            || self.quota != Some(*wanted)
            // A negative total (a deletion counted with a size from a name
            // that was not the message's) is no usage: count again.
            || self.usage.bytes < 0
            || self.usage.count < 0
    }
}

/// Whether an error opening maildirsize says it is a link (`O_NOFOLLOW`)
/// or not a regular file: no quota file at all, to be replaced.
fn unusable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP) | Some(libc::EISDIR) | Some(libc::ENXIO)
    ) || e.kind() == io::ErrorKind::InvalidData
}

/// Reads `MAILDIR/maildirsize`; `Ok(None)` when it does not exist.
pub fn read(maildir: &Path) -> io::Result<Option<SizeFile>> {
    use std::os::unix::fs::OpenOptionsExt;
    // Not through a link, and not a FIFO (root's vuserinfo reads it too).
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(maildir.join(FILE))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "maildirsize is not a regular file",
        ));
    }
    let mtime = mtime_secs(&meta);
    let mut data = Vec::new();
    // Bounded: a runaway file is rebuilt anyway.
    (&mut f).take(1 << 20).read_to_end(&mut data)?;
    let mut sf = SizeFile::parse(&data, mtime);
    sf.len = f.metadata()?.len();
    Ok(Some(sf))
}

/// Appends one line `BYTES COUNT` (signed deltas) to `MAILDIR/maildirsize`
/// with a single write on an `O_APPEND` descriptor. A missing file is left
/// missing (`Ok(false)`): the next quota check rebuilds it from the Maildir.
/// A link or anything but a regular file counts as missing: it is never
/// written through (Courier's maildir_safeopen), and the next check
/// replaces it.
pub fn append(maildir: &Path, bytes: i64, count: i64) -> io::Result<bool> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = match OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(maildir.join(FILE))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound || unusable(&e) => return Ok(false),
        Err(e) => return Err(e),
    };
    if !f.metadata()?.is_file() {
        return Ok(false);
    }
    let line = format!("{bytes} {count}\n");
    let n = f.write(line.as_bytes())?;
    if n != line.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            "short write to maildirsize",
        ));
    }
    Ok(true)
}

/// Scans the Maildir (new/ and cur/ of it and of each `.Folder` except
/// `.Trash`; files flagged `T` are skipped) and returns the usage.
pub fn scan(maildir: &Path) -> io::Result<Usage> {
    let mut u = Usage::default();
    for dir in scanned_dirs(maildir)? {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for ent in rd {
            let ent = ent?;
            let name = ent.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || trashed(&name) {
                continue;
            }
            let size = match size_from_name(&name) {
                Some(s) => s,
                None => match ent.metadata() {
                    Ok(m) if m.is_file() => m.len(),
                    Ok(_) => continue,
                    // Moved or deleted meanwhile by a reader.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                },
            };
            // (A size from a name is the writer's word: never negative.)
            u.bytes = u
                .bytes
                .saturating_add(i64::try_from(size).unwrap_or(i64::MAX));
            u.count += 1;
        }
    }
    Ok(u)
}

/// Rebuilds `MAILDIR/maildirsize` for `quota` from a scan and returns the
/// usage. Written to `tmp/TIME.PID_NeWmAiLdIrSiZe.HOST`, fsynced, renamed.
/// The scan is repeated (a few times at most) when a directory changed
/// while it ran, so a delivery during the scan is not lost from the count.
pub fn rebuild(maildir: &Path, quota: &Quota) -> io::Result<Usage> {
    rebuild_owned(maildir, quota, None)
}

/// [`rebuild`] by an admin tool running as root: the new file is given to
/// `owner` before it replaces the old one, which deliveries read as that
/// owner.
pub fn rebuild_owned(
    maildir: &Path,
    quota: &Quota,
    owner: Option<(u32, u32)>,
) -> io::Result<Usage> {
    let mut usage = Usage::default();
    for _ in 0..5 {
        let before = dir_stamps(maildir)?;
        usage = scan(maildir)?;
        if dir_stamps(maildir)? == before {
            break;
        }
    }
    let tmp = maildir.join("tmp").join(format!(
        "{}.{}_NeWmAiLdIrSiZe.{}",
        crate::timefmt::now(),
        std::process::id(),
        super::name_host()
    ));
    let content = format!("{quota}\n{} {}\n", usage.bytes, usage.count);
    let res = (|| {
        let mut f = crate::fsutil::create_fresh(&tmp, 0o600)?;
        crate::fsutil::fchown_if_root(&f, owner)?;
        f.write_all(content.as_bytes())?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, maildir.join(FILE))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res.map(|()| usage)
}

/// The result of a quota check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Check {
    /// The quota that applied.
    pub quota: Quota,
    /// The usage before the new message.
    pub usage: Usage,
    /// True when the message does not fit.
    pub over: bool,
}

/// Checks whether a message of `size` bytes fits. `quota` is the quota of the
/// account (vpasswd's field); `None` means "whatever line 1 of maildirsize
/// says". Without any quota nothing is read or written. The file is rebuilt
/// by the rules above, and once more before saying "over quota" unless it
/// was just rebuilt (a stale count must not bounce mail).
pub fn check(maildir: &Path, quota: Option<&Quota>, size: u64) -> io::Result<Check> {
    // A maildirsize this account may not read (left by a script run as
    // root) is rebuilt over, as Courier's quota code does, rather than
    // holding the mail back.
    // A link or a directory in its place is no quota file either (Courier
    // and vpopmail rebuild over it); where even the rebuilt file cannot
    // take its place, the count from the scan decides, and mail is not held
    // back for it.
    let mut replace = false;
    let file = match read(maildir) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => None,
        Err(e) if unusable(&e) => {
            replace = true;
            None
        }
        r => r?,
    };
    let q = match (quota, &file) {
        (Some(q), _) => *q,
        (None, Some(f)) => f.quota.unwrap_or(Quota::UNLIMITED),
        (None, None) => Quota::UNLIMITED,
    };
    if q.is_unlimited() {
        return Ok(Check {
            quota: q,
            usage: file.map(|f| f.usage).unwrap_or_default(),
            over: false,
        });
    }
    let now = crate::timefmt::now();
    let (mut usage, fresh) = match file {
        Some(f) if !f.needs_rebuild(now, &q) => (f.usage, false),
        _ => match rebuild(maildir, &q) {
            Ok(u) => (u, true),
            Err(_) if replace => (scan(maildir)?, true),
            Err(e) => return Err(e),
        },
    };
    let mut over = over_quota(&q, &usage, size);
    if over && !fresh {
        usage = rebuild(maildir, &q)?;
        over = over_quota(&q, &usage, size);
    }
    Ok(Check {
        quota: q,
        usage,
        over,
    })
}

/// The size from a `,S=NNN` field in a Maildir file name.
pub fn size_from_name(name: &str) -> Option<u64> {
    let base = name.split(':').next().unwrap_or(name);
    base.split(',').skip(1).find_map(|f| {
        f.strip_prefix("S=")
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse().ok())
    })
}

/// True for a message flagged `T` (trashed) in its `:2,FLAGS` info: not
/// counted in a rebuilt maildirsize, so not taken off it when removed.
pub fn trashed(name: &str) -> bool {
    name.rsplit_once(":2,")
        .is_some_and(|(_, flags)| flags.contains('T'))
}

fn scanned_dirs(maildir: &Path) -> io::Result<Vec<std::path::PathBuf>> {
    let mut dirs = vec![maildir.join("new"), maildir.join("cur")];
    for ent in std::fs::read_dir(maildir)? {
        let ent = ent?;
        let name = ent.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.')
            && name != "."
            && name != ".."
            && name != ".Trash"
            && ent.file_type().map(|t| t.is_dir()).unwrap_or(false)
        {
            dirs.push(ent.path().join("new"));
            dirs.push(ent.path().join("cur"));
        }
    }
    Ok(dirs)
}

fn dir_stamps(maildir: &Path) -> io::Result<Vec<(std::path::PathBuf, Option<SystemTime>)>> {
    Ok(scanned_dirs(maildir)?
        .into_iter()
        .map(|d| {
            let t = std::fs::metadata(&d).and_then(|m| m.modified()).ok();
            (d, t)
        })
        .collect())
}

fn mtime_secs(m: &std::fs::Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    m.mtime()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md() -> (tempfile::TempDir, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let m = d.path().join("Maildir");
        crate::maildir::create(&m, 0o700).unwrap();
        (d, m)
    }

    #[test]
    fn parses_definitions() {
        let q = |s| Quota::parse(s);
        assert_eq!(q("50000000S").unwrap().bytes, Some(50_000_000));
        assert_eq!(q("50000000S").unwrap().count, None);
        assert_eq!(q("1000C").unwrap().count, Some(1000));
        assert_eq!(
            q("5000S,100C").unwrap(),
            Quota {
                bytes: Some(5000),
                count: Some(100)
            }
        );
        assert_eq!(q("100C,5000S").unwrap(), q("5000S,100C").unwrap());
        assert_eq!(q("NOQUOTA"), Some(Quota::UNLIMITED));
        assert_eq!(q(""), Some(Quota::UNLIMITED));
        assert_eq!(q("12345").unwrap().bytes, Some(12345));
        assert_eq!(q("0S"), Some(Quota::UNLIMITED));
        assert_eq!(q("abc"), None);
        assert_eq!(q("5X"), None);
        assert_eq!(q("S"), None);
        assert_eq!(q("-5S"), None);
        // vpopmail's K/M/G suffixes, on a single size.
        assert_eq!(q("1K").unwrap().bytes, Some(1024));
        assert_eq!(q("50m").unwrap().bytes, Some(52_428_800));
        assert_eq!(q("2G").unwrap().bytes, Some(2 << 30));
        assert_eq!(q("M"), None);
        assert_eq!(q("5K,3C"), None);
        assert_eq!(q("99999999999999999G"), None);
        for s in ["5000S,100C", "5000S", "100C", "NOQUOTA"] {
            assert_eq!(q(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn a_negative_total_is_counted_again() {
        let f = SizeFile::parse(b"1000S\n100 1\n-9223372036854775807 -2\n", 1000);
        assert!(f.needs_rebuild(1000, &Quota::parse("1000S").unwrap()));
        let f = SizeFile::parse(b"1000S\n100 1\n", 1000);
        assert!(!f.needs_rebuild(1000, &Quota::parse("1000S").unwrap()));
    }

    #[test]
    fn sizes_from_names_never_make_usage_negative() {
        let d = tempfile::tempdir().unwrap();
        let md = d.path();
        for s in ["new", "cur", "tmp"] {
            std::fs::create_dir(md.join(s)).unwrap();
        }
        std::fs::write(md.join("new/1.a.h,S=18446744073709551615"), "x").unwrap();
        std::fs::write(md.join("new/2.b.h,S=10"), "x").unwrap();
        let u = scan(md).unwrap();
        assert_eq!((u.bytes, u.count), (i64::MAX, 2));
    }

    #[test]
    fn vpasswd_fields_as_vpopmail_reads_them() {
        let q = |s: &str| {
            let q = Quota::from_vpasswd(s);
            (q.bytes, q.count)
        };
        const M: u64 = 1 << 20;
        assert_eq!(q("50M,30C"), (Some(50 * M), Some(30)));
        assert_eq!(q("30C,50M"), (Some(50 * M), Some(30)));
        assert_eq!(q("50MB"), (Some(50 * M), None));
        assert_eq!(q("1mbs,1000C"), (Some(M), Some(1000)));
        assert_eq!(q("1.5G"), (Some(1610612736), None));
        assert_eq!(q("52428800S,100C"), (Some(52428800), Some(100)));
        assert_eq!(q("52428800"), (Some(52428800), None));
        assert_eq!(q("100k"), (Some(102400), None));
        assert_eq!(q("NOQUOTA"), (None, None));
        assert_eq!(q(""), (None, None));
        assert_eq!(q("junk"), (None, None));
        assert_eq!(q("0S,0C"), (None, None));
        assert_eq!(q("-5M,-1C"), (None, None));
        assert_eq!(q("1e3"), (Some(1000), None));
        // Line 1 of maildirsize as vpopmail may have written it.
        let f = SizeFile::parse(b"50M,2C\n", 0);
        assert_eq!(
            f.quota.map(|q| (q.bytes, q.count)),
            Some((Some(50 * M), Some(2)))
        );
        assert_eq!(q("2e"), (Some(2), None));
    }

    #[test]
    fn over_quota_boundaries() {
        let q = Quota::parse("1000S,3C").unwrap();
        let u = Usage {
            bytes: 900,
            count: 2,
        };
        assert!(!over_quota(&q, &u, 100)); // exactly at the limit is fine
        assert!(over_quota(&q, &u, 101));
        let u3 = Usage { bytes: 0, count: 3 };
        assert!(over_quota(&q, &u3, 1));
        assert!(!over_quota(&Quota::UNLIMITED, &u3, u64::MAX));
        let neg = Usage {
            bytes: -50,
            count: -1,
        };
        assert!(!over_quota(&q, &neg, 1050));
    }

    #[test]
    fn usage_is_sum_after_line_one() {
        let f = SizeFile::parse(b"1000S,10C\n300 3\n  100 1\n-50 -1\n", 0);
        assert_eq!(
            f.usage,
            Usage {
                bytes: 350,
                count: 3
            }
        );
        assert!(f.well_formed);
        assert_eq!(f.quota, Quota::parse("1000S,10C"));
        let bad = SizeFile::parse(b"1000S\n300 3\n10", 0);
        assert!(!bad.well_formed);
        let bad2 = SizeFile::parse(b"1000S\nxx yy\n", 0);
        assert!(!bad2.well_formed);
    }

    #[test]
    fn rebuild_rules() {
        let q = Quota::parse("1000S").unwrap();
        let mut f = SizeFile::parse(b"1000S\n0 0\n", 1000);
        assert!(!f.needs_rebuild(1000 + MAX_AGE, &q));
        assert!(f.needs_rebuild(1000 + MAX_AGE + 1, &q));
        assert!(f.needs_rebuild(1000, &Quota::parse("2000S").unwrap()));
        f.len = MAX_SIZE;
        assert!(f.needs_rebuild(1000, &q));
    }

    #[test]
    fn scan_counts_folders_but_not_trash_or_t_flag() {
        let (_d, m) = md();
        std::fs::write(m.join("new/1.1.h,S=100"), b"x").unwrap();
        std::fs::write(m.join("cur/2.2.h,S=50:2,S"), b"x").unwrap();
        std::fs::write(m.join("cur/3.3.h:2,ST"), b"xxxx").unwrap();
        std::fs::write(m.join("cur/4.4.h"), b"12345").unwrap();
        std::fs::write(m.join("tmp/5.5.h,S=999"), b"x").unwrap();
        crate::maildir::create(&m.join(".Sent"), 0o700).unwrap();
        std::fs::write(m.join(".Sent/cur/6.6.h,S=7:2,S"), b"x").unwrap();
        crate::maildir::create(&m.join(".Trash"), 0o700).unwrap();
        std::fs::write(m.join(".Trash/cur/7.7.h,S=1000:2,S"), b"x").unwrap();
        let u = scan(&m).unwrap();
        assert_eq!(
            u,
            Usage {
                bytes: 162,
                count: 4
            }
        );
    }

    #[test]
    fn append_and_rebuild_keep_the_file_right() {
        let (_d, m) = md();
        assert!(!append(&m, 10, 1).unwrap(), "no file: nothing appended");
        std::fs::write(m.join("new/1.1.h,S=100"), b"x").unwrap();
        let q = Quota::parse("1000S,5C").unwrap();
        let u = rebuild(&m, &q).unwrap();
        assert_eq!(u.bytes, 100);
        assert_eq!(
            std::fs::read_to_string(m.join(FILE)).unwrap(),
            "1000S,5C\n100 1\n"
        );
        assert_eq!(std::fs::read_dir(m.join("tmp")).unwrap().count(), 0);
        assert!(append(&m, 200, 1).unwrap());
        assert!(append(&m, -100, -1).unwrap());
        let f = read(&m).unwrap().unwrap();
        assert_eq!(
            f.usage,
            Usage {
                bytes: 200,
                count: 1
            }
        );
    }

    #[test]
    fn a_link_or_directory_for_maildirsize_is_replaced_never_followed() {
        let (d, m) = md();
        std::fs::write(m.join("new/1.1.h,S=100"), b"x").unwrap();
        let q = Quota::parse("1000S").unwrap();
        let target = d.path().join("elsewhere");
        std::fs::write(&target, b"keep\n").unwrap();
        std::os::unix::fs::symlink(&target, m.join(FILE)).unwrap();
        assert!(
            !append(&m, -100, -1).unwrap(),
            "a link is not written through"
        );
        let c = check(&m, Some(&q), 10).unwrap();
        assert!(!c.over);
        assert_eq!(c.usage.bytes, 100);
        assert!(std::fs::symlink_metadata(m.join(FILE)).unwrap().is_file());
        assert_eq!(std::fs::read(&target).unwrap(), b"keep\n");
        // A directory cannot be replaced: the scan decides, mail goes on.
        std::fs::remove_file(m.join(FILE)).unwrap();
        std::fs::create_dir(m.join(FILE)).unwrap();
        assert!(!append(&m, 10, 1).unwrap());
        let c = check(&m, Some(&q), 10).unwrap();
        assert!(!c.over);
        assert_eq!(c.usage.bytes, 100);
        assert!(check(&m, Some(&q), 901).unwrap().over);
        assert_eq!(std::fs::read_dir(m.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn check_creates_rebuilds_and_decides() {
        let (_d, m) = md();
        // No quota anywhere: nothing is created.
        let c = check(&m, None, 10).unwrap();
        assert!(!c.over);
        assert!(!m.join(FILE).exists());
        let q = Quota::parse("300S,2C").unwrap();
        std::fs::write(m.join("new/1.1.h,S=200"), b"x").unwrap();
        let c = check(&m, Some(&q), 100).unwrap();
        assert!(!c.over);
        assert_eq!(c.usage.bytes, 200);
        assert!(m.join(FILE).exists());
        assert!(check(&m, Some(&q), 101).unwrap().over);
        // Line 1 applies when the account has no quota of its own.
        assert!(check(&m, None, 101).unwrap().over);
        // A stale count that says "over" is rebuilt before bouncing.
        append(&m, 100_000, 5).unwrap();
        let c = check(&m, Some(&q), 50).unwrap();
        assert!(!c.over, "{c:?}");
        assert_eq!(c.usage.bytes, 200);
        // Message limit.
        std::fs::write(m.join("new/2.2.h,S=1"), b"x").unwrap();
        append(&m, 1, 1).unwrap();
        assert!(check(&m, Some(&q), 1).unwrap().over);
    }

    #[test]
    fn sizes_from_names() {
        assert_eq!(size_from_name("1.2.host,S=1234"), Some(1234));
        assert_eq!(size_from_name("1.2.host,S=1234:2,S"), Some(1234));
        assert_eq!(size_from_name("1.2.host,W=1300,S=1234:2,S"), Some(1234));
        assert_eq!(size_from_name("1.2.host:2,S"), None);
        assert_eq!(size_from_name("1.2.host,S=:2,S"), None);
    }

    #[test]
    fn percent() {
        let q = Quota::parse("1000S,10C").unwrap();
        let u = Usage {
            bytes: 900,
            count: 2,
        };
        assert_eq!(q.percent(&u), 90);
    }
}
