//! The mapping check: the `--mapping` file compiled against the live tables, as `run` will
//! compile it before its first message.

use std::path::Path;
use std::sync::Arc;

use crate::config::{ConfigError, DbConfig};
use crate::mapping::compile::MAX_KID_LEN;
use crate::mapping::live::Live;
use crate::mapping::Mapping;
use crate::ops::check::Check;

const NAME: &str = "mapping";

/// ✓ with the routes and their tables, or ✗ with the first thing that does not compile.
pub(super) async fn check(path: &Path, db: &Result<DbConfig, ConfigError>) -> Check {
    let fix = format!(
        "`sqs2pg mapping check --mapping {}` shows each route and column; fix the file or the table",
        path.display()
    );
    let mapping = match Mapping::load(path) {
        Ok(m) => Arc::new(m),
        Err(e) => return Check::from_error(NAME, &e, &fix),
    };
    let Ok(db) = db else {
        let detail = "not compiled: no database to compile it against";
        return Check::fail(NAME, detail, fix);
    };
    let client = match crate::db::connect(db).await {
        Ok(c) => c,
        Err(e) => return Check::from_error(NAME, &e, "see the database check above"),
    };
    match Live::read(mapping, &client, MAX_KID_LEN).await {
        Ok(live) => {
            let routes: Vec<String> = live
                .plan
                .routes
                .iter()
                .map(|r| match &r.load {
                    Some(load) => format!("{} → {}", r.name, load.table),
                    None => format!("{} (skip)", r.name),
                })
                .collect();
            Check::ok(NAME, format!("{}: {}", path.display(), routes.join(", ")))
        }
        Err(e) => Check::from_error(NAME, &e, &fix),
    }
}
