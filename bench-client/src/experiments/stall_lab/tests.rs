//! The causes' names and expectations, the gateways each runs on, the verdict per run,
//! the report's notes on skipped gateways, and old `stall-lab.json` files loading.

use clap::ValueEnum;

use super::args::StallLabArgs;
use super::cause::Cause;
use super::evidence::Evidence;
use super::report::render_markdown;
use super::run::plan;
use super::summary::{run_met, LabReport, LabRun};
use crate::engine::analysis::timeline::StallClass;
use crate::lab::GatewayKind;

#[test]
fn cause_names_parse_back_and_match_the_cli() {
    for c in Cause::ALL {
        assert_eq!(Cause::parse(c.name()), Some(c));
        assert_eq!(
            <Cause as ValueEnum>::from_str(c.name(), false),
            Ok(c),
            "--causes spelling"
        );
        assert_eq!(c.uring_only(), c.name().starts_with("uring-"), "{c:?}");
    }
    assert_eq!(Cause::parse("nope"), None);
    // The default --causes list is every cause.
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        a: StallLabArgs,
    }
    let cli = Cli::try_parse_from(["x"]).unwrap();
    assert_eq!(cli.a.causes, Cause::ALL.to_vec());
    let cli = Cli::try_parse_from(["x", "--causes", "uring-tiny-ring,emfile"]).unwrap();
    assert_eq!(cli.a.causes, vec![Cause::UringTinyRing, Cause::Emfile]);
}

#[test]
fn uring_causes_run_on_gateway_uring_only() {
    for c in Cause::ALL {
        let (run, skip) = plan(c, &GatewayKind::ALL);
        if c.uring_only() {
            assert_eq!(run, vec![GatewayKind::Uring], "{c:?}");
            assert_eq!(skip.len(), 3);
            assert!(skip.iter().all(|(_, why)| why.contains("io_uring")));
        } else {
            assert_eq!(run, GatewayKind::ALL.to_vec(), "{c:?}");
            assert!(skip.is_empty());
        }
    }
    let (run, skip) = plan(Cause::UringSqFull, &[GatewayKind::Compio]);
    assert!(run.is_empty());
    assert_eq!(skip[0].0, GatewayKind::Compio);
}

fn run(cause: Cause, config: &str, stalls: usize, class: Option<StallClass>) -> LabRun {
    LabRun {
        cause,
        gateway: "uring".into(),
        config: config.into(),
        run: 1,
        gateway_args: Vec::new(),
        stalls,
        first_stall_ms: None,
        total_stall_ms: 0.0,
        class,
        ok: 1,
        errors: 0,
        evidence: Evidence::default(),
        per_second: Vec::new(),
        error: None,
        gateway_exit: Some(0),
    }
}

#[test]
fn expectations_per_cause() {
    let repro = "reproduction";
    // A cause that must stall: with its class only.
    assert!(run_met(&run(
        Cause::UringCancelAccept,
        repro,
        1,
        Some(StallClass::Accept)
    )));
    assert!(!run_met(&run(
        Cause::UringCancelAccept,
        repro,
        1,
        Some(StallClass::Service)
    )));
    assert!(!run_met(&run(Cause::UringCancelAccept, repro, 0, None)));
    // A cause the runtime absorbs: no stall, and only with the mechanism measured.
    let mut tiny = run(Cause::UringTinyRing, repro, 0, None);
    assert!(!run_met(&tiny), "not measured proves nothing");
    tiny.evidence.uring_cq_overflows = Some(0);
    assert!(
        !run_met(&tiny),
        "no overflow: the reproduction reproduced nothing"
    );
    tiny.evidence.uring_cq_overflows = Some(57);
    assert!(run_met(&tiny));
    tiny.stalls = 1;
    tiny.class = Some(StallClass::Service);
    assert!(!run_met(&tiny), "a stall where none is expected");
    let mut sq = run(Cause::UringSqFull, repro, 0, None);
    sq.evidence.uring_sqes = Some(300);
    sq.evidence.uring_enters = Some(100);
    assert!(
        !run_met(&sq),
        "3 SQEs per enter: the queue was not the limit"
    );
    sq.evidence.uring_enters = Some(150);
    assert!(run_met(&sq));
    // Defaults never stall.
    assert!(run_met(&run(Cause::UringSqFull, "default", 0, None)));
    assert!(!run_met(&run(
        Cause::UringSqFull,
        "default",
        1,
        Some(StallClass::Service)
    )));
}

#[test]
fn report_names_the_skipped_gateways() {
    let r = LabReport {
        manifest: crate::engine::probes::manifest::Manifest::collect(),
        pinning: "none".into(),
        duration_s: 1.0,
        runs: vec![run(Cause::Emfile, "default", 0, None)],
        skipped: vec![(
            Cause::UringSqFull,
            "compio".into(),
            Cause::UringSqFull
                .skip_reason(GatewayKind::Compio)
                .unwrap()
                .into(),
        )],
    };
    let md = render_markdown(&r);
    assert!(md.contains("## emfile"), "{md}");
    assert!(md.contains("## uring-sq-full"), "{md}");
    assert!(md.contains("Not run on compio: an io_uring"), "{md}");
}

#[test]
fn old_reports_still_load() {
    // A stall-lab.json written before the io_uring causes: no `skipped`, no uring evidence.
    let ev: Evidence = serde_json::from_str(
        r#"{"max_accept_queue":1,"listen_overflows":0,"listen_drops":0,"max_gateway_fds":9,"max_client_time_wait":0,"accept_errors_emfile":null}"#,
    )
    .unwrap();
    assert_eq!(ev.max_gateway_fds, 9);
    assert_eq!(ev.uring_cq_overflows, None);
    assert_eq!(ev.sqes_per_enter(), None);
}
