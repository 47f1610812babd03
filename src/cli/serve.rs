//! `lethe serve`: the gRPC API on the configured store, until SIGINT or SIGTERM.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

use super::context::Context;
use crate::api::interim::{CaliforniaRule, DevPrincipals, StoreLedger};
use crate::api::{server, ApiLimits, ApiState};
use crate::clock::SystemClock;
use crate::crypto::AuditKey;
use crate::policy::Retention;

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

/// The API state for an opened context: dev principals (token file created on first start),
/// the California access rule, the ledger, the audit key, the retention policy.
pub async fn state(ctx: &Context) -> anyhow::Result<ApiState> {
    let keys = &ctx.config.keys;
    let tokens_path = keys.dev_tokens_path();
    let (auth, created) = if keys.create_missing || tokens_path.exists() {
        DevPrincipals::load_or_create(&tokens_path).context("development token file")?
    } else {
        anyhow::bail!(
            "no development token file at {} and keys.create_missing is false",
            tokens_path.display()
        );
    };
    if created {
        // The path only: tokens are never logged.
        tracing::info!(path = %tokens_path.display(), "wrote development tokens for the example principals (mode 0600)");
    }
    let audit_key = AuditKey::load(&keys.audit_key_path(), keys.create_missing).context("keys: audit key")?;
    let retention = Retention::load(&ctx.config.policies_dir())?;
    let ledger = StoreLedger::new(ctx.object_store.clone(), &format!("{}-interim", ctx.config.ledger.prefix));
    Ok(ApiState {
        reads: ctx.reads.clone(),
        auth: Arc::new(auth),
        policy: Arc::new(CaliforniaRule),
        ledger: Arc::new(ledger),
        audit_key,
        retention,
        clock: Arc::new(SystemClock),
        limits: ApiLimits::from_config(&ctx.config.server),
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
