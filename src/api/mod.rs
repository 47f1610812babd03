//! The gRPC API: ingest and search, authenticated, policy-gated, every search on the ledger.
//!
//! Guarantees, each tested black-box in `tests/api.rs`:
//! - Every call is authenticated by a bearer token (`authorization: Bearer …`); unknown or
//!   missing tokens are UNAUTHENTICATED, a missing role is PERMISSION_DENIED.
//! - **Ingest**: a read is acknowledged (STORED or DUPLICATE) only once its encrypted object is
//!   durable *and* its batch's ingest-commit record (day, count, Merkle root of object keys and
//!   ciphertext hashes) is durable in the ledger. A rejected read stores nothing. If a batch
//!   fails (store or ledger), nothing of it is acknowledged and what it stored is deleted again.
//! - **Search**: every attempt that names a valid plate, allowed or denied, writes an access
//!   record (who, why, the plate sealed under the audit key with its blind value, window,
//!   decision, rule, and a receipt of the read ids returned) *before* the first message is sent.
//!   No record, no data: a ledger failure is UNAVAILABLE with nothing returned. Because the
//!   receipt must precede the results, matches are found first (capped at
//!   [`ApiLimits::max_search_results`] reads; a capped search says so, `truncated`), keeping whole
//!   results only within [`ApiLimits::search_buffer_bytes`] and just the object name of the rest,
//!   which is fetched again while the response is sent. Memory stays flat whatever the size of a
//!   search. The receipt lists exactly the reads the header counts; if one of them cannot be sent
//!   (store down: UNAVAILABLE; removed by a sweep after the record was written: ABORTED) the
//!   stream ends with that error, never quietly short. See [`search`]. Capture days are listed
//!   [`FIND_DAYS_AT_ONCE`](crate::store::reads::FIND_DAYS_AT_ONCE) at a time and their reads
//!   fetched in order, a bounded window at a time.
//! - Searches refused before a decision (malformed plate, window or labels: INVALID_ARGUMENT, or
//!   no valid token: UNAUTHENTICATED) are not access records: there is no principal or no plate
//!   to record. Every request that reaches the policy is recorded, allowed or denied.
//! - Reads captured before the retention cutoff are never returned, swept or not.
//!
//! Layout: [`server`] (tonic wiring, health, reflection, shutdown), [`ingest`], [`search`],
//! [`error`] (the one mapping to `tonic::Status`), [`ports`] (what the API needs from
//! authentication, policy and the ledger), [`convert`], [`proto`] (generated).

pub mod convert;
pub mod error;
pub mod ingest;
pub mod ports;
pub mod proto;
pub mod search;
pub mod server;

use std::sync::Arc;

use tonic::metadata::MetadataMap;

pub use error::ApiError;
pub use ports::{AccessControl, AuditLedger, Authenticator, LedgerWriter};

use ports::{Action, Principal, RecordBody, Refused, RequestContext};

use crate::clock::SharedClock;
use crate::config::ServerConfig;
use crate::crypto::AuditKey;
use crate::policy::Retention;
use crate::store::ReadStore;

/// Limits the API enforces.
#[derive(Debug, Clone, Copy)]
pub struct ApiLimits {
    /// Largest gRPC message accepted or sent, in bytes (larger: RESOURCE_EXHAUSTED).
    pub max_message_bytes: usize,
    /// Largest image accepted, in bytes.
    pub max_image_bytes: usize,
    /// Allowed camera clock skew into the future, in seconds.
    pub future_skew_secs: i64,
    /// Most reads one search returns (a hard bound: beyond the buffer, each costs ~200 bytes of
    /// memory until it is sent, plus its 32-byte receipt hash in the access record).
    pub max_search_results: usize,
    /// Bytes of whole results (metadata and images) one search keeps in memory between finding
    /// them and sending them; past it, only each read's object name is kept and the read is fetched
    /// again as it is sent. 0 re-fetches every result.
    pub search_buffer_bytes: usize,
    /// Object puts in flight per ingest batch.
    pub ingest_concurrency: usize,
    /// Object puts in flight across the whole server (all streams and batches together), so
    /// that many clients cannot pile more requests on the store than it serves (radosgw failed
    /// ingest with 2,048 puts at once; its `rgw_max_concurrent_requests` defaults to 1,024).
    pub max_ingest_puts: usize,
}

impl ApiLimits {
    /// The limits a server configuration sets (the result cap and the puts in flight per batch
    /// have fixed defaults).
    pub fn from_config(c: &ServerConfig) -> Self {
        Self {
            max_message_bytes: c.max_message_bytes,
            max_image_bytes: c.max_image_bytes,
            future_skew_secs: c.future_skew_secs,
            search_buffer_bytes: c.search_buffer_bytes,
            max_ingest_puts: c.max_ingest_puts,
            ..Self::default()
        }
    }
}

impl Default for ApiLimits {
    fn default() -> Self {
        let c = ServerConfig::default();
        Self {
            max_message_bytes: c.max_message_bytes,
            max_image_bytes: c.max_image_bytes,
            future_skew_secs: c.future_skew_secs,
            max_search_results: 100_000,
            search_buffer_bytes: c.search_buffer_bytes,
            ingest_concurrency: 32,
            max_ingest_puts: c.max_ingest_puts,
        }
    }
}

/// Everything the handlers use. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiState {
    /// The encrypted read store.
    pub reads: ReadStore,
    /// Bearer token → principal.
    pub auth: Arc<dyn Authenticator>,
    /// The access policy (Cedar).
    pub policy: Arc<dyn AccessControl>,
    /// The ledger (ingest commits, access records).
    pub ledger: Arc<dyn AuditLedger>,
    /// Seals searched plates in access records.
    pub audit_key: AuditKey,
    /// The retention rule (ingest cutoff, search clipping).
    pub retention: Retention,
    /// The clock.
    pub clock: SharedClock,
    /// Limits.
    pub limits: ApiLimits,
    /// Permits for object puts in flight, [`ApiLimits::max_ingest_puts`] of them, shared by
    /// every clone of this state (see [`ApiState::ingest_slots`]).
    pub ingest_slots: Arc<tokio::sync::Semaphore>,
}

impl ApiState {
    /// The put permits for a server with `limits`.
    pub fn ingest_slots(limits: &ApiLimits) -> Arc<tokio::sync::Semaphore> {
        Arc::new(tokio::sync::Semaphore::new(limits.max_ingest_puts.max(1)))
    }

    /// The principal behind the call's bearer token, if the access policy lets it do `action`
    /// (which needs no purpose or case number: ingest, audit, admin). A refusal is a `refused`
    /// ledger record before the PERMISSION_DENIED goes back (UNAVAILABLE if it cannot be written):
    /// every decision is on the record, not only a search's.
    pub async fn principal(&self, md: &MetadataMap, action: Action) -> Result<Principal, ApiError> {
        let p = self.authenticate(md)?;
        let d = self.policy.authorize(&p, action, &RequestContext::none());
        if !d.allowed {
            let refused = Refused {
                principal: p.id.clone(),
                agency: p.agency.clone(),
                jurisdiction: p.jurisdiction.clone(),
                action: action.to_string(),
                rule: d.rule.clone(),
                reason: d.reason.clone(),
            };
            let seq = self.ledger.append(RecordBody::Refused(refused)).await?;
            tracing::info!(principal = %p.id, %action, rule = %d.rule, access_entry = seq, "call refused");
            return Err(ApiError::Denied {
                rule: d.rule,
                reason: d.reason,
            });
        }
        Ok(p)
    }

    /// The principal behind the call's bearer token.
    pub fn authenticate(&self, md: &MetadataMap) -> Result<Principal, ApiError> {
        let v = md
            .get("authorization")
            .ok_or(ApiError::Unauthenticated("missing authorization metadata (Bearer token)"))?;
        let v = v
            .to_str()
            .map_err(|_| ApiError::Unauthenticated("malformed authorization metadata"))?;
        let token = match v.split_once(' ') {
            Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
            _ => return Err(ApiError::Unauthenticated("authorization is not a Bearer token")),
        };
        if token.is_empty() {
            return Err(ApiError::Unauthenticated("empty bearer token"));
        }
        self.auth
            .authenticate(token)
            .ok_or(ApiError::Unauthenticated("unknown bearer token"))
    }
}

fn sha256(b: &[u8]) -> [u8; 32] {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .try_into()
        .expect("32 bytes")
}
