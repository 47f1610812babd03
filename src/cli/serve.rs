//! `lethe serve`.

use std::path::Path;

use super::context::Context;

/// `lethe serve` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Listen address (default 127.0.0.1:50051; env LETHE_LISTEN).
    #[arg(long)]
    pub listen: Option<String>,
}

/// Opens the store and serves until SIGINT/SIGTERM.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let mut ctx = Context::open(config).await?;
    if let Some(l) = args.listen {
        ctx.config.server.listen = l;
    }
    tracing::info!(store = ?ctx.config.store.kind, listen = %ctx.config.server.listen, "lethe store opened");
    eprintln!("lethe serve: the gRPC API is not built yet in this version");
    Ok(2)
}
