//! POP3 (RFC 1939, 2449, 2595, 5034): qmail-popup and qmail-pop3d.
//!
//! ```text
//! client --tcpserver--> qmail-popup HOST vchkpw qmail-pop3d Maildir
//!                         | USER/PASS, APOP, AUTH PLAIN, CAPA, STLS (popup.rs)
//!                         | fd 3: login\0password\0<PID.TIME@HOST>\0
//!                         `--fork--> vchkpw --exec--> qmail-pop3d (pop3d.rs, mailbox.rs)
//! ```
//!
//! Without TLS, the checkpassword program gets the connection as fd 0/1, as
//! with qmail. With TLS (POP3S, or after STLS), qmail-popup keeps the TLS
//! session and relays plaintext to the child over a socketpair ([`relay`]).
//! Either way qmail-popup learns the outcome of the login from the child: a
//! checkpassword program that refuses exits non-zero without output, and
//! qmail-popup then answers `-ERR authorization failed` (after
//! [`server::FAIL_DELAY`]) and closes; on success, qmail-pop3d's first output
//! is the `+OK ` answering PASS. qmail-pop3d enforces the poll limit
//! ([`interval`]).

pub mod command;
pub mod interval;
pub mod mailbox;
pub mod pop3d;
pub mod popup;
pub mod relay;
pub mod reply;
pub mod server;
