//! `bench-client run` as a wrk/oha user reaches for it (issue 14): a URL whose path picks
//! mode and topic, short flags, `-H`/`-k`, SIGINT, exit codes, the per-second line when
//! not on a terminal. Through the binary and real sockets, against a small HTTP server
//! written here that records what it was sent.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_client::RunResult;

/// What the server does with request number `n` (counted from 0 over all connections).
#[derive(Clone, Copy)]
enum Behaviour {
    /// `200 {"partition":0,"offset":n}` to every request.
    Ok,
    /// Every `k`-th request gets a 500.
    FailEvery(u64),
    /// The first request that arrives this long after the first one is answered only
    /// after the delay (a stall).
    DelayOnceAfter(Duration, Duration),
}

struct Server {
    addr: SocketAddr,
    /// The first request heads, verbatim.
    heads: Arc<Mutex<Vec<String>>>,
}

impl Server {
    fn start(b: Behaviour) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let heads: Arc<Mutex<Vec<String>>> = Arc::default();
        let count = Arc::new(AtomicU64::new(0));
        let first: Arc<Mutex<Option<(Instant, bool)>>> = Arc::default();
        let h = heads.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { continue };
                let (h, count, first) = (h.clone(), count.clone(), first.clone());
                std::thread::spawn(move || serve(c, b, &h, &count, &first));
            }
        });
        Server { addr, heads }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

fn serve(
    c: TcpStream,
    b: Behaviour,
    heads: &Mutex<Vec<String>>,
    count: &AtomicU64,
    first: &Mutex<Option<(Instant, bool)>>,
) {
    support::serve_http(c, |_, req, out| {
        {
            let mut hv = heads.lock().unwrap();
            if hv.len() < 8 {
                hv.push(String::from_utf8_lossy(req.head).into_owned());
            }
        }
        let n = count.fetch_add(1, Ordering::Relaxed);
        let fail = match b {
            Behaviour::FailEvery(k) => n.is_multiple_of(k),
            Behaviour::DelayOnceAfter(after, d) => {
                let delay = {
                    let mut f = first.lock().unwrap();
                    match *f {
                        None => {
                            *f = Some((Instant::now(), false));
                            false
                        }
                        Some((t, false)) if t.elapsed() >= after => {
                            *f = Some((t, true));
                            true
                        }
                        Some(_) => false,
                    }
                };
                if delay {
                    std::thread::sleep(d);
                }
                false
            }
            Behaviour::Ok => false,
        };
        let body = if fail {
            r#"{"error":"boom"}"#.to_string()
        } else {
            format!(r#"{{"partition":0,"offset":{n}}}"#)
        };
        let status = if fail {
            "500 Internal Server Error"
        } else {
            "200 OK"
        };
        out.extend_from_slice(
            format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
    });
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "bench-client-everyday-{}-{name}",
        std::process::id()
    ))
}

fn bench() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bench-client"));
    c.arg("run");
    c
}

fn show(o: &Output) -> (String, String) {
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    eprintln!(
        "--- stdout\n{out}--- stderr\n{err}--- status {:?}",
        o.status
    );
    (out, err)
}

/// The per-second line a run prints on stderr when it is not a terminal.
fn progress_lines(stderr: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.starts_with("bench-client: ") && l.contains(" ok/s"))
        .count()
}

#[test]
fn url_picks_topic_and_short_flags_work() {
    let srv = Server::start(Behaviour::Ok);
    let json = tmp("url.json");
    let o = bench()
        .arg(srv.url("/topics/x"))
        .args(["-c", "8", "-d", "2s", "-t", "1", "--warmup", "300ms"])
        .args(["-H", "kafka-header-foo: bar", "-k", "user 7"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let (out, err) = show(&o);
    assert_eq!(o.status.code(), Some(0));
    let r: RunResult = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r.config.topic, "x");
    assert_eq!(r.config.connections, 8);
    assert_eq!(r.config.duration_s, Some(2.0));
    assert_eq!(r.config.threads, 1);
    assert!(!r.interrupted);
    assert!(r.totals.ok > 0);
    // 100 B payload: bytes/s is ok/s × 100.
    assert!((r.totals.ok_bytes_per_sec - 100.0 * r.totals.ok_per_sec).abs() < 1e-6);
    // The summary reads like wrk/oha.
    assert!(out.starts_with("HTTP "), "{out}");
    assert!(out.contains("payload 100 B"));
    assert!(out.contains(" ok/s ") && out.contains("B/s "), "{out}");
    // Not a terminal: one plain progress line a second.
    assert!(progress_lines(&err) >= 1, "{err}");
    // The path, key and header reached the server verbatim.
    let heads = srv.heads.lock().unwrap();
    let h = heads.first().expect("the server saw requests");
    assert!(
        h.starts_with("POST /topics/x?ack=kafka&key=user%207 HTTP/1.1\r\n"),
        "{h}"
    );
    assert!(h.contains("\r\nkafka-header-foo: bar\r\n"), "{h}");
    let _ = std::fs::remove_file(json);
}

#[test]
fn quiet_run_prints_no_progress_and_body_file_sets_the_payload() {
    let srv = Server::start(Behaviour::Ok);
    let body = tmp("body.bin");
    std::fs::write(&body, vec![b'z'; 321]).unwrap();
    let json = tmp("quiet.json");
    let o = bench()
        .arg(srv.url("/topics/q"))
        .args(["-c", "2", "-d", "1500ms", "--threads", "1", "--warmup", "0"])
        .arg("--body-file")
        .arg(&body)
        .arg("-q")
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let (out, err) = show(&o);
    assert_eq!(o.status.code(), Some(0));
    assert!(out.is_empty());
    assert_eq!(progress_lines(&err), 0, "{err}");
    let r: RunResult = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((r.config.payload.min, r.config.payload.max), (321, 321));
    assert!(srv
        .heads
        .lock()
        .unwrap()
        .iter()
        .all(|h| h.contains("\r\nContent-Length: 321\r\n")));
    let _ = std::fs::remove_file(json);
    let _ = std::fs::remove_file(body);
}

#[test]
fn sigint_stops_the_run_and_writes_summary_and_json() {
    let srv = Server::start(Behaviour::Ok);
    let json = tmp("sigint.json");
    let child = bench()
        .arg(srv.url("/topics/s"))
        .args(["-c", "2", "-d", "60s", "-t", "1", "--warmup", "200ms"])
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let sent = Instant::now();
    // SAFETY: kill(2) on the PID of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let (out, err) = show(&o);
    assert!(took < Duration::from_secs(10), "took {took:?} to exit");
    assert_eq!(o.status.code(), Some(130));
    assert!(out.contains("INTERRUPTED"), "{out}");
    assert!(out.contains(" ok/s "));
    assert!(err.contains("a second signal exits at once"), "{err}");
    let r: RunResult = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert!(r.interrupted);
    assert!(
        r.measured_s > 0.5 && r.measured_s < 10.0,
        "measured {}",
        r.measured_s
    );
    assert_eq!(r.config.duration_s, Some(60.0));
    assert!(r.totals.ok > 0);
    assert_eq!(r.timeline.len(), r.measured_s.ceil() as usize);
    let _ = std::fs::remove_file(json);
}

#[test]
fn closed_port_exits_non_zero() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = bench()
        .arg(format!("http://127.0.0.1:{port}/topics/x"))
        .args(["-d", "1s", "-t", "1", "--warmup", "100ms", "-c", "2"])
        .output()
        .unwrap();
    let (out, err) = show(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("no request succeeded"), "{err}");
    assert!(out.contains("ECONNREFUSED"), "{out}");
}

#[test]
fn max_error_rate_decides_the_exit_status() {
    // Every second request fails: an error rate of about 0.5.
    let srv = Server::start(Behaviour::FailEvery(2));
    let run = |max: &str| {
        bench()
            .arg(srv.url("/topics/e"))
            .args(["-c", "2", "-d", "1s", "-t", "1", "--warmup", "100ms", "-q"])
            .args(["--max-error-rate", max])
            .output()
            .unwrap()
    };
    let strict = run("0.2");
    show(&strict);
    assert_eq!(strict.status.code(), Some(4));
    let lax = run("0.8");
    show(&lax);
    assert_eq!(lax.status.code(), Some(0));
    let bad = run("2");
    let (_, err) = show(&bad);
    assert_eq!(bad.status.code(), Some(2));
    assert!(err.contains("--max-error-rate"));
}

#[test]
fn fail_on_stall_decides_the_exit_status() {
    let run = |fail: bool| {
        // One connection; 700 ms into the run (after the 100 ms warmup) a request waits
        // 1.2 s.
        let srv = Server::start(Behaviour::DelayOnceAfter(
            Duration::from_millis(700),
            Duration::from_millis(1200),
        ));
        let mut c = bench();
        c.arg(srv.url("/topics/st"))
            .args(["-c", "1", "-d", "2s", "-t", "1", "--warmup", "100ms", "-q"]);
        if fail {
            c.arg("--fail-on-stall");
        }
        c.output().unwrap()
    };
    let o = run(true);
    show(&o);
    assert_eq!(o.status.code(), Some(3));
    let o = run(false);
    show(&o);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn help_documents_the_exit_status() {
    let o = bench().arg("--help").output().unwrap();
    let (out, _) = show(&o);
    assert_eq!(o.status.code(), Some(0));
    for code in [
        "Exit status:",
        "\n  1 ",
        "\n  3 ",
        "\n  4 ",
        "130",
        "--max-error-rate",
    ] {
        assert!(out.contains(code), "{code:?} missing from --help");
    }
}

#[test]
fn bad_urls_are_clear_errors() {
    for (args, why) in [
        (vec!["http://127.0.0.1:1/foo/x"], "/topics/TOPIC"),
        (
            vec!["http://127.0.0.1:1/topics/x", "--mode", "ws"],
            "contradicts",
        ),
        (
            vec!["http://127.0.0.1:1/topics/x", "--topic", "y"],
            "contradicts",
        ),
        (vec!["http://127.0.0.1:1/topics/x?ack=none"], "--ack"),
        (
            vec!["http://127.0.0.1:1/topics/x", "-H", "no colon"],
            "NAME: VALUE",
        ),
        (vec!["ftp://127.0.0.1:1/topics/x"], "http://"),
        (vec![], "no URL"),
    ] {
        let o = bench().args(&args).output().unwrap();
        let (_, err) = show(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(err.contains(why), "{args:?}: {err}");
    }
}

/// The same flag means the same thing in every subcommand; old names still parse.
#[test]
fn flag_aliases_parse() {
    use bench_client::experiments::chaos::ChaosArgs;
    use bench_client::experiments::compare::CompareArgs;
    use bench_client::experiments::soak::SoakArgs;
    use bench_client::experiments::stall_lab::StallLabArgs;
    use bench_client::lab::GatewayKind;
    use bench_client::RunArgs;
    use clap::{Args, Parser};

    #[derive(Parser)]
    struct P<T: Args> {
        #[command(flatten)]
        a: T,
    }
    fn parse<T: Args>(args: &[&str]) -> T {
        match P::<T>::try_parse_from(std::iter::once("x").chain(args.iter().copied())) {
            Ok(p) => p.a,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    // run: wrk/oha short flags and their long names.
    let short: RunArgs = parse(&[
        "http://h:1/topics/t",
        "-c",
        "8",
        "-d",
        "1h30m",
        "-t",
        "2",
        "-R",
        "500",
        "-H",
        "a: b",
        "-H",
        "c: d",
        "-k",
        "K",
    ]);
    let long: RunArgs = parse(&[
        "--target",
        "http://h:1/topics/t",
        "--connections",
        "8",
        "--duration",
        "5400",
        "--client-threads",
        "2",
        "--rate",
        "500",
        "--header",
        "a: b",
        "--header",
        "c: d",
        "--key",
        "K",
    ]);
    let old: RunArgs = parse(&["http://h:1/topics/t", "--threads", "2"]);
    assert_eq!(short.connections, long.connections);
    assert_eq!(short.duration, long.duration);
    assert_eq!(short.duration, Some(Duration::from_secs(5400)));
    assert_eq!(
        (short.threads, long.threads, old.threads),
        (Some(2), Some(2), Some(2))
    );
    assert_eq!((short.rate, long.rate), (Some(500.0), Some(500.0)));
    assert_eq!(short.header, long.header);
    assert_eq!(short.header, ["a: b", "c: d"]);
    assert_eq!((short.key, long.key), (Some("K".into()), Some("K".into())));
    let n: RunArgs = parse(&["http://h:1/topics/t", "-n", "100", "-q"]);
    assert_eq!(n.requests, Some(100));
    assert!(n.quiet);

    // --gateways with `all` or a list everywhere; --gateway is the old name.
    let two = vec![GatewayKind::Uring, GatewayKind::Compio];
    let c: CompareArgs = parse(&["--gateways", "all"]);
    assert_eq!(c.shared.gateways.0, GatewayKind::ALL.to_vec());
    let c: CompareArgs = parse(&[
        "--gateways",
        "uring,compio",
        "--threads",
        "3",
        "--runs",
        "2",
    ]);
    assert_eq!(c.shared.gateways.0, two);
    assert_eq!((c.threads_old, c.repeats), (Some(3), Some(2)));
    let s: SoakArgs = parse(&[
        "--gateway",
        "uring,compio",
        "--threads",
        "1",
        "-X",
        "linger.ms=5",
    ]);
    assert_eq!(s.shared.gateways.0, two);
    assert_eq!(s.client_threads(), Some(1));
    assert_eq!(s.shared.producer, ["linger.ms=5"]);
    let s: SoakArgs = parse(&["--gateways", "uring,compio", "--client-threads", "1", "-q"]);
    assert_eq!((&s.shared.gateways.0, s.client_threads()), (&two, Some(1)));
    assert!(s.shared.quiet);
    let ch: ChaosArgs = parse(&[
        "--gateway",
        "uring,compio",
        "--rtt-ms",
        "250",
        "--threads",
        "1",
    ]);
    assert_eq!(ch.shared.gateways.0, two);
    assert_eq!(ch.rtt(), Duration::from_millis(250));
    assert_eq!(ch.client_threads(), Some(1));
    let ch: ChaosArgs = parse(&["--rtt", "250ms", "--gateway-threads", "2", "-X", "acks=all"]);
    assert_eq!(ch.rtt(), Duration::from_millis(250));
    assert_eq!(ch.shared.gateway_threads, Some(2));
    assert!(P::<ChaosArgs>::try_parse_from(["x", "--rtt", "1s", "--rtt-ms", "5"]).is_err());
    let sl: StallLabArgs = parse(&["--gateways", "uring,compio", "--runs", "2", "-q"]);
    assert_eq!((sl.shared.gateways.0, sl.repeats), (two, 2));
    let sl: StallLabArgs = parse(&["--repeats", "4", "--duration", "1m30s"]);
    assert_eq!((sl.repeats, sl.duration), (4, Duration::from_secs(90)));
}

/// A `/ws/T` URL runs WebSocket to T against a real gateway, `-H` riding on the upgrade.
#[test]
fn ws_url_against_a_real_gateway() {
    use bench_client::lab::{default_bin_dir, Gateway, GatewayKind, GatewaySpec};
    let bin_dir = default_bin_dir().unwrap();
    let mut gw = Gateway::start(&GatewaySpec {
        threads: Some(1),
        args: vec!["--sink".into(), "null".into()],
        ..GatewaySpec::new(GatewayKind::TokioMulti, &bin_dir).unwrap()
    })
    .unwrap();
    let json = tmp("ws.json");
    let o = bench()
        .arg(format!("{}/ws/w", gw.target()))
        .args(["-c", "2", "-d", "1s", "-t", "1", "--warmup", "200ms"])
        .args(["-H", "kafka-header-trace: abc", "-k", "k1", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let (out, _) = show(&o);
    let _ = gw.terminate(Duration::from_secs(10));
    assert_eq!(o.status.code(), Some(0));
    assert!(out.starts_with("WebSocket "), "{out}");
    let r: RunResult = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r.config.mode, bench_client::Mode::Ws);
    assert_eq!(r.config.topic, "w");
    assert!(r.totals.ok > 0 && r.totals.errors == 0, "{:?}", r.totals);
    let _ = std::fs::remove_file(json);
}
