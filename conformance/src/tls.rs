//! The TLS flavour of the suite's client: a test CA made with rcgen at test time, a server
//! certificate for `localhost`/127.0.0.1 it signed (PEM files in a temp dir, passed to the
//! gateway as `--tls-cert`/`--tls-key`), and clients that are rustls `ClientConnection`s
//! over the blocking std `TcpStream` (`rustls::StreamOwned`), trusting that CA.

use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::{Client, Gateway, OverTcp, Variant};

/// A client's TLS stream.
pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

impl OverTcp for TlsStream {
    fn tcp(&self) -> &TcpStream {
        self.get_ref()
    }
}

/// A test CA and a server certificate it signed, as PEM files in a fresh directory
/// (removed on drop).
pub struct TestPki {
    pub dir: PathBuf,
    pub ca_pem: String,
}

impl TestPki {
    pub fn new() -> TestPki {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "conformance-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "conformance test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
        TestPki {
            dir,
            ca_pem: ca_cert.pem(),
        }
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The gateway flags that serve this certificate.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert().display().to_string(),
            "--tls-key".into(),
            self.key().display().to_string(),
        ]
    }

    /// A client configuration trusting the test CA, as a browser would be set up: rustls's
    /// default versions (1.2, 1.3) and cipher suites, ALPN `http/1.1`. Each call has its own
    /// session store (a second connection with the same configuration resumes).
    pub fn client_config(&self) -> Arc<ClientConfig> {
        self.client_config_with(rustls::DEFAULT_VERSIONS)
    }

    pub fn client_config_with(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let mut c = ClientConfig::builder_with_protocol_versions(versions)
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

impl Default for TestPki {
    fn default() -> Self {
        TestPki::new()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A gateway serving HTTPS/WSS with a fresh test certificate.
pub struct TlsGateway {
    pub gw: Gateway,
    pub pki: TestPki,
    /// The configuration `connect` uses (it resumes sessions across connections).
    pub client: Arc<ClientConfig>,
}

impl TlsGateway {
    /// Starts `variant` with TLS and `extra` arguments; waits until `/readyz` answers over
    /// TLS.
    pub fn start(variant: &Variant, extra: &[&str]) -> TlsGateway {
        let pki = TestPki::new();
        let mut args = pki.args();
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let gw = Gateway::launch(variant, &args);
        let line = gw
            .proc
            .wait_for_line("listening on ", Duration::from_secs(5));
        assert!(line.contains("(tls)"), "{line}");
        let client = pki.client_config();
        let tls = TlsGateway { gw, pki, client };
        tls.gw.wait_ready_with(|| tls.connect_with(&tls.client));
        tls
    }

    /// A new TLS connection (handshake done) with `config`.
    pub fn connect_with(&self, config: &Arc<ClientConfig>) -> std::io::Result<Client<TlsStream>> {
        let s = TcpStream::connect_timeout(&self.gw.addr, Duration::from_secs(5))?;
        s.set_read_timeout(Some(Duration::from_secs(15)))?;
        s.set_nodelay(true)?;
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
        let mut stream = StreamOwned::new(conn, s);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock)?;
        }
        Ok(Client::from_stream(stream))
    }

    pub fn connect(&self) -> Client<TlsStream> {
        self.connect_with(&self.client).expect("TLS connect")
    }

    /// The value of a series in /metrics, read over TLS.
    pub fn metric(&self, series: &str) -> f64 {
        let r = self
            .connect()
            .request("GET", "/metrics", &[], b"")
            .expect("GET /metrics");
        let text = String::from_utf8_lossy(&r.body).to_string();
        text.lines()
            .find(|l| l.starts_with(series))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
    }
}

/// A TLS record holding a ClientHello that offers only `version` (e.g. 0x0301, TLS 1.0) and
/// the one cipher suite `suite`, without extensions: what an old client sends.
pub fn old_client_hello(version: u16, suite: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&2u16.to_be_bytes());
    body.extend_from_slice(&suite.to_be_bytes());
    body.extend_from_slice(&[1, 0]); // compression: null only
    let mut hs = vec![1u8]; // client_hello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}
