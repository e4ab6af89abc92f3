#![doc = include_str!("../README.md")]

mod gate;
mod limit;
pub mod nats;
mod submit;

pub use gate::{GateError, ProfileGate};
pub use limit::RateLimit;
pub use submit::{Accepted, Ingest, IngestError, IngestStats, Sender, DEFAULT_AGGREGATE_CACHE};
