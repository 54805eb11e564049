//! qmail-clean: removes queue files owned by qmailq on qmail-send's request.
//!
//! qmail-send (running as qmails) may not unlink files in `todo/`, `intd/` and
//! `mess/`; it writes a request to qmail-clean (running as qmailq) and reads a
//! one-byte answer, `+` done, `!` trouble or `x` not a request. Requests end
//! with a NUL:
//! * `todo/N`: the message has been preprocessed: remove `intd/N` and `todo/N`;
//! * `foop/N`: the message is finished (or an orphan): remove `intd/N` and `mess/S/N`.
//!
//! The last name of a preprocessed envelope (`todo/N`) is kept as a spare
//! for qmail-queue ([`super::spare`]) rather than unlinked. A message file
//! (`mess/S/N`) is always unlinked, as qmail does: a delivery still running
//! (a program that reads on in the background, or one orphaned by a
//! qmail-send crash) keeps reading its own message from the open file, which
//! a reused file would replace with another message.
//!
//! At start, pid files older than 36 hours (left by a qmail-queue that was
//! killed) are removed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::MetadataExt;

use super::{parse_id, Queue, OSSIFIED};

fn unlink_ok(p: &std::path::Path) -> bool {
    removed(std::fs::remove_file(p))
}

fn removed(r: io::Result<()>) -> bool {
    match r {
        Ok(()) => true,
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}

/// Handles one request; the answer byte: `+` done, `!` a file could not be
/// removed, `x` a request that is not one (qmail-clean's answers).
pub fn handle(q: &Queue, spares: &mut super::spare::Keeper, req: &[u8]) -> u8 {
    let s = String::from_utf8_lossy(req);
    let (kind, num) = match s.split_once('/') {
        Some(x) => x,
        None => return b'x',
    };
    let Some(id) = parse_id(num) else {
        return b'x';
    };
    let ok = match kind {
        "todo" => unlink_ok(&q.intd(id)) && removed(spares.remove(&q.todo(id))),
        "foop" => {
            let ok = unlink_ok(&q.intd(id)) && unlink_ok(&q.mess(id));
            spares.replenish();
            ok
        }
        _ => return b'x',
    };
    if ok {
        b'+'
    } else {
        b'!'
    }
}

/// Removes pid files whose mtime is older than 36 hours.
pub fn clean_pids(q: &Queue, now: i64) {
    let Ok(rd) = std::fs::read_dir(q.dir().join("pid")) else {
        return;
    };
    for e in rd.flatten() {
        if let Ok(m) = e.metadata() {
            if now > m.mtime() + OSSIFIED {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The request loop, until qmail-send closes its end.
pub fn serve(q: &Queue, input: impl Read, mut output: impl Write, now: i64) -> io::Result<()> {
    clean_pids(q, now);
    let mut spares = super::spare::Keeper::open(q);
    let mut r = BufReader::new(input);
    let mut req = Vec::new();
    loop {
        req.clear();
        if r.by_ref().take(1000).read_until(0, &mut req)? == 0 {
            return Ok(());
        }
        if req.last() != Some(&0) {
            // Too long: read on to its NUL and answer once, `x`, as qmail's
            // qmail-clean does, so the pipe stays in step; cut off by the
            // end of input: nothing more to answer.
            let mut skipped = Vec::new();
            loop {
                skipped.clear();
                if r.by_ref().take(4096).read_until(0, &mut skipped)? == 0 {
                    return Ok(());
                }
                if skipped.last() == Some(&0) {
                    break;
                }
            }
            output.write_all(b"x")?;
            output.flush()?;
            continue;
        }
        req.pop();
        let a = handle(q, &mut spares, &req);
        output.write_all(&[a])?;
        output.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        std::fs::create_dir_all(d.path().join("todo")).unwrap();
        std::fs::create_dir_all(d.path().join("intd")).unwrap();
        std::fs::create_dir_all(d.path().join("mess/5")).unwrap();
        std::fs::create_dir_all(d.path().join("pid")).unwrap();
        std::fs::write(q.todo(5), "").unwrap();
        std::fs::write(q.intd(5), "").unwrap();
        std::fs::write(q.mess(5), "").unwrap();
        let mut out = Vec::new();
        // A reader of the message (a delivery still running) keeps it.
        std::fs::write(q.mess(5), "message five").unwrap();
        let mut reader = std::fs::File::open(q.mess(5)).unwrap();
        let mess_ino = reader.metadata().unwrap().ino();
        serve(&q, &b"todo/5\0foop/5\0bad\0mess/../x\0"[..], &mut out, 0).unwrap();
        assert_eq!(out, b"++xx");
        assert!(!q.todo(5).exists() && !q.mess(5).exists() && !q.intd(5).exists());
        // The todo file became a spare, and a new file replaced the message
        // file, which did not become one.
        let spares: Vec<_> = super::super::spare::names(&super::super::spare::dir(&q)).collect();
        assert_eq!(spares.len(), 2);
        for sp in &spares {
            assert_eq!(std::fs::read(sp).unwrap(), b"");
            assert_ne!(std::fs::metadata(sp).unwrap().ino(), mess_ino);
        }
        let mut text = String::new();
        reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "message five");
    }

    #[test]
    fn a_long_request_gets_one_answer() {
        let d = tempfile::tempdir().unwrap();
        let q = Queue::new(d.path());
        std::fs::create_dir_all(d.path().join("pid")).unwrap();
        for len in [999, 1000, 1001, 100_000] {
            let mut input = vec![b'a'; len];
            input.extend_from_slice(b"\0bad\0");
            // Cut off at the end of input: no answer.
            input.extend_from_slice(&[b'b'; 5000]);
            let mut out = Vec::new();
            serve(&q, &input[..], &mut out, 0).unwrap();
            assert_eq!(out, b"xx", "{len}");
        }
    }
}
