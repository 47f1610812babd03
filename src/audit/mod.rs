//! The daily settings audit, policy records and baselines, and the access reports.
//!
//! `lethe audit` is the agency's own, independent check of its deployment — not the vendor's
//! word. It runs five checks, each with its own finding lines ([`Check`]):
//!
//! 1. **policy drift** ([`drift`]): the effective policy set against the approved baseline
//!    (the latest `PolicyApproved` record), naming each changed file and each principal that
//!    can now search but could not under the baseline;
//! 2. **who can search** ([`searchers`]): the effective Cedar policy evaluated for every
//!    registered principal; any that may search from outside the approved jurisdictions, any
//!    federal agency and any private entity is a finding — approved or not;
//! 3. **store settings** ([`settings`]): on S3, the data bucket is not public, versioning is off
//!    (or noncurrent versions expire quickly), the lifecycle backstop exists, Object Lock where
//!    required; locally, the key files are 0600 in a 0700 folder outside the data directory;
//! 4. **access review** ([`access`]): the access records since the last audit — searches per
//!    agency, denials per agency and rule, allowed searches the approved policy would deny and
//!    searches without a case number (both must be zero);
//! 5. **retention** ([`retention`]): the oldest stored read against retention plus the sweep
//!    interval, a deletion proof and a destroyed key for every expired day, and the ledger
//!    verifies.
//!
//! The outcome is a `SettingsAudit` ledger record ([`record_outcome`]) and the exit code is 0
//! only when there is no finding. A check that cannot look (a bucket setting it may not read, a
//! ledger that does not parse) reports that as a finding: an audit that could not see is not a
//! clean audit.
//!
//! Policy records ([`baseline`]): every server and sweeper calls [`record_policy_on_start`]
//! before serving, so a policy change always leaves a `PolicyChanged` record; `lethe audit
//! approve` ([`approve`]) records a baseline, and keeps a copy of the approved files in the
//! store (`audit/baselines/{hash}/…`) so later audits can evaluate past searches against what
//! was approved, not against what is in the folder today.
//!
//! Reports ([`report`]): `lethe report access` (the access log the California statute asks for)
//! and `lethe report summary` (a public transparency report with no plate and no person in it).

pub mod access;
pub mod baseline;
pub mod drift;
pub mod report;
pub mod retention;
pub mod scan;
pub mod searchers;
pub mod settings;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::ObjectStore;
use serde::Serialize;

pub use crate::policy::PolicySet;
pub use baseline::{approve, record_policy_on_start, ApprovedPolicy, PolicyStart};

use crate::clock::Clock;
use crate::config::{Config, ConfigError};
use crate::ledger::record::SettingsAudit;
use crate::ledger::{AppendReceipt, Ledger, LedgerError, Record, RecordBody};
use crate::store::{ReadStore, StoreError};

/// Errors that stop an audit, an approval or a report (findings are not errors).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The ledger could not be read or written.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A setting or policy file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An object of the baseline copy could not be read or written.
    #[error("baseline copy {key}: {reason}")]
    Baseline {
        /// Object key.
        key: String,
        /// Why.
        reason: String,
    },
    /// The approval was refused.
    #[error("approval by {principal} refused: {reason}")]
    ApprovalRefused {
        /// Who asked.
        principal: String,
        /// Why.
        reason: String,
    },
    /// Output could not be written.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

/// The five checks, in the order they run and are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Effective policy vs approved baseline.
    PolicyDrift,
    /// Who may search under the effective policy.
    WhoCanSearch,
    /// Bucket settings and key-file permissions.
    StoreSettings,
    /// Access records since the last audit.
    AccessReview,
    /// Retention compliance and ledger integrity.
    Retention,
}

impl Check {
    /// The stable name printed on every line of this check.
    pub fn name(self) -> &'static str {
        match self {
            Check::PolicyDrift => "policy-drift",
            Check::WhoCanSearch => "who-can-search",
            Check::StoreSettings => "store-settings",
            Check::AccessReview => "access-review",
            Check::Retention => "retention",
        }
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Which check.
    pub check: Check,
    /// What is wrong: one line each. Any finding makes the audit fail.
    pub findings: Vec<String>,
    /// What was seen (counts, who may search): context, not failures.
    pub notes: Vec<String>,
}

impl CheckResult {
    /// An empty result for `check`.
    pub fn new(check: Check) -> Self {
        Self {
            check,
            findings: Vec::new(),
            notes: Vec::new(),
        }
    }
    /// Adds a finding.
    pub fn finding(&mut self, line: impl Into<String>) {
        self.findings.push(line.into());
    }
    /// Adds a note.
    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }
}

/// The outcome of `lethe audit`.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    /// When the audit ran.
    pub at: DateTime<Utc>,
    /// The effective policy-set hash.
    pub policy_hash: String,
    /// The approved baseline hash, if any.
    pub approved_hash: Option<String>,
    /// Each check.
    pub checks: Vec<CheckResult>,
}

impl AuditReport {
    /// The number of findings over all checks.
    pub fn findings(&self) -> usize {
        self.checks.iter().map(|c| c.findings.len()).sum()
    }

    /// No finding at all.
    pub fn passed(&self) -> bool {
        self.findings() == 0
    }

    /// The result of one check.
    pub fn check(&self, check: Check) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.check == check)
    }

    /// Every finding as `"[check] line"`.
    pub fn finding_lines(&self) -> Vec<String> {
        self.checks
            .iter()
            .flat_map(|c| c.findings.iter().map(move |f| format!("[{}] {f}", c.check.name())))
            .collect()
    }

    /// The ledger record of this outcome. Finding lines come from policy, settings and
    /// counts; none carries a plate.
    pub fn to_record(&self) -> SettingsAudit {
        let summary = if self.passed() {
            vec![format!(
                "no findings ({} checks; policy {})",
                self.checks.len(),
                short(&self.policy_hash)
            )]
        } else {
            self.finding_lines()
        };
        SettingsAudit {
            findings: u32::try_from(self.findings()).unwrap_or(u32::MAX),
            summary,
            passed: self.passed(),
        }
    }

    /// The human-readable report: every check with its findings and notes.
    pub fn write_text(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(out, "lethe audit at {}", self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))?;
        writeln!(out, "policy set:   {}", self.policy_hash)?;
        writeln!(
            out,
            "approved:     {}",
            self.approved_hash.as_deref().unwrap_or("(no approved baseline)")
        )?;
        for c in &self.checks {
            let status = if c.findings.is_empty() {
                "ok".to_string()
            } else {
                format!("{} finding(s)", c.findings.len())
            };
            writeln!(out, "\n== {}: {status}", c.check.name())?;
            for f in &c.findings {
                writeln!(out, "FINDING [{}] {f}", c.check.name())?;
            }
            for n in &c.notes {
                writeln!(out, "  note [{}] {n}", c.check.name())?;
            }
        }
        if self.passed() {
            writeln!(out, "\nPASSED: no findings")
        } else {
            writeln!(out, "\nFAILED: {} finding(s)", self.findings())
        }
    }
}

/// The first 12 hex digits of a hash, for messages.
pub fn short(hash: &str) -> &str {
    &hash[..hash.len().min(12)]
}

/// Everything an audit looks at. The audit opens nothing itself.
#[derive(Clone, Copy)]
pub struct AuditInputs<'a> {
    /// The configuration (store settings, key paths, `[audit]`).
    pub config: &'a Config,
    /// The effective policy set (loaded from the policy folder).
    pub policy: &'a PolicySet,
    /// The ledger (read for the checks; the outcome is appended by [`record_outcome`]).
    pub ledger: &'a Ledger,
    /// The encrypted read store.
    pub reads: &'a ReadStore,
    /// The raw object store (baseline copies).
    pub store: &'a Arc<dyn ObjectStore>,
    /// The clock.
    pub clock: &'a dyn Clock,
    /// A checkpoint saved earlier by an auditor, checked for consistency with the log.
    pub trusted_checkpoint: Option<&'a [u8]>,
}

/// Runs the five checks. Returns `Err` only when the audit could not run at all (the ledger
/// store unreachable); everything it could not check is a finding.
pub async fn run(inputs: AuditInputs<'_>) -> Result<AuditReport, AuditError> {
    let now = inputs.clock.now();
    let view = scan::AuditView::load(inputs.ledger.reader()).await?;
    let approved = match &view.approved {
        Some(a) => Some(ApprovedPolicy::load(inputs.store.as_ref(), &a.hash).await),
        None => None,
    };
    let drift = drift::check(inputs.policy, view.approved.as_ref(), approved.as_ref());
    let who = searchers::check(inputs.policy, &inputs.config.audit);
    let settings = settings::check(inputs.config, inputs.policy.retention).await;
    let access = access::check(inputs.store.as_ref(), &view).await;
    let retention = retention::check(&inputs, &view, now).await;
    Ok(AuditReport {
        at: now,
        policy_hash: inputs.policy.hash.clone(),
        approved_hash: view.approved.as_ref().map(|a| a.hash.clone()),
        checks: vec![drift, who, settings, access, retention],
    })
}

/// Appends the outcome as a `SettingsAudit` record; the next audit's access review starts after
/// it.
pub async fn record_outcome(ledger: &Ledger, report: &AuditReport, writer: &str, clock: &dyn Clock) -> Result<AppendReceipt, AuditError> {
    let rec = Record::new(clock.now(), writer, RecordBody::SettingsAudit(report.to_record()));
    Ok(ledger.append(&rec).await?)
}
