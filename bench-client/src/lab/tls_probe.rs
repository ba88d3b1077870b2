//! Probes of a gateway that serves TLS: a blocking rustls client ([`ProbeTls`], trusting
//! one CA file, ALPN `http/1.1`) that wraps the probes' `std::net` connections, so
//! `/readyz`, `/metrics` and priming work against an HTTPS listener as against a plain one.
//!
//! Depends on nothing outside the lab but rustls.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// A probe connection: plain TCP or TLS over it.
pub enum ProbeStream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for ProbeStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ProbeStream::Plain(s) => s.read(buf),
            ProbeStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ProbeStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            ProbeStream::Plain(s) => s.write(buf),
            ProbeStream::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ProbeStream::Plain(s) => s.flush(),
            ProbeStream::Tls(s) => s.flush(),
        }
    }
}

/// The probes' TLS client: trusts the CA certificates of one PEM file.
#[derive(Clone)]
pub struct ProbeTls {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl ProbeTls {
    /// Trust the CAs of `ca` (PEM); check the server's certificate against `server_name`.
    pub fn new(ca: &Path, server_name: &str) -> anyhow::Result<ProbeTls> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("reading {}", ca.display()))?
        {
            let cert = cert.with_context(|| format!("a certificate in {}", ca.display()))?;
            roots.add(cert).context("a CA certificate rustls refuses")?;
        }
        // The ring provider, as the rest of the workspace (see engine/load/tls.rs).
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let name = ServerName::try_from(server_name.to_string())
            .with_context(|| format!("{server_name:?} is not a TLS server name"))?;
        Ok(ProbeTls {
            config: Arc::new(config),
            name,
        })
    }
}

/// A fresh probe connection to `addr` (TLS when `tls` is given; the handshake runs on the
/// first read or write), with `timeout` on connect, reads and writes.
pub fn connect(
    addr: SocketAddr,
    tls: Option<&ProbeTls>,
    timeout: Duration,
) -> anyhow::Result<ProbeStream> {
    let s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.set_nodelay(true)?;
    Ok(match tls {
        None => ProbeStream::Plain(s),
        Some(t) => {
            let conn = ClientConnection::new(t.config.clone(), t.name.clone())
                .context("a TLS client connection")?;
            ProbeStream::Tls(Box::new(StreamOwned::new(conn, s)))
        }
    })
}
