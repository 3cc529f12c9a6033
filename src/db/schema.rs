//! The tables: `migrate` creates what is missing (its DDL is `db::ddl`), and
//! [`inspect`] reads the live `user_logins` into the [`TableShape`] that transform and the
//! writers both follow, the built-in login mapping compiled against it, so an operator who
//! widens a column widens what is accepted; under a mapping file the shape is that file
//! compiled against its live tables ([`read_again`] reads either again).

use std::sync::Arc;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, GenericClient};

use super::ddl::{MIGRATION, ROLES, ROTATE_FUNCTION_PRIVILEGES};
use super::encode::{copy_encodable, ROW_COLUMNS};
use super::DbError;
use crate::decode::{AppVersionColumn, Limits};
use crate::mapping::live::Live;
use crate::mapping::MappingError;
use crate::transform::Recipe;

/// Serialises concurrent `migrate` runs from several replicas.
const MIGRATE_LOCK: i64 = 0x7371_7332_7067; // "sqs2pg"

/// The function a writer needs besides [`TABLES`] (as `to_regprocedure` names it).
pub const ROTATE_FUNCTION: &str = "sqs2pg_ledger_rotate(bigint)";

/// What `migrate` found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateReport {
    /// Tables that were created now.
    pub created: Vec<&'static str>,
    /// A mapping's own rejects table, when it was created now.
    pub created_rejects_table: Option<String>,
}

impl MigrateReport {
    /// The tables that existed before (every one of [`TABLES`] not created now).
    pub fn already_there(&self) -> Vec<&'static str> {
        TABLES
            .into_iter()
            .filter(|t| !self.created.contains(t))
            .collect()
    }
}

/// Every table the tool uses.
pub const TABLES: [&str; 7] = [
    "user_logins",
    "user_logins_rejects",
    "sqs2pg_ledger_0",
    "sqs2pg_ledger_1",
    "sqs2pg_ledger_state",
    "sqs2pg_reveal_audit",
    "sqs2pg_rekey_progress",
];

/// Fails with [`DbError::NotMigrated`] naming the first of `tables` that does not exist.
pub async fn require(client: &impl GenericClient, tables: &[&'static str]) -> Result<(), DbError> {
    match missing_tables(client, tables).await?.first() {
        Some(t) => Err(DbError::NotMigrated(t)),
        None => Ok(()),
    }
}

/// Those of `tables` that do not exist (as the search path resolves them), in order.
pub async fn missing_tables(
    client: &impl GenericClient,
    tables: &[&'static str],
) -> Result<Vec<&'static str>, DbError> {
    let missing: Vec<String> = client
        .query_typed(
            "SELECT t FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NULL",
            &[(&tables, Type::TEXT_ARRAY)],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(tables
        .iter()
        .copied()
        .filter(|t| missing.iter().any(|m| m == t))
        .collect())
}

/// Creates what is missing; never alters an existing table, except to add the audit columns
/// a newer version records (`sqs2pg_reveal_audit.fingerprints`) and the audit's trigger that
/// sets who and when ([`super::audit::TRUTHFUL_ROWS`]). With `roles`, also creates the
/// least-privilege roles and sets their grants (idempotent).
pub async fn migrate(client: &mut Client, roles: bool) -> Result<MigrateReport, DbError> {
    let tx = client.transaction().await?;
    // `IF NOT EXISTS` makes the server send a notice per table that exists: noise for the user.
    tx.batch_execute("SET LOCAL client_min_messages = warning")
        .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATE_LOCK])
        .await?;
    let created = missing_tables(&tx, &TABLES).await?;
    tx.batch_execute(MIGRATION).await?;
    tx.batch_execute(super::audit::TRUTHFUL_ROWS).await?;
    tx.batch_execute(&super::ledger::rotate_function()).await?;
    tx.batch_execute(ROTATE_FUNCTION_PRIVILEGES).await?;
    if roles {
        tx.batch_execute(ROLES).await?;
    }
    tx.commit().await?;
    Ok(MigrateReport {
        created,
        created_rejects_table: None,
    })
}

/// What the live `user_logins` accepts, read once at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableShape {
    /// Column limits and the app_version column's kind, which decode and transform check
    /// values against.
    pub limits: Limits,
    /// The live types of the columns a row fills, in `COPY` order, when binary `COPY` can
    /// encode every one; `None` sends rows through the `unnest` insert (e.g. a numeric
    /// app_version or a domain type).
    pub copy_types: Option<Vec<Type>>,
    /// What records are made for: the login mapping compiled against `user_logins`, or,
    /// under a mapping file, that file compiled against its live tables (then `limits` and
    /// `copy_types` are unused and `user_logins` need not exist).
    pub recipe: Recipe,
}

impl TableShape {
    /// The shape of a run under a mapping file.
    pub fn mapped(live: Arc<Live>) -> Self {
        Self {
            limits: Limits::default(),
            copy_types: None,
            recipe: Recipe::Mapped(live),
        }
    }

    /// What records are made for under this shape.
    pub fn recipe(&self) -> Recipe {
        self.recipe.clone()
    }

    /// The rejects table and whether it has the `route` and `subject_token` columns.
    pub fn rejects(&self) -> (&str, bool) {
        match &self.recipe {
            Recipe::Mapped(live) => (&live.plan.rejects_table, true),
            Recipe::Login(live) => {
                let table = live.catalogs.get(super::rejects::REJECTS_TABLE);
                let has = |c: &str| {
                    table
                        .and_then(Option::as_ref)
                        .and_then(|t| t.column(c))
                        .is_some()
                };
                (
                    &live.plan.rejects_table,
                    has("route") && has("subject_token"),
                )
            }
        }
    }

    /// The mapping file's plan, under one.
    pub fn mapping(&self) -> Option<&Arc<Live>> {
        match &self.recipe {
            Recipe::Mapped(live) => Some(live),
            Recipe::Login(_) => None,
        }
    }
}

/// Reads again what `known` was read from: `user_logins` for the login load, or every table
/// of the mapping (compiled again). The one place a running process learns of a changed
/// table; a mapping that no longer fits is [`DbError::Incompatible`].
pub async fn read_again(client: &Client, known: &TableShape) -> Result<TableShape, DbError> {
    let live = match &known.recipe {
        Recipe::Login(live) => return inspect(client, live.kid_len).await,
        Recipe::Mapped(live) => live,
    };
    check_ledger(client, &TABLES[2..5]).await?;
    match live.reread(client).await {
        Ok(again) => Ok(TableShape::mapped(Arc::new(again))),
        Err(MappingError::Db(e)) => Err(e),
        Err(e) => Err(DbError::Incompatible(e.to_string())),
    }
}

/// The shape of a run under `mapping`: the ledger checked, the mapping compiled against its
/// live tables for tokens under a key id of `kid_len` bytes.
pub async fn inspect_mapped(
    client: &Client,
    mapping: Arc<crate::mapping::Mapping>,
    kid_len: usize,
) -> Result<TableShape, MappingError> {
    check_ledger(client, &TABLES[2..5]).await?;
    Ok(TableShape::mapped(Arc::new(
        Live::read(mapping, client, kid_len).await?,
    )))
}

/// Checks that `tables` and the ledger's rotation function exist.
pub async fn check_ledger(client: &Client, tables: &[&'static str]) -> Result<(), DbError> {
    if let Some(t) = missing_tables(client, tables).await?.first() {
        return Err(DbError::NotMigrated(t));
    }
    // A database migrated by a version from before the function: writers could not start a
    // generation.
    let rotate: Option<String> = client
        .query_typed_one(
            "SELECT to_regprocedure($1)::text",
            &[(&ROTATE_FUNCTION, Type::TEXT)],
        )
        .await?
        .get(0);
    if rotate.is_none() {
        return Err(DbError::NotMigrated(ROTATE_FUNCTION));
    }
    Ok(())
}

/// One `user_logins` column as the catalog describes it.
struct ColumnInfo {
    name: String,
    type_name: String,
    /// `pg_type.typcategory`: `S` string, `N` numeric, …
    category: String,
    /// varchar(n) and char(n) store n + 4; -1 means unlimited.
    typmod: i32,
    oid: u32,
}

impl ColumnInfo {
    fn char_limit(&self) -> Option<usize> {
        (self.typmod >= 4).then(|| (self.typmod - 4) as usize)
    }
}

/// Reads the live `user_logins` into a [`TableShape`], the login mapping compiled against
/// it for tokens under a key id of `kid_len` bytes; fails with [`DbError::NotMigrated`]
/// when a table or the ledger's rotation function is missing and [`DbError::Incompatible`]
/// when a column cannot take our rows.
pub async fn inspect(client: &Client, kid_len: usize) -> Result<TableShape, DbError> {
    // The audit and rekey tables are only needed by reveal, mask and rekey, which report
    // them themselves.
    check_ledger(client, &TABLES[..5]).await?;
    let columns: Vec<ColumnInfo> = client
        .query_typed(
            "SELECT a.attname::text, t.typname::text, t.typcategory::text, a.atttypmod, a.atttypid
               FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
              WHERE a.attrelid = to_regclass('user_logins') AND a.attnum > 0 AND NOT a.attisdropped",
            &[],
        )
        .await?
        .iter()
        .map(|r| ColumnInfo {
            name: r.get(0),
            type_name: r.get(1),
            category: r.get(2),
            typmod: r.get(3),
            oid: r.get(4),
        })
        .collect();
    let limits = limits(&columns)?;
    let login = match login(client, kid_len).await {
        Ok(live) => live,
        Err(MappingError::Db(e)) => return Err(e),
        Err(e) => return Err(DbError::Incompatible(e.to_string())),
    };
    Ok(TableShape {
        limits,
        copy_types: copy_types(&columns),
        recipe: Recipe::Login(Arc::new(login)),
    })
}

/// The login mapping compiled against the live `user_logins`. Unlike a mapping file's
/// rejects table, `user_logins_rejects` may predate `route` and `subject_token` (a database
/// not migrated since): its rejects are then written without them, as before.
async fn login(client: &Client, kid_len: usize) -> Result<Live, MappingError> {
    let mapping = crate::mapping::login::shared()?;
    let catalogs = crate::mapping::catalog::read_catalogs(&mapping, client).await?;
    Live::compiled(mapping, catalogs, kid_len)
}

fn column<'a>(columns: &'a [ColumnInfo], name: &str) -> Result<&'a ColumnInfo, DbError> {
    columns
        .iter()
        .find(|c| c.name == name)
        .ok_or_else(|| DbError::Incompatible(format!("column {name} is missing")))
}

fn limits(columns: &[ColumnInfo]) -> Result<Limits, DbError> {
    let text_limit = |name: &str| -> Result<Option<usize>, DbError> {
        let c = column(columns, name)?;
        if c.category != "S" {
            return Err(DbError::Incompatible(format!(
                "column {name} is {}; it must be a text type",
                c.type_name
            )));
        }
        Ok(c.char_limit())
    };
    let limits = Limits {
        user_id: text_limit("user_id")?,
        device_type: text_limit("device_type")?,
        locale: text_limit("locale")?,
        masked_ip: text_limit("masked_ip")?,
        masked_device_id: text_limit("masked_device_id")?,
        app_version: app_version_column(column(columns, "app_version")?)?,
    };
    let date = column(columns, "create_date")?;
    if date.type_name != "date" {
        return Err(DbError::Incompatible(format!(
            "column create_date is {}; it must be date",
            date.type_name
        )));
    }
    Ok(limits)
}

fn app_version_column(c: &ColumnInfo) -> Result<AppVersionColumn, DbError> {
    Ok(match (c.category.as_str(), c.type_name.as_str()) {
        ("S", _) => AppVersionColumn::Text {
            max_chars: c.char_limit(),
        },
        ("N", "int2") => AppVersionColumn::Integer {
            max: i64::from(i16::MAX),
        },
        ("N", "int4" | "int8" | "numeric") => AppVersionColumn::Integer {
            max: i64::from(i32::MAX),
        },
        _ => {
            return Err(DbError::Incompatible(format!(
                "column app_version is {}; it must be an integer or a text type",
                c.type_name
            )))
        }
    })
}

/// The `COPY` types when every column a row fills has a built-in type we encode.
fn copy_types(columns: &[ColumnInfo]) -> Option<Vec<Type>> {
    ROW_COLUMNS
        .iter()
        .map(|name| {
            let ty = Type::from_oid(columns.iter().find(|c| c.name == *name)?.oid)?;
            copy_encodable(name, &ty).then_some(ty)
        })
        .collect()
}
