//! The compaction key of a record: a JSONPath into the record view, or `partition_key`.
//!
//! Three forms, chosen when the pipeline is loaded:
//! - `partition_key` (also `$.partition_key` / `@.partition_key`): the record's own field, no
//!   parsing at all;
//! - a simple dotted path into the payload, `$.data.customer_id` (`@.` works too): a structural
//!   scan finds the value in the payload bytes and checks that the payload is JSON, without
//!   building any value; where it cannot decide, the general path below decides instead;
//! - anything else (brackets, wildcards, other envelope fields, annotations): the general
//!   JSONPath over the [record view](crate::record::Record::view).
//!
//! All three agree on the key text ([`exact::key_text`]): a string's value, a number as written
//! in the payload (`12345678901234567890123` and `1.50` keep every digit), any other non-null
//! value as compact JSON text (so `7` and `"7"` are the same key), and no key for null or a path
//! that is not found. A payload that is not JSON has no key under `$.data` on either path.

use std::borrow::Cow;

use crate::expr::ValuePath;
use crate::json::probe::PayloadProbe;
use crate::record::Record;

pub mod exact;

use crate::json::scan;

/// A compiled key path.
#[derive(Debug, Clone)]
pub struct KeyPath {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    PartitionKey,
    /// Member names below `data`, at least one, and the same path for the general evaluation
    /// where the scan is unsure.
    Data(Vec<String>, ValuePath),
    General(ValuePath),
}

impl KeyPath {
    /// Compiles `partition_key`, `$.…` or `@.…`.
    pub fn compile(text: &str) -> Result<KeyPath, String> {
        let trimmed = text.trim();
        let normalized = match trimmed.strip_prefix('@') {
            Some(rest) => format!("${rest}"),
            None if trimmed == "partition_key" => "$.partition_key".to_owned(),
            None => trimmed.to_owned(),
        };
        let general = ValuePath::compile(&normalized).map_err(|e| {
            format!("{e}; a key is `partition_key` or a path such as \"$.data.customer_id\"")
        })?;
        let names: Option<Vec<&str>> = normalized
            .strip_prefix("$.")
            .map(|rest| rest.split('.').collect())
            .filter(|names: &Vec<&str>| names.iter().all(|n| is_simple_name(n)));
        let kind = match names.as_deref() {
            Some(["partition_key"]) => Kind::PartitionKey,
            Some(["data", rest @ ..]) if !rest.is_empty() => {
                Kind::Data(rest.iter().map(|s| (*s).to_owned()).collect(), general)
            }
            _ => Kind::General(general),
        };
        Ok(KeyPath {
            source: trimmed.to_owned(),
            kind,
        })
    }

    /// The path as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// True when the fast path (no full parse of the payload) applies.
    pub fn is_fast(&self) -> bool {
        !matches!(self.kind, Kind::General(_))
    }

    /// The record's key as bytes, or `None` when the path selects nothing (or null).
    pub fn extract<'r>(&self, record: &'r Record) -> Option<Cow<'r, [u8]>> {
        match &self.kind {
            Kind::PartitionKey => Some(Cow::Borrowed(record.partition_key.as_bytes())),
            Kind::Data(names, general) => match scan::select(&record.data, names) {
                Ok(leaf) => leaf_key(leaf?),
                Err(scan::Unsure) => general_key(general, record),
            },
            Kind::General(path) => general_key(path, record),
        }
    }
}

/// A record's key, and what the payload's scan found of one of its top-level members.
pub struct KeyAndMember<'r> {
    /// The key (see [`KeyPath::extract`]).
    pub key: Option<Cow<'r, [u8]>>,
    /// The member's JSON text (`Some(None)`: the payload is JSON and has no such member), or
    /// `None` when the key's path did not scan the payload (the caller looks for it itself).
    pub member: Option<Option<&'r str>>,
}

impl KeyPath {
    /// The probe that [`KeyPath::extract_with_member`] of `member` takes its values from when a
    /// source noted them (see [`crate::json::probe`]): only for a path into the payload.
    pub fn probe(&self, member: &[String]) -> Option<PayloadProbe> {
        match &self.kind {
            Kind::Data(names, _) => PayloadProbe::new(vec![names.clone(), member.to_vec()]),
            _ => None,
        }
    }

    /// [`KeyPath::extract`], and for a path into the payload the top-level member `member`
    /// (a one-name path) found in the same scan; or, when the record carries a note of
    /// `probe` (made by [`KeyPath::probe`] of `member`), taken from the note without a scan.
    pub fn extract_with_member<'r>(
        &self,
        record: &'r Record,
        member: &[String],
        probe: Option<&PayloadProbe>,
    ) -> KeyAndMember<'r> {
        let Kind::Data(names, general) = &self.kind else {
            return KeyAndMember {
                key: self.extract(record),
                member: None,
            };
        };
        let noted = probe.and_then(|p| record.probed?.values(p, &record.data));
        if let Some([key, found]) = noted {
            // The source's scan found these where the scan below would: the note says the
            // payload is JSON (and so UTF-8) throughout.
            return KeyAndMember {
                key: key.and_then(leaf_key),
                member: Some(found.and_then(|m| std::str::from_utf8(m).ok())),
            };
        }
        let mut found = [None, None];
        match scan::select_pair(&record.data, names, member, &mut found) {
            Ok(()) => KeyAndMember {
                key: found[0].and_then(leaf_key),
                // The scan checked that the whole payload is UTF-8.
                member: Some(found[1].and_then(|m| std::str::from_utf8(m).ok())),
            },
            Err(scan::Unsure) => KeyAndMember {
                key: general_key(general, record),
                member: None,
            },
        }
    }
}

/// The key of a value's JSON text.
fn leaf_key(leaf: &[u8]) -> Option<Cow<'_, [u8]>> {
    match exact::key_text(std::str::from_utf8(leaf).ok()?)? {
        Cow::Borrowed(s) => Some(Cow::Borrowed(s.as_bytes())),
        Cow::Owned(s) => Some(Cow::Owned(s.into_bytes())),
    }
}

/// The key by the JSONPath over the record view; numbers keep the payload's text.
fn general_key<'r>(path: &ValuePath, record: &'r Record) -> Option<Cow<'r, [u8]>> {
    let view = record.view(record.data_view());
    exact::select_key(path, &view, &view["data"], &record.data).map(|k| Cow::Owned(k.into_bytes()))
}

fn is_simple_name(n: &str) -> bool {
    let mut bytes = n.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests;
