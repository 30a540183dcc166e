//! The `window` transform's settings: the kind of window, its time, lateness, keys.

use super::*;
use crate::problems::{Problem, Problems};

/// What happens to a record that arrives after its windows closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Late {
    /// To the stage's `dead_letter` port (or stop the run when nothing reads it).
    #[default]
    DeadLetter,
    /// Dropped, counted in the `skipped` column of the run summary.
    Drop,
}

/// Groups records into tumbling, sliding or session windows.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    /// Window length (tumbling and sliding windows).
    #[serde(default)]
    pub size: Option<HumanDuration>,
    /// Distance between window starts (sliding windows); equal to `size` when absent (tumbling).
    #[serde(default)]
    pub slide: Option<HumanDuration>,
    /// Session windows: a session ends after this long without a record (per `key`).
    #[serde(default)]
    pub gap: Option<HumanDuration>,
    /// Session windows only: the JSONPath (into the envelope view) or `partition_key` whose
    /// value separates sessions. One session stream for all records when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// `arrival` (the record's `arrival_ts`, default) or a JSONPath into the envelope view
    /// selecting an RFC 3339 string or epoch milliseconds, e.g. `$.data.created_at`.
    #[serde(default = "default_time")]
    pub time: String,
    /// How long after a window's end records may still join it. Default "0s".
    #[serde(default)]
    pub allowed_lateness: Option<HumanDuration>,
    /// `dead_letter` (default) or `drop`.
    #[serde(default)]
    pub late: Late,
}

fn default_time() -> String {
    "arrival".into()
}

/// The kind of windows, resolved from the config.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    /// Fixed windows `size` long every `slide` (tumbling when equal), in milliseconds.
    Fixed { size: i64, slide: i64 },
    /// Sessions separated by `gap` milliseconds of silence.
    Session { gap: i64 },
}

pub(super) fn millis(d: HumanDuration) -> i64 {
    i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX)
}

/// The earliest event time a window can hold: 0000-01-01T00:00:00.000Z (RFC 3339's and the
/// archive's range), in epoch milliseconds.
pub(super) const MIN_TIME: i64 = -62_167_219_200_000;
/// The latest: 9999-12-31T23:59:59.999Z. Window ends (exclusive) must not pass it either, so
/// that every bound can be written as an RFC 3339 time.
pub(super) const MAX_TIME: i64 = 253_402_300_799_999;
/// The longest `size`, `slide`, `gap` or `allowed_lateness`: 100 years, which keeps every
/// window computation far inside `i64`.
pub(super) const MAX_SPAN: i64 = 36_525 * 86_400_000;

impl WindowConfig {
    fn kind(&self) -> Result<Kind, Problem> {
        let problem = |key: Option<&str>, message: String| Problem {
            key: key.map(str::to_owned),
            message,
        };
        match (self.size, self.slide, self.gap) {
            (Some(size), slide, None) => {
                let size = millis(size);
                let slide = slide.map(millis).unwrap_or(size);
                if size < 1 || slide < 1 {
                    return Err(problem(
                        Some(if size < 1 { "size" } else { "slide" }),
                        "`size` and `slide` must be at least 1ms".into(),
                    ));
                }
                if slide > size {
                    return Err(problem(
                        Some("slide"),
                        format!(
                            "`slide` ({slide}ms) must not be longer than `size` ({size}ms): records between windows would belong to none"
                        ),
                    ));
                }
                if size / slide > 1000 {
                    return Err(problem(
                        Some("size"),
                        "`size` / `slide` must be at most 1000 (windows per record)".into(),
                    ));
                }
                if self.key.is_some() {
                    return Err(problem(
                        Some("key"),
                        "`key` applies to session windows (`gap`) only".into(),
                    ));
                }
                Ok(Kind::Fixed { size, slide })
            }
            (None, None, Some(gap)) => {
                let gap = millis(gap);
                if gap < 1 {
                    return Err(problem(Some("gap"), "`gap` must be at least 1ms".into()));
                }
                Ok(Kind::Session { gap })
            }
            (None, Some(_), _) => Err(problem(Some("slide"), "`slide` needs `size`".into())),
            (Some(_), _, Some(_)) => Err(problem(
                Some("size"),
                "set either `size` (tumbling/sliding windows) or `gap` (session windows), not both"
                    .into(),
            )),
            (None, None, None) => Err(problem(
                None,
                "missing `size` (tumbling/sliding windows) or `gap` (session windows)".into(),
            )),
        }
    }

    /// Checks the settings: every problem, with its key.
    pub fn check(&self, p: &mut Problems) {
        if let Err(problem) = self.kind() {
            match problem.key {
                Some(key) => p.add(&key, problem.message),
                None => p.add_general(problem.message),
            }
        }
        for (key, value) in [
            ("size", self.size),
            ("slide", self.slide),
            ("gap", self.gap),
            ("allowed_lateness", self.allowed_lateness),
        ] {
            if value.is_some_and(|d| millis(d) > MAX_SPAN) {
                p.add(key, format!("`{key}` must be at most 100 years (36525d)"));
            }
        }
        if self.time != "arrival" {
            p.check("time", ValuePath::compile(&self.time));
        }
        if let Some(k) = &self.key
            && k != "partition_key"
        {
            p.check("key", ValuePath::compile(k));
        }
    }

    /// Builds the transform.
    pub fn build(&self) -> Result<Box<dyn StatefulTransform>, String> {
        Problems::first(|p| self.check(p))?;
        let path = |p: &str| ValuePath::compile(p).map_err(|e| e.to_string());
        Ok(Box::new(Window {
            kind: self.kind().map_err(|p| p.message)?,
            time: match self.time.as_str() {
                "arrival" => None,
                p => Some(path(p)?),
            },
            key: match self.key.as_deref() {
                None => None,
                Some("partition_key") => Some(KeyOf::PartitionKey),
                Some(p) => Some(KeyOf::Path(path(p)?)),
            },
            lateness: self.allowed_lateness.map(millis).unwrap_or(0),
            late: self.late,
            watermark: i64::MIN,
            fixed: BTreeMap::new(),
            sessions: HashMap::new(),
            seq: 0,
        }))
    }
}

impl crate::registry::StageKind for WindowConfig {
    fn validate(&self, p: &mut crate::problems::Problems) {
        self.check(p)
    }

    fn build(
        &self,
        _: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        WindowConfig::build(self).map(crate::registry::BuiltStage::Stateful)
    }
}
