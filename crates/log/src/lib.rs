#![doc = include_str!("../README.md")]

mod audit;
mod embedded;
mod jetstream;

use std::time::Duration;

use bytes::Bytes;

pub use audit::{AuditFilter, AuditRecord, AuditTrail, AUDIT_STREAM};
pub use embedded::EmbeddedLog;
pub use jetstream::{
    national_subject, FactsPublisher, JetStreamLog, JetStreamOptions, SourceActivity, CATALOGUE_SUBJECTS,
    CENTRAL_STREAM, CENTRAL_SUBJECT_PREFIX, EVENTS_STREAM,
};

/// One event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    /// Position in the log, from 1, without gaps except where events were purged.
    pub seq: u64,
    /// The aggregate's subject, e.g. `cireg.events.<provider>.dataset.<id>`.
    pub subject: String,
    /// The event as sent (CloudEvents JSON).
    pub payload: Bytes,
    /// When the log appended it (Unix time, nanoseconds).
    pub appended_at_nanos: i128,
    /// On the central node: the JetStream domain of the national node whose log the event came
    /// from (`subject` is then as that log has it). `None` on a national node.
    pub node: Option<String>,
}

/// An event to append.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub subject: String,
    /// The event id; an id the log has seen before is not appended again.
    pub event_id: String,
    pub payload: Bytes,
    /// The sequence of the last event on `subject` this append was decided against (0: none).
    /// If another event landed on the subject since, the append fails with [`LogError::Conflict`].
    pub expected_last_subject_seq: u64,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Appended at this sequence.
    New(u64),
    /// The event id was already in the log at this sequence; nothing was appended.
    Duplicate(u64),
}

impl Appended {
    pub fn seq(self) -> u64 {
        match self {
            Appended::New(s) | Appended::Duplicate(s) => s,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// Another event landed on the subject after the one the append was decided against.
    #[error("another event was appended to {subject} first (expected its last sequence to be {expected})")]
    Conflict { subject: String, expected: u64 },
    /// The log cannot be reached or refused the operation; retrying later may succeed.
    #[error("event log unavailable: {0}")]
    Unavailable(String),
    /// The log's own storage failed.
    #[error("event log storage error: {0}")]
    Storage(String),
}

/// Whether an error's text says the disk is full (ENOSPC, as redb and RocksDB report it; the
/// error kind's name, as `std::io` reports it).
pub fn is_disk_full(message: &str) -> bool {
    ["No space left on device", "os error 28", "StorageFull", "storage full"].iter().any(|m| message.contains(m))
}

/// The event log: append with deduplication and optimistic concurrency, read back by subject and
/// in order.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends one event (see [`AppendRequest`] for the rules).
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError>;

    /// The sequence of the last event in the log (0 when empty).
    async fn last_seq(&self) -> Result<u64, LogError>;

    /// The sequence of the last event on `subject` (0 when none).
    async fn last_seq_of_subject(&self, subject: &str) -> Result<u64, LogError>;

    /// Every event on `subject`, in order.
    async fn read_subject(&self, subject: &str) -> Result<Vec<StoredEvent>, LogError>;

    /// Up to `max` events from `from_seq` (inclusive) on, in log order: a page of the whole log,
    /// for the change feed and for replaying it up to a point in time.
    async fn read_range(&self, from_seq: u64, max: usize) -> Result<Vec<StoredEvent>, LogError>;

    /// Deletes every event on `subject` (erasure), or, for `a.b.>`, on every subject under
    /// `a.b.` (the NATS wildcard: a pseudonymous subject's studies at once). Returns how many were
    /// removed.
    async fn purge_subject(&self, subject: &str) -> Result<u64, LogError>;

    /// Follows the log from `from_seq` (inclusive) on, as the reader named `reader` (JetStream
    /// keeps a durable consumer of that name).
    async fn follow(&self, from_seq: u64, reader: &str) -> Result<Box<dyn Follower>, LogError>;

    /// A short name of the backend, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// A failure the log cannot recover from while this process runs, if one happened: the
    /// embedded log after a write failed on I/O (redb needs its file opened again). The node
    /// stops then, for its supervisor to start it again.
    fn failure(&self) -> Option<String> {
        None
    }

    /// Writes a consistent copy of the log as it is at the call to a new file at `to` (which must
    /// not exist), while appends go on, and returns the copy's last sequence. `None`: the log is
    /// kept by a server that backs it up itself (JetStream: `nats stream backup`).
    async fn backup(&self, to: &std::path::Path) -> Result<Option<u64>, LogError> {
        let _ = to;
        Ok(None)
    }
}

/// A reader moving forward through the log.
#[async_trait::async_trait]
pub trait Follower: Send {
    /// Waits up to `wait` for at least one event, then returns every event available at once, up
    /// to `max`: many when the reader is behind, one at a time when it is live. Empty on timeout.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<StoredEvent>, LogError>;

    /// Confirms that everything returned so far has been applied durably.
    async fn confirm(&mut self) -> Result<(), LogError>;
}
