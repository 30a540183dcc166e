//! Object keys of the archive, and parsing them back.
//!
//! ```text
//! stream=<stream>/dt=<YYYY-MM-DD>/hour=<HH>/shard=<shard_id>/<first_seq>-<last_seq>.json.gz
//! _flux/checkpoints/stream=<stream>/<shard_id>.json
//! _flux/runs/stream=<stream>/<run_id>.json
//! ```
//!
//! Readers depend only on the `key=value` folders: they take every `*.json.gz`, `*.jsonl.gz`,
//! `*.ndjson.gz` (and uncompressed `*.json`, `*.jsonl`, `*.ndjson`) object below them.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Timelike, Utc};

use crate::record::SequenceNumber;

/// The prefix of a stream's data objects.
pub fn stream_prefix(stream: &str) -> String {
    format!("stream={stream}/")
}

/// The key of a data object holding records of one shard and one arrival hour.
pub fn data_key(
    stream: &str,
    hour: DateTime<Utc>,
    shard_id: &str,
    first: &SequenceNumber,
    last: &SequenceNumber,
) -> String {
    format!(
        "stream={stream}/dt={:04}-{:02}-{:02}/hour={:02}/shard={shard_id}/{first}-{last}.json.gz",
        hour.year(),
        hour.month(),
        hour.day(),
        hour.hour()
    )
}

/// The key of a shard's archival checkpoint.
pub fn checkpoint_key(stream: &str, shard_id: &str) -> String {
    format!("_flux/checkpoints/stream={stream}/{shard_id}.json")
}

/// The prefix of a stream's checkpoints.
pub fn checkpoint_prefix(stream: &str) -> String {
    format!("_flux/checkpoints/stream={stream}/")
}

/// The key of a run's manifest for one stream (a run may archive several streams).
pub fn run_key(stream: &str, run_id: &str) -> String {
    format!("_flux/runs/stream={stream}/{run_id}.json")
}

/// The key of a gap record: records of a shard that expired after `checkpoint` unarchived.
pub fn gap_key(stream: &str, shard_id: &str, checkpoint: &str) -> String {
    format!("{}{shard_id}-{checkpoint}.json", gap_prefix(stream))
}

/// The prefix of a stream's gap records.
pub fn gap_prefix(stream: &str) -> String {
    format!("_flux/gaps/stream={stream}/")
}

/// The start of the UTC hour a time falls in.
pub fn hour_of(ts: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(ts.year(), ts.month(), ts.day(), ts.hour(), 0, 0)
        .single()
        .unwrap_or(ts)
}

/// A data object's key, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataObject {
    /// The full key.
    pub key: String,
    /// The start of the arrival hour its folder names.
    pub hour: DateTime<Utc>,
    /// The shard its folder names.
    pub shard_id: String,
    /// The first and last sequence numbers its name carries, when it follows the naming rule.
    pub range: Option<(SequenceNumber, SequenceNumber)>,
    /// True for gzip objects.
    pub gzip: bool,
}

const DATA_SUFFIXES: [(&str, bool); 6] = [
    (".json.gz", true),
    (".jsonl.gz", true),
    (".ndjson.gz", true),
    (".json", false),
    (".jsonl", false),
    (".ndjson", false),
];

/// Parses a key under `stream=<stream>/`; `None` for keys that are not data objects.
pub fn parse_data_key(key: &str) -> Option<DataObject> {
    let mut dt = None;
    let mut hour = None;
    let mut shard = None;
    let parts: Vec<&str> = key.split('/').collect();
    let (file, folders) = parts.split_last()?;
    for folder in folders {
        if let Some(v) = folder.strip_prefix("dt=") {
            dt = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok();
        } else if let Some(v) = folder.strip_prefix("hour=") {
            hour = v.parse::<u32>().ok().filter(|h| *h < 24);
        } else if let Some(v) = folder.strip_prefix("shard=") {
            shard = Some(v.to_owned());
        }
    }
    let (stem, gzip) = DATA_SUFFIXES
        .iter()
        .find_map(|(suffix, gz)| file.strip_suffix(suffix).map(|s| (s, *gz)))?;
    if file.starts_with('.') || file.starts_with('_') {
        return None;
    }
    let time = dt?.and_hms_opt(hour?, 0, 0)?.and_utc();
    let range = parse_range(stem);
    Some(DataObject {
        key: key.to_owned(),
        hour: time,
        shard_id: shard?,
        range,
        gzip,
    })
}

fn parse_range(stem: &str) -> Option<(SequenceNumber, SequenceNumber)> {
    let stem = stem.strip_prefix("part-").unwrap_or(stem);
    let (a, b) = stem.split_once('-')?;
    Some((
        SequenceNumber::parse(a).ok()?,
        SequenceNumber::parse(b).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::parse_ts;

    #[test]
    fn keys_round_trip() {
        let ts = parse_ts("2026-11-25T07:59:59.999Z").unwrap();
        let key = data_key(
            "orders",
            hour_of(ts),
            "shardId-000000000001",
            &SequenceNumber::parse("10").unwrap(),
            &SequenceNumber::parse("20").unwrap(),
        );
        assert_eq!(
            key,
            "stream=orders/dt=2026-11-25/hour=07/shard=shardId-000000000001/10-20.json.gz"
        );
        let parsed = parse_data_key(&key).unwrap();
        assert_eq!(parsed.hour, parse_ts("2026-11-25T07:00:00Z").unwrap());
        assert_eq!(parsed.shard_id, "shardId-000000000001");
        assert_eq!(parsed.range.unwrap().1.as_str(), "20");
        assert!(parsed.gzip);
    }

    #[test]
    fn foreign_names_are_read_by_folders() {
        let p =
            parse_data_key("stream=o/dt=2026-01-02/hour=23/shard=s1/part-1-9.jsonl.gz").unwrap();
        assert_eq!(p.range.unwrap().0.as_str(), "1");
        let p = parse_data_key("stream=o/dt=2026-01-02/hour=23/shard=s1/anything.ndjson").unwrap();
        assert!(p.range.is_none() && !p.gzip);
        assert!(parse_data_key("stream=o/dt=2026-01-02/hour=23/shard=s1/x.parquet").is_none());
        assert!(parse_data_key("stream=o/dt=2026-01-02/hour=24/shard=s1/x.json").is_none());
        assert!(parse_data_key("stream=o/dt=2026-01-02/shard=s1/x.json").is_none());
    }
}
