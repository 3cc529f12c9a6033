//! The rustls client configuration for the database: the system's roots, or the PEM bundle
//! named by `--db-ca-file` / `SQS2PG_DB_CA_FILE` (for example RDS's `global-bundle.pem`).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::pki_types::{pem::PemObject, CertificateDer};

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
    // rustls's own PEM reader (rustls-pemfile is unmaintained, RUSTSEC-2025-0134); like it,
    // this skips sections that are not certificates (a key bundled in the same file).
    for cert in CertificateDer::pem_slice_iter(&pem) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-256 CA certificate (CN=sqs2pg-test-ca, valid until 2126).
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBiTCCAS+gAwIBAgIUJ0+UMMXaq7STBBWYad7+g/TKmvkwCgYIKoZIzj0EAwIw\nGTEXMBUGA1UEAwwOc3FzMnBnLXRlc3QtY2EwIBcNMjYxMjAyMDE0MTE3WhgPMjEy\nNjExMDgwMTQxMTdaMBkxFzAVBgNVBAMMDnNxczJwZy10ZXN0LWNhMFkwEwYHKoZI\nzj0CAQYIKoZIzj0DAQcDQgAE0fYewIkuQ4dxwpCbu42JkEQu/bi99w0uLpI6qwms\nXpfmqnkFn/CJuufgzfknfGQgtAcGGRRPoTCCCDqQ3AnhOaNTMFEwHQYDVR0OBBYE\nFC8avvyaXavVmvacOgp68hUNZC1mMB8GA1UdIwQYMBaAFC8avvyaXavVmvacOgp6\n8hUNZC1mMA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIgCOiKEK3a\n6tVODROYMekSvQkOQB4xrNDr8sKT8zEQ3lYCIQD71QfUmnxcmUu0VQ9kipn7uBRw\nRD+7690Pqm4miJIUvQ==\n-----END CERTIFICATE-----";

    fn file_with(name: &str, text: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("sqs2pg-tls-{}-{name}.pem", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    fn roots_of(name: &str, text: &str) -> Result<rustls::RootCertStore, String> {
        let path = file_with(name, text);
        let roots = roots_from_file(&path);
        std::fs::remove_file(&path).unwrap();
        roots
    }

    #[test]
    fn a_bundle_gives_one_root_per_certificate_and_skips_other_sections() {
        let key =
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        let bundle = format!("{CA_PEM}\n{key}{CA_PEM}\n");
        assert_eq!(roots_of("bundle", &bundle).unwrap().len(), 2);
        assert!(client_config(Some(&file_with("cfg", CA_PEM))).is_ok());
    }

    #[test]
    fn a_file_without_certificates_is_refused_naming_it() {
        let err = roots_of("empty", "no pem here\n").unwrap_err();
        assert!(err.contains("holds no certificate"), "{err}");
    }

    #[test]
    fn a_broken_certificate_section_is_refused() {
        let broken = CA_PEM.replace("-----END CERTIFICATE-----", "");
        let err = roots_of("broken", &broken).unwrap_err();
        assert!(err.contains("not a PEM certificate bundle"), "{err}");
        let garbled = CA_PEM.replacen("MIIB", "MI!B", 1);
        assert!(roots_of("garbled", &garbled).is_err());
    }

    #[test]
    fn a_missing_file_is_refused_naming_the_setting() {
        let err = client_config(Some(Path::new("/nonexistent/ca.pem"))).unwrap_err();
        assert!(err.to_string().contains("SQS2PG_DB_CA_FILE"), "{err}");
    }
}
