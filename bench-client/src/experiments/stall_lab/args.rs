//! `stall-lab`'s arguments: [`StallLabArgs`], the shared flags plus the causes, repeats,
//! run length, pinning and `--check`.

use std::time::Duration;

use super::cause::Cause;
use crate::experiments::shared::ExperimentArgs;

#[derive(clap::Args, Debug, Clone)]
pub struct StallLabArgs {
    #[command(flatten)]
    pub shared: ExperimentArgs,
    /// Causes to reproduce (the `uring-*` causes run against gateway-uring only).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "time-wait,emfile,blocking,backlog,uring-cancel-accept,uring-tiny-ring,uring-sq-full"
    )]
    pub causes: Vec<Cause>,
    /// Runs of each cause x gateway x configuration.
    #[arg(long, alias = "runs", default_value_t = 3)]
    pub repeats: usize,
    /// Length of each run's measured phase.
    #[arg(short = 'd', long, default_value = "4s", value_parser = crate::engine::config::parse_duration)]
    pub duration: Duration,
    /// CPU pinning: `auto` (on 2 cores: gateway on CPU 1, client and kafka-mock on CPU 0),
    /// `none`, or explicit `GATEWAY/CLIENT` CPU lists such as `1/0`.
    #[arg(long, default_value = "auto")]
    pub pin: String,
    /// Exit non-zero unless every reproduction showed what its cause expects (a stall of
    /// the expected class, or for a cause the runtime absorbs no stall with the mechanism
    /// exercised) and every default run had no stall.
    #[arg(long)]
    pub check: bool,
}
