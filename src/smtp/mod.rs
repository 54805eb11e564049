//! SMTP: the qmail-smtpd server session, the qmail-remote client and Received lines.
//!
//! Server side (qmail-smtpd):
//! * [`session`]: the pure state machine (commands in, replies and outcomes out);
//! * [`reply`]: every reply text, in one table;
//! * [`data`]: the DATA dot-decoder (SMTP smuggling, size limit, hop count);
//! * [`addr`]: qmail's address parsing, rcpthosts keys, badmailfrom;
//! * [`received`]: the `Received:` line;
//! * [`policy`]: the session's questions answered from control files, vpopmail,
//!   the open-smtp list, DNS and the checkpassword program;
//! * [`server`]: the only part that touches descriptors (fd 0/1, TLS,
//!   qmail-queue).

pub mod addr;
pub mod client;
pub mod data;
pub mod policy;
pub mod received;
pub mod reply;
pub mod server;
pub mod session;
