//! qmail-pop3d's session after authentication, as a state machine over a
//! [`Store`]: lines in, replies written to an output, an [`Outcome`] out.
//!
//! Replies and quirks are qmail's (COMPAT section 9): `STAT` counts messages
//! marked deleted but not their octets; `RETR n k` is `TOP n k`; a message
//! ends with an extra empty line (`\r\n\r\n.\r\n`); `LAST` is the highest
//! number DELEted; deletions happen only at QUIT.

use std::io::{self, Read, Write};

use super::command::{self, Bad};
use super::reply;

/// One message of the listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Msg {
    /// `new/NAME` or `cur/NAME`, relative to the Maildir (as qmail keeps it;
    /// bytes, as the file system has them).
    pub name: Vec<u8>,
    /// Size in bytes (the file's size, as qmail reports it).
    pub size: u64,
    /// Marked for deletion at QUIT.
    pub deleted: bool,
}

impl Msg {
    /// The UIDL: the file name without `new/`/`cur/`, up to the first `:`.
    /// When that leaves nothing (a name starting with `:`), the name up to
    /// its first `:2,` after the start (Maildir info), so that the id is
    /// never empty and stays when the message moves to `cur/`.
    pub fn uid(&self) -> &[u8] {
        let base = match self.name.iter().position(|&b| b == b'/') {
            Some(i) => &self.name[i + 1..],
            None => &self.name[..],
        };
        match base.split(|&b| b == b':').next() {
            Some(u) if !u.is_empty() => u,
            _ => match base
                .get(1..)
                .and_then(|t| t.windows(3).position(|w| w == b":2,"))
            {
                Some(i) => &base[..i + 1],
                None => base,
            },
        }
    }
}

/// Where the message bodies come from.
pub trait Store {
    /// Opens message `m` for reading.
    fn open(&mut self, m: &Msg) -> io::Result<Box<dyn Read + '_>>;
}

/// What the caller does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Read the next command.
    Continue,
    /// QUIT: commit the deletions and moves, then send [`Session::quit_reply`].
    Quit,
    /// A read of a message failed mid-reply: close the connection.
    Close,
}

/// The transaction-state session.
pub struct Session {
    msgs: Vec<Msg>,
    last: usize,
    login_delay: u64,
}

impl Session {
    /// A session over a listing (already sorted, numbered from 1).
    pub fn new(msgs: Vec<Msg>, login_delay: u64) -> Session {
        Session {
            msgs,
            last: 0,
            login_delay,
        }
    }

    /// The messages and their marks.
    pub fn messages(&self) -> &[Msg] {
        &self.msgs
    }

    /// The reply to QUIT, given whether every marked message could be removed.
    pub fn quit_reply(all_unlinked: bool) -> &'static [u8] {
        if all_unlinked {
            reply::OK
        } else {
            reply::UNABLE_TO_UNLINK
        }
    }

    /// Answer to a line that was over the bound.
    pub fn too_long(&mut self, out: &mut dyn Write) -> io::Result<Outcome> {
        out.write_all(reply::TOO_LONG)?;
        Ok(Outcome::Continue)
    }

    /// Handles one command line (without its LF), writing the reply to `out`.
    pub fn line(
        &mut self,
        line: &[u8],
        store: &mut dyn Store,
        out: &mut dyn Write,
    ) -> io::Result<Outcome> {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(Bad::TooLong) => return self.too_long(out),
            Err(Bad::Nul) => {
                out.write_all(reply::NUL_BYTE)?;
                return Ok(Outcome::Continue);
            }
        };
        let arg = cmd.arg;
        match cmd.verb.as_str() {
            "stat" => {
                let octets: u64 = self
                    .msgs
                    .iter()
                    .filter(|m| !m.deleted)
                    .map(|m| m.size)
                    .fold(0u64, u64::saturating_add);
                // qmail's quirk: the count includes messages marked deleted.
                out.write_all(&reply::ok_text(&format!("{} {octets}", self.msgs.len())))?;
            }
            "list" => self.listing(arg, false, out)?,
            "uidl" => self.listing(arg, true, out)?,
            "dele" => {
                if let Some(i) = self.msgno(arg, out)? {
                    self.msgs[i].deleted = true;
                    self.last = self.last.max(i + 1);
                    out.write_all(reply::OK)?;
                }
            }
            "last" => out.write_all(&reply::ok_text(&self.last.to_string()))?,
            "rset" => {
                self.msgs.iter_mut().for_each(|m| m.deleted = false);
                self.last = 0;
                out.write_all(reply::OK)?;
            }
            "noop" => out.write_all(reply::OK)?,
            "retr" | "top" => return self.top(arg, store, out),
            "capa" => out.write_all(&reply::capa(false, false, self.login_delay))?,
            "quit" => return Ok(Outcome::Quit),
            _ => out.write_all(reply::UNIMPLEMENTED)?,
        }
        Ok(Outcome::Continue)
    }

    /// qmail's `msgno`: the index of a live message, or the error reply.
    fn msgno(&self, arg: &[u8], out: &mut dyn Write) -> io::Result<Option<usize>> {
        let Some((n, _)) = command::scan_ulong(arg) else {
            out.write_all(reply::SYNTAX)?;
            return Ok(None);
        };
        if n == 0 {
            out.write_all(reply::COUNTED_FROM_1)?;
            return Ok(None);
        }
        let i = usize::try_from(n - 1).unwrap_or(usize::MAX);
        if i >= self.msgs.len() {
            out.write_all(reply::NOT_THAT_MANY)?;
            return Ok(None);
        }
        if self.msgs[i].deleted {
            out.write_all(reply::ALREADY_DELETED)?;
            return Ok(None);
        }
        Ok(Some(i))
    }

    fn list_line(&self, i: usize, uidl: bool) -> Vec<u8> {
        let m = &self.msgs[i];
        let mut l = format!("{} ", i + 1).into_bytes();
        if uidl {
            // A byte outside printable ASCII in a file name (a CR LF would
            // end the line, and the listing with a `.`; clients refuse 8-bit
            // ids) goes out as %XX: RFC 1939's ids are 0x21 to 0x7E. A `%` is
            // encoded too, so that two names never share an id.
            for &b in m.uid() {
                if !(0x21..=0x7e).contains(&b) || b == b'%' {
                    l.extend_from_slice(format!("%{b:02X}").as_bytes());
                } else {
                    l.push(b);
                }
            }
        } else {
            l.extend_from_slice(m.size.to_string().as_bytes());
        }
        l.extend_from_slice(b"\r\n");
        l
    }

    fn listing(&self, arg: &[u8], uidl: bool, out: &mut dyn Write) -> io::Result<()> {
        if !arg.is_empty() {
            if let Some(i) = self.msgno(arg, out)? {
                out.write_all(b"+OK ")?;
                out.write_all(&self.list_line(i, uidl))?;
            }
            return Ok(());
        }
        let mut s = Vec::with_capacity(8 + self.msgs.len() * 24);
        s.extend_from_slice(b"+OK \r\n");
        for (i, m) in self.msgs.iter().enumerate() {
            if !m.deleted {
                s.extend_from_slice(&self.list_line(i, uidl));
            }
        }
        s.extend_from_slice(b".\r\n");
        out.write_all(&s)
    }

    fn top(
        &mut self,
        arg: &[u8],
        store: &mut dyn Store,
        out: &mut dyn Write,
    ) -> io::Result<Outcome> {
        let Some(i) = self.msgno(arg, out)? else {
            return Ok(Outcome::Continue);
        };
        // qmail: skip the number, then spaces; a second number k means k body lines.
        let rest = command::scan_ulong(arg).map_or(&b""[..], |(_, r)| r);
        let rest = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];
        let limit = command::scan_ulong(rest).map_or(0, |(k, _)| k.saturating_add(1));
        let mut f = match store.open(&self.msgs[i]) {
            Ok(f) => f,
            Err(_) => {
                out.write_all(reply::UNABLE_TO_OPEN)?;
                return Ok(Outcome::Continue);
            }
        };
        out.write_all(reply::OK)?;
        if blast(&mut f, limit, out)? {
            Ok(Outcome::Continue)
        } else {
            Ok(Outcome::Close)
        }
    }
}

/// qmail's `blast`: copies a message with CRLF line ends and leading dots
/// doubled, stopping after `limit - 1` body lines when `limit` is non-zero,
/// and ends with `\r\n.\r\n` (so an extra empty line). A CR before an LF in the
/// file is taken as part of the line end (qmail would send it doubled).
/// `Ok(false)`: reading the message failed and the reply is cut short (the
/// caller closes the connection, as qmail dies).
pub fn blast(r: &mut dyn Read, limit: u64, out: &mut dyn Write) -> io::Result<bool> {
    let mut enc = Blaster {
        limit,
        inheaders: true,
        at_bol: true,
        line_empty: true,
        pending_cr: false,
    };
    let mut buf = vec![0u8; 65536];
    let mut o = Vec::with_capacity(70000);
    loop {
        let n = loop {
            match r.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    out.write_all(&o)?;
                    return Ok(false);
                }
            }
        };
        if n == 0 {
            break;
        }
        let done = enc.feed(&buf[..n], &mut o);
        out.write_all(&o)?;
        o.clear();
        if done {
            out.write_all(b"\r\n.\r\n")?;
            return Ok(true);
        }
    }
    enc.finish(&mut o);
    o.extend_from_slice(b"\r\n.\r\n");
    out.write_all(&o)?;
    Ok(true)
}

struct Blaster {
    limit: u64,
    inheaders: bool,
    at_bol: bool,
    line_empty: bool,
    pending_cr: bool,
}

impl Blaster {
    /// Encodes a chunk; true when the line limit has been reached.
    fn feed(&mut self, mut data: &[u8], o: &mut Vec<u8>) -> bool {
        while !data.is_empty() {
            if self.at_bol {
                // A line starts: qmail counts body lines before printing them.
                if self.limit > 0 && !self.inheaders {
                    self.limit -= 1;
                    if self.limit == 0 {
                        return true;
                    }
                }
                self.at_bol = false;
                self.line_empty = true;
                if data[0] == b'.' {
                    o.push(b'.');
                }
            }
            match data.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    let mut seg = &data[..i];
                    if seg.is_empty() {
                        // The CR held back from the previous chunk was the line end.
                        self.pending_cr = false;
                    } else {
                        self.flush_cr(o);
                        seg = seg.strip_suffix(b"\r").unwrap_or(seg);
                        if !seg.is_empty() {
                            self.line_empty = false;
                        }
                        o.extend_from_slice(seg);
                    }
                    o.extend_from_slice(b"\r\n");
                    if self.line_empty {
                        self.inheaders = false;
                    }
                    self.at_bol = true;
                    data = &data[i + 1..];
                }
                None => {
                    self.flush_cr(o);
                    let (seg, cr) = match data.strip_suffix(b"\r") {
                        Some(s) => (s, true),
                        None => (data, false),
                    };
                    if !seg.is_empty() {
                        self.line_empty = false;
                    }
                    o.extend_from_slice(seg);
                    self.pending_cr = cr;
                    data = &[];
                }
            }
        }
        false
    }

    fn flush_cr(&mut self, o: &mut Vec<u8>) {
        if self.pending_cr {
            o.push(b'\r');
            self.line_empty = false;
            self.pending_cr = false;
        }
    }

    /// Ends a last line without LF.
    fn finish(&mut self, o: &mut Vec<u8>) {
        if !self.at_bol {
            self.flush_cr(o);
            o.extend_from_slice(b"\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Mem(HashMap<Vec<u8>, Vec<u8>>, usize);
    /// Hands out a message in chunks of .1 bytes.
    struct Chunks<'a>(&'a [u8], usize);
    impl Read for Chunks<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    impl Store for Mem {
        fn open(&mut self, m: &Msg) -> io::Result<Box<dyn Read + '_>> {
            let chunk = self.1;
            match self.0.get(&m.name) {
                Some(v) => Ok(Box::new(Chunks(v, chunk))),
                None => Err(io::Error::from(io::ErrorKind::NotFound)),
            }
        }
    }

    const M1: &[u8] = b"Subject: one\n\nline 1\n.dot\nline 3\n";
    const M2: &[u8] = b"Subject: two\n\nbody";

    fn setup(chunk: usize) -> (Session, Mem) {
        let msgs = vec![
            Msg {
                name: "cur/100.a.host,S=33:2,S".into(),
                size: M1.len() as u64,
                deleted: false,
            },
            Msg {
                name: "new/200.b.host".into(),
                size: M2.len() as u64,
                deleted: false,
            },
            Msg {
                name: "new/300.c.host".into(),
                size: 7,
                deleted: false,
            },
        ];
        let mut files = HashMap::new();
        files.insert(msgs[0].name.clone(), M1.to_vec());
        files.insert(msgs[1].name.clone(), M2.to_vec());
        (Session::new(msgs, 0), Mem(files, chunk))
    }

    fn run(s: &mut Session, st: &mut Mem, line: &str) -> (String, Outcome) {
        let mut out = Vec::new();
        let o = s.line(line.as_bytes(), st, &mut out).unwrap();
        (String::from_utf8(out).unwrap(), o)
    }

    #[test]
    fn uidl_ids_stay_printable_and_one_line() {
        let msgs = vec![Msg {
            name: b"new/9001.nl\r\n.\r\n+OK fake a\x7fb\xc3\xa9%20:2,".to_vec(),
            size: 1,
            deleted: false,
        }];
        let mut s = Session::new(msgs, 0);
        let mut st = Mem(HashMap::new(), 512);
        let mut out = Vec::new();
        s.line(b"UIDL\r", &mut st, &mut out).unwrap();
        // A name with nothing before its `:` keeps its whole name as the id.
        let id = |name: &[u8]| {
            Msg {
                name: name.to_vec(),
                size: 1,
                deleted: false,
            }
            .uid()
            .to_vec()
        };
        assert_eq!(id(b"cur/:2,S"), b":2,S");
        // ... and keeps it when the message moves to cur/ and gets flags.
        assert_eq!(id(b"new/:7"), b":7");
        assert_eq!(id(b"cur/:7:2,"), b":7");
        assert_eq!(id(b"cur/:7:2,RS"), b":7");
        assert_eq!(id(b"new/:a:2,x"), b":a");
        assert_eq!(id(b"cur/:a:2,x:2,"), b":a");
        assert_eq!(
            out,
            b"+OK \r\n1 9001.nl%0D%0A.%0D%0A+OK%20fake%20a%7Fb%C3%A9%2520\r\n.\r\n"
        );
    }

    #[test]
    fn rfc1939_formats_byte_exact() {
        for chunk in [1, 2, 3, 5, 8, 512] {
            let (mut s, mut st) = setup(chunk);
            let r = |s: &mut Session, st: &mut Mem, l| run(s, st, l).0;
            assert_eq!(r(&mut s, &mut st, "STAT\r"), "+OK 3 58\r\n");
            assert_eq!(
                r(&mut s, &mut st, "LIST\r"),
                "+OK \r\n1 33\r\n2 18\r\n3 7\r\n.\r\n"
            );
            assert_eq!(r(&mut s, &mut st, "LIST 2\r"), "+OK 2 18\r\n");
            assert_eq!(
                r(&mut s, &mut st, "UIDL\r"),
                "+OK \r\n1 100.a.host,S=33\r\n2 200.b.host\r\n3 300.c.host\r\n.\r\n"
            );
            assert_eq!(
                r(&mut s, &mut st, "RETR 1\r"),
                "+OK \r\nSubject: one\r\n\r\nline 1\r\n..dot\r\nline 3\r\n\r\n.\r\n"
            );
            assert_eq!(
                r(&mut s, &mut st, "RETR 2\r"),
                "+OK \r\nSubject: two\r\n\r\nbody\r\n\r\n.\r\n"
            );
            assert_eq!(
                r(&mut s, &mut st, "TOP 1 0\r"),
                "+OK \r\nSubject: one\r\n\r\n\r\n.\r\n"
            );
            assert_eq!(
                r(&mut s, &mut st, "TOP 1 2\r"),
                "+OK \r\nSubject: one\r\n\r\nline 1\r\n..dot\r\n\r\n.\r\n"
            );
            assert_eq!(
                r(&mut s, &mut st, "RETR 1 1\r"),
                "+OK \r\nSubject: one\r\n\r\nline 1\r\n\r\n.\r\n"
            );
            assert_eq!(
                r(&mut s, &mut st, "RETR 3\r"),
                "-ERR unable to open that message\r\n"
            );
        }
    }

    #[test]
    fn dele_last_rset_and_errors() {
        let (mut s, mut st) = setup(512);
        let mut r = |l| run(&mut s, &mut st, l).0;
        assert_eq!(r("LAST"), "+OK 0\r\n");
        assert_eq!(r("DELE 2"), "+OK \r\n");
        assert_eq!(r("DELE 2"), "-ERR already deleted\r\n");
        assert_eq!(r("RETR 2"), "-ERR already deleted\r\n");
        assert_eq!(r("LAST"), "+OK 2\r\n");
        // The STAT quirk: the count still includes message 2, the octets do not.
        assert_eq!(r("STAT"), "+OK 3 40\r\n");
        assert_eq!(r("LIST"), "+OK \r\n1 33\r\n3 7\r\n.\r\n");
        assert_eq!(r("DELE 0"), "-ERR messages are counted from 1\r\n");
        assert_eq!(r("DELE 4"), "-ERR not that many messages\r\n");
        assert_eq!(
            r("DELE 99999999999999999999999"),
            "-ERR not that many messages\r\n"
        );
        assert_eq!(r("DELE"), "-ERR syntax error\r\n");
        assert_eq!(r("DELE x"), "-ERR syntax error\r\n");
        assert_eq!(r("RSET"), "+OK \r\n");
        assert_eq!(r("LAST"), "+OK 0\r\n");
        assert_eq!(r("STAT"), "+OK 3 58\r\n");
        assert_eq!(r("XTND"), "-ERR unimplemented\r\n");
        assert_eq!(r("USER x"), "-ERR unimplemented\r\n");
        assert_eq!(r("NOOP"), "+OK \r\n");
        assert!(r("CAPA").starts_with("+OK capability list follows\r\n"));
        assert_eq!(r("LIST\0"), "-ERR NUL byte in command line\r\n");
        assert_eq!(run(&mut s, &mut st, "QUIT").1, Outcome::Quit);
        assert_eq!(Session::quit_reply(true), b"+OK \r\n");
    }

    fn blasted(msg: &[u8], limit: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in [1, 2, 3, 7, 512] {
            out.clear();
            blast(&mut Chunks(msg, chunk), limit, &mut out).unwrap();
            let mut whole = Vec::new();
            blast(&mut Chunks(msg, 4096), limit, &mut whole).unwrap();
            assert_eq!(out, whole, "chunk {chunk}");
        }
        out
    }

    #[test]
    fn blast_edges() {
        assert_eq!(blasted(b"", 0), b"\r\n.\r\n");
        assert_eq!(
            blasted(b"a\r\nb\r\n\r\nc\r", 0),
            b"a\r\nb\r\n\r\nc\r\r\n\r\n.\r\n"
        );
        assert_eq!(blasted(b"a\r\n\r\nb\nc\n", 2), b"a\r\n\r\nb\r\n\r\n.\r\n");
        assert_eq!(blasted(b".\n..\nx\n", 0), b"..\r\n...\r\nx\r\n\r\n.\r\n");
        assert_eq!(blasted(b"a\rb\n", 0), b"a\rb\r\n\r\n.\r\n");
        assert_eq!(blasted(b"h\n\n\n\nx\n", 1), b"h\r\n\r\n\r\n.\r\n");
    }

    #[test]
    fn random_commands_never_panic() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let verbs = [
            "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "LAST", "RSET", "NOOP", "CAPA", "XYZ",
        ];
        let (mut s, mut st) = setup(3);
        for _ in 0..20_000 {
            let mut line = verbs[(next() % 11) as usize].as_bytes().to_vec();
            for _ in 0..next() % 4 {
                line.extend_from_slice(b" ");
                match next() % 3 {
                    0 => line.extend_from_slice((next() % 5).to_string().as_bytes()),
                    1 => line.extend_from_slice(next().to_string().as_bytes()),
                    _ => line.push((next() % 256) as u8),
                }
            }
            let mut out = Vec::new();
            let o = s.line(&line, &mut st, &mut out).unwrap();
            assert_eq!(o, Outcome::Continue);
            assert!(
                out.starts_with(b"+OK") || out.starts_with(b"-ERR"),
                "{line:?}"
            );
        }
    }
}
