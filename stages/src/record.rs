//! The record that flows through a pipeline, and its archive envelope (DESIGN §4).
//!
//! A [`Record`] keeps its payload as the exact bytes the producer sent. When it is written to the
//! archive, [`Record::write_envelope`] embeds the payload verbatim under `data` when it is one line
//! of valid JSON, and base64-encodes it under `data_b64` otherwise, so a replay writes back exactly
//! the original bytes. [`Record::parse_envelope`] is the inverse and never re-serializes `data`.

use std::sync::Arc;

pub use compact_str::CompactString;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeZone, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::names::{ShardId, StreamName};

mod envelope_scan;
mod sequence;
pub use sequence::{MAX_SEQUENCE_DIGITS, SequenceNumber};

use crate::json::probe::{PayloadProbe, Probed};

/// One record of a stream: its position, its key, its arrival time and its payload bytes.
#[derive(Clone, Debug)]
pub struct Record {
    /// The stream the record was read from.
    pub stream: Arc<str>,
    /// The shard the record was read from, e.g. `shardId-000000000001`.
    pub shard_id: Arc<str>,
    /// The record's position in its shard.
    pub sequence_number: SequenceNumber,
    /// The position inside an aggregated (KPL) record, when the record was de-aggregated.
    pub sub_sequence_number: Option<u64>,
    /// The key the producer chose; it selected the shard. Held in place up to 24 bytes.
    pub partition_key: CompactString,
    /// When Kinesis accepted the record, in UTC milliseconds.
    pub arrival_ts: DateTime<Utc>,
    /// The payload: exactly the bytes the producer sent.
    pub data: Bytes,
    /// Annotations added by the pipeline (dead-letter reasons, window bounds, …), if any.
    pub annotations: Option<Box<serde_json::Map<String, serde_json::Value>>>,
    /// What the source that read the record found in `data` for a stage downstream (see
    /// [`crate::json::probe`]); not part of the record's value. A stage that replaces `data`
    /// sets it to `None`.
    pub probed: Option<Probed>,
}

/// Records are equal when their values are: the source's note on the payload is left out.
impl PartialEq for Record {
    fn eq(&self, other: &Record) -> bool {
        self.stream == other.stream
            && self.shard_id == other.shard_id
            && self.sequence_number == other.sequence_number
            && self.sub_sequence_number == other.sub_sequence_number
            && self.partition_key == other.partition_key
            && self.arrival_ts == other.arrival_ts
            && self.data == other.data
            && self.annotations == other.annotations
    }
}

/// How a payload is stored in the envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadForm {
    /// One line of valid JSON without surrounding whitespace: embedded verbatim under `data`.
    Json,
    /// Anything else: base64 under `data_b64`.
    Binary,
}

/// Tells how `data` must be stored so that it round-trips byte for byte.
pub fn payload_form(data: &[u8]) -> PayloadForm {
    let (Some(first), Some(last)) = (data.first(), data.last()) else {
        return PayloadForm::Binary;
    };
    if first.is_ascii_whitespace() || last.is_ascii_whitespace() {
        return PayloadForm::Binary;
    }
    if memchr::memchr2(b'\n', b'\r', data).is_some() {
        return PayloadForm::Binary;
    }
    // The structural scan accepts a text only where serde_json's `Value` parse does (so also
    // its `IgnoredAny`), UTF-8 throughout and without `\u` escapes of surrogates; it is about
    // twice as fast. What it leaves (`Unsure`) is decided below.
    if crate::json::scan::select(data, &[]).is_ok() {
        return PayloadForm::Json;
    }
    payload_form_by_parse(data)
}

/// [`payload_form`] of a payload without surrounding whitespace or line breaks, by
/// serde_json's parse.
#[doc(hidden)]
pub fn payload_form_by_parse(data: &[u8]) -> PayloadForm {
    // Only valid UTF-8 can be embedded: serde's `IgnoredAny` does not check the bytes inside
    // strings, and an archive line that is not UTF-8 is not JSON to any reader.
    let Ok(text) = std::str::from_utf8(data) else {
        return PayloadForm::Binary;
    };
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        // `IgnoredAny` does not pair `\u` surrogate escapes; a lone one is rejected by most
        // JSON readers (serde_json's `Value` among them).
        Ok(_) if !has_lone_surrogate(text) => PayloadForm::Json,
        _ => PayloadForm::Binary,
    }
}

/// True when a JSON text (already known to be well-formed otherwise) has a `\u` escape of a
/// UTF-16 surrogate that is not part of a high-low pair.
fn has_lone_surrogate(text: &str) -> bool {
    let bytes = text.as_bytes();
    let unit = |at: usize| -> Option<u32> {
        let hex = bytes.get(at + 2..at + 6)?;
        (bytes.get(at + 1) == Some(&b'u'))
            .then(|| u32::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            .flatten()
    };
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'\\', &bytes[i..]) {
        let at = i + off;
        match unit(at) {
            Some(0xD800..=0xDBFF) => {
                if !matches!(unit(at + 6), Some(0xDC00..=0xDFFF))
                    || bytes.get(at + 6) != Some(&b'\\')
                {
                    return true;
                }
                i = at + 12;
            }
            Some(0xDC00..=0xDFFF) => return true,
            Some(_) => i = at + 6,
            None => i = at + 2,
        }
    }
    false
}

/// Formats a timestamp as the envelope does: RFC 3339, UTC, milliseconds, `Z`.
pub fn format_ts(ts: &DateTime<Utc>) -> String {
    ts.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Appends [`format_ts`]'s text to `out` without allocating (the envelope writes one per
/// record); times chrono writes otherwise (a leap second, a year outside 0000–9999) go through
/// [`format_ts`].
fn write_ts(out: &mut Vec<u8>, ts: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = ts.year();
    let nanos = ts.nanosecond();
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        out.extend_from_slice(format_ts(ts).as_bytes());
        return;
    }
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut n: u32| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, 4, year.unsigned_abs());
    put(5, 2, ts.month());
    put(8, 2, ts.day());
    put(11, 2, ts.hour());
    put(14, 2, ts.minute());
    put(17, 2, ts.second());
    put(20, 3, nanos / 1_000_000);
    out.extend_from_slice(&text);
}

/// Parses an RFC 3339 timestamp into UTC. The time must fall within the years 0000–9999 in
/// UTC, the range the envelope (RFC 3339) and the archive's `dt=` folders can hold. Errors do
/// not repeat the text (it may come from a payload).
pub fn parse_ts(text: &str) -> Result<DateTime<Utc>, String> {
    if let Some(ts) = parse_envelope_ts(text) {
        return Ok(ts);
    }
    let ts = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("not an RFC 3339 time ({e}); write it like \"2026-11-25T10:00:00Z\"")
        })?;
    check_ts(&ts)?;
    Ok(ts)
}

/// The time of `YYYY-MM-DDTHH:MM:SS.mmmZ`, the form the envelope writes ([`format_ts`]), read
/// without the general RFC 3339 parser; `None` for any other text (a leap second included),
/// which [`parse_ts`] leaves to that parser.
fn parse_envelope_ts(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    if b.len() != 24 || b[23] != b'Z' {
        return None;
    }
    let punctuation = [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'.'),
    ];
    if punctuation.iter().any(|&(at, c)| b[at] != c) {
        return None;
    }
    let number = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let year = i32::try_from(number(0, 4)?).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, number(5, 7)?, number(8, 10)?)?;
    let second = number(17, 19)?;
    if second > 59 {
        return None;
    }
    let time = date.and_hms_milli_opt(number(11, 13)?, number(14, 16)?, second, number(20, 23)?)?;
    Some(time.and_utc())
}

/// Fails unless `ts` falls within the years 0000–9999 UTC (what an envelope and the archive's
/// `dt=YYYY-MM-DD` folders can hold).
pub fn check_ts(ts: &DateTime<Utc>) -> Result<(), String> {
    use chrono::Datelike;
    if (0..=9999).contains(&ts.year()) {
        Ok(())
    } else {
        Err("the time is outside the years 0000–9999 UTC that the archive can hold".into())
    }
}

/// Milliseconds since the epoch as a UTC time (clamped to the epoch when out of range).
pub fn ts_from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[derive(Deserialize)]
struct EnvelopeRef<'a> {
    #[serde(borrow)]
    stream: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    shard_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    sequence_number: std::borrow::Cow<'a, str>,
    #[serde(default)]
    sub_sequence_number: Option<u64>,
    #[serde(borrow)]
    partition_key: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    arrival_ts: std::borrow::Cow<'a, str>,
    // `data: null` is a payload (the four bytes `null`), not an absent field.
    #[serde(borrow, default, deserialize_with = "present_raw")]
    data: Option<&'a [u8]>,
    #[serde(borrow, default)]
    data_b64: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Deserializes a present field as `Some` of its JSON text, whatever its value (`null`
/// included).
fn present_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de [u8]>, D::Error> {
    <&'de RawValue>::deserialize(d).map(|raw| Some(raw.get().as_bytes()))
}

/// Reuses the `Arc<str>` of the previous record when the value repeats (stream and shard ids do).
#[derive(Default)]
pub struct Interner {
    last: Vec<Arc<str>>,
    /// The last stream name and shard id checked to be legal, so that a run of records of one
    /// shard checks them once.
    checked: Option<(Arc<str>, Arc<str>)>,
}

impl Interner {
    /// An envelope's stream name and shard id, shared, once checked to be legal names.
    fn names(&mut self, stream: &str, shard_id: &str) -> Result<(Arc<str>, Arc<str>), String> {
        let stream = self.intern(stream);
        let shard_id = self.intern(shard_id);
        let known = self
            .checked
            .as_ref()
            .is_some_and(|(s, h)| Arc::ptr_eq(s, &stream) && Arc::ptr_eq(h, &shard_id));
        if !known {
            StreamName::from_arc(&stream).map_err(|e| format!("invalid envelope: {e}"))?;
            ShardId::from_arc(&shard_id).map_err(|e| format!("invalid envelope: {e}"))?;
            self.checked = Some((stream.clone(), shard_id.clone()));
        }
        Ok((stream, shard_id))
    }

    /// Returns a shared string equal to `text`, reusing a recent one where possible.
    pub fn intern(&mut self, text: &str) -> Arc<str> {
        if let Some(hit) = self.last.iter().find(|s| &***s == text) {
            return hit.clone();
        }
        let fresh: Arc<str> = Arc::from(text);
        if self.last.len() >= 8 {
            self.last.remove(0);
        }
        self.last.push(fresh.clone());
        fresh
    }
}

impl Record {
    /// Parses one archive line (an envelope) into a record.
    pub fn parse_envelope(line: &[u8], interner: &mut Interner) -> Result<Record, String> {
        Record::parse_envelope_probed(line, interner, None)
    }

    /// [`Record::parse_envelope`], noting on the record where the values at `probe`'s paths lie
    /// in its payload (see [`crate::json::probe`]). Lines of the usual shape are read by one
    /// structural scan ([`envelope_scan`]); the others, and every error, by serde_json.
    pub fn parse_envelope_probed(
        line: &[u8],
        interner: &mut Interner,
        probe: Option<&PayloadProbe>,
    ) -> Result<Record, String> {
        if let Some((env, found)) = envelope_scan::scan(line, probe) {
            // `data` is copied as it is: the values' places in the line's payload are their
            // places in the record's.
            let probed = match (probe, env.data) {
                (Some(p), Some(raw)) => p.note(raw, &found),
                _ => None,
            };
            let mut record = Record::from_envelope(env, interner)?;
            record.probed = probed;
            return Ok(record);
        }
        Record::parse_envelope_by_serde(line, interner)
    }

    /// [`Record::parse_envelope`] by serde_json alone, never by the scan: what the scan must
    /// agree with (tests and fuzzing compare the two).
    #[doc(hidden)]
    pub fn parse_envelope_by_serde(line: &[u8], interner: &mut Interner) -> Result<Record, String> {
        let env: EnvelopeRef<'_> = serde_json::from_slice(line)
            .map_err(|e| format!("invalid envelope: {}", crate::json::error_reason(&e)))?;
        Record::from_envelope(env, interner)
    }

    fn from_envelope(env: EnvelopeRef<'_>, interner: &mut Interner) -> Result<Record, String> {
        let data = match (env.data, env.data_b64) {
            (Some(raw), None) => Bytes::copy_from_slice(raw),
            (None, Some(b64)) => Bytes::from(
                BASE64
                    .decode(b64.as_bytes())
                    // The decoder's message quotes a byte of the payload: not repeated.
                    .map_err(|_| "invalid envelope: data_b64 is not valid base64".to_owned())?,
            ),
            (Some(_), Some(_)) => {
                return Err("invalid envelope: both `data` and `data_b64` are present".into());
            }
            (None, None) => {
                return Err("invalid envelope: neither `data` nor `data_b64` is present".into());
            }
        };
        let (stream, shard_id) = interner.names(&env.stream, &env.shard_id)?;
        Ok(Record {
            stream,
            shard_id,
            sequence_number: SequenceNumber::parse(&env.sequence_number)
                .map_err(|e| format!("invalid envelope: {e}"))?,
            sub_sequence_number: env.sub_sequence_number,
            partition_key: CompactString::from(&*env.partition_key),
            // The envelope holds milliseconds (what Kinesis gives and `write_envelope` writes):
            // a finer time written by another tool reads as its millisecond, so the record
            // written back is the record read.
            arrival_ts: parse_ts(&env.arrival_ts)
                .map_err(|e| format!("invalid envelope: {e}"))?
                .trunc_subsecs(3),
            data,
            annotations: env.annotations.filter(|m| !m.is_empty()).map(Box::new),
            probed: None,
        })
    }

    /// Appends this record's envelope as one JSON line (with the trailing newline) to `out`.
    pub fn write_envelope(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"stream\":");
        write_json_str(out, &self.stream);
        out.extend_from_slice(b",\"shard_id\":");
        write_json_str(out, &self.shard_id);
        out.extend_from_slice(b",\"sequence_number\":\"");
        out.extend_from_slice(self.sequence_number.as_str().as_bytes());
        out.push(b'"');
        if let Some(sub) = self.sub_sequence_number {
            out.extend_from_slice(format!(",\"sub_sequence_number\":{sub}").as_bytes());
        }
        out.extend_from_slice(b",\"partition_key\":");
        write_json_str(out, &self.partition_key);
        out.extend_from_slice(b",\"arrival_ts\":\"");
        write_ts(out, &self.arrival_ts);
        out.push(b'"');
        match payload_form(&self.data) {
            PayloadForm::Json => {
                out.extend_from_slice(b",\"data\":");
                out.extend_from_slice(&self.data);
            }
            PayloadForm::Binary => {
                out.extend_from_slice(b",\"data_b64\":\"");
                out.extend_from_slice(BASE64.encode(&self.data).as_bytes());
                out.push(b'"');
            }
        }
        if let Some(annotations) = &self.annotations {
            out.extend_from_slice(b",\"annotations\":");
            // A map of JSON values always serializes.
            out.extend_from_slice(&serde_json::to_vec(annotations).unwrap_or_default());
        }
        out.extend_from_slice(b"}\n");
    }

    /// The number of bytes this record accounts for in channel and size limits.
    pub fn weight(&self) -> usize {
        self.data.len() + self.partition_key.len() + 64
    }

    /// Parses the payload as JSON, if it is JSON.
    pub fn data_json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.data).ok()
    }

    /// The envelope view used by filter expressions and templates:
    /// `{stream, shard_id, sequence_number, partition_key, arrival_ts, data}`, where `data` is the
    /// parsed payload when it is JSON and the payload text (or null when not UTF-8) otherwise.
    pub fn view(&self, data: serde_json::Value) -> serde_json::Value {
        let mut map = serde_json::Map::with_capacity(7);
        map.insert("stream".into(), self.stream.as_ref().into());
        map.insert("shard_id".into(), self.shard_id.as_ref().into());
        map.insert(
            "sequence_number".into(),
            self.sequence_number.as_str().into(),
        );
        map.insert("partition_key".into(), self.partition_key.as_str().into());
        map.insert("arrival_ts".into(), format_ts(&self.arrival_ts).into());
        map.insert("data".into(), data);
        if let Some(annotations) = &self.annotations {
            map.insert(
                "annotations".into(),
                serde_json::Value::Object((**annotations).clone()),
            );
        }
        serde_json::Value::Object(map)
    }

    /// The payload as the view shows it: parsed JSON, else text, else null.
    pub fn data_view(&self) -> serde_json::Value {
        if let Some(v) = self.data_json() {
            return v;
        }
        match std::str::from_utf8(&self.data) {
            Ok(text) => serde_json::Value::String(text.to_owned()),
            Err(_) => serde_json::Value::Null,
        }
    }

    /// Adds an annotation, creating the annotation map when needed.
    pub fn annotate(&mut self, key: &str, value: serde_json::Value) {
        self.annotations
            .get_or_insert_with(Default::default)
            .insert(key.to_owned(), value);
    }
}

fn write_json_str(out: &mut Vec<u8>, s: &str) {
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// A batch of records moving between stages. Batches are shared (`Arc`) on fan-out, never copied.
pub type Batch = Vec<Record>;

/// The total weight (see [`Record::weight`]) of a batch.
pub fn batch_weight(batch: &[Record]) -> usize {
    batch.iter().map(Record::weight).sum()
}

/// Milliseconds since the epoch of a time Kinesis reports (`ApproximateArrivalTimestamp`),
/// rounded to the nearest millisecond; every Kinesis time becomes milliseconds through here.
///
/// Kinesis sends epoch seconds with a millisecond fraction (`1764064800.123`), which the SDK
/// parses as an f64 and splits into seconds and truncated nanoseconds. The f64 nearest a
/// millisecond can lie a few hundred nanoseconds below it (`…800.12299990654`), so truncating
/// (`DateTime::to_millis`) would make such a time 1 ms early; the f64 error is far below half a
/// millisecond, so rounding gives back the millisecond Kinesis sent.
pub fn kinesis_millis(t: &aws_smithy_types::DateTime) -> i64 {
    let millis = (i64::from(t.subsec_nanos()) + 500_000) / 1_000_000;
    t.secs().saturating_mul(1000).saturating_add(millis)
}

#[cfg(test)]
mod tests;
