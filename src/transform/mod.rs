//! What a message becomes: decode, then mask, into a [`Row`] or a [`Reject`]; or, under a
//! mapping file, the route's row or skip ([`mapped`]). Pure and synchronous, like the steps
//! it composes; a panic inside becomes a reject (`internal_error`), so no body can take the
//! process down.

mod login;
mod mapped;
pub mod reference;

pub use mapped::wants;

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use crate::decode::{AppVersion, RejectReason};
use crate::mapping::convert::Cell;
use crate::mapping::live::Live;
use crate::mask::Masker;
use crate::source::Received;

/// One `user_logins` row, already masked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// Never empty.
    pub user_id: String,
    /// As sent.
    pub device_type: Option<String>,
    /// The ip's token (`v1:<kid>:…`).
    pub masked_ip: Option<String>,
    /// The device id's token.
    pub masked_device_id: Option<String>,
    /// As sent.
    pub locale: Option<String>,
    /// Encoded or verbatim, per the column's type.
    pub app_version: Option<AppVersion>,
    /// UTC date of `SentTimestamp` (or of the envelope's time, `--create-date-from envelope`).
    pub create_date: NaiveDate,
}

/// What a message is made for: the built-in login mapping compiled against the live
/// `user_logins`, whose rows the login writer takes, or a mapping file's plan compiled
/// against its live tables. Two recipes are equal when the tables they were read from are:
/// a record made for another is made again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recipe {
    /// The built-in login load.
    Login(Arc<Live>),
    /// A mapping file's routes.
    Mapped(Arc<Live>),
}

/// A mapped route's row: the cells of its mapped columns, in the plan's column order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedRow {
    /// The route's index in the plan.
    pub route: usize,
    /// One per mapped column.
    pub cells: Vec<Cell>,
}

/// One rejects-table entry; the body is already sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reject {
    /// Why; stored as its machine-readable text (`missing_field:user_id`).
    pub reason: RejectReason,
    /// Sealed body (`reveal` opens it).
    pub body_ciphertext: String,
    /// `ApproximateReceiveCount`.
    pub receive_count: Option<i32>,
    /// `SentTimestamp`.
    pub sent_at: Option<DateTime<Utc>>,
    /// The mapped route that took it; `None` for the login load and for an event no route
    /// took.
    pub route: Option<String>,
    /// The token of its data subject (context [`crate::mapping::subject::CONTEXT`]) when the
    /// route names a subject and the event holds it: what `forget` finds it by unopened.
    pub subject_token: Option<String>,
}

/// What a message becomes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A `user_logins` row.
    Row(Row),
    /// A mapped route's row.
    Mapped(MappedRow),
    /// A skip route took it: ledgered and deleted, no row.
    Skip {
        /// The route's name.
        route: String,
    },
    /// A quarantined message.
    Reject(Reject),
}

/// A message id and its outcome: what the database writes, keyed by the id the ledger
/// remembers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// SQS message id.
    pub message_id: String,
    /// What to write.
    pub outcome: Outcome,
}

/// A message's outcome and what decoding noticed on the way.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transformed {
    /// The row or the reject.
    pub outcome: Outcome,
    /// Keys beyond the six that the body carried (ignored, counted).
    pub unknown_keys: usize,
}

/// Makes one message's outcome as `recipe` says. Never panics.
pub fn transform(msg: &Received, recipe: &Recipe, masker: &mut Masker) -> Transformed {
    match recipe {
        Recipe::Login(live) => login::transform(msg, &live.plan, masker),
        Recipe::Mapped(live) => mapped::transform(msg, &live.plan, masker),
    }
}

/// The reject of a message: its whole body sealed, with the reason. Also used when the
/// database refuses a row that decoded.
pub fn quarantine(
    msg: &Received,
    reason: RejectReason,
    route: Option<String>,
    masker: &mut Masker,
) -> Reject {
    Reject {
        reason,
        body_ciphertext: masker.seal_body(msg.body.expose().as_bytes()),
        receive_count: msg.receive_count,
        sent_at: msg.sent_at,
        route,
        subject_token: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Limits;
    use crate::mapping::login_shape;

    /// The tests' masker's key id, `t`.
    const KID_LEN: usize = 1;

    fn login_recipe(limits: &Limits) -> Recipe {
        Recipe::Login(login_shape::shared_for(limits, KID_LEN).expect("the login mapping compiles"))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// The login load over arbitrary bodies: never a panic (not even a contained one),
        /// always one outcome, and a reject's sealed body opens back to the input.
        #[test]
        fn transform_never_panics(body in proptest::prelude::any::<String>(), json_ish in "[{}\\[\\]\":,a-z0-9_.\\\\ -]{0,200}") {
            let mut m = Masker::fixed_for_tests();
            let recipe = login_recipe(&Limits::default());
            for b in [body, json_ish] {
                let msg = Received::new("m".into(), "r".into(), b.clone(), None, None);
                match transform(&msg, &recipe, &mut m).outcome {
                    Outcome::Row(r) => proptest::prop_assert!(!r.user_id.is_empty()),
                    Outcome::Mapped(_) | Outcome::Skip { .. } => proptest::prop_assert!(false, "a login row or a reject"),
                    Outcome::Reject(r) => {
                        // `transform` turns a panic into an internal_error reject, so that is
                        // how a panic shows here.
                        proptest::prop_assert_ne!(r.reason, RejectReason::Internal);
                        proptest::prop_assert_eq!(m.reveal(crate::mask::Column::Body, &r.body_ciphertext).unwrap(), b);
                    }
                }
            }
        }
    }

    fn outcome(body: &str, limits: &Limits, m: &mut Masker) -> Result<Row, String> {
        // SentTimestamp 2024-03-05T00:00:00Z: the row's create_date.
        let msg = Received::new(
            "m".into(),
            "r".into(),
            body.into(),
            Some("1709596800000"),
            None,
        );
        match transform(&msg, &login_recipe(limits), m).outcome {
            Outcome::Row(row) => Ok(row),
            Outcome::Reject(r) => Err(r.reason.to_string()),
            Outcome::Mapped(_) | Outcome::Skip { .. } => panic!("a login row or a reject"),
        }
    }

    fn login_body(ip: &str, device_id: &str) -> String {
        format!(
            r#"{{"user_id":"u1","app_version":"2.3.0","device_type":"ios","ip":{ip},"locale":"RU","device_id":{device_id}}}"#
        )
    }

    #[test]
    fn a_row_holds_each_field_and_the_tokens_of_ip_and_device_id() {
        let mut m = Masker::fixed_for_tests();
        let row = outcome(
            &login_body(r#""1.2.3.4""#, r#""d-1""#),
            &Limits::default(),
            &mut m,
        )
        .unwrap();
        assert_eq!(
            (
                row.user_id.as_str(),
                row.device_type.as_deref(),
                row.locale.as_deref()
            ),
            ("u1", Some("ios"), Some("RU"))
        );
        assert_eq!(row.app_version, Some(AppVersion::Int(20300)));
        assert_eq!(
            row.create_date,
            NaiveDate::from_ymd_opt(2024, 3, 5).unwrap()
        );
        let (ip, device) = (row.masked_ip.unwrap(), row.masked_device_id.unwrap());
        assert_eq!(m.reveal(crate::mask::Column::Ip, &ip).unwrap(), "1.2.3.4");
        assert_eq!(
            m.reveal(crate::mask::Column::DeviceId, &device).unwrap(),
            "d-1"
        );
    }

    #[test]
    fn token_limits_reject_what_would_not_fit_and_pass_what_does() {
        let mut m = Masker::fixed_for_tests();
        let ip_token = m.token_len(16);
        let limits = |ip: usize, device: usize| Limits {
            masked_ip: Some(ip),
            masked_device_id: Some(device),
            ..Limits::default()
        };
        let body = login_body(r#""1.2.3.4""#, r#""12345""#);
        let exact = limits(ip_token, m.token_len(5));
        assert!(
            outcome(&body, &exact, &mut m).is_ok(),
            "tokens of exactly the limit fit"
        );
        assert_eq!(
            outcome(&body, &limits(ip_token, m.token_len(5) - 1), &mut m),
            Err("too_long:device_id".into())
        );
        // A null value makes no token, so no limit applies to it.
        let nulls = login_body("null", "null");
        assert!(outcome(&nulls, &limits(ip_token, m.token_len(1)), &mut m).is_ok());
        let longer = login_body(r#""1.2.3.4""#, r#""12""#);
        assert_eq!(
            outcome(&longer, &limits(ip_token, m.token_len(1)), &mut m),
            Err("too_long:device_id".into())
        );
        // No address's token fits: refused before the first message, not row by row.
        let narrow = login_shape::compiled_for(&limits(ip_token - 1, 100), KID_LEN);
        assert!(narrow.unwrap_err().to_string().contains("too narrow"));
    }
}
