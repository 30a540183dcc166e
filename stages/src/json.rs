//! JSON helpers shared by stages that read or edit payloads without rebuilding them.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

pub mod probe;
pub(crate) mod scan;

/// A JSON object's members in their original order: names decoded, values kept as raw text (so
/// a payload can be edited without re-serializing the members it does not touch).
pub struct ObjectMembers<'a>(pub Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> ObjectMembers<'a> {
    /// The value of member `name`; with duplicates the last one, as a JSON parser keeps.
    pub fn last(&self, name: &str) -> Option<&'a RawValue> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for ObjectMembers<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = ObjectMembers<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut m: M,
            ) -> Result<Self::Value, M::Error> {
                let mut out = Vec::new();
                while let Some(k) = m.next_key::<Cow<'de, str>>()? {
                    out.push((k, m.next_value::<&'de RawValue>()?));
                }
                Ok(ObjectMembers(out))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// What kind of JSON value `v` is, in words ("a string", "an object", …): error messages name
/// the kind of a value taken from a record, never the value.
pub fn kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The reason a serde_json error gives, without the values it quotes: for input that comes
/// from a record, so that a dead-letter reason or an error message never carries payload
/// content (see [`without_values`]).
pub fn error_reason(e: &serde_json::Error) -> String {
    without_values(&e.to_string())
}

/// A serde error message with the input's value replaced by its kind: `invalid type: string
/// "SECRET", expected u64` becomes `invalid type: expected u64, found a string`, and `unknown
/// variant `SECRET`, expected …` becomes `unknown variant, expected …`. Syntax errors, missing
/// and unknown fields (names, not values) and lengths are kept as they are.
pub fn without_values(message: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(at) = message.find(prefix) {
            let head = &message[..at + prefix.len()];
            let rest = &message[at + prefix.len()..];
            if let Some((kind, expected)) = split_unexpected(rest) {
                // serde_json appends the position: keep it last.
                let (expected, position) = match expected.rfind(" at line ") {
                    Some(i) => expected.split_at(i),
                    None => (expected, ""),
                };
                return format!("{head}{expected}, found {kind}{position}");
            }
            // Unknown shape: keep only what comes after the value.
            return match rest.rfind(", expected ") {
                Some(i) => format!("{head}{}", &rest[i + 2..]),
                None => head.trim_end_matches([' ', ':']).to_owned(),
            };
        }
    }
    if let Some(at) = message.find("unknown variant `") {
        let rest = &message[at..];
        return match rest.find("`, expected ") {
            Some(i) => format!("{}unknown variant, {}", &message[..at], &rest[i + 3..]),
            None => format!("{}unknown variant", &message[..at]),
        };
    }
    message.to_owned()
}

/// Splits serde's `Unexpected` text from what follows it: the kind in words, and the rest
/// starting at `expected …`.
fn split_unexpected(rest: &str) -> Option<(&'static str, &str)> {
    fn after(tail: &str) -> Option<&str> {
        tail.strip_prefix(", ")
    }
    if let Some(s) = rest.strip_prefix("string \"") {
        // A Debug-quoted string: skip escapes up to the closing quote.
        let mut escaped = false;
        for (i, c) in s.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => return after(&s[i + 1..]).map(|t| ("a string", t)),
                _ => {}
            }
        }
        return None;
    }
    for (word, kind) in [
        ("integer `", "an integer"),
        ("floating point `", "a number"),
        ("boolean `", "a boolean"),
        ("character `", "a character"),
    ] {
        if let Some(s) = rest.strip_prefix(word) {
            let end = s.find("`, expected ")?;
            return after(&s[end + 1..]).map(|t| (kind, t));
        }
    }
    for (word, kind) in [
        ("map, ", "an object"),
        ("sequence, ", "an array"),
        ("unit value, ", "null"),
        ("null, ", "null"),
        ("byte array, ", "bytes"),
    ] {
        if let Some(t) = rest.strip_prefix(word) {
            return Some((kind, t));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_lose_their_values() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct T {
            n: u64,
            s: String,
            m: Mode,
        }
        #[derive(Debug, serde::Deserialize)]
        enum Mode {
            #[serde(rename = "fill")]
            Fill,
        }
        for (json, expected) in [
            (
                r#"{"n": "CARD-4111111111111111, expected x"}"#,
                "invalid type: expected u64, found a string",
            ),
            (
                r#"{"n": -4111111111111111}"#,
                "invalid value: expected u64, found an integer",
            ),
            (
                r#"{"n": 1, "s": 4111111111111111.5}"#,
                "invalid type: expected a string, found a number",
            ),
            (
                r#"{"n": 1, "s": true}"#,
                "invalid type: expected a string, found a boolean",
            ),
            (
                r#"{"n": 1, "s": {"secret": 1}}"#,
                "invalid type: expected a string, found an object",
            ),
            (
                r#"{"n": 1, "s": "x", "m": "SUPERSECRET"}"#,
                "unknown variant, expected `fill`",
            ),
        ] {
            let e = serde_json::from_str::<T>(json).unwrap_err();
            let reason = error_reason(&e);
            let position = format!(" at line {} column {}", e.line(), e.column());
            assert_eq!(reason, format!("{expected}{position}"), "{e}");
            assert!(
                !reason.contains("4111") && !reason.contains("SECRET"),
                "{reason}"
            );
        }
        // Syntax errors carry positions only, and stay as they are.
        let e = serde_json::from_str::<T>("{\"n\": 1,").unwrap_err();
        assert_eq!(error_reason(&e), e.to_string());
    }

    #[test]
    fn members_keep_order_and_raw_values_and_the_last_duplicate_wins() {
        let text = r#"{"b": [1, 2], "a\u0062":{"x":1},"b":"last"}"#;
        let m: ObjectMembers<'_> = serde_json::from_str(text).unwrap();
        let names: Vec<&str> = m.0.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(names, ["b", "ab", "b"]);
        assert_eq!(m.0[0].1.get(), "[1, 2]");
        assert_eq!(m.last("b").map(RawValue::get), Some("\"last\""));
        assert_eq!(m.last("ab").map(RawValue::get), Some(r#"{"x":1}"#));
        assert!(m.last("c").is_none());
        assert!(serde_json::from_str::<ObjectMembers<'_>>("[1]").is_err());
    }
}
