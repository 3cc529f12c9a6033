//! A connection string fit to print, rebuilt from what tokio-postgres parsed (the parser that
//! connects), in the form it was given: URL or `key=value`.
//!
//! The password is only ever tested for presence, so whatever the driver would send as the
//! password cannot reach the output, however it was spelled: percent-encoded, quoted, holding
//! `/`, `?` or `#`, or given again in the query. Cutting the text apart instead would have
//! to mirror the driver's parser exactly; it did not (`postgres://u:a/b@h` is password `a/b`).

use std::str::FromStr;

use tokio_postgres::config::{
    ChannelBinding, Config, Host, LoadBalanceHosts, SslMode, SslNegotiation, TargetSessionAttrs,
};

const REDACTED: &str = "<redacted>";

/// `conn` as the driver reads it, with `<redacted>` for its password; settings left at the
/// driver's defaults are left out, a port is always shown.
#[cfg(test)]
pub fn redact(conn: &str) -> String {
    redact_with(conn, Vec::new())
}

/// [`redact`], with `libpq` (parameters taken out before the driver parsed `conn`, none of
/// them secret) shown after the driver's settings.
pub fn redact_with(conn: &str, libpq: Vec<(&'static str, String)>) -> String {
    let Ok(pg) = Config::from_str(conn) else {
        // Callers have already parsed it; nothing of the text is shown if it does not.
        return "<not a valid connection string>".to_owned();
    };
    match ["postgres://", "postgresql://"]
        .into_iter()
        .find(|scheme| conn.starts_with(scheme))
    {
        Some(scheme) => url(scheme, &pg, libpq),
        None => key_value(&pg, libpq),
    }
}

/// Characters left as they are in every part of a rebuilt URL (RFC 3986 unreserved).
const UNRESERVED: &str = "-._~";
/// Query values may also keep these (`<redacted>` among them): the driver splits the query
/// at `&` and `=` only, and reads an `@` anywhere as the end of the user info.
const QUERY_VALUE: &str = "-._~,:/<>";

/// `scheme` + `user:<redacted>@host:port,…/dbname?setting=value&…`.
fn url(scheme: &str, pg: &Config, libpq: Vec<(&'static str, String)>) -> String {
    let mut out = scheme.to_owned();
    let mut query = settings(pg);
    query.extend(libpq);
    match pg.get_user() {
        Some(user) => {
            out += &encode(user.as_bytes(), UNRESERVED);
            if pg.get_password().is_some() {
                out += &format!(":{REDACTED}");
            }
            out.push('@');
        }
        None if pg.get_password().is_some() => query.insert(0, ("password", REDACTED.into())),
        None => {}
    }
    let (hosts, ports) = (pg.get_hosts(), pg.get_ports());
    // The authority pairs each host with its port; other layouts (one port for several
    // hosts, from `?host=`) go to the query, which the driver reads in the same order.
    if hosts.len() == ports.len() {
        let authority: Vec<String> = hosts
            .iter()
            .zip(ports)
            .map(|(host, port)| format!("{}:{port}", url_host(host)))
            .collect();
        out += &authority.join(",");
    } else {
        let hosts = hosts.iter().map(|h| ("host", host_text(h)));
        query.splice(0..0, hosts);
        if !ports.is_empty() {
            query.push(("port", join(ports)));
        }
    }
    if let Some(dbname) = pg.get_dbname() {
        out += &format!("/{}", encode(dbname.as_bytes(), UNRESERVED));
    }
    let query: Vec<String> = query
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v.as_bytes(), QUERY_VALUE)))
        .collect();
    if !query.is_empty() {
        out += &format!("?{}", query.join("&"));
    }
    out
}

/// A host in a URL's authority: an IPv6 address in brackets, anything else encoded (a
/// socket directory's `/` included, which the driver decodes back).
fn url_host(host: &Host) -> String {
    match host {
        Host::Tcp(h) if h.parse::<std::net::Ipv6Addr>().is_ok() => format!("[{h}]"),
        Host::Tcp(h) => encode(h.as_bytes(), UNRESERVED),
        #[cfg(unix)]
        Host::Unix(path) => {
            use std::os::unix::ffi::OsStrExt;
            encode(path.as_os_str().as_bytes(), UNRESERVED)
        }
    }
}

/// `host=… port=… user=… password=<redacted> dbname=… setting=…`.
fn key_value(pg: &Config, libpq: Vec<(&'static str, String)>) -> String {
    let mut pairs: Vec<(&str, String)> = Vec::new();
    let hosts: Vec<String> = pg.get_hosts().iter().map(host_text).collect();
    if !hosts.is_empty() {
        pairs.push(("host", hosts.join(",")));
    }
    if !pg.get_ports().is_empty() {
        pairs.push(("port", join(pg.get_ports())));
    }
    if let Some(user) = pg.get_user() {
        pairs.push(("user", user.to_owned()));
    }
    if pg.get_password().is_some() {
        pairs.push(("password", REDACTED.to_owned()));
    }
    if let Some(dbname) = pg.get_dbname() {
        pairs.push(("dbname", dbname.to_owned()));
    }
    pairs.extend(settings(pg));
    pairs.extend(libpq);
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", quote(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value as the key=value parser reads it back: bare when it can be, else in single
/// quotes with `\` before `'` and `\`.
fn quote(value: &str) -> String {
    let bare = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || c == '\'' || c == '\\');
    if bare {
        return value.to_owned();
    }
    let escaped: String = value
        .chars()
        .flat_map(|c| match c {
            '\'' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("'{escaped}'")
}

/// Every setting but host, port, user, password and dbname, where it differs from the
/// driver's default, as `(key, value)` in the driver's spelling.
fn settings(pg: &Config) -> Vec<(&'static str, String)> {
    let d = Config::new();
    let secs = |t: Option<&std::time::Duration>| t.map(|t| t.as_secs().to_string());
    let candidates = [
        ("options", pg.get_options().map(str::to_owned)),
        (
            "application_name",
            pg.get_application_name().map(str::to_owned),
        ),
        (
            "hostaddr",
            (!pg.get_hostaddrs().is_empty()).then(|| join(pg.get_hostaddrs())),
        ),
        (
            "sslmode",
            changed(pg.get_ssl_mode(), d.get_ssl_mode(), ssl_mode),
        ),
        (
            "sslnegotiation",
            changed(
                pg.get_ssl_negotiation(),
                d.get_ssl_negotiation(),
                ssl_negotiation,
            ),
        ),
        ("connect_timeout", secs(pg.get_connect_timeout())),
        ("tcp_user_timeout", secs(pg.get_tcp_user_timeout())),
        (
            "keepalives",
            changed(pg.get_keepalives(), d.get_keepalives(), |k| {
                u8::from(k).to_string()
            }),
        ),
        (
            "keepalives_idle",
            changed(pg.get_keepalives_idle(), d.get_keepalives_idle(), |t| {
                t.as_secs().to_string()
            }),
        ),
        (
            "keepalives_interval",
            secs(pg.get_keepalives_interval().as_ref()),
        ),
        (
            "keepalives_retries",
            pg.get_keepalives_retries().map(|r| r.to_string()),
        ),
        (
            "target_session_attrs",
            changed(
                pg.get_target_session_attrs(),
                d.get_target_session_attrs(),
                target_session_attrs,
            ),
        ),
        (
            "channel_binding",
            changed(
                pg.get_channel_binding(),
                d.get_channel_binding(),
                channel_binding,
            ),
        ),
        (
            "load_balance_hosts",
            changed(
                pg.get_load_balance_hosts(),
                d.get_load_balance_hosts(),
                load_balance_hosts,
            ),
        ),
    ];
    candidates
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| (key, v)))
        .collect()
}

/// `show(value)` unless it is the default.
fn changed<T: PartialEq>(value: T, default: T, show: impl Fn(T) -> String) -> Option<String> {
    (value != default).then(|| show(value))
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Tcp(h) => h.clone(),
        #[cfg(unix)]
        Host::Unix(path) => path.to_string_lossy().into_owned(),
    }
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Percent-encodes every byte but ASCII alphanumerics and `keep`.
fn encode(bytes: &[u8], keep: &str) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii_alphanumeric() || keep.as_bytes().contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

// The driver's enums name their values in Debug only; these are the connection-string
// spellings. Enums marked non_exhaustive fall back to Debug for a value added later.

fn ssl_mode(m: SslMode) -> String {
    match m {
        SslMode::Disable => "disable".into(),
        SslMode::Prefer => "prefer".into(),
        SslMode::Require => "require".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn ssl_negotiation(m: SslNegotiation) -> String {
    match m {
        SslNegotiation::Postgres => "postgres".into(),
        SslNegotiation::Direct => "direct".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn target_session_attrs(t: TargetSessionAttrs) -> String {
    match t {
        TargetSessionAttrs::Any => "any".into(),
        TargetSessionAttrs::ReadWrite => "read-write".into(),
        TargetSessionAttrs::ReadOnly => "read-only".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn channel_binding(c: ChannelBinding) -> String {
    match c {
        ChannelBinding::Disable => "disable".into(),
        ChannelBinding::Prefer => "prefer".into(),
        ChannelBinding::Require => "require".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

fn load_balance_hosts(l: LoadBalanceHosts) -> String {
    match l {
        LoadBalanceHosts::Disable => "disable".into(),
        LoadBalanceHosts::Random => "random".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests;
