//! Opening what a command needs from the configuration: the object store, the KEK, the store.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use object_store::ObjectStore;

use crate::config::{Config, StoreKind};
use crate::crypto::Kek;
use crate::store::{backend, ReadStore, ReadStoreOptions};

/// What every server-side command opens.
#[derive(Debug, Clone)]
pub struct Context {
    /// The configuration.
    pub config: Config,
    /// The raw object store.
    pub object_store: Arc<dyn ObjectStore>,
    /// The encrypted read store.
    pub reads: ReadStore,
}

impl Context {
    /// Loads the configuration and opens everything, failing with one line naming the setting.
    pub async fn open(config_path: Option<&Path>) -> anyhow::Result<Self> {
        let config = Config::load(config_path)?;
        Self::open_with(config).await
    }

    /// Opens everything from a loaded configuration.
    pub async fn open_with(config: Config) -> anyhow::Result<Self> {
        let object_store = backend::build(&config.store)?;
        backend::probe(object_store.as_ref(), &config.store).await?;
        let kek_path = config.keys.kek_path();
        let kek = Kek::load(&kek_path, config.keys.create_missing).with_context(|| "keys.kek_file (LETHE_KEK_FILE)".to_string())?;
        let opts = ReadStoreOptions {
            blind_bits: config.store.blind_index_bits,
            object_metadata: config.store.kind == StoreKind::S3,
        };
        let reads = ReadStore::open(object_store.clone(), kek, opts)
            .await
            .with_context(|| format!("keys.kek_file ({})", kek_path.display()))?;
        Ok(Self {
            config,
            object_store,
            reads,
        })
    }
}

/// Opens the ledger for writing with the signing key from the keys folder (created when
/// `keys.create_missing`).
pub async fn open_ledger(ctx: &Context) -> anyhow::Result<crate::ledger::Ledger> {
    use crate::ledger::{Ledger, LedgerConfig, SigningKey};
    let path = ctx.config.keys.ledger_signing_key_path();
    let signer = if ctx.config.keys.create_missing {
        SigningKey::load_or_create(&path, &ctx.config.ledger.origin)?.0
    } else {
        let bytes = crate::secret_file::read_secret(&path, "ledger signing key")?;
        SigningKey::from_pkcs8(&ctx.config.ledger.origin, &bytes)?
    };
    let cfg = LedgerConfig {
        prefix: object_store::path::Path::from(ctx.config.ledger.prefix.as_str()),
        ..LedgerConfig::default()
    };
    Ledger::open(ctx.object_store.clone(), cfg, signer)
        .await
        .with_context(|| format!("ledger ({})", ctx.config.ledger.prefix))
}

/// Read access to the ledger: the verifier key from `ledger.pub` in the keys folder, or derived
/// from the signing key when only that is present. Needs no write access.
pub fn ledger_reader(ctx: &Context) -> anyhow::Result<crate::ledger::LogReader> {
    use crate::ledger::{LogReader, SigningKey, VerifierKey};
    let pub_path = ctx.config.keys.ledger_public_key_path();
    let key = match std::fs::read_to_string(&pub_path) {
        Ok(text) => VerifierKey::parse(&text).with_context(|| pub_path.display().to_string())?,
        Err(_) => {
            let path = ctx.config.keys.ledger_signing_key_path();
            let bytes = crate::secret_file::read_secret(&path, "ledger signing key")?;
            SigningKey::from_pkcs8(&ctx.config.ledger.origin, &bytes)?.verifier()
        }
    };
    Ok(LogReader::new(
        ctx.object_store.clone(),
        object_store::path::Path::from(ctx.config.ledger.prefix.as_str()),
        key,
    ))
}
