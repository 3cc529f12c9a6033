//! The README's settings table says what the tables here say: for each setting the file may
//! set, a row names its flag (`run --x` for `run`'s), then its variable, then the default
//! `--help` shows (as code, or followed by a gloss such as `(64 MiB)`).

use clap::CommandFactory;

use super::{Setting, GLOBAL_SETTINGS, RUN_SETTINGS};

/// The cells of the README's row for `flag` (`--x` or `run --x`, then a space or the end of
/// the code span).
fn row<'a>(readme: &'a str, flag: &str) -> Option<Vec<&'a str>> {
    let start = format!("| `{flag}");
    readme
        .lines()
        .find(|l| {
            l.strip_prefix(&start)
                .is_some_and(|rest| rest.starts_with(['`', ' ']))
        })
        .map(|l| l.split(" | ").collect())
}

#[test]
fn the_readme_settings_table_agrees_with_the_settings_tables() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let cli = crate::cli::Cli::command();
    let run = cli.find_subcommand("run").expect("run");
    let tables: [(&clap::Command, &str, &[Setting]); 2] =
        [(&cli, "", GLOBAL_SETTINGS), (run, "run ", RUN_SETTINGS)];
    for (command, prefix, settings) in tables {
        for s in settings {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == s.key)
                .unwrap_or_else(|| panic!("{} is no flag's id", s.key));
            let flag = format!("{prefix}--{}", arg.get_long().expect("a long flag"));
            let cells = row(&readme, &flag).unwrap_or_else(|| panic!("no README row for {flag}"));
            let env = arg.get_env().expect("a variable").to_string_lossy();
            assert_eq!(cells.get(1), Some(&&*format!("`{env}`")), "{flag}");
            if let Some(default) = arg.get_default_values().first() {
                let default = default.to_string_lossy();
                let stated = |c: &&str| {
                    *c == default
                        || *c == format!("`{default}`")
                        || c.starts_with(&format!("{default} "))
                };
                assert!(
                    cells.get(2).is_some_and(stated),
                    "{flag}: README's default is not {default}: {cells:?}"
                );
            }
        }
    }
}
