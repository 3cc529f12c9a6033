//! The built-in login load: a message through the login mapping (`mapping/login.toml`,
//! compiled against the live `user_logins`), its row then handed to the login writer as a
//! [`Row`], which batches `user_logins` rows its own way (one statement for a small batch).

use crate::decode::{AppVersion, RejectReason};
use crate::mapping::compile::Plan;
use crate::mapping::convert::Cell;
use crate::mask::Masker;
use crate::source::Received;

use super::{mapped, quarantine, MappedRow, Outcome, Row, Transformed};

/// Makes one message's `user_logins` row or reject by the compiled login mapping.
pub fn transform(msg: &Received, plan: &Plan, masker: &mut Masker) -> Transformed {
    let Transformed {
        outcome,
        unknown_keys,
    } = mapped::transform(msg, plan, masker);
    let outcome = match outcome {
        Outcome::Mapped(row) => match to_row(plan, row) {
            Some(row) => Outcome::Row(row),
            // The plan is the login mapping's, compiled against user_logins: every column
            // it fills is one of the seven, of a type read here.
            None => Outcome::Reject(quarantine(msg, RejectReason::Internal, None, masker)),
        },
        // The built-in load's rejects name no route, as before it was a mapping: the
        // summary and metrics keep their login form.
        Outcome::Reject(mut reject) => {
            reject.route = None;
            Outcome::Reject(reject)
        }
        other => other,
    };
    Transformed {
        outcome,
        unknown_keys,
    }
}

/// The login row of the login mapping's cells, by column name.
fn to_row(plan: &Plan, row: MappedRow) -> Option<Row> {
    let load = plan.routes.get(row.route)?.load.as_ref()?;
    let (mut user_id, mut create_date) = (None, None);
    let mut out = Row {
        user_id: String::new(),
        device_type: None,
        masked_ip: None,
        masked_device_id: None,
        locale: None,
        app_version: None,
        create_date: chrono::NaiveDate::MIN,
    };
    for (column, cell) in load.columns.iter().zip(row.cells) {
        match (column.name.as_str(), cell) {
            ("user_id", Cell::Text(s)) => user_id = Some(s),
            ("device_type", cell) => out.device_type = text(cell)?,
            ("masked_ip", cell) => out.masked_ip = text(cell)?,
            ("masked_device_id", cell) => out.masked_device_id = text(cell)?,
            ("locale", cell) => out.locale = text(cell)?,
            ("app_version", cell) => out.app_version = app_version(cell)?,
            ("create_date", Cell::Date(d)) => create_date = Some(d),
            _ => return None,
        }
    }
    out.user_id = user_id?;
    out.create_date = create_date?;
    Some(out)
}

/// A text column's value: `Some(None)` for NULL, `None` for a cell of another type.
fn text(cell: Cell) -> Option<Option<String>> {
    match cell {
        Cell::Null => Some(None),
        Cell::Text(s) => Some(Some(s)),
        _ => None,
    }
}

/// app_version as the login writer takes it: encoded for an integer column, verbatim for a
/// text one.
fn app_version(cell: Cell) -> Option<Option<AppVersion>> {
    Some(Some(match cell {
        Cell::Null => return Some(None),
        Cell::Text(s) => AppVersion::Text(s),
        Cell::Int2(n) => AppVersion::Int(i64::from(n)),
        Cell::Int4(n) => AppVersion::Int(i64::from(n)),
        Cell::Int8(n) => AppVersion::Int(n),
        Cell::Numeric(d) => AppVersion::Int(d.to_i64()?),
        _ => return None,
    }))
}
