//! `sqs2pg keygen`: a new keyring entry on stdout, the advice on stderr.

use crate::error::Failure;
use crate::ops::admin;

pub(super) async fn keygen(kid: &str, kms_key_id: Option<&str>) -> Result<(), Failure> {
    let entry = admin::keygen(kid, kms_key_id).await?;
    println!("{entry}");
    eprintln!("sqs2pg: new key {kid:?}: keep it secret and apart from the data (e.g. `> keys && chmod 600 keys`); losing it makes its tokens unrecoverable");
    Ok(())
}
