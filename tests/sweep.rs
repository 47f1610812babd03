//! The sweeper: boundaries with an injected clock, faults and crashes with a fault-injecting
//! store, paging, concurrency, the clock guard, dry runs and legal holds. In-memory and local
//! directory here; the real S3 server in `sweep_s3.rs`.

mod sweep_support;

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::TryStreamExt;
use lethe::clock::{Clock, ManualClock, SystemClock};
use lethe::crypto::KeyName;
use lethe::hold::{self, Authority, HoldRequest};
use lethe::policy::Retention;
use lethe::store::fault::{FaultStore, Op};
use lethe::store::{ReadKey, ReadStore, StoreError};
use lethe::sweep::{self, merkle_root, MemoryProofLog, ProofLog, SweepError, SweepEvent, SweepOptions};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use sweep_support::{at, open, read, TestStore};

/// A world at a fixed time: a store whose clock agrees with the sweeper's, and a ledger.
struct World {
    clock: ManualClock,
    raw: Arc<TestStore>,
    reads: ReadStore,
    log: MemoryProofLog,
}

async fn world_on(inner: Arc<dyn ObjectStore>, now: DateTime<Utc>, page_size: Option<usize>) -> World {
    let clock = ManualClock::new(now);
    let raw = Arc::new(TestStore::new(inner, page_size, Some(clock.clone())));
    let reads = open(raw.clone()).await;
    World {
        clock,
        raw,
        reads,
        log: MemoryProofLog::new(),
    }
}

async fn world(now: DateTime<Utc>) -> World {
    world_on(Arc::new(InMemory::new()), now, None).await
}

impl World {
    /// Stores reads and writes the ingest commit for each day, as ingest does.
    async fn ingest(&self, reads: &[(String, &str, DateTime<Utc>)]) -> Vec<ReadKey> {
        let mut keys = Vec::new();
        let mut per_day: std::collections::BTreeMap<NaiveDate, u64> = Default::default();
        for (id, plate, t) in reads {
            let r = read(id, plate, *t, "cam-1");
            match self.reads.put(&r, true, *t).await.unwrap() {
                lethe::store::PutOutcome::Stored(s) => keys.push(s.key),
                other => panic!("{other:?}"),
            }
            *per_day.entry(t.date_naive()).or_default() += 1;
        }
        for (day, count) in per_day {
            self.log
                .append(self.clock.now(), SweepEvent::IngestCommit { day, count })
                .await
                .unwrap();
        }
        keys
    }

    async fn sweep(&self) -> Result<sweep::SweepReport, SweepError> {
        sweep::run(&self.reads, &self.log, &self.clock, &SweepOptions::default()).await
    }

    async fn listed(&self, day: NaiveDate) -> Vec<ReadKey> {
        self.reads.list_day(day).try_collect().await.unwrap()
    }

    async fn day_destroyed(&self, day: NaiveDate) -> Option<bool> {
        self.reads.keys().is_destroyed(&KeyName::Day(day)).await.unwrap()
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:05}")).collect()
}

// ---------------------------------------------------------------- boundaries

#[tokio::test]
async fn read_one_second_before_cutoff_is_deleted_one_after_is_kept() {
    let now = at(2026, 6, 20, 15, 30, 0);
    let w = world(now).await;
    let cutoff = now - Duration::hours(720);
    let keys = w
        .ingest(&[
            ("old".into(), "OLD1", cutoff - Duration::seconds(1)),
            ("new".into(), "NEW1", cutoff + Duration::seconds(1)),
        ])
        .await;
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.cutoff, cutoff);
    assert_eq!(rep.deleted(), 1);
    assert_eq!(rep.exit_code(), 0);
    let left = w.listed(cutoff.date_naive()).await;
    assert_eq!(left, vec![keys[1].clone()]);
    let proofs = w.log.proofs();
    assert_eq!(proofs.len(), 1, "one batch proof, the day is not over: {proofs:?}");
    assert_eq!(proofs[0].reads_deleted, 1);
    assert_eq!(proofs[0].deleted_keys_root, merkle_root(&[keys[0].to_string()]));
    assert!(!proofs[0].key_destroyed);
    assert_eq!(w.day_destroyed(cutoff.date_naive()).await, Some(false));
}

#[tokio::test]
async fn cutoff_is_exactly_720_hours_across_dst_and_leap_day() {
    // US DST ended 2026-11-01 (America/Los_Angeles); 2028-02-29 is a leap day. Thirty calendar
    // days in local time would be 719 or 721 hours here; the sweeper must use 720.
    for now in [
        at(2026, 11, 15, 12, 0, 0),
        at(2026, 3, 20, 12, 0, 0),
        at(2028, 3, 10, 0, 0, 0),
        at(2028, 3, 1, 6, 0, 0),
    ] {
        let w = world(now).await;
        let cutoff = now - Duration::hours(720);
        w.ingest(&[
            ("a".into(), "AAA1", cutoff - Duration::seconds(1)),
            ("b".into(), "BBB1", cutoff + Duration::seconds(1)),
        ])
        .await;
        let rep = w.sweep().await.unwrap();
        assert_eq!((rep.now - rep.cutoff).num_seconds(), 720 * 3600, "{now}");
        assert_eq!(rep.deleted(), 1, "{now}");
        assert_eq!(w.listed(cutoff.date_naive()).await.len(), 1, "{now}");
    }
}

#[tokio::test]
async fn backfilled_read_is_deleted_one_hour_later() {
    let now = at(2026, 6, 20, 15, 30, 0);
    let w = world(now).await;
    // Captured 29 days 23 hours ago, uploaded only now.
    let captured = now - Duration::days(29) - Duration::hours(23);
    w.ingest(&[("late".into(), "LATE1", captured)]).await;
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.deleted(), 0);
    w.clock.advance(Duration::hours(1) + Duration::seconds(1));
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.deleted(), 1);
    assert!(w.listed(captured.date_naive()).await.is_empty());
}

#[tokio::test]
async fn a_whole_expired_day_is_deleted_shredded_and_reconciled() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    let day_start = at(2026, 5, 10, 0, 0, 0);
    let reads: Vec<_> = ids("r", 20)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "ABC123", day_start + Duration::minutes(i as i64 * 70)))
        .collect();
    let keys = w.ingest(&reads).await;
    let day = day_start.date_naive();
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.exit_code(), 0);
    assert_eq!(rep.deleted(), 20);
    assert!(w.listed(day).await.is_empty());
    assert_eq!(w.day_destroyed(day).await, Some(true));
    // Markers went with their reads.
    let markers: Vec<_> = w.raw.list(Some(&Path::from(format!("ids/{day}")))).try_collect().await.unwrap();
    assert!(markers.is_empty());
    // Crypto-shredded: the key is gone for good.
    assert!(matches!(
        w.reads.get(&keys[0]).await,
        Err(StoreError::DayShredded { .. }) | Err(StoreError::Backend { .. })
    ));
    let closing = rep.days[0].closed.clone().expect("closed");
    assert_eq!(closing.batch, None);
    assert!(closing.key_destroyed && closing.reconciled);
    assert_eq!((closing.reads_deleted, closing.ingested_total), (20, 20));
    let mut names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    names.sort();
    assert_eq!(closing.deleted_keys_root, merkle_root(&names));
    // Running again does nothing and writes nothing.
    let before = w.log.all().len();
    let rep = w.sweep().await.unwrap();
    assert!(rep.days.is_empty(), "{:?}", rep.days);
    assert_eq!(w.log.all().len(), before);
}

#[tokio::test]
async fn a_day_swept_hour_by_hour_is_claimed_once_per_read() {
    let day_start = at(2026, 5, 10, 0, 0, 0);
    let w = world(day_start + Duration::hours(720)).await;
    let reads: Vec<_> = ids("h", 48)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "HOUR1", day_start + Duration::minutes(i as i64 * 30 + 1)))
        .collect();
    w.ingest(&reads).await;
    for _ in 0..25 {
        w.sweep().await.unwrap();
        w.clock.advance(Duration::hours(1));
    }
    // At the day's end every read is gone, but the key stays for the allowed clock skew (a
    // server that far behind may still store a read of the day's last minutes).
    let proofs = w.log.proofs();
    let batches: u64 = proofs.iter().filter(|p| p.batch.is_some()).map(|p| p.reads_deleted).sum();
    assert_eq!(batches, 48);
    assert!(proofs.iter().all(|p| p.batch.is_some()), "closed at the very end of the day");
    w.sweep().await.unwrap();
    let proofs = w.log.proofs();
    let closing: Vec<_> = proofs.iter().filter(|p| p.batch.is_none()).collect();
    assert_eq!(closing.len(), 1);
    assert!(closing[0].reconciled && closing[0].reads_deleted == 48);
}

// ---------------------------------------------------------------- faults and crashes

async fn fault_world(now: DateTime<Utc>) -> (World, Arc<FaultStore>) {
    let clock = ManualClock::new(now);
    let fault = Arc::new(FaultStore::new(Arc::new(InMemory::new())));
    let raw = Arc::new(TestStore::new(fault.clone(), None, Some(clock.clone())));
    let reads = open(raw.clone()).await;
    (
        World {
            clock,
            raw,
            reads,
            log: MemoryProofLog::new(),
        },
        fault,
    )
}

#[tokio::test]
async fn partial_delete_failure_keeps_keys_listed_and_claims_only_what_is_gone() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let (w, fault) = fault_world(now).await;
    let t = at(2026, 5, 10, 8, 0, 0);
    let reads: Vec<_> = ids("p", 10)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "PART1", t + Duration::minutes(i as i64)))
        .collect();
    let keys = w.ingest(&reads).await;
    let day = t.date_naive();
    // Two reads cannot be deleted (e.g. a 200 response whose body lists them as errors).
    let stuck: Vec<&ReadKey> = keys.iter().take(2).collect();
    for k in &stuck {
        fault.fail(Op::Delete, &k.locator);
    }
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.exit_code(), sweep::EXIT_PARTIAL);
    assert_eq!(rep.days[0].failed.iter().filter(|(p, _)| p.starts_with("reads/")).count(), 2);
    let left = w.listed(day).await;
    assert_eq!(left.len(), 2);
    let proofs = w.log.proofs();
    assert_eq!(proofs.len(), 1, "no closing proof while reads remain");
    assert_eq!(proofs[0].reads_deleted, 8);
    let mut gone: Vec<String> = keys.iter().skip(2).map(|k| k.to_string()).collect();
    gone.sort();
    assert_eq!(proofs[0].deleted_keys_root, merkle_root(&gone));
    assert_eq!(w.day_destroyed(day).await, Some(false), "the key stays while reads remain");

    fault.clear();
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.exit_code(), 0);
    let proofs = w.log.proofs();
    assert_eq!(proofs.len(), 3);
    assert_eq!(proofs[1].batch, Some(2));
    assert_eq!(proofs[1].reads_deleted, 2);
    let closing = &proofs[2];
    assert!(closing.reconciled && closing.key_destroyed);
    assert_eq!(closing.reads_deleted, 10);
}

#[tokio::test]
async fn crash_after_deletes_before_proof_is_finished_by_the_next_sweep() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    let t = at(2026, 5, 10, 8, 0, 0);
    let reads: Vec<_> = ids("c", 5)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "CRSH1", t + Duration::minutes(i as i64)))
        .collect();
    let keys = w.ingest(&reads).await;
    w.log.fail_appends(1);
    let e = w.sweep().await.unwrap_err();
    assert!(matches!(e, SweepError::Ledger(_)), "{e}");
    assert!(w.listed(t.date_naive()).await.is_empty(), "the deletes happened");
    assert!(w.log.proofs().is_empty(), "but no proof was written");
    assert_eq!(w.day_destroyed(t.date_naive()).await, Some(false));

    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.exit_code(), 0);
    let proofs = w.log.proofs();
    assert_eq!(proofs.len(), 2, "{proofs:?}");
    assert_eq!((proofs[0].batch, proofs[0].reads_deleted), (Some(1), 5));
    let mut names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    names.sort();
    assert_eq!(proofs[0].deleted_keys_root, merkle_root(&names));
    assert!(proofs[1].key_destroyed && proofs[1].reconciled && proofs[1].reads_deleted == 5);
    assert_eq!(w.day_destroyed(t.date_naive()).await, Some(true));
}

/// A proof log whose deletion-proof appends fail while `fail` is set: the sweeper dies after
/// deleting, before its proof.
#[derive(Debug)]
struct ProofsFail {
    log: MemoryProofLog,
    fail: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl ProofLog for ProofsFail {
    async fn append(&self, at: DateTime<Utc>, event: SweepEvent) -> Result<(), sweep::ProofLogError> {
        if matches!(event, SweepEvent::DeletionProof(_)) && self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(sweep::ProofLogError {
                op: "append",
                source: "injected: the sweeper died".into(),
            });
        }
        self.log.append(at, event).await
    }
    async fn for_each_event(&self, f: &mut (dyn FnMut(SweepEvent) + Send)) -> Result<(), sweep::ProofLogError> {
        self.log.for_each_event(f).await
    }
}

#[tokio::test]
async fn a_forced_sweep_that_died_mid_batch_is_finished_by_the_next_sweep() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    // Reads two days old: within retention by the store's clock.
    let t = now - Duration::days(2);
    let reads: Vec<_> = ids("f", 4)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "FRCD1", t + Duration::minutes(i as i64)))
        .collect();
    w.ingest(&reads).await;
    // A sweep forced past a clock 29 days ahead deletes them, then dies before its proof.
    let log = ProofsFail {
        log: MemoryProofLog::new(),
        fail: true.into(),
    };
    let ahead = ManualClock::new(now + Duration::days(29));
    let forced = SweepOptions {
        force: true,
        ..Default::default()
    };
    assert!(sweep::run(&w.reads, &log, &ahead, &forced).await.is_err());
    assert!(w.listed(t.date_naive()).await.is_empty(), "the deletes happened");
    assert!(log.log.proofs().is_empty(), "without a proof");
    // The next ordinary sweep, on the right clock, finishes the batch (the day is far from its
    // cutoff): the proof exists, marked forced as its intent was.
    log.fail.store(false, std::sync::atomic::Ordering::SeqCst);
    let rep = sweep::run(&w.reads, &log, &w.clock, &SweepOptions::default()).await.unwrap();
    assert_eq!(rep.deleted(), 4);
    let proofs = log.log.proofs();
    assert_eq!(proofs.len(), 1, "{proofs:?}");
    assert!(proofs[0].forced && proofs[0].batch.is_some() && proofs[0].reads_deleted == 4);
    assert_eq!(w.day_destroyed(t.date_naive()).await, Some(false), "the day is not closed early");
}

#[tokio::test]
async fn a_proof_whose_acknowledgement_was_lost_is_not_written_twice() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    let t = at(2026, 5, 10, 8, 0, 0);
    w.ingest(&[("x".into(), "LOST1", t)]).await;
    w.log.store_then_fail_appends(1);
    assert!(w.sweep().await.is_err());
    w.sweep().await.unwrap();
    let proofs = w.log.proofs();
    assert_eq!(proofs.iter().filter(|p| p.batch == Some(1)).count(), 1, "{proofs:?}");
    assert_eq!(proofs.iter().filter(|p| p.batch.is_none()).count(), 1);
}

#[tokio::test]
async fn crash_after_proof_before_key_destroy_is_finished_by_the_next_sweep() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let (w, fault) = fault_world(now).await;
    let t = at(2026, 5, 10, 8, 0, 0);
    let day = t.date_naive();
    w.ingest(&[("k".into(), "KEYD1", t), ("l".into(), "KEYD2", t + Duration::hours(1))])
        .await;
    // The key cannot be replaced by its tombstone: the sweep dies there.
    fault.fail(Op::Put, &format!("keys/day/{day}"));
    assert!(w.sweep().await.is_err());
    let proofs = w.log.proofs();
    assert_eq!(proofs.len(), 1);
    assert!(
        !proofs[0].key_destroyed,
        "the ledger does not claim a destruction that did not happen"
    );
    assert_eq!(w.day_destroyed(day).await, Some(false));

    fault.clear();
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.exit_code(), 0);
    let proofs = w.log.proofs();
    assert_eq!(proofs.len(), 2);
    assert!(proofs[1].key_destroyed && proofs[1].reconciled && proofs[1].reads_deleted == 2);
    assert_eq!(w.day_destroyed(day).await, Some(true));
}

#[tokio::test]
async fn a_store_that_is_down_stops_the_sweep_without_claims() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let (w, fault) = fault_world(now).await;
    w.ingest(&[("d".into(), "DOWN1", at(2026, 5, 10, 8, 0, 0))]).await;
    fault.down();
    let e = w.sweep().await.unwrap_err();
    assert_eq!(e.exit_code(), sweep::EXIT_FAILED);
    assert!(w.log.proofs().is_empty());
}

// ---------------------------------------------------------------- paging

async fn paging_case(inner: Arc<dyn ObjectStore>) {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world_on(inner, now, Some(1000)).await;
    let t = at(2026, 5, 10, 0, 0, 0);
    let reads: Vec<_> = ids("pg", 2500)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "PAGE1", t + Duration::seconds(i as i64 * 30)))
        .collect();
    let keys = w.ingest(&reads).await;
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.exit_code(), 0);
    assert_eq!(rep.deleted(), 2500);
    assert!(w.raw.pages.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    for k in &keys {
        assert_eq!(w.raw.delete_count(&k.to_string()), 1, "{k}");
    }
    let closing = rep.days[0].closed.clone().unwrap();
    assert_eq!((closing.reads_deleted, closing.reconciled), (2500, true));
}

#[tokio::test]
async fn twenty_five_hundred_reads_in_pages_of_1000_are_each_deleted_once_in_memory() {
    paging_case(Arc::new(InMemory::new())).await;
}

#[tokio::test]
async fn twenty_five_hundred_reads_in_pages_of_1000_are_each_deleted_once_local_dir() {
    let dir = tempfile::tempdir().unwrap();
    let fs = object_store::local::LocalFileSystem::new_with_prefix(dir.path())
        .unwrap()
        .with_automatic_cleanup(true);
    paging_case(Arc::new(fs)).await;
}

#[tokio::test]
async fn a_listing_that_repeats_a_page_is_refused() {
    // Regression guard: a server that hands out the same continuation token twice must not make
    // the sweeper count (or claim) reads twice.
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world_on(Arc::new(InMemory::new()), now, Some(1000)).await;
    let t = at(2026, 5, 10, 0, 0, 0);
    let reads: Vec<_> = ids("rp", 1200)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "REP1", t + Duration::seconds(i as i64)))
        .collect();
    w.ingest(&reads).await;
    w.raw.repeat_a_page.store(true, std::sync::atomic::Ordering::SeqCst);
    let e = w.sweep().await.unwrap_err();
    assert!(matches!(e, SweepError::ListingRepeated { .. }), "{e}");
    assert!(w.log.proofs().is_empty());
    w.raw.repeat_a_page.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(w.listed(t.date_naive()).await.len(), 1200, "nothing was deleted");
}

// ---------------------------------------------------------------- concurrency

#[tokio::test]
async fn two_sweepers_started_together_one_works_the_other_exits_busy() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    let t = at(2026, 5, 10, 0, 0, 0);
    let reads: Vec<_> = ids("two", 300)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "TWO1", t + Duration::seconds(i as i64)))
        .collect();
    w.ingest(&reads).await;
    let (a, b) = tokio::join!(w.sweep(), w.sweep());
    let (ok, busy): (Vec<_>, Vec<_>) = [a, b].into_iter().partition(|r| r.is_ok());
    assert_eq!(ok.len(), 1);
    let e = busy.into_iter().next().unwrap().unwrap_err();
    assert_eq!(e.exit_code(), sweep::EXIT_BUSY, "{e}");
    let proofs = w.log.proofs();
    assert_eq!(proofs.len(), 2, "one batch and one closing proof, no duplicates: {proofs:?}");
    for k in w.raw.deletes.lock().unwrap().iter().filter(|(k, _)| k.starts_with("reads/")) {
        assert_eq!(*k.1, 1, "{}", k.0);
    }
}

#[tokio::test]
async fn a_dead_sweepers_lease_expires() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    w.ingest(&[("dl".into(), "DEAD1", at(2026, 5, 10, 0, 0, 0))]).await;
    // A sweeper took the lease and died.
    let lease = sweep::lease::Lease::take(w.raw.clone(), "dead@host", now, Duration::minutes(15), Duration::minutes(5))
        .await
        .unwrap();
    std::mem::forget(lease);
    assert_eq!(w.sweep().await.unwrap_err().exit_code(), sweep::EXIT_BUSY);
    w.clock.advance(Duration::minutes(16));
    assert_eq!(w.sweep().await.unwrap().deleted(), 1);
}

/// The newest lease generation's file, as JSON.
async fn newest_lease(store: &Arc<dyn ObjectStore>) -> serde_json::Value {
    let mut names: Vec<_> = store
        .list(Some(&Path::from(sweep::lease::LEASE_PREFIX)))
        .map_ok(|m| m.location)
        .try_collect()
        .await
        .unwrap();
    names.sort();
    let bytes = store.get(names.last().unwrap()).await.unwrap().bytes().await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn a_forced_sweep_keeps_its_lease_in_store_time() {
    // The store keeps real time; the sweeper's clock is 28 days ahead (`faketime +28d`), forced.
    let real = SystemClock.now();
    let clock = ManualClock::new(real + Duration::days(28));
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let raw = Arc::new(TestStore::new(store.clone(), None, None));
    let reads = open(raw.clone()).await;
    let log = MemoryProofLog::new();
    let opts = SweepOptions {
        force: true,
        ..Default::default()
    };
    sweep::run(&reads, &log, &clock, &opts).await.unwrap();
    let lease = newest_lease(&store).await;
    let taken: DateTime<Utc> = lease["taken_at"].as_str().unwrap().parse().unwrap();
    assert!((taken - real).num_minutes().abs() < 5, "lease written in local time: {lease}");
}

#[tokio::test]
async fn a_lease_left_by_a_skewed_clock_does_not_hold_off_sweeps_for_weeks() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    w.ingest(&[("sk".into(), "SKEW1", at(2026, 5, 10, 0, 0, 0))]).await;
    // A sweeper before this rule, forced past a clock 28 days ahead, took the lease in its own
    // time and died.
    let lease = sweep::lease::Lease::take(
        w.raw.clone(),
        "skewed@host",
        now + Duration::days(28),
        Duration::minutes(15),
        Duration::minutes(5),
    )
    .await
    .unwrap();
    std::mem::forget(lease);
    assert_eq!(w.sweep().await.unwrap().deleted(), 1, "the stale lease is taken over");
}

// ---------------------------------------------------------------- clock guard

#[tokio::test]
async fn a_clock_a_year_ahead_is_refused_and_nothing_is_deleted() {
    for local_dir in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let inner: Arc<dyn ObjectStore> = if local_dir {
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap())
        } else {
            Arc::new(InMemory::new())
        };
        // The store keeps real time (file mtimes, InMemory's timestamps); the sweeper's clock is
        // a year ahead, as with `faketime +365d lethe sweep`.
        let real = SystemClock.now();
        let clock = ManualClock::new(real);
        let raw = Arc::new(TestStore::new(inner, None, None));
        let reads = open(raw.clone()).await;
        let log = MemoryProofLog::new();
        let r = read("y", "YEAR1", real - Duration::days(1), "cam");
        reads.put(&r, true, real).await.unwrap();
        clock.advance(Duration::days(365));
        let e = sweep::run(&reads, &log, &clock, &SweepOptions::default()).await.unwrap_err();
        assert_eq!(e.exit_code(), sweep::EXIT_CLOCK);
        let msg = e.to_string();
        assert!(msg.starts_with("refusing to sweep") && !msg.contains('\n'), "{msg}");
        assert_eq!(reads.list_day(r.day()).try_collect::<Vec<_>>().await.unwrap().len(), 1);
        assert!(log.all().is_empty());

        // --force overrides, and says so in the ledger and in every proof.
        let opts = SweepOptions {
            force: true,
            ..Default::default()
        };
        let rep = sweep::run(&reads, &log, &clock, &opts).await.unwrap();
        assert!(rep.forced);
        assert_eq!(rep.deleted(), 1);
        assert!(matches!(log.all()[0], SweepEvent::SweepForced { .. }));
        assert!(log.proofs().iter().all(|p| p.forced));
    }
}

#[tokio::test]
async fn dry_run_reports_and_changes_nothing() {
    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    let t = at(2026, 5, 10, 0, 0, 0);
    w.ingest(&[("d1".into(), "DRY1", t), ("d2".into(), "DRY2", now - Duration::days(1))])
        .await;
    let opts = SweepOptions {
        dry_run: true,
        ..Default::default()
    };
    let rep = sweep::run(&w.reads, &w.log, &w.clock, &opts).await.unwrap();
    assert_eq!(rep.deleted(), 1);
    assert!(rep.days[0].would_shred);
    assert_eq!(w.listed(t.date_naive()).await.len(), 1);
    assert_eq!(w.day_destroyed(t.date_naive()).await, Some(false));
    assert!(w.log.proofs().is_empty());
    let leases: Vec<_> = w.raw.list(Some(&Path::from("sweep"))).try_collect().await.unwrap();
    assert!(leases.is_empty(), "a dry run takes no lease: {leases:?}");
}

// ---------------------------------------------------------------- legal holds

fn hold_req(plate: Option<&str>, until: DateTime<Utc>) -> HoldRequest {
    HoldRequest {
        case_number: "2026-CR-0042".into(),
        authority: Authority::Warrant,
        authority_ref: "W-123".into(),
        until,
        plate: plate.map(String::from),
        camera: None,
        from: None,
        to: None,
        placed_by: "det.smith".into(),
    }
}

#[tokio::test]
async fn held_reads_survive_shredding_and_are_purged_after_release() {
    let placed = at(2026, 5, 12, 0, 0, 0);
    let w = world(placed).await;
    let t = at(2026, 5, 10, 8, 0, 0);
    let day = t.date_naive();
    w.ingest(&[
        ("h1".into(), "HELD1", t),
        ("h2".into(), "HELD1", t + Duration::hours(2)),
        ("o1".into(), "OTHER1", t + Duration::hours(3)),
        ("o2".into(), "OTHER2", t + Duration::hours(4)),
    ])
    .await;
    let placed_hold = hold::place(
        &w.reads,
        &w.log,
        &w.clock,
        &Retention::default(),
        hold_req(Some("held-1"), at(2027, 1, 1, 0, 0, 0)),
    )
    .await
    .unwrap();
    assert_eq!(placed_hold.reads_held, 2);
    let id = placed_hold.record.hold_id.clone();

    // No plaintext plate anywhere under holds/ (names or content).
    let objs: Vec<_> = w.raw.list(Some(&Path::from("holds"))).try_collect().await.unwrap();
    for m in &objs {
        assert!(!m.location.as_ref().contains("HELD1"));
        let b = w.raw.get(&m.location).await.unwrap().bytes().await.unwrap();
        assert!(!String::from_utf8_lossy(&b).contains("HELD1"), "{}", m.location);
    }
    assert!(w.log.all().iter().all(|e| !format!("{e:?}").contains("HELD1")));

    w.clock.set(at(2026, 6, 20, 0, 0, 0));
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.exit_code(), 0);
    let closing = rep.days[0].closed.clone().unwrap();
    assert_eq!((closing.reads_deleted, closing.reads_held, closing.ingested_total), (2, 2, 4));
    assert!(closing.reconciled && closing.key_destroyed);
    assert_eq!(w.day_destroyed(day).await, Some(true));
    let held = hold::held_reads(&w.reads, &id).await.unwrap();
    assert_eq!(held.len(), 2);
    assert!(held.iter().all(|r| r.plate == "HELD1"));

    assert!(hold::release(&w.reads, &w.log, &w.clock, &id, "da.jones", "case closed")
        .await
        .unwrap());
    assert!(!hold::release(&w.reads, &w.log, &w.clock, &id, "da.jones", "again").await.unwrap());
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.holds.len(), 1);
    assert_eq!((rep.holds[0].deleted, rep.holds[0].key_destroyed), (2, true));
    let left: Vec<_> = w.raw.list(Some(&Path::from(format!("holds/{id}")))).try_collect().await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(w.reads.keys().is_destroyed(&KeyName::Hold(id.clone())).await.unwrap(), Some(true));
    let kinds: Vec<&str> = w
        .log
        .all()
        .iter()
        .map(|e| match e {
            SweepEvent::HoldPlaced(_) => "placed",
            SweepEvent::HoldReleased { .. } => "released",
            SweepEvent::HoldPurged { .. } => "purged",
            _ => "",
        })
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(kinds, ["placed", "released", "purged"]);
    // Idempotent afterwards.
    let rep = w.sweep().await.unwrap();
    assert!(rep.holds.is_empty() && rep.days.is_empty());
}

#[tokio::test]
async fn a_hold_covers_reads_that_arrive_after_it_and_lapses_at_its_end() {
    let placed = at(2026, 5, 10, 0, 0, 0);
    let w = world(placed).await;
    let mut req = hold_req(Some("LATE9"), at(2026, 7, 1, 0, 0, 0));
    req.to = Some(at(2026, 5, 11, 0, 0, 0));
    let id = hold::place(&w.reads, &w.log, &w.clock, &Retention::default(), req)
        .await
        .unwrap()
        .record
        .hold_id;
    // Arrives after the hold was placed, inside its window.
    w.ingest(&[
        ("late".into(), "LATE9", at(2026, 5, 10, 9, 0, 0)),
        ("x".into(), "NOPE1", at(2026, 5, 10, 9, 0, 0)),
    ])
    .await;
    w.clock.set(at(2026, 6, 20, 0, 0, 0));
    let rep = w.sweep().await.unwrap();
    assert_eq!((rep.deleted(), rep.held()), (1, 1));
    assert_eq!(hold::held_reads(&w.reads, &id).await.unwrap().len(), 1);
    // Past its end the hold lapses: the next sweep records that and purges its copies.
    w.clock.set(at(2026, 7, 1, 0, 0, 1));
    let rep = w.sweep().await.unwrap();
    assert_eq!(rep.holds[0].deleted, 1);
    assert!(w
        .log
        .all()
        .iter()
        .any(|e| matches!(e, SweepEvent::HoldReleased { released_by, .. } if released_by == "expiry")));
}

#[tokio::test]
async fn hold_list_shows_state() {
    let now = at(2026, 5, 10, 0, 0, 0);
    let w = world(now).await;
    let id = hold::place(
        &w.reads,
        &w.log,
        &w.clock,
        &Retention::default(),
        hold_req(None, at(2026, 8, 1, 0, 0, 0)),
    )
    .await
    .unwrap()
    .record
    .hold_id;
    let all = hold::list(&w.reads).await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(all[0].is_active(now));
    hold::release(&w.reads, &w.log, &w.clock, &id, "x", "y").await.unwrap();
    assert!(!hold::list(&w.reads).await.unwrap()[0].is_active(now));
    assert!(hold::place(
        &w.reads,
        &w.log,
        &w.clock,
        &Retention::default(),
        hold_req(None, now - Duration::days(1))
    )
    .await
    .is_err());
}

// ---------------------------------------------------------------- the real ledger

#[tokio::test]
async fn proofs_on_the_real_ledger_are_read_back_and_verify() {
    use lethe::ledger::record::{IngestCommit, Record, RecordBody};
    use lethe::ledger::{Ledger, LedgerConfig, SigningKey};
    use lethe::sweep::ledger_log::LedgerProofLog;

    let now = at(2026, 6, 20, 0, 0, 0);
    let w = world(now).await;
    let t = at(2026, 5, 10, 8, 0, 0);
    let reads: Vec<_> = ids("l", 3)
        .into_iter()
        .enumerate()
        .map(|(i, id)| (id, "LEDG1", t + Duration::minutes(i as i64)))
        .collect();
    w.ingest(&reads).await;
    let ledger = Ledger::open(
        w.raw.clone(),
        LedgerConfig::default(),
        SigningKey::generate("lethe.test/ledger").unwrap(),
    )
    .await
    .unwrap();
    let ingest = RecordBody::IngestCommit(IngestCommit {
        day: t.date_naive(),
        count: 3,
        merkle_root: [0u8; 32],
        first_key: String::new(),
        last_key: String::new(),
    });
    ledger.append(&Record::new(t, "serve@test", ingest)).await.unwrap();
    let log = LedgerProofLog::new(ledger.clone(), "sweep@test");
    // The first attempt dies before its proof; the second finishes it.
    let fault_log = MemoryProofLog::new();
    fault_log.fail_appends(1);
    assert!(sweep::run(&w.reads, &fault_log, &w.clock, &SweepOptions::default()).await.is_err());
    let rep = sweep::run(&w.reads, &log, &w.clock, &SweepOptions::default()).await.unwrap();
    assert_eq!(rep.exit_code(), 0, "{rep:?}");
    let closing = rep.days[0].closed.clone().unwrap();
    assert!(closing.reconciled && closing.key_destroyed && closing.ingested_total == 3);
    let events = log.events().await.unwrap();
    let proofs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            SweepEvent::DeletionProof(p) => Some(p.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(proofs.len(), 2);
    assert_eq!(proofs[0].batch, Some(1));
    assert_eq!(proofs[1], closing);
    // A rerun reads the ledger and writes nothing more.
    let rep = sweep::run(&w.reads, &log, &w.clock, &SweepOptions::default()).await.unwrap();
    assert!(rep.days.is_empty());
    assert_eq!(log.events().await.unwrap().len(), events.len());
    let report = lethe::ledger::verify_log(ledger.reader(), None).await.unwrap();
    assert!(report.failures.is_empty(), "{report:?}");
}

/// The sweeper folds the ledger one batch object at a time instead of reading it whole first:
/// the events of the first batches reach it before a later batch is read (here, before a read
/// of the third batch fails). Reading the whole log into memory first would deliver none.
#[tokio::test]
async fn the_ledger_is_streamed_to_the_sweeper_not_read_whole() {
    use lethe::ledger::record::{IngestCommit, Record, RecordBody};
    use lethe::ledger::{Ledger, LedgerConfig, SigningKey};
    use lethe::store::fault::Fault;
    use lethe::sweep::ledger_log::LedgerProofLog;

    let faults = Arc::new(FaultStore::new(Arc::new(InMemory::new())));
    let ledger = Ledger::open(
        faults.clone(),
        LedgerConfig::default(),
        SigningKey::generate("lethe.test/ledger").unwrap(),
    )
    .await
    .unwrap();
    let t = at(2026, 5, 10, 8, 0, 0);
    // Appended one after another: one batch object each.
    for count in 1..=3 {
        let body = RecordBody::IngestCommit(IngestCommit {
            day: t.date_naive(),
            count,
            merkle_root: [0u8; 32],
            first_key: String::new(),
            last_key: String::new(),
        });
        ledger.append(&Record::new(t, "serve@test", body)).await.unwrap();
    }
    let log = LedgerProofLog::new(ledger, "sweep@test");
    assert_eq!(log.events().await.unwrap().len(), 3);
    // Once the first batch has been read again, reading the third fails.
    faults.fail_after(
        Op::Get,
        "ledger/batches/00000000000000000000",
        Op::Get,
        "ledger/batches/00000000000000000002",
        Fault::Error,
    );
    let mut seen = Vec::new();
    let res = log
        .for_each_event(&mut |e| {
            if let SweepEvent::IngestCommit { count, .. } = e {
                seen.push(count)
            }
        })
        .await;
    assert!(res.is_err(), "the failed read of the third batch is an error");
    assert_eq!(seen, vec![1, 2], "the first two batches were folded before the third was read");
}
