//! Policy records at start, the approved baseline, and the stored copy of approved policy sets.
//!
//! - [`record_policy_on_start`]: a server or sweeper calls it before serving. When the policy
//!   set's hash differs from the last one recorded, it writes `PolicyChanged` (old hash, new
//!   hash, the files added, removed or modified) and then `PolicyLoaded` (the new hash and every
//!   file's hash, so the next change can be diffed); on the very first start only
//!   `PolicyLoaded`. An unchanged set writes nothing.
//! - [`approve`]: an explicit act by a principal with the admin role. It copies the approved
//!   files into the store under `audit/baselines/{hash}/{file}` and then writes
//!   `PolicyApproved`. The copy lets later audits evaluate past searches against the approved
//!   rules; it is checked against the approved hash when read, so a tampered copy is refused.
//!
//! In `changed_files` of a `PolicyChanged` record a removed file carries the all-zero hash.

use std::collections::BTreeMap;

use futures::TryStreamExt as _;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ring::digest::{digest, SHA256};

use super::scan::{for_each_record, PolicySeen};
use super::AuditError;
use crate::clock::Clock;
use crate::ledger::record::{PolicyApproved, PolicyChanged, PolicyFile, PolicyLoaded};
use crate::ledger::{Ledger, Record, RecordBody};
use crate::policy::{diff_files, set_hash, Change, PolicySet};
use crate::policy::{AccessPolicy, Action, Registry, RequestContext, Role};

/// Prefix of the stored copies of approved policy sets. Changing it loses the copies.
pub const BASELINES: &str = "audit/baselines";

/// What [`record_policy_on_start`] found and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyStart {
    /// No policy was recorded before: `PolicyLoaded` written.
    First {
        /// The hash.
        hash: String,
    },
    /// Same hash as last recorded: nothing written.
    Unchanged {
        /// The hash.
        hash: String,
    },
    /// Different: `PolicyChanged` and `PolicyLoaded` written.
    Changed {
        /// The last recorded hash.
        old: String,
        /// The new hash.
        new: String,
        /// Files added, removed or modified (all files when the old list is unknown).
        changed: Vec<(String, Change)>,
    },
}

fn to_hash(hex_str: &str) -> [u8; 32] {
    // Hashes come from our own SHA-256 hex; anything else becomes the all-zero hash.
    let mut out = [0u8; 32];
    if hex::decode_to_slice(hex_str, &mut out).is_err() {
        out = [0u8; 32];
    }
    out
}

fn file_list(files: &[PolicyFile]) -> Vec<(String, String)> {
    files.iter().map(|f| (f.name.clone(), hex::encode(f.hash))).collect()
}

fn policy_files(set: &PolicySet) -> Vec<PolicyFile> {
    set.files
        .iter()
        .map(|(n, h)| PolicyFile {
            name: n.clone(),
            hash: to_hash(h),
        })
        .collect()
}

/// The last recorded policy state in the ledger (a full scan).
pub async fn last_recorded_policy(ledger: &Ledger) -> Result<Option<PolicySeen>, AuditError> {
    let mut seen: Option<PolicySeen> = None;
    for_each_record(ledger.reader(), |_, r| match r.body {
        RecordBody::PolicyLoaded(p) => {
            seen = Some(PolicySeen {
                hash: hex::encode(p.policy_hash),
                files: p.files,
            })
        }
        RecordBody::PolicyChanged(p) => {
            seen = Some(PolicySeen {
                hash: hex::encode(p.new_hash),
                files: Vec::new(),
            })
        }
        _ => {}
    })
    .await?;
    Ok(seen)
}

/// Records the policy set a server or sweeper is starting with, before it serves: writes
/// `PolicyChanged` (and `PolicyLoaded`) when its hash differs from the last recorded one. The
/// records are durable when this returns `Ok`; on `Err` the caller must not serve.
///
/// Two processes starting together with the same new set may both record the change; that is
/// harmless (both records say the same).
pub async fn record_policy_on_start(
    ledger: &Ledger,
    policy: &PolicySet,
    writer: &str,
    clock: &dyn Clock,
) -> Result<PolicyStart, AuditError> {
    let last = last_recorded_policy(ledger).await?;
    let loaded = RecordBody::PolicyLoaded(PolicyLoaded {
        policy_hash: to_hash(&policy.hash),
        files: policy_files(policy),
    });
    match last {
        Some(l) if l.hash == policy.hash => Ok(PolicyStart::Unchanged { hash: l.hash }),
        None => {
            ledger.append(&Record::new(clock.now(), writer, loaded)).await?;
            Ok(PolicyStart::First { hash: policy.hash.clone() })
        }
        Some(l) => {
            let changed = if l.files.is_empty() {
                policy.files.iter().map(|(n, _)| (n.clone(), Change::Modified)).collect()
            } else {
                diff_files(&file_list(&l.files), &policy.files)
            };
            let current: BTreeMap<&str, &str> = policy.files.iter().map(|(n, h)| (n.as_str(), h.as_str())).collect();
            let changed_files = changed
                .iter()
                .map(|(name, c)| PolicyFile {
                    name: name.clone(),
                    hash: match c {
                        Change::Removed => [0u8; 32],
                        _ => to_hash(current.get(name.as_str()).copied().unwrap_or_default()),
                    },
                })
                .collect();
            let rec = Record::new(
                clock.now(),
                writer,
                RecordBody::PolicyChanged(PolicyChanged {
                    old_hash: to_hash(&l.hash),
                    new_hash: to_hash(&policy.hash),
                    changed_files,
                }),
            );
            ledger.append(&rec).await?;
            ledger.append(&Record::new(clock.now(), writer, loaded)).await?;
            Ok(PolicyStart::Changed {
                old: l.hash,
                new: policy.hash.clone(),
                changed,
            })
        }
    }
}

/// An approved policy set, read back from its stored copy and checked against its hash.
#[derive(Debug)]
pub struct ApprovedPolicy {
    /// The approved hash.
    pub hash: String,
    /// (name, sha256 hex) of every file.
    pub files: Vec<(String, String)>,
    /// The approved principal registry.
    pub principals: Registry,
    /// The approved access rules.
    pub access: AccessPolicy,
}

fn baseline_err(key: impl Into<String>, reason: impl Into<String>) -> AuditError {
    AuditError::Baseline {
        key: key.into(),
        reason: reason.into(),
    }
}

impl ApprovedPolicy {
    /// Reads the stored copy of the set with `hash`, refusing it unless its files hash to `hash`.
    pub async fn load(store: &dyn ObjectStore, hash: &str) -> Result<Self, AuditError> {
        let prefix = Path::from(format!("{BASELINES}/{hash}"));
        let metas: Vec<_> = store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| baseline_err(prefix.as_ref(), e.to_string()))?;
        if metas.is_empty() {
            return Err(baseline_err(prefix.as_ref(), "no stored copy of the approved policy set"));
        }
        let mut contents = BTreeMap::new();
        for m in metas {
            let bytes = store
                .get(&m.location)
                .await
                .map_err(|e| baseline_err(m.location.as_ref(), e.to_string()))?
                .bytes()
                .await
                .map_err(|e| baseline_err(m.location.as_ref(), e.to_string()))?;
            let name = m.location.as_ref()[prefix.as_ref().len() + 1..].to_string();
            contents.insert(name, bytes.to_vec());
        }
        let files: Vec<(String, String)> = contents.iter().map(|(n, b)| (n.clone(), hex::encode(digest(&SHA256, b)))).collect();
        if set_hash(&files) != hash {
            return Err(baseline_err(
                prefix.as_ref(),
                "the stored copy does not hash to the approved hash (altered)",
            ));
        }
        let text = |name: &str| -> Result<&str, AuditError> {
            let b = contents
                .get(name)
                .ok_or_else(|| baseline_err(format!("{prefix}/{name}"), "missing from the approved copy"))?;
            std::str::from_utf8(b).map_err(|_| baseline_err(format!("{prefix}/{name}"), "not UTF-8"))
        };
        let principals = Registry::parse(text("principals.toml")?, &format!("approved {}", "principals.toml"))?;
        let schema = text(crate::policy::cedar::SCHEMA_FILE)?;
        let mut sources = Vec::new();
        for name in contents.keys().filter(|n| n.ends_with(".cedar") && !n.contains('/')) {
            sources.push((format!("approved {name}"), text(name)?));
        }
        let refs: Vec<(&str, &str)> = sources.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let access = AccessPolicy::from_sources(("approved schema.cedarschema", schema), &refs)?;
        Ok(Self {
            hash: hash.to_string(),
            files,
            principals,
            access,
        })
    }
}

/// The latest approved hash in the ledger, if any.
pub async fn latest_approval(ledger: &Ledger) -> Result<Option<String>, AuditError> {
    let mut last = None;
    for_each_record(ledger.reader(), |_, r| {
        if let RecordBody::PolicyApproved(a) = r.body {
            last = Some(hex::encode(a.policy_hash));
        }
    })
    .await?;
    Ok(last)
}

/// Approves `policy` as the baseline, on behalf of `principal`, who must hold the admin role
/// (and be permitted the `admin` action) in the policy being approved and, when a baseline
/// exists already, in that baseline too — so nobody can grant themselves the right to approve.
/// Records the policy start first (so the change is on record), stores a copy of the files,
/// then writes `PolicyApproved`. Returns the approved hash.
pub async fn approve(
    ledger: &Ledger,
    store: &dyn ObjectStore,
    policy: &PolicySet,
    principal: &str,
    writer: &str,
    clock: &dyn Clock,
) -> Result<String, AuditError> {
    let refuse = |reason: String| AuditError::ApprovalRefused {
        principal: principal.to_string(),
        reason,
    };
    let admin_in = |reg: &Registry, access: &AccessPolicy, which: &str| -> Result<(), AuditError> {
        let p = reg
            .get(principal)
            .ok_or_else(|| refuse(format!("not a registered principal in the {which} policy set")))?;
        if !p.has_role(Role::Admin) {
            return Err(refuse(format!("does not have the admin role in the {which} policy set")));
        }
        let d = access.authorize(p, Action::Admin, &RequestContext::none());
        if !d.allowed {
            return Err(refuse(format!("the {which} access policy does not permit admin: {}", d.reason)));
        }
        Ok(())
    };
    admin_in(&policy.principals, &policy.access, "effective")?;
    if let Some(prev) = latest_approval(ledger).await? {
        if prev == policy.hash {
            return Ok(prev);
        }
        match ApprovedPolicy::load(store, &prev).await {
            Ok(a) => admin_in(&a.principals, &a.access, "previously approved")?,
            Err(e) => tracing::warn!(error = %e, "previous baseline copy unreadable; approval checked against the effective set only"),
        }
    }
    record_policy_on_start(ledger, policy, writer, clock).await?;
    for (name, sha) in &policy.files {
        let path = policy.dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| baseline_err(path.display().to_string(), e.to_string()))?;
        if hex::encode(digest(&SHA256, &bytes)) != *sha {
            return Err(refuse(format!("{} changed while approving; run again", path.display())));
        }
        let key = Path::from(format!("{BASELINES}/{}/{name}", policy.hash));
        store
            .put(&key, PutPayload::from(bytes))
            .await
            .map_err(|e| baseline_err(key.as_ref(), e.to_string()))?;
    }
    let rec = Record::new(
        clock.now(),
        writer,
        RecordBody::PolicyApproved(PolicyApproved {
            policy_hash: to_hash(&policy.hash),
            approved_by: principal.to_string(),
        }),
    );
    ledger.append(&rec).await?;
    Ok(policy.hash.clone())
}
