//! Ledger benchmark: group-commit append throughput under 64 concurrent callers, and verify
//! throughput compared, in the same run, with raw object_store GETs of the same objects (32 in
//! flight) and, on the local directory, with `sha256sum` over the same batch-object bytes.
//!
//! ```text
//! cargo run --release --example bench_ledger [-- RECORDS]
//! ```
//! Runs on a local directory (a temp dir), and on S3 too when `LETHE_TEST_S3_ENDPOINT` (plus
//! `LETHE_TEST_S3_BUCKET`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`) is set.

use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use futures::{StreamExt, TryStreamExt};
use lethe::ledger::record::{Access, Decision, Receipt};
use lethe::ledger::{verify_log, Ledger, LedgerConfig, Record, RecordBody, SigningKey};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

const CALLERS: usize = 64;

fn record(i: u64) -> Record {
    let t = Utc.with_ymd_and_hms(2024, 3, 1, 0, 0, 0).unwrap() + chrono::Duration::milliseconds(i as i64);
    Record::new(
        t,
        "bench@host",
        RecordBody::Access(Access {
            principal: format!("officer-{}", i % 50),
            agency: "SPD".into(),
            jurisdiction: "CA".into(),
            purpose: "investigation".into(),
            case_number: Some(format!("C-2024-{i:06}")),
            plate_ciphertext: vec![0x5a; 48],
            plate_blind: vec![0xab, 0xcd, 0xef],
            window_from: t,
            window_to: t + chrono::Duration::days(7),
            decision: Decision::Allow,
            rule: "california-public-agencies".into(),
            reason: "CA public agency with case number and allowed purpose".into(),
            receipt: Receipt {
                count: 3,
                read_id_hashes: vec![[1; 32], [2; 32], [3; 32]],
            },
        }),
    )
}

async fn run(name: &str, store: Arc<dyn ObjectStore>, records: u64, local_root: Option<&std::path::Path>) {
    let key = SigningKey::generate("bench/ledger").unwrap();
    let ledger = Ledger::open(store.clone(), LedgerConfig::default(), key).await.unwrap();
    let per = records / CALLERS as u64;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CALLERS as u64 {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                l.append(&record(c * per + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let total = per * CALLERS as u64;
    let reader = ledger.reader().clone();
    let batches: Vec<_> = store.list(Some(&Path::from("ledger/batches"))).try_collect().await.unwrap();
    println!(
        "[{name}] append: {total} records, {CALLERS} callers, {:.2} s, {:.0} appends/s, {} batch objects (mean {:.1} records/batch)",
        secs,
        total as f64 / secs,
        batches.len(),
        total as f64 / batches.len() as f64
    );

    let started = Instant::now();
    let report = verify_log(&reader, None).await.unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(report.ok(), "{:#?}", report.failures);
    let mb = report.bytes as f64 / 1e6;
    println!(
        "[{name}] verify: {} entries, {:.1} MB in {:.3} s: {:.0} entries/s, {:.1} MB/s",
        report.entries,
        mb,
        secs,
        report.entries as f64 / secs,
        mb / secs
    );
    // Raw baseline, same run: GET the same batch and checkpoint objects through object_store,
    // 32 at a time (as many as verify reads ahead), no parsing or hashing.
    let checkpoints: Vec<_> = store.list(Some(&Path::from("ledger/checkpoints"))).try_collect().await.unwrap();
    let keys: Vec<Path> = batches.iter().chain(&checkpoints).map(|m| m.location.clone()).collect();
    let started = Instant::now();
    let fetched: usize = futures::stream::iter(keys)
        .map(|k| {
            let store = store.clone();
            async move { store.get(&k).await.unwrap().bytes().await.unwrap().len() }
        })
        .buffer_unordered(32)
        .fold(0, |a, n| futures::future::ready(a + n))
        .await;
    let raw_secs = started.elapsed().as_secs_f64();
    println!(
        "[{name}] raw GET of the same {} batch and {} checkpoint objects ({:.1} MB), 32 in flight: {raw_secs:.3} s, {:.1} MB of batches/s; verify / raw = {:.2}×",
        batches.len(),
        checkpoints.len(),
        fetched as f64 / 1e6,
        mb / raw_secs,
        raw_secs / secs
    );
    if let Some(root) = local_root {
        let files: Vec<_> = batches.iter().map(|m| root.join(m.location.as_ref())).collect();
        let started = Instant::now();
        let mut n = 0;
        for chunk in files.chunks(2000) {
            let out = std::process::Command::new("sha256sum").args(chunk).output().expect("sha256sum");
            assert!(out.status.success());
            n += chunk.len();
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "[{name}] sha256sum over the same {n} batch files ({mb:.1} MB): {secs:.3} s, {:.1} MB/s",
            mb / secs
        );
    }
}

#[tokio::main]
async fn main() {
    let records: u64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(64_000);
    let dir = tempfile::tempdir().unwrap();
    let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    run("local", Arc::new(local), records, Some(dir.path())).await;
    if let Ok(endpoint) = std::env::var("LETHE_TEST_S3_ENDPOINT") {
        let s3 = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_bucket_name(std::env::var("LETHE_TEST_S3_BUCKET").unwrap_or_else(|_| "lethe-test".into()))
            .with_access_key_id(std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default())
            .with_secret_access_key(std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default())
            .build()
            .unwrap();
        let run_prefix = format!("bench-{}", std::process::id());
        run(
            "s3",
            Arc::new(object_store::prefix::PrefixStore::new(s3, run_prefix)),
            records,
            None,
        )
        .await;
    }
}
