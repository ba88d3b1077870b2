//! A gateway process's life, identical on every runtime: start (logging, fd limit, Kafka or
//! the embedded mock cluster, producer, signal handling), bind the listeners, run one I/O
//! thread per listener, and on SIGTERM/SIGINT drain connections, flush the producer and
//! report.
//!
//! The runtime adapters supply only what runs on an I/O thread.

use std::io::Write as _;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::args::{check_faults, redact, GatewayArgs};
use super::embedded::EmbeddedKafka;
use super::sys::{bind_listeners, raise_fd_limit};
use crate::conn::Shared;
use crate::driver::{ConnCtx, Drain, Shutdown};
use crate::observe::metrics::Metrics;
use crate::policy::config::{Config, SinkKind};
use crate::publish::{producer_config, KafkaSink, NullSink, Sink};

/// What the adapter tells the core about itself; becomes `gateway_info` labels in /metrics
/// and the start-up log, so results can carry it in their manifest.
pub struct RuntimeInfo {
    /// `tokio`, `tokio-uring` or `compio`.
    pub runtime: &'static str,
    /// Further labels: flavour, ring entries, driver, flags, asymmetries.
    pub labels: Vec<(String, String)>,
}

pub struct Gateway {
    pub config: Config,
    pub ctx: ConnCtx,
    sink: Arc<dyn Sink>,
    signals: signal_hook::iterator::Handle,
    _embedded: Option<EmbeddedKafka>,
}

/// Extra time allowed for the final producer flush beyond the shutdown timeout's rest.
const MIN_FLUSH: Duration = Duration::from_secs(5);

impl Gateway {
    /// Everything before binding: logging, limits, Kafka, producer, signals.
    pub fn start(args: &GatewayArgs, info: RuntimeInfo) -> anyhow::Result<Gateway> {
        crate::observe::telemetry::init_with(args.log_format);
        let config = Config::from_args(args)?;
        check_faults(&config.faults, info.runtime)?;
        let tls = args.tls_setup()?.map(Arc::new);
        if let Err(e) = raise_fd_limit(args.fd_limit) {
            tracing::warn!(error = %e, "could not change RLIMIT_NOFILE");
        }
        let metrics = Arc::new(Metrics::default());
        let mut embedded = None;
        let mut labels = vec![
            ("runtime".to_string(), info.runtime.to_string()),
            ("version".to_string(), env!("CARGO_PKG_VERSION").to_string()),
            ("threads".to_string(), config.threads.to_string()),
            ("backlog".to_string(), config.backlog.to_string()),
            (
                "sink".to_string(),
                match config.sink {
                    SinkKind::Kafka => "kafka",
                    SinkKind::Null => "null",
                }
                .to_string(),
            ),
        ];
        labels.extend(info.labels);
        if tls.is_some() {
            labels.push(("tls".to_string(), "on".to_string()));
            metrics.tls.enabled.store(true, Ordering::Relaxed);
        }
        if !config.faults.is_empty() {
            let faults: Vec<String> = config.faults.iter().map(|f| format!("{f:?}")).collect();
            tracing::warn!(
                ?faults,
                "fault reproductions enabled: this gateway misbehaves on purpose"
            );
            labels.push(("faults".to_string(), faults.join(",")));
        }
        let sink: Arc<dyn Sink> = match config.sink {
            SinkKind::Null => Arc::new(NullSink::new(metrics.clone())),
            SinkKind::Kafka => {
                let (brokers, props) = args.producer_settings()?;
                let brokers = match brokers {
                    Some(b) => b,
                    None => {
                        let k = EmbeddedKafka::start(3, 4, &[])?;
                        let b = k.bootstrap_servers();
                        tracing::info!("embedded kafka bootstrap={b}");
                        embedded = Some(k);
                        b
                    }
                };
                let conf = producer_config(&brokers, &props);
                // Secrets (sasl.password, ...) never reach the log or a result manifest.
                let shown = redact(&conf);
                tracing::info!(conf = ?shown, "producer configuration");
                KafkaSink::start(&conf, metrics.clone())?
            }
        };
        let shared = Arc::new(Shared {
            config: config.clone(),
            sink: sink.clone(),
            metrics,
            info: labels.clone(),
        });
        let ctx = ConnCtx {
            shared,
            shutdown: Shutdown::default(),
            drain: Arc::new(Drain::default()),
            mailbox: None,
            tls,
        };
        let signals = spawn_signal_thread(ctx.shutdown.clone())?;
        tracing::info!(?labels, "gateway starting");
        Ok(Gateway {
            config,
            ctx,
            sink,
            signals,
            _embedded: embedded,
        })
    }

    /// Binds `count` SO_REUSEPORT listeners (same port, same backlog) and logs
    /// `listening on ADDR`, followed by ` (tls)` when TLS is on.
    pub fn bind(&self, count: usize) -> anyhow::Result<Vec<TcpListener>> {
        let listeners = bind_listeners(self.config.listen, count, self.config.backlog)
            .map_err(|e| anyhow::anyhow!("binding {}: {e}", self.config.listen))?;
        let addr = listeners[0].local_addr()?;
        // Tests and scripts find the port after `listening on `: keep that prefix.
        let tls = if self.ctx.tls.is_some() { " (tls)" } else { "" };
        tracing::info!(
            backlog = self.config.backlog,
            listeners = listeners.len(),
            "listening on {addr}{tls}"
        );
        Ok(listeners)
    }

    /// Runs one named I/O thread per listener: each builds its runtime with `build`, then
    /// runs `serve` on it (the accept loop until shutdown, then `ctx.released()`).
    ///
    /// No thread accepts before every thread has built its runtime: a runtime needs file
    /// descriptors of its own (an io_uring ring, an epoll instance), and with a low
    /// `--fd-limit` connections accepted by a thread that started first could leave none
    /// for the next one's ring. A thread whose runtime cannot be built logs why and shuts
    /// the gateway down (the others then drain as on a signal).
    pub fn spawn_io_threads<RT, B, S>(
        &self,
        listeners: Vec<TcpListener>,
        build: B,
        serve: S,
    ) -> anyhow::Result<Vec<JoinHandle<()>>>
    where
        B: Fn(usize) -> anyhow::Result<RT> + Send + Clone + 'static,
        S: Fn(RT, TcpListener, ConnCtx) + Send + Clone + 'static,
    {
        let built = Arc::new(std::sync::Barrier::new(listeners.len()));
        let mut handles = Vec::new();
        for (i, l) in listeners.into_iter().enumerate() {
            let (build, serve, built) = (build.clone(), serve.clone(), built.clone());
            let ctx = self.ctx.clone();
            handles.push(
                std::thread::Builder::new()
                    .name(format!("io-{i}"))
                    .spawn(move || {
                        let rt = build(i);
                        built.wait();
                        match rt {
                            Ok(rt) => serve(rt, l, ctx),
                            Err(e) => {
                                tracing::error!(
                                    thread = i,
                                    error = format!("{e:#}"),
                                    "cannot build the I/O thread's runtime"
                                );
                                ctx.shutdown.trigger();
                            }
                        }
                    })?,
            );
        }
        Ok(handles)
    }

    /// Blocks until SIGTERM/SIGINT (or `ctx.shutdown.trigger()`), then drains: waits for open
    /// connections up to `--shutdown-timeout`, releases the I/O threads, flushes the producer.
    /// An error means records that were accepted may not have reached Kafka.
    pub fn wait(self, threads: Vec<JoinHandle<()>>) -> anyhow::Result<()> {
        while !self.ctx.shutdown.is_triggered() {
            if threads.iter().all(|t| t.is_finished()) {
                tracing::error!("every I/O thread has exited");
                self.ctx.shutdown.trigger();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let start = Instant::now();
        let timeout = self.config.shutdown_timeout;
        tracing::info!(
            open = self.ctx.drain.open(),
            "shutting down: draining connections"
        );
        let left = self.ctx.drain.wait_idle(timeout);
        if left > 0 {
            tracing::warn!(
                open = left,
                "shutdown timeout: closing remaining connections"
            );
        }
        self.ctx.drain.release();
        let join_deadline = Instant::now() + Duration::from_secs(2);
        for t in threads {
            while !t.is_finished() && Instant::now() < join_deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if t.is_finished() {
                let _ = t.join();
            }
        }
        let flush_for = timeout.saturating_sub(start.elapsed()).max(MIN_FLUSH);
        let flushed = self.sink.flush(flush_for);
        self.sink.close();
        self.signals.close();
        match flushed {
            Ok(()) => {
                tracing::info!(elapsed = ?start.elapsed(), "shutdown complete: producer flushed");
                Ok(())
            }
            Err(e) => Err(anyhow::anyhow!("producer flush incomplete: {e}")),
        }
    }
}

fn spawn_signal_thread(shutdown: Shutdown) -> anyhow::Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let handle = signals.handle();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if shutdown.is_triggered() {
                    tracing::warn!(signal = sig, "second signal: exiting at once");
                    std::process::exit(130);
                }
                tracing::info!(
                    signal = sig,
                    "signal received: graceful shutdown (a second SIGTERM/SIGINT exits at once)"
                );
                shutdown.trigger();
            }
        })?;
    Ok(handle)
}

/// A gateway binary's exit: success, or the error logged and printed once, exit code 1.
pub fn exit_code(binary: &str, result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            // Not `eprintln!`: it panics when stderr is closed.
            let _ = writeln!(std::io::stderr(), "{binary}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
