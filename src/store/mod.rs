//! The encrypted read store and the object-store backends it runs on.
//!
//! Everything goes through one `Arc<dyn object_store::ObjectStore>`: the local directory (the
//! embedded default), any S3-compatible server, or memory (tests). [`fault::FaultStore`] wraps
//! any of them to inject failures in tests.

pub mod backend;
pub mod error;
pub mod fault;
pub mod layout;
pub mod reads;
pub mod s3admin;

pub use error::StoreError;
pub use layout::ReadKey;
pub use reads::{DeleteReport, FindQuery, Found, PutOutcome, ReadStore, ReadStoreOptions, StoredRead};
