//! What `run` says at its end, from the run's summary as data: the summary table and the
//! outcome line as text, or as JSON events with `--log-format json`; and the summary itself as
//! one JSON object with `--summary-json` (a file, written atomically, or standard error's last
//! line).

use std::path::{Path, PathBuf};

use super::{EXIT_INTERRUPTED, EXIT_OK, EXIT_OUTPUT_CLOSED, EXIT_RUNTIME, LogFormat};
use crate::runtime::{Outcome, RunSummary, table};

/// The `tracing` target of the end-of-run events in JSON mode; always enabled at INFO (see
/// `init_logging`), as the table is always printed in text mode.
pub(crate) const REPORT_TARGET: &str = "flux_engine::report";

/// Says that the first Ctrl-C or SIGTERM arrived.
pub(crate) fn interrupting(format: LogFormat) {
    match format {
        LogFormat::Text => {
            errln!("interrupted: draining what was read; press Ctrl-C again to abort")
        }
        LogFormat::Json => tracing::warn!(
            target: REPORT_TARGET,
            event = "interrupting",
            "interrupted: draining what was read; press Ctrl-C again to abort"
        ),
    }
}

/// Says that a second signal aborts the run.
pub(crate) fn aborted(format: LogFormat) {
    match format {
        LogFormat::Text => errln!("aborted"),
        LogFormat::Json => tracing::error!(target: REPORT_TARGET, event = "aborted", "aborted"),
    }
}

/// Reports an error that ends the command (`error: …` in text mode).
pub(crate) fn error(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => errln!("error: {message}"),
        LogFormat::Json => tracing::error!(target: REPORT_TARGET, event = "error", "{message}"),
    }
}

/// Reports a finished run: the table, or one event per stage, per report line and for the
/// run (nothing when its stages could not be built).
pub(crate) fn summary(format: LogFormat, summary: &RunSummary) {
    if summary.stages.is_empty() {
        return;
    }
    match format {
        LogFormat::Text => err!("{}", table::summary(summary)),
        LogFormat::Json => summary_events(summary),
    }
}

/// Reports how a run ended (`error: …`, `interrupted: …`, `stopped: …`, or nothing for a
/// success) and returns the exit code.
pub(crate) fn outcome(format: LogFormat, summary: &RunSummary) -> i32 {
    let (code, line) = match summary.outcome {
        // As a Unix tool whose reader went away (`| head`): no error, the shell's code.
        Outcome::OutputClosed => (
            EXIT_OUTPUT_CLOSED,
            Some("stopped: standard output was closed by its reader"),
        ),
        Outcome::Failed => {
            error(format, summary.error.as_deref().unwrap_or("the run failed"));
            (EXIT_RUNTIME, None)
        }
        Outcome::Interrupted => (
            EXIT_INTERRUPTED,
            Some("interrupted: the run stopped early; everything read was committed"),
        ),
        Outcome::Succeeded => (EXIT_OK, None),
    };
    if let Some(line) = line {
        match format {
            LogFormat::Text => errln!("{line}"),
            LogFormat::Json => tracing::warn!(
                target: REPORT_TARGET,
                event = outcome_name(summary.outcome),
                "{line}"
            ),
        }
    }
    code
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed => "failed",
        Outcome::Interrupted => "interrupted",
        Outcome::OutputClosed => "output_closed",
    }
}

/// The summary table as events: `stage_summary` per stage (counters as fields),
/// `stage_report` per line a stage reported, then `run_summary`.
fn summary_events(summary: &RunSummary) {
    for s in &summary.stages {
        let c = &s.counters;
        tracing::info!(
            target: REPORT_TARGET,
            event = "stage_summary",
            stage = %s.id,
            role = s.role.noun(),
            r#type = %s.kind,
            records_in = c.records_in,
            records_out = c.records_out,
            bytes_in = c.bytes_in,
            bytes_out = c.bytes_out,
            dead_lettered = c.dead_lettered,
            skipped = c.skipped,
            throttled = c.throttled,
            retried = c.retried,
            delivered = c.delivered,
            seconds = s.seconds,
            "stage {} finished",
            s.id
        );
    }
    for s in &summary.stages {
        for l in &s.report {
            tracing::info!(target: REPORT_TARGET, event = "stage_report", stage = %s.id, "{l}");
        }
    }
    tracing::info!(
        target: REPORT_TARGET,
        event = "run_summary",
        run_id = %summary.run_id,
        pipeline = %summary.pipeline,
        outcome = outcome_name(summary.outcome),
        dry_run = summary.dry_run,
        seconds = summary.seconds,
        manifests = summary.manifests.len(),
        "run {}",
        outcome_name(summary.outcome)
    );
}

/// Where `--summary-json` writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SummaryJson {
    /// `-`: one line on standard error, the last thing the command prints.
    Stderr,
    /// A file, replaced atomically.
    File(PathBuf),
}

impl SummaryJson {
    /// Checks the option's value before the run starts: the folder must exist and the path
    /// must not be a folder. The message names the option and the path.
    pub(crate) fn parse(arg: &str) -> Result<SummaryJson, String> {
        if arg == "-" {
            return Ok(SummaryJson::Stderr);
        }
        let fail = |why: &str| Err(format!("--summary-json {arg}: {why}"));
        if arg.is_empty() {
            return fail("expected a file path, or - for standard error");
        }
        let path = PathBuf::from(arg);
        if path.is_dir() {
            return fail("is a directory");
        }
        let dir = parent_of(&path);
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => Ok(SummaryJson::File(path)),
            Ok(_) => fail(&format!("{} is not a directory", dir.display())),
            Err(e) => fail(&format!("cannot use folder {}: {e}", dir.display())),
        }
    }

    /// Writes the summary: a temporary file beside the target renamed over it, so a reader
    /// never sees half a summary.
    pub(crate) fn write(&self, summary: &RunSummary) -> Result<(), String> {
        let json = summary.to_json_line();
        match self {
            SummaryJson::Stderr => {
                errln!("{json}");
                Ok(())
            }
            SummaryJson::File(path) => {
                let fail = |e: &dyn std::fmt::Display| {
                    format!("--summary-json {}: cannot write: {e}", path.display())
                };
                let mut tmp = tempfile::Builder::new()
                    .prefix(".flux-summary-")
                    .suffix(".tmp")
                    .tempfile_in(parent_of(path))
                    .map_err(|e| fail(&e))?;
                std::io::Write::write_all(&mut tmp, format!("{json}\n").as_bytes())
                    .and_then(|()| tmp.as_file().sync_all())
                    .map_err(|e| fail(&e))?;
                tmp.persist(path).map_err(|e| fail(&e.error))?;
                Ok(())
            }
        }
    }
}

/// The folder a path is in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_json_paths_are_checked_before_the_run() {
        assert_eq!(SummaryJson::parse("-"), Ok(SummaryJson::Stderr));
        let dir = tempfile::tempdir().unwrap();
        let ok = dir.path().join("s.json");
        assert_eq!(
            SummaryJson::parse(ok.to_str().unwrap()),
            Ok(SummaryJson::File(ok.clone()))
        );
        let e = SummaryJson::parse(dir.path().to_str().unwrap()).unwrap_err();
        assert!(
            e.starts_with("--summary-json ") && e.ends_with("is a directory"),
            "{e}"
        );
        let missing = dir.path().join("no/such/s.json");
        let e = SummaryJson::parse(missing.to_str().unwrap()).unwrap_err();
        assert!(e.contains("cannot use folder"), "{e}");
        assert!(SummaryJson::parse("").is_err());
        assert_eq!(
            SummaryJson::parse("s.json"),
            Ok(SummaryJson::File("s.json".into()))
        );
    }

    #[test]
    fn the_summary_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        std::fs::write(&path, "old").unwrap();
        let summary = RunSummary::not_started("r", "p", false, chrono::Utc::now(), "e".into());
        SummaryJson::File(path.clone()).write(&summary).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(v["run_id"], "r");
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file is left");
    }
}
