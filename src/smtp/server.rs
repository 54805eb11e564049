//! The qmail-smtpd driver: the only part of the server that touches
//! descriptors. It reads command lines from fd 0 (or TLS on top of fd 0/1),
//! hands them to the [`Session`], writes the replies to fd 1, runs the TLS
//! handshake, and pipes each message through qmail-queue (message on its fd 0,
//! envelope on its fd 1; `$QMAILQUEUE` instead of `bin/qmail-queue` when set).
//!
//! Output is flushed whenever the next command is not already buffered
//! (PIPELINING, RFC 2920). Every read and write has the `timeoutsmtpd` limit.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::data::{self, Decoder, Progress};
use super::policy::HostPolicy;
use super::reply;
use super::session::{Config, DataEnd, Input, Outcome, Session, MAX_AUTH_LINE, MAX_HOPS};
use crate::control::Control;
use crate::io::tls::{self, Conn};
use crate::io::{Duplex, Line, LineReader};
use crate::paths::Roots;

/// Default of `control/timeoutsmtpd` (seconds).
pub const DEFAULT_TIMEOUT: u64 = 1200;

/// The command line: `qmail-smtpd [HOSTNAME [CHECKPROGRAM SUBPROGRAM...]]`
/// (the SMTP AUTH patch's form). A first argument holding a `/` is taken for
/// the check program (the form without HOSTNAME).
pub struct Args {
    /// The host name for the CRAM-MD5 challenge.
    pub hostname: Option<String>,
    /// The checkpassword program and its arguments (empty: no AUTH).
    pub checkpassword: Vec<OsString>,
}

impl Args {
    /// Splits argv (without argv[0]).
    pub fn parse(mut argv: Vec<OsString>) -> Args {
        let first_is_prog = argv
            .first()
            .is_some_and(|a| a.to_string_lossy().contains('/'));
        let hostname = if argv.is_empty() || first_is_prog {
            None
        } else {
            Some(argv.remove(0).to_string_lossy().into_owned())
        };
        Args {
            hostname,
            checkpassword: argv,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

fn flag(c: &Control, name: &str) -> io::Result<bool> {
    Ok(c.u64(name, 0)? != 0)
}

/// The remote IP: `TCPREMOTEIP`, else the peer of fd 0 (inetd, systemd).
fn remote_ip() -> String {
    if let Some(ip) = env("TCPREMOTEIP") {
        return ip;
    }
    crate::sys::stdin_peer_ip()
        .map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".to_string())
}

/// Builds the session configuration from control files, the environment and
/// the command line.
fn configure(roots: &Roots, args: &Args) -> io::Result<(Config, u64)> {
    let c = Control::new(roots);
    let Some(greeting) = c.line_or_me("smtpgreeting", None)? else {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no control/me"));
    };
    let localiphost = c
        .line_or_me("localiphost", None)?
        .unwrap_or_else(|| greeting.clone());
    let databytes = match env("DATABYTES") {
        // As scan_ulong: the number it starts with ("20M" is 20).
        Some(v) => crate::control::parse_u64(v.as_bytes(), 0),
        None => c.u64("databytes", 0)?,
    };
    let timeout = c.u64("timeoutsmtpd", DEFAULT_TIMEOUT)?;
    let hostname = args.hostname.clone().unwrap_or_else(|| {
        greeting
            .split_whitespace()
            .next()
            .unwrap_or("localhost")
            .to_string()
    });
    let on_socket = crate::sys::stdin_is_socket();
    let cfg = Config {
        greeting,
        hostname,
        localiphost,
        local_host: env("TCPLOCALHOST")
            .or_else(|| env("TCPLOCALIP"))
            .unwrap_or_else(|| "unknown".into()),
        remote_ip: remote_ip(),
        remote_host: env("TCPREMOTEHOST").unwrap_or_else(|| "unknown".into()),
        remote_info: env("TCPREMOTEINFO"),
        relayclient: env("RELAYCLIENT"),
        databytes,
        auth: !args.checkpassword.is_empty(),
        auth_needs_tls: flag(&c, "smtpauthtls")?,
        cram_md5_off: c.u64("smtpauthcram", 1)? == 0,
        // STARTTLS needs a certificate, and a network connection to protect:
        // `sendmail -bs` on a local pipe neither offers nor takes it.
        tls_offered: on_socket && roots.control("servercert.pem").exists(),
        on_pipe: !on_socket,
        mfcheck: flag(&c, "mfcheck")?,
        rcptcheck: flag(&c, "rcptcheck")?,
        pid: std::process::id(),
    };
    Ok((cfg, timeout))
}

/// The connection with its pending output.
struct Io {
    rd: LineReader<Conn>,
    out: Vec<u8>,
}

impl Io {
    fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            let conn = self.rd.get_mut();
            conn.write_all(&self.out)?;
            conn.flush()?;
            self.out.clear();
        }
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

/// Runs one SMTP connection on fd 0/1; returns the exit code.
pub fn run(roots: &Roots, args: Args) -> i32 {
    let duplex = match Duplex::stdio(None) {
        Ok(d) => d,
        Err(e) => {
            crate::elog!("qmail-smtpd: fatal: {}", crate::deliver::errstr(&e));
            return 111;
        }
    };
    let mut conn = Conn::Plain(duplex);
    let loaded = configure(roots, &args).and_then(|(cfg, t)| {
        let local_ip = env("TCPLOCALIP").and_then(|s| s.parse::<IpAddr>().ok());
        let p = HostPolicy::load(roots, &cfg.remote_ip, local_ip, args.checkpassword.clone())?;
        Ok((cfg, t, p))
    });
    let (cfg, timeout, mut policy) = match loaded {
        Ok(x) => x,
        Err(e) => {
            crate::elog!(
                "qmail-smtpd: unable to read controls: {}",
                crate::deliver::errstr(&e)
            );
            let _ = conn.write_all(reply::NO_CONTROLS);
            return 1;
        }
    };
    let timeout = Some(Duration::from_secs(timeout.max(1)));
    conn.duplex_mut().set_timeout(timeout);
    let pem = roots.control("servercert.pem");
    let ciphers = tls_ciphers(roots);
    if std::env::var_os("SMTPS").is_some() {
        conn = match starttls(conn, &pem, ciphers.as_deref()) {
            Ok(c) => c,
            Err(e) => {
                crate::elog!("qmail-smtpd: TLS failed for {}: {e}", cfg.remote_ip);
                return 1;
            }
        };
    }
    let cipher = conn.cipher_description();
    let mut s = Session::new(cfg, cipher);
    let mut io = Io {
        rd: LineReader::new(conn),
        out: s.greeting(),
    };
    loop {
        // Replies wait while whole pipelined commands are at hand; before
        // anything that may wait for the client, they go out (as qmail
        // flushes before every read), so a client that sent part of a line
        // and waits for our answers gets them.
        if !io.rd.buffered().contains(&b'\n') && io.flush().is_err() {
            return 1;
        }
        let line = match io.rd.read_line(MAX_AUTH_LINE + 1) {
            Ok(Line::Line(l)) => Some(l),
            Ok(Line::TooLong) => None,
            // The client went away without QUIT: qmail-smtpd exits 1 (after
            // answering what it sent, a 250 for a queued message included).
            Ok(Line::Eof) => {
                let _ = io.flush();
                return 1;
            }
            Err(e) if is_timeout(&e) => {
                io.out.extend_from_slice(reply::TIMEOUT);
                let _ = io.flush();
                return 1;
            }
            Err(_) => return 1,
        };
        let step = match &line {
            Some(l) => s.input(&mut policy, Input::Line(l)),
            None => s.input(&mut policy, Input::TooLong),
        };
        match step.outcome {
            Outcome::Continue => io.out.extend_from_slice(&step.reply),
            Outcome::Quit | Outcome::Close => {
                io.out.extend_from_slice(&step.reply);
                let _ = io.flush();
                io.rd.get_mut().close_notify();
                return if step.outcome == Outcome::Quit { 0 } else { 1 };
            }
            Outcome::StartTls => {
                if !io.rd.buffered().is_empty() {
                    // Plaintext sent after STARTTLS would be taken for TLS-
                    // protected commands (CVE-2011-0411): refuse and close.
                    io.out.extend_from_slice(reply::PIPELINED_STARTTLS);
                    let _ = io.flush();
                    return 1;
                }
                let cfg = match tls::server_config_with(&pem, ciphers.as_deref()) {
                    Ok(c) => c,
                    Err(e) => {
                        crate::elog!("qmail-smtpd: {e}");
                        io.out.extend_from_slice(&reply::tls_setup(&e));
                        continue;
                    }
                };
                io.out.extend_from_slice(&step.reply);
                if io.flush().is_err() {
                    return 1;
                }
                let Conn::Plain(d) = io.rd.into_inner() else {
                    return 1;
                };
                match Conn::accept_or_reply(d, cfg, tls_failed) {
                    Ok(c) => {
                        s.tls_started(c.cipher_description().unwrap_or_default());
                        io = Io {
                            rd: LineReader::new(c),
                            out: Vec::new(),
                        };
                    }
                    Err(e) => {
                        crate::elog!(
                            "qmail-smtpd: TLS handshake failed for {}: {e}",
                            s.config().remote_ip
                        );
                        return 1;
                    }
                }
            }
            Outcome::Data => match data(roots, &mut s, &mut io) {
                Ok(true) => {}
                Ok(false) => {
                    let _ = io.flush();
                    return 1;
                }
                Err(e) => {
                    if is_timeout(&e) {
                        io.out.extend_from_slice(reply::TIMEOUT);
                        let _ = io.flush();
                    }
                    return 1;
                }
            },
        }
    }
}

/// After a failed handshake, the TLS patch's last word, sent in plaintext
/// (a client that gave up on TLS reads it; one mid-handshake ignores it).
fn tls_failed(e: &io::Error) -> Vec<u8> {
    let why = match e.kind() {
        io::ErrorKind::UnexpectedEof => "connection closed during handshake".to_string(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timeout".to_string(),
        _ => e.to_string(),
    };
    reply::tls_failed(&why)
}

/// The TLS patch's cipher list: `$TLSCIPHERS`, else the lines of
/// `control/tlsserverciphers` joined by `:`; none means the default.
fn tls_ciphers(roots: &crate::paths::Roots) -> Option<String> {
    if let Some(c) = std::env::var("TLSCIPHERS").ok().filter(|c| !c.is_empty()) {
        return Some(c);
    }
    let lines = crate::control::Control::new(roots)
        .list("tlsserverciphers")
        .ok()?;
    (!lines.is_empty()).then(|| lines.join(":"))
}

/// Implicit TLS (SMTPS) before the greeting.
fn starttls(conn: Conn, pem: &std::path::Path, ciphers: Option<&str>) -> io::Result<Conn> {
    let cfg = tls::server_config_with(pem, ciphers).map_err(io::Error::other)?;
    match conn {
        Conn::Plain(d) => Conn::accept_or_reply(d, cfg, tls_failed),
        c => Ok(c),
    }
}

/// qmail-queue, running.
struct Queue {
    child: Child,
    msg: Option<BufWriter<ChildStdin>>,
    envelope: Option<File>,
    broken: bool,
}

impl Queue {
    fn start(roots: &Roots) -> io::Result<Queue> {
        let prog = match std::env::var_os("QMAILQUEUE") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => roots.qmail_bin("qmail-queue"),
        };
        let (rd, wr) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(io::Error::from)?;
        let mut cmd = Command::new(prog);
        crate::fsutil::start_in(&mut cmd, roots.qmail_home());
        let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::from(rd)).spawn()?;
        let stdin = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no pipe to qmail-queue"))?;
        Ok(Queue {
            child,
            msg: Some(BufWriter::with_capacity(64 * 1024, stdin)),
            envelope: Some(File::from(wr)),
            broken: false,
        })
    }

    fn put(&mut self, b: &[u8]) {
        if self.broken {
            return;
        }
        if let Some(m) = self.msg.as_mut() {
            if m.write_all(b).is_err() {
                self.broken = true;
            }
        }
    }

    /// Closes both pipes without an envelope: qmail-queue queues nothing.
    fn abort(mut self) {
        self.msg = None;
        self.envelope = None;
        let _ = self.child.wait();
    }

    /// Ends the message, sends the envelope and waits: the exit code
    /// (`None` when qmail-queue crashed). As qmail's qmail_close, an exit 0
    /// after a write that failed (a `$QMAILQUEUE` program that quit without
    /// reading everything) is a read error, 54: the message was not taken.
    fn finish(mut self, from: &[u8], rcpts: &[Vec<u8>]) -> Option<i32> {
        if let Some(mut m) = self.msg.take() {
            if m.flush().is_err() {
                self.broken = true;
            }
        }
        if !self.broken {
            let env = crate::queue::enqueue::envelope(from, rcpts);
            if let Some(mut e) = self.envelope.take() {
                if e.write_all(&env).is_err() {
                    self.broken = true;
                }
            }
        }
        self.envelope = None;
        match self.child.wait() {
            Ok(st) if st.code() == Some(0) && self.broken => Some(54),
            Ok(st) => st.code(),
            Err(_) => None,
        }
    }
}

/// The DATA phase: qmail-queue, `354`, the message to the final dot, the
/// reply. `Ok(false)` when the connection must be closed (bare LF).
fn data(roots: &Roots, s: &mut Session, io: &mut Io) -> io::Result<bool> {
    let queue = match Queue::start(roots) {
        Ok(q) => Some(q),
        Err(e) => {
            crate::elog!(
                "qmail-smtpd: unable to start qmail-queue: {}",
                crate::deliver::errstr(&e)
            );
            None
        }
    };
    let step = s.data_started(queue.is_some());
    io.out.extend_from_slice(&step.reply);
    let Some(mut queue) = queue else {
        return Ok(true);
    };
    io.flush()?;
    let received = s.received(crate::timefmt::now());
    queue.put(received.as_bytes());
    let mut dec = Decoder::new(s.config().databytes);
    let mut out = Vec::with_capacity(64 * 1024);
    let end = loop {
        let buf = io.rd.fill_buf()?;
        if buf.is_empty() {
            // The client hung up inside the message.
            queue.abort();
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "eof in DATA"));
        }
        out.clear();
        let r = dec.feed(buf, &mut out);
        let used = match r {
            Ok(Progress::More) => buf.len(),
            Ok(Progress::End(k)) => k,
            Err(data::Error::BareLf) => {
                queue.abort();
                let st = s.data_end(DataEnd::BareLf);
                io.out.extend_from_slice(&st.reply);
                return Ok(false);
            }
        };
        io.rd.consume(used);
        if !dec.overflowed() {
            queue.put(&out);
        }
        if let Ok(Progress::End(_)) = r {
            break if dec.hops() >= MAX_HOPS {
                DataEnd::Looping
            } else if dec.overflowed() {
                DataEnd::TooBig
            } else if dec.saw_nul() {
                DataEnd::Nul
            } else {
                DataEnd::Queued { time: 0, qp: 0 }
            };
        }
    };
    let end = match end {
        DataEnd::Queued { .. } => {
            let qp = queue.child.id();
            let (from, rcpts) = s.envelope().unwrap_or((b"", &[]));
            let (from, rcpts) = (from.to_vec(), rcpts.to_vec());
            match queue.finish(&from, &rcpts) {
                Some(0) => DataEnd::Queued {
                    time: crate::timefmt::now(),
                    qp,
                },
                code => DataEnd::QueueFailed(code),
            }
        }
        other => {
            queue.abort();
            other
        }
    };
    let st = s.data_end(end);
    io.out.extend_from_slice(&st.reply);
    Ok(true)
}
