//! Store errors.

use chrono::NaiveDate;

use crate::crypto::{EnvelopeError, KeyError};
use crate::model::read::DecodeError;

/// Errors of the encrypted read store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The object store failed (network, permissions, disk).
    #[error("object store {op} {key}: {source}")]
    Backend {
        /// The operation.
        op: &'static str,
        /// The object or prefix.
        key: String,
        /// The underlying error.
        source: object_store::Error,
    },
    /// A key problem (missing, shredded, wrong KEK, corrupt).
    #[error(transparent)]
    Key(#[from] KeyError),
    /// A read's object does not authenticate.
    #[error("object {key}: {source}")]
    Envelope {
        /// The object.
        key: String,
        /// Why.
        source: EnvelopeError,
    },
    /// A read's day was shredded: its object can never be decrypted again.
    #[error("object {key}: day {day} was shredded; its reads can no longer be decrypted")]
    DayShredded {
        /// The object.
        key: String,
        /// The day.
        day: NaiveDate,
    },
    /// A read's object is sealed under another key than its name says.
    #[error("object {key}: sealed under {found}, but its name says {expected} (moved or relabelled)")]
    WrongKeyId {
        /// The object.
        key: String,
        /// The key named in the header.
        found: String,
        /// The key its location implies.
        expected: String,
    },
    /// A read's capture-time label (object metadata) disagrees with its authenticated time.
    #[error("object {key}: capture-time label {label} does not match the authenticated capture time {actual}")]
    LabelMismatch {
        /// The object.
        key: String,
        /// The label.
        label: String,
        /// The authenticated time.
        actual: String,
    },
    /// Decrypted, but the plaintext is malformed.
    #[error("object {key}: {source}")]
    Decode {
        /// The object.
        key: String,
        /// Why.
        source: DecodeError,
    },
    /// An object name under `reads/` that lethe did not write.
    #[error("object {key}: not a lethe read name")]
    ForeignObject {
        /// The object.
        key: String,
    },
    /// The same read id was sent before with different content.
    #[error("read_id: already stored with different content")]
    IdConflict,
    /// The decrypted read does not belong where it is stored.
    #[error("object {key}: decrypted content does not match its name")]
    Misfiled {
        /// The object.
        key: String,
    },
}

impl StoreError {
    pub(crate) fn backend(op: &'static str, key: impl std::fmt::Display, source: object_store::Error) -> Self {
        StoreError::Backend {
            op,
            key: key.to_string(),
            source,
        }
    }

    /// True when the object store itself failed (the caller may retry; the API answers UNAVAILABLE).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Backend { .. } | StoreError::Key(KeyError::Store { .. }))
    }
}
