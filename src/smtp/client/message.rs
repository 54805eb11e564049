//! The message on fd 0 and its encoding for DATA (RFC 5321 section 4.5.2):
//! every LF becomes CRLF, a `.` at the start of a line is doubled, and the
//! message ends with `.` CRLF. qmail stores messages with LF line ends, so
//! this is qmail-remote's `blast()`, byte for byte.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};

/// The message to send, readable again from its start.
pub struct Message {
    src: Src,
    /// Size in bytes as stored.
    pub len: u64,
    /// Size as RFC 1870 counts it for SIZE=: every line end a CRLF, but
    /// neither the dots doubled at line starts nor the final `.` line.
    pub size: u64,
    /// True when a byte has the high bit set (BODY=8BITMIME).
    pub eightbit: bool,
    /// True when the last line has no final LF (qmail refuses to send it).
    pub partial: bool,
}

enum Src {
    File(File),
    Mem(Vec<u8>),
}

impl Message {
    /// The message in `f`; a file that cannot seek (a pipe) is read into
    /// memory.
    pub fn from_file(mut f: File) -> io::Result<Message> {
        if f.seek(SeekFrom::Start(0)).is_ok() {
            let mut m = Message::blank(Src::File(f));
            m.scan()?;
            Ok(m)
        } else {
            let mut v = Vec::new();
            f.read_to_end(&mut v)?;
            Ok(Message::from_bytes(v))
        }
    }

    /// A message held in memory.
    pub fn from_bytes(v: Vec<u8>) -> Message {
        let mut m = Message::blank(Src::Mem(v));
        // Reading memory cannot fail.
        let _ = m.scan();
        m
    }

    fn blank(src: Src) -> Message {
        Message {
            src,
            len: 0,
            size: 0,
            eightbit: false,
            partial: false,
        }
    }

    fn scan(&mut self) -> io::Result<()> {
        let (mut len, mut lines, mut eight) = (0u64, 0u64, false);
        let mut last = b'\n';
        let mut r = self.reader()?;
        let mut buf = vec![0u8; 65536];
        loop {
            let n = read_retry(&mut r, &mut buf)?;
            if n == 0 {
                break;
            }
            let chunk = &buf[..n];
            len += n as u64;
            eight |= chunk.iter().any(|&b| b >= 0x80);
            last = chunk[n - 1];
            lines += chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        drop(r);
        self.len = len;
        self.size = len + lines;
        self.eightbit = eight;
        self.partial = last != b'\n';
        Ok(())
    }

    /// A reader from the start of the message.
    pub fn reader(&mut self) -> io::Result<Box<dyn Read + '_>> {
        match &mut self.src {
            Src::File(f) => {
                f.seek(SeekFrom::Start(0))?;
                Ok(Box::new(&*f))
            }
            Src::Mem(v) => Ok(Box::new(&v[..])),
        }
    }
}

/// Reads, retrying on EINTR.
pub fn read_retry(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            x => return x,
        }
    }
}

/// The DATA encoder: feed the message in chunks of any size, then
/// [`DataEncoder::finish`].
#[derive(Debug, Clone)]
pub struct DataEncoder {
    at_line_start: bool,
}

impl Default for DataEncoder {
    fn default() -> Self {
        DataEncoder::new()
    }
}

impl DataEncoder {
    /// At the start of the message.
    pub fn new() -> DataEncoder {
        DataEncoder {
            at_line_start: true,
        }
    }

    /// Appends the wire form of `chunk` to `out`.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        out.reserve(chunk.len() + chunk.len() / 32 + 2);
        for &b in chunk {
            if self.at_line_start && b == b'.' {
                out.push(b'.');
            }
            if b == b'\n' {
                out.push(b'\r');
            }
            out.push(b);
            self.at_line_start = b == b'\n';
        }
    }

    /// Appends the end of data (a CRLF first if the last line was open).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if !self.at_line_start {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.at_line_start = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_in_chunks(input: &[u8], chunk: usize) -> Vec<u8> {
        let mut e = DataEncoder::new();
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            e.encode(c, &mut out);
        }
        e.finish(&mut out);
        out
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\n", b"a\r\n.\r\n"),
            (b".\n", b"..\r\n.\r\n"),
            (b"a\n.b\n..\n", b"a\r\n..b\r\n...\r\n.\r\n"),
            (b"x.y\n.\n", b"x.y\r\n..\r\n.\r\n"),
            // A CR stored in the message is sent as it is (qmail does the same).
            (b"a\r\nb\n", b"a\r\r\nb\r\n.\r\n"),
            (b"\n\n", b"\r\n\r\n.\r\n"),
        ];
        for (input, want) in cases {
            for chunk in [1, 2, 3, 4, 7, 16, 512] {
                assert_eq!(
                    encode_in_chunks(input, chunk),
                    *want,
                    "{:?} in chunks of {chunk}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }

    #[test]
    fn stats_from_memory_and_file() {
        let m = Message::from_bytes(b"Subject: x\n\n.dot\n\xe9t\xe9\n".to_vec());
        assert_eq!(m.len, 21);
        // Four LFs become CRLFs; the doubled dot and the final `.` line
        // are not counted (RFC 1870).
        assert_eq!(m.size, 21 + 4);
        assert!(m.eightbit);
        assert!(!m.partial);
        let m = Message::from_bytes(b"no newline".to_vec());
        assert!(m.partial);
        assert!(!m.eightbit);
        assert!(!Message::from_bytes(Vec::new()).partial);

        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m");
        std::fs::write(&p, b"a\n.b\n").unwrap();
        let mut m = Message::from_file(File::open(&p).unwrap()).unwrap();
        assert_eq!(m.size, 5 + 2);
        let mut s = Vec::new();
        m.reader().unwrap().read_to_end(&mut s).unwrap();
        m.reader().unwrap().read_to_end(&mut s).unwrap();
        assert_eq!(s, b"a\n.b\na\n.b\n");
    }
}
