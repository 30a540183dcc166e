//! A run's progress as the API shows it: per stage counters with average rates, and the run's
//! fraction done and ETA where they can be known: from the sinks' expected totals (known once
//! a `compact` upstream announces its winners) or else from the objects an `archive` source
//! has read of those it chose.

use serde::Serialize;

use crate::runtime::{Snapshot, StageSnapshot};

/// A run's progress now.
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// `running`, `stopping` or `finished`, as the runtime says.
    pub state: &'static str,
    /// Seconds since its stages started.
    pub elapsed_seconds: f64,
    /// Fraction done (0 to 1), when known.
    pub fraction: Option<f64>,
    /// Seconds left, when known.
    pub eta_seconds: Option<f64>,
    /// Every stage.
    pub stages: Vec<StageProgress>,
}

/// One stage's progress.
#[derive(Debug, Clone, Serialize)]
pub struct StageProgress {
    /// Its counters and the runtime's other figures.
    #[serde(flatten)]
    pub snapshot: StageSnapshot,
    /// Records per second since the start (sources: read; sinks: delivered or accepted).
    pub records_per_second: f64,
    /// Fraction of its expected work done, when known.
    pub fraction: Option<f64>,
}

/// What a stage has done by the measure progress uses: a sink that delivers later counts what
/// it delivered; other sinks and transforms what they received; sources what they sent.
fn done(s: &StageSnapshot) -> u64 {
    if s.counts_delivered {
        s.counters.delivered
    } else if s.role == flux_stages::registry::Role::Source {
        s.counters.records_out
    } else {
        s.counters.records_in
    }
}

fn stage_fraction(s: &StageSnapshot) -> Option<f64> {
    if let Some(expected) = s.expected_in {
        let skipped = if s.counts_delivered {
            s.counters.skipped
        } else {
            0
        };
        return Some(if expected == 0 {
            1.0
        } else {
            ((done(s) + skipped) as f64 / expected as f64).min(1.0)
        });
    }
    let o = s.objects?;
    let chosen = o.listed.saturating_sub(o.pruned);
    Some(if chosen == 0 {
        1.0
    } else {
        (o.read as f64 / chosen as f64).min(1.0)
    })
}

/// The progress of a snapshot.
pub fn progress(snap: Snapshot) -> Progress {
    let elapsed = snap.elapsed_seconds.max(1e-3);
    let stages: Vec<StageProgress> = snap
        .stages
        .into_iter()
        .map(|s| StageProgress {
            records_per_second: done(&s) as f64 / elapsed,
            fraction: stage_fraction(&s),
            snapshot: s,
        })
        .collect();
    // The sinks that know their total decide; else the sources reading objects.
    let sinks: Vec<f64> = stages
        .iter()
        .filter(|s| s.snapshot.role == flux_stages::registry::Role::Sink)
        .filter(|s| s.snapshot.expected_in.is_some())
        .filter_map(|s| s.fraction)
        .collect();
    let fraction = if !sinks.is_empty() {
        sinks.into_iter().reduce(f64::min)
    } else {
        stages
            .iter()
            .filter(|s| s.snapshot.objects.is_some())
            .filter_map(|s| s.fraction)
            .reduce(f64::min)
    };
    let finished = snap.state == crate::runtime::RunState::Finished;
    let eta_seconds = fraction
        .filter(|f| *f > 0.01 && !finished)
        .map(|f| (elapsed * (1.0 - f) / f).max(0.0));
    Progress {
        state: snap.state.name(),
        elapsed_seconds: snap.elapsed_seconds,
        fraction,
        eta_seconds,
        stages,
    }
}
