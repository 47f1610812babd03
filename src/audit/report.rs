//! `lethe report access` and `lethe report summary`.
//!
//! The access report is the log the California statute (Civil Code 1798.90.52) asks for: for
//! every access — allowed or denied — its date and time, the data used to query (the plate,
//! opened with the audit key for those who hold it; otherwise shown as sealed), the username and
//! organization, and the purpose; plus the case number, the decision and rule, whether anything
//! was returned and how many reads.
//!
//! The summary is a public transparency report: searches and denials per agency, reads
//! ingested, reads deleted and days shredded, holds, the oldest read's age. It names agencies
//! only — never a plate, never a person (principal ids are not in it).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::scan::for_each_record;
use super::AuditError;
use crate::crypto::AuditKey;
use crate::ledger::record::Decision;
use crate::ledger::{LogReader, RecordBody};
use crate::store::ReadStore;

/// Shown instead of the plate when the audit key is not held.
pub const SEALED: &str = "(sealed: audit key not held)";

/// One access, as reported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccessRow {
    /// Ledger entry index.
    pub entry: u64,
    /// When the access was recorded (UTC).
    pub time: DateTime<Utc>,
    /// The plate queried, or why it is not shown.
    pub plate: String,
    /// The username (principal id).
    pub username: String,
    /// The organization (agency).
    pub organization: String,
    /// The agency's jurisdiction.
    pub jurisdiction: String,
    /// The stated purpose.
    pub purpose: String,
    /// The case number ("" when none).
    pub case_number: String,
    /// `allow` or `deny`.
    pub decision: String,
    /// The rule behind the decision.
    pub rule: String,
    /// Whether any read was returned.
    pub returned: bool,
    /// How many reads were returned.
    pub reads_returned: u64,
    /// Start of the searched capture window.
    pub window_from: DateTime<Utc>,
    /// End of the searched capture window.
    pub window_to: DateTime<Utc>,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
    /// A JSON array.
    Json,
    /// An aligned text table.
    Table,
}

fn in_window(t: DateTime<Utc>, from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> bool {
    from.is_none_or(|f| t >= f) && to.is_none_or(|e| t < e)
}

/// The access records in `[from, to)` (by record time), oldest first, with the problems met
/// reading the ledger. Plates are opened with `audit_key` when given.
pub async fn access_rows(
    reader: &LogReader,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    audit_key: Option<&AuditKey>,
) -> Result<(Vec<AccessRow>, Vec<String>), AuditError> {
    let mut rows = Vec::new();
    let (_, problems) = for_each_record(reader, |index, r| {
        let RecordBody::Access(a) = r.body else { return };
        if !in_window(r.timestamp, from, to) {
            return;
        }
        let plate = match audit_key {
            None => SEALED.to_string(),
            Some(k) => k.open_plate(&a.plate_ciphertext).unwrap_or_else(|e| format!("(cannot open: {e})")),
        };
        rows.push(AccessRow {
            entry: index,
            time: r.timestamp,
            plate,
            username: a.principal,
            organization: a.agency,
            jurisdiction: a.jurisdiction,
            purpose: a.purpose,
            case_number: a.case_number.unwrap_or_default(),
            decision: match a.decision {
                Decision::Allow => "allow".into(),
                Decision::Deny => "deny".into(),
            },
            rule: a.rule,
            returned: a.receipt.count > 0,
            reads_returned: a.receipt.count,
            window_from: a.window_from,
            window_to: a.window_to,
        });
    })
    .await?;
    Ok((rows, problems))
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

const HEADER: [&str; 12] = [
    "time",
    "plate",
    "username",
    "organization",
    "jurisdiction",
    "purpose",
    "case_number",
    "decision",
    "rule",
    "returned",
    "reads_returned",
    "entry",
];

fn cells(r: &AccessRow) -> [String; 12] {
    [
        ts(r.time),
        r.plate.clone(),
        r.username.clone(),
        r.organization.clone(),
        r.jurisdiction.clone(),
        r.purpose.clone(),
        r.case_number.clone(),
        r.decision.clone(),
        r.rule.clone(),
        if r.returned { "yes".into() } else { "no".into() },
        r.reads_returned.to_string(),
        r.entry.to_string(),
    ]
}

/// Writes the access report.
pub fn write_access(rows: &[AccessRow], format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows).map_err(std::io::Error::other)?;
            writeln!(out)
        }
        Format::Csv => {
            writeln!(out, "{}", HEADER.join(","))?;
            for r in rows {
                let c = cells(r);
                writeln!(out, "{}", c.iter().map(|s| csv_field(s)).collect::<Vec<_>>().join(","))?;
            }
            Ok(())
        }
        Format::Table => {
            let body: Vec<[String; 12]> = rows.iter().map(cells).collect();
            let mut widths = HEADER.map(|h| h.chars().count());
            for c in &body {
                for (w, s) in widths.iter_mut().zip(c.iter()) {
                    *w = (*w).max(s.chars().count());
                }
            }
            let line = |c: &[String]| -> String {
                c.iter()
                    .zip(widths.iter())
                    .map(|(s, w)| format!("{s:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            writeln!(out, "{}", line(&HEADER.map(String::from)))?;
            for c in &body {
                writeln!(out, "{}", line(c))?;
            }
            writeln!(out, "{} access(es)", rows.len())
        }
    }
}

/// Searches and denials of one agency.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AgencyCounts {
    /// Allowed searches.
    pub searches: u64,
    /// Denied attempts.
    pub denials: u64,
    /// Reads returned over its searches.
    pub reads_returned: u64,
}

/// The public transparency report. Contains no plate and no person.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Start of the window (inclusive), if bounded.
    pub from: Option<DateTime<Utc>>,
    /// End of the window (exclusive), if bounded.
    pub to: Option<DateTime<Utc>>,
    /// Per agency (by agency name).
    pub agencies: BTreeMap<String, AgencyCounts>,
    /// Reads ingested (ingest commits in the window).
    pub reads_ingested: u64,
    /// Reads deleted (deletion proofs in the window).
    pub reads_deleted: u64,
    /// Capture days whose key was destroyed in the window.
    pub days_shredded: u64,
    /// Holds placed in the window.
    pub holds_placed: u64,
    /// Holds released in the window.
    pub holds_released: u64,
    /// Reads kept back under hold by the deletions in the window.
    pub reads_held: u64,
    /// Age in hours of the oldest read stored now, if any.
    pub oldest_read_age_hours: Option<i64>,
    /// Settings audits in the window, and how many failed.
    pub audits: u64,
    /// Failed settings audits in the window.
    pub audits_failed: u64,
}

/// Builds the summary for `[from, to)` from the ledger, and the oldest read from the store.
pub async fn summary(
    reader: &LogReader,
    reads: &ReadStore,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(Summary, Vec<String>), AuditError> {
    let mut s = Summary {
        from,
        to,
        ..Summary::default()
    };
    let mut shredded: BTreeSet<String> = BTreeSet::new();
    // Per day: (seen a batch proof, closing reads deleted, closing reads held).
    let mut closing_totals: BTreeMap<chrono::NaiveDate, (bool, u64, u64)> = BTreeMap::new();
    let (_, problems) = for_each_record(reader, |_, r| {
        if !in_window(r.timestamp, from, to) {
            return;
        }
        match r.body {
            RecordBody::Access(a) => {
                let c = s.agencies.entry(a.agency).or_default();
                match a.decision {
                    Decision::Allow => {
                        c.searches += 1;
                        c.reads_returned += a.receipt.count;
                    }
                    Decision::Deny => c.denials += 1,
                }
            }
            RecordBody::IngestCommit(c) => s.reads_ingested += c.count,
            RecordBody::DeletionProof(p) => {
                // A day's closing proof (no batch) restates the totals of its batch proofs:
                // count it only for a day proven without batches (records before batches).
                let totals = closing_totals.entry(p.day).or_insert((false, 0, 0));
                if p.batch.is_some() {
                    totals.0 = true;
                    s.reads_deleted += p.reads_deleted;
                    s.reads_held += p.reads_held;
                } else {
                    totals.1 += p.reads_deleted;
                    totals.2 += p.reads_held;
                }
                if p.key_destroyed {
                    shredded.insert(format!("day:{}", p.day));
                }
            }
            RecordBody::KeyDestroyed(k) if k.key_id.starts_with("day:") => {
                shredded.insert(k.key_id);
            }
            RecordBody::HoldPlaced(_) => s.holds_placed += 1,
            RecordBody::HoldReleased(_) => s.holds_released += 1,
            RecordBody::SettingsAudit(a) => {
                s.audits += 1;
                if !a.passed {
                    s.audits_failed += 1;
                }
            }
            _ => {}
        }
    })
    .await?;
    s.days_shredded = shredded.len() as u64;
    for (had_batches, deleted, held) in closing_totals.into_values() {
        if !had_batches {
            s.reads_deleted += deleted;
            s.reads_held += held;
        }
    }
    if let Some(first) = reads.days().await?.first() {
        use futures::StreamExt as _;
        let mut keys = reads.list_day(*first);
        let mut oldest: Option<DateTime<Utc>> = None;
        while let Some(k) = keys.next().await {
            let k = k?;
            oldest = Some(oldest.map_or(k.captured_at, |o| o.min(k.captured_at)));
        }
        s.oldest_read_age_hours = oldest.map(|o| (now - o).num_hours());
    }
    Ok((s, problems))
}

/// Writes the summary as JSON or text (csv is written as text too: the summary is not a table
/// of like rows).
pub fn write_summary(s: &Summary, format: Format, out: &mut dyn Write) -> std::io::Result<()> {
    if format == Format::Json {
        serde_json::to_writer_pretty(&mut *out, s).map_err(std::io::Error::other)?;
        return writeln!(out);
    }
    let w = |t: Option<DateTime<Utc>>| t.map(ts).unwrap_or_else(|| "-".into());
    writeln!(out, "lethe transparency report, {} to {}", w(s.from), w(s.to))?;
    writeln!(out, "\nsearches by agency:")?;
    if s.agencies.is_empty() {
        writeln!(out, "  (none)")?;
    }
    let width = s.agencies.keys().map(|a| a.chars().count()).max().unwrap_or(0);
    for (agency, c) in &s.agencies {
        writeln!(
            out,
            "  {agency:<width$}  {} search(es), {} denied, {} read(s) returned",
            c.searches, c.denials, c.reads_returned
        )?;
    }
    writeln!(out, "\nreads ingested:       {}", s.reads_ingested)?;
    writeln!(out, "reads deleted:        {}", s.reads_deleted)?;
    writeln!(out, "days shredded:        {}", s.days_shredded)?;
    writeln!(out, "holds placed:         {}", s.holds_placed)?;
    writeln!(out, "holds released:       {}", s.holds_released)?;
    writeln!(out, "reads kept for holds: {}", s.reads_held)?;
    match s.oldest_read_age_hours {
        Some(h) => writeln!(out, "oldest read age:      {h} h")?,
        None => writeln!(out, "oldest read age:      (no reads stored)")?,
    }
    writeln!(out, "settings audits:      {} ({} with findings)", s.audits, s.audits_failed)
}
