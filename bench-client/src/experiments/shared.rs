//! The shape every experiment shares: [`ExperimentArgs`], the flags with one name and one
//! meaning in `compare`, `soak`, `chaos` and `stall-lab` (flattened into each one's own
//! arguments), and the [`Experiment`] trait, run → summary → render, that [`main`] drives.
//!
//! Depends on the lab (gateway sets, binary and output directories) only.

use std::path::{Path, PathBuf};

use crate::lab::GatewaySet;

/// Flags every experiment takes, with the same name and meaning everywhere.
#[derive(Debug, Clone, clap::Args)]
pub struct ExperimentArgs {
    /// Gateways: `all`, or a comma-separated list of tokio-multi, tokio-per-core, uring,
    /// compio.
    #[arg(long, alias = "gateway", default_value = "all")]
    pub gateways: GatewaySet,
    /// Gateway I/O threads (the gateways' `--threads`; default: per experiment).
    #[arg(long, value_name = "N")]
    pub gateway_threads: Option<usize>,
    /// Client worker threads (default: per experiment); `-t` as in `run`.
    #[arg(short = 't', long, value_name = "N")]
    pub client_threads: Option<usize>,
    /// librdkafka producer property for every gateway, repeatable (`-X linger.ms=5`); the
    /// gateways' own `-X`.
    #[arg(short = 'X', value_name = "KEY=VALUE", value_parser = producer_property)]
    pub producer: Vec<String>,
    /// Directory of the gateway and kafka-mock binaries (default: next to bench-client).
    #[arg(long, value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,
    /// Output directory (default: results/<date>-<experiment>; compare:
    /// results/<date>-<cpus>c-<host>).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// No progress output.
    #[arg(long, short)]
    pub quiet: bool,
}

impl ExperimentArgs {
    /// `--bin-dir`, or the directory of this executable.
    pub fn bin_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.bin_dir {
            Some(d) => Ok(d.clone()),
            None => crate::lab::default_bin_dir(),
        }
    }

    /// `-X` as gateway arguments: `-X k=v` for each.
    pub fn producer_args(&self) -> Vec<String> {
        self.producer
            .iter()
            .flat_map(|x| ["-X".to_string(), x.clone()])
            .collect()
    }
}

/// `KEY=VALUE` with a non-empty key.
fn producer_property(s: &str) -> Result<String, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.trim().is_empty() => Ok(s.to_string()),
        _ => Err(format!("expected KEY=VALUE (e.g. linger.ms=5), got {s:?}")),
    }
}

/// One experiment: arguments (flattening [`ExperimentArgs`]) → [`Experiment::run`] → a
/// serializable summary → [`Experiment::render`] into the output directory → an exit
/// status. `bench-client report DIR` re-renders from the summary alone.
pub trait Experiment {
    /// The subcommand's arguments.
    type Args;
    /// What a run measured, serializable (the JSON in the output directory).
    type Summary;

    /// The shared flags inside `args`.
    fn shared(args: &Self::Args) -> &ExperimentArgs;
    /// The output directory when `--out` is not given.
    fn default_out(args: &Self::Args) -> PathBuf;
    /// Run it: start and stop the processes, measure. May write partial results into
    /// `dir` as it goes, so that an interrupted run leaves something behind.
    fn run(args: &Self::Args, dir: &Path) -> anyhow::Result<Self::Summary>;
    /// Write the summary and what is rendered from it (markdown, charts) into `dir`; the
    /// files written.
    fn render(summary: &Self::Summary, dir: &Path) -> anyhow::Result<Vec<PathBuf>>;
    /// The exit status (0: the experiment met its expectations); prints the outcome.
    fn finish(args: &Self::Args, summary: &Self::Summary, files: &[PathBuf]) -> u8;
}

/// The whole life of an experiment subcommand: run → summary → render → exit status.
pub fn main<E: Experiment>(args: &E::Args) -> anyhow::Result<u8> {
    let dir = E::shared(args)
        .out
        .clone()
        .unwrap_or_else(|| E::default_out(args));
    let summary = E::run(args, &dir)?;
    let files = E::render(&summary, &dir)?;
    Ok(E::finish(args, &summary, &files))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct P {
        #[command(flatten)]
        a: ExperimentArgs,
    }

    #[test]
    fn shared_flags_parse() {
        let p = P::try_parse_from(["x"]).unwrap().a;
        assert_eq!(p.gateways.0.len(), 4);
        assert!(p.producer.is_empty() && !p.quiet);
        let p = P::try_parse_from([
            "x",
            "--gateway",
            "uring,compio",
            "-X",
            "linger.ms=5",
            "-X",
            "acks=all",
            "--gateway-threads",
            "2",
            "-t",
            "1",
            "-q",
        ])
        .unwrap()
        .a;
        assert_eq!(p.gateways.0.len(), 2);
        assert_eq!(
            p.producer_args(),
            ["-X", "linger.ms=5", "-X", "acks=all"].map(String::from)
        );
        assert_eq!((p.gateway_threads, p.client_threads), (Some(2), Some(1)));
        assert!(p.quiet);
        assert!(P::try_parse_from(["x", "-X", "novalue"]).is_err());
        assert!(P::try_parse_from(["x", "--gateways", "nope"]).is_err());
    }
}
