//! Ledger records: what is written, and its canonical encoding.
//!
//! A record is encoded once, by [`Record::encode`] (serde_json of fixed-order structs, no
//! floats, timestamps as RFC 3339 UTC with exactly nine fractional digits), and the ledger
//! stores and hashes exactly those bytes: the Merkle leaf is `SHA-256(0x00 || bytes)`. Readers
//! never re-encode to verify, so decoding may be lenient about additions while hashes stay exact.
//!
//! Format versions: [`RECORD_VERSION`] is written into every record. A decoder accepts every
//! version it knows (today only 1); `tests/ledger_record_v1.json` is a fixture written by
//! version 1 and must keep decoding. Changing field names or encodings breaks stored data.
//!
//! No plaintext plate is ever written: a searched plate is `plate_ciphertext` (encrypted by the
//! caller under the audit key, opaque here) plus its blind index value.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::merkle::Hash;

/// The record format version written by this code.
pub const RECORD_VERSION: u32 = 1;

/// One ledger entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Record format version ([`RECORD_VERSION`] when written by this code).
    pub v: u32,
    /// When the writer created the record (from the injected clock).
    #[serde(with = "ts")]
    pub timestamp: DateTime<Utc>,
    /// Who wrote it: the process/service identity (e.g. `serve@host`, `sweep@host`).
    pub writer: String,
    /// What happened.
    pub body: RecordBody,
}

impl Record {
    /// A version-[`RECORD_VERSION`] record.
    pub fn new(timestamp: DateTime<Utc>, writer: impl Into<String>, body: RecordBody) -> Self {
        Self {
            v: RECORD_VERSION,
            timestamp,
            writer: writer.into(),
            body,
        }
    }

    /// The canonical bytes that are stored and hashed.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("records always serialize")
    }

    /// Decodes stored bytes. Fails on unknown versions and malformed input.
    pub fn decode(bytes: &[u8]) -> Result<Self, RecordDecodeError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            v: u32,
        }
        let v: VersionOnly = serde_json::from_slice(bytes).map_err(|e| RecordDecodeError::Malformed(e.to_string()))?;
        if v.v != RECORD_VERSION {
            return Err(RecordDecodeError::UnknownVersion(v.v));
        }
        serde_json::from_slice(bytes).map_err(|e| RecordDecodeError::Malformed(e.to_string()))
    }

    /// The stable kind name (`ledger show --kind`).
    pub fn kind(&self) -> &'static str {
        self.body.kind()
    }
}

/// Why stored record bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordDecodeError {
    /// A version this code does not know.
    #[error("unknown record version {0}")]
    UnknownVersion(u32),
    /// Not a record.
    #[error("malformed record: {0}")]
    Malformed(String),
}

/// The kinds of records. Serialized with a `kind` tag in snake_case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum RecordBody {
    /// A batch of reads was stored.
    IngestCommit(IngestCommit),
    /// A search decision and what it returned (written before any result is sent).
    Access(Access),
    /// A day's reads were deleted and its key destroyed.
    DeletionProof(DeletionProof),
    /// A legal hold was placed.
    HoldPlaced(HoldPlaced),
    /// A legal hold was released.
    HoldReleased(HoldReleased),
    /// The policy set was loaded (at start).
    PolicyLoaded(PolicyLoaded),
    /// The policy set changed.
    PolicyChanged(PolicyChanged),
    /// A policy set was approved as the baseline.
    PolicyApproved(PolicyApproved),
    /// Outcome of a settings/compliance audit.
    SettingsAudit(SettingsAudit),
    /// A data key was created.
    KeyCreated(KeyEvent),
    /// A data key was destroyed (crypto-shredding).
    KeyDestroyed(KeyEvent),
    /// A sweep was forced past a safety check.
    SweepForced(SweepForced),
    /// A released or expired hold's copies were deleted and its key destroyed.
    HoldPurged(HoldPurged),
    /// An authenticated call other than a search was refused by the access policy (a search's
    /// refusal is an [`Access`] record).
    Refused(Refused),
}

impl RecordBody {
    /// Every kind name, for `ledger show --kind` validation and help.
    pub const KINDS: &'static [&'static str] = &[
        "ingest_commit",
        "access",
        "deletion_proof",
        "hold_placed",
        "hold_released",
        "policy_loaded",
        "policy_changed",
        "policy_approved",
        "settings_audit",
        "key_created",
        "key_destroyed",
        "sweep_forced",
        "hold_purged",
        "refused",
    ];

    /// The stable kind name, equal to the serialized `kind` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::IngestCommit(_) => "ingest_commit",
            Self::Access(_) => "access",
            Self::DeletionProof(_) => "deletion_proof",
            Self::HoldPlaced(_) => "hold_placed",
            Self::HoldReleased(_) => "hold_released",
            Self::PolicyLoaded(_) => "policy_loaded",
            Self::PolicyChanged(_) => "policy_changed",
            Self::PolicyApproved(_) => "policy_approved",
            Self::SettingsAudit(_) => "settings_audit",
            Self::KeyCreated(_) => "key_created",
            Self::KeyDestroyed(_) => "key_destroyed",
            Self::SweepForced(_) => "sweep_forced",
            Self::HoldPurged(_) => "hold_purged",
            Self::Refused(_) => "refused",
        }
    }
}

/// A batch of reads stored for one capture day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestCommit {
    /// Capture day (UTC).
    pub day: NaiveDate,
    /// Reads stored in this batch.
    pub count: u64,
    /// RFC 6962 root over leaves `object key || 0x00 || SHA-256(ciphertext)`, in key order.
    #[serde(with = "hex32")]
    pub merkle_root: Hash,
    /// First and last object key of the batch (for reconciliation without listing).
    pub first_key: String,
    /// Last object key of the batch.
    pub last_key: String,
}

/// Allowed or denied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The policy allowed the search.
    Allow,
    /// The policy denied the search.
    Deny,
}

/// What a search returned.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Receipt {
    /// Number of reads the search sends (written before the first is sent; if the response ends
    /// early with an error, fewer reached the client: see `api::search`).
    pub count: u64,
    /// SHA-256 of each read id the search sends, in the order sent.
    #[serde(with = "hex32_vec")]
    pub read_id_hashes: Vec<Hash>,
}

/// A search: who, why, what was asked, the decision and what went out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    /// Authenticated principal id.
    pub principal: String,
    /// The principal's agency.
    pub agency: String,
    /// The agency's jurisdiction (US state code).
    pub jurisdiction: String,
    /// Stated purpose.
    pub purpose: String,
    /// Case number, if given.
    pub case_number: Option<String>,
    /// The searched plate, encrypted under the audit key (opaque bytes; never plaintext).
    #[serde(with = "b64")]
    pub plate_ciphertext: Vec<u8>,
    /// The plate's blind index value.
    #[serde(with = "hexvec")]
    pub plate_blind: Vec<u8>,
    /// Start of the searched window.
    #[serde(with = "ts")]
    pub window_from: DateTime<Utc>,
    /// End of the searched window.
    #[serde(with = "ts")]
    pub window_to: DateTime<Utc>,
    /// The decision.
    pub decision: Decision,
    /// The rule (policy id) behind the decision.
    pub rule: String,
    /// Human-readable reason.
    pub reason: String,
    /// What was returned (empty for a denial).
    pub receipt: Receipt,
}

/// Proof that a day was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionProof {
    /// Capture day (UTC).
    pub day: NaiveDate,
    /// Retention cutoff instant used.
    #[serde(with = "ts")]
    pub cutoff: DateTime<Utc>,
    /// The sweep batch of the day (1, 2, …) this proof covers, or absent for the day's closing
    /// proof, which restates the day's totals and reconciles them (added by the sweeper; absent
    /// in earlier records, which decode as closing proofs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// Reads deleted.
    pub reads_deleted: u64,
    /// RFC 6962 root over the deleted object keys, in key order.
    #[serde(with = "hex32")]
    pub deleted_keys_root: Hash,
    /// Reads kept back under legal hold.
    pub reads_held: u64,
    /// Whether the day key was destroyed.
    pub key_destroyed: bool,
    /// Reads ingested for the day according to its ingest commits.
    pub ingested_total: u64,
    /// Whether deleted + held matched the ingest commits.
    pub reconciled: bool,
    /// Whether the sweep was forced past a safety check.
    pub forced: bool,
}

/// What a hold covers. No plaintext plate: plates are given encrypted plus blind values.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HoldScope {
    /// Plates, encrypted under the audit key (or, in a hold record, under the hold key).
    #[serde(with = "b64_vec")]
    pub plate_ciphertexts: Vec<Vec<u8>>,
    /// Blind index values of those plates.
    #[serde(with = "hexvec_vec")]
    pub plate_blinds: Vec<Vec<u8>>,
    /// Camera ids.
    pub cameras: Vec<String>,
    /// Start of the covered capture window.
    #[serde(with = "ts")]
    pub from: DateTime<Utc>,
    /// End of the covered capture window.
    #[serde(with = "ts")]
    pub to: DateTime<Utc>,
}

/// A legal hold was placed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPlaced {
    /// Hold id.
    pub hold_id: String,
    /// Case the hold is for.
    pub case_number: String,
    /// Kind of authority: warrant, court_order, preservation_request.
    pub authority: String,
    /// Reference of the authority document.
    pub authority_ref: String,
    /// What the hold covers.
    pub scope: HoldScope,
    /// When the hold ends.
    #[serde(with = "ts")]
    pub until: DateTime<Utc>,
    /// Reads re-encrypted under the hold key.
    pub reads_held: u64,
    /// Principal who placed it.
    pub placed_by: String,
}

/// A legal hold was released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldReleased {
    /// Hold id.
    pub hold_id: String,
    /// Case the hold was for.
    pub case_number: String,
    /// Principal who released it (or `expiry`).
    pub released_by: String,
    /// Why.
    pub reason: String,
}

/// One policy file and its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyFile {
    /// File name within `policies/`.
    pub name: String,
    /// SHA-256 of its bytes.
    #[serde(with = "hex32")]
    pub hash: Hash,
}

/// The policy set was loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyLoaded {
    /// Hash of the whole policy set.
    #[serde(with = "hex32")]
    pub policy_hash: Hash,
    /// Each file.
    pub files: Vec<PolicyFile>,
}

/// The policy set changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyChanged {
    /// Previous policy set hash.
    #[serde(with = "hex32")]
    pub old_hash: Hash,
    /// New policy set hash.
    #[serde(with = "hex32")]
    pub new_hash: Hash,
    /// Files added, removed or modified.
    pub changed_files: Vec<PolicyFile>,
}

/// A policy set was approved as the baseline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyApproved {
    /// The approved policy set hash.
    #[serde(with = "hex32")]
    pub policy_hash: Hash,
    /// Who approved it.
    pub approved_by: String,
}

/// Outcome of `lethe audit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettingsAudit {
    /// Number of findings.
    pub findings: u32,
    /// One line per finding (or a summary when none).
    pub summary: Vec<String>,
    /// True when there were no findings.
    pub passed: bool,
}

/// A data key was created or destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEvent {
    /// Key id (e.g. the capture day).
    pub key_id: String,
}

/// A released or expired hold's copies were deleted by the sweeper and its key destroyed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldPurged {
    /// Hold id.
    pub hold_id: String,
    /// Held copies deleted.
    pub reads_deleted: u64,
    /// RFC 6962 root over the deleted copies' object keys, in byte order.
    #[serde(with = "hex32")]
    pub deleted_keys_root: Hash,
    /// The hold key was destroyed.
    pub key_destroyed: bool,
}

/// An authenticated call refused by the access policy before it did anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refused {
    /// Authenticated principal id.
    pub principal: String,
    /// The principal's agency.
    pub agency: String,
    /// The agency's jurisdiction (US state code).
    pub jurisdiction: String,
    /// What it tried (`ingest`, …).
    pub action: String,
    /// The rule (policy id) behind the refusal.
    pub rule: String,
    /// Human-readable reason.
    pub reason: String,
}

/// A sweep was forced past a safety check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepForced {
    /// Why (operator-given, and which check was overridden).
    pub reason: String,
}

/// RFC 3339 UTC with exactly nine fractional digits: lossless and one spelling per instant.
pub mod ts {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339_opts(SecondsFormat::Nanos, true))
    }

    /// Deserialize.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(h))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        let mut out = [0u8; 32];
        hex::decode_to_slice(&s, &mut out).map_err(serde::de::Error::custom)?;
        Ok(out)
    }
}

mod hex32_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        let v = Vec::<String>::deserialize(d)?;
        v.iter()
            .map(|s| {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(serde::de::Error::custom)?;
                Ok(out)
            })
            .collect()
    }
}

mod hexvec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod hexvec_vec {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(hex::encode))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|s| hex::decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        STANDARD.decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod b64_vec {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|b| STANDARD.encode(b)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        Vec::<String>::deserialize(d)?
            .into_iter()
            .map(|s| STANDARD.decode(s).map_err(serde::de::Error::custom))
            .collect()
    }
}

/// The canonical timestamp spelling (RFC 3339 UTC, nine fractional digits).
pub fn ts_string(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}
