//! Key text taken from a JSON value's own text, so that numbers keep their exact spelling.
//!
//! `serde_json::Value` holds numbers beyond u64/i64 as f64: `12345678901234567890123` and
//! `12345678901234567890124` would print as one `1.2345678901234568e22`. A key selected by a
//! JSONPath over a parsed value is therefore looked up again in the text it was parsed from,
//! and its key text made from there ([`key_text`]): strings by their value, numbers, `true` and
//! `false` as written, objects and arrays compact with members sorted by name (the last of
//! duplicate names kept) and numbers inside as written; `null` is no key.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::expr::ValuePath;

/// The key text of one JSON value given by its text (leading and trailing whitespace allowed);
/// `None` for `null` or a text that is not one JSON value.
pub fn key_text(raw: &str) -> Option<Cow<'_, str>> {
    let raw = raw.trim_matches(is_json_whitespace);
    match raw.as_bytes().first()? {
        b'n' => None,
        b'"' => match raw[1..].strip_suffix('"') {
            Some(inner) if !inner.contains('\\') => Some(Cow::Borrowed(inner)),
            _ => serde_json::from_str::<String>(raw).ok().map(Cow::Owned),
        },
        b'{' | b'[' => {
            let mut out = String::with_capacity(raw.len());
            canonical(raw, &mut out)?;
            Some(Cow::Owned(out))
        }
        _ => Some(Cow::Borrowed(raw)),
    }
}

fn is_json_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// Appends the compact form of the JSON text `raw` (members sorted, numbers as written).
fn canonical(raw: &str, out: &mut String) -> Option<()> {
    let raw = raw.trim_matches(is_json_whitespace);
    match raw.as_bytes().first()? {
        b'{' => {
            let members: BTreeMap<String, &RawValue> = serde_json::from_str(raw).ok()?;
            out.push('{');
            for (i, (name, value)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(name).ok()?);
                out.push(':');
                canonical(value.get(), out)?;
            }
            out.push('}');
        }
        b'[' => {
            let items: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item.get(), out)?;
            }
            out.push(']');
        }
        b'"' => {
            let s: String = serde_json::from_str(raw).ok()?;
            out.push_str(&serde_json::to_string(&s).ok()?);
        }
        _ => out.push_str(raw),
    }
    Some(())
}

/// The key `path` selects in `root`, as [`ValuePath::select_key`] makes it except that numbers
/// (also inside objects and arrays) keep their exact text: a selected value inside `parsed`,
/// the value parsed from the JSON text `text`, is read from `text` again. `None` when nothing
/// or null is selected.
pub fn select_key(path: &ValuePath, root: &Value, parsed: &Value, text: &[u8]) -> Option<String> {
    let selected = path.select(root)?;
    match selected {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(_) | Value::Array(_) | Value::Object(_) => {
            let mut steps = Vec::new();
            let exact = if locate(parsed, selected, &mut steps) {
                std::str::from_utf8(text)
                    .ok()
                    .and_then(|t| raw_at(t, &steps))
                    .and_then(|raw| key_text(raw).map(Cow::into_owned))
            } else {
                None
            };
            // Only a value that is not in `text` (an envelope field, an annotation) is printed
            // from the parsed value.
            Some(exact.unwrap_or_else(|| selected.to_string()))
        }
    }
}

/// The key `path` selects in a record's envelope view, numbers in the payload keeping their
/// exact text (see [`select_key`]).
pub fn record_key(path: &ValuePath, record: &crate::record::Record) -> Option<String> {
    let view = record.view(record.data_view());
    let data = view.get("data")?;
    select_key(path, &view, data, &record.data)
}

/// One step from a JSON value to a value inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    Member(&'a str),
    Index(usize),
}

/// The steps from `node` to `target` (the same value in memory), if `target` is inside `node`.
fn locate<'v>(node: &'v Value, target: &Value, steps: &mut Vec<Step<'v>>) -> bool {
    if std::ptr::eq(node, target) {
        return true;
    }
    match node {
        Value::Object(members) => {
            for (name, value) in members {
                steps.push(Step::Member(name));
                if locate(value, target, steps) {
                    return true;
                }
                steps.pop();
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                steps.push(Step::Index(i));
                if locate(item, target, steps) {
                    return true;
                }
                steps.pop();
            }
        }
        _ => {}
    }
    false
}

/// The text of the value at `steps` in the JSON text `text` (the last of duplicate members, as
/// a parse into a value keeps it).
fn raw_at<'t>(text: &'t str, steps: &[Step<'_>]) -> Option<&'t str> {
    let mut current = text.trim_matches(is_json_whitespace);
    for step in steps {
        let mut de = serde_json::Deserializer::from_str(current);
        current = StepSeed(*step).deserialize(&mut de).ok()??.get();
    }
    Some(current)
}

/// Deserializes a container and keeps the raw text of the member or element of one step.
struct StepSeed<'s>(Step<'s>);

impl<'de> DeserializeSeed<'de> for StepSeed<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StepSeed<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object or an array")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let Step::Member(name) = self.0 else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut found = None;
        while let Some(hit) = map.next_key_seed(NameIs(name))? {
            if hit {
                found = Some(map.next_value::<&RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
        let Step::Index(index) = self.0 else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(None);
        };
        let mut found = None;
        let mut i = 0;
        while let Some(item) = seq.next_element::<&RawValue>()? {
            if i == index {
                found = Some(item);
            }
            i += 1;
        }
        Ok(found)
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

    #[test]
    fn key_text_keeps_numbers_as_written() {
        assert_eq!(
            key_text(" 12345678901234567890123 ").as_deref(),
            Some("12345678901234567890123")
        );
        assert_eq!(key_text("1.50").as_deref(), Some("1.50"));
        assert_eq!(key_text(r#""a\"b""#).as_deref(), Some("a\"b"));
        assert_eq!(key_text(r#""plain""#).as_deref(), Some("plain"));
        assert_eq!(key_text("null"), None);
        assert_eq!(key_text("true").as_deref(), Some("true"));
        assert_eq!(
            key_text(r#"{ "b": [1.0, {"y":2,"x":"\u0041"}], "a": 1e400, "b": 3 }"#).as_deref(),
            Some(r#"{"a":1e400,"b":3}"#)
        );
        assert_eq!(
            key_text(r#"[ {"z":1,"a":null}, "é" ]"#).as_deref(),
            Some(r#"[{"a":null,"z":1},"é"]"#)
        );
    }

    #[test]
    fn selected_values_are_read_from_their_text() {
        let text = br#"{"a":[5, {"k": 10000000000000000000001}], "a": [1, {"k":2.50}], "n": -0}"#;
        let parsed: Value = serde_json::from_slice(text).unwrap();
        let key =
            |path: &str| select_key(&ValuePath::compile(path).unwrap(), &parsed, &parsed, text);
        assert_eq!(key("$.a[1].k").as_deref(), Some("2.50"));
        assert_eq!(key("$.a[?@.k > 2].k").as_deref(), Some("2.50"));
        assert_eq!(key("$.n").as_deref(), Some("-0"));
        assert_eq!(key("$.a").as_deref(), Some(r#"[1,{"k":2.50}]"#));
        assert_eq!(key("$.z"), None);
        // A value that is not inside the parsed text prints from the value.
        let root = serde_json::json!({"data": parsed.clone(), "x": 7});
        let key = |path: &str| {
            select_key(
                &ValuePath::compile(path).unwrap(),
                &root,
                &root["data"],
                text,
            )
        };
        assert_eq!(key("$.x").as_deref(), Some("7"));
        assert_eq!(key("$.data.n").as_deref(), Some("-0"));
    }
}
