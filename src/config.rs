//! Configuration: `lethe.toml`, overridden by `LETHE_*` environment variables.
//!
//! Every field has a safe default, so `lethe serve` runs with no file at all: a local directory
//! store in `./lethe-data`, keys in `./lethe-keys`, policies in `./policies`. S3 credentials come
//! only from the standard `AWS_*` variables (never from this file). See `lethe.toml.example` for
//! every field documented.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configuration error: which setting, and why. Shown as one line at start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration: {setting}: {reason}")]
pub struct ConfigError {
    /// The setting (a `lethe.toml` field or an environment variable).
    pub setting: String,
    /// What is wrong.
    pub reason: String,
}

impl ConfigError {
    /// A new error.
    pub fn new(setting: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            setting: setting.into(),
            reason: reason.into(),
        }
    }
}

/// Which object store holds the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// A local directory (the embedded default).
    Local,
    /// An S3-compatible server (MinIO, Ceph RGW, AWS S3).
    S3,
    /// Memory only: everything is lost at exit. For tests and demonstrations.
    Memory,
}

/// `[store]`: where reads, keys and the ledger live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `local`, `s3` or `memory`. Env: `LETHE_STORE`.
    pub kind: StoreKind,
    /// Local directory for `kind = "local"`. Env: `LETHE_DATA_DIR`. Default `./lethe-data`.
    pub path: PathBuf,
    /// Flush every local write to disk before acknowledging it (durability across power loss).
    /// Env: `LETHE_FSYNC`. Default true.
    pub fsync: bool,
    /// Bucket for `kind = "s3"`. Env: `LETHE_S3_BUCKET`.
    pub bucket: Option<String>,
    /// Endpoint URL for S3-compatible servers (MinIO: `http://minio:9000`); unset for AWS.
    /// Env: `LETHE_S3_ENDPOINT` (or `AWS_ENDPOINT_URL`).
    pub endpoint: Option<String>,
    /// Region. Env: `LETHE_S3_REGION` or `AWS_REGION`. Default `us-east-1`.
    pub region: Option<String>,
    /// Allow plain-HTTP endpoints (local servers only). Env: `LETHE_S3_ALLOW_HTTP`. Default false.
    pub allow_http: bool,
    /// Virtual-hosted-style addressing (AWS); path style otherwise (MinIO, Ceph). Default false.
    pub virtual_hosted_style: bool,
    /// Width of the blind index in bits, 4–24, for days created from now on. Fewer bits mix more
    /// vehicles in a bucket (less leakage, more decryption per search). Env:
    /// `LETHE_BLIND_INDEX_BITS`. Default 12.
    pub blind_index_bits: u8,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            kind: StoreKind::Local,
            path: PathBuf::from("./lethe-data"),
            fsync: true,
            bucket: None,
            endpoint: None,
            region: None,
            allow_http: false,
            virtual_hosted_style: false,
            blind_index_bits: 12,
        }
    }
}

/// `[keys]`: key files, kept outside the store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Directory of the key files (created mode 0700). Env: `LETHE_KEYS_DIR`. Default `./lethe-keys`.
    pub dir: PathBuf,
    /// The key-encryption key file; default `{dir}/kek`. Env: `LETHE_KEK_FILE`.
    pub kek_file: Option<PathBuf>,
    /// Create missing key files (the KEK, the ledger signing key, the audit key) on start.
    /// Set false in production, where keys are provisioned. Env: `LETHE_CREATE_KEYS`. Default true.
    pub create_missing: bool,
}

impl Default for KeysConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./lethe-keys"),
            kek_file: None,
            create_missing: true,
        }
    }
}

impl KeysConfig {
    /// The KEK file.
    pub fn kek_path(&self) -> PathBuf {
        self.kek_file.clone().unwrap_or_else(|| self.dir.join("kek"))
    }
    /// The ledger signing key (Ed25519, PKCS#8).
    pub fn ledger_signing_key_path(&self) -> PathBuf {
        self.dir.join("ledger-signing.key")
    }
    /// The ledger verifier (public) key, for auditors.
    pub fn ledger_public_key_path(&self) -> PathBuf {
        self.dir.join("ledger.pub")
    }
    /// The audit key: searched plates in access records are encrypted under it.
    pub fn audit_key_path(&self) -> PathBuf {
        self.dir.join("audit.key")
    }
    /// The development token file written by the embedded default.
    pub fn dev_tokens_path(&self) -> PathBuf {
        self.dir.join("dev-tokens.json")
    }
}

/// `[server]`: the gRPC server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Listen address. Env: `LETHE_LISTEN`. Default `127.0.0.1:50051`.
    pub listen: String,
    /// Largest gRPC message accepted, in bytes. Env: `LETHE_MAX_MESSAGE_BYTES`. Default 16 MiB.
    pub max_message_bytes: usize,
    /// Largest image crop accepted, in bytes. Env: `LETHE_MAX_IMAGE_BYTES`. Default 8 MiB.
    pub max_image_bytes: usize,
    /// How far in the future a capture time may be, in seconds (camera clock skew). Default 300.
    pub future_skew_secs: i64,
    /// Bytes of whole results (metadata and images) one search holds between finding its reads and
    /// sending them; the reads past it are fetched again from the store as they are sent, so a
    /// search's memory does not grow with its size. 0 re-fetches every result.
    /// Env: `LETHE_SEARCH_BUFFER_BYTES`. Default 16 MiB.
    pub search_buffer_bytes: usize,
    /// Object puts in flight across the whole server (every ingest stream and batch together), so
    /// that many clients cannot pile more requests on the store than it serves. Keep it under the
    /// S3 server's own limit (radosgw's `rgw_max_concurrent_requests` is 1,024 by default).
    /// Env: `LETHE_MAX_INGEST_PUTS`. Default 256.
    pub max_ingest_puts: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:50051".into(),
            max_message_bytes: 16 << 20,
            max_image_bytes: 8 << 20,
            future_skew_secs: 300,
            search_buffer_bytes: 16 << 20,
            max_ingest_puts: 256,
        }
    }
}

/// `[ledger]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LedgerConfig {
    /// The checkpoint origin line: names this log. Env: `LETHE_LEDGER_ORIGIN`.
    pub origin: String,
    /// Key prefix of the ledger in the store. Default `ledger`.
    pub prefix: String,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            origin: "lethe.local/ledger".into(),
            prefix: "ledger".into(),
        }
    }
}

/// `[audit]`: what the daily audit (`lethe audit`) holds the deployment to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Jurisdictions (US state codes) whose agencies may search; any principal outside them that
    /// the policy lets search is a finding. Env: `LETHE_AUDIT_JURISDICTIONS` (comma-separated).
    /// Default `["CA"]`.
    pub approved_jurisdictions: Vec<String>,
    /// How often the sweeper runs, in hours: a read may be this much past retention before the
    /// audit reports it. Env: `LETHE_SWEEP_INTERVAL_HOURS`. Default 1 (hourly cron).
    pub sweep_interval_hours: u32,
    /// On a versioned S3 bucket, the most days a noncurrent object version may be kept before a
    /// lifecycle rule expires it (old versions escape deletion). Default 1.
    pub max_noncurrent_days: u32,
    /// The bucket holding the ledger must have S3 Object Lock enabled. Default false.
    pub ledger_object_lock: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            approved_jurisdictions: vec!["CA".into()],
            sweep_interval_hours: 1,
            max_noncurrent_days: 1,
            ledger_object_lock: false,
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[store]`.
    pub store: StoreConfig,
    /// `[keys]`.
    pub keys: KeysConfig,
    /// `[server]`.
    pub server: ServerConfig,
    /// `[ledger]`.
    pub ledger: LedgerConfig,
    /// `[audit]`.
    pub audit: AuditConfig,
    /// The policy folder (retention, principals, Cedar policies). Env: `LETHE_POLICIES_DIR`.
    /// Default `./policies`.
    pub policies_dir: Option<PathBuf>,
}

/// Every environment variable lethe reads for its settings (see [`Config::apply_env`]).
pub const ENV_VARS: &[&str] = &[
    "LETHE_CONFIG",
    "LETHE_STORE",
    "LETHE_DATA_DIR",
    "LETHE_FSYNC",
    "LETHE_S3_BUCKET",
    "LETHE_S3_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "LETHE_S3_REGION",
    "AWS_REGION",
    "LETHE_S3_ALLOW_HTTP",
    "LETHE_BLIND_INDEX_BITS",
    "LETHE_KEYS_DIR",
    "LETHE_KEK_FILE",
    "LETHE_CREATE_KEYS",
    "LETHE_LISTEN",
    "LETHE_MAX_MESSAGE_BYTES",
    "LETHE_MAX_IMAGE_BYTES",
    "LETHE_SEARCH_BUFFER_BYTES",
    "LETHE_MAX_INGEST_PUTS",
    "LETHE_LEDGER_ORIGIN",
    "LETHE_POLICIES_DIR",
    "LETHE_AUDIT_JURISDICTIONS",
    "LETHE_SWEEP_INTERVAL_HOURS",
];

/// Credentials variables read by the S3 client (never by lethe's own settings).
pub const AWS_CREDENTIAL_VARS: &[&str] = &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

fn parse_bool(setting: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(setting, format!("'{v}' is not true or false"))),
    }
}

fn parse_num<T: std::str::FromStr>(setting: &str, v: &str) -> Result<T, ConfigError> {
    v.trim()
        .parse()
        .map_err(|_| ConfigError::new(setting, format!("'{v}' is not a number")))
}

impl Config {
    /// Loads `path` (which must exist) or, with `None`, `./lethe.toml` if present, then applies the
    /// process environment (see [`Config::apply_env`]) and validates.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let env_path = std::env::var_os("LETHE_CONFIG").map(PathBuf::from);
        let path = path.map(Path::to_path_buf).or(env_path);
        let mut cfg = match path {
            Some(p) => Self::from_file(&p)?,
            None if Path::new("lethe.toml").exists() => Self::from_file(Path::new("lethe.toml"))?,
            None => Self::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses one TOML file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|e| ConfigError::new("--config", format!("cannot read {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| ConfigError::new(path.display().to_string(), e.message().to_string()))
    }

    /// Applies the `LETHE_*` overrides. The only place the environment is read for settings:
    ///
    /// | variable | setting |
    /// |---|---|
    /// | `LETHE_STORE` | `store.kind` |
    /// | `LETHE_DATA_DIR` | `store.path` |
    /// | `LETHE_FSYNC` | `store.fsync` |
    /// | `LETHE_S3_BUCKET` | `store.bucket` |
    /// | `LETHE_S3_ENDPOINT`, `AWS_ENDPOINT_URL` | `store.endpoint` |
    /// | `LETHE_S3_REGION`, `AWS_REGION` | `store.region` |
    /// | `LETHE_S3_ALLOW_HTTP` | `store.allow_http` |
    /// | `LETHE_BLIND_INDEX_BITS` | `store.blind_index_bits` |
    /// | `LETHE_KEYS_DIR` | `keys.dir` |
    /// | `LETHE_KEK_FILE` | `keys.kek_file` |
    /// | `LETHE_CREATE_KEYS` | `keys.create_missing` |
    /// | `LETHE_LISTEN` | `server.listen` |
    /// | `LETHE_MAX_MESSAGE_BYTES` | `server.max_message_bytes` |
    /// | `LETHE_MAX_IMAGE_BYTES` | `server.max_image_bytes` |
    /// | `LETHE_SEARCH_BUFFER_BYTES` | `server.search_buffer_bytes` |
    /// | `LETHE_MAX_INGEST_PUTS` | `server.max_ingest_puts` |
    /// | `LETHE_LEDGER_ORIGIN` | `ledger.origin` |
    /// | `LETHE_POLICIES_DIR` | `policies_dir` |
    /// | `LETHE_AUDIT_JURISDICTIONS` | `audit.approved_jurisdictions` |
    /// | `LETHE_SWEEP_INTERVAL_HOURS` | `audit.sweep_interval_hours` |
    ///
    /// S3 credentials are read by the S3 client from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`
    /// and `AWS_SESSION_TOKEN`.
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        if let Some(v) = env("LETHE_STORE") {
            self.store.kind = match v.trim().to_ascii_lowercase().as_str() {
                "local" => StoreKind::Local,
                "s3" => StoreKind::S3,
                "memory" => StoreKind::Memory,
                _ => return Err(ConfigError::new("LETHE_STORE", format!("'{v}' is not local, s3 or memory"))),
            };
        }
        if let Some(v) = env("LETHE_DATA_DIR") {
            self.store.path = v.into();
        }
        if let Some(v) = env("LETHE_FSYNC") {
            self.store.fsync = parse_bool("LETHE_FSYNC", &v)?;
        }
        if let Some(v) = env("LETHE_S3_BUCKET") {
            self.store.bucket = Some(v);
        }
        if let Some(v) = env("LETHE_S3_ENDPOINT").or_else(|| env("AWS_ENDPOINT_URL")) {
            self.store.endpoint = Some(v);
        }
        if let Some(v) = env("LETHE_S3_REGION").or_else(|| env("AWS_REGION")) {
            self.store.region = Some(v);
        }
        if let Some(v) = env("LETHE_S3_ALLOW_HTTP") {
            self.store.allow_http = parse_bool("LETHE_S3_ALLOW_HTTP", &v)?;
        }
        if let Some(v) = env("LETHE_BLIND_INDEX_BITS") {
            self.store.blind_index_bits = parse_num("LETHE_BLIND_INDEX_BITS", &v)?;
        }
        if let Some(v) = env("LETHE_KEYS_DIR") {
            self.keys.dir = v.into();
        }
        if let Some(v) = env("LETHE_KEK_FILE") {
            self.keys.kek_file = Some(v.into());
        }
        if let Some(v) = env("LETHE_CREATE_KEYS") {
            self.keys.create_missing = parse_bool("LETHE_CREATE_KEYS", &v)?;
        }
        if let Some(v) = env("LETHE_LISTEN") {
            self.server.listen = v;
        }
        if let Some(v) = env("LETHE_MAX_MESSAGE_BYTES") {
            self.server.max_message_bytes = parse_num("LETHE_MAX_MESSAGE_BYTES", &v)?;
        }
        if let Some(v) = env("LETHE_MAX_IMAGE_BYTES") {
            self.server.max_image_bytes = parse_num("LETHE_MAX_IMAGE_BYTES", &v)?;
        }
        if let Some(v) = env("LETHE_SEARCH_BUFFER_BYTES") {
            self.server.search_buffer_bytes = parse_num("LETHE_SEARCH_BUFFER_BYTES", &v)?;
        }
        if let Some(v) = env("LETHE_MAX_INGEST_PUTS") {
            self.server.max_ingest_puts = parse_num("LETHE_MAX_INGEST_PUTS", &v)?;
        }
        if let Some(v) = env("LETHE_LEDGER_ORIGIN") {
            self.ledger.origin = v;
        }
        if let Some(v) = env("LETHE_POLICIES_DIR") {
            self.policies_dir = Some(v.into());
        }
        if let Some(v) = env("LETHE_AUDIT_JURISDICTIONS") {
            self.audit.approved_jurisdictions = v.split(',').map(|j| j.trim().to_string()).filter(|j| !j.is_empty()).collect();
        }
        if let Some(v) = env("LETHE_SWEEP_INTERVAL_HOURS") {
            self.audit.sweep_interval_hours = parse_num("LETHE_SWEEP_INTERVAL_HOURS", &v)?;
        }
        Ok(())
    }

    /// Checks settings that can be checked without touching anything.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !crate::crypto::blind::BITS_RANGE.contains(&self.store.blind_index_bits) {
            return Err(ConfigError::new(
                "store.blind_index_bits",
                format!("{} is not between 4 and 24", self.store.blind_index_bits),
            ));
        }
        if self.store.kind == StoreKind::S3 {
            match &self.store.bucket {
                None => {
                    return Err(ConfigError::new(
                        "store.bucket",
                        "missing for an S3 store (set LETHE_S3_BUCKET or store.bucket)",
                    ))
                }
                Some(b) if b.trim().is_empty() => return Err(ConfigError::new("store.bucket", "is empty")),
                _ => {}
            }
            if let Some(e) = &self.store.endpoint {
                if !(e.starts_with("http://") || e.starts_with("https://")) {
                    return Err(ConfigError::new(
                        "store.endpoint",
                        format!("'{e}' is not an http:// or https:// URL"),
                    ));
                }
                if e.starts_with("http://") && !self.store.allow_http {
                    return Err(ConfigError::new(
                        "store.endpoint",
                        "is plain http:// but store.allow_http is false (set LETHE_S3_ALLOW_HTTP=true for a local server)",
                    ));
                }
            }
        }
        if self.server.max_message_bytes < 1024 {
            return Err(ConfigError::new("server.max_message_bytes", "must be at least 1024"));
        }
        if !(1..=65_536).contains(&self.server.max_ingest_puts) {
            return Err(ConfigError::new(
                "server.max_ingest_puts",
                format!("{} is not between 1 and 65536", self.server.max_ingest_puts),
            ));
        }
        if self.ledger.origin.trim().is_empty() || self.ledger.origin.contains('\n') {
            return Err(ConfigError::new("ledger.origin", "must be one non-empty line"));
        }
        Ok(())
    }

    /// The policy folder.
    pub fn policies_dir(&self) -> PathBuf {
        self.policies_dir.clone().unwrap_or_else(|| PathBuf::from("./policies"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn defaults_are_the_embedded_store() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.store.kind, StoreKind::Local);
        assert_eq!(c.server.listen, "127.0.0.1:50051");
        assert_eq!(c.keys.kek_path(), PathBuf::from("./lethe-keys/kek"));
    }

    #[test]
    fn env_overrides_and_names_bad_settings() {
        let env: HashMap<&str, &str> = [
            ("LETHE_STORE", "s3"),
            ("LETHE_S3_BUCKET", "b"),
            ("LETHE_S3_ENDPOINT", "http://127.0.0.1:7480"),
        ]
        .into();
        let mut c = Config::default();
        c.apply_env(|k| env.get(k).map(|s| s.to_string())).unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.setting, "store.endpoint");
        c.store.allow_http = true;
        c.validate().unwrap();
        let mut c = Config::default();
        assert_eq!(
            c.apply_env(|k| (k == "LETHE_STORE").then(|| "ftp".into())).unwrap_err().setting,
            "LETHE_STORE"
        );
        let mut c = Config {
            store: StoreConfig {
                kind: StoreKind::S3,
                ..Default::default()
            },
            ..Default::default()
        };
        c.apply_env(|_| None).unwrap();
        assert_eq!(c.validate().unwrap_err().setting, "store.bucket");
    }

    #[test]
    fn puts_in_flight_are_a_setting_and_zero_is_refused() {
        let mut c = Config::default();
        c.apply_env(|k| (k == "LETHE_MAX_INGEST_PUTS").then(|| "64".into())).unwrap();
        c.validate().unwrap();
        assert_eq!(crate::api::ApiLimits::from_config(&c.server).max_ingest_puts, 64);
        let mut c = Config::default();
        let e = c.apply_env(|k| (k == "LETHE_MAX_INGEST_PUTS").then(|| "many".into())).unwrap_err();
        assert_eq!(e.setting, "LETHE_MAX_INGEST_PUTS");
        let c: Config = toml::from_str("[server]\nmax_ingest_puts = 0\n").unwrap();
        let e = c.validate().unwrap_err();
        assert_eq!(e.setting, "server.max_ingest_puts");
        assert!(e.to_string().contains("between 1 and 65536"), "{e}");
    }

    #[test]
    fn env_vars_list_is_exactly_what_apply_env_reads() {
        let asked = std::sync::Mutex::new(std::collections::BTreeSet::new());
        Config::default()
            .apply_env(|k| {
                asked.lock().unwrap().insert(k.to_string());
                None
            })
            .unwrap();
        let mut asked = asked.into_inner().unwrap();
        asked.insert("LETHE_CONFIG".into()); // read by Config::load
        let listed: std::collections::BTreeSet<String> = ENV_VARS.iter().map(|s| s.to_string()).collect();
        assert_eq!(asked, listed);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = toml::from_str::<Config>("[store]\nbukket = \"x\"\n").unwrap_err();
        assert!(e.message().contains("bukket"), "{}", e.message());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The documented example must parse, and must say the same as the defaults.
    #[test]
    fn example_file_parses_to_the_defaults() {
        let c = Config::from_file(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/lethe.toml.example"))).unwrap();
        let d = Config::default();
        assert_eq!(c.store.path, d.store.path);
        assert_eq!(c.store.blind_index_bits, d.store.blind_index_bits);
        assert_eq!(c.server.listen, d.server.listen);
        assert_eq!(c.server.max_message_bytes, d.server.max_message_bytes);
        assert_eq!(c.server.max_image_bytes, d.server.max_image_bytes);
        assert_eq!(c.server.future_skew_secs, d.server.future_skew_secs);
        assert_eq!(c.server.search_buffer_bytes, d.server.search_buffer_bytes);
        assert_eq!(c.server.max_ingest_puts, d.server.max_ingest_puts);
        assert_eq!(c.keys.dir, d.keys.dir);
        assert_eq!(c.ledger.origin, d.ledger.origin);
        assert_eq!(c.policies_dir(), d.policies_dir());
        assert_eq!(c.audit.approved_jurisdictions, d.audit.approved_jurisdictions);
        assert_eq!(c.audit.sweep_interval_hours, d.audit.sweep_interval_hours);
        assert_eq!(c.audit.max_noncurrent_days, d.audit.max_noncurrent_days);
        assert_eq!(c.audit.ledger_object_lock, d.audit.ledger_object_lock);
    }
}
