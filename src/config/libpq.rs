//! The libpq connection-string parameters tokio-postgres does not parse (`sslmode`'s
//! `verify-ca` and `verify-full`, `sslrootcert`), taken out of the string before the driver
//! reads it, and libpq's parameters sqs2pg does not support, refused by name.
//!
//! The string is cut where the driver would cut it (the same scan as its URL and key=value
//! parsers), so what is left is byte for byte what the driver would have read, minus the
//! parameters handled here. A string this scan cannot follow is left whole for the driver,
//! whose error then says what is wrong.

use super::ConfigError;

const NAME: &str = "--database-url / DATABASE_URL";

/// libpq's `sslmode`, but `allow`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it (the default), verified like `verify-full`.
    Prefer,
    /// TLS always, verified like `verify-full`.
    Require,
    /// TLS, the chain checked against the roots, the host name not.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

impl SslMode {
    /// The mode as a connection string spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    fn parse(value: &str) -> Result<Self, ConfigError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => return Err(invalid("sslmode `allow` is not supported: use `prefer` (TLS when the server offers it) or `disable`".into())),
            other => return Err(invalid(format!("sslmode `{other}` is not one of disable, prefer, require, verify-ca, verify-full"))),
        })
    }
}

/// A connection string split into the driver's part and the parameters handled here.
pub struct Split {
    /// The string without `sslmode` and `sslrootcert`; may hold a password.
    pub driver: String,
    /// `sslmode`, `prefer` when not given.
    pub sslmode: SslMode,
    /// `sslrootcert`, decoded.
    pub sslrootcert: Option<String>,
}

/// Without the driver's part, which may hold a password.
impl std::fmt::Debug for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split")
            .field("sslmode", &self.sslmode)
            .field("sslrootcert", &self.sslrootcert)
            .finish_non_exhaustive()
    }
}

/// Splits `conn`, refusing a libpq parameter sqs2pg does not support by name.
pub fn split(conn: &str) -> Result<Split, ConfigError> {
    let mut out = Split {
        driver: conn.to_owned(),
        sslmode: SslMode::Prefer,
        sslrootcert: None,
    };
    let Some((head, params, sep)) = params(conn) else {
        return Ok(out);
    };
    let mut kept = Vec::new();
    for p in params {
        match p.key.as_str() {
            "sslmode" => out.sslmode = SslMode::parse(&p.value)?,
            "sslrootcert" => out.sslrootcert = Some(p.value),
            key if DRIVER_KEYS.contains(&key) => kept.push(p.raw),
            key => {
                return Err(invalid(format!(
                    "connection string parameter `{key}` is not supported: {}",
                    advice(key)
                )))
            }
        }
    }
    out.driver = match (sep, kept.is_empty()) {
        ('&', true) => head.to_owned(),
        ('&', false) => format!("{head}?{}", kept.join("&")),
        _ => kept.join(" "),
    };
    Ok(out)
}

/// The parameters tokio-postgres parses itself.
const DRIVER_KEYS: [&str; 18] = [
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// What to do instead of an unsupported parameter.
fn advice(key: &str) -> &'static str {
    match key {
        "sslcert" | "sslkey" | "sslpassword" | "sslcertmode" => {
            "client certificates are not supported: remove it and authenticate with a password (in DATABASE_URL, PGPASSWORD or ~/.pgpass)"
        }
        "gssencmode" | "krbsrvname" | "gsslib" | "gssdelegation" => {
            "GSSAPI and Kerberos are not supported: remove it (TLS is chosen with sslmode)"
        }
        "service" => {
            "pg_service.conf is not read: put the service's settings in the connection string itself"
        }
        "passfile" => "remove it and set PGPASSFILE to the file instead",
        "sslcrl" | "sslcrldir" => "certificate revocation lists are not supported: remove it",
        _ => "remove it (the README's --database-url row lists what is understood)",
    }
}

fn invalid(problem: String) -> ConfigError {
    ConfigError::Invalid {
        name: NAME,
        problem,
    }
}

/// One `key=value` as written, with its key and value decoded (no `Debug`: it may be the
/// password).
struct Param<'a> {
    key: String,
    value: String,
    raw: &'a str,
}

/// `(the text before the parameters, the parameters, '&' for a URL or ' ' for key=value)`,
/// or `None` when the driver's parser would refuse the text anyway.
fn params(conn: &str) -> Option<(&str, Vec<Param<'_>>, char)> {
    let rest = ["postgres://", "postgresql://"]
        .into_iter()
        .find_map(|scheme| conn.strip_prefix(scheme));
    match rest {
        Some(rest) => {
            let query_at = url_query_start(rest)?;
            let at = conn.len() - rest.len() + query_at;
            Some((&conn[..at], url_params(conn.get(at + 1..)?)?, '&'))
        }
        None => Some(("", key_value_params(conn)?, ' ')),
    }
}

/// Where the `?` that starts a URL's query is in `rest` (after the scheme), as the driver
/// finds it: user info up to the first `@`, hosts up to `/` or `?`, the database up to `?`.
fn url_query_start(rest: &str) -> Option<usize> {
    let after_creds = rest.find('@').map_or(0, |i| i + 1);
    let hosts_end = rest[after_creds..]
        .find(['/', '?'])
        .map(|i| after_creds + i)?;
    if rest[hosts_end..].starts_with('?') {
        return Some(hosts_end);
    }
    rest[hosts_end..].find('?').map(|i| hosts_end + i)
}

/// `k=v&k=v`: the key runs to the next `=`, the value to the next `&`, both percent-decoded.
fn url_params(mut query: &str) -> Option<Vec<Param<'_>>> {
    let mut out = Vec::new();
    while !query.is_empty() {
        let eq = query.find('=')?;
        let end = query[eq..].find('&').map_or(query.len(), |i| eq + i);
        out.push(Param {
            key: percent_decode(&query[..eq])?,
            value: percent_decode(&query[eq + 1..end])?,
            raw: &query[..end],
        });
        query = query.get(end + 1..).unwrap_or("");
    }
    Some(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let (bytes, mut out, mut i) = (s.as_bytes(), Vec::with_capacity(s.len()), 0);
    while i < bytes.len() {
        let hex = s
            .get(i + 1..i + 3)
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// `key = value key='quoted \' value'`, as the driver's key=value parser reads it.
fn key_value_params(s: &str) -> Option<Vec<Param<'_>>> {
    let mut it = s.char_indices().peekable();
    let mut out = Vec::new();
    let skip_ws = |it: &mut std::iter::Peekable<std::str::CharIndices>| {
        while it.next_if(|(_, c)| c.is_whitespace()).is_some() {}
    };
    loop {
        skip_ws(&mut it);
        let Some(&(start, _)) = it.peek() else {
            return Some(out);
        };
        let mut key = String::new();
        while let Some((_, c)) = it.next_if(|(_, c)| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        skip_ws(&mut it);
        it.next_if(|(_, c)| *c == '=')?;
        skip_ws(&mut it);
        let quoted = it.next_if(|(_, c)| *c == '\'').is_some();
        let mut value = String::new();
        loop {
            match it.peek().copied() {
                None if quoted => return None,
                None => break,
                Some((_, '\'')) if quoted => {
                    it.next();
                    break;
                }
                Some((_, c)) if c.is_whitespace() && !quoted => break,
                Some((_, '\\')) => {
                    it.next();
                    value.extend(it.next().map(|(_, c)| c));
                }
                Some((_, c)) => {
                    it.next();
                    value.push(c);
                }
            }
        }
        if key.is_empty() || (!quoted && value.is_empty()) {
            return None;
        }
        let end = it.peek().map_or(s.len(), |&(i, _)| i);
        out.push(Param {
            key,
            value,
            raw: &s[start..end],
        });
    }
}

/// The libpq environment variables sqs2pg reads.
#[derive(Debug, Default)]
pub struct Env {
    /// `PGSSLROOTCERT`.
    pub sslrootcert: Option<std::path::PathBuf>,
    /// `PGPASSWORD`, when not empty.
    pub password: Option<secrecy::SecretString>,
    /// `PGPASSFILE`, else `~/.pgpass`.
    pub passfile: Option<std::path::PathBuf>,
}

impl Env {
    /// This process's.
    pub fn from_process() -> Self {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        Self {
            sslrootcert: var("PGSSLROOTCERT").map(Into::into),
            password: std::env::var("PGPASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .map(Into::into),
            passfile: var("PGPASSFILE")
                .map(Into::into)
                .or_else(|| var("HOME").map(|home| std::path::Path::new(&home).join(".pgpass"))),
        }
    }
}

#[cfg(test)]
mod tests;
