//! Rows on the wire: a binary `COPY` into `user_logins` where the live column types allow
//! it, else one `unnest` array insert; rejects by `unnest` insert.

use chrono::{DateTime, NaiveDate, Utc};
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Transaction};

use super::ledger::ARRAY_INSERT_MAX;
use super::statement::Stmt;
use super::{DbError, TableShape};
use crate::config::DbStatements;
use crate::decode::{AppVersion, AppVersionColumn};
use crate::transform::{Reject, Row};

/// The columns a row fills, in `COPY` order.
pub const ROW_COLUMNS: [&str; 7] = [
    "user_id",
    "device_type",
    "masked_ip",
    "masked_device_id",
    "locale",
    "app_version",
    "create_date",
];

/// Whether binary `COPY` can write column `name` when its live type is `ty`.
pub fn copy_encodable(name: &str, ty: &Type) -> bool {
    match name {
        "app_version" => <VersionCell as ToSql>::accepts(ty),
        "create_date" => *ty == Type::DATE,
        _ => <&str as ToSql>::accepts(ty),
    }
}

/// Writes rows into `user_logins` with statements made for its live shape.
pub struct RowWriter {
    /// The `unnest` insert, whose app_version parameter is text or integer as the live
    /// column is.
    unnest: Stmt,
    text_version: bool,
    /// `COPY` into `user_logins` and the types it encodes for, when the shape allows it.
    copy: Option<(Stmt, Vec<Type>)>,
}

impl RowWriter {
    /// Makes the inserts `shape` allows on `client`, in the form `mode` says.
    pub async fn prepare(
        client: &Client,
        shape: &TableShape,
        mode: DbStatements,
    ) -> Result<Self, DbError> {
        let text_version = matches!(shape.limits.app_version, AppVersionColumn::Text { .. });
        let (version_type, version_param) = if text_version {
            ("text[]", Type::TEXT_ARRAY)
        } else {
            ("int8[]", Type::INT8_ARRAY)
        };
        let text = Type::TEXT_ARRAY;
        let unnest = Stmt::new(
            client,
            mode,
            format!(
                "INSERT INTO user_logins({})
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::{version_type}, $7::date[])",
                ROW_COLUMNS.join(", ")
            ),
            &[text.clone(), text.clone(), text.clone(), text.clone(), text, version_param, Type::DATE_ARRAY],
        )
        .await?;
        let copy = match &shape.copy_types {
            Some(types) => {
                let sql = format!(
                    "COPY user_logins({}) FROM STDIN (FORMAT binary)",
                    ROW_COLUMNS.join(", ")
                );
                Some((Stmt::new(client, mode, sql, &[]).await?, types.clone()))
            }
            None => {
                tracing::info!("user_logins has a column type binary COPY cannot encode; rows go in by array insert");
                None
            }
        };
        Ok(Self {
            unnest,
            text_version,
            copy,
        })
    }

    /// Inserts rows: one binary `COPY` where the live column types allow it and there are
    /// more than [`ARRAY_INSERT_MAX`], else one `unnest` insert. Returns the rows written.
    pub async fn insert(&self, tx: &Transaction<'_>, rows: &[&Row]) -> Result<u64, DbError> {
        if rows.is_empty() {
            return Ok(0);
        }
        if let Some((stmt, types)) = self.copy.as_ref().filter(|_| rows.len() > ARRAY_INSERT_MAX) {
            return Ok(copy_rows(tx, stmt, types, rows).await?);
        }
        let mut cols = RowColumns::default();
        for r in rows {
            cols.push(r);
        }
        let version: &(dyn ToSql + Sync) = if self.text_version {
            &cols.version_text
        } else {
            &cols.version_int
        };
        Ok(self
            .unnest
            .execute(
                tx,
                &[
                    &cols.user_id,
                    &cols.device_type,
                    &cols.masked_ip,
                    &cols.masked_device_id,
                    &cols.locale,
                    version,
                    &cols.create_date,
                ],
            )
            .await?)
    }
}

/// Binary `COPY` of rows into `user_logins`; returns the rows written.
async fn copy_rows(
    tx: &Transaction<'_>,
    stmt: &Stmt,
    types: &[Type],
    rows: &[&Row],
) -> Result<u64, tokio_postgres::Error> {
    let writer = BinaryCopyInWriter::new(stmt.copy_in(tx).await?, types);
    pin_mut!(writer);
    for r in rows {
        let version = VersionCell(r.app_version.as_ref());
        writer
            .as_mut()
            .write(&[
                &r.user_id,
                &r.device_type,
                &r.masked_ip,
                &r.masked_device_id,
                &r.locale,
                &version,
                &r.create_date,
            ])
            .await?;
    }
    writer.finish().await
}

/// `app_version` encoded for the live column's type. The decoder already bounded an integer
/// by that type's range (see [`AppVersionColumn`]), so the narrowing cannot fail in practice.
#[derive(Debug)]
struct VersionCell<'a>(Option<&'a AppVersion>);

impl ToSql for VersionCell<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self.0 {
            None => Ok(tokio_postgres::types::IsNull::Yes),
            Some(AppVersion::Int(v)) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT8 => v.to_sql(ty, out),
                _ => Err(format!("an encoded app_version cannot go into a {ty} column").into()),
            },
            Some(AppVersion::Text(s)) => s.as_str().to_sql(ty, out),
        }
    }

    fn accepts(ty: &Type) -> bool {
        matches!(*ty, Type::INT2 | Type::INT4 | Type::INT8) || <&str as ToSql>::accepts(ty)
    }

    tokio_postgres::types::to_sql_checked!();
}

/// Column arrays for one `unnest` insert into `user_logins`.
#[derive(Default)]
struct RowColumns<'a> {
    user_id: Vec<&'a str>,
    device_type: Vec<Option<&'a str>>,
    masked_ip: Vec<Option<&'a str>>,
    masked_device_id: Vec<Option<&'a str>>,
    locale: Vec<Option<&'a str>>,
    version_int: Vec<Option<i64>>,
    version_text: Vec<Option<&'a str>>,
    create_date: Vec<NaiveDate>,
}

impl<'a> RowColumns<'a> {
    fn push(&mut self, r: &'a Row) {
        self.user_id.push(&r.user_id);
        self.device_type.push(r.device_type.as_deref());
        self.masked_ip.push(r.masked_ip.as_deref());
        self.masked_device_id.push(r.masked_device_id.as_deref());
        self.locale.push(r.locale.as_deref());
        let (int, text) = match &r.app_version {
            None => (None, None),
            Some(AppVersion::Int(v)) => (Some(*v), None),
            Some(AppVersion::Text(s)) => (None, Some(s.as_str())),
        };
        self.version_int.push(int);
        self.version_text.push(text);
        self.create_date.push(r.create_date);
    }
}

/// Inserts rejects into `user_logins_rejects` or a mapping's rejects table, with the route
/// and subject token where the table has them; a message id already there is left as it is.
pub struct RejectWriter {
    insert: Stmt,
    /// The table has the `route` column and the insert fills it.
    routed: bool,
}

impl RejectWriter {
    /// Makes the insert on `client`, in the form `mode` says, into `table` (resolved and
    /// quoted); `routed` when it has the `route` and `subject_token` columns (a mapping's
    /// rejects table has them; a `user_logins_rejects` not migrated since they came may not).
    pub async fn prepare(
        client: &Client,
        mode: DbStatements,
        table: &str,
        routed: bool,
    ) -> Result<Self, DbError> {
        let (route, route_param) = match routed {
            true => (", route, subject_token", ", $6::text[], $7::text[]"),
            false => ("", ""),
        };
        let mut types = vec![
            Type::TEXT_ARRAY,
            Type::TEXT_ARRAY,
            Type::TEXT_ARRAY,
            Type::INT4_ARRAY,
            Type::TIMESTAMPTZ_ARRAY,
        ];
        if routed {
            types.extend([Type::TEXT_ARRAY, Type::TEXT_ARRAY]);
        }
        let insert = Stmt::new(
            client,
            mode,
            format!(
                "INSERT INTO {table}(message_id, reason, body_ciphertext, receive_count, sent_at{route})
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int4[], $5::timestamptz[]{route_param})
                 ON CONFLICT (message_id) DO NOTHING"
            ),
            &types,
        )
        .await?;
        Ok(Self { insert, routed })
    }

    /// Inserts `(message id, reject)` pairs: one statement, or one per
    /// [`REJECT_STATEMENT_BYTES`] of sealed bodies when they are large.
    pub async fn insert(
        &self,
        tx: &Transaction<'_>,
        rejects: &[(&str, &Reject)],
    ) -> Result<(), DbError> {
        let mut cols = RejectColumns::default();
        let mut bytes = 0;
        for (id, r) in rejects {
            cols.push(id, r);
            bytes += r.body_ciphertext.len();
            if bytes >= REJECT_STATEMENT_BYTES {
                self.insert_columns(tx, &std::mem::take(&mut cols)).await?;
                bytes = 0;
            }
        }
        if !cols.message_id.is_empty() {
            self.insert_columns(tx, &cols).await?;
        }
        Ok(())
    }

    async fn insert_columns(
        &self,
        tx: &Transaction<'_>,
        cols: &RejectColumns<'_>,
    ) -> Result<(), DbError> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![
            &cols.message_id,
            &cols.reason,
            &cols.body,
            &cols.receive_count,
            &cols.sent_at,
        ];
        if self.routed {
            params.extend([&cols.route as &(dyn ToSql + Sync), &cols.subject_token]);
        }
        self.insert.execute(tx, &params).await?;
        Ok(())
    }
}

/// Sealed body bytes per reject statement. The driver encodes a statement's parameters
/// into one buffer, so a batch of 256 KiB rejects in one statement would be a second copy of
/// the whole batch (outside the byte budget); in statements of about 1 MiB it is 1 MiB.
const REJECT_STATEMENT_BYTES: usize = 1024 * 1024;

/// Column arrays for one `unnest` insert into `user_logins_rejects`.
#[derive(Default)]
struct RejectColumns<'a> {
    message_id: Vec<&'a str>,
    /// Reasons become their stored text only here, at the edge of the database.
    reason: Vec<String>,
    body: Vec<&'a str>,
    receive_count: Vec<Option<i32>>,
    sent_at: Vec<Option<DateTime<Utc>>>,
    route: Vec<Option<&'a str>>,
    subject_token: Vec<Option<&'a str>>,
}

impl<'a> RejectColumns<'a> {
    fn push(&mut self, message_id: &'a str, r: &'a Reject) {
        self.message_id.push(message_id);
        self.reason.push(r.reason.to_string());
        self.body.push(&r.body_ciphertext);
        self.receive_count.push(r.receive_count);
        self.sent_at.push(r.sent_at);
        self.route.push(r.route.as_deref());
        self.subject_token.push(r.subject_token.as_deref());
    }
}
