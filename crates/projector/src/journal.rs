//! What the projector changed, for the read models that follow it: after each committed batch the
//! projector records the log subjects (aggregates) the batch touched and its checkpoint; the read
//! models take them and re-read just those aggregates from the store.
//!
//! Recording is after the commit, so whatever a reader reads for a recorded subject is at least as
//! new as the batch. Pending subjects are coalesced (a subject changed by ten batches is read once);
//! past a bound the journal stops listing them and says so ([`Changes::overflowed`]): the reader
//! then rebuilds from the store instead, and the journal's memory stays bounded.

use std::{
    collections::BTreeSet,
    sync::{Condvar, Mutex},
    time::Duration,
};

/// The most pending subjects kept before the journal overflows.
pub const DEFAULT_JOURNAL_BOUND: usize = 200_000;

/// What changed since the last [`ChangeJournal::take`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// The checkpoint of the latest recorded batch (0: nothing recorded yet).
    pub checkpoint: u64,
    /// The log subjects of the aggregates changed (created, changed, erased), sorted.
    pub subjects: BTreeSet<String>,
    /// More subjects changed than the journal keeps: `subjects` is incomplete, read everything.
    pub overflowed: bool,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.subjects.is_empty() && !self.overflowed
    }
}

/// The changes the projector committed and the read models have not taken yet.
pub struct ChangeJournal {
    pending: Mutex<Changes>,
    recorded: Condvar,
    bound: usize,
}

impl Default for ChangeJournal {
    fn default() -> Self {
        ChangeJournal::with_bound(DEFAULT_JOURNAL_BOUND)
    }
}

impl ChangeJournal {
    /// A journal that keeps at most `bound` pending subjects.
    pub fn with_bound(bound: usize) -> Self {
        ChangeJournal { pending: Mutex::new(Changes::default()), recorded: Condvar::new(), bound }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Changes> {
        // a reader that panicked leaves the set as it was: still a valid set of subjects
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a committed batch: its checkpoint and the subjects it touched.
    pub fn record<'a>(&self, checkpoint: u64, subjects: impl IntoIterator<Item = &'a String>) {
        let mut pending = self.lock();
        pending.checkpoint = pending.checkpoint.max(checkpoint);
        if !pending.overflowed {
            pending.subjects.extend(subjects.into_iter().cloned());
            if pending.subjects.len() > self.bound {
                pending.subjects = BTreeSet::new();
                pending.overflowed = true;
            }
        }
        drop(pending);
        self.recorded.notify_all();
    }

    /// Takes what is pending, leaving the journal empty (its checkpoint stays).
    pub fn take(&self) -> Changes {
        let mut pending = self.lock();
        let checkpoint = pending.checkpoint;
        std::mem::replace(&mut *pending, Changes { checkpoint, ..Changes::default() })
    }

    /// Waits up to `timeout` for something to be pending, then takes it (possibly nothing).
    /// Blocking: call it from a blocking thread.
    pub fn wait_and_take(&self, timeout: Duration) -> Changes {
        let pending = self.lock();
        let (mut pending, _) =
            self.recorded.wait_timeout_while(pending, timeout, |p| p.is_empty()).unwrap_or_else(|e| e.into_inner());
        let checkpoint = pending.checkpoint;
        std::mem::replace(&mut *pending, Changes { checkpoint, ..Changes::default() })
    }

    /// The checkpoint of the latest recorded batch.
    pub fn checkpoint(&self) -> u64 {
        self.lock().checkpoint
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_coalesce_and_overflow_past_the_bound() {
        let journal = ChangeJournal::with_bound(3);
        let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        journal.record(5, &s(&["a", "b"]));
        journal.record(7, &s(&["b", "c"]));
        let taken = journal.take();
        assert_eq!((taken.checkpoint, taken.subjects.len(), taken.overflowed), (7, 3, false));
        assert!(journal.take().is_empty());
        assert_eq!(journal.checkpoint(), 7, "the checkpoint stays after a take");
        journal.record(9, &s(&["a", "b", "c", "d"]));
        journal.record(10, &s(&["e"]));
        let taken = journal.take();
        assert!(taken.overflowed && taken.subjects.is_empty());
        assert_eq!(taken.checkpoint, 10);
    }

    #[test]
    fn a_waiting_reader_wakes_on_a_record() {
        let journal = std::sync::Arc::new(ChangeJournal::default());
        let j = journal.clone();
        let reader = std::thread::spawn(move || j.wait_and_take(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        journal.record(1, &["x".to_string()]);
        let taken = reader.join().unwrap();
        assert_eq!(taken.subjects.into_iter().collect::<Vec<_>>(), vec!["x".to_string()]);
        assert!(journal.wait_and_take(Duration::from_millis(10)).is_empty());
    }
}
