use proptest::prelude::*;

use super::*;

/// The parsed form with its password, for comparing what two strings connect with.
fn parsed(conn: &str) -> (String, Option<Vec<u8>>) {
    let pg = Config::from_str(conn).unwrap_or_else(|e| panic!("{conn}: {e}"));
    (format!("{pg:?}"), pg.get_password().map(<[u8]>::to_vec))
}

/// What `redact` promises besides hiding the password: its output connects exactly as
/// `conn` does (the driver's Debug shows every setting but the password), but with
/// `<redacted>` as the password.
fn assert_same_settings_but_the_password(conn: &str, shown: &str) {
    let (settings, password) = parsed(conn);
    let (shown_settings, shown_password) = parsed(shown);
    assert_eq!(shown_settings, settings, "{conn} → {shown}");
    assert_eq!(
        shown_password,
        password.map(|_| REDACTED.as_bytes().to_vec()),
        "{conn} → {shown}"
    );
}

/// (connection string, the password the driver reads from it, what is printed).
const CASES: &[(&str, Option<&str>, &str)] = &[
    ("postgres://app:s3cret@db:5432/x", Some("s3cret"), "postgres://app:<redacted>@db:5432/x"),
    // The driver takes the user info up to the first `@`, whatever comes before it.
    ("postgres://app:pa/ss1@db/x", Some("pa/ss1"), "postgres://app:<redacted>@db:5432/x"),
    ("postgres://app:pa?ss2@db/x", Some("pa?ss2"), "postgres://app:<redacted>@db:5432/x"),
    ("postgres://app:pa#ss3@db/x", Some("pa#ss3"), "postgres://app:<redacted>@db:5432/x"),
    ("postgres://app:pa%ss4@db/x", Some("pa%ss4"), "postgres://app:<redacted>@db:5432/x"),
    ("postgres://app:pa%2Fss5@db/x", Some("pa/ss5"), "postgres://app:<redacted>@db:5432/x"),
    ("postgres://app:p%40ss6@db/x", Some("p@ss6"), "postgres://app:<redacted>@db:5432/x"),
    ("postgres://app:p a'\"ss7@db/x", Some("p a'\"ss7"), "postgres://app:<redacted>@db:5432/x"),
    // An unencoded `@` ends the password for the driver: the rest is (part of) the host.
    ("postgres://app:pass@word8@db/x", Some("pass"), "postgres://app:<redacted>@word8%40db:5432/x"),
    // Even in the query: with no user info, the first `@` still ends one.
    ("postgres://h:5432/db?password=x9@y", Some("5432/db?password=x9"), "postgres://h:<redacted>@y:5432"),
    ("postgres://u@127.0.0.1/db?password=s3cret", Some("s3cret"), "postgres://u:<redacted>@127.0.0.1:5432/db"),
    ("postgres://127.0.0.1/db?password=a%26b%3D", Some("a&b="), "postgres://127.0.0.1:5432/db?password=<redacted>"),
    (
        "postgresql://u:first1@h1:5432,h2:5433/db?sslmode=require&password=second2&target_session_attrs=read-write",
        Some("second2"),
        "postgresql://u:<redacted>@h1:5432,h2:5433/db?sslmode=require&target_session_attrs=read-write",
    ),
    (
        "postgres://u:pw10@[::1]:5433,%2Fvar%2Frun%2Fpostgresql/db?options=-csearch_path%3Danalytics",
        Some("pw10"),
        "postgres://u:<redacted>@[::1]:5433,%2Fvar%2Frun%2Fpostgresql:5432/db?options=-csearch_path%3Danalytics",
    ),
    ("postgres://postgres@127.0.0.1/postgres", None, "postgres://postgres@127.0.0.1:5432/postgres"),
    ("host=h user=u password=s3cret dbname=d", Some("s3cret"), "host=h user=u password=<redacted> dbname=d"),
    ("host=h password = 's3 cr\\'et' dbname=d", Some("s3 cr'et"), "host=h password=<redacted> dbname=d"),
    ("password=s3\\ cr\\\\et host=h", Some("s3 cr\\et"), "host=h password=<redacted>"),
    ("host=h password='p/?@#%2F' password=last1", Some("last1"), "host=h password=<redacted>"),
    (
        "host=a,b port=6432 user=u password=pw11 dbname='my db' connect_timeout=3",
        Some("pw11"),
        "host=a,b port=6432 user=u password=<redacted> dbname='my db' connect_timeout=3",
    ),
    ("host=h dbname='it\\'s' application_name=sqs2pg", None, "host=h dbname='it\\'s' application_name=sqs2pg"),
];

#[test]
fn passwords_are_redacted_in_every_place_a_connection_string_holds_them() {
    for &(conn, password, shown) in CASES {
        let (_, read) = parsed(conn);
        assert_eq!(
            read.as_deref(),
            password.map(str::as_bytes),
            "the driver reads {conn}"
        );
        assert_eq!(redact(conn), shown, "{conn}");
        if let Some(password) = password {
            assert!(!redact(conn).contains(password), "{conn}");
        }
        assert_same_settings_but_the_password(conn, shown);
    }
}

/// A password given twice: the driver keeps the last, and neither is printed.
#[test]
fn every_password_given_is_hidden_not_only_the_one_the_driver_keeps() {
    for conn in [
        "postgres://u:first1@h/db?password=second2",
        "host=h password='first1' password=second2",
    ] {
        let shown = redact(conn);
        assert!(
            !shown.contains("first1") && !shown.contains("second2"),
            "{shown}"
        );
    }
}

#[test]
fn an_unparsable_string_shows_nothing_of_itself() {
    assert_eq!(
        redact("host=h password='s3cret"),
        "<not a valid connection string>"
    );
}

/// Any byte a URL may percent-encode, so passwords of every shape are tried.
fn url_encoded(text: &str) -> String {
    encode(text.as_bytes(), "")
}

proptest! {
    /// A password of any characters, given the way each form expects (percent-encoded in a
    /// URL, quoted in key=value), reads back as itself and is never printed.
    #[test]
    fn no_password_is_ever_printed(
        password in "(?s).{4,24}",
        user in "(?s).{0,12}",
        dbname in "(?s).{1,12}",
    ) {
        let forms = [
            format!("postgres://{}:{}@db.internal:6432/{}", url_encoded(&user), url_encoded(&password), url_encoded(&dbname)),
            format!("postgres://db.internal/{}?user={}&password={}", url_encoded(&dbname), url_encoded(&user), url_encoded(&password)),
            format!("host=db.internal user={} password={} dbname={}", quote(&user), quote(&password), quote(&dbname)),
        ];
        for conn in forms {
            let (_, read) = parsed(&conn);
            prop_assert_eq!(read.as_deref(), Some(password.as_bytes()), "{}", conn);
            let shown = redact(&conn);
            prop_assert!(!shown.contains(&password), "{} → {}", conn, shown);
            assert_same_settings_but_the_password(&conn, &shown);
        }
    }
}
