//! The verifier: needs only the verifier (public) key and read access to the store.
//!
//! It walks the batch objects in order (asking for `batches/{index}`, each read ahead of the walk
//! from a listing by [`Prefetch`], which never changes what the walk sees),
//! recomputes every leaf and the tree with a compact range (O(log n) memory regardless of log
//! size), and checks:
//! - each batch parses strictly, sits at the key of its first index, continues the previous one,
//!   and carries the frontier the recomputed tree has at that point;
//! - the checkpoint at the end of each batch, when present, is signed by the key, has the log's
//!   origin, and its root equals the recomputed root (a mismatch names the batch objects that
//!   changed since signing);
//! - the newest entry is covered by a signed checkpoint;
//! - the `checkpoint` and `tail` hints are valid and agree with the log;
//! - nothing exists beyond the end (batches after a gap: oldest or middle entries deleted;
//!   checkpoints beyond the end: newest entries deleted);
//! - given a trusted checkpoint saved earlier: it is signed by the key, the log is at least
//!   that long, and the recomputed root at its size equals its root (truncation, deletion,
//!   reordering and a replaced history all fail this).

use std::ops::Range;

use object_store::path::Path;

use futures::TryStreamExt as _;
use ring::digest::{digest, SHA256};

use super::log::{parse_tail_hint, Batch, LogReader};
use super::merkle::{self, CompactTree};
use super::note::Checkpoint;
use super::prefetch::Prefetch;
use super::LedgerError;

/// Most failures listed individually; the rest are counted.
const MAX_FAILURES: usize = 1000;

/// One thing that does not hold, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The object key (or `trusted checkpoint`) where the problem shows.
    pub object: String,
    /// The entry indexes concerned, when known.
    pub entries: Option<Range<u64>>,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.entries {
            Some(r) if r.end == r.start + 1 => {
                write!(f, "{}: entry {}: {}", self.object, r.start, self.problem)
            }
            Some(r) => write!(f, "{}: entries {}..{}: {}", self.object, r.start, r.end, self.problem),
            None => write!(f, "{}: {}", self.object, self.problem),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Entries read.
    pub entries: u64,
    /// Batch objects read.
    pub batches: u64,
    /// Bytes of batch objects read.
    pub bytes: u64,
    /// Checkpoints whose signature and root were checked.
    pub checkpoints_checked: u64,
    /// Size of the newest checkpoint that verified against the log.
    pub verified_size: u64,
    /// Recomputed root over all entries.
    pub root: Option<merkle::Hash>,
    /// Whether a trusted checkpoint was given and found consistent.
    pub trusted_consistent: Option<bool>,
    /// Everything that failed.
    pub failures: Vec<Failure>,
    /// Failures beyond [`MAX_FAILURES`], counted only.
    pub more_failures: u64,
}

impl VerifyReport {
    /// True when everything holds.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.more_failures == 0
    }

    fn fail(&mut self, object: impl Into<String>, entries: Option<Range<u64>>, problem: impl Into<String>) {
        if self.failures.len() < MAX_FAILURES {
            self.failures.push(Failure {
                object: object.into(),
                entries,
                problem: problem.into(),
            });
        } else {
            self.more_failures += 1;
        }
    }
}

/// Checks a size/root claim when the recomputed tree reaches its size.
struct Claim {
    object: String,
    checkpoint: Checkpoint,
    matched: Option<bool>,
}

/// Checks the checkpoint `raw` stored at `ckey` for the log's first `end` entries, whose
/// recomputed root is `root`; on failure, names the entries since the last signed size and the
/// batch objects (`first_batch` .. `last_batch`) that may have changed. True when it signs them.
#[allow(clippy::too_many_arguments)]
fn check_checkpoint(
    report: &mut VerifyReport,
    key: &super::note::VerifierKey,
    ckey: &str,
    raw: &[u8],
    end: u64,
    root: merkle::Hash,
    last_signed: u64,
    first_batch: &str,
    last_batch: &str,
) -> bool {
    report.checkpoints_checked += 1;
    let problem = match key.verify_checkpoint(raw) {
        Err(e) => e.to_string(),
        Ok(cp) if cp.size != end => format!("checkpoint stored for size {end} says size {}", cp.size),
        Ok(cp) if cp.root != root => format!(
            "signed root does not match the entries: entries changed, removed, added or reordered in batch \
             objects {first_batch} .. {last_batch} since this checkpoint was signed"
        ),
        Ok(_) => return true,
    };
    report.fail(ckey, Some(last_signed..end), problem);
    false
}

/// Verifies the whole log. `trusted` is the text of a checkpoint saved earlier (and the name to
/// report it by). Store I/O errors other than "not found" are returned as `Err`: the log could
/// not be read, so nothing is claimed either way.
pub async fn verify_log(reader: &LogReader, trusted: Option<(&str, &[u8])>) -> Result<VerifyReport, LedgerError> {
    let mut report = VerifyReport::default();
    let key = reader.verifier().clone();

    // Claims to check against the recomputed tree at their size.
    let mut claims: Vec<Claim> = Vec::new();
    let hint_key = reader.latest_hint_key().to_string();
    if let Some(raw) = reader.get_opt(&reader.latest_hint_key()).await? {
        match key.verify_checkpoint(&raw) {
            Ok(cp) => claims.push(Claim {
                object: hint_key,
                checkpoint: cp,
                matched: None,
            }),
            Err(e) => report.fail(hint_key, None, e.to_string()),
        }
    }
    let mut trusted_idx = None;
    if let Some((name, text)) = trusted {
        match key.verify_checkpoint(text) {
            Ok(cp) => {
                trusted_idx = Some(claims.len());
                claims.push(Claim {
                    object: format!("trusted checkpoint {name}"),
                    checkpoint: cp,
                    matched: None,
                });
            }
            Err(e) => report.fail(format!("trusted checkpoint {name}"), None, e.to_string()),
        }
    }
    let tail_key = reader.tail_hint_key().to_string();
    let mut tail_hint = None;
    if let Some(raw) = reader.get_opt(&reader.tail_hint_key()).await? {
        match parse_tail_hint(&raw) {
            Some(t) => tail_hint = Some((t, false)),
            None => report.fail(tail_key.clone(), None, "malformed tail hint"),
        }
    }

    let mut tree = CompactTree::new();
    let mut pos = 0u64;
    let mut last_signed = 0u64; // newest size with a checkpoint matching the log
    let mut unsigned_from_key: Option<String> = None;
    let mut ahead = Prefetch::new(reader, 0, true);
    let mut checkpoint_missing_at_end = false;
    let mut last_bkey = String::new(); // key of the last batch read
    loop {
        let bkey = reader.batch_key(pos);
        let bkey_s = bkey.to_string();
        let Some(raw) = ahead.get(&bkey).await? else {
            break;
        };
        report.batches += 1;
        report.bytes += raw.len() as u64;
        if let Some(((f, h), seen)) = &mut tail_hint {
            if *f == pos {
                *seen = true;
                if digest(&SHA256, &raw).as_ref() != h.as_slice() {
                    report.fail(tail_key.clone(), None, format!("hash does not match batch {bkey_s}"));
                }
            }
        }
        let batch = match Batch::decode(&raw) {
            Ok(b) => b,
            Err(reason) => {
                report.fail(bkey_s, Some(pos..pos + 1), format!("{reason}; cannot read further"));
                break;
            }
        };
        if batch.first_index != pos {
            report.fail(
                bkey_s,
                Some(pos..pos + 1),
                format!(
                    "batch claims first index {} but is stored at index {pos}; cannot read further",
                    batch.first_index
                ),
            );
            break;
        }
        let end = batch.end();
        if batch.frontier != tree.nodes() {
            report.fail(
                bkey_s.clone(),
                Some(pos..end),
                "stored frontier does not match the tree recomputed from the entries before this batch \
                 (earlier entries changed, or this batch was rewritten)",
            );
        }
        for r in &batch.records {
            tree.push(merkle::leaf_hash(r));
            let size = tree.size();
            for c in claims.iter_mut().filter(|c| c.checkpoint.size == size) {
                c.matched = Some(c.checkpoint.root == tree.root());
            }
        }
        report.entries = end;
        if unsigned_from_key.is_none() {
            unsigned_from_key = Some(bkey_s.clone());
        }
        let ckey = reader.checkpoint_key(end);
        let ckey_s = ckey.to_string();
        let found = ahead.get(&ckey).await?;
        checkpoint_missing_at_end = found.is_none();
        if let Some(craw) = found {
            let since = unsigned_from_key.as_deref().unwrap_or(&bkey_s);
            if check_checkpoint(&mut report, &key, &ckey_s, &craw, end, tree.root(), last_signed, since, &bkey_s) {
                last_signed = end;
                unsigned_from_key = None;
            }
        }
        last_bkey = bkey_s;
        pos = end;
    }
    report.root = (pos > 0).then(|| tree.root());
    // Anything stored beyond the end means entries went missing — unless a writer appended
    // while we walked. Listed first, then the batch the walk found missing is probed again:
    // batches are created in order and each before its checkpoint, so if it exists now, what lies
    // beyond is newer entries, not evidence of deleted ones.
    let first_after = |prefix: Path, offset: Path| async move {
        reader
            .store()
            .list_with_offset(Some(&prefix), &offset)
            .try_next()
            .await
            .map_err(|source| LedgerError::Store {
                op: "list",
                key: prefix.to_string(),
                source,
            })
    };
    let later_batch = first_after(reader.batches_prefix(), reader.batch_key(pos)).await?;
    let later_checkpoint = first_after(reader.checkpoints_prefix(), reader.checkpoint_key(pos)).await?;
    let grew = (later_batch.is_some() || later_checkpoint.is_some()) && reader.get_opt(&reader.batch_key(pos)).await?.is_some();

    // The checkpoint of the last batch read may be written just after it (a commit in progress):
    // looked for again, briefly, before the tail is called unsigned. A commit that died between
    // its batch and its checkpoint stays unsigned until the next writer completes it.
    if last_signed < pos && checkpoint_missing_at_end {
        let ckey = reader.checkpoint_key(pos);
        for wait_ms in [0u64, 50, 250, 1000] {
            tokio::time::sleep(std::time::Duration::from_millis(wait_ms)).await;
            let Some(craw) = reader.get_opt(&ckey).await? else {
                continue;
            };
            let since = unsigned_from_key.as_deref().unwrap_or(&last_bkey);
            if check_checkpoint(
                &mut report,
                &key,
                ckey.as_ref(),
                &craw,
                pos,
                tree.root(),
                last_signed,
                since,
                &last_bkey,
            ) {
                last_signed = pos;
                unsigned_from_key = None;
            }
            break;
        }
    }
    report.verified_size = last_signed;
    if last_signed < pos {
        report.fail(
            unsigned_from_key.unwrap_or_else(|| reader.batch_key(last_signed).to_string()),
            Some(last_signed..pos),
            "entries not covered by any valid signed checkpoint (an interrupted commit not yet completed, or \
             entries added without the key)",
        );
    }
    if let Some(meta) = later_batch.filter(|_| !grew) {
        report.fail(
            reader.batch_key(pos).to_string(),
            Some(pos..pos + 1),
            format!(
                "batch object missing, but later batch {} exists: entries from {pos} were deleted",
                meta.location
            ),
        );
    }
    if let Some(meta) = later_checkpoint.filter(|_| !grew) {
        report.fail(
            meta.location.to_string(),
            None,
            format!("checkpoint exists beyond the log's {pos} entries: the newest entries were deleted"),
        );
    }
    for (i, c) in claims.iter().enumerate() {
        let n = c.checkpoint.size;
        let ok = match c.matched {
            Some(true) => true,
            Some(false) => {
                report.fail(
                    c.object.clone(),
                    Some(0..n),
                    format!(
                        "root at size {n} does not match the log: the first {n} entries were changed, removed or \
                         reordered since this checkpoint"
                    ),
                );
                false
            }
            None if n == 0 => true,
            None => {
                report.fail(
                    c.object.clone(),
                    Some(pos..n),
                    format!("checkpoint covers {n} entries but the log has {pos}: entries {pos}..{n} are missing"),
                );
                false
            }
        };
        if Some(i) == trusted_idx {
            report.trusted_consistent = Some(ok);
        }
    }
    if let Some(((f, _), false)) = tail_hint {
        report.fail(
            tail_key,
            Some(f..f + 1),
            format!("tail hint names batch {f}, which is not in the log"),
        );
    }
    Ok(report)
}
