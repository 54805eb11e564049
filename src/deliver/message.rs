//! The message being delivered: fd 0 as a seekable file (qmail-lspawn hands
//! qmail-local the queue's `mess` file). A pipe on fd 0 (a test, a shell) is
//! first copied into an anonymous memory file, so every delivery can rewind.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};

/// A rewindable message.
pub struct Message {
    file: File,
}

impl Message {
    /// The message on fd 0. Errors are qmail's "Unable to read message".
    pub fn from_stdin() -> io::Result<Message> {
        let file =
            crate::sys::inherit_file(0).ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        Message::from_file(file)
    }

    /// A message from any file; copied to memory when it cannot seek.
    pub fn from_file(mut file: File) -> io::Result<Message> {
        if file.seek(SeekFrom::Start(0)).is_ok() {
            return Ok(Message { file });
        }
        let mut copy = memfile()?;
        io::copy(&mut file, &mut copy)?;
        copy.seek(SeekFrom::Start(0))?;
        Ok(Message { file: copy })
    }

    /// A message from bytes (tests).
    pub fn from_bytes(data: &[u8]) -> io::Result<Message> {
        let mut f = memfile()?;
        std::io::Write::write_all(&mut f, data)?;
        f.seek(SeekFrom::Start(0))?;
        Ok(Message { file: f })
    }

    /// Seeks back to the first byte and returns the file for reading.
    pub fn rewind(&mut self) -> io::Result<&mut File> {
        self.file.seek(SeekFrom::Start(0))?;
        Ok(&mut self.file)
    }

    /// The size in bytes.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// A descriptor for a child's stdin, positioned at the first byte.
    pub fn child_stdin(&mut self) -> io::Result<File> {
        self.rewind()?;
        self.file.try_clone()
    }

    /// Calls `f` with each header line (up to the first empty line), the
    /// trailing `\n` included. Stops early when `f` returns `true`, which
    /// is then the result. Lines are read with a bound; a longer line is
    /// passed cut at the bound (it can then match nothing we look for).
    /// With `crlf_ends`, a `\r\n` line also ends the header (qmail-local's
    /// loop check looks past it; vpopmail's does not).
    pub fn any_header_line(
        &mut self,
        crlf_ends: bool,
        mut f: impl FnMut(&[u8]) -> bool,
    ) -> io::Result<bool> {
        const BOUND: u64 = 64 * 1024;
        let file = self.rewind()?;
        let mut r = BufReader::new(file);
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = (&mut r).take(BOUND).read_until(b'\n', &mut line)?;
            if n == 0 || !line.ends_with(b"\n") && (n as u64) < BOUND {
                // End of message (an unterminated last line is not a header).
                return Ok(false);
            }
            if line == b"\n" || (crlf_ends && line == b"\r\n") {
                return Ok(false);
            }
            if f(&line) {
                return Ok(true);
            }
            if !line.ends_with(b"\n") {
                // Skip the rest of an over-long line.
                let mut sink = Vec::new();
                r.read_until(b'\n', &mut sink)?;
            }
        }
    }
}

/// An anonymous file in memory (memfd), closed on exec.
fn memfile() -> io::Result<File> {
    let fd =
        nix::sys::memfd::memfd_create(c"vqmail-message", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(io::Error::from)?;
    Ok(File::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_stop_at_blank() {
        let mut m = Message::from_bytes(b"A: 1\nB: 2\n\nC: 3\n").unwrap();
        let mut seen = Vec::new();
        m.any_header_line(true, |l| {
            seen.push(l.to_vec());
            false
        })
        .unwrap();
        assert_eq!(seen, vec![b"A: 1\n".to_vec(), b"B: 2\n".to_vec()]);
        assert!(m.any_header_line(true, |l| l == b"B: 2\n").unwrap());
        assert!(!m.any_header_line(true, |l| l == b"C: 3\n").unwrap());
        assert_eq!(m.size().unwrap(), 16);
    }
}
