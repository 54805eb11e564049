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

/// Loads a server configuration from a PEM file holding the certificate chain
/// and the private key. The error text says what is wrong, for replies such as
/// `454 TLS missing certificate: ... (#4.3.0)`.
pub fn server_config(pem: &Path) -> Result<Arc<ServerConfig>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(pem)
        .map_err(|e| format!("unable to read {}: {e}", pem.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad certificate in {}: {e}", pem.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", pem.display()));
    }
    let key = PrivateKeyDer::from_pem_file(pem)
        .map_err(|e| format!("no valid private key in {}: {e}", pem.display()))?;
    let cfg = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(cfg))
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
    pub fn accept(mut io: Duplex, cfg: Arc<ServerConfig>) -> io::Result<Conn> {
        let mut conn = ServerConnection::new(cfg).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            conn.complete_io(&mut io)?;
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
