//! `lethe ledger verify | show | prove | checkpoint` — what an auditor runs. Needs only read
//! access to the store and the ledger's public key (`ledger.pub` in the keys folder).

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::context::{ledger_reader, Context};
use crate::ledger::cli::{self as lcli, ShowFilter};

/// `lethe ledger` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Recompute every leaf and root, check every checkpoint signature, and check consistency
    /// with a checkpoint saved earlier. Exit 0 only when everything holds.
    Verify {
        /// A checkpoint saved earlier (from `lethe ledger checkpoint`): the log must extend it.
        #[arg(long)]
        trusted: Option<PathBuf>,
    },
    /// Print records, one per line.
    Show {
        /// Only this kind (e.g. access, deletion_proof, policy_changed).
        #[arg(long)]
        kind: Option<String>,
        /// Only records at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Only records before this time (RFC 3339).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Inclusion proof for entry N against the latest checkpoint.
    Prove {
        /// The entry index.
        n: u64,
    },
    /// Print the latest signed checkpoint, for an auditor or witness to keep.
    Checkpoint,
}

/// Runs the subcommand; its exit code.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let ctx = Context::open(config).await?;
    let reader = ledger_reader(&ctx)?;
    let mut out = std::io::stdout().lock();
    let code = match args.command {
        Sub::Verify { trusted } => lcli::verify(&reader, trusted.as_deref(), &mut out).await?,
        Sub::Show { kind, from, to, json } => lcli::show(&reader, &ShowFilter { kind, from, to }, json, &mut out).await?,
        Sub::Prove { n } => lcli::prove(&reader, n, &mut out).await?,
        Sub::Checkpoint => lcli::checkpoint(&reader, &mut out).await?,
    };
    Ok(u8::try_from(code).unwrap_or(1))
}
