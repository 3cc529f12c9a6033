//! The Postgres side. [`connect`] opens connections (TLS as libpq's `sslmode`); [`schema`]
//! creates the tables and reads the live table's shape; [`write`] commits one batch in one
//! transaction with the [`ledger`] that makes redelivery a no-op, its rows encoded by
//! [`encode`]; [`rejects`] reads and replays the quarantine; [`audit`] records unmasking;
//! [`rekey`] holds rekey's queries.

pub mod audit;
pub mod connect;
pub mod encode;
pub mod ledger;
pub mod rejects;
pub mod rekey;
pub mod schema;
pub mod write;

use thiserror::Error;

pub use connect::connect;
pub use schema::TableShape;
pub use write::{BatchWriter, WriteReport};

/// A database failure, classified so the caller knows whether to retry.
#[derive(Debug, Error)]
pub enum DbError {
    /// The tables are not there.
    #[error("table {0} does not exist: run `sqs2pg migrate` first")]
    NotMigrated(&'static str),
    /// The table exists but cannot take our rows.
    #[error("user_logins cannot be used: {0}")]
    Incompatible(String),
    /// Connecting failed.
    #[error("cannot connect to Postgres at {target}: {source}; is it running? (local: scripts/services up)")]
    Connect {
        /// Host and database, no password.
        target: String,
        /// Driver error.
        source: tokio_postgres::Error,
    },
    /// A statement failed.
    #[error("Postgres error{}: {source}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Db {
        /// SQLSTATE, when the server sent one.
        code: Option<String>,
        /// Driver error.
        source: tokio_postgres::Error,
    },
}

impl From<tokio_postgres::Error> for DbError {
    fn from(source: tokio_postgres::Error) -> Self {
        let code = source.code().map(|c| c.code().to_owned());
        Self::Db { code, source }
    }
}

impl DbError {
    /// The database is there but not ready for sqs2pg: the user must act (exit 2).
    pub fn is_usage(&self) -> bool {
        matches!(self, Self::NotMigrated(_) | Self::Incompatible(_))
    }

    /// A failure caused by the data of some row (SQLSTATE class 22 or 23): retrying the same
    /// batch cannot help, isolating the row can.
    pub fn is_data(&self) -> bool {
        matches!(self, Self::Db { code: Some(c), .. } if c.starts_with("22") || c.starts_with("23"))
    }

    /// Worth retrying after a pause: connection loss, serialization, deadlock, resources,
    /// shutdown. Everything that is not a data or schema error.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connect { .. } => true,
            // No SQLSTATE: the connection or the protocol failed, not the data.
            Self::Db { code: None, .. } => true,
            Self::Db { code: Some(c), .. } => ["08", "40", "53", "57", "58"]
                .iter()
                .any(|p| c.starts_with(p)),
            _ => false,
        }
    }

    /// The SQLSTATE, if any.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Self::Db { code, .. } => code.as_deref(),
            _ => None,
        }
    }
}
