//! libpq-compatible connection strings against a real TLS Postgres (the private cluster of
//! [`PrivatePg::start_tls`]: a certificate for `127.0.0.1` and `localhost` from a throwaway
//! CA, TLS connections only): `sslmode=verify-full|verify-ca`, `sslrootcert`,
//! `PGSSLROOTCERT`, `PGPASSWORD` and the password file.

use std::process::{Command, Output};

use crate::faults::PrivatePg;
use crate::helpers::{stdout_ok, KEYS};

/// A TLS cluster, started off the runtime's threads.
async fn tls_cluster() -> PrivatePg {
    tokio::task::spawn_blocking(PrivatePg::start_tls)
        .await
        .expect("start TLS cluster")
}

/// `sqs2pg migrate` against `url` with `envs`, and no libpq or CA setting from this
/// process's environment (no `~/.pgpass` either).
fn migrate(url: &str, envs: &[(&str, &str)]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sqs2pg"));
    c.arg("migrate")
        .env("DATABASE_URL", url)
        .env("SQS2PG_KEYS", KEYS)
        .env("PGPASSFILE", "/nonexistent/pgpass");
    for var in [
        "SQS2PG_DB_CA_FILE",
        "SQS2PG_CONFIG",
        "PGPASSWORD",
        "PGSSLROOTCERT",
    ] {
        c.env_remove(var);
    }
    c.envs(envs.iter().copied()).output().expect("run sqs2pg")
}

/// Exit 2 (a setting to fix), stderr returned.
fn refused(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

/// The cluster reached by the name `db.invalid`, which its certificate does not hold
/// (`hostaddr` gives the address, the host name is what TLS checks).
fn misnamed(pg: &PrivatePg, query: &str) -> String {
    format!(
        "postgres://postgres@db.invalid:{}/postgres?hostaddr=127.0.0.1&{query}",
        pg.port
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_checks_the_chain_and_the_host_name_verify_ca_the_chain_only() {
    let pg = tls_cluster().await;
    let ca = pg.ca_file().display().to_string();
    let full = format!("{}?sslmode=verify-full&sslrootcert={ca}", pg.url);
    stdout_ok(&migrate(&full, &[]));

    for mode in ["verify-full", "require", "prefer"] {
        let err = refused(&migrate(
            &misnamed(&pg, &format!("sslmode={mode}&sslrootcert={ca}")),
            &[],
        ));
        assert!(
            err.contains("not valid for name") && err.contains("db.invalid"),
            "{mode}: {err}"
        );
    }

    stdout_ok(&migrate(
        &misnamed(&pg, &format!("sslmode=verify-ca&sslrootcert={ca}")),
        &[],
    ));
    // verify-ca still checks the chain: the system roots do not know the test CA.
    let err = refused(&migrate(&misnamed(&pg, "sslmode=verify-ca"), &[]));
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pgsslrootcert_gives_the_roots_and_sslrootcert_then_the_ca_file_win_over_it() {
    let pg = tls_cluster().await;
    let ca = pg.ca_file().display().to_string();
    let full = format!("{}?sslmode=verify-full", pg.url);
    stdout_ok(&migrate(&full, &[("PGSSLROOTCERT", &ca)]));
    let err = refused(&migrate(
        &full,
        &[
            ("PGSSLROOTCERT", &ca),
            ("SQS2PG_DB_CA_FILE", "/nonexistent/ca.pem"),
        ],
    ));
    assert!(
        err.contains("SQS2PG_DB_CA_FILE") && err.contains("/nonexistent/ca.pem"),
        "{err}"
    );
    let in_url = format!("{full}&sslrootcert={ca}");
    stdout_ok(&migrate(
        &in_url,
        &[
            ("PGSSLROOTCERT", "/nonexistent/env.pem"),
            ("SQS2PG_DB_CA_FILE", "/nonexistent/ca.pem"),
        ],
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn pgpassword_and_the_password_file_authenticate_a_password_role() {
    let (role, password) = ("pw_writer", "pg-pass-w0rd");
    let pg = tokio::task::spawn_blocking(move || {
        let pg = PrivatePg::start_tls();
        pg.add_password_role(role, password);
        pg
    })
    .await
    .expect("start TLS cluster with a password role");
    let port = pg.port;
    let url = format!(
        "postgres://{role}@127.0.0.1:{port}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.ca_file().display()
    );
    let out = migrate(&url, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no password is a setting to fix: {err}"
    );
    assert!(err.contains("PGPASSWORD or a password file"), "{err}");

    let err = refused(&migrate(&url, &[("PGPASSWORD", "wrong-secret")]));
    assert!(
        err.contains("password authentication failed") && !err.contains("wrong-secret"),
        "{err}"
    );
    stdout_ok(&migrate(&url, &[("PGPASSWORD", password)]));

    let file = std::env::temp_dir().join(format!("sqs2pg-it-pgpass-{}-{port}", std::process::id()));
    let line = format!("127.0.0.1:{port}:postgres:{role}:{password}\n");
    std::fs::write(&file, format!("127.0.0.1:*:*:other:x\n{line}")).expect("pgpass");
    let file_env = [("PGPASSFILE", file.to_str().expect("utf-8 path"))];
    set_mode(&file, 0o644);
    let out = migrate(&url, &file_env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("chmod 600"), "{err}");
    assert!(!err.contains(password), "{err}");
    set_mode(&file, 0o600);
    stdout_ok(&migrate(&url, &file_env));
    std::fs::remove_file(&file).expect("remove pgpass");
}

fn set_mode(file: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn an_unsupported_parameter_is_named_and_a_password_in_the_flag_still_refused() {
    let err = refused(&migrate(
        "postgres://postgres@127.0.0.1/postgres?sslcert=/c.pem",
        &[],
    ));
    assert!(
        err.contains("connection string parameter `sslcert` is not supported: client certificates"),
        "{err}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sqs2pg"))
        .args([
            "migrate",
            "--database-url",
            "postgres://u:flag-secret@127.0.0.1/x?sslmode=verify-full",
        ])
        .output()
        .expect("run sqs2pg");
    let err = refused(&out);
    assert!(
        err.contains("holds a password") && !err.contains("flag-secret"),
        "{err}"
    );
}
