//! Where the keyring comes from (the keys file, else `SQS2PG_KEYS`), the keys file's
//! permission check, and the KMS unwrap of wrapped entries.

use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use crate::mask::{self, KeyMaterial, Keyring};

/// The keyring's origin, chosen before anything is read.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// `--keys-file` / `SQS2PG_KEYS_FILE`: wins over the variable.
    File(PathBuf),
    /// `SQS2PG_KEYS`: the keyring text itself.
    Env(SecretString),
    /// Nothing configured: `run` refuses to start.
    None,
}

impl KeySource {
    /// The keys file when given, else `SQS2PG_KEYS` when set and not blank.
    pub fn choose(keys_file: Option<&Path>) -> Self {
        match keys_file {
            Some(path) => Self::File(path.to_owned()),
            None => std::env::var("SQS2PG_KEYS")
                .ok()
                .filter(|s| !s.trim().is_empty())
                .map_or(Self::None, |s| Self::Env(SecretString::from(s))),
        }
    }

    fn origin(&self) -> &'static str {
        match self {
            Self::File(_) => "--keys-file / SQS2PG_KEYS_FILE",
            _ => "SQS2PG_KEYS",
        }
    }

    fn text(&self) -> Result<SecretString, ConfigError> {
        match self {
            Self::File(path) => read_keys_file(path),
            Self::Env(text) => Ok(text.clone()),
            Self::None => Err(ConfigError::NoKey),
        }
    }

    /// Reads the keyring. A keys file readable by group or others is refused; KMS-wrapped
    /// entries are unwrapped with KMS (one `Decrypt` each).
    pub async fn load(&self) -> Result<Keyring, ConfigError> {
        let text = self.text()?;
        let origin = self.origin();
        let key_err = |source| ConfigError::Key { origin, source };
        let entries = mask::parse_entries(text.expose_secret()).map_err(key_err)?;
        if entries
            .iter()
            .any(|e| matches!(e.material, KeyMaterial::KmsWrapped(_)))
        {
            let sdk = crate::aws::sdk_config().await;
            return Ok(mask::kms::resolve(entries, &sdk).await?);
        }
        let plain = entries
            .into_iter()
            .filter_map(|e| match e.material {
                KeyMaterial::Plain(bytes) => Some((e.kid, bytes)),
                KeyMaterial::KmsWrapped(_) => None,
            })
            .collect();
        Keyring::from_plain(plain).map_err(key_err)
    }

    /// Where the keys come from and their ids (writing key first), for `sqs2pg config`:
    /// never key bytes, and nothing is unwrapped.
    pub fn describe(&self) -> (String, String) {
        let origin = match self {
            Self::File(p) => format!("file {}", p.display()),
            Self::Env(_) => "SQS2PG_KEYS".to_string(),
            Self::None => "none (run refuses to start; see `sqs2pg keygen --help`)".to_string(),
        };
        let kids = self
            .text()
            .ok()
            .and_then(|t| mask::parse_entries(t.expose_secret()).ok())
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| match e.material {
                        KeyMaterial::Plain(_) => e.kid.clone(),
                        KeyMaterial::KmsWrapped(_) => format!("{} (kms)", e.kid),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_else(|| "-".into());
        (origin, kids)
    }
}

fn read_keys_file(path: &Path) -> Result<SecretString, ConfigError> {
    let io_err = |source| ConfigError::KeysFile {
        path: path.to_owned(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(io_err)?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o077 != 0 {
            return Err(ConfigError::KeysFileMode {
                path: path.to_owned(),
                mode,
            });
        }
    }
    Ok(SecretString::from(
        std::fs::read_to_string(path).map_err(io_err)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_keys_say_how_to_make_one() {
        let e = KeySource::None.load().await.unwrap_err();
        assert!(e.to_string().contains("sqs2pg keygen"));
        let e = KeySource::File("/nonexistent/keys".into())
            .load()
            .await
            .unwrap_err();
        assert!(e.to_string().contains("--keys-file"));
        let e = KeySource::Env(SecretString::from("k1=AAAA"))
            .load()
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("SQS2PG_KEYS: "));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn group_readable_keys_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("sqs2pg-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("keys");
        std::fs::write(&path, Keyring::generate_entry("k1").unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let source = KeySource::File(path.clone());
        let e = source.load().await.unwrap_err();
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let ring = source.load().await.unwrap();
        assert_eq!(ring.writing_kid(), "k1");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
