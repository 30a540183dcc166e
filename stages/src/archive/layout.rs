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

use crate::names::{ShardId, StreamName};
use crate::record::SequenceNumber;

/// The longest object (file) name written: local file systems allow 255 bytes per name.
pub const MAX_FILE_NAME: usize = 255;

/// The prefix of a stream's data objects.
pub fn stream_prefix(stream: &StreamName) -> String {
    format!("stream={stream}/")
}

/// The key of a data object holding records of one shard and one arrival hour (a time within
/// the years 0000–9999, see [`crate::record::check_ts`]).
pub fn data_key(
    stream: &StreamName,
    hour: DateTime<Utc>,
    shard_id: &ShardId,
    first: &SequenceNumber,
    last: &SequenceNumber,
) -> String {
    format!(
        "{}shard={shard_id}/{}",
        hour_folder(stream, hour),
        object_file_name(first, last)
    )
}

/// `stream=<stream>/dt=<YYYY-MM-DD>/hour=<HH>/`.
fn hour_folder(stream: &StreamName, hour: DateTime<Utc>) -> String {
    format!(
        "stream={stream}/dt={:04}-{:02}-{:02}/hour={:02}/",
        hour.year(),
        hour.month(),
        hour.day(),
        hour.hour()
    )
}

/// The file name of a data object: `<first>-<last>.json.gz` in decimal, or, when that would
/// not fit [`MAX_FILE_NAME`] (sequence numbers of more than ~120 digits),
/// `x<first>-x<last>.json.gz` in hexadecimal (at most 227 bytes for Kinesis' longest numbers).
pub fn object_file_name(first: &SequenceNumber, last: &SequenceNumber) -> String {
    let decimal = format!("{first}-{last}.json.gz");
    if decimal.len() <= MAX_FILE_NAME {
        return decimal;
    }
    format!(
        "x{}-x{}.json.gz",
        decimal_to_hex(first.as_str()),
        decimal_to_hex(last.as_str())
    )
}

/// The key of a shard's archival checkpoint.
pub fn checkpoint_key(stream: &StreamName, shard_id: &ShardId) -> String {
    format!("{}{shard_id}.json", checkpoint_prefix(stream))
}

/// The prefix of a stream's checkpoints.
pub fn checkpoint_prefix(stream: &StreamName) -> String {
    format!("_flux/checkpoints/stream={stream}/")
}

/// The shard whose checkpoint `key` (listed under [`checkpoint_prefix`]) is, if it is one: a
/// direct child named `<shard_id>.json` with a legal shard id.
pub fn parse_checkpoint_key(stream: &StreamName, key: &str) -> Option<ShardId> {
    let name = key.strip_prefix(&checkpoint_prefix(stream))?;
    let shard = name.strip_suffix(".json")?;
    ShardId::parse(shard).ok()
}

/// The prefix under which data objects are staged before their checkpoint commits them.
pub fn staging_prefix(stream: &StreamName) -> String {
    format!("_flux/staging/stream={stream}/")
}

/// The key an object is staged under by run `run_id` before it is committed (see
/// docs/archive-format.md, "Commit protocol"); `file` is its [`object_file_name`].
pub fn staged_key(stream: &StreamName, shard_id: &ShardId, run_id: &str, file: &str) -> String {
    format!(
        "{}shard={shard_id}/run={run_id}/{file}",
        staging_prefix(stream)
    )
}

/// A staged object's key, parsed: its shard and its sequence range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedObject {
    /// The full key.
    pub key: String,
    /// The shard its folder names.
    pub shard_id: ShardId,
    /// The first and last sequence numbers its name carries.
    pub range: (SequenceNumber, SequenceNumber),
}

/// Parses a key listed under [`staging_prefix`]; `None` for anything else.
pub fn parse_staged_key(stream: &StreamName, key: &str) -> Option<StagedObject> {
    let rest = key.strip_prefix(&staging_prefix(stream))?;
    let mut parts = rest.split('/');
    let shard = ShardId::parse(parts.next()?.strip_prefix("shard=")?).ok()?;
    parts.next()?.strip_prefix("run=")?;
    let file = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    let range = parse_range(file.strip_suffix(".json.gz")?)?;
    Some(StagedObject {
        key: key.to_owned(),
        shard_id: shard,
        range,
    })
}

/// The key of a run's manifest for one stream (a run may archive several streams).
pub fn run_key(stream: &StreamName, run_id: &str) -> String {
    format!("_flux/runs/stream={stream}/{run_id}.json")
}

/// The key of a gap record: records of a shard that expired after `checkpoint` unarchived.
pub fn gap_key(stream: &StreamName, shard_id: &ShardId, checkpoint: &SequenceNumber) -> String {
    format!("{}shard={shard_id}/{checkpoint}.json", gap_prefix(stream))
}

/// The prefix of a stream's gap records.
pub fn gap_prefix(stream: &StreamName) -> String {
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
    pub shard_id: ShardId,
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

/// Parses a key listed under [`stream_prefix`]`(stream)`; `None` for keys that are not data
/// objects of exactly that stream: `stream=<stream>/dt=<date>/hour=<HH>/shard=<id>/<file>`,
/// nothing more or less, so another stream's folders can never be taken for this one's.
pub fn parse_data_key(stream: &StreamName, key: &str) -> Option<DataObject> {
    let rest = key.strip_prefix(&stream_prefix(stream))?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [dt, hour, shard, file] = parts.as_slice() else {
        return None;
    };
    let dt = NaiveDate::parse_from_str(dt.strip_prefix("dt=")?, "%Y-%m-%d").ok()?;
    let hour = hour
        .strip_prefix("hour=")?
        .parse::<u32>()
        .ok()
        .filter(|h| *h < 24)?;
    let shard = ShardId::parse(shard.strip_prefix("shard=")?).ok()?;
    let (stem, gzip) = DATA_SUFFIXES
        .iter()
        .find_map(|(suffix, gz)| file.strip_suffix(suffix).map(|s| (s, *gz)))?;
    if file.starts_with('.') || file.starts_with('_') || crate::names::is_reserved_file_name(file) {
        return None;
    }
    let time = dt.and_hms_opt(hour, 0, 0)?.and_utc();
    Some(DataObject {
        key: key.to_owned(),
        hour: time,
        shard_id: shard,
        range: parse_range(stem),
        gzip,
    })
}

/// True when a data object was written by the archive sink (its name is
/// [`object_file_name`]), so the sink may remove it when a crashed run left it.
pub fn written_by_sink(obj: &DataObject) -> bool {
    let file = obj.key.rsplit('/').next().unwrap_or_default();
    obj.range.is_some() && file.ends_with(".json.gz") && !file.starts_with("part-")
}

fn parse_range(stem: &str) -> Option<(SequenceNumber, SequenceNumber)> {
    let stem = stem.strip_prefix("part-").unwrap_or(stem);
    let (a, b) = stem.split_once('-')?;
    match (a.strip_prefix('x'), b.strip_prefix('x')) {
        (Some(a), Some(b)) => Some((
            SequenceNumber::parse(&hex_to_decimal(a)?).ok()?,
            SequenceNumber::parse(&hex_to_decimal(b)?).ok()?,
        )),
        (None, None) => Some((
            SequenceNumber::parse(a).ok()?,
            SequenceNumber::parse(b).ok()?,
        )),
        _ => None,
    }
}

/// Converts between bases by schoolbook arithmetic on digit vectors (numbers of at most a few
/// hundred digits; no big-integer crate needed for this).
fn convert(digits: impl Iterator<Item = u32>, from: u32, to: u32) -> Vec<u32> {
    // Little-endian digits in base `to`.
    let mut out: Vec<u32> = vec![0];
    for d in digits {
        let mut carry = d;
        for o in out.iter_mut() {
            let v = *o * from + carry;
            *o = v % to;
            carry = v / to;
        }
        while carry > 0 {
            out.push(carry % to);
            carry /= to;
        }
    }
    out.reverse();
    out
}

fn decimal_to_hex(decimal: &str) -> String {
    convert(decimal.bytes().map(|b| u32::from(b - b'0')), 10, 16)
        .into_iter()
        .map(|d| char::from_digit(d, 16).unwrap_or('0'))
        .collect()
}

fn hex_to_decimal(hex: &str) -> Option<String> {
    if hex.is_empty()
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let digits = hex.chars().map(|c| c.to_digit(16).unwrap_or(0));
    Some(
        convert(digits, 16, 10)
            .into_iter()
            .map(|d| char::from_digit(d, 10).unwrap_or('0'))
            .collect(),
    )
}

#[cfg(test)]
mod tests;
