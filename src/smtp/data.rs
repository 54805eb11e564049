//! The DATA decoder: SMTP dot-transparency as qmail-smtpd's `blast()` does it
//! (RFC 5321 4.5.2), one byte at a time, fed in arbitrary chunks.
//!
//! * Only `CRLF . CRLF` ends the message (the CRLF before the dot is the end of
//!   the last line; `354` counts as the start of a line).
//! * CRLF becomes LF; a leading dot is removed (`..x` → `.x`); a CR not followed
//!   by LF is kept.
//! * An LF not preceded by CR anywhere (SMTP smuggling: `\n.\r\n`, `\r\n.\n`,
//!   `\n.\n`) is [`Error::BareLf`]: qmail answers 451 and hangs up, so nothing
//!   after it can be taken for the end of this message or a second one.
//! * Stored bytes are counted; past the limit they are no longer kept, but
//!   decoding goes on to the final dot ([`Decoder::overflowed`]), so the reply
//!   (552) comes only after the whole message.
//! * Header lines starting `Received` or `Delivered-To` (case-insensitive) are
//!   counted as hops, NUL bytes are noted.

/// Why a message cannot be taken.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Error {
    /// An LF without CR before it.
    BareLf,
}

/// What [`Decoder::feed`] found in one chunk.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Progress {
    /// The whole chunk was used; more is needed.
    More,
    /// The final dot line ended after this many bytes of the chunk; the rest
    /// belongs to the next command (pipelining).
    End(usize),
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    /// Inside a line.
    Mid,
    /// At the start of a line (after CRLF).
    Bol,
    /// After CRLF and a dot.
    Dot,
    /// After CRLF, a dot and CR.
    DotCr,
    /// After a CR inside a line.
    Cr,
}

/// The decoder of one message.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    limit: u64,
    stored: u64,
    overflow: bool,
    in_header: bool,
    pos: usize,
    maybe_received: bool,
    maybe_delivered: bool,
    maybe_blank: bool,
    hops: u32,
    nul: bool,
}

impl Decoder {
    /// A decoder keeping at most `limit` bytes (0 = no limit).
    pub fn new(limit: u64) -> Decoder {
        Decoder {
            state: State::Bol,
            limit,
            stored: 0,
            overflow: false,
            in_header: true,
            pos: 0,
            maybe_received: true,
            maybe_delivered: true,
            maybe_blank: true,
            hops: 0,
            nul: false,
        }
    }

    /// Bytes stored so far (after CRLF → LF and dot removal).
    pub fn stored(&self) -> u64 {
        self.stored
    }
    /// True when the message went past the limit (its bytes are no longer kept).
    pub fn overflowed(&self) -> bool {
        self.overflow
    }
    /// `Received`/`Delivered-To` header lines seen.
    pub fn hops(&self) -> u32 {
        self.hops
    }
    /// True when the message held a NUL byte.
    pub fn saw_nul(&self) -> bool {
        self.nul
    }

    fn put(&mut self, out: &mut Vec<u8>, b: u8) {
        if self.overflow {
            return;
        }
        if self.limit > 0 && self.stored >= self.limit {
            self.overflow = true;
            return;
        }
        self.stored += 1;
        out.push(b);
    }

    fn header(&mut self, ch: u8) {
        if !self.in_header {
            return;
        }
        const REC: &[u8] = b"received";
        const DEL: &[u8] = b"delivered";
        const BLANK: &[u8] = b"\r\n";
        let p = self.pos;
        if p < DEL.len() {
            let l = ch.to_ascii_lowercase();
            if self.maybe_delivered && l != DEL[p] {
                self.maybe_delivered = false;
            }
            if self.maybe_delivered && p == DEL.len() - 1 {
                self.hops += 1;
            }
            if p < REC.len() {
                if self.maybe_received && l != REC[p] {
                    self.maybe_received = false;
                }
                if self.maybe_received && p == REC.len() - 1 {
                    self.hops += 1;
                }
            }
            if p < BLANK.len() {
                if self.maybe_blank && ch != BLANK[p] {
                    self.maybe_blank = false;
                }
                if self.maybe_blank && p == BLANK.len() - 1 {
                    self.in_header = false;
                }
            }
            self.pos += 1;
        }
        if ch == b'\n' {
            self.pos = 0;
            self.maybe_received = true;
            self.maybe_delivered = true;
            self.maybe_blank = true;
        }
    }

    /// Decodes one chunk, appending stored bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress, Error> {
        for (i, &ch) in input.iter().enumerate() {
            self.header(ch);
            if ch == 0 {
                self.nul = true;
            }
            match self.state {
                State::Mid => {
                    if ch == b'\n' {
                        return Err(Error::BareLf);
                    }
                    if ch == b'\r' {
                        self.state = State::Cr;
                        continue;
                    }
                }
                State::Bol => {
                    if ch == b'\n' {
                        return Err(Error::BareLf);
                    }
                    if ch == b'.' {
                        self.state = State::Dot;
                        continue;
                    }
                    if ch == b'\r' {
                        self.state = State::Cr;
                        continue;
                    }
                    self.state = State::Mid;
                }
                State::Dot => {
                    if ch == b'\n' {
                        return Err(Error::BareLf);
                    }
                    if ch == b'\r' {
                        self.state = State::DotCr;
                        continue;
                    }
                    self.state = State::Mid;
                }
                State::DotCr => {
                    if ch == b'\n' {
                        return Ok(Progress::End(i + 1));
                    }
                    self.put(out, b'.');
                    self.put(out, b'\r');
                    if ch == b'\r' {
                        self.state = State::Cr;
                        continue;
                    }
                    self.state = State::Mid;
                }
                State::Cr => {
                    if ch == b'\n' {
                        self.state = State::Bol;
                    } else if ch != b'\r' {
                        self.put(out, b'\r');
                        self.state = State::Mid;
                    } else {
                        // CR CR: the first one is kept, the second may start CRLF.
                        self.put(out, b'\r');
                        continue;
                    }
                }
            }
            self.put(out, ch);
        }
        Ok(Progress::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a whole input through the decoder in chunks of `n` bytes.
    fn run(input: &[u8], limit: u64, n: usize) -> (Result<Option<usize>, Error>, Vec<u8>, Decoder) {
        let mut d = Decoder::new(limit);
        let mut out = Vec::new();
        let mut off = 0;
        for chunk in input.chunks(n) {
            match d.feed(chunk, &mut out) {
                Ok(Progress::More) => off += chunk.len(),
                Ok(Progress::End(k)) => return (Ok(Some(off + k)), out, d),
                Err(e) => return (Err(e), out, d),
            }
        }
        (Ok(None), out, d)
    }

    const CHUNKS: [usize; 11] = [1, 2, 3, 4, 5, 7, 8, 16, 64, 256, 512];

    /// (input, expected: Ok(Some(end offset)) / Ok(None) = needs more / Err, stored bytes)
    #[allow(clippy::type_complexity)]
    const TABLE: &[(&[u8], Result<Option<usize>, Error>, &[u8])] = &[
        (b".\r\n", Ok(Some(3)), b""),
        (b"a\r\n.\r\n", Ok(Some(6)), b"a\n"),
        (b"a\r\n.\r\nMAIL", Ok(Some(6)), b"a\n"),
        (b"..x\r\n.\r\n", Ok(Some(8)), b".x\n"),
        (b".x\r\n.\r\n", Ok(Some(7)), b"x\n"),
        (b"a\rb\r\n.\r\n", Ok(Some(8)), b"a\rb\n"),
        (b"a\r\r\n.\r\n", Ok(Some(7)), b"a\r\n"),
        (b"a\r\n.\rb\r\n.\r\n", Ok(Some(11)), b"a\n.\rb\n"),
        (b"a\r\n.\r\r\n.\r\n", Ok(Some(10)), b"a\n.\r\n"),
        (b"a\r\n. \r\n.\r\n", Ok(Some(10)), b"a\n \n"),
        // Smuggling: none of these end the message or start another one.
        (b"a\n.\r\nMAIL FROM:<x>\r\n", Err(Error::BareLf), b"a"),
        (b"a\r\n.\nMAIL FROM:<x>\r\n", Err(Error::BareLf), b"a\n"),
        (b"a\n.\nMAIL FROM:<x>\r\n", Err(Error::BareLf), b"a"),
        (
            b"a\r.\rMAIL FROM:<x>\r\n",
            Ok(None),
            b"a\r.\rMAIL FROM:<x>\n",
        ),
        (b"a\r.\r\nb\r\n", Ok(None), b"a\r.\nb\n"),
        (b"\n", Err(Error::BareLf), b""),
        (b"a\r\n\n", Err(Error::BareLf), b"a\n"),
        (b"a\r\n.", Ok(None), b"a\n"),
        (b"a\r\n.\r", Ok(None), b"a\n"),
        (b"a\x00b\r\n.\r\n", Ok(Some(8)), b"a\x00b\n"),
    ];

    #[test]
    fn table_in_every_chunking() {
        for (input, want, stored) in TABLE {
            for n in CHUNKS {
                let (got, out, _) = run(input, 0, n);
                assert_eq!(&got, want, "input {:?} chunk {n}", input);
                assert_eq!(&out[..], *stored, "input {:?} chunk {n}", input);
            }
        }
    }

    #[test]
    fn limit_reads_to_the_end() {
        let mut msg = vec![b'x'; 30];
        msg.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        for n in CHUNKS {
            // 31 stored bytes (30 + LF) against limits of 31 and 30.
            let (r, out, d) = run(&msg, 31, n);
            assert_eq!(r, Ok(Some(35)));
            assert!(!d.overflowed());
            assert_eq!(out.len(), 31);
            let (r, out, d) = run(&msg, 30, n);
            assert_eq!(r, Ok(Some(35)), "the final dot is still found");
            assert!(d.overflowed());
            assert_eq!(out.len(), 30);
        }
    }

    #[test]
    fn hops_and_nul() {
        let mut msg = Vec::new();
        msg.extend_from_slice(b"Received: a\r\nDELIVERED-TO: b\r\nreceivedx\r\nX: y\r\n");
        msg.extend_from_slice(b"\r\nReceived: in body\r\n.\r\n");
        for n in CHUNKS {
            let (r, _, d) = run(&msg, 0, n);
            assert!(matches!(r, Ok(Some(_))));
            assert_eq!(d.hops(), 3);
            assert!(!d.saw_nul());
        }
        let (_, _, d) = run(b"a\x00\r\n.\r\n", 0, 1);
        assert!(d.saw_nul());
    }

    /// Random inputs over the bytes that matter: every chunking decodes like
    /// the whole input, and the end is only ever right after CR LF . CR LF.
    #[test]
    fn random_inputs_agree_in_every_chunking() {
        let alphabet = b"\r\n.a\0";
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..3000 {
            let len = (next() % 40) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let whole = run(&input, 8, input.len().max(1));
            if let (Ok(Some(end)), _, _) = &whole {
                let mut framed = b"\r\n".to_vec();
                framed.extend_from_slice(&input[..*end]);
                assert!(framed.ends_with(b"\r\n.\r\n"), "{input:?}");
            }
            for n in [1, 2, 3, 5] {
                let part = run(&input, 8, n);
                assert_eq!(part.0, whole.0, "{input:?} chunk {n}");
                assert_eq!(part.1, whole.1, "{input:?} chunk {n}");
                assert_eq!(part.2.overflowed(), whole.2.overflowed());
            }
        }
    }
}
