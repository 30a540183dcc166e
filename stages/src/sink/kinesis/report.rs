//! What the sink reports: the counters, a dry run's plan (per shard, samples), and the
//! summary lines of a finished or stopped replay.

use super::*;

#[derive(Default)]
pub(super) struct Stats {
    /// Records that reached the sink (sent, planned, rejected or left unsent).
    pub(super) received: u64,
    pub(super) sent: u64,
    pub(super) bytes: u64,
    pub(super) throttled: u64,
    pub(super) retried: u64,
    pub(super) calls: u64,
    pub(super) per_shard: BTreeMap<String, u64>,
    /// Per shard: replayed records Kinesis put on it before its opening fence (revealing records).
    pub(super) before_fence: BTreeMap<String, u64>,
    pub(super) first: Option<Instant>,
    pub(super) last: Option<Instant>,
    /// Records received but not sent because the run was asked to stop.
    pub(super) not_sent: u64,
    /// Of those, the ones not yet reported to the runtime as skipped.
    pub(super) unreported: crate::stage::Skipped,
}

#[derive(Default)]
pub(super) struct DryRunPlan {
    /// Per shard index: records, bytes.
    pub(super) per_shard: BTreeMap<usize, (u64, u64)>,
    pub(super) samples: Vec<String>,
}

impl KinesisSink {
    pub(super) fn plan_add(&mut self, e: &Entry) {
        let p = self.plan.per_shard.entry(e.shard).or_default();
        p.0 += 1;
        p.1 += e.size() as u64;
        if self.plan.samples.len() < SAMPLE {
            // Whole and as sent: JSON shows as JSON (the `_flux` annotation visible); only a
            // payload with control characters is escaped, and bytes that are not UTF-8 are
            // shown in base64.
            let shown = match std::str::from_utf8(&e.record.data) {
                Ok(t) if !t.chars().any(char::is_control) => t.to_owned(),
                Ok(t) => format!("(escaped) {}", t.escape_debug()),
                Err(_) => {
                    use base64::Engine as _;
                    format!(
                        "(not UTF-8, base64) {}",
                        base64::engine::general_purpose::STANDARD.encode(&e.record.data)
                    )
                }
            };
            let shard = self
                .state
                .as_ref()
                .map(|s| s.map.shards()[e.shard].id.clone())
                .unwrap_or_default();
            self.plan.samples.push(format!(
                "sample: {shard} key {:?} ({} bytes): {}",
                e.key,
                e.record.data.len(),
                shown
            ));
        }
    }

    pub(super) fn dry_run_report(&self) -> Vec<String> {
        let state = self.state.as_ref().expect("started");
        let rps = f64::from(self.config.records_per_second_per_shard);
        let bps = self.config.bytes_per_second_per_shard.bytes() as f64;
        let mut out = vec![format!(
            "dry run: nothing sent to stream {} ({} open shards, {} records/s and {}/s per shard)",
            self.config.stream,
            state.map.shards().len(),
            self.config.records_per_second_per_shard,
            self.config.bytes_per_second_per_shard
        )];
        let (mut records, mut bytes, mut longest) = (0u64, 0u64, 0f64);
        for (i, s) in state.map.shards().iter().enumerate() {
            let (n, b) = self.plan.per_shard.get(&i).copied().unwrap_or_default();
            let secs = (n as f64 / rps).max(b as f64 / bps);
            longest = longest.max(secs);
            records += n;
            bytes += b;
            out.push(format!(
                "shard {}: {n} records, {b} bytes, ~{secs:.1}s",
                s.id
            ));
        }
        out.push(format!(
            "total: {records} records, {bytes} bytes, ~{longest:.1}s at the configured rate{}",
            if self.config.fences {
                format!(
                    " (plus an opening and a closing fence on each of {} shards)",
                    state.map.shards().len()
                )
            } else {
                String::new()
            }
        ));
        out.extend(self.plan.samples.iter().cloned());
        out
    }

    /// The report of a run stopped by a signal: what was sent, what was not, and what that
    /// leaves in the stream.
    pub(super) fn stopped_report(&self) -> Vec<String> {
        let mut out = self.report(None);
        out.push(format!(
            "stopped by a signal: sent {} records, did not send {}",
            self.stats.sent, self.stats.not_sent
        ));
        if let Some(f) = self.state.as_ref().and_then(|r| r.fences.as_ref()) {
            out.push(format!(
                "replay {} is incomplete: opening fences are in the stream, no closing fences were written; consumers apply what arrived by the rule, and running the replay again with the same id completes it (docs/replay-protocol.md, \"A replay run again\")",
                f.open.replay_id
            ));
        }
        out
    }

    pub(super) fn report(&self, closed: Option<Vec<(String, u64)>>) -> Vec<String> {
        let s = &self.stats;
        let secs = match (s.first, s.last) {
            (Some(a), Some(b)) => b.duration_since(a).as_secs_f64(),
            _ => 0.0,
        };
        let shards = self
            .state
            .as_ref()
            .map(|r| r.map.shards().len())
            .unwrap_or(0);
        let mut out = vec![format!(
            "sent {} records ({} bytes) to stream {} in {secs:.2}s ({:.0} records/s; limit {} records/s on each of {shards} shards); {} PutRecords calls, {} throttled, {} retried",
            s.sent,
            s.bytes,
            self.config.stream,
            if secs > 0.0 {
                s.sent as f64 / secs
            } else {
                0.0
            },
            self.config.records_per_second_per_shard,
            s.calls,
            s.throttled,
            s.retried
        )];
        if let (Some(f), Some(closed)) =
            (self.state.as_ref().and_then(|r| r.fences.as_ref()), closed)
        {
            out.push(format!(
                "replay {} ({:?}): opening fences on {} shards, closing fences on {}",
                f.open.replay_id,
                f.open.mode,
                f.high_water.len(),
                closed.len()
            ));
            for (shard, n) in closed {
                let h = f.high_water.get(&shard).map(String::as_str).unwrap_or("-");
                out.push(format!("shard {shard}: {n} records, fence H = {h}"));
            }
            for (shard, n) in &s.before_fence {
                out.push(format!(
                    "shard {shard}: {n} records landed before its opening fence (created after the sink last listed the shards)"
                ));
            }
        }
        out
    }
}
