//! The end of the input: the output in version order, sorted in memory when the table and its
//! sort fit within `memory_limit`, else by the two merges of spilled runs the module docs of
//! [`super`] describe.

use std::path::PathBuf;

use super::merge::{self, By, Merge};
use super::order::{self, Ranked};
use super::spill::SpillDir;
use super::{Compact, ranked_bytes};

/// What is left to emit at the end.
pub(super) enum Out {
    Memory(std::vec::IntoIter<Ranked>),
    Runs(Merge),
}

impl Compact {
    /// Decides how the output is produced once the input has ended.
    pub(super) fn prepare_output(&mut self) -> anyhow::Result<Out> {
        let sort_bytes = self.table.len() * std::mem::size_of::<Ranked>();
        if self.spill.is_none()
            && self.table_bytes(self.table.capacity()) + sort_bytes <= self.limit
        {
            let table = std::mem::take(&mut self.table);
            self.held = 0;
            let mut kept: Vec<Ranked> = table.into_values().collect();
            kept.sort_unstable_by(order::compare);
            self.metrics.set_expected_out(kept.len() as u64);
            return Ok(Out::Memory(kept.into_iter()));
        }
        self.spill_table()?;
        let dir = self.spill.as_mut().expect("spilled above");
        // Phase 1: each key's winner, from runs sorted by key.
        let runs = merge::reduce(dir, std::mem::take(&mut self.runs), By::Key)?;
        let mut by_key = Merge::open(runs, By::Key)?;
        // Phase 2: winners sorted by version, in memory up to a quarter of the limit, else as
        // runs. The allocator still holds much of what the state held just before (records are
        // freed into the heaps of the threads that read them, and given back to the system
        // later): with the whole limit as budget, the 64 MiB benchmark peaked past
        // `memory_limit` + 64 MiB in some runs.
        let budget = self.limit.saturating_sub(merge::FAN_IN * 64 * 1024) / 4;
        let mut buffer: Vec<Ranked> = Vec::new();
        let mut bytes = 0usize;
        let mut version_runs = Vec::new();
        let mut winners = 0usize;
        while let Some(w) = by_key.next_winner()? {
            winners += 1;
            bytes += ranked_bytes(0, &w.item) + 2 * std::mem::size_of::<Ranked>();
            buffer.push(w.item);
            if bytes > budget {
                version_runs.push(write_sorted(dir, &mut buffer)?);
                bytes = 0;
            }
        }
        drop(by_key);
        self.metrics.set_expected_out(winners as u64);
        if version_runs.is_empty() {
            buffer.sort_unstable_by(order::compare);
            return Ok(Out::Memory(buffer.into_iter()));
        }
        if !buffer.is_empty() {
            version_runs.push(write_sorted(dir, &mut buffer)?);
        }
        let runs = merge::reduce(dir, version_runs, By::Version)?;
        Ok(Out::Runs(Merge::open(runs, By::Version)?))
    }
}

/// Sorts `buffer` by version, writes it as a run and empties it.
fn write_sorted(dir: &mut SpillDir, buffer: &mut Vec<Ranked>) -> anyhow::Result<PathBuf> {
    buffer.sort_unstable_by(order::compare);
    let mut run = dir.create()?;
    for k in buffer.drain(..) {
        run.write(&[], &k)?;
    }
    *buffer = Vec::new();
    run.finish(dir)
}
