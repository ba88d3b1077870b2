//! Probes of a gateway that serves TLS: a blocking rustls client ([`ProbeTls`], trusting
//! one CA file, ALPN `http/1.1`) that wraps the probes' `std::net` connections, so
//! `/readyz`, `/metrics` and priming work against an HTTPS listener as against a plain one.
//!
//! Its client config comes from the engine's builder ([`crate::engine::load::tls`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};

use crate::engine::config::TlsConfig;
use crate::engine::load::tls::client_config;

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
        // The engine's one client builder (ring provider, ALPN http/1.1, TLS 1.2 and 1.3).
        let (config, name) = client_config(&TlsConfig {
            server_name: server_name.to_string(),
            ca: Some(ca.to_path_buf()),
            insecure: false,
            resume: true,
        })?;
        Ok(ProbeTls { config, name })
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
