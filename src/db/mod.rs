//! The Postgres side. [`connect`] opens connections (TLS as libpq's `sslmode`); [`schema`]
//! creates the tables and reads the live table's shape; [`write`] commits one batch in one
//! transaction with the [`ledger`] that makes redelivery a no-op, its rows encoded by
//! [`encode`]; [`rejects`] reads and replays the quarantine; [`audit`] records unmasking;
//! [`rekey`] holds rekey's queries.

pub mod audit;
pub mod connect;
mod ddl;
pub mod encode;
pub mod forget;
pub mod ledger;
pub mod mapped;
pub mod rejects;
pub mod rekey;
pub mod schema;
mod statement;
pub mod write;

use thiserror::Error;

pub use connect::connect;
pub use schema::TableShape;
pub use write::{Sink, WriteReport};

/// A database failure. [`DbError::next_step`] is the one place that decides what it means.
#[derive(Debug, Error)]
pub enum DbError {
    /// A table (or the ledger's function, named with its argument types) is not there.
    #[error("{kind} {name} does not exist: run `sqs2pg migrate` first", kind = if .0.ends_with(')') { "function" } else { "table" }, name = .0)]
    NotMigrated(&'static str),
    /// The table exists but cannot take our rows.
    #[error("user_logins cannot be used: {0}")]
    Incompatible(String),
    /// Connecting failed.
    #[error(
        "cannot connect to Postgres at {target}: {}{}",
        server_words(cause),
        connect_hint(cause)
    )]
    Connect {
        /// Host and database, no password.
        target: String,
        /// Driver error; not a `source`, since the message already says all of it.
        cause: tokio_postgres::Error,
    },
    /// A statement failed.
    #[error("Postgres error{}: {}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(), server_words(cause))]
    Db {
        /// SQLSTATE, when the server sent one.
        code: Option<String>,
        /// Driver error; not a `source`, since the message already says all of it.
        cause: tokio_postgres::Error,
    },
    /// An operation outlived its bound: the connection is taken for dead.
    #[error("no answer from Postgres within {0:?} ({1}); taking the connection for dead")]
    Timeout(std::time::Duration, &'static str),
}

/// What to do after a failure, decided by [`DbError::next_step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextStep {
    /// Open a fresh connection (and re-read the table's shape), then retry: the connection
    /// is gone or points at a node that cannot write (a demoted primary, a server shutting
    /// down or in recovery), or the table changed under the prepared statements.
    Reconnect,
    /// Pause and retry, keeping the messages held: contention (serialization, deadlock,
    /// lock timeout), exhausted resources, or something an operator must fix (a revoked
    /// grant, an internal error). Retrying cannot make it worse; rejecting would lose data.
    BackOff,
    /// The data of one row is refused: isolate it and quarantine it.
    RejectRow,
    /// A setting is wrong (database name, credentials, certificate, schema): exit 2 at
    /// start-up; mid-run the batch is held and retried until someone fixes it.
    Fix,
}

impl From<tokio_postgres::Error> for DbError {
    fn from(cause: tokio_postgres::Error) -> Self {
        let code = cause.code().map(|c| c.code().to_owned());
        Self::Db { code, cause }
    }
}

/// SQLSTATEs whose meaning is "this connection can no longer write": read-only transaction
/// (a demoted primary), admin shutdown, crash shutdown, cannot connect now (recovery),
/// protocol violation (a binary `COPY` that no longer fits the column types).
const RECONNECT_CODES: [&str; 5] = ["25006", "57P01", "57P02", "57P03", "08P01"];

/// SQLSTATEs that a changed column type produces on our statements: a protocol violation
/// or binary-format error on `COPY`, a NUL byte in text, a datatype mismatch.
const SHAPE_CODES: [&str; 4] = ["08P01", "22P03", "22021", "42804"];

impl crate::error::Classified for DbError {
    /// The database is there but not ready for sqs2pg, or the settings point at the wrong
    /// place: the user must act (exit 2).
    fn is_usage(&self) -> bool {
        self.next_step() == NextStep::Fix
    }
}

impl DbError {
    /// A failure caused by the data of some row: retrying the same batch cannot help,
    /// isolating the row can.
    pub fn is_data(&self) -> bool {
        self.next_step() == NextStep::RejectRow
    }

    /// Worth retrying (after a pause, maybe on a new connection).
    pub fn is_transient(&self) -> bool {
        matches!(self.next_step(), NextStep::Reconnect | NextStep::BackOff)
    }

    /// The failure may come from a column whose type changed while we ran.
    pub fn suggests_changed_table(&self) -> bool {
        self.sqlstate().is_some_and(|c| SHAPE_CODES.contains(&c))
    }

    /// What to do next. Unknown SQLSTATEs back off: nothing hot-loops, nothing is rejected
    /// for a reason that is not the row's.
    pub fn next_step(&self) -> NextStep {
        match self {
            Self::NotMigrated(_) | Self::Incompatible(_) => NextStep::Fix,
            Self::Connect { cause, .. } => match cause.code().map(|c| c.code()) {
                Some(c) if c == "3D000" || c.starts_with("28") => NextStep::Fix,
                _ if is_certificate_failure(cause) || is_missing_password(cause) => NextStep::Fix,
                _ => NextStep::Reconnect,
            },
            Self::Timeout(..) => NextStep::Reconnect,
            Self::Db { code: None, .. } => NextStep::Reconnect,
            Self::Db {
                code: Some(_),
                cause,
            } if cause.is_closed() => NextStep::Reconnect,
            Self::Db { code: Some(c), .. } => step_for_sqlstate(c),
        }
    }

    /// The SQLSTATE, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Db { code, .. } => code.as_deref(),
            Self::Connect { cause, .. } => cause.code().map(|c| c.code()),
            _ => None,
        }
    }
}

/// What a SQLSTATE from a statement means for the batch.
fn step_for_sqlstate(code: &str) -> NextStep {
    if RECONNECT_CODES.contains(&code) || code.starts_with("08") {
        NextStep::Reconnect
    } else if code.starts_with("22") || code.starts_with("23") {
        NextStep::RejectRow
    } else {
        NextStep::BackOff
    }
}

/// The server's own words (message, detail, hint) when it answered; the driver's chain of
/// causes when it did not. A refused row's words are cut to what cannot quote it: a data
/// error (class 22) keeps its message up to the value it would quote, a constraint error
/// (class 23) drops the detail (`Failing row contains (…)`, `Key (…)=(…)`), since a mapped
/// column, unlike the login's tokens, may hold personal data as sent.
pub(crate) fn server_words(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            if code.starts_with("22") {
                let message = db.message();
                let cut = message.split_once(": ").map_or(message, |(head, _)| head);
                return format!("{cut} (the value is not quoted: it may be personal data)");
            }
            let mut s = db.message().to_owned();
            match db.detail() {
                Some(_) if code.starts_with("23") => {
                    s.push_str(" (detail not quoted: it names the row's values)");
                }
                Some(d) => s.push_str(&format!(" (detail: {d})")),
                None => {}
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!(" (hint: {h})"));
            }
            s
        }
        None => crate::error::causes(e),
    }
}

/// What to do about a failed connection, in a few words.
pub(crate) fn connect_hint(e: &tokio_postgres::Error) -> &'static str {
    match e.code().map(|c| c.code()) {
        Some("3D000") => {
            "; check the database name in DATABASE_URL (create it, or point at one that exists)"
        }
        Some(c) if c.starts_with("28") => {
            "; check the user and password in DATABASE_URL, and the server's pg_hba.conf"
        }
        _ if is_certificate_failure(e) => {
            "; check the root certificate (sslrootcert in DATABASE_URL, --db-ca-file / SQS2PG_DB_CA_FILE, or PGSSLROOTCERT) and the host name in DATABASE_URL (sslmode=verify-ca checks the chain only)"
        }
        _ if is_missing_password(e) => {
            "; the server asks for a password and none was found: give it in DATABASE_URL, PGPASSWORD or a password file (PGPASSFILE, ~/.pgpass)"
        }
        _ => "; is it running and reachable? (local: scripts/services up)",
    }
}

/// The server asked for a password and the connection string, `PGPASSWORD` and the password
/// file had none: a setting to fix, not an outage (the driver says only "password missing").
fn is_missing_password(e: &tokio_postgres::Error) -> bool {
    crate::error::causes(e).contains("password missing")
}

/// A TLS handshake that failed on the server's certificate (unknown issuer, wrong name,
/// expired): no retry will change it.
fn is_certificate_failure(e: &tokio_postgres::Error) -> bool {
    let text = crate::error::causes(e).to_ascii_lowercase();
    text.contains("certificate")
        || text.contains("unknownissuer")
        || text.contains("notvalidforname")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_sqlstate_has_its_next_step() {
        use NextStep::*;
        for (code, step) in [
            ("25006", Reconnect), // read-only: a demoted primary
            ("57P01", Reconnect), // admin shutdown
            ("57P03", Reconnect), // cannot connect now: recovery
            ("08006", Reconnect),
            ("08P01", Reconnect),
            ("22021", RejectRow),
            ("23514", RejectRow),
            ("42501", BackOff), // a revoked grant: hold, never reject
            ("55P03", BackOff), // lock timeout
            ("40001", BackOff),
            ("40P01", BackOff),
            ("53300", BackOff),
            ("57014", BackOff), // statement timeout
            ("XX000", BackOff),
            ("ZZ999", BackOff), // unknown: back off, never hot-loop
        ] {
            assert_eq!(step_for_sqlstate(code), step, "{code}");
        }
        assert_eq!(DbError::NotMigrated("user_logins").next_step(), Fix);
        let timeout = DbError::Timeout(std::time::Duration::from_secs(1), "test");
        assert_eq!(timeout.next_step(), Reconnect);
    }
}
