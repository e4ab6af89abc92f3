//! The way in: every event is validated (JSON Schema, then the aggregate's lifecycle rules)
//! before it is appended to the log, and every sender gets a precise answer.
//!
//! [`Ingest::submit`] is the one path; HTTP (`cireg-server`) and NATS ([`nats`]) call it.

pub mod nats;
mod submit;

pub use submit::{Accepted, Ingest, IngestError, IngestStats, Sender};
