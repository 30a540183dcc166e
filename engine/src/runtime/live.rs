//! The live view of a running pipeline: every stage's shared counters ([`LiveMetrics`]) and
//! snapshots of them as data ([`Snapshot`]), for progress lines, metrics endpoints and
//! embedding programs.

use std::sync::Arc;

use flux_stages::registry::Role;
use flux_stages::stage::StageMetrics;
use serde::Serialize;

use super::summary::{Counters, role_name};

/// Shared, live view of every stage's counters.
#[derive(Clone)]
pub struct LiveMetrics {
    /// Every stage, in graph order.
    pub stages: Vec<LiveStage>,
}

/// One stage in [`LiveMetrics`].
#[derive(Clone)]
pub struct LiveStage {
    /// Its id.
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its `type`.
    pub kind: String,
    /// The stages feeding its main input (indices into [`LiveMetrics::stages`]).
    pub inputs: Vec<usize>,
    /// A transform that sends each record on or to dead letter (see `StageKind::one_to_one`).
    pub one_to_one: bool,
    /// Its counters.
    pub metrics: Arc<StageMetrics>,
}

impl LiveMetrics {
    /// How many records stage `i` will have sent in all, when that is known: what the stage
    /// announced, or for a one-to-one transform what its inputs will send minus its dead letters.
    pub fn expected_out(&self, i: usize) -> Option<u64> {
        let s = &self.stages[i];
        if let Some(n) = s.metrics.expected_out() {
            return Some(n);
        }
        if !s.one_to_one || s.inputs.is_empty() {
            return None;
        }
        let upstream = self.expected_in(i)?;
        Some(upstream.saturating_sub(StageMetrics::get(&s.metrics.dead_lettered)))
    }

    /// How many records stage `i` will receive in all, when every input knows.
    pub fn expected_in(&self, i: usize) -> Option<u64> {
        let inputs = &self.stages[i].inputs;
        if inputs.is_empty() {
            return None;
        }
        inputs
            .iter()
            .map(|&j| self.expected_out(j))
            .sum::<Option<u64>>()
    }

    /// Every stage's counters now, as data.
    pub fn stage_snapshots(&self) -> Vec<StageSnapshot> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.stages
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let m = &s.metrics;
                StageSnapshot {
                    id: s.id.clone(),
                    role: s.role,
                    kind: s.kind.clone(),
                    counters: Counters::read(m),
                    counts_delivered: m
                        .counts_delivered
                        .load(std::sync::atomic::Ordering::Relaxed),
                    behind_ms: m.behind_ms(),
                    expected_in: self.expected_in(i),
                    checkpoint_age_ms: m.checkpointed_at_ms().map(|at| now_ms.saturating_sub(at)),
                    finished: m.finished.load(std::sync::atomic::Ordering::Relaxed),
                    objects: ObjectCounts::read(&m.objects),
                }
            })
            .collect()
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Its stages are running.
    Running,
    /// It was cancelled: the sources are stopping and what they sent is being finished.
    Stopping,
    /// It has ended; its summary is ready.
    Finished,
}

impl RunState {
    /// Every state, for exporters that publish one series per state.
    pub const ALL: [RunState; 3] = [RunState::Running, RunState::Stopping, RunState::Finished];

    /// The state's name as in JSON (`running`, `stopping`, `finished`).
    pub fn name(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Stopping => "stopping",
            RunState::Finished => "finished",
        }
    }
}

/// One stage in a [`Snapshot`].
#[derive(Debug, Clone, Serialize)]
pub struct StageSnapshot {
    /// Its id.
    pub id: String,
    /// Its role.
    #[serde(serialize_with = "role_name")]
    pub role: Role,
    /// Its `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its counters now (flattened into the stage's JSON object).
    #[serde(flatten)]
    pub counters: Counters,
    /// True for sinks that deliver later than they accept (`kinesis`): `delivered` is what
    /// they wrote, `records_out` what they accepted.
    pub counts_delivered: bool,
    /// Sources reading a stream: how far behind its tip they are, in milliseconds, once known.
    pub behind_ms: Option<u64>,
    /// How many records the stage will receive in all, once every input knows (a `compact`
    /// upstream announces its winners when its input has ended).
    pub expected_in: Option<u64>,
    /// Sinks: milliseconds since the last checkpoint barrier completed (everything received
    /// before it was made durable); `None` before the first.
    pub checkpoint_age_ms: Option<u64>,
    /// Sources: it has read and sent everything (its rate no longer moves).
    pub finished: bool,
    /// Sources reading stored objects (`archive`): what they listed, pruned and read; `None`
    /// for other stages and before the listing.
    pub objects: Option<ObjectCounts>,
}

/// [`flux_stages::stage::ObjectCounters`] as numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ObjectCounts {
    /// Data objects of the stream listed.
    pub listed: u64,
    /// Listed objects left unread (outside the bounds).
    pub pruned: u64,
    /// Objects read so far.
    pub read: u64,
    /// Stored (compressed) bytes of the objects read so far.
    pub bytes: u64,
}

impl ObjectCounts {
    /// Reads the counters; `None` until the stage listed something.
    pub fn read(c: &flux_stages::stage::ObjectCounters) -> Option<ObjectCounts> {
        let get = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        let counts = ObjectCounts {
            listed: get(&c.listed),
            pruned: get(&c.pruned),
            read: get(&c.read),
            bytes: get(&c.bytes),
        };
        (counts.listed > 0).then_some(counts)
    }
}

/// Every stage's counters at one moment, as data.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    /// The run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// Where the run is.
    pub state: RunState,
    /// Seconds since the run started.
    pub elapsed_seconds: f64,
    /// One entry per stage in graph order; empty until the stages' tasks have started.
    pub stages: Vec<StageSnapshot>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(inputs: Vec<usize>, one_to_one: bool) -> LiveStage {
        LiveStage {
            id: String::new(),
            role: Role::Transform,
            kind: "t".into(),
            inputs,
            one_to_one,
            metrics: Arc::new(StageMetrics::default()),
        }
    }

    #[test]
    fn expected_counts_flow_through_one_to_one_transforms() {
        // source(0) -> compact(1) -> annotate(2) -> sink(3); filter(4) -> sink(5)
        let live = LiveMetrics {
            stages: vec![
                stage(vec![], false),
                stage(vec![0], false),
                stage(vec![1], true),
                stage(vec![2], false),
                stage(vec![0], false),
                stage(vec![4, 2], false),
            ],
        };
        assert_eq!(live.expected_in(3), None, "compact has not announced yet");
        live.stages[1].metrics.set_expected_out(500);
        assert_eq!(live.expected_in(3), Some(500));
        StageMetrics::add(&live.stages[2].metrics.dead_lettered, 2);
        live.stages[1].metrics.expect_one_less();
        assert_eq!(live.expected_in(3), Some(497));
        assert_eq!(
            live.expected_in(5),
            None,
            "a filter's output is not known ahead"
        );
        live.stages[1].metrics.set_expected_out(0);
        live.stages[1].metrics.expect_one_less();
        assert_eq!(live.stages[1].metrics.expected_out(), Some(0));
    }

    #[test]
    fn a_snapshot_reads_counters_lag_and_checkpoint_age() {
        let live = LiveMetrics {
            stages: vec![stage(vec![], false), stage(vec![0], false)],
        };
        StageMetrics::add(&live.stages[0].metrics.records_out, 7);
        live.stages[0].metrics.set_behind_ms(Some(1500));
        let snap = live.stage_snapshots();
        assert_eq!(snap[0].counters.records_out, 7);
        assert_eq!(snap[0].behind_ms, Some(1500));
        assert_eq!(snap[1].checkpoint_age_ms, None);
        live.stages[1].metrics.set_checkpointed_now();
        let age = live.stage_snapshots()[1].checkpoint_age_ms;
        assert!(age.is_some_and(|a| a < 60_000), "{age:?}");
    }
}
