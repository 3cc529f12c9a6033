//! A received message on its way to a commit: the message (for its receipt handle and its
//! body) and the record it became, made again when the table's limits change.

use crate::decode::RejectReason;
use crate::mapping::subject;
use crate::mask::{Column, Masker};
use crate::pii::Pii;
use crate::source::Received;
use crate::telemetry::Stats;
use crate::transform::{quarantine, transform, Outcome, Recipe, Record};

/// A received message and what it becomes. The message stays for its receipt handle (the
/// delete) and its body: a row the database refuses is quarantined from the original body.
/// A body is held once: a reject keeps only its sealed copy (4/3 of the raw size), opened
/// again in the rare case the record must be made anew.
pub struct Item {
    pub msg: Received,
    pub record: Record,
    /// What `record` was made for: a committer that learns of a changed table makes the
    /// record again.
    pub made_for: Recipe,
    /// The raw body was dropped for the reject's sealed copy.
    sealed_only: bool,
    /// The SQLSTATE with which the database refused even this message's reject: it cannot
    /// be quarantined, so nothing of it is committed and it is left on the queue.
    pub refused: Option<String>,
}

impl Item {
    /// Transforms one message as `recipe` says; also returns how many unknown keys it
    /// carried.
    pub fn new(msg: Received, recipe: &Recipe, masker: &mut Masker) -> (Self, usize) {
        let t = transform(&msg, recipe, masker);
        let mut item = Item {
            record: Record {
                message_id: msg.message_id.clone(),
                outcome: t.outcome,
            },
            msg,
            made_for: recipe.clone(),
            sealed_only: false,
            refused: None,
        };
        item.hold_once();
        (item, t.unknown_keys)
    }

    /// Makes the record again for `recipe` (a table changed), from the raw body, opened from
    /// the sealed one where only that is held.
    pub fn remake(&mut self, recipe: &Recipe, masker: &mut Masker) {
        if self.sealed_only {
            let Outcome::Reject(r) = &self.record.outcome else {
                return;
            };
            // The writing key sealed it, so it opens; if not, the reject stays as it is.
            let Ok(body) = masker.reveal(Column::Body, &r.body_ciphertext) else {
                return;
            };
            self.msg.body = Pii::new(body);
            self.sealed_only = false;
        }
        self.record.outcome = transform(&self.msg, recipe, masker).outcome;
        self.made_for = recipe.clone();
        self.hold_once();
    }

    /// Whether the record is a reject that the table's limits decided (a column since widened,
    /// or altered to another type, would take it).
    pub fn rejected_for_limits(&self) -> bool {
        let Outcome::Reject(r) = &self.record.outcome else {
            return false;
        };
        match &r.reason {
            RejectReason::BadAppVersion | RejectReason::TooLong(_) => true,
            // The login mapping's one-word reason for a version its column cannot hold.
            RejectReason::Mapped(reason) if reason == "bad_app_version" => true,
            RejectReason::Mapped(reason) => [
                "too_long:",
                "out_of_range:",
                "wrong_type:",
                "invalid_value:",
                "bad_version:",
            ]
            .iter()
            .any(|check| reason.starts_with(check)),
            _ => false,
        }
    }

    /// Quarantines a row the database refused (`database_error:<code>`) as a reject the
    /// mapping made would be: under the route that took it (a mapping file's; the login load
    /// names none) and with its subject's token, so `forget` finds it without opening it.
    pub fn refused(&mut self, code: String, masker: &mut Masker) {
        let (route, load) = match (&self.record.outcome, &self.made_for) {
            (Outcome::Mapped(row), Recipe::Mapped(live)) => {
                let route = live.plan.routes.get(row.route);
                (
                    route.map(|r| r.name.clone()),
                    route.and_then(|r| r.load.as_ref()),
                )
            }
            (Outcome::Row(_), Recipe::Login(live)) => {
                (None, live.plan.routes.first().and_then(|r| r.load.as_ref()))
            }
            _ => (None, None),
        };
        let (body, envelope) = (self.msg.body.expose().as_bytes(), self.msg.framing.envelope);
        let token = load.and_then(|load| subject::token(load, body, envelope, masker));
        self.quarantine(RejectReason::Database(code), route, masker);
        if let (Outcome::Reject(reject), Some(_)) = (&mut self.record.outcome, &token) {
            reject.subject_token = token;
        }
    }

    /// Quarantines a row the database refused, under the route that took it.
    fn quarantine(&mut self, reason: RejectReason, route: Option<String>, masker: &mut Masker) {
        if !self.sealed_only {
            self.record.outcome = Outcome::Reject(quarantine(&self.msg, reason, route, masker));
            self.hold_once();
        }
    }

    /// A reject drops its raw body.
    fn hold_once(&mut self) {
        if let Outcome::Reject(_) = &self.record.outcome {
            self.msg.body = Pii::new(String::new());
            self.sealed_only = true;
        }
    }

    /// The body bytes it holds: the raw body, or a reject's sealed copy.
    pub fn held_bytes(&self) -> usize {
        match &self.record.outcome {
            Outcome::Reject(r) if self.sealed_only => r.body_ciphertext.len(),
            _ => self.msg.body.expose().len(),
        }
    }
}

/// Transforms received messages into batch items, counting unknown keys.
pub fn to_items(
    msgs: impl IntoIterator<Item = Received>,
    recipe: &Recipe,
    masker: &mut Masker,
    stats: &Stats,
) -> Vec<Item> {
    msgs.into_iter()
        .map(|msg| {
            let (item, unknown_keys) = Item::new(msg, recipe, masker);
            stats.add_unknown_keys(unknown_keys);
            item
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reject_holds_its_sealed_body_only_and_opens_it_to_be_made_again() {
        let mut m = Masker::fixed_for_tests();
        let body = format!("not json {}", "x".repeat(3000));
        let msg = Received::new("m".into(), "r".into(), body.clone(), None, None);
        let limits = crate::decode::Limits::default();
        let login = Recipe::Login(crate::mapping::login_shape::shared_for(&limits, 1).unwrap());
        let (mut item, _) = Item::new(msg, &login, &mut m);
        assert!(item.msg.body.expose().is_empty(), "raw body dropped");
        assert!(matches!(item.record.outcome, Outcome::Reject(_)));
        item.remake(&login, &mut m);
        let Outcome::Reject(r) = &item.record.outcome else {
            panic!("still a reject")
        };
        assert_eq!(m.reveal(Column::Body, &r.body_ciphertext).unwrap(), body);
        assert!(item.msg.body.expose().is_empty(), "held once again");
    }
}
