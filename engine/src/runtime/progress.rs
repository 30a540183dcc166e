//! Progress while a pipeline runs: a bar per source and per sink on a terminal, plain periodic
//! log lines otherwise, and the final per-stage summary table. A source shows records, bytes and
//! rate; a sink shows what it wrote, its recent rate, what was throttled and retried, and once
//! the number of records it will receive is known (a `compact` upstream announces its winners)
//! the share done and an ETA.

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
    /// Starts reporting on the sources and sinks of `live`.
    pub fn start(live: LiveMetrics, mode: Mode) -> Reporter {
        let shown: Vec<usize> = (0..live.stages.len())
            .filter(|&i| matches!(live.stages[i].role, Role::Source | Role::Sink))
            .collect();
        match mode {
            Mode::Off => Reporter {
                task: None,
                bars: None,
            },
            Mode::Log(interval) => {
                let task = tokio::spawn(async move {
                    let mut lines = Lines::new(live, shown);
                    let mut tick = tokio::time::interval(interval);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        for (id, text) in lines.next() {
                            tracing::info!(stage = %id, "{text}");
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
                let bars: Vec<_> = shown
                    .iter()
                    .map(|&i| {
                        let bar = multi.add(ProgressBar::new_spinner());
                        bar.set_style(style.clone());
                        bar.set_prefix(live.stages[i].id.clone());
                        bar
                    })
                    .collect();
                let task = tokio::spawn(async move {
                    let mut lines = Lines::new(live, shown);
                    let mut tick = tokio::time::interval(Duration::from_millis(200));
                    loop {
                        tick.tick().await;
                        for ((_, text), bar) in lines.next().into_iter().zip(&bars) {
                            bar.set_message(text);
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

/// How far back the rate behind an ETA looks.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// Makes the progress lines of the shown stages, keeping each sink's recent history for its
/// rate.
struct Lines {
    live: LiveMetrics,
    shown: Vec<usize>,
    started: Instant,
    /// Per shown stage: (when, records out) samples within [`RATE_WINDOW`].
    history: Vec<std::collections::VecDeque<(Instant, u64)>>,
}

impl Lines {
    fn new(live: LiveMetrics, shown: Vec<usize>) -> Lines {
        let history = shown.iter().map(|_| Default::default()).collect();
        Lines {
            live,
            shown,
            started: Instant::now(),
            history,
        }
    }

    /// (stage id, line) per shown stage, now.
    fn next(&mut self) -> Vec<(String, String)> {
        let now = Instant::now();
        let mut out = Vec::with_capacity(self.shown.len());
        for (k, &i) in self.shown.iter().enumerate() {
            let stage = &self.live.stages[i];
            let m = &stage.metrics;
            let text = if stage.role == Role::Source {
                line(m, now - self.started)
            } else {
                // A sink that queues and delivers later counts deliveries; its byte counter
                // is what it accepted, so it is not shown.
                let (sent, bytes) = if m
                    .counts_delivered
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    (StageMetrics::get(&m.delivered), None)
                } else {
                    (
                        StageMetrics::get(&m.records_out),
                        Some(StageMetrics::get(&m.bytes_out)),
                    )
                };
                let history = &mut self.history[k];
                history.push_back((now, sent));
                while history
                    .front()
                    .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
                {
                    history.pop_front();
                }
                let rate = history.front().and_then(|&(t, n)| {
                    let secs = now.duration_since(t).as_secs_f64();
                    (secs >= 0.5).then(|| (sent - n) as f64 / secs)
                });
                sink_line(&SinkProgress {
                    sent,
                    bytes,
                    // What the sink itself dead-letters will not be written.
                    expected: self
                        .live
                        .expected_in(i)
                        .map(|n| n.saturating_sub(StageMetrics::get(&m.dead_lettered))),
                    throttled: StageMetrics::get(&m.throttled),
                    retried: StageMetrics::get(&m.retried),
                    rate,
                })
            };
            out.push((stage.id.clone(), text));
        }
        out
    }
}

fn line(m: &StageMetrics, elapsed: Duration) -> String {
    source_line(
        StageMetrics::get(&m.records_out),
        StageMetrics::get(&m.bytes_out),
        elapsed,
        m.behind_ms(),
    )
}

/// `2000 records, 1.1 MiB, 400 records/s, 3.2 s behind the tip`
fn source_line(records: u64, bytes: u64, elapsed: Duration, behind_ms: Option<u64>) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let mut text = format!(
        "{records} records, {}, {:.0} records/s",
        human_bytes(bytes),
        records as f64 / secs
    );
    match behind_ms {
        Some(0) => text.push_str(", at the tip"),
        Some(ms) if ms < 60_000 => {
            let _ = write!(text, ", {:.1} s behind the tip", ms as f64 / 1000.0);
        }
        Some(ms) => {
            let _ = write!(text, ", {} behind the tip", eta(ms as f64 / 1000.0));
        }
        None => {}
    }
    text
}

/// What a sink's progress line shows.
#[derive(Debug, Default)]
struct SinkProgress {
    sent: u64,
    /// Bytes written, for sinks whose byte counter follows `sent`.
    bytes: Option<u64>,
    /// Records the sink will receive in all, once upstream knows (e.g. after compaction).
    expected: Option<u64>,
    throttled: u64,
    retried: u64,
    /// Records per second over the last [`RATE_WINDOW`], once measurable.
    rate: Option<f64>,
}

/// `1200 of 5000 records written (24 %), 1.1 MiB, 410 records/s, 3 throttled, 3 retried, ETA 9s`
fn sink_line(p: &SinkProgress) -> String {
    let mut text = match p.expected {
        Some(total) if total > 0 => format!(
            "{} of {total} records written ({:.0} %)",
            p.sent,
            100.0 * p.sent.min(total) as f64 / total as f64
        ),
        _ => format!("{} records written", p.sent),
    };
    if let Some(bytes) = p.bytes {
        let _ = write!(text, ", {}", human_bytes(bytes));
    }
    if let Some(rate) = p.rate {
        let _ = write!(text, ", {rate:.0} records/s");
    }
    if p.throttled > 0 || p.retried > 0 {
        let _ = write!(text, ", {} throttled, {} retried", p.throttled, p.retried);
    }
    if let (Some(total), Some(rate)) = (p.expected, p.rate)
        && rate > 0.0
        && total > p.sent
    {
        let _ = write!(text, ", ETA {}", eta((total - p.sent) as f64 / rate));
    }
    text
}

/// A duration in seconds as `1h02m`, `3m05s` or `12s`.
fn eta(secs: f64) -> String {
    let s = secs.ceil() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_line_shows_share_rate_retries_and_eta_once_known() {
        let mut p = SinkProgress {
            sent: 1200,
            bytes: Some(3 * 1024 * 1024),
            ..Default::default()
        };
        assert_eq!(sink_line(&p), "1200 records written, 3.0 MiB");
        p.rate = Some(400.0);
        p.throttled = 3;
        p.retried = 5;
        assert_eq!(
            sink_line(&p),
            "1200 records written, 3.0 MiB, 400 records/s, 3 throttled, 5 retried"
        );
        p.expected = Some(5000);
        assert_eq!(
            sink_line(&p),
            "1200 of 5000 records written (24 %), 3.0 MiB, 400 records/s, 3 throttled, 5 retried, ETA 10s"
        );
        p.bytes = None;
        assert_eq!(
            sink_line(&p),
            "1200 of 5000 records written (24 %), 400 records/s, 3 throttled, 5 retried, ETA 10s"
        );
        p.sent = 5000;
        assert!(!sink_line(&p).contains("ETA"), "{}", sink_line(&p));
    }

    #[test]
    fn a_source_line_shows_the_lag_when_known() {
        let t = Duration::from_secs(5);
        assert_eq!(
            source_line(2000, 2048, t, None),
            "2000 records, 2.0 KiB, 400 records/s"
        );
        assert_eq!(
            source_line(2000, 2048, t, Some(0)),
            "2000 records, 2.0 KiB, 400 records/s, at the tip"
        );
        assert_eq!(
            source_line(2000, 2048, t, Some(3250)),
            "2000 records, 2.0 KiB, 400 records/s, 3.2 s behind the tip"
        );
        assert_eq!(
            source_line(2000, 2048, t, Some(3_725_000)),
            "2000 records, 2.0 KiB, 400 records/s, 1h02m behind the tip"
        );
    }

    #[test]
    fn eta_is_rounded_up_and_readable() {
        assert_eq!(eta(0.2), "1s");
        assert_eq!(eta(59.0), "59s");
        assert_eq!(eta(185.0), "3m05s");
        assert_eq!(eta(3725.0), "1h02m");
    }
}
