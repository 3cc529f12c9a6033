//! The non-streaming use cases, each composing the stages it needs: [`replay`] quarantined
//! bodies, [`rekey`] old tokens, [`reveal`] and mask (audited), and the [`admin`] chores
//! (migrate, list rejects, send, make a key), [`check`], everything `run` needs, checked
//! before it starts, and [`mapping`], which compiles a mapping against the live database.
//! The CLI calls these; it runs no SQL itself.

pub mod admin;
pub mod check;
pub mod forget;
pub mod mapping;
pub mod rekey;
pub mod replay;
pub mod reveal;

use thiserror::Error;

use crate::config::ConfigError;
use crate::db::DbError;
use crate::error::Classified;
use crate::mask::kms::KmsError;
use crate::mask::RevealError;
use crate::source::SourceError;

/// Why a use case failed.
#[derive(Debug, Error)]
pub enum OpsError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Kms(#[from] KmsError),
    #[error(transparent)]
    Mapping(#[from] crate::mapping::MappingError),
    /// A quarantined body that the keyring cannot open.
    #[error("cannot open the quarantined body of message {0}: {1}. Every key that sealed a reject must be in the keyring")]
    Unopenable(String, RevealError),
    /// `reveal --reject` with an id that has no reject.
    #[error("no reject with message id {0:?}: `sqs2pg rejects list` or `select message_id from user_logins_rejects` shows them")]
    NoSuchReject(String),
    /// `send --file` that cannot be read or parsed.
    #[error("--file: {0}")]
    Input(String),
}

impl Classified for OpsError {
    /// A setting or input the user must fix (exit 2).
    fn is_usage(&self) -> bool {
        match self {
            Self::Config(e) => e.is_usage(),
            Self::Db(e) => e.is_usage(),
            Self::Source(e) => e.is_usage(),
            Self::Kms(e) => e.is_refusal(),
            Self::Mapping(e) => e.is_usage(),
            // A file that cannot be read is the user's to fix, as a bad flag is.
            Self::Input(_) => true,
            Self::Unopenable(..) | Self::NoSuchReject(_) => false,
        }
    }
}
