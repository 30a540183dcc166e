//! Starting queued runs when they fit (the limit on runs at once, one replay per target
//! stream) and running each through [`crate::runtime::start_with`] to its end.

use std::sync::Arc;

use super::history::RunStatus;
use super::output::{self, SharedOutput};
use super::runs::{Runs, now};
use crate::compile::Pipeline;
use crate::runtime::{self, Outcome, RunOptions, RunSummary};

impl Runs {
    /// Starts the queued runs that fit: fewer than the limit running, and no running replay
    /// into any of their target streams. Runs that must wait keep their place.
    pub(super) fn schedule(self: &Arc<Self>) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let mut running = inner
            .runs
            .values()
            .filter(|e| e.record.state == RunStatus::Running)
            .count();
        let mut busy: Vec<String> = inner
            .runs
            .values()
            .filter(|e| e.record.state == RunStatus::Running)
            .flat_map(|e| e.record.targets.iter().cloned())
            .collect();
        for id in inner.order.iter() {
            if running >= self.max_running {
                break;
            }
            let Some(entry) = inner.runs.get_mut(id) else {
                continue;
            };
            if entry.record.state != RunStatus::Queued
                || entry.record.targets.iter().any(|t| busy.contains(t))
            {
                continue;
            }
            let Some(pipeline) = entry.pipeline.take() else {
                continue;
            };
            entry.record.state = RunStatus::Running;
            entry.record.started_at = Some(now());
            entry.log("started");
            self.save(&entry.record);
            running += 1;
            busy.extend(entry.record.targets.iter().cloned());
            let runs = self.clone();
            let id = id.clone();
            let dry_run = entry.record.dry_run;
            let out = entry.output.clone();
            tokio::spawn(async move { runs.execute(id, pipeline, dry_run, out).await });
        }
    }

    /// Runs one pipeline to its end and records how it ended.
    async fn execute(
        self: Arc<Self>,
        id: String,
        pipeline: Pipeline,
        dry_run: bool,
        out: SharedOutput,
    ) {
        let started_at = chrono::Utc::now();
        let name = pipeline.name.clone();
        let run_id = id.clone();
        let started = tokio::task::spawn_blocking(move || {
            let provided = output::provided(&pipeline, &out, dry_run);
            runtime::start_with(
                &pipeline,
                RunOptions {
                    run_id,
                    dry_run,
                    offline_shards: None,
                },
                provided,
            )
        })
        .await;
        let handle = match started {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                let s = RunSummary::not_started(&id, &name, dry_run, started_at, e.to_string());
                return self.finish(&id, s);
            }
            Err(e) => {
                let s = RunSummary::not_started(&id, &name, dry_run, started_at, e.to_string());
                return self.finish(&id, s);
            }
        };
        {
            let mut inner = self.lock();
            if let Some(entry) = inner.runs.get_mut(&id) {
                entry.monitor = Some(handle.monitor());
                if entry.record.cancelled_by.is_some() {
                    handle.cancel();
                }
            }
        }
        let summary = handle.wait().await;
        self.finish(&id, summary);
    }

    fn finish(self: &Arc<Self>, id: &str, summary: RunSummary) {
        {
            let mut inner = self.lock();
            if let Some(entry) = inner.runs.get_mut(id) {
                entry.record.state = match summary.outcome {
                    Outcome::Succeeded => RunStatus::Succeeded,
                    Outcome::Failed | Outcome::OutputClosed => RunStatus::Failed,
                    Outcome::Interrupted => RunStatus::Cancelled,
                };
                entry.record.finished_at = Some(now());
                entry.record.error = summary.error.clone();
                for s in &summary.stages {
                    for l in s.report.iter().chain(&s.plan) {
                        entry.log(format!("{}: {l}", s.id));
                    }
                }
                match &summary.error {
                    Some(e) => entry.log(format!("error: {e}")),
                    None => entry.log(format!("ended: {}", entry.record.state.name())),
                }
                entry.record.summary = serde_json::to_value(&summary).ok();
                tracing::info!(run_id = %id, outcome = entry.record.state.name(), "run ended");
                self.save(&entry.record);
            }
        }
        self.schedule();
    }
}
