//! The lab bench every multi-process command (`compare`, `soak`, `chaos`, `stall-lab`)
//! runs on: the gateway variants ([`GatewayKind`], `--gateway` lists), the workspace
//! binaries found next to `bench-client`, `kafka-mock` and the gateways started as child
//! processes on port 0 (optionally pinned with `taskset`), waited for (`listening on`, then
//! `/readyz` 200), probed over plain HTTP (`/metrics`), driven through kafka-mock's
//! fault-injection stdin and stopped with SIGTERM; plus what /proc says about a process
//! (RSS, fds, threads, CPU time), sampled once a period by [`Sampler`], and the dated
//! output directories.
//!
//! Files: [`process`] (child processes and their logs), [`gateway`] (gateway and
//! kafka-mock lifecycle), [`pinning`] (CPUs), [`probe`] (HTTP probes), [`tls_probe`] (their TLS client), [`procfs`]
//! (/proc sampling), [`clock`] (dates and output directories). Entry points:
//! [`Gateway::start`], [`KafkaMock::start`], [`Sampler::start`]; the items are re-exported
//! here, so callers write `lab::Gateway`.
//!
//! Everything here is blocking std code (threads, `std::net`), so it can run beside the
//! load generator's tokio runtime without sharing it. Linux only (/proc). The lab depends
//! at most on the engine, never on an experiment or on the reporting.

pub mod clock;
pub mod gateway;
pub mod pinning;
pub mod probe;
pub mod process;
pub mod procfs;
pub mod tls_probe;

pub use clock::{default_out_dir, now_unix, now_unix_ms, utc_date, utc_date_time};
pub use gateway::{
    default_bin_dir, each_gateway, final_metrics, locate, ExitInfo, Gateway, GatewayKind,
    GatewaySet, GatewaySpec, KafkaMock,
};
pub use pinning::{cpu_list, parse_cpu_list, pin_self, Pinning};
pub use probe::{http_get, http_get_over, parse_metrics, prime, prime_over, read_http_status};
pub use process::{command_line, strip_ansi, version_text, Proc};
pub use procfs::{proc_cpu_s, proc_fds, proc_status_kib, read_proc, ProcSample, Sampler};
pub use tls_probe::ProbeTls;
