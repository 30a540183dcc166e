//! Running a compiled pipeline: one tokio task per stage, one bounded channel per edge.
//!
//! - A full channel blocks its sender, so the slowest stage paces the sources; memory is bounded
//!   by the sum of channel capacities plus what stages hold.
//! - Fan-out sends each batch (shared, not copied) to every downstream edge in turn; fan-in reads
//!   all inputs fairly and aligns checkpoint barriers ([`inputs`]).
//! - A source's end flows downstream as `End`; the run ends when every sink has finished.
//! - The first stage that fails stops the run; its error names the stage.
//! - The stop token (Ctrl-C) makes sources stop reading; what was read drains through the
//!   pipeline and is committed, then the run reports that it was interrupted.
//!
//! The API for programs that run pipelines (the `run` command, a server): [`start()`] a
//! compiled pipeline with [`RunOptions`] and get a [`RunHandle`]: [`RunHandle::cancel`],
//! [`RunHandle::snapshot`] ([`Snapshot`]: every stage's counters as data), and
//! [`RunHandle::wait`] for the [`RunSummary`]. The run gets a tokio runtime of its own, sized
//! from the per-stage facts compile derived ([`crate::compile::Facts`]); the stages are built
//! with those facts ([`prepare()`]) and never changed afterwards.
//!
//! Files: `prepare.rs` builds stages, `execute.rs` runs them, `live.rs` and `summary.rs` are
//! the data, `handle.rs` the API; [`progress`] and [`table`] show them to people.

mod execute;
mod handle;
pub mod inputs;
mod live;
mod prepare;
pub mod progress;
mod summary;
pub mod table;

pub use execute::{RunReport, execute};
pub use handle::{Monitor, RunHandle, RunOptions, StartError, new_run_id, start, start_with};
pub use live::{LiveMetrics, LiveStage, ObjectCounts, RunState, Snapshot, StageSnapshot};
pub use prepare::{Prepared, ProvidedSinks, prepare, prepare_provided, prepare_with};
pub use summary::{Counters, Outcome, RunSummary, SUMMARY_VERSION, StageSummary};

#[cfg(test)]
mod api_tests;
