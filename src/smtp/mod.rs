//! SMTP: the qmail-smtpd server session, the qmail-remote client and Received lines.
pub mod client;
