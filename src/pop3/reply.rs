//! Every reply text of qmail-popup and qmail-pop3d, in one table.
//!
//! The texts are qmail's (COMPAT section 9), including the trailing space of
//! `+OK `. Replies that qmail does not have (CAPA, STLS, AUTH, the poll limit,
//! the bounds on command lines) are marked as ours.

/// `+OK ` with qmail's trailing space.
pub const OK: &[u8] = b"+OK \r\n";
/// Missing or malformed argument.
pub const SYNTAX: &[u8] = b"-ERR syntax error\r\n";
/// PASS before USER.
pub const USER_FIRST: &[u8] = b"-ERR USER first\r\n";
/// Any command other than the pre-authentication ones.
pub const AUTH_FIRST: &[u8] = b"-ERR authorization first\r\n";
/// The checkpassword program exited non-zero.
pub const AUTH_FAILED: &[u8] = b"-ERR authorization failed\r\n";
/// The checkpassword program (or the server behind it) died of a signal.
pub const CHILD_CRASHED: &[u8] = b"-ERR aack, child crashed\r\n";
/// qmail-popup could not start the checkpassword program.
pub const UNABLE_TO_RUN: &[u8] = b"-ERR unable to run checkpassword\r\n";
/// qmail-popup's usage error.
pub const USAGE_POPUP: &[u8] = b"-ERR usage: popup hostname subprogram\r\n";

/// Unknown command after authentication.
pub const UNIMPLEMENTED: &[u8] = b"-ERR unimplemented\r\n";
/// Message number 0.
pub const COUNTED_FROM_1: &[u8] = b"-ERR messages are counted from 1\r\n";
/// Message number past the end.
pub const NOT_THAT_MANY: &[u8] = b"-ERR not that many messages\r\n";
/// Message already marked deleted.
pub const ALREADY_DELETED: &[u8] = b"-ERR already deleted\r\n";
/// The message file cannot be opened (gone, say, after another session's QUIT).
pub const UNABLE_TO_OPEN: &[u8] = b"-ERR unable to open that message\r\n";
/// QUIT could not unlink a marked message.
pub const UNABLE_TO_UNLINK: &[u8] = b"-ERR unable to unlink all deleted messages\r\n";
/// `chdir(Maildir)` failed.
pub const NO_MAILDIR: &[u8] = b"-ERR this user has no $HOME/Maildir\r\n";
/// Reading new/ or cur/ failed.
pub const UNABLE_TO_SCAN: &[u8] = b"-ERR unable to scan $HOME/Maildir\r\n";

// Ours: bounds on input (qmail has none).
/// A command line over [`super::command::MAX_LINE`] bytes.
pub const TOO_LONG: &[u8] = b"-ERR command line too long\r\n";
/// A command line with a NUL byte.
pub const NUL_BYTE: &[u8] = b"-ERR NUL byte in command line\r\n";

// Ours: STLS (RFC 2595).
/// STLS accepted; the handshake follows.
pub const STLS_GO: &[u8] = b"+OK begin TLS negotiation\r\n";
/// STLS with an argument (it takes none).
pub const STLS_ARGS: &[u8] = b"-ERR STLS takes no arguments\r\n";
/// STLS without a certificate.
pub const STLS_UNAVAILABLE: &[u8] = b"-ERR STLS not available\r\n";
/// STLS once TLS is on.
pub const STLS_ACTIVE: &[u8] = b"-ERR TLS already active\r\n";
/// Bytes pipelined after STLS (they could be an injection, CVE-2011-0411).
pub const STLS_PIPELINED: &[u8] =
    b"-ERR STLS refused: commands were pipelined after STLS; closing\r\n";

// Ours: SASL (RFC 5034).
/// Empty server challenge of SASL PLAIN.
pub const SASL_GO_AHEAD: &[u8] = b"+ \r\n";
/// `AUTH` without arguments lists the mechanisms (the RFC 1734 form clients still use).
pub const SASL_LIST: &[u8] = b"+OK \r\nPLAIN\r\n.\r\n";
/// Unknown SASL mechanism.
pub const SASL_UNKNOWN: &[u8] = b"-ERR unrecognized authentication type\r\n";
/// `*` in answer to the challenge.
pub const SASL_CANCELLED: &[u8] = b"-ERR authentication cancelled\r\n";
/// Bad base64 or a PLAIN message without its NULs.
pub const SASL_MALFORMED: &[u8] = b"-ERR malformed authentication data\r\n";
/// An authorization identity other than the login name.
pub const SASL_AUTHZID: &[u8] = b"-ERR authorization identity must be empty or the login name\r\n";

/// The APOP banner: `+OK <PID.TIME@HOST>`.
pub fn greeting(timestamp: &str) -> Vec<u8> {
    if timestamp.is_empty() {
        return b"+OK\r\n".to_vec();
    }
    format!("+OK {timestamp}\r\n").into_bytes()
}

/// `+OK COUNT OCTETS` and other `+OK N ...` lines.
pub fn ok_text(text: &str) -> Vec<u8> {
    format!("+OK {text}\r\n").into_bytes()
}

/// Ours: another session has the mailbox (RFC 1939 section 8's exclusive
/// lock, RFC 2449's IN-USE response code).
pub const IN_USE: &[u8] =
    b"-ERR [IN-USE] this mailbox is in use by another session; try again later\r\n";

/// Ours: the poll limit (RFC 2449 LOGIN-DELAY response code).
pub fn login_delay(interval: u64, wait: u64) -> Vec<u8> {
    let unit = |n: u64| if n == 1 { "second" } else { "seconds" };
    format!(
        "-ERR [LOGIN-DELAY] logged in too soon: this account may log in once every {interval} {}; try again in {wait} {}\r\n",
        unit(interval),
        unit(wait)
    )
    .into_bytes()
}

/// The CAPA list (RFC 2449). `pre_auth` adds USER, SASL and STLS as offered.
pub fn capa(pre_auth: bool, stls: bool, login_delay: u64) -> Vec<u8> {
    let mut s =
        String::from("+OK capability list follows\r\nTOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\n");
    if login_delay > 0 {
        s.push_str(&format!("LOGIN-DELAY {login_delay}\r\n"));
    }
    if pre_auth {
        s.push_str("USER\r\nSASL PLAIN\r\n");
        if stls {
            s.push_str("STLS\r\n");
        }
    }
    s.push_str("IMPLEMENTATION vqmail\r\n.\r\n");
    s.into_bytes()
}
