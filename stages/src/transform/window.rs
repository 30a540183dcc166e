//! `window` transform: groups records into time windows and lets each window go as a unit.
//!
//! ```toml
//! [transforms.hourly]
//! type = "window"
//! inputs = ["archive"]
//! size = "1h"                 # tumbling; add `slide = "15m"` for sliding windows
//! # gap = "30m"               # session windows instead (per `key`, default one session stream)
//! time = "arrival"            # or an event-time JSONPath: "$.data.created_at"
//! allowed_lateness = "5m"
//! late = "dead_letter"        # or "drop" (counted as skipped)
//! ```
//!
//! Each record leaves with the annotation `window = {"start", "end"}` (RFC 3339, end exclusive),
//! once per window it belongs to (sliding windows overlap). A window is held until the
//! watermark, the latest event time seen, passes its end plus `allowed_lateness`; then its
//! records go downstream together, in the order they came in, windows in order of end. A record
//! whose windows have all closed is late: it goes to `dead_letter` or is dropped and counted,
//! never silently. At the end of the input every open window closes.
//!
//! Window state is not part of checkpoints: barriers pass straight through, so with an unbounded
//! source a sink may checkpoint past records still held here. With arrival-time windows on a
//! Kinesis source that is safe (windows close in arrival order, so a sink has not seen anything
//! after a held record of the same shard); with event-time windows it is not, and the stage is
//! meant for bounded inputs (archive replays).

mod config;
use config::{Kind, MAX_TIME, MIN_TIME};
pub use config::{Late, WindowConfig};

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::ValuePath;
use crate::record::{Batch, Record, format_ts, parse_ts, ts_from_millis};
use crate::stage::{Drain, Emit, Rejected, StatefulTransform};
use crate::units::HumanDuration;

enum KeyOf {
    PartitionKey,
    Path(ValuePath),
}

/// A window's bounds in epoch milliseconds, end exclusive.
type Bounds = (i64, i64);

/// An open session of one key.
struct Session {
    start: i64,
    last: i64,
    records: Vec<(u64, Record)>,
}

/// The running `window` transform.
pub struct Window {
    kind: Kind,
    time: Option<ValuePath>,
    key: Option<KeyOf>,
    lateness: i64,
    late: Late,
    /// The latest event time seen.
    watermark: i64,
    /// Open fixed windows by (end, start), with their records (input order number, record).
    fixed: BTreeMap<(i64, i64), Vec<(u64, Record)>>,
    /// Open sessions by key.
    sessions: HashMap<String, Vec<Session>>,
    /// Input order number of the next record.
    seq: u64,
}

impl Window {
    /// The record's event time, within [`MIN_TIME`]..=[`MAX_TIME`].
    fn event_time(&self, r: &Record) -> Result<i64, String> {
        let t = self.raw_event_time(r)?;
        if (MIN_TIME..=MAX_TIME).contains(&t) {
            Ok(t)
        } else {
            Err(format!(
                "event time{}: outside the years 0000–9999 UTC that windows can hold",
                self.time
                    .as_ref()
                    .map(|p| format!(" at {}", p.source()))
                    .unwrap_or_default()
            ))
        }
    }

    fn raw_event_time(&self, r: &Record) -> Result<i64, String> {
        let Some(path) = &self.time else {
            return Ok(r.arrival_ts.timestamp_millis());
        };
        let view = r.view(r.data_view());
        match path.select(&view) {
            Some(Value::String(s)) => parse_ts(s)
                .map(|t| t.timestamp_millis())
                .map_err(|e| format!("event time at {}: {e}", path.source())),
            Some(Value::Number(n)) => n.as_i64().ok_or_else(|| {
                format!(
                    "event time at {}: the number is not whole epoch milliseconds",
                    path.source()
                )
            }),
            Some(other) => Err(format!(
                "event time at {}: expected an RFC 3339 string or epoch milliseconds, found {}",
                path.source(),
                crate::json::kind(other)
            )),
            None => Err(format!("event time: {} selects nothing", path.source())),
        }
    }

    fn session_key(&self, r: &Record) -> Result<String, String> {
        match &self.key {
            None => Ok(String::new()),
            Some(KeyOf::PartitionKey) => Ok(r.partition_key.to_string()),
            Some(KeyOf::Path(p)) => crate::transform::compact::key::exact::record_key(p, r)
                .ok_or_else(|| format!("session key: {} selects nothing", p.source())),
        }
    }

    /// Whether a window ending at `end` has closed at the current watermark.
    fn closed(&self, end: i64) -> bool {
        closed_at(self.watermark, self.lateness, end)
    }

    fn late(&self, r: &Record, emit: &mut Emit) {
        match self.late {
            Late::Drop => emit.skipped += 1,
            Late::DeadLetter => emit.rejected.push(Rejected {
                record: r.clone(),
                reason: format!(
                    "late: its window closed (watermark {}, allowed lateness {}ms)",
                    format_ts(&ts_from_millis(self.watermark)),
                    self.lateness
                ),
            }),
        }
    }

    fn add(&mut self, r: &Record, emit: &mut Emit) {
        let t = match self.event_time(r) {
            Ok(t) => t,
            Err(reason) => {
                emit.rejected.push(Rejected {
                    record: r.clone(),
                    reason,
                });
                return;
            }
        };
        // Every window of the record must lie within the range too (its bounds are written as
        // RFC 3339 times); spans are at most 100 years and `t` is in range, so nothing below
        // overflows.
        let in_range = match self.kind {
            Kind::Fixed { size, slide } => {
                t.div_euclid(slide) * slide + size <= MAX_TIME && t - size >= MIN_TIME - 1
            }
            Kind::Session { gap } => t + gap <= MAX_TIME,
        };
        if !in_range {
            emit.rejected.push(Rejected {
                record: r.clone(),
                reason:
                    "event time: one of its windows would reach outside the years 0000–9999 UTC"
                        .into(),
            });
            return;
        }
        let n = self.seq;
        self.seq += 1;
        match self.kind {
            Kind::Fixed { size, slide } => {
                let last_start = t.div_euclid(slide) * slide;
                let mut placed = false;
                let mut start = last_start;
                while start > t - size {
                    let end = start + size;
                    if !self.closed(end) {
                        self.fixed
                            .entry((end, start))
                            .or_default()
                            .push((n, r.clone()));
                        placed = true;
                    }
                    start -= slide;
                }
                if !placed {
                    self.late(r, emit);
                }
            }
            Kind::Session { gap } => {
                let key = match self.session_key(r) {
                    Ok(k) => k,
                    Err(reason) => {
                        emit.rejected.push(Rejected {
                            record: r.clone(),
                            reason,
                        });
                        return;
                    }
                };
                let open = self.sessions.entry(key.clone()).or_default();
                // Sessions this record touches (within `gap` of it) merge into one.
                let (touching, rest): (Vec<Session>, Vec<Session>) = std::mem::take(open)
                    .into_iter()
                    .partition(|s| t >= s.start - gap && t < s.last + gap);
                *open = rest;
                if touching.is_empty() && self.closed(t + gap) {
                    self.late(r, emit);
                    return;
                }
                let mut merged = Session {
                    start: t,
                    last: t,
                    records: vec![(n, r.clone())],
                };
                for s in touching {
                    merged.start = merged.start.min(s.start);
                    merged.last = merged.last.max(s.last);
                    merged.records.extend(s.records);
                }
                merged.records.sort_by_key(|(n, _)| *n);
                self.sessions.entry(key).or_default().push(merged);
            }
        }
        self.watermark = self.watermark.max(t);
    }

    /// Emits every window closed at the current watermark (all of them with `all`).
    fn close(&mut self, all: bool, emit: &mut Emit) {
        let mut ready: Vec<(Bounds, Vec<(u64, Record)>)> = Vec::new();
        while let Some(&(end, start)) = self.fixed.keys().next() {
            if !all && !self.closed(end) {
                break;
            }
            let records = self.fixed.remove(&(end, start)).unwrap_or_default();
            ready.push(((start, end), records));
        }
        if let Kind::Session { gap } = self.kind {
            let watermark = self.watermark;
            let lateness = self.lateness;
            for sessions in self.sessions.values_mut() {
                let (done, open): (Vec<Session>, Vec<Session>) = std::mem::take(sessions)
                    .into_iter()
                    .partition(|s| all || closed_at(watermark, lateness, s.last + gap));
                *sessions = open;
                ready.extend(
                    done.into_iter()
                        .map(|s| ((s.start, s.last + gap), s.records)),
                );
            }
            self.sessions.retain(|_, s| !s.is_empty());
            // Windows of different keys in order of end, then start, then first record.
            ready.sort_by_key(|((start, end), records)| {
                (*end, *start, records.first().map(|(n, _)| *n))
            });
        }
        for ((start, end), records) in ready {
            let bounds = serde_json::json!({
                "start": format_ts(&ts_from_millis(start)),
                "end": format_ts(&ts_from_millis(end)),
            });
            for (_, mut r) in records {
                r.annotate("window", bounds.clone());
                emit.records.push(r);
            }
        }
    }
}

impl StatefulTransform for Window {
    fn process(&mut self, batch: Arc<Batch>, emit: &mut Emit) -> anyhow::Result<()> {
        for r in batch.iter() {
            self.add(r, emit);
        }
        self.close(false, emit);
        Ok(())
    }

    /// Windows close by the watermark, not by checkpoints: a barrier passes.
    fn barrier(&mut self, _id: u64, _emit: &mut Emit) -> anyhow::Result<()> {
        Ok(())
    }

    fn finish(&mut self, emit: &mut Emit) -> anyhow::Result<Drain> {
        self.close(true, emit);
        Ok(Drain::Done)
    }
}

/// Whether a window ending at `end` has closed once the watermark is `watermark` (`i64::MIN`
/// before any record), given `lateness`.
fn closed_at(watermark: i64, lateness: i64, end: i64) -> bool {
    watermark != i64::MIN && end.saturating_add(lateness) <= watermark
}

/// The window bounds a record was annotated with, if any.
pub fn window_of(r: &Record) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let w = r.annotations.as_ref()?.get("window")?;
    let start = parse_ts(w.get("start")?.as_str()?).ok()?;
    let end = parse_ts(w.get("end")?.as_str()?).ok()?;
    Some((start, end))
}

#[cfg(test)]
mod tests;
