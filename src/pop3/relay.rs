//! qmail-popup's relay: after a login over TLS (or with commands pipelined
//! behind it), qmail-popup keeps the client connection and copies plaintext
//! between it and the checkpassword program (and so qmail-pop3d), which runs
//! on one end of a socketpair as its fd 0 and fd 1.
//!
//! One poll loop, all descriptors non-blocking, bounded buffers in both
//! directions (so neither side can make the other block, nor fill memory).
//! The client hanging up shuts the child's input (qmail-pop3d then ends
//! without QUIT, deleting nothing); the child closing its end ends the relay
//! after everything it wrote has reached the client.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use rustls::ServerConnection;

use crate::io::tls::Conn;
use crate::io::Duplex;
use crate::sys::pop3::borrow_fd;

/// Largest amount buffered in either direction before reading pauses.
const HIGH_WATER: usize = 64 * 1024;

/// How the relay ended.
#[derive(Debug, PartialEq, Eq)]
pub struct RelayEnd {
    /// The child wrote something (so it answered the login itself).
    pub child_spoke: bool,
    /// The client went away or was idle for too long.
    pub client_gone: bool,
}

/// Decrypts what rustls has read and moves the plaintext to `to_child`,
/// until there is no more or `to_child` is full; true at the client's end of
/// input, `Err` on a TLS error.
fn drain_tls(c: &mut ServerConnection, to_child: &mut Vec<u8>, buf: &mut [u8]) -> Result<bool, ()> {
    loop {
        c.process_new_packets().map_err(|_| ())?;
        let mut got = 0;
        loop {
            match c.reader().read(buf) {
                Ok(0) => return Ok(true),
                Ok(n) => {
                    got += n;
                    to_child.extend_from_slice(&buf[..n]);
                }
                Err(e) if is_would_block(&e) => break,
                Err(_) => return Ok(true),
            }
        }
        if got == 0 || to_child.len() >= HIGH_WATER {
            return Ok(false);
        }
    }
}

fn is_would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted
}

/// Relays between the client (`conn`, with `pending` bytes already read from
/// it) and the child's socket. When the child closes without having written
/// anything, `silent_end()` gives the bytes to send to the client before the
/// connection closes (the `-ERR` for a failed login).
pub fn relay(
    conn: Conn,
    pending: Vec<u8>,
    mut child: UnixStream,
    idle: Duration,
    silent_end: &mut dyn FnMut() -> Vec<u8>,
) -> io::Result<RelayEnd> {
    let (mut tls, mut duplex): (Option<ServerConnection>, Duplex) = match conn {
        Conn::Plain(d) => (None, d),
        Conn::Tls(b) => {
            let s = *b;
            let mut c = s.conn;
            c.set_buffer_limit(None);
            (Some(c), s.sock)
        }
    };
    duplex.set_timeout(None);
    crate::sys::pop3::set_nonblocking(duplex.rd.raw_fd(), true)?;
    crate::sys::pop3::set_nonblocking(duplex.wr.raw_fd(), true)?;
    child.set_nonblocking(true)?;
    let idle_ms = PollTimeout::try_from(i32::try_from(idle.as_millis()).unwrap_or(i32::MAX))
        .unwrap_or(PollTimeout::MAX);

    let mut to_child = pending;
    let mut to_client: Vec<u8> = Vec::new();
    let mut end = RelayEnd {
        child_spoke: false,
        client_gone: false,
    };
    let (mut client_eof, mut child_eof, mut child_shut) = (false, false, false);
    let mut buf = vec![0u8; 16 * 1024];
    // Since when output has waited for the client without it taking any: a
    // client that takes none for the idle time is gone, whatever it sends.
    let mut out_waiting: Option<std::time::Instant> = None;

    loop {
        // Plaintext rustls holds already: decrypted at the login and not yet
        // read, or records it stopped decrypting when its buffer was full.
        // No new bytes on the socket may come to announce them.
        if let Some(c) = &mut tls {
            if !client_eof && to_child.len() < HIGH_WATER {
                match drain_tls(c, &mut to_child, &mut buf) {
                    Ok(eof) => client_eof |= eof,
                    Err(()) => {
                        // Send the alert rustls queued, then give up.
                        let _ = c.write_tls(&mut duplex.wr);
                        end.client_gone = true;
                        return Ok(end);
                    }
                }
            }
        }
        // Before waiting: the client's end of input (a close_notify found
        // just now, or a hang-up read last time) reaches the child at once.
        if client_eof && to_child.is_empty() && !child_shut {
            // qmail-pop3d sees end of input and ends without QUIT.
            let _ = child.shutdown(std::net::Shutdown::Write);
            child_shut = true;
        }
        let client_out = match &tls {
            Some(c) => c.wants_write(),
            None => !to_client.is_empty(),
        };
        if child_eof && !client_out {
            break;
        }
        let mut wait_ms = idle_ms;
        if client_out {
            let waited = out_waiting
                .get_or_insert_with(std::time::Instant::now)
                .elapsed();
            if waited >= idle {
                end.client_gone = true;
                return Ok(end);
            }
            wait_ms = PollTimeout::try_from(
                i32::try_from((idle - waited).as_millis()).unwrap_or(i32::MAX),
            )
            .unwrap_or(PollTimeout::MAX);
        } else {
            out_waiting = None;
        }
        let want_client_in = !client_eof && !child_eof && to_child.len() < HIGH_WATER;
        let want_child_in = !child_eof
            && match &tls {
                Some(c) => !c.wants_write(),
                None => to_client.len() < HIGH_WATER,
            };
        let mut child_ev = PollFlags::empty();
        if want_child_in {
            child_ev |= PollFlags::POLLIN;
        }
        if !to_child.is_empty() && !child_eof {
            child_ev |= PollFlags::POLLOUT;
        }
        let (rd_ready, wr_ready, ch_in, ch_out) = {
            let rd_fd = borrow_fd(&duplex.rd);
            let wr_fd = borrow_fd(&duplex.wr);
            let mut client_ev = [PollFlags::empty(), PollFlags::empty()];
            if want_client_in {
                client_ev[0] = PollFlags::POLLIN;
            }
            if client_out {
                client_ev[1] = PollFlags::POLLOUT;
            }
            // Only descriptors with something to wait for: poll(2) reports a
            // hang-up even for one asked for nothing, and a client gone
            // while the child works would make the loop spin.
            let mut slots: Vec<usize> = Vec::with_capacity(3);
            let mut fds: Vec<PollFd> = Vec::with_capacity(3);
            for (i, (fd, ev)) in [
                (rd_fd, client_ev[0]),
                (wr_fd, client_ev[1]),
                (child.as_fd(), child_ev),
            ]
            .into_iter()
            .enumerate()
            {
                if !ev.is_empty() {
                    slots.push(i);
                    fds.push(PollFd::new(fd, ev));
                }
            }
            match poll(&mut fds, wait_ms) {
                // Idle: a client that takes none of the output is gone. A
                // wait for the client's commands or for the child's answer is
                // the child's to time out (qmail-pop3d ends after its own
                // idle time, as it would on the socket itself), so a child
                // working long on a QUIT loses none of its replies.
                Ok(0) if client_out => {
                    end.client_gone = true;
                    return Ok(end);
                }
                Ok(0) => continue,
                Ok(_) => {}
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            }
            let r = |i: usize| {
                slots
                    .iter()
                    .position(|&s| s == i)
                    .and_then(|k| fds[k].revents())
                    .unwrap_or(PollFlags::empty())
            };
            let hup = PollFlags::POLLHUP | PollFlags::POLLERR;
            (
                want_client_in && r(0).intersects(PollFlags::POLLIN | hup),
                client_out && r(1).intersects(PollFlags::POLLOUT | hup),
                want_child_in && r(2).intersects(PollFlags::POLLIN | hup),
                !to_child.is_empty() && r(2).intersects(PollFlags::POLLOUT | hup),
            )
        };

        if ch_in {
            let got = match child.read(&mut buf) {
                Ok(n) => Some(n),
                Err(e) if is_would_block(&e) => None,
                // A reset (the child ended without reading what the client
                // had sent ahead) is an end like any other: a failed login
                // still gets its -ERR and its delay.
                Err(_) => Some(0),
            };
            match got {
                None => {}
                Some(0) => {
                    child_eof = true;
                    if !end.child_spoke {
                        let msg = silent_end();
                        put_client(&mut tls, &mut to_client, &msg)?;
                    }
                    if let Some(c) = &mut tls {
                        c.send_close_notify();
                    }
                }
                Some(n) => {
                    end.child_spoke = true;
                    put_client(&mut tls, &mut to_client, &buf[..n])?;
                }
            }
        }
        if wr_ready || (child_eof && client_out) {
            let r = match &mut tls {
                Some(c) => {
                    let mut r = Ok(());
                    while c.wants_write() {
                        match c.write_tls(&mut duplex.wr) {
                            Ok(n) if n > 0 => out_waiting = Some(std::time::Instant::now()),
                            Ok(_) => {}
                            Err(e) => {
                                r = Err(e);
                                break;
                            }
                        }
                    }
                    r
                }
                None => match duplex.wr.write(&to_client) {
                    Ok(n) => {
                        if n > 0 {
                            out_waiting = Some(std::time::Instant::now());
                        }
                        to_client.drain(..n);
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            match r {
                Ok(()) => {}
                Err(e) if is_would_block(&e) => {
                    if child_eof {
                        // Wait until the client can take the rest.
                        let mut fds = [PollFd::new(borrow_fd(&duplex.wr), PollFlags::POLLOUT)];
                        if matches!(poll(&mut fds, idle_ms), Ok(0)) {
                            end.client_gone = true;
                            return Ok(end);
                        }
                    }
                }
                Err(_) => {
                    end.client_gone = true;
                    return Ok(end);
                }
            }
        }
        if rd_ready {
            match &mut tls {
                // Decrypted at the top of the loop.
                Some(c) => match c.read_tls(&mut duplex.rd) {
                    Ok(0) => client_eof = true,
                    Ok(_) => {}
                    Err(e) if is_would_block(&e) => {}
                    Err(_) => client_eof = true,
                },
                None => match duplex.rd.read(&mut buf) {
                    Ok(0) => client_eof = true,
                    Ok(n) => to_child.extend_from_slice(&buf[..n]),
                    Err(e) if is_would_block(&e) => {}
                    Err(_) => client_eof = true,
                },
            }
        }
        if ch_out {
            match child.write(&to_child) {
                Ok(n) => {
                    to_child.drain(..n);
                }
                Err(e) if is_would_block(&e) => {}
                Err(_) => to_child.clear(),
            }
        }
    }
    if !client_eof {
        linger(&duplex);
    }
    Ok(end)
}

/// After the last reply: the client's side is shut for writing, and what
/// it still sends is read and dropped until it closes (at most 2 s and
/// 1 MB), so that its unread commands do not make the kernel reset the
/// connection and lose the replies on their way.
fn linger(duplex: &Duplex) {
    use nix::sys::socket::{shutdown, Shutdown};
    if shutdown(duplex.wr.raw_fd(), Shutdown::Write).is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    let mut buf = [0u8; 16 * 1024];
    let mut dropped = 0usize;
    while dropped < 1 << 20 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let ms = PollTimeout::try_from(i32::try_from(left.as_millis()).unwrap_or(0))
            .unwrap_or(PollTimeout::ZERO);
        let mut fds = [PollFd::new(borrow_fd(&duplex.rd), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => return,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return,
        }
        match nix::unistd::read(borrow_fd(&duplex.rd), &mut buf) {
            Ok(0) => return,
            Ok(n) => dropped += n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => {}
            Err(_) => return,
        }
    }
}

fn put_client(
    tls: &mut Option<ServerConnection>,
    plain: &mut Vec<u8>,
    data: &[u8],
) -> io::Result<()> {
    match tls {
        Some(c) => c.writer().write_all(data),
        None => {
            plain.extend_from_slice(data);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::FdStream;
    use std::fs::File;
    use std::os::fd::OwnedFd;

    fn duplex(s: UnixStream) -> Duplex {
        let a = File::from(OwnedFd::from(s.try_clone().unwrap()));
        let b = File::from(OwnedFd::from(s));
        Duplex {
            rd: FdStream::new(a, None),
            wr: FdStream::new(b, None),
        }
    }

    #[test]
    fn plain_relay_both_ways_and_client_hangup_reaches_the_child() {
        let (client, server) = UnixStream::pair().unwrap();
        let (ours, mut theirs) = UnixStream::pair().unwrap();
        let child = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.write_all(b"+OK \r\n").unwrap();
            theirs.read_to_end(&mut got).unwrap(); // ends when the client hangs up
            theirs.write_all(b"bye\r\n").unwrap();
            got
        });
        let mut c = client;
        let reader = std::thread::spawn(move || {
            let mut first = [0u8; 6];
            c.read_exact(&mut first).unwrap();
            c.write_all(b"STAT\r\n").unwrap();
            c.shutdown(std::net::Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            (first.to_vec(), rest)
        });
        let mut silent = || b"never".to_vec();
        let end = relay(
            Conn::Plain(duplex(server)),
            b"LIST\r\n".to_vec(),
            ours,
            Duration::from_secs(10),
            &mut silent,
        )
        .unwrap();
        assert!(end.child_spoke);
        assert_eq!(child.join().unwrap(), b"LIST\r\nSTAT\r\n");
        let (first, rest) = reader.join().unwrap();
        assert_eq!(first, b"+OK \r\n");
        assert_eq!(rest, b"bye\r\n");
    }

    #[test]
    fn a_silent_child_gets_the_failure_reply_sent() {
        let (mut client, server) = UnixStream::pair().unwrap();
        let (ours, theirs) = UnixStream::pair().unwrap();
        drop(theirs); // checkpassword refused and exited without a word
        let mut silent = || b"-ERR authorization failed\r\n".to_vec();
        let end = relay(
            Conn::Plain(duplex(server)),
            Vec::new(),
            ours,
            Duration::from_secs(10),
            &mut silent,
        )
        .unwrap();
        assert!(!end.child_spoke);
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"-ERR authorization failed\r\n");
    }
}
