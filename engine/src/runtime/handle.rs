//! The embeddable API: [`start`] a compiled pipeline on a tokio runtime of its own, sized from
//! what its stages need, and get a [`RunHandle`]: cancel it (an orderly stop, as Ctrl-C), take
//! live [`Snapshot`]s of every stage's counters, and receive the [`RunSummary`] as data. The
//! `run` command is one user; a server is meant to be another.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::execute::{RunReport, execute};
use super::live::{LiveMetrics, RunState, Snapshot};
use super::prepare::{ProvidedSinks, prepare_provided};
use super::summary::{Outcome, RunSummary, SUMMARY_VERSION, timestamp};
use crate::compile::Pipeline;
use flux_stages::sink::kinesis::shards::ShardRange;

/// tokio's own default for the blocking pool, kept when no stage needs more.
const DEFAULT_BLOCKING_THREADS: usize = 512;

/// How long a run that ended without reaching its sinks' end (a failure) waits to release the
/// archive leases it still holds.
const RELEASE_WITHIN: Duration = Duration::from_secs(10);

/// How to start a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The run's id (see [`new_run_id`]): names its manifests and its leases.
    pub run_id: String,
    /// A dry run: sinks that support it check and plan but write nothing; the others refuse
    /// to build.
    pub dry_run: bool,
    /// A dry run's target shards for `kinesis` sinks, instead of listing the stream's (see
    /// [`BuildContext::offline_shards`](flux_stages::registry::BuildContext::offline_shards)).
    pub offline_shards: Option<Vec<ShardRange>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            run_id: new_run_id(),
            dry_run: false,
            offline_shards: None,
        }
    }
}

/// A run id: UTC start time plus a per-process suffix, sortable by time.
pub fn new_run_id() -> String {
    let now = chrono::Utc::now();
    let nanos = now.timestamp_subsec_nanos();
    format!(
        "{}-{:04x}{:04x}",
        now.format("%Y%m%dT%H%M%SZ"),
        std::process::id() & 0xffff,
        nanos & 0xffff
    )
}

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The tokio runtime could not be created (threads, file descriptors).
    #[error("cannot start the runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// A stage could not be built; the message names it.
    #[error("{0}")]
    Build(String),
}

/// What the handle, its monitors and the run's task share.
struct Shared {
    run_id: String,
    pipeline: String,
    started: Instant,
    stop: CancellationToken,
    live: OnceLock<LiveMetrics>,
    /// [`RunState`] as a number (see [`state_code`]).
    state: AtomicU8,
    /// The run's runtime, to do work where its stages' clients live.
    runtime: tokio::runtime::Handle,
}

fn state_code(s: RunState) -> u8 {
    match s {
        RunState::Running => 0,
        RunState::Stopping => 1,
        RunState::Finished => 2,
    }
}

/// A cheap, cloneable view of a run: its snapshots and its cancellation, for progress
/// reporters and metrics endpoints that live apart from the [`RunHandle`].
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl Monitor {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        &self.shared.run_id
    }

    /// Where the run is.
    pub fn state(&self) -> RunState {
        match self.shared.state.load(Ordering::Relaxed) {
            0 if self.shared.stop.is_cancelled() => RunState::Stopping,
            0 => RunState::Running,
            1 => RunState::Stopping,
            _ => RunState::Finished,
        }
    }

    /// Every stage's counters now.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            run_id: self.shared.run_id.clone(),
            pipeline: self.shared.pipeline.clone(),
            state: self.state(),
            elapsed_seconds: self.shared.started.elapsed().as_secs_f64(),
            stages: self
                .shared
                .live
                .get()
                .map(LiveMetrics::stage_snapshots)
                .unwrap_or_default(),
        }
    }

    /// The live counters themselves, once the stages' tasks have started (for reporters that
    /// keep history between snapshots).
    pub fn live(&self) -> Option<&LiveMetrics> {
        self.shared.live.get()
    }

    /// Asks the run to stop in order, as the first Ctrl-C does: sources stop reading, what they
    /// sent is finished and committed, and the run ends [`Outcome::Interrupted`] (unless a
    /// stage fails). Calling it again does nothing more.
    pub fn cancel(&self) {
        if !self.shared.stop.is_cancelled() {
            let _ = self.shared.state.compare_exchange(
                state_code(RunState::Running),
                state_code(RunState::Stopping),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
            self.shared.stop.cancel();
        }
    }

    /// True once [`Monitor::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        self.shared.stop.is_cancelled()
    }

    /// For abandoning a run without finishing its sinks (a second Ctrl-C): releases the
    /// archive leases this run holds, waiting at most `within`, so that the next archiver of
    /// its streams need not wait for `lease_ttl`. Objects and checkpoints already written stay
    /// valid. The caller then drops the [`RunHandle`] (or exits).
    pub async fn release_leases(&self, within: Duration) {
        let run_id = self.shared.run_id.clone();
        let task = self.shared.runtime.spawn(async move {
            flux_stages::archive::lease::release_held_by(&run_id).await;
        });
        let _ = tokio::time::timeout(within, task).await;
    }
}

/// A started run. Dropping it before the run has finished abandons the run at once (as a
/// second Ctrl-C, without releasing leases): call [`RunHandle::cancel`] and wait for an orderly
/// stop.
pub struct RunHandle {
    monitor: Monitor,
    runtime: Option<tokio::runtime::Runtime>,
    done: Option<oneshot::Receiver<RunSummary>>,
}

/// Starts a compiled pipeline on a tokio runtime of its own: worker threads as tokio chooses,
/// a blocking pool as large as the stages need ([`Pipeline::resources`]). The stages are built
/// first; a stage that cannot be built is a [`StartError::Build`] naming it, and nothing runs.
///
/// Callable from synchronous code and from inside another tokio runtime alike.
pub fn start(pipeline: &Pipeline, options: RunOptions) -> Result<RunHandle, StartError> {
    start_with(pipeline, options, ProvidedSinks::default())
}

/// [`start`], with some sinks provided by the caller instead of built from the pipeline file
/// (see [`ProvidedSinks`]).
pub fn start_with(
    pipeline: &Pipeline,
    options: RunOptions,
    provided: ProvidedSinks,
) -> Result<RunHandle, StartError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("flux-run")
        .max_blocking_threads(
            pipeline
                .resources()
                .blocking_threads
                .max(DEFAULT_BLOCKING_THREADS),
        )
        .build()?;
    let stop = CancellationToken::new();
    let graph = {
        // Stages may create clients or spawn helpers as they are built: inside the run's runtime.
        let _inside = runtime.enter();
        prepare_provided(pipeline, &options, &stop, provided).map_err(StartError::Build)?
    };
    let shared = Arc::new(Shared {
        run_id: options.run_id.clone(),
        pipeline: pipeline.name.clone(),
        started: Instant::now(),
        stop,
        live: OnceLock::new(),
        state: AtomicU8::new(state_code(RunState::Running)),
        runtime: runtime.handle().clone(),
    });
    let (tx, rx) = oneshot::channel();
    let task_shared = shared.clone();
    let started_at = chrono::Utc::now();
    runtime.spawn(async move {
        let s = task_shared;
        let report = execute(graph, s.stop.clone(), |live| {
            let _ = s.live.set(live);
        })
        .await;
        // What the run still holds goes back now that its sinks have committed (or failed):
        // the shard leases and heartbeat of a shared worker, and the leases of a failed run's
        // sinks, which never reached their end. The next run need not wait for lease_ttl.
        let _ = tokio::time::timeout(
            RELEASE_WITHIN,
            flux_stages::archive::lease::release_held_by(&s.run_id),
        )
        .await;
        let summary = summarize(report, &s.run_id, &s.pipeline, options.dry_run, started_at);
        s.state
            .store(state_code(RunState::Finished), Ordering::Relaxed);
        let _ = tx.send(summary);
    });
    Ok(RunHandle {
        monitor: Monitor { shared },
        runtime: Some(runtime),
        done: Some(rx),
    })
}

/// The summary of a finished run.
fn summarize(
    report: RunReport,
    run_id: &str,
    pipeline: &str,
    dry_run: bool,
    started_at: chrono::DateTime<chrono::Utc>,
) -> RunSummary {
    let outcome = if report.output_closed {
        Outcome::OutputClosed
    } else if report.error.is_some() {
        Outcome::Failed
    } else if report.interrupted {
        Outcome::Interrupted
    } else {
        Outcome::Succeeded
    };
    let manifests = report
        .stages
        .iter()
        .flat_map(|s| s.manifests.iter().cloned())
        .collect();
    RunSummary {
        version: SUMMARY_VERSION,
        run_id: run_id.to_owned(),
        pipeline: pipeline.to_owned(),
        outcome,
        error: report.error,
        dry_run,
        started_at: timestamp(started_at),
        finished_at: timestamp(chrono::Utc::now()),
        seconds: report.seconds,
        stages: report.stages,
        manifests,
    }
}

impl RunHandle {
    /// The run's id.
    pub fn run_id(&self) -> &str {
        self.monitor.run_id()
    }

    /// A view of the run for other tasks (see [`Monitor`]).
    pub fn monitor(&self) -> Monitor {
        self.monitor.clone()
    }

    /// See [`Monitor::cancel`].
    pub fn cancel(&self) {
        self.monitor.cancel();
    }

    /// See [`Monitor::snapshot`].
    pub fn snapshot(&self) -> Snapshot {
        self.monitor.snapshot()
    }

    /// Waits for the run to end and returns its summary; then shuts its runtime down without
    /// waiting for what is still blocked there (a reader blocked on standard input after a
    /// Ctrl-C). Runtime-agnostic: await it on any executor.
    pub async fn wait(mut self) -> RunSummary {
        let rx = self
            .done
            .take()
            .expect("only `wait` and `wait_blocking` take it, by value");
        let summary = rx.await.unwrap_or_else(|_| self.lost());
        self.shutdown();
        summary
    }

    /// [`RunHandle::wait`] for synchronous callers (it panics inside an async task, as tokio's
    /// blocking calls do).
    pub fn wait_blocking(mut self) -> RunSummary {
        let rx = self
            .done
            .take()
            .expect("only `wait` and `wait_blocking` take it, by value");
        let summary = rx.blocking_recv().unwrap_or_else(|_| self.lost());
        self.shutdown();
        summary
    }

    /// The summary when the run's task ended without sending one (a panic in this module).
    fn lost(&self) -> RunSummary {
        RunSummary::not_started(
            self.run_id(),
            &self.monitor.shared.pipeline,
            false,
            chrono::Utc::now(),
            "the run's task ended without a summary".into(),
        )
    }

    fn shutdown(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        // Dropping a runtime blocks until its tasks stop, which is not allowed inside another
        // runtime; the background shutdown is allowed anywhere.
        self.shutdown();
    }
}
