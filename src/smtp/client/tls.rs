//! TLS for qmail-remote: STARTTLS whenever the peer offers it, and TLS with
//! a verified certificate where the destination requires it.
//!
//! Policy per mail exchanger (the TLS patch's files, plus one of ours):
//! * `control/tlshosts/HOST.pem` exists: TLS required, the certificate must
//!   chain to a CA in that file (or be one of its certificates: a pinned
//!   self-signed one, CA or not, as OpenSSL accepts it) and match HOST by a
//!   subjectAltName or, failing that, its commonName;
//! * HOST or the recipient domain is listed in `control/tlsrequired`
//!   (`name` or `.suffix` lines): TLS required, verified against the
//!   system's roots;
//! * `control/notlshosts/HOST` exists: never TLS (it cannot undo the two
//!   above, as in the TLS patch, which looks at the .pem first);
//! * `control/tlshosts/exhaustivelist` exists: no TLS for other hosts;
//! * otherwise opportunistic: any certificate is accepted (encryption
//!   against passive eavesdropping, as the TLS patch does), and a failed
//!   handshake is retried in plaintext on a new connection.
//!
//! SNI is the mail exchanger's name; an address literal (`[192.0.2.1]`) is
//! verified as an address and sends no SNI.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};

use crate::paths::Roots;

/// What a destination gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    /// No TLS at all.
    Never,
    /// STARTTLS when offered, any certificate.
    Opportunistic,
    /// Required, verified against this CA file (`control/tlshosts/HOST.pem`).
    Pem {
        /// The file.
        path: PathBuf,
        /// How texts name it: `control/tlshosts/HOST.pem`.
        shown: String,
    },
    /// Required, verified against the system roots.
    System,
}

impl Policy {
    /// True when the mail must not go out without verified TLS.
    pub fn required(&self) -> bool {
        matches!(self, Policy::Pem { .. } | Policy::System)
    }
}

fn safe_file_name(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('.')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_' || b == b':')
}

/// Matches `name` against `control/tlsrequired`-style entries.
pub fn listed(entries: &[String], name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    entries.iter().any(|e| {
        let e = e.trim().to_ascii_lowercase();
        if let Some(suffix) = e.strip_prefix('.') {
            name.ends_with(&format!(".{suffix}"))
        } else {
            !e.is_empty() && e == name
        }
    })
}

/// The policy for mail exchanger `host` serving recipient domain `domain`.
pub fn policy(roots: &Roots, required: &[String], host: &str, domain: &str) -> Policy {
    let host = host.to_ascii_lowercase();
    // As the TLS patch's tls_init: a tlshosts file is looked at first, so a
    // required TLS is never turned off by notlshosts; tlsrequired wins too.
    let safe = safe_file_name(&host);
    if safe {
        let pem = roots.control("tlshosts").join(format!("{host}.pem"));
        if pem.exists() {
            return Policy::Pem {
                path: pem,
                shown: format!("control/tlshosts/{host}.pem"),
            };
        }
    }
    if listed(required, &host) || listed(required, domain) {
        return Policy::System;
    }
    if safe && roots.control("notlshosts").join(&host).exists() {
        return Policy::Never;
    }
    if roots.control("tlshosts").join("exhaustivelist").exists() {
        return Policy::Never;
    }
    Policy::Opportunistic
}

/// The client configuration for a policy, with the TLS 1.2 suites an
/// OpenSSL cipher list (`control/tlsclientciphers`) allows.
pub fn client_config(policy: &Policy, ciphers: Option<&str>) -> Result<Arc<ClientConfig>, String> {
    let provider = crate::io::tls::provider_with_ciphers(ciphers);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS error initializing ctx: {e}"))?;
    // Verified policies: their roots, the certificates pinned (a tlshosts
    // file's own), and how errors name the source.
    let (roots, pinned, shown) = match policy {
        Policy::Never | Policy::Opportunistic => {
            let cfg = builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth();
            return Ok(Arc::new(cfg));
        }
        Policy::Pem { path, shown } => {
            let load = |e: &dyn std::fmt::Display| format!("TLS unable to load {shown}: {e}");
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| load(&e))?
                .collect::<Result<_, _>>()
                .map_err(|e| load(&e))?;
            let mut roots = RootCertStore::empty();
            for c in &certs {
                roots.add(c.clone()).map_err(|e| load(&e))?;
            }
            if roots.is_empty() {
                return Err(load(&"no certificate"));
            }
            (roots, certs, format!("TLS unable to load {shown}"))
        }
        Policy::System => {
            let mut roots = RootCertStore::empty();
            for c in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                return Err("TLS error initializing ctx: no system root certificates".into());
            }
            (roots, Vec::new(), "TLS error initializing ctx".to_string())
        }
    };
    let inner =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| format!("{shown}: {e}"))?;
    let cfg = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NameVerifier { inner, pinned }))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// A TLS client connection over TCP.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// Runs the handshake; the error is the reason, as text, and the rustls
/// error when there is one (to tell verification failures apart).
pub fn handshake(
    mut tcp: TcpStream,
    cfg: Arc<ClientConfig>,
    sni: &str,
) -> Result<TlsStream, (String, Option<rustls::Error>)> {
    let name = match super::route::literal(sni) {
        Some(ip) => ServerName::IpAddress(ip.into()),
        None => ServerName::try_from(sni.to_string())
            .map_err(|e| (format!("bad server name {sni}: {e}"), None))?,
    };
    let mut conn = ClientConnection::new(cfg, name).map_err(|e| (e.to_string(), Some(e)))?;
    while conn.is_handshaking() {
        if let Err(e) = conn.complete_io(&mut tcp) {
            let inner = e
                .get_ref()
                .and_then(|i| i.downcast_ref::<rustls::Error>())
                .cloned();
            let text = match e.kind() {
                io::ErrorKind::UnexpectedEof => "connection closed during handshake".to_string(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => "timed out".to_string(),
                _ => readable(&e.to_string()),
            };
            return Err((text, inner));
        }
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// A self-signed certificate nobody vouches for (OpenSSL's "self signed
/// certificate"); its debug name is what [`readable`] turns into words.
#[derive(Debug)]
struct SelfSignedCertificate;

impl std::fmt::Display for SelfSignedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("self signed certificate")
    }
}

impl std::error::Error for SelfSignedCertificate {}

/// rustls prints some certificate errors as Rust debug output
/// (`Other(OtherError(CaUsedAsEndEntity))`); a reader gets words instead
/// (`ca used as end entity`).
pub fn readable(text: &str) -> String {
    const OTHER: &str = "Other(OtherError(";
    let Some(start) = text.find(OTHER) else {
        return text.to_string();
    };
    let rest = &text[start + OTHER.len()..];
    let name: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut words = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            words.push(' ');
        }
        words.push(if c == '_' {
            ' '
        } else {
            c.to_ascii_lowercase()
        });
    }
    let end = rest.find("))").map_or(rest.len(), |i| i + 2);
    format!("{}{}{}", &text[..start], words.trim(), &rest[end..])
}

/// `TLSv1_3:TLS13_AES_256_GCM_SHA384`.
pub fn describe(s: &TlsStream) -> String {
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
    format!("{v}:{c}")
}

/// The temporary-failure text when TLS was required and failed.
pub fn failure_text(
    policy: &Policy,
    host: &str,
    ip: &str,
    reason: &str,
    err: Option<&rustls::Error>,
) -> String {
    use rustls::CertificateError as C;
    let cert = match err {
        Some(rustls::Error::InvalidCertificate(c)) => Some(c),
        _ => None,
    };
    match (policy, cert) {
        (_, Some(C::NotValidForNameContext { presented, .. })) => format!(
            "TLS unable to verify server {host}: received certificate for {}; connected to {ip}.\n",
            if presented.is_empty() {
                "no name".to_string()
            } else {
                presented
                    .iter()
                    .map(|p| presented_name(p))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        ),
        (Policy::Pem { shown, .. }, Some(_)) => {
            format!("TLS unable to verify server with {shown}: {reason}; connected to {ip}.\n")
        }
        _ => super::report::text::tls_not_available(reason, ip),
    }
}

/// rustls describes a presented name as `DnsName("mx.example.net")`; the
/// name alone is what a reader wants.
fn presented_name(p: &str) -> &str {
    match (p.find('"'), p.rfind('"')) {
        (Some(a), Some(b)) if b > a => &p[a + 1..b],
        _ => p,
    }
}

/// Verified TLS (`control/tlshosts/HOST.pem`, `control/tlsrequired`):
/// webpki's chain check, plus what OpenSSL (and so the TLS patch) also
/// accepts: a commonName naming the host when
/// no subjectAltName does, and a certificate that is itself in the file
/// (a pinned self-signed certificate, which OpenSSL makes with CA:TRUE by
/// default) within its validity period.
#[derive(Debug)]
struct NameVerifier {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

fn server_name_text(n: &ServerName<'_>) -> String {
    match n {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => format!("[{}]", std::net::IpAddr::from(*ip)),
        _ => String::new(),
    }
}

fn name_error(info: &super::certname::CertInfo, name: &ServerName<'_>) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForNameContext {
        expected: name.to_owned(),
        presented: info.presented(),
    })
}

impl ServerCertVerifier for NameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::CertificateError as C;
        let host = server_name_text(server_name);
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Ok(v) => Ok(v),
            // The chain is good; the subjectAltNames do not name the host.
            Err(rustls::Error::InvalidCertificate(
                C::NotValidForName | C::NotValidForNameContext { .. },
            )) => match super::certname::parse(end_entity.as_ref()) {
                Some(info) if info.names(&host) => Ok(ServerCertVerified::assertion()),
                Some(info) => Err(name_error(&info, server_name)),
                None => Err(rustls::Error::InvalidCertificate(C::BadEncoding)),
            },
            Err(e) => {
                if !self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref())
                {
                    // A self-signed certificate that is not the one pinned:
                    // OpenSSL's words, rather than webpki's "CA used as end
                    // entity" or "unknown issuer".
                    let self_signed = intermediates.is_empty()
                        && super::certname::parse(end_entity.as_ref())
                            .is_some_and(|i| i.self_signed);
                    let untrusted = match &e {
                        rustls::Error::InvalidCertificate(C::UnknownIssuer) => true,
                        rustls::Error::InvalidCertificate(C::Other(o)) => {
                            format!("{o:?}").contains("CaUsedAsEndEntity")
                        }
                        _ => false,
                    };
                    return Err(match e {
                        e if !(self_signed && untrusted) => e,
                        _ => rustls::Error::InvalidCertificate(C::Other(rustls::OtherError(
                            Arc::new(SelfSignedCertificate),
                        ))),
                    });
                }
                let Some(info) = super::certname::parse(end_entity.as_ref()) else {
                    return Err(e);
                };
                let t = now.as_secs() as i64;
                if t < info.not_before {
                    return Err(rustls::Error::InvalidCertificate(C::NotValidYet));
                }
                if t > info.not_after {
                    return Err(rustls::Error::InvalidCertificate(C::Expired));
                }
                if !info.names(&host) {
                    return Err(name_error(&info, server_name));
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Accepts any certificate (opportunistic TLS), but still checks that the
/// peer holds its key (the handshake signature).
#[derive(Debug)]
struct AcceptAny(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A client connection: plaintext or TLS.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream>),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_cipher_list() {
        let tls12 = |c: &ClientConfig| {
            c.crypto_provider()
                .cipher_suites
                .iter()
                .filter(|s| s.tls13().is_none())
                .map(|s| s.suite())
                .collect::<Vec<_>>()
        };
        let all = client_config(&Policy::Opportunistic, None).unwrap();
        assert!(tls12(&all).len() > 1);
        let one =
            client_config(&Policy::Opportunistic, Some("ECDHE-RSA-AES256-GCM-SHA384")).unwrap();
        assert_eq!(
            tls12(&one),
            vec![rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]
        );
        // TLS 1.3 stays, as with OpenSSL's cipher lists.
        assert!(one
            .crypto_provider()
            .cipher_suites
            .iter()
            .any(|s| s.tls13().is_some()));
        // A list with none of ours keeps the default.
        let none = client_config(&Policy::Opportunistic, Some("AES256-SHA")).unwrap();
        assert_eq!(tls12(&none), tls12(&all));
    }

    #[test]
    fn tlsrequired_entries() {
        let l = vec!["mx.example.net".to_string(), ".secure.test".to_string()];
        assert!(listed(&l, "MX.example.net"));
        assert!(listed(&l, "a.secure.test"));
        assert!(!listed(&l, "secure.test"));
        assert!(!listed(&l, "xmx.example.net"));
    }

    #[test]
    fn policy_files() {
        let d = tempfile::tempdir().unwrap();
        let roots = Roots::new(d.path(), d.path());
        std::fs::create_dir_all(roots.control("tlshosts")).unwrap();
        std::fs::create_dir_all(roots.control("notlshosts")).unwrap();
        std::fs::write(roots.control("tlshosts").join("a.test.pem"), "x").unwrap();
        std::fs::write(roots.control("notlshosts").join("b.test"), "").unwrap();
        let req = vec![".dom.test".to_string()];
        assert!(
            matches!(policy(&roots, &req, "A.test", "x"), Policy::Pem { shown, .. } if shown == "control/tlshosts/a.test.pem")
        );
        assert_eq!(policy(&roots, &req, "b.test", "x"), Policy::Never);
        // notlshosts never turns a required TLS off.
        std::fs::write(roots.control("notlshosts").join("a.test"), "").unwrap();
        assert!(matches!(
            policy(&roots, &req, "a.test", "x"),
            Policy::Pem { .. }
        ));
        assert_eq!(policy(&roots, &req, "b.test", "x.dom.test"), Policy::System);
        assert_eq!(policy(&roots, &req, "c.test", "x.dom.test"), Policy::System);
        assert_eq!(policy(&roots, &req, "../c", "x"), Policy::Opportunistic);
        std::fs::write(roots.control("tlshosts").join("exhaustivelist"), "").unwrap();
        assert_eq!(policy(&roots, &req, "c.test", "x"), Policy::Never);
    }

    #[test]
    fn debug_output_becomes_words() {
        assert_eq!(
            readable("invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))"),
            "invalid peer certificate: ca used as end entity"
        );
        assert_eq!(
            readable("invalid peer certificate: UnknownIssuer"),
            "invalid peer certificate: UnknownIssuer"
        );
    }
}
