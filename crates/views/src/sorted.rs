//! A sorted set kept in short sorted runs: the index's `started` table. A range of it is a few
//! contiguous slices, which a broad search (a year of studies at the Atlas's size, 100,000
//! entries) walks in a fraction of a millisecond; a `BTreeSet` of the same entries walks it in
//! 3–10 ms, its nodes being scattered over the heap. Inserting and removing move at most one
//! run's entries.

/// Entries per run at most; a fuller run is split in two. Short enough that an insert moves
/// little (the build inserts a million in store order), long enough that a range is a few
/// slices.
const MAX_RUN: usize = 512;

/// A set of `T` in ascending order.
#[derive(Debug, Clone)]
pub(crate) struct SortedRuns<T> {
    /// Non-empty runs, each sorted, each run's entries below the next run's.
    runs: Vec<Vec<T>>,
}

impl<T> Default for SortedRuns<T> {
    fn default() -> Self {
        SortedRuns { runs: Vec::new() }
    }
}

impl<T: Ord + Copy> SortedRuns<T> {
    /// The first run whose last entry is not below `value` (the number of runs if none is).
    fn first_run_reaching(&self, value: &T) -> usize {
        self.runs.partition_point(|run| run.last().is_some_and(|last| last < value))
    }

    /// The run `value` belongs in: the first reaching it, else the last.
    fn run_of(&self, value: &T) -> usize {
        self.first_run_reaching(value).min(self.runs.len().saturating_sub(1))
    }

    /// Adds `value`; false when it was there already.
    pub(crate) fn insert(&mut self, value: T) -> bool {
        if self.runs.is_empty() {
            self.runs.push(vec![value]);
            return true;
        }
        let r = self.run_of(&value);
        let run = &mut self.runs[r];
        let Err(at) = run.binary_search(&value) else { return false };
        run.insert(at, value);
        if run.len() > MAX_RUN {
            let upper = run.split_off(run.len() / 2);
            self.runs.insert(r + 1, upper);
        }
        true
    }

    /// Removes `value`; false when it was not there.
    pub(crate) fn remove(&mut self, value: &T) -> bool {
        if self.runs.is_empty() {
            return false;
        }
        let r = self.run_of(value);
        let run = &mut self.runs[r];
        let Ok(at) = run.binary_search(value) else { return false };
        run.remove(at);
        if run.is_empty() {
            self.runs.remove(r);
        }
        true
    }

    /// Where the first entry not below `value` is: (run, offset), the offset possibly the run's
    /// end.
    fn position(&self, value: &T) -> (usize, usize) {
        let r = self.first_run_reaching(value);
        match self.runs.get(r) {
            Some(run) => (r, run.partition_point(|e| e < value)),
            None => (r, 0),
        }
    }

    /// The entries from `from` (included) up to `to` (excluded; `None`: to the end), in order,
    /// walkable from either end.
    pub(crate) fn range(&self, from: &T, to: Option<&T>) -> impl DoubleEndedIterator<Item = &T> + '_ {
        let (first, start) = self.position(from);
        let (last, end) = match to {
            Some(to) => self.position(to),
            None => (self.runs.len(), 0),
        };
        // (first, start) ≤ (last, end): a run whose entries start at or past `to` may come
        // first only when the range is empty
        let empty = (last, end) <= (first, start);
        let runs = if empty { &self.runs[..0] } else { &self.runs[first..=last.min(self.runs.len() - 1)] };
        runs.iter().enumerate().flat_map(move |(i, run)| {
            let r = first + i;
            let from = if r == first { start } else { 0 };
            let to = if r == last { end } else { run.len() };
            &run[from..to.max(from)]
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// xorshift: the same sequence on every run, no dependency.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn agrees_with_a_btree_set_through_inserts_removes_and_ranges() {
        for (seed, span) in [(1, 50), (2, 5_000), (3, 200_000)] {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
            let mut runs = SortedRuns::default();
            let mut set = BTreeSet::new();
            for step in 0..30_000u32 {
                let v = rng.below(span);
                // inserts outnumber removes, so the set grows over many runs and then some
                // runs empty again
                if rng.below(3) == 0 {
                    assert_eq!(runs.remove(&v), set.remove(&v), "remove {v} at step {step}");
                } else {
                    assert_eq!(runs.insert(v), set.insert(v), "insert {v} at step {step}");
                }
                assert_eq!(runs.runs.iter().map(Vec::len).sum::<usize>(), set.len());
                if step.is_multiple_of(997) {
                    for _ in 0..20 {
                        let (a, b) = (rng.below(span + 2), rng.below(span + 2));
                        let to = (rng.below(4) != 0).then_some(b);
                        let expected: Vec<u64> = match to {
                            Some(b) if b < a => Vec::new(),
                            Some(b) => set.range(a..b).copied().collect(),
                            None => set.range(a..).copied().collect(),
                        };
                        let got: Vec<u64> = runs.range(&a, to.as_ref()).copied().collect();
                        assert_eq!(got, expected, "range {a}..{to:?}");
                        let mut back: Vec<u64> = runs.range(&a, to.as_ref()).rev().copied().collect();
                        back.reverse();
                        assert_eq!(back, expected, "range {a}..{to:?} walked backwards");
                    }
                }
            }
            assert!(runs.runs.len() > 1 || span < MAX_RUN as u64, "{} runs", runs.runs.len());
            assert!(runs.runs.iter().all(|r| !r.is_empty() && r.len() <= MAX_RUN));
            let all: Vec<u64> = runs.range(&0, None).copied().collect();
            assert_eq!(all, set.iter().copied().collect::<Vec<_>>());
        }
    }

    #[test]
    fn an_empty_set_has_empty_ranges() {
        let mut runs: SortedRuns<u32> = SortedRuns::default();
        assert_eq!(runs.range(&0, None).count(), 0);
        assert!(!runs.remove(&3));
        assert!(runs.insert(3));
        assert!(runs.remove(&3));
        assert_eq!(runs.range(&0, Some(&10)).count(), 0);
        assert!(runs.runs.is_empty());
    }
}
