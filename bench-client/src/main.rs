//! `bench-client`: glue over the library — parse arguments, run, write outputs.

use std::process::ExitCode;

use anyhow::Context as _;
use bench_client::engine::manifest::Manifest;
use bench_client::engine::result;
use bench_client::experiments::verify;
use bench_client::{RunArgs, RunConfig, VerifyArgs};
use clap::{Parser, Subcommand};

/// Load generator, stall detector and Kafka verifier for the ingest gateways.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Drive one gateway with one scenario and report latency, errors and stalls.
    Run(Box<RunArgs>),
    /// Check that every id a run saw acknowledged with ack=kafka is in the topic.
    Verify(VerifyArgs),
    /// Soak gateways at a fraction of their maximum with connection churn; report RSS, fds,
    /// throughput, errors and stalls over time.
    Soak(Box<bench_client::experiments::soak::SoakArgs>),
    /// Load at ack=kafka through broker outage, RTT and produce errors; verify nothing
    /// acknowledged was lost.
    Chaos(Box<bench_client::experiments::chaos::ChaosArgs>),
    /// Run every gateway through the scenario matrix; write summary.json, report.md, charts.
    Compare(Box<bench_client::experiments::compare::CompareArgs>),
    /// Reproduce each plausible cause of the tokio-uring accept stall on every gateway,
    /// classify it, and show the default configuration surviving the same load.
    StallLab(Box<bench_client::experiments::stall_lab::StallLabArgs>),
    /// Re-render report.md and the charts of DIR from its summary.json (or stall-lab.md from
    /// stall-lab.json).
    Report {
        /// A directory written by `compare`, or a run result file (`run --json`, `merge --json`).
        dir: std::path::PathBuf,
    },
    /// Merge the result files of the shards of one run (`run --start-at T --shard I/N`).
    Merge(bench_client::engine::merge::MergeArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench-client: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn real_main() -> anyhow::Result<ExitCode> {
    match Cli::parse().cmd {
        Cmd::Run(a) => {
            let cfg = RunConfig::from_args(&a)?;
            let mut r = bench_client::run_blocking(cfg)?;
            if let Some(bin) = &a.target_bin {
                r.manifest.target_version = Manifest::target_version_of(bin);
            }
            if let Some(p) = &a.json {
                result::write_json(&r, p)?;
            }
            if let Some(p) = &a.hdr_log {
                result::write_hdr_log(&r, p)?;
            }
            if let Some(p) = &a.acked_file {
                result::write_acked(&r, p)?;
            }
            if !a.quiet {
                print!("{}", result::summary(&r));
            }
            Ok(if a.fail_on_stall && !r.stalls.is_empty() {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Compare(a) => {
            // The report is written either way; a failed run makes the exit status 1.
            let failed = bench_client::experiments::compare::compare(&a)?.failed_runs;
            Ok(if failed > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Report { dir } => {
            if dir.is_file() {
                let r = result::read_json(&dir)?;
                let shards = bench_client::engine::merge::shards_summary(&r);
                print!("{}{shards}", result::summary(&r));
            } else if dir.join("stall-lab.json").exists() {
                bench_client::experiments::stall_lab::rerender(&dir)?;
                eprintln!("wrote {}", dir.join("stall-lab.md").display());
            } else {
                bench_client::experiments::compare::report_dir(&dir)?;
                eprintln!("wrote {}", dir.join("report.md").display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::StallLab(a) => {
            let r = bench_client::experiments::stall_lab::stall_lab(&a)?;
            let met = bench_client::experiments::stall_lab::expectations_met(&r);
            Ok(if a.check && !met {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Soak(a) => Ok(ExitCode::from(bench_client::experiments::soak::cli_main(
            &a,
        )?)),
        Cmd::Chaos(a) => Ok(ExitCode::from(bench_client::experiments::chaos::cli_main(
            &a,
        )?)),
        Cmd::Merge(a) => {
            bench_client::engine::merge::cli_main(&a)?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Verify(a) => {
            let r = verify::verify(&a)?;
            if let Some(p) = &a.json {
                std::fs::write(p, serde_json::to_string_pretty(&r)?)
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            print!("{}", verify::verify_summary(&r));
            Ok(if r.missing > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
