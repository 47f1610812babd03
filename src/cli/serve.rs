//! `lethe serve`: the gRPC API on the configured store, until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::context::{open_ledger, Context};
use crate::api::{server, ApiLimits, ApiState, LedgerWriter};
use crate::audit::record_policy_on_start;
use crate::clock::{SharedClock, SystemClock};
use crate::crypto::AuditKey;
use crate::policy::{ensure_dev_tokens, PolicySet};

/// `lethe serve` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen address (default 127.0.0.1:50051; env LETHE_LISTEN).
    #[arg(long)]
    pub listen: Option<String>,
}

/// Opens the store, keys and policies, and serves until SIGINT/SIGTERM; in-flight calls finish.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let mut ctx = Context::open(config).await?;
    if let Some(l) = args.listen {
        ctx.config.server.listen = l;
    }
    let state = state(&ctx).await?;
    let listen = ctx.config.server.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("server.listen (LETHE_LISTEN): cannot listen on {listen}"))?;
    tracing::info!(
        store = ?ctx.config.store.kind,
        listen = %listener.local_addr().map(|a| a.to_string()).unwrap_or(listen),
        "lethe serving"
    );
    server::run(listener, state, shutdown_signal()).await?;
    tracing::info!("lethe stopped");
    Ok(0)
}

/// The API state for an opened context: the policy folder (retention, principals, Cedar rules,
/// validated: a policy that does not validate stops the server), development tokens for
/// principals without a registry token hash (the file is created on first start, mode 0600), the
/// ledger (signing key created on first start, public key written beside it), the audit key.
pub async fn state(ctx: &Context) -> anyhow::Result<ApiState> {
    let keys = &ctx.config.keys;
    let policies = PolicySet::load(&ctx.config.policies_dir())?;
    let tokens_path = keys.dev_tokens_path();
    let dev = if keys.create_missing {
        Some(ensure_dev_tokens(&policies.principals, &tokens_path)?)
    } else if tokens_path.exists() {
        Some(crate::policy::tokens::read_dev_tokens(&tokens_path)?)
    } else {
        None
    };
    let auth = policies.authenticator(dev.as_ref());
    if auth.is_empty() {
        anyhow::bail!("no principal can authenticate: set token_sha256 in principals.toml, or let lethe create development tokens (keys.create_missing)");
    }
    let audit_key = AuditKey::load(&keys.audit_key_path(), keys.create_missing).context("keys: audit key")?;
    let clock: SharedClock = Arc::new(SystemClock);
    let ledger = open_ledger(ctx).await?;
    let pub_path = keys.ledger_public_key_path();
    if !pub_path.exists() {
        // Not secret: auditors verify the ledger with it.
        let verifier = ledger.reader().verifier().to_string();
        std::fs::write(&pub_path, format!("{verifier}\n"))
            .with_context(|| format!("cannot write the ledger public key {}", pub_path.display()))?;
    }
    let writer = super::sweep::writer("serve");
    // The policy this server enforces is on the ledger before the first call is served.
    record_policy_on_start(&ledger, &policies, &writer, clock.as_ref()).await?;
    tracing::info!(policy_hash = %policies.hash, principals = auth.len(), "policies loaded");
    let limits = ApiLimits::from_config(&ctx.config.server);
    Ok(ApiState {
        reads: ctx.reads.clone(),
        auth: Arc::new(auth),
        policy: Arc::new(policies.access),
        ledger: Arc::new(LedgerWriter::new(ledger, clock.clone(), writer)),
        audit_key,
        retention: policies.retention,
        clock,
        ingest_slots: ApiState::ingest_slots(&limits),
        limits,
    })
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("SIGINT: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}
