//! The two binaries' command lines: their own names in `--version`, kafka-mock's broker
//! count under its own flag (old spelling still accepted), producer-bench on the workspace's
//! duration grammar.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn bin(name: &str) -> Command {
    let path = match name {
        "kafka-mock" => env!("CARGO_BIN_EXE_kafka-mock"),
        _ => env!("CARGO_BIN_EXE_producer-bench"),
    };
    Command::new(path)
}

#[test]
fn version_names_the_binary_not_the_crate() {
    for name in ["kafka-mock", "producer-bench"] {
        let out = bin(name).arg("--version").output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name} --version failed");
        assert!(
            text.starts_with(&format!("{name} ")),
            "{name} --version printed {text:?}"
        );
    }
}

#[test]
fn producer_bench_takes_the_shared_duration_grammar() {
    // `1h30m` parses (the run then stops at the missing broker list, not at the duration).
    let out = bin("producer-bench")
        .args(["--duration", "1h30m"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--brokers"),
        "expected the missing --brokers error, got {err}"
    );
    assert!(
        !err.contains("invalid duration"),
        "1h30m was refused: {err}"
    );
    let out = bin("producer-bench")
        .args(["--brokers", "127.0.0.1:1", "--duration", "10 parsecs"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("invalid duration"),
        "expected the grammar's error, got {err}"
    );
}

#[test]
fn kafka_mock_broker_count_and_its_old_spelling() {
    let out = bin("kafka-mock")
        .args(["--broker-count", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--broker-count must be at least 1"));
    for flag in ["--broker-count", "--brokers"] {
        let mut child = bin("kafka-mock")
            .args([flag, "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // One broker: the bootstrap list has one address.
        assert_eq!(
            line.trim().split(',').count(),
            1,
            "{flag} 1 gave bootstrap {line:?}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
