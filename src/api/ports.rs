//! What the API needs from authentication, the access policy and the ledger, as small traits.
//!
//! The handlers depend on these ports, implemented here by the real registry authenticator
//! ([`crate::policy::Authenticator`]), Cedar policy ([`crate::policy::AccessPolicy`]) and ledger
//! ([`crate::ledger::Ledger`], through [`LedgerWriter`]), so a test can substitute any of them.

use async_trait::async_trait;

pub use crate::ledger::record::{Access, Decision as LedgerDecision, IngestCommit, Receipt, RecordBody, Refused};
pub use crate::policy::{Action, Decision, Principal, RequestContext, Role};

use crate::clock::SharedClock;
use crate::ledger::{Ledger, LedgerError, Record};

/// Maps a bearer token to a principal.
pub trait Authenticator: Send + Sync + std::fmt::Debug {
    /// The principal whose token this is, or `None` for an unknown token.
    fn authenticate(&self, token: &str) -> Option<Principal>;
}

impl Authenticator for crate::policy::Authenticator {
    fn authenticate(&self, token: &str) -> Option<Principal> {
        crate::policy::Authenticator::authenticate(self, token).cloned()
    }
}

/// Decides whether a principal may do an action. Default-deny.
pub trait AccessControl: Send + Sync + std::fmt::Debug {
    /// The decision and the rule behind it.
    fn authorize(&self, principal: &Principal, action: Action, ctx: &RequestContext) -> Decision;
}

impl AccessControl for crate::policy::AccessPolicy {
    fn authorize(&self, principal: &Principal, action: Action, ctx: &RequestContext) -> Decision {
        crate::policy::AccessPolicy::authorize(self, principal, action, ctx)
    }
}

/// The append-only ledger, as the API uses it.
#[async_trait]
pub trait AuditLedger: Send + Sync + std::fmt::Debug {
    /// Appends a record; returns its entry index once it is durable.
    async fn append(&self, body: RecordBody) -> Result<u64, LedgerError>;
}

/// Writes records to the [`Ledger`], stamped with the injected clock and this server's name.
#[derive(Debug, Clone)]
pub struct LedgerWriter {
    ledger: Ledger,
    clock: SharedClock,
    writer: String,
}

impl LedgerWriter {
    /// A writer named `writer` (e.g. `serve@host`).
    pub fn new(ledger: Ledger, clock: SharedClock, writer: impl Into<String>) -> Self {
        Self {
            ledger,
            clock,
            writer: writer.into(),
        }
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }
}

#[async_trait]
impl AuditLedger for LedgerWriter {
    async fn append(&self, body: RecordBody) -> Result<u64, LedgerError> {
        let record = Record::new(self.clock.now(), self.writer.clone(), body);
        Ok(self.ledger.append(&record).await?.index)
    }
}
