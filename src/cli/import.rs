//! `lethe import FILE`: stream reads from a file to a server (client).
//!
//! Formats, detected from the bytes (gzip or plain; then the first line), or forced with
//! `--format`:
//! - `pipe`: the pipe-delimited ALPR export of the sample data (`captured_local|timezone|device|
//!   location|address|zipcode|plate|region|lat|lon`): naive local times `MM/DD/YYYY - HH:MM:SS` in
//!   the named IANA zone, `NA` for missing values, device ids as the units wrote them.
//! - `jsonl`: one JSON object per line: `plate`, `captured_at` (RFC 3339), `camera_id`, and
//!   optionally `read_id`, `region`, `lat`/`lon` (or `position`), `confidence`, `vehicle`,
//!   `source`, `image_type`, `image_base64`. Unknown fields are ignored.
//!
//! Each row gets a read id derived from its content and row number (unless the JSON gives one),
//! so re-running an import is idempotent: rows already stored come back as duplicates. With
//! `--rebase-to-now`, times are shifted so the newest read is now (a first pass over the file
//! finds it; the file is streamed twice, never held in memory); the shift is part of the id, so a
//! rebased import is a new dataset each time.
//!
//! Reads go out in batches over `--streams` bidirectional streams; a batch counts only when its
//! acknowledgement arrives (the server acknowledges after the reads are durable and committed to
//! the ledger). Rows that cannot be parsed, and reads the server rejects, are reported by row
//! number and reason, and counted by reason in the final summary; none is dropped silently.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Deserialize;

use super::client::{authed, status_line, ClientArgs};
use crate::api::convert::to_timestamp;
use crate::api::proto::ingest_client::IngestClient;
use crate::api::proto::{self, ReadStatus};
use crate::clock::{Clock, SystemClock};

/// Input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Detect from the file.
    Auto,
    /// The pipe-delimited ALPR export (the sample data's format).
    Pipe,
    /// JSON lines.
    Jsonl,
}

/// `lethe import` arguments.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The file (gzip or plain).
    pub file: PathBuf,
    /// Input format.
    #[arg(long, value_enum, default_value = "auto")]
    pub format: Format,
    /// Shift every time so the newest read is now, keeping the spacing (for old datasets).
    #[arg(long)]
    pub rebase_to_now: bool,
    /// Attach a synthetic image of this many bytes to every read (benchmarks).
    #[arg(long, default_value_t = 0)]
    pub image_bytes: usize,
    /// Reads per batch (lowered automatically so a batch stays under 8 MiB).
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Concurrent streams.
    #[arg(long, default_value_t = 4)]
    pub streams: usize,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// How many problem rows are printed one by one; all are counted.
const MAX_ROW_REPORTS: u64 = 1000;

/// Opens a file, decompressing gzip when its first bytes say so.
pub fn open(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut f = File::open(path)?;
    if gzip_magic(&mut f)? {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(BufReader::new(f)))))
    } else {
        Ok(Box::new(BufReader::with_capacity(1 << 16, f)))
    }
}

/// Whether the file starts with the gzip magic bytes (and is read as gzip). Leaves `f` at its start.
fn gzip_magic(f: &mut File) -> std::io::Result<bool> {
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic)?;
    f.seek(SeekFrom::Start(0))?;
    Ok(n == 2 && magic == [0x1f, 0x8b])
}

/// A row parser.
#[derive(Debug, Clone)]
pub enum RowParser {
    /// Pipe-delimited, with the header's column positions.
    Pipe(PipeColumns),
    /// JSON lines.
    Jsonl,
}

/// Column positions of the pipe format.
#[derive(Debug, Clone)]
pub struct PipeColumns {
    n: usize,
    captured_local: usize,
    timezone: usize,
    device: usize,
    plate: usize,
    region: Option<usize>,
    lat: Option<usize>,
    lon: Option<usize>,
    source: Vec<(String, usize)>,
}

impl PipeColumns {
    /// From the header line.
    pub fn from_header(header: &str) -> Result<Self, String> {
        let cols: Vec<String> = header
            .trim_end_matches(['\r', '\n'])
            .split('|')
            .map(|c| c.trim().to_ascii_lowercase())
            .collect();
        let find = |name: &str| cols.iter().position(|c| c == name);
        let need = |name: &str| find(name).ok_or_else(|| format!("header has no '{name}' column"));
        Ok(Self {
            n: cols.len(),
            captured_local: need("captured_local")?,
            timezone: need("timezone")?,
            device: need("device")?,
            plate: need("plate")?,
            region: find("region"),
            lat: find("lat"),
            lon: find("lon"),
            source: ["location", "address", "zipcode"]
                .iter()
                .filter_map(|n| find(n).map(|i| (n.to_string(), i)))
                .collect(),
        })
    }
}

/// A parsed row, before any time shift.
#[derive(Debug, Clone)]
pub struct Row {
    /// The read (without image unless the row had one).
    pub read: proto::Read,
    /// Its capture instant.
    pub captured_at: DateTime<Utc>,
    /// The client read id was given by the row itself.
    pub explicit_id: bool,
}

fn na(s: &str) -> Option<&str> {
    let t = s.trim();
    (!t.is_empty() && !t.eq_ignore_ascii_case("NA")).then_some(t)
}

/// Converts a naive local time in `tz` to UTC. In the repeated hour when clocks go back, the
/// earlier instant is taken; a time in the skipped hour when clocks go forward does not exist.
pub fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> Result<DateTime<Utc>, String> {
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        chrono::LocalResult::Ambiguous(a, _) => Ok(a.with_timezone(&Utc)),
        chrono::LocalResult::None => Err(format!(
            "captured_local: {naive} does not exist in {tz} (skipped by a daylight-saving change)"
        )),
    }
}

fn parse_pipe(c: &PipeColumns, line: &str) -> Result<Row, String> {
    let f: Vec<&str> = line.trim_end_matches(['\r', '\n']).split('|').collect();
    if f.len() != c.n {
        return Err(format!("expected {} fields, found {}", c.n, f.len()));
    }
    let local = na(f[c.captured_local]).ok_or("captured_local: missing")?;
    let naive = NaiveDateTime::parse_from_str(local, "%m/%d/%Y - %H:%M:%S")
        .map_err(|_| format!("captured_local: '{local}' is not MM/DD/YYYY - HH:MM:SS"))?;
    let zone = na(f[c.timezone]).ok_or("timezone: missing")?;
    let tz: Tz = zone.parse().map_err(|_| format!("timezone: '{zone}' is not an IANA zone"))?;
    let captured_at = local_to_utc(naive, tz)?;
    let device = na(f[c.device]).ok_or("device: missing")?;
    let plate = na(f[c.plate]).ok_or("plate: missing")?;
    let num = |name: &str, i: Option<usize>| -> Result<Option<f64>, String> {
        match i.and_then(|i| na(f[i])) {
            None => Ok(None),
            Some(v) => v.parse::<f64>().map(Some).map_err(|_| format!("{name}: '{v}' is not a number")),
        }
    };
    let position = match (num("lat", c.lat)?, num("lon", c.lon)?) {
        (Some(lat), Some(lon)) => Some(proto::Position { lat, lon }),
        (None, None) => None,
        _ => return Err("lat/lon: only one of the pair is given".into()),
    };
    let source = c
        .source
        .iter()
        .filter_map(|(name, i)| na(f[*i]).map(|v| (name.clone(), v.to_string())))
        .collect();
    Ok(Row {
        read: proto::Read {
            plate: plate.to_string(),
            region: c.region.and_then(|i| na(f[i])).unwrap_or_default().to_string(),
            captured_at: Some(to_timestamp(captured_at)),
            camera_id: device.to_string(),
            position,
            source,
            ..Default::default()
        },
        captured_at,
        explicit_id: false,
    })
}

#[derive(Deserialize)]
struct JsonPosition {
    lat: f64,
    lon: f64,
}

#[derive(Deserialize, Default)]
struct JsonVehicle {
    make: Option<String>,
    model: Option<String>,
    color: Option<String>,
    body: Option<String>,
}

#[derive(Deserialize)]
struct JsonRead {
    read_id: Option<String>,
    plate: Option<String>,
    region: Option<String>,
    captured_at: Option<String>,
    camera_id: Option<String>,
    lat: Option<f64>,
    lon: Option<f64>,
    position: Option<JsonPosition>,
    confidence: Option<f32>,
    vehicle: Option<JsonVehicle>,
    #[serde(default)]
    source: BTreeMap<String, String>,
    image_type: Option<String>,
    image_base64: Option<String>,
}

fn parse_json(line: &str) -> Result<Row, String> {
    let j: JsonRead = serde_json::from_str(line).map_err(|e| format!("not a JSON read object: {e}"))?;
    let at = j.captured_at.ok_or("captured_at: missing")?;
    let captured_at = DateTime::parse_from_rfc3339(&at)
        .map_err(|_| format!("captured_at: '{at}' is not an RFC 3339 time"))?
        .with_timezone(&Utc);
    let position = match (j.position, j.lat, j.lon) {
        (Some(p), _, _) => Some(proto::Position { lat: p.lat, lon: p.lon }),
        (None, Some(lat), Some(lon)) => Some(proto::Position { lat, lon }),
        (None, None, None) => None,
        _ => return Err("lat/lon: only one of the pair is given".into()),
    };
    let image = match j.image_base64 {
        Some(b) => base64::engine::general_purpose::STANDARD
            .decode(b.trim())
            .map_err(|_| "image_base64: not base64".to_string())?,
        None => Vec::new(),
    };
    let v = j.vehicle.unwrap_or_default();
    let explicit_id = j.read_id.as_deref().is_some_and(|s| !s.trim().is_empty());
    Ok(Row {
        read: proto::Read {
            read_id: j.read_id.unwrap_or_default(),
            plate: j.plate.ok_or("plate: missing")?,
            region: j.region.unwrap_or_default(),
            captured_at: Some(to_timestamp(captured_at)),
            camera_id: j.camera_id.ok_or("camera_id: missing")?,
            position,
            confidence: j.confidence,
            vehicle: Some(proto::Vehicle {
                make: v.make.unwrap_or_default(),
                model: v.model.unwrap_or_default(),
                color: v.color.unwrap_or_default(),
                body: v.body.unwrap_or_default(),
            }),
            source: j.source.into_iter().collect(),
            image_type: j.image_type.unwrap_or_default(),
            image: image.into(),
        },
        captured_at,
        explicit_id,
    })
}

impl RowParser {
    /// Parses one data line.
    pub fn parse(&self, line: &str) -> Result<Row, String> {
        match self {
            RowParser::Pipe(c) => parse_pipe(c, line),
            RowParser::Jsonl => parse_json(line),
        }
    }
}

/// Reads the first line and picks the parser; for the pipe format the first line is the header.
/// Returns the parser and whether the first line is a header (not data).
pub fn detect(first_line: &str, forced: Format) -> Result<(RowParser, bool), String> {
    let t = first_line.trim_start_matches('\u{feff}').trim();
    let looks_pipe = t.to_ascii_lowercase().contains("captured_local") && t.contains('|');
    match forced {
        Format::Pipe => Ok((RowParser::Pipe(PipeColumns::from_header(t)?), true)),
        Format::Jsonl => Ok((RowParser::Jsonl, false)),
        Format::Auto if t.starts_with('{') => Ok((RowParser::Jsonl, false)),
        Format::Auto if looks_pipe => Ok((RowParser::Pipe(PipeColumns::from_header(t)?), true)),
        Format::Auto => Err("cannot tell the format from the first line (expected a JSON object or the pipe-delimited header with captured_local); use --format".into()),
    }
}

/// A file that cannot be read on (a damaged or cut-short gzip stream, a disk error): the import
/// stops there, whatever the row.
#[derive(Debug)]
struct ReadFailure {
    row: u64,
    error: std::io::Error,
}

impl ReadFailure {
    fn to_error(&self, path: &Path, sent_nothing: bool) -> anyhow::Error {
        anyhow::anyhow!(
            "{}: row {}: cannot read the file: {} (damaged or cut short){}",
            path.display(),
            self.row,
            self.error,
            if sent_nothing { "; nothing was sent" } else { "" }
        )
    }
}

/// Iterates `(row number, line)` over a file's lines, 1-based; a line that is not UTF-8 is
/// `Ok(Err)` with its row number. A read error ends the iteration with `Err`: a decoder that
/// failed once fails again on every later read, so nothing after it is a row.
fn lines(reader: Box<dyn BufRead + Send>) -> impl Iterator<Item = Result<(u64, Result<String, String>), ReadFailure>> {
    let mut reader = reader;
    let mut n = 0u64;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed {
            return None;
        }
        let mut buf = Vec::new();
        n += 1;
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => Some(Ok((n, String::from_utf8(buf).map_err(|_| "not UTF-8".to_string())))),
            Err(error) => {
                failed = true;
                Some(Err(ReadFailure { row: n, error }))
            }
        }
    })
}

/// A stable read id for a row: its content, row number and time shift.
fn row_id(line: &str, row: u64, shift: Duration) -> String {
    let d = ring::digest::digest(
        &ring::digest::SHA256,
        format!("{row}\n{}\n{}", shift.num_seconds(), line.trim_end()).as_bytes(),
    );
    format!("imp-{}", hex::encode(&d.as_ref()[..16]))
}

/// A synthetic image of `n` bytes (not compressible, not meaningful).
fn synthetic_image(n: usize) -> bytes::Bytes {
    (0..n)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect::<Vec<u8>>()
        .into()
}

/// Progress and outcome counters.
#[derive(Debug, Default)]
pub struct Summary {
    /// Data rows read.
    pub rows: u64,
    /// Reads sent to the server.
    pub sent: u64,
    /// Acknowledged as newly stored.
    pub stored: u64,
    /// Acknowledged as already stored.
    pub duplicates: u64,
    /// Rejected by the server, by reason.
    pub rejected: BTreeMap<String, u64>,
    /// Rows that could not be parsed, by reason.
    pub unparseable: BTreeMap<String, u64>,
    reported: u64,
}

impl Summary {
    fn report_row(&mut self, row: u64, what: &str, reason: &str) {
        self.reported += 1;
        // Written, not printed: a closed stderr must not stop the import.
        let mut err = std::io::stderr().lock();
        if self.reported <= MAX_ROW_REPORTS {
            let _ = writeln!(err, "row {row}: {what}: {reason}");
        } else if self.reported == MAX_ROW_REPORTS + 1 {
            let _ = writeln!(err, "(further problem rows are counted in the summary, not listed)");
        }
    }

    /// Total rejected by the server.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    /// Total unparseable rows.
    pub fn unparseable_total(&self) -> u64 {
        self.unparseable.values().sum()
    }
}

/// A reason with its particulars (times, numbers) blanked, so reasons group.
fn reason_kind(reason: &str) -> String {
    reason
        .split(' ')
        .map(|w| if w.chars().any(|c| c.is_ascii_digit()) { "…" } else { w })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Batches one stream keeps in flight (the server works on as many at once).
const PIPELINE: usize = crate::api::server::INGEST_PIPELINE;

struct Batch {
    rows: Vec<u64>,
    reads: Vec<proto::Read>,
}

/// Runs the import. Exit 0 when every row was stored (or already was), 3 when some rows were
/// unparseable or rejected; errors (server unreachable or failing) are `Err`.
pub async fn run(config: Option<&Path>, args: Args) -> anyhow::Result<u8> {
    let token = args.client.token(config)?;
    let channel = args.client.connect().await?;
    let path = args.file.clone();
    // Pass 0: the format; pass 1 (only to rebase): the newest time and the row count.
    let first = match lines(open(&path).with_context(|| format!("{}", path.display()))?).next() {
        None => anyhow::bail!("{}: the file is empty: no rows to import", path.display()),
        Some(Err(f)) => return Err(f.to_error(&path, true)),
        Some(Ok((_, line))) => line.map_err(|e| anyhow::anyhow!("{}: row 1: {e}", path.display()))?,
    };
    let (parser, has_header) = detect(&first, args.format).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    // A gzip file is read through once before anything is sent, so that a damaged or cut-short
    // one is refused whole instead of being imported up to the damage.
    let gzip = gzip_magic(&mut File::open(&path).with_context(|| format!("{}", path.display()))?)?;
    let (shift, total) = if args.rebase_to_now || gzip {
        let (p, path2) = (parser.clone(), path.clone());
        let (newest, count) = tokio::task::spawn_blocking(move || -> anyhow::Result<(Option<DateTime<Utc>>, u64)> {
            let mut newest: Option<DateTime<Utc>> = None;
            let mut count = 0;
            for item in lines(open(&path2)?) {
                let (n, line) = item.map_err(|f| f.to_error(&path2, true))?;
                if n == 1 && has_header {
                    continue;
                }
                let Ok(line) = line else { continue };
                if line.trim().is_empty() {
                    continue;
                }
                count += 1;
                if let Ok(r) = p.parse(&line) {
                    newest = Some(newest.map_or(r.captured_at, |m| m.max(r.captured_at)));
                }
            }
            Ok((newest, count))
        })
        .await??;
        if args.rebase_to_now {
            let shift = newest.map_or(Duration::zero(), |n| SystemClock.now() - n);
            eprintln!("rebasing: every time shifted by {} h so the newest read is now", shift.num_hours());
            (shift, Some(count))
        } else {
            (Duration::zero(), Some(count))
        }
    } else {
        (Duration::zero(), None)
    };

    let summary = Arc::new(Mutex::new(Summary::default()));
    let progress = progress_bar(total);
    let per_read = args.image_bytes + 1024;
    let batch_size = args.batch_size.clamp(1, ((8 << 20) / per_read).max(1));
    let streams = args.streams.max(1);
    let (btx, brx) = tokio::sync::mpsc::channel::<Batch>(streams * 2);
    let stop = Arc::new(AtomicBool::new(false));

    // The reader: a blocking thread that parses and batches.
    let reader = {
        let summary = summary.clone();
        let stop = stop.clone();
        let image = (args.image_bytes > 0).then(|| synthetic_image(args.image_bytes));
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let mut batch = Batch {
                rows: Vec::new(),
                reads: Vec::new(),
            };
            for item in lines(open(&path)?) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let (n, line) = item.map_err(|f| f.to_error(&path, false))?;
                if n == 1 && has_header {
                    continue;
                }
                let parsed = line.and_then(|line| {
                    if line.trim().is_empty() {
                        return Ok(None);
                    }
                    let mut row = parser.parse(&line)?;
                    let at = row.captured_at + shift;
                    row.read.captured_at = Some(to_timestamp(at));
                    if !row.explicit_id {
                        row.read.read_id = row_id(&line, n, shift);
                    }
                    Ok(Some(row))
                });
                match parsed {
                    Ok(None) => {}
                    Ok(Some(mut row)) => {
                        summary.lock().expect("summary").rows += 1;
                        if let Some(img) = &image {
                            row.read.image = img.clone();
                            row.read.image_type = "application/octet-stream".into();
                        }
                        batch.rows.push(n);
                        batch.reads.push(row.read);
                        if batch.reads.len() >= batch_size {
                            let full = std::mem::replace(
                                &mut batch,
                                Batch {
                                    rows: Vec::new(),
                                    reads: Vec::new(),
                                },
                            );
                            if btx.blocking_send(full).is_err() {
                                break;
                            }
                        }
                    }
                    Err(reason) => {
                        let mut s = summary.lock().expect("summary");
                        s.rows += 1;
                        *s.unparseable.entry(reason_kind(&reason)).or_default() += 1;
                        s.report_row(n, "cannot parse", &reason);
                    }
                }
            }
            if !batch.reads.is_empty() {
                let _ = btx.blocking_send(batch);
            }
            Ok(())
        })
    };

    // The senders: one bidirectional stream each, up to PIPELINE batches in flight per stream.
    let brx = Arc::new(tokio::sync::Mutex::new(brx));
    let next_id = Arc::new(AtomicU64::new(1));
    let mut workers = Vec::new();
    for _ in 0..streams {
        let (brx, summary, stop, progress, next_id) = (brx.clone(), summary.clone(), stop.clone(), progress.clone(), next_id.clone());
        let mut client = IngestClient::new(channel.clone())
            .max_encoding_message_size(64 << 20)
            .max_decoding_message_size(64 << 20);
        let token = token.clone();
        workers.push(tokio::spawn(async move {
            let (tx, rx) = tokio::sync::mpsc::channel::<proto::IngestRequest>(PIPELINE);
            let mut acks = client
                .ingest_stream(authed(tokio_stream::wrappers::ReceiverStream::new(rx), &token)?)
                .await
                .map_err(|s| anyhow::anyhow!("{}", status_line(&s)))?
                .into_inner();
            // Up to PIPELINE batches are sent ahead of their acknowledgements (the server works
            // on them while the next one travels, and acknowledges them in order).
            let mut in_flight: VecDeque<(u64, Vec<u64>, u64)> = VecDeque::new();
            let mut more = true;
            loop {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let want = more && in_flight.len() < PIPELINE;
                tokio::select! {
                    biased;
                    ack = acks.message(), if !in_flight.is_empty() => {
                        let (id, rows, n) = in_flight.pop_front().expect("guarded");
                        let ack = match ack {
                            Ok(Some(a)) => a,
                            Ok(None) => anyhow::bail!("the server closed the stream without acknowledging batch {id}"),
                            Err(s) => {
                                stop.store(true, Ordering::Relaxed);
                                anyhow::bail!("{}", status_line(&s));
                            }
                        };
                        let mut s = summary.lock().expect("summary");
                        for r in &ack.results {
                            match r.status() {
                                ReadStatus::Stored => s.stored += 1,
                                ReadStatus::Duplicate => s.duplicates += 1,
                                ReadStatus::Rejected | ReadStatus::Unspecified => {
                                    let reason = format!("{}: {}", r.field, r.reason);
                                    *s.rejected.entry(reason_kind(&reason)).or_default() += 1;
                                    let row = rows.get(r.index as usize).copied().unwrap_or(0);
                                    s.report_row(row, "rejected", &reason);
                                }
                            }
                        }
                        drop(s);
                        if let Some(p) = &progress {
                            p.inc(n);
                        }
                    }
                    batch = async { brx.lock().await.recv().await }, if want => {
                        let Some(batch) = batch else {
                            more = false;
                            continue;
                        };
                        let id = next_id.fetch_add(1, Ordering::Relaxed);
                        let n = batch.reads.len() as u64;
                        summary.lock().expect("summary").sent += n;
                        // A send fails only when the stream ended; its status comes with the
                        // acknowledgement awaited next.
                        let _ = tx
                            .send(proto::IngestRequest {
                                batch_id: id,
                                reads: batch.reads,
                            })
                            .await;
                        in_flight.push_back((id, batch.rows, n));
                    }
                    else => break,
                }
            }
            drop(tx);
            // Drain: the server ends the stream once ours is closed.
            while let Ok(Some(_)) = acks.message().await {}
            Ok::<(), anyhow::Error>(())
        }));
    }
    let mut failure: Option<anyhow::Error> = None;
    for w in workers {
        match w.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                stop.store(true, Ordering::Relaxed);
                failure.get_or_insert(e);
            }
            Err(e) => {
                failure.get_or_insert(e.into());
            }
        }
    }
    // Unblock the reader if the senders stopped early.
    drop(brx);
    if let Err(e) = reader.await? {
        failure.get_or_insert(e);
    }
    if let Some(p) = &progress {
        p.finish_and_clear();
    }
    let s = summary.lock().expect("summary");
    print_summary(&s, &args.file);
    if let Some(e) = failure {
        // One line: what went wrong first, then what it leaves behind.
        let acked = s.stored + s.duplicates + s.rejected_total();
        return Err(anyhow::anyhow!(
            "{} — import stopped: {} of {} sent reads were acknowledged and are stored; the rest were not and must be re-sent (re-running the same import is idempotent{})",
            crate::cli::one_line(&e),
            acked,
            s.sent,
            if args.rebase_to_now {
                ", except with --rebase-to-now, whose shift changes with the time it is run"
            } else {
                ""
            }
        ));
    }
    Ok(if s.rejected_total() + s.unparseable_total() > 0 { 3 } else { 0 })
}

fn progress_bar(total: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let p = match total {
        Some(t) => indicatif::ProgressBar::new(t).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} reads · {per_sec} · eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} reads acknowledged · {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        ),
    };
    Some(p)
}

fn print_summary(s: &Summary, file: &Path) {
    // Written, not printed: a reader that stops early (`| head`) ends the summary, not the import.
    let mut text = format!("{}: {} rows\n", file.display(), s.rows);
    text += &format!(
        "sent {} · stored {} · duplicates {} · rejected {} · unparseable {}\n",
        s.sent,
        s.stored,
        s.duplicates,
        s.rejected_total(),
        s.unparseable_total()
    );
    if !s.rejected.is_empty() {
        text += "rejected by reason:\n";
        for (reason, n) in &s.rejected {
            text += &format!("  {n:>8}  {reason}\n");
        }
    }
    if !s.unparseable.is_empty() {
        text += "unparseable by reason:\n";
        for (reason, n) in &s.unparseable {
            text += &format!("  {n:>8}  {reason}\n");
        }
    }
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|_| out.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "captured_local|timezone|device|location|address|zipcode|plate|region|lat|lon";

    fn pipe() -> RowParser {
        detect(HEADER, Format::Auto).unwrap().0
    }

    #[test]
    fn parses_the_sample_format() {
        let r = pipe()
            .parse("10/07/2021 - 16:30:51|America/Los_Angeles|SPD2020621MDC|Plain car|I-5 N Alderwood Manor WA 98036 United States|98036|LJT1222|WA|47.8128394|-122.2948006")
            .unwrap();
        assert_eq!(r.captured_at.to_rfc3339(), "2021-10-07T23:30:51+00:00", "PDT is UTC-7");
        assert_eq!(r.read.plate, "LJT1222");
        assert_eq!(r.read.camera_id, "SPD2020621MDC");
        assert_eq!(r.read.position.unwrap().lat, 47.8128394);
        assert_eq!(r.read.source.get("location").map(String::as_str), Some("Plain car"));
    }

    #[test]
    fn na_positions_and_messy_devices_import() {
        let r = pipe()
            .parse("10/02/2021 - 01:02:03|America/Los_Angeles|M207541_Deleted_2021-10-21_22 50:42|NA|NA|NA|ABC1234|WA|NA|NA")
            .unwrap();
        assert!(r.read.position.is_none());
        assert_eq!(r.read.camera_id, "M207541_Deleted_2021-10-21_22 50:42");
        assert!(r.read.source.is_empty());
    }

    #[test]
    fn bad_rows_say_why() {
        let p = pipe();
        let cases = [
            ("10/02/2021|America/Los_Angeles|D|NA|NA|NA|ABC1234|WA|NA|NA", "captured_local:"),
            ("10/02/2021 - 01:02:03|Mars/Base|D|NA|NA|NA|ABC1234|WA|NA|NA", "timezone:"),
            ("10/02/2021 - 01:02:03|America/Los_Angeles|NA|NA|NA|NA|ABC1234|WA|NA|NA", "device:"),
            ("10/02/2021 - 01:02:03|America/Los_Angeles|D|NA|NA|NA|NA|WA|NA|NA", "plate:"),
            (
                "10/02/2021 - 01:02:03|America/Los_Angeles|D|NA|NA|NA|ABC1234|WA|47.1|NA",
                "lat/lon:",
            ),
            ("10/02/2021 - 01:02:03|America/Los_Angeles|D|NA|NA|NA|ABC1234|WA|north|1", "lat:"),
            ("a|b", "expected 10 fields"),
            // 02:30 on 2021-03-14 was skipped in Los Angeles.
            (
                "03/14/2021 - 02:30:00|America/Los_Angeles|D|NA|NA|NA|ABC1234|WA|NA|NA",
                "does not exist",
            ),
        ];
        for (line, want) in cases {
            let e = p.parse(line).unwrap_err();
            assert!(e.starts_with(want) || e.contains(want), "{line}: {e}");
        }
    }

    #[test]
    fn repeated_hour_takes_the_earlier_instant() {
        // 01:30 on 2021-11-07 happened twice in Los Angeles (PDT, then PST).
        let r = pipe()
            .parse("11/07/2021 - 01:30:00|America/Los_Angeles|D|NA|NA|NA|ABC1234|WA|NA|NA")
            .unwrap();
        assert_eq!(r.captured_at.to_rfc3339(), "2021-11-07T08:30:00+00:00");
    }

    #[test]
    fn json_lines() {
        let (p, header) = detect(r#"{"plate":"x"}"#, Format::Auto).unwrap();
        assert!(!header);
        let r = p
            .parse(r#"{"read_id":"g-1","plate":"7ABC123","captured_at":"2026-12-03T11:00:00-08:00","camera_id":"c","lat":1.5,"lon":2.5,"vehicle":{"make":"Toyota"},"extra":true,"image_base64":"AAEC"}"#)
            .unwrap();
        assert_eq!(r.captured_at.to_rfc3339(), "2026-12-03T19:00:00+00:00");
        assert!(r.explicit_id);
        assert_eq!(r.read.image, vec![0, 1, 2]);
        assert_eq!(r.read.vehicle.unwrap().make, "Toyota");
        assert!(p.parse(r#"{"plate":"A","camera_id":"c"}"#).unwrap_err().starts_with("captured_at:"));
        assert!(p.parse("not json").unwrap_err().starts_with("not a JSON"));
        assert!(detect("hello", Format::Auto).is_err());
    }

    #[test]
    fn gzip_is_detected_from_the_bytes() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("reads.dat");
        let mut e = flate2::write::GzEncoder::new(File::create(&gz).unwrap(), flate2::Compression::fast());
        e.write_all(format!("{HEADER}\nrow\n").as_bytes()).unwrap();
        e.finish().unwrap();
        let got: Vec<String> = lines(open(&gz).unwrap()).map(|r| r.unwrap().1.unwrap()).collect();
        assert_eq!(got[0].trim_end(), HEADER);
        let plain = dir.path().join("reads.txt");
        std::fs::write(&plain, "{}\n").unwrap();
        assert_eq!(lines(open(&plain).unwrap()).count(), 1);
    }

    #[test]
    fn a_cut_short_gzip_ends_the_lines_with_one_read_failure() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("reads.jsonl.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        for i in 0..5000 {
            writeln!(e, "{{\"plate\":\"P{i:06}\",\"captured_at\":\"2026-12-01T00:00:{:02}Z\"}}", i % 60).unwrap();
        }
        let whole = e.finish().unwrap();
        std::fs::write(&gz, &whole[..whole.len() / 2]).unwrap();
        let items: Vec<_> = lines(open(&gz).unwrap()).take(100_000).collect();
        assert!(items.len() < 100_000, "the lines never end");
        let (last, rows) = items.split_last().unwrap();
        assert!(rows.iter().all(|r| r.is_ok()));
        let failure = last.as_ref().unwrap_err();
        assert_eq!(failure.row as usize, rows.len() + 1);
        let msg = failure.to_error(&gz, true).to_string();
        assert!(msg.contains("cannot read the file") && msg.contains("nothing was sent"), "{msg}");
    }

    #[test]
    fn reasons_group_without_their_particulars() {
        assert_eq!(
            reason_kind("captured_at: 2021-10-07 23:30:51 UTC is already past the retention period (cutoff 2026-11-03 12:00:00 UTC)"),
            "captured_at: … … UTC is already past the retention period (cutoff … … UTC)"
        );
    }

    #[test]
    fn row_ids_are_stable_and_distinct() {
        let a = row_id("x|y", 2, Duration::zero());
        assert_eq!(a, row_id("x|y\n", 2, Duration::zero()));
        assert_ne!(a, row_id("x|y", 3, Duration::zero()));
        assert_ne!(a, row_id("x|y", 2, Duration::hours(1)));
        crate::model::read::check_read_id(&a).unwrap();
    }
}
