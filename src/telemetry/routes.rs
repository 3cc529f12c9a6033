//! A mapped run's counts per route, for the summary and `/metrics`: label values come only
//! from the mapping's route names, which the file fixes before the first message.

use std::collections::BTreeMap;
use std::fmt;

pub use crate::db::write::RouteTally;

/// What each route did, by route name.
pub type Routes = BTreeMap<String, RouteTally>;

/// Adds one commit's tallies.
pub fn absorb(into: &mut Routes, from: &Routes) {
    for (route, tally) in from {
        into.entry(route.clone()).or_default().absorb(tally);
    }
}

/// One of a route's counts.
type Count = fn(&RouteTally) -> u64;

/// The summary's lines for a mapped run (nothing for the login load): a total per kind,
/// then each route's count under it.
pub fn write_text(f: &mut fmt::Formatter<'_>, routes: &Routes) -> fmt::Result {
    if routes.is_empty() {
        return Ok(());
    }
    let kinds: [(&str, Count); 4] = [
        ("loaded by route", |t| t.rows),
        ("skipped by route", |t| t.skipped),
        ("skipped by key", |t| t.by_key),
        ("rejected by route", |t| t.rejected),
    ];
    for (label, count) in kinds {
        let total: u64 = routes.values().map(count).sum();
        // Aligned with the summary's other values.
        writeln!(f, "{label:<19} {total}")?;
        for (route, tally) in routes {
            if count(tally) > 0 {
                writeln!(f, "  {route}: {}", count(tally))?;
            }
        }
    }
    Ok(())
}

/// Sets the per-route counters from the run's totals.
pub fn record(routes: &Routes) {
    for (route, t) in routes {
        let r = route.clone();
        metrics::counter!("sqs2pg_route_loaded_total", "route" => r.clone()).absolute(t.rows);
        metrics::counter!("sqs2pg_route_skipped_total", "route" => r.clone()).absolute(t.skipped);
        metrics::counter!("sqs2pg_route_skipped_by_key_total", "route" => r.clone())
            .absolute(t.by_key);
        metrics::counter!("sqs2pg_route_rejected_total", "route" => r).absolute(t.rejected);
    }
}
