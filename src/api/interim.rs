//! Stand-ins for the principal registry, the Cedar access policy and the ledger, used until the
//! `policy/` and `ledger/` modules are wired in behind the same [`super::ports`] traits.
//!
//! They implement the same contracts, in a simpler way:
//! - [`DevPrincipals`]: the seven example principals, with tokens created on first start and
//!   written to the development token file (mode 0600); tokens are kept only as SHA-256 hashes.
//! - [`CaliforniaRule`]: the shipped California rule, default-deny.
//! - [`StoreLedger`]: JSON records written with create-only puts under a prefix of the object
//!   store, one object per record; durable on return. No Merkle tree or signatures: that is the
//!   ledger module's job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use ring::rand::{SecureRandom, SystemRandom};

use super::ports::{AuditLedger, Authenticator, Decision, LedgerError, LedgerRecord, Principal, Role, SearchContext, SearchPolicy};
use crate::secret_file::{self, SecretFileError};

/// The purposes the California example allows.
pub const ALLOWED_PURPOSES: [&str; 5] = ["investigation", "stolen-vehicle", "missing-person", "violent-crime", "amber-alert"];

fn p(id: &str, agency: &str, kind: &str, level: &str, jurisdiction: &str, roles: &[Role]) -> Principal {
    Principal {
        id: id.into(),
        agency: agency.into(),
        agency_kind: kind.into(),
        level: level.into(),
        jurisdiction: jurisdiction.into(),
        roles: roles.iter().copied().collect(),
    }
}

/// The example principals shipped with lethe.
pub fn example_principals() -> Vec<Principal> {
    use Role::*;
    vec![
        p("city-pd", "City Police Department", "public", "local", "CA", &[Search]),
        p("county-so", "County Sheriff's Office", "public", "local", "CA", &[Search]),
        p("state-patrol", "State Highway Patrol", "public", "state", "CA", &[Search]),
        p("nv-city-pd", "Nevada City Police Department", "public", "local", "NV", &[Search]),
        p("federal-agency", "Federal Agency", "public", "federal", "US", &[Search]),
        p(
            "ingest-gateway",
            "City Police Department camera gateway",
            "public",
            "local",
            "CA",
            &[Ingest],
        ),
        p("auditor", "City Auditor", "public", "local", "CA", &[Audit]),
    ]
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, b).as_ref())
}

fn new_token() -> String {
    let mut b = [0u8; 32];
    SystemRandom::new().fill(&mut b).expect("OS random");
    format!("lethe_dev_{}", hex::encode(b))
}

/// The example principals, authenticated by development tokens.
#[derive(Clone)]
pub struct DevPrincipals {
    by_hash: Arc<HashMap<String, Principal>>,
}

impl std::fmt::Debug for DevPrincipals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevPrincipals({} principals)", self.by_hash.len())
    }
}

impl DevPrincipals {
    /// Builds the registry from `{principal id: token}`; ids that are not example principals are
    /// ignored.
    pub fn from_tokens(tokens: &BTreeMap<String, String>) -> Self {
        let by_hash = example_principals()
            .into_iter()
            .filter_map(|p| tokens.get(&p.id).map(|t| (sha256_hex(t.as_bytes()), p)))
            .collect();
        Self {
            by_hash: Arc::new(by_hash),
        }
    }

    /// Fresh random tokens for every example principal (tests). Returns the registry and tokens.
    pub fn generate() -> (Self, BTreeMap<String, String>) {
        let tokens: BTreeMap<String, String> = example_principals().into_iter().map(|p| (p.id, new_token())).collect();
        (Self::from_tokens(&tokens), tokens)
    }

    /// Loads the development token file (`{"tokens": {id: token}}`), creating it with fresh
    /// tokens (mode 0600) on first start. Returns the registry and whether the file was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), SecretFileError> {
        const WHAT: &str = "development token file";
        let (bytes, created) = secret_file::read_or_create_secret(path, WHAT, || {
            let tokens: BTreeMap<String, String> = example_principals().into_iter().map(|p| (p.id, new_token())).collect();
            let mut v = serde_json::to_vec_pretty(&serde_json::json!({ "tokens": tokens })).expect("serializes");
            v.push(b'\n');
            v
        })?;
        let tokens = parse_token_file(&bytes).map_err(|reason| SecretFileError::Malformed {
            what: WHAT,
            path: path.into(),
            reason,
        })?;
        Ok((Self::from_tokens(&tokens), created))
    }
}

/// Parses a development token file: `{"tokens": {id: token}}`, or a plain `{id: token}` map, or
/// `[{"id": …, "token": …}]`.
pub fn parse_token_file(bytes: &[u8]) -> Result<BTreeMap<String, String>, String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let v = v.get("tokens").cloned().unwrap_or(v);
    let mut out = BTreeMap::new();
    match v {
        serde_json::Value::Object(m) => {
            for (k, t) in m {
                if let Some(t) = t.as_str().or_else(|| t.get("token").and_then(|x| x.as_str())) {
                    out.insert(k, t.to_string());
                }
            }
        }
        serde_json::Value::Array(a) => {
            for e in a {
                let id = e.get("id").or_else(|| e.get("principal")).and_then(|x| x.as_str());
                if let (Some(id), Some(t)) = (id, e.get("token").and_then(|x| x.as_str())) {
                    out.insert(id.to_string(), t.to_string());
                }
            }
        }
        _ => return Err("expected an object of principal id → token".into()),
    }
    Ok(out)
}

impl Authenticator for DevPrincipals {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        self.by_hash.get(&sha256_hex(token.as_bytes())).cloned()
    }
}

/// The California example rule: only California public, non-federal agencies may search, and
/// only with a case number and an allowed purpose. Everything else is denied.
#[derive(Debug, Clone, Default)]
pub struct CaliforniaRule;

impl SearchPolicy for CaliforniaRule {
    fn authorize_search(&self, p: &Principal, ctx: &SearchContext) -> Decision {
        let deny = |rule: &str, reason: String| Decision {
            allowed: false,
            rule: rule.into(),
            reason,
        };
        if !p.has(Role::Search) {
            return deny("role-search", format!("principal {} does not hold the search role", p.id));
        }
        if p.level == "federal" {
            return deny("ca-no-federal", format!("{} is a federal agency", p.agency));
        }
        if p.jurisdiction != "CA" {
            return deny(
                "ca-agencies-only",
                format!("{} is outside California (jurisdiction {})", p.agency, p.jurisdiction),
            );
        }
        if p.agency_kind != "public" {
            return deny("ca-public-agencies-only", format!("{} is not a public agency", p.agency));
        }
        if ctx.case_number.trim().is_empty() {
            return deny("ca-case-number-required", "a search needs a case number".into());
        }
        if !ALLOWED_PURPOSES.contains(&ctx.purpose.as_str()) {
            return deny(
                "ca-purpose-allowed",
                format!("purpose '{}' is not one of {}", ctx.purpose, ALLOWED_PURPOSES.join(", ")),
            );
        }
        Decision {
            allowed: true,
            rule: "ca-public-agencies-search".into(),
            reason: "California public agency, allowed purpose, case number given".into(),
        }
    }
}

/// An append-only log of JSON records in the object store, one create-only object per record.
#[derive(Debug, Clone)]
pub struct StoreLedger {
    store: Arc<dyn ObjectStore>,
    prefix: String,
    next: Arc<tokio::sync::Mutex<Option<u64>>>,
}

impl StoreLedger {
    /// A ledger under `prefix` (e.g. `ledger-interim`).
    pub fn new(store: Arc<dyn ObjectStore>, prefix: &str) -> Self {
        Self {
            store,
            prefix: prefix.trim_end_matches('/').to_string(),
            next: Arc::new(tokio::sync::Mutex::new(None)),
        }
    }

    fn path(&self, seq: u64) -> ObjectPath {
        ObjectPath::from(format!("{}/{seq:020}", self.prefix))
    }

    async fn scan_next(&self) -> Result<u64, LedgerError> {
        let prefix = ObjectPath::from(self.prefix.as_str());
        let metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
        Ok(metas
            .iter()
            .filter_map(|m| m.location.filename().and_then(|f| f.parse::<u64>().ok()))
            .max()
            .map_or(0, |m| m + 1))
    }

    /// Every record, in order (tests and tools).
    pub async fn records(&self) -> Result<Vec<(u64, LedgerRecord)>, LedgerError> {
        let prefix = ObjectPath::from(self.prefix.as_str());
        let mut metas: Vec<_> = self
            .store
            .list(Some(&prefix))
            .try_collect()
            .await
            .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut out = Vec::new();
        for m in metas {
            let Some(seq) = m.location.filename().and_then(|f| f.parse::<u64>().ok()) else {
                continue;
            };
            let body = self
                .store
                .get(&m.location)
                .await
                .map_err(|e| LedgerError::Unavailable(e.to_string()))?
                .bytes()
                .await
                .map_err(|e| LedgerError::Unavailable(e.to_string()))?;
            let rec: LedgerRecord = serde_json::from_slice(&body).map_err(|e| LedgerError::Internal(format!("entry {seq}: {e}")))?;
            out.push((seq, rec));
        }
        Ok(out)
    }
}

#[async_trait]
impl AuditLedger for StoreLedger {
    async fn append(&self, record: LedgerRecord) -> Result<u64, LedgerError> {
        let body = serde_json::to_vec(&record).map_err(|e| LedgerError::Internal(e.to_string()))?;
        let mut next = self.next.lock().await;
        let mut seq = match *next {
            Some(n) => n,
            None => self.scan_next().await?,
        };
        loop {
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self.store.put_opts(&self.path(seq), PutPayload::from(body.clone()), opts).await {
                Ok(_) => {
                    *next = Some(seq + 1);
                    return Ok(seq);
                }
                // Another process wrote entry `seq`: take the next one.
                Err(object_store::Error::AlreadyExists { .. }) => seq += 1,
                Err(e) => {
                    *next = None;
                    return Err(LedgerError::Unavailable(e.to_string()));
                }
            }
        }
    }
}

/// The roles as a set (helper for tests and registries).
pub fn roles(r: &[Role]) -> BTreeSet<Role> {
    r.iter().copied().collect()
}
