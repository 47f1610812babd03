//! Search: validate, decide, find, record, then send.
//!
//! The order is the guarantee: the access record, with its receipt of exactly which reads will be
//! sent, is durable in the ledger before [`search`] returns anything to send. Denied attempts are
//! recorded the same way, with an empty receipt, and so are malformed ones (INVALID_ARGUMENT),
//! refused before the policy with rule [`INVALID_REQUEST_RULE`] and the field in the reason.
//!
//! Memory stays flat whatever the size of a search. The receipt needs every match before the first
//! result leaves, but not every match's body: while matches stream in (in capture-time order,
//! from [`ReadStore::find`](crate::store::ReadStore::find), which holds only the candidate names
//! of the days listed ahead and a bounded window of reads in flight), whole results are kept only while they
//! fit in [`ApiLimits::search_buffer_bytes`](super::ApiLimits::search_buffer_bytes); past that,
//! only what is needed to fetch the read again (its object name and how it matched, ~200 bytes) is
//! kept, up to [`ApiLimits::max_search_results`](super::ApiLimits::max_search_results) matches
//! (more: `truncated`). After the record is written, the response stream sends the header, then the
//! kept results, then fetches and decrypts the rest again, [`REFETCH_CONCURRENCY`] at a time, as
//! the client consumes the stream.
//!
//! A read on the receipt that cannot be fetched again ends the stream with an error after the
//! results sent so far: never fewer results than the header's count without one. The store being
//! unreachable is UNAVAILABLE (search again); a read removed after the record was written (deleted
//! or its day shredded by a retention sweep that ran in between) is ABORTED, saying so. Either
//! way the access record stands as written: it lists what the search was going to send, a superset
//! of what it sent. A re-fetched read is checked against the receipt (the object's name binds the
//! read id, and its hash must be the receipt's).

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, BoxStream, StreamExt};

use super::ports::{Access, Action, LedgerDecision, Principal, Receipt, RecordBody, RequestContext};
use super::{convert, proto, sha256, ApiError, ApiState};
use crate::model::plate;
use crate::store::{FindQuery, Found, ReadKey, StoreError};

/// How many reads past the search buffer are fetched again at once while a response is sent.
pub const REFETCH_CONCURRENCY: usize = 8;

/// The longest purpose or case number accepted.
pub const MAX_LABEL_LEN: usize = 256;

/// The results of a search after its header, in capture-time order; the stream ends early with an
/// error only if a read on the receipt cannot be sent (see the module docs).
pub type ResultStream = BoxStream<'static, Result<proto::SearchResult, ApiError>>;

/// What a successful search sends: the header, then the results.
pub struct SearchOutcome {
    /// Sent first.
    pub header: proto::SearchHeader,
    /// Sent after the header: exactly `header.count` results, or fewer followed by an error.
    pub results: ResultStream,
}

impl std::fmt::Debug for SearchOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchOutcome")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

/// A match past the search buffer: enough to fetch it again, no body.
struct Pending {
    key: ReadKey,
    matched: plate::PlateMatch,
}

/// Roughly the memory a found read holds (its body: image, strings, map entries).
fn held_bytes(f: &Found) -> usize {
    let r = &f.read;
    let strings = [&r.read_id, &r.plate_raw, &r.plate, &r.camera_id, &f.key.bucket, &f.key.locator]
        .iter()
        .map(|s| s.len())
        .sum::<usize>();
    let opts = [
        &r.region,
        &r.image_type,
        &r.vehicle.make,
        &r.vehicle.model,
        &r.vehicle.color,
        &r.vehicle.body,
    ]
    .iter()
    .map(|s| s.as_ref().map_or(0, String::len))
    .sum::<usize>();
    // A B-tree map entry costs its strings plus a few words of node overhead.
    let source = r.source.iter().map(|(k, v)| k.len() + v.len() + 64).sum::<usize>();
    std::mem::size_of::<Found>() + strings + opts + source + r.image.as_ref().map_or(0, |i| i.len())
}

fn wire_result(f: Found) -> proto::SearchResult {
    proto::SearchResult {
        exact: f.matched == plate::PlateMatch::Exact,
        plate_canonical: f.read.plate.clone(),
        read: Some(convert::wire_read(f.read)),
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> ApiError {
    ApiError::InvalidArgument {
        field,
        reason: reason.into(),
    }
}

fn time_arg(field: &'static str, t: &Option<prost_types::Timestamp>) -> Result<Option<DateTime<Utc>>, ApiError> {
    t.as_ref().map(convert::from_timestamp).transpose().map_err(|e| invalid(field, e))
}

fn label(field: &'static str, s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    if s.len() > MAX_LABEL_LEN {
        return Err(invalid(field, format!("{} bytes exceeds the limit of {MAX_LABEL_LEN}", s.len())));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(field, "contains control characters"));
    }
    Ok(s.to_string())
}

/// A search request whose fields are valid, its window clipped to retention.
struct Checked {
    plate: String,
    purpose: String,
    case_number: String,
    camera_id: Option<String>,
    cutoff: DateTime<Utc>,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

fn check(state: &ApiState, req: &proto::SearchRequest) -> Result<Checked, ApiError> {
    let plate = plate::canonical(&req.plate).map_err(|e| invalid("plate", e.to_string()))?;
    let purpose = label("purpose", &req.purpose)?;
    let case_number = label("case_number", &req.case_number)?;
    let camera_id = label("camera_id", &req.camera_id)?;
    let camera_id = (!camera_id.is_empty()).then_some(camera_id);
    let (cutoff, latest) = retention_window(state);
    let asked_from = time_arg("from", &req.from)?;
    let asked_to = time_arg("to", &req.to)?;
    if let (Some(f), Some(t)) = (asked_from, asked_to) {
        if f > t {
            return Err(invalid("from", "is after to"));
        }
    }
    // Clip to retention: nothing captured before the cutoff is ever returned.
    let from = asked_from.map_or(cutoff, |f| f.max(cutoff));
    let to = asked_to.map_or(latest, |t| t.min(latest));
    Ok(Checked {
        plate,
        purpose,
        case_number,
        camera_id,
        cutoff,
        from,
        to,
    })
}

/// The retention cutoff and the latest capture time a search can see, now.
fn retention_window(state: &ApiState) -> (DateTime<Utc>, DateTime<Utc>) {
    let now = state.clock.now();
    (state.retention.cutoff(now), now + Duration::seconds(state.limits.future_skew_secs))
}

/// At most `n` characters of `s`, without control characters: what a refused request said, fit
/// for the record.
fn excerpt(s: &str, n: usize) -> String {
    s.trim().chars().filter(|c| !c.is_control()).take(n).collect()
}

/// The access record of a request refused as malformed, before any policy decision: who asked,
/// what they asked as far as it could be read (the plate as typed, encrypted under the audit key
/// like every searched plate), and which field was wrong.
fn refused_record(state: &ApiState, principal: &Principal, req: &proto::SearchRequest, error: &ApiError) -> Access {
    let (cutoff, latest) = retention_window(state);
    let typed = excerpt(&req.plate, MAX_LABEL_LEN);
    let case_number = excerpt(&req.case_number, MAX_LABEL_LEN);
    let window = |t: &Option<prost_types::Timestamp>| t.as_ref().and_then(|t| convert::from_timestamp(t).ok());
    Access {
        principal: principal.id.clone(),
        agency: principal.agency.clone(),
        jurisdiction: principal.jurisdiction.clone(),
        purpose: excerpt(&req.purpose, MAX_LABEL_LEN),
        case_number: (!case_number.is_empty()).then_some(case_number),
        plate_ciphertext: state.audit_key.seal_plate(&typed),
        plate_blind: plate::canonical(&req.plate).map(|p| state.audit_key.blind(&p)).unwrap_or_default(),
        window_from: window(&req.from).unwrap_or(cutoff),
        window_to: window(&req.to).unwrap_or(latest),
        decision: LedgerDecision::Deny,
        rule: INVALID_REQUEST_RULE.into(),
        reason: format!("refused before the policy: {error}"),
        receipt: Receipt::default(),
    }
}

/// The `rule` of the access record of a malformed search request.
pub const INVALID_REQUEST_RULE: &str = "invalid-request";

/// Runs one search for `principal`. See the module docs for the order of events.
pub async fn search(state: &ApiState, principal: &Principal, req: proto::SearchRequest) -> Result<SearchOutcome, ApiError> {
    let Checked {
        plate,
        purpose,
        case_number,
        camera_id,
        cutoff,
        from,
        to,
    } = match check(state, &req) {
        Ok(c) => c,
        Err(e) => {
            // A malformed attempt is an attempt: on the record before the error goes back.
            let seq = state
                .ledger
                .append(RecordBody::Access(refused_record(state, principal, &req, &e)))
                .await?;
            tracing::info!(principal = %principal.id, access_entry = seq, "search refused as malformed");
            return Err(e);
        }
    };

    let ctx = RequestContext::search(purpose.clone(), (!case_number.is_empty()).then_some(case_number.as_str()));
    let decision = state.policy.authorize(principal, Action::Search, &ctx);
    // What was asked beyond plate and window goes into the record's reason.
    let mut asked = Vec::new();
    if req.folded {
        asked.push("OCR-folded".to_string());
    }
    if let Some(c) = &camera_id {
        asked.push(format!("camera {c}"));
    }
    let mut record = Access {
        principal: principal.id.clone(),
        agency: principal.agency.clone(),
        jurisdiction: principal.jurisdiction.clone(),
        purpose,
        case_number: (!case_number.is_empty()).then_some(case_number),
        plate_ciphertext: state.audit_key.seal_plate(&plate),
        plate_blind: state.audit_key.blind(&plate),
        window_from: from,
        window_to: to,
        decision: if decision.allowed {
            LedgerDecision::Allow
        } else {
            LedgerDecision::Deny
        },
        rule: decision.rule.clone(),
        reason: with_query(&decision.reason, &asked),
        receipt: Receipt::default(),
    };

    if !decision.allowed {
        let seq = state.ledger.append(RecordBody::Access(record)).await?;
        tracing::info!(principal = %principal.id, rule = %decision.rule, access_entry = seq, "search denied");
        return Err(ApiError::Denied {
            rule: decision.rule,
            reason: decision.reason,
        });
    }

    // Find first: the receipt must be in the record before anything is sent. Whole results while
    // the buffer allows, object names after that.
    let mut buffered: Vec<Found> = Vec::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut hashes: Vec<[u8; 32]> = Vec::new();
    let mut truncated = false;
    if from <= to {
        let mut bytes = 0usize;
        let mut s = state.reads.find(FindQuery {
            plate: plate.clone(),
            from,
            to,
            folded: req.folded,
            camera_id: camera_id.clone(),
        });
        while let Some(item) = s.next().await {
            let f = match item {
                Ok(f) => f,
                Err(e) => {
                    // Still an attempt on the record; if even that fails, the error stands.
                    record.reason = format!("{} (the search failed before any result was sent)", record.reason);
                    let _ = state.ledger.append(RecordBody::Access(record)).await;
                    return Err(e.into());
                }
            };
            // The store already filters by window; this is the retention guarantee restated.
            if f.read.captured_at < cutoff || f.read.captured_at < from || f.read.captured_at > to {
                continue;
            }
            if hashes.len() >= state.limits.max_search_results {
                truncated = true;
                break;
            }
            hashes.push(sha256(f.read.read_id.as_bytes()));
            let size = held_bytes(&f);
            // Only a prefix is buffered: once one result does not fit, the rest are re-fetched.
            if pending.is_empty() && bytes + size <= state.limits.search_buffer_bytes {
                bytes += size;
                buffered.push(f);
            } else {
                pending.push(Pending {
                    key: f.key,
                    matched: f.matched,
                });
            }
        }
    }
    let count = hashes.len();
    record.receipt = Receipt {
        count: count as u64,
        read_id_hashes: hashes,
    };
    if truncated {
        asked.push(format!("results capped at {count}"));
        record.reason = with_query(&decision.reason, &asked);
    }
    // The hashes of the re-fetched reads, to check each against the receipt as it is sent.
    let expected: Vec<[u8; 32]> = record.receipt.read_id_hashes[buffered.len()..].to_vec();
    let access_entry = state.ledger.append(RecordBody::Access(record)).await?;
    tracing::info!(
        principal = %principal.id,
        rule = %decision.rule,
        count,
        buffered = buffered.len(),
        refetch = pending.len(),
        truncated,
        access_entry,
        "search allowed"
    );

    let header = proto::SearchHeader {
        access_entry,
        from: Some(convert::to_timestamp(from)),
        to: Some(convert::to_timestamp(to)),
        count: count as u32,
        truncated,
    };
    let first_pending = buffered.len() as u64;
    let reads = state.reads.clone();
    let refetched = stream::iter(pending.into_iter().zip(expected).enumerate())
        .map(move |(i, (p, hash))| {
            let reads = reads.clone();
            async move {
                let not_sent = |source| ApiError::ResultNotSent {
                    access_entry,
                    index: first_pending + i as u64,
                    count: count as u64,
                    source: Box::new(source),
                };
                let read = reads.get(&p.key).await.map_err(not_sent)?;
                // The name binds the read id (its locator is an HMAC of it), so this holds unless
                // something is badly wrong; checked because the receipt is the promise.
                if sha256(read.read_id.as_bytes()) != hash {
                    return Err(not_sent(StoreError::Misfiled { key: p.key.to_string() }));
                }
                Ok(wire_result(Found {
                    key: p.key,
                    read,
                    matched: p.matched,
                }))
            }
        })
        .buffered(REFETCH_CONCURRENCY);
    let results = stream::iter(buffered.into_iter().map(|f| Ok(wire_result(f))))
        .chain(refetched)
        // Nothing after an error: the error is the stream's last item.
        .scan(false, |failed, r| {
            let item = (!*failed).then(|| {
                *failed = r.is_err();
                r
            });
            futures::future::ready(item)
        })
        .boxed();
    Ok(SearchOutcome { header, results })
}

fn with_query(reason: &str, asked: &[String]) -> String {
    if asked.is_empty() {
        reason.to_string()
    } else {
        format!("{reason} [{}]", asked.join("; "))
    }
}
