//! The rustls client configuration for the database: the roots server certificates are
//! checked against (the system's, or a PEM bundle such as RDS's `global-bundle.pem`), and
//! whether the host name is checked too (`sslmode=verify-ca` leaves it out).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::ConfigError;

/// Where the roots come from.
#[derive(Clone, Copy, Debug)]
pub(super) enum Roots<'a> {
    /// The operating system's store.
    System,
    /// A PEM bundle, and the setting that named it (for errors).
    File(&'a Path, &'static str),
}

/// A configuration checking the chain against `roots`, and the host name when `check_name`.
pub(super) fn client_config(
    roots: Roots<'_>,
    check_name: bool,
) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    static SYSTEM: OnceLock<rustls::RootCertStore> = OnceLock::new();
    let (store, name) = match roots {
        Roots::File(path, name) => (
            roots_from_file(path).map_err(|problem| ConfigError::Invalid { name, problem })?,
            name,
        ),
        // Read once per process: the store does not change while it runs.
        Roots::System => (
            SYSTEM
                .get_or_init(|| {
                    let mut roots = rustls::RootCertStore::empty();
                    for cert in rustls_native_certs::load_native_certs().certs {
                        let _ = roots.add(cert);
                    }
                    roots
                })
                .clone(),
            "--database-url / DATABASE_URL",
        ),
    };
    build(store, check_name).map_err(|problem| ConfigError::Invalid { name, problem })
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

fn build(
    roots: rustls::RootCertStore,
    check_name: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let config = if check_name {
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        let verifier = ChainOnly {
            roots,
            algorithms: provider.signature_verification_algorithms,
        };
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// `sslmode=verify-ca`: the chain must lead to one of the roots; the name the server is
/// reached by is not compared with the certificate's. Each step is rustls's own public
/// function (the chain check webpki's verifier makes, the handshake signature checks), so
/// this only leaves out the name comparison: wrapping `WebPkiServerVerifier` and forgiving
/// its name error instead would depend on the order of its checks.
#[derive(Debug)]
struct ChainOnly {
    roots: rustls::RootCertStore,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA_FILE: &str = "--db-ca-file / SQS2PG_DB_CA_FILE";

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
        let file = file_with("cfg", CA_PEM);
        assert!(client_config(Roots::File(&file, CA_FILE), true).is_ok());
        assert!(client_config(Roots::File(&file, CA_FILE), false).is_ok());
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
        let missing = Roots::File(Path::new("/nonexistent/ca.pem"), CA_FILE);
        let err = client_config(missing, true).unwrap_err();
        assert!(err.to_string().contains("SQS2PG_DB_CA_FILE"), "{err}");
    }
}
