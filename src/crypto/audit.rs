//! The audit key: searched plates in access records are sealed under it.
//!
//! Access records must say what was asked without putting a plaintext plate in the ledger. The
//! plate is sealed (AES-256-GCM envelope) under the audit key, which lives beside the KEK in the
//! key directory (`{keys dir}/audit.key`, 64 hex characters, created mode 0600), and a keyed blind
//! value (HMAC-SHA256 under a subkey) lets an auditor group the searches for one plate without
//! decrypting. The audit key is not a day key: it is never shredded with the data, so access
//! records stay readable to auditors for as long as the ledger is kept.

use std::path::{Path, PathBuf};

use super::envelope::{self, EnvelopeError, SymmetricKey};
use crate::secret_file::SecretFileError;

const WHAT: &str = "audit key";
/// Associated data binding a sealed plate to its use. Changing it makes old records unreadable.
const PLATE_CONTEXT: &[u8] = b"lethe/audit/searched-plate/v1";

/// A loaded audit key.
#[derive(Clone)]
pub struct AuditKey {
    key: SymmetricKey,
    blind: SymmetricKey,
    id: String,
    path: PathBuf,
}

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditKey").field("id", &self.id).field("path", &self.path).finish()
    }
}

impl AuditKey {
    fn from_key(key: SymmetricKey, path: PathBuf) -> Self {
        let id = format!("audit:{}", hex::encode(&key.derive("lethe/audit-key-id/v1").expose()[..8]));
        let blind = key.derive("lethe/audit-blind/v1");
        Self { key, blind, id, path }
    }

    /// Loads the key from `path`, creating it (mode 0600) if `create` and it does not exist.
    pub fn load(path: &Path, create: bool) -> Result<Self, SecretFileError> {
        Ok(Self::from_key(super::kek::load_key_file(path, WHAT, create)?, path.into()))
    }

    /// A key held only in memory (tests).
    pub fn ephemeral() -> Self {
        Self::from_key(SymmetricKey::generate(), PathBuf::from("<memory>"))
    }

    /// The key id written in sealed plates (not secret).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Seals a canonical plate: an envelope (fresh nonce each time) under the audit key.
    pub fn seal_plate(&self, canonical_plate: &str) -> Vec<u8> {
        envelope::seal(&self.key, &self.id, PLATE_CONTEXT, canonical_plate.as_bytes())
    }

    /// Opens [`AuditKey::seal_plate`]'s output (auditors).
    pub fn open_plate(&self, sealed: &[u8]) -> Result<String, EnvelopeError> {
        let header = envelope::parse_header(sealed)?;
        let plain = envelope::open(&self.key, &header, sealed, PLATE_CONTEXT)?;
        String::from_utf8(plain).map_err(|_| EnvelopeError::Malformed("not UTF-8"))
    }

    /// The blind value of a canonical plate: HMAC-SHA256 under a subkey of the audit key.
    pub fn blind(&self, canonical_plate: &str) -> Vec<u8> {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.blind.expose());
        ring::hmac::sign(&k, canonical_plate.as_bytes()).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn seals_and_blinds_without_showing_the_plate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys/audit.key");
        let k = AuditKey::load(&path, true).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let again = AuditKey::load(&path, false).unwrap();
        let sealed = k.seal_plate("7ABC123");
        assert!(!sealed.windows(7).any(|w| w == b"7ABC123"));
        assert_ne!(sealed, k.seal_plate("7ABC123"), "fresh nonce per seal");
        assert_eq!(again.open_plate(&sealed).unwrap(), "7ABC123");
        assert_eq!(k.blind("7ABC123"), again.blind("7ABC123"));
        assert_ne!(k.blind("7ABC123"), AuditKey::ephemeral().blind("7ABC123"));
    }
}
