//! Paths into the payload that a source finds while it reads each record, for the stage
//! downstream that needs their values: one scan of the archive line then serves both.
//!
//! A stage that reads the same few payload paths of every record (`compact` reads its key and
//! the replay protocol's member) offers a [`PayloadProbe`]; when that stage is the only reader
//! of an `archive` source, compile pushes the probe down. The source's envelope scan, which
//! checks the whole line anyway, notes where each path's value lies in the payload
//! ([`Probed`], carried on the record), and the stage takes the values from there instead of
//! scanning the payload again. A record without the note (another source, a line the scan left
//! to the parser) is scanned by the stage as before: the note only saves work.

use std::sync::{Arc, Mutex};

/// The most paths one probe finds.
pub const MAX_PROBED_PATHS: usize = 2;

/// A set of paths of member names below `data`, with the identity that notes made for it carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadProbe {
    id: u32,
    paths: Arc<[Vec<String>]>,
}

/// Probes made so far: equal paths get the same id, so that a stage and the source it was
/// pushed into agree on it without sharing anything but the paths.
static PROBES: Mutex<Vec<Arc<[Vec<String>]>>> = Mutex::new(Vec::new());

impl PayloadProbe {
    /// The probe of `paths` (each a non-empty path of member names below `data`; at most
    /// [`MAX_PROBED_PATHS`]); `None` when they do not fit.
    pub fn new(paths: Vec<Vec<String>>) -> Option<PayloadProbe> {
        if paths.is_empty() || paths.len() > MAX_PROBED_PATHS || paths.iter().any(|p| p.is_empty())
        {
            return None;
        }
        let mut known = PROBES.lock().unwrap_or_else(|e| e.into_inner());
        let id = match known.iter().position(|p| **p == *paths) {
            Some(i) => i,
            None => {
                known.push(paths.into());
                known.len() - 1
            }
        };
        Some(PayloadProbe {
            id: u32::try_from(id).ok()?,
            paths: known[id].clone(),
        })
    }

    /// The paths, in the order of [`Probed::values`].
    pub fn paths(&self) -> &[Vec<String>] {
        &self.paths
    }

    /// The note of where the values found at [`PayloadProbe::paths`] lie in `data`
    /// (`found[i]` a slice of `data`, or `None` where path `i` is not there).
    pub(crate) fn note(&self, data: &[u8], found: &[Option<&[u8]>]) -> Option<Probed> {
        let base = data.as_ptr() as usize;
        let mut spans = [Span::ABSENT; MAX_PROBED_PATHS];
        for (span, value) in spans.iter_mut().zip(found) {
            if let Some(v) = value {
                let start = (v.as_ptr() as usize).checked_sub(base)?;
                let end = start.checked_add(v.len())?;
                if end > data.len() {
                    return None;
                }
                *span = Span {
                    start: u32::try_from(start).ok()?,
                    end: u32::try_from(end).ok()?,
                };
            }
        }
        Some(Probed {
            probe: self.id,
            spans,
        })
    }
}

/// Where one path's value lies in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    const ABSENT: Span = Span {
        start: u32::MAX,
        end: u32::MAX,
    };
}

/// A source's note on one record: its payload is JSON (as serde_json parses it into a value),
/// and where the values at the paths of the probe it was made for lie in it.
///
/// A stage that replaces a record's `data` must drop the note (set it to `None`).
#[derive(Debug, Clone, Copy)]
pub struct Probed {
    probe: u32,
    spans: [Span; MAX_PROBED_PATHS],
}

impl Probed {
    /// The values of `probe`'s paths in `data` (the record's payload), in the order of its
    /// paths; `None` when this note was made for another probe (or another payload).
    pub fn values<'d>(
        &self,
        probe: &PayloadProbe,
        data: &'d [u8],
    ) -> Option<[Option<&'d [u8]>; MAX_PROBED_PATHS]> {
        if self.probe != probe.id {
            return None;
        }
        let mut out = [None; MAX_PROBED_PATHS];
        for (value, span) in out.iter_mut().zip(&self.spans) {
            if *span != Span::ABSENT {
                *value = Some(data.get(span.start as usize..span.end as usize)?);
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(p: &[&[&str]]) -> Vec<Vec<String>> {
        p.iter()
            .map(|p| p.iter().map(|s| (*s).to_owned()).collect())
            .collect()
    }

    #[test]
    fn equal_paths_share_an_id_and_others_do_not() {
        let a = PayloadProbe::new(paths(&[&["k"], &["_flux"]])).unwrap();
        let b = PayloadProbe::new(paths(&[&["k"], &["_flux"]])).unwrap();
        let c = PayloadProbe::new(paths(&[&["k2"], &["_flux"]])).unwrap();
        assert_eq!(a, b);
        assert_ne!(a.id, c.id);
        assert!(PayloadProbe::new(Vec::new()).is_none());
        assert!(PayloadProbe::new(paths(&[&[]])).is_none());
        assert!(PayloadProbe::new(paths(&[&["a"], &["b"], &["c"]])).is_none());
    }

    #[test]
    fn a_note_gives_back_the_values_for_its_own_probe_only() {
        let a = PayloadProbe::new(paths(&[&["k"], &["_flux"]])).unwrap();
        let c = PayloadProbe::new(paths(&[&["other"]])).unwrap();
        let data = br#"{"k":"v","n":1}"#;
        let note = a.note(data, &[Some(&data[5..8]), None]).unwrap();
        assert_eq!(note.values(&a, data), Some([Some(&b"\"v\""[..]), None]));
        assert_eq!(note.values(&c, data), None);
        // A value outside the payload makes no note.
        let elsewhere = b"\"v\"";
        assert!(a.note(data, &[Some(&elsewhere[..]), None]).is_none());
    }
}
