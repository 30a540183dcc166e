//! JSON helpers shared by stages that read or edit payloads without rebuilding them.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

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

#[cfg(test)]
mod tests {
    use super::*;

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
