//! Cryptography: the object envelope, the KEK, day and hold keys, the blind index.

pub mod audit;
pub mod blind;
pub mod envelope;
pub mod kek;
pub mod keys;

pub use audit::AuditKey;
pub use envelope::{EnvelopeError, SymmetricKey};
pub use kek::Kek;
pub use keys::{DataKey, KeyError, KeyName, KeyRing};
