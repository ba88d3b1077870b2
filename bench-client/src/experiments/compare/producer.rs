//! The bare producer (`producer-bench`): the ceiling of the Kafka path, measured once per
//! round with the gateways' producer configuration, broker, topic and CPUs.

use std::path::Path;

use super::summary::ProducerRun;
use crate::lab;

/// Runs `producer-bench` pinned to the gateway's CPUs against the same broker and topic,
/// with the same `-X` overrides the gateways get.
pub(super) fn bare_producer(
    bin: Option<&Path>,
    bootstrap: &str,
    topic: &str,
    overrides: &[String],
    cpus: &[usize],
    secs: f64,
    round: usize,
) -> ProducerRun {
    let mut run = ProducerRun {
        round,
        records: 0,
        seconds: 0.0,
        records_per_sec: 0.0,
        cpu_s: 0.0,
        cpu_us_per_record: 0.0,
        command: vec![],
        error: None,
    };
    let Some(bin) = bin else {
        run.error = Some("producer-bench not found next to bench-client".into());
        return run;
    };
    let mut args = vec![
        "--brokers".to_string(),
        bootstrap.to_string(),
        "--topic".into(),
        topic.into(),
        "--duration".into(),
        format!("{secs}s"),
        "--payload".into(),
        "100".into(),
    ];
    for x in overrides {
        args.extend(["-X".to_string(), x.clone()]);
    }
    let shown = lab::command_line(bin, &args, cpus);
    run.command.clone_from(&shown);
    let out = std::process::Command::new(&shown[0])
        .args(&shown[1..])
        .stdin(std::process::Stdio::null())
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            run.error = Some(format!("starting {}: {e}", shown[0]));
            return run;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let parsed = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok());
    match (out.status.success(), parsed) {
        (true, Some(j)) => {
            let f = |k: &str| j.get(k).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
            run.records = f("records") as u64;
            run.seconds = f("seconds");
            run.records_per_sec = f("records_per_sec");
            run.cpu_s = f("cpu_s");
            run.cpu_us_per_record = f("cpu_us_per_record");
        }
        _ => {
            run.error = Some(format!(
                "producer-bench failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ))
        }
    }
    run
}
