//! libpq's password file (`~/.pgpass`, or `PGPASSFILE`): lines
//! `host:port:database:user:password`, `*` matching anything, `\:` and `\\` escaping, `#`
//! starting a comment, the first matching line winning. As libpq does, a file group or
//! others may read is ignored with a warning, and a missing one silently.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use secrecy::SecretString;

/// What a line is matched against.
#[derive(Debug)]
pub struct Target<'a> {
    /// A TCP host name or address; `localhost` for a Unix socket, as libpq matches it.
    pub host: &'a str,
    pub port: u16,
    pub dbname: &'a str,
    pub user: &'a str,
}

/// The password of the first line of `path` that matches `target`; a warning (never the
/// password) is logged when the file is unsafe or unreadable.
pub fn lookup(path: &Path, target: &Target) -> Option<SecretString> {
    match read(path) {
        Ok(text) => find(&text?, target).map(SecretString::from),
        Err(warning) => {
            tracing::warn!("{warning}");
            None
        }
    }
}

/// The file's text; `Ok(None)` when it does not exist, `Err(warning)` when it is ignored.
fn read(path: &Path) -> Result<Option<String>, String> {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("password file {shown} ignored: {e}")),
    };
    if !meta.is_file() {
        return Err(format!("password file {shown} ignored: not a plain file"));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "password file {shown} ignored: it is readable by group or others (mode {mode:o}), as libpq refuses too; run `chmod 600 {shown}`"
        ));
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| format!("password file {shown} ignored: {e}"))
}

/// The first matching line's password.
fn find(text: &str, target: &Target) -> Option<String> {
    let port = target.port.to_string();
    let wanted = [target.host, &port, target.dbname, target.user];
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let fields = fields(line.trim_end_matches('\r'));
            let [host, port, db, user, password] = fields.as_slice() else {
                return None;
            };
            let matches = [host, port, db, user]
                .iter()
                .zip(wanted)
                .all(|((raw, value), want)| raw == "*" || value == want);
            matches.then(|| password.1.clone())
        })
}

/// The first five `:`-separated fields of `line` as `(raw, unescaped)`; fewer when the line
/// has fewer. The password ends at the next unescaped `:`, as in libpq.
fn fields(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut raw, mut value) = (String::new(), String::new());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(next) => {
                    raw.extend([c, next]);
                    value.push(next);
                }
                None => {
                    raw.push(c);
                    value.push(c);
                }
            },
            ':' => {
                out.push((std::mem::take(&mut raw), std::mem::take(&mut value)));
                if out.len() == 5 {
                    return out;
                }
            }
            c => {
                raw.push(c);
                value.push(c);
            }
        }
    }
    out.push((raw, value));
    out.truncate(5);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn target() -> Target<'static> {
        Target {
            host: "db.example",
            port: 5432,
            dbname: "app",
            user: "writer",
        }
    }

    #[test]
    fn the_first_matching_line_wins_and_stars_match_anything() {
        let text = "# comment\nother:5432:app:writer:no\ndb.example:5433:app:writer:no\n\
                    *:5432:*:writer:first\ndb.example:5432:app:writer:second\n";
        assert_eq!(find(text, &target()).as_deref(), Some("first"));
        assert_eq!(find("db.example:5432:app:nobody:x\n", &target()), None);
        assert_eq!(
            find("*:*:*:*\n", &target()),
            None,
            "four fields: no password"
        );
        assert_eq!(find("*:*:*:*:\n", &target()).as_deref(), Some(""));
    }

    #[test]
    fn backslash_escapes_colons_and_backslashes_in_every_field() {
        let t = Target {
            host: "fe80::1",
            user: "a\\b",
            ..target()
        };
        let text = "fe80\\:\\:1:5432:app:a\\\\b:pa\\:ss\\\\w:ignored\n";
        assert_eq!(find(text, &t).as_deref(), Some("pa:ss\\w"));
        assert_eq!(
            find("\\*:5432:app:writer:star\n", &target()),
            None,
            "`\\*` is a literal star"
        );
    }

    #[test]
    fn a_file_others_may_read_is_ignored_with_a_warning_naming_it() {
        let path = std::env::temp_dir().join(format!("sqs2pg-pgpass-{}", std::process::id()));
        std::fs::write(&path, "*:*:*:*:secret-pw\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let warning = read(&path).unwrap_err();
        assert!(
            warning.contains("chmod 600") && warning.contains("640"),
            "{warning}"
        );
        assert!(!warning.contains("secret-pw"));
        assert!(lookup(&path, &target()).is_none());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(lookup(&path, &target()).is_some());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read(&path), Ok(None), "a missing file is no warning");
    }
}
