//! API benchmark: ingest throughput through the gRPC API against the raw object-store PUT rate of
//! the same object sizes on the same backend in the same run, then search latency.
//!
//! ```text
//! cargo run --release --example bench_api -- [--reads N] [--streams 32] [--batch 64]
//!     [--image-bytes 20480] [--max-puts 256] [--days 30] [--per-day 10000] [--blind-bits 9]
//!     [--searches 200]
//! ```
//! Backend: a local directory (a temp dir, fsync on, as `lethe serve` defaults); also S3 when
//! `LETHE_TEST_S3_ENDPOINT` (plus `LETHE_TEST_S3_BUCKET`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`) is set (`BENCH_ONLY_S3=1`: S3 only), under a fresh prefix.
//!
//! Ingest: reads of ~1 KiB metadata + a 20 KiB image, sent by `--streams` concurrent
//! bidirectional streams in batches, each acknowledged only after its objects are durable and its
//! ingest commit is in the ledger (group commit). Measured twice: with client read ids (each read
//! also writes an idempotency marker: 2 PUTs per read) and without (1 PUT per read). The server
//! keeps at most `--max-puts` object puts in flight (`ApiLimits::max_ingest_puts`).
//! Raw: create-only PUTs of objects of the size lethe stores, `--max-puts` in flight (the same
//! depth the server may use), before and after the API runs; their mean is the baseline.
//! Between them, to show where the time goes: raw PUTs named like lethe's reads (same directory
//! fan-out and name length), and `ReadStore::put` called directly (encryption, SHA-256, naming,
//! PUT; no gRPC, no ledger). Each phase also reports the whole machine's CPU per object and its
//! idle share (from /proc/stat: every process and kernel thread, radosgw's too on S3).
//!
//! `--reads 0` skips the ingest and raw PUT phases (search only).
//!
//! Search: a store of `--days` × `--per-day` reads (metadata only, each plate seen ~20 times in
//! the window) is filled directly through a read store with the server's KEK, 64 puts in flight.
//! On the local directory the fill writes through a second `LocalFileSystem` over the same
//! directory with fsync off (a flush per file would only slow the fill of millions of reads down,
//! and measures nothing a search does), then runs `sync` so that write-back does not run under the
//! searches; the server and the raw baseline then read those same files through the fsync-on
//! store (reads do not flush; each search's access record is flushed as in `lethe serve`). On S3
//! the fill uses the same store.
//! Then `--searches` plate searches go through the API (`city-pd`, each writing its access record
//! first), timed from the call to the last result, alternating with the **raw baseline** for the
//! same plate: the same store work without lethe — list the plate's blind-index bucket prefix of
//! every capture day in the retention window and GET every object whose name falls in the window,
//! with lethe's concurrency (`FIND_DAYS_AT_ONCE` days listed ahead, `FIND_FETCH_WINDOW` GETs in
//! flight across days), no decryption, ledger or gRPC (the prefixes are worked out beforehand). Prints p50/p99 of both, their ratio, and results and
//! candidate objects per search.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use lethe::api::proto::ingest_client::IngestClient;
use lethe::api::proto::search_client::SearchClient;
use lethe::api::proto::{self, search_response::Item};
use lethe::api::{convert, server, ApiLimits, ApiState, LedgerWriter};
use lethe::clock::{Clock, SharedClock, SystemClock};
use lethe::crypto::{blind, AuditKey, Kek, KeyName};
use lethe::ledger::{Ledger, LedgerConfig, SigningKey};
use lethe::model::{ReadInput, ReadLimits};
use lethe::policy::{ensure_dev_tokens, PolicySet};
use lethe::store::reads::{FIND_DAYS_AT_ONCE, FIND_FETCH_WINDOW};
use lethe::store::{layout, ReadKey, ReadStore, ReadStoreOptions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use tonic::transport::Channel;

struct Opts {
    reads: usize,
    streams: usize,
    batch: usize,
    image: usize,
    days: i64,
    per_day: usize,
    blind_bits: u8,
    searches: usize,
    put_concurrency: usize,
    max_puts: usize,
}

fn opts() -> Opts {
    let mut o = Opts {
        reads: 20_000,
        streams: 32,
        batch: 64,
        image: 20 * 1024,
        days: 30,
        per_day: 10_000,
        blind_bits: 9,
        searches: 200,
        put_concurrency: ApiLimits::default().ingest_concurrency,
        max_puts: ApiLimits::default().max_ingest_puts,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for w in args.chunks(2) {
        let v = || w.get(1).expect("a value").parse::<usize>().expect("a number");
        match w[0].as_str() {
            "--reads" => o.reads = v(),
            "--streams" => o.streams = v(),
            "--batch" => o.batch = v(),
            "--image-bytes" => o.image = v(),
            "--days" => o.days = v() as i64,
            "--per-day" => o.per_day = v(),
            "--blind-bits" => o.blind_bits = v() as u8,
            "--searches" => o.searches = v(),
            "--put-concurrency" => o.put_concurrency = v(),
            "--max-puts" => o.max_puts = v(),
            other => panic!("unknown option {other}"),
        }
    }
    o
}

/// ~1 KiB of metadata: an address-like source map.
fn source() -> std::collections::HashMap<String, String> {
    [
        (
            "address".to_string(),
            "1200 Example Avenue North, Seattle WA 98109 United States; ".repeat(12),
        ),
        ("location".to_string(), "Plain car".to_string()),
        ("zipcode".to_string(), "98109".to_string()),
    ]
    .into_iter()
    .collect()
}

fn wire_read(i: usize, id: bool, now: chrono::DateTime<chrono::Utc>, image: &bytes::Bytes) -> proto::Read {
    proto::Read {
        read_id: if id { format!("bench-{i}") } else { String::new() },
        plate: format!("B{:06}", i % 1_000_000),
        region: "WA".into(),
        captured_at: Some(convert::to_timestamp(now - chrono::Duration::milliseconds((i % 3_600_000) as i64))),
        camera_id: format!("cam-{}", i % 23),
        position: Some(proto::Position { lat: 47.6, lon: -122.3 }),
        confidence: Some(0.9),
        source: source(),
        image_type: "image/jpeg".into(),
        image: image.clone(),
        ..Default::default()
    }
}

struct Env {
    addr: std::net::SocketAddr,
    tokens: BTreeMap<String, String>,
    reads: ReadStore,
    kek: Kek,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(store: Arc<dyn ObjectStore>, o: &Opts, keys: &std::path::Path) -> Env {
    let kek = Kek::ephemeral();
    let reads = ReadStore::open(
        store.clone(),
        kek.clone(),
        ReadStoreOptions {
            blind_bits: o.blind_bits,
            object_metadata: false,
        },
    )
    .await
    .unwrap();
    let policies = PolicySet::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies"))).unwrap();
    let dev = ensure_dev_tokens(&policies.principals, &keys.join("dev-tokens.json")).unwrap();
    let tokens = dev
        .ids()
        .map(|i| (i.to_string(), dev.get(i).unwrap().expose().to_string()))
        .collect();
    let ledger = Ledger::open(store, LedgerConfig::default(), SigningKey::generate("bench/ledger").unwrap())
        .await
        .unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let limits = ApiLimits {
        ingest_concurrency: o.put_concurrency,
        max_ingest_puts: o.max_puts,
        ..ApiLimits::default()
    };
    let state = ApiState {
        reads: reads.clone(),
        auth: Arc::new(policies.authenticator(Some(&dev))),
        policy: Arc::new(policies.access),
        ledger: Arc::new(LedgerWriter::new(ledger, clock.clone(), "bench")),
        audit_key: AuditKey::ephemeral(),
        retention: policies.retention,
        clock,
        ingest_slots: ApiState::ingest_slots(&limits),
        limits,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(server::run(listener, state, async {
        let _ = rx.await;
    }));
    Env {
        addr,
        tokens,
        reads,
        kek,
        _stop: tx,
    }
}

async fn channel(addr: std::net::SocketAddr) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .tcp_nodelay(true)
        .initial_stream_window_size(server::STREAM_WINDOW)
        .initial_connection_window_size(server::CONNECTION_WINDOW)
        .connect()
        .await
        .unwrap()
}

fn authed<T>(m: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(m);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// Batches a bench client keeps in flight per stream.
const PIPELINE: usize = 2;

/// Reads/s through the API.
async fn ingest(env: &Env, o: &Opts, ids: bool, offset: usize) -> f64 {
    let image: bytes::Bytes = (0..o.image).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>().into();
    let now = SystemClock.now();
    let token = env.tokens["ingest-gateway"].clone();
    let per_stream = o.reads / o.streams;
    let t = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..o.streams {
        let ch = channel(env.addr).await;
        let (token, image) = (token.clone(), image.clone());
        let batch = o.batch;
        tasks.push(tokio::spawn(async move {
            let mut client = IngestClient::new(ch).max_encoding_message_size(64 << 20);
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let mut acks = client
                .ingest_stream(authed(tokio_stream::wrappers::ReceiverStream::new(rx), &token))
                .await
                .unwrap()
                .into_inner();
            let mut stored = 0u32;
            let base = offset + s * per_stream;
            let chunks: Vec<Vec<usize>> = (base..base + per_stream)
                .collect::<Vec<_>>()
                .chunks(batch)
                .map(<[usize]>::to_vec)
                .collect();
            let n_batches = chunks.len();
            // The client keeps up to PIPELINE batches ahead of the acknowledgements (the
            // server acknowledges them in order), so that sending overlaps the server's work.
            let window = Arc::new(tokio::sync::Semaphore::new(PIPELINE));
            let w2 = window.clone();
            let sender = tokio::spawn(async move {
                for (b, chunk) in chunks.into_iter().enumerate() {
                    w2.acquire().await.unwrap().forget();
                    let reads = chunk.iter().map(|&i| wire_read(i, ids, now, &image)).collect();
                    tx.send(proto::IngestRequest { batch_id: b as u64, reads }).await.unwrap();
                }
            });
            for _ in 0..n_batches {
                let a = acks.message().await.unwrap().unwrap();
                window.add_permits(1);
                assert_eq!(
                    a.rejected,
                    0,
                    "{:?}",
                    a.results.iter().find(|r| r.status() == proto::ReadStatus::Rejected)
                );
                stored += a.stored;
            }
            sender.await.unwrap();
            stored
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total as usize, per_stream * o.streams);
    total as f64 / t.elapsed().as_secs_f64()
}

/// How a raw PUT names its objects.
#[derive(Clone, Copy)]
enum Names {
    /// `{prefix}/{i % 97}/{i}`: short names in 97 directories.
    Plain,
    /// The shape of lethe's read names (`reads/{day}/{blind bucket}/{capture time}-{locator}`,
    /// one directory per bucket of `--blind-bits`), under `{prefix}/`.
    Lethe,
}

/// Objects/s of create-only PUTs of `size` bytes, `--max-puts` at a time (the server's bound on
/// object puts in flight, so that the baseline has the same depth the API may use).
async fn raw_put(store: Arc<dyn ObjectStore>, o: &Opts, size: usize, prefix: &str, names: Names) -> f64 {
    let body = bytes::Bytes::from((0..size).map(|i| (i * 13 % 251) as u8).collect::<Vec<u8>>());
    let now = SystemClock.now();
    let buckets = 1usize << o.blind_bits;
    let width = usize::from(o.blind_bits).div_ceil(4);
    let t = Instant::now();
    futures::stream::iter(0..o.reads)
        .map(|i| {
            let (store, body) = (store.clone(), body.clone());
            let path = match names {
                Names::Plain => Path::from(format!("{prefix}/{:02}/{i:08}", i % 97)),
                Names::Lethe => {
                    let captured_at = now - chrono::Duration::milliseconds((i % 3_600_000) as i64);
                    let key = ReadKey {
                        day: captured_at.date_naive(),
                        bucket: format!("{:0width$x}", (i * 7919) % buckets),
                        captured_at,
                        locator: format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)),
                    };
                    Path::from(format!("{prefix}/{key}"))
                }
            };
            async move {
                store
                    .put_opts(
                        &path,
                        PutPayload::from(body),
                        PutOptions {
                            mode: PutMode::Create,
                            ..Default::default()
                        },
                    )
                    .await
                    .unwrap();
            }
        })
        .buffer_unordered(o.max_puts.max(1))
        .collect::<Vec<_>>()
        .await;
    o.reads as f64 / t.elapsed().as_secs_f64()
}

/// Reads/s of [`ReadStore::put`] called directly (encryption, SHA-256, naming and the PUT; no
/// gRPC, no ledger), `--max-puts` at a time spread over the runtime's workers. The reads are
/// built and validated before the clock starts.
async fn store_put(env: &Env, o: &Opts, offset: usize) -> f64 {
    let image: bytes::Bytes = (0..o.image).map(|i| (i * 7 % 251) as u8).collect::<Vec<u8>>().into();
    let now = SystemClock.now();
    let limits = ReadLimits {
        max_image_bytes: 1 << 30,
        future_skew: chrono::Duration::minutes(5),
        cutoff: now - chrono::Duration::days(30),
        now,
    };
    let reads: Vec<_> = (offset..offset + o.reads)
        .map(|i| {
            convert::read_input(wire_read(i, false, now, &image))
                .unwrap()
                .validate(&limits, || format!("srv-{i:032}"))
                .unwrap()
        })
        .collect();
    let t = Instant::now();
    futures::stream::iter(reads)
        .map(|r| {
            let store = env.reads.clone();
            async move { tokio::spawn(async move { store.put(&r, false, now).await.unwrap() }).await.unwrap() }
        })
        .buffer_unordered(o.max_puts.max(1))
        .collect::<Vec<_>>()
        .await;
    o.reads as f64 / t.elapsed().as_secs_f64()
}

/// Whole-machine CPU from /proc/stat: (busy, idle) in clock ticks (1/100 s).
fn machine_cpu() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<u64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 5 {
        return (0, 0);
    }
    let idle = f[3] + f[4];
    (f.iter().sum::<u64>() - idle, idle)
}

/// One measured phase: its rate, and the whole machine's CPU over it (every process and kernel
/// thread: the store's own work included, radosgw's too on S3).
struct Phase {
    rate: f64,
    busy_us_per_op: f64,
    idle: f64,
}

async fn phase(ops: usize, f: impl std::future::Future<Output = f64>) -> Phase {
    let (b0, i0) = machine_cpu();
    let rate = f.await;
    let (b1, i1) = machine_cpu();
    let (busy, idle) = ((b1 - b0) as f64, (i1 - i0) as f64);
    Phase {
        rate,
        busy_us_per_op: busy * 10_000.0 / ops as f64,
        idle: if busy + idle > 0.0 { idle / (busy + idle) } else { 0.0 },
    }
}

/// This process's CPU time so far (user + system), from /proc/self/stat.
fn cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = after.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    let ticks = f.get(10).copied().unwrap_or(0) + f.get(11).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// One search's store work without lethe: list each prefix, GET every object named in the window
/// (`FIND_DAYS_AT_ONCE` prefixes listed ahead, `FIND_FETCH_WINDOW` GETs in flight across them, as
/// `ReadStore::find`). Returns the objects fetched.
async fn raw_search(
    store: &Arc<dyn ObjectStore>,
    prefixes: &[Path],
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
) -> usize {
    futures::stream::iter(prefixes.iter().cloned())
        .map(|p| {
            let store = store.clone();
            async move {
                store
                    .list(Some(&p))
                    .filter_map(|m| {
                        let m = m.unwrap();
                        let keep = ReadKey::parse(&m.location).is_some_and(|k| k.captured_at >= from && k.captured_at <= to);
                        futures::future::ready(keep.then_some(m.location))
                    })
                    .collect::<Vec<Path>>()
                    .await
            }
        })
        .buffered(FIND_DAYS_AT_ONCE)
        .flat_map(futures::stream::iter)
        .map(|n| {
            let store = store.clone();
            async move { store.get(&n).await.unwrap().bytes().await.unwrap().len() }
        })
        .buffer_unordered(FIND_FETCH_WINDOW)
        .count()
        .await
}

async fn search_latency(env: &Env, fill_store: Arc<dyn ObjectStore>, o: &Opts) {
    let total = o.days as usize * o.per_day;
    if total == 0 || o.searches == 0 {
        return;
    }
    let now = SystemClock.now();
    let limits = ReadLimits {
        max_image_bytes: 1 << 20,
        future_skew: chrono::Duration::minutes(5),
        cutoff: now - chrono::Duration::days(o.days + 1),
        now,
    };
    let plates = (total / 20).max(1); // each plate seen ~20 times in the window

    // The server's KEK, so that the server reads what the fill wrote (see the module docs).
    let fill = ReadStore::open(
        fill_store,
        env.kek.clone(),
        ReadStoreOptions {
            blind_bits: o.blind_bits,
            object_metadata: false,
        },
    )
    .await
    .unwrap();
    let t = Instant::now();
    let step = (total / 10).max(1);
    futures::stream::iter(0..total)
        .map(|i| {
            let reads = fill.clone();
            let at = now - chrono::Duration::minutes(5) - chrono::Duration::milliseconds(((i as i64) * 86_400_000 * o.days) / total as i64);
            async move {
                let r = ReadInput {
                    plate: format!("S{:06}", (i * 7919) % plates),
                    captured_at: Some(at),
                    camera_id: format!("cam-{}", i % 23),
                    source: source().into_iter().collect(),
                    ..Default::default()
                }
                .validate(&limits, || format!("s-{i}"))
                .unwrap();
                reads.put(&r, false, now).await.unwrap();
            }
        })
        .buffer_unordered(64)
        .fold(0usize, |n, ()| {
            if (n + 1) % step == 0 {
                eprintln!("  filled {} of {total} reads in {:.0} s", n + 1, t.elapsed().as_secs_f64());
            }
            futures::future::ready(n + 1)
        })
        .await;
    let filled = t.elapsed();
    let t = Instant::now();
    let _ = std::process::Command::new("sync").status();
    println!(
        "search store: {} days × {} reads/day = {total} reads, {} blind bits, filled in {:.0} s ({:.0} reads/s), sync {:.0} s",
        o.days,
        o.per_day,
        o.blind_bits,
        filled.as_secs_f64(),
        total as f64 / filled.as_secs_f64(),
        t.elapsed().as_secs_f64()
    );
    let retention = PolicySet::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/policies")))
        .unwrap()
        .retention;
    let raw_store = env.reads.object_store().clone();
    let mut client = SearchClient::new(channel(env.addr).await).max_decoding_message_size(256 << 20);
    let token = env.tokens["city-pd"].clone();
    let (mut lat, mut raw_lat) = (Vec::new(), Vec::new());
    let (mut found, mut candidates, mut prefixes_listed) = (0usize, 0usize, 0usize);
    for k in 0..o.searches {
        let plate = format!("S{:06}", (k * 104_729) % plates);
        // The raw baseline's prefixes: the plate's bucket on every day in the retention window
        // that has a key (lethe skips the others without listing).
        let now = SystemClock.now();
        let (from, to) = (retention.cutoff(now), now + chrono::Duration::minutes(5));
        let mut prefixes = Vec::new();
        let mut day = from.date_naive();
        while day <= to.date_naive() {
            if let Ok(dk) = env.reads.keys().get(&KeyName::Day(day)).await {
                let b = blind::bucket(&dk.blind, &lethe::model::plate::folded(&plate), dk.blind_bits);
                prefixes.push(layout::bucket_prefix(day, &b));
            }
            day = day.succ_opt().unwrap();
        }
        prefixes_listed += prefixes.len();
        let req = proto::SearchRequest {
            plate,
            purpose: "investigation".into(),
            case_number: format!("BENCH-{k}"),
            ..Default::default()
        };
        // Alternate which goes first, so that neither always finds the other's cache warm.
        for first_raw in [k % 2 == 1, k % 2 == 0] {
            if first_raw {
                let t = Instant::now();
                candidates += raw_search(&raw_store, &prefixes, from, to).await;
                raw_lat.push(t.elapsed());
            } else {
                let t = Instant::now();
                let mut s = client.search(authed(req.clone(), &token)).await.unwrap().into_inner();
                while let Some(m) = s.message().await.unwrap() {
                    if let Some(Item::Result(_)) = m.item {
                        found += 1;
                    }
                }
                lat.push(t.elapsed());
            }
        }
    }
    lat.sort();
    raw_lat.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = o.searches as f64;
    println!(
        "search: {} searches, {:.1} day prefixes, {:.1} results and {:.0} candidate objects per search",
        o.searches,
        prefixes_listed as f64 / n,
        found as f64 / n,
        candidates as f64 / n
    );
    println!(
        "  lethe API (access record, list, GET, decrypt, match, send): p50 {:.1} ms, p99 {:.1} ms",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );
    println!(
        "  raw object_store (list the same prefixes, GET the same candidates): p50 {:.1} ms, p99 {:.1} ms",
        ms(pct(&raw_lat, 0.5)),
        ms(pct(&raw_lat, 0.99))
    );
    println!(
        "  lethe / raw: p50 {:.2}×, p99 {:.2}×",
        ms(pct(&lat, 0.5)) / ms(pct(&raw_lat, 0.5)),
        ms(pct(&lat, 0.99)) / ms(pct(&raw_lat, 0.99))
    );
}

/// Runs the phases on `store`; the search store is filled through `fill` (the same objects: see
/// the module docs).
async fn backend(name: &str, store: Arc<dyn ObjectStore>, fill: Arc<dyn ObjectStore>, o: &Opts) {
    let keys = tempfile::tempdir().unwrap();
    // The size lethe stores for one read: the envelope of its plaintext encoding.
    let sample = ReadInput {
        plate: "B000001".into(),
        captured_at: Some(SystemClock.now()),
        camera_id: "cam-1".into(),
        source: source().into_iter().collect(),
        image: Some(vec![0; o.image].into()),
        image_type: Some("image/jpeg".into()),
        read_id: Some("bench-0".into()),
        ..Default::default()
    }
    .validate(
        &ReadLimits {
            max_image_bytes: 1 << 30,
            future_skew: chrono::Duration::minutes(5),
            cutoff: SystemClock.now() - chrono::Duration::days(30),
            now: SystemClock.now(),
        },
        || unreachable!(),
    )
    .unwrap();
    let size = sample.encode().len() + 64;
    println!(
        "== {name}: {} reads, {} streams, batches of {}, {} puts in flight per batch, object ≈ {size} B (metadata {} B + image {} B)",
        o.reads,
        o.streams,
        o.batch,
        o.put_concurrency,
        size - o.image,
        o.image
    );
    let env = start(store.clone(), o, keys.path()).await;
    if o.reads == 0 {
        println!("ingest and raw PUT: skipped (--reads 0)");
        search_latency(&env, fill, o).await;
        return;
    }
    // Warm up (connections, day key, and the day's blind-index bucket directories, which a store
    // creates once per day: 8 reads per bucket leave ~0.03 % of them for the measured run), then
    // measure raw and API alternately.
    let _ = raw_put(store.clone(), &Opts { reads: 256, ..*o }, size, "bench-raw-warm", Names::Plain).await;
    let warm = ((8usize << o.blind_bits) / o.streams).max(1) * o.streams;
    let _ = raw_put(store.clone(), &Opts { reads: warm, ..*o }, size, "bench-raw-names", Names::Lethe).await;
    let _ = ingest(&env, &Opts { reads: warm, ..*o }, false, 20_000_000).await;
    let n = o.reads;
    let c = cpu();
    let raw1 = phase(n, raw_put(store.clone(), o, size, "bench-raw-1", Names::Plain)).await;
    let c_raw = cpu() - c;
    let named = phase(n, raw_put(store.clone(), o, size, "bench-raw-names", Names::Lethe)).await;
    let direct = phase(n, store_put(&env, o, 30_000_000)).await;
    let c = cpu();
    let api_noid = phase(n, ingest(&env, o, false, 0)).await;
    let c_noid = cpu() - c;
    let c = cpu();
    let api_id = phase(n, ingest(&env, o, true, 10_000_000)).await;
    let c_id = cpu() - c;
    let raw2 = phase(n, raw_put(store.clone(), o, size, "bench-raw-2", Names::Plain)).await;
    let per = |d: Duration| d.as_secs_f64() * 1e6 / o.reads as f64;
    println!(
        "this process's CPU per read (client + server, user + system): raw {:.0} µs, API {:.0} µs, API with ids {:.0} µs",
        per(c_raw),
        per(c_noid),
        per(c_id)
    );
    let raw = (raw1.rate + raw2.rate) / 2.0;
    let line = |what: &str, p: &Phase, unit: &str| {
        println!(
            "{what:<40} {:>8.0} {unit}/s = {:.2}× raw   machine CPU {:>4.0} µs per {unit}, idle {:>2.0} %",
            p.rate,
            p.rate / raw,
            p.busy_us_per_op,
            p.idle * 100.0
        )
    };
    println!(
        "raw PUTs: {raw1:.0} and {raw2:.0} objects/s (before and after); raw = their mean",
        raw1 = raw1.rate,
        raw2 = raw2.rate
    );
    line("raw object_store PUT, first run:", &raw1, "object");
    line("raw PUT, lethe's names (same dirs):", &named, "object");
    line("ReadStore::put directly (no gRPC/ledger):", &direct, "read");
    line("API ingest, server-assigned ids:", &api_noid, "read");
    line("API ingest, client read ids (2 PUTs):", &api_id, "read");
    line("raw object_store PUT, second run:", &raw2, "object");
    search_latency(&env, fill, o).await;
}

#[tokio::main]
async fn main() {
    let o = opts();
    let dir = tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| std::env::temp_dir().display().to_string())).unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_fsync(true)
        .with_automatic_cleanup(true);
    // The same directory without fsync, for the search store's fill only.
    let local_fill = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_fsync(false)
        .with_automatic_cleanup(true);
    if std::env::var("BENCH_ONLY_S3").is_err() {
        backend("local directory (fsync on)", Arc::new(local), Arc::new(local_fill), &o).await;
    }
    if let Ok(endpoint) = std::env::var("LETHE_TEST_S3_ENDPOINT") {
        let s3 = object_store::aws::AmazonS3Builder::from_env()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_bucket_name(std::env::var("LETHE_TEST_S3_BUCKET").unwrap_or_else(|_| "lethe-test".into()))
            .with_region(std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()))
            .with_conditional_put(object_store::aws::S3ConditionalPut::ETagMatch)
            .build()
            .unwrap();
        // A fresh prefix: the bucket may hold another run's keys under another KEK.
        let prefix = format!("bench-{}", SystemClock.now().timestamp_millis());
        let s3: Arc<dyn ObjectStore> = Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()));
        backend(
            &format!("S3 at {}", std::env::var("LETHE_TEST_S3_ENDPOINT").unwrap_or_default()),
            s3.clone(),
            s3,
            &o,
        )
        .await;
    }
}
