//! What a checked mapping file says: routes, their tables, columns, keys, predicates.
//! [`super::file`] builds it; [`super::compile`] reads it.

use super::field::Source;
use super::when::When;

/// The rejects table when the file names none.
pub const DEFAULT_REJECTS_TABLE: &str = "user_logins_rejects";

/// A checked mapping file.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// Where the rejects of every route go.
    pub rejects_table: String,
    /// `FILE:LINE:COL` of `rejects_table`, or the file's name when it is the default.
    pub rejects_at: String,
    /// In file order: the first whose `when` holds takes an event.
    pub routes: Vec<Route>,
}

impl Mapping {
    /// Every token context its columns name, in file order, each once (`reveal` without
    /// `--column` tries them).
    pub fn token_contexts(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let tables = self.routes.iter().filter_map(|r| match &r.target {
            Target::Table(t) => Some(t),
            Target::Skip => None,
        });
        for token in tables
            .flat_map(|t| &t.columns)
            .filter_map(|c| c.token.as_deref())
        {
            if !out.contains(&token) {
                out.push(token);
            }
        }
        out
    }
}

/// One `[[route]]`.
#[derive(Clone, Debug)]
pub struct Route {
    /// `[a-z][a-z0-9_]*`.
    pub name: String,
    /// `FILE:LINE:COL` of its name.
    pub at: String,
    /// `None` takes every event.
    pub when: Option<When>,
    /// What becomes of the events it takes.
    pub target: Target,
}

/// What a route does with its events.
#[derive(Clone, Debug)]
pub enum Target {
    /// Ledgered, counted, deleted: no row.
    Skip,
    /// A row in a table.
    Table(TableRoute),
}

/// A route that loads a table.
#[derive(Clone, Debug)]
pub struct TableRoute {
    /// As written: schema-qualified or resolved by `search_path`.
    pub table: String,
    /// `FILE:LINE:COL` of `table`.
    pub table_at: String,
    /// The column naming the data subject, with its position.
    pub subject: Option<(String, String)>,
    /// The business key, when re-sends are recognised by one.
    pub key: Option<Key>,
    /// In file order.
    pub columns: Vec<Column>,
}

/// `key` and `on_conflict`.
#[derive(Clone, Debug)]
pub struct Key {
    /// Columns of a unique index, as written.
    pub columns: Vec<String>,
    /// What a second row with the same key does.
    pub on_conflict: OnConflict,
    /// `FILE:LINE:COL` of `key`.
    pub at: String,
}

/// `on_conflict`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnConflict {
    /// Keep the first row.
    Ignore,
    /// The later row replaces the mapped columns.
    Update,
}

/// `as`: how a value is read before its column's type converts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum As {
    /// An IPv4 or IPv6 address, canonicalised like the login's `ip`.
    Ip,
    /// Seconds since the epoch, for a time.
    EpochS,
    /// Milliseconds since the epoch, for a time.
    EpochMs,
    /// `MAJOR[.MINOR[.PATCH]]` as `major*10000 + minor*100 + patch` into an integer or
    /// numeric column (the login's `app_version`); verbatim into a text column.
    SemverInt,
}

impl As {
    pub(super) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ip" => Self::Ip,
            "epoch_s" => Self::EpochS,
            "epoch_ms" => Self::EpochMs,
            "semver_int" => Self::SemverInt,
            _ => return None,
        })
    }

    /// As written in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::EpochS => "epoch_s",
            Self::EpochMs => "epoch_ms",
            Self::SemverInt => "semver_int",
        }
    }
}

/// One `[route.columns]` entry.
#[derive(Clone, Debug)]
pub struct Column {
    /// The target column, as written.
    pub name: String,
    /// `FILE:LINE:COL` of its entry.
    pub at: String,
    /// Where its value comes from.
    pub source: Source,
    /// The token context, when the value is stored as its token.
    pub token: Option<String>,
    /// An absent value rejects the event (`missing_field:COL`) instead of loading NULL.
    pub required: bool,
    /// How the value is read.
    pub as_: Option<As>,
    /// `non_empty = true`: a null or absent value rejects the event (`null_NAME`), and so
    /// does the empty string (`empty_NAME`).
    pub non_empty: bool,
    /// `reason = "NAME"`: the name its reasons give instead of the column's, with the
    /// login's one-word reasons for an address and a version (`invalid_NAME`, `bad_NAME`).
    pub reason: Option<String>,
    /// `strict = true`: the value is read as the login reads its keys ([`super::strict`]).
    pub strict: bool,
}
