//! Day keys and hold keys, wrapped by the KEK and kept in the store under `keys/`.
//!
//! - `keys/day/{YYYY-MM-DD}`: the data key of one capture day (UTC). Destroying it — replacing
//!   the object with a tombstone — is crypto-shredding: every copy of that day's reads, anywhere,
//!   becomes unreadable, and the error says the day was shredded. A tombstone also stops the day
//!   key from ever being created again.
//! - `keys/hold/{hold id}`: the key of one legal hold, whose reads outlive their day's key.
//! - `keys/kek-check`: a small object sealed under the KEK, so a wrong KEK is detected at start.
//!
//! Keys are created with create-only puts: when two processes create the same day's key at once,
//! one wins and both use the winner's key.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::envelope::{self, EnvelopeError, SymmetricKey};
use super::kek::Kek;

/// Which key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyName {
    /// The key of one capture day.
    Day(NaiveDate),
    /// The key of one legal hold.
    Hold(String),
    /// The store's KEK check object (not a data key).
    KekCheck,
}

impl KeyName {
    /// Its object path.
    pub fn path(&self) -> Path {
        match self {
            KeyName::Day(d) => Path::from(format!("keys/day/{d}")),
            KeyName::Hold(h) => Path::from(format!("keys/hold/{h}")),
            KeyName::KekCheck => Path::from(KEK_CHECK),
        }
    }

    /// The id written in envelope headers sealed with it, e.g. `day:2026-12-03`.
    pub fn key_id(&self) -> String {
        match self {
            KeyName::Day(d) => format!("day:{d}"),
            KeyName::Hold(h) => format!("hold:{h}"),
            KeyName::KekCheck => "the store's key check".into(),
        }
    }
}

impl std::fmt::Display for KeyName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.key_id())
    }
}

/// Key errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The key was destroyed.
    #[error("{name} was shredded at {at}: its data can no longer be decrypted")]
    Shredded {
        /// Which key.
        name: KeyName,
        /// When.
        at: DateTime<Utc>,
    },
    /// No such key was ever created.
    #[error("{name} does not exist")]
    Missing {
        /// Which key.
        name: KeyName,
    },
    /// Wrapped under another KEK.
    #[error("wrong key-encryption key: {name} in this store is wrapped under key-encryption key {found}, but the configured one ({path}) is {expected}")]
    WrongKek {
        /// Which key.
        name: KeyName,
        /// The KEK id in the object.
        found: String,
        /// The configured KEK's id.
        expected: String,
        /// The configured KEK file.
        path: String,
    },
    /// The key object does not decrypt or parse.
    #[error("{name} is corrupt: {reason}")]
    Corrupt {
        /// Which key.
        name: KeyName,
        /// Why.
        reason: String,
    },
    /// The store failed.
    #[error("{op} {path}: {source}")]
    Store {
        /// What was being done.
        op: &'static str,
        /// Which object.
        path: String,
        /// The store's error.
        source: object_store::Error,
    },
}

#[derive(Serialize, Deserialize)]
struct WrappedKey {
    v: u8,
    key: String,
    blind_bits: u8,
    created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Tombstone {
    lethe_tombstone: u8,
    key: String,
    shredded_at: DateTime<Utc>,
}

/// An unwrapped key with its parameters.
#[derive(Debug, Clone)]
pub struct DataKey {
    /// Which key.
    pub name: KeyName,
    /// The AES-256-GCM key for objects.
    pub enc: SymmetricKey,
    /// The blind-index key.
    pub blind: SymmetricKey,
    /// Blind-index width used for this key's reads.
    pub blind_bits: u8,
}

impl DataKey {
    fn from_master(name: KeyName, master: &SymmetricKey, blind_bits: u8) -> Self {
        Self {
            name,
            enc: master.derive("lethe/enc/v1"),
            blind: master.derive("lethe/blind/v1"),
            blind_bits,
        }
    }
}

/// The outcome of [`KeyRing::get_or_create`].
#[derive(Debug, Clone)]
pub struct KeyHandle {
    /// The key.
    pub key: Arc<DataKey>,
    /// True when this call created it (the caller records that in the ledger).
    pub created: bool,
}

/// How long a loaded key is used from memory before it is read from the store again. Another
/// process may destroy a key (the sweeper closing a day): a server then stops using it within
/// this time, instead of storing and decrypting reads of a shredded day for as long as it runs.
pub const KEY_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(60);

/// Loads, creates, caches and destroys data keys.
#[derive(Debug)]
pub struct KeyRing {
    store: Arc<dyn ObjectStore>,
    kek: Kek,
    cache: Mutex<HashMap<KeyName, (Arc<DataKey>, std::time::Instant)>>,
    cache_ttl: std::time::Duration,
}

fn context(name: &KeyName) -> Vec<u8> {
    format!("lethe/data-key/v1\n{}", name.key_id()).into_bytes()
}

const KEK_CHECK: &str = "keys/kek-check";
const KEK_CHECK_CONTEXT: &[u8] = b"lethe/kek-check/v1";

impl KeyRing {
    /// A key ring over `store`, wrapping with `kek`.
    pub fn new(store: Arc<dyn ObjectStore>, kek: Kek) -> Self {
        Self {
            store,
            kek,
            cache: Mutex::new(HashMap::new()),
            cache_ttl: KEY_CACHE_TTL,
        }
    }

    /// The KEK.
    pub fn kek(&self) -> &Kek {
        &self.kek
    }

    /// Checks that the configured KEK is the one this store was written with (creating the check
    /// object on first use). Fails with [`KeyError::WrongKek`] rather than producing garbage later.
    pub async fn check_kek(&self) -> Result<(), KeyError> {
        let path = Path::from(KEK_CHECK);
        let sealed = envelope::seal(self.kek.key(), &self.kek.envelope_key_id(), KEK_CHECK_CONTEXT, b"lethe");
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&path, PutPayload::from(sealed), opts).await {
            Ok(_) => return Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => {}
            Err(source) => {
                return Err(KeyError::Store {
                    op: "put",
                    path: KEK_CHECK.into(),
                    source,
                })
            }
        }
        let bytes = self.get_bytes(&path).await?.ok_or_else(|| KeyError::Corrupt {
            name: KeyName::KekCheck,
            reason: "vanished while being read".into(),
        })?;
        self.unwrap_bytes(&KeyName::KekCheck, &bytes, KEK_CHECK_CONTEXT).map(|_| ())
    }

    async fn get_bytes(&self, path: &Path) -> Result<Option<bytes::Bytes>, KeyError> {
        match self.store.get(path).await {
            Ok(r) => r.bytes().await.map(Some).map_err(|source| KeyError::Store {
                op: "get",
                path: path.to_string(),
                source,
            }),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(source) => Err(KeyError::Store {
                op: "get",
                path: path.to_string(),
                source,
            }),
        }
    }

    fn unwrap_bytes(&self, name: &KeyName, bytes: &[u8], ctx: &[u8]) -> Result<Vec<u8>, KeyError> {
        if bytes.starts_with(b"{") {
            let t: Tombstone = serde_json::from_slice(bytes).map_err(|e| KeyError::Corrupt {
                name: name.clone(),
                reason: e.to_string(),
            })?;
            return Err(KeyError::Shredded {
                name: name.clone(),
                at: t.shredded_at,
            });
        }
        let header = envelope::parse_header(bytes).map_err(|e| KeyError::Corrupt {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        if header.key_id != self.kek.envelope_key_id() {
            return Err(KeyError::WrongKek {
                name: name.clone(),
                found: header.key_id.trim_start_matches("kek:").to_string(),
                expected: self.kek.id().to_string(),
                path: self.kek.path().display().to_string(),
            });
        }
        envelope::open(self.kek.key(), &header, bytes, ctx).map_err(|e| match e {
            EnvelopeError::Authentication => KeyError::Corrupt {
                name: name.clone(),
                reason: "does not authenticate under the key-encryption key".into(),
            },
            other => KeyError::Corrupt {
                name: name.clone(),
                reason: other.to_string(),
            },
        })
    }

    fn parse_key(&self, name: &KeyName, bytes: &[u8]) -> Result<DataKey, KeyError> {
        let plain = self.unwrap_bytes(name, bytes, &context(name))?;
        let w: WrappedKey = serde_json::from_slice(&plain).map_err(|e| KeyError::Corrupt {
            name: name.clone(),
            reason: e.to_string(),
        })?;
        let raw: [u8; 32] = hex::decode(&w.key)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| KeyError::Corrupt {
                name: name.clone(),
                reason: "key is not 32 bytes of hex".into(),
            })?;
        Ok(DataKey::from_master(name.clone(), &SymmetricKey::from_bytes(raw), w.blind_bits))
    }

    fn cached(&self, name: &KeyName) -> Option<Arc<DataKey>> {
        let cache = self.cache.lock().expect("key cache");
        cache
            .get(name)
            .filter(|(_, at)| at.elapsed() < self.cache_ttl)
            .map(|(k, _)| k.clone())
    }

    fn remember(&self, key: DataKey) -> Arc<DataKey> {
        let k = Arc::new(key);
        self.cache
            .lock()
            .expect("key cache")
            .insert(k.name.clone(), (k.clone(), std::time::Instant::now()));
        k
    }

    /// Loads an existing key.
    pub async fn get(&self, name: &KeyName) -> Result<Arc<DataKey>, KeyError> {
        if let Some(k) = self.cached(name) {
            return Ok(k);
        }
        let bytes = self
            .get_bytes(&name.path())
            .await?
            .ok_or_else(|| KeyError::Missing { name: name.clone() })?;
        Ok(self.remember(self.parse_key(name, &bytes)?))
    }

    /// Loads a key, creating it (with `blind_bits`) if it does not exist yet.
    pub async fn get_or_create(&self, name: &KeyName, blind_bits: u8, now: DateTime<Utc>) -> Result<KeyHandle, KeyError> {
        if let Some(key) = self.cached(name) {
            return Ok(KeyHandle { key, created: false });
        }
        let path = name.path();
        if let Some(bytes) = self.get_bytes(&path).await? {
            return Ok(KeyHandle {
                key: self.remember(self.parse_key(name, &bytes)?),
                created: false,
            });
        }
        let master = SymmetricKey::generate();
        let w = WrappedKey {
            v: 1,
            key: hex::encode(master.expose()),
            blind_bits,
            created_at: now,
        };
        let plain = serde_json::to_vec(&w).expect("serializes");
        let sealed = envelope::seal(self.kek.key(), &self.kek.envelope_key_id(), &context(name), &plain);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match self.store.put_opts(&path, PutPayload::from(sealed), opts).await {
            Ok(_) => Ok(KeyHandle {
                key: self.remember(DataKey::from_master(name.clone(), &master, blind_bits)),
                created: true,
            }),
            Err(object_store::Error::AlreadyExists { .. }) => {
                // Another writer won the race (or the day was shredded): use what is there.
                let bytes = self
                    .get_bytes(&path)
                    .await?
                    .ok_or_else(|| KeyError::Missing { name: name.clone() })?;
                Ok(KeyHandle {
                    key: self.remember(self.parse_key(name, &bytes)?),
                    created: false,
                })
            }
            Err(source) => Err(KeyError::Store {
                op: "put",
                path: path.to_string(),
                source,
            }),
        }
    }

    /// Destroys a key: the object is replaced by a tombstone. Returns false when it was already a
    /// tombstone (idempotent). A missing key gets a tombstone too, so it can never be created.
    pub async fn destroy(&self, name: &KeyName, now: DateTime<Utc>) -> Result<bool, KeyError> {
        self.cache.lock().expect("key cache").remove(name);
        let path = name.path();
        if let Some(bytes) = self.get_bytes(&path).await? {
            if bytes.starts_with(b"{") {
                return Ok(false);
            }
        }
        let t = Tombstone {
            lethe_tombstone: 1,
            key: name.key_id(),
            shredded_at: now,
        };
        let body = serde_json::to_vec(&t).expect("serializes");
        self.store
            .put_opts(&path, PutPayload::from(body), PutOptions::default())
            .await
            .map_err(|source| KeyError::Store {
                op: "put",
                path: path.to_string(),
                source,
            })?;
        Ok(true)
    }

    /// Is this key a tombstone? (`None` when it does not exist.)
    pub async fn is_destroyed(&self, name: &KeyName) -> Result<Option<bool>, KeyError> {
        Ok(self.get_bytes(&name.path()).await?.map(|b| b.starts_with(b"{")))
    }

    /// Forgets cached keys (after another process may have destroyed some).
    pub fn forget(&self, name: &KeyName) {
        self.cache.lock().expect("key cache").remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_destroyed_by_another_process_stops_being_used_after_the_cache_time() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let kek = Kek::ephemeral();
        let now = chrono::Utc::now();
        let day = KeyName::Day(now.date_naive());
        // Two processes over one store: a server, and the sweeper that closes the day.
        let mut server = KeyRing::new(store.clone(), kek.clone());
        server.cache_ttl = std::time::Duration::from_millis(50);
        let sweeper = KeyRing::new(store.clone(), kek);
        server.get_or_create(&day, 8, now).await.unwrap();
        assert!(sweeper.destroy(&day, now).await.unwrap());
        // Within the cache time the server still has it; after it, the server sees the tombstone.
        assert!(server.get(&day).await.is_ok());
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        assert!(
            matches!(server.get(&day).await, Err(KeyError::Shredded { .. })),
            "a destroyed key was used"
        );
        assert!(matches!(server.get_or_create(&day, 8, now).await, Err(KeyError::Shredded { .. })));
    }
}
