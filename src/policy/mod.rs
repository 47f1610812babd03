//! Policy: the files in `policies/` — retention, principals, access rules — loaded as one
//! [`PolicySet`] with a hash that the ledger records and the daily audit compares with the
//! approved baseline.
//!
//! | file | module | |
//! |---|---|---|
//! | `retention.toml` | [`retention`] | hours after capture a read is kept (default 720) |
//! | `principals.toml` | [`principals`] | who can call: agency, kind, level, jurisdiction, roles, token hash |
//! | `schema.cedarschema` | [`cedar`] | the Cedar schema every policy is validated against |
//! | `*.cedar` (`access.cedar`) | [`cedar`] | the access rules, default deny, each with an `@id` |
//!
//! Tokens never live here ([`tokens`]: the registry holds hashes; development tokens are in the
//! keys folder). A file in `policies/` whose name mentions a token is refused.

pub mod cedar;
pub mod principals;
pub mod retention;
pub mod tokens;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ring::digest::{digest, SHA256};

pub use cedar::{AccessPolicy, Action, Decision, RequestContext};
pub use principals::{AgencyKind, Level, Principal, Registry, Role};
pub use retention::Retention;
pub use tokens::{bearer_token, ensure_dev_tokens, token_for, Authenticator, DevTokens, Token, TokenError};

use crate::config::ConfigError;

/// Everything in the policy folder, loaded and validated together from one reading of the files
/// (so the hash is the hash of exactly what was parsed).
#[derive(Debug)]
pub struct PolicySet {
    /// The folder.
    pub dir: PathBuf,
    /// `retention.toml` (the default, 720 h, when absent).
    pub retention: Retention,
    /// `principals.toml`.
    pub principals: Registry,
    /// `schema.cedarschema` and `*.cedar`.
    pub access: AccessPolicy,
    /// The policy-set hash: see [`set_hash`]. 64 lowercase hex digits.
    pub hash: String,
    /// Every file of the folder with its SHA-256 (hex), sorted by name. Names are relative to
    /// the folder, `/`-separated. Every regular, non-hidden file counts, including ones lethe does
    /// not read (a README): anything an operator puts in the policy folder is policy.
    pub files: Vec<(String, String)>,
}

/// The policy-set hash of a file list: SHA-256 over the lines `"{sha256 hex}  {name}\n"` of every
/// file, sorted by name (byte order) — the `sha256sum` output format, so an operator can check it:
/// `cd policies && find . -type f ! -name '.*' | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum | sha256sum`.
///
/// Changing this definition changes every recorded hash: approved baselines would all drift.
pub fn set_hash(files: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort();
    let mut text = String::new();
    for (name, sha) in sorted {
        text.push_str(&format!("{sha}  {name}\n"));
    }
    hex::encode(digest(&SHA256, text.as_bytes()))
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

fn read_tree(root: &Path, rel: &str, out: &mut BTreeMap<String, Vec<u8>>) -> Result<(), ConfigError> {
    let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
    let io = |p: &Path, e: std::io::Error| ConfigError::new(p.display().to_string(), e.to_string());
    for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
        let entry = entry.map_err(|e| io(&dir, e))?;
        let path = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
            return Err(ConfigError::new(path.display().to_string(), "file name is not UTF-8"));
        };
        if name.starts_with('.') {
            continue;
        }
        let rel_name = if rel.is_empty() { name.clone() } else { format!("{rel}/{name}") };
        // Follow symlinks: what counts is the content lethe would read.
        let meta = std::fs::metadata(&path).map_err(|e| io(&path, e))?;
        if meta.is_dir() {
            read_tree(root, &rel_name, out)?;
        } else if meta.is_file() {
            if name.to_ascii_lowercase().contains("token") {
                return Err(ConfigError::new(
                    path.display().to_string(),
                    "token files never belong in the policy folder (the registry holds token hashes; \
                     development tokens live in the keys folder)",
                ));
            }
            if name.contains('\n') {
                return Err(ConfigError::new(path.display().to_string(), "file name contains a newline"));
            }
            out.insert(rel_name, std::fs::read(&path).map_err(|e| io(&path, e))?);
        }
    }
    Ok(())
}

impl PolicySet {
    /// Reads every file of `dir` once, hashes them, and loads retention, principals and the
    /// Cedar schema and policies from those same bytes. Any error names the file.
    pub fn load(dir: &Path) -> Result<Self, ConfigError> {
        let mut contents = BTreeMap::new();
        read_tree(dir, "", &mut contents)?;
        let files: Vec<(String, String)> = contents
            .iter()
            .map(|(name, bytes)| (name.clone(), hex::encode(digest(&SHA256, bytes))))
            .collect();
        let hash = set_hash(&files);
        let origin = |name: &str| dir.join(name).display().to_string();
        let text = |name: &str| -> Result<Option<&str>, ConfigError> {
            contents
                .get(name)
                .map(|b| std::str::from_utf8(b).map_err(|_| ConfigError::new(origin(name), "is not UTF-8 text")))
                .transpose()
        };
        let retention = match text(retention::FILE)? {
            Some(t) => Retention::parse(t, &origin(retention::FILE))?,
            None => Retention::default(),
        };
        let principals = match text(principals::FILE)? {
            Some(t) => Registry::parse(t, &origin(principals::FILE))?,
            None => {
                return Err(ConfigError::new(
                    origin(principals::FILE),
                    "missing: with no principals nobody can call",
                ))
            }
        };
        let schema = text(cedar::SCHEMA_FILE)?
            .ok_or_else(|| ConfigError::new(origin(cedar::SCHEMA_FILE), "missing: policies cannot be validated without it"))?;
        let mut sources = Vec::new();
        for name in contents.keys().filter(|n| n.ends_with(".cedar") && !n.contains('/')) {
            sources.push((origin(name), text(name)?.unwrap_or_default()));
        }
        let refs: Vec<(&str, &str)> = sources.iter().map(|(n, t)| (n.as_str(), *t)).collect();
        let access = AccessPolicy::from_sources((&origin(cedar::SCHEMA_FILE), schema), &refs)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            retention,
            principals,
            access,
            hash,
            files,
        })
    }

    /// The authenticator for this registry, with development tokens when given.
    pub fn authenticator(&self, dev: Option<&DevTokens>) -> Authenticator {
        Authenticator::new(&self.principals, dev)
    }

    /// [`AccessPolicy::authorize`].
    pub fn authorize(&self, principal: &Principal, action: Action, ctx: &RequestContext) -> Decision {
        self.access.authorize(principal, action, ctx)
    }

    /// [`AccessPolicy::who_can_search`] over every registered principal.
    pub fn who_can_search(&self) -> Vec<(Principal, Decision)> {
        self.access.who_can_search(self.principals.iter())
    }

    /// The files that differ from a baseline file list ([`diff_files`]).
    pub fn changed_files(&self, baseline: &[(String, String)]) -> Vec<(String, Change)> {
        diff_files(baseline, &self.files)
    }
}
