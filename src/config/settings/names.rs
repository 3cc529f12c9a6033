//! One spelling per setting: its flag, variable and file key all come from the field's name,
//! the key (`--shutdown-timeout`, `SQS2PG_SHUTDOWN_TIMEOUT`, `shutdown_timeout`), and a unit
//! in a name is spelled one way, last. The exceptions are listed here, each with its reason;
//! old spellings still read are [`super::DEPRECATED_FILE_KEYS`].

use clap::{Args, Command};

use super::{GlobalArgs, RunArgs, DEPRECATED_FILE_KEYS, GLOBAL_SETTINGS, RUN_SETTINGS};

/// Settings whose variable is not `SQS2PG_` and the key in capitals (`None`: no variable).
const OTHER_VARIABLES: &[(&str, Option<&str>, &str)] = &[
    (
        "database_url",
        Some("DATABASE_URL"),
        "the name psql's users, ORMs and platforms already set",
    ),
    (
        "until_empty",
        None,
        "a mode of one run, given on its command line",
    ),
    ("progress", None, "how one run shows itself on a terminal"),
];

/// How a unit is spelled, as the last word of a name.
const UNITS: &[&str] = &["ms", "secs", "bytes"];

/// Words that are units, in any spelling.
const UNIT_WORDS: &[&str] = &[
    "ms",
    "millis",
    "milliseconds",
    "s",
    "sec",
    "secs",
    "second",
    "seconds",
    "min",
    "mins",
    "minutes",
    "b",
    "bytes",
    "kib",
    "mib",
];

/// Words that make a name a duration, which names its unit.
const DURATIONS: &[&str] = &["timeout", "wait", "interval", "delay"];

/// Names that spell their unit otherwise, or name none, and why.
const OTHER_UNITS: &[(&str, &str)] = &[
    (
        "wait_seconds",
        "SQS's own name for it: ReceiveMessage's WaitTimeSeconds",
    ),
    (
        "shutdown_timeout",
        "seconds, as --help says; its flag and variable never named a unit, and scripts use them",
    ),
];

#[test]
fn every_setting_has_one_spelling_derived_from_its_key() {
    let tables = [
        (
            GlobalArgs::augment_args(Command::new("g")),
            GLOBAL_SETTINGS,
            "",
        ),
        (
            RunArgs::augment_args(Command::new("run")),
            RUN_SETTINGS,
            "run",
        ),
    ];
    let mut keys = vec![];
    for (command, file_settings, table) in &tables {
        for arg in command.get_arguments() {
            let key = arg.get_id().as_str();
            keys.push(key);
            let flag = key.replace('_', "-");
            assert_eq!(arg.get_long(), Some(&*flag), "{key}: its flag");
            assert_eq!(arg.get_all_aliases(), None, "{key}: a second flag");
            let variable = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let expected = match OTHER_VARIABLES.iter().find(|(k, ..)| *k == key) {
                Some((_, other, _)) => other.map(str::to_owned),
                None => Some(format!("SQS2PG_{}", key.to_uppercase())),
            };
            assert_eq!(variable, expected, "{key}: its variable");

            let words: Vec<&str> = key.split('_').collect();
            let listed = OTHER_UNITS.iter().any(|(k, _)| *k == key);
            let unit = words.iter().position(|w| UNIT_WORDS.contains(w));
            let last = words.len() - 1;
            let spelled = unit.is_some_and(|i| i == last && UNITS.contains(&words[i]));
            let duration = words.iter().any(|w| DURATIONS.contains(w));
            assert!(
                listed || (unit.is_none() && !duration) || spelled,
                "{key}: a unit, if any, is the last word and one of {UNITS:?} (a duration \
                 names one), else it is listed in OTHER_UNITS with why"
            );
            assert!(
                !(listed && spelled),
                "{key} is listed in OTHER_UNITS but follows the rule"
            );
        }
        for s in *file_settings {
            assert!(
                command.get_arguments().any(|a| a.get_id() == s.key),
                "[{table}] {} is no flag's key",
                s.key
            );
        }
        for (t, old, new) in DEPRECATED_FILE_KEYS.iter().filter(|(t, ..)| t == table) {
            assert!(
                !command.get_arguments().any(|a| a.get_id() == *old),
                "[{t}] {old} is deprecated yet a setting's key"
            );
            assert!(
                file_settings.iter().any(|s| s.key == *new),
                "[{t}] {old} is deprecated for {new}, which is no file key of the table"
            );
        }
    }
    for (key, ..) in OTHER_VARIABLES {
        assert!(
            keys.contains(key),
            "OTHER_VARIABLES lists {key}, no setting"
        );
    }
    for (key, _) in OTHER_UNITS {
        assert!(keys.contains(key), "OTHER_UNITS lists {key}, no setting");
    }
}
