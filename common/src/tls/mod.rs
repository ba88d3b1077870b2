//! TLS (HTTPS and WSS) for every runtime at once: rustls's `ServerConnection` as a sans-IO
//! layer between the driver's socket bytes and the connection state machine.
//!
//! The layer sits between `driver` (above: it reads and writes sockets) and `conn` (below:
//! plaintext in, plaintext out). `Setup` is the process's TLS configuration, built once at
//! start from `--tls-cert`/`--tls-key` (PEM), and `stack::Stack` is one connection: the
//! state machine, and its TLS session when TLS is on. Without TLS the stack calls the state
//! machine directly: no copy, no allocation, one branch.
//!
//! What is on: TLS 1.2 and 1.3 (rustls's ring provider, its default cipher suites), ALPN
//! `http/1.1`, session resumption by tickets (rustls's ticketer: TLS 1.3 tickets and TLS 1.2
//! session tickets) and by a stateful session cache (TLS 1.2 session ids, and TLS 1.3
//! clients that ask for no ticket), and a handshake timeout.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;

pub mod session;
pub mod stack;

/// Sessions the stateful cache keeps (rustls evicts the oldest): ~200 bytes each.
pub const SESSION_CACHE: usize = 4096;

/// The process's TLS configuration, shared by every connection.
pub struct Setup {
    pub config: Arc<ServerConfig>,
    /// A handshake must complete within this time of the connection's admission.
    pub handshake_timeout: Duration,
}

impl Setup {
    /// Reads the PEM certificate chain and private key and builds the server configuration.
    /// Any problem (missing or unreadable file, no certificate, no or a bad key, a key that
    /// does not match the certificate) is an error naming the file.
    pub fn from_pem_files(
        cert: &Path,
        key: &Path,
        handshake_timeout: Duration,
    ) -> anyhow::Result<Setup> {
        let certs = read_certs(cert)?;
        let key_der = PrivateKeyDer::from_pem_file(key)
            .map_err(|e| anyhow::anyhow!("--tls-key {}: {}", key.display(), pem_error(&e)))?;
        // ring, named here (not the process default): the workspace's one provider
        // (aws-lc-rs needs cmake and a long C build). rustls 0.23.48 deprecates ring's
        // provider for lacking post-quantum key exchange; X25519 and the NIST curves stay.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .context("TLS protocol versions")?
            .with_no_client_auth()
            .with_single_cert(certs, key_der)
            .with_context(|| {
                format!(
                    "--tls-cert {} with --tls-key {}",
                    cert.display(),
                    key.display()
                )
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        config.ticketer =
            rustls::crypto::ring::Ticketer::new().context("TLS session ticket key")?;
        Ok(Setup {
            config: Arc::new(config),
            handshake_timeout,
        })
    }
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow::anyhow!("--tls-cert {}: {}", path.display(), pem_error(&e)))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "--tls-cert {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
        path.display()
    );
    Ok(certs)
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => format!("cannot read it: {io}"),
        Error::NoItemsFound => "no PEM item of the expected kind in it".to_string(),
        other => format!("not valid PEM: {other}"),
    }
}
