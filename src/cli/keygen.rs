//! `sqs2pg keygen`: a new keyring entry on stdout, or with `--out FILE` in a new file only
//! its owner can read; the advice on stderr.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::error::Failure;
use crate::ops::admin;

pub(super) async fn keygen(
    kid: &str,
    kms_key_id: Option<&str>,
    out: Option<&Path>,
) -> Result<(), Failure> {
    let entry = admin::keygen(kid, kms_key_id).await?;
    match out {
        Some(path) => {
            write_new_keyring(path, &entry)?;
            eprintln!("sqs2pg: new key {kid:?} written to {} (mode 600): keep it secret and apart from the data; losing it makes its tokens unrecoverable", path.display());
        }
        None => {
            println!("{entry}");
            eprintln!("sqs2pg: new key {kid:?}: keep it secret and apart from the data (`--out FILE` writes it to a new file only you can read); losing it makes its tokens unrecoverable");
        }
    }
    Ok(())
}

/// Creates `path` with `entry` in it, readable by its owner only from the moment it exists
/// (`O_CREAT|O_EXCL` with mode 600: no window in which a wider mode, or a file someone else
/// put there first, holds the key). An existing file is never overwritten: it may be the
/// keyring whose keys the stored tokens need.
fn write_new_keyring(path: &Path, entry: &str) -> Result<(), Failure> {
    let mut file = create_private(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Failure::usage(format!(
            "--out {p}: the file exists and keygen never overwrites a keyring (its keys may be the only way to reveal stored tokens). To add a key, write it to a new file and put the old entries after it, as the first entry is the one that writes: `sqs2pg keygen --kid k2 --out {p}.new && cat {p} >> {p}.new && mv {p}.new {p}`",
            p = path.display()
        )),
        _ => Failure::usage(format!("--out {}: cannot create it: {e}", path.display())),
    })?;
    let written = file
        .write_all(format!("{entry}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing the new key to {}", path.display()));
    if written.is_err() {
        // A half-written keyring would load as a broken one; it held nothing else.
        let _ = std::fs::remove_file(path);
    }
    Ok(written?)
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}
