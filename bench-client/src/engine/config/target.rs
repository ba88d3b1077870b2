//! What a URL selects ([`Target`]: authority, mode, topic, TLS) and the checks on what a
//! scenario sends: topic names, `-H` headers.

use anyhow::{bail, Context};

use crate::engine::config::values::Mode;

/// What a URL (`run URL` or `--target`) and `--mode` / `--topic` select together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `HOST:PORT` (port 80 if absent, 443 for `https://` and `wss://`).
    pub authority: String,
    pub mode: Mode,
    pub topic: String,
    /// `https://` or `wss://`: the connections speak TLS.
    pub tls: bool,
}

impl Target {
    /// `http://HOST:PORT[/topics/T | /ws/T]` (or `ws://` with `/ws/T`; `https://` and
    /// `wss://` the same over TLS): the path picks the mode and topic; `mode` and `topic` from flags must agree with it, and decide (default
    /// http, `bench`) when there is no path.
    pub fn parse(url: &str, mode: Option<Mode>, topic: Option<&str>) -> anyhow::Result<Target> {
        let (scheme, rest) = url.split_once("://").with_context(|| {
            format!("URL {url:?} has no scheme: expected http://HOST:PORT/topics/TOPIC or http://HOST:PORT/ws/TOPIC")
        })?;
        let tls = match scheme {
            "http" | "ws" => false,
            "https" | "wss" => true,
            _ => bail!(
                "URL {url:?}: only http:// and https:// (and ws:// or wss:// for /ws/TOPIC) are supported"
            ),
        };
        let ws_scheme = scheme == "ws" || scheme == "wss";
        let (auth, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if auth.is_empty() {
            bail!("URL {url:?} has no host");
        }
        if !auth
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b))
        {
            bail!("URL {url:?}: {auth:?} is not HOST:PORT");
        }
        if path.contains(['?', '#']) {
            bail!(
                "URL {url:?}: a query or fragment is not supported; use --ack, --key (-k) and -H"
            );
        }
        let has_port = match auth.rfind(']') {
            Some(i) => auth[i..].contains(':'),
            None => auth.contains(':'),
        };
        let authority = match (has_port, tls) {
            (true, _) => auth.to_string(),
            (false, false) => format!("{auth}:80"),
            (false, true) => format!("{auth}:443"),
        };
        let from_path = match path.trim_end_matches('/') {
            "" => None,
            p => {
                let (m, t) = if let Some(t) = p.strip_prefix("/topics/") {
                    (Mode::Http, t)
                } else if let Some(t) = p.strip_prefix("/ws/") {
                    (Mode::Ws, t)
                } else {
                    bail!(
                        "URL {url:?}: the path must be /topics/TOPIC (HTTP) or /ws/TOPIC (WebSocket), got {p:?}"
                    );
                };
                if t.is_empty() || t.contains('/') {
                    bail!("URL {url:?}: expected /topics/TOPIC or /ws/TOPIC with one plain topic name, got {p:?}");
                }
                Some((m, t))
            }
        };
        let scheme_mode = ws_scheme.then_some(Mode::Ws);
        let (mode, topic) = match from_path {
            None => (
                mode.or(scheme_mode).unwrap_or(Mode::Http),
                topic.unwrap_or("bench").to_string(),
            ),
            Some((path_mode, path_topic)) => {
                let m = match (path_mode, mode) {
                    (_, None) => path_mode,
                    (Mode::Http, Some(m @ (Mode::Http | Mode::HttpClose))) => m,
                    (Mode::Ws, Some(Mode::Ws)) => Mode::Ws,
                    (_, Some(m)) => bail!(
                        "--mode {} contradicts the URL's path {path:?} (/topics/ is http or http-close, /ws/ is ws)",
                        m.as_str()
                    ),
                };
                if let Some(t) = topic {
                    if t != path_topic {
                        bail!("--topic {t:?} contradicts the URL's path {path:?}");
                    }
                }
                (m, path_topic.to_string())
            }
        };
        if ws_scheme && mode != Mode::Ws {
            bail!("URL {url:?}: {scheme}:// is for WebSocket mode (/ws/TOPIC)");
        }
        Ok(Target {
            authority,
            mode,
            topic,
            tls,
        })
    }
}

/// The host of a `HOST:PORT` authority, without the brackets of an IPv6 address: the
/// name a TLS client sends (SNI) and checks the certificate against.
pub fn host_of(authority: &str) -> &str {
    let host = match authority.rfind(']') {
        Some(i) => &authority[..=i],
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `HOST:PORT` of an `http(s)://HOST:PORT[/...]` URL (port 80 or 443 if absent).
pub fn authority_of(target: &str) -> anyhow::Result<String> {
    Ok(Target::parse(target, None, None)?.authority)
}

/// A topic as the gateways accept it: 1–249 of `[A-Za-z0-9._-]`, not `.` or `..`.
pub(crate) fn check_topic(t: &str) -> anyhow::Result<()> {
    let ok = !t.is_empty()
        && t.len() <= 249
        && t != "."
        && t != ".."
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if !ok {
        bail!("topic {t:?} is not a plain topic name (1-249 of A-Z a-z 0-9 . _ -)");
    }
    Ok(())
}

/// `-H 'NAME: VALUE'` as curl and oha take it: a header name (an HTTP token), a colon,
/// the value (surrounding spaces dropped; no CR or LF).
pub fn parse_header(h: &str) -> anyhow::Result<(String, String)> {
    let (name, value) = h
        .split_once(':')
        .with_context(|| format!("-H {h:?}: expected 'NAME: VALUE'"))?;
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        bail!("-H {h:?}: {name:?} is not a header name");
    }
    let value = value.trim_matches([' ', '\t']);
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        bail!("-H {h:?}: the value holds a control character (line break?)");
    }
    let reserved = [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
    ];
    if reserved.iter().any(|r| name.eq_ignore_ascii_case(r)) {
        bail!("-H {h:?}: {name} is set by bench-client itself");
    }
    Ok((name.to_string(), value.to_string()))
}
