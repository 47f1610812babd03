//! [`ProofLog`] on the real ledger: sweep events become ledger records and back.
//!
//! Reading: every entry from index 0 to the tail is decoded and the sweep-relevant kinds kept
//! (ingest commits, deletion proofs, hold records, forced sweeps). That is linear in the log's
//! size per sweep; a per-day index or a cursor object is the next step when logs grow large.

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;

use super::proof::{DeletionProof, ProofLog, ProofLogError, SweepEvent};
use crate::hold::HoldPlacedEvent;
use crate::ledger::record::{self, Record, RecordBody};
use crate::ledger::{Ledger, LedgerError};

/// The ledger as the sweeper's proof log.
#[derive(Debug, Clone)]
pub struct LedgerProofLog {
    ledger: Ledger,
    writer: String,
}

impl LedgerProofLog {
    /// Wraps `ledger`; records are signed as written by `writer` (e.g. `sweep@host`).
    pub fn new(ledger: Ledger, writer: impl Into<String>) -> Self {
        Self {
            ledger,
            writer: writer.into(),
        }
    }
}

fn err(op: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> ProofLogError {
    ProofLogError { op, source: Box::new(e) }
}

fn b64_list(v: &Option<String>) -> Result<Vec<Vec<u8>>, ProofLogError> {
    v.iter().map(|s| B64.decode(s).map_err(|e| err("encode", e))).collect()
}

fn hex_list(v: &Option<String>) -> Result<Vec<Vec<u8>>, ProofLogError> {
    v.iter().map(|s| hex::decode(s).map_err(|e| err("encode", e))).collect()
}

/// A sweep event as a ledger record body.
pub fn to_body(event: SweepEvent) -> Result<RecordBody, ProofLogError> {
    Ok(match event {
        SweepEvent::IngestCommit { .. } => {
            return Err(ProofLogError {
                op: "append",
                source: "ingest commits are written by ingest, with their Merkle root, not by the sweeper".into(),
            })
        }
        SweepEvent::DeletionProof(p) => RecordBody::DeletionProof(record::DeletionProof {
            day: p.day,
            cutoff: p.cutoff,
            batch: p.batch,
            reads_deleted: p.reads_deleted,
            deleted_keys_root: p.deleted_keys_root,
            reads_held: p.reads_held,
            key_destroyed: p.key_destroyed,
            ingested_total: p.ingested_total,
            reconciled: p.reconciled,
            forced: p.forced,
        }),
        SweepEvent::HoldPlaced(h) => RecordBody::HoldPlaced(record::HoldPlaced {
            scope: record::HoldScope {
                plate_ciphertexts: b64_list(&h.plate_ciphertext)?,
                plate_blinds: hex_list(&h.plate_blind)?,
                cameras: h.cameras,
                from: h.from,
                to: h.to,
            },
            hold_id: h.hold_id,
            case_number: h.case_number,
            authority: h.authority,
            authority_ref: h.authority_ref,
            until: h.until,
            reads_held: h.reads_held,
            placed_by: h.placed_by,
        }),
        SweepEvent::HoldReleased {
            hold_id,
            case_number,
            released_by,
            reason,
        } => RecordBody::HoldReleased(record::HoldReleased {
            hold_id,
            case_number,
            released_by,
            reason,
        }),
        SweepEvent::HoldPurged {
            hold_id,
            reads_deleted,
            deleted_keys_root,
            key_destroyed,
        } => RecordBody::HoldPurged(record::HoldPurged {
            hold_id,
            reads_deleted,
            deleted_keys_root,
            key_destroyed,
        }),
        SweepEvent::SweepForced { reason } => RecordBody::SweepForced(record::SweepForced { reason }),
    })
}

/// A ledger record body as a sweep event, if it is one the sweeper reads.
pub fn from_body(body: RecordBody) -> Option<SweepEvent> {
    Some(match body {
        RecordBody::IngestCommit(c) => SweepEvent::IngestCommit {
            day: c.day,
            count: c.count,
        },
        RecordBody::DeletionProof(p) => SweepEvent::DeletionProof(DeletionProof {
            day: p.day,
            cutoff: p.cutoff,
            batch: p.batch,
            reads_deleted: p.reads_deleted,
            deleted_keys_root: p.deleted_keys_root,
            reads_held: p.reads_held,
            key_destroyed: p.key_destroyed,
            ingested_total: p.ingested_total,
            reconciled: p.reconciled,
            forced: p.forced,
        }),
        RecordBody::HoldPlaced(h) => SweepEvent::HoldPlaced(HoldPlacedEvent {
            hold_id: h.hold_id,
            case_number: h.case_number,
            authority: h.authority,
            authority_ref: h.authority_ref,
            from: h.scope.from,
            to: h.scope.to,
            cameras: h.scope.cameras,
            plate_ciphertext: h.scope.plate_ciphertexts.first().map(|c| B64.encode(c)),
            plate_blind: h.scope.plate_blinds.first().map(hex::encode),
            until: h.until,
            reads_held: h.reads_held,
            placed_by: h.placed_by,
        }),
        RecordBody::HoldReleased(r) => SweepEvent::HoldReleased {
            hold_id: r.hold_id,
            case_number: r.case_number,
            released_by: r.released_by,
            reason: r.reason,
        },
        RecordBody::HoldPurged(p) => SweepEvent::HoldPurged {
            hold_id: p.hold_id,
            reads_deleted: p.reads_deleted,
            deleted_keys_root: p.deleted_keys_root,
            key_destroyed: p.key_destroyed,
        },
        RecordBody::SweepForced(f) => SweepEvent::SweepForced { reason: f.reason },
        _ => return None,
    })
}

#[async_trait]
impl ProofLog for LedgerProofLog {
    async fn append(&self, at: DateTime<Utc>, event: SweepEvent) -> Result<(), ProofLogError> {
        let rec = Record::new(at, self.writer.clone(), to_body(event)?);
        self.ledger.append(&rec).await.map_err(|e| err("append", e))?;
        Ok(())
    }

    async fn for_each_event(&self, f: &mut (dyn FnMut(SweepEvent) + Send)) -> Result<(), ProofLogError> {
        let reader = self.ledger.reader();
        let tail = reader.tail().await.map_err(|e| err("read", e))?;
        // One batch object at a time: memory does not grow with the ledger.
        let mut entries = std::pin::pin!(reader.entries(0, tail));
        while let Some(e) = entries.try_next().await.map_err(|e| err("read", e))? {
            let rec = Record::decode(&e.bytes).map_err(|source| err("read", LedgerError::Record { index: e.index, source }))?;
            if let Some(ev) = from_body(rec.body) {
                f(ev);
            }
        }
        Ok(())
    }
}
