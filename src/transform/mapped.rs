//! A message under a mapping file: the route that takes its event, then the route's row, a
//! skip, or the reason it is quarantined ([`crate::mapping::eval`]).

use std::panic::AssertUnwindSafe;

use crate::decode::RejectReason;
use crate::mapping::compile::Plan;
use crate::mapping::eval::{eval_message, Outcome as Evaluated};
use crate::mapping::event::Metadata;
use crate::mapping::{subject, Mapping, Meta, Source, Target};
use crate::mask::Masker;
use crate::source::receive::Wants;
use crate::source::Received;

use super::{quarantine, MappedRow, Outcome, Transformed};

/// Routes and converts one message; a panic inside becomes an `internal_error` reject.
pub fn transform(msg: &Received, plan: &Plan, masker: &mut Masker) -> Transformed {
    let extra = msg.extra.expose();
    let meta = Metadata {
        message_id: msg.message_id.clone(),
        sent_timestamp: msg.sent_at,
        receive_count: msg.receive_count,
        group_id: extra.group_id.clone(),
        attributes: extra.attributes.clone(),
        envelope: None,
    };
    let body = msg.body.expose();
    let mut unknown = 0;
    let evaluated = std::panic::catch_unwind(AssertUnwindSafe(|| {
        crate::failpoint::panic_if_marked(crate::failpoint::TRANSFORM, body);
        match eval_message(plan, body, msg.framing, meta, masker) {
            Evaluated::Row {
                route,
                cells,
                unknown_keys,
                ..
            } => {
                unknown = unknown_keys;
                // Route names are unique (the file's check), so the name finds its index.
                match plan.routes.iter().position(|r| r.name == route) {
                    Some(index) => Ok(Outcome::Mapped(MappedRow {
                        route: index,
                        cells: cells.into_iter().map(|(_, cell)| cell).collect(),
                    })),
                    None => Err((RejectReason::Internal, Some(route.to_owned()))),
                }
            }
            Evaluated::Skip { route } => Ok(Outcome::Skip {
                route: route.to_owned(),
            }),
            Evaluated::Reject { route, reason } => Err((
                RejectReason::Mapped(reason.to_string()),
                route.map(str::to_owned),
            )),
        }
    }))
    .unwrap_or(Err((RejectReason::Internal, None)));
    let outcome = match evaluated {
        Ok(o) => o,
        Err((reason, route)) => {
            let load = route
                .as_ref()
                .and_then(|name| plan.routes.iter().find(|r| &r.name == name))
                .and_then(|r| r.load.as_ref());
            let token =
                load.and_then(|l| subject::token(l, body.as_bytes(), msg.framing.envelope, masker));
            let mut reject = quarantine(msg, reason, route, masker);
            reject.subject_token = token;
            Outcome::Reject(reject)
        }
    };
    Transformed {
        outcome,
        unknown_keys: unknown,
    }
}

/// What receives must ask for so that `mapping`'s `group_id` and `attribute:NAME` have
/// their values.
pub fn wants(mapping: &Mapping) -> Wants {
    let mut wants = Wants::default();
    let whens = mapping
        .routes
        .iter()
        .filter_map(|r| r.when.as_ref().map(|w| &w.source));
    let columns = mapping.routes.iter().flat_map(|r| match &r.target {
        Target::Table(t) => t.columns.iter().map(|c| &c.source).collect(),
        Target::Skip => Vec::new(),
    });
    for source in whens.chain(columns) {
        match source {
            Source::Meta(Meta::GroupId) => wants.group_id = true,
            Source::Meta(Meta::Attribute(name)) if !wants.attributes.contains(name) => {
                wants.attributes.push(name.clone());
            }
            _ => {}
        }
    }
    wants
}
