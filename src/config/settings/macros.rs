//! The `settings!` macro the table in [`super`] is written in, and what it says about each
//! setting the configuration file may set.

/// How the configuration file holds a setting, and how `sqs2pg config` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A TOML string, shown as its flag took it.
    Text,
    /// A TOML integer.
    Integer,
    /// The database's connection string: a TOML string, shown redacted (commented out when
    /// it holds a password), and never kept as parsed, since it may hold one.
    Url,
}

/// A setting the configuration file may set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Setting {
    /// Its TOML key, which is also the clap id of its flag.
    pub key: &'static str,
    /// How the file holds it and `config` shows it.
    pub kind: Kind,
}

/// A setting and, when the file sets it, the text its flag would take and the byte span of
/// its value.
pub type FileEntry = (Setting, Option<(String, std::ops::Range<usize>)>);

/// The type the configuration file holds a setting of kind `$kind` in.
macro_rules! file_type {
    (Text) => {
        String
    };
    (Integer) => {
        u64
    };
    (Url) => {
        String
    };
}

/// Whether two keys are the same, at compile time: `before KEY` in a table names the entry
/// it moves ahead of, and the name is checked rather than trusted.
pub(super) const fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// One table of settings, each written once as a clap field (its help, flag, variable and
/// default in `#[arg]`); a field followed by `=> KIND` is also a key of the configuration
/// file, of that [`Kind`]. From it come the clap struct, in the table's order (the order of
/// `--help` and of the completions), and the file's struct (with the extra fields given after
/// `file`) and the list of its keys, in the order `sqs2pg config` prints them: the table's,
/// but for an entry marked `=> KIND before KEY`, listed ahead of the file key just before it.
macro_rules! settings {
    (
        $(#[$args_meta:meta])*
        pub struct $Args:ident;
        $(#[$file_meta:meta])*
        file $File:ident { $($extra:tt)* }
        list $LIST:ident;
        { $($entries:tt)* }
    ) => {
        settings!(@args ($(#[$args_meta])* $Args) $($entries)*);
        settings!(@file ($(#[$file_meta])* $File $LIST { $($extra)* }) [] [] $($entries)*);
    };

    (@args ($(#[$args_meta:meta])* $Args:ident) $(
        $(#[$meta:meta])*
        pub $key:ident: $ty:ty $(=> $kind:ident $(before $prev:ident)?)?,
    )*) => {
        $(#[$args_meta])*
        pub struct $Args {
            $( $(#[$meta])* pub $key: $ty, )*
        }
    };

    // The file's keys, gathered in order in `[done]`, the latest held in `[last]` so that an
    // entry marked `before` can go ahead of it.
    (@file $head:tt [$($done:tt)*] [$($last:tt)*]
        $(#[$meta:meta])* pub $key:ident: $ty:ty, $($rest:tt)*) => {
        settings!(@file $head [$($done)*] [$($last)*] $($rest)*);
    };
    (@file $head:tt [$($done:tt)*] [$($last:tt)*]
        $(#[$meta:meta])* pub $key:ident: $ty:ty => $kind:ident, $($rest:tt)*) => {
        settings!(@file $head [$($done)* $($last)*] [($key $kind)] $($rest)*);
    };
    (@file $head:tt [$($done:tt)*] [($last:ident $last_kind:ident)]
        $(#[$meta:meta])* pub $key:ident: $ty:ty => $kind:ident before $prev:ident, $($rest:tt)*) => {
        const _: () = assert!(
            $crate::config::settings::macros::same_key(stringify!($prev), stringify!($last)),
            concat!(stringify!($key), " is listed before ", stringify!($prev), ", which is not the file key before it")
        );
        settings!(@file $head [$($done)* ($key $kind)] [($last $last_kind)] $($rest)*);
    };
    (@file ($(#[$file_meta:meta])* $File:ident $LIST:ident { $($extra:tt)* })
        [$(($key:ident $kind:ident))*] [$(($last:ident $last_kind:ident))?]) => {
        settings!(@emit ($(#[$file_meta])* $File $LIST { $($extra)* })
            $(($key $kind))* $(($last $last_kind))?);
    };

    (@emit ($(#[$file_meta:meta])* $File:ident $LIST:ident { $($extra:tt)* })
        $(($key:ident $kind:ident))*) => {
        $(#[$file_meta])*
        #[derive(Debug, Default, serde::Deserialize, PartialEq, Eq)]
        #[serde(deny_unknown_fields)]
        pub struct $File {
            $( pub $key: Option<toml::Spanned<file_type!($kind)>>, )*
            $($extra)*
        }

        /// The keys of this table the configuration file may set, in the order `sqs2pg
        /// config` prints them.
        pub const $LIST: &[$crate::config::settings::Setting] = &[
            $( $crate::config::settings::Setting {
                key: stringify!($key),
                kind: $crate::config::settings::Kind::$kind,
            }, )*
        ];

        impl $File {
            /// Each key of this table the file may set, with the text its flag would take and
            /// the byte span of its value when the file sets it.
            pub fn entries(&self) -> Vec<$crate::config::settings::FileEntry> {
                vec![$(
                    (
                        $crate::config::settings::Setting {
                            key: stringify!($key),
                            kind: $crate::config::settings::Kind::$kind,
                        },
                        self.$key.as_ref().map(|s| (s.get_ref().to_string(), s.span())),
                    ),
                )*]
            }
        }
    };
}
