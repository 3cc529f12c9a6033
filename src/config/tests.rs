use super::*;

#[test]
fn database_url_redacts_password() {
    let db = DbConfig::new("postgres://app:s3cret@db:5432/x", None).unwrap();
    assert_eq!(db.redacted(), "postgres://app:<redacted>@db:5432/x");
    assert!(!format!("{db:?}").contains("s3cret"));
    let db = DbConfig::new("postgres://postgres@127.0.0.1/postgres", None).unwrap();
    assert_eq!(db.redacted(), "postgres://postgres@127.0.0.1:5432/postgres");
    let e = DbConfig::new("postgres://h:notaport/x", None).unwrap_err();
    assert!(e.to_string().starts_with("--database-url / DATABASE_URL"));
}

#[test]
fn network_waits_are_bounded_unless_the_url_says_otherwise() {
    let db = DbConfig::new("postgres://u@h/x", None).unwrap();
    assert_eq!(db.pg.get_connect_timeout(), Some(&Duration::from_secs(10)));
    assert_eq!(db.pg.get_keepalives_idle(), Duration::from_secs(10));
    assert_eq!(db.pg.get_tcp_user_timeout(), Some(&Duration::from_secs(30)));
    let db = db.with_write_timeout(Duration::from_secs(12));
    assert_eq!(db.pg.get_tcp_user_timeout(), Some(&Duration::from_secs(12)));
    let db = DbConfig::new(
        "postgres://u@h/x?connect_timeout=3&keepalives_idle=60&tcp_user_timeout=7",
        None,
    )
    .unwrap()
    .with_write_timeout(Duration::from_secs(12));
    assert_eq!(db.pg.get_connect_timeout(), Some(&Duration::from_secs(3)));
    assert_eq!(db.pg.get_keepalives_idle(), Duration::from_secs(60));
    assert_eq!(db.pg.get_tcp_user_timeout(), Some(&Duration::from_secs(7)));
    let e = DbConfig::new("postgres://h:notaport/x", None).unwrap_err();
    assert!(e.to_string().starts_with("--database-url / DATABASE_URL"));
}

fn env_with_password(password: &str) -> libpq::Env {
    libpq::Env {
        password: Some(password.into()),
        ..Default::default()
    }
}

#[test]
fn the_password_comes_from_the_url_then_pgpassword_then_the_password_file() {
    let env = env_with_password("from-env");
    let db = DbConfig::with_env("postgres://u:from-url@h/x", None, &env).unwrap();
    assert_eq!(db.pg.get_password(), Some(&b"from-url"[..]));
    let db = DbConfig::with_env("postgres://u@h/x?sslmode=disable", None, &env).unwrap();
    assert_eq!(db.pg.get_password(), Some(&b"from-env"[..]));
    assert_eq!(db.redacted(), "postgres://u@h:5432/x?sslmode=disable");
    assert!(!format!("{db:?}").contains("from-env"));

    let file = std::env::temp_dir().join(format!("sqs2pg-cfg-pgpass-{}", std::process::id()));
    std::fs::write(&file, "h:5432:x:u:from-file\\:1\n").unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let env = libpq::Env {
        passfile: Some(file.clone()),
        ..Default::default()
    };
    let db = DbConfig::with_env("host=h user=u dbname=x", None, &env).unwrap();
    assert_eq!(db.pg.get_password(), Some(&b"from-file:1"[..]));
    let db = DbConfig::with_env("host=h user=other dbname=x", None, &env).unwrap();
    assert_eq!(db.pg.get_password(), None);
    let db = DbConfig::with_env("host=h,second user=u dbname=x", None, &env).unwrap();
    assert_eq!(
        db.pg.get_password(),
        Some(&b"from-file:1"[..]),
        "the first host's line"
    );
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn libpq_settings_are_shown_and_the_refusals_name_the_parameter() {
    let conn = "postgres://u:pw@h/x?sslmode=verify-full&sslrootcert=system";
    let db = DbConfig::with_env(conn, None, &libpq::Env::default()).unwrap();
    assert_eq!(db.sslmode, SslMode::VerifyFull);
    assert!(db.tls().is_some());
    assert_eq!(
        db.redacted(),
        "postgres://u:<redacted>@h:5432/x?sslmode=verify-full&sslrootcert=system"
    );
    assert!(has_password(conn));
    for (mode, driver_mode) in [
        ("disable", tokio_postgres::config::SslMode::Disable),
        ("prefer", tokio_postgres::config::SslMode::Prefer),
        ("require", tokio_postgres::config::SslMode::Require),
        ("verify-ca", tokio_postgres::config::SslMode::Require),
        ("verify-full", tokio_postgres::config::SslMode::Require),
    ] {
        let conn = format!("host=h sslmode={mode}");
        let db = DbConfig::with_env(&conn, None, &libpq::Env::default()).unwrap();
        assert_eq!(db.pg.get_ssl_mode(), driver_mode, "{mode}");
        assert_eq!(db.tls().is_none(), mode == "disable", "{mode}");
    }
    let err = DbConfig::new("postgres://h/x?sslcert=c.pem", None).unwrap_err();
    assert!(
        err.to_string().contains("`sslcert` is not supported"),
        "{err}"
    );
    let err = DbConfig::new("postgres://h/x?port=x", None).unwrap_err();
    assert!(err.to_string().contains("`port`"), "{err}");
}

#[test]
fn the_roots_come_from_sslrootcert_then_the_ca_file_then_pgsslrootcert() {
    let env = libpq::Env {
        sslrootcert: Some("/env.pem".into()),
        ..Default::default()
    };
    let chosen = |root: Option<&str>, ca: Option<&str>, env: &libpq::Env| {
        format!("{:?}", roots(root, ca.map(Path::new), env))
    };
    assert!(chosen(Some("/url.pem"), Some("/flag.pem"), &env).contains("/url.pem"));
    assert!(chosen(None, Some("/flag.pem"), &env).contains("/flag.pem"));
    assert!(chosen(None, None, &env).contains("PGSSLROOTCERT"));
    assert_eq!(chosen(Some("system"), Some("/flag.pem"), &env), "System");
    assert_eq!(chosen(None, None, &libpq::Env::default()), "System");
    let system = libpq::Env {
        sslrootcert: Some("system".into()),
        ..Default::default()
    };
    assert_eq!(chosen(None, None, &system), "System");
    let err = DbConfig::with_env("postgres://h/x?sslrootcert=/none.pem", None, &env).unwrap_err();
    assert!(
        err.to_string().starts_with("sslrootcert in --database-url"),
        "{err}"
    );
    let err = DbConfig::with_env("postgres://h/x", None, &env).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("PGSSLROOTCERT: cannot read /env.pem"),
        "{err}"
    );
}
