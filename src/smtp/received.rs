//! The `Received:` line qmail-smtpd puts on top of each message (qmail's
//! `received()`; qmail-queue later adds its own line above it):
//!
//! ```text
//! Received: from REMOTEHOST (HELO helo) (REMOTEINFO@REMOTEIP)
//!   by LOCALHOST with SMTP; 26 Sep 1995 04:46:54 -0000
//! ```
//!
//! The protocol is `SMTP` as in qmail, or after AUTH and/or STARTTLS the RFC
//! 3848 names `ESMTPA`, `ESMTPS` and `ESMTPSA`, the TLS ones followed by the
//! cipher as the qmail TLS patch writes it: `with ESMTPS (CIPHER encrypted)`.

/// What goes into the line.
#[derive(Debug, Clone, Default)]
pub struct Fields<'a> {
    /// `TCPREMOTEHOST` ("unknown" when not set).
    pub remote_host: &'a str,
    /// The HELO/EHLO argument, shown only when it differs from the remote host.
    pub helo: Option<&'a str>,
    /// `TCPREMOTEINFO`, or the authenticated user.
    pub remote_info: Option<&'a str>,
    /// `TCPREMOTEIP`.
    pub remote_ip: &'a str,
    /// `TCPLOCALHOST`.
    pub local_host: &'a str,
    /// True after a successful AUTH.
    pub authenticated: bool,
    /// The TLS cipher when the session is encrypted.
    pub tls: Option<&'a str>,
}

/// qmail's `issafe()`: other bytes become `?`.
fn safe(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b".@%+/=:-".contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// Cipher names keep their underscores.
fn safe_cipher(s: &str) -> String {
    s.bytes()
        .map(|c| {
            if c.is_ascii_alphanumeric() || b"._:-".contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// The protocol word(s) after `with`.
pub fn protocol(authenticated: bool, tls: Option<&str>) -> String {
    match (authenticated, tls) {
        (false, None) => "SMTP".to_string(),
        (true, None) => "ESMTPA".to_string(),
        (false, Some(c)) => format!("ESMTPS ({} encrypted)", safe_cipher(c)),
        (true, Some(c)) => format!("ESMTPSA ({} encrypted)", safe_cipher(c)),
    }
}

/// The whole line, LF-terminated, for the time `t`.
pub fn line(f: &Fields, t: i64) -> String {
    let mut s = format!("Received: from {}", safe(f.remote_host));
    if let Some(h) = f.helo {
        if !h.eq_ignore_ascii_case(f.remote_host) {
            s.push_str(&format!(" (HELO {})", safe(h)));
        }
    }
    s.push_str(" (");
    if let Some(i) = f.remote_info {
        s.push_str(&safe(i));
        s.push('@');
    }
    s.push_str(&safe(f.remote_ip));
    s.push_str(&format!(
        ")\n  by {} with {}; {}\n",
        safe(f.local_host),
        protocol(f.authenticated, f.tls),
        crate::timefmt::qmail_date(t)
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_qmail() {
        let f = Fields {
            remote_host: "unknown",
            helo: Some("client.example"),
            remote_info: None,
            remote_ip: "192.0.2.1",
            local_host: "mx.example.com",
            authenticated: false,
            tls: None,
        };
        assert_eq!(
            line(&f, 812090814),
            "Received: from unknown (HELO client.example) (192.0.2.1)\n  by mx.example.com with SMTP; 26 Sep 1995 04:46:54 -0000\n"
        );
        let f = Fields {
            remote_host: "Client.Example",
            helo: Some("client.example"),
            remote_info: Some("joe@example.com"),
            authenticated: true,
            tls: Some("TLSv1_3:TLS13_AES_256_GCM_SHA384"),
            ..f
        };
        assert_eq!(
            line(&f, 812090814),
            "Received: from Client.Example (joe@example.com@192.0.2.1)\n  by mx.example.com with ESMTPSA (TLSv1_3:TLS13_AES_256_GCM_SHA384 encrypted); 26 Sep 1995 04:46:54 -0000\n"
        );
        assert_eq!(safe("a b\n<x>"), "a?b??x?");
    }
}
