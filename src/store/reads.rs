//! The encrypted read store: put, get, list, find, delete, shred.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{Attribute, Attributes, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::layout::{self, ReadKey};
use crate::crypto::{blind, envelope, DataKey, Kek, KeyError, KeyName, KeyRing, SymmetricKey};
use crate::model::plate::{self, PlateMatch};
use crate::model::PlateRead;

/// Object metadata name carrying the capture time (RFC 3339 UTC) on stores that support it.
pub const CAPTURE_TIME_META: &str = "capture-time";

/// How many capture days a find lists at once (their candidate names are held, not their reads).
pub const FIND_DAYS_AT_ONCE: usize = 8;
/// How many candidates a find fetches and decrypts at once, across days, in order.
pub const FIND_FETCH_WINDOW: usize = 128;

/// Options of a [`ReadStore`].
#[derive(Debug, Clone)]
pub struct ReadStoreOptions {
    /// Blind-index width for newly created day keys.
    pub blind_bits: u8,
    /// Write the capture time as object metadata (S3 does; the local directory cannot).
    pub object_metadata: bool,
}

impl Default for ReadStoreOptions {
    fn default() -> Self {
        Self {
            blind_bits: 12,
            object_metadata: false,
        }
    }
}

/// What [`ReadStore::put`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// Newly stored.
    Stored(StoredRead),
    /// Already stored with the same content (an idempotent retry).
    Duplicate(StoredRead),
}

/// Where a read was stored and what was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRead {
    /// The object name.
    pub key: ReadKey,
    /// SHA-256 of the ciphertext object as stored.
    pub ciphertext_sha256: [u8; 32],
    /// True when this put created the day's key.
    pub created_day_key: bool,
}

/// A search hit.
#[derive(Debug, Clone)]
pub struct Found {
    /// The object name.
    pub key: ReadKey,
    /// The decrypted read.
    pub read: PlateRead,
    /// How the plate matched.
    pub matched: PlateMatch,
}

/// A search over reads.
#[derive(Debug, Clone)]
pub struct FindQuery {
    /// Canonical plate.
    pub plate: String,
    /// Window start (inclusive).
    pub from: DateTime<Utc>,
    /// Window end (inclusive).
    pub to: DateTime<Utc>,
    /// Also return OCR look-alikes.
    pub folded: bool,
    /// Only this camera.
    pub camera_id: Option<String>,
}

/// The outcome of a batch delete: every key is either confirmed deleted or failed.
#[derive(Debug, Default)]
pub struct DeleteReport {
    /// Deleted (or already absent).
    pub deleted: Vec<Path>,
    /// Failed, with the reason.
    pub failed: Vec<(Path, String)>,
}

#[derive(Serialize, Deserialize)]
struct Marker {
    v: u8,
    key: String,
    content_sha256: String,
}

/// The encrypted read store. Cheap to clone; share one per process.
#[derive(Debug, Clone)]
pub struct ReadStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn ObjectStore>,
    keys: KeyRing,
    locator_key: SymmetricKey,
    opts: ReadStoreOptions,
}

fn sha256(b: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}

impl ReadStore {
    /// Opens the store, checking that `kek` is the store's KEK (fails with a clear error if not).
    pub async fn open(store: Arc<dyn ObjectStore>, kek: Kek, opts: ReadStoreOptions) -> Result<Self, StoreError> {
        let locator_key = kek.key().derive("lethe/read-locator/v1");
        let keys = KeyRing::new(store.clone(), kek);
        keys.check_kek().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                keys,
                locator_key,
                opts,
            }),
        })
    }

    /// The underlying object store.
    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// The key ring.
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The locator (object-name id) of a read id.
    pub fn locator(&self, read_id: &str) -> String {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, self.inner.locator_key.expose());
        hex::encode(&ring::hmac::sign(&k, read_id.as_bytes()).as_ref()[..16])
    }

    fn key_for(&self, read: &PlateRead, dk: &DataKey) -> ReadKey {
        ReadKey {
            day: read.day(),
            bucket: blind::bucket(&dk.blind, &read.plate_folded(), dk.blind_bits),
            captured_at: read.captured_at,
            locator: self.locator(&read.read_id),
        }
    }

    /// Stores one read durably. With `idempotent` (the client supplied the read id), a marker
    /// makes a retry of the same id a [`PutOutcome::Duplicate`] and the same id with other
    /// content a [`StoreError::IdConflict`], with nothing new stored.
    pub async fn put(&self, read: &PlateRead, idempotent: bool, now: DateTime<Utc>) -> Result<PutOutcome, StoreError> {
        let handle = self
            .inner
            .keys
            .get_or_create(&KeyName::Day(read.day()), self.inner.opts.blind_bits, now)
            .await?;
        let key = self.key_for(read, &handle.key);
        // The plaintext in two parts (metadata, image), sealed without joining them first.
        let head = read.encode_head();
        let image = read.image_bytes();
        let stored = |ct: [u8; 32]| StoredRead {
            key: key.clone(),
            ciphertext_sha256: ct,
            created_day_key: handle.created,
        };
        if idempotent {
            // Only an idempotency marker needs the plaintext's hash.
            let content = hex::encode(PlateRead::content_hash_of(&head, image));
            let marker = Marker {
                v: 1,
                key: key.to_string(),
                content_sha256: content.clone(),
            };
            let body = serde_json::to_vec(&marker).expect("serializes");
            let mpath = key.marker_path();
            match self.put_create(&mpath, body.into(), Attributes::new()).await {
                Ok(()) => {}
                Err(StoreError::Backend {
                    source: object_store::Error::AlreadyExists { .. },
                    ..
                }) => {
                    let existing = self.get_raw(&mpath).await?;
                    let m: Marker = serde_json::from_slice(&existing).map_err(|_| StoreError::Misfiled { key: mpath.to_string() })?;
                    if m.content_sha256 != content || m.key != key.to_string() {
                        return Err(StoreError::IdConflict);
                    }
                    // Same content: the earlier attempt may have died between marker and object.
                    match self.inner.store.get(&key.path()).await {
                        Ok(r) => {
                            let b = r.bytes().await.map_err(|e| StoreError::backend("get", &key, e))?;
                            return Ok(PutOutcome::Duplicate(stored(sha256(&b))));
                        }
                        Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(StoreError::backend("get", &key, e)),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        let sealed = envelope::seal_parts(&handle.key.enc, &handle.key.name.key_id(), &key.context(), &[&head, image]);
        let ct = sha256(&sealed);
        let mut attrs = Attributes::new();
        if self.inner.opts.object_metadata {
            attrs.insert(
                Attribute::Metadata(CAPTURE_TIME_META.into()),
                read.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).into(),
            );
        }
        match self.put_create(&key.path(), Bytes::from(sealed), attrs).await {
            Ok(()) => Ok(PutOutcome::Stored(stored(ct))),
            Err(StoreError::Backend {
                source: object_store::Error::AlreadyExists { .. },
                ..
            }) => {
                // Same name: same id, plate bucket and capture time. Same content is a duplicate.
                let existing = self.get(&key).await?;
                if existing.content_hash() == read.content_hash() {
                    let raw = self.get_raw(&key.path()).await?;
                    Ok(PutOutcome::Duplicate(stored(sha256(&raw))))
                } else {
                    Err(StoreError::IdConflict)
                }
            }
            Err(e) => {
                if idempotent {
                    // Best effort: a marker without its object is repaired by the retry anyway.
                    let _ = self.inner.store.delete(&key.marker_path()).await;
                }
                Err(e)
            }
        }
    }

    async fn put_create(&self, path: &Path, body: Bytes, attributes: Attributes) -> Result<(), StoreError> {
        let opts = PutOptions {
            mode: PutMode::Create,
            attributes,
            ..Default::default()
        };
        self.inner
            .store
            .put_opts(path, PutPayload::from(body), opts)
            .await
            .map(|_| ())
            .map_err(|e| StoreError::backend("put", path, e))
    }

    async fn get_raw(&self, path: &Path) -> Result<Bytes, StoreError> {
        let r = self.inner.store.get(path).await.map_err(|e| StoreError::backend("get", path, e))?;
        r.bytes().await.map_err(|e| StoreError::backend("get", path, e))
    }

    /// Fetches and decrypts one read.
    pub async fn get(&self, key: &ReadKey) -> Result<PlateRead, StoreError> {
        let path = key.path();
        let res = self
            .inner
            .store
            .get(&path)
            .await
            .map_err(|e| StoreError::backend("get", &path, e))?;
        let label = res
            .attributes
            .get(&Attribute::Metadata(CAPTURE_TIME_META.into()))
            .map(|v| v.to_string());
        let bytes = res.bytes().await.map_err(|e| StoreError::backend("get", &path, e))?;
        let dk = self.day_key(key).await?;
        let read = self.decrypt_with(key, &dk, &bytes)?;
        if let Some(label) = label {
            let actual = key.captured_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
            let same = DateTime::parse_from_rfc3339(&label)
                .map(|t| t.with_timezone(&Utc) == key.captured_at)
                .unwrap_or(false);
            if !same {
                return Err(StoreError::LabelMismatch {
                    key: key.to_string(),
                    label,
                    actual,
                });
            }
        }
        Ok(read)
    }

    /// Decrypts an object's bytes as the read named `key`.
    pub fn decrypt_with(&self, key: &ReadKey, dk: &DataKey, bytes: &[u8]) -> Result<PlateRead, StoreError> {
        let header = envelope::parse_header(bytes).map_err(|source| StoreError::Envelope {
            key: key.to_string(),
            source,
        })?;
        if header.key_id != dk.name.key_id() {
            return Err(StoreError::WrongKeyId {
                key: key.to_string(),
                found: header.key_id,
                expected: dk.name.key_id(),
            });
        }
        let plain = envelope::open(&dk.enc, &header, bytes, &key.context()).map_err(|source| StoreError::Envelope {
            key: key.to_string(),
            source,
        })?;
        let read = PlateRead::decode(&plain).map_err(|source| StoreError::Decode {
            key: key.to_string(),
            source,
        })?;
        if read.captured_at != key.captured_at || self.locator(&read.read_id) != key.locator {
            return Err(StoreError::Misfiled { key: key.to_string() });
        }
        Ok(read)
    }

    async fn day_key(&self, key: &ReadKey) -> Result<Arc<DataKey>, StoreError> {
        match self.inner.keys.get(&KeyName::Day(key.day)).await {
            Ok(k) => Ok(k),
            Err(KeyError::Shredded { .. }) => Err(StoreError::DayShredded {
                key: key.to_string(),
                day: key.day,
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Lists one day's reads, in name order (bucket, then time), following continuation tokens.
    pub fn list_day(&self, day: NaiveDate) -> BoxStream<'static, Result<ReadKey, StoreError>> {
        self.list_prefix(layout::day_prefix(day))
    }

    fn list_prefix(&self, prefix: Path) -> BoxStream<'static, Result<ReadKey, StoreError>> {
        let p = prefix.clone();
        self.inner
            .store
            .list(Some(&prefix))
            .map(move |r| {
                let meta = r.map_err(|e| StoreError::backend("list", &p, e))?;
                ReadKey::parse(&meta.location).ok_or_else(|| StoreError::ForeignObject {
                    key: meta.location.to_string(),
                })
            })
            .boxed()
    }

    /// The capture days that have reads, oldest first.
    pub async fn days(&self) -> Result<Vec<NaiveDate>, StoreError> {
        let prefix = Path::from(layout::READS);
        let res = self
            .inner
            .store
            .list_with_delimiter(Some(&prefix))
            .await
            .map_err(|e| StoreError::backend("list", &prefix, e))?;
        let mut days: Vec<NaiveDate> = res
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()))
            .collect();
        days.sort();
        Ok(days)
    }

    /// Finds the reads of a plate in a window, streamed in capture-time order: one bucket listing
    /// per capture day ([`FIND_DAYS_AT_ONCE`] days listed at once), names filtered by time and
    /// sorted before any fetch, then the candidates fetched, decrypted and matched exactly (or
    /// folded), [`FIND_FETCH_WINDOW`] at a time, in order. Memory holds the candidate names of the
    /// days listed ahead (~150 bytes each) and at most the fetch window of reads, however many
    /// reads a plate has in a day or in the window.
    pub fn find(&self, q: FindQuery) -> BoxStream<'static, Result<Found, StoreError>> {
        let this = self.clone();
        let fetcher = self.clone();
        let mut days = Vec::new();
        let mut d = q.from.date_naive();
        while d <= q.to.date_naive() {
            days.push(d);
            d = d.succ_opt().expect("date in range");
        }
        let q = Arc::new(q);
        let q2 = q.clone();
        stream::iter(days)
            .map(move |day| {
                let this = this.clone();
                let q = q.clone();
                async move { this.candidates(day, &q).await }
            })
            .buffered(FIND_DAYS_AT_ONCE)
            .map_ok(|day| stream::iter(day.into_iter().map(Ok)))
            .try_flatten()
            .map_ok(move |(k, dk)| {
                let this = fetcher.clone();
                let q = q2.clone();
                async move {
                    let path = k.path();
                    let bytes = match this.inner.store.get(&path).await {
                        Ok(r) => r.bytes().await.map_err(|e| StoreError::backend("get", &path, e))?,
                        // Deleted by a sweep since the listing: not a result.
                        Err(object_store::Error::NotFound { .. }) => return Ok(None),
                        Err(e) => return Err(StoreError::backend("get", &path, e)),
                    };
                    let read = this.decrypt_with(&k, &dk, &bytes)?;
                    if q.camera_id.as_deref().is_some_and(|c| c != read.camera_id) {
                        return Ok(None);
                    }
                    Ok(plate::matches(&read.plate, &q.plate, q.folded).map(|matched| Found { key: k, read, matched }))
                }
            })
            .try_buffered(FIND_FETCH_WINDOW)
            .try_filter_map(futures::future::ok)
            .boxed()
    }

    /// A day's candidates for a query: the names in the plate's blind-index bucket whose capture
    /// time is in the window, in time order (ties by locator), each with the day's key. None on a
    /// day with no key (nothing stored) or a shredded one (everything past retention).
    async fn candidates(&self, day: NaiveDate, q: &FindQuery) -> Result<Vec<(ReadKey, Arc<DataKey>)>, StoreError> {
        let dk = match self.inner.keys.get(&KeyName::Day(day)).await {
            Ok(k) => k,
            Err(KeyError::Missing { .. }) | Err(KeyError::Shredded { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let bucket = blind::bucket(&dk.blind, &plate::folded(&q.plate), dk.blind_bits);
        let (from, to) = (q.from, q.to);
        let mut keys: Vec<ReadKey> = self
            .list_prefix(layout::bucket_prefix(day, &bucket))
            .try_filter(move |k| futures::future::ready(k.captured_at >= from && k.captured_at <= to))
            .try_collect()
            .await?;
        // Stores list in name order (S3) or in no order (a directory): sort by time here.
        keys.sort_by(|a, b| (a.captured_at, &a.locator).cmp(&(b.captured_at, &b.locator)));
        Ok(keys.into_iter().map(|k| (k, dk.clone())).collect())
    }

    /// Deletes the given objects with the store's batch delete, checking every per-key result:
    /// a key counts as deleted only when the store confirmed it (or said it was already absent);
    /// every other key is reported failed, with the store's message where it named the key.
    pub async fn delete_paths(&self, paths: Vec<Path>) -> DeleteReport {
        let wanted = paths.clone();
        let input = stream::iter(paths.into_iter().map(Ok)).boxed();
        let mut results = self.inner.store.delete_stream(input);
        let mut deleted = std::collections::HashSet::new();
        let mut errors: Vec<String> = Vec::new();
        let mut absent: Vec<String> = Vec::new();
        while let Some(r) = results.next().await {
            match r {
                Ok(p) => {
                    deleted.insert(p.to_string());
                }
                // Already absent counts as deleted. Backends name the path differently (the local
                // directory gives the file-system path), so it is matched by suffix below.
                Err(object_store::Error::NotFound { path, .. }) => absent.push(path),
                Err(e) => errors.push(e.to_string()),
            }
        }
        // Each absent path is matched against the wanted ones by its suffixes after a '/': linear
        // in the paths, not quadratic (a rerun after a crash may find every object gone).
        let wanted_set: std::collections::HashSet<&str> = wanted.iter().map(|p| p.as_ref()).collect();
        for a in &absent {
            if wanted_set.contains(a.as_str()) {
                deleted.insert(a.clone());
                continue;
            }
            for (i, _) in a.match_indices('/') {
                let tail = &a[i + 1..];
                if wanted_set.contains(tail) {
                    deleted.insert(tail.to_string());
                    break;
                }
            }
        }
        let mut report = DeleteReport::default();
        for p in wanted {
            if deleted.contains(p.as_ref()) {
                report.deleted.push(p);
            } else {
                let reason = errors
                    .iter()
                    .find(|m| m.contains(p.as_ref()))
                    .or(errors.first())
                    .cloned()
                    .unwrap_or_else(|| "the store did not confirm the delete".into());
                report.failed.push((p, reason));
            }
        }
        report
    }

    /// Destroys a day's key (crypto-shredding). Idempotent; returns false if already destroyed.
    pub async fn shred_day(&self, day: NaiveDate, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self.inner.keys.destroy(&KeyName::Day(day), now).await?)
    }
}
