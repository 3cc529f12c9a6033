use super::*;

fn driver_and_mode(conn: &str) -> (String, SslMode, Option<String>) {
    let split = split(conn).unwrap();
    (split.driver, split.sslmode, split.sslrootcert)
}

fn refusal(conn: &str) -> String {
    split(conn).unwrap_err().to_string()
}

#[test]
fn each_sslmode_is_taken_out_of_a_url_and_the_rest_left_as_written() {
    for (value, mode) in [
        ("disable", SslMode::Disable),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ] {
        let conn = format!("postgres://u:p%40ss@h:5432/db?connect_timeout=3&sslmode={value}&application_name=a%20b");
        let (driver, got, _) = driver_and_mode(&conn);
        assert_eq!(got, mode, "{conn}");
        assert_eq!(
            driver,
            "postgres://u:p%40ss@h:5432/db?connect_timeout=3&application_name=a%20b"
        );
    }
    let (driver, mode, _) = driver_and_mode("postgresql://h/db?sslmode=verify-full");
    assert_eq!(
        (driver.as_str(), mode),
        ("postgresql://h/db", SslMode::VerifyFull)
    );
    let (driver, mode, _) = driver_and_mode("postgres://u@h/db");
    assert_eq!(
        (driver.as_str(), mode),
        ("postgres://u@h/db", SslMode::Prefer)
    );
}

#[test]
fn sslrootcert_is_decoded_and_taken_out_of_both_forms() {
    let (driver, mode, root) =
        driver_and_mode("postgres://h?sslrootcert=%2Fetc%2Fca%20dir%2Fca.pem&sslmode=verify-ca");
    assert_eq!(driver, "postgres://h");
    assert_eq!(mode, SslMode::VerifyCa);
    assert_eq!(root.as_deref(), Some("/etc/ca dir/ca.pem"));
    let (driver, mode, root) = driver_and_mode(
        "host=h sslmode = verify-full  sslrootcert='/etc/ca dir/it\\'s.pem' password='a b\\\\c'",
    );
    assert_eq!(driver, "host=h password='a b\\\\c'");
    assert_eq!(mode, SslMode::VerifyFull);
    assert_eq!(root.as_deref(), Some("/etc/ca dir/it's.pem"));
    let pg: tokio_postgres::Config = driver.parse().unwrap();
    assert_eq!(pg.get_password(), Some(&b"a b\\c"[..]));
}

#[test]
fn a_question_mark_or_at_sign_in_the_user_info_is_not_the_query() {
    let (driver, mode, _) = driver_and_mode("postgres://u:a?b@h/db?sslmode=verify-full");
    assert_eq!(
        (driver.as_str(), mode),
        ("postgres://u:a?b@h/db", SslMode::VerifyFull)
    );
}

#[test]
fn unsupported_parameters_are_named_with_what_to_do() {
    for (conn, key, advice) in [
        (
            "postgres://h/db?sslcert=/c.pem",
            "sslcert",
            "client certificates",
        ),
        ("host=h sslkey=/k.pem", "sslkey", "client certificates"),
        ("postgres://h/db?gssencmode=disable", "gssencmode", "GSSAPI"),
        ("service=prod", "service", "pg_service.conf"),
        ("postgres://h?passfile=/p", "passfile", "PGPASSFILE"),
        ("postgres://h?frobnicate=1", "frobnicate", "remove it"),
    ] {
        let err = refusal(conn);
        assert!(
            err.starts_with(&format!(
                "--database-url / DATABASE_URL: connection string parameter `{key}` is not supported: "
            )) && err.contains(advice),
            "{err}"
        );
    }
}

#[test]
fn bad_sslmode_values_are_refused_naming_the_value() {
    assert!(refusal("postgres://h?sslmode=allow").contains("`allow` is not supported"));
    let err = refusal("host=h sslmode=verify_full");
    assert!(err.contains("sslmode `verify_full` is not one of"), "{err}");
}

#[test]
fn the_drivers_own_parameters_pass_through_untouched() {
    let conn = "host=a,b port=1,2 user=u dbname=d options='-c x=1' application_name=app \
                sslnegotiation=postgres hostaddr=127.0.0.1,127.0.0.2 connect_timeout=1 \
                tcp_user_timeout=1 keepalives=1 keepalives_idle=1 keepalives_interval=1 \
                keepalives_retries=1 target_session_attrs=any channel_binding=prefer \
                load_balance_hosts=disable";
    let (driver, _, _) = driver_and_mode(conn);
    assert_eq!(
        driver.split_whitespace().count(),
        conn.split_whitespace().count()
    );
    assert!(driver.parse::<tokio_postgres::Config>().is_ok());
}

#[test]
fn text_the_driver_would_refuse_is_left_for_its_error() {
    let (driver, _, _) = driver_and_mode("host='unterminated");
    assert_eq!(driver, "host='unterminated");
    let (driver, _, _) = driver_and_mode("postgres://h?novalue");
    assert_eq!(driver, "postgres://h?novalue");
}
