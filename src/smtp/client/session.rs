//! One SMTP client session over any byte stream (RFC 5321, RFC 1869 EHLO,
//! RFC 2920 PIPELINING, RFC 1870 SIZE, RFC 6152 8BITMIME), with qmail-remote's
//! outcomes and texts.
//!
//! The caller connects, upgrades to TLS and picks the stream; this module only
//! speaks: greeting, EHLO (HELO when EHLO is refused), then one transaction
//! (MAIL, RCPT for each recipient, DATA, the message, QUIT without waiting).
//! Every reply's complete text is kept for the report, and failures carry a
//! transcript: `while talking to HOST[IP]:`, `>>> command`, `<<< reply`.

use std::fmt::Write as _;
use std::io::{self, Read, Write};

use super::message::{read_retry, DataEncoder, Message};
use super::report::{text, Letter, Rcpt, Report};
use crate::io::{Line, LineReader};

/// How much of one reply line is kept (the rest is read and dropped: a long
/// line's code still counts, as in qmail).
const LINE_MAX: usize = 4096;
/// How much reply text is kept for `Remote host said:`.
const TEXT_MAX: usize = 5000;
/// How much of the reply the transcript repeats.
const TRANSCRIPT_MAX: usize = 1000;
/// The most lines one reply may have.
const REPLY_LINES_MAX: usize = 1000;

/// One reply: its code and its lines (CR removed, NUL as `?`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code of the first line; 421 when the peer sent no code.
    pub code: u16,
    /// The lines as received.
    pub lines: Vec<String>,
}

impl Reply {
    /// True for a 2xx reply.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }
    /// `Remote host said: ...` with every line, as qmail prints it.
    pub fn said(&self) -> String {
        let mut s = String::from("Remote host said: ");
        for l in &self.lines {
            s.push_str(l);
            s.push('\n');
        }
        s
    }
}

/// What the server offered in its EHLO reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// EHLO was accepted (else HELO was used).
    pub esmtp: bool,
    /// STARTTLS offered.
    pub starttls: bool,
    /// PIPELINING offered.
    pub pipelining: bool,
    /// 8BITMIME offered.
    pub eightbitmime: bool,
    /// SIZE offered, with its limit (0 = none given).
    pub size: Option<u64>,
}

impl Extensions {
    fn parse(r: &Reply) -> Extensions {
        let mut e = Extensions {
            esmtp: true,
            ..Default::default()
        };
        for l in r.lines.iter().skip(1) {
            let kw = l.get(4..).unwrap_or("").trim();
            let mut w = kw.split_whitespace();
            match w.next().map(str::to_ascii_uppercase).as_deref() {
                Some("STARTTLS") => e.starttls = true,
                Some("PIPELINING") => e.pipelining = true,
                Some("8BITMIME") => e.eightbitmime = true,
                Some("SIZE") => e.size = Some(w.next().and_then(|n| n.parse().ok()).unwrap_or(0)),
                _ => {}
            }
        }
        e
    }
}

/// The connection broke (EOF, timeout, I/O or TLS error, garbage).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Died {
    /// A detail for the report (the TLS error, say), or empty.
    pub detail: String,
    /// The peer ended the connection (it closed or reset it, or sent a TLS
    /// alert), as opposed to a timeout or a limit of ours.
    pub ended: bool,
}

impl From<io::Error> for Died {
    fn from(e: io::Error) -> Died {
        // rustls reports its alerts and protocol errors as InvalidData; those
        // are worth printing (as the TLS patch appends the SSL error).
        let detail = if e.kind() == io::ErrorKind::InvalidData {
            format!("{e}; ")
        } else {
            String::new()
        };
        use io::ErrorKind as K;
        Died {
            ended: matches!(
                e.kind(),
                K::InvalidData
                    | K::ConnectionReset
                    | K::ConnectionAborted
                    | K::UnexpectedEof
                    | K::BrokenPipe
            ),
            detail,
        }
    }
}

/// Whether an address holds a CR or LF, which no SMTP command can carry.
pub fn has_line_break(addr: &[u8]) -> bool {
    addr.iter().any(|&b| b == b'\r' || b == b'\n')
}

/// A stream whose reads fail once a deadline has passed: a reply's time is
/// bounded inside a line too (a peer dripping one byte a second never lets a
/// single read time out).
struct Timed<S> {
    inner: S,
    deadline: Option<std::time::Instant>,
}

impl<S: Read> Read for Timed<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.deadline.is_some_and(|d| std::time::Instant::now() > d) {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "reply too slow"));
        }
        self.inner.read(buf)
    }
}

impl<S: Write> Write for Timed<S> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.inner.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A session on a connected stream.
pub struct Session<S> {
    rd: LineReader<Timed<S>>,
    /// `host[ip]` for transcripts.
    peer: String,
    /// The IP as qmail prints it in its texts.
    ip: String,
    /// How long one whole reply may take (each read has its own timeout as
    /// well): a peer that drips a reply, or sends continuation lines without
    /// end, must not hold a delivery forever.
    reply_time: std::time::Duration,
}

impl<S: Read + Write> Session<S> {
    /// A session with the peer `name` at `ip`.
    pub fn new(stream: S, name: &str, ip: &str) -> Session<S> {
        Session {
            rd: LineReader::new(Timed {
                inner: stream,
                deadline: None,
            }),
            peer: if super::route::literal(name).is_some() {
                format!("[{ip}]")
            } else {
                format!("{name}[{ip}]")
            },
            ip: ip.to_string(),
            reply_time: std::time::Duration::from_secs(1200),
        }
    }

    /// Sets how long one whole reply may take (`timeoutremote`).
    pub fn set_reply_time(&mut self, d: std::time::Duration) {
        self.reply_time = d;
    }

    /// Bytes received but not yet read (must be none after the 220 to STARTTLS).
    pub fn buffered(&self) -> usize {
        self.rd.buffered().len()
    }

    /// The stream, for a TLS upgrade.
    pub fn into_inner(self) -> S {
        self.rd.into_inner().inner
    }

    /// The stream, by reference.
    pub fn get_ref(&self) -> &S {
        &self.rd.get_ref().inner
    }

    /// Writes one command line (CRLF added).
    pub fn send(&mut self, cmd: impl AsRef<[u8]>) -> Result<(), Died> {
        let cmd = cmd.as_ref();
        let mut b = Vec::with_capacity(cmd.len() + 2);
        b.extend_from_slice(cmd);
        b.extend_from_slice(b"\r\n");
        self.send_raw(&b)
    }

    fn send_raw(&mut self, b: &[u8]) -> Result<(), Died> {
        let w = self.rd.get_mut();
        w.write_all(b)?;
        w.flush()?;
        Ok(())
    }

    /// Reads one complete (possibly multi-line) reply.
    pub fn reply(&mut self) -> Result<Reply, Died> {
        let mut lines = Vec::new();
        let mut kept = 0;
        let mut code = None;
        let deadline = std::time::Instant::now() + self.reply_time;
        self.rd.get_mut().deadline = Some(deadline);
        let mut n = 0;
        loop {
            if n >= REPLY_LINES_MAX {
                return Err(Died {
                    detail: "reply too long; ".into(),
                    ..Default::default()
                });
            }
            n += 1;
            let l = match self.rd.read_line_cut(LINE_MAX) {
                Err(e)
                    if e.kind() == io::ErrorKind::TimedOut
                        && std::time::Instant::now() > deadline =>
                {
                    return Err(Died {
                        detail: "reply too slow; ".into(),
                        ..Default::default()
                    })
                }
                r => r?,
            };
            let l = match l {
                Line::Line(l) => l,
                Line::Eof => {
                    return Err(Died {
                        ended: true,
                        ..Default::default()
                    })
                }
                // (read_line_cut keeps the start of any line instead)
                Line::TooLong => Vec::new(),
            };
            let l = l.strip_suffix(b"\r").unwrap_or(&l);
            // As qmail-remote: every CR goes (a bare one in a reply must not
            // reach a bounce), and NUL becomes `?`.
            let s: String = String::from_utf8_lossy(l)
                .replace('\r', "")
                .replace('\0', "?");
            if code.is_none() {
                code = Some(match l.get(..3) {
                    Some(d) if d.iter().all(u8::is_ascii_digit) => {
                        u16::from(d[0] - b'0') * 100
                            + u16::from(d[1] - b'0') * 10
                            + u16::from(d[2] - b'0')
                    }
                    _ => 421,
                });
            }
            let more = l.get(3) == Some(&b'-');
            if kept < TEXT_MAX {
                kept += s.len() + 1;
                lines.push(s);
            }
            if !more {
                return Ok(Reply {
                    code: code.unwrap_or(421),
                    lines,
                });
            }
        }
    }

    /// `while talking to HOST[IP]:` + the command + the reply.
    pub fn transcript(&self, cmds: &[&[u8]], reply: &Reply) -> String {
        let mut t = format!("while talking to {}:\n", self.peer);
        for c in cmds {
            let _ = writeln!(t, ">>> {}", String::from_utf8_lossy(c));
        }
        // The reply is already complete in `Remote host said:`; the
        // transcript repeats its start, so that a report stays well within
        // what qmail-rspawn reads (10000 bytes).
        let mut n = 0;
        for l in &reply.lines {
            if n >= TRANSCRIPT_MAX {
                t.push_str("<<< ...\n");
                break;
            }
            n += l.len();
            let _ = writeln!(t, "<<< {l}");
        }
        t
    }

    /// Reads the greeting; `Err(report)` unless it is 220.
    pub fn greeting(&mut self) -> Result<Result<(), Report>, Died> {
        let r = self.reply()?;
        if r.code == 220 {
            return Ok(Ok(()));
        }
        // Temporary whatever the code, as qmail's: the server may be busy.
        let _ = self.send("QUIT");
        Ok(Err(Report::msg(
            Letter::Temporary,
            format!(
                "Connected to {} but greeting failed.\n{}{}",
                self.ip,
                r.said(),
                self.transcript(&[], &r)
            ),
        )))
    }

    /// EHLO, then HELO if EHLO is refused; `Err(report)` when both are.
    pub fn hello(&mut self, helohost: &str) -> Result<Result<Extensions, Report>, Died> {
        let ehlo = format!("EHLO {helohost}");
        self.send(&ehlo)?;
        let ehlo_r = self.reply()?;
        if ehlo_r.code == 250 {
            return Ok(Ok(Extensions::parse(&ehlo_r)));
        }
        let helo = format!("HELO {helohost}");
        let r = match self.send(&helo).and_then(|()| self.reply()) {
            Ok(r) => r,
            // Refused EHLO, then gone (a 421 and a close): that answer is
            // what the report gives (and no plaintext retry follows a TLS
            // session that got this far).
            Err(_) => {
                return Ok(Err(Report::msg(
                    Letter::Temporary,
                    format!(
                        "Connected to {} but my name was rejected.\n{}{}",
                        self.ip,
                        ehlo_r.said(),
                        self.transcript(&[ehlo.as_bytes()], &ehlo_r)
                    ),
                )))
            }
        };
        if r.code == 250 {
            return Ok(Ok(Extensions::default()));
        }
        let _ = self.send("QUIT");
        Ok(Err(Report::msg(
            Letter::Temporary,
            format!(
                "Connected to {} but my name was rejected.\n{}{}{}",
                self.ip,
                r.said(),
                // EHLO's refusal first: it often says more (a block list).
                self.transcript(&[ehlo.as_bytes()], &ehlo_r),
                self.transcript(&[helo.as_bytes()], &r)
            ),
        )))
    }

    /// STARTTLS: `Ok(true)` for 220 (the caller checks [`Session::buffered`]
    /// and upgrades), `Ok(false)` with the reply when refused.
    pub fn starttls(&mut self) -> Result<Result<(), Reply>, Died> {
        self.send("STARTTLS")?;
        let r = self.reply()?;
        Ok(if r.code == 220 { Ok(()) } else { Err(r) })
    }

    /// One mail transaction and QUIT. `note` (how the session was secured) is
    /// appended to the message report.
    pub fn transaction(
        &mut self,
        ext: &Extensions,
        sender: &[u8],
        recips: &[Vec<u8>],
        msg: &mut Message,
        note: &str,
    ) -> Report {
        let mut rep = match self.transaction_inner(ext, sender, recips, msg) {
            Ok(r) => r,
            Err((recips, critical, d)) => Report {
                recips,
                letter: Letter::Temporary,
                text: text::died(&self.ip, critical, &d.detail),
            },
        };
        rep.text.push_str(note);
        rep
    }

    #[allow(clippy::type_complexity)]
    fn transaction_inner(
        &mut self,
        ext: &Extensions,
        sender: &[u8],
        recips: &[Vec<u8>],
        msg: &mut Message,
    ) -> Result<Report, (Vec<Rcpt>, bool, Died)> {
        let command = |verb: &str, addr: &[u8]| {
            let mut c = verb.as_bytes().to_vec();
            c.push(b'<');
            c.extend_from_slice(&crate::smtp::addr::quote2(addr));
            c.push(b'>');
            c
        };
        let mut mail = command("MAIL FROM:", sender);
        if ext.size.is_some() {
            mail.extend_from_slice(format!(" SIZE={}", msg.size).as_bytes());
        }
        if ext.eightbitmime && msg.eightbit {
            mail.extend_from_slice(b" BODY=8BITMIME");
        }
        let rcpts: Vec<Vec<u8>> = recips.iter().map(|r| command("RCPT TO:", r)).collect();
        let mut out = Vec::new();
        let dead = |d: Died| (Vec::new(), false, d);

        // With PIPELINING, MAIL, every RCPT and DATA go in one write.
        if ext.pipelining {
            let mut batch = Vec::new();
            for c in std::iter::once(&mail).chain(rcpts.iter()) {
                batch.extend_from_slice(c);
                batch.extend_from_slice(b"\r\n");
            }
            batch.extend_from_slice(b"DATA\r\n");
            self.send_raw(&batch).map_err(dead)?;
        } else {
            self.send(&mail).map_err(dead)?;
        }
        let r = self.reply().map_err(dead)?;
        if !r.ok() {
            if ext.pipelining {
                self.drain_pipelined(rcpts.len() + 1);
            }
            return Ok(self.quit(
                Letter::for_code(r.code),
                format!("Connected to {} but sender was rejected.\n", self.ip),
                &[&mail],
                &r,
            ));
        }
        let mut any = false;
        for cmd in &rcpts {
            if !ext.pipelining {
                if let Err(d) = self.send(cmd) {
                    return Err((out, false, d));
                }
            }
            let r = match self.reply() {
                Ok(r) => r,
                Err(d) => return Err((out, false, d)),
            };
            if r.ok() {
                any = true;
                out.push(Rcpt::Accepted);
            } else {
                let t = format!(
                    "{} does not like recipient.\n{}{}",
                    self.ip,
                    r.said(),
                    self.transcript(&[cmd], &r)
                );
                out.push(if r.code >= 500 {
                    Rcpt::Perm(t)
                } else {
                    Rcpt::Temp(t)
                });
            }
        }
        if !any {
            if ext.pipelining {
                self.drain_pipelined(1);
            }
            let _ = self.send("QUIT");
            return Ok(Report {
                recips: out,
                letter: Letter::Permanent,
                text: format!("Giving up on {}.\n", self.ip),
            });
        }
        if !ext.pipelining {
            if let Err(d) = self.send("DATA") {
                return Err((out, false, d));
            }
        }
        let r = match self.reply() {
            Ok(r) => r,
            Err(d) => return Err((out, false, d)),
        };
        if r.code != 354 {
            let mut rep = self.quit(
                if r.code >= 500 {
                    Letter::Permanent
                } else {
                    Letter::Temporary
                },
                format!("{} failed on DATA command.\n", self.ip),
                &[b"DATA"],
                &r,
            );
            rep.recips = out;
            return Ok(rep);
        }
        if let Err(d) = self.blast(msg) {
            return Err((out, false, d));
        }
        let r = match self.reply() {
            Ok(r) => r,
            Err(d) => return Err((out, true, d)),
        };
        let body = format!("[message, {} bytes]", msg.size);
        let mut rep = if r.ok() {
            let _ = self.send("QUIT");
            Report::msg(
                Letter::Success,
                format!("{} accepted message.\n{}", self.ip, r.said()),
            )
        } else {
            self.quit(
                Letter::for_code(r.code),
                format!("{} failed after I sent the message.\n", self.ip),
                &[body.as_bytes(), b"."],
                &r,
            )
        };
        rep.recips = out;
        Ok(rep)
    }

    /// After a pipelined batch that will not be used: reads the `n` replies
    /// still owed (the last one DATA's), and if the server took DATA anyway
    /// (354), ends the empty message with a lone dot and reads that reply
    /// too, as RFC 2920 section 3.1 asks. Failures here change nothing.
    fn drain_pipelined(&mut self, n: usize) {
        let mut last = None;
        for _ in 0..n {
            match self.reply() {
                Ok(r) => last = Some(r.code),
                Err(_) => return,
            }
        }
        if last == Some(354) && self.send(".").is_ok() {
            let _ = self.reply();
        }
    }

    /// Sends the message (dot-stuffed, CRLF, final dot).
    fn blast(&mut self, msg: &mut Message) -> Result<(), Died> {
        let mut enc = DataEncoder::new();
        let mut buf = vec![0u8; 65536];
        let mut out = Vec::with_capacity(70000);
        let mut r = msg.reader().map_err(|e| Died {
            detail: format!("unable to read message: {}; ", crate::deliver::errstr(&e)),
            ..Default::default()
        })?;
        loop {
            let n = read_retry(&mut r, &mut buf).map_err(|e| Died {
                detail: format!("unable to read message: {}; ", crate::deliver::errstr(&e)),
                ..Default::default()
            })?;
            if n == 0 {
                break;
            }
            out.clear();
            enc.encode(&buf[..n], &mut out);
            let w = self.rd.get_mut();
            w.write_all(&out)?;
        }
        drop(r);
        out.clear();
        enc.finish(&mut out);
        self.send_raw(&out)
    }

    /// QUIT without waiting, and a report: `head` + `Remote host said:` +
    /// the transcript.
    fn quit(&mut self, letter: Letter, head: String, cmds: &[&[u8]], r: &Reply) -> Report {
        let _ = self.send("QUIT");
        Report::msg(
            letter,
            format!("{head}{}{}", r.said(), self.transcript(cmds, r)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A peer that answers from a script, whatever is written, and records
    /// what the client wrote.
    struct Peer {
        input: Vec<u8>,
        pos: usize,
        chunk: usize,
        written: Vec<u8>,
    }

    impl Read for Peer {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = (self.input.len() - self.pos).min(self.chunk).min(buf.len());
            buf[..n].copy_from_slice(&self.input[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }
    impl Write for Peer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_reply_has_bounds_in_lines_and_time() {
        let peer = |input: Vec<u8>| Peer {
            input,
            pos: 0,
            chunk: 4096,
            written: Vec::new(),
        };
        // Continuation lines without end.
        let endless = b"250-more\r\n".repeat(REPLY_LINES_MAX + 10);
        let mut s = Session::new(peer(endless), "mx", "192.0.2.7");
        assert_eq!(s.reply().unwrap_err().detail, "reply too long; ");
        // A reply that takes longer than its time (here none at all).
        let mut s = Session::new(peer(b"250-a\r\n250 b\r\n".to_vec()), "mx", "192.0.2.7");
        s.set_reply_time(std::time::Duration::ZERO);
        assert_eq!(s.reply().unwrap_err().detail, "reply too slow; ");
        // A peer that drips one line byte by byte is cut off inside it.
        struct Drip(Vec<u8>, usize);
        impl Read for Drip {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_millis(2));
                if self.1 >= self.0.len() || buf.is_empty() {
                    return Ok(0);
                }
                buf[0] = self.0[self.1];
                self.1 += 1;
                Ok(1)
            }
        }
        impl Write for Drip {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut line = b"250 ".to_vec();
        line.extend_from_slice(&[b'x'; 200]);
        line.extend_from_slice(b"\r\n");
        let mut s = Session::new(Drip(line, 0), "mx", "192.0.2.7");
        s.set_reply_time(std::time::Duration::from_millis(50));
        assert_eq!(s.reply().unwrap_err().detail, "reply too slow; ");
        // In time, a many-line reply is read whole.
        let mut ok = b"250-x\r\n".repeat(REPLY_LINES_MAX - 1);
        ok.extend_from_slice(b"250 done\r\n");
        let mut s = Session::new(peer(ok), "mx", "192.0.2.7");
        assert_eq!(s.reply().unwrap().code, 250);
    }

    fn run(script: &str, recips: &[&str], chunk: usize) -> (Report, String) {
        let peer = Peer {
            input: script.as_bytes().to_vec(),
            pos: 0,
            chunk,
            written: Vec::new(),
        };
        let mut s = Session::new(peer, "mx.example.net", "192.0.2.7");
        let mut msg = Message::from_bytes(b"Subject: t\n\n.hi\n".to_vec());
        let recips: Vec<Vec<u8>> = recips.iter().map(|s| s.as_bytes().to_vec()).collect();
        let rep = (|| -> Result<Report, Died> {
            if let Err(r) = s.greeting()? {
                return Ok(r);
            }
            let ext = match s.hello("me.example")? {
                Ok(e) => e,
                Err(r) => return Ok(r),
            };
            Ok(s.transaction(&ext, b"a@b", &recips, &mut msg, ""))
        })()
        .unwrap_or_else(|d| Report::temp(text::died("192.0.2.7", false, &d.detail)));
        let w = String::from_utf8(s.into_inner().written).unwrap();
        (rep, w)
    }

    #[test]
    fn plain_delivery_with_helo_fallback() {
        for chunk in [1, 2, 3, 5, 16, 512] {
            let (rep, w) = run(
                "220 hi\r\n500 what\r\n250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok 123 qp 4\r\n",
                &["u@example.net"],
                chunk,
            );
            assert_eq!(
                w,
                "EHLO me.example\r\nHELO me.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<u@example.net>\r\nDATA\r\nSubject: t\r\n\r\n..hi\r\n.\r\nQUIT\r\n"
            );
            assert_eq!(
                rep.to_bytes(),
                b"r\0K192.0.2.7 accepted message.\nRemote host said: 250 ok 123 qp 4\n\0"
            );
        }
    }

    #[test]
    fn pipelined_with_size_and_a_rejected_recipient() {
        let (rep, w) = run(
            "220 hi\r\n250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250 8BITMIME\r\n250 ok\r\n550-5.1.1 User unknown\r\n550 5.1.1 see you\r\n250 ok\r\n354 go\r\n250 ok\r\n",
            &["x@example.net", "u@example.net"],
            512,
        );
        assert_eq!(
            w,
            "EHLO me.example\r\nMAIL FROM:<a@b> SIZE=19\r\nRCPT TO:<x@example.net>\r\nRCPT TO:<u@example.net>\r\nDATA\r\nSubject: t\r\n\r\n..hi\r\n.\r\nQUIT\r\n"
        );
        assert_eq!(
            rep.recips[0],
            Rcpt::Perm(
                "192.0.2.7 does not like recipient.\nRemote host said: 550-5.1.1 User unknown\n550 5.1.1 see you\nwhile talking to mx.example.net[192.0.2.7]:\n>>> RCPT TO:<x@example.net>\n<<< 550-5.1.1 User unknown\n<<< 550 5.1.1 see you\n".into()
            )
        );
        assert_eq!(rep.recips[1], Rcpt::Accepted);
        assert_eq!(rep.letter, Letter::Success);
    }

    #[test]
    fn pipelined_replies_are_read_even_when_nothing_is_sent() {
        // Every recipient refused: the DATA reply is still read, and a 354
        // gets its lone dot before QUIT (RFC 2920 section 3.1).
        let (rep, w) = run(
            "220 hi\r\n250-mx\r\n250 PIPELINING\r\n250 ok\r\n550 no\r\n354 go\r\n554 empty\r\n221 bye\r\n",
            &["x@example.net"],
            512,
        );
        assert_eq!(
            w,
            "EHLO me.example\r\nMAIL FROM:<a@b>\r\nRCPT TO:<x@example.net>\r\nDATA\r\n.\r\nQUIT\r\n"
        );
        assert_eq!(rep.letter, Letter::Permanent);
        // The sender refused: the RCPT and DATA replies are read too.
        let (rep, w) = run(
            "220 hi\r\n250-mx\r\n250 PIPELINING\r\n553 no sender\r\n503 a\r\n503 b\r\n503 c\r\n221 bye\r\n",
            &["x@example.net", "y@example.net"],
            512,
        );
        assert!(w.ends_with("DATA\r\nQUIT\r\n"), "{w}");
        assert_eq!(rep.letter, Letter::Permanent);
    }

    #[test]
    fn long_replies_are_bounded() {
        let mut script = String::from("220 hi\r\n250 hi\r\n250 ok\r\n");
        for _ in 0..200 {
            script.push_str(&format!("550-{}\r\n", "x".repeat(100)));
        }
        script.push_str("550 end\r\n");
        let (rep, _) = run(&script, &["u@x"], 512);
        let Rcpt::Perm(t) = &rep.recips[0] else {
            panic!("{rep:?}")
        };
        assert!(t.len() < 7000, "{}", t.len());
        assert!(t.ends_with("<<< ...\n"));
        assert!(rep.to_bytes().len() < 10000);
    }

    #[test]
    fn failures_and_their_letters() {
        // A refused greeting or name is temporary, whatever the code (qmail's rule).
        let (rep, _) = run("554 go away\r\n", &["u@x"], 512);
        assert_eq!(rep.letter, Letter::Temporary);
        assert!(rep.text.starts_with(
            "Connected to 192.0.2.7 but greeting failed.\nRemote host said: 554 go away\n"
        ));
        let (rep, _) = run("220 hi\r\n250 hi\r\n451 later\r\n", &["u@x"], 512);
        assert_eq!(rep.letter, Letter::Temporary);
        assert!(rep
            .text
            .starts_with("Connected to 192.0.2.7 but sender was rejected.\n"));
        let (rep, _) = run("220 hi\r\n250 hi\r\n250 ok\r\n450 full\r\n", &["u@x"], 512);
        assert_eq!(rep.recips.len(), 1);
        assert!(
            matches!(&rep.recips[0], Rcpt::Temp(t) if t.starts_with("192.0.2.7 does not like recipient.\nRemote host said: 450 full\n"))
        );
        assert_eq!(rep.text, "Giving up on 192.0.2.7.\n");
        let (rep, _) = run(
            "220 hi\r\n250 hi\r\n250 ok\r\n250 ok\r\n554 no\r\n",
            &["u@x"],
            512,
        );
        assert_eq!(rep.letter, Letter::Permanent);
        assert!(rep.text.starts_with("192.0.2.7 failed on DATA command.\n"));
        let (rep, _) = run(
            "220 hi\r\n250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n552 too big\r\n",
            &["u@x"],
            512,
        );
        assert_eq!(rep.letter, Letter::Permanent);
        assert!(rep.text.starts_with("192.0.2.7 failed after I sent the message.\nRemote host said: 552 too big\nwhile talking to mx.example.net[192.0.2.7]:\n>>> [message, 19 bytes]\n>>> .\n<<< 552 too big\n"));
        let (rep, _) = run(
            "220 hi\r\n250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n",
            &["u@x"],
            512,
        );
        assert_eq!(rep.letter, Letter::Temporary);
        assert_eq!(rep.recips, vec![Rcpt::Accepted]);
        assert_eq!(
            rep.text,
            "Connected to 192.0.2.7 but connection died. Possible duplicate! (#4.4.2)\n"
        );
        let (rep, _) = run("220 hi\r\n250 hi\r\n250 o", &["u@x"], 512);
        assert_eq!(
            rep.text,
            "Connected to 192.0.2.7 but connection died. (#4.4.2)\n"
        );
        let (rep, _) = run(
            "220 hi\r\n550 listed at bl.example\r\n550 no\r\n",
            &["u@x"],
            512,
        );
        assert_eq!(rep.letter, Letter::Temporary);
        assert!(rep.text.contains("but my name was rejected.\n"));
        assert!(rep.text.contains(">>> HELO me.example\n"));
        // EHLO's refusal is kept too.
        assert!(
            rep.text
                .contains(">>> EHLO me.example\n<<< 550 listed at bl.example\n"),
            "{}",
            rep.text
        );
        // NUL bytes and a missing code.
        let (rep, _) = run("2\0 x\r\n", &["u@x"], 512);
        assert_eq!(rep.letter, Letter::Temporary);
        assert!(rep.text.contains("Remote host said: 2? x\n"));
        // A CR inside a reply line goes too.
        let (rep, _) = run(
            "220 hi\r\n250 hi\r\n550 bad\0nul\rcr here\r\n",
            &["u@x"],
            512,
        );
        assert!(
            rep.text.contains("Remote host said: 550 bad?nulcr here\n"),
            "{}",
            rep.text
        );
    }

    #[test]
    fn addresses_are_quoted_as_qmail_quotes_them() {
        let m = |a: &[u8]| String::from_utf8_lossy(&crate::smtp::addr::quote2(a)).into_owned();
        assert_eq!(m(b"u@example.net"), "u@example.net");
        assert_eq!(m(b"a.b+c=d@x"), "a.b+c=d@x");
        assert_eq!(m(b"jane doe@mx.test"), "\"jane doe\"@mx.test");
        assert_eq!(m(b"a..b@x"), "\"a..b\"@x");
        assert_eq!(m(b".x@x"), "\".x\"@x");
        assert_eq!(m(b"x.@x"), "\"x.\"@x");
        assert_eq!(m(b"q\"uote@x"), "\"q\\\"uote\"@x");
        assert_eq!(m(b"back\\slash@x"), "\"back\\\\slash\"@x");
        assert_eq!(m(b"a@b@x"), "\"a@b\"@x");
        assert_eq!(
            crate::smtp::addr::quote2(b"j\xe9r\xf4me@x"),
            b"\"j\xe9r\xf4me\"@x".to_vec()
        );
        assert_eq!(m(b""), "");
        assert_eq!(m(b"postmaster"), "postmaster");
        assert_eq!(m(b"a b"), "\"a b\"");
        assert_eq!(m(b"@mx.test"), "\"\"@mx.test");
        assert!(has_line_break(b"x@y>\r\nRCPT TO:<z@y"));
        assert!(!has_line_break(b"x y@z"));
        // On the wire, 8-bit and quoted addresses go out byte for byte.
        let peer = Peer {
            input: b"220 hi\r\n250 hi\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n".to_vec(),
            pos: 0,
            chunk: 512,
            written: Vec::new(),
        };
        let mut s = Session::new(peer, "mx", "192.0.2.7");
        let mut msg = Message::from_bytes(b"x\n".to_vec());
        s.greeting().unwrap().unwrap();
        let ext = s.hello("me").unwrap().unwrap();
        let rep = s.transaction(&ext, b"s\xe9@a", &[b"jane doe@b".to_vec()], &mut msg, "");
        assert_eq!(rep.letter, Letter::Success);
        let w = s.into_inner().written;
        let want: &[u8] = b"MAIL FROM:<\"s\xe9\"@a>\r\nRCPT TO:<\"jane doe\"@b>\r\n";
        assert!(
            w.windows(want.len()).any(|x| x == want),
            "{}",
            String::from_utf8_lossy(&w)
        );
    }

    #[test]
    fn an_ehlo_refusal_then_a_close_is_reported_with_its_text() {
        let peer = Peer {
            input: b"220 hi\r\n421 go away, busy\r\n".to_vec(),
            pos: 0,
            chunk: 512,
            written: Vec::new(),
        };
        let mut s = Session::new(peer, "mx", "192.0.2.7");
        s.greeting().unwrap().unwrap();
        let rep = s
            .hello("me")
            .expect("a report, not a died session")
            .unwrap_err();
        assert_eq!(rep.letter, Letter::Temporary);
        assert!(rep
            .text
            .starts_with("Connected to 192.0.2.7 but my name was rejected.\n"));
        assert!(rep.text.contains("421 go away, busy"), "{}", rep.text);
    }
}
