//! Policy: the files in `policies/` — retention, principals, access rules.

pub mod retention;

pub use retention::Retention;
