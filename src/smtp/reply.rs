//! Every reply qmail-smtpd sends, in one table: netqmail 1.06's texts, those of
//! the SMTP AUTH and TLS patches (COMPAT section 7), and vqmail's own where
//! COMPAT section A or the hosting profile adds a check.
//!
//! Replies that carry data (the greeting, `250 ok TIME qp PID`, queue errors)
//! are built by the functions below the table.

/// A fixed reply, CRLF included.
pub type Reply = &'static [u8];

/// `MAIL` accepted, `RCPT` accepted, `NOOP`.
pub const OK: Reply = b"250 ok\r\n";
/// `RSET`.
pub const FLUSHED: Reply = b"250 flushed\r\n";
/// `VRFY`.
pub const VRFY: Reply = b"252 send some mail, i'll try my best\r\n";
/// `HELP`.
pub const HELP: Reply = b"214 netqmail home page: http://qmail.org/netqmail\r\n";
/// `DATA` accepted, qmail-queue started.
pub const GO_AHEAD: Reply = b"354 go ahead\r\n";
/// `STARTTLS` accepted: the handshake follows.
pub const READY_FOR_TLS: Reply = b"220 ready for tls\r\n";
/// Unknown verb, and `STARTTLS` when TLS is not offered or already on.
pub const UNIMPLEMENTED: Reply = b"502 unimplemented (#5.5.1)\r\n";
/// Address over 900 bytes (and an empty `RCPT TO:<>`).
pub const SYNTAX: Reply = b"555 syntax error (#5.5.4)\r\n";
/// `RCPT` or `DATA` before `MAIL`.
pub const MAIL_FIRST: Reply = b"503 MAIL first (#5.5.1)\r\n";
/// `DATA` without an accepted recipient.
pub const RCPT_FIRST: Reply = b"503 RCPT first (#5.5.1)\r\n";
/// Sender listed in `control/badmailfrom` (given at `RCPT`, as qmail does).
pub const BADMAILFROM: Reply =
    b"553 sorry, your envelope sender is in my badmailfrom list (#5.7.1)\r\n";
/// Recipient domain not ours and no relay rights (COMPAT section A).
pub const NO_RELAY: Reply =
    b"553 sorry, that domain isn't allowed to be relayed thru this MTA (#5.7.1)\r\n";
/// Unknown user in a local vpopmail domain (`control/rcptcheck`).
pub const NO_MAILBOX: Reply = b"550 sorry, no mailbox here by that name. (#5.1.1)\r\n";
/// The recipient check could not be completed (a file could not be read).
pub const RCPT_TEMP: Reply = b"451 temporary problem checking the recipient (#4.3.0)\r\n";
/// Sender domain DNS lookup failed temporarily (`control/mfcheck`).
pub const SENDER_DNS_TEMP: Reply =
    b"451 temporary DNS failure checking the sender domain (#4.4.3)\r\n";
/// `MAIL FROM:<..> SIZE=n` with n over databytes, and a message over databytes.
pub const TOO_BIG: Reply = b"552 sorry, that message size exceeds my databytes limit (#5.3.4)\r\n";
/// 100 or more `Received:`/`Delivered-To:` header lines.
pub const LOOPING: Reply = b"554 too many hops, this message is looping (#5.4.6)\r\n";
/// More recipients than one message may have.
pub const TOO_MANY_RCPTS: Reply = b"452 sorry, too many recipients (#4.5.3)\r\n";
/// qmail-queue could not be started at `DATA`.
pub const QQT_FAILURE: Reply = b"451 qqt failure (#4.3.0)\r\n";
/// A bare LF in the message (then the connection is closed).
pub const STRAY_LF: Reply = b"451 See http://pobox.com/~djb/docs/smtplf.html.\r\n";
/// A NUL byte in the message (refused after the final dot).
pub const NUL_IN_DATA: Reply = b"554 sorry, I don't accept NUL bytes in messages (#5.6.0)\r\n";
/// A command line holding a NUL byte.
pub const NUL_IN_COMMAND: Reply = b"501 sorry, NUL byte in command (#5.5.2)\r\n";
/// A command line over 1000 bytes (CRLF included), read to its end and dropped.
pub const LINE_TOO_LONG: Reply = b"500 sorry, command line too long (#5.5.2)\r\n";
/// The third bad command (unknown verb, NUL byte, over-long line): then close.
pub const TOO_MANY_ERRORS: Reply = b"421 too many bad commands, closing connection (#4.7.0)\r\n";
/// Read timeout (then close).
pub const TIMEOUT: Reply = b"451 timeout (#4.4.2)\r\n";
/// Control files unreadable at start (then close).
pub const NO_CONTROLS: Reply = b"421 unable to read controls (#4.3.0)\r\n";
/// Bytes sent after `STARTTLS` before the handshake (CVE-2011-0411): close.
pub const PIPELINED_STARTTLS: Reply =
    b"554 sorry, commands pipelined after STARTTLS are refused (#5.5.1)\r\n";
/// The TLS handshake failed (then close), as the TLS patch says it.
pub fn tls_failed(why: &str) -> Vec<u8> {
    format!("454 TLS connection failed: {why} (#4.3.0)\r\n").into_bytes()
}
/// `control/servercert.pem` unusable when STARTTLS was asked for: the TLS
/// patch's texts for a missing certificate or private key.
pub fn tls_setup(e: &crate::io::tls::SetupError) -> Vec<u8> {
    use crate::io::tls::SetupError as E;
    match e {
        E::Certificate(t) => format!("454 TLS missing certificate: {t} (#4.3.0)\r\n"),
        E::Key(t) => format!("454 TLS no valid RSA private key: {t} (#4.3.0)\r\n"),
    }
    .into_bytes()
}

/// AUTH succeeded.
pub const AUTH_OK: Reply = b"235 ok, go ahead (#2.0.0)\r\n";
/// AUTH failed (sent after the delay).
pub const AUTH_FAILED: Reply = b"535 authorization failed (#5.7.0)\r\n";
/// AUTH twice.
pub const AUTH_ALREADY: Reply = b"503 you're already authenticated (#5.5.0)\r\n";
/// AUTH between MAIL and the end of DATA.
pub const AUTH_IN_MAIL: Reply = b"503 no auth during mail transaction (#5.5.0)\r\n";
/// AUTH without a checkpassword program on the command line.
pub const AUTH_UNAVAILABLE: Reply = b"503 auth not available (#5.3.3)\r\n";
/// AUTH with an unknown mechanism.
pub const AUTH_TYPE: Reply = b"504 auth type unimplemented (#5.5.1)\r\n";
/// `*` during the exchange.
pub const AUTH_CANCELED: Reply = b"501 auth exchange canceled (#5.0.0)\r\n";
/// Broken base64, empty user or password.
pub const AUTH_MALFORMED: Reply = b"501 malformed auth input (#5.5.4)\r\n";
/// AUTH in plaintext when `control/smtpauthtls` asks for TLS first (RFC 4954 538).
pub const AUTH_NEEDS_TLS: Reply =
    b"538 encryption required for requested authentication mechanism (#5.7.11)\r\n";
/// The checkpassword program could not be run.
pub const AUTH_CHILD: Reply = b"454 oops, problem with child and I can't auth (#4.3.0)\r\n";
/// LOGIN: `Username:`.
pub const AUTH_USERNAME: Reply = b"334 VXNlcm5hbWU6\r\n";
/// LOGIN: `Password:`.
pub const AUTH_PASSWORD: Reply = b"334 UGFzc3dvcmQ6\r\n";
/// PLAIN without an initial response.
pub const AUTH_PLAIN_GO: Reply = b"334 \r\n";

/// The greeting: `220 G ESMTP`.
pub fn greeting(g: &str) -> Vec<u8> {
    format!("220 {g} ESMTP\r\n").into_bytes()
}

/// `HELO`: `250 G`.
pub fn helo(g: &str) -> Vec<u8> {
    format!("250 {g}\r\n").into_bytes()
}

/// `QUIT`: `221 G`.
pub fn quit(g: &str) -> Vec<u8> {
    format!("221 {g}\r\n").into_bytes()
}

/// `EHLO`: the greeting text and the extensions, one per line.
pub fn ehlo(g: &str, extensions: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut lines = vec![g.to_string()];
    lines.extend(extensions.iter().cloned());
    for (i, l) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.extend_from_slice(format!("250{sep}{l}\r\n").as_bytes());
    }
    out
}

/// The message is queued: `250 ok TIME qp PID`.
pub fn accepted(time: i64, qp: u32) -> Vec<u8> {
    format!("250 ok {time} qp {qp}\r\n").into_bytes()
}

/// CRAM-MD5 challenge line: `334 base64(challenge)`.
pub fn challenge(b64: &str) -> Vec<u8> {
    format!("334 {b64}\r\n").into_bytes()
}

/// The sender domain has no MX and no address record (COMPAT section A).
pub fn sender_no_dns(addr: &[u8]) -> Vec<u8> {
    let mut r = b"553 Non-existing DNS_MX: MAIL FROM:<".to_vec();
    // Replies are printable US-ASCII (RFC 5321 4.2): a control byte (a
    // bare CR would break the line) or an 8-bit one is `?`, as in the
    // Received line.
    r.extend(
        addr.iter()
            .map(|&b| if (0x20..0x7f).contains(&b) { b } else { b'?' }),
    );
    r.extend_from_slice(b"> (#5.1.8)\r\n");
    r
}

/// STARTTLS with a parameter (the TLS patch's text).
pub const STARTTLS_PARAMS: Reply = b"501 Syntax error (no parameters allowed) (#5.5.4)\r\n";

/// qmail-queue failed: its exit code as qmail_close() words it (COMPAT 3),
/// `554` for a permanent result, `451` for a temporary one.
pub fn queue_failure(code: Option<i32>) -> Vec<u8> {
    let text = match code.map(crate::queue::enqueue::exit_text) {
        None => "Zqq crashed (#4.3.0)",
        // Exit 0 is not a failure; if it is reported as one, say "temporary".
        Some("") => "Zqq temporary problem (#4.3.0)",
        Some(t) => t,
    };
    let code = if text.starts_with('D') { "554" } else { "451" };
    format!("{code} {}\r\n", &text[1..]).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(greeting("mx.example.com"), b"220 mx.example.com ESMTP\r\n");
        assert_eq!(
            ehlo("g", &["PIPELINING".into(), "8BITMIME".into()]),
            b"250-g\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        );
        assert_eq!(accepted(1700000000, 42), b"250 ok 1700000000 qp 42\r\n");
        assert_eq!(
            queue_failure(Some(53)),
            b"451 qq write error or disk full (#4.3.0)\r\n"
        );
        assert_eq!(
            queue_failure(Some(31)),
            b"554 mail server permanently rejected message (#5.3.0)\r\n"
        );
        assert_eq!(
            queue_failure(Some(76)),
            b"451 qq temporary problem (#4.3.0)\r\n"
        );
        assert_eq!(
            sender_no_dns(b"a@nx.example"),
            b"553 Non-existing DNS_MX: MAIL FROM:<a@nx.example> (#5.1.8)\r\n"
        );
        assert_eq!(
            sender_no_dns(b"u\xe9@\xff.example"),
            b"553 Non-existing DNS_MX: MAIL FROM:<u?@?.example> (#5.1.8)\r\n"
        );
        assert_eq!(
            sender_no_dns(b"a\r553 x\t@nx.test\x7f"),
            b"553 Non-existing DNS_MX: MAIL FROM:<a?553 x?@nx.test?> (#5.1.8)\r\n"
        );
        for r in [OK, NO_RELAY, TOO_BIG, STRAY_LF, AUTH_OK] {
            assert!(r.ends_with(b"\r\n") && !r[..r.len() - 2].contains(&b'\n'));
        }
    }
}
