//! vqmail: qmail + vpopmail + POP3 as small, memory-safe programs.
//!
//! The programs meet on disk, exactly as qmail's and vpopmail's do:
//!
//! ```text
//!  client --tcpserver--> qmail-smtpd --fd0/fd1--> qmail-queue --> queue/ (mess, intd, todo)
//!                          |  AUTH: checkpassword (vchkpw) on fd 3
//!                          |  relay: RELAYCLIENT from tcp.smtp.cdb, or the open-smtp list
//!  qmail-inject/sendmail --'
//!  qmail-start --> qmail-send --(local)--> qmail-local --> .qmail lines
//!                     |                         `-> | vdelivermail '' bounce-no-mailbox --> Maildir
//!                     `-(remote)--> qmail-remote --> DNS MX --> SMTP(+STARTTLS) --> peer
//!  client --tcpserver--> qmail-popup --fd3--> vchkpw --exec--> qmail-pop3d
//!                                                `-> relay-open: open-smtp + tcp.smtp.cdb
//!  admin shell --> vadddomain / vadduser / vdeluser / vpasswd / vsetuserquota / ...
//! ```
//!
//! Who runs as whom follows qmail: qmail-smtpd as `qmaild`, qmail-queue as `qmailq`,
//! qmail-send as `qmails`, remote delivery as `qmailr`, local delivery as the mailbox
//! owner (`vpopmail` for virtual domains). When one of these accounts does not exist
//! (a sandbox root made by `scripts/setup-root`, the tests), the programs keep the
//! invoking user's identity and say so once on stderr.
//!
//! Only [`sys`] contains `unsafe` code.
#![deny(unsafe_code)]

/// `crate::elog!` in one `write`: the line is formatted first. Every session
/// under one tcpserver (and every delivery of one qmail-send) writes to the
/// same log, and `crate::elog!` writes a line in pieces, so lines written at
/// the same moment ran into each other.
#[macro_export]
macro_rules! elog {
    () => {
        $crate::elog!("")
    };
    ($($arg:tt)*) => {{
        let mut line = ::std::format!($($arg)*);
        line.push('\n');
        let _ = ::std::io::Write::write_all(&mut ::std::io::stderr(), line.as_bytes());
    }};
}

pub mod auth;
pub mod cdb;
pub mod control;
pub mod deliver;
pub mod dns;
pub mod fsutil;
#[cfg(test)]
pub(crate) mod fuzz;
pub mod io;
pub mod maildir;
pub mod paths;
pub mod pool;
pub mod pop3;
pub mod queue;
pub mod relay;
pub mod smtp;
#[allow(unsafe_code)]
pub mod sys;
pub mod tcprules;
pub mod timefmt;
pub mod vpop;
