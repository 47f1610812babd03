//! Reading the log ahead of a walk over it.
//!
//! A walk over the log (verify, `entries`, the sweeper's reconciliation) can only learn where the
//! next batch object starts by reading the one before it, so done naively it is one round trip
//! per batch, and per checkpoint. On S3 that is what bounds it, not hashing.
//!
//! [`Prefetch`] lists `batches/` from the walk's start and GETs the listed batch objects (and,
//! when asked, the checkpoint at the start of each next listed batch, which is where the previous
//! batch ends) ahead of the walk, in background tasks. The walk still asks for every key itself:
//! a prefetched object is served only when its key is the key asked for, in order. A listing that
//! disagrees with the chain of batches (a gap, a batch whose end is not the next listed batch, a
//! store that does not list in key order, such as a local directory) stops prefetching at the
//! first disagreement, and the walk goes on with direct GETs. So what the walk sees is exactly
//! what direct GETs would have given it; prefetching changes only when it sees it.

use std::collections::VecDeque;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt as _;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore};
use tokio::task::JoinHandle;

use super::log::LogReader;
use super::LedgerError;

/// Most objects fetched ahead of the walk.
pub(crate) const PREFETCH_OBJECTS: usize = 32;
/// Most bytes of batch objects fetched ahead of the walk (by their listed sizes).
pub(crate) const PREFETCH_BYTES: u64 = 64 << 20;

type Fetch = JoinHandle<Result<Option<Bytes>, LedgerError>>;

/// GETs a walk's next objects ahead of it. See the module docs.
pub(crate) struct Prefetch {
    reader: LogReader,
    listing: Option<BoxStream<'static, object_store::Result<ObjectMeta>>>,
    /// Objects being fetched, in the order the walk will ask for them: key, listed size, task.
    queue: VecDeque<(Path, u64, Fetch)>,
    queued_bytes: u64,
    /// Where the walk starts, and the first index of the last batch taken from the listing.
    start: u64,
    last_listed: Option<u64>,
    checkpoints: bool,
}

impl Prefetch {
    /// Prefetching for a walk that starts at the batch at `start`, asking for each batch and,
    /// when `checkpoints`, then for the checkpoint at that batch's end.
    pub(crate) fn new(reader: &LogReader, start: u64, checkpoints: bool) -> Self {
        let prefix = reader.batches_prefix();
        let listing = match start.checked_sub(1) {
            None => reader.store().list(Some(&prefix)),
            Some(before) => reader.store().list_with_offset(Some(&prefix), &reader.batch_key(before)),
        };
        Self {
            reader: reader.clone(),
            listing: Some(listing),
            queue: VecDeque::new(),
            queued_bytes: 0,
            start,
            last_listed: None,
            checkpoints,
        }
    }

    /// The object at `key`, `None` when absent: prefetched when the walk is where the listing
    /// said it would be, else fetched now.
    pub(crate) async fn get(&mut self, key: &Path) -> Result<Option<Bytes>, LedgerError> {
        self.top_up().await;
        if self.queue.front().is_some_and(|(k, _, _)| k == key) {
            let (_, size, task) = self.queue.pop_front().expect("front exists");
            self.queued_bytes -= size;
            match task.await {
                Ok(r) => return r,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => {} // cancelled: fetch it directly below
            }
        } else if !self.queue.is_empty() {
            self.stop();
        }
        self.reader.get_opt(key).await
    }

    /// Takes batches from the listing until the queue is full or the listing ends.
    async fn top_up(&mut self) {
        while self.queue.len() + 2 <= PREFETCH_OBJECTS && self.queued_bytes < PREFETCH_BYTES {
            let Some(listing) = self.listing.as_mut() else {
                return;
            };
            let meta = match listing.next().await {
                Some(Ok(m)) => m,
                // The end, or a listing error: the walk's own GETs will meet any real problem.
                _ => {
                    self.listing = None;
                    return;
                }
            };
            let index = meta.location.filename().and_then(|f| f.parse::<u64>().ok());
            let in_order = |i: &u64| match self.last_listed {
                Some(l) => *i > l,
                None => *i == self.start,
            };
            let Some(index) = index.filter(in_order) else {
                // Not a batch name, out of key order, or not starting where the walk starts (a
                // local directory lists in no order): the listing cannot guide the walk.
                self.listing = None;
                return;
            };
            if self.checkpoints && self.last_listed.is_some() {
                self.spawn(self.reader.checkpoint_key(index), 0);
            }
            self.spawn(meta.location, meta.size);
            self.last_listed = Some(index);
        }
    }

    fn spawn(&mut self, key: Path, size: u64) {
        let reader = self.reader.clone();
        let k = key.clone();
        let task = tokio::spawn(async move { reader.get_opt(&k).await });
        self.queued_bytes += size;
        self.queue.push_back((key, size, task));
    }

    /// The walk left the listed chain: drop what was fetched ahead and stop listing.
    fn stop(&mut self) {
        self.listing = None;
        for (_, _, task) in self.queue.drain(..) {
            task.abort();
        }
        self.queued_bytes = 0;
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        for (_, _, task) in &self.queue {
            task.abort();
        }
    }
}
