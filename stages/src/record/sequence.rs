//! Kinesis sequence numbers: decimal strings of up to 129 digits, compared numerically.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

/// The most digits a sequence number may have (Kinesis: `0|([1-9]\d{0,128})`).
pub const MAX_SEQUENCE_DIGITS: usize = 129;

/// A Kinesis sequence number: a decimal string of up to [`MAX_SEQUENCE_DIGITS`] digits, compared
/// numerically: equality, hashing and order all ignore leading zeros (`007` == `7`), while the
/// text is kept as it was given.
///
/// Up to 62 digits (Kinesis' own have 56) are held in place: a record's sequence
/// number costs no allocation, and no reference count shared between the thread that reads
/// records and the one that drops them. Longer ones are shared.
#[derive(Clone)]
pub struct SequenceNumber(Repr);

/// Digits a [`SequenceNumber`] holds in place.
const INLINE_DIGITS: usize = 62;

#[derive(Clone)]
enum Repr {
    Inline {
        len: u8,
        digits: [u8; INLINE_DIGITS],
    },
    Shared(Arc<str>),
}

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
        Ok(Self::of_digits(text))
    }

    /// `text`, known to be 1 to [`MAX_SEQUENCE_DIGITS`] ASCII digits.
    fn of_digits(text: &str) -> Self {
        if text.len() <= INLINE_DIGITS {
            let mut digits = [0u8; INLINE_DIGITS];
            digits[..text.len()].copy_from_slice(text.as_bytes());
            Self(Repr::Inline {
                len: text.len() as u8,
                digits,
            })
        } else {
            Self(Repr::Shared(Arc::from(text)))
        }
    }

    /// A synthetic sequence number for records that never came from Kinesis.
    pub fn from_u64(n: u64) -> Self {
        Self::of_digits(&n.to_string())
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            // ASCII digits (checked by `parse`): the check finds them so at once.
            Repr::Inline { len, digits } => {
                std::str::from_utf8(&digits[..usize::from(*len)]).unwrap_or("0")
            }
            Repr::Shared(text) => text,
        }
    }

    /// Bytes it holds on the heap (none when held in place).
    pub fn heap_bytes(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Shared(text) => text.len() + 16,
        }
    }

    /// The digits' bytes.
    fn digits(&self) -> &[u8] {
        match &self.0 {
            Repr::Inline { len, digits } => &digits[..usize::from(*len)],
            Repr::Shared(text) => text.as_bytes(),
        }
    }

    fn significant(&self) -> &[u8] {
        significant(self.digits())
    }
}

/// A decimal text without its leading zeros (`0` for zero).
fn significant(digits: &[u8]) -> &[u8] {
    let start = digits.iter().position(|&b| b != b'0');
    match start {
        Some(i) => &digits[i..],
        None => b"0",
    }
}

/// The numeric order of two decimal texts without leading zeros.
fn compare_significant(a: &[u8], b: &[u8]) -> Ordering {
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
        f.write_str(self.as_str())
    }
}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Serialized as its decimal string, as Kinesis and the archive envelope write it.
impl serde::Serialize for SequenceNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Accepts only a decimal string (see [`SequenceNumber::parse`]).
impl<'de> serde::Deserialize<'de> for SequenceNumber {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(d)?;
        SequenceNumber::parse(&text).map_err(serde::de::Error::custom)
    }
}
