//! Ledger suite: concurrency, crash recovery, tamper detection, proofs, CLI functions.
//!
//! The concurrency suite is a `pub async fn` taking any `Arc<dyn ObjectStore>`; it runs on the
//! in-memory store, a local directory, and (when `LETHE_TEST_S3_ENDPOINT` is set) a real S3
//! server such as Ceph RGW.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeZone, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use lethe::ledger::record::{Access, Decision, DeletionProof, KeyEvent, Receipt};
use lethe::ledger::{cli, merkle, verify_log, Ledger, LedgerConfig, LogReader, Record, RecordBody, SigningKey, VerifyReport};
use lethe::store::fault::FaultStore;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt, PutMultipartOptions, PutOptions,
    PutPayload, PutResult,
};

const ORIGIN: &str = "lethe.test/ledger";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 12, 0, 0).unwrap() + chrono::Duration::nanoseconds(123_456_789)
}

fn sample(i: u64, writer: &str) -> Record {
    let body = match i % 3 {
        0 => RecordBody::KeyCreated(KeyEvent { key_id: format!("k-{i}") }),
        1 => RecordBody::Access(Access {
            principal: "officer-7".into(),
            agency: "SPD".into(),
            jurisdiction: "CA".into(),
            purpose: "investigation".into(),
            case_number: Some(format!("C-{i}")),
            plate_ciphertext: vec![1, 2, 3, i as u8],
            plate_blind: vec![0xab, 0xcd],
            window_from: t0(),
            window_to: t0() + chrono::Duration::hours(1),
            decision: Decision::Allow,
            rule: "ca-only".into(),
            reason: "policy allows".into(),
            receipt: Receipt {
                count: 1,
                read_id_hashes: vec![[i as u8; 32]],
            },
        }),
        _ => RecordBody::DeletionProof(DeletionProof {
            day: t0().date_naive(),
            cutoff: t0(),
            batch: None,
            reads_deleted: i,
            deleted_keys_root: [7; 32],
            reads_held: 0,
            key_destroyed: true,
            ingested_total: i,
            reconciled: true,
            forced: false,
        }),
    };
    Record::new(t0() + chrono::Duration::seconds(i as i64), writer, body)
}

fn prefix() -> Path {
    Path::from("ledger")
}

async fn open(store: Arc<dyn ObjectStore>, key: &[u8]) -> Ledger {
    Ledger::open(store, LedgerConfig::default(), SigningKey::from_pkcs8(ORIGIN, key).unwrap())
        .await
        .unwrap()
}

fn pkcs8() -> Vec<u8> {
    ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .unwrap()
        .as_ref()
        .to_vec()
}

fn reader(store: Arc<dyn ObjectStore>, key: &[u8]) -> LogReader {
    LogReader::new(store, prefix(), SigningKey::from_pkcs8(ORIGIN, key).unwrap().verifier())
}

async fn verify(store: Arc<dyn ObjectStore>, key: &[u8], trusted: Option<&str>) -> VerifyReport {
    verify_log(&reader(store, key), trusted.map(|t| ("saved", t.as_bytes())))
        .await
        .unwrap()
}

/// A log of 4 batches: sizes 1, 5, 1, 3 (so batches hold several records, and reordering
/// within a batch is possible).
async fn small_log(store: Arc<dyn ObjectStore>, key: &[u8]) -> Ledger {
    let l = open(store, key).await;
    let mut i = 0;
    for n in [1, 5, 1, 3] {
        let cfg_l = l.clone();
        // Concurrent appends that are all queued before the committer wakes land in one batch
        // most of the time; the exact split does not matter to the tests.
        let futs: Vec<_> = (0..n)
            .map(|_| {
                i += 1;
                let r = sample(i, "test");
                let l = cfg_l.clone();
                async move { l.append(&r).await.unwrap() }
            })
            .collect();
        futures::future::join_all(futs).await;
    }
    l
}

async fn all_keys(store: &Arc<dyn ObjectStore>) -> Vec<Path> {
    let mut v: Vec<Path> = store.list(Some(&prefix())).map_ok(|m| m.location).try_collect().await.unwrap();
    v.sort();
    v
}

async fn get(store: &Arc<dyn ObjectStore>, k: &Path) -> Vec<u8> {
    store.get(k).await.unwrap().bytes().await.unwrap().to_vec()
}

async fn put(store: &Arc<dyn ObjectStore>, k: &Path, v: Vec<u8>) {
    store.put(k, PutPayload::from(v)).await.unwrap();
}

fn names(report: &VerifyReport, what: &str) -> bool {
    report.failures.iter().any(|f| f.object == what || f.problem.contains(what))
}

// ---------------------------------------------------------------- concurrency

/// 16 appenders × 1,000 records across two `Ledger` handles on one store (as if two
/// processes): one linear log, every record exactly once, every receipt distinct, verify passes.
pub async fn concurrent_appenders(store: Arc<dyn ObjectStore>) {
    const TASKS: u64 = 16;
    const PER: u64 = 1000;
    let key = pkcs8();
    let a = open(store.clone(), &key).await;
    let b = open(store.clone(), &key).await;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let l = if t % 2 == 0 { a.clone() } else { b.clone() };
        handles.push(tokio::spawn(async move {
            let mut idx = Vec::with_capacity(PER as usize);
            for i in 0..PER {
                let r = Record::new(
                    t0(),
                    format!("task-{t}"),
                    RecordBody::KeyCreated(KeyEvent {
                        key_id: format!("{t}/{i}"),
                    }),
                );
                let rc = l.append(&r).await.unwrap();
                assert!(rc.index < rc.tree_size);
                idx.push(rc.index);
            }
            idx
        }));
    }
    let mut indexes = Vec::new();
    for h in handles {
        indexes.extend(h.await.unwrap());
    }
    indexes.sort_unstable();
    assert_eq!(indexes, (0..TASKS * PER).collect::<Vec<_>>(), "receipts are one linear sequence");

    let rd = reader(store.clone(), &key);
    let entries: Vec<_> = rd.entries(0, u64::MAX).try_collect().await.unwrap();
    assert_eq!(entries.len() as u64, TASKS * PER);
    let mut seen = HashSet::new();
    for (n, e) in entries.iter().enumerate() {
        assert_eq!(e.index, n as u64);
        let r = Record::decode(&e.bytes).unwrap();
        let RecordBody::KeyCreated(k) = r.body else { panic!("kind") };
        assert!(seen.insert(k.key_id.clone()), "duplicate {}", k.key_id);
    }
    assert_eq!(seen.len() as u64, TASKS * PER);
    let report = verify(store.clone(), &key, None).await;
    assert!(report.ok(), "{:#?}", report.failures);
    assert_eq!(report.entries, TASKS * PER);
    assert_eq!(rd.latest_checkpoint().await.unwrap().checkpoint.size, TASKS * PER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_in_memory() {
    concurrent_appenders(Arc::new(InMemory::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    concurrent_appenders(Arc::new(store)).await;
}

/// The real S3 server (Ceph RGW in CI). Skipped unless `LETHE_TEST_S3_ENDPOINT` is set.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_s3() {
    let Some(store) = s3_store() else {
        eprintln!("LETHE_TEST_S3_ENDPOINT not set; skipping");
        return;
    };
    concurrent_appenders(store).await;
}

/// An S3 store on a fresh prefix, from `LETHE_TEST_S3_ENDPOINT`, `LETHE_TEST_S3_BUCKET`,
/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.
pub fn s3_store() -> Option<Arc<dyn ObjectStore>> {
    let endpoint = std::env::var("LETHE_TEST_S3_ENDPOINT").ok()?;
    let s3 = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_bucket_name(std::env::var("LETHE_TEST_S3_BUCKET").unwrap_or_else(|_| "lethe-test".into()))
        .with_access_key_id(std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_default())
        .with_secret_access_key(std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default())
        .build()
        .unwrap();
    // A fresh prefix per run so runs do not see each other's logs.
    let run = format!("test-{}-{}", std::process::id(), Utc::now().timestamp_nanos_opt().unwrap());
    Some(Arc::new(object_store::prefix::PrefixStore::new(s3, run)))
}

// ---------------------------------------------------------------- crash recovery

/// A store that fails puts under `checkpoints/` while `fail` is set: the process "dies"
/// between writing a batch and writing its checkpoint.
#[derive(Debug)]
struct FailCheckpoints {
    inner: Arc<dyn ObjectStore>,
    fail: AtomicBool,
    /// Fail batch writes too.
    fail_batches: AtomicBool,
}

impl std::fmt::Display for FailCheckpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FailCheckpoints({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for FailCheckpoints {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        if self.fail.load(Ordering::SeqCst) && location.as_ref().contains("/checkpoint") {
            return Err(object_store::Error::Generic {
                store: "fault",
                source: "injected crash".into(),
            });
        }
        if self.fail_batches.load(Ordering::SeqCst) && location.as_ref().contains("/batches/") {
            return Err(object_store::Error::Generic {
                store: "fault",
                source: "injected write error".into(),
            });
        }
        self.inner.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.inner.get_opts(location, options).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: object_store::CopyOptions) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[tokio::test]
async fn crash_between_batch_and_checkpoint_is_completed_by_next_writer() {
    let key = pkcs8();
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let faulty = Arc::new(FailCheckpoints {
        inner: mem.clone(),
        fail: AtomicBool::new(false),
        fail_batches: AtomicBool::new(false),
    });
    let l = open(faulty.clone(), &key).await;
    for i in 0..3 {
        l.append(&sample(i, "w1")).await.unwrap();
    }
    faulty.fail.store(true, Ordering::SeqCst);
    let err = l.append(&sample(3, "w1")).await.unwrap_err();
    assert!(err.to_string().contains("injected crash"), "{err}");
    drop(l);
    // The batch is in the log but unsigned: verify reports the uncovered entry.
    let report = verify(mem.clone(), &key, None).await;
    assert!(!report.ok());
    assert_eq!(report.entries, 4);
    assert!(report.failures.iter().any(|f| f.entries == Some(3..4)), "{:#?}", report.failures);

    // The next writer (another process) completes it on open, and appends on.
    let l2 = open(mem.clone(), &key).await;
    let report = verify(mem.clone(), &key, None).await;
    assert!(report.ok(), "{:#?}", report.failures);
    let rc = l2.append(&sample(4, "w2")).await.unwrap();
    assert_eq!(rc.index, 4);
    assert!(verify(mem.clone(), &key, None).await.ok());
}

#[tokio::test]
async fn a_failed_write_fails_every_caller_of_the_batch() {
    // Regression guard: no caller of a failed group commit may be told success.
    let key = pkcs8();
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let faulty = Arc::new(FailCheckpoints {
        inner: mem.clone(),
        fail: AtomicBool::new(false),
        fail_batches: AtomicBool::new(true),
    });
    let l = open(faulty.clone(), &key).await;
    let results = futures::future::join_all((0..20).map(|i| {
        let l = l.clone();
        async move { l.append(&sample(i, "w")).await }
    }))
    .await;
    assert!(results.iter().all(|r| r.is_err()));
    assert_eq!(l.reader().tail().await.unwrap(), 0, "nothing was written");
    // The writer recovers once the store does.
    faulty.fail_batches.store(false, Ordering::SeqCst);
    assert_eq!(l.append(&sample(0, "w")).await.unwrap().index, 0);
    assert!(verify(mem, &key, None).await.ok());
}

// ---------------------------------------------------------------- tamper detection

#[tokio::test]
async fn untampered_log_verifies() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    small_log(store.clone(), &key).await;
    let report = verify(store, &key, None).await;
    assert!(report.ok(), "{:#?}", report.failures);
    assert_eq!(report.entries, 10);
}

#[tokio::test]
async fn flipping_any_byte_of_any_ledger_object_fails_verification() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    small_log(store.clone(), &key).await;
    let keys = all_keys(&store).await;
    assert!(keys.iter().any(|k| k.as_ref().contains("batches/")));
    assert!(keys.iter().any(|k| k.as_ref().contains("checkpoints/")));
    let mut flips = 0;
    for k in &keys {
        let orig = get(&store, k).await;
        for i in 0..orig.len() {
            for mask in [0x01u8, 0x20, 0x80] {
                let mut b = orig.clone();
                b[i] ^= mask;
                put(&store, k, b).await;
                let report = verify(store.clone(), &key, None).await;
                assert!(!report.ok(), "flip {mask:#x} at byte {i} of {k} went unnoticed");
                assert!(names(&report, k.as_ref()), "flip at byte {i} of {k}: {:#?}", report.failures);
                flips += 1;
            }
        }
        put(&store, k, orig).await;
    }
    assert!(verify(store, &key, None).await.ok());
    assert!(flips > 1000);
}

#[tokio::test]
async fn deleting_the_newest_entries_fails_against_a_trusted_checkpoint() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = small_log(store.clone(), &key).await;
    let rd = l.reader().clone();
    let trusted = rd.latest_checkpoint().await.unwrap().text;
    let size = rd.latest_checkpoint().await.unwrap().checkpoint.size;
    // The attacker removes the last batch and its checkpoint and rolls the hints back.
    let keys = all_keys(&store).await;
    let batches: Vec<_> = keys.iter().filter(|k| k.as_ref().contains("batches/")).collect();
    let last = batches.last().unwrap();
    let last_first: u64 = last.filename().unwrap().parse().unwrap();
    store.delete(last).await.unwrap();
    store.delete(&rd.checkpoint_key(size)).await.unwrap();
    let older = get(&store, &rd.checkpoint_key(last_first)).await;
    put(&store, &rd.latest_hint_key(), older).await;
    store.delete(&rd.tail_hint_key()).await.unwrap();

    // A perfect truncation is indistinguishable without a trusted checkpoint …
    assert!(verify(store.clone(), &key, None).await.ok());
    // … and fails with one, naming the missing entries.
    let report = verify(store, &key, Some(&trusted)).await;
    assert!(!report.ok());
    assert_eq!(report.trusted_consistent, Some(false));
    assert!(
        report.failures.iter().any(|f| f.entries == Some(last_first..size)),
        "{:#?}",
        report.failures
    );
}

#[tokio::test]
async fn deleting_the_newest_entries_leaves_evidence_even_without_trust() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = small_log(store.clone(), &key).await;
    let keys = all_keys(&store).await;
    let last = keys.iter().rfind(|k| k.as_ref().contains("batches/")).unwrap().clone();
    store.delete(&last).await.unwrap();
    let report = verify(store, &key, None).await;
    assert!(!report.ok());
    drop(l);
}

#[tokio::test]
async fn deleting_the_oldest_entries_fails_verification() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = small_log(store.clone(), &key).await;
    let first = l.reader().batch_key(0);
    store.delete(&first).await.unwrap();
    let report = verify(store, &key, None).await;
    assert!(!report.ok());
    assert!(names(&report, first.as_ref()), "{:#?}", report.failures);
    assert!(report.failures.iter().any(|f| f.entries.as_ref().is_some_and(|r| r.start == 0)));
}

/// Rewrites a batch object canonically with its records in a new order.
fn reorder_batch(raw: &[u8], i: usize, j: usize) -> Vec<u8> {
    let v: serde_json::Value = serde_json::from_slice(raw).unwrap();
    let mut records = v["records"].as_array().unwrap().clone();
    records.swap(i, j);
    format!(
        r#"{{"v":{},"first_index":{},"frontier":{},"records":{}}}"#,
        v["v"],
        v["first_index"],
        serde_json::to_string(&v["frontier"]).unwrap(),
        serde_json::to_string(&records).unwrap()
    )
    .into_bytes()
}

#[tokio::test]
async fn reordering_two_entries_fails_verification() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = small_log(store.clone(), &key).await;
    let rd = l.reader().clone();
    // Find a batch with at least two records.
    let mut pos = 0;
    let (bkey, raw, n) = loop {
        let k = rd.batch_key(pos);
        let raw = get(&store, &k).await;
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let n = v["records"].as_array().unwrap().len() as u64;
        if n >= 2 {
            break (k, raw, n);
        }
        pos += n;
    };
    let swapped = reorder_batch(&raw, 0, 1);
    assert_ne!(swapped, raw);
    put(&store, &bkey, swapped).await;
    let report = verify(store, &key, None).await;
    assert!(!report.ok());
    assert!(names(&report, bkey.as_ref()), "{:#?}", report.failures);
    assert!(report
        .failures
        .iter()
        .any(|f| f.entries.as_ref().is_some_and(|r| r.contains(&pos) && r.end == pos + n)));
}

#[tokio::test]
async fn a_replaced_history_of_the_same_length_fails_against_a_trusted_checkpoint() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = open(store.clone(), &key).await;
    for i in 0..6 {
        l.append(&sample(i, "honest")).await.unwrap();
    }
    let trusted = l.reader().latest_checkpoint().await.unwrap().text;
    // An insider with the signing key builds another history of the same length elsewhere
    // and swaps it in.
    let other: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let forged = open(other.clone(), &key).await;
    for i in 0..6 {
        forged.append(&sample(i + 100, "forger")).await.unwrap();
    }
    for k in all_keys(&store).await {
        store.delete(&k).await.unwrap();
    }
    for k in all_keys(&other).await {
        put(&store, &k, get(&other, &k).await).await;
    }
    assert!(verify(store.clone(), &key, None).await.ok(), "self-consistent forgery");
    let report = verify(store, &key, Some(&trusted)).await;
    assert!(!report.ok());
    assert_eq!(report.trusted_consistent, Some(false));
    assert!(report
        .failures
        .iter()
        .any(|f| f.object.contains("trusted") && f.entries == Some(0..6)));
}

#[tokio::test]
async fn a_checkpoint_signed_with_another_key_fails_verification() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = small_log(store.clone(), &key).await;
    let rd = l.reader().clone();
    let cp = rd.latest_checkpoint().await.unwrap().checkpoint;
    let other = SigningKey::from_pkcs8(ORIGIN, &pkcs8()).unwrap();
    let forged = other.sign_checkpoint(cp.size, &cp.root);
    let ckey = rd.checkpoint_key(cp.size);
    put(&store, &ckey, forged.clone().into_bytes()).await;
    let report = verify(store.clone(), &key, None).await;
    assert!(!report.ok());
    assert!(names(&report, ckey.as_ref()), "{:#?}", report.failures);

    // And a "trusted" checkpoint from another key is rejected too.
    let fresh: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    small_log(fresh.clone(), &key).await;
    let report = verify(fresh, &key, Some(&forged)).await;
    assert!(!report.ok());
    assert!(
        report.failures.iter().any(|f| f.object.contains("trusted")),
        "{:#?}",
        report.failures
    );
}

// ---------------------------------------------------------------- reading ahead

/// A log of `n` batches of one record each, at the default prefix.
async fn one_record_batches(store: Arc<dyn ObjectStore>, key: &[u8], n: u64) {
    let l = open(store, key).await;
    for i in 0..n {
        l.append(&sample(i, "test")).await.unwrap();
    }
}

/// A store that lists in reverse key order (a local directory lists in no particular order).
#[derive(Debug)]
struct ReversedListing(Arc<dyn ObjectStore>);

impl std::fmt::Display for ReversedListing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ReversedListing({})", self.0)
    }
}

#[async_trait]
impl ObjectStore for ReversedListing {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> object_store::Result<PutResult> {
        self.0.put_opts(location, payload, opts).await
    }
    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(location, opts).await
    }
    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.0.get_opts(location, options).await
    }
    fn delete_stream(&self, locations: BoxStream<'static, object_store::Result<Path>>) -> BoxStream<'static, object_store::Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let all = self.0.list(prefix);
        Box::pin(
            futures::stream::once(async move {
                let mut v: Vec<_> = all.collect::<Vec<_>>().await;
                v.reverse();
                futures::stream::iter(v)
            })
            .flatten(),
        )
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, options: object_store::CopyOptions) -> object_store::Result<()> {
        self.0.copy_opts(from, to, options).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_entries_read_the_log_ahead_of_the_walk() {
    let key = pkcs8();
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    one_record_batches(mem.clone(), &key, 40).await;

    // Every GET takes 20 ms: a walk that waits for each batch before asking for the next has
    // one GET in flight at a time.
    let faults = Arc::new(FaultStore::new(mem.clone()));
    faults.slow_gets(Duration::from_millis(20));
    let report = verify(faults.clone(), &key, None).await;
    assert!(report.ok(), "{:#?}", report.failures);
    assert_eq!((report.entries, report.batches, report.checkpoints_checked), (40, 40, 40));
    assert!(
        faults.max_gets_in_flight() >= 8,
        "verify had {} GETs in flight at most",
        faults.max_gets_in_flight()
    );

    let faults = Arc::new(FaultStore::new(mem.clone()));
    faults.slow_gets(Duration::from_millis(20));
    let entries: Vec<_> = reader(faults.clone(), &key).entries(0, u64::MAX).try_collect().await.unwrap();
    assert_eq!(entries.iter().map(|e| e.index).collect::<Vec<_>>(), (0..40).collect::<Vec<_>>());
    assert!(
        faults.max_gets_in_flight() >= 8,
        "entries had {} GETs in flight at most",
        faults.max_gets_in_flight()
    );
}

#[tokio::test]
async fn a_listing_out_of_key_order_or_with_gaps_changes_nothing_verify_reports() {
    let key = pkcs8();
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    one_record_batches(mem.clone(), &key, 12).await;
    let reversed: Arc<dyn ObjectStore> = Arc::new(ReversedListing(mem.clone()));

    let sorted_report = verify(mem.clone(), &key, None).await;
    let reversed_report = verify(reversed.clone(), &key, None).await;
    assert!(sorted_report.ok() && reversed_report.ok(), "{:#?}", reversed_report.failures);
    assert_eq!(
        (reversed_report.entries, reversed_report.root),
        (sorted_report.entries, sorted_report.root)
    );
    let all: Vec<_> = reader(reversed.clone(), &key).entries(0, u64::MAX).try_collect().await.unwrap();
    assert_eq!(all.len(), 12);

    // A batch in the middle goes missing: the walk stops there on either listing, and both
    // reports hold the same failures (the later objects they name as evidence are the first the
    // listing shows, so they depend on its order).
    let r = reader(mem.clone(), &key);
    mem.delete(&r.batch_key(5)).await.unwrap();
    let sorted_report = verify(mem.clone(), &key, None).await;
    let reversed_report = verify(reversed, &key, None).await;
    assert!(!sorted_report.ok());
    assert_eq!(sorted_report.entries, 5);
    assert!(names(&sorted_report, r.batch_key(5).as_ref()), "{:#?}", sorted_report.failures);
    assert_eq!(reversed_report.entries, sorted_report.entries);
    assert_eq!(reversed_report.failures.len(), sorted_report.failures.len());
    for (a, b) in reversed_report.failures.iter().zip(&sorted_report.failures) {
        assert_eq!(a.entries, b.entries, "{a} / {b}");
    }
    assert_eq!(reversed_report.failures[0].object, sorted_report.failures[0].object);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_while_a_writer_appends_reports_no_tampering() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = open(store.clone(), &key).await;
    l.append(&sample(0, "test")).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (l, done) = (l.clone(), done.clone());
        tokio::spawn(async move {
            for i in 1..600 {
                l.append(&sample(i, "test")).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut runs = 0;
    while !done.load(Ordering::SeqCst) {
        let report = verify(store.clone(), &key, None).await;
        assert!(report.ok(), "run {runs} at {} entries: {:#?}", report.entries, report.failures);
        runs += 1;
    }
    writer.await.unwrap();
    assert!(runs > 3, "only {runs} verifications overlapped the writer");
}

// ---------------------------------------------------------------- proofs and CLI

#[tokio::test]
async fn inclusion_and_consistency_proofs_verify() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = small_log(store.clone(), &key).await;
    let rd = l.reader();
    let entries: Vec<_> = rd.entries(0, u64::MAX).try_collect().await.unwrap();
    for e in &entries {
        let p = rd.inclusion_proof(e.index).await.unwrap();
        assert_eq!(p.leaf_hash, merkle::leaf_hash(&e.bytes));
        let cp = &p.checkpoint.checkpoint;
        merkle::verify_inclusion(e.index, cp.size, &p.leaf_hash, &p.hashes, &cp.root).unwrap();
    }
    for old in 0..=entries.len() as u64 {
        let p = rd.consistency_proof(old).await.unwrap();
        let cp = &p.checkpoint.checkpoint;
        merkle::verify_consistency(old, cp.size, &p.old_root, &cp.root, &p.hashes).unwrap();
    }
}

#[tokio::test]
async fn cli_functions() {
    let key = pkcs8();
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let l = small_log(store.clone(), &key).await;
    let rd = l.reader();

    // Verifying where there is no ledger (the wrong directory, bucket or prefix) is no pass.
    let empty = reader(Arc::new(InMemory::new()), &key);
    let mut out = Vec::new();
    assert_eq!(cli::verify(&empty, None, &mut out).await.unwrap(), 1);
    assert!(String::from_utf8_lossy(&out).contains("no ledger entries at this location"));

    let mut out = Vec::new();
    assert_eq!(cli::checkpoint(rd, &mut out).await.unwrap(), 0);
    let cp_text = String::from_utf8(out).unwrap();
    assert!(cp_text.starts_with(&format!("{ORIGIN}\n10\n")), "{cp_text}");

    let dir = tempfile::tempdir().unwrap();
    let trusted = dir.path().join("cp.txt");
    std::fs::write(&trusted, &cp_text).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        cli::verify(rd, Some(&trusted), &mut out).await.unwrap(),
        0,
        "{}",
        String::from_utf8_lossy(&out)
    );

    let mut out = Vec::new();
    let filter = cli::ShowFilter {
        kind: Some("access".into()),
        ..Default::default()
    };
    assert_eq!(cli::show(rd, &filter, false, &mut out).await.unwrap(), 0);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.is_empty() && text.lines().all(|l| l.contains("\taccess\t")), "{text}");

    let mut out = Vec::new();
    assert_eq!(cli::show(rd, &cli::ShowFilter::default(), true, &mut out).await.unwrap(), 0);
    assert_eq!(String::from_utf8(out).unwrap().lines().count(), 10);

    let mut out = Vec::new();
    let filter = cli::ShowFilter {
        kind: Some("nonsense".into()),
        ..Default::default()
    };
    assert_eq!(cli::show(rd, &filter, false, &mut out).await.unwrap(), 2);

    let mut out = Vec::new();
    assert_eq!(cli::prove(rd, 3, &mut out).await.unwrap(), 0);
    assert!(String::from_utf8(out).unwrap().contains("tree size: 10"));
    let mut out = Vec::new();
    assert_eq!(cli::prove(rd, 10, &mut out).await.unwrap(), 1);

    // Tampering makes verify exit non-zero and say where.
    let k = rd.batch_key(0);
    let mut b = get(&store, &k).await;
    let last = b.len() - 3;
    b[last] ^= 1;
    put(&store, &k, b).await;
    let mut out = Vec::new();
    assert_eq!(cli::verify(rd, Some(&trusted), &mut out).await.unwrap(), 1);
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("FAILED") && text.contains(k.as_ref()), "{text}");
}

#[tokio::test]
async fn signing_key_file_is_created_once_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/ledger.pk8");
    let (k1, created) = SigningKey::load_or_create(&path, ORIGIN).unwrap();
    assert!(created);
    let (k2, created) = SigningKey::load_or_create(&path, ORIGIN).unwrap();
    assert!(!created);
    assert_eq!(k1.verifier(), k2.verifier());
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    let exported = k1.verifier().to_string();
    assert_eq!(lethe::ledger::VerifierKey::parse(&exported).unwrap(), k1.verifier());
}

// ---------------------------------------------------------------- records

#[test]
fn record_fixture_written_by_version_1_still_decodes() {
    let text = include_str!("ledger_record_v1.jsonl");
    let mut kinds = HashSet::new();
    for line in text.lines() {
        let r = Record::decode(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(r.v, 1);
        // Canonical: re-encoding gives the very bytes that were hashed.
        assert_eq!(r.encode(), line.as_bytes());
        kinds.insert(r.kind());
    }
    assert_eq!(kinds.len(), RecordBody::KINDS.len(), "fixture covers every kind");
}

mod roundtrip {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<i64>(),
            0u32..1_000_000_000,
            ".{0,20}",
            any::<u64>(),
            prop::collection::vec(any::<u8>(), 0..40),
            any::<bool>(),
        )
            .prop_map(|(secs, nanos, s, n, bytes, flag)| {
                let ts = Utc.timestamp_opt(secs.rem_euclid(253_402_300_799), nanos).unwrap();
                let body = if flag {
                    RecordBody::Access(Access {
                        principal: s.clone(),
                        agency: s.clone(),
                        jurisdiction: "CA".into(),
                        purpose: s.clone(),
                        case_number: (n % 2 == 0).then(|| s.clone()),
                        plate_ciphertext: bytes.clone(),
                        plate_blind: bytes,
                        window_from: ts,
                        window_to: ts,
                        decision: if n % 3 == 0 { Decision::Deny } else { Decision::Allow },
                        rule: s.clone(),
                        reason: s.clone(),
                        receipt: Receipt {
                            count: n,
                            read_id_hashes: vec![[n as u8; 32]],
                        },
                    })
                } else {
                    RecordBody::DeletionProof(DeletionProof {
                        day: ts.date_naive(),
                        cutoff: ts,
                        batch: None,
                        reads_deleted: n,
                        deleted_keys_root: [n as u8; 32],
                        reads_held: n / 3,
                        key_destroyed: n % 2 == 0,
                        ingested_total: n,
                        reconciled: true,
                        forced: false,
                    })
                };
                Record::new(ts, s, body)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn written_and_read_back_records_hash_identically(records in prop::collection::vec(arb_record(), 1..8)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let key = pkcs8();
                let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
                let l = open(store, &key).await;
                for r in &records {
                    l.append(r).await.unwrap();
                }
                let back: Vec<_> = l.reader().entries(0, u64::MAX).try_collect().await.unwrap();
                assert_eq!(back.len(), records.len());
                for (r, e) in records.iter().zip(&back) {
                    assert_eq!(merkle::leaf_hash(&r.encode()), merkle::leaf_hash(&e.bytes));
                    let decoded = Record::decode(&e.bytes).unwrap();
                    assert_eq!(&decoded, r);
                    assert_eq!(decoded.encode(), e.bytes.to_vec());
                }
            });
        }
    }
}

/// Writes `tests/ledger_record_v1.jsonl` when it is empty: one record of every kind, as
/// version 1 encodes them. Run once per format version (`cargo test -- --ignored`); never
/// regenerate an existing fixture — it is the evidence that old data still decodes.
#[test]
#[ignore]
fn write_record_fixture() {
    use lethe::ledger::record::*;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ledger_record_v1.jsonl");
    if std::fs::metadata(&path).map(|m| m.len() > 0).unwrap_or(false) {
        return;
    }
    let day = t0().date_naive();
    let files = vec![PolicyFile {
        name: "california.cedar".into(),
        hash: [0x11; 32],
    }];
    let bodies = vec![
        RecordBody::IngestCommit(IngestCommit {
            day,
            count: 250,
            merkle_root: [0x22; 32],
            first_key: "reads/2024-03-01/0a3/20240301T000001.000000000Z-r1".into(),
            last_key: "reads/2024-03-01/ff1/20240301T235959.999999999Z-r250".into(),
        }),
        sample(1, "serve@host-a").body,
        sample(2, "sweep@host-b").body,
        RecordBody::HoldPlaced(HoldPlaced {
            hold_id: "h-1".into(),
            case_number: "C-2024-17".into(),
            authority: "warrant".into(),
            authority_ref: "SW-2024-0042".into(),
            scope: HoldScope {
                plate_ciphertexts: vec![vec![9, 8, 7]],
                plate_blinds: vec![vec![0x0f, 0xa0]],
                cameras: vec!["cam-3".into()],
                from: t0(),
                to: t0() + chrono::Duration::days(1),
            },
            until: t0() + chrono::Duration::days(90),
            reads_held: 12,
            placed_by: "sgt-4".into(),
        }),
        RecordBody::HoldReleased(HoldReleased {
            hold_id: "h-1".into(),
            case_number: "C-2024-17".into(),
            released_by: "sgt-4".into(),
            reason: "case closed".into(),
        }),
        RecordBody::PolicyLoaded(PolicyLoaded {
            policy_hash: [0x33; 32],
            files: files.clone(),
        }),
        RecordBody::PolicyChanged(PolicyChanged {
            old_hash: [0x33; 32],
            new_hash: [0x44; 32],
            changed_files: files,
        }),
        RecordBody::PolicyApproved(PolicyApproved {
            policy_hash: [0x44; 32],
            approved_by: "chief".into(),
        }),
        RecordBody::SettingsAudit(SettingsAudit {
            findings: 1,
            summary: vec!["bucket versioning enabled on keys/".into()],
            passed: false,
        }),
        RecordBody::KeyCreated(KeyEvent {
            key_id: "2024-03-01".into(),
        }),
        RecordBody::KeyDestroyed(KeyEvent {
            key_id: "2024-03-01".into(),
        }),
        RecordBody::SweepForced(SweepForced {
            reason: "operator override of mass-deletion guard".into(),
        }),
    ];
    let mut out = String::new();
    for (i, b) in bodies.into_iter().enumerate() {
        let r = Record::new(t0() + chrono::Duration::seconds(i as i64), "fixture@v1", b);
        out.push_str(std::str::from_utf8(&r.encode()).unwrap());
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}
