//! Writing the Prometheus text exposition format: a family's HELP and TYPE lines, one
//! sample, label escaping. Shared by every renderer of `/metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The `# HELP` and `# TYPE` lines of one family.
pub fn header(s: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample line; `labels` is empty or `k="v",...` (already escaped).
pub fn sample(s: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(s, "{name} {value}");
    } else {
        let _ = writeln!(s, "{name}{{{labels}}} {value}");
    }
}

/// A counter family of one unlabelled series.
pub fn counter(s: &mut String, name: &str, help: &str, v: &AtomicU64) {
    header(s, name, "counter", help);
    sample(s, name, "", v.load(Relaxed));
}

/// A gauge family of one unlabelled series.
pub fn gauge(s: &mut String, name: &str, help: &str, v: impl std::fmt::Display) {
    header(s, name, "gauge", help);
    sample(s, name, "", v);
}

/// A label value escaped for the exposition format (`\`, `"` and newlines).
pub fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
