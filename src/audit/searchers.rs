//! Check 2: who can search under the effective policy.
//!
//! Every registered principal is evaluated with the effective Cedar policy
//! ([`crate::policy::AccessPolicy::who_can_search`], which probes every listed purpose, an
//! unlisted purpose and a missing case number). Each principal that may search is listed; one
//! outside the approved jurisdictions, a federal agency or a private entity is a finding even
//! when the policy that lets it search was approved: approval does not make it lawful.

use super::drift::describe;
use super::{Check, CheckResult};
use crate::config::AuditConfig;
use crate::policy::PolicySet;
use crate::policy::{AgencyKind, Level};

/// Runs the check.
pub fn check(policy: &PolicySet, cfg: &AuditConfig) -> CheckResult {
    let mut r = CheckResult::new(Check::WhoCanSearch);
    let mut n = 0;
    for (p, d) in policy.who_can_search() {
        if !d.allowed {
            continue;
        }
        n += 1;
        let mut why = Vec::new();
        if !cfg.approved_jurisdictions.iter().any(|j| j.eq_ignore_ascii_case(&p.jurisdiction)) {
            why.push(format!(
                "outside the approved jurisdictions ({})",
                cfg.approved_jurisdictions.join(", ")
            ));
        }
        if p.level == Level::Federal {
            why.push("a federal agency".to_string());
        }
        if p.agency_kind == AgencyKind::Private {
            why.push("a private entity".to_string());
        }
        if why.is_empty() {
            r.note(format!("may search: {} (rule {})", describe(&p), d.rule));
        } else {
            r.finding(format!(
                "{} may search (rule {}) but is {}",
                describe(&p),
                d.rule,
                why.join(" and ")
            ));
        }
    }
    if n == 0 {
        r.note("no registered principal may search");
    }
    r
}
