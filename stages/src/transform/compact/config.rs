//! The `compact` transform's settings.

use super::*;
use crate::problems::Problems;

/// A key path, compiled when the pipeline is loaded.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct KeyExpr(pub KeyPath);

impl TryFrom<String> for KeyExpr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        KeyPath::compile(&s).map(KeyExpr)
    }
}

impl JsonSchema for KeyExpr {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KeyPath".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "`partition_key`, or a JSONPath into the record view selecting one value, e.g. \"$.data.customer_id\"."
        })
    }
}

/// What to do with a record whose key path selects nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnMissingKey {
    /// Stop the run with an error naming the record and the path.
    #[default]
    Error,
    /// Send the record to `<id>.dead_letter`.
    DeadLetter,
}

/// Keeps the last record per key, ordered by version.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CompactConfig {
    /// What identifies a key: `partition_key`, or a JSONPath into the record view such as
    /// `$.data.customer_id` (`@.data.customer_id` works too).
    pub key: KeyExpr,
    /// A filter expression (like `where`): when a key's last record matches, the key is deleted.
    #[serde(default)]
    pub tombstone: Option<FilterExpr>,
    /// Write a key's tombstone instead of nothing (needs `tombstone`).
    #[serde(default)]
    pub keep_tombstones: bool,
    /// Memory for the state; past it, sorted runs are spilled to disk and merged. Default
    /// `512MiB`, at least `64KiB`.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: Size,
    /// `error` (default): a record without a key stops the run. `dead_letter`: it goes to
    /// `<id>.dead_letter`.
    #[serde(default)]
    pub on_missing_key: OnMissingKey,
    /// Compact per (window, key), the window being the `window` annotation (`{start, end}`) of a
    /// `window` transform upstream.
    #[serde(default)]
    pub per_window: bool,
    /// Where spill folders are created. Default: the system's temporary folder (`TMPDIR`).
    #[serde(default)]
    pub spill_dir: Option<String>,
    /// The payload member the replay protocol uses (fences are left out, replayed copies rank
    /// by their origin). Default `_flux` (as `annotate`'s `under`).
    #[serde(default = "default_under")]
    pub under: String,
}

fn default_under() -> String {
    crate::replay::DEFAULT_KEY.into()
}

fn default_memory_limit() -> Size {
    Size::mib(512)
}

/// The smallest `memory_limit` accepted.
pub const MIN_MEMORY_LIMIT: Size = Size(64 * 1024);

impl CompactConfig {
    /// Checks what serde cannot.
    pub fn check(&self, p: &mut Problems) {
        if self.memory_limit < MIN_MEMORY_LIMIT {
            p.add(
                "memory_limit",
                format!(
                    "`memory_limit` must be at least {MIN_MEMORY_LIMIT}, found {}",
                    self.memory_limit
                ),
            );
        }
        if self.keep_tombstones && self.tombstone.is_none() {
            p.add(
                "keep_tombstones",
                "`keep_tombstones = true` needs `tombstone`, the expression that marks a tombstone",
            );
        }
        if self.spill_dir.as_deref() == Some("") {
            p.add("spill_dir", "`spill_dir` must not be empty");
        }
        if self.under.is_empty() {
            p.add("under", "`under` must not be empty");
        }
    }

    /// The payload paths this stage reads of every record (its key and `under`), when a
    /// source can note them for it: see [`crate::json::probe`].
    pub fn probe(&self) -> Option<crate::json::probe::PayloadProbe> {
        self.key.0.probe(std::slice::from_ref(&self.under))
    }

    /// Builds the transform; it announces its number of winners in `metrics` (expected out)
    /// and counts the fences it leaves out there (skipped).
    pub fn build(
        &self,
        metrics: Arc<crate::stage::StageMetrics>,
    ) -> Result<Box<dyn StatefulTransform>, String> {
        Problems::first(|p| self.check(p))?;
        Ok(Box::new(Compact::new(self, metrics)))
    }
}

impl crate::registry::StageKind for CompactConfig {
    fn validate(&self, p: &mut crate::problems::Problems) {
        self.check(p)
    }

    fn build(
        &self,
        ctx: &crate::registry::BuildContext,
    ) -> Result<crate::registry::BuiltStage, String> {
        CompactConfig::build(self, ctx.metrics.clone()).map(crate::registry::BuiltStage::Stateful)
    }

    fn pushdown_probe(&self) -> Option<crate::json::probe::PayloadProbe> {
        self.probe()
    }

    /// `compact` holds its input in its own bounded state, so a large channel in front of it
    /// only adds memory outside `memory_limit`.
    fn default_buffer_bytes(&self) -> Option<usize> {
        Some(2 * 1024 * 1024)
    }
}
