//! `verify`: consume a topic from the beginning of every partition to its end and check
//! that every id a run saw acknowledged with ack=kafka is there.
//!
//! Record values start with `<run id>-<seq>` followed by `.` padding; the id is the
//! value up to the first `.`. The embedded broker keeps only ~100k records / 5 MB per
//! partition, so verify soon after the run (or while it runs).
//!
//! Entry point: [`verify`]. Depends only on the engine's configuration parsing; `chaos`
//! uses it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::engine::config::parse_duration;

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Kafka bootstrap servers (HOST:PORT,...).
    #[arg(long)]
    pub brokers: String,
    /// Topic the run produced to.
    #[arg(long)]
    pub topic: String,
    /// Ids acknowledged by the run (`run --acked-file`), one per line.
    #[arg(long)]
    pub acked_file: PathBuf,
    /// Give up reading after this long (what was read so far is still checked).
    #[arg(long, value_parser = parse_duration, default_value = "60s")]
    pub timeout: Duration,
    /// Write the result as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// librdkafka consumer property KEY=VALUE (repeatable), e.g. security settings.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub property: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionRead {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
    /// Reached `high` (the end when verify started).
    pub complete: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyResult {
    pub topic: String,
    /// Distinct ids in the acked file.
    pub acked: u64,
    /// Acked ids found in the topic.
    pub found: u64,
    pub missing: u64,
    /// Acked ids found more than once.
    pub duplicates: u64,
    /// Records read.
    pub scanned: u64,
    /// Records of the same run that were not in the acked file (sent but not seen acked).
    pub unacked_same_run: u64,
    pub partitions: Vec<PartitionRead>,
    /// Every partition was read to its end.
    pub complete: bool,
    /// Some partition starts after offset 0: missing ids may have been trimmed by retention.
    pub retention_trimmed: bool,
    /// Up to 20 missing ids.
    pub missing_sample: Vec<String>,
    /// Up to 20 duplicated ids.
    pub duplicate_sample: Vec<String>,
}

/// The id in a record value: everything before the first `.` padding byte (after the
/// opening quote of a value sent as a JSON string, `--format rest-v2-json`).
pub fn id_of(value: &[u8]) -> &[u8] {
    let value = value.strip_prefix(b"\"").unwrap_or(value);
    let end = value
        .iter()
        .position(|&b| b == b'.' || b == b'"')
        .unwrap_or(value.len());
    &value[..end]
}

fn run_prefix(id: &str) -> Option<&str> {
    id.rsplit_once('-').map(|(p, _)| p)
}

pub fn verify(a: &VerifyArgs) -> anyhow::Result<VerifyResult> {
    let text = std::fs::read_to_string(&a.acked_file)
        .with_context(|| format!("reading {}", a.acked_file.display()))?;
    let mut seen: HashMap<String, u32> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| (l.to_string(), 0))
        .collect();
    let runs: HashSet<String> = seen
        .keys()
        .filter_map(|k| run_prefix(k))
        .map(str::to_string)
        .collect();

    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &a.brokers)
        .set(
            "group.id",
            format!("bench-client-verify-{}", std::process::id()),
        )
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    for p in &a.property {
        let (k, v) = p
            .split_once('=')
            .with_context(|| format!("-X {p:?}: expected KEY=VALUE"))?;
        cc.set(k, v);
    }
    let consumer: BaseConsumer = cc.create().context("creating the Kafka consumer")?;
    let deadline = Instant::now() + a.timeout;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(100))
    };

    let md = consumer
        .fetch_metadata(Some(&a.topic), left())
        .context("fetching topic metadata")?;
    let Some(t) = md.topics().iter().find(|t| t.name() == a.topic) else {
        bail!("topic {} not in metadata", a.topic);
    };
    if let Some(e) = t.error() {
        bail!("topic {}: {e:?}", a.topic);
    }
    let mut parts = Vec::new();
    let mut tpl = TopicPartitionList::new();
    for p in t.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(&a.topic, p.id(), left())
            .with_context(|| format!("watermarks of partition {}", p.id()))?;
        parts.push(PartitionRead {
            partition: p.id(),
            low,
            high,
            complete: high <= low,
        });
        tpl.add_partition_offset(&a.topic, p.id(), Offset::Beginning)?;
    }
    parts.sort_by_key(|p| p.partition);
    consumer.assign(&tpl)?;

    let mut scanned = 0u64;
    let mut unacked_same_run = 0u64;
    while parts.iter().any(|p| !p.complete) && Instant::now() < deadline {
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        match m {
            Ok(m) => {
                scanned += 1;
                if let Some(v) = m.payload() {
                    let id = String::from_utf8_lossy(id_of(v));
                    match seen.get_mut(id.as_ref()) {
                        Some(n) => *n += 1,
                        None => {
                            if run_prefix(&id).is_some_and(|p| runs.contains(p)) {
                                unacked_same_run += 1;
                            }
                        }
                    }
                }
                if let Some(p) = parts.iter_mut().find(|p| p.partition == m.partition()) {
                    if m.offset() + 1 >= p.high {
                        p.complete = true;
                    }
                }
            }
            Err(e) => tracing::warn!("consume error: {e}"),
        }
    }

    let mut missing: Vec<&String> = seen
        .iter()
        .filter(|(_, &n)| n == 0)
        .map(|(k, _)| k)
        .collect();
    missing.sort();
    let mut dups: Vec<&String> = seen
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(k, _)| k)
        .collect();
    dups.sort();
    Ok(VerifyResult {
        topic: a.topic.clone(),
        acked: seen.len() as u64,
        found: seen.values().filter(|&&n| n > 0).count() as u64,
        missing: missing.len() as u64,
        duplicates: dups.len() as u64,
        scanned,
        unacked_same_run,
        complete: parts.iter().all(|p| p.complete),
        retention_trimmed: parts.iter().any(|p| p.low > 0),
        partitions: parts,
        missing_sample: missing.iter().take(20).map(|s| s.to_string()).collect(),
        duplicate_sample: dups.iter().take(20).map(|s| s.to_string()).collect(),
    })
}

/// Human summary of a verification.
pub fn verify_summary(r: &VerifyResult) -> String {
    let mut s = format!(
        "verify topic {}: {} acked ids, {} found, {} missing, {} duplicated; {} records read in {} partition(s){}\n",
        r.topic,
        r.acked,
        r.found,
        r.missing,
        r.duplicates,
        r.scanned,
        r.partitions.len(),
        if r.complete { "" } else { " (NOT read to the end: timeout)" }
    );
    if r.unacked_same_run > 0 {
        s += &format!(
            "{} records of the run were not seen acknowledged (in flight at the end, or failed after publishing)\n",
            r.unacked_same_run
        );
    }
    if r.missing > 0 {
        s += &format!(
            "missing (first {}): {}\n",
            r.missing_sample.len(),
            r.missing_sample.join(" ")
        );
        if r.retention_trimmed {
            s += "note: some partitions no longer start at offset 0; retention may have trimmed records\n";
        }
    }
    if r.duplicates > 0 {
        s += &format!(
            "duplicated (first {}): {}\n",
            r.duplicate_sample.len(),
            r.duplicate_sample.join(" ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_values() {
        assert_eq!(id_of(b"ab12-7...."), b"ab12-7");
        assert_eq!(id_of(b"ab12-7"), b"ab12-7");
        assert_eq!(id_of(b"\"ab12-7...\""), b"ab12-7");
        assert_eq!(id_of(b"\"ab12-7\""), b"ab12-7");
        assert_eq!(run_prefix("ab12-7"), Some("ab12"));
    }
}
