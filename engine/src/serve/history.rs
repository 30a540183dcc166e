//! The run history under `--state-dir`: one JSON file per run (`runs/<id>.json`), written to a
//! temporary file beside it and renamed over it, so a reader never sees half of one; and the
//! audit log (`audit.jsonl`), one JSON line per run started or cancelled.
//!
//! At start, a run whose file says `queued` or `running` was in flight when the server stopped:
//! it is shown (and rewritten) as `interrupted`, never as running.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The most runs read back at start (the newest).
const MAX_LOADED: usize = 1000;

/// Where a run is, as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Waiting for a slot (the concurrency limit, or a replay into the same stream).
    Queued,
    /// Its stages are running.
    Running,
    /// Every stage finished.
    Succeeded,
    /// A stage failed, or the run could not start.
    Failed,
    /// Cancelled through the API (or the server was stopped): it stopped in order.
    Cancelled,
    /// The server died while the run was in flight.
    Interrupted,
}

impl RunStatus {
    /// True once the run has ended.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    /// Its name as in JSON.
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Every status.
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
        RunStatus::Interrupted,
    ];
}

/// What is kept of a run: in memory, in its history file and in the API's answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRecord {
    /// The run id.
    pub id: String,
    /// The pipeline file's name in the pipelines directory.
    pub pipeline: String,
    /// The pipeline's `[pipeline] name`.
    pub name: String,
    /// The variables it was started with.
    pub vars: BTreeMap<String, String>,
    /// A dry run.
    pub dry_run: bool,
    /// Who started it (the token's name; `local` without tokens).
    pub who: String,
    /// Where it is.
    pub state: RunStatus,
    /// When it was submitted (RFC 3339).
    pub created_at: String,
    /// When its stages started.
    pub started_at: Option<String>,
    /// When it ended.
    pub finished_at: Option<String>,
    /// The Kinesis streams it writes (its `kinesis` sinks), empty for a dry run.
    pub targets: Vec<String>,
    /// Why it failed or could not start.
    pub error: Option<String>,
    /// Who asked to cancel it.
    pub cancelled_by: Option<String>,
    /// The final summary (as `run --summary-json` writes it), once it ended.
    pub summary: Option<serde_json::Value>,
    /// What happened to it, line by line (the newest last; bounded).
    pub log: Vec<String>,
}

/// The history directory and audit log.
#[derive(Debug, Clone)]
pub struct History {
    runs: PathBuf,
    audit: PathBuf,
}

impl History {
    /// Opens (creating) `<state_dir>/runs`.
    pub fn open(state_dir: &str) -> Result<History, String> {
        let root = Path::new(state_dir);
        let runs = root.join("runs");
        std::fs::create_dir_all(&runs).map_err(|e| {
            format!(
                "--state-dir {state_dir}: cannot create {}: {e}",
                runs.display()
            )
        })?;
        Ok(History {
            runs,
            audit: root.join("audit.jsonl"),
        })
    }

    /// Every run recorded, oldest first; in-flight ones become `interrupted` (and are saved so).
    pub fn load(&self) -> Vec<RunRecord> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.runs)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "json")
                            && p.file_stem()
                                .is_some_and(|s| super::api::valid_run_id(&s.to_string_lossy()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        let skip = names.len().saturating_sub(MAX_LOADED);
        let mut out = Vec::new();
        for path in names.into_iter().skip(skip) {
            let read = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<RunRecord>(&b).map_err(|e| e.to_string()));
            match read {
                Ok(mut r) => {
                    if !r.state.is_final() {
                        r.state = RunStatus::Interrupted;
                        r.log.push(
                            "interrupted: the server stopped while this run was in flight".into(),
                        );
                        if let Err(e) = self.save(&r) {
                            tracing::warn!("history: cannot update {}: {e}", path.display());
                        }
                    }
                    out.push(r);
                }
                Err(e) => tracing::warn!("history: skipping {}: {e}", path.display()),
            }
        }
        out
    }

    /// Writes a run's file atomically (temporary file, flushed, renamed over the old one).
    pub fn save(&self, run: &RunRecord) -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(".run-")
            .suffix(".tmp")
            .tempfile_in(&self.runs)?;
        serde_json::to_writer_pretty(&mut tmp, run)?;
        tmp.write_all(b"\n")?;
        tmp.as_file().sync_all()?;
        tmp.persist(self.runs.join(format!("{}.json", run.id)))
            .map_err(|e| e.error)?;
        Ok(())
    }

    /// Appends one line to the audit log.
    pub fn audit(&self, line: &str) {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.audit)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            tracing::warn!("audit log {}: {e}", self.audit.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, state: RunStatus) -> RunRecord {
        RunRecord {
            id: id.into(),
            pipeline: "p.toml".into(),
            name: "p".into(),
            vars: BTreeMap::new(),
            dry_run: false,
            who: "local".into(),
            state,
            created_at: "2026-11-25T10:00:00.000Z".into(),
            started_at: None,
            finished_at: None,
            targets: vec![],
            error: None,
            cancelled_by: None,
            summary: None,
            log: vec![],
        }
    }

    #[test]
    fn in_flight_runs_come_back_interrupted() {
        let dir = tempfile::tempdir().unwrap();
        let h = History::open(dir.path().to_str().unwrap()).unwrap();
        h.save(&record("20261125T100000Z-00000001", RunStatus::Succeeded))
            .unwrap();
        h.save(&record("20261125T100001Z-00000002", RunStatus::Running))
            .unwrap();
        std::fs::write(dir.path().join("runs/garbage.json"), "{").unwrap();
        let loaded = h.load();
        assert_eq!(loaded.len(), 2);
        assert_eq!(loaded[0].state, RunStatus::Succeeded);
        assert_eq!(loaded[1].state, RunStatus::Interrupted);
        assert_eq!(h.load()[1].state, RunStatus::Interrupted, "saved so");
        let leftovers = std::fs::read_dir(dir.path().join("runs"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".run-"))
            .count();
        assert_eq!(leftovers, 0);
    }
}
