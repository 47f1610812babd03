//! Bearer tokens: authenticating a caller as a registered [`Principal`].
//!
//! The registry (`policies/principals.toml`) holds the SHA-256 of each principal's token, never
//! the token. A presented token is hashed once and compared with every known hash in constant
//! time, without stopping at the first match.
//!
//! Development tokens: the embedded default, on first start, generates a random token
//! (`lethe_` + 43 base64url characters = 32 random bytes) for every principal whose registry
//! entry pins no hash, and writes them as `{ "id": "token", ... }` to the development token file
//! (`{keys dir}/dev-tokens.json`, mode 0600, created once; see [`crate::secret_file`]). Later
//! starts reuse the file. A registry hash always wins: a principal with `token_sha256` is never
//! authenticated by a development token. A principal added to the registry after the file was
//! written gets no development token until the file is deleted (rewriting a secret that another
//! process may be reading is not worth the race in a development convenience).
//!
//! Tokens never reach logs: [`Token`], [`DevTokens`] and [`Authenticator`] redact them in `Debug`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::digest::{digest, SHA256};
use ring::rand::{SecureRandom, SystemRandom};

use super::principals::{Principal, Registry};
use crate::secret_file::{read_or_create_secret, read_secret, SecretFileError};

/// Every token lethe generates starts with this, so a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "lethe_";

const WHAT: &str = "development token";

/// A bearer token. `Debug` and `Display` are redacted; [`Token::expose`] is the only way out.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Wraps a token string.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Generates a fresh random token: `lethe_` + base64url(32 random bytes).
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).expect("the system random source failed");
        Self(format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        ))
    }

    /// The token itself: for an `authorization` header or a client's `--token`, never for a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// SHA-256 of the token's UTF-8 bytes: what the registry's `token_sha256` holds.
    pub fn sha256(&self) -> [u8; 32] {
        sha256(&self.0)
    }

    /// [`Token::sha256`] as 64 lowercase hex digits, ready for `principals.toml`.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256())
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

fn sha256(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// The token of an HTTP/gRPC `authorization` header value (`Bearer <token>`, scheme
/// case-insensitive), or `None` when it is not a bearer credential.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Errors about token files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The file could not be read or created, or its permissions are too open.
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
    /// The file is not a JSON object of id → token strings.
    #[error("development token file {path} is malformed: {reason}")]
    Malformed {
        /// Where.
        path: PathBuf,
        /// What is wrong (never the token).
        reason: String,
    },
    /// The file has no token for this principal.
    #[error("development token file {path} has no token for '{id}' (it has: {})", known.join(", "))]
    UnknownPrincipal {
        /// The principal asked for.
        id: String,
        /// Where.
        path: PathBuf,
        /// The ids it has.
        known: Vec<String>,
    },
}

/// The development tokens of the embedded default.
#[derive(Clone)]
pub struct DevTokens {
    path: PathBuf,
    tokens: BTreeMap<String, Token>,
    created: bool,
}

impl fmt::Debug for DevTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevTokens")
            .field("path", &self.path)
            .field("ids", &self.tokens.keys().collect::<Vec<_>>())
            .field("created", &self.created)
            .finish()
    }
}

impl DevTokens {
    /// The token of principal `id`.
    pub fn get(&self, id: &str) -> Option<&Token> {
        self.tokens.get(id)
    }

    /// The principal ids that have a token in the file.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.tokens.keys().map(String::as_str)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Was the file created by this call (first start)?
    pub fn created(&self) -> bool {
        self.created
    }

    fn parse(path: &Path, bytes: &[u8], created: bool) -> Result<Self, TokenError> {
        let malformed = |reason: String| TokenError::Malformed { path: path.into(), reason };
        // serde_json's messages can quote the input; report only the category, so a malformed
        // file never echoes a token.
        let map: BTreeMap<String, String> = serde_json::from_slice(bytes)
            .map_err(|e| malformed(format!("expected {{ \"id\": \"token\", ... }} ({})", json_problem(&e))))?;
        let mut tokens = BTreeMap::new();
        for (id, token) in map {
            if token.trim().len() < 16 {
                return Err(malformed(format!("the token of '{id}' is too short")));
            }
            tokens.insert(id, Token(token));
        }
        Ok(Self {
            path: path.into(),
            tokens,
            created,
        })
    }
}

/// What is wrong with a JSON document, without quoting any of it.
fn json_problem(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "not an object of strings",
        serde_json::error::Category::Eof => "truncated",
    }
}

/// Reads the development token file, creating it on first call (mode 0600) with a fresh token
/// for every principal of `registry` that pins no `token_sha256`. Later calls reuse the file.
pub fn ensure_dev_tokens(registry: &Registry, path: &Path) -> Result<DevTokens, TokenError> {
    let (bytes, created) = read_or_create_secret(path, WHAT, || {
        let tokens: BTreeMap<&str, String> = registry
            .iter()
            .filter(|p| p.token_sha256.is_none())
            .map(|p| (p.id.as_str(), Token::generate().0))
            .collect();
        serde_json::to_vec_pretty(&tokens).expect("a map of strings serializes")
    })?;
    let dev = DevTokens::parse(path, &bytes, created)?;
    if created {
        tracing::info!(path = %path.display(), principals = dev.tokens.len(), "wrote development tokens (mode 0600)");
    }
    let missing: Vec<&str> = registry
        .iter()
        .filter(|p| p.token_sha256.is_none() && !dev.tokens.contains_key(&p.id))
        .map(|p| p.id.as_str())
        .collect();
    if !missing.is_empty() {
        tracing::warn!(
            path = %path.display(),
            principals = %missing.join(","),
            "principals without a registry token hash have no development token; delete the file to regenerate it"
        );
    }
    Ok(dev)
}

/// Reads an existing development token file (permissions checked: 0600).
pub fn read_dev_tokens(path: &Path) -> Result<DevTokens, TokenError> {
    let bytes = read_secret(path, WHAT)?;
    DevTokens::parse(path, &bytes, false)
}

/// The development token of principal `id` (the client's `--as ID`).
pub fn token_for(id: &str, path: &Path) -> Result<Token, TokenError> {
    let dev = read_dev_tokens(path)?;
    dev.get(id).cloned().ok_or_else(|| TokenError::UnknownPrincipal {
        id: id.into(),
        path: path.into(),
        known: dev.tokens.keys().cloned().collect(),
    })
}

/// Maps a bearer token to its principal.
#[derive(Clone)]
pub struct Authenticator {
    /// (token hash, principal). At most one entry per principal.
    entries: Vec<([u8; 32], Principal)>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("principals", &self.entries.iter().map(|(_, p)| p.id.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl Authenticator {
    /// Accepts each principal's registry hash; for a principal with no registry hash, its token
    /// in `dev` (when given). Development tokens for ids not in the registry are ignored.
    pub fn new(registry: &Registry, dev: Option<&DevTokens>) -> Self {
        let entries = registry
            .iter()
            .filter_map(|p| {
                let hash = match p.token_sha256 {
                    Some(h) => h,
                    None => dev?.get(&p.id)?.sha256(),
                };
                Some((hash, p.clone()))
            })
            .collect();
        Self { entries }
    }

    /// The principal whose token this is, or `None`. Compares the token's SHA-256 with every
    /// known hash in constant time and visits all of them whatever matches.
    pub fn authenticate(&self, token: &str) -> Option<&Principal> {
        let presented = sha256(token);
        let mut found = None;
        for (hash, principal) in &self.entries {
            let diff = hash.iter().zip(presented.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if std::hint::black_box(diff) == 0 {
                found = Some(principal);
            }
        }
        found
    }

    /// How many principals can authenticate.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nobody can authenticate.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn registry() -> Registry {
        Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("policies")).unwrap()
    }

    #[test]
    fn a_correct_token_authenticates_and_a_wrong_one_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("keys/dev-tokens.json");
        let reg = registry();
        let dev = ensure_dev_tokens(&reg, &path).unwrap();
        let auth = Authenticator::new(&reg, Some(&dev));
        assert_eq!(auth.len(), reg.len());
        for p in reg.iter() {
            let t = dev.get(&p.id).unwrap();
            assert!(t.expose().starts_with(TOKEN_PREFIX) && t.expose().len() == TOKEN_PREFIX.len() + 43);
            assert_eq!(auth.authenticate(t.expose()).map(|p| p.id.as_str()), Some(p.id.as_str()));
        }
        let city = dev.get("city-pd").unwrap().expose().to_owned();
        assert!(auth.authenticate(&format!("{city}x")).is_none());
        assert!(auth.authenticate(&city[..city.len() - 1]).is_none());
        assert!(auth.authenticate("").is_none());
        assert!(auth.authenticate(&city.to_uppercase()).is_none());
        assert!(
            Authenticator::new(&reg, None).authenticate(&city).is_none(),
            "no dev tokens, no registry hash: nobody"
        );
    }

    #[test]
    fn the_dev_token_file_is_created_0600_once_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("dev-tokens.json");
        let reg = registry();
        let first = ensure_dev_tokens(&reg, &path).unwrap();
        assert!(first.created());
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let second = ensure_dev_tokens(&reg, &path).unwrap();
        assert!(!second.created());
        for id in first.ids() {
            assert_eq!(first.get(id), second.get(id));
        }
        assert_eq!(token_for("state-patrol", &path).unwrap(), *first.get("state-patrol").unwrap());
        match token_for("nobody", &path).unwrap_err() {
            TokenError::UnknownPrincipal { known, .. } => assert!(known.contains(&"city-pd".to_string())),
            e => panic!("{e}"),
        }
        // Tokens are distinct.
        let all: std::collections::BTreeSet<_> = first.ids().map(|id| first.get(id).unwrap().expose()).collect();
        assert_eq!(all.len(), reg.len());
        // A file others can read is refused rather than trusted.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            token_for("city-pd", &path),
            Err(TokenError::SecretFile(SecretFileError::Permissions { .. }))
        ));
    }

    #[test]
    fn a_registry_hash_wins_over_the_dev_token() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("dev-tokens.json");
        let reg = registry();
        // The file was written before the operator pinned a hash for city-pd.
        let dev = ensure_dev_tokens(&reg, &path).unwrap();
        let old = dev.get("city-pd").unwrap().clone();
        let pinned = Token::generate();
        let reg: Registry = reg
            .iter()
            .cloned()
            .map(|mut p| {
                if p.id == "city-pd" {
                    p.token_sha256 = Some(pinned.sha256());
                }
                p
            })
            .collect();
        let auth = Authenticator::new(&reg, Some(&ensure_dev_tokens(&reg, &path).unwrap()));
        assert!(
            auth.authenticate(old.expose()).is_none(),
            "the dev token of a pinned principal is ignored"
        );
        assert_eq!(auth.authenticate(pinned.expose()).unwrap().id, "city-pd");
        assert_eq!(auth.authenticate(dev.get("county-so").unwrap().expose()).unwrap().id, "county-so");
        // A fresh file for a registry with a pinned principal holds no token for it.
        let fresh = ensure_dev_tokens(&reg, &tmp.path().join("other.json")).unwrap();
        assert!(fresh.get("city-pd").is_none());
    }

    #[test]
    fn tokens_never_show_in_debug_or_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("dev-tokens.json");
        let reg = registry();
        let dev = ensure_dev_tokens(&reg, &path).unwrap();
        let secret = dev.get("city-pd").unwrap().expose().to_owned();
        let auth = Authenticator::new(&reg, Some(&dev));
        for shown in [
            format!("{dev:?}"),
            format!("{:?}", dev.get("city-pd").unwrap()),
            format!("{}", dev.get("city-pd").unwrap()),
            format!("{auth:?}"),
        ] {
            assert!(!shown.contains(&secret) && !shown.contains(TOKEN_PREFIX), "{shown}");
        }
        // A malformed file's error does not quote it.
        std::fs::write(tmp.path().join("bad.json"), format!("{{\"city-pd\": [\"{secret}\"]}}")).unwrap();
        std::fs::set_permissions(tmp.path().join("bad.json"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_dev_tokens(&tmp.path().join("bad.json")).unwrap_err().to_string();
        assert!(!e.contains(&secret), "{e}");
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer lethe_abc"), Some("lethe_abc"));
        assert_eq!(bearer_token("bearer  lethe_abc "), Some("lethe_abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("lethe_abc"), None);
    }
}
