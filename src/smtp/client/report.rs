//! qmail-remote's report on fd 1 (qmail-remote(8), COMPAT section 6) and the
//! one table of its texts.
//!
//! The report is zero or more recipient reports (`r` accepted, `h`
//! permanently rejected, `s` temporarily rejected) and then one message
//! report (`K` success, `Z` temporary failure, `D` permanent failure), each
//! a letter, a human-readable text and a NUL byte.

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rcpt {
    /// Accepted (`r`).
    Accepted,
    /// Permanently rejected (`h`), with the text.
    Perm(String),
    /// Temporarily rejected (`s`), with the text.
    Temp(String),
}

/// The message report's letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Letter {
    /// `K`: delivered.
    Success,
    /// `Z`: try again later.
    Temporary,
    /// `D`: give up.
    Permanent,
}

impl Letter {
    /// The byte written.
    pub fn byte(self) -> u8 {
        match self {
            Letter::Success => b'K',
            Letter::Temporary => b'Z',
            Letter::Permanent => b'D',
        }
    }
    /// `D` for a 5xx code, `Z` otherwise (qmail's rule for replies).
    pub fn for_code(code: u16) -> Letter {
        if code >= 500 {
            Letter::Permanent
        } else {
            Letter::Temporary
        }
    }
}

/// A complete report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Recipient reports, in argv order (possibly fewer than recipients, or none).
    pub recips: Vec<Rcpt>,
    /// The message report's letter.
    pub letter: Letter,
    /// The message report's text (lines ending in `\n`).
    pub text: String,
}

impl Report {
    /// A message report alone.
    pub fn msg(letter: Letter, text: impl Into<String>) -> Report {
        Report {
            recips: Vec::new(),
            letter,
            text: text.into(),
        }
    }
    /// `Z` + text.
    pub fn temp(text: impl Into<String>) -> Report {
        Report::msg(Letter::Temporary, text)
    }
    /// `D` + text.
    pub fn perm(text: impl Into<String>) -> Report {
        Report::msg(Letter::Permanent, text)
    }

    /// The bytes qmail-rspawn reads: each report ends in `\0`; NUL bytes
    /// inside texts become `?` as in qmail.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |letter: u8, text: &str| {
            out.push(letter);
            out.extend(text.bytes().map(|b| if b == 0 { b'?' } else { b }));
            out.push(0);
        };
        for r in &self.recips {
            match r {
                Rcpt::Accepted => put(b'r', ""),
                Rcpt::Perm(t) => put(b'h', t),
                Rcpt::Temp(t) => put(b's', t),
            }
        }
        put(self.letter.byte(), &self.text);
        out
    }
}

/// The report for all of `recips` when those for which `refused` holds were
/// refused with [`text::RECIPIENT_LINE_BREAK`] and `rep` is the report for
/// the others, in order. A recipient `rep` has no report for gets the
/// message's outcome, as qmail-rspawn would give it.
pub fn merge_refused(recips: &[Vec<u8>], refused: impl Fn(&[u8]) -> bool, rep: Report) -> Report {
    let mut theirs = rep.recips.into_iter();
    let mut out = Vec::with_capacity(recips.len());
    for r in recips {
        if refused(r) {
            out.push(Rcpt::Perm(text::RECIPIENT_LINE_BREAK.to_string()));
            continue;
        }
        out.push(theirs.next().unwrap_or_else(|| match rep.letter {
            Letter::Success => Rcpt::Accepted,
            Letter::Temporary => Rcpt::Temp(rep.text.clone()),
            Letter::Permanent => Rcpt::Perm(rep.text.clone()),
        }));
    }
    let letter = if out.contains(&Rcpt::Accepted) {
        rep.letter
    } else if rep.letter == Letter::Success {
        Letter::Permanent
    } else {
        rep.letter
    };
    Report {
        recips: out,
        letter,
        text: rep.text,
    }
}

/// qmail's texts (and the few vqmail adds, COMPAT section A). Each is
/// complete with its final newline.
pub mod text {
    /// Every address failed.
    pub const NO_CONNECTION: &str =
        "Sorry, I wasn't able to establish an SMTP connection. (#4.4.1)\n";
    /// Temporary DNS failure.
    pub const DNS_TEMP: &str = "Sorry, I couldn't find any host by that name. (#4.1.2)\n";
    /// No mail exchanger and no address.
    pub const NO_MX: &str = "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)\n";
    /// CNAME lookup failed temporarily.
    pub const CNAME_TEMP: &str = "CNAME lookup failed temporarily. (#4.4.3)\n";
    /// The message does not end with a newline.
    pub const PARTIAL_LINE: &str =
        "SMTP cannot transfer messages with partial final lines. (#5.6.2)\n";
    /// Bad argv.
    pub const USAGE: &str = "I (qmail-remote) was invoked improperly. (#5.3.5)\n";
    /// Message unreadable.
    pub const READ_MESSAGE: &str = "Unable to read message. (#4.3.0)\n";
    /// Control files unreadable.
    pub const READ_CONTROLS: &str = "Unable to read control files. (#4.3.0)\n";
    /// The envelope sender holds a CR or LF (vqmail's text).
    pub const SENDER_LINE_BREAK: &str =
        "Sorry, the envelope sender contains a line break, which SMTP cannot carry. (#5.1.7)\n";
    /// A recipient holds a CR or LF (vqmail's text).
    pub const RECIPIENT_LINE_BREAK: &str =
        "Sorry, this address contains a line break, which SMTP cannot carry. (#5.1.3)\n";
    /// Every recipient was refused before any connection.
    pub const NO_RECIPIENTS: &str = "Sorry, no recipient could be sent. (#5.1.3)\n";
    /// We are the best MX.
    pub const IPME: &str = "Sorry. Although I'm listed as a best-preference MX or A for that host,\nit isn't in my control/locals file, so I don't treat it as local. (#5.4.6)\n";

    /// NXDOMAIN for the destination.
    pub fn no_host(host: &str) -> String {
        format!("Sorry, I couldn't find any host named {host}. (#5.1.2)\n")
    }
    /// The line placed before [`NO_MX`] (COMPAT section A).
    pub fn name_service_nodata(host: &str) -> String {
        format!("Name service error for {host}: Host found but no data record of requested type\n")
    }
    /// The smtproutes line for the domain has a port that is not one.
    pub fn bad_route_port(port: &str) -> String {
        format!("Unable to read control files: control/smtproutes has the bad port {port} for this domain. (#4.3.0)\n")
    }
    /// The smtproutes line for the domain has a relay that is not one.
    pub fn bad_route_relay(relay: &str) -> String {
        format!("Unable to read control files: control/smtproutes has the bad relay {relay} for this domain. (#4.3.0)\n")
    }
    /// RFC 7505 null MX.
    pub fn null_mx(host: &str) -> String {
        format!("Sorry, {host} does not accept mail (it publishes a null MX). (#5.1.10)\n")
    }
    /// The connection broke; `critical` after the final dot was sent.
    pub fn died(ip: &str, critical: bool, detail: &str) -> String {
        format!(
            "Connected to {ip} but connection died. {}{detail}(#4.4.2)\n",
            if critical { "Possible duplicate! " } else { "" }
        )
    }
    /// TLS was required and could not be had (COMPAT section A).
    pub fn tls_not_available(reason: &str, ip: &str) -> String {
        format!("TLS not available: connect failed: {reason}; connected to {ip}.\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_recipients_keep_their_places() {
        let all: Vec<Vec<u8>> = vec![b"a@x".to_vec(), b"b\r\n@x".to_vec(), b"c@x".to_vec()];
        let bad = |r: &[u8]| r.contains(&b'\n');
        let rep = Report {
            recips: vec![Rcpt::Accepted, Rcpt::Temp("later\n".into())],
            letter: Letter::Success,
            text: "ok\n".into(),
        };
        let m = merge_refused(&all, bad, rep);
        assert_eq!(
            m.recips,
            vec![
                Rcpt::Accepted,
                Rcpt::Perm(text::RECIPIENT_LINE_BREAK.into()),
                Rcpt::Temp("later\n".into())
            ]
        );
        assert_eq!(m.letter, Letter::Success);
        // The session died before any recipient: they get its outcome.
        let m = merge_refused(&all, bad, Report::temp("died\n"));
        assert_eq!(m.recips[0], Rcpt::Temp("died\n".into()));
        assert_eq!(m.recips[2], Rcpt::Temp("died\n".into()));
        assert_eq!(m.letter, Letter::Temporary);
        // Nothing left to send.
        let m = merge_refused(&all[1..2], bad, Report::perm(text::NO_RECIPIENTS));
        assert_eq!(
            m.to_bytes(),
            format!(
                "h{}\0D{}\0",
                text::RECIPIENT_LINE_BREAK,
                text::NO_RECIPIENTS
            )
            .into_bytes()
        );
    }
}
