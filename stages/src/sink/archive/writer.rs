//! One open object of a shard: records of one hour (and window) in sequence order, gzipped
//! as they come (off the sink's task: [`super::compress`]).

use super::*;

pub(super) struct ObjectWriter {
    pub(super) stream: StreamName,
    pub(super) shard_id: ShardId,
    pub(super) hour: DateTime<Utc>,
    pub(super) first: SequenceNumber,
    pub(super) first_arrival: DateTime<Utc>,
    pub(super) last: SequenceNumber,
    pub(super) last_sub: Option<u64>,
    pub(super) last_arrival: DateTime<Utc>,
    pub(super) opened: std::time::Instant,
    pub(super) records: u64,
    pub(super) raw_bytes: u64,
    pub(super) gz: super::compress::Compressor,
    /// The `window` annotation of its records, with `roll_per_window`.
    pub(super) window: Option<serde_json::Value>,
}

impl ObjectWriter {
    /// Whether the object reached `max_records` or `max_bytes`.
    pub(super) fn is_full(&self, config: &ArchiveSinkConfig) -> bool {
        self.records >= config.max_records || self.raw_bytes >= config.max_bytes.bytes()
    }

    /// Whether the object has been open for `max_age`.
    pub(super) fn is_aged(&self, config: &ArchiveSinkConfig) -> bool {
        config.max_age.is_some_and(|a| self.opened.elapsed() >= a.0)
    }
}
