//! `bench-client`: glue over the library — parse arguments, run, write outputs.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use bench_client::engine::printer::summary;
use bench_client::engine::probes::manifest::Manifest;
use bench_client::engine::result;
use bench_client::experiments::chaos::Chaos;
use bench_client::experiments::compare::Compare;
use bench_client::experiments::shared::main as experiment;
use bench_client::experiments::soak::Soak;
use bench_client::experiments::stall_lab::StallLab;
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
    ///
    /// Example: `bench-client run http://127.0.0.1:8080/topics/bench -c 64 -d 10s`.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(Box<RunArgs>),
    /// Check that every id a run saw acknowledged with ack=kafka is in the topic.
    #[command(after_help = VERIFY_EXIT_CODES)]
    Verify(VerifyArgs),
    /// Soak gateways at a fraction of their maximum with connection churn; report RSS, fds,
    /// throughput, errors and stalls over time.
    #[command(after_help = SOAK_EXIT_CODES)]
    Soak(Box<bench_client::experiments::soak::SoakArgs>),
    /// Load at ack=kafka through broker outage, RTT and produce errors; verify nothing
    /// acknowledged was lost.
    #[command(after_help = CHAOS_EXIT_CODES)]
    Chaos(Box<bench_client::experiments::chaos::ChaosArgs>),
    /// Run every gateway through the scenario matrix; write summary.json, report.md, charts.
    #[command(after_help = COMPARE_EXIT_CODES)]
    Compare(Box<bench_client::experiments::compare::CompareArgs>),
    /// Reproduce each plausible cause of the tokio-uring accept stall on every gateway,
    /// classify it, and show the default configuration surviving the same load.
    #[command(after_help = STALL_LAB_EXIT_CODES)]
    StallLab(Box<bench_client::experiments::stall_lab::StallLabArgs>),
    /// Re-render report.md and the charts of DIR from its summary.json (or stall-lab.md from
    /// stall-lab.json).
    #[command(after_help = PLAIN_EXIT_CODES)]
    Report {
        /// A directory written by `compare`, or a run result file (`run --json`, `merge --json`).
        dir: std::path::PathBuf,
    },
    /// Merge the result files of the shards of one run (`run --start-at T --shard I/N`).
    #[command(after_help = PLAIN_EXIT_CODES)]
    Merge(bench_client::engine::analysis::merge::MergeArgs),
    /// Print the gateway variant table (gateways.tsv) for scripts: one line per variant,
    /// `name<TAB>binary<TAB>arguments<TAB>runtime`, no header.
    #[command(after_help = PLAIN_EXIT_CODES)]
    Variants,
}

/// The exit-status line every subcommand shares: any error that stops it (`bench-client:
/// ...` on stderr, from `main`) is 2. A macro because `concat!` needs literals.
macro_rules! exit_2 {
    () => {
        "  2    bad arguments, or an error stopped it (printed as `bench-client: ...` on stderr)\n"
    };
}

/// The experiments do not catch signals: the shell reports the signal's death.
macro_rules! exit_killed {
    () => {
        "  130  killed by SIGINT (143: SIGTERM), as the shell reports it: no summary; what the\n       output directory already holds stays\n"
    };
}

const RUN_EXIT_CODES: &str = concat!(
    "Exit status:\n",
    "  0    the run went as asked\n",
    "  1    no request succeeded in the measured phase (e.g. nothing listens at the URL)\n",
    exit_2!(),
    "  3    a stall was detected and --fail-on-stall was given\n",
    "  4    errors exceeded --max-error-rate\n",
    "  130  interrupted by SIGINT/SIGTERM (143 for SIGTERM) with none of the above; the summary\n",
    "       and every requested file are still written, the JSON marked \"interrupted\": true.\n",
    "       A second signal exits at once (status 130).\n",
    "The first matching line, in this order (1, 4, 3, 130), decides; an interrupt during the\n",
    "warmup (nothing measured) is 130/143."
);

const VERIFY_EXIT_CODES: &str = concat!(
    "Exit status:\n",
    "  0    every acknowledged id is in the topic\n",
    "  1    some acknowledged ids are missing (counted in the summary)\n",
    exit_2!(),
);

const SOAK_EXIT_CODES: &str = concat!(
    "Exit status:\n",
    "  0    PASS: every gateway soaked without a failure\n",
    "  1    FAIL: a gateway stalled, grew past --fail-on-growth(-pct), lost acknowledged\n",
    "       records, died, did not exit cleanly on SIGTERM, or could not be soaked\n",
    exit_2!(),
    exit_killed!(),
);

const CHAOS_EXIT_CODES: &str = concat!(
    "Exit status:\n",
    "  0    PASS: nothing acknowledged was lost on any gateway\n",
    "  1    FAIL: acknowledged records missing, partitions unreadable to their end, nothing\n",
    "       acknowledged, a fault command failed, a gateway did not exit cleanly on SIGTERM,\n",
    "       or a gateway could not be run\n",
    exit_2!(),
    exit_killed!(),
);

const COMPARE_EXIT_CODES: &str = concat!(
    "Exit status:\n",
    "  0    every run of the matrix finished (or --dry-run)\n",
    "  1    some runs failed (each recorded with its error in summary.json and the report)\n",
    exit_2!(),
    exit_killed!(),
);

const STALL_LAB_EXIT_CODES: &str = concat!(
    "Exit status:\n",
    "  0    done; with --check: every reproduction showed its cause and no default run\n",
    "       stalled\n",
    "  1    --check was given and an expectation was not met\n",
    exit_2!(),
    exit_killed!(),
);

/// `report`, `merge`, `variants`: they succeed or fail.
const PLAIN_EXIT_CODES: &str = concat!("Exit status:\n", "  0    done\n", exit_2!());

/// SIGINT/SIGTERM: the first sets the returned flag (the run stops and writes what it
/// measured), a second exits at once.
fn stop_on_signals() -> anyhow::Result<(Arc<AtomicBool>, Arc<AtomicUsize>)> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    for sig in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(sig, 130, stop.clone())?;
        signal_hook::flag::register(sig, stop.clone())?;
        signal_hook::flag::register_usize(sig, which.clone(), sig as usize)?;
    }
    Ok((stop, which))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // As the gateways (common::telemetry): a failed log write must cost the line, not
        // the thread (tracing-subscriber's own report of it panics on a closed stderr).
        .log_internal_errors(false)
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
            let (stop, signal) = stop_on_signals()?;
            let mut r = bench_client::run_blocking_until(cfg, Some(stop))?;
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
                print!("{}", summary(&r));
            }
            let sig = signal.load(Ordering::Relaxed) as i32;
            Ok(ExitCode::from(run_exit_code(&r, &a, sig)))
        }
        Cmd::Compare(a) => Ok(ExitCode::from(experiment::<Compare>(&a)?)),
        Cmd::Report { dir } => {
            if dir.is_file() {
                let r = result::read_json(&dir)?;
                let shards = bench_client::engine::analysis::merge::shards_summary(&r);
                print!("{}{shards}", summary(&r));
            } else if dir.join("stall-lab.json").exists() {
                bench_client::experiments::stall_lab::rerender(&dir)?;
                eprintln!("wrote {}", dir.join("stall-lab.md").display());
            } else {
                bench_client::experiments::compare::report_dir(&dir)?;
                eprintln!("wrote {}", dir.join("report.md").display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::StallLab(a) => Ok(ExitCode::from(experiment::<StallLab>(&a)?)),
        Cmd::Soak(a) => Ok(ExitCode::from(experiment::<Soak>(&a)?)),
        Cmd::Chaos(a) => Ok(ExitCode::from(experiment::<Chaos>(&a)?)),
        Cmd::Variants => {
            print!("{}", bench_client::lab::gateway::variants_tsv());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Merge(a) => {
            bench_client::engine::analysis::merge::cli_main(&a)?;
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

/// The exit status of `run` (see [`RUN_EXIT_CODES`]); `signal` is the one that stopped
/// it, 0 if none.
fn run_exit_code(r: &bench_client::RunResult, a: &RunArgs, signal: i32) -> u8 {
    let t = &r.totals;
    let outcomes = t.ok + t.backpressure + t.errors;
    let error_rate = if outcomes == 0 {
        0.0
    } else {
        t.errors as f64 / outcomes as f64
    };
    let interrupted = 128 + signal.clamp(0, 127) as u8;
    if r.interrupted && r.measured_s == 0.0 {
        if !a.quiet {
            eprintln!("bench-client: interrupted during warmup: nothing was measured");
        }
        interrupted
    } else if t.ok == 0 {
        if !a.quiet {
            eprintln!("bench-client: no request succeeded");
        }
        1
    } else if a.max_error_rate.is_some_and(|m| error_rate > m) {
        if !a.quiet {
            eprintln!(
                "bench-client: error rate {error_rate:.4} is above --max-error-rate {}",
                a.max_error_rate.unwrap_or_default()
            );
        }
        4
    } else if a.fail_on_stall && !r.stalls.is_empty() {
        3
    } else if r.interrupted {
        interrupted
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every subcommand documents its exit statuses, with the shared line for 2.
    #[test]
    fn every_subcommand_documents_its_exit_status() {
        for sc in Cli::command().get_subcommands_mut() {
            let name = sc.get_name().to_string();
            let help = sc.render_long_help().to_string();
            assert!(
                help.contains("Exit status:\n") && help.contains(exit_2!().trim_end()),
                "{name} --help lacks the exit statuses:\n{help}"
            );
        }
    }

    /// A short flag means one option everywhere: `-c` is --connections on every subcommand
    /// that has either, and so on.
    #[test]
    fn short_flags_mean_the_same_everywhere() {
        const SHORTS: [(char, &str); 8] = [
            ('c', "connections"),
            ('d', "duration"),
            ('t', "client-threads"),
            ('R', "rate"),
            ('n', "requests"),
            ('H', "header"),
            ('k', "key"),
            ('q', "quiet"),
        ];
        let mut seen = Vec::new();
        for sc in Cli::command().get_subcommands() {
            for a in sc.get_arguments() {
                for (short, long) in SHORTS {
                    let has_short = a.get_short() == Some(short);
                    let has_long = a.get_long() == Some(long);
                    assert_eq!(
                        has_short,
                        has_long,
                        "{}: -{short} and --{long} must go together (got -{:?} --{:?})",
                        sc.get_name(),
                        a.get_short(),
                        a.get_long()
                    );
                    if has_short {
                        seen.push(format!("{} -{short}", sc.get_name()));
                    }
                }
            }
        }
        // The experiments took run's letters where they take run's options.
        for want in [
            "run -c",
            "run -d",
            "run -t",
            "run -R",
            "run -n",
            "run -H",
            "run -k",
            "run -q",
            "soak -c",
            "soak -d",
            "soak -t",
            "soak -R",
            "soak -q",
            "chaos -c",
            "chaos -d",
            "chaos -t",
            "chaos -R",
            "chaos -q",
            "compare -d",
            "compare -t",
            "stall-lab -d",
            "stall-lab -t",
        ] {
            assert!(seen.iter().any(|s| s == want), "{want} missing: {seen:?}");
        }
    }
}
