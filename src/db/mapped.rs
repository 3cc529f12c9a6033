//! A mapping's rows on the wire: per route, one binary `COPY` of the batch's rows into its
//! table (only the mapped columns, so serials and defaults apply to the rest); a route with
//! a `key` copies into a temporary staging table dropped at commit, then `INSERT … SELECT
//! … ON CONFLICT (key) DO NOTHING | DO UPDATE`, the first (ignore) or last (update) row of a
//! key within the batch standing for it.

use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use futures::pin_mut;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use tokio_postgres::{Client, Transaction};

use super::statement::Stmt;
use super::DbError;
use crate::config::DbStatements;
use crate::mapping::compile::{Load, Plan};
use crate::mapping::convert::Cell;
use crate::mapping::OnConflict;
use crate::transform::MappedRow;

/// The staging table's extra column: the row's place in the batch.
const ORDER_COLUMN: &str = "sqs2pg_batch_order";

/// What one batch's mapped rows did, per route (in the plan's order).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RouteCounts {
    /// Rows written (inserted, or updated by key).
    pub rows: u64,
    /// Rows a key already held, in the table or earlier in the batch: a producer's re-send.
    pub by_key: u64,
}

/// One loading route's statements.
struct RouteWriter {
    /// Its index in the plan.
    route: usize,
    /// `COPY` into the table, or into the staging table for a keyed route.
    copy: Stmt,
    types: Vec<Type>,
    /// For a keyed route: create the staging table, then merge it into the table.
    keyed: Option<(String, Stmt)>,
}

/// Writes mapped rows with statements made for a compiled plan.
pub struct MappedWriter {
    routes: Vec<RouteWriter>,
}

/// A column name as a quoted SQL identifier (a mapping names columns as the catalog spells
/// them).
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

impl MappedWriter {
    /// Makes each loading route's statements on `client`, in the form `mode` says.
    pub async fn prepare(
        client: &Client,
        plan: &Plan,
        mode: DbStatements,
    ) -> Result<Self, DbError> {
        let mut routes = Vec::new();
        for (index, route) in plan.routes.iter().enumerate() {
            let Some(load) = &route.load else { continue };
            routes.push(RouteWriter::prepare(client, index, load, mode).await?);
        }
        Ok(Self { routes })
    }

    /// Writes `rows` route by route; the counts per route index.
    pub async fn insert(
        &self,
        tx: &Transaction<'_>,
        rows: &[&MappedRow],
    ) -> Result<Vec<(usize, RouteCounts)>, DbError> {
        let mut counts = Vec::new();
        for w in &self.routes {
            let mine: Vec<&MappedRow> = rows
                .iter()
                .copied()
                .filter(|r| r.route == w.route)
                .collect();
            if mine.is_empty() {
                continue;
            }
            counts.push((w.route, w.insert(tx, &mine).await?));
        }
        Ok(counts)
    }
}

impl RouteWriter {
    async fn prepare(
        client: &Client,
        route: usize,
        load: &Load,
        mode: DbStatements,
    ) -> Result<Self, DbError> {
        let columns: Vec<String> = load.columns.iter().map(|c| quote(&c.name)).collect();
        let list = columns.join(", ");
        let mut types: Vec<Type> = load
            .columns
            .iter()
            .map(|c| Type::from_oid(c.type_oid).unwrap_or(Type::TEXT))
            .collect();
        let Some((key, on_conflict)) = &load.key else {
            let sql = format!("COPY {}({list}) FROM STDIN (FORMAT binary)", load.table);
            return Ok(Self {
                route,
                copy: Stmt::new(client, mode, sql, &[]).await?,
                types,
                keyed: None,
            });
        };
        types.push(Type::INT4);
        let stage = format!("sqs2pg_stage_{route}");
        let create = format!(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {list}, 0::int4 AS {ORDER_COLUMN} FROM {} WITH NO DATA",
            load.table
        );
        let copy = format!("COPY {stage}({list}, {ORDER_COLUMN}) FROM STDIN (FORMAT binary)");
        let keys: Vec<String> = key.iter().map(|k| quote(k)).collect();
        let keys = keys.join(", ");
        let order = match on_conflict {
            OnConflict::Ignore => "ASC",
            OnConflict::Update => "DESC",
        };
        let updates: Vec<String> = load
            .columns
            .iter()
            .filter(|c| !key.contains(&c.name))
            .map(|c| format!("{0} = EXCLUDED.{0}", quote(&c.name)))
            .collect();
        let action = match on_conflict {
            OnConflict::Update if !updates.is_empty() => {
                format!("DO UPDATE SET {}", updates.join(", "))
            }
            _ => "DO NOTHING".to_owned(),
        };
        let merge = format!(
            "INSERT INTO {}({list}) SELECT {list} FROM (SELECT DISTINCT ON ({keys}) * FROM {stage} ORDER BY {keys}, {ORDER_COLUMN} {order}) s ON CONFLICT ({keys}) {action}",
            load.table
        );
        // The staging table exists only inside each transaction, so its statements are never
        // prepared ahead: they go unnamed with each batch.
        let unnamed = DbStatements::Unnamed;
        Ok(Self {
            route,
            copy: Stmt::new(client, unnamed, copy, &[]).await?,
            types,
            keyed: Some((create, Stmt::new(client, unnamed, merge, &[]).await?)),
        })
    }

    async fn insert(
        &self,
        tx: &Transaction<'_>,
        rows: &[&MappedRow],
    ) -> Result<RouteCounts, DbError> {
        if let Some((create, _)) = &self.keyed {
            tx.batch_execute(create).await?;
        }
        let writer = BinaryCopyInWriter::new(self.copy.copy_in(tx).await?, &self.types);
        pin_mut!(writer);
        for (order, row) in rows.iter().enumerate() {
            let cells: Vec<CellSql<'_>> = row.cells.iter().map(CellSql).collect();
            let order = order as i32;
            let mut params: Vec<&(dyn ToSql + Sync)> = cells.iter().map(|c| c as _).collect();
            if self.keyed.is_some() {
                params.push(&order);
            }
            writer.as_mut().write(&params).await?;
        }
        let copied = writer.finish().await?;
        let Some((_, merge)) = &self.keyed else {
            return Ok(RouteCounts {
                rows: copied,
                by_key: 0,
            });
        };
        let written = merge.execute(tx, &[]).await?;
        Ok(RouteCounts {
            rows: written,
            by_key: copied.saturating_sub(written),
        })
    }
}

/// A cell as binary `COPY` sends it, for the column's base type.
#[derive(Debug)]
pub struct CellSql<'a>(pub &'a Cell);

impl ToSql for CellSql<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        match self.0 {
            Cell::Null => Ok(IsNull::Yes),
            Cell::Text(s) => {
                out.put_slice(s.as_bytes());
                Ok(IsNull::No)
            }
            Cell::Int2(v) => v.to_sql(&Type::INT2, out),
            Cell::Int4(v) => v.to_sql(&Type::INT4, out),
            Cell::Int8(v) => v.to_sql(&Type::INT8, out),
            Cell::Numeric(d) => {
                out.put_slice(&d.to_pg_binary());
                Ok(IsNull::No)
            }
            Cell::Bool(v) => v.to_sql(&Type::BOOL, out),
            Cell::Uuid(u) => {
                out.put_slice(u.as_bytes());
                Ok(IsNull::No)
            }
            Cell::Date(d) => d.to_sql(&Type::DATE, out),
            Cell::Timestamptz(t) => t.to_sql(&Type::TIMESTAMPTZ, out),
            Cell::Inet(ip) => ip.to_sql(&Type::INET, out),
            Cell::Json(text) => {
                // jsonb's binary form is a version byte before the text; json's is the text.
                if *ty == Type::JSONB {
                    out.put_u8(1);
                }
                out.put_slice(text.as_bytes());
                Ok(IsNull::No)
            }
            // The array's own type, so the element type it carries is the column's.
            Cell::TextArray(items) => match ty.kind() {
                tokio_postgres::types::Kind::Array(_) => items.to_sql(ty, out),
                _ => items.to_sql(&Type::TEXT_ARRAY, out),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        // The compiler chose each cell's converter for its column's type.
        true
    }

    to_sql_checked!();
}
