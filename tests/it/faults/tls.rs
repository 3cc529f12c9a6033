//! The TLS side of [`PrivatePg`]: a throwaway CA and a server certificate signed by it.

use std::path::PathBuf;
use std::process::Command;

use super::pg::{is_root, run};
use super::PrivatePg;

/// The openssl steps, each split on spaces: a CA, a server key with its request, and the CA's
/// signature on it (the SAN from `ext.cnf` is what clients check for `127.0.0.1`).
const OPENSSL_STEPS: [&str; 3] = [
    "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sqs2pg-test-CA -keyout ca.key -out ca.pem",
    "req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout server.key -out server.csr",
    "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
     -extfile ext.cnf -out server.pem",
];

impl PrivatePg {
    /// Writes the CA and the server's key pair, and makes the cluster accept TLS only.
    pub(super) fn make_certs(&self) {
        let d = &self.dir;
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .expect("ext");
        for step in OPENSSL_STEPS {
            let args: Vec<&str> = step.split_whitespace().collect();
            run(
                Command::new("openssl").current_dir(d).args(&args),
                &format!("openssl {step}"),
            );
        }
        self.install_certs();
    }

    /// A superuser `role` that must give `password` (SCRAM) on TLS from 127.0.0.1; other
    /// roles keep trust. The cluster restarts (`pg_ctl -w`), so the rule holds on return.
    pub fn add_password_role(&self, role: &str, password: &str) {
        let sql = format!("CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'");
        run(
            Command::new("psql").args([self.url.as_str(), "-v", "ON_ERROR_STOP=1", "-c", &sql]),
            "create role",
        );
        let hba = PathBuf::from(self.data()).join("pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).expect("pg_hba.conf");
        let first = format!("hostssl all {role} 127.0.0.1/32 scram-sha-256\n");
        std::fs::write(&hba, first + &rules).expect("pg_hba.conf");
        self.ctl(&["restart", "-m", "fast"]);
    }

    fn install_certs(&self) {
        let (d, data) = (&self.dir, PathBuf::from(self.data()));
        for f in ["server.pem", "server.key"] {
            std::fs::copy(d.join(f), data.join(f)).expect("copy cert");
        }
        let key = data.join("server.key");
        let _ = Command::new("chmod").arg("600").arg(&key).status();
        if is_root() {
            let _ = Command::new("chown")
                .arg("postgres:")
                .arg(&key)
                .arg(data.join("server.pem"))
                .status();
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).expect("postgresql.conf");
        text.push_str("\nssl = on\nssl_cert_file = 'server.pem'\nssl_key_file = 'server.key'\n");
        std::fs::write(&conf, text).expect("postgresql.conf");
        // TLS or nothing: a connection that succeeds is an encrypted one.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
    }
}
