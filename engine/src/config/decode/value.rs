//! A serde `Deserializer` over a parsed TOML value (`toml::de::DeValue`, with spans) whose
//! errors are [`DecodeError`]s: typed, and placed on the key or value they are about. It
//! decodes exactly as `toml::de::ValueDeserializer` does (the same visits for each TOML type,
//! date-times as toml's private one-key table), so configuration types see no difference.

use std::ops::Range;

use serde::de::value::{CowStrDeserializer, MapDeserializer};
use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, Visitor};
use toml::Spanned;
use toml::de::{DeString, DeValue};

use super::error::DecodeError;

/// The key under which toml passes a date-time to `toml::value::Datetime`'s `Deserialize`.
const DATETIME_KEY: &str = "$__toml_private_datetime";

/// One TOML value and its span, ready to decode.
pub(crate) struct ValueDecoder<'a> {
    value: DeValue<'a>,
    span: Range<usize>,
}

impl<'a> From<Spanned<DeValue<'a>>> for ValueDecoder<'a> {
    fn from(v: Spanned<DeValue<'a>>) -> Self {
        let span = v.span();
        ValueDecoder {
            value: v.into_inner(),
            span,
        }
    }
}

impl<'de> de::Deserializer<'de> for ValueDecoder<'de> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let span = self.span;
        match self.value {
            DeValue::String(DeString::Owned(s)) => visitor.visit_string(s),
            DeValue::String(DeString::Borrowed(s)) => visitor.visit_borrowed_str(s),
            DeValue::Integer(i) => {
                let (text, radix) = (i.as_str(), i.radix());
                if let Ok(v) = i64::from_str_radix(text, radix) {
                    visitor.visit_i64(v)
                } else if let Ok(v) = u64::from_str_radix(text, radix) {
                    visitor.visit_u64(v)
                } else if let Ok(v) = i128::from_str_radix(text, radix) {
                    visitor.visit_i128(v)
                } else if let Ok(v) = u128::from_str_radix(text, radix) {
                    visitor.visit_u128(v)
                } else {
                    Err(DecodeError::custom("integer number overflowed"))
                }
            }
            DeValue::Float(f) => match f.as_str().parse::<f64>() {
                // Infinite only when written so ("inf"); else the number overflowed.
                Ok(v) if !v.is_infinite() || f.as_str().contains("inf") => visitor.visit_f64(v),
                _ => Err(DecodeError::custom("floating-point number overflowed")),
            },
            DeValue::Boolean(b) => visitor.visit_bool(b),
            DeValue::Datetime(d) => visitor.visit_map(MapDeserializer::new(std::iter::once((
                DATETIME_KEY,
                d.to_string(),
            )))),
            DeValue::Array(items) => visitor.visit_seq(Items {
                items: items.into_iter(),
            }),
            DeValue::Table(table) => visitor.visit_map(Entries {
                entries: table.into_iter(),
                value: None,
            }),
        }
        .map_err(|e| e.or_at(&span))
    }

    // TOML has no null: a value that is there is `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let span = self.span.clone();
        visitor.visit_some(self).map_err(|e| e.or_at(&span))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let span = self.span.clone();
        visitor
            .visit_newtype_struct(self)
            .map_err(|e| e.or_at(&span))
    }

    // A string names a unit variant; a one-key table a variant with data.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let span = self.span;
        match self.value {
            DeValue::String(s) => visitor.visit_enum(CowStrDeserializer::<DecodeError>::new(s)),
            DeValue::Table(table) if table.len() == 1 => {
                visitor.visit_enum(de::value::MapAccessDeserializer::new(Entries {
                    entries: table.into_iter(),
                    value: None,
                }))
            }
            DeValue::Table(_) => Err(DecodeError::custom(
                "wanted a table with exactly one key (the variant)",
            )),
            _ => Err(DecodeError::custom("wanted string or table")),
        }
        .map_err(|e| e.or_at(&span))
    }

    serde::forward_to_deserialize_any! {
        bool u8 u16 u32 u64 i8 i16 i32 i64 i128 u128 f32 f64 char str string seq
        bytes byte_buf map unit ignored_any unit_struct tuple_struct tuple identifier struct
    }
}

impl<'de> IntoDeserializer<'de, DecodeError> for ValueDecoder<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// A table's entries, in the order toml keeps them. An error about a key (an unknown key) is
/// placed on the key, one about a value on the value.
struct Entries<'a> {
    entries: toml::map::IntoIter<Spanned<DeString<'a>>, Spanned<DeValue<'a>>>,
    value: Option<Spanned<DeValue<'a>>>,
}

impl<'de> de::MapAccess<'de> for Entries<'de> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        let Some((key, value)) = self.entries.next() else {
            return Ok(None);
        };
        let span = key.span();
        self.value = Some(value);
        seed.deserialize(CowStrDeserializer::<DecodeError>::new(key.into_inner()))
            .map(Some)
            .map_err(|e| e.or_at(&span))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let value = self
            .value
            .take()
            .ok_or_else(|| DecodeError::custom("a value was asked for before its key"))?;
        // Also an error raised after the value was read (a `try_from` conversion) is the
        // value's.
        let span = value.span();
        seed.deserialize(ValueDecoder::from(value))
            .map_err(|e| e.or_at(&span))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

/// An array's items.
struct Items<'a> {
    items: std::vec::IntoIter<Spanned<DeValue<'a>>>,
}

impl<'de> de::SeqAccess<'de> for Items<'de> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.items.next() {
            Some(item) => {
                let span = item.span();
                seed.deserialize(ValueDecoder::from(item))
                    .map(Some)
                    .map_err(|e| e.or_at(&span))
            }
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}
