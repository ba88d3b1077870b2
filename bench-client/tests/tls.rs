//! bench-client over TLS, through real sockets, against a small rustls server started
//! here (blocking, a thread per connection): `https://` keep-alive and connection-per-
//! request runs, session resumption on and off, a certificate from an untrusted CA, and a
//! `wss://` run whose server (tungstenite over the TLS stream) acks every message.

mod support;

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;

use bench_client::engine::printer::summary;
use bench_client::{run_blocking, RunArgs, RunConfig, RunResult};
use clap::Parser as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// A CA named `ca_name` (its PEM) and a server certificate for 127.0.0.1 signed by it.
struct Pki {
    ca_pem: String,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki(ca_name: &str) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca_pem: ca.pem(),
        chain: vec![leaf.der().clone()],
        key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    }
}

#[derive(Clone, Copy)]
enum Serve {
    /// `200 {"partition":0,"offset":N}` to every request.
    Http,
    /// A WebSocket upgrade, then `{"ack":N}` for the N-th message.
    Ws,
}

/// A rustls server on 127.0.0.1 (ALPN http/1.1, TLS 1.2 and 1.3, the default session
/// cache and tickets, so clients can resume).
fn start(pki: &Pki, serve: Serve) -> SocketAddr {
    #[allow(deprecated)] // the workspace's provider (see engine/load/tls.rs)
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(pki.chain.clone(), pki.key.clone_key())
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let cfg = Arc::new(cfg);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let cfg = cfg.clone();
            std::thread::spawn(move || {
                let _ = c.set_nodelay(true);
                let tls = StreamOwned::new(ServerConnection::new(cfg).unwrap(), c);
                match serve {
                    Serve::Http => http(tls),
                    Serve::Ws => ws(tls),
                }
            });
        }
    });
    addr
}

type Tls = StreamOwned<ServerConnection, std::net::TcpStream>;

fn http(tls: Tls) {
    let mut offset = 0u64;
    support::serve_http_on(tls, |_, req, out| {
        assert!(req.path.starts_with("/topics/"), "{}", req.path);
        offset += 1;
        let body = format!(r#"{{"partition":0,"offset":{offset}}}"#);
        let _ = write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
    });
}

fn ws(tls: Tls) {
    let Ok(mut ws) = tungstenite::accept(tls) else {
        return;
    };
    let mut n = 0u64;
    while let Ok(m) = ws.read() {
        if m.is_binary() {
            n += 1;
            let ack = tungstenite::Message::text(format!(r#"{{"ack":{n}}}"#));
            if ws.send(ack).is_err() {
                return;
            }
        }
    }
}

fn write_tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bench-tls-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// `bench-client run ARGS` in process, quietly and without the host probes.
fn run(args: &[&str]) -> RunResult {
    #[derive(clap::Parser)]
    struct P {
        #[command(flatten)]
        a: RunArgs,
    }
    let base = [
        "run",
        "-q",
        "--warmup",
        "0",
        "--no-server-probe",
        "--no-syscalls",
    ];
    let p = P::try_parse_from(base.iter().chain(args)).unwrap();
    run_blocking(RunConfig::from_args(&p.a).unwrap()).unwrap()
}

fn tls_errors(r: &RunResult) -> u64 {
    r.errors
        .iter()
        .filter(|e| e.phase.to_string() == "tls")
        .map(|e| e.count)
        .sum()
}

#[test]
fn https_keepalive_run_gets_2xx_and_reports_its_handshakes() {
    let pki = pki("bench-client test CA");
    let ca = write_tmp("keepalive-ca.pem", &pki.ca_pem);
    let addr = start(&pki, Serve::Http);
    let url = format!("https://{addr}/topics/t");
    let r = run(&[&url, "--ca", ca.to_str().unwrap(), "-c", "4", "-n", "300"]);
    assert_eq!(r.totals.ok, 300, "{}", summary(&r));
    assert_eq!(r.totals.errors, 0, "{:?}", r.errors);
    assert_eq!(r.http_status.get(&200), Some(&300));
    let tls = r.tls.as_ref().expect("a TLS run reports its handshakes");
    assert_eq!(tls.full + tls.resumed, r.totals.connects, "{tls:?}");
    assert!(tls.full >= 1, "the first handshake cannot resume: {tls:?}");
    assert_eq!(tls.handshake_latency.count, tls.full + tls.resumed);
    assert_eq!(tls.failed, 0);
    let text = summary(&r);
    assert!(text.contains("\ntls "), "{text}");
    // The result file keeps it, and reads back.
    let json = serde_json::to_string(&r).unwrap();
    let back: RunResult = serde_json::from_str(&json).unwrap();
    assert_eq!(back.tls, r.tls);
}

/// Connection per request is the churn case: one handshake per request, resumed from the
/// shared session store when resumption is on, never when it is off.
#[test]
fn churn_resumes_sessions_only_with_tls_resume_on() {
    let pki = pki("bench-client test CA");
    let ca = write_tmp("churn-ca.pem", &pki.ca_pem);
    let addr = start(&pki, Serve::Http);
    let url = format!("https://{addr}/topics/t");
    let churn = |resume: &str| {
        run(&[
            &url,
            "--mode",
            "http-close",
            "--ca",
            ca.to_str().unwrap(),
            "-c",
            "2",
            "-n",
            "60",
            "--tls-resume",
            resume,
        ])
    };
    let on = churn("on");
    assert_eq!(on.totals.ok, 60, "{}", summary(&on));
    let tls = on.tls.clone().unwrap();
    assert!(tls.resume);
    assert!(
        tls.full + tls.resumed >= 60,
        "a handshake per request: {tls:?}"
    );
    assert!(tls.full >= 1, "{tls:?}");
    assert!(
        tls.resumed >= 30,
        "most reconnects resume with a shared store: {tls:?}"
    );

    let off = churn("off");
    assert_eq!(off.totals.ok, 60, "{}", summary(&off));
    let tls = off.tls.clone().unwrap();
    assert!(!tls.resume);
    assert_eq!(tls.resumed, 0, "{tls:?}");
    assert!(tls.full >= 60, "{tls:?}");
    assert!(summary(&off).contains("resumption off"));
}

#[test]
fn a_certificate_from_another_ca_is_a_counted_certificate_error() {
    let pki = pki("bench-client test CA");
    // Another name: a CA of the same name is found as the issuer, and fails on the
    // signature instead (`certificate-bad-signature`).
    let stranger = self::pki("some other CA");
    let wrong = write_tmp("wrong-ca.pem", &stranger.ca_pem);
    let addr = start(&pki, Serve::Http);
    let url = format!("https://{addr}/topics/t");
    let r = run(&[
        &url,
        "--ca",
        wrong.to_str().unwrap(),
        "-c",
        "2",
        "-d",
        "300ms",
    ]);
    assert_eq!(r.totals.ok, 0);
    let e = r
        .errors
        .iter()
        .find(|e| e.kind == "certificate-unknown-issuer")
        .unwrap_or_else(|| panic!("no certificate error in {:?}", r.errors));
    assert_eq!(e.phase.to_string(), "tls");
    assert!(e.count >= 1);
    let tls = r.tls.as_ref().unwrap();
    assert_eq!(tls.failed, tls_errors(&r));
    assert_eq!(tls.full + tls.resumed, 0);
    assert!(
        summary(&r).contains("tls certificate-unknown-issuer"),
        "{}",
        summary(&r)
    );

    // The same server with --insecure: any certificate goes.
    let r = run(&[&url, "--insecure", "-c", "2", "-n", "50"]);
    assert_eq!(r.totals.ok, 50, "{}", summary(&r));
    assert_eq!(tls_errors(&r), 0);
}

#[test]
fn wss_run_gets_acks() {
    let pki = pki("bench-client test CA");
    let ca = write_tmp("wss-ca.pem", &pki.ca_pem);
    let addr = start(&pki, Serve::Ws);
    let url = format!("wss://{addr}/ws/t");
    let r = run(&[&url, "--ca", ca.to_str().unwrap(), "-c", "2", "-n", "200"]);
    assert_eq!(r.totals.ok, 200, "{}", summary(&r));
    assert_eq!(r.totals.errors, 0, "{:?}", r.errors);
    let tls = r.tls.as_ref().unwrap();
    assert_eq!(tls.full + tls.resumed, 2, "{tls:?}");
}

#[test]
fn plaintext_results_carry_no_tls_section() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                support::serve_http(c, |_, _, out| {
                    out.extend_from_slice(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 26\r\n\r\n{\"partition\":0,\"offset\":1}",
                    );
                })
            });
        }
    });
    let r = run(&[&format!("http://{addr}/topics/t"), "-c", "1", "-n", "20"]);
    assert_eq!(r.totals.ok, 20, "{}", summary(&r));
    assert!(r.tls.is_none());
    assert!(!serde_json::to_string(&r).unwrap().contains("\"tls\""));
    assert!(!summary(&r).contains("\ntls "));
}
