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
    let name = pem
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cert_err = |t: String| SetupError::Certificate(t);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem)
        .map_err(|e| cert_err(format!("unable to read {name}: {}", pem_error(&e))))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("bad certificate in {name}: {}", pem_error(&e))))?;
    if certs.is_empty() {
        return Err(cert_err(format!("no certificate in {name}")));
    }
    let key = PrivateKeyDer::from_pem_file(pem)
        .map_err(|e| SetupError::Key(format!("no private key in {name}: {}", pem_error(&e))))?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            SetupError::Key(format!(
                "the key in {name} does not fit its certificate: {e}"
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
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut io) {
                let r = reply(&e);
                if !r.is_empty() {
                    let _ = io.write_all(&r);
                    let _ = io.flush();
                }
                return Err(e);
            }
        }
        Ok(Conn::Tls(Box::new(StreamOwned::new(conn, io))))
    }

    /// True once TLS is on.
    pub fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }

    /// A short description of the negotiated protocol and cipher, e.g.
    /// `TLSv1_3:TLS13_AES_256_GCM_SHA384`, for Received lines and logs.
    pub fn cipher_description(&self) -> Option<String> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => {
                let v = s
                    .conn
                    .protocol_version()
                    .map(|v| format!("{v:?}"))
                    .unwrap_or_default();
                let c = s
                    .conn
                    .negotiated_cipher_suite()
                    .map(|c| format!("{:?}", c.suite()))
                    .unwrap_or_default();
                Some(format!("{v}:{c}"))
            }
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
