//! The key-encryption key (KEK).
//!
//! The KEK wraps every day key and hold key; it never enters the object store. It is a file of 64
//! hex characters (256 bits), created on first run with mode 0600 outside the data directory.
//! Its id — the first 8 bytes of HMAC-SHA256(KEK, "lethe/kek-id/v1"), in hex — is written in the
//! header of everything it wraps, so a wrong KEK is recognised as such, at start, rather than
//! producing garbage.

use std::path::{Path, PathBuf};

use super::envelope::SymmetricKey;
use crate::secret_file::{self, SecretFileError};

/// A loaded KEK.
#[derive(Clone)]
pub struct Kek {
    key: SymmetricKey,
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek").field("id", &self.id).field("path", &self.path).finish()
    }
}

const WHAT: &str = "key-encryption key";

impl Kek {
    fn from_key(key: SymmetricKey, path: PathBuf) -> Self {
        let id = hex::encode(&key.derive("lethe/kek-id/v1").expose()[..8]);
        Self { key, id, path }
    }

    /// Loads the KEK from `path`, creating it if `create` and it does not exist.
    pub fn load(path: &Path, create: bool) -> Result<Self, SecretFileError> {
        Ok(Self::from_key(load_key_file(path, WHAT, create)?, path.to_path_buf()))
    }

    /// A KEK held only in memory (tests).
    pub fn ephemeral() -> Self {
        Self::from_key(SymmetricKey::generate(), PathBuf::from("<memory>"))
    }

    /// The KEK's id (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key itself.
    pub(crate) fn key(&self) -> &SymmetricKey {
        &self.key
    }

    /// The key id written in envelopes this KEK seals.
    pub fn envelope_key_id(&self) -> String {
        format!("kek:{}", self.id)
    }
}

/// Loads a 256-bit key kept as 64 hex characters in a secret file (mode 0600), creating it with a
/// fresh random key when `create` and it does not exist. Used for the KEK and the audit key.
pub fn load_key_file(path: &Path, what: &'static str, create: bool) -> Result<SymmetricKey, SecretFileError> {
    let bytes = if create {
        secret_file::read_or_create_secret(path, what, || {
            let mut s = hex::encode(SymmetricKey::generate().expose());
            s.push('\n');
            s.into_bytes()
        })?
        .0
    } else {
        secret_file::read_secret(path, what)?
    };
    let malformed = || SecretFileError::Malformed {
        what,
        path: path.into(),
        reason: "must be 64 hexadecimal characters (256 bits)".into(),
    };
    let text = String::from_utf8(bytes).map_err(|_| malformed())?;
    let raw = hex::decode(text.trim()).map_err(|_| malformed())?;
    let arr: [u8; 32] = raw.try_into().map_err(|_| malformed())?;
    Ok(SymmetricKey::from_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("keys/kek");
        let a = Kek::load(&p, true).unwrap();
        let b = Kek::load(&p, true).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn unreadable_or_bad_files_fail_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kek");
        let e = Kek::load(&p, false).unwrap_err().to_string();
        assert!(e.contains("cannot read key-encryption key file"), "{e}");
        std::fs::write(&p, "nothex").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Kek::load(&p, false).unwrap_err().to_string().contains("64 hexadecimal"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(Kek::load(&p, false).unwrap_err().to_string().contains("chmod 600"));
    }
}
