//! `user_logins` as a catalog without a database: `migrate`'s table with the column shapes a
//! [`Limits`] describes (lengths, app_version's type). Benches and tests compile the login
//! mapping against it to make login records as `run` makes them on such a table.

use std::sync::Arc;

use super::catalog::{ColumnInfo, TableInfo};
use super::compile::Catalogs;
use super::live::Live;
use super::MappingError;
use crate::decode::{AppVersionColumn, Limits};

/// A column of `base` type (oid `oid`) with `typmod` (`n + 4` for varchar(n), else -1).
fn column(name: &str, base: &str, oid: u32, typmod: i32) -> ColumnInfo {
    ColumnInfo::plain(name, base, oid, typmod)
}

/// varchar(max), or text when unbounded.
fn text(name: &str, max: Option<usize>) -> ColumnInfo {
    match max.and_then(|n| i32::try_from(n).ok()) {
        Some(n) => column(name, "varchar", 1043, n.saturating_add(4)),
        None => column(name, "text", 25, -1),
    }
}

/// int2 for a column holding at most `i16::MAX`, int4 for any other integer column.
fn app_version(kind: AppVersionColumn) -> ColumnInfo {
    match kind {
        AppVersionColumn::Integer { max } if max <= i64::from(i16::MAX) => {
            column("app_version", "int2", 21, -1)
        }
        AppVersionColumn::Integer { .. } => column("app_version", "int4", 23, -1),
        AppVersionColumn::Text { max_chars } => text("app_version", max_chars),
    }
}

/// The catalogs of `user_logins` shaped as `limits` says and of its rejects table.
pub fn catalogs(limits: &Limits) -> Catalogs {
    let table = |name: &str, columns| {
        Some(TableInfo {
            name: name.into(),
            kind: "r".into(),
            columns,
            unique_keys: vec![],
            index_leads: vec![],
        })
    };
    let logins = vec![
        text("user_id", limits.user_id),
        text("device_type", limits.device_type),
        text("masked_ip", limits.masked_ip),
        text("masked_device_id", limits.masked_device_id),
        text("locale", limits.locale),
        app_version(limits.app_version),
        column("create_date", "date", 1082, -1),
    ];
    let rejects = super::live::REJECT_COLUMNS
        .iter()
        .map(|name| column(name, "text", 25, -1))
        .collect();
    let mut c = Catalogs::new();
    c.insert("user_logins".into(), table("public.user_logins", logins));
    c.insert(
        "user_logins_rejects".into(),
        table("public.user_logins_rejects", rejects),
    );
    c
}

/// The built-in login mapping compiled for a `user_logins` of `limits`' shapes and tokens
/// under a key id of `kid_len` bytes.
pub fn compiled_for(limits: &Limits, kid_len: usize) -> Result<Live, MappingError> {
    Live::compiled(super::login::shared()?, catalogs(limits), kid_len)
}

/// [`compiled_for`] in an `Arc`, as recipes hold it.
pub fn shared_for(limits: &Limits, kid_len: usize) -> Result<Arc<Live>, MappingError> {
    compiled_for(limits, kid_len).map(Arc::new)
}
