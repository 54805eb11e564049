//! Validation of user names, domain names and the other fields the admin
//! programs write, before anything touches the disk.
//!
//! User names follow vpopmail's `is_username_valid` (letters, digits and
//! `! # $ & ' * + - . = ? ^ _ { | } ~` and backquote), lowercased first, with
//! three additions because a user name becomes a directory name: `/` is refused
//! (vpopmail allows it, which lets `../x` escape the domain), a leading `.` is
//! refused (it would shadow `.qmail-*` files and `..`), and so are control
//! characters. Names of one character are refused (hashed directories), as
//! are `vpasswd` and `vpasswd.*`, the names of the domain's own files.

use crate::vpop::entry::{MAX_DOMAIN, MAX_NAME};
use crate::vpop::error::*;

/// Splits an address at the first `@` (else `%`, else `/`, as vpopmail's
/// `parse_email`), lowercased. No separator: the domain is empty.
pub fn split_email(email: &str) -> (String, String) {
    let lower = email.to_ascii_lowercase();
    for sep in ['@', '%', '/'] {
        if let Some((u, d)) = lower.split_once(sep) {
            return (u.to_string(), d.to_string());
        }
    }
    (lower, String::new())
}

/// The character rule of vpopmail's `is_username_valid`.
fn user_char_ok(c: char) -> bool {
    matches!(c, '!' | '#' | '$' | '&' | '\'' | '*' | '+' | '-' | '.' | '0'..='9' | '=' | '?' | 'A'..='Z' | '^'..='~')
}

/// Checks a (lowercased) user name for a new account or alias.
pub fn check_user(user: &str) -> Result<(), VError> {
    if user.len() > MAX_NAME {
        return Err(VError::code(VA_USER_NAME_TOO_LONG));
    }
    if user.is_empty()
        || user.len() == 1
        || user.starts_with('.')
        || user == "vpasswd"
        || user.starts_with("vpasswd.")
        || !user.chars().all(user_char_ok)
    {
        return Err(VError::code(VA_ILLEGAL_USERNAME));
    }
    Ok(())
}

/// Checks a user name given to look an existing account up (the same rule
/// without the minimum length, so a hand-made one-letter account can still be
/// managed).
pub fn check_user_lookup(user: &str) -> Result<(), VError> {
    if user.len() > MAX_NAME {
        return Err(VError::code(VA_USER_NAME_TOO_LONG));
    }
    if user.is_empty() || user.starts_with('.') || !user.chars().all(user_char_ok) {
        return Err(VError::code(VA_ILLEGAL_USERNAME));
    }
    Ok(())
}

/// Checks the characters of a domain given on the command line (vpopmail's
/// `is_domain_valid`: letters, digits, `-` and `.`), and its length.
pub fn check_domain_chars(domain: &str) -> Result<(), VError> {
    if domain.len() > MAX_DOMAIN {
        return Err(VError::code(VA_DOMAIN_NAME_TOO_LONG));
    }
    if domain.is_empty()
        || !domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(VError::code(VA_INVALID_DOMAIN_NAME));
    }
    Ok(())
}

/// The stricter rule for a new domain (vadddomain): 3 to 96 characters, a
/// top-level part of 2 to 63 characters, only `[a-z0-9.-]`, no empty label,
/// not starting or ending with `-` or `.`.
pub fn check_new_domain(domain: &str) -> Result<(), VError> {
    check_domain_chars(domain)?;
    let bad = || Err(VError::code(VA_INVALID_DOMAIN_NAME));
    if domain.len() < 3 || domain.starts_with(['-', '.']) || domain.ends_with(['-', '.']) {
        return bad();
    }
    if domain
        .split('.')
        .any(|l| l.is_empty() || l.starts_with('-') || l.ends_with('-') || l.len() > 63)
    {
        return bad();
    }
    let Some((_, tld)) = domain.rsplit_once('.') else {
        return bad();
    };
    if tld.len() < 2 || tld.len() > 63 {
        return bad();
    }
    Ok(())
}

/// A free-text field (gecos, passwords, alias lines): no `:` where it
/// separates fields, no control characters (a newline would split a line).
pub fn check_text(s: &str, colon_ok: bool) -> Result<(), VError> {
    if s.chars().any(|c| c.is_control() || (!colon_ok && c == ':')) {
        return Err(VError::code(VA_BAD_CHAR));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        for ok in ["joe", "j.doe", "a+b", "x_y-z", "o'neil", "ab", "{x}"] {
            assert!(check_user(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "j",
            "../x",
            "a/b",
            "a:b",
            "a%b",
            "a@b",
            "a b",
            "a,b",
            ".x",
            "a\nb",
            "a\u{7f}b",
            "vpasswd",
            "vpasswd.cdb",
            "vpasswd.cdb.tmp",
            "vpasswd.tmp.1",
            "a\"b",
            "a(b",
            "a;b",
            "a<b",
            "a[b",
            "a\\b",
        ] {
            assert!(check_user(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            check_user(&"x".repeat(33)).unwrap_err().code,
            VA_USER_NAME_TOO_LONG
        );
        assert!(check_user(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn domains() {
        for ok in ["example.com", "a-b.example.co", "x.y.z.de"] {
            assert!(check_new_domain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "ab", "example", "-a.com", "a-.com", "a..com", "a.c", "a/b.com", "a_b.com",
            "../x.com", ".a.com", "a.com.",
        ] {
            assert!(check_new_domain(bad).is_err(), "{bad:?}");
        }
        assert!(check_new_domain(&format!("{}.com", "a".repeat(93))).is_err());
    }

    #[test]
    fn emails() {
        assert_eq!(
            split_email("Joe@Example.COM"),
            ("joe".into(), "example.com".into())
        );
        assert_eq!(
            split_email("joe%example.com"),
            ("joe".into(), "example.com".into())
        );
        assert_eq!(split_email("a%b@c.com"), ("a%b".into(), "c.com".into()));
        assert_eq!(split_email("joe"), ("joe".into(), String::new()));
    }
}
