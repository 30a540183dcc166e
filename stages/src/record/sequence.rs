//! Kinesis sequence numbers: decimal strings of up to 129 digits, compared numerically.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The most digits a sequence number may have (Kinesis: `0|([1-9]\d{0,128})`).
pub const MAX_SEQUENCE_DIGITS: usize = 129;

/// A Kinesis sequence number: a decimal string of up to [`MAX_SEQUENCE_DIGITS`] digits, compared
/// numerically: equality, hashing and order all ignore leading zeros (`007` == `7`), while the
/// text is kept as it was given.
#[derive(Clone)]
pub struct SequenceNumber(Arc<str>);

impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.significant() == other.significant()
    }
}

impl Eq for SequenceNumber {}

impl std::hash::Hash for SequenceNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.significant().hash(state);
    }
}

impl SequenceNumber {
    /// Wraps a decimal string; fails unless it is a run of 1 to [`MAX_SEQUENCE_DIGITS`] ASCII
    /// digits (Kinesis' own pattern is `0|([1-9]\d{0,128})`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err("a sequence number must be a decimal string of digits".into());
        }
        if text.len() > MAX_SEQUENCE_DIGITS {
            return Err(format!(
                "a sequence number has at most {MAX_SEQUENCE_DIGITS} digits, this one {}",
                text.len()
            ));
        }
        Ok(Self(Arc::from(text)))
    }

    /// A synthetic sequence number for records that never came from Kinesis.
    pub fn from_u64(n: u64) -> Self {
        Self(Arc::from(n.to_string()))
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn significant(&self) -> &str {
        significant(&self.0)
    }

    /// Compares with the sequence number whose decimal text is `digits` (as [`Ord`] compares
    /// two sequence numbers), for a caller that keeps a copy of the text instead of a clone.
    pub fn cmp_digits(&self, digits: &str) -> Ordering {
        compare_significant(self.significant(), significant(digits))
    }
}

/// A decimal text without its leading zeros (`0` for zero).
fn significant(digits: &str) -> &str {
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() { "0" } else { trimmed }
}

/// The numeric order of two decimal texts without leading zeros.
fn compare_significant(a: &str, b: &str) -> Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_significant(self.significant(), other.significant())
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Serialized as its decimal string, as Kinesis and the archive envelope write it.
impl serde::Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// Accepts only a decimal string (see [`SequenceNumber::parse`]).
impl<'de> serde::Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        SequenceNumber::parse(&text).map_err(serde::de::Error::custom)
    }
}
