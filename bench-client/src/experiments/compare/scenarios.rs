//! The scenario matrix of `compare`: the gateway variants (runtime × sink; the runtimes
//! are [`GatewayKind`], shared with the other lab commands), the offered load of each
//! scenario ([`Offer`], [`Shape`]), every known scenario ([`all_scenarios`]) and the
//! default and quick sets.
//!
//! Depends on the engine's configuration and the lab's [`GatewayKind`] only.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::engine::config::Mode;
use crate::lab::GatewayKind;

/// Where the gateway sends records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sink {
    Kafka,
    Null,
}

impl Sink {
    pub fn name(self) -> &'static str {
        match self {
            Sink::Kafka => "kafka",
            Sink::Null => "null",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim() {
            "kafka" => Ok(Sink::Kafka),
            "null" => Ok(Sink::Null),
            _ => Err(format!("unknown sink {s:?} (known: kafka, null)")),
        }
    }
}

/// A gateway with a sink: one column of the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Variant {
    pub gateway: GatewayKind,
    pub sink: Sink,
}

impl Variant {
    /// `tokio-multi` (Kafka) or `tokio-multi/null`.
    pub fn name(&self) -> String {
        match self.sink {
            Sink::Kafka => self.gateway.name().to_string(),
            Sink::Null => format!("{}/null", self.gateway.name()),
        }
    }

    /// The variant ratios are taken against: tokio-multi with the same sink.
    pub fn baseline(&self) -> Variant {
        Variant {
            gateway: GatewayKind::TokioMulti,
            sink: self.sink,
        }
    }

    /// The same gateway with the other sink.
    pub fn with_sink(&self, sink: Sink) -> Variant {
        Variant {
            gateway: self.gateway,
            sink,
        }
    }
}

impl fmt::Display for Variant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// A point of offered concurrency: connections × depth (pipeline or window).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Step {
    pub connections: usize,
    pub depth: usize,
}

impl Step {
    pub fn in_flight(&self) -> usize {
        self.connections * self.depth
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.connections, self.depth)
    }
}

/// How a load scenario offers its load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "offer", rename_all = "kebab-case")]
pub enum Offer {
    /// Closed loop; the maximum comes from a saturation search over `connections` (at
    /// `depth`), then `depths` at the best connection count.
    Search {
        connections: Vec<usize>,
        depth: usize,
        depths: Vec<usize>,
    },
    /// Open loop at `pct`% of the variant's own measured maximum of [`MAX_SCENARIO`] without
    /// pipelining (an open loop sends one request per free connection)
    /// (same gateway, Kafka sink), over as many connections as that maximum had in flight
    /// (at least 256).
    OwnMax { pct: u32 },
    /// Open loop at `pct`% of the smallest Kafka-sink maximum of [`MAX_SCENARIO`] over all
    /// gateways: the same rate for every variant, below every gateway's maximum, over
    /// `connections`. This is where cost per request is compared.
    Common { pct: u32, connections: usize },
    /// Scale: open loop at `pct`% of the smallest Kafka-sink unpipelined maximum of
    /// [`MAX_SCENARIO`] (as [`Offer::Common`]: the same rate for every variant), over
    /// `connections` keep-alive connections opened at [`SCALE_CONNECT_RATE`] during the
    /// warmup, from [`SCALE_SOURCE_IPS`].
    ManyCommon { pct: u32, connections: usize },
    /// Scale: open loop over `connections` (opened as for [`Offer::ManyCommon`]), each
    /// offering `per_conn` requests (messages) per second: a fixed total rate of
    /// `connections × per_conn`.
    PerConnection { connections: usize, per_conn: f64 },
    /// Scale: closed loop at a fixed concurrency (no search), from [`SCALE_SOURCE_IPS`]:
    /// in http-close mode, `connections` connectors, each connecting, sending one
    /// request and closing as fast as the gateway serves them.
    Storm { connections: usize },
}

impl Offer {
    /// One of the scale scenarios' offers (http-many, ws-many, accept-storm).
    pub fn is_scale(&self) -> bool {
        matches!(
            self,
            Offer::ManyCommon { .. } | Offer::PerConnection { .. } | Offer::Storm { .. }
        )
    }

    /// Connections a run of this offer opens, when the offer fixes them.
    pub fn fixed_connections(&self) -> Option<usize> {
        match *self {
            Offer::Common { connections, .. }
            | Offer::ManyCommon { connections, .. }
            | Offer::PerConnection { connections, .. }
            | Offer::Storm { connections } => Some(connections),
            Offer::Search { .. } | Offer::OwnMax { .. } => None,
        }
    }

    /// The open-loop rate: `common` is the smallest Kafka-sink unpipelined maximum of
    /// [`MAX_SCENARIO`], `own` the variant's own; `None` for a closed loop, or when the
    /// maximum the rate derives from is missing.
    pub fn rate(&self, common: Option<f64>, own: Option<f64>) -> Option<f64> {
        match *self {
            Offer::Search { .. } | Offer::Storm { .. } => None,
            Offer::OwnMax { pct } => own.map(|m| m * f64::from(pct) / 100.0),
            Offer::Common { pct, .. } | Offer::ManyCommon { pct, .. } => {
                common.map(|m| m * f64::from(pct) / 100.0)
            }
            Offer::PerConnection {
                connections,
                per_conn,
            } => Some(connections as f64 * per_conn),
        }
    }

    /// The warmup a run of this offer needs on top of `base`: time to open its
    /// connections at [`SCALE_CONNECT_RATE`] (scale offers with many connections).
    pub fn warmup_s(&self, base: f64) -> f64 {
        match *self {
            Offer::ManyCommon { connections, .. } | Offer::PerConnection { connections, .. } => {
                base + connections as f64 / SCALE_CONNECT_RATE + SCALE_SETTLE_S
            }
            _ => base,
        }
    }

    /// Does the rate derive from a measured [`MAX_SCENARIO`] maximum?
    pub fn derived(&self) -> bool {
        matches!(
            self,
            Offer::OwnMax { .. } | Offer::Common { .. } | Offer::ManyCommon { .. }
        )
    }
}

/// Scale scenarios open their connections at this many per second during the warmup (a
/// burst of 15,000 SYNs at once would overflow the listen backlog and measure SYN
/// retransmits instead).
pub const SCALE_CONNECT_RATE: f64 = 10_000.0;
/// Warmup after the last connection is open, before the measured phase.
pub const SCALE_SETTLE_S: f64 = 0.5;
/// Source addresses the scale scenarios spread their connections over: each has the whole
/// ephemeral port range (28k ports here) per destination, and an accept storm leaves its
/// TIME_WAITs on the client.
pub const SCALE_SOURCE_IPS: &str = "127.0.0.2-127.0.0.9";
/// http-many's rate: this percentage of the smallest Kafka-sink unpipelined http-max
/// maximum of all gateways (cost-low's level), the same for http-many and its
/// 64-connection twin.
pub const MANY_PCT: u32 = 30;
/// ws-many: messages per second each WebSocket sends.
pub const WS_MANY_PER_CONN: f64 = 2.0;
/// The twin of http-many: the same rate over this many connections.
pub const HTTP_MANY_TWIN: &str = "http-many-64";

/// Sizes of the scale scenarios: (http-many connections, ws-many WebSockets,
/// accept-storm connectors).
pub fn scale_sizes(quick: bool) -> (usize, usize, usize) {
    if quick {
        (2_000, 1_000, 256)
    } else {
        (15_000, 10_000, 1_024)
    }
}

/// What a scenario does to the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Shape {
    /// Traffic through [`crate::engine::run`].
    Load {
        mode: Mode,
        payload: usize,
        offer: Offer,
    },
    /// N idle connections, each after one request; gateway RSS before and after.
    Idle { ws: bool, connections: usize },
}

/// How a TLS scenario's client handshakes: every connection speaks TLS to a gateway
/// started with compare's test certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsHandshakes {
    /// `--tls-resume on`: reconnects resume their session (abbreviated handshakes).
    Resumed,
    /// `--tls-resume off`: every handshake is a full one.
    Full,
}

/// One row of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    pub id: String,
    pub title: String,
    pub shape: Shape,
    /// Also run against the `--sink null` variants.
    pub null_sink: bool,
    /// HTTPS / WSS: the gateway serves TLS and the client speaks it (absent: plaintext).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsHandshakes>,
}

impl Scenario {
    /// The search ladder's first dimension, if this scenario has one.
    pub fn search(&self) -> Option<(&[usize], usize, &[usize])> {
        match &self.shape {
            Shape::Load {
                offer:
                    Offer::Search {
                        connections,
                        depth,
                        depths,
                    },
                ..
            } => Some((connections, *depth, depths)),
            _ => None,
        }
    }

    pub fn mode(&self) -> Option<Mode> {
        match self.shape {
            Shape::Load { mode, .. } => Some(mode),
            Shape::Idle { .. } => None,
        }
    }
}

/// The closed-loop scenario open-loop and cost rates derive from.
pub const MAX_SCENARIO: &str = "http-max";

fn load(id: &str, title: &str, mode: Mode, payload: usize, offer: Offer, null: bool) -> Scenario {
    Scenario {
        id: id.to_string(),
        title: title.to_string(),
        shape: Shape::Load {
            mode,
            payload,
            offer,
        },
        null_sink: null,
        tls: None,
    }
}

fn search(connections: &[usize], depth: usize, depths: &[usize]) -> Offer {
    Offer::Search {
        connections: connections.to_vec(),
        depth,
        depths: depths.to_vec(),
    }
}

/// Every scenario `compare` knows, in report order. `quick` shortens the ladders.
pub fn all_scenarios(idle_conns: usize, quick: bool) -> Vec<Scenario> {
    let (http_conns, http_depths): (&[usize], &[usize]) = if quick {
        (&[64, 256], &[])
    } else {
        (&[64, 128, 256, 512, 1024], &[2, 4, 8])
    };
    let (ws_conns, ws_depths): (&[usize], &[usize]) = if quick {
        (&[16], &[256])
    } else {
        (&[4, 16, 64], &[256, 1024])
    };
    let mut v = vec![
        load(
            MAX_SCENARIO,
            "HTTP keep-alive, maximum (closed loop, saturation search), 100 B",
            Mode::Http,
            100,
            search(http_conns, 1, http_depths),
            true,
        ),
        load(
            "ws-max",
            "WebSocket streaming, maximum (closed loop, saturation search), 100 B",
            Mode::Ws,
            100,
            search(ws_conns, 64, ws_depths),
            true,
        ),
        load(
            "http-max-10k",
            "HTTP keep-alive, maximum (closed loop, saturation search), 10 KiB",
            Mode::Http,
            10 * 1024,
            search(&[64, 256, 1024], 1, &[]),
            false,
        ),
        load(
            "http-close",
            "HTTP connection per request, maximum (closed loop, saturation search), 100 B",
            Mode::HttpClose,
            100,
            search(&[32, 128, 512], 1, &[]),
            false,
        ),
    ];
    for pct in [25, 50, 75, 90] {
        v.push(load(
            &format!("http-load-{pct}"),
            &format!("HTTP keep-alive, open loop at {pct}% of the gateway's own http-max maximum without pipelining (Kafka), 100 B"),
            Mode::Http,
            100,
            Offer::OwnMax { pct },
            false,
        ));
    }
    for (id, pct) in [("cost-low", 30), ("cost-high", 60)] {
        v.push(load(
            id,
            &format!("HTTP keep-alive, open loop at {pct}% of the smallest http-max maximum without pipelining (Kafka) of all gateways, the same rate for every variant, 256 connections, 100 B"),
            Mode::Http,
            100,
            Offer::Common { pct, connections: 256 },
            true,
        ));
    }
    let (many, ws_many, storm) = scale_sizes(quick);
    v.push(load(
        "http-many",
        &format!("HTTP keep-alive, {many} connections, open loop at {MANY_PCT}% of the smallest http-max maximum without pipelining (Kafka) of all gateways, the same rate for every variant, 100 B"),
        Mode::Http,
        100,
        Offer::ManyCommon { pct: MANY_PCT, connections: many },
        false,
    ));
    v.push(load(
        HTTP_MANY_TWIN,
        "HTTP keep-alive, http-many's rate over 64 connections (its twin), 100 B",
        Mode::Http,
        100,
        Offer::ManyCommon {
            pct: MANY_PCT,
            connections: 64,
        },
        false,
    ));
    v.push(load(
        "ws-many",
        &format!("WebSocket, {ws_many} connections each sending {WS_MANY_PER_CONN} messages/s (open loop, {:.0} messages/s in all), 100 B", ws_many as f64 * WS_MANY_PER_CONN),
        Mode::Ws,
        100,
        Offer::PerConnection { connections: ws_many, per_conn: WS_MANY_PER_CONN },
        false,
    ));
    v.push(load(
        "accept-storm",
        &format!("Accept storm: {storm} connectors, each connecting, sending one 100 B request and closing, as fast as the gateway accepts and serves (closed loop)"),
        Mode::HttpClose,
        100,
        Offer::Storm { connections: storm },
        false,
    ));
    v.push(Scenario {
        id: "idle-http".into(),
        title: format!("{idle_conns} idle HTTP keep-alive connections (one request each)"),
        shape: Shape::Idle {
            ws: false,
            connections: idle_conns,
        },
        null_sink: false,
        tls: None,
    });
    v.push(Scenario {
        id: "idle-ws".into(),
        title: format!("{idle_conns} idle WebSocket connections (one message each)"),
        shape: Shape::Idle {
            ws: true,
            connections: idle_conns,
        },
        null_sink: false,
        tls: None,
    });
    v.extend(tls_scenarios(&v));
    v
}

/// The TLS twins of http-max, ws-max, cost-low and accept-storm (Kafka sink only), and
/// accept-storm's resumed twin: the same offer over `https://` / `wss://`. cost-low-tls
/// runs at cost-low's common rate, so the difference of the two is TLS's cost per request.
fn tls_scenarios(plain: &[Scenario]) -> Vec<Scenario> {
    let twin = |id: &str, new_id: &str, tls: TlsHandshakes, what: &str| {
        let base = plain.iter().find(|s| s.id == id)?;
        Some(Scenario {
            id: new_id.to_string(),
            title: format!("{}, over TLS ({what})", base.title),
            shape: base.shape.clone(),
            null_sink: false,
            tls: Some(tls),
        })
    };
    use TlsHandshakes::{Full, Resumed};
    [
        twin(MAX_SCENARIO, "http-max-tls", Resumed, "HTTPS"),
        twin("ws-max", "ws-max-tls", Resumed, "WSS"),
        twin("cost-low", "cost-low-tls", Resumed, "HTTPS"),
        twin(
            "accept-storm",
            "accept-storm-tls",
            Full,
            "HTTPS, full handshakes",
        ),
        twin(
            "accept-storm",
            "accept-storm-tls-resumed",
            Resumed,
            "HTTPS, resumed handshakes",
        ),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// What `--tls` adds to the selected scenarios (none of them is in the default or quick set).
pub const TLS_SCENARIOS: &[&str] = &[
    "http-max-tls",
    "ws-max-tls",
    "cost-low-tls",
    "accept-storm-tls",
    "accept-storm-tls-resumed",
];

/// Scenario ids of the default matrix (the quick one drops some).
pub const DEFAULT_SCENARIOS: &[&str] = &[
    "http-max",
    "ws-max",
    "http-max-10k",
    "http-close",
    "http-load-25",
    "http-load-50",
    "http-load-75",
    "http-load-90",
    "cost-low",
    "cost-high",
    "idle-http",
    "idle-ws",
    "http-many",
    HTTP_MANY_TWIN,
    "ws-many",
    "accept-storm",
];
pub const QUICK_SCENARIOS: &[&str] = &[
    "http-max",
    "ws-max",
    "http-load-50",
    "cost-low",
    "idle-http",
    "idle-ws",
    "http-many",
    HTTP_MANY_TWIN,
    "ws-many",
    "accept-storm",
];
