//! Search: validate, decide, collect, record, then send.
//!
//! The order is the guarantee: the access record, with its receipt of exactly which reads will be
//! sent, is durable in the ledger before [`search`] returns anything to send. Denied attempts are
//! recorded the same way, with an empty receipt.

use chrono::{DateTime, Duration, Utc};
use futures::stream::{self, BoxStream, StreamExt, TryStreamExt};

use super::ports::{Access, Action, LedgerDecision, Principal, Receipt, RecordBody, RequestContext};
use super::{convert, proto, sha256, ApiError, ApiState};
use crate::model::plate;
use crate::store::{FindQuery, Found, StoreError};

/// How many capture days one search reads at once. The store lists and fetches one day at a
/// time; on a remote store, a month's window is then 30 round-trip chains in a row.
pub const DAY_CONCURRENCY: usize = 8;

/// The matches in `from..=to`, in capture-time order, reading up to [`DAY_CONCURRENCY`] days at
/// once (each day's matches are collected by the store; days are yielded in order).
fn find_by_day(
    state: &ApiState,
    plate: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    folded: bool,
    camera_id: Option<String>,
) -> BoxStream<'static, Result<Found, StoreError>> {
    let mut windows = Vec::new();
    let mut start = from;
    while start <= to {
        let next_day = (start.date_naive() + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight")
            .and_utc();
        let end = to.min(next_day - Duration::nanoseconds(1));
        windows.push((start, end));
        start = next_day;
    }
    let reads = state.reads.clone();
    let plate = plate.to_string();
    stream::iter(windows)
        .map(move |(from, to)| {
            reads
                .find(FindQuery {
                    plate: plate.clone(),
                    from,
                    to,
                    folded,
                    camera_id: camera_id.clone(),
                })
                .try_collect::<Vec<Found>>()
        })
        .buffered(DAY_CONCURRENCY)
        .map_ok(|day| stream::iter(day.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
}

/// The longest purpose or case number accepted.
pub const MAX_LABEL_LEN: usize = 256;

/// What a successful search sends: the header, then the results.
#[derive(Debug)]
pub struct SearchOutcome {
    /// Sent first.
    pub header: proto::SearchHeader,
    /// Sent after the header, in capture-time order.
    pub results: Vec<proto::SearchResult>,
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

/// Runs one search for `principal`. See the module docs for the order of events.
pub async fn search(state: &ApiState, principal: &Principal, req: proto::SearchRequest) -> Result<SearchOutcome, ApiError> {
    let plate = plate::canonical(&req.plate).map_err(|e| invalid("plate", e.to_string()))?;
    let purpose = label("purpose", &req.purpose)?;
    let case_number = label("case_number", &req.case_number)?;
    let camera_id = label("camera_id", &req.camera_id)?;
    let camera_id = (!camera_id.is_empty()).then_some(camera_id);
    let now = state.clock.now();
    let cutoff = state.retention.cutoff(now);
    let latest = now + Duration::seconds(state.limits.future_skew_secs);
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

    // Collect first: the receipt must be in the record before anything is sent.
    let mut found: Vec<Found> = Vec::new();
    let mut truncated = false;
    if from <= to {
        let mut bytes = 0usize;
        let mut s = find_by_day(state, &plate, from, to, req.folded, camera_id.clone());
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
            let size = f.read.image.as_ref().map_or(0, |i| i.len()) + 1024;
            if found.len() >= state.limits.max_search_results || bytes + size > state.limits.max_search_bytes {
                truncated = true;
                break;
            }
            bytes += size;
            found.push(f);
        }
    }
    record.receipt = Receipt {
        count: found.len() as u64,
        read_id_hashes: found.iter().map(|f| sha256(f.read.read_id.as_bytes())).collect(),
    };
    if truncated {
        asked.push(format!("results capped at {}", found.len()));
        record.reason = with_query(&decision.reason, &asked);
    }
    let access_entry = state.ledger.append(RecordBody::Access(record)).await?;
    tracing::info!(principal = %principal.id, rule = %decision.rule, count = found.len(), truncated, access_entry, "search allowed");

    let header = proto::SearchHeader {
        access_entry,
        from: Some(convert::to_timestamp(from)),
        to: Some(convert::to_timestamp(to)),
        count: found.len() as u32,
        truncated,
    };
    let results = found
        .into_iter()
        .map(|f| proto::SearchResult {
            exact: f.matched == plate::PlateMatch::Exact,
            plate_canonical: f.read.plate.clone(),
            read: Some(convert::wire_read(f.read)),
        })
        .collect();
    Ok(SearchOutcome { header, results })
}

fn with_query(reason: &str, asked: &[String]) -> String {
    if asked.is_empty() {
        reason.to_string()
    } else {
        format!("{reason} [{}]", asked.join("; "))
    }
}
