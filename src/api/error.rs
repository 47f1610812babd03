//! API errors and their one mapping to gRPC status codes.
//!
//! Every failure a handler can meet is an [`ApiError`]; [`ApiError::into_status`] is the only place
//! a `tonic::Status` is made from a crate error. The matches are exhaustive with no catch-all arm,
//! so a new failure kind does not compile until someone decides its status code. Messages never
//! contain a plate or a token.

use tonic::{Code, Status};

use crate::crypto::KeyError;
use crate::ledger::LedgerError;
use crate::store::StoreError;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// No bearer token, a malformed one, or an unknown one.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The access policy denied the call (searches: recorded in the ledger).
    #[error("denied by rule {rule}: {reason}")]
    Denied {
        /// The deciding rule.
        rule: String,
        /// Why.
        reason: String,
    },
    /// A request field is malformed or out of range.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A message exceeded the configured size limit.
    #[error("message too large: {0}")]
    MessageTooLarge(String),
    /// The transport reported an error while receiving a stream (client gone, bad frame).
    #[error("stream: {0}")]
    Stream(String),
    /// The read store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The ledger did not take a record.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// A search's access record was written, and then a read on its receipt could not be sent:
    /// the response ends with this error after the results before it.
    #[error("access record {access_entry}: result {index} of {count} could not be sent: {source}")]
    ResultNotSent {
        /// The access record whose receipt lists the read.
        access_entry: u64,
        /// The read's position in the results (0-based); the ones before it were sent.
        index: u64,
        /// How many results the header announced.
        count: u64,
        /// Why the read could not be fetched again (boxed: the variant would double the error's size).
        source: Box<StoreError>,
    },
}

impl ApiError {
    /// The single mapping from an error to the status a client sees.
    pub fn into_status(self) -> Status {
        let (code, msg) = match &self {
            ApiError::Unauthenticated(m) => (Code::Unauthenticated, (*m).to_string()),
            ApiError::Denied { .. } => (Code::PermissionDenied, self.to_string()),
            ApiError::InvalidArgument { .. } => (Code::InvalidArgument, self.to_string()),
            ApiError::MessageTooLarge(_) => (Code::ResourceExhausted, self.to_string()),
            ApiError::Stream(m) => (Code::Cancelled, m.clone()),
            ApiError::Ledger(e) => ledger_status(e),
            ApiError::Store(e) => store_status(e),
            ApiError::ResultNotSent {
                access_entry,
                index,
                count,
                source,
            } => result_not_sent_status(*access_entry, *index, *count, source),
        };
        // Details (object names, backend messages) go to the log, not to the client.
        match code {
            Code::Internal | Code::Unavailable | Code::DataLoss => tracing::warn!(error = %self, code = ?code, "call failed"),
            _ => tracing::debug!(error = %self, code = ?code, "call refused"),
        }
        Status::new(code, msg)
    }
}

/// No record, no data: whatever kept the record from the ledger, the call returns nothing and
/// the client may retry. A damaged log is INTERNAL (an operator must run `lethe ledger verify`).
fn ledger_status(e: &LedgerError) -> (Code, String) {
    let unavailable = || {
        (
            Code::Unavailable,
            "the ledger could not record this call; nothing was returned or acknowledged".to_string(),
        )
    };
    let internal = || (Code::Internal, "ledger error; nothing was returned or acknowledged".to_string());
    match e {
        LedgerError::Store { .. } | LedgerError::Closed | LedgerError::Output(_) => unavailable(),
        LedgerError::CommitFailed { source } => ledger_status(source),
        LedgerError::Corrupt { .. }
        | LedgerError::Checkpoint { .. }
        | LedgerError::NoCheckpoint
        | LedgerError::OutOfRange { .. }
        | LedgerError::Record { .. }
        | LedgerError::Key { .. }
        | LedgerError::SecretFile(_)
        | LedgerError::TrustedFile { .. } => internal(),
    }
}

fn store_status(e: &StoreError) -> (Code, String) {
    let unavailable = || (Code::Unavailable, "the store is unavailable; retry later".to_string());
    let damaged = || (Code::DataLoss, "a stored object failed its integrity check".to_string());
    match e {
        StoreError::Backend { .. } => unavailable(),
        StoreError::Key(k) => match k {
            KeyError::Store { .. } => unavailable(),
            KeyError::Shredded { .. } | KeyError::Missing { .. } => (Code::NotFound, "the day's key no longer exists".to_string()),
            KeyError::WrongKek { .. } => (Code::Internal, "server key misconfiguration".to_string()),
            KeyError::Corrupt { .. } => damaged(),
        },
        StoreError::Envelope { .. }
        | StoreError::WrongKeyId { .. }
        | StoreError::LabelMismatch { .. }
        | StoreError::Decode { .. }
        | StoreError::Misfiled { .. } => damaged(),
        StoreError::DayShredded { .. } => (Code::NotFound, "the read's day was shredded".to_string()),
        StoreError::ForeignObject { .. } => (Code::Internal, "an unexpected object is in the read store".to_string()),
        StoreError::IdConflict => (Code::AlreadyExists, "read_id: already stored with different content".to_string()),
    }
}

/// A result that could not be sent after its access record was written. A read that is gone
/// (deleted, or its day shredded, by a sweep since the record) is ABORTED: the receipt lists more
/// than was sent and a new search will not find it again. Anything else keeps the store's code
/// (UNAVAILABLE for an unreachable store: retry), saying how much was sent.
fn result_not_sent_status(access_entry: u64, index: u64, count: u64, source: &StoreError) -> (Code, String) {
    let gone = match source {
        StoreError::Backend {
            source: object_store::Error::NotFound { .. },
            ..
        }
        | StoreError::DayShredded { .. }
        | StoreError::Key(KeyError::Shredded { .. } | KeyError::Missing { .. }) => true,
        StoreError::Backend { .. }
        | StoreError::Key(KeyError::Store { .. } | KeyError::WrongKek { .. } | KeyError::Corrupt { .. })
        | StoreError::Envelope { .. }
        | StoreError::WrongKeyId { .. }
        | StoreError::LabelMismatch { .. }
        | StoreError::Decode { .. }
        | StoreError::Misfiled { .. }
        | StoreError::ForeignObject { .. }
        | StoreError::IdConflict => false,
    };
    if gone {
        return (
            Code::Aborted,
            format!(
                "a read on the receipt of access record #{access_entry} was removed (by a retention sweep) after the access record \
                 was written; {index} of {count} results were sent"
            ),
        );
    }
    let (code, msg) = store_status(source);
    (
        code,
        format!("{msg} (after access record #{access_entry} was written; {index} of {count} results were sent)"),
    )
}

/// Classifies a status tonic produced while decoding a request: tonic reports an oversize message
/// as OUT_OF_RANGE; the API's contract is RESOURCE_EXHAUSTED.
pub fn from_transport(status: &Status) -> ApiError {
    if is_too_large(status.code(), status.message()) {
        ApiError::MessageTooLarge(status.message().to_string())
    } else {
        ApiError::Stream(status.message().to_string())
    }
}

/// Is this tonic's "message length too large" decoding error?
pub fn is_too_large(code: Code, message: &str) -> bool {
    code == Code::OutOfRange && (message.contains("too large") || message.contains("too%20large"))
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Self {
        e.into_status()
    }
}
