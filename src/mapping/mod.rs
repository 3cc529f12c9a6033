//! Mappings: which events go to which tables, as a file says (the contract's "Mappings").
//!
//! [`file`](mod@file) reads and checks the TOML into a [`Mapping`] ([`spec`]); [`when`]
//! decides which route takes an event; [`catalog`] reads a target table from the live
//! database; [`compile`] turns the file and the catalogs into a [`compile::Plan`], one
//! converter per column, refusing what cannot work; [`convert`] runs a converter on one
//! value; [`eval`] runs one event through a plan, [`strict`] reads a `strict` column's value
//! as the login does, and [`keys`] counts the event keys no column names. [`login`] is
//! today's load of `user_logins` written as a mapping, reproducing today's login path (the
//! golden test); [`live`] keeps a plan with the catalogs it was compiled from, for `run`,
//! which reads it again when a table changes.
//!
//! Every error about the file names `FILE:LINE:COL`, and a compile refusal also the route
//! and the column; all of them are the user's to fix (exit 2).

pub mod catalog;
pub mod compile;
pub mod convert;
pub mod dating;
mod entry;
pub mod eval;
pub mod event;
pub mod field;
pub mod file;
pub mod index;
pub mod keys;
pub mod live;
pub mod login;
pub mod login_shape;
pub mod number;
pub mod spec;
pub mod strict;
pub mod subject;
pub mod tree;
pub mod when;

use thiserror::Error;

pub use field::{Meta, Pointer, Source};
pub use file::{As, Column, Mapping, OnConflict, Route, Target};

/// Why a mapping cannot be used.
#[derive(Debug, Error)]
pub enum MappingError {
    /// The file cannot be read.
    #[error("--mapping / SQS2PG_MAPPING: cannot read {path}: {source}")]
    Read {
        /// As given.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a valid mapping: `FILE:LINE:COL: problem`.
    #[error("{at}: {problem}")]
    File {
        /// `FILE:LINE:COL`.
        at: String,
        /// What is wrong, naming the route and key.
        problem: String,
    },
    /// The mapping does not fit the live database.
    #[error("{at}: route {route:?}{}: {problem}", column.as_ref().map(|c| format!(", column {c:?}")).unwrap_or_default())]
    Refused {
        /// `FILE:LINE:COL` of the entry at fault.
        at: String,
        /// The route's name.
        route: String,
        /// The column, when one is at fault.
        column: Option<String>,
        /// What cannot work, and what to do.
        problem: String,
    },
    /// Reading the catalog failed.
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
}

impl From<tokio_postgres::Error> for MappingError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Db(e.into())
    }
}

impl crate::error::Classified for MappingError {
    fn is_usage(&self) -> bool {
        match self {
            Self::Read { .. } | Self::File { .. } | Self::Refused { .. } => true,
            Self::Db(e) => e.is_usage(),
        }
    }
}
