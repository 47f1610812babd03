//! Secret files: key material kept outside the object store.
//!
//! A secret file is created once, with mode 0600, by writing to a temporary file in the same
//! directory and linking it into place without replacing an existing file, so two processes
//! starting together end up with the same key rather than each with its own.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Errors reading or creating a secret file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretFileError {
    /// The file exists but could not be read.
    #[error("cannot read {what} file {path}: {source}")]
    Read {
        /// Which secret (e.g. "key-encryption key").
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be created.
    #[error("cannot create {what} file {path}: {source}")]
    Create {
        /// Which secret.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file's content is not what this secret must be.
    #[error("{what} file {path} is malformed: {reason}")]
    Malformed {
        /// Which secret.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Group or others may read or write the file.
    #[error("{what} file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)")]
    Permissions {
        /// Which secret.
        what: &'static str,
        /// Where.
        path: PathBuf,
        /// Its mode bits.
        mode: u32,
    },
}

/// Reads a secret file, refusing one that group or others can access.
pub fn read_secret(path: &Path, what: &'static str) -> Result<Vec<u8>, SecretFileError> {
    let meta = fs::metadata(path).map_err(|source| SecretFileError::Read { what, path: path.into(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Permissions { what, path: path.into(), mode });
    }
    fs::read(path).map_err(|source| SecretFileError::Read { what, path: path.into(), source })
}

/// Reads the secret at `path`, creating it from `make()` (mode 0600, parent directories mode
/// 0700) when it does not exist. Returns the content and whether it was created now.
pub fn read_or_create_secret(
    path: &Path,
    what: &'static str,
    make: impl FnOnce() -> Vec<u8>,
) -> Result<(Vec<u8>, bool), SecretFileError> {
    if path.exists() {
        return read_secret(path, what).map(|b| (b, false));
    }
    let create = |source| SecretFileError::Create { what, path: path.into(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(create)?;
    }
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|s| s.to_str()).unwrap_or("secret"),
        std::process::id()
    ));
    let content = make();
    {
        let mut f = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).map_err(create)?;
        f.write_all(&content).map_err(create)?;
        f.sync_all().map_err(create)?;
    }
    // hard_link fails if the target exists: the first creator wins, the others read its key.
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok((content, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => read_secret(path, what).map(|b| (b, false)),
        Err(e) => Err(create(e)),
    }
}
