//! Check 1: the effective policy set against the approved baseline.

use std::collections::BTreeSet;

use super::baseline::ApprovedPolicy;
use super::scan::ApprovalSeen;
use super::{short, AuditError, Check, CheckResult};
use crate::policy::Principal;
use crate::policy::{diff_files, PolicySet};

/// One line describing a principal: id, agency, kind, level, jurisdiction, roles.
pub fn describe(p: &Principal) -> String {
    format!(
        "{} ({}, {} {} agency, jurisdiction {}, roles: {})",
        p.id,
        p.agency,
        p.agency_kind,
        p.level,
        p.jurisdiction,
        p.roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
    )
}

/// Compares the effective set with the approved one. `approved` is the stored copy of the
/// baseline (or why it could not be read).
pub fn check(policy: &PolicySet, seen: Option<&ApprovalSeen>, approved: Option<&Result<ApprovedPolicy, AuditError>>) -> CheckResult {
    let mut r = CheckResult::new(Check::PolicyDrift);
    let Some(seen) = seen else {
        r.finding(format!(
            "no approved policy baseline in the ledger; the effective policy set {} has never been approved \
             (an admin runs `lethe audit approve --as ID`)",
            short(&policy.hash)
        ));
        return r;
    };
    let when = seen.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if seen.hash == policy.hash {
        r.note(format!(
            "the effective policy set {} is the approved baseline (approved by {} at {when})",
            short(&policy.hash),
            seen.by
        ));
        return r;
    }
    let approved = match approved {
        Some(Ok(a)) => a,
        Some(Err(e)) => {
            r.finding(format!(
                "the effective policy set {} differs from the approved baseline {} (approved by {} at {when}); \
                 the approved copy cannot be read to say how: {e}",
                short(&policy.hash),
                short(&seen.hash),
                seen.by
            ));
            return r;
        }
        None => {
            r.finding(format!(
                "the effective policy set {} differs from the approved baseline {}",
                short(&policy.hash),
                short(&seen.hash)
            ));
            return r;
        }
    };
    let changes = diff_files(&approved.files, &policy.files);
    r.finding(format!(
        "the effective policy set {} differs from the approved baseline {} (approved by {} at {when}): {}",
        short(&policy.hash),
        short(&seen.hash),
        seen.by,
        changes
            .iter()
            .map(|(n, c)| format!("{n} {}", c.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    // Principals added, removed or changed.
    for p in policy.principals.iter() {
        match approved.principals.get(&p.id) {
            None => r.finding(format!("principal added without approval: {}", describe(p))),
            Some(old) if old != p => r.finding(format!(
                "principal changed without approval: {} (approved: {})",
                describe(p),
                describe(old)
            )),
            Some(_) => {}
        }
    }
    for old in approved.principals.iter() {
        if policy.principals.get(&old.id).is_none() {
            r.finding(format!("principal removed without approval: {}", describe(old)));
        }
    }
    // Search rights gained or lost, each principal as the approved set would have seen it.
    let approved_searchers: BTreeSet<String> = approved
        .access
        .who_can_search(approved.principals.iter())
        .into_iter()
        .filter(|(_, d)| d.allowed)
        .map(|(p, _)| p.id)
        .collect();
    let now_searchers = policy.who_can_search();
    for (p, d) in &now_searchers {
        if d.allowed && !approved_searchers.contains(&p.id) {
            r.finding(format!(
                "search rights granted without approval: {} may search under the effective policy ({}) but not under the approved baseline",
                describe(p),
                d.rule
            ));
        }
    }
    for id in &approved_searchers {
        if !now_searchers.iter().any(|(p, d)| &p.id == id && d.allowed) {
            r.note(format!(
                "{id} could search under the approved baseline but cannot under the effective policy"
            ));
        }
    }
    r
}
