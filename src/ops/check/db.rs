//! The database checks: the server answers, the tables are there, the user may write what
//! `run` writes, and `user_logins` has a shape `run` can fill.

use tokio_postgres::Client;

use super::{Check, Status};
use crate::config::{ConfigError, DbConfig};
use crate::db::schema::{self, ROTATE_FUNCTION, TABLES};
use crate::db::DbError;
use crate::decode::AppVersionColumn;

const MIGRATE: &str = "run `sqs2pg migrate`";

/// The database checks, in order; those after the connection only when it succeeded, and
/// grants and shape only when the tables they look at exist.
pub(super) async fn checks(db: &Result<DbConfig, ConfigError>) -> Vec<Check> {
    let db = match db {
        Ok(db) => db,
        Err(e) => {
            let fix = "fix --database-url / DATABASE_URL";
            return vec![Check::from_error("database", e, fix)];
        }
    };
    let client = match crate::db::connect(db).await {
        Ok(client) => client,
        Err(e) => return vec![unreachable(&e)],
    };
    let mut checks = vec![server(&client, db).await];
    let tables = tables(&client).await;
    let migrated = tables.status != Status::Fail;
    checks.push(tables);
    if migrated {
        checks.push(grants(&client).await);
        checks.push(shape(&client).await);
    }
    checks
}

/// A connection that failed, in the server's own words (a wrong password, a database that
/// does not exist) or the network's, with what to do.
fn unreachable(e: &DbError) -> Check {
    const NAME: &str = "database";
    match e {
        DbError::Connect { target, cause } => {
            let detail = format!(
                "cannot connect to {target}: {}",
                crate::db::server_words(cause)
            );
            let fix = crate::db::connect_hint(cause).trim_start_matches("; ");
            Check::from_error(NAME, e, fix).with_detail(detail)
        }
        _ => Check::from_error(NAME, e, "check DATABASE_URL"),
    }
}

impl Check {
    fn with_detail(mut self, detail: String) -> Self {
        self.detail = detail;
        self
    }
}

/// Where the connection went (password redacted), the server's version and the user.
async fn server(client: &Client, db: &DbConfig) -> Check {
    const NAME: &str = "database";
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_user::text",
            &[],
        )
        .await;
    match row {
        Ok(row) => {
            let (version, user): (String, String) = (row.get(0), row.get(1));
            let detail = format!("{}: PostgreSQL {version}, as {user}", db.redacted());
            Check::ok(NAME, detail)
        }
        Err(e) => Check::from_error(NAME, &DbError::from(e), "check DATABASE_URL"),
    }
}

/// The tables and the ledger's function `run` needs (a failure), then those only reveal,
/// mask and rekey need (a warning).
async fn tables(client: &Client) -> Check {
    const NAME: &str = "tables";
    let found = async {
        let missing = schema::missing_tables(client, &TABLES).await?;
        let rotate: Option<String> = client
            .query_one("SELECT to_regprocedure($1)::text", &[&ROTATE_FUNCTION])
            .await?
            .get(0);
        Ok::<_, DbError>((missing, rotate.is_some()))
    };
    let (mut missing, has_rotate) = match found.await {
        Ok(found) => found,
        Err(e) => return Check::from_error(NAME, &e, "check the database user's rights"),
    };
    if !has_rotate {
        missing.push(ROTATE_FUNCTION);
    }
    let (for_run, for_others): (Vec<&str>, Vec<&str>) = missing
        .into_iter()
        .partition(|t| !matches!(*t, "sqs2pg_reveal_audit" | "sqs2pg_rekey_progress"));
    if !for_run.is_empty() {
        let detail = format!("missing: {} (run needs them)", for_run.join(", "));
        Check::fail(NAME, detail, MIGRATE)
    } else if !for_others.is_empty() {
        let detail = format!(
            "missing: {} (reveal, mask and rekey need them)",
            for_others.join(", ")
        );
        Check::warn(NAME, detail, MIGRATE)
    } else {
        Check::ok(NAME, format!("{} and {ROTATE_FUNCTION}", TABLES.join(", ")))
    }
}

/// What `run` does to each table, as `has_*_privilege` can ask it (each privilege alone:
/// given a list, those functions answer whether any one is held).
const PRIVILEGES: &str = "
SELECT what FROM (VALUES
  ('INSERT on user_logins', has_table_privilege('user_logins', 'INSERT')),
  ('INSERT on user_logins_rejects', has_table_privilege('user_logins_rejects', 'INSERT')),
  ('SELECT (message_id) on user_logins_rejects',
     has_column_privilege('user_logins_rejects', 'message_id', 'SELECT')),
  ('SELECT on sqs2pg_ledger_0', has_table_privilege('sqs2pg_ledger_0', 'SELECT')),
  ('INSERT on sqs2pg_ledger_0', has_table_privilege('sqs2pg_ledger_0', 'INSERT')),
  ('SELECT on sqs2pg_ledger_1', has_table_privilege('sqs2pg_ledger_1', 'SELECT')),
  ('INSERT on sqs2pg_ledger_1', has_table_privilege('sqs2pg_ledger_1', 'INSERT')),
  ('EXECUTE on function sqs2pg_ledger_rotate(bigint)',
     has_function_privilege('sqs2pg_ledger_rotate(bigint)', 'EXECUTE'))
) AS p(what, granted) WHERE NOT granted";

/// The connected user holds every privilege `run` uses (those `migrate --roles` grants
/// `sqs2pg_ingest`).
async fn grants(client: &Client) -> Check {
    const NAME: &str = "grants";
    let lacking = async {
        let user: String = client
            .query_one("SELECT current_user::text", &[])
            .await?
            .get(0);
        let rows = client.query(PRIVILEGES, &[]).await?;
        Ok::<_, DbError>((user, rows.iter().map(|r| r.get(0)).collect::<Vec<String>>()))
    };
    match lacking.await {
        Ok((user, lacking)) if lacking.is_empty() => Check::ok(
            NAME,
            format!("{user} may insert rows and rejects, read and write the ledger and start its generations"),
        ),
        Ok((user, lacking)) => Check::fail(
            NAME,
            format!("{user} lacks {}", lacking.join(", ")),
            format!("GRANT sqs2pg_ingest TO {user} (the role `sqs2pg migrate --roles` makes), or grant what is listed"),
        ),
        Err(e) => Check::from_error(NAME, &e, "check the database user's rights"),
    }
}

/// `user_logins` as [`schema::inspect`] reads it: what `run` will write each column as.
async fn shape(client: &Client) -> Check {
    const NAME: &str = "user_logins shape";
    // The keyring is checked apart, at the same time: compiled for the shortest key id.
    match schema::inspect(client, crate::mapping::compile::MIN_KID_LEN).await {
        Ok(shape) => {
            let app_version = match shape.limits.app_version {
                AppVersionColumn::Integer { max } => format!("app_version an integer up to {max}"),
                AppVersionColumn::Text { .. } => "app_version text, as sent".to_owned(),
            };
            let how = match shape.copy_types {
                Some(_) => "rows by binary COPY",
                None => "rows by INSERT (a column type binary COPY does not encode)",
            };
            Check::ok(NAME, format!("{app_version}; {how}"))
        }
        Err(e @ DbError::Incompatible(_)) => Check::from_error(
            NAME,
            &e,
            "ALTER TABLE user_logins so the column fits (README, Tables), or point at a database `sqs2pg migrate` set up",
        ),
        Err(e) => Check::from_error(NAME, &e, MIGRATE),
    }
}
