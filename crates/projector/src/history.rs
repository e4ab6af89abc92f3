//! The catalogue's kept history: what each projected batch changed in the public graphs (the
//! datasets' and providers'), with periodic snapshots, in a redb file beside the store. It answers
//! "the catalogue as it stood at instant T" from the nearest snapshot plus the changes after it,
//! at a cost bounded by about twice the catalogue's size, however long the log.
//!
//! - A change is keyed by the last log sequence of its batch and stamped with the second its
//!   events were appended in: the projector cuts its batches at whole seconds of append time when
//!   it keeps a history, so the catalogue "as at T" is exact to the second (every event appended
//!   up to the end of T's second).
//! - A snapshot (the whole public catalogue as N-Quads) is taken once the changes since the last
//!   one outweigh it: replaying to any instant reads at most one snapshot and changes about as
//!   big as one.
//! - A stretch the history did not see (it was started on a store that already held events, or a
//!   crash fell between a batch's commit and its record) is kept as a gap: instants inside it are
//!   not answered from the history.
//!
//! Only catalogue-level data is kept here (the public graphs), never study-level data.

use std::path::Path;

use oxigraph::{
    io::{RdfFormat, RdfParser, RdfSerializer},
    model::Quad,
};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

/// Last sequence of a batch → (its second as ns since the epoch, removed quads, added quads), N-Quads.
const CHANGES: TableDefinition<u64, (i128, &[u8], &[u8])> = TableDefinition::new("changes");
/// Sequence → the whole public catalogue after it, N-Quads.
const SNAPSHOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("snapshots");
/// (second, sequence) of each recorded batch and of each snapshot that ends a gap: the instants index.
const BY_TIME: TableDefinition<(i128, u64), ()> = TableDefinition::new("by_time");
/// Sequence at which a kept history resumes → the instants [from, to) it did not see.
const GAPS: TableDefinition<u64, (i128, i128)> = TableDefinition::new("gaps");
/// "last_seq": the last sequence recorded; "since_snapshot": bytes of changes since the last
/// snapshot, "changes_since": their number; "snapshot_bytes": the size of that snapshot.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Changes since the last snapshot that force a new one however small they are (bounds the
/// number of records a replay reads).
const MAX_CHANGES_PER_SNAPSHOT: u64 = 4096;
/// A snapshot is taken once the changes since the last one outweigh it, but not below this.
const MIN_SNAPSHOT_DISTANCE: u64 = 64 * 1024;

#[derive(Debug, thiserror::Error)]
#[error("catalogue history: {0}")]
pub struct HistoryError(String);

fn err<E: std::fmt::Display>(e: E) -> HistoryError {
    HistoryError(e.to_string())
}

impl HistoryError {
    /// The public mirror could not be read.
    pub(crate) fn from_store(e: &oxigraph::store::StorageError) -> Self {
        HistoryError(format!("reading the public mirror: {e}"))
    }
}

/// One second of append time, as ns since the epoch: the instants the history tells apart.
pub fn second_of(nanos: i128) -> i128 {
    nanos.div_euclid(1_000_000_000) * 1_000_000_000
}

/// The catalogue at an instant, as the history knows it.
#[derive(Debug)]
pub enum Past {
    /// The public graphs' quads after every event appended up to the end of the instant's
    /// second, and the log sequence they stand at.
    Kept { quads: Vec<Quad>, seq: u64, changes_read: usize },
    /// The history did not see that instant (see the module's notes): answer otherwise.
    NotKept,
}

pub struct CatalogueHistory {
    db: Database,
    /// When a record was last made durable: records in between are committed without an fsync
    /// (a crash loses at most [`DURABLE_EVERY`] of them, which the next start sees as a gap).
    last_durable: std::sync::Mutex<std::time::Instant>,
}

/// How often a record is made durable. A history that lost its last records to a crash resumes
/// after a gap (answered by replaying the log), so the projector need not pay an fsync per batch:
/// a rebuild of a log whose events are seconds apart records one change per second of it.
const DURABLE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

fn to_nquads<'a>(quads: impl IntoIterator<Item = &'a Quad>) -> Result<Vec<u8>, HistoryError> {
    let mut out = RdfSerializer::from_format(RdfFormat::NQuads).for_writer(Vec::new());
    for q in quads {
        out.serialize_quad(q).map_err(err)?;
    }
    out.finish().map_err(err)
}

fn from_nquads(bytes: &[u8]) -> Result<Vec<Quad>, HistoryError> {
    RdfParser::from_format(RdfFormat::NQuads).for_slice(bytes).collect::<Result<_, _>>().map_err(err)
}

impl CatalogueHistory {
    /// Opens (or creates) the history file at `path`.
    pub fn open(path: &Path) -> Result<Self, HistoryError> {
        // written after every batch that changes a public graph, read by `?at=`: redb's default
        // 1 GiB page cache would keep all it writes in memory
        let db = Database::builder().set_cache_size(16 * 1024 * 1024).create(path).map_err(err)?;
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(CHANGES).map_err(err)?;
        txn.open_table(SNAPSHOTS).map_err(err)?;
        txn.open_table(BY_TIME).map_err(err)?;
        txn.open_table(GAPS).map_err(err)?;
        txn.open_table(META).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(CatalogueHistory { db, last_durable: std::sync::Mutex::new(std::time::Instant::now()) })
    }

    /// A write transaction, durable when the last durable one is [`DURABLE_EVERY`] ago.
    fn begin_write(&self) -> Result<redb::WriteTransaction, HistoryError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        let mut last = self.last_durable.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < DURABLE_EVERY {
            txn.set_durability(redb::Durability::None).map_err(err)?;
        } else {
            *last = std::time::Instant::now();
        }
        Ok(txn)
    }

    fn meta(&self, key: &str) -> Result<u64, HistoryError> {
        let txn = self.db.begin_read().map_err(err)?;
        let meta = txn.open_table(META).map_err(err)?;
        Ok(meta.get(key).map_err(err)?.map_or(0, |v| v.value()))
    }

    /// The last log sequence recorded (0: none).
    pub fn last_seq(&self) -> Result<u64, HistoryError> {
        self.meta("last_seq")
    }

    /// How many changes, snapshots and gaps the history holds.
    pub fn sizes(&self) -> Result<(u64, u64, u64), HistoryError> {
        let txn = self.db.begin_read().map_err(err)?;
        Ok((
            txn.open_table(CHANGES).map_err(err)?.len().map_err(err)?,
            txn.open_table(SNAPSHOTS).map_err(err)?.len().map_err(err)?,
            txn.open_table(GAPS).map_err(err)?.len().map_err(err)?,
        ))
    }

    /// Records that the batch ending at `seq`, appended in the second `second`, changed the public
    /// graphs by `removed` and `added`. `current` gives the public graphs as they stood before
    /// the batch (read only when a snapshot is due; it is taken as of the previous record).
    pub fn record(
        &self,
        seq: u64,
        second: i128,
        removed: &[Quad],
        added: &[Quad],
        current: impl FnOnce() -> Result<Vec<Quad>, HistoryError>,
    ) -> Result<(), HistoryError> {
        let unchanged = removed.is_empty() && added.is_empty();
        let (removed, added) = (to_nquads(removed)?, to_nquads(added)?);
        let txn = self.begin_write()?;
        if unchanged {
            // nothing public changed: only the sequence the second stands at is kept
            txn.open_table(BY_TIME).map_err(err)?.insert((second, seq), ()).map_err(err)?;
            txn.open_table(META).map_err(err)?.insert("last_seq", seq).map_err(err)?;
            return txn.commit().map_err(err);
        }
        {
            let mut meta = txn.open_table(META).map_err(err)?;
            let get = |meta: &redb::Table<&str, u64>, k: &str| meta.get(k).map(|v| v.map_or(0, |v| v.value()));
            let last = get(&meta, "last_seq").map_err(err)?;
            let mut since = get(&meta, "since_snapshot").map_err(err)?;
            let mut changes_since = get(&meta, "changes_since").map_err(err)?;
            let snapshot_bytes = get(&meta, "snapshot_bytes").map_err(err)?;
            if last > 0
                && (since > snapshot_bytes.max(MIN_SNAPSHOT_DISTANCE) || changes_since >= MAX_CHANGES_PER_SNAPSHOT)
            {
                let snapshot = to_nquads(&current()?)?;
                txn.open_table(SNAPSHOTS).map_err(err)?.insert(last, snapshot.as_slice()).map_err(err)?;
                meta.insert("snapshot_bytes", snapshot.len() as u64).map_err(err)?;
                since = 0;
                changes_since = 0;
            }
            txn.open_table(CHANGES)
                .map_err(err)?
                .insert(seq, (second, removed.as_slice(), added.as_slice()))
                .map_err(err)?;
            txn.open_table(BY_TIME).map_err(err)?.insert((second, seq), ()).map_err(err)?;
            meta.insert("last_seq", seq).map_err(err)?;
            meta.insert("since_snapshot", since + (removed.len() + added.len()) as u64).map_err(err)?;
            meta.insert("changes_since", changes_since + 1).map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    /// Records that the history did not see the events up to `seq` since its last record, and that
    /// the public graphs stood as `quads` after them; kept history resumes at `now`'s second.
    /// Records at or past `seq` (a store rebuilt behind its history) are dropped first: the time
    /// since the last record left is part of the gap.
    pub fn resume(&self, seq: u64, quads: &[Quad], now: i128) -> Result<(), HistoryError> {
        let now = second_of(now);
        let snapshot = to_nquads(quads)?;
        let txn = self.db.begin_write().map_err(err)?;
        {
            let mut changes = txn.open_table(CHANGES).map_err(err)?;
            let mut snapshots = txn.open_table(SNAPSHOTS).map_err(err)?;
            let mut by_time = txn.open_table(BY_TIME).map_err(err)?;
            let mut gaps = txn.open_table(GAPS).map_err(err)?;
            changes.retain(|k, _| k < seq).map_err(err)?;
            snapshots.retain(|k, _| k < seq).map_err(err)?;
            by_time.retain(|(_, k), _| k < seq).map_err(err)?;
            gaps.retain(|k, _| k < seq).map_err(err)?;
            let from = by_time.last().map_err(err)?.map_or(i128::MIN, |(k, _)| k.value().0 + 1_000_000_000);
            snapshots.insert(seq, snapshot.as_slice()).map_err(err)?;
            by_time.insert((now, seq), ()).map_err(err)?;
            gaps.insert(seq, (from, now)).map_err(err)?;
            let mut meta = txn.open_table(META).map_err(err)?;
            meta.insert("last_seq", seq).map_err(err)?;
            meta.insert("since_snapshot", 0).map_err(err)?;
            meta.insert("changes_since", 0).map_err(err)?;
            meta.insert("snapshot_bytes", snapshot.len() as u64).map_err(err)?;
        }
        txn.commit().map_err(err)
    }

    /// The public catalogue after every event appended up to the end of the second of
    /// `instant` (ns since the epoch).
    pub fn at(&self, instant: i128) -> Result<Past, HistoryError> {
        let second = second_of(instant);
        let txn = self.db.begin_read().map_err(err)?;
        for gap in txn.open_table(GAPS).map_err(err)?.iter().map_err(err)? {
            let (from, to) = gap.map_err(err)?.1.value();
            if from <= second && second < to {
                return Ok(Past::NotKept);
            }
        }
        // the last batch appended by the end of that second
        let Some(entry) = txn.open_table(BY_TIME).map_err(err)?.range(..=(second, u64::MAX)).map_err(err)?.next_back()
        else {
            // before the first record: an empty catalogue, unless the history began with a gap
            let begins_with_gap =
                txn.open_table(GAPS).map_err(err)?.first().map_err(err)?.is_some_and(|g| g.1.value().0 == i128::MIN);
            return Ok(if begins_with_gap {
                Past::NotKept
            } else {
                Past::Kept { quads: Vec::new(), seq: 0, changes_read: 0 }
            });
        };
        let seq = entry.map_err(err)?.0.value().1;
        let snapshots = txn.open_table(SNAPSHOTS).map_err(err)?;
        let (from, mut quads): (u64, std::collections::HashSet<Quad>) =
            match snapshots.range(..=seq).map_err(err)?.next_back() {
                Some(s) => {
                    let (k, v) = s.map_err(err)?;
                    (k.value(), from_nquads(v.value())?.into_iter().collect())
                }
                None => (0, Default::default()),
            };
        let mut changes_read = 0;
        for change in txn.open_table(CHANGES).map_err(err)?.range(from + 1..=seq).map_err(err)? {
            let (_, v) = change.map_err(err)?;
            let (_, removed, added) = v.value();
            for q in from_nquads(removed)? {
                quads.remove(&q);
            }
            quads.extend(from_nquads(added)?);
            changes_read += 1;
        }
        Ok(Past::Kept { quads: quads.into_iter().collect(), seq, changes_read })
    }
}

impl Drop for CatalogueHistory {
    /// Makes the records not yet durable durable (a durable commit persists those before it).
    fn drop(&mut self) {
        let durable = self.db.begin_write().map(|t| t.commit());
        if !matches!(durable, Ok(Ok(()))) {
            tracing::warn!("the catalogue history's last records may not be on disk");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use oxigraph::model::{GraphName, Literal, NamedNode};

    use super::*;

    fn quad(i: u32) -> Quad {
        Quad::new(
            NamedNode::new_unchecked(format!("http://x/d{i}")),
            NamedNode::new_unchecked("http://x/p"),
            // long enough that 300 changes outweigh the least snapshot distance
            Literal::new_simple_literal(format!("{i:0>400}")),
            GraphName::NamedNode(NamedNode::new_unchecked(format!("http://x/d{i}"))),
        )
    }

    const S: i128 = 1_000_000_000;

    #[test]
    fn changes_and_snapshots_give_each_second_its_catalogue() {
        let dir = tempfile::tempdir().unwrap();
        let h = CatalogueHistory::open(&dir.path().join("h.redb")).unwrap();
        // state after second k: quads 0..=k, with quad k-1 replaced by quad 1000+k-1 ...
        let mut state: std::collections::BTreeSet<String> = Default::default();
        let mut expected = Vec::new();
        for k in 0..300u32 {
            let current: Vec<Quad> = state.iter().map(|s| from_nquads(s.as_bytes()).unwrap()[0].clone()).collect();
            let removed: Vec<Quad> = if k % 3 == 0 && k > 0 { vec![quad(k - 1)] } else { vec![] };
            let added = vec![quad(k)];
            h.record(u64::from(k) * 2 + 1, (100 + i128::from(k)) * S, &removed, &added, || Ok(current)).unwrap();
            for q in &removed {
                state.remove(&String::from_utf8(to_nquads([q]).unwrap()).unwrap());
            }
            state.insert(String::from_utf8(to_nquads(&added).unwrap()).unwrap());
            expected.push(state.clone());
        }
        assert!(h.sizes().unwrap().1 > 0, "no snapshot was taken");
        let as_set = |quads: Vec<Quad>| -> std::collections::BTreeSet<String> {
            quads.iter().map(|q| String::from_utf8(to_nquads([q]).unwrap()).unwrap()).collect()
        };
        for (k, want) in expected.iter().enumerate() {
            // any instant inside second 100 + k
            let Past::Kept { quads, seq, .. } = h.at((100 + k as i128) * S + 999_999_999).unwrap() else { panic!() };
            assert_eq!(seq, k as u64 * 2 + 1);
            assert_eq!(&as_set(quads), want, "second {k}");
        }
        let Past::Kept { quads, seq, .. } = h.at(99 * S).unwrap() else { panic!() };
        assert!(quads.is_empty() && seq == 0);
    }

    #[test]
    fn records_not_yet_durable_are_on_disk_once_the_history_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.redb");
        let h = CatalogueHistory::open(&path).unwrap();
        for k in 1..=20u64 {
            h.record(k, i128::from(k) * S, &[], &[quad(k as u32)], || Ok(vec![])).unwrap();
        }
        drop(h);
        let h = CatalogueHistory::open(&path).unwrap();
        assert_eq!(h.last_seq().unwrap(), 20);
        let Past::Kept { quads, seq: 20, .. } = h.at(20 * S).unwrap() else { panic!() };
        assert_eq!(quads.len(), 20);
    }

    #[test]
    fn a_gap_is_not_answered_and_history_resumes_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let h = CatalogueHistory::open(&dir.path().join("h.redb")).unwrap();
        h.record(1, 10 * S, &[], &[quad(1)], || Ok(vec![])).unwrap();
        // events 2..=5 were projected without a record; kept again from second 20
        h.resume(5, &[quad(1), quad(2)], 20 * S).unwrap();
        h.record(6, 21 * S, &[quad(1)], &[quad(3)], || Ok(vec![quad(1), quad(2)])).unwrap();
        assert!(matches!(h.at(10 * S).unwrap(), Past::Kept { seq: 1, .. }));
        assert!(matches!(h.at(11 * S).unwrap(), Past::NotKept));
        assert!(matches!(h.at(19 * S).unwrap(), Past::NotKept));
        let Past::Kept { quads, seq: 5, .. } = h.at(20 * S).unwrap() else { panic!() };
        assert_eq!(quads.len(), 2);
        let Past::Kept { mut quads, seq: 6, .. } = h.at(30 * S).unwrap() else { panic!() };
        quads.sort_by_key(|q| q.to_string());
        assert_eq!(quads, vec![quad(2), quad(3)]);
        // a history begun on a store that held events does not know the time before it
        let h2 = CatalogueHistory::open(&dir.path().join("h2.redb")).unwrap();
        h2.resume(9, &[quad(1)], 50 * S).unwrap();
        assert!(matches!(h2.at(40 * S).unwrap(), Past::NotKept));
        assert!(matches!(h2.at(50 * S).unwrap(), Past::Kept { seq: 9, .. }));
        // a store rebuilt behind its history: records past it are dropped
        h.resume(5, &[quad(7)], 60 * S).unwrap();
        assert_eq!(h.last_seq().unwrap(), 5);
        let Past::Kept { quads, seq: 5, .. } = h.at(70 * S).unwrap() else { panic!() };
        assert_eq!(quads, vec![quad(7)]);
        // what it had recorded since second 10 is no longer known
        assert!(matches!(h.at(10 * S).unwrap(), Past::Kept { seq: 1, .. }));
        assert!(matches!(h.at(25 * S).unwrap(), Past::NotKept));
    }
}
