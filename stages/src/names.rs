//! Names that become parts of object keys: stream names and shard ids, as validated values.
//!
//! The archive puts stream names and shard ids into object keys (`stream=<stream>/…/shard=<id>/`,
//! `_flux/checkpoints/stream=<stream>/<id>.json`), so they are values with rules, not strings
//! (DESIGN §4). Both follow Kinesis' own pattern `[a-zA-Z0-9_.-]{1,128}`; `.` and `..` are
//! refused (they are not path segments). Everything else Kinesis allows works, names that
//! start with a dot or consist of dots and dashes included: the archive's temporary and lock
//! files carry a `~`, which no legal name contains (see [`is_reserved_file_name`]).
//!
//! The archive layout ([`crate::archive::layout`]) takes only these types, so an unchecked
//! string cannot reach the store.

use std::fmt;
use std::sync::Arc;

/// The longest stream name or shard id Kinesis allows.
pub const MAX_NAME_LEN: usize = 128;

/// The character that temporary and lock files carry and no legal name contains.
pub const RESERVED_CHAR: char = '~';

/// Why a name is refused (its `Display` says it in words; the name itself is not repeated:
/// callers say where it was).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameProblem {
    /// The name is empty.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`] bytes.
    #[error("is {chars} characters long; at most {MAX_NAME_LEN} are allowed")]
    TooLong {
        /// Its length in characters.
        chars: usize,
    },
    /// `.` or `..`, which are not path segments.
    #[error("{0:?} is not a usable name")]
    Dots(String),
    /// A character outside `[a-zA-Z0-9_.-]`.
    #[error(
        "contains {}; allowed are letters, digits, `_`, `.` and `-` (Kinesis' pattern [a-zA-Z0-9_.-]{{1,128}})",
        describe_char(*.0)
    )]
    Character(char),
}

/// A stream name or shard id that cannot be one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name breaks a rule.
    #[error("the {what} {problem}")]
    Invalid {
        /// "stream name" or "shard id".
        what: &'static str,
        /// The rule it breaks.
        problem: NameProblem,
    },
    /// A stream ARN without its `:stream/<name>` part.
    #[error("a stream ARN ends in `:stream/<name>`")]
    ArnWithoutName,
}

impl From<NameError> for String {
    fn from(e: NameError) -> String {
        e.to_string()
    }
}

/// Why a name is refused, when it is.
pub fn name_problem(text: &str) -> Option<NameProblem> {
    if text.is_empty() {
        return Some(NameProblem::Empty);
    }
    if text.len() > MAX_NAME_LEN {
        return Some(NameProblem::TooLong {
            chars: text.chars().count(),
        });
    }
    if text == "." || text == ".." {
        return Some(NameProblem::Dots(text.to_owned()));
    }
    text.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .map(NameProblem::Character)
}

fn describe_char(c: char) -> String {
    if c.is_ascii_graphic() {
        format!("`{c}`")
    } else {
        format!("the character U+{:04X}", c as u32)
    }
}

/// True for file names the archive uses for its own temporary and lock files: they contain
/// [`RESERVED_CHAR`], which no legal stream name, shard id or sequence number does.
pub fn is_reserved_file_name(name: &str) -> bool {
    name.contains(RESERVED_CHAR)
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Checks `text` against the rules (see the module docs).
            pub fn parse(text: &str) -> Result<Self, NameError> {
                match name_problem(text) {
                    None => Ok(Self(Arc::from(text))),
                    Some(problem) => Err(NameError::Invalid { what: $what, problem }),
                }
            }

            /// Checks a shared string, reusing it.
            pub fn from_arc(text: &Arc<str>) -> Result<Self, NameError> {
                match name_problem(text) {
                    None => Ok(Self(text.clone())),
                    Some(problem) => Err(NameError::Invalid { what: $what, problem }),
                }
            }

            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The name as a shared string.
            pub fn as_arc(&self) -> &Arc<str> {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", &*self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A Kinesis stream name: `[a-zA-Z0-9_.-]{1,128}`, not `.` or `..`.
    StreamName,
    "stream name"
);

name_type!(
    /// A shard id as Kinesis issues them (`shardId-000000000001`; the API's pattern is
    /// `[a-zA-Z0-9_.-]{1,128}`), not `.` or `..`.
    ShardId,
    "shard id"
);

/// Checks a configured stream name, accepting a Kinesis stream ARN
/// (`arn:aws:kinesis:<region>:<account>:stream/<name>`) by its name part.
pub fn check_configured_stream(text: &str) -> Result<(), NameError> {
    let name = match text.strip_prefix("arn:") {
        Some(_) => match text.split_once(":stream/") {
            Some((_, name)) => name,
            None => return Err(NameError::ArnWithoutName),
        },
        None => text,
    };
    StreamName::parse(name).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn kinesis_names_are_accepted() {
        for ok in [
            "orders",
            "shardId-000000000001",
            ".hidden",
            "...",
            "-.-",
            "_",
            "a.b-c_d",
            &"x".repeat(128),
        ] {
            assert!(StreamName::parse(ok).is_ok(), "{ok}");
            assert!(ShardId::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_that_are_not_path_segments_are_refused() {
        for bad in [
            "", ".", "..", "a/b", "/", "a\\b", "a b", "a~b", "é", "a\0", "a\n",
        ] {
            let err = ShardId::parse(bad).unwrap_err().to_string();
            assert!(err.starts_with("the shard id "), "{err}");
        }
        let long = StreamName::parse(&"x".repeat(129)).unwrap_err();
        assert_eq!(
            long,
            NameError::Invalid {
                what: "stream name",
                problem: NameProblem::TooLong { chars: 129 }
            }
        );
        let long = long.to_string();
        assert!(long.contains("at most 128"), "{long}");
    }

    #[test]
    fn stream_arns_are_checked_by_their_name() {
        assert!(check_configured_stream("arn:aws:kinesis:eu-west-1:1:stream/orders").is_ok());
        assert!(check_configured_stream("arn:aws:kinesis:eu-west-1:1:stream/a/b").is_err());
        assert!(check_configured_stream("arn:aws:kinesis:eu-west-1:1:table/x").is_err());
    }

    proptest! {
        #[test]
        fn legal_names_never_look_reserved(name in "[a-zA-Z0-9_.-]{1,128}") {
            prop_assume!(name != "." && name != "..");
            let id = ShardId::parse(&name).unwrap();
            prop_assert!(!is_reserved_file_name(&id));
            prop_assert!(!id.contains('/'));
        }

        #[test]
        fn anything_accepted_is_a_single_safe_segment(text in any::<String>()) {
            if let Ok(id) = StreamName::parse(&text) {
                prop_assert!(!id.is_empty() && id.len() <= 128);
                prop_assert!(id.as_str() != "." && id.as_str() != "..");
                prop_assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)));
            }
        }
    }
}
