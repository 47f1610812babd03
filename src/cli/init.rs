//! `lethe init`: create keys and check the store.

use std::path::Path;

use super::context::Context;

/// `lethe init` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Creates the key files (if missing) and checks the store and KEK.
pub async fn run(config: Option<&Path>, _args: Args) -> anyhow::Result<u8> {
    let ctx = Context::open(config).await?;
    println!("store: {:?} ok", ctx.config.store.kind);
    println!(
        "key-encryption key: {} (id {})",
        ctx.reads.keys().kek().path().display(),
        ctx.reads.keys().kek().id()
    );
    Ok(0)
}
