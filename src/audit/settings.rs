//! Check 3: store settings and key-file permissions.
//!
//! On S3 (through [`crate::store::s3admin`]), for the data bucket:
//! - not publicly readable: no ACL grant to `AllUsers`/`AuthenticatedUsers`, and no bucket
//!   policy that is public (policy status where the server has it; otherwise any `Allow` to
//!   principal `*`);
//! - versioning off, or, when on or suspended, a lifecycle rule expiring noncurrent versions of
//!   `reads/` and `keys/` within `audit.max_noncurrent_days` (otherwise deleted reads and
//!   destroyed day keys survive as old versions, and shredding protects nothing);
//! - a lifecycle backstop: an enabled expiration rule covering `reads/`, no shorter than the
//!   retention period (a shorter one would delete reads the agency must keep);
//! - Object Lock enabled, when `audit.ledger_object_lock` is set.
//!
//! A setting that cannot be read is a finding, not a pass.
//!
//! Locally (whatever the store): the keys folder is mode 0700 and each key file 0600 or
//! stricter, and for a local-directory store neither the keys folder nor the KEK lies inside
//! the data directory (a copy of the data would carry the keys with it).

use std::path::{Path, PathBuf};

use aws_sdk_s3::error::ProvideErrorMetadata as _;
use aws_sdk_s3::types::{BucketVersioningStatus, ExpirationStatus, LifecycleRule, ObjectLockEnabled, Permission};

use super::{Check, CheckResult};
use crate::config::{AuditConfig, Config, StoreKind};
use crate::policy::Retention;
use crate::store::s3admin;

/// Runs the check for the configured store and keys.
pub async fn check(cfg: &Config, retention: Retention) -> CheckResult {
    let mut r = CheckResult::new(Check::StoreSettings);
    check_key_files(cfg, &mut r);
    match cfg.store.kind {
        StoreKind::S3 => match (s3admin::client(&cfg.store).await, s3admin::bucket(&cfg.store)) {
            (Ok(client), Ok(bucket)) => check_bucket(&client, bucket, &cfg.audit, retention, &mut r).await,
            (Err(e), _) | (_, Err(e)) => r.finding(format!("cannot check the bucket settings: {e}")),
        },
        StoreKind::Local => r.note(format!("local-directory store {}", cfg.store.path.display())),
        StoreKind::Memory => r.note("memory store: nothing is kept after exit; no bucket settings to check"),
    }
    r
}

fn abs(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf()))
}

/// Key-folder and key-file permissions, and keys kept out of a local data directory.
pub fn check_key_files(cfg: &Config, r: &mut CheckResult) {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = &cfg.keys.dir;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                r.finding(format!(
                    "keys folder {} has mode {mode:o}; it must be 0700 (chmod 700)",
                    dir.display()
                ));
            }
        }
        Ok(_) => r.finding(format!("keys folder {} is not a directory", dir.display())),
        Err(e) => r.note(format!("keys folder {}: {e}", dir.display())),
    }
    let mut files: Vec<PathBuf> = vec![
        cfg.keys.kek_path(),
        cfg.keys.ledger_signing_key_path(),
        cfg.keys.audit_key_path(),
        cfg.keys.dev_tokens_path(),
    ];
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            // The verifier key is public by design.
            if !files.contains(&p) && p != cfg.keys.ledger_public_key_path() && p.is_file() {
                files.push(p);
            }
        }
    }
    let mut checked = 0;
    for f in &files {
        let Ok(m) = std::fs::metadata(f) else { continue };
        checked += 1;
        let mode = m.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            r.finding(format!("key file {} has mode {mode:o}; it must be 0600 (chmod 600)", f.display()));
        }
    }
    r.note(format!("{checked} key file(s) checked in {}", dir.display()));
    if cfg.store.kind == StoreKind::Local {
        let data = abs(&cfg.store.path);
        for (what, p) in [("keys folder", dir.clone()), ("key-encryption key", cfg.keys.kek_path())] {
            if abs(&p).starts_with(&data) {
                r.finding(format!(
                    "the {what} {} is inside the data directory {}: anything that copies the data copies the keys",
                    p.display(),
                    data.display()
                ));
            }
        }
    }
}

/// The prefix a lifecycle rule applies to, or `None` when it is narrowed by tags or sizes
/// (then it cannot be relied on for every object).
fn rule_prefix(rule: &LifecycleRule) -> Option<String> {
    match rule.filter() {
        Some(f) => {
            if f.tag().is_some() || f.object_size_greater_than().is_some() || f.object_size_less_than().is_some() {
                return None;
            }
            if let Some(and) = f.and() {
                if !and.tags().is_empty() || and.object_size_greater_than().is_some() || and.object_size_less_than().is_some() {
                    return None;
                }
                return Some(and.prefix().unwrap_or_default().to_string());
            }
            Some(f.prefix().unwrap_or_default().to_string())
        }
        #[allow(deprecated)]
        None => Some(rule.prefix().unwrap_or_default().to_string()),
    }
}

fn covers(rule: &LifecycleRule, prefix: &str) -> bool {
    *rule.status() == ExpirationStatus::Enabled && rule_prefix(rule).is_some_and(|p| prefix.starts_with(&p))
}

/// Checks one bucket's settings; findings and notes go into `r`.
pub async fn check_bucket(client: &aws_sdk_s3::Client, bucket: &str, cfg: &AuditConfig, retention: Retention, r: &mut CheckResult) {
    // Public access: ACL.
    match client.get_bucket_acl().bucket(bucket).send().await {
        Ok(acl) => {
            for g in acl.grants() {
                let uri = g.grantee().and_then(|x| x.uri()).unwrap_or_default();
                if uri.ends_with("/AllUsers") || uri.ends_with("/AuthenticatedUsers") {
                    let perm = g.permission().map(Permission::as_str).unwrap_or("?");
                    r.finding(format!("bucket {bucket} is public: its ACL grants {perm} to {uri}"));
                }
            }
        }
        Err(e) => r.finding(format!(
            "bucket {bucket}: cannot read the ACL: {}",
            e.message().unwrap_or(&e.to_string())
        )),
    }
    // Public access: bucket policy.
    match client.get_bucket_policy().bucket(bucket).send().await {
        Ok(p) => {
            let public = match client.get_bucket_policy_status().bucket(bucket).send().await {
                Ok(s) => s.policy_status().and_then(|s| s.is_public()).unwrap_or(false),
                Err(_) => policy_allows_everyone(p.policy().unwrap_or_default()),
            };
            if public {
                r.finding(format!("bucket {bucket} is public: its bucket policy grants access to everyone"));
            }
        }
        Err(e) if e.code() == Some("NoSuchBucketPolicy") => {}
        Err(e) => r.finding(format!(
            "bucket {bucket}: cannot read the bucket policy: {}",
            e.message().unwrap_or(&e.to_string())
        )),
    }
    // Lifecycle rules.
    let rules: Option<Vec<LifecycleRule>> = match client.get_bucket_lifecycle_configuration().bucket(bucket).send().await {
        Ok(l) => Some(l.rules().to_vec()),
        Err(e) if e.code() == Some("NoSuchLifecycleConfiguration") => Some(Vec::new()),
        Err(e) => {
            r.finding(format!(
                "bucket {bucket}: cannot read the lifecycle rules: {}",
                e.message().unwrap_or(&e.to_string())
            ));
            None
        }
    };
    // Versioning.
    match client.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) => match v.status() {
            Some(s @ (BucketVersioningStatus::Enabled | BucketVersioningStatus::Suspended)) => {
                let status = s.as_str();
                for prefix in ["reads/", "keys/"] {
                    let ok = rules.as_deref().unwrap_or_default().iter().any(|rule| {
                        covers(rule, prefix)
                            && rule
                                .noncurrent_version_expiration()
                                .and_then(|n| n.noncurrent_days())
                                .is_some_and(|d| d >= 0 && (d as u32) <= cfg.max_noncurrent_days)
                    });
                    if !ok {
                        r.finding(format!(
                            "bucket {bucket}: versioning is {status} and no lifecycle rule expires noncurrent versions of {prefix} \
                             within {} day(s): deleted reads and destroyed day keys survive as old versions",
                            cfg.max_noncurrent_days
                        ));
                    }
                }
            }
            _ => r.note(format!("bucket {bucket}: versioning is off")),
        },
        Err(e) => r.finding(format!(
            "bucket {bucket}: cannot read the versioning status: {}",
            e.message().unwrap_or(&e.to_string())
        )),
    }
    // Lifecycle backstop.
    if let Some(rules) = &rules {
        let retention_days = i64::from(retention.retention_hours.div_ceil(24));
        let backstops: Vec<i32> = rules
            .iter()
            .filter(|rule| covers(rule, "reads/"))
            .filter_map(|rule| rule.expiration().and_then(|e| e.days()))
            .collect();
        match backstops.iter().min() {
            None => r.finding(format!(
                "bucket {bucket}: no lifecycle backstop: no enabled expiration rule covers reads/ (lethe init sets one)"
            )),
            Some(&d) if i64::from(d) < retention_days => r.finding(format!(
                "bucket {bucket}: a lifecycle rule expires reads/ after {d} day(s), before the retention period \
                 ({} h) ends: reads the agency must keep would be lost",
                retention.retention_hours
            )),
            Some(d) => r.note(format!("bucket {bucket}: lifecycle backstop expires reads/ after {d} day(s)")),
        }
    }
    // Object Lock for the ledger.
    if cfg.ledger_object_lock {
        match client.get_object_lock_configuration().bucket(bucket).send().await {
            Ok(o) => {
                let on = o
                    .object_lock_configuration()
                    .and_then(|c| c.object_lock_enabled())
                    .is_some_and(|e| *e == ObjectLockEnabled::Enabled);
                if !on {
                    r.finding(format!("bucket {bucket} holds the ledger but Object Lock is not enabled"));
                }
            }
            Err(e) => r.finding(format!(
                "bucket {bucket} holds the ledger but Object Lock is not enabled ({})",
                e.code().unwrap_or("unreadable")
            )),
        }
    }
}

/// Does a bucket policy document allow anything to principal `*`? (Used only where the server
/// has no policy-status API.)
pub fn policy_allows_everyone(doc: &str) -> bool {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(doc) else {
        return true; // unreadable: assume the worst
    };
    let stmts = match &v["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        s @ serde_json::Value::Object(_) => vec![s.clone()],
        _ => Vec::new(),
    };
    stmts.iter().any(|s| {
        let allow = s["Effect"].as_str() == Some("Allow");
        let p = &s["Principal"];
        let star =
            |x: &serde_json::Value| x.as_str() == Some("*") || x.as_array().is_some_and(|a| a.iter().any(|y| y.as_str() == Some("*")));
        allow && (star(p) || star(&p["AWS"]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_policy_detection() {
        assert!(policy_allows_everyone(
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:GetObject"}]}"#
        ));
        assert!(policy_allows_everyone(
            r#"{"Statement":{"Effect":"Allow","Principal":{"AWS":["*"]},"Action":"s3:GetObject"}}"#
        ));
        assert!(!policy_allows_everyone(
            r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::1:user/x"},"Action":"s3:GetObject"}]}"#
        ));
    }
}
