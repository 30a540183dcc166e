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

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use crate::expr::ValuePath;
use crate::record::{Batch, Record, format_ts, parse_ts, ts_from_millis};
use crate::stage::{Drain, Emit, Rejected, StatefulTransform};
use crate::units::Duration as Dur;

/// What happens to a record that arrives after its windows closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Late {
    /// To the stage's `dead_letter` port (or stop the run when nothing reads it).
    #[default]
    DeadLetter,
    /// Dropped, counted in the `skipped` column of the run summary.
    Drop,
}

/// Groups records into tumbling, sliding or session windows.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length (tumbling and sliding windows).
    #[serde(default)]
    pub size: Option<Dur>,
    /// Distance between window starts (sliding windows); equal to `size` when absent (tumbling).
    #[serde(default)]
    pub slide: Option<Dur>,
    /// Session windows: a session ends after this long without a record (per `key`).
    #[serde(default)]
    pub gap: Option<Dur>,
    /// Session windows only: the JSONPath (into the envelope view) or `partition_key` whose
    /// value separates sessions. One session stream for all records when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// `arrival` (the record's `arrival_ts`, default) or a JSONPath into the envelope view
    /// selecting an RFC 3339 string or epoch milliseconds, e.g. `$.data.created_at`.
    #[serde(default = "default_time")]
    pub time: String,
    /// How long after a window's end records may still join it. Default "0s".
    #[serde(default)]
    pub allowed_lateness: Option<Dur>,
    /// `dead_letter` (default) or `drop`.
    #[serde(default)]
    pub late: Late,
}

fn default_time() -> String {
    "arrival".into()
}

/// The kind of windows, resolved from the config.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Fixed windows `size` long every `slide` (tumbling when equal), in milliseconds.
    Fixed { size: i64, slide: i64 },
    /// Sessions separated by `gap` milliseconds of silence.
    Session { gap: i64 },
}

fn millis(d: Dur) -> i64 {
    i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX)
}

/// The earliest event time a window can hold: 0000-01-01T00:00:00.000Z (RFC 3339's and the
/// archive's range), in epoch milliseconds.
const MIN_TIME: i64 = -62_167_219_200_000;
/// The latest: 9999-12-31T23:59:59.999Z. Window ends (exclusive) must not pass it either, so
/// that every bound can be written as an RFC 3339 time.
const MAX_TIME: i64 = 253_402_300_799_999;
/// The longest `size`, `slide`, `gap` or `allowed_lateness`: 100 years, which keeps every
/// window computation far inside `i64`.
const MAX_SPAN: i64 = 36_525 * 86_400_000;

impl WindowConfig {
    fn kind(&self) -> Result<Kind, String> {
        match (self.size, self.slide, self.gap) {
            (Some(size), slide, None) => {
                let size = millis(size);
                let slide = slide.map(millis).unwrap_or(size);
                if size < 1 || slide < 1 {
                    return Err("`size` and `slide` must be at least 1ms".into());
                }
                if slide > size {
                    return Err(format!(
                        "`slide` ({slide}ms) must not be longer than `size` ({size}ms): records between windows would belong to none"
                    ));
                }
                if size / slide > 1000 {
                    return Err("`size` / `slide` must be at most 1000 (windows per record)".into());
                }
                if self.key.is_some() {
                    return Err("`key` applies to session windows (`gap`) only".into());
                }
                Ok(Kind::Fixed { size, slide })
            }
            (None, None, Some(gap)) => {
                let gap = millis(gap);
                if gap < 1 {
                    return Err("`gap` must be at least 1ms".into());
                }
                Ok(Kind::Session { gap })
            }
            (None, Some(_), _) => Err("`slide` needs `size`".into()),
            (Some(_), _, Some(_)) => Err(
                "set either `size` (tumbling/sliding windows) or `gap` (session windows), not both"
                    .into(),
            ),
            (None, None, None) => {
                Err("missing `size` (tumbling/sliding windows) or `gap` (session windows)".into())
            }
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        self.kind()?;
        for (key, value) in [
            ("size", self.size),
            ("slide", self.slide),
            ("gap", self.gap),
            ("allowed_lateness", self.allowed_lateness),
        ] {
            if value.is_some_and(|d| millis(d) > MAX_SPAN) {
                return Err(format!("`{key}` must be at most 100 years (36525d)"));
            }
        }
        if self.time != "arrival" {
            ValuePath::compile(&self.time).map_err(|e| format!("`time`: {e}"))?;
        }
        if let Some(k) = &self.key
            && k != "partition_key"
        {
            ValuePath::compile(k).map_err(|e| format!("`key`: {e}"))?;
        }
        Ok(())
    }

    /// Builds the transform.
    pub fn build(&self) -> Result<Box<dyn StatefulTransform>, String> {
        self.validate()?;
        let path = |p: &str| ValuePath::compile(p).map_err(|e| e.to_string());
        Ok(Box::new(Window {
            kind: self.kind()?,
            time: match self.time.as_str() {
                "arrival" => None,
                p => Some(path(p)?),
            },
            key: match self.key.as_deref() {
                None => None,
                Some("partition_key") => Some(KeyOf::PartitionKey),
                Some(p) => Some(KeyOf::Path(path(p)?)),
            },
            lateness: self.allowed_lateness.map(millis).unwrap_or(0),
            late: self.late,
            watermark: i64::MIN,
            fixed: BTreeMap::new(),
            sessions: HashMap::new(),
            seq: 0,
        }))
    }
}

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
            Some(KeyOf::PartitionKey) => Ok(r.partition_key.clone()),
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
    fn process(&mut self, batch: &Arc<Batch>, emit: &mut Emit) -> anyhow::Result<()> {
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

impl crate::registry::StageKind for WindowConfig {
    fn validate(&self) -> Result<(), String> {
        WindowConfig::validate(self)
    }

    fn build(
        &self,
        _: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        WindowConfig::build(self).map(crate::registry::BuiltStage::Stateful)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::SequenceNumber;
    use bytes::Bytes;

    fn rec(n: u64, arrival_ms: i64, key: &str, data: &str) -> Record {
        Record {
            stream: Arc::from("s"),
            shard_id: Arc::from("shardId-000000000000"),
            sequence_number: SequenceNumber::from_u64(n),
            sub_sequence_number: None,
            partition_key: key.into(),
            arrival_ts: ts_from_millis(arrival_ms),
            data: Bytes::from(data.to_owned()),
            annotations: None,
        }
    }

    fn window(toml_text: &str) -> Box<dyn StatefulTransform> {
        let cfg: WindowConfig = toml::from_str(toml_text).expect("config");
        cfg.build().expect("build")
    }

    /// Runs batches through, then the end; returns (seq, window start ms, end ms) per output
    /// record, late record seqs, and the skipped count.
    fn run(
        w: &mut Box<dyn StatefulTransform>,
        batches: Vec<Vec<Record>>,
    ) -> (Vec<(u64, i64, i64)>, Vec<u64>, usize) {
        let mut out = Vec::new();
        let mut late = Vec::new();
        let mut skipped = 0;
        let mut take = |emit: Emit| {
            for r in emit.records {
                let (s, e) = window_of(&r).expect("annotated");
                out.push((
                    r.sequence_number.as_str().parse().unwrap(),
                    s.timestamp_millis(),
                    e.timestamp_millis(),
                ));
            }
            late.extend(
                emit.rejected
                    .iter()
                    .map(|r| r.record.sequence_number.as_str().parse::<u64>().unwrap()),
            );
            skipped += emit.skipped;
        };
        for b in batches {
            let mut emit = Emit::default();
            w.process(&Arc::new(b), &mut emit).unwrap();
            take(emit);
        }
        let mut emit = Emit::default();
        w.finish(&mut emit).unwrap();
        take(emit);
        (out, late, skipped)
    }

    #[test]
    fn tumbling_windows_close_when_the_watermark_passes() {
        let mut w = window("size = \"10s\"");
        let mut emit = Emit::default();
        w.process(
            &Arc::new(vec![rec(1, 1_000, "a", "{}"), rec(2, 9_999, "a", "{}")]),
            &mut emit,
        )
        .unwrap();
        assert!(emit.records.is_empty(), "window [0,10s) still open");
        w.process(&Arc::new(vec![rec(3, 10_000, "a", "{}")]), &mut emit)
            .unwrap();
        let got: Vec<_> = emit.records.iter().map(|r| window_of(r).unwrap()).collect();
        assert_eq!(got.len(), 2, "the first window closed as a unit");
        assert_eq!(got[0].0.timestamp_millis(), 0);
        assert_eq!(got[0].1.timestamp_millis(), 10_000);
        let (rest, late, _) = run(&mut w, vec![]);
        assert_eq!(rest, vec![(3, 10_000, 20_000)]);
        assert!(late.is_empty());
    }

    #[test]
    fn sliding_windows_hold_each_record_once_per_window() {
        let mut w = window("size = \"10s\"\nslide = \"5s\"");
        let (out, _, _) = run(
            &mut w,
            vec![vec![rec(1, 7_000, "a", "{}"), rec(2, 12_000, "a", "{}")]],
        );
        // 7s is in [0,10) and [5,15); 12s in [5,15) and [10,20). Windows in order of end.
        assert_eq!(
            out,
            vec![
                (1, 0, 10_000),
                (1, 5_000, 15_000),
                (2, 5_000, 15_000),
                (2, 10_000, 20_000)
            ]
        );
    }

    #[test]
    fn late_records_go_to_dead_letter_or_are_counted() {
        let batches = || {
            vec![
                vec![rec(1, 1_000, "a", "{}"), rec(2, 25_000, "a", "{}")],
                vec![rec(3, 2_000, "a", "{}"), rec(4, 21_000, "a", "{}")],
            ]
        };
        let (out, late, skipped) = run(&mut window("size = \"10s\""), batches());
        assert_eq!(late, vec![3], "[0,10s) closed at watermark 25s");
        assert_eq!(skipped, 0);
        assert_eq!(out.len(), 3);
        let (_, late, skipped) = run(&mut window("size = \"10s\"\nlate = \"drop\""), batches());
        assert!(late.is_empty());
        assert_eq!(skipped, 1);
        // With 20s of allowed lateness, record 3 still joins its window.
        let (out, late, _) = run(
            &mut window("size = \"10s\"\nallowed_lateness = \"20s\""),
            batches(),
        );
        assert!(late.is_empty());
        assert_eq!(&out[..2], &[(1, 0, 10_000), (3, 0, 10_000)]);
    }

    #[test]
    fn sessions_per_key_merge_and_close_after_the_gap() {
        let mut w = window("gap = \"5s\"\nkey = \"partition_key\"");
        let (out, late, _) = run(
            &mut w,
            vec![vec![
                rec(1, 0, "a", "{}"),
                rec(2, 3_000, "a", "{}"),
                rec(3, 1_000, "b", "{}"),
                rec(4, 20_000, "a", "{}"),
                // 9s is more than 5s after a's first session and before 20s - 5s: its own
                // session [9s, 14s) closed when the watermark reached 20s, so it is late.
                rec(5, 9_000, "a", "{}"),
                // 18s is within 5s of 20s: it joins (and extends back) that session.
                rec(6, 18_000, "a", "{}"),
            ]],
        );
        assert_eq!(
            out,
            vec![
                (3, 1_000, 6_000),
                (1, 0, 8_000),
                (2, 0, 8_000),
                (4, 18_000, 25_000),
                (6, 18_000, 25_000)
            ]
        );
        assert_eq!(late, vec![5]);
    }

    #[test]
    fn event_time_comes_from_the_payload() {
        let mut w = window("size = \"1h\"\ntime = \"$.data.at\"");
        let (out, late, _) = run(
            &mut w,
            vec![vec![
                rec(1, 0, "a", r#"{"at":"2026-11-25T10:59:59.999Z"}"#),
                rec(2, 0, "a", r#"{"at":1795604400000}"#),
                rec(3, 0, "a", r#"{"no":"time"}"#),
            ]],
        );
        let h10 = parse_ts("2026-11-25T10:00:00Z").unwrap().timestamp_millis();
        assert_eq!(
            out,
            vec![
                (1, h10, h10 + 3_600_000),
                (2, h10 + 3_600_000, h10 + 7_200_000)
            ]
        );
        assert_eq!(
            late,
            vec![3],
            "no event time: dead-lettered with the reason"
        );
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        let err = |t: &str| {
            toml::from_str::<WindowConfig>(t)
                .unwrap()
                .validate()
                .unwrap_err()
        };
        assert!(err("").contains("missing `size`"));
        assert!(err("size = \"1m\"\ngap = \"1m\"").contains("not both"));
        assert!(err("size = \"1m\"\nslide = \"2m\"").contains("must not be longer"));
        assert!(err("slide = \"1m\"").contains("needs `size`"));
        assert!(err("size = \"1m\"\nkey = \"partition_key\"").contains("session windows"));
        assert!(err("size = \"1m\"\ntime = \"data.at\"").contains("`time`"));
    }

    /// Event times at the edge of (or outside) the representable range are dead-lettered, and
    /// do not move the watermark: records after them are not taken for late.
    #[test]
    fn out_of_range_event_times_are_dead_lettered_and_keep_the_watermark() {
        let cfg: WindowConfig =
            serde_json::from_str(r#"{"size": "1h", "time": "$.data.t"}"#).unwrap();
        let mut w = cfg.build().unwrap();
        let batch = Arc::new(vec![
            rec(1, 0, "k", r#"{"t": 9223372036854775807}"#),
            rec(2, 0, "k", r#"{"t": -9223372036854775808}"#),
            rec(3, 0, "k", r#"{"t": 253402300799999}"#),
            rec(4, 0, "k", r#"{"t": "9999-12-31T23:30:00-01:00"}"#),
            rec(5, 0, "k", r#"{"t": 1.5}"#),
            rec(6, 0, "k", r#"{"t": 1764064800000}"#),
            rec(7, 0, "k", r#"{"t": "2026-11-25T10:30:00Z"}"#),
        ]);
        let mut emit = Emit::default();
        w.process(&batch, &mut emit).unwrap();
        w.finish(&mut emit).unwrap();
        let rejected: Vec<u64> = emit
            .rejected
            .iter()
            .map(|r| r.record.sequence_number.as_str().parse().unwrap())
            .collect();
        assert_eq!(rejected, [1, 2, 3, 4, 5]);
        assert!(
            emit.rejected
                .iter()
                .all(|r| !r.reason.contains("9223372036854775807"))
        );
        assert_eq!(
            emit.records.len(),
            2,
            "the in-range records are windowed, not late"
        );
    }

    #[test]
    fn spans_longer_than_a_century_are_refused() {
        let cfg: WindowConfig = serde_json::from_str(r#"{"size": "36526d"}"#).unwrap();
        assert!(cfg.validate().unwrap_err().contains("`size`"));
    }
}
