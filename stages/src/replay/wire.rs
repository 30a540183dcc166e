//! The replay protocol on the wire: the replay annotation of replayed records, the fence records,
//! and recognising either in a payload.
//!
//! Both live in a JSON object payload under one key, `_flux` by default ([`DEFAULT_KEY`]):
//!
//! ```json
//! {"order_id":"o-1", "_flux":{"replay":{"id":"INC-7","mode":"overwrite"},
//!   "origin":{"stream":"orders","shard_id":"shardId-000000000001",
//!             "sequence_number":"4959…","arrival_ts":"2026-11-25T10:00:00.123Z"}}}
//! {"_flux":{"fence":{"replay_id":"INC-7","phase":"open","mode":"overwrite",
//!   "opened_at":"2026-11-25T12:00:00.000Z"}}}
//! {"_flux":{"fence":{"replay_id":"INC-7","phase":"close","mode":"overwrite",
//!   "opened_at":"2026-11-25T12:00:00.000Z","counts":{"records":1200,"shard_records":301}}}}
//! ```
//!
//! A payload that is not a JSON object, or has no such key, or whose key holds neither `fence`
//! nor `replay`, is an ordinary live record ([`Marker::Live`]).

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::version::Version;
use crate::json::ObjectMembers;

/// The payload key the protocol's members live under unless configured otherwise.
pub const DEFAULT_KEY: &str = "_flux";

/// How consumers treat a replayed record (DESIGN §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplayMode {
    /// Apply only where the replayed record is newer than the consumer's state.
    Fill,
    /// Apply unless the consumer's state came from a live record that arrived after the fence.
    Overwrite,
}

/// The `replay` member of a replayed record's annotation: which replay sent it, and how.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplayTag {
    /// The replay's id, e.g. an incident ticket. It names the replay's fences too.
    pub id: String,
    /// `fill` or `overwrite`.
    pub mode: ReplayMode,
}

/// A replayed record's annotation: the replay it belongs to and the position it was archived from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The `replay` member.
    pub replay: ReplayTag,
    /// The `origin` member: where and when the record first arrived.
    pub origin: Version,
}

/// Whether a fence opens or closes a replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FencePhase {
    /// Written to every open shard before the first replayed record; its position is `H`.
    Open,
    /// Written to every open shard after the last replayed record was acknowledged.
    Close,
}

/// What a closing fence reports about the replay it closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceCounts {
    /// Replayed records the sink wrote (acknowledged by Kinesis) in the whole replay.
    pub records: u64,
    /// Of those, the records that landed on the shard carrying this fence.
    pub shard_records: u64,
}

/// A fence record's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The replay this fence opens or closes.
    pub replay_id: String,
    /// `open` or `close`.
    pub phase: FencePhase,
    /// The replay's mode, for consumers that report on replays.
    pub mode: ReplayMode,
    /// When the replay started (the sink's clock), the same in every fence of the replay. It
    /// places the replay in time when a later `fill` replay is compared with it.
    #[serde(with = "super::version::ts_millis")]
    pub opened_at: DateTime<Utc>,
    /// Closing fences only: what the replay sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<FenceCounts>,
}

impl Fence {
    /// The opening fence of replay `replay_id`.
    pub fn open(replay_id: impl Into<String>, mode: ReplayMode, opened_at: DateTime<Utc>) -> Self {
        Fence {
            replay_id: replay_id.into(),
            phase: FencePhase::Open,
            mode,
            opened_at,
            counts: None,
        }
    }

    /// The closing fence matching this opening fence, with the counts for one shard.
    pub fn close(&self, counts: FenceCounts) -> Self {
        Fence {
            phase: FencePhase::Close,
            counts: Some(counts),
            ..self.clone()
        }
    }

    /// The fence record's payload: `{"<key>":{"fence":{…}}}`, with `key` usually [`DEFAULT_KEY`].
    pub fn payload(&self, key: &str) -> Vec<u8> {
        let mut member = serde_json::Map::new();
        member.insert("fence".into(), serde_json::json!(self));
        let mut object = serde_json::Map::new();
        object.insert(key.into(), serde_json::Value::Object(member));
        serde_json::Value::Object(object).to_string().into_bytes()
    }
}

impl Replayed {
    /// The annotation members (`replay`, `origin`) to merge under the key of a replayed payload.
    pub fn members(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        out.insert("replay".into(), serde_json::json!(self.replay));
        out.insert("origin".into(), serde_json::json!(self.origin));
        out
    }
}

/// What a payload says about the replay protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Marker {
    /// An ordinary record (also every payload that is not a JSON object).
    Live,
    /// A replayed record.
    Replayed(Replayed),
    /// A fence.
    Fence(Fence),
}

/// A payload that claims to take part in the protocol but does not follow its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkerError(String);

impl fmt::Display for MarkerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MarkerError {}

/// Reads the protocol's member `key` (usually [`DEFAULT_KEY`]) of a payload, as any JSON parser
/// sees it (docs/replay-protocol.md, "Finding `_flux`"):
///
/// - the payload must be a JSON object (RFC 8259, UTF-8); anything else is [`Marker::Live`];
/// - the member is found by its name after unescaping (`"\u005fflux"` is `_flux`), and of
///   duplicate members the last one counts, at the top level and inside the member (what
///   Python's `json.loads`, JavaScript's `JSON.parse` and Go's `encoding/json` keep);
/// - a member that is not an object, or holds neither `fence` nor `replay` (user annotations
///   only), is [`Marker::Live`].
///
/// A `fence` or `replay` that does not parse, a `replay` without `origin`, or both at once are
/// errors: the record meant to take part and cannot. Payloads that contain neither the key as
/// JSON writes it (`"_flux"`) nor a backslash cannot hold the member and are not parsed.
pub fn parse_marker(payload: &[u8], key: &str) -> Result<Marker, MarkerError> {
    // Any other spelling of the name uses an escape, so it contains a backslash.
    let quoted = serde_json::to_string(key).unwrap_or_default();
    if memchr::memmem::find(payload, quoted.as_bytes()).is_none()
        && memchr::memchr(b'\\', payload).is_none()
    {
        return Ok(Marker::Live);
    }
    let Ok(Some(raw)) = serde_json::from_slice::<ObjectMembers<'_>>(payload).map(|m| m.last(key))
    else {
        return Ok(Marker::Live);
    };
    marker_of_member(raw.get(), key)
}

/// [`parse_marker`] once the member `key` of a payload (a JSON object) is found: `raw` is its
/// value's JSON text.
pub fn marker_of_member(raw: &str, key: &str) -> Result<Marker, MarkerError> {
    // Read as a `Value`: of duplicate members (here and further in) the last one counts.
    let Ok(serde_json::Value::Object(mut members)) = serde_json::from_str(raw) else {
        return Ok(Marker::Live);
    };
    let err = |what: &str, e: serde_json::Error| {
        MarkerError(format!("`{key}.{what}`: {}", crate::json::error_reason(&e)))
    };
    match (members.remove("fence"), members.remove("replay")) {
        (None, None) => Ok(Marker::Live),
        (Some(_), Some(_)) => Err(MarkerError(format!(
            "`{key}` holds both `fence` and `replay`"
        ))),
        (Some(fence), None) => serde_json::from_value(fence)
            .map(Marker::Fence)
            .map_err(|e| err("fence", e)),
        (None, Some(replay)) => {
            let replay: ReplayTag = serde_json::from_value(replay).map_err(|e| err("replay", e))?;
            let origin = members
                .remove("origin")
                .ok_or_else(|| MarkerError(format!("`{key}.replay` without `{key}.origin`")))?;
            let origin: Version = serde_json::from_value(origin).map_err(|e| err("origin", e))?;
            Ok(Marker::Replayed(Replayed { replay, origin }))
        }
    }
}

#[cfg(test)]
mod tests;
