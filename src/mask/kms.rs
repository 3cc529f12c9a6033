//! KMS envelope keys: keyring entries `kid=kms:<base64 blob>` hold a 64-byte data key
//! wrapped by an AWS KMS key. They are unwrapped once at start-up with `Decrypt`; the key
//! bytes then live only in memory (zeroized on drop). `keygen --kms-key-id` makes one with
//! `GenerateDataKeyWithoutPlaintext`, so the plain key never exists outside KMS and this
//! process.
//!
//! The encryption context `{purpose: sqs2pg-masking-key, kid: <kid>}` binds each blob to its
//! purpose and its key id: a blob relabelled under another kid does not unwrap, and KMS's
//! audit trail (CloudTrail) records which key was unwrapped for what.

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_kms::primitives::Blob;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::aws::{error_text, failure_kind, iam_action, FailureKind};

use super::keyring::{KeyEntry, KeyError, KeyMaterial, Keyring, KEY_LEN, KMS_PREFIX};

/// The `purpose` value of the encryption context.
pub const PURPOSE: &str = "sqs2pg-masking-key";

/// A KMS step that failed. Never carries key bytes.
#[derive(Debug, Error)]
pub enum KmsError {
    /// KMS answered and refused (wrong blob, wrong key, disabled key, no permission).
    #[error("KMS refused to unwrap key {kid:?}: {detail}. Check that the entry was made by `sqs2pg keygen --kid {kid} --kms-key-id ...`, that its KMS key exists and is enabled, and that these credentials may kms:Decrypt with it")]
    Refused {
        /// Whose key.
        kid: String,
        /// KMS's error.
        detail: String,
    },
    /// KMS refused the call by policy: a grant to add, named by its IAM action.
    #[error("{}", crate::aws::access_denied_text(action, detail))]
    AccessDenied {
        /// The IAM action refused (`kms:Decrypt`).
        action: String,
        /// KMS's code and message.
        detail: String,
    },
    /// KMS could not be reached.
    #[error("KMS is unreachable while unwrapping key {kid:?}: {detail}. Check AWS_REGION, AWS_ENDPOINT_URL and the network")]
    Unreachable {
        /// Whose key.
        kid: String,
        /// The SDK's error.
        detail: String,
    },
    /// Making a data key failed.
    #[error("KMS GenerateDataKeyWithoutPlaintext with key {key_id:?} failed: {detail}. Check the key id, ARN or alias, the region, and the kms:GenerateDataKeyWithoutPlaintext permission")]
    Generate {
        /// The KMS key asked for.
        key_id: String,
        /// KMS's error.
        detail: String,
    },
    /// The unwrapped key is unusable.
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl KmsError {
    /// True when KMS answered with a refusal: a configuration problem, not an outage.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::Refused { .. } | Self::AccessDenied { .. } | Self::Generate { .. } | Self::Key(_)
        )
    }
}

/// Unwraps the KMS entries of a keyring (plain entries pass through) and builds the ring.
pub async fn resolve(
    entries: Vec<KeyEntry>,
    sdk: &aws_config::SdkConfig,
) -> Result<Keyring, KmsError> {
    let client = aws_sdk_kms::Client::new(sdk);
    let mut plain = Vec::with_capacity(entries.len());
    for KeyEntry { kid, material } in entries {
        let bytes = match material {
            KeyMaterial::Plain(b) => b,
            KeyMaterial::KmsWrapped(blob) => {
                let out = client
                    .decrypt()
                    .ciphertext_blob(Blob::new(blob))
                    .encryption_context("purpose", PURPOSE)
                    .encryption_context("kid", &kid)
                    .send()
                    .await
                    .map_err(|e| {
                        let detail = error_text(&e);
                        if failure_kind(&e) == FailureKind::AccessDenied {
                            KmsError::AccessDenied {
                                action: iam_action("kms", "Decrypt"),
                                detail,
                            }
                        } else if e.as_service_error().is_some() {
                            KmsError::Refused {
                                kid: kid.clone(),
                                detail,
                            }
                        } else {
                            KmsError::Unreachable {
                                kid: kid.clone(),
                                detail,
                            }
                        }
                    })?;
                Zeroizing::new(out.plaintext.map(Blob::into_inner).unwrap_or_default())
            }
        };
        plain.push((kid, bytes));
    }
    Ok(Keyring::from_plain(plain)?)
}

/// Asks KMS for a new 64-byte data key wrapped by `key_id`; returns the keyring entry
/// `kid=kms:<base64 blob>`. The plain key is never printed.
///
/// Uses `GenerateDataKeyWithoutPlaintext`, then checks with one `Decrypt` that the key is
/// 64 bytes ([`wrap_random_key`] stands in where it is not). When the caller may not
/// `Decrypt` (separation of duties), the check is skipped with a warning.
pub async fn generate_entry(
    kid: &str,
    key_id: &str,
    sdk: &aws_config::SdkConfig,
) -> Result<String, KmsError> {
    // Validate the kid the same way plain keys are validated.
    Keyring::generate_entry(kid)?;
    let client = aws_sdk_kms::Client::new(sdk);
    let out = client
        .generate_data_key_without_plaintext()
        .key_id(key_id)
        .number_of_bytes(KEY_LEN as i32)
        .encryption_context("purpose", PURPOSE)
        .encryption_context("kid", kid)
        .send()
        .await
        .map_err(|e| generate_err(key_id, "GenerateDataKeyWithoutPlaintext", &e))?;
    let mut blob = out.ciphertext_blob.ok_or_else(|| {
        generate_failed(
            key_id,
            "GenerateDataKeyWithoutPlaintext",
            "no ciphertext in the answer".into(),
        )
    })?;
    let check = client
        .decrypt()
        .ciphertext_blob(blob.clone())
        .encryption_context("purpose", PURPOSE)
        .encryption_context("kid", kid)
        .send()
        .await;
    match check {
        Ok(d) if d.plaintext.as_ref().map(|p| p.as_ref().len()) == Some(KEY_LEN) => {}
        Ok(_) => {
            tracing::warn!("this KMS endpoint ignored NumberOfBytes=64 (LocalStack does); making the key with GenerateRandom + Encrypt instead");
            blob = wrap_random_key(&client, kid, key_id).await?;
        }
        Err(e) => {
            tracing::warn!(error = %error_text(&e), "could not check the new key with kms:Decrypt (no permission?); the entry is unverified");
        }
    }
    Ok(format!(
        "{kid}={KMS_PREFIX}{}",
        STANDARD.encode(blob.as_ref())
    ))
}

/// The LocalStack workaround: some emulators ignore `NumberOfBytes` and return a 32-byte data
/// key, so the 64 bytes come from `GenerateRandom` and are wrapped with `Encrypt` under the
/// same encryption context.
async fn wrap_random_key(
    client: &aws_sdk_kms::Client,
    kid: &str,
    key_id: &str,
) -> Result<Blob, KmsError> {
    let random = client
        .generate_random()
        .number_of_bytes(KEY_LEN as i32)
        .send()
        .await
        .map_err(|e| generate_err(key_id, "GenerateRandom", &e))?;
    let key = Zeroizing::new(random.plaintext.map(Blob::into_inner).unwrap_or_default());
    if key.len() != KEY_LEN {
        return Err(generate_failed(
            key_id,
            "GenerateRandom",
            format!("returned {} bytes, not {KEY_LEN}", key.len()),
        ));
    }
    client
        .encrypt()
        .key_id(key_id)
        .plaintext(Blob::new(key.to_vec()))
        .encryption_context("purpose", PURPOSE)
        .encryption_context("kid", kid)
        .send()
        .await
        .map_err(|e| generate_err(key_id, "Encrypt", &e))?
        .ciphertext_blob
        .ok_or_else(|| generate_failed(key_id, "Encrypt", "no ciphertext in the answer".into()))
}

/// [`generate_failed`] for an SDK error, unless KMS refused the call by policy: then the IAM
/// action to grant is what the user needs to read.
fn generate_err<E>(key_id: &str, op: &str, e: &SdkError<E, HttpResponse>) -> KmsError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let detail = error_text(e);
    if failure_kind(e) == FailureKind::AccessDenied {
        return KmsError::AccessDenied {
            action: iam_action("kms", op),
            detail,
        };
    }
    generate_failed(key_id, op, detail)
}

fn generate_failed(key_id: &str, op: &str, detail: String) -> KmsError {
    KmsError::Generate {
        key_id: key_id.into(),
        detail: format!("{op}: {detail}"),
    }
}
