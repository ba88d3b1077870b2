//! TLS for `https://` and `wss://` targets: one rustls client config per run ([`Tls`]),
//! shared by all its connections and so is its session store (`--tls-resume on`), and
//! the handshake over an established TCP connection ([`Tls::handshake`]), timed from the
//! TCP connect to its end and counted full or resumed. A failed handshake is returned as
//! an [`ErrorKey`] of the `tls` phase named by its reason ([`failure_kind`]).
//!
//! rustls with the ring provider, through tokio-rustls (the engine's connections are tokio
//! streams). Part of the [load engine](crate::engine::load): the plaintext path never
//! touches it; it records into the run's [`Recording`] only.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, HandshakeKind, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::engine::analysis::errors::{errno_name, ErrorKey, Phase};
use crate::engine::config::TlsConfig;
use crate::engine::load::recorder::Recording;

/// Server names whose sessions are kept (rustls keeps up to 8 TLS 1.3 tickets per name,
/// each used once): a run has one server, so this only bounds memory.
const SESSION_NAMES: usize = 256;

/// The ALPN protocol offered: the gateways speak HTTP/1.1 (WebSocket upgrades included).
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A run's TLS client: the config (verifier, ALPN, session store) and the server name.
pub(crate) struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// The run's client: [`client_config`] of `cfg`.
    pub(crate) fn new(cfg: &TlsConfig) -> anyhow::Result<Tls> {
        let (config, name) = client_config(cfg)?;
        Ok(Tls {
            connector: TlsConnector::from(config),
            name,
        })
    }

    /// The TLS handshake on `tcp`, connected just now, within `timeout`: recorded in
    /// `rec` when it completes (latency, full or resumed); a failure is returned, for the
    /// caller to count as its connection or request requires.
    pub(crate) async fn handshake(
        &self,
        rec: &Recording,
        timeout: Duration,
        tcp: TcpStream,
    ) -> Result<TlsStream<TcpStream>, ErrorKey> {
        let start = Instant::now();
        let hs = tokio::time::timeout(timeout, self.connector.connect(self.name.clone(), tcp));
        match hs.await {
            Err(_) => Err(ErrorKey::new(Phase::Tls, "ETIMEDOUT")),
            Ok(Err(e)) => Err(ErrorKey::new(Phase::Tls, failure_kind(&e))),
            Ok(Ok(s)) => {
                let now = Instant::now();
                let resumed = s.get_ref().1.handshake_kind() == Some(HandshakeKind::Resumed);
                rec.on_tls_handshake(now, now - start, resumed);
                Ok(s)
            }
        }
    }
}

/// The client config of `cfg` and the server name to send: the CAs of `--ca` (PEM) or, with
/// `--insecure`, no verification; ALPN `http/1.1`; TLS 1.2 and 1.3; a shared session store
/// unless resumption is off. The one builder of bench-client's TLS clients (the load's and
/// the lab's probes).
pub(crate) fn client_config(
    cfg: &TlsConfig,
) -> anyhow::Result<(Arc<ClientConfig>, ServerName<'static>)> {
    // rustls 0.23.48 deprecates the ring provider for lacking post-quantum key exchange;
    // ring is the workspace's choice (aws-lc-rs needs cmake and a long C build), and
    // the gateways' listeners use the same classical groups.
    #[allow(deprecated)]
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let mut config = if cfg.insecure {
        let any = AcceptAnyCertificate(provider.signature_verification_algorithms);
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(any))
            .with_no_client_auth()
    } else {
        let path = cfg
            .ca
            .as_deref()
            .context("a TLS target needs --ca FILE or --insecure")?;
        builder
            .with_root_certificates(roots_of(path)?)
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
    config.resumption = if cfg.resume {
        Resumption::store(Arc::new(ClientSessionMemoryCache::new(SESSION_NAMES)))
    } else {
        Resumption::disabled()
    };
    let name = ServerName::try_from(cfg.server_name.clone())
        .with_context(|| format!("{:?} is not a TLS server name", cfg.server_name))?;
    Ok((Arc::new(config), name))
}

/// The certificates of a `--ca` PEM file as trust anchors.
fn roots_of(path: &std::path::Path) -> anyhow::Result<RootCertStore> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading --ca {}", path.display()))?;
    if certs.is_empty() {
        bail!(
            "--ca {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
            path.display()
        );
    }
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .with_context(|| format!("--ca {}: not a usable CA certificate", path.display()))?;
    }
    Ok(roots)
}

/// Why a handshake failed, as an error kind: `certificate-unknown-issuer`,
/// `certificate-not-valid-for-name`, `alert-handshake-failure` (the server's alert),
/// `peer-incompatible`, … from rustls's error; the errno name (`EOF`, `ECONNRESET`) for
/// a transport failure. A fixed, small set of names: the taxonomy stays bounded.
pub(crate) fn failure_kind(e: &io::Error) -> String {
    let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) else {
        return errno_name(e);
    };
    match tls {
        rustls::Error::InvalidCertificate(c) => format!("certificate-{}", kebab(&format!("{c:?}"))),
        // An unknown alert's Debug text is its number.
        rustls::Error::AlertReceived(rustls::AlertDescription::Unknown(_)) => {
            "alert-unknown".into()
        }
        rustls::Error::AlertReceived(a) => format!("alert-{}", kebab(&format!("{a:?}"))),
        other => kebab(&format!("{other:?}")),
    }
}

/// `NotValidForNameContext { … }` → `not-valid-for-name`: the variant name of a Debug
/// text in kebab case, its fields (which may carry peer data) dropped.
fn kebab(debug: &str) -> String {
    let name = debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or_default();
    let name = name.strip_suffix("Context").unwrap_or(name);
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

/// `--insecure`: any certificate is accepted, for any name, whoever signed it. The
/// handshake's signatures are still checked (it stays a well-formed TLS handshake with
/// the key of the certificate presented); what is skipped is trusting that certificate.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::{AlertDescription, CertificateError};

    fn io_of(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn failures_are_named_by_their_reason() {
        let kind = |e| failure_kind(&io_of(e));
        assert_eq!(
            kind(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            )),
            "certificate-unknown-issuer"
        );
        assert_eq!(
            kind(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName
            )),
            "certificate-not-valid-for-name"
        );
        assert_eq!(
            kind(rustls::Error::AlertReceived(
                AlertDescription::HandshakeFailure
            )),
            "alert-handshake-failure"
        );
        assert_eq!(
            kind(rustls::Error::AlertReceived(AlertDescription::Unknown(200))),
            "alert-unknown"
        );
        assert_eq!(
            kind(rustls::Error::NoApplicationProtocol),
            "no-application-protocol"
        );
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "tls handshake eof");
        assert_eq!(failure_kind(&eof), "EOF");
    }

    #[test]
    fn a_ca_file_without_certificates_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("bench-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let cfg = |ca: &std::path::Path| TlsConfig {
            server_name: "localhost".into(),
            ca: Some(ca.to_path_buf()),
            insecure: false,
            resume: true,
        };
        let err = Tls::new(&cfg(&empty)).err().expect("no certificate");
        assert!(err.to_string().contains("no certificate"), "{err:#}");
        let err = Tls::new(&cfg(&dir.join("missing.pem")))
            .err()
            .expect("no file");
        assert!(format!("{err:#}").contains("reading --ca"), "{err:#}");
        let insecure = TlsConfig {
            ca: None,
            insecure: true,
            ..cfg(&empty)
        };
        assert!(Tls::new(&insecure).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
