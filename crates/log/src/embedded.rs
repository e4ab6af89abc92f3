//! The embedded log: a redb file. Single process: the in-process watch channel wakes followers.

use std::{path::Path, sync::Arc, time::Duration};

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

use crate::{AppendRequest, Appended, EventLog, Follower, LogError, StoredEvent};

/// seq → (subject, append time in ns, payload)
const EVENTS: TableDefinition<u64, (&str, i128, &[u8])> = TableDefinition::new("events");
/// (subject, seq) → () : the events of one subject in order
const BY_SUBJECT: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_subject");
/// event id → seq : recognises re-sent events for as long as the log keeps them
const IDS: TableDefinition<&str, u64> = TableDefinition::new("ids");
/// "last_seq" → the highest sequence ever appended (purges do not lower it)
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

pub struct EmbeddedLog {
    db: Arc<Database>,
    last: watch::Sender<u64>,
}

fn storage<E: std::fmt::Display>(e: E) -> LogError {
    LogError::Storage(e.to_string())
}

impl EmbeddedLog {
    /// Opens (or creates) the log file at `path`.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let db = Database::create(path).map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        let last = {
            txn.open_table(EVENTS).map_err(storage)?;
            txn.open_table(BY_SUBJECT).map_err(storage)?;
            txn.open_table(IDS).map_err(storage)?;
            let meta = txn.open_table(META).map_err(storage)?;
            let last = meta.get("last_seq").map_err(storage)?.map(|v| v.value()).unwrap_or(0);
            last
        };
        txn.commit().map_err(storage)?;
        Ok(EmbeddedLog { db: Arc::new(db), last: watch::channel(last).0 })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(storage)?
    }
}

fn now_nanos() -> i128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as i128).unwrap_or(0)
}

/// The last sequence on `subject` in the subject index (0 when none).
fn last_on_subject(index: &impl ReadableTable<(&'static str, u64), ()>, subject: &str) -> Result<u64, LogError> {
    let last =
        index.range((subject, 0)..=(subject, u64::MAX)).map_err(storage)?.next_back().transpose().map_err(storage)?;
    Ok(last.map(|(k, _)| k.value().1).unwrap_or(0))
}

/// An `EVENTS` row as a [`StoredEvent`].
fn stored_event(seq: u64, (subject, at, payload): (&str, i128, &[u8])) -> StoredEvent {
    StoredEvent { seq, subject: subject.to_owned(), payload: Bytes::copy_from_slice(payload), appended_at_nanos: at }
}

fn read_range(db: &Database, from: u64, max: usize) -> Result<Vec<StoredEvent>, LogError> {
    let txn = db.begin_read().map_err(storage)?;
    let table = txn.open_table(EVENTS).map_err(storage)?;
    let mut out = Vec::new();
    for row in table.range(from..).map_err(storage)?.take(max) {
        let (k, v) = row.map_err(storage)?;
        out.push(stored_event(k.value(), v.value()));
    }
    Ok(out)
}

#[async_trait::async_trait]
impl EventLog for EmbeddedLog {
    async fn append(&self, request: AppendRequest) -> Result<Appended, LogError> {
        let appended = self
            .blocking(move |db| {
                let txn = db.begin_write().map_err(storage)?;
                let appended = {
                    let mut ids = txn.open_table(IDS).map_err(storage)?;
                    if let Some(seq) = ids.get(request.event_id.as_str()).map_err(storage)? {
                        return Ok(Appended::Duplicate(seq.value()));
                    }
                    let mut by_subject = txn.open_table(BY_SUBJECT).map_err(storage)?;
                    let subject = request.subject.as_str();
                    let current = last_on_subject(&by_subject, subject)?;
                    if current != request.expected_last_subject_seq {
                        return Err(LogError::Conflict {
                            subject: request.subject.clone(),
                            expected: request.expected_last_subject_seq,
                        });
                    }
                    let mut meta = txn.open_table(META).map_err(storage)?;
                    let seq = meta.get("last_seq").map_err(storage)?.map(|v| v.value()).unwrap_or(0) + 1;
                    meta.insert("last_seq", seq).map_err(storage)?;
                    let mut events = txn.open_table(EVENTS).map_err(storage)?;
                    events.insert(seq, (subject, now_nanos(), request.payload.as_ref())).map_err(storage)?;
                    by_subject.insert((subject, seq), ()).map_err(storage)?;
                    ids.insert(request.event_id.as_str(), seq).map_err(storage)?;
                    Appended::New(seq)
                };
                txn.commit().map_err(storage)?;
                Ok(appended)
            })
            .await?;
        if let Appended::New(seq) = appended {
            self.last.send_if_modified(|last| {
                let newer = seq > *last;
                if newer {
                    *last = seq;
                }
                newer
            });
        }
        Ok(appended)
    }

    async fn last_seq(&self) -> Result<u64, LogError> {
        Ok(*self.last.borrow())
    }

    async fn last_seq_of_subject(&self, subject: &str) -> Result<u64, LogError> {
        let subject = subject.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage)?;
            let table = txn.open_table(BY_SUBJECT).map_err(storage)?;
            last_on_subject(&table, &subject)
        })
        .await
    }

    async fn read_subject(&self, subject: &str) -> Result<Vec<StoredEvent>, LogError> {
        let subject = subject.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_read().map_err(storage)?;
            let index = txn.open_table(BY_SUBJECT).map_err(storage)?;
            let events = txn.open_table(EVENTS).map_err(storage)?;
            let mut out = Vec::new();
            for row in index.range((subject.as_str(), 0)..=(subject.as_str(), u64::MAX)).map_err(storage)? {
                let seq = row.map_err(storage)?.0.value().1;
                if let Some(v) = events.get(seq).map_err(storage)? {
                    out.push(stored_event(seq, v.value()));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn purge_subject(&self, subject: &str) -> Result<u64, LogError> {
        let subject = subject.to_owned();
        self.blocking(move |db| {
            let txn = db.begin_write().map_err(storage)?;
            let mut removed = 0;
            {
                let mut index = txn.open_table(BY_SUBJECT).map_err(storage)?;
                let mut events = txn.open_table(EVENTS).map_err(storage)?;
                // `a.b.>`: every subject that starts with `a.b.` (the NATS wildcard), else one subject
                let keys: Vec<(String, u64)> = match subject.strip_suffix('>').filter(|p| p.ends_with('.')) {
                    Some(prefix) => index
                        .range((prefix, 0)..)
                        .map_err(storage)?
                        .map(|r| r.map(|(k, _)| (k.value().0.to_owned(), k.value().1)))
                        .take_while(|r| r.as_ref().map_or(true, |(s, _)| s.starts_with(prefix)))
                        .collect::<Result<_, _>>()
                        .map_err(storage)?,
                    None => index
                        .range((subject.as_str(), 0)..=(subject.as_str(), u64::MAX))
                        .map_err(storage)?
                        .map(|r| r.map(|(k, _)| (subject.clone(), k.value().1)))
                        .collect::<Result<_, _>>()
                        .map_err(storage)?,
                };
                for (subject, seq) in keys {
                    index.remove((subject.as_str(), seq)).map_err(storage)?;
                    events.remove(seq).map_err(storage)?;
                    removed += 1;
                }
            }
            txn.commit().map_err(storage)?;
            Ok(removed)
        })
        .await
    }

    async fn read_range(&self, from_seq: u64, max: usize) -> Result<Vec<StoredEvent>, LogError> {
        self.blocking(move |db| read_range(db, from_seq.max(1), max)).await
    }

    async fn follow(&self, from_seq: u64, _reader: &str) -> Result<Box<dyn Follower>, LogError> {
        Ok(Box::new(EmbeddedFollower { db: self.db.clone(), next: from_seq.max(1), last: self.last.subscribe() }))
    }

    fn backend(&self) -> &'static str {
        "embedded"
    }
}

struct EmbeddedFollower {
    db: Arc<Database>,
    next: u64,
    last: watch::Receiver<u64>,
}

#[async_trait::async_trait]
impl Follower for EmbeddedFollower {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<StoredEvent>, LogError> {
        let next = self.next;
        // wait_for returns at once when the log is already past `next`
        let _ = tokio::time::timeout(wait, self.last.wait_for(|last| *last >= next)).await;
        if *self.last.borrow() < next {
            return Ok(Vec::new());
        }
        let db = self.db.clone();
        let batch = tokio::task::spawn_blocking(move || read_range(&db, next, max.max(1))).await.map_err(storage)??;
        if let Some(last) = batch.last() {
            self.next = last.seq + 1;
        } else {
            // everything up to the announced end was purged
            self.next = (*self.last.borrow()).max(next - 1) + 1;
        }
        Ok(batch)
    }

    async fn confirm(&mut self) -> Result<(), LogError> {
        Ok(())
    }
}
