//! The audit key: searched plates in access records are encrypted under it.
//!
//! An access record must say which plate was searched (the law asks for "the data used to
//! query"), yet no plaintext plate may be written to the ledger. So the plate goes in sealed
//! under the audit key, a separate 256-bit key in a 0600 file in the keys folder
//! (`{keys dir}/audit.key`, 64 hex characters), held by the server (to seal) and by whoever
//! produces the access report (to open). It is not derived from the KEK, so the auditors who
//! hold it cannot read stored plate reads, and it is not shredded with any day: access records
//! are kept for good.
//!
//! The ciphertext is the crate's AES-256-GCM envelope ([`super::envelope`]) with key id
//! `audit:{id}` and the associated data [`PLATE_CONTEXT`]. **Changing either breaks every stored
//! access record's plate.**

use std::path::{Path, PathBuf};

use super::envelope::{self, EnvelopeError, SymmetricKey};
use crate::secret_file::{self, SecretFileError};

/// Associated data bound into every sealed plate.
pub const PLATE_CONTEXT: &[u8] = b"lethe/access-plate/v1";

const WHAT: &str = "audit key";

/// A loaded audit key.
#[derive(Clone)]
pub struct AuditKey {
    key: SymmetricKey,
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("id", &self.id).field("path", &self.path).finish()
    }
}

/// Why a sealed plate did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditKeyError {
    /// The envelope is malformed.
    #[error("sealed plate is malformed: {0}")]
    Envelope(#[from] EnvelopeError),
    /// Sealed under another audit key.
    #[error("sealed plate is under audit key {found}, not {expected}")]
    WrongKey {
        /// Key id in the envelope.
        found: String,
        /// Key id of the loaded key.
        expected: String,
    },
    /// Decrypted bytes are not UTF-8.
    #[error("sealed plate is not text")]
    NotText,
}

impl AuditKey {
    fn from_key(key: SymmetricKey, path: PathBuf) -> Self {
        let id = hex::encode(&key.derive("lethe/audit-key-id/v1").expose()[..8]);
        Self { key, id, path }
    }

    /// Loads the audit key from `path`, creating it (mode 0600) if `create` and it is missing.
    pub fn load(path: &Path, create: bool) -> Result<Self, SecretFileError> {
        let bytes = if create {
            secret_file::read_or_create_secret(path, WHAT, || {
                let mut s = hex::encode(SymmetricKey::generate().expose());
                s.push('\n');
                s.into_bytes()
            })?
            .0
        } else {
            secret_file::read_secret(path, WHAT)?
        };
        let malformed = || SecretFileError::Malformed {
            path: path.to_path_buf(),
            what: WHAT,
            reason: "expected 64 hex characters".into(),
        };
        let text = String::from_utf8(bytes).map_err(|_| malformed())?;
        let raw = hex::decode(text.trim()).map_err(|_| malformed())?;
        let arr: [u8; 32] = raw.try_into().map_err(|_| malformed())?;
        Ok(Self::from_key(SymmetricKey::from_bytes(arr), path.to_path_buf()))
    }

    /// A key held only in memory (tests).
    pub fn ephemeral() -> Self {
        Self::from_key(SymmetricKey::generate(), PathBuf::from("<memory>"))
    }

    /// The key id (not secret), written in every envelope.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn key_id(&self) -> String {
        format!("audit:{}", self.id)
    }

    /// Seals a searched plate for an access record's `plate_ciphertext`.
    pub fn seal_plate(&self, plate: &str) -> Vec<u8> {
        envelope::seal(&self.key, &self.key_id(), PLATE_CONTEXT, plate.as_bytes())
    }

    /// Opens a plate sealed by [`AuditKey::seal_plate`].
    pub fn open_plate(&self, sealed: &[u8]) -> Result<String, AuditKeyError> {
        let header = envelope::parse_header(sealed)?;
        if header.key_id != self.key_id() {
            return Err(AuditKeyError::WrongKey {
                found: header.key_id,
                expected: self.key_id(),
            });
        }
        let plain = envelope::open(&self.key, &header, sealed, PLATE_CONTEXT)?;
        String::from_utf8(plain).map_err(|_| AuditKeyError::NotText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_key() {
        let k = AuditKey::ephemeral();
        let sealed = k.seal_plate("7ABC123");
        assert!(!sealed.windows(7).any(|w| w == b"7ABC123"), "no plaintext in the envelope");
        assert_eq!(k.open_plate(&sealed).unwrap(), "7ABC123");
        let other = AuditKey::ephemeral();
        assert!(matches!(other.open_plate(&sealed), Err(AuditKeyError::WrongKey { .. })));
    }

    #[test]
    fn file_is_created_0600_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("audit.key");
        let a = AuditKey::load(&p, true).unwrap();
        let b = AuditKey::load(&p, false).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(b.open_plate(&a.seal_plate("X")).unwrap(), "X");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}
