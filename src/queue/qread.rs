//! qmail-qread and qmail-qstat: what is in the queue.
//!
//! qmail-qread prints, for each message (qmail's format):
//! `26 Sep 1995 04:46:54 GMT  #457  1234  <sender@example.com> ` (plus
//! ` bouncing` when a bounce is pending), then one line per recipient:
//! `\tlocal\taddr` / `\tremote\taddr`, prefixed by `  done` once finished.

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;

use super::Queue;

fn printable(s: &[u8]) -> String {
    s.iter()
        .map(|&b| {
            if (32..=126).contains(&b) {
                b as char
            } else {
                '_'
            }
        })
        .collect()
}

/// The listing's output: remembers a failed write, so that a listing cut
/// short by its reader (`mailq | head`) or a full disk is not reported as a
/// queue that cannot be read.
pub struct Output<W: Write> {
    inner: W,
    /// The first write error.
    failed: Option<io::Error>,
}

impl<W: Write> Output<W> {
    pub fn new(inner: W) -> Self {
        Output {
            inner,
            failed: None,
        }
    }

    /// How the program ends after `r`: `None` when all went well or the
    /// reader closed the pipe (nothing more to say), else the message and
    /// exit code 111.
    pub fn verdict(&mut self, prog: &str, r: io::Result<()>) -> Option<String> {
        let r = r.and_then(|()| self.flush());
        if let Some(e) = self.failed.take() {
            return (e.kind() != io::ErrorKind::BrokenPipe).then(|| {
                format!(
                    "{prog}: fatal: unable to write output: {}",
                    crate::deliver::errstr(&e)
                )
            });
        }
        r.err().map(|e| {
            format!(
                "{prog}: fatal: unable to read the queue: {}",
                crate::deliver::errstr(&e)
            )
        })
    }
}

fn copy_err(e: &io::Error) -> io::Error {
    e.raw_os_error().map_or_else(
        || io::Error::new(e.kind(), e.to_string()),
        io::Error::from_raw_os_error,
    )
}

impl<W: Write> Write for Output<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.inner.write(b).inspect_err(|e| {
            self.failed.get_or_insert_with(|| copy_err(e));
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|e| {
            self.failed.get_or_insert_with(|| copy_err(e));
        })
    }
}

/// Writes qmail-qread's listing; trouble with one message is reported on the
/// same stream as qmail-qread does (`warning: trouble with #N: ...`).
pub fn qread(q: &Queue, out: &mut impl Write) -> io::Result<()> {
    // As qmail-qread's chdir: no queue (a wrong QMAIL_HOME) is an error, not
    // an empty queue.
    std::fs::metadata(q.dir().join("info"))?;
    for id in q.list_split("info")? {
        let size = match std::fs::metadata(q.mess(id)) {
            Ok(m) => m.len(),
            Err(e) => {
                writeln!(
                    out,
                    "warning: trouble with #{id}: {}",
                    crate::deliver::errstr(&e)
                )?;
                continue;
            }
        };
        let bouncing = q.bounce(id).exists();
        let (info, qtime) = match std::fs::read(q.info(id))
            .and_then(|d| std::fs::metadata(q.info(id)).map(|m| (d, m.mtime())))
        {
            Ok(x) => x,
            Err(e) => {
                writeln!(
                    out,
                    "warning: trouble with #{id}: {}",
                    crate::deliver::errstr(&e)
                )?;
                continue;
            }
        };
        let sender = info.split(|&b| b == 0).next().unwrap_or(&[]);
        let sender = sender.strip_prefix(b"F").unwrap_or(sender);
        let date = crate::timefmt::qmail_date(qtime);
        let date = date.trim_end_matches(" -0000");
        writeln!(
            out,
            "{date} GMT  #{id}  {size}  <{}> {}",
            printable(sender),
            if bouncing { " bouncing" } else { "" }
        )?;
        for (c, name) in super::CHANNEL_DIRS.iter().enumerate() {
            let data = match std::fs::read(q.chan(c, id)) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    writeln!(
                        out,
                        "warning: trouble with #{id}: {}",
                        crate::deliver::errstr(&e)
                    )?;
                    continue;
                }
            };
            for rec in super::records(&data) {
                match rec.first() {
                    Some(b'D') => writeln!(out, "  done\t{name}\t{}", printable(&rec[1..]))?,
                    Some(b'T') => writeln!(out, "\t{name}\t{}", printable(&rec[1..]))?,
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

/// qmail-qstat's two lines.
pub fn qstat(q: &Queue, out: &mut impl Write) -> io::Result<()> {
    let total = q.list_split("mess")?.len();
    let todo = q.list_flat("todo")?.len();
    writeln!(out, "messages in queue: {total}")?;
    writeln!(out, "messages in queue but not yet preprocessed: {todo}")
}
