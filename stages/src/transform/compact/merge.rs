//! k-way merges of sorted runs with a binary heap: by key (to pick each key's winner) or by
//! version (to write the output in order). More runs than [`FAN_IN`] are first merged in groups
//! of consecutive runs, so open files stay few whatever the memory limit.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::path::PathBuf;

use super::order;
use super::spill::{Entry, RunReader, SpillDir};

/// Runs merged at once.
pub const FAN_IN: usize = 64;

/// What runs are sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum By {
    /// Key, then version (oldest first).
    Key,
    /// Version (oldest first).
    Version,
}

struct Head {
    entry: Entry,
    run: usize,
    by: By,
}

impl Head {
    fn order(&self, other: &Head) -> Ordering {
        let version = || order::compare(&self.entry.item, &other.entry.item);
        match self.by {
            By::Key => self.entry.key.cmp(&other.entry.key).then_with(version),
            By::Version => version(),
        }
        // Equal entries: the earlier run first.
        .then_with(|| self.run.cmp(&other.run))
    }
}

impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.order(other) == Ordering::Equal
    }
}
impl Eq for Head {}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap; the smallest entry must come out first.
        other.order(self)
    }
}

/// Merges sorted runs into one sorted sequence.
pub struct Merge {
    readers: Vec<RunReader>,
    heap: BinaryHeap<Head>,
    by: By,
}

impl Merge {
    /// Opens runs (at most [`FAN_IN`]; see [`reduce`]) sorted by `by`.
    pub fn open(runs: Vec<PathBuf>, by: By) -> anyhow::Result<Merge> {
        let mut readers = runs
            .into_iter()
            .map(RunReader::open)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut heap = BinaryHeap::with_capacity(readers.len());
        for (run, reader) in readers.iter_mut().enumerate() {
            if let Some(entry) = reader.next_entry()? {
                heap.push(Head { entry, run, by });
            }
        }
        Ok(Merge { readers, heap, by })
    }

    /// The next entry in order.
    pub fn next_entry(&mut self) -> anyhow::Result<Option<Entry>> {
        let Some(head) = self.heap.pop() else {
            return Ok(None);
        };
        if let Some(entry) = self.readers[head.run].next_entry()? {
            self.heap.push(Head {
                entry,
                run: head.run,
                by: self.by,
            });
        }
        Ok(Some(head.entry))
    }

    /// The next key's winner (the newest version; the earliest run on equal versions), for runs
    /// sorted [`By::Key`].
    pub fn next_winner(&mut self) -> anyhow::Result<Option<Entry>> {
        debug_assert_eq!(self.by, By::Key);
        let Some(mut winner) = self.next_entry()? else {
            return Ok(None);
        };
        while self.heap.peek().is_some_and(|h| h.entry.key == winner.key) {
            let Some(next) = self.next_entry()? else {
                break;
            };
            if order::compare(&next.item, &winner.item) == Ordering::Greater {
                winner = next;
            }
        }
        Ok(Some(winner))
    }
}

/// Merges groups of [`FAN_IN`] consecutive runs until at most [`FAN_IN`] are left. Runs sorted
/// by key keep only each key's winner. The merged run takes its group's place, so "earlier run"
/// still means "seen earlier".
pub fn reduce(dir: &mut SpillDir, mut runs: Vec<PathBuf>, by: By) -> anyhow::Result<Vec<PathBuf>> {
    while runs.len() > FAN_IN {
        let group: Vec<PathBuf> = runs.drain(..FAN_IN).collect();
        let mut merge = Merge::open(group, by)?;
        let mut out = dir.create()?;
        loop {
            let next = match by {
                By::Key => merge.next_winner()?,
                By::Version => merge.next_entry()?,
            };
            let Some(e) = next else { break };
            out.write(&e.key, &e.item)?;
        }
        runs.insert(0, out.finish(dir)?);
    }
    Ok(runs)
}
