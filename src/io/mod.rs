//! Byte I/O for the network programs: the connection on fd 0 and fd 1 (as
//! tcpserver hands it over), read and write timeouts, a bounded line reader,
//! and TLS on top of the same descriptors ([`tls`]).
//!
//! Never read fd 0 through `std::io::stdin()`: its hidden buffer would swallow
//! bytes that a TLS upgrade must see (or refuse).

pub mod tls;

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

/// Waits until `f` is readable (or writable) or the timeout passes.
fn wait_fd(f: &File, write: bool, timeout: Option<Duration>) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let Some(t) = timeout else { return Ok(()) };
    let ms = i32::try_from(t.as_millis()).unwrap_or(i32::MAX);
    let flags = if write {
        PollFlags::POLLOUT
    } else {
        PollFlags::POLLIN
    };
    loop {
        let mut fds = [PollFd::new(f.as_fd(), flags)];
        match poll(
            &mut fds,
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
        ) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::TimedOut, "timeout")),
            Ok(_) => return Ok(()),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// One direction of a connection: a descriptor with an optional timeout per
/// read or write. Reads and writes go straight to the descriptor (no hidden
/// buffer).
///
/// Once a write has failed (the timeout, or the peer gone), every later write
/// fails at once with the same kind of error: a reply still buffered, or a
/// last flush on the way out, must not wait out the timeout a second time
/// for a client that takes nothing (qmail's programs exit on the first
/// failed write).
pub struct FdStream {
    file: File,
    timeout: Option<Duration>,
    deadline: Option<Instant>,
    write_failed: Option<io::ErrorKind>,
}

impl FdStream {
    /// Wraps a descriptor.
    pub fn new(file: File, timeout: Option<Duration>) -> FdStream {
        FdStream {
            file,
            timeout,
            deadline: None,
            write_failed: None,
        }
    }
    /// Changes the timeout.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }
    /// A time no read or write waits past, whatever the timeout (a TLS
    /// handshake has one for all its reads, as the qmail TLS patch's).
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.deadline = deadline;
    }
    /// The wait for one read or write: the timeout, cut short by the deadline.
    fn wait(&self) -> Option<Duration> {
        match self.deadline {
            None => self.timeout,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                Some(self.timeout.map_or(left, |t| t.min(left)))
            }
        }
    }
    /// The raw descriptor.
    pub fn raw_fd(&self) -> i32 {
        self.file.as_raw_fd()
    }
}

impl Read for FdStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        wait_fd(&self.file, false, self.wait())?;
        loop {
            match self.file.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // A reset by the peer is a hang-up like any other.
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok(0),
                r => return r,
            }
        }
    }
}

impl Write for FdStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(kind) = self.write_failed {
            return Err(io::Error::new(kind, "an earlier write failed"));
        }
        let r = wait_fd(&self.file, true, self.wait()).and_then(|()| loop {
            match self.file.write(buf) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r,
            }
        });
        if let Err(e) = &r {
            if e.kind() != io::ErrorKind::WouldBlock {
                self.write_failed = Some(e.kind());
            }
        }
        r
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The two halves of a tcpserver connection (fd 0 in, fd 1 out) as one
/// `Read + Write` object, which is what TLS needs underneath.
pub struct Duplex {
    /// Reading side (fd 0).
    pub rd: FdStream,
    /// Writing side (fd 1).
    pub wr: FdStream,
}

impl Duplex {
    /// fd 0 and fd 1 of this process, with a timeout for each read and write.
    pub fn stdio(timeout: Option<Duration>) -> io::Result<Duplex> {
        let rd = crate::sys::inherit_file(0).ok_or_else(|| io::Error::other("fd 0 is not open"))?;
        let wr = crate::sys::inherit_file(1).ok_or_else(|| io::Error::other("fd 1 is not open"))?;
        Ok(Duplex {
            rd: FdStream::new(rd, timeout),
            wr: FdStream::new(wr, timeout),
        })
    }
    /// Changes both timeouts.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.rd.set_timeout(timeout);
        self.wr.set_timeout(timeout);
    }
    /// Sets (or clears) a deadline for both directions.
    pub fn set_deadline(&mut self, deadline: Option<Instant>) {
        self.rd.set_deadline(deadline);
        self.wr.set_deadline(deadline);
    }
    /// The timeout of one read.
    pub fn timeout(&self) -> Option<Duration> {
        self.rd.timeout
    }
}

impl Read for Duplex {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.rd.read(buf)
    }
}

impl Write for Duplex {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.wr.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.wr.flush()
    }
}

/// What [`LineReader::read_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A complete line, without its LF (a CR before the LF is kept: the caller
    /// decides what a bare LF means).
    Line(Vec<u8>),
    /// The line was longer than the limit; it has been read to its end and
    /// discarded.
    TooLong,
    /// End of input (a partial last line is dropped).
    Eof,
}

/// A bounded line reader over any `Read`, keeping its own buffer visible so a
/// protocol can see whether bytes were pipelined (before STARTTLS, say).
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
}

impl<R: Read> LineReader<R> {
    /// Wraps a reader.
    pub fn new(inner: R) -> LineReader<R> {
        LineReader {
            inner,
            buf: Vec::with_capacity(4096),
            start: 0,
        }
    }

    /// Bytes received but not yet consumed.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Drops whatever is buffered.
    pub fn discard_buffered(&mut self) {
        self.buf.clear();
        self.start = 0;
    }

    /// The wrapped reader.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The wrapped reader, by reference.
    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Unwraps (buffered bytes are lost; check [`LineReader::buffered`] first).
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn fill(&mut self) -> io::Result<usize> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        } else if self.start > 65536 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut tmp = [0u8; 8192];
        let n = self.inner.read(&mut tmp)?;
        self.buf.extend_from_slice(&tmp[..n]);
        Ok(n)
    }

    /// Reads up to `n` bytes (from the buffer first); `Ok(0)` at end of input.
    pub fn read_some(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buffered().is_empty() && self.fill()? == 0 {
            return Ok(0);
        }
        let avail = self.buffered();
        let n = avail.len().min(out.len());
        out[..n].copy_from_slice(&avail[..n]);
        self.start += n;
        Ok(n)
    }

    /// The buffered bytes, reading more first when there are none (empty at
    /// end of input). Use [`LineReader::consume`] to mark bytes as used; a
    /// protocol that switches from lines to a byte decoder (SMTP DATA) reads
    /// this way so bytes after the end of its part stay buffered.
    pub fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.buffered().is_empty() {
            self.fill()?;
        }
        Ok(self.buffered())
    }

    /// Marks `n` buffered bytes as used.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.buf.len());
    }

    /// Reads one line of any length and keeps its first `keep` bytes (LF
    /// excluded), as qmail keeps the start of a long reply line.
    pub fn read_line_cut(&mut self, keep: usize) -> io::Result<Line> {
        let mut kept: Option<Vec<u8>> = None;
        let mut scanned = 0;
        loop {
            let avail = &self.buf[self.start..];
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                let line = match kept {
                    Some(k) => k,
                    None => avail[..end.min(keep)].to_vec(),
                };
                self.start += end + 1;
                return Ok(Line::Line(line));
            }
            scanned = avail.len();
            if scanned > keep {
                // The start is kept; the rest of the line is read and dropped.
                if kept.is_none() {
                    kept = Some(avail[..keep].to_vec());
                }
                self.start = self.buf.len();
                scanned = 0;
            }
            if self.fill()? == 0 {
                return Ok(Line::Eof);
            }
        }
    }

    /// Reads one line of at most `limit` bytes (LF excluded).
    pub fn read_line(&mut self, limit: usize) -> io::Result<Line> {
        let mut too_long = false;
        let mut scanned = 0;
        loop {
            let avail = &self.buf[self.start..];
            if let Some(i) = avail[scanned..].iter().position(|&b| b == b'\n') {
                let end = scanned + i;
                let line = avail[..end].to_vec();
                self.start += end + 1;
                if too_long || line.len() > limit {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Line(line));
            }
            scanned = avail.len();
            if scanned > limit {
                // Keep reading to the end of the line, but do not keep the bytes.
                too_long = true;
                self.start = self.buf.len();
                scanned = 0;
            }
            if self.fill()? == 0 {
                return Ok(Line::Eof);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out its input in fixed-size chunks.
    struct Chunked<'a>(&'a [u8], usize);
    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn lines_in_every_chunking() {
        let input = b"HELO x\r\nMAIL FROM:<a@b>\r\n0123456789012345\r\nlast\npartial";
        for chunk in [1, 2, 3, 4, 7, 16, 512] {
            let mut r = LineReader::new(Chunked(input, chunk));
            assert_eq!(r.read_line(16).unwrap(), Line::Line(b"HELO x\r".to_vec()));
            assert_eq!(
                r.read_line(20).unwrap(),
                Line::Line(b"MAIL FROM:<a@b>\r".to_vec())
            );
            assert_eq!(r.read_line(10).unwrap(), Line::TooLong);
            assert_eq!(r.read_line(10).unwrap(), Line::Line(b"last".to_vec()));
            assert_eq!(r.read_line(10).unwrap(), Line::Eof);
        }
    }

    #[test]
    fn cut_lines_keep_their_start_in_every_chunking() {
        let input = b"550 0123456789abcdef\r\n250 ok\nshort\npartial";
        for chunk in [1, 2, 3, 5, 8, 512] {
            let mut r = LineReader::new(Chunked(input, chunk));
            assert_eq!(
                r.read_line_cut(8).unwrap(),
                Line::Line(b"550 0123".to_vec())
            );
            assert_eq!(r.read_line_cut(8).unwrap(), Line::Line(b"250 ok".to_vec()));
            assert_eq!(r.read_line_cut(5).unwrap(), Line::Line(b"short".to_vec()));
            assert_eq!(r.read_line_cut(5).unwrap(), Line::Eof);
        }
    }
}
