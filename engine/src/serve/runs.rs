//! Runs started through the API: a queue with a limit on concurrent runs and at most one
//! running replay per target stream; each run goes through [`crate::runtime::start_with`], the
//! same engine as `run`; state, progress and the final summary as data; cancel; the history.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use flux_stages::registry::StageConfig;
use serde::Serialize;

use super::api::ApiError;
use super::history::{History, RunRecord, RunStatus};
use super::output::{OutputTail, SharedOutput};
use super::progress::{Progress, progress};
use crate::compile::Pipeline;
use crate::runtime::{self, Monitor};

/// The most runs kept in memory (the oldest finished ones are forgotten first).
const MAX_KEPT: usize = 1000;
/// The most lines of a run's log.
const MAX_LOG: usize = 200;

/// A run as the API shows it: its record plus, while in memory, progress and output.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    /// The record (also what the history file holds).
    #[serde(flatten)]
    pub record: RunRecord,
    /// Live progress (also after the end, while the server keeps the run).
    pub progress: Option<Progress>,
    /// What its `file` sinks wrote to standard output (see [`output`]).
    pub output: Option<OutputTail>,
}

pub(super) struct Entry {
    pub(super) record: RunRecord,
    pub(super) pipeline: Option<Pipeline>,
    pub(super) monitor: Option<Monitor>,
    pub(super) output: SharedOutput,
}

impl Entry {
    fn view(&self) -> RunView {
        let out = self.output.lock().map(|o| o.clone()).unwrap_or_default();
        RunView {
            record: self.record.clone(),
            progress: self.monitor.as_ref().map(|m| progress(m.snapshot())),
            output: (out.total > 0).then_some(out),
        }
    }

    pub(super) fn log(&mut self, line: impl Into<String>) {
        let stamp = now();
        self.record.log.push(format!("{stamp} {}", line.into()));
        if self.record.log.len() > MAX_LOG {
            self.record.log.remove(0);
        }
    }
}

/// What is needed to submit a run.
pub struct Submit {
    /// The pipeline file's name.
    pub pipeline_file: String,
    /// The compiled pipeline.
    pub pipeline: Pipeline,
    /// The variables given.
    pub vars: BTreeMap<String, String>,
    /// A dry run.
    pub dry_run: bool,
    /// Who asks.
    pub who: String,
}

/// Every run of this server.
pub struct Runs {
    inner: Mutex<Inner>,
    history: Option<History>,
    pub(super) max_running: usize,
}

pub(super) struct Inner {
    pub(super) runs: BTreeMap<String, Entry>,
    /// Ids in submission order.
    pub(super) order: VecDeque<String>,
}

pub(super) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The streams a pipeline's `kinesis` sinks write.
pub fn targets(p: &Pipeline) -> Vec<String> {
    let mut t: Vec<String> = p
        .graph
        .node_weights()
        .filter_map(|n| match &n.config {
            StageConfig::KinesisSink(c) => Some(c.stream_name().to_owned()),
            _ => None,
        })
        .collect();
    t.sort();
    t.dedup();
    t
}

impl Runs {
    /// The runs of the history (in-flight ones shown as interrupted), with a limit of
    /// `max_running` runs at once.
    pub fn new(history: Option<History>, max_running: usize) -> Arc<Runs> {
        let mut inner = Inner {
            runs: BTreeMap::new(),
            order: VecDeque::new(),
        };
        for record in history.as_ref().map(History::load).unwrap_or_default() {
            inner.order.push_back(record.id.clone());
            inner.runs.insert(
                record.id.clone(),
                Entry {
                    record,
                    pipeline: None,
                    monitor: None,
                    output: SharedOutput::default(),
                },
            );
        }
        Arc::new(Runs {
            inner: Mutex::new(inner),
            history,
            max_running: max_running.max(1),
        })
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn save(&self, record: &RunRecord) {
        if let Some(h) = &self.history
            && let Err(e) = h.save(record)
        {
            tracing::warn!(run_id = %record.id, "history: cannot save the run: {e}");
        }
    }

    /// Writes an audit line (JSON): to the log at INFO and to the state directory's audit log.
    pub fn audit(&self, event: &str, record: &RunRecord, who: &str) {
        let line = serde_json::json!({
            "audit": event,
            "at": now(),
            "who": who,
            "run_id": record.id,
            "pipeline": record.pipeline,
            "vars": record.vars,
            "dry_run": record.dry_run,
            "targets": record.targets,
        })
        .to_string();
        tracing::info!(target: "flux_engine::audit", "{line}");
        if let Some(h) = &self.history {
            h.audit(&line);
        }
    }

    /// Queues a run and starts what can start; returns its view.
    pub fn submit(self: &Arc<Self>, s: Submit) -> RunView {
        let targets = if s.dry_run {
            Vec::new()
        } else {
            targets(&s.pipeline)
        };
        let view = {
            let mut inner = self.lock();
            let mut id = runtime::new_run_id();
            while inner.runs.contains_key(&id) {
                id = runtime::new_run_id();
            }
            let mut entry = Entry {
                record: RunRecord {
                    id: id.clone(),
                    pipeline: s.pipeline_file,
                    name: s.pipeline.name.clone(),
                    vars: s.vars,
                    dry_run: s.dry_run,
                    who: s.who.clone(),
                    state: RunStatus::Queued,
                    created_at: now(),
                    started_at: None,
                    finished_at: None,
                    targets,
                    error: None,
                    cancelled_by: None,
                    summary: None,
                    log: Vec::new(),
                },
                pipeline: Some(s.pipeline),
                monitor: None,
                output: SharedOutput::default(),
            };
            entry.log(format!("queued by {}", s.who));
            self.audit("run_started", &entry.record, &s.who);
            self.save(&entry.record);
            let view = entry.view();
            inner.order.push_back(id.clone());
            inner.runs.insert(id, entry);
            forget_old(&mut inner);
            view
        };
        self.schedule();
        view
    }

    /// Every run, newest first.
    pub fn list(&self) -> Vec<RunView> {
        let inner = self.lock();
        inner
            .order
            .iter()
            .rev()
            .filter_map(|id| inner.runs.get(id))
            .map(|e| {
                let mut v = e.view();
                v.output = None;
                v.record.log.clear();
                v
            })
            .collect()
    }

    /// One run.
    pub fn get(&self, id: &str) -> Result<RunView, ApiError> {
        self.lock()
            .runs
            .get(id)
            .map(Entry::view)
            .ok_or_else(|| ApiError::not_found(format!("no run {id}")))
    }

    /// How many runs are in each state.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        let inner = self.lock();
        let mut out: BTreeMap<&'static str, u64> =
            RunStatus::ALL.iter().map(|s| (s.name(), 0)).collect();
        for e in inner.runs.values() {
            *out.entry(e.record.state.name()).or_default() += 1;
        }
        out
    }

    /// Snapshots of the runs in flight.
    pub fn snapshots(&self) -> Vec<crate::runtime::Snapshot> {
        let inner = self.lock();
        inner
            .runs
            .values()
            .filter(|e| e.record.state == RunStatus::Running)
            .filter_map(|e| e.monitor.as_ref().map(Monitor::snapshot))
            .collect()
    }

    /// Cancels a run: a queued one ends at once; a running one stops in order (a replay stops
    /// sending within the PutRecords call in flight). Cancelling an ended run is a 409.
    pub fn cancel(self: &Arc<Self>, id: &str, who: &str) -> Result<RunView, ApiError> {
        let view = {
            let mut inner = self.lock();
            let entry = inner
                .runs
                .get_mut(id)
                .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
            if entry.record.state.is_final() {
                return Err(ApiError::conflict(format!(
                    "run {id} has already ended ({})",
                    entry.record.state.name()
                )));
            }
            if entry.record.cancelled_by.is_none() {
                entry.record.cancelled_by = Some(who.to_owned());
                entry.log(format!("cancel requested by {who}"));
                self.audit("run_cancelled", &entry.record, who);
            }
            match entry.record.state {
                RunStatus::Queued => {
                    entry.record.state = RunStatus::Cancelled;
                    entry.record.finished_at = Some(now());
                    entry.pipeline = None;
                }
                _ => {
                    if let Some(m) = &entry.monitor {
                        m.cancel();
                    }
                }
            }
            self.save(&entry.record);
            entry.view()
        };
        self.schedule();
        Ok(view)
    }

    /// Cancels every run (the server is stopping) and waits until none is in flight.
    pub async fn cancel_all(self: &Arc<Self>) {
        let ids: Vec<String> = {
            let inner = self.lock();
            inner
                .runs
                .values()
                .filter(|e| !e.record.state.is_final())
                .map(|e| e.record.id.clone())
                .collect()
        };
        for id in ids {
            let _ = self.cancel(&id, "server-shutdown");
        }
        loop {
            let busy = self
                .lock()
                .runs
                .values()
                .any(|e| e.record.state == RunStatus::Running);
            if !busy {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// Forgets the oldest ended runs past [`MAX_KEPT`] (their history files stay).
fn forget_old(inner: &mut Inner) {
    while inner.order.len() > MAX_KEPT {
        let Some(pos) = inner
            .order
            .iter()
            .position(|id| inner.runs.get(id).is_none_or(|e| e.record.state.is_final()))
        else {
            return;
        };
        if let Some(id) = inner.order.remove(pos) {
            inner.runs.remove(&id);
        }
    }
}
