//! deploy/grafana/sqs2pg.json: a well-formed dashboard whose every PromQL expression the real
//! Prometheus parses and names only metric families a live sqs2pg exports.

use std::collections::BTreeSet;

use crate::helpers::{family_names, login, scrape_after_drain, PromServer, TestEnv};

fn dashboard() -> serde_json::Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/sqs2pg.json");
    serde_json::from_str(&std::fs::read_to_string(path).expect("read sqs2pg.json"))
        .expect("sqs2pg.json is JSON")
}

/// Every target's `expr`, with the panel's title.
fn expressions(d: &serde_json::Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr").to_owned();
            out.push((p["title"].as_str().unwrap_or("?").to_owned(), expr));
        }
    }
    out
}

/// The expression as Prometheus sees it once Grafana has filled in its variables.
fn as_sent(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$job", "sqs2pg")
}

/// The `sqs2pg_*` family names an expression reads (a histogram's `_bucket`/`_sum`/`_count`
/// series belong to its family).
fn families_named(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("sqs2pg_") {
        let start = i + at;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        let name = &expr[start..end];
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        names.insert(family.to_owned());
        i = end;
    }
    names
}

/// Ids, grid positions, a Prometheus data source and targets on every panel; the topics an
/// operator needs are each on a panel.
#[test]
fn the_dashboard_is_well_formed_and_covers_the_topics() {
    let d = dashboard();
    assert!(
        d["title"].is_string() && d["uid"].is_string(),
        "title and uid"
    );
    assert!(
        d["schemaVersion"].as_u64().is_some_and(|v| v >= 30),
        "schemaVersion"
    );
    let vars: Vec<&str> = d["templating"]["list"]
        .as_array()
        .expect("templating.list")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    assert_eq!(vars, ["datasource", "job"]);
    let mut ids = BTreeSet::new();
    for p in d["panels"].as_array().expect("panels") {
        let title = p["title"].as_str().expect("every panel has a title");
        assert!(
            ids.insert(p["id"].as_u64().expect("panel id")),
            "{title}: duplicate id"
        );
        assert!(
            ["timeseries", "stat"].contains(&p["type"].as_str().unwrap_or("")),
            "{title}: type"
        );
        let g = &p["gridPos"];
        for k in ["h", "w", "x", "y"] {
            assert!(g[k].is_u64(), "{title}: gridPos.{k}");
        }
        assert!(
            g["x"].as_u64().unwrap() + g["w"].as_u64().unwrap() <= 24,
            "{title}: wider than the grid"
        );
        assert_eq!(
            p["datasource"]["uid"], "${datasource}",
            "{title}: data source"
        );
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no target");
        let refs: BTreeSet<&str> = targets.iter().filter_map(|t| t["refId"].as_str()).collect();
        assert_eq!(
            refs.len(),
            targets.len(),
            "{title}: refIds missing or repeated"
        );
    }
    let all: String = expressions(&d).into_iter().map(|(_, e)| e + "\n").collect();
    for (topic, needle) in [
        ("throughput", "rate(sqs2pg_loaded_total"),
        ("lag", "sqs2pg_latency_seconds_bucket"),
        (
            "rejects by reason",
            "sum by (reason) (rate(sqs2pg_rejected_total",
        ),
        ("retries", "sqs2pg_retries_total"),
        ("in flight", "sqs2pg_in_flight"),
        ("readiness", "sqs2pg_ready"),
    ] {
        assert!(all.contains(needle), "no panel for {topic} ({needle})");
    }
}

/// Prometheus parses every expression (an instant query answers `success`), and each names
/// only families in a live `/metrics` after a drain.
#[tokio::test(flavor = "multi_thread")]
async fn every_expression_parses_and_names_exported_metrics() {
    let env = TestEnv::new().await;
    let mut bodies: Vec<String> = (0..10)
        .map(|i| login(&format!("g{i}"), "10.7.1.1", "d"))
        .collect();
    bodies.push(r#"{"user_id":"only"}"#.into());
    let exported = family_names(&scrape_after_drain(&env, &bodies).await);
    let prom = PromServer::start(&[], "groups: []\n").await;
    for (title, expr) in expressions(&dashboard()) {
        let answer = prom.query(&as_sent(&expr));
        assert_eq!(answer["status"], "success", "{title}: {expr}\n{answer}");
        let unknown: Vec<String> = families_named(&expr)
            .difference(&exported)
            .cloned()
            .collect();
        assert!(
            unknown.is_empty(),
            "{title}: {expr} names {unknown:?}, not exported (have {exported:?})"
        );
    }
}
