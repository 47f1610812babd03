//! `lethe hold place|release|list`.

use std::path::Path;

use anyhow::{bail, Context as _};
use chrono::{DateTime, NaiveDate, Utc};

use super::context::Context;
use super::sweep::open_ledger;
use crate::clock::SystemClock;
use crate::hold::{self, Authority, HoldRequest};
use crate::policy::Retention;
use crate::sweep::ledger_log::LedgerProofLog;

/// `lethe hold` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Place a hold: copy the reads in scope under a hold key so they survive retention.
    Place(PlaceArgs),
    /// Release a hold; the next sweep deletes its copies.
    Release {
        /// The hold id (from `hold place` or `hold list`).
        #[arg(long)]
        id: String,
        /// Who releases it.
        #[arg(long, default_value = "cli")]
        by: String,
        /// Why.
        #[arg(long, default_value = "released")]
        reason: String,
    },
    /// List holds and their state.
    List,
}

#[derive(Debug, clap::Args)]
struct PlaceArgs {
    /// Case number.
    #[arg(long)]
    case: String,
    /// The authority for the hold.
    #[arg(long, value_enum)]
    authority: Authority,
    /// Reference of the authority document (warrant number, order number, request id).
    #[arg(long = "ref")]
    reference: String,
    /// End of the hold (RFC 3339, or YYYY-MM-DD for midnight UTC).
    #[arg(long, value_parser = parse_time)]
    until: DateTime<Utc>,
    /// Only this plate.
    #[arg(long)]
    plate: Option<String>,
    /// Only this camera.
    #[arg(long)]
    camera: Option<String>,
    /// Window start (default: now − retention).
    #[arg(long, value_parser = parse_time)]
    from: Option<DateTime<Utc>>,
    /// Window end (default: now).
    #[arg(long, value_parser = parse_time)]
    to: Option<DateTime<Utc>>,
    /// Who places it.
    #[arg(long, default_value = "cli")]
    by: String,
}

/// Parses RFC 3339, or a date as midnight UTC.
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("{s:?} is not an RFC 3339 time or a YYYY-MM-DD date"))
}

/// Runs `lethe hold …`.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let ctx = Context::open(config).await?;
    match args.command {
        Command::List => {
            let now = crate::clock::Clock::now(&SystemClock);
            let holds = hold::list(&ctx.reads).await?;
            if holds.is_empty() {
                println!("no holds");
            }
            for h in holds {
                let r = &h.record;
                let state = match (&h.released, h.is_active(now)) {
                    (Some(rel), _) => format!("released {} by {}", rel.at.to_rfc3339(), rel.by),
                    (None, true) => "active".to_string(),
                    (None, false) => "expired".to_string(),
                };
                println!(
                    "{}  case {}  {} {}  until {}  window {} .. {}  plate {}  camera {}  {state}",
                    r.hold_id,
                    r.case_number,
                    r.authority.as_str(),
                    r.authority_ref,
                    r.until.to_rfc3339(),
                    r.from.to_rfc3339(),
                    r.to.to_rfc3339(),
                    if r.plate_blind.is_some() { "(sealed)" } else { "any" },
                    if r.cameras.is_empty() {
                        "any".to_string()
                    } else {
                        r.cameras.join(",")
                    },
                );
            }
            Ok(0)
        }
        Command::Release { id, by, reason } => {
            let log = LedgerProofLog::new(open_ledger(&ctx).await?, super::sweep::writer("hold"));
            if hold::release(&ctx.reads, &log, &SystemClock, &id, &by, &reason).await? {
                println!("released {id}; the next sweep deletes its copies");
            } else {
                println!("{id} was already released");
            }
            Ok(0)
        }
        Command::Place(a) => {
            if a.plate.is_none() && a.camera.is_none() && a.from.is_none() && a.to.is_none() {
                bail!("a hold needs a scope: --plate, --camera, --from or --to");
            }
            let retention = Retention::load(&ctx.config.policies_dir())?;
            let log = LedgerProofLog::new(open_ledger(&ctx).await?, super::sweep::writer("hold"));
            let req = HoldRequest {
                case_number: a.case,
                authority: a.authority,
                authority_ref: a.reference,
                until: a.until,
                plate: a.plate,
                camera: a.camera,
                from: a.from,
                to: a.to,
                placed_by: a.by,
            };
            let placed = hold::place(&ctx.reads, &log, &SystemClock, &retention, req)
                .await
                .context("placing the hold")?;
            println!(
                "placed hold {} for case {}: {} reads held until {}",
                placed.record.hold_id,
                placed.record.case_number,
                placed.reads_held,
                placed.record.until.to_rfc3339()
            );
            Ok(0)
        }
    }
}
