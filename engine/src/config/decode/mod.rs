//! Decoding a TOML table into a typed configuration with errors as data: a serde
//! `Deserializer` over the parsed value whose errors are [`DecodeError`]s (kind and span), and
//! one translation of them into diagnostics ([`translate`]), shared by pipeline files and
//! cluster files.

mod error;
mod translate;
mod value;

pub(crate) use error::{DecodeError, DecodeErrorKind};
pub(crate) use translate::{
    DecodeProblem, Scope, TableNames, find_key, find_value_span as find_value, first_line, list,
    translate,
};

use toml::Spanned;
use toml::de::DeValue;
use value::ValueDecoder;

/// The deserializer `decode` hands to a configuration type: the value's, with the key path
/// tracked.
pub(crate) type Tracked<'t, 'de> = serde_path_to_error::Deserializer<'t, 't, ValueDecoder<'de>>;

/// A decoding error and the key path (inside the decoded value) where it was raised.
#[derive(Debug)]
pub(crate) struct Failure {
    /// What went wrong, and where in the rendered text.
    pub(crate) error: DecodeError,
    /// The key path inside the decoded value.
    pub(crate) path: serde_path_to_error::Path,
}

/// Decodes `value` with `decode` (a type's `Deserialize::deserialize`, or a dispatch such as
/// `StageConfig::decode`), keeping the key path of an error.
pub(crate) fn decode<'de, T>(
    value: Spanned<DeValue<'de>>,
    decode: impl for<'t> FnOnce(Tracked<'t, 'de>) -> Result<T, DecodeError>,
) -> Result<T, Failure> {
    let mut track = serde_path_to_error::Track::new();
    let result = decode(serde_path_to_error::Deserializer::new(
        ValueDecoder::from(value),
        &mut track,
    ));
    result.map_err(|error| Failure {
        error,
        path: track.path(),
    })
}

/// Decodes `value` as a `T`, keeping the key path of an error.
pub(crate) fn decode_into<'de, T: serde::Deserialize<'de>>(
    value: Spanned<DeValue<'de>>,
) -> Result<T, Failure> {
    // A closure, not `T::deserialize`: the path tracker's lifetime is chosen per call.
    #[allow(clippy::redundant_closure)]
    decode(value, |d| T::deserialize(d))
}

#[cfg(test)]
mod tests;
