//! Runs today's login path on each case and renders what it gives as one JSON line: the
//! only place the golden test touches the library's transform (swap the path here).

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqs2pg::decode::{self, AppVersion, Framing, Limits};
use sqs2pg::mask::{Keyring, Masker};
use sqs2pg::source::Received;
use sqs2pg::transform::{self, Outcome};

use super::cases::{framing_name, Body, Event, Lim, SENT};

/// The masker every case is masked with: the tests' fixed key (`helpers::KEYS`, kid `t1`).
pub fn masker() -> Masker {
    Masker::new(&Keyring::parse(crate::helpers::KEYS).expect("the tests' key"))
}

/// Every line of one event: one per wrap (and per extra column shape, bare), each holding
/// the outcome under each of the event's framings, identical outcomes grouped.
pub fn lines(event: &Event, masker: &mut Masker, out: &mut Vec<(String, String)>) {
    lines_by(event, masker, out, &mut |body, framing, sent, lim, m| {
        let limits = lim.limits(|len| m.token_len(len));
        Some(outcome(body, framing, sent, &limits, m))
    });
}

/// What one case gives under one framing and column shape; `None`: the case is not run.
pub type Run<'r> = dyn FnMut(&Body, Framing, Option<&str>, Lim, &mut Masker) -> Option<Value> + 'r;

/// [`lines`], each outcome as `run` makes it; a case for which `run` gives `None` has no
/// line.
pub fn lines_by(
    event: &Event,
    masker: &mut Masker,
    out: &mut Vec<(String, String)>,
    run: &mut Run<'_>,
) {
    for (n, lim) in event.limits.iter().enumerate() {
        let wraps = if n == 0 {
            event.wraps
        } else {
            &event.wraps[..1]
        };
        for wrap in wraps {
            let Some(body) = wrap.apply(&event.body) else {
                continue;
            };
            let shape = match lim {
                Lim::Default => String::new(),
                other => format!("@{}", other.name()),
            };
            let id = format!("{}~{}{shape}", event.id, wrap.name());
            if let Some(line) = line(&id, event, &body, *lim, masker, run) {
                out.push((id, line));
            }
        }
    }
}

/// `{"id", "body", ["sent",] ["path",] "<framings>": outcome, …}`, in that order.
fn line(
    id: &str,
    event: &Event,
    body: &Body,
    lim: Lim,
    m: &mut Masker,
    run: &mut Run<'_>,
) -> Option<String> {
    let mut groups: Vec<(Vec<String>, String)> = Vec::new();
    for framing in event.framings {
        let outcome = run(body, *framing, event.sent, lim, m)?.to_string();
        match groups.iter_mut().find(|(_, o)| *o == outcome) {
            Some((names, _)) => names.push(framing_name(*framing)),
            None => groups.push((vec![framing_name(*framing)], outcome)),
        }
    }
    let mut line = format!(
        r#"{{"id":{},"body":"{}""#,
        json!(id),
        fingerprint(body.bytes())
    );
    if event.sent != Some(SENT) {
        line.push_str(&format!(r#","sent":{}"#, json!(event.sent)));
    }
    if let Body::Bytes(_) = body {
        line.push_str(r#","path":"decode""#);
    }
    for (framings, outcome) in groups {
        line.push_str(&format!(",{}:{outcome}", json!(framings.join(","))));
    }
    line.push('}');
    Some(line)
}

/// One message's outcome: `{"row": [...]}` or `{"reject": reason, "sealed": fingerprint}`.
fn outcome(
    body: &Body,
    framing: Framing,
    sent: Option<&str>,
    limits: &Limits,
    m: &mut Masker,
) -> Value {
    match body {
        Body::Text(text) => {
            let msg = Received::new("golden".into(), String::new(), text.clone(), sent, None)
                .framed(framing);
            let t = transform::reference::hand_written(&msg, limits, m);
            match t.outcome {
                Outcome::Row(r) => row(
                    [
                        json!(r.user_id),
                        json!(r.device_type),
                        json!(r.masked_ip),
                        json!(r.masked_device_id),
                    ],
                    (&r.locale, &r.app_version, r.create_date),
                    msg.sent_at,
                    t.unknown_keys,
                ),
                Outcome::Mapped(_) | Outcome::Skip { .. } => unreachable!("the login recipe"),
                Outcome::Reject(r) => json!({
                    "reject": r.reason.to_string(),
                    "sealed": fingerprint(r.body_ciphertext.as_bytes()),
                }),
            }
        }
        Body::Bytes(bytes) => decoded_bytes(bytes, framing, sent, limits, m),
    }
}

/// Bytes that are not UTF-8 never reach `transform` (SQS and Lambda carry text); what the
/// decoder makes of them is recorded, masked the way `transform` masks (without its
/// token-length checks).
fn decoded_bytes(
    bytes: &[u8],
    framing: Framing,
    sent: Option<&str>,
    limits: &Limits,
    m: &mut Masker,
) -> Value {
    let sent_at = Received::new(String::new(), String::new(), String::new(), sent, None).sent_at;
    match decode::decode_message(bytes, framing, limits) {
        Err(reason) => json!({"reject": reason.to_string()}),
        Ok((login, dated)) => {
            let day = dated.or(sent_at).unwrap_or_else(Utc::now).date_naive();
            let ip = login.ip.map(|ip| m.mask_ip(*ip.expose()));
            let device = login.device_id.map(|d| m.mask_device_id(d.expose()));
            row(
                [
                    json!(login.user_id),
                    json!(login.device_type),
                    json!(ip),
                    json!(device),
                ],
                (&login.locale, &login.app_version, day),
                sent_at,
                login.unknown_keys,
            )
        }
    }
}

/// `[user_id, app_version, device_type, masked_ip, masked_device_id, locale, create_date,
/// unknown_keys]`;
/// app_version a number for an integer column, a string for a text one. A row dated by the
/// clock (no `SentTimestamp`, no envelope time) has `create_date` `"today"`.
pub fn row(
    [user_id, device_type, ip, device_id]: [Value; 4],
    (locale, version, day): (&Option<String>, &Option<AppVersion>, NaiveDate),
    sent_at: Option<DateTime<Utc>>,
    unknown_keys: usize,
) -> Value {
    let version = match version {
        None => Value::Null,
        Some(AppVersion::Int(n)) => json!(n),
        Some(AppVersion::Text(s)) => json!(s),
    };
    let date = if sent_at.is_none() && day == Utc::now().date_naive() {
        "today".to_owned()
    } else {
        day.to_string()
    };
    json!({"row": [user_id, version, device_type, ip, device_id, locale, date, unknown_keys]})
}

/// The first 6 bytes of SHA-256, in hex: of a case's body (so a changed corpus shows as
/// such), and of a sealed body (sealing is AES-SIV, deterministic for a key, so the sealed
/// body is an output too, but too long to keep whole).
pub fn fingerprint(bytes: &[u8]) -> String {
    Sha256::digest(bytes)[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
