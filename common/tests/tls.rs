//! The TLS layer (`common::tls`) without sockets: a rustls client and a connection `Stack`
//! exchange records in memory, with a fake clock. What a handshake completes, resumes,
//! fails on (garbage, no common version, a timeout, a peer gone mid-handshake), what each
//! costs in `gateway_tls_*`, and the start-up errors of bad certificate files.

mod support;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::conn::Shared;
use common::policy::ack::AckMode;
use common::publish::token::ReplyTo;
use common::tls::stack::Stack;
use common::tls::Setup;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, RootCertStore};
use support::*;

/// A test CA and a server certificate for `localhost` / 127.0.0.1 it signed, as PEM files
/// in a fresh directory.
struct TestPki {
    dir: PathBuf,
    ca_pem: String,
}

impl TestPki {
    fn new(name: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("gw-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap()
            .signed_by(&key, &ca_cert, &ca_key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), leaf.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        TestPki {
            dir,
            ca_pem: ca_cert.pem(),
        }
    }

    fn cert(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    fn setup(&self) -> Setup {
        Setup::from_pem_files(&self.cert(), &self.key(), Duration::from_secs(10)).unwrap()
    }

    /// A client trusting the CA (rustls defaults: TLS 1.2 and 1.3), with ALPN `http/1.1`.
    fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        let ca = rustls::pki_types::CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap();
        roots.add(ca).unwrap();
        let mut c = ClientConfig::builder_with_protocol_versions(versions)
            .with_root_certificates(roots)
            .with_no_client_auth();
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

use rustls::pki_types::pem::PemObject as _;

/// A process's shared state with TLS on (its series rendered, as `Gateway::start` does).
fn shared() -> Arc<Shared> {
    let shared = shared_with(config(AckMode::Enqueue), Arc::new(ManualSink::default()));
    shared
        .metrics
        .tls
        .enabled
        .store(true, std::sync::atomic::Ordering::Relaxed);
    shared
}

fn stack(shared: &Arc<Shared>, setup: &Setup, now: Instant) -> Stack {
    Stack::new(shared.clone(), ReplyTo::detached(), Some(setup), now).expect("TLS session")
}

/// The value of the first /metrics line starting with `series`.
fn metric(shared: &Shared, series: &str) -> u64 {
    let text = shared.render_metrics();
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in\n{text}"))
}

/// Appends every plaintext byte the client has decrypted so far to `plain`.
fn drain_plaintext(client: &mut ClientConnection, plain: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = client.reader().read(&mut buf) {
        if n == 0 {
            break;
        }
        plain.extend_from_slice(&buf[..n]);
    }
}

/// Moves records both ways until neither side has anything to send; returns the
/// plaintext the client received.
fn pump(client: &mut ClientConnection, stack: &mut Stack, now: Instant) -> Vec<u8> {
    let mut plain = Vec::new();
    loop {
        let mut progressed = false;
        let mut up = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut up).unwrap();
        }
        if !up.is_empty() {
            stack.on_data(&up, now);
            progressed = true;
        }
        if let Some(down) = stack.take_output() {
            let mut rest = &down[..];
            while !rest.is_empty() {
                client.read_tls(&mut rest).unwrap();
                client.process_new_packets().unwrap();
                // Drain as it arrives: rustls refuses more records while its plaintext
                // buffer is full ("received plaintext buffer full").
                drain_plaintext(client, &mut plain);
            }
            stack.recycle_output(down);
            progressed = true;
        }
        drain_plaintext(client, &mut plain);
        if !progressed {
            return plain;
        }
    }
}

fn connect(config: &Arc<ClientConfig>) -> ClientConnection {
    ClientConnection::new(config.clone(), ServerName::try_from("localhost").unwrap()).unwrap()
}

#[test]
fn a_request_over_tls_is_answered_and_the_handshake_counted() {
    let pki = TestPki::new("exchange");
    let setup = pki.setup();
    let shared = shared();
    let now = Instant::now();
    // Before any connection: every series at 0.
    assert_eq!(
        metric(&shared, "gateway_tls_handshakes_total{result=\"ok\"}"),
        0
    );
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        let mut server = stack(&shared, &setup, now);
        let mut client = connect(&pki.client_config(versions));
        client
            .writer()
            .write_all(&post("/topics/t", b"hello"))
            .unwrap();
        let plain = pump(&mut client, &mut server, now);
        assert_eq!(statuses(&parse_responses(&plain)), [202], "{versions:?}");
        assert_eq!(client.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert!(!server.is_finished());
    }
    assert_eq!(
        metric(&shared, "gateway_tls_handshakes_total{result=\"ok\"}"),
        2
    );
    assert_eq!(
        metric(&shared, "gateway_tls_handshakes_total{result=\"failed\"}"),
        0
    );
}

#[test]
fn pipelined_requests_and_a_large_answer_cross_in_many_records() {
    let pki = TestPki::new("pipeline");
    let setup = pki.setup();
    let shared = shared();
    let now = Instant::now();
    let mut server = stack(&shared, &setup, now);
    let mut client = connect(&pki.client_config(rustls::DEFAULT_VERSIONS));
    let mut reqs = Vec::new();
    for i in 0..200 {
        reqs.extend_from_slice(&post("/topics/t", format!("record {i}").as_bytes()));
    }
    // /metrics is a large answer: more than one TLS record.
    reqs.extend_from_slice(&get("/metrics"));
    client.writer().write_all(&reqs).unwrap();
    let plain = pump(&mut client, &mut server, now);
    let rs = parse_responses(&plain);
    assert_eq!(rs.len(), 201);
    assert!(rs[..200].iter().all(|r| r.status == 202));
    assert!(rs[200].body_str().contains("gateway_tls_resumed_total"));
}

#[test]
fn a_second_connection_resumes_the_first_ones_session() {
    let pki = TestPki::new("resume");
    let setup = pki.setup();
    let shared = shared();
    let now = Instant::now();
    for versions in [
        &[&rustls::version::TLS13][..],
        &[&rustls::version::TLS12][..],
    ] {
        // One client configuration: its session store carries the ticket over.
        let config = pki.client_config(versions);
        for (i, expected) in [HandshakeKind::Full, HandshakeKind::Resumed]
            .into_iter()
            .enumerate()
        {
            let mut server = stack(&shared, &setup, now);
            let mut client = connect(&config);
            client.writer().write_all(&get("/healthz")).unwrap();
            let plain = pump(&mut client, &mut server, now);
            assert_eq!(statuses(&parse_responses(&plain)), [200]);
            assert_eq!(
                client.handshake_kind(),
                Some(expected),
                "{versions:?} connection {i}"
            );
        }
    }
    assert_eq!(metric(&shared, "gateway_tls_resumed_total"), 2);
    assert_eq!(
        metric(&shared, "gateway_tls_handshakes_total{result=\"ok\"}"),
        4
    );
}

/// Feeds `bytes` as a client's first flight; returns what the server wrote before closing.
fn first_flight(shared: &Arc<Shared>, setup: &Setup, bytes: &[u8]) -> Vec<u8> {
    let mut server = stack(shared, setup, Instant::now());
    server.on_data(bytes, Instant::now());
    let out = server.take_output().unwrap_or_default();
    assert!(server.is_finished(), "the connection must close");
    assert!(!server.wants_read());
    out
}

#[test]
fn garbage_instead_of_a_client_hello_gets_an_alert_and_a_close() {
    let pki = TestPki::new("garbage");
    let setup = pki.setup();
    let shared = shared();
    // Plaintext HTTP on the TLS port, and random-looking bytes.
    let out = first_flight(&shared, &setup, &get("/healthz"));
    assert!(out.is_empty() || out[0] == 0x15, "{out:?}");
    let noise: Vec<u8> = (0..100_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let out = first_flight(&shared, &setup, &noise);
    assert!(out.is_empty() || out[0] == 0x15, "{out:?}");
    assert_eq!(
        metric(
            &shared,
            "gateway_tls_handshake_failures_total{reason=\"bad_record\"}"
        ),
        2
    );
    assert_eq!(
        metric(&shared, "gateway_tls_handshakes_total{result=\"failed\"}"),
        2
    );
}

/// A ClientHello offering `version` and one cipher suite, and no extensions.
fn old_client_hello(version: u16, suite: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // session id
    body.extend_from_slice(&2u16.to_be_bytes());
    body.extend_from_slice(&suite.to_be_bytes());
    body.extend_from_slice(&[1, 0]); // compression: null
    let mut hs = vec![1u8]; // client_hello
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 0x03, 0x01];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn a_client_offering_only_old_versions_or_ciphers_gets_an_alert() {
    let pki = TestPki::new("old");
    let setup = pki.setup();
    let shared = shared();
    // TLS 1.0 with TLS_RSA_WITH_AES_128_CBC_SHA; TLS 1.1 likewise; TLS 1.2 with 3DES only.
    for (version, suite) in [(0x0301, 0x002f), (0x0302, 0x002f), (0x0303, 0x000a)] {
        let out = first_flight(&shared, &setup, &old_client_hello(version, suite));
        assert_eq!(
            out.first(),
            Some(&0x15),
            "an alert record for {version:#x}/{suite:#x}: {out:?}"
        );
    }
    assert_eq!(
        metric(
            &shared,
            "gateway_tls_handshake_failures_total{reason=\"no_shared_cipher_or_version\"}"
        ),
        3
    );
}

#[test]
fn a_handshake_that_stalls_is_closed_at_its_deadline() {
    let pki = TestPki::new("stall");
    let setup = Setup::from_pem_files(&pki.cert(), &pki.key(), Duration::from_secs(3)).unwrap();
    let shared = shared();
    let start = Instant::now();
    let mut server = stack(&shared, &setup, start);
    // Half a ClientHello, then nothing.
    let mut client = connect(&pki.client_config(rustls::DEFAULT_VERSIONS));
    let mut hello = Vec::new();
    client.write_tls(&mut hello).unwrap();
    server.on_data(&hello[..hello.len() / 2], start);
    assert_eq!(server.deadline(), Some(start + Duration::from_secs(3)));
    server.on_timer(start + Duration::from_secs(2));
    assert!(!server.is_finished());
    server.on_timer(start + Duration::from_secs(3));
    assert!(server.is_finished());
    assert_eq!(server.deadline(), None);
    assert_eq!(
        metric(
            &shared,
            "gateway_tls_handshake_failures_total{reason=\"timeout\"}"
        ),
        1
    );
    // A completed handshake has no handshake deadline left: the idle timeout rules.
    let mut server = stack(&shared, &setup, start);
    let mut client = connect(&pki.client_config(rustls::DEFAULT_VERSIONS));
    client.writer().write_all(&get("/healthz")).unwrap();
    pump(&mut client, &mut server, start);
    assert_eq!(server.deadline(), Some(start + IDLE));
}

#[test]
fn a_peer_gone_mid_handshake_is_counted() {
    let pki = TestPki::new("gone");
    let setup = pki.setup();
    let shared = shared();
    let now = Instant::now();
    let mut server = stack(&shared, &setup, now);
    server.on_eof(now);
    assert!(server.is_finished());
    assert_eq!(
        metric(
            &shared,
            "gateway_tls_handshake_failures_total{reason=\"peer_closed\"}"
        ),
        1
    );
    assert_eq!(
        metric(&shared, "gateway_tls_handshakes_total{result=\"ok\"}"),
        0
    );
}

#[test]
fn plaintext_connections_are_untouched_and_render_no_tls_series() {
    let shared = shared_with(config(AckMode::Enqueue), Arc::new(ManualSink::default()));
    let now = Instant::now();
    let mut server = Stack::new(shared.clone(), ReplyTo::detached(), None, now).unwrap();
    server.on_data(&post("/topics/t", b"x"), now);
    let out = server.take_output().unwrap();
    assert_eq!(statuses(&parse_responses(&out)), [202]);
    assert!(!shared.render_metrics().contains("gateway_tls_"));
}

fn setup_error(cert: &Path, key: &Path) -> String {
    match Setup::from_pem_files(cert, key, Duration::from_secs(10)) {
        Ok(_) => panic!("{} / {} accepted", cert.display(), key.display()),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn bad_certificate_files_are_clear_start_up_errors() {
    let pki = TestPki::new("files");
    let other = TestPki::new("files-other");
    let missing = pki.dir.join("missing.pem");
    let e = setup_error(&missing, &pki.key());
    assert!(
        e.contains("--tls-cert") && e.contains("missing.pem") && e.contains("cannot read"),
        "{e}"
    );
    let garbage = pki.dir.join("garbage.pem");
    std::fs::write(&garbage, "not a pem file\n").unwrap();
    let e = setup_error(&garbage, &pki.key());
    assert!(
        e.contains("--tls-cert") && e.contains("no PEM certificate"),
        "{e}"
    );
    let e = setup_error(&pki.cert(), &garbage);
    assert!(e.contains("--tls-key") && e.contains("garbage.pem"), "{e}");
    // The key as the certificate, and the certificate as the key.
    let e = setup_error(&pki.key(), &pki.key());
    assert!(e.contains("--tls-cert"), "{e}");
    let e = setup_error(&pki.cert(), &pki.cert());
    assert!(e.contains("--tls-key"), "{e}");
    // A key that is not the certificate's.
    let e = setup_error(&pki.cert(), &other.key());
    assert!(e.contains("--tls-cert") && e.contains("--tls-key"), "{e}");
    assert!(Setup::from_pem_files(&pki.cert(), &pki.key(), Duration::from_secs(1)).is_ok());
}

#[test]
fn tls_flags_go_together() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        g: common::GatewayArgs,
    }
    let pki = TestPki::new("flags");
    let (cert, key) = (pki.cert(), pki.key());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let parse = |args: &[&str]| Cli::try_parse_from([&["gw"], args].concat()).unwrap().g;
    assert!(parse(&[]).tls_setup().unwrap().is_none());
    let e = parse(&["--tls-cert", cert])
        .tls_setup()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--tls-cert needs --tls-key"), "{e}");
    let e = parse(&["--tls-key", key])
        .tls_setup()
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("--tls-key needs --tls-cert"), "{e}");
    let g = parse(&[
        "--tls-cert",
        cert,
        "--tls-key",
        key,
        "--tls-handshake-timeout",
        "2s",
    ]);
    assert_eq!(
        g.tls_setup().unwrap().unwrap().handshake_timeout,
        Duration::from_secs(2)
    );
}
