//! One configuration story (issue 28): the environment forms of the gateways' own flags,
//! `--log-format json` read back as JSON, and `GATEWAY_X_<PROPERTY>_FILE` secrets, against
//! every variant through real processes. (That every flag has a `GATEWAY_*` variable is
//! checked from the clap definitions by each gateway crate's own test.)

use std::io::BufRead;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use conformance::{bin_path, Client, Gateway, Proc, Variant};

conformance::suite!(
    json_log_lines,
    runtime_flags_from_environment,
    secrets_from_files,
    secret_set_twice_is_refused,
);

const SECS: fn(u64) -> Duration = Duration::from_secs;

/// A gateway started with `args` and `env` (the variant's own arguments left out when
/// `with_variant_args` is false, so an environment variable can choose what they would).
fn spawn(v: &Variant, with_variant_args: bool, args: &[&str], env: &[(&str, &str)]) -> Gateway {
    let mut cmd = Command::new(bin_path(v.bin));
    if with_variant_args {
        cmd.args(v.args);
    }
    cmd.args(["--listen", "127.0.0.1:0", "--threads", "1"])
        .args(args);
    for (k, val) in env {
        cmd.env(k, val);
    }
    let proc = Proc::spawn(cmd);
    let line = proc.wait_for_line("listening on ", SECS(30));
    let addr: SocketAddr = line
        .split("listening on ")
        .nth(1)
        .and_then(|s| s.split(|c: char| c.is_whitespace() || c == '"').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("cannot parse the address in {line:?}"));
    Gateway {
        proc,
        addr,
        brokers: String::new(),
    }
}

/// The `gateway_info` line of /metrics.
fn gateway_info(c: &mut Client) -> String {
    let r = c.request("GET", "/metrics", &[], b"").unwrap();
    let text = String::from_utf8_lossy(&r.body).into_owned();
    text.lines()
        .find(|l| l.starts_with("gateway_info{"))
        .unwrap_or_else(|| panic!("no gateway_info in:\n{text}"))
        .to_string()
}

/// `--log-format json` through its variable: every line on stderr, from the first to the
/// last after SIGTERM, is one JSON object with a level and a message; the `listening on`
/// line still carries the address; GATEWAY_FAULT reaches the gateway (its warning's field).
fn json_log_lines(v: &Variant) {
    let mut child = Command::new(bin_path(v.bin))
        .args(v.args)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "1",
            "--sink",
            "null",
        ])
        .env("RUST_LOG", "info")
        .env("GATEWAY_LOG_FORMAT", "json")
        .env("GATEWAY_FAULT", "accept-exit-on-error")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut objects: Vec<serde_json::Value> = Vec::new();
    let parse = |l: &str| -> serde_json::Value {
        let o: serde_json::Value = serde_json::from_str(l)
            .unwrap_or_else(|e| panic!("{}: a log line is not JSON ({e}): {l}", v.name));
        assert!(o.is_object(), "{l}");
        assert!(o["level"].is_string() && o["message"].is_string(), "{l}");
        assert!(o["timestamp"].is_string() && o["target"].is_string(), "{l}");
        o
    };
    let addr: SocketAddr = loop {
        let l = lines
            .next()
            .unwrap_or_else(|| panic!("{}: stderr ended before `listening on`", v.name))
            .unwrap();
        let o = parse(&l);
        objects.push(o.clone());
        if let Some(a) = o["message"].as_str().unwrap().strip_prefix("listening on ") {
            assert_eq!(o["level"], "INFO", "{l}");
            break a.parse().unwrap();
        }
    };
    let faults = objects
        .iter()
        .find(|o| {
            o["message"]
                .as_str()
                .unwrap()
                .starts_with("fault reproductions")
        })
        .unwrap_or_else(|| panic!("{}: no fault warning in {objects:?}", v.name));
    assert_eq!(faults["level"], "WARN");
    assert!(
        faults["faults"]
            .as_str()
            .unwrap()
            .contains("AcceptExitOnError"),
        "{faults}"
    );
    let mut c = Client::from_stream(std::net::TcpStream::connect(addr).unwrap());
    assert_eq!(c.request("GET", "/readyz", &[], b"").unwrap().status, 200);
    drop(c);
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let before = objects.len();
    for l in lines.map_while(Result::ok) {
        objects.push(parse(&l));
    }
    assert!(
        objects.len() > before,
        "{}: nothing logged on SIGTERM",
        v.name
    );
    assert!(child.wait().unwrap().success());
}

/// The runtime's own flags through their variables, read back from gateway_info.
fn runtime_flags_from_environment(v: &Variant) {
    let (env, expect): (&[(&str, &str)], &[&str]) = match v.bin {
        // Without the variant's `--flavor`, which would beat the variable.
        "gateway-tokio" => (&[("GATEWAY_FLAVOR", "per-core")], &["flavor=\"per-core\""]),
        "gateway-uring" => (&[("GATEWAY_RING_ENTRIES", "64")], &["ring_entries=\"64\""]),
        "gateway-compio" => (
            &[
                ("GATEWAY_RING_ENTRIES", "64"),
                ("GATEWAY_DRIVER", "polling"),
            ],
            &["ring_entries=\"64\"", "driver=\"polling\""],
        ),
        other => panic!("no case for {other}"),
    };
    let mut env = env.to_vec();
    env.push(("GATEWAY_SINK", "null"));
    let gw = spawn(v, false, &[], &env);
    let info = gateway_info(&mut gw.connect());
    for e in expect {
        assert!(info.contains(e), "{}: {e} not in {info}", v.name);
    }
}

/// `GATEWAY_X_<PROPERTY>_FILE`: the value from the file (its trailing newline dropped),
/// a secret's value never in the log.
fn secrets_from_files(v: &Variant) {
    let dir = std::env::temp_dir().join(format!("config-{}-{}", v.name, std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("pw");
    let id = dir.join("id");
    std::fs::write(&pw, "hunter2-from-file\n").unwrap();
    std::fs::write(&id, "client-from-file\n").unwrap();
    // Nothing listens on port 1: the producer is configured, never connected.
    let gw = spawn(
        v,
        true,
        &["--brokers", "127.0.0.1:1"],
        &[
            ("GATEWAY_X_SASL_PASSWORD_FILE", pw.to_str().unwrap()),
            ("GATEWAY_X_CLIENT_ID_FILE", id.to_str().unwrap()),
        ],
    );
    let conf = gw.proc.wait_for_line("producer configuration", SECS(5));
    assert!(
        conf.contains("\"client.id\", \"client-from-file\""),
        "{conf}"
    );
    assert!(conf.contains("\"sasl.password\", \"[redacted]\""), "{conf}");
    assert!(!gw.proc.log_text().contains("hunter2"));
    drop(gw);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One property both as a value and as a file: the gateway refuses to start, naming both.
fn secret_set_twice_is_refused(v: &Variant) {
    let dir = std::env::temp_dir().join(format!("config2-{}-{}", v.name, std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pw = dir.join("pw");
    std::fs::write(&pw, "b\n").unwrap();
    let out = Command::new(bin_path(v.bin))
        .args(v.args)
        .args(["--listen", "127.0.0.1:0", "--brokers", "127.0.0.1:1"])
        .env("GATEWAY_X_SASL_PASSWORD", "a")
        .env("GATEWAY_X_SASL_PASSWORD_FILE", &pw)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("GATEWAY_X_SASL_PASSWORD and GATEWAY_X_SASL_PASSWORD_FILE both set"),
        "{}: {err}",
        v.name
    );
}
