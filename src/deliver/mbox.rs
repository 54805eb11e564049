//! mbox delivery (qmail-local's `mailfile`): append under an exclusive lock
//! (flock, as qmail-local takes, and fcntl, as other mail programs take) the
//! `From ` line, Return-Path, Delivered-To and the message with `>`
//! added before every line matching `>*From `, then one empty line; fsync.
//! A failed write truncates the file back to its old size, so a reader never
//! sees half a message.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{errstr, Fail};

/// How long to wait for the lock.
pub const LOCK_WAIT: Duration = Duration::from_secs(30);

/// True for a line that needs a `>` in front: `>*From `.
pub fn needs_quote(line: &[u8]) -> bool {
    let rest = &line[line.iter().take_while(|&&b| b == b'>').count()..];
    rest.starts_with(b"From ")
}

/// Appends the message to the mbox file `path` (created with mode 0600).
pub fn deliver(path: &Path, prefix: &[u8], msg: &mut dyn Read) -> Result<(), Fail> {
    let name = path.display().to_string();
    // O_NONBLOCK, as qmail's O_NDELAY: a FIFO without a reader fails at once
    // (a temporary error) instead of holding the delivery forever. Writes then
    // block as usual.
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .and_then(|f| {
            use nix::fcntl::{fcntl, FcntlArg, OFlag};
            let fl = fcntl(&f, FcntlArg::F_GETFL).map_err(std::io::Error::from)?;
            let fl = OFlag::from_bits_truncate(fl) & !OFlag::O_NONBLOCK;
            fcntl(&f, FcntlArg::F_SETFL(fl)).map_err(std::io::Error::from)?;
            Ok(f)
        })
        .map_err(|e| Fail::temp(format!("Unable to open {name}: {}. (#4.2.1)", errstr(&e))))?;
    let locked = lock(&f)?;
    let pos = f
        .seek(SeekFrom::End(0))
        .map_err(|e| write_fail(&name, &e))?;
    let res = write_all(&mut f, prefix, msg);
    if let Err(e) = res {
        if locked {
            let _ = f.set_len(pos);
        }
        return Err(e.into_fail(&name));
    }
    Ok(())
}

/// Takes both locks; `false` when the file system supports neither.
fn lock(f: &File) -> Result<bool, Fail> {
    let start = Instant::now();
    // None: this kind of lock is not supported here (deliver without it, as
    // qmail does); Some(held).
    let (mut flock, mut fcntl) = (Some(false), Some(false));
    loop {
        if flock == Some(false) {
            flock = crate::sys::try_flock_exclusive(f).ok();
        }
        if fcntl == Some(false) {
            fcntl = crate::sys::try_lock_exclusive(f).ok();
        }
        if flock != Some(false) && fcntl != Some(false) {
            return Ok(flock.is_some() || fcntl.is_some());
        }
        if start.elapsed() >= LOCK_WAIT {
            return Err(Fail::temp(
                "File has been locked for 30 seconds straight. (#4.3.0)",
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

enum WriteErr {
    Read(io::Error),
    Write(io::Error),
}

impl WriteErr {
    fn into_fail(self, name: &str) -> Fail {
        match self {
            WriteErr::Read(e) => {
                Fail::temp(format!("Unable to read message: {}. (#4.3.0)", errstr(&e)))
            }
            WriteErr::Write(e) => write_fail(name, &e),
        }
    }
}

fn write_fail(name: &str, e: &io::Error) -> Fail {
    Fail::temp(format!("Unable to write {name}: {}. (#4.3.0)", errstr(e)))
}

fn write_all(f: &mut File, prefix: &[u8], msg: &mut dyn Read) -> Result<(), WriteErr> {
    let mut w = io::BufWriter::with_capacity(64 * 1024, &mut *f);
    w.write_all(prefix).map_err(WriteErr::Write)?;
    let mut r = BufReader::with_capacity(64 * 1024, msg);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line).map_err(WriteErr::Read)?;
        if n == 0 {
            break;
        }
        if needs_quote(&line) {
            w.write_all(b">").map_err(WriteErr::Write)?;
        }
        w.write_all(&line).map_err(WriteErr::Write)?;
        if !line.ends_with(b"\n") {
            w.write_all(b"\n").map_err(WriteErr::Write)?;
            break;
        }
    }
    w.write_all(b"\n").map_err(WriteErr::Write)?;
    w.flush().map_err(WriteErr::Write)?;
    drop(w);
    f.sync_all().map_err(WriteErr::Write)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_from_lines_and_appends() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mbox");
        let mut m: &[u8] = b"Subject: x\n\nFrom here\n>From there\nFrom\nno newline";
        deliver(&p, b"From a@b Thu Sep 26 04:46:54 1995\n", &mut m).unwrap();
        let mut m2: &[u8] = b"second\n";
        deliver(&p, b"From c@d x\n", &mut m2).unwrap();
        assert_eq!(
            std::fs::read(&p).unwrap(),
            b"From a@b Thu Sep 26 04:46:54 1995\nSubject: x\n\n>From here\n>>From there\nFrom\nno newline\n\nFrom c@d x\nsecond\n\n"
        );
        assert!(needs_quote(b">>>From x"));
        assert!(!needs_quote(b" From x"));
    }

    #[test]
    fn read_error_truncates_back() {
        struct Half(bool);
        impl Read for Half {
            fn read(&mut self, b: &mut [u8]) -> io::Result<usize> {
                if self.0 {
                    return Err(io::Error::from_raw_os_error(libc::EIO));
                }
                self.0 = true;
                b[..5].copy_from_slice(b"abc\nd");
                Ok(5)
            }
        }
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("mbox");
        std::fs::write(&p, b"old\n\n").unwrap();
        let e = deliver(&p, b"From x\n", &mut Half(false)).unwrap_err();
        assert_eq!(e.code, 111);
        assert!(e.text.starts_with("Unable to read message"), "{}", e.text);
        assert_eq!(std::fs::read(&p).unwrap(), b"old\n\n");
    }
}
