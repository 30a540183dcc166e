//! The record that flows through a pipeline, and its archive envelope (DESIGN §4).
//!
//! A [`Record`] keeps its payload as the exact bytes the producer sent. When it is written to the
//! archive, [`Record::write_envelope`] embeds the payload verbatim under `data` when it is one line
//! of valid JSON, and base64-encodes it under `data_b64` otherwise, so a replay writes back exactly
//! the original bytes. [`Record::parse_envelope`] is the inverse and never re-serializes `data`.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, SubsecRound, TimeZone, Utc};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::names::{ShardId, StreamName};

/// The most digits a sequence number may have (Kinesis: `0|([1-9]\d{0,128})`).
pub const MAX_SEQUENCE_DIGITS: usize = 129;

/// A Kinesis sequence number: a decimal string of up to [`MAX_SEQUENCE_DIGITS`] digits, compared
/// numerically: equality, hashing and order all ignore leading zeros (`007` == `7`), while the
/// text is kept as it was given.
#[derive(Clone)]
pub struct SequenceNumber(Arc<str>);

impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for SequenceNumber {}

impl std::hash::Hash for SequenceNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.significant().hash(state);
    }
}

impl SequenceNumber {
    /// Wraps a decimal string; fails unless it is a run of 1 to [`MAX_SEQUENCE_DIGITS`] ASCII
    /// digits (Kinesis' own pattern is `0|([1-9]\d{0,128})`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a sequence number must be a decimal string of digits".into());
        }
        if text.len() > MAX_SEQUENCE_DIGITS {
            return Err(format!(
                "a sequence number has at most {MAX_SEQUENCE_DIGITS} digits, this one {}",
                text.len()
            ));
        }
        Ok(Self(Arc::from(text)))
    }

    /// A synthetic sequence number for records that never came from Kinesis.
    pub fn from_u64(n: u64) -> Self {
        Self(Arc::from(n.to_string()))
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn significant(&self) -> &str {
        let trimmed = self.0.trim_start_matches('0');
        if trimmed.is_empty() { "0" } else { trimmed }
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serialized as its decimal string, as Kinesis and the archive envelope write it.
impl serde::Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Accepts only a decimal string (see [`SequenceNumber::parse`]).
impl<'de> serde::Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        SequenceNumber::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// One record of a stream: its position, its key, its arrival time and its payload bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The stream the record was read from.
    pub stream: Arc<str>,
    /// The shard the record was read from, e.g. `shardId-000000000001`.
    pub shard_id: Arc<str>,
    /// The record's position in its shard.
    pub sequence_number: SequenceNumber,
    /// The position inside an aggregated (KPL) record, when the record was de-aggregated.
    pub sub_sequence_number: Option<u64>,
    /// The key the producer chose; it selected the shard.
    pub partition_key: String,
    /// When Kinesis accepted the record, in UTC milliseconds.
    pub arrival_ts: DateTime<Utc>,
    /// The payload: exactly the bytes the producer sent.
    pub data: Bytes,
    /// Annotations added by the pipeline (dead-letter reasons, window bounds, …), if any.
    pub annotations: Option<Box<serde_json::Map<String, serde_json::Value>>>,
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
    if data.iter().any(|&b| b == b'\n' || b == b'\r') {
        return PayloadForm::Binary;
    }
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

/// Parses an RFC 3339 timestamp into UTC. The time must fall within the years 0000–9999 in
/// UTC, the range the envelope (RFC 3339) and the archive's `dt=` folders can hold. Errors do
/// not repeat the text (it may come from a payload).
pub fn parse_ts(text: &str) -> Result<DateTime<Utc>, String> {
    let ts = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("not an RFC 3339 time ({e}); write it like \"2026-11-25T10:00:00Z\"")
        })?;
    check_ts(&ts)?;
    Ok(ts)
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
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    data_b64: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Deserializes a present field as `Some`, whatever its JSON value (`null` included).
fn present_raw<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&'de RawValue>::deserialize(d).map(Some)
}

/// Reuses the `Arc<str>` of the previous record when the value repeats (stream and shard ids do).
#[derive(Default)]
pub struct Interner {
    last: Vec<Arc<str>>,
}

impl Interner {
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
        let env: EnvelopeRef<'_> = serde_json::from_slice(line)
            .map_err(|e| format!("invalid envelope: {}", crate::json::error_reason(&e)))?;
        let data = match (env.data, env.data_b64) {
            (Some(raw), None) => Bytes::copy_from_slice(raw.get().as_bytes()),
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
        let stream = interner.intern(&env.stream);
        let shard_id = interner.intern(&env.shard_id);
        StreamName::from_arc(&stream).map_err(|e| format!("invalid envelope: {e}"))?;
        ShardId::from_arc(&shard_id).map_err(|e| format!("invalid envelope: {e}"))?;
        Ok(Record {
            stream,
            shard_id,
            sequence_number: SequenceNumber::parse(&env.sequence_number)
                .map_err(|e| format!("invalid envelope: {e}"))?,
            sub_sequence_number: env.sub_sequence_number,
            partition_key: env.partition_key.into_owned(),
            // The envelope holds milliseconds (what Kinesis gives and `write_envelope` writes):
            // a finer time written by another tool reads as its millisecond, so the record
            // written back is the record read.
            arrival_ts: parse_ts(&env.arrival_ts)
                .map_err(|e| format!("invalid envelope: {e}"))?
                .trunc_subsecs(3),
            data,
            annotations: env.annotations.filter(|m| !m.is_empty()).map(Box::new),
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
        out.extend_from_slice(format_ts(&self.arrival_ts).as_bytes());
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
mod tests {
    use super::*;

    fn record(data: &[u8]) -> Record {
        Record {
            stream: "orders".into(),
            shard_id: "shardId-000000000001".into(),
            sequence_number: SequenceNumber::parse(
                "49590338271490256608559692538361571095921575989136588898",
            )
            .unwrap(),
            sub_sequence_number: None,
            partition_key: "c-\"17\"".into(),
            arrival_ts: parse_ts("2026-11-25T10:00:00.123Z").unwrap(),
            data: Bytes::copy_from_slice(data),
            annotations: None,
        }
    }

    fn round_trip(data: &[u8]) -> (Vec<u8>, Record) {
        let mut line = Vec::new();
        record(data).write_envelope(&mut line);
        let parsed = Record::parse_envelope(&line, &mut Interner::default()).unwrap();
        (line, parsed)
    }

    #[test]
    fn json_payload_is_embedded_verbatim() {
        let data = br#"{"order_id":"o-1","total":1.50,"name":"Zo\u00eb"}"#;
        let (line, parsed) = round_trip(data);
        let text = String::from_utf8(line).unwrap();
        assert!(text.contains(r#""data":{"order_id":"o-1","total":1.50,"name":"Zo\u00eb"}"#));
        assert_eq!(parsed.data.as_ref(), data);
        assert_eq!(parsed, record(data));
    }

    /// Found by the `envelope` fuzz target: an arrival time finer than a millisecond was kept
    /// when read and cut when written, so parse → write → parse changed the record.
    #[test]
    fn an_arrival_time_finer_than_milliseconds_reads_as_its_millisecond() {
        let line = br#"{"stream":"orders","shard_id":"s","sequence_number":"1","partition_key":"c","arrival_ts":"2026-11-26T11:12:13.3191+00:00","data":1}"#;
        let parsed = Record::parse_envelope(line, &mut Interner::default()).unwrap();
        assert_eq!(
            parsed.arrival_ts,
            parse_ts("2026-11-26T11:12:13.319Z").unwrap()
        );
        let mut written = Vec::new();
        parsed.write_envelope(&mut written);
        let again = Record::parse_envelope(&written, &mut Interner::default()).unwrap();
        assert_eq!(again, parsed);
    }

    #[test]
    fn non_json_payloads_round_trip_through_base64() {
        let cases: [&[u8]; 6] = [
            b"plain text",
            b"{\"a\":\n1}",
            b" {\"a\":1}",
            b"{\"a\":1} ",
            &[0xff, 0x00, 0x10],
            b"",
        ];
        for data in cases {
            let (line, parsed) = round_trip(data);
            assert!(String::from_utf8_lossy(&line).contains("\"data_b64\":"));
            assert_eq!(parsed.data.as_ref(), data);
        }
    }

    #[test]
    fn envelope_is_one_line_of_json() {
        let (line, _) = round_trip(b"[1,2,3]");
        assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["partition_key"], "c-\"17\"");
        assert_eq!(v["arrival_ts"], "2026-11-25T10:00:00.123Z");
        assert_eq!(v["data"], serde_json::json!([1, 2, 3]));
    }

    #[test]
    fn annotations_round_trip() {
        let mut r = record(b"1");
        r.annotate("error", "bad".into());
        let mut line = Vec::new();
        r.write_envelope(&mut line);
        let back = Record::parse_envelope(&line, &mut Interner::default()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn sequence_numbers_compare_numerically() {
        let a = SequenceNumber::parse("9").unwrap();
        let b = SequenceNumber::parse("10").unwrap();
        let c = SequenceNumber::parse("0010").unwrap();
        assert!(a < b);
        assert_eq!(b.cmp(&c), Ordering::Equal);
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("").is_err());
    }

    #[test]
    fn bad_envelopes_say_why() {
        let mut i = Interner::default();
        let err = Record::parse_envelope(b"{\"stream\":1}", &mut i).unwrap_err();
        assert!(err.starts_with("invalid envelope"), "{err}");
        let line = br#"{"stream":"s","shard_id":"a","sequence_number":"1","partition_key":"k","arrival_ts":"2026-11-25T10:00:00Z"}"#;
        let err = Record::parse_envelope(line, &mut i).unwrap_err();
        assert!(err.contains("neither"), "{err}");
    }

    #[test]
    fn json_scalars_and_null_round_trip_as_json() {
        for data in [
            &b"null"[..],
            b"true",
            b"false",
            b"0",
            b"-1.5e3",
            b"\"text\"",
            b"[]",
            b"{}",
        ] {
            let (line, parsed) = round_trip(data);
            assert!(
                String::from_utf8_lossy(&line).contains("\"data\":"),
                "{line:?}"
            );
            assert_eq!(parsed.data.as_ref(), data);
        }
    }

    #[test]
    fn json_with_lone_surrogate_escapes_goes_to_base64() {
        for (data, json) in [
            (&br#"{"s":"\ud800"}"#[..], false),
            (br#"{"s":"\udc00x"}"#, false),
            (br#"["\ud800\u0041"]"#, false),
            (br#"{"s":"\ud83d\ude00"}"#, true),
            (br#"{"s":"\\ud800"}"#, true),
            (br#"{"s":"\u00e9\n"}"#, true),
        ] {
            let form = if json {
                PayloadForm::Json
            } else {
                PayloadForm::Binary
            };
            assert_eq!(
                payload_form(data),
                form,
                "{}",
                String::from_utf8_lossy(data)
            );
            if json {
                serde_json::from_slice::<serde_json::Value>(data).unwrap();
            }
        }
    }

    #[test]
    fn json_with_invalid_utf8_inside_strings_goes_to_base64() {
        let data = b"{\"name\":\"Zo\xe9\"}";
        assert_eq!(payload_form(data), PayloadForm::Binary);
        let (line, parsed) = round_trip(data);
        assert!(std::str::from_utf8(&line).is_ok());
        assert_eq!(parsed.data.as_ref(), data);
    }

    #[test]
    fn envelopes_with_names_that_are_not_path_segments_are_refused() {
        let mut i = Interner::default();
        for (stream, shard) in [
            ("orders/x", "s"),
            ("orders", "a/b"),
            ("orders", ""),
            ("..", "s"),
        ] {
            let mut r = record(b"1");
            r.stream = stream.into();
            r.shard_id = shard.into();
            let mut line = Vec::new();
            r.write_envelope(&mut line);
            let err = Record::parse_envelope(&line, &mut i).unwrap_err();
            assert!(
                err.contains("stream name") || err.contains("shard id"),
                "{err}"
            );
        }
        let mut r = record(b"1");
        r.shard_id = ".hidden".into();
        let mut line = Vec::new();
        r.write_envelope(&mut line);
        assert_eq!(Record::parse_envelope(&line, &mut i).unwrap(), r);
    }

    #[test]
    fn times_outside_years_0000_to_9999_are_refused() {
        assert!(parse_ts("9999-12-31T23:30:00-01:00").is_err());
        assert!(parse_ts("0000-01-01T00:30:00+01:00").is_err());
        assert!(parse_ts("9999-12-31T23:59:59.999Z").is_ok());
        assert!(parse_ts("0000-01-01T00:00:00Z").is_ok());
        let err = parse_ts("CARD-4111111111111111").unwrap_err();
        assert!(!err.contains("4111"), "{err}");
    }

    #[test]
    fn sequence_numbers_have_at_most_129_digits() {
        assert!(SequenceNumber::parse(&"9".repeat(129)).is_ok());
        assert!(SequenceNumber::parse(&"9".repeat(130)).is_err());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// JSON-ish payloads: valid JSON of random shapes with random whitespace, broken JSON,
        /// invalid UTF-8 inside strings, BOMs, CRLF, scalars.
        fn payload() -> impl Strategy<Value = Vec<u8>> {
            let leaf = prop_oneof![
                Just("null".to_owned()),
                Just("true".to_owned()),
                any::<i64>().prop_map(|n| n.to_string()),
                "[0-9]{1,40}(\\.[0-9]{1,5})?([eE][+-]?[0-9]{1,3})?",
                any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
                "\"(\\\\u[0-9a-fA-F]{4}|[a-z])*\"",
            ];
            let json = leaf.prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..4)
                        .prop_map(|v| format!("[{}]", v.join(","))),
                    prop::collection::vec(("[a-z_]{0,4}", inner), 0..4).prop_map(|v| {
                        let members: Vec<String> = v
                            .into_iter()
                            .map(|(k, v)| format!("\"{k}\" : {v}"))
                            .collect();
                        format!("{{ {} }}", members.join(" ,\t"))
                    }),
                ]
            });
            prop_oneof![
                json.clone().prop_map(String::into_bytes),
                (json.clone(), "[ \t\r\n]{0,3}", "[ \t\r\n]{0,3}")
                    .prop_map(|(j, a, b)| format!("{a}{j}{b}").into_bytes()),
                (json.clone(), 0usize..64).prop_map(|(j, cut)| {
                    let mut b = j.into_bytes();
                    b.truncate(cut.min(b.len()));
                    b
                }),
                (json, any::<u8>(), any::<prop::sample::Index>()).prop_map(|(j, byte, at)| {
                    let mut b = j.into_bytes();
                    let i = at.index(b.len() + 1);
                    b.insert(i, byte);
                    b
                }),
                json_with_bom(),
                prop::collection::vec(any::<u8>(), 0..64),
            ]
        }

        fn json_with_bom() -> impl Strategy<Value = Vec<u8>> {
            "[a-z]{0,8}".prop_map(|s| {
                let mut b = vec![0xef, 0xbb, 0xbf];
                b.extend_from_slice(format!("{{\"k\":\"{s}\"}}").as_bytes());
                b
            })
        }

        fn hash_of(s: &SequenceNumber) -> u64 {
            use std::hash::{BuildHasher, BuildHasherDefault};
            BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(s)
        }

        proptest! {
            /// Equality, hashing and order agree, whatever leading zeros either side carries.
            #[test]
            fn sequence_number_equality_hash_and_order_agree(
                a in "[0-9]{1,40}", b in "[0-9]{1,40}", za in 0usize..3, zb in 0usize..3,
            ) {
                let x = SequenceNumber::parse(&format!("{}{a}", "0".repeat(za))).unwrap();
                let y = SequenceNumber::parse(&format!("{}{b}", "0".repeat(zb))).unwrap();
                let same = a.trim_start_matches('0') == b.trim_start_matches('0');
                prop_assert_eq!(x == y, same);
                prop_assert_eq!(x.cmp(&y) == Ordering::Equal, same);
                if same {
                    prop_assert_eq!(hash_of(&x), hash_of(&y));
                }
                let x2 = SequenceNumber::parse(&format!("0{a}")).unwrap();
                prop_assert_eq!(x2.as_str(), format!("0{a}"), "the text is kept as given");
            }

            #[test]
            fn any_payload_round_trips_byte_for_byte(data in payload()) {
                let (line, parsed) = round_trip(&data);
                // The line is one line of valid UTF-8 JSON that any reader accepts.
                prop_assert_eq!(line.iter().filter(|&&b| b == b'\n').count(), 1);
                let text = std::str::from_utf8(&line).expect("the envelope is UTF-8");
                let members: std::collections::HashMap<String, Box<RawValue>> =
                    serde_json::from_str(text).expect("the envelope is JSON");
                prop_assert!(members.contains_key("data") != members.contains_key("data_b64"));
                prop_assert_eq!(parsed.data.as_ref(), &data[..]);
            }
        }
    }
}
