//! What failed for a column, and how a reject reason spells it.
//!
//! A reason is `CHECK:NAME` (`wrong_type:amount`), NAME the column, or the file's `reason`
//! for it. Some checks are one word with the name in it:
//! - `non_empty = true`: a null or absent value is `null_NAME`, an empty string
//!   `empty_NAME` (the login's `null_user_id`, `empty_user_id`);
//! - with `reason = "NAME"` given, an address that does not read is `invalid_NAME` and a
//!   version that does not encode `bad_NAME` (the login's `invalid_ip` for `reason = "ip"`,
//!   `bad_app_version` for `reason = "app_version"`); without it they stay
//!   `invalid_ip:COL` and `bad_version:COL`.

use std::fmt;

/// What failed; with the column it makes a reject reason (`wrong_type:amount`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Check {
    /// A `required` value is absent.
    MissingField,
    /// A key on its path appears twice.
    DuplicateField,
    /// A JSON type the column does not take.
    WrongType,
    /// The right JSON type, not a value of the column's type (a bad uuid, date, time).
    InvalidValue,
    /// A number or time beyond the column's range, precision or scale.
    OutOfRange,
    /// A string (or token) longer than the column.
    TooLong,
    /// A NUL character, which Postgres text cannot hold.
    NulCharacter,
    /// Not an IPv4 or IPv6 address.
    InvalidIp,
    /// Not a version `MAJOR[.MINOR[.PATCH]]` that encodes into the column.
    BadVersion,
    /// NULL into a NOT NULL column.
    NullValue,
    /// `non_empty`: the value is null or absent.
    Null,
    /// `non_empty`: the value is the empty string.
    Empty,
}

impl Check {
    /// The reason's prefix, in the login reasons' vocabulary.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MissingField => "missing_field",
            Self::DuplicateField => "duplicate_field",
            Self::WrongType => "wrong_type",
            Self::InvalidValue => "invalid_value",
            Self::OutOfRange => "out_of_range",
            Self::TooLong => "too_long",
            Self::NulCharacter => "nul_character",
            Self::InvalidIp => "invalid_ip",
            Self::BadVersion => "bad_version",
            Self::NullValue => "null_value",
            Self::Null => "null",
            Self::Empty => "empty",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The reason for `check` on the column called `name` in reasons; `named` when the file
/// gave that name as `reason`.
pub fn spell(check: Check, name: &str, named: bool) -> String {
    match check {
        Check::Null | Check::Empty => format!("{check}_{name}"),
        Check::InvalidIp if named => format!("invalid_{name}"),
        Check::BadVersion if named => format!("bad_{name}"),
        _ => format!("{check}:{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_spell_the_login_words_only_where_the_file_asks() {
        assert_eq!(spell(Check::WrongType, "ip", true), "wrong_type:ip");
        assert_eq!(spell(Check::InvalidIp, "ip", true), "invalid_ip");
        assert_eq!(
            spell(Check::InvalidIp, "masked_ip", false),
            "invalid_ip:masked_ip"
        );
        assert_eq!(
            spell(Check::BadVersion, "app_version", true),
            "bad_app_version"
        );
        assert_eq!(
            spell(Check::BadVersion, "app_version", false),
            "bad_version:app_version"
        );
        assert_eq!(spell(Check::Null, "user_id", false), "null_user_id");
        assert_eq!(spell(Check::Empty, "user_id", false), "empty_user_id");
    }
}
