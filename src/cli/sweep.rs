//! `lethe sweep [--dry-run] [--force]`: the hourly cron job.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::Context as _;
use chrono::Duration;
use indicatif::{ProgressBar, ProgressStyle};
use object_store::path::Path as ObjectPath;

use super::context::Context;
use crate::clock::SystemClock;
use crate::ledger::{Ledger, LedgerConfig, SigningKey};
use crate::policy::Retention;
use crate::sweep::ledger_log::LedgerProofLog;
use crate::sweep::{self, SweepOptions, SweepReport};

/// Exit codes, as printed by `lethe sweep --help`.
pub const EXIT_HELP: &str = "\
Exit codes:
  0  done: everything past retention is deleted and proven in the ledger
  1  failed: store, ledger, key or configuration error (no false claim was written)
  2  partial: some objects could not be deleted; they stay, unclaimed, for the next sweep
  3  refused: local and store clocks disagree by more than --max-clock-skew-secs (--force overrides; recorded)
  4  busy: another sweep holds the lease; nothing was done
  5  a day was closed whose deleted + held reads do not match its ingest commits";

/// `lethe sweep` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_HELP)]
pub struct Args {
    /// Report what would be deleted and shredded; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Sweep even if the local clock and the store's clock disagree (recorded in the ledger).
    #[arg(long)]
    pub force: bool,
    /// Largest allowed difference between the local clock and the store's clock, in seconds.
    #[arg(long, default_value_t = 300)]
    pub max_clock_skew_secs: u32,
}

/// Opens the ledger named by the configuration, in the same store.
pub async fn open_ledger(ctx: &Context) -> anyhow::Result<Ledger> {
    let path = ctx.config.keys.ledger_signing_key_path();
    let (signer, _) =
        SigningKey::load_or_create(&path, &ctx.config.ledger.origin).with_context(|| format!("ledger signing key ({})", path.display()))?;
    let cfg = LedgerConfig {
        prefix: ObjectPath::from(ctx.config.ledger.prefix.as_str()),
        ..Default::default()
    };
    Ok(Ledger::open(ctx.object_store.clone(), cfg, signer).await?)
}

/// Who writes: `{what}@{host}`.
pub fn writer(what: &str) -> String {
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let host = host.trim();
    format!("{what}@{}", if host.is_empty() { "localhost" } else { host })
}

/// Runs one sweep and prints a line per day and a total.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let ctx = Context::open(config).await?;
    let retention = Retention::load(&ctx.config.policies_dir())?;
    let ledger = open_ledger(&ctx).await?;
    let who = writer("sweep");
    let log = LedgerProofLog::new(ledger, who.clone());
    let progress = if std::io::stderr().is_terminal() && !args.dry_run {
        let pb = ProgressBar::new(0);
        pb.set_style(
            ProgressStyle::with_template("{spinner} sweeping {msg} [{bar:30}] {pos}/{len} objects ({per_sec})")
                .expect("valid template")
                .progress_chars("=> "),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let opts = SweepOptions {
        retention,
        dry_run: args.dry_run,
        force: args.force,
        max_clock_skew: Duration::seconds(i64::from(args.max_clock_skew_secs)),
        writer: who,
        progress,
        ..Default::default()
    };
    match sweep::run(&ctx.reads, &log, &SystemClock, &opts).await {
        Ok(rep) => {
            print_report(&rep);
            Ok(rep.exit_code())
        }
        Err(e) => {
            eprintln!("lethe sweep: {e}");
            Ok(e.exit_code())
        }
    }
}

/// The per-day lines and the total.
pub fn print_report(rep: &SweepReport) {
    let verb = if rep.dry_run { "would delete" } else { "deleted" };
    for d in &rep.days {
        let mut line = format!("{}  {verb} {:>7}  held {:>5}  kept {:>7}", d.day, d.deleted, d.held, d.kept);
        if let Some(p) = &d.closed {
            line.push_str(&format!(
                "  key destroyed  {} ({} deleted + {} held of {} ingested)",
                if p.reconciled { "reconciled" } else { "NOT RECONCILED" },
                p.reads_deleted,
                p.reads_held,
                p.ingested_total
            ));
        } else if d.would_shred {
            line.push_str("  would destroy the day key");
        }
        if !d.failed.is_empty() {
            line.push_str(&format!(
                "  FAILED {} (first: {} — {})",
                d.failed.len(),
                d.failed[0].0,
                d.failed[0].1
            ));
        }
        println!("{line}");
    }
    for h in &rep.holds {
        let mut line = format!("hold {}  copies deleted {}", h.hold_id, h.deleted);
        if h.key_destroyed {
            line.push_str("  hold key destroyed");
        }
        if !h.failed.is_empty() {
            line.push_str(&format!("  FAILED {}", h.failed.len()));
        }
        println!("{line}");
    }
    let failed: usize = rep.days.iter().map(|d| d.failed.len()).sum::<usize>() + rep.holds.iter().map(|h| h.failed.len()).sum::<usize>();
    println!(
        "total: {verb} {}, held {}, days closed {}, failed {}{}; cutoff {} (clock skew {:+} s{})",
        rep.deleted(),
        rep.held(),
        rep.days.iter().filter(|d| d.closed.is_some()).count(),
        failed,
        if rep.dry_run { " (dry run: nothing changed)" } else { "" },
        rep.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        rep.clock_skew.num_seconds(),
        if rep.forced { ", FORCED" } else { "" }
    );
}
