//! The keyring: `kid=BASE64KEY` (or `kid=kms:BASE64BLOB`) entries separated by newlines or
//! commas; the first entry writes, every entry reads. Key bytes live in `secrecy` boxes and
//! are zeroized on drop.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox};
use thiserror::Error;

/// AES-256-SIV takes a 64-byte key (two AES-256 keys: MAC and CTR).
pub const KEY_LEN: usize = 64;

/// A keyring that cannot be used. Each message says how to make a good one.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    /// Nothing configured, or only blank entries.
    #[error("the keyring is empty: make a key with `sqs2pg keygen --kid k1 --out keys`, then pass --keys-file keys (or put the line in SQS2PG_KEYS)")]
    Empty,
    /// An entry without `=`.
    #[error(
        "keyring entry {index} is not `kid=BASE64KEY`: make one with `sqs2pg keygen --kid k1`"
    )]
    NotAnEntry {
        /// 1-based position of the entry.
        index: usize,
    },
    /// A kid that would break the token format.
    #[error("key id {kid:?} is not 1-32 characters of [A-Za-z0-9_-]: pick another with `sqs2pg keygen --kid ID`")]
    BadKid {
        /// The offending kid (not secret).
        kid: String,
    },
    /// The same kid twice.
    #[error("key id {kid:?} appears twice in the keyring: each key needs its own id")]
    DuplicateKid {
        /// The repeated kid.
        kid: String,
    },
    /// Not standard base64.
    #[error("key {kid:?} is not valid base64: make a new one with `sqs2pg keygen --kid {kid}`")]
    BadBase64 {
        /// Whose key.
        kid: String,
    },
    /// A KMS-wrapped entry where only plain keys can be used.
    #[error("key {kid:?} is KMS-wrapped (kid=kms:...) and must be unwrapped with KMS first")]
    NeedsKms {
        /// Whose key.
        kid: String,
    },
    /// Wrong size.
    #[error("key {kid:?} is {len} bytes; AES-256-SIV needs {KEY_LEN}: make one with `sqs2pg keygen --kid {kid}`")]
    WrongLength {
        /// Whose key.
        kid: String,
        /// Its decoded size.
        len: usize,
    },
}

struct Key {
    kid: String,
    bytes: SecretBox<[u8; KEY_LEN]>,
}

/// The parsed keyring. Key bytes are zeroized on drop and never printed.
pub struct Keyring {
    keys: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("kids", &self.kids())
            .field("keys", &"<redacted>")
            .finish()
    }
}

fn valid_kid(kid: &str) -> bool {
    (1..=32).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Key bytes as written in the keyring: plain, or a KMS ciphertext blob to unwrap.
pub enum KeyMaterial {
    /// Base64 of the key itself.
    Plain(zeroize::Zeroizing<Vec<u8>>),
    /// `kms:<base64 of the ciphertext blob>` (a data key wrapped by a KMS key).
    KmsWrapped(Vec<u8>),
}

/// One parsed keyring entry.
pub struct KeyEntry {
    /// Key id, written into every token.
    pub kid: String,
    /// The key, plain or wrapped.
    pub material: KeyMaterial,
}

/// Prefix of a KMS-wrapped entry's value.
pub const KMS_PREFIX: &str = "kms:";

/// Parses keyring text: `kid=BASE64KEY` or `kid=kms:BASE64BLOB` entries separated by
/// newlines or commas. Blank entries and lines starting with `#` are skipped.
pub fn parse_entries(text: &str) -> Result<Vec<KeyEntry>, KeyError> {
    let mut out: Vec<KeyEntry> = Vec::new();
    let entries = text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.starts_with('#'));
    for (i, entry) in entries.enumerate() {
        let (kid, value) = entry
            .split_once('=')
            .ok_or(KeyError::NotAnEntry { index: i + 1 })?;
        let (kid, value) = (kid.trim(), value.trim());
        if !valid_kid(kid) {
            return Err(KeyError::BadKid { kid: kid.into() });
        }
        if out.iter().any(|k| k.kid == kid) {
            return Err(KeyError::DuplicateKid { kid: kid.into() });
        }
        let bad = || KeyError::BadBase64 { kid: kid.into() };
        let material = match value.strip_prefix(KMS_PREFIX) {
            Some(blob) => KeyMaterial::KmsWrapped(STANDARD.decode(blob).map_err(|_| bad())?),
            None => KeyMaterial::Plain(zeroize::Zeroizing::new(
                STANDARD.decode(value).map_err(|_| bad())?,
            )),
        };
        out.push(KeyEntry {
            kid: kid.into(),
            material,
        });
    }
    if out.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(out)
}

impl Keyring {
    /// Parses keyring text holding plain keys only (see [`parse_entries`]).
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let plain = parse_entries(text)?
            .into_iter()
            .map(|e| match e.material {
                KeyMaterial::Plain(bytes) => Ok((e.kid, bytes)),
                KeyMaterial::KmsWrapped(_) => Err(KeyError::NeedsKms { kid: e.kid }),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_plain(plain)
    }

    /// Builds the ring from plain key bytes, writing key first; checks each is 64 bytes.
    pub fn from_plain(
        entries: Vec<(String, zeroize::Zeroizing<Vec<u8>>)>,
    ) -> Result<Self, KeyError> {
        let mut keys = Vec::with_capacity(entries.len());
        for (kid, decoded) in entries {
            if decoded.len() != KEY_LEN {
                return Err(KeyError::WrongLength {
                    kid,
                    len: decoded.len(),
                });
            }
            let mut bytes = SecretBox::new(Box::new([0u8; KEY_LEN]));
            secrecy::ExposeSecretMut::expose_secret_mut(&mut bytes).copy_from_slice(&decoded);
            keys.push(Key { kid, bytes });
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys })
    }

    /// Makes one new keyring entry, `kid=BASE64` of 64 random bytes from the OS.
    pub fn generate_entry(kid: &str) -> Result<String, KeyError> {
        if !valid_kid(kid) {
            return Err(KeyError::BadKid { kid: kid.into() });
        }
        let mut key = zeroize::Zeroizing::new([0u8; KEY_LEN]);
        // ThreadRng is a CSPRNG seeded from the OS.
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut key[..]);
        Ok(format!("{kid}={}", STANDARD.encode(&key[..])))
    }

    /// The kid that new tokens are written under.
    pub fn writing_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// Each key id with its bytes, writing key first: what a [`super::Masker`] expands.
    pub(super) fn keys(&self) -> impl Iterator<Item = (&str, &[u8; KEY_LEN])> {
        self.keys
            .iter()
            .map(|k| (k.kid.as_str(), k.bytes.expose_secret()))
    }

    /// All kids, writing kid first.
    pub fn kids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.kid.as_str()).collect()
    }
}
