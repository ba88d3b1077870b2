//! The end of a lab command: the verdict, the files written, and the lines on stdout
//! (`soak`, `chaos`).
//!
//! Depends on nothing else in the crate.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// `PASS`, or `FAIL: ` and the failures.
pub fn verdict(failures: &[String]) -> String {
    if failures.is_empty() {
        "PASS".to_string()
    } else {
        format!("FAIL: {}", failures.join("; "))
    }
}

/// Writes each `(name, text)` into `dir` (created if missing); the paths written.
pub fn write_files(dir: &Path, files: &[(&str, String)]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("writing {}", p.display()))?;
        out.push(p);
    }
    Ok(out)
}

/// The end of a `soak` / `chaos` command on stdout: a line per gateway, one per gateway
/// that did not run (`GW: <not_run>: ERROR`), the verdict and the files; the exit code
/// (0 when `passed`).
pub fn print_outcome(
    what: &str,
    lines: impl IntoIterator<Item = String>,
    not_run_label: &str,
    not_run: &[(String, String)],
    passed: bool,
    files: &[PathBuf],
) -> u8 {
    for l in lines {
        println!("{l}");
    }
    for (gw, e) in not_run {
        println!("{gw}: {not_run_label}: {e}");
    }
    println!(
        "{what} {}: wrote {}",
        if passed { "PASS" } else { "FAIL" },
        files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    u8::from(!passed)
}
