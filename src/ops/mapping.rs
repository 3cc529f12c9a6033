//! A mapping compiled against the live database, as `mapping check` (and later `run`)
//! needs it.

use std::path::Path;

use crate::config::DbConfig;
use crate::mapping::compile::Plan;
use crate::mapping::{login, Mapping, MappingError};

/// The mapping file at `path`, else the built-in login mapping; with the name it goes by.
pub fn load(path: Option<&Path>) -> Result<(String, Mapping), MappingError> {
    match path {
        Some(p) => Ok((p.display().to_string(), Mapping::load(p)?)),
        None => Ok((login::LOGIN_FILE.to_owned(), login::mapping()?)),
    }
}

/// Compiles `mapping` against the database's catalog, for tokens under a key id of
/// `kid_len` bytes.
pub async fn check(db: &DbConfig, mapping: &Mapping, kid_len: usize) -> Result<Plan, MappingError> {
    let client = crate::db::connect(db).await?;
    crate::mapping::catalog::compile_live(mapping, &client, kid_len).await
}
