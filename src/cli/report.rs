//! `lethe report access [--from T] [--to T] [--format csv|json|table]` and `lethe report summary`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use chrono::{DateTime, NaiveDate, Utc};

use super::context::{ledger_reader, Context};
use crate::audit::report::{self, Format};
use crate::clock::{Clock, SystemClock};
use crate::crypto::AuditKey;

/// `lethe report` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    /// Every access (allowed and denied) in a window: time, plate, username, organization,
    /// purpose, case number, decision, and how many reads were returned.
    Access(AccessArgs),
    /// Public transparency report: searches and denials per agency, reads ingested and deleted,
    /// days shredded, holds, oldest read age. No plate and no person.
    Summary(SummaryArgs),
}

/// A time bound: RFC 3339 (`2026-03-01T00:00:00Z`) or a UTC date (`2026-03-01`, midnight).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("'{s}' is neither an RFC 3339 time nor a YYYY-MM-DD date"))
}

/// `lethe report access` arguments.
#[derive(Debug, clap::Args)]
pub struct AccessArgs {
    /// Start of the window (inclusive), RFC 3339 or YYYY-MM-DD (UTC).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<DateTime<Utc>>,
    /// End of the window (exclusive); default now.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<DateTime<Utc>>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
    /// The audit key file that opens the searched plates (default: the keys folder's
    /// `audit.key`). Without it plates are shown as sealed.
    #[arg(long, value_name = "FILE")]
    pub audit_key: Option<PathBuf>,
    /// Do not show plates even when the audit key is held.
    #[arg(long)]
    pub no_plates: bool,
}

/// `lethe report summary` arguments.
#[derive(Debug, clap::Args)]
pub struct SummaryArgs {
    /// Start of the window (inclusive), RFC 3339 or YYYY-MM-DD (UTC).
    #[arg(long, value_parser = parse_time)]
    pub from: Option<DateTime<Utc>>,
    /// End of the window (exclusive); default now.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<DateTime<Utc>>,
    /// Output format (csv is printed as text).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs a report; exit 0, or 1 when the ledger could not be read completely.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let ctx = Context::open(config).await?;
    let reader = ledger_reader(&ctx)?;
    let now = SystemClock.now();
    let mut out = std::io::stdout().lock();
    let problems = match args.command {
        Sub::Access(a) => {
            let key = if a.no_plates {
                None
            } else {
                let path = a.audit_key.clone().unwrap_or_else(|| ctx.config.keys.audit_key_path());
                match AuditKey::load(&path, false) {
                    Ok(k) => Some(k),
                    Err(e) if a.audit_key.is_some() => return Err(e).context("--audit-key"),
                    Err(e) => {
                        eprintln!("lethe report: plates stay sealed: {e}");
                        None
                    }
                }
            };
            let (rows, problems) = report::access_rows(&reader, a.from, Some(a.to.unwrap_or(now)), key.as_ref()).await?;
            report::write_access(&rows, a.format, &mut out)?;
            problems
        }
        Sub::Summary(a) => {
            let (s, problems) = report::summary(&reader, &ctx.reads, a.from, Some(a.to.unwrap_or(now)), now).await?;
            report::write_summary(&s, a.format, &mut out)?;
            problems
        }
    };
    for p in &problems {
        eprintln!("lethe report: {p}");
    }
    Ok(if problems.is_empty() { 0 } else { 1 })
}
