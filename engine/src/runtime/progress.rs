//! Progress while a pipeline runs: a bar per source on a terminal (records, bytes, rate), plain
//! periodic log lines otherwise, and the final per-stage summary table.

use std::fmt::Write;
use std::time::{Duration, Instant};

use flux_stages::registry::Role;
use flux_stages::stage::StageMetrics;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::{LiveMetrics, RunReport};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on the terminal (standard error).
    Bars,
    /// A log line per source every `interval`.
    Log(Duration),
    /// Nothing until the summary.
    Off,
}

/// A running progress reporter; [`Reporter::finish`] stops it.
pub struct Reporter {
    task: Option<JoinHandle<()>>,
    bars: Option<MultiProgress>,
}

impl Reporter {
    /// Starts reporting on the sources of `live`.
    pub fn start(live: LiveMetrics, mode: Mode) -> Reporter {
        let sources: Vec<_> = live
            .stages
            .into_iter()
            .filter(|(_, role, _)| *role == Role::Source)
            .collect();
        match mode {
            Mode::Off => Reporter {
                task: None,
                bars: None,
            },
            Mode::Log(interval) => {
                let task = tokio::spawn(async move {
                    let started = Instant::now();
                    let mut tick = tokio::time::interval(interval);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        for (id, _, m) in &sources {
                            tracing::info!(source = %id, "{}", line(m, started.elapsed()));
                        }
                    }
                });
                Reporter {
                    task: Some(task),
                    bars: None,
                }
            }
            Mode::Bars => {
                let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
                let style = ProgressStyle::with_template("{spinner} {prefix:<16} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner());
                let bars: Vec<_> = sources
                    .iter()
                    .map(|(id, _, _)| {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(style.clone());
                        bar.set_prefix(id.clone());
                        bar
                    })
                    .collect();
                let task = tokio::spawn(async move {
                    let started = Instant::now();
                    let mut tick = tokio::time::interval(Duration::from_millis(200));
                    loop {
                        tick.tick().await;
                        for ((_, _, m), bar) in sources.iter().zip(&bars) {
                            bar.set_message(line(m, started.elapsed()));
                            bar.tick();
                        }
                    }
                });
                Reporter {
                    task: Some(task),
                    bars: Some(multi),
                }
            }
        }
    }

    /// Stops reporting and clears the bars.
    pub fn finish(mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
        if let Some(m) = self.bars.take() {
            let _ = m.clear();
        }
    }
}

fn line(m: &StageMetrics, elapsed: Duration) -> String {
    let records = StageMetrics::get(&m.records_out);
    let bytes = StageMetrics::get(&m.bytes_out);
    let secs = elapsed.as_secs_f64().max(0.001);
    format!(
        "{records} records, {}, {:.0} records/s",
        human_bytes(bytes),
        records as f64 / secs
    )
}

/// Bytes with a binary unit, e.g. `12.3 MiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The end-of-run table: records in/out, bytes, dead letters and seconds per stage, then what
/// each sink reported.
pub fn summary(report: &RunReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<10} {:<20} {:<9} {:>12} {:>12} {:>11} {:>11} {:>8} {:>10} {:>8}",
        "role",
        "stage",
        "type",
        "records in",
        "records out",
        "bytes in",
        "bytes out",
        "dead",
        "skipped",
        "seconds"
    );
    for s in &report.stages {
        let _ = writeln!(
            out,
            "{:<10} {:<20} {:<9} {:>12} {:>12} {:>11} {:>11} {:>8} {:>10} {:>8.2}",
            s.role.noun(),
            s.id,
            s.kind,
            s.records_in,
            s.records_out,
            human_bytes(s.bytes_in),
            human_bytes(s.bytes_out),
            s.dead_lettered,
            s.skipped,
            s.seconds
        );
    }
    for s in &report.stages {
        for l in &s.report {
            let _ = writeln!(out, "{}: {l}", s.id);
        }
    }
    let _ = writeln!(out, "total {:.2}s", report.seconds);
    out
}
