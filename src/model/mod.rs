//! The data model: plate reads and plate normalization.

pub mod plate;
pub mod read;

pub use plate::{PlateError, PlateMatch};
pub use read::{PlateRead, Position, ReadError, ReadInput, ReadLimits, VehicleAttributes};
