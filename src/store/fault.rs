//! A fault-injecting object store, for crash and failure tests (after redb's `CrashBackend`).
//!
//! Wraps any store; rules make chosen operations on chosen objects fail, once, n times or until
//! cleared, or take the whole store down. Failed operations do nothing underneath: a failed put
//! writes nothing, a failed delete deletes nothing. A rule may wait for a trigger (the first
//! successful operation of a kind on a matching object, e.g. the ledger put of an access record)
//! so that a test can fail exactly what happens after a given step, with no timing involved.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload,
    PutResult, Result,
};

/// Which operations a rule applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// put_opts and multipart.
    Put,
    /// get_opts and ranges.
    Get,
    /// list and list_with_delimiter.
    List,
    /// delete_stream (per key).
    Delete,
    /// copy.
    Copy,
    /// Every operation.
    Any,
}

impl Op {
    /// Whether a rule on `self` applies to the operation `op`.
    fn covers(self, op: Op) -> bool {
        self == op || self == Op::Any
    }
}

/// How a matching operation fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// A backend error (unreachable, refused): the caller should report the store unavailable.
    Error,
    /// `NotFound`, as if the object had been deleted in the meantime.
    Gone,
}

#[derive(Debug, Clone)]
struct Rule {
    op: Op,
    contains: String,
    remaining: Option<usize>,
    fault: Fault,
    /// Not in force until an operation of this kind on a path containing this succeeds.
    after: Option<(Op, String)>,
}

impl Rule {
    fn applies(&self, op: Op, path: &str) -> bool {
        self.after.is_none() && self.op.covers(op) && path.contains(&self.contains)
    }

    fn error(&self, path: &str, op: Op) -> object_store::Error {
        match self.fault {
            Fault::Error => injected(path, op),
            Fault::Gone => object_store::Error::NotFound {
                path: path.to_string(),
                source: format!("injected fault: {op:?} {path}: gone").into(),
            },
        }
    }
}

/// The fault-injecting wrapper.
pub struct FaultStore {
    inner: Arc<dyn ObjectStore>,
    rules: Mutex<Vec<Rule>>,
    /// Added to every put, so that concurrent puts overlap (milliseconds).
    put_delay_ms: AtomicU64,
    /// Puts counted in flight: those whose path contains this.
    counted_puts: Mutex<String>,
    puts_in_flight: AtomicUsize,
    max_puts_in_flight: AtomicUsize,
    /// Gets that reached the store underneath.
    gets: AtomicUsize,
    /// Added to every get (milliseconds), and gets in progress at once.
    get_delay_ms: AtomicU64,
    gets_in_flight: AtomicUsize,
    max_gets_in_flight: AtomicUsize,
}

impl fmt::Debug for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

impl fmt::Display for FaultStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultStore({})", self.inner)
    }
}

fn injected(path: &str, op: Op) -> object_store::Error {
    object_store::Error::Generic {
        store: "FaultStore",
        source: format!("injected fault: {op:?} {path}").into(),
    }
}

impl FaultStore {
    /// Wraps `inner` with no faults.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            rules: Mutex::new(Vec::new()),
            put_delay_ms: AtomicU64::new(0),
            counted_puts: Mutex::new(String::new()),
            puts_in_flight: AtomicUsize::new(0),
            max_puts_in_flight: AtomicUsize::new(0),
            gets: AtomicUsize::new(0),
            get_delay_ms: AtomicU64::new(0),
            gets_in_flight: AtomicUsize::new(0),
            max_gets_in_flight: AtomicUsize::new(0),
        }
    }

    /// Every get from now on takes `delay` longer, so that concurrent gets overlap.
    pub fn slow_gets(&self, delay: std::time::Duration) {
        self.get_delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// The most gets that were in progress at once so far.
    pub fn max_gets_in_flight(&self) -> usize {
        self.max_gets_in_flight.load(Ordering::SeqCst)
    }

    /// Runs one get underneath: counted, delayed when asked, tracked in flight.
    async fn timed_get<T>(&self, get: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        let now = self.gets_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_gets_in_flight.fetch_max(now, Ordering::SeqCst);
        let delay = self.get_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let r = get.await;
        self.gets_in_flight.fetch_sub(1, Ordering::SeqCst);
        r
    }

    /// Every put from now on takes `delay` longer (the store is slow, not failing).
    pub fn slow_puts(&self, delay: std::time::Duration) {
        self.put_delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    /// Counts in [`FaultStore::max_puts_in_flight`] only the puts whose path contains `contains`
    /// (all of them by default).
    pub fn count_puts(&self, contains: &str) {
        *self.counted_puts.lock().expect("fault store") = contains.to_string();
    }

    /// The most (counted) puts that were in progress at once so far.
    pub fn max_puts_in_flight(&self) -> usize {
        self.max_puts_in_flight.load(Ordering::SeqCst)
    }

    /// How many gets (whole or ranged) have reached the store underneath so far.
    pub fn gets(&self) -> usize {
        self.gets.load(Ordering::SeqCst)
    }

    fn add_rule(&self, op: Op, contains: &str, remaining: Option<usize>, fault: Fault, after: Option<(Op, &str)>) {
        self.rules.lock().expect("rules").push(Rule {
            op,
            contains: contains.into(),
            remaining,
            fault,
            after: after.map(|(o, c)| (o, c.to_string())),
        });
    }

    /// `op` on any object whose path contains `contains` fails until [`FaultStore::clear`].
    pub fn fail(&self, op: Op, contains: &str) {
        self.add_rule(op, contains, None, Fault::Error, None);
    }

    /// Like [`FaultStore::fail`], for the next `n` matching operations only.
    pub fn fail_times(&self, op: Op, contains: &str, n: usize) {
        self.add_rule(op, contains, Some(n), Fault::Error, None);
    }

    /// Like [`FaultStore::fail`] with the given [`Fault`], but only from the moment an operation
    /// `trigger` on an object whose path contains `trigger_contains` has succeeded (put, get and
    /// copy trigger; lists and deletes do not).
    pub fn fail_after(&self, trigger: Op, trigger_contains: &str, op: Op, contains: &str, fault: Fault) {
        self.add_rule(op, contains, None, fault, Some((trigger, trigger_contains)));
    }

    /// Every operation fails (the store is down) until [`FaultStore::clear`].
    pub fn down(&self) {
        self.fail(Op::Any, "");
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().expect("rules").clear();
    }

    fn check(&self, op: Op, path: &str) -> Result<()> {
        let mut rules = self.rules.lock().expect("rules");
        for r in rules.iter_mut() {
            if r.applies(op, path) {
                match &mut r.remaining {
                    None => return Err(r.error(path, op)),
                    Some(0) => continue,
                    Some(n) => {
                        *n -= 1;
                        return Err(r.error(path, op));
                    }
                }
            }
        }
        Ok(())
    }

    /// `op` on `path` succeeded: rules waiting for it come into force.
    fn fired(&self, op: Op, path: &str) {
        for r in self.rules.lock().expect("rules").iter_mut() {
            if r.after.as_ref().is_some_and(|(o, c)| o.covers(op) && path.contains(c.as_str())) {
                r.after = None;
            }
        }
    }
}

#[async_trait]
impl ObjectStore for FaultStore {
    async fn put_opts(&self, location: &Path, payload: PutPayload, opts: PutOptions) -> Result<PutResult> {
        self.check(Op::Put, location.as_ref())?;
        let counted = location.as_ref().contains(self.counted_puts.lock().expect("fault store").as_str());
        if counted {
            let now = self.puts_in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.max_puts_in_flight.fetch_max(now, Ordering::SeqCst);
        }
        let delay = self.put_delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
        }
        let r = self.inner.put_opts(location, payload, opts).await;
        if counted {
            self.puts_in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        let r = r?;
        self.fired(Op::Put, location.as_ref());
        Ok(r)
    }

    async fn put_multipart_opts(&self, location: &Path, opts: PutMultipartOptions) -> Result<Box<dyn MultipartUpload>> {
        self.check(Op::Put, location.as_ref())?;
        let r = self.inner.put_multipart_opts(location, opts).await?;
        self.fired(Op::Put, location.as_ref());
        Ok(r)
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.check(Op::Get, location.as_ref())?;
        let r = self.timed_get(self.inner.get_opts(location, options)).await?;
        self.fired(Op::Get, location.as_ref());
        Ok(r)
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.check(Op::Get, location.as_ref())?;
        let r = self.timed_get(self.inner.get_ranges(location, ranges)).await?;
        self.fired(Op::Get, location.as_ref());
        Ok(r)
    }

    fn delete_stream(&self, locations: BoxStream<'static, Result<Path>>) -> BoxStream<'static, Result<Path>> {
        // Decide per key now, pass the survivors to the real store, report the rest as failed.
        let rules = self.rules.lock().expect("rules").clone();
        let check = move |p: &Path| -> Result<()> {
            for r in &rules {
                if r.applies(Op::Delete, p.as_ref()) && r.remaining != Some(0) {
                    return Err(r.error(p.as_ref(), Op::Delete));
                }
            }
            Ok(())
        };
        let inner = self.inner.clone();
        stream::once(async move {
            let all: Vec<Result<Path>> = locations.collect().await;
            let mut failed = Vec::new();
            let mut passed = Vec::new();
            for r in all {
                match r.and_then(|p| check(&p).map(|()| p)) {
                    Ok(p) => passed.push(Ok(p)),
                    Err(e) => failed.push(Err(e)),
                }
            }
            stream::iter(failed)
                .chain(inner.delete_stream(stream::iter(passed).boxed()))
                .boxed()
        })
        .flatten()
        .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let p = prefix.map(|p| p.to_string()).unwrap_or_default();
        match self.check(Op::List, &p) {
            Ok(()) => self.inner.list(prefix),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }

    fn list_with_offset(&self, prefix: Option<&Path>, offset: &Path) -> BoxStream<'static, Result<ObjectMeta>> {
        let p = prefix.map(|p| p.to_string()).unwrap_or_default();
        match self.check(Op::List, &p) {
            Ok(()) => self.inner.list_with_offset(prefix, offset),
            Err(e) => stream::once(async move { Err(e) }).boxed(),
        }
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.check(Op::List, &prefix.map(|p| p.to_string()).unwrap_or_default())?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.check(Op::Copy, to.as_ref())?;
        self.inner.copy_opts(from, to, options).await?;
        self.fired(Op::Copy, to.as_ref());
        Ok(())
    }
}
