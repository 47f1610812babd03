//! TEMPORARY stand-in for `crate::policy::PolicySet` (being built on branch `policy`), with the
//! same fields and hash definition, so this branch builds until it lands. Remove when merged.

use std::path::{Path, PathBuf};

use ring::digest::{digest, SHA256};

use crate::config::ConfigError;
use crate::policy::{AccessPolicy, Decision, Principal, Registry, Retention};

/// Everything in the policy folder.
#[derive(Debug)]
pub struct PolicySet {
    /// The folder.
    pub dir: PathBuf,
    /// `retention.toml`.
    pub retention: Retention,
    /// `principals.toml`.
    pub principals: Registry,
    /// The Cedar policies.
    pub access: AccessPolicy,
    /// The policy-set hash (hex).
    pub hash: String,
    /// (name, sha256 hex), sorted by name.
    pub files: Vec<(String, String)>,
}

/// SHA-256 over `"{sha256}  {name}\n"` lines sorted by name.
pub fn set_hash(files: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort();
    let mut text = String::new();
    for (name, sha) in sorted {
        text.push_str(&format!("{sha}  {name}\n"));
    }
    hex::encode(digest(&SHA256, text.as_bytes()))
}

impl PolicySet {
    /// Loads the folder (flat; hidden files skipped).
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let io = |e: std::io::Error| ConfigError::new(dir.display().to_string(), e.to_string());
        let mut files = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io)? {
            let e = e.map_err(io)?;
            let name = e.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || !e.path().is_file() {
                continue;
            }
            let bytes = std::fs::read(e.path()).map_err(io)?;
            files.push((name, hex::encode(digest(&SHA256, &bytes))));
        }
        files.sort();
        Ok(Self {
            dir: dir.to_path_buf(),
            retention: Retention::load(dir)?,
            principals: Registry::load(dir)?,
            access: AccessPolicy::load(dir)?,
            hash: set_hash(&files),
            files,
        })
    }

    /// Who may search, over every registered principal.
    pub fn who_can_search(&self) -> Vec<(Principal, Decision)> {
        self.access.who_can_search(self.principals.iter())
    }
}

/// How a file differs from a baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// In the current set, not in the baseline.
    Added,
    /// In the baseline, not in the current set.
    Removed,
    /// In both, with different content.
    Modified,
}

impl Change {
    /// `added`, `removed` or `modified`.
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Modified => "modified",
        }
    }
}

/// The files that differ between a `baseline` and a `current` file list, sorted by name.
pub fn diff_files(baseline: &[(String, String)], current: &[(String, String)]) -> Vec<(String, Change)> {
    use std::collections::BTreeMap;
    let old: BTreeMap<&str, &str> = baseline.iter().map(|(n, h)| (n.as_str(), h.as_str())).collect();
    let new: BTreeMap<&str, &str> = current.iter().map(|(n, h)| (n.as_str(), h.as_str())).collect();
    let mut out = Vec::new();
    for (name, h) in &new {
        match old.get(name) {
            None => out.push((name.to_string(), Change::Added)),
            Some(o) if o != h => out.push((name.to_string(), Change::Modified)),
            Some(_) => {}
        }
    }
    out.extend(
        old.keys()
            .filter(|n| !new.contains_key(*n))
            .map(|n| (n.to_string(), Change::Removed)),
    );
    out.sort();
    out
}
