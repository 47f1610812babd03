//! `lethe init`: everything a new deployment needs before it serves, idempotent.
//!
//! - checks the store and the key-encryption key (creating the key files when
//!   `keys.create_missing`): KEK, ledger signing key (and its public key `ledger.pub` for
//!   auditors), audit key;
//! - records the policy set in the ledger (a `policy_changed` record if it changed);
//! - with `--approve-as ID` (an admin principal), records the current policy set as the approved
//!   baseline that the daily audit compares against;
//! - on an S3 store, sets the lifecycle backstop (expire reads a few days after retention) and an
//!   abort-incomplete-multipart rule, and says what it set.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::context::Context;
use crate::clock::{Clock, SystemClock};
use crate::config::StoreKind;
use crate::crypto::AuditKey;
use crate::ledger::SigningKey;
use crate::policy::PolicySet;

/// `lethe init` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Record the current policy set as the approved baseline, as this admin principal.
    #[arg(long = "approve-as", value_name = "ID")]
    pub approve_as: Option<String>,
    /// Days past retention after which the S3 lifecycle backstop expires reads.
    #[arg(long, default_value_t = 3)]
    pub backstop_margin_days: u32,
}

/// Runs `lethe init`.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let ctx = Context::open(config).await?;
    let keys = &ctx.config.keys;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    println!("store: {:?} ok", ctx.config.store.kind);
    let kek = ctx.reads.keys().kek();
    println!("key-encryption key: {} (id {})", kek.path().display(), kek.id());

    AuditKey::load(&keys.audit_key_path(), keys.create_missing).context("keys: audit key")?;
    println!("audit key: {}", keys.audit_key_path().display());
    let (signer, _) = SigningKey::load_or_create(&keys.ledger_signing_key_path(), &ctx.config.ledger.origin)
        .with_context(|| format!("ledger signing key ({})", keys.ledger_signing_key_path().display()))?;
    let pub_path = keys.ledger_public_key_path();
    std::fs::write(&pub_path, format!("{}\n", signer.verifier())).with_context(|| format!("cannot write {}", pub_path.display()))?;
    println!("ledger public key (give it to auditors): {}", pub_path.display());

    let ledger = super::context::open_ledger(&ctx).await?;
    let policies = PolicySet::load(&ctx.config.policies_dir())?;
    let writer = super::sweep::writer("init");
    let start = crate::audit::record_policy_on_start(&ledger, &policies, &writer, clock.as_ref()).await?;
    let what = match &start {
        crate::audit::PolicyStart::First { .. } => "recorded in the ledger (first start)".to_string(),
        crate::audit::PolicyStart::Unchanged { .. } => "unchanged since it was last recorded".to_string(),
        crate::audit::PolicyStart::Changed { old, changed, .. } => format!(
            "changed since {old} ({} file(s): {}), recorded in the ledger",
            changed.len(),
            changed
                .iter()
                .map(|(f, c)| format!("{f} {c:?}").to_lowercase())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    println!("policy set {}: {what}", policies.hash);
    if let Some(id) = &args.approve_as {
        let hash = crate::audit::approve(&ledger, ctx.object_store.as_ref(), &policies, id, &writer, clock.as_ref()).await?;
        println!("approved policy baseline {hash} as {id}");
    }

    if ctx.config.store.kind == StoreKind::S3 {
        let client = crate::store::s3admin::client(&ctx.config.store).await?;
        let bucket = crate::store::s3admin::bucket(&ctx.config.store)?;
        let rules = crate::sweep::lifecycle::set_lifecycle_backstop(&client, bucket, &policies.retention, args.backstop_margin_days)
            .await
            .context("store: setting the lifecycle backstop")?;
        for r in rules {
            println!("lifecycle rule {} on '{}': {}", r.id, r.prefix, r.action);
        }
    } else {
        println!(
            "lifecycle backstop: not available on a {:?} store (the sweeper is the only deletion layer)",
            ctx.config.store.kind
        );
    }
    Ok(0)
}
