//! Reads an envelope line of the usual shape in one structural scan ([`crate::json::scan`]),
//! with the same result as serde_json's parse of [`EnvelopeRef`], and finds a probe's paths in
//! the payload on the way (see [`crate::json::probe`]).
//!
//! The scan checks the whole line, payload included, once; serde_json would check the payload
//! too, and a stage downstream that reads paths of it would scan it again. Anything the scan
//! does not mirror exactly (escaped member names, a duplicate field, a field of an unexpected
//! type, an error of any kind) is left to serde_json: [`scan`] then answers `None`.

use std::borrow::Cow;

use super::EnvelopeRef;
use crate::json::probe::{MAX_PROBED_PATHS, PayloadProbe};
use crate::json::scan::{Unsure, object_members};

/// The values a probe's paths found in the payload (slices of the line).
pub(super) type Found<'a> = [Option<&'a [u8]>; MAX_PROBED_PATHS];

/// The envelope of `line` as serde_json reads it, and the values at `probe`'s paths in its
/// `data`; `None` where serde_json must decide.
pub(super) fn scan<'a>(
    line: &'a [u8],
    probe: Option<&PayloadProbe>,
) -> Option<(EnvelopeRef<'a>, Found<'a>)> {
    let mut wanted: [(usize, &[String]); MAX_PROBED_PATHS] = [(0, &[]); MAX_PROBED_PATHS];
    let paths = probe.map_or(&[][..], PayloadProbe::paths);
    for (i, path) in paths.iter().enumerate() {
        wanted[i] = (i, path);
    }
    let mut found: Found<'a> = [None; MAX_PROBED_PATHS];
    let mut fields = Fields::default();
    object_members(
        line,
        b"data",
        &wanted[..paths.len()],
        &mut found[..paths.len()],
        |name, value| fields.set(name, value),
    )
    .ok()?;
    Some((fields.envelope()?, found))
}

/// The members of an envelope as the scan met them (JSON texts).
#[derive(Default)]
struct Fields<'a> {
    stream: Option<&'a [u8]>,
    shard_id: Option<&'a [u8]>,
    sequence_number: Option<&'a [u8]>,
    sub_sequence_number: Option<&'a [u8]>,
    partition_key: Option<&'a [u8]>,
    arrival_ts: Option<&'a [u8]>,
    data: Option<&'a [u8]>,
    data_b64: Option<&'a [u8]>,
    annotations: Option<&'a [u8]>,
}

impl<'a> Fields<'a> {
    /// Keeps a member's text; a duplicate field is left to serde_json (which refuses it), and
    /// other members are ignored, as serde_json does.
    fn set(&mut self, name: &'a [u8], value: &'a [u8]) -> Result<(), Unsure> {
        let slot = match name {
            b"stream" => &mut self.stream,
            b"shard_id" => &mut self.shard_id,
            b"sequence_number" => &mut self.sequence_number,
            b"sub_sequence_number" => &mut self.sub_sequence_number,
            b"partition_key" => &mut self.partition_key,
            b"arrival_ts" => &mut self.arrival_ts,
            b"data" => &mut self.data,
            b"data_b64" => &mut self.data_b64,
            b"annotations" => &mut self.annotations,
            _ => return Ok(()),
        };
        if slot.replace(value).is_some() {
            return Err(Unsure);
        }
        Ok(())
    }

    fn envelope(self) -> Option<EnvelopeRef<'a>> {
        Some(EnvelopeRef {
            stream: string(self.stream?)?,
            shard_id: string(self.shard_id?)?,
            sequence_number: string(self.sequence_number?)?,
            sub_sequence_number: match self.sub_sequence_number {
                None => None,
                Some(text) => optional(text, unsigned)?,
            },
            partition_key: string(self.partition_key?)?,
            arrival_ts: string(self.arrival_ts?)?,
            data: self.data,
            data_b64: match self.data_b64 {
                None => None,
                Some(text) => optional(text, string)?,
            },
            annotations: match self.annotations {
                None => None,
                Some(text) => serde_json::from_slice(text).ok()?,
            },
        })
    }
}

/// `null` as `Some(None)` (an `Option` field that is null), anything else by `read`.
fn optional<'a, T>(text: &'a [u8], read: impl Fn(&'a [u8]) -> Option<T>) -> Option<Option<T>> {
    if text == b"null" {
        return Some(None);
    }
    read(text).map(Some)
}

/// A JSON string's value (checked JSON already); borrowed where it has no escapes.
fn string(text: &[u8]) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix(b"\"")?.strip_suffix(b"\"")?;
    if memchr::memchr(b'\\', inner).is_none() {
        return std::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    serde_json::from_slice::<String>(text).ok().map(Cow::Owned)
}

/// A JSON integer that fits a `u64`, written in digits only.
fn unsigned(text: &[u8]) -> Option<u64> {
    if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

#[cfg(test)]
mod tests;
