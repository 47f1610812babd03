//! Check 4: the access records written since the last audit.
//!
//! Counts searches per agency and denials per agency and rule (notes), and reports as
//! findings: any allowed search that the approved baseline in force at the time would have
//! denied (or allowed with no approved baseline at all), and any allowed search without a case
//! number. Each allowed search is re-evaluated with the approved Cedar rules for the principal
//! as registered in the approved registry, with the purpose and case number it gave.

use std::collections::{BTreeMap, HashMap};

use object_store::ObjectStore;

use super::baseline::ApprovedPolicy;
use super::scan::AuditView;
use super::{short, AuditError, Check, CheckResult};
use crate::ledger::record::Decision;
use crate::policy::{Action, RequestContext};

/// Runs the check over `view.accesses`.
pub async fn check(store: &dyn ObjectStore, view: &AuditView) -> CheckResult {
    let mut r = CheckResult::new(Check::AccessReview);
    let since = match view.last_audit {
        Some((i, at)) => format!(
            "since the last audit (entry {i}, {})",
            at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ),
        None => "since the ledger began (no earlier audit)".to_string(),
    };
    let mut searches: BTreeMap<&str, u64> = BTreeMap::new();
    let mut denials: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut baselines: HashMap<String, Result<ApprovedPolicy, AuditError>> = HashMap::new();
    for seen in &view.accesses {
        let a = &seen.access;
        let case_missing = a.case_number.as_deref().is_none_or(|c| c.trim().is_empty());
        match a.decision {
            Decision::Deny => {
                *denials.entry((a.agency.as_str(), a.rule.as_str())).or_default() += 1;
                continue;
            }
            Decision::Allow => *searches.entry(a.agency.as_str()).or_default() += 1,
        }
        let at = seen.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let who = format!(
            "entry {} at {at}: search by {} ({}, {})",
            seen.index, a.principal, a.agency, a.jurisdiction
        );
        if case_missing {
            r.finding(format!("{who} was allowed without a case number"));
        }
        let Some(hash) = &seen.approved_hash else {
            r.finding(format!("{who} was allowed while no policy baseline had been approved"));
            continue;
        };
        if !baselines.contains_key(hash) {
            let loaded = ApprovedPolicy::load(store, hash).await;
            baselines.insert(hash.clone(), loaded);
        }
        match &baselines[hash] {
            Err(e) => r.finding(format!("{who}: cannot check it against the approved baseline {}: {e}", short(hash))),
            Ok(approved) => match approved.principals.get(&a.principal) {
                None => r.finding(format!(
                    "{who} was allowed, but the principal is not in the approved baseline {}",
                    short(hash)
                )),
                Some(p) => {
                    let ctx = RequestContext::search(a.purpose.clone(), a.case_number.as_deref());
                    let d = approved.access.authorize(p, Action::Search, &ctx);
                    if !d.allowed {
                        r.finding(format!(
                            "{who} was allowed (rule {}), but the approved baseline {} denies it: {}",
                            a.rule,
                            short(hash),
                            d.reason
                        ));
                    }
                }
            },
        }
    }
    r.note(format!(
        "{} access record(s) {since}: {} allowed, {} denied",
        view.accesses.len(),
        searches.values().sum::<u64>(),
        denials.values().sum::<u64>()
    ));
    for (agency, n) in &searches {
        r.note(format!("searches by {agency}: {n}"));
    }
    for ((agency, rule), n) in &denials {
        r.note(format!("denials of {agency} by rule {rule}: {n}"));
    }
    r
}
