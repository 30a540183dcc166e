//! A run's counters and its final summary as data: what the `run` command prints as a table,
//! writes with `--summary-json`, and what an embedding program receives from
//! [`RunHandle::wait`](super::RunHandle::wait). The JSON form is documented in
//! docs/running.md ("The summary as JSON"); a field added here is added there.

use flux_stages::registry::Role;
use flux_stages::stage::StageMetrics;
use serde::{Serialize, Serializer};

/// Version of the summary's JSON layout; raised when a field changes meaning or goes away
/// (not when one is added).
pub const SUMMARY_VERSION: u32 = 1;

/// One stage's counters at one moment, as numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Records received from upstream (sources: records read and sent on).
    pub records_in: u64,
    /// Records sent downstream (sinks: records accepted).
    pub records_out: u64,
    /// Bytes received, measured as payload plus partition key plus 64 bytes per record.
    pub bytes_in: u64,
    /// Bytes sent on (sinks: accepted), by the same measure.
    pub bytes_out: u64,
    /// Records sent to the stage's `dead_letter` port.
    pub dead_lettered: u64,
    /// Records skipped on purpose and counted (outside bounds, ruled out by a pushed-down
    /// filter, left unsent by a stopped replay).
    pub skipped: u64,
    /// Sinks: records the destination refused for lack of throughput (and that were retried).
    pub throttled: u64,
    /// Sinks: records sent again after a failure.
    pub retried: u64,
    /// Sinks that queue and deliver later (`kinesis`): records delivered; 0 for others.
    pub delivered: u64,
}

impl Counters {
    /// Reads a stage's live counters.
    pub fn read(m: &StageMetrics) -> Counters {
        Counters {
            records_in: StageMetrics::get(&m.records_in),
            records_out: StageMetrics::get(&m.records_out),
            bytes_in: StageMetrics::get(&m.bytes_in),
            bytes_out: StageMetrics::get(&m.bytes_out),
            dead_lettered: StageMetrics::get(&m.dead_lettered),
            skipped: StageMetrics::get(&m.skipped),
            throttled: StageMetrics::get(&m.throttled),
            retried: StageMetrics::get(&m.retried),
            delivered: StageMetrics::get(&m.delivered),
        }
    }
}

/// Serializes a [`Role`] as its singular noun (`source`, `transform`, `sink`).
pub(crate) fn role_name<S: Serializer>(role: &Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(role.noun())
}

/// What one stage did in a run.
#[derive(Debug, Clone, Serialize)]
pub struct StageSummary {
    /// Its id.
    pub id: String,
    /// Its role.
    #[serde(serialize_with = "role_name")]
    pub role: Role,
    /// Its `type`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its counters at its end (flattened into the stage's JSON object).
    #[serde(flatten)]
    pub counters: Counters,
    /// Seconds from the start of the run until the stage finished.
    pub seconds: f64,
    /// Lines the stage reported at its end (sinks: what they wrote).
    pub report: Vec<String>,
    /// Run manifests the stage wrote, as URLs (the `archive` sink: one per stream).
    pub manifests: Vec<String>,
    /// A dry run's plan (see [`flux_stages::stage::SinkReport::plan`]): it shows payloads, so
    /// it is not part of the JSON summary.
    #[serde(skip)]
    pub plan: Vec<String>,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every stage finished.
    Succeeded,
    /// A stage failed or could not be built; [`RunSummary::error`] says which and why.
    Failed,
    /// Cancelled ([`RunHandle::cancel`](super::RunHandle::cancel), Ctrl-C, SIGTERM): the
    /// sources stopped, what they had sent was finished and committed.
    Interrupted,
    /// A `file` sink writing to standard output stopped because its reader went away.
    OutputClosed,
}

/// The final summary of a run, as data.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// [`SUMMARY_VERSION`].
    pub version: u32,
    /// The run's id.
    pub run_id: String,
    /// The pipeline's name.
    pub pipeline: String,
    /// How it ended.
    pub outcome: Outcome,
    /// The error that ended it, naming the stage, when it failed (also set for
    /// [`Outcome::OutputClosed`]).
    pub error: Option<String>,
    /// A dry run (`--dry-run`): nothing was written.
    pub dry_run: bool,
    /// When it started (UTC, RFC 3339 with milliseconds).
    pub started_at: String,
    /// When it ended (UTC, RFC 3339 with milliseconds).
    pub finished_at: String,
    /// Wall time in seconds.
    pub seconds: f64,
    /// One entry per stage in graph order (sources, transforms, sinks, each in file order);
    /// empty when the stages could not be built.
    pub stages: Vec<StageSummary>,
    /// Every run manifest written, as URLs (all stages' [`StageSummary::manifests`]).
    pub manifests: Vec<String>,
}

/// A time as the summary writes it.
pub(crate) fn timestamp(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl RunSummary {
    /// The summary of a run whose stages could not be built: failed with `error`, no stages.
    pub fn not_started(
        run_id: &str,
        pipeline: &str,
        dry_run: bool,
        started_at: chrono::DateTime<chrono::Utc>,
        error: String,
    ) -> RunSummary {
        let now = chrono::Utc::now();
        RunSummary {
            version: SUMMARY_VERSION,
            run_id: run_id.to_owned(),
            pipeline: pipeline.to_owned(),
            outcome: Outcome::Failed,
            error: Some(error),
            dry_run,
            started_at: timestamp(started_at),
            finished_at: timestamp(now),
            seconds: (now - started_at).num_milliseconds().max(0) as f64 / 1000.0,
            stages: Vec::new(),
            manifests: Vec::new(),
        }
    }

    /// One line of JSON (no line breaks inside).
    pub fn to_json_line(&self) -> String {
        // Every field serializes (strings, numbers, enums without data).
        serde_json::to_string(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_has_the_documented_fields() {
        let summary = RunSummary {
            stages: vec![StageSummary {
                id: "archive".into(),
                role: Role::Sink,
                kind: "archive".into(),
                counters: Counters {
                    records_in: 3,
                    records_out: 3,
                    ..Default::default()
                },
                seconds: 0.5,
                report: vec!["stream s: archived 3 records".into()],
                manifests: vec!["file://./a/_flux/runs/x.json".into()],
                plan: vec!["sample: secret payload".into()],
            }],
            manifests: vec!["file://./a/_flux/runs/x.json".into()],
            ..RunSummary::not_started("r1", "p", false, chrono::Utc::now(), "e".into())
        };
        let v: serde_json::Value = serde_json::from_str(&summary.to_json_line()).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["outcome"], "failed");
        assert_eq!(v["run_id"], "r1");
        let stage = &v["stages"][0];
        assert_eq!(stage["role"], "sink");
        assert_eq!(stage["type"], "archive");
        assert_eq!(stage["records_in"], 3);
        assert_eq!(stage["delivered"], 0);
        assert_eq!(stage["manifests"][0], "file://./a/_flux/runs/x.json");
        assert!(!summary.to_json_line().contains('\n'));
    }
}
