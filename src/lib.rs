//! lethe — a retention-enforcing encrypted store for automated license plate reader (ALPR) reads.
//!
//! Each read is an AES-256-GCM object in an S3-compatible store (a local directory by default),
//! keyed by capture time; expired days are deleted and their keys destroyed by the sweeper, and
//! every search, deletion and policy change is a record in a Merkle-tree ledger that an outside
//! auditor can verify with a public key. See `DESIGN.md` for the architecture.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod hold;
pub mod ledger;
pub mod model;
pub mod policy;
pub mod secret_file;
pub mod store;
pub mod sweep;
