//! `lethe audit [--json] [--trusted FILE]` and `lethe audit approve --as ID`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::context::{open_ledger, Context};
use crate::audit::{self, AuditInputs, PolicySet};
use crate::clock::SystemClock;

/// The ledger writer name of the audit.
pub const WRITER: &str = "lethe-audit";

/// `lethe audit` arguments.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// Print the outcome as JSON (for machines) instead of text.
    #[arg(long)]
    pub json: bool,
    /// A checkpoint saved earlier (`lethe ledger checkpoint`); the ledger must be consistent with it.
    #[arg(long, value_name = "FILE")]
    pub trusted: Option<PathBuf>,
    /// Do not write the outcome to the ledger (a dry look; cron runs must not use it).
    #[arg(long)]
    pub no_record: bool,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Record the effective policy set as the approved baseline (admin role required).
    Approve(ApproveArgs),
}

/// `lethe audit approve` arguments.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The approving principal (must hold the admin role).
    #[arg(long = "as", visible_alias = "principal", value_name = "ID")]
    pub principal: String,
}

fn load_policy(ctx: &Context) -> anyhow::Result<PolicySet> {
    let dir = ctx.config.policies_dir();
    PolicySet::load(&dir).with_context(|| format!("policy folder {}", dir.display()))
}

/// Runs the audit; exit 0 only when there is no finding, 1 otherwise.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let ctx = Context::open(config).await?;
    if let Some(Sub::Approve(a)) = args.command {
        return approve(&ctx, &a).await;
    }
    let policy = load_policy(&ctx)?;
    let ledger = open_ledger(&ctx).await?;
    let trusted = match &args.trusted {
        Some(p) => Some(std::fs::read(p).with_context(|| format!("--trusted {}", p.display()))?),
        None => None,
    };
    let clock = SystemClock;
    let report = audit::run(AuditInputs {
        config: &ctx.config,
        policy: &policy,
        ledger: &ledger,
        reads: &ctx.reads,
        store: &ctx.object_store,
        clock: &clock,
        trusted_checkpoint: trusted.as_deref(),
    })
    .await?;
    let recorded = if args.no_record {
        None
    } else {
        Some(audit::record_outcome(&ledger, &report, WRITER, &clock).await?)
    };
    let mut out = std::io::stdout().lock();
    if args.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            passed: bool,
            findings: usize,
            recorded_entry: Option<u64>,
            #[serde(flatten)]
            report: &'a audit::AuditReport,
        }
        serde_json::to_writer_pretty(
            &mut out,
            &Out {
                passed: report.passed(),
                findings: report.findings(),
                recorded_entry: recorded.as_ref().map(|r| r.index),
                report: &report,
            },
        )?;
        use std::io::Write as _;
        writeln!(out)?;
    } else {
        report.write_text(&mut out)?;
        if let Some(r) = &recorded {
            use std::io::Write as _;
            writeln!(out, "recorded as ledger entry {}", r.index)?;
        }
    }
    Ok(if report.passed() { 0 } else { 1 })
}

async fn approve(ctx: &Context, a: &ApproveArgs) -> anyhow::Result<u8> {
    let policy = load_policy(ctx)?;
    let ledger = open_ledger(ctx).await?;
    let hash = audit::approve(&ledger, ctx.object_store.as_ref(), &policy, &a.principal, WRITER, &SystemClock).await?;
    println!("approved policy set {hash} as the baseline (by {})", a.principal);
    Ok(0)
}
