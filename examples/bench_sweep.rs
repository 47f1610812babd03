//! Sweeper throughput against the raw batch-delete rate of the same keys on the same backend.
//!
//! ```text
//! cargo run --release --example bench_sweep -- [N] [local|s3]
//! ```
//! N reads (default 10000) of one expired capture day are stored (each with its idempotency
//! marker, as ingest writes them). Their objects are snapshotted, then (1) the raw rate:
//! `ObjectStore::delete_stream` over exactly those object keys; (2) the store is restored to the
//! same objects and `sweep::run` is timed end to end (clock probe, lease, listing, intent,
//! batch deletes, re-listing, proofs on the real ledger in the same store, day-key destruction,
//! closing proof). Both figures are
//! objects deleted per second; the ratio is sweep / raw. `s3` uses LETHE_TEST_S3_ENDPOINT,
//! LETHE_TEST_S3_BUCKET and the AWS_* credentials, under a fresh prefix.

use std::sync::Arc;
use std::time::Instant;

use chrono::Duration;
use futures::{StreamExt, TryStreamExt};
use lethe::clock::{Clock, ManualClock, SystemClock};
use lethe::crypto::Kek;
use lethe::ledger::record::{IngestCommit, Record, RecordBody};
use lethe::ledger::{Ledger, LedgerConfig, SigningKey};
use lethe::model::{ReadInput, ReadLimits};
use lethe::store::{ReadStore, ReadStoreOptions};
use lethe::sweep::ledger_log::LedgerProofLog;
use lethe::sweep::{self, SweepOptions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(10_000);
    let backend = args.get(2).cloned().unwrap_or_else(|| "local".into());
    let _dir = tempfile::tempdir()?;
    let store: Arc<dyn ObjectStore> = match backend.as_str() {
        "local" => Arc::new(object_store::local::LocalFileSystem::new_with_prefix(_dir.path())?.with_automatic_cleanup(true)),
        "s3" => {
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_endpoint(std::env::var("LETHE_TEST_S3_ENDPOINT")?)
                .with_bucket_name(std::env::var("LETHE_TEST_S3_BUCKET")?)
                .with_allow_http(true)
                .build()?;
            let prefix = format!("bench-sweep-{}", SystemClock.now().timestamp_nanos_opt().unwrap_or(0));
            Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
        }
        other => anyhow::bail!("unknown backend {other}"),
    };
    let reads = ReadStore::open(store.clone(), Kek::ephemeral(), ReadStoreOptions::default()).await?;
    let now = SystemClock.now();
    let day_start = (now - Duration::days(40)).date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let t0 = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let reads = reads.clone();
            async move {
                let at = day_start + Duration::milliseconds((i as i64) * 8_000);
                let limits = ReadLimits {
                    max_image_bytes: 1 << 20,
                    future_skew: Duration::minutes(5),
                    cutoff: at - Duration::days(1),
                    now: at,
                };
                let r = ReadInput {
                    read_id: Some(format!("bench-{i:08}")),
                    plate: format!("B{:06}", i % 50_000),
                    captured_at: Some(at),
                    camera_id: "cam-1".into(),
                    ..Default::default()
                }
                .validate(&limits, || unreachable!())
                .expect("valid");
                reads.put(&r, true, at).await.map(|_| ())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    eprintln!("stored {n} reads in {:.1} s", t0.elapsed().as_secs_f64());

    // Snapshot the objects the sweep will delete: reads and markers.
    let mut snapshot = Vec::new();
    for prefix in ["reads", "ids"] {
        let metas: Vec<_> = store.list(Some(&Path::from(prefix))).try_collect().await?;
        for m in metas {
            let b = store.get(&m.location).await?.bytes().await?;
            snapshot.push((m.location, b));
        }
    }
    let objects = snapshot.len();

    // (1) Raw batch delete of the same keys; (3) again after the sweep, on the restored store,
    // so that both see a store that has been deleted from and refilled the same way.
    let raw_first = raw_delete(&store, &snapshot).await?;
    restore(&store, &snapshot).await?;

    // (2) The sweep, end to end, with its proofs on the real ledger in the same store (the day's
    // ingest commit is written first, as ingest would, so that the day reconciles).
    let ledger = Ledger::open(store.clone(), LedgerConfig::default(), SigningKey::generate("bench/ledger")?).await?;
    let commit = IngestCommit {
        day: day_start.date_naive(),
        count: n as u64,
        merkle_root: [0; 32],
        first_key: String::new(),
        last_key: String::new(),
    };
    ledger.append(&Record::new(now, "bench", RecordBody::IngestCommit(commit))).await?;
    let log = LedgerProofLog::new(ledger, "bench-sweep");
    let clock = ManualClock::new(SystemClock.now());
    let t = Instant::now();
    let rep = sweep::run(&reads, &log, &clock, &SweepOptions::default()).await?;
    let sweep_secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(
        rep.deleted() as usize == n && rep.exit_code() == 0,
        "sweep did not delete everything: {rep:?}"
    );
    restore(&store, &snapshot).await?;
    let raw_again = raw_delete(&store, &snapshot).await?;
    let raw_secs = (raw_first + raw_again) / 2.0;

    let raw_rate = objects as f64 / raw_secs;
    let sweep_rate = objects as f64 / sweep_secs;
    println!("backend {backend}: {n} reads, {objects} objects (reads + markers)");
    println!("raw delete_stream: {raw_secs:.3} s, {raw_rate:.0} objects/s (mean of {raw_first:.3} s before and {raw_again:.3} s after the sweep)");
    println!(
        "sweep (end to end): {sweep_secs:.3} s, {sweep_rate:.0} objects/s, {:.0} reads/s",
        n as f64 / sweep_secs
    );
    println!("ratio sweep/raw: {:.2}", sweep_rate / raw_rate);
    Ok(())
}

/// Seconds for `delete_stream` over exactly the snapshot's keys (every result checked).
async fn raw_delete(store: &Arc<dyn ObjectStore>, snapshot: &[(Path, bytes::Bytes)]) -> anyhow::Result<f64> {
    let paths: Vec<Path> = snapshot.iter().map(|(p, _)| p.clone()).collect();
    let t = Instant::now();
    let input = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
    let results: Vec<_> = store.delete_stream(input).collect().await;
    let secs = t.elapsed().as_secs_f64();
    anyhow::ensure!(results.iter().all(|r| r.is_ok()), "raw delete failed");
    Ok(secs)
}

/// Puts the snapshot's objects back, byte for byte.
async fn restore(store: &Arc<dyn ObjectStore>, snapshot: &[(Path, bytes::Bytes)]) -> anyhow::Result<()> {
    futures::stream::iter(snapshot.iter().cloned())
        .map(|(p, b)| {
            let store = store.clone();
            async move { store.put(&p, PutPayload::from(b)).await.map(|_| ()) }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}
