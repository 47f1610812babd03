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
