//! What rekey walks, read off a compiled mapping: every table a route loads with its token
//! columns and their contexts, then the rejects table's sealed bodies and subject tokens.

use tokio_postgres::Client;

use crate::db::rekey::{self as queries, Cursor, TokenColumn, TokenTable};
use crate::db::DbError;
use crate::mapping::compile::Plan;
use crate::mapping::convert::Converter;
use crate::mapping::subject;
use crate::mask::{Column, Context};

/// The tables and the rejects table of one mapping.
#[derive(Debug, Clone)]
pub struct Targets {
    /// Each table with token columns once (two routes may load one table), in the order
    /// the mapping first names them.
    pub tables: Vec<TokenTable>,
    /// The rejects table: its sealed bodies and, where it has them, subject tokens.
    pub rejects: TokenTable,
}

/// Every token column each table of `plan` is loaded with, by the table's SQL name; a
/// column two routes load is listed once, under every context they give it.
fn token_columns(plan: &Plan) -> Vec<(String, Vec<TokenColumn>)> {
    let mut tables: Vec<(String, Vec<TokenColumn>)> = Vec::new();
    for load in plan.routes.iter().filter_map(|r| r.load.as_ref()) {
        let at = match tables.iter().position(|(t, _)| *t == load.table) {
            Some(at) => at,
            None => {
                tables.push((load.table.clone(), Vec::new()));
                tables.len() - 1
            }
        };
        for c in &load.columns {
            let Converter::Token {
                context, max_chars, ..
            } = &c.converter
            else {
                continue;
            };
            let column = TokenColumn {
                name: c.name.clone(),
                context: Context::named(context),
                limit: *max_chars,
            };
            if !tables[at].1.contains(&column) {
                tables[at].1.push(column);
            }
        }
    }
    tables.retain(|(_, columns)| !columns.is_empty());
    tables
}

/// The targets of `plan` in the live database.
pub async fn read(client: &Client, plan: &Plan) -> Result<Targets, DbError> {
    let mut tables = Vec::new();
    for (table, columns) in token_columns(plan) {
        tables.push(TokenTable {
            name: queries::regclass(client, &table).await?,
            columns,
            cursor: Cursor::Ctid,
        });
    }
    let name = queries::regclass(client, &plan.rejects_table).await?;
    let mut columns = vec![TokenColumn {
        name: "body_ciphertext".into(),
        context: Column::Body.into(),
        limit: None,
    }];
    if queries::has_column(client, &name, "subject_token").await? {
        columns.push(TokenColumn {
            name: "subject_token".into(),
            context: Context::named(subject::CONTEXT),
            limit: None,
        });
    }
    let rejects = TokenTable {
        name,
        columns,
        cursor: Cursor::MessageId,
    };
    Ok(Targets { tables, rejects })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::compile::{Load, RoutePlan};

    fn load(table: &str, tokens: &[(&str, &str)]) -> RoutePlan {
        let columns = tokens
            .iter()
            .map(|(name, context)| crate::mapping::compile::ColumnPlan {
                name: (*name).into(),
                source: crate::mapping::Source::Meta(crate::mapping::Meta::MessageId),
                required: false,
                not_null: false,
                non_empty: false,
                reason: None,
                strict: false,
                converter: Converter::Token {
                    context: (*context).into(),
                    ip: false,
                    max_chars: None,
                },
                shown_type: "text".into(),
                type_oid: 25,
            })
            .collect();
        RoutePlan {
            name: table.into(),
            when: None,
            load: Some(Load {
                table: table.into(),
                columns,
                key: None,
                subject: None,
                subject_indexed: false,
            }),
        }
    }

    #[test]
    fn a_table_two_routes_load_is_walked_once_with_every_token_column() {
        let routes = vec![
            load("public.a", &[("email", "email"), ("ip", "ip")]),
            load("public.b", &[]),
            load("public.a", &[("email", "email"), ("phone", "phone")]),
        ];
        let plan = Plan {
            rejects_table: "public.rejects".into(),
            index: crate::mapping::index::Index::new(&routes),
            routes,
        };
        let tables = token_columns(&plan);
        let names: Vec<(&str, Vec<&str>)> = tables
            .iter()
            .map(|(t, cs)| (t.as_str(), cs.iter().map(|c| c.name.as_str()).collect()))
            .collect();
        assert_eq!(names, vec![("public.a", vec!["email", "ip", "phone"])]);
        assert_eq!(tables[0].1[1].context, Context::Column(Column::Ip));
    }
}
