//! The mapping compiled against the live catalog: per route its resolved table and, per
//! mapped column, the one [`Converter`] its type calls for. Everything that cannot work is
//! refused here, before the first message, naming the file position, route and column.
//!
//! Decisions beyond the contract:
//! - `timestamp` without time zone is refused (no grammar yet declares the zone to read it
//!   in), as are types with no exact conversion (`float4`/`float8`, `money`, …);
//! - a token column must be a text type wide enough for the token of an address (`as =
//!   "ip"`) or of a one-byte value, under a key id of the given length; longer values are
//!   checked row by row (`too_long:COL`);
//! - a `meta` must suit its column: `sent_timestamp` and `message_time` a date or time, `receive_count` a
//!   number, the message id, group id and attributes text-like; an `envelope:NAME` is JSON
//!   like a path's value.

use std::collections::{BTreeMap, BTreeSet};

use super::catalog::{ColumnInfo, TableInfo};
use super::convert::{Converter, Epoch, IntWidth};
use super::field::{Meta, Source};
use super::file::{As, Column, Mapping, OnConflict, TableRoute, Target};
use super::index::Index;
use super::when::When;
use super::MappingError;

/// A compiled mapping.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Resolved `schema.table` of the rejects table.
    pub rejects_table: String,
    /// In file order.
    pub routes: Vec<RoutePlan>,
    /// What the routes read of an event, worked out once.
    pub index: Index,
}

/// One compiled route.
#[derive(Clone, Debug)]
pub struct RoutePlan {
    /// Its name.
    pub name: String,
    /// `None` takes every event.
    pub when: Option<When>,
    /// `None` for a skip route.
    pub load: Option<Load>,
}

/// What a loading route writes.
#[derive(Clone, Debug)]
pub struct Load {
    /// Resolved `schema.table`.
    pub table: String,
    /// The mapped columns, in file order; every other column is left to its default.
    pub columns: Vec<ColumnPlan>,
    /// The business key and what a second row with it does.
    pub key: Option<(Vec<String>, OnConflict)>,
    /// The column naming the data subject.
    pub subject: Option<String>,
    /// Whether an index leads with the subject column (else `forget` scans the table).
    pub subject_indexed: bool,
}

/// One mapped column.
#[derive(Clone, Debug)]
pub struct ColumnPlan {
    /// The column's name.
    pub name: String,
    /// Where its value comes from.
    pub source: Source,
    /// An absent value rejects the event.
    pub required: bool,
    /// NULL rejects the event.
    pub not_null: bool,
    /// Null, absent and `""` reject the event (`non_empty`).
    pub non_empty: bool,
    /// The name its reasons give, when the file says (`reason`).
    pub reason: Option<String>,
    /// Its value is read as the login reads its keys (`strict`).
    pub strict: bool,
    /// How its value is made.
    pub converter: Converter,
    /// Its declared type, for `mapping check`.
    pub shown_type: String,
    /// The base type's oid, which binary `COPY` encodes for.
    pub type_oid: u32,
}

/// The catalog of each table a mapping names, by the name it is written with.
pub type Catalogs = BTreeMap<String, Option<TableInfo>>;

/// The shortest key id a keyring takes: what a table is compiled for when the keyring is
/// not at hand, so that only what no key could load is refused.
pub const MIN_KID_LEN: usize = 1;

/// The longest key id a keyring takes; the width a token column must allow for when the
/// writing key is not known.
pub const MAX_KID_LEN: usize = 32;

/// A token's length for a plaintext of `len` bytes: `v1:<kid>:<base64url(16-byte tag +
/// ciphertext)>`, as [`crate::mask::Masker::token_len`] computes it for its writing key.
pub fn token_len(kid_len: usize, len: usize) -> usize {
    2 + 1 + kid_len + 1 + ((len + 16) * 4).div_ceil(3)
}

/// Compiles `mapping` against `catalogs`, for tokens under a key id of `kid_len` bytes.
pub fn compile(
    mapping: &Mapping,
    catalogs: &Catalogs,
    kid_len: usize,
) -> Result<Plan, MappingError> {
    let rejects = catalogs
        .get(&mapping.rejects_table)
        .and_then(Option::as_ref)
        .ok_or_else(|| MappingError::File {
            at: mapping.rejects_at.clone(),
            problem: format!(
                "rejects table {} does not exist: run `sqs2pg migrate`, or name an existing one in `rejects_table`",
                mapping.rejects_table
            ),
        })?;
    let routes = mapping
        .routes
        .iter()
        .map(|r| {
            let load = match &r.target {
                Target::Skip => None,
                Target::Table(t) => Some(load(&r.name, t, catalogs, kid_len)?),
            };
            Ok(RoutePlan {
                name: r.name.clone(),
                when: r.when.clone(),
                load,
            })
        })
        .collect::<Result<Vec<_>, MappingError>>()?;
    Ok(Plan {
        rejects_table: rejects.name.clone(),
        index: Index::new(&routes),
        routes,
    })
}

/// A refusal about one route.
pub(super) fn refuse(route: &str, at: &str, column: Option<&str>, problem: String) -> MappingError {
    MappingError::Refused {
        at: at.to_owned(),
        route: route.to_owned(),
        column: column.map(str::to_owned),
        problem,
    }
}

fn load(
    route: &str,
    t: &TableRoute,
    catalogs: &Catalogs,
    kid_len: usize,
) -> Result<Load, MappingError> {
    let Some(info) = catalogs.get(&t.table).and_then(Option::as_ref) else {
        let problem = format!("table {} does not exist (no relation of that name as the search_path resolves it): create it, or schema-qualify the name", t.table);
        return Err(refuse(route, &t.table_at, None, problem));
    };
    if !matches!(info.kind.as_str(), "r" | "p") {
        let problem = format!(
            "{} is not a table (relkind {}): a route loads a table",
            info.name, info.kind
        );
        return Err(refuse(route, &t.table_at, None, problem));
    }
    let columns = t
        .columns
        .iter()
        .map(|c| column_plan(route, c, info, kid_len))
        .collect::<Result<Vec<_>, _>>()?;
    let unfilled = info.columns.iter().find(|ci| {
        ci.not_null
            && !ci.has_default
            && !ci.identity
            && !ci.generated
            && !t.columns.iter().any(|c| c.name == ci.name)
    });
    if let Some(ci) = unfilled {
        let problem = format!("{}.{} is NOT NULL without a default and no entry of [route.columns] fills it: map it, or give it a default", info.name, ci.name);
        return Err(refuse(route, &t.table_at, Some(&ci.name), problem));
    }
    let key = match &t.key {
        Some(k) => {
            let want: BTreeSet<&String> = k.columns.iter().collect();
            let unique = |u: &Vec<String>| u.iter().collect::<BTreeSet<_>>() == want;
            if !info.unique_keys.iter().any(unique) {
                let problem = format!("{} has no unique index (nor primary key) on exactly ({}), which `key` needs for ON CONFLICT: create one", info.name, k.columns.join(", "));
                return Err(refuse(route, &k.at, None, problem));
            }
            Some((k.columns.clone(), k.on_conflict))
        }
        None => None,
    };
    Ok(Load {
        table: info.name.clone(),
        columns,
        key,
        subject: t.subject.as_ref().map(|(s, _)| s.clone()),
        subject_indexed: t
            .subject
            .as_ref()
            .is_some_and(|(s, _)| info.index_leads.contains(s)),
    })
}

fn column_plan(
    route: &str,
    c: &Column,
    info: &TableInfo,
    kid_len: usize,
) -> Result<ColumnPlan, MappingError> {
    let Some(ci) = info.column(&c.name) else {
        let problem = format!(
            "{} has no column {:?} (names are matched exactly, as the catalog spells them)",
            info.name, c.name
        );
        return Err(refuse(route, &c.at, Some(&c.name), problem));
    };
    let converter =
        converter(c, ci, kid_len).map_err(|p| refuse(route, &c.at, Some(&c.name), p))?;
    Ok(ColumnPlan {
        name: c.name.clone(),
        source: c.source.clone(),
        required: c.required,
        not_null: ci.not_null,
        non_empty: c.non_empty,
        reason: c.reason.clone(),
        strict: c.strict,
        converter,
        shown_type: ci.shown.clone(),
        type_oid: ci.base_oid,
    })
}

const TEXT_TYPES: [&str; 4] = ["text", "varchar", "bpchar", "citext"];

fn int_width(base: &str) -> Option<IntWidth> {
    Some(match base {
        "int2" => IntWidth::I16,
        "int4" => IntWidth::I32,
        "int8" => IntWidth::I64,
        _ => return None,
    })
}

/// The converter for entry `c` into column `ci`, or why there is none.
fn converter(c: &Column, ci: &ColumnInfo, kid_len: usize) -> Result<Converter, String> {
    if ci.generated {
        return Err(
            "is a generated column (Postgres computes it): remove it from [route.columns]".into(),
        );
    }
    if ci.identity {
        return Err(
            "is an identity column (Postgres numbers it): remove it from [route.columns]".into(),
        );
    }
    let base = ci.base_type.as_str();
    let is_text = TEXT_TYPES.contains(&base);
    let conv = match (&c.token, c.as_) {
        (Some(ctx), a) => token(ctx, a, ci, is_text, kid_len)?,
        (None, Some(As::Ip)) if base == "inet" => Converter::Inet,
        (None, Some(As::Ip)) if is_text => Converter::IpText {
            max_chars: ci.char_limit(),
        },
        (None, Some(a @ (As::EpochS | As::EpochMs))) if base == "timestamptz" => {
            Converter::Timestamptz(Some(if a == As::EpochS {
                Epoch::Seconds
            } else {
                Epoch::Millis
            }))
        }
        (None, Some(As::SemverInt)) if base == "numeric" => {
            Converter::SemverNumeric(ci.numeric_typmod())
        }
        (None, Some(As::SemverInt)) if is_text => Converter::Text {
            max_chars: ci.char_limit(),
        },
        (None, Some(As::SemverInt)) => {
            Converter::SemverInt(int_width(base).ok_or_else(|| wrong_as(As::SemverInt, ci))?)
        }
        (None, Some(a)) => return Err(wrong_as(a, ci)),
        (None, None) => by_type(ci, is_text)?,
    };
    meta_fits(&c.source, &conv, ci)?;
    Ok(conv)
}

fn wrong_as(a: As, ci: &ColumnInfo) -> String {
    let into = match a {
        As::Ip => "inet or a text type",
        As::EpochS | As::EpochMs => "timestamptz",
        As::SemverInt => "int2, int4, int8, numeric or a text type",
    };
    format!("as = {:?} loads into {into}, not {}", a.as_str(), ci.shown)
}

fn token(
    ctx: &str,
    a: Option<As>,
    ci: &ColumnInfo,
    is_text: bool,
    kid_len: usize,
) -> Result<Converter, String> {
    if !is_text {
        return Err(format!(
            "a token is text: the column is {}, make it text or varchar",
            ci.shown
        ));
    }
    let ip = match a {
        None => false,
        Some(As::Ip) => true,
        Some(other) => {
            return Err(format!(
                "as = {:?} cannot be combined with a token",
                other.as_str()
            ))
        }
    };
    let shortest = token_len(kid_len, if ip { 16 } else { 1 });
    if ci.char_limit().is_some_and(|max| max < shortest) {
        return Err(format!("{} is too narrow for its tokens: {} needs at least {shortest} characters (key ids up to {kid_len})", ci.shown, if ip { "an address's token" } else { "the token of a one-byte value" }));
    }
    Ok(Converter::Token {
        context: ctx.to_owned(),
        ip,
        max_chars: ci.char_limit(),
    })
}

fn by_type(ci: &ColumnInfo, is_text: bool) -> Result<Converter, String> {
    let base = ci.base_type.as_str();
    if is_text {
        return Ok(Converter::Text {
            max_chars: ci.char_limit(),
        });
    }
    if let Some(w) = int_width(base) {
        return Ok(Converter::Int(w));
    }
    Ok(match base {
        "numeric" => Converter::Numeric(ci.numeric_typmod()),
        "bool" => Converter::Bool,
        "uuid" => Converter::Uuid,
        "date" => Converter::Date,
        "timestamptz" => Converter::Timestamptz(None),
        "inet" => Converter::Inet,
        "json" => Converter::Json { binary: false },
        "jsonb" => Converter::Json { binary: true },
        "timestamp" => return Err("timestamp without time zone has no conversion: a time's offset would be dropped silently; make the column timestamptz".into()),
        _ if ci.element.as_deref().is_some_and(|e| TEXT_TYPES.contains(&e)) => {
            Converter::TextArray { max_chars: ci.char_limit() }
        }
        _ => return Err(format!("type {} has no conversion (text types, int2/int4/int8, numeric, boolean, uuid, date, timestamptz, inet, json, jsonb and text arrays have one)", ci.shown)),
    })
}

/// Whether a metadata value can ever convert: refused now rather than rejected per row.
fn meta_fits(source: &Source, conv: &Converter, ci: &ColumnInfo) -> Result<(), String> {
    let Source::Meta(meta) = source else {
        return Ok(());
    };
    let ok = match meta {
        Meta::Envelope(_) => true,
        Meta::SentTimestamp | Meta::MessageTime => {
            matches!(conv, Converter::Date | Converter::Timestamptz(None))
        }
        Meta::ReceiveCount => matches!(conv, Converter::Int(_) | Converter::Numeric(_)),
        Meta::MessageId | Meta::GroupId | Meta::Attribute(_) => matches!(
            conv,
            Converter::Text { .. }
                | Converter::Token { .. }
                | Converter::Uuid
                | Converter::Inet
                | Converter::IpText { .. }
                | Converter::Numeric(_)
                | Converter::SemverInt(_)
                | Converter::SemverNumeric(_)
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("meta {meta} cannot load into {}", ci.shown))
    }
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
