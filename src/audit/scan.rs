//! One streaming pass over the ledger collecting what the audit checks need.
//!
//! Memory stays bounded by what is kept: the access records since the last audit (one day's
//! worth under a daily cron), one entry per capture day, and the latest policy records.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt as _;

use super::AuditError;
use crate::ledger::record::{Access, PolicyFile};
use crate::ledger::{LedgerError, LogReader, Record, RecordBody};

/// The latest approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSeen {
    /// The approved policy-set hash (hex).
    pub hash: String,
    /// Who approved it.
    pub by: String,
    /// When.
    pub at: DateTime<Utc>,
    /// Its entry index.
    pub index: u64,
}

/// An access record with where it sits and which baseline was in force when it was written.
#[derive(Debug, Clone)]
pub struct AccessSeen {
    /// Entry index.
    pub index: u64,
    /// Record timestamp.
    pub at: DateTime<Utc>,
    /// The record.
    pub access: Access,
    /// Approved baseline hash in force at that point of the log.
    pub approved_hash: Option<String>,
}

/// What the deletion proofs say about one capture day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayProofs {
    /// Proofs seen.
    pub proofs: u64,
    /// Reads deleted: the sum of the batch proofs (or the closing proof's total for a day
    /// proven without batches).
    pub reads_deleted: u64,
    /// Batch proofs were seen.
    pub batches: bool,
    /// A proof says the day key was destroyed.
    pub key_destroyed: bool,
    /// A proof that destroyed the key failed to reconcile against the ingest commits.
    pub unreconciled: bool,
}

/// The last recorded policy state (from `PolicyLoaded` / `PolicyChanged`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySeen {
    /// Hash (hex).
    pub hash: String,
    /// Files of the latest `PolicyLoaded` with that hash (empty if unknown).
    pub files: Vec<PolicyFile>,
}

/// The audit's view of the ledger.
#[derive(Debug, Default)]
pub struct AuditView {
    /// Entries read.
    pub entries: u64,
    /// The latest approval.
    pub approved: Option<ApprovalSeen>,
    /// The last recorded policy state.
    pub policy: Option<PolicySeen>,
    /// Index and time of the last settings audit.
    pub last_audit: Option<(u64, DateTime<Utc>)>,
    /// Access records after the last settings audit.
    pub accesses: Vec<AccessSeen>,
    /// Reads ingested per capture day (ingest commits).
    pub ingested: BTreeMap<NaiveDate, u64>,
    /// Deletion proofs per capture day.
    pub deleted: BTreeMap<NaiveDate, DayProofs>,
    /// Reads committed for a capture day after its closing proof (key destroyed): a server
    /// stored reads for a day already swept, with a key it should no longer have had.
    pub committed_after_close: BTreeMap<NaiveDate, u64>,
    /// Entries that could not be read or decoded (the verifier says more).
    pub problems: Vec<String>,
}

/// Calls `f` for every decodable entry in order; returns the problems met. A store failure is
/// an error; a corrupt object or record is a problem (the scan stops at a corrupt batch, since
/// nothing after it can be located reliably).
pub async fn for_each_record(reader: &LogReader, mut f: impl FnMut(u64, Record)) -> Result<(u64, Vec<String>), AuditError> {
    let mut problems = Vec::new();
    let mut entries = 0u64;
    let mut stream = Box::pin(reader.entries(0, u64::MAX));
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => {
                entries += 1;
                match Record::decode(&e.bytes) {
                    Ok(r) => f(e.index, r),
                    Err(err) => problems.push(format!("ledger entry {}: {err}", e.index)),
                }
            }
            Err(e @ LedgerError::Store { .. }) => return Err(e.into()),
            Err(e) => {
                problems.push(format!("ledger unreadable past entry {entries}: {e}"));
                break;
            }
        }
    }
    Ok((entries, problems))
}

fn hex(h: &[u8; 32]) -> String {
    hex::encode(h)
}

impl AuditView {
    /// Reads the whole ledger once.
    pub async fn load(reader: &LogReader) -> Result<Self, AuditError> {
        let mut v = AuditView::default();
        let (entries, problems) = for_each_record(reader, |index, r| v.visit(index, r)).await?;
        v.entries = entries;
        v.problems = problems;
        Ok(v)
    }

    fn visit(&mut self, index: u64, r: Record) {
        match r.body {
            RecordBody::PolicyApproved(a) => {
                self.approved = Some(ApprovalSeen {
                    hash: hex(&a.policy_hash),
                    by: a.approved_by,
                    at: r.timestamp,
                    index,
                });
            }
            RecordBody::PolicyLoaded(p) => {
                self.policy = Some(PolicySeen {
                    hash: hex(&p.policy_hash),
                    files: p.files,
                });
            }
            RecordBody::PolicyChanged(p) => {
                self.policy = Some(PolicySeen {
                    hash: hex(&p.new_hash),
                    files: Vec::new(),
                });
            }
            RecordBody::SettingsAudit(_) => {
                self.last_audit = Some((index, r.timestamp));
                self.accesses.clear();
            }
            RecordBody::Access(a) => self.accesses.push(AccessSeen {
                index,
                at: r.timestamp,
                access: a,
                approved_hash: self.approved.as_ref().map(|x| x.hash.clone()),
            }),
            RecordBody::IngestCommit(c) => {
                if self.deleted.get(&c.day).is_some_and(|d| d.key_destroyed) {
                    *self.committed_after_close.entry(c.day).or_default() += c.count;
                }
                *self.ingested.entry(c.day).or_default() += c.count;
            }
            RecordBody::DeletionProof(p) => {
                let d = self.deleted.entry(p.day).or_default();
                d.proofs += 1;
                // The closing proof (no batch) restates the batch totals.
                if p.batch.is_some() {
                    d.batches = true;
                    d.reads_deleted += p.reads_deleted;
                } else if !d.batches {
                    d.reads_deleted = p.reads_deleted;
                }
                if p.key_destroyed {
                    d.key_destroyed = true;
                    if !p.reconciled {
                        d.unreconciled = true;
                    }
                }
            }
            _ => {}
        }
    }
}
