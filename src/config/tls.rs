//! The rustls client configuration for the database: the system's roots, or the PEM bundle
//! named by `--db-ca-file` / `SQS2PG_DB_CA_FILE` (for example RDS's `global-bundle.pem`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use super::ConfigError;

const CA_FILE: &str = "--db-ca-file / SQS2PG_DB_CA_FILE";

/// Builds the configuration once per CA choice; the system roots are read once per process.
pub(super) fn client_config(
    ca_file: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    static SYSTEM: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    let invalid = |problem: String| ConfigError::Invalid {
        name: CA_FILE,
        problem,
    };
    match ca_file {
        Some(path) => build(roots_from_file(path).map_err(invalid)?).map_err(invalid),
        None => SYSTEM
            .get_or_init(|| {
                let mut roots = rustls::RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                build(roots)
            })
            .clone()
            .map_err(invalid),
    }
}

fn roots_from_file(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("unusable certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "{} holds no certificate: give the PEM bundle of your database's CA",
            path.display()
        ));
    }
    Ok(roots)
}

fn build(roots: rustls::RootCertStore) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}
