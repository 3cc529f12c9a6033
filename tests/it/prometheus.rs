//! Prometheus against the real thing: a live `/metrics` after a drain passes `promtool check
//! metrics`, deploy/prometheus/alerts.yml passes its `promtool test rules` unit tests, and the
//! real server scraping a running sqs2pg raises the not-ready alert when Postgres stops.

use std::process::Command;
use std::time::Duration;

use crate::faults::PrivatePg;
use crate::helpers::{
    described_families, family_names, login, metrics_daemon, promtool, promtool_with_stdin,
    scrape_after_drain, wait_until, PromServer, TestEnv,
};

fn deploy_file(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/prometheus")
        .join(name)
}

/// After a drain with a reject, every family is present and has HELP, and promtool's lint
/// finds nothing (counter suffixes, units, HELP texts).
#[tokio::test(flavor = "multi_thread")]
async fn a_live_scrape_after_a_drain_passes_promtool_check_metrics() {
    let env = TestEnv::new().await;
    let mut bodies: Vec<String> = (0..20)
        .map(|i| login(&format!("p{i}"), "10.7.0.1", "d"))
        .collect();
    bodies.push("{not json".into());
    let metrics = scrape_after_drain(&env, &bodies).await;
    let (ok, findings) = promtool_with_stdin(&["check", "metrics"], &metrics);
    assert!(
        ok && findings.trim().is_empty(),
        "promtool check metrics:\n{findings}\n--- the scrape:\n{metrics}"
    );
    let exported = family_names(&metrics);
    // The per-route families appear only under a mapping file (see mapped_run).
    let login_families: std::collections::BTreeSet<String> = described_families()
        .into_iter()
        .filter(|f| !f.starts_with("sqs2pg_route_"))
        .collect();
    assert_eq!(
        exported, login_families,
        "families exported vs described in telemetry::metrics::HELP"
    );
}

/// The rules load and every alert's unit test passes.
#[test]
fn alert_rules_pass_their_promtool_unit_tests() {
    for args in [
        vec!["check", "rules", "alerts.yml"],
        vec!["test", "rules", "alerts_test.yml"],
    ] {
        let out = Command::new(promtool())
            .args(&args)
            .current_dir(deploy_file(""))
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// alerts.yml with Sqs2pgNotReady's `for: 5m` cut to `for: 1m`, so it is seen pending (not yet
/// firing) within a test.
fn rules_with_short_not_ready() -> String {
    let rules = std::fs::read_to_string(deploy_file("alerts.yml")).expect("read alerts.yml");
    let (head, tail) = rules
        .split_once("- alert: Sqs2pgNotReady")
        .expect("Sqs2pgNotReady in alerts.yml");
    let tail = tail.replacen("for: 5m", "for: 1m", 1);
    format!("{head}- alert: Sqs2pgNotReady{tail}")
}

/// The real Prometheus scrapes a running sqs2pg: ready while Postgres is up, and once that
/// Postgres stops, Sqs2pgNotReady goes pending.
#[tokio::test(flavor = "multi_thread")]
async fn prometheus_sees_not_ready_when_postgres_stops() {
    let env = TestEnv::new().await;
    let pg = PrivatePg::start_migrated().await;
    let (_daemon, addr) = metrics_daemon(&env, &pg.url).await;
    let prom = PromServer::start(&[&addr], &rules_with_short_not_ready()).await;
    wait_until(
        "Prometheus scraped sqs2pg_ready 1",
        Duration::from_secs(60),
        || {
            let r = prom.query("sqs2pg_ready == 1");
            async move {
                match r["data"]["result"].as_array() {
                    Some(v) if !v.is_empty() => Ok(()),
                    _ => Err(r.to_string()),
                }
            }
        },
    )
    .await;
    assert_eq!(
        prom.alert_state("Sqs2pgNotReady"),
        None,
        "not ready while Postgres is up"
    );
    let pg = tokio::task::spawn_blocking(move || {
        pg.stop();
        pg
    })
    .await
    .expect("stop Postgres");
    let state = wait_until("Sqs2pgNotReady active", Duration::from_secs(60), || {
        let s = prom.alert_state("Sqs2pgNotReady");
        async move { s.ok_or("no such alert yet") }
    })
    .await;
    assert_eq!(
        state,
        "pending",
        "for: 1m has not run out yet\n{}",
        prom.log()
    );
    drop(pg);
}
