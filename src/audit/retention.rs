//! Check 5: retention compliance and ledger integrity.
//!
//! - No stored read is older than retention plus the sweep interval (the sweeper deletes by
//!   capture time at each run; between runs a read may be at most one interval overdue).
//! - Every capture day that ended more than retention plus the sweep interval ago — known from
//!   the store listing, the day keys, the ingest commits or the deletion proofs — has no reads
//!   left, a destroyed (tombstoned) day key, and a deletion proof in the ledger that says the key
//!   was destroyed and reconciles against the day's ingest commits.
//! - No ingest commit for a capture day follows that day's closing proof (key destroyed).
//! - The ledger verifies ([`crate::ledger::verify_log`]): every entry, checkpoint and hint, and
//!   the trusted checkpoint when one is given.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::path::Path;

use super::scan::AuditView;
use super::{AuditInputs, Check, CheckResult};
use crate::crypto::KeyName;
use crate::ledger::verify_log;

fn day_end(d: NaiveDate) -> DateTime<Utc> {
    (d + Duration::days(1)).and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}

fn secs(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Days that have a day key object (live or tombstone).
async fn key_days(inputs: &AuditInputs<'_>) -> Result<Vec<NaiveDate>, String> {
    let prefix = Path::from("keys/day");
    let metas: Vec<_> = inputs.store.list(Some(&prefix)).try_collect().await.map_err(|e| e.to_string())?;
    Ok(metas
        .iter()
        .filter_map(|m| m.location.filename().and_then(|f| NaiveDate::parse_from_str(f, "%Y-%m-%d").ok()))
        .collect())
}

/// Runs the check.
pub async fn check(inputs: &AuditInputs<'_>, view: &AuditView, now: DateTime<Utc>) -> CheckResult {
    let mut r = CheckResult::new(Check::Retention);
    let retention = inputs.policy.retention;
    let interval = Duration::hours(i64::from(inputs.config.audit.sweep_interval_hours));
    let cutoff = retention.cutoff(now);
    let overdue_before = cutoff - interval;
    r.note(format!(
        "retention {} h, sweep interval {} h: nothing captured before {} may remain",
        retention.retention_hours,
        interval.num_hours(),
        secs(overdue_before)
    ));

    let store_days = match inputs.reads.days().await {
        Ok(d) => d,
        Err(e) => {
            r.finding(format!("cannot list the stored days: {e}"));
            Vec::new()
        }
    };
    let mut days: BTreeSet<NaiveDate> = store_days.iter().copied().collect();
    match key_days(inputs).await {
        Ok(k) => days.extend(k),
        Err(e) => r.finding(format!("cannot list the day keys: {e}")),
    }
    days.extend(view.ingested.keys().copied());
    days.extend(view.deleted.keys().copied());

    // Oldest stored read, and reads overdue, from the days that can hold any.
    let mut oldest: Option<DateTime<Utc>> = None;
    let mut overdue = 0u64;
    let mut remaining_by_day = std::collections::BTreeMap::new();
    for (i, d) in store_days.iter().enumerate() {
        let start = d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        if i > 0 && start >= overdue_before {
            break;
        }
        let mut keys = inputs.reads.list_day(*d);
        let mut n = 0u64;
        while let Some(k) = keys.next().await {
            match k {
                Ok(k) => {
                    n += 1;
                    oldest = Some(oldest.map_or(k.captured_at, |o| o.min(k.captured_at)));
                    if k.captured_at < overdue_before {
                        overdue += 1;
                    }
                }
                Err(e) => r.finding(format!("cannot list day {d}: {e}")),
            }
        }
        remaining_by_day.insert(*d, n);
    }
    match oldest {
        Some(o) => r.note(format!(
            "oldest stored read captured at {} ({} h old)",
            secs(o),
            (now - o).num_hours()
        )),
        None => r.note("no reads stored"),
    }
    if overdue > 0 {
        r.finding(format!(
            "{overdue} stored read(s) are past retention plus the sweep interval (oldest captured at {}, {} h old; limit {} h)",
            oldest.map(secs).unwrap_or_default(),
            oldest.map(|o| (now - o).num_hours()).unwrap_or_default(),
            retention.retention_hours + inputs.config.audit.sweep_interval_hours
        ));
    }

    // Every expired day: swept, shredded, proven.
    // Reads committed for a day after its key was destroyed: evidence of a server that kept
    // using a destroyed key (say, after a sweep forced past a skewed clock).
    for (d, n) in &view.committed_after_close {
        r.finding(format!(
            "capture day {d}: {n} read(s) were committed after its closing proof destroyed the day's key"
        ));
    }

    let mut expired = 0;
    for d in days {
        if day_end(d) > overdue_before {
            continue;
        }
        expired += 1;
        let mut problems = Vec::new();
        if let Some(n) = remaining_by_day.get(&d).filter(|n| **n > 0) {
            problems.push(format!("{n} read(s) still stored"));
        }
        match inputs.reads.keys().is_destroyed(&KeyName::Day(d)).await {
            Ok(Some(true)) => {}
            Ok(Some(false)) => problems.push("its day key is not destroyed".to_string()),
            Ok(None) => {}
            Err(e) => problems.push(format!("its day key cannot be read: {e}")),
        }
        match view.deleted.get(&d) {
            Some(p) if p.key_destroyed => {
                if p.unreconciled {
                    problems.push("its deletion proof does not reconcile with the day's ingest commits".to_string());
                }
            }
            Some(_) => problems.push("no deletion proof says its key was destroyed".to_string()),
            None => problems.push("no deletion proof in the ledger".to_string()),
        }
        if !problems.is_empty() {
            r.finding(format!(
                "capture day {d} expired at {} and was not swept: {}",
                secs(day_end(d) + retention.period()),
                problems.join("; ")
            ));
        }
    }
    r.note(format!("{expired} expired capture day(s) checked for deletion proofs"));

    // The ledger.
    for p in &view.problems {
        r.finding(format!("ledger: {p}"));
    }
    match verify_log(inputs.ledger.reader(), inputs.trusted_checkpoint.map(|t| ("trusted checkpoint", t))).await {
        Ok(v) if v.ok() => r.note(format!(
            "ledger verifies: {} entries, newest signed checkpoint covers {}",
            v.entries, v.verified_size
        )),
        Ok(v) => {
            for f in &v.failures {
                r.finding(format!("ledger does not verify: {f}"));
            }
            if v.more_failures > 0 {
                r.finding(format!("ledger does not verify: … and {} more problem(s)", v.more_failures));
            }
        }
        Err(e) => r.finding(format!("ledger cannot be verified: {e}")),
    }
    r
}
