//! What went wrong while decoding a TOML table into a typed configuration: serde's error
//! constructors, kept as data instead of English text, plus where in the rendered text it
//! happened.

use std::fmt;
use std::ops::Range;

use serde::de::{Expected, Unexpected};

/// The kind of a decoding error, one variant per constructor of [`serde::de::Error`]. Its
/// `Display` is serde's own wording, so a message reads as it always has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeErrorKind {
    /// A key the table does not have.
    #[error("unknown field `{field}`, {}", one_of(expected, "fields"))]
    UnknownField {
        /// The key as written.
        field: String,
        /// The keys the table has.
        expected: &'static [&'static str],
    },
    /// A required key is not set.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A key given twice (TOML itself refuses this; kept for completeness).
    #[error("duplicate field `{0}`")]
    DuplicateField(&'static str),
    /// An enumerated value that is none of the allowed ones.
    #[error("unknown variant `{variant}`, {}", one_of(expected, "variants"))]
    UnknownVariant {
        /// The value as written.
        variant: String,
        /// The allowed values.
        expected: &'static [&'static str],
    },
    /// A value of the wrong type.
    #[error("invalid type: {found}, expected {expected}")]
    InvalidType {
        /// What was found, e.g. `string "x"`.
        found: String,
        /// True when what was found is a table (or a TOML date-time, which decodes as one).
        found_table: bool,
        /// What the type wants.
        expected: String,
    },
    /// A value of the right type but outside what the type accepts.
    #[error("invalid value: {found}, expected {expected}")]
    InvalidValue {
        /// What was found.
        found: String,
        /// What the type wants.
        expected: String,
    },
    /// An array of the wrong length.
    #[error("invalid length {len}, expected {expected}")]
    InvalidLength {
        /// The length found.
        len: usize,
        /// What the type wants.
        expected: String,
    },
    /// A message of a type's own `Deserialize` (a size, a duration, a URL).
    #[error("{0}")]
    Custom(String),
}

/// serde's way of listing what is expected: "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
fn one_of(names: &[&str], what: &str) -> String {
    match names {
        [] => format!("there are no {what}"),
        [one] => format!("expected `{one}`"),
        [a, b] => format!("expected `{a}` or `{b}`"),
        _ => format!(
            "expected one of {}",
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A decoding error: its kind and, when known, the byte range of the rendered text it is about
/// (the key for an unknown key, the value otherwise, the table for a missing key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError {
    /// What went wrong.
    pub(crate) kind: DecodeErrorKind,
    /// Where, in the rendered text.
    pub(crate) span: Option<Range<usize>>,
}

impl DecodeError {
    /// Sets the span unless a deeper value already set one.
    pub(crate) fn or_at(mut self, span: &Range<usize>) -> Self {
        if self.span.is_none() {
            self.span = Some(span.clone());
        }
        self
    }

    fn of(kind: DecodeErrorKind) -> Self {
        DecodeError { kind, span: None }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind.fmt(f)
    }
}

impl std::error::Error for DecodeError {}

impl serde::de::Error for DecodeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DecodeError::of(DecodeErrorKind::Custom(msg.to_string()))
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DecodeError::of(DecodeErrorKind::InvalidType {
            found: unexp.to_string(),
            found_table: matches!(unexp, Unexpected::Map),
            expected: exp.to_string(),
        })
    }

    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        DecodeError::of(DecodeErrorKind::InvalidValue {
            found: unexp.to_string(),
            expected: exp.to_string(),
        })
    }

    fn invalid_length(len: usize, exp: &dyn Expected) -> Self {
        DecodeError::of(DecodeErrorKind::InvalidLength {
            len,
            expected: exp.to_string(),
        })
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DecodeError::of(DecodeErrorKind::UnknownVariant {
            variant: variant.to_owned(),
            expected,
        })
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        DecodeError::of(DecodeErrorKind::UnknownField {
            field: field.to_owned(),
            expected,
        })
    }

    fn missing_field(field: &'static str) -> Self {
        DecodeError::of(DecodeErrorKind::MissingField(field))
    }

    fn duplicate_field(field: &'static str) -> Self {
        DecodeError::of(DecodeErrorKind::DuplicateField(field))
    }
}

#[cfg(test)]
mod tests {
    use serde::de::Error as _;

    use super::*;

    /// The messages are serde's own, word for word, so diagnostics read as before.
    #[test]
    fn messages_are_serdes_wording() {
        let own = |e: DecodeError| e.to_string();
        let serde_text = |e: serde::de::value::Error| e.to_string();
        let fields: &'static [&'static str] = &["path", "format", "gzip"];
        assert_eq!(
            own(DecodeError::unknown_field("pth", fields)),
            serde_text(serde::de::value::Error::unknown_field("pth", fields))
        );
        for n in 0..=3 {
            let v = &fields[..n];
            assert_eq!(
                own(DecodeError::unknown_variant("x", v)),
                serde_text(serde::de::value::Error::unknown_variant("x", v))
            );
            assert_eq!(
                own(DecodeError::unknown_field("x", v)),
                serde_text(serde::de::value::Error::unknown_field("x", v))
            );
        }
        assert_eq!(
            own(DecodeError::missing_field("path")),
            serde_text(serde::de::value::Error::missing_field("path"))
        );
        let unexp = Unexpected::Str("x");
        assert_eq!(
            own(DecodeError::invalid_type(unexp, &"a number")),
            serde_text(serde::de::value::Error::invalid_type(unexp, &"a number"))
        );
        assert_eq!(
            own(DecodeError::invalid_value(unexp, &"a number")),
            serde_text(serde::de::value::Error::invalid_value(unexp, &"a number"))
        );
        assert_eq!(
            own(DecodeError::invalid_length(2, &"3 items")),
            serde_text(serde::de::value::Error::invalid_length(2, &"3 items"))
        );
    }
}
