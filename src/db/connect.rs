//! Opening a connection: TLS as libpq's `sslmode` says, the connection driven on its own
//! task.

use tokio_postgres::{Client, NoTls};

use super::DbError;
use crate::config::DbConfig;

/// Opens a connection and drives it on a background task.
///
/// TLS follows `sslmode` in the connection string as libpq does: `disable` never, `prefer`
/// (the default) when the server offers it, `require`, `verify-ca` and `verify-full` always.
/// The server certificate is verified against the roots [`DbConfig`] was built with, its
/// host name too but under `verify-ca` (see [`DbConfig::new`]).
pub async fn connect(db: &DbConfig) -> Result<Client, DbError> {
    let connect_err = |cause| DbError::Connect {
        target: describe(&db.pg),
        cause,
    };
    let client = match db.tls() {
        None => {
            let (client, conn) = db.pg.connect(NoTls).await.map_err(connect_err)?;
            spawn_connection(conn);
            client
        }
        Some(tls) => {
            let connector = tokio_postgres_rustls::MakeRustlsConnect::new((**tls).clone());
            let (client, conn) = db.pg.connect(connector).await.map_err(connect_err)?;
            spawn_connection(conn);
            client
        }
    };
    Ok(client)
}

fn spawn_connection<F>(conn: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "postgres connection ended");
        }
    });
}

/// `host:port,host:port/db`, for errors: never the password.
fn describe(pg: &tokio_postgres::Config) -> String {
    let ports = pg.get_ports();
    let hosts: Vec<String> = pg
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            // One port for all hosts, or one each, as libpq allows.
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost:5432".to_owned()
    } else {
        hosts.join(",")
    };
    format!("{hosts}/{}", pg.get_dbname().unwrap_or("(default db)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_every_host_and_never_the_password() {
        let pg: tokio_postgres::Config = "postgres://u:pw@db1:5432,db2:5433/app".parse().unwrap();
        assert_eq!(describe(&pg), "db1:5432,db2:5433/app");
        let pg: tokio_postgres::Config = "host=a,b port=6432 dbname=x password=pw".parse().unwrap();
        assert_eq!(describe(&pg), "a:6432,b:6432/x");
    }
}
