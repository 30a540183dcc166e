//! The compaction key of a record: a JSONPath into the record view, or `partition_key`.
//!
//! Three forms, chosen when the pipeline is loaded:
//! - `partition_key` (also `$.partition_key` / `@.partition_key`): the record's own field, no
//!   parsing at all;
//! - a simple dotted path into the payload, `$.data.customer_id` (`@.` works too): only that path
//!   is walked in the payload bytes, every other value is skipped unparsed, and strings without
//!   escapes are used in place;
//! - anything else (brackets, wildcards, other envelope fields, annotations): the general
//!   JSONPath over the [record view](crate::record::Record::view).
//!
//! All three agree on the key text: a string's value, any other non-null value as JSON text
//! (so `7` and `"7"` are the same key), and no key for null or a path that is not found.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use crate::expr::ValuePath;
use crate::record::Record;

mod scan;

/// A compiled key path.
#[derive(Debug, Clone)]
pub struct KeyPath {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    PartitionKey,
    /// Member names below `data`, at least one.
    Data(Vec<String>),
    General(ValuePath),
}

impl KeyPath {
    /// Compiles `partition_key`, `$.…` or `@.…`.
    pub fn compile(text: &str) -> Result<KeyPath, String> {
        let trimmed = text.trim();
        let normalized = match trimmed.strip_prefix('@') {
            Some(rest) => format!("${rest}"),
            None if trimmed == "partition_key" => "$.partition_key".to_owned(),
            None => trimmed.to_owned(),
        };
        let general = ValuePath::compile(&normalized).map_err(|e| {
            format!("{e}; a key is `partition_key` or a path such as \"$.data.customer_id\"")
        })?;
        let names: Option<Vec<&str>> = normalized
            .strip_prefix("$.")
            .map(|rest| rest.split('.').collect())
            .filter(|names: &Vec<&str>| names.iter().all(|n| is_simple_name(n)));
        let kind = match names.as_deref() {
            Some(["partition_key"]) => Kind::PartitionKey,
            Some(["data", rest @ ..]) if !rest.is_empty() => {
                Kind::Data(rest.iter().map(|s| (*s).to_owned()).collect())
            }
            _ => Kind::General(general),
        };
        Ok(KeyPath {
            source: trimmed.to_owned(),
            kind,
        })
    }

    /// The path as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the fast path (no full parse of the payload) applies.
    pub fn is_fast(&self) -> bool {
        !matches!(self.kind, Kind::General(_))
    }

    /// The record's key as bytes, or `None` when the path selects nothing (or null).
    pub fn extract<'r>(&self, record: &'r Record) -> Option<Cow<'r, [u8]>> {
        match &self.kind {
            Kind::PartitionKey => Some(Cow::Borrowed(record.partition_key.as_bytes())),
            Kind::Data(names) => data_key(&record.data, names),
            Kind::General(path) => path
                .select_key(&record.view(record.data_view()))
                .map(|s| Cow::Owned(s.into_bytes())),
        }
    }
}

fn is_simple_name(n: &str) -> bool {
    let mut bytes = n.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Walks `names` in the JSON payload without building it; the leaf becomes the key.
///
/// A structural scan ([`scan`]) finds the leaf first; where it meets anything it does not
/// expect (not an object, escaped member names, a truncated or trailing text), serde decides
/// instead. The scan skips values without validating them, and stops once the leaf is found
/// and no name of the path follows: the archive source has validated every payload it embeds
/// already, so checking each one again would double the work. (A payload that is not JSON
/// after its key still has that key.)
fn data_key<'r>(payload: &'r [u8], names: &[String]) -> Option<Cow<'r, [u8]>> {
    match scan::select(payload, names) {
        Ok(leaf) => leaf_key(std::str::from_utf8(leaf?).ok()?),
        Err(scan::Unsure) => {
            let mut de = serde_json::Deserializer::from_slice(payload);
            let leaf = PathSeed { names }.deserialize(&mut de).ok()??;
            de.end().ok()?;
            leaf_key(leaf.get())
        }
    }
}

/// The key text of a selected value (its JSON text), as [`ValuePath::select_key`] makes it.
fn leaf_key(text: &str) -> Option<Cow<'_, [u8]>> {
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"'))
        && !inner.contains('\\')
    {
        return Some(Cow::Borrowed(inner.as_bytes()));
    }
    match serde_json::from_str::<serde_json::Value>(text).ok()? {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(Cow::Owned(s.into_bytes())),
        other => Some(Cow::Owned(other.to_string().into_bytes())),
    }
}

/// Selects the value at `names` (the last duplicate member wins, as when parsing into a value).
struct PathSeed<'p> {
    names: &'p [String],
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.names.is_empty() {
            return <&RawValue as serde::Deserialize>::deserialize(d).map(Some);
        }
        d.deserialize_any(PathVisitor { names: self.names })
    }
}

struct PathVisitor<'p> {
    names: &'p [String],
}

impl<'de> Visitor<'de> for PathVisitor<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut found = None;
        while let Some(hit) = map.next_key_seed(NameIs(&self.names[0]))? {
            if hit {
                found = map.next_value_seed(PathSeed {
                    names: &self.names[1..],
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

/// A member name, compared with one expected name without allocating.
struct NameIs<'n>(&'n str);

impl<'de> DeserializeSeed<'de> for NameIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for NameIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }
    fn visit_str<E>(self, v: &str) -> Result<bool, E> {
        Ok(v == self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{SequenceNumber, ts_from_millis};

    fn rec(data: &str) -> Record {
        Record {
            stream: "orders".into(),
            shard_id: "shardId-000000000000".into(),
            sequence_number: SequenceNumber::from_u64(1),
            sub_sequence_number: None,
            partition_key: "pk-1".into(),
            arrival_ts: ts_from_millis(0),
            data: bytes::Bytes::copy_from_slice(data.as_bytes()),
            annotations: None,
        }
    }

    fn key(path: &str, data: &str) -> Option<String> {
        KeyPath::compile(path)
            .unwrap()
            .extract(&rec(data))
            .map(|k| String::from_utf8(k.into_owned()).unwrap())
    }

    #[test]
    fn forms_are_recognised() {
        assert!(KeyPath::compile("partition_key").unwrap().is_fast());
        assert!(KeyPath::compile("@.partition_key").unwrap().is_fast());
        assert!(KeyPath::compile("$.data.customer_id").unwrap().is_fast());
        assert!(KeyPath::compile("@.data.a.b_2").unwrap().is_fast());
        assert!(!KeyPath::compile("$.data['a b']").unwrap().is_fast());
        assert!(!KeyPath::compile("$.data").unwrap().is_fast());
        assert!(!KeyPath::compile("$.shard_id").unwrap().is_fast());
        assert!(KeyPath::compile("data.x").is_err());
        assert!(KeyPath::compile("$.data[").is_err());
    }

    #[test]
    fn fast_path_agrees_with_the_general_path() {
        let payloads = [
            r#"{"a":{"b":"x"},"c":1}"#,
            r#"{"c":[1,{"b":2}],"a":{"z":null,"b":"q\"uote\u00e9"}}"#,
            r#"{"a":{"b":7}}"#,
            r#"{"a":{"b":1.50}}"#,
            r#"{"a":{"b":true}}"#,
            r#"{"a":{"b":null}}"#,
            r#"{"a":{"b":{"y":1,"x":[2]}}}"#,
            r#"{"a":{"b":"first"},"a":{"b":"last"}}"#,
            r#"{"a":[{"b":1}]}"#,
            r#"{"a":"b"}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#""text""#,
            "not json",
            r#"{"a":{"b":"x"}} trailing"#,
        ];
        // Text that is not JSON after the key: the scan does not validate (the archive source
        // has), so the key found before it counts.
        assert_eq!(
            key("$.data.a.b", r#"{"a":{"b":"x"}} trailing"#).as_deref(),
            Some("x")
        );
        let payloads = &payloads[..payloads.len() - 1];
        let general = KeyPath {
            source: String::new(),
            kind: Kind::General(ValuePath::compile("$.data.a.b").unwrap()),
        };
        for p in payloads {
            let fast = key("$.data.a.b", p);
            let slow = general
                .extract(&rec(p))
                .map(|k| String::from_utf8(k.into_owned()).unwrap());
            assert_eq!(fast, slow, "payload {p}");
        }
        assert_eq!(
            key("$.data.a.b", r#"{"a":{"b":"x"}}"#).as_deref(),
            Some("x")
        );
        assert_eq!(key("partition_key", "{}").as_deref(), Some("pk-1"));
        assert_eq!(
            key("$.data.a.b", r#"{"a":{"b":"x"},"a":{"c":1}}"#),
            None,
            "the last duplicate decides"
        );
        assert_eq!(
            key("$.data.a", r#"{"a":1,"\u0061":2}"#).as_deref(),
            Some("2"),
            "also when spelled with escapes"
        );
        assert_eq!(
            key("$.shard_id", "{}").as_deref(),
            Some("shardId-000000000000")
        );
    }

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            (-1e6f64..1e6).prop_map(serde_json::Value::from),
            "[a-c\\\"{}\\[\\]:, é\\\\]{0,6}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 32, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[abc]", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The structural scan selects what the general JSONPath selects, in compact and
        /// pretty-printed payloads.
        #[test]
        fn scan_agrees_with_the_general_path(v in json_value(), pretty: bool, depth in 1usize..3) {
            let text = if pretty {
                serde_json::to_string_pretty(&v).unwrap()
            } else {
                serde_json::to_string(&v).unwrap()
            };
            let path = ["$.data", ".a", ".b"][..=depth].concat();
            let general = KeyPath {
                source: String::new(),
                kind: Kind::General(ValuePath::compile(&path).unwrap()),
            };
            let slow = general
                .extract(&rec(&text))
                .map(|k| String::from_utf8(k.into_owned()).unwrap());
            proptest::prop_assert_eq!(key(&path, &text), slow, "payload {}", text);
            // The scan itself decided (serde's answer is only the fallback).
            let names: Vec<String> = ["a", "b"][..depth].iter().map(|s| (*s).to_owned()).collect();
            proptest::prop_assert!(scan::select(text.as_bytes(), &names).is_ok(), "unsure on {}", text);
        }
    }
}
