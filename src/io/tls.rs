//! TLS for the servers (STARTTLS, STLS, implicit TLS on 465/995) over the
//! tcpserver descriptors, with rustls and the `ring` provider.
//!
//! The certificate chain and its private key live in one PEM file,
//! `control/servercert.pem`, as the qmail TLS patch keeps them.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::Duplex;

/// The crypto provider used everywhere: ring only, so that no C toolchain for
/// aws-lc is needed (the hybrid post-quantum groups are not offered).
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Why `control/servercert.pem` cannot be used; the text says what is wrong
/// (without the file's full path, which clients see).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetupError {
    /// No usable certificate: for `454 TLS missing certificate: ...`.
    Certificate(String),
    /// No usable private key: for `454 TLS no valid RSA private key: ...`.
    Key(String),
}

impl std::fmt::Display for SetupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SetupError::Certificate(t) | SetupError::Key(t) => f.write_str(t),
        }
    }
}

impl std::error::Error for SetupError {}

/// Loads a server configuration from a PEM file holding the certificate chain
/// and the private key.
pub fn server_config(pem: &Path) -> Result<Arc<ServerConfig>, SetupError> {
    server_config_with(pem, None)
}

/// The OpenSSL name of a cipher suite (`TLS_AES_256_GCM_SHA384`,
/// `ECDHE-RSA-AES128-GCM-SHA256`), as the qmail TLS patch writes it.
pub fn openssl_name(suite: rustls::CipherSuite) -> String {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        S::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        S::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        other => return format!("{other:?}"),
    }
    .to_string()
}

/// Whether an OpenSSL cipher-list word (a name, or an alias such as `HIGH`,
/// `ECDHE`, `AESGCM`, `aRSA`, `CHACHA20`; `A+B` for both) covers a TLS 1.2
/// suite of ours. Every suite we have is an ECDHE AEAD suite of TLS 1.2,
/// so the words for weaker ciphers (`RC4`, `3DES`, `MEDIUM`, `aNULL`, ...)
/// and unknown words cover none.
fn cipher_word_covers(word: &str, name: &str) -> bool {
    word.split('+').all(|w| match w {
        // Every suite of ours has an ephemeral ECDH key exchange (OpenSSL's
        // "ECDH" names the same suites).
        "ALL" | "DEFAULT" | "HIGH" | "ECDHE" | "EECDH" | "ECDH" | "kECDHE" | "kEECDH" | "kECDH"
        | "AEAD" | "TLSv1.2" => true,
        "AESGCM" => name.contains("GCM"),
        "AES" => name.contains("-AES"),
        "AES128" => name.contains("AES128"),
        "AES256" => name.contains("AES256"),
        "CHACHA20" => name.contains("CHACHA20"),
        "ECDSA" | "aECDSA" => name.contains("-ECDSA-"),
        // OpenSSL's "RSA" (= kRSA) is RSA key exchange, which none of ours
        // uses; RSA authentication is "aRSA".
        "aRSA" => name.contains("-RSA-"),
        // "SHA256"/"SHA384" are the HMAC digests; AEAD suites have none.
        "RSA" | "kRSA" | "SHA256" | "SHA384" | "SHA1" | "SHA" => false,
        w => w == name,
    })
}

/// The TLS 1.2 suites an OpenSSL cipher list (`TLSCIPHERS`,
/// `control/tlsserverciphers`) allows, in our order of preference: words
/// add suites, `!word` removes them for good, `-word` removes them, `+word`
/// and `@...` only reorder in OpenSSL and are ignored. TLS 1.3 suites are
/// not affected, as with OpenSSL's cipher lists.
pub fn tls12_suites_allowed(list: &str) -> Vec<rustls::CipherSuite> {
    let ours: Vec<(rustls::CipherSuite, String)> = provider()
        .cipher_suites
        .iter()
        .filter(|s| s.tls13().is_none())
        .map(|s| (s.suite(), openssl_name(s.suite())))
        .collect();
    let mut on = vec![false; ours.len()];
    let mut banned = vec![false; ours.len()];
    for word in list
        .split([':', ',', ' ', '\t', '\n'])
        .filter(|w| !w.is_empty())
    {
        let (op, w) = match word.as_bytes()[0] {
            b'!' | b'-' | b'+' | b'@' => (word.as_bytes()[0], &word[1..]),
            _ => (b' ', word),
        };
        for (i, (_, name)) in ours.iter().enumerate() {
            if !cipher_word_covers(w, name) {
                continue;
            }
            match op {
                b'!' => {
                    banned[i] = true;
                    on[i] = false;
                }
                b'-' => on[i] = false,
                b' ' => on[i] = !banned[i],
                _ => {}
            }
        }
    }
    ours.into_iter()
        .zip(on)
        .filter(|(_, on)| *on)
        .map(|((s, _), _)| s)
        .collect()
}

/// The provider with its TLS 1.2 suites limited by an OpenSSL cipher list
/// (`control/tlsserverciphers`, `control/tlsclientciphers`). A list that
/// allows none of our suites is ignored, with a warning on stderr, as
/// OpenSSL keeps its default list when `SSL_set_cipher_list` matches nothing.
pub fn provider_with_ciphers(ciphers: Option<&str>) -> Arc<rustls::crypto::CryptoProvider> {
    let Some(list) = ciphers else {
        return provider();
    };
    let allowed = tls12_suites_allowed(list);
    if allowed.is_empty() {
        // Named like the program's other log lines (qmail-smtpd: ...).
        let prog = crate::paths::program_name();
        crate::elog!(
            "{prog}: warning: no TLS 1.2 cipher of ours in the cipher list {list:?}; using the default list"
        );
        return provider();
    }
    let mut prov = (*provider()).clone();
    prov.cipher_suites
        .retain(|s| s.tls13().is_some() || allowed.contains(&s.suite()));
    Arc::new(prov)
}

/// [`server_config`] with an OpenSSL cipher list for TLS 1.2. A list that
/// allows none of our suites is ignored (with a warning on stderr), as
/// OpenSSL keeps its default list when `SSL_set_cipher_list` matches nothing.
pub fn server_config_with(
    pem: &Path,
    ciphers: Option<&str>,
) -> Result<Arc<ServerConfig>, SetupError> {
    let name = pem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cert_err = |t: String| SetupError::Certificate(t);
    // A regular file only, read without waiting (a FIFO put there must not
    // hang the session at STARTTLS).
    let bytes = match crate::fsutil::read_regular(pem, false) {
        Ok(Some(b)) => b,
        Ok(None) => {
            return Err(cert_err(format!(
                "unable to read {name}: file does not exist"
            )))
        }
        // (Clients see this text: no path in it.)
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(cert_err(format!(
                "unable to read {name}: not a regular file"
            )))
        }
        Err(e) => {
            return Err(cert_err(format!(
                "unable to read {name}: {}",
                crate::deliver::errstr(&e)
            )))
        }
    };
    // A key with a passphrase cannot be used by a program started per
    // connection: say so, rather than fail to parse what follows its headers.
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("BEGIN ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(SetupError::Key(format!(
            "the private key in {name} is encrypted (has a passphrase): store it without one"
        )));
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("bad certificate in {name}: {}", pem_error(&e))))?;
    if certs.is_empty() {
        return Err(cert_err(format!("no certificate in {name}")));
    }
    let key = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| SetupError::Key(format!("no private key in {name}: {}", pem_error(&e))))?;
    let cfg = ServerConfig::builder_with_provider(provider_with_ciphers(ciphers))
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            SetupError::Key(format!(
                "the key in {name} does not fit its certificate, or is of a kind not supported (RSA, ECDSA P-256 or P-384, Ed25519 are): {e}"
            ))
        })?;
    Ok(Arc::new(cfg))
}

/// A PEM reading error in words: the I/O error's text without its code,
/// or what was missing.
fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error as E;
    match e {
        E::Io(io) => {
            let s = io.to_string();
            match s.find(" (os error ") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
        E::NoItemsFound => "nothing found".to_string(),
        other => format!("{other:?}"),
    }
}

/// A server connection: plaintext, or TLS over the same descriptors.
pub enum Conn {
    /// No TLS (yet).
    Plain(Duplex),
    /// TLS established.
    Tls(Box<StreamOwned<ServerConnection, Duplex>>),
}

impl Conn {
    /// Runs the server handshake on `io` and returns the TLS connection.
    pub fn accept(io: Duplex, cfg: Arc<ServerConfig>) -> io::Result<Conn> {
        Conn::accept_or_reply(io, cfg, |_| Vec::new())
    }

    /// [`Conn::accept`]; when the handshake fails, `reply(error)` is written
    /// in plaintext before the error is returned (the TLS patch's last word).
    pub fn accept_or_reply(
        mut io: Duplex,
        cfg: Arc<ServerConfig>,
        reply: impl FnOnce(&io::Error) -> Vec<u8>,
    ) -> io::Result<Conn> {
        let mut conn = ServerConnection::new(cfg).map_err(io::Error::other)?;
        // The whole handshake gets one timeout, as with the qmail TLS
        // patch: a client dripping its hello a byte at a time does not keep
        // the connection for one timeout per byte.
        io.set_deadline(
            io.timeout()
                .and_then(|t| std::time::Instant::now().checked_add(t)),
        );
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut io) {
                io.set_deadline(None);
                let r = reply(&e);
                if !r.is_empty() {
                    let _ = io.write_all(&r);
                    let _ = io.flush();
                }
                return Err(e);
            }
        }
        io.set_deadline(None);
        Ok(Conn::Tls(Box::new(StreamOwned::new(conn, io))))
    }

    /// Ends a TLS session properly before the connection is closed: sends
    /// close_notify (RFC 8446 section 6.1). Nothing for a plain connection.
    pub fn close_notify(&mut self) {
        if let Conn::Tls(s) = self {
            s.conn.send_close_notify();
            let _ = s.flush();
        }
    }

    /// True once TLS is on.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// The negotiated cipher by its OpenSSL name (`TLS_AES_256_GCM_SHA384`),
    /// for Received lines and logs, as the qmail TLS patch writes it.
    pub fn cipher_description(&self) -> Option<String> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => Some(
                s.conn
                    .negotiated_cipher_suite()
                    .map(|c| openssl_name(c.suite()))
                    .unwrap_or_default(),
            ),
        }
    }

    /// The descriptors underneath.
    pub fn duplex_mut(&mut self) -> &mut Duplex {
        match self {
            Conn::Plain(d) => d,
            Conn::Tls(s) => &mut s.sock,
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(d) => d.read(buf),
            Conn::Tls(s) => match s.read(buf) {
                // A peer that closes without close_notify has simply hung up.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(d) => d.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(d) => d.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CipherSuite as S;

    #[test]
    fn an_encrypted_key_is_named() {
        let d = tempfile::tempdir().unwrap();
        for (i, pem) in [
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nabc\n-----END RSA PRIVATE KEY-----\n",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
        ]
        .iter()
        .enumerate()
        {
            let p = d.path().join(format!("c{i}.pem"));
            std::fs::write(&p, pem).unwrap();
            let e = server_config_with(&p, None).err().unwrap();
            assert!(e.to_string().contains("is encrypted (has a passphrase)"), "{e}");
        }
    }

    #[test]
    fn openssl_cipher_lists() {
        let names = |l: &str| -> Vec<String> {
            tls12_suites_allowed(l)
                .into_iter()
                .map(openssl_name)
                .collect()
        };
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256"),
            ["ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 6);
        assert_eq!(
            names("ECDHE+AESGCM:!ECDSA"),
            ["ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES128-GCM-SHA256"]
        );
        assert_eq!(names("ALL:-CHACHA20").len(), 4);
        // OpenSSL's ECDH is our suites' key exchange too.
        assert_eq!(names("ECDH+AESGCM:!AES128").len(), 2);
        assert_eq!(names("ECDH+CHACHA20").len(), 2);
        assert_eq!(names("!AES256:HIGH").len(), 4);
        // The usual hardening lists keep the ECDHE-RSA suites.
        assert_eq!(names("HIGH:!RSA:!aNULL").len(), 6);
        assert_eq!(names("HIGH:!kRSA:!SHA1:!SHA256:!SHA384").len(), 6);
        assert_eq!(names("HIGH:!aRSA").len(), 3);
        assert!(names("SHA256").is_empty());
        assert!(names("RC4:3DES:MEDIUM").is_empty());
        assert!(names("").is_empty());
        assert_eq!(
            openssl_name(S::TLS13_AES_256_GCM_SHA384),
            "TLS_AES_256_GCM_SHA384"
        );
    }
}
