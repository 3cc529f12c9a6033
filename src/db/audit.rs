//! The reveal audit: every unmasking (`reveal`, `reveal --reject`) and forward lookup
//! (`mask`) writes one row to `sqs2pg_reveal_audit` *before* anything is printed. The row
//! says who (database user, OS user, host), why (the required `--reason`), what (action,
//! column), how much (how many values) and whose: the SHA-256 of every token opened or made
//! (of the message id for a quarantined body), so "was this person's data revealed, when, by
//! whom, why" is one query. Never the values themselves.

use sha2::{Digest, Sha256};
use tokio_postgres::Client;

use super::DbError;

/// What is about to be opened or looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry<'a> {
    /// `reveal`, `reveal_reject` or `mask`.
    pub action: &'static str,
    /// The column or token context (`ip`, `device_id`, `body`, a mapping's `email`, …), or
    /// `any` when reveal tried each.
    pub column: &'a str,
    /// The operator's stated reason.
    pub reason: &'a str,
    /// How many values.
    pub values: i32,
    /// [`fingerprint`] of each token (or message id) concerned, in input order.
    pub fingerprints: Vec<String>,
}

/// Lower-case hex SHA-256 of a token or message id: what the audit stores to say whose data
/// was concerned. A token is already ciphertext, so its hash reveals nothing more; it matches
/// Postgres's own `encode(sha256(token::bytea), 'hex')`, so the audit joins to the tables.
pub fn fingerprint(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What makes an audit row tell the truth whoever inserts it, run by every `migrate` (so an
/// older database is upgraded): `db_user` and `at` are set here from the session, whatever
/// the INSERT says. `session_user` is the login that authenticated (a `SET ROLE` does not
/// change it); `clock_timestamp()`, not `now()`, so holding a transaction open does not
/// backdate a row. The function runs as the caller (no privilege to misuse) with a pinned
/// `search_path`. Column grants (`migrate --roles`) keep the revealer from naming `id`,
/// `at` or `db_user` at all.
pub(super) const TRUTHFUL_ROWS: &str = "
CREATE OR REPLACE FUNCTION sqs2pg_reveal_audit_stamp() RETURNS trigger
  LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
  NEW.db_user := session_user;
  NEW.at := clock_timestamp();
  RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION sqs2pg_reveal_audit_stamp() FROM PUBLIC;
-- Created once: dropping it on every migrate would lock the audit against reveals.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_trigger WHERE tgname = 'sqs2pg_reveal_audit_stamp'
                    AND tgrelid = 'sqs2pg_reveal_audit'::regclass) THEN
    CREATE TRIGGER sqs2pg_reveal_audit_stamp BEFORE INSERT ON sqs2pg_reveal_audit
      FOR EACH ROW EXECUTE FUNCTION sqs2pg_reveal_audit_stamp();
  END IF;
END
$$;
";

/// The audit table's schema, quoted, as the search path finds it but for a temporary table
/// (which the session itself could have made to stand in for the real one).
const AUDIT_SCHEMA: &str = "
SELECT pg_catalog.quote_ident(n.nspname)
  FROM unnest(pg_catalog.current_schemas(false)) WITH ORDINALITY AS p(schema, position)
  JOIN pg_catalog.pg_namespace n ON n.nspname = p.schema
  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid
 WHERE c.relname = 'sqs2pg_reveal_audit' AND c.relpersistence <> 't'
 ORDER BY p.position LIMIT 1";

/// Writes the audit row into the table the catalog names (schema-qualified). Callers print
/// nothing unless this succeeds.
pub async fn record(client: &Client, entry: &AuditEntry<'_>) -> Result<(), DbError> {
    let schema: String = client
        .query_opt(AUDIT_SCHEMA, &[])
        .await?
        .ok_or(DbError::NotMigrated("sqs2pg_reveal_audit"))?
        .try_get(0)?;
    let os_user = whoami::username().unwrap_or_else(|_| "unknown".into());
    let host = whoami::hostname().unwrap_or_else(|_| "unknown".into());
    // No RETURNING: the revealer role may append to the audit but not read it. Only the
    // columns it is granted: who and when are the database's to say.
    let insert = format!(
        "INSERT INTO {schema}.sqs2pg_reveal_audit
           (os_user, host, action, column_name, reason, values_count, fingerprints)
         VALUES ($1, $2, $3, $4, $5, $6, $7)"
    );
    client
        .execute(
            &insert,
            &[
                &os_user,
                &host,
                &entry.action,
                &entry.column,
                &entry.reason,
                &entry.values,
                &entry.fingerprints,
            ],
        )
        .await
        .map_err(|e| match e.code() {
            Some(&tokio_postgres::error::SqlState::UNDEFINED_COLUMN) => {
                DbError::NotMigrated("sqs2pg_reveal_audit.fingerprints")
            }
            _ => e.into(),
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fingerprint is plain SHA-256 hex, so anyone can recompute it from a token.
    #[test]
    fn fingerprint_is_sha256_hex() {
        assert_eq!(
            fingerprint("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
