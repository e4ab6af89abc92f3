//! The embedded log: a redb file. Single process: the in-process watch channel wakes followers.
//!
//! Appends are group-committed: one writer thread takes every append that is waiting, applies
//! them in order in one write transaction and commits once (one fsync for the lot), then answers
//! each. An append is acknowledged only after the commit that made it durable.

use std::{path::Path, sync::Arc, thread::JoinHandle, time::Duration};

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
    /// The writer's queue; `None` once the log is dropped (which ends the writer).
    appends: Option<std::sync::mpsc::Sender<PendingAppend>>,
    writer: Option<JoinHandle<()>>,
    /// Set when a write failed on I/O: redb then refuses every later operation until the file is
    /// opened again, which only a new process can do (followers hold the database too).
    failed: Arc<std::sync::Mutex<Option<String>>>,
}

/// An append waiting for the writer, and where its outcome goes.
type PendingAppend = (AppendRequest, tokio::sync::oneshot::Sender<Result<Appended, LogError>>);

/// redb's page cache for the log. redb's default (1 GiB) may keep that much of the pages writes
/// touch: a bound of its own in the node's memory budget, for a log of the Atlas's size (GBs).
/// The projector reads the log's tail, which is in this cache or the kernel's page cache anyway.
/// (Under `cireg load` the bound changed nothing measurable: the growth is elsewhere, README.)
pub const LOG_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Most appends one write transaction takes, and most payload bytes.
const GROUP_MAX_EVENTS: usize = 1024;
const GROUP_MAX_BYTES: usize = 64 * 1024 * 1024;

fn storage<E: std::fmt::Display>(e: E) -> LogError {
    LogError::Storage(e.to_string())
}

impl EmbeddedLog {
    /// Opens (or creates) the log file at `path`.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        let db = Database::builder().set_cache_size(LOG_CACHE_BYTES).create(path).map_err(storage)?;
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
        let db = Arc::new(db);
        let (appends, queue) = std::sync::mpsc::channel::<PendingAppend>();
        let writer_db = db.clone();
        let failed = Arc::new(std::sync::Mutex::new(None));
        let writer_failed = failed.clone();
        let writer = std::thread::Builder::new()
            .name("cireg-log-writer".into())
            .spawn(move || write_groups(&writer_db, &queue, &writer_failed))
            .map_err(storage)?;
        Ok(EmbeddedLog { db, last: watch::channel(last).0, appends: Some(appends), writer: Some(writer), failed })
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db)).await.map_err(storage)?
    }
}

impl Drop for EmbeddedLog {
    fn drop(&mut self) {
        // closing the queue ends the writer once it has answered what it holds; waiting for it
        // lets the file be opened again as soon as the log is gone
        self.appends.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// The writer: takes the appends waiting, writes them in one transaction, answers each.
fn write_groups(
    db: &Database,
    queue: &std::sync::mpsc::Receiver<PendingAppend>,
    failed: &std::sync::Mutex<Option<String>>,
) {
    while let Ok(first) = queue.recv() {
        let mut bytes = first.0.payload.len();
        let mut group = vec![first];
        while group.len() < GROUP_MAX_EVENTS && bytes < GROUP_MAX_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.0.payload.len();
                    group.push(next);
                }
                Err(_) => break,
            }
        }
        let (requests, replies): (Vec<_>, Vec<_>) = group.into_iter().unzip();
        match append_group(db, &requests) {
            Ok(outcomes) => {
                for (reply, outcome) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(outcome);
                }
            }
            // nothing of the group was written: each caller hears why
            Err(e) => {
                // an I/O failure (a full disk) latches redb: every later operation fails with
                // "Previous I/O error" until the database is opened again
                if e.to_string().contains("I/O error") {
                    if let Ok(mut failed) = failed.lock() {
                        failed.get_or_insert_with(|| e.to_string());
                    }
                }
                for reply in replies {
                    let _ = reply.send(Err(storage(&e)));
                }
            }
        }
    }
}

/// Appends `requests` in order in one write transaction: each is checked against the log as the
/// ones before it in the group left it (re-sends, expected subject sequences). `Err`: the
/// transaction failed and nothing was written.
fn append_group(db: &Database, requests: &[AppendRequest]) -> Result<Vec<Result<Appended, LogError>>, LogError> {
    let txn = db.begin_write().map_err(storage)?;
    let mut outcomes = Vec::with_capacity(requests.len());
    {
        let mut ids = txn.open_table(IDS).map_err(storage)?;
        let mut by_subject = txn.open_table(BY_SUBJECT).map_err(storage)?;
        let mut meta = txn.open_table(META).map_err(storage)?;
        let mut events = txn.open_table(EVENTS).map_err(storage)?;
        let mut seq = meta.get("last_seq").map_err(storage)?.map(|v| v.value()).unwrap_or(0);
        for request in requests {
            if let Some(existing) = ids.get(request.event_id.as_str()).map_err(storage)? {
                outcomes.push(Ok(Appended::Duplicate(existing.value())));
                continue;
            }
            let subject = request.subject.as_str();
            if last_on_subject(&by_subject, subject)? != request.expected_last_subject_seq {
                outcomes.push(Err(LogError::Conflict {
                    subject: request.subject.clone(),
                    expected: request.expected_last_subject_seq,
                }));
                continue;
            }
            seq += 1;
            events.insert(seq, (subject, now_nanos(), request.payload.as_ref())).map_err(storage)?;
            by_subject.insert((subject, seq), ()).map_err(storage)?;
            ids.insert(request.event_id.as_str(), seq).map_err(storage)?;
            outcomes.push(Ok(Appended::New(seq)));
        }
        meta.insert("last_seq", seq).map_err(storage)?;
    }
    txn.commit().map_err(storage)?;
    Ok(outcomes)
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
    StoredEvent {
        seq,
        subject: subject.to_owned(),
        payload: Bytes::copy_from_slice(payload),
        appended_at_nanos: at,
        node: None,
    }
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
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let queue = self.appends.as_ref().ok_or_else(|| LogError::Unavailable("the log is closing".into()))?;
        queue.send((request, reply)).map_err(|_| LogError::Unavailable("the log's writer stopped".into()))?;
        let appended = outcome.await.map_err(|_| LogError::Unavailable("the log's writer stopped".into()))??;
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

    fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    async fn backup(&self, to: &Path) -> Result<Option<u64>, LogError> {
        let to = to.to_owned();
        self.blocking(move |db| copy_log(db, &to).map(Some)).await
    }
}

/// Rows copied per write transaction of a backup (each commit but the last is not synced).
const BACKUP_CHUNK: usize = 50_000;

/// Copies every table of the log, as one read transaction sees it, into a new redb file at `to`;
/// its last sequence.
fn copy_log(db: &Database, to: &Path) -> Result<u64, LogError> {
    copy_database(db, to, |snapshot, copy| {
        copy_table(snapshot, copy, EVENTS)?;
        copy_table(snapshot, copy, BY_SUBJECT)?;
        copy_table(snapshot, copy, IDS)?;
        copy_table(snapshot, copy, META)?;
        let meta = snapshot.open_table(META).map_err(storage)?;
        Ok(meta.get("last_seq").map_err(storage)?.map(|v| v.value()).unwrap_or(0))
    })
}

/// A copy of `db` as one read transaction sees it, written by `copy` (with [`copy_table`]) into
/// a new redb file at `to`: as `<to>.partial`, renamed when complete, so a file at `to` is always
/// whole.
pub(crate) fn copy_database<T>(
    db: &Database,
    to: &Path,
    copy: impl FnOnce(&redb::ReadTransaction, &Database) -> Result<T, LogError>,
) -> Result<T, LogError> {
    if to.exists() {
        return Err(LogError::Storage(format!("{} exists already", to.display())));
    }
    let partial = to.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let snapshot = db.begin_read().map_err(storage)?;
    let target = Database::create(&partial).map_err(storage)?;
    let out = copy(&snapshot, &target)?;
    // the last commit, durable, makes the ones before it durable too
    target.begin_write().map_err(storage)?.commit().map_err(storage)?;
    drop(target);
    std::fs::rename(&partial, to).map_err(storage)?;
    Ok(out)
}

/// Copies one table of a snapshot into `copy`, in chunks of [`BACKUP_CHUNK`] rows.
pub(crate) fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    snapshot: &redb::ReadTransaction,
    copy: &Database,
    table: TableDefinition<K, V>,
) -> Result<(), LogError> {
    let source = snapshot.open_table(table).map_err(storage)?;
    let mut rows = source.iter().map_err(storage)?.peekable();
    while rows.peek().is_some() {
        let mut txn = copy.begin_write().map_err(storage)?;
        txn.set_durability(redb::Durability::None).map_err(storage)?;
        {
            let mut target = txn.open_table(table).map_err(storage)?;
            for row in rows.by_ref().take(BACKUP_CHUNK) {
                let (key, value) = row.map_err(storage)?;
                target.insert(key.value(), value.value()).map_err(storage)?;
            }
        }
        txn.commit().map_err(storage)?;
    }
    Ok(())
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
