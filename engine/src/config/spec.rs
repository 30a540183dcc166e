//! The pipeline as loaded from a file: metadata and stage declarations, each with where it was
//! written so later checks can point at it.

use flux_stages::channel::Capacity;
use flux_stages::registry::{Role, StageConfig};

use crate::diagnostic::Location;

/// The port of a stage an `inputs` entry reads: `id` (main) or `id.dead_letter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// The stage's ordinary output.
    Main,
    /// Records the stage could not process.
    DeadLetter,
}

/// One entry of a stage's `inputs`.
#[derive(Debug, Clone)]
pub struct InputRef {
    /// The upstream stage id.
    pub stage: String,
    /// Which of its ports.
    pub port: Port,
    /// Where it was written.
    pub location: Option<Location>,
}

impl InputRef {
    /// Parses `id` or `id.dead_letter`.
    pub fn parse(text: &str, location: Option<Location>) -> Result<InputRef, String> {
        let (stage, port) = match text.rsplit_once('.') {
            Some((stage, flux_stages::stage::DEAD_LETTER_PORT)) => (stage, Port::DeadLetter),
            Some((_, other)) => {
                return Err(format!(
                    "unknown port `{other}` in input `{text}`; a stage's ports are `<id>` and `<id>.dead_letter`"
                ));
            }
            None => (text, Port::Main),
        };
        if stage.is_empty() {
            return Err("an input names no stage".into());
        }
        Ok(InputRef {
            stage: stage.to_owned(),
            port,
            location,
        })
    }

    /// The input as written.
    pub fn label(&self) -> String {
        match self.port {
            Port::Main => self.stage.clone(),
            Port::DeadLetter => format!("{}.dead_letter", self.stage),
        }
    }
}

/// One `[sources.<id>]`, `[transforms.<id>]` or `[sinks.<id>]` table.
#[derive(Debug, Clone)]
pub struct StageSpec {
    /// The table key.
    pub id: String,
    /// Its section.
    pub role: Role,
    /// Its `type`, when given as a string.
    pub kind: Option<String>,
    /// Its `inputs`.
    pub inputs: Vec<InputRef>,
    /// Its own settings, when they decoded cleanly.
    pub config: Option<StageConfig>,
    /// Capacity of each channel into this stage (`buffer_records`, `buffer_bytes`).
    pub buffer: Capacity,
    /// Where the stage's table is.
    pub location: Option<Location>,
    /// Where its `type` is.
    pub type_location: Option<Location>,
    /// Where the value of each of its own top-level keys is (`path`, `url`, …), for checks
    /// that point at one of them.
    pub keys: std::collections::BTreeMap<String, Location>,
}

impl StageSpec {
    /// The key path of the stage table, e.g. `sinks.out`.
    pub fn path(&self) -> String {
        format!("{}.{}", self.role.section(), self.id)
    }

    /// Where the value of one of its own keys is, else where the stage's table is.
    pub fn key_location(&self, key: &str) -> Option<Location> {
        self.keys
            .get(key)
            .cloned()
            .or_else(|| self.location.clone())
    }
}

/// A loaded pipeline file.
#[derive(Debug, Clone)]
pub struct PipelineSpec {
    /// The file, as named on the command line.
    pub file: String,
    /// `[pipeline] name` (default: the file's stem).
    pub name: String,
    /// `[pipeline] description`.
    pub description: Option<String>,
    /// Every stage, in file order by section (sources, transforms, sinks).
    pub stages: Vec<StageSpec>,
    /// The rendered TOML text.
    pub rendered: String,
    /// The values read with `env("…")` while rendering: diagnostics must not show them.
    pub secrets: Vec<String>,
}
