//! The ledger: an append-only, verifiable log of every search, deletion and policy change.
//!
//! Guarantees:
//! - **Tamper-evident.** Entries are leaves of an RFC 6962/9162 Merkle tree ([`merkle`]); after
//!   each group commit the writer signs a C2SP checkpoint (origin, size, root) with Ed25519
//!   ([`note`]). Anyone with the verifier (public) key and read access can recompute the tree
//!   and check every checkpoint ([`verify`]), and check a checkpoint saved earlier against the
//!   current log (truncation, deletion, reordering and rewritten history all show).
//! - **One linear log across processes.** Each batch object is written with a create-only
//!   conditional put at the key of its first entry index, so two writers can never both write
//!   entry N; the loser re-reads the tail and retries.
//! - **Durable on return.** [`Ledger::append`] returns `Ok` only after the batch holding the
//!   record and the checkpoint covering it are stored. On any write error every caller of that
//!   batch gets the error (an `Err` means "not known to be committed"; the record may still
//!   appear, and is then covered by the next checkpoint).
//! - **Crash-safe.** A batch written without its checkpoint is completed by the next writer
//!   (on open, and by every later commit, whose checkpoint covers the whole tail).
//!
//! Storage layout under the configured prefix (default `ledger/`) — changing it breaks stored logs:
//! - `batches/{first_index:020}` — immutable, create-only. Canonical JSON
//!   `{"v":1,"first_index":N,"frontier":[hex…],"records":[base64…]}`: `frontier` is the compact
//!   range (perfect-subtree roots) of the tree before this batch, so a writer can resume from
//!   the newest batch without reading the whole log; the verifier checks it against its own.
//! - `checkpoints/{tree_size:020}` — immutable, create-only signed checkpoint notes.
//! - `checkpoint` — the latest signed checkpoint, overwritten; a hint readers must not trust
//!   blindly (it is verified, and readers probe forward from it).
//! - `tail` — `"{first_index} {sha256 of that batch object}\n"`, overwritten: where a writer
//!   starts probing for the tail, so opening does not list or scan the log.

pub mod cli;
mod log;
pub mod merkle;
pub mod note;
mod prefetch;
pub mod record;
pub mod verify;

use std::sync::Arc;

pub use log::{AppendReceipt, ConsistencyProof, Entry, InclusionProof, Ledger, LedgerConfig, LogReader, SignedCheckpoint};
pub use merkle::Hash;
pub use note::{Checkpoint, NoteError, SigningKey, VerifierKey};
pub use record::{Record, RecordBody};
pub use verify::{verify_log, Failure, VerifyReport};

/// Errors from the ledger.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The object store failed.
    #[error("ledger store {op} of {key} failed: {source}")]
    Store {
        /// Operation (get, put, list).
        op: &'static str,
        /// Object key.
        key: String,
        /// The store's error.
        source: object_store::Error,
    },
    /// A stored ledger object is malformed or inconsistent; the log needs `ledger verify`.
    #[error("ledger object {key} is corrupt: {reason}")]
    Corrupt {
        /// Object key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A checkpoint did not parse or verify.
    #[error("checkpoint {key}: {source}")]
    Checkpoint {
        /// Object key or file name.
        key: String,
        /// Why.
        source: NoteError,
    },
    /// No signed checkpoint exists yet (empty log).
    #[error("the ledger has no checkpoint yet")]
    NoCheckpoint,
    /// An entry index beyond the log.
    #[error("entry {index} is beyond the log's {size} entries")]
    OutOfRange {
        /// Requested index or size.
        index: u64,
        /// Entries in the log (latest checkpoint).
        size: u64,
    },
    /// A record did not decode.
    #[error("entry {index}: {source}")]
    Record {
        /// Entry index.
        index: u64,
        /// Why.
        source: record::RecordDecodeError,
    },
    /// Signing key problems.
    #[error("ledger signing key: {reason}")]
    Key {
        /// What is wrong.
        reason: String,
    },
    /// The signing key file could not be read or created.
    #[error(transparent)]
    SecretFile(#[from] crate::secret_file::SecretFileError),
    /// The group commit that carried this record failed; shared by every caller of the batch.
    #[error("ledger commit failed: {source}")]
    CommitFailed {
        /// The failure, shared by every record of the batch.
        source: Arc<LedgerError>,
    },
    /// The ledger's committer has stopped (runtime shutting down).
    #[error("the ledger is closed")]
    Closed,
    /// Output could not be written (CLI functions).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// A trusted checkpoint file could not be read.
    #[error("cannot read trusted checkpoint {path}: {source}")]
    TrustedFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
}
