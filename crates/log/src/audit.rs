//! The audit trail: who read which study-level data, when, by what request, and how many results.
//! Durable before the data is served (the caller waits for the write), append-only, and with no
//! more personal data than that: the reader's token subject, never its token or address.
//!
//! Two backends, like the event log: a JetStream stream [`AUDIT_STREAM`] (one message per record
//! on `cireg.audit.<provider>` for each provider whose data was read, so a provider's own systems
//! can subscribe to the reads of its datasets; `cireg.audit._node` for a read of every study),
//! and a redb file next to the embedded log.

use std::{path::Path, sync::Arc, time::Duration};

use async_nats::jetstream::{self, consumer, stream::StorageType};
use futures::StreamExt;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::LogError;

/// The JetStream stream of the audit trail.
pub const AUDIT_STREAM: &str = "CIREG_AUDIT";
const AUDIT_SUBJECTS: &str = "cireg.audit.>";

/// The subject of the reads of `provider`'s data.
fn provider_subject(provider: &str) -> String {
    format!("cireg.audit.{provider}")
}

/// seq → record (JSON)
const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("audit");

/// One read of study-level data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Unique per record (set by [`AuditTrail::append`] when empty).
    #[serde(default)]
    pub id: String,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The reader: its token's `sub`.
    pub reader: String,
    /// What was asked: `fhir-search`, `fhir-read`, `fhir-history`, `sparql`.
    pub kind: String,
    /// The request: a FHIR path and query, or a SPARQL query (cut at `REQUEST_MAX` bytes).
    pub request: String,
    /// The IRIs of the datasets whose studies were read (for SPARQL: those the reader may read,
    /// since a solution does not say which graph it came from).
    pub datasets: Vec<String>,
    /// The providers of those datasets.
    pub providers: Vec<String>,
    /// How many results were served (studies, versions or solutions; `None` when not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub results: Option<u64>,
}

/// The longest request text a record keeps.
pub const REQUEST_MAX: usize = 4096;

/// Which records a listing wants.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Records touching any of these providers' data (empty: any).
    pub providers: Vec<String>,
    /// Records of this reader only.
    pub reader: Option<String>,
    /// At or after (RFC 3339 compares as text in UTC with the same precision: records are
    /// written so).
    pub since: Option<String>,
    /// Before.
    pub until: Option<String>,
    /// Most records, the newest.
    pub limit: usize,
}

impl AuditFilter {
    fn keeps(&self, r: &AuditRecord) -> bool {
        (self.providers.is_empty() || r.providers.iter().any(|p| self.providers.contains(p)))
            && self.reader.as_ref().is_none_or(|reader| *reader == r.reader)
            && self.since.as_ref().is_none_or(|since| r.at >= *since)
            && self.until.as_ref().is_none_or(|until| r.at < *until)
    }
}

/// Where the audit trail is kept. Cheap to clone.
#[derive(Clone)]
pub enum AuditTrail {
    Embedded(Arc<EmbeddedTrail>),
    JetStream(Box<jetstream::Context>),
}

/// The redb file and its writer, which commits every record waiting in one transaction (one
/// fsync for the lot, as the embedded log does), so concurrent reads do not queue on the disk.
pub struct EmbeddedTrail {
    db: Arc<Database>,
    /// `None` once dropped, which ends the writer.
    queue: std::sync::Mutex<Option<std::sync::mpsc::Sender<PendingRecord>>>,
    writer: std::sync::Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Drop for EmbeddedTrail {
    /// Ends the writer and waits for it, so that the file is closed when the trail is gone.
    fn drop(&mut self) {
        if let Ok(mut queue) = self.queue.lock() {
            queue.take();
        }
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = writer.join();
        }
    }
}

type PendingRecord = (Vec<u8>, tokio::sync::oneshot::Sender<Result<(), LogError>>);

/// Most records one transaction takes.
const GROUP_MAX: usize = 1024;

fn write_groups(db: &Database, queue: &std::sync::mpsc::Receiver<PendingRecord>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < GROUP_MAX {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let written = (|| -> Result<(), LogError> {
            let txn = db.begin_write().map_err(storage)?;
            {
                let mut table = txn.open_table(RECORDS).map_err(storage)?;
                let first = table.last().map_err(storage)?.map(|(k, _)| k.value() + 1).unwrap_or(1);
                for (seq, (bytes, _)) in (first..).zip(&group) {
                    table.insert(seq, bytes.as_slice()).map_err(storage)?;
                }
            }
            txn.commit().map_err(storage)
        })();
        for (_, done) in group {
            let _ = done.send(written.as_ref().map(|_| ()).map_err(|e| LogError::Storage(e.to_string())));
        }
    }
}

fn storage<E: std::fmt::Display>(e: E) -> LogError {
    LogError::Storage(e.to_string())
}

fn unavailable<E: std::fmt::Display>(e: E) -> LogError {
    LogError::Unavailable(e.to_string())
}

impl AuditTrail {
    /// The redb file at `path` (created when missing).
    pub fn open_embedded(path: &Path) -> Result<Self, LogError> {
        // appended to, and listed now and then: a small page cache (see embedded::LOG_CACHE_BYTES)
        let db = Database::builder().set_cache_size(8 * 1024 * 1024).create(path).map_err(storage)?;
        let txn = db.begin_write().map_err(storage)?;
        txn.open_table(RECORDS).map_err(storage)?;
        txn.commit().map_err(storage)?;
        let db = Arc::new(db);
        let (queue, pending) = std::sync::mpsc::channel::<PendingRecord>();
        let writer_db = db.clone();
        // ends when the last clone of the trail is dropped (its queue closes)
        let writer = std::thread::Builder::new()
            .name("cireg-audit-writer".into())
            .spawn(move || write_groups(&writer_db, &pending))
            .map_err(storage)?;
        Ok(AuditTrail::Embedded(Arc::new(EmbeddedTrail {
            db,
            queue: std::sync::Mutex::new(Some(queue)),
            writer: std::sync::Mutex::new(Some(writer)),
        })))
    }

    /// The stream [`AUDIT_STREAM`] of `client`'s JetStream (created when missing), with
    /// `replicas` replicas.
    pub async fn open_jetstream(client: async_nats::Client, replicas: usize) -> Result<Self, LogError> {
        let context = jetstream::new(client);
        context
            .get_or_create_stream(jetstream::stream::Config {
                name: AUDIT_STREAM.to_owned(),
                description: Some("cireg audit trail: reads of study-level data".to_owned()),
                subjects: vec![AUDIT_SUBJECTS.to_owned()],
                storage: StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            })
            .await
            .map_err(unavailable)?;
        Ok(AuditTrail::JetStream(Box::new(context)))
    }

    /// Writes `record` and returns once it is durable.
    pub async fn append(&self, mut record: AuditRecord) -> Result<(), LogError> {
        if record.id.is_empty() {
            record.id = unique_id();
        }
        if record.request.len() > REQUEST_MAX {
            let mut end = REQUEST_MAX;
            while !record.request.is_char_boundary(end) {
                end -= 1;
            }
            record.request.truncate(end);
        }
        let bytes = serde_json::to_vec(&record).map_err(storage)?;
        match self {
            AuditTrail::Embedded(trail) => {
                let (done, written) = tokio::sync::oneshot::channel();
                let stopped = || LogError::Storage("the audit writer has stopped".to_owned());
                trail
                    .queue
                    .lock()
                    .map_err(storage)?
                    .as_ref()
                    .ok_or_else(stopped)?
                    .send((bytes, done))
                    .map_err(|_| stopped())?;
                written.await.map_err(|_| stopped())?
            }
            AuditTrail::JetStream(context) => {
                // one message per provider read, so that each provider's subject holds all the
                // reads of its data; a read naming no provider (the all-studies role's) goes to
                // `cireg.audit._node` (`_` is in no provider id)
                let mut subjects: Vec<String> = record.providers.iter().map(|p| provider_subject(p)).collect();
                if subjects.is_empty() {
                    subjects.push("cireg.audit._node".to_owned());
                }
                let mut acks = Vec::new();
                for subject in subjects {
                    let ack = context.publish(subject, bytes.clone().into()).await.map_err(unavailable)?;
                    acks.push(ack);
                }
                for ack in acks {
                    ack.await.map_err(unavailable)?;
                }
                Ok(())
            }
        }
    }

    /// Copies the embedded trail to a new redb file at `path` (a backup), returning how many
    /// records it holds; `None` for JetStream, whose stream NATS backs up.
    pub async fn backup(&self, path: &Path) -> Result<Option<u64>, LogError> {
        let AuditTrail::Embedded(trail) = self else { return Ok(None) };
        let (db, path) = (trail.db.clone(), path.to_owned());
        tokio::task::spawn_blocking(move || {
            crate::embedded::copy_database(&db, &path, |snapshot, copy| {
                crate::embedded::copy_table(snapshot, copy, RECORDS)?;
                snapshot.open_table(RECORDS).map_err(storage)?.len().map_err(storage).map(Some)
            })
        })
        .await
        .map_err(storage)?
    }

    /// The newest records `filter` keeps, newest first.
    pub async fn list(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, LogError> {
        let limit = filter.limit.max(1);
        match self {
            AuditTrail::Embedded(trail) => {
                let (db, filter) = (trail.db.clone(), filter.clone());
                tokio::task::spawn_blocking(move || -> Result<Vec<AuditRecord>, LogError> {
                    let txn = db.begin_read().map_err(storage)?;
                    let table = txn.open_table(RECORDS).map_err(storage)?;
                    let mut out = Vec::new();
                    for entry in table.iter().map_err(storage)?.rev() {
                        let (_, bytes) = entry.map_err(storage)?;
                        let record: AuditRecord = serde_json::from_slice(bytes.value()).map_err(storage)?;
                        if filter.keeps(&record) {
                            out.push(record);
                            if out.len() >= limit {
                                break;
                            }
                        }
                    }
                    Ok(out)
                })
                .await
                .map_err(storage)?
            }
            AuditTrail::JetStream(context) => list_jetstream(context, filter, limit).await,
        }
    }
}

/// A record id no other record of any process has: the time in nanoseconds, the process, and a
/// counter.
fn unique_id() -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{nanos:x}-{:x}-{n:x}", std::process::id())
}

/// Reads the audit stream (the providers' subjects only, when the filter names providers) from
/// the start and keeps the newest `limit` records the filter keeps.
async fn list_jetstream(
    context: &jetstream::Context,
    filter: &AuditFilter,
    limit: usize,
) -> Result<Vec<AuditRecord>, LogError> {
    let mut stream = context.get_stream(AUDIT_STREAM).await.map_err(unavailable)?;
    let last = stream.info().await.map_err(unavailable)?.state.last_sequence;
    if last == 0 {
        return Ok(Vec::new());
    }
    let filter_subjects = if filter.providers.is_empty() {
        vec![AUDIT_SUBJECTS.to_owned()]
    } else {
        filter.providers.iter().map(|p| provider_subject(p)).collect()
    };
    let consumer = stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subjects,
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    let mut messages = consumer.messages().await.map_err(unavailable)?;
    let mut kept: std::collections::VecDeque<AuditRecord> = std::collections::VecDeque::new();
    let mut seen = std::collections::HashSet::new();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(2), messages.next()).await;
        let Ok(Some(message)) = next else { break };
        let message = message.map_err(unavailable)?;
        let seq = message.info().map(|i| i.stream_sequence).unwrap_or(last);
        if let Ok(record) = serde_json::from_slice::<AuditRecord>(&message.payload) {
            // a read of two providers' data is one message on each provider's subject: once
            if filter.keeps(&record) && seen.insert(record.id.clone()) {
                kept.push_back(record);
                if kept.len() > limit {
                    kept.pop_front();
                }
            }
        }
        if seq >= last {
            break;
        }
    }
    Ok(kept.into_iter().rev().collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn record(at: &str, reader: &str, providers: &[&str]) -> AuditRecord {
        AuditRecord {
            id: String::new(),
            at: at.into(),
            reader: reader.into(),
            kind: "fhir-search".into(),
            request: "/fhir/ImagingStudy?modality=MR".into(),
            datasets: providers.iter().map(|p| format!("https://r.example/datasets/{p}/d")).collect(),
            providers: providers.iter().map(|p| p.to_string()).collect(),
            results: Some(3),
        }
    }

    #[tokio::test]
    async fn the_embedded_trail_keeps_records_and_lists_them_newest_first_by_filter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.redb");
        let trail = AuditTrail::open_embedded(&path).unwrap();
        trail.append(record("2026-12-01T10:00:00Z", "alice", &["p1"])).await.unwrap();
        trail.append(record("2026-12-01T11:00:00Z", "bob", &["p1", "p2"])).await.unwrap();
        let mut long = record("2026-12-01T12:00:00Z", "alice", &["p2"]);
        long.request = "é".repeat(REQUEST_MAX);
        trail.append(long).await.unwrap();
        drop(trail);
        // durable: a new process reads them back
        let trail = AuditTrail::open_embedded(&path).unwrap();
        let all = trail.list(&AuditFilter { limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(
            all.iter().map(|r| r.at.as_str()).collect::<Vec<_>>(),
            ["2026-12-01T12:00:00Z", "2026-12-01T11:00:00Z", "2026-12-01T10:00:00Z"]
        );
        assert!(all[0].request.len() <= REQUEST_MAX, "cut at a character boundary");
        let p1 =
            trail.list(&AuditFilter { providers: vec!["p1".into()], limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(p1.len(), 2);
        let alice =
            trail.list(&AuditFilter { reader: Some("alice".into()), limit: 10, ..Default::default() }).await.unwrap();
        assert_eq!(alice.len(), 2);
        let window = AuditFilter {
            since: Some("2026-12-01T10:30:00Z".into()),
            until: Some("2026-12-01T12:00:00Z".into()),
            limit: 10,
            ..Default::default()
        };
        assert_eq!(trail.list(&window).await.unwrap().iter().map(|r| r.reader.as_str()).collect::<Vec<_>>(), ["bob"]);
        let newest = trail.list(&AuditFilter { limit: 1, ..Default::default() }).await.unwrap();
        assert_eq!(newest.len(), 1);
    }
}
