//! What the API needs from authentication, access policy and the ledger, as small traits.
//!
//! The API depends on these ports rather than on the concrete registry, Cedar policy set and
//! ledger, so that each is replaceable (and fakeable in tests) without touching the handlers.
//! [`super::interim`] holds stand-ins used until `policy/` and `ledger/` are wired in.

use std::collections::BTreeSet;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A role a principal may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May send reads.
    Ingest,
    /// May search (subject to the access policy).
    Search,
    /// May read the ledger and run audits.
    Audit,
    /// May change settings.
    Admin,
}

impl Role {
    /// The role's name as written in the registry.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Search => "search",
            Role::Audit => "audit",
            Role::Admin => "admin",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Principal id (e.g. `city-pd`).
    pub id: String,
    /// The agency it acts for.
    pub agency: String,
    /// `public` or `private`.
    pub agency_kind: String,
    /// `local`, `state` or `federal`.
    pub level: String,
    /// US state code of the agency's jurisdiction (e.g. `CA`).
    pub jurisdiction: String,
    /// Roles held.
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// Does it hold `role`?
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// Maps a bearer token to a principal.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The principal whose token this is, or `None` for an unknown token.
    fn authenticate(&self, token: &str) -> Option<Principal>;
}

/// What a search asks for, as the access policy sees it.
#[derive(Debug, Clone)]
pub struct SearchContext {
    /// Declared purpose.
    pub purpose: String,
    /// Declared case number (may be empty: the policy decides).
    pub case_number: String,
    /// Window start, after clipping.
    pub from: DateTime<Utc>,
    /// Window end, after clipping.
    pub to: DateTime<Utc>,
    /// OCR-folded search requested.
    pub folded: bool,
}

/// An access decision and the rule behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// Allowed?
    pub allowed: bool,
    /// The rule that decided (a policy id, or `default-deny`).
    pub rule: String,
    /// A human-readable reason.
    pub reason: String,
}

/// Decides whether a principal may search.
pub trait SearchPolicy: Send + Sync + std::fmt::Debug {
    /// Default-deny: anything not explicitly permitted is refused.
    fn authorize_search(&self, principal: &Principal, ctx: &SearchContext) -> Decision;
}

/// A batch of reads stored: one record per capture day of the batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestCommit {
    /// Capture day (UTC).
    pub day: NaiveDate,
    /// Reads covered (newly stored plus acknowledged duplicates).
    pub count: u64,
    /// Of which newly stored.
    pub stored: u64,
    /// RFC 6962 Merkle root (hex) over the sorted leaves `object key ‖ 0x00 ‖ ciphertext SHA-256`.
    pub merkle_root: String,
    /// Who sent the batch.
    pub principal: String,
}

/// A receipt of what a search returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// How many reads were returned.
    pub count: u64,
    /// SHA-256 (hex) of each returned read id, in the order sent.
    pub read_id_hashes: Vec<String>,
}

/// One search attempt, allowed or denied. Holds no plaintext plate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRecord {
    /// Principal id.
    pub principal: String,
    /// Its agency.
    pub agency: String,
    /// The agency's jurisdiction.
    pub jurisdiction: String,
    /// Declared purpose.
    pub purpose: String,
    /// Declared case number.
    pub case_number: String,
    /// The searched (canonical) plate, sealed under the audit key (base64 envelope).
    pub plate_ciphertext: String,
    /// Keyed blind value of the searched plate (hex), to group searches for one plate.
    pub plate_blind: String,
    /// Window start searched (after clipping).
    pub from: DateTime<Utc>,
    /// Window end searched.
    pub to: DateTime<Utc>,
    /// OCR-folded search?
    pub folded: bool,
    /// Camera filter, if any.
    pub camera_id: Option<String>,
    /// Allowed or denied.
    pub allowed: bool,
    /// The rule that decided.
    pub rule: String,
    /// Why.
    pub reason: String,
    /// What was returned (empty when denied).
    pub receipt: Receipt,
    /// Results were capped (more matched than were returned).
    pub truncated: bool,
}

/// A record the API writes to the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LedgerRecord {
    /// A batch of reads stored.
    IngestCommit(IngestCommit),
    /// A search attempt.
    Access(Box<AccessRecord>),
}

/// A ledger write failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The ledger's store did not accept the record; nothing was appended.
    #[error("ledger unavailable: {0}")]
    Unavailable(String),
    /// Anything else (corrupt ledger, encoding).
    #[error("ledger: {0}")]
    Internal(String),
}

/// The append-only ledger, as the API uses it.
#[async_trait]
pub trait AuditLedger: Send + Sync + std::fmt::Debug {
    /// Appends a record; returns its sequence number once it is durable.
    async fn append(&self, record: LedgerRecord) -> Result<u64, LedgerError>;
}
