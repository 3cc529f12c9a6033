//! A connection string fit to print: every password replaced by `<redacted>`, in both forms
//! libpq (and tokio-postgres) accept: `postgres://user:PW@host/db?password=PW` and
//! `host=h password=PW`.

const REDACTED: &str = "<redacted>";

/// `conn` with its passwords replaced; `conn` has already parsed as a connection string.
pub fn redact(conn: &str) -> String {
    for scheme in ["postgres://", "postgresql://"] {
        if let Some(rest) = conn.strip_prefix(scheme) {
            return format!("{scheme}{}", redact_url(rest));
        }
    }
    redact_key_value(conn)
}

/// The part after the scheme: `userinfo@hosts/db?query`.
fn redact_url(rest: &str) -> String {
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:{REDACTED}@{hosts}"),
            None => format!("{userinfo}@{hosts}"),
        },
        None => authority.to_owned(),
    };
    let query = query.map(|q| {
        let pairs: Vec<String> = q
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some(("password", _)) => format!("password={REDACTED}"),
                _ => kv.to_owned(),
            })
            .collect();
        format!("?{}", pairs.join("&"))
    });
    format!("{authority}{path}{}", query.unwrap_or_default())
}

/// `key = value` pairs, a value bare or in single quotes (with `\'` and `\\` escapes).
fn redact_key_value(conn: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let key: String =
            std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
        if key.is_empty() {
            break;
        }
        while chars.next_if(|c| c.is_whitespace() || *c == '=').is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            while let Some(c) = chars.next() {
                value.push(c);
                match c {
                    '\\' => value.extend(chars.next()),
                    '\'' => break,
                    _ => {}
                }
            }
        } else {
            value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
        }
        let value = if key == "password" {
            REDACTED.to_owned()
        } else {
            value
        };
        out.push(format!("{key}={value}"));
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_in_every_place_a_connection_string_holds_them() {
        let cases = [
            ("postgres://app:s3cret@db:5432/x", "postgres://app:<redacted>@db:5432/x"),
            (
                "postgres://u@127.0.0.1/db?password=s3cret",
                "postgres://u@127.0.0.1/db?password=<redacted>",
            ),
            (
                "postgresql://u:a@h1:5432,h2:5433/db?sslmode=require&password=b&target_session_attrs=read-write",
                "postgresql://u:<redacted>@h1:5432,h2:5433/db?sslmode=require&password=<redacted>&target_session_attrs=read-write",
            ),
            ("postgres://postgres@127.0.0.1/postgres", "postgres://postgres@127.0.0.1/postgres"),
            (
                "host=h user=u password=s3cret dbname=d",
                "host=h user=u password=<redacted> dbname=d",
            ),
            (
                "host=h password = 's3 cr\\'et' dbname=d",
                "host=h password=<redacted> dbname=d",
            ),
            ("host=h dbname='my db'", "host=h dbname='my db'"),
        ];
        for (conn, shown) in cases {
            assert_eq!(redact(conn), shown, "{conn}");
        }
    }
}
