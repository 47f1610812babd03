//! `lethe search PLATE --purpose P --case C`: a plate search (client).
//!
//! Every search, allowed or not, is recorded in the server's ledger before anything is returned.
//! Output: one line per result (or one JSON object per line with `--json`), in capture-time
//! order; the access record number and window go to stderr. A refused search exits 2 and prints
//! the status code and message on one line.

use std::io::Write;
use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use serde_json::json;

use super::client::{authed, status_line, ClientArgs};
use crate::api::convert::{from_timestamp, to_timestamp};
use crate::api::proto::search_client::SearchClient;
use crate::api::proto::{search_response::Item, SearchRequest, SearchResult};

/// `lethe search` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The plate (case, spaces, dashes and dots are ignored).
    pub plate: String,
    /// Why: one of the purposes the policy allows (e.g. investigation, stolen-vehicle).
    #[arg(long)]
    pub purpose: String,
    /// The case or incident number.
    #[arg(long = "case")]
    pub case_number: String,
    /// Window start: RFC 3339 (`2026-12-01T08:00:00Z`) or a UTC date (`2026-12-01`). Default: the
    /// retention cutoff.
    #[arg(long, value_parser = parse_time)]
    pub from: Option<DateTime<Utc>>,
    /// Window end, same forms (a date means the end of that day). Default: now.
    #[arg(long, value_parser = parse_time_end)]
    pub to: Option<DateTime<Utc>>,
    /// Also return OCR look-alikes (0/O, 8/B, …); each result says whether it matched exactly.
    #[arg(long)]
    pub folded: bool,
    /// Only reads of this camera.
    #[arg(long)]
    pub camera: Option<String>,
    /// One JSON object per result per line.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc())
        .map_err(|_| format!("'{s}' is not an RFC 3339 time or a YYYY-MM-DD date"))
}

fn parse_time_end(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_nano_opt(23, 59, 59, 999_999_999).expect("end of day").and_utc());
    }
    parse_time(s)
}

/// Runs the search; exit 0 on success (even with no results), 2 when the server refuses.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let token = args.client.token(config)?;
    let channel = args.client.connect().await?;
    let mut client = SearchClient::new(channel).max_decoding_message_size(256 << 20);
    let req = SearchRequest {
        plate: args.plate.clone(),
        purpose: args.purpose.clone(),
        case_number: args.case_number.clone(),
        from: args.from.map(to_timestamp),
        to: args.to.map(to_timestamp),
        folded: args.folded,
        camera_id: args.camera.clone().unwrap_or_default(),
    };
    let mut stream = match client.search(authed(req, &token)?).await {
        Ok(r) => r.into_inner(),
        Err(s) => {
            eprintln!("{}", status_line(&s));
            return Ok(2);
        }
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut n = 0usize;
    loop {
        let msg = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => break,
            Err(s) => {
                eprintln!("{}", status_line(&s));
                return Ok(2);
            }
        };
        match msg.item {
            Some(Item::Header(h)) => {
                let w = |t: Option<prost_types::Timestamp>| {
                    t.and_then(|t| from_timestamp(&t).ok())
                        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .unwrap_or_default()
                };
                // The server clips the window to retention; a window wholly outside it clips to
                // nothing (its start after its end), which is said in words.
                let empty = match (h.from, h.to) {
                    (Some(f), Some(t)) => (f.seconds, f.nanos) > (t.seconds, t.nanos),
                    _ => false,
                };
                let window = if empty {
                    "window outside the retention period (nothing before the cutoff or in the future is ever returned)".to_string()
                } else {
                    format!("window {} .. {}", w(h.from), w(h.to))
                };
                eprintln!(
                    "access record #{} · {window} · {} result(s){}",
                    h.access_entry,
                    h.count,
                    if h.truncated {
                        " · TRUNCATED: more reads matched; narrow the window"
                    } else {
                        ""
                    }
                );
            }
            Some(Item::Result(r)) => {
                n += 1;
                let line = if args.json { json_line(&r) } else { text_line(&r) };
                if let Err(e) = writeln!(out, "{line}") {
                    // `lethe search … | head`: the reader has gone; that is not a failure.
                    if e.kind() == std::io::ErrorKind::BrokenPipe {
                        return Ok(0);
                    }
                    return Err(e.into());
                }
            }
            None => {}
        }
    }
    match out.flush() {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
        r => r?,
    }
    if !args.json && n == 0 {
        eprintln!("no reads found");
    }
    Ok(0)
}

fn time(r: &SearchResult) -> String {
    r.read
        .as_ref()
        .and_then(|x| x.captured_at)
        .and_then(|t| from_timestamp(&t).ok())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
        .unwrap_or_default()
}

fn json_line(r: &SearchResult) -> String {
    let read = r.read.clone().unwrap_or_default();
    let v = read.vehicle.unwrap_or_default();
    let nz = |s: &str| (!s.is_empty()).then(|| s.to_string());
    json!({
        "read_id": read.read_id,
        "plate": read.plate,
        "plate_canonical": r.plate_canonical,
        "exact": r.exact,
        "region": nz(&read.region),
        "captured_at": time(r),
        "camera_id": read.camera_id,
        "lat": read.position.map(|p| p.lat),
        "lon": read.position.map(|p| p.lon),
        "confidence": read.confidence,
        "vehicle": {"make": nz(&v.make), "model": nz(&v.model), "color": nz(&v.color), "body": nz(&v.body)},
        "source": read.source.into_iter().collect::<std::collections::BTreeMap<_, _>>(),
        "image_type": nz(&read.image_type),
        "image_bytes": read.image.len(),
        "image_sha256": (!read.image.is_empty()).then(|| hex::encode(ring::digest::digest(&ring::digest::SHA256, &read.image).as_ref())),
    })
    .to_string()
}

fn text_line(r: &SearchResult) -> String {
    let read = r.read.clone().unwrap_or_default();
    let pos = read
        .position
        .map(|p| format!("{:.5},{:.5}", p.lat, p.lon))
        .unwrap_or_else(|| "-".into());
    format!(
        "{}  {:<10} {:<6} {:<3} camera {}  at {}  image {} B  id {}",
        time(r),
        r.plate_canonical,
        if r.exact { "exact" } else { "folded" },
        if read.region.is_empty() { "-" } else { &read.region },
        read.camera_id,
        pos,
        read.image.len(),
        read.read_id
    )
}
