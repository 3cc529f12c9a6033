//! The login load as it was written by hand, before the login mapping replaced it: decode,
//! then mask. Nothing in `run` calls it. It is the oracle the golden file was recorded with
//! (`tests/golden`), which the login mapping is held to, and which the property tests
//! compare the login mapping with on generated bodies.

use std::panic::AssertUnwindSafe;

use chrono::{NaiveDate, Utc};

use crate::decode::{self, Limits, Login, RejectReason};
use crate::mask::Masker;
use crate::source::Received;

use super::{quarantine, Outcome, Row, Transformed};

/// Decodes and masks one login into its outcome, checking values against `limits` (the live
/// table's).
pub fn hand_written(msg: &Received, limits: &Limits, masker: &mut Masker) -> Transformed {
    let result = contain(|| {
        crate::failpoint::panic_if_marked(crate::failpoint::TRANSFORM, msg.body.expose());
        decode::decode_message(msg.body.expose().as_bytes(), msg.framing, limits).and_then(
            |(login, dated)| {
                let unknown = login.unknown_keys;
                let day = dated.or(msg.sent_at).unwrap_or_else(Utc::now).date_naive();
                to_row(login, day, limits, masker).map(|row| (row, unknown))
            },
        )
    });
    match result {
        Ok((row, unknown_keys)) => Transformed {
            outcome: Outcome::Row(row),
            unknown_keys,
        },
        Err(reason) => Transformed {
            outcome: Outcome::Reject(quarantine(msg, reason, None, masker)),
            unknown_keys: 0,
        },
    }
}

/// Runs `f`; a panic inside becomes `RejectReason::Internal`, so one bad message cannot
/// take the process down.
fn contain<T>(f: impl FnOnce() -> Result<T, RejectReason>) -> Result<T, RejectReason> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(Err(RejectReason::Internal))
}

fn to_row(
    login: Login,
    create_date: NaiveDate,
    limits: &Limits,
    masker: &mut Masker,
) -> Result<Row, RejectReason> {
    // Limits on the masked columns apply to the tokens, whose length follows the value's.
    let fits =
        |len: usize, limit: Option<usize>| limit.is_none_or(|max| masker.token_len(len) <= max);
    if let Some(d) = &login.device_id {
        if !fits(d.expose().len(), limits.masked_device_id) {
            return Err(RejectReason::TooLong("device_id"));
        }
    }
    if login.ip.is_some() && !fits(16, limits.masked_ip) {
        return Err(RejectReason::TooLong("ip"));
    }
    Ok(Row {
        user_id: login.user_id,
        device_type: login.device_type,
        masked_ip: login.ip.map(|ip| masker.mask_ip(*ip.expose())),
        masked_device_id: login.device_id.map(|d| masker.mask_device_id(d.expose())),
        locale: login.locale,
        app_version: login.app_version,
        create_date,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contained_panics_become_internal_error_rejects() {
        let r: Result<(), RejectReason> = contain(|| panic!("boom"));
        assert_eq!(r, Err(RejectReason::Internal));
        assert_eq!(contain(|| Ok::<_, RejectReason>(7)), Ok(7));
    }
}
