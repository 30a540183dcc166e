//! Decoding a TOML table into a typed configuration with errors as data: a serde
//! `Deserializer` over the parsed value whose errors are [`DecodeError`]s (kind and span), and
//! one translation of them into diagnostics ([`translate`]), shared by pipeline files and
//! cluster files.

mod error;
mod translate;
mod value;

pub(crate) use error::{DecodeError, DecodeErrorKind};
pub(crate) use translate::{
    DecodeProblem, Scope, TableNames, find_key, find_value_span, first_line, list, translate,
};

use toml::Spanned;
use toml::de::{DeTable, DeValue};
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

/// A table decoded with every problem found (see [`decode_every`]).
#[derive(Debug)]
pub(crate) struct Decoded<T> {
    /// What decoded once the keys with problems were left out; `None` when even that failed.
    pub(crate) value: Option<T>,
    /// Every problem, translated.
    pub(crate) problems: Vec<DecodeProblem>,
    /// The keys left out for their problems.
    pub(crate) left_out: Vec<String>,
    /// True when a key was left out for its value (not only for being unknown): `value` is
    /// then not what the author wrote.
    pub(crate) bad_values: bool,
}

/// Decodes `table` (spanning `span`) with `decode`, reporting every problem: serde stops at
/// the first, so the key it names is reported, left out, and the rest decoded again. A
/// required key reported missing because it was left out, or because an unknown key was
/// already reported as its misspelling, is not reported again.
pub(crate) fn decode_every<'de, T>(
    table: &DeTable<'de>,
    span: std::ops::Range<usize>,
    scope: &Scope<'_>,
    mut decode_fn: impl for<'t> FnMut(Tracked<'t, 'de>) -> Result<T, DecodeError>,
) -> Decoded<T> {
    let mut work = table.clone();
    let mut out = Decoded {
        value: None,
        problems: Vec::new(),
        left_out: Vec::new(),
        bad_values: false,
    };
    let mut suggested: Vec<&'static str> = Vec::new();
    loop {
        let rest = Spanned::new(span.clone(), DeValue::Table(work.clone()));
        let failure = match decode(rest, &mut decode_fn) {
            Ok(value) => {
                out.value = Some(value);
                return out;
            }
            Err(failure) => failure,
        };
        if let DecodeErrorKind::MissingField(k) = failure.error.kind
            && (out.left_out.iter().any(|l| l == k) || suggested.contains(&k))
        {
            return out;
        }
        let problem = translate(&failure.error, &failure.path, table, scope);
        suggested.extend(problem.suggestion);
        let top = problem.top_key.clone();
        let unknown = problem.kind == crate::diagnostic::DiagnosticKind::UnknownKey;
        out.problems.push(problem);
        match top {
            Some(k) if work.contains_key(k.as_str()) && out.left_out.len() < 64 => {
                out.bad_values |= !unknown;
                work.remove(k.as_str());
                out.left_out.push(k);
            }
            _ => return out,
        }
    }
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
