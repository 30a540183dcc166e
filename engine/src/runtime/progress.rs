//! Progress while a pipeline runs, read from its snapshots: a bar per source and per sink on a
//! terminal, plain periodic log lines otherwise (the summary table is [`super::table`]). A source shows records, bytes and
//! rate; a sink shows what it wrote, its recent rate, what was throttled and retried, and once
//! the number of records it will receive is known (a `compact` upstream announces its winners)
//! the share done and an ETA.

use std::fmt::Write;
use std::time::{Duration, Instant};

use flux_stages::registry::Role;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::table::human_bytes;
use super::{Monitor, StageSnapshot};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Bars on the terminal (standard error).
    Bars,
    /// A log line per source and sink every `interval`; with `fields`, the figures are also
    /// structured fields of the event (`records`, `bytes`, `rate`, `behind_ms`, …), for JSON
    /// logs.
    Log {
        /// Time between lines.
        interval: Duration,
        /// Whether events carry the figures as fields too.
        fields: bool,
    },
    /// Nothing until the summary.
    Off,
}

/// A running progress reporter; [`Reporter::finish`] stops it.
pub struct Reporter {
    task: Option<JoinHandle<()>>,
    bars: Option<MultiProgress>,
}

impl Reporter {
    /// Starts reporting on the sources and sinks of the run `monitor` watches (on the current
    /// tokio runtime).
    pub fn start(monitor: Monitor, mode: Mode) -> Reporter {
        match mode {
            Mode::Off => Reporter {
                task: None,
                bars: None,
            },
            Mode::Log { interval, fields } => {
                let task = tokio::spawn(async move {
                    let mut lines = Lines::new(monitor);
                    let mut tick = tokio::time::interval(interval);
                    tick.tick().await;
                    loop {
                        tick.tick().await;
                        for l in lines.next() {
                            log(&l, fields);
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
                let draw = multi.clone();
                let task = tokio::spawn(async move {
                    let mut lines = Lines::new(monitor);
                    let mut bars: Vec<ProgressBar> = Vec::new();
                    let mut tick = tokio::time::interval(Duration::from_millis(200));
                    loop {
                        tick.tick().await;
                        let now = lines.next();
                        // The stages are known once their tasks have started.
                        if bars.is_empty() {
                            bars = now
                                .iter()
                                .map(|l| {
                                    let bar = draw.add(ProgressBar::new_spinner());
                                    bar.set_style(style.clone());
                                    bar.set_prefix(l.stage.clone());
                                    bar
                                })
                                .collect();
                        }
                        for (l, bar) in now.into_iter().zip(&bars) {
                            bar.set_message(l.text);
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

/// Logs one progress line at INFO, with its figures as fields when `fields`.
fn log(l: &Line, fields: bool) {
    let f = &l.figures;
    if fields {
        tracing::info!(
            stage = %l.stage,
            records = f.records,
            bytes = f.bytes,
            rate = f.rate,
            behind_ms = f.behind_ms,
            expected = f.expected,
            throttled = f.throttled,
            retried = f.retried,
            "{}",
            l.text
        );
    } else {
        tracing::info!(stage = %l.stage, "{}", l.text);
    }
}

/// How far back the rate behind an ETA looks.
const RATE_WINDOW: Duration = Duration::from_secs(30);

/// One stage's progress line, and the figures in it.
#[derive(Debug)]
struct Line {
    stage: String,
    text: String,
    figures: Figures,
}

/// The figures of a progress line, as numbers.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    /// Sources: records sent on; sinks: records written (delivered, for sinks that deliver
    /// later).
    records: u64,
    /// Bytes, where the line shows them.
    bytes: Option<u64>,
    /// Records per second: a source's average since the start, a sink's over the last
    /// [`RATE_WINDOW`] once measurable.
    rate: Option<f64>,
    /// Sources reading a stream: lag behind its tip, once known.
    behind_ms: Option<u64>,
    /// Sinks: the records they will receive in all, once known.
    expected: Option<u64>,
    /// Sinks: records throttled (0 for sources).
    throttled: u64,
    /// Sinks: records retried (0 for sources).
    retried: u64,
    /// Sources: finished (the line says `done` instead of a rate).
    done: bool,
}

/// Makes the progress lines of the sources and sinks, keeping each sink's recent history for
/// its rate.
struct Lines {
    monitor: Monitor,
    started: Instant,
    /// Per stage id: (when, records out) samples within [`RATE_WINDOW`].
    history: std::collections::HashMap<String, std::collections::VecDeque<(Instant, u64)>>,
    /// Finished sources whose last line was shown.
    shown_done: std::collections::HashSet<String>,
}

impl Lines {
    fn new(monitor: Monitor) -> Lines {
        Lines {
            monitor,
            started: Instant::now(),
            history: Default::default(),
            shown_done: Default::default(),
        }
    }

    /// One line per source and sink, now (none before the stages have started).
    fn next(&mut self) -> Vec<Line> {
        let now = Instant::now();
        let snapshot = self.monitor.snapshot();
        let shown_done = &mut self.shown_done;
        snapshot
            .stages
            .into_iter()
            .filter(|s| matches!(s.role, Role::Source | Role::Sink))
            // A finished source gets one last line (`done`), then none: its figures no longer
            // move, and a rate over the whole run would only decay.
            .filter(|s| !(s.finished && s.role == Role::Source) || shown_done.insert(s.id.clone()))
            .map(|stage| {
                let figures = if stage.role == Role::Source {
                    source_figures(&stage, now - self.started)
                } else {
                    let history = self.history.entry(stage.id.clone()).or_default();
                    sink_figures(&stage, history, now)
                };
                let text = if stage.role == Role::Source {
                    source_line(&figures)
                } else {
                    sink_line(&figures)
                };
                Line {
                    stage: stage.id,
                    text,
                    figures,
                }
            })
            .collect()
    }
}

fn source_figures(s: &StageSnapshot, elapsed: Duration) -> Figures {
    let secs = elapsed.as_secs_f64().max(0.001);
    Figures {
        records: s.counters.records_out,
        bytes: Some(s.counters.bytes_out),
        rate: (!s.finished).then(|| s.counters.records_out as f64 / secs),
        done: s.finished,
        behind_ms: s.behind_ms,
        ..Default::default()
    }
}

fn sink_figures(
    s: &StageSnapshot,
    history: &mut std::collections::VecDeque<(Instant, u64)>,
    now: Instant,
) -> Figures {
    // A sink that queues and delivers later counts deliveries; its byte counter is what it
    // accepted, so it is not shown.
    let (sent, bytes) = if s.counts_delivered {
        (s.counters.delivered, None)
    } else {
        (s.counters.records_out, Some(s.counters.bytes_out))
    };
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
    Figures {
        records: sent,
        bytes,
        rate,
        // What the sink itself dead-letters will not be written.
        expected: s
            .expected_in
            .map(|n| n.saturating_sub(s.counters.dead_lettered)),
        throttled: s.counters.throttled,
        retried: s.counters.retried,
        behind_ms: None,
        done: false,
    }
}

/// `2000 records, 1.1 MiB, 400 records/s, 3.2 s behind the tip`
fn source_line(f: &Figures) -> String {
    let mut text = format!(
        "{} records, {}",
        f.records,
        human_bytes(f.bytes.unwrap_or(0))
    );
    match f.rate {
        _ if f.done => text.push_str(", done"),
        Some(rate) => {
            let _ = write!(text, ", {rate:.0} records/s");
        }
        None => text.push_str(", 0 records/s"),
    }
    match f.behind_ms {
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

/// `1200 of 5000 records written (24 %), 1.1 MiB, 410 records/s, 3 throttled, 3 retried, ETA 9s`
fn sink_line(p: &Figures) -> String {
    let sent = p.records;
    let mut text = match p.expected {
        Some(total) if total > 0 => format!(
            "{sent} of {total} records written ({:.0} %)",
            100.0 * sent.min(total) as f64 / total as f64
        ),
        _ => format!("{sent} records written"),
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
        && total > sent
    {
        let _ = write!(text, ", ETA {}", eta((total - sent) as f64 / rate));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_line_shows_share_rate_retries_and_eta_once_known() {
        let mut p = Figures {
            records: 1200,
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
        p.records = 5000;
        assert!(!sink_line(&p).contains("ETA"), "{}", sink_line(&p));
    }

    #[test]
    fn a_source_line_shows_the_lag_when_known() {
        let stage = |behind_ms| StageSnapshot {
            id: "s".into(),
            role: Role::Source,
            kind: "kinesis".into(),
            counters: crate::runtime::Counters {
                records_out: 2000,
                bytes_out: 2048,
                ..Default::default()
            },
            counts_delivered: false,
            behind_ms,
            expected_in: None,
            checkpoint_age_ms: None,
            finished: false,
            objects: None,
        };
        let line =
            |behind_ms| source_line(&source_figures(&stage(behind_ms), Duration::from_secs(5)));
        assert_eq!(line(None), "2000 records, 2.0 KiB, 400 records/s");
        assert_eq!(
            line(Some(0)),
            "2000 records, 2.0 KiB, 400 records/s, at the tip"
        );
        assert_eq!(
            line(Some(3250)),
            "2000 records, 2.0 KiB, 400 records/s, 3.2 s behind the tip"
        );
        assert_eq!(
            line(Some(3_725_000)),
            "2000 records, 2.0 KiB, 400 records/s, 1h02m behind the tip"
        );
        // A finished source says so instead of a rate that would only decay.
        let mut done = stage(None);
        done.finished = true;
        let f = source_figures(&done, Duration::from_secs(5));
        assert_eq!(f.rate, None);
        assert_eq!(source_line(&f), "2000 records, 2.0 KiB, done");
        let f = source_figures(&stage(Some(3250)), Duration::from_secs(5));
        assert_eq!(
            (f.records, f.bytes, f.rate, f.behind_ms),
            (2000, Some(2048), Some(400.0), Some(3250))
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
