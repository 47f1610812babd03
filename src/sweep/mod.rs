//! The sweeper: deletes reads past retention by capture time, destroys expired day keys
//! (crypto-shredding) and writes deletion proofs to the ledger.
//!
//! # What a sweep does
//!
//! `cutoff = now − retention` (an exact number of hours, in UTC instants). Then, in order:
//!
//! 1. **Clock check.** A probe object is written and its `last_modified` (the store's clock)
//!    compared with the local clock; a difference above `max_clock_skew` refuses the sweep
//!    before anything is deleted, unless forced — and a forced sweep is a `SweepForced` record.
//! 2. **Lease.** A create-only, generation-numbered lease ([`lease`]) makes a second sweeper
//!    exit with [`SweepError::Busy`]; a dead holder's lease expires.
//! 3. **Per capture day** with anything before the cutoff: unfinished batches from a crashed
//!    sweep are finished first; then the day is listed (a listing that yields a key twice is an
//!    error), reads captured before the cutoff are selected from their names (no fetch), reads
//!    covered by an active legal hold get their hold copy, a **batch intent**
//!    (`sweep/days/{day}/{batch}.json`, create-only) records exactly which objects are about to
//!    be deleted, the reads and their idempotency markers are batch-deleted (every per-key
//!    result checked), the day is **re-listed**, and a batch `DeletionProof` claims only the
//!    intent's objects the re-listing no longer shows.
//! 4. **Closing a day.** Once the whole day is before the cutoff and the re-listing is empty,
//!    the day's markers are removed, its key is replaced by a tombstone, and a closing
//!    `DeletionProof` (batch `None`, `key_destroyed: true`) states the day's totals over all
//!    its batches and reconciles deleted + held against the day's ingest commits.
//! 5. **Holds.** A released or expired hold's copies are deleted (with their own intent), its key
//!    destroyed and a `HoldPurged` record written.
//!
//! # Crash safety
//!
//! Every step is durable before the next one starts, and every step is idempotent: an intent
//! whose proof is not in the ledger is finished by the next sweep (deleting again is harmless;
//! the claim is still made only from a re-listing); a closing proof is written after the key is
//! a tombstone, and the ledger is checked before any proof is appended, so a crash between the
//! deletes and the proof, or between the proof and the key destruction, is completed by the
//! next sweep without a duplicate or false claim. Each read is claimed by exactly one batch
//! proof: a batch only lists reads still present after every earlier batch was proven.
//!
//! # Exit codes (`lethe sweep`)
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done: everything past retention is deleted and proven |
//! | 1 | failed: store, ledger, key or configuration error (no false claim was written) |
//! | 2 | partial: some objects could not be deleted; they stay listed, are not claimed, and the next sweep retries |
//! | 3 | refused: the local clock and the store's clock disagree by more than the allowed skew (`--force` overrides, recorded in the ledger) |
//! | 4 | busy: another sweep holds the lease; this one did nothing (safe to ignore in cron) |
//! | 5 | a day was closed whose deleted + held reads do not match its ingest commits (a finding for the audit) |

pub mod clockcheck;
pub mod lease;
pub mod ledger_log;
pub mod lifecycle;
pub mod proof;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use futures::StreamExt;
use indicatif::ProgressBar;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::crypto::{KeyError, KeyName};
use crate::hold::{self, HoldError, LoadedHold};
use crate::policy::Retention;
use crate::store::layout::{self, ReadKey};
use crate::store::{ReadStore, StoreError};
use lease::Lease;
pub use proof::{merkle_root, DeletionProof, MemoryProofLog, ProofLog, ProofLogError, SweepEvent};

/// Exit code: done.
pub const EXIT_OK: u8 = 0;
/// Exit code: failed (store, ledger, key or configuration error).
pub const EXIT_FAILED: u8 = 1;
/// Exit code: some objects could not be deleted.
pub const EXIT_PARTIAL: u8 = 2;
/// Exit code: refused by the clock check.
pub const EXIT_CLOCK: u8 = 3;
/// Exit code: another sweep holds the lease.
pub const EXIT_BUSY: u8 = 4;
/// Exit code: a closed day did not reconcile with its ingest commits.
pub const EXIT_UNRECONCILED: u8 = 5;

/// Prefix of batch intents.
pub const INTENTS: &str = "sweep/days";

/// Errors that stop a sweep.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SweepError {
    /// The object store failed.
    #[error("object store {op} {key}: {source}")]
    Backend {
        /// The operation.
        op: &'static str,
        /// The object or prefix.
        key: String,
        /// Why.
        source: object_store::Error,
    },
    /// The read store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A key could not be loaded or destroyed.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A legal hold could not be loaded or applied.
    #[error(transparent)]
    Hold(#[from] HoldError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] ProofLogError),
    /// Another sweep holds the lease.
    #[error("another sweep ({holder}) holds the lease until {expires_at}; nothing done")]
    Busy {
        /// Who.
        holder: String,
        /// Until when.
        expires_at: DateTime<Utc>,
    },
    /// The lease expired or was taken over while sweeping; the sweep stopped.
    #[error("lost the sweep lease (generation {generation}) to another sweeper; stopped")]
    LeaseLost {
        /// The generation held.
        generation: u64,
    },
    /// The clocks disagree.
    #[error(
        "refusing to sweep: local clock {local} and the store's clock {store} differ by {skew_secs} s (more than {max_secs} s); fix the clock or run with --force"
    )]
    ClockSkew {
        /// Local time.
        local: DateTime<Utc>,
        /// Store time.
        store: DateTime<Utc>,
        /// The difference in seconds (store − local).
        skew_secs: i64,
        /// The allowed difference.
        max_secs: i64,
    },
    /// A listing returned the same object twice (a repeated continuation token).
    #[error("listing {prefix} returned {key} twice (repeated continuation token?); refusing to trust it")]
    ListingRepeated {
        /// The prefix listed.
        prefix: String,
        /// The repeated object.
        key: String,
    },
    /// A sweep object does not parse, or the store holds something unexpected.
    #[error("{key}: {reason}")]
    Corrupt {
        /// The object.
        key: String,
        /// Why.
        reason: String,
    },
}

impl SweepError {
    /// The process exit code for this error (see the module documentation).
    pub fn exit_code(&self) -> u8 {
        match self {
            SweepError::Busy { .. } => EXIT_BUSY,
            SweepError::ClockSkew { .. } => EXIT_CLOCK,
            _ => EXIT_FAILED,
        }
    }
}

fn backend(op: &'static str, key: impl std::fmt::Display, source: object_store::Error) -> SweepError {
    SweepError::Backend {
        op,
        key: key.to_string(),
        source,
    }
}

/// How to sweep.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The retention rule.
    pub retention: Retention,
    /// Report what would be deleted and shredded; change nothing (the clock probe aside).
    pub dry_run: bool,
    /// Sweep even if the clock check fails (recorded in the ledger).
    pub force: bool,
    /// Largest allowed difference between the local and the store's clock.
    pub max_clock_skew: Duration,
    /// Lease time; renewed while sweeping.
    pub lease_ttl: Duration,
    /// Who sweeps (e.g. `sweep@host`), written into the lease.
    pub writer: String,
    /// Objects per batch-delete call.
    pub delete_batch: usize,
    /// Progress (hidden unless the caller shows it).
    pub progress: ProgressBar,
}

impl Default for SweepOptions {
    fn default() -> Self {
        Self {
            retention: Retention::default(),
            dry_run: false,
            force: false,
            max_clock_skew: Duration::minutes(5),
            lease_ttl: Duration::minutes(15),
            writer: "sweep".into(),
            delete_batch: 1000,
            progress: ProgressBar::hidden(),
        }
    }
}

/// What a sweep did (or, dry, would do) for one capture day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayReport {
    /// The capture day.
    pub day: NaiveDate,
    /// Reads confirmed deleted by this sweep (would be deleted, dry).
    pub deleted: u64,
    /// Reads whose originals were removed because a hold keeps a copy (dry: may be held).
    pub held: u64,
    /// Reads of the day still within retention.
    pub kept: u64,
    /// Objects that could not be deleted, with the reason.
    pub failed: Vec<(String, String)>,
    /// Batch proofs written (including finished batches of a crashed sweep).
    pub batch_proofs: u32,
    /// The closing proof written by this sweep, if the day was closed.
    pub closed: Option<DeletionProof>,
    /// Dry run: the day key would be destroyed.
    pub would_shred: bool,
}

/// What a sweep did for a released or expired hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HoldPurgeReport {
    /// The hold.
    pub hold_id: String,
    /// Copies deleted.
    pub deleted: u64,
    /// The hold key was destroyed.
    pub key_destroyed: bool,
    /// Objects that could not be deleted.
    pub failed: Vec<(String, String)>,
}

/// What a sweep did.
#[derive(Debug, Clone)]
pub struct SweepReport {
    /// The sweep's time.
    pub now: DateTime<Utc>,
    /// Its cutoff.
    pub cutoff: DateTime<Utc>,
    /// Dry run.
    pub dry_run: bool,
    /// Store clock − local clock.
    pub clock_skew: Duration,
    /// Forced past the clock check.
    pub forced: bool,
    /// Per day, oldest first.
    pub days: Vec<DayReport>,
    /// Holds purged.
    pub holds: Vec<HoldPurgeReport>,
}

impl SweepReport {
    /// The exit code (0, 2 or 5; see the module documentation).
    pub fn exit_code(&self) -> u8 {
        if self.days.iter().any(|d| !d.failed.is_empty()) || self.holds.iter().any(|h| !h.failed.is_empty()) {
            EXIT_PARTIAL
        } else if self.days.iter().any(|d| d.closed.as_ref().is_some_and(|p| !p.reconciled)) {
            EXIT_UNRECONCILED
        } else {
            EXIT_OK
        }
    }

    /// Total reads deleted.
    pub fn deleted(&self) -> u64 {
        self.days.iter().map(|d| d.deleted).sum()
    }

    /// Total reads held.
    pub fn held(&self) -> u64 {
        self.days.iter().map(|d| d.held).sum()
    }
}

/// One planned read of a batch intent.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IntentRead {
    key: String,
    held: bool,
}

/// A batch intent: what a sweep is about to delete for one day (written before deleting).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Intent {
    v: u8,
    day: NaiveDate,
    batch: u32,
    cutoff: DateTime<Utc>,
    forced: bool,
    created_at: DateTime<Utc>,
    reads: Vec<IntentRead>,
}

fn intent_prefix(day: NaiveDate) -> Path {
    Path::from(format!("{INTENTS}/{day}"))
}

fn intent_path(day: NaiveDate, batch: u32) -> Path {
    Path::from(format!("{INTENTS}/{day}/{batch:06}.json"))
}

/// What the ledger already says.
#[derive(Debug, Default)]
struct LedgerState {
    ingested: HashMap<NaiveDate, u64>,
    batches: HashSet<(NaiveDate, u32)>,
    closed: HashSet<NaiveDate>,
    released: HashSet<String>,
    purged: HashSet<String>,
}

impl LedgerState {
    /// Folds one sweep-relevant ledger record into the state.
    fn apply(&mut self, e: SweepEvent) {
        match e {
            SweepEvent::IngestCommit { day, count } => *self.ingested.entry(day).or_default() += count,
            SweepEvent::DeletionProof(p) => match p.batch {
                Some(b) => {
                    self.batches.insert((p.day, b));
                }
                None => {
                    self.closed.insert(p.day);
                }
            },
            SweepEvent::HoldReleased { hold_id, .. } => {
                self.released.insert(hold_id);
            }
            SweepEvent::HoldPurged { hold_id, .. } => {
                self.purged.insert(hold_id);
            }
            SweepEvent::HoldPlaced(_) | SweepEvent::SweepForced { .. } => {}
        }
    }
}

/// Lists a prefix completely, failing if any object comes back twice.
pub async fn list_checked(store: &dyn ObjectStore, prefix: &Path) -> Result<Vec<ObjectMeta>, SweepError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    let mut s = store.list(Some(prefix));
    while let Some(m) = s.next().await {
        let m = m.map_err(|e| backend("list", prefix, e))?;
        if !seen.insert(m.location.clone()) {
            return Err(SweepError::ListingRepeated {
                prefix: prefix.to_string(),
                key: m.location.to_string(),
            });
        }
        out.push(m);
    }
    Ok(out)
}

async fn list_day(store: &dyn ObjectStore, day: NaiveDate) -> Result<BTreeMap<String, ReadKey>, SweepError> {
    let prefix = layout::day_prefix(day);
    let mut out = BTreeMap::new();
    for m in list_checked(store, &prefix).await? {
        let k = ReadKey::parse(&m.location).ok_or_else(|| SweepError::Corrupt {
            key: m.location.to_string(),
            reason: "not a lethe read name; the sweeper does not delete what it did not write".into(),
        })?;
        out.insert(m.location.to_string(), k);
    }
    Ok(out)
}

async fn put_create(store: &dyn ObjectStore, path: &Path, body: Vec<u8>) -> Result<bool, SweepError> {
    let opts = PutOptions {
        mode: PutMode::Create,
        ..Default::default()
    };
    match store.put_opts(path, PutPayload::from(body), opts).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
        Err(e) => Err(backend("put", path, e)),
    }
}

async fn load_intents(store: &dyn ObjectStore, day: NaiveDate) -> Result<Vec<Intent>, SweepError> {
    let mut out = Vec::new();
    for m in list_checked(store, &intent_prefix(day)).await? {
        let bytes = store
            .get(&m.location)
            .await
            .map_err(|e| backend("get", &m.location, e))?
            .bytes()
            .await
            .map_err(|e| backend("get", &m.location, e))?;
        let i: Intent = serde_json::from_slice(&bytes).map_err(|e| SweepError::Corrupt {
            key: m.location.to_string(),
            reason: e.to_string(),
        })?;
        out.push(i);
    }
    out.sort_by_key(|i| i.batch);
    Ok(out)
}

/// How many batch-delete calls a sweep keeps in flight (the raw `delete_stream` of the S3
/// backend keeps 20).
pub const DELETE_CONCURRENCY: usize = 20;

/// Deletes `paths` in batches of `batch`, [`DELETE_CONCURRENCY`] batches at a time, returning
/// the failures (path, reason). Every per-key result is checked by [`ReadStore::delete_paths`].
async fn delete_all(reads: &ReadStore, paths: Vec<Path>, batch: usize, progress: &ProgressBar) -> Vec<(String, String)> {
    let batch = batch.max(1);
    let chunks: Vec<Vec<Path>> = paths.chunks(batch).map(<[Path]>::to_vec).collect();
    let mut reports = futures::stream::iter(chunks)
        .map(|chunk| reads.delete_paths(chunk))
        .buffer_unordered(DELETE_CONCURRENCY);
    let mut failed = Vec::new();
    while let Some(rep) = reports.next().await {
        progress.inc(rep.deleted.len() as u64);
        failed.extend(rep.failed.into_iter().map(|(p, r)| (p.to_string(), r)));
    }
    failed
}

struct Sweeper<'a> {
    reads: &'a ReadStore,
    log: &'a dyn ProofLog,
    clock: &'a dyn Clock,
    opts: &'a SweepOptions,
    lease: Option<Lease>,
    state: LedgerState,
    holds: Vec<LoadedHold>,
    cutoff: DateTime<Utc>,
    forced: bool,
    /// Store clock minus local clock, measured at the start: the lease is kept in store time.
    skew: Duration,
}

/// Runs one sweep. See the module documentation for what it guarantees.
///
/// Errors stop the sweep ([`SweepError::exit_code`] gives the exit code); per-object delete
/// failures do not — they are in the report ([`SweepReport::exit_code`]), and the objects stay
/// unclaimed for the next sweep.
pub async fn run(reads: &ReadStore, log: &dyn ProofLog, clock: &dyn Clock, opts: &SweepOptions) -> Result<SweepReport, SweepError> {
    let store = reads.object_store().clone();
    let now = clock.now();
    let cutoff = opts.retention.cutoff(now);

    let skew = clockcheck::measure_skew(store.as_ref(), now, || clock.now()).await?;
    let too_far = skew.num_seconds().abs() > opts.max_clock_skew.num_seconds();
    if too_far && !opts.force {
        return Err(SweepError::ClockSkew {
            local: now,
            store: now + skew,
            skew_secs: skew.num_seconds(),
            max_secs: opts.max_clock_skew.num_seconds(),
        });
    }
    let forced = too_far;

    let lease = if opts.dry_run {
        None
    } else {
        // In the store's time, not the local clock's: a sweep forced past a skewed clock (say
        // `faketime +28d`) that dies must not leave a lease that holds off every later sweeper
        // for weeks.
        Some(Lease::take(store.clone(), &opts.writer, now + skew, opts.lease_ttl, opts.max_clock_skew).await?)
    };
    let mut sw = Sweeper {
        reads,
        log,
        clock,
        opts,
        lease,
        state: LedgerState::default(),
        holds: Vec::new(),
        cutoff,
        forced,
        skew,
    };
    let result = sw.run(now, skew).await;
    opts.progress.finish_and_clear();
    // Released on success and on error alike: a failed sweep should not make the next one wait.
    // (A sweeper that dies leaves its lease to expire.)
    if let Some(l) = sw.lease.take() {
        let released = l.release(clock.now() + skew).await;
        if result.is_ok() {
            released?;
        }
    }
    result
}

impl Sweeper<'_> {
    async fn run(&mut self, now: DateTime<Utc>, skew: Duration) -> Result<SweepReport, SweepError> {
        let (reads, log, opts, forced, cutoff) = (self.reads, self.log, self.opts, self.forced, self.cutoff);
        if forced && !opts.dry_run {
            let reason = format!(
                "clock check overridden with --force: store clock {} differs from local clock {} by {} s (allowed {} s)",
                now + skew,
                now,
                skew.num_seconds(),
                opts.max_clock_skew.num_seconds()
            );
            tracing::warn!("{reason}");
            log.append(now, SweepEvent::SweepForced { reason }).await?;
        }
        let mut state = LedgerState::default();
        log.for_each_event(&mut |e| state.apply(e)).await?;
        self.state = state;

        let all_holds = hold::list(reads).await?;
        for h in all_holds.iter().filter(|h| h.is_active(now)) {
            let loaded = hold::load_full(reads, h.clone()).await?;
            self.holds.push(loaded);
        }
        let sw = self;
        let mut report = SweepReport {
            now,
            cutoff,
            dry_run: opts.dry_run,
            clock_skew: skew,
            forced,
            days: Vec::new(),
            holds: Vec::new(),
        };

        for day in sw.candidate_days().await? {
            opts.progress.set_message(day.to_string());
            let r = sw.sweep_day(day).await?;
            if r != (DayReport { day, ..Default::default() }) {
                report.days.push(r);
            }
        }
        if !opts.dry_run {
            for h in all_holds.into_iter().filter(|h| !h.is_active(now)) {
                report.holds.push(sw.purge_hold(h).await?);
            }
        }
        Ok(report)
    }

    fn store(&self) -> &dyn ObjectStore {
        self.reads.object_store().as_ref()
    }

    async fn guard(&mut self) -> Result<(), SweepError> {
        let now = self.clock.now() + self.skew;
        match &mut self.lease {
            Some(l) => l.ensure(now).await,
            None => Ok(()),
        }
    }

    async fn append(&self, event: SweepEvent) -> Result<(), SweepError> {
        self.log.append(self.clock.now(), event).await?;
        Ok(())
    }

    /// Days that may have something to do: with reads, with batch intents, or with a key and no
    /// closing proof — and whose start is before the cutoff.
    async fn candidate_days(&self) -> Result<Vec<NaiveDate>, SweepError> {
        let mut days: BTreeSet<NaiveDate> = self.reads.days().await?.into_iter().collect();
        let parse = |p: &Path| p.filename().and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok());
        let ip = Path::from(INTENTS);
        let res = self
            .store()
            .list_with_delimiter(Some(&ip))
            .await
            .map_err(|e| backend("list", &ip, e))?;
        // A day with batch intents is visited whatever the cutoff: an intent is a deletion
        // begun, and a sweep forced past a skewed clock that died may have left one for a day
        // the current cutoff has not reached. It is finished (its proof marked forced, as the
        // intent is) rather than left half-done without a proof until the day expires.
        let with_intents: BTreeSet<NaiveDate> = res.common_prefixes.iter().filter_map(parse).collect();
        days.extend(with_intents.iter().copied());
        let kp = Path::from("keys/day");
        for m in list_checked(self.store(), &kp).await? {
            if let Some(d) = parse(&m.location) {
                if !self.state.closed.contains(&d) {
                    days.insert(d);
                }
            }
        }
        Ok(days
            .into_iter()
            .filter(|d| day_start(*d) < self.cutoff || with_intents.contains(d))
            .collect())
    }

    async fn sweep_day(&mut self, day: NaiveDate) -> Result<DayReport, SweepError> {
        let mut rep = DayReport { day, ..Default::default() };
        // A day closes (its key destroyed) only once it ended more than the allowed clock skew
        // before the cutoff: a server whose clock is that far behind ours still accepts reads
        // of the day's last minutes, and must find the key there for them. Its reads are deleted
        // on time regardless; only the key outlives them by the margin.
        let whole_day_past = day_start(day) + Duration::days(1) + self.opts.max_clock_skew <= self.cutoff;

        // 1. Finish batches a crashed sweep left without a proof.
        let intents = load_intents(self.store(), day).await?;
        if !self.opts.dry_run {
            let open: Vec<&Intent> = intents.iter().filter(|i| !self.state.batches.contains(&(day, i.batch))).collect();
            for intent in open {
                self.guard().await?;
                tracing::info!(%day, batch = intent.batch, "finishing a batch left by an interrupted sweep");
                self.execute(intent, &mut rep).await?;
            }
        }

        // 2. What is past the cutoff now.
        let listed = list_day(self.store(), day).await?;
        let (expired, kept): (Vec<&ReadKey>, Vec<&ReadKey>) = listed.values().partition(|k| k.captured_at < self.cutoff);
        rep.kept = kept.len() as u64;

        if self.opts.dry_run {
            let dk = self.day_key(day).await?;
            for k in &expired {
                // Dry: the names decide (window, plate bucket); nothing is decrypted or copied.
                if dk.as_ref().is_some_and(|dk| self.holds.iter().any(|h| h.may_cover(k, dk))) {
                    rep.held += 1;
                } else {
                    rep.deleted += 1;
                }
            }
            rep.would_shred = whole_day_past && kept.is_empty() && !self.state.closed.contains(&day);
            return Ok(rep);
        }

        // 3. Hold what active holds cover, then delete the rest under a new batch intent.
        let mut still_listed = listed.len();
        if !expired.is_empty() {
            let dk = self.day_key(day).await?;
            let mut planned = Vec::with_capacity(expired.len());
            for k in &expired {
                let mut held = false;
                if let Some(dk) = &dk {
                    for h in self.holds.iter_mut() {
                        held |= h.ensure_held(self.reads, k, dk).await?;
                    }
                }
                planned.push(IntentRead { key: k.to_string(), held });
            }
            let batch = intents.last().map_or(1, |i| i.batch + 1);
            let intent = Intent {
                v: 1,
                day,
                batch,
                cutoff: self.cutoff,
                forced: self.forced,
                created_at: self.clock.now(),
                reads: planned,
            };
            self.guard().await?;
            let path = intent_path(day, batch);
            if !put_create(self.store(), &path, serde_json::to_vec(&intent).expect("serializes")).await? {
                return Err(SweepError::Corrupt {
                    key: path.to_string(),
                    reason: "batch intent already exists: another sweeper is working on this day".into(),
                });
            }
            self.opts.progress.inc_length(intent.reads.len() as u64);
            still_listed = self.execute(&intent, &mut rep).await?;
        }

        // 4. Close the day once all of it is past the cutoff and its reads are gone (the latest
        // listing — the re-listing after the deletes, or the listing above — shows none).
        if whole_day_past && still_listed == 0 && !self.state.closed.contains(&day) && rep.failed.is_empty() {
            self.close_day(day, &mut rep).await?;
        }
        Ok(rep)
    }

    async fn day_key(&self, day: NaiveDate) -> Result<Option<std::sync::Arc<crate::crypto::DataKey>>, SweepError> {
        match self.reads.keys().get(&KeyName::Day(day)).await {
            Ok(k) => Ok(Some(k)),
            Err(KeyError::Missing { .. }) | Err(KeyError::Shredded { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an intent's objects, re-lists the day and appends the batch proof for what is gone.
    /// Returns how many reads of the day the re-listing still shows.
    async fn execute(&mut self, intent: &Intent, rep: &mut DayReport) -> Result<usize, SweepError> {
        // Reads first, then their markers, each in name order: a batch delete of neighbouring
        // names is what the store does fastest (one index range per call).
        let mut paths = Vec::with_capacity(intent.reads.len() * 2);
        let mut markers = Vec::with_capacity(intent.reads.len());
        for r in &intent.reads {
            let p = Path::from(r.key.as_str());
            let k = ReadKey::parse(&p).ok_or_else(|| SweepError::Corrupt {
                key: intent_path(intent.day, intent.batch).to_string(),
                reason: format!("names {} which is not a read", r.key),
            })?;
            paths.push(p);
            markers.push(k.marker_path());
        }
        paths.sort_unstable();
        markers.sort_unstable();
        paths.extend(markers);
        let failed = delete_all(self.reads, paths, self.opts.delete_batch, &self.opts.progress).await;
        let remaining = list_day(self.store(), intent.day).await?;
        let gone: Vec<&IntentRead> = intent.reads.iter().filter(|r| !remaining.contains_key(&r.key)).collect();
        let mut deleted: Vec<&str> = gone.iter().filter(|r| !r.held).map(|r| r.key.as_str()).collect();
        deleted.sort_unstable();
        let held = gone.iter().filter(|r| r.held).count() as u64;
        for (p, reason) in failed {
            // A read the re-listing still shows, or a marker that failed: reported, not claimed.
            if remaining.contains_key(&p) || !p.starts_with(layout::READS) {
                rep.failed.push((p, reason));
            }
        }
        for r in intent.reads.iter().filter(|r| remaining.contains_key(&r.key)) {
            if !rep.failed.iter().any(|(p, _)| p == &r.key) {
                rep.failed.push((r.key.clone(), "still listed after the delete".into()));
            }
        }
        let proof = DeletionProof {
            day: intent.day,
            cutoff: intent.cutoff,
            batch: Some(intent.batch),
            reads_deleted: deleted.len() as u64,
            deleted_keys_root: merkle_root(&deleted),
            reads_held: held,
            key_destroyed: false,
            ingested_total: 0,
            reconciled: false,
            forced: intent.forced,
        };
        self.append(SweepEvent::DeletionProof(proof)).await?;
        self.state.batches.insert((intent.day, intent.batch));
        rep.deleted += deleted.len() as u64;
        rep.held += held;
        rep.batch_proofs += 1;
        Ok(remaining.len())
    }

    /// Closes a day whose latest listing showed no reads: markers deleted, key destroyed, the
    /// closing proof appended.
    async fn close_day(&mut self, day: NaiveDate, rep: &mut DayReport) -> Result<(), SweepError> {
        let intents = load_intents(self.store(), day).await?;
        if intents.iter().any(|i| !self.state.batches.contains(&(day, i.batch))) {
            return Ok(());
        }
        // Idempotency markers of the day's reads go with them.
        let markers: Vec<Path> = list_checked(self.store(), &layout::marker_prefix(day))
            .await?
            .into_iter()
            .map(|m| m.location)
            .collect();
        self.guard().await?;
        let failed = delete_all(self.reads, markers, self.opts.delete_batch, &ProgressBar::hidden()).await;
        if !failed.is_empty() {
            rep.failed.extend(failed);
            return Ok(());
        }
        self.reads.shred_day(day, self.clock.now()).await?;

        // The day's totals: every read of every batch is gone now; the latest batch that named
        // a read says whether it was held.
        let mut fate: BTreeMap<&str, bool> = BTreeMap::new();
        for i in &intents {
            for r in &i.reads {
                fate.insert(&r.key, r.held);
            }
        }
        let deleted: Vec<&str> = fate.iter().filter(|(_, h)| !**h).map(|(k, _)| *k).collect();
        let held = fate.values().filter(|h| **h).count() as u64;
        let ingested = self.state.ingested.get(&day).copied().unwrap_or(0);
        let proof = DeletionProof {
            day,
            cutoff: self.cutoff,
            batch: None,
            reads_deleted: deleted.len() as u64,
            deleted_keys_root: merkle_root(&deleted),
            reads_held: held,
            key_destroyed: true,
            ingested_total: ingested,
            reconciled: deleted.len() as u64 + held == ingested,
            forced: self.forced || intents.iter().any(|i| i.forced),
        };
        if !proof.reconciled {
            tracing::warn!(%day, deleted = deleted.len(), held, ingested, "day does not reconcile with its ingest commits");
        }
        self.append(SweepEvent::DeletionProof(proof.clone())).await?;
        self.state.closed.insert(day);
        rep.closed = Some(proof);
        // The intents served their purpose; the ledger now holds the claims.
        for i in &intents {
            let _ = self.store().delete(&intent_path(day, i.batch)).await;
        }
        Ok(())
    }

    async fn purge_hold(&mut self, h: hold::Hold) -> Result<HoldPurgeReport, SweepError> {
        let id = h.record.hold_id.clone();
        let mut rep = HoldPurgeReport {
            hold_id: id.clone(),
            ..Default::default()
        };
        let store = self.reads.object_store().clone();
        let leftovers = [
            Path::from(format!("{}/{id}/record.json", layout::HOLDS)),
            Path::from(format!("{}/{id}/released.json", layout::HOLDS)),
            hold::purge_path(&id),
        ];
        if !self.state.purged.contains(&id) {
            self.guard().await?;
            if h.released.is_none() && !self.state.released.contains(&id) {
                self.append(SweepEvent::HoldReleased {
                    hold_id: id.clone(),
                    case_number: h.record.case_number.clone(),
                    released_by: "expiry".into(),
                    reason: format!("hold ended at {}", h.record.until),
                })
                .await?;
                self.state.released.insert(id.clone());
            }
            // The purge intent: which copies this purge deletes (written once, before deleting).
            let prefix = hold::reads_prefix(&id);
            let listed: Vec<String> = list_checked(store.as_ref(), &prefix)
                .await?
                .into_iter()
                .map(|m| m.location.to_string())
                .collect();
            let pp = hold::purge_path(&id);
            put_create(store.as_ref(), &pp, serde_json::to_vec(&listed).expect("serializes")).await?;
            let bytes = store
                .get(&pp)
                .await
                .map_err(|e| backend("get", &pp, e))?
                .bytes()
                .await
                .map_err(|e| backend("get", &pp, e))?;
            let mut planned: Vec<String> = serde_json::from_slice(&bytes).map_err(|e| SweepError::Corrupt {
                key: pp.to_string(),
                reason: e.to_string(),
            })?;
            planned.sort();
            let mut paths: Vec<Path> = planned.iter().map(|p| Path::from(p.as_str())).collect();
            paths.extend(listed.iter().filter(|p| !planned.contains(p)).map(|p| Path::from(p.as_str())));
            let failed = delete_all(self.reads, paths, self.opts.delete_batch, &self.opts.progress).await;
            let remaining: HashSet<String> = list_checked(store.as_ref(), &prefix)
                .await?
                .into_iter()
                .map(|m| m.location.to_string())
                .collect();
            if !remaining.is_empty() {
                rep.failed = failed.into_iter().filter(|(p, _)| remaining.contains(p)).collect();
                if rep.failed.is_empty() {
                    rep.failed = remaining.into_iter().map(|p| (p, "still listed after the delete".into())).collect();
                }
                return Ok(rep);
            }
            self.reads.keys().destroy(&KeyName::Hold(id.clone()), self.clock.now()).await?;
            rep.deleted = planned.len() as u64;
            rep.key_destroyed = true;
            self.append(SweepEvent::HoldPurged {
                hold_id: id.clone(),
                reads_deleted: planned.len() as u64,
                deleted_keys_root: merkle_root(&planned),
                key_destroyed: true,
            })
            .await?;
            self.state.purged.insert(id.clone());
        }
        let _ = delete_all(self.reads, leftovers.to_vec(), 10, &ProgressBar::hidden()).await;
        Ok(rep)
    }
}

fn day_start(day: NaiveDate) -> DateTime<Utc> {
    day.and_hms_opt(0, 0, 0).expect("midnight").and_utc()
}
