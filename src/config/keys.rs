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

impl super::settings::GlobalArgs {
    /// Where the keyring comes from; nothing is read yet.
    pub fn keys(&self) -> KeySource {
        KeySource::choose(self.keys_file.as_deref())
    }
}

fn read_keys_file(path: &Path) -> Result<SecretString, ConfigError> {
    // Symbolic links are followed, as before (a Kubernetes Secret volume is made of them);
    // what is checked is the file they lead to, through the handle.
    let file = std::fs::File::open(path).map_err(|source| keys_file_error(path, source))?;
    read_open_keys_file(file, path)
}

/// Checks and reads a keys file already open: owner and mode come from the handle, and the
/// bytes from the same handle, so the file checked is the file read. (Checking the path and
/// then opening it again left a window in which the path could be pointed elsewhere.)
fn read_open_keys_file(mut file: std::fs::File, path: &Path) -> Result<SecretString, ConfigError> {
    use std::io::Read;
    #[cfg(unix)]
    {
        let metadata = file
            .metadata()
            .map_err(|source| keys_file_error(path, source))?;
        check_private(&metadata, path, effective_uid())?;
    }
    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|source| keys_file_error(path, source))?;
    Ok(SecretString::from(text))
}

fn keys_file_error(path: &Path, source: std::io::Error) -> ConfigError {
    ConfigError::KeysFile {
        path: path.to_owned(),
        source,
    }
}

/// Refuses a keys file that group or others may read, or that belongs to someone other than
/// `euid` or root: its owner can rewrite it, or make it readable, at any time.
#[cfg(unix)]
fn check_private(metadata: &std::fs::Metadata, path: &Path, euid: u32) -> Result<(), ConfigError> {
    use std::os::unix::fs::MetadataExt;
    let owner = metadata.uid();
    if owner != euid && owner != 0 {
        return Err(ConfigError::KeysFileOwner {
            path: path.to_owned(),
            owner,
            euid,
        });
    }
    let mode = metadata.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(ConfigError::KeysFileMode {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(unix)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
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

    /// A directory of keys files for one test, removed when dropped.
    #[cfg(unix)]
    struct KeysDir(PathBuf);

    #[cfg(unix)]
    impl KeysDir {
        fn new(test: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("sqs2pg-keys-{}-{test}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        /// A keyring file named `name` whose one key is `kid`, with permission bits `mode`.
        fn keys(&self, name: &str, kid: &str, mode: u32) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let path = self.0.join(name);
            std::fs::write(&path, Keyring::generate_entry(kid).unwrap()).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            path
        }
    }

    #[cfg(unix)]
    impl Drop for KeysDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The writing key id of the keyring at `path`, or the error's text.
    #[cfg(unix)]
    async fn writing_kid(path: &Path) -> Result<String, String> {
        KeySource::File(path.to_owned())
            .load()
            .await
            .map(|ring| ring.writing_kid().to_owned())
            .map_err(|e| e.to_string())
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn group_readable_keys_file_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = KeysDir::new("mode");
        let path = dir.keys("keys", "k1", 0o640);
        let e = writing_kid(&path).await.unwrap_err();
        assert!(e.contains(&format!("chmod 600 {}", path.display())), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(writing_kid(&path).await.as_deref(), Ok("k1"));
    }

    /// A 0600 file that belongs to another user is refused, naming the file, its owner and
    /// the fix; one owned by root is accepted (root could read it anyway).
    #[cfg(unix)]
    #[tokio::test]
    async fn a_keys_file_owned_by_another_user_is_refused_naming_its_owner() {
        use std::os::unix::fs::MetadataExt;
        let dir = KeysDir::new("owner");
        let path = dir.keys("keys", "k1", 0o600);
        let euid = effective_uid();
        if euid == 0 {
            std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
            let e = writing_kid(&path).await.unwrap_err();
            let expected = format!(
                "{} belongs to uid 65534, not to this process's user (uid 0) or root",
                path.display()
            );
            assert!(
                e.contains(&expected) && e.contains(&format!("chown 0 {}", path.display())),
                "{e}"
            );
            std::os::unix::fs::chown(&path, Some(0), None).unwrap();
            let root_owned = std::fs::metadata(&path).unwrap();
            assert!(
                check_private(&root_owned, &path, 12345).is_ok(),
                "root's file, another user"
            );
        } else {
            // Without root the file cannot be given away: check it against a uid not its owner's.
            let mine = std::fs::metadata(&path).unwrap();
            let e = check_private(&mine, &path, mine.uid() + 1).unwrap_err();
            assert!(matches!(e, ConfigError::KeysFileOwner { .. }), "{e}");
        }
    }

    /// What is checked and read is the file that was opened: a path pointed at another
    /// (group-readable) file after the open is neither checked nor read.
    #[cfg(unix)]
    #[test]
    fn the_file_checked_is_the_file_opened_and_read() {
        let dir = KeysDir::new("swap");
        let path = dir.keys("keys", "opened", 0o600);
        let file = std::fs::File::open(&path).unwrap();
        let swapped = dir.keys("swapped", "swapped", 0o644);
        std::fs::rename(&swapped, &path).unwrap();
        let text = read_open_keys_file(file, &path).unwrap();
        assert!(text.expose_secret().starts_with("opened="));
    }

    /// A symbolic link is followed, as a Secret volume needs: the file it leads to is what is
    /// checked, and the error names the path given.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlink_is_followed_and_the_file_it_leads_to_is_checked() {
        let dir = KeysDir::new("symlink");
        let open = dir.keys("open", "k1", 0o644);
        let private = dir.keys("private", "k2", 0o600);
        let (to_open, to_private) = (dir.0.join("to-open"), dir.0.join("to-private"));
        std::os::unix::fs::symlink(&open, &to_open).unwrap();
        std::os::unix::fs::symlink(&private, &to_private).unwrap();
        let e = writing_kid(&to_open).await.unwrap_err();
        assert!(
            e.contains(&format!("chmod 600 {}", to_open.display())),
            "{e}"
        );
        assert_eq!(writing_kid(&to_private).await.as_deref(), Ok("k2"));
    }
}
