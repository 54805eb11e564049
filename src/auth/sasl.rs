//! SASL pieces shared by qmail-smtpd and qmail-popup: base64, PLAIN
//! (RFC 4616), LOGIN, CRAM-MD5 (RFC 2195) and APOP (RFC 1939 section 7).
//!
//! The exchanges themselves (prompts, `*` to cancel, replies) belong to each
//! protocol's session; this module only decodes what the client sent and
//! computes or checks digests. Digests are compared in constant time.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// The client sent something that is not valid for the mechanism
/// (`501 malformed auth input (#5.5.4)` in qmail-smtpd).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Malformed;

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("malformed auth input")
    }
}

impl std::error::Error for Malformed {}

/// `Username:` in base64, LOGIN's first prompt.
pub const LOGIN_USER_PROMPT: &str = "VXNlcm5hbWU6";
/// `Password:` in base64, LOGIN's second prompt.
pub const LOGIN_PASS_PROMPT: &str = "UGFzc3dvcmQ6";

/// Base64 as clients send it: padding optional, surrounding white space
/// ignored, nothing else tolerated.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Decodes one base64 line.
pub fn b64_decode(line: &[u8]) -> Result<Vec<u8>, Malformed> {
    let t = line.trim_ascii();
    B64.decode(t).map_err(|_| Malformed)
}

/// Encodes bytes as base64 with padding.
pub fn b64_encode(data: &[u8]) -> String {
    B64.encode(data)
}

/// The three fields of a PLAIN response.
#[derive(Clone, PartialEq, Eq)]
pub struct Plain {
    /// The authorization identity (usually empty; not used by qmail).
    pub authzid: Vec<u8>,
    /// The login.
    pub user: Vec<u8>,
    /// The password.
    pub password: Vec<u8>,
}

impl std::fmt::Debug for Plain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plain")
            .field("authzid", &String::from_utf8_lossy(&self.authzid))
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("password", &"<hidden>")
            .finish()
    }
}

/// Decodes a PLAIN response `base64(authzid \0 user \0 password)`. An empty
/// user or password, or a field count other than three, is malformed.
pub fn decode_plain(line: &[u8]) -> Result<Plain, Malformed> {
    let raw = b64_decode(line)?;
    let mut f = raw.split(|&c| c == 0);
    let (Some(authzid), Some(user), Some(password), None) =
        (f.next(), f.next(), f.next(), f.next())
    else {
        return Err(Malformed);
    };
    if user.is_empty() || password.is_empty() {
        return Err(Malformed);
    }
    Ok(Plain {
        authzid: authzid.to_vec(),
        user: user.to_vec(),
        password: password.to_vec(),
    })
}

/// Decodes one LOGIN response (the user name or the password); empty is
/// malformed, as are NUL bytes (they cannot reach checkpassword).
pub fn decode_login(line: &[u8]) -> Result<Vec<u8>, Malformed> {
    let v = b64_decode(line)?;
    if v.is_empty() || v.contains(&0) {
        return Err(Malformed);
    }
    Ok(v)
}

/// The CRAM-MD5 challenge `<PID.UNIXTIME@HOSTNAME>` (sent base64-encoded).
pub fn cram_challenge(hostname: &str, pid: u32, now: i64) -> String {
    format!("<{pid}.{now}@{hostname}>")
}

/// Decodes a CRAM-MD5 response `base64(user SP hexdigest)` into the user and
/// the lowercased digest.
pub fn decode_cram(line: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Malformed> {
    let raw = b64_decode(line)?;
    let sp = raw.iter().rposition(|&c| c == b' ').ok_or(Malformed)?;
    let (user, digest) = (&raw[..sp], &raw[sp + 1..]);
    if user.is_empty()
        || user.contains(&0)
        || digest.len() != 32
        || !digest.iter().all(u8::is_ascii_hexdigit)
    {
        return Err(Malformed);
    }
    Ok((user.to_vec(), digest.to_ascii_lowercase()))
}

/// Lowercase hex HMAC-MD5(key = secret, message = challenge).
pub fn cram_digest(secret: &[u8], challenge: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = <Hmac<Md5> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(challenge);
    hex(&mac.finalize().into_bytes())
}

/// True when `response` (hex, any case) is the CRAM-MD5 digest of `challenge`
/// under `secret`.
pub fn cram_verify(secret: &[u8], challenge: &[u8], response: &[u8]) -> bool {
    ct_eq_hex(cram_digest(secret, challenge).as_bytes(), response)
}

/// Lowercase hex MD5(timestamp + secret), the APOP digest.
pub fn apop_digest(timestamp: &[u8], secret: &[u8]) -> String {
    let mut h = Md5::new();
    h.update(timestamp);
    h.update(secret);
    hex(&h.finalize())
}

/// True when `response` (hex, any case) is the APOP digest of `timestamp` and
/// `secret`.
pub fn apop_verify(timestamp: &[u8], secret: &[u8], response: &[u8]) -> bool {
    ct_eq_hex(apop_digest(timestamp, secret).as_bytes(), response)
}

fn ct_eq_hex(expected: &[u8], given: &[u8]) -> bool {
    let given = given.to_ascii_lowercase();
    expected.len() == given.len() && bool::from(expected.ct_eq(&given))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_decodes_three_fields() {
        let p = decode_plain(b64_encode(b"\0joe@example.com\0secret").as_bytes()).unwrap();
        assert_eq!(p.user, b"joe@example.com");
        assert_eq!(p.password, b"secret");
        assert!(p.authzid.is_empty());
        let p = decode_plain(b"AGpvZQBzZWNyZXQ").unwrap(); // without padding
        assert_eq!(
            (p.user.as_slice(), p.password.as_slice()),
            (&b"joe"[..], &b"secret"[..])
        );
        assert!(!format!("{p:?}").contains("secret"));
        for bad in [
            b64_encode(b"joe\0secret"),
            b64_encode(b"\0\0secret"),
            b64_encode(b"\0joe\0"),
            b64_encode(b"a\0joe\0pw\0x"),
            "!!!!".to_string(),
            "AGpvZQBzZWNyZXQ=x".to_string(),
            String::new(),
        ] {
            assert_eq!(decode_plain(bad.as_bytes()), Err(Malformed), "{bad}");
        }
    }

    #[test]
    fn login_prompts_and_values() {
        assert_eq!(
            b64_decode(LOGIN_USER_PROMPT.as_bytes()).unwrap(),
            b"Username:"
        );
        assert_eq!(
            b64_decode(LOGIN_PASS_PROMPT.as_bytes()).unwrap(),
            b"Password:"
        );
        assert_eq!(decode_login(b"am9l\r\n").unwrap(), b"joe");
        assert_eq!(decode_login(b""), Err(Malformed));
        assert_eq!(decode_login(b"AA=="), Err(Malformed));
        assert_eq!(decode_login(b"*"), Err(Malformed));
    }

    #[test]
    fn cram_md5_rfc2195_example() {
        let ch = b"<1896.697170952@postoffice.reston.mci.net>";
        let d = cram_digest(b"tanstaaftanstaaf", ch);
        assert_eq!(d, "b913a602c7eda7a495b4e6e7334d3890");
        let resp = b64_encode(format!("tim {d}").as_bytes());
        assert_eq!(resp, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
        let (user, digest) = decode_cram(resp.as_bytes()).unwrap();
        assert_eq!(user, b"tim");
        assert!(cram_verify(b"tanstaaftanstaaf", ch, &digest));
        assert!(cram_verify(
            b"tanstaaftanstaaf",
            ch,
            d.to_uppercase().as_bytes()
        ));
        assert!(!cram_verify(b"wrong", ch, &digest));
        assert!(!cram_verify(b"tanstaaftanstaaf", ch, b"b913"));
        assert_eq!(decode_cram(b64_encode(b"tim").as_bytes()), Err(Malformed));
        assert_eq!(
            decode_cram(b64_encode(b" b913a602c7eda7a495b4e6e7334d3890").as_bytes()),
            Err(Malformed)
        );
        assert_eq!(
            cram_challenge("mail.example.com", 42, 1700000000),
            "<42.1700000000@mail.example.com>"
        );
    }

    #[test]
    fn apop_rfc1939_example() {
        let ts = b"<1896.697170952@dbc.mtview.ca.us>";
        assert_eq!(
            apop_digest(ts, b"tanstaaf"),
            "c4c9334bac560ecc979e58001b3e22fb"
        );
        assert!(apop_verify(
            ts,
            b"tanstaaf",
            b"c4c9334bac560ecc979e58001b3e22fb"
        ));
        assert!(!apop_verify(
            ts,
            b"other",
            b"c4c9334bac560ecc979e58001b3e22fb"
        ));
    }

    #[test]
    fn decoding_is_chunk_independent() {
        // Lines arrive whole from the protocol's line reader; trailing CR/LF and
        // spaces around them do not change the result.
        let enc = b64_encode(b"\0u\0p");
        for suffix in ["", "\r", "\r\n", " "] {
            let l = format!("{enc}{suffix}");
            assert_eq!(decode_plain(l.as_bytes()).unwrap().user, b"u");
        }
    }
}
