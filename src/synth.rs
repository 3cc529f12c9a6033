//! Realistic synthetic login events for demos, tests and load (`sqs2pg send --synthetic`).
//!
//! Deterministic for a seed. Users come from a pool a quarter the size of the run, each with
//! a usual device and address, so repeated ips and device ids occur as in real traffic: a
//! user logs in from their usual address four times in five; one user in five sits behind an
//! address shared with others (an office, a carrier's NAT), and one in twenty shares a device
//! (a family tablet), so different users share tokens as they do in production. User ids are
//! RFC 4122 version-4 UUIDs.
//! Exact counts of malformed bodies and of re-sent bodies (separate messages with the same
//! body) are mixed in at random positions.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SynthOptions {
    /// Messages in all.
    pub count: usize,
    /// Fraction re-sent as separate messages with an earlier body.
    pub duplicate_rate: f64,
    /// Fraction of malformed bodies.
    pub malformed_rate: f64,
    /// RNG seed.
    pub seed: u64,
}

/// The kinds of malformed body generated, each rejected with a different reason.
const MALFORMED: [&str; 6] = [
    r#"{"foo":"oops_wrong_msg_type","bar":"123"}"#,
    "this is not json",
    r#"{"user_id":"","app_version":"1.0","device_type":"ios","ip":"10.0.0.1","locale":"US","device_id":"111-11-1111"}"#,
    r#"{"user_id":"bad-ip-user","app_version":"1.0","device_type":"ios","ip":"999.1.1.1","locale":"US","device_id":"222-22-2222"}"#,
    r#"{"user_id":"bad-version-user","app_version":"1.2.3.4","device_type":"android","ip":"10.0.0.2","locale":null,"device_id":"333-33-3333"}"#,
    r#"{"user_id":"wrong-type-user","app_version":2.1,"device_type":"android","ip":"10.0.0.3","locale":"DE","device_id":"444-44-4444"}"#,
];

const LOCALES: [&str; 12] = [
    "US", "RU", "PH", "ID", "FR", "DE", "BR", "IN", "CN", "PT", "JP", "NG",
];

struct User {
    id: String,
    device_type: &'static str,
    device_id: String,
    ip: String,
    locale: Option<&'static str>,
}

/// An RFC 4122 version-4 UUID drawn from the seeded generator, so runs repeat.
fn uuid(rng: &mut StdRng) -> String {
    uuid::Builder::from_random_bytes(rng.random())
        .into_uuid()
        .to_string()
}

fn ip(rng: &mut StdRng) -> String {
    if rng.random_bool(0.1) {
        let s: [u16; 4] = rng.random();
        format!("2001:db8:{:x}:{:x}::{:x}:{:x}", s[0], s[1], s[2], s[3])
    } else {
        let b: [u8; 4] = rng.random();
        format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
    }
}

fn version(rng: &mut StdRng) -> String {
    match rng.random_range(0..3) {
        0 => format!("{}.{}", rng.random_range(0..10), rng.random_range(0..100)),
        _ => format!(
            "{}.{}.{}",
            rng.random_range(0..10),
            rng.random_range(0..10),
            rng.random_range(0..10)
        ),
    }
}

fn user(rng: &mut StdRng) -> User {
    User {
        id: uuid(rng),
        device_type: if rng.random_bool(0.5) {
            "android"
        } else {
            "ios"
        },
        device_id: format!(
            "{:03}-{:02}-{:04}",
            rng.random_range(0..1000),
            rng.random_range(0..100),
            rng.random_range(0..10000)
        ),
        ip: ip(rng),
        // Roughly the sample's share of null locales.
        locale: (!rng.random_bool(0.3)).then(|| LOCALES[rng.random_range(0..LOCALES.len())]),
    }
}

/// Puts one user in five behind an address another user has, and one in twenty on another
/// user's device.
fn share(users: &mut [User], rng: &mut StdRng) {
    for i in 1..users.len() {
        let other = rng.random_range(0..i);
        if rng.random_bool(0.2) {
            users[i].ip = users[other].ip.clone();
        }
        if rng.random_bool(0.05) {
            users[i].device_id = users[other].device_id.clone();
        }
    }
}

fn count_of(total: usize, rate: f64) -> usize {
    let n = (total as f64 * rate.clamp(0.0, 1.0)).round() as usize;
    if rate > 0.0 && total > 0 {
        n.max(1)
    } else {
        n
    }
}

/// Generates `count` message bodies.
pub fn generate(opts: SynthOptions) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let malformed = count_of(opts.count, opts.malformed_rate);
    let duplicates =
        count_of(opts.count, opts.duplicate_rate).min(opts.count - malformed.min(opts.count));
    let valid = opts.count.saturating_sub(malformed + duplicates);
    let mut users: Vec<User> = (0..valid.div_ceil(4).max(1))
        .map(|_| user(&mut rng))
        .collect();
    share(&mut users, &mut rng);
    let mut bodies: Vec<String> = (0..valid)
        .map(|_| {
            let u = &users[rng.random_range(0..users.len())];
            // Most logins come from the user's usual address; some from elsewhere.
            let ip = if rng.random_bool(0.8) {
                u.ip.clone()
            } else {
                ip(&mut rng)
            };
            json!({
                "user_id": u.id,
                "app_version": version(&mut rng),
                "device_type": u.device_type,
                "ip": ip,
                "locale": u.locale,
                "device_id": u.device_id,
            })
            .to_string()
        })
        .collect();
    for i in 0..malformed {
        bodies.push(MALFORMED[i % MALFORMED.len()].to_string());
    }
    bodies.shuffle(&mut rng);
    for _ in 0..duplicates {
        if bodies.is_empty() {
            break;
        }
        let again = bodies[rng.random_range(0..bodies.len())].clone();
        let at = rng.random_range(0..=bodies.len());
        bodies.insert(at, again);
    }
    bodies
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, Limits};
    use std::collections::HashSet;

    #[test]
    fn counts_and_determinism() {
        let opts = SynthOptions {
            count: 1000,
            duplicate_rate: 0.05,
            malformed_rate: 0.01,
            seed: 7,
        };
        let a = generate(opts);
        assert_eq!(a, generate(opts));
        assert_eq!(a.len(), 1000);
        let bad = a
            .iter()
            .filter(|b| decode(b.as_bytes(), &Limits::default()).is_err())
            .count();
        // Malformed ones, plus any re-sent copies of malformed ones.
        assert!((10..=20).contains(&bad), "{bad}");
        let distinct: HashSet<&String> = a.iter().collect();
        assert!(distinct.len() <= 1000 - 50 + 6, "{}", distinct.len());
        let ips: HashSet<String> = a
            .iter()
            .filter_map(|b| decode(b.as_bytes(), &Limits::default()).ok())
            .filter_map(|l| l.ip.map(|ip| ip.expose().to_string()))
            .collect();
        assert!(ips.len() < 900, "ips repeat: {}", ips.len());
    }

    #[test]
    fn user_ids_are_rfc_4122_v4_and_users_share_addresses() {
        let logins: Vec<_> = generate(SynthOptions {
            count: 1000,
            duplicate_rate: 0.0,
            malformed_rate: 0.0,
            seed: 7,
        })
        .iter()
        .map(|b| decode(b.as_bytes(), &Limits::default()).unwrap())
        .collect();
        for l in &logins {
            let id = uuid::Uuid::parse_str(&l.user_id).unwrap();
            assert_eq!(id.get_version(), Some(uuid::Version::Random), "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
        }
        let mut users_by_ip: std::collections::HashMap<String, HashSet<&str>> = Default::default();
        for l in &logins {
            if let Some(ip) = &l.ip {
                users_by_ip
                    .entry(ip.expose().to_string())
                    .or_default()
                    .insert(&l.user_id);
            }
        }
        let shared = users_by_ip.values().filter(|u| u.len() > 1).count();
        assert!(shared >= 10, "addresses under more than one user: {shared}");
    }

    #[test]
    fn small_runs_still_get_one_malformed() {
        let a = generate(SynthOptions {
            count: 100,
            duplicate_rate: 0.0,
            malformed_rate: 0.01,
            seed: 1,
        });
        assert_eq!(a.len(), 100);
        assert_eq!(
            a.iter()
                .filter(|b| decode(b.as_bytes(), &Limits::default()).is_err())
                .count(),
            1
        );
    }
}
