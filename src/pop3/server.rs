//! The two programs' I/O: the only part of the POP3 code that touches
//! descriptors, processes and the clock. Everything it says comes from the
//! session machines in [`super::popup`] and [`super::pop3d`].

use std::ffi::OsString;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::Duration;

use crate::control::Control;
use crate::io::tls::{self, Conn};
use crate::io::{Duplex, Line, LineReader};
use crate::paths::Roots;

use super::command::MAX_LINE;
use super::interval::{self, Admission};
use super::mailbox::Maildir;
use super::pop3d::{Outcome, Session};
use super::popup::{Action, Credentials, Options, Popup};
use super::reply;

/// How long a failed login waits before its `-ERR` (slows password guessing;
/// each connection gets one attempt).
pub const FAIL_DELAY: Duration = Duration::from_secs(2);

/// The idle timeout: `control/timeoutpop3`, seconds (qmail's 1200 without it).
pub fn timeout(roots: &Roots) -> Duration {
    Duration::from_secs(
        Control::new(roots)
            .u64("timeoutpop3", 1200)
            .unwrap_or(1200)
            .max(1),
    )
}

/// The poll limit: `control/pop3interval`, seconds (0 or missing = off).
pub fn poll_interval(roots: &Roots) -> u64 {
    Control::new(roots).u64("pop3interval", 0).unwrap_or(0)
}

/// [`poll_interval`] for qmail-pop3d, which enforces it: a file it cannot
/// read, or whose first line is not a number, turns the limit off as qmail's
/// control files do, and says so in the log.
fn poll_interval_logged(roots: &Roots) -> u64 {
    let path = roots.control("pop3interval");
    match crate::control::read_file(&path) {
        Ok(Some(b)) => {
            let first =
                String::from_utf8_lossy(b.split(|&c| c == b'\n').next().unwrap_or_default())
                    .trim()
                    .to_string();
            let digits: String = first.chars().take_while(char::is_ascii_digit).collect();
            if !first.is_empty() && digits.parse::<u64>().is_err() {
                crate::elog!(
                    "qmail-pop3d: warning: control/pop3interval is not a number ({}): no poll limit",
                    crate::paths::loggable(&first)
                );
            }
            crate::control::parse_u64(&b, 0)
        }
        Ok(None) => 0,
        Err(e) => {
            crate::elog!(
                "qmail-pop3d: warning: unable to read control/pop3interval ({}): no poll limit",
                crate::deliver::errstr(&e)
            );
            0
        }
    }
}

fn write_all(conn: &mut impl Write, b: &[u8]) -> io::Result<()> {
    conn.write_all(b)?;
    conn.flush()
}

/// qmail-popup: `qmail-popup HOST checkpassword subprogram...`. Returns the
/// exit code.
pub fn popup(args: Vec<OsString>) -> i32 {
    let roots = Roots::from_env();
    let idle = timeout(&roots);
    let Ok(mut duplex) = Duplex::stdio(Some(idle)) else {
        crate::elog!("qmail-popup: fd 0 or 1 is not open");
        return 1;
    };
    if args.len() < 3 {
        let _ = write_all(&mut duplex, reply::USAGE_POPUP);
        return 1;
    }
    let host = args[1].to_string_lossy().into_owned();
    let child_argv = args[2..].to_vec();
    let cert = roots.control("servercert.pem");
    let pop3s = std::env::var_os("POP3S").is_some_and(|v| !v.is_empty());
    let mut conn = if pop3s {
        let cfg = match tls::server_config(&cert) {
            Ok(c) => c,
            Err(e) => {
                crate::elog!("qmail-popup: POP3S: {e}");
                return 1;
            }
        };
        match Conn::accept(duplex, cfg) {
            Ok(c) => c,
            Err(e) => {
                handshake_failed(&e);
                return 1;
            }
        }
    } else {
        Conn::Plain(duplex)
    };
    let apop_off = Control::new(&roots).u64("pop3apop", 1).unwrap_or(1) == 0;
    // Without APOP the greeting has no timestamp (RFC 1939: clients then use
    // USER/PASS) and vchkpw gets none.
    let timestamp = if apop_off {
        String::new()
    } else {
        format!(
            "<{}.{}@{}>",
            std::process::id(),
            crate::timefmt::now(),
            host
        )
    };
    let mut session = Popup::new(Options {
        tls_available: cert.exists(),
        tls_active: pop3s,
        login_delay: poll_interval(&roots),
        apop_off,
    });
    if write_all(&mut conn, &reply::greeting(&timestamp)).is_err() {
        return 1;
    }
    let mut reader = LineReader::new(conn);
    loop {
        let step = match reader.read_line(session.line_limit() + 1) {
            Ok(Line::Line(l)) => {
                let more = !reader.buffered().is_empty();
                session.line(&l, more)
            }
            Ok(Line::TooLong) => session.too_long(),
            // qmail-popup dies silently on EOF and on a timeout (exit 1).
            Ok(Line::Eof) | Err(_) => return 1,
        };
        match step.action {
            Action::Continue => {
                if write_all(reader.get_mut(), &step.reply).is_err() {
                    return 1;
                }
            }
            Action::Close => {
                let _ = write_all(reader.get_mut(), &step.reply);
                reader.get_mut().close_notify();
                return 0;
            }
            Action::StartTls => {
                let cfg = match tls::server_config(&cert) {
                    Ok(c) => c,
                    Err(e) => {
                        crate::elog!("qmail-popup: STLS: {e}");
                        if write_all(reader.get_mut(), reply::STLS_UNAVAILABLE).is_err() {
                            return 1;
                        }
                        continue;
                    }
                };
                if write_all(reader.get_mut(), &step.reply).is_err() {
                    return 1;
                }
                let Conn::Plain(d) = reader.into_inner() else {
                    return 1; // the session never asks for STLS twice
                };
                match Conn::accept(d, cfg) {
                    Ok(c) => reader = LineReader::new(c),
                    Err(e) => {
                        handshake_failed(&e);
                        return 1;
                    }
                }
                session.tls_started();
            }
            Action::Login(creds) => return login(reader, creds, &timestamp, &child_argv, idle),
        }
    }
}

/// Runs the checkpassword program once. Without TLS and with nothing
/// pipelined, it gets the connection itself as fd 0/1 (qmail's way);
/// otherwise qmail-popup relays between the connection and a socketpair.
fn login(
    reader: LineReader<Conn>,
    creds: Credentials,
    timestamp: &str,
    argv: &[OsString],
    idle: Duration,
) -> i32 {
    let pending = reader.buffered().to_vec();
    let mut conn = reader.into_inner();
    let direct = !conn.is_tls() && pending.is_empty();
    let (rd, wr) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
        Ok(p) => p,
        Err(e) => {
            crate::elog!("qmail-popup: pipe: {e}");
            let _ = write_all(&mut conn, reply::UNABLE_TO_RUN);
            return 1;
        }
    };
    let pair = if direct {
        None
    } else {
        use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};
        match socketpair(
            AddressFamily::Unix,
            SockType::Stream,
            None,
            SockFlag::SOCK_CLOEXEC,
        ) {
            Ok(p) => Some(p),
            Err(e) => {
                crate::elog!("qmail-popup: socketpair: {e}");
                let _ = write_all(&mut conn, reply::UNABLE_TO_RUN);
                return 1;
            }
        }
    };
    let (ours, theirs) = match pair {
        Some((a, b)) => (Some(a), Some(b)),
        None => (None, None),
    };
    let mut child = match crate::sys::pop3::spawn_with_fd3(argv, theirs, rd) {
        Ok(c) => c,
        Err(e) => {
            crate::elog!(
                "qmail-popup: unable to run {}: {}",
                argv[0].to_string_lossy(),
                crate::deliver::errstr(&e)
            );
            let _ = write_all(&mut conn, reply::UNABLE_TO_RUN);
            return 1;
        }
    };
    let mut record = creds.record(timestamp);
    drop(creds);
    let mut w = std::fs::File::from(wr);
    // A checkpassword program that does not read fd 3 gets EPIPE here; it decides.
    let _ = w.write_all(&record);
    drop(w);
    record.iter_mut().for_each(|b| *b = 0);

    match ours {
        None => {
            let status = child.wait();
            match failure_reply(status) {
                None => 0,
                Some(msg) => {
                    let _ = write_all(&mut conn, &msg);
                    1
                }
            }
        }
        Some(sock) => {
            let sock = std::os::unix::net::UnixStream::from(sock);
            let mut status = None;
            let mut silent = || {
                let st = child.wait();
                let msg = failure_reply(st).unwrap_or_default();
                status = Some(msg.is_empty());
                msg
            };
            let r = super::relay::relay(conn, pending, sock, idle, &mut silent);
            let _ = child.wait();
            match (r, status) {
                (Ok(_), Some(false)) => 1,
                (Ok(_), _) => 0,
                (Err(e), _) => {
                    crate::elog!("qmail-popup: relay: {}", crate::deliver::errstr(&e));
                    1
                }
            }
        }
    }
}

/// What the client is told when the child ends without having said anything:
/// nothing for exit 0, the (delayed) `-ERR authorization failed` for any
/// other exit, `-ERR aack, child crashed` for a signal.
fn failure_reply(status: io::Result<std::process::ExitStatus>) -> Option<Vec<u8>> {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(s) if s.success() => None,
        Ok(s) if s.signal().is_some() => Some(reply::CHILD_CRASHED.to_vec()),
        _ => {
            std::thread::sleep(FAIL_DELAY);
            Some(reply::AUTH_FAILED.to_vec())
        }
    }
}

/// qmail-pop3d: `qmail-pop3d MAILDIR`, run by the checkpassword program in
/// the account's home directory. Returns the exit code (0 once it has
/// answered, so qmail-popup adds nothing).
pub fn pop3d(args: Vec<OsString>) -> i32 {
    let roots = Roots::from_env();
    let idle = timeout(&roots);
    let Ok(Duplex { rd, wr }) = Duplex::stdio(Some(idle)) else {
        crate::elog!("qmail-pop3d: fd 0 or 1 is not open");
        return 1;
    };
    let mut out = BufWriter::with_capacity(64 * 1024, wr);
    let say = |out: &mut BufWriter<crate::io::FdStream>, b: &[u8]| {
        let _ = out.write_all(b).and_then(|_| out.flush());
    };
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."));
    let Some(dir) = args.get(1) else {
        say(&mut out, reply::NO_MAILDIR);
        return 0;
    };
    if crate::fsutil::chdir(std::path::Path::new(dir)).is_err() {
        say(&mut out, reply::NO_MAILDIR);
        return 0;
    }
    // One session per mailbox (RFC 1939 section 8): a flock on the Maildir
    // directory itself, held until this program exits. A second client gets
    // IN-USE instead of the same messages; nothing is written to the Maildir.
    // A Maildir others may read is not locked: any local user could hold
    // the lock and keep its owner out.
    let private = {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(".").is_ok_and(|m| m.permissions().mode() & 0o004 == 0)
    };
    let _lock = match std::fs::File::open(".").ok().filter(|_| private) {
        Some(f) => match crate::sys::try_flock_exclusive(&f) {
            Ok(true) => Some(f),
            Ok(false) => {
                crate::elog!(
                    "qmail-pop3d: {}: refused: mailbox in use by another session",
                    home.display()
                );
                say(&mut out, reply::IN_USE);
                return 0;
            }
            Err(_) => None,
        },
        None => None,
    };
    let mut md = Maildir::new(".");
    let now = crate::timefmt::now();
    let msgs = match md.scan(now) {
        Ok(m) => m,
        Err(_) => {
            say(&mut out, reply::UNABLE_TO_SCAN);
            return 0;
        }
    };
    let every = poll_interval_logged(&roots);
    match interval::admit(&home, every, now) {
        Ok(Admission::Admitted) => {}
        Ok(Admission::TooSoon { wait }) => {
            // In the log too: some clients show this refusal as a wrong
            // password.
            crate::elog!(
                "qmail-pop3d: {}: refused: logged in too soon (poll limit {every}s, {wait}s to wait)",
                home.display()
            );
            say(&mut out, &reply::login_delay(every, wait));
            return 0;
        }
        Err(e) => crate::elog!(
            "qmail-pop3d: poll limit not enforced: {}/{}: {}",
            home.display(),
            interval::STAMP,
            crate::deliver::errstr(&e)
        ),
    }
    md.clean_tmp(now);
    let mut session = Session::new(msgs, every);
    say(&mut out, reply::OK);
    let mut reader = LineReader::new(rd);
    loop {
        let r = match reader.read_line(MAX_LINE + 1) {
            Ok(Line::Line(l)) => session.line(&l, &mut md, &mut out),
            Ok(Line::TooLong) => session.too_long(&mut out),
            // End of input or a timeout: leave without changing anything.
            Ok(Line::Eof) | Err(_) => return 0,
        };
        match r {
            Ok(Outcome::Continue) => {
                // Pipelined commands are answered in one write; the replies
                // go out before any read that may wait (qmail flushes before
                // every read), so a partial line buffered does not hold back
                // the answers to the complete ones before it.
                if !reader.buffered().contains(&b'\n') && out.flush().is_err() {
                    return 0;
                }
            }
            Ok(Outcome::Quit) => {
                let c = md.commit(session.messages());
                say(&mut out, Session::quit_reply(c.all_unlinked));
                return 0;
            }
            Ok(Outcome::Close) | Err(_) => {
                let _ = out.flush();
                return 0;
            }
        }
    }
}
/// One log line for a failed TLS handshake, with the client's address
/// (an expired certificate shows up here first).
fn handshake_failed(e: &std::io::Error) {
    let ip = std::env::var("TCPREMOTEIP").unwrap_or_else(|_| "unknown".into());
    let ip = crate::paths::loggable(&ip);
    crate::elog!("qmail-popup: TLS handshake failed for {ip}: {e}");
}
