//! `lethe ledger …` as library functions; `main.rs` parses arguments and calls these.
//!
//! Each takes the opened pieces and an output writer and returns the process exit code.

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;

use super::log::LogReader;
use super::merkle;
use super::record::{Record, RecordBody};
use super::verify::verify_log;
use super::LedgerError;

/// `lethe ledger verify [--trusted FILE]`: recomputes everything and prints what failed and
/// where. Exit 0 only when everything holds (and the trusted checkpoint, if given, is
/// consistent), 1 otherwise.
pub async fn verify(reader: &LogReader, trusted: Option<&Path>, out: &mut dyn Write) -> Result<i32, LedgerError> {
    let trusted_text = match trusted {
        Some(p) => Some((
            p.display().to_string(),
            std::fs::read(p).map_err(|source| LedgerError::TrustedFile { path: p.into(), source })?,
        )),
        None => None,
    };
    let started = std::time::Instant::now();
    let report = verify_log(reader, trusted_text.as_ref().map(|(n, t)| (n.as_str(), t.as_slice()))).await?;
    let secs = started.elapsed().as_secs_f64();
    writeln!(out, "log key:      {}", reader.verifier())?;
    writeln!(
        out,
        "entries:      {} in {} batch objects ({} bytes)",
        report.entries, report.batches, report.bytes
    )?;
    writeln!(
        out,
        "checkpoints:  {} checked; newest valid covers {} entries",
        report.checkpoints_checked, report.verified_size
    )?;
    if let Some(root) = report.root {
        writeln!(out, "root:         {}", B64.encode(root))?;
    }
    match report.trusted_consistent {
        Some(true) => writeln!(out, "trusted:      consistent with the log")?,
        Some(false) => writeln!(out, "trusted:      NOT consistent with the log")?,
        None if trusted.is_some() => writeln!(out, "trusted:      could not be checked")?,
        None => {}
    }
    writeln!(out, "time:         {secs:.3} s")?;
    // Every deployment's ledger holds at least its policy records from the first start: an empty
    // one means the wrong store or prefix, and an auditor pointed at it must not read a pass.
    if report.ok() && report.entries == 0 {
        writeln!(
            out,
            "FAILED: no ledger entries at this location: the wrong data directory, bucket or prefix?"
        )?;
        return Ok(1);
    }
    if report.ok() {
        writeln!(out, "OK: every entry, checkpoint and hint verifies")?;
        return Ok(0);
    }
    writeln!(out, "FAILED: {} problem(s)", report.failures.len() as u64 + report.more_failures)?;
    for f in &report.failures {
        writeln!(out, "  {f}")?;
    }
    if report.more_failures > 0 {
        writeln!(out, "  … and {} more", report.more_failures)?;
    }
    Ok(1)
}

/// Filter for [`show`].
#[derive(Debug, Clone, Default)]
pub struct ShowFilter {
    /// Only records of this kind (see [`RecordBody::KINDS`]).
    pub kind: Option<String>,
    /// Only records with timestamp at or after this.
    pub from: Option<DateTime<Utc>>,
    /// Only records with timestamp before this.
    pub to: Option<DateTime<Utc>>,
}

/// `lethe ledger show [--kind K] [--from T] [--to T] [--json]`: prints matching records, one
/// per line (JSON lines `{"index":N,"record":{…}}` with `json`). Exit 2 for an unknown kind,
/// 1 if any entry could not be decoded (it is still listed), else 0.
pub async fn show(reader: &LogReader, filter: &ShowFilter, json: bool, out: &mut dyn Write) -> Result<i32, LedgerError> {
    if let Some(k) = &filter.kind {
        if !RecordBody::KINDS.contains(&k.as_str()) {
            writeln!(out, "unknown kind {k:?}; kinds: {}", RecordBody::KINDS.join(", "))?;
            return Ok(2);
        }
    }
    let mut code = 0;
    let mut entries = std::pin::pin!(reader.entries(0, u64::MAX));
    while let Some(e) = entries.try_next().await? {
        let rec = match Record::decode(&e.bytes) {
            Ok(r) => r,
            Err(err) => {
                code = 1;
                writeln!(out, "{}\tundecodable: {err}", e.index)?;
                continue;
            }
        };
        if filter.kind.as_deref().is_some_and(|k| k != rec.kind())
            || filter.from.is_some_and(|t| rec.timestamp < t)
            || filter.to.is_some_and(|t| rec.timestamp >= t)
        {
            continue;
        }
        if json {
            let raw: serde_json::Value = serde_json::from_slice(&e.bytes).expect("decoded above");
            writeln!(out, "{}", serde_json::json!({ "index": e.index, "record": raw }))?;
        } else {
            let body = serde_json::to_value(&rec.body).expect("serializes");
            let mut detail = body.as_object().cloned().unwrap_or_default();
            detail.remove("kind");
            writeln!(
                out,
                "{}\t{}\t{}\t{}\t{}",
                e.index,
                super::record::ts_string(&rec.timestamp),
                rec.kind(),
                rec.writer,
                serde_json::Value::Object(detail)
            )?;
        }
    }
    Ok(code)
}

/// `lethe ledger prove N`: prints an inclusion proof for entry N against the latest
/// checkpoint, after checking it. Exit 0, or 1 when N is beyond the log.
pub async fn prove(reader: &LogReader, index: u64, out: &mut dyn Write) -> Result<i32, LedgerError> {
    let p = match reader.inclusion_proof(index).await {
        Ok(p) => p,
        Err(LedgerError::OutOfRange { index, size }) => {
            writeln!(out, "entry {index} is beyond the latest checkpoint ({size} entries)")?;
            return Ok(1);
        }
        Err(e) => return Err(e),
    };
    let cp = &p.checkpoint.checkpoint;
    merkle::verify_inclusion(p.index, cp.size, &p.leaf_hash, &p.hashes, &cp.root).map_err(|e| LedgerError::Corrupt {
        key: reader.checkpoint_key(cp.size).to_string(),
        reason: e.to_string(),
    })?;
    writeln!(out, "index: {}", p.index)?;
    writeln!(out, "tree size: {}", cp.size)?;
    writeln!(out, "leaf hash: {}", B64.encode(p.leaf_hash))?;
    writeln!(out, "proof:")?;
    for h in &p.hashes {
        writeln!(out, "  {}", B64.encode(h))?;
    }
    writeln!(out, "checkpoint:")?;
    write!(out, "{}", p.checkpoint.text)?;
    Ok(0)
}

/// `lethe ledger checkpoint`: prints the latest signed checkpoint (for an auditor or witness to
/// keep and later pass to `verify --trusted`). Exit 1 when the log is empty.
pub async fn checkpoint(reader: &LogReader, out: &mut dyn Write) -> Result<i32, LedgerError> {
    match reader.latest_checkpoint().await {
        Ok(cp) => {
            write!(out, "{}", cp.text)?;
            Ok(0)
        }
        Err(LedgerError::NoCheckpoint) => {
            writeln!(out, "the ledger has no checkpoint yet")?;
            Ok(1)
        }
        Err(e) => Err(e),
    }
}
