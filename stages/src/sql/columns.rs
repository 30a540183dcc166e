//! The user's projections of payload fields, as declared in the sink's `columns` table:
//! `columns = { customer_id = "data.customer_id", total = "data.total:double" }`.
//!
//! A spec is a path into the payload, `data.<field>[.<field>…]`, optionally followed by
//! `:<type>`. Field names are identifiers (letters, digits, `_`) because Hive and Athena map
//! them to `STRUCT` fields; column names are lower-case identifiers because Hive folds case.

use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;

/// The SQL types a projection can have (the engines' names are rendered per engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// Text (the default).
    String,
    /// 64-bit integer.
    BigInt,
    /// Double-precision float.
    Double,
    /// Boolean.
    Boolean,
    /// A timestamp, from an RFC 3339 string in UTC (`2026-11-25T10:00:00.123Z`).
    Timestamp,
    /// A date, from `YYYY-MM-DD`.
    Date,
    /// Boolean: whether the field holds a value (not null). Not a type users name in a spec:
    /// the `is_fence` [protocol column](protocol_projections).
    Presence,
}

impl ColumnType {
    /// The names accepted after `:` in a spec.
    pub const NAMES: [&'static str; 6] =
        ["string", "bigint", "double", "boolean", "timestamp", "date"];

    fn parse(name: &str) -> Option<ColumnType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "string" | "varchar" | "text" => ColumnType::String,
            "bigint" | "int" | "integer" | "long" => ColumnType::BigInt,
            "double" | "float" => ColumnType::Double,
            "boolean" | "bool" => ColumnType::Boolean,
            "timestamp" => ColumnType::Timestamp,
            "date" => ColumnType::Date,
            _ => return None,
        })
    }
}

/// Where a projection comes from, parsed: `data.total:double`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ColumnSpec {
    /// The field path below `data`, e.g. `["customer", "city"]`.
    pub path: Vec<String>,
    /// The column's type.
    pub ty: ColumnType,
}

impl fmt::Display for ColumnSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "data.{}", self.path.join("."))
    }
}

/// True for a name Hive, Athena, Drill and DuckDB all accept unquoted-or-quoted alike.
fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl TryFrom<String> for ColumnSpec {
    type Error = String;
    fn try_from(spec: String) -> Result<Self, String> {
        let (path, ty) = match spec.rsplit_once(':') {
            Some((path, ty)) => {
                let parsed = ColumnType::parse(ty.trim()).ok_or_else(|| {
                    format!(
                        "column spec {spec:?}: unknown type {ty:?}; expected one of {}",
                        ColumnType::NAMES.join(", ")
                    )
                })?;
                (path, parsed)
            }
            None => (spec.as_str(), ColumnType::String),
        };
        let Some(rest) = path.strip_prefix("data.") else {
            return Err(format!(
                "column spec {spec:?} must start with `data.` (a field of the payload), e.g. \"data.customer_id\" or \"data.total:double\""
            ));
        };
        let fields: Vec<String> = rest.split('.').map(str::to_owned).collect();
        if let Some(bad) = fields.iter().find(|f| !is_identifier(f)) {
            return Err(format!(
                "column spec {spec:?}: field {bad:?} is not a plain name (letters, digits and `_`, not starting with a digit); Hive and Athena map payload fields to STRUCT fields, which must be such names"
            ));
        }
        Ok(ColumnSpec { path: fields, ty })
    }
}

impl JsonSchema for ColumnSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ColumnSpec".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^data(\\.[A-Za-z_][A-Za-z0-9_]*)+(:[A-Za-z]+)?$",
            "description": "A payload field and optional type: \"data.customer_id\", \"data.total:double\". Types: string (default), bigint, double, boolean, timestamp, date."
        })
    }
}

/// A column name: lower-case letters, digits and `_`, not starting with a digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct ColumnName(pub String);

/// Names the generated tables and views use themselves; a projection cannot take them.
pub const RESERVED_COLUMNS: [&str; 14] = [
    "stream",
    "shard_id",
    "sequence_number",
    "partition_key",
    "arrival_ts",
    "data",
    "data_b64",
    "annotations",
    "dt",
    "hour",
    "shard",
    "origin",
    "replay_id",
    "is_fence",
];

/// The member of the payload the replay protocol uses (docs/replay-protocol.md).
pub const PROTOCOL_MEMBER: &str = crate::replay::DEFAULT_KEY;

/// The name of the column that tells fences from records.
pub const IS_FENCE: &str = "is_fence";

/// The replay protocol's columns, which every view over the archive and the live stream has
/// after the user's projections (an archive of a stream that received replays holds the
/// protocol's records; docs/replay-protocol.md):
///
/// - `replay_id`: for a replayed copy, the replay that wrote it (`_flux.replay.id`); NULL for
///   live records and fences;
/// - `is_fence`: true for a fence (`_flux.fence`), false for every other record.
pub fn protocol_projections() -> Vec<Projection> {
    let at = |path: &[&str], ty| ColumnSpec {
        path: std::iter::once(PROTOCOL_MEMBER)
            .chain(path.iter().copied())
            .map(str::to_owned)
            .collect(),
        ty,
    };
    vec![
        Projection {
            name: "replay_id".into(),
            spec: at(&["replay", "id"], ColumnType::String),
        },
        Projection {
            name: IS_FENCE.into(),
            spec: at(&["fence", "replay_id"], ColumnType::Presence),
        },
    ]
}

/// True for the columns of [`protocol_projections`].
pub fn is_protocol_column(name: &str) -> bool {
    name == "replay_id" || name == IS_FENCE
}

impl TryFrom<String> for ColumnName {
    type Error = String;
    fn try_from(name: String) -> Result<Self, String> {
        if !is_identifier(&name) || name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "column name {name:?} must be lower-case letters, digits and `_`, not starting with a digit (Hive folds names to lower case)"
            ));
        }
        if RESERVED_COLUMNS.contains(&name.as_str()) {
            return Err(format!(
                "column name {name:?} is taken by the envelope, a partition or the replay protocol ({}); choose another name",
                RESERVED_COLUMNS.join(", ")
            ));
        }
        Ok(ColumnName(name))
    }
}

impl JsonSchema for ColumnName {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ColumnName".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "string", "pattern": "^[a-z_][a-z0-9_]*$" })
    }
}

/// One projection: a named, typed column read from a payload field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Projection {
    /// The column's name.
    pub name: String,
    /// The payload field and type.
    pub spec: ColumnSpec,
}

/// Checks that the projections fit in one STRUCT type for `data`: no field is used both as a
/// leaf and as a parent (`data.a` and `data.a.b`).
pub fn check_paths(projections: &[Projection]) -> Result<(), String> {
    for a in projections {
        for b in projections {
            let (pa, pb) = (&a.spec.path, &b.spec.path);
            if pa.len() < pb.len() && pb.starts_with(pa) {
                return Err(format!(
                    "`columns`: {} reads {} as a value but {} reads a field below it ({}); a payload field is either a value or an object",
                    a.name, a.spec, b.name, b.spec
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> Result<ColumnSpec, String> {
        ColumnSpec::try_from(s.to_owned())
    }

    #[test]
    fn specs_parse_with_and_without_types() {
        assert_eq!(
            spec("data.customer_id").unwrap(),
            ColumnSpec {
                path: vec!["customer_id".into()],
                ty: ColumnType::String
            }
        );
        let s = spec("data.customer.city:string").unwrap();
        assert_eq!(s.path, ["customer", "city"]);
        assert_eq!(spec("data.total:DOUBLE").unwrap().ty, ColumnType::Double);
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(
            spec("customer_id")
                .unwrap_err()
                .contains("must start with `data.`")
        );
        assert!(
            spec("data.total:money")
                .unwrap_err()
                .contains("unknown type \"money\"")
        );
        assert!(spec("data.a-b").unwrap_err().contains("not a plain name"));
        assert!(spec("data.").unwrap_err().contains("not a plain name"));
        assert!(ColumnName::try_from("Total".to_owned()).is_err());
        assert!(
            ColumnName::try_from("hour".to_owned())
                .unwrap_err()
                .contains("taken")
        );
    }

    #[test]
    fn a_field_cannot_be_both_value_and_object() {
        let p = |name: &str, s: &str| Projection {
            name: name.into(),
            spec: spec(s).unwrap(),
        };
        assert!(check_paths(&[p("a", "data.c"), p("b", "data.c.d")]).is_err());
        assert!(check_paths(&[p("a", "data.c.e"), p("b", "data.c.d")]).is_ok());
    }
}
