//! The way in: every event is validated (JSON Schema, then the aggregate's lifecycle rules, then
//! the application profile's SHACL shapes on the dataset it would leave) before it is appended to
//! the log, and every sender gets a precise answer.
//!
//! [`Ingest::submit`] is the one path; HTTP (`cireg-server`) and NATS ([`nats`]) call it.

mod gate;
mod limit;
pub mod nats;
mod submit;

pub use gate::{GateError, ProfileGate};
pub use limit::RateLimit;
pub use submit::{Accepted, Ingest, IngestError, IngestStats, Sender, DEFAULT_AGGREGATE_CACHE};
