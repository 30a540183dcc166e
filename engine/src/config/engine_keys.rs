//! The keys every stage table has besides its kind's own: `type`, `inputs`, `buffer_records`
//! and `buffer_bytes`. [`EngineKeys`] is their one definition: the loader decodes them with it,
//! the JSON Schema describes them from it (its doc comments and bounds), and their defaults
//! come from it ([`EngineKeys::capacity`]).

use flux_stages::channel::{Capacity, DEFAULT_RECORDS};
use flux_stages::units::Size;
use schemars::JsonSchema;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};

/// The engine's keys of a stage table.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EngineKeys {
    /// The stage type.
    #[serde(rename = "type", default)]
    #[schemars(with = "String")]
    pub(crate) kind: Option<StageType>,
    /// Upstream stage ids (`<id>`, or `<id>.dead_letter` for the records it rejects).
    #[serde(default)]
    #[schemars(with = "Vec<String>", length(min = 1))]
    #[schemars(inner(regex(pattern = r"^[A-Za-z0-9_-]+(\.dead_letter)?$")))]
    pub(crate) inputs: Option<Inputs>,
    /// Capacity in records of each channel into this stage.
    #[serde(default)]
    #[schemars(with = "u64", range(min = 1), extend("default" = DEFAULT_RECORDS))]
    pub(crate) buffer_records: Option<BufferRecords>,
    /// Capacity in bytes of each channel into this stage (default "16MiB"; `compact`: "2MiB").
    #[serde(default)]
    #[schemars(with = "String", extend("default" = DEFAULT_BYTES_TEXT))]
    pub(crate) buffer_bytes: Option<BufferBytes>,
}

/// [`flux_stages::channel::DEFAULT_BYTES`] as a pipeline file writes it.
pub(crate) const DEFAULT_BYTES_TEXT: &str = "16MiB";

impl EngineKeys {
    /// The names of the engine's keys, which a stage kind's settings cannot use.
    pub(crate) const NAMES: [&'static str; 4] =
        ["type", "inputs", "buffer_records", "buffer_bytes"];

    /// The capacity of each channel into the stage: what its keys set, else the kind's
    /// default bytes (`kind_bytes`), else the engine's.
    pub(crate) fn capacity(&self, kind_bytes: Option<usize>) -> Capacity {
        let default = Capacity::default();
        Capacity {
            records: self.buffer_records.map_or(default.records, |r| r.0),
            bytes: match self.buffer_bytes {
                Some(b) => b.0,
                None => kind_bytes.unwrap_or(default.bytes),
            },
        }
    }
}

/// `type`: a string naming a stage kind.
#[derive(Debug, Clone)]
pub(crate) struct StageType(pub(crate) String);

/// `inputs`: stage ids, as written.
#[derive(Debug, Clone)]
pub(crate) struct Inputs(pub(crate) Vec<String>);

/// `buffer_records`: a positive count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferRecords(pub(crate) usize);

/// `buffer_bytes`: a positive size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BufferBytes(pub(crate) usize);

impl<'de> Deserialize<'de> for StageType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => Ok(StageType(s)),
            other => Err(D::Error::custom(format!(
                "`type` must be a string, found {}",
                other.type_str()
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Inputs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let toml::Value::Array(items) = toml::Value::deserialize(d)? else {
            return Err(D::Error::custom(
                "`inputs` must be an array of stage ids, e.g. [\"orders\"]",
            ));
        };
        items
            .into_iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s),
                _ => Err(D::Error::custom(
                    "each input must be a string naming a stage",
                )),
            })
            .collect::<Result<_, _>>()
            .map(Inputs)
    }
}

impl<'de> Deserialize<'de> for BufferRecords {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match toml::Value::deserialize(d)? {
            toml::Value::Integer(n) if n >= 1 => usize::try_from(n)
                .map(BufferRecords)
                .map_err(|_| D::Error::custom("`buffer_records` is too large")),
            _ => Err(D::Error::custom(
                "`buffer_records` must be a positive integer",
            )),
        }
    }
}

impl<'de> Deserialize<'de> for BufferBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let not_a_size = || D::Error::custom("`buffer_bytes` must be a size string like \"16MiB\"");
        match toml::Value::deserialize(d)? {
            toml::Value::String(s) => match s.parse::<Size>() {
                Ok(size) if size.bytes() >= 1 => usize::try_from(size.bytes())
                    .map(BufferBytes)
                    .map_err(|_| D::Error::custom("`buffer_bytes` is too large")),
                Ok(_) => Err(not_a_size()),
                Err(e) => Err(D::Error::custom(e)),
            },
            _ => Err(not_a_size()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_size_as_written_is_the_channels_default() {
        assert_eq!(
            DEFAULT_BYTES_TEXT.parse::<Size>().unwrap().bytes(),
            flux_stages::channel::DEFAULT_BYTES as u64
        );
        assert_eq!(EngineKeys::default().capacity(None), Capacity::default());
        assert_eq!(EngineKeys::default().capacity(Some(7)).bytes, 7);
    }
}
