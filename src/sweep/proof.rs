//! What the sweeper writes to (and reads from) the ledger, behind a narrow trait.
//!
//! The sweeper needs three things from the ledger: append a record durably, and read back the
//! records that tell it what is already proven (deletion proofs, hold purges) and what was ever
//! ingested (ingest commits, for reconciliation). [`ProofLog`] is exactly that; the ledger
//! implements it, and tests use [`MemoryProofLog`] (which can also fail on command).

use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// A deletion proof: what one sweep confirmed gone for one capture day (a batch proof), or the
/// day's closing proof once every read of the day is gone and its key destroyed.
///
/// Claims are made only for objects a re-listing confirmed absent. Every read of a day is
/// claimed by exactly one batch proof; the closing proof (`batch: None`) restates the day's
/// totals over the union of its batches and reconciles them against the day's ingest commits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletionProof {
    /// Capture day (UTC).
    pub day: NaiveDate,
    /// The retention cutoff the sweep used: every claimed read was captured before it.
    pub cutoff: DateTime<Utc>,
    /// The sweep batch of this day (1, 2, …), or `None` for the day's closing proof.
    pub batch: Option<u32>,
    /// Reads whose content is gone from the store (not held).
    pub reads_deleted: u64,
    /// RFC 6962 Merkle root over the object keys of the deleted reads, in byte order.
    pub deleted_keys_root: Hash,
    /// Reads whose original was removed because a legal hold keeps a re-encrypted copy.
    pub reads_held: u64,
    /// The day key was destroyed (closing proofs only; written after the key is a tombstone).
    pub key_destroyed: bool,
    /// Reads ingested for the day according to its ingest commits (closing proofs; 0 in batches).
    pub ingested_total: u64,
    /// deleted + held == ingested (closing proofs only; false in batch proofs).
    pub reconciled: bool,
    /// The sweep ran with `--force` past the clock check.
    pub forced: bool,
}

/// The records the sweeper and holds write or read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum SweepEvent {
    /// Reads stored for a day (written by ingest; read for reconciliation).
    IngestCommit {
        /// Capture day.
        day: NaiveDate,
        /// Reads in the batch.
        count: u64,
    },
    /// Reads deleted (see [`DeletionProof`]).
    DeletionProof(DeletionProof),
    /// A hold was placed.
    HoldPlaced(crate::hold::HoldPlacedEvent),
    /// A hold was released by someone, or lapsed (`released_by` = `expiry`).
    HoldReleased {
        /// The hold.
        hold_id: String,
        /// Its case.
        case_number: String,
        /// Who (or `expiry`).
        released_by: String,
        /// Why.
        reason: String,
    },
    /// A released or expired hold's copies were deleted and its key destroyed.
    HoldPurged {
        /// The hold.
        hold_id: String,
        /// Held copies deleted.
        reads_deleted: u64,
        /// RFC 6962 root over the deleted copies' object keys.
        deleted_keys_root: Hash,
        /// The hold key is a tombstone.
        key_destroyed: bool,
    },
    /// A sweep was forced past the clock check.
    SweepForced {
        /// Which check and by how much.
        reason: String,
    },
}

/// The ledger failed.
#[derive(Debug, thiserror::Error)]
#[error("ledger {op}: {source}")]
pub struct ProofLogError {
    /// What was being done (append, read).
    pub op: &'static str,
    /// Why.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// The part of the ledger the sweeper needs.
#[async_trait]
pub trait ProofLog: Send + Sync + fmt::Debug {
    /// Appends a record. `Ok` means durable; `Err` means "not known to be durable" (it may still
    /// appear), which is why the sweeper checks [`ProofLog::events`] before writing again.
    async fn append(&self, at: DateTime<Utc>, event: SweepEvent) -> Result<(), ProofLogError>;
    /// Passes the sweep-relevant records (ingest commits, deletion proofs, holds, forces) to `f`
    /// one at a time, in log order. The log is streamed: nothing but what `f` keeps stays in
    /// memory, however long the log has grown.
    async fn for_each_event(&self, f: &mut (dyn FnMut(SweepEvent) + Send)) -> Result<(), ProofLogError>;

    /// The sweep-relevant records in log order, collected (for tests and small logs; the sweeper
    /// folds them with [`ProofLog::for_each_event`] instead).
    async fn events(&self) -> Result<Vec<SweepEvent>, ProofLogError> {
        let mut out = Vec::new();
        self.for_each_event(&mut |e| out.push(e)).await?;
        Ok(out)
    }
}

/// An in-memory [`ProofLog`] for tests, with failure injection.
#[derive(Debug, Default)]
pub struct MemoryProofLog {
    inner: Mutex<MemoryInner>,
}

#[derive(Debug, Default)]
struct MemoryInner {
    events: Vec<(DateTime<Utc>, SweepEvent)>,
    /// Appends that fail before anything is stored.
    fail: usize,
    /// Appends that are stored and then reported as failed (a lost acknowledgement).
    store_then_fail: usize,
}

impl MemoryProofLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next `n` appends fail and store nothing.
    pub fn fail_appends(&self, n: usize) {
        self.inner.lock().expect("log").fail = n;
    }

    /// The next `n` appends are stored but reported as failed.
    pub fn store_then_fail_appends(&self, n: usize) {
        self.inner.lock().expect("log").store_then_fail = n;
    }

    /// Everything appended so far.
    pub fn all(&self) -> Vec<SweepEvent> {
        self.inner.lock().expect("log").events.iter().map(|(_, e)| e.clone()).collect()
    }

    /// The deletion proofs appended so far.
    pub fn proofs(&self) -> Vec<DeletionProof> {
        self.all()
            .into_iter()
            .filter_map(|e| match e {
                SweepEvent::DeletionProof(p) => Some(p),
                _ => None,
            })
            .collect()
    }
}

fn injected() -> ProofLogError {
    ProofLogError {
        op: "append",
        source: "injected ledger failure".into(),
    }
}

#[async_trait]
impl ProofLog for MemoryProofLog {
    async fn append(&self, at: DateTime<Utc>, event: SweepEvent) -> Result<(), ProofLogError> {
        let mut g = self.inner.lock().expect("log");
        if g.fail > 0 {
            g.fail -= 1;
            return Err(injected());
        }
        g.events.push((at, event));
        if g.store_then_fail > 0 {
            g.store_then_fail -= 1;
            return Err(injected());
        }
        Ok(())
    }

    async fn for_each_event(&self, f: &mut (dyn FnMut(SweepEvent) + Send)) -> Result<(), ProofLogError> {
        self.all().into_iter().for_each(f);
        Ok(())
    }
}

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    ctx.finish().as_ref().try_into().expect("32 bytes")
}

/// RFC 6962 Merkle tree hash over `leaves` (each hashed as `SHA-256(0x00 || leaf)`), in the
/// order given. The empty tree hashes to `SHA-256("")`.
pub fn merkle_root<L: AsRef<[u8]>>(leaves: &[L]) -> Hash {
    fn mth(hashes: &[Hash]) -> Hash {
        match hashes.len() {
            0 => sha256(&[]),
            1 => hashes[0],
            n => {
                let k = 1usize << (usize::BITS - 1 - (n - 1).leading_zeros());
                let (l, r) = (mth(&hashes[..k]), mth(&hashes[k..]));
                sha256(&[&[1u8], &l, &r])
            }
        }
    }
    let hashes: Vec<Hash> = leaves.iter().map(|l| sha256(&[&[0u8], l.as_ref()])).collect();
    mth(&hashes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merkle_root_matches_rfc6962_vectors() {
        // Known answers from the RFC 6962 / certificate-transparency reference tests.
        assert_eq!(
            hex::encode(merkle_root::<&[u8]>(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let leaves: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x00],
            vec![0x10],
            vec![0x20, 0x21],
            vec![0x30, 0x31],
            vec![0x40, 0x41, 0x42, 0x43],
            vec![0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
            vec![
                0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f,
            ],
        ];
        assert_eq!(
            hex::encode(merkle_root(&leaves[..1])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex::encode(merkle_root(&leaves)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
    }
}
