//! Bounce texts in qmail's exact format: the per-recipient paragraphs kept in
//! `bounce/N`, and the failure notice qmail-send injects at the end.

/// The paragraph appended to `bounce/N` for one permanently failed recipient:
/// `<recip>:\n`, the report text (a `\n` added if missing; an empty line inside
/// it becomes a line starting with `/`), then an empty line.
pub fn paragraph(recip: &[u8], report: &[u8]) -> Vec<u8> {
    let mut t = b"<".to_vec();
    t.extend(recip.iter().map(|&b| if b == b'\n' { b'_' } else { b }));
    t.extend_from_slice(b">:\n");
    t.extend_from_slice(report);
    if !report.is_empty() && report.last() != Some(&b'\n') {
        t.push(b'\n');
    }
    let mut pos = t.len().saturating_sub(2);
    while pos > 0 {
        if t[pos] == b'\n' && t[pos - 1] == b'\n' {
            t[pos] = b'/';
        }
        pos -= 1;
    }
    t.push(b'\n');
    t
}

use crate::smtp::addr::{quote2, quote_local};

/// The header and explanation of a bounce, up to and including the line
/// `--- Below this line ...`, the blank line and the `Return-Path:` line; the
/// original message follows it.
///
/// `sender` is the original envelope sender (VERP already reduced); an empty
/// sender makes this a double bounce to `recip`.
pub fn notice(
    date: i64,
    bouncefrom: &[u8],
    bouncehost: &[u8],
    recip: &[u8],
    sender: &[u8],
    paragraphs: &[u8],
) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(b"Date: ");
    m.extend_from_slice(crate::timefmt::qmail_date(date).as_bytes());
    m.extend_from_slice(b"\nFrom: ");
    m.extend_from_slice(&quote_local(bouncefrom));
    m.push(b'@');
    m.extend_from_slice(bouncehost);
    m.extend_from_slice(b"\nTo: ");
    m.extend_from_slice(&crate::smtp::addr::header_safe(quote2(recip)));
    m.extend_from_slice(b"\nSubject: failure notice\n\nHi. This is the qmail-send program at ");
    m.extend_from_slice(bouncehost);
    if sender.is_empty() {
        m.extend_from_slice(
            b".\nI tried to deliver a bounce message to this address, but the bounce bounced!\n",
        );
    } else {
        m.extend_from_slice(
            b".\nI'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n",
        );
    }
    m.push(b'\n');
    m.extend_from_slice(paragraphs);
    if sender.is_empty() {
        m.extend_from_slice(b"--- Below this line is the original bounce.\n\n");
    } else {
        m.extend_from_slice(b"--- Below this line is a copy of the message.\n\n");
    }
    m.extend_from_slice(b"Return-Path: <");
    m.extend_from_slice(&crate::smtp::addr::header_safe(quote2(sender)));
    m.extend_from_slice(b">\n");
    m
}

/// VERP: a sender ending in `-@[]` gets `recipbox=reciphost` spliced in for each
/// copy: `owner-@host-@[]` to `joe@example.com` → `owner-joe=example.com@host`.
pub fn verp_sender(sender: &[u8], recip: &[u8]) -> Vec<u8> {
    if !sender.ends_with(b"-@[]") || sender.len() < 5 {
        return sender.to_vec();
    }
    let base = &sender[..sender.len() - 4]; // "owner-@host"
    let Some(at) = base.iter().rposition(|&b| b == b'@') else {
        return sender.to_vec();
    };
    let mut out = base[..at].to_vec();
    match recip.iter().rposition(|&b| b == b'@') {
        Some(ra) => {
            out.extend_from_slice(&recip[..ra]);
            out.push(b'=');
            out.extend_from_slice(&recip[ra + 1..]);
        }
        None => out.extend_from_slice(recip),
    }
    out.extend_from_slice(&base[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraph_format() {
        assert_eq!(
            paragraph(
                b"joe@example.com",
                b"Sorry, no mailbox here by that name. (#5.1.1)\n"
            ),
            b"<joe@example.com>:\nSorry, no mailbox here by that name. (#5.1.1)\n\n".to_vec()
        );
        assert_eq!(paragraph(b"a\nb", b"x"), b"<a_b>:\nx\n\n".to_vec());
        assert_eq!(paragraph(b"a", b"x\n\ny\n"), b"<a>:\nx\n/y\n\n".to_vec());
    }

    #[test]
    fn notice_format() {
        let n = notice(
            812090814,
            b"MAILER-DAEMON",
            b"h.test",
            b"s@x.test",
            b"s@x.test",
            b"<j@h.test>:\nno.\n\n",
        );
        assert_eq!(
            String::from_utf8(n).unwrap(),
            "Date: 26 Sep 1995 04:46:54 -0000\nFrom: MAILER-DAEMON@h.test\nTo: s@x.test\n\
Subject: failure notice\n\nHi. This is the qmail-send program at h.test.\n\
I'm afraid I wasn't able to deliver your message to the following addresses.\n\
This is a permanent error; I've given up. Sorry it didn't work out.\n\n\
<j@h.test>:\nno.\n\n--- Below this line is a copy of the message.\n\n\
Return-Path: <s@x.test>\n"
        );
        let d = String::from_utf8(notice(0, b"M", b"h", b"postmaster@h", b"", b"")).unwrap();
        assert!(d.contains("but the bounce bounced!\n\n--- Below this line is the original bounce.\n\nReturn-Path: <>\n"));
        // A sender with a line break (a local injection) stays in its fields.
        let odd = b"a\nX-Fake: 1@x.test";
        let n = String::from_utf8(notice(0, b"M", b"h", odd, odd, b"")).unwrap();
        assert!(!n.contains("\nX-Fake"), "{n}");
        assert!(n.contains("\nTo: \"a_X-Fake: 1\"@x.test\n"), "{n}");
    }

    #[test]
    fn quoting_and_verp() {
        assert_eq!(quote2(b"a b@c"), b"\"a b\"@c".to_vec());
        assert_eq!(quote2(b"a.b@c"), b"a.b@c".to_vec());
        assert_eq!(
            verp_sender(b"owner-@host-@[]", b"joe@example.com"),
            b"owner-joe=example.com@host".to_vec()
        );
        assert_eq!(verp_sender(b"a@b", b"c@d"), b"a@b".to_vec());
    }
}
