//! A route's table as the live catalog describes it: each column's base type (through any
//! domains, whose NOT NULL and default count), its type modifier, NOT NULL, default,
//! identity and generation; and the table's unique indexes, for `key`, and the columns an
//! index leads with, for `subject`. The name resolves as Postgres resolves it
//! (`to_regclass`: schema-qualified, or by `search_path`). [`read_catalogs`] reads every
//! table a mapping names.

use tokio_postgres::types::Type;
use tokio_postgres::GenericClient;

use super::compile::{compile, refuse, Catalogs, Plan};
use super::file::{Mapping, Target};
use super::MappingError;
use crate::db::DbError;

/// One column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnInfo {
    /// Its name.
    pub name: String,
    /// The base type's `typname` (`varchar`, `int4`, `_text`, …), through domains.
    pub base_type: String,
    /// For an array type, its element's `typname`.
    pub element: Option<String>,
    /// The type modifier (`varchar(n)` stores n + 4; numeric packs precision and scale);
    /// -1 for none. A domain's modifier when the column has none.
    pub typmod: i32,
    /// The column or one of its domains is NOT NULL.
    pub not_null: bool,
    /// The column or one of its domains has a default.
    pub has_default: bool,
    /// `GENERATED … AS IDENTITY`.
    pub identity: bool,
    /// `GENERATED ALWAYS AS (…)`.
    pub generated: bool,
    /// The declared type as `\d` shows it, for messages.
    pub shown: String,
    /// The base type's oid: what binary `COPY` encodes a value for (an array's element
    /// type travels in its encoding).
    pub base_oid: u32,
}

impl ColumnInfo {
    /// A nullable column without a default of base type `base` (oid `oid`; 0 where nothing
    /// encodes for it), `typmod` as the catalog gives it (`n + 4` for varchar(n), else -1):
    /// a catalog made without a database, for benches and tests.
    pub fn plain(name: &str, base: &str, oid: u32, typmod: i32) -> Self {
        Self {
            name: name.into(),
            base_type: base.into(),
            element: None,
            typmod,
            not_null: false,
            has_default: false,
            identity: false,
            generated: false,
            shown: base.into(),
            base_oid: oid,
        }
    }

    /// The character limit of `varchar(n)` / `char(n)` (or of their arrays).
    pub fn char_limit(&self) -> Option<usize> {
        (self.typmod >= 4).then(|| (self.typmod - 4) as usize)
    }

    /// A `numeric(p, s)`'s precision and scale.
    pub fn numeric_typmod(&self) -> Option<(i32, i32)> {
        if self.typmod < 4 {
            return None;
        }
        let packed = self.typmod - 4;
        // The scale is an 11-bit signed field since Postgres 15 (negative scales).
        let scale = ((packed & 0x7ff) ^ 1024) - 1024;
        Some(((packed >> 16) & 0xffff, scale))
    }
}

/// One table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableInfo {
    /// `schema.table`, quoted where needed.
    pub name: String,
    /// `pg_class.relkind`: `r` a table, `p` a partitioned table, `v` a view, …
    pub kind: String,
    /// In the table's order.
    pub columns: Vec<ColumnInfo>,
    /// The column lists of its valid, non-partial unique indexes on plain columns.
    pub unique_keys: Vec<Vec<String>>,
    /// The first column of each of its valid indexes: what a lookup by one column can use.
    pub index_leads: Vec<String>,
}

impl TableInfo {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name == name)
    }
}

const RELATION: &str = "
SELECT format('%I.%I', n.nspname, c.relname), c.relkind::text,
  (SELECT coalesce(json_agg(ARRAY(
            SELECT a.attname::text
              FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(num, ord)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.num
             ORDER BY k.ord)), '[]')::text
     FROM pg_index i
    WHERE i.indrelid = c.oid AND i.indisunique AND i.indisvalid
      AND i.indpred IS NULL AND i.indexprs IS NULL),
  (SELECT coalesce(array_agg(DISTINCT a.attname::text), '{}')
     FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = c.oid AND i.indisvalid)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass($1)";

const COLUMNS: &str = "
WITH RECURSIVE cols AS (
  SELECT a.attnum, a.attname::text AS name, a.atttypid AS typ, a.atttypmod AS typmod,
         a.attnotnull AS not_null, a.atthasdef AS has_default,
         a.attidentity <> '' AS identity, a.attgenerated <> '' AS generated,
         format_type(a.atttypid, a.atttypmod) AS shown
    FROM pg_attribute a
   WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped),
chain AS (
  SELECT c.attnum, t.oid, t.typtype, t.typbasetype, t.typtypmod, t.typnotnull,
         t.typdefault IS NOT NULL AS typdef, 0 AS depth
    FROM cols c JOIN pg_type t ON t.oid = c.typ
  UNION ALL
  SELECT d.attnum, t.oid, t.typtype, t.typbasetype, t.typtypmod, t.typnotnull,
         t.typdefault IS NOT NULL, d.depth + 1
    FROM chain d JOIN pg_type t ON t.oid = d.typbasetype
   WHERE d.typtype = 'd')
SELECT c.name, base.typname::text, elem.typname::text,
       CASE WHEN c.typmod <> -1 THEN c.typmod
            ELSE coalesce((SELECT d.typtypmod FROM chain d
                            WHERE d.attnum = c.attnum AND d.typtype = 'd' AND d.typtypmod <> -1
                            ORDER BY d.depth LIMIT 1), -1) END,
       c.not_null OR coalesce((SELECT bool_or(d.typtype = 'd' AND d.typnotnull) FROM chain d WHERE d.attnum = c.attnum), false),
       c.has_default OR coalesce((SELECT bool_or(d.typtype = 'd' AND d.typdef) FROM chain d WHERE d.attnum = c.attnum), false),
       c.identity, c.generated, c.shown, base.oid
  FROM cols c
  JOIN chain b ON b.attnum = c.attnum AND b.typtype <> 'd'
  JOIN pg_type base ON base.oid = b.oid
  LEFT JOIN pg_type elem ON elem.oid = base.typelem AND base.typcategory = 'A'
 ORDER BY c.attnum";

/// Reads `table` (as a mapping names it); `None` when no relation has that name.
pub async fn read(client: &impl GenericClient, table: &str) -> Result<Option<TableInfo>, DbError> {
    let Some(rel) = client
        .query_typed_opt(RELATION, &[(&table, Type::TEXT)])
        .await?
    else {
        return Ok(None);
    };
    let keys: String = rel.get(2);
    let unique_keys: Vec<Vec<String>> = serde_json::from_str(&keys)
        .map_err(|e| DbError::Incompatible(format!("unique indexes of {table}: {e}")))?;
    let columns = client
        .query_typed(COLUMNS, &[(&table, Type::TEXT)])
        .await?
        .iter()
        .map(|r| ColumnInfo {
            name: r.get(0),
            base_type: r.get(1),
            element: r.get(2),
            typmod: r.get(3),
            not_null: r.get(4),
            has_default: r.get(5),
            identity: r.get(6),
            generated: r.get(7),
            shown: r.get(8),
            base_oid: r.get(9),
        })
        .collect();
    Ok(Some(TableInfo {
        name: rel.get(0),
        kind: rel.get(1),
        columns,
        unique_keys,
        index_leads: rel.get(3),
    }))
}

/// Reads every table `mapping` names from the live database, then [`compile`](super::compile::compile)s.
pub async fn compile_live(
    mapping: &Mapping,
    client: &impl GenericClient,
    kid_len: usize,
) -> Result<Plan, MappingError> {
    compile(mapping, &read_catalogs(mapping, client).await?, kid_len)
}

/// Reads every table `mapping` names (its routes' and its rejects table) from the live
/// database.
pub async fn read_catalogs(
    mapping: &Mapping,
    client: &impl GenericClient,
) -> Result<Catalogs, MappingError> {
    let mut catalogs = Catalogs::new();
    let tables = mapping.routes.iter().filter_map(|r| match &r.target {
        Target::Table(t) => Some((t.table.as_str(), t.table_at.as_str(), Some(r.name.as_str()))),
        Target::Skip => None,
    });
    let rejects = (
        mapping.rejects_table.as_str(),
        mapping.rejects_at.as_str(),
        None,
    );
    for (t, at, route) in tables.chain([rejects]) {
        if catalogs.contains_key(t) {
            continue;
        }
        let info = read(client, t).await.map_err(|e| match &e {
            // A name Postgres cannot read as one (too many dots, another database's).
            DbError::Db { code: Some(c), .. }
                if matches!(c.as_str(), "42601" | "42602" | "0A000") =>
            {
                let problem = format!("table name {t:?} is not one Postgres reads: {e}");
                match route {
                    Some(r) => refuse(r, at, None, problem),
                    None => MappingError::File {
                        at: at.to_owned(),
                        problem: format!("rejects_table: {problem}"),
                    },
                }
            }
            _ => e.into(),
        })?;
        catalogs.insert(t.to_owned(), info);
    }
    Ok(catalogs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(typmod: i32) -> ColumnInfo {
        ColumnInfo::plain("c", "numeric", 0, typmod)
    }

    #[test]
    fn type_modifiers_unpack() {
        // numeric(10,2) and numeric(3,-2) as Postgres stores them.
        assert_eq!(col((10 << 16 | 2) + 4).numeric_typmod(), Some((10, 2)));
        assert_eq!(
            col((3 << 16 | (-2i32 & 0x7ff)) + 4).numeric_typmod(),
            Some((3, -2))
        );
        assert_eq!(col(-1).numeric_typmod(), None);
        assert_eq!(col(36).char_limit(), Some(32));
        assert_eq!(col(-1).char_limit(), None);
    }
}
