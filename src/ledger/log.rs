//! The log in the object store: batch objects, checkpoints, group commit.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use bytes::Bytes;
use futures::stream::{self, Stream};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::merkle::{self, CompactTree, Hash};
use super::note::{Checkpoint, SigningKey, VerifierKey};
use super::prefetch::Prefetch;
use super::record::Record;
use super::LedgerError;

/// Batch object format version. Changing the batch encoding breaks stored logs.
pub(crate) const BATCH_VERSION: u32 = 1;

/// Where and how the log is kept.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Prefix of the log in the store (default `ledger`).
    pub prefix: Path,
    /// Most records in one batch object (group commit size cap).
    pub max_batch: usize,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            prefix: Path::from("ledger"),
            max_batch: 1024,
        }
    }
}

/// Where an appended record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendReceipt {
    /// The record's entry index.
    pub index: u64,
    /// Size of the signed checkpoint that covers it.
    pub tree_size: u64,
}

/// A checkpoint together with its signed note text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedCheckpoint {
    /// The parsed, verified checkpoint.
    pub checkpoint: Checkpoint,
    /// The signed note as stored (what an auditor keeps for `--trusted`).
    pub text: String,
}

/// An inclusion proof for one entry against a signed checkpoint.
#[derive(Debug, Clone)]
pub struct InclusionProof {
    /// Entry index.
    pub index: u64,
    /// The entry's leaf hash.
    pub leaf_hash: Hash,
    /// The audit path.
    pub hashes: Vec<Hash>,
    /// The checkpoint proven against.
    pub checkpoint: SignedCheckpoint,
}

/// A consistency proof from an older size to a signed checkpoint.
#[derive(Debug, Clone)]
pub struct ConsistencyProof {
    /// The older tree size.
    pub old_size: u64,
    /// Root of the older tree, as recomputed from the log.
    pub old_root: Hash,
    /// The proof hashes.
    pub hashes: Vec<Hash>,
    /// The newer checkpoint.
    pub checkpoint: SignedCheckpoint,
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Entry index.
    pub index: u64,
    /// The exact stored record bytes (the leaf is their hash).
    pub bytes: Bytes,
}

/// The stored form of a batch object.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BatchFile {
    pub v: u32,
    pub first_index: u64,
    pub frontier: Vec<String>,
    pub records: Vec<String>,
}

/// A parsed batch object.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub first_index: u64,
    pub frontier: Vec<Hash>,
    pub records: Vec<Bytes>,
}

impl Batch {
    pub fn end(&self) -> u64 {
        self.first_index + self.records.len() as u64
    }

    pub fn encode(first_index: u64, frontier: &[Hash], records: &[Bytes]) -> Vec<u8> {
        let f = BatchFile {
            v: BATCH_VERSION,
            first_index,
            frontier: frontier.iter().map(hex::encode).collect(),
            records: records.iter().map(|r| B64.encode(r)).collect(),
        };
        serde_json::to_vec(&f).expect("batch serializes")
    }

    /// Strict decode: the bytes must be exactly the canonical encoding of what they decode to.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let f: BatchFile = serde_json::from_slice(bytes).map_err(|e| format!("not a batch object: {e}"))?;
        if f.v != BATCH_VERSION {
            return Err(format!("unknown batch version {}", f.v));
        }
        if f.records.is_empty() {
            return Err("batch has no records".into());
        }
        let mut frontier = Vec::with_capacity(f.frontier.len());
        for h in &f.frontier {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h, &mut out).map_err(|e| format!("bad frontier hash: {e}"))?;
            frontier.push(out);
        }
        if frontier.len() != f.first_index.count_ones() as usize {
            return Err("frontier size does not match first_index".into());
        }
        let mut records = Vec::with_capacity(f.records.len());
        for r in &f.records {
            records.push(Bytes::from(B64.decode(r).map_err(|e| format!("bad record encoding: {e}"))?));
        }
        let b = Self {
            first_index: f.first_index,
            frontier,
            records,
        };
        if Self::encode(b.first_index, &b.frontier, &b.records) != bytes {
            return Err("batch object is not in canonical form".into());
        }
        Ok(b)
    }
}

fn store_err<'a>(op: &'static str, key: &'a Path) -> impl FnOnce(object_store::Error) -> LedgerError + 'a {
    move |source| LedgerError::Store {
        op,
        key: key.to_string(),
        source,
    }
}

/// Read access to a log: everything an auditor needs besides the verifier key.
#[derive(Debug, Clone)]
pub struct LogReader {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    key: VerifierKey,
}

impl LogReader {
    /// A reader for the log under `prefix`, checking checkpoints with `key`.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, key: VerifierKey) -> Self {
        Self { store, prefix, key }
    }

    /// The verifier key.
    pub fn verifier(&self) -> &VerifierKey {
        &self.key
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Key of the batch whose first entry is `first_index`.
    pub fn batch_key(&self, first_index: u64) -> Path {
        self.prefix.clone().join("batches").join(format!("{first_index:020}"))
    }

    /// Prefix of all batch objects.
    pub fn batches_prefix(&self) -> Path {
        self.prefix.clone().join("batches")
    }

    /// Prefix of all checkpoint objects.
    pub fn checkpoints_prefix(&self) -> Path {
        self.prefix.clone().join("checkpoints")
    }

    /// Key of the checkpoint for `size`.
    pub fn checkpoint_key(&self, size: u64) -> Path {
        self.prefix.clone().join("checkpoints").join(format!("{size:020}"))
    }

    /// Key of the latest-checkpoint hint.
    pub fn latest_hint_key(&self) -> Path {
        self.prefix.clone().join("checkpoint")
    }

    /// Key of the tail hint.
    pub fn tail_hint_key(&self) -> Path {
        self.prefix.clone().join("tail")
    }

    /// Gets an object, `None` when absent.
    pub(crate) async fn get_opt(&self, key: &Path) -> Result<Option<Bytes>, LedgerError> {
        match self.store.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(store_err("get", key))?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_err("get", key)(e)),
        }
    }

    /// Reads and parses the batch starting at `first_index`, with its raw bytes.
    pub(crate) async fn read_batch(&self, first_index: u64) -> Result<Option<(Batch, Bytes)>, LedgerError> {
        let raw = self.get_opt(&self.batch_key(first_index)).await?;
        self.parse_batch(first_index, raw)
    }

    /// Like [`Self::read_batch`], with the object read ahead by `prefetch`.
    pub(crate) async fn read_batch_ahead(&self, prefetch: &mut Prefetch, first_index: u64) -> Result<Option<(Batch, Bytes)>, LedgerError> {
        let raw = prefetch.get(&self.batch_key(first_index)).await?;
        self.parse_batch(first_index, raw)
    }

    fn parse_batch(&self, first_index: u64, raw: Option<Bytes>) -> Result<Option<(Batch, Bytes)>, LedgerError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let key = self.batch_key(first_index);
        let b = Batch::decode(&raw).map_err(|reason| LedgerError::Corrupt {
            key: key.to_string(),
            reason,
        })?;
        if b.first_index != first_index {
            return Err(LedgerError::Corrupt {
                key: key.to_string(),
                reason: format!("first_index {} does not match the key", b.first_index),
            });
        }
        Ok(Some((b, raw)))
    }

    /// Reads and verifies the checkpoint object for `size`, `None` when absent.
    pub(crate) async fn read_checkpoint(&self, size: u64) -> Result<Option<SignedCheckpoint>, LedgerError> {
        let key = self.checkpoint_key(size);
        let Some(raw) = self.get_opt(&key).await? else {
            return Ok(None);
        };
        self.parse_checkpoint(key.as_ref(), &raw).map(Some)
    }

    fn parse_checkpoint(&self, key: &str, raw: &[u8]) -> Result<SignedCheckpoint, LedgerError> {
        let checkpoint = self.key.verify_checkpoint(raw).map_err(|source| LedgerError::Checkpoint {
            key: key.to_owned(),
            source,
        })?;
        let text = String::from_utf8(raw.to_vec()).expect("verified notes are UTF-8");
        Ok(SignedCheckpoint { checkpoint, text })
    }

    /// Where to start probing for the tail: the tail hint if it names a batch, else 0.
    async fn tail_start(&self) -> u64 {
        match self.get_opt(&self.tail_hint_key()).await {
            Ok(Some(raw)) => parse_tail_hint(&raw).map(|(f, _)| f).unwrap_or(0),
            _ => 0,
        }
    }

    /// The first index after the last batch, found by probing forward from the tail hint.
    pub async fn tail(&self) -> Result<u64, LedgerError> {
        let mut pos = self.tail_start().await;
        if pos > 0 && self.read_batch(pos).await?.is_none() {
            pos = 0; // a stale or bogus hint: fall back to the beginning
        }
        // Usually one batch past the hint: no listing (a local directory lists by walking it all).
        while let Some((b, _)) = self.read_batch(pos).await? {
            pos = b.end();
        }
        Ok(pos)
    }

    /// The latest signed checkpoint: the one at the log's tail, else the verified hint.
    pub async fn latest_checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let tail = self.tail().await?;
        if tail > 0 {
            if let Some(cp) = self.read_checkpoint(tail).await? {
                return Ok(cp);
            }
        }
        let key = self.latest_hint_key();
        match self.get_opt(&key).await? {
            Some(raw) => self.parse_checkpoint(key.as_ref(), &raw),
            None => Err(LedgerError::NoCheckpoint),
        }
    }

    /// Streams entries `from..to` in order (reading batches from the start of the log, ahead of
    /// the stream by [`Prefetch`]; batch boundaries are only known by reading). Stops early at the
    /// end of the log.
    pub fn entries(&self, from: u64, to: u64) -> impl Stream<Item = Result<Entry, LedgerError>> + Send + 'static {
        let reader = self.clone();
        // State: (next batch position, buffered entries of the current batch, done)
        let ahead = Prefetch::new(self, 0, false);
        stream::try_unfold(
            (0u64, std::collections::VecDeque::<Entry>::new(), false, ahead),
            move |(mut pos, mut buf, mut done, mut ahead)| {
                let reader = reader.clone();
                async move {
                    loop {
                        if let Some(e) = buf.pop_front() {
                            return Ok(Some((e, (pos, buf, done, ahead))));
                        }
                        if done || pos >= to {
                            return Ok(None);
                        }
                        match reader.read_batch_ahead(&mut ahead, pos).await? {
                            None => done = true,
                            Some((b, _)) => {
                                let first = b.first_index;
                                pos = b.end();
                                for (i, r) in b.records.into_iter().enumerate() {
                                    let index = first + i as u64;
                                    if index >= from && index < to {
                                        buf.push_back(Entry { index, bytes: r });
                                    }
                                }
                            }
                        }
                    }
                }
            },
        )
    }

    /// Leaf hashes of entries `0..size`.
    async fn leaf_hashes(&self, size: u64) -> Result<Vec<Hash>, LedgerError> {
        use futures::TryStreamExt as _;
        let mut out = Vec::with_capacity(size as usize);
        let mut s = std::pin::pin!(self.entries(0, size));
        while let Some(e) = s.try_next().await? {
            out.push(merkle::leaf_hash(&e.bytes));
        }
        if (out.len() as u64) < size {
            return Err(LedgerError::OutOfRange {
                index: size,
                size: out.len() as u64,
            });
        }
        Ok(out)
    }

    /// An inclusion proof for entry `index` against the latest checkpoint. The proof is
    /// checked against the checkpoint's root before it is returned.
    pub async fn inclusion_proof(&self, index: u64) -> Result<InclusionProof, LedgerError> {
        let checkpoint = self.latest_checkpoint().await?;
        let size = checkpoint.checkpoint.size;
        if index >= size {
            return Err(LedgerError::OutOfRange { index, size });
        }
        let leaves = self.leaf_hashes(size).await?;
        let hashes = merkle::inclusion_proof(&leaves, index).expect("index < size");
        let leaf_hash = leaves[index as usize];
        if merkle::verify_inclusion(index, size, &leaf_hash, &hashes, &checkpoint.checkpoint.root).is_err() {
            return Err(LedgerError::Corrupt {
                key: self.checkpoint_key(size).to_string(),
                reason: "the log's entries do not hash to the checkpoint root; run `ledger verify`".into(),
            });
        }
        Ok(InclusionProof {
            index,
            leaf_hash,
            hashes,
            checkpoint,
        })
    }

    /// A consistency proof from `old_size` to the latest checkpoint.
    pub async fn consistency_proof(&self, old_size: u64) -> Result<ConsistencyProof, LedgerError> {
        let checkpoint = self.latest_checkpoint().await?;
        let size = checkpoint.checkpoint.size;
        if old_size > size {
            return Err(LedgerError::OutOfRange { index: old_size, size });
        }
        let leaves = self.leaf_hashes(size).await?;
        let hashes = merkle::consistency_proof(&leaves, old_size).expect("old_size <= size");
        let old_root = merkle::root_of(&leaves[..old_size as usize]);
        Ok(ConsistencyProof {
            old_size,
            old_root,
            hashes,
            checkpoint,
        })
    }
}

/// Parses the tail hint `"{first_index} {sha256 hex}\n"` strictly.
pub(crate) fn parse_tail_hint(raw: &[u8]) -> Option<(u64, Hash)> {
    let s = std::str::from_utf8(raw).ok()?.strip_suffix('\n')?;
    let (n, h) = s.split_once(' ')?;
    let first: u64 = n.parse().ok()?;
    if first.to_string() != n {
        return None;
    }
    let mut hash = [0u8; 32];
    hex::decode_to_slice(h, &mut hash).ok()?;
    (hex::encode(hash) == h).then_some((first, hash))
}

fn tail_hint(first_index: u64, batch_bytes: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, batch_bytes);
    format!("{first_index} {}\n", hex::encode(d.as_ref()))
}

struct Request {
    record: Bytes,
    reply: oneshot::Sender<Result<AppendReceipt, Arc<LedgerError>>>,
}

/// The writing end of the log. Cheap to clone; all clones share one committer task.
///
/// Several `Ledger`s (in one process or many) may append to the same log concurrently.
#[derive(Debug, Clone)]
pub struct Ledger {
    reader: LogReader,
    tx: mpsc::UnboundedSender<Request>,
}

struct Committer {
    reader: LogReader,
    signer: Arc<SigningKey>,
    /// The tree as far as this writer knows the log (size = next free index).
    tree: CompactTree,
    /// Most records per batch.
    max_batch: usize,
}

impl Ledger {
    /// Opens the log under `config.prefix`, finds its tail (from the tail hint, probing
    /// forward), completes a checkpoint missing after a crash, and starts the committer task.
    pub async fn open(store: Arc<dyn ObjectStore>, config: LedgerConfig, signer: SigningKey) -> Result<Self, LedgerError> {
        let reader = LogReader::new(store, config.prefix.clone(), signer.verifier());
        let mut c = Committer {
            reader: reader.clone(),
            signer: Arc::new(signer),
            tree: CompactTree::new(),
            max_batch: config.max_batch.max(1),
        };
        c.recover().await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(c.run(rx));
        Ok(Self { reader, tx })
    }

    /// Appends a record. Returns once the batch holding it and a signed checkpoint covering it
    /// are stored: the record is durable. Concurrent calls are group-committed together.
    pub async fn append(&self, record: &Record) -> Result<AppendReceipt, LedgerError> {
        self.append_bytes(Bytes::from(record.encode())).await
    }

    /// Appends already-encoded record bytes (stored and hashed exactly as given).
    pub async fn append_bytes(&self, record: Bytes) -> Result<AppendReceipt, LedgerError> {
        let (reply, rx) = oneshot::channel();
        self.tx.send(Request { record, reply }).map_err(|_| LedgerError::Closed)?;
        match rx.await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(source)) => Err(LedgerError::CommitFailed { source }),
            Err(_) => Err(LedgerError::Closed),
        }
    }

    /// Read access to the same log.
    pub fn reader(&self) -> &LogReader {
        &self.reader
    }
}

impl Committer {
    /// Brings `tree` to the store's tail and signs a checkpoint for it if none exists.
    async fn recover(&mut self) -> Result<(), LedgerError> {
        let start = self.reader.tail_start().await;
        self.tree = CompactTree::new();
        if start > 0 {
            if let Some((b, _)) = self.reader.read_batch(start).await? {
                let tree = CompactTree::from_parts(b.first_index, b.frontier.clone()).ok_or_else(|| LedgerError::Corrupt {
                    key: self.reader.batch_key(start).to_string(),
                    reason: "bad frontier".into(),
                })?;
                // Do not extend a tree whose resumed state disagrees with what was signed.
                if let Some(cp) = self.reader.read_checkpoint(start).await? {
                    if cp.checkpoint.root != tree.root() {
                        return Err(LedgerError::Corrupt {
                            key: self.reader.batch_key(start).to_string(),
                            reason: "frontier does not match the signed checkpoint at this size".into(),
                        });
                    }
                }
                self.tree = tree;
            }
        }
        self.catch_up().await?;
        let size = self.tree.size();
        if size > 0 && self.reader.read_checkpoint(size).await?.is_none() {
            tracing::warn!(size, "ledger tail has no checkpoint (interrupted commit); signing it now");
            self.write_checkpoint(None).await?;
        }
        Ok(())
    }

    /// Applies every batch written beyond `tree` by other writers.
    async fn catch_up(&mut self) -> Result<(), LedgerError> {
        while let Some((b, _)) = self.reader.read_batch(self.tree.size()).await? {
            self.apply(&b)?;
        }
        Ok(())
    }

    fn apply(&mut self, b: &Batch) -> Result<(), LedgerError> {
        if b.frontier != self.tree.nodes() {
            return Err(LedgerError::Corrupt {
                key: self.reader.batch_key(b.first_index).to_string(),
                reason: "frontier does not match the tree before it".into(),
            });
        }
        for r in &b.records {
            self.tree.push(merkle::leaf_hash(r));
        }
        Ok(())
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Request>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            while batch.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            let records: Vec<Bytes> = batch.iter().map(|r| r.record.clone()).collect();
            let result = self.commit(&records).await;
            if result.is_err() {
                // The store may hold more than we know (a put that failed late); re-read later.
                if let Err(e) = self.catch_up().await {
                    tracing::warn!(error = %e, "ledger catch-up after failed commit");
                }
            }
            match result {
                Ok(first_index) => {
                    let tree_size = first_index + batch.len() as u64;
                    for (i, r) in batch.into_iter().enumerate() {
                        let _ = r.reply.send(Ok(AppendReceipt {
                            index: first_index + i as u64,
                            tree_size,
                        }));
                    }
                }
                Err(e) => {
                    let e = Arc::new(e);
                    for r in batch {
                        let _ = r.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Writes `records` as one batch at the tail (retrying past other writers' batches) and
    /// signs a checkpoint covering it. Returns the first entry index.
    async fn commit(&mut self, records: &[Bytes]) -> Result<u64, LedgerError> {
        let (first, bytes) = loop {
            let first = self.tree.size();
            let bytes = Batch::encode(first, self.tree.nodes(), records);
            let key = self.reader.batch_key(first);
            let opts = PutOptions {
                mode: PutMode::Create,
                ..Default::default()
            };
            match self.reader.store.put_opts(&key, PutPayload::from(bytes.clone()), opts).await {
                Ok(_) => break (first, bytes),
                Err(object_store::Error::AlreadyExists { .. }) => {
                    // Another writer took this position: read its batch and move past it.
                    self.catch_up().await?;
                    if self.tree.size() == first {
                        return Err(LedgerError::Corrupt {
                            key: key.to_string(),
                            reason: "create-only put reported an existing object that cannot be read".into(),
                        });
                    }
                }
                Err(e) => return Err(store_err("put", &key)(e)),
            }
        };
        for r in records {
            self.tree.push(merkle::leaf_hash(r));
        }
        self.write_checkpoint(Some((first, &bytes))).await?;
        Ok(first)
    }

    /// Signs and stores the checkpoint for the current tree, then updates the hints.
    async fn write_checkpoint(&self, batch: Option<(u64, &[u8])>) -> Result<(), LedgerError> {
        let size = self.tree.size();
        let note = self.signer.sign_checkpoint(size, &self.tree.root());
        let key = self.reader.checkpoint_key(size);
        let opts = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let store = &self.reader.store;
        let put_checkpoint = store.put_opts(&key, PutPayload::from(note.clone().into_bytes()), opts);
        // Hints go out together with the checkpoint (one round trip, not three); their failures
        // only cost the next opener some probing, and readers verify them rather than trust them.
        let latest = self.reader.latest_hint_key();
        let put_latest = store.put(&latest, PutPayload::from(note.into_bytes()));
        let tail = batch.map(|(first, bytes)| (self.reader.tail_hint_key(), tail_hint(first, bytes)));
        let put_tail = async {
            match &tail {
                Some((k, v)) => store.put(k, PutPayload::from(v.clone().into_bytes())).await.map(|_| ()),
                None => Ok(()),
            }
        };
        let (c, a, b) = tokio::join!(put_checkpoint, put_latest, put_tail);
        if let Err(e) = a {
            tracing::warn!(error = %e, "ledger: cannot update latest-checkpoint hint");
        }
        if let Err(e) = b {
            tracing::warn!(error = %e, "ledger: cannot update tail hint");
        }
        match c {
            Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(store_err("put", &key)(e)),
        }
    }
}
