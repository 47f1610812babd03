//! Ingest: validate, store, commit to the ledger, then acknowledge.

use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use futures::stream::{self, StreamExt};
use ring::rand::{SecureRandom, SystemRandom};

use super::ports::{IngestCommit, Principal, RecordBody};
use super::{convert, proto, ApiError, ApiState};
use crate::crypto::KeyError;
use crate::ledger::merkle;
use crate::model::{PlateRead, ReadLimits};
use crate::store::{PutOutcome, StoreError, StoredRead};

fn generated_id() -> String {
    let mut b = [0u8; 16];
    SystemRandom::new().fill(&mut b).expect("OS random");
    format!("srv-{}", hex::encode(b))
}

fn rejected(index: usize, read_id: String, field: &str, reason: String) -> proto::ReadResult {
    proto::ReadResult {
        index: index as u32,
        read_id,
        status: proto::ReadStatus::Rejected as i32,
        field: field.into(),
        reason,
    }
}

/// Splits a model error (`field: reason`) into its parts.
fn field_and_reason(msg: &str) -> (&str, &str) {
    msg.split_once(": ").unwrap_or(("read", msg))
}

/// Ingests one batch; returns its acknowledgement only after every accepted read is durable and
/// the batch's ingest-commit records are in the ledger. On error, nothing of the batch is
/// acknowledged, and what it newly stored is deleted again (best effort; a leftover is found as
/// a duplicate by the retry, or expires with retention).
///
/// An ingest commit covers the reads the batch newly stored; a DUPLICATE was committed by the
/// call that stored it, so a day's commits add up to the reads it holds. Known limit: two
/// concurrent calls with the same read id can see each other's uncommitted read as a duplicate.
pub async fn ingest_batch(state: &ApiState, principal: &Principal, req: proto::IngestRequest) -> Result<proto::IngestResponse, ApiError> {
    let now = state.clock.now();
    let limits = ReadLimits {
        max_image_bytes: state.limits.max_image_bytes,
        future_skew: Duration::seconds(state.limits.future_skew_secs),
        cutoff: state.retention.cutoff(now),
        now,
    };
    let n = req.reads.len();
    let mut results: Vec<Option<proto::ReadResult>> = vec![None; n];
    let mut accepted: Vec<(usize, PlateRead, bool)> = Vec::with_capacity(n);
    for (i, wire) in req.reads.into_iter().enumerate() {
        let client_id = wire.read_id.trim().to_string();
        let idempotent = !client_id.is_empty();
        let validated = convert::read_input(wire).and_then(|input| {
            input.validate(&limits, generated_id).map_err(|e| {
                let msg = e.to_string();
                let (f, r) = field_and_reason(&msg);
                // Field names are static in the model; keep them as they are.
                (leak_field(f), r.to_string())
            })
        });
        match validated {
            Ok(read) => accepted.push((i, read, idempotent)),
            Err((field, reason)) => results[i] = Some(rejected(i, client_id, field, reason)),
        }
    }

    let outcomes: Vec<(usize, PlateRead, bool, Result<PutOutcome, StoreError>)> = stream::iter(accepted)
        .map(|(i, read, idempotent)| async move {
            let permit = state.ingest_slots.acquire().await.expect("the put permits are never closed");
            let r = state.reads.put(&read, idempotent, now).await;
            drop(permit);
            (i, read, idempotent, r)
        })
        .buffer_unordered(state.limits.ingest_concurrency.max(1))
        .collect()
        .await;

    let mut failure: Option<StoreError> = None;
    let mut rollback: Vec<(StoredRead, bool)> = Vec::new();
    // Per capture day, the newly stored objects: (object key, ciphertext SHA-256).
    let mut days: BTreeMap<NaiveDate, Vec<(String, [u8; 32])>> = BTreeMap::new();
    let (mut stored, mut duplicates) = (0u32, 0u32);
    for (i, read, idempotent, r) in outcomes {
        match r {
            Ok(PutOutcome::Stored(s)) => {
                stored += 1;
                days.entry(read.day()).or_default().push((s.key.to_string(), s.ciphertext_sha256));
                results[i] = Some(done(i, read.read_id, proto::ReadStatus::Stored));
                rollback.push((s, idempotent));
            }
            // Stored and committed by an earlier call: not counted again, so that a day's ingest
            // commits add up to the reads it holds (the sweeper reconciles against them).
            Ok(PutOutcome::Duplicate(_)) => {
                duplicates += 1;
                results[i] = Some(done(i, read.read_id, proto::ReadStatus::Duplicate));
            }
            Err(StoreError::IdConflict) => {
                results[i] = Some(rejected(i, read.read_id, "read_id", "already stored with different content".into()))
            }
            // The sweeper closed this read's day (its key is destroyed): this read is refused,
            // not the batch.
            Err(StoreError::Key(KeyError::Shredded { .. }) | StoreError::DayShredded { .. }) => {
                results[i] = Some(rejected(
                    i,
                    read.read_id,
                    "captured_at",
                    "its capture day has been swept and its key destroyed; nothing more can be stored for it".into(),
                ))
            }
            Err(e) => {
                if failure.is_none() {
                    failure = Some(e);
                }
            }
        }
    }
    if let Some(e) = failure {
        undo(state, rollback).await;
        return Err(e.into());
    }

    let mut ledger_entries = Vec::with_capacity(days.len());
    for (day, mut objects) in days {
        objects.sort();
        let leaves: Vec<merkle::Hash> = objects.iter().map(|(k, ct)| merkle::leaf_hash(&leaf(k, ct))).collect();
        let commit = IngestCommit {
            day,
            count: objects.len() as u64,
            merkle_root: merkle::root_of(&leaves),
            first_key: objects.first().map(|o| o.0.clone()).unwrap_or_default(),
            last_key: objects.last().map(|o| o.0.clone()).unwrap_or_default(),
        };
        match state.ledger.append(RecordBody::IngestCommit(commit)).await {
            Ok(seq) => ledger_entries.push(seq),
            Err(e) => {
                undo(state, rollback).await;
                return Err(e.into());
            }
        }
    }
    let results: Vec<proto::ReadResult> = results.into_iter().map(|r| r.expect("every read has a result")).collect();
    let rejected = (n as u32) - stored - duplicates;
    tracing::debug!(principal = %principal.id, stored, duplicates, rejected, "batch acknowledged");
    Ok(proto::IngestResponse {
        batch_id: req.batch_id,
        results,
        stored,
        duplicates,
        rejected,
        ledger_entries,
    })
}

/// The Merkle leaf of one stored object: `object key ‖ 0x00 ‖ SHA-256 of the ciphertext`.
pub fn leaf(object_key: &str, ciphertext_sha256: &[u8; 32]) -> Vec<u8> {
    let mut v = Vec::with_capacity(object_key.len() + 33);
    v.extend_from_slice(object_key.as_bytes());
    v.push(0);
    v.extend_from_slice(ciphertext_sha256);
    v
}

fn done(index: usize, read_id: String, status: proto::ReadStatus) -> proto::ReadResult {
    proto::ReadResult {
        index: index as u32,
        read_id,
        status: status as i32,
        field: String::new(),
        reason: String::new(),
    }
}

/// Deletes what a failed batch newly stored (objects, and idempotency markers of client ids), so
/// that a retry stores and commits them afresh rather than finding uncommitted duplicates.
async fn undo(state: &ApiState, stored: Vec<(StoredRead, bool)>) {
    if stored.is_empty() {
        return;
    }
    let mut paths = Vec::with_capacity(stored.len() * 2);
    for (s, idempotent) in &stored {
        paths.push(s.key.path());
        if *idempotent {
            paths.push(s.key.marker_path());
        }
    }
    let report = state.reads.delete_paths(paths).await;
    if !report.failed.is_empty() {
        tracing::warn!(
            failed = report.failed.len(),
            "could not delete every unacknowledged read of a failed batch; they expire with retention"
        );
    }
}

/// The model's field names, as static strings for the wire (unknown names map to `read`).
fn leak_field(f: &str) -> &'static str {
    const FIELDS: [&str; 15] = [
        "plate",
        "captured_at",
        "camera_id",
        "read_id",
        "region",
        "position",
        "confidence",
        "image",
        "image_type",
        "vehicle.make",
        "vehicle.model",
        "vehicle.color",
        "vehicle.body",
        "source",
        "read",
    ];
    FIELDS.iter().find(|x| **x == f).copied().unwrap_or("read")
}
