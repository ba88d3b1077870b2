//! External gateways in compare (`--peer NAME=URL`): parsed from the command line, driven
//! through the same HTTP scenarios as the gateways after them (a saturation search, then
//! the rounds), never started, pinned or restarted; their CPU is measured when
//! `--peer-pid` names their process.

use std::time::Instant;

use anyhow::Context as _;

use super::execute::{decide, gateway_stats, load_config, RunCtx};
use super::plan::{self, next_step, Plan, Shape};
use super::progress::{progress_line, steps_line};
use super::summary::{outcomes, PeerDesc, Phase, RunRecord, Summary};
use crate::engine::config::{Format, Mode};
use crate::engine::RunConfig;
use crate::lab;

/// `--peer NAME=URL` and `--peer-pid NAME=PID` as peer descriptions.
pub fn parse_peers(
    peers: &[String],
    pids: &[String],
    format: Format,
) -> anyhow::Result<Vec<PeerDesc>> {
    let mut out: Vec<PeerDesc> = Vec::new();
    for p in peers {
        let (name, url) = p
            .split_once('=')
            .with_context(|| format!("--peer {p:?}: expected NAME=URL"))?;
        let name = name.trim();
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "--peer {p:?}: the name must be letters, digits, '-', '_' or '.'"
        );
        anyhow::ensure!(
            out.iter().all(|o| o.name != name),
            "--peer {name} given twice"
        );
        crate::engine::config::authority_of(url.trim())
            .with_context(|| format!("--peer {p:?}: expected http://HOST:PORT"))?;
        out.push(PeerDesc {
            name: name.to_string(),
            url: url.trim().trim_end_matches('/').to_string(),
            pid: None,
            format,
        });
    }
    for p in pids {
        let (name, pid) = p
            .split_once('=')
            .with_context(|| format!("--peer-pid {p:?}: expected NAME=PID"))?;
        let pid: u32 = pid
            .trim()
            .parse()
            .with_context(|| format!("--peer-pid {p:?}: bad PID"))?;
        let peer = out
            .iter_mut()
            .find(|o| o.name == name.trim())
            .with_context(|| format!("--peer-pid {p:?}: no --peer named {}", name.trim()))?;
        peer.pid = Some(pid);
    }
    Ok(out)
}

/// Every peer's saturation search of every HTTP scenario that has one.
pub(super) fn search(ctx: &RunCtx<'_>, plan: &Plan, peers: &[PeerDesc], summary: &mut Summary) {
    for peer in peers {
        for sc in plan
            .scenarios
            .iter()
            .filter(|sc| is_http(sc) && sc.search().is_some())
        {
            let t0 = Instant::now();
            let recs = search_peer(ctx, peer, sc);
            eprintln!(
                "[search] {:<13} {:<20} {}  [{:.1} s]",
                sc.id,
                peer.variant(),
                steps_line(&recs),
                t0.elapsed().as_secs_f64()
            );
            summary.runs.extend(recs);
        }
    }
}

/// Every peer's rounds of every HTTP scenario, at the loads the plan gives them.
pub(super) fn rounds(ctx: &RunCtx<'_>, plan: &Plan, peers: &[PeerDesc], summary: &mut Summary) {
    for round in 0..plan.repeats {
        for peer in peers {
            for sc in plan.scenarios.iter().filter(|sc| is_http(sc)) {
                let t0 = Instant::now();
                let mut rec = peer_record(peer, Phase::Round, round, sc);
                let name = peer.variant();
                let work = decide(ctx, summary, &name, &name, sc, &mut rec).and_then(|cfg| {
                    let cfg = cfg.context("a load scenario without a load config")?;
                    peer_run(peer, cfg, &mut rec)
                });
                if let Err(e) = work {
                    rec.error = Some(format!("{e:#}"));
                }
                rec.wall_s = t0.elapsed().as_secs_f64();
                eprintln!(
                    "[peer] round {}/{} {:<13} {:<20} {}",
                    round + 1,
                    plan.repeats,
                    sc.id,
                    name,
                    progress_line(&rec)
                );
                summary.runs.push(rec);
            }
        }
    }
}

/// A plaintext HTTP load scenario (what peers are driven through).
fn is_http(sc: &plan::Scenario) -> bool {
    matches!(sc.mode(), Some(Mode::Http | Mode::HttpClose)) && sc.tls.is_none()
}

fn peer_record(peer: &PeerDesc, phase: Phase, round: usize, sc: &plan::Scenario) -> RunRecord {
    RunRecord {
        phase,
        round,
        scenario: sc.id.clone(),
        variant: peer.variant(),
        step: None,
        rate: None,
        rate_from: None,
        result: None,
        idle: None,
        memory: None,
        gateway: None,
        gateway_info: None,
        gateway_version: Some(format!("external: {}", peer.url)),
        error: None,
        wall_s: 0.0,
        attempts: 1,
    }
}

/// One load run against a peer: its URL, its format, its PID when known (then its CPU is
/// measured like a gateway's and can label the run gateway-bound).
fn peer_run(peer: &PeerDesc, mut c: RunConfig, rec: &mut RunRecord) -> anyhow::Result<()> {
    c.target.clone_from(&peer.url);
    c.authority = crate::engine::config::authority_of(&peer.url)?;
    c.target_pid = peer.pid;
    c.format = peer.format;
    let cpu0 = peer.pid.and_then(lab::proc_cpu_s);
    let wall0 = Instant::now();
    let r = crate::engine::run_blocking(c);
    if let Some(pid) = peer.pid {
        rec.gateway = Some(gateway_stats(pid, cpu0, wall0));
    }
    rec.result = Some(r?);
    Ok(())
}

/// A peer's saturation search for `sc` (the same ladder as the gateways').
fn search_peer(ctx: &RunCtx<'_>, peer: &PeerDesc, sc: &plan::Scenario) -> Vec<RunRecord> {
    let (Some((conns, depth, depths)), Some(mode)) = (sc.search(), sc.mode()) else {
        return Vec::new();
    };
    let Shape::Load { payload, .. } = sc.shape else {
        return Vec::new();
    };
    let mut recs: Vec<RunRecord> = Vec::new();
    loop {
        let refs: Vec<&RunRecord> = recs.iter().collect();
        let Some(step) = next_step(conns, depth, depths, &outcomes(&refs)) else {
            break;
        };
        let t0 = Instant::now();
        let mut rec = peer_record(peer, Phase::Search, 0, sc);
        rec.step = Some(step);
        let work = load_config(ctx, mode, payload, step, None, true)
            .and_then(|c| peer_run(peer, c, &mut rec));
        if let Err(e) = work {
            rec.error = Some(format!("{e:#}"));
        }
        rec.wall_s = t0.elapsed().as_secs_f64();
        let failed = rec.error.is_some();
        recs.push(rec);
        if failed {
            break;
        }
    }
    recs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_from_the_command_line() {
        let p = parse_peers(
            &[
                "node=http://127.0.0.1:8090/".into(),
                "rp=http://h:8082".into(),
            ],
            &["node=42".into()],
            Format::RestV2Json,
        )
        .unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].url, "http://127.0.0.1:8090");
        assert_eq!(p[0].pid, Some(42));
        assert_eq!(p[1].pid, None);
        assert_eq!(p[0].variant(), "node (external)");
        assert_eq!(p[1].format, Format::RestV2Json);
        for (peers, pids) in [
            (vec!["node"], vec![]),
            (vec!["=http://h:1"], vec![]),
            (vec!["a b=http://h:1"], vec![]),
            (vec!["n=http://h:1", "n=http://h:2"], vec![]),
            (vec!["n=http://h:1"], vec!["m=3"]),
            (vec!["n=http://h:1"], vec!["n=x"]),
        ] {
            let peers: Vec<String> = peers.into_iter().map(String::from).collect();
            let pids: Vec<String> = pids.into_iter().map(String::from).collect();
            assert!(
                parse_peers(&peers, &pids, Format::Raw).is_err(),
                "{peers:?} {pids:?}"
            );
        }
    }
}
