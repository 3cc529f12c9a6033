//! The built-in login mapping: today's `user_logins` load as data (`login.toml`), compiled
//! by the same compiler as any user's file. Evaluated, it gives what today's login path
//! gives on the golden corpus (`tests/it/golden/mapped.rs`); the file's header says which
//! extensions it uses and what it still does not say.

use std::sync::{Arc, OnceLock};

use super::{Mapping, MappingError};

/// The built-in mapping, parsed once per process.
static SHARED: OnceLock<Arc<Mapping>> = OnceLock::new();

/// The file as embedded, printed by `sqs2pg mapping print`.
pub const LOGIN_TOML: &str = include_str!("login.toml");

/// The name errors about it give for its file.
pub const LOGIN_FILE: &str = "<built-in login mapping>";

/// The built-in mapping, checked.
pub fn mapping() -> Result<Mapping, MappingError> {
    Mapping::parse(LOGIN_FILE, LOGIN_TOML)
}

/// The built-in mapping, one `Arc` per process: two reads of an unchanged `user_logins`
/// compile the same mapping and so compare equal (another `Arc` would make every record
/// be made again).
pub fn shared() -> Result<Arc<Mapping>, MappingError> {
    if let Some(m) = SHARED.get() {
        return Ok(m.clone());
    }
    let parsed = Arc::new(mapping()?);
    Ok(SHARED.get_or_init(|| parsed).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::Target;

    #[test]
    fn the_login_mapping_reads_and_names_the_six_keys() {
        let m = mapping().unwrap();
        assert_eq!(m.rejects_table, "user_logins_rejects");
        let [route] = m.routes.as_slice() else {
            panic!("one route")
        };
        assert!(route.when.is_none());
        let Target::Table(t) = &route.target else {
            panic!("loads a table")
        };
        assert_eq!(t.table, "user_logins");
        let paths: Vec<String> = t
            .columns
            .iter()
            .filter_map(|c| match &c.source {
                crate::mapping::Source::Path(p) => {
                    Some(p.as_str().trim_start_matches('/').to_owned())
                }
                crate::mapping::Source::Meta(_) => None,
            })
            .collect();
        assert_eq!(paths, crate::decode::FIELDS);
        assert!(t.columns.iter().take(6).all(|c| c.required));
    }
}

#[cfg(test)]
#[path = "login_tests.rs"]
mod login_tests;
