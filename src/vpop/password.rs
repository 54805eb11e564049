//! Password hashes: verification of every scheme vpopmail hosts carry (DES,
//! MD5-crypt `$1$`, SHA-256-crypt `$5$`, SHA-512-crypt `$6$`, bcrypt `$2a$`/`$2b$`/`$2y$`)
//! and new SHA-512-crypt hashes.
//!
//! Verification is `crypt(given, stored) == stored`, as vpopmail does, with a
//! constant-time comparison. An empty or unparsable stored hash never matches.

use subtle::ConstantTimeEq;

/// Salt alphabet of crypt(3).
const SALT_CHARS: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// True when `given` (the bytes the client sent, whatever their encoding)
/// is the password behind the hash `stored`.
pub fn verify(given: impl AsRef<[u8]>, stored: &str) -> bool {
    let given = given.as_ref();
    if stored.is_empty() || !plausible(stored) {
        return false;
    }
    // The hashing code is not ours; never let a malformed stored value take
    // the caller down.
    let computed = std::panic::catch_unwind(|| pwhash::unix::crypt(given, stored)).ok();
    match computed {
        Some(Ok(c)) => c.len() == stored.len() && bool::from(c.as_bytes().ct_eq(stored.as_bytes())),
        _ => false,
    }
}

/// Rejects stored values no crypt scheme can have produced, before hashing.
fn plausible(stored: &str) -> bool {
    if !stored.is_ascii() || stored.bytes().any(|b| b.is_ascii_control() || b == b':') {
        return false;
    }
    if let Some(rest) = stored.strip_prefix('$') {
        let id = rest.split('$').next().unwrap_or("");
        return matches!(id, "1" | "5" | "6" | "2a" | "2b" | "2y") && rest.contains('$');
    }
    // Traditional DES: 13 characters from the salt alphabet.
    stored.len() == 13 && stored.bytes().all(|b| SALT_CHARS.contains(&b))
}

/// `n` random characters from the crypt salt alphabet.
pub fn random_salt(n: usize) -> String {
    random_chars(n, SALT_CHARS)
}

/// `n` random characters from `alphabet` (without modulo bias).
pub fn random_chars(n: usize, alphabet: &[u8]) -> String {
    let mut out = String::with_capacity(n);
    let limit = 256 - (256 % alphabet.len());
    while out.len() < n {
        let mut buf = [0u8; 64];
        if getrandom::fill(&mut buf).is_err() {
            // No kernel randomness is a broken system; fall back to the
            // clock and pid rather than a constant.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            for (i, b) in buf.iter_mut().enumerate() {
                *b = (t >> ((i % 16) * 8)) as u8 ^ (std::process::id() as u8).wrapping_mul(i as u8);
            }
        }
        for b in buf {
            if (b as usize) < limit && out.len() < n {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    out
}

/// A new SHA-512-crypt hash (`$6$` + 16 salt characters, 5000 rounds).
pub fn hash(clear: &str) -> String {
    let salt = random_salt(16);
    hash_with_salt(clear, &salt)
}

/// SHA-512-crypt with a given salt (tests, golden values).
pub fn hash_with_salt(clear: &str, salt: &str) -> String {
    pwhash::sha512_crypt::hash_with(
        pwhash::HashSetup {
            salt: Some(salt),
            rounds: None,
        },
        &*crate::vpop::entry::encode(clear),
    )
    .unwrap_or_else(|_| {
        // Only an invalid salt character can fail; ours come from the alphabet.
        pwhash::sha512_crypt::hash_with(
            pwhash::HashSetup {
                salt: Some("saltsaltsaltsalt"),
                rounds: None,
            },
            &*crate::vpop::entry::encode(clear),
        )
        .unwrap_or_default()
    })
}

/// A random password of `len` characters (vadduser/vpasswd `-r`), from
/// letters and digits without look-alikes.
pub fn random_password(len: usize) -> String {
    random_chars(
        len,
        b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_checked_as_the_bytes_given() {
        // A hash vpopmail made from a Latin-1 password (crypt on raw bytes).
        let h = pwhash::sha512_crypt::hash_with(
            pwhash::HashSetup {
                salt: Some("abcdefgh"),
                rounds: None,
            },
            b"p\xe4sswort".as_slice(),
        )
        .unwrap();
        assert!(verify(b"p\xe4sswort", &h));
        assert!(!verify(b"p\xf6sswort", &h));
        assert!(!verify("p\u{fffd}sswort", &h));
        assert!(!verify("pässwort", &h));
    }

    #[test]
    fn verifies_every_scheme() {
        // Reference values from crypt(3) implementations.
        assert!(verify("test", "aZGJuE6EXrjEE"));
        assert!(!verify("tesT", "aZGJuE6EXrjEE"));
        assert!(verify("password", "$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0"));
        assert!(!verify("passwore", "$1$5pZSV9va$azfrPr6af3Fc7dLblQXVa0"));
        assert!(verify(
            "Hello world!",
            "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        ));
        assert!(verify(
            "Hello world!",
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        ));
        assert!(verify(
            "password",
            "$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe"
        ));
        assert!(!verify(
            "passwore",
            "$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe"
        ));
    }

    #[test]
    fn new_hashes_are_sha512_crypt() {
        let h = hash("s3cret");
        assert!(h.starts_with("$6$"), "{h}");
        assert_eq!(h.split('$').nth(2).unwrap().len(), 16);
        assert!(verify("s3cret", &h));
        assert!(!verify("s3cre", &h));
        assert_ne!(hash("s3cret"), h);
        assert_eq!(
            hash_with_salt("Hello world!", "saltstring"),
            "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"
        );
    }

    #[test]
    fn garbage_never_verifies_nor_panics() {
        for s in [
            "",
            "x",
            "$",
            "$1$",
            "$6$$",
            "$2y$",
            "$2y$99$abc",
            "$7$abc$def",
            "*",
            "!!",
            "aZGJuE6EXrjE\n",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
            "$1$a$b$c",
        ] {
            assert!(!verify("", s), "{s:?}");
            assert!(!verify("x", s), "{s:?}");
        }
    }

    #[test]
    fn random_passwords() {
        let p = random_password(12);
        assert_eq!(p.len(), 12);
        assert!(p.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(random_password(12), p);
    }
}
