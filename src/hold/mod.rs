//! Legal holds: reads a case needs are re-encrypted under a hold key and outlive their day.
//!
//! A hold names a case, an authority (warrant, court order, preservation request) and its
//! reference, an end date, and a scope: a plate and/or a camera and/or a capture window.
//!
//! ```text
//! holds/{hold}/record.json            the hold (immutable, create-only)
//! holds/{hold}/released.json          its release (create-only)
//! holds/{hold}/purge.json             the sweeper's purge intent (which copies it deletes)
//! holds/{hold}/reads/{time}-{locator} one held read, sealed under keys/hold/{hold}
//! ```
//!
//! Guarantees:
//! - **No plaintext plate** in any hold object or name: the plate scope is stored sealed under
//!   the hold key, plus a blind value (HMAC under a key derived from the hold key), so it is
//!   shredded with the hold.
//! - **Held reads survive their day's shredding**: each is a copy sealed under the hold key,
//!   bound to its own name and capture time. Placing copies every in-scope read that is still
//!   within retention; each sweep copies in-scope reads that arrived since, before it deletes
//!   originals, and counts them as held in its deletion proofs.
//! - **Placing and releasing are ledger records** (`HoldPlaced`, `HoldReleased`). A released or
//!   expired hold's copies are deleted by the next sweep, its key destroyed and a `HoldPurged`
//!   record written.

use std::collections::HashSet;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::crypto::{blind, envelope, DataKey, KeyError, KeyName};
use crate::model::{plate, PlateRead};
use crate::policy::Retention;
use crate::store::layout::{self, ReadKey};
use crate::store::{ReadStore, StoreError};
use crate::sweep::proof::{ProofLog, ProofLogError, SweepEvent};

/// Blind-index width of hold keys (unused for lookups; holds are listed whole).
const HOLD_BLIND_BITS: u8 = 12;

/// Who authorises a hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Authority {
    /// A search warrant.
    Warrant,
    /// A court order.
    CourtOrder,
    /// A preservation request (e.g. 18 U.S.C. § 2703(f)).
    PreservationRequest,
}

impl Authority {
    /// The stable name written to records.
    pub fn as_str(&self) -> &'static str {
        match self {
            Authority::Warrant => "warrant",
            Authority::CourtOrder => "court_order",
            Authority::PreservationRequest => "preservation_request",
        }
    }
}

/// Errors of hold operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HoldError {
    /// The object store failed.
    #[error("object store {op} {key}: {source}")]
    Backend {
        /// The operation.
        op: &'static str,
        /// The object.
        key: String,
        /// Why.
        source: object_store::Error,
    },
    /// The read store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be loaded or created.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] ProofLogError),
    /// A request field is invalid.
    #[error("{field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// No such hold.
    #[error("hold {hold_id} does not exist")]
    NotFound {
        /// The hold.
        hold_id: String,
    },
    /// A hold object does not parse.
    #[error("hold object {key} is corrupt: {reason}")]
    Corrupt {
        /// The object.
        key: String,
        /// Why.
        reason: String,
    },
}

fn backend(op: &'static str, key: impl std::fmt::Display, source: object_store::Error) -> HoldError {
    HoldError::Backend {
        op,
        key: key.to_string(),
        source,
    }
}

/// A request to place a hold.
#[derive(Debug, Clone)]
pub struct HoldRequest {
    /// Case number.
    pub case_number: String,
    /// Authority kind.
    pub authority: Authority,
    /// Reference of the authority document.
    pub authority_ref: String,
    /// When the hold ends.
    pub until: DateTime<Utc>,
    /// Only this plate (raw; canonicalized).
    pub plate: Option<String>,
    /// Only this camera.
    pub camera: Option<String>,
    /// Window start; default now − retention (older reads are already gone).
    pub from: Option<DateTime<Utc>>,
    /// Window end; default the time of placing.
    pub to: Option<DateTime<Utc>>,
    /// Who places it.
    pub placed_by: String,
}

/// The stored hold (`holds/{hold}/record.json`). No plaintext plate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldRecord {
    /// Format version (1).
    pub v: u8,
    /// Hold id.
    pub hold_id: String,
    /// Case number.
    pub case_number: String,
    /// Authority kind.
    pub authority: Authority,
    /// Reference of the authority document.
    pub authority_ref: String,
    /// When the hold ends.
    pub until: DateTime<Utc>,
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
    /// Cameras in scope (empty = all).
    pub cameras: Vec<String>,
    /// The plate in scope, sealed under the hold key (base64), if any.
    pub plate_ciphertext: Option<String>,
    /// Its blind value (hex HMAC under the hold's blind key), if any.
    pub plate_blind: Option<String>,
    /// When it was placed.
    pub placed_at: DateTime<Utc>,
    /// Who placed it.
    pub placed_by: String,
}

/// A release (`holds/{hold}/released.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Release {
    /// Format version (1).
    pub v: u8,
    /// When.
    pub at: DateTime<Utc>,
    /// Who.
    pub by: String,
    /// Why.
    pub reason: String,
}

/// A hold and its state.
#[derive(Debug, Clone)]
pub struct Hold {
    /// The record.
    pub record: HoldRecord,
    /// Its release, if released.
    pub released: Option<Release>,
}

impl Hold {
    /// Active: neither released nor past its end.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        self.released.is_none() && now < self.record.until
    }
}

/// The ledger record of a placed hold (no plaintext plate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlacedEvent {
    /// Hold id.
    pub hold_id: String,
    /// Case number.
    pub case_number: String,
    /// Authority kind.
    pub authority: String,
    /// Reference of the authority document.
    pub authority_ref: String,
    /// Window start.
    pub from: DateTime<Utc>,
    /// Window end.
    pub to: DateTime<Utc>,
    /// Cameras in scope.
    pub cameras: Vec<String>,
    /// The plate in scope, sealed under the hold key (base64).
    pub plate_ciphertext: Option<String>,
    /// Its blind value (hex).
    pub plate_blind: Option<String>,
    /// When it ends.
    pub until: DateTime<Utc>,
    /// Reads copied under the hold when it was placed.
    pub reads_held: u64,
    /// Who placed it.
    pub placed_by: String,
}

/// What [`place`] did.
#[derive(Debug, Clone)]
pub struct Placed {
    /// The hold.
    pub record: HoldRecord,
    /// Reads copied under it.
    pub reads_held: u64,
}

fn record_path(id: &str) -> Path {
    Path::from(format!("{}/{id}/record.json", layout::HOLDS))
}

fn released_path(id: &str) -> Path {
    Path::from(format!("{}/{id}/released.json", layout::HOLDS))
}

pub(crate) fn purge_path(id: &str) -> Path {
    Path::from(format!("{}/{id}/purge.json", layout::HOLDS))
}

/// The prefix of a hold's copies.
pub fn reads_prefix(id: &str) -> Path {
    Path::from(format!("{}/{id}/reads", layout::HOLDS))
}

/// The object name of a read's copy under a hold.
pub fn copy_path(id: &str, key: &ReadKey) -> Path {
    Path::from(format!("{}/{id}/reads/{}", layout::HOLDS, copy_name(key)))
}

fn copy_name(key: &ReadKey) -> String {
    format!("{}-{}", layout::time_label(key.captured_at), key.locator)
}

fn copy_context(path: &Path, captured_at: DateTime<Utc>) -> Vec<u8> {
    format!(
        "lethe/held-read/v1\n{path}\n{}",
        captured_at.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    )
    .into_bytes()
}

fn plate_context(id: &str) -> Vec<u8> {
    format!("lethe/hold-plate/v1\n{id}").into_bytes()
}

async fn put_create(store: &dyn ObjectStore, path: &Path, body: Vec<u8>) -> Result<bool, HoldError> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(path, PutPayload::from(body), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(backend("put", path, e)),
    }
}

async fn get_json<T: for<'de> Deserialize<'de>>(store: &dyn ObjectStore, path: &Path) -> Result<Option<T>, HoldError> {
    match store.get(path).await {
        Ok(r) => {
            let b = r.bytes().await.map_err(|e| backend("get", path, e))?;
            serde_json::from_slice(&b).map(Some).map_err(|e| HoldError::Corrupt {
                key: path.to_string(),
                reason: e.to_string(),
            })
        }
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(backend("get", path, e)),
    }
}

fn new_hold_id(now: DateTime<Utc>) -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 5];
    ring::rand::SystemRandom::new().fill(&mut b).expect("OS random");
    format!("h{}-{}", now.format("%Y%m%d"), hex::encode(b))
}

fn check_id(id: &str) -> Result<(), HoldError> {
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(HoldError::Invalid {
            field: "id",
            reason: "a hold id is letters, digits and dashes".into(),
        });
    }
    Ok(())
}

/// A hold loaded with its key and (decrypted) plate scope, as the sweeper and placing use it.
#[derive(Debug)]
pub(crate) struct LoadedHold {
    pub hold: Hold,
    pub key: Arc<DataKey>,
    pub plate: Option<String>,
    /// Names of the copies already under the hold.
    pub copies: HashSet<String>,
}

impl LoadedHold {
    fn id(&self) -> &str {
        &self.hold.record.hold_id
    }

    /// Could a read with this name be in scope (window and plate bucket)? `dk` is its day key.
    pub(crate) fn may_cover(&self, key: &ReadKey, dk: &DataKey) -> bool {
        let r = &self.hold.record;
        if key.captured_at < r.from || key.captured_at > r.to {
            return false;
        }
        match &self.plate {
            Some(p) => key.bucket == blind::bucket(&dk.blind, &plate::folded(p), dk.blind_bits),
            None => true,
        }
    }

    fn covers(&self, read: &PlateRead) -> bool {
        let r = &self.hold.record;
        (r.cameras.is_empty() || r.cameras.contains(&read.camera_id)) && self.plate.as_deref().is_none_or(|p| read.plate == p)
    }

    /// Seals `read` under the hold key as its copy (create-only; an existing copy is kept).
    async fn copy(&mut self, store: &dyn ObjectStore, key: &ReadKey, read: &PlateRead) -> Result<(), HoldError> {
        let path = copy_path(self.id(), key);
        let sealed = envelope::seal(
            &self.key.enc,
            &KeyName::Hold(self.id().to_string()).key_id(),
            &copy_context(&path, key.captured_at),
            &read.encode(),
        );
        put_create(store, &path, sealed).await?;
        self.copies.insert(copy_name(key));
        Ok(())
    }

    /// Makes sure that, if the hold covers the read `key`, its copy exists. Returns whether the
    /// read is held. Decrypts the original only when its name cannot decide.
    pub async fn ensure_held(&mut self, reads: &ReadStore, key: &ReadKey, dk: &DataKey) -> Result<bool, HoldError> {
        if !self.may_cover(key, dk) {
            return Ok(false);
        }
        if self.copies.contains(&copy_name(key)) {
            return Ok(true);
        }
        let read = match reads.get(key).await {
            Ok(r) => r,
            Err(StoreError::Backend {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if !self.covers(&read) {
            return Ok(false);
        }
        self.copy(reads.object_store().as_ref(), key, &read).await?;
        Ok(true)
    }
}

/// Lists every hold, active or not, oldest id first.
pub async fn list(reads: &ReadStore) -> Result<Vec<Hold>, HoldError> {
    let store = reads.object_store();
    let prefix = Path::from(layout::HOLDS);
    let res = store
        .list_with_delimiter(Some(&prefix))
        .await
        .map_err(|e| backend("list", &prefix, e))?;
    let mut out = Vec::new();
    for p in res.common_prefixes {
        let Some(id) = p.filename() else { continue };
        if let Some(h) = load(reads, id).await? {
            out.push(h);
        }
    }
    out.sort_by(|a, b| a.record.hold_id.cmp(&b.record.hold_id));
    Ok(out)
}

/// Loads one hold; `None` if it has no record (a purged hold).
pub async fn load(reads: &ReadStore, id: &str) -> Result<Option<Hold>, HoldError> {
    check_id(id)?;
    let store = reads.object_store().as_ref();
    let Some(record) = get_json::<HoldRecord>(store, &record_path(id)).await? else {
        return Ok(None);
    };
    let released = get_json::<Release>(store, &released_path(id)).await?;
    Ok(Some(Hold { record, released }))
}

pub(crate) async fn load_full(reads: &ReadStore, hold: Hold) -> Result<LoadedHold, HoldError> {
    let id = hold.record.hold_id.clone();
    let key = reads.keys().get(&KeyName::Hold(id.clone())).await?;
    let plate = match &hold.record.plate_ciphertext {
        None => None,
        Some(ct) => {
            let bytes = B64.decode(ct).map_err(|e| HoldError::Corrupt {
                key: record_path(&id).to_string(),
                reason: e.to_string(),
            })?;
            let corrupt = |reason: String| HoldError::Corrupt {
                key: record_path(&id).to_string(),
                reason,
            };
            let header = envelope::parse_header(&bytes).map_err(|e| corrupt(e.to_string()))?;
            let plain = envelope::open(&key.enc, &header, &bytes, &plate_context(&id)).map_err(|e| corrupt(e.to_string()))?;
            Some(String::from_utf8(plain).map_err(|e| corrupt(e.to_string()))?)
        }
    };
    let store = reads.object_store();
    let prefix = reads_prefix(&id);
    let copies = store
        .list(Some(&prefix))
        .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
        .try_collect()
        .await
        .map_err(|e| backend("list", &prefix, e))?;
    Ok(LoadedHold { hold, key, plate, copies })
}

/// Places a hold: writes its record, copies every in-scope read still within retention under
/// the hold key, and appends `HoldPlaced` to the ledger.
pub async fn place(
    reads: &ReadStore,
    log: &dyn ProofLog,
    clock: &dyn Clock,
    retention: &Retention,
    req: HoldRequest,
) -> Result<Placed, HoldError> {
    let now = clock.now();
    let invalid = |field, reason: &str| HoldError::Invalid {
        field,
        reason: reason.into(),
    };
    if req.case_number.trim().is_empty() {
        return Err(invalid("case", "must not be empty"));
    }
    if req.authority_ref.trim().is_empty() {
        return Err(invalid("ref", "must not be empty"));
    }
    if req.until <= now {
        return Err(invalid("until", "must be in the future"));
    }
    let from = req.from.unwrap_or_else(|| retention.cutoff(now));
    let to = req.to.unwrap_or(now);
    if from > to {
        return Err(invalid("from", "must not be after --to"));
    }
    let plate = req
        .plate
        .as_deref()
        .map(plate::canonical)
        .transpose()
        .map_err(|e| invalid("plate", &e.to_string()))?;
    let id = new_hold_id(now);
    let handle = reads.keys().get_or_create(&KeyName::Hold(id.clone()), HOLD_BLIND_BITS, now).await?;
    let (plate_ciphertext, plate_blind) = match &plate {
        Some(p) => (
            Some(B64.encode(envelope::seal(
                &handle.key.enc,
                &KeyName::Hold(id.clone()).key_id(),
                &plate_context(&id),
                p.as_bytes(),
            ))),
            Some(blind::full_blind(&handle.key.blind, p)),
        ),
        None => (None, None),
    };
    let record = HoldRecord {
        v: 1,
        hold_id: id.clone(),
        case_number: req.case_number,
        authority: req.authority,
        authority_ref: req.authority_ref,
        until: req.until,
        from,
        to,
        cameras: req.camera.into_iter().collect(),
        plate_ciphertext,
        plate_blind,
        placed_at: now,
        placed_by: req.placed_by,
    };
    let store = reads.object_store().clone();
    put_create(store.as_ref(), &record_path(&id), serde_json::to_vec(&record).expect("serializes")).await?;
    let mut loaded = LoadedHold {
        hold: Hold {
            record: record.clone(),
            released: None,
        },
        key: handle.key,
        plate,
        copies: HashSet::new(),
    };
    let cutoff = retention.cutoff(now);
    let mut day = from.max(cutoff).date_naive();
    let last: NaiveDate = to.date_naive();
    let mut held = 0u64;
    while day <= last {
        let dk = match reads.keys().get(&KeyName::Day(day)).await {
            Ok(k) => k,
            Err(KeyError::Missing { .. }) | Err(KeyError::Shredded { .. }) => {
                day = day.succ_opt().expect("date in range");
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let keys: Vec<ReadKey> = reads.list_day(day).try_collect().await?;
        for k in keys {
            if k.captured_at >= cutoff && loaded.ensure_held(reads, &k, &dk).await? {
                held += 1;
            }
        }
        day = day.succ_opt().expect("date in range");
    }
    let event = HoldPlacedEvent {
        hold_id: id,
        case_number: record.case_number.clone(),
        authority: record.authority.as_str().into(),
        authority_ref: record.authority_ref.clone(),
        from,
        to,
        cameras: record.cameras.clone(),
        plate_ciphertext: record.plate_ciphertext.clone(),
        plate_blind: record.plate_blind.clone(),
        until: record.until,
        reads_held: held,
        placed_by: record.placed_by.clone(),
    };
    log.append(now, SweepEvent::HoldPlaced(event)).await?;
    Ok(Placed { record, reads_held: held })
}

/// Releases a hold (its copies are deleted by the next sweep) and appends `HoldReleased`.
/// Returns false when it was already released (nothing written).
pub async fn release(
    reads: &ReadStore,
    log: &dyn ProofLog,
    clock: &dyn Clock,
    id: &str,
    by: &str,
    reason: &str,
) -> Result<bool, HoldError> {
    let hold = load(reads, id).await?.ok_or_else(|| HoldError::NotFound { hold_id: id.into() })?;
    let now = clock.now();
    let rel = Release {
        v: 1,
        at: now,
        by: by.into(),
        reason: reason.into(),
    };
    let created = put_create(
        reads.object_store().as_ref(),
        &released_path(id),
        serde_json::to_vec(&rel).expect("serializes"),
    )
    .await?;
    if created {
        log.append(
            now,
            SweepEvent::HoldReleased {
                hold_id: id.into(),
                case_number: hold.record.case_number,
                released_by: by.into(),
                reason: reason.into(),
            },
        )
        .await?;
    }
    Ok(created)
}

/// Decrypts every read held under a hold, in name (time) order.
pub async fn held_reads(reads: &ReadStore, id: &str) -> Result<Vec<PlateRead>, HoldError> {
    check_id(id)?;
    let key = reads.keys().get(&KeyName::Hold(id.to_string())).await?;
    let store = reads.object_store();
    let prefix = reads_prefix(id);
    let mut paths: Vec<Path> = store
        .list(Some(&prefix))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .map_err(|e| backend("list", &prefix, e))?;
    paths.sort();
    let mut out = Vec::new();
    for p in paths {
        let corrupt = |reason: String| HoldError::Corrupt {
            key: p.to_string(),
            reason,
        };
        let name = p.filename().unwrap_or_default();
        let captured_at = name
            .split_once('-')
            .and_then(|(t, _)| layout::parse_time_label(t))
            .ok_or_else(|| corrupt("not a held-read name".into()))?;
        let bytes = store
            .get(&p)
            .await
            .map_err(|e| backend("get", &p, e))?
            .bytes()
            .await
            .map_err(|e| backend("get", &p, e))?;
        let header = envelope::parse_header(&bytes).map_err(|e| corrupt(e.to_string()))?;
        let plain = envelope::open(&key.enc, &header, &bytes, &copy_context(&p, captured_at)).map_err(|e| corrupt(e.to_string()))?;
        let read = PlateRead::decode(&plain).map_err(|e| corrupt(e.to_string()))?;
        if read.captured_at != captured_at {
            return Err(corrupt("capture time does not match the name".into()));
        }
        out.push(read);
    }
    Ok(out)
}
